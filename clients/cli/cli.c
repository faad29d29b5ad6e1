/* Helpers every CLI command shares: the session options, minting tokens,
 * gateway rotation, request/reply with error reporting, ids and clocks. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cli.h"
#include "jwt.h"
#include "xalloc.h"

void
cli_session_init(struct cli_session *s, const char *cmd, const char *usage)
{
	memset(s, 0, sizeof(*s));
	s->cmd = cmd;
	s->usage = usage;
	s->timeout_ms = -1;
}

void
cli_session_release(struct cli_session *s)
{
	free(s->token);
	for (size_t i = 0; i < s->n_urls; i++)
		free(s->urls[i]);
	memset(s, 0, sizeof(*s));
}

/* Add the comma-separated URLs of list, trimming blanks. */
static int
cli_session_add_urls(struct cli_session *s, const char *list)
{
	const char *p = list;

	while (*p) {
		size_t n = strcspn(p, ",");
		const char *b = p, *e = p + n;

		while (b < e && isspace((unsigned char)*b))
			b++;
		while (e > b && isspace((unsigned char)e[-1]))
			e--;
		if (e > b && s->n_urls == CLI_MAX_URLS)
			return cli_usage(s->cmd, "more than %d gateway URLs",
					 CLI_MAX_URLS);
		if (e > b)
			s->urls[s->n_urls++] = xstrndup(b, (size_t)(e - b));
		p += n + (p[n] == ',');
	}
	return 0;
}

int
cli_session_opt(struct cli_session *s, int opt, const char *arg)
{
	switch (opt) {
	case 'h':
		fputs(s->usage, stdout);
		return CLI_DONE;
	case CLI_OPT_AS:
		s->as = arg;
		return 0;
	case CLI_OPT_TOKEN:
		free(s->token);
		s->token = xstrdup(arg);
		return 0;
	case CLI_OPT_URL:
		return cli_session_add_urls(s, arg);
	case CLI_OPT_TIMEOUT:
		if (cli_parse_seconds(arg, &s->timeout_ms))
			return cli_usage(s->cmd, "bad --timeout '%s'", arg);
		return 0;
	default: /* getopt_long printed what it did not like */
		return cli_usage(s->cmd, "bad arguments");
	}
}

int
cli_session_ready(struct cli_session *s)
{
	const char *env = getenv("PARLEY_URL");
	int rc;

	if (!s->as == !s->token)
		return cli_usage(s->cmd,
				 "give one of --as USER or --token TOKEN");
	if (s->as) {
		rc = cli_mint_token(s->cmd, s->as, CLI_AS_TTL_S, &s->token);
		if (rc)
			return rc;
	}
	if (!s->n_urls) {
		rc = cli_session_add_urls(s,
					  env && *env ? env : CLI_DEFAULT_URL);
		if (rc)
			return rc;
	}
	if (!s->n_urls)
		return cli_usage(s->cmd, "PARLEY_URL holds no URL");
	return 0;
}

int
cli_session_connect_one(struct cli_session *s, int64_t deadline_ms,
			struct conn **out)
{
	const char *url = s->urls[s->next_url];
	int64_t cap = conn_now_ms() + CLI_CONNECT_MS;

	s->last_url = url;
	s->next_url = (s->next_url + 1) % s->n_urls;
	if (deadline_ms < 0 || deadline_ms > cap)
		deadline_ms = cap;
	return conn_open(url, s->token, deadline_ms, out);
}

int
cli_session_connect(struct cli_session *s, int64_t deadline_ms,
		    struct conn **out)
{
	int rc = -ECONNREFUSED;

	for (size_t i = 0; i < s->n_urls; i++) {
		rc = cli_session_connect_one(s, deadline_ms, out);
		if (!rc || rc == -EACCES || rc == -EINVAL)
			break;
	}
	if (!rc)
		return 0;
	if (rc == -ETIMEDOUT)
		rc = -ECONNREFUSED; /* no Welcome in time: could not connect */
	return cli_fail(s->cmd, s->last_url, rc);
}

int
cli_session_run(struct cli_session *s,
		int (*run)(struct cli_session *s, struct conn *c, void *arg),
		void *arg)
{
	struct conn *c;
	int rc = cli_session_connect(s, cli_session_deadline(s, CLI_REQUEST_MS),
				     &c);

	if (rc)
		return rc;
	rc = run(s, c, arg);
	conn_free(c);
	return rc;
}

int
cli_session_refresh(struct cli_session *s)
{
	char *token = NULL;

	if (!s->as || cli_mint_token(s->cmd, s->as, CLI_AS_TTL_S, &token))
		return -EACCES;
	free(s->token);
	s->token = token;
	return 0;
}

