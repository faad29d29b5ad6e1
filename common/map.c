/* String-keyed hash map with open addressing and linear probing; deleted
 * slots become tombstones and are dropped when the table is rebuilt. */
#include "map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

struct map_slot {
	char *key; /* NULL: empty; MAP_TOMB: deleted */
	void *value;
	uint64_t hash;
};

static char map_tomb_;
#define MAP_TOMB (&map_tomb_)

/* FNV-1a: short keys, good enough spread, no state. */
static uint64_t
map_hash(const char *key)
{
	uint64_t h = 1469598103934665603ULL;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

void
map_init(struct map *m)
{
	memset(m, 0, sizeof(*m));
}

void
map_release(struct map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key && m->slots[i].key != MAP_TOMB)
			free(m->slots[i].key);
	free(m->slots);
	map_init(m);
}

/* Index of key's slot, or of the first free slot on its probe path. */
static size_t
map_find(const struct map *m, const char *key, uint64_t h, bool *found)
{
	size_t mask = m->cap - 1, i = h & mask, tomb = SIZE_MAX;

	for (;; i = (i + 1) & mask) {
		struct map_slot *s = &m->slots[i];

		if (s->key == NULL) {
			*found = false;
			return tomb != SIZE_MAX ? tomb : i;
		}
		if (s->key == MAP_TOMB) {
			if (tomb == SIZE_MAX)
				tomb = i;
		} else if (s->hash == h && strcmp(s->key, key) == 0) {
			*found = true;
			return i;
		}
	}
}

static void
map_rebuild(struct map *m, size_t cap)
{
	struct map_slot *old = m->slots;
	size_t old_cap = m->cap;

	m->slots = xcalloc(cap, sizeof(*m->slots));
	m->cap = cap;
	m->dead = 0;
	for (size_t i = 0; i < old_cap; i++) {
		bool found;
		size_t j;

		if (old[i].key == NULL || old[i].key == MAP_TOMB)
			continue;
		j = map_find(m, old[i].key, old[i].hash, &found);
		m->slots[j] = old[i];
	}
	free(old);
}

void *
map_get(const struct map *m, const char *key)
{
	bool found;
	size_t i;

	if (m->used == 0)
		return NULL;
	i = map_find(m, key, map_hash(key), &found);
	return found ? m->slots[i].value : NULL;
}

void *
map_put(struct map *m, const char *key, void *value)
{
	uint64_t h = map_hash(key);
	bool found;
	size_t i;

	if ((m->used + m->dead + 1) * 4 > m->cap * 3)
		map_rebuild(m, m->cap ? (m->used * 2 >= m->cap ? m->cap * 2
							       : m->cap)
				      : 8);
	i = map_find(m, key, h, &found);
	if (found) {
		void *old = m->slots[i].value;

		m->slots[i].value = value;
		return old;
	}
	if (m->slots[i].key == MAP_TOMB)
		m->dead--;
	m->slots[i].key = xstrdup(key);
	m->slots[i].value = value;
	m->slots[i].hash = h;
	m->used++;
	return NULL;
}

void *
map_del(struct map *m, const char *key)
{
	bool found;
	size_t i;
	void *old;

	if (m->used == 0)
		return NULL;
	i = map_find(m, key, map_hash(key), &found);
	if (!found)
		return NULL;
	old = m->slots[i].value;
	free(m->slots[i].key);
	m->slots[i].key = MAP_TOMB;
	m->slots[i].value = NULL;
	m->used--;
	m->dead++;
	return old;
}

size_t
map_count(const struct map *m)
{
	return m->used;
}

bool
map_next(const struct map *m, size_t *pos, const char **key, void **value)
{
	for (; *pos < m->cap; (*pos)++) {
		struct map_slot *s = &m->slots[*pos];

		if (s->key == NULL || s->key == MAP_TOMB)
			continue;
		*key = s->key;
		*value = s->value;
		(*pos)++;
		return true;
	}
	return false;
}
