/* cache_ops.c — the mapping operations of memleash._core.Cache: look-ups, stores with
 * eviction before insertion, and the MutableMapping methods (get, pop, setdefault,
 * popitem, clear); and the evictions of a shared byte budget (memleash.Budget) across its
 * member caches. The design and the note on re-entrancy are at the top of cache.c; the
 * rules it states are kept here line by line ("can re-enter" marks every call that can
 * run Python code).
 *
 * Evicting across a budget's members
 * ----------------------------------
 * A store into a member first makes room under the member's own limits (its policy, as
 * always), then under the budget's limit in force: while the budget has no room,
 *   1. once per store, every other timed member removes what has expired by its own timer
 *      (expire_members: Python code runs — the timers);
 *   2. each member names its victim by its own policy (ml_cache_victim; RRCache asks
 *      choice(keys)), and the victim whose last access is oldest — the smallest stamp of
 *      the budget's one clock — is evicted (budget_evict_one).
 * The victim's key and value join the store's deferred releases: nothing is released before
 * the new entry is in and every count holds. When no member needs Python code to name or
 * remove its victim (budget->python_members == 0) and the GIL is on, step 2 runs no Python
 * code at all and reads the members as they are (the fast path: a walk over the member
 * array, no reference taken); otherwise it takes strong references to the members, locks
 * each in turn to read its victim, and calls Python where the member needs it (choice, an
 * overriding popitem) — after which the store finds its key again. Bytes enter the budget
 * only through ml_shared_take, after the room was made and right before the insertion, so
 * the budget's sum never passes its maxbytes, not even while a __del__ run by a release
 * stores into another member (that store makes its own room, by the same rules).
 */
#include "py/cache.h"

#include <math.h>

/* ------------------------------------------------------------------------------------
 * Deferred releases: references the engine handed back, released at the end of a path.
 */
#define DEFER_MAX 64

typedef struct {
    PyObject *objs[DEFER_MAX];
    int n;
} deferred;

static void
defer_flush(deferred *d)
{
    while (d->n > 0) {
        PyObject *o = d->objs[--d->n];
        Py_DECREF(o);   /* can re-enter */
    }
}

/* ------------------------------------------------------------------------------------
 * Look-ups and small helpers
 */
int
cacheobj_eq(void *ctx, void *stored, void *key)
{
    (void)ctx;
    PyObject *s = (PyObject *)stored;
    Py_INCREF(s);   /* __eq__ may remove the entry and drop the cache's reference */
    int r = PyObject_RichCompareBool(s, (PyObject *)key, Py_EQ);   /* can re-enter */
    Py_DECREF(s);   /* can re-enter */
    return r;
}

/* @return 1 found (*id set), 0 absent, -1 error. */
static inline int
cache_find(CacheObject *self, PyObject *key, Py_hash_t h, uint32_t *id)
{
    int st = ml_table_find(&self->c.t, (uint64_t)h, key, cacheobj_eq, NULL, id);
    if (st == ML_ERR_CHANGED) {
        PyObject *name = cacheobj_type_name(self);
        if (name != NULL) {
            PyErr_Format(PyExc_RuntimeError,
                         "%U changed during a look-up %d times in a row (a key's __eq__ keeps "
                         "changing it)", name, ML_TABLE_MAX_RESTARTS);
            Py_DECREF(name);
        }
    }
    return st == ML_OK ? 1 : (st == ML_NOT_FOUND ? 0 : -1);
}

/* Raises KeyError(key) — with the key as the single argument even when it is a tuple. */
void
cacheobj_key_error(PyObject *key)
{
    PyObject *exc = PyObject_CallOneArg(PyExc_KeyError, key);
    if (exc != NULL) {
        PyErr_SetObject(PyExc_KeyError, exc);
        Py_DECREF(exc);
    }
}

int
cacheobj_find(CacheObject *self, PyObject *key, Py_hash_t h, uint32_t *id)
{
    return cache_find(self, key, h, id);
}

/* ------------------------------------------------------------------------------------
 * Storing: eviction before insertion, so no budget is ever exceeded
 */

/* Calls self.popitem() (an override, or the C one reaching an overridden __delitem__)
 * once, and judges by what self holds after it whether room was made.
 *
 * popitem() is Python code, and self's lock does not hold across it: the GIL build may
 * switch threads inside it, and the free-threaded build suspends self's critical section
 * whenever the thread blocks (a lock popitem() takes, a collection stopping the world).
 * Another thread may then store into self, refilling what popitem() freed, or empty it
 * before popitem() looks. So a call after which self holds no less is a failure of
 * popitem() only if self did not change at all meanwhile (its table's version: every
 * insertion and removal bumps it); when it changed, the caller looks again, and *raced
 * counts such calls in a row (reset by one that freed room): past ML_TABLE_MAX_RESTARTS
 * (a popitem() that removes one entry and stores another, every time) it is a failure too.
 * A KeyError from popitem() while self changed is such a call too: the cache was emptied
 * under it (RRCache's choice() runs Python code, so its popitem() meets this most).
 *
 * @return 1 it freed room (counted as an eviction of self); 0 self holds no less, but
 * changed during the call: look again; -1 with an exception (popitem() raised, or freed
 * no room). */
