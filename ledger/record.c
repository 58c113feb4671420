/*
 * Record envelope and identity-family payloads: see record.h for the format.
 *
 * Decoding is "parse canonical, then check shape": cpx_canon_parse has already refused anything
 * that is not the one canonical spelling, so this file only checks that the members are exactly
 * the expected ones with the expected types and ranges. Member counts are checked first, so a
 * record with an extra member fails even when every expected member is present.
 */
#include "ledger/record.h"

#include <stdlib.h>
#include <string.h>

#include "ledger/codec.h"
#include "ledger/keyfile.h"

static const char *const kind_names[CPX_KIND_COUNT] = {
    [CPX_KIND_UNKNOWN] = NULL,
    [CPX_KIND_IDENTITY] = "identity",
    [CPX_KIND_APPROVAL] = "approval",
    [CPX_KIND_REJECTION] = "rejection",
    [CPX_KIND_KEY_ROTATION] = "key_rotation",
    [CPX_KIND_LISTING] = "listing",
    [CPX_KIND_ORDER] = "order",
    [CPX_KIND_CANCEL] = "cancel",
    [CPX_KIND_AGREEMENT] = "agreement",
    [CPX_KIND_DISPATCH] = "dispatch",
    [CPX_KIND_ACCEPTANCE] = "acceptance",
    [CPX_KIND_USAGE] = "usage",
    [CPX_KIND_BILL] = "bill",
    [CPX_KIND_COMMISSION] = "commission",
    [CPX_KIND_SETTLEMENT] = "settlement",
    [CPX_KIND_DISPUTE] = "dispute",
    [CPX_KIND_RESOLUTION] = "resolution",
    [CPX_KIND_FAILURE] = "failure",
    [CPX_KIND_DEPOSIT] = "deposit",
    [CPX_KIND_FEE_SCHEDULE] = "fee_schedule",
    [CPX_KIND_COMPLETION] = "completion",
};

/* Role names in canonical (sorted) order; bit i is role_names[i]. */
static const char *const role_names[] = { "buyer", "operator", "provider", "regulator" };
#define ROLE_COUNT 4

const char *cpx_kind_name(enum cpx_kind k)
{
    return (k > CPX_KIND_UNKNOWN && k < CPX_KIND_COUNT) ? kind_names[k] : NULL;
}

enum cpx_kind cpx_kind_from_name(const char *name, size_t len)
{
    for (int k = 1; k < CPX_KIND_COUNT; k++)
        if (strlen(kind_names[k]) == len && memcmp(kind_names[k], name, len) == 0)
            return (enum cpx_kind)k;
    return CPX_KIND_UNKNOWN;
}

void cpx_record_init(struct cpx_record *r)
{
    memset(r, 0, sizeof *r);
}

void cpx_record_free(struct cpx_record *r)
{
    cpx_canon_doc_free(&r->doc);
    free(r->body_buf);
    memset(r, 0, sizeof *r);
}

/* ---- small readers over a parsed document -------------------------------------------------- */

/* Reads string member key of obj into out (cap bytes) if its length is min..max and it has no
 * NUL. Returns false otherwise. */
static bool get_string(const struct cpx_canon_doc *d, const struct cpx_canon_node *obj,
                       const char *key, char *out, size_t cap, size_t min, size_t max)
{
    const struct cpx_canon_node *v = cpx_canon_get(d, obj, key);
    long n = cpx_canon_string_value(d, v, out, cap);
    return n >= 0 && (size_t)n >= min && (size_t)n <= max && strlen(out) == (size_t)n;
}

/* Reads a non-negative integer member. */
static bool get_uint(const struct cpx_canon_doc *d, const struct cpx_canon_node *obj,
                     const char *key, int64_t *out)
{
    const struct cpx_canon_node *v = cpx_canon_get(d, obj, key);
    if (v == NULL || v->type != CPX_CANON_INT || v->ival < 0)
        return false;
    *out = v->ival;
    return true;
}

/* Reads a string member holding base64 of exactly n bytes. */
static bool get_b64_exact(const struct cpx_canon_doc *d, const struct cpx_canon_node *obj,
                          const char *key, uint8_t *out, size_t n)
{
    const struct cpx_canon_node *v = cpx_canon_get(d, obj, key);
    if (v == NULL || v->type != CPX_CANON_STRING || !v->plain)
        return false;
    size_t len;
    const uint8_t *text = cpx_canon_bytes(d, v, &len);
    return len == CPX_B64_LEN(n) + 2 &&
           cpx_b64_decode((const char *)text + 1, len - 2, out, n) == (long)n;
}

