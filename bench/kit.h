/*
 * What the benchmarks against a real cpxd share (bench_trading.c, bench_delivery.c): the
 * machine's two physical limits of a signed request (an Ed25519 verification, a single-row
 * commit), set-up over the API (identities registered, approved and funded; listings), kept-alive
 * HTTPS clients that sign their own requests, driven on one libcurl multi handle, latency
 * samples, and reading settings from flags or the environment.
 *
 * Not a benchmark itself: the Makefile makes a binary of every bench/bench_*.c and links this
 * file into each.
 */
#ifndef CPX_BENCH_KIT_H
#define CPX_BENCH_KIT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clients/common/client.h"
#include "ledger/canon.h"
#include "ledger/crypto.h"

#define KIT_ASK_MICRO      15200000LL   /* every provider's ask per PFLOPS-hour: 15.2 CNY */
#define KIT_LISTING_TFLOPS 989          /* bf16 TFLOPS per device (an H100 SXM, dense) */
#define KIT_DEPOSIT        "1000000000" /* CNY per buyer: orders never run out of money */
#define KIT_ERRORS_SHOWN   20 /* errors printed in full by kit_report_error; later ones counted */
#define KIT_VERIFY_SECONDS 1.0
#define KIT_COMMIT_SECONDS 2.0
#define KIT_REPLY_MAX      4096 /* bytes of an answer a lane can keep */

/*
 * Starts the benchmark `name` ("bench_trading"): it names it on stderr, and as "bench trading"
 * at the start of what it prints on stdout (line-buffered from here on). no_route, when not NULL,
 * is said after "cpxd has no route for POST <target>" when cpxd answers a set-up POST with 404
 * not_found. Initialises libsodium and libcurl and writes a short id of this run into run (16
 * bytes), for names that must be new. False when a library would not start.
 */
bool kit_start(const char *name, const char *no_route, char run[16]);

/* The benchmark's names: "bench_trading" and "bench trading". */
const char *kit_name(void);
const char *kit_prefix(void);

/* Prints on stderr, the first KIT_ERRORS_SHOWN times (from any thread); only counts later ones. */
void kit_report_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

double kit_secs_since(uint64_t start_ns);

/* The CPU time this process has used, user and system, in seconds. */
double kit_cpu_seconds(void);

/* The 1-minute load average, or -1: the machine is shared, so show how busy it was. */
double kit_loadavg_1m(void);

/* ---- the physical limits ------------------------------------------------------------------- */

/*
 * Ed25519 verifications per second of a signed POST target with body, summed over one thread
 * per online core for KIT_VERIFY_SECONDS; prints "<prefix> ed25519_verify ..."; 0 on failure.
 */
double kit_verify_rate(const char *target, const char *body);

/*
 * Commits per second of one single-row INSERT per transaction over one connection to pg_url for
 * KIT_COMMIT_SECONDS, into `table` (created, and dropped afterwards); prints "<prefix> pg_commit
 * ..." with the settings that make a commit durable (wal_sync_method among them when asked), or
 * that it was skipped when pg_url is NULL. 0 on failure or when skipped.
 */
double kit_commit_rate(const char *pg_url, const char *table, bool wal_sync_method);

/* ---- set-up over the API ------------------------------------------------------------------- */

/* The cpxd under test: what every benchmark against one is told. */
struct kit_cpxd {
    const char *url;          /* --url, CPX_BENCH_URL: its base URL */
    const char *cacert;       /* --cacert, CPX_BENCH_CACERT: its TLS certificate */
    const char *operator_key; /* --operator-key, CPX_BENCH_OPERATOR_KEY: the operator's key */
    const char *pg_url;       /* --pg-url, CPX_BENCH_PG_URL: PostgreSQL, for kit_commit_rate */
};

/* Reads those settings from argv or the environment (NULL where neither has one). */
void kit_cpxd_settings(struct kit_cpxd *s, int argc, char **argv);

/* A client of the cpxd signing as its operator, whose key it has read. */
bool kit_operator(struct client *op, const struct kit_cpxd *s);

/* An identity's key and id, kept after its client is freed. */
struct kit_key {
    struct cpx_keypair kp;
    char id[CPX_ID_MAX];
};

/* Keeps cl's key in key, and frees cl. */
void kit_keep_key(struct client *cl, struct kit_key *key);

/* Wipes and frees n keys. */
void kit_keys_free(struct kit_key *keys, int n);

/* The canonical text of the document written into w, malloc'd; NULL (with a message) if bad. */
char *kit_canon_text(struct cpx_canon_writer *w, const char *what);

