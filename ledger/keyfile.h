/*
 * Key files and identity ids.
 *
 * A key file is a small text file (mode 0600) that `cpx keygen` writes and every client reads:
 *
 *     cpx-ed25519-key v1
 *     identity idn_...            (optional: present once the key's identity is known)
 *     public <base64 of the 32-byte public key>
 *     secret <base64 of the 64-byte libsodium secret key>
 *
 * Lines end in "\n"; unknown lines are refused, so a typo is never silently ignored.
 *
 * An identity's id is derived from the public key it registered with:
 *     "idn_" + base32(SHA-256("cpx-identity-v1" || 0x00 || public key)[0..10))
 * so a client knows its id before registering and the register request can be signed with it.
 * The id names the organisation, not the key: after a key rotation the id stays and the key file
 * carries it in its identity line.
 */
#ifndef CPX_LEDGER_KEYFILE_H
#define CPX_LEDGER_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "ledger/crypto.h"
#include "ledger/reqsig.h"

#define CPX_KEYFILE_MAX 512 /* longest key file text cpx_keyfile_format writes */

/* The contents of a key file. */
struct cpx_keyfile {
    struct cpx_keypair kp;     /* the key pair */
    char identity[CPX_ID_MAX]; /* the identity this key acts for; "" when not recorded */
};

/* Writes "idn_" and the derived id of public key pk into out (CPX_ID_MAX bytes). */
void cpx_identity_id_for_key(const uint8_t pk[CPX_ED25519_PK_LEN], char out[CPX_ID_MAX]);

/* Returns true when s looks like an identity id ("idn_" then 16 base32 characters). */
bool cpx_identity_id_valid(const char *s);

/* Writes the key file text for kf into out (CPX_KEYFILE_MAX bytes); returns its length. */
size_t cpx_keyfile_format(const struct cpx_keyfile *kf, char out[CPX_KEYFILE_MAX]);

/*
 * Parses key file text (len bytes, need not be NUL-terminated). On success fills kf, defaulting
 * kf->identity to the id derived from the public key when the file has no identity line, and
 * returns NULL; otherwise returns a sentence saying what is wrong.
 */
const char *cpx_keyfile_parse(const char *text, size_t len, struct cpx_keyfile *kf);

/* Writes the base64 form of a public key into out (CPX_B64_LEN(32) + 1 = 45 bytes). */
void cpx_public_key_encode(const uint8_t pk[CPX_ED25519_PK_LEN], char out[45]);

/* Decodes a base64 public key; returns false when it is not exactly 32 bytes of canonical base64.
 */
bool cpx_public_key_decode(const char *text, size_t len, uint8_t pk[CPX_ED25519_PK_LEN]);

#endif
