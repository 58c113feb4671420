/*
 * matching_ref.h — a deliberately naive reference matcher for differential tests.
 *
 * It implements the rules of docs/matching.md with no data structure to speak of: resting
 * orders sit in one array in no particular order, and every decision (best counter-order,
 * expiries, depth, explain) is a brute-force scan over all of them. It is slow (O(n) per fill)
 * and written to be read against the rules, so that the real engine and this one can only agree
 * on every event of thousands of random streams if both follow the rules.
 *
 * It shares with the engine only the public types of matching/matching.h, mx_max_tflops() (a
 * table of constants) and the per-order hash functions (so the state hashes are comparable).
 */
#ifndef CPX_TESTS_MATCHING_REF_H
#define CPX_TESTS_MATCHING_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "matching/matching.h"

typedef struct ref_engine ref_engine;

/* Creates a reference engine from the same configuration the real one gets (alloc and the
 * check hooks are ignored). Returns NULL on a bad configuration or out of memory. */
ref_engine *ref_create(const mx_config *cfg);

/* Frees it; r may be NULL. */
void ref_free(ref_engine *r);

/* Runs one command, sending events to the configured sink. Returns MX_OK or the rejection
 * reason, as mx_apply does. */
mx_reason ref_apply(ref_engine *r, const mx_command *cmd);

/* The state hash, computed as the engine documents it. */
uint64_t ref_state_hash(const ref_engine *r);

/* Number of resting orders. */
size_t ref_resting(const ref_engine *r);

/* Looks up a resting order. Returns false when none has this id. */
bool ref_lookup(const ref_engine *r, uint64_t id, mx_order_info *out);

/* Id of the i-th resting order (0 <= i < ref_resting) in the reference's own order. */
uint64_t ref_resting_id(const ref_engine *r, size_t i);

/* Depth of one side of book (precision, region), as mx_depth. Returns levels written. */
size_t ref_depth(const ref_engine *r, unsigned precision, unsigned region, mx_side side,
                 mx_level_info *out, size_t max);

/* Explanation of a resting order, as mx_explain. */
mx_reason ref_explain(const ref_engine *r, uint64_t id, mx_explanation *out);

#endif /* CPX_TESTS_MATCHING_REF_H */
