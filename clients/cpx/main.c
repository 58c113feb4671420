/*
 * cpx: the command-line client of the CPX exchange, for providers, buyers, regulators and
 * operators. `cpx help` lists the commands. Global options (anywhere on the line):
 *   --url URL      exchange URL          [CPX_URL, default https://127.0.0.1:8443]
 *   --key FILE     key file              [CPX_KEY, default ./cpx.key]
 *   --cacert FILE  CA certificate        [CPX_CACERT, default var/tls/cert.pem when present]
 *   --json         print replies as JSON
 * Exit status: 0 done, 1 the exchange refused (the error is printed), 2 usage, 3 unreachable.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients/common/cli.h"
#include "clients/common/client.h"
#include "clients/common/vkey.h"
#include "clients/cpx/cpx.h"
#include "ledger/checkpoint.h"
#include "ledger/codec.h"
#include "ledger/keyfile.h"
#include "ledger/merkle.h"

struct command {
    const char *words;            /* "admin approve" */
    const char *usage;            /* arguments, for help */
    const char *help;             /* one line */
    const struct cli_flag *flags; /* flags it takes */
    bool needs_key;               /* loads the key file first */
    int (*run)(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a);
};

/* ---- keys ---------------------------------------------------------------------------------- */

static const struct cli_flag keygen_flags[] = {
    { "out", true, "where to write the key (default: --key, CPX_KEY or ./cpx.key)" },
    { "force", false, "replace an existing key file" },
    { NULL, false, NULL },
};

static int cmd_keygen(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    const char *out = cli_get(flags, a, "out");
    if (out == NULL)
        out = c->cl.key_path;
    struct cpx_keyfile kf = { 0 };
    cpx_keypair_generate(&kf.kp);
    cpx_identity_id_for_key(kf.kp.pk, kf.identity);
    bool ok = keyfile_write(out, &kf, cli_get(flags, a, "force") != NULL);
    cpx_keypair_wipe(&kf.kp);
    if (!ok)
        return 1;
    if (c->json) {
        char pk[45];
        cpx_public_key_encode(kf.kp.pk, pk);
        printf("{\"key_file\":\"%s\",\"identity\":\"%s\",\"public_key\":\"%s\"}\n", out,
               kf.identity, pk);
    } else {
        printf("wrote %s (keep it secret: it signs as %s)\n", out, kf.identity);
    }
    return 0;
}

static int cmd_whoami(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    (void)flags;
    (void)a;
    if (c->json) {
        char pk[45];
        cpx_public_key_encode(c->cl.key.kp.pk, pk);
        printf("{\"identity\":\"%s\",\"public_key\":\"%s\"}\n", c->cl.key.identity, pk);
    } else {
        printf("%s\n", c->cl.key.identity);
    }
    return 0;
}

/* ---- identities ---------------------------------------------------------------------------- */

static const struct cli_flag register_flags[] = {
    { "name", true, "organisation name" },
    { "reg-no", true, "registration number (e.g. unified social credit code)" },
    { "roles", true, "comma-separated: buyer, provider, regulator, operator" },
    { "idempotency-key", true, "repeat-safe key for this request" },
    { NULL, false, NULL },
};

bool send_request(struct ctx *c, const char *method, const char *target, json_t *body, bool sign,
                  const char *idempotency_key, struct client_reply *r)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(body);
    char header[200];
    const char *headers[2] = { NULL, NULL };
    if (idempotency_key != NULL) {
        snprintf(header, sizeof header, "Idempotency-Key: %s", idempotency_key);
        headers[0] = header;
    }
    bool ok = client_call(&c->cl, method, target, text, sign, headers, r);
    free(text);
    return ok;
}

int call(struct ctx *c, const char *method, const char *target, json_t *body, bool sign,
         const char *idempotency_key)
{
    struct client_reply r;
    bool ok = send_request(c, method, target, body, sign, idempotency_key, &r);
    int rc = cli_report(&r, ok, c->json);
    client_reply_free(&r);
    return rc;
}

static int cmp_words(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    return strcmp(x ? x : "", y ? y : "");
}

