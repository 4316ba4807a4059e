/*
 * rd_conn.c: a TCP connection. States run CONNECTING -> OPEN -> CLOSING
 * (flushing) -> CLOSED, never back (a failed connect goes straight to
 * CLOSED). rd_conn_close is the one place that releases the fd, the watchers
 * and the output (a stream's half-close gives up its write fd early); it is
 * idempotent, and it
 * defers on_lost to the next settle so that connectionLost never runs nested
 * inside another callback and the owner's memory stays pinned until then.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <string.h>
#include <unistd.h>

#include "rd.h"

#define RD_IOV_MAX 64

static void io_cb(struct ev_loop *ev, ev_io *w, int revents);
static void stream_write_cb(struct ev_loop *ev, ev_io *w, int revents);
static void timer_stop(rd_conn_t *c);
static void timer_free(rd_conn_t *c);

static const rd_conn_ops_t no_ops;

static void common_init(rd_conn_t *c, rd_loop_t *loop, int fd, const rd_addr_t *peer)
{
    c->loop = loop;
    c->fd = fd;
    c->stream = 0;
    c->reason = c->err = 0;
    c->write_due = c->lost_due = c->ready = c->detached = 0;
    c->out.head = c->out.tail = NULL;
    c->out.size = 0;
    c->peer = *peer;
    ev_io_init(&c->io, io_cb, fd, 0);
    c->io.data = NULL; /* no cold part yet (libev leaves data alone) */
    c->listener = NULL;
    c->high = RD_HIGH_WATER;
    c->low = RD_LOW_WATER;
    c->max_out = RD_MAX_OUTPUT;
    c->flow_paused = c->user_paused = c->redeliver = c->eof = c->shut_wr = 0;
    c->pause_reads = 1;
    /* the callback fields are the owner's: set before or after init */
    if (!c->ops) c->ops = &no_ops;
    rd__link_add(&loop->conns, &c->link);
    loop->nconns++;
}

int rd_conn_host(const rd_conn_t *c, rd_addr_t *out)
{
    memset(out, 0, sizeof *out);
    if (c->state == RD_CLOSED) return RD_ECLOSED;
    if (c->stream) return 0;
    if (c->peer.sa.sa_family == AF_UNIX) { /* a path does not fit; say only the kind */
        out->sa.sa_family = AF_UNIX;
        return 0;
    }
    socklen_t len = sizeof *out;
    if (getsockname(c->fd, &out->sa, &len) < 0) {
        int err = -errno;
        memset(out, 0, sizeof *out);
        return err;
    }
    return 0;
}

void rd_conn_init(rd_conn_t *c, rd_loop_t *loop, int fd, const rd_addr_t *peer)
{
    common_init(c, loop, fd, peer);
    c->state = RD_OPEN;
}

/* What the conn's one watcher waits for now: 0 when stopped. */
static inline int io_events(const rd_conn_t *c)
{
    return ev_is_active(&c->io) ? c->io.events & (EV_READ | EV_WRITE) : 0;
}

/* Change what the watcher waits for. A socket has one watcher for both
 * directions (48 bytes a conn less than two), so interest changes restart
 * it; that happens only when write interest does (a short send, a drain)
 * or reading pauses, never on the path of a request answered at once. */
static void io_want(rd_conn_t *c, int events)
{
    if (io_events(c) == events) return;
    if (ev_is_active(&c->io)) ev_io_stop(c->loop->ev, &c->io);
    if (events) {
        ev_io_modify(&c->io, events);
        ev_io_start(c->loop->ev, &c->io);
    }
}

static inline int reading(const rd_conn_t *c)
{
    return io_events(c) & EV_READ;
}

static void read_want(rd_conn_t *c, int on)
{
    io_want(c, (io_events(c) & ~EV_READ) | (on ? EV_READ : 0));
}

/* A stream's write side, NULL for a socket (one load and a test when the
 * conn has no cold part, as the pointer of its own cost) */
