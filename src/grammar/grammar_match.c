/* The matcher: parse stacks, the lazily built byte DFA over stack sets, the
 * vocab trie and token masks.
 *
 * A stack is a hash-consed list of grammar positions: its top is a GE_CHAR
 * element to match next, the rest are return positions (an element after a
 * rule reference).  A reference that ends its alternative pushes nothing (a
 * tail call), so right recursion such as x* runs in constant stack depth and
 * loops back to the same state.  Stack 0 is the empty stack: the sentence is
 * complete.
 *
 * A DFA state is a sorted set of stack ids plus the bytes of a code point
 * still being read (a token may end inside a UTF-8 sequence).  While a
 * sequence is incomplete, the stacks are kept unadvanced, filtered to those
 * whose class has a code point the sequence can still become.  Transitions
 * are computed on first use and stored in a 256-entry row per state; the
 * mask walk is one table lookup per trie node.  The state count is bounded:
 * past STATE_CAP the DFA is rebuilt from the current state alone. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/grammar_impl.h"

#define STATE_CAP 4096  /* DFA states kept before a rebuild (1 KiB of transitions each) */
#define MASK_SLOTS 64   /* cached masks per matcher */
#define T_UNKNOWN 0     /* transition entries: 0 not computed, -1 dead, else state + 1 */
#define T_DEAD (-1)

/* ---------------------------------------------------------------- vocab */
typedef struct trie_node {
    uint32_t skip;    /* index after this node's subtree */
    uint32_t tok_off; /* tokens ending here: vocab->toks[tok_off .. + tok_n) */
    uint16_t tok_n;
    uint16_t depth; /* 1 for a first byte */
    uint8_t byte;
} trie_node;

struct grammar_vocab {
    int32_t n;
    uint32_t *off; /* token i's bytes: data[off[i] .. off[i + 1]) */
    uint8_t *data;
    trie_node *nodes;
    uint32_t n_nodes;
    int32_t *toks;
    int32_t *eog;
    int n_eog;
    uint32_t max_len;
};

static int cmp_token(const void *a, const void *b, void *ctx) {
    const grammar_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = v->off[x + 1] - v->off[x], ly = v->off[y + 1] - v->off[y];
    int c = memcmp(v->data + v->off[x], v->data + v->off[y], lx < ly ? lx : ly);
    if (c) return c;
    if (lx != ly) return lx < ly ? -1 : 1;
    return x < y ? -1 : 1;
}

static bool is_eog(const int32_t *eog, int n_eog, int32_t id) {
    for (int i = 0; i < n_eog; i++)
        if (eog[i] == id) return true;
    return false;
}

void grammar_vocab_free(grammar_vocab *v) {
    if (!v) return;
    free(v->off);
    free(v->data);
    free(v->nodes);
    free(v->toks);
    free(v->eog);
    free(v);
}

int32_t grammar_vocab_size(const grammar_vocab *v) { return v->n; }

