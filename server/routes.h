/*
 * The route table: every endpoint of the API in one place (routes.c), each with the access it
 * requires. Reading the table tells you the whole API.
 */
#ifndef CPX_SERVER_ROUTES_H
#define CPX_SERVER_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "ledger/reqsig.h"

struct request;
typedef void (*handler_fn)(struct request *req);

/* Who may call a route. */
enum access {
    ACCESS_PUBLIC,   /* anyone, no signature */
    ACCESS_REGISTER, /* signed by the key being registered (the handler verifies) */
    ACCESS_IDENTITY, /* any registered identity, approved or not, with a valid signature */
    ACCESS_ROLE,     /* an approved identity holding one of `roles` */
};

struct route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* path with {name} segments, e.g. "/v1/identities/{id}" */
    handler_fn handler;  /* answers the request */
    enum access access;  /* who may call it */
    unsigned roles;      /* with ACCESS_ROLE: enum role bits, any of which suffices */
    const char *name;    /* "METHOD pattern", the metrics label (filled by routes_init) */
};

#define ROUTE_MAX_PARAMS 4

/* The table and its length. */
extern struct route routes[];
extern const size_t nroutes;

/* Fills each route's name. Call once at start. Returns the names array (static). */
const char *const *routes_init(void);

enum route_match { ROUTE_FOUND, ROUTE_NO_PATH, ROUTE_WRONG_METHOD };

/*
 * Finds the route for method and path (path without query, len bytes). On ROUTE_FOUND sets
 * *index and copies the {param} segments into params in order. On ROUTE_WRONG_METHOD writes the
 * allowed methods ("GET, POST") into allow (64 bytes).
 */
enum route_match route_find(const char *method, const char *path, size_t len, size_t *index,
                            char params[ROUTE_MAX_PARAMS][CPX_ID_MAX], char allow[64]);

#endif
