/*
 * rd_clock.c: virtual time for tests (reactor.testing). While a clock is
 * installed, every rd_timer and every conn's connect and idle timer sits in
 * the clock's heap (earliest deadline first, ties in start order) instead
 * of libev's, and rd_now() is the clock's time. The I/O stays real: the
 * loop still polls its sockets, without waiting.
 *
 * Time moves only in rd_clock_advance (or with autojump). Moving to each
 * deadline in turn, it sets now to that deadline and fires what is due
 * there in rounds: a round fires the timers that were due when it began,
 * then the loop runs until quiet (the I/O those callbacks caused), and a
 * timer started for now during a round (a callLater(0)) waits for the next
 * round. So chained timers each see their own deadline (unlike Twisted's
 * Clock.advance, #9819), and a callLater(0) that reschedules itself ends in
 * RD_ETOOBIG after max_rounds rounds instead of a hang (Twisted's #5962).
 *
 * "Quiet" is a loop iteration that handled no event: an ev_check watcher of
 * the highest priority, which libev invokes before the iteration's other
 * pending watchers, adds their number to loop->events. It runs only inside
 * rd_loop_flush, so the real-time path pays nothing for it.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "rd.h"

#define RD_CLOCK_ROUNDS 1000  /* rounds of timers at one instant (max_rounds' default) */
#define RD_CLOCK_POLLS 100000 /* busy iterations at one instant, in rd_clock_advance */

/* the union in rd_timer_t and rd_conn_t relies on these */
_Static_assert(sizeof(rd__tw_t) <= sizeof(ev_timer), "a virtual timer fits in an ev_timer");
_Static_assert(offsetof(rd__tw_t, slot) == offsetof(ev_timer, active),
               "slot lies where ev_timer's active does");

/*{====================================================================
 * The heap: a binary heap of pointers; each entry knows its slot
 *=====================================================================*/

static int before(const rd__tw_t *a, const rd__tw_t *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void place(rd_clock_t *k, size_t i, rd__tw_t *e)
{
    k->heap[i] = e;
    e->slot = (int)i + 1;
}

static void sift_up(rd_clock_t *k, size_t i)
{
    rd__tw_t *e = k->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(e, k->heap[parent])) break;
        place(k, i, k->heap[parent]);
        i = parent;
    }
    place(k, i, e);
}

static void sift_down(rd_clock_t *k, size_t i)
{
    rd__tw_t *e = k->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= k->n) break;
        if (child + 1 < k->n && before(k->heap[child + 1], k->heap[child])) child++;
        if (!before(k->heap[child], e)) break;
        place(k, i, k->heap[child]);
        i = child;
    }
    place(k, i, e);
}

static int reserve(rd_clock_t *k, size_t want)
{
    if (want <= k->cap) return 0;
    size_t cap = k->cap ? k->cap : 64;
    while (cap < want)
        cap *= 2;
    rd__tw_t **h = realloc(k->heap, cap * sizeof *h);
    if (!h) return -ENOMEM;
    k->heap = h;
    k->cap = cap;
    return 0;
}

static void heap_remove(rd_clock_t *k, rd__tw_t *e)
{
    size_t i = (size_t)e->slot - 1;
    e->slot = 0;
    rd__tw_t *last = k->heap[--k->n];
    if (i == k->n) return;
    k->heap[i] = last;
    last->slot = (int)i + 1;
    if (i > 0 && before(last, k->heap[(i - 1) / 2]))
        sift_up(k, i);
    else
        sift_down(k, i);
}

int rd__tw_start(rd_clock_t *k, rd__tw_t *e, double after, double repeat, void (*fire)(rd__tw_t *))
{
    if (e->slot) heap_remove(k, e);
    if (reserve(k, k->n + 1) < 0) return -ENOMEM;
    e->at = k->now + (after > 0 ? after : 0);
    e->repeat = repeat > 0 ? repeat : 0;
    e->fire = fire;
    e->seq = k->seq++;
    k->heap[k->n] = e;
    sift_up(k, k->n++);
    if (k->autojump && k->loop && !ev_is_active(&k->idle)) ev_idle_start(k->loop->ev, &k->idle);
    return 0;
}

void rd__tw_stop(rd_clock_t *k, rd__tw_t *e)
{
    if (e->slot) heap_remove(k, e);
}

double rd__tw_remaining(const rd_clock_t *k, const rd__tw_t *e)
{
    double left = e->at - k->now;
    return left > 0 ? left : 0;
}

/*{====================================================================
 * Firing
 *=====================================================================*/

static int due(const rd_clock_t *k)
{
    return k->n && k->heap[0]->at <= k->now;
}

/* One round at now: the timers due when it began, in order. A repeating
 * one goes back into the heap before its callback (as libev's does). */
static void fire_round(rd_clock_t *k)
{
    uint64_t limit = k->seq; /* started from here on: the next round */
    while (k->loop && due(k) && k->heap[0]->seq < limit) {
        rd__tw_t *e = k->heap[0];
        heap_remove(k, e);
        if (e->repeat > 0) {
            e->at += e->repeat;
            e->seq = k->seq++;
            if (reserve(k, k->n + 1) == 0) {
                k->heap[k->n] = e;
                sift_up(k, k->n++);
            }
        }
        k->fired++;
        k->loop->events++;
        e->fire(e); /* may stop, restart or free e */
    }
}

