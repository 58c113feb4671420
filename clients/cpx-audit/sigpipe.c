/*
 * The signature pipeline: see sigpipe.h.
 *
 * The ring holds `count` queued jobs from slot `head` on. Only the producer adds (at
 * (head + count) % n_slots, the "tail", which takes never move) and only under the lock does
 * anyone take; the producer fills the tail slot outside the lock, since no taker can reach it
 * before count grows. Invariants: count <= n_slots; every failed job is in `failed` until the
 * producer reports it.
 */
#include "clients/cpx-audit/sigpipe.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS_PER_THREAD 128         /* queued jobs per verifying thread */
#define BUFFER_KEEP_MAX  (64 * 1024) /* larger record buffers are freed after use */

/* Bytes of one record. */
struct buffer {
    uint8_t *bytes; /* the record (malloc'd; NULL while cap is 0) */
    size_t len;     /* bytes used */
    size_t cap;     /* bytes allocated */
};

/* A queued job. */
struct slot {
    struct buffer buf;           /* the record's bytes */
    struct cpx_audit_sigjob job; /* what to verify */
};

/* What a verifying thread owns. */
struct taker {
    struct buffer buf;         /* the record being verified (swapped in from a slot) */
    struct cpx_record scratch; /* decoder scratch for cpx_audit_sigjob_verify */
};

struct sig_pipeline {
    struct cpx_audit *audit;         /* gets the failed jobs (producer only) */
    pthread_mutex_t lock;            /* guards the ring, closing, failed */
    pthread_cond_t work;             /* a job was queued, or closing was set */
    struct slot *ring;               /* n_slots slots */
    size_t n_slots, head, count;     /* size, first queued, queued */
    bool closing;                    /* no more jobs: workers drain and stop */
    pthread_t *workers;              /* started worker threads */
    size_t n_workers;                /* how many started */
    bool joined;                     /* the workers have been joined */
    struct cpx_audit_sigjob *failed; /* jobs whose signature failed, not yet reported */
    size_t n_failed, cap_failed;     /* used and allocated */
    bool nomem;                      /* a worker could not record a failure */
    struct taker self;               /* the producer's own buffer and scratch */
    uint64_t jobs;                   /* jobs pushed */
};

/* Takes the job at head into t (under the lock): buffers are swapped, not copied. */
static void take(struct sig_pipeline *p, struct taker *t, struct cpx_audit_sigjob *job)
{
    struct slot *s = &p->ring[p->head];
    struct buffer mine = t->buf;
    t->buf = s->buf;
    s->buf = mine;
    *job = s->job;
    p->head = (p->head + 1) % p->n_slots;
    p->count--;
}

/* Verifies t's record for job (without the lock). Returns true when the signature holds. */
static bool verify(struct taker *t, const struct cpx_audit_sigjob *job)
{
    bool ok = cpx_audit_sigjob_verify(&t->scratch, t->buf.bytes, t->buf.len, job);
    if (t->buf.cap > BUFFER_KEEP_MAX) {
        free(t->buf.bytes);
        t->buf = (struct buffer){ 0 };
    }
    return ok;
}

/* Remembers a failed job (under the lock). */
static void add_failed(struct sig_pipeline *p, const struct cpx_audit_sigjob *job)
{
    if (p->n_failed == p->cap_failed) {
        size_t cap = p->cap_failed ? p->cap_failed * 2 : 16;
        struct cpx_audit_sigjob *bigger = realloc(p->failed, cap * sizeof *bigger);
        if (bigger == NULL) {
            p->nomem = true;
            return;
        }
        p->failed = bigger;
        p->cap_failed = cap;
    }
    p->failed[p->n_failed++] = *job;
}

/* Hands the failed jobs to the auditor (producer, under the lock). */
static void report_failed(struct sig_pipeline *p)
{
    for (size_t i = 0; i < p->n_failed; i++)
        cpx_audit_sigjob_failed(p->audit, &p->failed[i]);
    p->n_failed = 0;
}

