/* cache.c — memleash._core.Cache: the C type under memleash.Cache, LRUCache, ...
 *
 * One C type carries every cache class; the eviction policy is chosen when an instance
 * is created, from the class attribute `_ml_policy` that the Python layer sets
 * (memleash.Cache: insertion order, memleash.LRUCache: recency). The Python layer
 * subclasses this type together with collections.abc.MutableMapping, which supplies
 * the mixins cachetools also inherits (keys/values/items views, update, ==).
 *
 * Behaviour is cachetools 8.0.2's (requirements/pins.txt), method by method:
 *   c[k]        hit: refresh recency (LRU); miss: self.__missing__(k) (KeyError(k))
 *   c[k] = v    getsizeof(v) > maxsize -> ValueError('value too large'); then
 *               `while currsize + diff > maxsize: self.popitem()`; then store
 *   popitem()   victim per policy; empty: KeyError('<Name> is empty') from None for LRU,
 *               a bare KeyError from None for Cache (MutableMapping.popitem)
 *   get/pop/setdefault go through `key in self`, `self[key]`, `del self[key]`
 * plus memleash's byte budget (max_bytes / sizeof / currbytes), checked before the
 * entry is stored, together with maxsize.
 *
 * Subclass hooks. When an instance is created, tp_new compares the class's __getitem__,
 * __setitem__, __delitem__, __contains__, __missing__, popitem and getsizeof with this
 * type's own; each override sets a bit in
 * `hooks`, and only then do the internal paths call the Python-level method (as
 * cachetools calls `self.<name>`). A class without overrides runs the C paths alone.
 *
 * Note on re-entrancy
 * -------------------
 * These calls can run arbitrary Python code, which may mutate or clear this cache:
 *   - PyObject_Hash(key) and the equality callback (key.__eq__) during a look-up;
 *   - getsizeof(value) and sizeof(key, value) while an assignment sizes its entry;
 *   - the overridden hooks above, e.g. self.popitem() during eviction;
 *   - every Py_DECREF of a key or value (its __del__, or a weakref callback).
 * How the code stays consistent:
 *   - the engine is never left half-mutated across such a call; ml_table_find restarts
 *     its probe when the table's version changed during __eq__ (as dictobject.c does);
 *   - a path that holds an entry id across a call re-finds the key afterwards (cacheobj_store()
 *     restarts after every self.popitem() and after releasing evicted entries), and an
 *     assignment re-sizes its entry if __init__/__setstate__ reconfigured the cache
 *     meanwhile (config_gen);
 *   - references the engine gives back (evicted, replaced, removed, cleared) are
 *     released only once every invariant holds again: evictions collect them in a
 *     `deferred` buffer, clear() moves the whole table out before releasing anything;
 *   - keys are held by a new reference while their __eq__ runs.
 * Lines that can re-enter carry the comment "can re-enter".
 */
#include "py/cache.h"

#include <math.h>
#include <structmember.h>

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
static int
eq_callback(void *ctx, void *stored, void *key)
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
    int st = ml_table_find(&self->c.t, (uint64_t)h, key, eq_callback, NULL, id);
    return st == ML_OK ? 1 : (st == ML_NOT_FOUND ? 0 : -1);
}

/* Raises KeyError(key) — with the key as the single argument even when it is a tuple. */
static void
set_key_error(PyObject *key)
{
    PyObject *exc = PyObject_CallOneArg(PyExc_KeyError, key);
    if (exc != NULL) {
        PyErr_SetObject(PyExc_KeyError, exc);
        Py_DECREF(exc);
    }
}

/* Converts a size (maxsize, a getsizeof result) to a double. Ints too large for a double
 * become +-inf (cachetools compares them exactly; they are beyond any real budget).
 * *is_float: the number is not an int (cachetools' currsize then turns float). */
int
cacheobj_to_units(PyObject *o, double *out, int *is_float)
{
    if (PyLong_Check(o)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (overflow != 0) {
            *out = overflow > 0 ? INFINITY : -INFINITY;
        }
        else if (v > (1LL << 53) || v < -(1LL << 53)) {
            *out = PyLong_AsDouble(o);
        }
        else {
            *out = (double)v;
        }
        *is_float = 0;
        return 0;
    }
    double d = PyFloat_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    *out = d;
    *is_float = 1;
    return 0;
}

