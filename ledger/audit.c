/*
 * The auditor's core: see audit.h for what is checked and the reason codes.
 *
 * State of one audit (struct cpx_audit):
 *
 *   range      compact range of the leaves *as served* (the hash of each record's bytes): the
 *              tree the auditor rebuilds. Its size is the number of records fed.
 *   claimed    compact range of the leaf hashes the log *claims* for the same records, kept
 *              only while they differ ("forked"); until the first difference it equals range,
 *              so the common case costs nothing. `mismatch` lists the positions where they
 *              differed since the last checkpoint check: when a checkpoint's root matches the
 *              claimed tree but not the served one, exactly those records were altered.
 *   pending    checkpoints whose size the records have not reached yet, sorted by size; each is
 *              checked when the record count equals its size.
 *   parties    the key table: identity id -> (key in force, roles, status), an open-addressing
 *              hash table (power-of-two capacity, linear probing, never more than half full,
 *              no deletions: identities are never removed from the ledger).
 *   next_seq   the seq the next record should carry; last_ts the latest record time seen.
 *
 * Invariants: range.size == records fed (plus the loaded state's); every pending size >=
 * range.size; verified_size <= range.size.
 */
#include "ledger/audit.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/codec.h"

#define DEFAULT_MAX_FAILURES 10000

/* Whether a kind has a party part. */
enum party_rule {
    PARTY_NONE = 0, /* exchange-only */
    PARTY_OPTIONAL, /* a party or the exchange */
    PARTY_REQUIRED, /* always a party */
};

/* What each kind requires of its originator. */
static const struct {
    unsigned char party; /* enum party_rule */
    unsigned role;       /* role bit the party must hold (enum cpx_role), 0 for any */
} kind_rules[CPX_KIND_COUNT] = {
    [CPX_KIND_IDENTITY] = { PARTY_OPTIONAL, 0 },
    [CPX_KIND_APPROVAL] = { PARTY_OPTIONAL, CPX_ROLE_OPERATOR },
    [CPX_KIND_REJECTION] = { PARTY_OPTIONAL, CPX_ROLE_OPERATOR },
    [CPX_KIND_KEY_ROTATION] = { PARTY_REQUIRED, 0 },
    [CPX_KIND_LISTING] = { PARTY_REQUIRED, CPX_ROLE_PROVIDER },
    [CPX_KIND_ORDER] = { PARTY_REQUIRED, CPX_ROLE_BUYER },
    [CPX_KIND_CANCEL] = { PARTY_OPTIONAL, 0 },
    [CPX_KIND_AGREEMENT] = { PARTY_NONE, 0 },
    [CPX_KIND_DISPATCH] = { PARTY_NONE, 0 },
    [CPX_KIND_ACCEPTANCE] = { PARTY_REQUIRED, CPX_ROLE_PROVIDER },
    [CPX_KIND_USAGE] = { PARTY_REQUIRED, CPX_ROLE_PROVIDER },
    [CPX_KIND_BILL] = { PARTY_NONE, 0 },
    [CPX_KIND_COMMISSION] = { PARTY_NONE, 0 },
    [CPX_KIND_SETTLEMENT] = { PARTY_NONE, 0 },
    [CPX_KIND_DISPUTE] = { PARTY_REQUIRED, CPX_ROLE_BUYER },
    [CPX_KIND_RESOLUTION] = { PARTY_REQUIRED, CPX_ROLE_OPERATOR },
    [CPX_KIND_FAILURE] = { PARTY_NONE, 0 },
    [CPX_KIND_DEPOSIT] = { PARTY_REQUIRED, CPX_ROLE_OPERATOR },
    [CPX_KIND_FEE_SCHEDULE] = { PARTY_NONE, 0 },
    [CPX_KIND_COMPLETION] = { PARTY_NONE, 0 },
};

/* Where an identity is in its life cycle. */
enum party_status {
    STATUS_PENDING = 0, /* registered, not yet decided */
    STATUS_ACTIVE,      /* approved */
    STATUS_REJECTED,    /* rejected */
};
static const char *const status_names[] = { "pending", "active", "rejected" };

/* One identity of the key table. */
struct party {
    char id[CPX_ID_MAX];            /* identity id; "" marks a free slot */
    uint8_t pk[CPX_ED25519_PK_LEN]; /* the key in force */
    unsigned roles;                 /* enum cpx_role bits */
    unsigned char status;           /* enum party_status */
};

/* A checkpoint waiting for the records to reach its size. */
struct pending_checkpoint {
    uint64_t size;              /* its tree size */
    uint8_t root[CPX_HASH_LEN]; /* its root */
};

