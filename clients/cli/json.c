/* The CLI's JSON writer: appends members to a growing buffer, escaping
 * strings per RFC 8259 and replacing invalid UTF-8 with U+FFFD. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "xalloc.h"

void
json_init(struct json *j)
{
	j->cap = 128;
	j->buf = xmalloc(j->cap);
	j->buf[0] = '\0';
	j->len = 0;
	j->need_comma = false;
}

void
json_release(struct json *j)
{
	free(j->buf);
	j->buf = NULL;
	j->len = 0;
	j->cap = 0;
}

static void
json_put(struct json *j, const char *s, size_t n)
{
	if (j->len + n + 1 > j->cap) {
		while (j->len + n + 1 > j->cap)
			j->cap *= 2;
		j->buf = xrealloc(j->buf, j->cap);
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

static void
json_puts(struct json *j, const char *s)
{
	json_put(j, s, strlen(s));
}

static bool
json_cont(unsigned char c)
{
	return (c & 0xc0) == 0x80;
}

/* Length of the valid UTF-8 sequence at p (1..4), 0 when invalid. The
 * string is NUL-terminated and a NUL is never a continuation byte, so the
 * checks stop before reading past the end. */
static size_t
json_utf8_len(const unsigned char *p)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return json_cont(p[1]) ? 2 : 0;
	if (c == 0xe0)
		lo = 0xa0; /* no overlong forms */
	if (c == 0xf0)
		lo = 0x90;
	if (c == 0xed)
		hi = 0x9f; /* no UTF-16 surrogates */
	if (c == 0xf4)
		hi = 0x8f; /* nothing above U+10FFFF */
	if (c < 0xe0 || c > 0xf4 || p[1] < lo || p[1] > hi)
		return 0;
	if (!json_cont(p[2]))
		return 0;
	if (c < 0xf0)
		return 3;
	return json_cont(p[3]) ? 4 : 0;
}

static void
json_escape_byte(struct json *j, unsigned char c)
{
	char esc[8];

	switch (c) {
	case '"':
		json_puts(j, "\\\"");
		return;
	case '\\':
		json_puts(j, "\\\\");
		return;
	case '\n':
		json_puts(j, "\\n");
		return;
	case '\r':
		json_puts(j, "\\r");
		return;
	case '\t':
		json_puts(j, "\\t");
		return;
	default:
		snprintf(esc, sizeof(esc), "\\u%04x", c);
		json_puts(j, esc);
	}
}

static bool
json_needs_escape(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\' || c == 0x7f;
}

/* Append s as a quoted JSON string. */
static void
json_quote(struct json *j, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	json_puts(j, "\"");
	while (*p) {
		size_t n = json_utf8_len(p);

		if (n == 0) {
			json_puts(j, "\\ufffd");
			p++;
		} else if (n == 1 && json_needs_escape(*p)) {
			json_escape_byte(j, *p++);
		} else {
			json_put(j, (const char *)p, n);
			p += n;
		}
	}
	json_puts(j, "\"");
}

/* Comma and key before a value. */
static void
json_key(struct json *j, const char *key)
{
	if (j->need_comma)
		json_puts(j, ",");
	if (key) {
		json_quote(j, key);
		json_puts(j, ":");
	}
	j->need_comma = true;
}

void
json_begin(struct json *j, const char *type)
{
	json_obj(j, NULL);
	json_str(j, "type", type);
}

void
json_obj(struct json *j, const char *key)
{
	json_key(j, key);
	json_puts(j, "{");
	j->need_comma = false;
}

void
json_obj_end(struct json *j)
{
	json_puts(j, "}");
	j->need_comma = true;
}

void
json_arr(struct json *j, const char *key)
{
	json_key(j, key);
	json_puts(j, "[");
	j->need_comma = false;
}

void
json_arr_end(struct json *j)
{
	json_puts(j, "]");
	j->need_comma = true;
}

void
json_str(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	json_quote(j, s ? s : "");
}

void
json_u64(struct json *j, const char *key, uint64_t v)
{
	char num[24];

	json_key(j, key);
	snprintf(num, sizeof(num), "%" PRIu64, v);
	json_puts(j, num);
}

void
json_i64(struct json *j, const char *key, int64_t v)
{
	char num[24];

	json_key(j, key);
	snprintf(num, sizeof(num), "%" PRId64, v);
	json_puts(j, num);
}

void
json_bool(struct json *j, const char *key, bool v)
{
	json_key(j, key);
	json_puts(j, v ? "true" : "false");
}

void
json_str_array(struct json *j, const char *key, char *const *v, size_t n)
{
	json_arr(j, key);
	for (size_t i = 0; i < n; i++)
		json_str(j, NULL, v[i]);
	json_arr_end(j);
}

void
json_clear(struct json *j)
{
	j->len = 0;
	j->buf[0] = '\0';
	j->need_comma = false;
}

const char *
json_text(const struct json *j)
{
	return j->buf;
}

int
json_print_line(struct json *j, FILE *f)
{
	int rc = 0;

	json_put(j, "\n", 1);
	if (fwrite(j->buf, 1, j->len, f) != j->len || fflush(f))
		rc = -EIO;
	json_clear(j);
	return rc;
}
