/*
 * rd.h: reactord's core, C on libev. No Lua in here.
 *
 * Every object is caller-allocated and _init'ed (as libev watchers are), so
 * an owner (the Lua binding, a host program) can embed it in memory it
 * already manages. Functions return 0 or a negative errno; reactord's own
 * errors use the RD_E* range below. Fields are tagged like ev.h:
 * ro = read freely, rw = set before use, private = hands off.
 */
#ifndef RD_H
#define RD_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <ev.h>

#define RD_VERSION "0.1.0"

/* reactord's own error codes, below any errno */
#define RD_EBASE (-20000)
#define RD_ECLOSED (RD_EBASE - 1)   /* operation on a closed object */
#define RD_ETOOBIG (RD_EBASE - 2)   /* a size limit was hit */
#define RD_EBADADDR (RD_EBASE - 3)  /* host is not a numeric address */
#define RD_ENOTFOUND (RD_EBASE - 4) /* a name lookup found nothing */
#define RD_EFRAME (RD_EBASE - 5)    /* bytes that cannot be a frame (a bad netstring) */

/* Why a connection ended; passed to rd_lost_cb. */
enum rd_reason {
    RD_DONE = 0, /* closed cleanly: by us after flushing, or the peer's FIN */
    RD_LOST,     /* the network failed (reset, broken pipe, ...) */
    RD_ABORTED,  /* abortConnection: closed without flushing */
    RD_TIMEOUT,  /* a timeout fired */
    RD_REFUSED,  /* an outgoing connect was refused */
    RD_ERROR     /* the owner closed it because its handler failed */
};

/* Error name ("EADDRINUSE") and message for a 0/-errno/RD_E* code. */
const char *rd_err_name(int err);
const char *rd_strerror(int err);
/* Lower-case name of a reason ("done", "lost", ...). */
const char *rd_reason_name(int reason);

/*{====================================================================
 * Addresses
 *=====================================================================*/

typedef union rd_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
} rd_addr_t;

/* Fill *a from a numeric IPv4/IPv6 host and a port; RD_EBADADDR if not numeric. */
int rd_addr_parse(rd_addr_t *a, const char *host, int port);
/* Write the numeric host into buf (>= 46 bytes); return the port. */
int rd_addr_host(const rd_addr_t *a, char *buf, size_t size);
/* Fill *sun for a Unix socket path; -ENAMETOOLONG if it does not fit. */
struct sockaddr_un;
int rd_addr_unix(struct sockaddr_un *sun, const char *path);
/* Length of the sockaddr inside *a, for bind/connect. */
socklen_t rd_addr_len(const rd_addr_t *a);

/*{====================================================================
 * Output buffer: a queue of chunks drawn from a pool, flushed by send/sendmsg
 * (writev for a stream)
 *=====================================================================*/

#define RD_CHUNK_SIZE 16384

/* Called once for bytes queued by rd_conn_write_borrowed, when the queue is
 * done with them (all sent, or dropped by a close): token says which. */
typedef void (*rd_release_fn)(void *ud, uintptr_t token);

typedef struct rd_chunk {
    struct rd_chunk *next;
    uint32_t start, end, cap; /* cap 0: a borrowed block, described in data */
    _Alignas(void *) char data[];
} rd_chunk_t;

/* A free list of chunks, so a buffer that fills and drains every request
 * allocates nothing in the steady state, and one of borrowed blocks' small
 * headers. One per loop. */
typedef struct rd_pool {
    rd_chunk_t *free;   /* private */
    rd_chunk_t *free_b; /* private: borrowed blocks' headers */
    unsigned nfree;     /* ro */
    unsigned nfree_b;   /* ro */
    unsigned max;       /* rw: chunks kept at most, of each kind */
} rd_pool_t;

typedef struct rd_buf {
    rd_chunk_t *head, *tail; /* private */
    size_t size;             /* ro: bytes queued */
    rd_pool_t *pool;         /* private */
} rd_buf_t;

/* The same queue without its pool pointer: a conn's output (its pool is its
 * loop's, so 8 bytes a conn less). Private; the rd__bufq_* calls are
 * rd_buf_*'s with the pool passed in. */
typedef struct rd__bufq {
    rd_chunk_t *head, *tail; /* private */
    size_t size;             /* ro: bytes queued */
} rd__bufq_t;

void rd_pool_init(rd_pool_t *p, unsigned max);
/* Free every cached chunk. */
void rd_pool_destroy(rd_pool_t *p);

void rd_buf_init(rd_buf_t *b, rd_pool_t *pool);
/* Append a copy of data; -ENOMEM on allocation failure (nothing appended). */
int rd_buf_append(rd_buf_t *b, const void *data, size_t len);
/* Fill up to max iovecs with the queued bytes, in order; return how many. */
int rd_buf_iov(const rd_buf_t *b, struct iovec *iov, int max);
/* Drop the first n bytes (n <= size); drained chunks return to the pool. */
void rd_buf_consume(rd_buf_t *b, size_t n);
/* Drop everything. */
void rd_buf_clear(rd_buf_t *b);

int rd__bufq_append(rd__bufq_t *q, rd_pool_t *pool, const void *data, size_t len);
/* Queue len bytes at data by reference; -ENOMEM (nothing queued, release not
 * called) if the header cannot be had. */
int rd__bufq_borrow(rd__bufq_t *q, rd_pool_t *pool, const void *data, size_t len,
                    rd_release_fn release, void *ud, uintptr_t token);
