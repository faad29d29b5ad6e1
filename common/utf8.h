/* UTF-8 validation (RFC 3629): no overlong forms, no surrogates, nothing
 * above U+10FFFF. Protobuf strings must be valid UTF-8, and protobuf-c
 * does not check, so every process that reads outside input checks here. */
#ifndef PARLEY_UTF8_H
#define PARLEY_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the UTF-8 sequence at s (1-4), or 0 when it is not valid. */
size_t utf8_len(const unsigned char *s);

/* True when the NUL-terminated s is valid UTF-8 (NULL counts as valid:
 * protobuf-c leaves absent strings empty, never NULL, but be safe). */
bool utf8_valid(const char *s);

#endif
