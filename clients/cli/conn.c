/* A client WebSocket session on libwebsockets 4.1: one lws context per
 * session, frames written only from CLIENT_WRITEABLE, received frames
 * unpacked into a queue that conn_recv() drains. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

#include "conn.h"
#include "xalloc.h"

/* Largest ServerFrame accepted; a bigger one is a broken server. */
#define CONN_MAX_FRAME (16u << 20)
#define CONN_RX_BUFFER 65536
/* How long conn_free() waits for the close handshake. */
#define CONN_CLOSE_MS 300

enum conn_state { CONN_CONNECTING, CONN_OPEN, CONN_CLOSED };

/* A packed ClientFrame waiting for CLIENT_WRITEABLE; data has LWS_PRE
 * bytes of headroom before the payload. */
struct conn_out {
	struct conn_out *next;
	size_t len;
	unsigned char data[];
};

/* A received frame waiting for conn_recv(). */
struct conn_in {
	struct conn_in *next;
	Parley__V1__ServerFrame *frame;
};

struct conn {
	struct lws_context *ctx;
	struct lws *wsi;	     /* NULL once lws dropped the connection */
	lws_sorted_usec_list_t wake; /* ends lws_service() at a deadline */
	enum conn_state state;
	int err; /* why it closed, -errno */
	int close_code;
	bool closing; /* conn_free() asked for a close */
	char *url;
	Parley__V1__ServerFrame *welcome;
	unsigned char *rx; /* fragments of the frame being read */
	size_t rx_len;
	struct conn_out *out_head, **out_tail;
	struct conn_in *in_head, **in_tail;
};

static uint64_t conn_next_request_id = 1;

int64_t
conn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool
conn_expired(int64_t deadline_ms)
{
	return deadline_ms >= 0 && conn_now_ms() >= deadline_ms;
}

/* Mark the session closed for reason err unless a reason is known. */
static void
conn_set_closed(struct conn *c, int err)
{
	if (c->state != CONN_CLOSED && !c->err)
		c->err = err;
	c->state = CONN_CLOSED;
	c->wsi = NULL;
}

static void
conn_push_in(struct conn *c, Parley__V1__ServerFrame *f)
{
	struct conn_in *in = xmalloc(sizeof(*in));

	in->next = NULL;
	in->frame = f;
	*c->in_tail = in;
	c->in_tail = &in->next;
}

static Parley__V1__ServerFrame *
conn_pop_in(struct conn *c)
{
	struct conn_in *in = c->in_head;
	Parley__V1__ServerFrame *f = in->frame;

	c->in_head = in->next;
	if (!c->in_head)
		c->in_tail = &c->in_head;
	free(in);
	return f;
}

static bool
conn_is_unauthenticated(const Parley__V1__ServerFrame *f)
{
	return f->msg_case == PARLEY__V1__SERVER_FRAME__MSG_ERROR &&
	       f->error->code ==
		       PARLEY__V1__ERROR_CODE__ERROR_CODE_UNAUTHENTICATED;
}

/* A whole frame arrived: keep the Welcome, queue the rest. Returns -1 to
 * make lws close the connection. */
static int
conn_on_frame(struct conn *c, const unsigned char *buf, size_t len)
{
	Parley__V1__ServerFrame *f;

	f = parley__v1__server_frame__unpack(NULL, len, buf);
	if (!f) {
		fprintf(stderr, "parley: undecodable frame from %s\n", c->url);
		return 0;
	}
	if (!c->welcome &&
	    f->msg_case == PARLEY__V1__SERVER_FRAME__MSG_WELCOME) {
		c->welcome = f;
		return 0;
	}
	if (!c->welcome && conn_is_unauthenticated(f)) {
		fprintf(stderr, "parley: %s\n", f->error->message);
		parley__v1__server_frame__free_unpacked(f, NULL);
		c->err = -EACCES;
		return -1;
	}
	conn_push_in(c, f);
	return 0;
}

/* Gather the fragments of one WebSocket message, then decode it. */
static int
conn_on_receive(struct conn *c, struct lws *wsi, const void *in, size_t len)
{
	int rc;

	if (lws_is_first_fragment(wsi))
		c->rx_len = 0;
	if (c->rx_len + len > CONN_MAX_FRAME) {
		fprintf(stderr, "parley: frame over %u bytes\n",
			CONN_MAX_FRAME);
		return -1;
	}
	c->rx = xrealloc(c->rx, c->rx_len + len + 1);
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return 0;
	if (!lws_frame_is_binary(wsi))
		return 0; /* parley.v1 speaks binary only; ignore text */
	rc = conn_on_frame(c, c->rx, c->rx_len);
	c->rx_len = 0;
	return rc;
}

/* Write one queued frame; ask for another turn while more wait. */
static int
conn_on_writeable(struct conn *c, struct lws *wsi)
{
	struct conn_out *o = c->out_head;
	int n;

	if (!o) {
		if (!c->closing)
			return 0;
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		return -1;
	}
	n = lws_write(wsi, o->data + LWS_PRE, o->len, LWS_WRITE_BINARY);
	if (n < (int)o->len)
		return -1;
	c->out_head = o->next;
	if (!c->out_head)
		c->out_tail = &c->out_head;
	free(o);
	if (c->out_head || c->closing)
		lws_callback_on_writable(wsi);
	return 0;
}

