/* Shared inside the parley CLI: exit codes, the options every networked
 * command takes (--as, --token, --url, --timeout), tokens, ids, and the
 * entry point of each command. */
#ifndef PARLEY_CLI_H
#define PARLEY_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* Exit codes: part of the CLI's contract with scripts and tests. */
enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_SERVER = 1,  /* the server answered with an Error */
	CLI_EXIT_USAGE = 2,   /* bad arguments or environment */
	CLI_EXIT_TIMEOUT = 3, /* no answer in time, or --count not reached */
	CLI_EXIT_CONNECT = 4, /* cannot connect, or authentication refused */
};

/* Returned by option parsers when --help was printed: exit 0 at once. */
#define CLI_DONE (-1)

#define CLI_DEFAULT_URL "ws://127.0.0.1:8080/"
#define CLI_MAX_URLS	16
/* Lifetime of the token minted for --as. */
#define CLI_AS_TTL_S 3600
/* Longest wait for connect + Welcome on one gateway. */
#define CLI_CONNECT_MS 5000
/* Default --timeout of request/reply commands, per request. */
#define CLI_REQUEST_MS	   10000
#define CLI_BACKOFF_MIN_MS 100
#define CLI_BACKOFF_MAX_MS 2000
/* A client_msg_id or client_room_id: 128 random bits in hex. */
#define CLI_ID_HEX (32 + 1)
/* Largest PEM key file read. */
#define CLI_PEM_MAX (64 * 1024)

/* getopt_long values of the shared options; commands number their own
 * options from CLI_OPT_LOCAL. */
enum cli_opt {
	CLI_OPT_AS = 0x100,
	CLI_OPT_TOKEN,
	CLI_OPT_URL,
	CLI_OPT_TIMEOUT,
	CLI_OPT_LOCAL = 0x200,
};

/* clang-format off */
#define CLI_SESSION_OPTIONS						\
	{ "as", required_argument, NULL, CLI_OPT_AS },			\
	{ "token", required_argument, NULL, CLI_OPT_TOKEN },		\
	{ "url", required_argument, NULL, CLI_OPT_URL },		\
	{ "timeout", required_argument, NULL, CLI_OPT_TIMEOUT },	\
	{ "help", no_argument, NULL, 'h' }
/* clang-format on */

/*
 * Who a command speaks as and where. Embedded: cli_session_init() /
 * cli_session_release(). Fill it with cli_session_opt() for each option,
 * then cli_session_ready(); cli_session_connect() rotates through the
 * gateways, so successive calls try the next one.
 */
struct cli_session {
	const char *cmd;   /* "send", "room create": for messages */
	const char *usage; /* printed by --help */
	const char *as;	   /* --as USER, or NULL */
	char *token;	   /* owned; minted for --as or copied from --token */
	char *urls[CLI_MAX_URLS]; /* owned */
	size_t n_urls;
	size_t next_url;
	const char *last_url; /* the one cli_session_connect*() tried last */
	int64_t timeout_ms;   /* --timeout; -1 when not given */
};

void cli_session_init(struct cli_session *s, const char *cmd,
		      const char *usage);
void cli_session_release(struct cli_session *s);

/* Handle one getopt_long result that is not the command's own. Returns 0,
 * CLI_DONE after --help, or CLI_EXIT_USAGE after saying what is wrong. */
int cli_session_opt(struct cli_session *s, int opt, const char *arg);

/* Check --as/--token, mint the token, take URLs from PARLEY_URL when no
 * --url was given. Returns 0 or CLI_EXIT_USAGE after saying why. */
int cli_session_ready(struct cli_session *s);

/* Open a session on the next gateway in rotation (deadline capped at
 * CLI_CONNECT_MS from now). 0 or -errno as conn_open(). */
int cli_session_connect_one(struct cli_session *s, int64_t deadline_ms,
			    struct conn **out);

/* Try each gateway once, in rotation, until one opens. Returns 0, or an
 * exit code after printing why none did. */
int cli_session_connect(struct cli_session *s, int64_t deadline_ms,
			struct conn **out);

