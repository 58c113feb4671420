/*
 * One HTTP request as handlers see it, and the ways to answer it.
 *
 * Life of a request (http.c): libmicrohttpd hands us the raw request target first (the URI log
 * callback), then the headers, then the body in pieces. The body is collected up to --max-body
 * (413 beyond). When it is complete the request is dispatched: route (404/405), media type (415),
 * JSON (400), authentication (401/403), then the route's handler, which answers with exactly one
 * reply_* call. The reply is queued on a later callback than the first, which keeps HTTP/1.1
 * connections alive (libmicrohttpd closes a connection answered on its first callback).
 */
#ifndef CPX_SERVER_HTTP_H
#define CPX_SERVER_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ledger/reqsig.h"
#include "server/db.h"
#include "server/errors.h"
#include "server/identity.h"
#include "server/routes.h"

struct MHD_Connection;
struct MHD_Response;
struct server;

struct request {
    struct server *srv;          /* the server */
    struct MHD_Connection *conn; /* libmicrohttpd's connection */
    char *target;                /* raw request target as received: path?query (malloc'd) */
    size_t path_len;             /* length of the path part of target */
    const char *method;          /* "GET", ... (libmicrohttpd's string) */
    size_t route;                /* index into routes[]; nroutes when none matched */
    char params[ROUTE_MAX_PARAMS][CPX_ID_MAX]; /* {param} path segments, in order */
    char *body;                    /* request body, NUL-terminated (malloc'd), NULL when empty */
    size_t body_len;               /* its length */
    size_t body_cap;               /* its allocation */
    bool too_large;                /* the body exceeded --max-body */
    size_t received;               /* body bytes received, kept or not */
    json_t *json;                  /* the parsed body, or NULL when there was none */
    bool signed_in;                /* auth and caller are valid */
    struct cpx_auth auth;          /* the parsed Authorization header */
    struct identity caller;        /* the authenticated identity */
    bool started;                  /* the first callback has run */
    uint64_t started_ns;           /* monotonic time the request arrived */
    int status;                    /* status of the reply, 0 until answered */
    bool queued;                   /* the reply has been handed to libmicrohttpd */
    bool dispatched;               /* the handler has run */
    bool suspended;                /* handed to the sequencer, which answers and resumes it */
    json_t *deferred;              /* reply_json_deferred's body, sent when resumed */
    int deferred_status;           /* its status */
    struct MHD_Response *response; /* the reply, until queued */
};

/* Answers with status and body (stolen; NULL answers with an empty object). */
void reply_json(struct request *req, int status, json_t *body);

/* Answers with an already serialised JSON text (copied). */
void reply_json_text(struct request *req, int status, const char *text);

/* Answers with any content (copied). */
void reply_raw(struct request *req, int status, const char *content_type, const char *data,
               size_t len);

/*
 * A body produced piece by piece (libmicrohttpd's content reader): writes up to max bytes at buf
 * and returns how many, or REPLY_STREAM_END when the body is complete, or REPLY_STREAM_ERROR to
 * cut the connection (the client sees a truncated body). pos counts bytes sent so far.
 */
typedef ssize_t (*reply_reader)(void *cls, uint64_t pos, char *buf, size_t max);
#define REPLY_STREAM_END   (-1)
#define REPLY_STREAM_ERROR (-2)

/* Answers with a streamed body; free_cls(cls) runs when the response is done with. */
void reply_stream(struct request *req, int status, const char *content_type, reply_reader read,
                  void *cls, void (*free_cls)(void *));

/*
 * Parses the query parameter key as a decimal count (cpx_decimal_parse, ledger/codec.h).
 * Leaves *out unchanged and returns true when the parameter is absent; answers 400 and returns
 * false when it is malformed.
 */
bool request_query_u64(struct request *req, const char *key, uint64_t *out);

/* Adds a header to the reply already made (after a reply_* call). */
void reply_header(struct request *req, const char *name, const char *value);

/* Answers with error e: {"error":{"code","message","field"}}; field may be NULL; fmt NULL uses
 * the table's message. */
void reply_error(struct request *req, enum err e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Answers a failed database call: 503 when the database is away, 500 otherwise. */
void reply_db_error(struct request *req, enum db_status st);

/* The value of query parameter key (decoded), or NULL. */
const char *request_query(struct request *req, const char *key);

/* The value of request header name, or NULL. */
const char *request_header(struct request *req, const char *name);

/*
 * Reads the list parameters ?limit=N&after=CURSOR (API.md): limit defaults to 100, at most 1000;
 * after defaults to "". Answers 400 and returns false when they are invalid.
 */
bool request_page(struct request *req, int *limit, const char **after);

/*
 * Parses the JSON body against spec into dest (see spec.h). Answers 400 naming the field and
 * returns false when it does not fit; a missing body counts as an empty object.
 */
struct spec;
bool request_parse(struct request *req, const struct spec *spec, void *dest);

/*
 * Suspends req's connection until request_resume (libmicrohttpd stops calling back for it). For
 * a handler that hands the request to another thread: call it before handing over; the other
 * thread answers with a reply_* call and then calls request_resume.
 */
void request_suspend(struct request *req);
void request_resume(struct request *req);

/* For the thread that answers a suspended request: keeps body (stolen) and status, and the
 * request's own HTTP thread serialises and sends them once resumed, so the JSON encoding runs
 * there and not on the answering thread. */
void reply_json_deferred(struct request *req, int status, json_t *body);

/* Starts listening as configured; returns false after logging why. */
bool http_start(struct server *srv);

/* Stops listening; requests in flight finish first. */
void http_stop(struct server *srv);

#endif
