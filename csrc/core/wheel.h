/* wheel.h — a hierarchical timer wheel of per-entry deadlines, exact to the last bit.
 *
 * A deadline is a double; the wheel files it by the 64-bit integer that orders doubles as
 * `<` does (the "key"), so it needs no resolution and no unit: seconds, microseconds since
 * an origin and a test's integer clock all work, and expiry is decided exactly.
 *
 * Key digits of 6 bits make 11 levels of 64 slots. The wheel keeps a time `now` (a key)
 * no greater than any deadline it holds; a deadline sits at the level of the highest digit
 * where it differs from `now`, in the slot of its own digit there. Every slot of a lower
 * level holds smaller deadlines than any slot of a higher one, so the smallest deadline is
 * in the lowest occupied slot of the lowest occupied level (one bitmap word per level).
 * Level 0 slots hold equal deadlines, in the order they were set.
 *
 * Asking for the next due entry advances `now` to the start of the lowest occupied slot
 * when that start is due, and spreads that slot's entries over the lower levels (a
 * "cascade"); each entry cascades at most 10 times in its life, so schedule and cancel are
 * O(1) and finding expired entries is amortised O(1) per entry (Caffeine's TimerWheel is
 * the model; here the wheel is in key space, so it never rounds).
 *
 * Deadlines the wheel cannot file go to two exact lists beside it: +inf (never due unless
 * the time is +inf or NaN), kept in set order; and "late" ones — -inf, or below `now`
 * when they were set (a timer that went backwards, or expire(time) ahead of the clock),
 * kept sorted. Late deadlines all come before the wheel's and +inf after them, so
 * ml_wheel_next_due yields every entry in ascending (deadline, set order).
 *
 * Whether an entry is due is `!(time < deadline)`, as cachetools decides it: a NaN time
 * makes everything due. NaN deadlines are not accepted (the caller maps them to -inf).
 */
#ifndef ML_WHEEL_H
#define ML_WHEEL_H

#include <stdint.h>

#include "core/alloc.h"

#define ML_WHEEL_BITS 6
#define ML_WHEEL_SLOTS 64        /* 1 << ML_WHEEL_BITS */
#define ML_WHEEL_LEVELS 11       /* ceil(64 / ML_WHEEL_BITS) */

typedef struct ml_wheel {
    uint64_t now;           /* a key <= every deadline in the wheel proper */
    double *deadline;       /* per id: its deadline (valid while scheduled) */
    uint32_t *prev;         /* per id: circular list links; prev[id] == ML_NIL: unscheduled */
    uint32_t *next;
    uint32_t *slot;         /* LEVELS x SLOTS list heads; allocated by the first reserve */
    uint64_t occupied[ML_WHEEL_LEVELS];   /* bit s of level l: slot (l, s) is not empty */
    uint32_t cap;           /* ids the per-id arrays hold */
    uint32_t count;         /* entries in the wheel proper */
    uint32_t late;          /* head of the sorted late list, or ML_NIL */
    uint32_t never;         /* head of the +inf list, or ML_NIL */
    uint64_t touched;       /* entries filed, moved or unlinked: the expiry-cost counter */
} ml_wheel;

/* Makes an empty wheel; allocates nothing. */
void ml_wheel_init(ml_wheel *w);

/* Frees every array; the wheel is empty and can be reserved again. */
void ml_wheel_free(ml_wheel *w, const ml_alloc *a);

/* Ensures room for ids below cap (new ids are unscheduled). ML_OK or ML_ERR_NOMEM (w
 * unchanged in content, possibly grown). */
int ml_wheel_reserve(ml_wheel *w, const ml_alloc *a, uint32_t cap);

/* Gives id the deadline `when`, re-filing it if it had one (it then counts as set last).
 * @pre when is not NaN, id < cap. */
void ml_wheel_schedule(ml_wheel *w, uint32_t id, double when);

/* Unschedules id if it is scheduled. */
void ml_wheel_cancel(ml_wheel *w, uint32_t id);

/* @return the entry due at `time` (!(time < deadline)) with the smallest deadline, the
 * earliest set among equals; ML_NIL when none is due. It stays scheduled: the caller
 * cancels it (usually by removing the entry) before asking again. */
uint32_t ml_wheel_next_due(ml_wheel *w, double time);

/* @return whether id is scheduled. */
static inline int
ml_wheel_scheduled(const ml_wheel *w, uint32_t id)
{
    return id < w->cap && w->prev[id] != UINT32_MAX;
}

/* Bytes of the arrays the wheel owns. */
size_t ml_wheel_sizeof(const ml_wheel *w);

/* Bytes per id of the per-id arrays. */
#define ML_WHEEL_BYTES_PER_ID (sizeof(double) + 2 * sizeof(uint32_t))

/* Aborts unless every scheduled id is filed where its deadline says and the lists and
 * bitmaps agree. @return the number of scheduled ids. Debug builds only. */
uint32_t ml_wheel_check(const ml_wheel *w);

#endif