struct cpx_audit {
    struct cpx_audit_config cfg;         /* as given (origin filled in) */
    struct cpx_sha256_ctx *hash;         /* hashing context */
    struct cpx_record rec;               /* the record being checked (decoder scratch) */
    struct cpx_canon_doc body_doc;       /* scratch for identity-family request bodies */
    struct cpx_merkle_range range;       /* the tree of the records as served */
    struct cpx_merkle_range claimed;     /* the tree of the claimed leaf hashes, while forked */
    bool forked;                         /* claimed differs from range */
    uint64_t *mismatch;                  /* positions where served and claimed leaves differ */
    size_t n_mismatch, cap_mismatch;     /* entries used and allocated */
    uint64_t next_seq;                   /* seq expected next */
    int64_t last_ts;                     /* the latest record ts so far (unix ms) */
    bool fed;                            /* a record or checkpoint has been fed */
    bool have_verified;                  /* verified_* hold a checkpoint */
    uint64_t verified_size;              /* last checkpoint matched against the tree */
    uint8_t verified_root[CPX_HASH_LEN]; /* its root */
    struct pending_checkpoint *pending;  /* queued checkpoints, sorted by size */
    size_t pending_head, n_pending, cap_pending; /* first unchecked, used, allocated */
    struct party *parties;                       /* the key table (open addressing) */
    size_t n_parties, cap_parties;               /* identities and slots (0 or a power of two) */
    struct cpx_audit_failure *failures;          /* findings kept in detail */
    size_t n_failures, cap_failures;             /* used and allocated */
    uint64_t failure_total;                      /* all findings */
    bool nomem;                                  /* an allocation failed: the audit is void */
    bool rec_valid;                              /* rec holds the last record fed, decoded */
};

const char *cpx_audit_reason_code(enum cpx_audit_reason r)
{
    switch (r) {
    case CPX_AUDIT_CANONICAL: return "canonical";
    case CPX_AUDIT_ENVELOPE: return "envelope";
    case CPX_AUDIT_SEQ_GAP: return "seq_gap";
    case CPX_AUDIT_SEQ_ORDER: return "seq_order";
    case CPX_AUDIT_UNKNOWN_KIND: return "unknown_kind";
    case CPX_AUDIT_PARTY_MISSING: return "party_missing";
    case CPX_AUDIT_PARTY_UNEXPECTED: return "party_unexpected";
    case CPX_AUDIT_PARTY_UNKNOWN: return "party_unknown";
    case CPX_AUDIT_PARTY_STATUS: return "party_status";
    case CPX_AUDIT_PARTY_SIG: return "party_sig";
    case CPX_AUDIT_PAYLOAD: return "payload";
    case CPX_AUDIT_IDENTITY: return "identity";
    case CPX_AUDIT_BODY_MISMATCH: return "body_mismatch";
    case CPX_AUDIT_LEAF_MISMATCH: return "leaf_mismatch";
    case CPX_AUDIT_CHECKPOINT_SIG: return "checkpoint_sig";
    case CPX_AUDIT_CHECKPOINT_ORIGIN: return "checkpoint_origin";
    case CPX_AUDIT_ROOT_MISMATCH: return "root_mismatch";
    case CPX_AUDIT_CHECKPOINT_BEYOND: return "checkpoint_beyond_log";
    case CPX_AUDIT_CONSISTENCY: return "consistency";
    case CPX_AUDIT_TS_ORDER: return "ts_order";
    }
    return "unknown";
}

/* Records a finding. Only the first cfg.max_failures are kept in detail. */
static void fail(struct cpx_audit *a, uint64_t seq, enum cpx_audit_reason reason, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));

static void fail(struct cpx_audit *a, uint64_t seq, enum cpx_audit_reason reason, const char *fmt,
                 ...)
{
    a->failure_total++;
    if (a->n_failures >= a->cfg.max_failures)
        return;
    if (a->n_failures == a->cap_failures) {
        size_t cap = a->cap_failures ? a->cap_failures * 2 : 16;
        struct cpx_audit_failure *bigger = realloc(a->failures, cap * sizeof *bigger);
        if (bigger == NULL) {
            a->nomem = true;
            return;
        }
        a->failures = bigger;
        a->cap_failures = cap;
    }
    struct cpx_audit_failure *f = &a->failures[a->n_failures++];
    f->seq = seq;
    f->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
}

struct cpx_audit *cpx_audit_new(const struct cpx_audit_config *cfg)
{
    struct cpx_audit *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->cfg = *cfg;
    if (a->cfg.origin[0] == '\0')
        memcpy(a->cfg.origin, cfg->exchange.name, sizeof a->cfg.origin);
    if (a->cfg.max_failures == 0)
        a->cfg.max_failures = DEFAULT_MAX_FAILURES;
    a->hash = cpx_sha256_ctx_new();
    cpx_record_init(&a->rec);
    cpx_merkle_range_init(&a->range);
    if (a->hash == NULL) {
        cpx_audit_free(a);
        return NULL;
    }
    return a;
}

void cpx_audit_free(struct cpx_audit *a)
{
    if (a == NULL)
        return;
    cpx_sha256_ctx_free(a->hash);
    cpx_record_free(&a->rec);
    cpx_canon_doc_free(&a->body_doc);
    free(a->mismatch);
    free(a->pending);
    free(a->parties);
    free(a->failures);
    free(a);
}

/* ---- key table ----------------------------------------------------------------------------- */

/* The slot holding id, or NULL. */
static struct party *party_find(const struct cpx_audit *a, const char *id)
{
    if (a->cap_parties == 0)
        return NULL;
    for (size_t i = cpx_fnv1a64(id) & (a->cap_parties - 1);; i = (i + 1) & (a->cap_parties - 1)) {
        struct party *p = &a->parties[i];
        if (p->id[0] == '\0')
            return NULL;
        if (strcmp(p->id, id) == 0)
            return p;
    }
}

