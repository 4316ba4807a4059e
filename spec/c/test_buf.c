/* test_buf.c: the output queue and its chunk pool. */
#include <errno.h>
#include <string.h>

#include "rd.h"
#include "test.h"

static size_t iov_total(const rd_buf_t *b, char *out)
{
    struct iovec iov[64];
    int n = rd_buf_iov(b, iov, 64);
    size_t t = 0;
    for (int i = 0; i < n; i++) {
        memcpy(out + t, iov[i].iov_base, iov[i].iov_len);
        t += iov[i].iov_len;
    }
    return t;
}

TEST(buf_empty)
{
    rd_buf_t b;
    rd_buf_init(&b, NULL);
    struct iovec iov[4];
    CHECK_EQ(rd_buf_iov(&b, iov, 4), 0);
    CHECK_EQ(b.size, 0);
    CHECK_EQ(rd_buf_append(&b, "", 0), 0);
    CHECK_EQ(b.size, 0);
    rd_buf_consume(&b, 0);
    rd_buf_clear(&b);
}

TEST(buf_append_small_coalesces)
{
    rd_buf_t b;
    rd_buf_init(&b, NULL);
    CHECK_EQ(rd_buf_append(&b, "Ugly.", 5), 0);
    CHECK_EQ(rd_buf_append(&b, "Implicit.", 9), 0);
    struct iovec iov[4];
    CHECK_EQ(rd_buf_iov(&b, iov, 4), 1); /* one chunk: one iovec */
    char out[32];
    CHECK_EQ(iov_total(&b, out), 14);
    CHECK(memcmp(out, "Ugly.Implicit.", 14) == 0);
    rd_buf_clear(&b);
    CHECK_EQ(b.size, 0);
}

TEST(buf_large_write_own_chunk)
{
    rd_buf_t b;
    rd_buf_init(&b, NULL);
    size_t big = RD_CHUNK_SIZE * 3 + 7;
    char *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)(i * 31);
    CHECK_EQ(rd_buf_append(&b, "x", 1), 0);
    CHECK_EQ(rd_buf_append(&b, data, big), 0);
    CHECK_EQ(b.size, big + 1);
    struct iovec iov[4];
    CHECK_EQ(rd_buf_iov(&b, iov, 4), 2);
    CHECK_EQ(iov[1].iov_len, big);
    CHECK(memcmp(iov[1].iov_base, data, big) == 0);
    rd_buf_clear(&b);
    free(data);
}

TEST(buf_consume_partial_and_across_chunks)
{
    rd_buf_t b;
    rd_buf_init(&b, NULL);
    char *a = malloc(RD_CHUNK_SIZE);
    memset(a, 'a', RD_CHUNK_SIZE);
    CHECK_EQ(rd_buf_append(&b, a, RD_CHUNK_SIZE), 0); /* fills chunk 1 */
    CHECK_EQ(rd_buf_append(&b, "bcdef", 5), 0);       /* chunk 2 */
    rd_buf_consume(&b, 10);
    CHECK_EQ(b.size, RD_CHUNK_SIZE - 10 + 5);
    rd_buf_consume(&b, RD_CHUNK_SIZE - 10 + 2); /* across the boundary */
    CHECK_EQ(b.size, 3);
    char out[8];
    CHECK_EQ(iov_total(&b, out), 3);
    CHECK(memcmp(out, "def", 3) == 0);
    rd_buf_consume(&b, 3);
    CHECK(b.head == NULL && b.tail == NULL);
    CHECK_EQ(rd_buf_append(&b, "z", 1), 0); /* usable again after draining */
    CHECK_EQ(b.size, 1);
    rd_buf_clear(&b);
    free(a);
}

TEST(buf_pool_reuses_chunks)
{
    rd_pool_t pool;
    rd_pool_init(&pool, 2);
    rd_buf_t b;
    rd_buf_init(&b, &pool);
    CHECK_EQ(rd_buf_append(&b, "q", 1), 0);
    rd_chunk_t *first = b.head;
    rd_buf_consume(&b, 1);
    CHECK_EQ(pool.nfree, 1);
    CHECK_EQ(rd_buf_append(&b, "r", 1), 0);
    CHECK(b.head == first); /* the same memory: no allocation per request */
    CHECK_EQ(pool.nfree, 0);
    /* a pool never holds more than max, and never oversized chunks */
    char *big = calloc(1, RD_CHUNK_SIZE * 2);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(rd_buf_append(&b, big, RD_CHUNK_SIZE), 0);
    CHECK_EQ(rd_buf_append(&b, big, RD_CHUNK_SIZE * 2), 0);
    rd_buf_clear(&b);
    CHECK_EQ(pool.nfree, 2);
    rd_pool_destroy(&pool);
    CHECK_EQ(pool.nfree, 0);
    free(big);
}

TEST(buf_iov_limit)
{
    rd_buf_t b;
    rd_buf_init(&b, NULL);
    char *a = calloc(1, RD_CHUNK_SIZE);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(rd_buf_append(&b, a, RD_CHUNK_SIZE), 0);
    struct iovec iov[3];
    CHECK_EQ(rd_buf_iov(&b, iov, 3), 3);
    rd_buf_clear(&b);
    free(a);
}

TEST(addr_parse_v4_v6_and_bad)
{
    rd_addr_t a;
    char host[64];
    CHECK_EQ(rd_addr_parse(&a, "127.0.0.1", 1060), 0);
    CHECK_EQ(rd_addr_host(&a, host, sizeof host), 1060);
    CHECK(strcmp(host, "127.0.0.1") == 0);
    CHECK_EQ(rd_addr_parse(&a, "::1", 80), 0);
    CHECK_EQ(a.sa.sa_family, AF_INET6);
    CHECK_EQ(rd_addr_parse(&a, "[::1]", 80), 0);
    CHECK_EQ(rd_addr_host(&a, host, sizeof host), 80);
    CHECK(strcmp(host, "::1") == 0);
    CHECK_EQ(rd_addr_parse(&a, "localhost", 80), RD_EBADADDR);
    CHECK_EQ(rd_addr_parse(&a, "127.0.0.1", 70000), -EINVAL);
}

TEST(err_names)
{
    CHECK(strcmp(rd_err_name(-EADDRINUSE), "EADDRINUSE") == 0);
    CHECK(strcmp(rd_err_name(RD_ECLOSED), "ECLOSED") == 0);
    CHECK(strcmp(rd_reason_name(RD_TIMEOUT), "timeout") == 0);
    CHECK(strlen(rd_strerror(-ECONNREFUSED)) > 0);
}

/* Every errno the core itself returns has its name (the binding shows it:
 * "ENAMETOOLONG: File name too long", not "EUNKNOWN"). */
TEST(err_names_cover_what_the_core_returns)
{
    static const struct {
        int err;
        const char *name;
    } known[] = {{-ENAMETOOLONG, "ENAMETOOLONG"}, {-ENOSPC, "ENOSPC"},
                 {-ENOTDIR, "ENOTDIR"},           {-EBADF, "EBADF"},
                 {-ENOTCONN, "ENOTCONN"},         {-ECONNABORTED, "ECONNABORTED"},
                 {-ENETDOWN, "ENETDOWN"},         {-EISCONN, "EISCONN"}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(rd_err_name(known[i].err), known[i].name) != 0) {
            fprintf(stderr, "%s is named %s\n", known[i].name, rd_err_name(known[i].err));
            exit(1);
        }
}
