/* Request coalescing: identical cacheable requests in flight at the same
 * time share one generation.  The first (the leader) submits the job and
 * opens a flight under the request's cache key; requests with the same key
 * that arrive while it runs join it instead of generating.  The flight keeps
 * every choice's whole text, so each reader (leader or follower, streamed or
 * not) reads from its own cursor; one reader at a time drains the job, the
 * others wait on the flight and are woken by it.  The job is cancelled only
 * when the last reader leaves before it ends, so a leader that disconnects
 * does not cut its followers off.
 *
 * Flights carry no log-probabilities: requests asking for them are never
 * cacheable, so never coalesced. */
#ifndef RYOT_SERVER_FLIGHT_H
#define RYOT_SERVER_FLIGHT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "cache/key.h"
#include "sched/runner.h"

typedef struct flight flight;

#define FLIGHT_BUCKETS 256

typedef struct flight_table {
    pthread_mutex_t mu;
    flight *buckets[FLIGHT_BUCKETS];
    unsigned long long coalesced; /* requests that joined a flight */
} flight_table;

void flight_table_init(flight_table *t);
void flight_table_destroy(flight_table *t); /* every flight must have been left */

/* Joins the running flight of key: the flight (a reader reference held), or
 * NULL when there is none or its job is done. */
flight *flight_join(flight_table *t, const cache_key *key);
/* Opens a flight over a submitted job (a job reference is taken); NULL when
 * out of memory.  When another live flight of key opened meanwhile (two
 * leaders raced past flight_join), that one is joined instead and returned
 * with *joined set: the caller cancels its own job and reads the other's. */
flight *flight_open(flight_table *t, const cache_key *key, sched_job *job, bool *joined);
/* Drops a reader: the last one cancels a job that has not ended. */
void flight_leave(flight_table *t, flight *f);

sched_job *flight_job(const flight *f);
int flight_n_choices(const flight *f);

/* Appends choice i's text past *cursor to t->text (advancing the cursor) and
 * sets t->finished / finish / n_gen; true when anything was new or the choice
 * is finished (like sched_job_take with timeout 0). */
bool flight_take(flight *f, int i, size_t *cursor, sched_take *t);
/* Waits up to timeout_ms for text past the cursors (cursors[i] per choice)
 * or the end of the job. */
void flight_wait(flight *f, const size_t *cursors, int timeout_ms);
/* After the job ended well: true exactly once (the caller stores the
 * answer), with choice texts and finish reasons readable through
 * flight_text until flight_leave. */
bool flight_claim_store(flight *f);
const ryot_buf *flight_text(const flight *f, int i, sched_finish *finish);

#endif
