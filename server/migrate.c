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
        !exec(pg, "SET LOCAL search_path = public", 0, NULL, err) ||
        !exec(pg, "SET LOCAL lock_timeout = '10s'", 0, NULL, err) ||
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
    { "schema_migrations", "SELECT" },          { "identities", "SELECT, INSERT, UPDATE" },
    { "idempotency_keys", "SELECT, INSERT" },   { "request_signatures", "SELECT, INSERT, DELETE" },
    { "retired_keys", "SELECT, INSERT" },       { "ledger_records", "SELECT, INSERT" },
    { "ledger_nodes", "SELECT, INSERT" },       { "ledger_checkpoints", "SELECT, INSERT" },
    { "ledger_head", "SELECT, UPDATE" },        { "sequencer_commands", "SELECT, INSERT" },
    { "sequencer_batches", "SELECT, INSERT" },  { "market_names", "SELECT, INSERT" },
    { "listings", "SELECT, INSERT, UPDATE" },   { "jobs", "SELECT, INSERT" },
    { "orders", "SELECT, INSERT, UPDATE" },     { "agreements", "SELECT, INSERT, UPDATE" },
    { "accounts", "SELECT, INSERT, UPDATE" },   { "entries", "SELECT, INSERT" },
    { "deliveries", "SELECT, INSERT, UPDATE" }, { "delivery_attempts", "SELECT, INSERT" },
    { "usage_reports", "SELECT, INSERT" },      { "bills", "SELECT, INSERT, UPDATE" },
};
#define N_APP_GRANTS (sizeof app_grants / sizeof app_grants[0])

/* Every table privilege there is, in the order the check query below asks for them. */
static const char *const all_privileges[] = { "SELECT",   "INSERT",     "UPDATE", "DELETE",
                                              "TRUNCATE", "REFERENCES", "TRIGGER" };
#define N_PRIVILEGES (sizeof all_privileges / sizeof all_privileges[0])

/* Sets *err to a formatted message. */
__attribute__((format(printf, 2, 3))) static void fail_with(char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0)
        *err = NULL;
    va_end(ap);
}

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

/*
 * Refuses an application role that could rewrite the ledger whatever it is granted: a superuser,
 * one that bypasses row security, or a member of the administrator's role.
 */
static bool app_role_plain(PGconn *pg, const char *app_role, char **err)
{
    const char *params[] = { app_role };
    PGresult *r = run(pg,
                      "SELECT rolsuper OR rolbypassrls OR pg_has_role($1, current_user, 'MEMBER') "
                      "FROM pg_roles WHERE rolname = $1",
                      1, params, err);
    if (r == NULL)
        return false;
    bool plain = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "f") == 0;
    PQclear(r);
    if (!plain)
        fail_with(err,
                  "the application role %s is a superuser, bypasses row security or is a member "
                  "of the administrator's role: it could rewrite the ledger",
                  app_role);
    return plain;
}

/*
 * Is everything already as migrate_grant makes it? The app owns nothing here, cannot create in
 * the database or the schema, and holds exactly its privileges on tables the administrator owns.
 * Refuses (false, *err) a relation app_grants does not name. Read-only: takes no table locks.
 */
