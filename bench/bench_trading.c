/*
 * Signed orders over HTTPS against a real cpxd (make bench-trading, which starts a private
 * PostgreSQL with fsync on and a private cpxd, see scripts/bench-trading.sh), next to the two
 * physical limits of an order: one Ed25519 verification (every signed order costs one) and the
 * sequencer's commit on the same PostgreSQL.
 *
 *   1. ed25519_verify_per_s: libsodium's crypto_sign_verify_detached over a message the size of a
 *      signed order string, on one thread per online core for ~1 s, summed over the threads
 *      (cpxd verifies on all its HTTP threads, so all cores is the comparable figure).
 *   2. pg_commit_per_s: one single-row INSERT per transaction (autocommit) over one libpq
 *      connection for ~2 s, into a table of its own that is dropped afterwards.
 *   3. Setup: one provider and N buyers (each its own identity, so signatures and replay guards
 *      are realistic) register with canonical bodies and are approved by the operator, who then
 *      deposits money to every buyer; the provider lists plenty of devices at an ask price.
 *   4. Load: N clients, each with its own libcurl easy handle and kept-alive TLS connection
 *      (verified against the private cpxd's self-signed certificate), send signed
 *      POST /v1/orders back to back: a warm-up, then D measured seconds. Limit prices are drawn
 *      around the ask so about a quarter of the orders cross and fill, the rest rest on the book.
 *      Every answer must be 201; anything else is printed on stderr and counted.
 *
 * The clients are driven by libcurl multi handles on a few threads (--loadgen-threads), not one
 * thread per client: on a small machine the load generator shares the cores with cpxd, and
 * 64 threads would cost more than they measure. Its own CPU use is printed.
 *
 * Output: informative lines that start with "bench trading ", then, as the last line,
 * "bench trading orders_per_s=<x> p50_ms=<a> p99_ms=<b> ed25519_verify_per_s=<v>
 * pg_commit_per_s=<c>". The targets the numbers are judged by (printed, never enforced): orders at
 * least half the verification rate and at least 5 x the commit rate, with p99 under 20 ms.
 *
 * Settings (flag, or environment variable):
 *   --url URL              CPX_BENCH_URL           cpxd's base URL (required)
 *   --cacert FILE          CPX_BENCH_CACERT        its TLS certificate (required)
 *   --operator-key FILE    CPX_BENCH_OPERATOR_KEY  the bootstrap operator's key file (required)
 *   --pg-url URL           CPX_BENCH_PG_URL        a PostgreSQL URL that may create a table
 *   --clients N            CPX_BENCH_CLIENTS       concurrent clients (default 64)
 *   --seconds D            CPX_BENCH_SECONDS       measured seconds (default 10)
 *   --warmup W             CPX_BENCH_WARMUP        unmeasured seconds first (default 1)
 *   --loadgen-threads T    CPX_BENCH_LOADGEN_THREADS  threads driving the clients (default 1)
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "clients/common/client.h"
#include "ledger/canon.h"
#include "ledger/crypto.h"
#include "ledger/keyfile.h"
#include "ledger/reqsig.h"
#include "server/util.h"

#define ORDER_TARGET    "/v1/orders"
#define ASK_MICRO       15200000LL   /* the provider's ask per PFLOPS-hour: 15.2 CNY */
#define LISTING_DEVICES 100000000LL  /* enough that the listing never runs out */
#define LISTING_TFLOPS  989          /* bf16 TFLOPS per device (an H100 SXM, dense) */
#define DEPOSIT         "1000000000" /* CNY per buyer: orders never run out of money */
#define REPLY_KEEP      1024         /* bytes of an answer kept, for error messages */
#define ERRORS_SHOWN    20           /* non-201 answers printed in full; later ones only counted */
#define VERIFY_SECONDS  1.0
#define COMMIT_SECONDS  2.0

