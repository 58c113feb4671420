/*
 * The delivery and billing commands of cpx (docs/delivery.md): an agreement's delivery attempts,
 * a provider's usage reports, bills and their disputes, and statements of account. As in
 * market.c, requests carry what the user gave -- times as text, so the exchange's validation is
 * the one that counts (cpx usage reads --from only to name the report's Idempotency-Key) -- and
 * answers print as the exchange's JSON with --json, otherwise as aligned lines and tables with
 * money as the decimal CNY strings the exchange wrote.
 *
 * The helpers that check ids, escape queries and print (word_ok, str_of, line, the table, show)
 * are market.c's too, in helpers.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clients/cpx/cpx.h"

/* ---- building requests --------------------------------------------------------------------- */

/* Reads n digits at *p into *out. */
static bool digits(const char **p, int n, int *out)
{
    *out = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return false;
        *out = *out * 10 + (**p - '0');
    }
    return true;
}

/*
 * The unix seconds of an RFC 3339 time (2026-11-29T08:00:00Z, fractional seconds dropped, "Z" or
 * a numeric offset). Lenient about ranges: the exchange checks the time itself.
 */
static bool parse_time(const char *s, long long *out)
{
    struct tm tm = { 0 };
    int f[6];
    const char *p = s;
    if (!digits(&p, 4, &f[0]) || *p++ != '-' || !digits(&p, 2, &f[1]) || *p++ != '-' ||
        !digits(&p, 2, &f[2]) || (*p != 'T' && *p != 't') || !(++p, digits(&p, 2, &f[3])) ||
        *p++ != ':' || !digits(&p, 2, &f[4]) || *p++ != ':' || !digits(&p, 2, &f[5]))
        return false;
    if (*p == '.' && p[1] >= '0' && p[1] <= '9')
        p += 1 + strspn(p + 1, "0123456789");
    long long offset = 0;
    int oh, om;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om))
            return false;
        offset = sign * (oh * 3600LL + om * 60LL);
    } else {
        return false;
    }
    if (*p != '\0')
        return false;
    tm.tm_year = f[0] - 1900;
    tm.tm_mon = f[1] - 1;
    tm.tm_mday = f[2];
    tm.tm_hour = f[3];
    tm.tm_min = f[4];
    tm.tm_sec = f[5];
    *out = (long long)timegm(&tm) - offset;
    return true;
}

/* Sets o[key] to text as a JSON string; false after saying so when it is not UTF-8. */
static bool put_text(json_t *o, const char *key, const char *text)
{
    json_t *s = json_string(text);
    if (s == NULL) {
        fprintf(stderr, "\"%s\" is not UTF-8 text\n", text);
        return false;
    }
    json_object_set_new(o, key, s);
    return true;
}

/* ---- printing answers (as market.c prints them, with helpers.c) ---------------------------- */

/* Is o[key] there and not null? */
static bool has(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return v != NULL && !json_is_null(v);
}

/* ---- bills --------------------------------------------------------------------------------- */

/* Device-seconds as device-hours: exact when whole, else to the nearest thousandth. */
static const char *device_hours(json_int_t s, char *buf, size_t cap)
{
    json_int_t whole = s / 3600, milli = (s % 3600 * 1000 + 1800) / 3600;
    if (s > 0 && whole == 0 && milli == 0)
        snprintf(buf, cap, "<0.001");
    else if (s < 0 || milli == 0 || milli == 1000)
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, whole + (milli == 1000));
    else
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT ".%03d", whole, (int)milli);
    for (size_t n = strlen(buf); strchr(buf, '.') != NULL && buf[n - 1] == '0'; n--)
        buf[n - 1] = '\0';
    return buf;
}

/* "START/END", the end without the date they share (ISO 8601's short form of an interval). */
static const char *period_of(const json_t *b, char *buf, size_t cap)
{
    const char *from = str_of(b, "period_start"), *to = str_of(b, "period_end");
    bool same_day = strlen(from) > 11 && strlen(to) > 11 && strncmp(from, to, 11) == 0;
    snprintf(buf, cap, "%s/%s", from, same_day ? to + 11 : to);
    return buf;
}

