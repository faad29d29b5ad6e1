/* UTF-8 validation (see utf8.h). */
#include "utf8.h"

/* Length of the UTF-8 sequence at s, or 0 when it is not valid. */
size_t
utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n = c < 0x80   ? 1
		   : c < 0xc2 ? 0
		   : c < 0xe0 ? 2
		   : c < 0xf0 ? 3
		   : c < 0xf5 ? 4
			      : 0;
	unsigned lo = 0x80, hi = 0xbf;

	if (n == 3 && c == 0xe0)
		lo = 0xa0; /* overlong */
	if (n == 3 && c == 0xed)
		hi = 0x9f; /* surrogates */
	if (n == 4 && c == 0xf0)
		lo = 0x90; /* overlong */
	if (n == 4 && c == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	for (size_t i = 1; i < n; i++) {
		if (s[i] < lo || s[i] > hi)
			return 0;
		lo = 0x80;
		hi = 0xbf;
	}
	return n;
}

bool
utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL)
		return true;
	while (*p) {
		size_t n = utf8_len(p);

		if (n == 0)
			return false;
		p += n;
	}
	return true;
}
