/*
 * llog.c: one logger for the C and the Lua half (core.log). A record goes
 * to the host's log function (reactor_set_log), or to stderr as
 * "reactor: LINE": the daemon sets its own, which says "reactord: ".
 */
#include <stdarg.h>
#include <stdio.h>

#include "rdlua.h"

/* One record, formatted: to fn(ud, line) if given, else to the log. */
static void vrecord(lreactor *lr, reactor_log_fn fn, void *ud, const char *fmt, va_list ap)
{
    char line[8192];
    vsnprintf(line, sizeof line, fmt, ap);
    if (fn) {
        fn(ud, line);
    } else if (lr && lr->log) {
        lr->log(lr->log_ud, line);
    } else {
        fprintf(stderr, "reactor: %s\n", line);
        fflush(stderr);
    }
}

void rdL_log(lreactor *lr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vrecord(lr, NULL, NULL, fmt, ap);
    va_end(ap);
}

void rdL_log_error(lreactor *lr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vrecord(lr, lr ? lr->on_error : NULL, lr ? lr->error_ud : NULL, fmt, ap);
    va_end(ap);
}
