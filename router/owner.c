/* Owner: folds the partitions the consumer group gave this router, in
 * partition order, then acknowledges senders and fans messages out to the
 * gateways of online members. On assignment a partition is refolded from
 * its start, silently up to the group's committed offset
 * (docs/ARCHITECTURE.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "router.h"
#include "xalloc.h"

#define OWNER_DRAIN_MAX 2000

static struct router_part *
owner_part(struct router *r, int32_t p)
{
	if (p < 0 || p >= ROUTER_MAX_PARTITIONS)
		return NULL;
	return &r->parts[p];
}

static void
on_assign(void *ctx, struct kafka_consumer *c,
	  rd_kafka_topic_partition_list_t *parts)
{
	struct router *r = ctx;

	/* The committed offsets say where live handling resumes. */
	if (kafka_consumer_committed(c, parts, 10000) < 0)
		for (int i = 0; i < parts->cnt; i++)
			parts->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
	for (int i = 0; i < parts->cnt; i++) {
		struct router_part *p =
			owner_part(r, parts->elems[i].partition);

		if (p == NULL)
			continue;
		if (p->owned)
			online_release(p);
		fold_free(p->fold);
		p->fold = fold_new();
		online_init(p);
		p->owned = true;
		metric_add(r->m->partitions, 1);
		p->live_from =
			parts->elems[i].offset < 0 ? 0 : parts->elems[i].offset;
		LOG_INFO("router.assign",
			 "partition %d: refold from start, "
			 "live from offset %lld",
			 parts->elems[i].partition, (long long)p->live_from);
		parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
	}
}

static void
on_revoke(void *ctx, struct kafka_consumer *c,
	  const rd_kafka_topic_partition_list_t *parts)
{
	struct router *r = ctx;

	(void)c;
	/* Deliveries of what we folded go out before another owner starts. */
	fanout_flush(r);
	for (int i = 0; i < parts->cnt; i++) {
		struct router_part *p =
			owner_part(r, parts->elems[i].partition);

		if (p == NULL)
			continue;
		fold_free(p->fold);
		p->fold = NULL;
		if (p->owned) {
			online_release(p);
			metric_add(r->m->partitions, -1);
		}
		p->owned = false;
	}
}

static const struct kafka_consumer_ops owner_ops = {
	.on_assign = on_assign,
	.on_revoke = on_revoke,
};

int
owner_open(struct router *r)
{
	r->consumer = kafka_consumer_new(r->cfg.brokers, r->cfg.group,
					 r->cfg.topic, true, &owner_ops, r);
	return r->consumer ? 0 : -EINVAL;
}

void
owner_close(struct router *r)
{
	kafka_consumer_free(r->consumer);
	r->consumer = NULL;
	for (int i = 0; i < ROUTER_MAX_PARTITIONS; i++) {
		fold_free(r->parts[i].fold);
		if (r->parts[i].owned)
			online_release(&r->parts[i]);
		r->parts[i].owned = false;
	}
}

/* Fan-out: one Delivery per gateway naming its online members. */

struct owner_fan {
	struct router *r;
	const uint8_t *frame;
	size_t len;
	int64_t ts_ms; /* of a Message, for the gateways' latency metric */
};

static void
owner_fan_gw(void *ctx, const char *gateway, char **users, size_t n)
{
	struct owner_fan *fan = ctx;
	Parley__Internal__V1__Delivery d = PARLEY__INTERNAL__V1__DELIVERY__INIT;

	d.user_ids = users;
	d.n_user_ids = n;
	d.frame.data = (uint8_t *)fan->frame;
	d.frame.len = fan->len;
	d.ts_ms = fan->ts_ms;
	fanout_add(fan->r, gateway, &d);
	metric_add(fan->r->m->deliveries, (int64_t)n);
	metric_add(fan->r->m->fanout_steps, (int64_t)n + 1);
}

static void
owner_fan_one(void *ctx, const char *gateway)
{
	struct owner_fan *fan = ctx;
	char *user = (char *)fan->r->fan_user;

	owner_fan_gw(ctx, gateway, &user, 1);
}

