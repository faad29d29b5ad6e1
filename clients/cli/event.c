/* ServerFrame contents as the CLI's JSON lines. Enum values are written
 * as lowercase words without their prefix ("read", "members_added"). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "event.h"

/* Write enum value v of d as its name minus prefix, lowercased; unknown
 * values as their number. */
static void
event_enum(struct json *j, const char *key, const ProtobufCEnumDescriptor *d,
	   const char *prefix, int v)
{
	const ProtobufCEnumValue *ev =
		protobuf_c_enum_descriptor_get_value(d, v);
	size_t skip = strlen(prefix);
	char name[64];
	size_t i;

	if (!ev || strncmp(ev->name, prefix, skip) != 0) {
		json_i64(j, key, v);
		return;
	}
	for (i = 0; ev->name[skip + i] && i < sizeof(name) - 1; i++)
		name[i] = (char)tolower((unsigned char)ev->name[skip + i]);
	name[i] = '\0';
	json_str(j, key, name);
}

void
event_message(struct json *j, const Parley__V1__Message *m)
{
	json_begin(j, "message");
	json_str(j, "room_id", m->room_id);
	json_u64(j, "seq", m->seq);
	json_str(j, "sender_id", m->sender_id);
	json_str(j, "client_msg_id", m->client_msg_id);
	json_str(j, "body", m->body);
	json_i64(j, "ts_ms", m->ts_ms);
	json_obj_end(j);
}

void
event_receipt(struct json *j, const Parley__V1__Receipt *r)
{
	json_begin(j, "receipt");
	json_str(j, "room_id", r->room_id);
	json_str(j, "user_id", r->user_id);
	event_enum(j, "kind", &parley__v1__receipt_kind__descriptor,
		   "RECEIPT_KIND_", r->kind);
	json_u64(j, "seq", r->seq);
	json_obj_end(j);
}

void
event_typing(struct json *j, const Parley__V1__Typing *t)
{
	json_begin(j, "typing");
	json_str(j, "room_id", t->room_id);
	json_str(j, "user_id", t->user_id);
	json_bool(j, "active", t->active);
	json_obj_end(j);
}

void
event_presence(struct json *j, const Parley__V1__Presence *p)
{
	json_begin(j, "presence");
	json_str(j, "user_id", p->user_id);
	json_bool(j, "online", p->online);
	json_i64(j, "last_seen_ms", p->last_seen_ms);
	json_obj_end(j);
}

void
event_room_event(struct json *j, const Parley__V1__RoomEvent *e)
{
	json_begin(j, "room_event");
	json_str(j, "room_id", e->room_id);
	event_enum(j, "kind", &parley__v1__room_event_kind__descriptor,
		   "ROOM_EVENT_KIND_", e->kind);
	json_str_array(j, "user_ids", e->user_ids, e->n_user_ids);
	json_u64(j, "seq", e->seq);
	json_str(j, "actor_id", e->actor_id);
	json_str(j, "name", e->name);
	json_i64(j, "ts_ms", e->ts_ms);
	json_obj_end(j);
}

/* The members of a room summary, shared by "room" lines and Welcome. */
static void
event_room_fields(struct json *j, const Parley__V1__RoomSummary *r)
{
	json_str(j, "room_id", r->room_id);
	json_u64(j, "last_seq", r->last_seq);
	json_u64(j, "read_seq", r->read_seq);
	json_u64(j, "unread", r->unread);
	json_str(j, "name", r->name);
	event_enum(j, "kind", &parley__v1__room_kind__descriptor, "ROOM_KIND_",
		   r->kind);
	json_u64(j, "delivered_seq", r->delivered_seq);
}

void
event_room(struct json *j, const Parley__V1__RoomSummary *r)
{
	json_begin(j, "room");
	event_room_fields(j, r);
	json_obj_end(j);
}

void
event_welcome(struct json *j, const Parley__V1__Welcome *w)
{
	json_begin(j, "welcome");
	json_str(j, "user_id", w->user_id);
	json_str(j, "session_id", w->session_id);
	json_bool(j, "rooms_complete", w->rooms_complete);
	json_i64(j, "server_time_ms", w->server_time_ms);
	json_arr(j, "rooms");
	for (size_t i = 0; i < w->n_rooms; i++) {
		json_obj(j, NULL);
		event_room_fields(j, w->rooms[i]);
		json_obj_end(j);
	}
	json_arr_end(j);
	json_obj_end(j);
}

void
event_ack(struct json *j, const Parley__V1__SendAck *a)
{
	json_begin(j, "ack");
	json_str(j, "room_id", a->room_id);
	json_u64(j, "seq", a->seq);
	json_str(j, "client_msg_id", a->client_msg_id);
	json_i64(j, "ts_ms", a->ts_ms);
	json_bool(j, "duplicate", a->duplicate);
	json_obj_end(j);
}

void
event_receipt_summary(struct json *j, const Parley__V1__ReceiptSummary *r)
{
	json_begin(j, "receipt_summary");
	json_str(j, "room_id", r->room_id);
	json_u64(j, "seq", r->seq);
	json_u64(j, "members", r->members);
	json_u64(j, "delivered", r->delivered);
	json_u64(j, "read", r->read);
	json_obj_end(j);
}

void
event_room_presence(struct json *j, const Parley__V1__RoomPresence *p)
{
	json_begin(j, "room_presence");
	json_str(j, "room_id", p->room_id);
	json_u64(j, "members", p->members);
	json_u64(j, "online", p->online);
	json_str_array(j, "online_user_ids", p->online_user_ids,
		       p->n_online_user_ids);
	json_obj_end(j);
}

bool
event_push(struct json *j, const Parley__V1__ServerFrame *f)
{
	switch (f->msg_case) {
	case PARLEY__V1__SERVER_FRAME__MSG_MESSAGE:
		event_message(j, f->message);
		return true;
	case PARLEY__V1__SERVER_FRAME__MSG_RECEIPT:
		event_receipt(j, f->receipt);
		return true;
	case PARLEY__V1__SERVER_FRAME__MSG_TYPING:
		event_typing(j, f->typing);
		return true;
	case PARLEY__V1__SERVER_FRAME__MSG_PRESENCE:
		event_presence(j, f->presence);
		return true;
	case PARLEY__V1__SERVER_FRAME__MSG_ROOM_EVENT:
		event_room_event(j, f->room_event);
		return true;
	case PARLEY__V1__SERVER_FRAME__MSG_RECEIPT_SUMMARY:
		event_receipt_summary(j, f->receipt_summary);
		return true;
	case PARLEY__V1__SERVER_FRAME__MSG_ROOM_PRESENCE:
		event_room_presence(j, f->room_presence);
		return true;
	default:
		return false;
	}
}
