/* The server API's calls: each checks its request, then either sends a
 * Command marked server to the routers and waits for the owner's answer
 * after the fold (Publish, room changes), or asks the store, presence or
 * the pusher (reads, devices). Every reply is heap-built and freed with
 * protobuf-c's free_unpacked (all parts malloc'd). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "bus.h"
#include "jwt.h"
#include "log.h"
#include "utf8.h"
#include "xalloc.h"

#define CALLS_MAX_KEY	128
#define CALLS_MAX_ROOM	256
#define CALLS_MAX_USERS 1000

typedef Parley__Server__V1__Response Response;

static Response *
calls_new(void)
{
	Response *r = xmalloc(sizeof(*r));

	parley__server__v1__response__init(r);
	return r;
}

static Response *
calls_error(Parley__Server__V1__Code code, const char *msg, bool retryable)
{
	Response *r = calls_new();
	Parley__Server__V1__Error *e = xmalloc(sizeof(*e));

	parley__server__v1__error__init(e);
	e->code = code;
	e->message = xstrdup(msg);
	e->retryable = retryable;
	r->error = e;
	return r;
}

static Response *
calls_bad(const char *msg)
{
	return calls_error(PARLEY__SERVER__V1__CODE__CODE_BAD_REQUEST, msg,
			   false);
}

/* A client-protocol Error (same code numbers) as a Response. */
static Response *
calls_from_error(const Parley__V1__Error *e)
{
	return calls_error((Parley__Server__V1__Code)e->code,
			   e->message ? e->message : "", e->retryable);
}

/* The answer did not come in time: the change may or may not be done. */
static Response *
calls_unknown(int rc)
{
	if (rc == -ETIMEDOUT)
		return calls_error(
			PARLEY__SERVER__V1__CODE__CODE_UNAVAILABLE,
			"not acknowledged in time; retry with the same "
			"idempotency_key",
			true);
	return calls_error(PARLEY__SERVER__V1__CODE__CODE_UNAVAILABLE,
			   "routers unreachable; retry with the same "
			   "idempotency_key",
			   true);
}

void
calls_response_free(Response *r)
{
	parley__server__v1__response__free_unpacked(r, NULL);
}

static bool
calls_valid_id(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	return n > 0 && n <= max && utf8_valid(s);
}

/* The user id of an actor (system when unset); NULL when invalid. */
static const char *
calls_actor(const Parley__Server__V1__Actor *who)
{
	if (who == NULL ||
	    who->who_case == PARLEY__SERVER__V1__ACTOR__WHO_SYSTEM ||
	    who->who_case == PARLEY__SERVER__V1__ACTOR__WHO__NOT_SET)
		return API_SYSTEM_USER;
	return jwt_valid_user(who->user_id) ? who->user_id : NULL;
}

/* Send a client frame as actor through the routers; the owner's answer
 * comes back in *out. 0 or -errno. */
static int
calls_command(struct api *a, const char *actor, Parley__V1__ClientFrame *f,
	      int timeout_ms, Parley__V1__ServerFrame **out)
{
	Parley__Internal__V1__Command c = PARLEY__INTERNAL__V1__COMMAND__INIT;

	c.user_id = (char *)actor;
	f->request_id = 1;
	c.frame = f;
	return link_command(a, &c, timeout_ms, out);
}

/* Publish. */

static Response *
calls_publish_reply(const Parley__V1__ServerFrame *f)
{
	Response *r;
	Parley__Server__V1__PublishResponse *p;

	if (f->msg_case == PARLEY__V1__SERVER_FRAME__MSG_ERROR)
		return calls_from_error(f->error);
	if (f->msg_case != PARLEY__V1__SERVER_FRAME__MSG_SEND_ACK)
		return calls_error(PARLEY__SERVER__V1__CODE__CODE_INTERNAL,
				   "unexpected answer from the router", true);
	r = calls_new();
	p = xmalloc(sizeof(*p));
	parley__server__v1__publish_response__init(p);
	p->room_id = xstrdup(f->send_ack->room_id);
	p->seq = f->send_ack->seq;
	p->ts_ms = f->send_ack->ts_ms;
	p->duplicate = f->send_ack->duplicate;
	r->reply_case = PARLEY__SERVER__V1__RESPONSE__REPLY_PUBLISH;
	r->publish = p;
	return r;
}

