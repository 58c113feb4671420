/*
 * bin/cpx-provider as the exchange sees it, without the exchange: the test signs envelopes with
 * a throwaway exchange key and POSTs them over HTTPS to a cpx-provider it started, and plays the
 * exchange's side of metering itself (GET /v1/agreements/{id}, POST …/usage) with the rules of
 * docs/delivery.md §3, checking every report's signature, window, capacity and overlap.
 *
 * It checks: refusals (401, 400, 403, 405), the signed acceptance, a delivery sent twice run
 * once, reports covering [started_at, ends_at] exactly, a lost answer retried with the same body
 * and Idempotency-Key, a 409 usage_overlaps followed by a re-read of metered_until, a clean stop
 * on SIGTERM that reports what ran, and a restart from --state that knows old deliveries and
 * resumes unfinished jobs. The binary is $CPX_TEST_BIN/cpx-provider (or $BIN, or bin/).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <ftw.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clients/common/client.h"
#include "ledger/checkpoint.h"
#include "ledger/codec.h"
#include "ledger/keyfile.h"
#include "ledger/reqsig.h"

#define PATH_LEN     512
#define MAX_REPORTS  16
#define NAGREEMENTS  2
#define WAIT_SECONDS 30 /* the longest any step may take before the test fails */

/* ---- the stand-in exchange ------------------------------------------------------------- */

struct report {
    int64_t start, end, device_seconds;
    bool final;
    char key[128]; /* its Idempotency-Key */
    char body[4096];
};

/* One agreement as the stand-in exchange keeps it. */
struct agreement {
    const char *id;
    int64_t devices;
    int length;         /* seconds from started_at to ends_at */
    const char *status; /* pending_delivery until the provider's second GET */
    int gets;           /* GETs so far */
    int64_t started_at, ends_at, metered_until;
    struct report reports[MAX_REPORTS];
    int nreports;       /* recorded reports */
    int posts;          /* usage POSTs received */
    int lose_answer_of; /* this POST is recorded but answered 503, as if its answer was lost */
    int overlap_on;     /* this POST is recorded but answered 409 usage_overlaps */
    int retried_same;   /* retries that came with the same key and body */
};

static struct {
    pthread_mutex_t lock;
    struct MHD_Daemon *daemon;
    unsigned port;
    uint8_t provider_pk[CPX_ED25519_PK_LEN];
    char provider_id[CPX_ID_MAX];
    struct agreement agreements[NAGREEMENTS];
    char failure[512]; /* the first breach of the contract the exchange saw */
} ex = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct {
    char dir[PATH_LEN / 2]; /* leaves room for the names of the files in it */
    char cert[PATH_LEN], tls_key[PATH_LEN], key[PATH_LEN], vkey[PATH_LEN];
    char state[PATH_LEN], runs[PATH_LEN], bin[PATH_LEN];
    struct cpx_keypair exchange; /* signs envelopes */
} t;

/* Notes the first breach (with ex.lock held). */
static void breach(const char *fmt, ...)
{
    if (ex.failure[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ex.failure, sizeof ex.failure, fmt, ap);
    va_end(ap);
}

struct mock_req {
    char target[256];
    char body[4096];
    size_t len;
    bool started;
};

static void fmt_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int64_t parse_time(const char *s)
{
    struct tm tm = { 0 };
    if (s == NULL || strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) == NULL)
        return -1;
    return (int64_t)timegm(&tm);
}

static struct agreement *find_agreement(const char *target, const char *suffix)
{
    for (int i = 0; i < NAGREEMENTS; i++) {
        char want[128];
        snprintf(want, sizeof want, "/v1/agreements/%s%s", ex.agreements[i].id, suffix);
        if (strcmp(target, want) == 0)
            return &ex.agreements[i];
    }
    return NULL;
}

/* GET /v1/agreements/{id}: pending at first, active from the second GET (the exchange recorded
 * the acceptance then), with what docs/delivery.md says the provider reads. */
