/*
 * The state-changing request transaction: see txn.h.
 */
#include "server/txn.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/crypto.h"
#include "server/db_identities.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/util.h"

#define IDEMPOTENCY_KEY_MAX 128

enum db_status tx_ok(struct tx_reply *out, int status, json_t *body)
{
    out->decided = true;
    out->failed = false;
    out->status = status;
    json_decref(out->body);
    out->body = body;
    return DB_OK;
}

enum db_status tx_fail(struct tx_reply *out, enum err e, const char *field, const char *fmt, ...)
{
    out->decided = true;
    out->failed = true;
    out->error = e;
    snprintf(out->field, sizeof out->field, "%s", field ? field : "");
    out->message[0] = '\0';
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(out->message, sizeof out->message, fmt, ap);
        va_end(ap);
    }
    return DB_OK;
}

struct tx_state {
    struct request *req;
    handler_tx_fn fn;
    void *arg;
    const char *idem_key;  /* Idempotency-Key header, or NULL */
    uint8_t idem_hash[32]; /* hash of the request the key was used for */
    char *replayed;        /* a stored first answer being replayed (malloc'd) */
    int replayed_status;
    struct tx_reply out;
    struct ledger_batch ledger;
};

/* SHA-256 over what makes two requests "the same" for Idempotency-Key: method, target, body. */
static void request_hash(struct request *req, uint8_t out[32])
{
    size_t n = strlen(req->method) + 1 + strlen(req->target) + 1;
    char *head = malloc(n);
    if (head == NULL) {
        memset(out, 0, 32);
        return;
    }
    snprintf(head, n, "%s\n%s", req->method, req->target);
    cpx_sha256_2(head, n, req->body ? req->body : "", req->body_len, out);
    free(head);
}

/*
 * Authentication read the caller's key and status before the transaction began; a key rotation
 * or a decision may have committed since. Read them again, share-locking the row until COMMIT,
 * and refuse when the key that verified the signature is no longer the identity's, or when an
 * approved caller is approved no more: a record must never carry a signature by a key not in
 * force at its seq (the auditor's party_sig), nor act for an identity no longer approved.
 */
static enum db_status recheck_caller(struct db_conn *c, struct request *req, struct tx_reply *out)
{
    if (req->caller.id[0] == '\0') /* a registration: the key is the body's, checked there */
        return DB_OK;
    struct identity now;
    enum db_status st = db_identity_lock(c, req->caller.id, &now);
    if (st != DB_OK && st != DB_NO_ROWS)
        return st;
    if (tx_caller_still(&req->caller, st == DB_OK ? &now : NULL, out))
        req->caller = now;
    return DB_OK;
}

bool tx_caller_still(const struct identity *caller, const struct identity *now,
                     struct tx_reply *out)
{
    if (now == NULL)
        tx_fail(out, E_UNKNOWN_IDENTITY, NULL, "No identity has the id %s.", caller->id);
    else if (memcmp(now->public_key, caller->public_key, sizeof now->public_key) != 0)
        tx_fail(out, E_BAD_SIGNATURE, NULL,
                "The key of %s was rotated while this request was in flight; sign it with the "
                "new key.",
                caller->id);
    else if (caller->status == IDENTITY_APPROVED && now->status != IDENTITY_APPROVED)
        tx_fail(out, E_NOT_APPROVED, NULL, "Identity %s is %s, not approved.", caller->id,
                identity_status_names[now->status]);
    else
        return true;
    return false;
}

static enum db_status run_tx(struct db_conn *c, void *arg)
{
    struct tx_state *s = arg;
    struct request *req = s->req;
    json_decref(s->out.body);
    memset(&s->out, 0, sizeof s->out);
    ledger_batch_reset(&s->ledger);
    s->out.ledger = &s->ledger;
    free(s->replayed);
    s->replayed = NULL;

    int64_t expires = req->auth.ts + req->srv->cfg->clock_skew + 1;
    enum db_status st = db_signature_record(c, req->auth.sig, expires);
    if (st == DB_CONFLICT) {
        tx_fail(&s->out, E_REPLAYED_REQUEST, NULL, NULL);
        return DB_NO_ROWS;
    }
    if (st != DB_OK)
        return st;

    st = recheck_caller(c, req, &s->out);
    if (st != DB_OK || s->out.failed)
        return st == DB_OK ? DB_NO_ROWS : st;

