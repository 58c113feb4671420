/*
 * The market commands of cpx (docs/trading.md): providers list capacity and delist it, buyers
 * order and cancel, operators deposit money, everyone reads balances, agreements, the books,
 * trades and the price index. Each command builds its request from its flags -- money passed
 * through as the decimal CNY strings the exchange parses, so its validation is the only one --
 * and prints the answer: the exchange's JSON with --json, otherwise short lines and aligned
 * tables with money as the exchange wrote it. Commands that create something (list-capacity,
 * order) print its id alone on stdout, as `cpx register` does, and the rest on stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clients/cpx/cpx.h"
#include "ledger/keyfile.h"

/* ---- building requests --------------------------------------------------------------------- */

/* Is every argument UTF-8 text, as the strings of a JSON body must be? Says which is not. */
static bool args_are_text(const struct cli_args *a)
{
    int nrepeats = a->nrepeats < CLI_MAX_REPEATS ? a->nrepeats : CLI_MAX_REPEATS;
    for (int i = 0; i < CLI_MAX_FLAGS + CLI_MAX_ARGS + nrepeats; i++) {
        const char *v = i < CLI_MAX_FLAGS ? a->values[i]
                        : i < CLI_MAX_FLAGS + CLI_MAX_ARGS
                            ? a->args[i - CLI_MAX_FLAGS]
                            : a->repeat_value[i - CLI_MAX_FLAGS - CLI_MAX_ARGS];
        json_t *text = v != NULL ? json_string(v) : NULL;
        if (v != NULL && text == NULL) {
            fprintf(stderr, "\"%s\" is not UTF-8 text\n", v);
            return false;
        }
        json_decref(text);
    }
    return true;
}

/* Parses a whole number given for --flag; says why not on stderr. */
static bool parse_int(const char *flag, const char *v, json_int_t *out)
{
    const char *digits = v[0] == '-' ? v + 1 : v;
    size_t n = strlen(digits);
    errno = 0;
    long long x = n > 0 && strspn(digits, "0123456789") == n ? strtoll(v, NULL, 10) : 0;
    if (n == 0 || strspn(digits, "0123456789") != n || errno != 0) {
        fprintf(stderr, "--%s takes a whole number, not \"%s\"\n", flag, v);
        return false;
    }
    *out = (json_int_t)x;
    return true;
}

/* Sets o[key] to the whole number given for --flag, when it is given. */
static bool put_int(json_t *o, const char *key, const struct cli_flag *flags,
                    const struct cli_args *a, const char *flag)
{
    const char *v = cli_get(flags, a, flag);
    json_int_t x;
    if (v == NULL)
        return true;
    if (!parse_int(flag, v, &x))
        return false;
    json_object_set_new(o, key, json_integer(x));
    return true;
}

/*
 * Sets o[key] to the time given for --flag, when it is given: an RFC 3339 time is passed on as it
 * is; "+N" with a unit s, m, h or d (e.g. +2h, +30d) means that long from now, in UTC seconds.
 */
static bool put_time(json_t *o, const char *key, const struct cli_flag *flags,
                     const struct cli_args *a, const char *flag)
{
    const char *v = cli_get(flags, a, flag);
    if (v == NULL)
        return true;
    if (v[0] != '+') {
        json_object_set_new(o, key, json_string(v));
        return true;
    }
    size_t n = strspn(v + 1, "0123456789");
    const char *unit = v + 1 + n;
    long long mult = strcmp(unit, "s") == 0   ? 1
                     : strcmp(unit, "m") == 0 ? 60
                     : strcmp(unit, "h") == 0 ? 3600
                     : strcmp(unit, "d") == 0 ? 86400
                                              : 0;
    if (n == 0 || n > 7 || mult == 0) {
        fprintf(stderr,
                "--%s takes an RFC 3339 time (2026-11-29T08:00:00Z) or +N with a unit "
                "s, m, h or d (+2h), not \"%s\"\n",
                flag, v);
        return false;
    }
    time_t t = time(NULL) + (time_t)(strtoll(v + 1, NULL, 10) * mult);
    struct tm tm;
    char text[32];
    gmtime_r(&t, &tm);
    strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(o, key, json_string(text));
    return true;
}

/* Sets o[key] to the string given for --flag, when it is given. */
static void put_str(json_t *o, const char *key, const struct cli_flag *flags,
                    const struct cli_args *a, const char *flag)
{
    const char *v = cli_get(flags, a, flag);
    if (v != NULL)
        json_object_set_new(o, key, json_string(v));
}

