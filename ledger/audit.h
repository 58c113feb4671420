/*
 * The auditor's verification core: everything `cpx-audit` checks, with no I/O and no threads.
 *
 * Feed it the ledger in order -- records (cpx_audit_record) and the exchange's checkpoints
 * (cpx_audit_checkpoint) -- and it rebuilds the Merkle tree and the table of every party's key,
 * and collects failures as (seq, reason, message). One pass checks:
 *
 *   canonical    each record is canonical JSON                       reason "canonical"
 *   envelope     ... and a valid record envelope (record.h)           "envelope"
 *   continuity   seq is 0, 1, 2, ... with no gap and no repeat        "seq_gap", "seq_order"
 *   time         ts never goes back                                   "ts_order"
 *   kind         the kind is one this auditor knows                   "unknown_kind"
 *   party rules  kinds a party must originate have a party part,     "party_missing",
 *                exchange-only kinds have none                        "party_unexpected"
 *   parties      the party is registered, approved, has the role     "party_unknown",
 *                the kind needs                                       "party_status"
 *   signatures   the party's request signature verifies with the key "party_sig"
 *                in force at that seq
 *   identities   identity-family payloads are well-formed and follow "payload", "identity",
 *                the life cycle (register once, id derived from key, "body_mismatch"
 *                decide once, rotate from the key in force), and
 *                their signed bodies are part of the payload
 *   checkpoints  each checkpoint is signed by the exchange's key,    "checkpoint_sig",
 *                names the expected origin, and its root equals the  "checkpoint_origin",
 *                rebuilt tree's root at its size; none claims more   "root_mismatch",
 *                records than the log holds                           "checkpoint_beyond_log"
 *   history      with a saved state, the new checkpoint is proved    "consistency"
 *                consistent with the last verified one
 *   attribution  when the served leaf hashes (optional input) match  "leaf_mismatch"
 *                a checkpoint but the records do not, each record
 *                whose bytes differ from its leaf is named
 *
 * Failures name the record's seq; checkpoint failures name the checkpoint's tree size; a record
 * whose seq cannot be read is named by its position. Failures come back sorted by seq.
 *
 * Keys. The key table is built from the log itself: an identity record registers (id, key,
 * roles) as pending; approval/rejection by an approved operator (or by the exchange itself: no
 * party part) decides it; key_rotation, signed with the key in force, replaces the key from the
 * next record on. Every other party-originated record is checked against the key in force for
 * its party at its seq. The exchange's own key is configured (the checkpoint verifier key).
 *
 * Checkpoints are checked when the record count reaches their size: feed each checkpoint before
 * the record that takes the log past its size (simplest: all checkpoints first; they are queued).
 *
 * Signatures in parallel. Ed25519 verification dominates the cost (~70 us each, against ~2 us
 * for everything else). In CPX_AUDIT_SIGS_DEFER mode cpx_audit_record does not verify; it returns
 * CPX_AUDIT_DEFERRED with a job naming the seq and the key in force, and the caller verifies the
 * record with cpx_audit_sigjob_verify -- a pure function, safe on any thread with its own scratch
 * record -- and reports failures with cpx_audit_sigjob_failed. Key resolution stays sequential,
 * so the result is the same as verifying inline.
 *
 * State. cpx_audit_state_write saves what a later run needs -- the ledger's origin, the records
 * checked so far, the compact range of the tree at that point, the last verified checkpoint, the
 * key table -- as canonical JSON (a state loads only into an auditor of the same origin);
 * cpx_audit_state_load restores it into a fresh auditor, which then expects records from where the
 * last run stopped and checks the next checkpoint with a consistency proof from the last verified
 * one (cpx_audit_consistency), so a rewritten history is caught without downloading it again.
 */
#ifndef CPX_LEDGER_AUDIT_H
#define CPX_LEDGER_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger/canon.h"
#include "ledger/checkpoint.h"
#include "ledger/merkle.h"
#include "ledger/record.h"

