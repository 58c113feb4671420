/*
 * The market API (docs/trading.md §4): listings, orders, jobs, agreements, accounts, and the
 * public market data.
 *
 * State-changing requests are validated here, on the HTTP threads (which also checked the
 * signature), and handed to the sequencer as commands; the sequencer answers them after the
 * batch that carries them commits. Reads come from PostgreSQL, or for the books from the
 * snapshot the sequencer publishes after each batch.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/canon.h"
#include "ledger/codec.h"
#include "server/db_identities.h"
#include "server/db_trading.h"
#include "server/handlers.h"
#include "server/http.h"
#include "server/market.h"
#include "server/money.h"
#include "server/records.h"
#include "server/sequencer.h"
#include "server/server.h"
#include "server/spec.h"
#include "server/txn.h"
#include "server/util.h"

#define DEPOSIT_MAX     (INT64_C(1000000000) * MONEY_MICRO) /* 10^9 CNY per deposit */
#define JOB_MAX         65536
#define JOB_QUOTA       1000 /* job descriptions one buyer may keep */
#define DEPTH_DEFAULT   10
#define INDEX_HOURS_MAX 720

static const char *const device_types[] = { "gpu", "npu", "dcu", "fpga", "asic", NULL };
static const char *const tifs[] = { "gtc", "gtd", "ioc", "fok", NULL };

/* ---- small helpers ------------------------------------------------------------------------- */

