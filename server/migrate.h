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

#endif
