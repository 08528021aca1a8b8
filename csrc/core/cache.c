/* cache.c — the cache engine: table + policy lists + budget (see cache.h).
 *
 * Data layout
 *
 *   ml_cache
 *   +-- t        slab of ml_entry (hash, key, value, 2 x (prev, next)) + index (table.c)
 *   +-- order    list through link[ML_LINK_ORDER]: insertion order, for iteration
 *   +-- policy   list through link[ML_LINK_POLICY]: recency (LRU) or arrival (FIFO)
 *   +-- lfu      frequency buckets, threading link[ML_LINK_POLICY] (LFU, lfu.c)
 *   +-- dense    packed live ids for random choice (RANDOM, dense.c)
 *   +-- tlfu     window / probation / protected lists threading link[ML_LINK_POLICY],
 *                region byte per id, frequency sketch, climber (TINYLFU, tinylfu.c)
 *   +-- deadlines  timer wheel of per-entry deadlines (TTL / TLRU, wheel.c)
 *   +-- units[]  side array by id, only when a getsizeof is in use (int64; funits[]
 *                beside it, doubles, once a float size was stored)
 *   +-- bytes[]  side array by id, only when bytes are accounted (max_bytes / sizeof)
 *   +-- stamps[] side array by id, only while the engine shares a byte budget with other
 *                engines (`shared`, sharedbudget.c): the stamp of each entry's last access
 *   +-- budget   sums and limits (budget.c)
 *
 * An entry is 40 bytes; a count-bounded LRU entry costs 40 bytes of slab plus 6 to 12
 * bytes of index, and the side arrays add 8 bytes each only when their feature is on.
 *
 * Operations (all O(1), amortised over slab and index growth):
 *   find      ml_table_find on c->t (the only call that runs a callback)
 *   hit       ml_cache_touch: one list move for LRU, nothing otherwise (and a stamp
 *             from the shared budget's clock when shared)
 *   insert    ml_cache_reserve, then ml_cache_insert (cannot fail after the reserve)
 *   evict     ml_cache_victim names the entry, ml_cache_remove takes it out
 *   clear     ml_cache_steal: the whole table moves out in one step
 *
 * Invariants (ml_cache_check): both lists hold exactly the live entries, each once, with
 * consistent back links; the budget's sums equal the sums over live entries (exactly in
 * integer mode, within rounding in float mode); an empty cache has zero counts; a shared
 * engine's stamps are all from its budget's clock, and rise along an LRU list.
 */
#include "core/cache.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void
ml_cache_init(ml_cache *c, const ml_alloc *alloc, ml_policy kind, int units_on, int bytes_on,
              ml_limit maxunits, size_t maxbytes)
{
    memset(c, 0, sizeof(*c));
    ml_table_init(&c->t, alloc);
    c->order = ML_LIST_EMPTY;
    c->policy = ML_LIST_EMPTY;
    ml_lfu_init(&c->lfu);
    ml_dense_init(&c->dense);
    ml_tlfu_init(&c->tlfu, ML_SKETCH_SEED);
    ml_wheel_init(&c->deadlines);
    c->kind = kind;
    c->units_on = units_on != 0;
    c->bytes_on = bytes_on != 0;
    ml_budget_init(&c->budget, maxunits, maxbytes);
}

static void
side_free(ml_cache *c)
{
    const ml_alloc *a = c->t.alloc;
    a->free(a->ctx, c->units);
    a->free(a->ctx, c->funits);
    a->free(a->ctx, c->bytes);
    a->free(a->ctx, c->stamps);
    c->units = NULL;
    c->funits = NULL;
    c->bytes = NULL;
    c->stamps = NULL;
    c->side_cap = 0;
}

/* Whether the policy threads the plain policy list. */
static inline int
uses_policy_list(const ml_cache *c)
{
    return c->kind == ML_POLICY_LRU || c->kind == ML_POLICY_FIFO;
}

