/*
 * The identity cache: see idcache.h. A direct-mapped table (one entry per slot, chosen by a hash
 * of the id) behind one mutex; a lookup copies the entry out, so nothing is shared after it.
 */
#include "server/idcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/codec.h"

#include "server/util.h"

struct slot {
    bool used;
    uint64_t gen;      /* bumped by every forget of any id of this slot */
    int64_t stored_ms; /* monotonic time it was stored */
    struct identity idn;
};

struct identity_cache {
    pthread_mutex_t mu;
    size_t n;
    int64_t ttl_ms;
    struct slot *slots;
};

static size_t slot_of(const struct identity_cache *c, const char *id)
{
    return (size_t)(cpx_fnv1a64(id) % c->n);
}

static int64_t mono_ms(void)
{
    return (int64_t)(mono_ns() / 1000000);
}

struct identity_cache *identity_cache_create(size_t slots, int64_t ttl_ms)
{
    struct identity_cache *c = calloc(1, sizeof *c);
    if (c == NULL || slots == 0 || (c->slots = calloc(slots, sizeof *c->slots)) == NULL) {
        free(c);
        return NULL;
    }
    c->n = slots;
    c->ttl_ms = ttl_ms;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void identity_cache_free(struct identity_cache *c)
{
    if (c == NULL)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c->slots);
    free(c);
}

bool identity_cache_get(struct identity_cache *c, const char *id, struct identity *out,
                        uint64_t *gen)
{
    *gen = 0;
    if (c == NULL)
        return false;
    int64_t now = mono_ms();
    pthread_mutex_lock(&c->mu);
    struct slot *s = &c->slots[slot_of(c, id)];
    *gen = s->gen;
    bool hit = s->used && strcmp(s->idn.id, id) == 0 && now - s->stored_ms < c->ttl_ms;
    if (hit)
        *out = s->idn;
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void identity_cache_put(struct identity_cache *c, const struct identity *idn, uint64_t gen)
{
    if (c == NULL)
        return;
    int64_t now = mono_ms();
    pthread_mutex_lock(&c->mu);
    struct slot *s = &c->slots[slot_of(c, idn->id)];
    if (s->gen != gen) { /* forgotten meanwhile: what we read may predate the change */
        pthread_mutex_unlock(&c->mu);
        return;
    }
    s->used = true;
    s->stored_ms = now;
    s->idn = *idn;
    pthread_mutex_unlock(&c->mu);
}

void identity_cache_forget(struct identity_cache *c, const char *id)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    struct slot *s = &c->slots[slot_of(c, id)];
    s->gen++;
    if (s->used && strcmp(s->idn.id, id) == 0)
        s->used = false;
    pthread_mutex_unlock(&c->mu);
}
