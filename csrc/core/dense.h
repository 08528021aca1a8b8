/* dense.h — the live entry ids packed in an array, for uniform random choice.
 *
 * RRCache hands its `choice` function a sequence of its keys; this array is that
 * sequence's order, kept exactly as cachetools keeps its key list: a new id is appended,
 * a removed one is replaced by the last id. Same operations, same order — so a given
 * `choice` picks the same key in both.
 */
#ifndef ML_DENSE_H
#define ML_DENSE_H

#include <stdint.h>

#include "core/alloc.h"

typedef struct ml_dense {
    uint32_t *ids;     /* ids[0 .. n) : the live ids */
    uint32_t *pos;     /* pos[id]: where id is in ids */
    uint32_t n;
    uint32_t cap;      /* cells of both arrays */
} ml_dense;

void ml_dense_init(ml_dense *d);
void ml_dense_free(ml_dense *d, const ml_alloc *a);

/* Ensures room for entry ids below cap. ML_OK or ML_ERR_NOMEM (d unchanged). */
int ml_dense_reserve(ml_dense *d, const ml_alloc *a, uint32_t cap);

/* Appends id (not present). */
void ml_dense_add(ml_dense *d, uint32_t id);

/* Removes id (present): the last id takes its place. */
void ml_dense_remove(ml_dense *d, uint32_t id);

#endif