static int cmd_register(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    const char *name = cli_get(flags, a, "name"), *reg_no = cli_get(flags, a, "reg-no");
    const char *roles = cli_get(flags, a, "roles");
    if (name == NULL || reg_no == NULL || roles == NULL) {
        fprintf(stderr, "usage: cpx register --name ORG --reg-no NUMBER --roles buyer,provider\n");
        return 2;
    }
    /* Roles sorted, and the body sent with sorted keys: the canonical form the ledger keeps. */
    char *words[16];
    size_t nwords = 0;
    for (const char *p = roles; *p != '\0' && nwords < 16;) {
        size_t n = strcspn(p, ",");
        words[nwords++] = strndup(p, n);
        p += n + (p[n] == ',');
    }
    qsort(words, nwords, sizeof words[0], cmp_words);
    json_t *list = json_array();
    for (size_t i = 0; i < nwords; i++) {
        json_array_append_new(list, json_string(words[i] ? words[i] : ""));
        free(words[i]);
    }
    char pk[45];
    cpx_public_key_encode(c->cl.key.kp.pk, pk);
    json_t *body = json_pack("{s:s, s:s, s:o, s:s}", "name", name, "reg_no", reg_no, "roles", list,
                             "public_key", pk);
    struct client_reply r;
    bool ok = send_request(c, "POST", "/v1/identities", body, true,
                           cli_get(flags, a, "idempotency-key"), &r);
    int rc;
    if (c->json || !ok || r.status != 201) {
        rc = cli_report(&r, ok, c->json);
    } else {
        /* The id alone on stdout: it is what a person or a script needs next. */
        printf("%s\n", json_string_value(json_object_get(r.json, "id")));
        fflush(stdout);
        fprintf(stderr, "registered; status %s until an operator approves it\n",
                json_string_value(json_object_get(r.json, "status")));
        rc = 0;
    }
    client_reply_free(&r);
    return rc;
}

static const struct cli_flag no_flags[] = { { NULL, false, NULL } };

static int cmd_identity_show(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    (void)flags;
    if (a->nargs > 1) {
        fprintf(stderr, "usage: cpx identity show [ID]\n");
        return 2;
    }
    const char *id = a->nargs == 1 ? a->args[0] : c->cl.key.identity;
    if (!cpx_identity_id_valid(id)) {
        fprintf(stderr, "%s is not an identity id (idn_...)\n", id);
        return 2;
    }
    char target[128];
    snprintf(target, sizeof target, "/v1/identities/%s", id);
    return call(c, "GET", target, NULL, true, NULL);
}

static const struct cli_flag list_flags[] = {
    { "status", true, "pending, approved or rejected" },
    { "limit", true, "items per page (1-1000, default 100)" },
    { "after", true, "continue after this cursor" },
    { NULL, false, NULL },
};

void add_query(char *q, size_t cap, const char *name, const char *value)
{
    if (value == NULL)
        return;
    size_t n = strlen(q);
    snprintf(q + n, cap - n, "%c%s=%s", strchr(q, '?') ? '&' : '?', name, value);
}

static int list_identities(struct ctx *c, const char *status, const struct cli_flag *flags,
                           const struct cli_args *a)
{
    char target[512] = "/v1/identities";
    add_query(target, sizeof target, "status", status);
    add_query(target, sizeof target, "limit", cli_get(flags, a, "limit"));
    add_query(target, sizeof target, "after", cli_get(flags, a, "after"));
    return call(c, "GET", target, NULL, true, NULL);
}

static int cmd_identity_list(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    return list_identities(c, cli_get(flags, a, "status"), flags, a);
}

static int cmd_admin_pending(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    return list_identities(c, "pending", flags, a);
}

static const struct cli_flag approve_flags[] = {
    { "idempotency-key", true, "repeat-safe key for this request" },
    { NULL, false, NULL },
};

static const struct cli_flag reject_flags[] = {
    { "reason", true, "why (required; at most 500 bytes)" },
    { "idempotency-key", true, "repeat-safe key for this request" },
    { NULL, false, NULL },
};

