/*
 * The endpoint the exchange delivers jobs to (docs/delivery.md §2): `POST <any path>` with a
 * job envelope signed by the exchange's ledger key. The listing's `endpoint` may name any path:
 * the signature covers the path, so the provider only needs to check it.
 *
 * Checks, in order: the signature (401), the body (400), that the agreement is ours (403). Then
 * the delivery is looked up: new, it is written to the state file before it is answered, so an
 * acceptance the exchange holds is never one the provider forgot; seen before, it is answered
 * with the same acceptance and not run again. `GET /healthz` answers {"status":"ok"}.
 *
 * libmicrohttpd runs one thread for all connections: envelopes are small and rare.
 */
#include "clients/cpx-provider/provider.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BODY_MAX (1u << 20) /* an envelope is the agreement and a job of at most 64 KiB */

/* One request while it is read: the target as received (the signature covers it) and body. */
struct req {
    char *target;
    char *body;
    size_t len;
    bool started;
    bool too_large;
};

/* What to answer. */
struct answer {
    unsigned status;
    char *body;                          /* malloc'd */
    char signature[CPX_AUTH_HEADER_MAX]; /* CPX-Signature value, "" for none */
};

static void refuse(struct answer *a, unsigned status, const char *code, const char *message)
{
    json_t *body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
    a->status = status;
    a->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
}

/* Takes a new job: written to the state file before the exchange hears of it, then started.
 * Returns false (and forgets it) when either fails. Called with p->lock held. */
static bool take(struct provider *p, const struct envelope *env)
{
    struct job *j = jobs_add(p, env);
    if (j == NULL || !jobs_save(p))
        goto fail;
    if (worker_start(p, j))
        return true;
fail:
    if (j != NULL) {
        jobs_remove(p, j);
        jobs_save(p);
    }
    return false;
}

/* Answers a checked envelope: the same acceptance for the same delivery, a new job otherwise. */
static void answer_envelope(struct provider *p, const struct envelope *env, struct answer *a)
{
    pthread_mutex_lock(&p->lock);
    struct job *j = jobs_find(p, env->delivery, env->agreement);
    const char *conflict = NULL;
    bool taken = true;
    if (j != NULL && strcmp(j->delivery, env->delivery) != 0)
        conflict = "this agreement was delivered before under another delivery id";
    else if (j != NULL && strcmp(j->agreement, env->agreement) != 0)
        conflict = "this delivery id was used before for another agreement";
    else if (j != NULL)
        plog("duplicate", "delivery=%s agreement=%s: the same acceptance again, not run twice",
             env->delivery, env->agreement);
    else if ((taken = take(p, env)))
        plog("accepted", "delivery=%s agreement=%s devices=%lld job=%s", env->delivery,
             env->agreement, (long long)env->devices, env->description ? "given" : "none");
    pthread_mutex_unlock(&p->lock);
    if (!taken) {
        refuse(a, 503, "unavailable", "the provider cannot take the job now; try again");
        return;
    }
    if (conflict != NULL) {
        plog("refused", "delivery=%s agreement=%s: %s", env->delivery, env->agreement, conflict);
        refuse(a, 409, "delivery_conflict", conflict);
        return;
    }
    a->body = acceptance_body(env->agreement, env->delivery);
    if (a->body == NULL ||
        !acceptance_sign(&p->key, env->delivery, now_ms() / 1000, a->body, a->signature)) {
        free(a->body);
        a->body = NULL;
        refuse(a, 500, "internal", "cannot sign the acceptance");
        return;
    }
    a->status = 200;
}

/* Checks and answers one complete request. */
static void handle(struct provider *p, const char *method, const char *authz, struct req *q,
                   struct answer *a)
{
    if (strcmp(method, "GET") == 0 && strcmp(q->target, "/healthz") == 0) {
        a->status = 200;
        a->body = strdup("{\"status\":\"ok\"}");
        return;
    }
    if (strcmp(method, "POST") != 0) {
        refuse(a, 405, "method_not_allowed", "deliver jobs with POST");
        return;
    }
    if (q->too_large) {
        refuse(a, 413, "body_too_large", "an envelope is at most 1 MiB");
        return;
    }
    const char *code = envelope_check_auth(p->exchange_pk, authz, q->target, q->body ? q->body : "",
                                           q->len, now_ms() / 1000);
    if (code != NULL) {
        plog("refused", "POST %s: 401 %s", q->target, code);
        refuse(a, 401, code, "not an envelope signed by the exchange (docs/delivery.md §2)");
        return;
    }
    struct envelope env;
    char why[ENVELOPE_WHY_MAX];
    if ((code = envelope_parse(q->body ? q->body : "", q->len, &env, why)) != NULL) {
        plog("refused", "POST %s: 400 %s: %s", q->target, code, why);
        refuse(a, 400, code, why);
        return;
    }
    plog("received", "delivery=%s agreement=%s attempt=%lld", env.delivery, env.agreement,
         (long long)env.attempt);
    if (strcmp(env.provider, p->key.identity) != 0) {
        plog("refused", "delivery=%s: agreement %s is %s's, not ours", env.delivery, env.agreement,
             env.provider);
        refuse(a, 403, "wrong_provider", "the agreement names another provider");
    } else {
        answer_envelope(p, &env, a);
    }
    envelope_free(&env);
}

