/* Unit tests for config.c: the parsers directly, then the exiting getters
 * in forked children whose exit status and stderr are checked. */
#include "config.c" // NOLINT(bugprone-suspicious-include)

#include "test.h"

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static void
test_parse_int(void)
{
	int64_t v = 7;

	CHECK_EQ_INT(config_parse_int("8080", 1, 65535, &v), 0);
	CHECK_EQ_INT(v, 8080);
	CHECK_EQ_INT(config_parse_int("-3", -5, 5, &v), 0);
	CHECK_EQ_INT(v, -3);
	CHECK_EQ_INT(config_parse_int("-9223372036854775808", INT64_MIN,
				      INT64_MAX, &v),
		     0);
	CHECK(v == INT64_MIN);
	v = 7;
	CHECK_EQ_INT(config_parse_int("abc", 1, 65535, &v), -EINVAL);
	CHECK_EQ_INT(config_parse_int("", 1, 65535, &v), -EINVAL);
	CHECK_EQ_INT(config_parse_int(" 80", 1, 65535, &v), -EINVAL);
	CHECK_EQ_INT(config_parse_int("80 ", 1, 65535, &v), -EINVAL);
	CHECK_EQ_INT(config_parse_int("+80", 1, 65535, &v), -EINVAL);
	CHECK_EQ_INT(config_parse_int("0x50", 1, 65535, &v), -EINVAL);
	CHECK_EQ_INT(config_parse_int("8o", 1, 65535, &v), -EINVAL);
	CHECK_EQ_INT(config_parse_int("-", 1, 65535, &v), -EINVAL);
	CHECK_EQ_INT(config_parse_int("65536", 1, 65535, &v), -ERANGE);
	CHECK_EQ_INT(config_parse_int("0", 1, 65535, &v), -ERANGE);
	CHECK_EQ_INT(config_parse_int("99999999999999999999", INT64_MIN,
				      INT64_MAX, &v),
		     -ERANGE);
	CHECK_EQ_INT(v, 7);
}

static void
test_parse_bool(void)
{
	static const char *const yes[] = { "1", "true", "TRUE", "yes", "On" };
	static const char *const no[] = { "0", "false", "No", "off", "OFF" };
	static const char *const bad[] = { "", "2", "y", "truee", " on" };
	int v;

	for (size_t i = 0; i < 5; i++) {
		v = -1;
		CHECK_EQ_INT(config_parse_bool(yes[i], &v), 0);
		CHECK_EQ_INT(v, 1);
		v = -1;
		CHECK_EQ_INT(config_parse_bool(no[i], &v), 0);
		CHECK_EQ_INT(v, 0);
		v = -1;
		CHECK_EQ_INT(config_parse_bool(bad[i], &v), -EINVAL);
		CHECK_EQ_INT(v, -1);
	}
}

static void
test_parse_url(void)
{
	static const char *const good[] = {
		"tcp://127.0.0.1:7000", "tcp://*:7000",	     "tcp://[::1]:7000",
		"tcp4://host:0",	"ipc:///tmp/parley", "inproc://router",
		"ws://host/path",	"tls+tcp://h:443",   "abstract://x",
	};
	static const char *const bad[] = {
		"",
		"127.0.0.1:7000",
		"http://host:80",
		"tcp://",
		"tcp://host",
		"tcp://host:port",
		"tcp://h:70000",
		"tcp://[::1]",
		"inproc://",
		"tcp:/h:1",
		"TCP://h:1",
		"tcp://h:-1",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (config_parse_url(good[i]) != 0)
			fprintf(stderr, "rejected %s\n", good[i]);
		CHECK_EQ_INT(config_parse_url(good[i]), 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_url(bad[i]) != -EINVAL)
			fprintf(stderr, "accepted %s\n", bad[i]);
		CHECK_EQ_INT(config_parse_url(bad[i]), -EINVAL);
	}
}

static void
test_parse_choice(void)
{
	static const char *const levels[] = { "debug", "info", "warn", NULL };
	char list[64];
	int v = -1;

	CHECK_EQ_INT(config_parse_choice("warn", levels, &v), 0);
	CHECK_EQ_INT(v, 2);
	CHECK_EQ_INT(config_parse_choice("DEBUG", levels, &v), 0);
	CHECK_EQ_INT(v, 0);
	v = -1;
	CHECK_EQ_INT(config_parse_choice("verbose", levels, &v), -EINVAL);
	CHECK_EQ_INT(config_parse_choice("", levels, &v), -EINVAL);
	CHECK_EQ_INT(v, -1);
	config_join(list, sizeof(list), levels);
	CHECK_EQ_STR(list, "debug, info, warn");
	config_join(list, 8, levels);
	CHECK(strlen(list) < 8);
}

static void
test_unset_and_empty(void)
{
	static const char *const levels[] = { "a", "b", NULL };

	unsetenv("PARLEY_TEST_X");
	CHECK(config_str("PARLEY_TEST_X", NULL) == NULL);
	CHECK_EQ_STR(config_str("PARLEY_TEST_X", "dflt"), "dflt");
	CHECK_EQ_INT(config_int("PARLEY_TEST_X", 42, 1, 100), 42);
	CHECK_EQ_INT(config_bool("PARLEY_TEST_X", 1), 1);
	CHECK_EQ_STR(config_url("PARLEY_TEST_X", "inproc://d"), "inproc://d");
	CHECK_EQ_INT(config_choice("PARLEY_TEST_X", 1, levels), 1);
	setenv("PARLEY_TEST_X", "", 1);
	CHECK_EQ_STR(config_str("PARLEY_TEST_X", "dflt"), "dflt");
	CHECK_EQ_INT(config_int("PARLEY_TEST_X", 42, 1, 100), 42);
	unsetenv("PARLEY_TEST_X");
}

