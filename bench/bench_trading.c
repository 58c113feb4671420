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
 * The measurements of the machine, the set-up and the clients are bench/kit.c's, shared with
 * bench_delivery.c.
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
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/kit.h"
#include "server/util.h"

#define ORDER_TARGET    "/v1/orders"
#define LISTING_DEVICES 100000000LL /* enough that the listing never runs out */
#define REPLY_KEEP      1024        /* bytes of an answer kept, for error messages */

struct opts {
    struct kit_cpxd cpxd; /* --url, --cacert, --operator-key, --pg-url */
    int clients, loadgen_threads;
    double seconds, warmup;
};

/* ---- the load ------------------------------------------------------------------------------- */

/* Phases, shared by all load threads: set once before they start. */
static uint64_t g_measure_from; /* mono_ns when measurement starts (after the warm-up) */
static uint64_t g_measure_until;
/* The measured window in buckets (at most TIMELINE_MAX), to show whether the rate holds. */
#define TIMELINE_MAX 64
static uint64_t g_bucket_ns;
static int g_nbuckets;

/* One client's own state: a buyer identity on a kit lane (its own easy handle, so its own
 * kept-alive connection). */
struct conn {
    uint64_t seq; /* orders sent */
    uint64_t rng; /* xorshift state */
};

/* A load thread: its clients on one multi handle. */
struct worker {
    pthread_t th;
    struct kit_drive d; /* its lanes; lane i is conns[i] */
    struct conn *conns;
    const char *base, *region, *run;
    /* results of the measured phase */
    struct kit_samples lat; /* µs */
    uint64_t ok, filled, resting, other_status, non201, transport;
    uint64_t by_status[600];
    uint64_t timeline[TIMELINE_MAX]; /* 201 answers completed in each bucket */
    uint64_t last_done;              /* mono_ns of the last measured completion */
    uint64_t connects; /* new connections opened by measured requests (keep-alive: 0) */
    bool failed;
};

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/*
 * The next order of a client, signed now, with a fresh client_order_id, while the measured window
 * lasts. Limit prices are drawn in whole fen from 85% to 105% of the ask, so about one order in
 * four crosses the listing.
 */