/* A flat list [k0, v0, k1, v1, ...] in iteration order: new references, no callback. */
PyObject *
cacheobj_snapshot(CacheObject *self)
{
    PyObject *list = PyList_New((Py_ssize_t)self->c.t.used * 2);
    if (list == NULL) {
        return NULL;
    }
    Py_ssize_t i = 0;
    for (uint32_t id = ml_cache_first(&self->c); id != ML_NIL; id = ml_cache_next(&self->c, id)) {
        PyList_SET_ITEM(list, i++, Py_NewRef((PyObject *)ENTS(self)[id].key));
        PyList_SET_ITEM(list, i++, Py_NewRef((PyObject *)ENTS(self)[id].value));
    }
    return list;
}

/* Empties the cache: the entries move out first, then are released. */
static void
clear_entries(CacheObject *self)
{
    ml_table out;
    ml_cache_steal(&self->c, &out);
    self->units_float = 0;
    for (uint32_t id = 0; id < out.top; id++) {
        if (out.ents[id].key != NULL) {
            Py_DECREF((PyObject *)out.ents[id].key);     /* can re-enter */
            Py_DECREF((PyObject *)out.ents[id].value);   /* can re-enter */
        }
    }
    ml_table_free(&out);
}

int
cacheobj_find(CacheObject *self, PyObject *key, Py_hash_t h, uint32_t *id)
{
    return cache_find(self, key, h, id);
}

void
cacheobj_clear_entries(CacheObject *self)
{
    clear_entries(self);
}

/* ------------------------------------------------------------------------------------
 * Sizing an entry: units (cachetools' getsizeof) and bytes (memleash's sizeof)
 */
/* sys.getsizeof(o), computed as CPython 3.11 computes it for the exact types a cache
 * most often holds (bytes, int, float, compact str without a wchar_t copy), and through
 * _PySys_GetSizeOf — a method call — for anything else, subclasses included. None of
 * the fast-path types is GC-tracked, so no GC header is added. tests/test_max_bytes.py
 * pins equality with sys.getsizeof. @return (size_t)-1 with an exception on error. */
static size_t
default_sizeof(PyObject *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    if (tp == &PyBytes_Type) {
        return (size_t)PyBytes_Type.tp_basicsize + (size_t)Py_SIZE(o);
    }
    if (tp == &PyLong_Type) {
        /* at least one digit: zero is allocated with one too */
        return offsetof(PyLongObject, ob_digit) + (size_t)Py_MAX(Py_ABS(Py_SIZE(o)), 1) * sizeof(digit);
    }
    if (tp == &PyFloat_Type) {
        return sizeof(PyFloatObject);
    }
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    if (tp == &PyUnicode_Type && PyUnicode_IS_COMPACT(o) && ((PyASCIIObject *)o)->wstr == NULL) {
        size_t len = (size_t)PyUnicode_GET_LENGTH(o);
        if (PyUnicode_IS_ASCII(o)) {
            return sizeof(PyASCIIObject) + len + 1;   /* utf8 is the data itself */
        }
        const PyCompactUnicodeObject *u = (const PyCompactUnicodeObject *)o;
        size_t n = sizeof(PyCompactUnicodeObject) + (len + 1) * PyUnicode_KIND(o);
        if (u->utf8 != NULL) {
            n += (size_t)u->utf8_length + 1;
        }
        return n;
    }
#endif
    return _PySys_GetSizeOf(o);   /* can re-enter (__sizeof__) */
}

static int
entry_units(CacheObject *self, PyObject *value, double *units, int *is_float)
{
    *is_float = 0;
    if (self->getsizeof == NULL) {
        *units = 1.0;
        if (1.0 > self->c.budget.maxunits) {
            PyErr_SetString(PyExc_ValueError, "value too large");
            return -1;
        }
        return 0;
    }
    PyObject *callable = Py_NewRef(self->getsizeof);
    PyObject *r = PyObject_CallOneArg(callable, value);   /* can re-enter */
    Py_DECREF(callable);
    if (r == NULL) {
        return -1;
    }
    int rc = cacheobj_to_units(r, units, is_float);
    Py_DECREF(r);
    if (rc < 0) {
        return -1;
    }
    if (*units > self->c.budget.maxunits) {
        PyErr_SetString(PyExc_ValueError, "value too large");
        return -1;
    }
    if (*units < 0) {
        PyErr_SetString(PyExc_ValueError, "value size must be non-negative");
        return -1;
    }
    if (isnan(*units)) {
        PyErr_SetString(PyExc_ValueError, "value size must not be NaN");
        return -1;
    }
    return 0;
}

