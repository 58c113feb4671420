/*
 * Prometheus metrics: see metrics.h.
 *
 * Layout: requests[route * NSTATUS + status_slot] and buckets[route * NBUCKET + bucket] are
 * relaxed atomic counters; a request increments exactly one bucket (the first whose bound is at
 * least its duration), and rendering accumulates them into the cumulative `le` form.
 */
#include "server/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/db.h"

static const int statuses[] = { 200, 201, 204, 400, 401, 403, 404, 405,
                                409, 413, 415, 422, 429, 500, 503, 0 /* any other */ };
#define NSTATUS (sizeof statuses / sizeof statuses[0])

/* Bucket upper bounds in nanoseconds; the last bucket is +Inf. */
static const uint64_t bounds_ns[] = { 250000,    500000,     1000000,    2500000,   5000000,
                                      10000000,  25000000,   50000000,   100000000, 250000000,
                                      500000000, 1000000000, 2500000000, 5000000000 };
#define NBOUND  (sizeof bounds_ns / sizeof bounds_ns[0])
#define NBUCKET (NBOUND + 1)

struct metrics {
    size_t nroutes;                          /* routes; slot nroutes is "unmatched" */
    const char *const *names;                /* route names, borrowed from the route table */
    atomic_uint_fast64_t *requests;          /* (nroutes + 1) * NSTATUS counters */
    atomic_uint_fast64_t *buckets;           /* (nroutes + 1) * NBUCKET counters */
    atomic_uint_fast64_t *sum_ns;            /* (nroutes + 1) total durations */
    atomic_uint_fast64_t ledger_records;     /* records this process appended */
    atomic_uint_fast64_t ledger_checkpoints; /* checkpoints it signed */
    atomic_uint_fast64_t ledger_size;        /* the ledger's size after its last commit */
    atomic_uint_fast64_t ledger_signed_us;   /* when it last signed a checkpoint */
};

struct metrics *metrics_create(size_t nroutes, const char *const *names)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->nroutes = nroutes;
    m->names = names;
    m->requests = calloc((nroutes + 1) * NSTATUS, sizeof *m->requests);
    m->buckets = calloc((nroutes + 1) * NBUCKET, sizeof *m->buckets);
    m->sum_ns = calloc(nroutes + 1, sizeof *m->sum_ns);
    if (m->requests == NULL || m->buckets == NULL || m->sum_ns == NULL) {
        metrics_free(m);
        return NULL;
    }
    return m;
}

void metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    free(m->requests);
    free(m->buckets);
    free(m->sum_ns);
    free(m);
}

static size_t status_slot(int status)
{
    for (size_t i = 0; i + 1 < NSTATUS; i++)
        if (statuses[i] == status)
            return i;
    return NSTATUS - 1;
}