static unsigned show_agreement(struct agreement *a, char *out, size_t cap)
{
    if (++a->gets >= 2 && strcmp(a->status, "pending_delivery") == 0) {
        a->status = "active";
        a->started_at = time(NULL);
        a->ends_at = a->started_at + a->length;
    }
    char started[32] = "", ends[32] = "", metered[32] = "";
    fmt_time(a->started_at, started);
    fmt_time(a->ends_at, ends);
    fmt_time(a->metered_until, metered);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "id", a->id, "provider", ex.provider_id,
                          "devices", (json_int_t)a->devices, "status", a->status);
    json_object_set_new(o, "started_at", a->started_at ? json_string(started) : json_null());
    json_object_set_new(o, "ends_at", a->ends_at ? json_string(ends) : json_null());
    json_object_set_new(o, "metered_until", a->metered_until ? json_string(metered) : json_null());
    char *text = json_dumps(o, JSON_COMPACT);
    snprintf(out, cap, "%s", text);
    free(text);
    json_decref(o);
    return 200;
}

static unsigned refuse(char *out, size_t cap, unsigned status, const char *code)
{
    snprintf(out, cap, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, code);
    return status;
}

/* POST /v1/agreements/{id}/usage, checked as docs/delivery.md §3 says. */
static unsigned take_usage(struct agreement *a, const struct mock_req *q, const char *idem,
                           char *out, size_t cap)
{
    int post = ++a->posts;
    for (int i = 0; idem != NULL && i < a->nreports; i++) {
        if (strcmp(a->reports[i].key, idem) != 0)
            continue;
        if (strcmp(a->reports[i].body, q->body) != 0)
            return refuse(out, cap, 409, "idempotency_key_reused");
        a->retried_same++;
        snprintf(out, cap, "{\"id\":\"use_%d\"}", i + 1);
        return 201; /* the first answer again */
    }
    if (strcmp(a->status, "active") != 0)
        return refuse(out, cap, 409, "agreement_not_active");
    json_t *b = json_loads(q->body, 0, NULL);
    int64_t start = parse_time(json_string_value(json_object_get(b, "period_start")));
    int64_t end = parse_time(json_string_value(json_object_get(b, "period_end")));
    int64_t used = json_integer_value(json_object_get(b, "device_seconds"));
    bool final = json_is_true(json_object_get(b, "final"));
    bool counted =
        json_is_integer(json_object_get(b, "device_seconds")) && json_object_size(b) == 3u + final;
    json_decref(b);
    char want_key[128];
    snprintf(want_key, sizeof want_key, "use-%s-%lld", a->id, (long long)start);
    if (!counted || idem == NULL || strcmp(idem, want_key) != 0)
        breach("report %s with Idempotency-Key %s", q->body, idem ? idem : "(none)");
    if (start < a->started_at || end > a->ends_at || start >= end || end > time(NULL)) {
        breach("report %s outside [%lld, %lld]", q->body, (long long)a->started_at,
               (long long)a->ends_at);
        return refuse(out, cap, 422, "usage_outside_window");
    }
    if (used < 0 || used > a->devices * (end - start)) {
        breach("report %s exceeds %lld devices", q->body, (long long)a->devices);
        return refuse(out, cap, 422, "usage_exceeds_capacity");
    }
    if (start < a->metered_until) {
        breach("report %s overlaps what is metered (until %lld)", q->body,
               (long long)a->metered_until);
        return refuse(out, cap, 409, "usage_overlaps");
    }
    if (a->nreports == MAX_REPORTS)
        return refuse(out, cap, 500, "internal");
    struct report *r = &a->reports[a->nreports++];
    *r = (struct report){ .start = start, .end = end, .device_seconds = used, .final = final };
    snprintf(r->key, sizeof r->key, "%s", want_key);
    snprintf(r->body, sizeof r->body, "%s", q->body);
    a->metered_until = end;
    if (final || end == a->ends_at)
        a->status = "completed"; /* the final report */
    if (post == a->lose_answer_of)
        return refuse(out, cap, 503, "database_unavailable");
    if (post == a->overlap_on)
        return refuse(out, cap, 409, "usage_overlaps");
    snprintf(out, cap, "{\"id\":\"use_%d\"}", a->nreports);
    return 201;
}

