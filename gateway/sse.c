/* The fallback transport (docs/PROTOCOL.md, "Fallback transport"): a
 * session whose ServerFrames go out as server-sent events on GET
 * /v1/events, and whose ClientFrames come in POST /v1/send bodies. The
 * session itself (queue, bound, Welcome, replies, drain) is session.c's. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include "gateway.h"
#include "log.h"
#include "xalloc.h"

#define SSE_SECRET_BYTES 16
#define SSE_SECRET_LEN	 22 /* base64url of 16 bytes, unpadded */
#define SSE_TOKEN_MAX	 8192
#define SSE_CURSOR_MAX	 128
#define SSE_CLOSE_WAIT_S 5	     /* to write the close event, at most */
#define SSE_CHUNK	 (32 * 1024) /* encoded bytes per write, about */

/*
 * An SSE session. Frame events are numbered 1, 2, 3, ... as they are
 * written; the written ones stay in the replay list (numbers replay_first
 * to last_ev, bounded in bytes) since a write does not prove a read.
 */
struct sse_session {
	struct gw_session s; /* first: the transport's wake gets &s */
	char secret[SSE_SECRET_LEN + 1];
	struct sse_req *stream; /* the attached stream, or NULL */
	uint64_t last_ev;
	uint64_t replay_first;
	struct gw_qitem *replay_head, *replay_tail;
	size_t replayed;
	lws_sorted_usec_list_t gone_sul; /* grace, or a deferred free */
};

enum sse_kind { SSE_STREAM, SSE_POST };

/* One request sse.c took: an event stream or a POST. */
struct sse_req {
	enum sse_kind kind;
	struct gateway *gw;
	struct lws *wsi;
	/* Stream. */
	struct sse_session *ss; /* attached session, or NULL */
	bool hello;		/* the session event is due */
	bool resumed;
	bool ping;
	int close_code; /* this stream only: no session, or replaced */
	int origin;	/* limits_origin of the request head */
	const char *close_reason;
	bool ended; /* the close event is out: end at the next writable */
	/* POST. */
	char sid[48];
	int status; /* a refusal decided from the head, or 0 */
	int code;
	const char *reason;
	bool answered;
	int64_t exp;
	uint8_t *body;
	size_t len, cap;
};

/* A growing output buffer with LWS_PRE bytes of headroom. */
struct sse_buf {
	char *p;
	size_t len, cap;
};

static void sse_wake(struct gw_session *s);

static const struct gw_transport sse_transport = { "sse", sse_wake, NULL };

static struct sse_session *
sse_of(struct gw_session *s)
{
	return s && s->tp == &sse_transport ? (struct sse_session *)s : NULL;
}

/* Buffers. */

static void
buf_reserve(struct sse_buf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return;
	b->cap = (b->len + more + 1) * 2;
	b->p = xrealloc(b->p, LWS_PRE + b->cap);
}

