/*
 * Identity-family ledger records: see records.h.
 */
#include "server/records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http.h"
#include "server/log.h"

/* Server role bits and ledger role bits, paired by the role's name. */
static const struct {
    const char *name;
    unsigned server;
    unsigned ledger;
} role_map[] = {
    { "buyer", ROLE_BUYER, CPX_ROLE_BUYER },
    { "provider", ROLE_PROVIDER, CPX_ROLE_PROVIDER },
    { "regulator", ROLE_REGULATOR, CPX_ROLE_REGULATOR },
    { "operator", ROLE_OPERATOR, CPX_ROLE_OPERATOR },
};

unsigned records_ledger_roles(unsigned roles)
{
    unsigned out = 0;
    for (size_t i = 0; i < sizeof role_map / sizeof role_map[0]; i++)
        if (roles & role_map[i].server)
            out |= role_map[i].ledger;
    return out;
}

void records_party_of(const struct request *req, struct cpx_party *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", req->auth.id);
    snprintf(p->method, sizeof p->method, "%s", req->method);
    snprintf(p->target, sizeof p->target, "%s", req->target);
    p->ts = req->auth.ts;
    p->body = (const uint8_t *)(req->body ? req->body : "");
    p->body_len = req->body_len;
    memcpy(p->sig, req->auth.sig, sizeof p->sig);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Writes a jansson value canonically: object members sorted by key (our keys are ASCII, where
 * UTF-16 order is byte order). False for what the ledger cannot hold (a real) or out of memory;
 * the writer itself refuses out-of-range integers and invalid UTF-8. */
static bool canon_json(struct cpx_canon_writer *w, const json_t *v)
{
    const char *k;
    json_t *m;
    size_t i;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v);
        const char **keys = malloc((n ? n : 1) * sizeof *keys);
        if (keys == NULL)
            return false;
        i = 0;
        json_object_foreach((json_t *)v, k, m) keys[i++] = k;
        qsort(keys, n, sizeof *keys, cmp_str);
        bool ok = true;
        cpx_canon_begin_object(w);
        for (i = 0; i < n && ok; i++) {
            cpx_canon_key(w, keys[i], strlen(keys[i]));
            ok = canon_json(w, json_object_get(v, keys[i]));
        }
        cpx_canon_end_object(w);
        free(keys);
        return ok;
    }
    case JSON_ARRAY:
        cpx_canon_begin_array(w);
        json_array_foreach(v, i, m) if (!canon_json(w, m)) return false;
        cpx_canon_end_array(w);
        return true;
    case JSON_STRING: cpx_canon_string(w, json_string_value(v), json_string_length(v)); return true;
    case JSON_INTEGER: cpx_canon_int(w, json_integer_value(v)); return true;
    case JSON_TRUE: cpx_canon_bool(w, true); return true;
    case JSON_FALSE: cpx_canon_bool(w, false); return true;
    case JSON_NULL: cpx_canon_null(w); return true;
    default: return false; /* JSON_REAL: there are no reals in the ledger */
    }
}

enum db_status records_market(struct db_conn *c, struct ledger_batch *b, enum cpx_kind kind,
                              const json_t *payload, const struct cpx_party *party, uint64_t *seq)
{
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    bool whole = canon_json(&w, payload);
    const uint8_t *bytes;
    size_t len;
    enum cpx_canon_error err = cpx_canon_writer_finish(&w, &bytes, &len);
    enum db_status st = DB_HARD;
    if (!whole || err != CPX_CANON_OK)
        log_error("a %s record's payload cannot be written canonically: %s", cpx_kind_name(kind),
                  whole ? cpx_canon_error_text(err) : "a real number");
    else
        st = ledger_append(c, b, kind, party, bytes, len, seq);
    cpx_canon_writer_free(&w);
    return st;
}

bool records_party_fits(struct request *req)
{
    if (req->body_len > CPX_RECORD_BODY_MAX) {
        reply_error(req, E_BODY_TOO_LARGE, NULL,
                    "The request is kept in the ledger, whose records hold bodies of at most %d "
                    "bytes.",
                    CPX_RECORD_BODY_MAX);
        return false;
    }
    if (strlen(req->target) > CPX_REQSIG_TARGET_MAX) {
        reply_error(req, E_INVALID_TARGET, NULL,
                    "The request is kept in the ledger, whose records hold targets of at most %d "
                    "characters.",
                    CPX_REQSIG_TARGET_MAX);
        return false;
    }
    return true;
}

bool records_require_canonical_body(struct request *req)
{
    size_t off = 0;
    enum cpx_canon_error err =
        req->body_len ? cpx_canon_validate(req->body, req->body_len, &off) : CPX_CANON_E_SYNTAX;
    if (err == CPX_CANON_OK && req->body[0] == '{')
        return true;
    reply_error(req, E_BODY_NOT_CANONICAL, NULL,
                "The body is recorded in the ledger, so it must be a canonical JSON object "
                "(sorted keys, no whitespace, integers only): %s at byte %zu.",
                err == CPX_CANON_OK ? "not an object" : cpx_canon_error_text(err), off);
    return false;
}

