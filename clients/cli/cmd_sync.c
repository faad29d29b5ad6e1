/* `parley sync`: the launch sync. The Welcome lists every room with its
 * last seq and the user's read marker; one SyncRooms request (per 100
 * rooms, repeated while pages remain) brings every room up to date, and the
 * missed messages are printed as JSON lines, like `history`. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "event.h"
#include "xalloc.h"

#define SYNC_ROOMS_MAX 100
#define SYNC_PAGE      500

enum { SYNC_OPT_ALL = CLI_OPT_LOCAL };

static const char sync_usage[] =
	"Usage: parley sync (--as USER | --token TOKEN) [--url URL]... [--all]\n"
	"                   [--timeout S]\n"
	"\n"
	"Bring every room of the user up to date in as few round trips as\n"
	"possible and print the missed messages (after the user's read\n"
	"marker; with --all, every message) as JSON lines, oldest first per\n"
	"room, like 'parley history'.\n"
	"  --all           from the start of each room, not the read marker\n"
	"  --timeout S     wait at most S seconds per request (default 10)\n"
	"  --as, --token, --url, --help: see 'parley --help'\n";

static const struct option sync_options[] = {
	CLI_SESSION_OPTIONS,
	{ "all", no_argument, NULL, SYNC_OPT_ALL },
	{ NULL, 0, NULL, 0 },
};

/* One room to bring up to date: where we are and where it ends. */
struct sync_room {
	char *id;
	uint64_t after;
	uint64_t last;
};

struct sync_args {
	bool all;
	struct sync_room *rooms;
	size_t n;
};

static int
sync_parse(struct cli_session *s, struct sync_args *a, int argc, char **argv)
{
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", sync_options, NULL)) != -1) {
		if (opt == SYNC_OPT_ALL) {
			a->all = true;
			continue;
		}
		rc = cli_session_opt(s, opt, optarg);
		if (rc)
			return rc;
	}
	if (argc != optind)
		return cli_usage(s->cmd, "no arguments expected");
	return cli_session_ready(s);
}

/* Rooms with something to fetch, from the Welcome. */
static void
sync_plan(struct sync_args *a, const Parley__V1__Welcome *w)
{
	a->rooms = xcalloc(w->n_rooms + 1, sizeof(*a->rooms));
	for (size_t i = 0; i < w->n_rooms; i++) {
		const Parley__V1__RoomSummary *r = w->rooms[i];
		uint64_t from = a->all ? 0 : r->read_seq;

		if (r->last_seq <= from)
			continue;
		a->rooms[a->n].id = xstrdup(r->room_id);
		a->rooms[a->n].after = from;
		a->rooms[a->n++].last = r->last_seq;
	}
}

static void
sync_print(struct sync_room *r, const Parley__V1__SyncResult *res)
{
	struct json j;

	json_init(&j);
	for (size_t i = 0; i < res->n_messages; i++) {
		if (res->messages[i]->seq <= r->after)
			continue;
		event_message(&j, res->messages[i]);
		json_print_line(&j, stdout);
		r->after = res->messages[i]->seq;
	}
	if (!res->has_more || res->n_messages == 0)
		r->last = r->after; /* done with this room */
	json_release(&j);
}

static struct sync_room *
sync_find(struct sync_args *a, const char *id)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->rooms[i].id, id) == 0)
			return &a->rooms[i];
	return NULL;
}

/* One SyncRooms for up to 100 unfinished rooms; false when none is left. */
static int
sync_round(struct cli_session *s, struct conn *c, struct sync_args *a,
	   bool *more)
{
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__SyncRooms req = PARLEY__V1__SYNC_ROOMS__INIT;
	Parley__V1__Sync syncs[SYNC_ROOMS_MAX], *ptrs[SYNC_ROOMS_MAX];
	Parley__V1__ServerFrame *reply;
	int rc;

	for (size_t i = 0; i < a->n && req.n_rooms < SYNC_ROOMS_MAX; i++) {
		Parley__V1__Sync *y = &syncs[req.n_rooms];

		if (a->rooms[i].after >= a->rooms[i].last)
			continue;
		parley__v1__sync__init(y);
		y->room_id = a->rooms[i].id;
		y->after_seq = a->rooms[i].after;
		y->limit = SYNC_PAGE;
		ptrs[req.n_rooms++] = y;
	}
	*more = req.n_rooms > 0;
	if (!*more)
		return 0;
	req.rooms = ptrs;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_SYNC_ROOMS;
	f.sync_rooms = &req;
	rc = cli_request(s, c, &f, cli_session_deadline(s, CLI_REQUEST_MS),
			 PARLEY__V1__SERVER_FRAME__MSG_SYNC_ROOMS_RESULT,
			 &reply);
	if (rc)
		return rc;
	for (size_t i = 0; i < reply->sync_rooms_result->n_results; i++) {
		const Parley__V1__SyncResult *res =
			reply->sync_rooms_result->results[i];
		struct sync_room *r = sync_find(a, res->room_id);

		if (r)
			sync_print(r, res);
	}
	/* A room left out of the answer is not ours to read: stop asking. */
	for (size_t i = 0; i < req.n_rooms; i++) {
		struct sync_room *r = sync_find(a, syncs[i].room_id);
		bool answered = false;

		for (size_t k = 0; k < reply->sync_rooms_result->n_results; k++)
			answered |= strcmp(reply->sync_rooms_result->results[k]
						   ->room_id,
					   syncs[i].room_id) == 0;
		if (r && !answered)
			r->last = r->after;
	}
	parley__v1__server_frame__free_unpacked(reply, NULL);
	return 0;
}

static int
sync_run(struct cli_session *s, struct conn *c, void *arg)
{
	struct sync_args *a = arg;
	bool more = true;
	int rc = 0;

	if (a->rooms == NULL) /* a reconnect goes on where we were */
		sync_plan(a, conn_welcome(c));
	while (more && rc == 0)
		rc = sync_round(s, c, a, &more);
	fflush(stdout);
	return rc;
}

int
cmd_sync(int argc, char **argv)
{
	struct sync_args a = { 0 };
	struct cli_session s;
	int rc;

	cli_session_init(&s, "sync", sync_usage);
	rc = sync_parse(&s, &a, argc, argv);
	if (!rc)
		rc = cli_session_run(&s, sync_run, &a);
	cli_session_release(&s);
	for (size_t i = 0; i < a.n; i++)
		free(a.rooms[i].id);
	free(a.rooms);
	return rc == CLI_DONE ? CLI_EXIT_OK : rc;
}
