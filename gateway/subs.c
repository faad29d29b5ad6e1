/* Presence subscriptions: SubscribePresence replaces a session's set of
 * watched users; the gateway answers with each user's state (a lookup at
 * presence) and then pushes Presence whenever presence's coalesced user
 * feed says a watched user went online or offline (docs/PROTOCOL.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "log.h"
#include "xalloc.h"

/* Users one session may watch. */
#define SUBS_MAX 1000
/* Users per lookup when every watched user is read again. */
#define SUBS_REFRESH_BATCH 1000
/* After a presence restart, how long gateways get to report their
 * sessions again before the watched users are read again: earlier, the
 * new presence would still call everyone offline. */
#define SUBS_REFRESH_DELAY_US (5 * LWS_US_PER_SEC)

/* A watched user: who watches it, and the freshest state known, with the
 * presence epoch and version it was true at. */
struct subs_user {
	struct map sessions; /* session id -> (void *)1 */
	bool known;
	bool online;
	int64_t last_seen_ms;
	uint64_t epoch, version;
};

/* One session's set, without duplicates. */
struct subs_session {
	char **users;
	size_t n;
};

struct gw_subs {
	struct gateway *gw;
	nng_socket req; /* lookups */
	nng_socket sub; /* PresenceUpdate */
	pthread_t thread;
	bool running;
	struct map users;    /* user id -> struct subs_user * */
	struct map sessions; /* session id -> struct subs_session * */
	uint64_t epoch;	     /* presence's, from publications; 0 before */
	lws_sorted_usec_list_t refresh_sul;
};

/* The receiver thread: never touches the index or a session. */

/* Whether the service thread needs this publication: it has user states,
 * or a new epoch (presence restarted). */
static bool
subs_wanted(nng_msg *m, uint64_t *epoch)
{
	Parley__Internal__V1__PresenceUpdate *u =
		parley__internal__v1__presence_update__unpack(
			NULL, nng_msg_len(m), nng_msg_body(m));
	bool want;

	if (u == NULL)
		return false;
	want = u->n_users > 0 || u->epoch != *epoch;
	*epoch = u->epoch;
	parley__internal__v1__presence_update__free_unpacked(u, NULL);
	return want;
}

static void *
subs_receiver(void *arg)
{
	struct gateway *gw = arg;
	uint64_t epoch = 0;

	for (;;) {
		struct gw_inbox_item *it;
		nng_msg *m;
		int rc = nng_recvmsg(gw->subs->sub, &m, 0);

		if (rc == NNG_ECLOSED)
			return NULL;
		if (rc != 0)
			continue;
		if (!subs_wanted(m, &epoch)) {
			nng_msg_free(m);
			continue;
		}
		it = xcalloc(1, sizeof(*it));
		it->kind = GW_IN_PRESENCE_PUB;
		it->msg = m; /* the inbox owns it now */
		inbox_push(gw, it);
	}
}

/* Set-up and tear-down. */

int
subs_open(struct gateway *gw)
{
	struct gw_subs *sb = xcalloc(1, sizeof(*sb));
	int rc;

	sb->gw = gw;
	map_init(&sb->users);
	map_init(&sb->sessions);
	gw->subs = sb;
	if ((rc = bus_open(&sb->req, "req")) < 0 ||
	    (rc = bus_dial(sb->req, gw->cfg.presence_url)) < 0 ||
	    (rc = bus_open(&sb->sub, "sub")) < 0 ||
	    (rc = bus_dial(sb->sub, gw->cfg.presence_pub)) < 0)
		return rc;
	if (pthread_create(&sb->thread, NULL, subs_receiver, gw) != 0)
		return -EAGAIN;
	sb->running = true;
	return 0;
}

void
subs_close(struct gateway *gw)
{
	struct gw_subs *sb = gw->subs;

	lws_sul_cancel(&sb->refresh_sul);
	nng_close(sb->sub);
	if (sb->running)
		pthread_join(sb->thread, NULL);
	sb->running = false;
	nng_close(sb->req);
}

