/*
 * Many clients at once against one cpxd: registrations, reads and approvals from parallel
 * threads all succeed and leave exactly the expected rows; garbage on the TLS port and
 * connections cut mid-request do not disturb it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/live_ledger.h"
#include "tests/support/testenv.h"

#define THREADS    8
#define PER_THREAD 6
#define READS      5

static struct test_server srv;

static int setup(void **state)
{
    (void)state;
    test_server_start(&srv, NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(test_server_stop(&srv), 0);
    return 0;
}

struct worker {
    int index;                        /* thread number */
    int failures;                     /* requests that did not answer as expected */
    char ids[PER_THREAD][CPX_ID_MAX]; /* identities it registered */
};

/* Registers PER_THREAD identities with fresh keys and reads each back READS times. Assertions
 * are not thread-safe in cmocka, so failures are counted and checked by the main thread. */
static void *work(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        struct client cl;
        char cacert[512];
        snprintf(cacert, sizeof cacert, "%s/tls/cert.pem", getenv("CPX_TEST_VAR"));
        if (!client_init(&cl, srv.url, cacert, "/nonexistent")) {
            w->failures++;
            continue;
        }
        cpx_keypair_generate(&cl.key.kp);
        cpx_identity_id_for_key(cl.key.kp.pk, cl.key.identity);
        cl.have_key = true;
        char pk[45], body[512], target[128];
        cpx_public_key_encode(cl.key.kp.pk, pk);
        snprintf(body, sizeof body,
                 "{\"name\":\"org "
                 "%d-%d\",\"public_key\":\"%s\",\"reg_no\":\"C-%d-%d\",\"roles\":[\"buyer\"]}",
                 w->index, i, pk, w->index, i);
        struct client_reply r;
        if (!client_call(&cl, "POST", "/v1/identities", body, true, NULL, &r) || r.status != 201)
            w->failures++;
        client_reply_free(&r);
        snprintf(w->ids[i], CPX_ID_MAX, "%s", cl.key.identity);
        snprintf(target, sizeof target, "/v1/identities/%s", cl.key.identity);
        for (int k = 0; k < READS; k++) {
            if (!client_call(&cl, "GET", target, NULL, true, NULL, &r) || r.status != 200)
                w->failures++;
            client_reply_free(&r);
        }
        client_free(&cl);
    }
    return NULL;
}

struct approver {
    struct worker *workers; /* whose identities to approve */
    int from, to;           /* the range of workers this approver covers */
    int failures;
};

static void *approve(void *arg)
{
    struct approver *a = arg;
    struct client op;
    char cacert[512];
    snprintf(cacert, sizeof cacert, "%s/tls/cert.pem", getenv("CPX_TEST_VAR"));
    if (!client_init(&op, srv.url, cacert, srv.operator_key) || !client_load_key(&op)) {
        a->failures++;
        return NULL;
    }
    for (int w = a->from; w < a->to; w++)
        for (int i = 0; i < PER_THREAD; i++) {
            char target[128];
            snprintf(target, sizeof target, "/v1/identities/%s/approve", a->workers[w].ids[i]);
            struct client_reply r;
            if (!client_call(&op, "POST", target, "{}", true, NULL, &r) || r.status != 200)
                a->failures++;
            client_reply_free(&r);
        }
    client_free(&op);
    return NULL;
}

static void parallel_clients(void **state)
{
    (void)state;
    struct worker workers[THREADS];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&workers[t], 0, sizeof workers[t]);
        workers[t].index = t;
        pthread_create(&threads[t], NULL, work, &workers[t]);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(workers[t].failures, 0);
    }
    /* Two operators' sessions approve in parallel. */
    struct approver a = { workers, 0, THREADS / 2, 0 }, b = { workers, THREADS / 2, THREADS, 0 };
    pthread_create(&threads[0], NULL, approve, &a);
    pthread_create(&threads[1], NULL, approve, &b);
    pthread_join(threads[0], NULL);
    pthread_join(threads[1], NULL);
    assert_int_equal(a.failures + b.failures, 0);
    assert_int_equal(test_db_scalar(srv.db_url, "SELECT count(*) FROM identities WHERE status = "
                                                "'approved' AND name LIKE 'org %'"),
                     THREADS * PER_THREAD);
    /* Every one of those concurrent changes appended its record: one gap-free ledger whose
     * every checkpoint matches, with a record per identity and per approval. */
    struct client anon;
    test_client(&srv, &anon, NULL);
    /* the operator's two, then these */
    assert_int_equal(live_audit_clean(&anon, srv.verifier_key), 2 + 2 * THREADS * PER_THREAD);
    assert_int_equal(test_db_scalar(srv.db_url, "SELECT count(*) FROM ledger_checkpoints"),
                     1 + 2 * THREADS * PER_THREAD); /* one per transaction */
    client_free(&anon);
}

/* Opens a TCP connection to the server's port. */
static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(srv.port) };
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return fd;
}

/* Sends 100 bytes of a body declared as 10000, then aborts the transfer. */
static size_t half_body(char *buf, size_t size, size_t n, void *arg)
{
    int *sent = arg;
    if (*sent > 0)
        return CURL_READFUNC_ABORT;
    size_t len = size * n < 100 ? size * n : 100;
    memset(buf, '{', len);
    *sent += (int)len;
    return len;
}

static void cut_upload(void)
{
    CURL *c = curl_easy_init();
    char url[128], cacert[512];
    snprintf(url, sizeof url, "%s/v1/identities", srv.url);
    snprintf(cacert, sizeof cacert, "%s/tls/cert.pem", getenv("CPX_TEST_VAR"));
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    int sent = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, cacert);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 10000L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, half_body);
    curl_easy_setopt(c, CURLOPT_READDATA, &sent);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    assert_int_not_equal(curl_easy_perform(c), CURLE_OK);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static void garbage_and_cut_connections(void **state)
{
    (void)state;
    /* Plain HTTP and random bytes on the TLS port; a connection opened and dropped at once. */
    static const char *const junk[] = {
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "\x16\x03\x01\x00\x05hello",
        "\x00\x01\x02\x03\xff\xfe\xfd",
        "",
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        int fd = dial();
        ssize_t n = write(fd, junk[i], strlen(junk[i]));
        (void)n;
        close(fd);
    }
    /* Requests whose client gives up in the middle of the body, over TLS. */
    for (int i = 0; i < 4; i++)
        cut_upload();
    struct raw_reply r;
    raw_call(&srv, "GET", "/healthz", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    raw_reply_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parallel_clients),
        cmocka_unit_test(garbage_and_cut_connections),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], setup, teardown);
}