static int decide(struct ctx *c, const char *verb, const struct cli_flag *flags,
                  const struct cli_args *a)
{
    if (a->nargs != 1 || !cpx_identity_id_valid(a->args[0])) {
        fprintf(stderr, "usage: cpx admin %s ID%s\n", verb,
                strcmp(verb, "reject") == 0 ? " --reason TEXT" : "");
        return 2;
    }
    char target[128];
    snprintf(target, sizeof target, "/v1/identities/%s/%s", a->args[0], verb);
    const char *reason = strcmp(verb, "reject") == 0 ? cli_get(flags, a, "reason") : NULL;
    json_t *body = reason ? json_pack("{s:s}", "reason", reason) : json_object();
    return call(c, "POST", target, body, true, cli_get(flags, a, "idempotency-key"));
}

static int cmd_admin_approve(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    return decide(c, "approve", flags, a);
}

static int cmd_admin_reject(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    return decide(c, "reject", flags, a);
}

static int cmd_health(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    (void)flags;
    (void)a;
    return call(c, "GET", "/healthz", NULL, false, NULL);
}

/* ---- key rotation -------------------------------------------------------------------------- */

static const struct cli_flag rotate_flags[] = {
    { "idempotency-key", true, "repeat-safe key for this request" },
    { NULL, false, NULL },
};

/*
 * Replaces the identity's key: a new key is written to KEY.next first, the exchange is asked
 * (signed with the current key) to switch to it, and only once it has answered are the files
 * swapped (the old key kept as KEY.retired). If no answer arrives, KEY.next stays for the user.
 */
static int cmd_key_rotate(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    const char *key = c->cl.key_path;
    char next[CLIENT_PATH_MAX + 16], retired[CLIENT_PATH_MAX + 16];
    snprintf(next, sizeof next, "%s.next", key);
    snprintf(retired, sizeof retired, "%s.retired", key);
    if (access(next, F_OK) == 0) {
        fprintf(stderr,
                "%s exists: an earlier rotation got no answer. If `cpx --key %s identity "
                "show` works, the exchange took it: move %s to %s. If that answers "
                "bad_signature, remove %s and try again.\n",
                next, next, next, key, next);
        return 2;
    }
    struct cpx_keyfile kf = { 0 };
    cpx_keypair_generate(&kf.kp);
    snprintf(kf.identity, sizeof kf.identity, "%s", c->cl.key.identity);
    if (!keyfile_write(next, &kf, false)) {
        cpx_keypair_wipe(&kf.kp);
        return 1;
    }
    char pk[45], target[128];
    cpx_public_key_encode(kf.kp.pk, pk);
    cpx_keypair_wipe(&kf.kp);
    snprintf(target, sizeof target, "/v1/identities/%s/keys", c->cl.key.identity);
    struct client_reply r;
    bool ok = send_request(c, "POST", target, json_pack("{s:s}", "new_public_key", pk), true,
                           cli_get(flags, a, "idempotency-key"), &r);
    int rc = 0;
    if (!ok) {
        rc = cli_report(&r, ok, c->json);
        fprintf(stderr, "the new key is kept in %s until you know whether the rotation happened\n",
                next);
    } else if (r.status >= 500) {
        /* the change may have committed with only its answer lost: keep the new key */
        rc = cli_report(&r, ok, c->json);
        fprintf(stderr, "the new key is kept in %s until you know whether the rotation happened\n",
                next);
    } else if (r.status != 200) {
        unlink(next); /* refused: the old key stays in force */
        rc = cli_report(&r, ok, c->json);
    } else if (rename(key, retired) != 0 || rename(next, key) != 0) {
        fprintf(stderr, "rotated, but could not move %s into place (%s): move it yourself\n", next,
                strerror(errno));
        rc = 1;
    } else if (c->json) {
        rc = cli_report(&r, ok, true);
    } else {
        printf("%s now holds the new key of %s (ledger record %" PRId64 "); the old one is in "
               "%s and no longer signs\n",
               key, c->cl.key.identity,
               (int64_t)json_integer_value(json_object_get(r.json, "ledger_seq")), retired);
    }
    client_reply_free(&r);
    return rc;
}

/* ---- the ledger ---------------------------------------------------------------------------- */

static const struct cli_flag checkpoint_flags[] = {
    { "exchange-key", true, "verifier key file (default: CPX_EXCHANGE_VKEY or var/exchange.vkey)" },
    { NULL, false, NULL },
};

