/*
 * What the benchmarks against a real cpxd share: see kit.h.
 */
#include "bench/kit.h"

#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ledger/keyfile.h"
#include "ledger/reqsig.h"
#include "server/util.h"

static char g_name[64] = "bench", g_prefix[64] = "bench";
static const char *g_no_route;

bool kit_start(const char *name, const char *no_route, char run[16])
{
    snprintf(g_name, sizeof g_name, "%s", name);
    snprintf(g_prefix, sizeof g_prefix, "%s", name);
    for (char *p = g_prefix; *p != '\0'; p++)
        if (*p == '_')
            *p = ' ';
    g_no_route = no_route;
    if (cpx_crypto_init() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return false;
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(run, 16, "r%lx", (unsigned long)(time(NULL) & 0xffffff));
    return true;
}

const char *kit_name(void)
{
    return g_name;
}

const char *kit_prefix(void)
{
    return g_prefix;
}

static pthread_mutex_t g_err_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned g_errors_shown;

void kit_report_error(const char *fmt, ...)
{
    pthread_mutex_lock(&g_err_lock);
    if (g_errors_shown < KIT_ERRORS_SHOWN) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    } else if (g_errors_shown == KIT_ERRORS_SHOWN) {
        fprintf(stderr, "%s: more errors; only counted from here on\n", g_name);
    }
    g_errors_shown++;
    pthread_mutex_unlock(&g_err_lock);
}

double kit_secs_since(uint64_t start_ns)
{
    return (double)(mono_ns() - start_ns) / 1e9;
}

double kit_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

double kit_loadavg_1m(void)
{
    double load1 = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fscanf(f, "%lf", &load1) != 1)
            load1 = -1;
        fclose(f);
    }
    return load1;
}

/* ---- raw Ed25519 verification -------------------------------------------------------------- */

struct verify_job {
    pthread_barrier_t *start;
    const char *target, *body;
    uint64_t count;
    double seconds;
    bool bad;
};

static void *verify_thread(void *arg)
{
    struct verify_job *j = arg;
    struct cpx_keypair kp;
    cpx_keypair_generate(&kp);
    /* The signed string of the request: "POST\n<target>\n<ts>\n<64 hex>". */
    char msg[CPX_REQSIG_MESSAGE_MAX];
    long len = cpx_reqsig_message("POST", j->target, (int64_t)time(NULL), j->body, strlen(j->body),
                                  msg, sizeof msg);
    uint8_t sig[CPX_ED25519_SIG_LEN];
    cpx_sign(&kp, msg, (size_t)len, sig);
    pthread_barrier_wait(j->start);
    uint64_t t0 = mono_ns(), n = 0;
    do {
        for (int i = 0; i < 64; i++)
            if (crypto_sign_verify_detached(sig, (const unsigned char *)msg,
                                            (unsigned long long)len, kp.pk) != 0)
                j->bad = true;
        n += 64;
    } while (kit_secs_since(t0) < KIT_VERIFY_SECONDS);
    j->seconds = kit_secs_since(t0);
    j->count = n;
    cpx_keypair_wipe(&kp);
    return NULL;
}

double kit_verify_rate(const char *target, const char *body)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int n = ncpu < 1 ? 1 : ncpu > 256 ? 256 : (int)ncpu;
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    struct verify_job *jobs = calloc((size_t)n, sizeof *jobs);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    for (int i = 0; i < n; i++) {
        jobs[i].start = &start;
        jobs[i].target = target;
        jobs[i].body = body;
        pthread_create(&th[i], NULL, verify_thread, &jobs[i]);
    }
    double per_s = 0;
    bool bad = false;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        per_s += (double)jobs[i].count / jobs[i].seconds;
        bad |= jobs[i].bad;
    }
    pthread_barrier_destroy(&start);
    free(jobs);
    free(th);
    if (bad) {
        fprintf(stderr, "%s: a valid signature failed to verify\n", g_name);
        per_s = 0;
    }
    printf("%s ed25519_verify threads=%d seconds=%.1f per_s=%.0f\n", g_prefix, n,
           KIT_VERIFY_SECONDS, per_s);
    return per_s;
}

/* ---- PostgreSQL single-row commits --------------------------------------------------------- */

static bool pg_ok(PGconn *pg, PGresult *r, const char *what)
{
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "%s: %s: %s", g_name, what, PQerrorMessage(pg));
    PQclear(r);
    return ok;
}

