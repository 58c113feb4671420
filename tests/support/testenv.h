/*
 * What the database and end-to-end tests share: fresh databases on the throwaway cluster that
 * `make test` starts, a real cpxd started on a free port and stopped again, signed clients, and
 * raw HTTPS requests for the tests that must send what no well-behaved client would.
 *
 * scripts/test.sh exports the environment these read:
 *   CPX_TEST_PG_HOST   socket folder of the throwaway cluster
 *   CPX_TEST_VAR       the test state folder (its tls/ holds the certificate)
 *   CPX_TEST_BIN       folder of the cpxd and cpx binaries under test
 * A test run outside `make test` finds them missing and says so (test_env_ready()).
 */
#ifndef CPX_TESTS_TESTENV_H
#define CPX_TESTS_TESTENV_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "clients/common/client.h"

/* Prints what is missing and returns false when not run under `make test`. */
bool test_env_ready(void);

struct CMUnitTest;

/* The main of a database or end-to-end test: checks the environment, initialises the crypto and
 * HTTP libraries, runs the group and returns its exit status. */
int test_main(const struct CMUnitTest *tests, size_t n, int (*setup)(void **),
              int (*teardown)(void **));

/* Creates an empty database owned by role cpx; writes its URL into url (512 bytes). */
void test_db_create(char url[512]);

/* Connects to url (fails the test when it cannot). */
PGconn *test_db_connect(const char *url);

/* Runs sql as superuser on the database of url and returns the first column of the first row
 * as an integer (0 when there is no row). Fails the test on error. */
int64_t test_db_scalar(const char *url, const char *sql);

/* Runs sql as superuser on the database of url; fails the test on error. */
void test_db_exec(const char *url, const char *sql);

/* A cpxd under test. */
#define TEST_LEDGER_ORIGIN "cpx.test/ledger" /* the ledger origin test servers use */

struct test_server {
    pid_t pid;              /* its process */
    uint16_t port;          /* port it listens on */
    char url[64];           /* https://127.0.0.1:port */
    char db_url[512];       /* its database */
    char dir[256];          /* scratch folder: operator key, logs, key files */
    char operator_key[320]; /* key file of the bootstrap operator */
    char exchange_key[320]; /* key file of the exchange's ledger key */
    char verifier_key[320]; /* file holding its verifier key string, for cpx-audit */
    char log[320];          /* cpxd's output */
};

/*
 * Starts cpxd on a fresh database (or on db_url when not NULL) with the given extra arguments
 * (NULL-terminated, may be NULL) and waits until /healthz answers. Fails the test on error.
 */
void test_server_start(struct test_server *ts, const char *db_url, const char *const *args);

/* Starts ts's cpxd again on the same database, key and folder after test_server_stop. */
void test_server_restart(struct test_server *ts, const char *const *args);

/* Stops cpxd with SIGTERM and returns its exit status (-1 when it had to be killed). */
int test_server_stop(struct test_server *ts);

/* Sets up cl to talk to ts with the key file `key` (loaded when it exists). */
void test_client(const struct test_server *ts, struct client *cl, const char *key);

/* Makes a new key file in ts->dir named name.key, registers it with roles (comma-separated
 * role words) and, when approve, approves it as the operator. Sets up cl to sign with it and
 * writes its id into id (CPX_ID_MAX bytes). */
void test_identity(const struct test_server *ts, const char *name, const char *roles, bool approve,
                   struct client *cl, char *id);

/* The same with an existing key file (e.g. the same organisation on a second exchange). */
void test_identity_with_key(const struct test_server *ts, const char *key_path, const char *name,
                            const char *roles, bool approve, struct client *cl, char *id);

/* A raw reply. */
struct raw_reply {
    long status;
    char *body;     /* malloc'd, NUL-terminated */
    json_t *json;   /* parsed body or NULL */
    char allow[64]; /* Allow header, when present */
};

/*
 * Sends exactly this request to ts: headers is a NULL-terminated list of "Name: value" lines
 * (may be NULL), body may be NULL, len is its length. Fails the test when no reply arrives.
 */
void raw_call(const struct test_server *ts, const char *method, const char *target,
              const char *const *headers, const char *body, size_t len, struct raw_reply *out);

void raw_reply_free(struct raw_reply *r);

/* The error code of a reply ({"error":{"code":...}}), or "" when it has none. */
const char *reply_code(const json_t *json);

/* Writes "Authorization: CPX-Ed25519 ..." for the request signed by kf at ts into line. */
void sign_header(const struct cpx_keyfile *kf, const char *method, const char *target, int64_t ts,
                 const char *body, size_t len, char line[CPX_AUTH_HEADER_MAX + 32]);

#endif