/* Send frame to every online session of the room's members (from the
 * online index: the cost is the online members, not the room size), and
 * of extra (a member who just went) when not NULL. With p NULL, only to
 * extra. */
static void
owner_fanout(struct router *r, struct router_part *p, const char *room,
	     const Parley__V1__ServerFrame *f, const char *extra)
{
	size_t n = parley__v1__server_frame__get_packed_size(f);
	uint8_t *buf = xmalloc(n ? n : 1);
	struct owner_fan fan = { r, buf, n, 0 };

	if (f->msg_case == PARLEY__V1__SERVER_FRAME__MSG_MESSAGE)
		fan.ts_ms = f->message->ts_ms;

	parley__v1__server_frame__pack(f, buf);
	if (p)
		online_each(p, room, owner_fan_gw, &fan);
	if (extra) {
		r->fan_user = extra;
		replica_each_gateway(&r->replica, extra, owner_fan_one, &fan);
	}
	free(buf);
}

static void
owner_ack(struct router *r, const Parley__Log__V1__Record *rec,
	  const struct fold_result *res)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__SendAck ack = PARLEY__V1__SEND_ACK__INIT;
	const Parley__Log__V1__Origin *o = rec->origin;

	if (o == NULL)
		return;
	ack.client_msg_id = rec->post->client_msg_id;
	ack.room_id = rec->room_id;
	ack.seq = res->seq;
	ack.ts_ms = res->ts_ms;
	ack.duplicate = res->verdict == FOLD_DUPLICATE;
	f.request_id = o->request_id;
	f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_SEND_ACK;
	f.send_ack = &ack;
	router_reply(r, o->gateway, o->session_id, &f);
	metric_add(r->m->acks, 1);
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		char trace[LOG_TRACE_LEN];

		log_trace_id(rec->room_id, rec->actor, ack.client_msg_id,
			     trace);
		log_write_trace(LOG_LEVEL_DEBUG, "router.ack", trace,
				"room %s seq %llu%s", rec->room_id,
				(unsigned long long)ack.seq,
				ack.duplicate ? " (duplicate)" : "");
	}
	if (ack.duplicate)
		metric_add(r->m->duplicates, 1);
	else
		metric_observe(r->m->ack_latency,
			       (double)(router_now_ms() - rec->ts_ms) / 1000.0);
}

static void
owner_post(struct router *r, struct router_part *p,
	   const Parley__Log__V1__Record *rec, const struct fold_result *res)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__Message m = PARLEY__V1__MESSAGE__INIT;

	owner_ack(r, rec, res);
	if (res->verdict != FOLD_ACCEPTED)
		return;
	m.room_id = rec->room_id;
	m.seq = res->seq;
	m.sender_id = rec->actor;
	m.client_msg_id = rec->post->client_msg_id;
	m.body = rec->post->body;
	m.ts_ms = res->ts_ms;
	f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_MESSAGE;
	f.message = &m;
	owner_fanout(r, p, rec->room_id, &f, NULL);
}

static void
owner_ok(struct router *r, const Parley__Log__V1__Origin *o)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__Ok ok = PARLEY__V1__OK__INIT;

	if (o == NULL || o->request_id == 0)
		return;
	f.request_id = o->request_id;
	f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_OK;
	f.ok = &ok;
	router_reply(r, o->gateway, o->session_id, &f);
}

static void
owner_marker(struct router *r, struct router_part *p,
	     const Parley__Log__V1__Record *rec, const struct fold_result *res)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__Receipt rc = PARLEY__V1__RECEIPT__INIT;

	owner_ok(r, rec->origin);
	if (res->verdict != FOLD_ACCEPTED)
		return;
	rc.room_id = rec->room_id;
	rc.user_id = rec->actor;
	rc.kind = rec->marker->read
			  ? PARLEY__V1__RECEIPT_KIND__RECEIPT_KIND_READ
			  : PARLEY__V1__RECEIPT_KIND__RECEIPT_KIND_DELIVERED;
	rc.seq = res->seq;
	f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_RECEIPT;
	f.receipt = &rc;
	/* Small rooms share read markers; big ones only tell the reader's
	 * own devices (unread stays exact there), and answer GetReceipts. */
	if (map_count(&res->room->members) <=
	    (size_t)r->cfg.presence_room_limit)
		owner_fanout(r, p, rec->room_id, &f, NULL);
	else
		owner_fanout(r, NULL, NULL, &f, rec->actor);
}