/* Doubles the table (or creates it). Returns false on no memory. */
static bool party_grow(struct cpx_audit *a)
{
    size_t cap = a->cap_parties ? a->cap_parties * 2 : 64;
    struct party *slots = calloc(cap, sizeof *slots);
    if (slots == NULL)
        return false;
    for (size_t i = 0; i < a->cap_parties; i++) {
        const struct party *p = &a->parties[i];
        if (p->id[0] == '\0')
            continue;
        size_t j = cpx_fnv1a64(p->id) & (cap - 1);
        while (slots[j].id[0] != '\0')
            j = (j + 1) & (cap - 1);
        slots[j] = *p;
    }
    free(a->parties);
    a->parties = slots;
    a->cap_parties = cap;
    return true;
}

/* Adds a new identity (id not present). Returns the slot, or NULL on no memory. */
static struct party *party_add(struct cpx_audit *a, const char *id)
{
    if ((a->n_parties + 1) * 2 > a->cap_parties && !party_grow(a)) {
        a->nomem = true;
        return NULL;
    }
    size_t i = cpx_fnv1a64(id) & (a->cap_parties - 1);
    while (a->parties[i].id[0] != '\0')
        i = (i + 1) & (a->cap_parties - 1);
    struct party *p = &a->parties[i];
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", id);
    a->n_parties++;
    return p;
}

/* ---- the tree and checkpoints -------------------------------------------------------------- */

/* Checks a checkpoint (size == records fed) against the rebuilt tree. */
static void check_root(struct cpx_audit *a, uint64_t size, const uint8_t root[CPX_HASH_LEN])
{
    uint8_t served[CPX_HASH_LEN], claimed[CPX_HASH_LEN];
    cpx_merkle_range_root(a->hash, &a->range, served);
    bool ok = memcmp(served, root, CPX_HASH_LEN) == 0;
    if (!ok && a->forked) {
        cpx_merkle_range_root(a->hash, &a->claimed, claimed);
        if (memcmp(claimed, root, CPX_HASH_LEN) == 0) {
            /* The log committed to the claimed leaves: the records that differ were altered. */
            for (size_t i = 0; i < a->n_mismatch; i++)
                fail(a, a->mismatch[i], CPX_AUDIT_LEAF_MISMATCH,
                     "record %" PRIu64 " differs from the leaf that checkpoint %" PRIu64
                     " commits to",
                     a->mismatch[i], size);
            a->range = a->claimed;
            ok = true;
        }
    }
    if (ok) {
        a->have_verified = true;
        a->verified_size = size;
        memcpy(a->verified_root, root, CPX_HASH_LEN);
    } else {
        char want[CPX_B64_LEN(CPX_HASH_LEN) + 1], got[CPX_B64_LEN(CPX_HASH_LEN) + 1];
        cpx_b64_encode(root, CPX_HASH_LEN, want);
        cpx_b64_encode(served, CPX_HASH_LEN, got);
        fail(a, size, CPX_AUDIT_ROOT_MISMATCH,
             "checkpoint at size %" PRIu64 " has root %s, the records give %s", size, want, got);
    }
    a->forked = false;
    a->n_mismatch = 0;
}

/* Checks every queued checkpoint whose size the records have reached. */
static void check_pending(struct cpx_audit *a)
{
    while (a->pending_head < a->n_pending && a->pending[a->pending_head].size == a->range.size) {
        const struct pending_checkpoint *c = &a->pending[a->pending_head++];
        check_root(a, c->size, c->root);
    }
    if (a->pending_head == a->n_pending)
        a->pending_head = a->n_pending = 0;
}

/* Queues or checks a checkpoint whose signature and origin are good. */
static enum cpx_audit_status schedule(struct cpx_audit *a, uint64_t size,
                                      const uint8_t root[CPX_HASH_LEN])
{
    if (size < a->range.size) {
        if (a->have_verified && size == a->verified_size &&
            memcmp(root, a->verified_root, CPX_HASH_LEN) == 0)
            return CPX_AUDIT_OK;
        return CPX_AUDIT_E_ORDER;
    }
    if (size == a->range.size) {
        check_root(a, size, root);
        return CPX_AUDIT_OK;
    }
    if (a->n_pending == a->cap_pending) {
        size_t cap = a->cap_pending ? a->cap_pending * 2 : 16;
        struct pending_checkpoint *bigger = realloc(a->pending, cap * sizeof *bigger);
        if (bigger == NULL) {
            a->nomem = true;
            return CPX_AUDIT_E_NOMEM;
        }
        a->pending = bigger;
        a->cap_pending = cap;
    }
    size_t i = a->n_pending; /* keep sorted; checkpoints usually come in order */
    while (i > a->pending_head && a->pending[i - 1].size > size) {
        a->pending[i] = a->pending[i - 1];
        i--;
    }
    a->pending[i].size = size;
    memcpy(a->pending[i].root, root, CPX_HASH_LEN);
    a->n_pending++;
    return CPX_AUDIT_OK;
}

/*
 * Opens a checkpoint note and checks its signature and origin, recording failures. Returns true
 * and fills cp when it can be used.
 */
