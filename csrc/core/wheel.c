/* wheel.c — hierarchical timer wheel in key space (see wheel.h).
 *
 *   key(d)     the 64 bits of d, sign bit flipped for d >= 0 and all bits flipped for d < 0:
 *              a < b  <=>  key(a) < key(b) for every non-NaN a, b (-0.0 is taken as +0.0)
 *   level(k)   the 6-bit digit of the highest bit where k and `now` differ (0 when equal)
 *   slot(k)    k's own digit at that level
 *
 *   level 10  [ 0 .. 15 ]     each slot: a circular list of ids, oldest first
 *   ...
 *   level 0   [ 0 .. 63 ]     all ids in one level-0 slot have the same deadline
 *
 * Invariant: every id in the wheel proper sits at (level(k), slot(k)) for the current
 * `now`, so cancel recomputes where an id is instead of storing it. Moving `now` to the
 * start of the lowest occupied slot keeps every other id where it is: it agrees with the
 * old `now` on the digits above that level, and the slot's own ids move strictly down,
 * into levels that are all empty, in their list order — so set order survives cascades.
 */
#include "core/wheel.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "core/table.h"

#define SLOT_MASK ((uint64_t)ML_WHEEL_SLOTS - 1)
#define HEADS ((uint32_t)ML_WHEEL_LEVELS * ML_WHEEL_SLOTS)

static inline uint64_t
key_of(double d)
{
    if (d == 0.0) {
        d = 0.0;   /* -0.0 == 0.0: one key for both */
    }
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return (u >> 63) ? ~u : (u | ((uint64_t)1 << 63));
}

static inline unsigned
level_of(uint64_t k, uint64_t now)
{
    uint64_t diff = k ^ now;
    return diff ? (unsigned)(63 - __builtin_clzll(diff)) / ML_WHEEL_BITS : 0;
}

static inline uint32_t *
head_of(ml_wheel *w, unsigned level, uint64_t k)
{
    return &w->slot[level * ML_WHEEL_SLOTS + (unsigned)((k >> (level * ML_WHEEL_BITS)) & SLOT_MASK)];
}

/* Circular doubly linked lists over prev/next; *head is the oldest. */
static void
push_back(ml_wheel *w, uint32_t *head, uint32_t id)
{
    if (*head == ML_NIL) {
        w->prev[id] = w->next[id] = id;
        *head = id;
        return;
    }
    uint32_t first = *head, last = w->prev[first];
    w->prev[id] = last;
    w->next[id] = first;
    w->next[last] = id;
    w->prev[first] = id;
}

static void
unlink_from(ml_wheel *w, uint32_t *head, uint32_t id)
{
    uint32_t p = w->prev[id], n = w->next[id];
    if (n == id) {
        *head = ML_NIL;
    }
    else {
        w->next[p] = n;
        w->prev[n] = p;
        if (*head == id) {
            *head = n;
        }
    }
    w->prev[id] = ML_NIL;
}

/* Files id (its deadline key k >= now) in the wheel proper. */
static void
file_in_wheel(ml_wheel *w, uint32_t id, uint64_t k)
{
    unsigned level = level_of(k, w->now);
    push_back(w, head_of(w, level, k), id);
    w->occupied[level] |= (uint64_t)1 << ((k >> (level * ML_WHEEL_BITS)) & SLOT_MASK);
    w->count++;
}

/* Inserts id into the late list after every deadline <= its own (scanning from the
 * newest end, where a clock that went back and then forward again adds). */
static void
file_late(ml_wheel *w, uint32_t id)
{
    double d = w->deadline[id];
    if (w->late == ML_NIL) {
        push_back(w, &w->late, id);
        return;
    }
    uint32_t first = w->late, after = w->prev[first];
    while (d < w->deadline[after]) {
        w->touched++;
        if (after == first) {
            push_back(w, &w->late, id);   /* smallest: becomes the head */
            w->late = id;
            return;
        }
        after = w->prev[after];
    }
    uint32_t before = w->next[after];
    w->prev[id] = after;
    w->next[id] = before;
    w->next[after] = id;
    w->prev[before] = id;
}