/* "a,b,c" as a JSON array of strings (empty items kept: the exchange says what is wrong). */
static json_t *split_list(const char *s)
{
    json_t *list = json_array();
    for (const char *p = s;;) {
        size_t n = strcspn(p, ",");
        json_array_append_new(list, json_stringn(p, n));
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    return list;
}

/* A fresh random word for ids the client makes up: prefix, UTC time and 32 random bits. */
static void make_key(const char *prefix, char *out, size_t cap)
{
    uint32_t r;
    randombytes_buf(&r, sizeof r);
    time_t t = time(NULL);
    struct tm tm;
    char when[20];
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y%m%dT%H%M%S", &tm);
    snprintf(out, cap, "%s-%s-%08" PRIx32, prefix, when, r);
}

/* The key that makes a request safe to repeat: the one given with --flag, or a fresh one (into
 * made, 64 bytes), printed with how to repeat the request with it. */
static const char *repeat_key(const struct cli_flag *flags, const struct cli_args *a,
                              const char *flag, const char *prefix, const char *label,
                              const char *what, char *made)
{
    const char *key = cli_get(flags, a, flag);
    if (key != NULL)
        return key;
    make_key(prefix, made, 64);
    fprintf(stderr, "%s %s (to retry this %s safely, repeat the command with --%s %s)\n", label,
            made, what, flag, made);
    return made;
}

/* ---- printing answers (str_of, line, the table and show are in helpers.c) ------------------- */

static json_int_t int_of(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* "s" unless n is 1: for "%d hour%s". */
static const char *s_unless_one(json_int_t n)
{
    return n == 1 ? "" : "s";
}

/* A list of strings joined with sep, or "none". */
static const char *joined(const json_t *list, const char *sep, char *buf, size_t cap)
{
    size_t i, n = 0;
    json_t *e;
    buf[0] = '\0';
    json_array_foreach((json_t *)list, i, e)
    {
        const char *s = json_string_value(e);
        n += snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", i ? sep : "", s ? s : "?");
    }
    if (buf[0] == '\0')
        snprintf(buf, cap, "none");
    return buf;
}

/* ---- listings ------------------------------------------------------------------------------ */

const struct cli_flag list_capacity_flags[] = {
    { "vendor", true, "maker of the devices: nvidia, huawei, hygon, ... (lower case)" },
    { "model", true, "device model, e.g. H100-SXM, Ascend-910B" },
    { "type", true, "gpu, npu, dcu, fpga or asic" },
    { "devices", true, "how many devices" },
    { "precision", true,
      "PRECISION:TFLOPS:PRICE per device and CNY per PFLOPS-hour, e.g. bf16:989:15.2 "
      "(repeat for each precision offered)" },
    { "memory-gb", true, "memory per device, GB" },
    { "region", true, "region id (cpx regions lists them)" },
    { "endpoint", true, "https:// URL where jobs are delivered" },
    { "interconnect", true, "e.g. nvlink, hccs, pcie" },
    { "from", true, "available from TIME (RFC 3339, or +N[smhd] from now)" },
    { "until", true, "available until TIME" },
    { "min-hours", true, "shortest rental accepted, hours" },
    { "max-hours", true, "longest rental accepted, hours" },
    { "green-permille", true, "share of green power, per mille (0-1000)" },
    { "expires", true, "leave the book at TIME (good till date)" },
    { NULL, false, NULL },
};

/* Adds "bf16:989:15.2" to precisions as {"bf16":{"tflops":989,"price":"15.2"}}. */
static bool add_precision(json_t *precisions, const char *spec)
{
    const char *c1 = strchr(spec, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    char name[32], tflops[32];
    json_int_t t;
    if (c1 == NULL || c2 == NULL || c1 == spec || c1 - spec >= (ptrdiff_t)sizeof name ||
        c2 - c1 - 1 >= (ptrdiff_t)sizeof tflops) {
        fprintf(stderr,
                "--precision takes PRECISION:TFLOPS:PRICE, e.g. bf16:989:15.2, not \"%s\"\n", spec);
        return false;
    }
    snprintf(name, sizeof name, "%.*s", (int)(c1 - spec), spec);
    snprintf(tflops, sizeof tflops, "%.*s", (int)(c2 - c1 - 1), c1 + 1);
    if (!parse_int("precision (TFLOPS)", tflops, &t))
        return false;
    if (json_object_get(precisions, name) != NULL) {
        fprintf(stderr, "--precision %s is given twice\n", name);
        return false;
    }
    json_object_set_new(precisions, name, json_pack("{s:I, s:s}", "tflops", t, "price", c2 + 1));
    return true;
}

static void print_listing_line(FILE *out, const json_t *l)
{
    fprintf(out,
            "status %s, %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT " device%s remaining\n",
            str_of(l, "status"), int_of(l, "remaining_devices"), int_of(l, "devices"),
            s_unless_one(int_of(l, "devices")));
}

static void print_listing(const json_t *l)
{
    FILE *out = stdout;
    line(out, "id", "%s", str_of(l, "id"));
    line(out, "status", "%s", str_of(l, "status"));
    line(out, "devices", "%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT " remaining",
         int_of(l, "remaining_devices"), int_of(l, "devices"));
    line(out, "model", "%s %s %s, %" JSON_INTEGER_FORMAT " GB%s%s", str_of(l, "vendor"),
         str_of(l, "model"), str_of(l, "device_type"), int_of(l, "memory_gb"),
         json_is_string(json_object_get(l, "interconnect")) ? ", " : "",
         json_is_string(json_object_get(l, "interconnect")) ? str_of(l, "interconnect") : "");
    line(out, "region", "%s", str_of(l, "region"));
    const char *p;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(l, "precisions"), p, v)
    {
        line(out, p, "%" JSON_INTEGER_FORMAT " TFLOPS at %s CNY per PFLOPS-hour",
             int_of(v, "tflops"), str_of(v, "price"));
    }
    line(out, "provider", "%s", str_of(l, "provider"));
    line(out, "endpoint", "%s", str_of(l, "endpoint"));
    line(out, "created_at", "%s", str_of(l, "created_at"));
}

int cmd_list_capacity(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    static const char *const required[] = { "vendor",    "model",     "type",   "devices",
                                            "precision", "memory-gb", "region", "endpoint" };
    bool missing = a->nargs != 0 || !args_are_text(a);
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        missing = missing || cli_get(flags, a, required[i]) == NULL;
    if (missing) {
        fprintf(stderr, "usage: cpx list-capacity --vendor V --model M --type gpu --devices N "
                        "--precision P:TFLOPS:PRICE --memory-gb N --region R --endpoint URL "
                        "[options] (cpx help list-capacity)\n");
        return 2;
    }
    json_t *body = json_object();
    put_str(body, "vendor", flags, a, "vendor");
    put_str(body, "model", flags, a, "model");
    put_str(body, "device_type", flags, a, "type");
    put_str(body, "region", flags, a, "region");
    put_str(body, "endpoint", flags, a, "endpoint");
    put_str(body, "interconnect", flags, a, "interconnect");
    const char *specs[CLI_MAX_REPEATS];
    int nspecs = cli_get_all(flags, a, "precision", specs, CLI_MAX_REPEATS);
    json_t *precisions = json_object();
    json_object_set_new(body, "precisions", precisions);
    bool good = nspecs > 0;
    for (int i = 0; good && i < nspecs; i++) {
        /* each --precision may also hold several, comma-separated */
        json_t *parts = split_list(specs[i]);
        size_t k;
        json_t *part;
        json_array_foreach(parts, k, part)
        {
            if (good)
                good = add_precision(precisions, json_string_value(part));
        }
        json_decref(parts);
    }
    if (nspecs < 0)
        fprintf(stderr, "too many options\n");
    good = good && put_int(body, "devices", flags, a, "devices") &&
           put_int(body, "memory_gb", flags, a, "memory-gb") &&
           put_int(body, "min_hours", flags, a, "min-hours") &&
           put_int(body, "max_hours", flags, a, "max-hours") &&
           put_int(body, "green_permille", flags, a, "green-permille") &&
           put_time(body, "available_from", flags, a, "from") &&
           put_time(body, "available_until", flags, a, "until") &&
           put_time(body, "expires_at", flags, a, "expires");
    if (!good) {
        json_decref(body);
        return 2;
    }
    if (json_object_get(body, "expires_at") != NULL)
        json_object_set_new(body, "time_in_force", json_string("gtd"));
    struct client_reply r;
    int rc;
    bool ok = send_request(c, "POST", "/v1/listings", body, true, NULL, &r);
    if (to_print(c, ok, &r, &rc)) {
        printf("%s\n", str_of(r.json, "id"));
        fflush(stdout);
        print_listing_line(stderr, r.json);
    }
    client_reply_free(&r);
    return rc;
}

/* DELETE collection/ID for `cpx delist` and `cpx cancel`, printing what is left. */
static int delete_one(struct ctx *c, const struct cli_args *a, const char *usage,
                      const char *collection, void (*print)(const json_t *))
{
    if (a->nargs != 1 || !word_ok(a->args[0])) {
        fprintf(stderr, "usage: %s\n", usage);
        return 2;
    }
    char target[128];
    snprintf(target, sizeof target, "%s/%s", collection, a->args[0]);
    return show(c, "DELETE", target, NULL, true, NULL, print);
}

int cmd_delist(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    (void)flags;
    return delete_one(c, a, "cpx delist LISTING_ID", "/v1/listings", print_listing);
}

const struct cli_flag mine_flags[] = {
    { "status", true, "open or closed" },
    { "limit", true, "items per page (1-1000, default 100)" },
    { "after", true, "continue after this cursor" },
    { NULL, false, NULL },
};

static void print_listings(const json_t *page)
{
    struct table t = { .ncols = 7 };
    table_add(&t, "ID", "STATUS", "REGION", "MODEL", "DEVICES", "LEFT", "PRICES (CNY/PFLOPS-h)");
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(page, "items"), i, l)
    {
        char model[160], devices[24], left[24], prices[512];
        size_t n = 0;
        const char *p;
        json_t *v;
        snprintf(model, sizeof model, "%s/%s", str_of(l, "vendor"), str_of(l, "model"));
        prices[0] = '\0';
        json_object_foreach(json_object_get(l, "precisions"), p, v)
        {
            n += snprintf(prices + n, n < sizeof prices ? sizeof prices - n : 0, "%s%s %s",
                          n ? ", " : "", p, str_of(v, "price"));
        }
        table_add(&t, str_of(l, "id"), str_of(l, "status"), str_of(l, "region"), model,
                  text_of(l, "devices", devices, sizeof devices),
                  text_of(l, "remaining_devices", left, sizeof left), prices);
    }
    table_print(&t, "(none)");
    print_next(page);
}

/* `cpx orders` and `cpx listings`: one object by id, or a page of the caller's own. */
static int list_or_show(struct ctx *c, const char *what, const char *path,
                        const struct cli_flag *flags, const struct cli_args *a,
                        void (*print_one)(const json_t *), void (*print_page)(const json_t *))
{
    char target[512];
    if (a->nargs > 1 || (a->nargs == 1 && !word_ok(a->args[0]))) {
        fprintf(stderr, "usage: cpx %s [ID] [--status open|closed] [--limit N] [--after C]\n",
                what);
        return 2;
    }
    if (a->nargs == 1) {
        snprintf(target, sizeof target, "%s/%s", path, a->args[0]);
        return show(c, "GET", target, NULL, true, NULL, print_one);
    }
    snprintf(target, sizeof target, "%s", path);
    add_query_escaped(target, sizeof target, "status", cli_get(flags, a, "status"));
    add_query_escaped(target, sizeof target, "limit", cli_get(flags, a, "limit"));
    add_query_escaped(target, sizeof target, "after", cli_get(flags, a, "after"));
    return show(c, "GET", target, NULL, true, NULL, print_page);
}

int cmd_listings(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    return list_or_show(c, "listings", "/v1/listings", flags, a, print_listing, print_listings);
}

/* ---- orders -------------------------------------------------------------------------------- */

const struct cli_flag order_flags[] = {
    { "client-order-id", true, "your id for this order, to retry it safely (default: made up)" },
    { "precision", true, "fp64, fp32, tf32, bf16, fp16, fp8, int8 or int4" },
    { "devices", true, "how many devices (or --tflops)" },
    { "tflops", true, "how much capacity, TFLOPS in all (or --devices)" },
    { "hours", true, "for how long" },
    { "regions", true, "acceptable regions, comma-separated (cpx regions lists them)" },
    { "limit", true, "highest price, CNY per PFLOPS-hour" },
    { "tif", true, "time in force: gtc (default), gtd, ioc or fok" },
    { "expires", true, "leave the book at TIME (RFC 3339, or +N[smhd] from now; implies gtd)" },
    { "start-earliest", true, "the rental starts at TIME or later" },
    { "start-latest", true, "the rental starts at TIME at the latest" },
    { "min-memory-gb", true, "least memory per device, GB" },
    { "min-tflops", true, "least TFLOPS per device" },
    { "max-tflops", true, "most TFLOPS per device (a device order's hold is computed with it)" },
    { "gang", true, "at least N devices from each provider" },
    { "min-green-permille", true, "least share of green power, per mille" },
    { "models", true, "acceptable vendors or vendor/model, comma-separated" },
    { "job", true, "file describing the job; stored privately, the order carries its hash" },
    { NULL, false, NULL },
};

/* An order as aligned lines; the id line too unless it was printed already. */
static void print_order_to(FILE *out, const json_t *o, bool with_id)
{
    bool by_devices = json_object_get(o, "devices") != NULL;
    json_int_t ordered = int_of(o, by_devices ? "devices" : "tflops");
    json_int_t remaining = int_of(o, "remaining"), filled = int_of(o, "filled_devices");
    char buf[1024];
    if (with_id)
        line(out, "id", "%s", str_of(o, "id"));
    line(out, "client id", "%s", str_of(o, "client_order_id"));
    if (json_is_string(json_object_get(o, "cancel_reason")))
        line(out, "status", "%s (%s)", str_of(o, "status"), str_of(o, "cancel_reason"));
    else
        line(out, "status", "%s", str_of(o, "status"));
    line(out, "ordered", "%" JSON_INTEGER_FORMAT " %s %s for %" JSON_INTEGER_FORMAT " hour%s in %s",
         ordered, str_of(o, "precision"),
         by_devices ? (ordered == 1 ? "device" : "devices") : "TFLOPS", int_of(o, "hours"),
         s_unless_one(int_of(o, "hours")),
         joined(json_object_get(o, "regions"), ", ", buf, sizeof buf));
    line(out, "limit", "%s CNY per PFLOPS-hour (%s)", str_of(o, "limit_price"),
         str_of(o, "time_in_force"));
    line(out, "filled", "%" JSON_INTEGER_FORMAT " device%s", filled, s_unless_one(filled));
    line(out, "remaining", "%" JSON_INTEGER_FORMAT " %s", remaining,
         by_devices ? (remaining == 1 ? "device" : "devices") : "TFLOPS");
    line(out, "hold", "%s CNY, %s CNY of it still held", str_of(o, "hold"), str_of(o, "hold_left"));
    line(out, "agreements", "%s", joined(json_object_get(o, "agreements"), ", ", buf, sizeof buf));
}

static void print_order(const json_t *o)
{
    print_order_to(stdout, o, true);
}

/* Reads a job description file into a JSON string; NULL after saying why. */
static json_t *read_job(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1u << 20, n = 0;
    char *text = malloc(cap + 1);
    if (text != NULL)
        n = fread(text, 1, cap + 1, f);
    bool bad = text == NULL || ferror(f);
    fclose(f);
    json_t *s = NULL;
    if (bad)
        fprintf(stderr, "cannot read %s\n", path);
    else if (n > cap)
        fprintf(stderr, "%s is larger than 1 MiB (a job description may have 64 KiB)\n", path);
    else if ((s = json_stringn(text, n)) == NULL)
        fprintf(stderr, "%s is not UTF-8 text\n", path);
    free(text);
    return s;
}

int cmd_order(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    const char *precision = cli_get(flags, a, "precision"), *regions = cli_get(flags, a, "regions");
    const char *limit = cli_get(flags, a, "limit"), *hours = cli_get(flags, a, "hours");
    bool devices = cli_get(flags, a, "devices") != NULL;
    bool tflops = cli_get(flags, a, "tflops") != NULL;
    if (a->nargs != 0 || precision == NULL || regions == NULL || limit == NULL || hours == NULL ||
        devices == tflops || !args_are_text(a)) {
        fprintf(stderr, "usage: cpx order --precision P (--devices N | --tflops N) --hours N "
                        "--regions R1,R2 --limit PRICE [options] (cpx help order)\n");
        return 2;
    }
    json_t *body = json_object(), *cons = json_object();
    json_object_set_new(body, "precision", json_string(precision));
    json_object_set_new(body, "regions", split_list(regions));
    json_object_set_new(body, "limit_price", json_string(limit));
    put_str(body, "time_in_force", flags, a, "tif");
    const char *models = cli_get(flags, a, "models");
    if (models != NULL)
        json_object_set_new(cons, "models", split_list(models));
    bool good = put_int(body, "devices", flags, a, "devices") &&
                put_int(body, "tflops", flags, a, "tflops") &&
                put_int(body, "hours", flags, a, "hours") &&
                put_time(body, "expires_at", flags, a, "expires") &&
                put_time(body, "start_earliest", flags, a, "start-earliest") &&
                put_time(body, "start_latest", flags, a, "start-latest") &&
                put_int(cons, "min_memory_gb", flags, a, "min-memory-gb") &&
                put_int(cons, "min_tflops", flags, a, "min-tflops") &&
                put_int(cons, "max_tflops", flags, a, "max-tflops") &&
                put_int(cons, "min_devices_per_provider", flags, a, "gang") &&
                put_int(cons, "min_green_permille", flags, a, "min-green-permille");
    if (json_object_size(cons) > 0)
        json_object_set(body, "constraints", cons);
    json_decref(cons);
    if (json_object_get(body, "expires_at") != NULL && cli_get(flags, a, "tif") == NULL)
        json_object_set_new(body, "time_in_force", json_string("gtd"));
    const char *job = cli_get(flags, a, "job");
    json_t *description = good && job ? read_job(job) : NULL;
    if (!good || (job != NULL && description == NULL)) {
        json_decref(body);
        return 2;
    }

    /* The client order id makes the order safe to repeat: the exchange places it once. */
    char made[64];
    const char *coid =
        repeat_key(flags, a, "client-order-id", "cpx", "client order id", "order", made);
    json_object_set_new(body, "client_order_id", json_string(coid));

    struct client_reply r;
    int rc;
    if (description != NULL) {
        bool ok = send_request(c, "POST", "/v1/jobs",
                               json_pack("{s:o}", "description", description), true, NULL, &r);
        const char *sha =
            ok && r.status == 201 ? json_string_value(json_object_get(r.json, "job_sha256")) : NULL;
        if (sha == NULL) {
            rc = cli_report(&r, ok, c->json);
            client_reply_free(&r);
            json_decref(body);
            return rc ? rc : 1;
        }
        json_object_set_new(body, "job_sha256", json_string(sha));
        client_reply_free(&r);
    }
    bool ok = send_request(c, "POST", "/v1/orders", body, true, NULL, &r);
    if (to_print(c, ok, &r, &rc)) {
        printf("%s\n", str_of(r.json, "id"));
        fflush(stdout);
        if (r.status == 200)
            fprintf(stderr,
                    "client order id %s was placed before: nothing new was ordered; "
                    "the order as it is now:\n",
                    coid);
        print_order_to(stderr, r.json, false);
    }
    client_reply_free(&r);
    return rc;
}

int cmd_cancel(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    (void)flags;
    return delete_one(c, a, "cpx cancel ORDER_ID", "/v1/orders", print_order);
}

static void print_orders(const json_t *page)
{
    struct table t = { .ncols = 9 };
    table_add(&t, "ID", "STATUS", "PRECISION", "ORDERED", "HOURS", "LIMIT", "FILLED", "REGIONS",
              "CLIENT ID");
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(page, "items"), i, o)
    {
        bool by_devices = json_object_get(o, "devices") != NULL;
        char ordered[64], hours[24], filled[24], regions[1024];
        snprintf(ordered, sizeof ordered, "%" JSON_INTEGER_FORMAT " %s",
                 int_of(o, by_devices ? "devices" : "tflops"), by_devices ? "devices" : "TFLOPS");
        table_add(&t, str_of(o, "id"), str_of(o, "status"), str_of(o, "precision"), ordered,
                  text_of(o, "hours", hours, sizeof hours), str_of(o, "limit_price"),
                  text_of(o, "filled_devices", filled, sizeof filled),
                  joined(json_object_get(o, "regions"), ",", regions, sizeof regions),
                  str_of(o, "client_order_id"));
    }
    table_print(&t, "(none)");
    print_next(page);
}

