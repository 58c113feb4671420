/*
 * matching_testkit.h — helpers shared by the matching tests, the fuzz target and the stream
 * generator: a seeded RNG, an event log sink, event/command printing and comparison, spec
 * builders, and the "pair" that drives the real engine and the reference matcher side by side
 * and says where they disagree.
 */
#ifndef CPX_TESTS_MATCHING_TESTKIT_H
#define CPX_TESTS_MATCHING_TESTKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "matching/matching.h"
#include "tests/support/matching_ref.h"

/* ---- random numbers (splitmix64: tiny, seedable, good enough for tests) --------------------- */

uint64_t mt_rand(uint64_t *state);
/* Uniform in [lo, hi] (inclusive; hi >= lo). */
int64_t mt_range(uint64_t *state, int64_t lo, int64_t hi);
/* True with probability percent/100. */
bool mt_chance(uint64_t *state, unsigned percent);

/* ---- event log ------------------------------------------------------------------------------ */

typedef struct mt_log {
    mx_event *ev; /* events in order */
    size_t n;     /* how many */
    size_t cap;   /* allocated */
} mt_log;

/* An mx_sink_fn appending to the mt_log in ctx (aborts if memory runs out: tests only). */
void mt_log_sink(void *ctx, const mx_event *ev);
void mt_log_clear(mt_log *log);
void mt_log_free(mt_log *log);
/* Index of the first event of `kind` at or after `from`, or -1. */
long mt_log_find(const mt_log *log, size_t from, mx_event_kind kind);
/* Number of events of `kind`. */
size_t mt_log_count(const mt_log *log, mx_event_kind kind);

/* ---- comparing and printing ----------------------------------------------------------------- */

bool mt_event_equal(const mx_event *a, const mx_event *b);
void mt_print_event(FILE *f, const mx_event *ev);
void mt_print_command(FILE *f, const mx_command *c);

/* ---- spec builders -------------------------------------------------------------------------- */

/* A GTC device bid for `devices` devices for 1 hour in one region, no constraints. */
mx_bid mt_bid(uint64_t id, uint64_t owner, unsigned precision, unsigned region, int64_t devices,
              int64_t limit);
/* A GTC ask in `region` with `devices` devices, priced at one precision. */
mx_ask mt_ask(uint64_t id, uint64_t owner, unsigned region, int64_t devices, unsigned precision,
              uint32_t tflops, int64_t price);
/* Adds a priced precision to an ask. */
void mt_ask_price(mx_ask *a, unsigned precision, uint32_t tflops, int64_t price);

/* ---- engine and reference side by side ------------------------------------------------------ */

typedef struct mt_pair {
    mx_engine *engine; /* the real engine (check build: invariants after every command) */
    ref_engine *ref;   /* the reference matcher */
    mt_log got;        /* events of the engine for the last command */
    mt_log want;       /* events of the reference for the last command */
    unsigned regions;  /* configured regions */
} mt_pair;

/* Creates both from cfg (sinks are set by the pair). Returns false when creation failed. */
bool mt_pair_init(mt_pair *p, const mx_config *cfg);
void mt_pair_free(mt_pair *p);

/*
 * Runs cmd on both and compares return values, event sequences, state hashes and resting
 * counts; with deep, also every book's depth, every resting order's remaining and priority, and
 * the explanation of one resting order (chosen by `pick`). Returns true when they agree;
 * otherwise writes what differs into why[0..n) and returns false.
 */
bool mt_pair_step(mt_pair *p, const mx_command *cmd, bool deep, uint64_t pick, char *why, size_t n);

/* Prints both event logs of the last step. */
void mt_pair_dump(const mt_pair *p, FILE *f);

#endif /* CPX_TESTS_MATCHING_TESTKIT_H */
