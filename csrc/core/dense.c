/* dense.c — packed array of live ids with positions (see dense.h). */
#include "core/dense.h"

#include <string.h>

#include "core/status.h"

void
ml_dense_init(ml_dense *d)
{
    memset(d, 0, sizeof(*d));
}

void
ml_dense_free(ml_dense *d, const ml_alloc *a)
{
    a->free(a->ctx, d->ids);
    a->free(a->ctx, d->pos);
    ml_dense_init(d);
}

int
ml_dense_reserve(ml_dense *d, const ml_alloc *a, uint32_t cap)
{
    if (cap <= d->cap) {
        return ML_OK;
    }
    if (ml_grow(a, (void **)&d->ids, sizeof(uint32_t), cap) != ML_OK ||
        ml_grow(a, (void **)&d->pos, sizeof(uint32_t), cap) != ML_OK) {
        return ML_ERR_NOMEM;   /* whatever grew is valid; cap is still the old one */
    }
    d->cap = cap;
    return ML_OK;
}

void
ml_dense_add(ml_dense *d, uint32_t id)
{
    d->pos[id] = d->n;
    d->ids[d->n++] = id;
}

void
ml_dense_remove(ml_dense *d, uint32_t id)
{
    uint32_t i = d->pos[id];
    uint32_t last = d->ids[--d->n];
    if (i != d->n) {
        d->ids[i] = last;
        d->pos[last] = i;
    }
}
