/* What the gateway's files share. One libwebsockets service thread owns
 * every session; NNG threads hand results over through the inbox and
 * lws_cancel_service() (never touching a session themselves). */
#ifndef PARLEY_GATEWAY_H
#define PARLEY_GATEWAY_H

#include <errno.h>
#include <libwebsockets.h>
#include <nng/nng.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "jwt.h"
#include "map.h"
#include "metrics.h"
#include "parley/internal/v1/envelope.pb-c.h"

/* Close code of sessions closed by the server API's DisconnectUser: the
 * client may reconnect with its token (docs/PROTOCOL.md). */
#define GW_CLOSE_DISCONNECTED 4010

/* WebSocket close codes (docs/PROTOCOL.md). */
enum gw_close {
	GW_CLOSE_GOING_AWAY = 1001,    /* draining: reconnect elsewhere */
	GW_CLOSE_TOO_BIG = 1009,       /* frame over the size limit */
	GW_CLOSE_INTERNAL = 1011,      /* server error: reconnect */
	GW_CLOSE_UNAUTHORIZED = 4001,  /* bad token: do not retry with it */
	GW_CLOSE_TOKEN_EXPIRED = 4002, /* expired token: get a new one */
	GW_CLOSE_AUTH_TIMEOUT = 4003,  /* no token within the deadline */
	GW_CLOSE_BAD_FRAME = 4004,     /* not a binary ClientFrame */
	GW_CLOSE_TOO_SLOW = 4005,      /* not reading: reconnect and sync */
	GW_CLOSE_REVOKED = 4006,       /* token revoked: do not retry with it */
	GW_CLOSE_RATE_LIMITED = 4007, /* kept sending over the rate: back off */
	GW_CLOSE_ORIGIN = 4008,	      /* Origin not allowed: do not retry */
	GW_CLOSE_TOO_MANY = 4009,     /* too many connections from the IP */
	/* 4010 is the server API's DisconnectUser. */
	GW_CLOSE_NO_SESSION = 4011, /* SSE: no such session: open a new one */
	GW_CLOSE_REPLACED = 4012,   /* SSE: another stream resumed it */
};

/* Counters exported on /metrics. */
struct gw_metrics {
	struct metric *connections, *sessions, *frames_in, *frames_out;
	struct metric *bytes_out, *commands, *deliveries, *closes_slow;
	struct metric *closes_auth, *closes_bad;
	struct metric *sends, *e2e_latency, *delivery_batch;
	struct metric *sse_streams, *sse_resumes, *sse_posts;
	struct metric *revocations, *closes_revoked, *closes_limit;
	struct metric *rate_limited, *writes_coalesced;
};

struct gw_config {
	const char *bind;
	int port;
	const char *nng_listen; /* our delivery address, also our identity */
	const char *routers;	/* comma-separated NNG urls */
	const char *store_url;
	const char *presence_url;
	const char *presence_pub; /* presence's PresenceUpdate publisher */
	const char *pusher_url;	  /* device registration (parley-pusher) */
	/* Tokens (auth.c): the policy owns nothing; jwt_key is owned. */
	struct jwt_policy jwt;
	struct jwt_key *jwt_key;
	const char *brokers;
	char *revocations; /* revocations topic (owned) */
	int revoke_on;
	/* Limits (limits.c). */
	int max_conn_per_ip; /* 0: no limit */
	int max_rooms;	     /* rooms a user may create up to; 0: no limit */
	double send_rate;    /* client frames per second, refilled */
	int send_burst;	     /* bucket size */
	char **origins;	     /* allowed Origin values; NULL: all */
	size_t n_origins;
	int handshake_timeout_s;
	int auth_timeout_ms;
	int max_frame;
	int outq_max;
	int sndbuf; /* SO_SNDBUF of client sockets (0: the kernel's) */
	int ping_s;
	int pong_timeout_s;
	int rpc_timeout_ms;
	int drain_ms;	    /* how long in-flight requests get at shutdown */
	int drain_batch;    /* sessions closed per tick while draining */
	int sse_grace_ms;   /* an SSE session outlives its stream this long */
	int sse_ping_s;	    /* heartbeat comments on SSE streams */
	int sse_replay_max; /* bytes of written frames kept for a resume */
	int sse_post_max;   /* largest POST /v1/send body */
	int loop;	    /* GW_LOOP_EPOLL (libev) or GW_LOOP_POLL */
	/* web.c: the demo page's files ("" when not served), and whether
	 * /dev/token mints tokens (PARLEY_DEV_TOKENS). */
	const char *web_dir;
	int dev_tokens;
};

