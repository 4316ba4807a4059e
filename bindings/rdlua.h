/*
 * rdlua.h: internal to the Lua binding. The userdata layouts, and the
 * helpers every binding file shares.
 *
 * Ownership (see README "Lifetimes"): each C object Lua can see is one full
 * userdata that embeds its core struct. While libev may call it (an open
 * connection, an active timer, a listening socket) it is pinned by exactly
 * one registry ref; closing it in core unpins it once its last callback ran,
 * and from then on it is ordinary garbage. __gc only ever detaches.
 */
#ifndef RDLUA_H
#define RDLUA_H

#include <lauxlib.h>
#include <lua.h>

#include "rd.h"
#include "rd_framer.h"
#include "reactor.h"

#define RDL_LOOP "reactor.Loop"
#define RDL_TRANSPORT "reactor.Transport"
/* the metatable a transport gets once its close is under way: the same
 * methods, and t.disconnecting is true (Twisted's attribute, at no cost to
 * the open transport's method lookups) */
#define RDL_TRANSPORT_CLOSING "reactor.Transport (closing)"
#define RDL_TIMER "reactor.DelayedCall"
#define RDL_LISTENER "reactor.Listener"
#define RDL_LOOP_KEY "reactor.loop"     /* registry: the state's one loop */
#define RDL_CONFIG_KEY "reactor.config" /* registry: what the setters set */
/* registry: transport -> the local address testing.adopt gave it, an
 * rd_addr_t userdata (weak keys; a socketpair's own name says nothing) */
#define RDL_FAKEHOST_KEY "reactor.testing.hosts"
/* registry: transport -> the handler error's message that closed it (weak
 * keys): kept out of the transport, since few ever fail (4 bytes each) */
#define RDL_ERRMSG_KEY "reactor.errors"
/* registry: transport -> the string its framer's delimiter points into,
 * when that is not the transport's own copy (a long delimiter, a stream's
 * separator; weak keys): few have one, and a ref on the transport was 4
 * bytes each (issue 12) */
#define RDL_DELIM_KEY "reactor.delimiters"
/* Push the registry's table at key, a weak-keyed one made on first use (a
 * transport's error message, made-up host or delimiter string, keyed by the
 * transport) */
void rdL_weakkeys(lua_State *L, const char *key);

/* What a host sets before opening (reactor.h), kept until then. */
struct rdl_config {
    struct ev_loop *ev;
    reactor_log_fn log;
    void *log_ud;
    reactor_log_fn on_error;
    void *error_ud;
};

enum { RDL_NSIGNALS = 6 };

/* Names the hot path looks up at every event, interned once (a lua_getfield
 * with a C string pays a string-cache probe and a strcmp each time). */
enum rdl_key {
    RDL_K_DATARECEIVED,
    RDL_K_DELIMITER,
    RDL_K_LINERECEIVED,
    RDL_K_MAX_LENGTH,
    RDL_K_LINELENGTHEXCEEDED,
    RDL_K_RAWDATARECEIVED,
    RDL_K_STRINGRECEIVED,
    RDL_K_LENGTHLIMITEXCEEDED,
    RDL_K_READREADY,
    RDL_K_REQUESTRECEIVED, /* lhttp.c: once per request */
    RDL_K_HTTPLIMITS,      /* lhttp.c: once per read */
    RDL_K_BUILDPROTOCOL,   /* ldispatch.c: once per connection */
    RDL_K_CONNECTIONMADE,
    RDL_K_CONNECTIONLOST,
    RDL_NKEYS
};

enum { RDL_STRCACHE = 64 }; /* slots, a power of two */

/* lstrcache.c: recent short strings from the read path, pinned by registry
 * refs (0 = slot unused) */
struct rdl_strcache {
    const char *p[RDL_STRCACHE];
    int ref[RDL_STRCACHE];
    unsigned char len[RDL_STRCACHE];
};

