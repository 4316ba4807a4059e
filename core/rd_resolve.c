/*
 * rd_resolve.c: getaddrinfo on a detached worker thread, one per lookup, so
 * a slow DNS server never stalls the loop (Twisted's blocking-lookup gap).
 *
 * Ownership: the worker only touches a job it shares with the loop's
 * resolver, both heap memory owned by the core and reference counted; the
 * caller's rd_resolve_t may vanish (cancel, a Lua finalizer) at any time.
 * Finished jobs are handed back under a mutex and announced with
 * ev_async_send; the loop thread runs the callbacks.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rd.h"

struct rd__resolver {
    pthread_mutex_t mu;
    struct rd__job *done; /* finished, waiting for the loop */
    ev_async async;
    rd_loop_t *loop; /* NULL once the loop is gone */
    int refs;        /* the loop's + one per job in flight */
};

struct rd__job {
    struct rd__job *next;
    struct rd__resolver *res;
    rd_resolve_t *owner; /* NULL once cancelled */
    int status;
    size_t n;
    rd_addr_t addrs[RD_RESOLVE_MAX];
    char host[];
};

static void unref(struct rd__resolver *res) /* with res->mu held; unlocks */
{
    int last = --res->refs == 0;
    pthread_mutex_unlock(&res->mu);
    if (last) {
        pthread_mutex_destroy(&res->mu);
        free(res);
    }
}

static void *worker(void *arg)
{
    struct rd__job *job = arg;
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int r = getaddrinfo(job->host, NULL, &hints, &ai);
    if (r == 0) {
        for (struct addrinfo *p = ai; p && job->n < RD_RESOLVE_MAX; p = p->ai_next)
            if ((p->ai_family == AF_INET || p->ai_family == AF_INET6) &&
                p->ai_addrlen <= sizeof job->addrs[0])
                memcpy(&job->addrs[job->n++], p->ai_addr, p->ai_addrlen);
        freeaddrinfo(ai);
    }
    job->status = job->n ? 0 : (r == EAI_SYSTEM ? -errno : RD_ENOTFOUND);
    struct rd__resolver *res = job->res;
    pthread_mutex_lock(&res->mu);
    if (res->loop) {
        job->next = res->done;
        res->done = job;
        ev_async_send(res->loop->ev, &res->async);
    } else {
        free(job);
    }
    unref(res);
    return NULL;
}

static void deliver_cb(struct ev_loop *ev, ev_async *w, int revents)
{
    (void)ev, (void)revents;
    struct rd__resolver *res = rd__container(w, struct rd__resolver, async);
    rd_loop_t *loop = res->loop;
    pthread_mutex_lock(&res->mu);
    struct rd__job *jobs = res->done;
    res->done = NULL;
    pthread_mutex_unlock(&res->mu);
    while (jobs) {
        struct rd__job *job = jobs;
        jobs = job->next;
        rd_resolve_t *r = job->owner;
        if (r) {
            r->job = NULL;
            ev_unref(loop->ev); /* the lookup no longer keeps the loop running */
            r->cb(r, job->status, job->addrs, job->n);
        }
        free(job);
    }
    rd_loop_settle(loop);
}

int rd_resolve_start(rd_resolve_t *r, rd_loop_t *loop, const char *host, rd_resolve_cb cb)
{
    r->job = NULL;
    r->loop = loop;
    r->cb = cb;
    size_t len = strlen(host);
    if (len == 0 || len > 253) return RD_ENOTFOUND;
    struct rd__resolver *res = loop->resolver;
    if (!res) {
        res = calloc(1, sizeof *res);
        if (!res) return -ENOMEM;
        pthread_mutex_init(&res->mu, NULL);
        res->loop = loop;
        res->refs = 1;
        ev_async_init(&res->async, deliver_cb);
        ev_async_start(loop->ev, &res->async);
        ev_unref(loop->ev); /* only lookups in flight keep the loop running */
        loop->resolver = res;
    }
    struct rd__job *job = calloc(1, sizeof *job + len + 1);
    if (!job) return -ENOMEM;
    memcpy(job->host, host, len + 1);
    job->res = res;
    job->owner = r;
    pthread_mutex_lock(&res->mu);
    res->refs++;
    pthread_mutex_unlock(&res->mu);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int e = pthread_create(&th, &attr, worker, job);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        pthread_mutex_lock(&res->mu);
        unref(res);
        free(job);
        return -e;
    }
    r->job = job;
    ev_ref(loop->ev); /* a lookup in flight keeps the loop running */
    return 0;
}

void rd_resolve_cancel(rd_resolve_t *r)
{
    if (!r->job) return;
    /* only the loop thread reads owner, so no lock is needed */
    r->job->owner = NULL;
    r->job = NULL;
    ev_unref(r->loop->ev);
}

/* Called by rd_loop_destroy: late workers free their jobs themselves. */
void rd__resolver_destroy(rd_loop_t *loop)
{
    struct rd__resolver *res = loop->resolver;
    if (!res) return;
    loop->resolver = NULL;
    ev_ref(loop->ev);
    ev_async_stop(loop->ev, &res->async);
    pthread_mutex_lock(&res->mu);
    res->loop = NULL;
    struct rd__job *jobs = res->done;
    res->done = NULL;
    while (jobs) {
        struct rd__job *j = jobs;
        jobs = j->next;
        free(j);
    }
    unref(res);
}
