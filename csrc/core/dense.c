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
    uint32_t *ids = a->realloc(a->ctx, d->ids, (size_t)cap * sizeof(uint32_t));
    if (ids == NULL) {
        return ML_ERR_NOMEM;
    }
    d->ids = ids;
    uint32_t *pos = a->realloc(a->ctx, d->pos, (size_t)cap * sizeof(uint32_t));
    if (pos == NULL) {
        return ML_ERR_NOMEM;   /* ids grew, cap did not: still consistent */
    }
    d->pos = pos;
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
