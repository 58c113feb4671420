/*
 * What the command-line tools share beyond HTTP: argument parsing and printing replies.
 *
 * Arguments: each command declares the flags it takes (struct cli_flag); cli_parse checks argv
 * against them and collects positional arguments. Printing: replies print as readable text by
 * default (objects as aligned "key  value" lines, lists as one line per item) and as the raw JSON
 * with --json.
 */
#ifndef CPX_CLIENTS_CLI_H
#define CPX_CLIENTS_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "clients/common/client.h"

#define CLI_MAX_FLAGS   24
#define CLI_MAX_ARGS    8
#define CLI_MAX_REPEATS 32

/* A flag a command takes. */
struct cli_flag {
    const char *name; /* without dashes, e.g. "reg-no" */
    bool takes_value; /* --name VALUE (or --name=VALUE); false: a switch */
    const char *help; /* one line for usage */
};

/* The parsed arguments of a command. */
struct cli_args {
    const char *values[CLI_MAX_FLAGS]; /* value of flags[i], "" for a set switch, NULL if absent */
    const char *args[CLI_MAX_ARGS];    /* positional arguments */
    int nargs;                         /* their count */
    /* Every value given, in order, for flags that may repeat (see cli_get_all). */
    int repeat_flag[CLI_MAX_REPEATS];          /* index into flags */
    const char *repeat_value[CLI_MAX_REPEATS]; /* its value */
    int nrepeats;                              /* values given; may exceed CLI_MAX_REPEATS */
};

/*
 * Parses argv[0..argc) against flags (terminated by a NULL name). Returns false after printing
 * the problem on stderr.
 */
bool cli_parse(int argc, char **argv, const struct cli_flag *flags, struct cli_args *out);

/* The value of flag `name`, or NULL when absent. */
const char *cli_get(const struct cli_flag *flags, const struct cli_args *a, const char *name);

/*
 * Every value of flag `name` in the order given (a flag given twice keeps both here, while
 * cli_get answers the last): stores at most max in out and returns how many there are, or -1
 * when more value flags were given than CLI_MAX_REPEATS (some may be missing).
 */
int cli_get_all(const struct cli_flag *flags, const struct cli_args *a, const char *name,
                const char **out, int max);

/*
 * Reports a reply: on 2xx prints body (JSON with json_mode, else text) and returns 0; otherwise
 * prints the error on stderr and returns 1. No reply at all: prints why and returns 3.
 */
int cli_report(const struct client_reply *r, bool ok, bool json_mode);

/* Prints an object as aligned "key  value" lines (nested values as compact JSON). */
void cli_print_object(const json_t *obj);

/* Prints the error object of a reply, or the reply's text, on stderr. */
void cli_print_error(const struct client_reply *r);

#endif