static bool open_checkpoint(struct cpx_audit *a, const char *note, size_t len,
                            struct cpx_checkpoint *cp)
{
    size_t tlen = 0;
    enum cpx_note_status st = cpx_note_open(note, len, &a->cfg.exchange, &tlen);
    if (st == CPX_NOTE_E_MALFORMED) {
        fail(a, a->range.size, CPX_AUDIT_CHECKPOINT_SIG,
             "checkpoint fed after record %" PRIu64 " is not a well-formed signed note",
             a->range.size);
        return false;
    }
    if (cpx_checkpoint_parse_text(note, tlen, cp) != NULL) {
        fail(a, a->range.size, CPX_AUDIT_CHECKPOINT_SIG,
             "note fed after record %" PRIu64 " is not a checkpoint", a->range.size);
        return false;
    }
    if (st != CPX_NOTE_OK) {
        fail(a, cp->size, CPX_AUDIT_CHECKPOINT_SIG, "checkpoint at size %" PRIu64 ": %s", cp->size,
             cpx_note_status_text(st));
        return false;
    }
    if (strcmp(cp->origin, a->cfg.origin) != 0) {
        fail(a, cp->size, CPX_AUDIT_CHECKPOINT_ORIGIN,
             "checkpoint at size %" PRIu64 " is for log \"%.60s\", not \"%.60s\"", cp->size,
             cp->origin, a->cfg.origin);
        return false;
    }
    return true;
}

enum cpx_audit_status cpx_audit_checkpoint(struct cpx_audit *a, const char *note, size_t len)
{
    struct cpx_checkpoint cp;
    a->fed = true;
    if (!open_checkpoint(a, note, len, &cp))
        return a->nomem ? CPX_AUDIT_E_NOMEM : CPX_AUDIT_OK;
    return schedule(a, cp.size, cp.root);
}

enum cpx_audit_status cpx_audit_consistency(struct cpx_audit *a, const char *note, size_t len,
                                            const struct cpx_consistency_proof *proof)
{
    struct cpx_checkpoint cp;
    a->fed = true;
    if (!open_checkpoint(a, note, len, &cp))
        return a->nomem ? CPX_AUDIT_E_NOMEM : CPX_AUDIT_OK;
    uint64_t old_size = a->have_verified ? a->verified_size : 0;
    uint8_t old_root[CPX_HASH_LEN];
    if (a->have_verified)
        memcpy(old_root, a->verified_root, CPX_HASH_LEN);
    else
        cpx_merkle_empty_root(old_root);
    if (cp.size < old_size) {
        fail(a, cp.size, CPX_AUDIT_CONSISTENCY,
             "checkpoint at size %" PRIu64 " is smaller than the verified size %" PRIu64, cp.size,
             old_size);
        return CPX_AUDIT_OK;
    }
    if (proof->first != old_size || proof->second != cp.size ||
        !cpx_merkle_verify_consistency(a->hash, old_size, cp.size, old_root, cp.root,
                                       (const uint8_t(*)[CPX_HASH_LEN])proof->hashes, proof->n)) {
        fail(a, cp.size, CPX_AUDIT_CONSISTENCY,
             "no valid consistency proof from size %" PRIu64 " to checkpoint at size %" PRIu64
             ": history was rewritten or the proof is forged",
             old_size, cp.size);
        return CPX_AUDIT_OK;
    }
    return schedule(a, cp.size, cp.root);
}

/* ---- records ------------------------------------------------------------------------------- */

/* Adds the record at position pos to the trees (served and claimed). */
static void add_leaf(struct cpx_audit *a, uint64_t pos, const void *bytes, size_t len,
                     const uint8_t *claimed)
{
    uint8_t leaf[CPX_HASH_LEN];
    cpx_merkle_leaf_hash(a->hash, bytes, len, leaf);
    bool differs = claimed != NULL && memcmp(claimed, leaf, CPX_HASH_LEN) != 0;
    if (differs && !a->forked) {
        a->claimed = a->range;
        a->forked = true;
    }
    cpx_merkle_range_append(a->hash, &a->range, leaf);
    if (a->forked)
        cpx_merkle_range_append(a->hash, &a->claimed, differs ? claimed : leaf);
    if (!differs)
        return;
    if (a->n_mismatch == a->cap_mismatch) {
        size_t cap = a->cap_mismatch ? a->cap_mismatch * 2 : 16;
        uint64_t *bigger = realloc(a->mismatch, cap * sizeof *bigger);
        if (bigger == NULL) {
            a->nomem = true;
            return;
        }
        a->mismatch = bigger;
        a->cap_mismatch = cap;
    }
    a->mismatch[a->n_mismatch++] = pos;
}

/* Checks that record time does not go back. */
static void check_ts(struct cpx_audit *a, uint64_t seq, int64_t ts)
{
    if (ts < a->last_ts)
        fail(a, seq, CPX_AUDIT_TS_ORDER,
             "record %" PRIu64 " has ts %" PRId64 ", earlier than %" PRId64 " before it", seq, ts,
             a->last_ts);
    else
        a->last_ts = ts;
}

/* Checks sequence continuity for seq. */
static void check_seq(struct cpx_audit *a, uint64_t seq)
{
    if (seq == a->next_seq) {
        a->next_seq++;
    } else if (seq > a->next_seq) {
        fail(a, a->next_seq, CPX_AUDIT_SEQ_GAP,
             "records %" PRIu64 "..%" PRIu64 " are missing: the next record has seq %" PRIu64,
             a->next_seq, seq - 1, seq);
        a->next_seq = seq + 1;
    } else {
        fail(a, seq, CPX_AUDIT_SEQ_ORDER,
             "record with seq %" PRIu64 " comes after seq %" PRIu64 " (repeated or reordered)", seq,
             a->next_seq - 1);
    }
}

/*
 * The key of an originating party for an ordinary record: the party must be registered,
 * approved and hold `role`. Copies the key into pk; returns false when there is none.
 */