int64_t
cli_session_deadline(const struct cli_session *s, int64_t def_ms)
{
	return conn_now_ms() + (s->timeout_ms > 0 ? s->timeout_ms : def_ms);
}

int
cli_request(struct cli_session *s, struct conn *c, Parley__V1__ClientFrame *f,
	    int64_t deadline_ms, Parley__V1__ServerFrame__MsgCase want,
	    Parley__V1__ServerFrame **reply)
{
	Parley__V1__ServerFrame *r;
	int rc = conn_request(c, f, deadline_ms, &r);

	if (rc)
		return cli_fail(s->cmd, conn_url(c), rc);
	if (r->msg_case == want) {
		*reply = r;
		return 0;
	}
	if (r->msg_case == PARLEY__V1__SERVER_FRAME__MSG_ERROR) {
		rc = cli_server_error(s->cmd, r->error);
	} else {
		fprintf(stderr,
			"parley %s: unexpected reply (frame field %d)\n",
			s->cmd, (int)r->msg_case);
		rc = CLI_EXIT_SERVER;
	}
	parley__v1__server_frame__free_unpacked(r, NULL);
	return rc;
}

/* "FORBIDDEN" for ERROR_CODE_FORBIDDEN; the number when unknown. */
static const char *
cli_error_name(int code, char *buf, size_t size)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
		&parley__v1__error_code__descriptor, code);

	if (v && !strncmp(v->name, "ERROR_CODE_", 11))
		return v->name + 11;
	snprintf(buf, size, "%d", code);
	return buf;
}

int
cli_server_error(const char *cmd, const Parley__V1__Error *e)
{
	char num[16];

	fprintf(stderr, "parley %s: server error %s%s: %s\n", cmd,
		cli_error_name(e->code, num, sizeof(num)),
		e->retryable ? " (retryable)" : "", e->message);
	if (e->code == PARLEY__V1__ERROR_CODE__ERROR_CODE_UNAUTHENTICATED)
		return CLI_EXIT_CONNECT;
	return CLI_EXIT_SERVER;
}

int
cli_fail(const char *cmd, const char *url, int err)
{
	switch (err) {
	case -EINVAL:
		fprintf(stderr,
			"parley %s: bad URL '%s' (want ws://HOST:PORT/)\n", cmd,
			url);
		return CLI_EXIT_USAGE;
	case -EACCES:
		fprintf(stderr, "parley %s: %s refused the token\n", cmd, url);
		return CLI_EXIT_CONNECT;
	case -ECONNREFUSED:
		fprintf(stderr, "parley %s: cannot connect to %s\n", cmd, url);
		return CLI_EXIT_CONNECT;
	case -ECONNRESET:
	case -ENOTCONN:
		fprintf(stderr, "parley %s: connection to %s lost\n", cmd, url);
		return CLI_EXIT_CONNECT;
	case -EPROTO:
		fprintf(stderr,
			"parley %s: %s could not read our frame "
			"(close 4004)\n",
			cmd, url);
		return CLI_EXIT_SERVER;
	case -EMSGSIZE:
		fprintf(stderr,
			"parley %s: %s says the frame is too big "
			"(close 1009)\n",
			cmd, url);
		return CLI_EXIT_SERVER;
	case -ETIMEDOUT:
		fprintf(stderr, "parley %s: timed out waiting for %s\n", cmd,
			url);
		return CLI_EXIT_TIMEOUT;
	default:
		fprintf(stderr, "parley %s: %s\n", cmd, strerror(-err));
		return CLI_EXIT_SERVER;
	}
}

int
cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "parley %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'parley %s --help'.\n", cmd);
	return CLI_EXIT_USAGE;
}

/* PARLEY_JWT_ALG's value (NULL: HS256) as an algorithm, -1 after saying
 * it is not one we sign with. */
static int
jwt_algorithm(const char *cmd, const char *name)
{
	int alg = jwt_alg_parse(name ? name : "HS256");

	if (alg < 0)
		fprintf(stderr,
			"parley %s: unknown algorithm '%s' "
			"(HS256, RS256 or ES256)\n",
			cmd, name);
	return alg;
}

