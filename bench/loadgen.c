/*
 * rd_loadgen: closed-loop load generator for the "zen" protocol, on libev.
 *
 *   rd_loadgen [options] HOST PORT
 *
 * Load mode (default): open -c persistent connections (paced, with retries),
 * then each connection sends one question, waits for the complete answer,
 * checks it byte for byte, and sends the next one (rotating through the three
 * known questions). After -w seconds of warm-up it measures for -d seconds
 * (or until -n answers) and prints requests/s and p50/p99 latency.
 *
 * Pipelined (-D N, or -m int32): each connection keeps N requests in flight;
 * every answer is checked in order, and each one answered sends the next
 * (the new requests of one read go out in one send). -m int32 sends
 * Int32StringReceiver frames (a 4-byte big-endian length, then a payload of
 * 16, 40, 100 or 200 bytes that holds the connection and the frame's sequence
 * number) and expects each back byte for byte, an echo.
 *
 * Chat (-m chat): the room of examples/chat.lua. Every connection is a member:
 * it sends "NAME: m<i>" and waits for "CLIENT: <host>"; once all have joined,
 * each sends messages (32-byte bodies: its sequence number in hex, then a fixed
 * text) with at most -D of them not yet delivered to every other member. Each
 * member checks every frame it gets: the join notices, and each message framed
 * "\n#[m<j>@<host>]>>BODY" from the right sender, in that sender's order, none
 * missing, none twice, none its own. Counted: messages delivered per second
 * (one message to 99 others is 99 deliveries), latency from send to each
 * delivery. At the end it waits for every message sent to reach everyone.
 *
 * Echo (-m echo): each connection keeps a window (-W bytes, default 64 KiB) of
 * a pseudo-random byte stream in flight (its own offset into a 1,000,003-byte
 * pattern, a prime so the stream never lines up with a buffer size) and checks
 * every byte that comes back at its place in the stream: a wrong, missing,
 * doubled or reordered byte is a mismatch. A connection is up once its first
 * 16 bytes came back. Counted: MB (10^6 bytes) echoed and checked per second;
 * the summary's requests/rps/srv_us_per_req are in MB (unit=MB). At the end it
 * waits for every byte sent to come back.
 *
 * Connection rate (-m connrate): -c connections at a time, each one cycle after
 * another: connect, ask one zen question, check the answer, close with
 * SO_LINGER 0 (an RST: the loopback fills with no TIME-WAIT sockets, so the
 * run is bounded by the server, not by ephemeral ports). Counted: connections
 * per second (unit=connection), latency of a whole cycle. Every connect
 * failure, wrong answer, early close or time-out is an error.
 *
 * Idle mode (-i): open -c connections, do one request on each (so the server
 * has built its per-connection state), print "rd_loadgen: idle: N connections
 * ready", then hold them until SIGTERM/SIGINT (or -d seconds if given).
 *
 * The last line on stdout is one "rd_loadgen: key=value ..." summary.
 * Exit status: 0 all good; 1 any mismatch, dropped connection, reply time-out
 * or connection that could not be established; 2 usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stddef.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

/* ---- protocol ---------------------------------------------------------- */

#define NQUESTIONS 3
static const struct {
    const char *q, *a;
    size_t qlen, alen;
} zen[NQUESTIONS] = {
#define ZEN(q, a)                                                                                  \
    {                                                                                              \
        q, a, sizeof(q) - 1, sizeof(a) - 1                                                         \
    }
    ZEN("Beautiful is better than?", "Ugly."),
    ZEN("Explicit is better than?", "Implicit."),
    ZEN("Simple is better than?", "Complex."),
#undef ZEN
};

/* ---- latency histogram: log-linear buckets, 1/32 relative precision ----- */

#define H_SUB_BITS 5
#define H_SUB (1u << H_SUB_BITS)
#define H_BUCKETS ((64 - H_SUB_BITS) * H_SUB + H_SUB)

struct hist {
    uint64_t count, max;
    uint64_t b[H_BUCKETS];
};

static unsigned hist_index(uint64_t v)
{
    if (v < 2 * H_SUB) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - H_SUB_BITS;
    return shift * H_SUB + (unsigned)(v >> shift);
}

/* Midpoint of the values that land in bucket i. */
static double hist_value(unsigned i)
{
    if (i < 2 * H_SUB) return i;
    unsigned shift = i / H_SUB - 1;
    uint64_t m = i % H_SUB + H_SUB;
    double lo = (double)(m << shift), hi = (double)((m + 1) << shift);
    return (lo + hi - 1) / 2;
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->count++;
    if (v > h->max) h->max = v;
}

static double hist_pct(const struct hist *h, double p)
{
    if (!h->count) return 0;
    double exact = p / 100.0 * (double)h->count;
    uint64_t want = (uint64_t)exact, seen = 0;
    if ((double)want < exact || want < 1) want++;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            double v = hist_value(i);
            return v < (double)h->max ? v : (double)h->max;
        }
    }
    return (double)h->max;
}

/* ---- state ------------------------------------------------------------- */

enum cstate {
    C_WAIT,       /* queued for a (re)connect */
    C_CONNECTING, /* non-blocking connect in progress */
    C_FIRST,      /* connected, first question sent, not yet answered */
    C_READY,      /* confirmed, nothing outstanding */
    C_BUSY,       /* question outstanding */
    C_DEAD,
};

struct conn {
    ev_io io;
    enum cstate state;
    int q;             /* index of the outstanding question */
    int attempts;      /* connect attempts so far */
    uint32_t got;      /* answer bytes received so far */
    uint32_t sent;     /* question bytes sent so far */
    uint64_t t_send;   /* ns: when the question went out */
    uint64_t t_state;  /* ns: when the connect attempt started */
    double not_before; /* ev time before which no reconnect */
};

enum mode { M_ZEN, M_INT32, M_CHAT, M_ECHO, M_CONNRATE, M_COUNT };
static const char *const mode_names[] = {"zen", "int32", "chat", "echo", "connrate"};

/* P_DRAIN: measuring is over, no new questions, outstanding answers awaited */
enum phase { P_CONNECT, P_WARMUP, P_MEASURE, P_DRAIN, P_DONE };

static struct {
    /* options */
    const char *host, *port;
    int conns;
    double duration, warmup;
    int duration_set;
    uint64_t total; /* -n; 0 = use duration */
    int idle;
    int max_inflight;
    int max_attempts;
    double connect_timeout, reply_timeout, connect_deadline;
    int quiet;
    int mode;  /* M_ZEN, M_INT32, M_CHAT */
    int depth; /* requests (chat: messages) in flight per connection */
    int px;    /* pipelined or chat: the px_ path below, not the closed-loop one */

    struct addrinfo *addr;
    struct conn *c;
    int *queue; /* ring of connection indices waiting to connect */
    int qhead, qlen;
    int inflight; /* connecting or awaiting first answer */
    int ready, dead, busy;

    enum phase phase;
    uint64_t t_measure_start, t_measure_end;
    double t_connect_start, connect_secs;
    uint64_t done; /* answers counted while measuring */
    struct hist hist;

    uint64_t mismatches, dropped, timeouts, connfail, retries;
    int reported;
    int interrupted;
    struct rusage ru0, ru1;
    struct px *x;     /* per connection, for the px_ path */
    uint64_t outq;    /* px: requests (chat: messages) sent and not yet answered (delivered) */
    uint64_t notices; /* chat: join notices received */
    int *dirty;       /* chat: connections with output to flush */
    int ndirty;
    struct ex *e;              /* echo: per connection */
    uint64_t window;           /* echo: -W, bytes in flight per connection */
    uint64_t checked;          /* echo: bytes echoed and checked, warm-up included */
    int server_pid;            /* -S: sample this process's CPU time */
    double srv_cpu0, srv_cpu1; /* its user+system seconds at start/end */
} g;

