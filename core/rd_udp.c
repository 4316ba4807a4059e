/*
 * rd_udp.c: a UDP socket. Datagrams are read into the loop's shared buffer,
 * up to 64 per wake-up, and handed over whole; sends go straight out (a
 * datagram that finds the socket buffer full is dropped and counted, as the
 * network would). A connected socket reports ICMP "port unreachable" as
 * ECONNREFUSED through on_error.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "rd.h"

static void udp_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)ev, (void)revents;
    rd_udp_t *u = rd__container(w, rd_udp_t, io);
    rd_loop_t *loop = u->loop;
    for (int i = 0; i < 64 && u->fd >= 0; i++) {
        rd_addr_t from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(u->fd, loop->rbuf, loop->rbuf_size, 0, &from.sa, &len);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (u->on_error) u->on_error(u, -errno); /* ECONNREFUSED when connected */
            continue;
        }
        u->on_datagram(u, loop->rbuf, (size_t)n, &from);
    }
    rd_loop_settle(loop); /* u may be freed from here on */
}

int rd_udp_open(rd_udp_t *u, rd_loop_t *loop, const char *host, int port)
{
    memset(u, 0, sizeof *u);
    u->loop = loop;
    u->fd = -1;
    rd__link_init(&u->link);
    int r = rd__addr_local(&u->addr, host, port, SOCK_DGRAM);
    if (r < 0) return r;
    int fd = socket(u->addr.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    /* no SO_REUSEADDR: UDP has no TIME_WAIT, and with it Linux would let a
     * second socket share the port silently instead of saying EADDRINUSE */
    if (bind(fd, &u->addr.sa, rd_addr_len(&u->addr)) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    socklen_t len = sizeof u->addr;
    getsockname(fd, &u->addr.sa, &len);
    u->fd = fd;
    ev_io_init(&u->io, udp_cb, fd, EV_READ);
    ev_io_start(loop->ev, &u->io);
    rd__link_add(&loop->udps, &u->link);
    loop->nudps++;
    return 0;
}

int rd_udp_connect(rd_udp_t *u, const rd_addr_t *to)
{
    if (u->fd < 0) return RD_ECLOSED;
    if (connect(u->fd, &to->sa, rd_addr_len(to)) < 0) return -errno;
    u->connected = 1;
    u->peer = *to;
    return 0;
}

int rd_udp_send(rd_udp_t *u, const void *data, size_t len, const rd_addr_t *to)
{
    if (u->fd < 0) return RD_ECLOSED;
    ssize_t n;
    do
        n = to ? sendto(u->fd, data, len, 0, &to->sa, rd_addr_len(to)) : send(u->fd, data, len, 0);
    while (n < 0 && errno == EINTR);
    if (n >= 0) return 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
        u->dropped++;
        return 0;
    }
    return -errno;
}

void rd_udp_close(rd_udp_t *u)
{
    if (u->fd < 0) return;
    ev_io_stop(u->loop->ev, &u->io);
    close(u->fd);
    u->fd = -1;
    rd__link_del(&u->link);
    u->loop->nudps--;
}
