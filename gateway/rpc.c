/* Requests from the gateway to the store (Sync, History, ListRooms) and to
 * presence (session reports, which also renew the gateway's lease). Both
 * use NNG asynchronous I/O; completions travel through the inbox. */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "log.h"
#include "xalloc.h"

#define PRESENCE_EVERY_US (2 * LWS_US_PER_SEC)
#define PRESENCE_RETRY_US (500 * LWS_US_PER_MS)

/* Store calls. */

struct rpc_call {
	struct gateway *gw;
	nng_ctx ctx;
	nng_aio *aio;
	bool sent;
	enum gw_inbox_kind kind;
	char session_id[48];
	uint64_t request_id;
};

static void
rpc_finish(struct rpc_call *c, nng_msg *m, int err)
{
	struct gw_inbox_item *it = xcalloc(1, sizeof(*it));

	it->kind = c->kind;
	it->msg = m;
	it->err = err;
	strcpy(it->session_id, c->session_id);
	it->request_id = c->request_id;
	inbox_push(c->gw, it);
	nng_ctx_close(c->ctx);
	nng_aio_reap(c->aio);
	free(c);
}

/* Runs on an NNG thread: send done -> receive; receive done -> inbox. */
static void
on_rpc(void *arg)
{
	struct rpc_call *c = arg;
	int rc = nng_aio_result(c->aio);

	if (rc != 0) {
		if (!c->sent)
			nng_msg_free(nng_aio_get_msg(c->aio));
		rpc_finish(c, NULL, bus_err(rc));
		return;
	}
	if (!c->sent) {
		c->sent = true;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	rpc_finish(c, nng_aio_get_msg(c->aio), 0);
}

/* Send an encoded request on sock; the answer comes to the inbox. Also
 * used by subs.c for presence lookups. */
void
rpc_call(struct gateway *gw, nng_socket sock, enum gw_inbox_kind kind,
	 const char *session_id, uint64_t request_id, nng_msg *m)
{
	struct rpc_call *c = xcalloc(1, sizeof(*c));
	int rc;

	c->gw = gw;
	c->kind = kind;
	snprintf(c->session_id, sizeof(c->session_id), "%s", session_id);
	c->request_id = request_id;
	if ((rc = nng_ctx_open(&c->ctx, sock)) != 0 ||
	    (rc = nng_aio_alloc(&c->aio, on_rpc, c)) != 0) {
		nng_msg_free(m);
		c->aio = NULL;
		LOG_WARN("gateway.rpc", "cannot start a request: %s",
			 nng_strerror(rc));
		rpc_finish(c, NULL, bus_err(rc));
		return;
	}
	nng_aio_set_timeout(c->aio, gw->cfg.rpc_timeout_ms);
	nng_aio_set_msg(c->aio, m);
	nng_ctx_send(c->ctx, c->aio);
}

/* Send the oldest held query if fewer than GW_QUERIES_MAX are out. */
static void
rpc_next_held(struct gw_session *s)
{
	struct gw_held_query *h = s->held;

	if (h == NULL || s->queries >= GW_QUERIES_MAX)
		return;
	s->held = h->next;
	if (s->held == NULL)
		s->held_tail = NULL;
	s->n_held--;
	s->queries++;
	rpc_call(s->gw, s->gw->store, GW_IN_STORE_REPLY, s->id, h->request_id,
		 h->msg);
	free(h);
}

void
rpc_store(struct gw_session *s, uint64_t request_id,
	  Parley__Internal__V1__StoreRequest *req)
{
	struct gw_held_query *h;
	nng_msg *m;

	if (s->queries >= GW_QUERIES_MAX && s->n_held >= GW_HELD_MAX) {
		session_error(s, request_id,
			      PARLEY__V1__ERROR_CODE__ERROR_CODE_RATE_LIMITED,
			      "too many queries waiting for answers", true);
		return;
	}
	nng_msg_alloc(
		&m, parley__internal__v1__store_request__get_packed_size(req));
	parley__internal__v1__store_request__pack(req, nng_msg_body(m));
	h = xmalloc(sizeof(*h));
	h->msg = m;
	h->request_id = request_id;
	h->next = NULL;
	if (s->held_tail)
		s->held_tail->next = h;
	else
		s->held = h;
	s->held_tail = h;
	s->n_held++;
	rpc_next_held(s);
}

void
rpc_release_held(struct gw_session *s)
{
	while (s->held) {
		struct gw_held_query *h = s->held;

		s->held = h->next;
		nng_msg_free(h->msg);
		free(h);
	}
	s->held_tail = NULL;
	s->n_held = 0;
}

static void
rpc_reply(struct gw_session *s, uint64_t request_id,
	  Parley__Internal__V1__StoreReply *rep)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;

	f.request_id = request_id;
	if (rep->reply_case ==
	    PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_SYNC_RESULT) {
		f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_SYNC_RESULT;
		f.sync_result = rep->sync_result;
	} else if (rep->reply_case ==
		   PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_SYNC_ROOMS_RESULT) {
		f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_SYNC_ROOMS_RESULT;
		f.sync_rooms_result = rep->sync_rooms_result;
	} else if (rep->reply_case ==
		   PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ROOM_LIST) {
		f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_ROOM_LIST;
		f.room_list = rep->room_list;
	} else if (rep->reply_case ==
		   PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ERROR) {
		f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_ERROR;
		f.error = rep->error;
	} else {
		session_error(s, request_id,
			      PARLEY__V1__ERROR_CODE__ERROR_CODE_INTERNAL,
			      "empty answer from the store", true);
		return;
	}
	session_send_pb(s, &f);
}