int cmd_orders(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    return list_or_show(c, "orders", "/v1/orders", flags, a, print_order, print_orders);
}

/* ---- agreements ---------------------------------------------------------------------------- */

const struct cli_flag page_flags[] = {
    { "limit", true, "items per page (1-1000, default 100)" },
    { "after", true, "continue after this cursor" },
    { NULL, false, NULL },
};

static void print_agreement(const json_t *g)
{
    FILE *out = stdout;
    line(out, "id", "%s", str_of(g, "id"));
    line(out, "status", "%s", str_of(g, "status"));
    line(out, "order", "%s of buyer %s", str_of(g, "order"), str_of(g, "buyer"));
    line(out, "listing", "%s of provider %s", str_of(g, "listing"), str_of(g, "provider"));
    line(out, "capacity",
         "%" JSON_INTEGER_FORMAT " device%s x %" JSON_INTEGER_FORMAT " TFLOPS %s in %s",
         int_of(g, "devices"), s_unless_one(int_of(g, "devices")), int_of(g, "tflops_per_device"),
         str_of(g, "precision"), str_of(g, "region"));
    line(out, "time", "%" JSON_INTEGER_FORMAT " hour%s, %s to %s", int_of(g, "hours"),
         s_unless_one(int_of(g, "hours")), str_of(g, "start"), str_of(g, "end"));
    /* the delivery's times (docs/delivery.md), each once the agreement has it */
    static const char *const times[][3] = { { "deliver_by", "deliver_by", "" },
                                            { "started_at", "started_at", "" },
                                            { "ends_at", "ends_at", "" },
                                            { "metered_until", "metered", "until " } };
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        char when[32];
        json_t *v = json_object_get(g, times[i][0]);
        if (v != NULL && !json_is_null(v))
            line(out, times[i][1], "%s%s", times[i][2], text_of(g, times[i][0], when, sizeof when));
    }
    line(out, "price", "%s CNY per PFLOPS-hour", str_of(g, "price"));
    line(out, "value", "%s CNY", str_of(g, "value"));
    line(out, "commission", "%s CNY (the maker was the %s)", str_of(g, "commission"),
         str_of(g, "maker"));
    line(out, "endpoint", "%s", str_of(g, "endpoint"));
    line(out, "created_at", "%s", str_of(g, "created_at"));
    char seq[24];
    line(out, "ledger_seq", "%s", text_of(g, "ledger_seq", seq, sizeof seq));
}

