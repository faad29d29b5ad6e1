/* The online index of the rooms a router folds: for each room, which of its
 * members are online on which gateway. Membership records and presence
 * changes keep it current, so a message costs its online recipients and
 * never the size of the room (issue: 100k-member rooms). */
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "xalloc.h"

/* user -> rooms of this partition the user is a member of. */
struct online_user {
	char **rooms;
	size_t n, cap;
};

/* room -> gateway -> set of online members there. */
struct online_room {
	struct map gws; /* gateway -> struct map * (user -> non-NULL) */
};

static char online_yes_;
#define ONLINE_YES (&online_yes_)

void
online_init(struct router_part *p)
{
	map_init(&p->user_rooms);
	map_init(&p->online);
}

static void
online_room_clear(struct online_room *o)
{
	size_t pos = 0;
	const char *key;
	void *val;

	while (map_next(&o->gws, &pos, &key, &val)) {
		map_release(val);
		free(val);
	}
	map_release(&o->gws);
}

void
online_release(struct router_part *p)
{
	size_t pos = 0;
	const char *key;
	void *val;

	while (map_next(&p->user_rooms, &pos, &key, &val)) {
		struct online_user *u = val;

		for (size_t i = 0; i < u->n; i++)
			free(u->rooms[i]);
		free(u->rooms);
		free(u);
	}
	pos = 0;
	while (map_next(&p->online, &pos, &key, &val)) {
		online_room_clear(val);
		free(val);
	}
	map_release(&p->user_rooms);
	map_release(&p->online);
}

static struct online_room *
online_room(struct router_part *p, const char *room)
{
	struct online_room *o = map_get(&p->online, room);

	if (o == NULL) {
		o = xcalloc(1, sizeof(*o));
		map_init(&o->gws);
		map_put(&p->online, room, o);
	}
	return o;
}

static void
online_set(struct router_part *p, const char *room, const char *user,
	   const char *gateway, bool up)
{
	struct online_room *o = online_room(p, room);
	struct map *users = map_get(&o->gws, gateway);

	if (up) {
		if (users == NULL) {
			users = xcalloc(1, sizeof(*users));
			map_init(users);
			map_put(&o->gws, gateway, users);
		}
		map_put(users, user, ONLINE_YES);
	} else if (users) {
		map_del(users, user);
		if (map_count(users) == 0) {
			map_release(users);
			free(map_del(&o->gws, gateway));
		}
	}
}

struct online_ctx {
	struct router_part *p;
	const char *room;
	const char *user;
	bool up;
};

static void
online_each_gw(void *ctx, const char *gateway)
{
	struct online_ctx *c = ctx;

	online_set(c->p, c->room, c->user, gateway, c->up);
}

void
online_member_add(struct router *r, struct router_part *p, const char *room,
		  const char *user)
{
	struct online_user *u = map_get(&p->user_rooms, user);
	struct online_ctx c = { p, room, user, true };

	if (u == NULL) {
		u = xcalloc(1, sizeof(*u));
		map_put(&p->user_rooms, user, u);
	}
	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->rooms[i], room) == 0)
			return;
	if (u->n == u->cap) {
		u->cap = u->cap ? u->cap * 2 : 4;
		u->rooms = xrealloc(u->rooms, u->cap * sizeof(*u->rooms));
	}
	u->rooms[u->n++] = xstrdup(room);
	replica_each_gateway(&r->replica, user, online_each_gw, &c);
}

void
online_member_del(struct router *r, struct router_part *p, const char *room,
		  const char *user)
{
	struct online_user *u = map_get(&p->user_rooms, user);
	struct online_ctx c = { p, room, user, false };

	for (size_t i = 0; u && i < u->n; i++)
		if (strcmp(u->rooms[i], room) == 0) {
			free(u->rooms[i]);
			u->rooms[i] = u->rooms[--u->n];
			break;
		}
	replica_each_gateway(&r->replica, user, online_each_gw, &c);
}

bool
online_user_rooms(struct router_part *p, const char *user, char ***rooms,
		  size_t *n)
{
	struct online_user *u = map_get(&p->user_rooms, user);

	if (u == NULL || u->n == 0)
		return false;
	*rooms = u->rooms;
	*n = u->n;
	return true;
}

void
online_presence(struct router *r, const char *user, const char *gateway,
		bool up)
{
	for (int i = 0; i < ROUTER_MAX_PARTITIONS; i++) {
		struct router_part *p = &r->parts[i];
		struct online_user *u;

		if (!p->owned || (u = map_get(&p->user_rooms, user)) == NULL)
			continue;
		for (size_t j = 0; j < u->n; j++)
			online_set(p, u->rooms[j], user, gateway, up);
	}
}

void
online_reset(struct router *r)
{
	for (int i = 0; i < ROUTER_MAX_PARTITIONS; i++) {
		struct router_part *p = &r->parts[i];
		size_t pos = 0;
		const char *key;
		void *val;

		while (p->owned && map_next(&p->online, &pos, &key, &val)) {
			online_room_clear(val);
			map_init(&((struct online_room *)val)->gws);
		}
	}
}

void
online_each(struct router_part *p, const char *room,
	    void (*fn)(void *ctx, const char *gateway, char **users, size_t n),
	    void *ctx)
{
	struct online_room *o = map_get(&p->online, room);
	size_t pos = 0, cap = 16;
	char **users = xmalloc(cap * sizeof(*users));
	const char *gw;
	void *val;

	while (o && map_next(&o->gws, &pos, &gw, &val)) {
		struct map *set = val;
		size_t upos = 0, n = 0;
		const char *user;
		void *yes;

		if (map_count(set) == 0)
			continue;
		if (map_count(set) > cap) {
			cap = map_count(set);
			users = xrealloc(users, cap * sizeof(*users));
		}
		while (map_next(set, &upos, &user, &yes))
			users[n++] = (char *)user;
		fn(ctx, gw, users, n);
	}
	free(users);
}
