/*
 * The exchange's public ledger endpoints as a source (docs/ledger.md section 10), read with
 * unsigned GETs through the shared HTTPS client:
 *
 *   1. GET /v1/ledger/checkpoint: the latest checkpoint; its size N is the target of the run
 *      (404 checkpoint_not_found: the ledger is empty). With a saved state it is fed with the
 *      consistency proof GET /v1/ledger/consistency?first=<verified size>&second=N.
 *   2. GET /v1/ledger/checkpoints?after=..&limit=1000, paged: every older checkpoint the state
 *      has not passed.
 *   3. GET /v1/ledger/records?after=..&limit=1000, paged: records from the state's `checked` on
 *      up to seq N-1; each record's exact bytes (the decoded JSON string) and its leaf hash.
 *
 * What the exchange serves is fed to the auditor as served, so a repeated or reordered record is
 * reported by seq (seq_order, seq_gap) and a withheld one by checkpoint (checkpoint_beyond_log).
 * A malformed item is a finding (exchange_format); an answer that cannot be walked at all (not
 * JSON, no items, a `next` cursor that does not advance) stops the run with exit status 3.
 */
#include "clients/cpx-audit/source.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/common/client.h"
#include "ledger/codec.h"

#define PAGE_LIMIT   1000 /* items asked for per page */
#define TARGET_MAX   256  /* longest request target built here */
#define NO_CURSOR    UINT64_MAX
#define HTTP_OK_MIN  200
#define HTTP_OK_MAX  299
#define HTTP_MISSING 404

/* Talking to one exchange. */
struct exchange {
    struct run *r;     /* the run being fed */
    struct client cl;  /* HTTPS client (no key: every call is unsigned) */
    char *latest;      /* the latest checkpoint's note (malloc'd) */
    size_t latest_len; /* its length */
};

/* ---- answers ------------------------------------------------------------------------------- */