/* One call from the loop into Lua (lua.c's docall, as a record): what runs,
 * for whom, and what came of it. It is passed in to the protected call and
 * read back after; while it runs it is lr->call, so that code the trampoline
 * reaches through core (a read in a batch) can say which connection and
 * callback are running now. */
typedef struct rdL_call {
    lua_CFunction fn;       /* in: the trampoline; gets the record as light userdata 1 */
    void *a, *b;            /* in: the trampoline's arguments */
    const char *what;       /* in/out: the callback's public name ("lineReceived") */
    struct ltransport *t;   /* in/out: its connection: named in the log, failed on error */
    int result;             /* out: what the trampoline reports (rdL_call_optional: 1 = called) */
    int status;             /* out: lua_pcall's status */
    struct rdL_call *outer; /* private: the call this one runs inside */
} rdL_call;

/* The record inside a trampoline. */
#define rdL_thiscall(L) ((rdL_call *)lua_touserdata((L), 1))

typedef struct lreactor {
    rd_loop_t loop;
    lua_State *L; /* the thread callbacks run on */
    int running, stopping;
    rdL_call *call;                          /* the innermost call running, or NULL */
    int tripped;                             /* the watchdog fired */
    double budget;                           /* seconds a callback may run (0 = no limit) */
    struct rdL_watchdog *wd;                 /* the watchdog thread, once started */
    size_t ntransports, ntimers, nlisteners; /* pinned objects, for _stats */
    size_t nudps;
    size_t nborrowed; /* strings output queues hold by reference (rdL_conn_writestring) */
    size_t reads;     /* reads handed to a protocol (the daemon's "requests") */
    /* lhttp.c: the Date field of this second's responses ("Date: ...\r\n"),
     * made once a second, per loop */
    long long date_sec;
    char date[40];
    rd_signal_t signals[RDL_NSIGNALS];
    int signal_refs[RDL_NSIGNALS];
    int keys[RDL_NKEYS]; /* registry refs of the interned names */
    reactor_log_fn log;  /* where records go (NULL: stderr with "reactor: ") */
    void *log_ud;
    reactor_log_fn on_error; /* where callback errors go (NULL: the log) */
    void *error_ud;
    ev_timer step_timer; /* bounds an iterate's wait */
    struct rdl_strcache strcache;
    /* lstream.c: reactor.task's tables and functions (core._taskinit), as
     * registry refs (RDL_TK_*); task_ready once they are set */
    int task_refs[5];
    int task_ready;
    int task_stale;        /* the in-flight list may hold tasks a watchdog trip stopped */
    const void *task_wait; /* the WAIT value, to tell a wait's yield by its address */
    uint32_t wait_seq;     /* the last wait number a C-waiting reader got (see RDL_CWAIT_BASE) */
} lreactor;
/* A task's fields the step and a stream's C wait use at every wake, in its
 * array part (task.lua's CO, WAITING, ...: the same numbers) */
enum {
    RDL_T_CO = 1,
    RDL_T_WAITING,
    RDL_T_CLEANUP,
    RDL_T_CLEANOBJ,
    RDL_T_CANCELPENDING,
    RDL_T_STREAMS
};
/* A stream's reader task, in its array part (stream.lua's RTASK) */
enum { RDL_S_RTASK = 1 };
/* lreactor.task_refs: R ({[1] = the current task}), the in-flight list, the WAIT value,
 * settle(t, prev, ok, ...) and reap() */
enum { RDL_TK_R, RDL_TK_INFLIGHT, RDL_TK_WAIT, RDL_TK_SETTLE, RDL_TK_REAP, RDL_NTK };

/* Push lr's interned key k. */
#define rdL_pushkey(L, lr, k) lua_rawgeti((L), LUA_REGISTRYINDEX, (lr)->keys[k])

/* reactor.core.framing.stream: a protocol whose delimiter is this (a
 * coroutine stream) has its reads fed to the framer and gets readReady()
 * per read; its task takes bytes with transport:_pull */
