/*
 * Fuzz target: everything that reads credentials from untrusted bytes. The input goes through
 * the Authorization header parser, the key file parser and the base64/hex decoders. Properties
 * checked besides memory safety: a header that parses formats back to a header that parses to
 * the same values, and decoded base64 re-encodes to the same text (one spelling per value).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/codec.h"
#include "ledger/keyfile.h"
#include "ledger/reqsig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct cpx_auth auth, again;
    if (cpx_auth_parse(text, size, &auth) == CPX_AUTH_OK) {
        char header[CPX_AUTH_HEADER_MAX];
        cpx_auth_format(&auth, header);
        if (cpx_auth_parse(header, strlen(header), &again) != CPX_AUTH_OK ||
            strcmp(auth.id, again.id) != 0 || auth.ts != again.ts ||
            memcmp(auth.sig, again.sig, sizeof auth.sig) != 0)
            abort();
    }

    struct cpx_keyfile kf;
    if (cpx_keyfile_parse(text, size, &kf) == NULL && !cpx_identity_id_valid(kf.identity))
        abort();

    uint8_t *out = malloc(size + 1);
    if (out == NULL)
        return 0;
    long n = cpx_b64_decode(text, size, out, size);
    if (n >= 0) {
        char *back = malloc(CPX_B64_LEN((size_t)n) + 1);
        if (back != NULL) {
            size_t m = cpx_b64_encode(out, (size_t)n, back);
            if (m != size || memcmp(back, text, size) != 0)
                abort();
            free(back);
        }
    }
    cpx_hex_decode(text, size, out, size / 2);
    free(out);
    return 0;
}