enum { GW_LOOP_EPOLL, GW_LOOP_POLL };

/* A frame shared by every session it goes to: encoded once, with
 * LWS_PRE bytes of headroom before data for the WebSocket header. */
struct gw_frame {
	int refs;
	size_t len;
	uint8_t buf[]; /* LWS_PRE + len */
};

struct gw_qitem {
	struct gw_frame *frame;
	struct gw_qitem *next;
};

enum gw_state { GW_AUTH_WAIT, GW_WELCOME_WAIT, GW_LIVE, GW_CLOSING };

/* Store answers a session may be owed at once: what a reader that stops
 * reading can make the gateway hold in answers is this many pages (a page
 * is at most 256 KiB of bodies plus one message, docs/PROTOCOL.md). More
 * queries wait in order; past GW_HELD_MAX they get RATE_LIMITED. */
#define GW_QUERIES_MAX 4
#define GW_HELD_MAX    64

struct gw_held_query {
	nng_msg *msg;
	uint64_t request_id;
	struct gw_held_query *next;
};

struct gw_session;

/* How a session's frames reach its client: WebSocket (ws.c) or SSE
 * (sse.c). The queue, its bound, Welcome, replies, deliveries, presence
 * and drain live in session.c for both; a transport only writes. */
struct gw_transport {
	const char *name;
	/* Write the queue, then the close once one is due, as soon as the
	 * client can take it (never synchronously: the caller may be in the
	 * middle of walking the session indexes). */
	void (*wake)(struct gw_session *s);
	/* Optional: write the queue now, as far as the client takes it,
	 * several frames in one write (never closing or destroying anything
	 * synchronously); what is left waits for writable. session_send
	 * calls it for a frame to an idle session, or at the end of the
	 * inbox drain that queued frames. */
	void (*flush)(struct gw_session *s);
};

struct gw_session {
	const struct gw_transport *tp;
	struct lws *wsi; /* WebSocket only: the connection */
	struct gateway *gw;
	enum gw_state state;
	char id[48];
	char user[JWT_SUB_MAX + 1];
	int64_t token_exp;
	int64_t token_iat; /* for revocation epochs */
	bool token_has_iat;
	/* Limits: the peer address counted per IP, the send bucket. */
	char ip[48];
	double tokens;
	int64_t bucket_ms;
	int strikes; /* frames refused in a row */
	/* Rooms of the user: from Welcome, plus each CreateRoom sent since. */
	size_t n_rooms;
	/* Outgoing frames, oldest first; bytes counts their payloads. */
	struct gw_qitem *head, *tail;
	size_t queued;
	/* A partly received message (fragmented frames). */
	uint8_t *rx;
	size_t rx_len;
	int close_code;
	const char *close_reason;
	/* Requests forwarded to routers and not answered yet. */
	int inflight;
	/* Welcome is sent once rooms and presence both answered. */
	bool rooms_done, presence_done;
	Parley__V1__RoomList *rooms;
	uint64_t welcome_request_id;
	lws_sorted_usec_list_t auth_sul;
	/* WebSocket keepalive (ws.c): when the peer last sent anything, and
	 * whether a ping is to be written or waits for an answer. */
	int64_t rx_ms;
	bool ping_due, ping_out;
	/* Store queries in flight (at most GW_QUERIES_MAX) and those held
	 * until one answers (at most GW_HELD_MAX; rpc.c). */
	int queries, n_held;
	struct gw_held_query *held, *held_tail;
	/* Queued during an inbox drain, flushed at its end (gw->dirty). */
	bool dirty;
	struct gw_session *dirty_next;
};

/* Work handed to the service thread from NNG threads. */
enum gw_inbox_kind {
	GW_IN_DELIVERIES,
	GW_IN_STORE_REPLY,
	GW_IN_PRESENCE,
	GW_IN_PRESENCE_LOOKUP, /* subs.c: a lookup for SubscribePresence */
	GW_IN_PRESENCE_PUB,    /* subs.c: a PresenceUpdate with user states */
	GW_IN_PUSHER,	       /* device.c: the pusher's answer */
	GW_IN_REVOKE,	       /* auth.c: msg = user, request_id = epoch */
};