static inline struct rd__connstream *stream_of(const rd_conn_t *c)
{
    struct rd__connx *x = rd__conn_x(c);
    return x ? x->st : NULL;
}

/* Only a socket's watcher ever has EV_WRITE: the common case, a socket
 * that is not waiting to write, costs one test more than the events' */
static inline int writing(const rd_conn_t *c)
{
    if (c->io.events & EV_WRITE) return ev_is_active(&c->io);
    struct rd__connstream *st = stream_of(c);
    return st && ev_is_active(&st->wio);
}

static void write_want(rd_conn_t *c, int on)
{
    struct rd__connstream *st = stream_of(c);
    if (!st) {
        io_want(c, (io_events(c) & ~EV_WRITE) | (on ? EV_WRITE : 0));
    } else if (on && !ev_is_active(&st->wio)) {
        ev_io_start(c->loop->ev, &st->wio);
    } else if (!on && ev_is_active(&st->wio)) {
        ev_io_stop(c->loop->ev, &st->wio);
    }
}

/* Read iff open, not paused by anyone, and the peer has not finished. */
static void update_reading(rd_conn_t *c)
{
    int want =
        c->state == RD_OPEN && !c->user_paused && !c->eof && !(c->flow_paused && c->pause_reads);
    if (!want != !reading(c)) read_want(c, want);
}

int rd__conn_reading(const rd_conn_t *c)
{
    return reading(c) != 0;
}

void rd_conn_start(rd_conn_t *c)
{
    update_reading(c);
}

void rd_conn_redeliver(rd_conn_t *c)
{
    if (c->state != RD_OPEN) return;
    c->redeliver = 1;
    rd__ready_mark(c);
}

void rd_conn_pause_reading(rd_conn_t *c, int paused)
{
    c->user_paused = paused != 0;
    update_reading(c);
}

/* May len more bytes be queued? 0, or the error to return (the conn may be
 * aborted). */
static inline int write_check(rd_conn_t *c, size_t len)
{
    if (c->state != RD_OPEN && c->state != RD_CONNECTING) return RD_ECLOSED;
    if (c->shut_wr) return RD_ECLOSED;
    if (c->max_out && c->out.size > c->high && c->out.size + len > c->max_out) {
        /* already backed up and still writing: a peer that never reads cannot
         * make us hold more than max(max_out, high + one write) */
        rd_conn_close(c, RD_ABORTED, RD_ETOOBIG);
        return RD_ETOOBIG;
    }
    return 0;
}

/* After a write queued something: flush when the callback returns, and
 * tell the owner at once if the queue crossed its high water mark. */
static inline int write_queued(rd_conn_t *c)
{
    rd__write_later(c);
    if (!c->flow_paused && c->out.size > c->high) {
        /* crossed now: say so before the writer writes again (Twisted's write
         * calls pauseProducing), so a loop that writes and never returns to
         * the loop is paused too, not aborted at max_out */
        c->flow_paused = 1;
        update_reading(c);
        if (c->ops->on_flow) c->ops->on_flow(c, 1);
        if (c->state == RD_CLOSED) return RD_ECLOSED;
    }
    return 0;
}

int rd_conn_write(rd_conn_t *c, const void *data, size_t len)
{
    int r = write_check(c, len);
    if (r == 0) r = rd__bufq_append(&c->out, &c->loop->pool, data, len);
    if (r != 0 || !len) return r;
    return write_queued(c);
}

int rd_conn_write_borrowed(rd_conn_t *c, const void *data, size_t len, rd_release_fn release,
                           void *ud, uintptr_t token)
{
    int r = write_check(c, len);
    if (r != 0) return r;
    if (!len) {
        release(ud, token); /* nothing to hold on to */
        return 0;
    }
    r = rd__bufq_borrow(&c->out, &c->loop->pool, data, len, release, ud, token);
    if (r != 0) return r;
    /* queued: from here release is the queue's to run, and a close from the
     * owner's flow callback (its RD_ECLOSED) has run it already */
    write_queued(c);
    return 0;
}