static bool party_key(struct cpx_audit *a, unsigned role, uint8_t pk[CPX_ED25519_PK_LEN])
{
    const struct cpx_record *r = &a->rec;
    const struct party *p = party_find(a, r->party.id);
    if (p == NULL) {
        fail(a, r->seq, CPX_AUDIT_PARTY_UNKNOWN, "record %" PRIu64 ": party %s is not registered",
             r->seq, r->party.id);
        return false;
    }
    if (p->status != STATUS_ACTIVE)
        fail(a, r->seq, CPX_AUDIT_PARTY_STATUS, "record %" PRIu64 ": party %s is %s, not approved",
             r->seq, p->id, status_names[p->status]);
    else if (role != 0 && !(p->roles & role))
        fail(a, r->seq, CPX_AUDIT_PARTY_STATUS,
             "record %" PRIu64 ": party %s lacks the role kind %s needs", r->seq, p->id,
             r->kind_name);
    memcpy(pk, p->pk, CPX_ED25519_PK_LEN);
    return true;
}

/* Checks that an identity-family request body is part of the payload. */
static void check_body(struct cpx_audit *a, const char *must_have)
{
    const struct cpx_record *r = &a->rec;
    bool ok = cpx_record_body_in_payload(r, &a->body_doc);
    if (ok && must_have != NULL)
        ok = cpx_canon_get(&a->body_doc, cpx_canon_root(&a->body_doc), must_have) != NULL;
    if (!ok)
        fail(a, r->seq, CPX_AUDIT_BODY_MISMATCH,
             "record %" PRIu64 ": the signed request body is not part of the %s payload%s%s",
             r->seq, r->kind_name, must_have ? " or lacks " : "", must_have ? must_have : "");
}

/* identity: register (pending). Sets the signing key (the registered key). */
static bool on_identity(struct cpx_audit *a, uint8_t pk[CPX_ED25519_PK_LEN])
{
    const struct cpx_record *r = &a->rec;
    struct cpx_identity_payload p;
    const char *why = cpx_identity_payload_parse(r, &p);
    if (why != NULL) {
        fail(a, r->seq, CPX_AUDIT_PAYLOAD, "record %" PRIu64 ": %s", r->seq, why);
        return false;
    }
    if (r->has_party && strcmp(r->party.id, p.id) != 0)
        fail(a, r->seq, CPX_AUDIT_IDENTITY,
             "record %" PRIu64 ": registration of %s is signed as %s", r->seq, p.id, r->party.id);
    if (party_find(a, p.id) != NULL) {
        fail(a, r->seq, CPX_AUDIT_IDENTITY, "record %" PRIu64 ": %s is already registered", r->seq,
             p.id);
    } else {
        struct party *slot = party_add(a, p.id);
        if (slot != NULL) {
            memcpy(slot->pk, p.public_key, CPX_ED25519_PK_LEN);
            slot->roles = p.roles;
            slot->status = STATUS_PENDING;
        }
    }
    if (!r->has_party)
        return false;
    check_body(a, NULL);
    memcpy(pk, p.public_key, CPX_ED25519_PK_LEN);
    return true;
}

/* approval / rejection: decide a pending identity. Sets the signing key (the operator's). */
static bool on_decision(struct cpx_audit *a, uint8_t pk[CPX_ED25519_PK_LEN])
{
    const struct cpx_record *r = &a->rec;
    struct cpx_decision_payload p;
    const char *why = cpx_decision_payload_parse(r, &p);
    if (why != NULL) {
        fail(a, r->seq, CPX_AUDIT_PAYLOAD, "record %" PRIu64 ": %s", r->seq, why);
        return false;
    }
    bool have_key = false;
    if (r->has_party) {
        have_key = party_key(a, CPX_ROLE_OPERATOR, pk);
        check_body(a, NULL);
    }
    struct party *subject = party_find(a, p.id);
    if (subject == NULL)
        fail(a, r->seq, CPX_AUDIT_IDENTITY, "record %" PRIu64 ": %s of unknown identity %s", r->seq,
             r->kind_name, p.id);
    else if (subject->status != STATUS_PENDING)
        fail(a, r->seq, CPX_AUDIT_IDENTITY, "record %" PRIu64 ": %s of %s, which is already %s",
             r->seq, r->kind_name, p.id, status_names[subject->status]);
    else
        subject->status = r->kind == CPX_KIND_APPROVAL ? STATUS_ACTIVE : STATUS_REJECTED;
    return have_key;
}