int rd__bufq_iov(const rd__bufq_t *q, struct iovec *iov, int max);
void rd__bufq_consume(rd__bufq_t *q, rd_pool_t *pool, size_t n);

/* A timer on a virtual clock (rd_clock_t): what rd_timer_t and rd_conn_t
 * hold in place of their ev_timer while one is installed. It shares the
 * ev_timer's memory (a union), so the real-time path costs what it did;
 * `slot` lies where ev_timer's `active` does, so ev_is_active() tells
 * "started" on either clock. */
typedef struct rd__tw {
    int slot;                      /* private: heap index + 1; 0 = not started */
    uint64_t seq;                  /* private: start order, which breaks deadline ties */
    void (*fire)(struct rd__tw *); /* private */
    double at, repeat;             /* private: deadline; period, 0 = one-shot */
} rd__tw_t;

/* An entry of the loop's deadline heap (rd_loop_next_deadline): a started
 * libev timer of an rd_timer or of a conn, keyed on its own deadline. */
typedef struct rd__dl {
    ev_timer *w;   /* private: the timer it stands for */
    double at;     /* private: w's deadline when last synced (libev moves w's own
                    * before the callback: the heap must not see that until then) */
    unsigned slot; /* private: heap index + 1; 0 = not in the heap */
} rd__dl_t;

/*{====================================================================
 * Loop
 *=====================================================================*/

typedef struct rd_loop rd_loop_t;
typedef struct rd_conn rd_conn_t;
typedef struct rd_listener rd_listener_t;
typedef struct rd_timer rd_timer_t;
typedef struct rd_clock rd_clock_t;

/* The owner's wrapper around a batch of reads: it must call
 * rd_loop_read_ready(loop). */
typedef void (*rd_batch_cb)(rd_loop_t *loop);

/* Doubly linked list node used by the loop's registries. */
typedef struct rd_link {
    struct rd_link *next, *prev;
} rd_link_t;

/* A queue of conns in the order they joined, an array on the loop instead
 * of a link in each conn (16 bytes a conn each). An entry may be stale (its
 * conn has left since: the flag that put it there is clear) or NULL, and is
 * skipped when reached; it stays until the queue is drained, when the
 * array starts over. So a conn's memory must outlive its entries: drained
 * before any on_lost (rd_loop_settle's order), and cleared by a close that
 * will not be reported (rd__cq_forget). */
typedef struct rd__cq {
    rd_conn_t **v;      /* private */
    uint32_t i, n;      /* private: the next entry to take, the end */
    uint32_t cap;       /* private */
    unsigned char over; /* private: an append found no memory: some flagged conns are
                         * not in v, and are found on loop->conns instead */
} rd__cq_t;

struct rd_loop {
    struct ev_loop *ev;            /* ro: the libev loop, own or injected */
    void *data;                    /* rw: the owner's */
    char *rbuf;                    /* private: shared read buffer, rbuf_size bytes at
                                    * rbuf_base + a shift (rd_loop_copied) */
    size_t rbuf_size;              /* ro */
    char *rbuf_base;               /* private: rbuf's allocation, RD__ALIAS_SPAN more */
    rd_pool_t pool;                /* private: output chunks */
    rd_link_t conns;               /* private: every conn not yet CLOSED (c->link) */
    rd__cq_t ready;                /* private: conns whose socket is readable (c->ready) */
    rd__cq_t pending_writes;       /* private: conns (never CLOSED) with output or a
                                    * shutdown for the next settle to send (c->write_due) */
    rd_link_t pending_lost;        /* private: CLOSED conns whose on_lost is due (c->link,
                                    * free once CLOSED) */
    rd_batch_cb run_reads;         /* rw: optional, see rd_loop_read_ready */
    rd_link_t timers;              /* private: active timers */
    rd_link_t listeners;           /* private: open listeners */
    rd_link_t udps;                /* private: open UDP sockets */
    ev_prepare prepare;            /* private: settles before the loop sleeps */
    int own_ev;                    /* private */
    int settling;                  /* private */
    size_t nconns;                 /* ro: conns not yet CLOSED (connecting, open, closing) */
    size_t ntimers;                /* ro: active timers */
    size_t nlisteners;             /* ro: open TCP and Unix listeners */
    size_t nudps;                  /* ro: open UDP sockets */
    size_t refused;                /* ro: connections refused (limits, EMFILE, alloc failure) */
    size_t max_conns;              /* rw: refuse beyond this many open conns in all (0 = none) */
    struct rd__resolver *resolver; /* private: created at the first lookup */
    int spare_fd;                  /* private: given up to accept-and-close under EMFILE */
    rd_clock_t *clock; /* ro: the virtual clock timers run on, or NULL (rd_loop_set_clock) */
    size_t events;     /* ro: events handled while counted (rd_loop_flush) */
    ev_check count;    /* private: counts each iteration's events while flushing */
    rd__dl_t **dl;     /* private: started libev timers (rd_timer, conns'), earliest first */
    size_t ndl, dlcap; /* private */
    int dl_lost;       /* private: the heap could not grow: rd_loop_next_deadline walks */
};