int rd_conn_shutdown_write(rd_conn_t *c)
{
    if (c->state != RD_OPEN || c->shut_wr) return RD_ECLOSED;
    c->shut_wr = 1; /* the flush shuts the socket once the output is gone */
    rd__write_later(c);
    return 0;
}

/* Flow control, after every flush (and a rise in rd_conn_write): one
 * callback per crossing. */
static void check_water(rd_conn_t *c)
{
    if (!c->flow_paused && c->out.size > c->high) {
        c->flow_paused = 1;
        update_reading(c);
        if (c->ops->on_flow) c->ops->on_flow(c, 1);
    } else if (c->flow_paused && c->out.size <= c->low) {
        c->flow_paused = 0;
        update_reading(c);
        if (c->ops->on_flow) c->ops->on_flow(c, 0);
    }
}

size_t rd_conn_pending(const rd_conn_t *c)
{
    return c->out.size;
}

int rd_conn_lose(rd_conn_t *c)
{
    if (c->state == RD_CONNECTING) return rd_conn_close(c, RD_DONE, 0);
    if (c->state != RD_OPEN) return RD_ECLOSED;
    c->state = RD_CLOSING;
    read_want(c, 0);
    rd__write_later(c); /* the flush closes it once the output is gone */
    return 0;
}

int rd_conn_close(rd_conn_t *c, int reason, int err)
{
    if (c->state == RD_CLOSED) return RD_ECLOSED;
    rd_loop_t *loop = c->loop;
    ev_io_stop(loop->ev, &c->io);
    rd__bufq_consume(&c->out, &loop->pool, c->out.size);
    struct rd__connstream *st = stream_of(c);
    if (st) { /* give the descriptions back as we found them */
        ev_io_stop(loop->ev, &st->wio);
        fcntl(c->fd, F_SETFL, st->rflags);
        if (st->wfd >= 0) {
            fcntl(st->wfd, F_SETFL, st->wflags);
            close(st->wfd);
        }
        free(st);
        rd__conn_x(c)->st = NULL;
    }
    timer_free(c); /* the cold part goes with the timer, its stream gone */
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = RD_CLOSED;
    c->reason = (unsigned char)reason;
    c->err = err;
    rd__link_del(&c->link);
    c->ready = 0; /* its batched read will not happen: the entry goes stale */
    loop->nconns--;
    if (c->listener) {
        c->listener->nconns--;
        c->listener = NULL;
    }
    rd__write_cancel(c); /* a CLOSED conn is never flushed */
    if (c->ops->on_lost && !c->detached)
        rd__lost_later(c); /* reported once the queues are drained */
    else
        rd__cq_forget(c); /* no report: its owner may free it now */
    return 0;
}

void rd_conn_detach(rd_conn_t *c)
{
    c->detached = 1;
    if (rd_conn_close(c, RD_ABORTED, 0) < 0 && c->lost_due) {
        rd__lost_cancel(c); /* closed before: its report was still due */
        rd__cq_forget(c);   /* and its owner may free it now */
    }
}

void rd_conn_finish(rd_conn_t *c)
{
    if (c->state == RD_OPEN || c->state == RD_CLOSING) rd__conn_flush(c);
    rd_conn_close(c, RD_DONE, 0);
}

/* writev to a pipe or terminal without SIGPIPE, and without touching the
 * process's signal disposition (a library must not): SIGPIPE is blocked in
 * this thread for the call, and one it raised is taken off the pending set
 * before it is unblocked, so EPIPE comes back as an error like a socket's. */
static ssize_t stream_writev(int fd, const struct iovec *iov, int niov)
{
    sigset_t pipe, old;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE); /* not ours to swallow */
    pthread_sigmask(SIG_BLOCK, &pipe, &old);
    ssize_t n = writev(fd, iov, niov);
    int err = errno;
    if (n < 0 && err == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return n;
}

/* One send per call in the common case; only an unwritten rest arms the
 * write watcher (libuv's try-write first). */