/* Commits per second of one INSERT per transaction; 0 on failure. */
static double commit_rate(const char *url, const char *table, bool wal_sync_method, char *settings,
                          size_t cap)
{
    PGconn *pg = PQconnectdb(url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "%s: cannot connect to PostgreSQL: %s", g_name, PQerrorMessage(pg));
        PQfinish(pg);
        return 0;
    }
    /* What makes a commit durable, shown so the number can be judged. */
    PGresult *r =
        PQexec(pg, "SELECT current_setting('fsync'), current_setting('synchronous_commit'),"
                   " current_setting('wal_sync_method'), current_setting('server_version')");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        const char *version = PQgetvalue(r, 0, 3); /* "15.18 (Debian ...)": the number only */
        size_t n = (size_t)snprintf(settings, cap, "fsync=%s synchronous_commit=%s ",
                                    PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
        if (wal_sync_method && n < cap)
            n +=
                (size_t)snprintf(settings + n, cap - n, "wal_sync_method=%s ", PQgetvalue(r, 0, 2));
        if (n < cap)
            snprintf(settings + n, cap - n, "version=%.*s", (int)strcspn(version, " "), version);
    }
    PQclear(r);
    char drop[128], create[160], insert[160];
    snprintf(drop, sizeof drop, "DROP TABLE IF EXISTS %s", table);
    snprintf(create, sizeof create, "CREATE TABLE %s(id bigserial PRIMARY KEY, v bigint)", table);
    snprintf(insert, sizeof insert, "INSERT INTO %s(v) VALUES ($1::bigint)", table);
    double per_s = 0;
    if (!pg_ok(pg, PQexec(pg, "SET client_min_messages TO warning"), "set") ||
        !pg_ok(pg, PQexec(pg, drop), "drop table") ||
        !pg_ok(pg, PQexec(pg, create), "create table") ||
        !pg_ok(pg, PQprepare(pg, "ins", insert, 1, NULL), "prepare"))
        goto out;
    uint64_t t0 = mono_ns(), n = 0;
    char v[24];
    const char *params[1] = { v };
    while (kit_secs_since(t0) < KIT_COMMIT_SECONDS) {
        snprintf(v, sizeof v, "%" PRIu64, n);
        if (!pg_ok(pg, PQexecPrepared(pg, "ins", 1, params, NULL, NULL, 0), "insert"))
            goto out;
        n++;
    }
    per_s = (double)n / kit_secs_since(t0);
out:
    pg_ok(pg, PQexec(pg, drop), "drop table");
    PQfinish(pg);
    return per_s;
}

double kit_commit_rate(const char *pg_url, const char *table, bool wal_sync_method)
{
    if (pg_url == NULL) {
        printf("%s pg_commit skipped (no --pg-url)\n", g_prefix);
        return 0;
    }
    char settings[256] = "";
    double per_s = commit_rate(pg_url, table, wal_sync_method, settings, sizeof settings);
    printf("%s pg_commit seconds=%.1f per_s=%.0f %s\n", g_prefix, KIT_COMMIT_SECONDS, per_s,
           settings);
    return per_s;
}

/* ---- set-up over the API ------------------------------------------------------------------- */

void kit_cpxd_settings(struct kit_cpxd *s, int argc, char **argv)
{
    s->url = kit_setting(argc, argv, "--url", "CPX_BENCH_URL", NULL);
    s->cacert = kit_setting(argc, argv, "--cacert", "CPX_BENCH_CACERT", NULL);
    s->operator_key = kit_setting(argc, argv, "--operator-key", "CPX_BENCH_OPERATOR_KEY", NULL);
    s->pg_url = kit_setting(argc, argv, "--pg-url", "CPX_BENCH_PG_URL", NULL);
}

bool kit_operator(struct client *op, const struct kit_cpxd *s)
{
    return client_init(op, s->url, s->cacert, s->operator_key) && client_load_key(op);
}

void kit_keep_key(struct client *cl, struct kit_key *key)
{
    key->kp = cl->key.kp;
    snprintf(key->id, sizeof key->id, "%s", cl->key.identity);
    client_free(cl);
}

void kit_keys_free(struct kit_key *keys, int n)
{
    for (int i = 0; keys != NULL && i < n; i++)
        cpx_keypair_wipe(&keys[i].kp);
    free(keys);
}