static int
evict_via_popitem(CacheObject *self, int *raced)
{
    uint32_t used = self->c.t.used;
    uint64_t version = self->c.t.version;
    ml_budget before = self->c.budget;
    PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, self->st->str_popitem);   /* can re-enter */
    if (r == NULL) {
        if (self->c.t.version != version && PyErr_ExceptionMatches(PyExc_KeyError) &&
            ++*raced <= ML_TABLE_MAX_RESTARTS) {
            /* emptied by another thread while popitem() ran ("<Name> is empty"), and
             * perhaps refilled since: look again */
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    /* judged while r still holds what was evicted: releasing it may run a __del__ that
     * stores something new, which is no failure of popitem() */
    const ml_budget *now = &self->c.budget;
    int freed = self->c.t.used < used || now->bytes < before.bytes ||
                (now->float_mode ? (before.float_mode && now->funits < before.funits)
                                 : now->units < before.units);
    int changed = self->c.t.version != version;
    self->evictions += (uint64_t)freed;
    Py_DECREF(r);   /* can re-enter */
    if (freed) {
        *raced = 0;
        return 1;
    }
    if (changed && ++*raced <= ML_TABLE_MAX_RESTARTS) {
        return 0;   /* another thread stored meanwhile (or popitem() did): look again */
    }
    if (changed) {
        PyErr_Format(PyExc_RuntimeError,
                     "%.200s.popitem() freed no room %d times in a row: cannot make room for "
                     "a new item (the cache changed during each call, but never held less)",
                     Py_TYPE(self)->tp_name, ML_TABLE_MAX_RESTARTS);
    }
    else {
        PyErr_Format(PyExc_RuntimeError,
                     "%.200s.popitem() freed no room: cannot make room for a new item",
                     Py_TYPE(self)->tp_name);
    }
    return -1;
}

/* ------------------------------------------------------------------------------------
 * A shared budget's evictions (see the note at the top)
 */
static int choose_random(CacheObject *self, uint32_t *id, PyObject **chosen);
static int expire_now(CacheObject *self);

/* What budget_evict_one did. */
enum {
    EVICT_NONE = 0,     /* no member holds anything: nothing evicted */
    EVICT_DONE = 1,     /* one entry evicted and no Python code ran */
    EVICT_RAN = 2       /* one entry evicted (or a member changed under the choice, which
                           is then made again): Python code ran, entry ids are stale */
};

/* Removes live entry id of member m as an eviction of budget b; its key and value join d.
 * Runs no Python code. @pre m's lock is held, d has room for two more. */
static void
budget_remove(BudgetObject *b, CacheObject *m, uint32_t id, int pressure, deferred *d)
{
    void *k, *v;
    cacheobj_keys_change(m);
    ml_cache_remove(&m->c, id, &k, &v);
    ML_CACHE_CHECK(&m->c);
    m->evictions++;
    ml_count_add(pressure ? &b->pressure_evictions : &b->evictions, 1);
    d->objs[d->n++] = (PyObject *)k;
    d->objs[d->n++] = (PyObject *)v;
}

/* The fast path: the members as they are, no Python code. *removed: the id removed from
 * requester (ML_NIL when the victim was another member's). EVICT_NONE or EVICT_DONE.
 * @pre the GIL build, no member is MEMBER_PYTHON. */
static int
evict_oldest_inline(BudgetObject *b, CacheObject *requester, int pressure, deferred *d,
                    uint32_t *removed)
{
    CacheObject *best = NULL;
    uint32_t best_id = ML_NIL;
    uint64_t best_stamp = UINT64_MAX;
    for (Py_ssize_t i = 0; i < b->nmembers; i++) {
        CacheObject *m = b->members[i].cache;
        if (m->c.t.used == 0) {
            continue;
        }
        uint32_t id = ml_cache_victim(&m->c);
        uint64_t stamp = ml_cache_stamp(&m->c, id);
        if (stamp < best_stamp) {
            best = m;
            best_id = id;
            best_stamp = stamp;
        }
    }
    if (best == NULL) {
        return EVICT_NONE;
    }
    budget_remove(b, best, best_id, pressure, d);
    *removed = best == requester ? best_id : ML_NIL;
    return EVICT_DONE;
}

/* A member's victim, as it was named. */
typedef struct {
    CacheObject *m;         /* borrowed from the snapshot */
    uint32_t id;
    uint64_t stamp, version;
} nominee;

/* Asks member m of b (whose lock the caller holds) for its victim. 1 named (*n set), 0 empty,
 * -1 error. 0 also when choice ran while another thread emptied m (its "RRCache is empty"
 * KeyError), which sets *emptied: m may hold entries again by now. Can re-enter (RRCache's
 * choice). */
static int
nominate(BudgetObject *b, CacheObject *m, nominee *n, int *emptied)
{
    if (m->c.t.used == 0 || m->budget != b) {
        return 0;   /* empty, or it left the budget while Python code ran */
    }
    uint32_t id;
    if (m->c.kind == ML_POLICY_RANDOM) {
        PyObject *chosen;
        uint64_t version = m->c.t.version;
        if (choose_random(m, &id, &chosen) < 0) {   /* can re-enter */
            if (m->c.t.version != version && PyErr_ExceptionMatches(PyExc_KeyError)) {
                PyErr_Clear();   /* emptied while choice ran (another thread): nothing named */
                *emptied = 1;
                return 0;
            }
            return -1;
        }
        Py_DECREF(chosen);   /* a key the cache holds: no __del__ runs */
    }
    else {
        id = ml_cache_victim(&m->c);
    }
    n->m = m;
    n->id = id;
    n->stamp = ml_cache_stamp(&m->c, id);
    n->version = m->c.t.version;
    return 1;
}

/* Removes the victim n named, as an eviction of b, if it is still what was named. EVICT_NONE
 * (choose again), EVICT_RAN or -1. @pre n->m's lock is held. Can re-enter (popitem()). */
static int
evict_nominee(BudgetObject *b, const nominee *n, int pressure, deferred *d, int *raced)
{
    CacheObject *m = n->m;
    if (m->budget != b) {
        return EVICT_NONE;   /* it left the budget meanwhile: choose again */
    }
    if (m->c.t.used == 0) {
        return EVICT_NONE;   /* emptied since it was named (another thread): choose again */
    }
    if (m->hooks & (HOOK_POPITEM | HOOK_DELITEM)) {
        /* as cachetools evicts: through the member's own popitem() */
        int freed = evict_via_popitem(m, raced);   /* can re-enter */
        if (freed > 0) {
            ml_count_add(pressure ? &b->pressure_evictions : &b->evictions, 1);
        }
        return freed < 0 ? -1 : EVICT_RAN;
    }
    if (m->c.t.version != n->version) {
        return EVICT_NONE;   /* changed since: the id may name another entry now */
    }
    budget_remove(b, m, n->id, pressure, d);   /* the id is the one named */
    return EVICT_RAN;
}

/* The general path: strong references to the members, each locked in turn; Python code
 * where a member needs it. *raced: evict_via_popitem's count, which a member emptied under
 * its choice (nominate) also counts. EVICT_NONE, EVICT_RAN or -1.
 *
 * The storing cache is a member whose section the store holds (cacheobj_store's @pre): it
 * is the thread's top-most section here, so ML_BEGIN_CRITICAL_SECTION takes no second one
 * on it (compat.h). On 3.13t a second one parked and woke the thread itself, and let
 * every other thread into the storing cache: once or twice per eviction, that made an
 * evicting store into a Budget member eight times slower than with the GIL. */
static int
evict_oldest_locked(BudgetObject *b, int pressure, deferred *d, int *raced)
{
    CacheObject **members;
    Py_ssize_t n = shared_snapshot(b, &members);
    if (n < 0) {
        return -1;
    }
    int rc = EVICT_NONE;
    for (int attempt = 0; rc == EVICT_NONE; attempt++) {
        if (attempt > ML_TABLE_MAX_RESTARTS) {
            PyErr_Format(PyExc_RuntimeError,
                         "a budget's members changed while it chose a victim %d times in a row "
                         "(their choice or popitem keeps changing them)", ML_TABLE_MAX_RESTARTS);
            rc = -1;
            break;
        }
        nominee best = {NULL, ML_NIL, UINT64_MAX, 0};
        int emptied = 0;
        for (Py_ssize_t i = 0; i < n && rc >= 0; i++) {
            nominee cand;
            int named;
            ML_BEGIN_CRITICAL_SECTION(members[i]);
            named = nominate(b, members[i], &cand, &emptied);   /* can re-enter */
            ML_END_CRITICAL_SECTION();
            if (named < 0) {
                rc = -1;
            }
            else if (named && cand.stamp < best.stamp) {
                best = cand;
            }
        }
        if (rc == EVICT_NONE && emptied && ++*raced <= ML_TABLE_MAX_RESTARTS) {
            rc = EVICT_RAN;   /* a member was emptied under its choice: room was made, and
                                 the caller looks at it before anything more is evicted */
            break;
        }
        if (rc < 0 || best.m == NULL) {
            break;   /* an error, or nothing to evict */
        }
        ML_BEGIN_CRITICAL_SECTION(best.m);
        rc = evict_nominee(b, &best, pressure, d, raced);   /* can re-enter */
        ML_END_CRITICAL_SECTION();
    }
    shared_release(members, n);   /* can re-enter */
    return rc;
}

/* Evicts the budget's oldest victim (the note at the top). requester: the storing cache,
 * whose lock the caller holds, or NULL. *removed: the id removed from requester when the
 * answer is EVICT_DONE (else ML_NIL). *raced: evict_via_popitem's count, kept by the caller
 * across its calls. EVICT_NONE, EVICT_DONE, EVICT_RAN or -1. Can re-enter (not when it
 * answers EVICT_DONE). @pre d has room for two more. */
static int
budget_evict_one(BudgetObject *b, CacheObject *requester, int pressure, deferred *d,
                 uint32_t *removed, int *raced)
{
    *removed = ML_NIL;
#ifndef Py_GIL_DISABLED
    if (b->python_members == 0) {
        return evict_oldest_inline(b, requester, pressure, d, removed);
    }
#else
    (void)requester;
    (void)evict_oldest_inline;
#endif
    Py_INCREF(b);   /* Python code may drop every other reference */
    int rc = evict_oldest_locked(b, pressure, d, raced);   /* can re-enter */
    Py_DECREF(b);
    return rc;
}

/* Removes what has expired from every timed member but `except` (which expired its own
 * already), each by its own timer. 0 or -1. Can re-enter. */
static int
expire_members(BudgetObject *b, CacheObject *except)
{
    CacheObject **members;
    Py_ssize_t n = shared_snapshot(b, &members);
    if (n < 0) {
        return -1;
    }
    int rc = 0;
    for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
        CacheObject *m = members[i];
        if (m == except) {
            continue;
        }
        ML_BEGIN_CRITICAL_SECTION(m);
        if (m->timed != TIMED_NONE && m->c.t.used > 0) {
            rc = expire_now(m);   /* can re-enter */
        }
        ML_END_CRITICAL_SECTION();
    }
    shared_release(members, n);   /* can re-enter */
    return rc;
}

