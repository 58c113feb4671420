/*
 * Fuzz target: Merkle proofs from the wire and the RFC 9162 verifiers on arbitrary shapes.
 * The first byte chooses: 0 the inclusion proof parser, 1 the consistency proof parser (a parsed
 * proof must re-encode to the same bytes), anything else raw verification: sizes and hashes
 * taken from the input go straight into the verifiers, which must never crash or read past
 * the proof, and must reject a proof for a tree that the fuzzer cannot know the root of.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/merkle.h"

static uint64_t read_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct cpx_canon_writer w;
    const uint8_t *out;
    size_t len;
    if (data[0] == 0) {
        struct cpx_inclusion_proof p;
        if (cpx_inclusion_proof_parse(data + 1, size - 1, &p) == NULL) {
            cpx_canon_writer_init(&w);
            cpx_inclusion_proof_write(&w, &p);
            if (cpx_canon_writer_finish(&w, &out, &len) != CPX_CANON_OK || len != size - 1 ||
                memcmp(out, data + 1, len) != 0)
                abort();
            cpx_canon_writer_free(&w);
            uint8_t leaf[32] = { 0 }, root[32] = { 0 };
            (void)cpx_merkle_verify_inclusion(NULL, p.leaf_index, p.tree_size, leaf,
                                              (const uint8_t(*)[32])p.hashes, p.n, root);
        }
        return 0;
    }
    if (data[0] == 1) {
        struct cpx_consistency_proof p;
        if (cpx_consistency_proof_parse(data + 1, size - 1, &p) == NULL) {
            cpx_canon_writer_init(&w);
            cpx_consistency_proof_write(&w, &p);
            if (cpx_canon_writer_finish(&w, &out, &len) != CPX_CANON_OK || len != size - 1 ||
                memcmp(out, data + 1, len) != 0)
                abort();
            cpx_canon_writer_free(&w);
            uint8_t r1[32] = { 0 }, r2[32] = { 1 };
            (void)cpx_merkle_verify_consistency(NULL, p.first, p.second, r1, r2,
                                                (const uint8_t(*)[32])p.hashes, p.n);
        }
        return 0;
    }
    /* Raw: [tag][a:8][b:8][leaf or root1:32][root2:32][hashes...] */
    if (size < 1 + 16 + 64)
        return 0;
    uint64_t a = read_u64(data + 1), b = read_u64(data + 9);
    const uint8_t *h1 = data + 17, *h2 = data + 49;
    size_t n = (size - 81) / 32;
    if (n > CPX_MERKLE_MAX_PROOF)
        n = CPX_MERKLE_MAX_PROOF;
    uint8_t(*hashes)[32] = malloc(n ? n * 32 : 1);
    if (hashes == NULL)
        return 0;
    memcpy(hashes, data + 81, n * 32);
    uint8_t root[32];
    (void)cpx_merkle_root_from_inclusion(NULL, a, b, h1, (const uint8_t(*)[32])hashes, n, root);
    (void)cpx_merkle_verify_consistency(NULL, a, b, h1, h2, (const uint8_t(*)[32])hashes, n);
    free(hashes);
    return 0;
}