static int
entry_bytes(CacheObject *self, PyObject *key, PyObject *value, size_t *bytes)
{
    *bytes = 0;
    if (!self->c.bytes_on) {
        return 0;
    }
    if (self->sizeof_fn != NULL) {
        PyObject *callable = Py_NewRef(self->sizeof_fn);
        PyObject *r = PyObject_CallFunctionObjArgs(callable, key, value, NULL);   /* can re-enter */
        Py_DECREF(callable);
        if (r == NULL) {
            return -1;
        }
        if (!PyLong_Check(r)) {
            PyErr_Format(PyExc_TypeError, "sizeof must return an int, not %.200s",
                         Py_TYPE(r)->tp_name);
            Py_DECREF(r);
            return -1;
        }
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(r, &overflow);
        Py_DECREF(r);
        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (v < 0 || overflow < 0) {
            PyErr_SetString(PyExc_ValueError, "sizeof must return a non-negative int");
            return -1;
        }
        *bytes = overflow > 0 ? SIZE_MAX : (size_t)v;
    }
    else {
        size_t k = default_sizeof(key);   /* can re-enter (__sizeof__) */
        if (k == (size_t)-1 && PyErr_Occurred()) {
            return -1;
        }
        size_t v = default_sizeof(value);   /* can re-enter (__sizeof__) */
        if (v == (size_t)-1 && PyErr_Occurred()) {
            return -1;
        }
        *bytes = k + v + ml_cache_entry_overhead(&self->c);
    }
    if (*bytes > self->c.budget.maxbytes) {
        PyErr_Format(PyExc_ValueError, "value too large: entry of %zu bytes exceeds max_bytes=%zu",
                     *bytes, self->c.budget.maxbytes);
        return -1;
    }
    return 0;
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
    double units = self->c.budget.units;
    size_t bytes = self->c.budget.bytes;
    PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, self->st->str_popitem);   /* can re-enter */
    if (r == NULL) {
        return -1;
    }
    /* judged while r still holds what was evicted: releasing it may run a __del__ that
     * stores something new, which is no failure of popitem() */
    int freed = self->c.t.used < used || self->c.budget.units < units || self->c.budget.bytes < bytes;
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
cacheobj_store(CacheObject *self, PyObject *key, Py_hash_t h, PyObject *value, double units, size_t bytes,
      int units_is_float, double deadline)
{
    deferred d;
    d.n = 0;
    uint32_t id;
restart:;
    int found = cache_find(self, key, h, &id);   /* can re-enter (__eq__) */
    if (found < 0) {
        goto error;
    }
    if (!found) {
        id = ML_NIL;
    }
    while (!ml_cache_fits(&self->c, id, units, bytes)) {
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
        ml_cache_remove(&self->c, victim, &k, &v);
        self->evictions++;
        d.objs[d.n++] = (PyObject *)k;   /* released below, once consistent */
        d.objs[d.n++] = (PyObject *)v;
        if (d.n + 2 > DEFER_MAX && !ml_cache_fits(&self->c, id, units, bytes)) {
            defer_flush(&d);   /* can re-enter: the entry id may be stale */
            goto restart;
        }
    }
    PyObject *old = NULL;
    if (id == ML_NIL) {
        int rc = ml_cache_reserve(&self->c);
        if (rc != ML_OK) {
            if (rc == ML_ERR_FULL) {
                PyErr_SetString(PyExc_OverflowError, "cache holds the most entries it can");
            }
            else {
                PyErr_NoMemory();
            }
            goto error;   /* entries evicted above stay evicted: still within budget */
        }
        id = ml_cache_insert(&self->c, (uint64_t)h, Py_NewRef(key), Py_NewRef(value), units, bytes);
    }
    else {
        old = (PyObject *)ml_cache_replace(&self->c, id, Py_NewRef(value), units, bytes);
    }
    if (self->c.deadlines_on) {
        ml_cache_set_deadline(&self->c, id, deadline);
    }
    if (units_is_float) {
        self->units_float = 1;
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
    for (;;) {
        uint64_t gen = self->config_gen;
        double units, now = 0.0, deadline = 0.0;
        PyObject *tm = NULL;
        int is_float, rc = -1, timed = self->timed != TIMED_NONE;
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
        if (entry_units(self, value, &units, &is_float) < 0 ||
            entry_bytes(self, key, value, &bytes) < 0) {
            goto next;
        }
        if (gen == self->config_gen) {
            rc = cacheobj_store(self, key, h, value, units, bytes, is_float, deadline);
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
            set_key_error(key);
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
    ml_cache_remove(&self->c, id, &k, &v);
    ML_CACHE_CHECK(&self->c);
    Py_DECREF((PyObject *)k);   /* can re-enter */
    Py_DECREF((PyObject *)v);   /* can re-enter */
    if (timed) {
        timed_exit(tm);
    }
    if (!alive) {
        set_key_error(key);   /* as cachetools: an expired entry is removed, then KeyError */
        return -1;
    }
    return 0;
}

static int
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
        set_key_error(key);
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

static PyObject *
cache_subscript(CacheObject *self, PyObject *key)
{
    Py_hash_t h = PyObject_Hash(key);   /* can re-enter */
    if (h == -1) {
        return NULL;
    }
    if (self->timed != TIMED_NONE) {
        return timed_subscript(self, key, h);
    }
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

static int
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

static Py_ssize_t
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

static PyObject *
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
        ml_cache_remove(&self->c, id, &k, &v);
        ML_CACHE_CHECK(&self->c);
        Py_DECREF((PyObject *)k);   /* can re-enter */
        return (PyObject *)v;   /* the cache's reference passes to the caller */
    }
absent:
    if (dflt == NULL) {
        set_key_error(key);
        return NULL;
    }
    return Py_NewRef(dflt);
}

static PyObject *
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

static PyObject *
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
    if (self->c.dense.n == 0) {
        raise_empty(self);
        return -1;
    }
    if (self->choice == NULL) {
        PyErr_SetString(PyExc_TypeError, "RRCache has no choice function (was __init__ called?)");
        return -1;
    }
    PyObject *keys = rrkeys_new(self);
    if (keys == NULL) {
        return -1;
    }
    PyObject *choice = Py_NewRef(self->choice);
    PyObject *key = PyObject_CallOneArg(choice, keys);   /* can re-enter */
    Py_DECREF(choice);
    Py_DECREF(keys);
    if (key == NULL) {
        return -1;
    }
    Py_hash_t h = PyObject_Hash(key);   /* can re-enter */
    int found = h == -1 ? -1 : cache_find(self, key, h, id);   /* can re-enter */
    if (found <= 0) {
        if (found == 0) {
            set_key_error(key);   /* as cachetools: the chosen key must be in the cache */
        }
        Py_DECREF(key);
        return -1;
    }
    *chosen = key;
    return 0;
}

static PyObject *
popitem_impl(CacheObject *self);

/* popitem(): timed caches expire first, with the time frozen (cachetools). */
static PyObject *
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
    ml_cache_remove(&self->c, victim, &k, &v);
    ML_CACHE_CHECK(&self->c);
    PyTuple_SET_ITEM(pair, 0, (PyObject *)k);   /* steals the cache's references */
    PyTuple_SET_ITEM(pair, 1, (PyObject *)v);
done:
    Py_XDECREF(chosen);
    return pair;
}

