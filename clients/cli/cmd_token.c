/* `parley token USER [...]`: print a token for USER (HS256 with
 * PARLEY_JWT_SECRET, or RS256 / ES256 with a private key), for scripts,
 * tests and the web demo. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

#define TOKEN_DEFAULT_TTL_S 86400
#define TOKEN_MAX_TTL_S	    (10LL * 366 * 86400)
#define TOKEN_MAX_OFFSET_S  (10LL * 366 * 86400)

enum {
	TOKEN_OPT_TTL = CLI_OPT_LOCAL,
	TOKEN_OPT_ALG,
	TOKEN_OPT_KEY,
	TOKEN_OPT_AUD,
	TOKEN_OPT_ISS,
	TOKEN_OPT_OFFSET,
	TOKEN_OPT_NBF,
};

static const char token_usage[] =
	"Usage: parley token USER [--ttl SECONDS] [--alg ALG] [--key FILE]\n"
	"                    [--aud AUDIENCE] [--iss ISSUER] [--offset SECONDS]\n"
	"                    [--nbf SECONDS]\n"
	"\n"
	"Print a token for USER (a JWT, sub = USER); pass it with --token or\n"
	"in the web demo. HS256 tokens are signed with PARLEY_JWT_SECRET,\n"
	"RS256 and ES256 ones with a private key (PEM).\n"
	"\n"
	"  --ttl SECONDS     lifetime of the token (default 86400)\n"
	"  --alg ALG         HS256, RS256 or ES256 (default PARLEY_JWT_ALG,\n"
	"                    else HS256)\n"
	"  --key FILE        private key for RS256/ES256 (default\n"
	"                    PARLEY_JWT_PRIVATE_KEY)\n"
	"  --aud AUDIENCE    \"aud\" claim (default PARLEY_JWT_AUDIENCE)\n"
	"  --iss ISSUER      \"iss\" claim (default PARLEY_JWT_ISSUER)\n"
	"  --offset SECONDS  mint as if the clock read now + SECONDS (may be\n"
	"                    negative: --offset -7200 --ttl 3600 is expired)\n"
	"  --nbf SECONDS     \"nbf\" claim SECONDS after \"iat\"\n"
	"  --help            show this\n";

static const struct option token_options[] = {
	{ "ttl", required_argument, NULL, TOKEN_OPT_TTL },
	{ "alg", required_argument, NULL, TOKEN_OPT_ALG },
	{ "key", required_argument, NULL, TOKEN_OPT_KEY },
	{ "aud", required_argument, NULL, TOKEN_OPT_AUD },
	{ "iss", required_argument, NULL, TOKEN_OPT_ISS },
	{ "offset", required_argument, NULL, TOKEN_OPT_OFFSET },
	{ "nbf", required_argument, NULL, TOKEN_OPT_NBF },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* A signed number of seconds within TOKEN_MAX_OFFSET_S. 0 or -1. */
static int
token_signed(const char *arg, int64_t *out)
{
	uint64_t v;
	bool neg = arg[0] == '-';

	if (cli_parse_u64(arg + neg, &v) || v > TOKEN_MAX_OFFSET_S)
		return -1;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

static int
token_opt(struct cli_mint_opts *o, int opt, const char *arg)
{
	uint64_t v;

	switch (opt) {
	case TOKEN_OPT_TTL:
		if (cli_parse_u64(arg, &v) || !v || v > TOKEN_MAX_TTL_S)
			return cli_usage("token", "bad --ttl '%s'", arg);
		o->ttl_s = (int64_t)v;
		return 0;
	case TOKEN_OPT_ALG:
		o->alg = arg;
		return 0;
	case TOKEN_OPT_KEY:
		o->key = arg;
		return 0;
	case TOKEN_OPT_AUD:
		o->aud = arg;
		return 0;
	case TOKEN_OPT_ISS:
		o->iss = arg;
		return 0;
	case TOKEN_OPT_OFFSET:
		return token_signed(arg, &o->offset_s)
			       ? cli_usage("token", "bad --offset '%s'", arg)
			       : 0;
	case TOKEN_OPT_NBF:
		return token_signed(arg, &o->nbf_s)
			       ? cli_usage("token", "bad --nbf '%s'", arg)
			       : 0;
	default:
		return cli_usage("token", "bad arguments");
	}
}

/* Parse the options into *o; 0, CLI_DONE or an exit code. */
static int
token_parse(int argc, char **argv, struct cli_mint_opts *o)
{
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", token_options, NULL)) !=
	       -1) {
		if (opt == 'h') {
			fputs(token_usage, stdout);
			return CLI_DONE;
		}
		if ((rc = token_opt(o, opt, optarg)) != 0)
			return rc;
	}
	if (argc - optind != 1)
		return cli_usage("token", "give exactly one USER");
	o->user = argv[optind];
	return 0;
}

int
cmd_token(int argc, char **argv)
{
	struct cli_mint_opts o = { 0 };
	char *token;
	int rc;

	o.ttl_s = TOKEN_DEFAULT_TTL_S;
	rc = token_parse(argc, argv, &o);
	if (rc)
		return rc == CLI_DONE ? CLI_EXIT_OK : rc;
	rc = cli_mint("token", &o, &token);
	if (rc)
		return rc;
	printf("%s\n", token);
	free(token);
	return fflush(stdout) ? CLI_EXIT_SERVER : CLI_EXIT_OK;
}
