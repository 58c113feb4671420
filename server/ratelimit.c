/*
 * Token buckets per identity: see ratelimit.h. Tokens are kept in thousandths so that a rate
 * of a few a second refills smoothly with integer arithmetic.
 */
#include "server/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/codec.h"

#include "ledger/reqsig.h"

struct bucket {
    char id[CPX_ID_MAX];
    int64_t milli_tokens; /* tokens x 1000 */
    int64_t last_ms;      /* when it was last refilled */
};

struct rate_limiter {
    pthread_mutex_t mu;
    size_t n;
    int64_t rate, burst;
    struct bucket *buckets;
};

struct rate_limiter *rate_limiter_create(size_t slots, int64_t rate, int64_t burst)
{
    if (rate <= 0 || slots == 0)
        return NULL;
    struct rate_limiter *r = calloc(1, sizeof *r);
    if (r == NULL || (r->buckets = calloc(slots, sizeof *r->buckets)) == NULL) {
        free(r);
        return NULL;
    }
    r->n = slots;
    r->rate = rate;
    r->burst = burst > 0 ? burst : rate;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void rate_limiter_free(struct rate_limiter *r)
{
    if (r == NULL)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r->buckets);
    free(r);
}

static size_t slot_of(const struct rate_limiter *r, const char *id)
{
    return (size_t)(cpx_fnv1a64(id) % r->n);
}

bool rate_limit_take(struct rate_limiter *r, const char *id, int64_t now_ms, int64_t *retry_s)
{
    *retry_s = 0;
    if (r == NULL)
        return true;
    pthread_mutex_lock(&r->mu);
    struct bucket *b = &r->buckets[slot_of(r, id)];
    int64_t full = r->burst * 1000;
    if (strcmp(b->id, id) != 0) { /* a new identity in this slot starts with a full bucket */
        strncpy(b->id, id, sizeof b->id - 1);
        b->id[sizeof b->id - 1] = '\0';
        b->milli_tokens = full;
        b->last_ms = now_ms;
    }
    int64_t elapsed = now_ms > b->last_ms ? now_ms - b->last_ms : 0;
    b->last_ms = now_ms > b->last_ms ? now_ms : b->last_ms;
    /* elapsed ms x rate a second = milli-tokens; capped before multiplying, so no overflow */
    int64_t gain = elapsed > full ? full * r->rate : elapsed * r->rate;
    b->milli_tokens = b->milli_tokens + gain > full ? full : b->milli_tokens + gain;
    bool ok = b->milli_tokens >= 1000;
    if (ok)
        b->milli_tokens -= 1000;
    else
        *retry_s = ((1000 - b->milli_tokens) / r->rate + 999) / 1000 + 1;
    pthread_mutex_unlock(&r->mu);
    return ok;
}
