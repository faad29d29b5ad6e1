/* Ingress: gateways push batches of Commands; each becomes a log Record
 * keyed by room. The owner of the room's partition answers the sender once
 * the record is folded; ingress answers only when the produce failed. */
#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "jwt.h"
#include "log.h"
#include "router.h"
#include "utf8.h"
#include "xalloc.h"

#define INGRESS_MAX_ID	  128
#define INGRESS_MAX_ROOM  256
#define INGRESS_DRAIN_MAX 256
#define INGRESS_MAX_NAME  256
#define INGRESS_MAX_ADD	  1000
#define INGRESS_ROOM_HEX  24

int
ingress_open(struct router *r)
{
	int rc = bus_open(&r->ingress, "pull");

	if (rc == 0)
		rc = bus_listen(r->ingress, r->cfg.listen);
	return rc;
}

/* Reports come only for records that failed (the producer is
 * errors-only): the record itself says whom to tell. */
void
ingress_on_delivery(void *ctx, const struct kafka_delivery *d)
{
	struct router *r = ctx;
	Parley__Log__V1__Record *rec;
	const Parley__Log__V1__Origin *o;
	const char *cmid = NULL;

	if (!d->err)
		return;
	metric_add(r->m->produce_errors, 1);
	rec = parley__log__v1__record__unpack(NULL, d->len, d->value);
	if (rec == NULL || rec->origin == NULL) {
		LOG_WARN("router.delivery", "a failed record is undecodable");
		if (rec)
			parley__log__v1__record__free_unpacked(rec, NULL);
		return;
	}
	o = rec->origin;
	if (rec->body_case == PARLEY__LOG__V1__RECORD__BODY_POST)
		cmid = rec->post->client_msg_id;
	/* G1: a send whose fate is unknown is retryable, never "failed";
	 * a retry with the same client_msg_id is deduplicated by the fold. */
	router_error(r, o->gateway, o->session_id, o->request_id,
		     PARLEY__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE,
		     d->maybe_persisted
			     ? "log write timed out; retry with the same "
			       "client_msg_id"
			     : "log unavailable; retry",
		     true, rec->room_id, cmid ? cmid : "");
	parley__log__v1__record__free_unpacked(rec, NULL);
}

static bool
ingress_valid_id(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	return n > 0 && n <= max;
}

/* Stateless checks that need no room state. Returns an ErrorCode or 0. */
static int
ingress_check_send(const struct router *r,
		   const Parley__Internal__V1__Command *c, const char **why)
{
	const Parley__V1__Send *s = c->frame->send;
	char a[JWT_SUB_MAX + 1], b[JWT_SUB_MAX + 1];

	*why = "client_msg_id must be 1-128 bytes";
	if (!ingress_valid_id(s->client_msg_id, INGRESS_MAX_ID))
		return PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST;
	*why = "room_id must be 1-256 bytes";
	if (!ingress_valid_id(s->room_id, INGRESS_MAX_ROOM))
		return PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST;
	*why = "message body too large";
	if (s->body && strlen(s->body) > (size_t)r->cfg.max_body)
		return PARLEY__V1__ERROR_CODE__ERROR_CODE_TOO_LARGE;
	*why = "strings must be valid UTF-8";
	if (!utf8_valid(s->body) || !utf8_valid(s->room_id) ||
	    !utf8_valid(s->client_msg_id))
		return PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST;
	if (strncmp(s->room_id, "dm:", 3) != 0)
		return 0;
	*why = "not a valid direct room id (dm:A:B, A < B)";
	if (!fold_dm_parse(s->room_id, a, b))
		return PARLEY__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND;
	*why = "not a member of this room";
	if (!c->server && strcmp(a, c->user_id) != 0 &&
	    strcmp(b, c->user_id) != 0)
		return PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN;
	return 0;
}