/* The members of a room as a NULL-free array (borrowed keys). */
static char **
owner_members(struct fold_room *room, size_t *n)
{
	char **ids = xcalloc(map_count(&room->members) + 1, sizeof(*ids));
	size_t pos = 0;
	const char *key;
	void *val;

	*n = 0;
	while (map_next(&room->members, &pos, &key, &val))
		ids[(*n)++] = (char *)key;
	return ids;
}

/* RoomEvent kind and user list of a membership record. */
static int
owner_room_event(const Parley__Log__V1__Record *rec,
		 const struct fold_result *res, Parley__V1__RoomEvent *ev,
		 char ***owned)
{
	struct fold_room *room = res->room;

	*owned = NULL;
	switch (rec->body_case) {
	case PARLEY__LOG__V1__RECORD__BODY_CREATE_ROOM:
		*owned = owner_members(room, &ev->n_user_ids);
		ev->user_ids = *owned;
		return PARLEY__V1__ROOM_EVENT_KIND__ROOM_EVENT_KIND_CREATED;
	case PARLEY__LOG__V1__RECORD__BODY_ADD_MEMBERS:
		ev->user_ids = rec->add_members->user_ids;
		ev->n_user_ids = rec->add_members->n_user_ids;
		return PARLEY__V1__ROOM_EVENT_KIND__ROOM_EVENT_KIND_MEMBERS_ADDED;
	case PARLEY__LOG__V1__RECORD__BODY_REMOVE_MEMBER:
		ev->user_ids = &rec->remove_member->user_id;
		ev->n_user_ids = 1;
		return PARLEY__V1__ROOM_EVENT_KIND__ROOM_EVENT_KIND_MEMBER_REMOVED;
	case PARLEY__LOG__V1__RECORD__BODY_DELETE_ROOM:
		/* A retried delete removed nobody; name nobody. */
		ev->user_ids = res->removed_all;
		ev->n_user_ids = res->n_removed_all;
		return PARLEY__V1__ROOM_EVENT_KIND__ROOM_EVENT_KIND_DELETED;
	default:
		ev->user_ids = (char **)&rec->actor;
		ev->n_user_ids = 1;
		return PARLEY__V1__ROOM_EVENT_KIND__ROOM_EVENT_KIND_MEMBER_LEFT;
	}
}

/* Membership changed (or a retry of it): tell the members, the member who
 * went, and answer the origin with the same event. */
static void
owner_room(struct router *r, struct router_part *p,
	   const Parley__Log__V1__Record *rec, const struct fold_result *res)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__RoomEvent ev = PARLEY__V1__ROOM_EVENT__INIT;
	const Parley__Log__V1__Origin *o = rec->origin;
	char **owned;

	ev.room_id = rec->room_id;
	ev.kind = owner_room_event(rec, res, &ev, &owned);
	ev.seq = res->room->last_seq;
	ev.actor_id = rec->actor;
	ev.name = res->room->name;
	ev.ts_ms = res->ts_ms;
	f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_ROOM_EVENT;
	f.room_event = &ev;
	if (res->verdict == FOLD_ACCEPTED) {
		owner_fanout(r, p, rec->room_id, &f, res->removed);
		/* A deleted room has no members left in the index: tell
		 * each one it removed. */
		for (size_t i = 0; i < res->n_removed_all; i++)
			owner_fanout(r, NULL, NULL, &f, res->removed_all[i]);
	}
	if (o && o->request_id) {
		f.request_id = o->request_id;
		router_reply(r, o->gateway, o->session_id, &f);
	}
	free(owned);
}

