/*
 * Identities: register (signed by the new key), show, list, approve and reject.
 *
 *   POST /v1/identities                  register; the request is signed by the key it registers
 *   GET  /v1/identities?status=&limit=&after=   operators and regulators
 *   GET  /v1/identities/{id}             the identity itself, or any approved identity
 *   POST /v1/identities/{id}/approve     operators; body {}
 *   POST /v1/identities/{id}/reject      operators; body {"reason"}
 *   POST /v1/identities/{id}/keys        the identity itself, signed with its current key;
 *                                        body {"new_public_key"}: a key rotation
 *
 * Every change is also a ledger record appended in the same transaction (records.h), whose
 * party part is the request itself: so these bodies must be canonical JSON, and the answer
 * carries the record's "ledger_seq".
 */
#include <stdio.h>
#include <string.h>

#include "ledger/keyfile.h"
#include "server/auth.h"
#include "server/db_identities.h"
#include "server/handlers.h"
#include "server/db_ledger.h"
#include "server/http.h"
#include "server/idcache.h"
#include "server/records.h"
#include "server/server.h"
#include "server/spec.h"
#include "server/txn.h"

struct register_req {
    const char *name;   /* organisation name */
    const char *reg_no; /* registration number (e.g. unified social credit code) */
    unsigned roles;     /* requested roles */
    uint8_t public_key[CPX_ED25519_PK_LEN];
};

static const struct spec register_spec[] = {
    SPEC_STR("name", struct register_req, name, true, 1, IDENTITY_NAME_MAX),
    SPEC_STR("reg_no", struct register_req, reg_no, true, 1, IDENTITY_REG_NO_MAX),
    SPEC_SET("roles", struct register_req, roles, true, role_names),
    SPEC_KEY("public_key", struct register_req, public_key, true),
    SPEC_END,
};

struct decide_req {
    const char *reason; /* why; required to reject */
};

static const struct spec approve_spec[] = {
    SPEC_END,
};

static const struct spec reject_spec[] = {
    SPEC_STR("reason", struct decide_req, reason, true, 1, IDENTITY_REASON_MAX),
    SPEC_END,
};

/* Registration numbers: letters, digits and inner hyphens (the schema checks the same). */
static bool reg_no_valid(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '-'))
            return false;
    return true;
}

/*
 * Decides the answer to a change whose record the records_* call returned (st, body_ok, seq):
 * the identity as it now is with the record's seq, or 400 when the signed body is not what the
 * record repeats (`rule` says what the client got wrong).
 */
static enum db_status recorded(struct tx_reply *out, enum db_status st, bool body_ok,
                               const char *rule, int status, const struct identity *idn,
                               uint64_t seq)
{
    if (st != DB_OK)
        return st;
    if (!body_ok)
        return tx_fail(out, E_BODY_NOT_CANONICAL, NULL,
                       "The body must be canonical JSON that the ledger record repeats "
                       "unchanged%s.",
                       rule);
    json_t *body = identity_to_json(idn);
    json_object_set_new(body, "ledger_seq", json_integer((json_int_t)seq));
    return tx_ok(out, status, body);
}

/* Fails the transaction when key was retired by a rotation (DB_OK: it was not). */
static enum db_status refuse_retired(struct db_conn *c, const uint8_t key[CPX_ED25519_PK_LEN],
                                     const char *field, struct tx_reply *out, bool *refused)
{
    enum db_status st = db_retired_key_get(c, key);
    *refused = st == DB_OK;
    if (st == DB_OK)
        tx_fail(out, E_KEY_IN_USE, field, "This key was retired by a key rotation.");
    return st == DB_NO_ROWS || st == DB_OK ? DB_OK : st;
}

static enum db_status register_tx(struct db_conn *c, struct request *req, void *arg,
                                  struct tx_reply *out)
{
    struct identity *idn = arg;
    bool refused;
    enum db_status st = refuse_retired(c, idn->public_key, "public_key", out, &refused);
    if (st != DB_OK || refused)
        return st;
    st = db_identity_insert(c, idn);
    if (st == DB_CONFLICT && strcmp(c->conflict, "identities_live_reg_no") == 0)
        return tx_fail(out, E_REG_NO_TAKEN, "reg_no",
                       "Registration number %s belongs to another identity.", idn->reg_no);
    if (st == DB_CONFLICT)
        return tx_fail(out, E_IDENTITY_EXISTS, "public_key",
                       "This key is already registered as %s.", idn->id);
    if (st != DB_OK)
        return st;
    bool body_ok;
    uint64_t seq;
    st = records_identity(c, out->ledger, idn, req, &body_ok, &seq);
    return recorded(out, st, body_ok,
                    ": list roles once each, in the order buyer, operator, provider, regulator",
                    201, idn, seq);
}

