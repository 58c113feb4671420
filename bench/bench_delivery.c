/*
 * Delivery and billing against a real cpxd (make bench-delivery, which starts a private
 * PostgreSQL with fsync on and a private cpxd with --dispute-window 0, see
 * scripts/bench-delivery.sh): how fast the dispatcher turns agreements into accepted jobs, and
 * how fast signed usage reports become bills that settle (docs/delivery.md §2–§4), next to the
 * machine's Ed25519 verification and single-row commit rates.
 *
 *   1. ed25519_verify_per_s and pg_commit_per_s: measured as bench/bench_trading.c measures them
 *      (one verifying thread per core for ~1 s; one INSERT per transaction over one connection
 *      for ~2 s). The code is a small copy of bench_trading.c's: benchmarks are one file each.
 *   2. Setup: P providers and B buyers register (canonical bodies) and are approved by the
 *      operator, who deposits money to every buyer. This process runs the providers' HTTPS
 *      endpoint (libmicrohttpd, the cpxd's own certificate and key, which cpxd trusts through
 *      --delivery-ca); provider i lists capacity in region i with endpoint .../p/<i>, so an order
 *      naming region i trades with provider i.
 *   3. Dispatch, burst: K crossing orders (1 device, 1 hour, ioc at the ask) from B kept-alive
 *      clients, back to back; each makes one agreement, and the dispatcher POSTs its envelope to
 *      the endpoint, which checks the exchange's signature (--verify-envelopes 0 skips it) and
 *      answers a signed acceptance. While the orders are placed the endpoint holds the envelopes
 *      that arrive (at most one per dispatcher thread, each waiting for its answer; at most 6 s,
 *      --delivery-timeout being 10 s), so that when it lets them go every job is in the outbox
 *      and only the dispatcher is measured: accepted_per_s is the rate at which acceptances are
 *      recorded from then on (the `acceptance` records' ts, read from the public ledger).
 *      The burst's end-to-end rate is K over the time from its first order to its last
 *      acceptance: the sequencer's work for orders and for acceptances, one after the other.
 *   4. Dispatch, paced: orders at a fraction (--paced-fraction, 0.5) of that end-to-end rate, or
 *      at --paced-rate, for a few seconds (--paced-seconds), so that jobs need not queue;
 *      accept_p50/p99_ms is the time from an order's 201 (this process's clock) to its
 *      agreement's `acceptance` record (the exchange's clock, same machine, ms). The agreement
 *      shows `active` once that record's batch commits, a few ms later. Where the time goes is
 *      printed: the envelope's arrival at the endpoint, the endpoint's answer, the record.
 *   5. Metering: U kept-alive clients (--usage-clients), each signing as one provider, send
 *      usage reports for that provider's agreements round robin: each a new 1-second period
 *      [metered_until, metered_until+1) with device_seconds 1, only once it has ended by the
 *      clock (the agreements started seconds earlier, so there is a backlog of ended periods),
 *      with the Idempotency-Key cpx-provider sends (--idempotency 0 omits it). Every answer must
 *      be 201 with its bill settled (dispute window 0): usage_per_s and usage_p50/p99_ms over
 *      the measured seconds after a warm-up.
 *
 * Output: informative lines starting "bench delivery ", then, as the last line,
 * "bench delivery accepted_per_s=<a> accept_p50_ms=<b> accept_p99_ms=<c> usage_per_s=<u>
 * usage_p50_ms=<d> usage_p99_ms=<e> ed25519_verify_per_s=<v> pg_commit_per_s=<c>". Numbers only:
 * nothing is judged against a target.
 *
 * Settings (flag, or environment variable):
 *   --url URL                CPX_BENCH_URL             cpxd's base URL (required)
 *   --cacert FILE            CPX_BENCH_CACERT          its TLS certificate (required; also the
 *                                                      endpoint's certificate)
 *   --tls-key FILE           CPX_BENCH_TLS_KEY         the certificate's key, for the endpoint
 *   --operator-key FILE      CPX_BENCH_OPERATOR_KEY    the bootstrap operator's key (required)
 *   --exchange-key FILE      CPX_BENCH_EXCHANGE_KEY    the exchange's ledger key (envelopes are
 *                                                      checked against its public half)
 *   --pg-url URL             CPX_BENCH_PG_URL          a PostgreSQL URL that may create a table
 *   --providers P            CPX_BENCH_PROVIDERS       1..8, one region each (default 4)
 *   --buyers B               CPX_BENCH_BUYERS          order clients (default 8)
 *   --agreements K           CPX_BENCH_AGREEMENTS      burst orders (default 600)
 *   --paced-fraction F       CPX_BENCH_PACED_FRACTION  of the end-to-end rate (default 0.5)
 *   --paced-rate R           CPX_BENCH_PACED_RATE      orders/s instead (default 0: the fraction)
 *   --paced-seconds S        CPX_BENCH_PACED_SECONDS   (default 5)
 *   --usage-clients U        CPX_BENCH_USAGE_CLIENTS   (default 16)
 *   --usage-seconds D        CPX_BENCH_USAGE_SECONDS   measured (default 5)
 *   --warmup W               CPX_BENCH_WARMUP          usage seconds not measured (default 1)
 *   --verify-envelopes 0|1   CPX_BENCH_VERIFY_ENVELOPES   (default 1)
 *   --idempotency 0|1        CPX_BENCH_IDEMPOTENCY     Idempotency-Key on usage (default 1)
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "clients/common/client.h"
#include "ledger/canon.h"
#include "ledger/crypto.h"
#include "ledger/keyfile.h"
#include "ledger/reqsig.h"
#include "server/util.h"

#define ASK_MICRO       15200000LL /* every provider's ask per PFLOPS-hour: 15.2 CNY */
#define LISTING_TFLOPS  989        /* bf16 TFLOPS per device (an H100 SXM, dense) */
#define LISTING_DEVICES 1000000LL  /* enough that no listing runs out */
#define DEPOSIT         "1000000000"
#define PROVIDERS_MAX   8 /* one region each: cpxd has eight */
#define REPLY_KEEP      4096
#define ERRORS_SHOWN    20
#define VERIFY_SECONDS  1.0
#define COMMIT_SECONDS  2.0
#define STALL_SECONDS   20 /* waiting for acceptances gives up after this long without one */
#define BODY_MAX        (1u << 20)
#define GATE_MAX_S      6

struct opts {
    const char *url, *cacert, *tls_key, *operator_key, *exchange_key, *pg_url;
    int providers, buyers, agreements, usage_clients;
    double paced_fraction, paced_rate, paced_seconds, usage_seconds, warmup;
    bool verify_envelopes, idempotency;
};

static pthread_mutex_t g_err_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned g_errors_shown;

static void report_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report_error(const char *fmt, ...)
{
    pthread_mutex_lock(&g_err_lock);
    if (g_errors_shown < ERRORS_SHOWN) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    } else if (g_errors_shown == ERRORS_SHOWN) {
        fprintf(stderr, "bench_delivery: more errors; only counted from here on\n");
    }
    g_errors_shown++;
    pthread_mutex_unlock(&g_err_lock);
}

static double secs_since(uint64_t start_ns)
{
    return (double)(mono_ns() - start_ns) / 1e9;
}

/* ---- 1. raw Ed25519 verification and single-row commits (as bench_trading.c) ---------------- */

struct verify_job {
    pthread_barrier_t *start;
    uint64_t count;
    double seconds;
    bool bad;
};

static void *verify_thread(void *arg)
{
    struct verify_job *j = arg;
    struct cpx_keypair kp;
    cpx_keypair_generate(&kp);
    /* A signed usage report's string: "POST\n/v1/agreements/<id>/usage\n<ts>\n<64 hex>". */
    const char body[] = "{\"device_seconds\":1,\"period_end\":\"2026-11-29T08:00:01Z\","
                        "\"period_start\":\"2026-11-29T08:00:00Z\"}";
    char msg[CPX_REQSIG_MESSAGE_MAX];
    long len = cpx_reqsig_message("POST", "/v1/agreements/agr_000000000001/usage",
                                  (int64_t)time(NULL), body, sizeof body - 1, msg, sizeof msg);
    uint8_t sig[CPX_ED25519_SIG_LEN];
    cpx_sign(&kp, msg, (size_t)len, sig);
    pthread_barrier_wait(j->start);
    uint64_t t0 = mono_ns(), n = 0;
    do {
        for (int i = 0; i < 64; i++)
            if (crypto_sign_verify_detached(sig, (const unsigned char *)msg,
                                            (unsigned long long)len, kp.pk) != 0)
                j->bad = true;
        n += 64;
    } while (secs_since(t0) < VERIFY_SECONDS);
    j->seconds = secs_since(t0);
    j->count = n;
    cpx_keypair_wipe(&kp);
    return NULL;
}

