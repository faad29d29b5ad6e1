/* The router's replica of the presence registry: which gateways hold
 * sessions of which users. Publications keep it current; a version gap, a
 * new presence epoch or a start triggers a full snapshot, because NNG
 * pub/sub may drop publications by design. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include "log.h"
#include "router.h"
#include "xalloc.h"

#define REPLICA_RETRY_MS   500
#define REPLICA_TIMEOUT_MS 2000
#define REPLICA_DRAIN_MAX  256

struct replica_gw {
	char *gateway;
	int sessions;
};

struct replica_user {
	struct replica_gw *gws;
	size_t n;
};

int
replica_open(struct replica *rp, const char *req_url, const char *pub_url)
{
	int rc;

	map_init(&rp->sessions);
	map_init(&rp->users);
	rp->stale = true;
	if ((rc = bus_open(&rp->req, "req")) < 0 ||
	    (rc = bus_dial(rp->req, req_url)) < 0)
		return rc;
	if ((rc = bus_open(&rp->sub, "sub")) < 0)
		return rc;
	if ((rc = nng_socket_set(rp->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0)))
		return bus_err(rc);
	return bus_dial(rp->sub, pub_url);
}

static void
replica_user_free(struct replica_user *u)
{
	for (size_t i = 0; i < u->n; i++)
		free(u->gws[i].gateway);
	free(u->gws);
	free(u);
}

static void
replica_clear(struct replica *rp)
{
	size_t pos = 0;
	const char *key;
	void *val;

	while (map_next(&rp->sessions, &pos, &key, &val))
		free(val);
	pos = 0;
	while (map_next(&rp->users, &pos, &key, &val))
		replica_user_free(val);
	map_release(&rp->sessions);
	map_release(&rp->users);
}

void
replica_close(struct replica *rp)
{
	replica_clear(rp);
	nng_close(rp->req);
	nng_close(rp->sub);
}

static void
replica_user_add(struct replica *rp, const char *user, const char *gateway)
{
	struct replica_user *u = map_get(&rp->users, user);

	if (u == NULL) {
		u = xcalloc(1, sizeof(*u));
		map_put(&rp->users, user, u);
	}
	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->gws[i].gateway, gateway) == 0) {
			u->gws[i].sessions++;
			return;
		}
	u->gws = xrealloc(u->gws, (u->n + 1) * sizeof(*u->gws));
	u->gws[u->n].gateway = xstrdup(gateway);
	u->gws[u->n++].sessions = 1;
	if (rp->on_change)
		rp->on_change(rp->ctx, user, gateway, true);
}

static void
replica_user_del(struct replica *rp, const char *user, const char *gateway)
{
	struct replica_user *u = map_get(&rp->users, user);

	for (size_t i = 0; u && i < u->n; i++) {
		if (strcmp(u->gws[i].gateway, gateway) != 0)
			continue;
		if (--u->gws[i].sessions == 0) {
			if (rp->on_change)
				rp->on_change(rp->ctx, user, gateway, false);
			free(u->gws[i].gateway);
			u->gws[i] = u->gws[--u->n];
		}
		break;
	}
	if (u && u->n == 0)
		replica_user_free(map_del(&rp->users, user));
}

static void
replica_up(struct replica *rp, const Parley__Internal__V1__Session *s)
{
	char *key = xasprintf("%s\n%s", s->gateway, s->session_id);

	if (map_get(&rp->sessions, key) == NULL) {
		map_put(&rp->sessions, key, xstrdup(s->user_id));
		replica_user_add(rp, s->user_id, s->gateway);
	}
	free(key);
}

static void
replica_down(struct replica *rp, const Parley__Internal__V1__Session *s)
{
	char *key = xasprintf("%s\n%s", s->gateway, s->session_id);
	char *user = map_del(&rp->sessions, key);

	if (user)
		replica_user_del(rp, user, s->gateway);
	free(user);
	free(key);
}

/* Ask presence for every session, without waiting for the answer. */
static void
replica_ask(struct replica *rp, int64_t now_ms)
{
	Parley__Internal__V1__PresenceRequest q =
		PARLEY__INTERNAL__V1__PRESENCE_REQUEST__INIT;
	uint8_t buf[16];
	nng_msg *m;

	q.req_case = PARLEY__INTERNAL__V1__PRESENCE_REQUEST__REQ_SNAPSHOT;
	q.snapshot = true;
	if (nng_msg_alloc(&m, 0) != 0)
		return;
	nng_msg_append(m, buf,
		       parley__internal__v1__presence_request__pack(&q, buf));
	if (bus_send(rp->req, m, true) == 0) {
		rp->asked_ms = now_ms;
		rp->asking = true;
	}
	rp->next_try_ms = now_ms + REPLICA_RETRY_MS;
}