struct gw_inbox_item {
	enum gw_inbox_kind kind;
	nng_msg *msg; /* NULL when the request failed */
	int err;
	char session_id[48];
	uint64_t request_id;
	struct gw_inbox_item *next;
};

struct gateway {
	struct gw_config cfg;
	struct lws_context *ctx;
	uint64_t instance;
	uint64_t next_session;
	struct map sessions; /* id -> struct gw_session * (every connection) */
	struct map users;    /* user -> struct gw_user * */
	bool draining;
	bool stopped;
	int64_t drain_deadline_ms;
	/* NNG. */
	nng_socket routers;
	nng_socket deliveries;
	nng_socket store;
	nng_socket presence;
	pthread_t delivery_thread;
	int router_pipes; /* connected routers; atomic */
	struct bus_batch commands;
	/* Ephemeral commands (typing, ...) go to every router: the one that
	 * folds the room answers. One socket per router. */
	nng_socket *eph;
	size_t n_eph;
	struct bus_batch eph_batch;
	lws_sorted_usec_list_t flush_sul;
	bool flush_scheduled;
	/* Inbox. */
	pthread_mutex_t inbox_lock;
	struct gw_inbox_item *inbox_head, *inbox_tail;
	bool inbox_closed; /* the lws context is going away */
	/* While the inbox drains, frames for an idle WebSocket session are
	 * queued and the session listed here; the drain's end writes each
	 * session's frames together (session_flush_dirty). */
	bool batching;
	struct gw_session *dirty;
	/* Presence reporting. */
	struct gw_presence *pres;
	lws_sorted_usec_list_t presence_sul;
	/* Presence subscriptions (subs.c). */
	struct gw_subs *subs;
	/* Device registration (device.c). */
	nng_socket pusher;
	struct gw_metrics *m;
	/* Revocation epochs (auth.c): user -> int64_t * (owned). */
	struct map revoked;
	struct revoke_reader *revoker;
	/* Connections per peer IP (limits.c): ip -> int * (owned). */
	struct map per_ip;
};

/* http.c: /livez, /readyz, /metrics, and the routing of /v1/events and
 * /v1/send to sse.c. One per HTTP transaction (lws per-session data). */
struct sse_req;
struct gw_http {
	char *body; /* a plain answer's body, written when writable */
	size_t len;
	bool close_after;    /* end the connection once the answer is out */
	struct sse_req *sse; /* a request handled by sse.c */
};

int http_on_request(struct gateway *gw, struct lws *wsi, struct gw_http *h,
		    const char *uri);
int http_on_writable(struct lws *wsi, struct gw_http *h);
/* Answer status with a heap body of type (NULL: empty); ownership of body
 * passes. The head is written now, the body when writable. 0 or -1. */
int http_answer(struct lws *wsi, struct gw_http *h, int status,
		const char *type, char *body);
void http_release(struct gw_http *h);

/* web.c: the demo page and dev tokens. web_route answers /dev/token when
 * dev tokens are on and a file of the web dir that uri names: a status,
 * with h->body and *type set; 0 for anything else. */
void web_config_log(const struct gw_config *c);
int web_route(struct gateway *gw, struct lws *wsi, const char *uri,
	      struct gw_http *h, const char **type);

/*
 * sse.c: the fallback transport (docs/PROTOCOL.md, "Fallback transport").
 * GET /v1/events opens or resumes a session whose frames go out as
 * server-sent events; POST /v1/send hands ClientFrames to it. An SSE
 * session is heap-owned by sse.c and outlives its stream by a grace.
 */
/* LWS_CALLBACK_HTTP for /v1/events or /v1/send; 0 or -1 (close). */
int sse_on_request(struct gateway *gw, struct lws *wsi, struct gw_http *h,
		   const char *uri);
/* The other callbacks of a request sse.c took; 0 or -1 (close). */
int sse_on_body(struct gw_http *h, const void *in, size_t len);
int sse_on_body_done(struct lws *wsi, struct gw_http *h);
int sse_on_writable(struct lws *wsi, struct gw_http *h);
int sse_on_timer(struct lws *wsi, struct gw_http *h);
/* The request is over (connection closed or transaction done). */
void sse_release(struct gw_http *h);
/* Free every SSE session without a stream (before the context goes). */
void sse_stop(struct gateway *gw);