static void print_bill(const json_t *b)
{
    json_int_t ds = json_integer_value(json_object_get(b, "device_seconds"));
    char hours[32], seq[24];
    line(stdout, "id", "%s", str_of(b, "id"));
    line(stdout, "status", "%s", str_of(b, "status"));
    line(stdout, "agreement", "%s", str_of(b, "agreement"));
    line(stdout, "buyer", "%s", str_of(b, "buyer"));
    line(stdout, "provider", "%s", str_of(b, "provider"));
    line(stdout, "usage", "%s", str_of(b, "usage"));
    line(stdout, "period", "%s to %s", str_of(b, "period_start"), str_of(b, "period_end"));
    line(stdout, "metered", "%" JSON_INTEGER_FORMAT " device-seconds (%s device-hours)", ds,
         device_hours(ds, hours, sizeof hours));
    line(stdout, "amount", "%s CNY", str_of(b, "amount"));
    line(stdout, "commission", "%s CNY", str_of(b, "commission"));
    line(stdout, "final", "%s",
         json_is_true(json_object_get(b, "final")) ? "yes: the agreement's last bill" : "no");
    line(stdout, "disputable", "until %s", str_of(b, "dispute_until"));
    if (has(b, "dispute_reason"))
        line(stdout, "dispute", "%s", str_of(b, "dispute_reason"));
    if (has(b, "resolution_note"))
        line(stdout, "resolution", "%s", str_of(b, "resolution_note"));
    line(stdout, "created_at", "%s", str_of(b, "created_at"));
    if (has(b, "settled_at"))
        line(stdout, "settled_at", "%s", str_of(b, "settled_at"));
    line(stdout, "ledger_seq", "%s", text_of(b, "ledger_seq", seq, sizeof seq));
}

/* An answer that is a bill prints as one; anything else as "key  value" lines. */
static void print_bill_or_object(const json_t *o)
{
    if (has(o, "amount") && has(o, "agreement"))
        print_bill(o);
    else
        cli_print_object(o);
}

/* The answer to a dispute or a resolution: the bill as it is now, then the receipt of the
 * request's own record. */
static void print_bill_receipt(const json_t *o)
{
    const json_t *bill = json_object_get(o, "bill");
    if (!json_is_object(bill)) {
        cli_print_object(o);
        return;
    }
    char seq[24];
    print_bill(bill);
    line(stdout, "recorded", "ledger_seq %s", text_of(o, "ledger_seq", seq, sizeof seq));
}

static void print_bills(const json_t *page)
{
    struct table t = { .ncols = 8 };
    table_add(&t, "ID", "AGREEMENT", "PERIOD", "DEVICE-H", "AMOUNT", "COMMISSION", "STATUS",
              "DISPUTE UNTIL");
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(page, "items"), i, b)
    {
        char period[128], hours[32];
        json_int_t ds = json_integer_value(json_object_get(b, "device_seconds"));
        table_add(&t, str_of(b, "id"), str_of(b, "agreement"), period_of(b, period, sizeof period),
                  device_hours(ds, hours, sizeof hours), str_of(b, "amount"),
                  str_of(b, "commission"), str_of(b, "status"), str_of(b, "dispute_until"));
    }
    table_print(&t, "(none)");
    print_next(page);
}

const struct cli_flag bills_flags[] = {
    { "agreement", true, "only this agreement's bills" },
    { "status", true, "open, disputed, settled or refunded" },
    { "limit", true, "items per page (1-1000, default 100)" },
    { "after", true, "continue after this cursor" },
    { NULL, false, NULL },
};

int cmd_bills(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    return show_query(c, flags, a,
                      "cpx bills [--agreement ID] [--status S] [--limit N] [--after C]",
                      "/v1/bills", true, print_bills);
}

int cmd_bill(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    (void)flags;
    if (a->nargs != 1 || !word_ok(a->args[0])) {
        fprintf(stderr, "usage: cpx bill BILL_ID\n");
        return 2;
    }
    char target[128];
    snprintf(target, sizeof target, "/v1/bills/%s", a->args[0]);
    return show(c, "GET", target, NULL, true, NULL, print_bill);
}

const struct cli_flag dispute_flags[] = {
    { "reason", true, "why the bill is wrong (required)" },
    { NULL, false, NULL },
};

