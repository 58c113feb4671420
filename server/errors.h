/*
 * Every error cpxd can answer, with its HTTP status and stable snake_case code. The table in
 * errors.c is the single source: replies use it, and a test checks that docs/errors.md lists
 * every code in it.
 */
#ifndef CPX_SERVER_ERRORS_H
#define CPX_SERVER_ERRORS_H

enum err {
    /* 400: the request is malformed or a field is invalid */
    E_MALFORMED_JSON,
    E_INVALID_FIELD,
    E_MISSING_FIELD,
    E_UNKNOWN_FIELD,
    E_OUT_OF_RANGE,
    E_INVALID_QUERY,
    E_INVALID_HEADER,
    E_BODY_NOT_CANONICAL,
    E_INVALID_TARGET,
    /* 401: authentication */
    E_UNAUTHENTICATED,
    E_BAD_AUTHORIZATION,
    E_UNKNOWN_IDENTITY,
    E_BAD_SIGNATURE,
    E_STALE_TIMESTAMP,
    E_REPLAYED_REQUEST,
    E_KEY_MISMATCH,
    /* 403: role or state of the caller */
    E_FORBIDDEN_ROLE,
    E_NOT_APPROVED,
    /* 404, 405 */
    E_NOT_FOUND,
    E_IDENTITY_NOT_FOUND,
    E_RECORD_NOT_FOUND,
    E_CHECKPOINT_NOT_FOUND,
    E_LISTING_NOT_FOUND,
    E_ORDER_NOT_FOUND,
    E_AGREEMENT_NOT_FOUND,
    E_JOB_NOT_FOUND,
    E_MARKET_NOT_FOUND,
    E_BILL_NOT_FOUND,
    E_METHOD_NOT_ALLOWED,
    /* 409: conflicts with the current state */
    E_IDENTITY_EXISTS,
    E_REG_NO_TAKEN,
    E_INVALID_STATE,
    E_IDEMPOTENCY_KEY_REUSED,
    E_KEY_IN_USE,
    E_NOT_OPEN,
    E_CLIENT_ORDER_ID_REUSED,
    E_AGREEMENT_NOT_ACTIVE,
    E_USAGE_OVERLAPS,
    E_BILL_NOT_OPEN,
    /* 422: well-formed, but the market refuses it */
    E_INSUFFICIENT_FUNDS,
    E_JOB_QUOTA,
    E_ORDER_REJECTED,
    E_USAGE_OUTSIDE_WINDOW,
    E_USAGE_EXCEEDS_CAPACITY,
    E_DISPUTE_WINDOW_CLOSED,
    /* 413, 415 */
    E_BODY_TOO_LARGE,
    E_UNSUPPORTED_MEDIA_TYPE,
    /* 429 */
    E_RATE_LIMITED,
    /* 500, 503 */
    E_INTERNAL,
    E_DATABASE_UNAVAILABLE,
    E_BUSY,
    E_BOOK_FULL,
    E_SEQUENCER_UNAVAILABLE,
    E_COUNT
};

struct err_info {
    int status;          /* HTTP status */
    const char *code;    /* stable machine-readable code */
    const char *message; /* default sentence for a person */
};

/* The status, code and default message of e. */
const struct err_info *err_info(enum err e);

#endif
