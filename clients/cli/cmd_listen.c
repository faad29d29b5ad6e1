/* `parley listen`: print every pushed event as a JSON line. Messages come
 * out in seq order per room and each once: a jump in seq is filled with
 * Sync before the live message is shown, and a lost session is resumed on
 * the next gateway from where it stopped (G3, G4). Printed messages are
 * confirmed with Delivered, batched per room (receipts depend on it). */
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
/* A gap the store cannot fill yet (it follows the log, or is down) is
 * asked again with backoff 200 ms doubling to 3 s: about a minute. */
#define LISTEN_SYNC_TRIES    25
#define LISTEN_SYNC_RETRY_MS 200
#define LISTEN_SYNC_MAX_MS   3000
/* At most one Delivered per room per this many ms, with the highest seq. */
#define LISTEN_DELIVERED_MS 200

/* conn_wait() result when --count is reached or stdout failed. */
#define LISTEN_STOP 100
/* conn_wait() result when a frame made a timer due before the wait's end
 * (a Delivered to send, a Sync to retry). */
#define LISTEN_RESCHEDULE 101

enum {
	LISTEN_OPT_COUNT = CLI_OPT_LOCAL,
	LISTEN_OPT_WELCOME,
	LISTEN_OPT_NO_DELIVERED,
};

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
	uint64_t dlv_want; /* highest seq printed: to confirm */
	uint64_t dlv_sent; /* highest seq confirmed with Delivered */
	int64_t dlv_last;  /* when the last Delivered went out */
	int64_t dlv_at;	   /* when the next one is due; -1 when none */
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
	int64_t printed;   /* messages printed */
	bool welcome;	   /* --welcome */
	bool delivered;	   /* send Delivered (unless --no-delivered) */
	bool io_error;
	int64_t end;	    /* --timeout as a deadline, -1 when not given */
	int64_t wait_until; /* the deadline conn_wait() runs with */
};

static const char listen_usage[] =
	"Usage: parley listen (--as USER | --token TOKEN) [--url URL]...\n"
	"                     [--count N] [--timeout S] [--welcome]\n"
	"                     [--no-delivered]\n"
	"\n"
	"Print each event pushed to the user as one JSON line (flushed):\n"
	"  {\"type\":\"message\",\"room_id\",\"seq\",\"sender_id\","
	"\"client_msg_id\",\"body\",\"ts_ms\"}\n"
	"  {\"type\":\"receipt\",\"room_id\",\"user_id\",\"kind\",\"seq\"}\n"
	"  {\"type\":\"typing\",\"room_id\",\"user_id\",\"active\"}\n"
	"  {\"type\":\"presence\",\"user_id\",\"online\",\"last_seen_ms\"}\n"
	"  {\"type\":\"room_event\",\"room_id\",\"kind\",\"user_ids\",\"seq\","
	"...}\n"
	"  {\"type\":\"receipt_summary\",\"room_id\",\"seq\",\"members\","
	"\"delivered\",\"read\"}\n"
	"  {\"type\":\"room_presence\",\"room_id\",\"members\",\"online\","
	"\"online_user_ids\"}\n"
	"Writes \"listening\" to stderr once the session is up. Messages of a\n"
	"room come in seq order, each once; missed ones are fetched with Sync\n"
	"and printed before the live one. A lost connection is resumed on the\n"
	"next gateway and what was missed meanwhile is printed.\n"
	"\n"
	"  --count N       exit 0 after N messages (exit 3 if the timeout comes\n"
	"                  first); other events are printed, not counted\n"
	"  --timeout S     exit after S seconds (default: run until killed)\n"
	"  --welcome       also print the Welcome as {\"type\":\"welcome\",...}\n"
	"                  (not counted)\n"
	"  --no-delivered  do not confirm printed messages; by default each\n"
	"                  room gets Delivered{room, highest seq printed} at\n"
	"                  most every 200 ms, and once more on exit (the\n"
	"                  receipts echoing these back are not printed)\n"
	"  --as, --token, --url, --help: see 'parley --help'\n";

