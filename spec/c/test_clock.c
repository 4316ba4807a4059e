/* test_clock.c: core's virtual clock (rd_clock.c) without Lua: deadlines
 * in order with rd_now() at each, ties in start order, a timer started for
 * now runs in the next round, a runaway is RD_ETOOBIG, idle timeouts and
 * autojump, and timers moving between the clocks. */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rd.h"
#include "test.h"

/* Each timer records its tag and rd_now() when it fires. */
struct rec {
    char tags[64];
    double at[64];
    int n; /* fires; the first 64 recorded */
};

struct tagged {
    rd_timer_t t;
    char tag;
    struct rec *rec;
    struct tagged *chain; /* started for now from this one's callback */
    double chain_after;
    int again; /* restart itself for now this many times */
};

static void tag_cb(rd_timer_t *t)
{
    struct tagged *x = rd__container(t, struct tagged, t);
    struct rec *r = x->rec;
    if (r->n < 64) {
        r->tags[r->n] = x->tag;
        r->at[r->n] = rd_now(t->loop);
    }
    r->n++;
    if (x->chain) rd_timer_start(&x->chain->t, x->chain_after, 0);
    if (x->again > 0) {
        x->again--;
        rd_timer_start(t, 0, 0);
    }
}

static void tagged_init(struct tagged *x, rd_loop_t *loop, struct rec *r, char tag)
{
    memset(x, 0, sizeof *x);
    rd_timer_init(&x->t, loop, tag_cb);
    x->tag = tag;
    x->rec = r;
}

TEST(clock_fires_each_deadline_in_order_with_now_at_it)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_clock_t k;
    rd_clock_init(&k, 10);
    CHECK_EQ(rd_loop_set_clock(&loop, &k), 0);
    CHECK(rd_now(&loop) == 10);
    struct rec r = {0};
    struct tagged a, b, c, d, e;
    tagged_init(&a, &loop, &r, 'a');
    tagged_init(&b, &loop, &r, 'b');
    tagged_init(&c, &loop, &r, 'c');
    tagged_init(&d, &loop, &r, 'd');
    tagged_init(&e, &loop, &r, 'e');
    rd_timer_start(&c.t, 3, 0);
    rd_timer_start(&a.t, 1, 0);
    rd_timer_start(&b.t, 1, 0); /* ties a: after it, in start order */
    a.chain = &d;
    a.chain_after = 1.5; /* started at 11, due at 12.5: inside this advance */
    rd_timer_start(&e.t, 5, 0);
    CHECK(rd_clock_next(&k) == 11);
    CHECK_EQ(rd_clock_advance(&k, 4), 0);
    CHECK_EQ(r.n, 4);
    CHECK(memcmp(r.tags, "abdc", 4) == 0);
    CHECK(r.at[0] == 11 && r.at[1] == 11 && r.at[2] == 12.5 && r.at[3] == 13);
    CHECK(rd_now(&loop) == 14);
    CHECK(rd_timer_active(&e.t));
    CHECK(rd_timer_remaining(&e.t) == 1);
    CHECK_EQ(loop.ntimers, 1);
    rd_timer_stop(&e.t);
    CHECK(isinf(rd_clock_next(&k)));
    CHECK_EQ(loop.ntimers, 0);
    CHECK_EQ(rd_loop_set_clock(&loop, NULL), 0);
    rd_clock_destroy(&k);
    rd_loop_destroy(&loop);
}