void
ml_wheel_init(ml_wheel *w)
{
    memset(w, 0, sizeof(*w));
    w->now = UINT64_MAX;   /* no clock seen yet: the first schedule sets it (see there) */
    w->late = w->never = ML_NIL;
}

void
ml_wheel_free(ml_wheel *w, const ml_alloc *a)
{
    a->free(a->ctx, w->deadline);
    a->free(a->ctx, w->prev);
    a->free(a->ctx, w->next);
    a->free(a->ctx, w->slot);
    ml_wheel_init(w);
}

int
ml_wheel_reserve(ml_wheel *w, const ml_alloc *a, uint32_t cap)
{
    if (w->slot == NULL) {
        uint32_t *heads = a->malloc(a->ctx, HEADS * sizeof(uint32_t));
        if (heads == NULL) {
            return ML_ERR_NOMEM;
        }
        for (uint32_t i = 0; i < HEADS; i++) {
            heads[i] = ML_NIL;
        }
        w->slot = heads;
    }
    if (cap <= w->cap) {
        return ML_OK;
    }
    if (ml_grow(a, (void **)&w->deadline, sizeof(double), cap) != ML_OK ||
        ml_grow(a, (void **)&w->prev, sizeof(uint32_t), cap) != ML_OK ||
        ml_grow(a, (void **)&w->next, sizeof(uint32_t), cap) != ML_OK) {
        return ML_ERR_NOMEM;   /* whatever grew is valid; cap is still the old one */
    }
    for (uint32_t i = w->cap; i < cap; i++) {
        w->prev[i] = ML_NIL;
    }
    w->cap = cap;
    return ML_OK;
}

void
ml_wheel_schedule(ml_wheel *w, uint32_t id, double when)
{
    assert(id < w->cap && w->slot != NULL && !isnan(when));
    ml_wheel_cancel(w, id);
    w->deadline[id] = when;
    w->touched++;
    if (when == INFINITY) {
        push_back(w, &w->never, id);
        return;
    }
    uint64_t k = key_of(when);
    if (when != -INFINITY && w->count == 0 && w->late == ML_NIL) {
        /* nothing else is filed: `now` may go back. With no clock seen yet (next_due
         * never ran), to the bottom of key space: were this deadline the base, every
         * earlier one filed after it would count as late (a sorted insertion each) */
        w->now = w->now == UINT64_MAX ? 0 : (k < w->now ? k : w->now);
    }
    if (when == -INFINITY || k < w->now) {
        file_late(w, id);
        return;
    }
    file_in_wheel(w, id, k);
}

void
ml_wheel_cancel(ml_wheel *w, uint32_t id)
{
    if (!ml_wheel_scheduled(w, id)) {
        return;
    }
    w->touched++;
    double d = w->deadline[id];
    if (d == INFINITY) {
        unlink_from(w, &w->never, id);
        return;
    }
    uint64_t k = key_of(d);
    if (d == -INFINITY || k < w->now) {
        unlink_from(w, &w->late, id);
        return;
    }
    unsigned level = level_of(k, w->now);
    uint32_t *head = head_of(w, level, k);
    unlink_from(w, head, id);
    if (*head == ML_NIL) {
        w->occupied[level] &= ~((uint64_t)1 << ((k >> (level * ML_WHEEL_BITS)) & SLOT_MASK));
    }
    w->count--;
}