/* key_rotation: replace the key in force. Sets the signing key (the old key). */
static bool on_key_rotation(struct cpx_audit *a, uint8_t pk[CPX_ED25519_PK_LEN])
{
    const struct cpx_record *r = &a->rec;
    struct cpx_key_rotation_payload p;
    const char *why = cpx_key_rotation_payload_parse(r, &p);
    if (why != NULL) {
        fail(a, r->seq, CPX_AUDIT_PAYLOAD, "record %" PRIu64 ": %s", r->seq, why);
        return false;
    }
    if (strcmp(r->party.id, p.id) != 0)
        fail(a, r->seq, CPX_AUDIT_IDENTITY,
             "record %" PRIu64 ": key rotation of %s is signed as %s", r->seq, p.id, r->party.id);
    struct party *subject = party_find(a, p.id);
    if (subject == NULL) {
        fail(a, r->seq, CPX_AUDIT_PARTY_UNKNOWN,
             "record %" PRIu64 ": key rotation of unregistered %s", r->seq, p.id);
        return false;
    }
    if (subject->status != STATUS_ACTIVE)
        fail(a, r->seq, CPX_AUDIT_PARTY_STATUS,
             "record %" PRIu64 ": key rotation of %s, which is %s", r->seq, p.id,
             status_names[subject->status]);
    if (memcmp(subject->pk, p.old_public_key, CPX_ED25519_PK_LEN) != 0)
        fail(a, r->seq, CPX_AUDIT_IDENTITY,
             "record %" PRIu64 ": old_public_key of %s is not the key in force", r->seq, p.id);
    check_body(a, "new_public_key");
    memcpy(pk, subject->pk, CPX_ED25519_PK_LEN);
    memcpy(subject->pk, p.new_public_key, CPX_ED25519_PK_LEN);
    return true;
}

/*
 * Checks a decoded record's kind, party and identity semantics. Returns true and sets pk when
 * the record carries a party signature to verify with pk.
 */
static bool check_record(struct cpx_audit *a, uint8_t pk[CPX_ED25519_PK_LEN])
{
    const struct cpx_record *r = &a->rec;
    if (r->kind == CPX_KIND_UNKNOWN) {
        fail(a, r->seq, CPX_AUDIT_UNKNOWN_KIND, "record %" PRIu64 ": unknown kind \"%s\"", r->seq,
             r->kind_name);
        return false;
    }
    unsigned rule = kind_rules[r->kind].party;
    if (rule == PARTY_REQUIRED && !r->has_party) {
        fail(a, r->seq, CPX_AUDIT_PARTY_MISSING,
             "record %" PRIu64 ": kind %s needs the party's signed request", r->seq, r->kind_name);
        return false;
    }
    if (rule == PARTY_NONE && r->has_party) {
        fail(a, r->seq, CPX_AUDIT_PARTY_UNEXPECTED,
             "record %" PRIu64 ": kind %s is the exchange's alone and carries no party", r->seq,
             r->kind_name);
        return false;
    }
    switch (r->kind) {
    case CPX_KIND_IDENTITY: return on_identity(a, pk);
    case CPX_KIND_APPROVAL:
    case CPX_KIND_REJECTION: return on_decision(a, pk);
    case CPX_KIND_KEY_ROTATION: return on_key_rotation(a, pk);
    default: return r->has_party && party_key(a, kind_rules[r->kind].role, pk);
    }
}

enum cpx_audit_status cpx_audit_record(struct cpx_audit *a, const void *bytes, size_t len,
                                       const uint8_t claimed_leaf[CPX_HASH_LEN],
                                       struct cpx_audit_sigjob *job)
{
    uint64_t pos = a->range.size;
    a->fed = true;
    add_leaf(a, pos, bytes, len, claimed_leaf);
    uint8_t pk[CPX_ED25519_PK_LEN];
    bool verify = false;
    uint64_t seq = 0;
    enum cpx_record_status decoded = cpx_record_decode(&a->rec, bytes, len);
    a->rec_valid = decoded == CPX_RECORD_OK;
    switch (decoded) {
    case CPX_RECORD_OK:
        seq = a->rec.seq;
        check_seq(a, seq);
        check_ts(a, seq, a->rec.ts);
        verify = check_record(a, pk);
        break;
    case CPX_RECORD_E_CANON:
        fail(a, a->next_seq, CPX_AUDIT_CANONICAL, "record at position %" PRIu64 ": %s", pos,
             a->rec.error);
        a->next_seq++;
        break;
    case CPX_RECORD_E_ENVELOPE:
        fail(a, a->next_seq, CPX_AUDIT_ENVELOPE, "record at position %" PRIu64 ": %s", pos,
             a->rec.error);
        a->next_seq++;
        break;
    case CPX_RECORD_E_NOMEM: a->nomem = true; break;
    }
    check_pending(a);
    if (a->nomem)
        return CPX_AUDIT_E_NOMEM;
    if (!verify || a->cfg.sigs == CPX_AUDIT_SIGS_SKIP)
        return CPX_AUDIT_OK;
    if (a->cfg.sigs == CPX_AUDIT_SIGS_INLINE || job == NULL) {
        if (!cpx_record_party_verify(&a->rec, pk))
            fail(a, seq, CPX_AUDIT_PARTY_SIG,
                 "record %" PRIu64 ": party %s's signature does not verify with its key", seq,
                 a->rec.party.id);
        return a->nomem ? CPX_AUDIT_E_NOMEM : CPX_AUDIT_OK;
    }
    job->seq = seq;
    memcpy(job->pk, pk, CPX_ED25519_PK_LEN);
    return CPX_AUDIT_DEFERRED;
}

const struct cpx_record *cpx_audit_decoded(const struct cpx_audit *a)
{
    return a->rec_valid ? &a->rec : NULL;
}

bool cpx_audit_sigjob_verify(struct cpx_record *scratch, const void *bytes, size_t len,
                             const struct cpx_audit_sigjob *job)
{
    return cpx_record_decode(scratch, bytes, len) == CPX_RECORD_OK && scratch->seq == job->seq &&
           cpx_record_party_verify(scratch, job->pk);
}

