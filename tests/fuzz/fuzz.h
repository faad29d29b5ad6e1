/* Shared by the libFuzzer targets (tests/fuzz/README.md): the entry point's
 * prototype and the input framing several targets use. */
#ifndef PARLEY_FUZZ_H
#define PARLEY_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs that carry several messages frame each as a 2-byte big-endian
 * length and its bytes (the seed generator, tests/fuzz/seeds.py, writes
 * them so). Returns the next message and advances, or NULL at the end; a
 * short last message is returned as far as it goes. */
static inline const uint8_t *
fuzz_next(const uint8_t **p, const uint8_t *end, size_t *len)
{
	const uint8_t *m;
	size_t n;

	if (end - *p < 2)
		return NULL;
	n = (size_t)(*p)[0] << 8 | (*p)[1];
	m = *p + 2;
	if (n > (size_t)(end - m))
		n = (size_t)(end - m);
	*p = m + n;
	*len = n;
	return m;
}

/* A NUL-terminated heap copy (the caller frees it). */
static inline char *
fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
