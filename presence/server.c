/* The presence service: one thread polling the rep socket (PresenceRequest
 * in, PresenceReply out), the stop signal and three timers (lease expiry,
 * pub heartbeat, the coalesced user feed); every change batch is published
 * as one PresenceUpdate. */
#include "presence.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <nng/nng.h>

#include "bus.h"
#include "log.h"
#include "map.h"
#include "metrics.h"
#include "parley/internal/v1/envelope.pb-c.h"
#include "sig.h"
#include "xalloc.h"

#define PRESENCE_EXPIRE_EVERY_MS 1000
/* Requests served per wake-up, so timers still run under a flood. */
#define PRESENCE_DRAIN_MAX 1024
/* A reply waits only when its peer still receives an earlier one. */
#define PRESENCE_SEND_TIMEOUT_MS 1000
/* Users per PresenceUpdate of the user feed, so that a gateway dropping
 * many sessions at once cannot make one huge publication. */
#define PRESENCE_USERS_MAX 4096

/*
 * The update under construction. Subscribers may apply up and down in
 * either order, so a session key appears in at most one list: a down of a
 * session that came up in this update cancels it, and an up of a key that
 * went down in this update first publishes what came before.
 */
struct pending {
	uint64_t first_version;
	/* up may hold NULLs: entries cancelled by a later down. */
	Parley__Internal__V1__Session **up;
	Parley__Internal__V1__Session **down;
	size_t n_up, n_down, cap_up, cap_down;
	struct map up_keys;   /* key -> (index in up) + 1 */
	struct map down_keys; /* key -> (void *)1 */
};

struct presence {
	const struct presence_config *cfg;
	struct registry *reg;
	nng_socket rep, pub;
	int rep_fd;
	uint64_t epoch;
	struct pending pend;
	int64_t next_expire_ms, next_heartbeat_ms, next_coalesce_ms;
};

/* The user feed of one window, collected before it is published. */
struct user_feed {
	Parley__Internal__V1__UserState **users;
	size_t n, cap;
};

static int64_t
clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Random and nonzero, so a restart is visible to every peer. */
static int
presence_epoch(uint64_t *out)
{
	uint64_t e = 0;

	/* At most 256 bytes never come back short once the pool is ready. */
	while (e == 0)
		if (getrandom(&e, sizeof(e), 0) < 0 && errno != EINTR)
			return -errno;
	*out = e;
	return 0;
}

/* Protobuf copies of sessions, owned by the pending update. */

static Parley__Internal__V1__Session *
session_copy(const struct registry_session *s)
{
	Parley__Internal__V1__Session *c = xmalloc(sizeof(*c));

	parley__internal__v1__session__init(c);
	c->user_id = xstrdup(s->user_id);
	c->session_id = xstrdup(s->session_id);
	c->gateway = xstrdup(s->gateway);
	c->since_ms = s->since_ms;
	return c;
}

static void
session_free(Parley__Internal__V1__Session *c)
{
	if (c == NULL)
		return;
	free(c->user_id);
	free(c->session_id);
	free(c->gateway);
	free(c);
}

static void
session_push(Parley__Internal__V1__Session ***arr, size_t *n, size_t *cap,
	     Parley__Internal__V1__Session *s)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*arr = xrealloc(*arr, *cap * sizeof(**arr));
	}
	(*arr)[(*n)++] = s;
}

/* The pending update. */

static void
pending_init(struct pending *pd, uint64_t version)
{
	memset(pd, 0, sizeof(*pd));
	pd->first_version = version;
	map_init(&pd->up_keys);
	map_init(&pd->down_keys);
}

static void
pending_release(struct pending *pd)
{
	for (size_t i = 0; i < pd->n_up; i++)
		session_free(pd->up[i]);
	for (size_t i = 0; i < pd->n_down; i++)
		session_free(pd->down[i]);
	free(pd->up);
	free(pd->down);
	map_release(&pd->up_keys);
	map_release(&pd->down_keys);
}

/* Drop the cancelled (NULL) entries of up. */
static void
pending_compact(struct pending *pd)
{
	size_t j = 0;

	for (size_t i = 0; i < pd->n_up; i++)
		if (pd->up[i] != NULL)
			pd->up[j++] = pd->up[i];
	pd->n_up = j;
}

static void
presence_send_pub(struct presence *p, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	nng_msg *msg;
	int rv;

	if (nng_msg_alloc(&msg, len) != 0) {
		LOG_ERROR("presence.publish", "out of memory for %zu bytes",
			  len);
		return;
	}
	protobuf_c_message_pack(m, nng_msg_body(msg));
	rv = bus_send(p->pub, msg, true);
	if (rv < 0)
		LOG_WARN("presence.publish", "publish failed: %s",
			 strerror(-rv));
}