ryot_status grammar_vocab_new(const char *const *bytes, const size_t *len, int32_t n, const int32_t *eog, int n_eog,
                              grammar_vocab **out, ryot_error *err) {
    *out = NULL;
    if (n <= 0 || n_eog < 0) return ryot_fail(err, RYOT_ERR_INVALID, "grammar vocab: %d tokens", (int)n);
    for (int i = 0; i < n_eog; i++)
        if (eog[i] < 0 || eog[i] >= n) return ryot_fail(err, RYOT_ERR_INVALID, "grammar vocab: eog id %d", (int)eog[i]);
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (len[i] > 0xFFFF) return ryot_fail(err, RYOT_ERR_INVALID, "grammar vocab: token %d too long", (int)i);
        total += is_eog(eog, n_eog, i) ? 0 : len[i];
    }
    grammar_vocab *v = calloc(1, sizeof *v);
    if (!v) return ryot_fail(err, RYOT_ERR_NOMEM, "grammar vocab: out of memory");
    v->n = n;
    v->n_eog = n_eog;
    v->off = malloc(((size_t)n + 1) * sizeof *v->off);
    v->data = malloc(total ? total : 1);
    v->eog = malloc((n_eog ? n_eog : 1) * sizeof *v->eog);
    int32_t *order = malloc((size_t)n * sizeof *order);
    /* at most one node per byte */
    v->nodes = malloc((total ? total : 1) * sizeof *v->nodes);
    v->toks = malloc((size_t)n * sizeof *v->toks);
    if (!v->off || !v->data || !v->eog || !order || !v->nodes || !v->toks) {
        free(order);
        grammar_vocab_free(v);
        return ryot_fail(err, RYOT_ERR_NOMEM, "grammar vocab: out of memory");
    }
    memcpy(v->eog, eog, n_eog * sizeof *eog);
    uint32_t pos = 0, n_order = 0;
    for (int32_t i = 0; i < n; i++) {
        v->off[i] = pos;
        if (is_eog(eog, n_eog, i) || !len[i]) continue;
        memcpy(v->data + pos, bytes[i], len[i]);
        pos += (uint32_t)len[i];
        order[n_order++] = i;
        if (len[i] > v->max_len) v->max_len = (uint32_t)len[i];
    }
    v->off[n] = pos;
    qsort_r(order, n_order, sizeof *order, cmp_token, v);
    /* Preorder trie from the sorted tokens: a token shares the nodes of its
     * common prefix with the previous one; nodes deeper than that prefix are
     * closed (their subtree ends here) before new ones open. */
    uint32_t *open = malloc((v->max_len + 1) * sizeof *open), n_toks = 0;
    if (!open) {
        free(order);
        grammar_vocab_free(v);
        return ryot_fail(err, RYOT_ERR_NOMEM, "grammar vocab: out of memory");
    }
    uint32_t depth = 0, prev_len = 0;
    const uint8_t *prev = NULL;
    for (uint32_t k = 0; k < n_order; k++) {
        int32_t id = order[k];
        const uint8_t *b = v->data + v->off[id];
        uint32_t l = v->off[id + 1] - v->off[id], common = 0;
        while (prev && common < l && common < prev_len && b[common] == prev[common]) common++;
        for (; depth > common; depth--) v->nodes[open[depth]].skip = v->n_nodes;
        for (; depth < l; depth++) {
            trie_node *nd = &v->nodes[v->n_nodes];
            *nd = (trie_node){.byte = b[depth], .depth = (uint16_t)(depth + 1), .tok_off = n_toks};
            open[depth + 1] = v->n_nodes++;
        }
        trie_node *end = &v->nodes[open[l]];
        if (!end->tok_n) end->tok_off = n_toks;
        end->tok_n++;
        v->toks[n_toks++] = id;
        prev = b, prev_len = l;
    }
    for (; depth > 0; depth--) v->nodes[open[depth]].skip = v->n_nodes;
    free(open);
    free(order);
    *out = v;
    return RYOT_OK;
}

/* ---------------------------------------------------------------- matcher */
typedef struct stk_node {
    uint32_t pos, parent; /* parent 0: the bottom */
} stk_node;

typedef struct dstate {
    uint32_t stk_off, n_stk; /* sorted stack ids in m->pool */
    uint32_t hash;
    uint8_t pend[3], n_pend, need; /* bytes of an unfinished code point, its length */
    bool accept;                   /* stack 0 present and no pending bytes */
    int32_t slot;                  /* mask cache slot or -1 */
} dstate;

struct grammar_matcher {
    const grammar *g;
    const grammar_vocab *v;
    stk_node *nodes; /* [0] is the empty stack */
    uint32_t n_nodes, cap_nodes;
    uint32_t *node_ht; /* open addressing: node id, 0 empty */
    uint32_t ht_cap;
    dstate *states;
    uint32_t n_states, cap_states;
    int32_t *next; /* 256 per state */
    uint32_t next_states; /* rows allocated */
    uint32_t *pool;
    uint32_t n_pool, cap_pool;
    uint32_t *state_ht; /* state id + 1, 0 empty */
    uint32_t sht_cap;
    uint32_t cur;
    bool finished;
    /* scratch for one transition */
    uint32_t *set;
    uint32_t n_set, cap_set;
    uint64_t *seen; /* (pos, parent) pairs visited by expand, open addressing */
    uint32_t seen_cap, n_seen;
    uint64_t *work; /* expand's worklist of (pos, parent) */
    uint32_t cap_work;
    /* mask cache */
    uint32_t *masks; /* MASK_SLOTS * words */
    int32_t slot_owner[MASK_SLOTS];
    uint32_t clock;
    uint32_t words;
    uint32_t *walk; /* state per trie depth */
    grammar_stats stats;
    bool oom;
};