/* Set up a loop on ev, or on a new libev loop of its own when ev is NULL. */
int rd_loop_init(rd_loop_t *loop, struct ev_loop *ev);
#define RD__ALIAS_SPAN 4096 /* the read buffer's slack: 4K aliasing repeats every page */
#define RD__ALIAS_STEP 64   /* how far it moves, past the slow window */
void rd__loop_shift_rbuf(rd_loop_t *loop);
/* The owner copied n bytes at src, which on_read gave it, to dst (a Lua
 * string made of a read). x86's string copy runs some 15x slower when dst
 * lies 1-63 bytes past src modulo 4096 (4K aliasing; measured 1.4 against
 * 25 us per 64 KiB on this AMD EPYC); the copy of one read after another
 * lands in the same few blocks, so then the read buffer moves 64 bytes on
 * and the next copy to the same place is a fast one. Cheap: call it for
 * every big copy. */
static inline void rd_loop_copied(rd_loop_t *loop, const char *src, const void *dst, size_t n)
{
    /* addresses as integers: src may lie outside the buffer (a framer's copy) */
    uintptr_t from = (uintptr_t)src, at = (uintptr_t)loop->rbuf;
    uintptr_t ahead = ((uintptr_t)dst - from) % RD__ALIAS_SPAN;
    if (n >= 2048 && ahead - 1 < RD__ALIAS_STEP - 1 && from - at < loop->rbuf_size)
        rd__loop_shift_rbuf(loop);
}

/* Release what init took; close every listener, conn and timer first. */
void rd_loop_destroy(rd_loop_t *loop);
/* Run until rd_loop_break or nothing is left to watch. */
void rd_loop_run(rd_loop_t *loop);
/* Run one iteration; block for events when wait is non-zero. */
void rd_loop_step(rd_loop_t *loop, int wait);
/* Make rd_loop_run return after the current iteration. */
void rd_loop_break(rd_loop_t *loop);
/* Until nothing is left: read every readable connection, then send what
 * each conn on pending_writes has queued, then report the conns on
 * pending_lost (on_lost), going back to the first step whenever one adds
 * work. Runs before the loop sleeps and after every callback the core
 * makes; an owner calls it after callbacks of its own that may have
 * written. A nested call (from a callback it makes) returns at once. */
void rd_loop_settle(rd_loop_t *loop);
/* Reads are batched: an I/O event only marks its connection ready, and the
 * next settle reads each ready connection once, calling its on_read. With
 * loop->run_reads set, settle calls that instead, so the owner can enter one
 * context for the whole batch (the Lua binding: one lua_pcall); it calls
 * this, which returns once no connection is ready. on_read (and no other
 * callback) may longjmp out, to a catch inside run_reads, never across
 * rd_loop_settle: a connection leaves the ready list before it is read,
 * and nothing rd__conn_read does after on_read is needed for consistency,
 * so the owner calls this again for the rest. */
void rd_loop_read_ready(rd_loop_t *loop);
/* Whether any connection waits to be read. */
int rd_loop_has_ready(const rd_loop_t *loop);
/* Seconds until the earliest started timer fires (every rd_timer and every
 * conn's connect or idle timer), -1 if none: O(1), from a heap kept as
 * they start, stop and fire. An idle timer is re-armed only when it fires,
 * so this is when it fires, not last read + timeout: a host may wake once
 * early for a conn that read, never late. Overdue timers give <= 0. */
double rd_loop_next_deadline(const rd_loop_t *loop);
/* The same by walking every timer and conn: the reference, for tests. */
double rd__loop_next_deadline_walk(const rd_loop_t *loop);
/* The loop's notion of now, monotonic seconds: the virtual clock's time
 * while one is installed (rd_loop_set_clock). */
double rd_now(const rd_loop_t *loop);

/*{====================================================================
 * Connections
 *=====================================================================*/

enum rd_conn_state { RD_CONNECTING = 1, RD_OPEN, RD_CLOSING, RD_CLOSED };

/* Bytes arrived; data points into the loop's shared buffer (valid only
 * during the call). The one callback that may longjmp: see
 * rd_loop_read_ready. */
typedef void (*rd_read_cb)(rd_conn_t *c, const char *data, size_t len);
/* The connection is closed (its fd is gone); called exactly once, never from
 * inside another callback of the core. err is 0 or a -errno. */
typedef void (*rd_lost_cb)(rd_conn_t *c, int reason, int err);
/* Flow control: paused = 1 once queued output passes the high water mark
 * (reading stops too unless pause_reads was cleared), from inside the
 * rd_conn_write that crossed it; 0 once a flush drains it below the low one. */
typedef void (*rd_flow_cb)(rd_conn_t *c, int paused);
/* The peer sent FIN. Return 1 to keep writing (half-close; reading stops),
 * 0 to flush and close (RD_DONE). After our own rd_conn_shutdown_write the
 * conn closes whatever it returns. */
typedef int (*rd_eof_cb)(rd_conn_t *c);
/* Nothing was read for the conn's timeout; NULL = close with RD_TIMEOUT. */
typedef void (*rd_timeout_cb)(rd_conn_t *c);
/* An outgoing connect succeeded; the conn is OPEN and reading. A failed
 * connect is reported through rd_lost_cb (RD_REFUSED, RD_TIMEOUT, RD_LOST). */
typedef void (*rd_connect_cb)(rd_conn_t *c);

/* A conn's callbacks, one table for all the conns of one owner (shared and
 * const: 40 bytes a conn less than six pointers of its own). Any may be
 * NULL but on_read, which an OPEN conn that reads needs. */