static void print_agreements(const json_t *page)
{
    struct table t = { .ncols = 11 };
    table_add(&t, "ID", "PRECISION", "REGION", "DEVICES", "TFLOPS", "HOURS", "PRICE", "VALUE",
              "COMMISSION", "START", "STATUS");
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(page, "items"), i, g)
    {
        char devices[24], tflops[24], hours[24];
        table_add(&t, str_of(g, "id"), str_of(g, "precision"), str_of(g, "region"),
                  text_of(g, "devices", devices, sizeof devices),
                  text_of(g, "tflops_per_device", tflops, sizeof tflops),
                  text_of(g, "hours", hours, sizeof hours), str_of(g, "price"), str_of(g, "value"),
                  str_of(g, "commission"), str_of(g, "start"), str_of(g, "status"));
    }
    table_print(&t, "(none)");
    print_next(page);
}

int cmd_agreements(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    char target[512] = "/v1/agreements";
    if (a->nargs > 1 || (a->nargs == 1 && !word_ok(a->args[0]))) {
        fprintf(stderr, "usage: cpx agreements [ID] [--limit N] [--after C]\n");
        return 2;
    }
    if (a->nargs == 1) {
        snprintf(target, sizeof target, "/v1/agreements/%s", a->args[0]);
        return show(c, "GET", target, NULL, true, NULL, print_agreement);
    }
    add_query_escaped(target, sizeof target, "limit", cli_get(flags, a, "limit"));
    add_query_escaped(target, sizeof target, "after", cli_get(flags, a, "after"));
    return show(c, "GET", target, NULL, true, NULL, print_agreements);
}

