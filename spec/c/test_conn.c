/* test_conn.c: loops, timers, connections and listeners, without Lua. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rd.h"
#include "test.h"

static int fired;
static void count_cb(rd_timer_t *t)
{
    (void)t;
    fired++;
}

TEST(loop_timer_fires_once_and_stop_idempotent)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_timer_t t;
    rd_timer_init(&t, &loop, count_cb);
    rd_timer_start(&t, 0.001, 0);
    CHECK_EQ(loop.ntimers, 1);
    rd_loop_run(&loop); /* returns: nothing left to watch */
    CHECK_EQ(fired, 1);
    CHECK_EQ(loop.ntimers, 0);
    CHECK(!rd_timer_active(&t));
    rd_timer_stop(&t);
    rd_timer_stop(&t);
    CHECK_EQ(loop.ntimers, 0);
    rd_loop_destroy(&loop);
    rd_loop_destroy(&loop); /* idempotent */
}

TEST(loop_two_loops_in_one_process)
{
    rd_loop_t a, b;
    CHECK_EQ(rd_loop_init(&a, NULL), 0);
    CHECK_EQ(rd_loop_init(&b, ev_default_loop(0)), 0); /* an injected loop */
    rd_timer_t ta, tb;
    rd_timer_init(&ta, &a, count_cb);
    rd_timer_init(&tb, &b, count_cb);
    fired = 0;
    rd_timer_start(&ta, 0, 0);
    rd_timer_start(&tb, 0, 0);
    rd_loop_run(&a);
    CHECK_EQ(fired, 1); /* b's timer is b's business */
    rd_loop_run(&b);
    CHECK_EQ(fired, 2);
    rd_loop_destroy(&a);
    rd_loop_destroy(&b);
}

/* A conn on one end of a socketpair; the test drives the other end. */
struct probe {
    rd_conn_t c;
    char got[256];
    size_t ngot;
    int lost, reason;
};

static void probe_read(rd_conn_t *c, const char *data, size_t len)
{
    struct probe *p = (struct probe *)c;
    memcpy(p->got + p->ngot, data, len);
    p->ngot += len;
    /* two writes in one callback leave in one segment */
    rd_conn_write(c, "echo:", 5);
    rd_conn_write(c, data, len);
}

static void probe_lost(rd_conn_t *c, int reason, int err)
{
    (void)err;
    struct probe *p = (struct probe *)c;
    p->lost++;
    p->reason = reason;
    CHECK_EQ(c->fd, -1);
}

static const rd_conn_ops_t probe_ops = {.on_read = probe_read, .on_lost = probe_lost};

static void probe_open(rd_loop_t *loop, struct probe *p, int *peer)
{
    memset(p, 0, sizeof *p);
    TEST_PAIR(loop, &p->c, peer);
    p->c.ops = &probe_ops;
    rd_conn_start(&p->c);
}

TEST(conn_echo_over_socketpair)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct probe p;
    int peer;
    probe_open(&loop, &p, &peer);
    CHECK_EQ(write(peer, "hi", 2), 2);
    rd_loop_step(&loop, 1);
    CHECK_EQ(p.ngot, 2);
    char buf[64];
    ssize_t n = read(peer, buf, sizeof buf);
    CHECK_EQ(n, 7);
    CHECK(memcmp(buf, "echo:hi", 7) == 0);
    close(peer); /* FIN: the conn closes cleanly and says so once */
    rd_loop_step(&loop, 1);
    CHECK_EQ(p.lost, 1);
    CHECK_EQ(p.reason, RD_DONE);
    CHECK_EQ(loop.nconns, 0);
    rd_loop_destroy(&loop);
}

TEST(conn_close_idempotent_and_lost_once)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct probe p;
    int peer;
    probe_open(&loop, &p, &peer);
    CHECK_EQ(rd_conn_write(&p.c, "dropped", 7), 0);
    CHECK_EQ(rd_conn_close(&p.c, RD_ABORTED, 0), 0);
    CHECK_EQ(rd_conn_close(&p.c, RD_ABORTED, 0), RD_ECLOSED);
    CHECK_EQ(rd_conn_lose(&p.c), RD_ECLOSED);
    CHECK_EQ(rd_conn_write(&p.c, "x", 1), RD_ECLOSED);
    CHECK_EQ(p.lost, 0); /* deferred: never nested in the caller */
    rd_loop_settle(&loop);
    CHECK_EQ(p.lost, 1);
    CHECK_EQ(p.reason, RD_ABORTED);
    rd_loop_settle(&loop);
    CHECK_EQ(p.lost, 1);
    char buf[16];
    CHECK_EQ(read(peer, buf, sizeof buf), 0); /* aborted: nothing was sent */
    rd_conn_detach(&p.c);                     /* a finalizer after close: harmless */
    close(peer);
    rd_loop_destroy(&loop);
}

