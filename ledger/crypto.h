/*
 * The two primitives the ledger and the request signatures stand on:
 *   SHA-256 through OpenSSL (it uses the CPU's SHA extensions; libsodium's is several times
 * slower), Ed25519 through libsodium (about twice OpenSSL's speed on the development machine).
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

#define CPX_SHA256_LEN      32
#define CPX_ED25519_PK_LEN  32
#define CPX_ED25519_SK_LEN  64 /* libsodium's form: seed followed by the public key */
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

/*
 * A reusable SHA-256 context, for hashing many short inputs (Merkle leaves and nodes). OpenSSL 3
 * spends most of a short hash setting up: on the development machine a 65-byte hash costs about
 * 460 ns through cpx_sha256 (a fresh EVP context per call) or SHA256() (which fetches the
 * algorithm each time), and about 165 ns through one of these. Not thread-safe: one per thread.
 */
struct cpx_sha256_ctx;

/* Returns a new context, or NULL when OpenSSL cannot allocate one. Free with cpx_sha256_ctx_free.
 */
struct cpx_sha256_ctx *cpx_sha256_ctx_new(void);

/* Frees ctx (NULL is fine). */
void cpx_sha256_ctx_free(struct cpx_sha256_ctx *ctx);

/*
 * out = SHA-256(a || b || c); any part may be empty (length 0, pointer unused). On an internal
 * OpenSSL failure out is all zeros, which fails every later comparison closed.
 */
void cpx_sha256_ctx_digest(struct cpx_sha256_ctx *ctx, const void *a, size_t alen, const void *b,
                           size_t blen, const void *c, size_t clen, uint8_t out[CPX_SHA256_LEN]);

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
