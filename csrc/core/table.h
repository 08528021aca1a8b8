/* table.h — a hash index over a slab of entries with stable ids.
 *
 * The table owns two arrays: the slab of entries (hash, key, value, list links), where
 * an entry keeps its id for its whole life, and an open-addressing index of 32-bit slots
 * that map a hash to entry ids. Keys and values are opaque pointers: the table never
 * dereferences, copies or frees them; equality is a callback.
 *
 * Re-entrancy contract: the equality callback may mutate the table (it may run arbitrary
 * Python code). The table carries two counters that never go back during its life:
 * `version`, bumped by every insertion and removal (callers that hold an entry id across
 * any callback re-check it; iterators compare it), and `layout`, bumped whenever the
 * index is rebuilt or replaced. ml_table_find restarts its probe after a callback only
 * when the layout changed or the compared entry changed (as CPython's dict lookup does):
 * insertions and removals elsewhere leave the probe sequence valid. Restarts are bounded
 * (ML_TABLE_MAX_RESTARTS): a callback that changes the compared entry every time gets
 * ML_ERR_CHANGED instead of a probe that never ends.
 *
 * Limits: at most ML_TABLE_MAX_ENTRIES live entries (ids are 32-bit).
 */
#ifndef ML_TABLE_H
#define ML_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/status.h"

#define ML_NIL UINT32_MAX                      /* "no entry" in ids and links */
#define ML_TABLE_MAX_ENTRIES (UINT32_MAX - 3u)

/* Which pair of links of an entry a list threads through (see list.h). */
enum { ML_LINK_ORDER = 0, ML_LINK_POLICY = 1 };

typedef struct ml_entry {
    uint64_t hash;          /* the key's full hash */
    void *key;              /* NULL marks a free entry */
    void *value;
    uint32_t link[2][2];    /* [ML_LINK_*][0 = prev, 1 = next]; a free entry's next is the free list */
} ml_entry;

typedef struct ml_table {
    ml_entry *ents;         /* slab; ids index it */
    uint32_t cap;           /* entries allocated */
    uint32_t top;           /* ids below top have been used at least once */
    uint32_t free_head;     /* free list of ids below top, through link[ML_LINK_ORDER][1] */
    uint32_t used;          /* live entries */
    uint32_t *slots;        /* index: 0 empty, 1 deleted, id + 2 */
    size_t mask;            /* number of slots - 1 (slots == NULL: 0) */
    size_t fill;            /* slots that are not empty (live + deleted) */
    uint64_t version;       /* bumped by every insertion and removal; never goes back */
    uint64_t layout;        /* bumped by every rebuild of the index; never goes back */
    const ml_alloc *alloc;
} ml_table;

/* Equality callback. @return 1 equal, 0 not equal, -1 error (the caller's error state is set). */
typedef int (*ml_eq_fn)(void *ctx, void *stored_key, void *key);

/* Makes t empty; allocates nothing. alloc must outlive t. */
void ml_table_init(ml_table *t, const ml_alloc *alloc);

/* Frees both arrays. Keys and values still in t are not touched: the caller owns them. */
void ml_table_free(ml_table *t);

#define ML_TABLE_MAX_RESTARTS 100

/* Looks key up. Identity is checked first, then the stored hash, and only then eq
 * (which may mutate t: the probe restarts if the index was rebuilt or the compared entry
 * changed during the call). @return ML_OK with *id set, ML_NOT_FOUND, ML_ERR_CALLBACK if
 * eq failed, or ML_ERR_CHANGED after ML_TABLE_MAX_RESTARTS restarts. */
int ml_table_find(ml_table *t, uint64_t hash, const void *key, ml_eq_fn eq, void *ctx,
                  uint32_t *id);

/* Ensures the next ml_table_insert cannot fail (slab and index have room).
 * @return ML_OK, ML_ERR_NOMEM or ML_ERR_FULL; t is unchanged on error (it may only
 * have grown its capacity). */
int ml_table_reserve(ml_table *t);

/* Adds an entry. @pre ml_table_reserve succeeded since the last insertion, key is not in t.
 * Takes ownership of the key and value pointers (the table only stores them).
 * @return the new entry's id; its links are left for the caller to set. */
uint32_t ml_table_insert(ml_table *t, uint64_t hash, void *key, void *value);

/* Removes the live entry id from the index and frees its id. No callback is called.
 * The caller owns the entry's key and value, which it must read before calling this. */
void ml_table_remove(ml_table *t, uint32_t id);

/* Moves all of t into *out and leaves t empty (both counters still increasing). The caller
 * releases the keys and values of *out, then calls ml_table_free(out). */
void ml_table_steal(ml_table *t, ml_table *out);

/* @return the bytes of both arrays. */
size_t ml_table_sizeof(const ml_table *t);

#endif
