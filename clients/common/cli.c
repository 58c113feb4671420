/*
 * Argument parsing and reply printing for the command-line tools: see cli.h.
 */
#include "clients/common/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int flag_index(const struct cli_flag *flags, const char *name, size_t n)
{
    for (int i = 0; flags[i].name != NULL; i++)
        if (strlen(flags[i].name) == n && strncmp(flags[i].name, name, n) == 0)
            return i;
    return -1;
}

bool cli_parse(int argc, char **argv, const struct cli_flag *flags, struct cli_args *out)
{
    memset(out, 0, sizeof *out);
    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (out->nargs == CLI_MAX_ARGS) {
                fprintf(stderr, "too many arguments\n");
                return false;
            }
            out->args[out->nargs++] = arg;
            continue;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        int i = flag_index(flags, name, n);
        if (i < 0) {
            fprintf(stderr, "unknown option --%.*s\n", (int)n, name);
            return false;
        }
        if (!flags[i].takes_value) {
            if (eq != NULL) {
                fprintf(stderr, "--%s takes no value\n", flags[i].name);
                return false;
            }
            out->values[i] = "";
            continue;
        } else if (eq != NULL) {
            out->values[i] = eq + 1;
        } else if (a + 1 < argc) {
            out->values[i] = argv[++a];
        } else {
            fprintf(stderr, "--%s needs a value\n", flags[i].name);
            return false;
        }
        if (out->nrepeats < CLI_MAX_REPEATS) {
            out->repeat_flag[out->nrepeats] = i;
            out->repeat_value[out->nrepeats] = out->values[i];
        }
        out->nrepeats++;
    }
    return true;
}

const char *cli_get(const struct cli_flag *flags, const struct cli_args *a, const char *name)
{
    int i = flag_index(flags, name, strlen(name));
    return i >= 0 ? a->values[i] : NULL;
}

int cli_get_all(const struct cli_flag *flags, const struct cli_args *a, const char *name,
                const char **out, int max)
{
    int i = flag_index(flags, name, strlen(name)), n = 0;
    if (a->nrepeats > CLI_MAX_REPEATS)
        return -1;
    for (int k = 0; i >= 0 && k < a->nrepeats; k++) {
        if (a->repeat_flag[k] != i)
            continue;
        if (n < max)
            out[n] = a->repeat_value[k];
        n++;
    }
    return n;
}

/* Prints a scalar or compact JSON for anything else. */
static void print_value(const json_t *v)
{
    if (json_is_string(v)) {
        fputs(json_string_value(v), stdout);
    } else if (json_is_array(v) && json_array_size(v) > 0 && json_is_string(json_array_get(v, 0))) {
        size_t i;
        json_t *e;
        json_array_foreach((json_t *)v, i, e)
        {
            if (i > 0)
                fputs(", ", stdout);
            print_value(e);
        }
    } else {
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        fputs(text ? text : "?", stdout);
        free(text);
    }
}

void cli_print_object(const json_t *obj)
{
    size_t width = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (strlen(key) > width)
            width = strlen(key);
    }
    json_object_foreach((json_t *)obj, key, v)
    {
        printf("%-*s  ", (int)width, key);
        print_value(v);
        putchar('\n');
    }
}

void cli_print_error(const struct client_reply *r)
{
    json_t *err = r->json ? json_object_get(r->json, "error") : NULL;
    if (json_is_object(err)) {
        const char *code = json_string_value(json_object_get(err, "code"));
        const char *msg = json_string_value(json_object_get(err, "message"));
        const char *field = json_string_value(json_object_get(err, "field"));
        fprintf(stderr, "error: %s (%ld %s%s%s)\n", msg ? msg : "?", r->status, code ? code : "?",
                field ? ", field " : "", field ? field : "");
    } else {
        fprintf(stderr, "error: HTTP %ld: %s\n", r->status, r->body ? r->body : "");
    }
}

int cli_report(const struct client_reply *r, bool ok, bool json_mode)
{
    if (!ok) {
        fprintf(stderr, "error: %s\n", r->error);
        return 3;
    }
    if (r->status < 200 || r->status > 299) {
        cli_print_error(r);
        return 1;
    }
    if (json_mode) {
        char *text = r->json ? json_dumps(r->json, JSON_INDENT(2)) : NULL;
        puts(text ? text : (r->body ? r->body : ""));
        free(text);
    } else if (json_is_object(r->json)) {
        json_t *items = json_object_get(r->json, "items");
        if (json_is_array(items)) {
            size_t i;
            json_t *e;
            json_array_foreach(items, i, e)
            {
                if (i > 0)
                    putchar('\n');
                cli_print_object(e);
            }
            if (json_array_size(items) == 0)
                puts("(none)");
            const char *next = json_string_value(json_object_get(r->json, "next"));
            if (next != NULL)
                printf("\n(more: --after %s)\n", next);
        } else {
            cli_print_object(r->json);
        }
    } else if (r->body != NULL) {
        fputs(r->body, stdout);
    }
    return 0;
}