/* ---- market data (public) ------------------------------------------------------------------ */

static void print_regions(const json_t *page)
{
    struct table t = { .ncols = 3 };
    table_add(&t, "ID", "NAME", "ZH");
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(page, "items"), i, g)
    {
        table_add(&t, str_of(g, "id"), str_of(g, "name_en"), str_of(g, "name_zh"));
    }
    table_print(&t, NULL);
}

int cmd_regions(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    (void)flags;
    if (a->nargs != 0) {
        fprintf(stderr, "usage: cpx regions\n");
        return 2;
    }
    return show(c, "GET", "/v1/regions", NULL, false, NULL, print_regions);
}

const struct cli_flag markets_flags[] = {
    { "all", false, "every precision and region, also those without orders or trades" },
    { NULL, false, NULL },
};

/* A book level as "PRICE x SIZE": size in devices, or TFLOPS for capacity bids alone. */
static const char *level_text(const json_t *l, char *buf, size_t cap)
{
    if (!json_is_object(l))
        return "-";
    if (int_of(l, "devices") > 0)
        snprintf(buf, cap, "%s x %" JSON_INTEGER_FORMAT, str_of(l, "price"), int_of(l, "devices"));
    else
        snprintf(buf, cap, "%s x %" JSON_INTEGER_FORMAT " TFLOPS", str_of(l, "price"),
                 int_of(l, "tflops"));
    return buf;
}

