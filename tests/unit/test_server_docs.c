/*
 * The documents stay true: docs/errors.md lists every error code of server/errors.c with its
 * status, and docs/openapi.json describes exactly the routes of server/routes.c.
 * Runs from the top of the checkout (as `make test` does).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/errors.h"
#include "server/routes.h"
#include "server/util.h"

static void errors_documented(void **state)
{
    (void)state;
    char *doc = read_file("docs/errors.md", 1 << 20, NULL);
    assert_non_null(doc);
    for (int e = 0; e < E_COUNT; e++) {
        const struct err_info *info = err_info((enum err)e);
        char row[128];
        snprintf(row, sizeof row, "| %d | `%s` |", info->status, info->code);
        if (strstr(doc, row) == NULL)
            fail_msg("docs/errors.md lacks the row %s", row);
    }
    free(doc);
}

static void openapi_matches_routes(void **state)
{
    (void)state;
    json_error_t jerr;
    json_t *doc = json_load_file("docs/openapi.json", 0, &jerr);
    if (doc == NULL)
        fail_msg("docs/openapi.json: %s (line %d)", jerr.text, jerr.line);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    json_t *paths = json_object_get(doc, "paths");
    assert_true(json_is_object(paths));
    size_t described = 0;
    for (size_t i = 0; i < nroutes; i++) {
        char method[16];
        size_t n = strlen(routes[i].method);
        for (size_t k = 0; k <= n; k++)
            method[k] = (char)(routes[i].method[k] | (k < n ? 0x20 : 0)); /* lower case */
        json_t *op = json_object_get(json_object_get(paths, routes[i].pattern), method);
        if (op == NULL)
            fail_msg("docs/openapi.json does not describe %s %s", routes[i].method,
                     routes[i].pattern);
        /* Signed routes say so; public ones do not. */
        bool secured = json_array_size(json_object_get(op, "security")) > 0;
        if (secured != (routes[i].access != ACCESS_PUBLIC))
            fail_msg("%s %s: security in openapi.json disagrees with the route table",
                     routes[i].method, routes[i].pattern);
    }
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item)
    {
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op)
        {
            bool found = false;
            for (size_t i = 0; i < nroutes && !found; i++)
                found = strcmp(routes[i].pattern, path) == 0 &&
                        strcasecmp(routes[i].method, method) == 0;
            if (!found)
                fail_msg("docs/openapi.json describes %s %s, which cpxd does not serve", method,
                         path);
            described++;
        }
    }
    assert_int_equal(described, nroutes);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(errors_documented),
        cmocka_unit_test(openapi_matches_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
