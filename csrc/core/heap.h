/* heap.h — an indexed binary min-heap of entry ids keyed by a deadline (a double).
 *
 * The exact ordered structure behind per-entry expiry: the earliest deadline is at the
 * top in O(1); set, update and remove are O(log n) (O(1) when deadlines arrive in order,
 * as a TTL cache's do: a pushed key that is not earlier than its parent stays put). pos[]
 * maps an id to its heap slot, so any entry can be removed or re-keyed in place.
 *
 * Keys are compared with `<` on doubles: +inf sorts last and never expires; NaN is not
 * accepted (the caller rejects it). Equal keys come out in the order they were set (a
 * sequence number breaks ties), as cachetools' TTL expiry list orders them.
 */
#ifndef ML_HEAP_H
#define ML_HEAP_H

#include <stdint.h>

#include "core/alloc.h"

typedef struct ml_heap {
    uint32_t *ids;      /* heap order: ids[0] has the smallest key */
    uint32_t n;
    uint32_t cap;       /* cells of ids, pos and key */
    uint32_t *pos;      /* per id: its index in ids, or ML_NIL when not in the heap */
    double *key;        /* per id: its deadline */
    uint64_t *seq;      /* per id: when its key was set (ties: earlier first) */
    uint64_t clock;     /* the next sequence number */
} ml_heap;

void ml_heap_init(ml_heap *h);
void ml_heap_free(ml_heap *h, const ml_alloc *a);

/* Ensures room for ids below cap (new cells are "not in the heap"). ML_OK or
 * ML_ERR_NOMEM (h unchanged but possibly grown). */
int ml_heap_reserve(ml_heap *h, const ml_alloc *a, uint32_t cap);

/* Gives id the key `key`, adding it if absent. @pre key is not NaN, id < cap. */
void ml_heap_set(ml_heap *h, uint32_t id, double key);

/* Removes id if present. */
void ml_heap_remove(ml_heap *h, uint32_t id);

/* @return the id with the smallest key, or ML_NIL when empty. */
static inline uint32_t
ml_heap_top(const ml_heap *h)
{
    return h->n ? h->ids[0] : UINT32_MAX;
}

/* Empties the heap (keeps the arrays). */
void ml_heap_clear(ml_heap *h);

#endif
