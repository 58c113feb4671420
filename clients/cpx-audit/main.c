/*
 * cpx-audit: the regulator's independent audit of the CPX ledger (docs/audit.md).
 *
 *   cpx-audit verify (--url URL | --file EXPORT) --exchange-key FILE [--state FILE]
 *                    [--report FILE] [--cacert FILE] [--threads N] [--quiet]
 *
 * It needs nothing from the exchange but its public ledger and its verifier key: it rebuilds the
 * Merkle tree and the key table from the records, checks every checkpoint and every party
 * signature (ledger/audit.h, docs/ledger.md section 6), re-derives every bill, commission and
 * balance of the market (ledger/books.h) and, from a URL, compares the exchange's own books with
 * them, and writes a JSON report.
 * Exit status: 0 everything holds, 1 the audit found failures, 2 usage (bad flags, unreadable
 * exchange key or state), 3 the exchange or a file could not be read.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients/common/cli.h"
#include "clients/common/vkey.h"
#include "clients/cpx-audit/run.h"
#include "clients/cpx-audit/source.h"

#define THREADS_MAX 256 /* most signature threads accepted */

struct command {
    const char *name;             /* "verify" */
    const char *usage;            /* its arguments, for help */
    const char *help;             /* one line */
    const struct cli_flag *flags; /* flags it takes */
    int (*run)(const struct cli_flag *flags, const struct cli_args *a);
};

/* ---- verify -------------------------------------------------------------------------------- */

static const struct cli_flag verify_flags[] = {
    { "url", true, "the exchange [CPX_URL, default https://127.0.0.1:8443]" },
    { "file", true, "an export file (GET /v1/ledger/export) instead; - reads standard input" },
    { "exchange-key", true,
      "the exchange's verifier key file (name+keyid+base64) [CPX_EXCHANGE_VKEY]" },
    { "state", true, "saved state: check only what is new since the last clean run" },
    { "report", true, "write the JSON report there (default: standard output)" },
    { "cacert", true, "CA certificate [CPX_CACERT, default var/tls/cert.pem when present]" },
    { "threads", true, "threads verifying signatures (default: the online CPUs)" },
    { "quiet", false, "no progress bar on a terminal" },
    { "help", false, "print this help" },
    { NULL, false, NULL },
};

static const char verify_usage[] = "(--url URL | --file EXPORT) --exchange-key FILE [--state FILE] "
                                   "[--report FILE] [--cacert FILE] [--threads N] [--quiet]";

/* What a flag's value is, for help: "URL", "FILE", ... */
static const char *metavar(const char *flag)
{
    static const struct {
        const char *flag, *name;
    } names[] = { { "url", "URL" }, { "file", "EXPORT" }, { "threads", "N" } };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i].flag, flag) == 0)
            return names[i].name;
    return "FILE";
}

static void verify_help(FILE *out)
{
    fprintf(out, "usage: cpx-audit verify %s\n\n", verify_usage);
    fprintf(out, "Checks the exchange's ledger: every record, checkpoint and party signature;\n"
                 "re-derives every bill, commission and balance from the records and, from a\n"
                 "URL, compares the exchange's own books with them.\n\n");
    for (const struct cli_flag *f = verify_flags; f->name != NULL; f++) {
        char name[64];
        snprintf(name, sizeof name, "--%s%s%s", f->name, f->takes_value ? " " : "",
                 f->takes_value ? metavar(f->name) : "");
        fprintf(out, "  %-22s %s\n", name, f->help);
    }
    fprintf(out, "\nexit status: 0 everything holds, 1 the audit found failures, 2 usage,\n"
                 "3 the exchange or a file could not be read. See docs/audit.md.\n");
}

/* Parses --threads (default: the online CPUs). Returns false when it is not 1..THREADS_MAX. */
static bool parse_threads(const char *s, unsigned *out)
{
    if (s == NULL) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        *out = cpus < 1 ? 1 : cpus > THREADS_MAX ? THREADS_MAX : (unsigned)cpus;
        return true;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > THREADS_MAX) {
        fprintf(stderr, "cpx-audit: --threads must be a number from 1 to %d\n", THREADS_MAX);
        return false;
    }
    *out = (unsigned)v;
    return true;
}

/* Fills opt from the flags. Returns false after saying what is wrong. */
static bool verify_options(const struct cli_flag *flags, const struct cli_args *a,
                           struct run_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->url = cli_get(flags, a, "url");
    opt->file = cli_get(flags, a, "file");
    opt->key_file = cli_get(flags, a, "exchange-key");
    if (opt->key_file == NULL || *opt->key_file == '\0')
        opt->key_file = getenv("CPX_EXCHANGE_VKEY"); /* no default: the one thing it trusts */
    opt->state_file = cli_get(flags, a, "state");
    opt->report_file = cli_get(flags, a, "report");
    opt->cacert = cli_get(flags, a, "cacert");
    opt->quiet = cli_get(flags, a, "quiet") != NULL;
    const char *problem = NULL;
    if (a->nargs > 0)
        problem = "unexpected argument";
    else if (opt->url != NULL && opt->file != NULL)
        problem = "give --url or --file, not both";
    else if (opt->key_file == NULL || *opt->key_file == '\0')
        problem = "--exchange-key FILE is required";
    else if (opt->file != NULL && *opt->file == '\0')
        problem = "--file needs a file name";
    if (problem != NULL) {
        fprintf(stderr, "cpx-audit: %s\nusage: cpx-audit verify %s\n", problem, verify_usage);
        return false;
    }
    return parse_threads(cli_get(flags, a, "threads"), &opt->threads);
}