void
ml_cache_free(ml_cache *c)
{
    side_free(c);
    ml_lfu_free(&c->lfu, c->t.alloc);
    ml_dense_free(&c->dense, c->t.alloc);
    ml_tlfu_free(&c->tlfu, c->t.alloc);
    ml_wheel_free(&c->deadlines, c->t.alloc);
    ml_table_free(&c->t);
    c->order = ML_LIST_EMPTY;
    c->policy = ML_LIST_EMPTY;
}

int
ml_cache_reserve_slow(ml_cache *c)
{
    int st = ml_table_reserve(&c->t);
    if (st != ML_OK) {
        return st;
    }
    uint32_t need = c->t.cap;
    if (need > c->side_cap) {
        if (c->units_on && ml_grow(c->t.alloc, (void **)&c->units, sizeof(int64_t), need) != ML_OK) {
            return ML_ERR_NOMEM;
        }
        if (c->funits != NULL) {
            if (ml_grow(c->t.alloc, (void **)&c->funits, sizeof(double), need) != ML_OK) {
                return ML_ERR_NOMEM;
            }
            for (uint32_t i = c->side_cap; i < need; i++) {
                c->funits[i] = NAN;
            }
        }
        if (c->bytes_on && ml_grow(c->t.alloc, (void **)&c->bytes, sizeof(size_t), need) != ML_OK) {
            return ML_ERR_NOMEM;   /* units may have grown: harmless, side_cap still old */
        }
        if (c->shared != NULL &&
            ml_grow(c->t.alloc, (void **)&c->stamps, sizeof(uint64_t), need) != ML_OK) {
            return ML_ERR_NOMEM;
        }
        c->side_cap = need;
    }
    if (c->kind == ML_POLICY_LFU && ml_lfu_reserve(&c->lfu, c->t.alloc, need) != ML_OK) {
        return ML_ERR_NOMEM;
    }
    if (c->kind == ML_POLICY_RANDOM && ml_dense_reserve(&c->dense, c->t.alloc, need) != ML_OK) {
        return ML_ERR_NOMEM;
    }
    if (c->kind == ML_POLICY_TINYLFU &&
        ml_tlfu_reserve(&c->tlfu, c->t.alloc, need, c->t.used + 1u, c->t.ents, c->t.top) != ML_OK) {
        return ML_ERR_NOMEM;
    }
    if (c->deadlines_on && ml_wheel_reserve(&c->deadlines, c->t.alloc, need) != ML_OK) {
        return ML_ERR_NOMEM;
    }
    return ML_OK;
}

int
ml_cache_reserve_float(ml_cache *c)
{
    assert(c->units_on);
    if (c->funits != NULL) {
        return ML_OK;
    }
    size_t n = c->side_cap ? c->side_cap : 1u;   /* the next reserve grows it with the rest */
    double *f = c->t.alloc->malloc(c->t.alloc->ctx, n * sizeof(double));
    if (f == NULL) {
        return ML_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        f[i] = NAN;
    }
    c->funits = f;
    return ML_OK;
}

void
ml_cache_walk_policy(const ml_cache *c, void (*fn)(void *arg, uint32_t id), void *arg)
{
    const ml_entry *ents = c->t.ents;
    switch (c->kind) {
    case ML_POLICY_LRU:
    case ML_POLICY_FIFO:
        for (uint32_t id = c->policy.head; id != ML_NIL; id = ents[id].link[ML_LINK_POLICY][1]) {
            fn(arg, id);
        }
        break;
    case ML_POLICY_LFU:
        for (uint32_t b = c->lfu.first; b != ML_NIL; b = c->lfu.b[b].next) {
            for (uint32_t id = c->lfu.b[b].keys.head; id != ML_NIL;
                 id = ents[id].link[ML_LINK_POLICY][1]) {
                fn(arg, id);
            }
        }
        break;
    case ML_POLICY_RANDOM:
        for (uint32_t i = 0; i < c->dense.n; i++) {
            fn(arg, c->dense.ids[i]);
        }
        break;
    case ML_POLICY_TINYLFU:   /* the regions in turn: window, probation, protected */
        for (unsigned r = 0; r < ML_TLFU_REGIONS; r++) {
            for (uint32_t id = c->tlfu.region[r].head; id != ML_NIL;
                 id = ents[id].link[ML_LINK_POLICY][1]) {
                fn(arg, id);
            }
        }
        break;
    case ML_POLICY_INSERTION:
    default:
        for (uint32_t id = c->order.head; id != ML_NIL; id = ents[id].link[ML_LINK_ORDER][1]) {
            fn(arg, id);
        }
        break;
    }
}