/* The error code of an answer ({"error":{"code":...}}), or "". */
static const char *error_code(const struct client_reply *reply)
{
    const json_t *err = json_object_get(reply->json, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    return code ? code : "";
}

/*
 * GETs target. Returns true when the exchange answered (any status), with reply->json parsed
 * (records may hold \u0000, which the client's parse refuses). Otherwise stops the run.
 */
static bool get(struct exchange *x, const char *target, struct client_reply *reply)
{
    if (!client_call(&x->cl, "GET", target, NULL, false, NULL, reply)) {
        run_stop(x->r, "%s", reply->error);
        client_reply_free(reply);
        return false;
    }
    if (reply->json == NULL && reply->body != NULL)
        reply->json = json_loadb(reply->body, reply->body_len, JSON_ALLOW_NUL, NULL);
    return true;
}

/* Stops the run unless the answer is 2xx with a JSON object. Returns whether it is. */
static bool want_object(struct exchange *x, const char *target, const struct client_reply *reply)
{
    if (reply->status < HTTP_OK_MIN || reply->status > HTTP_OK_MAX) {
        const json_t *err = json_object_get(reply->json, "error");
        const char *message = json_string_value(json_object_get(err, "message"));
        if (message == NULL)
            return run_stop(x->r, "the exchange answered HTTP %ld to GET %s", reply->status,
                            target);
        return run_stop(x->r, "the exchange answered HTTP %ld to GET %s: %s (%s)", reply->status,
                        target, message, error_code(reply));
    }
    if (!json_is_object(reply->json))
        return run_stop(x->r, "the exchange sent something that is not a JSON object for GET %s",
                        target);
    return true;
}

/*
 * A page's items and its `next` cursor (NO_CURSOR when null). Stops the run when the page has no
 * items array, or a `next` that is not null, not a cursor, or does not advance past `after`.
 */
static bool page_parts(struct exchange *x, const char *target, const json_t *page, uint64_t after,
                       const json_t **items, uint64_t *next)
{
    *items = json_object_get(page, "items");
    const json_t *cursor = json_object_get(page, "next");
    if (!json_is_array(*items))
        return run_stop(x->r, "the exchange sent a page without an items list for GET %s", target);
    if (json_is_null(cursor)) {
        *next = NO_CURSOR;
        return true;
    }
    if (!json_is_string(cursor) || !cpx_decimal_parse(json_string_value(cursor), next) ||
        *next == NO_CURSOR)
        return run_stop(x->r, "the exchange sent a page whose next is not a cursor for GET %s",
                        target);
    if (after != NO_CURSOR && *next <= after)
        return run_stop(x->r,
                        "the exchange sent a next cursor (%" PRIu64 ") that does not advance "
                        "past %" PRIu64 " for GET %s",
                        *next, after, target);
    return true;
}

/* Writes a paged target: path?limit=N[&after=A]. */
static void page_target(char *out, const char *path, uint64_t after)
{
    if (after == NO_CURSOR)
        snprintf(out, TARGET_MAX, "%s?limit=%d", path, PAGE_LIMIT);
    else
        snprintf(out, TARGET_MAX, "%s?after=%" PRIu64 "&limit=%d", path, after, PAGE_LIMIT);
}

/* Feeds one item of a page; sets *done when no more are wanted. False when the run stopped. */
typedef bool (*item_fn)(struct exchange *x, const json_t *item, bool *done);

/*
 * Walks path?after=..&limit=.. page by page from `after` (NO_CURSOR: from the start), handing each
 * item to feed, until feed is done, the log ends (next is null) or the cursor reaches `last`
 * (nothing wanted can follow). Returns false when the run stopped.
 */
static bool walk_pages(struct exchange *x, const char *path, uint64_t after, uint64_t last,
                       item_fn feed)
{
    bool done = false;
    while (!done) {
        char target[TARGET_MAX];
        page_target(target, path, after);
        struct client_reply reply;
        if (!get(x, target, &reply))
            return false;
        const json_t *items = NULL;
        uint64_t next = NO_CURSOR;
        bool ok = want_object(x, target, &reply) &&
                  page_parts(x, target, reply.json, after, &items, &next);
        for (size_t i = 0; ok && !done && i < json_array_size(items); i++)
            ok = feed(x, json_array_get(items, i), &done);
        client_reply_free(&reply);
        if (!ok)
            return false;
        done = done || next == NO_CURSOR || next >= last;
        after = next;
    }
    return true;
}

/* ---- 1. the latest checkpoint -------------------------------------------------------------- */

/* Keeps the latest checkpoint's note and sets the run's target to its size. */
static bool take_latest(struct exchange *x, const json_t *checkpoint)
{
    size_t len;
    uint64_t size;
    const char *note = member_string(checkpoint, "note", &len);
    if (note == NULL)
        return run_stop(x->r, "the exchange sent a latest checkpoint without a note");
    if (!run_note_size(x->r, note, len, &size) && !member_uint(checkpoint, "size", &size))
        return run_stop(x->r, "the exchange sent a latest checkpoint without a size");
    x->latest = malloc(len ? len : 1);
    if (x->latest == NULL)
        return run_stop(x->r, "out of memory");
    memcpy(x->latest, note, len);
    x->latest_len = len;
    run_set_target(x->r, size);
    return true;
}

/*
 * Fetches the latest checkpoint (take_latest). *empty is set when the exchange has none yet.
 * Returns false when the run stopped.
 */
static bool fetch_latest(struct exchange *x, bool *empty)
{
    static const char target[] = "/v1/ledger/checkpoint";
    struct client_reply reply;
    if (!get(x, target, &reply))
        return false;
    *empty =
        reply.status == HTTP_MISSING && strcmp(error_code(&reply), "checkpoint_not_found") == 0;
    bool ok = *empty || (want_object(x, target, &reply) && take_latest(x, reply.json));
    client_reply_free(&reply);
    return ok;
}

/* Fetches the consistency proof from the state's verified size to the latest checkpoint. */
static bool fetch_proof(struct exchange *x, struct cpx_consistency_proof *proof)
{
    char target[TARGET_MAX];
    uint64_t first = x->r->have_verified ? x->r->verified_size : 0;
    snprintf(target, sizeof target, "/v1/ledger/consistency?first=%" PRIu64 "&second=%" PRIu64,
             first, x->r->target);
    struct client_reply reply;
    if (!get(x, target, &reply))
        return false;
    bool ok = want_object(x, target, &reply);
    if (ok) {
        /* Numbers and base64 only: jansson's compact sorted form is the canonical one. */
        char *text = json_dumps(reply.json, JSON_COMPACT | JSON_SORT_KEYS);
        const char *why =
            text ? cpx_consistency_proof_parse(text, strlen(text), proof) : "out of memory";
        if (why != NULL)
            ok = run_stop(x->r, "the exchange sent a malformed consistency proof: %s", why);
        free(text);
    }
    client_reply_free(&reply);
    return ok;
}

/*
 * Feeds the latest checkpoint: plainly, or after a saved state with its consistency proof. A log
 * smaller than what an earlier run verified cannot be consistent with it.
 */
static bool feed_latest(struct exchange *x)
{
    struct run *r = x->r;
    if (!r->state_loaded)
        return run_checkpoint(r, x->latest, x->latest_len);
    if (r->target < r->from_size) {
        run_fail(r, r->target, 0, "consistency",
                 "the exchange's latest checkpoint has size %" PRIu64 ", below the %" PRIu64
                 " records an earlier run checked: the log shrank",
                 r->target, r->from_size);
        return true;
    }
    struct cpx_consistency_proof *proof = malloc(sizeof *proof);
    bool ok = proof != NULL ? fetch_proof(x, proof) : run_stop(r, "out of memory");
    if (ok)
        ok = run_consistency(r, x->latest, x->latest_len, proof);
    free(proof);
    return ok;
}

/* ---- 2. older checkpoints ------------------------------------------------------------------ */

/* Feeds one checkpoint item unless the latest or the state covers it. Sets *done past N. */
static bool feed_checkpoint_item(struct exchange *x, const json_t *item, bool *done)
{
    struct run *r = x->r;
    size_t len;
    const char *note = member_string(item, "note", &len);
    uint64_t size = 0;
    if (note == NULL) {
        member_uint(item, "size", &size);
        run_fail(r, size, 0, "exchange_format",
                 "the exchange sent a checkpoint (size %" PRIu64 ") without a note", size);
        return true;
    }
    if (!run_note_size(r, note, len, &size) && !member_uint(item, "size", &size))
        return run_checkpoint(r, note, len); /* unreadable: the auditor says how */
    if (size >= r->target) {
        *done = true; /* the latest is fed already; newer ones are for the next run */
        return true;
    }
    return !run_wants_checkpoint(r, size) || run_checkpoint(r, note, len);
}

static bool feed_checkpoints(struct exchange *x)
{
    struct run *r = x->r;
    uint64_t after = r->state_loaded && r->from_size > 0 ? r->from_size : NO_CURSOR;
    return walk_pages(x, "/v1/ledger/checkpoints", after, r->target, feed_checkpoint_item);
}

/* ---- 3. records ---------------------------------------------------------------------------- */

/* Feeds one record item, {"leaf_hash","record","seq"}; done once the records reach N. */
static bool feed_record_item(struct exchange *x, const json_t *item, bool *done)
{
    struct run *r = x->r;
    size_t len;
    const char *record = member_string(item, "record", &len);
    uint8_t leaf[CPX_HASH_LEN];
    bool have_leaf;
    uint64_t seq = run_records(r);
    member_uint(item, "seq", &seq);
    if (record == NULL) {
        run_fail(r, seq, 0, "exchange_format",
                 "the exchange sent record %" PRIu64 " as something other than a JSON string", seq);
        return true;
    }
    if (!member_leaf(item, leaf, &have_leaf))
        run_fail(r, seq, 0, "exchange_format",
                 "the exchange sent record %" PRIu64 " with a leaf_hash that is not base64 of "
                 "32 bytes",
                 seq);
    bool ok = run_record(r, record, len, have_leaf ? leaf : NULL);
    *done = run_records(r) >= r->target; /* records beyond N are for the next run */
    return ok;
}

/*
 * Feeds records from the state's `checked` on up to seq N-1. When the log ends (or skips) below
 * N, what is missing stays missing: the auditor reports it as checkpoint_beyond_log.
 */
static bool feed_records(struct exchange *x)
{
    struct run *r = x->r;
    uint64_t after = r->from_size > 0 ? r->from_size - 1 : NO_CURSOR;
    return run_records(r) >= r->target ||
           walk_pages(x, "/v1/ledger/records", after, r->target - 1, feed_record_item);
}

/* ---- the whole download -------------------------------------------------------------------- */

bool source_url(struct run *r)
{
    struct exchange x = { .r = r };
    bool ok = client_init(&x.cl, r->opt->url, r->opt->cacert, NULL);
    snprintf(r->source, sizeof r->source, "%s", x.cl.url);
    if (!ok)
        run_stop(r, "cannot set up the HTTPS client");
    bool empty = false;
    ok = ok && fetch_latest(&x, &empty);
    if (ok && empty) {
        run_set_target(r, 0);
        if (r->state_loaded && r->from_size > 0)
            run_fail(r, 0, 0, "consistency",
                     "the exchange has no checkpoint, but an earlier run verified %" PRIu64
                     " records",
                     r->from_size);
    } else if (ok) {
        ok = feed_latest(&x) && (r->target <= r->from_size || feed_checkpoints(&x)) &&
             feed_records(&x);
    }
    free(x.latest);
    client_free(&x.cl);
    return ok;
}