/* GETs a public ledger resource into *r; returns 0, or the exit status after reporting. */
static int get_public(struct ctx *c, const char *target, struct client_reply *r)
{
    bool ok = client_call(&c->cl, "GET", target, NULL, false, NULL, r);
    if (ok && r->status == 200 && r->json != NULL)
        return 0;
    int rc = cli_report(r, ok, c->json);
    client_reply_free(r);
    return rc ? rc : 1;
}

/* Prints an answer as JSON with "verified" added: what this client checked itself. */
static void print_verified(json_t *answer, bool good)
{
    json_object_set_new(answer, "verified", json_boolean(good));
    char *text = json_dumps(answer, JSON_INDENT(2));
    printf("%s\n", text ? text : "{}");
    free(text);
}

/* Opens a checkpoint object's note with v; prints why not and returns false when it fails. */
static bool check_checkpoint(const json_t *cpj, const struct cpx_note_verifier *v,
                             struct cpx_checkpoint *cp)
{
    const char *note = json_string_value(json_object_get(cpj, "note"));
    enum cpx_note_status st =
        note ? cpx_checkpoint_open(note, strlen(note), v, cp) : CPX_NOTE_E_BODY;
    if (st != CPX_NOTE_OK)
        fprintf(stderr, "the checkpoint does not verify with %s: %s\n", v->name,
                cpx_note_status_text(st));
    return st == CPX_NOTE_OK;
}

static int cmd_ledger_checkpoint(struct ctx *c, const struct cli_flag *flags,
                                 const struct cli_args *a)
{
    struct cpx_note_verifier v;
    if (!exchange_key_read("cpx", cli_get(flags, a, "exchange-key"), &v))
        return 2;
    struct client_reply r;
    int rc = get_public(c, "/v1/ledger/checkpoint", &r);
    if (rc != 0)
        return rc;
    struct cpx_checkpoint cp;
    bool good = check_checkpoint(r.json, &v, &cp);
    if (c->json) {
        print_verified(r.json, good);
    } else if (good) {
        printf("size        %" PRIu64 "\n", cp.size);
        char root[CPX_B64_LEN(CPX_HASH_LEN) + 1];
        cpx_b64_encode(cp.root, CPX_HASH_LEN, root);
        printf("root        %s\n", root); /* the signed root, not the convenience copy */
        printf("created_at  %s\n", json_string_value(json_object_get(r.json, "created_at")));
        printf("verified    signed by %s\n", v.name);
    }
    client_reply_free(&r);
    return good ? 0 : 1;
}

static const struct cli_flag receipt_flags[] = {
    { "size", true, "prove against the checkpoint of this size (default: the latest)" },
    { "exchange-key", true, "verifier key file (default: CPX_EXCHANGE_VKEY or var/exchange.vkey)" },
    { NULL, false, NULL },
};

/* Checks a receipt: the checkpoint's signature, then the record's inclusion in its tree. */
static bool check_receipt(const json_t *rj, const struct cpx_note_verifier *v, uint64_t seq,
                          struct cpx_checkpoint *cp)
{
    if (!check_checkpoint(json_object_get(rj, "checkpoint"), v, cp))
        return false;
    const char *rec = json_string_value(json_object_get(rj, "record"));
    char *wire = json_dumps(json_object_get(rj, "inclusion"), JSON_COMPACT | JSON_SORT_KEYS);
    struct cpx_inclusion_proof p;
    const char *bad = rec && wire ? cpx_inclusion_proof_parse(wire, strlen(wire), &p)
                                  : "the receipt has no record or proof";
    free(wire);
    if (bad == NULL && (p.leaf_index != seq || p.tree_size != cp->size))
        bad = "the proof is for another record or tree";
    uint8_t leaf[CPX_HASH_LEN];
    if (bad == NULL) {
        cpx_merkle_leaf_hash(NULL, rec, strlen(rec), leaf);
        if (!cpx_merkle_verify_inclusion(NULL, p.leaf_index, p.tree_size, leaf,
                                         (const uint8_t(*)[CPX_HASH_LEN])p.hashes, p.n, cp->root))
            bad = "the record is not in the checkpoint's tree";
    }
    if (bad != NULL)
        fprintf(stderr, "receipt of record %" PRIu64 " does not verify: %s\n", seq, bad);
    return bad == NULL;
}