/* Sends a signed POST (with an Idempotency-Key when idem is set); true when the answer has status
 * want, whose JSON goes to *json_out when it is not NULL. Prints the answer otherwise. */
bool kit_post(struct client *cl, const char *target, const char *body, const char *idem, long want,
              json_t **json_out);

/*
 * A new in-memory key in cl (client_init'd by this, against op's exchange: client_free it),
 * registered with role `role` as "Bench <role> <n>" with reg_no BENCH-<tag>-<B|P><n>, approved by
 * the operator op and, for a buyer, funded with KIT_DEPOSIT (its Idempotency-Key names run).
 */
bool kit_identity(struct client *cl, struct client *op, const char *role, int n, const char *tag,
                  const char *run);

/* n buyers made by kit_identity (numbered 0 to n-1): a malloc'd array of their keys, or NULL. */
struct kit_key *kit_buyers(struct client *op, int n, const char *tag, const char *run);

/* The region ids of GET /v1/regions, at most max of them; returns how many (0: said why). */
int kit_regions(struct client *cl, char out[][64], int max);

/* Lists `devices` bf16 devices at KIT_ASK_MICRO in region, delivered to endpoint, good till
 * cancelled; its id goes to listing (64 bytes). */
bool kit_create_listing(struct client *provider, const char *region, const char *endpoint,
                        long long devices, char listing[64]);

/* ---- kept-alive clients on one multi handle ------------------------------------------------ */

/* One client: a signing identity with its own easy handle, so its own kept-alive connection. */
struct kit_lane {
    CURL *h;
    const struct cpx_keypair *kp;
    const char *id;
    int index;
    bool busy, stopped;
    uint64_t started; /* mono_ns the request in flight was added */
    void *user;       /* the benchmark's own state of this lane */
    struct curl_slist *headers;
    struct cpx_canon_writer cw; /* the next request's body is written here */
    char url[1200];
    char body[512];
    size_t body_len;
    size_t reply_cap; /* an answer is kept to reply_cap - 1 bytes (reply_cap <= KIT_REPLY_MAX) */
    char reply[KIT_REPLY_MAX];
    size_t reply_len;
};

/* Sets a lane up to sign as id with kp, verifying the server against cacert. */
bool kit_lane_init(struct kit_lane *c, const char *cacert, const struct cpx_keypair *kp,
                   const char *id, int index, size_t reply_cap);
void kit_lane_free(struct kit_lane *c);

/* Signs the canonical body in c->cw as a POST to base+target and sets the request up, with one
 * more header line (e.g. "Idempotency-Key: ...") when header is not NULL. */
bool kit_lane_prepare(struct kit_lane *c, const char *base, const char *target, const char *header);

enum kit_next { KIT_SEND, KIT_WAIT, KIT_STOP };

struct kit_drive {
    CURLM *m;
    struct kit_lane *lanes;
    int n;
    void *user; /* the benchmark's own state */
    /* An idle lane's next request: KIT_SEND once prepared, KIT_WAIT until *wait_until (mono_ns),
     * or KIT_STOP. */
    enum kit_next (*next)(struct kit_drive *, struct kit_lane *, uint64_t now,
                          uint64_t *wait_until);
    /* A request finished at done (mono_ns): rc, and its HTTP status when rc is CURLE_OK. */
    void (*done)(struct kit_drive *, struct kit_lane *, CURLcode rc, long status, uint64_t done);
    bool failed; /* libcurl failed: a request could not start, or the transfers stopped */
};

/* Runs the lanes until each has stopped and nothing is in flight. */
void kit_drive_run(struct kit_drive *d);

/* ---- samples ------------------------------------------------------------------------------- */

/* A growable list of samples (e.g. µs). */
struct kit_samples {
    int64_t *v;
    size_t n, cap;
};

void kit_sample_add(struct kit_samples *s, int64_t x);
void kit_sample_sort(struct kit_samples *s);

/* The q-quantile (nearest rank) of sorted v[0..n), divided by div; 0 when there are none. */
double kit_quantile(const int64_t *v, size_t n, double q, double div);

/* ---- settings ------------------------------------------------------------------------------ */

/* The value of --flag VALUE in argv, else of the environment variable env, else dflt. */
const char *kit_setting(int argc, char **argv, const char *flag, const char *env, const char *dflt);

/* Is argv a list of "--flag VALUE" pairs, each flag one of flags[0..n)? */
bool kit_flags_known(int argc, char **argv, const char *const *flags, size_t n);

#endif