/* The answer to the Welcome's room list (request_id 0 while waiting). */
static void
rpc_welcome_rooms(struct gw_session *s, Parley__Internal__V1__StoreReply *rep)
{
	Parley__V1__RoomList *rooms = NULL;

	if (rep && rep->reply_case ==
			   PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ROOM_LIST) {
		rooms = rep->room_list;
		rep->room_list = NULL;
		rep->reply_case =
			PARLEY__INTERNAL__V1__STORE_REPLY__REPLY__NOT_SET;
	}
	session_on_rooms(s, rooms);
}

void
rpc_on_store_reply(struct gateway *gw, struct gw_inbox_item *it)
{
	struct gw_session *s = session_get(gw, it->session_id);
	Parley__Internal__V1__StoreReply *rep = NULL;

	if (s == NULL)
		return;
	if (s->queries > 0)
		s->queries--;
	if (s->state == GW_CLOSING) {
		/* Not decoded: a reader closed as too slow may be owed
		 * several pages. */
		rpc_release_held(s);
		return;
	}
	if (it->msg)
		rep = parley__internal__v1__store_reply__unpack(
			NULL, nng_msg_len(it->msg), nng_msg_body(it->msg));
	if (s->state == GW_WELCOME_WAIT && !s->rooms_done)
		rpc_welcome_rooms(s, rep);
	else if (rep)
		rpc_reply(s, it->request_id, rep);
	else
		session_error(s, it->request_id,
			      PARLEY__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE,
			      "history unavailable; retry", true);
	if (rep)
		parley__internal__v1__store_reply__free_unpacked(rep, NULL);
	rpc_next_held(s);
}

/* Presence reports. */

struct gw_presence_change {
	char user[JWT_SUB_MAX + 1];
	char session_id[48];
	bool up;
};

struct gw_presence {
	nng_socket sock;
	bool closed;
	bool in_flight;
	bool need_full;
	uint64_t epoch;
	struct gw_presence_change *pending;
	size_t n_pending, cap_pending;
	/* Sessions whose "up" is in the report in flight. */
	char (*flight_ids)[48];
	size_t n_flight;
};

static void presence_kick(struct gateway *gw);

static void
on_presence_timer(lws_sorted_usec_list_t *sul)
{
	struct gateway *gw =
		lws_container_of(sul, struct gateway, presence_sul);

	presence_kick(gw);
	lws_sul_schedule(gw->ctx, 0, &gw->presence_sul, on_presence_timer,
			 PRESENCE_EVERY_US);
}

int
presence_open(struct gateway *gw)
{
	struct gw_presence *p = xcalloc(1, sizeof(*p));
	int rc;

	gw->pres = p;
	p->need_full = true;
	if ((rc = bus_open(&p->sock, "req")) < 0 ||
	    (rc = bus_dial(p->sock, gw->cfg.presence_url)) < 0)
		return rc;
	lws_sul_schedule(gw->ctx, 0, &gw->presence_sul, on_presence_timer, 1);
	return 0;
}

void
presence_close(struct gateway *gw)
{
	gw->pres->closed = true;
	lws_sul_cancel(&gw->presence_sul);
	nng_close(gw->pres->sock);
}

void
presence_free(struct gateway *gw)
{
	free(gw->pres->pending);
	free(gw->pres->flight_ids);
	free(gw->pres);
	gw->pres = NULL;
}

static void
presence_change(struct gateway *gw, struct gw_session *s, bool up)
{
	struct gw_presence *p = gw->pres;
	struct gw_presence_change *c;

	if (p == NULL || p->closed)
		return;
	if (p->n_pending == p->cap_pending) {
		p->cap_pending = p->cap_pending ? p->cap_pending * 2 : 16;
		p->pending = xrealloc(p->pending,
				      p->cap_pending * sizeof(*p->pending));
	}
	c = &p->pending[p->n_pending++];
	strcpy(c->user, s->user);
	strcpy(c->session_id, s->id);
	c->up = up;
	presence_kick(gw);
}

void
presence_session_up(struct gateway *gw, struct gw_session *s)
{
	presence_change(gw, s, true);
}

void
presence_session_down(struct gateway *gw, struct gw_session *s)
{
	presence_change(gw, s, false);
}

