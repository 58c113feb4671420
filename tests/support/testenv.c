/*
 * Test environment: databases, a real cpxd, clients and raw requests. See testenv.h.
 */
#include "tests/support/testenv.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        fail_msg("%s is not set: run the tests with `make test`", name);
    return v;
}

bool test_env_ready(void)
{
    static const char *const names[] = { "CPX_TEST_PG_HOST", "CPX_TEST_VAR", "CPX_TEST_BIN" };
    for (size_t i = 0; i < 3; i++)
        if (getenv(names[i]) == NULL) {
            fprintf(stderr, "%s is not set: run this test through `make test`\n", names[i]);
            return false;
        }
    return true;
}

int test_main(const struct CMUnitTest *tests, size_t n, int (*setup)(void **),
              int (*teardown)(void **))
{
    if (!test_env_ready() || cpx_crypto_init() != 0 ||
        curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    int rc = _cmocka_run_group_tests("tests", tests, n, setup, teardown);
    curl_global_cleanup();
    return rc;
}

static void admin_url(const char *db, char *out, size_t cap)
{
    snprintf(out, cap, "postgresql:///%s?host=%s&user=cpx_admin", db, env("CPX_TEST_PG_HOST"));
}

/* The database name of a URL made by test_db_create ("postgresql:///NAME?..."). */
static void db_name(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, ":///");
    assert_non_null(p);
    p += 4;
    size_t n = strcspn(p, "?");
    snprintf(out, cap, "%.*s", (int)n, p);
}

static PGconn *admin_connect(const char *db)
{
    char url[512];
    admin_url(db, url, sizeof url);
    return test_db_connect(url);
}

void test_db_create(char url[512])
{
    static unsigned counter;
    char name[64], sql[160];
    snprintf(name, sizeof name, "cpx_t%ld_%u_%ld", (long)getpid(), counter++, (long)time(NULL));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s OWNER cpx", name);
    PGconn *pg = admin_connect("postgres");
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("create database: %s", PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
    snprintf(url, 512, "postgresql:///%s?host=%s&user=cpx", name, env("CPX_TEST_PG_HOST"));
}

PGconn *test_db_connect(const char *url)
{
    PGconn *pg = PQconnectdb(url);
    if (PQstatus(pg) != CONNECTION_OK)
        fail_msg("connect %s: %s", url, PQerrorMessage(pg));
    return pg;
}

static PGresult *admin_query(const char *url, const char *sql)
{
    char db[128];
    db_name(url, db, sizeof db);
    PGconn *pg = admin_connect(db);
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(pg));
    PQfinish(pg);
    return r;
}

int64_t test_db_scalar(const char *url, const char *sql)
{
    PGresult *r = admin_query(url, sql);
    int64_t v = PQntuples(r) > 0 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return v;
}

void test_db_exec(const char *url, const char *sql)
{
    PQclear(admin_query(url, sql));
}

/* Makes a fresh scratch folder under CPX_TEST_VAR. */
static void scratch_dir(char *out, size_t cap)
{
    static unsigned counter;
    snprintf(out, cap, "%s/t%ld_%u", env("CPX_TEST_VAR"), (long)getpid(), counter++);
    if (mkdir(out, 0700) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", out, strerror(errno));
}

/* Runs `cpx keygen --out path`. */
static void keygen(const char *path)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/cpx keygen --out '%s' >/dev/null", env("CPX_TEST_BIN"), path);
    if (system(cmd) != 0)
        fail_msg("%s failed", cmd);
}

static bool read_port(const char *path, uint16_t *port)
{
    FILE *f = fopen(path, "r");
    unsigned p = 0;
    bool ok = f != NULL && fscanf(f, "%u", &p) == 1 && p > 0 && p < 65536;
    if (f != NULL)
        fclose(f);
    *port = (uint16_t)p;
    return ok;
}

