/* `parley listen`: print every pushed event as a JSON line. Messages come
 * out in seq order per room and each once: a jump in seq is filled with
 * Sync before the live message is shown, and a lost session is resumed on
 * the next gateway from where it stopped (G3, G4). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "event.h"
#include "xalloc.h"

#define LISTEN_SYNC_LIMIT 500
/* Syncs that may come back short of a gap (the store lags the live path)
 * before the gap is reported and the held messages shown anyway. */
#define LISTEN_SYNC_TRIES    5
#define LISTEN_SYNC_RETRY_MS 200

/* conn_wait() result when --count is reached or stdout failed. */
#define LISTEN_STOP 100

enum { LISTEN_OPT_COUNT = CLI_OPT_LOCAL, LISTEN_OPT_WELCOME };

/* A live message held back until the ones before it are printed. */
struct listen_held {
	uint64_t seq;
	char *line; /* its JSON line, owned */
};

struct listen_room {
	char *room_id;
	uint64_t last;		  /* highest seq printed or seen before */
	uint64_t sync_req;	  /* request_id of our Sync, 0 when none */
	int sync_tries;		  /* Syncs in a row that left a gap */
	int64_t retry_at;	  /* when to Sync again; -1 when not due */
	struct listen_held *held; /* sorted by seq, all > last + 1 */
	size_t n_held;
	size_t cap_held;
};

struct listen {
	struct cli_session s;
	struct conn *c;
	struct listen_room **rooms;
	size_t n_rooms;
	size_t cap_rooms;
	struct json j;
	bool initial;	   /* the first room list is not known yet */
	uint64_t list_req; /* ListRooms after a Welcome without all rooms */
	int64_t want;	   /* --count, -1 when not given */
	int64_t printed;
	bool welcome; /* --welcome */
	bool io_error;
	int64_t end; /* --timeout as a deadline, -1 when not given */
};

static const char listen_usage[] =
	"Usage: parley listen (--as USER | --token TOKEN) [--url URL]...\n"
	"                     [--count N] [--timeout S] [--welcome]\n"
	"\n"
	"Print each event pushed to the user as one JSON line (flushed):\n"
	"  {\"type\":\"message\",\"room_id\",\"seq\",\"sender_id\","
	"\"client_msg_id\",\"body\",\"ts_ms\"}\n"
	"  {\"type\":\"receipt\",\"room_id\",\"user_id\",\"kind\",\"seq\"}\n"
	"  {\"type\":\"typing\",\"room_id\",\"user_id\",\"active\"}\n"
	"  {\"type\":\"presence\",\"user_id\",\"online\",\"last_seen_ms\"}\n"
	"  {\"type\":\"room_event\",\"room_id\",\"kind\",\"user_ids\",\"seq\","
	"...}\n"
	"Writes \"listening\" to stderr once the session is up. Messages of a\n"
	"room come in seq order, each once; missed ones are fetched with Sync\n"
	"and printed before the live one. A lost connection is resumed on the\n"
	"next gateway and what was missed meanwhile is printed.\n"
	"\n"
	"  --count N       exit 0 after N events (exit 3 if the timeout comes\n"
	"                  first)\n"
	"  --timeout S     exit after S seconds (default: run until killed)\n"
	"  --welcome       also print the Welcome as {\"type\":\"welcome\",...}\n"
	"                  (not counted)\n"
	"  --as, --token, --url, --help: see 'parley --help'\n";

static const struct option listen_options[] = {
	CLI_SESSION_OPTIONS,
	{ "count", required_argument, NULL, LISTEN_OPT_COUNT },
	{ "welcome", no_argument, NULL, LISTEN_OPT_WELCOME },
	{ NULL, 0, NULL, 0 },
};

static int
listen_parse(struct listen *l, int argc, char **argv)
{
	uint64_t n;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", listen_options, NULL)) !=
	       -1) {
		if (opt == LISTEN_OPT_WELCOME) {
			l->welcome = true;
		} else if (opt == LISTEN_OPT_COUNT) {
			if (cli_parse_u64(optarg, &n) || !n || n > INT64_MAX)
				return cli_usage("listen", "bad --count '%s'",
						 optarg);
			l->want = (int64_t)n;
		} else if ((rc = cli_session_opt(&l->s, opt, optarg))) {
			return rc;
		}
	}
	if (optind != argc)
		return cli_usage("listen", "unexpected argument '%s'",
				 argv[optind]);
	return cli_session_ready(&l->s);
}

static bool
listen_done(const struct listen *l)
{
	return l->io_error || (l->want >= 0 && l->printed >= l->want);
}

