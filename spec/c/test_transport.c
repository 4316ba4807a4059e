/* test_transport.c: flow control, half-close, timeouts, watch, resolve, UDP. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rd.h"
#include "test.h"

struct probe {
    rd_conn_t c;
    int flows[8], nflows;
    int lost, reason, err, eofs, timeouts;
    size_t got;
};

static void p_read(rd_conn_t *c, const char *d, size_t n)
{
    (void)d;
    ((struct probe *)c)->got += n;
}
static void p_lost(rd_conn_t *c, int reason, int err)
{
    struct probe *p = (struct probe *)c;
    p->lost++;
    p->reason = reason;
    p->err = err;
}
static void p_flow(rd_conn_t *c, int paused)
{
    struct probe *p = (struct probe *)c;
    if (p->nflows < 8) p->flows[p->nflows++] = paused;
}
static int p_eof_keep(rd_conn_t *c)
{
    ((struct probe *)c)->eofs++;
    return 1;
}

static const rd_conn_ops_t p_ops = {.on_read = p_read, .on_lost = p_lost, .on_flow = p_flow};
static const rd_conn_ops_t p_eof_ops = {
    .on_read = p_read, .on_lost = p_lost, .on_flow = p_flow, .on_eof = p_eof_keep};
static const rd_conn_ops_t p_rl_ops = {.on_read = p_read, .on_lost = p_lost};

static void open_pair(rd_loop_t *loop, struct probe *p, int *peer)
{
    memset(p, 0, sizeof *p);
    TEST_PAIR(loop, &p->c, peer);
    p->c.ops = &p_ops;
    rd_conn_start(&p->c);
}

static size_t drain(int fd)
{
    char buf[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        total += (size_t)n;
    return total;
}

TEST(flow_pauses_reading_and_resumes)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct probe p;
    int peer;
    open_pair(&loop, &p, &peer);
    p.c.high = 4096;
    p.c.low = 1024;
    static char big[1 << 20];
    CHECK_EQ(rd_conn_write(&p.c, big, sizeof big), 0); /* one big write is allowed */
    rd_loop_settle(&loop);
    CHECK_EQ(p.nflows, 1);
    CHECK_EQ(p.flows[0], 1);
    CHECK(p.c.flow_paused);
    CHECK(!rd__conn_reading(&p.c)); /* reading paused with the peer backed up */
    size_t got = 0;
    for (int i = 0; i < 10000 && p.nflows < 2; i++) {
        got += drain(peer);
        rd_loop_step(&loop, 0);
    }
    CHECK_EQ(p.nflows, 2);
    CHECK_EQ(p.flows[1], 0);
    CHECK(rd__conn_reading(&p.c));
    got += drain(peer);
    for (int i = 0; i < 10000 && got < sizeof big; i++) {
        rd_loop_step(&loop, 0);
        got += drain(peer);
    }
    CHECK_EQ(got, sizeof big);
    CHECK_EQ(p.lost, 0);
    rd_conn_close(&p.c, RD_ABORTED, 0);
    rd_loop_settle(&loop);
    close(peer);
    rd_loop_destroy(&loop);
}

TEST(hard_cap_aborts_a_writer_whose_peer_never_reads)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct probe p;
    int peer;
    open_pair(&loop, &p, &peer);
    p.c.max_out = 256 * 1024;
    static char chunk[64 * 1024];
    int r = 0;
    for (int i = 0; i < 1000 && r == 0; i++) {
        r = rd_conn_write(&p.c, chunk, sizeof chunk);
        rd_loop_settle(&loop);
    }
    CHECK_EQ(r, RD_ETOOBIG);
    CHECK_EQ(p.lost, 1);
    CHECK_EQ(p.reason, RD_ABORTED);
    CHECK_EQ(p.err, RD_ETOOBIG);
    close(peer);
    rd_loop_destroy(&loop);
}

TEST(half_close_both_ways)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct probe p;
    int peer;
    open_pair(&loop, &p, &peer);
    p.c.ops = &p_eof_ops;
    CHECK_EQ(shutdown(peer, SHUT_WR), 0); /* the peer is done sending */
    rd_loop_step(&loop, 1);
    CHECK_EQ(p.eofs, 1);
    CHECK_EQ(p.lost, 0);
    CHECK_EQ(rd_conn_write(&p.c, "still here", 10), 0); /* we may still write */
    rd_loop_settle(&loop);
    char buf[32];
    CHECK_EQ(read(peer, buf, sizeof buf), 10);
    CHECK_EQ(rd_conn_shutdown_write(&p.c), 0); /* now we are done too: closed */
    rd_loop_settle(&loop);
    CHECK_EQ(p.lost, 1);
    CHECK_EQ(p.reason, RD_DONE);
    CHECK_EQ(read(peer, buf, sizeof buf), 0);
    close(peer);
    rd_loop_destroy(&loop);
}

