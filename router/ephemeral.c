/* Ephemeral commands: Typing, GetReceipts, GetRoomPresence, and room
 * presence announcements. Gateways send these to every router; only the
 * router that folds the room's partition acts, from its fold and online
 * index. Nothing here touches the log: typing is never stored. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "router.h"
#include "xalloc.h"

/* A typing user of a room: when to say it stopped, when we last said it
 * started (a refresh within EPH_TYPING_EVERY_MS is not repeated). */
struct eph_typing {
	int64_t expires_ms;
	int64_t said_ms;
};

#define EPH_TYPING_EVERY_MS 2000

void
eph_init(struct router *r)
{
	map_init(&r->typing);
}

void
eph_release(struct router *r)
{
	size_t pos = 0;
	const char *key;
	void *val;

	while (map_next(&r->typing, &pos, &key, &val))
		free(val);
	map_release(&r->typing);
}

/* The part folding room here, or NULL when another router owns it. */
static struct router_part *
eph_part(struct router *r, const char *room)
{
	struct router_part *p;

	if (room == NULL || room[0] == '\0' || r->n_partitions <= 0)
		return NULL;
	p = &r->parts[kafka_partition_of(room, r->n_partitions)];
	return p->owned && p->fold ? p : NULL;
}

/* Fan-out that leaves one user out (the typer does not see itself). */
struct eph_fan {
	struct router *r;
	const char *skip;
	uint8_t *frame;
	size_t len;
};

static void
eph_fan_gw(void *ctx, const char *gateway, char **users, size_t n)
{
	struct eph_fan *fan = ctx;
	Parley__Internal__V1__Delivery d = PARLEY__INTERNAL__V1__DELIVERY__INIT;
	char **keep = xcalloc(n + 1, sizeof(*keep));
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (fan->skip == NULL || strcmp(users[i], fan->skip) != 0)
			keep[k++] = users[i];
	d.user_ids = keep;
	d.n_user_ids = k;
	d.frame.data = fan->frame;
	d.frame.len = fan->len;
	if (k)
		fanout_add(fan->r, gateway, &d);
	metric_add(fan->r->m->fanout_steps, (int64_t)n + 1);
	free(keep);
}

static void
eph_fanout(struct router *r, struct router_part *p, const char *room,
	   const Parley__V1__ServerFrame *f, const char *skip)
{
	struct eph_fan fan = { r, skip, NULL, 0 };

	fan.len = parley__v1__server_frame__get_packed_size(f);
	fan.frame = xmalloc(fan.len ? fan.len : 1);
	parley__v1__server_frame__pack(f, fan.frame);
	online_each(p, room, eph_fan_gw, &fan);
	free(fan.frame);
}

static void
eph_say_typing(struct router *r, struct router_part *p, const char *room,
	       const char *user, bool active)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__Typing t = PARLEY__V1__TYPING__INIT;

	t.room_id = (char *)room;
	t.user_id = (char *)user;
	t.active = active;
	f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_TYPING;
	f.typing = &t;
	eph_fanout(r, p, room, &f, user);
}

static void
eph_typing(struct router *r, struct router_part *p,
	   const Parley__Internal__V1__Command *c)
{
	const Parley__V1__Typing *t = c->frame->typing;
	char *key = xasprintf("%s\n%s", t->room_id, c->user_id);
	struct eph_typing *e = map_get(&r->typing, key);
	int64_t now = router_now_ms();

	if (t->active) {
		if (e == NULL) {
			e = xcalloc(1, sizeof(*e));
			map_put(&r->typing, key, e);
		}
		e->expires_ms = now + r->cfg.typing_ttl_ms;
		if (now - e->said_ms >= EPH_TYPING_EVERY_MS) {
			e->said_ms = now;
			eph_say_typing(r, p, t->room_id, c->user_id, true);
		}
	} else if (e) {
		free(map_del(&r->typing, key));
		eph_say_typing(r, p, t->room_id, c->user_id, false);
	}
	free(key);
}

void
eph_tick(struct router *r, int64_t now_ms)
{
	size_t pos = 0;
	const char *key;
	void *val;

	while (map_next(&r->typing, &pos, &key, &val)) {
		struct eph_typing *e = val;
		const char *nl = strchr(key, '\n');
		char *room;
		struct router_part *p;

		if (e->expires_ms > now_ms)
			continue;
		room = xstrndup(key, (size_t)(nl - key));
		if ((p = eph_part(r, room)) != NULL)
			eph_say_typing(r, p, room, nl + 1, false);
		free(room);
		free(map_del(&r->typing, key));
	}
}

