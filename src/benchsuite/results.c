#include "benchsuite/results.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "benchsuite/workload.h"

static void count_error(serve_metrics *m, long status) {
    for (size_t i = 0; i < m->n_error_kinds; i++)
        if (m->errors[i].status == status) {
            m->errors[i].count++;
            return;
        }
    if (m->n_error_kinds < RESULTS_MAX_ERROR_KINDS) m->errors[m->n_error_kinds++] = (error_count){status, 1};
}

ryot_status serve_metrics_compute(const lg_result *r, size_t n, double duration_s, serve_slo slo, int tier,
                                  serve_metrics *m, ryot_error *err) {
    memset(m, 0, sizeof *m);
    m->duration_s = duration_s;
    size_t n_itl = 0;
    for (size_t i = 0; i < n; i++)
        if ((tier == RESULTS_ALL_TIERS || r[i].tier == tier) && r[i].ok) n_itl += r[i].n_itl;
    double *ttft = malloc((n ? n : 1) * sizeof *ttft), *tpot = malloc((n ? n : 1) * sizeof *tpot);
    double *e2e = malloc((n ? n : 1) * sizeof *e2e), *itl = malloc((n_itl ? n_itl : 1) * sizeof *itl);
    ryot_status st = RYOT_OK;
    if (!ttft || !tpot || !e2e || !itl) {
        st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory computing metrics");
        goto out;
    }
    size_t k = 0, nt = 0, ni = 0;
    for (size_t i = 0; i < n; i++) {
        const lg_result *x = &r[i];
        if (tier != RESULTS_ALL_TIERS && x->tier != tier) continue;
        m->n_total++;
        if (!x->ok) {
            m->n_failed++;
            count_error(m, x->http_status);
            continue;
        }
        m->n_ok++;
        ttft[k] = x->ttft_ms;
        e2e[k] = x->e2e_ms;
        tpot[k] = x->tpot_ms;
        k++;
        if (!isnan(x->tpot_ms)) nt++;
        for (size_t j = 0; j < x->n_itl; j++) itl[ni++] = x->itl_ms[j];
        m->output_tokens += x->output_tokens;
        if (x->input_tokens > 0) m->input_tokens += x->input_tokens;
    }
    m->n_good = stats_goodput_count(ttft, tpot, NULL, k, slo.ttft_ms, slo.tpot_ms);
    /* TPOT summary over requests with >= 2 output tokens only */
    double *tp = malloc((nt ? nt : 1) * sizeof *tp);
    if (!tp) {
        st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory computing metrics");
        goto out;
    }
    nt = 0;
    for (size_t i = 0; i < k; i++)
        if (!isnan(tpot[i])) tp[nt++] = tpot[i];
    if ((st = stats_summarize(ttft, k, &m->ttft, err)) != RYOT_OK ||
        (st = stats_summarize(tp, nt, &m->tpot, err)) != RYOT_OK ||
        (st = stats_summarize(itl, ni, &m->itl, err)) != RYOT_OK ||
        (st = stats_summarize(e2e, k, &m->e2e, err)) != RYOT_OK) {
        free(tp);
        goto out;
    }
    free(tp);
    if (duration_s > 0) {
        m->request_throughput = (double)m->n_ok / duration_s;
        m->output_throughput = (double)m->output_tokens / duration_s;
        m->total_token_throughput = (double)(m->input_tokens + m->output_tokens) / duration_s;
        m->goodput = (double)m->n_good / duration_s;
    }
out:
    free(ttft);
    free(tpot);
    free(e2e);
    free(itl);
    return st;
}

static double summary_get(const stats_summary *s, const char *stat) {
    if (!strcmp(stat, "mean")) return s->mean;
    if (!strcmp(stat, "p50") || !strcmp(stat, "median")) return s->p50;
    if (!strcmp(stat, "p90")) return s->p90;
    if (!strcmp(stat, "p95")) return s->p95;
    if (!strcmp(stat, "p99")) return s->p99;
    if (!strcmp(stat, "sd")) return s->sd;
    if (!strcmp(stat, "min")) return s->min;
    if (!strcmp(stat, "max")) return s->max;
    return NAN;
}

