/* `ryot bench kernels`: dot-product kernel micro benchmarks per type and ISA
 * (src/benchsuite/micro.c).  Exit status: 0 ok, 1 failure, 2 bad usage or
 * nothing matched. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "benchsuite/micro.h"
#include "cli/cli.h"

int cmd_bench_kernels(int argc, char **argv) {
    const char *only_type = NULL, *only_isa = NULL;
    double mib = 512, d;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: ryot bench kernels [-t TYPE] [-i ref|avx2|avx512] [--membw-mib N]\n"
                   "\nSingle-thread dot-product kernels per type: decode GB/s of weight bytes (vec_dot_rows\n"
                   "with one activation row, as the engine decodes) over a 2048 x 2048 matrix and over 64 rows (cache\n"
                   "resident), vec_dot_rows GFLOP/s on a 256 x 2048 x 64 tile (prefill); and the\n"
                   "measured 1-thread memory read bandwidth, with each dot's share of it.\n"
                   "Best of several repetitions in thread CPU time.\n");
            return 0;
        } else if (!strcmp(a, "-t") && v) {
            only_type = v, i++;
        } else if (!strcmp(a, "-i") && v) {
            only_isa = v, i++;
        } else if (!strcmp(a, "--membw-mib") && v && cli_parse_double(v, 1, 65536, &d)) {
            mib = d, i++;
        } else {
            fprintf(stderr, "ryot bench kernels: bad option '%s'\n", a);
            return 2;
        }
    }
    ryot_error err = {0};
    double bw1 = 0;
    if (micro_membw((size_t)(mib * 1048576), 1, 3, &bw1, &err) != RYOT_OK) {
        fprintf(stderr, "ryot bench kernels: %s\n", err.msg);
        return 1;
    }
    kernels_init(KERNEL_ISA_AUTO);
    printf("memory read bandwidth (1 thread, %.0f MiB): %.2f GB/s; best ISA %s\n", mib, bw1,
           kernel_isa_name(kernels_best_isa()));
    printf("| %-6s | %-6s | %14s | %10s | %14s | %16s |\n", "type", "isa", "dot GB/s 2048²", "% of mem", "dot GB/s 64row",
           "rows GFLOP/s");
    printf("|--------|--------|---------------:|-----------:|---------------:|-----------------:|\n");
    static const ryot_type types[] = {RYOT_TYPE_F32,  RYOT_TYPE_F16,  RYOT_TYPE_BF16, RYOT_TYPE_Q8_0,
                                      RYOT_TYPE_Q4_0, RYOT_TYPE_Q4_1, RYOT_TYPE_Q5_0, RYOT_TYPE_Q5_1,
                                      RYOT_TYPE_Q4_K, RYOT_TYPE_Q5_K, RYOT_TYPE_Q6_K};
    int shown = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        if (only_type && strcasecmp(only_type, ryot_type_name(types[ti]))) continue;
        for (kernel_isa isa = KERNEL_ISA_REF; isa <= KERNEL_ISA_AVX512; isa++) {
            if (isa > kernels_best_isa()) break;
            if (only_isa ? strcmp(only_isa, kernel_isa_name(isa)) : isa != kernels_best_isa()) continue;
            micro_kernel_result r;
            ryot_status st = micro_kernel(types[ti], isa, 2048, 2048, &r, &err);
            if (st == RYOT_ERR_UNSUPPORTED) continue;
            if (st != RYOT_OK) {
                fprintf(stderr, "ryot bench kernels: %s\n", err.msg);
                return 1;
            }
            printf("| %-6s | %-6s | %14.2f | %9.0f%% | %14.2f | %16.2f |\n", ryot_type_name(types[ti]),
                   kernel_isa_name(isa), r.dot_gbps, 100 * r.dot_gbps / bw1, r.dot_l2_gbps, r.rows_gflops);
            fflush(stdout);
            shown++;
        }
    }
    if (!shown) {
        fprintf(stderr, "ryot bench kernels: nothing matched -t/-i\n");
        return 2;
    }
    return 0;
}