void cpx_audit_sigjob_failed(struct cpx_audit *a, const struct cpx_audit_sigjob *job)
{
    fail(a, job->seq, CPX_AUDIT_PARTY_SIG,
         "record %" PRIu64 ": the party's signature does not verify with its key", job->seq);
}

/* ---- results ------------------------------------------------------------------------------- */

static int failure_order(const void *x, const void *y)
{
    const struct cpx_audit_failure *a = x, *b = y;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return (int)a->reason - (int)b->reason;
}

void cpx_audit_finish(struct cpx_audit *a)
{
    for (size_t i = a->pending_head; i < a->n_pending; i++)
        fail(a, a->pending[i].size, CPX_AUDIT_CHECKPOINT_BEYOND,
             "checkpoint at size %" PRIu64 " but the log served only %" PRIu64 " records",
             a->pending[i].size, a->range.size);
    a->pending_head = a->n_pending = 0;
    if (a->n_failures > 1)
        qsort(a->failures, a->n_failures, sizeof *a->failures, failure_order);
}

const struct cpx_audit_failure *cpx_audit_failures(const struct cpx_audit *a, size_t *n)
{
    *n = a->n_failures;
    return a->failures;
}

uint64_t cpx_audit_failure_total(const struct cpx_audit *a)
{
    return a->failure_total;
}

uint64_t cpx_audit_records(const struct cpx_audit *a)
{
    return a->range.size;
}

bool cpx_audit_verified(const struct cpx_audit *a, uint64_t *size, uint8_t root[CPX_HASH_LEN])
{
    if (!a->have_verified)
        return false;
    *size = a->verified_size;
    memcpy(root, a->verified_root, CPX_HASH_LEN);
    return true;
}

/* ---- state --------------------------------------------------------------------------------- */

/*
 * {"checked":N,"last_ts":T,"next_seq":S,"parties":[{"id","public_key","roles","status"}...
 *  sorted by id],
 *  "range":["<b64 peak>"... lowest level first],"v":1,"verified_root":"<b64>"|null,
 *  "verified_size":M}
 */
/* Orders key table entries by id. */
static int party_order(const void *x, const void *y)
{
    const struct party *const *a = x, *const *b = y;
    return strcmp((*a)->id, (*b)->id);
}

enum cpx_canon_error cpx_audit_state_write(const struct cpx_audit *a, struct cpx_canon_writer *w)
{
    cpx_canon_begin_object(w);
    cpx_canon_kv_int(w, "checked", (int64_t)a->range.size);
    cpx_canon_kv_int(w, "last_ts", a->last_ts);
    cpx_canon_kv_int(w, "next_seq", (int64_t)a->next_seq);
    cpx_canon_kv_string(w, "origin", a->cfg.origin);
    cpx_canon_key(w, "parties", 7);
    cpx_canon_begin_array(w);
    /* Sorted by id, so that the same key table always gives the same bytes. */
    const struct party **sorted = malloc((a->n_parties ? a->n_parties : 1) * sizeof *sorted);
    if (sorted == NULL) {
        if (w->err == CPX_CANON_OK)
            w->err = CPX_CANON_E_NOMEM;
        return w->err;
    }
    size_t n = 0;
    for (size_t i = 0; i < a->cap_parties; i++)
        if (a->parties[i].id[0] != '\0')
            sorted[n++] = &a->parties[i];
    qsort(sorted, n, sizeof *sorted, party_order);
    for (size_t i = 0; i < n; i++) {
        const struct party *p = sorted[i];
        cpx_canon_begin_object(w);
        cpx_canon_kv_string(w, "id", p->id);
        cpx_canon_key(w, "public_key", 10);
        cpx_canon_base64(w, p->pk, sizeof p->pk);
        cpx_canon_key(w, "roles", 5);
        cpx_roles_write(w, p->roles);
        cpx_canon_kv_string(w, "status", status_names[p->status]);
        cpx_canon_end_object(w);
    }
    free(sorted);
    cpx_canon_end_array(w);
    cpx_canon_key(w, "range", 5);
    cpx_canon_begin_array(w);
    for (unsigned l = 0; l < CPX_MERKLE_MAX_LEVELS; l++)
        if ((a->range.size >> l) & 1)
            cpx_canon_base64(w, a->range.peaks[l], CPX_HASH_LEN);
    cpx_canon_end_array(w);
    cpx_canon_kv_int(w, "v", 1);
    cpx_canon_key(w, "verified_root", 13);
    if (a->have_verified)
        cpx_canon_base64(w, a->verified_root, CPX_HASH_LEN);
    else
        cpx_canon_null(w);
    cpx_canon_kv_int(w, "verified_size", a->have_verified ? (int64_t)a->verified_size : 0);
    return cpx_canon_end_object(w);
}

/* Reads a base64 hash from a string node. */
static bool node_hash(const struct cpx_canon_doc *d, const struct cpx_canon_node *n,
                      uint8_t out[CPX_HASH_LEN])
{
    size_t len;
    if (n == NULL || n->type != CPX_CANON_STRING)
        return false;
    const uint8_t *t = cpx_canon_bytes(d, n, &len);
    return len == CPX_B64_LEN(CPX_HASH_LEN) + 2 &&
           cpx_b64_decode((const char *)t + 1, len - 2, out, CPX_HASH_LEN) == CPX_HASH_LEN;
}

