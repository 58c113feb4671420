/*
 * The dispatcher: see dispatcher.h and docs/delivery.md §2.
 *
 * Each thread loops: claim the next due job (a lease, so no other thread takes it), and either
 * fail it (its deadline passed), put it off (its endpoint's breaker is
 * open), or POST its envelope and judge the answer. The sequencer makes the outcome part of the
 * books (SEQ_ACCEPT, SEQ_UNDELIVERABLE); the attempt and the next try are the dispatcher's rows.
 * No database connection is held while waiting on a provider.
 */
#include "server/dispatcher.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/canon.h"
#include "ledger/codec.h"
#include "ledger/reqsig.h"
#include "server/config.h"
#include "server/db.h"
#include "server/db_trading.h"
#include "server/log.h"
#include "server/market.h"
#include "server/sequencer.h"
#include "server/server.h"
#include "server/util.h"

#define CLAIM          1     /* jobs a claim takes: its lease covers the one attempt that follows */
#define ANSWER_MAX     65536 /* longest acceptance body read */
#define BREAKER_FAILS  5     /* consecutive failures that open an endpoint's breaker */
#define BREAKER_OPEN_S 30    /* first open period; doubles while it keeps failing */
#define BREAKER_MAX_S  300
#define BREAKERS       256 /* endpoints tracked (hashed; a collision only shares a breaker) */

struct breaker {
    char endpoint[ENDPOINT_MAX + 1];
    int fails;      /* consecutive failed attempts */
    int64_t open_s; /* length of the current open period */
    int64_t until;  /* closed to attempts until then (unix seconds) */
};

struct dispatcher {
    struct server *srv;
    pthread_t *threads;
    int nthreads;
    pthread_mutex_t mu; /* guards stop, wake and the breakers */
    pthread_cond_t wake_cv;
    bool stop, woken;
    struct breaker breakers[BREAKERS];
};

/* One claimed job. */
struct job {
    uint64_t agreement;
    char provider[CPX_ID_MAX];
    char endpoint[ENDPOINT_MAX + 1];
    char pin[256];
    int attempt;
    int64_t deliver_by;
    uint8_t provider_pk[32]; /* the provider's key, read with the envelope */
};

/* ---- an endpoint's breaker ---------------------------------------------------------------- */

/* Per endpoint, not per provider: a provider whose one endpoint is down may serve from others. */
static struct breaker *breaker_of(struct dispatcher *d, const char *endpoint)
{
    struct breaker *b = &d->breakers[cpx_fnv1a64(endpoint) % BREAKERS];
    if (strcmp(b->endpoint, endpoint) != 0) {
        memset(b, 0, sizeof *b);
        snprintf(b->endpoint, sizeof b->endpoint, "%s", endpoint);
    }
    return b;
}

/* When the endpoint may next be tried: now, or the end of its breaker's open period. */
static int64_t breaker_allows(struct dispatcher *d, const char *endpoint, int64_t now)
{
    pthread_mutex_lock(&d->mu);
    int64_t until = breaker_of(d, endpoint)->until;
    pthread_mutex_unlock(&d->mu);
    return until > now ? until : now;
}

static void breaker_result(struct dispatcher *d, const char *endpoint, bool ok, int64_t now)
{
    pthread_mutex_lock(&d->mu);
    struct breaker *b = breaker_of(d, endpoint);
    if (ok) {
        b->fails = 0;
        b->open_s = 0;
        b->until = 0;
    } else if (++b->fails >= BREAKER_FAILS) {
        b->open_s = b->open_s ? b->open_s * 2 : BREAKER_OPEN_S;
        if (b->open_s > BREAKER_MAX_S)
            b->open_s = BREAKER_MAX_S;
        b->until = now + b->open_s; /* then one attempt probes it */
        log_warn("dispatcher: %s failed %d attempts in a row; not trying it for %" PRId64 " s",
                 endpoint, b->fails, b->open_s);
    }
    pthread_mutex_unlock(&d->mu);
}