static int cmd_ledger_receipt(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a)
{
    uint64_t seq = 0;
    if (a->nargs != 1 || !cpx_decimal_parse(a->args[0], &seq)) {
        fprintf(stderr, "usage: cpx ledger receipt SEQ [--size N] [--exchange-key FILE]\n");
        return 2;
    }
    struct cpx_note_verifier v;
    if (!exchange_key_read("cpx", cli_get(flags, a, "exchange-key"), &v))
        return 2;
    char target[128];
    snprintf(target, sizeof target, "/v1/ledger/records/%" PRIu64, seq);
    const char *size = cli_get(flags, a, "size");
    if (size != NULL && strspn(size, "0123456789") == strlen(size) && strlen(size) < 21)
        snprintf(target + strlen(target), sizeof target - strlen(target), "?size=%s", size);
    else if (size != NULL) {
        fprintf(stderr, "--size must be a tree size\n");
        return 2;
    }
    struct client_reply r;
    int rc = get_public(c, target, &r);
    if (rc != 0)
        return rc;
    struct cpx_checkpoint cp;
    bool good = check_receipt(r.json, &v, seq, &cp);
    if (c->json) {
        print_verified(r.json, good);
    } else if (good) {
        printf("%s\n", json_string_value(json_object_get(r.json, "record")));
        printf("record %" PRIu64 " is in the ledger of %" PRIu64
               " records whose checkpoint %s signed\n",
               seq, cp.size, v.name);
    }
    client_reply_free(&r);
    return good ? 0 : 1;
}

/* ---- the command table --------------------------------------------------------------------- */

