/* `parley token USER [--ttl SECONDS]`: print a development HS256 token
 * signed with PARLEY_JWT_SECRET, for scripts and the web demo. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

#define TOKEN_DEFAULT_TTL_S 86400
#define TOKEN_MAX_TTL_S	    (10LL * 366 * 86400)

enum { TOKEN_OPT_TTL = CLI_OPT_LOCAL };

static const char token_usage[] =
	"Usage: parley token USER [--ttl SECONDS]\n"
	"\n"
	"Print a token for USER (HS256 JWT, sub = USER) signed with the\n"
	"secret in PARLEY_JWT_SECRET; pass it with --token or in the web demo.\n"
	"\n"
	"  --ttl SECONDS   lifetime of the token (default 86400)\n"
	"  --help          show this\n";

static const struct option token_options[] = {
	{ "ttl", required_argument, NULL, TOKEN_OPT_TTL },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Parse the options into *ttl; 0, CLI_DONE or an exit code. */
static int
token_parse(int argc, char **argv, int64_t *ttl)
{
	uint64_t v;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", token_options, NULL)) !=
	       -1) {
		if (opt == 'h') {
			fputs(token_usage, stdout);
			return CLI_DONE;
		}
		if (opt != TOKEN_OPT_TTL)
			return cli_usage("token", "bad arguments");
		if (cli_parse_u64(optarg, &v) || !v || v > TOKEN_MAX_TTL_S)
			return cli_usage("token", "bad --ttl '%s'", optarg);
		*ttl = (int64_t)v;
	}
	if (argc - optind != 1)
		return cli_usage("token", "give exactly one USER");
	return 0;
}

int
cmd_token(int argc, char **argv)
{
	int64_t ttl = TOKEN_DEFAULT_TTL_S;
	char *token;
	int rc = token_parse(argc, argv, &ttl);

	if (rc)
		return rc == CLI_DONE ? CLI_EXIT_OK : rc;
	rc = cli_mint_token("token", argv[optind], ttl, &token);
	if (rc)
		return rc;
	printf("%s\n", token);
	free(token);
	return fflush(stdout) ? CLI_EXIT_SERVER : CLI_EXIT_OK;
}