/* Checks the provider's signature, then answers. */
static unsigned exchange_answer(struct MHD_Connection *conn, const char *method,
                                const struct mock_req *q, char *out, size_t cap)
{
    const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    struct cpx_auth auth;
    if (authz == NULL || cpx_auth_parse(authz, strlen(authz), &auth) != CPX_AUTH_OK ||
        strcmp(auth.id, ex.provider_id) != 0 ||
        !cpx_reqsig_verify(ex.provider_pk, method, q->target, auth.ts, q->body, q->len, auth.sig)) {
        breach("%s %s not signed by the provider", method, q->target);
        return refuse(out, cap, 401, "bad_signature");
    }
    struct agreement *a;
    if (strcmp(method, "GET") == 0 && (a = find_agreement(q->target, "")) != NULL)
        return show_agreement(a, out, cap);
    if (strcmp(method, "POST") == 0 && (a = find_agreement(q->target, "/usage")) != NULL)
        return take_usage(
            a, q, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key"), out, cap);
    breach("unexpected %s %s", method, q->target);
    return refuse(out, cap, 404, "not_found");
}

static enum MHD_Result exchange_request(void *cls, struct MHD_Connection *conn, const char *url,
                                        const char *method, const char *version, const char *data,
                                        size_t *size, void **ctx)
{
    (void)cls;
    (void)url;
    (void)version;
    struct mock_req *q = *ctx;
    if (!q->started) {
        q->started = true;
        return MHD_YES;
    }
    if (*size > 0) {
        size_t n = *size < sizeof q->body - 1 - q->len ? *size : sizeof q->body - 1 - q->len;
        memcpy(q->body + q->len, data, n);
        q->len += n;
        q->body[q->len] = '\0';
        *size = 0;
        return MHD_YES;
    }
    char out[1024];
    pthread_mutex_lock(&ex.lock);
    unsigned status = exchange_answer(conn, method, q, out, sizeof out);
    pthread_mutex_unlock(&ex.lock);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(out), out, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static void *exchange_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    struct mock_req *q = calloc(1, sizeof *q);
    snprintf(q->target, sizeof q->target, "%s", uri);
    return q;
}

static void exchange_done(void *cls, struct MHD_Connection *conn, void **ctx,
                          enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    (void)why;
    free(*ctx);
    *ctx = NULL;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return strdup(text);
}

static void exchange_start(void)
{
    char *cert = slurp(t.cert), *key = slurp(t.tls_key);
    ex.daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_AUTO, 0, NULL,
                         NULL, exchange_request, NULL, MHD_OPTION_HTTPS_MEM_CERT, cert,
                         MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_URI_LOG_CALLBACK, exchange_uri,
                         NULL, MHD_OPTION_NOTIFY_COMPLETED, exchange_done, NULL, MHD_OPTION_END);
    assert_non_null(ex.daemon);
    ex.port = MHD_get_daemon_info(ex.daemon, MHD_DAEMON_INFO_BIND_PORT)->port;
    /* libmicrohttpd copies the PEM texts into GnuTLS credentials at start */
    free(cert);
    free(key);
}

/* ---- cpx-provider as a process ---------------------------------------------------------- */

struct provider_proc {
    pid_t pid;
    unsigned port;
    char log[PATH_LEN];
};

