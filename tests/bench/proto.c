/* parley-bench protocol adapters: parley v1 (ClientFrame/ServerFrame, one
 * per binary frame, token in the upgrade URL), Centrifugo's protobuf client
 * protocol (varint-delimited Command/Reply, several per frame, Connect with
 * a JWT then Subscribe/Publish), and raw (the payload is the frame: the
 * floor server). Field numbers follow proto/parley/v1/client.proto and
 * centrifugal/protocol definitions/client.proto; encoded by hand. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define MEMBER_CHUNK 1000

/* Field numbers of parley.v1 ServerFrame / ClientFrame. */
enum {
	PF_REQUEST_ID = 1,
	PF_WELCOME = 10,
	PF_SEND_ACK = 11,
	PF_MESSAGE = 12,
	PF_SYNC_RESULT = 13,
	PF_ROOM_EVENT = 14,
	PF_ERROR = 19,
	PC_SEND = 11,
	PC_SYNC = 12,
	PC_CREATE_ROOM = 14,
	PC_ADD_MEMBERS = 15,
};

/* Field numbers of centrifugal Command / Reply. */
enum {
	CC_ID = 1,
	CC_CONNECT = 4,
	CC_SUBSCRIBE = 5,
	CC_PUBLISH = 7,
	CR_ERROR = 2,
	CR_PUSH = 4,
	CR_CONNECT = 5,
	CR_SUBSCRIBE = 6,
	CR_PUBLISH = 8,
};

const char *
proto_subprotocol(enum bench_proto p)
{
	switch (p) {
	case PROTO_PARLEY:
		return "parley.v1";
	case PROTO_CENTRIFUGO:
		return "centrifuge-protobuf";
	default:
		return NULL;
	}
}

void
proto_user(struct bench *b, const struct conn *c, char *out, size_t cap)
{
	if (b->cfg.idle)
		snprintf(out, cap, "%s-i%u", b->cfg.prefix, c->idx);
	else if (c->role == ROLE_SEND)
		snprintf(out, cap, "%s-s%u-tx", b->cfg.prefix, c->stream);
	else
		snprintf(out, cap, "%s-s%u-r%u", b->cfg.prefix, c->stream,
			 c->idx);
}

static size_t
b64url(const uint8_t *p, size_t n, char *out)
{
	static const char a[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = a[v >> 6 & 63];
		if (i + 2 < n)
			out[o++] = a[v & 63];
	}
	out[o] = 0;
	return o;
}

/* An HS256 JWT for user (sub) valid for a day. */
static void
proto_token(const char *secret, const char *user, char *out)
{
	static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	char claims[256];
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;
	long now = (long)time(NULL);
	size_t o;
	int n;

	n = snprintf(claims, sizeof(claims),
		     "{\"sub\":\"%s\",\"iat\":%ld,\"exp\":%ld}", user, now,
		     now + 86400);
	o = b64url((const uint8_t *)hdr, strlen(hdr), out);
	out[o++] = '.';
	o += b64url((const uint8_t *)claims, (size_t)n, out + o);
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (uint8_t *)out, o, mac,
	     &mac_len);
	out[o++] = '.';
	b64url(mac, mac_len, out + o);
}

void
proto_path(struct bench *b, struct conn *c, const struct url *u, char *out,
	   size_t cap)
{
	char user[160], tok[1024];

	if (b->cfg.proto != PROTO_PARLEY) {
		snprintf(out, cap, "%s", u->path);
		return;
	}
	proto_user(b, c, user, sizeof(user));
	proto_token(b->cfg.secret, user, tok);
	snprintf(out, cap, "%s%stoken=%s", u->path,
		 strchr(u->path, '?') ? "&" : "?", tok);
}

/* ---- parley v1 ---- */

static void
parley_member(struct bench *b, struct pbuf *f, unsigned field, uint32_t stream,
	      uint32_t i)
{
	char user[160];

	snprintf(user, sizeof(user), "%s-s%u-r%u", b->cfg.prefix, stream, i);
	pb_str(f, field, user);
}

/* The group's id as the router derives it, should its reply not say. */
static void
parley_group_id(struct bench *b, struct conn *c, char *out)
{
	char user[160], seed[400];
	unsigned char h[SHA256_DIGEST_LENGTH];

	proto_user(b, c, user, sizeof(user));
	snprintf(seed, sizeof(seed), "%s\n%s-s%u", user, b->cfg.prefix,
		 c->stream);
	SHA256((unsigned char *)seed, strlen(seed), h);
	strcpy(out, "g:");
	for (int i = 0; i < 12; i++)
		sprintf(out + 2 + 2 * i, "%02x", h[i]);
}

/* The next setup request of a group sender: CreateRoom with the first
 * members, then AddMembers in chunks (a frame holds 64 KiB). */