int cmd_dispute(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    const char *reason = cli_get(flags, a, "reason");
    if (a->nargs != 1 || !word_ok(a->args[0]) || reason == NULL) {
        fprintf(stderr, "usage: cpx dispute BILL_ID --reason TEXT\n");
        return 2;
    }
    json_t *body = json_object();
    if (!put_text(body, "reason", reason)) {
        json_decref(body);
        return 2;
    }
    char target[128];
    snprintf(target, sizeof target, "/v1/bills/%s/dispute", a->args[0]);
    return show(c, "POST", target, body, true, NULL, print_bill_receipt);
}

const struct cli_flag resolve_flags[] = {
    { "outcome", true, "pay (settle the bill as billed) or refund (return it to the buyer)" },
    { "note", true, "what was decided and why" },
    { NULL, false, NULL },
};

int cmd_resolve(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    const char *outcome = cli_get(flags, a, "outcome"), *note = cli_get(flags, a, "note");
    if (a->nargs != 1 || !word_ok(a->args[0]) || outcome == NULL) {
        fprintf(stderr, "usage: cpx resolve BILL_ID --outcome pay|refund [--note TEXT]\n");
        return 2;
    }
    json_t *body = json_object();
    if (!put_text(body, "outcome", outcome) || (note != NULL && !put_text(body, "note", note))) {
        json_decref(body);
        return 2;
    }
    char target[128];
    snprintf(target, sizeof target, "/v1/bills/%s/resolution", a->args[0]);
    return show(c, "POST", target, body, true, NULL, print_bill_receipt);
}

/* ---- usage --------------------------------------------------------------------------------- */

const struct cli_flag usage_flags[] = {
    { "from", true,
      "start of the metered period (RFC 3339); it names the report, so a repeat reports once" },
    { "to", true, "end of the metered period (RFC 3339; the agreement's end: the final report)" },
    { "device-seconds", true, "device-seconds used in the period (at most devices x its length)" },
    { "final", false, "the job is finished: the agreement ends with this report" },
    { NULL, false, NULL },
};

/* The answer to a usage report: the bill it made, when it carries one. */
static void print_usage(const json_t *u)
{
    json_t *bill = json_object_get(u, "bill");
    if (json_is_object(bill)) {
        char seq[24];
        line(stdout, "usage", "%s", str_of(u, "usage"));
        if (has(u, "ledger_seq"))
            line(stdout, "ledger_seq", "%s", text_of(u, "ledger_seq", seq, sizeof seq));
        print_bill(bill);
    } else {
        print_bill_or_object(u);
    }
}

int cmd_usage(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    const char *from = cli_get(flags, a, "from"), *to = cli_get(flags, a, "to");
    const char *ds = cli_get(flags, a, "device-seconds");
    if (a->nargs != 1 || !word_ok(a->args[0]) || from == NULL || to == NULL || ds == NULL) {
        fprintf(
            stderr,
            "usage: cpx usage AGREEMENT_ID --from TIME --to TIME --device-seconds N [--final]\n");
        return 2;
    }
    long long start, end;
    if (!parse_time(from, &start) || !parse_time(to, &end)) {
        fprintf(stderr, "--from and --to take RFC 3339 times (2026-11-29T08:00:00Z), not \"%s\"\n",
                parse_time(from, &start) ? to : from);
        return 2;
    }
    size_t n = strlen(ds);
    if (n == 0 || n > 18 || strspn(ds, "0123456789") != n) {
        fprintf(stderr, "--device-seconds takes a whole number, not \"%s\"\n", ds);
        return 2;
    }
    json_t *body = json_pack("{s:s, s:s, s:I}", "period_start", from, "period_end", to,
                             "device_seconds", (json_int_t)strtoll(ds, NULL, 10));
    if (cli_get(flags, a, "final") != NULL)
        json_object_set_new(body, "final", json_true());
    /* One key per agreement and period start: repeating the command reports the period once. */
    char key[128], target[128];
    snprintf(key, sizeof key, "use-%s-%lld", a->args[0], start);
    snprintf(target, sizeof target, "/v1/agreements/%s/usage", a->args[0]);
    return show(c, "POST", target, body, true, key, print_usage);
}

/* ---- deliveries ---------------------------------------------------------------------------- */

