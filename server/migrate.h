/*
 * Schema migrations: the numbered files of schema/, compiled into cpxd
 * (scripts/embed-migrations.sh) and applied in order at start.
 */
#ifndef CPX_SERVER_MIGRATE_H
#define CPX_SERVER_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

struct migration {
    const char *name; /* file name, e.g. "0001_identities.sql"; orders the migrations */
    const char *sql;  /* its text */
    size_t len;       /* length of sql */
};

/* The migrations built into this binary, in order (generated file). */
extern const struct migration cpx_migrations[];
extern const size_t cpx_migrations_count;

/*
 * Applies every migration of list[0..n) not yet recorded in schema_migrations, all in one
 * transaction, under an advisory lock so that two cpxd starting together do not race. Refuses
 * (returns -1 and a malloc'd *err) when an applied migration's text changed or the database
 * holds a migration this binary does not know. Sets *applied to the number applied. Returns 0.
 */
int migrate(PGconn *pg, const struct migration *list, size_t n, int *applied, char **err);

/*
 * Run on an administrator's connection (admin) after migrate: makes the administrator own the
 * database, the public schema, every table and every function of it, and grants the application
 * role app_role exactly what cpxd needs of each table (the app_grants table in migrate.c). Then
 * the application role cannot alter, disable triggers on, or drop anything: the ledger's
 * append-only triggers hold even against a compromised cpxd. A table the grants table does not
 * name is refused (add it there with the privileges cpxd needs). All in one transaction.
 * Returns 0, or -1 and a malloc'd *err.
 */
int migrate_grant(PGconn *admin, const char *app_role, char **err);

#endif