static Response *
calls_publish(struct api *a, const Parley__Server__V1__PublishRequest *q,
	      int timeout_ms)
{
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__Send s = PARLEY__V1__SEND__INIT;
	const char *actor = calls_actor(q->sender);
	Parley__V1__ServerFrame *ans;
	Response *r;
	int rc;

	if (actor == NULL)
		return calls_bad("sender is not a valid user id");
	if (!calls_valid_id(q->idempotency_key, CALLS_MAX_KEY))
		return calls_bad("idempotency_key must be 1-128 bytes");
	if (!calls_valid_id(q->room_id, CALLS_MAX_ROOM))
		return calls_bad("room_id must be 1-256 bytes");
	s.client_msg_id = q->idempotency_key;
	s.room_id = q->room_id;
	s.body = q->body;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_SEND;
	f.send = &s;
	if ((rc = calls_command(a, actor, &f, timeout_ms, &ans)) < 0)
		return calls_unknown(rc);
	r = calls_publish_reply(ans);
	parley__v1__server_frame__free_unpacked(ans, NULL);
	return r;
}

/* Room changes: the owner answers with the RoomEvent. */

static char **
calls_strv(char **v, size_t n)
{
	char **out = xcalloc(n ? n : 1, sizeof(*out));

	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

static Response *
calls_room_reply(const Parley__V1__ServerFrame *f, bool created)
{
	Response *r;

	if (f->msg_case == PARLEY__V1__SERVER_FRAME__MSG_ERROR)
		return calls_from_error(f->error);
	if (f->msg_case != PARLEY__V1__SERVER_FRAME__MSG_ROOM_EVENT)
		return calls_error(PARLEY__SERVER__V1__CODE__CODE_INTERNAL,
				   "unexpected answer from the router", true);
	r = calls_new();
	if (created) {
		Parley__Server__V1__CreateRoomResponse *c = xmalloc(sizeof(*c));

		parley__server__v1__create_room_response__init(c);
		c->room_id = xstrdup(f->room_event->room_id);
		c->member_ids = calls_strv(f->room_event->user_ids,
					   f->room_event->n_user_ids);
		c->n_member_ids = f->room_event->n_user_ids;
		r->reply_case = PARLEY__SERVER__V1__RESPONSE__REPLY_CREATE_ROOM;
		r->create_room = c;
	} else {
		Parley__Server__V1__RoomChangeResponse *c = xmalloc(sizeof(*c));

		parley__server__v1__room_change_response__init(c);
		c->room_id = xstrdup(f->room_event->room_id);
		c->seq = f->room_event->seq;
		r->reply_case = PARLEY__SERVER__V1__RESPONSE__REPLY_ROOM_CHANGE;
		r->room_change = c;
	}
	return r;
}

static Response *
calls_room_command(struct api *a, const char *actor, const char *key,
		   Parley__V1__ClientFrame *f, int timeout_ms)
{
	Parley__V1__ServerFrame *ans;
	Response *r;
	int rc;

	if (actor == NULL)
		return calls_bad("actor is not a valid user id");
	if (!calls_valid_id(key, CALLS_MAX_KEY))
		return calls_bad("idempotency_key must be 1-128 bytes");
	if ((rc = calls_command(a, actor, f, timeout_ms, &ans)) < 0)
		return calls_unknown(rc);
	r = calls_room_reply(
		ans, f->msg_case == PARLEY__V1__CLIENT_FRAME__MSG_CREATE_ROOM);
	parley__v1__server_frame__free_unpacked(ans, NULL);
	return r;
}

static Response *
calls_create_room(struct api *a, const Parley__Server__V1__CreateRoomRequest *q,
		  int timeout_ms)
{
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__CreateRoom c = PARLEY__V1__CREATE_ROOM__INIT;

	c.name = q->name;
	c.member_ids = q->member_ids;
	c.n_member_ids = q->n_member_ids;
	/* The room id derives from (creator, key): a retry names it again. */
	c.client_room_id = q->idempotency_key;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_CREATE_ROOM;
	f.create_room = &c;
	return calls_room_command(a, calls_actor(q->creator),
				  q->idempotency_key, &f, timeout_ms);
}

static Response *
calls_add_members(struct api *a, const Parley__Server__V1__AddMembersRequest *q,
		  int timeout_ms)
{
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__AddMembers m = PARLEY__V1__ADD_MEMBERS__INIT;

	if (q->n_user_ids == 0 || q->n_user_ids > CALLS_MAX_USERS)
		return calls_bad("user_ids: 1-1000 user ids");
	m.room_id = q->room_id;
	m.user_ids = q->user_ids;
	m.n_user_ids = q->n_user_ids;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_ADD_MEMBERS;
	f.add_members = &m;
	return calls_room_command(a, calls_actor(q->actor), q->idempotency_key,
				  &f, timeout_ms);
}

static Response *
calls_remove_member(struct api *a,
		    const Parley__Server__V1__RemoveMemberRequest *q,
		    int timeout_ms)
{
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__RemoveMember m = PARLEY__V1__REMOVE_MEMBER__INIT;

	m.room_id = q->room_id;
	m.user_id = q->user_id;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_REMOVE_MEMBER;
	f.remove_member = &m;
	return calls_room_command(a, calls_actor(q->actor), q->idempotency_key,
				  &f, timeout_ms);
}

static Response *
calls_delete_room(struct api *a, const Parley__Server__V1__DeleteRoomRequest *q,
		  int timeout_ms)
{
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__DeleteRoom d = PARLEY__V1__DELETE_ROOM__INIT;

	if (!calls_valid_id(q->room_id, CALLS_MAX_ROOM))
		return calls_bad("room_id must be 1-256 bytes");
	d.room_id = q->room_id;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_DELETE_ROOM;
	f.delete_room = &d;
	return calls_room_command(a, calls_actor(q->actor), q->idempotency_key,
				  &f, timeout_ms);
}

/* Reads from the store. */

static Response *
calls_store(struct api *a, Parley__Internal__V1__StoreRequest *sq,
	    int timeout_ms, Parley__Internal__V1__StoreReply **out)
{
	nng_msg *m;
	int rc = link_ask(a->store, &sq->base, timeout_ms, &m);

	if (rc < 0)
		return calls_error(PARLEY__SERVER__V1__CODE__CODE_UNAVAILABLE,
				   "store unavailable; retry", true);
	*out = parley__internal__v1__store_reply__unpack(NULL, nng_msg_len(m),
							 nng_msg_body(m));
	nng_msg_free(m);
	if (*out == NULL)
		return calls_error(PARLEY__SERVER__V1__CODE__CODE_INTERNAL,
				   "undecodable store answer", true);
	if ((*out)->reply_case ==
	    PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ERROR) {
		Response *r = calls_from_error((*out)->error);

		parley__internal__v1__store_reply__free_unpacked(*out, NULL);
		return r;
	}
	return NULL;
}

static Response *
calls_get_room(struct api *a, const Parley__Server__V1__GetRoomRequest *q,
	       int timeout_ms)
{
	Parley__Internal__V1__StoreRequest sq =
		PARLEY__INTERNAL__V1__STORE_REQUEST__INIT;
	Parley__Internal__V1__StoreReply *rep;
	Response *r;

	if (!calls_valid_id(q->room_id, CALLS_MAX_ROOM))
		return calls_bad("room_id must be 1-256 bytes");
	sq.server = true;
	sq.req_case = PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_GET_ROOM;
	sq.get_room = (Parley__Server__V1__GetRoomRequest *)q;
	if ((r = calls_store(a, &sq, timeout_ms, &rep)) != NULL)
		return r;
	r = calls_new();
	if (rep->reply_case == PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ROOM) {
		r->reply_case = PARLEY__SERVER__V1__RESPONSE__REPLY_GET_ROOM;
		r->get_room = rep->room; /* moved out of the store reply */
		rep->room = NULL;
		rep->reply_case =
			PARLEY__INTERNAL__V1__STORE_REPLY__REPLY__NOT_SET;
	}
	parley__internal__v1__store_reply__free_unpacked(rep, NULL);
	return r;
}

static Parley__Server__V1__RoomSummary *
calls_summary(const Parley__V1__RoomSummary *s)
{
	Parley__Server__V1__RoomSummary *o = xmalloc(sizeof(*o));

	parley__server__v1__room_summary__init(o);
	o->room_id = xstrdup(s->room_id);
	o->kind = (Parley__Server__V1__RoomKind)s->kind;
	o->name = xstrdup(s->name);
	o->last_seq = s->last_seq;
	o->read_seq = s->read_seq;
	o->unread = s->unread;
	return o;
}

static Response *
calls_list_user_rooms(struct api *a,
		      const Parley__Server__V1__ListUserRoomsRequest *q,
		      int timeout_ms)
{
	Parley__Internal__V1__StoreRequest sq =
		PARLEY__INTERNAL__V1__STORE_REQUEST__INIT;
	Parley__V1__ListRooms lr = PARLEY__V1__LIST_ROOMS__INIT;
	Parley__Server__V1__ListUserRoomsResponse *l;
	Parley__Internal__V1__StoreReply *rep;
	Response *r;

	if (!jwt_valid_user(q->user_id))
		return calls_bad("user_id is not a valid user id");
	sq.user_id = q->user_id;
	sq.req_case = PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_LIST_ROOMS;
	sq.list_rooms = &lr;
	if ((r = calls_store(a, &sq, timeout_ms, &rep)) != NULL)
		return r;
	r = calls_new();
	l = xmalloc(sizeof(*l));
	parley__server__v1__list_user_rooms_response__init(l);
	if (rep->reply_case ==
	    PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ROOM_LIST) {
		l->n_rooms = rep->room_list->n_rooms;
		l->rooms =
			xcalloc(l->n_rooms ? l->n_rooms : 1, sizeof(*l->rooms));
		for (size_t i = 0; i < l->n_rooms; i++)
			l->rooms[i] = calls_summary(rep->room_list->rooms[i]);
	}
	r->reply_case = PARLEY__SERVER__V1__RESPONSE__REPLY_LIST_USER_ROOMS;
	r->list_user_rooms = l;
	parley__internal__v1__store_reply__free_unpacked(rep, NULL);
	return r;
}

static Parley__Server__V1__Message *
calls_message(const Parley__V1__Message *m)
{
	Parley__Server__V1__Message *o = xmalloc(sizeof(*o));

	parley__server__v1__message__init(o);
	o->seq = m->seq;
	o->sender_id = xstrdup(m->sender_id);
	o->body = xstrdup(m->body);
	o->ts_ms = m->ts_ms;
	o->client_msg_id = xstrdup(m->client_msg_id);
	return o;
}

static Parley__Server__V1__HistoryResponse *
calls_history_of(const Parley__V1__SyncResult *sr)
{
	Parley__Server__V1__HistoryResponse *h = xmalloc(sizeof(*h));

	parley__server__v1__history_response__init(h);
	h->room_id = xstrdup(sr->room_id);
	h->last_seq = sr->last_seq;
	h->has_more = sr->has_more;
	h->n_messages = sr->n_messages;
	h->messages = xcalloc(h->n_messages ? h->n_messages : 1,
			      sizeof(*h->messages));
	for (size_t i = 0; i < h->n_messages; i++)
		h->messages[i] = calls_message(sr->messages[i]);
	return h;
}

static Response *
calls_history(struct api *a, const Parley__Server__V1__HistoryRequest *q,
	      int timeout_ms)
{
	Parley__Internal__V1__StoreRequest sq =
		PARLEY__INTERNAL__V1__STORE_REQUEST__INIT;
	Parley__V1__History h = PARLEY__V1__HISTORY__INIT;
	Parley__Internal__V1__StoreReply *rep;
	Response *r;

	if (!calls_valid_id(q->room_id, CALLS_MAX_ROOM))
		return calls_bad("room_id must be 1-256 bytes");
	h.room_id = q->room_id;
	h.before_seq = q->before_seq;
	h.limit = q->limit;
	sq.server = true;
	sq.req_case = PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_HISTORY;
	sq.history = &h;
	if ((r = calls_store(a, &sq, timeout_ms, &rep)) != NULL)
		return r;
	r = calls_new();
	if (rep->reply_case ==
	    PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_SYNC_RESULT) {
		r->reply_case = PARLEY__SERVER__V1__RESPONSE__REPLY_HISTORY;
		r->history = calls_history_of(rep->sync_result);
	}
	parley__internal__v1__store_reply__free_unpacked(rep, NULL);
	return r;
}

/* Presence. */

static Parley__Internal__V1__PresenceReply *
calls_presence_ask(struct api *a, Parley__Internal__V1__PresenceRequest *pq,
		   int timeout_ms)
{
	Parley__Internal__V1__PresenceReply *rep;
	nng_msg *m;

	if (link_ask(a->presence, &pq->base, timeout_ms, &m) < 0)
		return NULL;
	rep = parley__internal__v1__presence_reply__unpack(NULL, nng_msg_len(m),
							   nng_msg_body(m));
	nng_msg_free(m);
	return rep;
}

static Parley__Server__V1__UserPresence *
calls_user_state(const Parley__Internal__V1__UserState *u)
{
	Parley__Server__V1__UserPresence *o = xmalloc(sizeof(*o));

	parley__server__v1__user_presence__init(o);
	o->user_id = xstrdup(u->user_id);
	o->online = u->online;
	o->last_seen_ms = u->last_seen_ms;
	return o;
}

static Response *
calls_presence(struct api *a, const Parley__Server__V1__PresenceRequest *q,
	       int timeout_ms)
{
	Parley__Internal__V1__PresenceRequest pq =
		PARLEY__INTERNAL__V1__PRESENCE_REQUEST__INIT;
	Parley__Internal__V1__UserList ul =
		PARLEY__INTERNAL__V1__USER_LIST__INIT;
	Parley__Internal__V1__PresenceReply *rep;
	Parley__Server__V1__PresenceResponse *p;
	Response *r;

	if (q->n_user_ids == 0 || q->n_user_ids > CALLS_MAX_USERS)
		return calls_bad("user_ids: 1-1000 user ids");
	for (size_t i = 0; i < q->n_user_ids; i++)
		if (!jwt_valid_user(q->user_ids[i]))
			return calls_bad("user_ids: not a valid user id");
	ul.user_ids = q->user_ids;
	ul.n_user_ids = q->n_user_ids;
	pq.req_case = PARLEY__INTERNAL__V1__PRESENCE_REQUEST__REQ_LOOKUP;
	pq.lookup = &ul;
	if ((rep = calls_presence_ask(a, &pq, timeout_ms)) == NULL)
		return calls_error(PARLEY__SERVER__V1__CODE__CODE_UNAVAILABLE,
				   "presence unavailable; retry", true);
	r = calls_new();
	p = xmalloc(sizeof(*p));
	parley__server__v1__presence_response__init(p);
	p->n_users = rep->n_users;
	p->users = xcalloc(p->n_users ? p->n_users : 1, sizeof(*p->users));
	for (size_t i = 0; i < p->n_users; i++)
		p->users[i] = calls_user_state(rep->users[i]);
	r->reply_case = PARLEY__SERVER__V1__RESPONSE__REPLY_PRESENCE;
	r->presence = p;
	parley__internal__v1__presence_reply__free_unpacked(rep, NULL);
	return r;
}

static Response *
calls_ok(void)
{
	Response *r = calls_new();

	r->ok = xmalloc(sizeof(*r->ok));
	parley__server__v1__ok_response__init(r->ok);
	r->reply_case = PARLEY__SERVER__V1__RESPONSE__REPLY_OK;
	return r;
}

/* RegisterDevice: the pusher's device server takes the client's command. */
static Response *
calls_register_device(struct api *a,
		      const Parley__Server__V1__RegisterDeviceRequest *q,
		      int timeout_ms)
{
	Parley__Internal__V1__Command c = PARLEY__INTERNAL__V1__COMMAND__INIT;
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__RegisterDevice d = PARLEY__V1__REGISTER_DEVICE__INIT;
	Parley__V1__ServerFrame *ans;
	Response *r;
	nng_msg *m;

	if (!jwt_valid_user(q->user_id))
		return calls_bad("user_id is not a valid user id");
	if (!calls_valid_id(q->idempotency_key, CALLS_MAX_KEY))
		return calls_bad("idempotency_key must be 1-128 bytes");
	d.platform = q->platform;
	d.token = q->token;
	f.request_id = 1;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_REGISTER_DEVICE;
	f.register_device = &d;
	c.user_id = q->user_id;
	c.session_id = "api";
	c.gateway = (char *)a->cfg.nng_listen;
	c.server = true;
	c.frame = &f;
	if (link_ask(a->pusher, &c.base, timeout_ms, &m) < 0)
		return calls_error(PARLEY__SERVER__V1__CODE__CODE_UNAVAILABLE,
				   "push registry unavailable; retry", true);
	ans = parley__v1__server_frame__unpack(NULL, nng_msg_len(m),
					       nng_msg_body(m));
	nng_msg_free(m);
	if (ans && ans->msg_case == PARLEY__V1__SERVER_FRAME__MSG_ERROR)
		r = calls_from_error(ans->error);
	else if (ans && ans->msg_case == PARLEY__V1__SERVER_FRAME__MSG_OK)
		r = calls_ok();
	else
		r = calls_error(PARLEY__SERVER__V1__CODE__CODE_INTERNAL,
				"undecodable pusher answer", true);
	if (ans)
		parley__v1__server_frame__free_unpacked(ans, NULL);
	return r;
}

/* Stats: sessions, online users and gateways from a presence snapshot. */
static void
calls_count_sessions(const Parley__Internal__V1__PresenceReply *rep,
		     Parley__Server__V1__StatsResponse *s)
{
	struct map users, gws;

	map_init(&users);
	map_init(&gws);
	for (size_t i = 0; i < rep->n_sessions; i++) {
		map_put(&users, rep->sessions[i]->user_id, &users);
		map_put(&gws, rep->sessions[i]->gateway, &gws);
	}
	s->sessions = rep->n_sessions;
	s->users_online = map_count(&users);
	s->gateways = map_count(&gws);
	map_release(&users);
	map_release(&gws);
}

static Response *
calls_stats(struct api *a, int timeout_ms)
{
	Parley__Internal__V1__PresenceRequest pq =
		PARLEY__INTERNAL__V1__PRESENCE_REQUEST__INIT;
	Parley__Internal__V1__PresenceReply *rep;
	Parley__Server__V1__StatsResponse *s;
	Response *r;
	int pipes;

	pq.req_case = PARLEY__INTERNAL__V1__PRESENCE_REQUEST__REQ_SNAPSHOT;
	pq.snapshot = true;
	if ((rep = calls_presence_ask(a, &pq, timeout_ms)) == NULL)
		return calls_error(PARLEY__SERVER__V1__CODE__CODE_UNAVAILABLE,
				   "presence unavailable; retry", true);
	s = xmalloc(sizeof(*s));
	parley__server__v1__stats_response__init(s);
	calls_count_sessions(rep, s);
	parley__internal__v1__presence_reply__free_unpacked(rep, NULL);
	pipes = __atomic_load_n(&a->router_pipes, __ATOMIC_RELAXED);
	s->routers = pipes > 0 ? (uint64_t)pipes : 0;
	s->calls = (uint64_t)metric_value(a->calls);
	s->calls_failed = (uint64_t)metric_value(a->failed);
	s->calls_in_flight = (uint64_t)metric_value(a->in_flight);
	r = calls_new();
	r->reply_case = PARLEY__SERVER__V1__RESPONSE__REPLY_STATS;
	r->stats = s;
	return r;
}

/* DisconnectUser: every gateway that holds a session of the user (from a
 * presence snapshot) closes them. Closing twice is harmless, so a retry
 * after a partial failure is safe. */
static int
calls_disconnect_gateway(struct api *a, const char *gateway, char *user)
{
	Parley__Internal__V1__Delivery d = PARLEY__INTERNAL__V1__DELIVERY__INIT;
	struct bus_batch b;

	d.user_ids = &user;
	d.n_user_ids = 1;
	d.close_code = API_CLOSE_DISCONNECTED;
	bus_batch_init(&b);
	bus_batch_add_pb(&b, &d.base);
	return link_to_gateway(a, gateway, bus_batch_take(&b));
}

static Response *
calls_disconnect(struct api *a, const char *user, int timeout_ms)
{
	Parley__Internal__V1__PresenceRequest pq =
		PARLEY__INTERNAL__V1__PRESENCE_REQUEST__INIT;
	Parley__Internal__V1__PresenceReply *rep;
	struct map done;
	int rc = 0;

	pq.req_case = PARLEY__INTERNAL__V1__PRESENCE_REQUEST__REQ_SNAPSHOT;
	pq.snapshot = true;
	if ((rep = calls_presence_ask(a, &pq, timeout_ms)) == NULL)
		return calls_error(PARLEY__SERVER__V1__CODE__CODE_UNAVAILABLE,
				   "presence unavailable; retry", true);
	map_init(&done);
	for (size_t i = 0; i < rep->n_sessions && rc == 0; i++) {
		const Parley__Internal__V1__Session *s = rep->sessions[i];

		if (strcmp(s->user_id, user) != 0 || map_get(&done, s->gateway))
			continue;
		map_put(&done, s->gateway, &done);
		rc = calls_disconnect_gateway(a, s->gateway, (char *)user);
	}
	map_release(&done);
	parley__internal__v1__presence_reply__free_unpacked(rep, NULL);
	if (rc < 0)
		return calls_error(PARLEY__SERVER__V1__CODE__CODE_UNAVAILABLE,
				   "a gateway is unreachable; retry", true);
	return calls_ok();
}

static Response *
calls_disconnect_user(struct api *a,
		      const Parley__Server__V1__DisconnectUserRequest *q,
		      int timeout_ms)
{
	if (!jwt_valid_user(q->user_id))
		return calls_bad("user_id is not a valid user id");
	if (!calls_valid_id(q->idempotency_key, CALLS_MAX_KEY))
		return calls_bad("idempotency_key must be 1-128 bytes");
	return calls_disconnect(a, q->user_id, timeout_ms);
}

/* RevokeTokens: the epoch first (durable), then the live sessions. */
static Response *
calls_revoke_tokens(struct api *a,
		    const Parley__Server__V1__RevokeTokensRequest *q,
		    int timeout_ms)
{
	if (!jwt_valid_user(q->user_id))
		return calls_bad("user_id is not a valid user id");
	if (!calls_valid_id(q->idempotency_key, CALLS_MAX_KEY))
		return calls_bad("idempotency_key must be 1-128 bytes");
	if (api_revoke(a, q->user_id, timeout_ms) < 0)
		return calls_error(PARLEY__SERVER__V1__CODE__CODE_UNAVAILABLE,
				   "revocation not written; retry", true);
	return calls_disconnect(a, q->user_id, timeout_ms);
}

/* The calls that change something (a Command through the routers). */
static Response *
calls_change(struct api *a, const Parley__Server__V1__Request *q, int ms)
{
	switch (q->call_case) {
	case PARLEY__SERVER__V1__REQUEST__CALL_PUBLISH:
		return calls_publish(a, q->publish, ms);
	case PARLEY__SERVER__V1__REQUEST__CALL_CREATE_ROOM:
		return calls_create_room(a, q->create_room, ms);
	case PARLEY__SERVER__V1__REQUEST__CALL_ADD_MEMBERS:
		return calls_add_members(a, q->add_members, ms);
	case PARLEY__SERVER__V1__REQUEST__CALL_REMOVE_MEMBER:
		return calls_remove_member(a, q->remove_member, ms);
	case PARLEY__SERVER__V1__REQUEST__CALL_DELETE_ROOM:
		return calls_delete_room(a, q->delete_room, ms);
	default:
		return NULL;
	}
}

Response *
calls_handle(struct api *a, const Parley__Server__V1__Request *q,
	     int timeout_ms)
{
	Response *r = calls_change(a, q, timeout_ms);

	if (r)
		return r;
	switch (q->call_case) {
	case PARLEY__SERVER__V1__REQUEST__CALL_GET_ROOM:
		return calls_get_room(a, q->get_room, timeout_ms);
	case PARLEY__SERVER__V1__REQUEST__CALL_LIST_USER_ROOMS:
		return calls_list_user_rooms(a, q->list_user_rooms, timeout_ms);
	case PARLEY__SERVER__V1__REQUEST__CALL_HISTORY:
		return calls_history(a, q->history, timeout_ms);
	case PARLEY__SERVER__V1__REQUEST__CALL_PRESENCE:
		return calls_presence(a, q->presence, timeout_ms);
	case PARLEY__SERVER__V1__REQUEST__CALL_REGISTER_DEVICE:
		return calls_register_device(a, q->register_device, timeout_ms);
	case PARLEY__SERVER__V1__REQUEST__CALL_STATS:
		return calls_stats(a, timeout_ms);
	case PARLEY__SERVER__V1__REQUEST__CALL_DISCONNECT_USER:
		return calls_disconnect_user(a, q->disconnect_user, timeout_ms);
	case PARLEY__SERVER__V1__REQUEST__CALL_REVOKE_TOKENS:
		return calls_revoke_tokens(a, q->revoke_tokens, timeout_ms);
	default:
		/* A call of a newer API arrives as an unknown field. */
		if (q->base.n_unknown_fields > 0)
			return calls_error(
				PARLEY__SERVER__V1__CODE__CODE_UNIMPLEMENTED,
				"call not known to this server", false);
		return calls_bad("no call in the request");
	}
}