void h_identity_register(struct request *req)
{
    struct register_req r = { 0 };
    if (!request_parse(req, register_spec, &r))
        return;
    if (!reg_no_valid(r.reg_no)) {
        reply_error(req, E_INVALID_FIELD, "reg_no",
                    "reg_no may hold only letters, digits and hyphens, starting with a letter "
                    "or digit");
        return;
    }
    struct identity idn = { 0 };
    cpx_identity_id_for_key(r.public_key, idn.id);
    if (strcmp(idn.id, req->auth.id) != 0) {
        reply_error(req, E_KEY_MISMATCH, NULL,
                    "The key being registered has the id %s; sign the request with id=%s.", idn.id,
                    idn.id);
        return;
    }
    if (!auth_verify_key(req, r.public_key) || !records_require_canonical_body(req))
        return;
    snprintf(idn.name, sizeof idn.name, "%s", r.name);
    snprintf(idn.reg_no, sizeof idn.reg_no, "%s", r.reg_no);
    idn.roles = r.roles;
    memcpy(idn.public_key, r.public_key, sizeof idn.public_key);
    handler_transact(req, register_tx, &idn);
}

struct show_ctx {
    const char *id;
    struct identity idn;
};

static enum db_status show_fn(struct db_conn *c, void *arg)
{
    struct show_ctx *s = arg;
    return db_identity_get(c, s->id, &s->idn);
}

void h_identity_show(struct request *req)
{
    const char *id = req->params[0];
    if (strcmp(id, req->caller.id) != 0 && req->caller.status != IDENTITY_APPROVED) {
        reply_error(req, E_NOT_APPROVED, NULL,
                    "Until it is approved, an identity may read only itself.");
        return;
    }
    struct show_ctx s = { .id = id };
    enum db_status st = db_run(req->srv->db, show_fn, &s);
    if (st == DB_OK)
        reply_json(req, 200, identity_to_json(&s.idn));
    else if (st == DB_NO_ROWS)
        reply_error(req, E_IDENTITY_NOT_FOUND, NULL, "No identity has the id %s.", id);
    else
        reply_db_error(req, st);
}

struct list_ctx {
    int status;            /* filter, or -1 */
    const char *after;     /* cursor */
    int limit;             /* page size */
    json_t *items;         /* the page */
    char last[CPX_ID_MAX]; /* id of the last item */
    int count;             /* items on the page */
};

static bool list_add(const struct identity *idn, void *arg)
{
    struct list_ctx *l = arg;
    json_array_append_new(l->items, identity_to_json(idn));
    snprintf(l->last, sizeof l->last, "%s", idn->id);
    l->count++;
    return true;
}

static enum db_status list_fn(struct db_conn *c, void *arg)
{
    struct list_ctx *l = arg;
    json_array_clear(l->items);
    l->count = 0;
    return db_identity_list(c, l->status, l->after, l->limit, list_add, l);
}

void h_identity_list(struct request *req)
{
    struct list_ctx l = { .status = -1 };
    if (!request_page(req, &l.limit, &l.after))
        return;
    const char *status = request_query(req, "status");
    if (status != NULL) {
        for (int i = 0; identity_status_names[i] != NULL; i++)
            if (strcmp(status, identity_status_names[i]) == 0)
                l.status = i;
        if (l.status < 0) {
            reply_error(req, E_INVALID_QUERY, "status",
                        "status must be pending, approved or rejected");
            return;
        }
    }
    l.items = json_array();
    enum db_status st = l.items ? db_run(req->srv->db, list_fn, &l) : DB_HARD;
    if (st != DB_OK) {
        json_decref(l.items);
        reply_db_error(req, st);
        return;
    }
    json_t *next = l.count == l.limit ? json_string(l.last) : json_null();
    reply_json(req, 200, json_pack("{s:o, s:o}", "items", l.items, "next", next));
}

struct decide_ctx {
    enum identity_status to; /* approved or rejected */
    const char *reason;      /* may be NULL for approval */
};

