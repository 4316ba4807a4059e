/* control.c: see control.h. */
#include "control.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int address(struct sockaddr_un *sun, const char *path)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun->sun_path) return -1;
    strcpy(sun->sun_path, path);
    return 0;
}

int control_listen(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    if (address(&sun, path) < 0) {
        snprintf(err, errlen, "--control %s: path too long (at most %zu bytes)", path,
                 sizeof sun.sun_path - 1);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) goto fail;
    int r = bind(fd, (struct sockaddr *)&sun, sizeof sun);
    if (r < 0 && errno == EADDRINUSE) {
        struct stat st;
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int live = probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof sun) == 0;
        if (probe >= 0) close(probe);
        if (live || lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "--control %s: %s", path,
                     live ? "another reactord answers there (stop it, or give another path)"
                          : "the path exists and is no socket (remove it, or give another path)");
            close(fd);
            return -1;
        }
        unlink(path); /* left by a master that died */
        r = bind(fd, (struct sockaddr *)&sun, sizeof sun);
    }
    if (r < 0 || listen(fd, 16) < 0) goto fail;
    return fd;
fail:
    snprintf(err, errlen, "--control %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
}

int control_accept(int fd, char *req, size_t cap)
{
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) return -1;
    size_t n = 0;
    while (n + 1 < cap) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        if (poll(&p, 1, 1000) <= 0) break;
        ssize_t r = read(c, req + n, cap - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
        if (memchr(req, '\n', n)) break;
    }
    req[n] = '\0';
    return c;
}

void control_answer(int client, const char *text, size_t n)
{
    while (n) {
        ssize_t w = send(client, text, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        text += w;
        n -= (size_t)w;
    }
    close(client);
}

int control_status(const char *path)
{
    struct sockaddr_un sun;
    if (address(&sun, path) < 0) {
        fprintf(stderr, "reactord: --status %s: path too long\n", path);
        return 2;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        fprintf(stderr, "reactord: --status %s: %s (is a master running with --control %s?)\n",
                path, strerror(errno), path);
        if (fd >= 0) close(fd);
        return 1;
    }
    static const char req[] = "status\n";
    if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) < 0) {
        fprintf(stderr, "reactord: --status %s: %s\n", path, strerror(errno));
        close(fd);
        return 1;
    }
    char buf[4096];
    int any = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0) break;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) break;
        fwrite(buf, 1, (size_t)r, stdout);
        any = 1;
    }
    close(fd);
    if (!any) {
        fprintf(stderr, "reactord: --status %s: the master did not answer\n", path);
        return 1;
    }
    return 0;
}
