/*
 * Delivery and billing against a real cpxd (make bench-delivery, which starts a private
 * PostgreSQL with fsync on and a private cpxd with --dispute-window 0, see
 * scripts/bench-delivery.sh): how fast the dispatcher turns agreements into accepted jobs, and
 * how fast signed usage reports become bills that settle (docs/delivery.md §2–§4), next to the
 * machine's Ed25519 verification and single-row commit rates.
 *
 *   1. ed25519_verify_per_s and pg_commit_per_s: measured as bench/bench_trading.c measures them
 *      (one verifying thread per core for ~1 s; one INSERT per transaction over one connection
 *      for ~2 s), by the code both share (bench/kit.c, as are the set-up and the clients).
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
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/kit.h"
#include "ledger/keyfile.h"
#include "ledger/reqsig.h"
#include "server/util.h"

#define LISTING_DEVICES 1000000LL /* enough that no listing runs out */
#define PROVIDERS_MAX   8         /* one region each: cpxd has eight */
#define REPLY_KEEP      4096
#define STALL_SECONDS   20 /* waiting for acceptances gives up after this long without one */
#define BODY_MAX        (1u << 20)
#define GATE_MAX_S      6

struct opts {
    struct kit_cpxd cpxd; /* --url, --cacert, --operator-key, --pg-url */
    const char *tls_key, *exchange_key;
    int providers, buyers, agreements, usage_clients;
    double paced_fraction, paced_rate, paced_seconds, usage_seconds, warmup;
    bool verify_envelopes, idempotency;
};

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
    struct kit_key key;
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
        snprintf(auth.id, sizeof auth.id, "%s", g_prov[p].key.id);
        if (!cpx_reqsig_sign(&g_prov[p].key.kp, "POST", target, (int64_t)time(NULL), body,
                             strlen(body), &auth)) {
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
        kit_report_error("bench_delivery: the endpoint refused an envelope to %s: %u %s\n",
                         q->target, status, body);
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
    g_pem_cert = read_file(o->cpxd.cacert, BODY_MAX, &len);
    g_pem_key = read_file(o->tls_key, BODY_MAX, &len);
    if (g_pem_cert == NULL || g_pem_key == NULL) {
        fprintf(stderr, "bench_delivery: cannot read %s or %s for the endpoint\n", o->cpxd.cacert,
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
    while (g_nenv < want && kit_secs_since(last_progress) < STALL_SECONDS) {
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

/* ---- 3. and 4. the load: kit lanes on one libcurl multi handle ---------------------------- */

/* A lane's own state (its kit_lane's user). */
struct lane {
    int provider;                /* order lanes: the provider (region) of the order in flight */
    size_t *agrs, nagrs, cursor; /* usage lanes: indices into g_agr, and the next to try */
    size_t cur;                  /* usage lanes: the agreement in flight */
    int64_t period_start;        /* ... and its period */
};

/* Sets d up for n lanes, each with its own state as its user; none of them started. */
static bool drive_init(struct kit_drive *d, int n)
{
    size_t k = n > 0 ? (size_t)n : 1;
    *d = (struct kit_drive){ .m = curl_multi_init(), .n = n };
    d->lanes = calloc(k, sizeof *d->lanes);
    d->user = calloc(k, sizeof(struct lane));
    if (d->m == NULL || d->lanes == NULL || d->user == NULL)
        return false;
    curl_multi_setopt(d->m, CURLMOPT_MAXCONNECTS, (long)k);
    return true;
}

/* Lane i of d, signing as id with kp. */
static bool lane_init(struct kit_drive *d, int i, const char *cacert, const struct cpx_keypair *kp,
                      const char *id)
{
    struct lane *state = d->user;
    if (!kit_lane_init(&d->lanes[i], cacert, kp, id, i, REPLY_KEEP))
        return false;
    d->lanes[i].user = &state[i];
    return true;
}

static void drive_free(struct kit_drive *d)
{
    struct lane *state = d->user;
    for (int i = 0; i < d->n; i++) {
        kit_lane_free(&d->lanes[i]);
        free(state[i].agrs);
    }
    curl_multi_cleanup(d->m);
    free(d->lanes);
    free(state);
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
    struct kit_samples lat; /* order round trips, µs */
};

static struct order_plan g_plan;

static enum kit_next order_next(struct kit_drive *d, struct kit_lane *l, uint64_t now, uint64_t *at)
{
    (void)d;
    struct order_plan *p = &g_plan;
    struct lane *c = l->user;
    if (p->sent >= p->total)
        return KIT_STOP;
    if (p->rate > 0) {
        uint64_t due = p->t0 + (uint64_t)((double)p->sent / p->rate * 1e9);
        if (due > now) {
            *at = due;
            return KIT_WAIT;
        }
    }
    size_t k = p->sent++;
    c->provider = (int)(k % (size_t)g_nprov);
    char coid[64];
    snprintf(coid, sizeof coid, "%s-%c%zu", p->run, p->phase == BURST ? 'b' : 'p', k);
    struct cpx_canon_writer *w = &l->cw;
    cpx_canon_writer_reset(w);
    cpx_canon_begin_object(w);
    cpx_canon_kv_string(w, "client_order_id", coid);
    cpx_canon_kv_int(w, "devices", 1);
    cpx_canon_kv_int(w, "hours", 1);
    cpx_canon_kv_int(w, "limit_price_micro", KIT_ASK_MICRO);
    cpx_canon_kv_string(w, "precision", "bf16");
    cpx_canon_key(w, "regions", 7);
    cpx_canon_begin_array(w);
    const char *region = g_prov[c->provider].region;
    cpx_canon_string(w, region, strlen(region));
    cpx_canon_end_array(w);
    cpx_canon_kv_string(w, "time_in_force", "ioc");
    cpx_canon_end_object(w);
    if (!kit_lane_prepare(l, p->base, "/v1/orders", NULL)) {
        kit_report_error("bench_delivery: cannot build or sign an order\n");
        return KIT_STOP;
    }
    return KIT_SEND;
}

static void order_done(struct kit_drive *d, struct kit_lane *l, CURLcode rc, long status,
                       uint64_t done)
{
    (void)d;
    struct order_plan *p = &g_plan;
    struct lane *c = l->user;
    int64_t wall = now_us();
    if (rc != CURLE_OK || status != 201) {
        kit_report_error("bench_delivery: POST /v1/orders: %s %ld %s\n",
                         rc != CURLE_OK ? curl_easy_strerror(rc) : "answered", status, l->reply);
        p->failed++;
        return;
    }
    json_t *j = json_loadb(l->reply, l->reply_len, 0, NULL);
    const char *st = json_string_value(json_object_get(j, "status"));
    const char *id = json_string_value(json_array_get(json_object_get(j, "agreements"), 0));
    if (st == NULL || strcmp(st, "filled") != 0 || id == NULL ||
        json_array_size(json_object_get(j, "agreements")) != 1) {
        kit_report_error("bench_delivery: an order did not fill into one agreement: %s\n",
                         l->reply);
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
        kit_sample_add(&p->lat, (int64_t)(done - l->started) / 1000);
    }
    json_decref(j);
}

static void place_orders(struct kit_drive *d, int phase, size_t total, double rate)
{
    struct kit_samples lat = g_plan.lat;
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
    kit_drive_run(d);
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
    struct kit_samples lat; /* µs */
};

static struct usage_run g_use;

static enum kit_next usage_next(struct kit_drive *d, struct kit_lane *l, uint64_t now, uint64_t *at)
{
    (void)d;
    struct usage_run *u = &g_use;
    struct lane *c = l->user;
    if (now >= u->measure_until || c->nagrs == 0)
        return KIT_STOP;
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
        char from[32], to[32], target[96], idem[128];
        time_t t0 = (time_t)a->metered_until, t1 = t0 + 1;
        struct tm tm;
        strftime(from, sizeof from, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t0, &tm));
        strftime(to, sizeof to, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t1, &tm));
        struct cpx_canon_writer *w = &l->cw;
        cpx_canon_writer_reset(w);
        cpx_canon_begin_object(w);
        cpx_canon_kv_int(w, "device_seconds", 1);
        cpx_canon_kv_string(w, "period_end", to);
        cpx_canon_kv_string(w, "period_start", from);
        cpx_canon_end_object(w);
        snprintf(target, sizeof target, "/v1/agreements/%s/usage", a->id);
        snprintf(idem, sizeof idem, "Idempotency-Key: use-%s-%" PRId64, a->id, a->metered_until);
        if (!kit_lane_prepare(l, u->base, target, u->idempotency ? idem : NULL)) {
            kit_report_error("bench_delivery: cannot build or sign a usage report\n");
            return KIT_STOP;
        }
        return KIT_SEND;
    }
    u->waits++;
    *at = now + 20000000ull; /* every agreement is metered up to now: wait for the clock */
    return KIT_WAIT;
}

static void usage_done(struct kit_drive *d, struct kit_lane *l, CURLcode rc, long status,
                       uint64_t done)
{
    (void)d;
    struct usage_run *u = &g_use;
    struct lane *c = l->user;
    struct agr *a = &g_agr[c->cur];
    bool measured = l->started >= u->measure_from && l->started < u->measure_until;
    if (rc != CURLE_OK || status != 201) {
        kit_report_error("bench_delivery: POST /v1/agreements/%s/usage: %s %ld %s\n", a->id,
                         rc != CURLE_OK ? curl_easy_strerror(rc) : "answered", status, l->reply);
        a->dead = true;
        u->failed++;
        u->by_status[status > 0 && status < 600 ? status : 0]++;
        return;
    }
    a->metered_until = c->period_start + 1;
    if (!measured)
        return;
    u->ok++;
    if (strstr(l->reply, "\"status\":\"settled\"") != NULL)
        u->settled++;
    kit_sample_add(&u->lat, (int64_t)(done - l->started) / 1000);
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

static bool parse_opts(struct opts *o, int argc, char **argv)
{
    static const char *const flags[] = {
        "--url",           "--cacert",         "--tls-key",    "--operator-key",
        "--exchange-key",  "--pg-url",         "--providers",  "--buyers",
        "--agreements",    "--paced-fraction", "--paced-rate", "--paced-seconds",
        "--usage-clients", "--usage-seconds",  "--warmup",     "--verify-envelopes",
        "--idempotency"
    };
    if (!kit_flags_known(argc, argv, flags, sizeof flags / sizeof flags[0])) {
        fprintf(stderr, "usage: cpx-bench-delivery --url URL --cacert FILE --tls-key FILE "
                        "--operator-key FILE [--exchange-key FILE] [--pg-url URL] "
                        "[--providers P] [--buyers B] [--agreements K] [--paced-fraction F] "
                        "[--paced-rate R] "
                        "[--paced-seconds S] [--usage-clients U] [--usage-seconds D] "
                        "[--warmup W] [--verify-envelopes 0|1] [--idempotency 0|1]\n(or the "
                        "CPX_BENCH_* variables; see bench/bench_delivery.c)\n");
        return false;
    }
    kit_cpxd_settings(&o->cpxd, argc, argv);
    o->tls_key = kit_setting(argc, argv, "--tls-key", "CPX_BENCH_TLS_KEY", NULL);
    o->exchange_key = kit_setting(argc, argv, "--exchange-key", "CPX_BENCH_EXCHANGE_KEY", NULL);
    o->providers = atoi(kit_setting(argc, argv, "--providers", "CPX_BENCH_PROVIDERS", "4"));
    o->buyers = atoi(kit_setting(argc, argv, "--buyers", "CPX_BENCH_BUYERS", "8"));
    o->agreements = atoi(kit_setting(argc, argv, "--agreements", "CPX_BENCH_AGREEMENTS", "600"));
    o->paced_fraction =
        atof(kit_setting(argc, argv, "--paced-fraction", "CPX_BENCH_PACED_FRACTION", "0.5"));
    o->paced_rate = atof(kit_setting(argc, argv, "--paced-rate", "CPX_BENCH_PACED_RATE", "0"));
    o->paced_seconds =
        atof(kit_setting(argc, argv, "--paced-seconds", "CPX_BENCH_PACED_SECONDS", "5"));
    o->usage_clients =
        atoi(kit_setting(argc, argv, "--usage-clients", "CPX_BENCH_USAGE_CLIENTS", "16"));
    o->usage_seconds =
        atof(kit_setting(argc, argv, "--usage-seconds", "CPX_BENCH_USAGE_SECONDS", "5"));
    o->warmup = atof(kit_setting(argc, argv, "--warmup", "CPX_BENCH_WARMUP", "1"));
    o->verify_envelopes =
        atoi(kit_setting(argc, argv, "--verify-envelopes", "CPX_BENCH_VERIFY_ENVELOPES", "1")) != 0;
    o->idempotency =
        atoi(kit_setting(argc, argv, "--idempotency", "CPX_BENCH_IDEMPOTENCY", "1")) != 0;
    if (o->cpxd.url == NULL || o->cpxd.cacert == NULL || o->tls_key == NULL ||
        o->cpxd.operator_key == NULL) {
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
    char run[16], tag[20];
    if (!kit_start("bench_delivery", NULL, run))
        return 1;
    snprintf(tag, sizeof tag, "D%s", run); /* in the identities' reg_no */
    printf("bench delivery machine cores=%ld loadavg_1m=%.2f providers=%d buyers=%d "
           "agreements=%d usage_clients=%d\n",
           sysconf(_SC_NPROCESSORS_ONLN), kit_loadavg_1m(), o.providers, o.buyers, o.agreements,
           o.usage_clients);

    /* 1: the physical limits, while cpxd is idle. A signed usage report's string is
     * "POST\n/v1/agreements/<id>/usage\n<ts>\n<64 hex>". */
    double verify_per_s =
        kit_verify_rate("/v1/agreements/agr_000000000001/usage",
                        "{\"device_seconds\":1,\"period_end\":\"2026-11-29T08:00:01Z\","
                        "\"period_start\":\"2026-11-29T08:00:00Z\"}");
    double commit_per_s = kit_commit_rate(o.cpxd.pg_url, "bench_commit_dlv", false);

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
    if (!kit_operator(&op, &o.cpxd))
        return 1;
    char region_ids[PROVIDERS_MAX][64];
    int nregions = kit_regions(&op, region_ids, PROVIDERS_MAX);
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
        if (!kit_identity(&p, &op, "provider", i, tag, run) ||
            !kit_create_listing(&p, g_prov[i].region, endpoint, LISTING_DEVICES, g_prov[i].listing))
            return 1;
        kit_keep_key(&p, &g_prov[i].key);
    }
    struct kit_key *buyers = kit_buyers(&op, o.buyers, tag, run);
    if (buyers == NULL)
        return 1;
    printf("bench delivery setup providers=%d buyers=%d endpoint=https://127.0.0.1:%u/p/<i> "
           "verify_envelopes=%s ask=%.2f deposit_per_buyer=%s seconds=%.2f\n",
           g_nprov, o.buyers, port, o.verify_envelopes ? "yes" : "no", (double)KIT_ASK_MICRO / 1e6,
           KIT_DEPOSIT, kit_secs_since(t_setup));
    int64_t ledger_from = ledger_size(&op);
    if (ledger_from < 0) {
        fprintf(stderr, "bench_delivery: cannot read the ledger's size\n");
        return 1;
    }

    /* 3: the burst. */
    struct kit_drive orders;
    if (!drive_init(&orders, o.buyers))
        return 1;
    for (int i = 0; i < o.buyers; i++)
        if (!lane_init(&orders, i, o.cpxd.cacert, &buyers[i].kp, buyers[i].id))
            return 1;
    g_plan.base = o.cpxd.url;
    g_plan.run = run;
    double cpu0 = kit_cpu_seconds();
    uint64_t t_burst = mono_ns();
    int64_t t_burst_us = now_us();
    gate_close();
    place_orders(&orders, BURST, (size_t)o.agreements, 0);
    int64_t released_us = gate_open();
    size_t burst_ok = g_plan.ok;
    double orders_s = kit_secs_since(t_burst);
    kit_sample_sort(&g_plan.lat);
    printf("bench delivery burst orders=%zu filled=%" PRIu64 " not_filled=%" PRIu64
           " failed=%" PRIu64 " seconds=%.2f orders_per_s=%.0f order_p50_ms=%.2f "
           "order_p99_ms=%.2f\n",
           (size_t)o.agreements, g_plan.ok, g_plan.not_filled, g_plan.failed, orders_s,
           (double)g_plan.ok / (orders_s > 0 ? orders_s : 1),
           kit_quantile(g_plan.lat.v, g_plan.lat.n, 0.5, 1e3),
           kit_quantile(g_plan.lat.v, g_plan.lat.n, 0.99, 1e3));
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
        struct kit_samples q = { 0 };
        for (size_t i = 0; i < g_nagr; i++)
            if (g_agr[i].accepted_ms != 0)
                kit_sample_add(&q, g_agr[i].accepted_ms * 1000 - g_agr[i].order_done_us);
        kit_sample_sort(&q);
        printf("bench delivery burst_latency_ms (queued behind the burst) p50=%.1f p99=%.1f "
               "max=%.1f\n",
               kit_quantile(q.v, q.n, 0.5, 1e3), kit_quantile(q.v, q.n, 0.99, 1e3),
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
        double paced_s = kit_secs_since(t_paced);
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
    struct kit_samples acc = { 0 }, to_env = { 0 }, at_ep = { 0 }, to_rec = { 0 }, agr_to = { 0 };
    size_t retried = 0;
    for (size_t i = 0; i < g_nagr; i++) {
        const struct agr *a = &g_agr[i];
        retried += a->envelopes > 1;
        if (a->phase != PACED || a->accepted_ms == 0)
            continue;
        kit_sample_add(&acc, a->accepted_ms * 1000 - a->order_done_us);
        if (a->created_ms != 0)
            kit_sample_add(&agr_to, (a->accepted_ms - a->created_ms) * 1000);
        if (a->envelopes > 0) {
            kit_sample_add(&to_env, a->arrive_us - a->order_done_us);
            kit_sample_add(&at_ep, a->answer_us - a->arrive_us);
            kit_sample_add(&to_rec, a->accepted_ms * 1000 - a->answer_us);
        }
    }
    kit_sample_sort(&acc);
    kit_sample_sort(&to_env);
    kit_sample_sort(&at_ep);
    kit_sample_sort(&to_rec);
    kit_sample_sort(&agr_to);
    double acc_p50 = kit_quantile(acc.v, acc.n, 0.5, 1e3),
           acc_p99 = kit_quantile(acc.v, acc.n, 0.99, 1e3);
    printf("bench delivery paced_latency_ms samples=%zu order_201_to_acceptance p50=%.1f "
           "p90=%.1f p99=%.1f max=%.1f\n",
           acc.n, acc_p50, kit_quantile(acc.v, acc.n, 0.9, 1e3), acc_p99,
           acc.n ? (double)acc.v[acc.n - 1] / 1e3 : 0.0);
    printf("bench delivery paced_parts_ms agreement_record_to_acceptance_record p50=%.1f "
           "p99=%.1f; order_201_to_envelope_arrival p50=%.1f p99=%.1f; endpoint_answer "
           "p50=%.2f p99=%.2f; answer_to_acceptance_record p50=%.1f p99=%.1f\n",
           kit_quantile(agr_to.v, agr_to.n, 0.5, 1e3), kit_quantile(agr_to.v, agr_to.n, 0.99, 1e3),
           kit_quantile(to_env.v, to_env.n, 0.5, 1e3), kit_quantile(to_env.v, to_env.n, 0.99, 1e3),
           kit_quantile(at_ep.v, at_ep.n, 0.5, 1e3), kit_quantile(at_ep.v, at_ep.n, 0.99, 1e3),
           kit_quantile(to_rec.v, to_rec.n, 0.5, 1e3), kit_quantile(to_rec.v, to_rec.n, 0.99, 1e3));
    printf("bench delivery envelopes received=%zu refused=%" PRIu64 " agreements_with_retries=%zu "
           "unknown=%" PRIu64 " accepted=%zu of %zu\n",
           g_nenv, g_env_refused, retried, unknown, accepted, g_nagr);

    /* 5: usage reports for every accepted agreement, by its provider. */
    int nu = o.usage_clients;
    struct kit_drive usage;
    if (!drive_init(&usage, nu))
        return 1;
    struct lane *use_lanes = usage.user;
    size_t metered = 0;
    for (int i = 0; i < nu; i++) {
        int p = i % g_nprov;
        if (!lane_init(&usage, i, o.cpxd.cacert, &g_prov[p].key.kp, g_prov[p].key.id))
            return 1;
        use_lanes[i].provider = p;
        use_lanes[i].agrs = calloc(g_nagr ? g_nagr : 1, sizeof(size_t));
        if (use_lanes[i].agrs == NULL)
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
        struct lane *c = &use_lanes[lane];
        c->agrs[c->nagrs++] = k;
        metered++;
    }
    g_use.base = o.cpxd.url;
    g_use.idempotency = o.idempotency;
    uint64_t t_use = mono_ns();
    g_use.measure_from = t_use + (uint64_t)(o.warmup * 1e9);
    g_use.measure_until = g_use.measure_from + (uint64_t)(o.usage_seconds * 1e9);
    double backlog = 0;
    for (size_t k = 0; k < g_nagr; k++)
        if (g_agr[k].started_s != 0)
            backlog += (double)((int64_t)time(NULL) - g_agr[k].started_s);
    double ucpu0 = kit_cpu_seconds();
    usage.next = usage_next;
    usage.done = usage_done;
    if (nu > 0)
        kit_drive_run(&usage);
    double use_wall = kit_secs_since(t_use), ucpu = kit_cpu_seconds() - ucpu0;
    int64_t use_from_us = now_us() - (int64_t)((mono_ns() - g_use.measure_from) / 1000);
    print_phase("usage", use_from_us, use_from_us + (int64_t)(o.usage_seconds * 1e6));
    double measured = g_use.last_done > g_use.measure_from
                          ? (double)(g_use.last_done - g_use.measure_from) / 1e9
                          : o.usage_seconds;
    double usage_per_s = (double)g_use.ok / measured;
    kit_sample_sort(&g_use.lat);
    double use_p50 = kit_quantile(g_use.lat.v, g_use.lat.n, 0.5, 1e3);
    double use_p99 = kit_quantile(g_use.lat.v, g_use.lat.n, 0.99, 1e3);
    printf("bench delivery usage clients=%d agreements=%zu ended_seconds_at_start=%.0f "
           "warmup_s=%.1f seconds=%.2f reports=%" PRIu64 " settled=%" PRIu64 " failed=%" PRIu64
           " idempotency_key=%s caught_up_waits=%" PRIu64 " loadgen_cpu_pct=%.0f\n",
           nu, metered, backlog, o.warmup, measured, g_use.ok, g_use.settled, g_use.failed,
           o.idempotency ? "yes" : "no", g_use.waits, 100.0 * ucpu / (use_wall > 0 ? use_wall : 1));
    printf("bench delivery usage_latency_ms p50=%.2f p90=%.2f p99=%.2f max=%.2f samples=%zu\n",
           use_p50, kit_quantile(g_use.lat.v, g_use.lat.n, 0.9, 1e3), use_p99,
           g_use.lat.n ? (double)g_use.lat.v[g_use.lat.n - 1] / 1e3 : 0.0, g_use.lat.n);
    if (g_use.failed > 0) {
        printf("bench delivery usage_errors");
        for (int s = 0; s < 600; s++)
            if (g_use.by_status[s] > 0)
                printf(" status_%d=%" PRIu64, s, g_use.by_status[s]);
        printf("\n");
    }
    printf("bench delivery loadgen_cpu_s=%.1f (orders, endpoint and usage together)\n",
           kit_cpu_seconds() - cpu0);
    printf("bench delivery accepted_per_s=%.1f accept_p50_ms=%.1f accept_p99_ms=%.1f "
           "usage_per_s=%.0f usage_p50_ms=%.2f usage_p99_ms=%.2f ed25519_verify_per_s=%.0f "
           "pg_commit_per_s=%.0f\n",
           accepted_per_s, acc_p50, acc_p99, usage_per_s, use_p50, use_p99, verify_per_s,
           commit_per_s);

    drive_free(&orders);
    drive_free(&usage);
    MHD_stop_daemon(daemon);
    free(g_pem_cert);
    free(g_pem_key);
    for (int i = 0; i < g_nprov; i++)
        cpx_keypair_wipe(&g_prov[i].key.kp);
    kit_keys_free(buyers, o.buyers);
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
