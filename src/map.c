/* map.c -- a chained hash table from byte-string keys to pointers. */
#include "map.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static struct map_entry **find(const struct map *m, const void *key, size_t klen, uint64_t h)
{
	struct map_entry **pp = &m->slots[h & (m->nslots - 1)];
	while (*pp && ((*pp)->hash != h || (*pp)->klen != klen || memcmp((*pp)->key, key, klen)))
		pp = &(*pp)->next;
	return pp;
}

void *map_get(const struct map *m, const void *key, size_t klen)
{
	if (!m->count)
		return NULL;
	struct map_entry *e = *find(m, key, klen, hash_str(key, klen));
	return e ? e->val : NULL;
}

static void rehash(struct map *m, size_t nslots)
{
	struct map_entry **slots = xcalloc(nslots, sizeof(*slots));
	for (size_t i = 0; i < m->nslots; i++) {
		struct map_entry *e = m->slots[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = slots[e->hash & (nslots - 1)];
			slots[e->hash & (nslots - 1)] = e;
		}
	}
	free(m->slots);
	m->slots = slots;
	m->nslots = nslots;
}

struct map_entry *map_put(struct map *m, const void *key, size_t klen, void *val)
{
	if (m->count + 1 > m->nslots)
		rehash(m, m->nslots ? m->nslots * 2 : 16);
	uint64_t h = hash_str(key, klen);
	struct map_entry **pp = find(m, key, klen, h);
	if (*pp) {
		(*pp)->val = val;
		return *pp;
	}
	struct map_entry *e = xmalloc(sizeof(*e) + klen + 1);
	e->next = NULL;
	e->hash = h;
	e->val = val;
	e->klen = klen;
	memcpy(e->key, key, klen);
	e->key[klen] = '\0';
	*pp = e;
	m->count++;
	return e;
}

void *map_del(struct map *m, const void *key, size_t klen)
{
	if (!m->count)
		return NULL;
	struct map_entry **pp = find(m, key, klen, hash_str(key, klen)), *e = *pp;
	if (!e)
		return NULL;
	void *val = e->val;
	*pp = e->next;
	free(e);
	m->count--;
	return val;
}

void map_free(struct map *m)
{
	for (size_t i = 0; i < m->nslots; i++) {
		struct map_entry *e = m->slots[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

struct map_entry *map_next(const struct map *m, struct map_iter *it)
{
	while (!it->next) {
		if (it->slot >= m->nslots)
			return NULL;
		it->next = m->slots[it->slot++];
	}
	struct map_entry *e = it->next;
	it->next = e->next;
	return e;
}
