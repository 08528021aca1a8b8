/* table.c — hash index over a slab of entries with stable ids.
 *
 * Layout
 *
 *     slots (uint32, power of two)          ents (slab, stable ids)
 *     +---+---+---+---+---+---+---+---+     +-----------------------------------+
 *     | 0 | 4 | 1 | 0 | 2 | 0 | 0 | 0 |     | 0: hash key value links (live)    |
 *     +---+---+---+---+---+---+---+---+     | 1: -- free, next free = ML_NIL -- |
 *           |   |       |                   | 2: hash key value links (live)    |
 *           |   deleted +-----------------> +-----------------------------------+
 *           +----------------------------->   (slot value = id + 2)
 *
 * An index slot holds 0 (empty: ends a probe), 1 (deleted: a probe goes on) or id + 2.
 * Probing follows CPython's dict: i = (5 i + perturb + 1) mod size, perturb >>= 5, so all
 * bits of the hash take part. The index is kept at most two thirds full (live + deleted);
 * when an insertion would pass that, it is rebuilt at a size of at least 3 x live entries,
 * which also drops the deleted slots. Entries never move: the slab grows by doubling and
 * freed ids are reused through a free list, so ids held by lists (list.h) and by iterators
 * stay valid as long as the entry lives.
 *
 * Invariants (checked by ml_cache_check in debug builds):
 *   - every live entry is reachable from exactly one slot, found by probing its hash;
 *   - used = live entries; fill = non-empty slots; 3 * fill <= 2 * (mask + 1);
 *   - the free list holds exactly the ids below top that are not live.
 *
 * Look-ups compare identity first, then the stored hash, and call the equality callback
 * only on a hash match. The callback may mutate the table. After it, the probe goes on
 * where it was if the index is the same array (`layout` unchanged) and the slot still
 * holds the entry just compared, with the same key; otherwise it restarts from scratch,
 * at most ML_TABLE_MAX_RESTARTS times. Going on is safe: insertions fill empty or deleted
 * slots and removals leave deleted ones, so the rest of the probe sequence still finds
 * every key it would have found (dictobject.c's rule). Restarting on every insertion
 * instead never ends when each comparison stores a new key.
 */
#include "core/table.h"

#include <assert.h>
#include <string.h>

#define SLOT_EMPTY 0u
#define SLOT_DELETED 1u
#define MIN_SLOTS 8u
#define MIN_ENTS 8u

void
ml_table_init(ml_table *t, const ml_alloc *alloc)
{
    memset(t, 0, sizeof(*t));
    t->free_head = ML_NIL;
    t->alloc = alloc;
}

void
ml_table_free(ml_table *t)
{
    t->alloc->free(t->alloc->ctx, t->slots);
    t->alloc->free(t->alloc->ctx, t->ents);
    t->slots = NULL;
    t->ents = NULL;
    t->cap = t->top = t->used = 0;
    t->free_head = ML_NIL;
    t->mask = 0;
    t->fill = 0;
    t->version++;
    t->layout++;
}

/* The slot to start probing at, and the probe step (CPython's dict recurrence). */
#define PROBE_START(h, m) ((size_t)(h) & (m))
#define PROBE_NEXT(i, p, m) (((i) * 5u + (size_t)((p) >>= 5) + 1u) & (m))

int
ml_table_find(ml_table *t, uint64_t hash, const void *key, ml_eq_fn eq, void *ctx, uint32_t *id)
{
    unsigned restarts = 0;
restart:
    if (t->slots == NULL) {
        return ML_NOT_FOUND;
    }
    size_t mask = t->mask;
    uint64_t layout = t->layout;
    size_t i = PROBE_START(hash, mask);
    uint64_t perturb = hash;
    for (;;) {
        uint32_t s = t->slots[i];
        if (s == SLOT_EMPTY) {
            return ML_NOT_FOUND;
        }
        if (s != SLOT_DELETED) {
            uint32_t cand = s - 2u;
            ml_entry *e = &t->ents[cand];
            if (e->key == key) {
                *id = cand;
                return ML_OK;
            }
            if (e->hash == hash && eq != NULL) {
                void *stored = e->key;
                int r = eq(ctx, stored, (void *)key);   /* can mutate t: e may dangle */
                if (r < 0) {
                    return ML_ERR_CALLBACK;
                }
                if (t->layout != layout || t->slots[i] != s || t->ents[cand].key != stored) {
                    if (++restarts > ML_TABLE_MAX_RESTARTS) {
                        return ML_ERR_CHANGED;
                    }
                    goto restart;
                }
                if (r) {
                    *id = cand;
                    return ML_OK;
                }
            }
        }
        i = PROBE_NEXT(i, perturb, mask);
    }
}