static void
stamp_now(void *arg, uint32_t id)
{
    ml_cache *c = arg;
    c->stamps[id] = ml_shared_tick(c->shared);
}

int
ml_cache_share(ml_cache *c, ml_shared *s)
{
    assert(c->shared == NULL && c->bytes_on);
    if (c->side_cap > 0) {
        uint64_t *st = c->t.alloc->malloc(c->t.alloc->ctx, (size_t)c->side_cap * sizeof(uint64_t));
        if (st == NULL) {
            return ML_ERR_NOMEM;
        }
        c->stamps = st;
    }
    c->shared = s;
    if (c->t.used > 0) {
        ml_cache_walk_policy(c, stamp_now, c);
    }
    return ML_OK;
}

void
ml_cache_unshare(ml_cache *c)
{
    if (c->shared == NULL) {
        return;
    }
    ml_shared_give(c->shared, c->budget.bytes);
    ml_cache_detach_shared(c);
}

void
ml_cache_detach_shared(ml_cache *c)
{
    if (c->shared == NULL) {
        return;
    }
    c->t.alloc->free(c->t.alloc->ctx, c->stamps);
    c->stamps = NULL;
    c->shared = NULL;
}

/* Records entry id's units in the side arrays. */
static void
set_units(ml_cache *c, uint32_t id, ml_size units)
{
    if (units.is_float) {
        assert(c->funits != NULL);
        c->units[id] = 0;
        c->funits[id] = units.f;
    }
    else {
        c->units[id] = units.i;
        if (c->funits != NULL) {
            c->funits[id] = NAN;
        }
    }
}

uint32_t
ml_cache_insert(ml_cache *c, uint64_t hash, void *key, void *value, ml_size units, size_t bytes)
{
    uint32_t id = ml_table_insert(&c->t, hash, key, value);
    assert(id < c->side_cap || (!c->units_on && !c->bytes_on));
    if (c->units_on) {
        set_units(c, id, units);
    }
    if (c->bytes_on) {
        c->bytes[id] = bytes;
    }
    if (c->stamps != NULL) {
        c->stamps[id] = ml_shared_tick(c->shared);
    }
    ml_list_push_back(&c->order, c->t.ents, ML_LINK_ORDER, id);
    if (uses_policy_list(c)) {
        ml_list_push_back(&c->policy, c->t.ents, ML_LINK_POLICY, id);
    }
    else if (c->kind == ML_POLICY_LFU) {
        ml_lfu_insert(&c->lfu, c->t.ents, id);
    }
    else if (c->kind == ML_POLICY_RANDOM) {
        ml_dense_add(&c->dense, id);
    }
    else if (c->kind == ML_POLICY_TINYLFU) {
        ml_tlfu_insert(&c->tlfu, c->t.ents, id);
    }
    ml_budget_add(&c->budget, c->units_on ? units : ml_size_int(1), c->bytes_on ? bytes : 0);
    return id;
}

ml_size
ml_cache_units_of(const ml_cache *c, uint32_t id)
{
    if (!c->units_on) {
        return ml_size_int(1);
    }
    if (c->funits != NULL && !isnan(c->funits[id])) {
        return ml_size_float(c->funits[id]);
    }
    return ml_size_int(c->units[id]);
}

size_t
ml_cache_bytes_of(const ml_cache *c, uint32_t id)
{
    return c->bytes_on ? c->bytes[id] : 0;
}