/*
 * Copies the longest prefix of src that fits dst (cap bytes with the NUL) and ends on a UTF-8
 * character boundary. Returns true when src had to be cut.
 */
static bool utf8_prefix(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    bool cut = n >= cap;
    if (cut) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
            n--; /* src[n] continues a character: cut before it */
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
    return cut;
}

/*
 * Appends a record whose payload w holds, after checking the body rule when a party originated
 * it: the party's body must be a canonical object each of whose members the payload repeats.
 */
static enum db_status append(struct db_conn *c, struct ledger_batch *b, enum cpx_kind kind,
                             struct cpx_canon_writer *w, const struct request *req, bool *body_ok,
                             uint64_t *seq)
{
    struct cpx_party signed_request;
    const struct cpx_party *party = NULL;
    if (req != NULL) {
        records_party_of(req, &signed_request);
        party = &signed_request;
    }
    const uint8_t *payload;
    size_t len;
    enum cpx_canon_error err = cpx_canon_writer_finish(w, &payload, &len);
    if (err != CPX_CANON_OK) {
        log_error("ledger: cannot write a %s payload: %s", cpx_kind_name(kind),
                  cpx_canon_error_text(err));
        return DB_HARD;
    }
    *body_ok = true;
    if (party != NULL) {
        struct cpx_record r;
        cpx_record_init(&r);
        r.kind = kind;
        r.has_party = true;
        r.party = *party;
        r.payload = payload;
        r.payload_len = len;
        enum cpx_canon_error perr = cpx_canon_parse(&r.doc, payload, len, NULL);
        r.payload_node = perr == CPX_CANON_OK ? cpx_canon_root(&r.doc) : NULL;
        struct cpx_canon_doc scratch = { 0 };
        *body_ok = r.payload_node != NULL && cpx_record_body_in_payload(&r, &scratch);
        cpx_canon_doc_free(&scratch);
        cpx_record_free(&r);
        if (!*body_ok)
            return DB_OK;
    }
    return ledger_append(c, b, kind, party, payload, len, seq);
}

enum db_status records_identity(struct db_conn *c, struct ledger_batch *b,
                                const struct identity *idn, const struct request *req,
                                bool *body_ok, uint64_t *seq)
{
    struct cpx_identity_payload p = { .roles = records_ledger_roles(idn->roles) };
    snprintf(p.id, sizeof p.id, "%s", idn->id);
    snprintf(p.name, sizeof p.name, "%s", idn->name);
    snprintf(p.reg_no, sizeof p.reg_no, "%s", idn->reg_no);
    memcpy(p.public_key, idn->public_key, sizeof p.public_key);
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_identity_payload_write(&w, &p);
    enum db_status st = append(c, b, CPX_KIND_IDENTITY, &w, req, body_ok, seq);
    cpx_canon_writer_free(&w);
    return st;
}

enum db_status records_decision(struct db_conn *c, struct ledger_batch *b, const char *subject,
                                enum identity_status decision, const char *reason,
                                const struct request *req, bool *body_ok, uint64_t *seq)
{
    enum cpx_kind kind = decision == IDENTITY_APPROVED ? CPX_KIND_APPROVAL : CPX_KIND_REJECTION;
    struct cpx_decision_payload p = { 0 };
    snprintf(p.id, sizeof p.id, "%s", subject);
    if (kind == CPX_KIND_REJECTION &&
        utf8_prefix(p.reason, sizeof p.reason, reason && *reason ? reason : "rejected"))
        log_warn("ledger: the rejection reason of %s is longer than the ledger's %zu bytes; "
                 "recorded cut short",
                 subject, sizeof p.reason - 1);
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_decision_payload_write(&w, kind, &p);
    enum db_status st = append(c, b, kind, &w, req, body_ok, seq);
    cpx_canon_writer_free(&w);
    return st;
}

enum db_status records_key_rotation(struct db_conn *c, struct ledger_batch *b, const char *id,
                                    const uint8_t old_key[CPX_ED25519_PK_LEN],
                                    const uint8_t new_key[CPX_ED25519_PK_LEN],
                                    const struct request *req, bool *body_ok, uint64_t *seq)
{
    struct cpx_key_rotation_payload p = { 0 };
    snprintf(p.id, sizeof p.id, "%s", id);
    memcpy(p.old_public_key, old_key, sizeof p.old_public_key);
    memcpy(p.new_public_key, new_key, sizeof p.new_public_key);
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_key_rotation_payload_write(&w, &p);
    enum db_status st = append(c, b, CPX_KIND_KEY_ROTATION, &w, req, body_ok, seq);
    cpx_canon_writer_free(&w);
    return st;
}
