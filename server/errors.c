/*
 * The error table: see errors.h. Order follows enum err.
 */
#include "server/errors.h"

static const struct err_info table[E_COUNT] = {
    [E_MALFORMED_JSON] = { 400, "malformed_json", "The body is not a JSON object." },
    [E_INVALID_FIELD] = { 400, "invalid_field", "A field has the wrong type or form." },
    [E_MISSING_FIELD] = { 400, "missing_field", "A required field is missing." },
    [E_UNKNOWN_FIELD] = { 400, "unknown_field",
                          "The body has a field this endpoint does not take." },
    [E_OUT_OF_RANGE] = { 400, "out_of_range", "A field is outside its allowed range." },
    [E_INVALID_QUERY] = { 400, "invalid_query", "A query parameter is invalid." },
    [E_INVALID_HEADER] = { 400, "invalid_header", "A request header is invalid." },
    [E_BODY_NOT_CANONICAL] = { 400, "body_not_canonical",
                               "The body is recorded in the ledger and must be canonical JSON." },
    [E_INVALID_TARGET] = { 400, "invalid_target",
                           "The request target must be visible ASCII; percent-encode the rest." },
    [E_UNAUTHENTICATED] = { 401, "unauthenticated",
                            "This endpoint needs a signed request (Authorization: CPX-Ed25519)." },
    [E_BAD_AUTHORIZATION] = { 401, "bad_authorization", "The Authorization header is malformed." },
    [E_UNKNOWN_IDENTITY] = { 401, "unknown_identity", "No identity has that id." },
    [E_BAD_SIGNATURE] = { 401, "bad_signature",
                          "The signature does not match the request and the identity's key." },
    [E_STALE_TIMESTAMP] = { 401, "stale_timestamp",
                            "The request's timestamp is outside the accepted clock window." },
    [E_REPLAYED_REQUEST] = { 401, "replayed_request",
                             "This signature was already used; sign each request afresh." },
    [E_KEY_MISMATCH] = { 401, "key_mismatch",
                         "The Authorization id is not the id of the key being registered." },
    [E_FORBIDDEN_ROLE] = { 403, "forbidden_role", "The identity lacks the role this needs." },
    [E_NOT_APPROVED] = { 403, "not_approved", "The identity is not approved by an operator." },
    [E_NOT_FOUND] = { 404, "not_found", "No such endpoint." },
    [E_IDENTITY_NOT_FOUND] = { 404, "identity_not_found", "No identity has that id." },
    [E_RECORD_NOT_FOUND] = { 404, "record_not_found", "The ledger has no record with that seq." },
    [E_CHECKPOINT_NOT_FOUND] = { 404, "checkpoint_not_found",
                                 "The ledger has no checkpoint of that size." },
    [E_METHOD_NOT_ALLOWED] = { 405, "method_not_allowed",
                               "This endpoint does not take that method." },
    [E_IDENTITY_EXISTS] = { 409, "identity_exists", "This key is already registered." },
    [E_REG_NO_TAKEN] = { 409, "reg_no_taken",
                         "Another identity is registered with this registration number." },
    [E_INVALID_STATE] = { 409, "invalid_state",
                          "The resource is not in a state that allows this." },
    [E_IDEMPOTENCY_KEY_REUSED] = { 409, "idempotency_key_reused",
                                   "This Idempotency-Key was used for a different request." },
    [E_KEY_IN_USE] = { 409, "key_in_use",
                       "That key belongs to an identity or was retired by a key rotation." },
    [E_BODY_TOO_LARGE] = { 413, "body_too_large", "The request body is too large." },
    [E_UNSUPPORTED_MEDIA_TYPE] = { 415, "unsupported_media_type",
                                   "Request bodies must be application/json." },
    [E_INTERNAL] = { 500, "internal", "Internal error; it has been logged." },
    [E_DATABASE_UNAVAILABLE] = { 503, "database_unavailable",
                                 "The database is unavailable; retry shortly." },
    [E_BUSY] = { 503, "busy", "Too many changes at once; retry shortly." },
};

const struct err_info *err_info(enum err e)
{
    if ((unsigned)e >= E_COUNT)
        e = E_INTERNAL;
    return &table[e];
}