/* Reads a non-negative integer member. */
static bool state_uint(const struct cpx_canon_doc *d, const struct cpx_canon_node *obj,
                       const char *key, uint64_t *out)
{
    const struct cpx_canon_node *v = cpx_canon_get(d, obj, key);
    if (v == NULL || v->type != CPX_CANON_INT || v->ival < 0)
        return false;
    *out = (uint64_t)v->ival;
    return true;
}

/* Loads one party object. Returns NULL or the reason. */
static const char *load_party(struct cpx_audit *a, const struct cpx_canon_doc *d,
                              const struct cpx_canon_node *obj)
{
    char id[CPX_ID_MAX], status[16];
    const struct cpx_canon_node *pk = cpx_canon_get(d, obj, "public_key");
    const struct cpx_canon_node *roles = cpx_canon_get(d, obj, "roles");
    if (obj->type != CPX_CANON_OBJECT || obj->count != 4 ||
        cpx_canon_string_value(d, cpx_canon_get(d, obj, "id"), id, sizeof id) < 0 ||
        cpx_canon_string_value(d, cpx_canon_get(d, obj, "status"), status, sizeof status) < 0 ||
        roles == NULL || roles->type != CPX_CANON_ARRAY || pk == NULL)
        return "state party must have id, public_key, roles and status";
    if (party_find(a, id) != NULL)
        return "state lists a party twice";
    struct party *p = party_add(a, id);
    if (p == NULL)
        return "out of memory";
    if (!node_hash(d, pk, p->pk)) /* a public key is 32 bytes too */
        return "state party public_key is not base64 of 32 bytes";
    for (unsigned s = 0; s < 3; s++)
        if (strcmp(status, status_names[s]) == 0)
            p->status = (unsigned char)s;
    if (strcmp(status, status_names[p->status]) != 0)
        return "state party status must be pending, active or rejected";
    static const char *const names[] = { "buyer", "operator", "provider", "regulator" };
    for (const struct cpx_canon_node *e = cpx_canon_first(d, roles); e != NULL;
         e = cpx_canon_next(d, e)) {
        unsigned bit = 0;
        for (unsigned i = 0; i < 4; i++)
            if (cpx_canon_string_eq(d, e, names[i]))
                bit = 1u << i;
        if (bit == 0)
            return "state party has an unknown role";
        p->roles |= bit;
    }
    return NULL;
}

const char *cpx_audit_state_load(struct cpx_audit *a, const void *json, size_t len)
{
    if (a->fed || a->n_parties != 0)
        return "a state can only be loaded into a fresh auditor";
    struct cpx_canon_doc doc = CPX_CANON_DOC_INIT;
    const char *err = NULL;
    if (cpx_canon_parse(&doc, json, len, NULL) != CPX_CANON_OK) {
        err = "state is not canonical JSON";
        goto cleanup;
    }
    const struct cpx_canon_node *root = cpx_canon_root(&doc);
    uint64_t checked, next_seq, vsize, v, last_ts;
    const struct cpx_canon_node *parties = cpx_canon_get(&doc, root, "parties");
    const struct cpx_canon_node *range = cpx_canon_get(&doc, root, "range");
    const struct cpx_canon_node *vroot = cpx_canon_get(&doc, root, "verified_root");
    const struct cpx_canon_node *origin = cpx_canon_get(&doc, root, "origin");
    if (root->type != CPX_CANON_OBJECT || root->count != 9 || !state_uint(&doc, root, "v", &v) ||
        v != 1 || !state_uint(&doc, root, "checked", &checked) ||
        !state_uint(&doc, root, "next_seq", &next_seq) ||
        !state_uint(&doc, root, "last_ts", &last_ts) ||
        !state_uint(&doc, root, "verified_size", &vsize) || parties == NULL ||
        parties->type != CPX_CANON_ARRAY || range == NULL || range->type != CPX_CANON_ARRAY ||
        vroot == NULL || origin == NULL || origin->type != CPX_CANON_STRING) {
        err = "state must have checked, last_ts, next_seq, origin, parties, range, v, "
              "verified_root and verified_size";
        goto cleanup;
    }
    if (!cpx_canon_string_eq(&doc, origin, a->cfg.origin)) {
        err = "state was saved by an audit of another ledger (its origin differs)";
        goto cleanup;
    }
    if (range->count != (uint32_t)__builtin_popcountll(checked)) {
        err = "state range does not fit its size";
        goto cleanup;
    }
    a->range.size = checked;
    const struct cpx_canon_node *e = cpx_canon_first(&doc, range);
    for (unsigned l = 0; l < CPX_MERKLE_MAX_LEVELS; l++) {
        if (!((checked >> l) & 1))
            continue;
        if (!node_hash(&doc, e, a->range.peaks[l])) {
            err = "state range hash is not base64 of 32 bytes";
            goto cleanup;
        }
        e = cpx_canon_next(&doc, e);
    }
    if (vroot->type == CPX_CANON_NULL) {
        a->have_verified = false;
    } else if (node_hash(&doc, vroot, a->verified_root) && vsize <= checked) {
        a->have_verified = true;
        a->verified_size = vsize;
    } else {
        err = "state verified_root is not a hash or verified_size exceeds checked";
        goto cleanup;
    }
    a->next_seq = next_seq;
    a->last_ts = (int64_t)last_ts;
    for (e = cpx_canon_first(&doc, parties); e != NULL && err == NULL; e = cpx_canon_next(&doc, e))
        err = load_party(a, &doc, e);
cleanup:
    cpx_canon_doc_free(&doc);
    return err;
}