static struct ev_loop *loop;
static ev_timer pump_w, scan_w, phase_w;
static char rbuf[65536];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* User + system CPU seconds of process pid (from /proc), or -1; its parent in *ppid. */
static double proc_cpu_secs(int pid, int *ppid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut, st;
    int pp;
    if (!p ||
        sscanf(p + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &pp, &ut, &st) != 3)
        return -1;
    if (ppid) *ppid = pp;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The same for pid and all its descendants: a master's workers serve, so a
 * server's CPU is the whole tree's (this kernel has no /proc/PID/task/TID/children,
 * so the children are found by their parent field). */
static double proc_tree_cpu_secs(int pid, int depth)
{
    double t = proc_cpu_secs(pid, NULL);
    if (t < 0 || depth > 4) return t;
    DIR *d = opendir("/proc");
    if (!d) return t;
    struct dirent *de;
    /* readdir_r is deprecated; this program has one thread */
    // cppcheck-suppress readdirCalled
    while ((de = readdir(d)) != NULL) {
        char *end;
        long q = strtol(de->d_name, &end, 10);
        int pp;
        if (*end || q <= 0 || q == pid) continue;
        if (proc_cpu_secs((int)q, &pp) >= 0 && pp == pid) {
            double ct = proc_tree_cpu_secs((int)q, depth + 1);
            if (ct > 0) t += ct;
        }
    }
    closedir(d);
    return t;
}

static void sample_cpu(struct rusage *ru, double *srv)
{
    getrusage(RUSAGE_SELF, ru);
    if (g.server_pid) *srv = proc_tree_cpu_secs(g.server_pid, 0);
}

static void finish(void);
static void end_measure(void);
static void start_run(void);
static void conn_cb(struct ev_loop *l, ev_io *w, int revents);

static void show(const char *what, const char *p, size_t n)
{
    fprintf(stderr, "%s%s\"", what, *what ? " " : "");
    for (size_t i = 0; i < n && i < 64; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 32 && ch < 127 && ch != '"' && ch != '\\')
            fputc(ch, stderr);
        else
            fprintf(stderr, "\\x%02x", ch);
    }
    fprintf(stderr, "\"%s", n > 64 ? "..." : "");
}

static void report_mismatch(struct conn *c, const char *got, size_t n)
{
    if (g.reported++ >= 5) return;
    fprintf(stderr, "rd_loadgen: mismatch on connection %d: question ", (int)(c - g.c));
    show("", zen[c->q].q, zen[c->q].qlen);
    show(", expected", zen[c->q].a, zen[c->q].alen);
    show(", got", got, n);
    fprintf(stderr, " after %u correct bytes\n", c->got);
}

static void set_events(struct conn *c, int events)
{
    if (c->io.events == events && ev_is_active(&c->io)) return;
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->io.fd, events);
    ev_io_start(loop, &c->io);
}

static void conn_close(struct conn *c)
{
    ev_io_stop(loop, &c->io);
    if (c->io.fd >= 0) close(c->io.fd);
    c->io.fd = -1;
}

/* A connection that was confirmed (answered once) went away or went wrong. */
static void conn_kill(struct conn *c)
{
    if (c->state == C_READY) g.ready--;
    if (c->state == C_BUSY) g.busy--;
    conn_close(c);
    c->state = C_DEAD;
    g.dead++;
    if (g.phase != P_CONNECT && g.ready + g.busy == 0) finish();
    /* a member gone: the others get a hang-up notice and its messages stop */
    if (g.mode == M_CHAT && g.phase != P_CONNECT) finish();
}

/* A connect attempt failed before the connection was confirmed. */
static void conn_retry(struct conn *c)
{
    conn_close(c);
    g.inflight--;
    if (++c->attempts >= g.max_attempts) {
        c->state = C_DEAD;
        g.dead++;
        g.connfail++;
        return;
    }
    g.retries++;
    double backoff = 0.01 * (double)(1 << (c->attempts < 7 ? c->attempts : 7));
    c->not_before = ev_now(loop) + backoff;
    c->state = C_WAIT;
    g.queue[(g.qhead + g.qlen++) % g.conns] = (int)(c - g.c);
}

static void send_question(struct conn *c, uint64_t t)
{
    c->got = 0;
    c->sent = 0;
    c->t_send = t;
    ssize_t w = send(c->io.fd, zen[c->q].q, zen[c->q].qlen, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            if (c->state == C_FIRST)
                conn_retry(c);
            else {
                g.dropped++;
                conn_kill(c);
            }
            return;
        }
        w = 0;
    }
    c->sent = (uint32_t)w;
    set_events(c, c->sent < zen[c->q].qlen ? EV_READ | EV_WRITE : EV_READ);
}

/* Another question may go out (the asking connection is not counted busy). */
static int may_send_more(void)
{
    if (g.phase != P_WARMUP && g.phase != P_MEASURE) return 0;
    if (g.total && g.phase == P_MEASURE && g.done + (uint64_t)g.busy >= g.total) return 0;
    return 1;
}

static void on_answer(struct conn *c)
{
    uint64_t t = now_ns();
    if (c->state == C_FIRST) {
        g.inflight--;
        c->state = C_READY;
        g.ready++;
        c->q = (c->q + 1) % NQUESTIONS;
        if (g.ready + g.dead == g.conns) start_run();
        return;
    }
    c->state = C_READY;
    g.busy--;
    g.ready++;
    c->q = (c->q + 1) % NQUESTIONS;
    if (g.phase == P_MEASURE) {
        hist_add(&g.hist, t - c->t_send);
        g.done++;
        if (g.total && g.done >= g.total) {
            end_measure();
            return;
        }
    }
    if (g.phase == P_DRAIN && g.busy == 0) {
        finish();
        return;
    }
    if (may_send_more()) {
        c->state = C_BUSY;
        g.ready--;
        g.busy++;
        send_question(c, t);
    }
}

static void on_readable(struct conn *c)
{
    ssize_t n = read(c->io.fd, rbuf, sizeof rbuf);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        if (c->state == C_FIRST) {
            conn_retry(c); /* accepted-then-reset during connect: try again */
        } else {
            g.dropped++;
            if (!g.quiet)
                fprintf(stderr, "rd_loadgen: connection %d %s by server\n", (int)(c - g.c),
                        n == 0 ? "closed" : "reset");
            conn_kill(c);
        }
        return;
    }
    size_t len = (size_t)n;
    if (c->state == C_READY) { /* nothing was asked */
        g.mismatches++;
        if (g.reported++ < 5) {
            fprintf(stderr, "rd_loadgen: unsolicited data on connection %d:", (int)(c - g.c));
            show("", rbuf, len);
            fputc('\n', stderr);
        }
        conn_kill(c);
        return;
    }
    const char *want = zen[c->q].a + c->got;
    size_t left = zen[c->q].alen - c->got;
    if (len > left || memcmp(rbuf, want, len) != 0) {
        g.mismatches++;
        report_mismatch(c, rbuf, len);
        if (c->state == C_FIRST) {
            g.inflight--;
            c->state = C_READY; /* so conn_kill's bookkeeping stays right */
            g.ready++;
            conn_kill(c);
            if (g.phase == P_CONNECT && g.ready + g.dead == g.conns) start_run();
        } else {
            conn_kill(c);
        }
        return;
    }
    c->got += (uint32_t)len;
    if (c->got == zen[c->q].alen) on_answer(c);
}

/* ---- the px path: pipelined request/response (zen -D, int32) and chat --- */

#define DEPTH_MAX 64
#define FRAME_MAX 512 /* longest frame the int32 and chat modes send or expect */
#define PX_OBUF (DEPTH_MAX * FRAME_MAX)
#define CHAT_BODY 32