TEST(conn_lose_flushes_before_close)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct probe p;
    int peer;
    probe_open(&loop, &p, &peer);
    CHECK_EQ(rd_conn_write(&p.c, "bye", 3), 0);
    CHECK_EQ(rd_conn_lose(&p.c), 0);
    CHECK_EQ(rd_conn_lose(&p.c), RD_ECLOSED);
    rd_loop_settle(&loop);
    CHECK_EQ(p.lost, 1);
    CHECK_EQ(p.reason, RD_DONE);
    char buf[16];
    CHECK_EQ(read(peer, buf, sizeof buf), 3);
    CHECK_EQ(read(peer, buf, sizeof buf), 0);
    close(peer);
    rd_loop_destroy(&loop);
}

static int released;
static void count_release(void *ud, uintptr_t token)
{
    int *sum = ud; /* &released */
    *sum += (int)token;
}

TEST(conn_borrowed_write_sent_in_order_and_released_once)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct probe p;
    int peer;
    probe_open(&loop, &p, &peer);
    released = 0;
    static char block[8192];
    memset(block, 'b', sizeof block);
    CHECK_EQ(rd_conn_write(&p.c, "<", 1), 0);
    CHECK_EQ(rd_conn_write_borrowed(&p.c, block, sizeof block, count_release, &released, 1), 0);
    CHECK_EQ(rd_conn_write(&p.c, ">", 1), 0);
    CHECK_EQ(rd_conn_write_borrowed(&p.c, block, 0, count_release, &released, 10), 0);
    CHECK_EQ(released, 10); /* nothing to hold: given back at once */
    rd_loop_settle(&loop);  /* sent: given back */
    CHECK_EQ(released, 11);
    char buf[8194];
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t n = read(peer, buf + got, sizeof buf - got);
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK(buf[0] == '<' && buf[8193] == '>' && memcmp(buf + 1, block, sizeof block) == 0);
    /* queued, then the conn aborted before a byte of it left: given back */
    CHECK_EQ(rd_conn_write_borrowed(&p.c, block, sizeof block, count_release, &released, 100), 0);
    CHECK_EQ(rd_conn_close(&p.c, RD_ABORTED, 0), 0);
    CHECK_EQ(released, 111);
    /* refused: nothing queued, and release is the caller's to do */
    CHECK_EQ(rd_conn_write_borrowed(&p.c, block, sizeof block, count_release, &released, 1000),
             RD_ECLOSED);
    CHECK_EQ(released, 111);
    rd_loop_settle(&loop);
    CHECK_EQ(p.lost, 1);
    close(peer);
    rd_loop_destroy(&loop);
}

static void abort_on_pause(rd_conn_t *c, int paused)
{
    if (paused) rd_conn_close(c, RD_ABORTED, 0);
}

static const rd_conn_ops_t aborting_ops = {
    .on_read = probe_read, .on_lost = probe_lost, .on_flow = abort_on_pause};

TEST(conn_borrowed_write_whose_flow_callback_closes_is_released_once)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct probe p;
    int peer;
    probe_open(&loop, &p, &peer);
    p.c.ops = &aborting_ops;
    released = 0;
    static char block[RD_HIGH_WATER + 1]; /* crosses the high mark by itself */
    /* queued, then dropped by the close inside the call: released once, and 0
     * (the caller must not release it again) */
    CHECK_EQ(rd_conn_write_borrowed(&p.c, block, sizeof block, count_release, &released, 1), 0);
    CHECK_EQ(released, 1);
    CHECK_EQ(p.c.state, RD_CLOSED);
    rd_loop_settle(&loop);
    CHECK_EQ(p.lost, 1);
    CHECK_EQ(p.reason, RD_ABORTED);
    close(peer);
    rd_loop_destroy(&loop);
}

static rd_conn_t *no_alloc(rd_listener_t *l)
{
    (void)l;
    return NULL;
}

