/* `ryot store keygen|stats|verify|gc|rekey`: the persistent context store's
 * administration (store/store.h). */
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/store.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: ryot store <command> [options]\n"
            "\n"
            "The persistent context store of `ryot serve --store DIR` (LMDB, zstd, XChaCha20-Poly1305).\n"
            "\n"
            "commands:\n"
            "  keygen FILE             write 32 random bytes to FILE (mode 0600, refuses to overwrite)\n"
            "  stats DIR               records, bytes, budget, sessions\n"
            "  verify DIR              open and decode every record; exit 1 if any fails\n"
            "  gc DIR [--target F]     delete records that fail verify, then evict least recently used\n"
            "                          records down to fraction F of the budget (default %.2f)\n"
            "  rekey DIR OLD NEW       reseal every record under key file NEW (OLD, NEW: key files, or\n"
            "                          'none' for plaintext); crash-safe, in committed batches: run it\n"
            "                          again after an interruption to finish\n"
            "\n"
            "stats, verify and gc take --store-key-file FILE or --store-plaintext (as ryot serve).\n",
            STORE_LOW_WATER);
}

static int keygen(const char *path) {
    if (sodium_init() < 0) return 1;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        fprintf(stderr, "ryot store keygen: %s: %m\n", path);
        return 1;
    }
    uint8_t key[STORE_KEY_BYTES];
    randombytes_buf(key, sizeof key);
    const bool ok = write(fd, key, sizeof key) == (ssize_t)sizeof key && fsync(fd) == 0;
    sodium_memzero(key, sizeof key);
    if (close(fd) != 0 || !ok) {
        fprintf(stderr, "ryot store keygen: %s: write failed\n", path);
        unlink(path);
        return 1;
    }
    fprintf(stderr, "ryot store keygen: wrote %s (%d bytes)\n", path, STORE_KEY_BYTES);
    return 0;
}

/* "none" -> NULL (plaintext); else the key file. */
static int load_key_arg(const char *arg, uint8_t key[STORE_KEY_BYTES], const uint8_t **out) {
    if (!strcmp(arg, "none")) {
        *out = NULL;
        return 0;
    }
    ryot_error err;
    if (store_key_load(arg, key, &err)) {
        fprintf(stderr, "ryot store: %s\n", err.msg);
        return 1;
    }
    *out = key;
    return 0;
}

int cmd_store(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "keygen")) {
        if (argc != 3) {
            fprintf(stderr, "ryot store keygen: needs FILE\n");
            return 2;
        }
        return keygen(argv[2]);
    }
    if (!strcmp(cmd, "rekey")) {
        if (argc != 5) {
            fprintf(stderr, "ryot store rekey: needs DIR OLD NEW\n");
            return 2;
        }
        uint8_t ko[STORE_KEY_BYTES], kn[STORE_KEY_BYTES];
        const uint8_t *po, *pn;
        if (load_key_arg(argv[3], ko, &po) || load_key_arg(argv[4], kn, &pn)) return 1;
        uint64_t done;
        ryot_error err;
        ryot_status st = store_rekey(argv[2], po, pn, &done, &err);
        sodium_memzero(ko, sizeof ko);
        sodium_memzero(kn, sizeof kn);
        if (st) {
            fprintf(stderr, "ryot store rekey: %s (%llu records already resealed; run it again)\n", err.msg,
                    (unsigned long long)done);
            return 1;
        }
        printf("resealed %llu records\n", (unsigned long long)done);
        return 0;
    }
    if (strcmp(cmd, "stats") && strcmp(cmd, "verify") && strcmp(cmd, "gc")) {
        fprintf(stderr, "ryot store: unknown command '%s' (see --help)\n", cmd);
        return 2;
    }
    const char *dir = NULL, *key_file = NULL;
    bool plaintext = false;
    double target = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--store-key-file") && v) key_file = v, i++;
        else if (!strcmp(a, "--store-plaintext")) plaintext = true;
        else if (!strcmp(a, "--target") && v && !strcmp(cmd, "gc")) {
            if (!cli_parse_double(v, 0.0, 1.0, &target)) {
                fprintf(stderr, "ryot store gc: --target needs a fraction in 0..1\n");
                return 2;
            }
            i++;
        } else if (a[0] != '-' && !dir) dir = a;
        else {
            fprintf(stderr, "ryot store %s: unknown or incomplete option '%s'\n", cmd, a);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "ryot store %s: needs DIR\n", cmd);
        return 2;
    }
    uint8_t key[STORE_KEY_BYTES];
    ryot_error err;
    if (key_file && store_key_load(key_file, key, &err)) {
        fprintf(stderr, "ryot store: %s\n", err.msg);
        return 1;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        fprintf(stderr, "ryot store %s: %s: no such store\n", cmd, dir);
        return 1;
    }
    store_params p = {.dir = dir, .gb = 0, .key = key_file ? key : NULL, .plaintext = plaintext || !key_file,
                      .codec = store_codec_default(), .read_only = strcmp(cmd, "gc") != 0};
    store *s;
    ryot_status st = store_open(&p, &s, &err);
    sodium_memzero(key, sizeof key);
    if (st) {
        fprintf(stderr, "ryot store %s: %s\n", cmd, err.msg);
        return 1;
    }
    int rc = 0;
    if (!strcmp(cmd, "gc")) {
        uint64_t deleted;
        if (store_gc(s, target, &deleted, &err)) {
            fprintf(stderr, "ryot store gc: %s\n", err.msg);
            rc = 1;
        } else {
            printf("deleted %llu records\n", (unsigned long long)deleted);
        }
    }
    store_verify_report r;
    if (!rc && store_verify(s, &r, &err)) {
        fprintf(stderr, "ryot store %s: %s\n", cmd, err.msg);
        rc = 1;
    }
    if (!rc) {
        store_stats ss;
        store_get_stats(s, &ss);
        printf("records %llu (ok %llu, failed %llu), sessions %llu (failed %llu), lru entries missing %llu\n",
               (unsigned long long)r.records, (unsigned long long)r.ok, (unsigned long long)r.bad,
               (unsigned long long)r.sessions, (unsigned long long)r.sessions_bad, (unsigned long long)r.lru_missing);
        printf("bytes %llu sealed, %llu raw F16 (ratio %.2f), pages %llu of a %llu-byte budget\n",
               (unsigned long long)r.bytes, (unsigned long long)r.raw_bytes,
               r.bytes ? (double)r.raw_bytes / (double)r.bytes : 0.0, (unsigned long long)ss.used_bytes,
               (unsigned long long)ss.budget_bytes);
        if (!strcmp(cmd, "verify") && (r.bad || r.sessions_bad)) {
            fprintf(stderr, "ryot store verify: %llu records and %llu sessions fail to open or decode "
                            "(wrong key, or tampered; `ryot store gc` deletes them)\n",
                    (unsigned long long)r.bad, (unsigned long long)r.sessions_bad);
            rc = 1;
        }
    }
    store_close(s);
    return rc;
}