/* Autojump: the loop is quiet (libev runs idle watchers only when nothing
 * else is pending), so time moves to the next deadline. */
static void idle_cb(struct ev_loop *ev, ev_idle *w, int revents)
{
    (void)revents;
    rd_clock_t *k = rd__container(w, rd_clock_t, idle);
    if (k->n && k->heap[0]->at > k->now) k->now = k->heap[0]->at;
    if (k->n) fire_round(k);
    if (!k->n) ev_idle_stop(ev, w);
    if (k->loop) rd_loop_settle(k->loop);
}

static void count_cb(struct ev_loop *ev, ev_check *w, int revents)
{
    (void)revents;
    rd__container(w, rd_loop_t, count)->events += ev_pending_count(ev);
}

/* One iteration without waiting; whether it handled any event. */
static int busy(rd_loop_t *loop)
{
    size_t was = loop->events;
    ev_run(loop->ev, EVRUN_NOWAIT);
    rd_loop_settle(loop);
    return loop->events != was;
}

int rd_loop_flush(rd_loop_t *loop, unsigned max)
{
    rd_clock_t *k = loop->clock;
    int jumping = k && ev_is_active(&k->idle);
    if (jumping) ev_idle_stop(loop->ev, &k->idle); /* quiet here means no time moves */
    int counting = !ev_is_active(&loop->count);    /* else an outer flush counts */
    if (counting) {
        ev_set_cb(&loop->count, count_cb);
        ev_set_priority(&loop->count, EV_MAXPRI);
        ev_check_start(loop->ev, &loop->count);
        ev_unref(loop->ev); /* counting alone keeps nothing running */
    }
    unsigned polls = 0, rounds = 0;
    int r = 0;
    for (;;) {
        if (busy(loop)) {
            if (++polls > max) {
                if (loop->clock) loop->clock->stuck = 2;
                r = RD_ETOOBIG;
                break;
            }
            continue;
        }
        k = loop->clock; /* a callback may have changed it */
        if (!k || !due(k)) break;
        if (++rounds > k->max_rounds) {
            k->stuck = 1;
            r = RD_ETOOBIG;
            break;
        }
        fire_round(k);
        rd_loop_settle(loop);
    }
    if (counting) {
        ev_ref(loop->ev);
        ev_check_stop(loop->ev, &loop->count);
    }
    k = loop->clock;
    if (jumping && k && k->autojump && k->n) ev_idle_start(loop->ev, &k->idle);
    return r;
}

/*{====================================================================
 * The clock
 *=====================================================================*/

void rd_clock_init(rd_clock_t *k, double start)
{
    k->now = start;
    k->loop = NULL;
    k->heap = NULL;
    k->n = k->cap = 0;
    k->seq = 0;
    k->max_rounds = RD_CLOCK_ROUNDS;
    k->autojump = k->stuck = 0;
    k->fired = 0;
    ev_idle_init(&k->idle, idle_cb);
}

void rd_clock_destroy(rd_clock_t *k)
{
    if (k->loop) rd_loop_set_clock(k->loop, NULL);
    free(k->heap);
    k->heap = NULL;
    k->n = k->cap = 0;
}

int rd_loop_set_clock(rd_loop_t *loop, rd_clock_t *k)
{
    rd_clock_t *from = loop->clock;
    if (k == from) return 0;
    if (k && (from || k->loop)) return -EBUSY;
    if (k && reserve(k, k->n + loop->ntimers + loop->nconns + 16) < 0) return -ENOMEM;
    if (from && ev_is_active(&from->idle)) ev_idle_stop(loop->ev, &from->idle);
    for (rd_link_t *l = loop->timers.next; l != &loop->timers; l = l->next)
        rd__timer_switch(rd__container(l, rd_timer_t, link), from, k);
    for (rd_link_t *l = loop->conns.next; l != &loop->conns; l = l->next)
        rd__conn_switch(rd__container(l, rd_conn_t, link), from, k);
    if (from) from->loop = NULL;
    loop->clock = k;
    if (k) {
        k->loop = loop;
        if (k->autojump && k->n) ev_idle_start(loop->ev, &k->idle);
    }
    return 0;
}

int rd_clock_advance_to(rd_clock_t *k, double at)
{
    rd_loop_t *loop = k->loop;
    if (!loop) return -EINVAL;
    if (!(at > k->now)) at = k->now; /* never back (and not NaN) */
    k->stuck = 0;
    for (;;) {
        int r = rd_loop_flush(loop, RD_CLOCK_POLLS); /* what is due now, and its I/O */
        if (r < 0) return r;
        if (loop->clock != k) return 0; /* a callback uninstalled it */
        if (!k->n || k->heap[0]->at > at) break;
        k->now = k->heap[0]->at; /* the next deadline */
    }
    k->now = at;
    return 0;
}

int rd_clock_advance(rd_clock_t *k, double dt)
{
    return rd_clock_advance_to(k, k->now + (dt > 0 ? dt : 0));
}

double rd_clock_next(const rd_clock_t *k)
{
    return k->n ? k->heap[0]->at : INFINITY;
}

void rd_clock_autojump(rd_clock_t *k, int on)
{
    k->autojump = on != 0;
    if (!k->loop) return;
    if (k->autojump && k->n && !ev_is_active(&k->idle))
        ev_idle_start(k->loop->ev, &k->idle);
    else if (!k->autojump && ev_is_active(&k->idle))
        ev_idle_stop(k->loop->ev, &k->idle);
}