typedef struct rd_conn_ops {
    rd_read_cb on_read;
    rd_lost_cb on_lost;       /* NULL = no notification */
    rd_connect_cb on_connect; /* outgoing conns */
    rd_flow_cb on_flow;       /* optional */
    rd_eof_cb on_eof;         /* optional */
    rd_timeout_cb on_timeout; /* optional */
} rd_conn_ops_t;

/* Fields in the order the read path touches them: one request reads and
 * writes bytes 0 to ~116 only (io to high: two cache lines, three if it
 * straddles; at 1000 connections every line is a likely miss, shared with
 * the kernel's socket buffers). The loop's queues (ready, pending_writes)
 * are arrays on the loop, not links here: 176 bytes in all, 232 before
 * issue 12's branch mem2. */
struct rd_conn {
    ev_io io;                /* private: the socket's one watcher, its events
                              * what the conn wants (read, write, both); a
                              * stream's write side has its own (rd__connstream).
                              * Its data pointer, which the core does not need
                              * (the conn is the watcher's container), holds the
                              * conn's cold part, rd__connx: NULL until a timer or
                              * a stream's write side needs it (see rd__conn_x) */
    rd_loop_t *loop;         /* ro */
    int fd;                  /* ro: -1 once closed */
    int err;                 /* ro: why it closed (0 or a -errno), once CLOSED */
    unsigned char state;     /* ro: enum rd_conn_state */
    unsigned char write_due; /* private: due on loop->pending_writes */
    unsigned char lost_due;  /* private: on loop->pending_lost */
    unsigned char ready;     /* private: due on loop->ready */
    unsigned char stream;    /* ro: not a socket (stdio): read/writev, flags restored;
                              * 2 = its two fds share one file description */
    unsigned char shut_wr;   /* ro: 1 = shutdown(SHUT_WR) pending, 2 = done */
    unsigned char reason;    /* ro: why it closed (enum rd_reason), once CLOSED */
    /* the flags a request does not write, as bits: with the bytes above,
     * 8 bytes, no padding before out */
    unsigned char flow_paused : 1; /* ro: above the high water mark */
    unsigned char user_paused : 1; /* ro: rd_conn_pause_reading */
    unsigned char redeliver : 1;   /* private: rd_conn_redeliver asked for an empty on_read */
    unsigned char pause_reads : 1; /* rw: stop reading while flow_paused (default 1) */
    unsigned char eof : 1;         /* ro: the peer has sent FIN */
    unsigned char detached : 1;    /* private: on_lost is not called (rd_conn_detach) */
    rd__bufq_t out;                /* private: queued output, from loop->pool */
    const rd_conn_ops_t *ops;      /* rw: the owner's callbacks (never NULL once
                                    * init'ed: init sets a table of none if unset) */
    uint32_t high, low;            /* rw: output water marks (4 bytes each: see rd_conn_marks) */
    uint32_t max_out;              /* rw: a write past this while above high aborts (RD_ETOOBIG) */
    rd_addr_t peer;                /* ro: valid after close too; the local address is
                                    * asked for when wanted (rd_conn_host). Here, after
                                    * the three 4-byte fields, it leaves no padding */
    rd_link_t link;                /* private: in loop->conns, then in loop->pending_lost */
    rd_listener_t *listener;       /* ro: accepted by (counts it), or NULL once that closed */
    void *data;                    /* rw: the owner's */
};

/* A stream's write side, out of line (rd_conn_init_stream): its own fd,
 * which needs a watcher of its own, and both fds' flags to give back. */
struct rd__connstream {
    ev_io wio;
    rd_conn_t *c;
    int wfd;            /* a dup of the write fd, -1 once shut */
    int rflags, wflags; /* the fds' flags before we took them */
};

/* A conn's cold part, out of line (in io.data): its timer, connect then
 * idle timeout, allocated only once one is set (most conns never have one),
 * and a stream's write side (sockets write to fd). Neither is on the read
 * path of a socket; each was a pointer in rd_conn_t (16 bytes a conn). A
 * stream conn has one from its init. */
struct rd__connx {
    union {
        ev_timer timer;  /* connect, then idle timeout */
        rd__tw_t vtimer; /* the same on a virtual clock */
    };
    rd_conn_t *c;
    double timeout;            /* idle timeout in seconds, 0 = none */
    double last_read;          /* when the conn last read, while timeout > 0 */
    rd__dl_t dl;               /* private: timer's place in the loop's deadline heap */
    struct rd__connstream *st; /* a stream's write side, else NULL */
};

/* The cold part, or NULL */
static inline struct rd__connx *rd__conn_x(const rd_conn_t *c)
{
    return (struct rd__connx *)c->io.data;
}

/* Set the water marks and the cap from size_t values (larger ones are
 * clamped to 4 GiB - 1, which no output queue reaches). */
static inline uint32_t rd__mark(size_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}
static inline void rd_conn_marks(rd_conn_t *c, size_t high, size_t low, size_t max_out)
{
    c->high = rd__mark(high);
    c->low = rd__mark(low);
    c->max_out = rd__mark(max_out);
}

/* Defaults for new connections: flow control and limits. */
#define RD_HIGH_WATER (64 * 1024)
#define RD_LOW_WATER (16 * 1024)
#define RD_MAX_OUTPUT (4 * 1024 * 1024)

/* Init and connect leave the callback fields (ops, data) alone: zero the
 * struct when it is allocated, and set them before or after (a NULL ops
 * becomes a table of no callbacks). */