/* Whether b has timed members other than self. */
static int
other_timed_members(BudgetObject *b, CacheObject *self)
{
    return b->timed_members > ((self != NULL && (self->member_flags & MEMBER_TIMED)) ? 1 : 0);
}

/* Evicts by b's order until want(b, arg, self) holds. 0, or -1 with an exception (ValueError
 * when nothing is left to evict and it still does not hold). Can re-enter. */
static int
budget_evict_until(BudgetObject *b, int pressure,
                   int (*want)(BudgetObject *, size_t, CacheObject *), size_t arg, CacheObject *self)
{
    deferred d;
    d.n = 0;
    int expired = 0, rc = 0, raced = 0;
    Py_INCREF(b);
    while (!want(b, arg, self)) {
        if (!expired && other_timed_members(b, NULL)) {
            expired = 1;
            defer_flush(&d);
            if ((rc = expire_members(b, NULL)) < 0) {   /* can re-enter */
                break;
            }
            continue;
        }
        uint32_t removed;
        int r = budget_evict_one(b, NULL, pressure, &d, &removed, &raced);   /* can re-enter */
        if (r < 0) {
            rc = -1;
            break;
        }
        if (r == EVICT_NONE) {
            if (!pressure) {
                PyErr_SetString(PyExc_ValueError, "value too large: its budget has no more room");
                rc = -1;
            }
            break;   /* pressure: what is left belongs to no member it can reach */
        }
        if (d.n + 2 > DEFER_MAX) {
            defer_flush(&d);   /* can re-enter */
        }
    }
    defer_flush(&d);   /* can re-enter */
    Py_DECREF(b);
    return rc;
}