static void
test_set_values(void)
{
	static const char *const levels[] = { "a", "b", NULL };

	setenv("PARLEY_TEST_X", "17", 1);
	CHECK_EQ_STR(config_str("PARLEY_TEST_X", "dflt"), "17");
	CHECK_EQ_STR(config_require("PARLEY_TEST_X"), "17");
	CHECK_EQ_INT(config_int("PARLEY_TEST_X", 42, 1, 100), 17);
	setenv("PARLEY_TEST_X", "off", 1);
	CHECK_EQ_INT(config_bool("PARLEY_TEST_X", 1), 0);
	setenv("PARLEY_TEST_X", "B", 1);
	CHECK_EQ_INT(config_choice("PARLEY_TEST_X", 0, levels), 1);
	setenv("PARLEY_TEST_X", "tcp://127.0.0.1:7001", 1);
	CHECK_EQ_STR(config_url("PARLEY_TEST_X", NULL), "tcp://127.0.0.1:7001");
	setenv("PARLEY_TEST_X", "0123456789abcdef", 1);
	CHECK_EQ_STR(config_secret("PARLEY_TEST_X", 16), "0123456789abcdef");
	unsetenv("PARLEY_TEST_X");
}

/* Run fn in a child with stderr captured into out; returns the child's
 * exit status, or -1 when it did not exit normally. */
static int
run_child(void (*fn)(void), char *out, size_t cap)
{
	int fds[2], status;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	fflush(NULL); /* exit() in the child would flush copies again */
	if (pipe(fds) != 0 || (pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		fn();
		_exit(0);
	}
	close(fds[1]);
	while (len + 1 < cap &&
	       (n = read(fds[0], out + len, cap - len - 1)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static void
bad_port(void)
{
	setenv("PARLEY_GATEWAY_PORT", "abc", 1);
	config_int("PARLEY_GATEWAY_PORT", 8080, 1, 65535);
}

static void
missing_required(void)
{
	unsetenv("PARLEY_TEST_REQ");
	config_require("PARLEY_TEST_REQ");
}

static void
bad_bool(void)
{
	setenv("PARLEY_TEST_BOOL", "maybe", 1);
	config_bool("PARLEY_TEST_BOOL", 0);
}

static void
bad_url(void)
{
	setenv("PARLEY_ROUTER_URL", "http://x:1", 1);
	config_url("PARLEY_ROUTER_URL", NULL);
}

static void
bad_choice(void)
{
	static const char *const levels[] = { "debug", "info", NULL };

	setenv("PARLEY_TEST_LEVEL", "loud", 1);
	config_choice("PARLEY_TEST_LEVEL", 0, levels);
}

static void
short_secret(void)
{
	setenv("PARLEY_JWT_SECRET", "hunter2", 1);
	config_secret("PARLEY_JWT_SECRET", 32);
}

static void
missing_secret(void)
{
	unsetenv("PARLEY_JWT_SECRET");
	config_secret("PARLEY_JWT_SECRET", 32);
}

static void
good_value(void)
{
	setenv("PARLEY_GATEWAY_PORT", "443", 1);
	if (config_int("PARLEY_GATEWAY_PORT", 8080, 1, 65535) != 443)
		_exit(5);
}

/* Exit 2 and a message naming the variable and what it must be (quotes
 * appear JSON-escaped in the log line). */
static void
test_exits(void)
{
	char out[2048];

	CHECK_EQ_INT(run_child(bad_port, out, sizeof(out)), 2);
	CHECK(strstr(out, "config: PARLEY_GATEWAY_PORT must be an integer in "
			  "[1, 65535], got \\\"abc\\\"") != NULL);
	CHECK(strstr(out, "\"level\":\"error\"") != NULL);
	CHECK_EQ_INT(run_child(missing_required, out, sizeof(out)), 2);
	CHECK(strstr(out, "PARLEY_TEST_REQ is required") != NULL);
	CHECK_EQ_INT(run_child(bad_bool, out, sizeof(out)), 2);
	CHECK(strstr(out, "PARLEY_TEST_BOOL must be a boolean") != NULL);
	CHECK_EQ_INT(run_child(bad_url, out, sizeof(out)), 2);
	CHECK(strstr(out, "PARLEY_ROUTER_URL must be an NNG URL like "
			  "tcp://host:port, got \\\"http://x:1\\\"") != NULL);
	CHECK_EQ_INT(run_child(bad_choice, out, sizeof(out)), 2);
	CHECK(strstr(out, "PARLEY_TEST_LEVEL must be one of debug, info, got "
			  "\\\"loud\\\"") != NULL);
	CHECK_EQ_INT(run_child(good_value, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "");
}

/* A short secret is reported by length; its value never appears. */
static void
test_secret_exits(void)
{
	char out[2048];

	CHECK_EQ_INT(run_child(short_secret, out, sizeof(out)), 2);
	CHECK(strstr(out, "PARLEY_JWT_SECRET must be at least 32 bytes long, "
			  "got 7") != NULL);
	CHECK(strstr(out, "hunter2") == NULL);
	CHECK_EQ_INT(run_child(missing_secret, out, sizeof(out)), 2);
	CHECK(strstr(out, "PARLEY_JWT_SECRET is required") != NULL);
}

TEST_MAIN(TEST(test_parse_int), TEST(test_parse_bool), TEST(test_parse_url),
	  TEST(test_parse_choice), TEST(test_unset_and_empty),
	  TEST(test_set_values), TEST(test_exits), TEST(test_secret_exits))
