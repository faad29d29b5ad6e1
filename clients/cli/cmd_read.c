/* `parley read ROOM SEQ`: move the user's read marker up to and including
 * SEQ and wait until the server confirms it. */
#include <stdio.h>

#include "cli.h"
#include "json.h"

static const char read_usage[] =
	"Usage: parley read (--as USER | --token TOKEN) [--url URL]...\n"
	"                   [--timeout S] ROOM SEQ\n"
	"\n"
	"Mark ROOM read up to and including SEQ (markers only move forward),\n"
	"wait for the server's Ok and print\n"
	"  {\"type\":\"read\",\"room_id\",\"seq\"}\n"
	"\n"
	"  --timeout S     wait at most S seconds for the answer (default 10)\n"
	"  --as, --token, --url, --help: see 'parley --help'\n";

static const struct option read_options[] = {
	CLI_SESSION_OPTIONS,
	{ NULL, 0, NULL, 0 },
};

struct read_args {
	const char *room;
	uint64_t seq;
};

static int
read_parse(struct cli_session *s, struct read_args *a, int argc, char **argv)
{
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", read_options, NULL)) != -1) {
		rc = cli_session_opt(s, opt, optarg);
		if (rc)
			return rc;
	}
	if (argc - optind != 2)
		return cli_usage(s->cmd, "give ROOM and SEQ");
	a->room = argv[optind];
	if (cli_parse_u64(argv[optind + 1], &a->seq))
		return cli_usage(s->cmd, "bad SEQ '%s'", argv[optind + 1]);
	return cli_session_ready(s);
}

static int
read_print(const struct read_args *a)
{
	struct json j;
	int rc;

	json_init(&j);
	json_begin(&j, "read");
	json_str(&j, "room_id", a->room);
	json_u64(&j, "seq", a->seq);
	json_obj_end(&j);
	rc = json_print_line(&j, stdout);
	json_release(&j);
	return rc ? CLI_EXIT_SERVER : CLI_EXIT_OK;
}

static int
read_run(struct cli_session *s, struct conn *c, void *arg)
{
	const struct read_args *a = arg;
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__Read msg = PARLEY__V1__READ__INIT;
	Parley__V1__ServerFrame *reply;
	int rc;

	msg.room_id = (char *)a->room;
	msg.seq = a->seq;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_READ;
	f.read = &msg;
	rc = cli_request(s, c, &f, cli_session_deadline(s, CLI_REQUEST_MS),
			 PARLEY__V1__SERVER_FRAME__MSG_OK, &reply);
	if (rc)
		return rc;
	parley__v1__server_frame__free_unpacked(reply, NULL);
	return read_print(a);
}

int
cmd_read(int argc, char **argv)
{
	struct cli_session s;
	struct read_args a = { NULL, 0 };
	int rc;

	cli_session_init(&s, "read", read_usage);
	rc = read_parse(&s, &a, argc, argv);
	if (!rc)
		rc = cli_session_run(&s, read_run, &a);
	cli_session_release(&s);
	return rc == CLI_DONE ? CLI_EXIT_OK : rc;
}
