/* test_http.c: the HTTP/1.1 request-head parser and chunked decoder of
 * core/rd_http.c, as tables of (input, expected answer). Every input is
 * also parsed at every prefix, each prefix copied into an allocation of
 * exactly its size, so under ASan a look past the bytes given is an error:
 * a prefix must give 0 or the answer the whole input gives. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rd_http.h"
#include "test.h"

#define NH 128
#define WHOLE LONG_MAX /* the head is the whole input */

static long parse(const char *in, size_t len, rd_http_req_t *req, rd_http_header_t *hs,
                  const rd_http_limits_t *lim)
{
    req->headers = hs;
    req->cap = NH;
    return rd_http_parse_request(in, len, req, lim);
}

/* Parse a copy of in[0..len) in an allocation of exactly len bytes. */
static long parse_copy(const char *in, size_t len, const rd_http_limits_t *lim)
{
    char *c = malloc(len ? len : 1);
    CHECK(c);
    memcpy(c, in, len);
    rd_http_req_t req;
    rd_http_header_t hs[NH];
    long r = parse(c, len, &req, hs, lim);
    if (r > 0) {
        CHECK(req.method.p >= c && req.method.p + req.method.n <= c + r);
        CHECK(req.target.p >= c && req.target.p + req.target.n <= c + r);
        for (size_t k = 0; k < req.nheaders; k++) {
            CHECK(hs[k].name.p >= c && hs[k].name.p + hs[k].name.n <= c + r);
            CHECK(hs[k].value.p >= c && hs[k].value.p + hs[k].value.n <= c + r);
        }
    }
    free(c);
    return r;
}