double serve_metrics_get(const serve_metrics *m, const char *name) {
    if (!strcmp(name, "output_throughput")) return m->output_throughput;
    if (!strcmp(name, "request_throughput")) return m->request_throughput;
    if (!strcmp(name, "total_token_throughput")) return m->total_token_throughput;
    if (!strcmp(name, "goodput")) return m->goodput;
    if (!strcmp(name, "error_rate")) return m->n_total ? 100.0 * (double)m->n_failed / (double)m->n_total : 0;
    const char *us = strchr(name, '_');
    if (!us) return NAN;
    size_t pl = (size_t)(us - name);
    const stats_summary *s = !strncmp(name, "ttft", pl) && pl == 4   ? &m->ttft
                             : !strncmp(name, "tpot", pl) && pl == 4 ? &m->tpot
                             : !strncmp(name, "itl", pl) && pl == 3  ? &m->itl
                             : !strncmp(name, "e2e", pl) && pl == 3  ? &m->e2e
                                                                    : NULL;
    return s ? summary_get(s, us + 1) : NAN;
}

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *summary_json(const stats_summary *s) {
    json_t *o = json_object();
    json_object_set_new(o, "n", json_integer((json_int_t)s->n));
    json_object_set_new(o, "mean", num(s->mean));
    json_object_set_new(o, "median", num(s->p50));
    json_object_set_new(o, "p90", num(s->p90));
    json_object_set_new(o, "p95", num(s->p95));
    json_object_set_new(o, "p99", num(s->p99));
    json_object_set_new(o, "std", num(s->sd));
    json_object_set_new(o, "min", num(s->min));
    json_object_set_new(o, "max", num(s->max));
    return o;
}

json_t *results_metrics_json(const serve_metrics *m) {
    json_t *o = json_object();
    json_object_set_new(o, "duration_s", num(m->duration_s));
    json_object_set_new(o, "completed", json_integer((json_int_t)m->n_ok));
    json_object_set_new(o, "failed", json_integer((json_int_t)m->n_failed));
    json_object_set_new(o, "total", json_integer((json_int_t)m->n_total));
    json_object_set_new(o, "error_rate", num(serve_metrics_get(m, "error_rate")));
    json_object_set_new(o, "input_tokens", json_integer(m->input_tokens));
    json_object_set_new(o, "output_tokens", json_integer(m->output_tokens));
    json_object_set_new(o, "request_throughput", num(m->request_throughput));
    json_object_set_new(o, "output_throughput", num(m->output_throughput));
    json_object_set_new(o, "total_token_throughput", num(m->total_token_throughput));
    json_object_set_new(o, "goodput", num(m->goodput));
    json_object_set_new(o, "good_requests", json_integer((json_int_t)m->n_good));
    json_object_set_new(o, "ttft_ms", summary_json(&m->ttft));
    json_object_set_new(o, "tpot_ms", summary_json(&m->tpot));
    json_object_set_new(o, "itl_ms", summary_json(&m->itl));
    json_object_set_new(o, "e2e_ms", summary_json(&m->e2e));
    json_t *e = json_object();
    for (size_t i = 0; i < m->n_error_kinds; i++) {
        char key[32];
        if (m->errors[i].status == 0)
            snprintf(key, sizeof key, "transport");
        else if (m->errors[i].status / 100 == 2)
            snprintf(key, sizeof key, "stream");
        else
            snprintf(key, sizeof key, "http_%ld", m->errors[i].status);
        json_object_set_new(e, key, json_integer((json_int_t)m->errors[i].count));
    }
    json_object_set_new(o, "errors", e);
    return o;
}

