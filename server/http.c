/*
 * The HTTPS front: libmicrohttpd glue, the request life cycle and the replies. See http.h.
 *
 * libmicrohttpd calls on_request several times per request: once when the headers are in (we
 * only note the start), once per piece of body (we append it, up to the cap), and once more when
 * the body is complete (we dispatch and queue the reply). The request struct is created by the
 * URI log callback, which is the only place the raw request target (path and query exactly as
 * sent, needed for signature checks) is available, and freed by the completion callback, which
 * also records the metrics.
 */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ledger/codec.h"
#include "server/auth.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/spec.h"
#include "server/util.h"

/* Bytes of an oversize body read and dropped before answering 413 and closing instead. */
#define DISCARD_MAX (8u << 20)

/* ---- replies ------------------------------------------------------------------------------ */

void reply_raw(struct request *req, int status, const char *content_type, const char *data,
               size_t len)
{
    if (req->response != NULL) {
        log_error("%s %s: answered twice (kept the first answer)", req->method, req->target);
        return;
    }
    req->response = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (req->response == NULL) {
        log_error("out of memory creating a response");
        return;
    }
    MHD_add_response_header(req->response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(req->response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    req->status = status;
}

_Static_assert(REPLY_STREAM_END == MHD_CONTENT_READER_END_OF_STREAM, "reader end");
_Static_assert(REPLY_STREAM_ERROR == MHD_CONTENT_READER_END_WITH_ERROR, "reader error");

#define STREAM_BLOCK (64 * 1024) /* bytes libmicrohttpd asks a stream for at a time */

void reply_stream(struct request *req, int status, const char *content_type, reply_reader read,
                  void *cls, void (*free_cls)(void *))
{
    if (req->response != NULL) {
        log_error("%s %s: answered twice (kept the first answer)", req->method, req->target);
        free_cls(cls);
        return;
    }
    req->response =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, read, cls, free_cls);
    if (req->response == NULL) {
        log_error("out of memory creating a response");
        free_cls(cls);
        return;
    }
    MHD_add_response_header(req->response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(req->response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    req->status = status;
}

void reply_json_text(struct request *req, int status, const char *text)
{
    /* A final newline: a reply read with curl in a terminal ends its line. */
    size_t n = strlen(text);
    char *line = malloc(n + 2);
    if (line == NULL) {
        reply_raw(req, status, "application/json", text, n);
        return;
    }
    memcpy(line, text, n);
    line[n] = '\n';
    reply_raw(req, status, "application/json", line, n + 1);
    free(line);
}

void reply_json(struct request *req, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : strdup("{}");
    json_decref(body);
    if (text == NULL) {
        reply_error(req, E_INTERNAL, NULL, NULL);
        return;
    }
    reply_json_text(req, status, text);
    free(text);
}

void reply_db_error(struct request *req, enum db_status st)
{
    reply_error(req, st == DB_UNAVAILABLE ? E_DATABASE_UNAVAILABLE : E_INTERNAL, NULL, NULL);
}

void reply_header(struct request *req, const char *name, const char *value)
{
    if (req->response != NULL)
        MHD_add_response_header(req->response, name, value);
}

void reply_error(struct request *req, enum err e, const char *field, const char *fmt, ...)
{
    const struct err_info *info = err_info(e);
    char message[512];
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
    } else {
        snprintf(message, sizeof message, "%s", info->message);
    }
    json_t *err = json_pack("{s:s, s:s}", "code", info->code, "message", message);
    if (err != NULL && field != NULL && *field != '\0')
        json_object_set_new(err, "field", json_string(field));
    json_t *body = err ? json_pack("{s:o}", "error", err) : NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    /* Out of memory: still answer, with the fixed text of the error. */
    reply_json_text(req, info->status,
                    text ? text
                         : "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}");
    free(text);
    if (info->status == 503 && req->response != NULL)
        MHD_add_response_header(req->response, MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

/* ---- request accessors -------------------------------------------------------------------- */

const char *request_query(struct request *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *request_header(struct request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

bool request_page(struct request *req, int *limit, const char **after)
{
    const char *l = request_query(req, "limit"), *a = request_query(req, "after");
    *limit = 100;
    *after = a ? a : "";
    if (l != NULL) {
        uint64_t v; /* one spelling per number: no sign, space or leading zero */
        if (!cpx_decimal_parse(l, &v) || v < 1 || v > 1000) {
            reply_error(req, E_INVALID_QUERY, "limit", "limit must be an integer from 1 to 1000");
            return false;
        }
        *limit = (int)v;
    }
    if (strlen(*after) >= CPX_ID_MAX) {
        reply_error(req, E_INVALID_QUERY, "after", "after is not a cursor this API gave out");
        return false;
    }
    return true;
}

bool request_query_u64(struct request *req, const char *key, uint64_t *out)
{
    const char *v = request_query(req, key);
    if (v == NULL || cpx_decimal_parse(v, out))
        return true;
    reply_error(req, E_INVALID_QUERY, key, "%s must be a whole number from 0 to 2^63-1", key);
    return false;
}

bool request_parse(struct request *req, const struct spec *spec, void *dest)
{
    struct spec_error err;
    json_t *empty = req->json ? NULL : json_object();
    bool ok = spec_parse(req->json ? req->json : empty, spec, dest, &err);
    json_decref(empty);
    if (!ok)
        reply_error(req, err.code, err.field, "%s", err.message);
    return ok;
}

/* ---- dispatch ----------------------------------------------------------------------------- */

/* Is the Content-Type application/json (parameters such as charset allowed)? */
static bool is_json_type(const char *ct)
{
    static const char want[] = "application/json";
    if (ct == NULL || strncasecmp(ct, want, sizeof want - 1) != 0)
        return false;
    char next = ct[sizeof want - 1];
    return next == '\0' || next == ';' || next == ' ';
}

/* Runs the checks every request passes, then its handler. Answers exactly once. */
static void dispatch(struct request *req)
{
    if (req->too_large) {
        reply_error(req, E_BODY_TOO_LARGE, NULL, "The body is larger than %lld bytes.",
                    (long long)req->srv->cfg->max_body);
        return;
    }
    for (const char *t = req->target; *t != '\0'; t++)
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f) {
            reply_error(req, E_INVALID_TARGET, NULL,
                        "The request target holds the byte 0x%02x; percent-encode it.",
                        (unsigned char)*t);
            return;
        }
    char allow[64];
    switch (route_find(req->method, req->target, req->path_len, &req->route, req->params, allow)) {
    case ROUTE_NO_PATH: reply_error(req, E_NOT_FOUND, NULL, NULL); return;
    case ROUTE_WRONG_METHOD:
        reply_error(req, E_METHOD_NOT_ALLOWED, NULL, "This endpoint takes %s.", allow);
        if (req->response != NULL)
            MHD_add_response_header(req->response, MHD_HTTP_HEADER_ALLOW, allow);
        return;
    case ROUTE_FOUND: break;
    }
    const struct route *route = &routes[req->route];
    if (req->body_len > 0) {
        if (!is_json_type(request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE))) {
            reply_error(req, E_UNSUPPORTED_MEDIA_TYPE, NULL, NULL);
            return;
        }
        json_error_t jerr;
        req->json = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (req->json == NULL || !json_is_object(req->json)) {
            if (req->json == NULL)
                reply_error(req, E_MALFORMED_JSON, NULL, "The body is not valid JSON: %s (at %d).",
                            jerr.text, jerr.position);
            else
                reply_error(req, E_MALFORMED_JSON, NULL, "The body must be a JSON object.");
            return;
        }
    }
    if (!auth_request(req, route))
        return;
    route->handler(req);
    if (req->suspended) /* another thread answers it; req may already be answered */
        return;
    if (req->response == NULL) {
        log_error("%s: handler gave no answer", route->name);
        reply_error(req, E_INTERNAL, NULL, NULL);
    }
}

/* Appends a piece of body; beyond the cap only notes that it is too large. */
static void take_body(struct request *req, const char *data, size_t len)
{
    size_t max = (size_t)req->srv->cfg->max_body;
    if (req->too_large || len > max - req->body_len) {
        req->too_large = true;
        return;
    }
    if (req->body_len + len + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 1024;
        while (cap < req->body_len + len + 1)
            cap *= 2;
        char *bigger = realloc(req->body, cap);
        if (bigger == NULL) {
            req->too_large = true;
            return;
        }
        req->body = bigger;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
}

/* Queues req's reply (answering 500 if there is none), once. */
static enum MHD_Result send_reply(struct request *req)
{
    if (req->queued)
        return MHD_YES;
    req->queued = true;
    if (req->response == NULL)
        reply_error(req, E_INTERNAL, NULL, NULL);
    if (req->response == NULL)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(req->conn, (unsigned)req->status, req->response);
    MHD_destroy_response(req->response);
    req->response = NULL;
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **ctx)
{
    (void)url;
    (void)version;
    struct request *req = *ctx;
    if (req == NULL)
        return MHD_NO; /* the URI callback ran out of memory: drop the connection */
    if (!req->started) {
        req->started = true;
        req->srv = cls;
        req->conn = conn;
        req->method = method;
        req->route = nroutes;
        /* A declared length far over the cap is refused at once, before reading any of it; the
         * connection then closes and the client may not see the reply. One moderately over
         * is read and dropped, so that the client reliably gets its 413. */
        const char *cl = request_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long declared = cl ? strtoull(cl, NULL, 10) : 0;
        if (declared > (unsigned long long)req->srv->cfg->max_body) {
            req->too_large = true;
            if (declared > DISCARD_MAX) {
                dispatch(req);
                return send_reply(req);
            }
        }
        return MHD_YES;
    }
    if (req->queued) {
        *upload_data_size = 0; /* answered early (413): the rest of the body is ignored */
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        take_body(req, upload_data, *upload_data_size);
        req->received += *upload_data_size;
        *upload_data_size = 0;
        if (req->too_large && req->received > DISCARD_MAX) {
            dispatch(req); /* stop reading an endless body: answer now and close */
            return send_reply(req);
        }
        return MHD_YES;
    }
    if (!req->dispatched) {
        req->dispatched = true;
        dispatch(req);
        if (req->suspended) /* the sequencer answers it, then resumes the connection */
            return MHD_YES;
    }
    if (req->deferred != NULL) {
        json_t *body = req->deferred;
        req->deferred = NULL;
        reply_json(req, req->deferred_status, body);
    }
    return send_reply(req);
}

void request_suspend(struct request *req)
{
    req->suspended = true;
    MHD_suspend_connection(req->conn);
}

void reply_json_deferred(struct request *req, int status, json_t *body)
{
    json_decref(req->deferred);
    req->deferred = body;
    req->deferred_status = status;
    req->status = status;
}

void request_resume(struct request *req)
{
    MHD_resume_connection(req->conn);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    struct request *req = calloc(1, sizeof *req);
    if (req == NULL)
        return NULL;
    req->target = strdup(uri);
    if (req->target == NULL) {
        free(req);
        return NULL;
    }
    req->path_len = strcspn(req->target, "?");
    req->started_ns = mono_ns();
    return req;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **ctx,
                         enum MHD_RequestTerminationCode why)
{
    (void)conn;
    struct server *srv = cls;
    struct request *req = *ctx;
    if (req == NULL)
        return;
    if (req->status != 0)
        metrics_observe(srv->metrics, req->route, req->status, mono_ns() - req->started_ns);
    if (why != MHD_REQUEST_TERMINATED_COMPLETED_OK && req->status != 0)
        log_debug("%s %s: connection ended before the reply was sent (%d)", req->method,
                  req->target, (int)why);
    if (req->response != NULL)
        MHD_destroy_response(req->response);
    json_decref(req->json);
    json_decref(req->deferred);
    free(req->body);
    free(req->target);
    free(req);
    *ctx = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    log_debug("microhttpd: %s", line);
}

bool http_start(struct server *srv)
{
    const struct config *cfg = srv->cfg;
    /* libmicrohttpd may keep pointers to the PEM texts: they live until http_stop. */
    char *cert = srv->tls_cert_pem = read_file(cfg->tls_cert, 1 << 20, NULL);
    char *key = srv->tls_key_pem = read_file(cfg->tls_key, 1 << 20, NULL);
    bool ok = false;
    if (cert == NULL || key == NULL) {
        log_error("cannot read the TLS %s %s: %s", cert ? "key" : "certificate",
                  cert ? cfg->tls_key : cfg->tls_cert, strerror(errno));
        goto done;
    }
    struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port) };
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)cfg->port) };
    const struct sockaddr *addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_AUTO;
    if (inet_pton(AF_INET, cfg->listen, &in4.sin_addr) == 1) {
        addr = (const struct sockaddr *)&in4;
    } else if (inet_pton(AF_INET6, cfg->listen, &in6.sin6_addr) == 1) {
        addr = (const struct sockaddr *)&in6;
        flags |= MHD_USE_IPv6;
    } else {
        log_error("--listen %s is not an IPv4 or IPv6 address", cfg->listen);
        goto done;
    }
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, addr,
        MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)cfg->threads, MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
        NULL, MHD_OPTION_END);
    if (srv->daemon == NULL) {
        log_error("cannot listen on %s port %lld (in use? certificate and key valid?)", cfg->listen,
                  (long long)cfg->port);
        goto done;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : (uint16_t)cfg->port;
    ok = true;
done:
    if (!ok)
        http_stop(srv);
    return ok;
}

void http_stop(struct server *srv)
{
    if (srv->daemon != NULL)
        MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
    free(srv->tls_cert_pem);
    free(srv->tls_key_pem);
    srv->tls_cert_pem = srv->tls_key_pem = NULL;
}
