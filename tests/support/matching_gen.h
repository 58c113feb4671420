/*
 * matching_gen.h — seeded random command streams for the differential test and the fuzz seeds.
 *
 * A stream mixes bids (device and capacity, one to four regions, all time-in-force values,
 * constraints), asks (one to three precisions, windows, attributes), cancels, reduces,
 * replaces, explicit expiries and a few malformed commands, over a small id, owner and price
 * space so that trades, self-trades, constraint misses, gang thresholds and expiries are
 * frequent. The generator looks at the reference matcher to aim cancels, reduces and replaces
 * mostly at orders that are alive. Same seed, same stream.
 */
#ifndef CPX_TESTS_MATCHING_GEN_H
#define CPX_TESTS_MATCHING_GEN_H

#include <stdint.h>

#include "matching/matching.h"
#include "tests/support/matching_ref.h"

typedef struct mt_gen {
    uint64_t rng;            /* random state */
    unsigned regions;        /* regions of the engine */
    uint8_t precs[3];        /* precisions this stream uses */
    unsigned nprecs;         /* how many of them */
    unsigned owners;         /* owners 1..owners */
    unsigned constraint_pct; /* chance that an order carries constraints or attributes */
    unsigned invalid_pct;    /* chance that an add is malformed */
    uint64_t next_id;        /* next fresh id */
    int64_t now;             /* clock of the last command */
    int64_t base;            /* price around which everything is quoted */
} mt_gen;

/* Starts a stream for an engine with `regions` regions. The seed also picks the stream's
 * character (plain one-book streams, or the full compute market). */
void mt_gen_init(mt_gen *g, uint64_t seed, unsigned regions);

/* Produces the next command, looking at the reference for live orders. */
void mt_gen_next(mt_gen *g, const ref_engine *view, mx_command *out);

/* An engine configuration for a stream seed: regions 1..4, an STP policy, sometimes a small
 * max_orders. sink fields are left NULL. */
mx_config mt_gen_config(uint64_t seed);

#endif /* CPX_TESTS_MATCHING_GEN_H */