TEST(idle_timeout_restarts_on_read_and_fires)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct probe p;
    int peer;
    open_pair(&loop, &p, &peer);
    rd_conn_set_timeout(&p.c, 0.05);
    CHECK_EQ(write(peer, "x", 1), 1);
    rd_loop_step(&loop, 1); /* the read */
    CHECK_EQ(p.got, 1);
    for (int i = 0; i < 1000 && !p.lost; i++)
        rd_loop_step(&loop, 1);
    CHECK_EQ(p.lost, 1);
    CHECK_EQ(p.reason, RD_TIMEOUT);
    close(peer);
    rd_loop_destroy(&loop);
}

static int changes;
static void on_change(rd_watch_t *w)
{
    (void)w;
    changes++;
}

TEST(watch_sees_a_rename_over_the_file_once)
{
    char dir[] = "/tmp/rd_watch_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128], tmp[128];
    snprintf(path, sizeof path, "%s/script.lua", dir);
    snprintf(tmp, sizeof tmp, "%s/.script.lua.swp", dir);
    FILE *f = fopen(path, "w");
    fputs("v1", f);
    fclose(f);
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_watch_t w;
    const char *paths[] = {path};
    CHECK_EQ(rd_watch_start(&w, &loop, paths, 1, 0.02, on_change), 0);
    for (int i = 0; i < 3; i++) { /* an editor's burst: temp file, rename */
        f = fopen(tmp, "w");
        fputs("v2", f);
        fclose(f);
        CHECK_EQ(rename(tmp, path), 0);
    }
    for (int i = 0; i < 1000 && !changes; i++)
        rd_loop_step(&loop, 1);
    CHECK_EQ(changes, 1);
    rd_watch_stop(&w);
    rd_watch_stop(&w);
    rd_loop_destroy(&loop);
    unlink(path);
    rmdir(dir);
}

static int resolved_status = 1, resolved_calls;
static size_t resolved_n;
static void on_resolved(rd_resolve_t *r, int status, const rd_addr_t *a, size_t n)
{
    (void)r, (void)a;
    resolved_status = status;
    resolved_n = n;
    resolved_calls++;
}

TEST(resolve_localhost_off_the_loop_and_cancel)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_resolve_t r, gone;
    CHECK_EQ(rd_resolve_start(&r, &loop, "localhost", on_resolved), 0);
    CHECK_EQ(rd_resolve_start(&gone, &loop, "localhost", on_resolved), 0);
    rd_resolve_cancel(&gone);
    CHECK_EQ(resolved_calls, 0); /* never from inside start */
    rd_loop_run(&loop);          /* runs while the lookup is in flight */
    CHECK_EQ(resolved_calls, 1);
    CHECK_EQ(resolved_status, 0);
    CHECK(resolved_n >= 1);
    CHECK_EQ(rd_resolve_start(&r, &loop, "", on_resolved), RD_ENOTFOUND);
    rd_loop_destroy(&loop);
}

static char udp_got[64];
static void on_dgram(rd_udp_t *u, const char *d, size_t n, const rd_addr_t *from)
{
    (void)u, (void)from;
    memcpy(udp_got, d, n < 63 ? n : 63);
}

TEST(udp_roundtrip_and_port_in_use)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_udp_t a, b, c;
    CHECK_EQ(rd_udp_open(&a, &loop, "127.0.0.1", 0), 0);
    CHECK_EQ(rd_udp_open(&b, &loop, "127.0.0.1", 0), 0);
    a.on_datagram = on_dgram;
    b.on_datagram = on_dgram;
    CHECK_EQ(rd_udp_send(&b, "ping", 4, &a.addr), 0);
    rd_loop_step(&loop, 1);
    CHECK(strcmp(udp_got, "ping") == 0);
    char host[64];
    int port = rd_addr_host(&a.addr, host, sizeof host);
    CHECK_EQ(rd_udp_open(&c, &loop, "127.0.0.1", port), -EADDRINUSE);
    rd_udp_close(&a);
    rd_udp_close(&a);
    rd_udp_close(&b);
    CHECK_EQ(loop.nlisteners, 0);
    rd_loop_destroy(&loop);
}

TEST(udp_sockets_are_counted_apart_from_listeners)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_udp_t u;
    CHECK_EQ(rd_udp_open(&u, &loop, "127.0.0.1", 0), 0);
    CHECK_EQ(loop.nlisteners, 0);
    CHECK_EQ(loop.nudps, 1);
    rd_udp_close(&u);
    rd_udp_close(&u);
    CHECK_EQ(loop.nudps, 0);
    rd_loop_destroy(&loop);
}

