/*
 * The test ledger builder: see ledger_fixtures.h. Aborts (through cmocka-free asserts) only on
 * its own misuse; everything it writes is built with the library's own encoders.
 */
#include "tests/support/ledger_fixtures.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/keyfile.h"

void fx_log_init(struct fx_log *l)
{
    memset(l, 0, sizeof *l);
    cpx_crypto_init();
    cpx_keypair_generate(&l->exchange);
    bool ok = cpx_note_verifier_init(&l->verifier, FX_ORIGIN, l->exchange.pk);
    assert(ok);
    (void)ok;
    l->ts_ms = 1764403200000;
}

void fx_log_free(struct fx_log *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->rec[i]);
    free(l->rec);
    free(l->len);
    memset(l, 0, sizeof *l);
}

void fx_party_new(struct fx_party *p)
{
    cpx_keypair_generate(&p->kp);
    cpx_identity_id_for_key(p->kp.pk, p->id);
}

/* Stores a copy of bytes as the next record. */
static void push(struct fx_log *l, const uint8_t *bytes, size_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->rec = realloc(l->rec, l->cap * sizeof *l->rec);
        l->len = realloc(l->len, l->cap * sizeof *l->len);
        assert(l->rec != NULL && l->len != NULL);
    }
    l->rec[l->n] = malloc(len);
    assert(l->rec[l->n] != NULL);
    memcpy(l->rec[l->n], bytes, len);
    l->len[l->n++] = len;
}

/* Appends a record; a party's is signed by it when `sign` (else its signature is zero). */
static uint64_t append(struct fx_log *l, const char *kind, const char *payload,
                       const struct fx_party *party, const char *method, const char *target,
                       const char *body, bool sign)
{
    struct cpx_record r;
    cpx_record_init(&r);
    r.seq = l->n;
    r.kind = cpx_kind_from_name(kind, strlen(kind));
    snprintf(r.kind_name, sizeof r.kind_name, "%s", kind);
    r.ts = l->ts_ms++;
    r.payload = (const uint8_t *)payload;
    r.payload_len = strlen(payload);
    if (party != NULL) {
        r.has_party = true;
        snprintf(r.party.id, sizeof r.party.id, "%s", party->id);
        snprintf(r.party.method, sizeof r.party.method, "%s", method);
        snprintf(r.party.target, sizeof r.party.target, "%s", target);
        r.party.ts = l->ts_ms / 1000;
        r.party.body = (const uint8_t *)body;
        r.party.body_len = strlen(body);
    }
    if (party != NULL && sign) {
        struct cpx_auth auth;
        bool ok =
            cpx_reqsig_sign(&party->kp, method, target, r.party.ts, body, strlen(body), &auth);
        assert(ok);
        (void)ok;
        memcpy(r.party.sig, auth.sig, sizeof r.party.sig);
    }
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_record_encode(&w, &r);
    const uint8_t *out;
    size_t len;
    enum cpx_canon_error err = cpx_canon_writer_finish(&w, &out, &len);
    assert(err == CPX_CANON_OK);
    (void)err;
    push(l, out, len);
    cpx_canon_writer_free(&w);
    cpx_record_free(&r);
    return l->n - 1;
}

uint64_t fx_append(struct fx_log *l, const char *kind, const char *payload,
                   const struct fx_party *signer, const char *method, const char *target,
                   const char *body)
{
    return append(l, kind, payload, signer, method, target, body, true);
}

uint64_t fx_append_unsigned(struct fx_log *l, const char *kind, const char *payload,
                            const struct fx_party *party, const char *method, const char *target,
                            const char *body)
{
    return append(l, kind, payload, party, method, target, body, false);
}

/* Finishes w into a NUL-terminated heap string. */
static char *take(struct cpx_canon_writer *w)
{
    const uint8_t *out;
    size_t len;
    enum cpx_canon_error err = cpx_canon_writer_finish(w, &out, &len);
    assert(err == CPX_CANON_OK);
    (void)err;
    char *s = malloc(len + 1);
    assert(s != NULL);
    memcpy(s, out, len);
    s[len] = '\0';
    cpx_canon_writer_reset(w);
    return s;
}

