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

/* User + system CPU seconds of process pid (from /proc), or -1. */
static double proc_cpu_secs(int pid)
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
    if (!p ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void sample_cpu(struct rusage *ru, double *srv)
{
    getrusage(RUSAGE_SELF, ru);
    if (g.server_pid) *srv = proc_cpu_secs(g.server_pid);
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

static void on_connected(struct conn *c)
{
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
        conn_retry(c);
        return;
    }
    c->state = C_FIRST;
    send_question(c, now_ns());
}

static void conn_cb(struct ev_loop *l, ev_io *w, int revents)
{
    (void)l;
    struct conn *c = (struct conn *)w;
    if (c->state == C_CONNECTING) {
        on_connected(c);
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
    for (int i = 0; i < g.conns; i++) {
        struct conn *c = &g.c[i];
        if (c->state == C_CONNECTING || c->state == C_FIRST) {
            if (t - c->t_state > ct) conn_retry(c);
        } else if (c->state == C_BUSY && t - c->t_send > rt) {
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
        if (c->state != C_READY) continue;
        c->state = C_BUSY;
        g.ready--;
        g.busy++;
        send_question(c, t);
    }
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
    while ((opt = getopt(argc, argv, "c:d:n:w:iP:t:C:S:qh")) != -1) {
        switch (opt) {
        case 'c':
            g.conns = (int)parse_num(optarg, opt);
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
    for (int i = 0; i < g.conns; i++) {
        g.c[i].io.fd = -1;
        g.c[i].q = i % NQUESTIONS;
        g.c[i].state = C_WAIT;
        g.queue[i] = i;
    }
    g.qlen = g.conns;

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
    pump();
    if (g.phase != P_DONE) ev_run(loop, 0);

    double secs = (double)(g.t_measure_end - g.t_measure_start) / 1e9;
    const struct rusage *r0 = &g.ru0, *r1 = &g.ru1;
    double cpu = (double)(r1->ru_utime.tv_sec - r0->ru_utime.tv_sec) +
                 (double)(r1->ru_stime.tv_sec - r0->ru_stime.tv_sec) +
                 (double)(r1->ru_utime.tv_usec - r0->ru_utime.tv_usec) / 1e6 +
                 (double)(r1->ru_stime.tv_usec - r0->ru_stime.tv_usec) / 1e6;
    char srv[96] = "";
    if (g.server_pid && secs > 0 && g.done && g.srv_cpu0 >= 0 && g.srv_cpu1 >= 0) {
        double sc = g.srv_cpu1 - g.srv_cpu0;
        snprintf(srv, sizeof srv, " srv_cpu=%.0f%% srv_us_per_req=%.2f", 100.0 * sc / secs,
                 sc * 1e6 / (double)g.done);
    }
    struct rusage rtot; /* the whole process, connects and warm-up included */
    getrusage(RUSAGE_SELF, &rtot);
    double cpu_total = (double)rtot.ru_utime.tv_sec + (double)rtot.ru_stime.tv_sec +
                       (double)rtot.ru_utime.tv_usec / 1e6 + (double)rtot.ru_stime.tv_usec / 1e6;
    int alive = g.ready + g.busy;
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
        printf("rd_loadgen: mode=load conns=%d connect_secs=%.3f secs=%.3f requests=%" PRIu64
               " rps=%.0f p50_us=%.1f p99_us=%.1f max_us=%.1f cpu=%.0f%%%s mismatches=%" PRIu64
               " dropped=%" PRIu64 " timeouts=%" PRIu64 " connfail=%" PRIu64 " retries=%" PRIu64
               " errors=%" PRIu64 " cpu_total_s=%.3f%s\n",
               g.conns, g.connect_secs, secs, g.done, secs > 0 ? (double)g.done / secs : 0.0,
               hist_pct(&g.hist, 50) / 1e3, hist_pct(&g.hist, 99) / 1e3, (double)g.hist.max / 1e3,
               secs > 0 ? 100.0 * cpu / secs : 0.0, srv, g.mismatches, g.dropped, g.timeouts,
               g.connfail, g.retries, errors, cpu_total, g.interrupted ? " interrupted=1" : "");
    }
    fflush(stdout);
    freeaddrinfo(g.addr);
    free(g.c);
    free(g.queue);
    if (errors) return 1;
    if (!g.idle && g.done == 0) return 1; /* measured nothing: treat as a failure */
    return 0;
}
