/* Protobuf wire helpers for parley-bench: see pb.h. */
#include <stdlib.h>

#include "pb.h"

void
pbuf_reserve(struct pbuf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return;
	while (b->len + more > b->cap)
		b->cap = b->cap ? b->cap * 2 : 256;
	b->p = realloc(b->p, b->cap);
	if (!b->p)
		abort();
}

size_t
pb_begin(struct pbuf *b, unsigned field)
{
	pb_key(b, field, 2);
	pbuf_reserve(b, 3);
	b->len += 3;
	return b->len;
}

/* The length is written as a padded 3-byte varint, which decoders accept. */
void
pb_end(struct pbuf *b, size_t mark)
{
	size_t n = b->len - mark;
	uint8_t *l = b->p + mark - 3;

	l[0] = (uint8_t)(0x80 | (n & 0x7f));
	l[1] = (uint8_t)(0x80 | ((n >> 7) & 0x7f));
	l[2] = (uint8_t)((n >> 14) & 0x7f);
}

size_t
pb_read_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;

	for (unsigned i = 0; i < 10 && p + i < end; i++) {
		r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = r;
			return i + 1;
		}
	}
	return 0;
}

int
pb_next(const uint8_t **pos, const uint8_t *end, struct pb_field *f)
{
	const uint8_t *p = *pos;
	uint64_t key, len;
	size_t k;

	if (p >= end)
		return 0;
	k = pb_read_varint(p, end, &key);
	if (!k)
		return -1;
	p += k;
	f->num = (unsigned)(key >> 3);
	f->wire = (unsigned)(key & 7);
	switch (f->wire) {
	case 0:
		k = pb_read_varint(p, end, &f->v);
		if (!k)
			return -1;
		p += k;
		break;
	case 2:
		k = pb_read_varint(p, end, &len);
		if (!k || len > (uint64_t)(end - p - (ptrdiff_t)k))
			return -1;
		f->p = p + k;
		f->n = (size_t)len;
		p += k + len;
		break;
	case 1:
	case 5:
		len = f->wire == 1 ? 8 : 4;
		if ((uint64_t)(end - p) < len)
			return -1;
		f->p = p;
		f->n = (size_t)len;
		p += len;
		break;
	default:
		return -1;
	}
	*pos = p;
	return 1;
}
