/*
 * A provider's job endpoint for tests (docs/delivery.md §2), in the test process: an HTTPS server
 * (libmicrohttpd) at https://127.0.0.1:PORT/cpx/jobs with the test certificate
 * ($CPX_TEST_VAR/tls/cert.pem and key.pem, the ones cpxd uses in tests), so a cpxd started with
 * `--delivery-ca $CPX_TEST_VAR/tls/cert.pem` trusts it.
 *
 * It plays an honest provider whose behaviour the test sets at any time (fake_provider_mode):
 * every envelope's `Authorization: CPX-Ed25519 id=exchange,...` is checked against the exchange's
 * verifier key, its body against docs/delivery.md §2 (a delivery id, the agreement, the job whose
 * description hashes to its sha256), and the agreement's provider against its own identity; then
 * it answers as the mode says. It keeps, per delivery id, the valid envelopes received, the last
 * one's body and whether it started the job; envelopes it refused are only counted.
 *
 * Starting a job is what a real provider must do once per delivery id: a delivery id seen again
 * starts nothing. So fake_provider_runs is 0 or 1 by construction, and what a test checks about
 * the exchange is fake_provider_agreement_runs: the jobs started for one agreement, which is 1
 * unless the exchange sent the same agreement under two delivery ids.
 *
 * Thread-safe: libmicrohttpd's threads answer while the test thread reads and changes it.
 * Setup errors fail the test (cmocka); nothing on the server's threads ever does.
 */
#ifndef CPX_TESTS_FAKE_PROVIDER_H
#define CPX_TESTS_FAKE_PROVIDER_H

#include <jansson.h>

/* How the endpoint answers a valid envelope. */
enum fake_mode {
    FAKE_ACCEPT,          /* starts the job; 200, the signed acceptance */
    FAKE_STATUS_500,      /* 500, starts nothing */
    FAKE_BAD_SIGNATURE,   /* starts the job; 200, the acceptance signed with another key */
    FAKE_SLOW,            /* starts the job, sleeps slow_ms, then answers as FAKE_ACCEPT */
    FAKE_WRONG_AGREEMENT, /* starts the job; 200, a validly signed acceptance of another agreement
                           */
    FAKE_DROP,            /* starts the job, then closes the connection without answering */
    FAKE_DOWN,            /* not listening: connections are refused */
};

struct fake_provider;

/*
 * Starts listening on a free port of 127.0.0.1 in FAKE_ACCEPT mode. provider_key_path is the
 * provider's key file (its acceptances are signed with it, as its identity); exchange_vkey_path
 * holds the exchange's verifier key (test_server's verifier_key). Fails the test on error.
 */
struct fake_provider *fake_provider_start(const char *provider_key_path,
                                          const char *exchange_vkey_path);

/* The endpoint URL to list: "https://127.0.0.1:PORT/cpx/jobs" (the port stays across DOWN). */
const char *fake_provider_url(const struct fake_provider *fp);

/* Sets the mode; slow_ms is FAKE_SLOW's delay (ignored otherwise). Entering FAKE_DOWN stops
 * listening (an envelope being answered slowly is dropped); leaving it listens again on the
 * same port. A request already being answered keeps the mode it arrived in. */
void fake_provider_mode(struct fake_provider *fp, enum fake_mode m, int slow_ms);

/* Valid envelopes received for a delivery id ("dlv_..."), whatever the answer. */
int fake_provider_envelopes(const struct fake_provider *fp, const char *delivery);

/* Jobs started for a delivery id: 0 or 1. */
int fake_provider_runs(const struct fake_provider *fp, const char *delivery);

/* Jobs started for an agreement ("agr_..."): the distinct delivery ids that started one. */
int fake_provider_agreement_runs(const struct fake_provider *fp, const char *agreement);

/* Valid envelopes received in all. */
int fake_provider_total_envelopes(const struct fake_provider *fp);

/* Envelopes refused: no or a bad exchange signature, a malformed body, a job that does not hash
 * to its sha256. */
int fake_provider_bad_envelopes(const struct fake_provider *fp);

/* Validly signed envelopes of an agreement whose provider is another identity (refused, 409). */
int fake_provider_misdirected(const struct fake_provider *fp);

/* The body of the last valid envelope of a delivery id (a copy: json_decref it), or NULL. */
json_t *fake_provider_last_envelope(const struct fake_provider *fp, const char *delivery);

/* Stops listening and frees everything; fp may be NULL. */
void fake_provider_stop(struct fake_provider *fp);

#endif
