/* test_deadline.c: the loop's deadline heap (rd_loop_next_deadline) gives
 * what walking every timer and conn gives, under random starts, stops,
 * restarts, fires, idle timeouts set and cleared, and closes. */
#include <math.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rd.h"
#include "test.h"

enum { NT = 40, NC = 24 };
static rd_timer_t timers[NT];
static rd_conn_t conns[NC];
static int peers[NC];
static unsigned seed = 12345;
static int fires;

static unsigned rnd(unsigned n)
{
    seed = seed * 1103515245u + 12345u;
    return (seed >> 16) % n;
}

static void check_same(rd_loop_t *loop)
{
    double heap = rd_loop_next_deadline(loop), walk = rd__loop_next_deadline_walk(loop);
    if (heap != walk) {
        fprintf(stderr, "heap %.9f walk %.9f ndl %zu\n", heap, walk, loop->ndl);
        for (int i = 0; i < NT; i++)
            if (ev_is_active(&timers[i].w))
                fprintf(stderr, "t%d slot %u rem %.9f rep %g pend %d\n", i, timers[i].dl.slot,
                        ev_timer_remaining(loop->ev, &timers[i].w), timers[i].w.repeat,
                        timers[i].w.pending);
        for (int i = 0; i < NC; i++) {
            struct rd__connx *x = rd__conn_x(&conns[i]);
            if (x && ev_is_active(&x->timer))
                fprintf(stderr, "c%d slot %u rem %.9f pend %d\n", i, x->dl.slot,
                        ev_timer_remaining(loop->ev, &x->timer), x->timer.pending);
        }
    }
    CHECK(heap == walk);
}

/* a fire that changes other timers, as a callback may */
static void fired(rd_timer_t *t)
{
    (void)t;
    fires++;
    rd_timer_t *o = &timers[rnd(NT)];
    if (rnd(2))
        rd_timer_stop(o);
    else
        rd_timer_start(o, rnd(5) * 1e-3, 0);
}

static void on_read(rd_conn_t *c, const char *data, size_t len)
{
    (void)c, (void)data, (void)len;
}

static void on_timeout(rd_conn_t *c)
{
    if (rnd(2)) rd_conn_close(c, RD_TIMEOUT, 0); /* else kept: the clock starts again */
}

static const rd_conn_ops_t ops = {.on_read = on_read, .on_timeout = on_timeout};

TEST(deadline_heap_matches_a_walk_under_random_timer_changes)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    CHECK(rd_loop_next_deadline(&loop) == -1);
    for (int i = 0; i < NT; i++)
        rd_timer_init(&timers[i], &loop, fired);
    memset(conns, 0, sizeof conns);
    for (int i = 0; i < NC; i++) {
        TEST_PAIR(&loop, &conns[i], &peers[i]);
        conns[i].ops = &ops;
        rd_conn_start(&conns[i]);
    }
    int closed = 0;
    for (int step = 0; step < 4000; step++) {
        unsigned op = rnd(10);
        if (op < 3) {
            rd_timer_start(&timers[rnd(NT)], rnd(20) * 1e-3, rnd(3) ? 0 : rnd(4) * 1e-3);
        } else if (op < 5) {
            rd_timer_stop(&timers[rnd(NT)]);
        } else if (op < 7) {
            rd_conn_t *c = &conns[rnd(NC)];
            rd_conn_set_timeout(c, rnd(4) ? rnd(20) * 1e-3 + 1e-3 : 0);
        } else if (op == 7) {
            int i = (int)rnd(NC);
            if (conns[i].state != RD_CLOSED && write(peers[i], "x", 1) != 1) CHECK(0);
        } else if (op == 8 && rnd(20) == 0) {
            rd_conn_t *c = &conns[rnd(NC)];
            if (c->state != RD_CLOSED) closed++;
            rd_conn_close(c, RD_ABORTED, 0);
        } else {
            rd_loop_step(&loop, 0); /* what is due fires; reads restart idle clocks */
        }
        check_same(&loop);
        if (step % 200 == 0 && rd_loop_next_deadline(&loop) >= 0) {
            rd_loop_step(&loop, 1); /* wait for the next fire: due ones, not a poll */
            check_same(&loop);
        }
    }
    CHECK(fires > 0);
    for (int i = 0; i < NT; i++)
        rd_timer_stop(&timers[i]);
    for (int i = 0; i < NC; i++) {
        rd_conn_close(&conns[i], RD_ABORTED, 0);
        close(peers[i]);
    }
    rd_loop_settle(&loop);
    CHECK(rd_loop_next_deadline(&loop) == -1);
    CHECK_EQ(loop.ndl, 0);
    rd_loop_destroy(&loop);
    (void)closed;
}

TEST(deadline_heap_gives_the_earliest_and_moves_with_a_virtual_clock)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_timer_t a, b;
    rd_timer_init(&a, &loop, fired);
    rd_timer_init(&b, &loop, fired);
    rd_timer_start(&a, 100, 0);
    rd_timer_start(&b, 10, 0);
    double d = rd_loop_next_deadline(&loop);
    CHECK(d > 9 && d <= 10);
    rd_timer_stop(&b);
    d = rd_loop_next_deadline(&loop);
    CHECK(d > 99 && d <= 100);
    rd_clock_t k;
    rd_clock_init(&k, 0);
    CHECK_EQ(rd_loop_set_clock(&loop, &k), 0);
    CHECK_EQ(loop.ndl, 0); /* the clock's heap holds it now */
    d = rd_loop_next_deadline(&loop);
    CHECK(d > 99 && d <= 100);
    CHECK_EQ(rd_loop_set_clock(&loop, NULL), 0);
    CHECK_EQ(loop.ndl, 1);
    check_same(&loop);
    rd_timer_stop(&a);
    CHECK(rd_loop_next_deadline(&loop) == -1);
    rd_clock_destroy(&k);
    rd_loop_destroy(&loop);
}
