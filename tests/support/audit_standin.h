/*
 * A stand-in exchange for cpx-audit --url: a small plain-HTTP server on a thread of the test,
 * on a free port of 127.0.0.1, that answers every GET with what the test's answer function says
 * (served as JSON, one request per connection) and remembers each request's target. The tests
 * of the tool's network paths (test_audit_url.c, test_audit_books.c) differ only in the answers.
 */
#ifndef CPX_TESTS_AUDIT_STANDIN_H
#define CPX_TESTS_AUDIT_STANDIN_H

#include <pthread.h>

#define AUDIT_STANDIN_TARGETS 16384 /* bytes of request targets remembered */

/* The answer to GET target: sets *status and returns the body (malloc'd; the server frees it). */
typedef char *(*audit_standin_answer_fn)(void *ctx, const char *target, int *status);

struct audit_standin {
    audit_standin_answer_fn answer;      /* what to serve */
    void *ctx;                           /* its first argument */
    int fd;                              /* listening socket */
    char url[64];                        /* http://127.0.0.1:port */
    pthread_t thread;                    /* serving thread */
    volatile int stop;                   /* set to end the thread */
    char targets[AUDIT_STANDIN_TARGETS]; /* every request target, one a line */
};

/* Starts serving answer(ctx, ...) at s->url. Fails the test when it cannot. */
void audit_standin_start(struct audit_standin *s, audit_standin_answer_fn answer, void *ctx);

/* Stops the server (s->targets stays readable). */
void audit_standin_stop(struct audit_standin *s);

#endif
