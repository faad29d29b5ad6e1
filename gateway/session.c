/* Sessions: authentication, the bounded outgoing queue of shared frames,
 * the session and user indexes, and routing of client frames to routers
 * (commands) or the store (queries). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway.h"
#include "log.h"
#include "pb.h"
#include "xalloc.h"

struct gw_user {
	struct gw_session **s;
	size_t n;
};

/* Frames. */

struct gw_frame *
frame_new(const void *data, size_t len)
{
	struct gw_frame *f = xmalloc(sizeof(*f) + LWS_PRE + len);

	f->refs = 1;
	f->len = len;
	memcpy(f->buf + LWS_PRE, data, len);
	return f;
}

struct gw_frame *
frame_from_pb(const Parley__V1__ServerFrame *pb)
{
	size_t len = parley__v1__server_frame__get_packed_size(pb);
	struct gw_frame *f = xmalloc(sizeof(*f) + LWS_PRE + len);

	f->refs = 1;
	f->len = len;
	parley__v1__server_frame__pack(pb, f->buf + LWS_PRE);
	return f;
}

void
frame_unref(struct gw_frame *f)
{
	if (f && --f->refs == 0)
		free(f);
}

/* Indexes. */

struct gw_session *
session_get(struct gateway *gw, const char *id)
{
	return map_get(&gw->sessions, id);
}

void
session_open(struct gateway *gw, const struct gw_transport *tp,
	     struct gw_session *s)
{
	s->tp = tp;
	s->gw = gw;
	s->state = GW_AUTH_WAIT;
	s->tokens = gw->cfg.send_burst; /* the send bucket starts full */
	s->bucket_ms = gw_now_ms();
	snprintf(s->id, sizeof(s->id), "%016llx-%llu",
		 (unsigned long long)gw->instance,
		 (unsigned long long)++gw->next_session);
	map_put(&gw->sessions, s->id, s);
	metric_add(gw->m->connections, 1);
}

/* Authenticated: findable by user for deliveries. */
static void
session_index_user(struct gw_session *s)
{
	struct gw_user *u = map_get(&s->gw->users, s->user);

	if (u == NULL) {
		u = xcalloc(1, sizeof(*u));
		map_put(&s->gw->users, s->user, u);
	}
	u->s = xrealloc(u->s, (u->n + 1) * sizeof(*u->s));
	u->s[u->n++] = s;
}

static void
session_unindex(struct gw_session *s)
{
	struct gw_user *u = s->user[0] ? map_get(&s->gw->users, s->user) : NULL;

	map_del(&s->gw->sessions, s->id);
	metric_add(s->gw->m->connections, -1);
	if (s->user[0])
		metric_add(s->gw->m->sessions, -1);
	for (size_t i = 0; u && i < u->n; i++)
		if (u->s[i] == s) {
			u->s[i] = u->s[--u->n];
			break;
		}
	if (u && u->n == 0) {
		map_del(&s->gw->users, s->user);
		free(u->s);
		free(u);
	}
}

/* Queue. */

static void
session_queue_clear(struct gw_session *s)
{
	while (s->head) {
		struct gw_qitem *q = s->head;

		s->head = q->next;
		frame_unref(q->frame);
		free(q);
	}
	s->tail = NULL;
	s->queued = 0;
}

void
session_close(struct gw_session *s, int code, const char *reason)
{
	if (s->state == GW_CLOSING)
		return;
	s->state = GW_CLOSING;
	s->close_code = code;
	s->close_reason = reason;
	/* A slow reader's backlog is dropped: it will sync what it missed. */
	if (code == GW_CLOSE_TOO_SLOW) {
		session_queue_clear(s);
		metric_add(s->gw->m->closes_slow, 1);
	} else if (code >= GW_CLOSE_UNAUTHORIZED &&
		   code <= GW_CLOSE_AUTH_TIMEOUT) {
		metric_add(s->gw->m->closes_auth, 1);
	} else if (code == GW_CLOSE_BAD_FRAME || code == GW_CLOSE_TOO_BIG) {
		metric_add(s->gw->m->closes_bad, 1);
	} else if (code == GW_CLOSE_REVOKED) {
		metric_add(s->gw->m->closes_revoked, 1);
	} else if (code >= GW_CLOSE_RATE_LIMITED) {
		metric_add(s->gw->m->closes_limit, 1);
	}
	LOG_DEBUG("gateway.close", "closing session %s with %d: %s", s->id,
		  code, reason);
	s->tp->wake(s);
}

