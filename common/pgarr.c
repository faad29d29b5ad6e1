/* PostgreSQL text-format array literals ({"a","b",NULL}) built for the
 * multi-row statements of db.c, with UTF-8 checked on the way in. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"
#include "utf8.h"
#include "xalloc.h"

void
pgarr_init(struct pgarr *a)
{
	memset(a, 0, sizeof(*a));
}

void
pgarr_release(struct pgarr *a)
{
	free(a->buf);
	pgarr_init(a);
}

void
pgarr_release_all(struct pgarr *arrs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pgarr_release(&arrs[i]);
}

static void
pgarr_reserve(struct pgarr *a, size_t more)
{
	size_t need = a->len + more + 2; /* room for "}" and NUL */

	if (need <= a->cap)
		return;
	a->cap = a->cap ? a->cap : 64;
	while (a->cap < need)
		a->cap *= 2;
	a->buf = xrealloc(a->buf, a->cap);
}

static void
pgarr_put(struct pgarr *a, const char *s, size_t n)
{
	pgarr_reserve(a, n);
	memcpy(a->buf + a->len, s, n);
	a->len += n;
}

/* Open the literal or separate the next element. */
static void
pgarr_sep(struct pgarr *a)
{
	pgarr_put(a, a->n ? "," : "{", 1);
	a->n++;
}

/* s with U+FFFD for bytes that start no valid UTF-8 sequence, and with
 * '"' and '\\' escaped for an array literal when escape is set. */
static void
pgarr_put_text(struct pgarr *a, const char *s, bool escape)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t n = utf8_len(p);

		if (n == 0) {
			pgarr_put(a, "\xef\xbf\xbd", 3); /* U+FFFD */
			p++;
			continue;
		}
		if (escape && (*p == '"' || *p == '\\'))
			pgarr_put(a, "\\", 1);
		pgarr_put(a, (const char *)p, n);
		p += n;
	}
}

void
pgarr_add_str(struct pgarr *a, const char *s)
{
	pgarr_sep(a);
	pgarr_put(a, "\"", 1);
	pgarr_put_text(a, s, true);
	pgarr_put(a, "\"", 1);
}

char *
pgarr_text(const char *s)
{
	struct pgarr a;

	pgarr_init(&a);
	pgarr_reserve(&a, 0);
	pgarr_put_text(&a, s, false);
	a.buf[a.len] = '\0';
	return a.buf;
}

void
pgarr_add_i64(struct pgarr *a, int64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%" PRId64, v);

	pgarr_sep(a);
	pgarr_put(a, num, (size_t)n);
}

void
pgarr_add_null(struct pgarr *a)
{
	pgarr_sep(a);
	pgarr_put(a, "NULL", 4);
}

const char *
pgarr_str(struct pgarr *a)
{
	if (a->n == 0) {
		pgarr_reserve(a, 2);
		memcpy(a->buf, "{}", 3);
		return a->buf;
	}
	/* Close in place without counting the brace, so adding goes on. */
	a->buf[a->len] = '}';
	a->buf[a->len + 1] = '\0';
	return a->buf;
}
