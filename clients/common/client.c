/*
 * The shared HTTPS client: see client.h. One libcurl easy handle per client, reused for every
 * call so the TLS connection is kept alive between requests.
 */
#include "clients/common/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BODY_MAX (64u << 20) /* replies larger than this are refused */

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : fallback;
}

bool client_init(struct client *cl, const char *url, const char *cacert, const char *key_path)
{
    memset(cl, 0, sizeof *cl);
    if (url == NULL)
        url = getenv("CPX_URL");
    if (url == NULL || *url == '\0')
        snprintf(cl->url, sizeof cl->url, "https://127.0.0.1:%s", env_or("CPX_PORT", "8443"));
    else
        snprintf(cl->url, sizeof cl->url, "%s", url);
    size_t n = strlen(cl->url);
    while (n > 0 && cl->url[n - 1] == '/')
        cl->url[--n] = '\0';
    if (cacert == NULL)
        cacert = getenv("CPX_CACERT");
    if (cacert == NULL || *cacert == '\0') {
        char path[CLIENT_PATH_MAX];
        snprintf(path, sizeof path, "%s/tls/cert.pem", env_or("CPX_VAR", "var"));
        if (access(path, R_OK) == 0)
            snprintf(cl->cacert, sizeof cl->cacert, "%s", path);
    } else {
        snprintf(cl->cacert, sizeof cl->cacert, "%s", cacert);
    }
    snprintf(cl->key_path, sizeof cl->key_path, "%s",
             key_path ? key_path : env_or("CPX_KEY", "cpx.key"));
    cl->curl = curl_easy_init();
    if (cl->curl == NULL) {
        fprintf(stderr, "cannot initialise libcurl\n");
        return false;
    }
    return true;
}

void client_free(struct client *cl)
{
    if (cl->curl != NULL)
        curl_easy_cleanup(cl->curl);
    cl->curl = NULL;
    cpx_keypair_wipe(&cl->key.kp);
}

bool client_load_key(struct client *cl)
{
    cl->have_key = keyfile_read(cl->key_path, &cl->key);
    return cl->have_key;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct client_reply *r = arg;
    size_t len = size * n;
    if (r->body_len + len > BODY_MAX)
        return 0;
    char *bigger = realloc(r->body, r->body_len + len + 1);
    if (bigger == NULL)
        return 0;
    r->body = bigger;
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return len;
}

/* The timestamp to sign a request with: now, or later than any identical recent request. */
static int64_t pick_ts(struct client *cl, const char *method, const char *target, const char *body,
                       size_t body_len)
{
    uint8_t digest[32];
    size_t n = strlen(method) + strlen(target) + 2;
    char *head = malloc(n);
    if (head == NULL)
        return (int64_t)time(NULL);
    snprintf(head, n, "%s\n%s", method, target);
    cpx_sha256_2(head, n, body ? body : "", body_len, digest);
    free(head);
    int64_t ts = (int64_t)time(NULL);
    size_t slots = sizeof cl->recent / sizeof cl->recent[0];
    for (size_t i = 0; i < slots; i++)
        if (memcmp(cl->recent[i].digest, digest, 32) == 0 && cl->recent[i].ts >= ts)
            ts = cl->recent[i].ts + 1;
    memcpy(cl->recent[cl->recent_next].digest, digest, 32);
    cl->recent[cl->recent_next].ts = ts;
    cl->recent_next = (cl->recent_next + 1) % slots;
    return ts;
}

