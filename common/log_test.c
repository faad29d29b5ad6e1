/* Unit tests for log.c: escaping and UTF-8 repair, the line format, level
 * filtering, cutting of long messages, and whole lines from many threads. */
#include "log.c" // NOLINT(bugprone-suspicious-include)

#include "test.h"

#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/wait.h>

static char *
escape(const char *s, size_t n, size_t cap, size_t *consumed)
{
	static char out[256];
	size_t len = log_escape(out, cap, s, n, consumed);

	out[len] = '\0';
	return out;
}

static const char *
esc(const char *s)
{
	size_t used;

	return escape(s, strlen(s), 255, &used);
}

static void
test_escape_specials(void)
{
	CHECK_EQ_STR(esc("plain text"), "plain text");
	CHECK_EQ_STR(esc("a\"b\\c/d"), "a\\\"b\\\\c/d");
	CHECK_EQ_STR(esc("\n\t\r\x01\x1f\x7f"),
		     "\\u000a\\u0009\\u000d\\u0001\\u001f\\u007f");
}

static void
test_escape_utf8(void)
{
	/* Valid two, three and four byte characters pass through. */
	CHECK_EQ_STR(esc("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
		     "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	/* Stray, overlong, surrogate, too large, cut short: each bad byte
	 * becomes U+FFFD. */
	CHECK_EQ_STR(esc("a\xff"
			 "b"),
		     "a\\ufffdb");
	CHECK_EQ_STR(esc("\xc0\xaf"), "\\ufffd\\ufffd");
	CHECK_EQ_STR(esc("\xe0\x80\xaf"), "\\ufffd\\ufffd\\ufffd");
	CHECK_EQ_STR(esc("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");
	CHECK_EQ_STR(esc("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");
	CHECK_EQ_STR(esc("\xe2\x82"), "\\ufffd\\ufffd");
	CHECK_EQ_STR(esc("\x80x"), "\\ufffdx");
}

/* Output is cut before an escape or character that would not fit. */
static void
test_escape_budget(void)
{
	size_t used;

	CHECK_EQ_STR(escape("\"\"\"", 3, 5, &used), "\\\"\\\"");
	CHECK_EQ_INT(used, 2);
	CHECK_EQ_STR(escape("ab\xe2\x82\xac", 5, 4, &used), "ab");
	CHECK_EQ_INT(used, 2);
	CHECK_EQ_STR(escape("a\n", 2, 6, &used), "a");
	CHECK_EQ_INT(used, 1);
	CHECK_EQ_STR(escape("abc", 3, 3, &used), "abc");
	CHECK_EQ_INT(used, 3);
}

/* Call fn with stderr sent to a file; returns what was written. */
static char *
capture(void (*fn)(void))
{
	char path[] = "/tmp/parley-log-test-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	static char out[4 << 20];
	ssize_t n;

	unlink(path);
	fcntl(fd, F_SETFL, O_APPEND);
	dup2(fd, STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, out, sizeof(out) - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	return out;
}

static void
write_hello(void)
{
	unsetenv("PARLEY_LOG_LEVEL");
	log_init("router");
	LOG_INFO("router.start", "hello \"%s\" %d", "x\ny", 42);
}

/* True when ts looks like 2026-11-27T21:30:00.123Z. */
static bool
is_timestamp(const char *ts)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == 'd' ? !isdigit((unsigned char)ts[i])
				    : ts[i] != shape[i])
			return false;
	}
	return true;
}

static void
test_line_format(void)
{
	const char *out = capture(write_hello);
	const char *rest = "\",\"level\":\"info\",\"svc\":\"router\",\"id\":"
			   "\"router.start\",\"msg\":\"hello \\\"x\\u000ay\\\" "
			   "42\"}\n";

	CHECK(strncmp(out, "{\"ts\":\"", 7) == 0);
	CHECK(is_timestamp(out + 7));
	CHECK_EQ_STR(out + 7 + 24, rest);
}

static void
write_trace(void)
{
	char t[LOG_TRACE_LEN];

	log_trace_id("dm:a:b", "a", "m1", t);
	log_write_trace(LOG_LEVEL_INFO, "store.row", t, "seq %d", 7);
}

/* The trace field follows id; the id depends on every part and on where
 * one part ends. */
static void
test_trace(void)
{
	char a[LOG_TRACE_LEN], b[LOG_TRACE_LEN], c[LOG_TRACE_LEN];
	const char *out = capture(write_trace);

	log_trace_id("dm:a:b", "a", "m1", a);
	log_trace_id("dm:a:b", "a", "m2", b);
	log_trace_id("dm:a:b", "am", "1", c);
	CHECK(strlen(a) == 16);
	CHECK(strcmp(a, b) != 0 && strcmp(a, c) != 0);
	CHECK(strstr(out, "\"id\":\"store.row\",\"trace\":\"") != NULL);
	CHECK(strstr(out, a) != NULL);
	CHECK(strstr(out, "\"msg\":\"seq 7\"}") != NULL);
}

static void
write_levels(void)
{
	setenv("PARLEY_LOG_LEVEL", "WARN", 1);
	log_init("svc");
	LOG_DEBUG("t.debug", "no");
	LOG_INFO("t.info", "no");
	LOG_WARN("t.warn", "yes");
	LOG_ERROR("t.error", "yes");
	unsetenv("PARLEY_LOG_LEVEL");
}

static void
test_levels(void)
{
	const char *out = capture(write_levels);

	CHECK(strstr(out, "t.debug") == NULL);
	CHECK(strstr(out, "t.info") == NULL);
	CHECK(strstr(out,
		     "\"level\":\"warn\",\"svc\":\"svc\",\"id\":\"t.warn\"") !=
	      NULL);
	CHECK(strstr(out, "\"level\":\"error\",\"svc\":\"svc\",\"id\":\"t."
			  "error\"") != NULL);
	CHECK(!log_enabled(LOG_LEVEL_INFO));
	CHECK(log_enabled(LOG_LEVEL_WARN));
	setenv("PARLEY_LOG_LEVEL", "debug", 1);
	log_init("svc");
	CHECK(log_enabled(LOG_LEVEL_DEBUG));
	unsetenv("PARLEY_LOG_LEVEL");
	log_init("svc");
	CHECK(!log_enabled(LOG_LEVEL_DEBUG));
	CHECK(log_enabled(LOG_LEVEL_INFO));
}

static void
test_bad_level_exits(void)
{
	int fds[2], status = 0;
	char out[1024] = "";
	ssize_t n;
	pid_t pid;

	fflush(NULL);
	CHECK(pipe(fds) == 0);
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDERR_FILENO);
		setenv("PARLEY_LOG_LEVEL", "verbose", 1);
		log_init("router");
		_exit(0);
	}
	close(fds[1]);
	n = read(fds[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	CHECK(strstr(out, "PARLEY_LOG_LEVEL must be one of debug, info, warn, "
			  "error, got \\\"verbose\\\"") != NULL);
	CHECK(strstr(out, "\"svc\":\"router\"") != NULL);
}

static char long_msg[3 * LOG_LINE_MAX];

static void
write_long(void)
{
	memset(long_msg, 'q', sizeof(long_msg) - 1);
	long_msg[100] = '"'; /* escapes count against the limit too */
	LOG_INFO("t.long", "%s", long_msg);
	LOG_INFO("t.after", "short");
}

static void
test_long_message_cut(void)
{
	const char *out = capture(write_long);
	const char *nl = strchr(out, '\n');

	CHECK(nl != NULL);
	if (nl == NULL)
		return;
	CHECK((size_t)(nl - out + 1) <= LOG_LINE_MAX);
	CHECK((size_t)(nl - out + 1) > LOG_LINE_MAX - 64);
	CHECK(strncmp(nl - 5, "...\"}", 5) == 0);
	CHECK(strstr(out, "qq\\\"qq") != NULL);
	CHECK(strstr(nl + 1, "\"id\":\"t.after\",\"msg\":\"short\"}\n") !=
	      NULL);
}

#define THREADS 8
#define LINES	300

static const char thread_letters[THREADS] = "abcdefgh";

static void *
thread_main(void *arg)
{
	char filler[400];

	memset(filler, *(const char *)arg, sizeof(filler) - 1);
	filler[sizeof(filler) - 1] = '\0';
	for (int i = 0; i < LINES; i++)
		LOG_INFO("t.thread", "%d %s", i, filler);
	return NULL;
}

static void
write_threads(void)
{
	pthread_t t[THREADS];

	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, thread_main,
			       (void *)&thread_letters[i]);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
}

/* Each line whole: it starts like a log line and its filler is one
 * thread's letter throughout. */
static bool
line_whole(const char *line, size_t len)
{
	const char *msg = strstr(line, "\"msg\":\"");
	const char *f = msg ? strchr(msg + 7, ' ') : NULL;

	if (strncmp(line, "{\"ts\":\"", 7) != 0 || f == NULL ||
	    (size_t)(f - line) > len || len != (size_t)(f - line) + 1 + 399 + 2)
		return false;
	for (size_t i = 1; i < 400; i++) {
		if (f[i] != f[1])
			return false;
	}
	return strncmp(f + 400, "\"}", 2) == 0;
}

static void
test_threads_whole_lines(void)
{
	const char *out = capture(write_threads);
	int lines = 0, whole = 0;

	for (const char *p = out, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
		lines++;
		whole += line_whole(p, (size_t)(nl - p));
	}
	CHECK_EQ_INT(lines, THREADS * LINES);
	CHECK_EQ_INT(whole, THREADS * LINES);
}

TEST_MAIN(TEST(test_escape_specials), TEST(test_escape_utf8),
	  TEST(test_escape_budget), TEST(test_line_format), TEST(test_levels),
	  TEST(test_bad_level_exits), TEST(test_long_message_cut),
	  TEST(test_threads_whole_lines), TEST(test_trace))