struct px {
    uint32_t seq_sent, seq_recv; /* requests sent / answered; chat: messages sent /
                                    delivered to every other member */
    uint32_t got;                /* bytes of the expected answer matched so far */
    uint32_t exp_len;
    const char *exp;            /* the answer to request seq_recv */
    uint32_t olen, ooff;        /* output not yet sent, in obuf */
    uint32_t ilen;              /* chat: bytes of an unfinished frame in ibuf */
    int dirty;                  /* chat: on g.dirty */
    uint32_t prefix_len;        /* chat: "\n#[m<i>@<host>]>>", how the room relays us */
    uint32_t *next_from;        /* chat: the sequence number expected next from each member */
    uint64_t t_ring[DEPTH_MAX]; /* ns: when request (message) seq % depth went out */
    uint32_t left[DEPTH_MAX];   /* chat: members still to get message seq % depth */
    char prefix[64];
    char expbuf[FRAME_MAX];
    char ibuf[FRAME_MAX];
    char obuf[PX_OBUF];
};

static const uint32_t i32_lens[4] = {16, 40, 100, 200};
static char fill[FRAME_MAX]; /* payload filler, set in main */
static const char chat_text[CHAT_BODY - 8 + 1] = " hello, everyone, it is "; /* 24 bytes */

static struct px *X(const struct conn *c)
{
    return &g.x[c - g.c];
}