static double bench_verify(int *threads_out)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int n = ncpu < 1 ? 1 : ncpu > 256 ? 256 : (int)ncpu;
    *threads_out = n;
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    struct verify_job *jobs = calloc((size_t)n, sizeof *jobs);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    for (int i = 0; i < n; i++) {
        jobs[i].start = &start;
        pthread_create(&th[i], NULL, verify_thread, &jobs[i]);
    }
    double per_s = 0;
    bool bad = false;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        per_s += (double)jobs[i].count / jobs[i].seconds;
        bad |= jobs[i].bad;
    }
    pthread_barrier_destroy(&start);
    free(jobs);
    free(th);
    if (bad) {
        fprintf(stderr, "bench_delivery: a valid signature failed to verify\n");
        return 0;
    }
    return per_s;
}

static bool pg_ok(PGconn *pg, PGresult *r, const char *what)
{
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "bench_delivery: %s: %s", what, PQerrorMessage(pg));
    PQclear(r);
    return ok;
}

static double bench_commit(const char *url, char *settings, size_t cap)
{
    PGconn *pg = PQconnectdb(url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "bench_delivery: cannot connect to PostgreSQL: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return 0;
    }
    PGresult *r =
        PQexec(pg, "SELECT current_setting('fsync'), current_setting('synchronous_commit'),"
                   " current_setting('server_version')");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        const char *version = PQgetvalue(r, 0, 2);
        snprintf(settings, cap, "fsync=%s synchronous_commit=%s version=%.*s", PQgetvalue(r, 0, 0),
                 PQgetvalue(r, 0, 1), (int)strcspn(version, " "), version);
    }
    PQclear(r);
    double per_s = 0;
    if (!pg_ok(pg, PQexec(pg, "SET client_min_messages TO warning"), "set") ||
        !pg_ok(pg, PQexec(pg, "DROP TABLE IF EXISTS bench_commit_dlv"), "drop table") ||
        !pg_ok(pg, PQexec(pg, "CREATE TABLE bench_commit_dlv(id bigserial PRIMARY KEY, v bigint)"),
               "create table") ||
        !pg_ok(pg,
               PQprepare(pg, "ins", "INSERT INTO bench_commit_dlv(v) VALUES ($1::bigint)", 1, NULL),
               "prepare"))
        goto out;
    uint64_t t0 = mono_ns(), n = 0;
    char v[24];
    const char *params[1] = { v };
    while (secs_since(t0) < COMMIT_SECONDS) {
        snprintf(v, sizeof v, "%" PRIu64, n);
        if (!pg_ok(pg, PQexecPrepared(pg, "ins", 1, params, NULL, NULL, 0), "insert"))
            goto out;
        n++;
    }
    per_s = (double)n / secs_since(t0);
out:
    pg_ok(pg, PQexec(pg, "DROP TABLE IF EXISTS bench_commit_dlv"), "drop table");
    PQfinish(pg);
    return per_s;
}

/* ---- agreements and what happened to them -------------------------------------------------- */

enum phase { BURST, PACED };

struct agr {
    char id[32];           /* agr_<12 digits> */
    uint64_t num;          /* its number, for sorting and lookups */
    int provider;          /* index */
    int phase;             /* BURST or PACED */
    int64_t order_done_us; /* wall clock when the order's 201 arrived here */
    int64_t created_ms;    /* its `agreement` record's ts */
    int64_t accepted_ms;   /* its `acceptance` record's ts; 0 until read */
    int64_t started_s;     /* the acceptance's start: its clock for metering */
    int64_t arrive_us;     /* first envelope at the endpoint (wall clock) */
    int64_t answer_us;     /* ... and its answer */
    int envelopes;         /* envelopes received for it */
    int64_t metered_until; /* end of its last accepted usage report */
    bool dead;             /* a usage report was refused: leave it alone */
};

static struct agr *g_agr; /* appended by the load thread only; sorted by num once placed */
static size_t g_nagr, g_capagr;

static struct agr *agr_add(void)
{
    if (g_nagr == g_capagr) {
        size_t cap = g_capagr ? 2 * g_capagr : 1024;
        struct agr *bigger = realloc(g_agr, cap * sizeof *bigger);
        if (bigger == NULL)
            return NULL;
        g_agr = bigger;
        g_capagr = cap;
    }
    struct agr *a = &g_agr[g_nagr++];
    memset(a, 0, sizeof *a);
    return a;
}

static int cmp_agr(const void *x, const void *y)
{
    const struct agr *a = x, *b = y;
    return a->num < b->num ? -1 : a->num > b->num;
}

static struct agr *agr_find(uint64_t num)
{
    struct agr key = { .num = num };
    return bsearch(&key, g_agr, g_nagr, sizeof *g_agr, cmp_agr);
}

static uint64_t id_number(const char *id, const char *prefix)
{
    size_t n = strlen(prefix);
    if (id == NULL || strncmp(id, prefix, n) != 0)
        return 0;
    return strtoull(id + n, NULL, 10);
}

/* ---- 2. the providers' endpoint ------------------------------------------------------------ */

struct provider {
    struct cpx_keypair kp;
    char id[CPX_ID_MAX];
    char region[64];
    char listing[64];
};

static struct provider g_prov[PROVIDERS_MAX];
static int g_nprov;
static uint8_t g_exchange_pk[CPX_ED25519_PK_LEN];
static bool g_verify_envelopes;

/* Envelopes as they arrived, joined with the agreements afterwards. */
struct envelope_event {
    uint64_t agreement;
    int64_t arrive_us, answer_us;
};
static pthread_mutex_t g_env_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_env_cv = PTHREAD_COND_INITIALIZER;
static struct envelope_event *g_env;
static size_t g_nenv, g_capenv;
static uint64_t g_env_refused; /* envelopes the endpoint could not accept */
/* While the burst's orders are placed the endpoint holds the envelopes that come in (the
 * dispatchers wait for their answers), so that the outbox is full when dispatch is measured. The
 * gate opens when the orders are in, or after GATE_MAX_S at most (--delivery-timeout is 10 s). */
static bool g_gate;
static int64_t g_gate_until_us, g_gate_opened_us;
static uint64_t g_gate_held; /* envelopes that waited at the gate */

struct ep_req {
    char *target;
    char *body;
    size_t len;
    bool started, too_large;
    int64_t arrive_us;
};

static bool ids_safe(const char *s)
{
    return s != NULL && *s != '\0' && strlen(s) < 32 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(s);
}

/* The acceptance for one envelope, or an error status and why. */
static unsigned ep_handle(const char *authz, struct ep_req *q, char *body, size_t cap, char *sig,
                          uint64_t *agreement)
{
    int p = -1;
    if (strncmp(q->target, "/p/", 3) == 0)
        p = atoi(q->target + 3);
    if (p < 0 || p >= g_nprov) {
        snprintf(body, cap, "{\"error\":\"no such provider path\"}");
        return 404;
    }
    if (q->too_large) {
        snprintf(body, cap, "{\"error\":\"too large\"}");
        return 413;
    }
    if (g_verify_envelopes) {
        struct cpx_auth auth;
        if (authz == NULL || cpx_auth_parse(authz, strlen(authz), &auth) != CPX_AUTH_OK ||
            strcmp(auth.id, "exchange") != 0 ||
            !cpx_reqsig_verify(g_exchange_pk, "POST", q->target, auth.ts, q->body ? q->body : "",
                               q->len, auth.sig)) {
            snprintf(body, cap, "{\"error\":\"not signed by the exchange\"}");
            return 401;
        }
    }
    json_t *env = json_loadb(q->body ? q->body : "", q->len, 0, NULL);
    const char *dlv = json_string_value(json_object_get(env, "delivery"));
    const char *agr = json_string_value(json_object_get(json_object_get(env, "agreement"), "id"));
    unsigned status = 200;
    if (!ids_safe(dlv) || !ids_safe(agr)) {
        snprintf(body, cap, "{\"error\":\"bad envelope\"}");
        status = 400;
    } else {
        /* Canonical: keys sorted, and the ids need no escaping. */
        snprintf(body, cap, "{\"agreement\":\"%s\",\"delivery\":\"%s\"}", agr, dlv);
        char target[96];
        snprintf(target, sizeof target, "/v1/deliveries/%s/acceptance", dlv);
        struct cpx_auth auth = { 0 };
        snprintf(auth.id, sizeof auth.id, "%s", g_prov[p].id);
        if (!cpx_reqsig_sign(&g_prov[p].kp, "POST", target, (int64_t)time(NULL), body, strlen(body),
                             &auth)) {
            snprintf(body, cap, "{\"error\":\"cannot sign\"}");
            status = 500;
        } else {
            cpx_auth_format(&auth, sig);
            *agreement = id_number(agr, "agr_");
        }
    }
    json_decref(env);
    return status;
}

