#include "cache/hnsw.h"

#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum { EF_MAX = 256, CAND_MAX = 4 * EF_MAX, L0_CAP = 2 * HNSW_M };

/* A node's links on one layer: [0] the count, then the slots. */
struct hnsw_store {
    int cap, dim;
    const float *vec;
    int8_t *level; /* per slot; -1: in no graph */
    int *l0;       /* per slot, L0_CAP + 1 ints */
    int **up;      /* per slot: level * (HNSW_M + 1) ints (layers 1..level), or NULL */
    uint32_t *seen, epoch;
};

typedef struct cand {
    float d;
    int s;
} cand;

float hnsw_dot(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

hnsw_store *hnsw_store_new(int cap, int dim, const float *vec) {
    if (cap < 1 || dim < 1 || !vec) return NULL;
    hnsw_store *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->cap = cap;
    st->dim = dim;
    st->vec = vec;
    st->level = malloc((size_t)cap);
    st->l0 = calloc((size_t)cap * (L0_CAP + 1), sizeof *st->l0);
    st->up = calloc((size_t)cap, sizeof *st->up);
    st->seen = calloc((size_t)cap, sizeof *st->seen);
    if (!st->level || !st->l0 || !st->up || !st->seen) {
        hnsw_store_free(st);
        return NULL;
    }
    memset(st->level, -1, (size_t)cap);
    return st;
}

void hnsw_store_free(hnsw_store *st) {
    if (!st) return;
    if (st->up)
        for (int i = 0; i < st->cap; i++) free(st->up[i]);
    free(st->level);
    free(st->l0);
    free(st->up);
    free(st->seen);
    free(st);
}

static const float *vec_of(const hnsw_store *st, int s) { return st->vec + (size_t)s * (size_t)st->dim; }
static int lcap(int layer) { return layer ? HNSW_M : L0_CAP; }
static int *links(hnsw_store *st, int s, int layer) {
    return layer ? st->up[s] + (size_t)(layer - 1) * (HNSW_M + 1) : st->l0 + (size_t)s * (L0_CAP + 1);
}

static void new_epoch(hnsw_store *st) {
    if (++st->epoch == 0) {
        memset(st->seen, 0, (size_t)st->cap * sizeof *st->seen);
        st->epoch = 1;
    }
}

/* Inserts c into a[0..*n) kept in descending order of d, at most max long
 * (the worst falls off). */
static void put_desc(cand *a, int *n, int max, cand c) {
    int i;
    if (*n < max) {
        i = (*n)++;
    } else {
        if (a[max - 1].d >= c.d) return;
        i = max - 1;
    }
    while (i > 0 && a[i - 1].d < c.d) {
        a[i] = a[i - 1];
        i--;
    }
    a[i] = c;
}

/* The beam search of one layer from the entries ent[0..n_ent) (their d
 * already set): the ef best nodes found, best first, in w; returns how many. */
static int search_layer(hnsw_store *st, const float *q, const cand *ent, int n_ent, int ef, int layer, cand *w) {
    static_assert(CAND_MAX >= EF_MAX, "candidate list shorter than the beam");
    cand c[CAND_MAX]; /* candidates to expand, ascending: the best is last */
    int nc = 0, nw = 0;
    new_epoch(st);
    for (int i = 0; i < n_ent; i++) {
        st->seen[ent[i].s] = st->epoch;
        put_desc(w, &nw, ef, ent[i]);
    }
    for (int i = nw - 1; i >= 0; i--) c[nc++] = w[i];
    while (nc > 0) {
        const cand cur = c[--nc];
        if (nw == ef && cur.d < w[nw - 1].d) break;
        const int *l = links(st, cur.s, layer);
        for (int k = 1; k <= l[0]; k++) {
            const int s = l[k];
            if (st->seen[s] == st->epoch) continue;
            st->seen[s] = st->epoch;
            const cand x = {hnsw_dot(q, vec_of(st, s), st->dim), s};
            if (nw == ef && x.d <= w[nw - 1].d) continue;
            put_desc(w, &nw, ef, x);
            /* into c, ascending; when full the worst candidate (c[0]) goes */
            int j = nc;
            if (nc == CAND_MAX) {
                if (x.d <= c[0].d) continue;
                memmove(c, c + 1, (size_t)(nc - 1) * sizeof *c);
                j = --nc;
            }
            while (j > 0 && c[j - 1].d > x.d) {
                c[j] = c[j - 1];
                j--;
            }
            c[j] = x;
            nc++;
        }
    }
    return nw;
}

/* Greedy walk on one layer from ep: the most similar node reachable. */
static cand greedy(hnsw_store *st, const float *q, cand ep, int layer) {
    for (bool moved = true; moved;) {
        moved = false;
        const int *l = links(st, ep.s, layer);
        for (int k = 1; k <= l[0]; k++) {
            const float d = hnsw_dot(q, vec_of(st, l[k]), st->dim);
            if (d > ep.d) ep = (cand){d, l[k]}, moved = true;
        }
    }
    return ep;
}

/* Neighbours of a node among cands[0..n) (best first, d = similarity to the
 * node): the paper's heuristic, then (fill) the pruned ones in order up to
 * max.  Writes the list into out ([0] count). */
static void select_into(hnsw_store *st, const cand *cands, int n, int max, bool fill, int *out) {
    bool taken[CAND_MAX];
    int m = 0;
    for (int i = 0; i < n && m < max; i++) {
        taken[i] = true;
        const float *v = vec_of(st, cands[i].s);
        for (int r = 1; r <= m && taken[i]; r++)
            if (hnsw_dot(v, vec_of(st, out[r]), st->dim) > cands[i].d) taken[i] = false;
        if (taken[i]) out[++m] = cands[i].s;
    }
    for (int i = 0; fill && i < n && m < max; i++)
        if (!taken[i]) out[++m] = cands[i].s;
    out[0] = m;
}

/* Adds a link node -> to on layer; a full list is re-selected. */
static void link_to(hnsw_store *st, int node, int to, int layer) {
    int *l = links(st, node, layer);
    const int cap = lcap(layer);
    if (l[0] < cap) {
        l[++l[0]] = to;
        return;
    }
    cand cs[L0_CAP + 1];
    int n = 0;
    const float *v = vec_of(st, node);
    for (int k = 1; k <= l[0]; k++) put_desc(cs, &n, L0_CAP + 1, (cand){hnsw_dot(v, vec_of(st, l[k]), st->dim), l[k]});
    put_desc(cs, &n, L0_CAP + 1, (cand){hnsw_dot(v, vec_of(st, to), st->dim), to});
    select_into(st, cs, n, cap, false, l);
}

static int draw_level(uint64_t *rng) {
    uint64_t x = *rng ? *rng : 0x9e3779b97f4a7c15u; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    const double u = (double)((x * 0x2545f4914f6cdd1du) >> 11) * 0x1.0p-53;
    const int lv = (int)floor(-log(u > 0 ? u : 0x1.0p-53) / log((double)HNSW_M));
    return lv < HNSW_MAX_LEVEL ? lv : HNSW_MAX_LEVEL;
}

int hnsw_insert(hnsw_store *st, hnsw_graph *g, int slot, uint64_t *rng) {
    const int lv = draw_level(rng);
    if (lv > 0) {
        st->up[slot] = calloc((size_t)lv * (HNSW_M + 1), sizeof **st->up);
        if (!st->up[slot]) return -1;
    }
    st->level[slot] = (int8_t)lv;
    links(st, slot, 0)[0] = 0;
    if (g->entry < 0) {
        *g = (hnsw_graph){.entry = slot, .top = lv, .n = 1};
        return 0;
    }
    const float *q = vec_of(st, slot);
    cand ep = {hnsw_dot(q, vec_of(st, g->entry), st->dim), g->entry};
    for (int l = g->top; l > lv; l--) ep = greedy(st, q, ep, l);
    cand w[EF_MAX];
    cand ent[EF_MAX];
    int n_ent = 1;
    ent[0] = ep;
    for (int l = lv < g->top ? lv : g->top; l >= 0; l--) {
        const int nw = search_layer(st, q, ent, n_ent, HNSW_EF_BUILD, l, w);
        int *mine = links(st, slot, l);
        select_into(st, w, nw, lcap(l), false, mine);
        for (int k = 1; k <= mine[0]; k++) link_to(st, mine[k], slot, l);
        memcpy(ent, w, (size_t)nw * sizeof *w);
        n_ent = nw;
    }
    if (lv > g->top) g->entry = slot, g->top = lv;
    g->n++;
    return 0;
}

void hnsw_remove(hnsw_store *st, hnsw_graph *g, int slot, const int *members, int n_members) {
    const int lv = st->level[slot];
    if (lv < 0) return;
    for (int l = 0; l <= lv; l++) {
        const int *gone = links(st, slot, l);
        for (int i = 0; i < n_members; i++) {
            const int p = members[i];
            if (p == slot || st->level[p] < l) continue;
            int *pl = links(st, p, l);
            int at = 0;
            for (int k = 1; k <= pl[0] && !at; k++)
                if (pl[k] == slot) at = k;
            if (!at) continue;
            /* p's other links and the removed node's, re-selected */
            const int had = pl[0] - 1;
            pl[at] = pl[pl[0]--];
            cand cs[2 * L0_CAP];
            int n = 0;
            const float *v = vec_of(st, p);
            for (int k = 1; k <= pl[0]; k++)
                put_desc(cs, &n, 2 * L0_CAP, (cand){hnsw_dot(v, vec_of(st, pl[k]), st->dim), pl[k]});
            for (int k = 1; k <= gone[0]; k++) {
                const int s = gone[k];
                bool dup = s == p;
                for (int j = 1; j <= pl[0] && !dup; j++) dup = pl[j] == s;
                if (!dup) put_desc(cs, &n, 2 * L0_CAP, (cand){hnsw_dot(v, vec_of(st, s), st->dim), s});
            }
            select_into(st, cs, n, had + 1 < lcap(l) ? had + 1 : lcap(l), true, pl);
        }
    }
    free(st->up[slot]);
    st->up[slot] = NULL;
    st->level[slot] = -1;
    g->n--;
    if (g->entry == slot) { /* the highest remaining node takes over */
        g->entry = -1;
        g->top = -1;
        for (int i = 0; i < n_members; i++)
            if (members[i] != slot && st->level[members[i]] > g->top) g->entry = members[i], g->top = st->level[members[i]];
    }
}

int hnsw_search(hnsw_store *st, const hnsw_graph *g, const float *q, int ef, float *best) {
    if (g->entry < 0) return -1;
    if (ef < 1) ef = 1;
    if (ef > EF_MAX) ef = EF_MAX;
    cand ep = {hnsw_dot(q, vec_of(st, g->entry), st->dim), g->entry};
    for (int l = g->top; l > 0; l--) ep = greedy(st, q, ep, l);
    cand w[EF_MAX];
    search_layer(st, q, &ep, 1, ef, 0, w);
    if (best) *best = w[0].d;
    return w[0].s;
}
