/*
 * rd_listener.c: a listening TCP socket. Accepts up to `accepts` connections
 * per wake-up, and survives running out of descriptors with libev's
 * spare-fd trick: give up the reserve, accept, close at once, take the
 * reserve back. Otherwise a full fd table leaves the listener readable
 * forever and the loop spins.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <string.h>
#include <unistd.h>

#include "rd.h"

static void take_spare(rd_loop_t *loop)
{
    if (loop->spare_fd < 0) loop->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void shed_one(rd_listener_t *l)
{
    rd_loop_t *loop = l->loop;
    if (loop->spare_fd >= 0) {
        close(loop->spare_fd);
        loop->spare_fd = -1;
    }
    int fd = accept(l->fd, NULL, NULL);
    if (fd >= 0) {
        close(fd);
        l->refused++;
        loop->refused++;
    }
    take_spare(loop);
}

static void accept_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)ev, (void)revents;
    rd_listener_t *l = rd__container(w, rd_listener_t, io);
    rd_loop_t *loop = l->loop;
    int one = 1;
    for (unsigned i = 0; i < l->accepts; i++) {
        rd_addr_t peer;
        socklen_t len = sizeof peer;
        memset(&peer, 0, sizeof peer);
        int fd = l->path ? accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)
                         : accept4(l->fd, &peer.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (l->path) peer.sa.sa_family = AF_UNIX; /* peers are unnamed */
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE) {
                shed_one(l);
                continue;
            }
            break; /* EAGAIN, or an error the next wake-up will see again */
        }
        if ((l->max_conns && l->nconns >= l->max_conns) ||
            (loop->max_conns && loop->nconns >= loop->max_conns)) {
            close(fd); /* over a limit: refused at once, and counted */
            l->refused++;
            loop->refused++;
            continue;
        }
        if (!l->path) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        rd_conn_t *c = l->alloc(l);
        if (!c) {
            close(fd);
            l->refused++;
            loop->refused++;
            continue;
        }
        rd_conn_init(c, loop, fd, &peer);
        c->listener = l;
        l->nconns++;
        rd_conn_marks(c, l->high, l->low, l->max_out);
        int timed = l->idle > 0 ? rd_conn_set_timeout(c, l->idle) : 0;
        l->on_accept(l, c);
        if (timed < 0 && c->state == RD_OPEN) rd_conn_close(c, RD_LOST, timed); /* no memory */
        if (c->state == RD_OPEN) rd_conn_start(c);
        if (l->fd < 0) break; /* closed by its own callback */
    }
    rd_loop_settle(loop); /* l may be freed from here on */
}

static void defaults(rd_listener_t *l, rd_loop_t *loop)
{
    l->loop = loop;
    l->fd = -1;
    l->path = NULL;
    l->accepts = 64;
    l->max_conns = l->nconns = 0;
    l->refused = 0;
    l->high = RD_HIGH_WATER;
    l->low = RD_LOW_WATER;
    l->max_out = RD_MAX_OUTPUT;
    l->idle = 0;
    rd__link_init(&l->link);
}

static void start(rd_listener_t *l, int fd)
{
    l->fd = fd;
    take_spare(l->loop);
    ev_io_init(&l->io, accept_cb, fd, EV_READ);
    ev_io_start(l->loop->ev, &l->io);
    rd__link_add(&l->loop->listeners, &l->link);
    l->loop->nlisteners++;
}

int rd_listener_open(rd_listener_t *l, rd_loop_t *loop, const char *host, int port, int backlog)
{
    defaults(l, loop);
    int r = rd__addr_local(&l->addr, host, port, SOCK_STREAM);
    if (r < 0) return r;
    int fd = socket(l->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, &l->addr.sa, rd_addr_len(&l->addr)) < 0 ||
        listen(fd, backlog > 0 ? backlog : 511) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    socklen_t len = sizeof l->addr;
    getsockname(fd, &l->addr.sa, &len); /* the real port when 0 was asked */
    start(l, fd);
    return 0;
}

int rd_listener_adopt(rd_listener_t *l, rd_loop_t *loop, int fd)
{
    defaults(l, loop);
    socklen_t len = sizeof l->addr;
    memset(&l->addr, 0, sizeof l->addr);
    if (getsockname(fd, &l->addr.sa, &len) < 0) return -errno;
    if (l->addr.sa.sa_family == AF_UNIX) return -EINVAL; /* TCP only: no path to own */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -errno;
    start(l, fd);
    return 0;
}

/* Is a server accepting on the socket file at sun? */
static int alive(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 1; /* cannot tell: assume it is */
    int r = connect(fd, (const struct sockaddr *)sun, sizeof *sun);
    int err = errno;
    close(fd);
    return r == 0 || (err != ECONNREFUSED && err != ENOENT);
}

int rd_listener_open_unix(rd_listener_t *l, rd_loop_t *loop, const char *path, int backlog)
{
    defaults(l, loop);
    struct sockaddr_un sun;
    int bad = rd_addr_unix(&sun, path);
    if (bad) return bad;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int r = bind(fd, (struct sockaddr *)&sun, sizeof sun);
    if (r < 0 && errno == EADDRINUSE) {
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && !alive(&sun)) {
            unlink(path); /* left by a run that died */
            r = bind(fd, (struct sockaddr *)&sun, sizeof sun);
        } else {
            errno = EADDRINUSE;
        }
    }
    if (r < 0 || listen(fd, backlog > 0 ? backlog : 511) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    l->path = strdup(path);
    if (!l->path) {
        unlink(path);
        close(fd);
        return -ENOMEM;
    }
    memset(&l->addr, 0, sizeof l->addr);
    l->addr.sa.sa_family = AF_UNIX;
    start(l, fd);
    return 0;
}

void rd_listener_close(rd_listener_t *l)
{
    if (l->fd < 0) return;
    ev_io_stop(l->loop->ev, &l->io);
    close(l->fd);
    l->fd = -1;
    rd__link_del(&l->link);
    l->loop->nlisteners--;
    /* its owner may free l now, while conns it accepted live on: they forget
     * it (a walk over every conn, once per close; no link per conn) */
    for (rd_link_t *k = l->loop->conns.next; k != &l->loop->conns; k = k->next) {
        rd_conn_t *c = rd__container(k, rd_conn_t, link);
        if (c->listener == l) c->listener = NULL;
    }
    l->nconns = 0;
    if (l->path) {
        unlink(l->path);
        free(l->path);
        l->path = NULL;
    }
}