static void
parley_setup_next(struct bench *b, struct conn *c)
{
	struct pbuf *f = &b->scratch;
	uint32_t end = c->add_off + MEMBER_CHUNK;
	char crid[160];
	size_t m;

	if (c->add_off >= b->cfg.members && c->add_off) {
		bench_ready(b, c);
		return;
	}
	end = end > b->cfg.members ? b->cfg.members : end;
	f->len = 0;
	c->pending = ++c->next_id;
	pb_uint(f, PF_REQUEST_ID, c->pending);
	if (!c->add_off) {
		m = pb_begin(f, PC_CREATE_ROOM);
		pb_str(f, 1, "bench");
		for (uint32_t i = 0; i < end; i++)
			parley_member(b, f, 2, c->stream, i);
		snprintf(crid, sizeof(crid), "%s-s%u", b->cfg.prefix,
			 c->stream);
		pb_str(f, 3, crid);
	} else {
		m = pb_begin(f, PC_ADD_MEMBERS);
		pb_str(f, 1, b->streams[c->stream].room);
		for (uint32_t i = c->add_off; i < end; i++)
			parley_member(b, f, 2, c->stream, i);
	}
	pb_end(f, m);
	c->add_off = end ? end : 1;
	c->state = CS_SETUP;
	conn_send(b, c, f->p, f->len);
}

static void
parley_dm(struct bench *b, struct conn *c)
{
	char tx[128], rx[128];
	struct conn peer = { .stream = c->stream, .idx = 0, .role = ROLE_RECV };
	struct stream *s = &b->streams[c->stream];

	proto_user(b, c, tx, sizeof(tx));
	proto_user(b, &peer, rx, sizeof(rx));
	if (strcmp(tx, rx) < 0)
		snprintf(s->room, sizeof(s->room), "dm:%s:%s", tx, rx);
	else
		snprintf(s->room, sizeof(s->room), "dm:%s:%s", rx, tx);
}

/* Asks for what the receiver missed while it was away (S5). */
static void
parley_sync(struct bench *b, struct conn *c, uint64_t after)
{
	struct pbuf *f = &b->scratch;
	size_t m;

	f->len = 0;
	c->sync_id = ++c->next_id;
	pb_uint(f, PF_REQUEST_ID, c->sync_id);
	m = pb_begin(f, PC_SYNC);
	pb_str(f, 1, b->streams[c->stream].room);
	pb_uint(f, 2, after);
	pb_uint(f, 3, 500);
	pb_end(f, m);
	conn_send(b, c, f->p, f->len);
}

static void
parley_welcome(struct bench *b, struct conn *c)
{
	if (c->role != ROLE_SEND || b->cfg.idle) {
		bench_ready(b, c);
		if (c->down_at && b->streams[c->stream].room[0])
			parley_sync(b, c, c->last_seq);
		else
			bench_resynced(b, c);
	} else if (b->cfg.dm) {
		parley_dm(b, c);
		bench_ready(b, c);
	} else {
		c->add_off = 0;
		parley_group_id(b, c, b->streams[c->stream].room);
		parley_setup_next(b, c);
	}
}

/* The body of a Message, or the room id of a RoomEvent. */
static int
parley_field(const uint8_t *p, size_t n, unsigned want, struct pb_field *out)
{
	const uint8_t *pos = p, *end = p + n;
	struct pb_field f;
	int r;

	while ((r = pb_next(&pos, end, &f)) > 0) {
		if (f.num == want && f.wire == 2) {
			*out = f;
			return 1;
		}
	}
	return r;
}

static void
parley_setup_reply(struct bench *b, struct conn *c, const struct pb_field *m,
		   bool error)
{
	struct pb_field room;

	if (error) {
		struct pb_field msg = { 0 };

		b->setup_errors++;
		parley_field(m->p, m->n, 2, &msg);
		fprintf(stderr, "bench: room setup refused: %.*s\n", (int)msg.n,
			msg.p ? (const char *)msg.p : "");
	} else if (parley_field(m->p, m->n, 1, &room) > 0 &&
		   room.n < sizeof(b->streams[0].room)) {
		memcpy(b->streams[c->stream].room, room.p, room.n);
		b->streams[c->stream].room[room.n] = 0;
	}
	parley_setup_next(b, c);
}

