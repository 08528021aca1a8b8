/* cache.h — what the cache binding's files share.
 *
 * cache.c holds the type's construction, configuration and spec (its opening comment is
 * the design note, re-entrancy included); cache_ops.c the mapping operations and
 * eviction; cache_size.c the sizing of entries; cache_state.c repr and pickling;
 * cache_iter.c the iterators; timed.c the TTL / TLRU part. Layering (a file calls only
 * the ones after it): cache.c, cache_state.c, cache_iter.c -> cache_ops.c -> timed.c,
 * cache_size.c -> module.h.
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

typedef struct {
    PyObject_HEAD
    ml_cache c;
    ml_state *st;           /* borrowed: the instance's type keeps the module alive */
    PyObject *maxsize;      /* as given: the property and repr show it unchanged */
    PyObject *getsizeof;    /* units callable while units are on, else NULL */
    PyObject *sizeof_fn;    /* bytes callable, or NULL for the default accounting */
    PyObject *choice;       /* RRCache: choice(keys) names the victim; else NULL */
    PyObject *timer;        /* timed: the memleash._core.Timer around the user's timer */
    PyObject *ttl;          /* TTLCache: the ttl as given */
    PyObject *ttu;          /* TLRUCache: ttu(key, value, now) */
    double ttl_d;           /* TTLCache: the ttl as a double (microseconds for a timedelta) */
    PyObject *origin;       /* datetime times: the first time seen; times are kept as
                               microseconds since it. NULL while times are numbers */
    unsigned timed;         /* TIMED_* */
    unsigned timed_numbers_seen;   /* a number was read as a time: no datetimes from now on */
    PyObject *dict;
    PyObject *weakreflist;
    uint64_t config_gen;    /* bumped by every (re)configuration */
    unsigned hooks;
    unsigned units_float;   /* a float size was stored: currsize is a float until clear() */
    ml_reg reg;             /* registry node: memleash.report() (module.h) */
    /* statistics for report(): reads by c[key] and get(), entries removed to make room,
     * entries removed because their deadline passed */
    uint64_t hits, misses, evictions, expirations;
} CacheObject;


#define ENTS(self) ((self)->c.t.ents)

static inline PyObject *
cacheobj_type_name(CacheObject *self)
{
    return PyType_GetName(Py_TYPE(self));   /* new reference: the class's __name__ */
}

/* cache_ops.c */

/* Looks key (hash h) up. @return 1 found (*id set), 0 absent, -1 error. Can re-enter
 * (__eq__): *id is only valid until the next call that can. */
int cacheobj_find(CacheObject *self, PyObject *key, Py_hash_t h, uint32_t *id);

/* Empties the cache: the entries move out first, then are released. Can re-enter. */
void cacheobj_clear_entries(CacheObject *self);

/* Timed caches: removes what has expired now (no-op for the others). 0 or -1. */
int cacheobj_expire_now(CacheObject *self);

/* A flat list [k0, v0, k1, v1, ...] in iteration order; new references, no callback. */
PyObject *cacheobj_snapshot(CacheObject *self);


/* Stores (key, value) sized (units, bytes) after evicting what the budget requires, with
 * `deadline` when the cache is timed. @pre the entry alone is admitted. 0 or -1. Can
 * re-enter. */
int cacheobj_store(CacheObject *self, PyObject *key, Py_hash_t h, PyObject *value, double units,
                   size_t bytes, int units_is_float, double deadline);

/* self[key] = value with key's hash h known (the whole of __setitem__ after hashing:
 * timed caches' deadline and expiry, sizing, eviction). 0 or -1. Can re-enter. */
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

/* cache_size.c */

/* A size (maxsize, a getsizeof result) as a double; *is_float: not an int. 0 or -1. */
int cacheobj_to_units(PyObject *o, double *out, int *is_float);

/* The units of value (1 without a getsizeof): ValueError when it alone exceeds maxsize,
 * is negative or NaN. 0 or -1. Can re-enter (getsizeof). */
int cacheobj_entry_units(CacheObject *self, PyObject *value, double *units, int *is_float);

/* The accounted bytes of (key, value) (0 when bytes are off): ValueError when the entry
 * alone exceeds max_bytes. 0 or -1. Can re-enter (sizeof, __sizeof__). */
int cacheobj_entry_bytes(CacheObject *self, PyObject *key, PyObject *value, size_t *bytes);

/* currsize as it stands (expired entries of a timed cache included). New reference. */
PyObject *cacheobj_units_held(CacheObject *self);

/* The currbytes property: the accounted bytes, or (bytes not accounted as they go) the
 * default sizing of every item now. Can re-enter (__sizeof__). */
PyObject *cache_get_currbytes(CacheObject *self, void *closure);

/* cache.c */

/* Validates the limits, then empties the cache and applies them. 0 or -1. Can re-enter. */
int cacheobj_configure(CacheObject *self, PyObject *maxsize, int units_on, PyObject *max_bytes,
                       PyObject *sizeof_fn);

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
int timed_traverse(CacheObject *self, visitproc visit, void *arg);
void timed_clear(CacheObject *self);
PyObject *timed_get_timer(CacheObject *self, void *closure);
PyObject *timed_get_ttl(CacheObject *self, void *closure);
PyObject *timed_get_ttu(CacheObject *self, void *closure);
/* The wheel's expiry-cost counter (entries filed, moved or unlinked so far), for tests. */
PyObject *timed_get_expiry_work(CacheObject *self, void *closure);
extern PyType_Spec timer_spec;

/* Pickling of the timed part: None, or (kind, ttl or ttu, timer, deadlines). */
PyObject *timed_getstate(CacheObject *self);
/* Configures the timed part from that state; *deadlines (borrowed) gets the list of n
 * deadlines, or NULL for an untimed cache. 0 or -1. */
int timed_setstate(CacheObject *self, PyObject *timed, Py_ssize_t n, PyObject **deadlines);

/* cache_state.c */
PyObject *cache_repr(CacheObject *self);
PyObject *cache_getstate(CacheObject *self, PyObject *ignored);
PyObject *cache_setstate(CacheObject *self, PyObject *state);

/* cache_iter.c */

/* iter(cache): live over insertion order (RuntimeError if keys change), or for timed
 * caches cachetools' snapshot of the keys, yielding those still present and alive. */
PyObject *cache_iter(CacheObject *self);
extern PyType_Spec cacheiter_spec;

/* A live sequence view of an RRCache's keys in cachetools' key-list order (dense.h),
 * for its choice function. New reference. */
PyObject *rrkeys_new(CacheObject *self);
extern PyType_Spec rrkeys_spec;

#endif