void *
ml_cache_replace(ml_cache *c, uint32_t id, void *value, ml_size units, size_t bytes)
{
    ml_entry *e = &c->t.ents[id];
    void *old = e->value;
    e->value = value;
    ml_size old_units = ml_cache_units_of(c, id);
    size_t old_bytes = ml_cache_bytes_of(c, id);
    if (c->units_on) {
        set_units(c, id, units);
    }
    if (c->bytes_on) {
        c->bytes[id] = bytes;
    }
    ml_budget_replace(&c->budget, old_units, old_bytes, ml_cache_units_of(c, id),
                      ml_cache_bytes_of(c, id));
    if (c->stamps != NULL) {
        c->stamps[id] = ml_shared_tick(c->shared);
    }
    if (uses_policy_list(c)) {
        ml_list_move_back(&c->policy, c->t.ents, ML_LINK_POLICY, id);
    }
    else if (c->kind == ML_POLICY_LFU) {
        ml_lfu_touch(&c->lfu, c->t.ents, id);
    }
    else if (c->kind == ML_POLICY_TINYLFU) {
        ml_tlfu_touch(&c->tlfu, c->t.ents, id);
    }
    return old;
}

void
ml_cache_remove(ml_cache *c, uint32_t id, void **key, void **value)
{
    ml_entry *e = &c->t.ents[id];
    *key = e->key;
    *value = e->value;
    if (c->shared != NULL) {
        ml_shared_give(c->shared, ml_cache_bytes_of(c, id));
    }
    ml_budget_sub(&c->budget, ml_cache_units_of(c, id), ml_cache_bytes_of(c, id));
    ml_list_unlink(&c->order, c->t.ents, ML_LINK_ORDER, id);
    if (uses_policy_list(c)) {
        ml_list_unlink(&c->policy, c->t.ents, ML_LINK_POLICY, id);
    }
    else if (c->kind == ML_POLICY_LFU) {
        ml_lfu_remove(&c->lfu, c->t.ents, id);
    }
    else if (c->kind == ML_POLICY_RANDOM) {
        ml_dense_remove(&c->dense, id);
    }
    else if (c->kind == ML_POLICY_TINYLFU) {
        ml_tlfu_remove(&c->tlfu, c->t.ents, id);
    }
    if (c->deadlines_on) {
        ml_wheel_cancel(&c->deadlines, id);
    }
    ml_table_remove(&c->t, id);
    if (c->t.used == 0) {
        c->budget.units = 0;
        c->budget.funits = 0.0;   /* no rounding residue survives an empty cache */
    }
}

void
ml_cache_enable_deadlines(ml_cache *c)
{
    assert(c->t.used == 0);
    c->deadlines_on = 1;
}

void
ml_cache_set_deadline(ml_cache *c, uint32_t id, double when)
{
    assert(c->deadlines_on && !isnan(when));
    ml_wheel_schedule(&c->deadlines, id, when);
}

void
ml_cache_steal(ml_cache *c, ml_table *out)
{
    if (c->shared != NULL) {
        ml_shared_give(c->shared, c->budget.bytes);
    }
    ml_table_steal(&c->t, out);
    side_free(c);
    ml_lfu_free(&c->lfu, c->t.alloc);
    ml_dense_free(&c->dense, c->t.alloc);
    ml_tlfu_free(&c->tlfu, c->t.alloc);   /* clear() forgets the history too */
    ml_wheel_free(&c->deadlines, c->t.alloc);
    c->order = ML_LIST_EMPTY;
    c->policy = ML_LIST_EMPTY;
    ml_budget_reset(&c->budget);
}

void
ml_cache_exchange(ml_cache *c, ml_cache *other)
{
    ml_cache held = *c;
    *c = *other;
    *other = held;
    c->t.version = held.t.version + c->t.version + 1u;
    c->t.layout = held.t.layout + c->t.layout + 1u;
}

size_t
ml_cache_sizeof(const ml_cache *c)
{
    size_t n = ml_table_sizeof(&c->t);
    if (c->units != NULL) {
        n += (size_t)c->side_cap * sizeof(int64_t);
    }
    if (c->funits != NULL) {
        n += (size_t)c->side_cap * sizeof(double);
    }
    if (c->bytes != NULL) {
        n += (size_t)c->side_cap * sizeof(size_t);
    }
    if (c->stamps != NULL) {
        n += (size_t)c->side_cap * sizeof(uint64_t);
    }
    n += (size_t)c->lfu.cap * sizeof(ml_lfu_bucket) + (size_t)c->lfu.side_cap * sizeof(uint32_t);
    n += (size_t)c->dense.cap * 2u * sizeof(uint32_t);
    n += (size_t)c->tlfu.side_cap * sizeof(uint8_t) + ml_sketch_sizeof(&c->tlfu.sketch);
    n += ml_wheel_sizeof(&c->deadlines);
    return n;
}