static uint32_t mix32(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (uint32_t)x;
}

static bool grow(void **p, uint32_t *cap, uint32_t need, size_t elem) {
    if (need <= *cap) return true;
    uint32_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

static bool node_rehash(grammar_matcher *m, uint32_t cap) {
    uint32_t *ht = calloc(cap, sizeof *ht);
    if (!ht) return false;
    for (uint32_t id = 1; id < m->n_nodes; id++) {
        uint32_t h = mix32((uint64_t)m->nodes[id].pos << 32 | m->nodes[id].parent) & (cap - 1);
        while (ht[h]) h = (h + 1) & (cap - 1);
        ht[h] = id;
    }
    free(m->node_ht);
    m->node_ht = ht;
    m->ht_cap = cap;
    return true;
}

/* The stack (pos, parent), created on first use; 0 when out of memory. */
static uint32_t node_intern(grammar_matcher *m, uint32_t pos, uint32_t parent) {
    if (2 * (m->n_nodes + 1) > m->ht_cap && !node_rehash(m, m->ht_cap * 2)) return 0;
    uint32_t h = mix32((uint64_t)pos << 32 | parent) & (m->ht_cap - 1);
    for (; m->node_ht[h]; h = (h + 1) & (m->ht_cap - 1)) {
        const stk_node *nd = &m->nodes[m->node_ht[h]];
        if (nd->pos == pos && nd->parent == parent) return m->node_ht[h];
    }
    if (!grow((void **)&m->nodes, &m->cap_nodes, m->n_nodes + 1, sizeof *m->nodes)) return 0;
    m->nodes[m->n_nodes] = (stk_node){pos, parent};
    m->node_ht[h] = m->n_nodes;
    return m->n_nodes++;
}

static bool set_add(grammar_matcher *m, uint32_t id) {
    if (!grow((void **)&m->set, &m->cap_set, m->n_set + 1, sizeof *m->set)) return false;
    m->set[m->n_set++] = id;
    return true;
}

/* Whether (pos, parent) was expanded already in this transition. */
static bool seen_test_add(grammar_matcher *m, uint32_t pos, uint32_t parent, bool *fail) {
    if (2 * (m->n_seen + 1) > m->seen_cap) {
        uint32_t cap = m->seen_cap ? m->seen_cap * 2 : 256;
        uint64_t *s = malloc(cap * sizeof *s);
        if (!s) return *fail = true;
        memset(s, 0xFF, cap * sizeof *s);
        for (uint32_t i = 0; i < m->seen_cap; i++) {
            if (m->seen[i] == UINT64_MAX) continue;
            uint32_t h = mix32(m->seen[i]) & (cap - 1);
            while (s[h] != UINT64_MAX) h = (h + 1) & (cap - 1);
            s[h] = m->seen[i];
        }
        free(m->seen);
        m->seen = s;
        m->seen_cap = cap;
    }
    uint64_t key = (uint64_t)pos << 32 | parent;
    uint32_t h = mix32(key) & (m->seen_cap - 1);
    for (; m->seen[h] != UINT64_MAX; h = (h + 1) & (m->seen_cap - 1))
        if (m->seen[h] == key) return true;
    m->seen[h] = key;
    m->n_seen++;
    return false;
}

static void seen_clear(grammar_matcher *m) {
    if (m->n_seen) memset(m->seen, 0xFF, m->seen_cap * sizeof *m->seen);
    m->n_seen = 0;
}

/* Adds to m->set every stack whose top is a GE_CHAR, reachable from position
 * pos with continuation parent without consuming input.  A worklist, not
 * recursion: nullable chains (x{0,n} of a nullable x) run thousands deep.
 * Terminates because (pos, parent) pairs are visited once. */
static bool expand(grammar_matcher *m, uint32_t pos, uint32_t parent) {
    const grammar *g = m->g;
    uint32_t n = 0;
    bool fail = false;
#define PUSH(p_, q_)                                                                                     \
    do {                                                                                                 \
        if (!grow((void **)&m->work, &m->cap_work, n + 1, sizeof *m->work)) return false;                \
        m->work[n++] = (uint64_t)(p_) << 32 | (q_);                                                      \
    } while (0)
    PUSH(pos, parent);
    while (n) {
        uint64_t w = m->work[--n];
        pos = (uint32_t)(w >> 32), parent = (uint32_t)w;
        if (seen_test_add(m, pos, parent, &fail)) continue;
        if (fail) return false;
        const gram_elem *e = &g->elems[pos];
        if (e->kind == GE_CHAR) {
            uint32_t id = node_intern(m, pos, parent);
            if (!id || !set_add(m, id)) return false;
        } else if (e->kind == GE_END) {
            if (!parent) {
                if (!set_add(m, 0)) return false;
            } else {
                PUSH(m->nodes[parent].pos, m->nodes[parent].parent);
            }
        } else {
            uint32_t cont = parent;
            if (g->elems[pos + 1].kind != GE_END && !(cont = node_intern(m, pos + 1, parent))) return false;
            for (uint32_t a = g->rule_alt[e->arg]; a < g->rule_alt[e->arg + 1]; a++)
                if (!g->alt_dead[a]) PUSH(g->alt_start[a], cont);
        }
    }
#undef PUSH
    return true;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t state_hash(const uint32_t *stk, uint32_t n, const uint8_t *pend, uint8_t n_pend) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n_pend;
    for (uint32_t i = 0; i < n; i++) h = (h ^ stk[i]) * 0x100000001b3ull;
    for (uint8_t i = 0; i < n_pend; i++) h = (h ^ pend[i]) * 0x100000001b3ull;
    return mix32(h);
}

static bool state_rehash(grammar_matcher *m, uint32_t cap) {
    uint32_t *ht = calloc(cap, sizeof *ht);
    if (!ht) return false;
    for (uint32_t id = 0; id < m->n_states; id++) {
        uint32_t h = m->states[id].hash & (cap - 1);
        while (ht[h]) h = (h + 1) & (cap - 1);
        ht[h] = id + 1;
    }
    free(m->state_ht);
    m->state_ht = ht;
    m->sht_cap = cap;
    return true;
}

/* The state for m->set (sorted and deduplicated here) and the pending bytes;
 * -1 when out of memory. */
static int64_t state_intern(grammar_matcher *m, const uint8_t *pend, uint8_t n_pend, uint8_t need) {
    qsort(m->set, m->n_set, sizeof *m->set, cmp_u32);
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->n_set; i++)
        if (!n || m->set[n - 1] != m->set[i]) m->set[n++] = m->set[i];
    m->n_set = n;
    uint32_t hash = state_hash(m->set, n, pend, n_pend);
    if (2 * (m->n_states + 1) > m->sht_cap && !state_rehash(m, m->sht_cap ? m->sht_cap * 2 : 256)) return -1;
    uint32_t h = hash & (m->sht_cap - 1);
    for (; m->state_ht[h]; h = (h + 1) & (m->sht_cap - 1)) {
        const dstate *s = &m->states[m->state_ht[h] - 1];
        if (s->hash == hash && s->n_stk == n && s->n_pend == n_pend && !memcmp(s->pend, pend, n_pend) &&
            !memcmp(m->pool + s->stk_off, m->set, n * sizeof *m->set))
            return m->state_ht[h] - 1;
    }
    uint32_t id = m->n_states;
    if (!grow((void **)&m->states, &m->cap_states, id + 1, sizeof *m->states) ||
        !grow((void **)&m->pool, &m->cap_pool, m->n_pool + n, sizeof *m->pool))
        return -1;
    if (m->cap_states > m->next_states) {
        /* transitions: one row per state, as many rows as the state array */
        int32_t *nx = realloc(m->next, (size_t)m->cap_states * 256 * sizeof *nx);
        if (!nx) return -1;
        m->next = nx;
        m->next_states = m->cap_states;
    }
    memset(m->next + (size_t)id * 256, 0, 256 * sizeof *m->next);
    dstate *s = &m->states[id];
    *s = (dstate){.stk_off = m->n_pool, .n_stk = n, .hash = hash, .n_pend = n_pend, .need = need, .slot = -1};
    if (n_pend) memcpy(s->pend, pend, n_pend);
    s->accept = !n_pend && n && m->set[0] == 0;
    memcpy(m->pool + m->n_pool, m->set, n * sizeof *m->set);
    m->n_pool += n;
    m->state_ht[h] = id + 1;
    m->n_states++;
    m->stats.states++;
    return id;
}