static void buf_printf(struct sse_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
buf_printf(struct sse_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + LWS_PRE + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Sessions. */

static void
sse_replay_drop_head(struct sse_session *ss)
{
	struct gw_qitem *q = ss->replay_head;

	ss->replay_head = q->next;
	if (ss->replay_head == NULL)
		ss->replay_tail = NULL;
	ss->replayed -= q->frame->len;
	ss->replay_first++;
	frame_unref(q->frame);
	free(q);
}

static void
sse_session_free(struct sse_session *ss)
{
	lws_sul_cancel(&ss->gone_sul);
	limits_release(ss->s.gw, &ss->s);
	session_destroy(&ss->s);
	while (ss->replay_head)
		sse_replay_drop_head(ss);
	free(ss);
}

static void
on_gone(lws_sorted_usec_list_t *sul)
{
	struct sse_session *ss =
		lws_container_of(sul, struct sse_session, gone_sul);

	LOG_DEBUG("gateway.sse_gone", "session %s ends without a stream",
		  ss->s.id);
	sse_session_free(ss);
}

static void
sse_wake(struct gw_session *s)
{
	struct sse_session *ss = sse_of(s);

	if (ss->stream) {
		lws_callback_on_writable(ss->stream->wsi);
		/* A client that reads nothing more does not hold the close. */
		if (s->state == GW_CLOSING)
			lws_set_timeout(ss->stream->wsi,
					PENDING_TIMEOUT_CLOSE_SEND,
					SSE_CLOSE_WAIT_S);
	} else if (s->state == GW_CLOSING)
		/* Later: the caller may be walking the indexes. */
		lws_sul_schedule(s->gw->ctx, 0, &ss->gone_sul, on_gone, 1);
}

static struct sse_session *
sse_session_new(struct gateway *gw)
{
	struct sse_session *ss = xcalloc(1, sizeof(*ss));
	uint8_t raw[SSE_SECRET_BYTES];
	char enc[SSE_SECRET_LEN + 4];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		log_fatal("gateway.random", "getrandom failed");
	lws_b64_encode_string_url((const char *)raw, (int)sizeof(raw), enc,
				  (int)sizeof(enc));
	memcpy(ss->secret, enc, SSE_SECRET_LEN);
	ss->secret[SSE_SECRET_LEN] = '\0';
	ss->replay_first = 1;
	session_open(gw, &sse_transport, &ss->s);
	return ss;
}

/* The stream ends: the session waits a grace for a resume (or goes now
 * when it was closing, or the gateway is stopping). */
static void
sse_detach(struct sse_req *r)
{
	struct sse_session *ss = r->ss;

	if (ss == NULL)
		return;
	r->ss = NULL;
	ss->stream = NULL;
	metric_add(r->gw->m->sse_streams, -1);
	if (ss->s.state == GW_CLOSING || r->gw->stopped) {
		sse_session_free(ss);
		return;
	}
	lws_sul_schedule(r->gw->ctx, 0, &ss->gone_sul, on_gone,
			 (lws_usec_t)r->gw->cfg.sse_grace_ms * LWS_US_PER_MS);
}

static void
sse_attach(struct sse_req *r, struct sse_session *ss, bool resumed)
{
	struct sse_req *old = ss->stream;

	if (old) {
		old->ss = NULL;
		old->close_code = GW_CLOSE_REPLACED;
		old->close_reason =
			"replaced: another stream resumed the session";
		lws_callback_on_writable(old->wsi);
		lws_set_timeout(old->wsi, PENDING_TIMEOUT_CLOSE_SEND,
				SSE_CLOSE_WAIT_S);
		metric_add(r->gw->m->sse_streams, -1);
	}
	lws_sul_cancel(&ss->gone_sul);
	ss->stream = r;
	r->ss = ss;
	r->hello = true;
	r->resumed = resumed;
	metric_add(r->gw->m->sse_streams, 1);
	lws_callback_on_writable(r->wsi);
}

/* Resume. */

static bool
sse_secret_eq(const char *a, const char *b)
{
	unsigned char d = 0;

	if (strlen(a) != SSE_SECRET_LEN || strlen(b) != SSE_SECRET_LEN)
		return false;
	for (size_t i = 0; i < SSE_SECRET_LEN; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/* Split "<session_id>.<secret>.<n>"; false when it is not one. */
static bool
sse_cursor_parse(const char *c, char *sid, size_t sid_len, char *secret,
		 uint64_t *n)
{
	const char *d1 = strchr(c, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	char *end;

	if (d2 == NULL || (size_t)(d1 - c) >= sid_len ||
	    d2 - d1 - 1 != SSE_SECRET_LEN || d2[1] < '0' || d2[1] > '9')
		return false;
	memcpy(sid, c, (size_t)(d1 - c));
	sid[d1 - c] = '\0';
	memcpy(secret, d1 + 1, SSE_SECRET_LEN);
	secret[SSE_SECRET_LEN] = '\0';
	errno = 0;
	*n = strtoull(d2 + 1, &end, 10);
	return errno == 0 && *end == '\0';
}

/* The session the cursor names when user may resume it from there. */
static struct sse_session *
sse_resumable(struct gateway *gw, const char *cursor, const char *user,
	      uint64_t *n)
{
	char sid[48], secret[SSE_SECRET_LEN + 1];
	struct sse_session *ss;

	if (!sse_cursor_parse(cursor, sid, sizeof(sid), secret, n))
		return NULL;
	ss = sse_of(session_get(gw, sid));
	if (ss == NULL || ss->s.state == GW_CLOSING ||
	    strcmp(ss->s.user, user) != 0 ||
	    !sse_secret_eq(ss->secret, secret)) {
		LOG_DEBUG("gateway.sse_no_resume",
			  "no live session %s of %s with that secret", sid,
			  user);
		return NULL;
	}
	/* Every frame after n must still be held. */
	if (*n > ss->last_ev || *n + 1 < ss->replay_first) {
		LOG_DEBUG("gateway.sse_no_resume",
			  "session %s: cursor %llu outside %llu..%llu", sid,
			  (unsigned long long)*n,
			  (unsigned long long)ss->replay_first - 1,
			  (unsigned long long)ss->last_ev);
		return NULL;
	}
	return ss;
}

/* Forget the frames up to n, and write the rest of the replay again. */
static void
sse_rewind(struct sse_session *ss, uint64_t n)
{
	while (ss->replay_head && ss->replay_first <= n)
		sse_replay_drop_head(ss);
	session_requeue(&ss->s, ss->replay_head, ss->replay_tail, ss->replayed);
	ss->replay_head = ss->replay_tail = NULL;
	ss->replayed = 0;
	ss->replay_first = n + 1;
	ss->last_ev = n;
}

/* Request heads. */

/* The bearer token of the Authorization header into buf, or NULL. */
static const char *
sse_bearer(struct lws *wsi, char *buf, int len)
{
	if (lws_hdr_copy(wsi, buf, len, WSI_TOKEN_HTTP_AUTHORIZATION) <= 7 ||
	    strncasecmp(buf, "Bearer ", 7) != 0)
		return NULL;
	return buf + 7;
}

static const char *
sse_custom(struct lws *wsi, const char *name, char *buf, int len)
{
	return lws_hdr_custom_copy(wsi, buf, len, name, (int)strlen(name)) > 0
		       ? buf
		       : NULL;
}

/* Verify a token as a WebSocket's is verified (pinned algorithm, claims,
 * revocation): 0 with the claims, or the close code to refuse with. */
static int
sse_verify(struct gateway *gw, const char *token, struct jwt_claims *c)
{
	if (token == NULL)
		return GW_CLOSE_UNAUTHORIZED;
	return auth_verify(gw, token, c);
}

static struct sse_req *
sse_req_new(struct gateway *gw, struct lws *wsi, struct gw_http *h,
	    enum sse_kind kind)
{
	struct sse_req *r = xcalloc(1, sizeof(*r));

	r->kind = kind;
	r->gw = gw;
	r->wsi = wsi;
	h->sse = r;
	return r;
}

/* A peer that stops acknowledging what we write is dropped after the
 * pong timeout: the SSE counterpart of WebSocket's ping/pong. */
static void
sse_tcp_timeout(struct gateway *gw, struct lws *wsi)
{
	unsigned int ms = (unsigned int)gw->cfg.pong_timeout_s * 1000;
	int fd = (int)lws_get_socket_fd(wsi);

	if (fd >= 0 &&
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms)) < 0)
		LOG_DEBUG("gateway.sse_sockopt", "TCP_USER_TIMEOUT: %s",
			  strerror(errno));
}

static int
sse_stream_head(struct lws *wsi)
{
	uint8_t buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start,
				    *end = buf + sizeof(buf) - 1;

	if (lws_add_http_common_headers(
		    wsi, HTTP_STATUS_OK, "text/event-stream",
		    LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
					 (const unsigned char *)"no-store", 8,
					 &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	return 0;
}

/* Open a new session for the stream, or resume the cursor's. */
static void
sse_start(struct sse_req *r, const char *token, const char *cursor)
{
	struct gateway *gw = r->gw;
	struct jwt_claims c;
	struct sse_session *ss;
	uint64_t n;
	int code = sse_verify(gw, token, &c);

	if (code == 0 && gw->draining)
		code = GW_CLOSE_GOING_AWAY;
	if (code) {
		r->close_code = code;
		r->close_reason =
			code == GW_CLOSE_GOING_AWAY
				? "going away: reconnect to another gateway"
				: "authentication failed";
		if (code != GW_CLOSE_GOING_AWAY)
			metric_add(gw->m->closes_auth, 1);
		lws_callback_on_writable(r->wsi);
		return;
	}
	if (cursor && (ss = sse_resumable(gw, cursor, c.sub, &n)) != NULL) {
		sse_rewind(ss, n);
		if (c.exp > ss->s.token_exp)
			ss->s.token_exp = c.exp;
		metric_add(gw->m->sse_resumes, 1);
		sse_attach(r, ss, true);
		return;
	}
	ss = sse_session_new(gw);
	sse_attach(r, ss, false);
	/* The WebSocket's limits: the Origin allowlist (read from the head
	 * in sse_open) and connections per IP (held until the session ends,
	 * grace included). */
	code = r->origin ? r->origin : limits_admit(gw, r->wsi, &ss->s);
	if (code) {
		session_close(&ss->s, code, "connection refused by a limit");
		return;
	}
	code = session_auth(&ss->s, token);
	if (code)
		session_close(&ss->s, code, "authentication failed");
}

static int
sse_open(struct gateway *gw, struct lws *wsi, struct gw_http *h)
{
	struct sse_req *r = sse_req_new(gw, wsi, h, SSE_STREAM);
	/* lws stops looking through the query at an argument longer than
	 * the buffer: both buffers take a whole token. */
	char *token = xmalloc(SSE_TOKEN_MAX), *cursor = xmalloc(SSE_TOKEN_MAX);
	const char *tok = sse_bearer(wsi, token, SSE_TOKEN_MAX), *cur;

	if (tok == NULL)
		tok = lws_get_urlarg_by_name(wsi, "token=", token,
					     SSE_TOKEN_MAX);
	cur = sse_custom(wsi, "last-event-id:", cursor, SSE_CURSOR_MAX);
	if (cur == NULL)
		cur = lws_get_urlarg_by_name(wsi, "last_event_id=", cursor,
					     SSE_TOKEN_MAX);
	if (sse_stream_head(wsi) < 0) {
		free(token);
		free(cursor);
		return -1;
	}
	r->origin = limits_origin(gw, wsi);
	/* An event stream lives long: no lws timeouts, no header table. */
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	lws_http_headers_detach(wsi);
	sse_tcp_timeout(gw, wsi);
	lws_set_timer_usecs(wsi,
			    (lws_usec_t)gw->cfg.sse_ping_s * LWS_US_PER_SEC);
	sse_start(r, tok, cur);
	free(token);
	free(cursor);
	return 0;
}

/* Refuse a POST with status and a close code; the answer goes out at once
 * (close: end the connection after it) or once the body is read. */
static void
sse_refuse(struct sse_req *r, int status, int code, const char *reason)
{
	if (r->status)
		return;
	r->status = status;
	r->code = code;
	r->reason = reason;
}

static int
sse_answer(struct lws *wsi, struct gw_http *h, int status, int code,
	   const char *reason)
{
	char *body = NULL;

	/* One POST per connection: lws 4.1.6 can spin on a second POST of a
	 * kept-alive connection answered from BODY_COMPLETION. */
	h->close_after = true;
	h->sse->answered = true;
	if (status != HTTP_STATUS_NO_CONTENT) {
		body = xmalloc(256);
		snprintf(body, 256, "{\"code\":%d,\"reason\":\"%s\"}\n", code,
			 reason);
	}
	return http_answer(wsi, h, status, "application/json", body);
}

/* The head of POST /v1/send: who, which session, how big. */
static int
sse_post_head(struct gateway *gw, struct lws *wsi, struct gw_http *h)
{
	struct sse_req *r = sse_req_new(gw, wsi, h, SSE_POST);
	char *token = xmalloc(SSE_TOKEN_MAX), secret[64], clen[24];
	struct sse_session *ss = NULL;
	struct jwt_claims c = { .exp = 0 };
	int code = sse_verify(gw, sse_bearer(wsi, token, SSE_TOKEN_MAX), &c);
	long long len = -1;

	free(token);
	if (lws_hdr_copy(wsi, clen, sizeof(clen),
			 WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
		len = strtoll(clen, NULL, 10);
	if (code)
		sse_refuse(r, HTTP_STATUS_UNAUTHORIZED, code,
			   code == GW_CLOSE_TOKEN_EXPIRED ? "token expired"
							  : "bad token");
	else if (sse_custom(wsi, "x-parley-session:", r->sid, sizeof(r->sid)) ==
			 NULL ||
		 (ss = sse_of(session_get(gw, r->sid))) == NULL ||
		 ss->s.state == GW_CLOSING)
		sse_refuse(r, HTTP_STATUS_NOT_FOUND, GW_CLOSE_NO_SESSION,
			   "no such session");
	else if (sse_custom(wsi, "x-parley-secret:", secret, sizeof(secret)) ==
			 NULL ||
		 !sse_secret_eq(ss->secret, secret) ||
		 strcmp(ss->s.user, c.sub) != 0)
		sse_refuse(r, HTTP_STATUS_FORBIDDEN, GW_CLOSE_UNAUTHORIZED,
			   "not your session");
	else if (len > gw->cfg.sse_post_max)
		session_close(&ss->s, GW_CLOSE_TOO_BIG, "message too big");
	if (len <= 0 || len > gw->cfg.sse_post_max) {
		/* Not read at all: answer now and end the connection. */
		sse_refuse(r,
			   len > 0 ? HTTP_STATUS_REQ_ENTITY_TOO_LARGE
				   : HTTP_STATUS_LENGTH_REQUIRED,
			   len > 0 ? GW_CLOSE_TOO_BIG : GW_CLOSE_BAD_FRAME,
			   len > 0 ? "body too big" : "a body is required");
		h->close_after = true;
		return sse_answer(wsi, h, r->status, r->code, r->reason);
	}
	r->exp = c.exp;
	r->cap = (size_t)len;
	if (r->status == 0)
		r->body = xmalloc(r->cap);
	return 0;
}

int
sse_on_request(struct gateway *gw, struct lws *wsi, struct gw_http *h,
	       const char *uri)
{
	bool get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
	bool post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
	bool events = strcmp(uri, "/v1/events") == 0;
	bool send = strcmp(uri, "/v1/send") == 0;

	if (events && get)
		return sse_open(gw, wsi, h);
	if (send && post)
		return sse_post_head(gw, wsi, h);
	return http_answer(
		wsi, h,
		events || send ? HTTP_STATUS_METHOD_NOT_ALLOWED
			       : HTTP_STATUS_NOT_FOUND,
		NULL,
		xstrdup(events || send ? "wrong method\n" : "not found\n"));
}

/* POST bodies. */

int
sse_on_body(struct gw_http *h, const void *in, size_t len)
{
	struct sse_req *r = h->sse;

	if (r->kind != SSE_POST || r->body == NULL)
		return 0;
	if (len > r->cap - r->len)
		len = r->cap - r->len;
	memcpy(r->body + r->len, in, len);
	r->len += len;
	return 0;
}

/* One varint length; 0 and the position after it, or -1. */
static int
sse_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *out)
{
	uint64_t v = 0;

	for (int shift = 0; *pos < len && shift < 64; shift += 7) {
		uint8_t b = p[(*pos)++];

		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

/* Check the framing of a body: 0, or the close code it earns. */
static int
sse_post_check(const struct sse_req *r, int max_frame)
{
	size_t pos = 0;
	uint64_t n;

	while (pos < r->len) {
		if (sse_varint(r->body, r->len, &pos, &n) < 0 ||
		    n > r->len - pos)
			return GW_CLOSE_BAD_FRAME;
		if (n > (uint64_t)max_frame)
			return GW_CLOSE_TOO_BIG;
		pos += n;
	}
	return r->len ? 0 : GW_CLOSE_BAD_FRAME;
}

/* Hand every frame of a checked body to the session, in order. */
static void
sse_post_dispatch(struct sse_req *r, struct gw_session *s)
{
	size_t pos = 0;
	uint64_t n;

	while (pos < r->len && s->state != GW_CLOSING &&
	       sse_varint(r->body, r->len, &pos, &n) == 0) {
		session_on_message(s, r->body + pos, (size_t)n);
		pos += n;
	}
}

int
sse_on_body_done(struct lws *wsi, struct gw_http *h)
{
	struct sse_req *r = h->sse;
	struct sse_session *ss;
	int code;

	if (r->kind != SSE_POST || r->answered)
		return 0;
	ss = r->status ? NULL : sse_of(session_get(r->gw, r->sid));
	if (r->status == 0 && (ss == NULL || ss->s.state == GW_CLOSING))
		sse_refuse(r, HTTP_STATUS_NOT_FOUND, GW_CLOSE_NO_SESSION,
			   "no such session");
	if (r->status)
		return sse_answer(wsi, h, r->status, r->code, r->reason);
	metric_add(r->gw->m->sse_posts, 1);
	if (r->exp > ss->s.token_exp)
		ss->s.token_exp = r->exp;
	code = sse_post_check(r, r->gw->cfg.max_frame);
	if (code == GW_CLOSE_TOO_BIG) {
		session_close(&ss->s, code, "message too big");
		return sse_answer(wsi, h, HTTP_STATUS_REQ_ENTITY_TOO_LARGE,
				  code, "message too big");
	}
	if (code) {
		session_close(&ss->s, code, "not a ClientFrame");
		return sse_answer(wsi, h, HTTP_STATUS_BAD_REQUEST, code,
				  "not size-delimited ClientFrames");
	}
	sse_post_dispatch(r, &ss->s);
	if (ss->s.close_code == GW_CLOSE_BAD_FRAME)
		return sse_answer(wsi, h, HTTP_STATUS_BAD_REQUEST,
				  GW_CLOSE_BAD_FRAME, "not a ClientFrame");
	return sse_answer(wsi, h, HTTP_STATUS_NO_CONTENT, 0, NULL);
}

/* Streams. */

static void
sse_put_hello(struct sse_req *r, struct sse_buf *b)
{
	struct sse_session *ss = r->ss;
	struct gw_config *cfg = &r->gw->cfg;

	buf_printf(b,
		   "event: session\nid: %s.%s.%llu\n"
		   "data: {\"session_id\":\"%s\",\"secret\":\"%s\","
		   "\"resumed\":%s,\"ping_s\":%d,\"grace_ms\":%d}\n\n",
		   ss->s.id, ss->secret, (unsigned long long)ss->last_ev,
		   ss->s.id, ss->secret, r->resumed ? "true" : "false",
		   cfg->sse_ping_s, cfg->sse_grace_ms);
	r->hello = false;
}

/* One frame event; the frame moves to the replay list. */
static void
sse_put_frame(struct sse_session *ss, struct sse_buf *b, struct gw_qitem *q)
{
	size_t enc = (q->frame->len + 2) / 3 * 4;
	int n;

	buf_printf(b, "id: %s.%s.%llu\ndata: ", ss->s.id, ss->secret,
		   (unsigned long long)++ss->last_ev);
	/* lws wants room for a whole quantum and the NUL past the end. */
	buf_reserve(b, enc + 8);
	n = lws_b64_encode_string((const char *)q->frame->buf + LWS_PRE,
				  (int)q->frame->len, b->p + LWS_PRE + b->len,
				  (int)enc + 8);
	b->len += n > 0 ? (size_t)n : 0;
	buf_printf(b, "\n\n");
	session_wrote(&ss->s, q);
	if (ss->replay_tail)
		ss->replay_tail->next = q;
	else
		ss->replay_head = q;
	ss->replay_tail = q;
	ss->replayed += q->frame->len;
	while (ss->replay_head &&
	       ss->replayed > (size_t)ss->s.gw->cfg.sse_replay_max)
		sse_replay_drop_head(ss);
}

static void
sse_put_close(struct sse_req *r, struct sse_buf *b, int code,
	      const char *reason)
{
	buf_printf(b, "event: close\ndata: {\"code\":%d,\"reason\":\"%s\"}\n\n",
		   code, reason);
	r->ended = true;
}

/* What the stream writes now: the session event, a ping, frames up to a
 * chunk, and the close event once one is due. */
static void
sse_fill(struct sse_req *r, struct sse_buf *b)
{
	struct sse_session *ss = r->ss;
	struct gw_qitem *q = NULL;

	if (ss && r->hello)
		sse_put_hello(r, b);
	if (r->ping && b->len == 0)
		buf_printf(b, ": ping\n\n");
	r->ping = false;
	if (ss == NULL) {
		if (r->close_code)
			sse_put_close(r, b, r->close_code, r->close_reason);
		return;
	}
	while (b->len < SSE_CHUNK && (q = session_next(&ss->s)) != NULL)
		sse_put_frame(ss, b, q);
	if (q == NULL && ss->s.close_code)
		sse_put_close(r, b, ss->s.close_code, ss->s.close_reason);
}

int
sse_on_writable(struct lws *wsi, struct gw_http *h)
{
	struct sse_req *r = h->sse;
	struct sse_buf b = { NULL, 0, 0 };
	int n = 0;

	if (r->kind != SSE_STREAM)
		return 0;
	if (r->ended)
		return -1;
	sse_fill(r, &b);
	if (b.len)
		n = lws_write(wsi, (unsigned char *)b.p + LWS_PRE, b.len,
			      LWS_WRITE_HTTP);
	free(b.p);
	if (n < 0)
		return -1;
	if (r->ended || (r->ss && session_has_output(&r->ss->s)))
		lws_callback_on_writable(wsi);
	return 0;
}

int
sse_on_timer(struct lws *wsi, struct gw_http *h)
{
	struct sse_req *r = h->sse;

	if (r->kind != SSE_STREAM)
		return 0;
	r->ping = true;
	lws_callback_on_writable(wsi);
	lws_set_timer_usecs(wsi,
			    (lws_usec_t)r->gw->cfg.sse_ping_s * LWS_US_PER_SEC);
	return 0;
}

void
sse_release(struct gw_http *h)
{
	struct sse_req *r = h->sse;

	h->sse = NULL;
	sse_detach(r);
	free(r->body);
	free(r);
}

void
sse_stop(struct gateway *gw)
{
	struct sse_session **list = NULL;
	size_t n = 0, pos = 0;
	const char *key;
	void *val;

	/* Streams still open end with the context (and free theirs then). */
	while (map_next(&gw->sessions, &pos, &key, &val)) {
		struct sse_session *ss = sse_of(val);

		if (ss && ss->stream == NULL) {
			list = xrealloc(list, (n + 1) * sizeof(*list));
			list[n++] = ss;
		}
	}
	for (size_t i = 0; i < n; i++)
		sse_session_free(list[i]);
	free(list);
}