static int
within_limit(BudgetObject *b, size_t unused, CacheObject *self)
{
    (void)unused;
    (void)self;
    return ml_shared_bytes(&b->s) <= ml_shared_limit(&b->s);
}

size_t
cacheobj_bytes_in(CacheObject *self, BudgetObject *b)
{
    return self->c.shared == &b->s ? self->c.budget.bytes : 0;
}

/* Whether need bytes fit in b in place of what self holds there now (nothing unless self
 * is a member of b). */
static int
room_replacing(BudgetObject *b, size_t need, CacheObject *self)
{
    return ml_shared_fits(&b->s, cacheobj_bytes_in(self, b), need);
}

int
cacheobj_budget_shrink(BudgetObject *b)
{
    return budget_evict_until(b, 1, within_limit, 0, NULL);
}

int
cacheobj_budget_make_room(BudgetObject *b, CacheObject *self, size_t need)
{
    if (need > ml_shared_limit(&b->s)) {
        PyErr_Format(PyExc_ValueError,
                     "value too large: the items' %zu bytes exceed their budget's limit of %zu",
                     need, ml_shared_limit(&b->s));
        return -1;
    }
    return budget_evict_until(b, 0, room_replacing, need, self);
}

/* ------------------------------------------------------------------------------------
 * Storing
 */

/* Stores (key, value) sized (units, bytes), evicting first until every budget holds: the
 * cache's own limits (its policy), then its shared budget's (the budget's order).
 * @pre the entry alone is admitted (entry_units / entry_bytes checked it). */
/* The key the entry of `id` holds once stored: its own, or `key` for a new entry (borrowed:
 * compared by identity only, before any call). */
static inline PyObject *
held_key(CacheObject *self, uint32_t id, PyObject *key)
{
    return id == ML_NIL ? key : (PyObject *)ENTS(self)[id].key;
}

int
cacheobj_store(CacheObject *self, PyObject *key, Py_hash_t h, PyObject *value, ml_size units,
               size_t bytes, PyObject *sized, double deadline, PyObject **held)
{
    deferred d;
    d.n = 0;
    uint32_t id;
    int expired_others = 0, raced = 0;
    *held = NULL;
    ml_cache_prefetch(&self->c, (uint64_t)h);   /* TinyLFU counts the key when it stores it */
restart:;
    int found = cache_find(self, key, h, &id);   /* can re-enter (__eq__) */
    if (found < 0) {
        goto error;
    }
    if (!found) {
        id = ML_NIL;
    }
    if (self->c.bytes_on && held_key(self, id, key) != sized) {
        /* an equal key object is held: bytes counted another key; before any eviction */
        goto resize;
    }
    for (;;) {
        int fit = ml_cache_fits(&self->c, id, units, bytes);
        if (fit == ML_FIT_OVERFLOW &&
            (self->budget == NULL ||
             ml_shared_fits(&self->budget->s, id == ML_NIL ? 0 : ml_cache_bytes_of(&self->c, id),
                            bytes))) {
            PyErr_SetString(PyExc_OverflowError,
                            "cache size too large: memleash counts currsize exactly up to 2**63 - 1 "
                            "and currbytes up to 2**64 - 2");
            goto error;
        }
        /* an own byte sum past 2**64 - 2 under a budget that has no room either: the budget
         * evicts first, as it would for any store; once it has room, the cache's own sum
         * (at most the budget's, which is at most 2**64 - 2) is counted exactly, and the
         * check below runs again */
        if (fit == ML_FIT_YES || fit == ML_FIT_OVERFLOW) {
            BudgetObject *b = self->budget;
            if (b == NULL) {
                break;
            }
            /* the shared budget: other timed members' expired entries first (once), then
             * its oldest victim, whichever member holds it — until it has room (evicting
             * only frees room: the cache's own limits still hold) */
            while (!ml_shared_fits(&b->s, id == ML_NIL ? 0 : ml_cache_bytes_of(&self->c, id),
                                   bytes)) {
                if (!expired_others && other_timed_members(b, self)) {
                    expired_others = 1;
                    defer_flush(&d);   /* can re-enter */
                    Py_INCREF(b);
                    int rc = expire_members(b, self);   /* can re-enter */
                    Py_DECREF(b);
                    if (rc < 0) {
                        goto error;
                    }
                    goto restart;
                }
                uint32_t removed;
                int r = budget_evict_one(b, self, 0, &d, &removed, &raced);   /* can re-enter,
                                                                                 unless DONE */
                if (r < 0) {
                    goto error;
                }
                if (r == EVICT_NONE) {
                    /* nothing left to evict and still no room: the limit was lowered meanwhile */
                    PyErr_SetString(PyExc_ValueError, "value too large: its budget has no more room");
                    goto error;
                }
                if (r == EVICT_RAN) {
                    defer_flush(&d);   /* can re-enter */
                    goto restart;
                }
                if (removed != ML_NIL && removed == id) {
                    id = ML_NIL;   /* the entry itself was the oldest: stored anew */
                }
                if (d.n + 2 > DEFER_MAX) {
                    defer_flush(&d);   /* can re-enter: the entry id may be stale */
                    goto restart;
                }
            }
            if (fit == ML_FIT_OVERFLOW) {
                continue;   /* the budget has room now: the cache's own limits again */
            }
            break;
        }
        /* Python code chooses or removes the victim: one popitem() at a time, then
         * look again (RRCache's choice() counts as such code) */
        if ((self->hooks & (HOOK_POPITEM | HOOK_DELITEM)) || self->c.kind == ML_POLICY_RANDOM) {
            defer_flush(&d);
            if (evict_via_popitem(self, &raced) < 0) {   /* can re-enter */
                goto error;
            }
            goto restart;
        }
        uint32_t victim = ml_cache_victim(&self->c);
        if (victim == ML_NIL) {
            /* empty and still no room: limits changed under us; never exceed them */
            PyErr_SetString(PyExc_ValueError, "value too large");
            goto error;
        }
        if (victim == id) {
            id = ML_NIL;
        }
        void *k, *v;
        cacheobj_keys_change(self);
        ml_cache_remove(&self->c, victim, &k, &v);
        self->evictions++;
        d.objs[d.n++] = (PyObject *)k;   /* released below, once consistent */
        d.objs[d.n++] = (PyObject *)v;
        if (d.n + 2 > DEFER_MAX && ml_cache_fits(&self->c, id, units, bytes) != ML_FIT_YES) {
            defer_flush(&d);   /* can re-enter: the entry id may be stale */
            goto restart;
        }
    }
    if (self->c.bytes_on && held_key(self, id, key) != sized) {
        goto resize;   /* the entry itself was evicted above: it is stored anew with `key` */
    }
    PyObject *old = NULL;
    int rc = id == ML_NIL ? ml_cache_reserve(&self->c) : ML_OK;
    if (rc == ML_OK && units.is_float) {
        rc = ml_cache_reserve_float(&self->c);
    }
    if (rc != ML_OK) {
        if (rc == ML_ERR_FULL) {
            PyErr_SetString(PyExc_OverflowError, "cache holds the most entries it can");
        }
        else {
            PyErr_NoMemory();
        }
        goto error;   /* entries evicted above stay evicted: still within budget */
    }
    BudgetObject *b = self->budget;
    if (b != NULL && !ml_shared_take(&b->s, id == ML_NIL ? 0 : ml_cache_bytes_of(&self->c, id), bytes)) {
        /* another thread took the room since it was made (free-threaded build) */
        defer_flush(&d);   /* can re-enter */
        goto restart;
    }
    if (id == ML_NIL) {
        cacheobj_keys_change(self);
        id = ml_cache_insert(&self->c, (uint64_t)h, Py_NewRef(key), Py_NewRef(value), units, bytes);
    }
    else {
        old = (PyObject *)ml_cache_replace(&self->c, id, Py_NewRef(value), units, bytes);
    }
    if (self->c.deadlines_on) {
        ml_cache_set_deadline(&self->c, id, deadline);
    }
    ML_CACHE_CHECK(&self->c);
    if (b != NULL) {
        Py_INCREF(b);   /* the releases below may drop the cache's reference */
    }
    defer_flush(&d);
    Py_XDECREF(old);   /* can re-enter */
    if (b != NULL) {
        if (ml_shared_bytes(&b->s) >= (size_t)ml_count_get(&b->check_at)) {
            shared_maybe_check(b);   /* can re-enter: the memory follower's hook */
        }
        Py_DECREF(b);
    }
    return 0;
resize:
    /* nothing stored; what was evicted stays evicted (every budget still holds) */
    *held = Py_NewRef(held_key(self, id, key));
    defer_flush(&d);   /* can re-enter */
    return 1;
error:
    defer_flush(&d);
    return -1;
}