static enum MHD_Result ep_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **ctx)
{
    (void)cls;
    (void)url;
    (void)version;
    struct ep_req *q = *ctx;
    if (q == NULL)
        return MHD_NO;
    if (!q->started) {
        q->started = true;
        q->arrive_us = now_us();
        return MHD_YES;
    }
    if (*size > 0) {
        char *bigger =
            q->too_large || q->len + *size > BODY_MAX ? NULL : realloc(q->body, q->len + *size + 1);
        if (bigger == NULL) {
            q->too_large = true;
        } else {
            q->body = bigger;
            memcpy(q->body + q->len, data, *size);
            q->len += *size;
            q->body[q->len] = '\0';
        }
        *size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&g_env_lock);
    if (g_gate)
        g_gate_held++;
    while (g_gate && now_us() < g_gate_until_us) {
        struct timespec until = { .tv_sec = (time_t)(g_gate_until_us / 1000000),
                                  .tv_nsec = (long)(g_gate_until_us % 1000000) * 1000 };
        pthread_cond_timedwait(&g_env_cv, &g_env_lock, &until);
    }
    if (g_gate) {
        g_gate = false;
        g_gate_opened_us = now_us();
    }
    pthread_mutex_unlock(&g_env_lock);
    char body[256], sig[CPX_AUTH_HEADER_MAX] = "";
    uint64_t agreement = 0;
    unsigned status = 405;
    if (strcmp(method, "POST") == 0)
        status = ep_handle(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"), q,
                           body, sizeof body, sig, &agreement);
    else
        snprintf(body, sizeof body, "{\"error\":\"POST only\"}");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (status == 200)
        MHD_add_response_header(r, "CPX-Signature", sig);
    int64_t answer_us = now_us();
    pthread_mutex_lock(&g_env_lock);
    if (status != 200) {
        g_env_refused++;
    } else {
        if (g_nenv == g_capenv) {
            size_t cap = g_capenv ? 2 * g_capenv : 4096;
            struct envelope_event *bigger = realloc(g_env, cap * sizeof *bigger);
            if (bigger != NULL) {
                g_env = bigger;
                g_capenv = cap;
            }
        }
        if (g_nenv < g_capenv)
            g_env[g_nenv++] = (struct envelope_event){ agreement, q->arrive_us, answer_us };
    }
    pthread_cond_broadcast(&g_env_cv);
    pthread_mutex_unlock(&g_env_lock);
    if (status != 200)
        report_error("bench_delivery: the endpoint refused an envelope to %s: %u %s\n", q->target,
                     status, body);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* The request target exactly as sent: the exchange's signature covers it. */
static void *ep_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    struct ep_req *q = calloc(1, sizeof *q);
    if (q != NULL && (q->target = strdup(uri)) == NULL) {
        free(q);
        q = NULL;
    }
    return q;
}

static void ep_completed(void *cls, struct MHD_Connection *conn, void **ctx,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    (void)why;
    struct ep_req *q = *ctx;
    if (q != NULL) {
        free(q->target);
        free(q->body);
        free(q);
    }
    *ctx = NULL;
}

static char *g_pem_cert, *g_pem_key;

static struct MHD_Daemon *endpoint_start(const struct opts *o, unsigned *port)
{
    size_t len;
    g_pem_cert = read_file(o->cacert, BODY_MAX, &len);
    g_pem_key = read_file(o->tls_key, BODY_MAX, &len);
    if (g_pem_cert == NULL || g_pem_key == NULL) {
        fprintf(stderr, "bench_delivery: cannot read %s or %s for the endpoint\n", o->cacert,
                o->tls_key);
        return NULL;
    }
    struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = 0 };
    inet_pton(AF_INET, "127.0.0.1", &in4.sin_addr);
    /* Two threads: the dispatchers keep one connection each, and an answer takes ~0.1 ms. */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG | MHD_USE_AUTO, 0, NULL,
        NULL, ep_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&in4,
        MHD_OPTION_HTTPS_MEM_CERT, g_pem_cert, MHD_OPTION_HTTPS_MEM_KEY, g_pem_key,
        MHD_OPTION_URI_LOG_CALLBACK, ep_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED, ep_completed, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)2, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
        MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "bench_delivery: the endpoint could not start\n");
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : 0;
    return d;
}

/* Waits until the endpoint has answered `want` envelopes, or STALL_SECONDS pass without one. */
static size_t endpoint_wait(size_t want)
{
    pthread_mutex_lock(&g_env_lock);
    size_t seen = g_nenv;
    uint64_t last_progress = mono_ns();
    while (g_nenv < want && secs_since(last_progress) < STALL_SECONDS) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&g_env_cv, &g_env_lock, &until);
        if (g_nenv != seen) {
            seen = g_nenv;
            last_progress = mono_ns();
        }
    }
    size_t n = g_nenv;
    pthread_mutex_unlock(&g_env_lock);
    return n;
}

static void gate_close(void)
{
    pthread_mutex_lock(&g_env_lock);
    g_gate = true;
    g_gate_until_us = now_us() + GATE_MAX_S * 1000000LL;
    g_gate_opened_us = 0;
    pthread_mutex_unlock(&g_env_lock);
}

/* Opens the gate (unless it opened by itself); returns when it opened. */
static int64_t gate_open(void)
{
    pthread_mutex_lock(&g_env_lock);
    if (g_gate) {
        g_gate = false;
        g_gate_opened_us = now_us();
    }
    int64_t t = g_gate_opened_us;
    pthread_cond_broadcast(&g_env_cv);
    pthread_mutex_unlock(&g_env_lock);
    return t;
}

/* ---- 3. setup over the API ----------------------------------------------------------------- */

static char *canon_text(struct cpx_canon_writer *w, const char *what)
{
    const uint8_t *out;
    size_t len;
    enum cpx_canon_error e = cpx_canon_writer_finish(w, &out, &len);
    if (e != CPX_CANON_OK) {
        fprintf(stderr, "bench_delivery: %s body: %s\n", what, cpx_canon_error_text(e));
        return NULL;
    }
    return strndup((const char *)out, len);
}

static bool post(struct client *cl, const char *target, const char *body, const char *idem,
                 long want, json_t **json_out)
{
    char header[200];
    const char *headers[2] = { NULL, NULL };
    if (idem != NULL) {
        snprintf(header, sizeof header, "Idempotency-Key: %s", idem);
        headers[0] = header;
    }
    struct client_reply r;
    bool ok = client_call(cl, "POST", target, body, true, headers, &r);
    if (!ok) {
        fprintf(stderr, "bench_delivery: POST %s: %s\n", target, r.error);
    } else if (r.status != want) {
        fprintf(stderr, "bench_delivery: POST %s answered %ld, not %ld: %s\n", target, r.status,
                want, r.body ? r.body : "");
        ok = false;
    }
    if (ok && json_out != NULL) {
        *json_out = r.json;
        r.json = NULL;
    }
    client_reply_free(&r);
    return ok;
}

static bool register_identity(struct client *cl, const char *role, int n, const char *run)
{
    cpx_keypair_generate(&cl->key.kp);
    cpx_identity_id_for_key(cl->key.kp.pk, cl->key.identity);
    cl->have_key = true;
    char pk[45], name[64], reg_no[64];
    cpx_public_key_encode(cl->key.kp.pk, pk);
    snprintf(name, sizeof name, "Bench %s %d", role, n);
    snprintf(reg_no, sizeof reg_no, "BENCH-D%s-%c%d", run, role[0] == 'b' ? 'B' : 'P', n);
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_canon_begin_object(&w);
    cpx_canon_kv_string(&w, "name", name);
    cpx_canon_kv_string(&w, "public_key", pk);
    cpx_canon_kv_string(&w, "reg_no", reg_no);
    cpx_canon_key(&w, "roles", 5);
    cpx_canon_begin_array(&w);
    cpx_canon_string(&w, role, strlen(role));
    cpx_canon_end_array(&w);
    cpx_canon_end_object(&w);
    char *body = canon_text(&w, "registration");
    cpx_canon_writer_free(&w);
    bool ok = body != NULL && post(cl, "/v1/identities", body, NULL, 201, NULL);
    free(body);
    return ok;
}

static bool approve(struct client *op, const char *id)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/identities/%s/approve", id);
    return post(op, target, "{}", NULL, 200, NULL);
}

static bool deposit(struct client *op, const char *id, const char *run)
{
    char target[128], idem[128];
    snprintf(target, sizeof target, "/v1/accounts/%s/deposits", id);
    snprintf(idem, sizeof idem, "bench-%s-deposit-%s", run, id);
    return post(op, target, "{\"amount\":\"" DEPOSIT "\"}", idem, 201, NULL);
}

/* The region ids of GET /v1/regions, at most max of them; returns how many. */
static int regions(struct client *cl, char out[][64], int max)
{
    struct client_reply r;
    int n = 0;
    if (client_call(cl, "GET", "/v1/regions", NULL, false, NULL, &r) && r.status == 200) {
        json_t *items = json_object_get(r.json, "items");
        for (size_t i = 0; i < json_array_size(items) && n < max; i++) {
            const char *id = json_string_value(json_object_get(json_array_get(items, i), "id"));
            if (id != NULL)
                snprintf(out[n++], 64, "%s", id);
        }
    }
    if (n == 0)
        fprintf(stderr, "bench_delivery: GET /v1/regions: %ld %s\n", r.status,
                r.body ? r.body : r.error);
    client_reply_free(&r);
    return n;
}