static void
eph_receipts(struct router *r, struct fold_room *room,
	     const Parley__Internal__V1__Command *c)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__ReceiptSummary s = PARLEY__V1__RECEIPT_SUMMARY__INIT;
	uint64_t seq = c->frame->get_receipts->seq;
	size_t pos = 0;
	const char *key;
	void *val;

	s.room_id = room->id;
	s.seq = seq;
	while (map_next(&room->members, &pos, &key, &val)) {
		const struct fold_member *m = val;

		s.members++;
		s.delivered += m->delivered >= seq;
		s.read += m->read >= seq;
	}
	f.request_id = c->frame->request_id;
	f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_RECEIPT_SUMMARY;
	f.receipt_summary = &s;
	router_reply(r, c->gateway, c->session_id, &f);
}

/* Online members of a room: each distinct user of the online index. */
struct eph_online {
	struct map seen;
	char **ids;
	size_t n;
	bool list;
};

static void
eph_online_gw(void *ctx, const char *gateway, char **users, size_t n)
{
	struct eph_online *o = ctx;

	(void)gateway;
	for (size_t i = 0; i < n; i++) {
		if (map_put(&o->seen, users[i], users[i]) != NULL)
			continue;
		if (o->list) {
			o->ids = xrealloc(o->ids, (o->n + 1) * sizeof(*o->ids));
			o->ids[o->n] = xstrdup(users[i]);
		}
		o->n++;
	}
}

static void
eph_room_presence(struct router *r, struct router_part *p,
		  struct fold_room *room,
		  const Parley__Internal__V1__Command *c)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__RoomPresence rp = PARLEY__V1__ROOM_PRESENCE__INIT;
	struct eph_online o = { .list = map_count(&room->members) <=
					(size_t)r->cfg.presence_room_limit };

	map_init(&o.seen);
	online_each(p, room->id, eph_online_gw, &o);
	rp.room_id = room->id;
	rp.members = map_count(&room->members);
	rp.online = o.n;
	rp.online_user_ids = o.ids;
	rp.n_online_user_ids = o.list ? o.n : 0;
	f.request_id = c->frame->request_id;
	f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_ROOM_PRESENCE;
	f.room_presence = &rp;
	router_reply(r, c->gateway, c->session_id, &f);
	for (size_t i = 0; i < rp.n_online_user_ids; i++)
		free(o.ids[i]);
	free(o.ids);
	map_release(&o.seen);
}

static const char *
eph_room_id(const Parley__V1__ClientFrame *f)
{
	switch (f->msg_case) {
	case PARLEY__V1__CLIENT_FRAME__MSG_TYPING:
		return f->typing->room_id;
	case PARLEY__V1__CLIENT_FRAME__MSG_GET_RECEIPTS:
		return f->get_receipts->room_id;
	default:
		return f->get_room_presence->room_id;
	}
}

void
eph_command(struct router *r, const Parley__Internal__V1__Command *c)
{
	const Parley__V1__ClientFrame *f = c->frame;
	const char *id = eph_room_id(f);
	struct router_part *p = eph_part(r, id);
	struct fold_room *room = p ? fold_room_get(p->fold, id) : NULL;

	if (p == NULL)
		return; /* another router answers */
	if (room == NULL || fold_room_member(room, c->user_id) == NULL) {
		if (f->request_id)
			router_error(
				r, c->gateway, c->session_id, f->request_id,
				PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN,
				"not a member of this room", false, id, NULL);
		return;
	}
	if (f->msg_case == PARLEY__V1__CLIENT_FRAME__MSG_TYPING)
		eph_typing(r, p, c);
	else if (f->msg_case == PARLEY__V1__CLIENT_FRAME__MSG_GET_RECEIPTS)
		eph_receipts(r, room, c);
	else
		eph_room_presence(r, p, room, c);
}

/* A user came online or went offline (coalesced by presence): tell the
 * online members of its rooms that are small enough. */
void
eph_user_presence(struct router *r, const char *user, bool online,
		  int64_t last_seen_ms)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__Presence pr = PARLEY__V1__PRESENCE__INIT;

	pr.user_id = (char *)user;
	pr.online = online;
	pr.last_seen_ms = last_seen_ms;
	f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_PRESENCE;
	f.presence = &pr;
	for (int i = 0; i < ROUTER_MAX_PARTITIONS; i++) {
		struct router_part *p = &r->parts[i];
		char **rooms;
		size_t n;

		if (!p->owned || !online_user_rooms(p, user, &rooms, &n))
			continue;
		for (size_t j = 0; j < n; j++) {
			struct fold_room *room =
				fold_room_get(p->fold, rooms[j]);

			if (room && map_count(&room->members) <=
					    (size_t)r->cfg.presence_room_limit)
				eph_fanout(r, p, rooms[j], &f, user);
		}
	}
}