static void
subs_session_free(struct subs_session *ss)
{
	for (size_t i = 0; i < ss->n; i++)
		free(ss->users[i]);
	free(ss->users);
	free(ss);
}

void
subs_free(struct gateway *gw)
{
	struct gw_subs *sb = gw->subs;
	size_t pos = 0;
	const char *key;
	void *v;

	if (sb == NULL)
		return;
	while (map_next(&sb->sessions, &pos, &key, &v))
		subs_session_free(v);
	for (pos = 0; map_next(&sb->users, &pos, &key, &v);) {
		struct subs_user *u = v;

		map_release(&u->sessions);
		free(u);
	}
	map_release(&sb->sessions);
	map_release(&sb->users);
	free(sb);
	gw->subs = NULL;
}

/* The index. */

static void
subs_watch(struct gw_subs *sb, const char *user, const char *sid)
{
	struct subs_user *u = map_get(&sb->users, user);

	if (u == NULL) {
		u = xcalloc(1, sizeof(*u));
		map_init(&u->sessions);
		map_put(&sb->users, user, u);
	}
	map_put(&u->sessions, sid, (void *)1);
}

static void
subs_unwatch(struct gw_subs *sb, const char *user, const char *sid)
{
	struct subs_user *u = map_get(&sb->users, user);

	if (u == NULL)
		return;
	map_del(&u->sessions, sid);
	if (map_count(&u->sessions) > 0)
		return;
	map_del(&sb->users, user);
	map_release(&u->sessions);
	free(u);
}

/* Forget the set of session sid. */
static void
subs_forget(struct gw_subs *sb, const char *sid)
{
	struct subs_session *ss = map_del(&sb->sessions, sid);

	if (ss == NULL)
		return;
	for (size_t i = 0; i < ss->n; i++)
		subs_unwatch(sb, ss->users[i], sid);
	subs_session_free(ss);
}

void
subs_drop(struct gw_session *s)
{
	if (s->gw != NULL && s->gw->subs != NULL)
		subs_forget(s->gw->subs, s->id);
}

/* The watched user, when session sid watches it; else NULL. */
static struct subs_user *
subs_watched(struct gw_subs *sb, const char *user, const char *sid)
{
	struct subs_user *u = map_get(&sb->users, user);

	return u != NULL && map_get(&u->sessions, sid) != NULL ? u : NULL;
}

/* States. */

/* Take in a state that was true at (epoch, version), unless we know a
 * later one. True when the online state is news. */
static bool
subs_learn(struct subs_user *u, const Parley__Internal__V1__UserState *st,
	   uint64_t epoch, uint64_t version)
{
	bool news = !u->known || u->online != st->online;

	if (u->known && u->epoch == epoch && u->version > version)
		return false;
	u->known = true;
	u->online = st->online;
	u->last_seen_ms = st->last_seen_ms;
	u->epoch = epoch;
	u->version = version;
	return news;
}

static void
subs_frame(Parley__V1__ServerFrame *f, Parley__V1__Presence *p,
	   const char *user, const struct subs_user *u, uint64_t request_id)
{
	parley__v1__presence__init(p);
	p->user_id = (char *)user;
	p->online = u->online;
	p->last_seen_ms = u->last_seen_ms;
	f->request_id = request_id;
	f->msg_case = PARLEY__V1__SERVER_FRAME__MSG_PRESENCE;
	f->presence = p;
}

/* Push u's state to every session watching it but except (may be NULL). */
static void
subs_push(struct gateway *gw, const char *user, const struct subs_user *u,
	  const char *except)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__Presence p;
	struct gw_frame *fr;
	size_t pos = 0;
	const char *sid;
	void *v;

	subs_frame(&f, &p, user, u, 0);
	fr = frame_from_pb(&f);
	while (map_next(&u->sessions, &pos, &sid, &v)) {
		struct gw_session *s = session_get(gw, sid);

		if (s != NULL && (except == NULL || strcmp(sid, except) != 0))
			session_send(s, fr);
	}
	frame_unref(fr);
}

/* Lookups. */

/* Ask presence for the state of n users; the answer comes to the inbox
 * for session sid ("" for a refresh of every watcher). */