/* Places id in the first empty or deleted slot of its probe sequence. */
static void
slot_place(uint32_t *slots, size_t mask, uint64_t hash, uint32_t id, size_t *fill)
{
    size_t i = PROBE_START(hash, mask);
    uint64_t perturb = hash;
    while (slots[i] > SLOT_DELETED) {
        i = PROBE_NEXT(i, perturb, mask);
    }
    if (slots[i] == SLOT_EMPTY) {
        (*fill)++;
    }
    slots[i] = id + 2u;
}

static int
index_rebuild(ml_table *t, size_t want_entries)
{
    size_t n = MIN_SLOTS;
    while (n < want_entries * 3u / 2u + 1u || n < (size_t)t->used * 3u) {
        n <<= 1;
    }
    uint32_t *slots = t->alloc->malloc(t->alloc->ctx, n * sizeof(uint32_t));
    if (slots == NULL) {
        return ML_ERR_NOMEM;
    }
    memset(slots, 0, n * sizeof(uint32_t));
    size_t fill = 0;
    for (uint32_t id = 0; id < t->top; id++) {
        if (t->ents[id].key != NULL) {
            slot_place(slots, n - 1u, t->ents[id].hash, id, &fill);
        }
    }
    t->alloc->free(t->alloc->ctx, t->slots);
    t->slots = slots;
    t->mask = n - 1u;
    t->fill = fill;
    t->layout++;
    return ML_OK;
}

int
ml_table_reserve(ml_table *t)
{
    if (t->used >= ML_TABLE_MAX_ENTRIES) {
        return ML_ERR_FULL;
    }
    if (t->free_head == ML_NIL && t->top == t->cap) {
        size_t ncap = t->cap ? (size_t)t->cap * 2u : MIN_ENTS;
        if (ncap > (size_t)ML_TABLE_MAX_ENTRIES + 1u) {
            ncap = (size_t)ML_TABLE_MAX_ENTRIES + 1u;
        }
        if (ml_grow(t->alloc, (void **)&t->ents, sizeof(ml_entry), ncap) != ML_OK) {
            return ML_ERR_NOMEM;
        }
        t->cap = (uint32_t)ncap;
    }
    if (t->slots == NULL || 3u * (t->fill + 1u) > 2u * (t->mask + 1u)) {
        if (index_rebuild(t, (size_t)t->used + 1u) != ML_OK) {
            return ML_ERR_NOMEM;
        }
    }
    return ML_OK;
}

uint32_t
ml_table_insert(ml_table *t, uint64_t hash, void *key, void *value)
{
    assert(key != NULL);
    assert(t->slots != NULL && 3u * (t->fill + 1u) <= 2u * (t->mask + 1u));
    uint32_t id;
    if (t->free_head != ML_NIL) {
        id = t->free_head;
        t->free_head = t->ents[id].link[ML_LINK_ORDER][1];
    }
    else {
        assert(t->top < t->cap);
        id = t->top++;
    }
    ml_entry *e = &t->ents[id];
    e->hash = hash;
    e->key = key;
    e->value = value;
    e->link[0][0] = e->link[0][1] = e->link[1][0] = e->link[1][1] = ML_NIL;
    slot_place(t->slots, t->mask, hash, id, &t->fill);
    t->used++;
    t->version++;
    return id;
}

void
ml_table_remove(ml_table *t, uint32_t id)
{
    ml_entry *e = &t->ents[id];
    assert(e->key != NULL);
    size_t mask = t->mask;
    size_t i = PROBE_START(e->hash, mask);
    uint64_t perturb = e->hash;
    while (t->slots[i] != id + 2u) {
        assert(t->slots[i] != SLOT_EMPTY);
        i = PROBE_NEXT(i, perturb, mask);
    }
    t->slots[i] = SLOT_DELETED;
    e->key = NULL;
    e->value = NULL;
    e->link[ML_LINK_ORDER][1] = t->free_head;
    t->free_head = id;
    t->used--;
    t->version++;
}

void
ml_table_steal(ml_table *t, ml_table *out)
{
    *out = *t;
    ml_table_init(t, out->alloc);
    t->version = out->version + 1u;
    t->layout = out->layout + 1u;
}

size_t
ml_table_sizeof(const ml_table *t)
{
    size_t n = (size_t)t->cap * sizeof(ml_entry);
    if (t->slots != NULL) {
        n += (t->mask + 1u) * sizeof(uint32_t);
    }
    return n;
}
