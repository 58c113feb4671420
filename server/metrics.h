/*
 * Request metrics in the Prometheus text format (GET /metrics): requests by route and status,
 * a latency histogram per route, and the database pool's gauges and counters.
 *
 * Counters are relaxed atomics in fixed arrays sized at creation (routes x statuses, routes x
 * buckets), so recording a request is a few atomic adds with no lock and no allocation.
 */
#ifndef CPX_SERVER_METRICS_H
#define CPX_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics;
struct db_pool;

/*
 * Creates the counters for nroutes routes named by names[i] (e.g. "GET /healthz"); index nroutes
 * counts requests that matched no route. Returns NULL when out of memory. Free with metrics_free.
 */
struct metrics *metrics_create(size_t nroutes, const char *const *names);

void metrics_free(struct metrics *m);

/* Records one answered request. */
void metrics_observe(struct metrics *m, size_t route, int status, uint64_t duration_ns);

/*
 * Records a committed ledger batch: `records` appended, the ledger now `size` long, its
 * checkpoint signed at now_us (unix microseconds).
 */
void metrics_ledger_committed(struct metrics *m, uint64_t records, uint64_t size, int64_t now_us);

/* Renders every metric, with the pool's figures when db is not NULL. Returns a malloc'd string. */
char *metrics_render(const struct metrics *m, struct db_pool *db);

#endif