static int span_is(rd_http_span_t s, const char *lit)
{
    return s.p && s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

static const rd_http_limits_t small = {
    .max_request_line = 32,
    .max_header_bytes = 64,
    .max_headers = 3,
    .max_body = 100,
    .max_chunk_ext = 8,
};
static const rd_http_limits_t huge = {
    .max_request_line = 8192,
    .max_header_bytes = 32768,
    .max_headers = 100,
    .max_body = UINT64_MAX,
    .max_chunk_ext = 4096,
};

#define H11 "GET / HTTP/1.1\r\nHost: a\r\n"
#define POST11 "POST / HTTP/1.1\r\nHost: a\r\n"

typedef struct {
    const char *in;
    size_t len;      /* 0: strlen(in) */
    long want;       /* WHOLE, 0 (need more) or -status */
    const char *why; /* a word of req.why, for errors */
    const rd_http_limits_t *lim;
    /* for WHOLE: */
    int body, ka, ec;
    uint64_t cl;
} head_case_t;

static const head_case_t heads[] = {
    /* valid */
    {H11 "\r\n", 0, WHOLE, NULL, NULL, RD_HTTP_BODY_NONE, 1, 0, 0},
    {"GET / HTTP/1.0\r\n\r\n", 0, WHOLE, NULL, NULL, RD_HTTP_BODY_NONE, 0, 0, 0},
    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, WHOLE, NULL, NULL, 0, 1, 0, 0},
    {"GET / HTTP/1.0\r\nConnection: Upgrade, Keep-Alive\r\n\r\n", 0, WHOLE, NULL, NULL, 0, 1, 0, 0},
    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", 0, WHOLE, NULL, NULL,
     0, 0, 0, 0},
    {H11 "Connection: close\r\n\r\n", 0, WHOLE, NULL, NULL, 0, 0, 0, 0},
    {H11 "Connection: keep-alive,CLOSE\r\n\r\n", 0, WHOLE, NULL, NULL, 0, 0, 0, 0},
    {H11 "Connection: closed\r\n\r\n", 0, WHOLE, NULL, NULL, 0, 1, 0, 0},
    {POST11 "Content-Length: 5\r\n\r\n", 0, WHOLE, NULL, NULL, RD_HTTP_BODY_LENGTH, 1, 0, 5},
    {POST11 "Content-Length: 0\r\n\r\n", 0, WHOLE, NULL, NULL, RD_HTTP_BODY_LENGTH, 1, 0, 0},
    {POST11 "content-length:  \t 42 \t\r\n\r\n", 0, WHOLE, NULL, NULL, RD_HTTP_BODY_LENGTH, 1, 0,
     42},
    {POST11 "Content-Length: 100\r\n\r\n", 0, WHOLE, NULL, &small, RD_HTTP_BODY_LENGTH, 1, 0, 100},
    {POST11 "Content-Length: 9999999999999999999\r\n\r\n", 0, WHOLE, NULL, &huge,
     RD_HTTP_BODY_LENGTH, 1, 0, 9999999999999999999ull},
    {POST11 "Transfer-Encoding: chunked\r\n\r\n", 0, WHOLE, NULL, NULL, RD_HTTP_BODY_CHUNKED, 1, 0,
     0},
    {POST11 "transfer-encoding:  Chunked \r\n\r\n", 0, WHOLE, NULL, NULL, RD_HTTP_BODY_CHUNKED, 1,
     0, 0},
    {POST11 "Expect: 100-Continue\r\nContent-Length: 1\r\n\r\n", 0, WHOLE, NULL, NULL,
     RD_HTTP_BODY_LENGTH, 1, 1, 1},
    {"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", 0, WHOLE, NULL, NULL, 0, 0, 0, 0},
    {"\r\n\r\n" H11 "\r\n", 0, WHOLE, NULL, NULL, 0, 1, 0, 0},
    {"GET / HTTP/1.1\r\nHost:\r\n\r\n", 0, WHOLE, NULL, NULL, 0, 1, 0, 0},
    {H11 "X: a\tb \xff\x80 ~\r\n\r\n", 0, WHOLE, NULL, NULL, 0, 1, 0, 0},
    {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, WHOLE, NULL, NULL, 0, 1, 0, 0},
    {"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 0, WHOLE, NULL, NULL, 0, 1, 0,
     0},
    {"GET http://a/b?c=%20#x HTTP/1.1\r\nHost: a\r\n\r\n", 0, WHOLE, NULL, NULL, 0, 1, 0, 0},
    {"M-SEARCH!#$%&'*+.^_`|~09 / HTTP/1.1\r\nHost: a\r\n\r\n", 0, WHOLE, NULL, NULL, 0, 1, 0, 0},
    /* limits at exactly their size: a 32-byte request line, 64 bytes of fields, 3 fields */
    {"GET /234567890123456789 HTTP/1.1\r\nHost: a\r\n\r\n", 0, WHOLE, NULL, &small, 0, 1, 0, 0},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: 345678901234567890123456789012345678901234567890\r\n\r\n", 0,
     WHOLE, NULL, &small, 0, 1, 0, 0},
    {H11 "A: 1\r\nB: 2\r\n\r\n", 0, WHOLE, NULL, &small, 0, 1, 0, 0},

    /* need more */
    {"", 0, 0, NULL, NULL, 0, 0, 0, 0},
    {"\r\n", 0, 0, NULL, NULL, 0, 0, 0, 0},
    {H11, 0, 0, NULL, NULL, 0, 0, 0, 0},
    {H11 "\r", 0, 0, NULL, NULL, 0, 0, 0, 0},

    /* bare CR, bare LF */
    {"GET / HTTP/1.1\nHost: a\n\n", 0, -400, "bare LF", NULL, 0, 0, 0, 0},
    {"GET / HTTP/1.1\r\nHost: a\n\r\n", 0, -400, "bare LF", NULL, 0, 0, 0, 0},
    {H11 "\n", 0, -400, "bare LF", NULL, 0, 0, 0, 0},
    {"GET / HTTP/1.1\rHost: a\r\n\r\n", 0, -400, "bare CR", NULL, 0, 0, 0, 0},
    {"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 0, -400, "bare CR", NULL, 0, 0, 0, 0},
    {"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, -400, "bare LF", NULL, 0, 0, 0, 0},
    {"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, -400, "bare CR", NULL, 0, 0, 0, 0},
    /* PEERS.md headline 1: CVE-2023-30589, "\r\n\rX" (CVE-2025-23167 class), CVE-2021-22959 */
    {POST11 "X-Abc: \rxTransfer-Encoding: chunked\r\n\r\n", 0, -400, "bare CR", NULL, 0, 0, 0, 0},
    {H11 "\rX", 0, -400, "bare CR", NULL, 0, 0, 0, 0},
    {H11 "\rXGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, -400, "bare CR", NULL, 0, 0, 0, 0},
    {POST11 "Content-Length : 5\r\n\r\nhello", 0, -400, "before a colon", NULL, 0, 0, 0, 0},
    {POST11 "Content-Length\t: 5\r\n\r\n", 0, -400, "before a colon", NULL, 0, 0, 0, 0},
    /* obs-fold (CVE-2024-27982), also continuing a Transfer-Encoding (CVE-2022-32215) */
    {H11 "X: a\r\n b\r\n\r\n", 0, -400, "obs-fold", NULL, 0, 0, 0, 0},
    {POST11 "Transfer-Encoding: gzip,\r\n chunked\r\n\r\n", 0, -400, "obs-fold", NULL, 0, 0, 0, 0},
    {H11 "X: a\r\n\tb\r\n\r\n", 0, -400, "obs-fold", NULL, 0, 0, 0, 0},
    {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 0, -400, "first field", NULL, 0, 0, 0, 0},
    /* tokens */
    {"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 0, -400, "method", NULL, 0, 0, 0, 0},
    {"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 0, -400, "method", NULL, 0, 0, 0, 0},
    {" / HTTP/1.1\r\nHost: a\r\n\r\n", 0, -400, "empty method", NULL, 0, 0, 0, 0},
    {"G\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n", 0, -400, "method", NULL, 0, 0, 0, 0},
    {H11 "X@Y: 1\r\n\r\n", 0, -400, "field name", NULL, 0, 0, 0, 0},
    {H11 "X\x01Y: 1\r\n\r\n", 0, -400, "field name", NULL, 0, 0, 0, 0},
    {H11 "X\xffY: 1\r\n\r\n", 0, -400, "field name", NULL, 0, 0, 0, 0},
    {H11 ": 1\r\n\r\n", 0, -400, "empty field name", NULL, 0, 0, 0, 0},
    {H11 "X-No-Colon\r\n\r\n", 0, -400, "without a colon", NULL, 0, 0, 0, 0},
    /* control bytes in a value (HTAB is allowed, above) */
    {H11 "X: a\0b\r\n\r\n", sizeof(H11 "X: a\0b\r\n\r\n") - 1, -400, "control", NULL, 0, 0, 0, 0},
    {H11 "X: a\x01\r\n\r\n", 0, -400, "control", NULL, 0, 0, 0, 0},
    {H11 "X: a\x1f\r\n\r\n", 0, -400, "control", NULL, 0, 0, 0, 0},
    {H11 "X: a\x7f\r\n\r\n", 0, -400, "control", NULL, 0, 0, 0, 0},
    /* the request line */
    {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 0, -400, "METHOD SP target", NULL, 0, 0, 0, 0},
    {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 0, -400, "end after the version", NULL, 0, 0, 0, 0},
    {"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 0, -400, "METHOD SP target", NULL, 0, 0, 0, 0},
    {"GET /\r\n\r\n", 0, -400, "METHOD SP target", NULL, 0, 0, 0, 0},
    {"GET / http/1.1\r\nHost: a\r\n\r\n", 0, -400, "METHOD SP target", NULL, 0, 0, 0, 0},
    {"GET / HTTP/1\r\nHost: a\r\n\r\n", 0, -400, "DIGIT.DIGIT", NULL, 0, 0, 0, 0},
    {"GET / HTTP/1.10\r\nHost: a\r\n\r\n", 0, -400, "end after the version", NULL, 0, 0, 0, 0},
    {"GET / HTTP/11.1\r\nHost: a\r\n\r\n", 0, -400, "DIGIT.DIGIT", NULL, 0, 0, 0, 0},
    {"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 0, -400, "target", NULL, 0, 0, 0, 0},
    {"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 0, -400, "target", NULL, 0, 0, 0, 0},
    {"GET /\t HTTP/1.1\r\nHost: a\r\n\r\n", 0, -400, "target", NULL, 0, 0, 0, 0},
    /* other versions */
    {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, -505, "version", NULL, 0, 0, 0, 0},
    {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, -505, "version", NULL, 0, 0, 0, 0},
    {"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 0, -505, "version", NULL, 0, 0, 0, 0},
    {"GET / HTTP/0.9\r\n\r\n", 0, -505, "version", NULL, 0, 0, 0, 0},
    /* body framing */
    {POST11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0, -400,
     "Content-Length with Transfer-Encoding", NULL, 0, 0, 0, 0},
    {POST11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0, -400,
     "Content-Length with Transfer-Encoding", NULL, 0, 0, 0, 0},
    {POST11 "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n", 0, -400,
     "Content-Length with Transfer-Encoding", NULL, 0, 0, 0, 0},
    {POST11 "Transfer-Encoding: gzip\r\n\r\n", 0, -501, "other than chunked", NULL, 0, 0, 0, 0},
    {POST11 "Transfer-Encoding: chunked, identity\r\n\r\n", 0, -501, "other than chunked", NULL, 0,
     0, 0, 0},
    {POST11 "Transfer-Encoding: gzip, chunked\r\n\r\n", 0, -501, "other than chunked", NULL, 0, 0,
     0, 0},
    {POST11 "Transfer-Encoding:\r\n\r\n", 0, -501, "other than chunked", NULL, 0, 0, 0, 0},
    {POST11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, -400,
     "two Transfer-Encoding", NULL, 0, 0, 0, 0},
    {POST11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 0, -400,
     "two Transfer-Encoding", NULL, 0, 0, 0, 0},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, -400, "HTTP/1.0", NULL, 0, 0, 0,
     0},
    {POST11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, -400, "two Content-Length", NULL,
     0, 0, 0, 0},
    {POST11 "Content-Length: 5\r\ncontent-length: 6\r\n\r\n", 0, -400, "two Content-Length", NULL,
     0, 0, 0, 0},
    {POST11 "Content-Length: +5\r\n\r\n", 0, -400, "digits", NULL, 0, 0, 0, 0},
    {POST11 "Content-Length: -1\r\n\r\n", 0, -400, "digits", NULL, 0, 0, 0, 0},
    {POST11 "Content-Length: 5,5\r\n\r\n", 0, -400, "digits", NULL, 0, 0, 0, 0},
    {POST11 "Content-Length: 5, 5\r\n\r\n", 0, -400, "digits", NULL, 0, 0, 0, 0},
    {POST11 "Content-Length: 5 5\r\n\r\n", 0, -400, "digits", NULL, 0, 0, 0, 0},
    {POST11 "Content-Length: 0x5\r\n\r\n", 0, -400, "digits", NULL, 0, 0, 0, 0},
    {POST11 "Content-Length: \r\n\r\n", 0, -400, "digits", NULL, 0, 0, 0, 0},
    {POST11 "Content-Length: 5.0\r\n\r\n", 0, -400, "digits", NULL, 0, 0, 0, 0},
    {POST11 "Content-Length: 10000000000000000000\r\n\r\n", 0, -400, "digits", &huge, 0, 0, 0, 0},
    {POST11 "Content-Length: 00000000000000000001\r\n\r\n", 0, -400, "digits", &huge, 0, 0, 0, 0},
    /* Host */
    {"GET / HTTP/1.1\r\n\r\n", 0, -400, "without Host", NULL, 0, 0, 0, 0},
    {"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 0, -400, "two Host", NULL, 0, 0, 0, 0},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 0, -400, "two Host", NULL, 0, 0, 0, 0},
    /* Expect */
    {H11 "Expect: 100-continue-please\r\n\r\n", 0, -417, "Expect", NULL, 0, 0, 0, 0},
    /* more from the HTTP Garden's classes: look-alike bytes, quoted or near-miss codings */
    {H11 "X\xa0: 1\r\n\r\n", 0, -400, "field name", NULL, 0, 0, 0, 0},
    {H11 "X: a\013b\r\n\r\n", 0, -400, "control", NULL, 0, 0, 0, 0},
    {H11 "X: a\014b\r\n\r\n", 0, -400, "control", NULL, 0, 0, 0, 0},
    {"GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n", sizeof("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n") - 1, -400,
     "target", NULL, 0, 0, 0, 0},
    {POST11 "Transfer-Encoding: \"chunked\"\r\n\r\n", 0, -501, "other than chunked", NULL, 0, 0, 0,
     0},
    {POST11 "Transfer-Encoding: xchunked\r\n\r\n", 0, -501, "other than chunked", NULL, 0, 0, 0, 0},
    {POST11 "Transfer-Encoding: chunked\x00\r\n\r\n",
     sizeof(POST11 "Transfer-Encoding: chunked\x00\r\n\r\n") - 1, -400, "control", NULL, 0, 0, 0,
     0},
    {POST11 "Content-Length: 1_000\r\n\r\n", 0, -400, "digits", NULL, 0, 0, 0, 0},
    {POST11 "Content-Length: \xd9\xa3\r\n\r\n", 0, -400, "digits", NULL, 0, 0, 0, 0},
    {POST11 "Content-Length: 005\r\n\r\n", 0, WHOLE, NULL, NULL, RD_HTTP_BODY_LENGTH, 1, 0, 5},
    {"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 0, -400, "two Host", NULL, 0, 0, 0, 0},
    {"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGH / HTTP/1.1\r\nHost: a\r\n\r\n", 0, -414, "request line",
     &small, 0, 0, 0, 0},
    /* limits: one byte over each */
    {"GET /2345678901234567890 HTTP/1.1\r\nHost: a\r\n\r\n", 0, -414, "request line", &small, 0, 0,
     0, 0},
    {"GET /2345678901234567890 HTTP/1.1", 0, -414, "request line", &small, 0, 0, 0, 0},
    {"\r\nGET /23456789012345678 HTTP/1.1\r\nHost: a\r\n\r\n", 0, -414, "request line", &small, 0,
     0, 0, 0},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: 3456789012345678901234567890123456789012345678901\r\n\r\n", 0,
     -431, "too long", &small, 0, 0, 0, 0},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: 3456789012345678901234567890123456789012345678901abc", 0,
     -431, "too long", &small, 0, 0, 0, 0},
    {H11 "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", 0, -431, "too many", &small, 0, 0, 0, 0},
    {POST11 "Content-Length: 101\r\n\r\n", 0, -413, "body limit", &small, 0, 0, 0, 0},
    {POST11 "Content-Length: 1048577\r\n\r\n", 0, -413, "body limit", NULL, 0, 0, 0, 0},
};

static size_t case_len(const head_case_t *c)
{
    return c->len ? c->len : strlen(c->in);
}

TEST(http_head_table)
{
    for (size_t k = 0; k < sizeof heads / sizeof heads[0]; k++) {
        const head_case_t *c = &heads[k];
        size_t len = case_len(c);
        rd_http_req_t req;
        rd_http_header_t hs[NH];
        long r = parse(c->in, len, &req, hs, c->lim);
        long want = c->want == WHOLE ? (long)len : c->want;
        if (r != want || (c->why && (!req.why || !strstr(req.why, c->why)))) {
            fprintf(stderr, "case %zu %.*s: got %ld (%s), want %ld (%s)\n", k, (int)len, c->in, r,
                    req.why ? req.why : "-", want, c->why ? c->why : "-");
        }
        CHECK_EQ(r, want);
        if (c->why) CHECK(req.why && strstr(req.why, c->why));
        if (c->want == WHOLE) {
            CHECK(!req.why);
            CHECK_EQ(req.body, c->body);
            CHECK_EQ(req.keep_alive, c->ka);
            CHECK_EQ(req.expect_continue, c->ec);
            CHECK_EQ(req.content_length, c->cl);
        }
    }
}

/* Every prefix gives 0, or the error the whole input gives; never another
 * answer, never a look past its end (parse_copy). */
TEST(http_head_every_prefix)
{
    for (size_t k = 0; k < sizeof heads / sizeof heads[0]; k++) {
        const head_case_t *c = &heads[k];
        size_t len = case_len(c);
        long whole = parse_copy(c->in, len, c->lim);
        for (size_t n = 0; n < len; n++) {
            long r = parse_copy(c->in, n, c->lim);
            if (!(r == 0 || (whole < 0 && r == whole)))
                fprintf(stderr, "case %zu prefix %zu: %ld, whole %ld\n", k, n, r, whole);
            CHECK(r == 0 || (whole < 0 && r == whole));
        }
    }
}

TEST(http_head_fields_and_spans)
{
    const char in[] = "\r\nPOST /a/b?c=d HTTP/1.1\r\nHost:  example.org:8080 \r\n"
                      "X-Empty:\r\nx-mixed-Case:\t v  a\tl \t\r\nContent-Length: 3\r\n\r\nabc";
    rd_http_req_t req;
    rd_http_header_t hs[NH];
    long r = parse(in, sizeof in - 1, &req, hs, NULL);
    CHECK_EQ(r, sizeof in - 1 - 3);
    CHECK(span_is(req.method, "POST"));
    CHECK(span_is(req.target, "/a/b?c=d"));
    CHECK(span_is(req.host, "example.org:8080"));
    CHECK_EQ(req.minor, 1);
    CHECK_EQ(req.nheaders, 4);
    CHECK(span_is(hs[0].name, "Host"));
    CHECK(span_is(hs[1].name, "X-Empty"));
    CHECK_EQ(hs[1].value.n, 0);
    CHECK(hs[1].value.p >= in && hs[1].value.p <= in + r);
    CHECK(span_is(hs[2].name, "x-mixed-Case"));
    CHECK(span_is(hs[2].value, "v  a\tl"));
    CHECK(span_is(hs[3].value, "3"));
    CHECK_EQ(req.body, RD_HTTP_BODY_LENGTH);
    CHECK_EQ(req.content_length, 3);
    /* zero-copy: the spans are the buffer's own bytes */
    CHECK(req.method.p == in + 2);
    /* the headers array's own size is a limit too */
    req.headers = hs;
    req.cap = 2;
    CHECK_EQ(rd_http_parse_request(in, sizeof in - 1, &req, NULL), -431);
    CHECK_EQ(req.nheaders, 2);
    /* statuses have their reason phrases */
    CHECK(strcmp(rd_http_reason(400), "Bad Request") == 0);
    CHECK(strcmp(rd_http_reason(431), "Request Header Fields Too Large") == 0);
    CHECK(strcmp(rd_http_reason(505), "HTTP Version Not Supported") == 0);
    CHECK(rd_http_reason(200) == NULL);
}

/*{===== chunked ===== */

typedef struct {
    const char *in;
    long want; /* bytes used when done, or -status */
    const char *data;
    const char *why;
    const rd_http_limits_t *lim;
} chunk_case_t;

static const chunk_case_t chunks[] = {
    {"5\r\nhello\r\n0\r\n\r\n", 15, "hello", NULL, NULL},
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET", 26, "hello world", NULL, NULL},
    {"0\r\n\r\n", 5, "", NULL, NULL},
    {"000\r\n\r\n", 7, "", NULL, NULL},
    {"a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", 35, "01234567890123456789", NULL, NULL},
    {"5;name=value;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n", 39, "hello", NULL, NULL},
    {"5 \t;x\r\nhello\r\n0\r\n\r\n", 19, "hello", NULL, NULL},
    {"0000000000000005\r\nhello\r\n0\r\n\r\n", 30, "hello", NULL, NULL},
    {"5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\n\r\n", 31, "hello", NULL, NULL},
    {"64\r\n"
     "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"
     "123456789\r\n0\r\n\r\n",
     111,
     "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"
     "123456789",
     NULL, &small},
    {"1;1234567\r\na\r\n0\r\n\r\n", 19, "a", NULL, &small},
    /* errors */
    {"00000000000000005\r\nhello\r\n0\r\n\r\n", -400, NULL, "16 hex digits", NULL},
    {"5\r\nhelloXX0\r\n\r\n", -400, "hello", "CRLF", NULL}, /* PEERS.md: two bytes after data */
    {"5\r\nhello\n0\r\n\r\n", -400, "hello", "CRLF", NULL},
    {"5\r\nhello\r0\r\n\r\n", -400, "hello", "CRLF", NULL},
    {"5;a\nb\r\nhello\r\n0\r\n\r\n", -400, NULL, "bare LF", NULL}, /* bare LF in an extension */
    {"5;a\rb\r\nhello\r\n0\r\n\r\n", -400, NULL, "bare CR", NULL},
    {"5;a\x01\r\nhello\r\n0\r\n\r\n", -400, NULL, "control", NULL},
    {"5\nhello\r\n0\r\n\r\n", -400, NULL, "bare LF", NULL},
    {"5 \r\nhello\r\n0\r\n\r\n", -400, NULL, "';'", NULL},
    {"\r\n", -400, NULL, "not hex", NULL},
    {" 5\r\nhello\r\n0\r\n\r\n", -400, NULL, "not hex", NULL},
    {"-5\r\nhello\r\n0\r\n\r\n", -400, NULL, "not hex", NULL},
    {"0x5\r\nhello\r\n0\r\n\r\n", -400, NULL, "not hex", NULL},
    {"5\r\nhello\r\n0\r\n\rX", -400, "hello", "bare CR", NULL},
    {"0\r\n\n", -400, NULL, "bare LF", NULL},
    {"0\r\nX: a\r\n b\r\n\r\n", -400, NULL, "obs-fold", NULL},
    {"0\r\nX : a\r\n\r\n", -400, NULL, "before a colon", NULL},
    {"0\r\nX: a\rb\r\n\r\n", -400, NULL, "bare CR", NULL},
    {"0\r\nX: a\nb\r\n\r\n", -400, NULL, "bare LF", NULL},
    {"0\r\nX: a\x01\r\n\r\n", -400, NULL, "control", NULL},
    {"0\r\n: a\r\n\r\n", -400, NULL, "empty field name", NULL},
    {"65\r\n", -413, NULL, "body limit", &small},
    {"32\r\n01234567890123456789012345678901234567890123456789\r\n33\r\n", -413,
     "01234567890123456789012345678901234567890123456789", "body limit", &small},
    {"1;123456789\r\na\r\n0\r\n\r\n", -413, NULL, "extensions", &small},
    {"1;12345\r\na\r\n1;12345\r\nb\r\n0\r\n\r\n", -413, "a", "extensions", &small},
    {"0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", -431, NULL, "too many", &small},
    {"0\r\nX: 12345678901234567890123456789012345678901234567890123456789012\r\n\r\n", -431, NULL,
     "trailer too long", &small},
};

/* Decode in[0..len) fed in pieces of `step` bytes (0: one piece), each a
 * fresh allocation; returns the total used or -status, the data in out. */
static long decode(const char *in, size_t len, size_t step, const rd_http_limits_t *lim, char *out,
                   size_t *outn, const char **why)
{
    rd_http_chunked_t c;
    rd_http_chunked_init(&c, lim);
    size_t pos = 0;
    *outn = 0;
    while (pos < len && !rd_http_chunked_done(&c)) {
        size_t n = step && len - pos > step ? step : len - pos;
        char *piece = malloc(n);
        CHECK(piece);
        memcpy(piece, in + pos, n);
        size_t off = 0;
        long r = 0;
        while (off < n && !rd_http_chunked_done(&c)) {
            rd_http_span_t d;
            r = rd_http_chunked_decode(&c, piece + off, n - off, &d);
            if (r < 0) break;
            CHECK((size_t)r <= n - off);
            CHECK(d.p >= piece + off && d.p + d.n <= piece + off + r);
            memcpy(out + *outn, d.p, d.n);
            *outn += d.n;
            off += (size_t)r;
        }
        free(piece);
        if (r < 0) {
            *why = c.why;
            rd_http_span_t d;
            CHECK_EQ(rd_http_chunked_decode(&c, "0\r\n\r\n", 5, &d), r); /* errors stay */
            return r;
        }
        pos += off;
    }
    CHECK_EQ(c.total, *outn);
    return rd_http_chunked_done(&c) ? (long)pos : 0;
}

TEST(http_chunked_table_at_every_split)
{
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        const chunk_case_t *c = &chunks[k];
        size_t len = strlen(c->in);
        char out[256];
        size_t outn;
        const char *why = NULL;
        long r = decode(c->in, len, 0, c->lim, out, &outn, &why);
        if (r != c->want || (c->why && (!why || !strstr(why, c->why))))
            fprintf(stderr, "chunk case %zu: %ld (%s)\n", k, r, why ? why : "-");
        CHECK_EQ(r, c->want);
        if (c->why) CHECK(why && strstr(why, c->why));
        if (c->data) {
            CHECK_EQ(outn, strlen(c->data));
            CHECK(memcmp(out, c->data, outn) == 0);
        }
        /* the same answer fed a byte at a time, and in two pieces at every split */
        for (size_t step = 1; step <= len; step++) {
            char out2[256];
            size_t outn2;
            const char *why2 = NULL;
            long r2 = decode(c->in, len, step, c->lim, out2, &outn2, &why2);
            CHECK_EQ(r2, r);
            if (r > 0 || c->data) {
                CHECK_EQ(outn2, outn);
                CHECK(memcmp(out2, out, outn) == 0);
            }
        }
        for (size_t cut = 1; cut < len; cut++) {
            rd_http_chunked_t st;
            rd_http_chunked_init(&st, c->lim);
            char out2[256];
            size_t outn2 = 0;
            long used = 0, r2 = 0;
            const char *const parts[2] = {c->in, c->in + cut};
            const size_t lens[2] = {cut, len - cut};
            for (int part = 0; part < 2 && r2 >= 0 && !rd_http_chunked_done(&st); part++) {
                size_t off = 0;
                while (off < lens[part] && !rd_http_chunked_done(&st)) {
                    rd_http_span_t d;
                    r2 = rd_http_chunked_decode(&st, parts[part] + off, lens[part] - off, &d);
                    if (r2 < 0) break;
                    memcpy(out2 + outn2, d.p, d.n);
                    outn2 += d.n;
                    off += (size_t)r2;
                }
                used += (long)off;
            }
            CHECK_EQ(r2 < 0 ? r2 : used, r);
            if (r > 0) CHECK(outn2 == outn && memcmp(out2, out, outn) == 0);
        }
    }
}

TEST(http_chunked_incomplete_uses_everything)
{
    rd_http_chunked_t c;
    rd_http_chunked_init(&c, NULL);
    rd_http_span_t d;
    CHECK_EQ(rd_http_chunked_decode(&c, "1f;ext=", 7, &d), 7);
    CHECK_EQ(d.n, 0);
    CHECK(!rd_http_chunked_done(&c));
    /* framing, then data, in one call */
    CHECK_EQ(rd_http_chunked_decode(&c, "x\r\n0123456789", 13, &d), 13);
    CHECK(span_is(d, "0123456789"));
    CHECK_EQ(rd_http_chunked_decode(&c, "0123456789", 10, &d), 10);
    CHECK(span_is(d, "0123456789"));
    CHECK_EQ(c.total, 20);
    /* the data ends inside the bytes: one span, and the rest is left */
    CHECK_EQ(rd_http_chunked_decode(&c, "0123456789A\r\n0\r\n\r\nGET", 19, &d), 11);
    CHECK(span_is(d, "0123456789A"));
    CHECK_EQ(rd_http_chunked_decode(&c, "\r\n0\r\n\r\nGET", 10, &d), 7);
    CHECK_EQ(d.n, 0);
    CHECK(rd_http_chunked_done(&c));
    CHECK_EQ(c.total, 31);
    CHECK_EQ(rd_http_chunked_decode(&c, "", 0, &d), 0);
    /* a NUL is a control byte like the others, in an extension or a trailer */
    rd_http_chunked_init(&c, NULL);
    CHECK_EQ(rd_http_chunked_decode(&c, "1;a\0\r\n", 6, &d), -400);
    CHECK(strstr(c.why, "control"));
    rd_http_chunked_init(&c, NULL);
    CHECK_EQ(rd_http_chunked_decode(&c, "0\r\nX: \0\r\n\r\n", 11, &d), -400);
    CHECK(strstr(c.why, "control"));
}

/*{===== pipelining ===== */

/* Several requests in one buffer are taken in one pass: a head, its body
 * (by length or chunked), the next head, ... with spans into the buffer. */
TEST(http_pipelined_in_one_pass)
{
    const char in[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                      "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                      "\r\n" /* a stray CRLF between requests is skipped (RFC 9112 2.2) */
                      "PUT /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n2;x\r\nde\r\n0\r\nT: v\r\n\r\n"
                      "GET /4 HTTP/1.0\r\n\r\n"
                      "GET /5 HTTP/1.1\r\nHost: a\r\n";
    size_t len = sizeof in - 1, pos = 0;
    const char *targets[] = {"/1", "/2", "/3", "/4"};
    const char *bodies[] = {"", "hello", "abcde", ""};
    int n = 0;
    for (;;) {
        rd_http_req_t req;
        rd_http_header_t hs[NH];
        long r = parse(in + pos, len - pos, &req, hs, NULL);
        CHECK(r >= 0);
        if (r == 0) break;
        CHECK(n < 4);
        CHECK(span_is(req.target, targets[n]));
        pos += (size_t)r;
        char body[16];
        size_t bn = 0;
        if (req.body == RD_HTTP_BODY_LENGTH) {
            memcpy(body, in + pos, req.content_length);
            bn = req.content_length;
            pos += req.content_length;
        } else if (req.body == RD_HTTP_BODY_CHUNKED) {
            rd_http_chunked_t c;
            rd_http_chunked_init(&c, NULL);
            while (!rd_http_chunked_done(&c)) {
                rd_http_span_t d;
                long u = rd_http_chunked_decode(&c, in + pos, len - pos, &d);
                CHECK(u > 0);
                CHECK(d.p >= in + pos);
                memcpy(body + bn, d.p, d.n);
                bn += d.n;
                pos += (size_t)u;
            }
        }
        CHECK_EQ(bn, strlen(bodies[n]));
        CHECK(memcmp(body, bodies[n], bn) == 0);
        n++;
    }
    CHECK_EQ(n, 4);
    CHECK(strncmp(in + pos, "GET /5", 6) == 0); /* the unfinished fifth waits for more */
}

/* A valid request split at every position: 0 until the whole head is
 * there, then the same head, whatever follows it. */
TEST(http_head_every_split_then_same)
{
    const char in[] = "POST /upload?x=1 HTTP/1.1\r\nHost: example.org\r\nUser-Agent: t/1.0\r\n"
                      "Accept: */*\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nbodyGET";
    size_t len = sizeof in - 1, head = len - 7;
    for (size_t n = 0; n <= len; n++) {
        char *c = malloc(n ? n : 1);
        memcpy(c, in, n);
        rd_http_req_t req;
        rd_http_header_t hs[NH];
        long r = parse(c, n, &req, hs, NULL);
        if (n < head) {
            CHECK_EQ(r, 0);
        } else {
            CHECK_EQ(r, head);
            CHECK(span_is(req.target, "/upload?x=1"));
            CHECK_EQ(req.nheaders, 5);
            CHECK(span_is(hs[1].value, "t/1.0"));
            CHECK_EQ(req.content_length, 4);
            CHECK(req.keep_alive);
        }
        free(c);
    }
}

/* Each byte value at each position of a long value and a long target: the
 * 16-bytes-at-a-time skip must stop exactly where the byte-table would. */
TEST(http_every_byte_at_every_position)
{
    static const char pre[] = "GET /";
    static const char mid[] = " HTTP/1.1\r\nHost: a\r\nX: ";
    for (int where = 0; where < 2; where++)
        for (int c = 0; c < 256; c++)
            for (size_t at = 0; at < 40; at++) {
                char buf[256];
                size_t n = 0;
                memcpy(buf, pre, sizeof pre - 1);
                n += sizeof pre - 1;
                for (size_t k = 0; k < 40; k++)
                    buf[n++] = where == 0 && k == at ? (char)c : 'a';
                memcpy(buf + n, mid, sizeof mid - 1);
                n += sizeof mid - 1;
                for (size_t k = 0; k < 40; k++)
                    buf[n++] = where == 1 && k == at ? (char)c : 'v';
                memcpy(buf + n, "\r\n\r\n", 4);
                n += 4;
                rd_http_req_t req;
                rd_http_header_t hs[NH];
                long r = parse(buf, n, &req, hs, NULL);
                int ok = where == 0 ? c > 0x20 && c < 0x7f : (c >= 0x20 && c != 0x7f) || c == '\t';
                /* a CR or LF ends the line early: an error, never a success */
                if (ok) {
                    CHECK_EQ(r, n);
                    /* optional whitespace at either end of the value is not part of it */
                    int ows = where == 1 && (c == ' ' || c == '\t') && (at == 0 || at == 39);
                    CHECK_EQ(where == 0 ? req.target.n : hs[1].value.n, where == 0 ? 41 : 40 - ows);
                } else {
                    CHECK_EQ(r, -400);
                }
            }
}

/* A head sent a byte at a time, parsed only when rd_http_need_parse says:
 * a parse per line, the same answers as parsing at every byte. */
TEST(http_need_parse_a_byte_at_a_time)
{
    const char ok[] = "GET /a HTTP/1.1\r\nHost: a\r\nUser-Agent: slow\r\nAccept: */*\r\n\r\n";
    const char bad[] = "GET /a HTTP/1.1\r\nHost: a\r\nX: a\001b\r\nAccept: */*\r\n\r\n";
    const char *ins[2] = {ok, bad};
    size_t lens[2] = {sizeof ok - 1, sizeof bad - 1};
    for (int k = 0; k < 2; k++) {
        size_t seen = 0;
        int parses = 0;
        long r = 0;
        for (size_t n = 1; n <= lens[k] && r == 0; n++) {
            rd_http_req_t req;
            rd_http_header_t hs[NH];
            long every = parse(ins[k], n, &req, hs, NULL); /* what a parse now would say */
            if (!rd_http_need_parse(ins[k], seen, n, NULL)) {
                /* skipped: the answer now is 0, or an error the next line end gives too */
                CHECK(every == 0 || (k == 1 && every == -400));
                continue;
            }
            parses++;
            seen = n;
            r = parse(ins[k], n, &req, hs, NULL);
            CHECK_EQ(r, every);
        }
        CHECK_EQ(r, k == 0 ? (long)lens[k] : -400);
        CHECK_EQ(parses, k == 0 ? 5 : 3); /* one per LF, up to the answer */
    }
    /* past the limits' sum it is always worth a parse (the parse gives 414 or 431) */
    char big[200];
    memset(big, 'a', sizeof big);
    CHECK_EQ(rd_http_need_parse(big, 100, 111, &small), 1);
    CHECK_EQ(rd_http_need_parse(big, 90, 98, &small), 0);
    CHECK_EQ(rd_http_need_parse(big, 98, 98, &small), 0);
    CHECK_EQ(parse_copy(big, 111, &small), -414);
}

/*{====================================================================
 * Response heads (rd_http_parse_response), for the client.
 *=====================================================================*/

#define R11 "HTTP/1.1 200 OK\r\n"
#define R10 "HTTP/1.0 200 OK\r\n"

typedef struct {
    const char *in;
    int flags;       /* RD_HTTP_RESP_HEAD */
    long want;       /* WHOLE, 0 (need more), -1; or a length (the head before a body) */
    const char *why; /* a word of resp.why, for errors */
    const rd_http_limits_t *lim;
    /* for a head: */
    int status, body, ka;
    uint64_t cl;
    const char *reason;
} resp_case_t;

static const resp_case_t resps[] = {
    /* framing */
    {R11 "Content-Length: 5\r\n\r\n", 0, WHOLE, NULL, NULL, 200, RD_HTTP_BODY_LENGTH, 1, 5, "OK"},
    {R11 "Content-Length: 0\r\n\r\n", 0, WHOLE, NULL, NULL, 200, RD_HTTP_BODY_LENGTH, 1, 0, "OK"},
    {R11 "Transfer-Encoding: chunked\r\n\r\n", 0, WHOLE, NULL, NULL, 200, RD_HTTP_BODY_CHUNKED, 1,
     0, "OK"},
    {R11 "transfer-encoding:  Chunked \r\n\r\n", 0, WHOLE, NULL, NULL, 200, RD_HTTP_BODY_CHUNKED, 1,
     0, "OK"},
    {R11 "\r\n", 0, WHOLE, NULL, NULL, 200, RD_HTTP_BODY_CLOSE, 0, 0, "OK"},
    {R11 "Connection: close\r\nContent-Length: 2\r\n\r\n", 0, WHOLE, NULL, NULL, 200,
     RD_HTTP_BODY_LENGTH, 0, 2, "OK"},
    {R10 "Content-Length: 2\r\n\r\n", 0, WHOLE, NULL, NULL, 200, RD_HTTP_BODY_LENGTH, 0, 2, "OK"},
    {R10 "Connection: keep-alive\r\nContent-Length: 2\r\n\r\n", 0, WHOLE, NULL, NULL, 200,
     RD_HTTP_BODY_LENGTH, 1, 2, "OK"},
    {R10 "Connection: keep-alive\r\n\r\n", 0, WHOLE, NULL, NULL, 200, RD_HTTP_BODY_CLOSE, 0, 0,
     "OK"},
    /* no body: HEAD, 204, 304, whatever the fields say */
    {R11 "Content-Length: 5\r\n\r\n", RD_HTTP_RESP_HEAD, WHOLE, NULL, NULL, 200, RD_HTTP_BODY_NONE,
     1, 0, "OK"},
    {R11 "Transfer-Encoding: chunked\r\n\r\n", RD_HTTP_RESP_HEAD, WHOLE, NULL, NULL, 200,
     RD_HTTP_BODY_NONE, 1, 0, "OK"},
    {"HTTP/1.1 204 No Content\r\n\r\n", 0, WHOLE, NULL, NULL, 204, RD_HTTP_BODY_NONE, 1, 0,
     "No Content"},
    {"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", 0, WHOLE, NULL, NULL, 304,
     RD_HTTP_BODY_NONE, 1, 0, "Not Modified"},
    /* 1xx skipped (the length covers them), 101 is final */
    {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n", 0, WHOLE,
     NULL, NULL, 201, RD_HTTP_BODY_LENGTH, 1, 1, "Created"},
    {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" R11
     "Content-Length: 1\r\n\r\n",
     0, WHOLE, NULL, NULL, 200, RD_HTTP_BODY_LENGTH, 1, 1, "OK"},
    {"HTTP/1.1 100 Continue\r\n\r\n", 0, 0, NULL, NULL, 0, 0, 0, 0, NULL},
    {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 0, WHOLE, NULL, NULL, 101,
     RD_HTTP_BODY_NONE, 0, 0, "Switching Protocols"},
    /* status lines */
    {"HTTP/1.1 200 \r\n\r\n", 0, WHOLE, NULL, NULL, 200, RD_HTTP_BODY_CLOSE, 0, 0, ""},
    {"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 0, WHOLE, NULL, NULL, 200, RD_HTTP_BODY_LENGTH, 1,
     0, ""},
    {"HTTP/1.1 404 Not \tFound\xff\r\nContent-Length: 0\r\n\r\n", 0, WHOLE, NULL, NULL, 404,
     RD_HTTP_BODY_LENGTH, 1, 0, "Not \tFound\xff"},
    {"HTTP/1.1 999 x\r\nContent-Length: 0\r\n\r\n", 0, WHOLE, NULL, NULL, 999, RD_HTTP_BODY_LENGTH,
     1, 0, "x"},
    {"HTTP/1.1 099 x\r\n\r\n", 0, -1, "below 100", NULL, 0, 0, 0, 0, NULL},
    {"HTTP/1.1 20 x\r\n\r\n", 0, -1, "three digits", NULL, 0, 0, 0, 0, NULL},
    {"HTTP/1.1 2000 x\r\n\r\n", 0, -1, "three digits", NULL, 0, 0, 0, 0, NULL},
    {"HTTP/1.1  200 x\r\n\r\n", 0, -1, "three digits", NULL, 0, 0, 0, 0, NULL},
    {"HTTP/1.1 200 O\x01K\r\n\r\n", 0, -1, "reason", NULL, 0, 0, 0, 0, NULL},
    {"HTTP/1.1 200 OK\n\r\n", 0, -1, "bare LF", NULL, 0, 0, 0, 0, NULL},
    {"HTTP/1.1 200 OK\rX\r\n", 0, -1, "bare CR", NULL, 0, 0, 0, 0, NULL},
    {"HTTP/2.0 200 OK\r\n\r\n", 0, -1, "1.0 or 1.1", NULL, 0, 0, 0, 0, NULL},
    {"HTTP/1.2 200 OK\r\n\r\n", 0, -1, "1.0 or 1.1", NULL, 0, 0, 0, 0, NULL},
    {"HTTP/1.x 200 OK\r\n\r\n", 0, -1, "DIGIT", NULL, 0, 0, 0, 0, NULL},
    {"http/1.1 200 OK\r\n\r\n", 0, -1, "status line", NULL, 0, 0, 0, 0, NULL},
    {"ICY 200 OK\r\n\r\n", 0, -1, "status line", NULL, 0, 0, 0, 0, NULL},
    {"HTTP/1.1\t200 OK\r\n\r\n", 0, -1, "status line", NULL, 0, 0, 0, 0, NULL},
    {"\r\nHTTP/1.1 200 OK\r\n\r\n", 0, -1, "status line", NULL, 0, 0, 0, 0, NULL},
    /* fields, as strict as a request's */
    {R11 "X: a\r\n b\r\n\r\n", 0, -1, "obs-fold", NULL, 0, 0, 0, 0, NULL},
    {R11 " X: a\r\n\r\n", 0, -1, "whitespace before the first", NULL, 0, 0, 0, 0, NULL},
    {R11 "Content-Length : 5\r\n\r\n", 0, -1, "before a colon", NULL, 0, 0, 0, 0, NULL},
    {R11 "X: \rTransfer-Encoding: chunked\r\n\r\n", 0, -1, "bare CR", NULL, 0, 0, 0, 0, NULL},
    {R11 "X: a\nY: b\r\n\r\n", 0, -1, "bare LF", NULL, 0, 0, 0, 0, NULL},
    {R11 "X: a\r\n\rX", 0, -1, "bare CR", NULL, 0, 0, 0, 0, NULL},
    {R11 "X: a\x00b\r\n\r\n", 0, -1, "control byte", NULL, 0, 0, 0, 0, NULL},
    {R11 "X(: a\r\n\r\n", 0, -1, "field name", NULL, 0, 0, 0, 0, NULL},
    {R11 ": a\r\n\r\n", 0, -1, "empty field name", NULL, 0, 0, 0, 0, NULL},
    {R11 "X\r\n\r\n", 0, -1, "without a colon", NULL, 0, 0, 0, 0, NULL},
    /* body framing refused */
    {R11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0, -1, "with Transfer", NULL, 0,
     0, 0, 0, NULL},
    {R11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0, -1, "with Transfer", NULL, 0,
     0, 0, 0, NULL},
    {R11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, -1, "two Content-Length", NULL, 0, 0,
     0, 0, NULL},
    {R11 "Content-Length: +5\r\n\r\n", 0, -1, "1 to 19 digits", NULL, 0, 0, 0, 0, NULL},
    {R11 "Content-Length: 5, 5\r\n\r\n", 0, -1, "1 to 19 digits", NULL, 0, 0, 0, 0, NULL},
    {R11 "Content-Length: 12345678901234567890\r\n\r\n", 0, -1, "1 to 19 digits", NULL, 0, 0, 0, 0,
     NULL},
    {R11 "Content-Length: \r\n\r\n", 0, -1, "1 to 19 digits", NULL, 0, 0, 0, 0, NULL},
    {R11 "Transfer-Encoding: gzip, chunked\r\n\r\n", 0, -1, "other than chunked", NULL, 0, 0, 0, 0,
     NULL},
    {R11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, -1,
     "two Transfer-Encoding", NULL, 0, 0, 0, 0, NULL},
    {R10 "Transfer-Encoding: chunked\r\n\r\n", 0, -1, "HTTP/1.0", NULL, 0, 0, 0, 0, NULL},
    /* limits */
    {"HTTP/1.1 200 OK 345678901234567834567890\r\n\r\n", 0, -1, "status line too long", &small, 0,
     0, 0, 0, NULL},
    {R11 "X: 3456789012345678901234567890123456789012345678901234567890123\r\n\r\n", 0, -1,
     "too long", &small, 0, 0, 0, 0, NULL},
    {R11 "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 0, -1, "too many", &small, 0, 0, 0, 0, NULL},
    {R11 "Content-Length: 101\r\n\r\n", 0, -1, "body limit", &small, 0, 0, 0, 0, NULL},
    /* a status line of exactly max_request_line bytes (its CR last in a prefix) */
    {"HTTP/1.1 200 OK 3456789012345678\r\nContent-Length: 1\r\n\r\n", 0, WHOLE, NULL, &small, 200,
     RD_HTTP_BODY_LENGTH, 1, 1, "OK 3456789012345678"},
    {R11 "Content-Length: 100\r\n\r\n", 0, WHOLE, NULL, &small, 200, RD_HTTP_BODY_LENGTH, 1, 100,
     "OK"},
    /* need more */
    {"", 0, 0, NULL, NULL, 0, 0, 0, 0, NULL},
    {"HTTP/1.1 200 OK\r\n", 0, 0, NULL, NULL, 0, 0, 0, 0, NULL},
    {R11 "Content-Length: 5\r\n\r", 0, 0, NULL, NULL, 0, 0, 0, 0, NULL},
    /* the body after the head is not the head's */
    {R11 "Content-Length: 5\r\n\r\nhello", 0, 38, NULL, NULL, 200, RD_HTTP_BODY_LENGTH, 1, 5, "OK"},
};

static long parse_resp_copy(const char *in, size_t len, int flags, const rd_http_limits_t *lim,
                            rd_http_resp_t *out)
{
    char *c = malloc(len ? len : 1);
    CHECK(c);
    memcpy(c, in, len);
    rd_http_resp_t resp;
    rd_http_header_t hs[NH];
    resp.headers = hs;
    resp.cap = NH;
    long r = rd_http_parse_response(c, len, &resp, lim, flags);
    if (r > 0) {
        CHECK(resp.reason.p >= c && resp.reason.p + resp.reason.n <= c + r);
        for (size_t k = 0; k < resp.nheaders; k++) {
            CHECK(hs[k].name.p >= c && hs[k].name.p + hs[k].name.n <= c + r);
            CHECK(hs[k].value.p >= c && hs[k].value.p + hs[k].value.n <= c + r);
        }
    }
    if (out) {
        *out = resp;
        if (r > 0) out->reason.p = in + (resp.reason.p - c); /* back into in */
    }
    free(c);
    return r;
}

TEST(http_response_table)
{
    for (size_t k = 0; k < sizeof resps / sizeof resps[0]; k++) {
        const resp_case_t *c = &resps[k];
        size_t len = strlen(c->in);
        rd_http_resp_t resp;
        long r = parse_resp_copy(c->in, len, c->flags, c->lim, &resp);
        long want = c->want == WHOLE ? (long)len : c->want;
        if (r != want || (c->why && (!resp.why || !strstr(resp.why, c->why))))
            fprintf(stderr, "response case %zu %s: got %ld (%s), want %ld (%s)\n", k, c->in, r,
                    resp.why ? resp.why : "-", want, c->why ? c->why : "-");
        CHECK_EQ(r, want);
        if (c->why) CHECK(resp.why && strstr(resp.why, c->why));
        if (r > 0) {
            CHECK(!resp.why);
            CHECK_EQ(resp.status, c->status);
            CHECK_EQ(resp.body, c->body);
            CHECK_EQ(resp.keep_alive, c->ka);
            CHECK_EQ(resp.content_length, c->cl);
            CHECK(resp.reason.n == strlen(c->reason) &&
                  memcmp(resp.reason.p, c->reason, resp.reason.n) == 0);
        }
    }
}

/* Every prefix gives 0 or the whole input's error, never a look past its end. */
TEST(http_response_every_prefix)
{
    for (size_t k = 0; k < sizeof resps / sizeof resps[0]; k++) {
        const resp_case_t *c = &resps[k];
        size_t len = strlen(c->in);
        long whole = parse_resp_copy(c->in, len, c->flags, c->lim, NULL);
        for (size_t n = 0; n < len; n++) {
            long r = parse_resp_copy(c->in, n, c->flags, c->lim, NULL);
            long head = c->want > 0 && c->want != WHOLE ? c->want : LONG_MAX;
            if (!(r == 0 || (whole < 0 && r == whole) || ((long)n >= head && r == head)))
                fprintf(stderr, "response case %zu prefix %zu: %ld, whole %ld\n", k, n, r, whole);
            CHECK(r == 0 || (whole < 0 && r == whole) || ((long)n >= head && r == head));
        }
    }
}

TEST(http_response_fields)
{
    static const char in[] = "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Empty:\r\n"
                             "Set-Cookie: a=1 \t\r\n\r\n";
    rd_http_resp_t resp;
    rd_http_header_t hs[NH];
    resp.headers = hs;
    resp.cap = NH;
    CHECK_EQ(rd_http_parse_response(in, sizeof in - 1, &resp, NULL, 0), (long)(sizeof in - 1));
    CHECK_EQ(resp.status, 200);
    CHECK_EQ(resp.minor, 1);
    CHECK_EQ(resp.nheaders, 3); /* the interim head's fields are not the response's */
    CHECK(span_is(hs[0].name, "Content-Type") && span_is(hs[0].value, "text/plain"));
    CHECK(span_is(hs[1].name, "X-Empty") && hs[1].value.n == 0);
    CHECK(span_is(hs[2].name, "Set-Cookie") && span_is(hs[2].value, "a=1"));
    /* the caller's array bounds the fields */
    resp.cap = 2;
    CHECK_EQ(rd_http_parse_response(in, sizeof in - 1, &resp, NULL, 0), -1);
    CHECK(strstr(resp.why, "too many"));
}