struct opts {
    const char *url, *cacert, *operator_key, *pg_url;
    int clients, loadgen_threads;
    double seconds, warmup;
};

static double secs_since(uint64_t start_ns)
{
    return (double)(mono_ns() - start_ns) / 1e9;
}

/* ---- 1. raw Ed25519 verification ---------------------------------------------------------- */

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
    /* A signed string of an order: "POST\n/v1/orders\n<ts>\n<64 hex>". */
    const char body[] = "{\"client_order_id\":\"x\"}";
    char msg[CPX_REQSIG_MESSAGE_MAX];
    long len = cpx_reqsig_message("POST", ORDER_TARGET, (int64_t)time(NULL), body, sizeof body - 1,
                                  msg, sizeof msg);
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

/* Verifications per second summed over one thread per online core; 0 on failure. */
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
        fprintf(stderr, "bench_trading: a valid signature failed to verify\n");
        return 0;
    }
    return per_s;
}

/* ---- 2. PostgreSQL single-row commits ----------------------------------------------------- */

static bool pg_ok(PGconn *pg, PGresult *r, const char *what)
{
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "bench_trading: %s: %s", what, PQerrorMessage(pg));
    PQclear(r);
    return ok;
}

/* Commits per second of one INSERT per transaction; 0 on failure. */
static double bench_commit(const char *url, char *settings, size_t cap)
{
    PGconn *pg = PQconnectdb(url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "bench_trading: cannot connect to PostgreSQL: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return 0;
    }
    /* What makes a commit durable, shown so the number can be judged. */
    PGresult *r =
        PQexec(pg, "SELECT current_setting('fsync'), current_setting('synchronous_commit'),"
                   " current_setting('wal_sync_method'), current_setting('server_version')");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        const char *version = PQgetvalue(r, 0, 3); /* "15.18 (Debian ...)": the number only */
        snprintf(settings, cap, "fsync=%s synchronous_commit=%s wal_sync_method=%s version=%.*s",
                 PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
                 (int)strcspn(version, " "), version);
    }
    PQclear(r);
    double per_s = 0;
    if (!pg_ok(pg, PQexec(pg, "SET client_min_messages TO warning"), "set") ||
        !pg_ok(pg, PQexec(pg, "DROP TABLE IF EXISTS bench_commit"), "drop table") ||
        !pg_ok(pg, PQexec(pg, "CREATE TABLE bench_commit(id bigserial PRIMARY KEY, v bigint)"),
               "create table") ||
        !pg_ok(pg, PQprepare(pg, "ins", "INSERT INTO bench_commit(v) VALUES ($1::bigint)", 1, NULL),
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
    pg_ok(pg, PQexec(pg, "DROP TABLE IF EXISTS bench_commit"), "drop table");
    PQfinish(pg);
    return per_s;
}

/* ---- 3. setup over the API ---------------------------------------------------------------- */

/* The canonical text of the document written into w, malloc'd; NULL (with a message) if bad. */
static char *canon_text(struct cpx_canon_writer *w, const char *what)
{
    const uint8_t *out;
    size_t len;
    enum cpx_canon_error e = cpx_canon_writer_finish(w, &out, &len);
    if (e != CPX_CANON_OK) {
        fprintf(stderr, "bench_trading: %s body: %s\n", what, cpx_canon_error_text(e));
        return NULL;
    }
    return strndup((const char *)out, len);
}

/* Sends a signed POST; true when the answer has status want. Prints the answer otherwise. */
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
        fprintf(stderr, "bench_trading: POST %s: %s\n", target, r.error);
    } else if (r.status != want) {
        fprintf(stderr, "bench_trading: POST %s answered %ld, not %ld: %s\n", target, r.status,
                want, r.body ? r.body : "");
        const char *code =
            json_string_value(json_object_get(json_object_get(r.json, "error"), "code"));
        if (r.status == 404 && code != NULL && strcmp(code, "not_found") == 0)
            fprintf(stderr,
                    "bench_trading: cpxd has no route for POST %s: the trading "
                    "endpoints (docs/trading.md) are not in server/routes.c yet\n",
                    target);
        ok = false;
    }
    if (ok && json_out != NULL) {
        *json_out = r.json;
        r.json = NULL;
    }
    client_reply_free(&r);
    return ok;
}

