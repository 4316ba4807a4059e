/*
 * llog.c: one logger for the C and the Lua half (core.log). A record goes
 * to the host's log function (reactor_set_log), or to stderr as
 * "reactor: LINE": the daemon sets its own, which says "reactord: ".
 */
#include <stdarg.h>
#include <stdio.h>

#include "rdlua.h"

void rdL_log(lreactor *lr, const char *fmt, ...)
{
    char line[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (lr && lr->log) {
        lr->log(lr->log_ud, line);
        return;
    }
    fprintf(stderr, "reactor: %s\n", line);
    fflush(stderr);
}

void rdL_log_error(lreactor *lr, const char *fmt, ...)
{
    char line[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (lr && lr->on_error)
        lr->on_error(lr->error_ud, line);
    else
        rdL_log(lr, "%s", line);
}