/* Is s 1..max characters, each a letter/digit of the classes allowed or one of `extra`? */
static bool word_ok(const char *s, size_t max, bool upper, const char *extra)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (upper && c >= 'A' && c <= 'Z') || (c != '\0' && strchr(extra, c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

/* A time field in whole seconds (SPEC_TIME gives microseconds); 0 when absent (TIME_ABSENT).
 * The engine takes 0 for "none": checks of a sent time test `us != TIME_ABSENT`, so the epoch
 * itself is judged as the time it is, never taken for "not sent". */
bool market_whole_seconds(struct request *req, const char *field, int64_t us, int64_t *out)
{
    if (us == TIME_ABSENT) {
        *out = 0;
        return true;
    }
    if (us % 1000000 != 0 || us < 0 || us / 1000000 >= (INT64_C(1) << 40)) {
        reply_error(req, E_INVALID_FIELD, field,
                    "%s must be an RFC 3339 time in whole seconds between 1970 and year 36812.",
                    field);
        return false;
    }
    *out = us / 1000000;
    return true;
}

/* Copies req->json without the members named (for parts parsed by hand). */
static json_t *body_without(struct request *req, const char *a, const char *b)
{
    json_t *o = json_is_object(req->json) ? json_copy(req->json) : json_object();
    if (o != NULL) {
        json_object_del(o, a);
        if (b != NULL)
            json_object_del(o, b);
    }
    return o;
}

static bool parse_into(struct request *req, json_t *obj, const struct spec *spec, void *dest,
                       const char *prefix)
{
    struct spec_error e;
    if (spec_parse(obj, spec, dest, &e))
        return true;
    char field[200];
    snprintf(field, sizeof field, "%s%s", prefix, e.field);
    reply_error(req, e.code, field, "%s", e.message);
    return false;
}

/* ---- regions ------------------------------------------------------------------------------- */

void h_regions(struct request *req)
{
    json_t *items = json_array();
    for (size_t i = 0; i < market_nregions; i++)
        json_array_append_new(items,
                              json_pack("{s:s, s:s, s:s, s:{s:i, s:i, s:i}}", "id",
                                        market_regions[i].id, "name_en", market_regions[i].name_en,
                                        "name_zh", market_regions[i].name_zh, "latency_ms",
                                        "same_city", 1, "same_region", 5, "cross_hub", 20));
    reply_json(req, 200, json_pack("{s:o}", "items", items));
}

/* ---- listings ------------------------------------------------------------------------------ */

struct listing_req {
    const char *vendor, *model, *interconnect, *endpoint, *endpoint_pin;
    int device_type, region, tif;
    int64_t devices, memory_gb, min_hours, max_hours, green;
    int64_t from_us, until_us, expires_us;
};

static const struct spec listing_spec[] = {
    SPEC_STR("vendor", struct listing_req, vendor, true, 1, 32),
    SPEC_STR("model", struct listing_req, model, true, 1, 64),
    SPEC_ENUM("device_type", struct listing_req, device_type, true, device_types),
    SPEC_INT("devices", struct listing_req, devices, true, 1, MX_MAX_DEVICES),
    SPEC_INT("memory_gb", struct listing_req, memory_gb, true, 0, 1048576),
    SPEC_STR("interconnect", struct listing_req, interconnect, false, 1, 32),
    SPEC_ENUM("region", struct listing_req, region, true, market_region_ids),
    SPEC_TIME("available_from", struct listing_req, from_us, false),
    SPEC_TIME("available_until", struct listing_req, until_us, false),
    SPEC_INT("min_hours", struct listing_req, min_hours, false, 0, MX_MAX_HOURS),
    SPEC_INT("max_hours", struct listing_req, max_hours, false, 0, MX_MAX_HOURS),
    SPEC_INT("green_permille", struct listing_req, green, false, 0, MX_MAX_GREEN),
    SPEC_STR("endpoint", struct listing_req, endpoint, true, 9, ENDPOINT_MAX),
    SPEC_STR("endpoint_pin", struct listing_req, endpoint_pin, false, 52, 52),
    SPEC_ENUM("time_in_force", struct listing_req, tif, false, tifs),
    SPEC_TIME("expires_at", struct listing_req, expires_us, false),
    SPEC_END,
};

struct price_req {
    int64_t tflops, price;
};

static const struct spec price_spec[] = {
    SPEC_INT("tflops", struct price_req, tflops, true, 1, 65536),
    SPEC_MONEY("price", struct price_req, price, true, 1, CPX_CANON_INT_MAX),
    SPEC_END,
};

/* Reads "precisions": {"bf16": {"tflops", "price"}, ...} into the ask and the terms. */
static bool parse_precisions(struct request *req, mx_ask *ask, json_t *terms)
{
    json_t *ps = json_object_get(req->json, "precisions");
    if (ps == NULL || json_is_null(ps)) {
        reply_error(req, E_MISSING_FIELD, "precisions",
                    "precisions is required: an object such as {\"bf16\":{\"tflops\":989,"
                    "\"price\":\"15.2\"}}.");
        return false;
    }
    if (!json_is_object(ps) || json_object_size(ps) == 0) {
        reply_error(req, E_INVALID_FIELD, "precisions",
                    "precisions must be an object with at least one precision.");
        return false;
    }
    json_t *out = json_object();
    json_object_set_new(terms, "precisions", out);
    const char *name;
    json_t *v;
    json_object_foreach(ps, name, v)
    {
        char field[64];
        snprintf(field, sizeof field, "precisions.%.40s", name);
        int p = market_precision_index(name);
        if (p < 0) {
            reply_error(req, E_INVALID_FIELD, field,
                        "%s is not a precision (fp64 fp32 tf32 bf16 fp16 fp8 int8 int4).", name);
            return false;
        }
        if (!json_is_object(v)) {
            reply_error(req, E_INVALID_FIELD, field,
                        "%s must be an object {\"tflops\":N,\"price\":\"CNY\"}.", field);
            return false;
        }
        struct price_req pr = { 0 };
        char prefix[72];
        snprintf(prefix, sizeof prefix, "%s.", field);
        if (!parse_into(req, v, price_spec, &pr, prefix))
            return false;
        if ((uint64_t)pr.tflops > mx_max_tflops((unsigned)p)) {
            snprintf(field, sizeof field, "precisions.%s.tflops", name);
            reply_error(req, E_OUT_OF_RANGE, field,
                        "%s devices are rated at most %u TFLOPS here; %" PRId64 " is beyond it.",
                        name, mx_max_tflops((unsigned)p), pr.tflops);
            return false;
        }
        ask->priced |= (uint8_t)(1u << p);
        ask->tflops[p] = (uint32_t)pr.tflops;
        ask->price[p] = pr.price;
        json_t *t = json_pack("{s:I}", "tflops", (json_int_t)pr.tflops);
        money_json_set(t, "price", pr.price);
        json_object_set_new(out, name, t);
    }
    return true;
}

void h_listing_create(struct request *req)
{
    if (!records_party_fits(req))
        return;
    struct listing_req r = {
        .tif = -1, .from_us = TIME_ABSENT, .until_us = TIME_ABSENT, .expires_us = TIME_ABSENT
    };
    json_t *rest = body_without(req, "precisions", NULL);
    bool ok = rest != NULL && parse_into(req, rest, listing_spec, &r, "");
    json_decref(rest);
    if (!ok)
        return;
    if (!word_ok(r.vendor, 32, false, "-")) {
        reply_error(req, E_INVALID_FIELD, "vendor",
                    "vendor must be 1 to 32 of a-z, 0-9 and '-', e.g. \"nvidia\".");
        return;
    }
    if (!word_ok(r.model, 64, true, "._-")) {
        reply_error(req, E_INVALID_FIELD, "model",
                    "model must be 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-', e.g. \"H100-SXM\".");
        return;
    }
    if (r.interconnect != NULL && !word_ok(r.interconnect, 32, true, "._-")) {
        reply_error(req, E_INVALID_FIELD, "interconnect",
                    "interconnect must be 1 to 32 of A-Z, a-z, 0-9, '.', '_' and '-'.");
        return;
    }
    /* A path after the host (the dispatcher signs the path and query it sends; docs/delivery.md
     * section 2), and no fragment, which no request carries. */
    const char *path = strchr(r.endpoint + 8, '/');
    if (strncmp(r.endpoint, "https://", 8) != 0 ||
        !word_ok(r.endpoint + 8, ENDPOINT_MAX, true, "-._~:/?[]@!$&'()*+,;=%") || path == NULL ||
        path == r.endpoint + 8 || memchr(r.endpoint + 8, '?', (size_t)(path - r.endpoint - 8))) {
        reply_error(req, E_INVALID_FIELD, "endpoint",
                    "endpoint must be an https://host[:port]/path URL of visible ASCII, without a "
                    "fragment (at most %d bytes).",
                    ENDPOINT_MAX);
        return;
    }
    /* the endpoint's public key pin, as curl takes it: sha256// and 44 base64 characters */
    uint8_t pin[32];
    if (r.endpoint_pin != NULL && (strncmp(r.endpoint_pin, "sha256//", 8) != 0 ||
                                   cpx_b64_decode(r.endpoint_pin + 8, 44, pin, sizeof pin) != 32)) {
        reply_error(req, E_INVALID_FIELD, "endpoint_pin",
                    "endpoint_pin must be sha256// and the base64 SHA-256 of the endpoint "
                    "certificate's public key.");
        return;
    }
    if (r.max_hours != 0 && r.max_hours < r.min_hours) {
        reply_error(req, E_OUT_OF_RANGE, "max_hours", "max_hours must not be below min_hours.");
        return;
    }
    struct seq_cmd *cmd = seq_cmd_new(SEQ_LISTING, req);
    json_t *terms = json_object();
    if (cmd == NULL || terms == NULL) {
        free(cmd);
        json_decref(terms);
        reply_error(req, E_INTERNAL, NULL, NULL);
        return;
    }
    mx_ask *a = &cmd->listing.ask;
    cmd->listing.terms = terms;
    if (!tx_idempotency_key(req, &cmd->idem_key, cmd->idem_hash))
        goto drop;
    int tif = r.tif < 0 ? MX_GTC : r.tif;
    if (tif == MX_IOC || tif == MX_FOK) {
        reply_error(req, E_INVALID_FIELD, "time_in_force",
                    "A listing is gtc (until cancelled or its window ends) or gtd.");
        goto drop;
    }
    if (!parse_precisions(req, a, terms) ||
        !market_whole_seconds(req, "available_from", r.from_us, &a->available_from) ||
        !market_whole_seconds(req, "available_until", r.until_us, &a->available_until) ||
        !market_whole_seconds(req, "expires_at", r.expires_us, &a->expiry))
        goto drop;
    int64_t now = now_us() / 1000000;
    if (r.until_us != TIME_ABSENT &&
        (a->available_until <= now || a->available_until <= a->available_from)) {
        reply_error(req, E_OUT_OF_RANGE, "available_until",
                    "available_until must be in the future and after available_from.");
        goto drop;
    }
    bool expires = r.expires_us != TIME_ABSENT;
    if ((tif == MX_GTD) != expires || (expires && a->expiry <= now)) {
        reply_error(req, E_INVALID_FIELD, "expires_at",
                    "expires_at is required with time_in_force gtd (and only then), in the "
                    "future.");
        goto drop;
    }
    a->devices = r.devices;
    a->memory_gb = (uint32_t)r.memory_gb;
    a->green_permille = (uint32_t)r.green;
    a->min_hours = (uint32_t)r.min_hours;
    a->max_hours = (uint32_t)r.max_hours;
    a->region = (uint8_t)r.region;
    a->tif = (uint8_t)tif;
    snprintf(cmd->listing.vendor, sizeof cmd->listing.vendor, "%s", r.vendor);
    snprintf(cmd->listing.model, sizeof cmd->listing.model, "%s/%s", r.vendor, r.model);
    snprintf(cmd->listing.region, sizeof cmd->listing.region, "%s", market_region_ids[r.region]);
    snprintf(cmd->listing.endpoint, sizeof cmd->listing.endpoint, "%s", r.endpoint);
    json_object_set_new(terms, "vendor", json_string(r.vendor));
    json_object_set_new(terms, "model", json_string(r.model));
    json_object_set_new(terms, "device_type", json_string(device_types[r.device_type]));
    json_object_set_new(terms, "memory_gb", json_integer(r.memory_gb));
    json_object_set_new(terms, "interconnect",
                        r.interconnect ? json_string(r.interconnect) : json_null());
    json_object_set_new(terms, "region", json_string(market_region_ids[r.region]));
    json_set_time(terms, "available_from", a->available_from);
    json_set_time(terms, "available_until", a->available_until);
    json_object_set_new(terms, "min_hours", json_integer(r.min_hours));
    json_object_set_new(terms, "max_hours", r.max_hours ? json_integer(r.max_hours) : json_null());
    json_object_set_new(terms, "green_permille", json_integer(r.green));
    json_object_set_new(terms, "endpoint", json_string(r.endpoint));
    if (r.endpoint_pin != NULL)
        json_object_set_new(terms, "endpoint_pin", json_string(r.endpoint_pin));
    json_object_set_new(terms, "time_in_force", json_string(tifs[tif]));
    json_set_time(terms, "expires_at", a->expiry);
    if ((cmd->listing.terms_text = json_dumps(terms, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
        reply_error(req, E_INTERNAL, NULL, NULL);
        goto drop;
    }
    sequencer_submit(req->srv->seq, cmd);
    return;
drop:
    json_decref(cmd->listing.terms);
    free(cmd->listing.terms_text);
    free(cmd);
}

/* ---- orders -------------------------------------------------------------------------------- */

struct order_req {
    const char *client_order_id, *job_sha256;
    int precision, tif;
    unsigned regions;
    int64_t devices, tflops, hours, limit;
    int64_t expires_us, start_earliest_us, start_latest_us;
    int64_t min_memory_gb, min_tflops, max_tflops, gang, min_green;
};

static const struct spec constraints_spec[] = {
    SPEC_INT("min_memory_gb", struct order_req, min_memory_gb, false, 0, 1048576),
    SPEC_INT("min_tflops", struct order_req, min_tflops, false, 0, 65536),
    SPEC_INT("max_tflops", struct order_req, max_tflops, false, 1, 65536),
    SPEC_INT("min_devices_per_provider", struct order_req, gang, false, 0, UINT32_MAX),
    SPEC_INT("min_green_permille", struct order_req, min_green, false, 0, MX_MAX_GREEN),
    SPEC_END,
};

static const struct spec order_spec[] = {
    SPEC_STR("client_order_id", struct order_req, client_order_id, true, 1, CLIENT_ORDER_ID_MAX),
    SPEC_ENUM("precision", struct order_req, precision, true, market_precisions),
    SPEC_INT("devices", struct order_req, devices, false, 1, MX_MAX_DEVICES),
    SPEC_INT("tflops", struct order_req, tflops, false, 1, MX_MAX_CAPACITY),
    SPEC_INT("hours", struct order_req, hours, true, 1, MX_MAX_HOURS),
    SPEC_SET("regions", struct order_req, regions, true, market_region_ids),
    SPEC_MONEY("limit_price", struct order_req, limit, true, 1, CPX_CANON_INT_MAX),
    SPEC_ENUM("time_in_force", struct order_req, tif, false, tifs),
    SPEC_TIME("expires_at", struct order_req, expires_us, false),
    SPEC_TIME("start_earliest", struct order_req, start_earliest_us, false),
    SPEC_TIME("start_latest", struct order_req, start_latest_us, false),
    SPEC_OBJ("constraints", false, constraints_spec),
    SPEC_STR("job_sha256", struct order_req, job_sha256, false, 64, 64),
    SPEC_END,
};

/* Reads constraints.models: 1..8 of "vendor" or "vendor/model". */
static bool parse_models(struct request *req, struct seq_order *o, json_t *terms_constraints)
{
    json_t *c = json_object_get(req->json, "constraints");
    json_t *models = json_is_object(c) ? json_object_get(c, "models") : NULL;
    if (models == NULL)
        return true;
    if (!json_is_array(models) || json_array_size(models) == 0 ||
        json_array_size(models) > MX_MAX_ALLOW) {
        reply_error(req, E_INVALID_FIELD, "constraints.models",
                    "constraints.models must be a list of 1 to %d \"vendor\" or "
                    "\"vendor/model\" names.",
                    MX_MAX_ALLOW);
        return false;
    }
    json_t *out = json_array();
    json_object_set_new(terms_constraints, "models", out);
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m)
    {
        const char *s = json_string_value(m);
        const char *slash = s ? strchr(s, '/') : NULL;
        char vendor[40] = "";
        if (s != NULL && (slash ? (size_t)(slash - s) : strlen(s)) < sizeof vendor)
            snprintf(vendor, sizeof vendor, "%.*s", (int)(slash ? slash - s : (long)strlen(s)), s);
        if (s == NULL || !word_ok(vendor, 32, false, "-") ||
            (slash && !word_ok(slash + 1, 64, true, "._-"))) {
            reply_error(req, E_INVALID_FIELD, "constraints.models",
                        "Each model is \"vendor\" or \"vendor/model\", e.g. \"nvidia/H100-SXM\".");
            return false;
        }
        snprintf(o->models[i], sizeof o->models[i], "%s", s);
        json_array_append_new(out, json_string(s));
    }
    o->bid.n_allow = (uint8_t)json_array_size(models);
    return true;
}

void h_order_create(struct request *req)
{
    if (!records_party_fits(req))
        return;
    struct order_req r = { .precision = -1,
                           .tif = -1,
                           .expires_us = TIME_ABSENT,
                           .start_earliest_us = TIME_ABSENT,
                           .start_latest_us = TIME_ABSENT };
    json_t *rest = body_without(req, "constraints", NULL);
    json_t *cons = json_object_get(req->json, "constraints");
    if (rest != NULL && cons != NULL) {
        json_t *c = json_is_object(cons) ? json_copy(cons) : json_incref(cons);
        if (json_is_object(c))
            json_object_del(c, "models");
        json_object_set_new(rest, "constraints", c);
    }
    bool ok = rest != NULL && parse_into(req, rest, order_spec, &r, "");
    json_decref(rest);
    if (!ok)
        return;
    if (!word_ok(r.client_order_id, CLIENT_ORDER_ID_MAX, true, "._:-")) {
        reply_error(req, E_INVALID_FIELD, "client_order_id",
                    "client_order_id must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', ':' and '-'.");
        return;
    }
    if ((r.devices != 0) == (r.tflops != 0)) {
        reply_error(req, r.devices ? E_INVALID_FIELD : E_MISSING_FIELD, "devices",
                    "Send exactly one of devices (a device count) and tflops (capacity).");
        return;
    }
    uint8_t job[32];
    if (r.job_sha256 != NULL && !cpx_hex_decode(r.job_sha256, 64, job, 32)) {
        reply_error(req, E_INVALID_FIELD, "job_sha256", "job_sha256 must be 64 hex digits.");
        return;
    }
    if (r.max_tflops != 0 && r.max_tflops < r.min_tflops) {
        reply_error(req, E_OUT_OF_RANGE, "constraints.max_tflops",
                    "constraints.max_tflops must not be below constraints.min_tflops.");
        return;
    }
    unsigned maxT = mx_max_tflops((unsigned)r.precision);
    if ((uint64_t)r.max_tflops > maxT || (uint64_t)r.min_tflops > maxT) {
        reply_error(req, E_OUT_OF_RANGE,
                    r.max_tflops > maxT ? "constraints.max_tflops" : "constraints.min_tflops",
                    "%s devices are rated at most %u TFLOPS here.", market_precisions[r.precision],
                    maxT);
        return;
    }
    /* The hold: limit x worst-case capacity x hours / 1000, plus the largest commission; and the
     * engine's own bound, limit x capacity x hours within int64 (docs/matching.md, "Overflow").
     * Products that do not fit are refused here, never wrapped. */
    int64_t per = r.max_tflops ? r.max_tflops : (int64_t)maxT;
    __int128 engine_cap = r.devices ? (__int128)r.devices * per : (__int128)r.tflops + maxT;
    __int128 product = (__int128)r.limit * engine_cap * r.hours;
    int64_t maker, taker, hold = 0;
    sequencer_fees(req->srv->seq, &maker, &taker);
    /* The engine also ranks bids by limit x an ask's TFLOPS, so limit x maxT(p) must fit too. */
    if ((__int128)r.limit * maxT > INT64_MAX)
        product = (__int128)INT64_MAX + 1;
    if (product > INT64_MAX ||
        !trading_hold(r.limit, r.devices != 0, r.devices ? r.devices : r.tflops, per, r.hours,
                      maker > taker ? maker : taker, &hold) ||
        hold > CPX_CANON_INT_MAX) {
        reply_error(req, E_OUT_OF_RANGE, "limit_price",
                    "limit_price x capacity x hours is too large for the exchange's 64-bit "
                    "money (the largest hold is %lld micro-CNY).",
                    CPX_CANON_INT_MAX);
        return;
    }
    struct seq_cmd *cmd = seq_cmd_new(SEQ_ORDER, req);
    json_t *terms = json_object(), *tc = json_object();
    if (cmd == NULL || terms == NULL || tc == NULL) {
        free(cmd);
        json_decref(terms);
        json_decref(tc);
        reply_error(req, E_INTERNAL, NULL, NULL);
        return;
    }
    struct seq_order *o = &cmd->order;
    o->terms = terms;
    json_object_set_new(terms, "constraints", tc);
    mx_bid *b = &o->bid;
    int tif = r.tif < 0 ? MX_GTC : r.tif;
    if (!parse_models(req, o, tc) ||
        !market_whole_seconds(req, "expires_at", r.expires_us, &b->expiry) ||
        !market_whole_seconds(req, "start_earliest", r.start_earliest_us, &b->start_earliest) ||
        !market_whole_seconds(req, "start_latest", r.start_latest_us, &b->start_latest))
        goto drop;
    int64_t now = now_us() / 1000000;
    bool expires = r.expires_us != TIME_ABSENT;
    if ((tif == MX_GTD) != expires || (expires && b->expiry <= now)) {
        reply_error(req, E_INVALID_FIELD, "expires_at",
                    "expires_at is required with time_in_force gtd (and only then), in the "
                    "future.");
        goto drop;
    }
    if (r.start_latest_us != TIME_ABSENT &&
        (b->start_latest < now || b->start_latest < b->start_earliest)) {
        reply_error(req, E_OUT_OF_RANGE, "start_latest",
                    "start_latest must be in the future and not before start_earliest.");
        goto drop;
    }
    if (r.job_sha256 != NULL) {
        struct db_conn *c = db_acquire(req->srv->db);
        enum db_status st = c ? db_job_exists(c, req->caller.id, job) : DB_UNAVAILABLE;
        if (c != NULL)
            db_release(req->srv->db, c);
        if (st == DB_NO_ROWS)
            reply_error(req, E_JOB_NOT_FOUND, "job_sha256", NULL);
        else if (st != DB_OK)
            reply_db_error(req, st);
        if (st != DB_OK)
            goto drop;
    }
    b->quantity = r.devices ? r.devices : r.tflops;
    b->qty_kind = r.devices ? MX_QTY_DEVICES : MX_QTY_TFLOPS;
    b->limit = r.limit;
    b->regions = r.regions;
    b->hours = (uint32_t)r.hours;
    b->min_memory_gb = (uint32_t)r.min_memory_gb;
    b->min_tflops = (uint32_t)r.min_tflops;
    b->max_tflops = (uint32_t)r.max_tflops;
    b->min_devices_per_provider = (uint32_t)r.gang;
    b->min_green_permille = (uint32_t)r.min_green;
    b->precision = (uint8_t)r.precision;
    b->tif = (uint8_t)tif;
    o->hold = hold;
    o->hold_bps = maker > taker ? maker : taker;
    snprintf(o->client_order_id, sizeof o->client_order_id, "%s", r.client_order_id);
    cpx_sha256(req->body ? req->body : "", req->body_len, o->body_sha256);

    json_object_set_new(terms, "precision", json_string(market_precisions[r.precision]));
    json_object_set_new(terms, r.devices ? "devices" : "tflops", json_integer(b->quantity));
    json_object_set_new(terms, "hours", json_integer(r.hours));
    json_t *regions = json_array();
    for (size_t i = 0; i < market_nregions; i++)
        if (r.regions & (1u << i))
            json_array_append_new(regions, json_string(market_region_ids[i]));
    json_object_set_new(terms, "regions", regions);
    money_json_set(terms, "limit_price", r.limit);
    json_object_set_new(terms, "time_in_force", json_string(tifs[tif]));
    json_set_time(terms, "expires_at", b->expiry);
    json_set_time(terms, "start_earliest", b->start_earliest);
    json_set_time(terms, "start_latest", b->start_latest);
    json_object_set_new(terms, "job_sha256",
                        r.job_sha256 ? json_string(r.job_sha256) : json_null());
    json_object_set_new(tc, "min_memory_gb", json_integer(r.min_memory_gb));
    json_object_set_new(tc, "min_tflops", json_integer(r.min_tflops));
    json_object_set_new(tc, "max_tflops", r.max_tflops ? json_integer(r.max_tflops) : json_null());
    json_object_set_new(tc, "min_devices_per_provider", json_integer(r.gang));
    json_object_set_new(tc, "min_green_permille", json_integer(r.min_green));
    if (json_object_get(tc, "models") == NULL)
        json_object_set_new(tc, "models", json_array());
    if ((o->terms_text = json_dumps(terms, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
        reply_error(req, E_INTERNAL, NULL, NULL);
        goto drop;
    }
    sequencer_submit(req->srv->seq, cmd);
    return;
drop:
    json_decref(cmd->order.terms);
    free(cmd->order.terms_text);
    free(cmd);
}

/* ---- cancels ------------------------------------------------------------------------------- */

struct owner_check {
    uint64_t id;
    bool listing;
    char owner[CPX_ID_MAX];
};

static enum db_status owner_fn(struct db_conn *c, void *arg)
{
    struct owner_check *k = arg;
    enum db_status st;
    if (k->listing) {
        struct listing_row l;
        st = db_listing_get(c, k->id, &l);
        if (st == DB_OK) {
            snprintf(k->owner, sizeof k->owner, "%s", l.v.provider);
            listing_row_free(&l);
        }
    } else {
        struct order_row o;
        st = db_order_get(c, k->id, &o);
        if (st == DB_OK) {
            snprintf(k->owner, sizeof k->owner, "%s", o.v.buyer);
            order_row_free(&o);
        }
    }
    return st;
}

static void cancel(struct request *req, bool listing)
{
    if (!records_party_fits(req))
        return;
    struct owner_check k = { .listing = listing };
    k.id = market_id_parse(req->params[0], listing ? "lst_" : "ord_");
    enum err missing = listing ? E_LISTING_NOT_FOUND : E_ORDER_NOT_FOUND;
    enum db_status st = k.id ? db_run(req->srv->db, owner_fn, &k) : DB_NO_ROWS;
    if (st == DB_NO_ROWS || (st == DB_OK && strcmp(k.owner, req->caller.id) != 0)) {
        reply_error(req, missing, NULL, NULL);
        return;
    }
    if (st != DB_OK) {
        reply_db_error(req, st);
        return;
    }
    struct seq_cmd *cmd = seq_cmd_new(SEQ_CANCEL, req);
    if (cmd == NULL) {
        reply_error(req, E_INTERNAL, NULL, NULL);
        return;
    }
    cmd->cancel.id = k.id;
    cmd->cancel.listing = listing;
    sequencer_submit(req->srv->seq, cmd);
}

void h_listing_cancel(struct request *req)
{
    cancel(req, true);
}

void h_order_cancel(struct request *req)
{
    cancel(req, false);
}

/* ---- reads of own orders and listings ------------------------------------------------------ */

bool market_may_read_all(const struct request *req)
{
    return (req->caller.roles & (ROLE_REGULATOR | ROLE_OPERATOR)) != 0;
}

struct show_ctx {
    uint64_t id;
    bool listing;
    json_t *out;
    const char *caller;
    bool all;
};

static enum db_status show_fn(struct db_conn *c, void *arg)
{
    struct show_ctx *k = arg;
    enum db_status st;
    if (k->listing) {
        struct listing_row l;
        st = db_listing_get(c, k->id, &l);
        if (st == DB_OK && (k->all || strcmp(l.v.provider, k->caller) == 0))
            k->out = listing_json(&l.v);
        if (st == DB_OK)
            listing_row_free(&l);
    } else {
        struct order_row o;
        st = db_order_get(c, k->id, &o);
        if (st == DB_OK && (k->all || strcmp(o.v.buyer, k->caller) == 0))
            k->out = order_json(&o.v);
        if (st == DB_OK)
            order_row_free(&o);
    }
    return st;
}

static void show(struct request *req, bool listing)
{
    struct show_ctx k = { .listing = listing,
                          .caller = req->caller.id,
                          .all = market_may_read_all(req) };
    k.id = market_id_parse(req->params[0], listing ? "lst_" : "ord_");
    enum db_status st = k.id ? db_run(req->srv->db, show_fn, &k) : DB_NO_ROWS;
    if (st == DB_OK && k.out != NULL)
        reply_json(req, 200, k.out);
    else if (st == DB_OK || st == DB_NO_ROWS)
        reply_error(req, listing ? E_LISTING_NOT_FOUND : E_ORDER_NOT_FOUND, NULL, NULL);
    else
        reply_db_error(req, st);
}

void h_listing_show(struct request *req)
{
    show(req, true);
}

void h_order_show(struct request *req)
{
    show(req, false);
}

struct list_ctx {
    bool listing;
    const char *owner, *status;
    uint64_t after;
    int limit;
    json_t *items;
    uint64_t last;
};

static enum db_status list_fn(struct db_conn *c, void *arg)
{
    struct list_ctx *k = arg;
    PGresult *r;
    enum db_status st = k->listing ? db_listing_list(c, k->owner, k->status, k->after, k->limit, &r)
                                   : db_order_list(c, k->owner, k->status, k->after, k->limit, &r);
    if (st != DB_OK)
        return st;
    json_array_clear(k->items);
    for (int i = 0; i < PQntuples(r); i++) {
        if (k->listing) {
            struct listing_row l;
            if (!db_listing_from_row(r, i, &l)) {
                st = DB_HARD;
                break;
            }
            json_array_append_new(k->items, listing_json(&l.v));
            k->last = l.v.id;
            listing_row_free(&l);
        } else {
            struct order_row o;
            if (!db_order_from_row(r, i, &o)) {
                st = DB_HARD;
                break;
            }
            json_array_append_new(k->items, order_json(&o.v));
            k->last = o.v.id;
            order_row_free(&o);
        }
    }
    PQclear(r);
    return st;
}

/* Reads ?limit&after (after: an id of the listed kind) and ?status=open|closed. */
bool market_list_params(struct request *req, const char *prefix, int *limit, uint64_t *after,
                        const char **status)
{
    const char *cursor;
    if (!request_page(req, limit, &cursor))
        return false;
    *after = 0;
    if (*cursor != '\0' && (*after = market_id_parse(cursor, prefix)) == 0) {
        reply_error(req, E_INVALID_QUERY, "after", "after must be an id from a previous page.");
        return false;
    }
    if (status == NULL)
        return true;
    *status = request_query(req, "status");
    if (*status != NULL && strcmp(*status, "open") != 0 && strcmp(*status, "closed") != 0) {
        reply_error(req, E_INVALID_QUERY, "status", "status must be open or closed.");
        return false;
    }
    return true;
}

void market_reply_page(struct request *req, json_t *items, int limit, const char *prefix,
                       uint64_t last)
{
    char next[MARKET_ID_MAX];
    market_id_format(next, prefix, last);
    bool more = (int)json_array_size(items) == limit && last != 0;
    reply_json(
        req, 200,
        json_pack("{s:o, s:o}", "items", items, "next", more ? json_string(next) : json_null()));
}

static void list(struct request *req, bool listing)
{
    const char *prefix = listing ? "lst_" : "ord_";
    struct list_ctx k = { .listing = listing, .owner = req->caller.id };
    if (!market_list_params(req, prefix, &k.limit, &k.after, &k.status))
        return;
    k.items = json_array();
    enum db_status st = db_run(req->srv->db, list_fn, &k);
    if (st != DB_OK) {
        json_decref(k.items);
        reply_db_error(req, st);
        return;
    }
    market_reply_page(req, k.items, k.limit, prefix, k.last);
}

void h_listing_list(struct request *req)
{
    list(req, true);
}

void h_order_list(struct request *req)
{
    list(req, false);
}

/* ---- jobs ---------------------------------------------------------------------------------- */

struct job_ctx {
    const char *buyer, *description;
    uint8_t hash[32];
};

static enum db_status job_fn(struct db_conn *c, void *arg)
{
    struct job_ctx *j = arg;
    return db_job_put(c, j->buyer, j->hash, j->description, JOB_QUOTA);
}

void h_job_create(struct request *req)
{
    json_t *d = json_object_get(req->json, "description");
    const char *key;
    json_t *v;
    json_object_foreach(req->json, key, v)
    {
        if (strcmp(key, "description") != 0) {
            reply_error(req, E_UNKNOWN_FIELD, key, "The body is {\"description\":\"...\"} only.");
            return;
        }
    }
    if (!json_is_string(d)) {
        reply_error(req, d && !json_is_null(d) ? E_INVALID_FIELD : E_MISSING_FIELD, "description",
                    "The body is {\"description\":\"...\"}, a string of at most %d bytes.",
                    JOB_MAX);
        return;
    }
    struct job_ctx j = { .buyer = req->caller.id, .description = json_string_value(d) };
    size_t n = json_string_length(d);
    if (n > JOB_MAX || strlen(j.description) != n) {
        reply_error(req, E_OUT_OF_RANGE, "description",
                    "description must be at most %d bytes of text without NUL.", JOB_MAX);
        return;
    }
    cpx_sha256(j.description, n, j.hash);
    enum db_status st = db_run(req->srv->db, job_fn, &j);
    if (st == DB_NO_ROWS) {
        reply_error(req, E_JOB_QUOTA, NULL,
                    "You keep %d job descriptions, the most a buyer may; orders reference them "
                    "by hash, so reuse one.",
                    JOB_QUOTA);
        return;
    }
    if (st != DB_OK) {
        reply_db_error(req, st);
        return;
    }
    char hex[65];
    cpx_hex_encode(j.hash, 32, hex);
    reply_json(req, 201, json_pack("{s:s, s:I}", "job_sha256", hex, "bytes", (json_int_t)n));
}

/* ---- agreements ---------------------------------------------------------------------------- */

struct agr_ctx {
    uint64_t id, after;
    int limit;
    const char *party; /* NULL: all */
    json_t *out;
    uint64_t last;
};

static enum db_status agreement_fn(struct db_conn *c, void *arg)
{
    struct agr_ctx *k = arg;
    PGresult *r;
    enum db_status st = db_agreement_get(c, k->id, &r);
    if (st != DB_OK)
        return st;
    if (k->party == NULL || strcmp(PQgetvalue(r, 0, 3), k->party) == 0 ||
        strcmp(PQgetvalue(r, 0, 4), k->party) == 0)
        k->out = db_agreement_json(r, 0, true);
    PQclear(r);
    return DB_OK;
}

void h_agreement_show(struct request *req)
{
    struct agr_ctx k = { .party = market_may_read_all(req) ? NULL : req->caller.id };
    k.id = market_id_parse(req->params[0], "agr_");
    enum db_status st = k.id ? db_run(req->srv->db, agreement_fn, &k) : DB_NO_ROWS;
    if (st == DB_OK && k.out != NULL)
        reply_json(req, 200, k.out);
    else if (st == DB_OK || st == DB_NO_ROWS)
        reply_error(req, E_AGREEMENT_NOT_FOUND, NULL, NULL);
    else
        reply_db_error(req, st);
}

static enum db_status agreements_fn(struct db_conn *c, void *arg)
{
    struct agr_ctx *k = arg;
    PGresult *r;
    enum db_status st = db_agreement_list(c, k->party, k->after, k->limit, &r);
    if (st != DB_OK)
        return st;
    json_array_clear(k->out);
    for (int i = 0; i < PQntuples(r); i++) {
        json_array_append_new(k->out, db_agreement_json(r, i, true));
        k->last = (uint64_t)db_get_i64(r, i, 0);
    }
    PQclear(r);
    return DB_OK;
}

void h_agreement_list(struct request *req)
{
    struct agr_ctx k = { .party = market_may_read_all(req) ? NULL : req->caller.id };
    if (!market_list_params(req, "agr_", &k.limit, &k.after, NULL))
        return;
    k.out = json_array();
    enum db_status st = db_run(req->srv->db, agreements_fn, &k);
    if (st != DB_OK) {
        json_decref(k.out);
        reply_db_error(req, st);
        return;
    }
    market_reply_page(req, k.out, k.limit, "agr_", k.last);
}

/* ---- accounts ------------------------------------------------------------------------------ */

struct deposit_req {
    int64_t amount;
};

static const struct spec deposit_spec[] = {
    SPEC_MONEY("amount", struct deposit_req, amount, true, 1, DEPOSIT_MAX),
    SPEC_END,
};

struct identity_ctx {
    const char *id;
    struct identity idn;
};

static enum db_status identity_fn(struct db_conn *c, void *arg)
{
    struct identity_ctx *k = arg;
    return db_identity_get(c, k->id, &k->idn);
}

void h_deposit(struct request *req)
{
    if (!records_party_fits(req))
        return;
    struct deposit_req r = { 0 };
    if (!request_parse(req, deposit_spec, &r))
        return;
    struct identity_ctx k = { .id = req->params[0] };
    enum db_status st = db_run(req->srv->db, identity_fn, &k);
    if (st == DB_NO_ROWS) {
        reply_error(req, E_IDENTITY_NOT_FOUND, NULL, "No identity has the id %s.", k.id);
        return;
    }
    if (st != DB_OK) {
        reply_db_error(req, st);
        return;
    }
    if (k.idn.status != IDENTITY_APPROVED) {
        reply_error(req, E_INVALID_STATE, NULL,
                    "Identity %s is %s; only approved identities "
                    "hold money.",
                    k.id, identity_status_names[k.idn.status]);
        return;
    }
    struct seq_cmd *cmd = seq_cmd_new(SEQ_DEPOSIT, req);
    if (cmd == NULL) {
        reply_error(req, E_INTERNAL, NULL, NULL);
        return;
    }
    if (!tx_idempotency_key(req, &cmd->idem_key, cmd->idem_hash)) {
        free(cmd);
        return;
    }
    snprintf(cmd->deposit.account, sizeof cmd->deposit.account, "%s", k.id);
    cmd->deposit.amount = r.amount;
    sequencer_submit(req->srv->seq, cmd);
}

struct account_ctx {
    const char *owner;
    int64_t bal[ACC_NKINDS];
};

static enum db_status account_fn(struct db_conn *c, void *arg)
{
    struct account_ctx *k = arg;
    return db_account_get(c, k->owner, k->bal);
}

static void show_account(struct request *req, const char *owner)
{
    struct account_ctx k = { .owner = owner };
    enum db_status st = db_run(req->srv->db, account_fn, &k);
    if (st != DB_OK) {
        reply_db_error(req, st);
        return;
    }
    reply_json(req, 200, account_json(owner, k.bal));
}

void h_account_me(struct request *req)
{
    show_account(req, req->caller.id);
}

void h_account_show(struct request *req)
{
    const char *id = req->params[0];
    if (strcmp(id, req->caller.id) != 0 && !market_may_read_all(req)) {
        reply_error(req, E_FORBIDDEN_ROLE, NULL,
                    "Only regulators and operators read other identities' accounts.");
        return;
    }
    struct identity_ctx k = { .id = id };
    enum db_status st = db_run(req->srv->db, identity_fn, &k);
    if (st == DB_NO_ROWS)
        reply_error(req, E_IDENTITY_NOT_FOUND, NULL, "No identity has the id %s.", id);
    else if (st != DB_OK)
        reply_db_error(req, st);
    else
        show_account(req, id);
}

/* ---- public market data -------------------------------------------------------------------- */

static json_t *level_json(const mx_level_info *l)
{
    json_t *o = json_object();
    money_json_set(o, "price", l->price);
    json_object_set_new(o, "devices", json_integer((json_int_t)l->devices));
    json_object_set_new(o, "tflops", json_integer((json_int_t)l->tflops));
    json_object_set_new(o, "orders", json_integer(l->orders));
    return o;
}

static json_t *best_json(struct request *req, unsigned p, unsigned r, mx_side side)
{
    mx_level_info l;
    return market_snapshot_read(&req->srv->snapshot, p, r, side, &l, 1) ? level_json(&l)
                                                                        : json_null();
}

struct stats_ctx {
    PGresult *r;
};

static enum db_status stats_fn(struct db_conn *c, void *arg)
{
    struct stats_ctx *k = arg;
    return db_market_stats(c, &k->r);
}

void h_markets(struct request *req)
{
    struct stats_ctx k = { 0 };
    enum db_status st = db_run(req->srv->db, stats_fn, &k);
    if (st != DB_OK) {
        reply_db_error(req, st);
        return;
    }
    json_t *items = json_array();
    for (unsigned p = 0; p < MX_NPREC; p++)
        for (unsigned r = 0; r < market_nregions; r++) {
            json_t *m = json_pack("{s:s, s:s}", "precision", market_precisions[p], "region",
                                  market_regions[r].id);
            json_object_set_new(m, "best_bid", best_json(req, p, r, MX_BID));
            json_object_set_new(m, "best_ask", best_json(req, p, r, MX_ASK));
            int row = 0;
            while (row < PQntuples(k.r) &&
                   (strcmp(PQgetvalue(k.r, row, 0), market_precisions[p]) != 0 ||
                    strcmp(PQgetvalue(k.r, row, 1), market_regions[r].id) != 0))
                row++;
            bool traded = row < PQntuples(k.r);
            long long tflops_hours = traded ? strtoll(PQgetvalue(k.r, row, 5), NULL, 10) : 0;
            if (traded)
                money_json_set(m, "last_price", db_get_i64(k.r, row, 2));
            else
                money_json_null(m, "last_price");
            json_object_set_new(m, "volume_24h",
                                json_pack("{s:I, s:I, s:I, s:I}", "agreements",
                                          (json_int_t)(traded ? db_get_i64(k.r, row, 3) : 0),
                                          "devices",
                                          (json_int_t)(traded ? db_get_i64(k.r, row, 4) : 0),
                                          "tflops_hours", (json_int_t)tflops_hours, "pflops_hours",
                                          (json_int_t)(tflops_hours / 1000)));
            json_array_append_new(items, m);
        }
    PQclear(k.r);
    reply_json(req, 200, json_pack("{s:o}", "items", items));
}

/* The {precision} and {region} of the path, or a 404 answered. */
static bool market_of(struct request *req, int *p, int *r, bool with_region)
{
    *p = market_precision_index(req->params[0]);
    *r = with_region ? market_region_index(req->params[1]) : 0;
    if (*p < 0 || *r < 0) {
        reply_error(req, E_MARKET_NOT_FOUND, NULL,
                    "No market %s%s%s: precisions are fp64 fp32 tf32 bf16 fp16 fp8 int8 int4, "
                    "regions as GET /v1/regions lists.",
                    req->params[0], with_region ? "/" : "", with_region ? req->params[1] : "");
        return false;
    }
    return true;
}

void h_book(struct request *req)
{
    int p, r;
    if (!market_of(req, &p, &r, true))
        return;
    uint64_t depth = DEPTH_DEFAULT;
    if (!request_query_u64(req, "depth", &depth))
        return;
    if (depth < 1 || depth > MARKET_DEPTH_MAX) {
        reply_error(req, E_INVALID_QUERY, "depth", "depth must be 1 to %d.", MARKET_DEPTH_MAX);
        return;
    }
    json_t *o =
        json_pack("{s:s, s:s}", "precision", market_precisions[p], "region", market_regions[r].id);
    mx_level_info levels[MARKET_DEPTH_MAX];
    for (int side = 0; side < 2; side++) {
        size_t n = market_snapshot_read(&req->srv->snapshot, (unsigned)p, (unsigned)r,
                                        (mx_side)side, levels, depth);
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, level_json(&levels[i]));
        json_object_set_new(o, side == MX_BID ? "bids" : "asks", arr);
    }
    reply_json(req, 200, o);
}

struct trades_ctx {
    const char *precision, *region;
    uint64_t before;
    int limit;
    json_t *items;
    uint64_t last;
};

static enum db_status trades_fn(struct db_conn *c, void *arg)
{
    struct trades_ctx *k = arg;
    PGresult *r;
    enum db_status st = db_trade_list(c, k->precision, k->region, k->before, k->limit, &r);
    if (st != DB_OK)
        return st;
    json_array_clear(k->items);
    for (int i = 0; i < PQntuples(r); i++) {
        json_array_append_new(k->items, db_agreement_json(r, i, false));
        k->last = (uint64_t)db_get_i64(r, i, 0);
    }
    PQclear(r);
    return DB_OK;
}

void h_trades(struct request *req)
{
    struct trades_ctx k = { 0 };
    if (!market_list_params(req, "agr_", &k.limit, &k.before, NULL))
        return;
    k.precision = request_query(req, "precision");
    k.region = request_query(req, "region");
    if ((k.precision && market_precision_index(k.precision) < 0) ||
        (k.region && market_region_index(k.region) < 0)) {
        reply_error(req, E_INVALID_QUERY,
                    k.precision && market_precision_index(k.precision) < 0 ? "precision" : "region",
                    "Not a precision or region of the exchange (see GET /v1/regions).");
        return;
    }
    k.items = json_array();
    enum db_status st = db_run(req->srv->db, trades_fn, &k);
    if (st != DB_OK) {
        json_decref(k.items);
        reply_db_error(req, st);
        return;
    }
    market_reply_page(req, k.items, k.limit, "agr_", k.last);
}

struct index_ctx {
    const char *precision;
    int hours;
    PGresult *r;
};

static enum db_status index_fn(struct db_conn *c, void *arg)
{
    struct index_ctx *k = arg;
    return db_price_index(c, k->precision, k->hours, &k->r);
}

void h_price_index(struct request *req)
{
    int p, r;
    if (!market_of(req, &p, &r, false))
        return;
    uint64_t hours = 24;
    if (!request_query_u64(req, "hours", &hours))
        return;
    if (hours < 1 || hours > INDEX_HOURS_MAX) {
        reply_error(req, E_INVALID_QUERY, "hours", "hours must be 1 to %d.", INDEX_HOURS_MAX);
        return;
    }
    struct index_ctx k = { .precision = market_precisions[p], .hours = (int)hours };
    enum db_status st = db_run(req->srv->db, index_fn, &k);
    if (st != DB_OK) {
        reply_db_error(req, st);
        return;
    }
    /* Σ price×w / Σ w, floored: w (TFLOPS-hours) sums fit 128 bits; the quotient is a price. */
    unsigned __int128 num = 0, den = 0;
    for (const char *s = PQgetvalue(k.r, 0, 0); *s >= '0' && *s <= '9'; s++)
        num = num * 10 + (unsigned)(*s - '0');
    for (const char *s = PQgetvalue(k.r, 0, 1); *s >= '0' && *s <= '9'; s++)
        den = den * 10 + (unsigned)(*s - '0');
    json_t *o =
        json_pack("{s:s, s:i, s:I, s:I, s:I}", "precision", market_precisions[p], "hours",
                  (int)hours, "tflops_hours", (json_int_t)den, "pflops_hours",
                  (json_int_t)(den / 1000), "agreements", (json_int_t)db_get_i64(k.r, 0, 2));
    if (den == 0)
        money_json_null(o, "price");
    else
        money_json_set(o, "price", (int64_t)(num / den));
    PQclear(k.r);
    reply_json(req, 200, o);
}

void h_fees(struct request *req)
{
    int64_t maker, taker;
    sequencer_fees(req->srv->seq, &maker, &taker);
    json_t *body =
        json_pack("{s:I, s:I}", "maker_bps", (json_int_t)maker, "taker_bps", (json_int_t)taker);
    money_json_set(body, "minimum", req->srv->cfg->fee_min_micro); /* per bill */
    reply_json(req, 200, body);
}