/* A new in-memory key for cl, registered with role `role`; fills id. */
static bool register_identity(struct client *cl, const char *role, int n, const char *run)
{
    cpx_keypair_generate(&cl->key.kp);
    cpx_identity_id_for_key(cl->key.kp.pk, cl->key.identity);
    cl->have_key = true;
    char pk[45], name[64], reg_no[64];
    cpx_public_key_encode(cl->key.kp.pk, pk);
    snprintf(name, sizeof name, "Bench %s %d", role, n);
    snprintf(reg_no, sizeof reg_no, "BENCH-%s-%c%d", run, role[0] == 'b' ? 'B' : 'P', n);
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

/* The first region of GET /v1/regions into region (64 bytes). */
static bool first_region(struct client *cl, char region[64])
{
    struct client_reply r;
    bool ok = client_call(cl, "GET", "/v1/regions", NULL, false, NULL, &r) && r.status == 200;
    const char *id = ok ? json_string_value(json_object_get(
                              json_array_get(json_object_get(r.json, "items"), 0), "id"))
                        : NULL;
    if (id != NULL)
        snprintf(region, 64, "%s", id);
    else
        fprintf(stderr, "bench_trading: GET /v1/regions: %ld %s\n", r.status,
                r.body ? r.body : r.error);
    client_reply_free(&r);
    return id != NULL;
}

static bool create_listing(struct client *provider, const char *region, char listing_id[64])
{
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_canon_begin_object(&w);
    cpx_canon_kv_string(&w, "device_type", "gpu");
    cpx_canon_kv_int(&w, "devices", LISTING_DEVICES);
    cpx_canon_kv_string(&w, "endpoint", "https://provider.bench.invalid/jobs");
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
    cpx_canon_kv_string(&w, "region", region);
    cpx_canon_kv_string(&w, "time_in_force", "gtc");
    cpx_canon_kv_string(&w, "vendor", "nvidia");
    cpx_canon_end_object(&w);
    char *body = canon_text(&w, "listing");
    cpx_canon_writer_free(&w);
    json_t *j = NULL;
    bool ok = body != NULL && post(provider, "/v1/listings", body, NULL, 201, &j);
    free(body);
    if (ok) {
        const char *id = json_string_value(json_object_get(j, "id"));
        snprintf(listing_id, 64, "%s", id != NULL ? id : "?");
    }
    json_decref(j);
    return ok;
}

/* ---- 4. the load ---------------------------------------------------------------------------- */

/* Phases, shared by all load threads: set once before they start. */
static uint64_t g_measure_from; /* mono_ns when measurement starts (after the warm-up) */
static uint64_t g_measure_until;
/* The measured window in buckets (at most TIMELINE_MAX), to show whether the rate holds. */
#define TIMELINE_MAX 64
static uint64_t g_bucket_ns;
static int g_nbuckets;

struct worker;

/* One client: a buyer identity with its own easy handle (and so its own kept-alive connection). */
struct conn {
    struct worker *w;
    CURL *h;
    struct cpx_keypair kp;
    char id[CPX_ID_MAX];
    int index;
    uint64_t seq;     /* orders sent */
    uint64_t rng;     /* xorshift state */
    uint64_t started; /* mono_ns the request in flight was added */
    struct curl_slist *headers;
    struct cpx_canon_writer cw;
    char body[512];
    size_t body_len;
    char reply[REPLY_KEEP];
    size_t reply_len;
};

struct worker {
    pthread_t th;
    CURLM *m;
    struct conn *conns;
    int n;
    const char *region, *run;
    /* results of the measured phase */
    uint32_t *lat_us;
    size_t nlat, caplat;
    uint64_t ok, filled, resting, other_status, non201, transport;
    uint64_t by_status[600];
    uint64_t timeline[TIMELINE_MAX]; /* 201 answers completed in each bucket */
    uint64_t last_done;              /* mono_ns of the last measured completion */
    uint64_t connects; /* new connections opened by measured requests (keep-alive: 0) */
    bool failed;
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
        fprintf(stderr, "bench_trading: more errors; only counted from here on\n");
    }
    g_errors_shown++;
    pthread_mutex_unlock(&g_err_lock);
}

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static size_t on_reply(char *data, size_t size, size_t n, void *arg)
{
    struct conn *c = arg;
    size_t len = size * n, room = sizeof c->reply - 1 - c->reply_len;
    size_t take = len < room ? len : room;
    memcpy(c->reply + c->reply_len, data, take);
    c->reply_len += take;
    c->reply[c->reply_len] = '\0';
    return len;
}