static PyObject *
cache_clear(CacheObject *self, PyObject *Py_UNUSED(ignored))
{
    clear_entries(self);
    Py_RETURN_NONE;
}

static PyObject *
cache_missing_method(CacheObject *Py_UNUSED(self), PyObject *key)
{
    set_key_error(key);
    return NULL;
}

static PyObject *
cache_getsizeof(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(value))
{
    return PyLong_FromLong(1);
}

static PyObject *
cache_sizeof(CacheObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSize_t((size_t)Py_TYPE(self)->tp_basicsize + ml_cache_sizeof(&self->c));
}

/* _ml_stats(): what memleash.report() shows of this cache, read without side effects
 * (nothing expires): a dict of plain values. Can re-enter (the default byte sizing calls
 * sys.getsizeof on every key and value when the cache does not account as it goes; if
 * that raises, currbytes is None). */
static PyObject *cache_get_currbytes(CacheObject *self, void *closure);
static PyObject *units_held(CacheObject *self);

static PyObject *
cache_stats(CacheObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *currbytes = NULL, *currsize = NULL, *maxbytes = NULL, *dict = NULL;
    currbytes = cache_get_currbytes(self, NULL);   /* can re-enter */
    if (currbytes == NULL) {
        if (PyErr_ExceptionMatches(PyExc_MemoryError)) {
            goto error;
        }
        /* a key or value whose __sizeof__ raises: the report goes on, without this figure */
        PyErr_Clear();
        currbytes = Py_NewRef(Py_None);
    }
    currsize = units_held(self);
    maxbytes = currsize ? cache_get_maxbytes(self, NULL) : NULL;
    if (maxbytes == NULL) {
        goto error;
    }
    dict = Py_BuildValue(
        "{s:n,s:O,s:O,s:O,s:O,s:n,s:K,s:K,s:K,s:K,s:O}",
        "entries", (Py_ssize_t)self->c.t.used,
        "currsize", currsize,
        "maxsize", self->maxsize,
        "currbytes", currbytes,
        "maxbytes", maxbytes,
        "own_bytes", (Py_ssize_t)((size_t)Py_TYPE(self)->tp_basicsize + ml_cache_sizeof(&self->c)),
        "hits", (unsigned long long)self->hits,
        "misses", (unsigned long long)self->misses,
        "evictions", (unsigned long long)self->evictions,
        "expirations", (unsigned long long)self->expirations,
        "timed", self->timed != TIMED_NONE ? Py_True : Py_False);
    if (dict == NULL || ml_reg_describe(&self->reg, dict) < 0) {
        goto error;
    }
    Py_DECREF(currbytes);
    Py_DECREF(currsize);
    Py_DECREF(maxbytes);
    return dict;
error:
    Py_XDECREF(currbytes);
    Py_XDECREF(currsize);
    Py_XDECREF(maxbytes);
    Py_XDECREF(dict);
    return NULL;
}