static int
cache_setitem(CacheObject *self, PyObject *key, PyObject *value)
{
    Py_hash_t h = PyObject_Hash(key);   /* can re-enter */
    if (h == -1) {
        return -1;
    }
    return cacheobj_setitem_hashed(self, key, h, value);
}

int
cacheobj_setitem_hashed(CacheObject *self, PyObject *key, Py_hash_t h, PyObject *value)
{
    /* the key object the entry is sized with: the one it will hold (cacheobj_store says
     * which when an equal key is already held) */
    PyObject *sized = Py_NewRef(key);
    int result = -1;
    for (int attempt = 0;; attempt++) {
        if (attempt > ML_TABLE_MAX_RESTARTS) {
            PyObject *name = cacheobj_type_name(self);
            if (name != NULL) {
                PyErr_Format(PyExc_RuntimeError,
                             "%U reconfigured by its callbacks (getsizeof, sizeof, the timer, ttu, "
                             "expire) %d times during one store", name, ML_TABLE_MAX_RESTARTS);
                Py_DECREF(name);
            }
            goto done;
        }
        uint64_t gen = self->config_gen;
        double now = 0.0, deadline = 0.0;
        ml_size units;
        PyObject *tm = NULL;
        int rc = -1, timed = self->timed != TIMED_NONE;
        size_t bytes;
        if (timed) {
            /* as cachetools: time frozen for the whole assignment; TTL computes the
             * deadline, then expires; TLRU expires, then asks ttu */
            if (timed_enter(self, &now, &tm) < 0) {
                goto done;
            }
            if (self->timed == TIMED_TTL && timed_deadline(self, key, value, now, &deadline) < 0) {
                goto next;
            }
            if (timed_expire_internal(self, now) < 0) {
                goto next;
            }
            if (gen != self->config_gen) {
                rc = 1;   /* an overriding expire() reconfigured the cache: start again */
                goto next;
            }
            if (self->timed == TIMED_TLRU) {
                if (timed_deadline(self, key, value, now, &deadline) < 0) {
                    goto next;
                }
                if (gen != self->config_gen) {
                    rc = 1;   /* ttu reconfigured the cache: start again */
                    goto next;
                }
                if (!(now < deadline)) {
                    /* already expired: not stored, and an existing entry goes */
                    uint32_t id;
                    rc = cache_find(self, key, h, &id);   /* can re-enter */
                    if (rc > 0) {
                        void *k, *v;
                        cacheobj_keys_change(self);
                        ml_cache_remove(&self->c, id, &k, &v);
                        self->expirations++;
                        Py_DECREF((PyObject *)k);   /* can re-enter */
                        Py_DECREF((PyObject *)v);   /* can re-enter */
                    }
                    rc = rc < 0 ? -1 : 0;
                    goto next;
                }
            }
        }
        if (cacheobj_entry_units(self, value, &units) < 0 ||
            cacheobj_entry_bytes(self, sized, value, &bytes) < 0) {   /* can re-enter */
            goto next;
        }
        if (gen == self->config_gen) {
            PyObject *held;
            rc = cacheobj_store(self, key, h, value, units, bytes, sized, deadline, &held);
            if (rc == 1) {
                /* an equal key is held (or the held one went): size the entry with it */
                Py_SETREF(sized, held);   /* can re-enter */
            }
            goto next;
        }
        rc = 1;   /* reconfigured by a callback: size the entry again under the new settings */
    next:
        if (timed) {
            timed_exit(tm);
        }
        if (rc <= 0) {
            result = rc;
            goto done;
        }
    }
done:
    Py_DECREF(sized);   /* can re-enter */
    return result;
}

