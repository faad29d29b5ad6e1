/* `parley typing ROOM [--stop]`: tell the room's online members that the
 * user types (or stopped). The server answers only a refusal, so the
 * command waits a moment for an Error and otherwise succeeds. */
#include <errno.h>
#include <stdio.h>

#include "cli.h"

/* How long to wait for a refusal once the frame is queued. */
#define TYPING_FLUSH_MS 300
/* conn_wait() result for an answer that is not an Error. */
#define TYPING_ANSWERED 100

enum { TYPING_OPT_STOP = CLI_OPT_LOCAL };

static const char typing_usage[] =
	"Usage: parley typing (--as USER | --token TOKEN) [--url URL]...\n"
	"                     [--timeout S] ROOM [--stop]\n"
	"\n"
	"Send Typing{ROOM, active} (active unless --stop). Members online get\n"
	"{\"type\":\"typing\",...}; typing stops by itself after a few seconds\n"
	"without a refresh. Prints nothing; exits 0 unless the server refuses\n"
	"(exit 1, e.g. not a member) within a short wait.\n"
	"\n"
	"  --stop          say the user stopped typing\n"
	"  --timeout S     connect within S seconds (default 10)\n"
	"  --as, --token, --url, --help: see 'parley --help'\n";

static const struct option typing_options[] = {
	CLI_SESSION_OPTIONS,
	{ "stop", no_argument, NULL, TYPING_OPT_STOP },
	{ NULL, 0, NULL, 0 },
};

struct typing_args {
	const char *room;
	bool stop;
	uint64_t request_id; /* of the Typing sent */
};

static int
typing_parse(struct cli_session *s, struct typing_args *a, int argc,
	     char **argv)
{
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", typing_options, NULL)) !=
	       -1) {
		if (opt == TYPING_OPT_STOP) {
			a->stop = true;
			continue;
		}
		rc = cli_session_opt(s, opt, optarg);
		if (rc)
			return rc;
	}
	if (argc - optind != 1)
		return cli_usage(s->cmd, "give ROOM");
	a->room = argv[optind];
	return cli_session_ready(s);
}

/* conn_wait callback: stop at the answer to our Typing (an Error, or an
 * Ok should a server send one). */
static int
typing_on_frame(void *arg, const Parley__V1__ServerFrame *f)
{
	const struct typing_args *a = arg;

	if (f->request_id != a->request_id)
		return 0;
	if (f->msg_case == PARLEY__V1__SERVER_FRAME__MSG_ERROR)
		return cli_server_error("typing", f->error);
	return TYPING_ANSWERED;
}

static int
typing_run(struct cli_session *s, struct conn *c, void *arg)
{
	struct typing_args *a = arg;
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__Typing msg = PARLEY__V1__TYPING__INIT;
	int rc;

	msg.room_id = (char *)a->room;
	msg.active = !a->stop;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_TYPING;
	f.typing = &msg;
	rc = conn_send(c, &f);
	if (rc)
		return cli_fail(s->cmd, conn_url(c), rc);
	a->request_id = f.request_id;
	rc = conn_wait(c, conn_now_ms() + TYPING_FLUSH_MS, typing_on_frame, a);
	if (rc == -ETIMEDOUT || rc == TYPING_ANSWERED)
		return CLI_EXIT_OK;
	if (rc < 0)
		return cli_fail(s->cmd, conn_url(c), rc);
	return rc;
}

int
cmd_typing(int argc, char **argv)
{
	struct cli_session s;
	struct typing_args a = { NULL, false, 0 };
	int rc;

	cli_session_init(&s, "typing", typing_usage);
	rc = typing_parse(&s, &a, argc, argv);
	if (!rc)
		rc = cli_session_run(&s, typing_run, &a);
	cli_session_release(&s);
	return rc == CLI_DONE ? CLI_EXIT_OK : rc;
}
