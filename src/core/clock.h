/* Clocks: monotonic time for durations, the calling thread's CPU time, and
 * absolute CLOCK_REALTIME deadlines for pthread_cond_timedwait.  The one
 * place the library and the CLI read a clock (seeds drawn from the wall
 * clock in sampler.c and openai.c want entropy, not a duration). */
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

/* CLOCK_MONOTONIC in seconds and in milliseconds. */
static inline double ryot_now_s(void) { return (double)ryot_now_ns() / 1e9; }
static inline double ryot_now_ms(void) { return (double)ryot_now_ns() / 1e6; }

/* CLOCK_REALTIME in milliseconds since the epoch: timestamps shared with
 * other processes and machines (task claims, API objects' created_at). */
static inline int64_t ryot_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CPU time consumed by the calling thread, in seconds. */
static inline double ryot_thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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
