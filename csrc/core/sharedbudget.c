/* sharedbudget.c — the arithmetic of a byte budget shared by several cache engines (see
 * sharedbudget.h for the contract).
 *
 * Layout and where each piece lives
 *
 *   ml_shared (one per memleash.Budget, inside the Budget object)
 *   +-- bytes     sum over the members          <- ml_shared_take / ml_shared_give
 *   +-- limit     the limit in force            <- ml_shared_set_limit (memory pressure)
 *   +-- maxbytes  the configured limit
 *   +-- clock     the last stamp                <- ml_shared_tick (every hit and store)
 *
 *   ml_cache (each member engine, cache.c)
 *   +-- shared    -> the ml_shared above
 *   +-- stamps[]  side array by entry id: the stamp of the entry's last access, allocated
 *                 only while the engine is shared
 *
 * Which entry a budget evicts is decided by the binding (csrc/py/cache_ops.c): each member
 * names its victim by its own policy, and the one with the smallest stamp goes. For
 * members that are all LRU that is an exact global LRU order: an LRU engine's victim is
 * its entry with the smallest stamp, because every access stamps the entry it moves to
 * the recent end (ml_cache_check verifies that stamps rise along an LRU list).
 *
 * Invariant: limit <= maxbytes, and bytes <= maxbytes at every moment. ml_shared_take is
 * the only way up and refuses anything past the limit; the limit only moves within
 * [0, maxbytes]. Sizes are size_t and the comparisons are written so that none wraps:
 * `bytes - old + new <= limit` is evaluated as `new <= limit - (bytes - old)` when
 * bytes - old <= limit, and refused otherwise (the limit was lowered below what stays).
 * The calls on a store's path (fits, take, give, tick) are inline, in the header; this
 * file holds the rest.
 */
#include "core/sharedbudget.h"

#include <assert.h>

void
ml_shared_init(ml_shared *s, size_t maxbytes)
{
    assert(maxbytes < SIZE_MAX);
    ML_SHARED_STORE(&s->bytes, 0u);
    ML_SHARED_STORE(&s->limit, maxbytes);
    s->maxbytes = maxbytes;
    ML_SHARED_STORE(&s->clock, 0u);
}

void
ml_shared_set_limit(ml_shared *s, size_t limit)
{
    ML_SHARED_STORE(&s->limit, limit < s->maxbytes ? limit : s->maxbytes);
}