size_t
ml_cache_entry_overhead(const ml_cache *c)
{
    /* slab entry + side cells + two index slots (the index holds 1.5 to 3 per entry);
     * LFU: its bucket id (buckets are fewer than entries and shared); RANDOM: two ids;
     * TINYLFU: its region byte and two to four sketch words (the sketch has a power of
     * two words, at least two per entry): three on average */
    return sizeof(ml_entry) + (c->units_on ? sizeof(int64_t) : 0) +
           (c->funits != NULL ? sizeof(double) : 0) +
           (c->bytes_on ? sizeof(size_t) : 0) + (c->shared != NULL ? sizeof(uint64_t) : 0) +
           2 * sizeof(uint32_t) +
           (c->kind == ML_POLICY_LFU ? sizeof(uint32_t) : 0) +
           (c->kind == ML_POLICY_RANDOM ? 2 * sizeof(uint32_t) : 0) +
           (c->kind == ML_POLICY_TINYLFU ? sizeof(uint8_t) + 3 * sizeof(uint64_t) : 0) +
           (c->deadlines_on ? ML_WHEEL_BYTES_PER_ID : 0);
}

#ifndef NDEBUG
/* Walks list l through links w, checking back links and liveness; @return its length. */
static uint32_t
check_list(const ml_cache *c, const ml_list *l, int w)
{
    uint32_t n = 0, prev = ML_NIL;
    for (uint32_t id = l->head; id != ML_NIL; id = c->t.ents[id].link[w][1]) {
        if (id >= c->t.top || c->t.ents[id].key == NULL || c->t.ents[id].link[w][0] != prev ||
            ++n > c->t.used) {
            abort();
        }
        prev = id;
    }
    if (l->tail != prev) {
        abort();
    }
    return n;
}