static bool create_listing(struct client *cl, struct provider *p, const char *endpoint)
{
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_canon_begin_object(&w);
    cpx_canon_kv_string(&w, "device_type", "gpu");
    cpx_canon_kv_int(&w, "devices", LISTING_DEVICES);
    cpx_canon_kv_string(&w, "endpoint", endpoint);
    cpx_canon_kv_string(&w, "interconnect", "nvlink");
    cpx_canon_kv_int(&w, "memory_gb", 80);
    cpx_canon_kv_string(&w, "model", "H100-SXM");
    cpx_canon_key(&w, "precisions", 10);
    cpx_canon_begin_object(&w);
    cpx_canon_key(&w, "bf16", 4);
    cpx_canon_begin_object(&w);
    cpx_canon_kv_int(&w, "price_micro", ASK_MICRO);
    cpx_canon_kv_int(&w, "tflops", LISTING_TFLOPS);
    cpx_canon_end_object(&w);
    cpx_canon_end_object(&w);
    cpx_canon_kv_string(&w, "region", p->region);
    cpx_canon_kv_string(&w, "time_in_force", "gtc");
    cpx_canon_kv_string(&w, "vendor", "nvidia");
    cpx_canon_end_object(&w);
    char *body = canon_text(&w, "listing");
    cpx_canon_writer_free(&w);
    json_t *j = NULL;
    bool ok = body != NULL && post(cl, "/v1/listings", body, NULL, 201, &j);
    free(body);
    if (ok) {
        const char *id = json_string_value(json_object_get(j, "id"));
        snprintf(p->listing, sizeof p->listing, "%s", id != NULL ? id : "?");
    }
    json_decref(j);
    return ok;
}

/* ---- 4. the load: kept-alive clients on one libcurl multi handle --------------------------- */

/* One client: a signing identity with its own easy handle, so its own kept-alive connection. */
struct lane {
    CURL *h;
    const struct cpx_keypair *kp;
    const char *id;
    int index;
    bool busy, stopped;
    uint64_t started;            /* mono_ns the request in flight was added */
    int provider;                /* order lanes: the provider (region) of the order in flight */
    size_t *agrs, nagrs, cursor; /* usage lanes: indices into g_agr, and the next to try */
    size_t cur;                  /* usage lanes: the agreement in flight */
    int64_t period_start;        /* ... and its period */
    struct curl_slist *headers;
    struct cpx_canon_writer cw;
    char url[1200];
    char body[512];
    size_t body_len;
    char reply[REPLY_KEEP];
    size_t reply_len;
};

enum next { NEXT_SEND, NEXT_WAIT, NEXT_STOP };

struct drive {
    CURLM *m;
    struct lane *lanes;
    int n;
    enum next (*next)(struct drive *, struct lane *, uint64_t now, uint64_t *wait_until);
    void (*done)(struct drive *, struct lane *, CURLcode rc, long status, uint64_t done);
};

static size_t on_reply(char *data, size_t size, size_t n, void *arg)
{
    struct lane *c = arg;
    size_t len = size * n, room = sizeof c->reply - 1 - c->reply_len;
    size_t take = len < room ? len : room;
    memcpy(c->reply + c->reply_len, data, take);
    c->reply_len += take;
    c->reply[c->reply_len] = '\0';
    return len;
}

static bool lane_init(struct lane *c, const char *cacert, const struct cpx_keypair *kp,
                      const char *id, int index)
{
    memset(c, 0, sizeof *c);
    c->kp = kp;
    c->id = id;
    c->index = index;
    cpx_canon_writer_init(&c->cw);
    c->h = curl_easy_init();
    if (c->h == NULL)
        return false;
    curl_easy_setopt(c->h, CURLOPT_POST, 1L);
    curl_easy_setopt(c->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c->h, CURLOPT_CAINFO, cacert);
    curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_reply);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
    return true;
}

static void lane_free(struct lane *c)
{
    curl_easy_cleanup(c->h);
    curl_slist_free_all(c->headers);
    cpx_canon_writer_free(&c->cw);
    free(c->agrs);
}

/* Signs the canonical body in c->cw as a POST to base+target and sets the request up. */
static bool lane_prepare(struct lane *c, const char *base, const char *target, const char *idem)
{
    const uint8_t *out;
    size_t len;
    if (cpx_canon_writer_finish(&c->cw, &out, &len) != CPX_CANON_OK || len >= sizeof c->body)
        return false;
    memcpy(c->body, out, len);
    c->body[len] = '\0';
    c->body_len = len;
    struct cpx_auth auth = { 0 };
    snprintf(auth.id, sizeof auth.id, "%s", c->id);
    if (!cpx_reqsig_sign(c->kp, "POST", target, (int64_t)time(NULL), c->body, c->body_len, &auth))
        return false;
    char value[CPX_AUTH_HEADER_MAX], line[CPX_AUTH_HEADER_MAX + 32];
    cpx_auth_format(&auth, value);
    snprintf(line, sizeof line, "Authorization: %s", value);
    curl_slist_free_all(c->headers);
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    c->headers = curl_slist_append(c->headers, "Expect:");
    c->headers = curl_slist_append(c->headers, line);
    if (idem != NULL) {
        char h[200];
        snprintf(h, sizeof h, "Idempotency-Key: %s", idem);
        c->headers = curl_slist_append(c->headers, h);
    }
    snprintf(c->url, sizeof c->url, "%s%s", base, target);
    curl_easy_setopt(c->h, CURLOPT_URL, c->url);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    c->reply_len = 0;
    c->reply[0] = '\0';
    return true;
}

