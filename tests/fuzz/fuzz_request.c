/*
 * Fuzz target: the server's handling of untrusted request parts without a network. The input's
 * first byte chooses what the rest is:
 *   0: a JSON body, decoded as cpxd does and parsed against a spec using every field type;
 *   1: a request path, matched against the route table (and its params checked);
 *   2: an RFC 3339 time (and, when it parses, formatted and parsed back to the same instant).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/routes.h"
#include "server/spec.h"
#include "server/util.h"

static const char *const words[] = { "buyer", "provider", "regulator", "operator", NULL };

struct body {
    const char *name;
    int64_t count;
    bool flag;
    int word;
    unsigned set;
    uint8_t key[32];
    int64_t when;
    int64_t depth;
};

static const struct spec inner[] = {
    SPEC_INT("depth", struct body, depth, true, -5, 5),
    SPEC_END,
};

static const struct spec spec[] = {
    SPEC_STR("name", struct body, name, true, 1, 200),
    SPEC_INT("count", struct body, count, false, INT64_MIN, INT64_MAX),
    SPEC_BOOL("flag", struct body, flag, false),
    SPEC_ENUM("word", struct body, word, false, words),
    SPEC_SET("set", struct body, set, false, words),
    SPEC_KEY("key", struct body, key, false),
    SPEC_TIME("when", struct body, when, false),
    SPEC_OBJ("inner", false, inner),
    SPEC_END,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *rest = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 3) {
    case 0: {
        json_t *j = json_loadb(rest, len, JSON_REJECT_DUPLICATES, NULL);
        if (j != NULL) {
            struct body b = { 0 };
            struct spec_error err;
            if (spec_parse(j, spec, &b, &err) && (b.name == NULL || b.word < -1 || b.word > 3))
                abort();
            json_decref(j);
        }
        break;
    }
    case 1: {
        routes_init();
        size_t index;
        char params[ROUTE_MAX_PARAMS][CPX_ID_MAX], allow[64];
        if (route_find("GET", rest, len, &index, params, allow) == ROUTE_FOUND && index >= nroutes)
            abort();
        route_find("POST", rest, len, &index, params, allow);
        break;
    }
    case 2: {
        char *s = malloc(len + 1);
        if (s == NULL)
            return 0;
        memcpy(s, rest, len);
        s[len] = '\0';
        int64_t t, back;
        char out[RFC3339_MAX];
        if (parse_rfc3339(s, &t) && (!parse_rfc3339(format_rfc3339(t, out), &back) || back != t))
            abort();
        free(s);
        break;
    }
    }
    return 0;
}