static void put_hex(char *p, uint32_t v, int digits)
{
    for (int i = digits - 1; i >= 0; i--) {
        p[i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    }
}

static void put_be32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static uint32_t get_be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* Int32 request s of connection ci (its echo is the same bytes): into p. */
static uint32_t i32_frame(int ci, uint32_t s, char *p)
{
    uint32_t len = i32_lens[(s + (uint32_t)ci) % 4];
    put_be32(p, len);
    put_hex(p + 4, s, 8);
    p[12] = ':';
    put_hex(p + 13, (uint32_t)ci, 4);
    p[17] = ':';
    memcpy(p + 18, fill, len - 14);
    return 4 + len;
}

static void px_show_mismatch(const struct conn *c, const char *why, const char *got, size_t n)
{
    g.mismatches++;
    if (g.reported++ >= 5) return;
    fprintf(stderr, "rd_loadgen: %s on connection %d:", why, (int)(c - g.c));
    show("", got, n);
    fputc('\n', stderr);
}

/* A wrong answer or frame: drop the connection (keeping the counts right). */
static void px_bad(struct conn *c)
{
    if (c->state == C_FIRST) {
        g.inflight--;
        c->state = C_READY;
        g.ready++;
        conn_kill(c);
        if (g.phase == P_CONNECT && g.ready + g.dead == g.conns) start_run();
    } else {
        conn_kill(c);
    }
}

static void px_fail_write(struct conn *c)
{
    if (c->state == C_FIRST) {
        conn_retry(c);
    } else {
        g.dropped++;
        conn_kill(c);
    }
}

static int px_append(struct conn *c, const char *p, uint32_t n)
{
    struct px *x = X(c);
    if (x->olen + n > PX_OBUF && x->ooff) {
        memmove(x->obuf, x->obuf + x->ooff, x->olen - x->ooff);
        x->olen -= x->ooff;
        x->ooff = 0;
    }
    if (x->olen + n > PX_OBUF) return -1; /* cannot happen with depth <= DEPTH_MAX */
    memcpy(x->obuf + x->olen, p, n);
    x->olen += n;
    return 0;
}

/* Send what is queued; 0, or -1 if the connection failed (the caller drops it). */
static int px_flush(struct conn *c)
{
    struct px *x = X(c);
    while (x->ooff < x->olen) {
        ssize_t w = send(c->io.fd, x->obuf + x->ooff, x->olen - x->ooff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -1;
        }
        x->ooff += (uint32_t)w;
    }
    if (x->ooff == x->olen) {
        x->ooff = x->olen = 0;
        set_events(c, EV_READ);
    } else {
        set_events(c, EV_READ | EV_WRITE);
    }
    return 0;
}

/* Queue request x->seq_sent (zen or int32). */
static void px_request(struct conn *c, uint64_t t)
{
    struct px *x = X(c);
    int ci = (int)(c - g.c);
    uint32_t s = x->seq_sent++;
    x->t_ring[s % (uint32_t)g.depth] = t;
    if (g.mode == M_ZEN) {
        int q = (int)((s + (uint32_t)ci) % NQUESTIONS);
        px_append(c, zen[q].q, (uint32_t)zen[q].qlen);
    } else {
        char f[FRAME_MAX];
        uint32_t n = i32_frame(ci, s, f);
        px_append(c, f, n);
    }
}

static void px_expect(struct conn *c)
{
    struct px *x = X(c);
    int ci = (int)(c - g.c);
    if (g.mode == M_ZEN) {
        int q = (int)((x->seq_recv + (uint32_t)ci) % NQUESTIONS);
        x->exp = zen[q].a;
        x->exp_len = (uint32_t)zen[q].alen;
    } else {
        x->exp_len = i32_frame(ci, x->seq_recv, x->expbuf);
        x->exp = x->expbuf;
    }
}

static int px_may_send(void)
{
    if (g.phase != P_WARMUP && g.phase != P_MEASURE) return 0;
    if (g.total && g.phase == P_MEASURE) {
        uint64_t owed = g.outq * (g.mode == M_CHAT ? (uint64_t)(g.conns - 1) : 1);
        if (g.done + owed >= g.total) return 0;
    }
    return 1;
}

static void px_mark_busy(struct conn *c)
{
    if (c->state != C_READY) return;
    c->state = C_BUSY;
    g.ready--;
    g.busy++;
}

/* A connection's first answer (its confirmation) arrived. */
static void px_confirmed(struct conn *c)
{
    g.inflight--;
    c->state = C_READY;
    g.ready++;
    if (g.ready + g.dead == g.conns) start_run();
}

/* The answer to request seq_recv is complete. 1 if the run is over. */
static int px_answered(struct conn *c)
{
    struct px *x = X(c);
    uint64_t t = now_ns();
    uint32_t s = x->seq_recv++;
    if (c->state == C_FIRST) {
        px_confirmed(c);
        return g.phase == P_DONE;
    }
    g.outq--;
    if (g.phase == P_MEASURE) {
        hist_add(&g.hist, t - x->t_ring[s % (uint32_t)g.depth]);
        g.done++;
        if (g.total && g.done >= g.total) end_measure();
    }
    if (x->seq_recv == x->seq_sent) {
        c->state = C_READY;
        g.busy--;
        g.ready++;
    }
    if (g.phase == P_DRAIN && g.busy == 0) finish();
    if (g.phase == P_DONE) return 1;
    if (px_may_send()) {
        px_mark_busy(c);
        g.outq++;
        px_request(c, t);
    }
    return 0;
}

static void px_rr_read(struct conn *c, const char *p, size_t n)
{
    struct px *x = X(c);
    while (n) {
        if (x->seq_recv == x->seq_sent) {
            px_show_mismatch(c, "unsolicited data", p, n);
            px_bad(c);
            return;
        }
        if (x->got == 0) px_expect(c);
        size_t k = x->exp_len - x->got;
        if (k > n) k = n;
        if (memcmp(p, x->exp + x->got, k) != 0) {
            g.mismatches++;
            if (g.reported++ < 5) {
                fprintf(stderr, "rd_loadgen: mismatch on connection %d, answer %u:", (int)(c - g.c),
                        x->seq_recv);
                show(" expected", x->exp, x->exp_len);
                show(", got", p, n);
                fprintf(stderr, " after %u correct bytes\n", x->got);
            }
            px_bad(c);
            return;
        }
        x->got += (uint32_t)k;
        p += k;
        n -= k;
        if (x->got == x->exp_len) {
            x->got = 0;
            if (px_answered(c)) return;
        }
    }
}

/* ---- chat ---- */

static void chat_dirty(struct conn *c)
{
    struct px *x = X(c);
    if (x->dirty) return;
    x->dirty = 1;
    g.dirty[g.ndirty++] = (int)(c - g.c);
}

static void chat_flush_dirty(void)
{
    while (g.ndirty) {
        struct conn *c = &g.c[g.dirty[--g.ndirty]];
        X(c)->dirty = 0;
        if (c->state == C_DEAD || c->io.fd < 0) continue;
        if (px_flush(c) < 0) px_fail_write(c);
    }
}

/* Queue message seq_sent of member c. */
static void chat_send(struct conn *c, uint64_t t)
{
    struct px *x = X(c);
    uint32_t s = x->seq_sent++;
    char f[4 + CHAT_BODY];
    x->t_ring[s % (uint32_t)g.depth] = t;
    x->left[s % (uint32_t)g.depth] = (uint32_t)g.conns - 1;
    g.outq++;
    px_mark_busy(c);
    put_be32(f, CHAT_BODY);
    put_hex(f + 4, s, 8);
    memcpy(f + 12, chat_text, CHAT_BODY - 8);
    px_append(c, f, sizeof f);
    chat_dirty(c);
}

/* Member r got message seq from member j. */
static void chat_delivered(int j, uint32_t seq)
{
    struct conn *sc = &g.c[j];
    struct px *sx = &g.x[j];
    uint32_t d = (uint32_t)g.depth;
    uint64_t t = now_ns();
    if (g.phase == P_MEASURE) {
        hist_add(&g.hist, t - sx->t_ring[seq % d]);
        g.done++;
        if (g.total && g.done >= g.total) end_measure();
    }
    sx->left[seq % d]--;
    while (sx->seq_recv != sx->seq_sent && sx->left[sx->seq_recv % d] == 0) {
        sx->seq_recv++;
        g.outq--;
        if (sx->seq_recv == sx->seq_sent && sc->state == C_BUSY) {
            sc->state = C_READY;
            g.busy--;
            g.ready++;
        }
        if (px_may_send()) chat_send(sc, t);
    }
    if (g.phase == P_DRAIN && g.busy == 0) finish();
}

/* One whole frame f[0..len) for member c. 1 if c was dropped or the run is over. */
static int chat_frame(struct conn *c, const char *f, uint32_t len)
{
    static const char client[] = "CLIENT: ", joined[] = "\n(Connected: New client (",
                      msg[] = "\n#[m";
    struct px *x = X(c);
    int ci = (int)(c - g.c);
    if (c->state == C_FIRST) {
        if (len < sizeof client - 1 || len > sizeof client - 1 + 40 ||
            memcmp(f, client, sizeof client - 1) != 0) {
            px_show_mismatch(c, "expected \"CLIENT: <host>\", got", f, len);
            px_bad(c);
            return 1;
        }
        int n = snprintf(x->prefix, sizeof x->prefix, "\n#[m%d@%.*s]>>", ci,
                         (int)(len - (sizeof client - 1)), f + sizeof client - 1);
        x->prefix_len = (uint32_t)n;
        px_confirmed(c);
        return g.phase == P_DONE;
    }
    if (len >= sizeof joined - 1 && memcmp(f, joined, sizeof joined - 1) == 0 &&
        f[len - 1] == ')') {
        g.notices++;
        return 0;
    }
    if (len > sizeof msg - 1 && memcmp(f, msg, sizeof msg - 1) == 0) {
        uint32_t i = sizeof msg - 1, j = 0;
        while (i < len && i < 12 && f[i] >= '0' && f[i] <= '9')
            j = j * 10 + (uint32_t)(f[i++] - '0');
        if (j < (uint32_t)g.conns && (int)j != ci) {
            struct px *sx = &g.x[j];
            char h[8];
            uint32_t want = x->next_from[j];
            put_hex(h, want, 8);
            if (len == sx->prefix_len + CHAT_BODY && memcmp(f, sx->prefix, sx->prefix_len) == 0 &&
                memcmp(f + sx->prefix_len, h, 8) == 0 &&
                memcmp(f + sx->prefix_len + 8, chat_text, CHAT_BODY - 8) == 0 &&
                want < sx->seq_sent) {
                x->next_from[j]++;
                chat_delivered((int)j, want);
                return g.phase == P_DONE;
            }
            g.mismatches++;
            if (g.reported++ < 5) {
                fprintf(stderr,
                        "rd_loadgen: member %d: wrong message from member %u"
                        " (expected its message %u):",
                        ci, j, want);
                show("", f, len);
                fputc('\n', stderr);
            }
            conn_kill(c);
            return 1;
        }
    }
    px_show_mismatch(c, "unexpected frame", f, len);
    conn_kill(c);
    return 1;
}

static void chat_read(struct conn *c, const char *p, size_t n)
{
    struct px *x = X(c);
    while (n) {
        if (x->ilen || n < 4) { /* an unfinished frame: gather it in ibuf */
            if (x->ilen < 4) {
                size_t k = 4 - x->ilen < n ? 4 - x->ilen : n;
                memcpy(x->ibuf + x->ilen, p, k);
                x->ilen += (uint32_t)k;
                p += k;
                n -= k;
                if (x->ilen < 4) return;
            }
            uint32_t len = get_be32(x->ibuf);
            if (len > FRAME_MAX - 4) {
                px_show_mismatch(c, "frame too long", x->ibuf, x->ilen);
                px_bad(c);
                return;
            }
            size_t k = 4 + len - x->ilen;
            if (k > n) k = n;
            memcpy(x->ibuf + x->ilen, p, k);
            x->ilen += (uint32_t)k;
            p += k;
            n -= k;
            if (x->ilen < 4 + len) return;
            x->ilen = 0;
            if (chat_frame(c, x->ibuf + 4, len)) return;
            continue;
        }
        uint32_t len = get_be32(p);
        if (len > FRAME_MAX - 4) {
            px_show_mismatch(c, "frame too long", p, n);
            px_bad(c);
            return;
        }
        if (n < 4 + (size_t)len) {
            memcpy(x->ibuf, p, n);
            x->ilen = (uint32_t)n;
            return;
        }
        if (chat_frame(c, p + 4, len)) return;
        p += 4 + len;
        n -= 4 + len;
    }
}

/* Connected: send the first request (chat: the name) and wait for its answer. */
static void px_first(struct conn *c, uint64_t t)
{
    struct px *x = X(c);
    int ci = (int)(c - g.c);
    uint32_t *next_from = x->next_from;
    memset(x, 0, offsetof(struct px, prefix));
    x->next_from = next_from;
    c->state = C_FIRST;
    c->t_send = t;
    if (g.mode == M_CHAT) {
        char f[64];
        int n = snprintf(f + 4, sizeof f - 4, "NAME: m%d", ci);
        put_be32(f, (uint32_t)n);
        px_append(c, f, 4 + (uint32_t)n);
    } else {
        px_request(c, t);
    }
    if (px_flush(c) < 0) conn_retry(c);
}

/* The run starts: every member sends depth requests (messages). */
static void px_start(struct conn *c, uint64_t t)
{
    px_mark_busy(c);
    for (int k = 0; k < g.depth; k++) {
        if (g.mode == M_CHAT) {
            chat_send(c, t);
        } else {
            g.outq++;
            px_request(c, t);
        }
    }
    if (g.mode != M_CHAT && px_flush(c) < 0) px_fail_write(c);
}

static void px_cb(struct conn *c, int revents)
{
    if (revents & EV_WRITE) {
        if (px_flush(c) < 0) {
            px_fail_write(c);
            return;
        }
    }
    if (!(revents & EV_READ) || c->io.fd < 0 || c->state == C_DEAD || c->state == C_WAIT) return;
    ssize_t n = read(c->io.fd, rbuf, sizeof rbuf);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        if (c->state == C_FIRST) {
            conn_retry(c);
        } else {
            g.dropped++;
            if (!g.quiet)
                fprintf(stderr, "rd_loadgen: connection %d %s by server\n", (int)(c - g.c),
                        n == 0 ? "closed" : "reset");
            conn_kill(c);
        }
        return;
    }
    if (g.mode == M_CHAT) {
        chat_read(c, rbuf, (size_t)n);
        chat_flush_dirty();
    } else {
        px_rr_read(c, rbuf, (size_t)n);
        if (c->state != C_DEAD && c->io.fd >= 0 && X(c)->olen && px_flush(c) < 0) px_fail_write(c);
    }
}

