/*
 * Migrations: see migrate.h.
 *
 * schema_migrations records each applied file's name and SHA-256. Applying is all or nothing: one
 * transaction covers every pending file and its record, so a failed migration leaves the schema as
 * it was. An advisory lock (released at COMMIT) serialises concurrent starts.
 */
#include "server/migrate.h"

#include <stdarg.h>
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

/* What the application role may do with each table: nothing more. */
static const struct {
    const char *table;
    const char *privileges;
} app_grants[] = {
    { "schema_migrations", "SELECT" },        { "identities", "SELECT, INSERT, UPDATE" },
    { "idempotency_keys", "SELECT, INSERT" }, { "request_signatures", "SELECT, INSERT, DELETE" },
    { "retired_keys", "SELECT, INSERT" },     { "ledger_records", "SELECT, INSERT" },
    { "ledger_nodes", "SELECT, INSERT" },     { "ledger_checkpoints", "SELECT, INSERT" },
    { "ledger_head", "SELECT, UPDATE" },
};
#define N_APP_GRANTS (sizeof app_grants / sizeof app_grants[0])

/* Runs the statement printf(fmt, ...) (identifiers already quoted); false and *err on failure. */
__attribute__((format(printf, 3, 4))) static bool execf(PGconn *pg, char **err, const char *fmt,
                                                        ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = NULL;
    int n = vasprintf(&sql, fmt, ap);
    va_end(ap);
    if (n < 0) {
        *err = strdup("out of memory");
        return false;
    }
    bool ok = exec(pg, sql, 0, NULL, err);
    free(sql);
    return ok;
}

/* The privileges app_grants gives table, or NULL when it does not name it. */
static const char *grants_of(const char *table)
{
    for (size_t i = 0; i < N_APP_GRANTS; i++)
        if (strcmp(app_grants[i].table, table) == 0)
            return app_grants[i].privileges;
    return NULL;
}

/* Takes ownership of every table of the public schema and grants the app its privileges. */
static bool grant_tables(PGconn *pg, const char *app, char **err)
{
    PGresult *r = run(pg,
                      "SELECT quote_ident(c.relname), c.relname FROM pg_class c "
                      "JOIN pg_namespace n ON n.oid = c.relnamespace "
                      "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 2",
                      0, NULL, err);
    if (r == NULL)
        return false;
    bool ok = true;
    for (int i = 0; ok && i < PQntuples(r); i++) {
        const char *quoted = PQgetvalue(r, i, 0), *privileges = grants_of(PQgetvalue(r, i, 1));
        if (privileges == NULL) {
            if (asprintf(err,
                         "table %s has no privileges for the application role: name it in "
                         "app_grants (server/migrate.c)",
                         PQgetvalue(r, i, 1)) < 0)
                *err = NULL;
            ok = false;
            break;
        }
        ok = execf(pg, err, "ALTER TABLE %s OWNER TO CURRENT_USER", quoted) &&
             execf(pg, err, "REVOKE ALL ON %s FROM %s", quoted, app) &&
             execf(pg, err, "GRANT %s ON %s TO %s", privileges, quoted, app);
    }
    PQclear(r);
    return ok;
}

/* Takes ownership of every function of the public schema (the ledger's triggers among them). */
static bool own_functions(PGconn *pg, char **err)
{
    PGresult *r = run(pg,
                      "SELECT p.oid::regprocedure FROM pg_proc p "
                      "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'",
                      0, NULL, err);
    if (r == NULL)
        return false;
    bool ok = true;
    for (int i = 0; ok && i < PQntuples(r); i++)
        ok = execf(pg, err, "ALTER FUNCTION %s OWNER TO CURRENT_USER", PQgetvalue(r, i, 0));
    PQclear(r);
    return ok;
}

int migrate_grant(PGconn *admin, const char *app_role, char **err)
{
    *err = NULL;
    char *app = PQescapeIdentifier(admin, app_role, strlen(app_role));
    PGresult *db = NULL;
    bool ok = app != NULL && exec(admin, "BEGIN", 0, NULL, err) &&
              exec(admin, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", 0, NULL, err) &&
              (db = run(admin, "SELECT quote_ident(current_database())", 0, NULL, err)) != NULL &&
              execf(admin, err, "ALTER DATABASE %s OWNER TO CURRENT_USER", PQgetvalue(db, 0, 0)) &&
              exec(admin, "ALTER SCHEMA public OWNER TO CURRENT_USER", 0, NULL, err) &&
              exec(admin, "REVOKE CREATE ON SCHEMA public FROM PUBLIC", 0, NULL, err) &&
              execf(admin, err, "GRANT USAGE ON SCHEMA public TO %s", app) &&
              grant_tables(admin, app, err) && own_functions(admin, err) &&
              exec(admin, "COMMIT", 0, NULL, err);
    if (!ok) {
        if (app == NULL && *err == NULL)
            *err = strdup("cannot quote the application role's name");
        PGresult *rb = PQexec(admin, "ROLLBACK");
        PQclear(rb);
    }
    PQclear(db);
    PQfreemem(app);
    return ok ? 0 : -1;
}