void rd__conn_flush(rd_conn_t *c)
{
    if (c->state == RD_CONNECTING) return; /* connected_cb queues it again */
    while (c->out.size) {
        struct iovec iov[RD_IOV_MAX];
        int niov = rd__bufq_iov(&c->out, iov, RD_IOV_MAX);
        size_t want = 0;
        for (int i = 0; i < niov; i++)
            want += iov[i].iov_len;
        ssize_t n;
        if (c->stream) {
            n = stream_writev(stream_of(c)->wfd, iov, niov);
        } else if (niov == 1) { /* the common case: send skips sendmsg's iovec import */
            n = send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
        } else {
            struct msghdr m;
            memset(&m, 0, sizeof m);
            m.msg_iov = iov;
            m.msg_iovlen = (size_t)niov;
            n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            rd_conn_close(c, RD_LOST, -errno);
            return;
        }
        rd__bufq_consume(&c->out, &c->loop->pool, (size_t)n);
        if ((size_t)n < want) break; /* the socket buffer is full */
    }
    if (c->out.size) {
        if (!writing(c)) write_want(c, 1);
        check_water(c);
        return;
    }
    if (writing(c)) write_want(c, 0);
    if (c->state == RD_CLOSING || (c->eof && c->shut_wr)) {
        rd_conn_close(c, RD_DONE, 0);
        return;
    }
    if (c->shut_wr == 1) {
        if (c->stream) {
            /* a pipe's EOF. The dup shares stdout's description: give its
             * flags back first, unless the read side shares it too */
            struct rd__connstream *st = stream_of(c);
            if (c->stream == 1) fcntl(st->wfd, F_SETFL, st->wflags);
            close(st->wfd);
            st->wfd = -1;
        } else {
            shutdown(c->fd, SHUT_WR);
        }
        c->shut_wr = 2;
    }
    check_water(c);
}

/* Readable: only mark it. The loop reads every ready connection in one
 * batch before it sleeps (rd_loop_settle), so the owner can enter its own
 * context (a lua_pcall) once per batch instead of once per read. Writable:
 * send what is queued, then settle. */
static void io_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)ev;
    rd_conn_t *c = rd__container(w, rd_conn_t, io);
    if (revents & EV_READ) rd__ready_mark(c);
    if (revents & EV_WRITE) {
        rd_loop_t *loop = c->loop;
        rd__conn_flush(c);
        rd_loop_settle(loop);
    }
}

/* One read per batch: the loop is level-triggered, so a fast client gets its
 * next turn after everyone else's. c has left the ready list. */
void rd__conn_read(rd_conn_t *c)
{
    if (!reading(c)) return; /* paused or closing since it was marked */
    rd_loop_t *loop = c->loop;
    if (c->redeliver) { /* the owner's own bytes first (rd_conn_redeliver) */
        c->redeliver = 0;
        c->ops->on_read(c, loop->rbuf, 0); /* may longjmp, as below */
        if (c->write_due) {
            rd__write_cancel(c);
            rd__conn_flush(c);
        }
        return; /* the socket's next bytes come in the next batch (level-triggered) */
    }
    ssize_t n;
    do
        n = c->stream ? read(c->fd, loop->rbuf, loop->rbuf_size)
                      : recv(c->fd, loop->rbuf, loop->rbuf_size, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        struct rd__connx *x = rd__conn_x(c);
        if (x && x->timeout > 0) x->last_read = rd_now(loop);
        c->ops->on_read(c, loop->rbuf, (size_t)n);
        /* on_read may longjmp to the owner's run_reads (rd_loop_read_ready):
         * then the lines below are skipped, which is safe: c has left the
         * ready list, last_read is set, and what it wrote stays on
         * pending_writes for the settle. Nothing after the call may be
         * needed for consistency. */
        if (c->write_due) { /* never set once CLOSED: close cancels it */
            /* answer now, while c is in cache: one send for all the callback
             * wrote, and the pool's one warm chunk serves the next conn too
             * (after the whole batch, a big one would need a chunk each) */
            rd__write_cancel(c);
            rd__conn_flush(c);
        }
    } else if (n == 0) {
        /* the peer's FIN: half-close if the owner wants it, else finish */
        c->eof = 1;
        update_reading(c);
        if (!(c->ops->on_eof && c->ops->on_eof(c)) || c->shut_wr == 2) rd_conn_lose(c);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        rd_conn_close(c, RD_LOST, -errno);
    }
}