/* Publish the changes since first_version and the n user states (borrowed)
 * or, with always, a heartbeat when there are none. Afterwards nothing is
 * pending. */
static void
presence_publish_users(struct presence *p, bool always,
		       Parley__Internal__V1__UserState **users, size_t n)
{
	Parley__Internal__V1__PresenceUpdate u =
		PARLEY__INTERNAL__V1__PRESENCE_UPDATE__INIT;
	uint64_t version = registry_version(p->reg);
	struct pending *pd = &p->pend;

	if (version == pd->first_version && !always && n == 0)
		return;
	pending_compact(pd);
	u.epoch = p->epoch;
	u.version = version;
	u.first_version = pd->first_version;
	u.up = pd->up;
	u.n_up = pd->n_up;
	u.down = pd->down;
	u.n_down = pd->n_down;
	u.users = users;
	u.n_users = n;
	presence_send_pub(p, &u.base);
	pending_release(pd);
	pending_init(pd, version);
}

static void
presence_publish(struct presence *p, bool always)
{
	presence_publish_users(p, always, NULL, 0);
}

static void
pending_up(struct presence *p, const struct registry_session *s,
	   const char *key)
{
	struct pending *pd = &p->pend;

	if (map_get(&pd->down_keys, key) != NULL)
		presence_publish(p, false);
	session_push(&pd->up, &pd->n_up, &pd->cap_up, session_copy(s));
	map_put(&pd->up_keys, key, (void *)(uintptr_t)pd->n_up);
}

static void
pending_down(struct presence *p, const struct registry_session *s,
	     const char *key)
{
	struct pending *pd = &p->pend;
	uintptr_t idx = (uintptr_t)map_del(&pd->up_keys, key);

	if (idx != 0) {
		session_free(pd->up[idx - 1]);
		pd->up[idx - 1] = NULL;
		return;
	}
	session_push(&pd->down, &pd->n_down, &pd->cap_down, session_copy(s));
	map_put(&pd->down_keys, key, (void *)1);
}

/* Registry observer: runs before the version moves past this change, so
 * a publication it triggers ends right before it. */
static void
on_change(void *ctx, const struct registry_session *s, bool up)
{
	char *key = xasprintf("%s\n%s", s->gateway, s->session_id);

	if (up)
		pending_up(ctx, s, key);
	else
		pending_down(ctx, s, key);
	free(key);
}

/* Replies. */

/* Send reply (epoch and version filled in here) on the rep socket. */
static void
presence_reply(struct presence *p, Parley__Internal__V1__PresenceReply *reply)
{
	size_t len;
	nng_msg *msg;
	int rv;

	reply->epoch = p->epoch;
	reply->version = registry_version(p->reg);
	len = parley__internal__v1__presence_reply__get_packed_size(reply);
	if (nng_msg_alloc(&msg, len) != 0) {
		LOG_ERROR("presence.reply", "out of memory for %zu bytes", len);
		return;
	}
	parley__internal__v1__presence_reply__pack(reply, nng_msg_body(msg));
	if ((rv = bus_send(p->rep, msg, false)) < 0)
		LOG_WARN("presence.reply", "reply not sent: %s", strerror(-rv));
}

static void
presence_reply_error(struct presence *p, const char *error)
{
	Parley__Internal__V1__PresenceReply reply =
		PARLEY__INTERNAL__V1__PRESENCE_REPLY__INIT;

	LOG_WARN("presence.bad_request", "%s", error);
	reply.error = (char *)error;
	presence_reply(p, &reply);
}

/* Reports. */

/* The registry's view of a reported session: the report names the
 * gateway, the session may leave it empty. */
static struct registry_session
report_session(const Parley__Internal__V1__PresenceReport *rp,
	       const Parley__Internal__V1__Session *s)
{
	struct registry_session rs = { s->user_id, s->session_id, rp->gateway,
				       s->since_ms };

	return rs;
}

/* A down needs only the session id; a session may not name another
 * gateway than the report's. */
static bool
report_session_ok(const Parley__Internal__V1__PresenceReport *rp,
		  const Parley__Internal__V1__Session *s, bool up)
{
	struct registry_session rs = report_session(rp, s);

	if (s->gateway[0] != '\0' && strcmp(s->gateway, rp->gateway) != 0)
		return false;
	if (!up)
		rs.user_id = "-";
	return registry_session_valid(&rs);
}