void
session_send(struct gw_session *s, struct gw_frame *f)
{
	struct gw_qitem *q;

	if (s->state == GW_CLOSING || s->state == GW_AUTH_WAIT)
		return;
	/* One frame is always taken into an empty queue, however big (a
	 * Sync page can pass a small PARLEY_OUTQ_MAX). */
	if (s->head && s->queued + f->len > (size_t)s->gw->cfg.outq_max) {
		session_close(s, GW_CLOSE_TOO_SLOW, "too slow: not reading");
		return;
	}
	/* An idle session is written at once, or — while the inbox drains,
	 * when more may follow — at the drain's end, all together. */
	bool now = s->state == GW_LIVE && s->head == NULL && s->tp->flush;

	if (now && s->gw->batching) {
		now = false;
		s->dirty = true;
		s->dirty_next = s->gw->dirty;
		s->gw->dirty = s;
	}
	q = xmalloc(sizeof(*q));
	q->frame = f;
	q->next = NULL;
	f->refs++;
	if (s->tail)
		s->tail->next = q;
	else
		s->head = q;
	s->tail = q;
	s->queued += f->len;
	if (now)
		s->tp->flush(s);
	else if (s->state == GW_LIVE && !s->dirty)
		s->tp->wake(s);
}

void
session_flush_dirty(struct gateway *gw)
{
	while (gw->dirty) {
		struct gw_session *s = gw->dirty;

		gw->dirty = s->dirty_next;
		s->dirty = false;
		s->dirty_next = NULL;
		s->tp->flush(s);
	}
}

static void
session_undirty(struct gw_session *s)
{
	struct gw_session **p = &s->gw->dirty;

	while (s->dirty && *p) {
		if (*p == s) {
			*p = s->dirty_next;
			s->dirty = false;
		} else {
			p = &(*p)->dirty_next;
		}
	}
}

struct gw_qitem *
session_next(struct gw_session *s)
{
	struct gw_qitem *q = s->head;

	/* Nothing goes before the Welcome, which session_welcome puts first. */
	if (q == NULL || s->state == GW_WELCOME_WAIT)
		return NULL;
	s->head = q->next;
	if (s->head == NULL)
		s->tail = NULL;
	s->queued -= q->frame->len;
	q->next = NULL;
	return q;
}

bool
session_has_output(const struct gw_session *s)
{
	return (s->head && s->state != GW_WELCOME_WAIT) || s->close_code;
}

void
session_wrote(struct gw_session *s, const struct gw_qitem *q)
{
	metric_add(s->gw->m->bytes_out, (int64_t)q->frame->len);
	metric_add(s->gw->m->frames_out, 1);
}

void
session_requeue(struct gw_session *s, struct gw_qitem *head,
		struct gw_qitem *tail, size_t bytes)
{
	if (head == NULL)
		return;
	tail->next = s->head;
	s->head = head;
	if (s->tail == NULL)
		s->tail = tail;
	s->queued += bytes;
}

void
session_send_pb(struct gw_session *s, const Parley__V1__ServerFrame *pb)
{
	struct gw_frame *f = frame_from_pb(pb);

	session_send(s, f);
	frame_unref(f);
}

void
session_error(struct gw_session *s, uint64_t request_id, int code,
	      const char *msg, bool retryable)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__Error e = PARLEY__V1__ERROR__INIT;

	e.code = code;
	e.message = (char *)msg;
	e.retryable = retryable;
	f.request_id = request_id;
	f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_ERROR;
	f.error = &e;
	session_send_pb(s, &f);
}

void
session_deliver_user(struct gateway *gw, const char *user, struct gw_frame *f,
		     const char *except)
{
	struct gw_user *u = map_get(&gw->users, user);

	for (size_t i = 0; u && i < u->n; i++)
		if (except == NULL || strcmp(u->s[i]->id, except) != 0)
			session_send(u->s[i], f);
}