static void stream_write_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)ev, (void)revents;
    rd_conn_t *c = rd__container(w, struct rd__connstream, wio)->c;
    rd_loop_t *loop = c->loop;
    rd__conn_flush(c);
    rd_loop_settle(loop);
}

/*{====================================================================
 * Idle timeout
 *=====================================================================*/

/* The conn's one timer runs on libev's clock or on the loop's virtual one
 * (rd_clock.c): these four are the only places that tell them apart. */
static void idle_cb(struct ev_loop *ev, ev_timer *w, int revents);
static void vidle_cb(rd__tw_t *e);
static void connect_timeout_cb(struct ev_loop *ev, ev_timer *w, int revents);
static void vconnect_cb(rd__tw_t *e);

static void timer_stop(rd_conn_t *c)
{
    struct rd__connx *tm = rd__conn_x(c);
    if (!tm) return;
    if (c->loop->clock) {
        rd__tw_stop(c->loop->clock, &tm->vtimer);
    } else {
        ev_timer_stop(c->loop->ev, &tm->timer);
        rd__dl_del(c->loop, &tm->dl);
    }
}

/* Stopped and gone, with the cold part: at close (a stream's write side is
 * gone by then), and once a connect succeeded (a socket's holds only the
 * timer). */
static void timer_free(rd_conn_t *c)
{
    timer_stop(c);
    free(c->io.data);
    c->io.data = NULL;
}

/* A new cold part, the timer stopped with no timeout, for c once set. */
static struct rd__connx *x_new(void)
{
    struct rd__connx *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    ev_init(&x->timer, NULL);
    x->dl.w = &x->timer;
    return x;
}

static void x_set(rd_conn_t *c, struct rd__connx *x)
{
    x->c = c;
    c->io.data = x;
}

/* The conn's timer, allocated at first use (stopped, no timeout). */
static int timer_get(rd_conn_t *c)
{
    if (rd__conn_x(c)) return 0;
    struct rd__connx *x = x_new();
    if (!x) return -ENOMEM;
    x_set(c, x);
    return 0;
}

/* The idle timer, to fire once in `after` seconds, on either clock alike.
 * One-shot, not libev's repeat: with repeat 0 (a timer that moved clocks
 * with nothing left) ev_timer_again would not start it at all, and a
 * repeating one kept the last "sleep the rest" as its period. */
static void idle_arm(rd_conn_t *c, double after)
{
    struct rd__connx *tm = rd__conn_x(c);
    if (!(after > 0)) after = 0; /* due now: fires in the next iteration */
    if (c->loop->clock) {
        rd__tw_start(c->loop->clock, &tm->vtimer, after, 0, vidle_cb);
        return;
    }
    ev_timer_stop(c->loop->ev, &tm->timer);
    ev_timer_init(&tm->timer, idle_cb, after, 0.);
    ev_timer_start(c->loop->ev, &tm->timer);
    rd__dl_sync(c->loop, &tm->dl);
}

static void connect_arm(rd_conn_t *c, double after)
{
    struct rd__connx *tm = rd__conn_x(c);
    if (c->loop->clock) {
        rd__tw_start(c->loop->clock, &tm->vtimer, after, 0, vconnect_cb);
        return;
    }
    ev_timer_init(&tm->timer, connect_timeout_cb, after, 0.);
    ev_timer_start(c->loop->ev, &tm->timer);
    rd__dl_sync(c->loop, &tm->dl);
}

