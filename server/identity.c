/*
 * Identities in memory and as JSON: see identity.h.
 */
#include "server/identity.h"

#include <stdio.h>
#include <string.h>

#include "ledger/keyfile.h"
#include "server/util.h"

const char *const role_names[] = { "buyer", "provider", "regulator", "operator", NULL };
const char *const identity_status_names[] = { "pending", "approved", "rejected", NULL };

enum identity_status identity_status_of(const char *s)
{
    for (int i = 0; identity_status_names[i] != NULL; i++)
        if (strcmp(s, identity_status_names[i]) == 0)
            return (enum identity_status)i;
    return IDENTITY_PENDING;
}

void roles_to_pg_array(unsigned roles, char out[64])
{
    size_t n = 0;
    out[n++] = '{';
    for (int i = 0; role_names[i] != NULL; i++)
        if (roles & (1u << i))
            n += (size_t)snprintf(out + n, 64 - n, "%s%s", n > 1 ? "," : "", role_names[i]);
    snprintf(out + n, 64 - n, "}");
}

unsigned roles_from_list(const char *list)
{
    unsigned roles = 0;
    const char *p = list;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        for (int i = 0; role_names[i] != NULL; i++)
            if (strlen(role_names[i]) == n && strncmp(p, role_names[i], n) == 0)
                roles |= 1u << i;
        p += n;
        if (*p == ',')
            p++;
    }
    return roles;
}

json_t *identity_to_json(const struct identity *idn)
{
    char pk[45], created[RFC3339_MAX];
    cpx_public_key_encode(idn->public_key, pk);
    json_t *roles = json_array();
    for (int i = 0; roles != NULL && role_names[i] != NULL; i++)
        if (idn->roles & (1u << i))
            json_array_append_new(roles, json_string(role_names[i]));
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s}", "id", idn->id, "name", idn->name,
                          "reg_no", idn->reg_no, "roles", roles, "public_key", pk, "status",
                          identity_status_names[idn->status], "created_at",
                          format_rfc3339(idn->created_at, created));
    if (o == NULL)
        return NULL;
    if (idn->status != IDENTITY_PENDING) {
        char decided[RFC3339_MAX];
        json_object_set_new(o, "decided_at", json_string(format_rfc3339(idn->decided_at, decided)));
        json_object_set_new(o, "decided_by", json_string(idn->decided_by));
        if (idn->reason[0] != '\0')
            json_object_set_new(o, "reason", json_string(idn->reason));
    }
    return o;
}
