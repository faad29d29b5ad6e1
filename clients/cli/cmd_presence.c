/* `parley presence USER...`: subscribe to the users' presence and print
 * each state the server sends (first the current one, then every change)
 * as a JSON line. A lost session is resumed on the next gateway and the
 * subscription made again, which also reads every state afresh. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "event.h"

/* conn_wait() result when --count is reached or stdout failed. */
#define PRESENCE_STOP 100

enum { PRESENCE_OPT_COUNT = CLI_OPT_LOCAL };

static const char presence_usage[] =
	"Usage: parley presence (--as USER | --token TOKEN) [--url URL]...\n"
	"                       [--count N] [--timeout S] USER...\n"
	"\n"
	"Subscribe to the presence of the USERs (at most 1000) and print each\n"
	"state the server sends, the current one first, then every change:\n"
	"  {\"type\":\"presence\",\"user_id\",\"online\",\"last_seen_ms\"}\n"
	"Changes are coalesced by the server (about one per user per second;\n"
	"a quick reconnect shows nothing). A lost connection is resumed on the\n"
	"next gateway with a fresh subscription.\n"
	"\n"
	"  --count N       exit 0 after N lines (exit 3 if the timeout comes\n"
	"                  first)\n"
	"  --timeout S     exit after S seconds (default: run until killed)\n"
	"  --as, --token, --url, --help: see 'parley --help'\n";

static const struct option presence_options[] = {
	CLI_SESSION_OPTIONS,
	{ "count", required_argument, NULL, PRESENCE_OPT_COUNT },
	{ NULL, 0, NULL, 0 },
};

struct presence_job {
	struct cli_session s;
	struct conn *c;
	char **users;
	size_t n_users;
	uint64_t request_id; /* of the SubscribePresence in force */
	int64_t want;	     /* --count, -1 when not given */
	int64_t printed;
	int64_t end; /* --timeout as a deadline, -1 when not given */
	bool io_error;
	int exit; /* set when the server refused the subscription */
};

static int
presence_parse(struct presence_job *p, int argc, char **argv)
{
	uint64_t n;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", presence_options, NULL)) !=
	       -1) {
		if (opt == PRESENCE_OPT_COUNT) {
			if (cli_parse_u64(optarg, &n) || !n || n > INT64_MAX)
				return cli_usage(p->s.cmd, "bad --count '%s'",
						 optarg);
			p->want = (int64_t)n;
		} else if ((rc = cli_session_opt(&p->s, opt, optarg))) {
			return rc;
		}
	}
	if (optind == argc)
		return cli_usage(p->s.cmd, "give at least one USER");
	p->users = argv + optind;
	p->n_users = (size_t)(argc - optind);
	return cli_session_ready(&p->s);
}

static bool
presence_watched(const struct presence_job *p, const char *user)
{
	for (size_t i = 0; i < p->n_users; i++)
		if (!strcmp(p->users[i], user))
			return true;
	return false;
}

static bool
presence_done(const struct presence_job *p)
{
	return p->io_error || p->exit ||
	       (p->want >= 0 && p->printed >= p->want);
}

static int
presence_on_frame(void *arg, const Parley__V1__ServerFrame *f)
{
	struct presence_job *p = arg;
	struct json j;

	if (f->msg_case == PARLEY__V1__SERVER_FRAME__MSG_ERROR &&
	    f->request_id == p->request_id)
		p->exit = cli_server_error(p->s.cmd, f->error);
	/* Rooms announce their members' presence too: keep to our users. */
	if (f->msg_case == PARLEY__V1__SERVER_FRAME__MSG_PRESENCE &&
	    presence_watched(p, f->presence->user_id) && !presence_done(p)) {
		json_init(&j);
		event_presence(&j, f->presence);
		if (json_print_line(&j, stdout))
			p->io_error = true;
		json_release(&j);
		p->printed++;
	}
	return presence_done(p) ? PRESENCE_STOP : 0;
}

static int
presence_subscribe(struct presence_job *p)
{
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__SubscribePresence msg =
		PARLEY__V1__SUBSCRIBE_PRESENCE__INIT;
	int rc;

	msg.user_ids = p->users;
	msg.n_user_ids = p->n_users;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_SUBSCRIBE_PRESENCE;
	f.subscribe_presence = &msg;
	rc = conn_send(p->c, &f);
	if (!rc)
		p->request_id = f.request_id;
	return rc;
}

/* Reconnect through the next gateways with backoff until --timeout. */
static int
presence_reconnect(struct presence_job *p)
{
	int rc;

	conn_free(p->c);
	p->c = NULL;
	for (int n = 0;; n++) {
		if (!cli_backoff(n, p->end))
			return -ETIMEDOUT;
		rc = cli_session_connect_one(&p->s, p->end, &p->c);
		if (!rc)
			break;
		if (rc == -EACCES || rc == -EINVAL)
			return rc;
	}
	fprintf(stderr, "parley presence: reconnected to %s\n", conn_url(p->c));
	return presence_subscribe(p);
}

static int
presence_exit(struct presence_job *p, int rc)
{
	if (p->io_error)
		return CLI_EXIT_SERVER;
	if (p->exit)
		return p->exit;
	if (rc == PRESENCE_STOP)
		return CLI_EXIT_OK;
	if (rc == -ETIMEDOUT)
		return p->want >= 0 ? CLI_EXIT_TIMEOUT : CLI_EXIT_OK;
	return cli_fail(p->s.cmd, p->c ? conn_url(p->c) : p->s.last_url, rc);
}

static int
presence_run(struct presence_job *p)
{
	int rc = cli_session_connect(&p->s, p->end, &p->c);

	if (rc)
		return rc;
	rc = presence_subscribe(p);
	for (;;) {
		if (!rc)
			rc = conn_wait(p->c, p->end, presence_on_frame, p);
		if (rc != -ECONNRESET && rc != -ENOTCONN)
			break;
		fprintf(stderr, "parley presence: lost %s\n", conn_url(p->c));
		rc = presence_reconnect(p);
	}
	return presence_exit(p, rc);
}

int
cmd_presence(int argc, char **argv)
{
	struct presence_job p;
	int rc;

	memset(&p, 0, sizeof(p));
	cli_session_init(&p.s, "presence", presence_usage);
	p.want = -1;
	rc = presence_parse(&p, argc, argv);
	if (!rc) {
		p.end = p.s.timeout_ms > 0 ? cli_session_deadline(&p.s, 0) : -1;
		rc = presence_run(&p);
	}
	conn_free(p.c);
	cli_session_release(&p.s);
	return rc == CLI_DONE ? CLI_EXIT_OK : rc;
}
