/*
 * Reading members of the JSON items both sources receive (export lines, exchange answers).
 * Everything is untrusted: a member of the wrong type reads as absent.
 */
#include "clients/cpx-audit/source.h"

#include "ledger/codec.h"

const char *member_string(const json_t *obj, const char *key, size_t *len)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

bool member_uint(const json_t *obj, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

bool member_leaf(const json_t *item, uint8_t leaf[CPX_HASH_LEN], bool *have)
{
    size_t len;
    const char *b64 = member_string(item, "leaf_hash", &len);
    *have = b64 != NULL && cpx_b64_decode(b64, len, leaf, CPX_HASH_LEN) == CPX_HASH_LEN;
    return *have || json_object_get(item, "leaf_hash") == NULL;
}
