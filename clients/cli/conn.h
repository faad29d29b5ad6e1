/* One WebSocket session of the CLI with a parley gateway (subprotocol
 * parley.v1, one protobuf frame per binary WebSocket message), driven by
 * libwebsockets from the calling thread only. */
#ifndef PARLEY_CLI_CONN_H
#define PARLEY_CLI_CONN_H

#include <stdint.h>

#include "parley/v1/client.pb-c.h"

/*
 * A session is opened by conn_open(), which returns only once the server's
 * Welcome arrived. Frames the server sends are queued inside the session
 * and handed out, oldest first, by conn_recv(), conn_wait() or
 * conn_request(); nothing is read from the network except inside those
 * calls. Deadlines are absolute times of conn_now_ms(); -1 means none.
 *
 * Errors (negative errno) used throughout:
 *   -EINVAL        the URL is not ws://host[:port][/path] or wss://...
 *   -ECONNREFUSED  the connection or the WebSocket upgrade failed
 *   -EACCES        authentication refused: HTTP 401/403 on the upgrade,
 *                  close code 4001..4003, 4006 (revoked) or 4008 (origin),
 *                  or Error UNAUTHENTICATED before Welcome
 *   -EPROTO        closed with 4004: the server could not read our frame
 *   -EMSGSIZE      closed with 1009: our frame was over the server's limit
 *   -ECONNRESET    the session closed otherwise (conn_close_code() says
 *                  how); reconnecting may help
 *   -ETIMEDOUT     the deadline passed
 */
struct conn;

/* Milliseconds of a monotonic clock: the clock of every deadline here. */
int64_t conn_now_ms(void);

/* Connect to url with token in the "token" query parameter and wait for
 * Welcome until deadline_ms. On success *out is a session the caller frees
 * with conn_free(); on error *out is untouched. */
int conn_open(const char *url, const char *token, int64_t deadline_ms,
	      struct conn **out);

/* Close the session politely (bounded wait) and free it; NULL is a no-op. */
void conn_free(struct conn *c);

/* The Welcome the session opened with; owned by the session. */
const Parley__V1__Welcome *conn_welcome(const struct conn *c);

/* The URL the session is connected to; owned by the session. */
const char *conn_url(const struct conn *c);

/* Close code the server sent (0 when none, or not closed yet). */
int conn_close_code(const struct conn *c);

/* Give f a fresh request_id (unique in this process) and queue it for
 * sending. f stays the caller's; it is packed before the call returns.
 * Returns 0, or -ENOTCONN when the session is closed. */
int conn_send(struct conn *c, Parley__V1__ClientFrame *f);

/* Wait for the next frame until deadline_ms. On success the caller owns
 * *out and frees it with parley__v1__server_frame__free_unpacked(out,
 * NULL). Frames already queued are handed out even after a close. */
int conn_recv(struct conn *c, int64_t deadline_ms,
	      Parley__V1__ServerFrame **out);

/* Call on_frame for every frame until it returns non-zero, which
 * conn_wait() then returns (use positive values to tell them from the
 * errors above). The frame is freed when on_frame returns. */
int conn_wait(struct conn *c, int64_t deadline_ms,
	      int (*on_frame)(void *arg, const Parley__V1__ServerFrame *f),
	      void *arg);

/* Send f and wait for the frame that echoes its request_id, dropping any
 * other frame. On success the caller owns *reply (which may be an Error). */
int conn_request(struct conn *c, Parley__V1__ClientFrame *f,
		 int64_t deadline_ms, Parley__V1__ServerFrame **reply);

#endif