void
session_close_user(struct gateway *gw, const char *user, int code)
{
	struct gw_user *u = map_get(&gw->users, user);

	for (size_t i = 0; u && i < u->n; i++)
		session_close(u->s[i], code, "disconnected by the server");
}

/* Welcome: first frame of every session, once rooms and presence answered. */

static void
session_welcome(struct gw_session *s)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__Welcome w = PARLEY__V1__WELCOME__INIT;
	struct gw_qitem *q = xmalloc(sizeof(*q));

	w.user_id = s->user;
	w.session_id = s->id;
	w.server_time_ms = gw_now_ms();
	if (s->rooms) {
		w.rooms = s->rooms->rooms;
		w.n_rooms = s->rooms->n_rooms;
		w.rooms_complete = true;
	}
	f.request_id = s->welcome_request_id;
	f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_WELCOME;
	f.welcome = &w;
	q->frame = frame_from_pb(&f);
	q->next = s->head;
	s->head = q;
	if (s->tail == NULL)
		s->tail = q;
	s->queued += q->frame->len;
	s->state = GW_LIVE;
	s->tp->wake(s);
}

static void
session_maybe_welcome(struct gw_session *s)
{
	if (s->state == GW_WELCOME_WAIT && s->rooms_done && s->presence_done)
		session_welcome(s);
}

void
session_on_rooms(struct gw_session *s, Parley__V1__RoomList *rooms)
{
	if (s->rooms_done) {
		if (rooms)
			parley__v1__room_list__free_unpacked(rooms, NULL);
		return;
	}
	s->rooms = rooms;
	s->n_rooms = rooms ? rooms->n_rooms : 0;
	s->rooms_done = true;
	session_maybe_welcome(s);
}

void
session_on_presence(struct gw_session *s)
{
	s->presence_done = true;
	session_maybe_welcome(s);
}

/* Authentication. */

int
session_auth(struct gw_session *s, const char *token)
{
	Parley__Internal__V1__StoreRequest req =
		PARLEY__INTERNAL__V1__STORE_REQUEST__INIT;
	Parley__V1__ListRooms lr = PARLEY__V1__LIST_ROOMS__INIT;
	struct jwt_claims c;
	int rc = auth_verify(s->gw, token, &c);

	if (rc)
		return rc;
	lws_sul_cancel(&s->auth_sul);
	strcpy(s->user, c.sub);
	s->token_exp = c.exp + s->gw->cfg.jwt.leeway_s;
	s->token_iat = c.iat;
	s->token_has_iat = c.has_iat;
	s->state = GW_WELCOME_WAIT;
	session_index_user(s);
	metric_add(s->gw->m->sessions, 1);
	presence_session_up(s->gw, s);
	req.user_id = s->user;
	req.req_case = PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_LIST_ROOMS;
	req.list_rooms = &lr;
	rpc_store(s, 0, &req);
	return 0;
}

static void
session_query(struct gw_session *s, Parley__V1__ClientFrame *f)
{
	Parley__Internal__V1__StoreRequest req =
		PARLEY__INTERNAL__V1__STORE_REQUEST__INIT;

	req.user_id = s->user;
	if (f->msg_case == PARLEY__V1__CLIENT_FRAME__MSG_SYNC) {
		req.req_case = PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_SYNC;
		req.sync = f->sync;
	} else if (f->msg_case == PARLEY__V1__CLIENT_FRAME__MSG_SYNC_ROOMS) {
		req.req_case =
			PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_SYNC_ROOMS;
		req.sync_rooms = f->sync_rooms;
	} else if (f->msg_case == PARLEY__V1__CLIENT_FRAME__MSG_HISTORY) {
		req.req_case = PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_HISTORY;
		req.history = f->history;
	} else {
		req.req_case =
			PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_LIST_ROOMS;
		req.list_rooms = f->list_rooms;
	}
	rpc_store(s, f->request_id, &req);
}