static void
conn_on_peer_close(struct conn *c, const unsigned char *in, size_t len)
{
	if (len >= 2)
		c->close_code = (in[0] << 8) | in[1];
}

/* The error a close code stands for (docs/PROTOCOL.md lists them). */
static int
conn_close_err(int code)
{
	/* Terminal for this token or origin: 4001 bad token, 4002 expired,
	 * 4003 no token in time, 4006 revoked, 4008 origin not allowed. */
	if ((code >= 4001 && code <= 4003) || code == 4006 || code == 4008)
		return -EACCES;
	if (code == 4004)
		return -EPROTO;
	if (code == 1009)
		return -EMSGSIZE;
	return -ECONNRESET;
}

static void
conn_on_connect_error(struct conn *c, struct lws *wsi, const char *why)
{
	int status = lws_http_client_http_response(wsi);

	if (status == 401 || status == 403) {
		fprintf(stderr, "parley: %s refused the token (HTTP %d)\n",
			c->url, status);
		conn_set_closed(c, -EACCES);
		return;
	}
	if (getenv("PARLEY_DEBUG"))
		fprintf(stderr, "parley: %s: %s\n", c->url, why ? why : "?");
	conn_set_closed(c, -ECONNREFUSED);
}

static void
conn_on_closed(struct conn *c)
{
	int err = conn_close_err(c->close_code);

	conn_set_closed(c, c->state == CONN_OPEN ? err : -ECONNREFUSED);
}

static void
conn_on_established(struct conn *c, struct lws *wsi)
{
	c->state = CONN_OPEN;
	if (c->out_head)
		lws_callback_on_writable(wsi);
}

static int
conn_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	      void *in, size_t len)
{
	struct conn *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;

	(void)user;
	if (!c)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		conn_on_connect_error(c, wsi, in);
		return 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		conn_on_established(c, wsi);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return conn_on_receive(c, wsi, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return conn_on_writeable(c, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		conn_on_peer_close(c, in, len);
		return 0;
	case LWS_CALLBACK_CLIENT_CLOSED:
		conn_on_closed(c);
		return 0;
	default:
		return 0;
	}
}

static const struct lws_protocols conn_protocols[] = {
	{
		.name = "parley.v1",
		.callback = conn_callback,
		.rx_buffer_size = CONN_RX_BUFFER,
	},
	{ .name = NULL },
};

static void
conn_on_wake(lws_sorted_usec_list_t *sul)
{
	struct conn *c = lws_container_of(sul, struct conn, wake);

	/* Make sure the poll that follows returns at once. */
	lws_cancel_service(c->ctx);
}

/* Run one round of lws, returning at the latest at deadline_ms. */
static void
conn_service(struct conn *c, int64_t deadline_ms)
{
	if (deadline_ms >= 0) {
		int64_t left = deadline_ms - conn_now_ms();

		lws_sul_schedule(c->ctx, 0, &c->wake, conn_on_wake,
				 (left > 0 ? left : 0) * LWS_US_PER_MS);
	}
	lws_service(c->ctx, 0);
	lws_sul_cancel(&c->wake);
}

static struct lws_context *
conn_context(bool tls)
{
	struct lws_context_creation_info info;
	const char *dbg = getenv("PARLEY_DEBUG");

	lws_set_log_level(dbg && *dbg ? LLL_ERR | LLL_WARN | LLL_NOTICE : 0,
			  NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = conn_protocols;
	info.gid = -1;
	info.uid = -1;
	info.fd_limit_per_thread = 16;
	if (tls)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	return lws_create_context(&info);
}

/* The request path: "/" path plus token as a query parameter, with all but
 * unreserved characters percent-encoded (a JWT needs none; --token might). */
static char *
conn_path(const char *path, const char *token)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(path), tl = strlen(token);
	char *p = xmalloc(n + 3 * tl + 16), *o;

	o = p + sprintf(p, "/%s%stoken=", path, strchr(path, '?') ? "&" : "?");
	for (const unsigned char *t = (const void *)token; *t; t++) {
		if (isalnum(*t) || strchr("-._~", *t)) {
			*o++ = (char)*t;
			continue;
		}
		*o++ = '%';
		*o++ = hex[*t >> 4];
		*o++ = hex[*t & 15];
	}
	*o = '\0';
	return p;
}

/* Split url and start connecting. Returns 0 or -errno. */
static int
conn_start(struct conn *c, const char *token)
{
	struct lws_client_connect_info ci;
	char *tmp = xstrdup(c->url), *path, host[300];
	const char *prot, *addr, *p;
	int port, rc = -EINVAL;

	if (lws_parse_uri(tmp, &prot, &addr, &port, &p) || !*addr ||
	    (strcmp(prot, "ws") != 0 && strcmp(prot, "wss") != 0))
		goto out_tmp;
	rc = -ENOMEM;
	c->ctx = conn_context(!strcmp(prot, "wss"));
	if (!c->ctx)
		goto out_tmp;
	path = conn_path(p, token);
	snprintf(host, sizeof(host), "%s:%d", addr, port);
	memset(&ci, 0, sizeof(ci));
	ci.context = c->ctx;
	ci.address = addr;
	ci.port = port;
	ci.path = path;
	ci.host = host;
	ci.origin = host;
	ci.protocol = "parley.v1";
	ci.ssl_connection = !strcmp(prot, "wss") ? LCCSCF_USE_SSL : 0;
	ci.opaque_user_data = c;
	ci.pwsi = &c->wsi;
	rc = lws_client_connect_via_info(&ci) ? 0 : -ECONNREFUSED;
	free(path);
out_tmp:
	free(tmp);
	return rc;
}

static struct conn *
conn_alloc(const char *url)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->url = xstrdup(url);
	c->out_tail = &c->out_head;
	c->in_tail = &c->in_head;
	return c;
}