TEST(clock_timer_for_now_runs_next_round_and_runaway_is_too_big)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_clock_t k;
    rd_clock_init(&k, 0);
    CHECK_EQ(rd_loop_set_clock(&loop, &k), 0);
    struct rec r = {0};
    struct tagged a, b, z;
    tagged_init(&a, &loop, &r, 'a');
    tagged_init(&b, &loop, &r, 'b');
    tagged_init(&z, &loop, &r, 'z');
    a.chain = &z; /* a callLater(0) from a's callback */
    rd_timer_start(&a.t, 1, 0);
    rd_timer_start(&b.t, 1, 0);
    CHECK_EQ(rd_clock_advance(&k, 1), 0);
    CHECK_EQ(r.n, 3);
    CHECK(memcmp(r.tags, "abz", 3) == 0); /* z waited for the round after a and b */
    CHECK(r.at[2] == 1);

    /* one that restarts itself for now, 5000 times: 1000 rounds, then stop */
    struct rec r2 = {0};
    struct tagged q;
    tagged_init(&q, &loop, &r2, 'q');
    q.again = 5000;
    rd_timer_start(&q.t, 1, 0);
    CHECK_EQ(rd_clock_advance(&k, 10), RD_ETOOBIG);
    CHECK_EQ(k.stuck, 1);
    CHECK_EQ(r2.n, 1000);
    CHECK(rd_now(&loop) == 2); /* time stopped where it stuck */
    CHECK(rd_timer_active(&q.t));
    rd_timer_stop(&q.t);
    CHECK_EQ(rd_clock_advance(&k, 1), 0);
    CHECK(rd_now(&loop) == 3);
    rd_clock_destroy(&k); /* uninstalls */
    CHECK(loop.clock == NULL);
    rd_loop_destroy(&loop);
}

TEST(clock_moves_started_timers_both_ways)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct rec r = {0};
    struct tagged a;
    tagged_init(&a, &loop, &r, 'a');
    rd_timer_start(&a.t, 100, 0); /* on libev's clock */
    rd_clock_t k, k2;
    rd_clock_init(&k, 0);
    rd_clock_init(&k2, 0);
    CHECK_EQ(rd_loop_set_clock(&loop, &k), 0);
    CHECK_EQ(rd_loop_set_clock(&loop, &k2), -EBUSY); /* one at a time */
    CHECK(fabs(rd_timer_remaining(&a.t) - 100) < 1);
    CHECK_EQ(rd_clock_advance(&k, 60), 0);
    CHECK_EQ(r.n, 0);
    CHECK_EQ(rd_loop_set_clock(&loop, NULL), 0); /* 40 s left, on libev's clock again */
    CHECK(rd_timer_active(&a.t));
    CHECK(fabs(rd_timer_remaining(&a.t) - 40) < 1);
    CHECK_EQ(rd_loop_set_clock(&loop, &k), 0);
    CHECK_EQ(rd_clock_advance(&k, 41), 0);
    CHECK_EQ(r.n, 1);
    CHECK_EQ(loop.ntimers, 0);
    rd_clock_destroy(&k);
    rd_clock_destroy(&k2);
    rd_loop_destroy(&loop);
}

/* A conn with an idle timeout on virtual time. */
struct idle {
    rd_conn_t c;
    int lost, reason;
    double lost_at;
};

static void idle_read(rd_conn_t *c, const char *p, size_t n)
{
    (void)c, (void)p, (void)n;
}

static void idle_lost(rd_conn_t *c, int reason, int err)
{
    (void)err;
    struct idle *x = rd__container(c, struct idle, c);
    x->lost++;
    x->reason = reason;
    x->lost_at = rd_now(c->loop);
}

static const rd_conn_ops_t idle_ops = {.on_read = idle_read, .on_lost = idle_lost};

TEST(clock_runs_idle_timeouts_and_a_read_restarts_them)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_clock_t k;
    rd_clock_init(&k, 0);
    CHECK_EQ(rd_loop_set_clock(&loop, &k), 0);
    struct idle x;
    memset(&x, 0, sizeof x);
    int peer;
    TEST_PAIR(&loop, &x.c, &peer);
    x.c.ops = &idle_ops;
    rd_conn_start(&x.c);
    rd_conn_set_timeout(&x.c, 30);
    CHECK_EQ(rd_clock_advance(&k, 20), 0);
    CHECK_EQ(write(peer, "x", 1), 1);
    CHECK_EQ(rd_clock_advance(&k, 29), 0); /* the read at 20 restarted it: due at 50 */
    CHECK_EQ(x.lost, 0);
    CHECK_EQ(rd_clock_advance(&k, 5), 0);
    CHECK_EQ(x.lost, 1);
    CHECK_EQ(x.reason, RD_TIMEOUT);
    CHECK(x.lost_at == 50);
    close(peer);
    rd_clock_destroy(&k);
    rd_loop_destroy(&loop);
}

