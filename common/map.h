/* A string-keyed hash map (open addressing, linear probing) from a copied
 * key to a caller-owned value pointer. Not thread-safe. */
#ifndef PARLEY_MAP_H
#define PARLEY_MAP_H

#include <stdbool.h>
#include <stddef.h>

/* Embedded: map_init/map_release. Keys are copied and owned by the map;
 * values are the caller's (map_release does not free them). */
struct map {
	struct map_slot *slots;
	size_t cap;  /* power of two, 0 while empty */
	size_t used; /* live entries */
	size_t dead; /* tombstones */
};

void map_init(struct map *m);
void map_release(struct map *m);

/* The value for key, or NULL. */
void *map_get(const struct map *m, const char *key);
/* Set key to value (value must not be NULL); returns the old value or NULL. */
void *map_put(struct map *m, const char *key, void *value);
/* Remove key; returns its value or NULL when absent. */
void *map_del(struct map *m, const char *key);
/* Number of entries. */
size_t map_count(const struct map *m);

/* Iterate: start with *pos = 0; returns false at the end. The map must
 * not be changed while iterating, except by map_del of the current key. */
bool map_next(const struct map *m, size_t *pos, const char **key, void **value);

#endif
