/*
 * Replay cache: see replay.h.
 *
 * Structure: 16 shards chosen by a signature byte, each with its own mutex so threads rarely
 * contend. A shard holds two generations of open-addressing hash sets of 128-bit keys (the first
 * 16 bytes of the signature, which for Ed25519 are part of the point R and look random): `cur`
 * receives new entries, `old` is only read. Every `period` seconds a shard rotates: old is
 * dropped, cur becomes old. An entry therefore lives between one and two periods, never less
 * than one, at the cost of at most two periods of entries in memory.
 *
 * Invariants: a slot with key {0,0} is empty (a real key of all zeros is stored with its low bit
 * set, which merely merges it with one other key); each set is at most half full; generations
 * never share a key (a key found in old is refused, not copied).
 */
#include "server/replay.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NSHARD        16
#define INITIAL_SLOTS 1024

struct key {
    uint64_t a, b; /* the first 16 bytes of a signature */
};

struct set {
    struct key *slots; /* open addressing, linear probing; size is a power of two */
    size_t size;       /* number of slots */
    size_t used;       /* number of keys */
};

struct shard {
    pthread_mutex_t mu;  /* guards everything below */
    struct set cur, old; /* the two generations */
    int64_t rotated_at;  /* when cur was started, unix seconds */
};

struct replay_cache {
    int64_t period; /* seconds between rotations */
    struct shard shards[NSHARD];
};

static bool set_init(struct set *s, size_t size)
{
    s->slots = calloc(size, sizeof *s->slots);
    s->size = s->slots ? size : 0;
    s->used = 0;
    return s->slots != NULL;
}

static size_t slot_of(const struct set *s, struct key k)
{
    return (size_t)(k.a ^ (k.b * 0x9e3779b97f4a7c15ULL)) & (s->size - 1);
}

static bool set_has(const struct set *s, struct key k)
{
    for (size_t i = slot_of(s, k);; i = (i + 1) & (s->size - 1)) {
        struct key e = s->slots[i];
        if (e.a == 0 && e.b == 0)
            return false;
        if (e.a == k.a && e.b == k.b)
            return true;
    }
}

static void set_put(struct set *s, struct key k)
{
    size_t i = slot_of(s, k);
    while (s->slots[i].a != 0 || s->slots[i].b != 0)
        i = (i + 1) & (s->size - 1);
    s->slots[i] = k;
    s->used++;
}

/* Doubles s; returns false (leaving s as it was) when out of memory. */
static bool set_grow(struct set *s)
{
    struct set bigger;
    if (!set_init(&bigger, s->size * 2))
        return false;
    for (size_t i = 0; i < s->size; i++)
        if (s->slots[i].a != 0 || s->slots[i].b != 0)
            set_put(&bigger, s->slots[i]);
    free(s->slots);
    *s = bigger;
    return true;
}

struct replay_cache *replay_create(int64_t period_s)
{
    struct replay_cache *rc = calloc(1, sizeof *rc);
    if (rc == NULL)
        return NULL;
    rc->period = period_s;
    for (int i = 0; i < NSHARD; i++) {
        pthread_mutex_init(&rc->shards[i].mu, NULL);
        if (!set_init(&rc->shards[i].cur, INITIAL_SLOTS) ||
            !set_init(&rc->shards[i].old, INITIAL_SLOTS)) {
            replay_free(rc);
            return NULL;
        }
    }
    return rc;
}

void replay_free(struct replay_cache *rc)
{
    if (rc == NULL)
        return;
    for (int i = 0; i < NSHARD; i++) {
        free(rc->shards[i].cur.slots);
        free(rc->shards[i].old.slots);
        pthread_mutex_destroy(&rc->shards[i].mu);
    }
    free(rc);
}

bool replay_add(struct replay_cache *rc, const uint8_t sig[CPX_ED25519_SIG_LEN], int64_t now_s)
{
    struct key k;
    memcpy(&k.a, sig, 8);
    memcpy(&k.b, sig + 8, 8);
    if (k.a == 0 && k.b == 0)
        k.b = 1;
    struct shard *sh = &rc->shards[sig[16] % NSHARD];
    bool fresh = false;
    pthread_mutex_lock(&sh->mu);
    if (sh->rotated_at == 0)
        sh->rotated_at = now_s;
    if (now_s - sh->rotated_at >= rc->period) {
        struct set empty;
        if (set_init(&empty, INITIAL_SLOTS)) {
            free(sh->old.slots);
            sh->old = sh->cur;
            sh->cur = empty;
            sh->rotated_at = now_s;
        }
    }
    if (!set_has(&sh->cur, k) && !set_has(&sh->old, k) &&
        (2 * (sh->cur.used + 1) <= sh->cur.size || set_grow(&sh->cur))) {
        set_put(&sh->cur, k);
        fresh = true;
    }
    pthread_mutex_unlock(&sh->mu);
    return fresh;
}