static int
cache_delitem(CacheObject *self, PyObject *key)
{
    Py_hash_t h = PyObject_Hash(key);   /* can re-enter */
    if (h == -1) {
        return -1;
    }
    double now = 0.0;
    PyObject *tm = NULL;
    int timed = self->timed != TIMED_NONE, alive = 1;
    if (timed && timed_enter(self, &now, &tm) < 0) {
        return -1;
    }
    uint32_t id;
    int found = cache_find(self, key, h, &id);   /* can re-enter */
    if (found <= 0) {
        if (found == 0) {
            cacheobj_key_error(key);
        }
        if (timed) {
            timed_exit(tm);
        }
        return -1;
    }
    if (timed) {
        alive = timed_alive(self, id, now);
    }
    void *k, *v;
    cacheobj_keys_change(self);
    ml_cache_remove(&self->c, id, &k, &v);
    ML_CACHE_CHECK(&self->c);
    Py_DECREF((PyObject *)k);   /* can re-enter */
    Py_DECREF((PyObject *)v);   /* can re-enter */
    if (timed) {
        timed_exit(tm);
    }
    if (!alive) {
        cacheobj_key_error(key);   /* as cachetools: an expired entry is removed, then KeyError */
        return -1;
    }
    return 0;
}

int
cache_ass_subscript(CacheObject *self, PyObject *key, PyObject *value)
{
    return value == NULL ? cache_delitem(self, key) : cache_setitem(self, key, value);
}

/* ------------------------------------------------------------------------------------
 * Reading
 */
static PyObject *
cache_missing(CacheObject *self, PyObject *key, Py_hash_t h, int refresh)
{
    if (!(self->hooks & HOOK_MISSING)) {
        cacheobj_key_error(key);
        return NULL;
    }
    PyObject *value = PyObject_CallMethodOneArg((PyObject *)self, self->st->str_missing, key);   /* can re-enter */
    if (value == NULL || !refresh) {
        return value;
    }
    /* as cachetools' LRUCache: __missing__ may have stored the key; refresh it if so */
    uint32_t id;
    int found = cache_find(self, key, h, &id);   /* can re-enter */
    if (found < 0) {
        Py_DECREF(value);
        return NULL;
    }
    if (found) {
        ml_cache_touch(&self->c, id);
    }
    return value;
}

/* c[key] on a timed cache: as cachetools, a present key is refreshed even when expired;
 * an expired or absent key goes to __missing__ (with the time no longer frozen). */
static PyObject *
timed_subscript(CacheObject *self, PyObject *key, Py_hash_t h)
{
    double now;
    PyObject *tm;
    if (timed_enter(self, &now, &tm) < 0) {
        return NULL;
    }
    uint32_t id;
    int found = cache_find(self, key, h, &id);   /* can re-enter */
    PyObject *value = NULL;
    if (found > 0) {
        ml_cache_touch(&self->c, id);
        if (timed_alive(self, id, now)) {
            value = Py_NewRef((PyObject *)ENTS(self)[id].value);
        }
    }
    timed_exit(tm);
    if (value != NULL || found < 0) {
        self->hits += value != NULL;
        return value;
    }
    self->misses++;
    return cache_missing(self, key, h, 0);
}

PyObject *
cache_subscript(CacheObject *self, PyObject *key)
{
    Py_hash_t h = PyObject_Hash(key);   /* can re-enter */
    if (h == -1) {
        return NULL;
    }
    if (self->timed != TIMED_NONE) {
        return timed_subscript(self, key, h);
    }
    ml_cache_prefetch(&self->c, (uint64_t)h);   /* TinyLFU's sketch, while the probe runs */
    uint32_t id;
    int found = cache_find(self, key, h, &id);   /* can re-enter */
    if (found > 0) {
        self->hits++;
        ml_cache_touch(&self->c, id);
        return Py_NewRef((PyObject *)ENTS(self)[id].value);
    }
    if (found < 0) {
        return NULL;
    }
    self->misses++;
    return cache_missing(self, key, h, 1);
}

int
cache_contains(CacheObject *self, PyObject *key)
{
    Py_hash_t h = PyObject_Hash(key);   /* can re-enter */
    if (h == -1) {
        return -1;
    }
    uint32_t id;
    if (self->timed == TIMED_NONE) {
        return cache_find(self, key, h, &id);   /* can re-enter */
    }
    double now;
    PyObject *tm;
    if (timed_enter(self, &now, &tm) < 0) {
        return -1;
    }
    int found = cache_find(self, key, h, &id);   /* can re-enter */
    if (found > 0) {
        found = timed_alive(self, id, now);
    }
    timed_exit(tm);
    return found;
}

PyObject *
cache_get_currsize(CacheObject *self, void *Py_UNUSED(closure))
{
    if (self->timed != TIMED_NONE && cacheobj_expire_now(self) < 0) {
        return NULL;
    }
    return cacheobj_units_held(self);
}

/* Timed caches: expires first (cachetools' __len__, currsize and repr do). 0 or -1. */
static int
expire_now(CacheObject *self)
{
    if (self->timed == TIMED_NONE) {
        return 0;
    }
    double now;
    PyObject *tm;
    if (timed_enter(self, &now, &tm) < 0) {
        return -1;
    }
    int rc = timed_expire_internal(self, now);   /* can re-enter */
    timed_exit(tm);
    return rc;
}

int
cacheobj_expire_now(CacheObject *self)
{
    return expire_now(self);
}

Py_ssize_t
cache_length(CacheObject *self)
{
    if (self->timed != TIMED_NONE && expire_now(self) < 0) {
        return -1;
    }
    return (Py_ssize_t)self->c.t.used;
}

