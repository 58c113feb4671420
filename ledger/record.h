/*
 * Ledger records: the envelope every entry of the ledger shares, and the payloads of the
 * identity family that the auditor interprets itself.
 *
 * A record is one canonical JSON object (canon.h); its bytes are the Merkle leaf (merkle.h):
 *
 *   {"kind":"order",
 *    "party":{"body":"<base64 request body>","id":"idn_...","method":"POST",
 *             "sig":"<base64 Ed25519 signature>","target":"/v1/orders","ts":1764403200},
 *    "payload":{...},
 *    "seq":42,
 *    "ts":1764403200123,
 *    "v":1}
 *
 *   v        envelope version, 1.
 *   seq      the record's sequence number: 0 for the first record, then +1 with no gaps. It is
 *            the record's leaf index in the Merkle tree.
 *   kind     what happened, a lower-case name [a-z_]{1,31} (enum cpx_kind; new kinds may be
 *            added, and an auditor reports kinds it does not know).
 *   ts       when the exchange appended it: unix time in *milliseconds* (UTC, exchange clock).
 *   payload  the record's content: a canonical JSON object whose schema depends on the kind
 *            (docs/ledger.md). Money in it is integer micro-CNY.
 *   party    present when a party originated the record: its signed request, kept exactly as
 *            it arrived, so anyone can re-check the signature with reqsig.h and the party's key:
 *              id      the identity id from the Authorization header
 *              method  request method, target: request target (path and query as sent)
 *              ts      the Authorization header's ts: unix time in *seconds*
 *              body    the exact request body bytes, base64
 *              sig     the Authorization header's signature, base64
 *
 * The exact bytes that were hashed are what is stored and served; they are never re-serialised.
 * Decoding (cpx_record_decode) takes untrusted bytes, accepts only the canonical form with exactly
 * these members, and gives a view into them: the payload stays a span of the input (its canonical
 * bytes), the party's body is decoded from base64 into a buffer the record owns.
 *
 * Identity family. The auditor learns every party's key from the ledger itself:
 *   identity      registers an id with its first key: payload
 *                   {"id","name","public_key","reg_no","roles"}; id must be the id derived from
 *                   public_key (keyfile.h). Signed (party part) by that same key, or
 *                   exchange-originated (no party part) for the bootstrap operator.
 *   approval      an operator approves a registered identity: payload {"id"}.
 *   rejection     an operator rejects one: payload {"id","reason"}.
 *   key_rotation  the party replaces its key: payload {"id","new_public_key","old_public_key"},
 *                 signed by the old key (the key in force before this record).
 * For these kinds a party's request body must itself be a canonical JSON object whose every
 * member appears, with identical bytes, in the payload: the signature then covers what the
 * exchange recorded (above all the new key of a rotation).
 */
#ifndef CPX_LEDGER_RECORD_H
#define CPX_LEDGER_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger/canon.h"
#include "ledger/crypto.h"
#include "ledger/reqsig.h"

#define CPX_RECORD_VERSION  1
#define CPX_RECORD_MAX      (1024 * 1024) /* longest record accepted, in bytes */
#define CPX_RECORD_BODY_MAX (256 * 1024)  /* longest party request body */
#define CPX_KIND_NAME_MAX   32            /* longest kind name, with its NUL */
#define CPX_NAME_CHARS      200           /* identity name: 1..200 characters */
#define CPX_NAME_MAX        801           /* ... of UTF-8 (<= 4 bytes each), with its NUL */
#define CPX_REG_NO_MAX      65            /* registration number: 1..64 bytes, with its NUL */
#define CPX_REASON_MAX      501           /* rejection reason: 1..500 bytes, with its NUL */

