/* Allocation that never returns NULL: running out of memory aborts the
 * process with a message, so callers need no failure paths for it. */
#ifndef PARLEY_XALLOC_H
#define PARLEY_XALLOC_H

#include <stddef.h>

/* Like malloc/calloc/realloc/strdup/strndup, but abort on failure. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Format into a new heap string the caller frees. Aborts on failure. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