/* Runs the lanes until each has stopped and nothing is in flight. */
static void drive_run(struct drive *d)
{
    int active = 0;
    for (;;) {
        uint64_t now = mono_ns(), wake = now + 100000000ull;
        int alive = 0;
        for (int i = 0; i < d->n; i++) {
            struct lane *c = &d->lanes[i];
            if (c->busy || c->stopped) {
                alive += c->busy;
                continue;
            }
            uint64_t at = 0;
            enum next r = d->next(d, c, now, &at);
            if (r == NEXT_STOP) {
                c->stopped = true;
                continue;
            }
            alive++;
            if (r == NEXT_WAIT) {
                if (at < wake)
                    wake = at;
                continue;
            }
            c->started = mono_ns();
            if (curl_multi_add_handle(d->m, c->h) != CURLM_OK) {
                report_error("bench_delivery: cannot start a request\n");
                c->stopped = true;
                continue;
            }
            c->busy = true;
            active++;
        }
        if (alive == 0 && active == 0)
            break;
        int running;
        curl_multi_perform(d->m, &running);
        CURLMsg *msg;
        int left;
        bool finished = false;
        while ((msg = curl_multi_info_read(d->m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            uint64_t done = mono_ns();
            struct lane *c;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            CURLcode rc = msg->data.result;
            long status = 0;
            if (rc == CURLE_OK)
                curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
            curl_multi_remove_handle(d->m, c->h);
            c->busy = false;
            active--;
            d->done(d, c, rc, status, done);
            finished = true;
        }
        if (!finished) {
            now = mono_ns();
            int ms = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;
            curl_multi_poll(d->m, NULL, 0, ms > 100 ? 100 : ms, NULL);
        }
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (nearest rank) of sorted v[0..n), divided by div. */
static double quantile(const int64_t *v, size_t n, double q, double div)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)(q * (double)n);
    if (k >= n)
        k = n - 1;
    return (double)v[k] / div;
}

/* Growable list of samples (µs). */
struct samples {
    int64_t *v;
    size_t n, cap;
};

static void sample_add(struct samples *s, int64_t x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4096;
        int64_t *bigger = realloc(s->v, cap * sizeof *bigger);
        if (bigger == NULL)
            return;
        s->v = bigger;
        s->cap = cap;
    }
    s->v[s->n++] = x;
}

static void sample_sort(struct samples *s)
{
    qsort(s->v, s->n, sizeof *s->v, cmp_i64);
}

/* ---- orders -------------------------------------------------------------------------------- */

struct order_plan {
    const char *base, *run;
    int phase;
    size_t total, sent;
    double rate; /* orders per second; 0 back to back */
    uint64_t t0; /* mono_ns the schedule starts */
    uint64_t ok, not_filled, failed;
    int64_t first_done_us, last_done_us;
    struct samples lat; /* order round trips, µs */
};

static struct order_plan g_plan;

static enum next order_next(struct drive *d, struct lane *c, uint64_t now, uint64_t *at)
{
    (void)d;
    struct order_plan *p = &g_plan;
    if (p->sent >= p->total)
        return NEXT_STOP;
    if (p->rate > 0) {
        uint64_t due = p->t0 + (uint64_t)((double)p->sent / p->rate * 1e9);
        if (due > now) {
            *at = due;
            return NEXT_WAIT;
        }
    }
    size_t k = p->sent++;
    c->provider = (int)(k % (size_t)g_nprov);
    char coid[64];
    snprintf(coid, sizeof coid, "%s-%c%zu", p->run, p->phase == BURST ? 'b' : 'p', k);
    struct cpx_canon_writer *w = &c->cw;
    cpx_canon_writer_reset(w);
    cpx_canon_begin_object(w);
    cpx_canon_kv_string(w, "client_order_id", coid);
    cpx_canon_kv_int(w, "devices", 1);
    cpx_canon_kv_int(w, "hours", 1);
    cpx_canon_kv_int(w, "limit_price_micro", ASK_MICRO);
    cpx_canon_kv_string(w, "precision", "bf16");
    cpx_canon_key(w, "regions", 7);
    cpx_canon_begin_array(w);
    const char *region = g_prov[c->provider].region;
    cpx_canon_string(w, region, strlen(region));
    cpx_canon_end_array(w);
    cpx_canon_kv_string(w, "time_in_force", "ioc");
    cpx_canon_end_object(w);
    if (!lane_prepare(c, p->base, "/v1/orders", NULL)) {
        report_error("bench_delivery: cannot build or sign an order\n");
        return NEXT_STOP;
    }
    return NEXT_SEND;
}

static void order_done(struct drive *d, struct lane *c, CURLcode rc, long status, uint64_t done)
{
    (void)d;
    struct order_plan *p = &g_plan;
    int64_t wall = now_us();
    if (rc != CURLE_OK || status != 201) {
        report_error("bench_delivery: POST /v1/orders: %s %ld %s\n",
                     rc != CURLE_OK ? curl_easy_strerror(rc) : "answered", status, c->reply);
        p->failed++;
        return;
    }
    json_t *j = json_loadb(c->reply, c->reply_len, 0, NULL);
    const char *st = json_string_value(json_object_get(j, "status"));
    const char *id = json_string_value(json_array_get(json_object_get(j, "agreements"), 0));
    if (st == NULL || strcmp(st, "filled") != 0 || id == NULL ||
        json_array_size(json_object_get(j, "agreements")) != 1) {
        report_error("bench_delivery: an order did not fill into one agreement: %s\n", c->reply);
        p->not_filled++;
    } else {
        struct agr *a = agr_add();
        if (a != NULL) {
            snprintf(a->id, sizeof a->id, "%s", id);
            a->num = id_number(id, "agr_");
            a->provider = c->provider;
            a->phase = p->phase;
            a->order_done_us = wall;
        }
        p->ok++;
        if (p->first_done_us == 0)
            p->first_done_us = wall;
        p->last_done_us = wall;
        sample_add(&p->lat, (int64_t)(done - c->started) / 1000);
    }
    json_decref(j);
}

static void place_orders(struct drive *d, int phase, size_t total, double rate)
{
    struct samples lat = g_plan.lat;
    lat.n = 0;
    g_plan.phase = phase;
    g_plan.total = total;
    g_plan.sent = 0;
    g_plan.rate = rate;
    g_plan.ok = g_plan.not_filled = g_plan.failed = 0;
    g_plan.first_done_us = g_plan.last_done_us = 0;
    g_plan.lat = lat;
    d->next = order_next;
    d->done = order_done;
    for (int i = 0; i < d->n; i++)
        d->lanes[i].stopped = false;
    g_plan.t0 = mono_ns();
    drive_run(d);
}

/* ---- the ledger, read afterwards ----------------------------------------------------------- */

/* The ledger's size now, or -1. */
static int64_t ledger_size(struct client *cl)
{
    struct client_reply r;
    int64_t size = -1;
    if (client_call(cl, "GET", "/v1/ledger/checkpoint", NULL, false, NULL, &r) && r.status == 200 &&
        json_is_integer(json_object_get(r.json, "size")))
        size = json_integer_value(json_object_get(r.json, "size"));
    client_reply_free(&r);
    return size;
}

/* Reads records from seq `from` on, noting agreements' and acceptances' ts; returns the next seq
 * to read, or -1 on failure. */
static int64_t ledger_read(struct client *cl, int64_t from)
{
    for (;;) {
        char target[128];
        if (from > 0)
            snprintf(target, sizeof target, "/v1/ledger/records?after=%" PRId64 "&limit=1000",
                     from - 1);
        else
            snprintf(target, sizeof target, "/v1/ledger/records?limit=1000");
        struct client_reply r;
        if (!client_call(cl, "GET", target, NULL, false, NULL, &r) || r.status != 200) {
            fprintf(stderr, "bench_delivery: GET %s: %ld %s\n", target, r.status,
                    r.body ? r.body : r.error);
            client_reply_free(&r);
            return -1;
        }
        json_t *items = json_object_get(r.json, "items");
        for (size_t i = 0; i < json_array_size(items); i++) {
            json_t *it = json_array_get(items, i);
            const char *text = json_string_value(json_object_get(it, "record"));
            from = json_integer_value(json_object_get(it, "seq")) + 1;
            json_t *rec = text ? json_loads(text, 0, NULL) : NULL;
            const char *kind = json_string_value(json_object_get(rec, "kind"));
            json_t *pl = json_object_get(rec, "payload");
            int64_t ts = json_integer_value(json_object_get(rec, "ts"));
            if (kind != NULL && strcmp(kind, "agreement") == 0) {
                struct agr *a =
                    agr_find(id_number(json_string_value(json_object_get(pl, "id")), "agr_"));
                if (a != NULL)
                    a->created_ms = ts;
            } else if (kind != NULL && strcmp(kind, "acceptance") == 0) {
                struct agr *a = agr_find(
                    id_number(json_string_value(json_object_get(pl, "agreement")), "agr_"));
                if (a != NULL) {
                    a->accepted_ms = ts;
                    a->started_s = json_integer_value(json_object_get(pl, "start"));
                }
            }
            json_decref(rec);
        }
        bool more = json_is_string(json_object_get(r.json, "next")) && json_array_size(items) > 0;
        client_reply_free(&r);
        if (!more)
            return from;
    }
}

/* Sorts the agreements, then reads the ledger from *next_seq until every agreement's acceptance
 * is there (the endpoint answers before the exchange records it) or 5 s pass. Returns how many
 * agreements have one. */
static size_t read_acceptances(struct client *cl, int64_t *next_seq)
{
    qsort(g_agr, g_nagr, sizeof *g_agr, cmp_agr);
    size_t accepted = 0;
    for (int tries = 0; tries < 50; tries++) {
        int64_t n = ledger_read(cl, *next_seq);
        if (n < 0)
            break;
        *next_seq = n;
        accepted = 0;
        for (size_t i = 0; i < g_nagr; i++)
            accepted += g_agr[i].accepted_ms != 0;
        if (accepted == g_nagr)
            break;
        usleep(100000);
    }
    return accepted;
}

/* ---- usage reports ------------------------------------------------------------------------- */

struct usage_run {
    const char *base;
    bool idempotency;
    uint64_t measure_from, measure_until;
    uint64_t ok, settled, failed, waits;
    uint64_t by_status[600];
    uint64_t last_done;
    struct samples lat; /* µs */
};

static struct usage_run g_use;

static enum next usage_next(struct drive *d, struct lane *c, uint64_t now, uint64_t *at)
{
    (void)d;
    struct usage_run *u = &g_use;
    if (now >= u->measure_until || c->nagrs == 0)
        return NEXT_STOP;
    /* The next of its agreements with an ended, unreported second: the exchange's clock is
     * this machine's, and it reads it after the request arrives. */
    int64_t wall = (int64_t)time(NULL);
    for (size_t k = 0; k < c->nagrs; k++) {
        size_t i = c->agrs[(c->cursor + k) % c->nagrs];
        struct agr *a = &g_agr[i];
        if (a->dead || a->metered_until + 1 > wall)
            continue;
        c->cursor = (c->cursor + k + 1) % c->nagrs;
        c->cur = i;
        c->period_start = a->metered_until;
        char from[32], to[32], target[96], idem[96];
        time_t t0 = (time_t)a->metered_until, t1 = t0 + 1;
        struct tm tm;
        strftime(from, sizeof from, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t0, &tm));
        strftime(to, sizeof to, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t1, &tm));
        struct cpx_canon_writer *w = &c->cw;
        cpx_canon_writer_reset(w);
        cpx_canon_begin_object(w);
        cpx_canon_kv_int(w, "device_seconds", 1);
        cpx_canon_kv_string(w, "period_end", to);
        cpx_canon_kv_string(w, "period_start", from);
        cpx_canon_end_object(w);
        snprintf(target, sizeof target, "/v1/agreements/%s/usage", a->id);
        snprintf(idem, sizeof idem, "use-%s-%" PRId64, a->id, a->metered_until);
        if (!lane_prepare(c, u->base, target, u->idempotency ? idem : NULL)) {
            report_error("bench_delivery: cannot build or sign a usage report\n");
            return NEXT_STOP;
        }
        return NEXT_SEND;
    }
    u->waits++;
    *at = now + 20000000ull; /* every agreement is metered up to now: wait for the clock */
    return NEXT_WAIT;
}