/* Adopt an accepted, non-blocking fd; the conn is OPEN but not yet reading
 * (a listener starts reading once its on_accept returns). */
void rd_conn_init(rd_conn_t *c, rd_loop_t *loop, int fd, const rd_addr_t *peer);
/* The same, to a Unix stream socket at path. */
int rd_conn_connect_unix(rd_conn_t *c, rd_loop_t *loop, const char *path, double timeout);
/* Adopt a pair of stream fds (stdin/stdout, pipes): dup'ed, and made
 * non-blocking (which the original fds share) until the dups are closed,
 * when their flags are restored: the write side's at rd_conn_shutdown_write
 * already, unless both fds share one file description. 0, or a -errno
 * (-ENOMEM: the write side's watcher could not be allocated). */
int rd_conn_init_stream(rd_conn_t *c, rd_loop_t *loop, int rfd, int wfd);
/* Start an outgoing connection; on_connect reports the result. timeout <= 0: none. */
int rd_conn_connect(rd_conn_t *c, rd_loop_t *loop, const rd_addr_t *to, double timeout);
/* Start reading (after init, or to resume). */
void rd_conn_start(rd_conn_t *c);
/* Queue data; it goes out when the current callback returns (or, while
 * CONNECTING, once connected). RD_ECLOSED unless OPEN or CONNECTING, or
 * after rd_conn_shutdown_write; RD_ETOOBIG (and the conn is aborted) past
 * max_out, see struct rd_conn. */
int rd_conn_write(rd_conn_t *c, const void *data, size_t len);
/* rd_conn_write without the copy, for big blocks the owner keeps alive (a
 * Lua string): the len bytes at data must stay unchanged until
 * release(ud, token), which runs exactly once, when the queue is done with
 * them (sent, or dropped by a close). Same order and rules as
 * rd_conn_write; an error means nothing was queued and release will not
 * run. 0 once queued, even when the owner's on_flow closed the conn from
 * inside the call (then release has run already). */
int rd_conn_write_borrowed(rd_conn_t *c, const void *data, size_t len, rd_release_fn release,
                           void *ud, uintptr_t token);
/* Stop or resume reading on the owner's behalf (Twisted's pauseProducing
 * on a transport); independent of flow control. */
void rd_conn_pause_reading(rd_conn_t *c, int paused);
/* Call on_read(c, buf, 0) once, from the next batch of reads while c is
 * reading: for an owner that holds bytes of its own to deliver (frames kept
 * while reading was paused, bytes handed back to a framer). No-op unless OPEN. */
void rd_conn_redeliver(rd_conn_t *c);
/* Close after `seconds` with nothing read (0 = never); the clock restarts
 * at every read. One timer per conn, re-armed only when it fires (ev.pod,
 * "Be smart about timeouts"). Ignored while CONNECTING (the timer is the
 * connect timeout's then: set it from on_connect) and once CLOSED. The
 * timer is allocated at the first timeout set: -ENOMEM if that fails (the
 * conn is unchanged), else 0. */
int rd_conn_set_timeout(rd_conn_t *c, double seconds);
/* The idle timeout in seconds (0 = none). */
double rd_conn_timeout(const rd_conn_t *c);
/* Seconds until the conn's connect or idle timer fires on libev's clock,
 * or -1 if none is running (or a virtual clock is installed). */
double rd_conn_timer_remaining(const rd_conn_t *c);

/* Ending a connection: five verbs, one per thing an owner needs.
 *
 * verb            from state     queued output            reason     on_lost
 * --------------  -------------  -----------------------  ---------  -------------
 * lose            OPEN           sent first (CLOSING,     RD_DONE *  yes, once sent
 *                                reading stops)
 *                 CONNECTING     dropped                  RD_DONE    yes
 * shutdown_write  OPEN           sent, then SHUT_WR;      -          no, still OPEN;
 *                                reading goes on                     RD_DONE at the
 *                                                                    peer's FIN
 * finish          OPEN, CLOSING  one send now, the rest   RD_DONE *  yes
 *                                dropped
 *                 CONNECTING     dropped                  RD_DONE    yes
 * close(r, err)   all but        dropped                  r, err     yes
 *                 CLOSED
 * detach          any            dropped                  -          never (a due
 *                                                                    one is cancelled)
 * (* RD_LOST if the send fails.)
 *
 * Abort is close(c, RD_ABORTED, 0). on_lost, where it runs, runs once and
 * later, from rd_loop_settle (never nested in the caller; the owner keeps
 * c's memory until then). lose, shutdown_write and close return 0, or RD_ECLOSED from
 * any other state (nothing happens); finish and detach are no-ops on a
 * CLOSED conn. Why five: lose waits for a slow peer, finish (shutting the
 * server down) cannot; shutdown_write keeps the conn open; close is for
 * errors, with the reason to report; detach alone may run from a finalizer,
 * since c's memory may be freed as soon as it returns. The core itself
 * closes with RD_LOST (a read or send failed), RD_TIMEOUT (idle, or connect
 * timeout), RD_REFUSED (connect refused), RD_ABORTED + RD_ETOOBIG (max_out),
 * and loses on the peer's FIN unless on_eof keeps it. */
