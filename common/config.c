/* Configuration from environment variables. The parsers are static and
 * return -errno so tests can reach them; the public getters only add the
 * start-up exit with a message naming the variable. */
#include "config.h"

#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <nng/nng.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Schemes of the transports built into NNG 1.5.2 (zt is not in Debian's). */
static const char *const config_schemes[] = {
	"inproc", "ipc",     "unix",	 "abstract", "tcp", "tcp4",
	"tcp6",	  "ws",	     "ws4",	 "ws6",	     "wss", "wss4",
	"wss6",	  "tls+tcp", "tls+tcp4", "tls+tcp6", NULL,
};

/* Decimal integer, optional leading '-', nothing else: no spaces, no '+',
 * no hex. -EINVAL on garbage, -ERANGE outside [min, max]. */
static int
config_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	const char *digits = s[0] == '-' ? s + 1 : s;
	char *end;
	long long v;

	if (!isdigit((unsigned char)digits[0]))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static int
config_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -EINVAL;
}

static int
config_parse_choice(const char *s, const char *const *choices, int *out)
{
	for (int i = 0; choices[i] != NULL; i++) {
		if (strcasecmp(s, choices[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* True when s is a port number: 1..5 digits, at most 65535 (0 lets a
 * listener pick a free port). */
static bool
config_is_port(const char *s)
{
	int64_t port;

	return strlen(s) <= 5 && config_parse_int(s, 0, 65535, &port) == 0 &&
	       s[0] != '-';
}

/* TCP-like addresses (tcp, tls+tcp) must end in ":port". */
static bool
config_url_has_port(const char *rest)
{
	const char *colon = strrchr(rest, ':');

	if (colon == NULL || (rest[0] == '[' && colon < strchr(rest, ']')))
		return false;
	return config_is_port(colon + 1);
}

static int
config_parse_url(const char *s)
{
	const char *sep = strstr(s, "://");
	size_t len = sep ? (size_t)(sep - s) : 0;
	nng_url *url;
	int i;

	for (i = 0; config_schemes[i] != NULL; i++) {
		if (strlen(config_schemes[i]) == len &&
		    strncmp(s, config_schemes[i], len) == 0)
			break;
	}
	if (config_schemes[i] == NULL || sep[3] == '\0')
		return -EINVAL;
	if (strstr(config_schemes[i], "tcp") && !config_url_has_port(sep + 3))
		return -EINVAL;
	if (nng_url_parse(&url, s) != 0)
		return -EINVAL;
	nng_url_free(url);
	return 0;
}

/* "a, b, c" for the message about a bad choice. */
static void
config_join(char *dst, size_t cap, const char *const *choices)
{
	size_t len = 0;

	dst[0] = '\0';
	for (int i = 0; choices[i] != NULL && len < cap; i++) {
		int n = snprintf(dst + len, cap - len, "%s%s", i ? ", " : "",
				 choices[i]);
		if (n < 0)
			break;
		len += (size_t)n;
	}
}

/* Stop start-up: "config: NAME must be WHAT, got "VALUE"". */
__attribute__((noreturn)) static void
config_invalid(const char *name, const char *what, const char *value)
{
	log_fatal("config.invalid", "config: %s must be %s, got \"%.200s\"",
		  name, what, value);
}

const char *
config_str(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : def;
}

const char *
config_require(const char *name)
{
	const char *v = config_str(name, NULL);

	if (v == NULL)
		log_fatal("config.missing", "config: %s is required but unset",
			  name);
	return v;
}

int64_t
config_int(const char *name, int64_t def, int64_t min, int64_t max)
{
	const char *v = config_str(name, NULL);
	char what[96];
	int64_t out;

	if (v == NULL)
		return def;
	if (config_parse_int(v, min, max, &out) != 0) {
		snprintf(what, sizeof(what), "an integer in [%lld, %lld]",
			 (long long)min, (long long)max);
		config_invalid(name, what, v);
	}
	return out;
}

int
config_bool(const char *name, int def)
{
	const char *v = config_str(name, NULL);
	int out;

	if (v == NULL)
		return def;
	if (config_parse_bool(v, &out) != 0)
		config_invalid(
			name, "a boolean (1/0, true/false, yes/no, on/off)", v);
	return out;
}

const char *
config_url(const char *name, const char *def)
{
	const char *v = config_str(name, NULL);

	if (v == NULL)
		return def;
	if (config_parse_url(v) != 0)
		config_invalid(name, "an NNG URL like tcp://host:port", v);
	return v;
}

int
config_choice(const char *name, int def, const char *const *choices)
{
	const char *v = config_str(name, NULL);
	char what[256];
	int out;

	if (v == NULL)
		return def;
	if (config_parse_choice(v, choices, &out) != 0) {
		strcpy(what, "one of ");
		config_join(what + 7, sizeof(what) - 7, choices);
		config_invalid(name, what, v);
	}
	return out;
}

/* The value itself never reaches a message, only its length. */
const char *
config_secret(const char *name, size_t min_len)
{
	const char *v = config_str(name, NULL);

	if (v == NULL)
		log_fatal("config.missing",
			  "config: %s is required (a secret of >= %zu bytes)",
			  name, min_len);
	if (strlen(v) < min_len)
		log_fatal("config.invalid",
			  "config: %s must be at least %zu bytes long, got %zu",
			  name, min_len, strlen(v));
	return v;
}