/* Mint a fresh token after the old one expired (close 4002); only for
 * --as. 0 or -EACCES. */
int cli_session_refresh(struct cli_session *s);

/* Connect (within --timeout, default CLI_REQUEST_MS), call run with the
 * session, close it. Returns run's exit code, or the connect failure's. */
int cli_session_run(struct cli_session *s,
		    int (*run)(struct cli_session *s, struct conn *c,
			       void *arg),
		    void *arg);

/* --timeout as an absolute deadline, def_ms when not given. */
int64_t cli_session_deadline(const struct cli_session *s, int64_t def_ms);

/* Send f, wait for its reply until deadline_ms. Returns 0 with *reply
 * (the caller frees it) when the reply is of kind want; otherwise prints
 * why and returns the exit code (an Error reply gives 1 or 4). */
int cli_request(struct cli_session *s, struct conn *c,
		Parley__V1__ClientFrame *f, int64_t deadline_ms,
		Parley__V1__ServerFrame__MsgCase want,
		Parley__V1__ServerFrame **reply);

/* Print a server Error for cmd; returns its exit code (4 for
 * UNAUTHENTICATED, else 1). */
int cli_server_error(const char *cmd, const Parley__V1__Error *e);

/* Print why a session failed (-errno from conn_*); returns the exit code. */
int cli_fail(const char *cmd, const char *url, int err);

/* Print "parley CMD: <message>" and a --help hint; returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* What cli_mint puts in a token. NULL strings and zero numbers take the
 * defaults: alg PARLEY_JWT_ALG (HS256), key PARLEY_JWT_PRIVATE_KEY (RS256,
 * ES256) or PARLEY_JWT_SECRET (HS256), aud PARLEY_JWT_AUDIENCE, iss
 * PARLEY_JWT_ISSUER, no nbf. */
struct cli_mint_opts {
	const char *user;
	int64_t ttl_s;
	int64_t offset_s; /* mint as if the clock read now + offset_s */
	int64_t nbf_s;	  /* nbf = iat + nbf_s when non-zero */
	const char *alg;
	const char *key; /* PEM file or PEM text */
	const char *aud;
	const char *iss;
};

/* Mint a token as o says. Returns 0 and sets *out (caller frees), or 2
 * after saying why. */
int cli_mint(const char *cmd, const struct cli_mint_opts *o, char **out);

/* Mint a token for user valid ttl_s seconds with the defaults above.
 * Returns 0 and sets *out (caller frees), or 2 after saying why. */
int cli_mint_token(const char *cmd, const char *user, int64_t ttl_s,
		   char **out);

/* Parse seconds ("30", "0.5") into milliseconds > 0. 0 or -EINVAL. */
int cli_parse_seconds(const char *arg, int64_t *ms);
/* Parse a decimal unsigned integer. 0 or -EINVAL. */
int cli_parse_u64(const char *arg, uint64_t *v);

/* 128 random bits as 32 lowercase hex digits plus NUL. */
void cli_random_id(char out[CLI_ID_HEX]);
uint64_t cli_random_u64(void);
/* Sleep ms milliseconds (nothing when ms <= 0). */
void cli_sleep_ms(int64_t ms);
/* Sleep before retry n+1 (n from 0): 100 ms doubling to 2 s, jittered down
 * to half so that many clients do not retry in step, never past end_ms
 * (-1: no end). False when end_ms has come. */
bool cli_backoff(int n, int64_t end_ms);

/* The commands; argv[0] is the command's name. Each returns an exit code. */
int cmd_token(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_listen(int argc, char **argv);
int cmd_history(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_rooms(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_room(int argc, char **argv);
int cmd_receipts(int argc, char **argv);
int cmd_typing(int argc, char **argv);
int cmd_presence(int argc, char **argv);
int cmd_device(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
/* `parley admin`: the server API (cmd_admin.c). */
int cmd_admin(int argc, char **argv);
/* A one-request command of cmd_ask.c by name: "room add", "room remove",
 * "room leave", "room online", "receipts". */
int cmd_ask(const char *name, int argc, char **argv);

#endif