static void
session_dispatch(struct gw_session *s, Parley__V1__ClientFrame *f)
{
	switch (f->msg_case) {
	case PARLEY__V1__CLIENT_FRAME__MSG_AUTH:
		session_error(s, f->request_id,
			      PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
			      "already authenticated", false);
		break;
	case PARLEY__V1__CLIENT_FRAME__MSG_SYNC:
	case PARLEY__V1__CLIENT_FRAME__MSG_SYNC_ROOMS:
	case PARLEY__V1__CLIENT_FRAME__MSG_HISTORY:
	case PARLEY__V1__CLIENT_FRAME__MSG_LIST_ROOMS:
		session_query(s, f);
		break;
	case PARLEY__V1__CLIENT_FRAME__MSG_CREATE_ROOM:
		if (limits_room(s, f->request_id))
			link_command(s->gw, s, f);
		break;
	case PARLEY__V1__CLIENT_FRAME__MSG_SEND:
	case PARLEY__V1__CLIENT_FRAME__MSG_DELIVERED:
	case PARLEY__V1__CLIENT_FRAME__MSG_READ:
	case PARLEY__V1__CLIENT_FRAME__MSG_ADD_MEMBERS:
	case PARLEY__V1__CLIENT_FRAME__MSG_REMOVE_MEMBER:
	case PARLEY__V1__CLIENT_FRAME__MSG_LEAVE_ROOM:
		link_command(s->gw, s, f);
		break;
	case PARLEY__V1__CLIENT_FRAME__MSG_TYPING:
	case PARLEY__V1__CLIENT_FRAME__MSG_GET_RECEIPTS:
	case PARLEY__V1__CLIENT_FRAME__MSG_GET_ROOM_PRESENCE:
		link_ephemeral(s->gw, s, f);
		break;
	case PARLEY__V1__CLIENT_FRAME__MSG_SUBSCRIBE_PRESENCE:
		subs_subscribe(s, f);
		break;
	case PARLEY__V1__CLIENT_FRAME__MSG_REGISTER_DEVICE:
	case PARLEY__V1__CLIENT_FRAME__MSG_UNREGISTER_DEVICE:
		device_forward(s, f);
		break;
	default:
		session_error(s, f->request_id,
			      PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
			      "unsupported request", false);
	}
}

/* Before authentication only Auth is accepted. */
static void
session_on_first(struct gw_session *s, Parley__V1__ClientFrame *f)
{
	int code;

	if (f->msg_case != PARLEY__V1__CLIENT_FRAME__MSG_AUTH ||
	    f->auth->token == NULL) {
		session_close(s, GW_CLOSE_UNAUTHORIZED, "authenticate first");
		return;
	}
	s->welcome_request_id = f->request_id;
	code = session_auth(s, f->auth->token);
	if (code)
		session_close(s, code, "authentication failed");
}

void
session_on_message(struct gw_session *s, const uint8_t *buf, size_t len)
{
	Parley__V1__ClientFrame *f;

	metric_add(s->gw->m->frames_in, 1);
	f = parley__v1__client_frame__unpack(NULL, len, buf);
	if (f == NULL || !pb_tags_valid(&f->base)) {
		if (f)
			parley__v1__client_frame__free_unpacked(f, NULL);
		session_close(s, GW_CLOSE_BAD_FRAME, "not a ClientFrame");
		return;
	}
	if (s->state == GW_AUTH_WAIT)
		session_on_first(s, f);
	else if (s->token_exp <= time(NULL))
		session_close(s, GW_CLOSE_TOKEN_EXPIRED, "token expired");
	else if (s->state != GW_CLOSING && limits_allow(s, f->request_id))
		session_dispatch(s, f);
	parley__v1__client_frame__free_unpacked(f, NULL);
}

void
session_destroy(struct gw_session *s)
{
	if (s->gw == NULL)
		return;
	session_unindex(s);
	session_undirty(s); /* never listed outside a drain; to be safe */
	rpc_release_held(s);
	subs_drop(s);
	if (s->user[0])
		presence_session_down(s->gw, s);
	session_queue_clear(s);
	free(s->rx);
	if (s->rooms)
		parley__v1__room_list__free_unpacked(s->rooms, NULL);
	s->gw = NULL;
}
