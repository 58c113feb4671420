/*
 * The pure parts of cpx-provider: what the exchange sends (the envelope), what the provider
 * answers (the acceptance) and reports (usage), and the arithmetic of metering. No clock and no
 * I/O: times come in as arguments, so tests/unit/test_provider_envelope.c checks all of it.
 */
#include "clients/cpx-provider/provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ledger/canon.h"
#include "ledger/codec.h"
#include "ledger/crypto.h"

#define DEVICES_MAX (1LL << 32) /* docs/trading.md: devices 1..2^32 */

bool provider_id_valid(const char *s, const char *prefix)
{
    /* Ids go into URL paths, file names and Idempotency-Keys: let nothing else through. */
    size_t n = strlen(prefix), len = strlen(s);
    if (len <= n || len >= CPX_ID_MAX || strncmp(s, prefix, n) != 0)
        return false;
    return strspn(s + n, "abcdefghijklmnopqrstuvwxyz0123456789_") == len - n;
}

const char *envelope_check_auth(const uint8_t exchange_pk[CPX_ED25519_PK_LEN], const char *authz,
                                const char *target, const void *body, size_t len, int64_t now)
{
    if (authz == NULL)
        return "unauthenticated";
    struct cpx_auth auth;
    if (cpx_auth_parse(authz, strlen(authz), &auth) != CPX_AUTH_OK)
        return "bad_authorization";
    if (strcmp(auth.id, "exchange") != 0)
        return "unknown_identity";
    if (auth.ts < now - CLOCK_WINDOW || auth.ts > now + CLOCK_WINDOW)
        return "stale_timestamp";
    if (!cpx_reqsig_verify(exchange_pk, "POST", target, auth.ts, body, len, auth.sig))
        return "bad_signature";
    return NULL;
}

/* Copies a string member of obj into out (CPX_ID_MAX) when it is an id with prefix. */
static bool get_id(const json_t *obj, const char *name, const char *prefix, char out[CPX_ID_MAX])
{
    const char *s = json_string_value(json_object_get(obj, name));
    if (s == NULL || !provider_id_valid(s, prefix))
        return false;
    snprintf(out, CPX_ID_MAX, "%s", s);
    return true;
}

/* The job: null (or absent), or a description whose SHA-256 is the one the buyer's order
 * signed. Returns the name of the bad field, or NULL. */
static const char *read_job(const json_t *job, struct envelope *env)
{
    if (job == NULL || json_is_null(job))
        return NULL;
    const char *text = json_string_value(json_object_get(job, "description"));
    const char *hash = json_string_value(json_object_get(job, "sha256"));
    if (!json_is_object(job) || text == NULL)
        return "job.description";
    uint8_t digest[CPX_SHA256_LEN];
    char hex[2 * CPX_SHA256_LEN + 1];
    cpx_sha256(text, strlen(text), digest);
    cpx_hex_encode(digest, sizeof digest, hex);
    if (hash == NULL || strcasecmp(hash, hex) != 0)
        return "job.sha256";
    env->description = strdup(text);
    return env->description ? NULL : "job.description";
}

/* Fills env from a parsed envelope; returns the name of the first bad field, or NULL. */
static const char *read_envelope(const json_t *root, struct envelope *env)
{
    const json_t *agr = json_object_get(root, "agreement");
    if (!json_is_object(agr))
        return "agreement";
    if (!get_id(agr, "id", "agr_", env->agreement))
        return "agreement.id";
    if (!get_id(agr, "provider", "idn_", env->provider))
        return "agreement.provider";
    const json_t *devices = json_object_get(agr, "devices");
    env->devices = json_integer_value(devices);
    if (!json_is_integer(devices) || env->devices < 1 || env->devices > DEVICES_MAX)
        return "agreement.devices";
    if (!get_id(root, "delivery", "dlv_", env->delivery))
        return "delivery";
    const char *deliver_by = json_string_value(json_object_get(root, "deliver_by"));
    if (deliver_by == NULL || !rfc3339_parse(deliver_by, false, &env->deliver_by))
        return "deliver_by";
    const json_t *attempt = json_object_get(root, "attempt");
    env->attempt = attempt ? json_integer_value(attempt) : 1;
    if (attempt != NULL && (!json_is_integer(attempt) || env->attempt < 1))
        return "attempt";
    return read_job(json_object_get(root, "job"), env);
}

const char *envelope_parse(const void *body, size_t len, struct envelope *env,
                           char why[ENVELOPE_WHY_MAX])
{
    memset(env, 0, sizeof *env);
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        snprintf(why, ENVELOPE_WHY_MAX, "the body is not a JSON object%s%.100s", root ? "" : ": ",
                 root ? "" : jerr.text);
        json_decref(root);
        return "malformed_json";
    }
    const char *field = read_envelope(root, env);
    json_decref(root);
    if (field == NULL)
        return NULL;
    snprintf(why, ENVELOPE_WHY_MAX, "%s is missing or invalid", field);
    envelope_free(env);
    return "invalid_envelope";
}

void envelope_free(struct envelope *env)
{
    free(env->description);
    env->description = NULL;
}

/* Ends a canonical document and returns a NUL-terminated copy of it, or NULL. */
static char *canon_copy(struct cpx_canon_writer *w)
{
    const uint8_t *bytes;
    size_t len;
    char *out = NULL;
    if (cpx_canon_writer_finish(w, &bytes, &len) == CPX_CANON_OK && (out = malloc(len + 1))) {
        memcpy(out, bytes, len);
        out[len] = '\0';
    }
    cpx_canon_writer_free(w);
    return out;
}