/* ---- rows ---------------------------------------------------------------------------------- */

static int claim(struct dispatcher *d, struct db_conn *c, struct job *jobs)
{
    char lease[24];
    snprintf(lease, sizeof lease, "%" PRId64, d->srv->cfg->delivery_timeout + 30);
    const char *p[] = { lease };
    PGresult *r;
    if (db_query(c, "dlv_claim", 1, p, &r) != DB_OK)
        return 0;
    int n = PQntuples(r) < CLAIM ? PQntuples(r) : CLAIM;
    for (int i = 0; i < n; i++) {
        struct job *j = &jobs[i];
        j->agreement = (uint64_t)db_get_i64(r, i, 0);
        db_get_str(r, i, 1, j->provider, sizeof j->provider);
        db_get_str(r, i, 2, j->endpoint, sizeof j->endpoint);
        db_get_str(r, i, 3, j->pin, sizeof j->pin);
        j->attempt = (int)db_get_i64(r, i, 4);
        j->deliver_by = db_get_i64(r, i, 5);
    }
    PQclear(r);
    return n;
}

/* Records an attempt and, unless the sequencer settled the job, when to try it again. */
static void attempt_done(struct dispatcher *d, const struct job *j, int64_t started_us,
                         long http_status, const char *outcome, const char *error, int64_t next_at)
{
    struct db_conn *c = db_acquire(d->srv->db);
    if (c == NULL) {
        log_warn("dispatcher: no database connection to record an attempt of agr %" PRIu64
                 "; its lease will expire and it is tried again",
                 j->agreement);
        return;
    }
    char agr[24], n[16], at[24], ms[24], st[16], next[24];
    snprintf(agr, sizeof agr, "%" PRIu64, j->agreement);
    snprintf(n, sizeof n, "%d", j->attempt);
    snprintf(at, sizeof at, "%" PRId64, started_us / 1000000);
    snprintf(ms, sizeof ms, "%" PRId64, (now_us() - started_us) / 1000);
    snprintf(st, sizeof st, "%ld", http_status);
    if (next_at > j->deliver_by + 1) /* no later than the deadline: then the job fails at once */
        next_at = j->deliver_by + 1;
    snprintf(next, sizeof next, "%" PRId64, next_at);
    const char *ap[] = { agr, n, at, ms, http_status ? st : NULL, outcome, error };
    enum db_status s = db_command(c, "dlv_attempt_insert", 7, ap, NULL);
    if (s == DB_OK && next_at > 0) {
        const char *rp[] = { agr, next, error };
        s = db_command(c, "dlv_reschedule", 3, rp, NULL);
    }
    if (s != DB_OK)
        log_warn("dispatcher: recording attempt %d of agr %" PRIu64 " failed", j->attempt,
                 j->agreement);
    db_release(d->srv->db, c);
}

/* ---- the envelope -------------------------------------------------------------------------- */

/* The body the provider receives (docs/delivery.md §2), or NULL; reads the provider's key into j
 * on the same connection. */
static char *envelope(struct dispatcher *d, struct job *j, size_t *len)
{
    struct db_conn *c = db_acquire(d->srv->db);
    if (c == NULL)
        return NULL;
    PGresult *r = NULL, *jr = NULL;
    char *text = NULL;
    char agr[24];
    snprintf(agr, sizeof agr, "%" PRIu64, j->agreement);
    const char *p[] = { agr };
    if (db_agreement_get(c, j->agreement, &r) == DB_OK &&
        db_query_row(c, "dlv_envelope_job", 1, p, &jr) == DB_OK &&
        db_get_bytea(jr, 0, 2, j->provider_pk, sizeof j->provider_pk)) {
        json_t *e = json_object();
        json_object_set_new(e, "agreement", db_agreement_json(r, 0, true));
        json_object_set_new(e, "attempt", json_integer(j->attempt));
        json_set_time(e, "deliver_by", j->deliver_by);
        char id[MARKET_ID_MAX];
        market_id_format(id, "dlv_", j->agreement);
        json_object_set_new(e, "delivery", json_string(id));
        json_t *job = json_null();
        if (!PQgetisnull(jr, 0, 0)) {
            job = json_object();
            json_object_set_new(job, "sha256", json_string(PQgetvalue(jr, 0, 0)));
            json_object_set_new(job, "description", json_string(PQgetvalue(jr, 0, 1)));
        }
        json_object_set_new(e, "job", job);
        text = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(e);
    }
    PQclear(r);
    PQclear(jr);
    db_release(d->srv->db, c);
    if (text != NULL)
        *len = strlen(text);
    return text;
}