/* One Message (live or from a SyncResult); returns its seq. */
static uint64_t
parley_message(struct bench *b, struct conn *c, const struct pb_field *m,
	       bool synced)
{
	const uint8_t *pos = m->p, *end = m->p + m->n;
	struct pb_field f, body = { 0 }, room = { 0 };
	uint64_t seq = 0;
	struct stream *s = &b->streams[c->stream];

	while (pb_next(&pos, end, &f) > 0) {
		if (f.num == 2 && f.wire == 0)
			seq = f.v;
		else if (f.num == 5 && f.wire == 2)
			body = f;
		else if (f.num == 1 && f.wire == 2)
			room = f;
	}
	if (!s->room[0] && room.n && room.n < sizeof(s->room)) {
		memcpy(s->room, room.p, room.n);
		s->room[room.n] = 0;
	}
	/* A jump in seq means messages were missed (say, fanned out before
	 * this session was known again after a reconnect): Sync the gap, as
	 * the protocol asks clients to. Only with --reconnect (S5). */
	if (!synced && b->cfg.reconnect && c->last_seq &&
	    seq > c->last_seq + 1 && !c->sync_id)
		parley_sync(b, c, c->last_seq);
	if (!synced && seq > c->last_seq)
		c->last_seq = seq;
	if (body.p)
		bench_deliver(b, c, body.p, body.n, synced);
	return seq;
}

static void
parley_sync_result(struct bench *b, struct conn *c, const struct pb_field *r)
{
	const uint8_t *pos = r->p, *end = r->p + r->n;
	struct pb_field f;
	uint64_t top = 0, seq;
	bool more = false;

	while (pb_next(&pos, end, &f) > 0) {
		if (f.num == 2 && f.wire == 2) {
			seq = parley_message(b, c, &f, true);
			top = seq > top ? seq : top;
		} else if (f.num == 4 && f.wire == 0) {
			more = f.v != 0;
		}
	}
	if (top > c->last_seq)
		c->last_seq = top;
	c->sync_id = 0;
	if (more && top)
		parley_sync(b, c, top);
	else
		bench_resynced(b, c);
}

static void
parley_on_message(struct bench *b, struct conn *c, const uint8_t *p, size_t n)
{
	const uint8_t *pos = p, *end = p + n;
	struct pb_field f;
	uint64_t rid = 0;

	while (pb_next(&pos, end, &f) > 0)
		if (f.num == PF_REQUEST_ID && f.wire == 0)
			rid = f.v;
	pos = p;
	while (pb_next(&pos, end, &f) > 0 && c->fd >= 0) {
		if (f.wire != 2)
			continue;
		switch (f.num) {
		case PF_MESSAGE:
			parley_message(b, c, &f, false);
			break;
		case PF_SYNC_RESULT:
			if (rid && rid == c->sync_id)
				parley_sync_result(b, c, &f);
			break;
		case PF_SEND_ACK:
			bench_acked(b, c, (uint32_t)rid, true);
			break;
		case PF_WELCOME:
			if (c->state == CS_AUTHING)
				parley_welcome(b, c);
			break;
		case PF_ROOM_EVENT:
		case PF_ERROR:
			if (c->state == CS_SETUP && rid == c->pending)
				parley_setup_reply(b, c, &f, f.num == PF_ERROR);
			else if (f.num == PF_ERROR)
				bench_acked(b, c, (uint32_t)rid, false);
			break;
		default:
			break;
		}
	}
}

/* ---- Centrifugo ---- */

/* Frames one Command: a varint length, then the message. */
static void
cent_send(struct bench *b, struct conn *c, const struct pbuf *cmd)
{
	static struct pbuf out;

	out.len = 0;
	pb_varint(&out, cmd->len);
	pbuf_reserve(&out, cmd->len);
	memcpy(out.p + out.len, cmd->p, cmd->len);
	out.len += cmd->len;
	conn_send(b, c, out.p, out.len);
}

static void
cent_channel(struct bench *b, uint32_t stream, char *out, size_t cap)
{
	snprintf(out, cap, "bench:%s-s%u", b->cfg.prefix, stream);
}

static void
cent_on_open(struct bench *b, struct conn *c)
{
	struct pbuf *f = &b->scratch;
	char user[160], tok[1024];
	size_t m;

	proto_user(b, c, user, sizeof(user));
	proto_token(b->cfg.secret, user, tok);
	f->len = 0;
	c->pending = ++c->next_id;
	pb_uint(f, CC_ID, c->pending);
	m = pb_begin(f, CC_CONNECT);
	pb_str(f, 1, tok);
	pb_str(f, 4, "parley-bench");
	pb_end(f, m);
	cent_send(b, c, f);
}

static void
cent_subscribe(struct bench *b, struct conn *c)
{
	struct pbuf *f = &b->scratch;
	char ch[200];
	size_t m;

	cent_channel(b, c->stream, ch, sizeof(ch));
	f->len = 0;
	c->pending = ++c->next_id;
	pb_uint(f, CC_ID, c->pending);
	m = pb_begin(f, CC_SUBSCRIBE);
	pb_str(f, 1, ch);
	pb_end(f, m);
	c->state = CS_SETUP;
	cent_send(b, c, f);
}