static bool markets_all;

static void print_markets(const json_t *page)
{
    struct table t = { .ncols = 8 };
    table_add(&t, "PRECISION", "REGION", "BID", "ASK", "LAST", "24H TRADES", "24H DEVICES",
              "24H PFLOPS-H");
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(page, "items"), i, m)
    {
        json_t *bid = json_object_get(m, "best_bid"), *ask = json_object_get(m, "best_ask");
        json_t *vol = json_object_get(m, "volume_24h");
        bool active = json_is_object(bid) || json_is_object(ask) ||
                      json_is_string(json_object_get(m, "last_price")) ||
                      int_of(vol, "agreements") > 0;
        if (!active && !markets_all)
            continue;
        char b[64], s[64], n[24], d[24], p[24];
        table_add(&t, str_of(m, "precision"), str_of(m, "region"), level_text(bid, b, sizeof b),
                  level_text(ask, s, sizeof s), str_of(m, "last_price"),
                  text_of(vol, "agreements", n, sizeof n), text_of(vol, "devices", d, sizeof d),
                  text_of(vol, "pflops_hours", p, sizeof p));
    }
    if (t.nrows == 1) {
        table_print(&t, "(no orders, listings or trades yet; --all lists every market)");
        return;
    }
    table_print(&t, NULL);
    puts("(prices in CNY per PFLOPS-hour; bid and ask as PRICE x DEVICES)");
}