/* ---- one attempt over HTTPS ---------------------------------------------------------------- */

struct answer {
    char body[ANSWER_MAX];
    size_t len;
    bool too_long;
    char signature[CPX_AUTH_HEADER_MAX + 64];
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t len = size * n;
    if (a->len + len > sizeof a->body) {
        a->too_long = true;
        return 0; /* stops the transfer */
    }
    memcpy(a->body + a->len, data, len);
    a->len += len;
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t len = size * n;
    static const char name[] = "cpx-signature:";
    if (len > sizeof name && strncasecmp(data, name, sizeof name - 1) == 0) {
        const char *v = data + sizeof name - 1;
        size_t vlen = len - (sizeof name - 1);
        while (vlen > 0 && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        if (vlen < sizeof a->signature) {
            memcpy(a->signature, v, vlen);
            a->signature[vlen] = '\0';
        }
    }
    return len;
}

/* The request target of an endpoint URL: its path and query ("/" when it has none). */
static const char *url_target(const char *url)
{
    const char *host = strstr(url, "://");
    const char *path = host ? strchr(host + 3, '/') : NULL;
    return path ? path : "/";
}

/* Judges the answer; on acceptance fills party (body malloc'd). Returns NULL or why not. */
static const char *judge(const struct job *j, long status, const struct answer *a,
                         struct cpx_party *party)
{
    if (status != 200)
        return "the endpoint did not answer 200";
    struct cpx_auth auth;
    if (a->signature[0] == '\0')
        return "the answer has no CPX-Signature header";
    if (cpx_auth_parse(a->signature, strlen(a->signature), &auth) != CPX_AUTH_OK)
        return "the answer's CPX-Signature header is malformed";
    if (strcmp(auth.id, j->provider) != 0)
        return "the acceptance is signed by another identity than the agreement's provider";
    char agr[MARKET_ID_MAX], dlv[MARKET_ID_MAX];
    market_id_format(agr, "agr_", j->agreement);
    market_id_format(dlv, "dlv_", j->agreement);
    snprintf(party->target, sizeof party->target, "/v1/deliveries/%s/acceptance", dlv);
    if (!cpx_reqsig_verify(j->provider_pk, "POST", party->target, auth.ts, a->body, a->len,
                           auth.sig))
        return "the acceptance's signature does not verify with the provider's key";
    json_t *body = json_loadb(a->body, a->len, JSON_REJECT_DUPLICATES, NULL);
    bool names = json_is_object(body) && json_object_size(body) == 2 &&
                 json_is_string(json_object_get(body, "agreement")) &&
                 strcmp(json_string_value(json_object_get(body, "agreement")), agr) == 0 &&
                 json_is_string(json_object_get(body, "delivery")) &&
                 strcmp(json_string_value(json_object_get(body, "delivery")), dlv) == 0;
    json_decref(body);
    if (!names)
        return "the acceptance does not name this agreement and delivery";
    uint8_t *copy = malloc(a->len ? a->len : 1);
    if (copy == NULL)
        return "out of memory";
    memcpy(copy, a->body, a->len);
    snprintf(party->id, sizeof party->id, "%s", auth.id);
    snprintf(party->method, sizeof party->method, "POST");
    party->ts = auth.ts;
    party->body = copy;
    party->body_len = a->len;
    memcpy(party->sig, auth.sig, sizeof party->sig);
    return NULL;
}

/* Next try after `attempt` failures: full jitter over min(max, 2^(attempt-1)) seconds. */
static int64_t backoff(const struct dispatcher *d, int attempt, unsigned *rnd)
{
    int64_t cap = d->srv->cfg->delivery_backoff_max, w = 1;
    for (int i = 1; i < attempt && w < cap; i++)
        w *= 2;
    if (w > cap)
        w = cap;
    return (int64_t)(rand_r(rnd) % (unsigned)(w + 1));
}

static void deliver(struct dispatcher *d, CURL *curl, struct job *j, unsigned *rnd)
{
    int64_t started = now_us(), now = started / 1000000;
    char msg[512];
    if (now > j->deliver_by) {
        struct seq_cmd *cmd = seq_cmd_new(SEQ_UNDELIVERABLE, NULL);
        if (cmd == NULL)
            return;
        cmd->delivery.agreement = j->agreement;
        int st = sequencer_call(d->srv->seq, cmd, msg, sizeof msg);
        free(cmd);
        log_info("dispatcher: agr %" PRIu64 " not accepted by its deadline: %s", j->agreement,
                 st == 200 ? "failed, escrow and devices returned" : msg);
        return; /* the sequencer closed the outbox row (or it will be claimed again) */
    }
    int64_t allowed = breaker_allows(d, j->endpoint, now);
    if (allowed > now) {
        attempt_done(d, j, started, 0, "skipped", "the endpoint's circuit breaker is open",
                     allowed);
        return;
    }
    size_t len = 0;
    char *body = envelope(d, j, &len);
    struct cpx_auth auth = { 0 };
    snprintf(auth.id, sizeof auth.id, "exchange");
    if (body == NULL || !cpx_reqsig_sign(&d->srv->signer.kp, "POST", url_target(j->endpoint), now,
                                         body, len, &auth)) {
        free(body);
        attempt_done(d, j, started, 0, "failed", "the envelope could not be built",
                     now + backoff(d, j->attempt, rnd));
        return;
    }
    char authz[CPX_AUTH_HEADER_MAX + 32];
    char value[CPX_AUTH_HEADER_MAX];
    cpx_auth_format(&auth, value);
    snprintf(authz, sizeof authz, "Authorization: %s", value);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, authz);
    h = curl_slist_append(h, "Expect:");
    struct answer *a = calloc(1, sizeof *a);
    long status = 0;
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    if (a != NULL && h != NULL) {
        curl_easy_setopt(curl, CURLOPT_URL, j->endpoint);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, a);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, a);
        curl_easy_setopt(curl, CURLOPT_PINNEDPUBLICKEY, j->pin[0] ? j->pin : NULL);
        rc = curl_easy_perform(curl);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_slist_free_all(h);
    free(body);
    char why[256];
    struct cpx_party party = { 0 };
    const char *bad = NULL;
    if (rc != CURLE_OK) {
        snprintf(why, sizeof why, "%s",
                 a && a->too_long ? "the answer is too long" : curl_easy_strerror(rc));
        bad = why;
    } else {
        bad = judge(j, status, a, &party);
    }
    free(a);
    if (bad != NULL) {
        breaker_result(d, j->endpoint, false, now);
        attempt_done(d, j, started, rc == CURLE_OK ? status : 0, "failed", bad,
                     now + 1 + backoff(d, j->attempt, rnd));
        log_info("dispatcher: agr %" PRIu64 " attempt %d to %s failed: %s", j->agreement,
                 j->attempt, j->endpoint, bad);
        return;
    }
    breaker_result(d, j->endpoint, true, now);
    struct seq_cmd *cmd = seq_cmd_new(SEQ_ACCEPT, NULL);
    int st = 503;
    if (cmd != NULL) {
        cmd->delivery.agreement = j->agreement;
        cmd->delivery.party = party;
        st = sequencer_call(d->srv->seq, cmd, msg, sizeof msg);
        free(cmd);
    }
    free((void *)party.body);
    if (st == 200) {
        attempt_done(d, j, started, status, "accepted", NULL, 0);
        log_info("dispatcher: agr %" PRIu64 " accepted by %s", j->agreement, j->provider);
    } else { /* 409: it failed meanwhile (the row is closed); else the exchange is in trouble */
        attempt_done(d, j, started, status, "failed",
                     st == 409 ? msg : "the exchange could not record the acceptance",
                     now + 1 + backoff(d, j->attempt, rnd));
    }
}

