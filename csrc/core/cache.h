/* cache.h — the cache engine: a table of entries, an eviction policy and a budget.
 *
 * The engine stores opaque key and value pointers and never calls anything but the
 * equality callback (during look-ups, through ml_table_find on `c->t`). Removal and
 * eviction hand the key and value back to the caller, who releases them once the
 * structure is consistent again: the engine itself never frees a key or value.
 *
 * Entries are iterated in insertion order (the ML_LINK_ORDER list); the policy decides
 * which entry ml_cache_victim names:
 *   ML_POLICY_INSERTION  the first inserted (cachetools.Cache: its first key);
 *   ML_POLICY_LRU        the least recently used (a hit or a replacement refreshes);
 *   ML_POLICY_FIFO       the first inserted (a replacement counts as a new insertion);
 *   ML_POLICY_LFU        the least frequently used, least recent first (lfu.h);
 *   ML_POLICY_RANDOM     none: the caller chooses among c->dense (dense.h), and
 *                        ml_cache_victim returns ML_NIL;
 *   ML_POLICY_TINYLFU    W-TinyLFU: the window's least recent entry or the main region's
 *                        victim, whichever the frequency sketch counts less (tinylfu.h).
 *
 * An engine may share a byte budget with others (sharedbudget.h, ml_cache_share): it then
 * stamps every access to an entry (insert, replace, touch) from the budget's clock, in a
 * side array, and gives an entry's bytes back to the budget when it removes it. Bytes go
 * into the budget through the caller (ml_shared_take), before the insertion it admits.
 */
#ifndef ML_CACHE_H
#define ML_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/budget.h"
#include "core/dense.h"
#include "core/lfu.h"
#include "core/list.h"
#include "core/sharedbudget.h"
#include "core/table.h"
#include "core/tinylfu.h"
#include "core/wheel.h"

typedef enum ml_policy {
    ML_POLICY_INSERTION = 0,
    ML_POLICY_LRU = 1,
    ML_POLICY_FIFO = 2,
    ML_POLICY_LFU = 3,
    ML_POLICY_RANDOM = 4,
    ML_POLICY_TINYLFU = 5
} ml_policy;

#define ML_POLICY_COUNT 6

typedef struct ml_cache {
    ml_table t;         /* entries and index; t.version is bumped by insert/remove */
    ml_list order;      /* insertion order: iteration */
    ml_list policy;     /* LRU: least recent at head; FIFO: oldest at head */
    ml_lfu lfu;         /* LFU only */
    ml_dense dense;     /* RANDOM only */
    ml_tlfu tlfu;       /* TINYLFU only */
    ml_wheel deadlines; /* per-entry deadlines, only once ml_cache_enable_deadlines ran */
    ml_policy kind;
    int64_t *units;     /* per-id integer units, NULL while units are off (each counts 1) */
    double *funits;     /* per-id float units once a float size was stored (NaN: the
                           entry's size is the integer in units[]), else NULL */
    size_t *bytes;      /* per-id bytes, NULL while bytes are off */
    ml_shared *shared;  /* the byte budget shared with other engines, or NULL */
    uint64_t *stamps;   /* per-id stamp of the last access (shared's clock), NULL unless
                           shared */
    uint32_t side_cap;  /* ids the side arrays hold */
    unsigned units_on : 1;
    unsigned bytes_on : 1;
    unsigned deadlines_on : 1;
    ml_budget budget;
} ml_cache;

/* Makes an empty cache; allocates nothing. maxunits >= 0 (may be +inf); maxbytes
 * SIZE_MAX for none. units_on / bytes_on: keep per-entry units / bytes (side arrays). */
void ml_cache_init(ml_cache *c, const ml_alloc *alloc, ml_policy kind, int units_on,
                   int bytes_on, ml_limit maxunits, size_t maxbytes);

/* Exchanges the whole of *c and *other (entries, policy, limits, the shared budget).
 * Afterwards *c's change counters (t.version, t.layout) are past every value either
 * engine had: an iterator or a probe of the engine *c held before sees the change. Used
 * to re-initialise a cache without a moment where it is half-configured: build the new
 * engine, exchange, then release the old one's entries and ml_cache_free(other). */
void ml_cache_exchange(ml_cache *c, ml_cache *other);

/* Frees the engine's memory. Keys and values still inside belong to the caller, who
 * must have released them (see ml_cache_steal). */
void ml_cache_free(ml_cache *c);

/* Makes the next ml_cache_insert unable to fail. @return ML_OK, ML_ERR_NOMEM or
 * ML_ERR_FULL; the cache's content is unchanged either way. */
