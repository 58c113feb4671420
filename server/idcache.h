/*
 * A short-lived cache of identities for authentication, so that a client sending many signed
 * requests is not looked up in PostgreSQL for each one.
 *
 * Entries live at most ttl_ms, and this process forgets an identity the moment it changes one
 * (approval, rejection, key rotation). What a stale entry could let through is bounded: every
 * state-changing request reads the caller's key and status again inside its own transaction
 * (recheck_caller, and the sequencer's check of each batch), so a rotated-away key never signs a
 * change; only a read could be answered for up to ttl_ms after a rotation another cpxd made.
 */
#ifndef CPX_SERVER_IDCACHE_H
#define CPX_SERVER_IDCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/identity.h"

struct identity_cache;

/* A cache of `slots` entries (a power of two is best) kept for ttl_ms. NULL when out of memory. */
struct identity_cache *identity_cache_create(size_t slots, int64_t ttl_ms);

void identity_cache_free(struct identity_cache *c);

/*
 * Copies the entry for id into out when it is there and fresh. *gen gets the slot's generation
 * either way: pass it to identity_cache_put after reading the identity from the database.
 */
bool identity_cache_get(struct identity_cache *c, const char *id, struct identity *out,
                        uint64_t *gen);

/* Remembers idn (replacing whatever shared its slot), unless the slot was forgotten since the
 * identity_cache_get that returned gen: the row read may be older than that change. */
void identity_cache_put(struct identity_cache *c, const struct identity *idn, uint64_t gen);

/* Forgets id. */
void identity_cache_forget(struct identity_cache *c, const char *id);

#endif