static void
cent_connected(struct bench *b, struct conn *c, const struct pb_field *res)
{
	const uint8_t *pos = res->p, *end = res->p + res->n;
	struct pb_field f;

	while (pb_next(&pos, end, &f) > 0)
		if (f.num == 8 && f.wire == 0)
			c->pong = f.v != 0;
	if (c->role == ROLE_RECV && !b->cfg.idle) {
		cent_subscribe(b, c);
	} else {
		if (c->role == ROLE_SEND)
			cent_channel(b, c->stream, b->streams[c->stream].room,
				     sizeof(b->streams[0].room));
		bench_ready(b, c);
	}
}

static void
cent_push(struct bench *b, struct conn *c, const struct pb_field *push)
{
	struct pb_field pub, data;

	if (parley_field(push->p, push->n, 4, &pub) > 0 &&
	    parley_field(pub.p, pub.n, 4, &data) > 0)
		bench_deliver(b, c, data.p, data.n, false);
}

static void
cent_reply(struct bench *b, struct conn *c, const uint8_t *p, size_t n)
{
	const uint8_t *pos = p, *end = p + n;
	struct pb_field f;
	uint64_t id = 0;
	static const uint8_t pong[] = { 0 };

	if (!n) { /* an empty Reply is a ping */
		b->pings++;
		if (c->pong)
			conn_send(b, c, pong, 1);
		return;
	}
	while (pb_next(&pos, end, &f) > 0)
		if (f.num == CC_ID && f.wire == 0)
			id = f.v;
	pos = p;
	while (pb_next(&pos, end, &f) > 0) {
		if (f.wire != 2) {
			continue;
		} else if (f.num == CR_PUSH && f.wire == 2) {
			cent_push(b, c, &f);
		} else if (f.num == CR_CONNECT && c->state == CS_AUTHING) {
			cent_connected(b, c, &f);
		} else if (f.num == CR_SUBSCRIBE && c->state == CS_SETUP) {
			bench_ready(b, c);
		} else if (f.num == CR_PUBLISH) {
			bench_acked(b, c, (uint32_t)id, true);
		} else if (f.num == CR_ERROR) {
			if (c->state == CS_READY) {
				bench_acked(b, c, (uint32_t)id, false);
				continue;
			}
			b->setup_errors++;
			conn_close(b, c,
				   "centrifugo refused connect/subscribe");
			return;
		}
	}
}

static void
cent_on_message(struct bench *b, struct conn *c, const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;
	uint64_t len;
	size_t k;

	while (p < end && c->fd >= 0) {
		k = pb_read_varint(p, end, &len);
		if (!k || len > (uint64_t)(end - p - (ptrdiff_t)k)) {
			b->bad++;
			return;
		}
		cent_reply(b, c, p + k, (size_t)len);
		p += k + len;
	}
}

/* ---- dispatch ---- */

void
proto_on_open(struct bench *b, struct conn *c)
{
	switch (b->cfg.proto) {
	case PROTO_CENTRIFUGO:
		cent_on_open(b, c);
		break;
	case PROTO_RAW:
		bench_ready(b, c);
		break;
	default:
		break; /* parley speaks first: Welcome */
	}
}

void
proto_on_message(struct bench *b, struct conn *c, const uint8_t *p, size_t n)
{
	switch (b->cfg.proto) {
	case PROTO_PARLEY:
		parley_on_message(b, c, p, n);
		break;
	case PROTO_CENTRIFUGO:
		cent_on_message(b, c, p, n);
		break;
	default:
		bench_deliver(b, c, p, n, false);
		break;
	}
}

int
proto_send_payload(struct bench *b, struct conn *c, uint32_t stream,
		   const uint8_t *body, size_t n, uint64_t t_int)
{
	struct pbuf *f = &b->scratch;
	const char *room = b->streams[stream].room;
	uint32_t id = ++c->next_id;
	char cmid[64];
	size_t m;

	if (b->cfg.proto == PROTO_RAW)
		return conn_send(b, c, body, n);
	c->ack_t[id & (BENCH_ACK_RING - 1)] = t_int;
	f->len = 0;
	if (b->cfg.proto == PROTO_PARLEY) {
		pb_uint(f, PF_REQUEST_ID, id);
		m = pb_begin(f, PC_SEND);
		/* Unique per run, step and message: the fold dedups by it. */
		snprintf(cmid, sizeof(cmid), "%.*s", 30, body + 2);
		pb_str(f, 1, cmid);
		pb_str(f, 2, room);
		pb_bytes(f, 3, body, n);
		pb_end(f, m);
		return conn_send(b, c, f->p, f->len);
	}
	pb_uint(f, CC_ID, id);
	m = pb_begin(f, CC_PUBLISH);
	pb_str(f, 1, room);
	pb_bytes(f, 2, body, n);
	pb_end(f, m);
	cent_send(b, c, f);
	return c->fd >= 0 ? 0 : -1;
}