extern const char rdL_stream_framing;
/* reactor.core.framing.http: requests framed by core's HTTP parser, each
 * handed to requestReceived (lhttp.c) */
extern const char rdL_http_framing;
void rdL_read_http(lua_State *L, lreactor *lr, struct ltransport *t, int self, const char *p,
                   size_t n);
/* the same protocol while a request's body is streamed (its bodyReceived) */
extern const char rdL_httpbody_framing;
void rdL_read_httpbody(lua_State *L, lreactor *lr, struct ltransport *t, int self, const char *p,
                       size_t n);
int rdL_httplimits(lua_State *L);   /* core._httplimits{...}: a class's _httplimits */
int rdL_httpheaders(lua_State *L);  /* core._httpheaders(raw): a raw header block's table */
int rdL_httpbuild(lua_State *L);    /* core._httpbuild(...): a response's bytes */
int rdL_httpresponse(lua_State *L); /* core._httpresponse(...): a client's response head */
int rdL_httpdechunk(lua_State *L);  /* core._httpdechunk(...): a chunked body, decoded */

/* uservalues of a transport: the protocol, then its factory; a client's
 * has a third, its connector. An accepted one has only the protocol: its
 * factory is its listener's uservalue 1, and conn.data is that listener
 * (llistener, pinned while it has connections not yet lost, so that its
 * count of them outlives stopListening), until on_lost. 16 bytes a
 * connection less than a uservalue (issue 12); rdL_pushfactory tells them
 * apart. */
enum { RDL_UV_PROTOCOL = 1, RDL_UV_FACTORY, RDL_UV_CONNECTOR };

#define RDL_DELIM_INLINE 5
typedef struct ltransport {
    /* the read path's fields first, next to the conn's hot ones. One
     * registry ref per connection (ref): the protocol instance is uservalue
     * 1, a short delimiter is copied into delim (issue 12: memory per idle
     * connection; each ref is 16 bytes of the registry's array, doubled) */
    int ref; /* pins the userdata while core may call back */
    /* lstream.c: readuntil/readline: no separator within this many bytes
     * (a negative limit is 0; 32 bits: the framer holds no more) */
    uint32_t stream_limit;
    rd_conn_t conn;
    rd_framer_t in; /* the partial frame: survives a reload byte for byte. Its spare word
                     * (in.user) is the wait number of the task that waits in C for
                     * the next frame (s[RTASK] in Lua), RDL_CWAIT_BASE + it being its
                     * task.waiting, 0 = no such wait. It outlives stream_reader, which
                     * read_stream clears as it takes the frame, until the wake (C's,
                     * or readReady's) clears it. */
    /* flags as bits and no padding: 272 bytes, so that with the userdata's
     * header and an accepted conn's one uservalue it takes 336 bytes of malloc */
    unsigned char raw : 1;          /* line mode switched off (setRawMode) */
    unsigned char made : 1;         /* connectionMade has been called */
    unsigned char outgoing : 1;     /* made by connectTCP */
    unsigned char stream_rfast : 1; /* a read may wait in C: open, no EOF, no timeout, not paused */
    unsigned char fakehost : 1;     /* getHost answers from RDL_FAKEHOST_KEY (testing.adopt) */
    unsigned char failed : 1;       /* a handler error closed it: RDL_ERRMSG_KEY has the message */
    unsigned char accepted : 1;     /* conn.data is the listener that accepted it (until lost):
                                     * its open count holds this one */
    unsigned char stream_wline : 1; /* the C wait (in.user) is a readline's, not a readuntil's */
    char delim[RDL_DELIM_INLINE];   /* a line delimiter this short, copied (in.delim points here) */
    /* a coroutine stream's (lstream.c), set by core._streamset */
    unsigned char stream_wfast;  /* write may go straight out: open, flowing, nobody waits */
    unsigned char stream_reader; /* a task waits to read: another read is "busy" (Lua says so);
                                  * RDL_READER_UNTIL / _LINE: for the framer's separator, so a
                                  * read takes the frame in C (ldispatch.c, read_stream) */
} ltransport;