TEST(listener_port_zero_and_in_use)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_listener_t a, b;
    CHECK_EQ(rd_listener_open(&a, &loop, "127.0.0.1", 0, 16), 0);
    a.alloc = no_alloc;
    char host[64];
    int port = rd_addr_host(&a.addr, host, sizeof host);
    CHECK(port > 0);
    CHECK_EQ(rd_listener_open(&b, &loop, "127.0.0.1", port, 16), -EADDRINUSE);
    CHECK_EQ(loop.nlisteners, 1);
    rd_listener_close(&a);
    rd_listener_close(&a);
    CHECK_EQ(loop.nlisteners, 0);
    rd_loop_destroy(&loop);
}

/* settle sends every pending write before it reports any loss, whatever the
 * order they were queued in: a's on_lost sees b's answer already sent. */
static int b_peer = -1;
static ssize_t b_seen = -2;
static void lost_reads_b(rd_conn_t *c, int reason, int err)
{
    (void)c, (void)reason, (void)err;
    char buf[16];
    b_seen = read(b_peer, buf, sizeof buf);
}
static const rd_conn_ops_t reads_b_ops = {.on_read = probe_read, .on_lost = lost_reads_b};

TEST(settle_sends_writes_before_lost_reports)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct probe a, b;
    int a_peer;
    probe_open(&loop, &a, &a_peer);
    probe_open(&loop, &b, &b_peer);
    a.c.ops = &reads_b_ops;
    CHECK_EQ(rd_conn_close(&a.c, RD_ABORTED, 0), 0); /* a's report is due first */
    CHECK_EQ(rd_conn_write(&b.c, "late", 4), 0);     /* then b has output */
    rd_loop_settle(&loop);
    CHECK_EQ(b_seen, 4);
    rd_conn_close(&b.c, RD_ABORTED, 0);
    rd_loop_settle(&loop);
    close(a_peer);
    close(b_peer);
    rd_loop_destroy(&loop);
}

/* The ready and write queues are arrays on the loop whose entries a close
 * leaves behind (stale, skipped when reached): a conn closed in another's
 * callback, with no report to come, may be freed by its owner at once. */
static struct probe *victim;
static int victim_reads, victim_lost;
static void victim_read(rd_conn_t *c, const char *data, size_t len)
{
    (void)c, (void)data, (void)len;
    victim_reads++;
}
static void victim_lost_cb(rd_conn_t *c, int reason, int err)
{
    (void)reason, (void)err;
    victim_lost++;
    free(c); /* a report's conn is freed in it: the queues are drained by then */
}
static const rd_conn_ops_t victim_silent = {.on_read = victim_read};
static const rd_conn_ops_t victim_told = {.on_read = victim_read, .on_lost = victim_lost_cb};
static void kills_victim(rd_conn_t *c, const char *data, size_t len)
{
    (void)c, (void)data, (void)len;
    CHECK_EQ(rd_conn_write(&victim->c, "x", 1), 0); /* due on pending_writes too */
    rd_conn_close(&victim->c, RD_ABORTED, 0);
    if (victim->c.ops == &victim_silent) free(victim); /* no report: gone at once */
    victim = NULL;
}
static const rd_conn_ops_t killer_ops = {.on_read = kills_victim};

static void queues_with_a_victim(const rd_conn_ops_t *vops)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct probe a;
    int a_peer, v_peer;
    probe_open(&loop, &a, &a_peer);
    a.c.ops = &killer_ops;
    victim = calloc(1, sizeof *victim);
    CHECK(victim != NULL);
    TEST_PAIR(&loop, &victim->c, &v_peer);
    victim->c.ops = vops;
    rd_conn_start(&victim->c);
    victim_reads = victim_lost = 0;
    rd_conn_redeliver(&a.c); /* both ready, a first: a's read closes the victim */
    rd_conn_redeliver(&victim->c);
    rd_loop_settle(&loop);
    CHECK_EQ(victim_reads, 0);
    CHECK_EQ(victim_lost, vops->on_lost ? 1 : 0);
    CHECK_EQ(loop.nconns, 1);
    rd_conn_close(&a.c, RD_ABORTED, 0);
    rd_loop_settle(&loop);
    close(a_peer);
    close(v_peer);
    rd_loop_destroy(&loop);
}

TEST(queued_conn_closed_and_freed_by_another)
{
    queues_with_a_victim(&victim_silent); /* forgotten by the queues at close */
    queues_with_a_victim(&victim_told);   /* freed in its on_lost, after the drain */
}

