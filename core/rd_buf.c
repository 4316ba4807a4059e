/*
 * rd_buf.c: output queue of chunks. Small writes are copied into the tail
 * chunk; a write larger than a chunk gets a chunk of its own size; a
 * borrowed block (rd__bufq_borrow: a big Lua string) is queued by reference
 * and its owner told when the queue is done with it. Drained chunks go back
 * to a per-loop pool, so a connection that writes and flushes on every
 * request allocates nothing once the pool is warm.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rd.h"

/* A borrowed block's header, in its chunk's data: where the bytes are and
 * whom to tell when the queue is done with them. */
struct borrow {
    const char *p;
    rd_release_fn release;
    void *ud;
    uintptr_t token;
};

static inline struct borrow *borrow_of(rd_chunk_t *k)
{
    return (struct borrow *)(void *)k->data; /* data is aligned for it */
}

static inline const char *chunk_bytes(const rd_chunk_t *k)
{
    return k->cap ? k->data : borrow_of((rd_chunk_t *)k)->p;
}

void rd_pool_init(rd_pool_t *p, unsigned max)
{
    p->free = p->free_b = NULL;
    p->nfree = p->nfree_b = 0;
    p->max = max;
}

static void free_list(rd_chunk_t *k)
{
    while (k) {
        rd_chunk_t *next = k->next;
        free(k);
        k = next;
    }
}

void rd_pool_destroy(rd_pool_t *p)
{
    free_list(p->free);
    free_list(p->free_b);
    p->free = p->free_b = NULL;
    p->nfree = p->nfree_b = 0;
}

/* A pool's two free lists (chunks, borrowed blocks' headers): take the
 * first, or keep k while the list holds fewer than max (else free it). */
static rd_chunk_t *list_take(rd_chunk_t **list, unsigned *n)
{
    rd_chunk_t *k = *list;
    *list = k->next;
    (*n)--;
    return k;
}

static void list_keep(const rd_pool_t *p, rd_chunk_t **list, unsigned *n, rd_chunk_t *k)
{
    if (*n < p->max) {
        k->next = *list;
        *list = k;
        (*n)++;
    } else {
        free(k);
    }
}

static rd_chunk_t *chunk_new(rd_pool_t *p, size_t need)
{
    rd_chunk_t *k;
    if (need <= RD_CHUNK_SIZE && p && p->free) {
        k = list_take(&p->free, &p->nfree);
    } else {
        size_t cap = need > RD_CHUNK_SIZE ? need : RD_CHUNK_SIZE;
        if (cap > UINT32_MAX) return NULL;
        k = malloc(sizeof *k + cap);
        if (!k) return NULL;
        k->cap = (uint32_t)cap;
    }
    k->next = NULL;
    k->start = k->end = 0;
    return k;
}

static void chunk_free(rd_pool_t *p, rd_chunk_t *k)
{
    if (!k->cap) { /* borrowed: its owner may have the bytes back */
        struct borrow *b = borrow_of(k);
        b->release(b->ud, b->token);
        if (p)
            list_keep(p, &p->free_b, &p->nfree_b, k);
        else
            free(k);
    } else if (p && k->cap == RD_CHUNK_SIZE) {
        list_keep(p, &p->free, &p->nfree, k);
    } else {
        free(k);
    }
}

void rd_buf_init(rd_buf_t *b, rd_pool_t *pool)
{
    b->head = b->tail = NULL;
    b->size = 0;
    b->pool = pool;
}

/* The queue's three fields by address: rd_buf_t's and rd__bufq_t's are the
 * same fields in two structs (a conn's has no pool pointer), and one body
 * serves both without casting one struct to the other. */
typedef struct {
    rd_chunk_t **head, **tail;
    size_t *size;
} qref;

static inline void q_link(qref q, rd_chunk_t *k, size_t len)
{
    if (*q.tail)
        (*q.tail)->next = k;
    else
        *q.head = k;
    *q.tail = k;
    *q.size += len;
}

static inline int q_append(qref q, rd_pool_t *pool, const void *data, size_t len)
{
    const char *s = data;
    if (len == 0) return 0;
    if (*q.tail && (*q.tail)->cap) { /* fill what is left of the tail first */
        rd_chunk_t *t = *q.tail;
        size_t room = t->cap - t->end;
        if (room >= len) {
            memcpy(t->data + t->end, s, len);
            t->end += (uint32_t)len;
            *q.size += len;
            return 0;
        }
    }
    rd_chunk_t *k = chunk_new(pool, len);
    if (!k) return -ENOMEM;
    memcpy(k->data, s, len);
    k->end = (uint32_t)len;
    q_link(q, k, len);
    return 0;
}

static int q_borrow(qref q, rd_pool_t *pool, const void *data, size_t len, rd_release_fn release,
                    void *ud, uintptr_t token)
{
    if (len > UINT32_MAX) return -ENOMEM; /* start and end are 32 bits */
    rd_chunk_t *k;
    if (pool && pool->free_b) {
        k = list_take(&pool->free_b, &pool->nfree_b);
    } else {
        k = malloc(sizeof *k + sizeof(struct borrow));
        if (!k) return -ENOMEM;
    }
    k->next = NULL;
    k->start = 0;
    k->end = (uint32_t)len;
    k->cap = 0;
    *borrow_of(k) = (struct borrow){data, release, ud, token};
    q_link(q, k, len);
    return 0;
}

static inline int q_iov(const rd_chunk_t *head, struct iovec *iov, int max)
{
    int n = 0;
    for (const rd_chunk_t *k = head; k && n < max; k = k->next) {
        iov[n].iov_base = (char *)chunk_bytes(k) + k->start;
        iov[n].iov_len = k->end - k->start;
        n++;
    }
    return n;
}

static inline void q_consume(qref q, rd_pool_t *pool, size_t n)
{
    while (n > 0 && *q.head) {
        rd_chunk_t *k = *q.head;
        size_t avail = k->end - k->start;
        if (n < avail) {
            k->start += (uint32_t)n;
            *q.size -= n;
            return;
        }
        n -= avail;
        *q.size -= avail;
        *q.head = k->next;
        if (!*q.head) *q.tail = NULL;
        chunk_free(pool, k);
    }
}

int rd_buf_append(rd_buf_t *b, const void *data, size_t len)
{
    return q_append((qref){&b->head, &b->tail, &b->size}, b->pool, data, len);
}

int rd_buf_iov(const rd_buf_t *b, struct iovec *iov, int max)
{
    return q_iov(b->head, iov, max);
}

void rd_buf_consume(rd_buf_t *b, size_t n)
{
    q_consume((qref){&b->head, &b->tail, &b->size}, b->pool, n);
}

void rd_buf_clear(rd_buf_t *b)
{
    rd_buf_consume(b, b->size);
}

int rd__bufq_append(rd__bufq_t *q, rd_pool_t *pool, const void *data, size_t len)
{
    return q_append((qref){&q->head, &q->tail, &q->size}, pool, data, len);
}

int rd__bufq_iov(const rd__bufq_t *q, struct iovec *iov, int max)
{
    return q_iov(q->head, iov, max);
}

int rd__bufq_borrow(rd__bufq_t *q, rd_pool_t *pool, const void *data, size_t len,
                    rd_release_fn release, void *ud, uintptr_t token)
{
    return q_borrow((qref){&q->head, &q->tail, &q->size}, pool, data, len, release, ud, token);
}

void rd__bufq_consume(rd__bufq_t *q, rd_pool_t *pool, size_t n)
{
    q_consume((qref){&q->head, &q->tail, &q->size}, pool, n);
}