/* Every transport's callbacks (ldispatch.c), set when it is made */
extern const rd_conn_ops_t rdL_transport_ops;

/* The transport at idx, or NULL if it is not one: told by its size and its
 * conn's callback table (set at birth, never changed: a magic number of its
 * own was 4 bytes a connection), not its metatable (a closing transport may
 * wear another one) */
static inline ltransport *rdL_totransport(lua_State *L, int idx)
{
    ltransport *t = lua_touserdata(L, idx);
    if (!t || lua_type(L, idx) != LUA_TUSERDATA || lua_rawlen(L, idx) != sizeof *t ||
        t->conn.ops != &rdL_transport_ops)
        return NULL;
    return t;
}

/* The framer's delimiter now points into the string at idx (0: into the
 * transport's own copy, or nothing): keep that string alive for it, in the
 * registry's RDL_DELIM_KEY table. */
void rdL_keepdelim(lua_State *L, ltransport *t, int idx);

typedef struct ltimer {
    rd_timer_t timer;
    int ref; /* pinned while active */
} ltimer;

typedef struct llistener {
    rd_listener_t listener;
    int ref;     /* pinned while listening */
    size_t open; /* its connections not yet reported lost, even once it is closed */
} llistener;

/* lcall.c: every entry from the loop into Lua */
/* Run call->fn under lua_pcall on lr->L with the message handler, as every
 * entry from the loop into Lua does. On error: one log record naming
 * call->what and call->t's peer, and call->t (if set) fails: it is closed as
 * a handler error, and its connectionLost hears the message. Returns (and
 * leaves in call->status) the lua_pcall status. */
int rdL_pcall(lreactor *lr, rdL_call *call);
/* core.traceback: the message handler (error objects by __tostring or their
 * fields; the traceback stops at the user's frames), for xpcall in Lua. */
int rdL_traceback(lua_State *L);
/* core.errorMessage(err): err as text without its traceback. */
int rdL_errormessage(lua_State *L);
/* Push the text of the error value at idx, without its traceback. */
const char *rdL_pushmessage(lua_State *L, int idx);
/* Push "NAME: message" for a -errno or RD_E* code, and return it. */
const char *rdL_pusherror(lua_State *L, int err);
/* Push nil, "NAME: message (where)", "NAME"; return 3. */
int rdL_pushfail(lua_State *L, int err, const char *where);
/* Push {type="TCP", host=, port=} for an address. */
void rdL_pushaddr(lua_State *L, const rd_addr_t *a);
/* __tostring of a socket's userdata: "KIND (HOST:PORT)" or "KIND (closed)" */
int rdL_pushsocketname(lua_State *L, const char *kind, int fd, const rd_addr_t *addr);
/* "127.0.0.1:1060", "[::1]:1060", "unix socket" or "stdio" into buf. */
const char *rdL_peername(const rd_conn_t *c, char *buf, size_t size);
/* Pin/unpin the value at idx; idempotent. */
void rdL_pin(lua_State *L, int idx, int *ref);
void rdL_unpin(lua_State *L, int *ref);

/* llog.c: one logger for C and Lua */
/* One record through lr's log function (printf-style). */
void rdL_log(lreactor *lr, const char *fmt, ...);
/* The same for the report of a callback's error: to lr->on_error if set. */
void rdL_log_error(lreactor *lr, const char *fmt, ...);

/* lwatchdog.c: a callback that runs too long is stopped */
/* A callback begins or ends (depth 0 <-> 1): the clock starts or stops. */
void rdL_watchdog_enter(lreactor *lr);
void rdL_watchdog_leave(lreactor *lr);
/* A new callback starts inside a protected call that runs several (a batch
 * of reads): the time limit restarts. */