/* Starts cpxd for ts, whose dir, database and operator key are set. */
static void spawn(struct test_server *ts, const char *const *args)
{
    char port_file[320], cpxd[512], cert[512], key[512];
    snprintf(port_file, sizeof port_file, "%s/port", ts->dir);
    unlink(port_file);
    snprintf(cpxd, sizeof cpxd, "%s/cpxd", env("CPX_TEST_BIN"));
    snprintf(cert, sizeof cert, "%s/tls/cert.pem", env("CPX_TEST_VAR"));
    snprintf(key, sizeof key, "%s/tls/key.pem", env("CPX_TEST_VAR"));
    const char *argv[64] = { cpxd,
                             "--port",
                             "0",
                             "--port-file",
                             port_file,
                             "--tls-cert",
                             cert,
                             "--tls-key",
                             key,
                             "--database-url",
                             ts->db_url,
                             "--operator-key",
                             ts->operator_key,
                             "--exchange-key",
                             ts->exchange_key,
                             "--ledger-origin",
                             TEST_LEDGER_ORIGIN,
                             "--threads",
                             "4",
                             "--log-level",
                             "warn" };
    size_t n = 21;
    for (size_t i = 0; args != NULL && args[i] != NULL && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        /* A test that fails never reaches its test_server_stop: cpxd then stops when the test
         * process ends, instead of outliving it. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
            _exit(127);
        int fd = open(ts->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        execv(cpxd, (char *const *)argv);
        _exit(127);
    }
    ts->pid = pid;
    for (int i = 0; i < 300 && !read_port(port_file, &ts->port); i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            ts->pid = 0;
            fail_msg("cpxd exited at start (see %s)", ts->log);
        }
        usleep(50000);
    }
    if (ts->port == 0) {
        test_server_stop(ts);
        fail_msg("cpxd did not start listening within 15 s (see %s)", ts->log);
    }
    snprintf(ts->url, sizeof ts->url, "https://127.0.0.1:%u", ts->port);
}

void test_server_start(struct test_server *ts, const char *db_url, const char *const *args)
{
    memset(ts, 0, sizeof *ts);
    scratch_dir(ts->dir, sizeof ts->dir);
    if (db_url != NULL)
        snprintf(ts->db_url, sizeof ts->db_url, "%s", db_url);
    else
        test_db_create(ts->db_url);
    snprintf(ts->operator_key, sizeof ts->operator_key, "%s/operator.key", ts->dir);
    keygen(ts->operator_key);
    snprintf(ts->exchange_key, sizeof ts->exchange_key, "%s/exchange.key", ts->dir);
    keygen(ts->exchange_key);
    snprintf(ts->verifier_key, sizeof ts->verifier_key, "%s/exchange.vkey", ts->dir);
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "%s/cpxd --exchange-key '%s' --ledger-origin %s --print-verifier-key >'%s'",
             env("CPX_TEST_BIN"), ts->exchange_key, TEST_LEDGER_ORIGIN, ts->verifier_key);
    if (system(cmd) != 0)
        fail_msg("%s failed", cmd);
    snprintf(ts->log, sizeof ts->log, "%s/cpxd.log", ts->dir);
    spawn(ts, args);
}

void test_server_restart(struct test_server *ts, const char *const *args)
{
    assert_int_equal(ts->pid, 0);
    ts->port = 0;
    spawn(ts, args);
}

int test_server_stop(struct test_server *ts)
{
    if (ts->pid <= 0)
        return -1;
    kill(ts->pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 200; i++) {
        if (waitpid(ts->pid, &status, WNOHANG) == ts->pid) {
            ts->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        usleep(50000);
    }
    kill(ts->pid, SIGKILL);
    waitpid(ts->pid, &status, 0);
    ts->pid = 0;
    return -1;
}

void test_client(const struct test_server *ts, struct client *cl, const char *key)
{
    char cacert[512];
    snprintf(cacert, sizeof cacert, "%s/tls/cert.pem", env("CPX_TEST_VAR"));
    assert_true(client_init(cl, ts->url, cacert, key));
    if (key != NULL && access(key, F_OK) == 0)
        assert_true(client_load_key(cl));
}

void test_identity(const struct test_server *ts, const char *name, const char *roles, bool approve,
                   struct client *cl, char *id)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.key", ts->dir, name);
    unlink(path);
    keygen(path);
    test_identity_with_key(ts, path, name, roles, approve, cl, id);
}

void test_identity_with_key(const struct test_server *ts, const char *key_path, const char *name,
                            const char *roles, bool approve, struct client *cl, char *id)
{
    test_client(ts, cl, key_path);
    assert_true(cl->have_key);
    json_t *list = json_array();
    for (const char *p = roles; *p != '\0';) {
        size_t n = strcspn(p, ",");
        json_array_append_new(list, json_stringn(p, n));
        p += n + (p[n] == ',');
    }
    char pk[45], reg_no[64];
    cpx_public_key_encode(cl->key.kp.pk, pk);
    snprintf(reg_no, sizeof reg_no, "REG-%s", cl->key.identity + 4);
    json_t *body = json_pack("{s:s, s:s, s:o, s:s}", "name", name, "reg_no", reg_no, "roles", list,
                             "public_key", pk);
    char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(body);
    struct client_reply r;
    assert_true(client_call(cl, "POST", "/v1/identities", text, true, NULL, &r));
    free(text);
    if (r.status != 201)
        fail_msg("register %s: %ld %s", name, r.status, r.body ? r.body : "");
    snprintf(id, CPX_ID_MAX, "%s", json_string_value(json_object_get(r.json, "id")));
    client_reply_free(&r);
    if (!approve)
        return;
    struct client op;
    test_client(ts, &op, ts->operator_key);
    char target[128];
    snprintf(target, sizeof target, "/v1/identities/%s/approve", id);
    assert_true(client_call(&op, "POST", target, "{}", true, NULL, &r));
    if (r.status != 200)
        fail_msg("approve %s: %ld %s", name, r.status, r.body ? r.body : "");
    client_reply_free(&r);
    client_free(&op);
}

struct raw_ctx {
    struct raw_reply *out;
    size_t len;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct raw_ctx *c = arg;
    size_t len = size * n;
    char *bigger = realloc(c->out->body, c->len + len + 1);
    if (bigger == NULL)
        return 0;
    memcpy(bigger + c->len, data, len);
    c->len += len;
    bigger[c->len] = '\0';
    c->out->body = bigger;
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct raw_ctx *c = arg;
    size_t len = size * n;
    if (len > 7 && strncasecmp(data, "Allow: ", 7) == 0)
        snprintf(c->out->allow, sizeof c->out->allow, "%.*s", (int)strcspn(data + 7, "\r\n"),
                 data + 7);
    return len;
}

void raw_call(const struct test_server *ts, const char *method, const char *target,
              const char *const *headers, const char *body, size_t len, struct raw_reply *out)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[4200], cacert[512];
    snprintf(url, sizeof url, "%s%s", ts->url, target);
    snprintf(cacert, sizeof cacert, "%s/tls/cert.pem", env("CPX_TEST_VAR"));
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        list = curl_slist_append(list, headers[i]);
    /* libcurl adds "Expect: 100-continue" to large bodies; send them straight away. */
    list = curl_slist_append(list, "Expect:");
    struct raw_ctx ctx = { .out = out };
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_CAINFO, cacert);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &ctx);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &ctx);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(list);
    if (rc != CURLE_OK) {
        curl_easy_cleanup(c);
        fail_msg("%s %s: %s", method, target, curl_easy_strerror(rc));
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_cleanup(c);
    if (out->body != NULL)
        out->json = json_loads(out->body, 0, NULL);
}

void raw_reply_free(struct raw_reply *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

const char *reply_code(const json_t *json)
{
    const char *code = json_string_value(json_object_get(json_object_get(json, "error"), "code"));
    return code ? code : "";
}

void sign_header(const struct cpx_keyfile *kf, const char *method, const char *target, int64_t ts,
                 const char *body, size_t len, char line[CPX_AUTH_HEADER_MAX + 32])
{
    struct cpx_auth auth = { 0 };
    snprintf(auth.id, sizeof auth.id, "%s", kf->identity);
    assert_true(cpx_reqsig_sign(&kf->kp, method, target, ts, body, len, &auth));
    char value[CPX_AUTH_HEADER_MAX];
    cpx_auth_format(&auth, value);
    snprintf(line, CPX_AUTH_HEADER_MAX + 32, "Authorization: %s", value);
}
