/*
 * The route table and the matcher: see routes.h.
 *
 * Matching compares path segments one by one; a {param} segment matches 1 to 63 characters of
 * [a-z0-9_-] (every id of the API, and region ids such as greater-bay), so anything else in that
 * position is a 404, never a handler's problem. The table is short and linear search is faster than
 * anything cleverer at this size.
 */
#include "server/routes.h"

#include <stdio.h>
#include <string.h>

#include "server/handlers.h"
#include "server/identity.h"

/* Who may read a market object: its owner's role, and regulators and operators (any object). */
#define MARKET_READERS(owner_role) ((owner_role) | ROLE_REGULATOR | ROLE_OPERATOR)

struct route routes[] = {
    /* health and operations */
    { "GET", "/healthz", h_healthz, ACCESS_PUBLIC, 0, NULL },
    { "GET", "/metrics", h_metrics, ACCESS_PUBLIC, 0, NULL },
    { "GET", "/v1/openapi.json", h_openapi, ACCESS_PUBLIC, 0, NULL },
    /* identities: the first of the five trusts */
    { "POST", "/v1/identities", h_identity_register, ACCESS_REGISTER, 0, NULL },
    { "GET", "/v1/identities", h_identity_list, ACCESS_ROLE, ROLE_OPERATOR | ROLE_REGULATOR, NULL },
    { "GET", "/v1/identities/{id}", h_identity_show, ACCESS_IDENTITY, 0, NULL },
    { "POST", "/v1/identities/{id}/approve", h_identity_approve, ACCESS_ROLE, ROLE_OPERATOR, NULL },
    { "POST", "/v1/identities/{id}/reject", h_identity_reject, ACCESS_ROLE, ROLE_OPERATOR, NULL },
    { "POST", "/v1/identities/{id}/keys", h_identity_rotate_key, ACCESS_IDENTITY, 0, NULL },
    /* the ledger: public, like every transparency log */
    { "GET", "/v1/ledger/checkpoint", h_ledger_checkpoint, ACCESS_PUBLIC, 0, NULL },
    { "GET", "/v1/ledger/checkpoints", h_ledger_checkpoints, ACCESS_PUBLIC, 0, NULL },
    { "GET", "/v1/ledger/checkpoints/{size}", h_ledger_checkpoint_show, ACCESS_PUBLIC, 0, NULL },
    { "GET", "/v1/ledger/records", h_ledger_records, ACCESS_PUBLIC, 0, NULL },
    { "GET", "/v1/ledger/records/{seq}", h_ledger_record, ACCESS_PUBLIC, 0, NULL },
    { "GET", "/v1/ledger/consistency", h_ledger_consistency, ACCESS_PUBLIC, 0, NULL },
    { "GET", "/v1/ledger/keys", h_ledger_keys, ACCESS_PUBLIC, 0, NULL },
    { "GET", "/v1/ledger/export", h_ledger_export, ACCESS_PUBLIC, 0, NULL },
    /* the market: listings, orders, agreements, money (docs/trading.md) */
    { "GET", "/v1/regions", h_regions, ACCESS_PUBLIC, 0, NULL },
    { "POST", "/v1/listings", h_listing_create, ACCESS_ROLE, ROLE_PROVIDER, NULL },
    { "GET", "/v1/listings", h_listing_list, ACCESS_ROLE, ROLE_PROVIDER, NULL },
    { "GET", "/v1/listings/{id}", h_listing_show, ACCESS_ROLE, MARKET_READERS(ROLE_PROVIDER),
      NULL },
    { "DELETE", "/v1/listings/{id}", h_listing_cancel, ACCESS_ROLE, ROLE_PROVIDER, NULL },
    { "POST", "/v1/jobs", h_job_create, ACCESS_ROLE, ROLE_BUYER, NULL },
    { "POST", "/v1/orders", h_order_create, ACCESS_ROLE, ROLE_BUYER, NULL },
    { "GET", "/v1/orders", h_order_list, ACCESS_ROLE, ROLE_BUYER, NULL },
    { "GET", "/v1/orders/{id}", h_order_show, ACCESS_ROLE, MARKET_READERS(ROLE_BUYER), NULL },
    { "DELETE", "/v1/orders/{id}", h_order_cancel, ACCESS_ROLE, ROLE_BUYER, NULL },
    { "GET", "/v1/agreements", h_agreement_list, ACCESS_ROLE, ROLE_ALL, NULL },
    { "GET", "/v1/agreements/{id}", h_agreement_show, ACCESS_ROLE, ROLE_ALL, NULL },
    { "POST", "/v1/accounts/{id}/deposits", h_deposit, ACCESS_ROLE, ROLE_OPERATOR, NULL },
    { "GET", "/v1/accounts/me", h_account_me, ACCESS_ROLE, ROLE_ALL, NULL },
    { "GET", "/v1/accounts/{id}", h_account_show, ACCESS_ROLE, ROLE_ALL, NULL },
    /* public market data */
    { "GET", "/v1/markets", h_markets, ACCESS_PUBLIC, 0, NULL },
    { "GET", "/v1/markets/fees", h_fees, ACCESS_PUBLIC, 0, NULL },
    { "GET", "/v1/markets/{precision}/{region}/book", h_book, ACCESS_PUBLIC, 0, NULL },
    { "GET", "/v1/markets/{precision}/index", h_price_index, ACCESS_PUBLIC, 0, NULL },
    { "GET", "/v1/trades", h_trades, ACCESS_PUBLIC, 0, NULL },
    /* delivery and billing (docs/delivery.md) */
    { "POST", "/v1/agreements/{id}/usage", h_usage_report, ACCESS_ROLE, ROLE_PROVIDER, NULL },
    { "GET", "/v1/agreements/{id}/deliveries", h_deliveries, ACCESS_ROLE, ROLE_ALL, NULL },
    { "GET", "/v1/bills", h_bill_list, ACCESS_ROLE, ROLE_ALL, NULL },
    { "GET", "/v1/bills/{id}", h_bill_show, ACCESS_ROLE, ROLE_ALL, NULL },
    { "POST", "/v1/bills/{id}/dispute", h_bill_dispute, ACCESS_ROLE, ROLE_BUYER, NULL },
    { "POST", "/v1/bills/{id}/resolution", h_bill_resolve, ACCESS_ROLE, ROLE_OPERATOR, NULL },
    { "GET", "/v1/statements", h_statement, ACCESS_ROLE, ROLE_ALL, NULL },
    { "GET", "/v1/audit/bills", h_audit_bills, ACCESS_PUBLIC, 0, NULL },
    { "GET", "/v1/audit/balances", h_audit_balances, ACCESS_PUBLIC, 0, NULL },
};
const size_t nroutes = sizeof routes / sizeof routes[0];