static void
replica_load(struct replica *rp, const Parley__Internal__V1__PresenceReply *rep)
{
	if (rp->on_reset)
		rp->on_reset(rp->ctx);
	replica_clear(rp);
	for (size_t i = 0; i < rep->n_sessions; i++)
		replica_up(rp, rep->sessions[i]);
	rp->epoch = rep->epoch;
	rp->version = rep->version;
	rp->stale = false;
	LOG_INFO("router.presence_snapshot",
		 "presence snapshot: %zu sessions "
		 "at version %llu",
		 rep->n_sessions, (unsigned long long)rep->version);
}

/* Take the snapshot's answer if it arrived; give up on it after a while. */
static void
replica_collect(struct replica *rp, int64_t now_ms)
{
	Parley__Internal__V1__PresenceReply *rep;
	nng_msg *m;

	if (nng_recvmsg(rp->req, &m, NNG_FLAG_NONBLOCK) != 0) {
		if (now_ms - rp->asked_ms > REPLICA_TIMEOUT_MS)
			rp->asking = false;
		return;
	}
	rp->asking = false;
	rep = parley__internal__v1__presence_reply__unpack(NULL, nng_msg_len(m),
							   nng_msg_body(m));
	nng_msg_free(m);
	if (rep == NULL)
		return;
	replica_load(rp, rep);
	parley__internal__v1__presence_reply__free_unpacked(rep, NULL);
}

static void
replica_apply(struct replica *rp, const Parley__Internal__V1__PresenceUpdate *u)
{
	/* Coalesced user states are news whatever the version says. */
	for (size_t i = 0; rp->on_user && i < u->n_users; i++)
		rp->on_user(rp->ctx, u->users[i]->user_id, u->users[i]->online,
			    u->users[i]->last_seen_ms);
	if (u->epoch != rp->epoch || u->first_version > rp->version) {
		rp->stale = true; /* a restart or a dropped publication */
		return;
	}
	if (u->version <= rp->version)
		return; /* already in our snapshot */
	for (size_t i = 0; i < u->n_up; i++)
		replica_up(rp, u->up[i]);
	for (size_t i = 0; i < u->n_down; i++)
		replica_down(rp, u->down[i]);
	rp->version = u->version;
}

void
replica_drain(struct replica *rp, int64_t now_ms)
{
	for (int i = 0; i < REPLICA_DRAIN_MAX; i++) {
		Parley__Internal__V1__PresenceUpdate *u;
		nng_msg *m;

		if (nng_recvmsg(rp->sub, &m, NNG_FLAG_NONBLOCK) != 0)
			break;
		u = parley__internal__v1__presence_update__unpack(
			NULL, nng_msg_len(m), nng_msg_body(m));
		nng_msg_free(m);
		if (u == NULL)
			continue;
		replica_apply(rp, u);
		parley__internal__v1__presence_update__free_unpacked(u, NULL);
	}
	if (rp->asking)
		replica_collect(rp, now_ms);
	else if (rp->stale && now_ms >= rp->next_try_ms)
		replica_ask(rp, now_ms);
}

void
replica_each_gateway(struct replica *rp, const char *user,
		     void (*fn)(void *ctx, const char *gateway), void *ctx)
{
	struct replica_user *u = map_get(&rp->users, user);

	for (size_t i = 0; u && i < u->n; i++)
		fn(ctx, u->gws[i].gateway);
}
