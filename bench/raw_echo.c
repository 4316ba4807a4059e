/*
 * raw_echo: a single-threaded C + libev echo server, the ceiling reactord's
 * examples/echo.lua is measured against in bench/peers.sh (rd_loadgen -m echo).
 * It is raw_echo with the protocol taken out: each read goes straight back in
 * one send, and what the socket does not take waits in a queue (reading stops
 * while 1 MiB is queued, as reactord's high water mark does).
 *
 *   raw_echo [-p PORT] [HOST]      (HOST default 127.0.0.1, PORT default 1060)
 *
 * First line on stdout (flushed): "raw_echo: listening on HOST:PORT".
 * "-p 0" picks a free port. SIGINT/SIGTERM stop it (exit 0).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
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
#include <unistd.h>

#define RBUF_SIZE 65536
#define OUTQ_HIGH (1u << 20) /* stop reading while this much is queued */

/* Output that the socket did not take at once; allocated only then. */
struct outq {
    size_t len, off, cap;
    char data[];
};

struct conn {
    ev_io io;
    struct outq *out;
};

static char rbuf[RBUF_SIZE];

static ev_io listen_w;
static ev_timer accept_pause_w;

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents);

static void conn_close(struct ev_loop *loop, struct conn *c)
{
    ev_io_stop(loop, &c->io);
    close(c->io.fd);
    free(c->out);
    free(c);
}

static void conn_set_events(struct ev_loop *loop, struct conn *c, int events)
{
    if (c->io.events == events) return;
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->io.fd, events);
    ev_io_start(loop, &c->io);
}

/* Append to the connection's output queue. Returns -1 on out of memory. */
static int outq_push(struct conn *c, const char *p, size_t n)
{
    struct outq *q = c->out;
    if (!q) {
        size_t cap = n < 4096 ? 4096 : n;
        q = malloc(sizeof *q + cap);
        if (!q) return -1;
        q->len = q->off = 0;
        q->cap = cap;
        c->out = q;
    } else if (q->len + n > q->cap) {
        if (q->off) {
            memmove(q->data, q->data + q->off, q->len - q->off);
            q->len -= q->off;
            q->off = 0;
        }
        if (q->len + n > q->cap) {
            size_t cap = q->cap * 2;
            while (cap < q->len + n)
                cap *= 2;
            q = realloc(q, sizeof *q + cap);
            if (!q) return -1;
            q->cap = cap;
            c->out = q;
        }
    }
    memcpy(q->data + q->len, p, n);
    q->len += n;
    return 0;
}

/* Send p[0..n): directly if nothing is queued, else behind the queue.
 * Returns -1 if the connection must be dropped. */
static int conn_send(struct ev_loop *loop, struct conn *c, const char *p, size_t n)
{
    if (!c->out) {
        ssize_t w = send(c->io.fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
            w = 0;
        }
        if ((size_t)w == n) return 0;
        p += w;
        n -= (size_t)w;
    }
    if (outq_push(c, p, n) < 0) return -1;
    conn_set_events(loop, c,
                    c->out->len - c->out->off >= OUTQ_HIGH ? EV_WRITE : EV_READ | EV_WRITE);
    return 0;
}

static int flush_out(struct ev_loop *loop, struct conn *c)
{
    struct outq *q = c->out;
    while (q->off < q->len) {
        ssize_t w = send(c->io.fd, q->data + q->off, q->len - q->off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -1;
        }
        q->off += (size_t)w;
    }
    if (q->off == q->len) {
        free(q);
        c->out = NULL;
        conn_set_events(loop, c, EV_READ);
    } else if (q->len - q->off < OUTQ_HIGH) {
        conn_set_events(loop, c, EV_READ | EV_WRITE);
    }
    return 0;
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = (struct conn *)w;
    if (revents & EV_WRITE) {
        if (flush_out(loop, c) < 0) {
            conn_close(loop, c);
            return;
        }
    }
    if (revents & EV_READ) {
        ssize_t n = read(w->fd, rbuf, sizeof rbuf);
        if (n > 0) {
            if (conn_send(loop, c, rbuf, (size_t)n) < 0) conn_close(loop, c);
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            conn_close(loop, c);
        }
    }
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_io_start(loop, &listen_w);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of descriptors: back off instead of spinning */
                ev_io_stop(loop, &listen_w);
                ev_timer_set(&accept_pause_w, 0.1, 0.);
                ev_timer_start(loop, &accept_pause_w);
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->out = NULL;
        ev_io_init(&c->io, conn_cb, fd, EV_READ);
        ev_io_start(loop, &c->io);
    }
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: raw_echo [-p PORT] [HOST]\n"
               "  HOST  address to listen on (default 127.0.0.1; ::1 works)\n"
               "  -p    port (default 1060; 0 = any free port)\n");
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int listen_on(const char *host, const char *port, char *shown, size_t shown_len)
{
    struct addrinfo hints = {0}, *res;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "raw_echo: cannot resolve %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "raw_echo: cannot listen on %s:%s: %s\n", host, port, strerror(errno));
        freeaddrinfo(res);
        if (fd >= 0) close(fd);
        return -1;
    }
    freeaddrinfo(res);

    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char addr[INET6_ADDRSTRLEN];
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
        snprintf(shown, shown_len, "[%s]:%u", addr, ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
        snprintf(shown, shown_len, "%s:%u", addr, ntohs(s4->sin_port));
    }
    return fd;
}

int main(int argc, char **argv)
{
    const char *port = "1060";
    const char *host = "127.0.0.1";
    int opt;
    while ((opt = getopt(argc, argv, "p:h")) != -1) {
        switch (opt) {
        case 'p':
            port = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) host = argv[optind++];
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    char *endp;
    long pnum = strtol(port, &endp, 10);
    if (*port == '\0' || *endp != '\0' || pnum < 0 || pnum > 65535) {
        fprintf(stderr, "raw_echo: bad port: %s\n", port);
        return 2;
    }

    raise_nofile();
    signal(SIGPIPE, SIG_IGN);

    char shown[INET6_ADDRSTRLEN + 16];
    int lfd = listen_on(host, port, shown, sizeof shown);
    if (lfd < 0) return 1;

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    ev_signal sigint_w, sigterm_w;
    ev_signal_init(&sigint_w, stop_cb, SIGINT);
    ev_signal_init(&sigterm_w, stop_cb, SIGTERM);
    ev_signal_start(loop, &sigint_w);
    ev_signal_start(loop, &sigterm_w);

    ev_io_init(&listen_w, accept_cb, lfd, EV_READ);
    ev_io_start(loop, &listen_w);
    ev_init(&accept_pause_w, accept_resume_cb);

    printf("raw_echo: listening on %s\n", shown);
    fflush(stdout);

    ev_run(loop, 0);
    close(lfd);
    fprintf(stderr, "raw_echo: stopped\n");
    return 0;
}
