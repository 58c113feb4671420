/*
 * State-changing handlers run their work through handler_transact, which wraps it in one
 * serializable transaction together with the two things every such request needs:
 *   - the durable replay guard: the request's signature is recorded in the same transaction, so
 *     a replay is refused even after a restart has emptied the in-memory cache;
 *   - Idempotency-Key: a repeat of a request with the same key returns the first answer, and the
 *     same key on a different request is refused (409).
 * The handler's function decides the answer with tx_ok or tx_fail; a failure rolls everything
 * back, so a refused request never leaves half its writes behind. Ledger records it appends to
 * out->ledger (ledger_writer.h) are written, with the checkpoint that covers them, just before
 * COMMIT: the change and its record commit together or not at all.
 */
#ifndef CPX_SERVER_TXN_H
#define CPX_SERVER_TXN_H

#include <jansson.h>
#include <stdbool.h>

#include "server/db.h"
#include "server/errors.h"
#include "server/identity.h"
#include "server/ledger_writer.h"

struct request;

/* The answer a transaction decided on. */
struct tx_reply {
    bool decided;                /* tx_ok or tx_fail was called */
    bool failed;                 /* tx_fail: roll back and answer error */
    int status;                  /* tx_ok: HTTP status */
    json_t *body;                /* tx_ok: response body (owned) */
    enum err error;              /* tx_fail: the error */
    char field[128];             /* tx_fail: field at fault, or "" */
    char message[512];           /* tx_fail: sentence, or "" for the table's */
    struct ledger_batch *ledger; /* the transaction's ledger records */
};

/* The work of one request; see db_tx_fn for the rules (it may run more than once). */
typedef enum db_status (*handler_tx_fn)(struct db_conn *c, struct request *req, void *arg,
                                        struct tx_reply *out);

/* Decides a successful answer (body stolen). Returns DB_OK, for `return tx_ok(...)`. */
enum db_status tx_ok(struct tx_reply *out, int status, json_t *body);

/* Decides an error answer; the transaction rolls back. Returns DB_OK, for `return tx_fail(...)`. */
enum db_status tx_fail(struct tx_reply *out, enum err e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Compares the caller as authentication saw it with its row read again inside the transaction
 * (now, NULL when it is gone): decides a failure and returns false when the key that signed the
 * request is no longer the identity's, or an approved caller is approved no more.
 */
bool tx_caller_still(const struct identity *caller, const struct identity *now,
                     struct tx_reply *out);

/*
 * Reads req's Idempotency-Key header: *key NULL when absent, else the key and in hash the digest
 * of what makes two requests the same (method, target, body). Answers 400 and returns false
 * when the header is malformed.
 */
bool tx_idempotency_key(struct request *req, const char **key, uint8_t hash[32]);

/* Runs fn for req as described above and answers the request. */
void handler_transact(struct request *req, handler_tx_fn fn, void *arg);

#endif