/* ------------------------------------------------------------------------------------
 * Properties
 */
static PyObject *
cache_get_maxsize(CacheObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->maxsize);
}

/* currsize as it stands (expired entries of a timed cache included). New reference. */
static PyObject *
units_held(CacheObject *self)
{
    if (!self->c.units_on) {
        return PyLong_FromUnsignedLong(self->c.t.used);
    }
    double u = self->c.budget.units;
    if (self->units_float || !isfinite(u)) {
        return PyFloat_FromDouble(u);
    }
    return PyLong_FromDouble(u);
}

PyObject *
cache_get_currsize(CacheObject *self, void *Py_UNUSED(closure))
{
    if (self->timed != TIMED_NONE && expire_now(self) < 0) {
        return NULL;
    }
    return units_held(self);
}

PyObject *
cache_get_maxbytes(CacheObject *self, void *Py_UNUSED(closure))
{
    if (self->c.budget.maxbytes == SIZE_MAX) {
        Py_RETURN_NONE;
    }
    return PyLong_FromSize_t(self->c.budget.maxbytes);
}

static PyObject *
cache_get_currbytes(CacheObject *self, void *Py_UNUSED(closure))
{
    if (self->c.bytes_on) {
        return PyLong_FromSize_t(self->c.budget.bytes);
    }
    /* not accounted as it goes (no max_bytes, no sizeof): the default sizing, on demand */
    PyObject *items = cacheobj_snapshot(self);
    if (items == NULL) {
        return NULL;
    }
    size_t total = 0, overhead = ml_cache_entry_overhead(&self->c);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        size_t n = default_sizeof(PyList_GET_ITEM(items, i));   /* can re-enter */
        if (n == (size_t)-1 && PyErr_Occurred()) {
            Py_DECREF(items);
            return NULL;
        }
        total += n + (i % 2 ? overhead : 0);
    }
    Py_DECREF(items);
    return PyLong_FromSize_t(total);
}

/* ------------------------------------------------------------------------------------
 * Construction and configuration
 */
static void
detect_hooks(CacheObject *self, ml_state *st)
{
    PyTypeObject *type = Py_TYPE(self), *base = st->CacheType;
    const ml_hook names[] = {
        {st->str_getitem, HOOK_GETITEM}, {st->str_setitem, HOOK_SETITEM},
        {st->str_delitem, HOOK_DELITEM}, {st->str_contains, HOOK_CONTAINS},
        {st->str_missing, HOOK_MISSING}, {st->str_popitem, HOOK_POPITEM},
        {st->str_getsizeof, HOOK_GETSIZEOF},
    };
    self->hooks = ml_overrides(type, base, names, sizeof(names) / sizeof(names[0]));
    /* timed classes publish the C _ml_expire as `expire`; anything else there overrides it
     * (a class without `expire`, untimed, overrides nothing) */
    PyObject *expire = _PyType_Lookup(type, st->str_expire);   /* borrowed */
    if (expire != NULL && expire != _PyType_Lookup(base, st->str_ml_expire)) {
        self->hooks |= HOOK_EXPIRE;
    }
}

static PyObject *
cache_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwds))
{
    ml_state *st = ml_state_of_type(type);
    if (st == NULL) {
        return NULL;
    }
    ml_policy kind = ML_POLICY_INSERTION;
    PyObject *policy = _PyType_Lookup(type, st->str_policy);   /* borrowed */
    if (policy != NULL) {
        long p = PyLong_Check(policy) ? PyLong_AsLong(policy) : -1;
        if (p < 0 || p >= ML_POLICY_COUNT) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "_ml_policy must be one of memleash._core.POLICY_*");
            return NULL;
        }
        kind = (ml_policy)p;
    }
    CacheObject *self = (CacheObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->st = st;
    ml_cache_init(&self->c, &ml_alloc_pymem, kind, 0, 0, 0.0, SIZE_MAX);
    self->maxsize = Py_NewRef(Py_None);   /* until __init__ / __setstate__ */
    detect_hooks(self, st);
    ml_reg_link(st, &self->reg, (PyObject *)self);
    return (PyObject *)self;
}

