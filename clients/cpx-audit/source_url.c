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
 *   4. GET /v1/audit/bills and GET /v1/audit/balances, paged by opaque cursors: the exchange's
 *      own books, held against the money the books re-derived from the records (ledger/books.h).
 *      A 404 means an exchange that serves no books yet: the comparison is skipped, with a
 *      notice. The latest checkpoint is read again before and after: when the ledger has grown
 *      past the records audited, only what never changes once recorded is compared (see
 *      cpx_books_compare_begin and _end). An opaque cursor cannot be seen to advance, so the walk
 *      is bounded otherwise: a cursor that comes round again stops it (pages A, B, A, ...), and
 *      so do more items than a ledger of the exchange's size can have (new cursors forever).
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
#define CURSOR_MAX   128 /* longest opaque cursor of the books' lists */
#define BOOKS_TARGET (TARGET_MAX + 3 * CURSOR_MAX)

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

/* ---- 4. the exchange's books --------------------------------------------------------------- */

/* The size of the exchange's latest checkpoint now (0 when it has none). */
static bool latest_size(struct exchange *x, uint64_t *size)
{
    static const char target[] = "/v1/ledger/checkpoint";
    struct client_reply reply;
    if (!get(x, target, &reply))
        return false;
    bool ok = true;
    *size = 0;
    if (!(reply.status == HTTP_MISSING &&
          strcmp(error_code(&reply), "checkpoint_not_found") == 0)) {
        size_t len;
        const char *note;
        ok = want_object(x, target, &reply);
        if (ok &&
            ((note = member_string(reply.json, "note", &len)) == NULL ||
             !run_note_size(x->r, note, len, size)) &&
            !member_uint(reply.json, "size", size))
            ok = run_stop(x->r, "the exchange sent a latest checkpoint without a size");
    }
    client_reply_free(&reply);
    return ok;
}

/* Percent-encodes an opaque cursor for a query (unreserved characters stay). */
static void escape_cursor(const char *cursor, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)cursor; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '.' || *c == '_' || *c == '~') {
            *out++ = (char)*c;
        } else {
            *out++ = '%';
            *out++ = hex[*c >> 4];
            *out++ = hex[*c & 15];
        }
    }
    *out = '\0';
}

/* Takes one item of a books list. */
typedef void (*books_item_fn)(struct exchange *x, const json_t *item);

/*
 * The most items a books list can hold when the exchange's ledger has `size` records: a bill is
 * a record, and an account is one of the kinds of an identity (each registered by a record) or of
 * the exchange. A page more, for a list read a moment after its checkpoint.
 */
static uint64_t books_items_max(uint64_t size)
{
    uint64_t accounts;
    if (__builtin_add_overflow(size, 1, &accounts) ||
        __builtin_mul_overflow(accounts, (uint64_t)CPX_BOOKS_KINDS, &accounts) ||
        __builtin_add_overflow(accounts, (uint64_t)PAGE_LIMIT, &accounts))
        return UINT64_MAX;
    return accounts;
}

/*
 * After a page took the list to `items` items: whether that many may follow from a ledger of
 * *size records. Beyond that, the size is read again (the ledger may have grown meanwhile);
 * when it has not grown enough, the run stops. False when it stopped.
 */
static bool items_fit(struct exchange *x, const char *target, uint64_t items, uint64_t *size)
{
    if (items <= books_items_max(*size))
        return true;
    uint64_t now;
    if (!latest_size(x, &now))
        return false;
    if (now > *size)
        *size = now;
    if (items <= books_items_max(*size))
        return true;
    return run_stop(x->r,
                    "the exchange's pages for GET %s list %" PRIu64 " items, more than its ledger "
                    "of %" PRIu64 " records can have: its next cursors do not end",
                    target, items, *size);
}

/*
 * Walks path?limit=N[&after=CURSOR] through its opaque `next` cursors, handing every item to feed;
 * `size` is the exchange's ledger size when the walk begins. *served is false when the first page
 * answers 404 (an exchange without books). Returns false when the run stopped: an answer that is
 * not a page, a cursor that is not a string, too long, repeated, coming round again, or that
 * follows an empty page, or more items than the ledger can have (items_fit).
 *
 * A cursor coming round again is found without keeping them all (Brent's cycle detection): the
 * cursor at the end of each lap is kept, laps doubling in length, and each new cursor is compared
 * with it; a cycle of pages is found within twice its length past where it begins.
 */