static enum db_status decide_tx(struct db_conn *c, struct request *req, void *arg,
                                struct tx_reply *out)
{
    struct decide_ctx *d = arg;
    const char *id = req->params[0];
    struct identity idn;
    enum db_status st = db_identity_decide(c, id, d->to, req->caller.id, d->reason, &idn);
    if (st == DB_NO_ROWS) {
        st = db_identity_get(c, id, &idn);
        if (st == DB_NO_ROWS)
            return tx_fail(out, E_IDENTITY_NOT_FOUND, NULL, "No identity has the id %s.", id);
        if (st != DB_OK)
            return st;
        return tx_fail(out, E_INVALID_STATE, NULL, "Identity %s is already %s.", id,
                       identity_status_names[idn.status]);
    }
    if (st != DB_OK)
        return st;
    bool body_ok;
    uint64_t seq;
    st = records_decision(c, out->ledger, id, d->to, d->reason, req, &body_ok, &seq);
    return recorded(out, st, body_ok, "", 200, &idn, seq);
}

static void decide(struct request *req, enum identity_status to, const struct spec *spec)
{
    struct decide_req r = { 0 };
    if (!request_parse(req, spec, &r) || !records_require_canonical_body(req))
        return;
    if (r.reason != NULL && strlen(r.reason) >= CPX_REASON_MAX) {
        reply_error(req, E_OUT_OF_RANGE, "reason",
                    "reason may be at most %d bytes of UTF-8 (the ledger's limit).",
                    CPX_REASON_MAX - 1);
        return;
    }
    struct decide_ctx d = { .to = to, .reason = r.reason };
    handler_transact(req, decide_tx, &d);
    identity_cache_forget(req->srv->idcache, req->params[0]); /* its status changed */
}

void h_identity_approve(struct request *req)
{
    decide(req, IDENTITY_APPROVED, approve_spec);
}

void h_identity_reject(struct request *req)
{
    decide(req, IDENTITY_REJECTED, reject_spec);
}

struct rotate_req {
    uint8_t new_public_key[CPX_ED25519_PK_LEN];
};

static const struct spec rotate_spec[] = {
    SPEC_KEY("new_public_key", struct rotate_req, new_public_key, true),
    SPEC_END,
};

static enum db_status rotate_tx(struct db_conn *c, struct request *req, void *arg,
                                struct tx_reply *out)
{
    const struct rotate_req *r = arg;
    const char *id = req->caller.id;
    const uint8_t *old_key = req->caller.public_key; /* the key that signed this request */
    bool refused;
    enum db_status st = refuse_retired(c, r->new_public_key, "new_public_key", out, &refused);
    if (st != DB_OK || refused)
        return st;
    st = db_identity_set_key(c, id, old_key, r->new_public_key);
    if (st == DB_CONFLICT)
        return tx_fail(out, E_KEY_IN_USE, "new_public_key", "Another identity holds this key.");
    if (st == DB_NO_ROWS)
        return tx_fail(out, E_INVALID_STATE, NULL,
                       "The key of %s changed while this request was in flight.", id);
    if (st == DB_OK)
        st = db_retired_key_insert(c, old_key, id);
    struct identity idn;
    if (st == DB_OK)
        st = db_identity_get(c, id, &idn);
    if (st != DB_OK)
        return st;
    bool body_ok;
    uint64_t seq;
    st = records_key_rotation(c, out->ledger, id, old_key, r->new_public_key, req, &body_ok, &seq);
    return recorded(out, st, body_ok, "", 200, &idn, seq);
}

void h_identity_rotate_key(struct request *req)
{
    struct rotate_req r = { 0 };
    if (!request_parse(req, rotate_spec, &r) || !records_require_canonical_body(req))
        return;
    if (strcmp(req->params[0], req->caller.id) != 0) {
        reply_error(req, E_FORBIDDEN_ROLE, NULL, "An identity can rotate only its own key.");
        return;
    }
    if (req->caller.status != IDENTITY_APPROVED) {
        reply_error(req, E_NOT_APPROVED, NULL,
                    "Identity %s is %s: only an approved identity can rotate its key.",
                    req->caller.id, identity_status_names[req->caller.status]);
        return;
    }
    if (memcmp(r.new_public_key, req->caller.public_key, sizeof r.new_public_key) == 0) {
        reply_error(req, E_INVALID_FIELD, "new_public_key",
                    "new_public_key is the key in force; a rotation needs a new key.");
        return;
    }
    handler_transact(req, rotate_tx, &r);
    identity_cache_forget(req->srv->idcache, req->params[0]); /* its key changed */
}