/* Puts the cache in its configured, empty state. Steals nothing. */
int
cacheobj_configure(CacheObject *self, PyObject *maxsize, int units_on, PyObject *max_bytes, PyObject *sizeof_fn)
{
    double maxunits;
    int is_float;
    if (cacheobj_to_units(maxsize, &maxunits, &is_float) < 0) {
        return -1;
    }
    if (isnan(maxunits)) {
        PyErr_SetString(PyExc_ValueError, "maxsize must not be NaN");
        return -1;
    }
    if (maxunits < 0) {
        PyErr_SetString(PyExc_ValueError, "maxsize must be non-negative");
        return -1;
    }
    size_t maxbytes = SIZE_MAX;
    if (max_bytes != Py_None) {
        if (!PyLong_Check(max_bytes) || PyBool_Check(max_bytes)) {
            PyErr_Format(PyExc_TypeError, "max_bytes must be an int or None, not %.200s",
                         Py_TYPE(max_bytes)->tp_name);
            return -1;
        }
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(max_bytes, &overflow);
        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (v < 0 || overflow < 0) {
            PyErr_SetString(PyExc_ValueError, "max_bytes must be non-negative");
            return -1;
        }
        maxbytes = (overflow > 0 || (unsigned long long)v >= SIZE_MAX) ? SIZE_MAX - 1 : (size_t)v;
    }
    if (sizeof_fn != Py_None && !PyCallable_Check(sizeof_fn)) {
        PyErr_Format(PyExc_TypeError, "sizeof must be callable or None, not %.200s",
                     Py_TYPE(sizeof_fn)->tp_name);
        return -1;
    }
    /* everything validated: from here on the cache changes */
    clear_entries(self);   /* can re-enter (releases old entries), leaves it empty */
    ml_policy kind = self->c.kind;
    ml_cache_free(&self->c);
    ml_cache_init(&self->c, &ml_alloc_pymem, kind, units_on, max_bytes != Py_None || sizeof_fn != Py_None,
                  maxunits, maxbytes);
    Py_XSETREF(self->maxsize, Py_NewRef(maxsize));
    Py_XSETREF(self->sizeof_fn, sizeof_fn == Py_None ? NULL : Py_NewRef(sizeof_fn));
    self->units_float = 0;
    self->timed = TIMED_NONE;   /* the new engine has no deadlines: _ml_configure_timed adds them */
    timed_clear(self);
    self->config_gen++;
    return 0;
}

/* The units callable: an overriding getsizeof, else one set on the instance. */
int
cacheobj_resolve_getsizeof(CacheObject *self)
{
    PyObject *fn = NULL;
    if (self->c.units_on) {
        fn = PyObject_GetAttr((PyObject *)self, self->st->str_getsizeof);
        if (fn == NULL) {
            return -1;
        }
    }
    Py_XSETREF(self->getsizeof, fn);
    return 0;
}

static int
cache_init(CacheObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"maxsize", "getsizeof", "max_bytes", "sizeof", "name", NULL};
    PyObject *maxsize, *getsizeof = Py_None, *max_bytes = Py_None, *sizeof_fn = Py_None;
    PyObject *name = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O$OOO:Cache", kwlist, &maxsize, &getsizeof,
                                     &max_bytes, &sizeof_fn, &name)) {
        return -1;
    }
    if (name != Py_None && !PyUnicode_Check(name)) {
        return ml_reg_set_name(&self->reg, name);   /* the TypeError, before any change */
    }
    if (getsizeof != Py_None && !PyCallable_Check(getsizeof)) {
        PyErr_Format(PyExc_TypeError, "getsizeof must be callable or None, not %.200s",
                     Py_TYPE(getsizeof)->tp_name);
        return -1;
    }
    int units_on = getsizeof != Py_None || (self->hooks & HOOK_GETSIZEOF);
    if (cacheobj_configure(self, maxsize, units_on, max_bytes, sizeof_fn) < 0) {
        return -1;
    }
    /* as cachetools: a getsizeof argument becomes an instance attribute */
    if (getsizeof != Py_None &&
        PyObject_SetAttr((PyObject *)self, self->st->str_getsizeof, getsizeof) < 0) {
        return -1;
    }
    if (ml_reg_set_name(&self->reg, name) < 0) {
        return -1;
    }
    return cacheobj_resolve_getsizeof(self);
}

