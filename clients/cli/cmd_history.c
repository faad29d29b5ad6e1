/* `parley history ROOM`: page through a room's messages with Sync, oldest
 * first, printing each message once as a JSON line. */
#include <stdbool.h>
#include <stdio.h>

#include "cli.h"
#include "event.h"

#define HISTORY_DEFAULT_LIMIT 500
#define HISTORY_MAX_LIMIT     10000

enum { HISTORY_OPT_AFTER = CLI_OPT_LOCAL, HISTORY_OPT_LIMIT };

/* history_page() result when the server has more (not an exit code). */
#define HISTORY_MORE 100

static const char history_usage[] =
	"Usage: parley history (--as USER | --token TOKEN) [--url URL]...\n"
	"                      [--after SEQ] [--limit N] [--timeout S] ROOM\n"
	"\n"
	"Print the messages of ROOM with seq > SEQ, oldest first, one JSON\n"
	"line each:\n"
	"  {\"type\":\"message\",\"room_id\",\"seq\",\"sender_id\","
	"\"client_msg_id\",\"body\",\"ts_ms\"}\n"
	"Asks Sync{ROOM, after_seq, limit} again while the server says\n"
	"has_more.\n"
	"\n"
	"  --after SEQ     start after this seq (default 0: from the start)\n"
	"  --limit N       messages per Sync request (default 500)\n"
	"  --timeout S     wait at most S seconds per request (default 10)\n"
	"  --as, --token, --url, --help: see 'parley --help'\n";

static const struct option history_options[] = {
	CLI_SESSION_OPTIONS,
	{ "after", required_argument, NULL, HISTORY_OPT_AFTER },
	{ "limit", required_argument, NULL, HISTORY_OPT_LIMIT },
	{ NULL, 0, NULL, 0 },
};

struct history_args {
	const char *room;
	uint64_t after;
	uint64_t limit;
};

static int
history_opt(struct cli_session *s, struct history_args *a, int opt)
{
	switch (opt) {
	case HISTORY_OPT_AFTER:
		if (cli_parse_u64(optarg, &a->after))
			return cli_usage(s->cmd, "bad --after '%s'", optarg);
		return 0;
	case HISTORY_OPT_LIMIT:
		if (cli_parse_u64(optarg, &a->limit) || !a->limit ||
		    a->limit > HISTORY_MAX_LIMIT)
			return cli_usage(s->cmd, "bad --limit '%s' (1..%d)",
					 optarg, HISTORY_MAX_LIMIT);
		return 0;
	default:
		return cli_session_opt(s, opt, optarg);
	}
}

static int
history_parse(struct cli_session *s, struct history_args *a, int argc,
	      char **argv)
{
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", history_options, NULL)) !=
	       -1) {
		rc = history_opt(s, a, opt);
		if (rc)
			return rc;
	}
	if (argc - optind != 1)
		return cli_usage(s->cmd, "give one ROOM");
	a->room = argv[optind];
	return cli_session_ready(s);
}

/* Print the messages past a->after, moving it along. -EIO on output
 * failure. */
static int
history_print(struct history_args *a, const Parley__V1__SyncResult *res)
{
	struct json j;
	int rc = 0;

	json_init(&j);
	for (size_t i = 0; i < res->n_messages && !rc; i++) {
		const Parley__V1__Message *m = res->messages[i];

		if (m->seq <= a->after)
			continue; /* each message once, in order */
		event_message(&j, m);
		rc = json_print_line(&j, stdout);
		a->after = m->seq;
	}
	json_release(&j);
	return rc;
}

/* One Sync page: 0 when done, HISTORY_MORE, or an exit code. */
static int
history_page(struct cli_session *s, struct conn *c, struct history_args *a)
{
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__Sync msg = PARLEY__V1__SYNC__INIT;
	Parley__V1__ServerFrame *reply;
	uint64_t before = a->after;
	bool more;
	int rc;

	msg.room_id = (char *)a->room;
	msg.after_seq = a->after;
	msg.limit = (uint32_t)a->limit;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_SYNC;
	f.sync = &msg;
	rc = cli_request(s, c, &f, cli_session_deadline(s, CLI_REQUEST_MS),
			 PARLEY__V1__SERVER_FRAME__MSG_SYNC_RESULT, &reply);
	if (rc)
		return rc;
	rc = history_print(a, reply->sync_result);
	/* Stop when a page brings nothing new, whatever has_more says. */
	more = reply->sync_result->has_more && a->after > before;
	parley__v1__server_frame__free_unpacked(reply, NULL);
	if (rc)
		return CLI_EXIT_SERVER;
	return more ? HISTORY_MORE : 0;
}

static int
history_run(struct cli_session *s, struct conn *c, void *arg)
{
	int rc;

	while ((rc = history_page(s, c, arg)) == HISTORY_MORE)
		;
	return rc;
}

int
cmd_history(int argc, char **argv)
{
	struct history_args a = { NULL, 0, HISTORY_DEFAULT_LIMIT };
	struct cli_session s;
	int rc;

	cli_session_init(&s, "history", history_usage);
	rc = history_parse(&s, &a, argc, argv);
	if (!rc)
		rc = cli_session_run(&s, history_run, &a);
	cli_session_release(&s);
	return rc == CLI_DONE ? CLI_EXIT_OK : rc;
}
