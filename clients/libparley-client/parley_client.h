/* libparley-client: the C client of parley's server API (the manual of the
 * calls themselves is docs/SERVER_API.md; their messages are
 * proto/parley/server/v1/api.proto, compiled with protoc-c).
 *
 * Invariants:
 *  - One struct parley_client holds one NNG req socket dialed to
 *    parley-api; NNG reconnects by itself. Any number of threads may call
 *    on one client at once: each call has its own NNG context.
 *  - A call never takes longer than its deadline (plus scheduling).
 *  - Retries resend the same request, so a call that changes something
 *    carries the same idempotency_key every time: retrying cannot make it
 *    happen twice. Only transport failures and errors the server marks
 *    retryable are retried; others come back at once.
 *
 * Errors: functions return 0, a negative errno (-ETIMEDOUT: no answer in
 * time; -EINVAL: bad arguments; -ECONNREFUSED etc. from NNG), or, for the
 * helpers, a positive parley.server.v1.Code when the server refused.
 *
 * Linking: libparley-client.a, -lnng -lprotobuf-c -pthread.
 */
#ifndef PARLEY_CLIENT_H
#define PARLEY_CLIENT_H

#include <stdint.h>

#include "parley/server/v1/api.pb-c.h"

struct parley_client;

/* Lifecycle. */

/* A client of the server at url ("tcp://host:port") with the shared key
 * (PARLEY_API_KEY of the server; copied). NULL when url or key is NULL or
 * the socket cannot be made. Connecting happens in the background. */
struct parley_client *parley_client_new(const char *url, const char *api_key);
/* Close the socket; calls in progress fail. parley_client_free(NULL) is a
 * no-op. */
void parley_client_free(struct parley_client *c);

/* The generic call. */

/* Send req (its api_key and deadline_ms are filled in here; the caller
 * keeps ownership of req) and wait at most deadline_ms in all, retrying as
 * the invariants say with backoff (50 ms doubling to 1 s). Returns 0 with
 * *resp set to the server's answer, which may carry resp->error (a refusal,
 * or the last retryable error when time ran out), or -errno when no answer
 * came (-ETIMEDOUT). The caller frees *resp with parley_response_free. */
int parley_call(struct parley_client *c, Parley__Server__V1__Request *req,
		int deadline_ms, Parley__Server__V1__Response **resp);
/* parley_response_free(NULL) is a no-op. */
void parley_response_free(Parley__Server__V1__Response *resp);

/* Helpers for common calls. */

struct parley_post {
	const char *room_id;
	const char *sender; /* a user id; NULL posts as the system */
	const char *key;    /* idempotency key: same key, one message */
	const char *body;
};

/* Publish: 0 with *seq set once the message is durable (G1) — a retry
 * with the same key answers the original seq — or -errno, or a positive
 * Code. */
int parley_publish(struct parley_client *c, const struct parley_post *p,
		   int deadline_ms, uint64_t *seq);

/* The name of a return value of the functions above ("ok",
 * "CODE_NOT_FOUND", "timed out", ...); static text. */
const char *parley_strerror(int rc);

#endif