/* Add one session to a report, remembering "up"s for their Welcome. */
static void
presence_add(struct gw_presence *p, Parley__Internal__V1__PresenceReport *r,
	     Parley__Internal__V1__Session *ss, const char *gateway,
	     const char *user, const char *id, bool up)
{
	parley__internal__v1__session__init(ss);
	ss->user_id = (char *)user;
	ss->session_id = (char *)id;
	ss->gateway = (char *)gateway;
	if (up) {
		r->up[r->n_up++] = ss;
		strcpy(p->flight_ids[p->n_flight++], id);
	} else {
		r->down[r->n_down++] = ss;
	}
}

/* Full report: every authenticated session of this gateway. */
static void
presence_fill_full(struct gateway *gw, Parley__Internal__V1__PresenceReport *r,
		   Parley__Internal__V1__Session *ss)
{
	size_t pos = 0, i = 0;
	const char *key;
	void *val;

	r->full = true;
	while (map_next(&gw->sessions, &pos, &key, &val)) {
		struct gw_session *s = val;

		if (s->user[0])
			presence_add(gw->pres, r, &ss[i++], gw->cfg.nng_listen,
				     s->user, s->id, true);
	}
}

static void
presence_fill_changes(struct gateway *gw,
		      Parley__Internal__V1__PresenceReport *r,
		      Parley__Internal__V1__Session *ss)
{
	struct gw_presence *p = gw->pres;

	for (size_t i = 0; i < p->n_pending; i++)
		presence_add(p, r, &ss[i], gw->cfg.nng_listen,
			     p->pending[i].user, p->pending[i].session_id,
			     p->pending[i].up);
}

/* Send what changed (or everything) unless a report is in flight. */
static void
presence_kick(struct gateway *gw)
{
	Parley__Internal__V1__PresenceRequest q =
		PARLEY__INTERNAL__V1__PRESENCE_REQUEST__INIT;
	Parley__Internal__V1__PresenceReport r =
		PARLEY__INTERNAL__V1__PRESENCE_REPORT__INIT;
	struct gw_presence *p = gw->pres;
	size_t n = p->need_full ? map_count(&gw->sessions) : p->n_pending;
	Parley__Internal__V1__Session *ss = xcalloc(n + 1, sizeof(*ss));
	nng_msg *m;

	if (p->in_flight || p->closed) {
		free(ss);
		return;
	}
	r.gateway = (char *)gw->cfg.nng_listen;
	r.up = xcalloc(n + 1, sizeof(*r.up));
	r.down = xcalloc(n + 1, sizeof(*r.down));
	p->flight_ids =
		xrealloc(p->flight_ids, (n + 1) * sizeof(*p->flight_ids));
	p->n_flight = 0;
	if (p->need_full)
		presence_fill_full(gw, &r, ss);
	else
		presence_fill_changes(gw, &r, ss);
	p->n_pending = 0;
	p->need_full = false;
	q.req_case = PARLEY__INTERNAL__V1__PRESENCE_REQUEST__REQ_REPORT;
	q.report = &r;
	nng_msg_alloc(
		&m,
		parley__internal__v1__presence_request__get_packed_size(&q));
	parley__internal__v1__presence_request__pack(&q, nng_msg_body(m));
	p->in_flight = true;
	rpc_call(gw, p->sock, GW_IN_PRESENCE, "", 0, m);
	free(r.up);
	free(r.down);
	free(ss);
}

/* Every session in the report may now get its Welcome. */
static void
presence_release(struct gateway *gw)
{
	struct gw_presence *p = gw->pres;

	for (size_t i = 0; i < p->n_flight; i++) {
		struct gw_session *s = session_get(gw, p->flight_ids[i]);

		if (s)
			session_on_presence(s);
	}
	p->n_flight = 0;
}

void
presence_on_reply(struct gateway *gw, struct gw_inbox_item *it)
{
	struct gw_presence *p = gw->pres;
	Parley__Internal__V1__PresenceReply *rep = NULL;

	if (p == NULL || p->closed)
		return;
	p->in_flight = false;
	presence_release(gw);
	if (it->msg)
		rep = parley__internal__v1__presence_reply__unpack(
			NULL, nng_msg_len(it->msg), nng_msg_body(it->msg));
	if (rep == NULL) {
		/* Presence may or may not have applied it: say it all again. */
		p->need_full = true;
		lws_sul_schedule(gw->ctx, 0, &gw->presence_sul,
				 on_presence_timer, PRESENCE_RETRY_US);
		return;
	}
	if (rep->epoch != p->epoch) {
		if (p->epoch)
			LOG_INFO("gateway.presence_restart",
				 "presence "
				 "restarted: reporting every session again");
		p->need_full = p->epoch != 0 || p->need_full;
		p->epoch = rep->epoch;
	}
	parley__internal__v1__presence_reply__free_unpacked(rep, NULL);
	if (p->need_full || p->n_pending)
		presence_kick(gw);
}
