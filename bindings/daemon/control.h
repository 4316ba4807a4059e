/*
 * control.h: the master's control socket (`--control PATH`, a Unix stream
 * socket opened only when asked) and its client, `reactord --status PATH`.
 * A client sends one line ("status\n") and reads the answer to EOF.
 */
#ifndef REACTORD_CONTROL_H
#define REACTORD_CONTROL_H

#include <stddef.h>

/* Listen at path (a stale socket file left by a dead master is replaced, a
 * live one is not). The fd, or -1 with the reason in err. */
int control_listen(const char *path, char *err, size_t errlen);
/* Accept one client on fd and read its request into req (1 s at most).
 * The client's fd, or -1. */
int control_accept(int fd, char *req, size_t cap);
/* Write all of text to the client and close it. */
void control_answer(int client, const char *text, size_t n);
/* `reactord --status PATH`: ask, print the answer on stdout; the exit code. */
int control_status(const char *path);

#endif