/* Appends an identity record for p, signed by p when self_signed. */
static uint64_t identity(struct fx_log *l, const struct fx_party *p, unsigned roles,
                         int self_signed)
{
    struct cpx_identity_payload ip;
    memset(&ip, 0, sizeof ip);
    snprintf(ip.id, sizeof ip.id, "%s", p->id);
    snprintf(ip.name, sizeof ip.name, "Org %.8s", p->id + 4);
    snprintf(ip.reg_no, sizeof ip.reg_no, "91110000%.8s", p->id + 4);
    ip.roles = roles;
    memcpy(ip.public_key, p->kp.pk, 32);
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_identity_payload_write(&w, &ip);
    char *payload = take(&w);
    /* The body the party signs: the payload without the id (derived by the server). */
    cpx_canon_begin_object(&w);
    cpx_canon_kv_string(&w, "name", ip.name);
    cpx_canon_key(&w, "public_key", 10);
    cpx_canon_base64(&w, ip.public_key, 32);
    cpx_canon_kv_string(&w, "reg_no", ip.reg_no);
    cpx_canon_key(&w, "roles", 5);
    cpx_roles_write(&w, roles);
    cpx_canon_end_object(&w);
    char *body = take(&w);
    uint64_t seq =
        fx_append(l, "identity", payload, self_signed ? p : NULL, "POST", "/v1/identities", body);
    free(payload);
    free(body);
    cpx_canon_writer_free(&w);
    return seq;
}

uint64_t fx_register(struct fx_log *l, const struct fx_party *p, unsigned roles)
{
    return identity(l, p, roles, 1);
}

uint64_t fx_register_exchange(struct fx_log *l, const struct fx_party *p, unsigned roles)
{
    return identity(l, p, roles, 0);
}

uint64_t fx_decide(struct fx_log *l, const struct fx_party *subject,
                   const struct fx_party *operator, int approve)
{
    char payload[256], target[128];
    if (approve)
        snprintf(payload, sizeof payload, "{\"id\":\"%s\"}", subject->id);
    else
        snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"reason\":\"incomplete papers\"}",
                 subject->id);
    snprintf(target, sizeof target, "/v1/identities/%s/%s", subject->id,
             approve ? "approve" : "reject");
    return fx_append(l, approve ? "approval" : "rejection", payload, operator, "POST", target,
                     payload);
}

uint64_t fx_rotate(struct fx_log *l, struct fx_party *p, const struct cpx_keypair *next)
{
    char newk[45], oldk[45], payload[256], body[128], target[128];
    cpx_public_key_encode(next->pk, newk);
    cpx_public_key_encode(p->kp.pk, oldk);
    snprintf(payload, sizeof payload,
             "{\"id\":\"%s\",\"new_public_key\":\"%s\",\"old_public_key\":\"%s\"}", p->id, newk,
             oldk);
    snprintf(body, sizeof body, "{\"new_public_key\":\"%s\"}", newk);
    snprintf(target, sizeof target, "/v1/identities/%s/keys", p->id);
    uint64_t seq = fx_append(l, "key_rotation", payload, p, "POST", target, body);
    p->kp = *next;
    return seq;
}

uint64_t fx_order(struct fx_log *l, const struct fx_party *buyer, int n)
{
    char payload[256], body[256];
    snprintf(payload, sizeof payload,
             "{\"buyer\":\"%s\",\"hours\":4,\"id\":\"ord_%06d\",\"limit_price\":15200000,"
             "\"precision\":\"bf16\",\"tflops\":900}",
             buyer->id, n);
    snprintf(body, sizeof body,
             "{ \"client_order_id\": \"c-%d\", \"precision\": \"bf16\", \"tflops\": 900, "
             "\"hours\": 4, \"limit_price\": \"15.2\" }",
             n);
    return fx_append(l, "order", payload, buyer, "POST", "/v1/orders", body);
}