/* Starts cpx-provider with the common flags and `extra` (NULL-ended); learns its port. */
static void provider_start(struct provider_proc *pp, const char *log_name, const char *const *extra)
{
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%u", ex.port);
    snprintf(pp->log, sizeof pp->log, "%s/%s", t.dir, log_name);
    const char *argv[32] = { t.bin,  "--listen",       "127.0.0.1:0", "--cert",
                             t.cert, "--tls-key",      t.tls_key,     "--key",
                             t.key,  "--exchange",     url,           "--cacert",
                             t.cert, "--exchange-key", t.vkey };
    int n = 15;
    for (int i = 0; extra[i] != NULL; i++)
        argv[n++] = extra[i];
    int out[2];
    assert_int_equal(pipe(out), 0);
    pp->pid = fork();
    assert_true(pp->pid >= 0);
    if (pp->pid == 0) {
        FILE *log = fopen(pp->log, "a");
        if (log == NULL || dup2(out[1], 1) < 0 || dup2(fileno(log), 2) < 0)
            _exit(127);
        close(out[0]);
        execv(t.bin, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    char line[256] = "";
    if (fgets(line, sizeof line, f) == NULL ||
        sscanf(line, "listening on https://127.0.0.1:%u", &pp->port) != 1) {
        char *text = slurp(pp->log);
        fail_msg("cpx-provider did not start: %s", text);
    }
    fclose(f);
}

/* SIGTERMs it and returns its exit status (-1 when it did not stop in time). */
static int provider_stop(struct provider_proc *pp)
{
    kill(pp->pid, SIGTERM);
    for (int i = 0; i < WAIT_SECONDS * 10; i++) {
        int status;
        if (waitpid(pp->pid, &status, WNOHANG) == pp->pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(100000);
    }
    kill(pp->pid, SIGKILL);
    waitpid(pp->pid, NULL, 0);
    return -1;
}

/* How many lines of the provider's log have " event " in them. */
static int log_count(const struct provider_proc *pp, const char *event)
{
    char *text = slurp(pp->log), word[64];
    snprintf(word, sizeof word, " %s ", event);
    int n = 0;
    for (const char *p = text; (p = strstr(p, word)) != NULL; p++)
        n++;
    free(text);
    return n;
}

/* ---- the exchange's side of delivery ---------------------------------------------------- */

struct answer {
    long status;
    char body[2048];
    char signature[CPX_AUTH_HEADER_MAX];
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t len = strlen(a->body);
    snprintf(a->body + len, sizeof a->body - len, "%.*s", (int)(size * n), data);
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    static const char name[] = "CPX-Signature: ";
    if (size * n > sizeof name && strncasecmp(data, name, sizeof name - 1) == 0)
        snprintf(a->signature, sizeof a->signature, "%.*s",
                 (int)strcspn(data + sizeof name - 1, "\r\n"), data + sizeof name - 1);
    return size * n;
}

/* Sends METHOD target with body (NULL: none) and Authorization authz (NULL: none). */
static void send_to(const struct provider_proc *pp, const char *method, const char *target,
                    const char *body, const char *authz, struct answer *a)
{
    memset(a, 0, sizeof *a);
    char url[512], header[CPX_AUTH_HEADER_MAX + 32];
    snprintf(url, sizeof url, "https://127.0.0.1:%u%s", pp->port, target);
    CURL *c = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (authz != NULL) {
        snprintf(header, sizeof header, "Authorization: %s", authz);
        headers = curl_slist_append(headers, header);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_CAINFO, t.cert);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
}

/* The Authorization header the exchange sends: its ledger key over POST target ts body. */
static void sign_as(const struct cpx_keypair *kp, const char *id, const char *target,
                    const char *body, char out[CPX_AUTH_HEADER_MAX])
{
    struct cpx_auth auth = { 0 };
    snprintf(auth.id, sizeof auth.id, "%s", id);
    assert_true(cpx_reqsig_sign(kp, "POST", target, time(NULL), body, strlen(body), &auth));
    cpx_auth_format(&auth, out);
}

/* An envelope (canonical JSON) delivering agreement a to provider. */
static char *envelope(const struct agreement *a, const char *delivery, const char *provider,
                      const char *job)
{
    uint8_t digest[CPX_SHA256_LEN];
    char hex[2 * CPX_SHA256_LEN + 1], deliver_by[32];
    cpx_sha256(job, strlen(job), digest);
    cpx_hex_encode(digest, sizeof digest, hex);
    fmt_time(time(NULL) + 900, deliver_by);
    char *text;
    assert_true(asprintf(&text,
                         "{\"agreement\":{\"devices\":%lld,\"id\":\"%s\",\"provider\":\"%s\","
                         "\"status\":\"pending_delivery\"},\"attempt\":1,\"deliver_by\":\"%s\","
                         "\"delivery\":\"%s\",\"job\":{\"description\":\"%s\",\"sha256\":"
                         "\"%s\"}}",
                         (long long)a->devices, a->id, provider, deliver_by, delivery, job,
                         hex) > 0);
    return text;
}

/* Delivers an envelope as the exchange does; checks the acceptance is signed by the provider
 * over exactly its body. */
static void deliver(const struct provider_proc *pp, const char *body, const char *delivery,
                    struct answer *a)
{
    char authz[CPX_AUTH_HEADER_MAX];
    sign_as(&t.exchange, "exchange", "/cpx/jobs", body, authz);
    send_to(pp, "POST", "/cpx/jobs", body, authz, a);
    assert_int_equal(a->status, 200);
    struct cpx_auth auth;
    assert_int_equal(cpx_auth_parse(a->signature, strlen(a->signature), &auth), CPX_AUTH_OK);
    assert_string_equal(auth.id, ex.provider_id);
    char target[128];
    snprintf(target, sizeof target, "/v1/deliveries/%s/acceptance", delivery);
    assert_true(cpx_reqsig_verify(ex.provider_pk, "POST", target, auth.ts, a->body, strlen(a->body),
                                  auth.sig));
}

/* Waits until cond() holds (polling ex under its lock); fails the test after WAIT_SECONDS. */
static void wait_for(bool (*cond)(const struct agreement *), const struct agreement *a,
                     const char *what)
{
    for (int i = 0; i < WAIT_SECONDS * 20; i++) {
        pthread_mutex_lock(&ex.lock);
        bool done = cond(a);
        pthread_mutex_unlock(&ex.lock);
        if (done)
            return;
        usleep(50000);
    }
    fail_msg("timed out waiting until %s (exchange saw: %s)", what, ex.failure);
}

static bool completed(const struct agreement *a)
{
    return strcmp(a->status, "completed") == 0;
}

static bool reported_twice(const struct agreement *a)
{
    return a->nreports >= 2;
}

/* Reports are contiguous from `from` to the last one's end; returns their device-seconds. */
static int64_t check_reports(const struct agreement *a, int64_t from)
{
    int64_t sum = 0;
    for (int i = 0; i < a->nreports; i++) {
        if (a->reports[i].start != from)
            fail_msg("report %d starts at %lld, not %lld", i, (long long)a->reports[i].start,
                     (long long)from);
        from = a->reports[i].end;
        sum += a->reports[i].device_seconds;
    }
    return sum;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void refuses_what_the_exchange_did_not_send(void **state)
{
    (void)state;
    struct provider_proc pp;
    provider_start(&pp, "refuses.log", (const char *const[]){ NULL });
    struct agreement *a = &ex.agreements[0];
    char *body = envelope(a, "dlv_000000000001", ex.provider_id, "train");
    char authz[CPX_AUTH_HEADER_MAX];
    struct answer ans;

    send_to(&pp, "POST", "/cpx/jobs", body, NULL, &ans);
    assert_int_equal(ans.status, 401);
    assert_non_null(strstr(ans.body, "unauthenticated"));
    struct cpx_keypair impostor;
    cpx_keypair_generate(&impostor);
    sign_as(&impostor, "exchange", "/cpx/jobs", body, authz);
    send_to(&pp, "POST", "/cpx/jobs", body, authz, &ans);
    assert_int_equal(ans.status, 401);
    assert_non_null(strstr(ans.body, "bad_signature"));
    sign_as(&t.exchange, "exchange", "/other/path", body, authz); /* signed for another path */
    send_to(&pp, "POST", "/cpx/jobs", body, authz, &ans);
    assert_int_equal(ans.status, 401);

    sign_as(&t.exchange, "exchange", "/cpx/jobs", "{\"agreement\":", authz);
    send_to(&pp, "POST", "/cpx/jobs", "{\"agreement\":", authz, &ans);
    assert_int_equal(ans.status, 400);
    assert_non_null(strstr(ans.body, "malformed_json"));

    char *theirs = envelope(a, "dlv_000000000001", "idn_bbbbbbbbbbbbbbbb", "train");
    sign_as(&t.exchange, "exchange", "/cpx/jobs", theirs, authz);
    send_to(&pp, "POST", "/cpx/jobs", theirs, authz, &ans);
    assert_int_equal(ans.status, 403);
    assert_non_null(strstr(ans.body, "wrong_provider"));
    assert_string_equal(ans.signature, "");

    send_to(&pp, "GET", "/healthz", NULL, NULL, &ans);
    assert_int_equal(ans.status, 200);
    send_to(&pp, "PUT", "/cpx/jobs", body, NULL, &ans);
    assert_int_equal(ans.status, 405);

    assert_int_equal(provider_stop(&pp), 0);
    assert_int_equal(log_count(&pp, "accepted"), 0);
    assert_int_equal(log_count(&pp, "refused"), 5);
    pthread_mutex_lock(&ex.lock);
    assert_int_equal(a->gets, 0); /* nothing was taken: the exchange never heard from it */
    pthread_mutex_unlock(&ex.lock);
    free(body);
    free(theirs);
}

static void runs_once_and_reports_it_done(void **state)
{
    (void)state;
    struct agreement *a = &ex.agreements[0];
    a->lose_answer_of = 2; /* the second report is recorded but its answer lost */
    a->overlap_on = 4;     /* (the third is that retry) answered 409: it must re-read */
    char command[PATH_LEN + 128];
    snprintf(command, sizeof command,
             "echo \"$CPX_AGREEMENT $CPX_DELIVERY $CPX_DEVICES $(cat \"$CPX_JOB_FILE\")\" >> "
             "%s; sleep 4",
             t.runs);
    struct provider_proc pp;
    provider_start(&pp, "runs.log",
                   (const char *const[]){ "--report-every", "1", "--state", t.state, "--command",
                                          command, NULL });
    char *body = envelope(a, "dlv_000000000001", ex.provider_id, "train resnet-50");
    struct answer first, second;
    deliver(&pp, body, "dlv_000000000001", &first);
    assert_string_equal(first.body,
                        "{\"agreement\":\"agr_000000000001\",\"delivery\":\"dlv_000000000001\"}");
    deliver(&pp, body, "dlv_000000000001", &second); /* a retry whose answer was lost */
    assert_string_equal(second.body, first.body);

    wait_for(completed, a, "the agreement is completed");
    pthread_mutex_lock(&ex.lock);
    assert_string_equal(ex.failure, "");
    int64_t used = check_reports(a, a->started_at);
    /* the command ran about 4 s on 4 devices, after the agreement started */
    if (used < 4 * 3 || used > 4 * 5)
        fail_msg("metered %lld device-seconds for 4 devices busy about 4 s", (long long)used);
    assert_true(a->retried_same >= 1); /* the lost answer: same body and key again */
    assert_true(a->nreports >= 4);
    /* the job is done long before the agreement's hour: the last report says final */
    const struct report *last = &a->reports[a->nreports - 1];
    assert_true(last->final);
    assert_true(last->end < a->ends_at);
    for (int i = 0; i + 1 < a->nreports; i++)
        assert_false(a->reports[i].final);
    pthread_mutex_unlock(&ex.lock);

    char *runs = slurp(t.runs);
    assert_string_equal(runs, "agr_000000000001 dlv_000000000001 4 train resnet-50\n");
    free(runs);
    /* the worker logs "finished" right after its last report: give it a moment */
    for (int i = 0; i < 50 && log_count(&pp, "finished") == 0; i++)
        usleep(100000);
    assert_int_equal(provider_stop(&pp), 0);
    assert_int_equal(log_count(&pp, "accepted"), 1);
    assert_int_equal(log_count(&pp, "duplicate"), 1);
    assert_int_equal(log_count(&pp, "started"), 1);
    assert_int_equal(log_count(&pp, "finished"), 1);
    assert_true(log_count(&pp, "reported") >= 2);
    assert_int_equal(log_count(&pp, "refused"), 1); /* the 409, after which it re-read */

    /* Restarted with its state: it knows the delivery, answers it alike and runs nothing. */
    provider_start(&pp, "runs-again.log",
                   (const char *const[]){ "--state", t.state, "--command", command, NULL });
    struct answer third;
    deliver(&pp, body, "dlv_000000000001", &third);
    assert_string_equal(third.body, first.body);
    assert_int_equal(provider_stop(&pp), 0);
    assert_int_equal(log_count(&pp, "duplicate"), 1);
    assert_int_equal(log_count(&pp, "resumed"), 0);
    runs = slurp(t.runs);
    assert_string_equal(runs, "agr_000000000001 dlv_000000000001 4 train resnet-50\n");
    free(runs);
    free(body);
}

static void stops_cleanly_and_resumes(void **state)
{
    (void)state;
    struct agreement *a = &ex.agreements[1];
    struct provider_proc pp;
    provider_start(&pp, "stops.log",
                   (const char *const[]){ "--report-every", "60", "--state", t.state, NULL });
    char *body = envelope(a, "dlv_000000000002", ex.provider_id, "simulate");
    struct answer ans;
    deliver(&pp, body, "dlv_000000000002", &ans);
    for (int i = 0; i < WAIT_SECONDS * 10 && log_count(&pp, "started") == 0; i++)
        usleep(100000);
    sleep(3); /* run a little: the stop must report it (reports end a second behind now) */
    assert_int_equal(provider_stop(&pp), 0);
    assert_int_equal(log_count(&pp, "stopped"), 1);
    pthread_mutex_lock(&ex.lock);
    assert_string_equal(ex.failure, "");
    assert_int_equal(a->nreports, 1); /* what ran until the stop, with every device busy */
    const struct report *r0 = &a->reports[0];
    assert_true(r0->end >= r0->start + 2);
    assert_true(r0->device_seconds + a->devices >= a->devices * (r0->end - r0->start));
    int64_t stopped_at = a->metered_until;
    pthread_mutex_unlock(&ex.lock);

    /* Restarted: it resumes the job and meters on from metered_until, never over it. */
    provider_start(&pp, "resumes.log",
                   (const char *const[]){ "--report-every", "1", "--state", t.state, NULL });
    wait_for(reported_twice, a, "a report after the restart");
    assert_int_equal(provider_stop(&pp), 0);
    assert_int_equal(log_count(&pp, "resumed"), 1);
    pthread_mutex_lock(&ex.lock);
    assert_string_equal(ex.failure, "");
    assert_true(a->nreports >= 2);
    assert_int_equal(a->reports[1].start, stopped_at);
    check_reports(a, a->started_at);
    pthread_mutex_unlock(&ex.lock);
    free(body);
}

/* ---- fixture -------------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    if (cpx_crypto_init() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    const char *bin = getenv("CPX_TEST_BIN");
    if (bin == NULL || *bin == '\0')
        bin = getenv("BIN");
    snprintf(t.bin, sizeof t.bin, "%s/cpx-provider", bin && *bin ? bin : "bin");
    const char *tmp = getenv("TMPDIR");
    snprintf(t.dir, sizeof t.dir, "%s/cpx-provider-test.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(t.dir) == NULL)
        return -1;
#define IN_DIR(field, name) snprintf(t.field, sizeof t.field, "%s/%s", t.dir, name)
    IN_DIR(cert, "cert.pem");
    IN_DIR(tls_key, "key.pem");
    IN_DIR(key, "provider.key");
    IN_DIR(vkey, "exchange.vkey");
    IN_DIR(state, "state.json");
    IN_DIR(runs, "runs.txt");
    /* one throwaway certificate for both ends, as scripts/tls.sh makes it */
    char cmd[4 * PATH_LEN];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj '/CN=cpx-provider test' -addext 'subjectAltName=IP:127.0.0.1' "
             "-addext 'basicConstraints=critical,CA:TRUE' -keyout '%s' -out '%s' >/dev/null 2>&1",
             t.tls_key, t.cert);
    if (system(cmd) != 0)
        return -1;
    struct cpx_keyfile provider = { 0 };
    cpx_keypair_generate(&provider.kp);
    cpx_identity_id_for_key(provider.kp.pk, provider.identity);
    if (!keyfile_write(t.key, &provider, false))
        return -1;
    memcpy(ex.provider_pk, provider.kp.pk, sizeof ex.provider_pk);
    snprintf(ex.provider_id, sizeof ex.provider_id, "%s", provider.identity);
    cpx_keypair_generate(&t.exchange);
    struct cpx_note_verifier v;
    char vkey[CPX_VERIFIER_KEY_MAX];
    cpx_note_verifier_init(&v, "provider.test/ledger", t.exchange.pk);
    cpx_note_verifier_format(&v, vkey);
    FILE *f = fopen(t.vkey, "w");
    if (f == NULL || fprintf(f, "%s\n", vkey) < 0 || fclose(f) != 0)
        return -1;
    ex.agreements[0] = (struct agreement){
        .id = "agr_000000000001", .devices = 4, .length = 3600, .status = "pending_delivery"
    };
    ex.agreements[1] = (struct agreement){
        .id = "agr_000000000002", .devices = 8, .length = 3600, .status = "pending_delivery"
    };
    exchange_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (ex.daemon != NULL)
        MHD_stop_daemon(ex.daemon);
    if (getenv("CPX_TEST_KEEP") != NULL) /* to read the provider's logs */
        fprintf(stderr, "kept %s\n", t.dir);
    else
        nftw(t.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refuses_what_the_exchange_did_not_send),
        cmocka_unit_test(runs_once_and_reports_it_done),
        cmocka_unit_test(stops_cleanly_and_resumes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