/* After the run: every message sent reached every other member, and every
 * member heard of every later one joining. Returns the number of faults. */
static uint64_t chat_verify(void)
{
    uint64_t bad = 0;
    for (int i = 0; i < g.conns; i++)
        for (int j = 0; j < g.conns; j++) {
            if (i == j || g.x[i].next_from[j] == g.x[j].seq_sent) continue;
            if (bad++ < 5)
                fprintf(stderr, "rd_loadgen: member %d got %u of member %d's %u messages\n", i,
                        g.x[i].next_from[j], j, g.x[j].seq_sent);
        }
    uint64_t want = (uint64_t)g.conns * (uint64_t)(g.conns - 1) / 2;
    if (g.notices != want) {
        fprintf(stderr, "rd_loadgen: %" PRIu64 " join notices, expected %" PRIu64 "\n", g.notices,
                want);
        bad++;
    }
    return bad;
}

/* ---- echo: a window of a pseudo-random stream, every byte checked ------ */

#define PAT_LEN 1000003u /* a prime: a stream wraps at no buffer-sized boundary */
#define PAT_PAD 65536u   /* >= the longest single send or read (rbuf) */
#define ECHO_FIRST 16u   /* bytes that confirm a connection */
#define WINDOW_MAX (64u << 20)

struct ex {
    uint64_t sent, recv; /* stream bytes sent / echoed and checked */
    uint32_t base;       /* where this connection's stream starts in pat */
};

static unsigned char *pat; /* PAT_LEN + PAT_PAD bytes: the tail repeats the head */

static struct ex *E(const struct conn *c)
{
    return &g.e[c - g.c];
}

static const unsigned char *ex_at(const struct ex *e, uint64_t off)
{
    return pat + (e->base + off) % PAT_LEN;
}

static void pat_init(void)
{
    uint64_t x = 0x9e3779b97f4a7c15u; /* xorshift64*: fixed, so runs compare */
    for (uint32_t i = 0; i < PAT_LEN; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        pat[i] = (unsigned char)((x * 0x2545f4914f6cdd1du) >> 56);
    }
    memcpy(pat + PAT_LEN, pat, PAT_PAD);
}

static int ex_may_send(void)
{
    if (g.phase != P_WARMUP && g.phase != P_MEASURE) return 0;
    return !(g.total && g.phase == P_MEASURE && g.done >= g.total);
}

/* Send stream bytes until `upto` have gone out or the socket is full; -1 if
 * the connection failed. */
static int ex_push(struct conn *c, uint64_t upto)
{
    struct ex *e = E(c);
    while (e->sent < upto) {
        uint64_t n = upto - e->sent;
        if (n > PAT_PAD) n = PAT_PAD;
        ssize_t w = send(c->io.fd, ex_at(e, e->sent), (size_t)n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -1;
        }
        e->sent += (uint64_t)w;
    }
    set_events(c, e->sent < upto ? EV_READ | EV_WRITE : EV_READ);
    return 0;
}

/* A confirmed connection after progress: refill its window (or, once the run
 * stops sending, wait for what is owed), and keep the busy count right. */
static void ex_settle(struct conn *c)
{
    struct ex *e = E(c);
    uint64_t upto = ex_may_send() ? e->recv + g.window : e->sent;
    if (upto > e->sent && c->state == C_READY) {
        c->t_send = now_ns();
        px_mark_busy(c);
    }
    if (ex_push(c, upto) < 0) {
        px_fail_write(c);
        return;
    }
    if (e->sent == e->recv && c->state == C_BUSY) {
        c->state = C_READY;
        g.busy--;
        g.ready++;
    }
    if (g.phase == P_DRAIN && g.busy == 0) finish();
}

/* Connected: send the first bytes of the stream, up once they come back. */
static void ex_first(struct conn *c)
{
    struct ex *e = E(c);
    int ci = (int)(c - g.c);
    e->sent = e->recv = 0;
    e->base = (uint32_t)(((uint64_t)ci * 104729u) % PAT_LEN);
    c->state = C_FIRST;
    c->t_send = now_ns();
    if (ex_push(c, ECHO_FIRST) < 0) conn_retry(c);
}

static void ex_cb(struct conn *c, int revents)
{
    struct ex *e = E(c);
    if (revents & EV_WRITE) {
        if (ex_push(c, c->state == C_FIRST ? ECHO_FIRST
                                           : (ex_may_send() ? e->recv + g.window : e->sent)) < 0) {
            px_fail_write(c);
            return;
        }
    }
    if (!(revents & EV_READ) || c->io.fd < 0 || c->state == C_DEAD || c->state == C_WAIT) return;
    ssize_t n = read(c->io.fd, rbuf, sizeof rbuf);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        if (c->state == C_FIRST) {
            conn_retry(c);
        } else {
            g.dropped++;
            if (!g.quiet)
                fprintf(stderr,
                        "rd_loadgen: connection %d %s by server after %" PRIu64 " of %" PRIu64
                        " bytes echoed\n",
                        (int)(c - g.c), n == 0 ? "closed" : "reset", e->recv, e->sent);
            conn_kill(c);
        }
        return;
    }
    size_t len = (size_t)n;
    if (len > e->sent - e->recv) {
        px_show_mismatch(c, "more bytes back than were sent:", rbuf, len);
        px_bad(c);
        return;
    }
    const unsigned char *want = ex_at(e, e->recv);
    if (memcmp(rbuf, want, len) != 0) {
        size_t k = 0;
        while ((unsigned char)rbuf[k] == want[k])
            k++;
        g.mismatches++;
        if (g.reported++ < 5)
            fprintf(stderr,
                    "rd_loadgen: echo mismatch on connection %d at stream byte %" PRIu64
                    ": expected 0x%02x, got 0x%02x\n",
                    (int)(c - g.c), e->recv + k, want[k], (unsigned char)rbuf[k]);
        px_bad(c);
        return;
    }
    e->recv += len;
    g.checked += len;
    c->t_send = now_ns(); /* the reply time-out counts from the last progress */
    if (c->state == C_FIRST) {
        if (e->recv == ECHO_FIRST) px_confirmed(c);
        return;
    }
    if (g.phase == P_MEASURE) {
        g.done += len;
        if (g.total && g.done >= g.total) end_measure();
        if (g.phase == P_DONE) return;
    }
    ex_settle(c);
}

/* ---- connrate: connect, one question, its answer, close; again --------- */

static void cr_fail(struct conn *c)
{
    conn_close(c);
    c->state = C_DEAD;
    g.dead++;
    g.busy--;
    if (g.busy == 0) finish();
}

static void cr_ask(struct conn *c)
{
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
        g.connfail++;
        if (g.reported++ < 5)
            fprintf(stderr, "rd_loadgen: connect (connection %d): %s\n", (int)(c - g.c),
                    strerror(err ? err : errno));
        cr_fail(c);
        return;
    }
    c->got = 0;
    ssize_t w = send(c->io.fd, zen[c->q].q, zen[c->q].qlen, MSG_NOSIGNAL);
    if (w != (ssize_t)zen[c->q].qlen) { /* a fresh socket takes 25 bytes whole */
        g.dropped++;
        if (g.reported++ < 5)
            fprintf(stderr, "rd_loadgen: send on a new connection: %s\n",
                    w < 0 ? strerror(errno) : "short write");
        cr_fail(c);
        return;
    }
    c->state = C_BUSY;
    set_events(c, EV_READ);
}