/* The kinds of record. Names are in cpx_kind_name; CPX_KIND_UNKNOWN is any other name. */
enum cpx_kind {
    CPX_KIND_UNKNOWN = 0,
    CPX_KIND_IDENTITY,     /* a party registers an identity and its first key */
    CPX_KIND_APPROVAL,     /* an operator approves an identity */
    CPX_KIND_REJECTION,    /* an operator rejects an identity */
    CPX_KIND_KEY_ROTATION, /* a party replaces its key, signed by the old one */
    CPX_KIND_LISTING,      /* a provider lists capacity (an ask) */
    CPX_KIND_ORDER,        /* a buyer places an order (a bid) */
    CPX_KIND_CANCEL,       /* an order or listing is cancelled (by its owner or by expiry) */
    CPX_KIND_AGREEMENT,    /* the exchange matched a bid and an ask */
    CPX_KIND_DISPATCH,     /* the exchange delivered an agreement to the provider */
    CPX_KIND_ACCEPTANCE,   /* the provider accepted an agreement */
    CPX_KIND_USAGE,        /* the provider reported usage */
    CPX_KIND_BILL,         /* the exchange billed usage */
    CPX_KIND_COMMISSION,   /* the exchange's commission on a bill */
    CPX_KIND_SETTLEMENT,   /* balances moved */
    CPX_KIND_DISPUTE,      /* a party disputes a bill or an agreement */
    CPX_KIND_RESOLUTION,   /* an operator resolves a dispute */
    CPX_KIND_FAILURE,      /* an agreement could not be delivered or performed */
    CPX_KIND_DEPOSIT,      /* an operator credited money from outside CPX to an account */
    CPX_KIND_FEE_SCHEDULE, /* the fee schedule in force from here on */
    CPX_KIND_COMPLETION,   /* an agreement ended; unused escrow returned to the buyer */
    CPX_KIND_COUNT
};

/* The name of kind k ("order"), or NULL for CPX_KIND_UNKNOWN or out-of-range values. */
const char *cpx_kind_name(enum cpx_kind k);

/* The kind named name[0..len), or CPX_KIND_UNKNOWN. */
enum cpx_kind cpx_kind_from_name(const char *name, size_t len);

/* Roles, as a bit set; their names are "buyer", "operator", "provider", "regulator". */
enum cpx_role {
    CPX_ROLE_BUYER = 1,
    CPX_ROLE_OPERATOR = 2,
    CPX_ROLE_PROVIDER = 4,
    CPX_ROLE_REGULATOR = 8,
};

/* The signed request of the party that originated a record. */
struct cpx_party {
    char id[CPX_ID_MAX];                    /* identity id, NUL-terminated */
    char method[CPX_REQSIG_METHOD_MAX + 1]; /* request method, NUL-terminated */
    char target[CPX_REQSIG_TARGET_MAX + 1]; /* request target, NUL-terminated */
    int64_t ts;                             /* signing time, unix seconds */
    const uint8_t *body;                    /* request body (not NUL-terminated) */
    size_t body_len;                        /* its length */
    uint8_t sig[CPX_ED25519_SIG_LEN];       /* the request signature */
};

/*
 * A record. To encode, fill seq, kind (or kind_name for a kind without an enum value), ts,
 * payload and, when has_party, party. cpx_record_decode fills all of it from bytes; then payload
 * points into the decoded bytes and party.body into body_buf.
 */
struct cpx_record {
    uint64_t seq;                      /* sequence number = leaf index */
    enum cpx_kind kind;                /* the kind, CPX_KIND_UNKNOWN when not one of ours */
    char kind_name[CPX_KIND_NAME_MAX]; /* the kind's name as written */
    int64_t ts;                        /* append time, unix milliseconds */
    const uint8_t *payload;            /* canonical JSON object */
    size_t payload_len;                /* its length */
    bool has_party;                    /* party is meaningful */
    struct cpx_party party;            /* the originating party's signed request */

    /* Owned by the decoder; reused from one decode to the next. */
    struct cpx_canon_doc doc;                  /* the parsed record */
    const struct cpx_canon_node *payload_node; /* the payload object in doc */
    uint8_t *body_buf;                         /* party.body's storage */
    size_t body_cap;                           /* bytes allocated at body_buf */
    const char *error;                         /* after a failed decode: why (static) */
};

/* Why bytes are not a record. */
enum cpx_record_status {
    CPX_RECORD_OK = 0,
    CPX_RECORD_E_CANON,    /* not canonical JSON (see canon.h) */
    CPX_RECORD_E_ENVELOPE, /* canonical, but not a record envelope (record->error says why) */
    CPX_RECORD_E_NOMEM,    /* allocation failed */
};

