/*
 * Migrations: see migrate.h.
 *
 * schema_migrations records each applied file's name and SHA-256. Applying is all or nothing: one
 * transaction covers every pending file and its record, so a failed migration leaves the schema as
 * it was. An advisory lock (released at COMMIT) serialises concurrent starts.
 */
#include "server/migrate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/codec.h"
#include "ledger/crypto.h"

#define MIGRATION_LOCK "7265746167" /* arbitrary, fixed: pg_advisory_xact_lock key */

/* Runs sql with params; returns the result when it succeeded, else NULL and *err. */
static PGresult *run(PGconn *pg, const char *sql, int n, const char *const *params, char **err)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    if (asprintf(err, "%s", PQerrorMessage(pg)) < 0)
        *err = NULL;
    PQclear(r);
    return NULL;
}

/* Runs sql with params and discards the result; returns false and *err on failure. */
static bool exec(PGconn *pg, const char *sql, int n, const char *const *params, char **err)
{
    PGresult *r = run(pg, sql, n, params, err);
    PQclear(r);
    return r != NULL;
}

static bool known(const struct migration *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].name, name) == 0)
            return true;
    return false;
}

int migrate(PGconn *pg, const struct migration *list, size_t n, int *applied, char **err)
{
    *applied = 0;
    *err = NULL;
    PGresult *r = NULL;
    if (!exec(pg, "BEGIN", 0, NULL, err) ||
        !exec(pg, "SET LOCAL client_min_messages TO warning", 0, NULL, err) ||
        !exec(pg, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", 0, NULL, err) ||
        !exec(pg,
              "CREATE TABLE IF NOT EXISTS schema_migrations ("
              " name text PRIMARY KEY, sha256 text NOT NULL,"
              " applied_at timestamptz NOT NULL DEFAULT now())",
              0, NULL, err))
        goto fail;
    r = run(pg, "SELECT name, sha256 FROM schema_migrations ORDER BY name", 0, NULL, err);
    if (r == NULL)
        goto fail;
    for (int i = 0; i < PQntuples(r); i++)
        if (!known(list, n, PQgetvalue(r, i, 0))) {
            if (asprintf(err,
                         "the database has migration %s, which this cpxd does not know "
                         "(is it older than the schema?)",
                         PQgetvalue(r, i, 0)) < 0)
                *err = NULL;
            goto fail;
        }
    for (size_t m = 0; m < n; m++) {
        uint8_t digest[CPX_SHA256_LEN];
        char hex[2 * CPX_SHA256_LEN + 1];
        cpx_sha256(list[m].sql, list[m].len, digest);
        cpx_hex_encode(digest, sizeof digest, hex);
        const char *found = NULL;
        for (int i = 0; i < PQntuples(r) && found == NULL; i++)
            if (strcmp(PQgetvalue(r, i, 0), list[m].name) == 0)
                found = PQgetvalue(r, i, 1);
        if (found != NULL) {
            if (strcmp(found, hex) != 0) {
                if (asprintf(err,
                             "migration %s was changed after it was applied; add a new "
                             "migration instead",
                             list[m].name) < 0)
                    *err = NULL;
                goto fail;
            }
            continue;
        }
        PGresult *x = PQexec(pg, list[m].sql);
        if (PQresultStatus(x) != PGRES_COMMAND_OK && PQresultStatus(x) != PGRES_TUPLES_OK) {
            if (asprintf(err, "migration %s failed: %s", list[m].name, PQerrorMessage(pg)) < 0)
                *err = NULL;
            PQclear(x);
            goto fail;
        }
        PQclear(x);
        const char *params[] = { list[m].name, hex };
        if (!exec(pg, "INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)", 2, params,
                  err))
            goto fail;
        (*applied)++;
    }
    PQclear(r);
    r = NULL;
    if (!exec(pg, "COMMIT", 0, NULL, err))
        goto fail;
    return 0;
fail:
    PQclear(r);
    PGresult *x = PQexec(pg, "ROLLBACK");
    PQclear(x);
    *applied = 0;
    if (*err == NULL)
        *err = strdup("migration failed");
    return -1;
}
