/* `parley rooms`: ListRooms, one JSON line per room of the user with its
 * markers and unread count (G5 is read off these lines). */
#include <stdio.h>

#include "cli.h"
#include "event.h"

static const char rooms_usage[] =
	"Usage: parley rooms (--as USER | --token TOKEN) [--url URL]...\n"
	"                    [--timeout S]\n"
	"\n"
	"Print the user's rooms, one JSON line each:\n"
	"  {\"type\":\"room\",\"room_id\",\"last_seq\",\"read_seq\",\"unread\","
	"\"name\",\"kind\",\"delivered_seq\"}\n"
	"\n"
	"  --timeout S     wait at most S seconds for the answer (default 10)\n"
	"  --as, --token, --url, --help: see 'parley --help'\n";

static const struct option rooms_options[] = {
	CLI_SESSION_OPTIONS,
	{ NULL, 0, NULL, 0 },
};

static int
rooms_parse(struct cli_session *s, int argc, char **argv)
{
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", rooms_options, NULL)) !=
	       -1) {
		rc = cli_session_opt(s, opt, optarg);
		if (rc)
			return rc;
	}
	if (optind != argc)
		return cli_usage(s->cmd, "unexpected argument '%s'",
				 argv[optind]);
	return cli_session_ready(s);
}

static int
rooms_print(const Parley__V1__RoomList *list)
{
	struct json j;
	int rc = 0;

	json_init(&j);
	for (size_t i = 0; i < list->n_rooms && !rc; i++) {
		event_room(&j, list->rooms[i]);
		rc = json_print_line(&j, stdout);
	}
	json_release(&j);
	return rc ? CLI_EXIT_SERVER : CLI_EXIT_OK;
}

static int
rooms_run(struct cli_session *s, struct conn *c, void *unused)
{
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__ListRooms msg = PARLEY__V1__LIST_ROOMS__INIT;
	Parley__V1__ServerFrame *reply;
	int rc;

	(void)unused;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_LIST_ROOMS;
	f.list_rooms = &msg;
	rc = cli_request(s, c, &f, cli_session_deadline(s, CLI_REQUEST_MS),
			 PARLEY__V1__SERVER_FRAME__MSG_ROOM_LIST, &reply);
	if (rc)
		return rc;
	rc = rooms_print(reply->room_list);
	parley__v1__server_frame__free_unpacked(reply, NULL);
	return rc;
}

int
cmd_rooms(int argc, char **argv)
{
	struct cli_session s;
	int rc;

	cli_session_init(&s, "rooms", rooms_usage);
	rc = rooms_parse(&s, argc, argv);
	if (!rc)
		rc = cli_session_run(&s, rooms_run, NULL);
	cli_session_release(&s);
	return rc == CLI_DONE ? CLI_EXIT_OK : rc;
}