/* Everything is checked before anything changes: a bad report changes
 * nothing, not even the gateway's lease. NULL when fine. */
static const char *
report_check(const Parley__Internal__V1__PresenceReport *rp)
{
	if (!registry_gateway_valid(rp->gateway))
		return "report: missing or invalid gateway";
	for (size_t i = 0; i < rp->n_up; i++)
		if (!report_session_ok(rp, rp->up[i], true))
			return "report: invalid session in up";
	for (size_t i = 0; !rp->full && i < rp->n_down; i++)
		if (!report_session_ok(rp, rp->down[i], false))
			return "report: invalid session in down";
	return NULL;
}

static void
report_apply(struct presence *p, const Parley__Internal__V1__PresenceReport *rp)
{
	struct registry_session *ups;

	if (!rp->full) {
		for (size_t i = 0; i < rp->n_up; i++) {
			struct registry_session rs =
				report_session(rp, rp->up[i]);

			registry_up(p->reg, &rs);
		}
		for (size_t i = 0; i < rp->n_down; i++)
			registry_down(p->reg, rp->gateway,
				      rp->down[i]->session_id);
		return;
	}
	ups = xcalloc(rp->n_up ? rp->n_up : 1, sizeof(*ups));
	for (size_t i = 0; i < rp->n_up; i++)
		ups[i] = report_session(rp, rp->up[i]);
	registry_replace_gateway(p->reg, rp->gateway, ups, rp->n_up);
	free(ups);
}

static void
presence_report(struct presence *p,
		const Parley__Internal__V1__PresenceReport *rp)
{
	Parley__Internal__V1__PresenceReply reply =
		PARLEY__INTERNAL__V1__PRESENCE_REPLY__INIT;
	const char *err = report_check(rp);
	uint64_t before = registry_version(p->reg);

	if (err != NULL) {
		presence_reply_error(p, err);
		return;
	}
	registry_touch(p->reg, rp->gateway);
	report_apply(p, rp);
	presence_publish(p, false);
	LOG_DEBUG("presence.report",
		  "gateway %s%s: %zu up, %zu down, %llu changes, version %llu",
		  rp->gateway, rp->full ? " (full)" : "", rp->n_up, rp->n_down,
		  (unsigned long long)(registry_version(p->reg) - before),
		  (unsigned long long)registry_version(p->reg));
	presence_reply(p, &reply);
}

/* Snapshot and lookup. */

static void
presence_snapshot(struct presence *p)
{
	Parley__Internal__V1__PresenceReply reply =
		PARLEY__INTERNAL__V1__PRESENCE_REPLY__INIT;
	size_t n = registry_count(p->reg), i = 0, pos = 0;
	Parley__Internal__V1__Session *items =
		xcalloc(n ? n : 1, sizeof(*items));
	const struct registry_session *s;

	reply.sessions = xcalloc(n ? n : 1, sizeof(*reply.sessions));
	while (registry_next(p->reg, &pos, &s) && i < n) {
		parley__internal__v1__session__init(&items[i]);
		/* Borrowed: the registry does not change until sent. */
		items[i].user_id = (char *)s->user_id;
		items[i].session_id = (char *)s->session_id;
		items[i].gateway = (char *)s->gateway;
		items[i].since_ms = s->since_ms;
		reply.sessions[i] = &items[i];
		i++;
	}
	reply.n_sessions = i;
	presence_reply(p, &reply);
	free(reply.sessions);
	free(items);
}

static void
presence_lookup(struct presence *p, const Parley__Internal__V1__UserList *l)
{
	Parley__Internal__V1__PresenceReply reply =
		PARLEY__INTERNAL__V1__PRESENCE_REPLY__INIT;
	size_t n = l->n_user_ids;
	Parley__Internal__V1__UserState *items =
		xcalloc(n ? n : 1, sizeof(*items));

	reply.users = xcalloc(n ? n : 1, sizeof(*reply.users));
	for (size_t i = 0; i < n; i++) {
		struct registry_user_state st;

		registry_user_state(p->reg, l->user_ids[i], &st);
		parley__internal__v1__user_state__init(&items[i]);
		items[i].user_id = l->user_ids[i];
		items[i].online = st.online;
		items[i].last_seen_ms = st.last_seen_ms;
		reply.users[i] = &items[i];
	}
	reply.n_users = n;
	presence_reply(p, &reply);
	free(reply.users);
	free(items);
}

