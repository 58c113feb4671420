/*
 * Fuzz target: the record decoder (bytes straight from a ledger export or the API) and the
 * identity-family payload parsers. Properties besides memory safety: a record that decodes
 * re-encodes to the same bytes (the envelope has one spelling), and the auditor core takes any
 * bytes as a record without failing other than by reporting.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/audit.h"
#include "ledger/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        cpx_crypto_init();
        ready = true;
    }
    struct cpx_record r;
    cpx_record_init(&r);
    if (cpx_record_decode(&r, data, size) == CPX_RECORD_OK) {
        struct cpx_canon_writer w;
        cpx_canon_writer_init(&w);
        const uint8_t *out;
        size_t len;
        if (cpx_record_encode(&w, &r) != CPX_CANON_OK ||
            cpx_canon_writer_finish(&w, &out, &len) != CPX_CANON_OK || len != size ||
            memcmp(out, data, size) != 0)
            abort();
        cpx_canon_writer_free(&w);
        uint8_t pk[CPX_ED25519_PK_LEN] = { 1 };
        (void)cpx_record_party_verify(&r, pk);
        struct cpx_canon_doc scratch = CPX_CANON_DOC_INIT;
        (void)cpx_record_body_in_payload(&r, &scratch);
        cpx_canon_doc_free(&scratch);
        struct cpx_identity_payload ip;
        struct cpx_decision_payload dp;
        struct cpx_key_rotation_payload kp;
        (void)cpx_identity_payload_parse(&r, &ip);
        (void)cpx_decision_payload_parse(&r, &dp);
        (void)cpx_key_rotation_payload_parse(&r, &kp);
    }
    cpx_record_free(&r);

    /* The same bytes through an auditor, as record 0. */
    struct cpx_audit_config cfg;
    memset(&cfg, 0, sizeof cfg);
    uint8_t exchange_pk[CPX_ED25519_PK_LEN] = { 2 };
    if (!cpx_note_verifier_init(&cfg.exchange, "cpx.fuzz/ledger", exchange_pk))
        abort();
    cfg.sigs = CPX_AUDIT_SIGS_INLINE;
    struct cpx_audit *a = cpx_audit_new(&cfg);
    if (a != NULL) {
        if (cpx_audit_record(a, data, size, NULL, NULL) != CPX_AUDIT_OK)
            abort();
        cpx_audit_finish(a);
        cpx_audit_free(a);
    }
    return 0;
}
