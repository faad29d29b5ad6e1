/* The session registry: live sessions by (gateway, session_id), users with
 * their live-session count and last-seen time, gateways with their lease.
 * A pure data structure: no I/O, no clock, no protobuf. */
#include "presence.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"
#include "xalloc.h"

/* gateway "\n" session_id, with room for the terminating NUL. */
#define REGISTRY_KEY_MAX (REGISTRY_MAX_URL + 1 + REGISTRY_MAX_ID + 1)

struct reg_user {
	char *id;
	size_t live; /* live sessions */
	int64_t last_seen_ms;
	/* The online state last handed out by registry_take_users, and
	 * whether the user is in the registry's marked map. */
	bool taken_online;
	bool marked;
	/* Offline users in the order they went offline, for forgetting. */
	struct reg_user *prev, *next;
};

struct reg_gateway {
	char *url;
	struct map sessions; /* session_id -> struct registry_session * */
	int64_t last_wall_ms;
	int64_t last_mono_ms;
};

struct registry {
	struct map sessions; /* key -> struct registry_session * (owned) */
	struct map users;    /* user id -> struct reg_user * (owned) */
	struct map gateways; /* url -> struct reg_gateway * (owned) */
	struct map marked;   /* user id -> struct reg_user *: changed? */
	struct reg_user *offline_head, *offline_tail;
	uint64_t version;
	int64_t wall_ms, mono_ms;
	void (*on_change)(void *ctx, const struct registry_session *s, bool up);
	void *ctx;
};

static bool
registry_id_valid(const char *s)
{
	return s != NULL && s[0] != '\0' && strlen(s) <= REGISTRY_MAX_ID;
}

bool
registry_gateway_valid(const char *url)
{
	return url != NULL && url[0] != '\0' &&
	       strlen(url) <= REGISTRY_MAX_URL && strchr(url, '\n') == NULL;
}

bool
registry_session_valid(const struct registry_session *s)
{
	return registry_id_valid(s->user_id) &&
	       registry_id_valid(s->session_id) &&
	       registry_gateway_valid(s->gateway);
}

/* Both parts must be valid, so the key always fits. */
static void
registry_key(char *key, const char *gateway, const char *session_id)
{
	snprintf(key, REGISTRY_KEY_MAX, "%s\n%s", gateway, session_id);
}

struct registry *
registry_new(void)
{
	struct registry *r = xcalloc(1, sizeof(*r));

	map_init(&r->sessions);
	map_init(&r->users);
	map_init(&r->gateways);
	map_init(&r->marked);
	return r;
}

static void
registry_session_free(struct registry_session *s)
{
	free((char *)s->user_id);
	free((char *)s->session_id);
	free((char *)s->gateway);
	free(s);
}

static void
reg_gateway_free(struct reg_gateway *g)
{
	map_release(&g->sessions);
	free(g->url);
	free(g);
}

static void
reg_user_free(struct reg_user *u)
{
	free(u->id);
	free(u);
}

void
registry_free(struct registry *r)
{
	size_t pos = 0;
	const char *key;
	void *v;

	if (r == NULL)
		return;
	while (map_next(&r->sessions, &pos, &key, &v))
		registry_session_free(v);
	for (pos = 0; map_next(&r->users, &pos, &key, &v);)
		reg_user_free(v);
	for (pos = 0; map_next(&r->gateways, &pos, &key, &v);)
		reg_gateway_free(v);
	map_release(&r->sessions);
	map_release(&r->users);
	map_release(&r->gateways);
	map_release(&r->marked);
	free(r);
}

void
registry_set_clock(struct registry *r, int64_t wall_ms, int64_t mono_ms)
{
	r->wall_ms = wall_ms;
	r->mono_ms = mono_ms;
}

void
registry_set_observer(struct registry *r,
		      void (*on_change)(void *ctx,
					const struct registry_session *s,
					bool up),
		      void *ctx)
{
	r->on_change = on_change;
	r->ctx = ctx;
}

/* Users. */

static void
reg_user_unlink(struct registry *r, struct reg_user *u)
{
	if (u->prev)
		u->prev->next = u->next;
	else
		r->offline_head = u->next;
	if (u->next)
		u->next->prev = u->prev;
	else
		r->offline_tail = u->prev;
	u->prev = u->next = NULL;
}

static void
reg_user_append(struct registry *r, struct reg_user *u)
{
	u->prev = r->offline_tail;
	u->next = NULL;
	if (r->offline_tail)
		r->offline_tail->next = u;
	else
		r->offline_head = u;
	r->offline_tail = u;
}

