/*
 * Checkpoints: the exchange's signed statement "the ledger has N records and this root".
 *
 * Two C2SP formats, so that existing transparency-log tools (Go's sumdb/note, Tessera, witnesses)
 * can read what the exchange publishes:
 *
 * Signed note (c2sp.org/signed-note). A note is UTF-8 text without control characters other than
 * newline, ending in a newline; then one blank line; then one or more signature lines
 *
 *     "\u2014 " <key name> " " base64(key ID (4 bytes, big-endian) || signature) "\n"
 *
 * (\u2014 is the em dash, bytes E2 80 94). The text is everything before the *last* blank line,
 * including its final newline; that is what is signed. Key names are non-empty and contain no
 * Unicode space and no '+'. For Ed25519 (signature type 0x01):
 *
 *     key ID = SHA-256(key name || "\n" || 0x01 || 32-byte public key)[0:4]
 *
 * A verifier knows (name, key ID, public key). It ignores signatures whose (name, key ID) it does
 * not know, must check those it knows, and refuses the note when one of them fails or when none
 * is present. Verifier keys are written as in Go's sumdb/note:
 *
 *     <key name> "+" <key ID as 8 hex digits> "+" base64(0x01 || 32-byte public key)
 *
 * e.g. "cpx.example/ledger+4f2c9a01+AQ...": `cpx-audit --exchange-key FILE` reads that string.
 *
 * Checkpoint (c2sp.org/tlog-checkpoint). The note text of a checkpoint is
 *
 *     <origin> "\n" <tree size, decimal, no leading zeros> "\n" <base64 root hash> "\n"
 *     [<extension line> "\n"]...
 *
 * The origin names the log (CPX uses the same string as the key name); the root is the RFC 9162
 * root of the first `size` records (see merkle.h). Extension lines are non-empty and opaque;
 * CPX writes none but keeps what it reads.
 *
 * Everything here is pure: signing takes a key pair, opening takes bytes from anywhere (the
 * parsers never read past len, bound every size, and return a status, never abort).
 */
#ifndef CPX_LEDGER_CHECKPOINT_H
#define CPX_LEDGER_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger/crypto.h"

#define CPX_NOTE_NAME_MAX      256         /* longest key name, with its NUL */
#define CPX_NOTE_MAX           (64 * 1024) /* longest note accepted, signatures included */
#define CPX_NOTE_MAX_SIGS      100  /* most signature lines accepted (the spec asks for >= 16) */
#define CPX_ORIGIN_MAX         256  /* longest origin line, with its NUL */
#define CPX_CHECKPOINT_EXT_MAX 1024 /* most bytes of extension lines kept */
/* Longest verifier key string, with its NUL. */
#define CPX_VERIFIER_KEY_MAX (CPX_NOTE_NAME_MAX + 1 + 8 + 1 + 44 + 1)
/* Length of one Ed25519 signature line for a name of n bytes. */
#define CPX_NOTE_SIGLINE_LEN(n) (4 + (n) + 1 + 92 + 1)

/* A key that notes are checked against. */
struct cpx_note_verifier {
    char name[CPX_NOTE_NAME_MAX];   /* key name, NUL-terminated */
    uint32_t key_id;                /* the key ID as defined above */
    uint8_t pk[CPX_ED25519_PK_LEN]; /* Ed25519 public key */
};

/* The outcome of opening a note or a checkpoint; cpx_note_status_text names each. */
enum cpx_note_status {
    CPX_NOTE_OK = 0,
    CPX_NOTE_E_MALFORMED, /* not a signed note: no blank line, bad signature line, control
                             characters, invalid UTF-8, too long, too many signatures */
    CPX_NOTE_E_BAD_SIG,   /* a signature by the verifier's key does not verify */
    CPX_NOTE_E_UNSIGNED,  /* no signature by the verifier's key (other keys are ignored) */
    CPX_NOTE_E_BODY,      /* signed, but the text is not a checkpoint */
};

/* A sentence naming st. Never NULL; static. */
const char *cpx_note_status_text(enum cpx_note_status st);

/* The Ed25519 key ID of (name, pk). */
uint32_t cpx_note_key_id(const char *name, const uint8_t pk[CPX_ED25519_PK_LEN]);

/* True when name[0..len) is a valid key name: UTF-8, non-empty, no space of any kind, no '+'. */
bool cpx_note_name_valid(const char *name, size_t len);

/* Fills v for (name, pk). Returns false when the name is invalid or too long. */
bool cpx_note_verifier_init(struct cpx_note_verifier *v, const char *name,
                            const uint8_t pk[CPX_ED25519_PK_LEN]);

/*
 * Parses a verifier key string s[0..len) (untrusted; a trailing newline is not accepted).
 * Returns NULL and fills v, or returns a sentence saying what is wrong.
 */
const char *cpx_note_verifier_parse(const char *s, size_t len, struct cpx_note_verifier *v);

/* Writes v's key string and a NUL into out; returns its length. */
size_t cpx_note_verifier_format(const struct cpx_note_verifier *v, char out[CPX_VERIFIER_KEY_MAX]);

/*
 * Writes the signed note text || "\n" || signature line by (name, kp) into out (capacity cap, a
 * NUL is added). The text must be a valid note text (UTF-8, no control characters but newlines,
 * ending in a newline). Returns the note's length, or -1 when the text or name is invalid or the
 * note does not fit.
 */
long cpx_note_sign(const char *text, size_t len, const char *name, const struct cpx_keypair *kp,
                   char *out, size_t cap);

/*
 * Opens note[0..len) (untrusted) with verifier v. Whenever the note is well-formed (the status is
 * CPX_NOTE_OK, CPX_NOTE_E_BAD_SIG or CPX_NOTE_E_UNSIGNED), *text_len is the length of its text,
 * which starts at note[0] -- signed by v only when the status is CPX_NOTE_OK.
 */
enum cpx_note_status cpx_note_open(const char *note, size_t len, const struct cpx_note_verifier *v,
                                   size_t *text_len);

/* A tree head as a checkpoint states it. */
struct cpx_checkpoint {
    char origin[CPX_ORIGIN_MAX];      /* the log's name, NUL-terminated */
    uint64_t size;                    /* tree size: records 0 .. size-1 */
    uint8_t root[CPX_SHA256_LEN];     /* RFC 9162 root at that size */
    size_t ext_len;                   /* bytes used in ext */
    char ext[CPX_CHECKPOINT_EXT_MAX]; /* extension lines, each ending in "\n" (not NUL-ended) */
};

/* Writes the checkpoint's note text into out (capacity cap, NUL added); returns its length or -1.
 */
long cpx_checkpoint_text(const struct cpx_checkpoint *cp, char *out, size_t cap);

/*
 * Parses a checkpoint's note text text[0..len) (untrusted). Returns NULL and fills cp, or a
 * sentence saying what is wrong.
 */
const char *cpx_checkpoint_parse_text(const char *text, size_t len, struct cpx_checkpoint *cp);

/*
 * Writes the signed checkpoint (text, blank line, one signature line by (name, kp)) into out;
 * returns its length or -1 (invalid origin or name, or out too small).
 */
long cpx_checkpoint_sign(const struct cpx_checkpoint *cp, const char *name,
                         const struct cpx_keypair *kp, char *out, size_t cap);

/* Opens a signed checkpoint: cpx_note_open, then cpx_checkpoint_parse_text. */
enum cpx_note_status cpx_checkpoint_open(const char *note, size_t len,
                                         const struct cpx_note_verifier *v,
                                         struct cpx_checkpoint *cp);

#endif
