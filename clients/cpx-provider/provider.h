/*
 * cpx-provider: the reference provider endpoint (docs/provider.md; the wire contract is
 * docs/delivery.md §2 and §3). A provider centre runs it next to its machines:
 *
 *   endpoint.c  the HTTPS endpoint the exchange POSTs job envelopes to; answers with a signed
 *               acceptance, the same one for a delivery it has seen before
 *   worker.c    one thread per accepted job: wait until the exchange has started the agreement,
 *               run the workload, report its usage until the agreement's end
 *   jobs.c      the accepted jobs, in memory and in the --state file
 *   envelope.c  the pure parts: envelope, acceptance, usage bodies, times, metering arithmetic
 *   main.c      flags, start, clean stop on SIGINT/SIGTERM
 */
#ifndef CPX_CLIENTS_PROVIDER_H
#define CPX_CLIENTS_PROVIDER_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "clients/common/client.h"
#include "ledger/keyfile.h"
#include "ledger/reqsig.h"

/* ---- envelope.c: pure, no clock, no I/O ------------------------------------------------ */

#define ENVELOPE_WHY_MAX 160 /* a sentence saying what is wrong with an envelope */
#define RFC3339_LEN      21  /* "2026-11-29T08:00:00Z" and its NUL */
/* How far the exchange's signing time may be from ours. Every attempt is signed afresh, so an
 * envelope older than this is a replay: refusing it keeps a provider that lost its --state from
 * running an old job again. */
#define CLOCK_WINDOW 300

/* What the provider needs from a job envelope. */
struct envelope {
    char agreement[CPX_ID_MAX]; /* agreement.id, "agr_..." */
    char delivery[CPX_ID_MAX];  /* "dlv_...": the same on every retry */
    char provider[CPX_ID_MAX];  /* agreement.provider: must be us */
    int64_t devices;            /* agreement.devices */
    int64_t attempt;            /* the exchange's attempt number (1 when absent) */
    int64_t deliver_by;         /* unix seconds; the exchange retries no later than this */
    char *description;          /* job.description (malloc'd), NULL when job is null */
};

/* The agreement as GET /v1/agreements/{id} shows it, as far as metering needs it. */
struct agreement_view {
    char status[24];       /* pending_delivery, active, completed, failed */
    int64_t started_at;    /* unix seconds (rounded up), 0 before the acceptance is recorded */
    int64_t ends_at;       /* unix seconds (rounded down), 0 likewise */
    int64_t metered_until; /* end of the latest usage report (rounded up), 0 without one */
};

/* Is s `prefix` and then 1 or more of [a-z0-9_], shorter than CPX_ID_MAX? */
bool provider_id_valid(const char *s, const char *prefix);

/*
 * Checks an envelope's Authorization header (NULL when absent): the exchange's signature by
 * exchange_pk over POST, target (path and query as received), the ts and body, with ts within
 * CLOCK_WINDOW of now. Returns NULL when good, else the error code to answer 401 with.
 */
const char *envelope_check_auth(const uint8_t exchange_pk[CPX_ED25519_PK_LEN], const char *authz,
                                const char *target, const void *body, size_t len, int64_t now);

/*
 * Parses an envelope body (untrusted). Returns NULL and fills env (free with envelope_free), or
 * returns the error code ("malformed_json", "invalid_envelope") and a sentence in why.
 */
const char *envelope_parse(const void *body, size_t len, struct envelope *env,
                           char why[ENVELOPE_WHY_MAX]);

void envelope_free(struct envelope *env);

/* The acceptance body {"agreement":A,"delivery":D}, canonical JSON (malloc'd; NULL on failure). */
char *acceptance_body(const char *agreement, const char *delivery);

/*
 * The CPX-Signature header value for an acceptance: key's signature, as a request would be
 * signed, of POST /v1/deliveries/<delivery>/acceptance at ts over body. False when unsignable.
 */
bool acceptance_sign(const struct cpx_keyfile *key, const char *delivery, int64_t ts,
                     const char *body, char out[CPX_AUTH_HEADER_MAX]);

/* A usage report body for [start, end] (unix seconds), canonical JSON (malloc'd; NULL on
 * failure); "final":true only in the final one. */
char *usage_body(int64_t start, int64_t end, int64_t device_seconds, bool final);

/* Writes t (unix seconds) as "2026-11-29T08:00:00Z". */
void rfc3339_format(int64_t t, char out[RFC3339_LEN]);