json_t *results_requests_json(const lg_result *r, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        const lg_result *x = &r[i];
        json_t *o = json_object();
        json_object_set_new(o, "start_s", num(x->start_s));
        json_object_set_new(o, "ttft_ms", num(x->ttft_ms));
        json_object_set_new(o, "tpot_ms", num(x->tpot_ms));
        json_object_set_new(o, "e2e_ms", num(x->e2e_ms));
        json_t *itl = json_array();
        for (size_t j = 0; j < x->n_itl; j++) json_array_append_new(itl, json_real(round(x->itl_ms[j] * 1e3) / 1e3));
        json_object_set_new(o, "itl_ms", itl);
        json_object_set_new(o, "input_tokens", x->input_tokens >= 0 ? json_integer(x->input_tokens) : json_null());
        json_object_set_new(o, "output_tokens", json_integer(x->output_tokens));
        json_object_set_new(o, "status", json_integer(x->http_status));
        json_object_set_new(o, "ok", json_boolean(x->ok));
        if (x->error[0]) json_object_set_new(o, "error", json_string(x->error));
        if (x->tier != LG_TIER_NONE) json_object_set_new(o, "tier", json_string(workload_tier_name(x->tier)));
        if (x->user >= 0) {
            json_object_set_new(o, "user", json_integer(x->user));
            json_object_set_new(o, "turn", json_integer(x->turn));
        }
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *linfit_json(const stats_linfit *f) {
    json_t *o = json_object();
    json_object_set_new(o, "slope_per_min", num(f->slope));
    json_t *ci = json_array();
    json_array_append_new(ci, num(f->slope_lo));
    json_array_append_new(ci, num(f->slope_hi));
    json_object_set_new(o, "slope_ci95", ci);
    json_object_set_new(o, "intercept", num(f->intercept));
    return o;
}

json_t *results_soak_json(int pid, double interval_s, const soak_sample *s, size_t n, const soak_verdict *v) {
    json_t *o = json_object();
    json_object_set_new(o, "pid", json_integer(pid));
    json_object_set_new(o, "interval_s", num(interval_s));
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "t_s", num(s[i].t_s));
        json_object_set_new(e, "rss_kib", json_integer(s[i].rss_kib));
        json_object_set_new(e, "fds", json_integer(s[i].fds));
        json_array_append_new(a, e);
    }
    json_object_set_new(o, "samples", a);
    json_object_set_new(o, "mean_rss_kib", num(v->mean_rss_kib));
    json_object_set_new(o, "rss_kib", linfit_json(&v->rss));
    json_object_set_new(o, "fds", linfit_json(&v->fds));
    json_object_set_new(o, "rss_leak", json_boolean(v->rss_leak));
    json_object_set_new(o, "fd_leak", json_boolean(v->fd_leak));
    json_object_set_new(o, "verdict", json_string(v->verdict));
    return o;
}

json_t *results_machine_json(void) {
    json_t *o = json_object();
    char line[512], cpu[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                if (c) {
                    c++;
                    while (*c == ' ' || *c == '\t') c++;
                    snprintf(cpu, sizeof cpu, "%s", c);
                    cpu[strcspn(cpu, "\n")] = '\0';
                }
                break;
            }
        fclose(f);
    }
    json_object_set_new(o, "cpu_model", json_string(cpu));
    json_object_set_new(o, "cores", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    long long mem = -1;
    if ((f = fopen("/proc/meminfo", "r"))) {
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "MemTotal:", 9)) {
                mem = strtoll(line + 9, NULL, 10);
                break;
            }
        fclose(f);
    }
    json_object_set_new(o, "mem_total_kib", mem >= 0 ? json_integer(mem) : json_null());
    struct utsname u;
    if (uname(&u) == 0) {
        json_object_set_new(o, "hostname", json_string(u.nodename));
        char k[300];
        snprintf(k, sizeof k, "%s %s %s", u.sysname, u.release, u.machine);
        json_object_set_new(o, "kernel", json_string(k));
    }
    return o;
}

