/*
 * The ledger records of identity events, built from the server's state (docs/ledger.md §3):
 * registration, approval, rejection and key rotation, each appended to a ledger batch inside the
 * transaction that makes the change. A record a party originated carries its signed request (the
 * request passed in); one the exchange originated (the bootstrap operator, identities older than
 * the ledger; request NULL) carries none.
 */
#ifndef CPX_SERVER_RECORDS_H
#define CPX_SERVER_RECORDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ledger/record.h"
#include "server/db.h"
#include "server/identity.h"
#include "server/ledger_writer.h"

struct request;

/* The ledger's role bits (enum cpx_role) for the server's (enum role), mapped by name. */
unsigned records_ledger_roles(unsigned roles);

/*
 * True when req's body is a canonical JSON object (docs/ledger.md §1), as the body of every
 * identity-family request must be. Otherwise answers 400 and returns false.
 */
bool records_require_canonical_body(struct request *req);

/*
 * True when req can be kept whole in a ledger record's party part: a body of at most
 * CPX_RECORD_BODY_MAX bytes (256 KiB; cpxd takes larger bodies elsewhere) and a target of at most
 * CPX_REQSIG_TARGET_MAX. Otherwise answers 413 or 400 and returns false. A request the sequencer
 * records must pass this first: once its batch has moved the books, a record that cannot be
 * written stops cpxd.
 */
bool records_party_fits(struct request *req);

/* Fills p with req's signed request as received (id, method, target, ts, body, sig), as a
 * record's party part keeps it; p points into req. */
void records_party_of(const struct request *req, struct cpx_party *p);

/*
 * Appends a market or delivery record (docs/trading.md, docs/delivery.md) whose payload is the
 * JSON object payload, written canonically (sorted keys; integers must be within +-(2^53-1),
 * strings UTF-8, no reals). party is the party's signed request (records_party_of, or a signature
 * that did not arrive as a request to cpxd: a provider's acceptance), or NULL for the exchange's
 * own record. DB_HARD when the payload cannot be written canonically (logged).
 */
enum db_status records_market(struct db_conn *c, struct ledger_batch *b, enum cpx_kind kind,
                              const json_t *payload, const struct cpx_party *party, uint64_t *seq);

/*
 * Append the identity, approval/rejection and key_rotation records. req is the originating
 * party's request, or NULL for an exchange-originated record. For a party record the body must
 * be part of the payload (the body rule); when it is not, *body_ok is set false and nothing is
 * appended (the caller answers 400). *seq gets the record's seq.
 */
enum db_status records_identity(struct db_conn *c, struct ledger_batch *b,
                                const struct identity *idn, const struct request *req,
                                bool *body_ok, uint64_t *seq);
enum db_status records_decision(struct db_conn *c, struct ledger_batch *b, const char *subject,
                                enum identity_status decision, const char *reason,
                                const struct request *req, bool *body_ok, uint64_t *seq);
enum db_status records_key_rotation(struct db_conn *c, struct ledger_batch *b, const char *id,
                                    const uint8_t old_key[CPX_ED25519_PK_LEN],
                                    const uint8_t new_key[CPX_ED25519_PK_LEN],
                                    const struct request *req, bool *body_ok, uint64_t *seq);

#endif