/* ---- threads ------------------------------------------------------------------------------- */

static void *thread_main(void *arg)
{
    struct dispatcher *d = arg;
    CURL *curl = curl_easy_init(); /* one per thread: its connections are reused */
    unsigned rnd = (unsigned)now_us() ^ (unsigned)(uintptr_t)&rnd;
    if (curl != NULL) {
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)d->srv->cfg->delivery_timeout);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)d->srv->cfg->delivery_timeout);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
        if (d->srv->cfg->delivery_ca != NULL)
            curl_easy_setopt(curl, CURLOPT_CAINFO, d->srv->cfg->delivery_ca);
    }
    for (;;) {
        pthread_mutex_lock(&d->mu);
        bool stop = d->stop;
        pthread_mutex_unlock(&d->mu);
        if (stop || curl == NULL)
            break;
        struct job jobs[CLAIM];
        int n = 0;
        struct db_conn *c = db_acquire(d->srv->db);
        if (c != NULL) {
            n = claim(d, c, jobs);
            db_release(d->srv->db, c);
        }
        for (int i = 0; i < n; i++)
            deliver(d, curl, &jobs[i], &rnd);
        if (n == CLAIM)
            continue; /* more may be due */
        pthread_mutex_lock(&d->mu);
        if (!d->stop && !d->woken) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1; /* retries come due with time */
            pthread_cond_timedwait(&d->wake_cv, &d->mu, &until);
        }
        d->woken = false;
        pthread_mutex_unlock(&d->mu);
    }
    curl_easy_cleanup(curl);
    return NULL;
}