int cmd_markets(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    if (a->nargs != 0) {
        fprintf(stderr, "usage: cpx markets [--all]\n");
        return 2;
    }
    markets_all = cli_get(flags, a, "all") != NULL;
    return show(c, "GET", "/v1/markets", NULL, false, NULL, print_markets);
}

const struct cli_flag book_flags[] = {
    { "depth", true, "price levels per side (1-100, default 10)" },
    { NULL, false, NULL },
};

static void print_book(const json_t *b)
{
    json_t *bids = json_object_get(b, "bids"), *asks = json_object_get(b, "asks");
    printf("%s %s, CNY per PFLOPS-hour\n", str_of(b, "precision"), str_of(b, "region"));
    if (json_array_size(bids) == 0 && json_array_size(asks) == 0) {
        puts("(empty)");
        return;
    }
    struct table t = { .ncols = 5 };
    table_add(&t, "SIDE", "PRICE", "DEVICES", "TFLOPS", "ORDERS");
    /* asks from the worst down to the best, so that the best ask sits above the best bid */
    for (size_t k = json_array_size(asks); k-- > 0;) {
        json_t *l = json_array_get(asks, k);
        char d[24], f[24], o[24];
        table_add(&t, "ask", str_of(l, "price"), text_of(l, "devices", d, sizeof d),
                  text_of(l, "tflops", f, sizeof f), text_of(l, "orders", o, sizeof o));
    }
    size_t i;
    json_t *l;
    json_array_foreach(bids, i, l)
    {
        char d[24], f[24], o[24];
        table_add(&t, "bid", str_of(l, "price"), text_of(l, "devices", d, sizeof d),
                  text_of(l, "tflops", f, sizeof f), text_of(l, "orders", o, sizeof o));
    }
    table_print(&t, NULL);
}

