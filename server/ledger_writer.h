/*
 * Appending to the ledger from inside a database transaction (docs/ledger.md §8, §10).
 *
 * A batch is the records one transaction appends. The first append locks the ledger's head row
 * (so appenders of every cpxd take turns and sequence numbers have no gaps), reads the size and
 * the compact range of the tree from the node table, and from then on each append encodes the
 * record (seq = next leaf index, ts = the exchange clock in ms, never going back), hashes it and
 * extends the range in memory. ledger_batch_commit then writes every record and every full node
 * the appends completed in one statement each, signs a checkpoint of the new size and moves the
 * head -- all still inside the caller's transaction, so the records commit exactly when the state
 * change they describe commits, and a checkpoint covers them the moment they are visible.
 *
 * A transaction that is retried (serialization failure) calls ledger_batch_reset first: nothing
 * of a rolled-back attempt survives in the batch.
 */
#ifndef CPX_SERVER_LEDGER_WRITER_H
#define CPX_SERVER_LEDGER_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger/checkpoint.h"
#include "ledger/merkle.h"
#include "ledger/record.h"
#include "server/db.h"
#include "server/db_ledger.h"

/* The exchange's checkpoint key and the log's origin. */
struct ledger_signer {
    char origin[CPX_ORIGIN_MAX];             /* origin line and key name */
    struct cpx_keypair kp;                   /* the exchange's Ed25519 key */
    struct cpx_note_verifier verifier;       /* (origin, public key) */
    char verifier_key[CPX_VERIFIER_KEY_MAX]; /* its key string, for auditors */
};

/* Loads the key file at path for origin. Returns NULL, or a sentence saying what is wrong. */
const char *ledger_signer_load(struct ledger_signer *s, const char *path, const char *origin);

/* Wipes the secret key. */
void ledger_signer_wipe(struct ledger_signer *s);

/* The records of one transaction. */
struct ledger_batch {
    const struct ledger_signer *signer; /* signs the batch's checkpoint */
    bool begun;                         /* the head is locked and range loaded */
    uint64_t start;                     /* ledger size when the batch began */
    int64_t ts_ms;                      /* ts of the latest record (head's when none yet) */
    struct cpx_merkle_range range;      /* the tree's compact range, batch included */
    struct cpx_sha256_ctx *hash;        /* hashing context */
    struct cpx_canon_writer w;          /* encoder, reused */
    struct db_ledger_row *rows;         /* records appended (bytes owned) */
    size_t nrows, rows_cap;
    struct cpx_merkle_node *nodes; /* full nodes the appends completed */
    size_t nnodes, nodes_cap;
};

void ledger_batch_init(struct ledger_batch *b, const struct ledger_signer *signer);

/* Forgets everything appended (for a transaction that is about to be retried). */
void ledger_batch_reset(struct ledger_batch *b);

void ledger_batch_free(struct ledger_batch *b);

/*
 * Locks the head and loads the tree (done by the first append anyway); b->range.size is then the
 * ledger's size. Calling it again does nothing.
 */
enum db_status ledger_batch_begin(struct db_conn *c, struct ledger_batch *b);

/*
 * Appends a record of kind with payload (a canonical JSON object) and, for a party-originated
 * record, the party's signed request (NULL for the exchange's own records). *seq gets the
 * record's sequence number. DB_HARD when the record cannot be encoded (logged).
 */
enum db_status ledger_append(struct db_conn *c, struct ledger_batch *b, enum cpx_kind kind,
                             const struct cpx_party *party, const uint8_t *payload, size_t len,
                             uint64_t *seq);

/*
 * Writes the batch's records and nodes, signs and stores the checkpoint of the new size and
 * moves the head. Does nothing for an empty batch.
 */
enum db_status ledger_batch_commit(struct db_conn *c, struct ledger_batch *b);

#endif
