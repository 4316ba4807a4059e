/* tick_baseline.c: the machine's own wake-up jitter for a 10 Hz tick, with
 * nothing but ppoll (the same sleep and clock as examples/mud/mud.c): what
 * the MUD's tick jitter (bench/embed.sh) is to be compared with.
 *   tick_baseline [TICKS]   (default 200) */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200;
    if (n < 1) n = 1;
    double *j = calloc((size_t)n, sizeof *j);
    if (!j) return 1;
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    double next = now() + 0.1;
    for (int i = 0; i < n; i++) {
        double w = next - now();
        if (w < 0) w = 0;
        struct timespec ts = {(time_t)w, (long)((w - (double)(time_t)w) * 1e9)};
        ppoll(NULL, 0, &ts, NULL);
        j[i] = now() - next;
        next += 0.1;
    }
    qsort(j, (size_t)n, sizeof *j, cmp);
    printf("ticks %d jitter p50 %.3f ms p99 %.3f ms max %.3f ms (bare ppoll)\n", n, j[n / 2] * 1e3,
           j[(int)(n * 0.99)] * 1e3, j[n - 1] * 1e3);
    free(j);
    return 0;
}
