/* The CLI's JSON shape of each ServerFrame kind: one line per message,
 * receipt, typing, presence, room event, room, ack, receipt summary or
 * room presence, keys named as in the client contract. */
#ifndef PARLEY_CLI_EVENT_H
#define PARLEY_CLI_EVENT_H

#include <stdbool.h>

#include "json.h"
#include "parley/v1/client.pb-c.h"

/* Each builds one complete object (begin to end) in j; print it with
 * json_print_line(). */

/* {"type":"message","room_id","seq","sender_id","client_msg_id","body",
 *  "ts_ms"} */
void event_message(struct json *j, const Parley__V1__Message *m);
/* {"type":"receipt","room_id","user_id","kind":"delivered"|"read","seq"} */
void event_receipt(struct json *j, const Parley__V1__Receipt *r);
/* {"type":"typing","room_id","user_id","active"} */
void event_typing(struct json *j, const Parley__V1__Typing *t);
/* {"type":"presence","user_id","online","last_seen_ms"} */
void event_presence(struct json *j, const Parley__V1__Presence *p);
/* {"type":"room_event","room_id","kind","user_ids":[],"seq","actor_id",
 *  "name","ts_ms"}; kind is "created", "members_added", ... */
void event_room_event(struct json *j, const Parley__V1__RoomEvent *e);
/* {"type":"room","room_id","last_seq","read_seq","unread","name","kind",
 *  "delivered_seq"} */
void event_room(struct json *j, const Parley__V1__RoomSummary *r);
/* {"type":"welcome","user_id","session_id","rooms":[...]} */
void event_welcome(struct json *j, const Parley__V1__Welcome *w);
/* {"type":"ack","room_id","seq","client_msg_id","ts_ms","duplicate"} */
void event_ack(struct json *j, const Parley__V1__SendAck *a);
/* {"type":"receipt_summary","room_id","seq","members","delivered","read"} */
void event_receipt_summary(struct json *j, const Parley__V1__ReceiptSummary *r);
/* {"type":"room_presence","room_id","members","online","online_user_ids"} */
void event_room_presence(struct json *j, const Parley__V1__RoomPresence *p);

/* The line for a pushed event (message, receipt, typing, presence, room
 * event, receipt summary, room presence); false, with j untouched, for any
 * other kind of frame. */
bool event_push(struct json *j, const Parley__V1__ServerFrame *f);

#endif
