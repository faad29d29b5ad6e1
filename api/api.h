/* parley-api: the server API for backend services (docs/SERVER_API.md).
 * A pool of workers, each with its own NNG context on one rep socket,
 * answers parley.server.v1 Requests; changes go to the routers as
 * Commands marked server (acknowledged by the room's owner after the fold,
 * like a client's SendAck), reads go to the store and presence. */
#ifndef PARLEY_API_H
#define PARLEY_API_H

#include <nng/nng.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "map.h"
#include "metrics.h"
#include "parley/internal/v1/envelope.pb-c.h"
#include "parley/server/v1/api.pb-c.h"

/* WebSocket close code of DisconnectUser (gateway.h GW_CLOSE_DISCONNECTED). */
#define API_CLOSE_DISCONNECTED 4010

/* The reserved sender of system messages. */
#define API_SYSTEM_USER "system"

struct api_config {
	const char *listen;	  /* PARLEY_API_LISTEN: callers */
	const char *key;	  /* PARLEY_API_KEY (never logged) */
	const char *nng_listen;	  /* PARLEY_API_NNG: router answers */
	const char *routers;	  /* PARLEY_ROUTERS */
	const char *store_url;	  /* PARLEY_STORE_URL */
	const char *presence_url; /* PARLEY_PRESENCE_URL */
	const char *pusher_url;	  /* PARLEY_PUSHER_URL */
	int workers;		  /* PARLEY_API_WORKERS: concurrent calls */
	int max_request;	  /* PARLEY_API_MAX_REQUEST: bytes */
	int timeout_ms;		  /* PARLEY_API_TIMEOUT_MS: longest wait */
	const char *brokers;	  /* PARLEY_KAFKA_BROKERS: revocations */
	const char *topic;	  /* PARLEY_TOPIC: <topic>.revocations */
};

/* One call waiting for the owner's answer (link.c). */
struct api_wait {
	char session_id[48];
	pthread_cond_t cond;
	Parley__V1__ServerFrame *frame; /* set by the receiver */
};

struct api {
	struct api_config cfg;
	nng_socket sock;     /* rep: callers */
	nng_socket routers;  /* push: Commands, load-balanced */
	nng_socket answers;  /* pull: Deliveries from owners */
	nng_socket store;    /* req */
	nng_socket presence; /* req */
	nng_socket pusher;   /* req */
	pthread_t receiver;
	pthread_mutex_t lock; /* waits, next_id */
	struct map waits;     /* session id -> struct api_wait * */
	struct map gateways;  /* gateway url -> nng_socket * (push) */
	uint64_t next_id;
	int router_pipes;
	struct metric *calls, *failed, *in_flight, *latency, *refused;
};

/* server.c: run until a stop signal. 0, or -errno when start-up failed. */
int api_run(const struct api_config *cfg);

/* True when key equals the configured key (constant time). */
bool api_key_ok(const struct api *a, const char *key);

/* link.c: the routers, their answers, and request/reply helpers. */
int link_open(struct api *a);
void link_close(struct api *a);
/* Send c (session_id and gateway are filled in) to a router and wait up
 * to timeout_ms for the owner's answer. 0 with *out (free with
 * parley__v1__server_frame__free_unpacked), -ETIMEDOUT, or -errno when
 * it could not be sent. */
int link_command(struct api *a, Parley__Internal__V1__Command *c,
		 int timeout_ms, Parley__V1__ServerFrame **out);
/* Send one Delivery batch to the gateway at url (a push socket made on
 * first use). 0 or -errno (-ETIMEDOUT when it is unreachable). */
int link_to_gateway(struct api *a, const char *url, nng_msg *m);
/* One request/reply on sock with its own context: 0 with *reply (the
 * caller frees it), or -errno (-ETIMEDOUT). */
int link_ask(nng_socket sock, const ProtobufCMessage *req, int timeout_ms,
	     nng_msg **reply);

/* revoke.c: write user's revocation epoch (now) and wait for the ack.
 * 0 or -errno. */
int api_revoke(struct api *a, const char *user, int timeout_ms);

/* calls.c: one Request to its Response (heap; free with
 * calls_response_free). */
Parley__Server__V1__Response *calls_handle(struct api *a,
					   const Parley__Server__V1__Request *q,
					   int timeout_ms);
void calls_response_free(Parley__Server__V1__Response *r);

#endif
