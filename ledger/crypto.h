/*
 * The two primitives the ledger and the request signatures stand on:
 *   SHA-256 through OpenSSL (it uses the CPU's SHA extensions; libsodium's is several times slower),
 *   Ed25519 through libsodium (about twice OpenSSL's speed on the development machine).
 *
 * cpx_crypto_init() must be called once, before any other function here, by each program's main()
 * (it initialises libsodium, which is idempotent and thread-safe). Everything else is pure: no
 * globals of ours, no I/O.
 */
#ifndef CPX_LEDGER_CRYPTO_H
#define CPX_LEDGER_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CPX_SHA256_LEN 32
#define CPX_ED25519_PK_LEN 32
#define CPX_ED25519_SK_LEN 64 /* libsodium's form: seed followed by the public key */
#define CPX_ED25519_SIG_LEN 64

/* An Ed25519 key pair. The secret half is wiped by cpx_keypair_wipe(). */
struct cpx_keypair {
    uint8_t pk[CPX_ED25519_PK_LEN]; /* public key */
    uint8_t sk[CPX_ED25519_SK_LEN]; /* secret key, libsodium layout (seed || pk) */
};

/* Initialises the crypto libraries. Returns 0, or -1 when libsodium cannot start. */
int cpx_crypto_init(void);

/* out = SHA-256(data[0..len)). */
void cpx_sha256(const void *data, size_t len, uint8_t out[CPX_SHA256_LEN]);

/* out = SHA-256(a || b): the common two-part case without copying. */
void cpx_sha256_2(const void *a, size_t alen, const void *b, size_t blen,
                  uint8_t out[CPX_SHA256_LEN]);

/* Fills kp with a fresh random key pair. */
void cpx_keypair_generate(struct cpx_keypair *kp);

/* Rebuilds a key pair from the 64-byte secret key; returns false when sk's public half is wrong. */
bool cpx_keypair_from_secret(struct cpx_keypair *kp, const uint8_t sk[CPX_ED25519_SK_LEN]);

/* Overwrites the secret key with zeros in a way the compiler cannot elide. */
void cpx_keypair_wipe(struct cpx_keypair *kp);

/* sig = Ed25519 signature of msg[0..len) by kp. */
void cpx_sign(const struct cpx_keypair *kp, const void *msg, size_t len,
              uint8_t sig[CPX_ED25519_SIG_LEN]);

/* Returns true when sig is a valid signature of msg[0..len) by pk. */
bool cpx_verify(const uint8_t pk[CPX_ED25519_PK_LEN], const void *msg, size_t len,
                const uint8_t sig[CPX_ED25519_SIG_LEN]);

#endif
