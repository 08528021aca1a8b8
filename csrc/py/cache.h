/* cache.h — what the cache binding's files share.
 *
 * cache.c holds the type's spec, life cycle, properties and statistics (its opening
 * comment is the design note, re-entrancy included); cache_state.c configuration, repr
 * and pickling; cache_iter.c the key iterator; cache_ops.c the mapping operations,
 * eviction and RRCache's key view; timed.c the TTL / TLRU part; cache_entry.c what an
 * entry counts (units, bytes) and releasing entries; budget.c the memleash.Budget type and
 * shared.c its member registry (which caches share it, joining and leaving). Layering (a
 * file calls only the ones after it; tests/test_lint.py checks there is no circle):
 *   budget.c, cache.c -> cache_state.c, cache_iter.c -> cache_ops.c -> timed.c
 *   -> cache_entry.c -> shared.c -> registry.c (module.h); cache_state.c -> cache_tlfu.c
 *   (TinyLFU's pickled state)
 */
#ifndef ML_PY_CACHE_H
#define ML_PY_CACHE_H

#include "py/module.h"

#include <stdint.h>

#include "core/cache.h"

enum {
    HOOK_GETITEM = 1u << 0,
    HOOK_SETITEM = 1u << 1,
    HOOK_DELITEM = 1u << 2,
    HOOK_CONTAINS = 1u << 3,
    HOOK_MISSING = 1u << 4,
    HOOK_POPITEM = 1u << 5,
    HOOK_GETSIZEOF = 1u << 6,
    HOOK_EXPIRE = 1u << 7,
};

/* Timed caches (TTLCache, TLRUCache): what computes an entry's deadline. */
enum { TIMED_NONE = 0, TIMED_TTL = 1, TIMED_TLRU = 2 };

typedef struct BudgetObject BudgetObject;

typedef struct {
    PyObject_HEAD
    ml_cache c;
    ml_state *st;           /* borrowed: the instance's type keeps the module alive */
    PyObject *maxsize;      /* as given: the property and repr show it unchanged */
    PyObject *getsizeof;    /* units callable while units are on, else NULL */
    PyObject *sizeof_fn;    /* bytes callable, or NULL for the default accounting */
    PyObject *choice;       /* RRCache: choice(keys) names the victim; else NULL */
    PyObject *rrview;       /* borrowed: the live key sequence choice holds, or NULL */
    PyObject *timer;        /* timed: the memleash._core.Timer around the user's timer */
    PyObject *ttl;          /* TTLCache: the ttl as given */
    PyObject *ttu;          /* TLRUCache: ttu(key, value, now) */
    double ttl_d;           /* TTLCache: the ttl as a double (microseconds for a timedelta) */
    PyObject *origin;       /* datetime times: the first time seen; times are kept as
                               microseconds since it. NULL while times are numbers */
    unsigned timed;         /* TIMED_* */
    unsigned timed_numbers_seen;   /* a number was read as a time: no datetimes from now on */
    unsigned timed_floats_seen;    /* a float time or ttl was used: iorigin stays 0 */
    int64_t iorigin;        /* number times: an int time t is kept as t - iorigin (exact while
                               within 2**53 of it); moved along as an int timer advances */
    PyObject *dict;
    PyObject *weakreflist;
    uint64_t config_gen;    /* bumped by every (re)configuration */
    unsigned hooks;
    ml_reg reg;             /* registry node: memleash.report() (module.h) */
    /* statistics for report(): reads by c[key] and get(), entries removed to make room,
     * entries removed because their deadline passed */
    uint64_t hits, misses, evictions, expirations;
    /* a shared byte budget (shared.c): the budget this cache is a member of (a strong
     * reference: a member keeps its budget alive) or NULL, the cache's index in the
     * budget's member array, and what the budget counts it as (MEMBER_*) */
    BudgetObject *budget;
    Py_ssize_t member_slot;
    unsigned member_flags;
#ifdef Py_GIL_DISABLED
    PyObject *member_wref;  /* a weak reference to this cache, made the first time it joins a
                               budget: the budget reads its members through it */
#endif
} CacheObject;

/* ------------------------------------------------------------------------------------
 * memleash.Budget (budget.c): one byte budget shared by several caches. The arithmetic is
 * the core's (ml_shared, core/sharedbudget.h); the object adds the member registry, the
 * statistics, and the memory follower's hook.
 */
typedef struct {
    CacheObject *cache;     /* borrowed: a member leaves before it dies (shared_unlink) */
} ml_member;