static void
ingress_produce(struct router *r, const Parley__Internal__V1__Command *c,
		Parley__Log__V1__Record *rec, const char *cmid)
{
	Parley__Log__V1__Origin o = PARLEY__LOG__V1__ORIGIN__INIT;
	size_t n;
	uint8_t *buf;
	int rc;

	o.gateway = c->gateway;
	o.session_id = c->session_id;
	o.request_id = c->frame->request_id;
	o.trace_id = c->trace_id;
	rec->actor = c->user_id;
	rec->server = c->server;
	rec->ts_ms = router_now_ms();
	rec->origin = &o;
	n = parley__log__v1__record__get_packed_size(rec);
	buf = xmalloc(n);
	parley__log__v1__record__pack(rec, buf);
	rc = kafka_produce(r->producer, r->cfg.topic, rec->room_id, buf, n,
			   NULL);
	rec->origin = NULL; /* o lives on this stack frame only */
	free(buf);
	if (rc < 0)
		router_error(r, c->gateway, c->session_id, c->frame->request_id,
			     PARLEY__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE,
			     "log unavailable; retry", true, rec->room_id,
			     cmid ? cmid : "");
}

static void
ingress_send(struct router *r, const Parley__Internal__V1__Command *c)
{
	Parley__Log__V1__Record rec = PARLEY__LOG__V1__RECORD__INIT;
	Parley__Log__V1__Post post = PARLEY__LOG__V1__POST__INIT;
	const Parley__V1__Send *s = c->frame->send;
	const char *why;
	int code = ingress_check_send(r, c, &why);

	if (code) {
		router_error(r, c->gateway, c->session_id, c->frame->request_id,
			     code, why, false, s->room_id, s->client_msg_id);
		return;
	}
	post.client_msg_id = s->client_msg_id;
	post.body = s->body;
	rec.room_id = s->room_id;
	rec.body_case = PARLEY__LOG__V1__RECORD__BODY_POST;
	rec.post = &post;
	ingress_produce(r, c, &rec, s->client_msg_id);
}

static void
ingress_marker(struct router *r, const Parley__Internal__V1__Command *c,
	       const char *room_id, uint64_t seq, bool read)
{
	Parley__Log__V1__Record rec = PARLEY__LOG__V1__RECORD__INIT;
	Parley__Log__V1__Marker mk = PARLEY__LOG__V1__MARKER__INIT;

	if (!ingress_valid_id(room_id, INGRESS_MAX_ROOM)) {
		router_error(r, c->gateway, c->session_id, c->frame->request_id,
			     PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
			     "room_id must be 1-256 bytes", false, room_id,
			     NULL);
		return;
	}
	mk.read = read;
	mk.seq = seq;
	rec.room_id = (char *)room_id;
	rec.body_case = PARLEY__LOG__V1__RECORD__BODY_MARKER;
	rec.marker = &mk;
	ingress_produce(r, c, &rec, NULL);
}

static void
ingress_reject(struct router *r, const Parley__Internal__V1__Command *c,
	       const char *why)
{
	router_error(r, c->gateway, c->session_id, c->frame->request_id,
		     PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST, why, false,
		     NULL, NULL);
}

static bool
ingress_valid_users(char **ids, size_t n, size_t max)
{
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!jwt_valid_user(ids[i]))
			return false;
	return true;
}

/* A group's id: derived from (creator, client_room_id) so a retried
 * CreateRoom names the same room; random without a client_room_id. */
