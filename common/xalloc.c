/* Allocation wrappers that abort on failure, so that no caller needs an
 * out-of-memory path (see xalloc.h). */
#include "xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
xalloc_die(const char *what, size_t n)
{
	fprintf(stderr, "xalloc: out of memory in %s (%zu bytes)\n", what, n);
	abort();
}

void *
xmalloc(size_t n)
{
	/* malloc(0) may return NULL; ask for one byte so NULL means failure. */
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		xalloc_die("xmalloc", n);
	return p;
}

void *
xcalloc(size_t count, size_t n)
{
	void *p;

	if (count == 0 || n == 0)
		count = n = 1;
	p = calloc(count, n);
	if (p == NULL)
		xalloc_die("xcalloc", count * n);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		xalloc_die("xrealloc", n);
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		xalloc_die("xasprintf", 0);
	return s;
}