static void
subs_lookup(struct gateway *gw, const char *sid, uint64_t request_id,
	    char **users, size_t n)
{
	Parley__Internal__V1__PresenceRequest q =
		PARLEY__INTERNAL__V1__PRESENCE_REQUEST__INIT;
	Parley__Internal__V1__UserList l =
		PARLEY__INTERNAL__V1__USER_LIST__INIT;
	size_t len;
	nng_msg *m;

	l.user_ids = users;
	l.n_user_ids = n;
	q.req_case = PARLEY__INTERNAL__V1__PRESENCE_REQUEST__REQ_LOOKUP;
	q.lookup = &l;
	len = parley__internal__v1__presence_request__get_packed_size(&q);
	if (nng_msg_alloc(&m, len) != 0)
		abort(); /* allocation failure aborts, as xmalloc does */
	parley__internal__v1__presence_request__pack(&q, nng_msg_body(m));
	rpc_call(gw, gw->subs->req, GW_IN_PRESENCE_LOOKUP, sid, request_id, m);
}

/* Read every watched user again (after a presence restart). */
static void
subs_refresh(struct gw_subs *sb)
{
	char **batch = xcalloc(SUBS_REFRESH_BATCH, sizeof(*batch));
	size_t pos = 0, n = 0;
	const char *user;
	void *v;

	LOG_INFO("gateway.subs_refresh",
		 "reading the state of %zu watched users again",
		 map_count(&sb->users));
	/* The keys stay valid: subs_lookup packs them before returning. */
	while (map_next(&sb->users, &pos, &user, &v)) {
		batch[n++] = (char *)user;
		if (n == SUBS_REFRESH_BATCH) {
			subs_lookup(sb->gw, "", 0, batch, n);
			n = 0;
		}
	}
	if (n > 0)
		subs_lookup(sb->gw, "", 0, batch, n);
	free(batch);
}

static void
on_refresh(lws_sorted_usec_list_t *sul)
{
	subs_refresh(lws_container_of(sul, struct gw_subs, refresh_sul));
}

/* SubscribePresence. */

/* NULL when the request is acceptable, else why not. */
static const char *
subs_check(const Parley__V1__SubscribePresence *sp)
{
	if (sp == NULL)
		return "SubscribePresence: missing";
	if (sp->n_user_ids > SUBS_MAX)
		return "SubscribePresence: at most 1000 user ids";
	for (size_t i = 0; i < sp->n_user_ids; i++)
		if (!jwt_valid_user(sp->user_ids[i]))
			return "SubscribePresence: invalid user id";
	return NULL;
}

static struct subs_session *
subs_session_new(const Parley__V1__SubscribePresence *sp)
{
	struct subs_session *ss = xcalloc(1, sizeof(*ss));
	struct map seen;

	map_init(&seen);
	ss->users = xcalloc(sp->n_user_ids, sizeof(*ss->users));
	for (size_t i = 0; i < sp->n_user_ids; i++) {
		if (map_put(&seen, sp->user_ids[i], (void *)1) != NULL)
			continue;
		ss->users[ss->n++] = xstrdup(sp->user_ids[i]);
	}
	map_release(&seen);
	return ss;
}

static void
subs_ok(struct gw_session *s, uint64_t request_id)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__Ok ok = PARLEY__V1__OK__INIT;

	f.request_id = request_id;
	f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_OK;
	f.ok = &ok;
	session_send_pb(s, &f);
}

void
subs_subscribe(struct gw_session *s, const Parley__V1__ClientFrame *f)
{
	const Parley__V1__SubscribePresence *sp = f->subscribe_presence;
	struct gw_subs *sb = s->gw->subs;
	const char *err = subs_check(sp);
	struct subs_session *ss;

	if (err != NULL) {
		session_error(s, f->request_id,
			      PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
			      err, false);
		return;
	}
	subs_forget(sb, s->id);
	if (sp->n_user_ids == 0) {
		subs_ok(s, f->request_id);
		return;
	}
	ss = subs_session_new(sp);
	map_put(&sb->sessions, s->id, ss);
	for (size_t i = 0; i < ss->n; i++)
		subs_watch(sb, ss->users[i], s->id);
	subs_lookup(s->gw, s->id, f->request_id, ss->users, ss->n);
}

