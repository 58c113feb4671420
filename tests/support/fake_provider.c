/*
 * A provider's job endpoint for tests: see fake_provider.h.
 */
#include "tests/support/fake_provider.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clients/common/client.h"
#include "clients/common/vkey.h"
#include "ledger/codec.h"
#include "ledger/crypto.h"
#include "ledger/keyfile.h"
#include "ledger/reqsig.h"

#define FP_PATH      "/cpx/jobs"
#define FP_BODY_MAX  (1 << 20) /* longest envelope read */
#define FP_CLOCK_OFF 300       /* seconds an envelope's ts may be off */

/* What the endpoint knows of one delivery id. */
struct fp_delivery {
    char id[CPX_ID_MAX];        /* dlv_... */
    char agreement[CPX_ID_MAX]; /* agr_... of its first valid envelope */
    int envelopes;              /* valid envelopes received */
    bool started;               /* the job was started */
    json_t *last;               /* the last valid envelope's body */
};

struct fake_provider {
    pthread_mutex_t ctl; /* serialises mode changes (starting and stopping the daemon) */
    pthread_mutex_t mu;  /* guards everything below it */
    struct MHD_Daemon *daemon;
    bool stopping; /* the daemon is being stopped: slow answers give up */
    enum fake_mode mode;
    int slow_ms;
    struct fp_delivery *dl;
    size_t n, cap;
    int total, bad, misdirected;
    /* set at start, read-only after */
    uint16_t port;
    char url[64];
    char *cert_pem, *key_pem;
    struct cpx_keyfile key;   /* the provider's key and identity */
    struct cpx_keypair other; /* a key that is not the provider's (FAKE_BAD_SIGNATURE) */
    uint8_t exchange_pk[CPX_ED25519_PK_LEN];
};

/* ---- state --------------------------------------------------------------------------------- */

/* The record of a delivery id (mu held), created when create; NULL when absent or no memory. */
static struct fp_delivery *delivery_of(const struct fake_provider *cfp, const char *id, bool create)
{
    struct fake_provider *fp = (struct fake_provider *)cfp;
    for (size_t i = 0; i < fp->n; i++)
        if (strcmp(fp->dl[i].id, id) == 0)
            return &fp->dl[i];
    if (!create)
        return NULL;
    if (fp->n == fp->cap) {
        size_t cap = fp->cap ? fp->cap * 2 : 16;
        struct fp_delivery *bigger = realloc(fp->dl, cap * sizeof *bigger);
        if (bigger == NULL)
            return NULL;
        fp->dl = bigger;
        fp->cap = cap;
    }
    struct fp_delivery *d = &fp->dl[fp->n++];
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "%s", id);
    return d;
}

/* ---- one request --------------------------------------------------------------------------- */

/* A request being received: its body so far. */
struct fp_request {
    char *body;
    size_t len;
    bool too_long;
};

/* What to send back. */
struct fp_answer {
    unsigned status; /* 0: close the connection without answering */
    char body[256];
    char signature[CPX_AUTH_HEADER_MAX];
};

static void answer_text(struct fp_answer *a, unsigned status, const char *text)
{
    a->status = status;
    snprintf(a->body, sizeof a->body, "{\"error\":\"%s\"}", text);
}

/* The signed acceptance of delivery dlv naming agreement agr, signed by kp as the provider. */
static void acceptance(const struct fake_provider *fp, const struct cpx_keypair *kp,
                       const char *agr, const char *dlv, struct fp_answer *a)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/deliveries/%s/acceptance", dlv);
    a->status = 200;
    snprintf(a->body, sizeof a->body, "{\"agreement\":\"%s\",\"delivery\":\"%s\"}", agr, dlv);
    struct cpx_auth auth = { 0 };
    snprintf(auth.id, sizeof auth.id, "%s", fp->key.identity);
    if (!cpx_reqsig_sign(kp, "POST", target, (int64_t)time(NULL), a->body, strlen(a->body),
                         &auth)) {
        answer_text(a, 500, "cannot sign");
        return;
    }
    cpx_auth_format(&auth, a->signature);
}

/* True when the envelope's job is null, or an object whose description hashes to its sha256. */
static bool job_ok(const json_t *job)
{
    if (json_is_null(job))
        return true;
    const char *desc = json_string_value(json_object_get(job, "description"));
    const char *hex = json_string_value(json_object_get(job, "sha256"));
    if (!json_is_object(job) || desc == NULL || hex == NULL || strlen(hex) != 64)
        return false;
    uint8_t want[CPX_SHA256_LEN], got[CPX_SHA256_LEN];
    if (!cpx_hex_decode(hex, 64, want, sizeof want))
        return false;
    cpx_sha256(desc, json_string_length(json_object_get(job, "description")), got);
    return memcmp(want, got, sizeof got) == 0;
}