/* One request: always answered, with an error text when it is bad. */
static void
presence_handle(struct presence *p, nng_msg *msg)
{
	Parley__Internal__V1__PresenceRequest *rq =
		parley__internal__v1__presence_request__unpack(
			NULL, nng_msg_len(msg), nng_msg_body(msg));

	if (rq == NULL) {
		presence_reply_error(p, "malformed PresenceRequest");
		return;
	}
	switch (rq->req_case) {
	case PARLEY__INTERNAL__V1__PRESENCE_REQUEST__REQ_REPORT:
		presence_report(p, rq->report);
		break;
	case PARLEY__INTERNAL__V1__PRESENCE_REQUEST__REQ_SNAPSHOT:
		presence_snapshot(p);
		break;
	case PARLEY__INTERNAL__V1__PRESENCE_REQUEST__REQ_LOOKUP:
		presence_lookup(p, rq->lookup);
		break;
	default:
		presence_reply_error(p, "unknown PresenceRequest");
		break;
	}
	parley__internal__v1__presence_request__free_unpacked(rq, NULL);
}

/* The user feed. */

static void
on_user(void *ctx, const char *user_id, const struct registry_user_state *st)
{
	struct user_feed *f = ctx;
	Parley__Internal__V1__UserState *u = xmalloc(sizeof(*u));

	parley__internal__v1__user_state__init(u);
	u->user_id = xstrdup(user_id);
	u->online = st->online;
	u->last_seen_ms = st->last_seen_ms;
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 64;
		f->users = xrealloc(f->users, f->cap * sizeof(*f->users));
	}
	f->users[f->n++] = u;
}

/* Publish every user whose online state changed since the last window.
 * The first update also carries any pending session changes; the others
 * have first_version == version, so routers' version logic ignores them. */
static void
presence_publish_feed(struct presence *p)
{
	struct user_feed f = { NULL, 0, 0 };
	size_t n = registry_take_users(p->reg, on_user, &f);

	for (size_t i = 0; i < n; i += PRESENCE_USERS_MAX)
		presence_publish_users(p, true, f.users + i,
				       n - i < PRESENCE_USERS_MAX
					       ? n - i
					       : PRESENCE_USERS_MAX);
	if (n > 0)
		LOG_DEBUG("presence.users",
			  "published %zu user state changes at version %llu", n,
			  (unsigned long long)registry_version(p->reg));
	for (size_t i = 0; i < n; i++) {
		free(f.users[i]->user_id);
		free(f.users[i]);
	}
	free(f.users);
}

/* Timers. */

static void
presence_expire(struct presence *p)
{
	const char *url;

	while ((url = registry_stale_gateway(p->reg, p->cfg->lease_ms))) {
		char *gw = xstrdup(url);
		int n = registry_drop_gateway(p->reg, gw);

		if (n > 0)
			LOG_WARN(
				"presence.expire",
				"gateway %s silent for %lld ms: %d sessions offline",
				gw, (long long)p->cfg->lease_ms, n);
		else
			LOG_INFO("presence.expire", "idle gateway %s forgotten",
				 gw);
		free(gw);
	}
	presence_publish(p, false);
}

static void
presence_timers(struct presence *p, int64_t now)
{
	size_t n;

	if (now >= p->next_expire_ms) {
		presence_expire(p);
		n = registry_forget(p->reg, REGISTRY_FORGET_MS);
		if (n > 0)
			LOG_DEBUG("presence.forget",
				  "forgot %zu users offline for 24 h", n);
		p->next_expire_ms = now + PRESENCE_EXPIRE_EVERY_MS;
	}
	if (now >= p->next_coalesce_ms) {
		presence_publish_feed(p);
		p->next_coalesce_ms = now + p->cfg->coalesce_ms;
	}
	if (now >= p->next_heartbeat_ms) {
		presence_publish(p, true);
		p->next_heartbeat_ms = now + p->cfg->heartbeat_ms;
	}
}

static int
presence_timeout(const struct presence *p, int64_t now)
{
	int64_t next = p->next_expire_ms < p->next_heartbeat_ms
			       ? p->next_expire_ms
			       : p->next_heartbeat_ms;

	if (p->next_coalesce_ms < next)
		next = p->next_coalesce_ms;
	return next <= now ? 0 : (int)(next - now);
}

/* The loop. */

static int64_t
presence_set_clock(struct presence *p)
{
	int64_t mono = clock_ms(CLOCK_MONOTONIC);

	registry_set_clock(p->reg, clock_ms(CLOCK_REALTIME), mono);
	return mono;
}