static void cr_start(struct conn *c)
{
    const struct addrinfo *ai = g.addr;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "rd_loadgen: socket: %s\n", strerror(errno));
        g.connfail++;
        c->io.fd = -1;
        cr_fail(c);
        return;
    }
    int one = 1;
    struct linger lg = {1, 0}; /* close sends an RST: no TIME-WAIT left behind */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    c->state = C_CONNECTING;
    c->t_send = now_ns();
    ev_io_init(&c->io, conn_cb, fd, EV_WRITE);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        cr_ask(c);
        return;
    }
    if (errno != EINPROGRESS) {
        g.connfail++;
        if (g.reported++ < 5) fprintf(stderr, "rd_loadgen: connect: %s\n", strerror(errno));
        cr_fail(c);
        return;
    }
    ev_io_start(loop, &c->io);
}

static void cr_cb(struct conn *c, int revents)
{
    if (c->state == C_CONNECTING) {
        cr_ask(c);
        return;
    }
    if (!(revents & EV_READ) || c->state != C_BUSY) return;
    ssize_t n = read(c->io.fd, rbuf, sizeof rbuf);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        g.dropped++;
        if (g.reported++ < 5)
            fprintf(stderr, "rd_loadgen: connection %s by the server before its answer\n",
                    n == 0 ? "closed" : "reset");
        cr_fail(c);
        return;
    }
    size_t len = (size_t)n;
    if (len > zen[c->q].alen - c->got || memcmp(rbuf, zen[c->q].a + c->got, len) != 0) {
        g.mismatches++;
        report_mismatch(c, rbuf, len);
        cr_fail(c);
        return;
    }
    c->got += (uint32_t)len;
    if (c->got < zen[c->q].alen) return;
    uint64_t t = now_ns();
    conn_close(c);
    c->q = (c->q + 1) % NQUESTIONS;
    g.busy--;
    if (g.phase == P_MEASURE) {
        hist_add(&g.hist, t - c->t_send);
        g.done++;
        if (g.total && g.done >= g.total) end_measure();
    }
    if (g.phase == P_DONE) return;
    if (may_send_more()) {
        g.busy++;
        cr_start(c);
        return;
    }
    c->state = C_READY;
    if (g.phase == P_DRAIN && g.busy == 0) finish();
}

static void on_connected(struct conn *c)
{
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
        conn_retry(c);
        return;
    }
    if (g.mode == M_ECHO) {
        ex_first(c);
        return;
    }
    if (g.px) {
        px_first(c, now_ns());
        return;
    }
    c->state = C_FIRST;
    send_question(c, now_ns());
}

static void conn_cb(struct ev_loop *l, ev_io *w, int revents)
{
    (void)l;
    struct conn *c = (struct conn *)w;
    if (g.mode == M_CONNRATE) {
        cr_cb(c, revents);
        return;
    }
    if (c->state == C_CONNECTING) {
        on_connected(c);
        return;
    }
    if (g.mode == M_ECHO) {
        ex_cb(c, revents);
        return;
    }
    if (g.px) {
        px_cb(c, revents);
        return;
    }
    if (revents & EV_WRITE) {
        size_t qlen = zen[c->q].qlen;
        ssize_t n = send(c->io.fd, zen[c->q].q + c->sent, qlen - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            if (c->state == C_FIRST)
                conn_retry(c);
            else {
                g.dropped++;
                conn_kill(c);
            }
            return;
        }
        if (n > 0) c->sent += (uint32_t)n;
        if (c->sent == qlen) set_events(c, EV_READ);
    }
    if ((revents & EV_READ) && c->io.fd >= 0 && c->state != C_DEAD && c->state != C_WAIT)
        on_readable(c);
}

static void start_connect(struct conn *c)
{
    const struct addrinfo *ai = g.addr;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "rd_loadgen: socket: %s\n", strerror(errno));
        c->io.fd = -1;
        g.inflight++;
        conn_retry(c);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    g.inflight++;
    c->state = C_CONNECTING;
    c->t_state = now_ns();
    ev_io_init(&c->io, conn_cb, fd, EV_WRITE);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        if (g.mode == M_ECHO) {
            ex_first(c);
            return;
        }
        if (g.px) {
            px_first(c, c->t_state);
            return;
        }
        c->state = C_FIRST;
        send_question(c, c->t_state);
        return;
    }
    if (errno != EINPROGRESS) {
        conn_retry(c);
        return;
    }
    ev_io_start(loop, &c->io);
}

/* Start queued connects while fewer than max_inflight are unconfirmed. */
static void pump(void)
{
    double now = ev_now(loop);
    while (g.qlen && g.inflight < g.max_inflight) {
        struct conn *c = &g.c[g.queue[g.qhead]];
        if (c->not_before > now) break;
        g.qhead = (g.qhead + 1) % g.conns;
        g.qlen--;
        start_connect(c);
    }
    if (g.phase == P_CONNECT && g.ready + g.dead == g.conns) start_run();
}

static void pump_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    pump();
}

/* Every 250 ms: connect and reply time-outs, and the connect-phase deadline. */
static void scan_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    uint64_t t = now_ns();
    uint64_t ct = (uint64_t)(g.connect_timeout * 1e9), rt = (uint64_t)(g.reply_timeout * 1e9);
    for (int i = 0; i < g.conns && g.mode == M_CONNRATE; i++) {
        struct conn *c = &g.c[i];
        if ((c->state == C_CONNECTING || c->state == C_BUSY) && t - c->t_send > rt) {
            g.timeouts++;
            if (g.reported++ < 5)
                fprintf(stderr, "rd_loadgen: connection %d: no %s after %.1fs\n", i,
                        c->state == C_CONNECTING ? "connect" : "complete answer", g.reply_timeout);
            cr_fail(c);
            if (g.phase == P_DONE) return;
        }
    }
    for (int i = 0; i < g.conns && g.mode != M_CONNRATE; i++) {
        struct conn *c = &g.c[i];
        if (c->state == C_CONNECTING || c->state == C_FIRST) {
            if (t - c->t_state > ct) conn_retry(c);
        } else if (c->state == C_BUSY &&
                   t - (g.px ? g.x[i].t_ring[g.x[i].seq_recv % (uint32_t)g.depth] : c->t_send) >
                       rt) {
            g.timeouts++;
            if (g.reported++ < 5)
                fprintf(stderr, "rd_loadgen: no complete answer on connection %d after %.1fs\n", i,
                        g.reply_timeout);
            conn_kill(c);
            if (g.phase == P_DONE) return;
        }
    }
    if (!g.idle && g.phase >= P_WARMUP && g.phase <= P_DRAIN && g.busy == 0) {
        finish(); /* nothing in flight and nothing more will be sent */
        return;
    }
    if (g.phase == P_CONNECT && ev_time() - g.t_connect_start > g.connect_deadline) {
        fprintf(stderr, "rd_loadgen: only %d of %d connections up after %.0fs\n", g.ready, g.conns,
                g.connect_deadline);
        g.connfail += (uint64_t)(g.conns - g.ready - g.dead);
        finish();
        return;
    }
    pump();
}

static void phase_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    if (g.phase == P_WARMUP) {
        g.phase = P_MEASURE;
        memset(&g.hist, 0, sizeof g.hist);
        g.done = 0;
        g.t_measure_start = now_ns();
        sample_cpu(&g.ru0, &g.srv_cpu0);
        if (!g.total) {
            ev_timer_set(&phase_w, g.duration, 0.);
            ev_timer_start(loop, &phase_w);
        }
    } else if (g.phase == P_MEASURE) {
        end_measure();
    } else if (g.phase == P_DRAIN) {
        g.timeouts += (uint64_t)g.busy;
        fprintf(stderr, "rd_loadgen: %d questions still unanswered %.1fs after the end\n", g.busy,
                g.reply_timeout);
        finish();
    }
}