/* What a budget counts its members as: the expiry phase and the fast eviction path ask. */
enum {
    MEMBER_TIMED = 1u << 0,     /* entries have deadlines: expired ones go first */
    MEMBER_PYTHON = 1u << 1,    /* its victim is named or removed by Python code: RRCache's
                                   choice, an overriding popitem or __delitem__ */
};

struct BudgetObject {
    PyObject_HEAD
    ml_shared s;                /* the sum, the limits, the access clock (core) */
    ml_state *st;               /* borrowed: the instance's type keeps the module alive */
    ml_member *members;         /* PyMem array, nmembers used of cap */
    Py_ssize_t nmembers, cap;
    Py_ssize_t timed_members;   /* members with MEMBER_TIMED */
    Py_ssize_t python_members;  /* members with MEMBER_PYTHON */
    /* counted under a member's lock, not the budget's: atomics on the free-threaded build */
    ml_count evictions;         /* entries the budget evicted to make room for a store */
    ml_count pressure_evictions;  /* ... because its limit in force was lowered */
    PyObject *check;            /* the memory follower's hook, or NULL (budget's lock) */
    ml_count check_at;          /* a store calls check() once the sum reaches this
                                   (PY_SSIZE_T_MAX: never); read by stores without the
                                   budget's lock, as their one comparison */
    int checking;               /* check() is running (it is not called again meanwhile;
                                   budget's lock) */
    ml_reg reg;                 /* registry node: memleash.report() */
    PyObject *dict;
    PyObject *weakreflist;
};


#define ENTS(self) ((self)->c.t.ents)

static inline PyObject *
cacheobj_type_name(CacheObject *self)
{
    return PyType_GetName(Py_TYPE(self));   /* new reference: the class's __name__ */
}

/* cache_ops.c */


/* The engine's equality callback: stored == key, holding stored while __eq__ runs. 1, 0 or
 * -1. Can re-enter. */
int cacheobj_eq(void *ctx, void *stored, void *key);

/* Looks key (hash h) up. @return 1 found (*id set), 0 absent, -1 error. Can re-enter
 * (__eq__): *id is only valid until the next call that can. */
int cacheobj_find(CacheObject *self, PyObject *key, Py_hash_t h, uint32_t *id);

/* Empties the cache: the entries move out first, then are released. Can re-enter. */
void cacheobj_clear_entries(CacheObject *self);

/* Timed caches: removes what has expired now (no-op for the others). 0 or -1. */
int cacheobj_expire_now(CacheObject *self);

/* A flat list [k0, v0, k1, v1, ...] in iteration order; new references. Can re-enter (a
 * collection at the list's allocation), never after it has read an entry. */
PyObject *cacheobj_snapshot(CacheObject *self);
/* A new list of per * used NULL slots for a walk of the entries that allocates no
 * GC-tracked object (cache_entry.c). Can re-enter. */
PyObject *cacheobj_list_for_entries(CacheObject *self, Py_ssize_t per);
/* NULL with RuntimeError: the cache kept changing during `what` (a bounded retry). */
PyObject *cacheobj_changed_error(CacheObject *self, const char *what);


/* Stores (key, value) sized (units, bytes) after evicting what the budget requires, with
 * `deadline` when the cache is timed. `sized` is the key object `bytes` was computed with
 * (sizeof(key, value) sees the key): the entry keeps the key it already holds when an equal
 * one is stored (as dict does), so when accounting bytes and the key that the entry will
 * hold is another object than `sized`, nothing is stored and 1 is returned with *held a new
 * reference to that key: size the entry with it and call again.
 * @pre the entry alone is admitted; self's critical section is held by the caller (a shared
 * budget's eviction takes no other for self). 0, 1 or -1. Can re-enter. */
int cacheobj_store(CacheObject *self, PyObject *key, Py_hash_t h, PyObject *value, ml_size units,
                   size_t bytes, PyObject *sized, double deadline, PyObject **held);

/* self[key] = value with key's hash h known (the whole of __setitem__ after hashing:
 * timed caches' deadline and expiry, sizing, eviction). @pre self's critical section is
 * held by the caller (cacheobj_store's). 0 or -1. Can re-enter. */
int cacheobj_setitem_hashed(CacheObject *self, PyObject *key, Py_hash_t h, PyObject *value);

/* Raises KeyError(key), with the key as the single argument even when it is a tuple. */
void cacheobj_key_error(PyObject *key);

