/* One request, one answer printed as a JSON line: `parley room add`,
 * `room remove`, `room leave`, `room online` and `receipts`. Each is a
 * table entry: how many arguments, how to build the ClientFrame, which
 * reply to expect and how to print it. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "event.h"

struct ask_job;

struct ask_spec {
	const char *cmd;
	const char *usage;
	size_t min_args, max_args; /* positional arguments */
	Parley__V1__ServerFrame__MsgCase want;
	/* Fill j->f from j->args; 0, or an exit code after saying why. */
	int (*build)(struct ask_job *j);
	void (*print)(struct json *out, const Parley__V1__ServerFrame *r);
};

struct ask_job {
	const struct ask_spec *spec;
	char **args;
	size_t n_args;
	Parley__V1__ClientFrame f;
	union {
		Parley__V1__AddMembers add;
		Parley__V1__RemoveMember remove;
		Parley__V1__LeaveRoom leave;
		Parley__V1__GetRoomPresence online;
		Parley__V1__GetReceipts receipts;
	} u;
};

#define ASK_COMMON_HELP                                                          \
	"  --timeout S     wait at most S seconds for the answer (default 10)\n" \
	"  --as, --token, --url, --help: see 'parley --help'\n"

static const char add_usage[] =
	"Usage: parley room add (--as USER | --token TOKEN) [--url URL]...\n"
	"                       [--timeout S] ROOM USER...\n"
	"\n"
	"Add the USERs to the group ROOM (any member may) and print the\n"
	"server's RoomEvent as one JSON line:\n"
	"  {\"type\":\"room_event\",\"room_id\",\"kind\":\"members_added\","
	"\"user_ids\",\"seq\",...}\n"
	"\n" ASK_COMMON_HELP;

static const char remove_usage[] =
	"Usage: parley room remove (--as USER | --token TOKEN) [--url URL]...\n"
	"                          [--timeout S] ROOM USER\n"
	"\n"
	"Remove USER from the group ROOM (only its creator may) and print the\n"
	"server's RoomEvent as one JSON line:\n"
	"  {\"type\":\"room_event\",\"room_id\",\"kind\":\"member_removed\","
	"\"user_ids\",\"seq\",...}\n"
	"\n" ASK_COMMON_HELP;

static const char leave_usage[] =
	"Usage: parley room leave (--as USER | --token TOKEN) [--url URL]...\n"
	"                         [--timeout S] ROOM\n"
	"\n"
	"Leave the group ROOM and print the server's RoomEvent as one JSON\n"
	"line:\n"
	"  {\"type\":\"room_event\",\"room_id\",\"kind\":\"member_left\","
	"\"user_ids\",\"seq\",...}\n"
	"\n" ASK_COMMON_HELP;

static const char online_usage[] =
	"Usage: parley room online (--as USER | --token TOKEN) [--url URL]...\n"
	"                          [--timeout S] ROOM\n"
	"\n"
	"Ask how many members of ROOM are online and print\n"
	"  {\"type\":\"room_presence\",\"room_id\",\"members\",\"online\","
	"\"online_user_ids\"}\n"
	"(online_user_ids is empty for rooms over the server's size limit).\n"
	"\n" ASK_COMMON_HELP;

static const char receipts_usage[] =
	"Usage: parley receipts (--as USER | --token TOKEN) [--url URL]...\n"
	"                       [--timeout S] ROOM SEQ\n"
	"\n"
	"Ask how many members of ROOM got and read message SEQ and print\n"
	"  {\"type\":\"receipt_summary\",\"room_id\",\"seq\",\"members\","
	"\"delivered\",\"read\"}\n"
	"\n" ASK_COMMON_HELP;

/* Builders. */

static int
ask_build_add(struct ask_job *j)
{
	parley__v1__add_members__init(&j->u.add);
	j->u.add.room_id = j->args[0];
	j->u.add.user_ids = j->args + 1;
	j->u.add.n_user_ids = j->n_args - 1;
	j->f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_ADD_MEMBERS;
	j->f.add_members = &j->u.add;
	return 0;
}

static int
ask_build_remove(struct ask_job *j)
{
	parley__v1__remove_member__init(&j->u.remove);
	j->u.remove.room_id = j->args[0];
	j->u.remove.user_id = j->args[1];
	j->f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_REMOVE_MEMBER;
	j->f.remove_member = &j->u.remove;
	return 0;
}

static int
ask_build_leave(struct ask_job *j)
{
	parley__v1__leave_room__init(&j->u.leave);
	j->u.leave.room_id = j->args[0];
	j->f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_LEAVE_ROOM;
	j->f.leave_room = &j->u.leave;
	return 0;
}