/* ------------------------------------------------------------------------------------
 * GC support and deallocation
 */
static int
cache_traverse(CacheObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    const ml_table *t = &self->c.t;
    for (uint32_t id = 0; id < t->top; id++) {
        if (t->ents[id].key != NULL) {
            Py_VISIT((PyObject *)t->ents[id].key);
            Py_VISIT((PyObject *)t->ents[id].value);
        }
    }
    Py_VISIT(self->maxsize);
    Py_VISIT(self->getsizeof);
    Py_VISIT(self->sizeof_fn);
    Py_VISIT(self->choice);
    Py_VISIT(self->dict);
    if (timed_traverse(self, visit, arg) < 0) {
        return -1;
    }
    return 0;
}

static int
cache_tp_clear(CacheObject *self)
{
    clear_entries(self);
    Py_CLEAR(self->maxsize);
    Py_CLEAR(self->getsizeof);
    Py_CLEAR(self->sizeof_fn);
    Py_CLEAR(self->choice);
    Py_CLEAR(self->dict);
    timed_clear(self);
    return 0;
}

static void
cache_dealloc(CacheObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    ml_reg_unlink(self->st, &self->reg);   /* first: report() must not find it dying */
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, cache_dealloc)
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    (void)cache_tp_clear(self);
    ml_cache_free(&self->c);
    tp->tp_free((PyObject *)self);
    Py_TRASHCAN_END
    Py_DECREF(tp);
}

/* ------------------------------------------------------------------------------------
 * Type specs
 */
PyDoc_STRVAR(cache_doc,
"Cache(maxsize, getsizeof=None, *, max_bytes=None, sizeof=None, name=None)\n--\n\n"
"The C engine under memleash's caches; use memleash.Cache or memleash.LRUCache.");

static PyMethodDef cache_methods[] = {
    {"get", (PyCFunction)(void (*)(void))cache_get, METH_FASTCALL | METH_KEYWORDS,
     "get($self, /, key, default=None)\n--\n\n"
     "The value for key (refreshing it), else default."},
    {"pop", (PyCFunction)(void (*)(void))cache_pop, METH_FASTCALL | METH_KEYWORDS,
     "pop(key[, default]): remove key and return its value; KeyError without a default."},
    {"setdefault", (PyCFunction)(void (*)(void))cache_setdefault, METH_FASTCALL | METH_KEYWORDS,
     "setdefault($self, /, key, default=None)\n--\n\n"
     "The value for key, storing default if absent."},
    {"popitem", (PyCFunction)cache_popitem, METH_NOARGS,
     "popitem($self, /)\n--\n\nRemove and return the (key, value) pair the policy evicts next."},
    {"clear", (PyCFunction)cache_clear, METH_NOARGS, "clear($self, /)\n--\n\nRemove every item."},
    {"__missing__", (PyCFunction)cache_missing_method, METH_O,
     "__missing__($self, key, /)\n--\n\n"
     "Called by c[key] on a miss; raises KeyError(key). Override to compute values."},
    {"getsizeof", (PyCFunction)cache_getsizeof, METH_O | METH_STATIC,
     "getsizeof(value, /)\n--\n\n"
     "Return the size of a cache element's value (1 unless overridden or given)."},
    {"__sizeof__", (PyCFunction)cache_sizeof, METH_NOARGS,
     "__sizeof__($self, /)\n--\n\nBytes the cache itself owns (not its keys and values)."},
    {"_ml_stats", (PyCFunction)cache_stats, METH_NOARGS,
     "What memleash.report() shows of this cache (a dict; nothing expires)."},
    {"_ml_expire", (PyCFunction)(void (*)(void))cache_expire_method, METH_FASTCALL | METH_KEYWORDS,
     "_ml_expire($self, /, time=None)\n--\n\n"
     "expire(): remove the items expired at `time` (now by default) and return the\n"
     "removed (key, value) pairs, earliest deadline first."},
    {"_ml_configure_timed", (PyCFunction)cache_configure_timed, METH_VARARGS, NULL},
    {"__getstate__", (PyCFunction)cache_getstate, METH_NOARGS, NULL},
    {"__setstate__", (PyCFunction)cache_setstate, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

/* _ml_referents: the keys and values, flat ([k0, v0, k1, v1, ...]), for
 * pympler.asizeof. pympler sizes an unknown instance's __dict__ and the attributes its
 * classes name in __slots__, never tp_traverse's referents; so the type lists this
 * attribute in a class-level __slots__ (added in module exec, with no slot behind it). */
static PyObject *
cache_get_referents(CacheObject *self, void *Py_UNUSED(closure))
{
    return cacheobj_snapshot(self);
}

static PyObject *
cache_get_choice(CacheObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->choice ? self->choice : Py_None);
}

static int
cache_set_choice(CacheObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL || !PyCallable_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "choice must be callable");
        return -1;
    }
    Py_XSETREF(self->choice, Py_NewRef(value));
    return 0;
}

