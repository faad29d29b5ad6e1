/* Just enough protobuf wire format for parley-bench to speak parley v1 and
 * Centrifugo's protobuf client protocol without a code generator: varints,
 * length-delimited fields, and a reader that walks a message's fields.
 * Encoding by hand keeps the generator's own CPU cost small and equal for
 * both systems (no allocation per frame). */
#ifndef BENCH_PB_H
#define BENCH_PB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A growable output buffer; writers never fail (allocation aborts). */
struct pbuf {
	uint8_t *p;
	size_t len;
	size_t cap;
};

void pbuf_reserve(struct pbuf *b, size_t more);

static inline void
pb_byte(struct pbuf *b, uint8_t c)
{
	pbuf_reserve(b, 1);
	b->p[b->len++] = c;
}

static inline void
pb_varint(struct pbuf *b, uint64_t v)
{
	pbuf_reserve(b, 10);
	while (v >= 0x80) {
		b->p[b->len++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b->p[b->len++] = (uint8_t)v;
}

static inline void
pb_key(struct pbuf *b, unsigned field, unsigned wire)
{
	pb_varint(b, ((uint64_t)field << 3) | wire);
}

static inline void
pb_uint(struct pbuf *b, unsigned field, uint64_t v)
{
	pb_key(b, field, 0);
	pb_varint(b, v);
}

static inline void
pb_bytes(struct pbuf *b, unsigned field, const void *p, size_t n)
{
	pb_key(b, field, 2);
	pb_varint(b, n);
	pbuf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static inline void
pb_str(struct pbuf *b, unsigned field, const char *s)
{
	pb_bytes(b, field, s, strlen(s));
}

/* Starts a length-delimited submessage: reserves a 3-byte length (enough
 * for 2 MiB) and returns where it starts, for pb_end. */
size_t pb_begin(struct pbuf *b, unsigned field);
void pb_end(struct pbuf *b, size_t mark);

/* One field read from a message. */
struct pb_field {
	unsigned num;
	unsigned wire;
	uint64_t v;	  /* varint value (wire 0) */
	const uint8_t *p; /* bytes (wire 2) */
	size_t n;
};

/* Reads the next field of [*pos, end); returns 1, 0 at the end, -1 when
 * malformed. Fixed32/64 fields are skipped over with their bytes in p. */
int pb_next(const uint8_t **pos, const uint8_t *end, struct pb_field *f);
/* Reads one varint; returns bytes used or 0 when malformed or short. */
size_t pb_read_varint(const uint8_t *p, const uint8_t *end, uint64_t *v);

#endif
