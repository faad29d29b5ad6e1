/* authz_probe: a parley client for the authorization test. It connects
 * with a token, tries every room command on each --attack room (rooms it
 * is not in), listens for --seconds, then reads each --sync room with Sync
 * and History, and prints every frame it got as one JSON line (kind, room,
 * seqs, users, error code) for the checker in tests/integration. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../clients/cli/conn.h"

#define PROBE_MAX_ROOMS 16

struct probe {
	const char *url, *token;
	const char *attack[PROBE_MAX_ROOMS], *sync[PROBE_MAX_ROOMS];
	int n_attack, n_sync;
	double seconds;
	const char *victim; /* a member to try RemoveMember on */
};

static void
print_strs(const char *key, char **v, size_t n)
{
	printf(",\"%s\":[", key);
	for (size_t i = 0; i < n; i++)
		printf("%s\"%s\"", i ? "," : "", v[i]);
	printf("]");
}

static void
print_rooms(Parley__V1__RoomSummary **r, size_t n)
{
	printf(",\"rooms\":[");
	for (size_t i = 0; i < n; i++)
		printf("%s\"%s\"", i ? "," : "", r[i]->room_id);
	printf("]");
}

static void
print_sync(const Parley__V1__SyncResult *r)
{
	uint64_t max = 0;

	for (size_t i = 0; i < r->n_messages; i++)
		if (r->messages[i]->seq > max)
			max = r->messages[i]->seq;
	printf(",\"room_id\":\"%s\",\"n_messages\":%zu,\"max_seq\":%llu,"
	       "\"n_events\":%zu",
	       r->room_id, r->n_messages, (unsigned long long)max, r->n_events);
}

/* The frame's fields that say what it reveals about which room. */
static void
print_body(const Parley__V1__ServerFrame *f)
{
	switch (f->msg_case) {
	case PARLEY__V1__SERVER_FRAME__MSG_WELCOME:
		print_rooms(f->welcome->rooms, f->welcome->n_rooms);
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_SEND_ACK:
		printf(",\"room_id\":\"%s\",\"seq\":%llu", f->send_ack->room_id,
		       (unsigned long long)f->send_ack->seq);
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_MESSAGE:
		printf(",\"room_id\":\"%s\",\"seq\":%llu", f->message->room_id,
		       (unsigned long long)f->message->seq);
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_SYNC_RESULT:
		print_sync(f->sync_result);
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_ROOM_EVENT:
		printf(",\"room_id\":\"%s\",\"kind\":%d,\"seq\":%llu",
		       f->room_event->room_id, (int)f->room_event->kind,
		       (unsigned long long)f->room_event->seq);
		print_strs("user_ids", f->room_event->user_ids,
			   f->room_event->n_user_ids);
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_ROOM_LIST:
		print_rooms(f->room_list->rooms, f->room_list->n_rooms);
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_RECEIPT:
		printf(",\"room_id\":\"%s\",\"user_id\":\"%s\",\"seq\":%llu",
		       f->receipt->room_id, f->receipt->user_id,
		       (unsigned long long)f->receipt->seq);
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_TYPING:
		printf(",\"room_id\":\"%s\",\"user_id\":\"%s\"",
		       f->typing->room_id, f->typing->user_id);
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_PRESENCE:
		printf(",\"user_id\":\"%s\"", f->presence->user_id);
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_ERROR:
		printf(",\"code\":%d,\"room_id\":\"%s\"", (int)f->error->code,
		       f->error->room_id ? f->error->room_id : "");
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_RECEIPT_SUMMARY:
		printf(",\"room_id\":\"%s\"", f->receipt_summary->room_id);
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_ROOM_PRESENCE:
		printf(",\"room_id\":\"%s\"", f->room_presence->room_id);
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_SYNC_ROOMS_RESULT:
		printf(",\"n_results\":%zu", f->sync_rooms_result->n_results);
		for (size_t i = 0; i < f->sync_rooms_result->n_results; i++)
			printf(",\"result_%zu\":{\"room\":\"%s\",\"n\":%zu}", i,
			       f->sync_rooms_result->results[i]->room_id,
			       f->sync_rooms_result->results[i]->n_messages);
		break;
	default:
		break;
	}
}

static void
print_frame(const Parley__V1__ServerFrame *f)
{
	const ProtobufCFieldDescriptor *d =
		protobuf_c_message_descriptor_get_field(
			&parley__v1__server_frame__descriptor,
			(unsigned)f->msg_case);

	printf("{\"type\":\"%s\",\"request_id\":%llu", d ? d->name : "?",
	       (unsigned long long)f->request_id);
	print_body(f);
	printf("}\n");
	fflush(stdout);
}

static int
on_frame(void *arg, const Parley__V1__ServerFrame *f)
{
	(void)arg;
	print_frame(f);
	return 0;
}

static void
send_frame(struct conn *c, Parley__V1__ClientFrame *f)
{
	if (conn_send(c, f) != 0)
		fprintf(stderr, "authz_probe: send failed\n");
}