int cmd_book(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    if (a->nargs != 2 || !word_ok(a->args[0]) || !word_ok(a->args[1])) {
        fprintf(stderr, "usage: cpx book PRECISION REGION [--depth N]\n");
        return 2;
    }
    char target[512];
    snprintf(target, sizeof target, "/v1/markets/%s/%s/book", a->args[0], a->args[1]);
    add_query_escaped(target, sizeof target, "depth", cli_get(flags, a, "depth"));
    return show(c, "GET", target, NULL, false, NULL, print_book);
}

const struct cli_flag trades_flags[] = {
    { "precision", true, "only this precision" },
    { "region", true, "only this region" },
    { "limit", true, "items per page (1-1000, default 100)" },
    { "after", true, "continue after this cursor" },
    { NULL, false, NULL },
};

static void print_trades(const json_t *page)
{
    struct table t = { .ncols = 8 };
    table_add(&t, "TIME", "ID", "PRECISION", "REGION", "DEVICES", "TFLOPS", "HOURS", "PRICE");
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(page, "items"), i, g)
    {
        char devices[24], tflops[24], hours[24];
        table_add(&t, str_of(g, "time"), str_of(g, "id"), str_of(g, "precision"),
                  str_of(g, "region"), text_of(g, "devices", devices, sizeof devices),
                  text_of(g, "tflops_per_device", tflops, sizeof tflops),
                  text_of(g, "hours", hours, sizeof hours), str_of(g, "price"));
    }
    table_print(&t, "(none)");
    print_next(page);
}

int cmd_trades(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    return show_query(c, flags, a,
                      "cpx trades [--precision P] [--region R] [--limit N] [--after C]",
                      "/v1/trades", false, print_trades);
}

const struct cli_flag index_flags[] = {
    { "hours", true, "over the last H hours (1-720, default 24)" },
    { NULL, false, NULL },
};

static void print_index(const json_t *x)
{
    json_int_t hours = int_of(x, "hours"), pfh = int_of(x, "pflops_hours");
    json_int_t n = int_of(x, "agreements");
    printf("%s, last %" JSON_INTEGER_FORMAT " hour%s: ", str_of(x, "precision"), hours,
           s_unless_one(hours));
    if (!json_is_string(json_object_get(x, "price")))
        printf("no trades\n");
    else
        printf("%s CNY per PFLOPS-hour (%" JSON_INTEGER_FORMAT
               " PFLOPS-hour%s in %" JSON_INTEGER_FORMAT " agreement%s)\n",
               str_of(x, "price"), pfh, s_unless_one(pfh), n, s_unless_one(n));
}

int cmd_index(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    if (a->nargs != 1 || !word_ok(a->args[0])) {
        fprintf(stderr, "usage: cpx index PRECISION [--hours H]\n");
        return 2;
    }
    char target[512];
    snprintf(target, sizeof target, "/v1/markets/%s/index", a->args[0]);
    add_query_escaped(target, sizeof target, "hours", cli_get(flags, a, "hours"));
    return show(c, "GET", target, NULL, false, NULL, print_index);
}

/* ---- money --------------------------------------------------------------------------------- */

static void print_account(const json_t *acct)
{
    FILE *out = stdout;
    line(out, "account", "%s", str_of(acct, "id"));
    line(out, "available", "%s CNY", str_of(acct, "available"));
    line(out, "held", "%s CNY", str_of(acct, "held"));
    line(out, "escrow", "%s CNY", str_of(acct, "escrow"));
}

static void print_deposit(const json_t *d)
{
    char seq[24];
    print_account(json_object_get(d, "account"));
    line(stdout, "ledger_seq", "%s", text_of(d, "ledger_seq", seq, sizeof seq));
}

const struct cli_flag deposit_flags[] = {
    { "idempotency-key", true, "repeat-safe key for this request (default: made up, printed)" },
    { NULL, false, NULL },
};

int cmd_deposit(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    if (a->nargs != 2 || !cpx_identity_id_valid(a->args[0]) || !args_are_text(a)) {
        fprintf(stderr, "usage: cpx deposit IDENTITY_ID AMOUNT (in CNY, e.g. 1000 or 12.5)\n");
        return 2;
    }
    /* A deposit is money: a retry must not pay twice, so it always carries a key. */
    char made[64];
    const char *key =
        repeat_key(flags, a, "idempotency-key", "dep", "idempotency key", "deposit", made);
    char target[128];
    snprintf(target, sizeof target, "/v1/accounts/%s/deposits", a->args[0]);
    return show(c, "POST", target, json_pack("{s:s}", "amount", a->args[1]), true, key,
                print_deposit);
}

int cmd_balance(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    (void)flags;
    if (a->nargs > 1 || (a->nargs == 1 && !cpx_identity_id_valid(a->args[0]))) {
        fprintf(stderr, "usage: cpx balance [IDENTITY_ID]\n");
        return 2;
    }
    char target[128];
    snprintf(target, sizeof target, "/v1/accounts/%s", a->nargs == 1 ? a->args[0] : "me");
    return show(c, "GET", target, NULL, true, NULL, print_account);
}