#define CPX_AUDIT_MESSAGE_MAX 160 /* longest failure message, with its NUL */

/* What failed; cpx_audit_reason_code gives the stable snake_case code used in reports. */
enum cpx_audit_reason {
    CPX_AUDIT_CANONICAL = 1,     /* record bytes are not canonical JSON */
    CPX_AUDIT_ENVELOPE,          /* canonical, but not a record envelope */
    CPX_AUDIT_SEQ_GAP,           /* records missing before this seq (seq = first missing) */
    CPX_AUDIT_SEQ_ORDER,         /* seq repeats or goes back */
    CPX_AUDIT_UNKNOWN_KIND,      /* a kind this auditor does not know */
    CPX_AUDIT_PARTY_MISSING,     /* the kind needs a party's signed request and has none */
    CPX_AUDIT_PARTY_UNEXPECTED,  /* an exchange-only kind carries a party part */
    CPX_AUDIT_PARTY_UNKNOWN,     /* the party id was never registered */
    CPX_AUDIT_PARTY_STATUS,      /* the party is not approved or lacks the role */
    CPX_AUDIT_PARTY_SIG,         /* the party's signature does not verify with its key */
    CPX_AUDIT_PAYLOAD,           /* an identity-family payload is malformed */
    CPX_AUDIT_IDENTITY,          /* the identity life cycle is broken */
    CPX_AUDIT_BODY_MISMATCH,     /* the signed body is not part of the recorded payload */
    CPX_AUDIT_LEAF_MISMATCH,     /* the record's bytes differ from the leaf the log committed to */
    CPX_AUDIT_CHECKPOINT_SIG,    /* checkpoint malformed or not signed by the exchange's key */
    CPX_AUDIT_CHECKPOINT_ORIGIN, /* checkpoint names another log */
    CPX_AUDIT_ROOT_MISMATCH,     /* checkpoint root differs from the rebuilt tree's */
    CPX_AUDIT_CHECKPOINT_BEYOND, /* checkpoint covers more records than were served */
    CPX_AUDIT_CONSISTENCY,       /* new checkpoint not proved consistent with the saved one */
    CPX_AUDIT_TS_ORDER,          /* a record's ts is earlier than the record before it */
};

/* The stable code of reason r ("party_sig"). Never NULL; static. */
const char *cpx_audit_reason_code(enum cpx_audit_reason r);

/* One finding. */
struct cpx_audit_failure {
    uint64_t seq;                        /* record seq, or checkpoint tree size */
    enum cpx_audit_reason reason;        /* what failed */
    char message[CPX_AUDIT_MESSAGE_MAX]; /* a sentence for people */
};

/* How party signatures are handled. */
enum cpx_audit_sigmode {
    CPX_AUDIT_SIGS_SKIP = 0, /* structure only: keys are tracked, signatures not verified */
    CPX_AUDIT_SIGS_INLINE,   /* cpx_audit_record verifies each signature itself */
    CPX_AUDIT_SIGS_DEFER,    /* cpx_audit_record hands each signature out as a job */
};

/* How an auditor is set up. */
struct cpx_audit_config {
    struct cpx_note_verifier exchange; /* the exchange's checkpoint key */
    char origin[CPX_ORIGIN_MAX];       /* expected checkpoint origin; "" means exchange.name */
    enum cpx_audit_sigmode sigs;       /* signature handling */
    size_t max_failures;               /* failures kept in detail (0: 10000); all are counted */
};

/* The result of a feeding call. */
enum cpx_audit_status {
    CPX_AUDIT_OK = 0,   /* processed (findings, if any, were recorded) */
    CPX_AUDIT_DEFERRED, /* processed; *job holds a signature for the caller to verify */
    CPX_AUDIT_E_NOMEM,  /* out of memory: the audit cannot go on */
    CPX_AUDIT_E_ORDER,  /* caller error: a checkpoint older than the records already fed, or a
                           state loaded after feeding began */
};

