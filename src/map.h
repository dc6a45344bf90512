/* map.h -- a chained hash table from byte-string keys to pointers
 * (room names, connection ids). Keys are copied; values are borrowed. */
#ifndef HERALD_MAP_H
#define HERALD_MAP_H

#include <stddef.h>
#include <stdint.h>

struct map_entry {
	struct map_entry *next;
	uint64_t hash;
	void *val;
	size_t klen;
	char key[];              /* NUL-terminated copy */
};

struct map {
	struct map_entry **slots;
	size_t nslots;
	size_t count;
};

void *map_get(const struct map *m, const void *key, size_t klen);
/* Inserts or replaces; returns the entry (its key is a stable copy). */
struct map_entry *map_put(struct map *m, const void *key, size_t klen, void *val);
/* Removes key; returns its value or NULL. */
void *map_del(struct map *m, const void *key, size_t klen);
void map_free(struct map *m);

/* Iteration that tolerates deleting the current entry:
 *   struct map_iter it = {0}; struct map_entry *e;
 *   while ((e = map_next(m, &it))) ... */
struct map_iter {
	size_t slot;
	struct map_entry *next;
};
struct map_entry *map_next(const struct map *m, struct map_iter *it);

static inline void *map_get_u64(const struct map *m, uint64_t k) { return map_get(m, &k, sizeof(k)); }
static inline void map_put_u64(struct map *m, uint64_t k, void *v) { map_put(m, &k, sizeof(k), v); }
static inline void *map_del_u64(struct map *m, uint64_t k) { return map_del(m, &k, sizeof(k)); }

#endif