/* ws.c: the libwebsockets side. ws_run opens the links, serves until a
 * stop signal, and closes everything; 0 or -1 when start-up failed. */
int ws_run(struct gateway *gw);

/* drain.c: graceful stop. Readiness goes false and new connections are
 * refused at once; sessions are closed in batches with 1001 once their
 * requests are answered or the deadline passed; then the loop stops. */
void drain_start(struct gateway *gw);
/* One step per tick; sets gw->stopped when every connection is gone. */
void drain_step(struct gateway *gw);

/* session.c: sessions, their queues, and the indexes. */
/* A new session on transport tp: give it an id and index it. */
void session_open(struct gateway *gw, const struct gw_transport *tp,
		  struct gw_session *s);
struct gw_session *session_get(struct gateway *gw, const char *id);
/* Authenticate with a token; 0, or a close code to close with. */
int session_auth(struct gw_session *s, const char *token);
/* Handle one complete client message. */
void session_on_message(struct gw_session *s, const uint8_t *buf, size_t len);
/* Queue a frame (takes a reference). Closes slow sessions. */
void session_send(struct gw_session *s, struct gw_frame *f);
/* Queue a ServerFrame (encoded here). */
void session_send_pb(struct gw_session *s, const Parley__V1__ServerFrame *f);
void session_error(struct gw_session *s, uint64_t request_id, int code,
		   const char *msg, bool retryable);
/* Close with code and reason once the queue is written. */
void session_close(struct gw_session *s, int code, const char *reason);
/* Called when the session is gone: unindex and free what it holds (not
 * s itself, which its transport owns). */
void session_destroy(struct gw_session *s);
/* For transports: the next frame to write, off the queue (the caller owns
 * it and passes it to session_wrote), or NULL when none may go now —
 * then a close is due if s->close_code is set. */
struct gw_qitem *session_next(struct gw_session *s);
/* True when session_next has a frame or a close is due. */
bool session_has_output(const struct gw_session *s);
/* Count a written frame (metrics). */
void session_wrote(struct gw_session *s, const struct gw_qitem *q);
/* Write what sessions queued while gw->batching (end of an inbox drain). */
void session_flush_dirty(struct gateway *gw);
/* Put items (oldest first, bytes in total) back before the queue. */
void session_requeue(struct gw_session *s, struct gw_qitem *head,
		     struct gw_qitem *tail, size_t bytes);
/* Deliver a frame to every local session of user (except one). */
void session_deliver_user(struct gateway *gw, const char *user,
			  struct gw_frame *f, const char *except);
/* Close every local session of user with code (DisconnectUser). */
void session_close_user(struct gateway *gw, const char *user, int code);
/* The rooms answer for a session waiting for Welcome. */
void session_on_rooms(struct gw_session *s, Parley__V1__RoomList *rooms);
/* Presence saw the session; Welcome may go. */
void session_on_presence(struct gw_session *s);

struct gw_frame *frame_new(const void *data, size_t len);
struct gw_frame *frame_from_pb(const Parley__V1__ServerFrame *f);
void frame_unref(struct gw_frame *f);

/* link.c: NNG links to routers and for deliveries, and the inbox. */
int link_open(struct gateway *gw);
void link_close(struct gateway *gw);
/* Queue a command for the routers; flushed at the next loop turn. */
void link_command(struct gateway *gw, struct gw_session *s,
		  Parley__V1__ClientFrame *f);
/* Queue an ephemeral command for every router. */
void link_ephemeral(struct gateway *gw, struct gw_session *s,
		    Parley__V1__ClientFrame *f);
void inbox_push(struct gateway *gw, struct gw_inbox_item *it);
/* Stop waking the service thread (before the context is destroyed). */
void inbox_close(struct gateway *gw);
/* Free what is left in the inbox (at exit). */
void inbox_free(struct gateway *gw);
/* Handle everything in the inbox (service thread). */
void inbox_drain(struct gateway *gw);

/* rpc.c: store queries and presence reports. */
/* Send req for session s; the reply comes to the inbox. */
void rpc_store(struct gw_session *s, uint64_t request_id,
	       Parley__Internal__V1__StoreRequest *req);