static PyGetSetDef cache_getset[] = {
    {"_ml_timer", (getter)timed_get_timer, NULL, "A timed cache's Timer (TTLCache.timer).", NULL},
    {"_ml_ttl", (getter)timed_get_ttl, NULL, "TTLCache.ttl.", NULL},
    {"_ml_ttu", (getter)timed_get_ttu, NULL, "TLRUCache.ttu.", NULL},
    {"_ml_expiry_work", (getter)timed_get_expiry_work, NULL,
     "Entries the deadline wheel has filed, moved or unlinked so far (a cost counter).", NULL},
    {"_ml_choice", (getter)cache_get_choice, (setter)cache_set_choice,
     "RRCache's choice function (the public name is RRCache.choice).", NULL},
    {"_ml_referents", (getter)cache_get_referents, NULL,
     "The keys and values, flat: what pympler.asizeof follows (see __slots__).", NULL},
    {"maxsize", (getter)cache_get_maxsize, NULL, "The maximum size of the cache.", NULL},
    {"currsize", (getter)cache_get_currsize, NULL, "The current size of the cache.", NULL},
    {"maxbytes", (getter)cache_get_maxbytes, NULL, "The byte budget (max_bytes), or None.", NULL},
    {"currbytes", (getter)cache_get_currbytes, NULL, "The accounted bytes of the items held.", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef cache_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(CacheObject, weakreflist), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(CacheObject, dict), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot cache_slots[] = {
    {Py_tp_doc, (void *)cache_doc},
    {Py_tp_new, cache_new},
    {Py_tp_init, cache_init},
    {Py_tp_dealloc, cache_dealloc},
    {Py_tp_traverse, cache_traverse},
    {Py_tp_clear, cache_tp_clear},
    {Py_tp_repr, cache_repr},
    {Py_tp_iter, cache_iter},
    {Py_tp_methods, cache_methods},
    {Py_tp_getset, cache_getset},
    {Py_tp_members, cache_members},
    {Py_mp_length, cache_length},
    {Py_mp_subscript, cache_subscript},
    {Py_mp_ass_subscript, cache_ass_subscript},
    {Py_sq_contains, cache_contains},
    {0, NULL},
};

static PyType_Spec cache_spec = {
    .name = "memleash._core.Cache",
    .basicsize = sizeof(CacheObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = cache_slots,
};


int
ml_cache_module_exec(PyObject *module, ml_state *st)
{
    st->CacheType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &cache_spec, NULL);
    if (st->CacheType == NULL || PyModule_AddType(module, st->CacheType) < 0) {
        return -1;
    }
    if (ml_declare_referents(st->CacheType) < 0) {
        return -1;
    }
    st->CacheIterType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &cacheiter_spec, NULL);
    if (st->CacheIterType == NULL) {
        return -1;
    }
    st->RRKeysType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &rrkeys_spec, NULL);
    if (st->RRKeysType == NULL) {
        return -1;
    }
    st->TimerType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &timer_spec, NULL);
    if (st->TimerType == NULL || PyModule_AddType(module, st->TimerType) < 0) {
        return -1;
    }
    if (PyModule_AddIntConstant(module, "TIMED_TTL", TIMED_TTL) < 0 ||
        PyModule_AddIntConstant(module, "TIMED_TLRU", TIMED_TLRU) < 0) {
        return -1;
    }
    if (PyModule_AddIntConstant(module, "POLICY_INSERTION", ML_POLICY_INSERTION) < 0 ||
        PyModule_AddIntConstant(module, "POLICY_LRU", ML_POLICY_LRU) < 0 ||
        PyModule_AddIntConstant(module, "POLICY_FIFO", ML_POLICY_FIFO) < 0 ||
        PyModule_AddIntConstant(module, "POLICY_LFU", ML_POLICY_LFU) < 0 ||
        PyModule_AddIntConstant(module, "POLICY_RANDOM", ML_POLICY_RANDOM) < 0) {
        return -1;
    }
    return 0;
}