/*
 * Prints how a finished run went when the report went to a file: one line for the ledger, one for
 * the money.
 */
static void summary(const struct run *r)
{
    const char *first = run_first_failure(r);
    uint64_t failures = run_failure_total(r);
    if (r->stopped)
        return; /* the reason is on stderr already */
    if (failures == 0)
        printf("ok: %llu records checked, %llu in the log\n",
               (unsigned long long)(cpx_audit_records(r->audit) - r->from_size),
               (unsigned long long)cpx_audit_records(r->audit));
    else
        printf("FAILED: %llu failures%s%s (see %s)\n", (unsigned long long)failures,
               first ? ", the first: " : "", first ? first : "", r->opt->report_file);
    struct cpx_books_counts c;
    cpx_books_counts(r->books, &c);
    uint64_t differences = cpx_books_failure_total(r->books);
    printf("books: %llu bills, %llu commissions, %llu accounts re-derived%s; %llu difference%s; "
           "the exchange's books: %s\n",
           (unsigned long long)c.bills, (unsigned long long)c.commissions,
           (unsigned long long)c.accounts,
           cpx_books_partial(r->books) ? " (from this run's records only)" : "",
           (unsigned long long)differences, differences == 1 ? "" : "s", r->books_exchange);
}

/* The exit status of a finished run. */
static int run_status(const struct run *r)
{
    if (r->stopped)
        return r->stop_status;
    return run_holds(r) ? EXIT_HOLDS : EXIT_FAILURES;
}

static int cmd_verify(const struct cli_flag *flags, const struct cli_args *a)
{
    if (cli_get(flags, a, "help") != NULL) {
        verify_help(stdout);
        return EXIT_HOLDS;
    }
    struct run_options opt;
    struct cpx_note_verifier exchange;
    if (!verify_options(flags, a, &opt) || !exchange_key_read("cpx-audit", opt.key_file, &exchange))
        return EXIT_USAGE;
    struct run r;
    int status = EXIT_UNREACHABLE;
    if (!run_init(&r, &opt, &exchange))
        goto cleanup;
    status = state_load(&r);
    if (status != EXIT_HOLDS)
        goto cleanup;
    if (opt.file != NULL)
        source_file(&r);
    else
        source_url(&r);
    run_finish(&r);
    if (r.stopped)
        fprintf(stderr, "cpx-audit: %s\n", r.error);
    if (run_holds(&r) && opt.state_file != NULL && !state_save(&r))
        run_stop(&r, "the state could not be saved");
    status = run_status(&r);
    if (!report_write(&r))
        status = EXIT_UNREACHABLE;
    else if (opt.report_file != NULL && !opt.quiet)
        summary(&r);
cleanup:
    run_free(&r);
    return status;
}

/* ---- the command table --------------------------------------------------------------------- */

static const struct command commands[] = {
    { "verify", verify_usage, "check the ledger and write a JSON report", verify_flags,
      cmd_verify },
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: cpx-audit COMMAND ...\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-8s %s\n           cpx-audit %s %s\n", commands[i].name, commands[i].help,
                commands[i].name, commands[i].usage);
    fprintf(out,
            "\n`cpx-audit verify --help` lists the flags; docs/audit.md says what is checked.\n"
            "environment: CPX_URL, CPX_CACERT (as for cpx), CPX_EXCHANGE_VKEY\n");
}

static bool is_help(const char *arg)
{
    return strcmp(arg, "help") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_HOLDS;
    }
    const struct command *cmd = NULL;
    for (size_t i = 0; i < NCOMMANDS && cmd == NULL; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            cmd = &commands[i];
    if (cmd == NULL) {
        fprintf(stderr, "cpx-audit: unknown command \"%s\" (cpx-audit --help lists them)\n",
                argv[1]);
        return EXIT_USAGE;
    }
    struct cli_args args;
    if (!cli_parse(argc - 2, argv + 2, cmd->flags, &args)) {
        fprintf(stderr, "usage: cpx-audit %s %s\n", cmd->name, cmd->usage);
        return EXIT_USAGE;
    }
    if (cpx_crypto_init() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "cpx-audit: cannot initialise the crypto or HTTP libraries\n");
        return EXIT_UNREACHABLE;
    }
    int status = cmd->run(cmd->flags, &args);
    curl_global_cleanup();
    return status;
}