/* A started timer moves to the other clock with the time it has left. */
void rd__conn_switch(rd_conn_t *c, rd_clock_t *from, rd_clock_t *to)
{
    struct rd__connx *tm = rd__conn_x(c);
    if (!tm || !ev_is_active(&tm->timer)) return; /* vtimer.slot lies where timer.active does */
    int idle = c->state != RD_CONNECTING;
    double left;
    if (from) {
        left = rd__tw_remaining(from, &tm->vtimer);
        rd__tw_stop(from, &tm->vtimer);
    } else {
        left = ev_timer_remaining(c->loop->ev, &tm->timer);
        ev_timer_stop(c->loop->ev, &tm->timer);
        rd__dl_del(c->loop, &tm->dl);
    }
    if (left < 0) left = 0;
    rd_clock_t *was = c->loop->clock; /* the arms read the loop's clock */
    c->loop->clock = to;
    if (!to) ev_init(&tm->timer, idle ? idle_cb : connect_timeout_cb);
    if (idle)
        idle_arm(c, left);
    else
        connect_arm(c, left);
    c->loop->clock = was;
}

static void idle_fired(rd_conn_t *c)
{
    rd_loop_t *loop = c->loop;
    double left = rd__conn_x(c)->last_read + rd__conn_x(c)->timeout - rd_now(loop);
    if (left > 1e-3) { /* read since it was armed: sleep the rest */
        idle_arm(c, left);
        return;
    }
    if (c->ops->on_timeout)
        c->ops->on_timeout(c);
    else
        rd_conn_close(c, RD_TIMEOUT, -ETIMEDOUT);
    struct rd__connx *tm = c->state != RD_CLOSED ? rd__conn_x(c) : NULL;
    if (tm && tm->timeout > 0 && !ev_is_active(&tm->timer)) {
        /* the owner kept it: the clock starts again */
        tm->last_read = rd_now(loop);
        idle_arm(c, tm->timeout);
    }
    rd_loop_settle(loop);
}

static void idle_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev, (void)revents;
    struct rd__connx *tm = rd__container(w, struct rd__connx, timer);
    rd__dl_del(tm->c->loop, &tm->dl); /* one-shot: stopped now */
    idle_fired(tm->c);
}

static void vidle_cb(rd__tw_t *e)
{
    idle_fired(rd__container(e, struct rd__connx, vtimer)->c);
}

int rd_conn_set_timeout(rd_conn_t *c, double seconds)
{
    if (c->state == RD_CLOSED || c->state == RD_CONNECTING) return 0;
    if (!(seconds > 0)) {
        if (rd__conn_x(c)) {
            timer_stop(c);
            rd__conn_x(c)->timeout = 0;
        }
        return 0;
    }
    if (timer_get(c) < 0) return -ENOMEM;
    timer_stop(c);
    struct rd__connx *tm = rd__conn_x(c);
    tm->timeout = seconds;
    tm->last_read = rd_now(c->loop);
    if (!c->loop->clock) ev_init(&tm->timer, idle_cb);
    idle_arm(c, seconds);
    return 0;
}

double rd_conn_timeout(const rd_conn_t *c)
{
    const struct rd__connx *tm = rd__conn_x(c);
    return tm ? tm->timeout : 0;
}

double rd_conn_timer_remaining(const rd_conn_t *c)
{
    struct rd__connx *tm = rd__conn_x(c);
    if (!tm || c->loop->clock || !ev_is_active(&tm->timer)) return -1;
    return ev_timer_remaining(c->loop->ev, &tm->timer);
}

/*{====================================================================
 * Outgoing connections
 *=====================================================================*/

static void connected_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)revents;
    rd_conn_t *c = rd__container(w, rd_conn_t, io);
    rd_loop_t *loop = c->loop;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err) {
        rd_conn_close(c, err == ECONNREFUSED ? RD_REFUSED : RD_LOST, -err);
    } else {
        ev_io_stop(ev, &c->io);
        timer_free(c);
        ev_set_cb(&c->io, io_cb);
        c->state = RD_OPEN;
        update_reading(c);
        if (c->ops->on_connect) c->ops->on_connect(c);
        if (c->state == RD_OPEN && c->out.size) rd__write_later(c);
    }
    rd_loop_settle(loop);
}

