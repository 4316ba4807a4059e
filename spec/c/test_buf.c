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

/* A borrowed block's owner: which tokens came back, in order. */
struct lender {
    uintptr_t back[8];
    int n;
};

static void lender_release(void *ud, uintptr_t token)
{
    struct lender *l = ud;
    l->back[l->n++] = token;
}

TEST(bufq_borrowed_block_in_order_and_released_once)
{
    rd_pool_t pool;
    rd_pool_init(&pool, 2);
    rd__bufq_t q = {NULL, NULL, 0};
    struct lender l = {{0}, 0};
    char *big = malloc(3 * RD_CHUNK_SIZE);
    for (size_t i = 0; i < 3 * RD_CHUNK_SIZE; i++)
        big[i] = (char)(i * 7);
    CHECK_EQ(rd__bufq_append(&q, &pool, "head", 4), 0);
    CHECK_EQ(rd__bufq_borrow(&q, &pool, big, 3 * RD_CHUNK_SIZE, lender_release, &l, 1), 0);
    CHECK_EQ(rd__bufq_append(&q, &pool, "tail", 4), 0); /* not into the borrowed block */
    CHECK_EQ(q.size, 8 + 3 * RD_CHUNK_SIZE);
    struct iovec iov[8];
    CHECK_EQ(rd__bufq_iov(&q, iov, 8), 3);
    CHECK(iov[1].iov_base == big); /* by reference: no copy */
    CHECK_EQ(iov[1].iov_len, 3 * RD_CHUNK_SIZE);
    CHECK(memcmp(iov[2].iov_base, "tail", 4) == 0);
    rd__bufq_consume(&q, &pool, 4 + 100); /* into the borrowed block: still held */
    CHECK_EQ(l.n, 0);
    CHECK_EQ(rd__bufq_iov(&q, iov, 8), 2);
    CHECK(iov[0].iov_base == big + 100);
    rd__bufq_consume(&q, &pool, 3 * RD_CHUNK_SIZE - 100); /* its last byte: given back */
    CHECK_EQ(l.n, 1);
    CHECK_EQ(l.back[0], 1);
    CHECK_EQ(pool.nfree_b, 1); /* the header is kept for the next one */
    CHECK_EQ(rd__bufq_borrow(&q, &pool, big, 10, lender_release, &l, 2), 0);
    CHECK_EQ(pool.nfree_b, 0);
    rd__bufq_consume(&q, &pool, q.size); /* dropped unsent (a close): given back too */
    CHECK_EQ(l.n, 2);
    CHECK_EQ(l.back[1], 2);
    CHECK(q.head == NULL && q.tail == NULL);
    rd_pool_destroy(&pool);
    free(big);
}

/* A place in area (2 pages and more) that lies `ahead` bytes past src modulo 4096. */
static char *past(char *area, const char *src, unsigned ahead)
{
    uintptr_t want = ((uintptr_t)src + ahead) & 4095;
    return area + ((want - (uintptr_t)area) & 4095);
}

TEST(read_buffer_moves_off_a_slow_copy)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    char *area = malloc(4096 + 65536);
    char *at = loop.rbuf;
    rd_loop_copied(&loop, at, past(area, at, 8), 2047); /* small: a fast copy anyway */
    rd_loop_copied(&loop, at, past(area, at, 0), 65536);
    rd_loop_copied(&loop, at, past(area, at, 64), 65536);
    rd_loop_copied(&loop, at, past(area, at, 4096 - 8), 65536); /* before it: fast */
    rd_loop_copied(&loop, area, past(area, area, 8), 65536);    /* not from the buffer */
    CHECK(loop.rbuf == at);
    rd_loop_copied(&loop, at + 10, past(area, at + 10, 24), 4096); /* 1-63 past: slow */
    CHECK(loop.rbuf == at + 64);
    /* the same destination is 40 bytes before the next read's bytes: fast */
    CHECK_EQ(((uintptr_t)past(area, at + 10, 24) - (uintptr_t)(loop.rbuf + 10)) & 4095, 4096 - 40);
    for (int i = 0; i < 200; i++) /* it wraps inside its allocation */
        rd__loop_shift_rbuf(&loop);
    CHECK(loop.rbuf >= loop.rbuf_base);
    CHECK(loop.rbuf + loop.rbuf_size <= loop.rbuf_base + loop.rbuf_size + 4096);
    rd_loop_destroy(&loop);
    free(area);
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