    if (s->idem_key != NULL) {
        uint8_t hash[32];
        st = db_idempotency_get(c, req->auth.id, s->idem_key, hash, &s->replayed_status,
                                &s->replayed);
        if (st == DB_OK) {
            if (memcmp(hash, s->idem_hash, 32) != 0) {
                tx_fail(&s->out, E_IDEMPOTENCY_KEY_REUSED, NULL, NULL);
                return DB_NO_ROWS;
            }
            return DB_OK; /* the signature record commits; the first answer is replayed */
        }
        if (st != DB_NO_ROWS)
            return st;
    }

    st = s->fn(c, req, s->arg, &s->out);
    if (st != DB_OK)
        return st;
    if (!s->out.decided)
        return DB_HARD;
    if (s->out.failed)
        return DB_NO_ROWS; /* roll back: nothing of a refused request is kept */
    st = ledger_batch_commit(c, &s->ledger);
    if (st != DB_OK)
        return st;
    if (s->idem_key != NULL) {
        char *text = s->out.body ? json_dumps(s->out.body, JSON_COMPACT) : strdup("{}");
        if (text == NULL)
            return DB_HARD;
        st = db_idempotency_put(c, req->auth.id, s->idem_key, s->idem_hash, s->out.status, text);
        free(text);
    }
    return st;
}

/* Is the Idempotency-Key header usable: 1 to 128 visible ASCII characters? */
static bool idem_key_valid(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > IDEMPOTENCY_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (k[i] <= 0x20 || k[i] >= 0x7f)
            return false;
    return true;
}

bool tx_idempotency_key(struct request *req, const char **key, uint8_t hash[32])
{
    *key = request_header(req, "Idempotency-Key");
    if (*key != NULL && !idem_key_valid(*key)) {
        reply_error(req, E_INVALID_HEADER, "Idempotency-Key",
                    "Idempotency-Key must be 1 to %d visible ASCII characters.",
                    IDEMPOTENCY_KEY_MAX);
        return false;
    }
    if (*key != NULL)
        request_hash(req, hash);
    return true;
}

void handler_transact(struct request *req, handler_tx_fn fn, void *arg)
{
    struct tx_state s = { .req = req, .fn = fn, .arg = arg };
    if (!tx_idempotency_key(req, &s.idem_key, s.idem_hash))
        return;
    ledger_batch_init(&s.ledger, &req->srv->signer);
    /* Every such change appends to the ledger and so takes its head row: one at a time per
     * process, or concurrent ones would only collide there and retry (other cpxd processes
     * still can, and are retried). A request waits for its turn no longer than it would wait
     * for a database connection: then it is answered 503 busy. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    int64_t ns = deadline.tv_nsec + req->srv->cfg->db_wait_ms * 1000000;
    deadline.tv_sec += (time_t)(ns / 1000000000);
    deadline.tv_nsec = (long)(ns % 1000000000);
    if (pthread_mutex_timedlock(&req->srv->ledger_mu, &deadline) != 0) {
        ledger_batch_free(&s.ledger);
        reply_error(req, E_BUSY, NULL, NULL);
        return;
    }
    enum db_status st = db_transact(req->srv->db, DB_SERIALIZABLE, run_tx, &s);
    pthread_mutex_unlock(&req->srv->ledger_mu);
    if (st == DB_OK)
        metrics_ledger_committed(req->srv->metrics, s.ledger.nrows, s.ledger.range.size, now_us());
    ledger_batch_free(&s.ledger);
    if (s.out.failed)
        reply_error(req, s.out.error, s.out.field, s.out.message[0] ? "%s" : NULL, s.out.message);
    else if (st == DB_OK && s.replayed != NULL)
        reply_json_text(req, s.replayed_status, s.replayed);
    else if (st == DB_OK)
        reply_json(req, s.out.status, json_incref(s.out.body));
    else if (st == DB_SOFT)
        reply_error(req, E_BUSY, NULL, NULL);
    else if (st == DB_UNAVAILABLE)
        reply_error(req, E_DATABASE_UNAVAILABLE, NULL, NULL);
    else
        reply_error(req, E_INTERNAL, NULL, NULL);
    json_decref(s.out.body);
    free(s.replayed);
}
