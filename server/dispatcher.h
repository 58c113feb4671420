/*
 * The dispatcher (docs/delivery.md §2): threads that hand each agreement's job to its provider's
 * HTTPS endpoint, signed by the exchange, and turn the provider's signed acceptance -- or a
 * deadline that passed -- into a sequencer command. Attempts, retries with backoff and a circuit
 * breaker per provider live here; money and the ledger stay with the sequencer.
 */
#ifndef CPX_SERVER_DISPATCHER_H
#define CPX_SERVER_DISPATCHER_H

struct server;
struct dispatcher;

/* Starts --dispatchers threads (after the sequencer). NULL when out of memory. */
struct dispatcher *dispatcher_start(struct server *srv);

/* Stops the threads (each finishes the attempt in flight) and frees everything. */
void dispatcher_stop(struct dispatcher *d);

#endif