static const struct option listen_options[] = {
	CLI_SESSION_OPTIONS,
	{ "count", required_argument, NULL, LISTEN_OPT_COUNT },
	{ "welcome", no_argument, NULL, LISTEN_OPT_WELCOME },
	{ "no-delivered", no_argument, NULL, LISTEN_OPT_NO_DELIVERED },
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
		} else if (opt == LISTEN_OPT_NO_DELIVERED) {
			l->delivered = false;
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

/* Print one line, unless --count is reached already; true if printed. */
static bool
listen_emit(struct listen *l, const char *line)
{
	if (listen_done(l))
		return false;
	if (fputs(line, stdout) < 0 || putchar('\n') < 0 || fflush(stdout))
		l->io_error = true;
	return !l->io_error;
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
	r->dlv_at = -1;
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

/* Delivered. */

/* Confirm r up to dlv_want now; if the session is gone, try again at the
 * next tick (a resumed session sends it). */
static void
listen_delivered_send(struct listen *l, struct listen_room *r, int64_t now)
{
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__Delivered msg = PARLEY__V1__DELIVERED__INIT;

	msg.room_id = r->room_id;
	msg.seq = r->dlv_want;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_DELIVERED;
	f.delivered = &msg;
	if (!l->c || conn_send(l->c, &f)) {
		r->dlv_at = now + LISTEN_DELIVERED_MS;
		return;
	}
	r->dlv_sent = r->dlv_want;
	r->dlv_last = now;
	r->dlv_at = -1;
}

/* Send what is due; schedule the rest. With all, send everything
 * (on exit). */
static void
listen_delivered_flush(struct listen *l, bool all)
{
	int64_t now = conn_now_ms();

	for (size_t i = 0; i < l->n_rooms; i++) {
		struct listen_room *r = l->rooms[i];

		if (r->dlv_want <= r->dlv_sent)
			continue;
		if (all || now - r->dlv_last >= LISTEN_DELIVERED_MS)
			listen_delivered_send(l, r, now);
		else
			r->dlv_at = r->dlv_last + LISTEN_DELIVERED_MS;
	}
}

/* Message seq of r was printed: it is the room's last, and to confirm. */
static void
listen_printed(struct listen *l, struct listen_room *r, uint64_t seq,
	       bool shown)
{
	r->last = seq;
	if (shown)
		l->printed++;
	if (l->delivered && shown && seq > r->dlv_want)
		r->dlv_want = seq;
}

/* The Receipt that echoes our own Delivered back to us: no news. Our
 * other devices' receipts, and read receipts, are shown. */
static bool
listen_own_echo(const struct listen *l, const Parley__V1__Receipt *rc)
{
	const struct listen_room *r = listen_find(l, rc->room_id);

	return r && l->c &&
	       rc->kind == PARLEY__V1__RECEIPT_KIND__RECEIPT_KIND_DELIVERED &&
	       rc->seq <= r->dlv_sent &&
	       !strcmp(rc->user_id, conn_welcome(l->c)->user_id);
}

static void
listen_print_message(struct listen *l, struct listen_room *r,
		     const Parley__V1__Message *m)
{
	bool shown;

	event_message(&l->j, m);
	shown = listen_emit(l, json_text(&l->j));
	json_clear(&l->j);
	listen_printed(l, r, m->seq, shown);
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
		if (r->held[0].seq == r->last + 1)
			listen_printed(l, r, r->held[0].seq,
				       listen_emit(l, r->held[0].line));
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
		listen_printed(l, r, r->held[0].seq,
			       listen_emit(l, r->held[0].line));
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

/* Ask for the gap again later, or give up after LISTEN_SYNC_TRIES. */
static void
listen_retry_later(struct listen *l, struct listen_room *r)
{
	int64_t wait = LISTEN_SYNC_RETRY_MS;

	if (++r->sync_tries >= LISTEN_SYNC_TRIES) {
		listen_give_up(l, r);
		return;
	}
	for (int i = 1; i < r->sync_tries && wait < LISTEN_SYNC_MAX_MS; i++)
		wait *= 2;
	r->retry_at = conn_now_ms() +
		      (wait < LISTEN_SYNC_MAX_MS ? wait : LISTEN_SYNC_MAX_MS);
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
	listen_retry_later(l, r);
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
		/* The store being unavailable is no reason to lose a gap. */
		if (f->error->retryable)
			listen_retry_later(l, r);
		else
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

static int64_t listen_deadline(const struct listen *l);

/* A room event says which message seq it follows: one we have not seen
 * (missed live, e.g. just before our presence reached the router) is a
 * gap like any other. */
static void
listen_on_room_event(struct listen *l, const Parley__V1__RoomEvent *ev)
{
	struct listen_room *r = listen_find(l, ev->room_id);

	if (r == NULL)
		r = listen_add(l, ev->room_id, 0);
	if (ev->seq > r->last && !r->sync_req && r->retry_at < 0)
		listen_sync(l, r);
}

static int
listen_on_frame(void *arg, const Parley__V1__ServerFrame *f)
{
	struct listen *l = arg;
	int64_t d;

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
	case PARLEY__V1__SERVER_FRAME__MSG_RECEIPT:
		if (!listen_own_echo(l, f->receipt) && event_push(&l->j, f))
			listen_emit_json(l);
		break;
	case PARLEY__V1__SERVER_FRAME__MSG_ROOM_EVENT:
		if (event_push(&l->j, f))
			listen_emit_json(l);
		listen_on_room_event(l, f->room_event);
		break;
	default:
		if (event_push(&l->j, f))
			listen_emit_json(l);
	}
	listen_delivered_flush(l, false);
	if (listen_done(l))
		return LISTEN_STOP;
	d = listen_deadline(l);
	if (d >= 0 && (l->wait_until < 0 || d < l->wait_until))
		return LISTEN_RESCHEDULE;
	return 0;
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
		at = l->rooms[i]->dlv_at;
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
	listen_delivered_flush(l, false);
}

/* Serve one session until --count, --timeout or the session ends. */
static int
listen_pump(struct listen *l)
{
	int rc;

	for (;;) {
		l->wait_until = listen_deadline(l);
		rc = conn_wait(l->c, l->wait_until, listen_on_frame, l);
		if (rc == LISTEN_RESCHEDULE)
			continue; /* wait again, until the new deadline */
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
	/* What was printed last is confirmed before the session closes. */
	if (l->c)
		listen_delivered_flush(l, true);
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
	l.delivered = true;
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