int rd_conn_lose(rd_conn_t *c);
int rd_conn_shutdown_write(rd_conn_t *c);
void rd_conn_finish(rd_conn_t *c);
int rd_conn_close(rd_conn_t *c, int reason, int err);
void rd_conn_detach(rd_conn_t *c);
/* Bytes waiting to be written. */
size_t rd_conn_pending(const rd_conn_t *c);
/* The local address into *out: 0, or RD_ECLOSED once CLOSED, or a -errno
 * (getsockname; out zeroed then). Asked of the socket, not cached (28 bytes
 * a conn): a stream has none (zeroed), a Unix socket says only its family. */
int rd_conn_host(const rd_conn_t *c, rd_addr_t *out);

/*{====================================================================
 * Listeners
 *=====================================================================*/

/* Memory for a new connection, from the owner; NULL refuses it. */
typedef rd_conn_t *(*rd_alloc_cb)(rd_listener_t *l);
/* A connection was accepted into c (already rd_conn_init'ed). Call
 * rd_conn_start to read, or close it. */
typedef void (*rd_accept_cb)(rd_listener_t *l, rd_conn_t *c);

struct rd_listener {
    ev_io io;               /* private */
    rd_loop_t *loop;        /* ro */
    int fd;                 /* ro: -1 when closed */
    rd_addr_t addr;         /* ro: bound address (real port when asked for 0) */
    char *path;             /* ro: a Unix socket's path (owned), else NULL */
    rd_link_t link;         /* private */
    unsigned accepts;       /* rw: accepts per wake-up (default 64) */
    unsigned max_conns;     /* rw: refuse beyond this many open conns (0 = no limit) */
    unsigned nconns;        /* ro: open conns it accepted (0 once closed) */
    size_t refused;         /* ro: connections refused (limits, EMFILE, alloc) */
    size_t high, low;       /* rw: given to each accepted conn */
    size_t max_out;         /* rw: given to each accepted conn */
    double idle;            /* rw: idle timeout of each accepted conn (0 = none) */
    rd_alloc_cb alloc;      /* rw */
    rd_accept_cb on_accept; /* rw */
    void *data;             /* rw */
};

/* Listen on a Unix stream socket at path. A stale socket file (nobody
 * accepts on it: a crashed run) is replaced; a live one gives -EADDRINUSE,
 * and anything that is not a socket is never removed. The file is removed
 * again by rd_listener_close. */
int rd_listener_open_unix(rd_listener_t *l, rd_loop_t *loop, const char *path, int backlog);
/* Bind and listen on host:port and start accepting. host is a numeric
 * IPv4 or IPv6 address ("::1" or "[::1]"), or a name: a name is looked up
 * with a blocking getaddrinfo, so it stalls the loop while it resolves
 * (as Twisted's interface= does): give names at start-up, not from a busy
 * server. Of a name's addresses the first IPv4 one is used, else the first
 * IPv6 one (one socket, not one per address: "localhost" binds 127.0.0.1
 * where it also names ::1, as in Twisted, where a name means IPv4). A name
 * that does not resolve gives RD_ENOTFOUND; a port outside 0..65535,
 * -EINVAL. */
int rd_listener_open(rd_listener_t *l, rd_loop_t *loop, const char *host, int port, int backlog);
/* Accept on fd, a TCP socket that already listens (bound by another
 * process, e.g. the reactord master, and passed over SCM_RIGHTS): l owns
 * fd from here on (rd_listener_close closes it). Made non-blocking and
 * close-on-exec. -EINVAL for a Unix socket, -errno if fd is no socket. */
int rd_listener_adopt(rd_listener_t *l, rd_loop_t *loop, int fd);
/* Stop accepting and close the socket; idempotent. The conns it accepted
 * stay open and forget it (c->listener = NULL): l's memory may be freed. */
void rd_listener_close(rd_listener_t *l);

/*{====================================================================
 * UDP
 *=====================================================================*/

typedef struct rd_udp rd_udp_t;
/* One datagram, whole; data is valid only during the call. */
typedef void (*rd_datagram_cb)(rd_udp_t *u, const char *data, size_t len, const rd_addr_t *from);
/* A receive error: ECONNREFUSED after sending to a closed port (connected). */
typedef void (*rd_udp_error_cb)(rd_udp_t *u, int err);

struct rd_udp {
    ev_io io;                   /* private */
    rd_loop_t *loop;            /* ro */
    int fd;                     /* ro: -1 when closed */
    int connected;              /* ro */
    rd_addr_t addr, peer;       /* ro: bound address; peer once connected */
    rd_link_t link;             /* private */
    size_t dropped;             /* ro: sends dropped on a full socket buffer */
    rd_datagram_cb on_datagram; /* rw */
    rd_udp_error_cb on_error;   /* rw: optional */
    void *data;                 /* rw */
};

/* Bind host:port (port 0 = any free) and start receiving. host as for
 * rd_listener_open: numeric, or a name looked up there and then, blocking
 * the loop (the first IPv4 address, else the first IPv6 one). */
int rd_udp_open(rd_udp_t *u, rd_loop_t *loop, const char *host, int port);
/* Send one datagram to `to`, or to the connected peer when to is NULL. */
int rd_udp_send(rd_udp_t *u, const void *data, size_t len, const rd_addr_t *to);
/* Only datagrams from `to` arrive, sends default to it. */
int rd_udp_connect(rd_udp_t *u, const rd_addr_t *to);
/* Stop and close; idempotent. */
void rd_udp_close(rd_udp_t *u);

/*{====================================================================
 * Timers
 *=====================================================================*/