char *kit_canon_text(struct cpx_canon_writer *w, const char *what)
{
    const uint8_t *out;
    size_t len;
    enum cpx_canon_error e = cpx_canon_writer_finish(w, &out, &len);
    if (e != CPX_CANON_OK) {
        fprintf(stderr, "%s: %s body: %s\n", g_name, what, cpx_canon_error_text(e));
        return NULL;
    }
    return strndup((const char *)out, len);
}

bool kit_post(struct client *cl, const char *target, const char *body, const char *idem, long want,
              json_t **json_out)
{
    char header[200];
    const char *headers[2] = { NULL, NULL };
    if (idem != NULL) {
        snprintf(header, sizeof header, "Idempotency-Key: %s", idem);
        headers[0] = header;
    }
    struct client_reply r;
    bool ok = client_call(cl, "POST", target, body, true, headers, &r);
    if (!ok) {
        fprintf(stderr, "%s: POST %s: %s\n", g_name, target, r.error);
    } else if (r.status != want) {
        fprintf(stderr, "%s: POST %s answered %ld, not %ld: %s\n", g_name, target, r.status, want,
                r.body ? r.body : "");
        const char *code =
            json_string_value(json_object_get(json_object_get(r.json, "error"), "code"));
        if (g_no_route != NULL && r.status == 404 && code != NULL && strcmp(code, "not_found") == 0)
            fprintf(stderr, "%s: cpxd has no route for POST %s: %s\n", g_name, target, g_no_route);
        ok = false;
    }
    if (ok && json_out != NULL) {
        *json_out = r.json;
        r.json = NULL;
    }
    client_reply_free(&r);
    return ok;
}

/* A new in-memory key for cl, registered with role `role`. */
static bool register_identity(struct client *cl, const char *role, int n, const char *tag)
{
    cpx_keypair_generate(&cl->key.kp);
    cpx_identity_id_for_key(cl->key.kp.pk, cl->key.identity);
    cl->have_key = true;
    char pk[45], name[64], reg_no[64];
    cpx_public_key_encode(cl->key.kp.pk, pk);
    snprintf(name, sizeof name, "Bench %s %d", role, n);
    snprintf(reg_no, sizeof reg_no, "BENCH-%s-%c%d", tag, role[0] == 'b' ? 'B' : 'P', n);
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_canon_begin_object(&w);
    cpx_canon_kv_string(&w, "name", name);
    cpx_canon_kv_string(&w, "public_key", pk);
    cpx_canon_kv_string(&w, "reg_no", reg_no);
    cpx_canon_key(&w, "roles", 5);
    cpx_canon_begin_array(&w);
    cpx_canon_string(&w, role, strlen(role));
    cpx_canon_end_array(&w);
    cpx_canon_end_object(&w);
    char *body = kit_canon_text(&w, "registration");
    cpx_canon_writer_free(&w);
    bool ok = body != NULL && kit_post(cl, "/v1/identities", body, NULL, 201, NULL);
    free(body);
    return ok;
}

static bool approve(struct client *op, const char *id)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/identities/%s/approve", id);
    return kit_post(op, target, "{}", NULL, 200, NULL);
}

static bool deposit(struct client *op, const char *id, const char *run)
{
    char target[128], idem[128];
    snprintf(target, sizeof target, "/v1/accounts/%s/deposits", id);
    snprintf(idem, sizeof idem, "bench-%s-deposit-%s", run, id);
    return kit_post(op, target, "{\"amount\":\"" KIT_DEPOSIT "\"}", idem, 201, NULL);
}

bool kit_identity(struct client *cl, struct client *op, const char *role, int n, const char *tag,
                  const char *run)
{
    return client_init(cl, op->url, op->cacert, "-") && register_identity(cl, role, n, tag) &&
           approve(op, cl->key.identity) &&
           (strcmp(role, "buyer") != 0 || deposit(op, cl->key.identity, run));
}

struct kit_key *kit_buyers(struct client *op, int n, const char *tag, const char *run)
{
    struct kit_key *keys = calloc(n > 0 ? (size_t)n : 1, sizeof *keys);
    for (int i = 0; keys != NULL && i < n; i++) {
        struct client b;
        if (!kit_identity(&b, op, "buyer", i, tag, run)) {
            kit_keys_free(keys, i);
            return NULL;
        }
        kit_keep_key(&b, &keys[i]);
    }
    return keys;
}

