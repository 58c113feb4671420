/*
 * Every endpoint handler, one file per family (h_<family>.c). The route table (routes.c) says
 * which path and access each serves.
 */
#ifndef CPX_SERVER_HANDLERS_H
#define CPX_SERVER_HANDLERS_H

struct request;

/* h_health.c */
void h_healthz(struct request *req);
void h_metrics(struct request *req);
void h_openapi(struct request *req);

/* h_identities.c */
void h_identity_register(struct request *req);
void h_identity_list(struct request *req);
void h_identity_show(struct request *req);
void h_identity_approve(struct request *req);
void h_identity_reject(struct request *req);

#endif