void results_git_commit(char *buf, size_t cap) {
#ifdef RYOT_GIT_COMMIT
    const char *fallback = RYOT_GIT_COMMIT;
#else
    const char *fallback = "unknown";
#endif
    snprintf(buf, cap, "%s", fallback);
    FILE *p = popen("git rev-parse HEAD 2>/dev/null", "r");
    if (!p) return;
    char line[128];
    if (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        bool hex = strlen(line) >= 7;
        for (char *c = line; *c; c++) hex = hex && isxdigit((unsigned char)*c);
        if (hex) snprintf(buf, cap, "%s", line);
    }
    pclose(p);
}

ryot_status results_write(const char *path, json_t *doc, ryot_error *err) {
    if (json_dump_file(doc, path, JSON_INDENT(1) | JSON_REAL_PRECISION(10)) != 0)
        return ryot_fail(err, RYOT_ERR_IO, "cannot write %s", path);
    return RYOT_OK;
}

ryot_status results_load(const char *path, json_t **doc, ryot_error *err) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) return ryot_fail(err, RYOT_ERR_FORMAT, "%s:%d: %s", path, je.line, je.text);
    const char *schema = json_string_value(json_object_get(j, "schema"));
    if (!schema || strcmp(schema, RESULTS_SCHEMA) || !json_is_array(json_object_get(j, "runs"))) {
        json_decref(j);
        return ryot_fail(err, RYOT_ERR_FORMAT, "%s: not a ryot bench serve result (schema %s)", path, RESULTS_SCHEMA);
    }
    *doc = j;
    return RYOT_OK;
}

ryot_status results_samples(const json_t *run, const char *field, double **out, size_t *n, ryot_error *err) {
    *out = NULL;
    *n = 0;
    json_t *reqs = json_object_get(run, "requests");
    if (!json_is_array(reqs)) return ryot_fail(err, RYOT_ERR_FORMAT, "run without a requests array");
    bool pooled = !strcmp(field, "itl_ms");
    size_t cap = 0, i;
    json_t *r;
    json_array_foreach(reqs, i, r) {
        if (!json_is_true(json_object_get(r, "ok"))) continue;
        json_t *v = json_object_get(r, field);
        size_t m = pooled ? json_array_size(v) : 1;
        if (*n + m > cap) {
            cap = (*n + m) * 2 + 16;
            double *nb = realloc(*out, cap * sizeof *nb);
            if (!nb) {
                free(*out);
                *out = NULL;
                return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory reading samples");
            }
            *out = nb;
        }
        if (pooled) {
            for (size_t j = 0; j < m; j++)
                if (json_is_number(json_array_get(v, j))) (*out)[(*n)++] = json_number_value(json_array_get(v, j));
        } else if (json_is_number(v)) {
            (*out)[(*n)++] = json_number_value(v);
        }
    }
    return RYOT_OK;
}

static bool ends_with(const char *s, size_t n, const char *suf) {
    size_t l = strlen(suf);
    return n >= l && !memcmp(s + n - l, suf, l);
}

bool prom_sum(const char *text, const char *substr, double *sum) {
    bool found = false;
    double total = 0;
    size_t sl = strlen(substr);
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len && p[0] != '#') {
            size_t name_len = 0;
            while (name_len < len && p[name_len] != '{' && p[name_len] != ' ' && p[name_len] != '\t') name_len++;
            bool match = false;
            for (size_t i = 0; i + sl <= name_len && !match; i++) match = !memcmp(p + i, substr, sl);
            if (match && !ends_with(p, name_len, "_created") && !ends_with(p, name_len, "_bucket")) {
                const char *v = p + name_len;
                if (*v == '{') { /* skip labels; values may hold '}' only inside quotes */
                    bool q = false;
                    for (v++; v < p + len; v++) {
                        if (*v == '\\' && q) {
                            v++;
                            continue;
                        }
                        if (*v == '"') q = !q;
                        if (*v == '}' && !q) {
                            v++;
                            break;
                        }
                    }
                }
                char *end;
                errno = 0;
                double x = strtod(v, &end);
                if (end != v && !errno) {
                    total += x;
                    found = true;
                }
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    if (found) *sum = total;
    return found;
}
