/* lfu.h — least-frequently-used order in O(1): buckets of entries with equal use count.
 *
 * Buckets form a list in increasing count order; each holds its entries in the order they
 * entered it (through the entries' ML_LINK_POLICY links). An entry enters bucket c at its
 * c-th use, so the head of the lowest bucket is the least recently used of the least
 * frequently used entries — cachetools 8's LFUCache order exactly.
 *
 * A bucket is never empty, so there are at most as many buckets as entries: sizing the
 * bucket slab with the entry slab (ml_lfu_reserve) means a touch on a cache hit never
 * allocates.
 */
#ifndef ML_LFU_H
#define ML_LFU_H

#include <stdint.h>

#include "core/alloc.h"
#include "core/list.h"
#include "core/table.h"

typedef struct ml_lfu_bucket {
    uint64_t count;         /* uses of every entry in this bucket */
    ml_list keys;           /* entries, oldest arrival first */
    uint32_t prev, next;    /* neighbouring buckets (next: a larger count); next links the free list */
} ml_lfu_bucket;

typedef struct ml_lfu {
    ml_lfu_bucket *b;       /* bucket slab */
    uint32_t cap;           /* buckets allocated */
    uint32_t top;           /* bucket ids below top have been used */
    uint32_t free_head;     /* free buckets, through .next */
    uint32_t first;         /* bucket with the lowest count, or ML_NIL */
    uint32_t last;          /* bucket with the highest count, or ML_NIL */
    uint32_t *bucket_of;    /* per entry id: its bucket */
    uint32_t side_cap;      /* entry ids bucket_of holds */
} ml_lfu;

/* Makes l empty; allocates nothing. */
void ml_lfu_init(ml_lfu *l);

/* Frees l's arrays. */
void ml_lfu_free(ml_lfu *l, const ml_alloc *a);

/* Ensures room for entry ids below entry_cap and as many buckets. ML_OK or ML_ERR_NOMEM
 * (l unchanged but possibly grown). */
int ml_lfu_reserve(ml_lfu *l, const ml_alloc *a, uint32_t entry_cap);

/* Adds live entry id with one use. @pre reserved for id. */
void ml_lfu_insert(ml_lfu *l, ml_entry *ents, uint32_t id);

/* Records one more use of entry id. Never allocates. */
void ml_lfu_touch(ml_lfu *l, ml_entry *ents, uint32_t id);

/* Removes entry id. */
void ml_lfu_remove(ml_lfu *l, ml_entry *ents, uint32_t id);

/* @return the entry evicted next (least frequent, then least recent), or ML_NIL. */
uint32_t ml_lfu_victim(const ml_lfu *l);

/* The largest use count: a count that reaches it stays there (it is never wrapped), so
 * every count is also a non-negative int64. */
#define ML_LFU_MAX_COUNT ((uint64_t)INT64_MAX)

/* @return the use count of entry id. */
uint64_t ml_lfu_count(const ml_lfu *l, uint32_t id);

/* Forgets every bucket (keeps the arrays): the entries then belong to no bucket. */
void ml_lfu_reset(ml_lfu *l);

/* Appends entry id with `count` uses at the end of the highest bucket, creating it if its
 * count is lower; O(1). For rebuilding (unpickling): @pre count >= the highest bucket's. */
void ml_lfu_append(ml_lfu *l, ml_entry *ents, uint32_t id, uint64_t count);

#endif