/*
 * The next order of c: signed now, with a fresh client_order_id. Limit prices are drawn in whole
 * fen from 85% to 105% of the ask, so about one order in four crosses the listing.
 */
static bool prepare_order(struct conn *c)
{
    uint64_t r = next_rand(&c->rng);
    int64_t limit = ASK_MICRO * (int64_t)(850 + r % 201) / 1000 / 10000 * 10000;
    int64_t devices = 1 + (int64_t)((r >> 8) % 4), hours = 1 + (int64_t)((r >> 16) % 8);
    char coid[64];
    snprintf(coid, sizeof coid, "%s-%d-%" PRIu64, c->w->run, c->index, c->seq++);
    struct cpx_canon_writer *w = &c->cw;
    cpx_canon_writer_reset(w);
    cpx_canon_begin_object(w);
    cpx_canon_kv_string(w, "client_order_id", coid);
    cpx_canon_key(w, "constraints", 11);
    cpx_canon_begin_object(w);
    cpx_canon_kv_int(w, "max_tflops", LISTING_TFLOPS);
    cpx_canon_end_object(w);
    cpx_canon_kv_int(w, "devices", devices);
    cpx_canon_kv_int(w, "hours", hours);
    cpx_canon_kv_int(w, "limit_price_micro", limit);
    cpx_canon_kv_string(w, "precision", "bf16");
    cpx_canon_key(w, "regions", 7);
    cpx_canon_begin_array(w);
    cpx_canon_string(w, c->w->region, strlen(c->w->region));
    cpx_canon_end_array(w);
    cpx_canon_kv_string(w, "time_in_force", "gtc");
    cpx_canon_end_object(w);
    const uint8_t *out;
    size_t len;
    if (cpx_canon_writer_finish(w, &out, &len) != CPX_CANON_OK || len >= sizeof c->body)
        return false;
    memcpy(c->body, out, len);
    c->body[len] = '\0';
    c->body_len = len;

    struct cpx_auth auth = { 0 };
    snprintf(auth.id, sizeof auth.id, "%s", c->id);
    if (!cpx_reqsig_sign(&c->kp, "POST", ORDER_TARGET, (int64_t)time(NULL), c->body, c->body_len,
                         &auth))
        return false;
    char value[CPX_AUTH_HEADER_MAX], line[CPX_AUTH_HEADER_MAX + 32];
    cpx_auth_format(&auth, value);
    snprintf(line, sizeof line, "Authorization: %s", value);
    curl_slist_free_all(c->headers);
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    c->headers = curl_slist_append(c->headers, "Accept: application/json");
    c->headers = curl_slist_append(c->headers, "Expect:");
    c->headers = curl_slist_append(c->headers, line);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    c->reply_len = 0;
    c->reply[0] = '\0';
    return true;
}

