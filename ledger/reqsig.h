/*
 * Signed requests: how a party proves it sent a request, and how anyone checks it later.
 *
 * Every request that changes state or reads private data carries
 *
 *     Authorization: CPX-Ed25519 id=<identity id>,ts=<unix seconds>,sig=<base64 signature>
 *
 * where the signature is Ed25519, by the identity's key, over the signed string
 *
 *     METHOD "\n" REQUEST-TARGET "\n" TS "\n" hex(SHA-256(body))
 *
 * REQUEST-TARGET is the path with its query exactly as sent on the request line (no decoding, no
 * re-ordering), TS the same decimal digits as in the header. The server checks it on arrival; the
 * ledger keeps method, target, ts, body and signature of the requests it records, so a regulator
 * can check the same signature years later with nothing but this file and the party's key.
 */
#ifndef CPX_LEDGER_REQSIG_H
#define CPX_LEDGER_REQSIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger/crypto.h"

#define CPX_AUTH_SCHEME       "CPX-Ed25519"
#define CPX_ID_MAX            64   /* longest id of any kind, with its NUL */
#define CPX_AUTH_HEADER_MAX   256  /* longest Authorization value cpx_auth_format writes */
#define CPX_REQSIG_METHOD_MAX 16   /* longest method accepted in a signed string */
#define CPX_REQSIG_TARGET_MAX 4096 /* longest request target accepted in a signed string */

/* A parsed Authorization header. */
struct cpx_auth {
    char id[CPX_ID_MAX];              /* identity id, NUL-terminated, [a-z0-9_] only */
    int64_t ts;                       /* unix seconds the client signed at */
    uint8_t sig[CPX_ED25519_SIG_LEN]; /* the signature bytes */
};

/* Why an Authorization header was refused; cpx_auth_error_text names each for people. */
enum cpx_auth_error {
    CPX_AUTH_OK = 0,
    CPX_AUTH_SCHEME_MISSING, /* not "CPX-Ed25519 ..." */
    CPX_AUTH_MALFORMED,      /* parameters not id=,ts=,sig= once each */
    CPX_AUTH_BAD_ID,         /* id empty, too long or with characters outside [a-z0-9_] */
    CPX_AUTH_BAD_TS,         /* ts not a canonical decimal within 0..2^53 */
    CPX_AUTH_BAD_SIG,        /* sig not canonical base64 of 64 bytes */
};

/* A sentence describing err, for error replies. Never NULL. */
const char *cpx_auth_error_text(enum cpx_auth_error err);

/*
 * Parses an Authorization header value (untrusted, len bytes, need not be NUL-terminated).
 * Parameters may come in any order, each exactly once, separated by commas; no spaces inside.
 */
enum cpx_auth_error cpx_auth_parse(const char *value, size_t len, struct cpx_auth *out);

/* Writes the Authorization header value for auth into out (CPX_AUTH_HEADER_MAX bytes). */
void cpx_auth_format(const struct cpx_auth *auth, char out[CPX_AUTH_HEADER_MAX]);

/*
 * Writes the signed string for a request into out (capacity cap, NUL-terminated). Returns its
 * length, or -1 when method or target are too long, empty or contain a newline or NUL.
 */
long cpx_reqsig_message(const char *method, const char *target, int64_t ts, const void *body,
                        size_t body_len, char *out, size_t cap);

/* Buffer size that always holds cpx_reqsig_message's output. */
#define CPX_REQSIG_MESSAGE_MAX (CPX_REQSIG_METHOD_MAX + CPX_REQSIG_TARGET_MAX + 24 + 64 + 8)

/* Signs a request as its sender: fills auth->ts and auth->sig (auth->id is the caller's).
 * Returns false when method or target cannot be signed (see cpx_reqsig_message). */
bool cpx_reqsig_sign(const struct cpx_keypair *kp, const char *method, const char *target,
                     int64_t ts, const void *body, size_t body_len, struct cpx_auth *auth);

/* Returns true when sig is pk's signature of the request. */
bool cpx_reqsig_verify(const uint8_t pk[CPX_ED25519_PK_LEN], const char *method, const char *target,
                       int64_t ts, const void *body, size_t body_len,
                       const uint8_t sig[CPX_ED25519_SIG_LEN]);

#endif
