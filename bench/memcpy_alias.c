/*
 * memcpy_alias: how long memcpy takes for a 64 KiB block (a full read) by
 * where the destination lies relative to the source modulo 4096, the
 * figure behind rd_loop_copied (core/rd.h). On the AMD EPYC VMs here a
 * destination 1-63 bytes past the source (4K aliasing under rep movsb)
 * copies some 15-18x slower than any other offset.
 *
 *   build/memcpy_alias [BYTES]     (default 65536; prints us per copy)
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 65536;
    if (n == 0 || n > (64u << 20)) {
        fprintf(stderr, "usage: memcpy_alias [BYTES] (1 to 64 MiB)\n");
        return 2;
    }
    char *src = aligned_alloc(4096, n + 8192), *dst = aligned_alloc(4096, n + 8192);
    if (!src || !dst) return 1;
    memset(src, 1, n + 8192);
    memset(dst, 2, n + 8192);
    int rounds = (int)(200u * 65536u / n) + 1;
    printf("memcpy of %zu bytes, destination past the source by (mod 4096): us per copy\n", n);
    for (int ahead = -16; ahead <= 80; ahead += 8) {
        size_t off = (size_t)((ahead + 4096) % 4096);
        memcpy(dst + off, src, n); /* warm */
        double t0 = now();
        for (int k = 0; k < rounds; k++) {
            memcpy(dst + off, src, n);
            __asm__ volatile("" ::"r"(dst) : "memory"); /* keep every copy */
        }
        printf("%5d: %8.2f\n", ahead, (now() - t0) / rounds * 1e6);
    }
    free(src);
    free(dst);
    return 0;
}