static enum MHD_Result send_answer(struct MHD_Connection *conn, struct answer *a)
{
    const char *text = a->body ? a->body : "{\"error\":{\"code\":\"internal\"}}";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    free(a->body);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (a->signature[0] != '\0')
        MHD_add_response_header(r, "CPX-Signature", a->signature);
    enum MHD_Result ret = MHD_queue_response(conn, a->status ? a->status : 500, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **ctx)
{
    (void)url; /* decoded and without its query: the signature needs q->target instead */
    (void)version;
    struct req *q = *ctx;
    if (q == NULL)
        return MHD_NO;
    if (!q->started) {
        q->started = true;
        return MHD_YES;
    }
    if (*size > 0) {
        char *bigger =
            q->too_large || q->len + *size > BODY_MAX ? NULL : realloc(q->body, q->len + *size + 1);
        if (bigger == NULL) {
            q->too_large = true; /* read and drop the rest, then answer 413 */
        } else {
            q->body = bigger;
            memcpy(q->body + q->len, data, *size);
            q->len += *size;
            q->body[q->len] = '\0';
        }
        *size = 0;
        return MHD_YES;
    }
    struct answer a = { 0 };
    handle(cls, method, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"), q, &a);
    return send_answer(conn, &a);
}

/* The only place libmicrohttpd shows the request target exactly as sent. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    struct req *q = calloc(1, sizeof *q);
    if (q != NULL && (q->target = strdup(uri)) == NULL) {
        free(q);
        q = NULL;
    }
    return q;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **ctx,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    (void)why;
    struct req *q = *ctx;
    if (q != NULL) {
        free(q->target);
        free(q->body);
        free(q);
    }
    *ctx = NULL;
}

static char *read_pem(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = f ? calloc(1, BODY_MAX + 1) : NULL;
    size_t n = text ? fread(text, 1, BODY_MAX, f) : 0;
    if (f != NULL)
        fclose(f);
    if (text != NULL && (n == 0 || n == BODY_MAX)) {
        free(text);
        text = NULL;
    }
    if (text == NULL)
        plog("error", "cannot read %s: %s", path, f ? "empty or too large" : strerror(errno));
    return text;
}

bool endpoint_start(struct provider *p, const char *address, unsigned port, const char *cert,
                    const char *tls_key, unsigned *bound_port)
{
    struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
    const struct sockaddr *addr = (const struct sockaddr *)&in4;
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG | MHD_USE_AUTO;
    if (inet_pton(AF_INET6, address, &in6.sin6_addr) == 1) {
        addr = (const struct sockaddr *)&in6;
        flags |= MHD_USE_IPv6;
    } else if (inet_pton(AF_INET, address, &in4.sin_addr) != 1) {
        plog("error", "--listen: %s is not an IPv4 or IPv6 address", address);
        return false;
    }
    /* libmicrohttpd keeps pointers to the PEM texts while it runs */
    p->tls_cert_pem = read_pem(cert);
    p->tls_key_pem = read_pem(tls_key);
    if (p->tls_cert_pem == NULL || p->tls_key_pem == NULL)
        return false;
    p->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, p, MHD_OPTION_SOCK_ADDR, addr,
        MHD_OPTION_HTTPS_MEM_CERT, p->tls_cert_pem, MHD_OPTION_HTTPS_MEM_KEY, p->tls_key_pem,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (p->daemon == NULL) {
        plog("error", "cannot listen on %s port %u (in use? certificate and key valid?)", address,
             port);
        return false;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(p->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = info ? info->port : port;
    return true;
}

void endpoint_stop(struct provider *p)
{
    if (p->daemon != NULL)
        MHD_stop_daemon(p->daemon);
    p->daemon = NULL;
    free(p->tls_cert_pem);
    free(p->tls_key_pem);
    p->tls_cert_pem = p->tls_key_pem = NULL;
}