/* The user's online state may have changed: registry_take_users will
 * look at it. */
static void
reg_user_mark(struct registry *r, struct reg_user *u)
{
	if (u->marked)
		return;
	u->marked = true;
	map_put(&r->marked, u->id, u);
}

static void
reg_user_up(struct registry *r, const char *id)
{
	struct reg_user *u = map_get(&r->users, id);

	if (u == NULL) {
		u = xcalloc(1, sizeof(*u));
		u->id = xstrdup(id);
		map_put(&r->users, id, u);
	} else if (u->live == 0) {
		reg_user_unlink(r, u);
	}
	if (u->live++ == 0)
		reg_user_mark(r, u);
}

static void
reg_user_down(struct registry *r, const char *id, int64_t ended_ms)
{
	struct reg_user *u = map_get(&r->users, id);

	if (--u->live > 0)
		return;
	u->last_seen_ms = ended_ms;
	reg_user_append(r, u);
	reg_user_mark(r, u);
}

/* Gateways. */

/* The gateway of url, created (with its lease starting now) if needed. */
static struct reg_gateway *
reg_gateway_get(struct registry *r, const char *url)
{
	struct reg_gateway *g = map_get(&r->gateways, url);

	if (g != NULL)
		return g;
	g = xcalloc(1, sizeof(*g));
	g->url = xstrdup(url);
	map_init(&g->sessions);
	g->last_wall_ms = r->wall_ms;
	g->last_mono_ms = r->mono_ms;
	map_put(&r->gateways, url, g);
	return g;
}

int
registry_touch(struct registry *r, const char *gateway)
{
	struct reg_gateway *g;

	if (!registry_gateway_valid(gateway))
		return -EINVAL;
	g = reg_gateway_get(r, gateway);
	g->last_wall_ms = r->wall_ms;
	g->last_mono_ms = r->mono_ms;
	return 0;
}

/* Sessions. */

static void
registry_notify(struct registry *r, const struct registry_session *s, bool up)
{
	if (r->on_change)
		r->on_change(r->ctx, s, up);
	r->version++;
}

static void
registry_insert(struct registry *r, const struct registry_session *in,
		const char *key)
{
	struct registry_session *s = xmalloc(sizeof(*s));
	struct reg_gateway *g = reg_gateway_get(r, in->gateway);

	s->user_id = xstrdup(in->user_id);
	s->session_id = xstrdup(in->session_id);
	s->gateway = xstrdup(in->gateway);
	s->since_ms = in->since_ms != 0 ? in->since_ms : r->wall_ms;
	map_put(&r->sessions, key, s);
	map_put(&g->sessions, s->session_id, s);
	reg_user_up(r, s->user_id);
	registry_notify(r, s, true);
}

/* End s, which ended at ended_ms (wall). */
static void
registry_remove(struct registry *r, struct registry_session *s,
		int64_t ended_ms)
{
	char key[REGISTRY_KEY_MAX];
	struct reg_gateway *g = map_get(&r->gateways, s->gateway);

	registry_notify(r, s, false);
	registry_key(key, s->gateway, s->session_id);
	map_del(&r->sessions, key);
	map_del(&g->sessions, s->session_id);
	reg_user_down(r, s->user_id, ended_ms);
	registry_session_free(s);
}

int
registry_up(struct registry *r, const struct registry_session *s)
{
	char key[REGISTRY_KEY_MAX];
	struct registry_session *old;

	if (!registry_session_valid(s))
		return -EINVAL;
	registry_key(key, s->gateway, s->session_id);
	old = map_get(&r->sessions, key);
	if (old != NULL && strcmp(old->user_id, s->user_id) == 0)
		return 0;
	if (old != NULL)
		registry_remove(r, old, r->wall_ms);
	registry_insert(r, s, key);
	return old != NULL ? 2 : 1;
}

int
registry_down(struct registry *r, const char *gateway, const char *session_id)
{
	char key[REGISTRY_KEY_MAX];
	struct registry_session *s;

	if (!registry_gateway_valid(gateway) || !registry_id_valid(session_id))
		return -EINVAL;
	registry_key(key, gateway, session_id);
	s = map_get(&r->sessions, key);
	if (s == NULL)
		return 0;
	registry_remove(r, s, r->wall_ms);
	return 1;
}

static bool
registry_ups_valid(const char *gateway, const struct registry_session *ups,
		   size_t n)
{
	if (!registry_gateway_valid(gateway))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!registry_session_valid(&ups[i]) ||
		    strcmp(ups[i].gateway, gateway) != 0)
			return false;
	return true;
}

