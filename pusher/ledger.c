/* The offset ledger: per partition, the consumed records still needed by
 * some work, in offset order, so the pusher stores an offset only once
 * every push of the records before it is done or given up. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pusher.h"
#include "xalloc.h"

void
ledger_init(struct ledger *l)
{
	memset(l, 0, sizeof(*l));
}

void
ledger_release(struct ledger *l)
{
	for (int32_t i = 0; i < l->n; i++)
		free(l->parts[i].ring);
	free(l->parts);
	memset(l, 0, sizeof(*l));
}

static struct ledger_part *
ledger_part(const struct ledger *l, int32_t part)
{
	if (part < 0 || part >= l->n)
		return NULL;
	return &l->parts[part];
}

static struct ledger_part *
ledger_grow(struct ledger *l, int32_t part)
{
	if (part >= l->n) {
		l->parts = xrealloc(l->parts,
				    (size_t)(part + 1) * sizeof(*l->parts));
		memset(l->parts + l->n, 0,
		       (size_t)(part + 1 - l->n) * sizeof(*l->parts));
		l->n = part + 1;
	}
	return &l->parts[part];
}

static struct ledger_entry *
ledger_at(const struct ledger_part *p, size_t i)
{
	return &p->ring[(p->head + i) % p->cap];
}

void
ledger_assign(struct ledger *l, int32_t part, int64_t start, bool known)
{
	struct ledger_part *p;

	if (part < 0)
		return;
	p = ledger_grow(l, part);
	p->owned = true;
	p->known = known;
	p->epoch = ++l->epochs;
	p->next = start;
	p->stored = start;
	p->head = p->len = 0;
}

void
ledger_set_start(struct ledger *l, int32_t part, int64_t start)
{
	struct ledger_part *p = ledger_part(l, part);

	if (p == NULL || !p->owned)
		return;
	p->known = true;
	p->next = start;
	p->stored = start;
	p->head = p->len = 0;
}

void
ledger_revoke(struct ledger *l, int32_t part)
{
	struct ledger_part *p = ledger_part(l, part);

	if (p == NULL)
		return;
	p->owned = p->known = false;
	p->head = p->len = 0;
	p->epoch = ++l->epochs;
}

bool
ledger_owned(const struct ledger *l, int32_t part)
{
	const struct ledger_part *p = ledger_part(l, part);

	return p && p->owned && p->known;
}

static void
ledger_push(struct ledger_part *p, int64_t offset)
{
	if (p->len == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		struct ledger_entry *ring = xmalloc(cap * sizeof(*ring));

		for (size_t i = 0; i < p->len; i++)
			ring[i] = *ledger_at(p, i);
		free(p->ring);
		p->ring = ring;
		p->cap = cap;
		p->head = 0;
	}
	p->ring[(p->head + p->len) % p->cap] =
		(struct ledger_entry){ .offset = offset, .refs = 1 };
	p->len++;
}

int
ledger_take(struct ledger *l, int32_t part, int64_t offset, struct push_hold *h)
{
	struct ledger_part *p = ledger_part(l, part);

	if (p == NULL || !p->owned || !p->known)
		return -ESTALE;
	if (p->next >= 0 && offset < p->next)
		return -EALREADY;
	ledger_push(p, offset);
	p->next = offset + 1;
	*h = (struct push_hold){ .part = part,
				 .epoch = p->epoch,
				 .offset = offset };
	return 0;
}

/* The entry of h's record, or NULL when h is stale or empty. Offsets in
 * the ring ascend, so a binary search finds it. */
static struct ledger_entry *
ledger_find(const struct ledger *l, const struct push_hold *h)
{
	const struct ledger_part *p = ledger_part(l, h->part);
	size_t lo = 0, hi;

	if (p == NULL || !p->owned || p->epoch != h->epoch)
		return NULL;
	hi = p->len;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct ledger_entry *e = ledger_at(p, mid);

		if (e->offset == h->offset)
			return e;
		if (e->offset < h->offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void
ledger_ref(struct ledger *l, const struct push_hold *h)
{
	struct ledger_entry *e = ledger_find(l, h);

	if (e)
		e->refs++;
}

void
ledger_unref(struct ledger *l, const struct push_hold *h)
{
	struct ledger_entry *e = ledger_find(l, h);

	if (e && e->refs > 0)
		e->refs--;
}

int64_t
ledger_safe(const struct ledger *l, int32_t part)
{
	const struct ledger_part *p = ledger_part(l, part);

	if (p == NULL || !p->owned || !p->known)
		return -1;
	for (size_t i = 0; i < p->len; i++) {
		const struct ledger_entry *e = ledger_at(p, i);

		if (e->refs > 0)
			return e->offset;
	}
	return p->next;
}

void
ledger_trim(struct ledger *l, int32_t part)
{
	struct ledger_part *p = ledger_part(l, part);

	while (p && p->len > 0 && ledger_at(p, 0)->refs == 0) {
		p->head = (p->head + 1) % p->cap;
		p->len--;
	}
}

size_t
ledger_size(const struct ledger *l)
{
	size_t n = 0;

	for (int32_t i = 0; i < l->n; i++)
		n += l->parts[i].len;
	return n;
}