void
ml_cache_check(const ml_cache *c)
{
    const ml_table *t = &c->t;
    if (check_list(c, &c->order, ML_LINK_ORDER) != t->used) {
        abort();
    }
    if (uses_policy_list(c) && check_list(c, &c->policy, ML_LINK_POLICY) != t->used) {
        abort();
    }
    if (c->kind == ML_POLICY_LFU) {
        size_t n = 0;
        uint64_t prev_count = 0;
        uint32_t prev_b = ML_NIL;
        for (uint32_t b = c->lfu.first; b != ML_NIL; b = c->lfu.b[b].next) {
            const ml_lfu_bucket *bk = &c->lfu.b[b];
            if (bk->count <= prev_count || bk->prev != prev_b || bk->keys.head == ML_NIL) {
                abort();
            }
            n += check_list(c, &bk->keys, ML_LINK_POLICY);
            for (uint32_t id = bk->keys.head; id != ML_NIL; id = t->ents[id].link[ML_LINK_POLICY][1]) {
                if (c->lfu.bucket_of[id] != b) {
                    abort();
                }
            }
            prev_count = bk->count;
            prev_b = b;
        }
        if (n != t->used || c->lfu.last != prev_b) {
            abort();
        }
    }
    if (c->kind == ML_POLICY_TINYLFU) {
        const ml_tlfu *l = &c->tlfu;
        uint32_t n = 0;
        for (unsigned r = 0; r < ML_TLFU_REGIONS; r++) {
            uint32_t len = check_list(c, &l->region[r], ML_LINK_POLICY);
            if (len != l->count[r]) {
                abort();
            }
            for (uint32_t id = l->region[r].head; id != ML_NIL; id = t->ents[id].link[ML_LINK_POLICY][1]) {
                if (id >= l->side_cap || l->region_of[id] != r) {
                    abort();
                }
            }
            n += len;
        }
        if (n != t->used ||
            ((uint64_t)l->sketch.nwords < (uint64_t)t->used * ML_TLFU_SKETCH_WORDS &&
             l->sketch.nwords < ML_SKETCH_MAX_WORDS) ||
            !(l->window_frac >= 0.0 && l->window_frac <= 1.0) ||
            !(l->prev_rate >= 0.0 && l->prev_rate <= 1.0) || !isfinite(l->step) ||
            (l->sketch.nwords > 0 && l->hits + l->misses >= ml_sketch_sample(&l->sketch))) {
            abort();
        }
        if (l->max_n != ML_NIL && (l->max_window != ml_tlfu_window_max(l, l->max_n) ||
                                   l->max_protected != ml_tlfu_protected_max(l, l->max_n))) {
            abort();   /* a stale memo of the maxima */
        }
        ml_sketch_check(&l->sketch);
    }
    if (c->deadlines_on) {
        if (ml_wheel_check(&c->deadlines) != t->used) {
            abort();
        }
        for (uint32_t id = 0; id < t->top; id++) {
            if ((t->ents[id].key != NULL) != ml_wheel_scheduled(&c->deadlines, id)) {
                abort();
            }
        }
    }
    if (c->kind == ML_POLICY_RANDOM) {
        if (c->dense.n != t->used) {
            abort();
        }
        for (uint32_t i = 0; i < c->dense.n; i++) {
            uint32_t id = c->dense.ids[i];
            if (id >= t->top || t->ents[id].key == NULL || c->dense.pos[id] != i) {
                abort();
            }
        }
    }
    double funits = 0.0;
    int64_t units = 0;
    size_t bytes = 0, live = 0;
    for (uint32_t id = 0; id < t->top; id++) {
        if (t->ents[id].key == NULL) {
            continue;
        }
        live++;
        ml_size u = ml_cache_units_of(c, id);
        funits += ml_size_to_double(u);
        units += u.is_float ? 0 : u.i;
        bytes += ml_cache_bytes_of(c, id);
        uint32_t found = ML_NIL;
        if (ml_table_find((ml_table *)t, t->ents[id].hash, t->ents[id].key, NULL, NULL, &found) !=
                ML_OK ||
            found != id) {
            abort();
        }
    }
    if (live != t->used || bytes != c->budget.bytes) {
        abort();
    }
    if (c->shared != NULL) {
        uint64_t clock = ML_SHARED_LOAD(&c->shared->clock), prev = 0;
        if (c->bytes_on == 0 || (t->used > 0 && c->stamps == NULL) || bytes > ml_shared_bytes(c->shared)) {
            abort();
        }
        for (uint32_t id = 0; id < t->top; id++) {
            if (t->ents[id].key != NULL && (c->stamps[id] == 0 || c->stamps[id] > clock)) {
                abort();
            }
        }
        if (c->kind == ML_POLICY_LRU) {
            for (uint32_t id = c->policy.head; id != ML_NIL; id = t->ents[id].link[ML_LINK_POLICY][1]) {
                if (c->stamps[id] <= prev) {
                    abort();   /* the LRU victim must be the entry accessed longest ago */
                }
                prev = c->stamps[id];
            }
        }
    }
    else if (c->stamps != NULL) {
        abort();
    }
    if (!c->budget.float_mode && units != c->budget.units) {
        abort();   /* integer mode is exact */
    }
    if (c->budget.float_mode && fabs(funits - c->budget.funits) > 1e-6 * (1.0 + fabs(funits)) &&
        !isinf(funits) && !isnan(c->budget.funits)) {
        abort();
    }
    if (t->slots != NULL && 3u * t->fill > 2u * (t->mask + 1u)) {
        abort();
    }
    size_t nfree = 0;
    for (uint32_t id = t->free_head; id != ML_NIL; id = t->ents[id].link[ML_LINK_ORDER][1]) {
        if (t->ents[id].key != NULL || ++nfree > t->top) {
            abort();
        }
    }
    if (nfree + live != t->top) {
        abort();
    }
}
#endif