static int nonblocking(int fd)
{
    return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

/* stdio's half-close: the dup'ed write fd shares stdout's open file
 * description, so its O_NONBLOCK must go before the dup is closed. */
TEST(stream_half_close_gives_the_write_fd_back_blocking)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    int in[2], out[2];
    CHECK_EQ(pipe(in), 0);
    CHECK_EQ(pipe(out), 0);
    struct probe p;
    memset(&p, 0, sizeof p);
    CHECK_EQ(rd_conn_init_stream(&p.c, &loop, in[0], out[1]), 0);
    p.c.ops = &p_rl_ops;
    rd_conn_start(&p.c);
    CHECK(nonblocking(out[1])); /* one description: the dup's flag shows here */
    CHECK_EQ(rd_conn_write(&p.c, "bye", 3), 0);
    CHECK_EQ(rd_conn_shutdown_write(&p.c), 0);
    rd_loop_settle(&loop);
    char buf[8];
    CHECK_EQ(read(out[0], buf, sizeof buf), 3);
    CHECK_EQ(p.lost, 0);         /* half-closed: still reading */
    CHECK(!nonblocking(out[1])); /* stdout is blocking again */
    CHECK(nonblocking(in[0]));   /* the read side is still ours */
    rd_conn_close(&p.c, RD_DONE, 0);
    rd_loop_settle(&loop);
    CHECK(!nonblocking(in[0]));
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    rd_loop_destroy(&loop);
}

/* A terminal on stdin and stdout is one description: the half-close must
 * leave it non-blocking for the reads still to come, and the close restores
 * it. */
TEST(stream_half_close_keeps_a_shared_description_for_reading)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct probe p;
    memset(&p, 0, sizeof p);
    CHECK_EQ(rd_conn_init_stream(&p.c, &loop, sv[0], sv[0]), 0);
    p.c.ops = &p_rl_ops;
    rd_conn_start(&p.c);
    CHECK_EQ(rd_conn_shutdown_write(&p.c), 0);
    rd_loop_settle(&loop);
    CHECK(nonblocking(sv[0]));
    rd_conn_close(&p.c, RD_DONE, 0);
    rd_loop_settle(&loop);
    CHECK(!nonblocking(sv[0]));
    close(sv[0]), close(sv[1]);
    rd_loop_destroy(&loop);
}

/* The core settles after every callback it makes, the watch's included:
 * what the callback wrote is sent before libev goes on (one ev_run
 * iteration, no rd_loop_step to settle afterwards). */
static rd_conn_t *watch_conn;
static void on_change_write(rd_watch_t *w)
{
    (void)w;
    changes++;
    rd_conn_write(watch_conn, "reloaded", 8);
}

TEST(watch_callback_is_settled)
{
    char dir[] = "/tmp/rd_watch_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/script.lua", dir);
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    struct probe p;
    int peer;
    open_pair(&loop, &p, &peer);
    watch_conn = &p.c;
    rd_watch_t w;
    const char *paths[] = {path};
    CHECK_EQ(rd_watch_start(&w, &loop, paths, 1, 0.01, on_change_write), 0);
    FILE *f = fopen(path, "w");
    fputs("v2", f);
    fclose(f);
    changes = 0;
    for (int i = 0; i < 1000 && !changes; i++)
        ev_run(loop.ev, EVRUN_ONCE);
    CHECK_EQ(changes, 1);
    char buf[16];
    CHECK_EQ(read(peer, buf, sizeof buf), 8);
    rd_watch_stop(&w);
    rd_conn_close(&p.c, RD_ABORTED, 0);
    rd_loop_settle(&loop);
    close(peer);
    rd_loop_destroy(&loop);
    unlink(path);
    rmdir(dir);
}

TEST(udp_opens_on_a_host_name)
{
    rd_loop_t loop;
    CHECK_EQ(rd_loop_init(&loop, NULL), 0);
    rd_udp_t a, b;
    CHECK_EQ(rd_udp_open(&a, &loop, "localhost", 0), 0);
    CHECK_EQ(a.addr.sa.sa_family, AF_INET);
    CHECK_EQ(rd_udp_open(&b, &loop, "127.0.0.1", 0), 0);
    a.on_datagram = on_dgram;
    memset(udp_got, 0, sizeof udp_got);
    CHECK_EQ(rd_udp_send(&b, "pong", 4, &a.addr), 0);
    for (int i = 0; i < 100 && !udp_got[0]; i++)
        rd_loop_step(&loop, 1);
    CHECK(strcmp(udp_got, "pong") == 0);
    rd_udp_close(&b);
    CHECK_EQ(rd_udp_open(&b, &loop, "no-such-host.invalid", 0), RD_ENOTFOUND);
    CHECK_EQ(loop.nudps, 1);
    rd_udp_close(&a);
    rd_loop_destroy(&loop);
}