void rdL_watchdog_tick(lreactor *lr);
/* Start the watchdog thread (if a budget is set), watching callbacks run on L. */
void rdL_watchdog_start(lreactor *lr, lua_State *L);
/* Stop and join it. */
void rdL_watchdog_stop(lreactor *lr);
/* core._resume: coroutine.resume that the watchdog can see into. */
int rdL_resume(lua_State *L);
/* lua_resume of co from L with narg values moved there, the watchdog told;
 * a coroutine the watchdog stopped raises in L (after `stopped(L, ud)`). */
int rdL_coresume(lreactor *lr, lua_State *L, lua_State *co, int narg, int *nres,
                 void (*stopped)(lua_State *L, void *ud), void *ud);

/* lstrcache.c */
/* Push p[0..n) as a Lua string, from the cache of recent short strings when
 * it is there (the same object lua_pushlstring would give). */
void rdL_pushbytes(lua_State *L, lreactor *lr, const char *p, size_t n);

/* lreactor.c */
lreactor *rdL_reactor(lua_State *L); /* the loop of this state */

/* ltransport.c: the Transport type */
void rdL_open_transport(lua_State *L);
/* pushed and pinned, with nuv uservalues: 1 for an accepted one, 2 with
 * a factory of its own (stdio, testing), 3 for a client's (RDL_UV_*) */
ltransport *rdL_newtransport(lua_State *L, lreactor *lr, int nuv);
/* Push t's factory; ud is t's stack index. */
void rdL_pushfactory(lua_State *L, const ltransport *t, int ud);
void rdL_transport_unpin(lua_State *L, ltransport *t); /* from here it is garbage */
void rdL_transport_closing(lua_State *L, int idx);     /* t.disconnecting is true from now on */
void rdL_transport_write1(lua_State *L, ltransport *t, int idx); /* write the string at idx */
/* rd_conn_write of the Lua string at idx (s, len), a big one without a copy:
 * queued by reference and pinned in the registry until it is sent. */
#define RDL_BORROW_MIN 4096 /* below this, a copy costs less than the pin */
int rdL_conn_writeborrowed(lua_State *L, rd_conn_t *c, int idx, const char *s, size_t len);
static inline int rdL_conn_writestring(lua_State *L, rd_conn_t *c, int idx, const char *s,
                                       size_t len)
{
    return len < RDL_BORROW_MIN ? rd_conn_write(c, s, len)
                                : rdL_conn_writeborrowed(L, c, idx, s, len);
}
/* A coroutine stream's read from t's framer (lstream.c): op is one of
 * RDL_PULL_*, arg at argidx; pushes the string, nil (not there yet) or
 * false (no separator within limit bytes). */
enum { RDL_PULL_UNTIL = 1, RDL_PULL_LINE, RDL_PULL_EXACT, RDL_PULL_SOME, RDL_PULL_ALL };
/* ltransport.stream_reader: nobody, a reader Lua serves, or a task waiting
 * in C (lstream.c, cwait) for the next frame at the framer's separator,
 * which the read takes and resumes it with (ldispatch.c, read_stream) */
enum { RDL_READER_NONE = 0, RDL_READER_BUSY, RDL_READER_UNTIL, RDL_READER_LINE };
/* A C-waiting reader's wait numbers are RDL_CWAIT_BASE + lr->wait_seq, one
 * counter for the loop, so the wait leaves task.seq alone (two table writes
 * less at every wait) and never meets a number task.prepare gives (t.seq + 1,
 * counted from 0 per task). The counter wraps after 2^32 C waits: a stale
 * wake needs the number it was given, and nothing keeps a C wait's number
 * but the stream, which drops it at the wake. */
#define RDL_CWAIT_BASE ((lua_Integer)1 << 32)
void rdL_stream_pull(lua_State *L, ltransport *t, int op, int argidx, lua_Integer limit);
/* The next frame at the framer's own separator (a reader of kind
 * RDL_READER_UNTIL, line 0, or _LINE, line 1: without its "\r"): 1 and *s,
 * 0 not there yet, < 0 too long or another separator held (Lua pulls). */
