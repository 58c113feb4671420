/*
 * Fuzz target: small parsers of untrusted text in the server. The input's first byte chooses:
 *   0: a decimal count from a query string or path (cpx_decimal_parse): accepted text prints back
 * as itself, so there is exactly one spelling of each number; 1: stored record bytes made into JSON
 * text (utf8_repaired): the result is always valid UTF-8 without NUL, and equal to the input
 * whenever the input was that already; 2: a market id from a path or cursor (market_id_parse):
 * an accepted id formats back to itself, so each id has one spelling.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/canon.h"
#include "ledger/codec.h"
#include "server/http.h"
#include "server/market.h"
#include "server/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *rest = data + 1;
    size_t len = size - 1;
    if (data[0] % 4 == 2) {
        char *s = malloc(len + 1);
        if (s == NULL)
            return 0;
        memcpy(s, rest, len);
        s[len] = '\0';
        static const char *const prefixes[] = { "ord_", "lst_", "agr_" };
        for (size_t i = 0; i < 3; i++) {
            uint64_t v = market_id_parse(s, prefixes[i]);
            char back[MARKET_ID_MAX];
            market_id_format(back, prefixes[i], v);
            if (v != 0 && strcmp(back, s) != 0)
                abort();
        }
        free(s);
    } else if (data[0] % 2 == 0) {
        char *s = malloc(len + 1);
        if (s == NULL)
            return 0;
        memcpy(s, rest, len);
        s[len] = '\0';
        uint64_t v;
        char back[24];
        if (cpx_decimal_parse(s, &v)) {
            snprintf(back, sizeof back, "%" PRIu64, v);
            if (v > INT64_MAX || strcmp(back, s) != 0)
                abort();
        }
        free(s);
    } else {
        size_t n;
        char *text = utf8_repaired(rest, len, &n);
        if (text != NULL) {
            bool clean = cpx_utf8_valid(rest, len) && memchr(rest, 0, len) == NULL;
            if (!cpx_utf8_valid(text, n) || memchr(text, 0, n) != NULL ||
                (clean && (n != len || memcmp(text, rest, len) != 0)))
                abort();
            free(text);
        }
    }
    return 0;
}
