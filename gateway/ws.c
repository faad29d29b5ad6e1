/* The libwebsockets side of the gateway: the context, the HTTP endpoints
 * (/livez, /readyz), and the parley.v1 WebSocket protocol callbacks. All
 * of it runs on the one service thread. */
#include <errno.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gateway.h"
#include "log.h"
#include "sig.h"
#include "xalloc.h"

#define WS_TICK_US   (200 * LWS_US_PER_MS)
#define WS_TOKEN_MAX 8192

static lws_sorted_usec_list_t ws_tick_sul;
static unsigned ws_ticks;
static struct lws_context *ws_ctx;
static struct ev_loop *ws_loop; /* NULL with PARLEY_GATEWAY_LOOP=poll */

static struct gateway *
ws_gateway(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

static void
ws_wake(struct gw_session *s)
{
	lws_callback_on_writable(s->wsi);
}

/* Several queued frames go out in one write of at most this many bytes
 * (a frame bigger than what is left goes in the next write). */
#define WS_COALESCE_MAX (64 * 1024)
#define WS_HEADER_MAX	4 /* ws_header's largest: payloads under 64 KiB */

static uint8_t *ws_out; /* the service thread's coalescing buffer */

/* A server frame's header (RFC 6455 5.2: FIN, binary, not masked) for a
 * payload that fits a coalesced write (under 64 KiB). */
static size_t
ws_header(uint8_t *h, size_t len)
{
	h[0] = 0x82;
	if (len < 126) {
		h[1] = (uint8_t)len;
		return 2;
	}
	h[1] = 126;
	h[2] = (uint8_t)(len >> 8);
	h[3] = (uint8_t)len;
	return 4;
}

/* Write the oldest queued frames: one alone as lws frames it, several
 * that fit WS_COALESCE_MAX framed here into one buffer and written raw
 * (one syscall instead of one per frame; what the kernel does not take
 * lws keeps and sends first). 0 when nothing was queued, -1 when the
 * write failed (lws closes the connection). */
static int
ws_write_queue(struct gw_session *s)
{
	struct gw_qitem *q = session_next(s);
	size_t used = 0;
	int n;

	if (q == NULL)
		return 0;
	if (s->head == NULL ||
	    q->frame->len + s->head->frame->len + 2 * WS_HEADER_MAX >
		    WS_COALESCE_MAX) {
		n = lws_write(s->wsi, q->frame->buf + LWS_PRE, q->frame->len,
			      LWS_WRITE_BINARY);
		if (n >= 0)
			session_wrote(s, q);
		frame_unref(q->frame);
		free(q);
		return n < 0 ? -1 : 1;
	}
	if (ws_out == NULL)
		ws_out = xmalloc(LWS_PRE + WS_COALESCE_MAX);
	do {
		uint8_t *p = ws_out + LWS_PRE + used;

		used += ws_header(p, q->frame->len);
		memcpy(ws_out + LWS_PRE + used, q->frame->buf + LWS_PRE,
		       q->frame->len);
		used += q->frame->len;
		session_wrote(s, q);
		frame_unref(q->frame);
		free(q);
		q = NULL;
		if (s->head && used + s->head->frame->len + WS_HEADER_MAX <=
				       WS_COALESCE_MAX)
			q = session_next(s);
	} while (q);
	n = lws_write(s->wsi, ws_out + LWS_PRE, used, LWS_WRITE_RAW);
	if (n < 0)
		return -1;
	metric_add(s->gw->m->writes_coalesced, 1);
	return 1;
}

/* A frame for an idle session, or the frames an inbox drain brought it,
 * go to the socket now: no writable round trip (with epoll, two
 * epoll_ctl calls and a loop turn per delivery). What the kernel does not
 * take lws keeps and sends first (lws_partial_buffered); the rest waits
 * for writable. */
static void
ws_flush(struct gw_session *s)
{
	if (lws_partial_buffered(s->wsi) || ws_write_queue(s) >= 0) {
		if (session_has_output(s))
			lws_callback_on_writable(s->wsi);
	}
}

static const struct gw_transport ws_transport = { "websocket", ws_wake,
						  ws_flush };

static int
callback_http(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	      void *in, size_t len)
{
	struct gw_http *h = user;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return http_on_request(ws_gateway(wsi), wsi, h, in);
	case LWS_CALLBACK_HTTP_BODY:
		return h && h->sse ? sse_on_body(h, in, len) : 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		/* Never lws' default: it would end the transaction before
		 * our answer is out (the writable callback ends it). */
		return h && h->sse ? sse_on_body_done(wsi, h) : 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return http_on_writable(wsi, h);
	case LWS_CALLBACK_TIMER:
		return h && h->sse ? sse_on_timer(wsi, h) : 0;
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (h)
			http_release(h);
		break;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		inbox_drain(ws_gateway(wsi));
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static void
on_auth_deadline(lws_sorted_usec_list_t *sul)
{
	struct gw_session *s =
		lws_container_of(sul, struct gw_session, auth_sul);

	if (s->state == GW_AUTH_WAIT)
		session_close(s, GW_CLOSE_AUTH_TIMEOUT,
			      "no token within the authentication deadline");
}

static void
ws_on_open(struct gateway *gw, struct lws *wsi, struct gw_session *s)
{
	char *token = xmalloc(WS_TOKEN_MAX);
	const char *value;
	int code;

	s->wsi = wsi;
	session_open(gw, &ws_transport, s);
	s->rx_ms = gw_now_ms();
	/* A fixed send buffer: with the kernel's autotuning a client that
	 * stops reading parks up to 4 MiB in it before PARLEY_OUTQ_MAX is
	 * ever reached (G6 wants both bounded). */
	if (gw->cfg.sndbuf > 0 &&
	    setsockopt(lws_get_socket_fd(wsi), SOL_SOCKET, SO_SNDBUF,
		       &gw->cfg.sndbuf, sizeof(gw->cfg.sndbuf)) < 0)
		LOG_WARN("gateway.sndbuf", "SO_SNDBUF: %s", strerror(errno));
	code = limits_origin(gw, wsi);
	if (code == 0)
		code = limits_admit(gw, wsi, s);
	if (code) {
		session_close(s, code, "connection refused by a limit");
		free(token);
		return;
	}
	/* The value starts after "token=" inside the buffer. */
	value = lws_get_urlarg_by_name(wsi, "token=", token, WS_TOKEN_MAX);
	if (value) {
		code = session_auth(s, value);
		if (code)
			session_close(s, code, "authentication failed");
	} else {
		lws_sul_schedule(gw->ctx, 0, &s->auth_sul, on_auth_deadline,
				 (lws_usec_t)gw->cfg.auth_timeout_ms *
					 LWS_US_PER_MS);
	}
	free(token);
}

/* Collect fragments; hand complete messages to the session. The size
 * check counts what the frame header still announces, so a frame claiming
 * more than the limit (up to 2^63 bytes) is refused at its first bytes. */
static void
ws_on_rx(struct gw_session *s, struct lws *wsi, const uint8_t *in, size_t len)
{
	bool final = lws_is_final_fragment(wsi);
	size_t announced = lws_remaining_packet_payload(wsi);

	if (s->state == GW_CLOSING)
		return;
	if (!lws_frame_is_binary(wsi)) {
		session_close(s, GW_CLOSE_BAD_FRAME, "binary frames only");
		return;
	}
	if (s->rx_len + len > (size_t)s->gw->cfg.max_frame ||
	    announced > (size_t)s->gw->cfg.max_frame - s->rx_len - len) {
		session_close(s, GW_CLOSE_TOO_BIG, "message too big");
		return;
	}
	if (s->rx == NULL && final) {
		session_on_message(s, in, len);
		return;
	}
	if (s->rx == NULL)
		s->rx = xmalloc((size_t)s->gw->cfg.max_frame);
	memcpy(s->rx + s->rx_len, in, len);
	s->rx_len += len;
	if (!final)
		return;
	session_on_message(s, s->rx, s->rx_len);
	free(s->rx);
	s->rx = NULL;
	s->rx_len = 0;
}

/* Anything from the peer shows it is there. */
static void
ws_alive(struct gw_session *s)
{
	s->rx_ms = gw_now_ms();
	s->ping_out = false;
}

/* Keepalive, swept once a second (on_tick) instead of lws's per-connection
 * validity timers: lws 4.1 keeps those in one sorted list and re-inserts
 * a connection's timer with a walk along the list at every ping and pong,
 * so idle connections cost O(n) each — 20 us per connection-second at
 * 9,000 per gateway (docs/PERFORMANCE.md, S3). A connection silent for
 * PARLEY_PING_S gets a ping; one silent for PARLEY_PONG_TIMEOUT_S is
 * dropped (its session goes, so presence sees the user leave). */
static void
ws_keepalive(struct gateway *gw)
{
	int64_t now = gw_now_ms();
	size_t pos = 0;
	const char *key;
	void *val;

	while (map_next(&gw->sessions, &pos, &key, &val)) {
		struct gw_session *s = val;
		int64_t idle = now - s->rx_ms;

		if (s->wsi == NULL || s->state == GW_CLOSING)
			continue;
		if (idle >= (int64_t)gw->cfg.pong_timeout_s * 1000) {
			LOG_DEBUG("gateway.pong_timeout",
				  "%s silent for %lld ms: dropped", s->id,
				  (long long)idle);
			lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK,
					LWS_TO_KILL_ASYNC);
		} else if (idle >= (int64_t)gw->cfg.ping_s * 1000 &&
			   !s->ping_out) {
			s->ping_out = true;
			s->ping_due = true;
			lws_callback_on_writable(s->wsi);
		}
	}
}

/* Write a due ping, else the oldest queued frame; close once a pending
 * close is due. */
static int
ws_on_writable(struct gw_session *s)
{
	int n;

	if (s->ping_due && s->close_code == 0) {
		/* Not empty: lws 4.1 does not pass an empty pong up
		 * (LWS_CALLBACK_RECEIVE_PONG), so it would not count. */
		uint8_t ping[LWS_PRE + 4] = { 0 };

		memcpy(ping + LWS_PRE, "prly", 4);
		s->ping_due = false;
		if (lws_write(s->wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 0)
			return -1;
		if (session_has_output(s))
			lws_callback_on_writable(s->wsi);
		return 0;
	}
	n = ws_write_queue(s);
	if (n == 0) {
		if (s->close_code == 0)
			return 0;
		lws_close_reason(s->wsi, (enum lws_close_status)s->close_code,
				 (unsigned char *)s->close_reason,
				 strlen(s->close_reason));
		return -1;
	}
	if (n < 0)
		return -1;
	if (session_has_output(s))
		lws_callback_on_writable(s->wsi);
	return 0;
}

/* RFC 6455 4.2.1: version 13 only (lws also takes the drafts' 8). */
static bool
ws_version_ok(struct lws *wsi)
{
	char v[8];

	return lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_VERSION) == 2 &&
	       strcmp(v, "13") == 0;
}

/* A close from the client that lws would echo although RFC 6455 7.4 makes
 * it a protocol error: a 1-byte payload, or a code of 5000 or more (lws
 * itself answers the reserved codes below 3000 with 1002). */
static int
ws_on_peer_close(struct lws *wsi, const uint8_t *in, size_t len)
{
	if (len != 1 && (len < 2 || ((in[0] << 8) | in[1]) < 5000))
		return 0;
	lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR,
			 (unsigned char *)"bad close", 9);
	return -1;
}