/* Code points an n-byte UTF-8 sequence starting with b[0..k) can become. */
static void utf8_span(const uint8_t *b, unsigned k, unsigned n, uint32_t *lo, uint32_t *hi) {
    static const uint8_t lead_bits[5] = {0, 0, 0x1F, 0x0F, 0x07};
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    uint32_t v = b[0] & lead_bits[n];
    for (unsigned i = 1; i < k; i++) v = v << 6 | (b[i] & 0x3F);
    *lo = v << (6 * (n - k));
    *hi = *lo | ((1u << (6 * (n - k))) - 1);
    if (*lo < min_cp[n]) *lo = min_cp[n];
    if (*hi > 0x10FFFF) *hi = 0x10FFFF;
    if (n == 3 && k == 1 && b[0] == 0xED) *hi = 0xD7FF; /* no surrogates */
}

/* The state after byte b from state s: id, T_DEAD, or -2 when out of memory. */
static int64_t transition(grammar_matcher *m, uint32_t sid, uint8_t b) {
    const dstate s = m->states[sid];
    uint8_t pend[4];
    memcpy(pend, s.pend, s.n_pend);
    unsigned n_pend = s.n_pend, need = s.need;
    if (!n_pend) {
        if (b < 0x80) need = 1;
        else if (b >= 0xC2 && b <= 0xDF) need = 2;
        else if (b >= 0xE0 && b <= 0xEF) need = 3;
        else if (b >= 0xF0 && b <= 0xF4) need = 4;
        else return T_DEAD;
    } else {
        if ((b & 0xC0) != 0x80) return T_DEAD;
        if (n_pend == 1) {
            uint8_t l = pend[0];
            if ((l == 0xE0 && b < 0xA0) || (l == 0xED && b > 0x9F) || (l == 0xF0 && b < 0x90) || (l == 0xF4 && b > 0x8F))
                return T_DEAD;
        }
    }
    pend[n_pend++] = b;
    const grammar *g = m->g;
    m->n_set = 0;
    seen_clear(m);
    uint32_t lo, hi;
    if (n_pend == need) {
        utf8_span(pend, n_pend, need, &lo, &hi);
        if (need == 1) lo = hi = b;
        n_pend = 0;
    } else {
        utf8_span(pend, n_pend, need, &lo, &hi);
    }
    for (uint32_t i = 0; i < s.n_stk; i++) {
        uint32_t id = m->pool[s.stk_off + i];
        if (!id) continue;
        const stk_node nd = m->nodes[id];
        if (!grammar_class_hits(g, g->elems[nd.pos].arg, lo, hi)) continue;
        bool ok = n_pend ? set_add(m, id) : expand(m, nd.pos + 1, nd.parent);
        if (!ok) return -2;
    }
    if (!m->n_set) return T_DEAD;
    int64_t t = state_intern(m, pend, (uint8_t)n_pend, (uint8_t)(n_pend ? need : 0));
    return t < 0 ? -2 : t;
}

