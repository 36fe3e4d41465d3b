/* Test-only LD_PRELOAD shim (tests/consistency.rs, skewed clocks): shifts the wall clock
 * (CLOCK_REALTIME through clock_gettime, gettimeofday and time) by the number of
 * milliseconds written in the file named by $RAFTKV_FAKE_TIME_FILE (may be negative; a
 * missing or empty file means no shift). The file is re-read at most every 20 ms, so a
 * test can move one node's clock while it runs. CLOCK_MONOTONIC and every other clock
 * are left alone. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime(void) {
    static clock_gettime_fn real;
    if (!real)
        real = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    return real;
}

/* The shift in ms, from the file (cached for 20 ms of monotonic time). */
static long long shift_ms(void) {
    static long long cached;
    static long long read_at_ms = -1000;
    struct timespec mono;
    if (real_clock_gettime()(CLOCK_MONOTONIC, &mono) != 0)
        return cached;
    long long now_ms = (long long)mono.tv_sec * 1000 + mono.tv_nsec / 1000000;
    if (now_ms - read_at_ms < 20)
        return cached;
    read_at_ms = now_ms;
    const char *path = getenv("RAFTKV_FAKE_TIME_FILE");
    long long v = 0;
    if (path != NULL) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            if (fscanf(f, "%lld", &v) != 1)
                v = 0;
            fclose(f);
        }
    }
    cached = v;
    return cached;
}

static void shift(struct timespec *ts) {
    long long ns = (long long)ts->tv_nsec + (shift_ms() % 1000) * 1000000;
    long long s = (long long)ts->tv_sec + shift_ms() / 1000;
    while (ns < 0) {
        ns += 1000000000;
        s -= 1;
    }
    while (ns >= 1000000000) {
        ns -= 1000000000;
        s += 1;
    }
    ts->tv_sec = (time_t)s;
    ts->tv_nsec = (long)ns;
}

int clock_gettime(clockid_t clk, struct timespec *ts) {
    int r = real_clock_gettime()(clk, ts);
    if (r == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE))
        shift(ts);
    return r;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    int r = real_clock_gettime()(CLOCK_REALTIME, &ts);
    (void)tz;
    if (r != 0)
        return r;
    shift(&ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    if (real_clock_gettime()(CLOCK_REALTIME, &ts) != 0)
        return (time_t)-1;
    shift(&ts);
    if (out != NULL)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