int kit_regions(struct client *cl, char out[][64], int max)
{
    struct client_reply r;
    int n = 0;
    if (client_call(cl, "GET", "/v1/regions", NULL, false, NULL, &r) && r.status == 200) {
        json_t *items = json_object_get(r.json, "items");
        for (size_t i = 0; i < json_array_size(items) && n < max; i++) {
            const char *id = json_string_value(json_object_get(json_array_get(items, i), "id"));
            if (id != NULL)
                snprintf(out[n++], 64, "%s", id);
        }
    }
    if (n == 0)
        fprintf(stderr, "%s: GET /v1/regions: %ld %s\n", g_name, r.status,
                r.body ? r.body : r.error);
    client_reply_free(&r);
    return n;
}

bool kit_create_listing(struct client *provider, const char *region, const char *endpoint,
                        long long devices, char listing[64])
{
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_canon_begin_object(&w);
    cpx_canon_kv_string(&w, "device_type", "gpu");
    cpx_canon_kv_int(&w, "devices", devices);
    cpx_canon_kv_string(&w, "endpoint", endpoint);
    cpx_canon_kv_string(&w, "interconnect", "nvlink");
    cpx_canon_kv_int(&w, "memory_gb", 80);
    cpx_canon_kv_string(&w, "model", "H100-SXM");
    cpx_canon_key(&w, "precisions", 10);
    cpx_canon_begin_object(&w);
    cpx_canon_key(&w, "bf16", 4);
    cpx_canon_begin_object(&w);
    cpx_canon_kv_int(&w, "price_micro", KIT_ASK_MICRO);
    cpx_canon_kv_int(&w, "tflops", KIT_LISTING_TFLOPS);
    cpx_canon_end_object(&w);
    cpx_canon_end_object(&w);
    cpx_canon_kv_string(&w, "region", region);
    cpx_canon_kv_string(&w, "time_in_force", "gtc");
    cpx_canon_kv_string(&w, "vendor", "nvidia");
    cpx_canon_end_object(&w);
    char *body = kit_canon_text(&w, "listing");
    cpx_canon_writer_free(&w);
    json_t *j = NULL;
    bool ok = body != NULL && kit_post(provider, "/v1/listings", body, NULL, 201, &j);
    free(body);
    if (ok) {
        const char *id = json_string_value(json_object_get(j, "id"));
        snprintf(listing, 64, "%s", id != NULL ? id : "?");
    }
    json_decref(j);
    return ok;
}

/* ---- kept-alive clients on one multi handle ------------------------------------------------ */

static size_t on_reply(char *data, size_t size, size_t n, void *arg)
{
    struct kit_lane *c = arg;
    size_t len = size * n, room = c->reply_cap - 1 - c->reply_len;
    size_t take = len < room ? len : room;
    memcpy(c->reply + c->reply_len, data, take);
    c->reply_len += take;
    c->reply[c->reply_len] = '\0';
    return len;
}

bool kit_lane_init(struct kit_lane *c, const char *cacert, const struct cpx_keypair *kp,
                   const char *id, int index, size_t reply_cap)
{
    memset(c, 0, sizeof *c);
    c->kp = kp;
    c->id = id;
    c->index = index;
    c->reply_cap = reply_cap < 1 || reply_cap > sizeof c->reply ? sizeof c->reply : reply_cap;
    cpx_canon_writer_init(&c->cw);
    c->h = curl_easy_init();
    if (c->h == NULL)
        return false;
    curl_easy_setopt(c->h, CURLOPT_POST, 1L);
    curl_easy_setopt(c->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c->h, CURLOPT_CAINFO, cacert); /* verified: the bench's own certificate */
    curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_reply);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
    return true;
}

void kit_lane_free(struct kit_lane *c)
{
    curl_easy_cleanup(c->h);
    curl_slist_free_all(c->headers);
    cpx_canon_writer_free(&c->cw);
}