static void connect_timed_out(rd_conn_t *c)
{
    rd_loop_t *loop = c->loop;
    rd_conn_close(c, RD_TIMEOUT, -ETIMEDOUT);
    rd_loop_settle(loop);
}

static void connect_timeout_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev, (void)revents;
    struct rd__connx *tm = rd__container(w, struct rd__connx, timer);
    rd__dl_sync(tm->c->loop, &tm->dl); /* a one-shot: libev stopped it */
    connect_timed_out(tm->c);
}

static void vconnect_cb(rd__tw_t *e)
{
    connect_timed_out(rd__container(e, struct rd__connx, vtimer)->c);
}

int rd_conn_init_stream(rd_conn_t *c, rd_loop_t *loop, int rfd, int wfd)
{
    struct rd__connstream *st = calloc(1, sizeof *st);
    struct rd__connx *x = x_new(); /* a stream's write side lives in the cold part */
    if (!st || !x) {
        free(st);
        free(x);
        return -ENOMEM;
    }
    int r = fcntl(rfd, F_DUPFD_CLOEXEC, 3), w = fcntl(wfd, F_DUPFD_CLOEXEC, 3);
    if (r < 0 || w < 0) {
        int err = -errno;
        if (r >= 0) close(r);
        if (w >= 0) close(w);
        free(st);
        free(x);
        return err;
    }
    rd_addr_t none;
    memset(&none, 0, sizeof none);
    common_init(c, loop, r, &none);
    ev_io_init(&st->wio, stream_write_cb, w, EV_WRITE);
    st->c = c;
    st->wfd = w;
    st->rflags = fcntl(r, F_GETFL);
    st->wflags = fcntl(w, F_GETFL);
    x->st = st;
    x_set(c, x);
    fcntl(r, F_SETFL, st->rflags | O_NONBLOCK);
    /* one description for both (a terminal on stdin and stdout) shows the
     * read side's new flag on the write side too */
    c->stream = !(st->wflags & O_NONBLOCK) && (fcntl(w, F_GETFL) & O_NONBLOCK) ? 2 : 1;
    fcntl(w, F_SETFL, st->wflags | O_NONBLOCK);
    c->state = RD_OPEN;
    return 0;
}

static int start_connect(rd_conn_t *c, rd_loop_t *loop, int fd, const struct sockaddr *sa,
                         socklen_t len, const rd_addr_t *peer, double timeout)
{
    /* EAGAIN is a failure here: a Unix socket's way of saying its backlog is full */
    if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
        int err = -errno;
        close(fd);
        return err;
    }
    struct rd__connx *tm = NULL;
    if (timeout > 0 && !(tm = x_new())) {
        close(fd);
        return -ENOMEM;
    }
    common_init(c, loop, fd, peer);
    c->state = RD_CONNECTING;
    if (tm) x_set(c, tm);
    /* even an immediate success is reported from the loop, never from here */
    ev_set_cb(&c->io, connected_cb);
    io_want(c, EV_WRITE);
    if (timeout > 0) connect_arm(c, timeout);
    return 0;
}

int rd_conn_connect(rd_conn_t *c, rd_loop_t *loop, const rd_addr_t *to, double timeout)
{
    int fd = socket(to->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return start_connect(c, loop, fd, &to->sa, rd_addr_len(to), to, timeout);
}

int rd_conn_connect_unix(rd_conn_t *c, rd_loop_t *loop, const char *path, double timeout)
{
    struct sockaddr_un sun;
    int bad = rd_addr_unix(&sun, path);
    if (bad) return bad;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    rd_addr_t peer;
    memset(&peer, 0, sizeof peer);
    peer.sa.sa_family = AF_UNIX;
    return start_connect(c, loop, fd, (struct sockaddr *)&sun, sizeof sun, &peer, timeout);
}