/* Makes r empty. Allocates nothing. */
void cpx_record_init(struct cpx_record *r);

/* Frees what r owns. */
void cpx_record_free(struct cpx_record *r);

/*
 * Decodes bytes[0..len) (untrusted) into r. The bytes must stay unchanged while r is used.
 * Returns CPX_RECORD_OK, or a status with r->error naming the problem.
 */
enum cpx_record_status cpx_record_decode(struct cpx_record *r, const void *bytes, size_t len);

/*
 * Writes r's canonical encoding into w (which must be empty or reset). The payload must be a
 * canonical JSON object, the party fields valid (id an identity id, method and target signable).
 * Returns w's error state; on CPX_CANON_OK cpx_canon_writer_finish gives the bytes.
 */
enum cpx_canon_error cpx_record_encode(struct cpx_canon_writer *w, const struct cpx_record *r);

/* True when r has a party part whose signature verifies with pk (cpx_reqsig_verify). */
bool cpx_record_party_verify(const struct cpx_record *r, const uint8_t pk[CPX_ED25519_PK_LEN]);

/*
 * True when the party's body is a canonical JSON object each of whose members appears with
 * identical bytes in the payload (the identity-family rule). scratch is a document to parse the
 * body into (reused; the caller frees it).
 */
bool cpx_record_body_in_payload(const struct cpx_record *r, struct cpx_canon_doc *scratch);

/* ---- identity-family payloads -------------------------------------------------------------- */

/* identity: {"id","name","public_key","reg_no","roles"} */
struct cpx_identity_payload {
    char id[CPX_ID_MAX];                    /* "idn_..." derived from public_key */
    char name[CPX_NAME_MAX];                /* organisation name, 1..200 characters */
    char reg_no[CPX_REG_NO_MAX];            /* registration number, 1..64 printable ASCII */
    unsigned roles;                         /* enum cpx_role bits, at least one */
    uint8_t public_key[CPX_ED25519_PK_LEN]; /* the identity's first key */
};

/* approval: {"id"}; rejection: {"id","reason"} */
struct cpx_decision_payload {
    char id[CPX_ID_MAX];         /* the identity decided on */
    char reason[CPX_REASON_MAX]; /* rejection: 1..500 bytes of UTF-8; approval: "" */
};

/* key_rotation: {"id","new_public_key","old_public_key"} */
struct cpx_key_rotation_payload {
    char id[CPX_ID_MAX];                        /* the identity whose key changes */
    uint8_t new_public_key[CPX_ED25519_PK_LEN]; /* the key in force from the next record on */
    uint8_t old_public_key[CPX_ED25519_PK_LEN]; /* the key in force until this record */
};

/*
 * Parse the payload of a decoded record of the matching kind (untrusted): exactly the listed
 * members, each valid. Return NULL and fill out, or a sentence saying what is wrong.
 */
const char *cpx_identity_payload_parse(const struct cpx_record *r,
                                       struct cpx_identity_payload *out);
const char *cpx_decision_payload_parse(const struct cpx_record *r,
                                       struct cpx_decision_payload *out);
const char *cpx_key_rotation_payload_parse(const struct cpx_record *r,
                                           struct cpx_key_rotation_payload *out);

/* Write the payloads as canonical JSON objects into w. Return w's error state. */
enum cpx_canon_error cpx_identity_payload_write(struct cpx_canon_writer *w,
                                                const struct cpx_identity_payload *p);
enum cpx_canon_error cpx_decision_payload_write(struct cpx_canon_writer *w, enum cpx_kind kind,
                                                const struct cpx_decision_payload *p);
enum cpx_canon_error cpx_key_rotation_payload_write(struct cpx_canon_writer *w,
                                                    const struct cpx_key_rotation_payload *p);

/* Writes the roles array (["buyer","provider"]: canonical order) for a role bit set into w. */
enum cpx_canon_error cpx_roles_write(struct cpx_canon_writer *w, unsigned roles);

#endif