/* next[s][b] computed on demand: state, T_DEAD, or -2 when out of memory. */
static inline int64_t step(grammar_matcher *m, uint32_t s, uint8_t b) {
    int32_t t = m->next[(size_t)s * 256 + b];
    if (t != T_UNKNOWN) return t < 0 ? T_DEAD : t - 1;
    int64_t r = transition(m, s, b);
    if (r == -2) return -2;
    m->next[(size_t)s * 256 + b] = r < 0 ? T_DEAD : (int32_t)r + 1;
    return r;
}

/* Drops every state but the current one (and the stacks it uses) when the
 * DFA has grown past STATE_CAP. */
static bool maybe_rebuild(grammar_matcher *m) {
    if (m->n_states < STATE_CAP) return true;
    const dstate cur = m->states[m->cur];
    /* each stack of the current state as its list of positions, bottom last */
    uint32_t *chains = NULL, n_chains = 0, cap_chains = 0;
    for (uint32_t i = 0; i < cur.n_stk; i++) {
        for (uint32_t id = m->pool[cur.stk_off + i]; id; id = m->nodes[id].parent)
            if (!grow((void **)&chains, &cap_chains, n_chains + 1, sizeof *chains)) return free(chains), false;
            else chains[n_chains++] = m->nodes[id].pos;
        if (!grow((void **)&chains, &cap_chains, n_chains + 1, sizeof *chains)) return free(chains), false;
        chains[n_chains++] = UINT32_MAX;
    }
    m->n_nodes = 1;
    memset(m->node_ht, 0, m->ht_cap * sizeof *m->node_ht);
    m->n_states = 0;
    m->n_pool = 0;
    memset(m->state_ht, 0, m->sht_cap * sizeof *m->state_ht);
    for (int i = 0; i < MASK_SLOTS; i++) m->slot_owner[i] = -1;
    m->n_set = 0;
    for (uint32_t k = 0; k < n_chains;) {
        uint32_t end = k;
        while (chains[end] != UINT32_MAX) end++;
        uint32_t id = 0;
        for (uint32_t j = end; j > k; j--)
            if (!(id = node_intern(m, chains[j - 1], id))) return free(chains), false;
        if (!set_add(m, id)) return free(chains), false;
        k = end + 1;
    }
    free(chains);
    int64_t s = state_intern(m, cur.pend, cur.n_pend, cur.need);
    if (s < 0) return false;
    m->cur = (uint32_t)s;
    m->stats.flushes++;
    return true;
}