static bool walk_books(struct exchange *x, const char *path, books_item_fn feed, bool *served,
                       uint64_t size)
{
    char escaped[3 * CURSOR_MAX + 1] = "", last[CURSOR_MAX + 1] = "", lap[CURSOR_MAX + 1] = "";
    uint64_t items_seen = 0, steps = 0, lap_length = 1;
    *served = true;
    for (bool first = true;; first = false) {
        char target[BOOKS_TARGET];
        if (first)
            snprintf(target, sizeof target, "%s?limit=%d", path, PAGE_LIMIT);
        else
            snprintf(target, sizeof target, "%s?after=%s&limit=%d", path, escaped, PAGE_LIMIT);
        struct client_reply reply;
        if (!get(x, target, &reply))
            return false;
        if (first && reply.status == HTTP_MISSING) {
            *served = false;
            client_reply_free(&reply);
            return true;
        }
        const json_t *items = NULL, *next = NULL;
        bool ok = want_object(x, target, &reply);
        if (ok) {
            items = json_object_get(reply.json, "items");
            next = json_object_get(reply.json, "next");
            if (!json_is_array(items))
                ok = run_stop(x->r, "the exchange sent a page without an items list for GET %s",
                              target);
        }
        for (size_t i = 0; ok && i < json_array_size(items); i++)
            feed(x, json_array_get(items, i));
        items_seen += json_array_size(items);
        bool done = ok && json_is_null(next);
        if (ok && !done) {
            const char *cursor = json_string_value(next);
            if (cursor == NULL || *cursor == '\0' || strlen(cursor) > CURSOR_MAX ||
                strcmp(cursor, last) == 0 || json_array_size(items) == 0) {
                ok = run_stop(x->r,
                              "the exchange sent a next cursor for GET %s that is not one, or "
                              "does not advance",
                              target);
            } else if (strcmp(cursor, lap) == 0) {
                ok = run_stop(x->r,
                              "the exchange sent a next cursor for GET %s that came round "
                              "again: its pages loop",
                              target);
            } else {
                snprintf(last, sizeof last, "%s", cursor);
                escape_cursor(cursor, escaped);
                if (++steps == lap_length) {
                    snprintf(lap, sizeof lap, "%s", cursor);
                    lap_length *= 2;
                    steps = 0;
                }
            }
        }
        client_reply_free(&reply);
        if (!ok || done)
            return ok;
        if (!items_fit(x, target, items_seen, &size))
            return false;
    }
}

/* A string member without NUL bytes, or NULL. */
static const char *member_text(const json_t *obj, const char *key)
{
    size_t len;
    const char *s = member_string(obj, key, &len);
    return s != NULL && strlen(s) == len ? s : NULL;
}

/* An integer member (any sign). */
static bool member_int(const json_t *obj, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

/* {"id","agreement","amount_micro","commission_micro","status","ledger_seq"} */
static void feed_bill(struct exchange *x, const json_t *item)
{
    struct cpx_books_claimed_bill c = { 0 };
    c.id = member_text(item, "id");
    c.agreement = member_text(item, "agreement");
    c.status = member_text(item, "status");
    c.has_seq = member_uint(item, "ledger_seq", &c.ledger_seq);
    if (c.id == NULL || c.agreement == NULL || c.status == NULL ||
        !member_int(item, "amount_micro", &c.amount) ||
        !member_int(item, "commission_micro", &c.commission)) {
        uint64_t seq = c.has_seq ? c.ledger_seq : (x->r->target > 0 ? x->r->target - 1 : 0);
        run_fail(x->r, seq, 0, "exchange_format",
                 "the exchange's books list a bill (%.47s) without id, agreement, amount_micro, "
                 "commission_micro and status",
                 c.id ? c.id : "no id");
        return;
    }
    cpx_books_compare_bill(x->r->books, &c);
}

/* {"owner","kind","balance_micro"} */
static void feed_balance(struct exchange *x, const json_t *item)
{
    const char *owner = member_text(item, "owner"), *kind = member_text(item, "kind");
    int k = kind ? cpx_books_kind_from_name(kind) : -1;
    int64_t balance;
    if (owner == NULL || k < 0 || !member_int(item, "balance_micro", &balance)) {
        run_fail(x->r, x->r->target > 0 ? x->r->target - 1 : 0, 0, "exchange_format",
                 "the exchange's books list a balance (%.47s) without owner, a known kind and "
                 "balance_micro",
                 owner ? owner : "no owner");
        return;
    }
    cpx_books_compare_balance(x->r->books, owner, (enum cpx_books_kind)k, balance);
}

/* Holds the exchange's books against the books re-derived from the records fed. */
static bool compare_books(struct exchange *x)
{
    struct run *r = x->r;
    struct cpx_books *books = r->books;
    uint64_t before, after;
    if (!latest_size(x, &before))
        return false;
    bool moving = before != r->target, partial = cpx_books_partial(books);
    bool bills, balances = false;
    cpx_books_compare_begin(books, r->target, moving);
    if (!walk_books(x, "/v1/audit/bills", feed_bill, &bills, before))
        return false;
    if (!bills) {
        cpx_books_compare_end(books, false, false, false);
        snprintf(r->books_exchange, sizeof r->books_exchange,
                 "not served (GET /v1/audit/bills answered 404), not compared");
        if (!r->opt->quiet)
            fprintf(stderr, "cpx-audit: the exchange serves no books (GET /v1/audit/bills "
                            "answered 404); the comparison with them is skipped\n");
        return true;
    }
    if (!moving && !partial &&
        !walk_books(x, "/v1/audit/balances", feed_balance, &balances, before))
        return false;
    if (!latest_size(x, &after))
        return false;
    bool moved = after != before;
    cpx_books_compare_end(books, true, balances, moved);
    if (partial)
        snprintf(r->books_exchange, sizeof r->books_exchange,
                 "bills compared; balances not (the re-derivation covers this run's records "
                 "only)");
    else if (moving || moved)
        snprintf(r->books_exchange, sizeof r->books_exchange,
                 "bills' amounts compared; statuses and balances not (the exchange's ledger grew "
                 "from %" PRIu64 " to %" PRIu64 " records meanwhile: audit again to compare them)",
                 r->target, after);
    else if (!balances)
        snprintf(r->books_exchange, sizeof r->books_exchange,
                 "bills compared; balances not served (GET /v1/audit/balances answered 404)");
    else
        snprintf(r->books_exchange, sizeof r->books_exchange, "compared");
    return true;
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
    ok = ok && compare_books(&x);
    free(x.latest);
    client_free(&x.cl);
    return ok;
}