int ml_cache_reserve_slow(ml_cache *c);

/* ml_cache_reserve: inline when nothing needs to grow (the common store into a full
 * cache: an id freed by the eviction, index room, side arrays as large as the slab) and
 * the policy keeps no array of its own (LRU, FIFO, INSERTION, no deadlines); else the
 * full reserve. Both answer the same. */
static inline int
ml_cache_reserve(ml_cache *c)
{
    const ml_table *t = &c->t;
    if ((c->kind == ML_POLICY_LRU || c->kind == ML_POLICY_FIFO || c->kind == ML_POLICY_INSERTION) &&
        !c->deadlines_on && t->used < ML_TABLE_MAX_ENTRIES &&
        (t->free_head != ML_NIL || t->top < t->cap) && t->slots != NULL &&
        3u * (t->fill + 1u) <= 2u * (t->mask + 1u) && c->side_cap >= t->cap) {
        return ML_OK;
    }
    return ml_cache_reserve_slow(c);
}

/* Makes room for float sizes (funits), before the first one is stored by insert or
 * replace. @return ML_OK or ML_ERR_NOMEM (unchanged). @pre units are on. */
int ml_cache_reserve_float(ml_cache *c);

/* Makes the engine share s (bytes on): its entries' bytes count in s, their accesses are
 * stamped from s's clock. Entries already in it are stamped now, in its policy's order
 * (the victim oldest); their bytes must then be taken from s by the caller, at once, before
 * anything else runs (ml_shared_take(s, 0, c->budget.bytes)). @pre the engine shares no
 * budget, bytes are on. @return ML_OK or ML_ERR_NOMEM (unchanged). */
int ml_cache_share(ml_cache *c, ml_shared *s);

/* Stops sharing: the entries' bytes go back to the budget, the stamps are dropped; the
 * entries stay. No-op for an engine that shares nothing. */
void ml_cache_unshare(ml_cache *c);

/* Stops sharing without giving the entries' bytes back: the caller has already accounted
 * for them in the budget (replaced them by another engine's, or never taken them). */
void ml_cache_detach_shared(ml_cache *c);

/* Inserts a new entry at the tail of both lists and adds its counts to the budget.
 * @pre ml_cache_reserve succeeded, key is absent; a shared engine's caller has taken the
 * entry's bytes from the shared budget (ml_shared_take). Takes ownership of key and value.
 * Does not evict: the caller makes room first (ml_cache_fits / ml_cache_victim). */
uint32_t ml_cache_insert(ml_cache *c, uint64_t hash, void *key, void *value, ml_size units,
                         size_t bytes);

/* Gives live entry id a new value and counts; LRU and FIFO move it to the recent end, LFU
 * and TINYLFU count a use (each as cachetools' __setitem__ on an existing key).
 * @pre a float size was reserved (ml_cache_reserve_float); the counts fit (ml_cache_fits
 * did not answer ML_FIT_OVERFLOW); a shared engine's caller has replaced the entry's old
 * bytes by the new ones in the shared budget (ml_shared_take). @return the old value,
 * which the caller now owns. */
void *ml_cache_replace(ml_cache *c, uint32_t id, void *value, ml_size units, size_t bytes);

/* Removes live entry id; *key and *value receive its pointers, which the caller owns. A
 * shared engine gives the entry's bytes back to its budget. */
void ml_cache_remove(ml_cache *c, uint32_t id, void **key, void **value);

/* Records a use of live entry id (a hit): LRU moves it to the recent end, LFU counts it,
 * TINYLFU counts it and moves it within or between its regions; a shared engine stamps it. */
static inline void
ml_cache_touch(ml_cache *c, uint32_t id)
{
    if (c->stamps != NULL) {
        c->stamps[id] = ml_shared_tick(c->shared);
    }
    if (c->kind == ML_POLICY_LRU) {
        ml_list_move_back(&c->policy, c->t.ents, ML_LINK_POLICY, id);
    }
    else if (c->kind == ML_POLICY_LFU) {
        ml_lfu_touch(&c->lfu, c->t.ents, id);
    }
    else if (c->kind == ML_POLICY_TINYLFU) {
        ml_tlfu_touch(&c->tlfu, c->t.ents, id);
    }
}

/* A hint before a look-up of hash whose hit will be touched: TINYLFU fetches the
 * sketch's block while the look-up runs. Changes nothing. */
static inline void
ml_cache_prefetch(const ml_cache *c, uint64_t hash)
{
    if (c->kind == ML_POLICY_TINYLFU) {
        ml_sketch_prefetch(&c->tlfu.sketch, hash);
    }
}

