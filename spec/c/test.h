/* test.h: a tiny test kit. Each test runs in a child process (libuv's
 * runner), so a crash fails that test alone and reports it by name. */
#ifndef RD_TEST_H
#define RD_TEST_H
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,  \
                    a_, b_);                                                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* A conn on one end of a non-blocking socketpair (memory zeroed first, as
 * its owner must), reading; the other end is returned in *peer. */
#define TEST_PAIR(loop, conn, peer)                                                                \
    do {                                                                                           \
        int sv_[2];                                                                                \
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv_), 0);                     \
        rd_addr_t none_;                                                                           \
        memset(&none_, 0, sizeof none_);                                                           \
        rd_conn_init((conn), (loop), sv_[0], &none_);                                              \
        *(peer) = sv_[1];                                                                          \
    } while (0)

#define TEST(name)                                                                                 \
    void test_##name(void);                                                                        \
    void test_##name(void)
#endif