/* Checks an envelope and decides the answer. Returns the ms to wait before answering. */
static int handle(struct fake_provider *fp, struct MHD_Connection *conn, const char *url,
                  const char *method, const struct fp_request *q, struct fp_answer *a)
{
    if (strcmp(method, "POST") != 0 || strcmp(url, FP_PATH) != 0) {
        answer_text(a, 404, "not here");
        return 0;
    }
    /* The exchange's signature over POST, the target, ts and the body. */
    const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    struct cpx_auth auth;
    bool signed_ok = authz != NULL && !q->too_long &&
                     cpx_auth_parse(authz, strlen(authz), &auth) == CPX_AUTH_OK &&
                     strcmp(auth.id, "exchange") == 0 &&
                     auth.ts > (int64_t)time(NULL) - FP_CLOCK_OFF &&
                     auth.ts < (int64_t)time(NULL) + FP_CLOCK_OFF &&
                     cpx_reqsig_verify(fp->exchange_pk, "POST", url, auth.ts,
                                       q->body ? q->body : "", q->len, auth.sig);
    const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    json_t *env = signed_ok ? json_loadb(q->body, q->len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    json_t *agreement = json_object_get(env, "agreement");
    const char *dlv = json_string_value(json_object_get(env, "delivery"));
    const char *agr = json_string_value(json_object_get(agreement, "id"));
    const char *prov = json_string_value(json_object_get(agreement, "provider"));
    bool body_ok = env != NULL && ctype != NULL && strcmp(ctype, "application/json") == 0 &&
                   dlv != NULL && strncmp(dlv, "dlv_", 4) == 0 && strlen(dlv) < CPX_ID_MAX &&
                   agr != NULL && strncmp(agr, "agr_", 4) == 0 && strlen(agr) < CPX_ID_MAX &&
                   prov != NULL && json_is_integer(json_object_get(env, "attempt")) &&
                   json_is_string(json_object_get(env, "deliver_by")) &&
                   job_ok(json_object_get(env, "job"));
    pthread_mutex_lock(&fp->mu);
    enum fake_mode mode = fp->mode;
    int wait_ms = 0;
    if (!body_ok) {
        fp->bad++;
        answer_text(a, signed_ok ? 400 : 401, signed_ok ? "malformed envelope" : "unsigned");
    } else if (strcmp(prov, fp->key.identity) != 0) {
        fp->misdirected++;
        answer_text(a, 409, "not my agreement");
    } else {
        struct fp_delivery *d = delivery_of(fp, dlv, true);
        if (d == NULL) {
            answer_text(a, 503, "out of memory");
        } else {
            fp->total++;
            d->envelopes++;
            if (d->agreement[0] == '\0')
                snprintf(d->agreement, sizeof d->agreement, "%s", agr);
            json_decref(d->last);
            d->last = json_incref(env);
            if (mode != FAKE_STATUS_500)
                d->started = true; /* once per delivery id, however often it comes */
            switch (mode) {
            case FAKE_STATUS_500: answer_text(a, 500, "not today"); break;
            case FAKE_BAD_SIGNATURE: acceptance(fp, &fp->other, agr, dlv, a); break;
            case FAKE_WRONG_AGREEMENT:
                acceptance(fp, &fp->key.kp, "agr_999999999999", dlv, a);
                break;
            case FAKE_DROP: a->status = 0; break;
            default: /* FAKE_ACCEPT, FAKE_SLOW */
                wait_ms = mode == FAKE_SLOW ? fp->slow_ms : 0;
                acceptance(fp, &fp->key.kp, agr, dlv, a);
                break;
            }
        }
    }
    pthread_mutex_unlock(&fp->mu);
    json_decref(env);
    return wait_ms;
}

/* Sleeps ms unless the daemon is being stopped; false when it is. */
static bool slow_wait(struct fake_provider *fp, int ms)
{
    for (int waited = 0; waited < ms; waited += 10) {
        pthread_mutex_lock(&fp->mu);
        bool stopping = fp->stopping;
        pthread_mutex_unlock(&fp->mu);
        if (stopping)
            return false;
        struct timespec t = { 0, 10 * 1000 * 1000 };
        nanosleep(&t, NULL);
    }
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    struct fake_provider *fp = cls;
    struct fp_request *q = *con_cls;
    if (q == NULL) {
        q = calloc(1, sizeof *q);
        if (q == NULL)
            return MHD_NO;
        *con_cls = q;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (q->len + *upload_size > FP_BODY_MAX) {
            q->too_long = true;
        } else {
            char *bigger = realloc(q->body, q->len + *upload_size + 1);
            if (bigger == NULL)
                return MHD_NO;
            memcpy(bigger + q->len, upload, *upload_size);
            q->body = bigger;
            q->len += *upload_size;
            q->body[q->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    struct fp_answer a = { 0 };
    int wait_ms = handle(fp, conn, url, method, q, &a);
    if (wait_ms > 0 && !slow_wait(fp, wait_ms))
        return MHD_NO;
    if (a.status == 0)
        return MHD_NO; /* the answer is lost: the connection closes */
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(a.body), a.body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (a.signature[0] != '\0')
        MHD_add_response_header(r, "CPX-Signature", a.signature);
    enum MHD_Result ret = MHD_queue_response(conn, a.status, r);
    MHD_destroy_response(r);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    (void)why;
    struct fp_request *q = *con_cls;
    if (q != NULL) {
        free(q->body);
        free(q);
    }
    *con_cls = NULL;
}

/* ---- the daemon ---------------------------------------------------------------------------- */

/* Starts listening on fp->port (0: a free one, then stored); NULL when it cannot. */
static struct MHD_Daemon *listen_on(struct fake_provider *fp)
{
    struct sockaddr_in addr = { 0 };
    addr.sin_family = AF_INET;
    addr.sin_port = htons(fp->port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* The threads libmicrohttpd starts inherit this mask: a write to a connection the exchange
     * dropped (a slow answer after its timeout, a killed cpxd) must not raise SIGPIPE. */
    sigset_t pipe, old;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &old);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_TLS |
            MHD_USE_AUTO,
        fp->port, NULL, NULL, on_request, fp, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_HTTPS_MEM_CERT, fp->cert_pem, MHD_OPTION_HTTPS_MEM_KEY, fp->key_pem,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (d != NULL && fp->port == 0) {
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        fp->port = info ? info->port : 0;
    }
    return d;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("fake provider: %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0, n;
    char *text = malloc(cap);
    assert_non_null(text);
    while ((n = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            cap *= 2;
            text = realloc(text, cap);
            assert_non_null(text);
        }
    }
    fclose(f);
    text[len] = '\0';
    return text;
}

struct fake_provider *fake_provider_start(const char *provider_key_path,
                                          const char *exchange_vkey_path)
{
    const char *var = getenv("CPX_TEST_VAR");
    if (var == NULL)
        fail_msg("CPX_TEST_VAR is not set: run the tests with `make test`");
    struct fake_provider *fp = calloc(1, sizeof *fp);
    assert_non_null(fp);
    pthread_mutex_init(&fp->ctl, NULL);
    pthread_mutex_init(&fp->mu, NULL);
    if (!keyfile_read(provider_key_path, &fp->key))
        fail_msg("fake provider: cannot read the key file %s", provider_key_path);
    struct cpx_note_verifier v;
    if (!exchange_key_read("fake provider", exchange_vkey_path, &v))
        fail_msg("fake provider: cannot read the verifier key %s", exchange_vkey_path);
    memcpy(fp->exchange_pk, v.pk, sizeof fp->exchange_pk);
    cpx_keypair_generate(&fp->other);
    char path[512];
    snprintf(path, sizeof path, "%s/tls/cert.pem", var);
    fp->cert_pem = read_file(path);
    snprintf(path, sizeof path, "%s/tls/key.pem", var);
    fp->key_pem = read_file(path);
    fp->mode = FAKE_ACCEPT;
    fp->daemon = listen_on(fp);
    if (fp->daemon == NULL || fp->port == 0)
        fail_msg("fake provider: cannot listen on 127.0.0.1");
    snprintf(fp->url, sizeof fp->url, "https://127.0.0.1:%u" FP_PATH, (unsigned)fp->port);
    return fp;
}

const char *fake_provider_url(const struct fake_provider *fp)
{
    return fp->url;
}

/* Stops the daemon (ctl held, mu not). */
static void go_down(struct fake_provider *fp)
{
    pthread_mutex_lock(&fp->mu);
    struct MHD_Daemon *d = fp->daemon;
    fp->daemon = NULL;
    fp->stopping = true;
    pthread_mutex_unlock(&fp->mu);
    if (d != NULL)
        MHD_stop_daemon(d); /* waits for the connections' threads */
    pthread_mutex_lock(&fp->mu);
    fp->stopping = false;
    pthread_mutex_unlock(&fp->mu);
}

void fake_provider_mode(struct fake_provider *fp, enum fake_mode m, int slow_ms)
{
    pthread_mutex_lock(&fp->ctl);
    pthread_mutex_lock(&fp->mu);
    fp->mode = m;
    fp->slow_ms = slow_ms;
    bool up = fp->daemon != NULL;
    pthread_mutex_unlock(&fp->mu);
    if (m == FAKE_DOWN && up) {
        go_down(fp);
    } else if (m != FAKE_DOWN && !up) {
        struct MHD_Daemon *d = NULL;
        for (int i = 0; i < 100 && d == NULL; i++) { /* the port may take a moment to be free */
            d = listen_on(fp);
            if (d == NULL)
                usleep(50000);
        }
        pthread_mutex_lock(&fp->mu);
        fp->daemon = d;
        pthread_mutex_unlock(&fp->mu);
        if (d == NULL) {
            pthread_mutex_unlock(&fp->ctl);
            fail_msg("fake provider: cannot listen on port %u again", (unsigned)fp->port);
        }
    }
    pthread_mutex_unlock(&fp->ctl);
}

/* The integer f(d) of a delivery id under the lock, 0 when unknown. */
static int read_delivery(const struct fake_provider *cfp, const char *delivery, bool runs)
{
    struct fake_provider *fp = (struct fake_provider *)cfp;
    pthread_mutex_lock(&fp->mu);
    const struct fp_delivery *d = delivery_of(fp, delivery, false);
    int v = d == NULL ? 0 : runs ? (int)d->started : d->envelopes;
    pthread_mutex_unlock(&fp->mu);
    return v;
}

int fake_provider_envelopes(const struct fake_provider *fp, const char *delivery)
{
    return read_delivery(fp, delivery, false);
}

int fake_provider_runs(const struct fake_provider *fp, const char *delivery)
{
    return read_delivery(fp, delivery, true);
}

int fake_provider_agreement_runs(const struct fake_provider *cfp, const char *agreement)
{
    struct fake_provider *fp = (struct fake_provider *)cfp;
    int n = 0;
    pthread_mutex_lock(&fp->mu);
    for (size_t i = 0; i < fp->n; i++)
        n += fp->dl[i].started && strcmp(fp->dl[i].agreement, agreement) == 0;
    pthread_mutex_unlock(&fp->mu);
    return n;
}

/* One of the counters, under the lock. */
static int counter(const struct fake_provider *cfp, const int *field)
{
    struct fake_provider *fp = (struct fake_provider *)cfp;
    pthread_mutex_lock(&fp->mu);
    int v = *field;
    pthread_mutex_unlock(&fp->mu);
    return v;
}

int fake_provider_total_envelopes(const struct fake_provider *fp)
{
    return counter(fp, &fp->total);
}

int fake_provider_bad_envelopes(const struct fake_provider *fp)
{
    return counter(fp, &fp->bad);
}

int fake_provider_misdirected(const struct fake_provider *fp)
{
    return counter(fp, &fp->misdirected);
}

json_t *fake_provider_last_envelope(const struct fake_provider *cfp, const char *delivery)
{
    struct fake_provider *fp = (struct fake_provider *)cfp;
    pthread_mutex_lock(&fp->mu);
    const struct fp_delivery *d = delivery_of(fp, delivery, false);
    json_t *copy = d != NULL && d->last != NULL ? json_deep_copy(d->last) : NULL;
    pthread_mutex_unlock(&fp->mu);
    return copy;
}

void fake_provider_stop(struct fake_provider *fp)
{
    if (fp == NULL)
        return;
    pthread_mutex_lock(&fp->ctl);
    go_down(fp);
    pthread_mutex_unlock(&fp->ctl);
    for (size_t i = 0; i < fp->n; i++)
        json_decref(fp->dl[i].last);
    free(fp->dl);
    free(fp->cert_pem);
    free(fp->key_pem);
    cpx_keypair_wipe(&fp->key.kp);
    cpx_keypair_wipe(&fp->other);
    pthread_mutex_destroy(&fp->mu);
    pthread_mutex_destroy(&fp->ctl);
    free(fp);
}