/* Parses (key[, <opt>]) with <opt> also accepted by keyword. */
static int
parse_key_opt(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
              const char *optname, PyObject **key, PyObject **opt)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 2 arguments (%zd given)", fname, nargs + nkw);
        return -1;
    }
    *key = nargs > 0 ? args[0] : NULL;
    *opt = nargs > 1 ? args[1] : NULL;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        PyObject **slot = NULL;
        if (PyUnicode_CompareWithASCIIString(name, "key") == 0) {
            slot = key;
        }
        else if (PyUnicode_CompareWithASCIIString(name, optname) == 0) {
            slot = opt;
        }
        if (slot == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname, name);
            return -1;
        }
        if (*slot != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%U'", fname, name);
            return -1;
        }
        *slot = args[nargs + i];
    }
    if (*key == NULL) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument 'key'", fname);
        return -1;
    }
    return 0;
}

/* Whether live entry id counts as present at `now` (always, unless the cache is timed). */
#define PRESENT(self, id, now) ((self)->timed == TIMED_NONE || timed_alive((self), (id), (now)))

typedef PyObject *(*keyed_impl)(CacheObject *self, PyObject *key, PyObject *dflt, double now);

/* Runs impl with the time frozen for timed caches (cachetools' `with self.timer:`). */
static PyObject *
with_frozen_time(CacheObject *self, keyed_impl impl, PyObject *key, PyObject *dflt)
{
    double now = 0.0;
    PyObject *tm;
    if (self->timed == TIMED_NONE) {
        return impl(self, key, dflt, now);
    }
    if (timed_enter(self, &now, &tm) < 0) {
        return NULL;
    }
    PyObject *r = impl(self, key, dflt, now);
    timed_exit(tm);
    return r;
}

static PyObject *
get_impl(CacheObject *self, PyObject *key, PyObject *dflt, double now)
{
    if (self->hooks & (HOOK_CONTAINS | HOOK_GETITEM)) {   /* cachetools: key in self, self[key] */
        int r = PySequence_Contains((PyObject *)self, key);   /* can re-enter */
        if (r < 0) {
            return NULL;
        }
        return r ? PyObject_GetItem((PyObject *)self, key) : Py_NewRef(dflt);
    }
    Py_hash_t h = PyObject_Hash(key);   /* can re-enter */
    if (h == -1) {
        return NULL;
    }
    ml_cache_prefetch(&self->c, (uint64_t)h);
    uint32_t id;
    int found = cache_find(self, key, h, &id);   /* can re-enter */
    if (found > 0 && PRESENT(self, id, now)) {
        self->hits++;
        ml_cache_touch(&self->c, id);
        return Py_NewRef((PyObject *)ENTS(self)[id].value);
    }
    if (found < 0) {
        return NULL;
    }
    self->misses++;
    return Py_NewRef(dflt);
}

PyObject *
cache_get(CacheObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *key, *dflt;
    if (parse_key_opt("get", args, nargs, kwnames, "default", &key, &dflt) < 0) {
        return NULL;
    }
    return with_frozen_time(self, get_impl, key, dflt ? dflt : Py_None);
}

static PyObject *
pop_impl(CacheObject *self, PyObject *key, PyObject *dflt, double now)
{
    if (self->hooks & (HOOK_CONTAINS | HOOK_GETITEM | HOOK_DELITEM)) {
        int r = PySequence_Contains((PyObject *)self, key);   /* can re-enter */
        if (r < 0) {
            return NULL;
        }
        if (r) {
            PyObject *value = PyObject_GetItem((PyObject *)self, key);   /* can re-enter */
            if (value == NULL || PyObject_DelItem((PyObject *)self, key) < 0) {
                Py_XDECREF(value);
                return NULL;
            }
            return value;
        }
        goto absent;
    }
    Py_hash_t h = PyObject_Hash(key);   /* can re-enter */
    if (h == -1) {
        return NULL;
    }
    uint32_t id;
    int found = cache_find(self, key, h, &id);   /* can re-enter */
    if (found < 0) {
        return NULL;
    }
    if (found && PRESENT(self, id, now)) {
        void *k, *v;
        cacheobj_keys_change(self);
        ml_cache_remove(&self->c, id, &k, &v);
        ML_CACHE_CHECK(&self->c);
        Py_DECREF((PyObject *)k);   /* can re-enter */
        return (PyObject *)v;   /* the cache's reference passes to the caller */
    }
absent:
    if (dflt == NULL) {
        cacheobj_key_error(key);
        return NULL;
    }
    return Py_NewRef(dflt);
}

PyObject *
cache_pop(CacheObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *key, *dflt;
    if (parse_key_opt("pop", args, nargs, kwnames, "default", &key, &dflt) < 0) {
        return NULL;
    }
    return with_frozen_time(self, pop_impl, key, dflt);
}

static PyObject *
setdefault_impl(CacheObject *self, PyObject *key, PyObject *dflt, double now)
{
    if (self->hooks & (HOOK_CONTAINS | HOOK_GETITEM | HOOK_SETITEM)) {
        int r = PySequence_Contains((PyObject *)self, key);   /* can re-enter */
        if (r < 0) {
            return NULL;
        }
        if (r) {
            return PyObject_GetItem((PyObject *)self, key);
        }
        return PyObject_SetItem((PyObject *)self, key, dflt) < 0 ? NULL : Py_NewRef(dflt);
    }
    Py_hash_t h = PyObject_Hash(key);   /* can re-enter */
    if (h == -1) {
        return NULL;
    }
    uint32_t id;
    int found = cache_find(self, key, h, &id);   /* can re-enter */
    if (found < 0) {
        return NULL;
    }
    if (found && PRESENT(self, id, now)) {
        ml_cache_touch(&self->c, id);
        return Py_NewRef((PyObject *)ENTS(self)[id].value);
    }
    Py_INCREF(dflt);   /* the callbacks below must not free what we return */
    if (cache_setitem(self, key, dflt) < 0) {
        Py_DECREF(dflt);
        return NULL;
    }
    return dflt;
}

PyObject *
cache_setdefault(CacheObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *key, *dflt;
    if (parse_key_opt("setdefault", args, nargs, kwnames, "default", &key, &dflt) < 0) {
        return NULL;
    }
    return with_frozen_time(self, setdefault_impl, key, dflt ? dflt : Py_None);
}