static int
callback_parley(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		void *in, size_t len)
{
	struct gw_session *s = user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return ws_gateway(wsi)->draining || !ws_version_ok(wsi) ? -1
									: 0;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		/* lws answers the close; nothing may follow it. */
		if (s->state != GW_AUTH_WAIT)
			s->state = GW_CLOSING;
		return ws_on_peer_close(wsi, in, len);
	case LWS_CALLBACK_ESTABLISHED:
		ws_on_open(ws_gateway(wsi), wsi, s);
		break;
	case LWS_CALLBACK_RECEIVE:
		ws_alive(s);
		ws_on_rx(s, wsi, in, len);
		break;
	case LWS_CALLBACK_RECEIVE_PONG:
		ws_alive(s);
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return ws_on_writable(s);
	case LWS_CALLBACK_CLOSED:
		lws_sul_cancel(&s->auth_sul);
		limits_release(ws_gateway(wsi), s);
		session_destroy(s);
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols ws_protocols[] = {
	{ "http", callback_http, sizeof(struct gw_http), 0, 0, NULL, 0 },
	/* A 4 KiB receive buffer per connection: bigger messages arrive in
	 * pieces and ws_on_rx joins them (up to PARLEY_MAX_FRAME). Sends are
	 * offered to the kernel up to 256 KiB at a time (lws would otherwise
	 * cut them at the receive buffer's size). */
	{ "parley.v1", callback_parley, sizeof(struct gw_session), 4096, 0,
	  NULL, 256 * 1024 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static void
on_tick(lws_sorted_usec_list_t *sul)
{
	struct gateway *gw = lws_context_user(ws_ctx);

	if (sig_stopping() && !gw->draining)
		drain_start(gw);
	if (gw->draining)
		drain_step(gw);
	if (gw->stopped) {
		lws_cancel_service(ws_ctx);
		return;
	}
	if (++ws_ticks % (LWS_US_PER_SEC / WS_TICK_US) == 0)
		ws_keepalive(gw);
	lws_sul_schedule(ws_ctx, 0, sul, on_tick, WS_TICK_US);
}

/* With libev (the default) lws keeps its descriptors in epoll, so a wake
 * costs what it serves; lws's own poll(2) loop scans every connection on
 * every wake-up, which at tens of thousands of idle connections is most
 * of the gateway's CPU (docs/PERFORMANCE.md). The loop is ours ("foreign")
 * so the service loop below keeps its shape. */
static struct lws_context *
ws_context(struct gateway *gw)
{
	static lws_retry_bo_t retry;
	static void *loops[1];
	struct lws_context_creation_info info;

	memset(&info, 0, sizeof(info));
	/* Zero: no lws validity timers; ws_keepalive pings and drops. */
	retry.secs_since_valid_ping = 0;
	retry.secs_since_valid_hangup = 0;
	info.port = gw->cfg.port;
	info.iface = gw->cfg.bind;
	info.protocols = ws_protocols;
	info.user = gw;
	info.retry_and_idle_policy = &retry;
	info.timeout_secs = (unsigned int)gw->cfg.handshake_timeout_s;
	/* A connection still sending its HTTP upgrade (slowloris) is dropped
	 * once its header has been idle this long. */
	info.timeout_secs_ah_idle = (unsigned int)gw->cfg.handshake_timeout_s;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 |
		       LWS_SERVER_OPTION_DISABLE_IPV6;
	info.vhost_name = "parley";
	if (gw->cfg.loop == GW_LOOP_EPOLL) {
		ws_loop = ev_loop_new(EVBACKEND_EPOLL);
		if (ws_loop == NULL) {
			LOG_ERROR("gateway.loop",
				  "cannot create an epoll loop");
			return NULL;
		}
		loops[0] = ws_loop;
		info.foreign_loops = loops;
		info.options |= LWS_SERVER_OPTION_LIBEV;
	}
	return lws_create_context(&info);
}

static void
ws_log(int level, const char *line)
{
	size_t n = strlen(line);

	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	if (level & LLL_ERR)
		LOG_WARN("gateway.lws", "%.*s", (int)n, line);
}

int
ws_run(struct gateway *gw)
{
	lws_set_log_level(LLL_ERR, ws_log);
	gw->ctx = ws_ctx = ws_context(gw);
	if (gw->ctx == NULL) {
		LOG_ERROR("gateway.listen", "cannot listen on %s:%d",
			  gw->cfg.bind, gw->cfg.port);
		return -1;
	}
	lws_sul_schedule(gw->ctx, 0, &ws_tick_sul, on_tick, WS_TICK_US);
	if (link_open(gw) < 0 || presence_open(gw) < 0 || subs_open(gw) < 0 ||
	    device_open(gw) < 0) {
		LOG_ERROR("gateway.link", "cannot open NNG links");
		return -1;
	}
	auth_open(gw);
	LOG_INFO("gateway.start", "gateway up on ws://%s:%d/, deliveries on %s",
		 gw->cfg.bind, gw->cfg.port, gw->cfg.nng_listen);
	while (!gw->stopped) {
		if (ws_loop)
			ev_run(ws_loop, EVRUN_ONCE);
		else if (lws_service(gw->ctx, 0) < 0)
			break;
	}
	LOG_INFO("gateway.stop", "stopping");
	sse_stop(gw);
	auth_close(gw);
	link_close(gw);
	device_close(gw);
	presence_close(gw);
	subs_close(gw);
	inbox_close(gw);
	lws_context_destroy(gw->ctx);
	if (ws_loop)
		ev_loop_destroy(ws_loop);
	inbox_free(gw);
	presence_free(gw);
	subs_free(gw);
	return 0;
}
