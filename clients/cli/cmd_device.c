/* `parley device add PLATFORM TOKEN` and `parley device remove TOKEN`:
 * register or unregister a push target of the user (RegisterDevice /
 * UnregisterDevice) and wait for the server's Ok. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "json.h"

static const char device_usage[] =
	"Usage: parley device add (--as USER | --token TOKEN) [--url URL]...\n"
	"                         [--timeout S] PLATFORM DEVICE_TOKEN\n"
	"       parley device remove (--as USER | --token TOKEN) [--url URL]...\n"
	"                            [--timeout S] DEVICE_TOKEN\n"
	"\n"
	"Register a push target of the user (PLATFORM is fcm, apns or webhook;\n"
	"DEVICE_TOKEN is the provider's registration token), or remove one.\n"
	"Waits for the server's Ok and prints\n"
	"  {\"type\":\"device\",\"action\":\"added\"|\"removed\",\"platform\","
	"\"token\"}\n"
	"\n"
	"  --timeout S     wait at most S seconds for the answer (default 10)\n"
	"  --as, --token, --url, --help: see 'parley --help'\n";

static const struct option device_options[] = {
	CLI_SESSION_OPTIONS,
	{ NULL, 0, NULL, 0 },
};

struct device_args {
	bool add;
	const char *platform; /* add only */
	const char *token;
};

static int
device_parse(struct cli_session *s, struct device_args *a, int argc,
	     char **argv)
{
	size_t want = a->add ? 2 : 1;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", device_options, NULL)) !=
	       -1) {
		rc = cli_session_opt(s, opt, optarg);
		if (rc)
			return rc;
	}
	if ((size_t)(argc - optind) != want)
		return cli_usage(s->cmd,
				 a->add ? "give PLATFORM and DEVICE_TOKEN"
					: "give DEVICE_TOKEN");
	if (a->add)
		a->platform = argv[optind++];
	a->token = argv[optind];
	return cli_session_ready(s);
}

static int
device_print(const struct device_args *a)
{
	struct json j;
	int rc;

	json_init(&j);
	json_begin(&j, "device");
	json_str(&j, "action", a->add ? "added" : "removed");
	if (a->add)
		json_str(&j, "platform", a->platform);
	json_str(&j, "token", a->token);
	json_obj_end(&j);
	rc = json_print_line(&j, stdout);
	json_release(&j);
	return rc ? CLI_EXIT_SERVER : CLI_EXIT_OK;
}

static int
device_run(struct cli_session *s, struct conn *c, void *arg)
{
	const struct device_args *a = arg;
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__RegisterDevice reg = PARLEY__V1__REGISTER_DEVICE__INIT;
	Parley__V1__UnregisterDevice unreg =
		PARLEY__V1__UNREGISTER_DEVICE__INIT;
	Parley__V1__ServerFrame *reply;
	int rc;

	if (a->add) {
		reg.platform = (char *)a->platform;
		reg.token = (char *)a->token;
		f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_REGISTER_DEVICE;
		f.register_device = &reg;
	} else {
		unreg.token = (char *)a->token;
		f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_UNREGISTER_DEVICE;
		f.unregister_device = &unreg;
	}
	rc = cli_request(s, c, &f, cli_session_deadline(s, CLI_REQUEST_MS),
			 PARLEY__V1__SERVER_FRAME__MSG_OK, &reply);
	if (rc)
		return rc;
	parley__v1__server_frame__free_unpacked(reply, NULL);
	return device_print(a);
}

int
cmd_device(int argc, char **argv)
{
	/* getopt_long names argv[0] in its messages. */
	static char prog[64];
	struct device_args a = { false, NULL, NULL };
	struct cli_session s;
	int rc;

	if (argc < 2 ||
	    (strcmp(argv[1], "add") != 0 && strcmp(argv[1], "remove") != 0)) {
		bool help = argc >= 2 && (!strcmp(argv[1], "--help") ||
					  !strcmp(argv[1], "-h"));

		fputs(device_usage, help ? stdout : stderr);
		return help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	a.add = !strcmp(argv[1], "add");
	snprintf(prog, sizeof(prog), "parley device %s", argv[1]);
	argv[1] = prog;
	cli_session_init(&s, a.add ? "device add" : "device remove",
			 device_usage);
	rc = device_parse(&s, &a, argc - 1, argv + 1);
	if (!rc)
		rc = cli_session_run(&s, device_run, &a);
	cli_session_release(&s);
	return rc == CLI_DONE ? CLI_EXIT_OK : rc;
}