typedef void (*rd_timer_cb)(rd_timer_t *t);

struct rd_timer {
    union {
        ev_timer w;  /* private */
        rd__tw_t tw; /* private: on a virtual clock */
    };
    rd_loop_t *loop; /* ro */
    rd_link_t link;  /* private */
    rd__dl_t dl;     /* private: w's place in the loop's deadline heap */
    rd_timer_cb cb;  /* rw */
    void *data;      /* rw */
};

void rd_timer_init(rd_timer_t *t, rd_loop_t *loop, rd_timer_cb cb);
/* Fire after `after` seconds, then every `repeat` seconds if repeat > 0.
 * 0, or -ENOMEM (only on a virtual clock, whose heap may have to grow). */
int rd_timer_start(rd_timer_t *t, double after, double repeat);
/* Stop; idempotent. */
void rd_timer_stop(rd_timer_t *t);
int rd_timer_active(const rd_timer_t *t);
/* Seconds until it fires (0 when inactive). */
double rd_timer_remaining(const rd_timer_t *t);

/*{====================================================================
 * Virtual time, for tests (reactor.testing): a clock that stands in for
 * libev's under every rd_timer and every conn's connect and idle timer.
 * Time moves only when told (rd_clock_advance), or, with autojump, to the
 * next deadline whenever the loop has nothing else to do (Trio's
 * MockClock). Each due timer fires at its own deadline, in deadline order
 * (ties in the order they were started), with rd_now() at that deadline.
 * A timer started for now while timers fire (a callLater(0)) fires in the
 * next round, after the I/O the last round caused: never in the same one.
 *=====================================================================*/

struct rd_clock {
    double now;          /* ro: virtual seconds */
    rd_loop_t *loop;     /* ro: the loop it is installed on, or NULL */
    rd__tw_t **heap;     /* private: started timers, earliest first */
    size_t n, cap;       /* private */
    uint64_t seq;        /* private: timers started so far */
    unsigned max_rounds; /* rw: rounds of timers at one instant before RD_ETOOBIG (1000) */
    int autojump;        /* ro: rd_clock_autojump */
    int stuck;           /* ro: why the last call gave RD_ETOOBIG: 1 timers, 2 I/O */
    size_t fired;        /* ro: timers fired */
    ev_idle idle;        /* private: autojump's */
};

/* A clock at `start` seconds, not installed. */
void rd_clock_init(rd_clock_t *k, double start);
/* Free what it holds; uninstall it first. */
void rd_clock_destroy(rd_clock_t *k);
/* Run loop's timers on k from now on, or on libev's clock again (k NULL).
 * Started timers move over with the time they have left. -EBUSY if
 * another clock is installed, -ENOMEM. */
int rd_loop_set_clock(rd_loop_t *loop, rd_clock_t *k);
/* Move time forward by dt seconds (to `at`), firing each timer due on the
 * way at its deadline, and letting the I/O each round causes settle in
 * between. RD_ETOOBIG when one instant needs more than max_rounds rounds
 * (timers that keep starting timers for now) or the loop never goes quiet
 * (see stuck); -EINVAL if not installed. */
int rd_clock_advance(rd_clock_t *k, double dt);
int rd_clock_advance_to(rd_clock_t *k, double at);
/* The next deadline, or INFINITY when no timer is started. */
double rd_clock_next(const rd_clock_t *k);
/* Autojump on or off: whenever the loop is quiet (no event ready),
 * rd_loop_run moves the time to the next deadline. */
void rd_clock_autojump(rd_clock_t *k, int on);
/* Run the loop without waiting until it is quiet: an iteration that
 * handles no event, with no timer due now (on a virtual clock, the due ones
 * fire in rounds; on libev's, expired ones fire as usual). Counts events
 * into loop->events. 0, or RD_ETOOBIG after max iterations. */
int rd_loop_flush(rd_loop_t *loop, unsigned max);

/*{====================================================================
 * Signals
 *=====================================================================*/

typedef struct rd_signal rd_signal_t;
typedef void (*rd_signal_cb)(rd_signal_t *s);

struct rd_signal {
    ev_signal w;     /* private */
    rd_loop_t *loop; /* ro */
    rd_signal_cb cb; /* rw */
    void *data;      /* rw */
};

/* Watch signum; the handler runs from the loop, never in signal context. */
void rd_signal_start(rd_signal_t *s, rd_loop_t *loop, int signum, rd_signal_cb cb);
void rd_signal_stop(rd_signal_t *s);

/*{====================================================================
 * Name lookups off the loop thread (getaddrinfo on a worker thread; it
 * honours /etc/hosts and nsswitch)
 *=====================================================================*/

#define RD_RESOLVE_MAX 8

typedef struct rd_resolve rd_resolve_t;
/* status 0 and n >= 1 addresses (port 0), or a -errno / RD_ENOTFOUND */
typedef void (*rd_resolve_cb)(rd_resolve_t *r, int status, const rd_addr_t *addrs, size_t n);

struct rd_resolve {
    struct rd__job *job; /* private: the lookup in flight, NULL when idle */
    rd_loop_t *loop;     /* ro */
    rd_resolve_cb cb;    /* rw */
    void *data;          /* rw */
};

/* Look host up; cb runs from the loop later (never from here). r must be
 * idle: its cb has run, or it was cancelled, or it is new. */
