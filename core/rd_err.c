/* rd_err.c: names and messages for errno values and reactord's own codes. */
#include <errno.h>
#include <string.h>

#include "rd.h"

const char *rd_err_name(int err)
{
#define E(x)                                                                                       \
    {                                                                                              \
        x, #x                                                                                      \
    }
    static const struct {
        int err;
        const char *name;
    } names[] = {
        E(EADDRINUSE), E(EADDRNOTAVAIL), E(EACCES),      E(ECONNREFUSED), E(ECONNRESET),
        E(ETIMEDOUT),  E(EPIPE),         E(EMFILE),      E(ENFILE),       E(ENOMEM),
        E(EINVAL),     E(EHOSTUNREACH),  E(ENETUNREACH), E(EAFNOSUPPORT), E(ENOBUFS),
        E(EPERM),      E(ENOENT),        E(EAGAIN),      E(ENAMETOOLONG), E(ENOSPC),
        E(ENOTDIR),    E(EBADF),         E(ENOTCONN),    E(ECONNABORTED), E(ENETDOWN),
        E(EISCONN),
    };
#undef E
    if (err == 0) return "OK";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].err == -err) return names[i].name;
    switch (err) {
    case RD_ECLOSED:
        return "ECLOSED";
    case RD_ETOOBIG:
        return "ETOOBIG";
    case RD_EBADADDR:
        return "EBADADDR";
    case RD_ENOTFOUND:
        return "ENOTFOUND";
    case RD_EFRAME:
        return "EFRAME";
    }
    return "EUNKNOWN";
}

const char *rd_strerror(int err)
{
    switch (err) {
    case RD_ECLOSED:
        return "connection is closed";
    case RD_ETOOBIG:
        return "size limit exceeded";
    case RD_EBADADDR:
        return "not a numeric IPv4 or IPv6 address";
    case RD_ENOTFOUND:
        return "name not found";
    case RD_EFRAME:
        return "malformed frame";
    }
    return strerror(-err);
}

const char *rd_reason_name(int reason)
{
    static const char *const names[] = {"done", "lost", "aborted", "timeout", "refused", "error"};
    if (reason < 0 || reason > RD_ERROR) return "error";
    return names[reason];
}
