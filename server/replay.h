/*
 * The in-memory replay cache: remembers the signature of every authenticated request for at least
 * `period` seconds, so a captured request cannot be sent again while its timestamp is still
 * inside the clock window. (State-changing requests are also recorded in PostgreSQL inside their
 * transaction, which survives restarts: see request_signatures in schema/0001.)
 */
#ifndef CPX_SERVER_REPLAY_H
#define CPX_SERVER_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "ledger/crypto.h"

struct replay_cache;

/* Creates a cache that remembers entries for at least period_s seconds. NULL when out of memory. */
struct replay_cache *replay_create(int64_t period_s);

void replay_free(struct replay_cache *rc);

/*
 * Records sig as seen at now_s. Returns true when it was new, false when it was seen within the
 * period (a replay) or memory ran out (fail closed).
 */
bool replay_add(struct replay_cache *rc, const uint8_t sig[CPX_ED25519_SIG_LEN], int64_t now_s);

#endif