int rd_resolve_start(rd_resolve_t *r, rd_loop_t *loop, const char *host, rd_resolve_cb cb);
/* Forget the lookup: cb will not run. Safe in any state; the worker's result
 * is dropped when it arrives. */
void rd_resolve_cancel(rd_resolve_t *r);

/*{====================================================================
 * File watcher (Linux inotify): for reloading scripts when they change
 *=====================================================================*/

typedef struct rd_watch rd_watch_t;
typedef void (*rd_watch_cb)(rd_watch_t *w);

/* Watches files by their directories, so an editor that writes a temp file
 * and renames it over the original is seen; a burst of events within
 * `quiet` seconds gives one callback. */
struct rd_watch {
    ev_io io;        /* private: the inotify fd */
    ev_timer quiet;  /* private: debounce */
    rd_loop_t *loop; /* ro */
    int fd;          /* ro: -1 when closed */
    char **names;    /* private: watched paths, by directory and base name */
    int *wds;        /* private */
    size_t n;        /* ro */
    rd_watch_cb cb;  /* rw */
    void *data;      /* rw */
};

/* Start watching paths[0..n-1]; -errno if inotify or a directory fails. */
int rd_watch_start(rd_watch_t *w, rd_loop_t *loop, const char *const *paths, size_t n, double quiet,
                   rd_watch_cb cb);
/* Stop and free; idempotent. */
void rd_watch_stop(rd_watch_t *w);

/*{====================================================================
 * Internal, shared between core files
 *=====================================================================*/

/* Fill *a for binding to host:port: numeric first (rd_addr_parse), else a
 * blocking getaddrinfo (AI_PASSIVE | AI_NUMERICSERV), see rd_listener_open. */
int rd__addr_local(rd_addr_t *a, const char *host, int port, int socktype);
void rd__link_init(rd_link_t *l);
void rd__link_add(rd_link_t *head, rd_link_t *l);
void rd__link_del(rd_link_t *l);
/* Bring n's heap entry in line with its libev timer: in at its deadline if
 * started, out if not (after every ev_timer start, stop, again, and at the
 * start of its callback: libev has rescheduled or stopped it by then). */
void rd__dl_sync(rd_loop_t *loop, rd__dl_t *n);
void rd__dl_del(rd_loop_t *loop, rd__dl_t *n);
#define rd__container(ptr, type, field) ((type *)((char *)(ptr)-offsetof(type, field)))
/* The settle's queues: a conn is on pending_writes only while not CLOSED
 * (write_due), on pending_lost only once CLOSED, by the link that held it
 * in loop->conns, and rd_conn_close moves it from the first to the second.
 * Each add is a no-op if already there, each remove if not. */
void rd__lost_later(rd_conn_t *c);  /* onto loop->pending_lost */
void rd__lost_cancel(rd_conn_t *c); /* off it */
/* Clear c's entries in the loop's queues: for a conn that closed without a
 * report to come, whose owner may free it at once. */
void rd__cq_forget(rd_conn_t *c);
/* Append to a full queue: grow it, or mark it over (no memory). */
void rd__cq_grow(rd__cq_t *q, rd_conn_t *c);

/* Every request marks its conn ready and queues its answer, then takes both
 * off again: inline, as the links' adds and removes were */
static inline void rd__cq_push(rd__cq_t *q, rd_conn_t *c)
{
    if (q->n < q->cap)
        q->v[q->n++] = c;
    else
        rd__cq_grow(q, c);
}

/* onto loop->ready */
static inline void rd__ready_mark(rd_conn_t *c)
{
    if (c->ready) return;
    c->ready = 1;
    rd__cq_push(&c->loop->ready, c);
}

/* onto loop->pending_writes */
static inline void rd__write_later(rd_conn_t *c)
{
    if (c->write_due) return;
    c->write_due = 1;
    rd__cq_push(&c->loop->pending_writes, c);
}

/* off it: the entry goes stale, unless it is the last one (the answer a
 * conn flushes right after its own read), which goes at once, so that the
 * settle finds nothing left to skip */
static inline void rd__write_cancel(rd_conn_t *c)
{
    if (!c->write_due) return;
    c->write_due = 0;
    rd__cq_t *q = &c->loop->pending_writes;
    if (q->n > q->i && q->v[q->n - 1] == c) q->n--;
}
/* Write what is queued: one send in the common case. Never called on a
 * CLOSED conn (close takes it off pending_writes). */
void rd__conn_flush(rd_conn_t *c);
void rd__conn_read(rd_conn_t *c);
/* Whether c's watcher waits to read (for tests). */
int rd__conn_reading(const rd_conn_t *c);
/* The loop is going: late lookups free their own results. */
void rd__resolver_destroy(rd_loop_t *loop);
/* Virtual timers (rd_clock.c): start (restart) e to fire after `after`
 * seconds, then every `repeat` if > 0; stop (idempotent); time left. */
int rd__tw_start(rd_clock_t *k, rd__tw_t *e, double after, double repeat, void (*fire)(rd__tw_t *));
void rd__tw_stop(rd_clock_t *k, rd__tw_t *e);
double rd__tw_remaining(const rd_clock_t *k, const rd__tw_t *e);
/* Move a started timer from one clock to the other (NULL = libev's). */
void rd__timer_switch(rd_timer_t *t, rd_clock_t *from, rd_clock_t *to);
void rd__conn_switch(rd_conn_t *c, rd_clock_t *from, rd_clock_t *to);

#endif
