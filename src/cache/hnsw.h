/* A hierarchical navigable small-world graph (Malkov & Yashunin, 2016) over
 * unit vectors, for the semantic cache's large contexts (cache/semantic.h).
 *
 * The vectors and the links live in an hnsw_store of `cap` slots shared by
 * any number of graphs; each slot belongs to at most one graph.  A graph is
 * its entry point, its top layer and its size; the caller (the semantic
 * index) owns the slots and the vectors (row s of vec is slot s's vector)
 * and keeps, per graph, the list of its member slots, which removal scans
 * for links into the removed node.
 *
 * Similarity is the dot product (cosine for unit vectors).  Layer 0 keeps up
 * to 2*HNSW_M neighbours per node, upper layers HNSW_M; neighbours are chosen
 * by the paper's heuristic (a candidate joins when it is closer to the node
 * than to every neighbour already chosen), which keeps the graph navigable
 * across clusters.  Removal is a real one, not a tombstone: every node that
 * linked to the removed node drops the link and refills its list from its
 * own and the removed node's neighbours, so a slot is free for reuse at once
 * and the graph never needs a rebuild.  Not thread-safe: the caller locks. */
#ifndef RYOT_CACHE_HNSW_H
#define RYOT_CACHE_HNSW_H

#include <stdint.h>

enum {
    HNSW_M = 12,         /* neighbours per node on the upper layers (2*M on layer 0) */
    HNSW_EF_BUILD = 64,  /* beam width while inserting */
    HNSW_EF_SEARCH = 64, /* beam width of a search (the caller may pass another) */
    HNSW_MAX_LEVEL = 12,
};

typedef struct hnsw_store hnsw_store;

typedef struct hnsw_graph {
    int entry; /* slot of the entry point; -1: empty */
    int top;   /* the entry point's layer */
    int n;     /* nodes */
} hnsw_graph;

#define HNSW_GRAPH_EMPTY ((hnsw_graph){.entry = -1, .top = -1, .n = 0})

/* cap slots of dim floats at vec (not copied; must outlive the store).
 * NULL when out of memory. */
hnsw_store *hnsw_store_new(int cap, int dim, const float *vec);
void hnsw_store_free(hnsw_store *st);

/* Adds slot (its vector already in place) to g; rng: the caller's state for
 * the level draw.  0, or -1 when out of memory (g unchanged). */
int hnsw_insert(hnsw_store *st, hnsw_graph *g, int slot, uint64_t *rng);
/* Removes slot from g; members[0..n_members): g's slots (slot may be among
 * them; it is skipped). */
void hnsw_remove(hnsw_store *st, hnsw_graph *g, int slot, const int *members, int n_members);
/* The slot of g most similar to q found with beam width ef (*best: its dot
 * product), or -1 when g is empty. */
int hnsw_search(hnsw_store *st, const hnsw_graph *g, const float *q, int ef, float *best);

/* Dot product of n floats (8 independent sums). */
float hnsw_dot(const float *a, const float *b, int n);

#endif
