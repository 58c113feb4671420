/*
 * Key files and identity ids: see keyfile.h for the format and the derivation.
 */
#include "ledger/keyfile.h"

#include <stdio.h>
#include <string.h>

#include "ledger/codec.h"

#define ID_PREFIX     "idn_"
#define ID_HASH_BYTES 10 /* 80 bits: 16 base32 characters */
#define KEYFILE_MAGIC "cpx-ed25519-key v1"

void cpx_identity_id_for_key(const uint8_t pk[CPX_ED25519_PK_LEN], char out[CPX_ID_MAX])
{
    static const char domain[] = "cpx-identity-v1"; /* hashed with its NUL as separator */
    uint8_t digest[CPX_SHA256_LEN];
    cpx_sha256_2(domain, sizeof domain, pk, CPX_ED25519_PK_LEN, digest);
    memcpy(out, ID_PREFIX, sizeof ID_PREFIX - 1);
    cpx_b32_encode(digest, ID_HASH_BYTES, out + sizeof ID_PREFIX - 1);
}

bool cpx_identity_id_valid(const char *s)
{
    if (strncmp(s, ID_PREFIX, sizeof ID_PREFIX - 1) != 0)
        return false;
    s += sizeof ID_PREFIX - 1;
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '2' && s[n] <= '7')))
            return false;
    return n == (ID_HASH_BYTES * 8 + 4) / 5;
}

void cpx_public_key_encode(const uint8_t pk[CPX_ED25519_PK_LEN], char out[45])
{
    cpx_b64_encode(pk, CPX_ED25519_PK_LEN, out);
}

bool cpx_public_key_decode(const char *text, size_t len, uint8_t pk[CPX_ED25519_PK_LEN])
{
    return len == CPX_B64_LEN(CPX_ED25519_PK_LEN) &&
           cpx_b64_decode(text, len, pk, CPX_ED25519_PK_LEN) == CPX_ED25519_PK_LEN;
}

size_t cpx_keyfile_format(const struct cpx_keyfile *kf, char out[CPX_KEYFILE_MAX])
{
    char pk[CPX_B64_LEN(CPX_ED25519_PK_LEN) + 1], sk[CPX_B64_LEN(CPX_ED25519_SK_LEN) + 1];
    cpx_b64_encode(kf->kp.pk, sizeof kf->kp.pk, pk);
    cpx_b64_encode(kf->kp.sk, sizeof kf->kp.sk, sk);
    int n;
    if (kf->identity[0] != '\0')
        n = snprintf(out, CPX_KEYFILE_MAX, "%s\nidentity %s\npublic %s\nsecret %s\n", KEYFILE_MAGIC,
                     kf->identity, pk, sk);
    else
        n = snprintf(out, CPX_KEYFILE_MAX, "%s\npublic %s\nsecret %s\n", KEYFILE_MAGIC, pk, sk);
    memset(sk, 0, sizeof sk);
    return n > 0 ? (size_t)n : 0;
}

/* If line starts with "word ", points *value at the rest and returns true. */
static bool line_is(const char *line, size_t n, const char *word, const char **value, size_t *vlen)
{
    size_t w = strlen(word);
    if (n <= w + 1 || memcmp(line, word, w) != 0 || line[w] != ' ')
        return false;
    *value = line + w + 1;
    *vlen = n - w - 1;
    return true;
}

const char *cpx_keyfile_parse(const char *text, size_t len, struct cpx_keyfile *kf)
{
    memset(kf, 0, sizeof *kf);
    bool have_pk = false, have_sk = false, first = true;
    uint8_t pk[CPX_ED25519_PK_LEN], sk[CPX_ED25519_SK_LEN];
    const char *p = text, *end = text + len, *err = NULL;
    while (p < end && err == NULL) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        const char *v;
        size_t vlen;
        if (first) {
            if (n != sizeof KEYFILE_MAGIC - 1 || memcmp(p, KEYFILE_MAGIC, n) != 0)
                err = "not a CPX key file (first line must be \"" KEYFILE_MAGIC "\")";
            first = false;
        } else if (line_is(p, n, "identity", &v, &vlen)) {
            if (vlen >= CPX_ID_MAX)
                err = "identity line is too long";
            else {
                memcpy(kf->identity, v, vlen);
                kf->identity[vlen] = '\0';
                if (!cpx_identity_id_valid(kf->identity))
                    err = "identity line does not hold an identity id";
            }
        } else if (line_is(p, n, "public", &v, &vlen)) {
            have_pk = cpx_public_key_decode(v, vlen, pk);
            if (!have_pk)
                err = "public line is not base64 of a 32-byte key";
        } else if (line_is(p, n, "secret", &v, &vlen)) {
            have_sk = vlen == CPX_B64_LEN(CPX_ED25519_SK_LEN) &&
                      cpx_b64_decode(v, vlen, sk, sizeof sk) == CPX_ED25519_SK_LEN;
            if (!have_sk)
                err = "secret line is not base64 of a 64-byte key";
        } else if (n != 0) {
            err = "unknown line in key file";
        }
        p = nl ? nl + 1 : end;
    }
    if (err == NULL && first)
        err = "key file is empty";
    if (err == NULL && (!have_pk || !have_sk))
        err = "key file needs both a public and a secret line";
    if (err == NULL && (!cpx_keypair_from_secret(&kf->kp, sk) || memcmp(kf->kp.pk, pk, sizeof pk)))
        err = "key file's public key does not belong to its secret key";
    if (err == NULL && kf->identity[0] == '\0')
        cpx_identity_id_for_key(kf->kp.pk, kf->identity);
    memset(sk, 0, sizeof sk);
    if (err != NULL)
        cpx_keypair_wipe(&kf->kp);
    return err;
}