static bool conn_init(struct conn *c, struct worker *w, const struct opts *o)
{
    c->w = w;
    cpx_canon_writer_init(&c->cw);
    c->rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)c->index * 0xbf58476d1ce4e5b9ULL) ^ mono_ns();
    if (c->rng == 0)
        c->rng = 1;
    c->h = curl_easy_init();
    if (c->h == NULL)
        return false;
    char url[1100];
    snprintf(url, sizeof url, "%s%s", o->url, ORDER_TARGET);
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_POST, 1L);
    curl_easy_setopt(c->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c->h, CURLOPT_CAINFO, o->cacert); /* verified: the bench's own certificate */
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

static bool start_order(struct conn *c)
{
    if (!prepare_order(c)) {
        report_error("bench_trading: cannot build or sign an order\n");
        return false;
    }
    c->started = mono_ns();
    return curl_multi_add_handle(c->w->m, c->h) == CURLM_OK;
}

static void record_latency(struct worker *w, uint64_t ns)
{
    if (w->nlat == w->caplat) {
        size_t cap = w->caplat ? w->caplat * 2 : 65536;
        uint32_t *bigger = realloc(w->lat_us, cap * sizeof *bigger);
        if (bigger == NULL)
            return;
        w->lat_us = bigger;
        w->caplat = cap;
    }
    uint64_t us = ns / 1000;
    w->lat_us[w->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Where the value of the answer's "status" member starts (its opening quote), or NULL. An order
 * answer has one "status" member (its agreements are listed by id), so a scan is enough. */
static const char *order_status(const char *reply)
{
    const char *s = strstr(reply, "\"status\"");
    if (s == NULL)
        return NULL;
    for (s += 8; *s == ' ' || *s == ':'; s++)
        ;
    return s;
}

/* Handles a finished request of c; returns true when c should send another one. */
static bool finish(struct worker *w, struct conn *c, CURLcode rc, uint64_t done)
{
    bool measured = c->started >= g_measure_from && c->started < g_measure_until;
    long status = 0, connects = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &connects);
    if (measured)
        w->connects += (uint64_t)connects;
    if (rc != CURLE_OK) {
        report_error("bench_trading: client %d: %s\n", c->index, curl_easy_strerror(rc));
        if (measured)
            w->transport++;
    } else if (status != 201) {
        report_error("bench_trading: client %d: POST /v1/orders answered %ld: %s\n", c->index,
                     status, c->reply);
        if (measured) {
            w->non201++;
            w->by_status[status > 0 && status < 600 ? status : 0]++;
        }
    } else if (measured) {
        w->ok++;
        if (done >= g_measure_from) {
            uint64_t k = (done - g_measure_from) / g_bucket_ns;
            w->timeline[k < (uint64_t)g_nbuckets ? k : (uint64_t)g_nbuckets - 1]++;
        }
        record_latency(w, done - c->started);
        if (done > w->last_done)
            w->last_done = done;
        const char *s = order_status(c->reply);
        if (s != NULL && strncmp(s, "\"filled\"", 8) == 0)
            w->filled++;
        else if (s != NULL && strncmp(s, "\"open\"", 6) == 0)
            w->resting++;
        else
            w->other_status++;
    }
    return done < g_measure_until;
}

static void *load_thread(void *arg)
{
    struct worker *w = arg;
    int active = 0;
    for (int i = 0; i < w->n; i++) {
        if (!start_order(&w->conns[i])) {
            w->failed = true;
            break;
        }
        active++;
    }
    while (active > 0) {
        int running;
        CURLMcode mc = curl_multi_perform(w->m, &running);
        if (mc != CURLM_OK) {
            report_error("bench_trading: curl_multi_perform: %s\n", curl_multi_strerror(mc));
            w->failed = true;
            break;
        }
        CURLMsg *msg;
        int left;
        bool again = false;
        while ((msg = curl_multi_info_read(w->m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            uint64_t done = mono_ns();
            struct conn *c;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            CURLcode rc = msg->data.result;
            curl_multi_remove_handle(w->m, c->h);
            active--;
            if (finish(w, c, rc, done)) {
                if (!start_order(c)) {
                    w->failed = true;
                    continue;
                }
                active++;
                again = true;
            }
        }
        if (!again && active > 0)
            curl_multi_poll(w->m, NULL, 0, 100, NULL);
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (nearest rank) of sorted v[0..n), in milliseconds. */
static double quantile_ms(const uint32_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)(q * (double)n);
    if (k >= n)
        k = n - 1;
    return (double)v[k] / 1000.0;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- main --------------------------------------------------------------------------------- */

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
    static const char *const flags[] = { "--url",    "--cacert",         "--operator-key",
                                         "--pg-url", "--clients",        "--seconds",
                                         "--warmup", "--loadgen-threads" };
    for (int i = 1; i < argc; i += 2) {
        bool known = false;
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++)
            known |= strcmp(argv[i], flags[f]) == 0;
        if (!known || i + 1 >= argc) {
            fprintf(stderr, "usage: cpx-bench-trading --url URL --cacert FILE --operator-key FILE "
                            "[--pg-url URL] [--clients N] [--seconds D] [--warmup W] "
                            "[--loadgen-threads T]\n(or the CPX_BENCH_* variables; see "
                            "bench/bench_trading.c)\n");
            return false;
        }
    }
    o->url = setting(argc, argv, "--url", "CPX_BENCH_URL", NULL);
    o->cacert = setting(argc, argv, "--cacert", "CPX_BENCH_CACERT", NULL);
    o->operator_key = setting(argc, argv, "--operator-key", "CPX_BENCH_OPERATOR_KEY", NULL);
    o->pg_url = setting(argc, argv, "--pg-url", "CPX_BENCH_PG_URL", NULL);
    o->clients = atoi(setting(argc, argv, "--clients", "CPX_BENCH_CLIENTS", "64"));
    o->seconds = atof(setting(argc, argv, "--seconds", "CPX_BENCH_SECONDS", "10"));
    o->warmup = atof(setting(argc, argv, "--warmup", "CPX_BENCH_WARMUP", "1"));
    o->loadgen_threads =
        atoi(setting(argc, argv, "--loadgen-threads", "CPX_BENCH_LOADGEN_THREADS", "1"));
    if (o->url == NULL || o->cacert == NULL || o->operator_key == NULL) {
        fprintf(stderr, "bench_trading: --url, --cacert and --operator-key are required "
                        "(run make bench-trading)\n");
        return false;
    }
    if (o->clients < 1 || o->clients > 10000 || o->seconds <= 0 || o->seconds > 3600 ||
        o->warmup < 0 || o->warmup > 600 || o->loadgen_threads < 1) {
        fprintf(stderr, "bench_trading: clients must be 1..10000, seconds 0..3600, warmup "
                        "0..600, loadgen threads at least 1\n");
        return false;
    }
    if (o->loadgen_threads > o->clients)
        o->loadgen_threads = o->clients;
    return true;
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

    /* The machine is shared with whatever else runs on it: show how busy it was. */
    double load1 = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fscanf(f, "%lf", &load1) != 1)
            load1 = -1;
        fclose(f);
    }
    printf("bench trading machine cores=%ld loadavg_1m=%.2f clients=%d seconds=%.1f\n",
           sysconf(_SC_NPROCESSORS_ONLN), load1, o.clients, o.seconds);

    /* 1 and 2: the physical limits, measured while cpxd is idle. */
    int vthreads;
    double verify_per_s = bench_verify(&vthreads);
    printf("bench trading ed25519_verify threads=%d seconds=%.1f per_s=%.0f\n", vthreads,
           VERIFY_SECONDS, verify_per_s);
    double commit_per_s = 0;
    if (o.pg_url != NULL) {
        char pgset[256] = "";
        commit_per_s = bench_commit(o.pg_url, pgset, sizeof pgset);
        printf("bench trading pg_commit seconds=%.1f per_s=%.0f %s\n", COMMIT_SECONDS, commit_per_s,
               pgset);
    } else {
        printf("bench trading pg_commit skipped (no --pg-url)\n");
    }

    /* 3: identities, money and a listing. */
    uint64_t t_setup = mono_ns();
    struct client op, provider;
    if (!client_init(&op, o.url, o.cacert, o.operator_key) || !client_load_key(&op) ||
        !client_init(&provider, o.url, o.cacert, "-"))
        return 1;
    char region[64];
    if (!first_region(&op, region))
        return 1;
    if (!register_identity(&provider, "provider", 1, run) || !approve(&op, provider.key.identity))
        return 1;
    char listing[64];
    if (!create_listing(&provider, region, listing))
        return 1;
    int nw = o.loadgen_threads;
    struct worker *workers = calloc((size_t)nw, sizeof *workers);
    struct conn *conns = calloc((size_t)o.clients, sizeof *conns);
    if (workers == NULL || conns == NULL)
        return 1;
    for (int i = 0; i < o.clients; i++) {
        struct client b;
        if (!client_init(&b, o.url, o.cacert, "-") || !register_identity(&b, "buyer", i, run) ||
            !approve(&op, b.key.identity) || !deposit(&op, b.key.identity, run))
            return 1;
        conns[i].kp = b.key.kp;
        snprintf(conns[i].id, sizeof conns[i].id, "%s", b.key.identity);
        conns[i].index = i;
        client_free(&b);
    }
    printf("bench trading setup providers=1 buyers=%d listing=%s region=%s ask=%.2f "
           "listing_devices=%lld deposit_per_buyer=%s seconds=%.2f\n",
           o.clients, listing, region, (double)ASK_MICRO / 1e6, LISTING_DEVICES, DEPOSIT,
           secs_since(t_setup));
    client_free(&provider);
    client_free(&op);

    /* 4: the load. Clients are dealt to the load threads round robin. */
    for (int t = 0; t < nw; t++) {
        struct worker *w = &workers[t];
        w->region = region;
        w->run = run;
        w->m = curl_multi_init();
        w->n = o.clients / nw + (t < o.clients % nw);
        w->conns = calloc((size_t)w->n, sizeof *w->conns);
        curl_multi_setopt(w->m, CURLMOPT_MAXCONNECTS, (long)w->n);
        curl_multi_setopt(w->m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    }
    for (int i = 0; i < o.clients; i++) {
        struct worker *w = &workers[i % nw];
        struct conn *c = &w->conns[i / nw];
        *c = conns[i];
        if (!conn_init(c, w, &o))
            return 1;
    }
    free(conns);
    uint64_t t_start = mono_ns();
    g_measure_from = t_start + (uint64_t)(o.warmup * 1e9);
    g_measure_until = g_measure_from + (uint64_t)(o.seconds * 1e9);
    double bucket_s = o.seconds <= TIMELINE_MAX ? 1.0 : ceil(o.seconds / TIMELINE_MAX);
    g_bucket_ns = (uint64_t)(bucket_s * 1e9);
    g_nbuckets = (int)ceil(o.seconds / bucket_s);
    if (g_nbuckets > TIMELINE_MAX)
        g_nbuckets = TIMELINE_MAX;
    if (g_nbuckets < 1)
        g_nbuckets = 1;
    double cpu0 = cpu_seconds();
    for (int t = 0; t < nw; t++)
        pthread_create(&workers[t].th, NULL, load_thread, &workers[t]);
    uint64_t ok = 0, filled = 0, resting = 0, other = 0, non201 = 0, transport = 0, last = 0;
    uint64_t by_status[600] = { 0 };
    size_t nlat = 0;
    bool failed = false;
    for (int t = 0; t < nw; t++) {
        struct worker *w = &workers[t];
        pthread_join(w->th, NULL);
        ok += w->ok;
        filled += w->filled;
        resting += w->resting;
        other += w->other_status;
        non201 += w->non201;
        transport += w->transport;
        nlat += w->nlat;
        failed |= w->failed;
        if (w->last_done > last)
            last = w->last_done;
        for (int s = 0; s < 600; s++)
            by_status[s] += w->by_status[s];
    }
    double cpu = cpu_seconds() - cpu0, wall = secs_since(t_start);
    uint32_t *lat = malloc((nlat ? nlat : 1) * sizeof *lat);
    size_t k = 0;
    uint64_t connects = 0;
    for (int t = 0; t < nw; t++) {
        if (workers[t].nlat > 0)
            memcpy(lat + k, workers[t].lat_us, workers[t].nlat * sizeof *lat);
        k += workers[t].nlat;
        connects += workers[t].connects;
    }
    qsort(lat, nlat, sizeof *lat, cmp_u32);
    double measured = last > g_measure_from ? (double)(last - g_measure_from) / 1e9 : o.seconds;
    double orders_per_s = (double)ok / measured;
    double p50 = quantile_ms(lat, nlat, 0.50), p99 = quantile_ms(lat, nlat, 0.99);

    printf("bench trading load clients=%d loadgen_threads=%d warmup_s=%.1f seconds=%.2f "
           "orders=%" PRIu64 " filled=%" PRIu64 " resting=%" PRIu64 " other=%" PRIu64
           " new_connections=%" PRIu64 " loadgen_cpu_pct=%.0f\n",
           o.clients, nw, o.warmup, measured, ok, filled, resting, other, connects,
           100.0 * cpu / (wall > 0 ? wall : 1));
    printf("bench trading latency_ms p50=%.2f p90=%.2f p99=%.2f p99.9=%.2f max=%.2f "
           "samples=%zu\n",
           p50, quantile_ms(lat, nlat, 0.90), p99, quantile_ms(lat, nlat, 0.999),
           nlat ? (double)lat[nlat - 1] / 1000.0 : 0.0, nlat);
    printf("bench trading timeline bucket_s=%.0f orders_per_s=", bucket_s);
    for (int k = 0; k < g_nbuckets; k++) {
        uint64_t n = 0;
        for (int t = 0; t < nw; t++)
            n += workers[t].timeline[k];
        printf("%s%.0f", k ? "," : "", (double)n / bucket_s);
    }
    printf("\n");
    printf("bench trading errors non_201=%" PRIu64 " transport=%" PRIu64, non201, transport);
    for (int s = 0; s < 600; s++)
        if (by_status[s] > 0)
            printf(" status_%d=%" PRIu64, s, by_status[s]);
    printf("\n");
    if (verify_per_s > 0 && commit_per_s > 0)
        printf("bench trading vs_targets orders_over_verify=%.2f (target >= 0.5) "
               "orders_over_commit=%.2f (target >= 5) p99_ms=%.2f (target < 20)\n",
               orders_per_s / verify_per_s, orders_per_s / commit_per_s, p99);
    printf("bench trading orders_per_s=%.0f p50_ms=%.2f p99_ms=%.2f ed25519_verify_per_s=%.0f "
           "pg_commit_per_s=%.0f\n",
           orders_per_s, p50, p99, verify_per_s, commit_per_s);

    for (int t = 0; t < nw; t++) {
        for (int i = 0; i < workers[t].n; i++) {
            struct conn *c = &workers[t].conns[i];
            curl_easy_cleanup(c->h);
            curl_slist_free_all(c->headers);
            cpx_canon_writer_free(&c->cw);
            cpx_keypair_wipe(&c->kp);
        }
        curl_multi_cleanup(workers[t].m);
        free(workers[t].conns);
        free(workers[t].lat_us);
    }
    free(workers);
    free(lat);
    curl_global_cleanup();
    return failed || ok == 0 ? 1 : 0;
}
