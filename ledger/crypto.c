/*
 * Thin, allocation-free wrappers over OpenSSL's SHA-256 and libsodium's Ed25519: see crypto.h.
 */
#include "ledger/crypto.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int cpx_crypto_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

void cpx_sha256(const void *data, size_t len, uint8_t out[CPX_SHA256_LEN])
{
    cpx_sha256_2(data, len, NULL, 0, out);
}

void cpx_sha256_2(const void *a, size_t alen, const void *b, size_t blen,
                  uint8_t out[CPX_SHA256_LEN])
{
    /* EVP_Digest* cannot fail with a valid context and SHA-256 except on allocation failure, which
     * OpenSSL reports by returning 0; a zero digest then makes every later comparison fail closed.
     */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, a, alen) != 1 || (blen && EVP_DigestUpdate(ctx, b, blen) != 1) ||
        EVP_DigestFinal_ex(ctx, out, &n) != 1)
        memset(out, 0, CPX_SHA256_LEN);
    EVP_MD_CTX_free(ctx);
}

/* A fetched SHA-256 implementation and a digest context that is re-initialised per hash. */
struct cpx_sha256_ctx {
    EVP_MD *md;      /* SHA-256, fetched once (explicit fetch: no per-hash lookup) */
    EVP_MD_CTX *ctx; /* reused for every digest */
};

struct cpx_sha256_ctx *cpx_sha256_ctx_new(void)
{
    struct cpx_sha256_ctx *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    h->ctx = EVP_MD_CTX_new();
    if (h->md == NULL || h->ctx == NULL) {
        cpx_sha256_ctx_free(h);
        return NULL;
    }
    return h;
}

void cpx_sha256_ctx_free(struct cpx_sha256_ctx *h)
{
    if (h == NULL)
        return;
    EVP_MD_CTX_free(h->ctx);
    EVP_MD_free(h->md);
    free(h);
}

void cpx_sha256_ctx_digest(struct cpx_sha256_ctx *h, const void *a, size_t alen, const void *b,
                           size_t blen, const void *c, size_t clen, uint8_t out[CPX_SHA256_LEN])
{
    unsigned int n = 0;
    if (EVP_DigestInit_ex2(h->ctx, h->md, NULL) != 1 ||
        (alen && EVP_DigestUpdate(h->ctx, a, alen) != 1) ||
        (blen && EVP_DigestUpdate(h->ctx, b, blen) != 1) ||
        (clen && EVP_DigestUpdate(h->ctx, c, clen) != 1) ||
        EVP_DigestFinal_ex(h->ctx, out, &n) != 1)
        memset(out, 0, CPX_SHA256_LEN);
}

void cpx_keypair_generate(struct cpx_keypair *kp)
{
    crypto_sign_keypair(kp->pk, kp->sk);
}

bool cpx_keypair_from_secret(struct cpx_keypair *kp, const uint8_t sk[CPX_ED25519_SK_LEN])
{
    uint8_t pk[CPX_ED25519_PK_LEN];
    if (crypto_sign_ed25519_sk_to_pk(pk, sk) != 0)
        return false;
    /* Re-derive from the seed: a file whose public half was edited is refused. */
    uint8_t derived_pk[CPX_ED25519_PK_LEN], derived_sk[CPX_ED25519_SK_LEN];
    crypto_sign_seed_keypair(derived_pk, derived_sk, sk);
    bool ok = memcmp(derived_pk, pk, sizeof pk) == 0;
    if (ok) {
        memcpy(kp->pk, derived_pk, sizeof derived_pk);
        memcpy(kp->sk, derived_sk, sizeof derived_sk);
    }
    sodium_memzero(derived_sk, sizeof derived_sk);
    return ok;
}

void cpx_keypair_wipe(struct cpx_keypair *kp)
{
    sodium_memzero(kp->sk, sizeof kp->sk);
}

void cpx_sign(const struct cpx_keypair *kp, const void *msg, size_t len,
              uint8_t sig[CPX_ED25519_SIG_LEN])
{
    crypto_sign_detached(sig, NULL, msg, len, kp->sk);
}

bool cpx_verify(const uint8_t pk[CPX_ED25519_PK_LEN], const void *msg, size_t len,
                const uint8_t sig[CPX_ED25519_SIG_LEN])
{
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0;
}