/* @return the id the policy evicts next, or ML_NIL when the cache is empty (always for
 * ML_POLICY_RANDOM, whose caller chooses). */
static inline uint32_t
ml_cache_victim(const ml_cache *c)
{
    switch (c->kind) {
    case ML_POLICY_LRU:
    case ML_POLICY_FIFO:
        return c->policy.head;
    case ML_POLICY_LFU:
        return ml_lfu_victim(&c->lfu);
    case ML_POLICY_TINYLFU:
        return ml_tlfu_victim(&c->tlfu, c->t.ents);
    case ML_POLICY_RANDOM:
        return ML_NIL;
    case ML_POLICY_INSERTION:
    default:
        return c->order.head;
    }
}

/* @return the stamp of live entry id's last access. @pre the engine is shared. */
static inline uint64_t
ml_cache_stamp(const ml_cache *c, uint32_t id)
{
    return c->stamps[id];
}

/* Turns per-entry deadlines on. @pre the cache is empty. Every entry then has a deadline,
 * set by ml_cache_set_deadline right after it is inserted. */
void ml_cache_enable_deadlines(ml_cache *c);

/* Sets the deadline of live entry id (not NaN; +inf: never). */
void ml_cache_set_deadline(ml_cache *c, uint32_t id, double when);

/* @return the deadline of live entry id. @pre deadlines are on. */
static inline double
ml_cache_deadline(const ml_cache *c, uint32_t id)
{
    return c->deadlines.deadline[id];
}

/* @return the entry expired at `time` (!(time < deadline)) with the earliest deadline
 * (the earliest set among equals), or ML_NIL. Amortised O(1) (wheel.h). The entry stays
 * in the cache: the caller removes it before asking again. @pre deadlines are on. */
static inline uint32_t
ml_cache_next_expired(ml_cache *c, double time)
{
    return ml_wheel_next_due(&c->deadlines, time);
}

/* Calls fn(arg, id) for every live entry in the policy's order, its victim first: the
 * recency or arrival list (LRU, FIFO), the frequency buckets from the lowest (LFU), the
 * RR key array (RANDOM), the window, probation and protected regions (TINYLFU), insertion
 * order (INSERTION). fn must not change the engine. */
void ml_cache_walk_policy(const ml_cache *c, void (*fn)(void *arg, uint32_t id), void *arg);

/* @return the units / bytes entry id is accounted for. */
ml_size ml_cache_units_of(const ml_cache *c, uint32_t id);
size_t ml_cache_bytes_of(const ml_cache *c, uint32_t id);

/* Whether storing an entry of (units, bytes) in place of entry id (ML_NIL for a new key)
 * keeps the budget: ML_FIT_YES, ML_FIT_NO or ML_FIT_OVERFLOW (budget.h; a new key's
 * common case is answered inline there). */
static inline int
ml_cache_fits(const ml_cache *c, uint32_t id, ml_size units, size_t bytes)
{
    if (id == ML_NIL) {
        return ml_budget_fits_new(&c->budget, units, bytes);
    }
    return ml_budget_fits(&c->budget, ml_cache_units_of(c, id), ml_cache_bytes_of(c, id), units,
                          bytes);
}

/* @return the first id in insertion order / the one after id, or ML_NIL. */
static inline uint32_t ml_cache_first(const ml_cache *c) { return c->order.head; }
static inline uint32_t
ml_cache_next(const ml_cache *c, uint32_t id)
{
    return c->t.ents[id].link[ML_LINK_ORDER][1];
}

/* Empties the cache in O(1): its entries move to *out (the caller releases each live
 * entry's key and value in *out, then calls ml_table_free(out)); counts drop to zero, and
 * a shared engine gives their bytes back to its budget (it stays shared, empty). */
void ml_cache_steal(ml_cache *c, ml_table *out);

/* @return the bytes the engine owns (slab, index, side arrays). */
size_t ml_cache_sizeof(const ml_cache *c);

/* @return the bytes one entry costs the engine at a typical load: its slab entry, side
 * array cells and index share. Used by the binding's default byte accounting. */
size_t ml_cache_entry_overhead(const ml_cache *c);

/* Checks every invariant (lists, counts, index); aborts on a violation. Compiled only
 * when NDEBUG is off; call it after any mutation in debug builds. */
#ifndef NDEBUG
void ml_cache_check(const ml_cache *c);
#define ML_CACHE_CHECK(c) ml_cache_check(c)
#else
#define ML_CACHE_CHECK(c) ((void)0)
#endif

#endif
