/* libFuzzer target: UTF-8 validation (common/utf8.c) against a reference
 * written the other way round: decode each code point, then judge it
 * (RFC 3629: shortest form, no surrogates, at most U+10FFFF). */
#include <assert.h>

#include "fuzz.h"
#include "utf8.h"

/* Length of the valid sequence at s, or 0. */
static size_t
ref_len(const unsigned char *s)
{
	unsigned c = s[0], cp;
	size_t n;

	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0)
		n = 2, cp = c & 0x1f;
	else if ((c & 0xf0) == 0xe0)
		n = 3, cp = c & 0x0f;
	else if ((c & 0xf8) == 0xf0)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
	    (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	const unsigned char *p = (const unsigned char *)s;
	bool want = true;

	while (*p) {
		size_t n = ref_len(p);

		assert(utf8_len(p) == n);
		if (n == 0) {
			want = false;
			break;
		}
		p += n;
	}
	assert(utf8_valid(s) == want);
	free(s);
	return 0;
}