/* Print one line, unless --count is reached already. */
static void
listen_emit(struct listen *l, const char *line)
{
	if (listen_done(l))
		return;
	if (fputs(line, stdout) < 0 || putchar('\n') < 0 || fflush(stdout))
		l->io_error = true;
	l->printed++;
}

/* Print what l->j holds and empty it. */
static void
listen_emit_json(struct listen *l)
{
	listen_emit(l, json_text(&l->j));
	json_clear(&l->j);
}

static struct listen_room *
listen_find(const struct listen *l, const char *room_id)
{
	for (size_t i = 0; i < l->n_rooms; i++)
		if (!strcmp(l->rooms[i]->room_id, room_id))
			return l->rooms[i];
	return NULL;
}

static struct listen_room *
listen_add(struct listen *l, const char *room_id, uint64_t last)
{
	struct listen_room *r = xcalloc(1, sizeof(*r));

	r->room_id = xstrdup(room_id);
	r->last = last;
	r->retry_at = -1;
	if (l->n_rooms == l->cap_rooms) {
		l->cap_rooms = l->cap_rooms ? 2 * l->cap_rooms : 16;
		l->rooms = xrealloc(
			l->rooms, l->cap_rooms * sizeof(struct listen_room *));
	}
	l->rooms[l->n_rooms++] = r;
	return r;
}

static void
listen_room_free(struct listen_room *r)
{
	for (size_t i = 0; i < r->n_held; i++)
		free(r->held[i].line);
	free(r->held);
	free(r->room_id);
	free(r);
}

static void
listen_print_message(struct listen *l, struct listen_room *r,
		     const Parley__V1__Message *m)
{
	event_message(&l->j, m);
	listen_emit_json(l);
	r->last = m->seq;
}

/* Drop held[0]. */
static void
listen_unhold_first(struct listen_room *r)
{
	free(r->held[0].line);
	r->n_held--;
	memmove(r->held, r->held + 1, r->n_held * sizeof(*r->held));
}

/* Print the held messages that now follow r->last without a gap. */
static void
listen_release(struct listen *l, struct listen_room *r)
{
	while (r->n_held && r->held[0].seq <= r->last + 1) {
		if (r->held[0].seq == r->last + 1) {
			listen_emit(l, r->held[0].line);
			r->last = r->held[0].seq;
		}
		listen_unhold_first(r);
	}
}

/* Keep m until the gap before it is filled; sorted, no duplicates. */
static void
listen_hold(struct listen *l, struct listen_room *r,
	    const Parley__V1__Message *m)
{
	size_t i = 0;

	while (i < r->n_held && r->held[i].seq < m->seq)
		i++;
	if (i < r->n_held && r->held[i].seq == m->seq)
		return;
	if (r->n_held == r->cap_held) {
		r->cap_held = r->cap_held ? 2 * r->cap_held : 8;
		r->held = xrealloc(r->held, r->cap_held * sizeof(*r->held));
	}
	memmove(r->held + i + 1, r->held + i,
		(r->n_held - i) * sizeof(*r->held));
	r->n_held++;
	event_message(&l->j, m);
	r->held[i].seq = m->seq;
	r->held[i].line = xstrdup(json_text(&l->j));
	json_clear(&l->j);
}

/* Ask for what follows r->last. If the session is gone, the resume after
 * the reconnect asks again. */
static void
listen_sync(struct listen *l, struct listen_room *r)
{
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__Sync msg = PARLEY__V1__SYNC__INIT;

	msg.room_id = r->room_id;
	msg.after_seq = r->last;
	msg.limit = LISTEN_SYNC_LIMIT;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_SYNC;
	f.sync = &msg;
	r->retry_at = -1;
	if (l->c && !conn_send(l->c, &f))
		r->sync_req = f.request_id;
}

/* The gap cannot be filled: say so and show the held messages anyway. */
static void
listen_give_up(struct listen *l, struct listen_room *r)
{
	fprintf(stderr,
		"parley listen: %s: messages after seq %llu are missing; "
		"going on without them\n",
		r->room_id, (unsigned long long)r->last);
	while (r->n_held) {
		listen_emit(l, r->held[0].line);
		r->last = r->held[0].seq;
		listen_unhold_first(r);
	}
	r->sync_tries = 0;
	r->retry_at = -1;
}

