/*
 * worker_link.h: a worker's end of its link to the master (link.h), as the
 * Lua table daemon.lua serves with: it asks the master for each listening
 * socket instead of binding one, and reports to it.
 */
#ifndef REACTORD_WORKER_LINK_H
#define REACTORD_WORKER_LINK_H

#include <sys/types.h>

#include <lua.h>

struct worker_link {
    int fd;       /* the socketpair end; -1 = not a worker */
    pid_t master; /* its parent, to notice being orphaned */
    int id, count;
};

/* Parse "FD:ID:COUNT:MASTERPID" (the hidden --worker-link option). 0 or -1. */
int worker_link_parse(struct worker_link *w, const char *arg);
/* Push {id=, count=, listen=fn(key, host, port, backlog) -> fd | nil, msg,
 * send=fn(msg) -> true | nil, orphaned=fn() -> bool} bound to w. */
void worker_link_push(lua_State *L, struct worker_link *w);

#endif
