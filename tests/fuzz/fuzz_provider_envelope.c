/*
 * Fuzz target: what bin/cpx-provider reads from the network (clients/cpx-provider/envelope.c).
 * The input is an envelope body, an Authorization header and an agreement as the exchange shows
 * it, all at once. Properties checked besides memory safety: a parsed envelope names an agreement
 * and a delivery with valid ids and at least one device, and a header checked against a key with
 * no matching signature is never accepted.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clients/cpx-provider/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct envelope env;
    char why[ENVELOPE_WHY_MAX];
    if (envelope_parse(data, size, &env, why) == NULL) {
        if (!provider_id_valid(env.agreement, "agr_") || !provider_id_valid(env.delivery, "dlv_") ||
            env.devices < 1)
            abort();
        envelope_free(&env);
    }

    char *header = malloc(size + 1);
    if (header == NULL)
        return 0;
    memcpy(header, data, size);
    header[size] = '\0';
    uint8_t pk[CPX_ED25519_PK_LEN] = { 0 }; /* no signature verifies with the all-zero key */
    if (envelope_check_auth(pk, header, "/jobs", data, size, 1764403200) == NULL)
        abort();
    free(header);

    json_t *obj = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    struct agreement_view view;
    if (json_is_object(obj) && agreement_view_parse(obj, &view) &&
        (view.started_at < 0 || view.ends_at < 0))
        abort();
    json_decref(obj);
    return 0;
}