bool kit_lane_prepare(struct kit_lane *c, const char *base, const char *target, const char *header)
{
    const uint8_t *out;
    size_t len;
    if (cpx_canon_writer_finish(&c->cw, &out, &len) != CPX_CANON_OK || len >= sizeof c->body)
        return false;
    memcpy(c->body, out, len);
    c->body[len] = '\0';
    c->body_len = len;
    struct cpx_auth auth = { 0 };
    snprintf(auth.id, sizeof auth.id, "%s", c->id);
    if (!cpx_reqsig_sign(c->kp, "POST", target, (int64_t)time(NULL), c->body, c->body_len, &auth))
        return false;
    char value[CPX_AUTH_HEADER_MAX], line[CPX_AUTH_HEADER_MAX + 32];
    cpx_auth_format(&auth, value);
    snprintf(line, sizeof line, "Authorization: %s", value);
    curl_slist_free_all(c->headers);
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    c->headers = curl_slist_append(c->headers, "Expect:");
    c->headers = curl_slist_append(c->headers, line);
    if (header != NULL)
        c->headers = curl_slist_append(c->headers, header);
    snprintf(c->url, sizeof c->url, "%s%s", base, target);
    curl_easy_setopt(c->h, CURLOPT_URL, c->url);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    c->reply_len = 0;
    c->reply[0] = '\0';
    return true;
}

void kit_drive_run(struct kit_drive *d)
{
    int active = 0;
    for (;;) {
        uint64_t now = mono_ns(), wake = now + 100000000ull;
        int alive = 0;
        for (int i = 0; i < d->n; i++) {
            struct kit_lane *c = &d->lanes[i];
            if (c->busy || c->stopped) {
                alive += c->busy;
                continue;
            }
            uint64_t at = 0;
            enum kit_next r = d->next(d, c, now, &at);
            if (r == KIT_STOP) {
                c->stopped = true;
                continue;
            }
            alive++;
            if (r == KIT_WAIT) {
                if (at < wake)
                    wake = at;
                continue;
            }
            c->started = mono_ns();
            if (curl_multi_add_handle(d->m, c->h) != CURLM_OK) {
                kit_report_error("%s: cannot start a request\n", g_name);
                c->stopped = true;
                d->failed = true;
                continue;
            }
            c->busy = true;
            active++;
        }
        if (alive == 0 && active == 0)
            break;
        int running;
        CURLMcode mc = curl_multi_perform(d->m, &running);
        if (mc != CURLM_OK) {
            kit_report_error("%s: curl_multi_perform: %s\n", g_name, curl_multi_strerror(mc));
            d->failed = true;
            break;
        }
        CURLMsg *msg;
        int left;
        bool finished = false;
        while ((msg = curl_multi_info_read(d->m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            uint64_t done = mono_ns();
            struct kit_lane *c;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            CURLcode rc = msg->data.result;
            long status = 0;
            if (rc == CURLE_OK)
                curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
            curl_multi_remove_handle(d->m, c->h);
            c->busy = false;
            active--;
            d->done(d, c, rc, status, done);
            finished = true;
        }
        if (!finished) {
            now = mono_ns();
            int ms = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;
            curl_multi_poll(d->m, NULL, 0, ms > 100 ? 100 : ms, NULL);
        }
    }
}

/* ---- samples ------------------------------------------------------------------------------- */

void kit_sample_add(struct kit_samples *s, int64_t x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4096;
        int64_t *bigger = realloc(s->v, cap * sizeof *bigger);
        if (bigger == NULL)
            return;
        s->v = bigger;
        s->cap = cap;
    }
    s->v[s->n++] = x;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

void kit_sample_sort(struct kit_samples *s)
{
    if (s->n > 0)
        qsort(s->v, s->n, sizeof *s->v, cmp_i64);
}

double kit_quantile(const int64_t *v, size_t n, double q, double div)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)(q * (double)n);
    if (k >= n)
        k = n - 1;
    return (double)v[k] / div;
}

/* ---- settings ------------------------------------------------------------------------------ */

const char *kit_setting(int argc, char **argv, const char *flag, const char *env, const char *dflt)
{
    for (int i = 1; i + 1 < argc; i += 2)
        if (strcmp(argv[i], flag) == 0)
            return argv[i + 1];
    const char *v = getenv(env);
    return v != NULL && *v != '\0' ? v : dflt;
}

bool kit_flags_known(int argc, char **argv, const char *const *flags, size_t n)
{
    for (int i = 1; i < argc; i += 2) {
        bool known = false;
        for (size_t f = 0; f < n; f++)
            known |= strcmp(argv[i], flags[f]) == 0;
        if (!known || i + 1 >= argc)
            return false;
    }
    return true;
}