uint32_t
ml_wheel_next_due(ml_wheel *w, double time)
{
    /* !(time < d) for every d when time is NaN: as if time were above +inf */
    uint64_t t = isnan(time) ? UINT64_MAX : key_of(time);
    if (w->late != ML_NIL) {
        /* late deadlines are below `now`, so below everything in the wheel */
        return key_of(w->deadline[w->late]) <= t ? w->late : ML_NIL;
    }
    if (w->count == 0) {
        if (isfinite(time)) {
            w->now = t;   /* nothing filed below: follow the clock, so new deadlines land low */
        }
    }
    while (w->count) {
        unsigned level = 0;
        while (w->occupied[level] == 0) {
            level++;
        }
        unsigned s = (unsigned)__builtin_ctzll(w->occupied[level]);
        unsigned shift = level * ML_WHEEL_BITS;
        uint64_t start = ((uint64_t)s << shift);
        if (level + 1 < ML_WHEEL_LEVELS) {
            start |= w->now & ~(((uint64_t)1 << (shift + ML_WHEEL_BITS)) - 1);
        }
        if (start > t) {
            return ML_NIL;   /* every deadline in the wheel is >= start */
        }
        uint32_t *head = &w->slot[level * ML_WHEEL_SLOTS + s];
        if (level == 0) {
            return *head;    /* its deadline's key is `start` itself */
        }
        /* cascade: detach the slot, advance `now` as far as allowed — to its smallest
         * deadline, or to `time` if that is less (deadlines set later are still mostly
         * above `now` then) — and file its ids lower */
        uint32_t id = *head, last = w->prev[id];
        uint64_t least = UINT64_MAX;
        for (uint32_t i = id;; i = w->next[i]) {
            uint64_t k = key_of(w->deadline[i]);
            least = k < least ? k : least;
            w->touched++;
            if (i == last) {
                break;
            }
        }
        *head = ML_NIL;
        w->occupied[level] &= ~((uint64_t)1 << s);
        w->now = least < t ? least : t;   /* >= start: start <= t and start <= least */
        for (;;) {
            uint32_t following = w->next[id];
            w->count--;
            w->touched++;
            file_in_wheel(w, id, key_of(w->deadline[id]));
            if (id == last) {
                break;
            }
            id = following;
        }
    }
    if (w->never != ML_NIL && t >= key_of(INFINITY)) {
        return w->never;
    }
    return ML_NIL;
}

size_t
ml_wheel_sizeof(const ml_wheel *w)
{
    return (size_t)w->cap * ML_WHEEL_BYTES_PER_ID + (w->slot ? HEADS * sizeof(uint32_t) : 0);
}

#ifndef NDEBUG
static uint32_t
check_list(const ml_wheel *w, uint32_t head)
{
    if (head == ML_NIL) {
        return 0;
    }
    uint32_t n = 0, id = head;
    do {
        if (id >= w->cap || w->next[w->prev[id]] != id || w->prev[w->next[id]] != id) {
            abort();
        }
        n++;
        id = w->next[id];
    } while (id != head);
    return n;
}

uint32_t
ml_wheel_check(const ml_wheel *w)
{
    uint32_t n = 0, in_wheel = 0;
    if (w->slot != NULL) {
        for (unsigned level = 0; level < ML_WHEEL_LEVELS; level++) {
            for (unsigned s = 0; s < ML_WHEEL_SLOTS; s++) {
                uint32_t head = w->slot[level * ML_WHEEL_SLOTS + s];
                uint32_t len = check_list(w, head);
                if ((len != 0) != ((w->occupied[level] >> s) & 1)) {
                    abort();
                }
                uint32_t id = head;
                for (uint32_t i = 0; i < len; i++, id = w->next[id]) {
                    uint64_t k = key_of(w->deadline[id]);
                    if (!isfinite(w->deadline[id]) || k < w->now || level_of(k, w->now) != level ||
                        ((k >> (level * ML_WHEEL_BITS)) & SLOT_MASK) != s) {
                        abort();
                    }
                }
                in_wheel += len;
            }
        }
    }
    if (in_wheel != w->count) {
        abort();
    }
    n += in_wheel;
    uint32_t len = check_list(w, w->late), id = w->late;
    for (uint32_t i = 0; i < len; i++, id = w->next[id]) {
        double d = w->deadline[id];
        if (!(d == -INFINITY || (d != INFINITY && key_of(d) < w->now)) ||
            (i > 0 && d < w->deadline[w->prev[id]])) {
            abort();
        }
    }
    n += len;
    len = check_list(w, w->never);
    id = w->never;
    for (uint32_t i = 0; i < len; i++, id = w->next[id]) {
        if (w->deadline[id] != INFINITY) {
            abort();
        }
    }
    n += len;
    uint32_t scheduled = 0;
    for (uint32_t i = 0; i < w->cap; i++) {
        scheduled += w->prev[i] != ML_NIL;
    }
    if (scheduled != n) {
        abort();
    }
    return n;
}
#endif