/* Takes and verifies jobs until the ring is empty and closing is set (waits while it is not). */
static void drain(struct sig_pipeline *p, struct taker *t)
{
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->count == 0 && !p->closing)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->count == 0)
            break;
        struct cpx_audit_sigjob job;
        take(p, t, &job);
        pthread_mutex_unlock(&p->lock);
        bool ok = verify(t, &job);
        pthread_mutex_lock(&p->lock);
        if (!ok)
            add_failed(p, &job);
    }
    pthread_mutex_unlock(&p->lock);
}

static void taker_init(struct taker *t)
{
    t->buf = (struct buffer){ 0 };
    cpx_record_init(&t->scratch);
}

static void taker_free(struct taker *t)
{
    free(t->buf.bytes);
    cpx_record_free(&t->scratch);
}

static void *worker_main(void *arg)
{
    struct taker t;
    taker_init(&t);
    drain(arg, &t);
    taker_free(&t);
    return NULL;
}

struct sig_pipeline *sig_pipeline_new(unsigned threads, struct cpx_audit *a)
{
    struct sig_pipeline *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->audit = a;
    p->n_slots = (size_t)(threads ? threads : 1) * SLOTS_PER_THREAD;
    p->ring = calloc(p->n_slots, sizeof *p->ring);
    p->workers = calloc(threads ? threads : 1, sizeof *p->workers);
    taker_init(&p->self);
    if (p->ring == NULL || p->workers == NULL || pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p->ring);
        free(p->workers);
        free(p);
        return NULL;
    }
    pthread_cond_init(&p->work, NULL);
    for (unsigned i = 1; i < threads; i++) {
        if (pthread_create(&p->workers[p->n_workers], NULL, worker_main, p) != 0)
            break; /* go on with the threads that did start (the producer always verifies) */
        p->n_workers++;
    }
    return p;
}

/* Makes room for len bytes in b. Returns false when out of memory. */
static bool buffer_fit(struct buffer *b, size_t len)
{
    if (len <= b->cap)
        return true;
    uint8_t *bigger = realloc(b->bytes, len);
    if (bigger == NULL)
        return false;
    b->bytes = bigger;
    b->cap = len;
    return true;
}

bool sig_pipeline_push(struct sig_pipeline *p, const void *bytes, size_t len,
                       const struct cpx_audit_sigjob *job)
{
    pthread_mutex_lock(&p->lock);
    if (p->count == p->n_slots) {
        /* Full: the producer verifies the oldest job itself rather than wait. */
        struct cpx_audit_sigjob oldest;
        take(p, &p->self, &oldest);
        pthread_mutex_unlock(&p->lock);
        bool ok = verify(&p->self, &oldest);
        pthread_mutex_lock(&p->lock);
        if (!ok)
            add_failed(p, &oldest);
    }
    struct slot *s = &p->ring[(p->head + p->count) % p->n_slots];
    pthread_mutex_unlock(&p->lock);

    if (!buffer_fit(&s->buf, len))
        return false;
    memcpy(s->buf.bytes, bytes, len);
    s->buf.len = len;
    s->job = *job;
    p->jobs++;

    pthread_mutex_lock(&p->lock);
    p->count++;
    pthread_cond_signal(&p->work);
    report_failed(p);
    bool ok = !p->nomem;
    pthread_mutex_unlock(&p->lock);
    return ok;
}

/* Sets closing and joins the workers after draining the ring on this thread too. */
static void close_and_join(struct sig_pipeline *p)
{
    if (p->joined)
        return;
    pthread_mutex_lock(&p->lock);
    p->closing = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    drain(p, &p->self);
    for (size_t i = 0; i < p->n_workers; i++)
        pthread_join(p->workers[i], NULL);
    p->joined = true;
}

bool sig_pipeline_finish(struct sig_pipeline *p)
{
    close_and_join(p);
    report_failed(p); /* the workers are gone: no lock needed */
    return !p->nomem;
}

uint64_t sig_pipeline_jobs(const struct sig_pipeline *p)
{
    return p->jobs;
}

void sig_pipeline_free(struct sig_pipeline *p)
{
    if (p == NULL)
        return;
    close_and_join(p);
    for (size_t i = 0; i < p->n_slots; i++)
        free(p->ring[i].buf.bytes);
    taker_free(&p->self);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p->ring);
    free(p->workers);
    free(p->failed);
    free(p);
}
