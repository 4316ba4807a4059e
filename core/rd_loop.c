/*
 * rd_loop.c: the loop object. It owns what every connection shares (the read
 * buffer, the chunk pool) and three lists that make work batch up: readable
 * connections (an I/O event only marks them), connections with output to
 * send, and closed connections whose loss is not yet reported. Settling
 * drains them in that order: every ready connection is read in one batch,
 * then each one written to gets one send, then the lost reports.
 * It runs before the loop sleeps (an ev_prepare watcher: Redis's
 * beforeSleep) and after each callback the core makes.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rd.h"

#define RD_READ_BUFFER 65536
#define RD_POOL_CHUNKS 64

void rd__link_init(rd_link_t *l)
{
    l->next = l->prev = l;
}

void rd__link_add(rd_link_t *head, rd_link_t *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

void rd__link_del(rd_link_t *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->next = l->prev = l;
}

/*{====================================================================
 * The queues of conns (rd__cq_t): an array per loop, not links per conn
 *=====================================================================*/

#define CQ_MIN 64

/* Append c (its flag is set already) to a full queue. Without memory for
 * it, the queue is marked over, and its taker looks for flagged conns on
 * loop->conns. */
void rd__cq_grow(rd__cq_t *q, rd_conn_t *c)
{
    uint32_t cap = q->cap ? q->cap * 2 : CQ_MIN;
    rd_conn_t **v = cap > q->cap ? realloc(q->v, cap * sizeof *v) : NULL;
    if (!v) {
        q->over = 1;
        return;
    }
    q->v = v;
    q->cap = cap;
    q->v[q->n++] = c;
}

/* The next entry, NULL once drained (the array starts over then). Stale and
 * cleared entries come out as they are: the taker checks the flag. */
static inline rd_conn_t *cq_take(rd__cq_t *q)
{
    if (q->i < q->n) return q->v[q->i++];
    q->i = q->n = 0;
    return NULL;
}

static void cq_forget(rd__cq_t *q, const rd_conn_t *c)
{
    for (uint32_t k = q->i; k < q->n; k++)
        if (q->v[k] == c) q->v[k] = NULL;
}

/* After an append failed: the first conn on loop->conns with the flag at
 * offset off set, or NULL (then nothing is missing from the array). O(n),
 * only when memory ran out. */
static rd_conn_t *cq_over_find(rd_loop_t *loop, rd__cq_t *q, size_t off)
{
    for (rd_link_t *l = loop->conns.next; l != &loop->conns; l = l->next) {
        rd_conn_t *c = rd__container(l, rd_conn_t, link);
        if (*((unsigned char *)c + off)) return c;
    }
    q->over = 0;
    return NULL;
}

/* The next conn off q whose flag at offset off is still set, NULL once q is
 * drained: stale entries (closed or cancelled since) and cleared ones are
 * skipped. The usual case, an empty queue (each answer went right after its
 * read), is one test. */
static inline rd_conn_t *cq_next(rd_loop_t *loop, rd__cq_t *q, size_t off)
{
    if (q->i == q->n && !q->over) {
        q->i = q->n = 0;
        return NULL;
    }
    for (;;) {
        rd_conn_t *c = cq_take(q);
        if (!c && q->over) c = cq_over_find(loop, q, off);
        if (!c) {
            if (q->i < q->n) continue; /* NULL: an entry cleared */
            return NULL;
        }
        if (*((unsigned char *)c + off)) return c;
    }
}

void rd__cq_forget(rd_conn_t *c)
{
    cq_forget(&c->loop->ready, c);
    cq_forget(&c->loop->pending_writes, c);
}

void rd__lost_later(rd_conn_t *c)
{
    if (c->lost_due) return;
    c->lost_due = 1;
    rd__link_add(&c->loop->pending_lost, &c->link); /* CLOSED: off loop->conns */
}

void rd__lost_cancel(rd_conn_t *c)
{
    if (!c->lost_due) return;
    rd__link_del(&c->link);
    c->lost_due = 0;
}

static void prepare_cb(struct ev_loop *ev, ev_prepare *w, int revents)
{
    (void)ev, (void)revents;
    rd_loop_settle(rd__container(w, rd_loop_t, prepare));
}

