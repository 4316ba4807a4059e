/*
 * raw_chat: examples/chat.lua's chat room (seed 001's select chat server) in
 * plain C on libev, as a careful C programmer would write it: the ceiling
 * examples/chat.lua is measured against (bench/batteries.sh, rd_loadgen -m chat).
 *
 *   raw_chat [-p PORT] [HOST]      (HOST default 127.0.0.1, PORT default 8800)
 *
 * First line on stdout (flushed): "raw_chat: listening on HOST:PORT".
 * "-p 0" picks a free port. SIGINT/SIGTERM stop it (exit 0).
 *
 * The same wire format and messages as examples/chat.lua: frames are a 4-byte
 * big-endian length and the text. A client's first frame is "NAME: alice",
 * answered "CLIENT: <its host>"; the others get "\n(Connected: New client (N)
 * from alice@<host>)", N the members with the new one. Every later non-empty
 * frame "hi" reaches every other member as "\n#[alice@<host>]>>hi", never its
 * sender; a member that leaves is announced "\n(Now hung up: Client from
 * alice@<host>)". A bad first frame is answered "ERROR: <why> (...)" and the
 * connection closed once that is sent; a name is 1 to 32 bytes of UTF-8
 * without control characters. A frame longer than 99999 bytes closes the
 * connection. A member that does not read stops being read from once 64 KiB
 * are queued for it, and is dropped past 256 KiB.
 *
 * How: one shared read buffer; a message is framed once into a scratch buffer
 * and copied to each recipient's output buffer, and each recipient gets one
 * send per read batch: an ev_prepare watcher flushes every member with output
 * after libev has run the callbacks of every socket one poll found ready, just
 * before it polls again (so 50 messages read in one round reach a member in one
 * send, as reactord's settle does). Closes (a hang-up, a drop) are deferred to
 * the end of the batch too, so a broadcast never sees the room change under it.
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

#define MAX_LENGTH 99999u        /* Int32StringReceiver's (Twisted's) */
#define MAX_NAME 32              /* bytes */
#define MAX_OUTPUT (256u * 1024) /* queued for one member before it is dropped */
#define HIGH_WATER (64u * 1024)  /* queued for one member: stop reading from it */
#define RBUF_SIZE 65536
#define FULLNAME_MAX (MAX_NAME + 1 + INET6_ADDRSTRLEN)

struct buf {
    size_t len, off, cap;
    char data[];
};

struct member {
    ev_io io;
    struct buf *out; /* output not yet sent */
    struct buf *in;  /* the bytes of an unfinished frame */
    int port;
    int named;        /* in the room */
    int dirty;        /* on the flush list */
    int doomed;       /* to be closed at the end of the batch */
    int closing;      /* refused: close once the output is sent */
    int lost;         /* reset or error (not a clean close), for the log line */
    size_t relay_len; /* "\n#[alice@host]>>" */
    char host[INET6_ADDRSTRLEN];
    char fullname[FULLNAME_MAX + 1];
    char relay[FULLNAME_MAX + 8];
};

static struct {
    struct member **room; /* in the order they joined */
    size_t nroom, caproom;
    struct member **dirty, **doomed, **grave;
    size_t ndirty, ndoomed, ngrave, capdirty, capdoomed, capgrave;
    char rbuf[RBUF_SIZE];
    char frame[4 + sizeof(((struct member *)0)->relay) + MAX_LENGTH]; /* a framed message */
} S;

static ev_io listen_w;
static ev_timer accept_pause_w;

static void *grow(void *p, size_t *cap, size_t want, size_t size)
{
    if (want <= *cap) return p;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < want)
        n *= 2;
    void *q = realloc(p, n * size);
    if (!q) {
        fprintf(stderr, "raw_chat: out of memory\n");
        exit(1);
    }
    *cap = n;
    return q;
}

#define PUSH(arr, n, cap, v)                                                                       \
    do {                                                                                           \
        (arr) = grow((arr), &(cap), (n) + 1, sizeof *(arr));                                       \
        (arr)[(n)++] = (v);                                                                        \
    } while (0)

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

static size_t queued(const struct member *m)
{
    return m->out ? m->out->len - m->out->off : 0;
}

static void doom(struct member *m)
{
    if (m->doomed) return;
    m->doomed = 1;
    PUSH(S.doomed, S.ndoomed, S.capdoomed, m);
}

/* Queue a whole frame (header included) for m; sent after the batch. */
static void queue_frame(struct member *m, const char *f, size_t n)
{
    if (m->doomed) return;
    if (buf_push(&m->out, f, n) < 0) {
        doom(m);
        return;
    }
    if (queued(m) > MAX_OUTPUT) {
        fprintf(stderr,
                "raw_chat: aborted %s:%d: more than %u bytes of output queued for a peer"
                " that does not read\n",
                m->host, m->port, MAX_OUTPUT);
        doom(m);
        return;
    }
    if (!m->dirty) {
        m->dirty = 1;
        PUSH(S.dirty, S.ndirty, S.capdirty, m);
    }
}