static const struct command commands[] = {
    { "keygen", "[--out FILE] [--force]", "make a new Ed25519 key file (mode 0600)", keygen_flags,
      false, cmd_keygen },
    { "whoami", "", "print the identity id the key signs as", no_flags, true, cmd_whoami },
    { "register", "--name ORG --reg-no NUMBER --roles buyer,provider",
      "register the key's owner; prints its identity id", register_flags, true, cmd_register },
    { "identity show", "[ID]", "show an identity (default: your own)", no_flags, true,
      cmd_identity_show },
    { "identity list", "[--status S] [--limit N] [--after CURSOR]",
      "list identities (operators, regulators)", list_flags, true, cmd_identity_list },
    { "admin pending", "[--limit N] [--after CURSOR]", "list identities awaiting approval",
      list_flags, true, cmd_admin_pending },
    { "admin approve", "ID", "approve a pending identity (operators)", approve_flags, true,
      cmd_admin_approve },
    { "admin reject", "ID --reason TEXT", "reject a pending identity (operators)", reject_flags,
      true, cmd_admin_reject },
    { "key rotate", "", "replace your key: the exchange switches to a new one you hold",
      rotate_flags, true, cmd_key_rotate },
    { "ledger checkpoint", "[--exchange-key FILE]",
      "show the ledger's latest checkpoint, verified with the exchange's key", checkpoint_flags,
      false, cmd_ledger_checkpoint },
    { "ledger receipt", "SEQ [--size N] [--exchange-key FILE]",
      "fetch and verify a record's receipt (inclusion in a signed checkpoint)", receipt_flags,
      false, cmd_ledger_receipt },
    { "health", "", "check that the exchange and its database answer", no_flags, false,
      cmd_health },
    { "list-capacity",
      "--vendor V --model M --type gpu|npu|dcu|fpga|asic --devices N "
      "--precision P:TFLOPS:PRICE [--precision ...] --memory-gb N --region R --endpoint URL "
      "[--interconnect I] [--from TIME] [--until TIME] [--min-hours N] [--max-hours N] "
      "[--green-permille N] [--expires TIME]",
      "offer devices for rent (providers); prints the listing id", list_capacity_flags, true,
      cmd_list_capacity },
    { "delist", "LISTING_ID", "take a listing off the book (providers)", no_flags, true,
      cmd_delist },
    { "listings", "[LISTING_ID] [--status open|closed] [--limit N] [--after CURSOR]",
      "show one of your listings, or list them (providers)", mine_flags, true, cmd_listings },
    { "order",
      "[--client-order-id ID] --precision P (--devices N | --tflops N) --hours N "
      "--regions R1,R2 --limit PRICE [--tif gtc|gtd|ioc|fok] [--expires TIME] "
      "[--start-earliest TIME] [--start-latest TIME] [--min-memory-gb N] [--min-tflops N] "
      "[--max-tflops N] [--gang N] [--min-green-permille N] [--models V/M,V] [--job FILE]",
      "buy compute at PRICE CNY per PFLOPS-hour or less (buyers); prints the order id", order_flags,
      true, cmd_order },
    { "cancel", "ORDER_ID", "cancel what is left of an order (buyers)", no_flags, true,
      cmd_cancel },
    { "orders", "[ORDER_ID] [--status open|closed] [--limit N] [--after CURSOR]",
      "show one of your orders, or list them (buyers)", mine_flags, true, cmd_orders },
    { "agreements", "[AGREEMENT_ID] [--limit N] [--after CURSOR]",
      "show one of your agreements, or list them", page_flags, true, cmd_agreements },
    { "deposit", "IDENTITY_ID AMOUNT [--idempotency-key K]",
      "pay AMOUNT CNY into an identity's account (operators)", deposit_flags, true, cmd_deposit },
    { "balance", "[IDENTITY_ID]", "show an account: available, held, escrow (default: your own)",
      no_flags, true, cmd_balance },
    { "regions", "", "list the regions capacity is offered in", no_flags, false, cmd_regions },
    { "markets", "[--all]", "best bid, ask, last price and 24 h volume of each market",
      markets_flags, false, cmd_markets },
    { "book", "PRECISION REGION [--depth N]", "the order book of one market", book_flags, false,
      cmd_book },
    { "trades", "[--precision P] [--region R] [--limit N] [--after CURSOR]",
      "recent agreements, without their parties", trades_flags, false, cmd_trades },
    { "index", "PRECISION [--hours H]", "volume-weighted price over the last H hours", index_flags,
      false, cmd_index },
    { "deliveries", "AGREEMENT_ID", "an agreement's delivery: its state and every attempt",
      no_flags, true, cmd_deliveries },
    { "usage", "AGREEMENT_ID --from TIME --to TIME --device-seconds N [--final]",
      "report an agreement's metered usage (its provider); the exchange bills it", usage_flags,
      true, cmd_usage },
    { "bills",
      "[--agreement AGREEMENT_ID] [--status open|disputed|settled|refunded] [--limit N] "
      "[--after CURSOR]",
      "list your bills, as buyer or provider", bills_flags, true, cmd_bills },
    { "bill", "BILL_ID", "show one bill", no_flags, true, cmd_bill },
    { "dispute", "BILL_ID --reason TEXT", "dispute a bill while its window is open (buyers)",
      dispute_flags, true, cmd_dispute },
    { "resolve", "BILL_ID --outcome pay|refund [--note TEXT]",
      "settle or refund a disputed bill (operators)", resolve_flags, true, cmd_resolve },
    { "statement", "[--from TIME] [--to TIME] [--csv]",
      "your account's entries in a period, with opening and closing balances", statement_flags,
      true, cmd_statement },
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* Prints "words usage", wrapped at 98 columns with continuation lines indented by `indent`. */
static size_t print_usage_line(FILE *out, const struct command *cmd, size_t indent)
{
    char text[1024];
    snprintf(text, sizeof text, "%s %s", cmd->words, cmd->usage);
    size_t col = indent;
    bool wrapped = false;
    for (const char *p = text; *p != '\0';) {
        /* a word, a flag with its value, or a [...] or (...) group: never broken */
        size_t n = 0;
        for (int depth = 0, words = 0; p[n] != '\0'; n++) {
            depth += (p[n] == '[' || p[n] == '(') - (p[n] == ']' || p[n] == ')');
            if (depth == 0 && p[n] == ' ' &&
                (++words > 1 || p[0] != '-' || strchr("-[(", p[n + 1]) != NULL))
                break;
        }
        if (col > indent && col + 1 + n > 98) {
            fprintf(out, "\n%*s", (int)indent + 2, "");
            col = indent + 2;
            wrapped = true;
        } else if (p != text) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", (int)n, p);
        col += n;
        p += n;
        p += strspn(p, " ");
    }
    return wrapped || col - indent > 58 ? 99 : col - indent; /* its width, 99: too wide */
}

static void usage(FILE *out)
{
    fprintf(out, "usage: cpx [--url URL] [--key FILE] [--cacert FILE] [--json] COMMAND ...\n\n"
                 "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        fprintf(out, "  ");
        size_t used = print_usage_line(out, &commands[i], 2);
        if (used <= 58)
            fprintf(out, "%*s %s\n", (int)(58 - used), "", commands[i].help);
        else
            fprintf(out, "\n%*s %s\n", 60, "", commands[i].help);
    }
    fprintf(out, "\n`cpx help COMMAND` describes a command's options.\n"
                 "environment: CPX_URL, CPX_KEY, CPX_CACERT (see README.md)\n");
}

/* `cpx help COMMAND`: its usage, what it does, and every option. */
static void usage_of(FILE *out, const struct command *cmd)
{
    fprintf(out, "usage: cpx ");
    print_usage_line(out, cmd, 11);
    fprintf(out, "\n\n%s\n", cmd->help);
    if (cmd->flags[0].name != NULL)
        fprintf(out, "\noptions:\n");
    for (size_t i = 0; cmd->flags[i].name != NULL; i++) {
        char name[64];
        snprintf(name, sizeof name, "--%s%s", cmd->flags[i].name,
                 cmd->flags[i].takes_value ? " VALUE" : "");
        fprintf(out, "  %-26s %s\n", name, cmd->flags[i].help);
    }
}

/* How many leading words of argv spell the command's words? 0 when they do not. */
static int matches(const struct command *cmd, int argc, char **argv)
{
    const char *w = cmd->words;
    int used = 0;
    while (*w != '\0') {
        size_t n = strcspn(w, " ");
        if (used >= argc || strlen(argv[used]) != n || strncmp(argv[used], w, n) != 0)
            return 0;
        used++;
        w += n + (w[n] == ' ');
    }
    return used;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *key = NULL, *cacert = NULL;
    bool json = false;
    /* Take the global options out, wherever they are. */
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char **dst = strcmp(arg, "--url") == 0      ? &url
                           : strcmp(arg, "--key") == 0    ? &key
                           : strcmp(arg, "--cacert") == 0 ? &cacert
                                                          : NULL;
        if (dst != NULL) {
            if (i + 1 == argc) {
                fprintf(stderr, "%s needs a value\n", arg);
                return 2;
            }
            *dst = argv[++i];
        } else if (strcmp(arg, "--json") == 0) {
            json = true;
        } else {
            argv[n++] = argv[i];
        }
    }
    bool help = n > 0 && (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "--help") == 0);
    const struct command *cmd = NULL;
    int used = 0;
    for (size_t i = 0; i < NCOMMANDS && cmd == NULL; i++)
        if ((used = matches(&commands[i], n - help, argv + help)) > 0)
            cmd = &commands[i];
    if (help && cmd != NULL) {
        usage_of(stdout, cmd);
        return 0;
    }
    if (n == 0 || help) {
        usage(n == 0 ? stderr : stdout);
        return n == 0 ? 2 : 0;
    }
    if (cmd == NULL) {
        fprintf(stderr, "unknown command \"%s\" (cpx help lists them)\n", argv[0]);
        return 2;
    }
    struct cli_args args;
    if (!cli_parse(n - used, argv + used, cmd->flags, &args)) {
        fprintf(stderr, "usage: cpx %s %s\n", cmd->words, cmd->usage);
        return 2;
    }
    if (cpx_crypto_init() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "cannot initialise the crypto or HTTP libraries\n");
        return 1;
    }
    struct ctx c = { .json = json };
    int rc = 2;
    if (client_init(&c.cl, url, cacert, key) && (!cmd->needs_key || client_load_key(&c.cl)))
        rc = cmd->run(&c, cmd->flags, &args);
    client_free(&c.cl);
    curl_global_cleanup();
    return rc;
}