/* Every command that names a room, against room (not ours). */
static void
attack(struct conn *c, const char *room, const char *victim)
{
	Parley__V1__ClientFrame f;
	Parley__V1__Send s = PARLEY__V1__SEND__INIT;
	Parley__V1__Sync sy = PARLEY__V1__SYNC__INIT;
	Parley__V1__History h = PARLEY__V1__HISTORY__INIT;
	Parley__V1__AddMembers am = PARLEY__V1__ADD_MEMBERS__INIT;
	Parley__V1__RemoveMember rm = PARLEY__V1__REMOVE_MEMBER__INIT;
	Parley__V1__LeaveRoom lr = PARLEY__V1__LEAVE_ROOM__INIT;
	Parley__V1__Delivered dl = PARLEY__V1__DELIVERED__INIT;
	Parley__V1__Read rd = PARLEY__V1__READ__INIT;
	Parley__V1__Typing ty = PARLEY__V1__TYPING__INIT;
	Parley__V1__GetReceipts gr = PARLEY__V1__GET_RECEIPTS__INIT;
	Parley__V1__GetRoomPresence gp = PARLEY__V1__GET_ROOM_PRESENCE__INIT;
	Parley__V1__SyncRooms sr = PARLEY__V1__SYNC_ROOMS__INIT;
	Parley__V1__Sync *srs[1] = { &sy };
	Parley__V1__ListRooms ls = PARLEY__V1__LIST_ROOMS__INIT;
	char *self[1] = { conn_welcome(c)->user_id }, cmid[64];

	snprintf(cmid, sizeof(cmid), "attack-%s", room);
	s.client_msg_id = cmid;
	s.room_id = sy.room_id = h.room_id = am.room_id = rm.room_id =
		lr.room_id = dl.room_id = rd.room_id = ty.room_id = gr.room_id =
			gp.room_id = (char *)room;
	s.body = "let me in";
	sy.limit = h.limit = 1000;
	am.user_ids = self;
	am.n_user_ids = 1;
	rm.user_id = (char *)victim;
	dl.seq = rd.seq = gr.seq = 1;
	ty.active = true;
	sr.rooms = srs;
	sr.n_rooms = 1;
#define PROBE_SEND(field, kase, val)                               \
	do {                                                       \
		parley__v1__client_frame__init(&f);                \
		f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_##kase; \
		f.field = &(val);                                  \
		send_frame(c, &f);                                 \
	} while (0)
	PROBE_SEND(send, SEND, s);
	PROBE_SEND(sync, SYNC, sy);
	PROBE_SEND(history, HISTORY, h);
	PROBE_SEND(add_members, ADD_MEMBERS, am);
	PROBE_SEND(remove_member, REMOVE_MEMBER, rm);
	PROBE_SEND(leave_room, LEAVE_ROOM, lr);
	PROBE_SEND(delivered, DELIVERED, dl);
	PROBE_SEND(read, READ, rd);
	PROBE_SEND(typing, TYPING, ty);
	PROBE_SEND(get_receipts, GET_RECEIPTS, gr);
	PROBE_SEND(get_room_presence, GET_ROOM_PRESENCE, gp);
	PROBE_SEND(sync_rooms, SYNC_ROOMS, sr);
	PROBE_SEND(list_rooms, LIST_ROOMS, ls);
#undef PROBE_SEND
}

static void
read_room(struct conn *c, const char *room)
{
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__Sync sy = PARLEY__V1__SYNC__INIT;
	Parley__V1__History h = PARLEY__V1__HISTORY__INIT;

	sy.room_id = h.room_id = (char *)room;
	sy.limit = h.limit = 1000;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_SYNC;
	f.sync = &sy;
	send_frame(c, &f);
	parley__v1__client_frame__init(&f);
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_HISTORY;
	f.history = &h;
	send_frame(c, &f);
}

static int
probe_args(struct probe *p, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "token", required_argument, NULL, 't' },
		{ "attack", required_argument, NULL, 'a' },
		{ "sync", required_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "victim", required_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	p->seconds = 5;
	p->victim = "alice";
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'u')
			p->url = optarg;
		else if (o == 't')
			p->token = optarg;
		else if (o == 'a' && p->n_attack < PROBE_MAX_ROOMS)
			p->attack[p->n_attack++] = optarg;
		else if (o == 's' && p->n_sync < PROBE_MAX_ROOMS)
			p->sync[p->n_sync++] = optarg;
		else if (o == 'S')
			p->seconds = strtod(optarg, NULL);
		else if (o == 'v')
			p->victim = optarg;
		else
			return -1;
	}
	return p->url && p->token ? 0 : -1;
}

int
main(int argc, char **argv)
{
	struct probe p = { 0 };
	struct conn *c;
	int64_t end;
	int rc;

	if (probe_args(&p, argc, argv) != 0) {
		fprintf(stderr, "usage: authz_probe --url URL --token TOKEN "
				"[--attack ROOM]... [--sync ROOM]... "
				"[--seconds S] [--victim USER]\n");
		return 2;
	}
	rc = conn_open(p.url, p.token, conn_now_ms() + 10000, &c);
	if (rc) {
		fprintf(stderr, "authz_probe: cannot connect: %d\n", rc);
		return 4;
	}
	fprintf(stderr, "listening\n");
	print_frame(&(Parley__V1__ServerFrame){
		.base = PROTOBUF_C_MESSAGE_INIT(
			&parley__v1__server_frame__descriptor),
		.msg_case = PARLEY__V1__SERVER_FRAME__MSG_WELCOME,
		.welcome = (Parley__V1__Welcome *)conn_welcome(c) });
	for (int i = 0; i < p.n_attack; i++)
		attack(c, p.attack[i], p.victim);
	end = conn_now_ms() + (int64_t)(p.seconds * 1000);
	conn_wait(c, end, on_frame, NULL);
	for (int i = 0; i < p.n_sync; i++)
		read_room(c, p.sync[i]);
	conn_wait(c, conn_now_ms() + 3000, on_frame, NULL);
	conn_free(c);
	return 0;
}
