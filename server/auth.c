/*
 * Authentication: see auth.h. The order of checks is cheapest first and never lets an attacker
 * write to the replay cache without a valid signature: parse, clock, identity, signature, replay,
 * then access.
 */
#include "server/auth.h"

#include <stdlib.h>
#include <string.h>

#include "ledger/keyfile.h"
#include "server/db.h"
#include "server/db_identities.h"
#include "server/http.h"
#include "server/idcache.h"
#include "server/replay.h"
#include "server/server.h"
#include "server/util.h"

static enum db_status lookup_caller(struct db_conn *c, void *arg)
{
    struct request *req = arg;
    return db_identity_get(c, req->auth.id, &req->caller);
}

bool auth_verify_key(struct request *req, const uint8_t pk[CPX_ED25519_PK_LEN])
{
    if (!cpx_reqsig_verify(pk, req->method, req->target, req->auth.ts, req->body, req->body_len,
                           req->auth.sig)) {
        reply_error(req, E_BAD_SIGNATURE, NULL, NULL);
        return false;
    }
    if (!replay_add(req->srv->replay, req->auth.sig, now_us() / 1000000)) {
        reply_error(req, E_REPLAYED_REQUEST, NULL, NULL);
        return false;
    }
    return true;
}

bool auth_request(struct request *req, const struct route *route)
{
    if (route->access == ACCESS_PUBLIC)
        return true;
    const char *h = request_header(req, "Authorization");
    if (h == NULL) {
        reply_error(req, E_UNAUTHENTICATED, NULL, NULL);
        return false;
    }
    enum cpx_auth_error aerr = cpx_auth_parse(h, strlen(h), &req->auth);
    if (aerr != CPX_AUTH_OK) {
        reply_error(req, E_BAD_AUTHORIZATION, NULL, "%s", cpx_auth_error_text(aerr));
        return false;
    }
    int64_t now = now_us() / 1000000, skew = req->srv->cfg->clock_skew;
    if (llabs(req->auth.ts - now) > skew) {
        reply_error(req, E_STALE_TIMESTAMP, NULL,
                    "The request was signed at %lld but the server's time is %lld; the "
                    "timestamp must be within %lld seconds of it.",
                    (long long)req->auth.ts, (long long)now, (long long)skew);
        return false;
    }
    if (route->access == ACCESS_REGISTER)
        return true;
    enum db_status st = DB_OK;
    uint64_t gen;
    if (!identity_cache_get(req->srv->idcache, req->auth.id, &req->caller, &gen)) {
        st = cpx_identity_id_valid(req->auth.id) ? db_run(req->srv->db, lookup_caller, req)
                                                 : DB_NO_ROWS;
        if (st == DB_OK)
            identity_cache_put(req->srv->idcache, &req->caller, gen);
    }
    if (st == DB_NO_ROWS) {
        reply_error(req, E_UNKNOWN_IDENTITY, NULL, "No identity has the id %s.", req->auth.id);
        return false;
    }
    if (st != DB_OK) {
        reply_db_error(req, st);
        return false;
    }
    if (!auth_verify_key(req, req->caller.public_key))
        return false;
    req->signed_in = true;
    if (route->access == ACCESS_ROLE) {
        if (req->caller.status != IDENTITY_APPROVED) {
            reply_error(req, E_NOT_APPROVED, NULL, "Identity %s is %s, not approved.",
                        req->caller.id, identity_status_names[req->caller.status]);
            return false;
        }
        if ((req->caller.roles & route->roles) == 0) {
            reply_error(req, E_FORBIDDEN_ROLE, NULL, NULL);
            return false;
        }
    }
    return true;
}