void grammar_matcher_free(grammar_matcher *m) {
    if (!m) return;
    free(m->nodes);
    free(m->node_ht);
    free(m->states);
    free(m->next);
    free(m->pool);
    free(m->state_ht);
    free(m->set);
    free(m->seen);
    free(m->work);
    free(m->masks);
    free(m->walk);
    free(m);
}

ryot_status grammar_matcher_new(const grammar *g, const grammar_vocab *v, grammar_matcher **out, ryot_error *err) {
    *out = NULL;
    grammar_matcher *m = calloc(1, sizeof *m);
    if (!m) return ryot_fail(err, RYOT_ERR_NOMEM, "grammar matcher: out of memory");
    m->g = g;
    m->v = v;
    m->words = ((uint32_t)v->n + 31) / 32;
    m->masks = malloc((size_t)MASK_SLOTS * m->words * sizeof *m->masks);
    m->walk = malloc((v->max_len + 1) * sizeof *m->walk);
    for (int i = 0; i < MASK_SLOTS; i++) m->slot_owner[i] = -1;
    bool ok = m->masks && m->walk && grow((void **)&m->nodes, &m->cap_nodes, 1, sizeof *m->nodes) &&
              node_rehash(m, 1024);
    if (ok) {
        m->nodes[0] = (stk_node){UINT32_MAX, 0};
        m->n_nodes = 1;
        for (uint32_t a = g->rule_alt[g->root]; ok && a < g->rule_alt[g->root + 1]; a++)
            ok = g->alt_dead[a] || expand(m, g->alt_start[a], 0);
    }
    int64_t s = ok ? state_intern(m, (const uint8_t[1]){0}, 0, 0) : -1;
    if (s < 0) {
        grammar_matcher_free(m);
        return ryot_fail(err, RYOT_ERR_NOMEM, "grammar matcher: out of memory");
    }
    m->cur = (uint32_t)s;
    *out = m;
    return RYOT_OK;
}

/* The state after bytes s[0..n) from the current one: id, T_DEAD, or -2. */
static int64_t run_bytes(grammar_matcher *m, const char *s, size_t n) {
    if (m->finished) return T_DEAD;
    if (!maybe_rebuild(m)) return -2;
    int64_t st = m->cur;
    for (size_t i = 0; i < n && st >= 0; i++) st = step(m, (uint32_t)st, (uint8_t)s[i]);
    return st;
}

bool grammar_matcher_accepts_bytes(grammar_matcher *m, const char *s, size_t n) { return run_bytes(m, s, n) >= 0; }