static int
ask_build_online(struct ask_job *j)
{
	parley__v1__get_room_presence__init(&j->u.online);
	j->u.online.room_id = j->args[0];
	j->f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_GET_ROOM_PRESENCE;
	j->f.get_room_presence = &j->u.online;
	return 0;
}

static int
ask_build_receipts(struct ask_job *j)
{
	parley__v1__get_receipts__init(&j->u.receipts);
	j->u.receipts.room_id = j->args[0];
	if (cli_parse_u64(j->args[1], &j->u.receipts.seq))
		return cli_usage(j->spec->cmd, "bad SEQ '%s'", j->args[1]);
	j->f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_GET_RECEIPTS;
	j->f.get_receipts = &j->u.receipts;
	return 0;
}

/* Printers. */

static void
ask_print_room_event(struct json *out, const Parley__V1__ServerFrame *r)
{
	event_room_event(out, r->room_event);
}

static void
ask_print_online(struct json *out, const Parley__V1__ServerFrame *r)
{
	event_room_presence(out, r->room_presence);
}

static void
ask_print_receipts(struct json *out, const Parley__V1__ServerFrame *r)
{
	event_receipt_summary(out, r->receipt_summary);
}

static const struct ask_spec ask_specs[] = {
	{ "room add", add_usage, 2, SIZE_MAX,
	  PARLEY__V1__SERVER_FRAME__MSG_ROOM_EVENT, ask_build_add,
	  ask_print_room_event },
	{ "room remove", remove_usage, 2, 2,
	  PARLEY__V1__SERVER_FRAME__MSG_ROOM_EVENT, ask_build_remove,
	  ask_print_room_event },
	{ "room leave", leave_usage, 1, 1,
	  PARLEY__V1__SERVER_FRAME__MSG_ROOM_EVENT, ask_build_leave,
	  ask_print_room_event },
	{ "room online", online_usage, 1, 1,
	  PARLEY__V1__SERVER_FRAME__MSG_ROOM_PRESENCE, ask_build_online,
	  ask_print_online },
	{ "receipts", receipts_usage, 2, 2,
	  PARLEY__V1__SERVER_FRAME__MSG_RECEIPT_SUMMARY, ask_build_receipts,
	  ask_print_receipts },
};

static const struct option ask_options[] = {
	CLI_SESSION_OPTIONS,
	{ NULL, 0, NULL, 0 },
};

static int
ask_parse(struct cli_session *s, struct ask_job *j, int argc, char **argv)
{
	const struct ask_spec *sp = j->spec;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", ask_options, NULL)) != -1) {
		rc = cli_session_opt(s, opt, optarg);
		if (rc)
			return rc;
	}
	j->args = argv + optind;
	j->n_args = (size_t)(argc - optind);
	if (j->n_args < sp->min_args || j->n_args > sp->max_args)
		return cli_usage(sp->cmd, "wrong number of arguments");
	parley__v1__client_frame__init(&j->f);
	rc = sp->build(j);
	if (rc)
		return rc;
	return cli_session_ready(s);
}

static int
ask_run(struct cli_session *s, struct conn *c, void *arg)
{
	struct ask_job *j = arg;
	Parley__V1__ServerFrame *reply;
	struct json out;
	int rc;

	rc = cli_request(s, c, &j->f, cli_session_deadline(s, CLI_REQUEST_MS),
			 j->spec->want, &reply);
	if (rc)
		return rc;
	json_init(&out);
	j->spec->print(&out, reply);
	rc = json_print_line(&out, stdout) ? CLI_EXIT_SERVER : CLI_EXIT_OK;
	json_release(&out);
	parley__v1__server_frame__free_unpacked(reply, NULL);
	return rc;
}

int
cmd_ask(const char *name, int argc, char **argv)
{
	struct ask_job j;
	struct cli_session s;
	int rc;

	memset(&j, 0, sizeof(j));
	for (size_t i = 0; i < sizeof(ask_specs) / sizeof(ask_specs[0]); i++)
		if (!strcmp(ask_specs[i].cmd, name))
			j.spec = &ask_specs[i];
	if (!j.spec)
		return cli_usage(name, "unknown command");
	cli_session_init(&s, j.spec->cmd, j.spec->usage);
	rc = ask_parse(&s, &j, argc, argv);
	if (!rc)
		rc = cli_session_run(&s, ask_run, &j);
	cli_session_release(&s);
	return rc == CLI_DONE ? CLI_EXIT_OK : rc;
}

int
cmd_receipts(int argc, char **argv)
{
	return cmd_ask("receipts", argc, argv);
}