static void
ingress_room_id(const char *user, const char *client_room_id, char *out)
{
	unsigned char h[SHA256_DIGEST_LENGTH];
	char *seed;

	if (client_room_id && client_room_id[0]) {
		seed = xasprintf("%s\n%s", user, client_room_id);
		SHA256((unsigned char *)seed, strlen(seed), h);
		free(seed);
	} else if (getrandom(h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		abort(); /* the kernel's randomness is not optional */
	}
	strcpy(out, "g:");
	for (int i = 0; i < INGRESS_ROOM_HEX / 2; i++)
		sprintf(out + 2 + 2 * i, "%02x", h[i]);
}

static void
ingress_create(struct router *r, const Parley__Internal__V1__Command *c)
{
	const Parley__V1__CreateRoom *cr = c->frame->create_room;
	Parley__Log__V1__Record rec = PARLEY__LOG__V1__RECORD__INIT;
	Parley__Log__V1__CreateRoom lc = PARLEY__LOG__V1__CREATE_ROOM__INIT;
	char id[3 + INGRESS_ROOM_HEX];

	if ((cr->n_member_ids &&
	     !ingress_valid_users(cr->member_ids, cr->n_member_ids,
				  (size_t)r->cfg.max_members)) ||
	    (cr->name && strlen(cr->name) > INGRESS_MAX_NAME) ||
	    !utf8_valid(cr->name) || !utf8_valid(cr->client_room_id) ||
	    (cr->client_room_id &&
	     strlen(cr->client_room_id) > INGRESS_MAX_ID)) {
		ingress_reject(r, c, "bad CreateRoom: members, name or id");
		return;
	}
	ingress_room_id(c->user_id, cr->client_room_id, id);
	lc.name = cr->name;
	lc.member_ids = cr->member_ids;
	lc.n_member_ids = cr->n_member_ids;
	lc.client_room_id = cr->client_room_id;
	rec.room_id = id;
	rec.body_case = PARLEY__LOG__V1__RECORD__BODY_CREATE_ROOM;
	rec.create_room = &lc;
	ingress_produce(r, c, &rec, NULL);
}

static void
ingress_members(struct router *r, const Parley__Internal__V1__Command *c)
{
	const Parley__V1__ClientFrame *f = c->frame;
	Parley__Log__V1__Record rec = PARLEY__LOG__V1__RECORD__INIT;
	Parley__Log__V1__AddMembers add = PARLEY__LOG__V1__ADD_MEMBERS__INIT;
	Parley__Log__V1__RemoveMember rm = PARLEY__LOG__V1__REMOVE_MEMBER__INIT;
	Parley__Log__V1__Leave lv = PARLEY__LOG__V1__LEAVE__INIT;

	if (f->msg_case == PARLEY__V1__CLIENT_FRAME__MSG_ADD_MEMBERS) {
		rec.room_id = f->add_members->room_id;
		add.user_ids = f->add_members->user_ids;
		add.n_user_ids = f->add_members->n_user_ids;
		add.max_members = (uint32_t)r->cfg.max_members;
		rec.body_case = PARLEY__LOG__V1__RECORD__BODY_ADD_MEMBERS;
		rec.add_members = &add;
		if (!ingress_valid_users(add.user_ids, add.n_user_ids,
					 INGRESS_MAX_ADD))
			rec.room_id = NULL;
	} else if (f->msg_case == PARLEY__V1__CLIENT_FRAME__MSG_REMOVE_MEMBER) {
		rec.room_id = f->remove_member->room_id;
		rm.user_id = f->remove_member->user_id;
		rec.body_case = PARLEY__LOG__V1__RECORD__BODY_REMOVE_MEMBER;
		rec.remove_member = &rm;
		if (!jwt_valid_user(rm.user_id))
			rec.room_id = NULL;
	} else {
		rec.room_id = f->leave_room->room_id;
		rec.body_case = PARLEY__LOG__V1__RECORD__BODY_LEAVE;
		rec.leave = &lv;
	}
	if (!ingress_valid_id(rec.room_id, INGRESS_MAX_ROOM))
		ingress_reject(r, c, "bad room id or user ids");
	else
		ingress_produce(r, c, &rec, NULL);
}

/* DeleteRoom: a server API command only (docs/SERVER_API.md). */
static void
ingress_delete(struct router *r, const Parley__Internal__V1__Command *c)
{
	Parley__Log__V1__Record rec = PARLEY__LOG__V1__RECORD__INIT;
	Parley__Log__V1__DeleteRoom del = PARLEY__LOG__V1__DELETE_ROOM__INIT;
	const char *room = c->frame->delete_room->room_id;

	if (!c->server) {
		router_error(r, c->gateway, c->session_id, c->frame->request_id,
			     PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN,
			     "rooms are deleted through the server API", false,
			     room, NULL);
		return;
	}
	if (!ingress_valid_id(room, INGRESS_MAX_ROOM) || !utf8_valid(room)) {
		ingress_reject(r, c, "bad room id");
		return;
	}
	rec.room_id = (char *)room;
	rec.body_case = PARLEY__LOG__V1__RECORD__BODY_DELETE_ROOM;
	rec.delete_room = &del;
	ingress_produce(r, c, &rec, NULL);
}

static void
ingress_command(struct router *r, const Parley__Internal__V1__Command *c)
{
	const Parley__V1__ClientFrame *f = c->frame;

	metric_add(r->m->commands, 1);
	if (f == NULL || !jwt_valid_user(c->user_id) || c->gateway == NULL ||
	    c->session_id == NULL) {
		LOG_WARN("router.bad_command", "command without frame or "
					       "identity dropped");
		return;
	}
	switch (f->msg_case) {
	case PARLEY__V1__CLIENT_FRAME__MSG_SEND:
		ingress_send(r, c);
		break;
	case PARLEY__V1__CLIENT_FRAME__MSG_DELIVERED:
		ingress_marker(r, c, f->delivered->room_id, f->delivered->seq,
			       false);
		break;
	case PARLEY__V1__CLIENT_FRAME__MSG_READ:
		ingress_marker(r, c, f->read->room_id, f->read->seq, true);
		break;
	case PARLEY__V1__CLIENT_FRAME__MSG_TYPING:
	case PARLEY__V1__CLIENT_FRAME__MSG_GET_RECEIPTS:
	case PARLEY__V1__CLIENT_FRAME__MSG_GET_ROOM_PRESENCE:
		eph_command(r, c);
		break;
	case PARLEY__V1__CLIENT_FRAME__MSG_CREATE_ROOM:
		ingress_create(r, c);
		break;
	case PARLEY__V1__CLIENT_FRAME__MSG_ADD_MEMBERS:
	case PARLEY__V1__CLIENT_FRAME__MSG_REMOVE_MEMBER:
	case PARLEY__V1__CLIENT_FRAME__MSG_LEAVE_ROOM:
		ingress_members(r, c);
		break;
	case PARLEY__V1__CLIENT_FRAME__MSG_DELETE_ROOM:
		ingress_delete(r, c);
		break;
	default:
		router_error(r, c->gateway, c->session_id, f->request_id,
			     PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
			     "command not supported by the router", false, NULL,
			     NULL);
	}
}

static void
ingress_batch(struct router *r, nng_msg *m)
{
	struct bus_iter it;
	const uint8_t *item;
	size_t len;

	bus_iter_init(&it, nng_msg_body(m), nng_msg_len(m));
	while (bus_iter_next(&it, &item, &len) == 1) {
		Parley__Internal__V1__Command *c =
			parley__internal__v1__command__unpack(NULL, len, item);

		if (c == NULL) {
			LOG_WARN("router.bad_command", "undecodable command");
			continue;
		}
		ingress_command(r, c);
		parley__internal__v1__command__free_unpacked(c, NULL);
	}
}

bool
ingress_drain(struct router *r)
{
	for (int i = 0; i < INGRESS_DRAIN_MAX; i++) {
		nng_msg *m;

		if (nng_recvmsg(r->ingress, &m, NNG_FLAG_NONBLOCK) != 0)
			return false;
		ingress_batch(r, m);
		nng_msg_free(m);
	}
	return true;
}