static void
presence_drain(struct presence *p)
{
	for (int i = 0; i < PRESENCE_DRAIN_MAX; i++) {
		nng_msg *msg;
		int rv = nng_recvmsg(p->rep, &msg, NNG_FLAG_NONBLOCK);

		if (rv == NNG_EAGAIN)
			return;
		if (rv != 0) {
			LOG_WARN("presence.recv", "receive failed: %s",
				 nng_strerror(rv));
			return;
		}
		presence_handle(p, msg);
		nng_msg_free(msg);
	}
}

/* Gauges of /metrics, set after every turn of the loop. */
struct presence_metrics {
	struct metric *sessions, *users, *gateways, *version;
};

static struct presence_metrics *
presence_metrics(void)
{
	static struct presence_metrics m;

	if (m.sessions)
		return &m;
	m.sessions = metrics_gauge("parley_presence_sessions",
				   "Live sessions in the registry.");
	m.users = metrics_gauge(
		"parley_presence_users",
		"Users known: online, or offline and remembered.");
	m.gateways = metrics_gauge("parley_presence_gateways",
				   "Gateways holding a lease.");
	m.version = metrics_gauge("parley_presence_version",
				  "Registry changes since start.");
	return &m;
}

static void
presence_count(const struct presence *p, const struct presence_metrics *m)
{
	metric_set(m->sessions, (int64_t)registry_count(p->reg));
	metric_set(m->users, (int64_t)registry_user_count(p->reg));
	metric_set(m->gateways, (int64_t)registry_gateway_count(p->reg));
	metric_set(m->version, (int64_t)registry_version(p->reg));
}

static int
presence_loop(struct presence *p)
{
	const struct presence_metrics *m = presence_metrics();
	struct pollfd fds[2] = {
		{ .fd = p->rep_fd, .events = POLLIN },
		{ .fd = sig_fd(), .events = POLLIN },
	};

	while (!sig_stopping()) {
		int64_t now = presence_set_clock(p);

		presence_timers(p, now);
		if (poll(fds, 2, presence_timeout(p, now)) < 0 &&
		    errno != EINTR) {
			LOG_ERROR("presence.poll", "poll: %s", strerror(errno));
			return -errno;
		}
		presence_set_clock(p);
		presence_drain(p);
		presence_count(p, m);
	}
	return 0;
}

/* Set-up and tear-down. */

static int
presence_open_sockets(struct presence *p)
{
	const struct presence_config *cfg = p->cfg;
	int rv;

	if ((rv = bus_open(&p->pub, "pub")) < 0)
		return rv;
	if ((rv = bus_listen(p->pub, cfg->pub_url)) < 0)
		goto close_pub;
	if ((rv = bus_open(&p->rep, "rep")) < 0)
		goto close_pub;
	if ((rv = bus_set_timeouts(p->rep, PRESENCE_SEND_TIMEOUT_MS, -1)) < 0 ||
	    (rv = bus_listen(p->rep, cfg->listen_url)) < 0 ||
	    (rv = bus_recv_fd(p->rep, &p->rep_fd)) < 0)
		goto close_rep;
	return 0;
close_rep:
	nng_close(p->rep);
close_pub:
	nng_close(p->pub);
	return rv;
}

static int
presence_open(struct presence *p, const struct presence_config *cfg)
{
	int rv;

	memset(p, 0, sizeof(*p));
	p->cfg = cfg;
	if ((rv = presence_epoch(&p->epoch)) < 0) {
		LOG_ERROR("presence.open", "getrandom: %s", strerror(-rv));
		return rv;
	}
	if ((rv = presence_open_sockets(p)) < 0) {
		LOG_ERROR("presence.open", "cannot set up sockets: %s",
			  strerror(-rv));
		return rv;
	}
	p->reg = registry_new();
	registry_set_observer(p->reg, on_change, p);
	pending_init(&p->pend, 0);
	return 0;
}

static void
presence_close(struct presence *p)
{
	nng_close(p->rep);
	nng_close(p->pub);
	pending_release(&p->pend);
	registry_free(p->reg);
}

int
presence_run(const struct presence_config *cfg)
{
	struct presence p;
	int rv;

	if ((rv = presence_open(&p, cfg)) < 0)
		return rv;
	LOG_INFO("presence.start",
		 "epoch %016llx, requests on %s, updates on %s, lease %lld ms, "
		 "user feed every %lld ms",
		 (unsigned long long)p.epoch, cfg->listen_url, cfg->pub_url,
		 (long long)cfg->lease_ms, (long long)cfg->coalesce_ms);
	rv = presence_loop(&p);
	LOG_INFO("presence.stop", "stopping (signal %d) at version %llu",
		 sig_which(), (unsigned long long)registry_version(p.reg));
	presence_close(&p);
	return rv;
}