/* Frame text t[0..n) (after an optional prefix) into S.frame; returns its size. */
static size_t frame2(const char *pre, size_t pn, const char *t, size_t n)
{
    uint32_t len = (uint32_t)(pn + n);
    S.frame[0] = (char)(len >> 24);
    S.frame[1] = (char)(len >> 16);
    S.frame[2] = (char)(len >> 8);
    S.frame[3] = (char)len;
    memcpy(S.frame + 4, pre, pn);
    memcpy(S.frame + 4 + pn, t, n);
    return 4 + pn + n;
}

static void send_text(struct member *m, const char *t, size_t n)
{
    queue_frame(m, S.frame, frame2("", 0, t, n));
}

/* The framed S.frame[0..n) to every member but `except`. */
static void broadcast(size_t n, const struct member *except)
{
    for (size_t i = 0; i < S.nroom; i++)
        if (S.room[i] != except) queue_frame(S.room[i], S.frame, n);
}

static void set_events(struct ev_loop *loop, struct member *m)
{
    int ev = 0;
    size_t q = queued(m);
    if (!m->closing && q < HIGH_WATER) ev |= EV_READ;
    if (q) ev |= EV_WRITE;
    if (m->io.events == ev && ev_is_active(&m->io)) return;
    ev_io_stop(loop, &m->io);
    ev_io_set(&m->io, m->io.fd, ev);
    if (ev) ev_io_start(loop, &m->io);
}

static void flush(struct ev_loop *loop, struct member *m)
{
    struct buf *q = m->out;
    while (q && q->off < q->len) {
        ssize_t w = send(m->io.fd, q->data + q->off, q->len - q->off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            m->lost = 1;
            doom(m);
            return;
        }
        q->off += (size_t)w;
    }
    if (q && q->off == q->len) {
        free(q);
        m->out = NULL;
    }
    if (m->closing && !m->out) {
        doom(m);
        return;
    }
    set_events(loop, m);
}

/* The connection is gone: out of the room (telling the rest), to the grave. */
static void member_close(struct ev_loop *loop, struct member *m)
{
    ev_io_stop(loop, &m->io);
    close(m->io.fd);
    printf("Chat server: %s:%d hung up (%s)\n", m->host, m->port,
           m->lost ? "ConnectionLost" : "ConnectionDone");
    fflush(stdout);
    if (m->named) {
        for (size_t i = 0; i < S.nroom; i++)
            if (S.room[i] == m) {
                memmove(S.room + i, S.room + i + 1, (S.nroom - i - 1) * sizeof *S.room);
                S.nroom--;
                break;
            }
        char t[64 + FULLNAME_MAX];
        int n = snprintf(t, sizeof t, "\n(Now hung up: Client from %s)", m->fullname);
        broadcast(frame2("", 0, t, (size_t)n), m);
    }
    PUSH(S.grave, S.ngrave, S.capgrave, m);
}

/* End of a batch: send what was queued, close the doomed (whose notices may
 * queue more), until quiet; then free the closed. */
static void after_batch(struct ev_loop *loop)
{
    for (;;) {
        while (S.ndirty) {
            struct member *m = S.dirty[--S.ndirty];
            m->dirty = 0;
            if (!m->doomed) flush(loop, m);
        }
        if (!S.ndoomed) break;
        while (S.ndoomed)
            member_close(loop, S.doomed[--S.ndoomed]);
    }
    while (S.ngrave) {
        struct member *m = S.grave[--S.ngrave];
        free(m->out);
        free(m->in);
        free(m);
    }
}

/* Strict UTF-8 (as Lua 5.4's utf8.len) without control characters (Lua's %c). */
static int good_text(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c < 0x80) {
            if (c < 32 || c == 127) return 0;
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i <= k) return 0; /* cut short */
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += k + 1;
    }
    return 1;
}

static void refuse(struct member *m, const char *why)
{
    char t[256];
    int n =
        snprintf(t, sizeof t,
                 "ERROR: %s (the first frame must be \"NAME: <name>\", a name of 1 to %d bytes)",
                 why, MAX_NAME);
    send_text(m, t, (size_t)n);
    m->closing = 1;
    if (!m->dirty) { /* nothing queued after all (doomed): close now */
        doom(m);
    }
}

