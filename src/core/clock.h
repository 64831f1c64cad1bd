/* Clocks: monotonic nanoseconds for durations, and absolute CLOCK_REALTIME
 * deadlines for pthread_cond_timedwait. */
#ifndef RYOT_CORE_CLOCK_H
#define RYOT_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
static inline int64_t ryot_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CLOCK_MONOTONIC in seconds. */
static inline double ryot_now_s(void) { return (double)ryot_now_ns() / 1e9; }

/* The CLOCK_REALTIME instant ms milliseconds from now (a condvar deadline). */
static inline struct timespec ryot_deadline_ms(int64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

#endif
