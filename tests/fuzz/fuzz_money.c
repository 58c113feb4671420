/*
 * Fuzz target: decimal CNY amounts (server/money.c). The input, up to its first NUL, is an amount
 * as a client sends it. money_parse must never crash, and must accept exactly the strings of the
 * grammar [0-9]+ ('.' [0-9]{1,6})? without leading zeros whose value is at most INT64_MAX micro
 * (checked here by a second, naive reading). When it accepts, money_format of the value parses
 * back to the same value and is the input without the trailing zeros of its fraction; so an input
 * without such zeros ("15.2", not "15.20" or "0.0") prints back byte for byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/money.h"

/* The grammar, naively; on success writes the amount's digits in micro (whole digits and the
 * fraction padded to 6, leading zeros removed) to micro_digits. */
static bool well_formed(const char *s, char *micro_digits)
{
    size_t whole = strspn(s, "0123456789");
    if (whole == 0 || (whole > 1 && s[0] == '0'))
        return false;
    const char *frac = "";
    size_t nfrac = 0;
    if (s[whole] == '.') {
        frac = s + whole + 1;
        nfrac = strspn(frac, "0123456789");
        if (nfrac == 0 || nfrac > 6 || frac[nfrac] != '\0')
            return false;
    } else if (s[whole] != '\0') {
        return false;
    }
    char *d = micro_digits;
    memcpy(d, s, whole);
    memcpy(d + whole, frac, nfrac);
    memset(d + whole + nfrac, '0', 6 - nfrac);
    d[whole + 6] = '\0';
    size_t zeros = strspn(d, "0");
    if (d[zeros] == '\0')
        zeros--; /* keep one "0" */
    memmove(d, d + zeros, strlen(d + zeros) + 1);
    return true;
}

/* Is the decimal string (no leading zeros) at most INT64_MAX? */
static bool fits(const char *digits)
{
    static const char max[] = "9223372036854775807";
    size_t n = strlen(digits);
    return n < sizeof max - 1 || (n == sizeof max - 1 && strcmp(digits, max) <= 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    char *digits = malloc(size + 8);
    if (s == NULL || digits == NULL) {
        free(s);
        free(digits);
        return 0;
    }
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t v = -1, back = -1;
    bool ok = money_parse(s, &v);
    if (ok != (well_formed(s, digits) && fits(digits)))
        abort();
    if (ok) {
        char text[MONEY_STR_MAX];
        money_format(v, text);
        if (v < 0 || !money_parse(text, &back) || back != v)
            abort();
        /* The input without its fraction's trailing zeros (then a bare point) is the format: an
         * input without such zeros prints back byte for byte. */
        size_t n = strlen(s);
        if (strchr(s, '.') != NULL) {
            while (s[n - 1] == '0')
                s[--n] = '\0';
            if (s[n - 1] == '.')
                s[--n] = '\0';
        }
        if (strcmp(text, s) != 0)
            abort();
    }
    free(s);
    free(digits);
    return 0;
}