/* One attempt of client_call, signed with timestamp ts when sign. */
static bool call_once(struct client *cl, const char *method, const char *target, const char *body,
                      bool sign, int64_t ts, const char *const *extra_headers,
                      struct client_reply *reply)
{
    memset(reply, 0, sizeof *reply);
    CURL *c = cl->curl;
    size_t body_len = body ? strlen(body) : 0;
    char url[sizeof cl->url + CLIENT_PATH_MAX];
    snprintf(url, sizeof url, "%s%s", cl->url, target);
    struct curl_slist *headers = NULL;
    if (body != NULL)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: application/json");
    for (size_t i = 0; extra_headers != NULL && extra_headers[i] != NULL; i++)
        headers = curl_slist_append(headers, extra_headers[i]);
    if (sign) {
        struct cpx_auth auth = { 0 };
        snprintf(auth.id, sizeof auth.id, "%s", cl->key.identity);
        if (!cl->have_key ||
            !cpx_reqsig_sign(&cl->key.kp, method, target, ts, body, body_len, &auth)) {
            snprintf(reply->error, sizeof reply->error, "cannot sign %s %s", method, target);
            curl_slist_free_all(headers);
            return false;
        }
        char value[CPX_AUTH_HEADER_MAX], line[CPX_AUTH_HEADER_MAX + 32];
        cpx_auth_format(&auth, value);
        snprintf(line, sizeof line, "Authorization: %s", value);
        headers = curl_slist_append(headers, line);
    }
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (cl->cacert[0] != '\0')
        curl_easy_setopt(c, CURLOPT_CAINFO, cl->cacert);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
        snprintf(reply->error, sizeof reply->error, "cannot reach %.200s: %s", cl->url,
                 curl_easy_strerror(rc));
        return false;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply->status);
    if (reply->body != NULL)
        reply->json = json_loadb(reply->body, reply->body_len, 0, NULL);
    return true;
}

/* Did the exchange refuse the request as a replayed signature? */
static bool is_replay(const struct client_reply *r)
{
    json_t *err = r->json ? json_object_get(r->json, "error") : NULL;
    const char *code = json_string_value(json_object_get(err, "code"));
    return r->status == 401 && code != NULL && strcmp(code, "replayed_request") == 0;
}

bool client_call(struct client *cl, const char *method, const char *target, const char *body,
                 bool sign, const char *const *extra_headers, struct client_reply *reply)
{
    size_t body_len = body ? strlen(body) : 0;
    int64_t ts = sign ? pick_ts(cl, method, target, body, body_len) : 0;
    bool ok = call_once(cl, method, target, body, sign, ts, extra_headers, reply);
    for (int retry = 0; ok && sign && retry < 2 && is_replay(reply); retry++) {
        client_reply_free(reply);
        ts = pick_ts(cl, method, target, body, body_len);
        ok = call_once(cl, method, target, body, sign, ts, extra_headers, reply);
    }
    return ok;
}

void client_reply_free(struct client_reply *reply)
{
    free(reply->body);
    json_decref(reply->json);
    memset(reply, 0, sizeof *reply);
}

bool keyfile_write(const char *path, const struct cpx_keyfile *kf, bool force)
{
    char text[CPX_KEYFILE_MAX];
    size_t len = cpx_keyfile_format(kf, text);
    /* Write a private temporary file, then move it into place: never a half-written key. */
    char tmp[CLIENT_PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    int saved = errno;
    memset(text, 0, sizeof text);
    if (fd >= 0)
        close(fd);
    if (ok && !force && access(path, F_OK) == 0) {
        fprintf(stderr, "%s exists; not overwriting a key (use --force to replace it)\n", path);
        unlink(tmp);
        return false;
    }
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(ok ? errno : saved));
        unlink(tmp);
        return false;
    }
    return true;
}

bool keyfile_read(const char *path, struct cpx_keyfile *kf)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "cannot read key %s: %s (make one with: cpx keygen --out %s)\n", path,
                strerror(errno), path);
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0)
        fprintf(stderr, "warning: key %s can be read by others (chmod 600 %s)\n", path, path);
    char text[CPX_KEYFILE_MAX * 2];
    ssize_t n = read(fd, text, sizeof text);
    close(fd);
    if (n < 0 || (size_t)n == sizeof text) {
        fprintf(stderr, "cannot read key %s: %s\n", path, n < 0 ? strerror(errno) : "too large");
        return false;
    }
    const char *bad = cpx_keyfile_parse(text, (size_t)n, kf);
    memset(text, 0, sizeof text);
    if (bad != NULL) {
        fprintf(stderr, "key %s: %s\n", path, bad);
        return false;
    }
    return true;
}
