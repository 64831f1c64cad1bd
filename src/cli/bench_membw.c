/* `ryot bench membw`: memory read bandwidth (src/benchsuite/micro.c).
 * Exit status: 0 ok, 1 failure, 2 bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchsuite/micro.h"
#include "cli/cli.h"

/* STREAM-like read bandwidth at 1 and 2 (or the listed) thread counts: the
 * ceiling for memory-bound decode (weight bytes per token / bandwidth). */
int cmd_bench_membw(int argc, char **argv) {
    double mib = 1024, d;
    int passes = 5, threads[8] = {1, 2}, n_threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: ryot bench membw [--mib N] [-t 1,2] [-r PASSES]\n"
                   "\nMemory read bandwidth: sum of a buffer of N MiB (default 1024) of 64-bit words,\n"
                   "each thread its share, best of PASSES (default 5), per thread count.\n");
            return 0;
        } else if (!strcmp(a, "--mib") && v && cli_parse_double(v, 1, 65536, &d)) {
            mib = d, i++;
        } else if (!strcmp(a, "-r") && v && cli_parse_double(v, 1, 1000, &d)) {
            passes = (int)d, i++;
        } else if (!strcmp(a, "-t") && v) {
            n_threads = 0;
            for (const char *p = v; *p && n_threads < 8;) {
                char *end;
                long t = strtol(p, &end, 10);
                if (end == p || t < 1 || t > 512) {
                    fprintf(stderr, "ryot bench membw: bad thread list '%s'\n", v);
                    return 2;
                }
                threads[n_threads++] = (int)t;
                p = *end == ',' ? end + 1 : end;
                if (*end && *end != ',') {
                    fprintf(stderr, "ryot bench membw: bad thread list '%s'\n", v);
                    return 2;
                }
            }
            i++;
        } else {
            fprintf(stderr, "ryot bench membw: bad option '%s'\n", a);
            return 2;
        }
    }
    for (int k = 0; k < n_threads; k++) {
        ryot_error err = {0};
        double gbps = 0;
        if (micro_membw((size_t)(mib * 1048576), threads[k], passes, &gbps, &err) != RYOT_OK) {
            fprintf(stderr, "ryot bench membw: %s\n", err.msg);
            return 1;
        }
        printf("memory read bandwidth: %d thread%s, %.0f MiB, best of %d: %.2f GB/s\n", threads[k],
               threads[k] == 1 ? "" : "s", mib, passes, gbps);
    }
    return 0;
}