static void stop_cb(rd_timer_t *t)
{
    rd_loop_break(t->loop);
}

static void to_libev_cb(rd_timer_t *t)
{
    CHECK_EQ(rd_loop_set_clock(t->loop, NULL), 0);
}

/* A conn whose idle timeout is due at the very moment the clock changes
 * (another callback of the same instant switches) still times out, on the
 * new clock: it moved with 0 s left, and it used to be dropped there. */
TEST(clock_switch_keeps_an_idle_timeout_due_now)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_clock_t k;
    rd_clock_init(&k, 0);
    CHECK_EQ(rd_loop_set_clock(&loop, &k), 0);
    rd_timer_t sw;
    rd_timer_init(&sw, &loop, to_libev_cb);
    rd_timer_start(&sw, 10, 0); /* started first: fires first at 10 */
    struct idle x;
    memset(&x, 0, sizeof x);
    int peer;
    TEST_PAIR(&loop, &x.c, &peer);
    x.c.ops = &idle_ops;
    rd_conn_start(&x.c);
    CHECK_EQ(rd_conn_set_timeout(&x.c, 10), 0);
    CHECK_EQ(rd_clock_advance(&k, 10), 0);
    CHECK(loop.clock == NULL); /* the advance may have run libev's due timers too */
    rd_timer_t guard;          /* on libev's clock: ends the run if the timeout was lost */
    rd_timer_init(&guard, &loop, stop_cb);
    rd_timer_start(&guard, 5, 0);
    while (!x.lost && rd_timer_active(&guard))
        rd_loop_step(&loop, 1);
    CHECK_EQ(x.lost, 1);
    CHECK_EQ(x.reason, RD_TIMEOUT);
    rd_timer_stop(&guard);
    close(peer);
    rd_clock_destroy(&k);
    rd_loop_destroy(&loop);
}

TEST(clock_autojump_runs_an_hour_at_once)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_clock_t k;
    rd_clock_init(&k, 0);
    CHECK_EQ(rd_loop_set_clock(&loop, &k), 0);
    rd_clock_autojump(&k, 1);
    struct rec r = {0};
    struct tagged a;
    tagged_init(&a, &loop, &r, 'a');
    rd_timer_start(&a.t, 60, 60); /* repeating */
    rd_timer_t stop;
    rd_timer_init(&stop, &loop, stop_cb);
    rd_timer_start(&stop, 3599, 0);
    rd_loop_run(&loop);
    CHECK(rd_now(&loop) == 3599);
    CHECK_EQ(r.n, 59);
    CHECK(r.at[58] == 3540);
    rd_timer_stop(&a.t);
    rd_clock_destroy(&k);
    rd_loop_destroy(&loop);
}

TEST(flush_stops_when_quiet_and_counts_events)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct idle x;
    memset(&x, 0, sizeof x);
    int peer;
    TEST_PAIR(&loop, &x.c, &peer);
    x.c.ops = &idle_ops;
    rd_conn_start(&x.c);
    CHECK_EQ(rd_loop_flush(&loop, 100), 0);
    size_t quiet = loop.events;
    CHECK_EQ(write(peer, "abc", 3), 3);
    CHECK_EQ(rd_loop_flush(&loop, 100), 0);
    CHECK(loop.events > quiet); /* the read was an event */
    close(peer);
    CHECK_EQ(rd_loop_flush(&loop, 100), 0);
    CHECK_EQ(x.lost, 1);
    CHECK_EQ(x.reason, RD_DONE);
    rd_loop_destroy(&loop);
}
