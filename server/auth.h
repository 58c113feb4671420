/*
 * Authentication of signed requests (see ledger/reqsig.h for the header and the signed string):
 * the clock window, the identity's key, the signature, the replay cache, then the route's access
 * rule. Every failure answers 401 or 403 with a code naming the reason.
 */
#ifndef CPX_SERVER_AUTH_H
#define CPX_SERVER_AUTH_H

#include <stdbool.h>

#include "ledger/crypto.h"

struct request;
struct route;

/*
 * Authenticates req for route: on success fills req->auth, req->caller and req->signed_in and
 * returns true; otherwise answers the request and returns false. ACCESS_PUBLIC routes pass
 * without a signature; ACCESS_REGISTER routes get only the header parsed and the clock checked
 * here (the handler calls auth_verify_key with the key from the body).
 */
bool auth_request(struct request *req, const struct route *route);

/*
 * Checks req's signature against public key pk and records it in the replay cache. Answers
 * 401 and returns false when it is not valid.
 */
bool auth_verify_key(struct request *req, const uint8_t pk[CPX_ED25519_PK_LEN]);

#endif