char *acceptance_body(const char *agreement, const char *delivery)
{
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_canon_begin_object(&w);
    cpx_canon_kv_string(&w, "agreement", agreement);
    cpx_canon_kv_string(&w, "delivery", delivery);
    cpx_canon_end_object(&w);
    return canon_copy(&w);
}

bool acceptance_sign(const struct cpx_keyfile *key, const char *delivery, int64_t ts,
                     const char *body, char out[CPX_AUTH_HEADER_MAX])
{
    char target[CPX_ID_MAX + 32];
    snprintf(target, sizeof target, "/v1/deliveries/%s/acceptance", delivery);
    struct cpx_auth auth = { 0 };
    snprintf(auth.id, sizeof auth.id, "%s", key->identity);
    if (!cpx_reqsig_sign(&key->kp, "POST", target, ts, body, strlen(body), &auth))
        return false;
    cpx_auth_format(&auth, out);
    return true;
}

char *usage_body(int64_t start, int64_t end, int64_t device_seconds, bool final)
{
    char from[RFC3339_LEN], to[RFC3339_LEN];
    rfc3339_format(start, from);
    rfc3339_format(end, to);
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_canon_begin_object(&w);
    cpx_canon_kv_int(&w, "device_seconds", device_seconds);
    if (final) {
        cpx_canon_key(&w, "final", 5);
        cpx_canon_bool(&w, true);
    }
    cpx_canon_kv_string(&w, "period_end", to);
    cpx_canon_kv_string(&w, "period_start", from);
    cpx_canon_end_object(&w);
    return canon_copy(&w);
}

void rfc3339_format(int64_t t, char out[RFC3339_LEN])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, RFC3339_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, RFC3339_LEN, "1970-01-01T00:00:00Z");
}

/* The n-digit decimal at s, or -1 when a character is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

bool rfc3339_parse(const char *s, bool round_up, int64_t *t)
{
    if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return false;
    int year = digits(s, 4), mon = digits(s + 5, 2), day = digits(s + 8, 2);
    int hour = digits(s + 11, 2), min = digits(s + 14, 2), sec = digits(s + 17, 2);
    const char *rest = s + 19;
    bool fraction = false;
    if (*rest == '.') {
        size_t n = strspn(rest + 1, "0123456789");
        if (n == 0)
            return false;
        fraction = strspn(rest + 1, "0") < n; /* a non-zero digit */
        rest += 1 + n;
    }
    if (strcmp(rest, "Z") != 0 || year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 ||
        hour < 0 || hour > 23 || min < 0 || min > 59 || sec < 0 || sec > 60)
        return false;
    struct tm tm = { .tm_year = year - 1900,
                     .tm_mon = mon - 1,
                     .tm_mday = day,
                     .tm_hour = hour,
                     .tm_min = min,
                     .tm_sec = sec };
    *t = (int64_t)timegm(&tm) + (fraction && round_up);
    return true;
}

/* Reads an optional time member: absent or null gives 0. False when present and not a time. */
static bool get_time(const json_t *obj, const char *name, bool round_up, int64_t *t)
{
    const json_t *v = json_object_get(obj, name);
    *t = 0;
    if (v == NULL || json_is_null(v))
        return true;
    return json_is_string(v) && rfc3339_parse(json_string_value(v), round_up, t);
}

bool agreement_view_parse(const json_t *obj, struct agreement_view *v)
{
    memset(v, 0, sizeof *v);
    const char *status = json_string_value(json_object_get(obj, "status"));
    if (status == NULL || strlen(status) >= sizeof v->status)
        return false;
    snprintf(v->status, sizeof v->status, "%s", status);
    /* Periods must lie within [started_at, ends_at]: round inwards when a time has a fraction. */
    if (!get_time(obj, "started_at", true, &v->started_at) ||
        !get_time(obj, "ends_at", false, &v->ends_at) ||
        !get_time(obj, "metered_until", true, &v->metered_until))
        return false;
    if (strcmp(status, "active") == 0)
        return v->started_at > 0 && v->ends_at > v->started_at;
    return true;
}

int64_t meter_device_seconds(int64_t devices, int64_t run_start_ms, int64_t run_end_ms,
                             int64_t start, int64_t end)
{
    int64_t from = run_start_ms > start * 1000 ? run_start_ms : start * 1000;
    int64_t to = run_end_ms < end * 1000 ? run_end_ms : end * 1000;
    if (to <= from)
        return 0;
    /* devices × ms / 1000 without overflowing 64 bits for 2^32 devices over 100000 hours */
    int64_t ms = to - from;
    return devices * (ms / 1000) + devices * (ms % 1000) / 1000;
}

int64_t next_report(int64_t last_end, int64_t ends_at, int64_t every, int64_t run_end, bool *final)
{
    int64_t end = last_end + every;
    /* the workload's end, or a second on when its time is reported already: a period is not
     * empty */
    int64_t done = run_end > last_end ? run_end : last_end + 1;
    *final = done <= end;
    if (*final)
        end = done;
    if (end >= ends_at) {
        end = ends_at;
        *final = true;
    }
    return end;
}

int64_t backoff_ms(int attempt, int64_t cap_ms, uint32_t rnd)
{
    int64_t base = 1000;
    for (int i = 1; i < attempt && base < cap_ms; i++)
        base *= 2;
    if (base > cap_ms)
        base = cap_ms;
    /* half fixed, so a retry never comes at once; half random, so many providers spread out */
    return base / 2 + (int64_t)(rnd % (uint32_t)(base / 2 + 1));
}
