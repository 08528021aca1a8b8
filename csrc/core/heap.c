/* heap.c — indexed binary min-heap (see heap.h).
 *
 *            ids[0]                 children of i: 2i + 1, 2i + 2; parent: (i - 1) / 2
 *           /      \                invariant: (key, seq)[ids[parent]] <= (key, seq)[ids[child]]
 *      ids[1]      ids[2]           pos[ids[i]] == i for every i < n
 *
 * sift_up and sift_down move one id to its place, keeping pos[] in step; set() on a present
 * id re-keys it and sifts whichever way the key moved; remove() swaps the last id into the
 * hole and sifts it.
 */
#include "core/heap.h"

#include <string.h>

#include "core/status.h"
#include "core/table.h"

void
ml_heap_init(ml_heap *h)
{
    memset(h, 0, sizeof(*h));
}

void
ml_heap_free(ml_heap *h, const ml_alloc *a)
{
    a->free(a->ctx, h->ids);
    a->free(a->ctx, h->pos);
    a->free(a->ctx, h->key);
    a->free(a->ctx, h->seq);
    ml_heap_init(h);
}

int
ml_heap_reserve(ml_heap *h, const ml_alloc *a, uint32_t cap)
{
    if (cap <= h->cap) {
        return ML_OK;
    }
    if (ml_grow(a, (void **)&h->ids, sizeof(uint32_t), cap) != ML_OK ||
        ml_grow(a, (void **)&h->pos, sizeof(uint32_t), cap) != ML_OK ||
        ml_grow(a, (void **)&h->key, sizeof(double), cap) != ML_OK ||
        ml_grow(a, (void **)&h->seq, sizeof(uint64_t), cap) != ML_OK) {
        return ML_ERR_NOMEM;   /* whatever grew is valid; cap is still the old one */
    }
    for (uint32_t i = h->cap; i < cap; i++) {
        h->pos[i] = ML_NIL;
    }
    h->cap = cap;
    return ML_OK;
}

/* Whether id a comes out before id b. */
static inline int
before(const ml_heap *h, uint32_t a, uint32_t b)
{
    return h->key[a] < h->key[b] || (h->key[a] == h->key[b] && h->seq[a] < h->seq[b]);
}

static void
place(ml_heap *h, uint32_t i, uint32_t id)
{
    h->ids[i] = id;
    h->pos[id] = i;
}

static void
sift_up(ml_heap *h, uint32_t i)
{
    uint32_t id = h->ids[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(h, id, h->ids[parent])) {
            break;
        }
        place(h, i, h->ids[parent]);
        i = parent;
    }
    place(h, i, id);
}

static void
sift_down(ml_heap *h, uint32_t i)
{
    uint32_t id = h->ids[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= h->n) {
            break;
        }
        if (child + 1 < h->n && before(h, h->ids[child + 1], h->ids[child])) {
            child++;
        }
        if (!before(h, h->ids[child], id)) {
            break;
        }
        place(h, i, h->ids[child]);
        i = child;
    }
    place(h, i, id);
}

void
ml_heap_set(ml_heap *h, uint32_t id, double key)
{
    uint32_t i = h->pos[id];
    h->seq[id] = h->clock++;
    if (i == ML_NIL) {
        h->key[id] = key;
        place(h, h->n++, id);
        sift_up(h, h->n - 1);
        return;
    }
    h->key[id] = key;   /* moved either way (its sequence is newer too): sift both ways */
    sift_up(h, i);
    sift_down(h, h->pos[id]);
}

void
ml_heap_remove(ml_heap *h, uint32_t id)
{
    uint32_t i = h->pos[id];
    if (i == ML_NIL) {
        return;
    }
    h->pos[id] = ML_NIL;
    uint32_t last = h->ids[--h->n];
    if (i == h->n) {
        return;
    }
    place(h, i, last);
    if (i > 0 && before(h, last, h->ids[(i - 1) / 2])) {
        sift_up(h, i);
    }
    else {
        sift_down(h, i);
    }
}

void
ml_heap_clear(ml_heap *h)
{
    for (uint32_t i = 0; i < h->n; i++) {
        h->pos[h->ids[i]] = ML_NIL;
    }
    h->n = 0;
}
