/*
 * link.h: the master-worker link, one SOCK_SEQPACKET socketpair per worker.
 * A message is one datagram of text, at most LINK_MAX bytes; a listening
 * socket rides on the master's answer to `L` as SCM_RIGHTS.
 *
 *   worker -> master                         master -> worker
 *   L key\thost\tport\tbacklog  (a socket)   l PORT + fd | e MESSAGE
 *   U                  (serving)
 *   H open reads memory generation  (every 100 ms: the heartbeat)
 *   K key\nkey...      (the listeners it holds, after a reload)
 *   r 1 generation | r 0 message    (its answer to SIGHUP)
 *
 * The master tells a worker what to do with signals: SIGHUP reloads,
 * SIGTERM drains (the same handlers as one process has).
 */
#ifndef REACTORD_LINK_H
#define REACTORD_LINK_H

#include <stddef.h>
#include <sys/types.h>

#define LINK_MAX 4096

/* Send msg (n bytes), with fd as SCM_RIGHTS when fd >= 0. Never blocks
 * when dontwait. 0, or -errno. */
int link_send(int sock, const char *msg, size_t n, int fd, int dontwait);
/* Receive one message into buf (NUL-terminated; cap > 1), and a passed
 * descriptor into *fd (-1 if none; close-on-exec). Returns its length, 0 at
 * EOF, or -errno. */
ssize_t link_recv(int sock, char *buf, size_t cap, int *fd);

#endif
