/*
 * Per-identity rate limits for the commands the sequencer takes (orders, listings, cancels,
 * deposits): a token bucket per identity, refilled at `rate` a second up to `burst`. A client
 * over its rate is answered 429 with Retry-After before its command is queued, so one identity
 * cannot fill the sequencer's batches for everyone else.
 *
 * The buckets live in a direct-mapped table keyed by identity id; two identities sharing a slot
 * reset each other's bucket, which can only make the limit more lenient, never stricter.
 */
#ifndef CPX_SERVER_RATELIMIT_H
#define CPX_SERVER_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rate_limiter;

/* rate commands a second per identity, burst at most at once; rate 0 turns limiting off (NULL
 * is returned and every check passes). */
struct rate_limiter *rate_limiter_create(size_t slots, int64_t rate, int64_t burst);

void rate_limiter_free(struct rate_limiter *r);

/* Takes one token for id at now_ms. True when allowed; otherwise *retry_s is how many whole
 * seconds until a token is back. */
bool rate_limit_take(struct rate_limiter *r, const char *id, int64_t now_ms, int64_t *retry_s);

#endif