/* Answer and fan out what the fold decided for a live record. */
static void
owner_effects(struct router *r, struct router_part *p,
	      const Parley__Log__V1__Record *rec, const struct fold_result *res)
{
	const Parley__Log__V1__Origin *o = rec->origin;

	if (res->verdict == FOLD_REJECTED) {
		metric_add(r->m->rejected, 1);
		/* body is a union: post is only valid for a Post. */
		if (o)
			router_error(
				r, o->gateway, o->session_id, o->request_id,
				res->error, res->reason, false, rec->room_id,
				rec->body_case ==
						PARLEY__LOG__V1__RECORD__BODY_POST
					? rec->post->client_msg_id
					: NULL);
		return;
	}
	if (rec->body_case == PARLEY__LOG__V1__RECORD__BODY_POST)
		owner_post(r, p, rec, res);
	else if (rec->body_case == PARLEY__LOG__V1__RECORD__BODY_MARKER)
		owner_marker(r, p, rec, res);
	else
		owner_room(r, p, rec, res);
}

/* Keep the online index in step with membership, live or refolding. */
static void
owner_membership(struct router *r, struct router_part *p,
		 const Parley__Log__V1__Record *rec,
		 const struct fold_result *res)
{
	size_t pos = 0;
	const char *key;
	void *val;

	if (res->verdict != FOLD_ACCEPTED)
		return;
	if (res->removed)
		online_member_del(r, p, rec->room_id, res->removed);
	for (size_t i = 0; i < res->n_removed_all; i++)
		online_member_del(r, p, rec->room_id, res->removed_all[i]);
	if (!res->created &&
	    rec->body_case != PARLEY__LOG__V1__RECORD__BODY_ADD_MEMBERS)
		return;
	while (map_next(&res->room->members, &pos, &key, &val))
		online_member_add(r, p, rec->room_id, key);
}

static void
owner_record(struct router *r, struct router_part *p,
	     const rd_kafka_message_t *m)
{
	Parley__Log__V1__Record *rec;
	struct fold_result res;

	rec = parley__log__v1__record__unpack(NULL, m->len, m->payload);
	if (rec == NULL) {
		LOG_WARN("router.bad_record", "undecodable record at %d/%lld",
			 m->partition, (long long)m->offset);
		return;
	}
	if (fold_apply(p->fold, rec, &res) == 0) {
		owner_membership(r, p, rec, &res);
		if (m->offset >= p->live_from)
			owner_effects(r, p, rec, &res);
	}
	metric_add(r->m->records, 1);
	parley__log__v1__record__free_unpacked(rec, NULL);
}

void
owner_lag(struct router *r)
{
	rd_kafka_t *rk =
		r->consumer ? kafka_consumer_handle(r->consumer) : NULL;
	rd_kafka_topic_partition_list_t *l;
	int64_t lag = 0, lo, hi;

	if (rk == NULL)
		return;
	l = rd_kafka_topic_partition_list_new(r->n_partitions);
	for (int i = 0; i < r->n_partitions; i++)
		if (r->parts[i].owned)
			rd_kafka_topic_partition_list_add(l, r->cfg.topic, i);
	if (l->cnt > 0 && rd_kafka_position(rk, l) == 0) {
		for (int i = 0; i < l->cnt; i++) {
			const rd_kafka_topic_partition_t *tp = &l->elems[i];

			if (rd_kafka_get_watermark_offsets(rk, r->cfg.topic,
							   tp->partition, &lo,
							   &hi) != 0)
				continue;
			lo = tp->offset >= 0 ? tp->offset : lo;
			lag += hi > lo ? hi - lo : 0;
		}
	}
	rd_kafka_topic_partition_list_destroy(l);
	metric_set(r->m->lag, lag);
}

bool
owner_drain(struct router *r)
{
	for (int i = 0; i < OWNER_DRAIN_MAX; i++) {
		rd_kafka_message_t *m = kafka_consumer_poll(r->consumer, 0);
		struct router_part *p;

		if (m == NULL)
			return false;
		p = owner_part(r, m->partition);
		if (p && p->owned && p->fold)
			owner_record(r, p, m);
		kafka_consumer_store(r->consumer, m);
		rd_kafka_message_destroy(m);
	}
	return true;
}