/* An append the queue found no memory for leaves its conn flagged but out
 * of the array (simulated: the flag set, the queue marked over); the settle
 * finds it on loop->conns instead, reads it and writes its answer. */
TEST(queue_over_finds_flagged_conns_on_the_list)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct probe p;
    int peer;
    probe_open(&loop, &p, &peer);
    CHECK_EQ(write(peer, "hi", 2), 2);
    p.c.ready = 1;
    loop.ready.over = 1;
    CHECK(rd_loop_has_ready(&loop));
    rd_loop_settle(&loop);
    CHECK_EQ(p.ngot, 2);
    CHECK_EQ(loop.ready.over, 0);
    char buf[16];
    CHECK_EQ(read(peer, buf, sizeof buf), 7); /* "echo:hi" */
    CHECK_EQ(rd__bufq_append(&p.c.out, &loop.pool, "late", 4), 0);
    p.c.write_due = 1;
    loop.pending_writes.over = 1;
    rd_loop_settle(&loop);
    CHECK_EQ(read(peer, buf, sizeof buf), 4);
    CHECK_EQ(loop.pending_writes.over, 0);
    rd_conn_close(&p.c, RD_ABORTED, 0);
    rd_loop_settle(&loop);
    close(peer);
    rd_loop_destroy(&loop);
}

static struct probe accepted;
static int naccepted;
static rd_conn_t *alloc_probe(rd_listener_t *l)
{
    (void)l;
    memset(&accepted, 0, sizeof accepted);
    return &accepted.c;
}
static void on_accept(rd_listener_t *l, rd_conn_t *c)
{
    (void)l;
    naccepted++;
    c->ops = &probe_ops;
}

/* `reactord app.lua localhost`: a name is looked up (IPv4 first). */
TEST(listener_opens_on_a_host_name)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_listener_t l;
    CHECK_EQ(rd_listener_open(&l, &loop, "localhost", 0, 16), 0);
    l.alloc = alloc_probe;
    l.on_accept = on_accept;
    CHECK_EQ(l.addr.sa.sa_family, AF_INET);
    char host[64];
    CHECK(rd_addr_host(&l.addr, host, sizeof host) > 0);
    CHECK(strncmp(host, "127.", 4) == 0); /* a loopback address */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    CHECK_EQ(connect(fd, &l.addr.sa, rd_addr_len(&l.addr)), 0);
    for (int i = 0; i < 100 && !naccepted; i++)
        rd_loop_step(&loop, 1);
    CHECK_EQ(naccepted, 1);
    CHECK_EQ(write(fd, "hi", 2), 2);
    char buf[16];
    for (int i = 0; i < 100 && accepted.ngot < 2; i++)
        rd_loop_step(&loop, 1);
    CHECK_EQ(read(fd, buf, sizeof buf), 7); /* echo:hi */
    close(fd);
    rd_conn_close(&accepted.c, RD_ABORTED, 0);
    rd_listener_close(&l);
    rd_loop_settle(&loop);
    rd_loop_destroy(&loop);
}

TEST(listener_on_a_name_that_does_not_resolve)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_listener_t l;
    CHECK_EQ(rd_listener_open(&l, &loop, "no-such-host.invalid", 0, 16), RD_ENOTFOUND);
    CHECK_EQ(l.fd, -1);
    CHECK_EQ(loop.nlisteners, 0);
    rd_loop_destroy(&loop);
}

/* Once closed, a listener's memory is its owner's again (the binding's
 * listener is garbage after stopListening) while the conns it accepted live
 * on: their close must not count them off it. */
TEST(listener_closed_and_freed_before_its_conns)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_listener_t *l = malloc(sizeof *l);
    CHECK(l != NULL);
    CHECK_EQ(rd_listener_open(l, &loop, "127.0.0.1", 0, 16), 0);
    l->alloc = alloc_probe;
    l->on_accept = on_accept;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(connect(fd, &l->addr.sa, rd_addr_len(&l->addr)), 0);
    naccepted = 0;
    for (int i = 0; i < 100 && !naccepted; i++)
        rd_loop_step(&loop, 1);
    CHECK_EQ(naccepted, 1);
    CHECK(accepted.c.listener == l);
    rd_listener_close(l);
    CHECK(accepted.c.listener == NULL);
    free(l);
    rd_conn_close(&accepted.c, RD_ABORTED, 0);
    rd_loop_settle(&loop);
    CHECK_EQ(accepted.lost, 1);
    close(fd);
    rd_loop_destroy(&loop);
}
