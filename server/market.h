/*
 * The market's fixed vocabulary and its public picture (docs/trading.md):
 *   - precisions and regions, by API name and engine index;
 *   - the owner number the engine knows an identity by;
 *   - the book snapshot: the sequencer publishes the books' best levels after each batch that
 *     changed them and committed; readers (market data handlers, on HTTP threads) copy from it
 *     under a lock, so a read never touches the engine, never waits for a batch and never shows
 *     an uncommitted order.
 */
#ifndef CPX_SERVER_MARKET_H
#define CPX_SERVER_MARKET_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "matching/matching.h"

/* Lower-case precision names in engine order, NULL-terminated: "fp64" ... "int4". */
extern const char *const market_precisions[];

struct market_region {
    const char *id;      /* API id, e.g. "yangtze" */
    const char *name_en; /* English name */
    const char *name_zh; /* Chinese name (UTF-8) */
};

/* The regions, in engine order (index = engine region id). */
extern const struct market_region market_regions[];
extern const size_t market_nregions;

/* Region ids as a NULL-terminated list (for spec tables). */
extern const char *const market_region_ids[];

/* Engine index of a precision or region name, or -1. */
int market_precision_index(const char *name);
int market_region_index(const char *id);

/* The engine's owner number for an identity id: the first 8 bytes of SHA-256(id), never 0.
 * The server never maps it back: it keeps each order's owner id itself. */
uint64_t market_owner_number(const char *identity_id);

/* Formats a listing, order or agreement id: "lst_000000000042". */
#define MARKET_ID_MAX 24
void market_id_format(char out[MARKET_ID_MAX], const char *prefix, uint64_t n);

/* Parses an id with the prefix; returns 0 when it is not one. */
uint64_t market_id_parse(const char *s, const char *prefix);

/* ---- the published books ------------------------------------------------------------------ */

#define MARKET_DEPTH_MAX 100 /* levels per book side kept in the snapshot */

struct market_book_side {
    uint32_t n;                             /* levels used */
    mx_level_info levels[MARKET_DEPTH_MAX]; /* best first */
};

struct market_snapshot {
    pthread_rwlock_t lock;
    struct market_book_side side[MX_NPREC][MX_MAX_REGIONS][2]; /* [precision][region][MX_BID/ASK] */
};

void market_snapshot_init(struct market_snapshot *s);
void market_snapshot_free(struct market_snapshot *s);

/* Copies the engine's books into the snapshot (the sequencer, after a commit). */
void market_snapshot_publish(struct market_snapshot *s, const mx_engine *e);

/* Copies up to max levels of one book side out of the snapshot; returns how many. */
size_t market_snapshot_read(struct market_snapshot *s, unsigned precision, unsigned region,
                            mx_side side, mx_level_info *out, size_t max);

#endif
