/*
 * reactord.h: reactord as a library, for a host program (a game, a tool)
 * that keeps its own main loop. Link with `pkg-config --libs reactord`.
 *
 * One rd_reactor is one Lua state, one loop and everything on them: there
 * is no global state, so two reactors in one process work side by side.
 * Every call returns 0 (or a valid value) on success and -1 on failure,
 * with the reason in rd_error(r). Nothing is ever written to stdout or
 * stderr: log records and Lua errors go to the callbacks in rd_options
 * (or nowhere), and no call ever exits the process.
 *
 * Three ways to drive it, pick one per reactor:
 *   rd_run(r)            reactord's own loop until rd_stop (the daemon's way);
 *   rd_step(r, timeout)  once per frame from the host's loop, with
 *                        rd_next_deadline telling how long the host may sleep,
 *                        or rd_fd in the host's poll()/epoll set;
 *   options.loop         the host's own libev loop: ev_run it as usual.
 */
#ifndef REACTORD_H
#define REACTORD_H

#include <stddef.h>

#include <lua.h>

#define REACTORD_VERSION "0.1.0"

struct ev_loop;
typedef struct rd_reactor rd_reactor;

/* One log record, without a trailing newline. */
typedef void (*rd_log_fn)(void *ud, const char *line);
/* A Lua error in a callback, as "error in WHAT: MESSAGE (peer ...)" and its
 * traceback; the connection it ran for is closed, the reactor goes on. */
typedef void (*rd_error_fn)(void *ud, const char *message);
/* A C function scripts call (rd_register): arguments and results on L's
 * stack as for a lua_CFunction; ud is the pointer given to rd_register. */
typedef int (*rd_cfunction)(lua_State *L, void *ud);

typedef struct rd_options {
    const char *script_path; /* prepended to package.path ("dir/?.lua;..."), or NULL */
    struct ev_loop *loop;    /* run on this libev loop (the host keeps it), or NULL */
    size_t max_memory;       /* bytes of Lua memory, 0 = no limit */
    double script_timeout;   /* seconds one callback may run, 0 = no limit */
    size_t max_connections;  /* open connections beyond this are refused, 0 = no limit */
    rd_log_fn log;           /* log records, or NULL: dropped */
    void *log_ud;
    rd_error_fn on_error; /* Lua errors in callbacks, or NULL: sent to log */
    void *error_ud;
} rd_options;

/* A new reactor (opts may be NULL: all defaults). On failure NULL, and the
 * reason in err[errlen] if err is not NULL. */
rd_reactor *rd_new(const rd_options *opts, char *err, size_t errlen);
/* Close every connection and listener, free everything. NULL is a no-op. */
void rd_free(rd_reactor *r);
/* Why the last call that failed did (valid until the next call on r). */
const char *rd_error(const rd_reactor *r);
/* The reactor's Lua state, for a host that wants the full Lua API. Globals
 * `reactor` (require "reactor") is set there. */
lua_State *rd_lua(rd_reactor *r);

/* Run the Lua file at path (its errors are returned, never raised). */
int rd_load(rd_reactor *r, const char *path);
/* Run Lua source; name is the chunk name errors show ("=host"). */
int rd_dostring(rd_reactor *r, const char *src, const char *name);
/* Run path again in the same state (the last rd_load's when NULL): its
 * functions are replaced, connections and C-side state stay. A script that
 * fails to load changes nothing. */
int rd_reload(rd_reactor *r, const char *path);
/* Make fn callable from scripts as NAME, a global or a dotted path
 * ("world.move" sets field move of the global table world, made if absent). */
int rd_register(rd_reactor *r, const char *name, rd_cfunction fn, void *ud);

/* Run the loop until rd_stop or reactor.stop(). */
int rd_run(rd_reactor *r);
/* One loop iteration: wait at most timeout seconds for events (0: never
 * blocks; < 0: until one), handle what is ready. Timers run on the loop's
 * clock, whatever the timeouts given. Returns 1 if the script called
 * reactor.stop() (everything is closed then), else 0; -1 on error. */
int rd_step(rd_reactor *r, double timeout);
/* Seconds until the earliest timer (0: work is ready now), or -1: none. */
double rd_next_deadline(rd_reactor *r);
/* A file descriptor that polls readable when rd_step has work: events or a
 * timer due. It stays valid for the reactor's life and is kept in step with
 * every watcher a callback starts or stops, by every rd_* call. Not for a
 * reactor on the host's loop (options.loop). -1 on error. */
int rd_fd(rd_reactor *r);
/* Make rd_run return after the current callback; like reactor.stop() it
 * closes every listener and connection. */
int rd_stop(rd_reactor *r);

#endif
