/*
 * Operations endpoints, public:
 *   GET /healthz          200 when the database answers, 503 when it does not
 *   GET /metrics          Prometheus text format
 *   GET /v1/openapi.json  the API description (docs/openapi.json, built into cpxd)
 */
#include <stdlib.h>
#include <string.h>

#include "server/db.h"
#include "server/handlers.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/server.h"

extern const char cpx_openapi_json[];
extern const size_t cpx_openapi_json_len;

static enum db_status ping(struct db_conn *c, void *arg)
{
    (void)arg;
    return db_command(c, "ping", 0, NULL, NULL);
}

void h_healthz(struct request *req)
{
    enum db_status st = db_run(req->srv->db, ping, NULL);
    if (st == DB_OK)
        reply_json(req, 200, json_pack("{s:s, s:s}", "status", "ok", "database", "ok"));
    else
        reply_error(req, E_DATABASE_UNAVAILABLE, NULL, NULL);
}

void h_metrics(struct request *req)
{
    char *text = metrics_render(req->srv->metrics, req->srv->db);
    if (text == NULL) {
        reply_error(req, E_INTERNAL, NULL, NULL);
        return;
    }
    reply_raw(req, 200, "text/plain; version=0.0.4", text, strlen(text));
    free(text);
}

void h_openapi(struct request *req)
{
    reply_raw(req, 200, "application/json", cpx_openapi_json, cpx_openapi_json_len);
}