/* PEM text: v itself when it holds a PEM block, else the file it names. */
static char *
cli_read_pem(const char *cmd, const char *v)
{
	char *buf;
	size_t n;
	FILE *f;

	if (strncmp(v, "-----BEGIN", 10) == 0)
		return xstrdup(v);
	if ((f = fopen(v, "r")) == NULL) {
		fprintf(stderr, "parley %s: cannot open %s: %s\n", cmd, v,
			strerror(errno));
		return NULL;
	}
	buf = xmalloc(CLI_PEM_MAX + 1);
	n = fread(buf, 1, CLI_PEM_MAX, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* An environment variable, NULL when unset or empty. */
static const char *
cli_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* The signing key: PARLEY_JWT_SECRET for HS256, else the private key in
 * PARLEY_JWT_PRIVATE_KEY (a PEM file, or PEM text). NULL after saying why. */
static struct jwt_key *
cli_signing_key(const char *cmd, const char *alg_name, const char *key_arg)
{
	int alg = jwt_algorithm(cmd, alg_name);
	const char *v = key_arg ? key_arg : cli_env("PARLEY_JWT_PRIVATE_KEY");
	struct jwt_key *k;
	char err[128], *pem;

	if (alg < 0)
		return NULL;
	if (alg == JWT_HS256) {
		v = cli_env("PARLEY_JWT_SECRET");
		if (v == NULL)
			fprintf(stderr,
				"parley %s: PARLEY_JWT_SECRET is not set; "
				"it signs the token\n",
				cmd);
		return v ? jwt_key_new_hmac(v) : NULL;
	}
	if (v == NULL) {
		fprintf(stderr,
			"parley %s: %s needs a private key: --key FILE or "
			"PARLEY_JWT_PRIVATE_KEY\n",
			cmd, alg_name);
		return NULL;
	}
	if ((pem = cli_read_pem(cmd, v)) == NULL)
		return NULL;
	k = jwt_key_new_pem((enum jwt_alg)alg, pem, err, sizeof(err));
	free(pem);
	if (k == NULL)
		fprintf(stderr, "parley %s: private key: %s\n", cmd, err);
	return k;
}

int
cli_mint(const char *cmd, const struct cli_mint_opts *o, char **out)
{
	int64_t now = (int64_t)time(NULL) + o->offset_s;
	struct jwt_mint m = { o->user, now, now + o->ttl_s, 0, NULL, NULL };
	struct jwt_key *k;

	if (!jwt_valid_user(o->user))
		return cli_usage(cmd, "'%s' is not a valid user id", o->user);
	m.aud = o->aud ? o->aud : cli_env("PARLEY_JWT_AUDIENCE");
	m.iss = o->iss ? o->iss : cli_env("PARLEY_JWT_ISSUER");
	m.nbf = o->nbf_s ? now + o->nbf_s : 0;
	k = cli_signing_key(cmd, o->alg ? o->alg : cli_env("PARLEY_JWT_ALG"),
			    o->key);
	if (k == NULL)
		return CLI_EXIT_USAGE;
	*out = jwt_mint(k, &m);
	jwt_key_free(k);
	if (!*out)
		return cli_usage(cmd, "cannot make a token for '%s'", o->user);
	return 0;
}

int
cli_mint_token(const char *cmd, const char *user, int64_t ttl_s, char **out)
{
	struct cli_mint_opts o = { 0 };

	o.user = user;
	o.ttl_s = ttl_s;
	return cli_mint(cmd, &o, out);
}

int
cli_parse_seconds(const char *arg, int64_t *ms)
{
	char *end;
	double s;

	errno = 0;
	s = strtod(arg, &end);
	if (errno || end == arg || *end || !(s > 0) || s > 1e9)
		return -EINVAL;
	*ms = (int64_t)(s * 1000 + 0.5);
	if (*ms == 0)
		*ms = 1;
	return 0;
}

int
cli_parse_u64(const char *arg, uint64_t *v)
{
	char *end;
	unsigned long long n;

	if (!isdigit((unsigned char)arg[0]))
		return -EINVAL;
	errno = 0;
	n = strtoull(arg, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*v = n;
	return 0;
}

/* Fill buf from the kernel's CSPRNG; aborts if it cannot (never on Linux
 * once the pool is initialised). */
static void
cli_random(void *buf, size_t n)
{
	if (getrandom(buf, n, 0) != (ssize_t)n) {
		perror("parley: getrandom");
		abort();
	}
}

void
cli_random_id(char out[CLI_ID_HEX])
{
	unsigned char b[16];

	cli_random(b, sizeof(b));
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

uint64_t
cli_random_u64(void)
{
	uint64_t v;

	cli_random(&v, sizeof(v));
	return v;
}

void
cli_sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

bool
cli_backoff(int n, int64_t end_ms)
{
	int64_t ms = CLI_BACKOFF_MIN_MS, left;

	while (n-- > 0 && ms < CLI_BACKOFF_MAX_MS)
		ms *= 2;
	if (ms > CLI_BACKOFF_MAX_MS)
		ms = CLI_BACKOFF_MAX_MS;
	ms = ms / 2 + (int64_t)(cli_random_u64() % (uint64_t)(ms / 2 + 1));
	if (end_ms >= 0) {
		left = end_ms - conn_now_ms();
		if (left <= 0)
			return false;
		if (ms > left)
			ms = left;
	}
	cli_sleep_ms(ms);
	return end_ms < 0 || conn_now_ms() < end_ms;
}