int rd_loop_init(rd_loop_t *loop, struct ev_loop *ev)
{
    loop->own_ev = 0;
    if (!ev) {
        ev = ev_loop_new(EVFLAG_AUTO);
        if (!ev) return -ENOMEM;
        loop->own_ev = 1;
    }
    loop->rbuf = loop->rbuf_base = malloc(RD_READ_BUFFER + RD__ALIAS_SPAN);
    if (!loop->rbuf) {
        if (loop->own_ev) ev_loop_destroy(ev);
        return -ENOMEM;
    }
    loop->ev = ev;
    loop->data = NULL;
    loop->rbuf_size = RD_READ_BUFFER;
    rd_pool_init(&loop->pool, RD_POOL_CHUNKS);
    rd__link_init(&loop->conns);
    memset(&loop->ready, 0, sizeof loop->ready);
    memset(&loop->pending_writes, 0, sizeof loop->pending_writes);
    rd__link_init(&loop->pending_lost);
    loop->run_reads = NULL;
    rd__link_init(&loop->timers);
    rd__link_init(&loop->listeners);
    rd__link_init(&loop->udps);
    loop->settling = 0;
    loop->spare_fd = -1;
    loop->resolver = NULL;
    loop->nconns = loop->ntimers = loop->nlisteners = loop->nudps = loop->refused = 0;
    loop->max_conns = 0;
    loop->clock = NULL;
    loop->events = 0;
    loop->dl = NULL;
    loop->ndl = loop->dlcap = 0;
    loop->dl_lost = 0;
    ev_init(&loop->count, NULL); /* rd_loop_flush's (rd_clock.c) */
    ev_prepare_init(&loop->prepare, prepare_cb);
    ev_prepare_start(ev, &loop->prepare);
    ev_unref(ev); /* the flush hook alone must not keep the loop running */
    return 0;
}

void rd__loop_shift_rbuf(rd_loop_t *loop)
{
    /* only the next read lands there: the bytes just read stay where they are */
    size_t at = (size_t)(loop->rbuf - loop->rbuf_base);
    loop->rbuf = loop->rbuf_base + (at + RD__ALIAS_STEP) % RD__ALIAS_SPAN;
}

void rd_loop_destroy(rd_loop_t *loop)
{
    if (!loop->ev) return;
    rd_loop_set_clock(loop, NULL);
    rd__resolver_destroy(loop);
    ev_ref(loop->ev);
    ev_prepare_stop(loop->ev, &loop->prepare);
    if (loop->own_ev) ev_loop_destroy(loop->ev);
    loop->ev = NULL;
    rd_pool_destroy(&loop->pool);
    if (loop->spare_fd >= 0) close(loop->spare_fd);
    loop->spare_fd = -1;
    loop->resolver = NULL;
    free(loop->rbuf_base);
    loop->rbuf = loop->rbuf_base = NULL;
    free(loop->dl);
    loop->dl = NULL;
    loop->ndl = loop->dlcap = 0;
    free(loop->ready.v);
    free(loop->pending_writes.v);
    memset(&loop->ready, 0, sizeof loop->ready);
    memset(&loop->pending_writes, 0, sizeof loop->pending_writes);
}

void rd_loop_run(rd_loop_t *loop)
{
    ev_run(loop->ev, 0);
    rd_loop_settle(loop);
}

void rd_loop_step(rd_loop_t *loop, int wait)
{
    ev_run(loop->ev, wait ? EVRUN_ONCE : EVRUN_NOWAIT);
    rd_loop_settle(loop);
}

void rd_loop_break(rd_loop_t *loop)
{
    ev_break(loop->ev, EVBREAK_ALL);
}

double rd_now(const rd_loop_t *loop)
{
    return loop->clock ? loop->clock->now : ev_now(loop->ev);
}

int rd_loop_has_ready(const rd_loop_t *loop)
{
    /* stale entries count too: reading them drains the queue */
    return loop->ready.i < loop->ready.n || loop->ready.over;
}

/* on_read may longjmp out of rd__conn_read (the binding's protected batch
 * catches it in run_reads): so c leaves the ready queue before it is read,
 * and a longjmp leaves the queue whole, for the owner to call this again. */
void rd_loop_read_ready(rd_loop_t *loop)
{
    rd_conn_t *c;
    while ((c = cq_next(loop, &loop->ready, offsetof(rd_conn_t, ready)))) {
        c->ready = 0;
        rd__conn_read(c);
    }
}

/* Reads, then writes, then lost reports: a report that writes (a chat's
 * "X left") is sent in the same settle, and on_lost runs here only, never
 * nested in another callback. A longjmp out of on_read must land in
 * run_reads, never cross this function (settling would stay set). */
void rd_loop_settle(rd_loop_t *loop)
{
    if (loop->settling) return; /* a callback's settle: the outer call drains it */
    loop->settling = 1;
    for (;;) {
        if (rd_loop_has_ready(loop)) {
            if (loop->run_reads)
                loop->run_reads(loop);
            else
                rd_loop_read_ready(loop);
            continue;
        }
        rd_conn_t *w = cq_next(loop, &loop->pending_writes, offsetof(rd_conn_t, write_due));
        if (w) {
            rd__write_cancel(w);
            rd__conn_flush(w);
            continue;
        }
        /* both queues are drained now: an on_lost may free its conn */
        if (loop->pending_lost.next == &loop->pending_lost) break;
        rd_conn_t *c = rd__container(loop->pending_lost.next, rd_conn_t, link);
        rd__lost_cancel(c);
        if (c->ops->on_lost) c->ops->on_lost(c, c->reason, c->err); /* may free c */
    }
    loop->settling = 0;
}

/*{====================================================================
 * Signals
 *=====================================================================*/

static void signal_cb(struct ev_loop *ev, ev_signal *w, int revents)
{
    (void)ev, (void)revents;
    rd_signal_t *s = rd__container(w, rd_signal_t, w);
    rd_loop_t *loop = s->loop;
    s->cb(s);
    rd_loop_settle(loop);
}