/*
 * Parses "YYYY-MM-DDTHH:MM:SS[.fraction]Z" into unix seconds, a fraction rounded up when
 * round_up, else down. Returns false for anything else.
 */
bool rfc3339_parse(const char *s, bool round_up, int64_t *t);

/* Reads an agreement answer. False when it has no status, or is active without its times. */
bool agreement_view_parse(const json_t *obj, struct agreement_view *v);

/*
 * Device-seconds of a run of `devices` devices from run_start_ms to run_end_ms (unix ms;
 * INT64_MAX while it runs) that fall inside the period [start, end] (unix seconds), rounded
 * down: never more than devices × (end − start), as the exchange requires.
 */
int64_t meter_device_seconds(int64_t devices, int64_t run_start_ms, int64_t run_end_ms,
                             int64_t start, int64_t end);

/*
 * The end (unix seconds) of the next report after last_end: --report-every (`every`) later, or
 * at the workload's end (run_end, rounded up; INT64_MAX while unknown), or at the agreement's
 * end ends_at, whichever comes first. *final says whether it is the final report: the job is
 * done (the exchange then completes the agreement early and returns the unused escrow to the
 * buyer) or its time is up.
 */
int64_t next_report(int64_t last_end, int64_t ends_at, int64_t every, int64_t run_end, bool *final);

/* Milliseconds to wait before retry number `attempt` (1, 2, ...): half of min(cap_ms, 1 s ×
 * 2^(attempt−1)) plus a random share (rnd) of the other half. */
int64_t backoff_ms(int attempt, int64_t cap_ms, uint32_t rnd);

/* ---- the running provider -------------------------------------------------------------- */

struct provider;

/* An accepted job. Fields below `finished` change while it runs: read them under p->lock. */
struct job {
    struct provider *p;
    char agreement[CPX_ID_MAX];
    char delivery[CPX_ID_MAX];
    int64_t devices;
    int64_t deliver_by;
    char *description;    /* NULL: the order named no job */
    bool finished;        /* metered to the end, or the agreement will never run: done for good */
    pthread_t thread;     /* its worker */
    bool has_thread;      /* thread was started and not yet joined */
    bool thread_done;     /* the worker returned: joining it does not block */
    pid_t pid;            /* the --command's process (and group), 0 when none runs */
    int64_t run_start_ms; /* the workload's run, unix ms; run_end_ms is INT64_MAX while it runs */
    int64_t run_end_ms;
};

struct provider {
    /* settings, fixed after start */
    struct cpx_keyfile key;                  /* ours: signs acceptances and reports */
    uint8_t exchange_pk[CPX_ED25519_PK_LEN]; /* checks the envelopes */
    char exchange_url[1024];                 /* where reports go */
    char cacert[CLIENT_PATH_MAX];            /* the exchange's CA; "" for the system's */
    char key_path[CLIENT_PATH_MAX];          /* our key file, for the workers' clients */
    const char *state_path;                  /* --state, or NULL */
    const char *command;                     /* --command, or NULL to simulate */
    int64_t simulate_seconds;                /* 0: a simulated job runs to the agreement's end */
    int64_t report_every;                    /* seconds */
    /* the endpoint */
    void *daemon;                     /* struct MHD_Daemon */
    char *tls_cert_pem, *tls_key_pem; /* kept while the daemon runs */
    /* the jobs */
    pthread_mutex_t lock;
    pthread_cond_t wake; /* broadcast when stopping and when a command exits */
    bool stopping;
    struct job **jobs;
    size_t njobs, cap;
};

/* main.c: one log line "<time> <event> <details>" on stderr; the wall clock in ms. */
void plog(const char *event, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t now_ms(void);

/* jobs.c; call with p->lock held (jobs_load before any thread runs). */
struct job *jobs_find(struct provider *p, const char *delivery, const char *agreement);
struct job *jobs_add(struct provider *p, const struct envelope *env);
void jobs_remove(struct provider *p, struct job *j);
bool jobs_save(struct provider *p);
bool jobs_load(struct provider *p);
void jobs_free(struct provider *p);

/* endpoint.c */
bool endpoint_start(struct provider *p, const char *address, unsigned port, const char *cert,
                    const char *tls_key, unsigned *bound_port);
void endpoint_stop(struct provider *p);

/* worker.c: starts j's worker (p->lock held); joins every worker once p->stopping is set. */
bool worker_start(struct provider *p, struct job *j);
void workers_join(struct provider *p);

#endif