static void usage_done(struct drive *d, struct lane *c, CURLcode rc, long status, uint64_t done)
{
    (void)d;
    struct usage_run *u = &g_use;
    struct agr *a = &g_agr[c->cur];
    bool measured = c->started >= u->measure_from && c->started < u->measure_until;
    if (rc != CURLE_OK || status != 201) {
        report_error("bench_delivery: POST /v1/agreements/%s/usage: %s %ld %s\n", a->id,
                     rc != CURLE_OK ? curl_easy_strerror(rc) : "answered", status, c->reply);
        a->dead = true;
        u->failed++;
        u->by_status[status > 0 && status < 600 ? status : 0]++;
        return;
    }
    a->metered_until = c->period_start + 1;
    if (!measured)
        return;
    u->ok++;
    if (strstr(c->reply, "\"status\":\"settled\"") != NULL)
        u->settled++;
    sample_add(&u->lat, (int64_t)(done - c->started) / 1000);
    if (done > u->last_done)
        u->last_done = done;
}

/* ---- main ---------------------------------------------------------------------------------- */

/* Prints a phase's window in cpxd's log time format, so its debug log can be split by phase. */
static void print_phase(const char *name, int64_t from_us, int64_t to_us)
{
    char when[2][40];
    int64_t t[2] = { from_us, to_us };
    for (int i = 0; i < 2; i++) {
        time_t sec = (time_t)(t[i] / 1000000);
        struct tm tm;
        gmtime_r(&sec, &tm);
        size_t n = strftime(when[i], sizeof when[i], "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when[i] + n, sizeof when[i] - n, ".%03dZ", (int)(t[i] / 1000 % 1000));
    }
    printf("bench delivery phase %s from=%s to=%s\n", name, when[0], when[1]);
}

static const char *setting(int argc, char **argv, const char *flag, const char *env,
                           const char *dflt)
{
    for (int i = 1; i + 1 < argc; i += 2)
        if (strcmp(argv[i], flag) == 0)
            return argv[i + 1];
    const char *v = getenv(env);
    return v != NULL && *v != '\0' ? v : dflt;
}

static bool parse_opts(struct opts *o, int argc, char **argv)
{
    static const char *const flags[] = {
        "--url",           "--cacert",         "--tls-key",    "--operator-key",
        "--exchange-key",  "--pg-url",         "--providers",  "--buyers",
        "--agreements",    "--paced-fraction", "--paced-rate", "--paced-seconds",
        "--usage-clients", "--usage-seconds",  "--warmup",     "--verify-envelopes",
        "--idempotency"
    };
    for (int i = 1; i < argc; i += 2) {
        bool known = false;
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++)
            known |= strcmp(argv[i], flags[f]) == 0;
        if (!known || i + 1 >= argc) {
            fprintf(stderr, "usage: cpx-bench-delivery --url URL --cacert FILE --tls-key FILE "
                            "--operator-key FILE [--exchange-key FILE] [--pg-url URL] "
                            "[--providers P] [--buyers B] [--agreements K] [--paced-fraction F] "
                            "[--paced-rate R] "
                            "[--paced-seconds S] [--usage-clients U] [--usage-seconds D] "
                            "[--warmup W] [--verify-envelopes 0|1] [--idempotency 0|1]\n(or the "
                            "CPX_BENCH_* variables; see bench/bench_delivery.c)\n");
            return false;
        }
    }
    o->url = setting(argc, argv, "--url", "CPX_BENCH_URL", NULL);
    o->cacert = setting(argc, argv, "--cacert", "CPX_BENCH_CACERT", NULL);
    o->tls_key = setting(argc, argv, "--tls-key", "CPX_BENCH_TLS_KEY", NULL);
    o->operator_key = setting(argc, argv, "--operator-key", "CPX_BENCH_OPERATOR_KEY", NULL);
    o->exchange_key = setting(argc, argv, "--exchange-key", "CPX_BENCH_EXCHANGE_KEY", NULL);
    o->pg_url = setting(argc, argv, "--pg-url", "CPX_BENCH_PG_URL", NULL);
    o->providers = atoi(setting(argc, argv, "--providers", "CPX_BENCH_PROVIDERS", "4"));
    o->buyers = atoi(setting(argc, argv, "--buyers", "CPX_BENCH_BUYERS", "8"));
    o->agreements = atoi(setting(argc, argv, "--agreements", "CPX_BENCH_AGREEMENTS", "600"));
    o->paced_fraction =
        atof(setting(argc, argv, "--paced-fraction", "CPX_BENCH_PACED_FRACTION", "0.5"));
    o->paced_rate = atof(setting(argc, argv, "--paced-rate", "CPX_BENCH_PACED_RATE", "0"));
    o->paced_seconds = atof(setting(argc, argv, "--paced-seconds", "CPX_BENCH_PACED_SECONDS", "5"));
    o->usage_clients =
        atoi(setting(argc, argv, "--usage-clients", "CPX_BENCH_USAGE_CLIENTS", "16"));
    o->usage_seconds = atof(setting(argc, argv, "--usage-seconds", "CPX_BENCH_USAGE_SECONDS", "5"));
    o->warmup = atof(setting(argc, argv, "--warmup", "CPX_BENCH_WARMUP", "1"));
    o->verify_envelopes =
        atoi(setting(argc, argv, "--verify-envelopes", "CPX_BENCH_VERIFY_ENVELOPES", "1")) != 0;
    o->idempotency = atoi(setting(argc, argv, "--idempotency", "CPX_BENCH_IDEMPOTENCY", "1")) != 0;
    if (o->url == NULL || o->cacert == NULL || o->tls_key == NULL || o->operator_key == NULL) {
        fprintf(stderr, "bench_delivery: --url, --cacert, --tls-key and --operator-key are "
                        "required (run make bench-delivery)\n");
        return false;
    }
    if (o->verify_envelopes && o->exchange_key == NULL) {
        fprintf(stderr, "bench_delivery: --exchange-key is needed to check envelopes "
                        "(or --verify-envelopes 0)\n");
        return false;
    }
    if (o->providers < 1 || o->providers > PROVIDERS_MAX || o->buyers < 1 || o->buyers > 1000 ||
        o->agreements < 1 || o->agreements > 1000000 || o->paced_fraction < 0 ||
        o->paced_fraction > 10 || o->paced_rate < 0 || o->paced_rate > 100000 ||
        o->paced_seconds < 0 || o->paced_seconds > 600 || o->usage_clients < 0 ||
        o->usage_clients > 1000 || o->usage_seconds <= 0 || o->usage_seconds > 3600 ||
        o->warmup < 0 || o->warmup > 600) {
        fprintf(stderr,
                "bench_delivery: providers must be 1..%d (one region each), buyers "
                "1..1000, agreements 1..10^6, paced fraction 0..10, paced seconds 0..600, "
                "usage clients 0..1000, usage seconds 0..3600, warmup 0..600\n",
                PROVIDERS_MAX);
        return false;
    }
    return true;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Joins the endpoint's envelopes to the agreements: the first arrival and answer of each. */
static void join_envelopes(uint64_t *unknown)
{
    pthread_mutex_lock(&g_env_lock);
    for (size_t i = 0; i < g_nenv; i++) {
        struct agr *a = agr_find(g_env[i].agreement);
        if (a == NULL) {
            (*unknown)++;
            continue;
        }
        if (a->envelopes++ == 0) {
            a->arrive_us = g_env[i].arrive_us;
            a->answer_us = g_env[i].answer_us;
        }
    }
    pthread_mutex_unlock(&g_env_lock);
}

/* The acceptances' rate: over the agreements of phase ph accepted after `after_us` (wall). */
static double accept_rate(int ph, int64_t after_us, size_t *count, double *span_s)
{
    int64_t first = INT64_MAX, last = 0;
    size_t n = 0;
    for (size_t i = 0; i < g_nagr; i++) {
        const struct agr *a = &g_agr[i];
        if (a->phase != ph || a->accepted_ms == 0 || a->accepted_ms * 1000 <= after_us)
            continue;
        n++;
        if (a->accepted_ms > last)
            last = a->accepted_ms;
        if (a->accepted_ms < first)
            first = a->accepted_ms;
    }
    *count = n;
    *span_s = n > 0 ? (double)(last * 1000 - after_us) / 1e6 : 0;
    return *span_s > 0 ? (double)n / *span_s : 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (!parse_opts(&o, argc, argv))
        return 2;
    if (cpx_crypto_init() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    char run[16];
    snprintf(run, sizeof run, "r%lx", (unsigned long)(time(NULL) & 0xffffff));
    double load1 = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fscanf(f, "%lf", &load1) != 1)
            load1 = -1;
        fclose(f);
    }
    printf("bench delivery machine cores=%ld loadavg_1m=%.2f providers=%d buyers=%d "
           "agreements=%d usage_clients=%d\n",
           sysconf(_SC_NPROCESSORS_ONLN), load1, o.providers, o.buyers, o.agreements,
           o.usage_clients);

    /* 1: the physical limits, while cpxd is idle. */
    int vthreads;
    double verify_per_s = bench_verify(&vthreads);
    printf("bench delivery ed25519_verify threads=%d seconds=%.1f per_s=%.0f\n", vthreads,
           VERIFY_SECONDS, verify_per_s);
    double commit_per_s = 0;
    if (o.pg_url != NULL) {
        char pgset[256] = "";
        commit_per_s = bench_commit(o.pg_url, pgset, sizeof pgset);
        printf("bench delivery pg_commit seconds=%.1f per_s=%.0f %s\n", COMMIT_SECONDS,
               commit_per_s, pgset);
    } else {
        printf("bench delivery pg_commit skipped (no --pg-url)\n");
    }

    /* 2: the endpoint, identities, money and listings. */
    g_verify_envelopes = o.verify_envelopes;
    if (o.exchange_key != NULL) {
        struct cpx_keyfile ex;
        if (!keyfile_read(o.exchange_key, &ex))
            return 1;
        memcpy(g_exchange_pk, ex.kp.pk, sizeof g_exchange_pk);
        cpx_keypair_wipe(&ex.kp);
    }
    unsigned port = 0;
    struct MHD_Daemon *daemon = endpoint_start(&o, &port);
    if (daemon == NULL)
        return 1;
    uint64_t t_setup = mono_ns();
    struct client op;
    if (!client_init(&op, o.url, o.cacert, o.operator_key) || !client_load_key(&op))
        return 1;
    char region_ids[PROVIDERS_MAX][64];
    int nregions = regions(&op, region_ids, PROVIDERS_MAX);
    if (nregions < o.providers) {
        fprintf(stderr, "bench_delivery: %d providers need %d regions; cpxd has %d\n", o.providers,
                o.providers, nregions);
        return 1;
    }
    g_nprov = o.providers;
    for (int i = 0; i < g_nprov; i++) {
        struct client p;
        char endpoint[128];
        snprintf(endpoint, sizeof endpoint, "https://127.0.0.1:%u/p/%d", port, i);
        snprintf(g_prov[i].region, sizeof g_prov[i].region, "%s", region_ids[i]);
        if (!client_init(&p, o.url, o.cacert, "-") || !register_identity(&p, "provider", i, run) ||
            !approve(&op, p.key.identity) || !create_listing(&p, &g_prov[i], endpoint))
            return 1;
        g_prov[i].kp = p.key.kp;
        snprintf(g_prov[i].id, sizeof g_prov[i].id, "%s", p.key.identity);
        client_free(&p);
    }
    struct cpx_keypair *buyer_kp = calloc((size_t)o.buyers, sizeof *buyer_kp);
    char(*buyer_id)[CPX_ID_MAX] = calloc((size_t)o.buyers, sizeof *buyer_id);
    if (buyer_kp == NULL || buyer_id == NULL)
        return 1;
    for (int i = 0; i < o.buyers; i++) {
        struct client b;
        if (!client_init(&b, o.url, o.cacert, "-") || !register_identity(&b, "buyer", i, run) ||
            !approve(&op, b.key.identity) || !deposit(&op, b.key.identity, run))
            return 1;
        buyer_kp[i] = b.key.kp;
        snprintf(buyer_id[i], CPX_ID_MAX, "%s", b.key.identity);
        client_free(&b);
    }
    printf("bench delivery setup providers=%d buyers=%d endpoint=https://127.0.0.1:%u/p/<i> "
           "verify_envelopes=%s ask=%.2f deposit_per_buyer=%s seconds=%.2f\n",
           g_nprov, o.buyers, port, o.verify_envelopes ? "yes" : "no", (double)ASK_MICRO / 1e6,
           DEPOSIT, secs_since(t_setup));
    int64_t ledger_from = ledger_size(&op);
    if (ledger_from < 0) {
        fprintf(stderr, "bench_delivery: cannot read the ledger's size\n");
        return 1;
    }

    /* 3: the burst. */
    struct drive orders = { .m = curl_multi_init(), .n = o.buyers };
    orders.lanes = calloc((size_t)o.buyers, sizeof *orders.lanes);
    if (orders.m == NULL || orders.lanes == NULL)
        return 1;
    curl_multi_setopt(orders.m, CURLMOPT_MAXCONNECTS, (long)o.buyers);
    for (int i = 0; i < o.buyers; i++)
        if (!lane_init(&orders.lanes[i], o.cacert, &buyer_kp[i], buyer_id[i], i))
            return 1;
    g_plan.base = o.url;
    g_plan.run = run;
    double cpu0 = cpu_seconds();
    uint64_t t_burst = mono_ns();
    int64_t t_burst_us = now_us();
    gate_close();
    place_orders(&orders, BURST, (size_t)o.agreements, 0);
    int64_t released_us = gate_open();
    size_t burst_ok = g_plan.ok;
    double orders_s = secs_since(t_burst);
    sample_sort(&g_plan.lat);
    printf("bench delivery burst orders=%zu filled=%" PRIu64 " not_filled=%" PRIu64
           " failed=%" PRIu64 " seconds=%.2f orders_per_s=%.0f order_p50_ms=%.2f "
           "order_p99_ms=%.2f\n",
           (size_t)o.agreements, g_plan.ok, g_plan.not_filled, g_plan.failed, orders_s,
           (double)g_plan.ok / (orders_s > 0 ? orders_s : 1),
           quantile(g_plan.lat.v, g_plan.lat.n, 0.5, 1e3),
           quantile(g_plan.lat.v, g_plan.lat.n, 0.99, 1e3));
    size_t seen = endpoint_wait(g_nagr);
    print_phase("burst_orders", t_burst_us, released_us);
    print_phase("burst_drain", released_us, now_us());
    if (seen < g_nagr)
        fprintf(stderr,
                "bench_delivery: only %zu of %zu envelopes arrived (dispatcher stalled "
                "for %d s)\n",
                seen, g_nagr, STALL_SECONDS);

    /* The burst's acceptances, from the ledger, give the rate the paced phase runs at. */
    int64_t next_seq = ledger_from;
    size_t accepted = read_acceptances(&op, &next_seq);
    /* Measured from the gate's opening: every job of the burst was in the outbox by then. */
    size_t steady_n;
    double steady_s;
    double accepted_per_s = accept_rate(BURST, released_us - 1000, &steady_n, &steady_s);
    /* The burst end to end: orders, then their dispatch, one after the other on the same
     * sequencer, as a steady stream of agreements would share it. */
    size_t all_n;
    double all_s;
    double e2e_per_s = accept_rate(BURST, t_burst_us, &all_n, &all_s);
    printf(
        "bench delivery burst_dispatch agreements=%zu accepted=%zu envelopes_held_at_gate=%" PRIu64
        " gate_open_after_s=%.2f accepted_per_s=%.1f (%zu in %.2f s after the gate opened) "
        "end_to_end_per_s=%.1f (%zu orders placed and accepted in %.2f s)\n",
        burst_ok, accepted, g_gate_held, (double)(released_us - t_burst_us) / 1e6, accepted_per_s,
        steady_n, steady_s, e2e_per_s, all_n, all_s);
    {
        struct samples q = { 0 };
        for (size_t i = 0; i < g_nagr; i++)
            if (g_agr[i].accepted_ms != 0)
                sample_add(&q, g_agr[i].accepted_ms * 1000 - g_agr[i].order_done_us);
        sample_sort(&q);
        printf("bench delivery burst_latency_ms (queued behind the burst) p50=%.1f p99=%.1f "
               "max=%.1f\n",
               quantile(q.v, q.n, 0.5, 1e3), quantile(q.v, q.n, 0.99, 1e3),
               q.n ? (double)q.v[q.n - 1] / 1e3 : 0.0);
        free(q.v);
    }

    /* 4: paced at a fraction of that rate, so that agreements do not queue. */
    double rate = o.paced_rate > 0 ? o.paced_rate : e2e_per_s * o.paced_fraction;
    size_t paced = (size_t)(rate * o.paced_seconds);
    if (paced > 0) {
        uint64_t t_paced = mono_ns();
        int64_t t_paced_us = now_us();
        place_orders(&orders, PACED, paced, rate);
        double paced_s = secs_since(t_paced);
        printf("bench delivery paced orders=%zu filled=%" PRIu64 " failed=%" PRIu64
               " rate_per_s=%.1f seconds=%.2f\n",
               paced, g_plan.ok, g_plan.failed + g_plan.not_filled, rate, paced_s);
        endpoint_wait(g_nagr);
        print_phase("paced", t_paced_us, now_us());
        accepted = read_acceptances(&op, &next_seq);
    } else {
        printf("bench delivery paced skipped (rate %.1f/s for %.1f s is no order)\n", rate,
               o.paced_seconds);
    }
    uint64_t unknown = 0;
    join_envelopes(&unknown);
    struct samples acc = { 0 }, to_env = { 0 }, at_ep = { 0 }, to_rec = { 0 }, agr_to = { 0 };
    size_t retried = 0;
    for (size_t i = 0; i < g_nagr; i++) {
        const struct agr *a = &g_agr[i];
        retried += a->envelopes > 1;
        if (a->phase != PACED || a->accepted_ms == 0)
            continue;
        sample_add(&acc, a->accepted_ms * 1000 - a->order_done_us);
        if (a->created_ms != 0)
            sample_add(&agr_to, (a->accepted_ms - a->created_ms) * 1000);
        if (a->envelopes > 0) {
            sample_add(&to_env, a->arrive_us - a->order_done_us);
            sample_add(&at_ep, a->answer_us - a->arrive_us);
            sample_add(&to_rec, a->accepted_ms * 1000 - a->answer_us);
        }
    }
    sample_sort(&acc);
    sample_sort(&to_env);
    sample_sort(&at_ep);
    sample_sort(&to_rec);
    sample_sort(&agr_to);
    double acc_p50 = quantile(acc.v, acc.n, 0.5, 1e3), acc_p99 = quantile(acc.v, acc.n, 0.99, 1e3);
    printf("bench delivery paced_latency_ms samples=%zu order_201_to_acceptance p50=%.1f "
           "p90=%.1f p99=%.1f max=%.1f\n",
           acc.n, acc_p50, quantile(acc.v, acc.n, 0.9, 1e3), acc_p99,
           acc.n ? (double)acc.v[acc.n - 1] / 1e3 : 0.0);
    printf("bench delivery paced_parts_ms agreement_record_to_acceptance_record p50=%.1f "
           "p99=%.1f; order_201_to_envelope_arrival p50=%.1f p99=%.1f; endpoint_answer "
           "p50=%.2f p99=%.2f; answer_to_acceptance_record p50=%.1f p99=%.1f\n",
           quantile(agr_to.v, agr_to.n, 0.5, 1e3), quantile(agr_to.v, agr_to.n, 0.99, 1e3),
           quantile(to_env.v, to_env.n, 0.5, 1e3), quantile(to_env.v, to_env.n, 0.99, 1e3),
           quantile(at_ep.v, at_ep.n, 0.5, 1e3), quantile(at_ep.v, at_ep.n, 0.99, 1e3),
           quantile(to_rec.v, to_rec.n, 0.5, 1e3), quantile(to_rec.v, to_rec.n, 0.99, 1e3));
    printf("bench delivery envelopes received=%zu refused=%" PRIu64 " agreements_with_retries=%zu "
           "unknown=%" PRIu64 " accepted=%zu of %zu\n",
           g_nenv, g_env_refused, retried, unknown, accepted, g_nagr);

    /* 5: usage reports for every accepted agreement, by its provider. */
    int nu = o.usage_clients;
    struct drive usage = { .m = curl_multi_init(), .n = nu };
    usage.lanes = calloc(nu > 0 ? (size_t)nu : 1, sizeof *usage.lanes);
    if (usage.m == NULL || usage.lanes == NULL)
        return 1;
    curl_multi_setopt(usage.m, CURLMOPT_MAXCONNECTS, (long)(nu > 0 ? nu : 1));
    size_t metered = 0;
    for (int i = 0; i < nu; i++) {
        int p = i % g_nprov;
        if (!lane_init(&usage.lanes[i], o.cacert, &g_prov[p].kp, g_prov[p].id, i))
            return 1;
        usage.lanes[i].provider = p;
        usage.lanes[i].agrs = calloc(g_nagr ? g_nagr : 1, sizeof(size_t));
        if (usage.lanes[i].agrs == NULL)
            return 1;
    }
    /* A provider's agreements are dealt to its lanes round robin: one lane per agreement, so a
     * report never overlaps one in flight. */
    int lanes_of[PROVIDERS_MAX] = { 0 }, dealt[PROVIDERS_MAX] = { 0 };
    for (int i = 0; i < nu; i++)
        lanes_of[i % g_nprov]++;
    for (size_t k = 0; k < g_nagr && nu > 0; k++) {
        struct agr *a = &g_agr[k];
        if (a->started_s == 0 || lanes_of[a->provider] == 0)
            continue;
        a->metered_until = a->started_s;
        int lane = a->provider + g_nprov * (dealt[a->provider]++ % lanes_of[a->provider]);
        struct lane *c = &usage.lanes[lane];
        c->agrs[c->nagrs++] = k;
        metered++;
    }
    g_use.base = o.url;
    g_use.idempotency = o.idempotency;
    uint64_t t_use = mono_ns();
    g_use.measure_from = t_use + (uint64_t)(o.warmup * 1e9);
    g_use.measure_until = g_use.measure_from + (uint64_t)(o.usage_seconds * 1e9);
    double backlog = 0;
    for (size_t k = 0; k < g_nagr; k++)
        if (g_agr[k].started_s != 0)
            backlog += (double)((int64_t)time(NULL) - g_agr[k].started_s);
    double ucpu0 = cpu_seconds();
    usage.next = usage_next;
    usage.done = usage_done;
    if (nu > 0)
        drive_run(&usage);
    double use_wall = secs_since(t_use), ucpu = cpu_seconds() - ucpu0;
    int64_t use_from_us = now_us() - (int64_t)((mono_ns() - g_use.measure_from) / 1000);
    print_phase("usage", use_from_us, use_from_us + (int64_t)(o.usage_seconds * 1e6));
    double measured = g_use.last_done > g_use.measure_from
                          ? (double)(g_use.last_done - g_use.measure_from) / 1e9
                          : o.usage_seconds;
    double usage_per_s = (double)g_use.ok / measured;
    sample_sort(&g_use.lat);
    double use_p50 = quantile(g_use.lat.v, g_use.lat.n, 0.5, 1e3);
    double use_p99 = quantile(g_use.lat.v, g_use.lat.n, 0.99, 1e3);
    printf("bench delivery usage clients=%d agreements=%zu ended_seconds_at_start=%.0f "
           "warmup_s=%.1f seconds=%.2f reports=%" PRIu64 " settled=%" PRIu64 " failed=%" PRIu64
           " idempotency_key=%s caught_up_waits=%" PRIu64 " loadgen_cpu_pct=%.0f\n",
           nu, metered, backlog, o.warmup, measured, g_use.ok, g_use.settled, g_use.failed,
           o.idempotency ? "yes" : "no", g_use.waits, 100.0 * ucpu / (use_wall > 0 ? use_wall : 1));
    printf("bench delivery usage_latency_ms p50=%.2f p90=%.2f p99=%.2f max=%.2f samples=%zu\n",
           use_p50, quantile(g_use.lat.v, g_use.lat.n, 0.9, 1e3), use_p99,
           g_use.lat.n ? (double)g_use.lat.v[g_use.lat.n - 1] / 1e3 : 0.0, g_use.lat.n);
    if (g_use.failed > 0) {
        printf("bench delivery usage_errors");
        for (int s = 0; s < 600; s++)
            if (g_use.by_status[s] > 0)
                printf(" status_%d=%" PRIu64, s, g_use.by_status[s]);
        printf("\n");
    }
    printf("bench delivery loadgen_cpu_s=%.1f (orders, endpoint and usage together)\n",
           cpu_seconds() - cpu0);
    printf("bench delivery accepted_per_s=%.1f accept_p50_ms=%.1f accept_p99_ms=%.1f "
           "usage_per_s=%.0f usage_p50_ms=%.2f usage_p99_ms=%.2f ed25519_verify_per_s=%.0f "
           "pg_commit_per_s=%.0f\n",
           accepted_per_s, acc_p50, acc_p99, usage_per_s, use_p50, use_p99, verify_per_s,
           commit_per_s);

    for (int i = 0; i < orders.n; i++)
        lane_free(&orders.lanes[i]);
    for (int i = 0; i < usage.n; i++)
        lane_free(&usage.lanes[i]);
    curl_multi_cleanup(orders.m);
    curl_multi_cleanup(usage.m);
    free(orders.lanes);
    free(usage.lanes);
    MHD_stop_daemon(daemon);
    free(g_pem_cert);
    free(g_pem_key);
    for (int i = 0; i < g_nprov; i++)
        cpx_keypair_wipe(&g_prov[i].kp);
    for (int i = 0; i < o.buyers; i++)
        cpx_keypair_wipe(&buyer_kp[i]);
    free(buyer_kp);
    free(buyer_id);
    free(g_agr);
    free(g_env);
    free(acc.v);
    free(to_env.v);
    free(at_ep.v);
    free(to_rec.v);
    free(agr_to.v);
    free(g_plan.lat.v);
    free(g_use.lat.v);
    client_free(&op);
    curl_global_cleanup();
    bool ok = accepted > 0 && (nu == 0 || g_use.ok > 0) && g_use.failed == 0;
    return ok ? 0 : 1;
}
