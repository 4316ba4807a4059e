/*
 * raw_http: the limit for HTTP hello: raw C on libev, one thread. It does not
 * parse HTTP: each "\r\n\r\n" in the input is one request (the load sends
 * bodiless GETs), answered with one canned keep-alive response; all answers
 * of one read leave in one write. A peer for bench/peers.sh, not a server.
 *
 *   raw_http [-p PORT] [HOST]     first stdout line: "raw_http: listening on HOST:PORT"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char RESP[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           "Content-Length: 23\r\n\r\nHello from Epoll Server";
#define RLEN (sizeof(RESP) - 1)
#define OUTMAX 64 /* responses per read; more requests in one read wait for the next */

struct conn {
    ev_io w;
    int tail; /* bytes of "\r\n\r\n" matched at the end of the last read */
};

static char out[OUTMAX * RLEN];

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct conn *c = (struct conn *)w;
    char buf[65536];
    ssize_t n = read(w->fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        ev_io_stop(loop, w);
        close(w->fd);
        free(c);
        return;
    }
    static const char end[] = "\r\n\r\n";
    int reqs = 0;
    for (ssize_t i = 0; i < n; i++) {
        c->tail = buf[i] == end[c->tail] ? c->tail + 1 : (buf[i] == '\r' ? 1 : 0);
        if (c->tail == 4) {
            reqs++;
            c->tail = 0;
        }
    }
    while (reqs > 0) { /* a test-quality server: a short write to loopback just closes */
        int k = reqs > OUTMAX ? OUTMAX : reqs;
        size_t len = (size_t)k * RLEN;
        if (write(w->fd, out, len) != (ssize_t)len) {
            ev_io_stop(loop, w);
            close(w->fd);
            free(c);
            return;
        }
        reqs -= k;
    }
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        ev_io_init(&c->w, on_read, fd, EV_READ);
        ev_io_start(loop, &c->w);
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    int port = 8800;
    const char *host = "127.0.0.1";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-p") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else
            host = argv[i];
    }
    for (int i = 0; i < OUTMAX; i++)
        memcpy(out + (size_t)i * RLEN, RESP, RLEN);
    signal(SIGPIPE, SIG_IGN);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t alen = sizeof a;
    if (fd < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        perror("raw_http");
        return 1;
    }
    printf("raw_http: listening on %s:%d\n", host, ntohs(a.sin_port));
    fflush(stdout);
    struct ev_loop *loop = EV_DEFAULT;
    ev_io lw;
    ev_io_init(&lw, on_accept, fd, EV_READ);
    ev_io_start(loop, &lw);
    ev_signal s1, s2;
    ev_signal_init(&s1, on_signal, SIGTERM);
    ev_signal_init(&s2, on_signal, SIGINT);
    ev_signal_start(loop, &s1);
    ev_signal_start(loop, &s2);
    ev_run(loop, 0);
    return 0;
}