/* A party signature to verify (CPX_AUDIT_SIGS_DEFER). */
struct cpx_audit_sigjob {
    uint64_t seq;                   /* the record's seq */
    uint8_t pk[CPX_ED25519_PK_LEN]; /* the key in force for its party at that seq */
};

struct cpx_audit;

/* A new auditor, or NULL when out of memory. Free with cpx_audit_free. */
struct cpx_audit *cpx_audit_new(const struct cpx_audit_config *cfg);

/* Frees a and everything it holds (NULL is fine). */
void cpx_audit_free(struct cpx_audit *a);

/*
 * Feeds the next record: its exact bytes as served and, optionally, the leaf hash the log claims
 * for it (NULL when not served). Returns CPX_AUDIT_OK, CPX_AUDIT_DEFERRED (then *job is filled;
 * with job NULL a deferring auditor verifies inline), or CPX_AUDIT_E_NOMEM.
 */
enum cpx_audit_status cpx_audit_record(struct cpx_audit *a, const void *bytes, size_t len,
                                       const uint8_t claimed_leaf[CPX_HASH_LEN],
                                       struct cpx_audit_sigjob *job);

/*
 * The last record fed to cpx_audit_record as the auditor decoded it, or NULL when its bytes were
 * not a record (canonical, envelope). Valid until the next call that feeds a record; lets a
 * caller check more of the record (ledger/books.h) without decoding it again.
 */
const struct cpx_record *cpx_audit_decoded(const struct cpx_audit *a);

/*
 * Verifies a deferred job against the record's bytes, decoding them into scratch (a record
 * owned by the calling thread). Pure and thread-safe. Returns true when the signature holds.
 */
bool cpx_audit_sigjob_verify(struct cpx_record *scratch, const void *bytes, size_t len,
                             const struct cpx_audit_sigjob *job);

/* Records that a deferred job's signature failed. Report every job before cpx_audit_finish. */
void cpx_audit_sigjob_failed(struct cpx_audit *a, const struct cpx_audit_sigjob *job);

/* Feeds a signed checkpoint (note bytes as served). Returns OK, E_ORDER or E_NOMEM. */
enum cpx_audit_status cpx_audit_checkpoint(struct cpx_audit *a, const char *note, size_t len);

/*
 * After cpx_audit_state_load: feeds the newest checkpoint with the consistency proof from the
 * state's last verified checkpoint to it. The checkpoint is then also checked against the
 * rebuilt tree when the records reach its size. Returns OK, E_ORDER or E_NOMEM.
 */
enum cpx_audit_status cpx_audit_consistency(struct cpx_audit *a, const char *note, size_t len,
                                            const struct cpx_consistency_proof *proof);

/* Ends the input: checkpoints beyond the records served become failures; failures are sorted. */
void cpx_audit_finish(struct cpx_audit *a);

/* The failures kept so far (sorted after cpx_audit_finish); *n gets their number. */
const struct cpx_audit_failure *cpx_audit_failures(const struct cpx_audit *a, size_t *n);

/* All failures found, including those beyond max_failures. */
uint64_t cpx_audit_failure_total(const struct cpx_audit *a);

/* Records fed so far, counting those of a loaded state (the tree's size). */
uint64_t cpx_audit_records(const struct cpx_audit *a);

/* The last checkpoint verified against the tree: its size and root. False when none yet. */
bool cpx_audit_verified(const struct cpx_audit *a, uint64_t *size, uint8_t root[CPX_HASH_LEN]);

/* Writes the state (see above) as canonical JSON into w. Returns w's error state. */
enum cpx_canon_error cpx_audit_state_write(const struct cpx_audit *a, struct cpx_canon_writer *w);

/*
 * Loads a state into a fresh auditor. Returns NULL, or a sentence saying what is wrong (then the
 * auditor holds part of the state and should be freed).
 */
const char *cpx_audit_state_load(struct cpx_audit *a, const void *json, size_t len);

#endif
