/* `parley revoke USER`: an operator's command. Writes the user's new
 * revocation epoch (now) to the revocations topic in Kafka; every gateway
 * then refuses the user's tokens issued before it and closes the live
 * sessions that use them (close 4006). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "jwt.h"
#include "revoke.h"

#define REVOKE_TIMEOUT_MS 15000

static const char revoke_usage[] =
	"Usage: parley revoke USER [--at UNIX_SECONDS]\n"
	"\n"
	"Revoke every token of USER issued before now (or --at): gateways\n"
	"refuse them and close the sessions using them (close 4006). An\n"
	"operator's command: it writes to Kafka, not to a gateway.\n"
	"\n"
	"  --at UNIX_SECONDS  the epoch (default: now)\n"
	"  --help             show this\n"
	"\n"
	"Environment: PARLEY_KAFKA_BROKERS (default 127.0.0.1:9092),\n"
	"PARLEY_TOPIC (default parley.log; the topic is <it>.revocations),\n"
	"PARLEY_KAFKA_<NAME> librdkafka properties (SSL, SASL).\n";

enum { REVOKE_OPT_AT = CLI_OPT_LOCAL };

static const struct option revoke_options[] = {
	{ "at", required_argument, NULL, REVOKE_OPT_AT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const char *
revoke_env(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v && *v ? v : def;
}

static int
revoke_parse_args(int argc, char **argv, int64_t *epoch)
{
	uint64_t v;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", revoke_options, NULL)) !=
	       -1) {
		if (opt == 'h') {
			fputs(revoke_usage, stdout);
			return CLI_DONE;
		}
		if (opt != REVOKE_OPT_AT || cli_parse_u64(optarg, &v) || !v ||
		    v > 999999999999999ULL)
			return cli_usage("revoke", "bad arguments");
		*epoch = (int64_t)v;
	}
	if (argc - optind != 1)
		return cli_usage("revoke", "give exactly one USER");
	if (!jwt_valid_user(argv[optind]))
		return cli_usage("revoke", "'%s' is not a valid user id",
				 argv[optind]);
	return 0;
}

int
cmd_revoke(int argc, char **argv)
{
	int64_t epoch = (int64_t)time(NULL);
	const char *brokers, *user;
	char *topic;
	int rc = revoke_parse_args(argc, argv, &epoch);

	if (rc)
		return rc == CLI_DONE ? CLI_EXIT_OK : rc;
	user = argv[optind];
	brokers = revoke_env("PARLEY_KAFKA_BROKERS", "127.0.0.1:9092");
	topic = revoke_topic(revoke_env("PARLEY_TOPIC", "parley.log"));
	rc = revoke_publish(brokers, topic, user, epoch, REVOKE_TIMEOUT_MS);
	if (rc) {
		fprintf(stderr, "parley revoke: cannot write to %s at %s: %s\n",
			topic, brokers, strerror(-rc));
		free(topic);
		return CLI_EXIT_CONNECT;
	}
	printf("{\"type\":\"revoked\",\"user_id\":\"%s\",\"epoch\":%lld}\n",
	       user, (long long)epoch);
	free(topic);
	return fflush(stdout) ? CLI_EXIT_SERVER : CLI_EXIT_OK;
}