/* End the sessions of g whose ids are not in keep. */
static int
registry_prune(struct registry *r, struct reg_gateway *g,
	       const struct map *keep)
{
	size_t pos = 0;
	const char *id;
	void *v;
	int changes = 0;

	/* registry_remove deletes only the current key from g->sessions. */
	while (map_next(&g->sessions, &pos, &id, &v)) {
		if (map_get(keep, id) != NULL)
			continue;
		registry_remove(r, v, r->wall_ms);
		changes++;
	}
	return changes;
}

int
registry_replace_gateway(struct registry *r, const char *gateway,
			 const struct registry_session *ups, size_t n)
{
	struct map keep;
	int changes;

	if (!registry_ups_valid(gateway, ups, n))
		return -EINVAL;
	map_init(&keep);
	for (size_t i = 0; i < n; i++)
		map_put(&keep, ups[i].session_id, (void *)&ups[i]);
	changes = registry_prune(r, reg_gateway_get(r, gateway), &keep);
	map_release(&keep);
	for (size_t i = 0; i < n; i++)
		changes += registry_up(r, &ups[i]);
	return changes;
}

/* Leases and forgetting. */

const char *
registry_stale_gateway(const struct registry *r, int64_t lease_ms)
{
	size_t pos = 0;
	const char *url;
	void *v;

	while (map_next(&r->gateways, &pos, &url, &v)) {
		const struct reg_gateway *g = v;

		if (r->mono_ms - g->last_mono_ms >= lease_ms)
			return g->url;
	}
	return NULL;
}

int
registry_drop_gateway(struct registry *r, const char *gateway)
{
	struct reg_gateway *g = map_get(&r->gateways, gateway);
	size_t pos = 0;
	const char *id;
	void *v;
	int ended = 0;

	if (g == NULL)
		return 0;
	while (map_next(&g->sessions, &pos, &id, &v)) {
		registry_remove(r, v, g->last_wall_ms);
		ended++;
	}
	map_del(&r->gateways, g->url);
	reg_gateway_free(g);
	return ended;
}

int
registry_expire(struct registry *r, int64_t lease_ms)
{
	const char *url;
	int ended = 0;

	while ((url = registry_stale_gateway(r, lease_ms)) != NULL)
		ended += registry_drop_gateway(r, url);
	return ended;
}

size_t
registry_forget(struct registry *r, int64_t max_age_ms)
{
	size_t n = 0;

	while (r->offline_head != NULL &&
	       r->wall_ms - r->offline_head->last_seen_ms > max_age_ms) {
		struct reg_user *u = r->offline_head;

		reg_user_unlink(r, u);
		if (u->marked)
			map_del(&r->marked, u->id);
		map_del(&r->users, u->id);
		reg_user_free(u);
		n++;
	}
	return n;
}

size_t
registry_take_users(struct registry *r,
		    void (*emit)(void *ctx, const char *user_id,
				 const struct registry_user_state *st),
		    void *ctx)
{
	size_t pos = 0, n = 0;
	const char *id;
	void *v;

	/* map_del of the current key is allowed while iterating. */
	while (map_next(&r->marked, &pos, &id, &v)) {
		struct reg_user *u = v;
		struct registry_user_state st;

		u->marked = false;
		map_del(&r->marked, u->id);
		if ((u->live > 0) == u->taken_online)
			continue;
		u->taken_online = u->live > 0;
		registry_user_state(r, u->id, &st);
		emit(ctx, u->id, &st);
		n++;
	}
	return n;
}

/* Queries. */

uint64_t
registry_version(const struct registry *r)
{
	return r->version;
}

size_t
registry_count(const struct registry *r)
{
	return map_count(&r->sessions);
}

size_t
registry_user_count(const struct registry *r)
{
	return map_count(&r->users);
}

size_t
registry_gateway_count(const struct registry *r)
{
	return map_count(&r->gateways);
}

bool
registry_next(const struct registry *r, size_t *pos,
	      const struct registry_session **s)
{
	const char *key;
	void *v;

	if (!map_next(&r->sessions, pos, &key, &v))
		return false;
	*s = v;
	return true;
}

void
registry_user_state(const struct registry *r, const char *user_id,
		    struct registry_user_state *out)
{
	const struct reg_user *u = map_get(&r->users, user_id);

	out->online = u != NULL && u->live > 0;
	if (u == NULL)
		out->last_seen_ms = 0;
	else
		out->last_seen_ms = u->live > 0 ? r->wall_ms : u->last_seen_ms;
}