static enum kit_next order_next(struct kit_drive *d, struct kit_lane *l, uint64_t now,
                                uint64_t *wait_until)
{
    (void)wait_until;
    struct worker *w = d->user;
    struct conn *c = l->user;
    if (now >= g_measure_until)
        return KIT_STOP;
    uint64_t r = next_rand(&c->rng);
    int64_t limit = KIT_ASK_MICRO * (int64_t)(850 + r % 201) / 1000 / 10000 * 10000;
    int64_t devices = 1 + (int64_t)((r >> 8) % 4), hours = 1 + (int64_t)((r >> 16) % 8);
    char coid[64];
    snprintf(coid, sizeof coid, "%s-%d-%" PRIu64, w->run, l->index, c->seq++);
    struct cpx_canon_writer *cw = &l->cw;
    cpx_canon_writer_reset(cw);
    cpx_canon_begin_object(cw);
    cpx_canon_kv_string(cw, "client_order_id", coid);
    cpx_canon_key(cw, "constraints", 11);
    cpx_canon_begin_object(cw);
    cpx_canon_kv_int(cw, "max_tflops", KIT_LISTING_TFLOPS);
    cpx_canon_end_object(cw);
    cpx_canon_kv_int(cw, "devices", devices);
    cpx_canon_kv_int(cw, "hours", hours);
    cpx_canon_kv_int(cw, "limit_price_micro", limit);
    cpx_canon_kv_string(cw, "precision", "bf16");
    cpx_canon_key(cw, "regions", 7);
    cpx_canon_begin_array(cw);
    cpx_canon_string(cw, w->region, strlen(w->region));
    cpx_canon_end_array(cw);
    cpx_canon_kv_string(cw, "time_in_force", "gtc");
    cpx_canon_end_object(cw);
    if (!kit_lane_prepare(l, w->base, ORDER_TARGET, "Accept: application/json")) {
        kit_report_error("bench_trading: cannot build or sign an order\n");
        w->failed = true;
        return KIT_STOP;
    }
    return KIT_SEND;
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

/* Counts a finished order of the measured window. */
static void order_done(struct kit_drive *d, struct kit_lane *l, CURLcode rc, long status,
                       uint64_t done)
{
    struct worker *w = d->user;
    bool measured = l->started >= g_measure_from && l->started < g_measure_until;
    long connects = 0;
    curl_easy_getinfo(l->h, CURLINFO_NUM_CONNECTS, &connects);
    if (measured)
        w->connects += (uint64_t)connects;
    if (rc != CURLE_OK) {
        kit_report_error("bench_trading: client %d: %s\n", l->index, curl_easy_strerror(rc));
        if (measured)
            w->transport++;
    } else if (status != 201) {
        kit_report_error("bench_trading: client %d: POST /v1/orders answered %ld: %s\n", l->index,
                         status, l->reply);
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
        kit_sample_add(&w->lat, (int64_t)(done - l->started) / 1000);
        if (done > w->last_done)
            w->last_done = done;
        const char *s = order_status(l->reply);
        if (s != NULL && strncmp(s, "\"filled\"", 8) == 0)
            w->filled++;
        else if (s != NULL && strncmp(s, "\"open\"", 6) == 0)
            w->resting++;
        else
            w->other_status++;
    }
}

static void *load_thread(void *arg)
{
    struct worker *w = arg;
    kit_drive_run(&w->d);
    w->failed |= w->d.failed;
    return NULL;
}

/* ---- main --------------------------------------------------------------------------------- */

static bool parse_opts(struct opts *o, int argc, char **argv)
{
    static const char *const flags[] = { "--url",    "--cacert",         "--operator-key",
                                         "--pg-url", "--clients",        "--seconds",
                                         "--warmup", "--loadgen-threads" };
    if (!kit_flags_known(argc, argv, flags, sizeof flags / sizeof flags[0])) {
        fprintf(stderr, "usage: cpx-bench-trading --url URL --cacert FILE --operator-key FILE "
                        "[--pg-url URL] [--clients N] [--seconds D] [--warmup W] "
                        "[--loadgen-threads T]\n(or the CPX_BENCH_* variables; see "
                        "bench/bench_trading.c)\n");
        return false;
    }
    kit_cpxd_settings(&o->cpxd, argc, argv);
    o->clients = atoi(kit_setting(argc, argv, "--clients", "CPX_BENCH_CLIENTS", "64"));
    o->seconds = atof(kit_setting(argc, argv, "--seconds", "CPX_BENCH_SECONDS", "10"));
    o->warmup = atof(kit_setting(argc, argv, "--warmup", "CPX_BENCH_WARMUP", "1"));
    o->loadgen_threads =
        atoi(kit_setting(argc, argv, "--loadgen-threads", "CPX_BENCH_LOADGEN_THREADS", "1"));
    if (o->cpxd.url == NULL || o->cpxd.cacert == NULL || o->cpxd.operator_key == NULL) {
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
    char run[16];
    if (!kit_start("bench_trading",
                   "the trading endpoints (docs/trading.md) are not in server/routes.c yet", run))
        return 1;

    /* The machine is shared with whatever else runs on it: show how busy it was. */
    printf("bench trading machine cores=%ld loadavg_1m=%.2f clients=%d seconds=%.1f\n",
           sysconf(_SC_NPROCESSORS_ONLN), kit_loadavg_1m(), o.clients, o.seconds);

    /* 1 and 2: the physical limits, measured while cpxd is idle. A signed order's string is
     * "POST\n/v1/orders\n<ts>\n<64 hex>". */
    double verify_per_s = kit_verify_rate(ORDER_TARGET, "{\"client_order_id\":\"x\"}");
    double commit_per_s = kit_commit_rate(o.cpxd.pg_url, "bench_commit", true);

    /* 3: identities, money and a listing. */
    uint64_t t_setup = mono_ns();
    struct client op, provider;
    if (!kit_operator(&op, &o.cpxd))
        return 1;
    char region[1][64];
    if (kit_regions(&op, region, 1) < 1)
        return 1;
    if (!kit_identity(&provider, &op, "provider", 1, run, run))
        return 1;
    char listing[64];
    if (!kit_create_listing(&provider, region[0], "https://provider.bench.invalid/jobs",
                            LISTING_DEVICES, listing))
        return 1;
    struct kit_key *buyers = kit_buyers(&op, o.clients, run, run);
    if (buyers == NULL)
        return 1;
    printf("bench trading setup providers=1 buyers=%d listing=%s region=%s ask=%.2f "
           "listing_devices=%lld deposit_per_buyer=%s seconds=%.2f\n",
           o.clients, listing, region[0], (double)KIT_ASK_MICRO / 1e6, LISTING_DEVICES, KIT_DEPOSIT,
           kit_secs_since(t_setup));
    client_free(&provider);
    client_free(&op);

    /* 4: the load. Clients are dealt to the load threads round robin. */
    int nw = o.loadgen_threads;
    struct worker *workers = calloc((size_t)nw, sizeof *workers);
    if (workers == NULL)
        return 1;
    for (int t = 0; t < nw; t++) {
        struct worker *w = &workers[t];
        w->base = o.cpxd.url;
        w->region = region[0];
        w->run = run;
        w->d.m = curl_multi_init();
        w->d.n = o.clients / nw + (t < o.clients % nw);
        w->d.lanes = calloc((size_t)w->d.n, sizeof *w->d.lanes);
        w->d.user = w;
        w->d.next = order_next;
        w->d.done = order_done;
        w->conns = calloc((size_t)w->d.n, sizeof *w->conns);
        if (w->d.m == NULL || w->d.lanes == NULL || w->conns == NULL)
            return 1;
        curl_multi_setopt(w->d.m, CURLMOPT_MAXCONNECTS, (long)w->d.n);
        curl_multi_setopt(w->d.m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    }
    for (int i = 0; i < o.clients; i++) {
        struct worker *w = &workers[i % nw];
        struct conn *c = &w->conns[i / nw];
        struct kit_lane *l = &w->d.lanes[i / nw];
        c->rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)i * 0xbf58476d1ce4e5b9ULL) ^ mono_ns();
        if (c->rng == 0)
            c->rng = 1;
        if (!kit_lane_init(l, o.cpxd.cacert, &buyers[i].kp, buyers[i].id, i, REPLY_KEEP))
            return 1;
        l->user = c;
    }
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
    double cpu0 = kit_cpu_seconds();
    for (int t = 0; t < nw; t++)
        pthread_create(&workers[t].th, NULL, load_thread, &workers[t]);
    uint64_t ok = 0, filled = 0, resting = 0, other = 0, non201 = 0, transport = 0, last = 0;
    uint64_t by_status[600] = { 0 }, connects = 0;
    struct kit_samples lat = { 0 };
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
        connects += w->connects;
        failed |= w->failed;
        if (w->last_done > last)
            last = w->last_done;
        for (int s = 0; s < 600; s++)
            by_status[s] += w->by_status[s];
        for (size_t k = 0; k < w->lat.n; k++)
            kit_sample_add(&lat, w->lat.v[k]);
    }
    double cpu = kit_cpu_seconds() - cpu0, wall = kit_secs_since(t_start);
    kit_sample_sort(&lat);
    double measured = last > g_measure_from ? (double)(last - g_measure_from) / 1e9 : o.seconds;
    double orders_per_s = (double)ok / measured;
    double p50 = kit_quantile(lat.v, lat.n, 0.50, 1e3), p99 = kit_quantile(lat.v, lat.n, 0.99, 1e3);

    printf("bench trading load clients=%d loadgen_threads=%d warmup_s=%.1f seconds=%.2f "
           "orders=%" PRIu64 " filled=%" PRIu64 " resting=%" PRIu64 " other=%" PRIu64
           " new_connections=%" PRIu64 " loadgen_cpu_pct=%.0f\n",
           o.clients, nw, o.warmup, measured, ok, filled, resting, other, connects,
           100.0 * cpu / (wall > 0 ? wall : 1));
    printf("bench trading latency_ms p50=%.2f p90=%.2f p99=%.2f p99.9=%.2f max=%.2f "
           "samples=%zu\n",
           p50, kit_quantile(lat.v, lat.n, 0.90, 1e3), p99, kit_quantile(lat.v, lat.n, 0.999, 1e3),
           lat.n ? (double)lat.v[lat.n - 1] / 1e3 : 0.0, lat.n);
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
        struct worker *w = &workers[t];
        for (int i = 0; i < w->d.n; i++)
            kit_lane_free(&w->d.lanes[i]);
        curl_multi_cleanup(w->d.m);
        free(w->d.lanes);
        free(w->conns);
        free(w->lat.v);
    }
    free(workers);
    kit_keys_free(buyers, o.clients);
    free(lat.v);
    curl_global_cleanup();
    return failed || ok == 0 ? 1 : 0;
}