int
conn_open(const char *url, const char *token, int64_t deadline_ms,
	  struct conn **out)
{
	struct conn *c = conn_alloc(url);
	int rc = conn_start(c, token);

	while (!rc && !c->welcome) {
		if (c->state == CONN_CLOSED)
			rc = c->err ? c->err : -ECONNREFUSED;
		else if (conn_expired(deadline_ms))
			rc = -ETIMEDOUT;
		else
			conn_service(c, deadline_ms);
	}
	if (rc) {
		conn_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* Ask lws for a clean close and give the handshake a moment. */
static void
conn_close(struct conn *c)
{
	int64_t deadline = conn_now_ms() + CONN_CLOSE_MS;

	if (!c->wsi || c->state != CONN_OPEN)
		return;
	c->closing = true;
	lws_callback_on_writable(c->wsi);
	while (c->state != CONN_CLOSED && !conn_expired(deadline))
		conn_service(c, deadline);
}

void
conn_free(struct conn *c)
{
	if (!c)
		return;
	if (c->ctx) {
		conn_close(c);
		lws_sul_cancel(&c->wake);
		lws_context_destroy(c->ctx);
	}
	while (c->out_head) {
		struct conn_out *o = c->out_head;

		c->out_head = o->next;
		free(o);
	}
	while (c->in_head)
		parley__v1__server_frame__free_unpacked(conn_pop_in(c), NULL);
	if (c->welcome)
		parley__v1__server_frame__free_unpacked(c->welcome, NULL);
	free(c->rx);
	free(c->url);
	free(c);
}

const Parley__V1__Welcome *
conn_welcome(const struct conn *c)
{
	return c->welcome->welcome;
}

const char *
conn_url(const struct conn *c)
{
	return c->url;
}

int
conn_close_code(const struct conn *c)
{
	return c->close_code;
}

int
conn_send(struct conn *c, Parley__V1__ClientFrame *f)
{
	struct conn_out *o;
	size_t len;

	if (c->state == CONN_CLOSED || !c->wsi)
		return -ENOTCONN;
	f->request_id = conn_next_request_id++;
	len = parley__v1__client_frame__get_packed_size(f);
	o = xmalloc(sizeof(*o) + LWS_PRE + len);
	o->next = NULL;
	o->len = parley__v1__client_frame__pack(f, o->data + LWS_PRE);
	*c->out_tail = o;
	c->out_tail = &o->next;
	if (c->state == CONN_OPEN)
		lws_callback_on_writable(c->wsi);
	return 0;
}

int
conn_recv(struct conn *c, int64_t deadline_ms, Parley__V1__ServerFrame **out)
{
	while (!c->in_head) {
		if (c->state == CONN_CLOSED)
			return c->err ? c->err : -ECONNRESET;
		if (conn_expired(deadline_ms))
			return -ETIMEDOUT;
		conn_service(c, deadline_ms);
	}
	*out = conn_pop_in(c);
	return 0;
}

int
conn_wait(struct conn *c, int64_t deadline_ms,
	  int (*on_frame)(void *arg, const Parley__V1__ServerFrame *f),
	  void *arg)
{
	Parley__V1__ServerFrame *f;
	int rc;

	do {
		rc = conn_recv(c, deadline_ms, &f);
		if (rc)
			return rc;
		rc = on_frame(arg, f);
		parley__v1__server_frame__free_unpacked(f, NULL);
	} while (!rc);
	return rc;
}

int
conn_request(struct conn *c, Parley__V1__ClientFrame *f, int64_t deadline_ms,
	     Parley__V1__ServerFrame **reply)
{
	Parley__V1__ServerFrame *r;
	int rc = conn_send(c, f);

	while (!rc) {
		rc = conn_recv(c, deadline_ms, &r);
		if (rc)
			break;
		if (r->request_id == f->request_id) {
			*reply = r;
			return 0;
		}
		parley__v1__server_frame__free_unpacked(r, NULL);
	}
	return rc;
}
