/*
 * Fuzz target: the auditor core driven through whole sequences, so that its stateful paths
 * (identity life cycle, forked leaf trees, queued checkpoints, consistency proofs, saved state)
 * meet arbitrary input. The input is a list of chunks, each [type:1][length:2, big-endian][data]:
 *
 *   's'  a saved state to load (only as the first chunk)
 *   'r'  a record
 *   'R'  a claimed leaf hash (32 bytes) then a record
 *   'c'  a checkpoint note
 *   'k'  [note length:2][note][consistency proof JSON]
 *
 * The exchange key is the one that signed the corpus's seed checkpoints (seed 0x42 x 32).
 * Properties besides memory safety: every call returns a status (never aborts), and the state
 * written at the end loads into a fresh auditor and writes back to the same bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/audit.h"
#include "tests/support/fuzz_stateful.h"

static const uint8_t exchange_pk[CPX_ED25519_PK_LEN] = {
    0x21, 0x52, 0xf8, 0xd1, 0x9b, 0x79, 0x1d, 0x24, 0x45, 0x32, 0x42, 0xe1, 0x5f, 0x2e, 0xab, 0x6c,
    0xb7, 0xcf, 0xfa, 0x7b, 0x6a, 0x5e, 0xd3, 0x00, 0x97, 0x96, 0x0e, 0x06, 0x98, 0x81, 0xdb, 0x12,
};

/* Writes a's state and returns it (heap) with its length, or NULL. */
static uint8_t *state_of(struct cpx_audit *a, size_t *len)
{
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    const uint8_t *out;
    uint8_t *copy = NULL;
    if (cpx_audit_state_write(a, &w) == CPX_CANON_OK &&
        cpx_canon_writer_finish(&w, &out, len) == CPX_CANON_OK) {
        copy = malloc(*len);
        if (copy != NULL)
            memcpy(copy, out, *len);
    }
    cpx_canon_writer_free(&w);
    return copy;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        cpx_crypto_init();
        ready = true;
    }
    struct cpx_audit_config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (!cpx_note_verifier_init(&cfg.exchange, "cpx.fuzz/ledger", exchange_pk))
        abort();
    cfg.sigs = CPX_AUDIT_SIGS_INLINE;
    struct cpx_audit *a = cpx_audit_new(&cfg);
    if (a == NULL)
        return 0;
    bool first = true;
    struct fuzz_chunk c;
    for (size_t at = 0; fuzz_chunk_next(data, size, &at, &c);) {
        const uint8_t *chunk = c.data;
        size_t len = c.len;
        enum cpx_audit_status st = CPX_AUDIT_OK;
        switch (c.type) {
        case 's':
            if (first)
                (void)cpx_audit_state_load(a, chunk, len);
            break;
        case 'r': st = cpx_audit_record(a, chunk, len, NULL, NULL); break;
        case 'R':
            if (len >= CPX_HASH_LEN)
                st = cpx_audit_record(a, chunk + CPX_HASH_LEN, len - CPX_HASH_LEN, chunk, NULL);
            break;
        case 'c': st = cpx_audit_checkpoint(a, (const char *)chunk, len); break;
        case 'k':
            if (len >= 2) {
                size_t nlen = (size_t)chunk[0] << 8 | chunk[1];
                if (nlen > len - 2)
                    nlen = len - 2;
                struct cpx_consistency_proof proof;
                if (cpx_consistency_proof_parse(chunk + 2 + nlen, len - 2 - nlen, &proof) != NULL)
                    memset(&proof, 0, sizeof proof);
                st = cpx_audit_consistency(a, (const char *)chunk + 2, nlen, &proof);
            }
            break;
        default: break;
        }
        if (st != CPX_AUDIT_OK && st != CPX_AUDIT_E_ORDER)
            abort(); /* no deferral in inline mode; out of memory is not expected here */
        first = false;
    }
    cpx_audit_finish(a);
    size_t n;
    const struct cpx_audit_failure *f = cpx_audit_failures(a, &n);
    fuzz_check_findings(f, n, sizeof *f, offsetof(struct cpx_audit_failure, seq),
                        cpx_audit_failure_total(a));

    /* The saved state loads into a fresh auditor and writes back to the same bytes. */
    size_t len1, len2;
    uint8_t *s1 = state_of(a, &len1);
    cpx_audit_free(a);
    if (s1 != NULL) {
        struct cpx_audit *b = cpx_audit_new(&cfg);
        if (b != NULL) {
            if (cpx_audit_state_load(b, s1, len1) != NULL)
                abort();
            uint8_t *s2 = state_of(b, &len2);
            if (s2 != NULL && (len2 != len1 || memcmp(s1, s2, len1) != 0))
                abort();
            free(s2);
            cpx_audit_free(b);
        }
        free(s1);
    }
    return 0;
}