int rdL_stream_next(ltransport *t, int line, rd_span_t *s);
int rdL_streamfast(lua_State *L); /* core._streamfast(slow...): lstream.c */
int rdL_streambind(lua_State *L); /* core._streambind(transport, slow...): lstream.c */
int rdL_untail(lua_State *L);     /* core._untail(fn): see lstream.c */
int rdL_streamset(lua_State *L);  /* core._streamset(transport, limit, wfast, reader, rfast) */
int rdL_taskinit(lua_State *L);   /* core._taskinit(R, inflight, WAIT, settle, reap) -> step */
/* Resume the task at tidx with the nargs values at the top (popped): the
 * one resume of every task, what task.lua's step does (lstream.c) */
void rdL_taskstep(lua_State *L, lreactor *lr, int tidx, int nargs);
/* The frame at the top for the reader that waits in C on the stream at
 * self: -> 1 if it was resumed with it (the frame popped), 0 if Lua must
 * wake it (readReady: it runs now, or its wait is not the stream's) */
int rdL_stream_wakereader(lua_State *L, lreactor *lr, ltransport *t, int self);
/* core._streamwait(transport, line) -> the wait number of a reader that
 * waits in C (stream.lua's waitnow); core._streamwaiter(transport) -> n, op,
 * separator of that wait, or nothing */
int rdL_streamwait(lua_State *L);
int rdL_streamwaiter(lua_State *L);
int rdL_transport_pull(lua_State *L); /* transport:_pull, core._pull */
int rdL_sendstring(lua_State *L);     /* core._sendstring(bytes, name): sendString in C */
int rdL_broadcast(lua_State *L);      /* reactor.broadcast(list, data [, except]) */
int rdL_noops(lua_State *L);          /* core._noops(made, lost): Protocol's do-nothing callbacks */
int rdL_addrless(lua_State *L);       /* core._addrless(fn): a buildProtocol that ignores addr */
int rdL_failconnection(lua_State *L); /* core.failConnection(transport, msg) */

/* ldispatch.c: calls from core into a connection's protocol */
void rdL_transport_setup(ltransport *t); /* core callbacks */
void rdL_run_reads(rd_loop_t *loop);     /* loop->run_reads: a batch under one lua_pcall */
/* Close t as a handler error whose message is at the top of L's stack
 * (popped); a no-op on a closed conn. */
void rdL_fail(lua_State *L, ltransport *t);
/* buildProtocol and connectionMade for t now (stdio), protected. */
int rdL_made(ltransport *t);

/* llistener.c: the Listener type, listenTCP, listenUNIX */
void rdL_open_listener(lua_State *L);
int rdL_listen(lua_State *L);
int rdL_listenunix(lua_State *L);
int rdL_adopttcp(lua_State *L); /* a socket that listens already (workers) */
void rdL_listener_close(lua_State *L, rd_listener_t *l); /* and unpin */
/* One of its connections is lost: the count drops, and a closed listener
 * with none left is unpinned. */
void rdL_listener_release(lua_State *L, llistener *ls);

/* lendpoint.c: connections we make */
int rdL_connect(lua_State *L);
int rdL_connectunix(lua_State *L);
int rdL_stdio(lua_State *L);

/* ltimer.c */
void rdL_open_timer(lua_State *L);
int rdL_calllater(lua_State *L);
void rdL_timer_cancel(lua_State *L, rd_timer_t *t); /* stop and unpin */

/* ludp.c */
int rdL_listenudp(lua_State *L);
void rdL_udp_close(lua_State *L, rd_udp_t *u); /* stopProtocol (protected), close, unpin */
/* lresolve.c */
int rdL_resolve(lua_State *L);
/* lwatch.c */
int rdL_watch(lua_State *L);
/* ltesting.c: core._testing(), reactor.testing's C half */
int rdL_testing(lua_State *L);

#endif
