/*
 * Signed requests: see reqsig.h for the wire form and the signed string.
 *
 * The header parser is a small hand-written scanner over (pointer, length): it never reads past
 * len, needs no NUL, allocates nothing, and accepts each parameter exactly once, so it is safe on
 * bytes straight off the network (fuzzed by tests/fuzz/fuzz_auth.c).
 */
#include "ledger/reqsig.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ledger/codec.h"

#define TS_MAX 9007199254740992LL /* 2^53: larger values are refused as nonsense */

const char *cpx_auth_error_text(enum cpx_auth_error err)
{
    switch (err) {
    case CPX_AUTH_OK: return "ok";
    case CPX_AUTH_SCHEME_MISSING: return "Authorization must use the CPX-Ed25519 scheme";
    case CPX_AUTH_MALFORMED:
        return "Authorization must carry id=, ts= and sig= exactly once, comma-separated";
    case CPX_AUTH_BAD_ID: return "Authorization id is not a valid identity id";
    case CPX_AUTH_BAD_TS: return "Authorization ts is not a unix time in seconds";
    case CPX_AUTH_BAD_SIG: return "Authorization sig is not base64 of a 64-byte signature";
    }
    return "invalid Authorization";
}

static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* Parses one "key=value" parameter into out; *seen tracks duplicates (bit per key). */
static enum cpx_auth_error parse_param(const char *p, size_t n, struct cpx_auth *out,
                                       unsigned *seen)
{
    const char *eq = memchr(p, '=', n);
    if (eq == NULL)
        return CPX_AUTH_MALFORMED;
    size_t klen = (size_t)(eq - p), vlen = n - klen - 1;
    const char *v = eq + 1;
    if (klen == 2 && memcmp(p, "id", 2) == 0) {
        if (*seen & 1)
            return CPX_AUTH_MALFORMED;
        *seen |= 1;
        if (vlen == 0 || vlen >= CPX_ID_MAX)
            return CPX_AUTH_BAD_ID;
        for (size_t i = 0; i < vlen; i++)
            if (!id_char(v[i]))
                return CPX_AUTH_BAD_ID;
        memcpy(out->id, v, vlen);
        out->id[vlen] = '\0';
        return CPX_AUTH_OK;
    }
    if (klen == 2 && memcmp(p, "ts", 2) == 0) {
        if (*seen & 2)
            return CPX_AUTH_MALFORMED;
        *seen |= 2;
        /* Canonical decimal: digits only, no leading zero unless "0", at most 16 digits. */
        if (vlen == 0 || vlen > 16 || (vlen > 1 && v[0] == '0'))
            return CPX_AUTH_BAD_TS;
        int64_t ts = 0;
        for (size_t i = 0; i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9')
                return CPX_AUTH_BAD_TS;
            ts = ts * 10 + (v[i] - '0');
        }
        if (ts > TS_MAX)
            return CPX_AUTH_BAD_TS;
        out->ts = ts;
        return CPX_AUTH_OK;
    }
    if (klen == 3 && memcmp(p, "sig", 3) == 0) {
        if (*seen & 4)
            return CPX_AUTH_MALFORMED;
        *seen |= 4;
        if (vlen != CPX_B64_LEN(CPX_ED25519_SIG_LEN) ||
            cpx_b64_decode(v, vlen, out->sig, sizeof out->sig) != CPX_ED25519_SIG_LEN)
            return CPX_AUTH_BAD_SIG;
        return CPX_AUTH_OK;
    }
    return CPX_AUTH_MALFORMED;
}

enum cpx_auth_error cpx_auth_parse(const char *value, size_t len, struct cpx_auth *out)
{
    static const char scheme[] = CPX_AUTH_SCHEME " ";
    const size_t slen = sizeof scheme - 1;
    memset(out, 0, sizeof *out);
    if (len < slen || memcmp(value, scheme, slen) != 0)
        return CPX_AUTH_SCHEME_MISSING;
    const char *p = value + slen, *end = value + len;
    unsigned seen = 0;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        enum cpx_auth_error err = parse_param(p, (size_t)(stop - p), out, &seen);
        if (err != CPX_AUTH_OK)
            return err;
        if (comma != NULL && comma + 1 == end)
            return CPX_AUTH_MALFORMED; /* trailing comma */
        p = comma ? comma + 1 : end;
    }
    return seen == 7 ? CPX_AUTH_OK : CPX_AUTH_MALFORMED;
}

void cpx_auth_format(const struct cpx_auth *auth, char out[CPX_AUTH_HEADER_MAX])
{
    char sig[CPX_B64_LEN(CPX_ED25519_SIG_LEN) + 1];
    cpx_b64_encode(auth->sig, sizeof auth->sig, sig);
    snprintf(out, CPX_AUTH_HEADER_MAX, "%s id=%s,ts=%" PRId64 ",sig=%s", CPX_AUTH_SCHEME, auth->id,
             auth->ts, sig);
}

/* A method or target may not be empty, overlong, or hold the separator or a NUL. */
static bool signable(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    return n > 0 && n <= max && strchr(s, '\n') == NULL;
}

long cpx_reqsig_message(const char *method, const char *target, int64_t ts, const void *body,
                        size_t body_len, char *out, size_t cap)
{
    if (!signable(method, CPX_REQSIG_METHOD_MAX) || !signable(target, CPX_REQSIG_TARGET_MAX) ||
        ts < 0)
        return -1;
    uint8_t digest[CPX_SHA256_LEN];
    char hex[2 * CPX_SHA256_LEN + 1];
    cpx_sha256(body, body_len, digest);
    cpx_hex_encode(digest, sizeof digest, hex);
    int n = snprintf(out, cap, "%s\n%s\n%" PRId64 "\n%s", method, target, ts, hex);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return n;
}

bool cpx_reqsig_sign(const struct cpx_keypair *kp, const char *method, const char *target,
                     int64_t ts, const void *body, size_t body_len, struct cpx_auth *auth)
{
    char msg[CPX_REQSIG_MESSAGE_MAX];
    long n = cpx_reqsig_message(method, target, ts, body, body_len, msg, sizeof msg);
    if (n < 0)
        return false;
    auth->ts = ts;
    cpx_sign(kp, msg, (size_t)n, auth->sig);
    return true;
}

bool cpx_reqsig_verify(const uint8_t pk[CPX_ED25519_PK_LEN], const char *method, const char *target,
                       int64_t ts, const void *body, size_t body_len,
                       const uint8_t sig[CPX_ED25519_SIG_LEN])
{
    char msg[CPX_REQSIG_MESSAGE_MAX];
    long n = cpx_reqsig_message(method, target, ts, body, body_len, msg, sizeof msg);
    return n >= 0 && cpx_verify(pk, msg, (size_t)n, sig);
}
