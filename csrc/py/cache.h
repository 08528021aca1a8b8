/* cache.h — what the cache binding's files share (cache.c, cache_state.c, cache_iter.c).
 *
 * cache.c holds the type's mapping operations, eviction and configuration (its opening
 * comment is the design note, re-entrancy included); cache_state.c its repr and pickling;
 * cache_iter.c the key iterator.
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
};

typedef struct {
    PyObject_HEAD
    ml_cache c;
    ml_state *st;           /* borrowed: the instance's type keeps the module alive */
    PyObject *maxsize;      /* as given: the property and repr show it unchanged */
    PyObject *getsizeof;    /* units callable while units are on, else NULL */
    PyObject *sizeof_fn;    /* bytes callable, or NULL for the default accounting */
    PyObject *choice;       /* RRCache: choice(keys) names the victim; else NULL */
    PyObject *dict;
    PyObject *weakreflist;
    uint64_t config_gen;    /* bumped by every (re)configuration */
    unsigned hooks;
    unsigned units_float;   /* a float size was stored: currsize is a float until clear() */
} CacheObject;


#define ENTS(self) ((self)->c.t.ents)

static inline PyObject *
cacheobj_type_name(CacheObject *self)
{
    return PyType_GetName(Py_TYPE(self));   /* new reference: the class's __name__ */
}

/* cache.c */

/* A flat list [k0, v0, k1, v1, ...] in iteration order; new references, no callback. */
PyObject *cacheobj_snapshot(CacheObject *self);

/* A size (maxsize, a getsizeof result) as a double; *is_float: not an int. 0 or -1. */
int cacheobj_to_units(PyObject *o, double *out, int *is_float);

/* Stores (key, value) sized (units, bytes) after evicting what the budget requires.
 * @pre the entry alone is admitted. 0 or -1. Can re-enter. */
int cacheobj_store(CacheObject *self, PyObject *key, Py_hash_t h, PyObject *value, double units,
                   size_t bytes, int units_is_float);

/* Validates the limits, then empties the cache and applies them. 0 or -1. Can re-enter. */
int cacheobj_configure(CacheObject *self, PyObject *maxsize, int units_on, PyObject *max_bytes,
                       PyObject *sizeof_fn);

/* Sets self->getsizeof from the class override or instance attribute. 0 or -1. */
int cacheobj_resolve_getsizeof(CacheObject *self);

PyObject *cache_get_currsize(CacheObject *self, void *closure);
PyObject *cache_get_maxbytes(CacheObject *self, void *closure);

/* cache_state.c */
PyObject *cache_repr(CacheObject *self);
PyObject *cache_getstate(CacheObject *self, PyObject *ignored);
PyObject *cache_setstate(CacheObject *self, PyObject *state);

/* cache_iter.c */
PyObject *cache_iter(CacheObject *self);
extern PyType_Spec cacheiter_spec;

/* A live sequence view of an RRCache's keys in cachetools' key-list order (dense.h),
 * for its choice function. New reference. */
PyObject *rrkeys_new(CacheObject *self);
extern PyType_Spec rrkeys_spec;

#endif
