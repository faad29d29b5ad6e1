/* `parley room SUBCOMMAND`: `create` (here) makes a group room with
 * CreateRoom and prints the new room from the RoomEvent that answers it;
 * `add`, `remove`, `leave` and `online` are one-request commands
 * (cmd_ask.c). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "json.h"

enum { ROOM_OPT_NAME = CLI_OPT_LOCAL };

static const char room_usage[] =
	"Usage: parley room create (--as USER | --token TOKEN) [--url URL]...\n"
	"                          [--timeout S] --name NAME MEMBER...\n"
	"\n"
	"Create a group room named NAME with the caller and the MEMBERs, and\n"
	"print it as one JSON line:\n"
	"  {\"type\":\"room\",\"room_id\",\"name\",\"members\":[...],\"seq\"}\n"
	"\n"
	"  --name NAME     the room's name (required)\n"
	"  --timeout S     wait at most S seconds for the answer (default 10)\n"
	"  --as, --token, --url, --help: see 'parley --help'\n";

static const struct option room_options[] = {
	CLI_SESSION_OPTIONS,
	{ "name", required_argument, NULL, ROOM_OPT_NAME },
	{ NULL, 0, NULL, 0 },
};

struct room_args {
	const char *name;
	char **members;
	size_t n_members;
};

static int
room_parse(struct cli_session *s, struct room_args *a, int argc, char **argv)
{
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", room_options, NULL)) != -1) {
		if (opt == ROOM_OPT_NAME) {
			a->name = optarg;
			continue;
		}
		rc = cli_session_opt(s, opt, optarg);
		if (rc)
			return rc;
	}
	if (!a->name || !*a->name)
		return cli_usage(s->cmd, "give --name NAME");
	a->members = argv + optind;
	a->n_members = (size_t)(argc - optind);
	return cli_session_ready(s);
}

static int
room_print(const struct room_args *a, const Parley__V1__RoomEvent *e)
{
	struct json j;
	int rc;

	json_init(&j);
	json_begin(&j, "room");
	json_str(&j, "room_id", e->room_id);
	json_str(&j, "name", *e->name ? e->name : a->name);
	json_str_array(&j, "members", e->user_ids, e->n_user_ids);
	json_u64(&j, "seq", e->seq);
	json_obj_end(&j);
	rc = json_print_line(&j, stdout);
	json_release(&j);
	return rc ? CLI_EXIT_SERVER : CLI_EXIT_OK;
}

static int
room_create(struct cli_session *s, struct conn *c, void *arg)
{
	const struct room_args *a = arg;
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__CreateRoom msg = PARLEY__V1__CREATE_ROOM__INIT;
	Parley__V1__ServerFrame *reply;
	char client_room_id[CLI_ID_HEX];
	int rc;

	cli_random_id(client_room_id);
	msg.name = (char *)a->name;
	msg.member_ids = a->members;
	msg.n_member_ids = a->n_members;
	msg.client_room_id = client_room_id;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_CREATE_ROOM;
	f.create_room = &msg;
	rc = cli_request(s, c, &f, cli_session_deadline(s, CLI_REQUEST_MS),
			 PARLEY__V1__SERVER_FRAME__MSG_ROOM_EVENT, &reply);
	if (rc)
		return rc;
	rc = room_print(a, reply->room_event);
	parley__v1__server_frame__free_unpacked(reply, NULL);
	return rc;
}

static int
room_run_create(int argc, char **argv)
{
	struct room_args a = { NULL, NULL, 0 };
	struct cli_session s;
	int rc;

	cli_session_init(&s, "room create", room_usage);
	rc = room_parse(&s, &a, argc, argv);
	if (!rc)
		rc = cli_session_run(&s, room_create, &a);
	cli_session_release(&s);
	return rc == CLI_DONE ? CLI_EXIT_OK : rc;
}

static const char room_list_usage[] =
	"Usage: parley room SUBCOMMAND [OPTIONS] [ARGS]\n"
	"\n"
	"  create --name NAME MEMBER...   create a group room\n"
	"  add ROOM USER...               add members\n"
	"  remove ROOM USER               remove a member (creator only)\n"
	"  leave ROOM                     leave the room\n"
	"  online ROOM                    count (and list) online members\n"
	"\n"
	"Each takes --as USER or --token TOKEN; 'parley room SUBCOMMAND\n"
	"--help' explains one.\n";

int
cmd_room(int argc, char **argv)
{
	static const char *const asks[] = { "add", "remove", "leave",
					    "online" };
	/* getopt_long names argv[0] in its messages. */
	static char prog[64], name[32];

	if (argc >= 2 && !strcmp(argv[1], "create")) {
		snprintf(prog, sizeof(prog), "parley room create");
		argv[1] = prog;
		return room_run_create(argc - 1, argv + 1);
	}
	for (size_t i = 0; argc >= 2 && i < sizeof(asks) / sizeof(asks[0]);
	     i++) {
		if (strcmp(argv[1], asks[i]) != 0)
			continue;
		snprintf(name, sizeof(name), "room %s", asks[i]);
		snprintf(prog, sizeof(prog), "parley %s", name);
		argv[1] = prog;
		return cmd_ask(name, argc - 1, argv + 1);
	}
	if (argc >= 2 &&
	    (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(room_list_usage, stdout);
		return CLI_EXIT_OK;
	}
	fputs(room_list_usage, stderr);
	return CLI_EXIT_USAGE;
}
