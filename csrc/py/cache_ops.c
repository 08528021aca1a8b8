/* cache_ops.c — the mapping operations of memleash._core.Cache: look-ups, stores with
 * eviction before insertion, and the MutableMapping methods (get, pop, setdefault,
 * popitem, clear). The design and the note on re-entrancy are at the top of cache.c; the
 * rules it states are kept here line by line ("can re-enter" marks every call that can
 * run Python code).
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
 * once. @return 0 if it freed something, -1 with an exception otherwise. */
static int
evict_via_popitem(CacheObject *self)
{
    uint32_t used = self->c.t.used;
    ml_budget before = self->c.budget;
    PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, self->st->str_popitem);   /* can re-enter */
    if (r == NULL) {
        return -1;
    }
    /* judged while r still holds what was evicted: releasing it may run a __del__ that
     * stores something new, which is no failure of popitem() */
    const ml_budget *now = &self->c.budget;
    int freed = self->c.t.used < used || now->bytes < before.bytes ||
                (now->float_mode ? (before.float_mode && now->funits < before.funits)
                                 : now->units < before.units);
    self->evictions += (uint64_t)freed;
    Py_DECREF(r);   /* can re-enter */
    if (!freed) {
        PyErr_Format(PyExc_RuntimeError,
                     "%.200s.popitem() freed no room: cannot make room for a new item",
                     Py_TYPE(self)->tp_name);
        return -1;
    }
    return 0;
}

/* Stores (key, value) sized (units, bytes), evicting first until both budgets hold.
 * @pre the entry alone is admitted (entry_units / entry_bytes checked it). */
int
cacheobj_store(CacheObject *self, PyObject *key, Py_hash_t h, PyObject *value, ml_size units,
               size_t bytes, double deadline)
{
    deferred d;
    d.n = 0;
    uint32_t id;
    ml_cache_prefetch(&self->c, (uint64_t)h);   /* TinyLFU counts the key when it stores it */
restart:;
    int found = cache_find(self, key, h, &id);   /* can re-enter (__eq__) */
    if (found < 0) {
        goto error;
    }
    if (!found) {
        id = ML_NIL;
    }
    int fit;
    while ((fit = ml_cache_fits(&self->c, id, units, bytes)) != ML_FIT_YES) {
        if (fit == ML_FIT_OVERFLOW) {
            PyErr_SetString(PyExc_OverflowError,
                            "cache size too large: memleash counts currsize exactly up to 2**63 - 1 "
                            "and currbytes up to 2**64 - 2");
            goto error;
        }
        /* Python code chooses or removes the victim: one popitem() at a time, then
         * look again (RRCache's choice() counts as such code) */
        if ((self->hooks & (HOOK_POPITEM | HOOK_DELITEM)) || self->c.kind == ML_POLICY_RANDOM) {
            defer_flush(&d);
            if (evict_via_popitem(self) < 0) {
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
    defer_flush(&d);
    Py_XDECREF(old);   /* can re-enter */
    return 0;
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
    for (int attempt = 0;; attempt++) {
        if (attempt > ML_TABLE_MAX_RESTARTS) {
            PyObject *name = cacheobj_type_name(self);
            if (name != NULL) {
                PyErr_Format(PyExc_RuntimeError,
                             "%U reconfigured by its callbacks (getsizeof, sizeof, the timer, ttu, "
                             "expire) %d times during one store", name, ML_TABLE_MAX_RESTARTS);
                Py_DECREF(name);
            }
            return -1;
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
                return -1;
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
            cacheobj_entry_bytes(self, key, value, &bytes) < 0) {
            goto next;
        }
        if (gen == self->config_gen) {
            rc = cacheobj_store(self, key, h, value, units, bytes, deadline);
            if (timed) {
                timed_exit(tm);
            }
            return rc;
        }
        rc = 1;   /* reconfigured by a callback: size the entry again under the new settings */
    next:
        if (timed) {
            timed_exit(tm);
        }
        if (rc <= 0) {
            return rc;
        }
    }
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
        PyObject *keys = rrkeys_new(self);
        if (keys == NULL) {
            return -1;
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

static PyObject *
popitem_impl(CacheObject *self)
{
    uint32_t victim;
    PyObject *chosen = NULL, *pair = NULL;
    if (self->c.kind == ML_POLICY_RANDOM) {
        if (choose_random(self, &victim, &chosen) < 0) {
            return NULL;
        }
    }
    else if ((victim = ml_cache_victim(&self->c)) == ML_NIL) {
        raise_empty(self);
        return NULL;
    }
    int insertion = self->c.kind == ML_POLICY_INSERTION;
    if ((self->hooks & HOOK_DELITEM) || (insertion && (self->hooks & HOOK_GETITEM))) {
        /* as cachetools: value = self[key] (Cache) or the stored value (the others);
         * then del self[key] */
        PyObject *key = Py_NewRef((PyObject *)ENTS(self)[victim].key);
        PyObject *value = insertion ? PyObject_GetItem((PyObject *)self, key)   /* can re-enter */
                                    : Py_NewRef((PyObject *)ENTS(self)[victim].value);
        if (value != NULL && PyObject_DelItem((PyObject *)self, key) == 0) {   /* can re-enter */
            pair = PyTuple_Pack(2, key, value);
        }
        Py_DECREF(key);
        Py_XDECREF(value);
        goto done;
    }
    pair = PyTuple_New(2);
    if (pair == NULL) {
        goto done;
    }
    void *k, *v;
    cacheobj_keys_change(self);
    ml_cache_remove(&self->c, victim, &k, &v);
    ML_CACHE_CHECK(&self->c);
    PyTuple_SET_ITEM(pair, 0, (PyObject *)k);   /* steals the cache's references */
    PyTuple_SET_ITEM(pair, 1, (PyObject *)v);
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