uint64_t fx_bill(struct fx_log *l, int n)
{
    char payload[128];
    snprintf(payload, sizeof payload, "{\"amount\":%d,\"id\":\"bil_%06d\"}", 1000000 + n, n);
    return fx_append(l, "bill", payload, NULL, NULL, NULL, NULL);
}

void fx_tree(const struct fx_log *l, uint64_t size, struct cpx_merkle_tree *t)
{
    int rc = cpx_merkle_tree_init(t);
    assert(rc == 0);
    (void)rc;
    for (uint64_t i = 0; i < size; i++)
        cpx_merkle_tree_append(t, l->rec[i], l->len[i]);
}

size_t fx_checkpoint(const struct fx_log *l, uint64_t size, const struct cpx_keypair *key,
                     const char *origin, char *out, size_t cap)
{
    struct cpx_merkle_tree t;
    struct cpx_checkpoint cp;
    memset(&cp, 0, sizeof cp);
    fx_tree(l, size, &t);
    cpx_merkle_tree_root(&t, cp.root);
    cpx_merkle_tree_free(&t);
    cp.size = size;
    snprintf(cp.origin, sizeof cp.origin, "%s", origin ? origin : FX_ORIGIN);
    long n =
        cpx_checkpoint_sign(&cp, origin ? origin : FX_ORIGIN, key ? key : &l->exchange, out, cap);
    assert(n > 0);
    return (size_t)n;
}

void fx_leaf(const struct fx_log *l, size_t i, uint8_t out[32])
{
    cpx_merkle_leaf_hash(NULL, l->rec[i], l->len[i], out);
}

/* Writes the canonical line in w and a newline to f, and resets w. */
static void put_line(struct cpx_canon_writer *w, FILE *f)
{
    const uint8_t *out;
    size_t len;
    enum cpx_canon_error err = cpx_canon_writer_finish(w, &out, &len);
    assert(err == CPX_CANON_OK);
    (void)err;
    bool ok = fwrite(out, 1, len, f) == len && fputc('\n', f) != EOF;
    assert(ok);
    (void)ok;
    cpx_canon_writer_reset(w);
}

void fx_export_write(const struct fx_log *l, const uint64_t *sizes, size_t n_sizes,
                     const char *path)
{
    FILE *f = fopen(path, "wb");
    assert(f != NULL);
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_canon_begin_object(&w);
    cpx_canon_kv_string(&w, "format", "cpx-ledger-export");
    cpx_canon_kv_string(&w, "origin", FX_ORIGIN);
    cpx_canon_kv_int(&w, "size", (int64_t)l->n);
    cpx_canon_kv_int(&w, "v", 1);
    cpx_canon_end_object(&w);
    put_line(&w, f);
    char note[1024];
    for (size_t i = 0; i < n_sizes; i++) {
        size_t len = fx_checkpoint(l, sizes[i], NULL, NULL, note, sizeof note);
        cpx_canon_begin_object(&w);
        cpx_canon_key(&w, "checkpoint", 10);
        cpx_canon_string(&w, note, len);
        cpx_canon_kv_int(&w, "size", (int64_t)sizes[i]);
        cpx_canon_end_object(&w);
        put_line(&w, f);
    }
    for (size_t i = 0; i < l->n; i++) {
        uint8_t leaf[32];
        fx_leaf(l, i, leaf);
        cpx_canon_begin_object(&w);
        cpx_canon_key(&w, "leaf_hash", 9);
        cpx_canon_base64(&w, leaf, sizeof leaf);
        cpx_canon_key(&w, "record", 6);
        cpx_canon_string(&w, (const char *)l->rec[i], l->len[i]);
        cpx_canon_kv_int(&w, "seq", (int64_t)i);
        cpx_canon_end_object(&w);
        put_line(&w, f);
    }
    cpx_canon_writer_free(&w);
    int rc = fclose(f);
    assert(rc == 0);
    (void)rc;
}

struct cpx_audit_config fx_config(const struct fx_log *l, enum cpx_audit_sigmode sigs)
{
    struct cpx_audit_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.exchange = l->verifier;
    cfg.sigs = sigs;
    return cfg;
}