static void string_received(struct member *m, const char *s, size_t n)
{
    if (m->closing || m->doomed) return;
    if (!m->named) {
        if (n < 6 || memcmp(s, "NAME: ", 6) != 0) {
            refuse(m, "say your name first");
            return;
        }
        const char *name = s + 6;
        size_t nl = n - 6;
        if (nl == 0) {
            refuse(m, "the name is empty");
            return;
        }
        if (nl > MAX_NAME) {
            char why[64];
            snprintf(why, sizeof why, "the name is %zu bytes; at most %d", nl, MAX_NAME);
            {
                refuse(m, why);
                return;
            }
        }
        if (!good_text((const unsigned char *)name, nl)) {
            refuse(m, "the name must be UTF-8 text without control characters");
            return;
        }
        snprintf(m->fullname, sizeof m->fullname, "%.*s@%s", (int)nl, name, m->host);
        m->relay_len = (size_t)snprintf(m->relay, sizeof m->relay, "\n#[%s]>>", m->fullname);
        m->named = 1;
        char t[64 + FULLNAME_MAX];
        int tn = snprintf(t, sizeof t, "CLIENT: %s", m->host);
        send_text(m, t, (size_t)tn);
        PUSH(S.room, S.nroom, S.caproom, m);
        tn = snprintf(t, sizeof t, "\n(Connected: New client (%zu) from %s)", S.nroom, m->fullname);
        broadcast(frame2("", 0, t, (size_t)tn), m);
    } else if (n > 0) {
        broadcast(frame2(m->relay, m->relay_len, s, n), m);
    }
}

static uint32_t be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static void too_long(struct member *m, uint32_t len)
{
    fprintf(stderr,
            "raw_chat: %s:%d: a string of %u bytes, past MAX_LENGTH (%u); closing the"
            " connection\n",
            m->host, m->port, len, MAX_LENGTH);
    doom(m);
}

/* Frame p[0..n): each whole frame to string_received, an unfinished one kept. */
static void handle_input(struct member *m, const char *p, size_t n)
{
    if (m->in) { /* complete the unfinished frame first */
        struct buf *in = m->in;
        if (in->len < 4) {
            size_t k = 4 - in->len < n ? 4 - in->len : n;
            if (buf_push(&m->in, p, k) < 0) {
                doom(m);
                return;
            }
            in = m->in;
            p += k;
            n -= k;
            if (in->len < 4) return;
        }
        uint32_t len = be32(in->data);
        if (len > MAX_LENGTH) {
            too_long(m, len);
            return;
        }
        size_t need = 4 + (size_t)len - in->len;
        if (n < need) {
            if (buf_push(&m->in, p, n) < 0) doom(m);
            return;
        }
        if (buf_push(&m->in, p, need) < 0) {
            doom(m);
            return;
        }
        p += need;
        n -= need;
        string_received(m, m->in->data + 4, len);
        free(m->in);
        m->in = NULL;
    }
    while (n >= 4 && !m->doomed) {
        uint32_t len = be32(p);
        if (len > MAX_LENGTH) {
            too_long(m, len);
            return;
        }
        if (n - 4 < len) break;
        string_received(m, p + 4, len);
        p += 4 + (size_t)len;
        n -= 4 + (size_t)len;
    }
    if (n && !m->doomed && buf_push(&m->in, p, n) < 0) doom(m);
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct member *m = (struct member *)w;
    if (revents & EV_WRITE) flush(loop, m);
    if ((revents & EV_READ) && !m->doomed && !m->closing) {
        ssize_t n = read(w->fd, S.rbuf, sizeof S.rbuf);
        if (n > 0) {
            handle_input(m, S.rbuf, (size_t)n);
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            m->lost = n < 0;
            doom(m);
        }
    }
}

/* Before libev polls again: the batch is over. */
static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)w;
    (void)revents;
    after_batch(loop);
}

static int conn_new(struct ev_loop *loop, int fd)
{
    struct member *m = calloc(1, sizeof *m);
    if (!m) return -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, m->host, sizeof m->host);
        m->port = ntohs(s6->sin6_port);
    } else if (ss.ss_family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, m->host, sizeof m->host);
        m->port = ntohs(s4->sin_port);
    }
    printf("Chat server: got connection from %s:%d\n", m->host, m->port);
    fflush(stdout);
    ev_io_init(&m->io, conn_cb, fd, EV_READ);
    ev_io_start(loop, &m->io);
    return 0;
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
        if (conn_new(loop, fd) < 0) close(fd);
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
    fprintf(f, "usage: raw_chat [-p PORT] [HOST]\n"
               "  HOST  address to listen on (default 127.0.0.1; ::1 works)\n"
               "  -p    port (default 8800; 0 = any free port)\n");
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
        fprintf(stderr, "raw_chat: cannot resolve %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "raw_chat: cannot listen on %s:%s: %s\n", host, port, strerror(errno));
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
    const char *port = "8800";
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
        fprintf(stderr, "raw_chat: bad port: %s\n", port);
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
    ev_prepare prepare_w;
    ev_prepare_init(&prepare_w, prepare_cb);
    ev_prepare_start(loop, &prepare_w);

    printf("raw_chat: listening on %s\n", shown);
    fflush(stdout);

    ev_run(loop, 0);
    close(lfd);
    fprintf(stderr, "raw_chat: stopped\n");
    return 0;
}
