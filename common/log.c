/* JSON-lines logging to stderr: each line is built on the stack and
 * written with one write(2), so threads never interleave and no lock is
 * needed. Messages are escaped and made valid UTF-8. */
#include "log.h"

#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Longest line written, newline included; longer messages are cut. */
#define LOG_LINE_MAX 8192
/* Room kept after the id for the msg key, and after msg for its end. */
#define LOG_ID_RESERVE	64
#define LOG_MSG_RESERVE 8

static const char *const log_level_names[] = { "debug", "info", "warn", "error",
					       NULL };

/* Set by log_init before threads start; only read afterwards. */
static char log_svc[64] = "parley";
static atomic_int log_min_level = LOG_LEVEL_INFO;

struct log_line {
	char buf[LOG_LINE_MAX];
	size_t len;
};

/* Length of the valid UTF-8 sequence at s (1..4), 0 when it is invalid:
 * overlong forms, surrogates and code points above U+10FFFF are refused. */
static size_t
log_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	}
	return len;
}

/* The escaped form of the character at s into tmp; sets *used to the
 * input bytes it stands for and returns its length. */
static size_t
log_escape_one(const unsigned char *s, size_t n, char tmp[8], size_t *used)
{
	size_t len = log_utf8_len(s, n);

	*used = len ? len : 1;
	if (len == 0) {
		return (size_t)snprintf(tmp, 8, "\\ufffd");
	}
	if (s[0] == '"' || s[0] == '\\') {
		tmp[0] = '\\';
		tmp[1] = (char)s[0];
		return 2;
	}
	if (s[0] < 0x20 || s[0] == 0x7f)
		return (size_t)snprintf(tmp, 8, "\\u%04x", s[0]);
	memcpy(tmp, s, len);
	return len;
}

/* Escape s[0..n) for a JSON string into dst (at most cap bytes, never
 * splitting an escape or a character). Returns the bytes written and sets
 * *consumed to the input bytes they cover. */
static size_t
log_escape(char *dst, size_t cap, const char *s, size_t n, size_t *consumed)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t in = 0, out = 0, used, len;
	char tmp[8];

	while (in < n) {
		len = log_escape_one(u + in, n - in, tmp, &used);
		if (out + len > cap)
			break;
		memcpy(dst + out, tmp, len);
		out += len;
		in += used;
	}
	*consumed = in;
	return out;
}

/* Append a literal; callers keep literals within the reserves. */
static void
log_put(struct log_line *l, const char *s)
{
	size_t n = strlen(s);

	if (n > sizeof(l->buf) - l->len)
		n = sizeof(l->buf) - l->len;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

/* Append s escaped, leaving reserve bytes free; a cut ends with "...". */
static void
log_put_escaped(struct log_line *l, const char *s, size_t reserve)
{
	size_t room = sizeof(l->buf) - l->len - reserve - 3;
	size_t n = strlen(s), used;

	l->len += log_escape(l->buf + l->len, room, s, n, &used);
	if (used < n)
		log_put(l, "...");
}

/* UTC time with milliseconds: 2026-11-27T21:30:00.123Z. */
static void
log_timestamp(char *dst, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(dst, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(dst + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void
log_write_all(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void
log_build(struct log_line *l, enum log_level level, const char *id,
	  const char *trace, const char *msg)
{
	char ts[40];

	log_timestamp(ts, sizeof(ts));
	l->len = 0;
	log_put(l, "{\"ts\":\"");
	log_put(l, ts);
	log_put(l, "\",\"level\":\"");
	log_put(l, log_level_names[level]);
	log_put(l, "\",\"svc\":\"");
	log_put_escaped(l, log_svc, LOG_ID_RESERVE);
	log_put(l, "\",\"id\":\"");
	log_put_escaped(l, id, LOG_ID_RESERVE);
	if (trace) {
		log_put(l, "\",\"trace\":\"");
		log_put_escaped(l, trace, LOG_ID_RESERVE);
	}
	log_put(l, "\",\"msg\":\"");
	log_put_escaped(l, msg, LOG_MSG_RESERVE);
	log_put(l, "\"}\n");
}

__attribute__((format(printf, 4, 0))) static void
log_vwrite(enum log_level level, const char *id, const char *trace,
	   const char *fmt, va_list ap)
{
	struct log_line line;
	char msg[LOG_LINE_MAX];

	if ((unsigned)level > LOG_LEVEL_ERROR)
		level = LOG_LEVEL_ERROR;
	msg[0] = '\0';
	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_build(&line, level, id, trace, msg);
	log_write_all(line.buf, line.len);
}

void
log_init(const char *service)
{
	int level;

	snprintf(log_svc, sizeof(log_svc), "%s", service);
	level = config_choice("PARLEY_LOG_LEVEL", LOG_LEVEL_INFO,
			      log_level_names);
	atomic_store(&log_min_level, level);
}

bool
log_enabled(enum log_level level)
{
	return (int)level >=
	       atomic_load_explicit(&log_min_level, memory_order_relaxed);
}

void
log_write(enum log_level level, const char *id, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_vwrite(level, id, NULL, fmt, ap);
	va_end(ap);
}

void
log_write_trace(enum log_level level, const char *id, const char *trace,
		const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_vwrite(level, id, trace, fmt, ap);
	va_end(ap);
}

/* FNV-1a over the three parts, each followed by a NUL so ("ab", "c") and
 * ("a", "bc") differ. */
void
log_trace_id(const char *room, const char *sender, const char *client_msg_id,
	     char out[LOG_TRACE_LEN])
{
	const char *parts[3] = { room, sender, client_msg_id };
	uint64_t h = 14695981039346656037ULL;

	for (int i = 0; i < 3; i++) {
		const unsigned char *p =
			(const unsigned char *)(parts[i] ? parts[i] : "");

		do {
			h ^= *p;
			h *= 1099511628211ULL;
		} while (*p++);
	}
	snprintf(out, LOG_TRACE_LEN, "%016llx", (unsigned long long)h);
}

void
log_fatal(const char *id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, id, NULL, fmt, ap);
	va_end(ap);
	exit(2);
}
