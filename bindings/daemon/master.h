/*
 * master.h: `reactord --workers N`: the master process. It runs no Lua: it
 * owns the listening sockets (made when a worker first asks, kept for the
 * life of each worker slot), starts N workers (this binary again, with a
 * link, see link.h), replaces those that die (with backoff, parking a slot
 * that crash-loops), kills one whose heartbeat stops, reloads them all on
 * SIGHUP once `reactord --check` passes, drains them all on SIGTERM, and
 * answers `reactord --status` on its control socket when given one.
 */
#ifndef REACTORD_MASTER_H
#define REACTORD_MASTER_H

struct master_opts {
    int workers;         /* slots, >= 1 */
    int shared;          /* one socket for all workers instead of one SO_REUSEPORT socket each */
    const char *control; /* --control PATH, or NULL */
    const char *script;
    int argc; /* the command line, handed to each worker */
    char **argv;
};

/* Serve until every worker is gone; the exit code (0 after SIGTERM, 1 when
 * the first worker failed to start or every slot is parked). */
int master_run(const struct master_opts *o);

#endif