void rpc_on_store_reply(struct gateway *gw, struct gw_inbox_item *it);
/* Drop the session's held queries (it closes). */
void rpc_release_held(struct gw_session *s);
int presence_open(struct gateway *gw);
void presence_close(struct gateway *gw);
void presence_free(struct gateway *gw);
void presence_session_up(struct gateway *gw, struct gw_session *s);
void presence_session_down(struct gateway *gw, struct gw_session *s);
void presence_on_reply(struct gateway *gw, struct gw_inbox_item *it);
/* Send the encoded request m on sock (ownership of m passes); the answer,
 * or the failure (msg NULL, err set), comes to the inbox as kind, carrying
 * session_id and request_id. */
void rpc_call(struct gateway *gw, nng_socket sock, enum gw_inbox_kind kind,
	      const char *session_id, uint64_t request_id, nng_msg *m);

/*
 * subs.c: SubscribePresence. The index user -> subscribed session ids and
 * each session's set live on the service thread. A receiver thread reads
 * presence's PresenceUpdates and hands those with user states over as
 * GW_IN_PRESENCE_PUB; lookups answer as GW_IN_PRESENCE_LOOKUP.
 */
/* Dial presence (lookups, publications) and start the receiver. 0/-errno. */
int subs_open(struct gateway *gw);
/* Stop the receiver and close the sockets (before inbox_close). */
void subs_close(struct gateway *gw);
/* Free the index (after the last session_destroy). */
void subs_free(struct gateway *gw);
/* SubscribePresence from s: replace its set, answer with each state. */
void subs_subscribe(struct gw_session *s, const Parley__V1__ClientFrame *f);
/* Forget every subscription of s (the session is going away). */
void subs_drop(struct gw_session *s);
/* GW_IN_PRESENCE_LOOKUP and GW_IN_PRESENCE_PUB items (service thread). */
void subs_on_inbox(struct gateway *gw, struct gw_inbox_item *it);

/* device.c: RegisterDevice / UnregisterDevice go to the pusher over NNG
 * request/reply (a Command); its Ok or Error comes back as GW_IN_PUSHER. */
int device_open(struct gateway *gw);
void device_close(struct gateway *gw);
void device_forward(struct gw_session *s, Parley__V1__ClientFrame *f);
void device_on_reply(struct gateway *gw, struct gw_inbox_item *it);

/* auth.c: the token policy and revocation. */
/* Read PARLEY_JWT_* and the revocations topic into c (start-up only). */
void auth_config(struct gw_config *c);
/* Start reading revocations (before serving); auth_close stops it. */
void auth_open(struct gateway *gw);
void auth_close(struct gateway *gw);
void auth_free(struct gateway *gw);
/* Check a token: 0 with *out filled, or the close code to close with
 * (4001 bad, 4002 expired, 4006 revoked). */
int auth_verify(struct gateway *gw, const char *token, struct jwt_claims *out);
/* jwt_check's result as a close code: 0, 4002 expired, else 4001. */
static inline int
auth_jwt_code(int jwt_rc)
{
	if (jwt_rc == -EKEYEXPIRED)
		return GW_CLOSE_TOKEN_EXPIRED;
	return jwt_rc < 0 ? GW_CLOSE_UNAUTHORIZED : 0;
}
/* A GW_IN_REVOKE item: record the epoch, close what it revokes. */
void auth_on_revoke(struct gateway *gw, struct gw_inbox_item *it);

/* limits.c: connections per IP, Origin allowlist, send rate. */
void limits_config(struct gw_config *c);
/* A new session: 0, or 4009 when its IP holds too many. Counts it
 * against its IP until limits_release. */
int limits_admit(struct gateway *gw, struct lws *wsi, struct gw_session *s);
void limits_release(struct gateway *gw, struct gw_session *s);
/* One client frame: true when the bucket allows it. Otherwise the frame
 * is answered RATE_LIMITED (request_id given) or, after a full burst of
 * refusals, the session closed with 4007. */
bool limits_allow(struct gw_session *s, uint64_t request_id);
/* The Origin allowlist, read from wsi's request head (so before lws
 * drops it): 0 or GW_CLOSE_ORIGIN. */
int limits_origin(struct gateway *gw, struct lws *wsi);
/* A CreateRoom: true when the user has fewer rooms than the limit (and
 * counts the new one); otherwise answers FORBIDDEN. */
bool limits_room(struct gw_session *s, uint64_t request_id);
void limits_free(struct gateway *gw);

int64_t gw_now_ms(void);

#endif