void rd_signal_start(rd_signal_t *s, rd_loop_t *loop, int signum, rd_signal_cb cb)
{
    s->loop = loop;
    s->cb = cb;
    ev_signal_init(&s->w, signal_cb, signum);
    ev_signal_start(loop->ev, &s->w);
    ev_unref(loop->ev); /* a handler alone does not keep the loop running */
}

void rd_signal_stop(rd_signal_t *s)
{
    if (!ev_is_active(&s->w)) return;
    ev_ref(s->loop->ev);
    ev_signal_stop(s->loop->ev, &s->w);
}

/*{====================================================================
 * The deadline heap: every started libev timer of an rd_timer or a conn,
 * earliest first, so a host's "how long may I sleep" is O(1) and each
 * start, stop or fire O(log n). The key is the ev_timer's own deadline
 * (libev's `at`, monotonic while started) copied at each sync: libev
 * reschedules a repeating timer before its callback runs, and a key that
 * moved under the heap would corrupt it for the operations in between. So
 * the top's remaining time is ev_timer_remaining's, and a read costs
 * nothing (an idle timer is re-armed only when it fires).
 *=====================================================================*/

static double dl_at(const rd__dl_t *n)
{
    return n->at;
}

static void dl_place(rd_loop_t *loop, size_t i, rd__dl_t *n)
{
    loop->dl[i] = n;
    n->slot = (unsigned)i + 1;
}

static void dl_up(rd_loop_t *loop, size_t i)
{
    rd__dl_t *n = loop->dl[i];
    double at = dl_at(n);
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!(at < dl_at(loop->dl[parent]))) break;
        dl_place(loop, i, loop->dl[parent]);
        i = parent;
    }
    dl_place(loop, i, n);
}

static void dl_down(rd_loop_t *loop, size_t i)
{
    rd__dl_t *n = loop->dl[i];
    double at = dl_at(n);
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= loop->ndl) break;
        if (child + 1 < loop->ndl && dl_at(loop->dl[child + 1]) < dl_at(loop->dl[child])) child++;
        if (!(dl_at(loop->dl[child]) < at)) break;
        dl_place(loop, i, loop->dl[child]);
        i = child;
    }
    dl_place(loop, i, n);
}

static void dl_fix(rd_loop_t *loop, size_t i)
{
    if (i > 0 && dl_at(loop->dl[i]) < dl_at(loop->dl[(i - 1) / 2]))
        dl_up(loop, i);
    else
        dl_down(loop, i);
}

void rd__dl_del(rd_loop_t *loop, rd__dl_t *n)
{
    if (!n->slot) return;
    size_t i = n->slot - 1;
    n->slot = 0;
    rd__dl_t *last = loop->dl[--loop->ndl];
    if (i == loop->ndl) return;
    dl_place(loop, i, last);
    dl_fix(loop, i);
}

void rd__dl_sync(rd_loop_t *loop, rd__dl_t *n)
{
    if (!ev_is_active(n->w)) {
        rd__dl_del(loop, n);
        return;
    }
    n->at = n->w->at;
    if (n->slot) {
        dl_fix(loop, n->slot - 1);
        return;
    }
    if (loop->ndl == loop->dlcap) {
        size_t cap = loop->dlcap ? loop->dlcap * 2 : 64;
        rd__dl_t **h = realloc(loop->dl, cap * sizeof *h);
        if (!h) { /* the timer runs all the same; the deadline is found by walking */
            loop->dl_lost = 1;
            return;
        }
        loop->dl = h;
        loop->dlcap = cap;
    }
    loop->dl[loop->ndl] = n;
    dl_up(loop, loop->ndl++);
}

double rd__loop_next_deadline_walk(const rd_loop_t *loop)
{
    double best = -1;
    int first = 1;
    for (rd_link_t *l = loop->timers.next; l != &loop->timers; l = l->next) {
        double left = rd_timer_remaining(rd__container(l, rd_timer_t, link));
        if (first || left < best) best = left;
        first = 0;
    }
    if (!loop->clock) /* connections' connect and idle timeouts */
        for (rd_link_t *l = loop->conns.next; l != &loop->conns; l = l->next) {
            rd_conn_t *c = rd__container(l, rd_conn_t, link);
            struct rd__connx *x = rd__conn_x(c);
            if (!x || !ev_is_active(&x->timer)) continue;
            double left = ev_timer_remaining(loop->ev, &x->timer);
            if (first || left < best) best = left;
            first = 0;
        }
    return best;
}

double rd_loop_next_deadline(const rd_loop_t *loop)
{
    if (loop->clock) { /* its own heap holds every timer, conns' too */
        double next = rd_clock_next(loop->clock);
        if (next == INFINITY) return -1;
        double left = next - loop->clock->now;
        return left > 0 ? left : 0;
    }
    if (loop->dl_lost) return rd__loop_next_deadline_walk(loop);
    if (!loop->ndl) return -1;
    return ev_timer_remaining(loop->ev, loop->dl[0]->w);
}
