/* rd_net.c: addresses: numeric ones, Unix paths, and the blocking lookup of
 * a local name to bind to. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "rd.h"

int rd_addr_parse(rd_addr_t *a, const char *host, int port)
{
    memset(a, 0, sizeof *a);
    if (port < 0 || port > 65535) return -EINVAL;
    if (inet_pton(AF_INET, host, &a->in.sin_addr) == 1) {
        a->in.sin_family = AF_INET;
        a->in.sin_port = htons((uint16_t)port);
        return 0;
    }
    /* accept "[::1]" as well as "::1" */
    char tmp[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof tmp) {
        memcpy(tmp, host + 1, n - 2);
        tmp[n - 2] = '\0';
        host = tmp;
    }
    if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1) {
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = htons((uint16_t)port);
        return 0;
    }
    return RD_EBADADDR;
}

int rd__addr_local(rd_addr_t *a, const char *host, int port, int socktype)
{
    int r = rd_addr_parse(a, host, port);
    if (r != RD_EBADADDR) return r; /* numeric, or a bad port */
    size_t len = strlen(host);
    if (len == 0 || len > 253) return RD_ENOTFOUND;
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char serv[8];
    snprintf(serv, sizeof serv, "%d", port);
    int e = getaddrinfo(host, serv, &hints, &ai);
    if (e != 0) {
        if (e == EAI_MEMORY) return -ENOMEM;
        if (e == EAI_SYSTEM && errno) return -errno;
        return RD_ENOTFOUND;
    }
    const struct addrinfo *pick = NULL; /* the first IPv4 address, else the first IPv6 one */
    for (const struct addrinfo *p = ai; p; p = p->ai_next) {
        if (p->ai_addrlen > sizeof *a) continue;
        if (p->ai_family == AF_INET) {
            pick = p;
            break;
        }
        if (p->ai_family == AF_INET6 && !pick) pick = p;
    }
    if (pick) memcpy(a, pick->ai_addr, pick->ai_addrlen);
    freeaddrinfo(ai);
    return pick ? 0 : RD_ENOTFOUND;
}

int rd_addr_host(const rd_addr_t *a, char *buf, size_t size)
{
    if (a->sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &a->in6.sin6_addr, buf, (socklen_t)size);
        return ntohs(a->in6.sin6_port);
    }
    if (a->sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a->in.sin_addr, buf, (socklen_t)size);
        return ntohs(a->in.sin_port);
    }
    if (size) buf[0] = '\0';
    return 0;
}

int rd_addr_unix(struct sockaddr_un *sun, const char *path)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun->sun_path) return -ENAMETOOLONG;
    strcpy(sun->sun_path, path);
    return 0;
}

socklen_t rd_addr_len(const rd_addr_t *a)
{
    return a->sa.sa_family == AF_INET6 ? sizeof a->in6 : sizeof a->in;
}