static void wake(void *arg)
{
    struct dispatcher *d = arg;
    pthread_mutex_lock(&d->mu);
    d->woken = true;
    pthread_cond_broadcast(&d->wake_cv);
    pthread_mutex_unlock(&d->mu);
}

struct dispatcher *dispatcher_start(struct server *srv)
{
    struct dispatcher *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->srv = srv;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->wake_cv, NULL);
    /* This process holds the market's lock (one sequencer per database): no other dispatcher
     * is working, so the leases of a cpxd that died are void. */
    struct db_conn *c = db_acquire(srv->db);
    if (c != NULL) {
        db_command(c, "dlv_leases_clear", 0, NULL, NULL);
        db_release(srv->db, c);
    }
    int n = (int)srv->cfg->dispatchers;
    d->threads = calloc(n > 0 ? (size_t)n : 1, sizeof *d->threads);
    for (int i = 0; d->threads != NULL && i < n; i++)
        if (pthread_create(&d->threads[i], NULL, thread_main, d) == 0)
            d->nthreads++;
    sequencer_on_agreements(srv->seq, wake, d);
    return d;
}

void dispatcher_stop(struct dispatcher *d)
{
    if (d == NULL)
        return;
    sequencer_on_agreements(d->srv->seq, NULL, NULL);
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_broadcast(&d->wake_cv);
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < d->nthreads; i++)
        pthread_join(d->threads[i], NULL);
    free(d->threads);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->wake_cv);
    free(d);
}