void metrics_observe(struct metrics *m, size_t route, int status, uint64_t duration_ns)
{
    if (route > m->nroutes)
        route = m->nroutes;
    size_t b = 0;
    while (b < NBOUND && duration_ns > bounds_ns[b])
        b++;
    atomic_fetch_add_explicit(&m->requests[route * NSTATUS + status_slot(status)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&m->buckets[route * NBUCKET + b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_ns[route], duration_ns, memory_order_relaxed);
}

/* A growable string for rendering. */
struct out {
    char *buf;
    size_t len, cap;
    bool failed;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = (o->cap + (size_t)n) * 2;
        char *bigger = realloc(o->buf, cap);
        if (bigger == NULL) {
            o->failed = true;
            return;
        }
        o->buf = bigger;
        o->cap = cap;
    }
}

static const char *route_name(const struct metrics *m, size_t r)
{
    return r < m->nroutes ? m->names[r] : "unmatched";
}

void metrics_ledger_committed(struct metrics *m, uint64_t records, uint64_t size, int64_t now_us)
{
    if (m == NULL || records == 0)
        return;
    atomic_fetch_add_explicit(&m->ledger_records, records, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->ledger_checkpoints, 1, memory_order_relaxed);
    /* commits finish in any order: keep the largest size and the latest time */
    uint64_t old = atomic_load_explicit(&m->ledger_size, memory_order_relaxed);
    while (old < size &&
           !atomic_compare_exchange_weak_explicit(&m->ledger_size, &old, size, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    uint64_t t = now_us > 0 ? (uint64_t)now_us : 0;
    old = atomic_load_explicit(&m->ledger_signed_us, memory_order_relaxed);
    while (old < t &&
           !atomic_compare_exchange_weak_explicit(&m->ledger_signed_us, &old, t,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

static uint64_t load(const atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

char *metrics_render(const struct metrics *m, struct db_pool *db)
{
    struct out o = { .buf = malloc(4096), .cap = 4096 };
    if (o.buf == NULL)
        return NULL;
    o.buf[0] = '\0';
    put(&o, "# HELP cpx_http_requests_total HTTP requests answered, by route and status.\n"
            "# TYPE cpx_http_requests_total counter\n");
    for (size_t r = 0; r <= m->nroutes; r++)
        for (size_t s = 0; s < NSTATUS; s++) {
            uint64_t n = load(&m->requests[r * NSTATUS + s]);
            if (n == 0)
                continue;
            if (statuses[s] != 0)
                put(&o, "cpx_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                    route_name(m, r), statuses[s], (unsigned long long)n);
            else
                put(&o, "cpx_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                    route_name(m, r), (unsigned long long)n);
        }
    put(&o, "# HELP cpx_http_request_duration_seconds Time from request start to response.\n"
            "# TYPE cpx_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r <= m->nroutes; r++) {
        uint64_t cum = 0;
        for (size_t b = 0; b < NBUCKET; b++)
            cum += load(&m->buckets[r * NBUCKET + b]);
        if (cum == 0)
            continue;
        const char *name = route_name(m, r);
        cum = 0;
        for (size_t b = 0; b < NBUCKET; b++) {
            cum += load(&m->buckets[r * NBUCKET + b]);
            if (b < NBOUND)
                put(&o, "cpx_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                    name, (double)bounds_ns[b] / 1e9, (unsigned long long)cum);
            else
                put(&o, "cpx_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                    name, (unsigned long long)cum);
        }
        put(&o, "cpx_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name,
            (double)load(&m->sum_ns[r]) / 1e9);
        put(&o, "cpx_http_request_duration_seconds_count{route=\"%s\"} %llu\n", name,
            (unsigned long long)cum);
    }
    put(&o,
        "# HELP cpx_ledger_records_appended_total Ledger records this process appended.\n"
        "# TYPE cpx_ledger_records_appended_total counter\n"
        "cpx_ledger_records_appended_total %llu\n"
        "# HELP cpx_ledger_checkpoints_signed_total Checkpoints this process signed.\n"
        "# TYPE cpx_ledger_checkpoints_signed_total counter\n"
        "cpx_ledger_checkpoints_signed_total %llu\n"
        "# HELP cpx_ledger_size Ledger records after this process's last commit.\n"
        "# TYPE cpx_ledger_size gauge\n"
        "cpx_ledger_size %llu\n"
        "# HELP cpx_ledger_last_checkpoint_timestamp_seconds When this process last signed a "
        "checkpoint.\n"
        "# TYPE cpx_ledger_last_checkpoint_timestamp_seconds gauge\n"
        "cpx_ledger_last_checkpoint_timestamp_seconds %.6f\n",
        (unsigned long long)load(&m->ledger_records),
        (unsigned long long)load(&m->ledger_checkpoints), (unsigned long long)load(&m->ledger_size),
        (double)load(&m->ledger_signed_us) / 1e6);
    if (db != NULL) {
        struct db_pool_stats st;
        db_pool_stats(db, &st);
        put(&o,
            "# HELP cpx_db_pool_connections Database connections by state.\n"
            "# TYPE cpx_db_pool_connections gauge\n"
            "cpx_db_pool_connections{state=\"in_use\"} %zu\n"
            "cpx_db_pool_connections{state=\"idle\"} %zu\n"
            "# HELP cpx_db_pool_waits_total Acquisitions that had to wait for a connection.\n"
            "# TYPE cpx_db_pool_waits_total counter\n"
            "cpx_db_pool_waits_total %llu\n"
            "# HELP cpx_db_pool_timeouts_total Acquisitions that gave up waiting (answered 503).\n"
            "# TYPE cpx_db_pool_timeouts_total counter\n"
            "cpx_db_pool_timeouts_total %llu\n"
            "# HELP cpx_db_reconnects_total Connections re-established after a failure.\n"
            "# TYPE cpx_db_reconnects_total counter\n"
            "cpx_db_reconnects_total %llu\n"
            "# HELP cpx_db_retries_total Transactions retried after a serialization failure.\n"
            "# TYPE cpx_db_retries_total counter\n"
            "cpx_db_retries_total %llu\n",
            st.in_use, st.size - st.in_use, (unsigned long long)st.waits,
            (unsigned long long)st.timeouts, (unsigned long long)st.reconnects,
            (unsigned long long)st.retries);
    }
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    return o.buf;
}
