/*
 * hold.h: stdout held back until the daemon's first line is out.
 *
 * The first line reactord writes on stdout is "reactord: listening on
 * HOST:PORT" (documented, and what scripts and tests wait for), yet a
 * script may print at its top level, which runs before anything listens.
 * So fd 1 points at a temporary file while the script loads; release
 * writes the daemon's lines, then what was held, and points fd 1 back.
 */
#ifndef REACTORD_HOLD_H
#define REACTORD_HOLD_H

#include <lua.h>

struct hold {
    int saved; /* the real stdout while held, else -1 */
    int tmp;   /* where fd 1 points meanwhile */
};

/* Push a table {hold = fn(), release = fn(lines)} bound to h. */
void hold_push(lua_State *L, struct hold *h);
/* Let go without writing (at exit, whatever happened). */
void hold_release(struct hold *h, const char *lines, size_t n);

#endif