/* Answers and publications (service thread). */

/* The answer to one session's SubscribePresence: one Presence per watched
 * user, with its request_id; news also goes to the other watchers. */
static void
subs_on_answer(struct gw_subs *sb, struct gw_session *s, uint64_t request_id,
	       const Parley__Internal__V1__PresenceReply *rep)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__Presence p;

	for (size_t i = 0; i < rep->n_users; i++) {
		const Parley__Internal__V1__UserState *st = rep->users[i];
		struct subs_user *u = subs_watched(sb, st->user_id, s->id);
		bool was_known;

		if (u == NULL)
			continue; /* no longer watched by s */
		was_known = u->known;
		if (subs_learn(u, st, rep->epoch, rep->version) && was_known)
			subs_push(sb->gw, st->user_id, u, s->id);
		subs_frame(&f, &p, st->user_id, u, request_id);
		session_send_pb(s, &f);
	}
}

/* The answer to a refresh: news goes to every watcher. */
static void
subs_on_refresh(struct gw_subs *sb,
		const Parley__Internal__V1__PresenceReply *rep)
{
	for (size_t i = 0; i < rep->n_users; i++) {
		const Parley__Internal__V1__UserState *st = rep->users[i];
		struct subs_user *u = map_get(&sb->users, st->user_id);

		if (u != NULL && subs_learn(u, st, rep->epoch, rep->version))
			subs_push(sb->gw, st->user_id, u, NULL);
	}
}

static void
subs_on_lookup(struct gw_subs *sb, struct gw_inbox_item *it)
{
	struct gw_session *s = session_get(sb->gw, it->session_id);
	Parley__Internal__V1__PresenceReply *rep = NULL;

	if (it->msg != NULL)
		rep = parley__internal__v1__presence_reply__unpack(
			NULL, nng_msg_len(it->msg), nng_msg_body(it->msg));
	if (rep != NULL && rep->error[0] != '\0') {
		LOG_WARN("gateway.subs_lookup", "presence refused a lookup: %s",
			 rep->error);
		parley__internal__v1__presence_reply__free_unpacked(rep, NULL);
		rep = NULL;
	}
	if (it->session_id[0] == '\0' && rep != NULL)
		subs_on_refresh(sb, rep);
	else if (s != NULL && rep != NULL)
		subs_on_answer(sb, s, it->request_id, rep);
	else if (s != NULL)
		session_error(s, it->request_id,
			      PARLEY__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE,
			      "presence unavailable; subscribe again", true);
	if (rep != NULL)
		parley__internal__v1__presence_reply__free_unpacked(rep, NULL);
}

static void
subs_on_pub(struct gw_subs *sb, nng_msg *m)
{
	Parley__Internal__V1__PresenceUpdate *u =
		parley__internal__v1__presence_update__unpack(
			NULL, nng_msg_len(m), nng_msg_body(m));

	if (u == NULL)
		return;
	if (sb->epoch != 0 && u->epoch != sb->epoch)
		lws_sul_schedule(sb->gw->ctx, 0, &sb->refresh_sul, on_refresh,
				 SUBS_REFRESH_DELAY_US);
	sb->epoch = u->epoch;
	for (size_t i = 0; i < u->n_users; i++) {
		const Parley__Internal__V1__UserState *st = u->users[i];
		struct subs_user *su = map_get(&sb->users, st->user_id);

		if (su != NULL && subs_learn(su, st, u->epoch, u->version))
			subs_push(sb->gw, st->user_id, su, NULL);
	}
	parley__internal__v1__presence_update__free_unpacked(u, NULL);
}

void
subs_on_inbox(struct gateway *gw, struct gw_inbox_item *it)
{
	if (gw->subs == NULL)
		return;
	if (it->kind == GW_IN_PRESENCE_PUB && it->msg != NULL)
		subs_on_pub(gw->subs, it->msg);
	else if (it->kind == GW_IN_PRESENCE_LOOKUP)
		subs_on_lookup(gw->subs, it);
}