static char route_names[sizeof routes / sizeof routes[0]][96];
static const char *route_name_ptrs[sizeof routes / sizeof routes[0]];

const char *const *routes_init(void)
{
    for (size_t i = 0; i < nroutes; i++) {
        snprintf(route_names[i], sizeof route_names[i], "%s %s", routes[i].method,
                 routes[i].pattern);
        routes[i].name = route_names[i];
        route_name_ptrs[i] = route_names[i];
    }
    return route_name_ptrs;
}

static bool param_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Does path[0..len) fit pattern? Copies params when it does. */
static bool path_fits(const char *pattern, const char *path, size_t len,
                      char params[ROUTE_MAX_PARAMS][CPX_ID_MAX])
{
    const char *p = pattern, *s = path, *end = path + len;
    int np = 0;
    while (*p != '\0' && s < end) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            size_t n = 0;
            while (s + n < end && s[n] != '/' && param_char(s[n]))
                n++;
            if (n == 0 || n >= CPX_ID_MAX || (s + n < end && s[n] != '/') || np == ROUTE_MAX_PARAMS)
                return false;
            memcpy(params[np], s, n);
            params[np++][n] = '\0';
            s += n;
            p = close + 1;
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    return *p == '\0' && s == end;
}

enum route_match route_find(const char *method, const char *path, size_t len, size_t *index,
                            char params[ROUTE_MAX_PARAMS][CPX_ID_MAX], char allow[64])
{
    char scratch[ROUTE_MAX_PARAMS][CPX_ID_MAX];
    size_t n = 0;
    allow[0] = '\0';
    bool path_known = false;
    for (size_t i = 0; i < nroutes; i++) {
        if (!path_fits(routes[i].pattern, path, len, scratch))
            continue;
        if (strcmp(routes[i].method, method) == 0) {
            path_fits(routes[i].pattern, path, len, params);
            *index = i;
            return ROUTE_FOUND;
        }
        path_known = true;
        n += (size_t)snprintf(allow + n, 64 - n, "%s%s", n ? ", " : "", routes[i].method);
        if (n >= 64)
            n = 63;
    }
    return path_known ? ROUTE_WRONG_METHOD : ROUTE_NO_PATH;
}
