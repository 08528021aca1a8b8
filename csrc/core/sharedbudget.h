/* sharedbudget.h — one byte budget shared by several cache engines, and their access clock.
 *
 * A shared budget is a sum and two limits:
 *   bytes     the sum of its member engines' accounted bytes; never above maxbytes;
 *   maxbytes  the configured limit (Budget(max_bytes));
 *   limit     the limit in force, <= maxbytes: a store is admitted only while the sum stays
 *             under it. Lowering it (memory pressure) leaves the sum above it until the
 *             caller has evicted down to it; the sum never passes maxbytes meanwhile.
 * and a clock: a counter that stamps every access (a hit, a store) to an entry of any
 * member engine. Stamps of one budget are all drawn from its one clock, so they order every
 * access to every member: the entry with the smallest stamp is the one accessed longest
 * ago, across the members. The budget never compares stamps with another budget's.
 *
 * Who writes what: bytes enter the sum only through ml_shared_take (a conditional add: it
 * refuses what would pass the limit, so the sum never passes maxbytes, not even between
 * two threads' stores) and leave it through ml_shared_give (the engine gives an entry's
 * bytes back when it removes it: ml_cache_remove, ml_cache_steal, ml_cache_unshare).
 *
 * Threads. Built with ML_SHARED_ATOMIC (the binding defines it on Python's free-threaded
 * build), the sum, the limit and the clock are C11 atomics, read and written with relaxed
 * order: the clock is one fetch-add per access (no lock on a hit), ml_shared_take a
 * compare-and-swap loop. Without it they are plain fields: every caller holds one lock
 * (CPython's GIL), and a hit costs a plain increment.
 */
#ifndef ML_SHAREDBUDGET_H
#define ML_SHAREDBUDGET_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#ifdef ML_SHARED_ATOMIC
#include <stdatomic.h>
typedef _Atomic(size_t) ml_shared_size;
typedef _Atomic(uint64_t) ml_shared_clock;
#define ML_SHARED_LOAD(p) atomic_load_explicit((p), memory_order_relaxed)
#define ML_SHARED_STORE(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#else
typedef size_t ml_shared_size;
typedef uint64_t ml_shared_clock;
#define ML_SHARED_LOAD(p) (*(p))
#define ML_SHARED_STORE(p, v) (*(p) = (v))
#endif

typedef struct ml_shared {
    ml_shared_size bytes;   /* sum of the members' accounted bytes, <= maxbytes */
    ml_shared_size limit;   /* the limit in force, <= maxbytes */
    size_t maxbytes;        /* the configured limit, < SIZE_MAX */
    ml_shared_clock clock;  /* the last stamp given; stamps start at 1 */
} ml_shared;

/* Makes an empty budget of maxbytes (its limit in force too). @pre maxbytes < SIZE_MAX. */
void ml_shared_init(ml_shared *s, size_t maxbytes);

/* @return a stamp greater than every stamp this budget gave before (1, 2, ...). Cannot
 * fail: 2**64 stamps are not reached (at a billion accesses a second, 584 years). */
static inline uint64_t
ml_shared_tick(ml_shared *s)
{
#ifdef ML_SHARED_ATOMIC
    return atomic_fetch_add_explicit(&s->clock, 1u, memory_order_relaxed) + 1u;
#else
    return ++s->clock;
#endif
}

/* @return the sum / the limit in force. */
static inline size_t ml_shared_bytes(const ml_shared *s) { return ML_SHARED_LOAD(&((ml_shared *)s)->bytes); }
static inline size_t ml_shared_limit(const ml_shared *s) { return ML_SHARED_LOAD(&((ml_shared *)s)->limit); }

/* Whether bytes - old + new_bytes stays within limit, computed without overflow: as
 * `new_bytes <= limit - (bytes - old)` when bytes - old <= limit. @pre old <= bytes. */
static inline int
ml_shared_within(size_t bytes, size_t limit, size_t old, size_t new_bytes)
{
    assert(old <= bytes);
    if (new_bytes <= old) {
        return 1;
    }
    size_t rest = bytes - old;
    return rest <= limit && new_bytes <= limit - rest;
}

/* Whether replacing old bytes of the sum by new ones keeps it within the limit in force
 * (a decrease always does). 1 or 0. @pre old <= the sum (they are counted in it). */
static inline int
ml_shared_fits(const ml_shared *s, size_t old, size_t new_bytes)
{
    return ml_shared_within(ml_shared_bytes(s), ml_shared_limit(s), old, new_bytes);
}

/* Replaces old bytes of the sum by new ones if that keeps it within the limit in force
 * (always, for a decrease): 1 done, 0 refused (the sum unchanged). Atomic with respect to
 * every other take and give. @pre old <= the sum. */
static inline int
ml_shared_take(ml_shared *s, size_t old, size_t new_bytes)
{
#ifdef ML_SHARED_ATOMIC
    size_t cur = atomic_load_explicit(&s->bytes, memory_order_relaxed);
    do {
        if (!ml_shared_within(cur, ml_shared_limit(s), old, new_bytes)) {
            return 0;
        }
    } while (!atomic_compare_exchange_weak_explicit(&s->bytes, &cur, cur - old + new_bytes,
                                                    memory_order_relaxed, memory_order_relaxed));
    return 1;
#else
    if (!ml_shared_within(s->bytes, s->limit, old, new_bytes)) {
        return 0;
    }
    s->bytes = s->bytes - old + new_bytes;
    return 1;
#endif
}

/* Removes n bytes from the sum. @pre n <= the sum (they were taken). */
static inline void
ml_shared_give(ml_shared *s, size_t n)
{
#ifdef ML_SHARED_ATOMIC
    size_t before = atomic_fetch_sub_explicit(&s->bytes, n, memory_order_relaxed);
    assert(n <= before);
    (void)before;
#else
    assert(n <= s->bytes);
    s->bytes -= n;
#endif
}

/* Sets the limit in force to min(limit, maxbytes). The sum may now be above it: the caller
 * evicts until it is not (stores meanwhile still never pass the new limit). */
void ml_shared_set_limit(ml_shared *s, size_t limit);

#endif