static void print_deliveries(const json_t *d)
{
    json_t *attempts = json_object_get(d, "attempts");
    line(stdout, "delivery", "%s", str_of(d, "delivery"));
    line(stdout, "state", "%s", str_of(d, "state"));
    struct table t = { .ncols = 6 };
    table_add(&t, "ATTEMPT", "TIME", "DURATION", "HTTP", "OUTCOME", "ERROR");
    size_t i;
    json_t *e;
    json_array_foreach(attempts, i, e)
    {
        char n[24], ms[32], http[24];
        snprintf(ms, sizeof ms, "%" JSON_INTEGER_FORMAT " ms",
                 json_integer_value(json_object_get(e, "duration_ms")));
        table_add(&t, text_of(e, "attempt", n, sizeof n), str_of(e, "at"), ms,
                  text_of(e, "http_status", http, sizeof http), str_of(e, "outcome"),
                  str_of(e, "error"));
    }
    table_print(&t, "(no attempts yet)");
}

int cmd_deliveries(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    (void)flags;
    if (a->nargs != 1 || !word_ok(a->args[0])) {
        fprintf(stderr, "usage: cpx deliveries AGREEMENT_ID\n");
        return 2;
    }
    char target[128];
    snprintf(target, sizeof target, "/v1/agreements/%s/deliveries", a->args[0]);
    return show(c, "GET", target, NULL, true, NULL, print_deliveries);
}

/* ---- statements ---------------------------------------------------------------------------- */

const struct cli_flag statement_flags[] = {
    { "from", true, "entries from TIME on (RFC 3339)" },
    { "to", true, "entries up to TIME (RFC 3339)" },
    { "csv", false, "print the exchange's CSV (one line per entry, with a header line)" },
    { NULL, false, NULL },
};

static void print_statement(const json_t *s)
{
    printf("%s, from %s to %s (CNY)\n", str_of(s, "identity"),
           has(s, "from") ? str_of(s, "from") : "the start",
           has(s, "to") ? str_of(s, "to") : "now");
    struct table t = { .ncols = 3 };
    table_add(&t, "ACCOUNT", "OPENING", "CLOSING");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(s, "accounts"), i, e)
    {
        table_add(&t, str_of(e, "kind"), str_of(e, "opening"), str_of(e, "closing"));
    }
    table_print(&t, "(no accounts)");
    putchar('\n');
    t = (struct table){ .ncols = 7 };
    table_add(&t, "TIME", "ID", "ACCOUNT", "AMOUNT", "COUNTERPARTY", "REASON", "REF");
    json_array_foreach(json_object_get(s, "entries"), i, e)
    {
        char id[24], amount[64], other[160];
        bool out = strcmp(str_of(e, "direction"), "out") == 0;
        snprintf(amount, sizeof amount, "%s%s", out ? "-" : "+", str_of(e, "amount"));
        if (has(e, "counterparty") && has(e, "counter_kind"))
            snprintf(other, sizeof other, "%s (%s)", str_of(e, "counterparty"),
                     str_of(e, "counter_kind"));
        else
            snprintf(other, sizeof other, "%s",
                     has(e, "counterparty") ? str_of(e, "counterparty")
                                            : str_of(e, "counter_kind"));
        table_add(&t, str_of(e, "at"), text_of(e, "id", id, sizeof id), str_of(e, "account"),
                  amount, other, str_of(e, "reason"), str_of(e, "ref"));
    }
    table_print(&t, "(no entries in the period)");
}

int cmd_statement(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    if (a->nargs != 0) {
        fprintf(stderr, "usage: cpx statement [--from TIME] [--to TIME] [--csv]\n");
        return 2;
    }
    bool csv = cli_get(flags, a, "csv") != NULL;
    char target[512] = "/v1/statements";
    add_query_escaped(target, sizeof target, "from", cli_get(flags, a, "from"));
    add_query_escaped(target, sizeof target, "to", cli_get(flags, a, "to"));
    if (!csv)
        return show(c, "GET", target, NULL, true, NULL, print_statement);
    add_query_escaped(target, sizeof target, "format", "csv");
    struct client_reply r;
    bool ok = send_request(c, "GET", target, NULL, true, NULL, &r);
    int rc = 0;
    if (ok && r.status >= 200 && r.status <= 299)
        fwrite(r.body ? r.body : "", 1, r.body ? r.body_len : 0, stdout); /* the CSV as sent */
    else
        rc = cli_report(&r, ok, c->json);
    client_reply_free(&r);
    return rc;
}
