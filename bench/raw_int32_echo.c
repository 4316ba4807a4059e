/*
 * raw_int32_echo: the fastest single-threaded C + libev echo server of
 * Int32StringReceiver frames we can write: the ceiling bench/int32_echo.lua is
 * measured against.
 *
 *   raw_int32_echo [-p PORT] [HOST]    (HOST default 127.0.0.1, PORT default 8000)
 *
 * First line on stdout (flushed): "raw_int32_echo: listening on HOST:PORT".
 * "-p 0" picks a free port. SIGINT/SIGTERM stop it (exit 0).
 *
 * Protocol: a frame is a 4-byte big-endian length and that many bytes; every
 * frame comes back as it came, in order, however the network split it. A
 * length past MAX_LENGTH (Twisted's 99999, as reactord's) closes the
 * connection before any of it is buffered.
 *
 * How: one shared read buffer. The whole frames of a read are echoed with one
 * send straight from it (the bytes of an echoed frame are the frame); only an
 * unfinished frame's bytes are copied, into a per-connection buffer allocated
 * then, and the next read completes it there. Output the socket does not take
 * at once is queued, and reading stops while more than OUTQ_HIGH is queued.
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

#define MAX_LENGTH 99999u
#define RBUF_SIZE 65536
#define OUTQ_HIGH (1u << 20) /* stop reading while this much is queued */

/* A byte buffer allocated only when needed (queued output, an unfinished frame). */
struct buf {
    size_t len, off, cap;
    char data[];
};

struct conn {
    ev_io io;
    struct buf *out; /* output the socket did not take */
    struct buf *in;  /* the bytes of an unfinished frame */
};

static char rbuf[RBUF_SIZE];

static ev_io listen_w;
static ev_timer accept_pause_w;

static void conn_close(struct ev_loop *loop, struct conn *c)
{
    ev_io_stop(loop, &c->io);
    close(c->io.fd);
    free(c->out);
    free(c->in);
    free(c);
}

static void conn_set_events(struct ev_loop *loop, struct conn *c, int events)
{
    if (c->io.events == events) return;
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->io.fd, events);
    ev_io_start(loop, &c->io);
}

/* Append p[0..n) to *bp (allocated or grown as needed). -1 on out of memory. */
static int buf_push(struct buf **bp, const char *p, size_t n)
{
    struct buf *q = *bp;
    if (!q) {
        size_t cap = n < 4096 ? 4096 : n;
        q = malloc(sizeof *q + cap);
        if (!q) return -1;
        q->len = q->off = 0;
        q->cap = cap;
        *bp = q;
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
            *bp = q;
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
    if (buf_push(&c->out, p, n) < 0) return -1;
    conn_set_events(loop, c,
                    c->out->len - c->out->off >= OUTQ_HIGH ? EV_WRITE : EV_READ | EV_WRITE);
    return 0;
}

static uint32_t be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* How many leading bytes of p[0..n) are whole frames; -1 for a length past MAX_LENGTH. */
static long whole_frames(const char *p, size_t n)
{
    size_t pos = 0;
    while (n - pos >= 4) {
        uint32_t len = be32(p + pos);
        if (len > MAX_LENGTH) return -1;
        if (n - pos - 4 < len) break;
        pos += 4 + (size_t)len;
    }
    return (long)pos;
}

static int handle_input(struct ev_loop *loop, struct conn *c, const char *p, size_t n)
{
    if (c->in) {
        /* finish the unfinished frame first: take only the bytes it still needs */
        struct buf *in = c->in;
        size_t need;
        if (in->len < 4) {
            size_t k = 4 - in->len < n ? 4 - in->len : n;
            if (buf_push(&c->in, p, k) < 0) return -1;
            in = c->in;
            p += k;
            n -= k;
            if (in->len < 4) return 0;
        }
        uint32_t len = be32(in->data);
        if (len > MAX_LENGTH) return -1;
        need = 4 + (size_t)len - in->len;
        if (n < need) return buf_push(&c->in, p, n);
        if (buf_push(&c->in, p, need) < 0) return -1;
        p += need;
        n -= need;
        /* the finished frame and the whole frames after it: one send if they fit */
        long whole = whole_frames(p, n);
        if (whole < 0) return -1;
        if (buf_push(&c->in, p, (size_t)whole) < 0) return -1;
        p += whole;
        n -= (size_t)whole;
        int rc = conn_send(loop, c, c->in->data, c->in->len);
        free(c->in);
        c->in = NULL;
        if (rc < 0) return -1;
        if (n == 0) return 0;
        return buf_push(&c->in, p, n); /* an unfinished frame at the end */
    }
    long whole = whole_frames(p, n);
    if (whole < 0) return -1;
    if (whole > 0 && conn_send(loop, c, p, (size_t)whole) < 0) return -1;
    if ((size_t)whole < n) return buf_push(&c->in, p + whole, n - (size_t)whole);
    return 0;
}

static int flush_out(struct ev_loop *loop, struct conn *c)
{
    struct buf *q = c->out;
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
            if (handle_input(loop, c, rbuf, (size_t)n) < 0) conn_close(loop, c);
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
        c->in = NULL;
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
    fprintf(f, "usage: raw_int32_echo [-p PORT] [HOST]\n"
               "  HOST  address to listen on (default 127.0.0.1; ::1 works)\n"
               "  -p    port (default 8000; 0 = any free port)\n");
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
        fprintf(stderr, "raw_int32_echo: cannot resolve %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "raw_int32_echo: cannot listen on %s:%s: %s\n", host, port,
                strerror(errno));
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
    const char *port = "8000";
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
        fprintf(stderr, "raw_int32_echo: bad port: %s\n", port);
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

    printf("raw_int32_echo: listening on %s\n", shown);
    fflush(stdout);

    ev_run(loop, 0);
    close(lfd);
    fprintf(stderr, "raw_int32_echo: stopped\n");
    return 0;
}