static void
raise_empty(CacheObject *self)
{
    PyObject *exc;
    if (self->c.kind == ML_POLICY_INSERTION) {   /* MutableMapping.popitem: bare KeyError */
        exc = PyObject_CallNoArgs(PyExc_KeyError);
    }
    else {
        PyObject *name = cacheobj_type_name(self);
        if (name == NULL) {
            return;
        }
        exc = PyUnicode_FromFormat("%U is empty", name);
        Py_DECREF(name);
        if (exc != NULL) {
            Py_SETREF(exc, PyObject_CallOneArg(PyExc_KeyError, exc));
        }
    }
    if (exc == NULL) {
        return;
    }
    PyException_SetCause(exc, NULL);   /* "from None": also sets __suppress_context__ */
    PyErr_SetObject(PyExc_KeyError, exc);
    Py_DECREF(exc);
}

/* RRCache: asks choice(keys) for the victim. @return 0 with *id set and *chosen holding a
 * reference to the chosen key, or -1 with an exception (KeyError when empty). */
static int
choose_random(CacheObject *self, uint32_t *id, PyObject **chosen)
{
    if (self->choice == NULL) {
        PyErr_SetString(PyExc_TypeError, "RRCache has no choice function (was __init__ called?)");
        return -1;
    }
    /* choice runs Python code: another thread (or choice itself) may remove the key it
     * picks before it is found. Then it chooses again among the keys as they are now; a
     * key that was never in the cache is choice's error (KeyError, as cachetools) */
    for (int attempt = 0;; attempt++) {
        if (self->c.dense.n == 0) {
            raise_empty(self);
            return -1;
        }
        uint64_t version = self->c.t.version;
        PyObject *keys = rrkeys_new(self);   /* can re-enter (a collection) */
        if (keys == NULL) {
            return -1;
        }
        if (self->c.dense.n == 0 && attempt < ML_TABLE_MAX_RESTARTS) {
            /* emptied by a finalizer the allocation ran: "<Name> is empty", as above */
            Py_DECREF(keys);   /* can re-enter */
            continue;
        }
        PyObject *choice = Py_NewRef(self->choice);
        PyObject *key = PyObject_CallOneArg(choice, keys);   /* can re-enter */
        Py_DECREF(choice);
        Py_DECREF(keys);   /* can re-enter (a sequence that copied the keys releases them) */
        if (key == NULL) {
            return -1;
        }
        Py_hash_t h = PyObject_Hash(key);   /* can re-enter */
        int found = h == -1 ? -1 : cache_find(self, key, h, id);   /* can re-enter */
        if (found > 0) {
            *chosen = key;
            return 0;
        }
        if (found == 0 && self->c.t.version != version && attempt < ML_TABLE_MAX_RESTARTS) {
            Py_DECREF(key);
            continue;
        }
        if (found == 0) {
            cacheobj_key_error(key);   /* as cachetools: the chosen key must be in the cache */
        }
        Py_DECREF(key);
        return -1;
    }
}

static PyObject *
popitem_impl(CacheObject *self);

/* popitem(): timed caches expire first, with the time frozen (cachetools). */
PyObject *
cache_popitem(CacheObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->timed == TIMED_NONE) {
        return popitem_impl(self);
    }
    double now;
    PyObject *tm;
    if (timed_enter(self, &now, &tm) < 0) {
        return NULL;
    }
    PyObject *r = timed_expire_internal(self, now) < 0 ? NULL : popitem_impl(self);
    timed_exit(tm);
    return r;
}

/* The pair is allocated before the victim is chosen: the allocation can collect, and a
 * finalizer run by the collection can change the cache, so nothing allocates between the
 * choice (the last call that runs code) and the removal of the id it named. */
static PyObject *
popitem_impl(CacheObject *self)
{
    uint32_t victim;
    PyObject *chosen = NULL, *pair = PyTuple_New(2);   /* can re-enter (a collection) */
    if (pair == NULL) {
        return NULL;
    }
    PyObject_GC_UnTrack(pair);   /* empty while choice runs: out of gc.get_objects() */
    if (self->c.kind == ML_POLICY_RANDOM) {
        if (choose_random(self, &victim, &chosen) < 0) {   /* can re-enter */
            Py_DECREF(pair);
            return NULL;
        }
    }
    else if ((victim = ml_cache_victim(&self->c)) == ML_NIL) {
        Py_DECREF(pair);
        raise_empty(self);
        return NULL;
    }
    int insertion = self->c.kind == ML_POLICY_INSERTION;
    if ((self->hooks & HOOK_DELITEM) || (insertion && (self->hooks & HOOK_GETITEM))) {
        /* as cachetools: value = self[key] (Cache) or the stored value (the others);
         * then del self[key]. The pair is made from held references after them. */
        PyObject *key = Py_NewRef((PyObject *)ENTS(self)[victim].key);
        Py_CLEAR(pair);   /* holds nothing: runs no code */
        PyObject *value = insertion ? PyObject_GetItem((PyObject *)self, key)   /* can re-enter */
                                    : Py_NewRef((PyObject *)ENTS(self)[victim].value);
        if (value != NULL && PyObject_DelItem((PyObject *)self, key) == 0) {   /* can re-enter */
            pair = PyTuple_Pack(2, key, value);
        }
        Py_DECREF(key);
        Py_XDECREF(value);
        goto done;
    }
    void *k, *v;
    cacheobj_keys_change(self);
    ml_cache_remove(&self->c, victim, &k, &v);
    ML_CACHE_CHECK(&self->c);
    PyTuple_SET_ITEM(pair, 0, (PyObject *)k);   /* steals the cache's references */
    PyTuple_SET_ITEM(pair, 1, (PyObject *)v);
    PyObject_GC_Track(pair);
done:
    Py_XDECREF(chosen);
    return pair;
}

PyObject *
cache_clear(CacheObject *self, PyObject *Py_UNUSED(ignored))
{
    cacheobj_clear_entries(self);
    Py_RETURN_NONE;
}
