/*
 * Where the ledger comes from: an export file (docs/ledger.md section 10) or the exchange's
 * public ledger endpoints. Each source feeds the run (run.h) -- checkpoints first, then records
 * from the state's `checked` on -- and returns false when it had to stop (run->error says why);
 * the caller then finishes the run either way.
 */
#ifndef CPX_AUDIT_SOURCE_H
#define CPX_AUDIT_SOURCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clients/cpx-audit/run.h"

/* Reads the export file run->opt->file ("-": standard input) line by line. */
bool source_file(struct run *r);

/* Downloads the ledger from run->opt->url (or CPX_URL, like cpx) with unsigned GETs. */
bool source_url(struct run *r);

/* The string member key of obj with its length (it may hold NUL bytes), or NULL. */
const char *member_string(const json_t *obj, const char *key, size_t *len);

/* The non-negative integer member key of obj; false when there is none. */
bool member_uint(const json_t *obj, const char *key, uint64_t *out);

/*
 * The leaf hash of an item: true with *have set when "leaf_hash" is base64 of 32 bytes or absent
 * (*have false); false when it is there but malformed.
 */
bool member_leaf(const json_t *item, uint8_t leaf[CPX_HASH_LEN], bool *have);

#endif
