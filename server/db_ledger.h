/*
 * Queries on the ledger tables (schema/0002_ledger.sql): the head row appenders lock, batched
 * inserts of records and tree nodes, checkpoints, and the reads behind the ledger API. One
 * function per prepared statement; the statement table is in db_ledger.c.
 */
#ifndef CPX_SERVER_DB_LEDGER_H
#define CPX_SERVER_DB_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "ledger/merkle.h"
#include "ledger/reqsig.h"
#include "server/db.h"

/* Locks the ledger's head row for this transaction and reads the size and last record time. */
enum db_status db_ledger_head_lock(struct db_conn *c, uint64_t *size, int64_t *ts_ms);

/* Moves the head forward to size and ts_ms (the schema refuses any move back). */
enum db_status db_ledger_head_set(struct db_conn *c, uint64_t size, int64_t ts_ms);

/*
 * Reads the full nodes at coords[0..n) into hashes[i] and sets found[i]. Nodes that do not exist
 * leave found[i] false (the caller decides whether that is an error).
 */
enum db_status db_ledger_nodes_get(struct db_conn *c, const struct cpx_merkle_node *coords,
                                   size_t n, uint8_t (*hashes)[CPX_HASH_LEN], bool *found);

/* One record row to insert. */
struct db_ledger_row {
    uint64_t seq;
    const char *kind;          /* kind name */
    int64_t ts_ms;             /* the record's ts */
    char party_id[CPX_ID_MAX]; /* originating party, "" for the exchange */
    const uint8_t *bytes;      /* the record's canonical bytes */
    size_t len;
};

/* Inserts rows[0..n) and nodes[0..m) in two statements. */
enum db_status db_ledger_insert(struct db_conn *c, const struct db_ledger_row *rows, size_t n,
                                const struct cpx_merkle_node *nodes, size_t m);

/* A checkpoint as stored. */
struct db_checkpoint {
    uint64_t size;
    uint8_t root[CPX_HASH_LEN];
    char *note;         /* signed note text (malloc'd; db_checkpoint_clear frees it) */
    int64_t created_us; /* unix microseconds */
};

void db_checkpoint_clear(struct db_checkpoint *cp);

/* Stores a signed checkpoint, made at ts_ms (the batch's last record time). */
enum db_status db_ledger_checkpoint_insert(struct db_conn *c, uint64_t size,
                                           const uint8_t root[CPX_HASH_LEN], const char *note,
                                           int64_t ts_ms);

/* The checkpoint of the given size, or the latest when size is 0. DB_NO_ROWS when none. */
enum db_status db_ledger_checkpoint_get(struct db_conn *c, uint64_t size,
                                        struct db_checkpoint *out);

/* Calls fn for up to limit checkpoints with size > after, ascending; fn returning false stops. */
enum db_status db_ledger_checkpoint_list(struct db_conn *c, uint64_t after, uint64_t upto,
                                         int limit,
                                         bool (*fn)(const struct db_checkpoint *, void *),
                                         void *arg);

/* A record as served: its bytes and the leaf hash stored for it (has_leaf false when missing). */
struct db_record {
    uint64_t seq;
    uint8_t *bytes; /* malloc'd by the reader, valid during the callback */
    size_t len;
    bool has_leaf;
    uint8_t leaf[CPX_HASH_LEN];
};

/*
 * Calls fn for the records with from <= seq < upto in order, at most limit of them and no more
 * than one past max_bytes of record bytes (the rest are not even fetched); fn returning false
 * stops.
 */
enum db_status db_ledger_record_list(struct db_conn *c, uint64_t from, uint64_t upto, int limit,
                                     size_t max_bytes, bool (*fn)(const struct db_record *, void *),
                                     void *arg);

/* Records that public_key was retired by identity_id. */
enum db_status db_retired_key_insert(struct db_conn *c, const uint8_t key[CPX_ED25519_PK_LEN],
                                     const char *identity_id);

/* DB_OK when key was retired by some identity, DB_NO_ROWS when not. */
enum db_status db_retired_key_get(struct db_conn *c, const uint8_t key[CPX_ED25519_PK_LEN]);

#endif