/* The number of code points in a valid UTF-8 string (continuation bytes are not counted). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* True when s is printable ASCII without spaces (request targets, registration numbers). */
static bool visible_ascii(const char *s)
{
    for (; *s != '\0'; s++)
        if (*s <= 0x20 || *s >= 0x7f)
            return false;
    return true;
}

/* True when s is 1..max characters A-Z (HTTP methods). */
static bool method_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CPX_REQSIG_METHOD_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 'A' || s[i] > 'Z')
            return false;
    return true;
}

/* True when s is a kind name: 1..31 of [a-z_]. */
static bool kind_name_valid(const char *s, size_t n)
{
    if (n == 0 || n >= CPX_KIND_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
            return false;
    return true;
}

/* ---- decode -------------------------------------------------------------------------------- */

/* Decodes the party object into r->party. Returns NULL or the reason. */
static const char *decode_party(struct cpx_record *r, const struct cpx_canon_node *obj)
{
    const struct cpx_canon_doc *d = &r->doc;
    struct cpx_party *p = &r->party;
    if (obj->type != CPX_CANON_OBJECT || obj->count != 6)
        return "party must be an object with body, id, method, sig, target and ts";
    if (!get_string(d, obj, "id", p->id, sizeof p->id, 1, CPX_ID_MAX - 1) ||
        !cpx_identity_id_valid(p->id))
        return "party id is not an identity id";
    if (!get_string(d, obj, "method", p->method, sizeof p->method, 1, CPX_REQSIG_METHOD_MAX) ||
        !method_valid(p->method))
        return "party method must be 1..16 upper-case letters";
    if (!get_string(d, obj, "target", p->target, sizeof p->target, 1, CPX_REQSIG_TARGET_MAX) ||
        p->target[0] != '/' || !visible_ascii(p->target))
        return "party target must be a path of visible ASCII starting with /";
    if (!get_uint(d, obj, "ts", &p->ts))
        return "party ts must be a non-negative integer (unix seconds)";
    if (!get_b64_exact(d, obj, "sig", p->sig, sizeof p->sig))
        return "party sig must be base64 of 64 bytes";
    const struct cpx_canon_node *body = cpx_canon_get(d, obj, "body");
    if (body == NULL || body->type != CPX_CANON_STRING || !body->plain)
        return "party body must be a base64 string";
    size_t blen;
    const uint8_t *b64 = cpx_canon_bytes(d, body, &blen);
    blen -= 2;
    if (blen > CPX_B64_LEN(CPX_RECORD_BODY_MAX))
        return "party body is too long";
    size_t need = blen / 4 * 3 + 1;
    if (need > r->body_cap) {
        uint8_t *bigger = realloc(r->body_buf, need);
        if (bigger == NULL)
            return NULL; /* reported as out of memory by the caller via body == NULL */
        r->body_buf = bigger;
        r->body_cap = need;
    }
    long n = cpx_b64_decode((const char *)b64 + 1, blen, r->body_buf, r->body_cap);
    if (n < 0)
        return "party body is not canonical base64";
    p->body = r->body_buf;
    p->body_len = (size_t)n;
    return NULL;
}

enum cpx_record_status cpx_record_decode(struct cpx_record *r, const void *bytes, size_t len)
{
    struct cpx_canon_doc *d = &r->doc;
    r->error = NULL;
    r->has_party = false;
    r->payload = NULL;
    r->payload_len = 0;
    r->payload_node = NULL;
    memset(&r->party, 0, sizeof r->party);
    if (len > CPX_RECORD_MAX) {
        r->error = "record is too long";
        return CPX_RECORD_E_ENVELOPE;
    }
    enum cpx_canon_error cerr = cpx_canon_parse(d, bytes, len, NULL);
    if (cerr == CPX_CANON_E_NOMEM) {
        r->error = "out of memory";
        return CPX_RECORD_E_NOMEM;
    }
    if (cerr != CPX_CANON_OK) {
        r->error = cpx_canon_error_text(cerr);
        return CPX_RECORD_E_CANON;
    }
    const struct cpx_canon_node *root = cpx_canon_root(d);
    const struct cpx_canon_node *party = cpx_canon_get(d, root, "party");
    if (root->type != CPX_CANON_OBJECT || root->count != (party != NULL ? 6u : 5u)) {
        r->error = "record must be an object of kind, payload, seq, ts, v and optional party";
        return CPX_RECORD_E_ENVELOPE;
    }
    int64_t v, seq;
    if (!get_uint(d, root, "v", &v) || v != CPX_RECORD_VERSION) {
        r->error = "record version v must be 1";
        return CPX_RECORD_E_ENVELOPE;
    }
    if (!get_uint(d, root, "seq", &seq)) {
        r->error = "record seq must be a non-negative integer";
        return CPX_RECORD_E_ENVELOPE;
    }
    r->seq = (uint64_t)seq;
    if (!get_uint(d, root, "ts", &r->ts)) {
        r->error = "record ts must be a non-negative integer (unix milliseconds)";
        return CPX_RECORD_E_ENVELOPE;
    }
    if (!get_string(d, root, "kind", r->kind_name, sizeof r->kind_name, 1, CPX_KIND_NAME_MAX - 1) ||
        !kind_name_valid(r->kind_name, strlen(r->kind_name))) {
        r->error = "record kind must be 1..31 characters of [a-z_]";
        return CPX_RECORD_E_ENVELOPE;
    }
    r->kind = cpx_kind_from_name(r->kind_name, strlen(r->kind_name));
    const struct cpx_canon_node *payload = cpx_canon_get(d, root, "payload");
    if (payload == NULL || payload->type != CPX_CANON_OBJECT) {
        r->error = "record payload must be an object";
        return CPX_RECORD_E_ENVELOPE;
    }
    r->payload_node = payload;
    r->payload = cpx_canon_bytes(d, payload, &r->payload_len);
    if (party != NULL) {
        const char *why = decode_party(r, party);
        if (why != NULL) {
            r->error = why;
            return CPX_RECORD_E_ENVELOPE;
        }
        if (r->party.body == NULL) {
            r->error = "out of memory";
            return CPX_RECORD_E_NOMEM;
        }
        r->has_party = true;
    }
    return CPX_RECORD_OK;
}

/* ---- encode -------------------------------------------------------------------------------- */

enum cpx_canon_error cpx_record_encode(struct cpx_canon_writer *w, const struct cpx_record *r)
{
    const char *kind = r->kind != CPX_KIND_UNKNOWN ? cpx_kind_name(r->kind) : r->kind_name;
    if (kind == NULL || !kind_name_valid(kind, strlen(kind)) || r->ts < 0 ||
        r->seq > (uint64_t)CPX_CANON_INT_MAX || r->payload_len == 0 || r->payload[0] != '{')
        return w->err != CPX_CANON_OK ? w->err : (w->err = CPX_CANON_E_STATE);
    cpx_canon_begin_object(w);
    cpx_canon_kv_string(w, "kind", kind);
    if (r->has_party) {
        const struct cpx_party *p = &r->party;
        if (!cpx_identity_id_valid(p->id) || !method_valid(p->method) || p->target[0] != '/' ||
            !visible_ascii(p->target) || strlen(p->target) > CPX_REQSIG_TARGET_MAX || p->ts < 0 ||
            p->body_len > CPX_RECORD_BODY_MAX)
            return w->err != CPX_CANON_OK ? w->err : (w->err = CPX_CANON_E_STATE);
        cpx_canon_key(w, "party", 5);
        cpx_canon_begin_object(w);
        cpx_canon_key(w, "body", 4);
        cpx_canon_base64(w, p->body, p->body_len);
        cpx_canon_kv_string(w, "id", p->id);
        cpx_canon_kv_string(w, "method", p->method);
        cpx_canon_key(w, "sig", 3);
        cpx_canon_base64(w, p->sig, sizeof p->sig);
        cpx_canon_kv_string(w, "target", p->target);
        cpx_canon_kv_int(w, "ts", p->ts);
        cpx_canon_end_object(w);
    }
    cpx_canon_key(w, "payload", 7);
    cpx_canon_raw(w, r->payload, r->payload_len);
    cpx_canon_kv_int(w, "seq", (int64_t)r->seq);
    cpx_canon_kv_int(w, "ts", r->ts);
    cpx_canon_kv_int(w, "v", CPX_RECORD_VERSION);
    return cpx_canon_end_object(w);
}

bool cpx_record_party_verify(const struct cpx_record *r, const uint8_t pk[CPX_ED25519_PK_LEN])
{
    const struct cpx_party *p = &r->party;
    return r->has_party &&
           cpx_reqsig_verify(pk, p->method, p->target, p->ts, p->body, p->body_len, p->sig);
}

/* The value of the member of obj whose key is written exactly as key[0..klen), or NULL. */
static const struct cpx_canon_node *get_raw_key(const struct cpx_canon_doc *d,
                                                const struct cpx_canon_node *obj,
                                                const uint8_t *key, size_t klen)
{
    for (const struct cpx_canon_node *k = cpx_canon_first(d, obj); k != NULL;) {
        size_t n;
        const uint8_t *text = cpx_canon_bytes(d, k, &n);
        if (n == klen && memcmp(text, key, n) == 0)
            return k + 1;
        k = cpx_canon_next(d, k + 1);
    }
    return NULL;
}

bool cpx_record_body_in_payload(const struct cpx_record *r, struct cpx_canon_doc *scratch)
{
    if (!r->has_party || r->payload_node == NULL ||
        cpx_canon_parse(scratch, r->party.body, r->party.body_len, NULL) != CPX_CANON_OK)
        return false;
    const struct cpx_canon_node *body = cpx_canon_root(scratch);
    if (body->type != CPX_CANON_OBJECT)
        return false;
    for (const struct cpx_canon_node *k = cpx_canon_first(scratch, body); k != NULL;) {
        size_t klen, blen, plen;
        const uint8_t *key = cpx_canon_bytes(scratch, k, &klen);
        const uint8_t *bval = cpx_canon_bytes(scratch, k + 1, &blen);
        const struct cpx_canon_node *pv = get_raw_key(&r->doc, r->payload_node, key, klen);
        if (pv == NULL)
            return false;
        const uint8_t *pval = cpx_canon_bytes(&r->doc, pv, &plen);
        if (plen != blen || memcmp(pval, bval, blen) != 0)
            return false;
        k = cpx_canon_next(scratch, k + 1);
    }
    return true;
}

/* ---- identity-family payloads -------------------------------------------------------------- */

/* The payload object of r, if it has exactly count members. */
static const struct cpx_canon_node *payload_with(const struct cpx_record *r, uint32_t count)
{
    const struct cpx_canon_node *p = r->payload_node;
    return p != NULL && p->type == CPX_CANON_OBJECT && p->count == count ? p : NULL;
}

/* Reads an identity id member. */
static bool get_id(const struct cpx_canon_doc *d, const struct cpx_canon_node *obj,
                   char out[CPX_ID_MAX])
{
    return get_string(d, obj, "id", out, CPX_ID_MAX, 1, CPX_ID_MAX - 1) &&
           cpx_identity_id_valid(out);
}

const char *cpx_identity_payload_parse(const struct cpx_record *r, struct cpx_identity_payload *out)
{
    const struct cpx_canon_doc *d = &r->doc;
    const struct cpx_canon_node *p = payload_with(r, 5);
    memset(out, 0, sizeof *out);
    if (p == NULL)
        return "identity payload must have exactly id, name, public_key, reg_no and roles";
    if (!get_id(d, p, out->id))
        return "identity id is not an identity id";
    if (!get_string(d, p, "name", out->name, sizeof out->name, 1, CPX_NAME_MAX - 1) ||
        utf8_chars(out->name) > CPX_NAME_CHARS)
        return "identity name must be 1..200 characters";
    if (!get_string(d, p, "reg_no", out->reg_no, sizeof out->reg_no, 1, CPX_REG_NO_MAX - 1) ||
        !visible_ascii(out->reg_no))
        return "identity reg_no must be 1..64 visible ASCII characters";
    if (!get_b64_exact(d, p, "public_key", out->public_key, sizeof out->public_key))
        return "identity public_key must be base64 of 32 bytes";
    const struct cpx_canon_node *roles = cpx_canon_get(d, p, "roles");
    if (roles == NULL || roles->type != CPX_CANON_ARRAY || roles->count == 0)
        return "identity roles must be a non-empty array";
    int last = -1;
    for (const struct cpx_canon_node *e = cpx_canon_first(d, roles); e != NULL;
         e = cpx_canon_next(d, e)) {
        int found = -1;
        for (int i = 0; i < ROLE_COUNT; i++)
            if (cpx_canon_string_eq(d, e, role_names[i]))
                found = i;
        if (found < 0)
            return "identity roles must be buyer, operator, provider or regulator";
        if (found <= last)
            return "identity roles must be sorted and distinct";
        last = found;
        out->roles |= 1u << found;
    }
    char derived[CPX_ID_MAX];
    cpx_identity_id_for_key(out->public_key, derived);
    if (strcmp(derived, out->id) != 0)
        return "identity id is not the id of its public_key";
    return NULL;
}

const char *cpx_decision_payload_parse(const struct cpx_record *r, struct cpx_decision_payload *out)
{
    const struct cpx_canon_doc *d = &r->doc;
    bool rejection = r->kind == CPX_KIND_REJECTION;
    const struct cpx_canon_node *p = payload_with(r, rejection ? 2 : 1);
    memset(out, 0, sizeof *out);
    if (p == NULL)
        return rejection ? "rejection payload must have exactly id and reason"
                         : "approval payload must have exactly id";
    if (!get_id(d, p, out->id))
        return "decision id is not an identity id";
    if (rejection &&
        !get_string(d, p, "reason", out->reason, sizeof out->reason, 1, CPX_REASON_MAX - 1))
        return "rejection reason must be 1..500 bytes";
    return NULL;
}

const char *cpx_key_rotation_payload_parse(const struct cpx_record *r,
                                           struct cpx_key_rotation_payload *out)
{
    const struct cpx_canon_doc *d = &r->doc;
    const struct cpx_canon_node *p = payload_with(r, 3);
    memset(out, 0, sizeof *out);
    if (p == NULL)
        return "key_rotation payload must have exactly id, new_public_key and old_public_key";
    if (!get_id(d, p, out->id))
        return "key_rotation id is not an identity id";
    if (!get_b64_exact(d, p, "new_public_key", out->new_public_key, CPX_ED25519_PK_LEN) ||
        !get_b64_exact(d, p, "old_public_key", out->old_public_key, CPX_ED25519_PK_LEN))
        return "key_rotation keys must be base64 of 32 bytes";
    if (memcmp(out->new_public_key, out->old_public_key, CPX_ED25519_PK_LEN) == 0)
        return "key_rotation new_public_key must differ from old_public_key";
    return NULL;
}

enum cpx_canon_error cpx_roles_write(struct cpx_canon_writer *w, unsigned roles)
{
    cpx_canon_begin_array(w);
    for (int i = 0; i < ROLE_COUNT; i++)
        if (roles & (1u << i))
            cpx_canon_string(w, role_names[i], strlen(role_names[i]));
    return cpx_canon_end_array(w);
}

enum cpx_canon_error cpx_identity_payload_write(struct cpx_canon_writer *w,
                                                const struct cpx_identity_payload *p)
{
    cpx_canon_begin_object(w);
    cpx_canon_kv_string(w, "id", p->id);
    cpx_canon_kv_string(w, "name", p->name);
    cpx_canon_key(w, "public_key", 10);
    cpx_canon_base64(w, p->public_key, sizeof p->public_key);
    cpx_canon_kv_string(w, "reg_no", p->reg_no);
    cpx_canon_key(w, "roles", 5);
    cpx_roles_write(w, p->roles);
    return cpx_canon_end_object(w);
}

enum cpx_canon_error cpx_decision_payload_write(struct cpx_canon_writer *w, enum cpx_kind kind,
                                                const struct cpx_decision_payload *p)
{
    cpx_canon_begin_object(w);
    cpx_canon_kv_string(w, "id", p->id);
    if (kind == CPX_KIND_REJECTION)
        cpx_canon_kv_string(w, "reason", p->reason);
    return cpx_canon_end_object(w);
}

enum cpx_canon_error cpx_key_rotation_payload_write(struct cpx_canon_writer *w,
                                                    const struct cpx_key_rotation_payload *p)
{
    cpx_canon_begin_object(w);
    cpx_canon_kv_string(w, "id", p->id);
    cpx_canon_key(w, "new_public_key", 14);
    cpx_canon_base64(w, p->new_public_key, CPX_ED25519_PK_LEN);
    cpx_canon_key(w, "old_public_key", 14);
    cpx_canon_base64(w, p->old_public_key, CPX_ED25519_PK_LEN);
    return cpx_canon_end_object(w);
}
