/* parley: the command-line client of the parley chat backend. Picks the
 * command named by the first argument; each command parses the rest. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char main_usage[] =
	"Usage: parley COMMAND [OPTIONS] [ARGS]\n"
	"\n"
	"Commands:\n"
	"  token USER [--ttl S] [--alg A --key FILE]\n"
	"                                 print a token for USER\n"
	"  send --as USER ROOM BODY       send a message, print its ack\n"
	"  listen --as USER               print pushed events, confirm\n"
	"                                 delivery of messages\n"
	"  history --as USER ROOM         print a room's messages\n"
	"  sync --as USER [--all]         launch sync: every room's missed\n"
	"                                 messages, few round trips\n"
	"  rooms --as USER                print the user's rooms\n"
	"  read --as USER ROOM SEQ        move the user's read marker\n"
	"  room create --as USER --name NAME MEMBER...\n"
	"                                 create a group room\n"
	"  room add --as USER ROOM MEMBER...\n"
	"                                 add members to a group room\n"
	"  room remove --as USER ROOM MEMBER\n"
	"                                 remove a member (creator only)\n"
	"  room leave --as USER ROOM      leave a group room\n"
	"  room online --as USER ROOM     count and list online members\n"
	"  typing --as USER ROOM [--stop] say the user types (or stopped)\n"
	"  presence --as USER USER...     print presence states and changes\n"
	"  receipts --as USER ROOM SEQ    how many got and read message SEQ\n"
	"  device add --as USER PLATFORM TOKEN\n"
	"                                 register a push target (fcm, apns,\n"
	"                                 webhook)\n"
	"  device remove --as USER TOKEN  unregister a push target\n"
	"  revoke USER                    (operators, via Kafka) end every\n"
	"                                 token of USER issued until now\n"
	"  admin SUBCOMMAND ...           the server API (PARLEY_API_URL,\n"
	"                                 PARLEY_API_KEY); see admin --help\n"
	"\n"
	"Options of every command but token and revoke:\n"
	"  --as USER       speak as USER with a token signed by\n"
	"                  PARLEY_JWT_SECRET (or PARLEY_JWT_PRIVATE_KEY\n"
	"                  with PARLEY_JWT_ALG=RS256|ES256)\n"
	"  --token TOKEN   speak with this token instead\n"
	"  --url URL       gateway; may repeat, or be a comma-separated list\n"
	"                  (default: PARLEY_URL, else " CLI_DEFAULT_URL ")\n"
	"  --timeout S     give up after S seconds (see each command)\n"
	"  --help          explain the command\n"
	"\n"
	"Output is one JSON object per line on stdout; errors go to stderr.\n"
	"Exit codes: 0 ok, 1 error from the server, 2 usage, 3 timeout or\n"
	"--count not reached, 4 cannot connect or authentication refused.\n"
	"Environment: PARLEY_JWT_SECRET, PARLEY_JWT_ALG,\n"
	"PARLEY_JWT_PRIVATE_KEY, PARLEY_JWT_AUDIENCE, PARLEY_JWT_ISSUER,\n"
	"PARLEY_URL, PARLEY_DEBUG (set: log libwebsockets and connection\n"
	"errors to stderr); revoke: PARLEY_KAFKA_BROKERS, PARLEY_TOPIC.\n";

struct main_cmd {
	const char *name;
	int (*run)(int argc, char **argv);
};

static const struct main_cmd main_cmds[] = {
	{ "token", cmd_token },	      { "send", cmd_send },
	{ "listen", cmd_listen },     { "history", cmd_history },
	{ "sync", cmd_sync },	      { "rooms", cmd_rooms },
	{ "read", cmd_read },	      { "room", cmd_room },
	{ "typing", cmd_typing },     { "presence", cmd_presence },
	{ "receipts", cmd_receipts }, { "device", cmd_device },
	{ "revoke", cmd_revoke },     { "admin", cmd_admin },
};

static bool
main_is_help(const char *arg)
{
	return !strcmp(arg, "--help") || !strcmp(arg, "-h") ||
	       !strcmp(arg, "help");
}

int
main(int argc, char **argv)
{
	static char prog[64];

	if (argc < 2) {
		fputs(main_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (main_is_help(argv[1])) {
		fputs(main_usage, stdout);
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(main_cmds) / sizeof(main_cmds[0]); i++) {
		if (strcmp(argv[1], main_cmds[i].name) != 0)
			continue;
		/* getopt_long names argv[0] in its messages. */
		snprintf(prog, sizeof(prog), "parley %s", argv[1]);
		argv[1] = prog;
		return main_cmds[i].run(argc - 1, argv + 1);
	}
	fprintf(stderr,
		"parley: unknown command '%s'\n"
		"Try 'parley --help'.\n",
		argv[1]);
	return CLI_EXIT_USAGE;
}