static void
listen_on_message(struct listen *l, const Parley__V1__Message *m)
{
	struct listen_room *r = listen_find(l, m->room_id);

	/* A room new since the first room list: all of it is news to us,
	 * unless that list is still pending (then start here). */
	if (!r)
		r = listen_add(l, m->room_id,
			       l->initial && m->seq ? m->seq - 1 : 0);
	if (m->seq <= r->last)
		return; /* printed already, or from before we started */
	if (m->seq == r->last + 1) {
		listen_print_message(l, r, m);
		listen_release(l, r);
		return;
	}
	listen_hold(l, r, m);
	if (!r->sync_req && r->retry_at < 0)
		listen_sync(l, r);
}

static void
listen_on_sync(struct listen *l, struct listen_room *r,
	       const Parley__V1__SyncResult *res)
{
	uint64_t before = r->last;

	r->sync_req = 0;
	for (size_t i = 0; i < res->n_messages; i++)
		if (res->messages[i]->seq > r->last)
			listen_print_message(l, r, res->messages[i]);
	listen_release(l, r);
	if (!r->n_held) {
		r->sync_tries = 0;
		return;
	}
	if (res->has_more && r->last > before) {
		listen_sync(l, r);
		return;
	}
	if (++r->sync_tries >= LISTEN_SYNC_TRIES) {
		listen_give_up(l, r);
		return;
	}
	r->retry_at =
		conn_now_ms() + (int64_t)LISTEN_SYNC_RETRY_MS * r->sync_tries;
}

static struct listen_room *
listen_syncing(const struct listen *l, uint64_t request_id)
{
	for (size_t i = 0; request_id && i < l->n_rooms; i++)
		if (l->rooms[i]->sync_req == request_id)
			return l->rooms[i];
	return NULL;
}

/* Take in a room list (Welcome or RoomList): learn new rooms, and fetch
 * what a known room got while we were away. */
static void
listen_adopt(struct listen *l, Parley__V1__RoomSummary **rooms, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct listen_room *r = listen_find(l, rooms[i]->room_id);

		if (!r)
			r = listen_add(l, rooms[i]->room_id,
				       l->initial ? rooms[i]->last_seq : 0);
		if (rooms[i]->last_seq > r->last && !r->sync_req)
			listen_sync(l, r);
	}
	l->initial = false;
}

static void
listen_on_error(struct listen *l, const Parley__V1__ServerFrame *f)
{
	struct listen_room *r = listen_syncing(l, f->request_id);

	cli_server_error("listen", f->error);
	if (r) {
		r->sync_req = 0;
		listen_give_up(l, r);
	}
	if (f->request_id && f->request_id == l->list_req) {
		l->list_req = 0;
		l->initial = false;
	}
}

static void
listen_on_reply(struct listen *l, const Parley__V1__ServerFrame *f)
{
	struct listen_room *r = listen_syncing(l, f->request_id);

	if (f->msg_case == PARLEY__V1__SERVER_FRAME__MSG_SYNC_RESULT && r) {
		listen_on_sync(l, r, f->sync_result);
	} else if (f->msg_case == PARLEY__V1__SERVER_FRAME__MSG_ROOM_LIST &&
		   f->request_id && f->request_id == l->list_req) {
		l->list_req = 0;
		listen_adopt(l, f->room_list->rooms, f->room_list->n_rooms);
	}
}

static int
listen_on_frame(void *arg, const Parley__V1__ServerFrame *f)
{
	struct listen *l = arg;

	switch (f->msg_case) {
	case PARLEY__V1__SERVER_FRAME__MSG_MESSAGE:
		listen_on_message(l, f->message);
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_ERROR:
		listen_on_error(l, f);
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_SYNC_RESULT:
	case PARLEY__V1__SERVER_FRAME__MSG_ROOM_LIST:
		listen_on_reply(l, f);
		break;
	default:
		if (event_push(&l->j, f))
			listen_emit_json(l);
	}
	return listen_done(l) ? LISTEN_STOP : 0;
}

/* Take in the Welcome of a new session; ask ListRooms when it says its
 * room list is incomplete. */
static void
listen_on_welcome(struct listen *l)
{
	const Parley__V1__Welcome *w = conn_welcome(l->c);
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__ListRooms msg = PARLEY__V1__LIST_ROOMS__INIT;
	bool initial = l->initial;

	if (l->welcome) {
		event_welcome(&l->j, w);
		if (json_print_line(&l->j, stdout))
			l->io_error = true;
	}
	listen_adopt(l, w->rooms, w->n_rooms);
	if (w->rooms_complete)
		return;
	l->initial = initial;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_LIST_ROOMS;
	f.list_rooms = &msg;
	l->list_req = conn_send(l->c, &f) ? 0 : f.request_id;
}

