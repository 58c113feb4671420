/*
 * The HTTPS client every CPX tool shares: where the exchange is, which key signs, which CA to
 * trust, and one call that sends a (signed) request and returns status and JSON.
 *
 * Settings come from flags or the environment: CPX_URL (default https://127.0.0.1:$CPX_PORT, port
 * 8443), CPX_KEY (default ./cpx.key) and CPX_CACERT (default $CPX_VAR/tls/cert.pem, CPX_VAR
 * defaulting to ./var, which is what `make run` creates), so the tools work against `make run`
 * without extra flags.
 */
#ifndef CPX_CLIENTS_CLIENT_H
#define CPX_CLIENTS_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "ledger/keyfile.h"

#define CLIENT_PATH_MAX 4096

struct client {
    char url[1024];                 /* base URL, no trailing slash */
    char cacert[CLIENT_PATH_MAX];   /* CA certificate file; "" to use the system's */
    char key_path[CLIENT_PATH_MAX]; /* key file */
    struct cpx_keyfile key;         /* the loaded key (valid when have_key) */
    bool have_key;                  /* key was loaded */
    void *curl;                     /* libcurl easy handle, reused so connections stay open */
    /* Signatures are single-use: the server refuses a second request with the same signed
     * string. Identical requests inside one second therefore get later timestamps; `recent`
     * remembers the last few signed requests (digest without the timestamp, and its ts). */
    struct {
        uint8_t digest[32]; /* SHA-256 of method, target and body */
        int64_t ts;         /* timestamp it was last signed with */
    } recent[16];
    unsigned recent_next; /* next slot of recent to overwrite */
};

/* A reply from the exchange. */
struct client_reply {
    long status;     /* HTTP status; 0 when no reply arrived */
    char *body;      /* body text, NUL-terminated (malloc'd) */
    size_t body_len; /* its length */
    json_t *json;    /* the body parsed, when it is JSON */
    char error[512]; /* what went wrong when status is 0 */
};

/*
 * Sets up cl from the given values, each of which may be NULL to take the environment or the
 * default. Does not read the key (see client_load_key). Returns false with a message on stderr.
 */
bool client_init(struct client *cl, const char *url, const char *cacert, const char *key_path);

void client_free(struct client *cl);

/* Loads cl->key_path into cl->key. Returns false with a message on stderr. */
bool client_load_key(struct client *cl);

/*
 * Sends METHOD target (path and query, e.g. "/v1/identities?status=pending") with an optional
 * JSON body; signs it with cl->key when sign is true. extra_headers may be NULL or a
 * NULL-terminated list of "Name: value" strings. Fills *reply (free with client_reply_free).
 * Returns true when a reply arrived (any status). A signed request the exchange refuses as a
 * replay (another process sent the identical request in the same second) is signed again with
 * a later timestamp and resent, at most twice.
 */
bool client_call(struct client *cl, const char *method, const char *target, const char *body,
                 bool sign, const char *const *extra_headers, struct client_reply *reply);

void client_reply_free(struct client_reply *reply);

/*
 * Writes a key file with mode 0600. Refuses to overwrite an existing file unless force. Returns
 * false with a message on stderr.
 */
bool keyfile_write(const char *path, const struct cpx_keyfile *kf, bool force);

/* Reads and parses a key file; warns on stderr when others may read it. */
bool keyfile_read(const char *path, struct cpx_keyfile *kf);

#endif