bool grammar_matcher_accept_bytes(grammar_matcher *m, const char *s, size_t n) {
    int64_t st = run_bytes(m, s, n);
    if (st < 0) return false;
    m->cur = (uint32_t)st;
    return true;
}

bool grammar_matcher_accept_token(grammar_matcher *m, int32_t id) {
    const grammar_vocab *v = m->v;
    if (id < 0 || id >= v->n || m->finished) return false;
    if (is_eog(v->eog, v->n_eog, id)) {
        if (!m->states[m->cur].accept) return false;
        m->finished = true;
        return true;
    }
    uint32_t l = v->off[id + 1] - v->off[id];
    return l && grammar_matcher_accept_bytes(m, (const char *)v->data + v->off[id], l);
}

bool grammar_matcher_is_complete(const grammar_matcher *m) { return m->finished || m->states[m->cur].accept; }

bool grammar_matcher_is_finished(grammar_matcher *m) {
    const dstate *s = &m->states[m->cur];
    return m->finished || (s->accept && s->n_stk == 1);
}

void grammar_matcher_stats(const grammar_matcher *m, grammar_stats *out) { *out = m->stats; }

/* The trie walk: one lookup per node, a rejected byte skips its subtree. */
static ryot_status walk(grammar_matcher *m, uint32_t *bits) {
    const grammar_vocab *v = m->v;
    const trie_node *nodes = v->nodes;
    memset(bits, 0, m->words * sizeof *bits);
    m->walk[0] = m->cur;
    for (uint32_t i = 0; i < v->n_nodes;) {
        const trie_node *nd = &nodes[i];
        uint32_t from = m->walk[nd->depth - 1];
        int32_t t = m->next[(size_t)from * 256 + nd->byte];
        if (t == T_UNKNOWN) {
            int64_t r = step(m, from, nd->byte);
            if (r == -2) return RYOT_ERR_NOMEM;
            t = r < 0 ? T_DEAD : (int32_t)r + 1;
        }
        if (t < 0) {
            i = nd->skip;
            continue;
        }
        m->walk[nd->depth] = (uint32_t)t - 1;
        for (uint32_t k = 0; k < nd->tok_n; k++) {
            int32_t id = v->toks[nd->tok_off + k];
            bits[id >> 5] |= 1u << (id & 31);
        }
        i++;
    }
    if (m->states[m->cur].accept)
        for (int k = 0; k < v->n_eog; k++) bits[v->eog[k] >> 5] |= 1u << (v->eog[k] & 31);
    return RYOT_OK;
}

ryot_status grammar_mask(grammar_matcher *m, uint32_t *bits) {
    m->stats.masks++;
    if (m->finished) {
        memset(bits, 0, m->words * sizeof *bits);
        return RYOT_OK;
    }
    if (!maybe_rebuild(m)) return RYOT_ERR_NOMEM;
    dstate *s = &m->states[m->cur];
    size_t row = m->words;
    if (s->slot >= 0) {
        m->stats.cache_hits++;
        memcpy(bits, m->masks + (size_t)s->slot * row, row * sizeof *bits);
        return RYOT_OK;
    }
    ryot_status st = walk(m, bits);
    if (st != RYOT_OK) return st;
    /* round-robin eviction: masks are recomputed cheaply enough that
     * recency tracking is not worth a per-hit cost */
    uint32_t slot = m->clock++ % MASK_SLOTS;
    if (m->slot_owner[slot] >= 0 && (uint32_t)m->slot_owner[slot] < m->n_states)
        m->states[m->slot_owner[slot]].slot = -1;
    m->slot_owner[slot] = (int32_t)m->cur;
    m->states[m->cur].slot = (int32_t)slot;
    memcpy(m->masks + (size_t)slot * row, bits, row * sizeof *bits);
    return RYOT_OK;
}

void grammar_mask_apply(const uint32_t *bits, float *logits, int32_t n) {
    for (int32_t w = 0; w < (n + 31) / 32; w++) {
        const uint32_t m = bits[w];
        if (m == UINT32_MAX) continue;
        const int32_t end = w * 32 + 32 < n ? w * 32 + 32 : n;
        for (int32_t t = w * 32; t < end; t++)
            if (!(m >> (t & 31) & 1)) logits[t] = -INFINITY;
    }
}