/* After a reconnect: Syncs in flight died with the old session. */
static void
listen_resume(struct listen *l)
{
	for (size_t i = 0; i < l->n_rooms; i++)
		l->rooms[i]->sync_req = 0;
	l->list_req = 0;
	listen_on_welcome(l);
	for (size_t i = 0; i < l->n_rooms; i++) {
		struct listen_room *r = l->rooms[i];

		if (r->n_held && !r->sync_req)
			listen_sync(l, r);
	}
}

/* Reconnect through the next gateways with backoff until --timeout. */
static int
listen_reconnect(struct listen *l)
{
	int rc;

	conn_free(l->c);
	l->c = NULL;
	for (int n = 0;; n++) {
		if (!cli_backoff(n, l->end))
			return -ETIMEDOUT;
		rc = cli_session_connect_one(&l->s, l->end, &l->c);
		if (!rc)
			break;
		if (rc == -EACCES || rc == -EINVAL)
			return cli_fail("listen", l->s.last_url, rc);
	}
	fprintf(stderr, "parley listen: reconnected to %s\n", conn_url(l->c));
	listen_resume(l);
	return 0;
}

/* Nearest of --timeout and the Sync retries that are due. */
static int64_t
listen_deadline(const struct listen *l)
{
	int64_t d = l->end;

	for (size_t i = 0; i < l->n_rooms; i++) {
		int64_t at = l->rooms[i]->retry_at;

		if (at >= 0 && (d < 0 || at < d))
			d = at;
	}
	return d;
}

static void
listen_run_timers(struct listen *l)
{
	int64_t now = conn_now_ms();

	for (size_t i = 0; i < l->n_rooms; i++) {
		struct listen_room *r = l->rooms[i];

		if (r->retry_at >= 0 && r->retry_at <= now)
			listen_sync(l, r);
	}
}

/* Serve one session until --count, --timeout or the session ends. */
static int
listen_pump(struct listen *l)
{
	int rc;

	for (;;) {
		rc = conn_wait(l->c, listen_deadline(l), listen_on_frame, l);
		if (rc != -ETIMEDOUT)
			return rc;
		if (l->end >= 0 && conn_now_ms() >= l->end)
			return rc;
		listen_run_timers(l);
	}
}

static int
listen_exit(struct listen *l, int rc)
{
	if (l->io_error)
		return CLI_EXIT_SERVER;
	if (rc == LISTEN_STOP)
		return CLI_EXIT_OK;
	if (rc == -ETIMEDOUT)
		return l->want >= 0 ? CLI_EXIT_TIMEOUT : CLI_EXIT_OK;
	if (rc > 0)
		return rc; /* an exit code, already explained */
	return cli_fail("listen", l->c ? conn_url(l->c) : l->s.last_url, rc);
}

/* A dropped session is resumed; one whose --as token expired (close
 * 4002) too, with a fresh token. */
static bool
listen_may_resume(struct listen *l, int rc)
{
	if (rc == -ECONNRESET || rc == -ENOTCONN)
		return true;
	return rc == -EACCES && conn_close_code(l->c) == 4002 &&
	       !cli_session_refresh(&l->s);
}

static int
listen_run(struct listen *l)
{
	int rc = cli_session_connect(&l->s, l->end, &l->c);

	if (rc)
		return rc;
	listen_on_welcome(l);
	fprintf(stderr, "listening\n");
	for (;;) {
		rc = listen_pump(l);
		if (!listen_may_resume(l, rc))
			break;
		fprintf(stderr, "parley listen: lost %s\n", conn_url(l->c));
		rc = listen_reconnect(l);
		if (rc)
			break;
	}
	return listen_exit(l, rc);
}

int
cmd_listen(int argc, char **argv)
{
	struct listen l;
	int rc;

	memset(&l, 0, sizeof(l));
	cli_session_init(&l.s, "listen", listen_usage);
	json_init(&l.j);
	l.initial = true;
	l.want = -1;
	rc = listen_parse(&l, argc, argv);
	if (!rc) {
		l.end = l.s.timeout_ms > 0 ? cli_session_deadline(&l.s, 0) : -1;
		rc = listen_run(&l);
	}
	conn_free(l.c);
	for (size_t i = 0; i < l.n_rooms; i++)
		listen_room_free(l.rooms[i]);
	free(l.rooms);
	json_release(&l.j);
	cli_session_release(&l.s);
	return rc == CLI_DONE ? CLI_EXIT_OK : rc;
}