static void start_run(void)
{
    if (g.phase != P_CONNECT) return;
    ev_timer_stop(loop, &pump_w);
    if (g.dead) {
        fprintf(stderr, "rd_loadgen: %d of %d connections could not be established\n", g.dead,
                g.conns);
        finish();
        return;
    }
    g.connect_secs = ev_time() - g.t_connect_start;
    if (g.idle) {
        g.phase = P_MEASURE;
        g.t_measure_start = now_ns();
        printf("rd_loadgen: idle: %d connections ready\n", g.ready);
        fflush(stdout);
        if (g.duration_set) {
            ev_timer_set(&phase_w, g.duration, 0.);
            ev_timer_start(loop, &phase_w);
        }
        return;
    }
    g.phase = P_WARMUP;
    ev_timer_set(&phase_w, g.warmup, 0.);
    ev_timer_start(loop, &phase_w);
    uint64_t t = now_ns();
    for (int i = 0; i < g.conns && g.phase != P_DONE; i++) {
        struct conn *c = &g.c[i];
        if (g.mode == M_CONNRATE) {
            g.busy++;
            cr_start(c);
            continue;
        }
        if (c->state != C_READY) continue;
        if (g.mode == M_ECHO) {
            ex_settle(c);
            continue;
        }
        if (g.px) {
            px_start(c, t);
            continue;
        }
        c->state = C_BUSY;
        g.ready--;
        g.busy++;
        send_question(c, t);
    }
    if (g.mode == M_CHAT) chat_flush_dirty();
}

/* The measured window is over: stop asking, but wait (up to the reply time-out)
 * for the answers still owed, so that a server that stops answering near the
 * end is caught too. */
static void end_measure(void)
{
    g.t_measure_end = now_ns();
    sample_cpu(&g.ru1, &g.srv_cpu1);
    g.phase = P_DRAIN;
    if (g.idle || g.busy == 0) {
        finish();
        return;
    }
    ev_timer_stop(loop, &phase_w);
    ev_timer_set(&phase_w, g.reply_timeout, 0.);
    ev_timer_start(loop, &phase_w);
}

static void finish(void)
{
    if (g.phase == P_DONE) return;
    if (g.phase == P_MEASURE) {
        g.t_measure_end = now_ns();
        sample_cpu(&g.ru1, &g.srv_cpu1);
    } else if (g.phase != P_DRAIN) {
        g.t_measure_end = g.t_measure_start = now_ns();
    }
    g.phase = P_DONE;
    ev_break(loop, EVBREAK_ALL);
}

static void signal_cb(struct ev_loop *l, ev_signal *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    g.interrupted = 1;
    finish();
}