/* The mapping protocol and the methods of the type spec (cache.c). */
PyObject *cache_subscript(CacheObject *self, PyObject *key);
int cache_ass_subscript(CacheObject *self, PyObject *key, PyObject *value);
int cache_contains(CacheObject *self, PyObject *key);
Py_ssize_t cache_length(CacheObject *self);
PyObject *cache_get(CacheObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *cache_pop(CacheObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *cache_setdefault(CacheObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames);
PyObject *cache_popitem(CacheObject *self, PyObject *ignored);
PyObject *cache_clear(CacheObject *self, PyObject *ignored);

/* cache_entry.c */

/* RRCache's key sequence for its choice function: the keys in cachetools' key-list order
 * (dense.h) as they are now, kept as they are for as long as the sequence lives. New
 * reference. Can re-enter (a collection at its allocation). */
PyObject *rrkeys_new(CacheObject *self);
extern PyType_Spec rrkeys_spec;

/* To call before the cache's set of keys changes (an insertion, a removal, an exchange of
 * engines): a live key sequence copies the keys first. Runs no Python code. */
void cacheobj_keys_change(CacheObject *self);

/* A size (a getsizeof result, a pickled size) as an ml_size: an int exactly, anything
 * else through __float__. *big: 1 / -1 for an int beyond int64 (then out is 0), else 0.
 * 0 or -1 (TypeError for what is no number). Can re-enter (__float__). */
int cacheobj_to_size(PyObject *o, ml_size *out, int *big);

/* maxsize as an exact ml_limit: ValueError when negative or NaN. 0 or -1. */
int cacheobj_to_limit(PyObject *o, ml_limit *out);

/* A non-negative int (@pre PyLong) as a size_t, SIZE_MAX for anything from there up (past
 * 2**64 - 1 too). 0, or -1 with ValueError(negative) for a negative one. */
int cacheobj_long_to_size(PyObject *o, const char *negative, size_t *out);

/* A byte limit (max_bytes, a budget's limit): a non-negative int (TypeError "<what>, not
 * <type>" for anything else, bools included), one past what a sum counts (SIZE_MAX - 1)
 * being that largest count. 0 or -1. */
int cacheobj_to_maxbytes(PyObject *o, const char *what, size_t *out);

/* A sizeof result or a pickled byte count: ValueError when negative, OverflowError past
 * SIZE_MAX - 1. 0 or -1. */
int cacheobj_to_bytes(PyObject *o, size_t *bytes);

/* The units of value (1 without a getsizeof), checked by cacheobj_check_units. 0 or -1.
 * Can re-enter (getsizeof). */
int cacheobj_entry_units(CacheObject *self, PyObject *value, ml_size *units);

/* Refuses units (big: as cacheobj_to_size gives it) that no store could accept: negative,
 * NaN, more than maxsize alone (ValueError), or past what is counted exactly
 * (OverflowError). 0 or -1. cacheobj_check_size: the same against any maxsize. */
int cacheobj_check_units(CacheObject *self, ml_size units, int big);
int cacheobj_check_size(ml_size units, int big, const ml_limit *maxunits);

/* A size as a Python int or float. New reference. */
PyObject *cacheobj_size_to_object(ml_size s);

/* The accounted bytes of (key, value) (0 when bytes are off): ValueError when the entry
 * alone exceeds max_bytes. 0 or -1. Can re-enter (sizeof, __sizeof__). */
int cacheobj_entry_bytes(CacheObject *self, PyObject *key, PyObject *value, size_t *bytes);

/* currsize as it stands (expired entries of a timed cache included). New reference. */
PyObject *cacheobj_units_held(CacheObject *self);

/* The currbytes property: the accounted bytes, or (bytes not accounted as they go) the
 * default sizing of every item now. Can re-enter (__sizeof__). */
PyObject *cache_get_currbytes(CacheObject *self, void *closure);

/* cache.c */

/* A cache's limits, validated. */
typedef struct {
    ml_limit maxunits;
    size_t maxbytes;    /* SIZE_MAX: none */
    int units_on, bytes_on;
    BudgetObject *budget;   /* borrowed from the caller's arguments, or NULL */
} cache_limits;

/* Validates maxsize, max_bytes, sizeof and budget as the constructor takes them
 * (ValueError, TypeError). 0 or -1; nothing changes. */
int cacheobj_parse_limits(ml_state *st, PyObject *maxsize, int units_on, PyObject *max_bytes,
                          PyObject *sizeof_fn, PyObject *budget, cache_limits *out);

/* Makes an empty engine of self's policy under lim in *fresh (allocates nothing). */
void cacheobj_new_engine(CacheObject *self, const cache_limits *lim, ml_cache *fresh);

/* Releases every key and value of an engine taken out of a cache, then frees it. Can
 * re-enter. */
void cacheobj_release_engine(ml_cache *old);

/* Makes *engine the cache's engine (its counters moved past the old one's), with maxsize
 * and sizeof_fn, untimed, a member of budget (NULL: of none; shared_prepare succeeded);
 * then releases the old engine's entries and the old settings. Nothing old is released
 * before every new field is set. Can re-enter. */
void cacheobj_install(CacheObject *self, ml_cache *engine, PyObject *maxsize, PyObject *sizeof_fn,
                      BudgetObject *budget);

/* Validates the limits, then empties the cache and applies them. 0 or -1. Can re-enter. */
int cacheobj_configure(CacheObject *self, PyObject *maxsize, int units_on, PyObject *max_bytes,
                       PyObject *sizeof_fn, PyObject *budget);

/* Sets self->getsizeof from the class override or instance attribute. 0 or -1. */
int cacheobj_resolve_getsizeof(CacheObject *self);

PyObject *cache_get_currsize(CacheObject *self, void *closure);
PyObject *cache_get_maxbytes(CacheObject *self, void *closure);

/* timed.c — TTLCache / TLRUCache: time, deadlines, expiry (design note there) */

/* Freezes the cache's timer (as `with cache.timer as now`) and reads the time as a
 * double; every timer() call until timed_exit returns the same time. *timer receives a
 * new reference to the Timer entered, which the caller hands to timed_exit: a callback
 * may reconfigure the cache meanwhile, but the same Timer is left. 0 or -1 (then not
 * entered, *timer NULL). */
int timed_enter(CacheObject *self, double *now, PyObject **timer);
void timed_exit(PyObject *timer);

/* @return whether live entry id is still alive at `now`: now < its deadline (always, if
 * a callback reconfigured the cache without deadlines). */
static inline int
timed_alive(const CacheObject *self, uint32_t id, double now)
{
    return !self->c.deadlines_on || now < ml_cache_deadline(&self->c, id);
}

/* The deadline of (key, value) set at `now`: now + ttl, or ttu(key, value, now). NaN
 * means "already expired" (a ttu returned NaN). 0 or -1. Can re-enter (ttu). */
int timed_deadline(CacheObject *self, PyObject *key, PyObject *value, double now, double *when);

/* Removes every entry expired at `now`, earliest first — through self.expire(now) when a
 * subclass overrides it. 0 or -1. Can re-enter. @pre the timer is entered. */
int timed_expire_internal(CacheObject *self, double now);

PyObject *cache_expire_method(CacheObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames);
PyObject *cache_configure_timed(CacheObject *self, PyObject *args);

/* Validates a timed configuration (kind, the ttl or ttu, the timer) without applying it:
 * *ttl_d, and *wrapped a new Timer around the user's timer. 0 or -1. */
int timed_parse(CacheObject *self, int kind, PyObject *param, PyObject *timer, double *ttl_d,
                PyObject **wrapped);

/* An empty engine with self's limits and deadlines on, in *fresh. */
void timed_new_engine(CacheObject *self, ml_cache *fresh);

/* Makes *engine (deadlines on) the cache's engine, timed by (kind, param, wrapped — whose
 * reference it takes — ttl_d); then releases the old engine and settings. Can re-enter. */
void timed_install(CacheObject *self, ml_cache *engine, int kind, PyObject *param, PyObject *wrapped,
                   double ttl_d);

/* 0 if origin is a datetime (a pickled timed cache's origin), else -1 with an exception. */
int timed_check_origin(PyObject *origin);
int timed_traverse(CacheObject *self, visitproc visit, void *arg);
void timed_clear(CacheObject *self);
PyObject *timed_get_timer(CacheObject *self, void *closure);
PyObject *timed_get_ttl(CacheObject *self, void *closure);
PyObject *timed_get_ttu(CacheObject *self, void *closure);
/* The wheel's expiry-cost counter (entries filed, moved or unlinked so far), for tests. */
PyObject *timed_get_expiry_work(CacheObject *self, void *closure);
extern PyType_Spec timer_spec;

/* Pickling of the timed part: None, or (kind, ttl or ttu, timer, deadlines, origin). */
/* The timed part of __getstate__: fills tuple (7 NULL slots) with the kind, ttl or ttu,
 * the user's timer, deadlines (a list of used NULL slots, filled here with the deadlines
 * in iteration order; the tuple takes a reference) and the origin. Makes only ints and
 * floats (no GC-tracked object: see cache_getstate). 0 or -1. */
int timed_fill_state(CacheObject *self, PyObject *tuple, PyObject *deadlines);

/* cache_ops.c: a shared budget's evictions */

/* Evicts from the budget's members, by its order, until its sum is within its limit in
 * force (the limit was lowered: pressure evictions). 0 or -1. Can re-enter. */
int cacheobj_budget_shrink(BudgetObject *b);

/* Evicts from the budget's members, by its order, until `need` bytes fit under its limit
 * in force in place of what self holds in it (cacheobj_bytes_in): for a cache that joins
 * the budget with entries, or restores new ones in place of its own (__setstate__). Takes
 * nothing: the caller takes the room (ml_shared_take) with no Python code in between, and
 * evicts again if another thread took it first. ValueError when `need` cannot fit even in
 * an empty budget. 0 or -1. Can re-enter. */
int cacheobj_budget_make_room(BudgetObject *b, CacheObject *self, size_t need);

/* The bytes self holds in budget b: its own sum if it is b's member, else 0. */
size_t cacheobj_bytes_in(CacheObject *self, BudgetObject *b);

/* cache_tlfu.c — TinyLFUCache's policy state in pickles (design note there) */

/* The policy state as read from a pickle, validated; words owned (tlfu_state_free). */
typedef struct {
    uint64_t seed, hits, misses, additions;
    double window_frac, step, prev_rate;
    uint64_t *words;
    uint32_t nwords;
} tlfu_state;

/* Fills tuple (8 NULL slots) with the sketch and the climber's state, making only ints,
 * floats and bytes (no GC-tracked object: see cache_getstate). 0 or -1. */
int tlfu_fill_state(const ml_tlfu *l, PyObject *tuple);

/* Validates a policy tuple for n entries into *out. 0 or -1 (ValueError "inconsistent
 * cache state", or MemoryError); runs no Python code. */
int tlfu_read(PyObject *policy, Py_ssize_t n, tlfu_state *out);

/* Sets the sketch and the climber of the engine *e being built. 0 or -1 (MemoryError). */
int tlfu_apply(const tlfu_state *s, ml_cache *e);
void tlfu_state_free(tlfu_state *s);

/* cache_state.c */
PyObject *cache_repr(CacheObject *self);
PyObject *cache_getstate(CacheObject *self, PyObject *ignored);
PyObject *cache_setstate(CacheObject *self, PyObject *state);

/* shared.c — a budget's member registry */

/* Makes sure self can join b (room in the member array; on the free-threaded build, the
 * weak reference the budget reads it through). 0 or -1 (MemoryError); nothing changes.
 * Can re-enter (a collection, on the free-threaded build). */
int shared_prepare(BudgetObject *b, CacheObject *self);

/* self becomes a member of b (self->budget takes a new reference to b). @pre
 * shared_prepare(b, self) succeeded, self is no member. Runs no Python code. */
void shared_link(BudgetObject *b, CacheObject *self);

/* self leaves its budget's member array. The reference self->budget held moves to the
 * caller (returned; NULL if self was no member), who releases it once the engine's bytes
 * have left the budget. Runs no Python code. */
BudgetObject *shared_unlink(CacheObject *self);

/* Recounts what self's budget counts it as (MEMBER_*), after a reconfiguration. */
void shared_update_flags(CacheObject *self);

/* The members, each a new reference, in a PyMem array *out (free it with
 * shared_release). @return their number, or -1 (MemoryError). */
Py_ssize_t shared_snapshot(BudgetObject *b, CacheObject ***out);
void shared_release(CacheObject **members, Py_ssize_t n);   /* can re-enter */

/* A store's memory check: calls the follower's hook when the sum has reached check_at
 * (an error is reported as unraisable: the store succeeded). The store compares first
 * (one comparison: b->check set and the sum past check_at), then calls this. Can
 * re-enter. */
void shared_maybe_check(BudgetObject *b);

/* cache_iter.c */

/* iter(cache): live over insertion order (RuntimeError if keys change), or for timed
 * caches cachetools' snapshot of the keys, yielding those still present and alive. */
PyObject *cache_iter(CacheObject *self);
extern PyType_Spec cacheiter_spec;


#endif