static bool grants_in_place(PGconn *pg, const char *app_role, bool *done, char **err)
{
    const char *params[] = { app_role };
    PGresult *r = run(pg,
                      "SELECT (SELECT count(*) FROM pg_shdepend d WHERE d.deptype = 'o' "
                      "  AND d.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1) "
                      "  AND d.dbid IN (0, (SELECT oid FROM pg_database "
                      "                     WHERE datname = current_database()))) = 0 "
                      "AND NOT has_database_privilege($1, current_database(), 'CREATE') "
                      "AND NOT has_schema_privilege($1, 'public', 'CREATE')",
                      1, params, err);
    if (r == NULL)
        return false;
    *done = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    r = run(pg,
            "SELECT c.relname, c.relkind, c.relowner = (SELECT oid FROM pg_roles "
            "                                          WHERE rolname = current_user), "
            "has_table_privilege($1, c.oid, 'SELECT'), has_table_privilege($1, c.oid, 'INSERT'), "
            "has_table_privilege($1, c.oid, 'UPDATE'), has_table_privilege($1, c.oid, 'DELETE'), "
            "has_table_privilege($1, c.oid, 'TRUNCATE'), "
            "has_table_privilege($1, c.oid, 'REFERENCES'), "
            "has_table_privilege($1, c.oid, 'TRIGGER') "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind NOT IN ('i', 'I', 't', 'c') ORDER BY 1",
            1, params, err);
    if (r == NULL)
        return false;
    bool ok = true;
    for (int i = 0; ok && i < PQntuples(r); i++) {
        const char *name = PQgetvalue(r, i, 0), *privileges = grants_of(name);
        if (privileges == NULL || strcmp(PQgetvalue(r, i, 1), "r") != 0) {
            fail_with(err,
                      "relation %s has no privileges for the application role: name it in "
                      "app_grants (server/migrate.c; only tables are supported)",
                      name);
            ok = false;
            break;
        }
        if (strcmp(PQgetvalue(r, i, 2), "t") != 0)
            *done = false;
        for (size_t k = 0; k < N_PRIVILEGES; k++) {
            bool want = strstr(privileges, all_privileges[k]) != NULL;
            bool has = strcmp(PQgetvalue(r, i, 3 + (int)k), "t") == 0;
            if (want != has)
                *done = false;
        }
    }
    PQclear(r);
    return ok;
}

/* Hands everything to the administrator and grants the app exactly app_grants. */
static bool hand_over(PGconn *pg, const char *app, char **err)
{
    PGresult *db = run(pg, "SELECT quote_ident(current_database())", 0, NULL, err);
    if (db == NULL)
        return false;
    bool ok =
        execf(pg, err, "REASSIGN OWNED BY %s TO CURRENT_USER", app) &&
        execf(pg, err, "ALTER DATABASE %s OWNER TO CURRENT_USER", PQgetvalue(db, 0, 0)) &&
        execf(pg, err, "REVOKE CREATE ON DATABASE %s FROM PUBLIC, %s", PQgetvalue(db, 0, 0), app) &&
        exec(pg, "ALTER SCHEMA public OWNER TO CURRENT_USER", 0, NULL, err) &&
        execf(pg, err, "REVOKE CREATE ON SCHEMA public FROM PUBLIC, %s", app) &&
        execf(pg, err, "GRANT USAGE ON SCHEMA public TO %s", app);
    PQclear(db);
    for (size_t i = 0; ok && i < N_APP_GRANTS; i++)
        ok = execf(pg, err, "ALTER TABLE public.%s OWNER TO CURRENT_USER", app_grants[i].table) &&
             execf(pg, err, "REVOKE ALL ON public.%s FROM %s", app_grants[i].table, app) &&
             execf(pg, err, "GRANT %s ON public.%s TO %s", app_grants[i].privileges,
                   app_grants[i].table, app);
    return ok;
}

int migrate_grant(PGconn *admin, const char *app_role, char **err)
{
    *err = NULL;
    char *app = PQescapeIdentifier(admin, app_role, strlen(app_role));
    if (app == NULL) {
        *err = strdup("cannot quote the application role's name");
        return -1;
    }
    bool done = false;
    bool ok = exec(admin, "BEGIN", 0, NULL, err) &&
              exec(admin, "SET LOCAL search_path = public", 0, NULL, err) &&
              exec(admin, "SET LOCAL lock_timeout = '10s'", 0, NULL, err) &&
              exec(admin, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", 0, NULL, err) &&
              app_role_plain(admin, app_role, err) && grants_in_place(admin, app_role, &done, err);
    /* Ownership changes lock tables: only when something is not yet as it must be. */
    if (ok && !done)
        ok = hand_over(admin, app, err) && grants_in_place(admin, app_role, &done, err);
    if (ok && !done) {
        fail_with(err, "%s still owns objects or holds privileges beyond app_grants", app_role);
        ok = false;
    }
    ok = ok && exec(admin, "COMMIT", 0, NULL, err);
    if (!ok) {
        PGresult *rb = PQexec(admin, "ROLLBACK");
        PQclear(rb);
    }
    PQfreemem(app);
    return ok ? 0 : -1;
}