/* ---- main -------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: rd_loadgen [options] HOST PORT\n"
               "  -c N     connections (default 1)\n"
               "  -d SEC   measure for SEC seconds (default 5; in idle mode: hold SEC seconds)\n"
               "  -n N     measure N answers instead of a duration\n"
               "  -w SEC   warm-up seconds before measuring (default 1)\n"
               "  -i       idle mode: one request per connection, then hold them until\n"
               "           SIGTERM/SIGINT (or -d); prints 'rd_loadgen: idle: N connections ready'\n"
               "  -P N     at most N connects unconfirmed at once (default 64)\n"
               "  -t SEC   reply time-out (default 5)\n"
               "  -C SEC   give up if the connections are not all up after SEC (default 60)\n"
               "  -S PID   also report the CPU time process PID (the server) spent while\n"
               "           measuring: srv_cpu (%% of one CPU) and srv_us_per_req\n"
               "  -m MODE  zen (default), int32 (Int32StringReceiver echo frames), chat\n"
               "           (examples/chat.lua's room: every connection a member), echo (a\n"
               "           checked byte stream, MB/s) or connrate (connect, one zen question,\n"
               "           close with an RST; connections/s, -c of them at a time)\n"
               "  -W BYTES echo: bytes in flight per connection (default 65536)\n"
               "  -D N     requests in flight per connection (default 1; int32 and chat: 16\n"
               "           and 4); chat: messages per member not yet delivered to all\n"
               "  -q       quieter: no per-connection messages\n");
}

static double parse_num(const char *s, int opt)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v >= 0) || v > 1e9) {
        fprintf(stderr, "rd_loadgen: bad value for -%c: %s\n", opt, s);
        exit(2);
    }
    return v;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)g.conns + 32 > rl.rlim_cur) {
        fprintf(stderr, "rd_loadgen: %d connections need more descriptors than the limit (%lu)\n",
                g.conns, (unsigned long)rl.rlim_cur);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    g.conns = 1;
    g.duration = 5;
    g.warmup = 1;
    g.max_inflight = 64;
    g.max_attempts = 20;
    g.connect_timeout = 3;
    g.reply_timeout = 5;
    g.connect_deadline = 60;

    int opt;
    g.depth = 0;
    g.window = 65536;
    while ((opt = getopt(argc, argv, "c:d:n:w:iP:t:C:S:m:D:W:qh")) != -1) {
        switch (opt) {
        case 'm':
            for (g.mode = 0; g.mode < M_COUNT && strcmp(optarg, mode_names[g.mode]) != 0; g.mode++)
                ;
            if (g.mode == M_COUNT) {
                fprintf(stderr, "rd_loadgen: -m: zen, int32, chat, echo or connrate, not %s\n",
                        optarg);
                return 2;
            }
            break;
        case 'D':
            g.depth = (int)parse_num(optarg, opt);
            if (g.depth < 1 || g.depth > DEPTH_MAX) {
                fprintf(stderr, "rd_loadgen: -D: 1 to %d\n", DEPTH_MAX);
                return 2;
            }
            break;
        case 'c':
            g.conns = (int)parse_num(optarg, opt);
            break;
        case 'W':
            g.window = (uint64_t)parse_num(optarg, opt);
            if (g.window < ECHO_FIRST || g.window > WINDOW_MAX) {
                fprintf(stderr, "rd_loadgen: -W: %u to %u bytes\n", ECHO_FIRST, WINDOW_MAX);
                return 2;
            }
            break;
        case 'd':
            g.duration = parse_num(optarg, opt);
            g.duration_set = 1;
            break;
        case 'n':
            g.total = (uint64_t)parse_num(optarg, opt);
            break;
        case 'w':
            g.warmup = parse_num(optarg, opt);
            break;
        case 'i':
            g.idle = 1;
            break;
        case 'P':
            g.max_inflight = (int)parse_num(optarg, opt);
            break;
        case 't':
            g.reply_timeout = parse_num(optarg, opt);
            break;
        case 'C':
            g.connect_deadline = parse_num(optarg, opt);
            break;
        case 'S':
            g.server_pid = (int)parse_num(optarg, opt);
            break;
        case 'q':
            g.quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 2 || g.conns < 1 || g.max_inflight < 1) {
        usage(stderr);
        return 2;
    }
    g.host = argv[optind];
    g.port = argv[optind + 1];
    if (!g.depth) g.depth = g.mode == M_INT32 ? 16 : g.mode == M_CHAT ? 4 : 1;
    if ((g.mode == M_ECHO || g.mode == M_CONNRATE) && g.depth != 1) {
        fprintf(stderr, "rd_loadgen: -D does not apply to -m %s\n", mode_names[g.mode]);
        return 2;
    }
    g.px = g.mode == M_INT32 || g.mode == M_CHAT || (g.mode == M_ZEN && g.depth > 1);
    if (g.mode != M_ZEN && g.idle) {
        fprintf(stderr, "rd_loadgen: -i works with -m zen -D 1 only\n");
        return 2;
    }
    if (g.px && g.idle) {
        fprintf(stderr, "rd_loadgen: -i works with -m zen -D 1 only\n");
        return 2;
    }
    if (g.mode == M_CHAT && (g.conns < 2 || g.conns > 10000)) {
        fprintf(stderr, "rd_loadgen: -m chat needs 2 to 10000 members (-c)\n");
        return 2;
    }

    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(g.host, g.port, &hints, &g.addr);
    if (rc != 0) {
        fprintf(stderr, "rd_loadgen: cannot resolve %s port %s: %s\n", g.host, g.port,
                gai_strerror(rc));
        return 2;
    }

    raise_nofile();
    signal(SIGPIPE, SIG_IGN);

    g.c = calloc((size_t)g.conns, sizeof *g.c);
    g.queue = calloc((size_t)g.conns, sizeof *g.queue);
    if (!g.c || !g.queue) {
        fprintf(stderr, "rd_loadgen: out of memory\n");
        return 1;
    }
    if (g.mode == M_ECHO) {
        g.e = calloc((size_t)g.conns, sizeof *g.e);
        pat = malloc(PAT_LEN + PAT_PAD);
        if (!g.e || !pat) {
            fprintf(stderr, "rd_loadgen: out of memory\n");
            return 1;
        }
        pat_init();
    }
    if (g.px) {
        g.x = calloc((size_t)g.conns, sizeof *g.x);
        g.dirty = calloc((size_t)g.conns, sizeof *g.dirty);
        if (!g.x || !g.dirty) {
            fprintf(stderr, "rd_loadgen: out of memory\n");
            return 1;
        }
        for (int i = 0; i < g.conns && g.mode == M_CHAT; i++) {
            g.x[i].next_from = calloc((size_t)g.conns, sizeof *g.x[i].next_from);
            if (!g.x[i].next_from) {
                fprintf(stderr, "rd_loadgen: out of memory\n");
                return 1;
            }
        }
        for (size_t i = 0; i < sizeof fill; i++)
            fill[i] = (char)('a' + i % 26);
    }
    for (int i = 0; i < g.conns; i++) {
        g.c[i].io.fd = -1;
        g.c[i].q = i % NQUESTIONS;
        g.c[i].state = C_WAIT;
        g.queue[i] = i;
    }
    g.qlen = g.mode == M_CONNRATE ? 0 : g.conns; /* connrate connects in start_run */

    loop = ev_default_loop(EVFLAG_AUTO);
    ev_signal sigint_w, sigterm_w;
    ev_signal_init(&sigint_w, signal_cb, SIGINT);
    ev_signal_init(&sigterm_w, signal_cb, SIGTERM);
    ev_signal_start(loop, &sigint_w);
    ev_signal_start(loop, &sigterm_w);
    ev_timer_init(&pump_w, pump_cb, 0.005, 0.005);
    ev_timer_start(loop, &pump_w);
    ev_timer_init(&scan_w, scan_cb, 0.25, 0.25);
    ev_timer_start(loop, &scan_w);
    ev_init(&phase_w, phase_cb);

    g.t_connect_start = ev_time();
    if (g.mode == M_CONNRATE)
        start_run();
    else
        pump();
    if (g.phase != P_DONE) ev_run(loop, 0);

    double secs = (double)(g.t_measure_end - g.t_measure_start) / 1e9;
    const struct rusage *r0 = &g.ru0, *r1 = &g.ru1;
    double cpu = (double)(r1->ru_utime.tv_sec - r0->ru_utime.tv_sec) +
                 (double)(r1->ru_stime.tv_sec - r0->ru_stime.tv_sec) +
                 (double)(r1->ru_utime.tv_usec - r0->ru_utime.tv_usec) / 1e6 +
                 (double)(r1->ru_stime.tv_usec - r0->ru_stime.tv_usec) / 1e6;
    /* what one "request" is: echo counts MB (10^6 bytes) echoed, connrate connections */
    double units = g.mode == M_ECHO ? (double)g.done / 1e6 : (double)g.done;
    int prec = g.mode == M_ECHO ? 1 : 0;
    char srv[128] = "";
    if (g.server_pid && secs > 0 && g.done && g.srv_cpu0 >= 0 && g.srv_cpu1 >= 0) {
        double sc = g.srv_cpu1 - g.srv_cpu0;
        snprintf(srv, sizeof srv, " srv_cpu=%.0f%% srv_us_per_req=%.2f srv_cpu_s=%.3f",
                 100.0 * sc / secs, sc * 1e6 / units, sc);
    }
    struct rusage rtot; /* the whole process, connects and warm-up included */
    getrusage(RUSAGE_SELF, &rtot);
    double cpu_total = (double)rtot.ru_utime.tv_sec + (double)rtot.ru_stime.tv_sec +
                       (double)rtot.ru_utime.tv_usec / 1e6 + (double)rtot.ru_stime.tv_usec / 1e6;
    int alive = g.ready + g.busy;
    /* a chat run that drained: did every message reach everyone? */
    if (g.mode == M_CHAT && !g.interrupted && g.dead == 0 && g.busy == 0 &&
        g.mismatches + g.dropped + g.timeouts + g.connfail == 0 && g.done)
        g.mismatches += chat_verify();
    uint64_t errors = g.mismatches + g.dropped + g.timeouts + g.connfail;

    for (int i = 0; i < g.conns; i++)
        if (g.c[i].io.fd >= 0) close(g.c[i].io.fd);

    if (g.idle) {
        printf("rd_loadgen: mode=idle conns=%d alive=%d connect_secs=%.3f held_secs=%.3f"
               " mismatches=%" PRIu64 " dropped=%" PRIu64 " timeouts=%" PRIu64 " connfail=%" PRIu64
               " retries=%" PRIu64 " errors=%" PRIu64 "\n",
               g.conns, alive, g.connect_secs, secs, g.mismatches, g.dropped, g.timeouts,
               g.connfail, g.retries, errors);
    } else {
        char extra[160] = "", lat[96] = " p50_us=- p99_us=- max_us=-";
        if (g.mode != M_ECHO) /* echo is a stream: no reply to time */
            snprintf(lat, sizeof lat, " p50_us=%.1f p99_us=%.1f max_us=%.1f",
                     hist_pct(&g.hist, 50) / 1e3, hist_pct(&g.hist, 99) / 1e3,
                     (double)g.hist.max / 1e3);
        if (g.mode == M_ECHO)
            snprintf(extra, sizeof extra,
                     " proto=echo unit=MB window=%" PRIu64 " bytes=%" PRIu64 " checked=%" PRIu64,
                     g.window, g.done, g.checked);
        if (g.mode == M_CONNRATE) snprintf(extra, sizeof extra, " proto=connrate unit=connection");
        if (g.px) {
            uint64_t sent = 0;
            for (int i = 0; i < g.conns; i++)
                sent += g.x[i].seq_sent;
            snprintf(extra, sizeof extra, " proto=%s depth=%d sent_total=%" PRIu64,
                     mode_names[g.mode], g.depth, sent);
            if (g.mode == M_CHAT)
                snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " notices=%" PRIu64,
                         g.notices);
        }
        printf(
            "rd_loadgen: mode=load conns=%d connect_secs=%.3f secs=%.3f requests=%.*f"
            " rps=%.*f%s cpu=%.0f%%%s mismatches=%" PRIu64 " dropped=%" PRIu64 " timeouts=%" PRIu64
            " connfail=%" PRIu64 " retries=%" PRIu64 " errors=%" PRIu64 " cpu_total_s=%.3f%s%s\n",
            g.conns, g.connect_secs, secs, prec, units, prec, secs > 0 ? units / secs : 0.0, lat,
            secs > 0 ? 100.0 * cpu / secs : 0.0, srv, g.mismatches, g.dropped, g.timeouts,
            g.connfail, g.retries, errors, cpu_total, g.interrupted ? " interrupted=1" : "", extra);
    }
    fflush(stdout);
    freeaddrinfo(g.addr);
    for (int i = 0; g.x && g.mode == M_CHAT && i < g.conns; i++)
        free(g.x[i].next_from);
    free(g.x);
    free(g.e);
    free(pat);
    free(g.dirty);
    free(g.c);
    free(g.queue);
    if (errors) return 1;
    if (!g.idle && g.done == 0) return 1; /* measured nothing: treat as a failure */
    return 0;
}
