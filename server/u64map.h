/*
 * A hash map from non-zero uint64 keys to pointers: open addressing with linear probing and
 * backward-shift deletion (no tombstones), kept at most half full. The sequencer's tables of live
 * orders, listings and accounts.
 */
#ifndef CPX_SERVER_U64MAP_H
#define CPX_SERVER_U64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct u64map {
    uint64_t *keys; /* 0 = empty slot */
    void **values;
    size_t cap;   /* slots, a power of two (0 before the first put) */
    size_t count; /* keys present */
};

/* The value of key, or NULL. */
void *u64map_get(const struct u64map *m, uint64_t key);

/* Sets key (non-zero) to value. Returns false when out of memory (the map is unchanged). */
bool u64map_put(struct u64map *m, uint64_t key, void *value);

/* Removes key; returns its value, or NULL when absent. */
void *u64map_del(struct u64map *m, uint64_t key);

/* Visits every (key, value), in no particular order; fn must not change the map. */
void u64map_each(const struct u64map *m, void (*fn)(void *ctx, uint64_t key, void *value),
                 void *ctx);

void u64map_free(struct u64map *m);

#endif
