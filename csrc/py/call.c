/* call.c — the memoizing call wrapper behind memleash.lru_cache and memleash.cached.
 *
 * A call builds the key, hashes it once, probes the cache and returns the stored value:
 * all in C, with no Python frame of ours. When the cache is an untimed memleash cache
 * whose type overrides neither __getitem__ nor __missing__, the probe goes straight to the
 * engine (cacheobj_find with the known hash, then the policy's touch); any other mapping
 * is read with cache[key], a KeyError meaning a miss, as cachetools does. Likewise a
 * store goes to the engine unless the type overrides __setitem__.
 *
 * Keys:
 *   KEY_FUNCTOOLS(_TYPED)  functools._make_key: the positional arguments, then a marker
 *                          and each keyword's name and value in call order, then (typed)
 *                          every argument's type; a lone exact int or str is its own key.
 *   KEY_HASH(_TYPED)       memleash.keys.hashkey / typedkey (cachetools' keys), built here
 *                          without calling them: the arguments, then a marker and the
 *                          (name, value) pairs sorted by name, then (typed) the types.
 *   KEY_CALLABLE           key(*args, **kwargs), any other key function.
 *   KEY_UNCACHED           functools' maxsize=0: no key, no look-up, every call a miss.
 *
 * A wrapper made for one instance (cachedmethod) gets its function and key function bound
 * to the instance by the Python layer, and with `getters` its cache, lock and condition
 * are zero-argument getters, asked whenever they are needed (cachetools' cache(instance),
 * lock(instance), condition(instance)).
 *
 * A "loader" takes over every miss (cachetools' lock and condition variants): it is
 * called as loader(key, args, kwargs) and returns (value, was_hit), was_hit meaning that
 * it found the key stored after all (another thread stored it; the miss counted before
 * the call becomes a hit). With `lock`, the look-up
 * runs inside `with lock:` (as cachetools'); with `loader_only`, there is no look-up
 * here at all: the loader does it (cachetools' condition variant waits for a pending
 * key before looking).
 *
 * Re-entrancy: hashing and comparing the key, the user function, and storing can all run
 * Python code that calls the wrapper again, clears the cache or replaces it. Nothing is
 * held across those calls but strong references (the cache is held for the whole call),
 * and no lock is held while the user function runs: recursion on one key just computes
 * it twice. After the call, the functools flavour does not overwrite a value that was
 * stored for the key meanwhile (as CPython's lru_cache); the cachetools flavour stores
 * (as its cache[key] = value). A ValueError while storing means "too large to cache".
 */
#include "py/module.h"
#include "py/cache.h"
#include "py/flight.h"

#include <stddef.h>
#include <structmember.h>

enum {
    KEY_FUNCTOOLS = 0,
    KEY_FUNCTOOLS_TYPED = 1,
    KEY_HASH = 2,
    KEY_HASH_TYPED = 3,
    KEY_CALLABLE = 4,
    KEY_UNCACHED = 5
};

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *func;         /* the user function */
    PyObject *cache;        /* the mapping; None for KEY_UNCACHED */
    PyObject *keyfunc;      /* the key function given, or NULL (functools' key) */
    PyObject *loader;       /* takes over misses (see above), or NULL */
    PyObject *lock;         /* cache_clear() and cache_info() run under `with lock:`, and
                               so does the look-up unless lock_lookup is 0; or NULL */
    int lock_lookup;
    PyObject *cond;         /* the condition (cache_condition), or NULL */
    PyObject *info;         /* cache_info() is info(cache, hits, misses); NULL: none */
    int loader_only;        /* every call goes to the loader once the key is built */
    int mode;               /* KEY_* */
    int getters;            /* cache, lock and cond are getters: cache() is the cache */
    int skip_self;          /* a built-in key leaves out the first argument (method_cache) */
    int keep_existing;      /* do not overwrite what the call stored meanwhile */
    int single_flight;      /* concurrent misses of one key: one computes, the others wait
                               for it and read what it stored (flight.h) */
    ml_flights flights;     /* the keys being computed (single_flight) */
    ml_count hits, misses;  /* atomic on the free-threaded build: calls run unlocked */
    PyObject *dict;         /* __wrapped__, __name__, ... (functools.update_wrapper) */
    PyObject *weakreflist;
    ml_state *st;           /* borrowed: the type keeps the module alive */
} CallObject;

/* functools' key. New reference, or NULL with an exception. */
static PyObject *
functools_key(CallObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    int typed = self->mode == KEY_FUNCTOOLS_TYPED;
    if (!typed && nkw == 0 && nargs == 1 &&
        (PyUnicode_CheckExact(args[0]) || PyLong_CheckExact(args[0]))) {
        return Py_NewRef(args[0]);
    }
    Py_ssize_t n = nargs + (nkw ? 1 + 2 * nkw : 0) + (typed ? nargs + nkw : 0);
    PyObject *key = PyTuple_New(n);
    if (key == NULL) {
        return NULL;
    }
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(key, at++, Py_NewRef(args[i]));
    }
    if (nkw) {
        PyTuple_SET_ITEM(key, at++, Py_NewRef(self->st->kwd_mark));
        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyTuple_SET_ITEM(key, at++, Py_NewRef(PyTuple_GET_ITEM(kwnames, i)));
            PyTuple_SET_ITEM(key, at++, Py_NewRef(args[nargs + i]));
        }
    }
    if (typed) {
        for (Py_ssize_t i = 0; i < nargs + nkw; i++) {
            PyTuple_SET_ITEM(key, at++, Py_NewRef((PyObject *)Py_TYPE(args[i])));
        }
    }
    return key;
}

/* cachetools' hashkey (typed: typedkey) of (args, kwnames). New reference. */
static PyObject *
hash_key(ml_state *st, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, int typed)
{
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *items = NULL, *key = NULL;
    if (nkw) {
        items = PyList_New(nkw);
        if (items == NULL) {
            return NULL;
        }
        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyObject *pair = PyTuple_Pack(2, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]);
            if (pair == NULL) {
                goto error;
            }
            PyList_SET_ITEM(items, i, pair);
        }
        /* names are distinct str: sorting compares names only, and runs no user code */
        if (PyList_Sort(items) < 0) {
            goto error;
        }
    }
    key = PyTuple_New(nargs + (nkw ? 1 + nkw : 0) + (typed ? nkw + nargs : 0));
    if (key == NULL) {
        goto error;
    }
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(key, at++, Py_NewRef(args[i]));
    }
    if (nkw) {
        PyTuple_SET_ITEM(key, at++, Py_NewRef(st->KeywordMark));
        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyTuple_SET_ITEM(key, at++, Py_NewRef(PyList_GET_ITEM(items, i)));
        }
    }
    if (typed) {
        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyObject *value = PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 1);
            PyTuple_SET_ITEM(key, at++, Py_NewRef((PyObject *)Py_TYPE(value)));
        }
        for (Py_ssize_t i = 0; i < nargs; i++) {
            PyTuple_SET_ITEM(key, at++, Py_NewRef((PyObject *)Py_TYPE(args[i])));
        }
    }
    Py_XDECREF(items);
    return key;
error:
    Py_XDECREF(items);
    return NULL;
}

/* hashkey(*args, **kwargs) and its kin, as module functions (memleash.keys). */
static PyObject *
key_function(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
             int typed, int method, const char *name)
{
    ml_state *st = PyModule_GetState(module);
    if (method) {
        if (nargs < 1) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing 1 required positional argument: 'self'", name);
            return NULL;
        }
        args++;
        nargs--;
    }
    return hash_key(st, args, nargs, kwnames, typed);
}

PyObject *
ml_hashkey(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return key_function(m, args, nargs, kwnames, 0, 0, "hashkey");
}

PyObject *
ml_typedkey(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return key_function(m, args, nargs, kwnames, 1, 0, "typedkey");
}

PyObject *
ml_methodkey(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return key_function(m, args, nargs, kwnames, 0, 1, "methodkey");
}

PyObject *
ml_typedmethodkey(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return key_function(m, args, nargs, kwnames, 1, 1, "typedmethodkey");
}

/* The memleash cache whose engine can be probed directly, or NULL. */
static CacheObject *
engine_of(CallObject *self, PyObject *cache)
{
    if (!PyObject_TypeCheck(cache, self->st->CacheType)) {
        return NULL;
    }
    CacheObject *c = (CacheObject *)cache;
    /* cache[key] would call an overriding __getitem__ or __missing__ */
    return !(c->hooks & (HOOK_GETITEM | HOOK_MISSING)) && c->timed == TIMED_NONE ? c : NULL;
}

/* 1 found (*value a new reference), 0 absent, -1 error. `count`: a memleash cache counts
 * the look-up as a hit or a miss in its own statistics. Can re-enter. */
static int
lookup_counted(CallObject *self, PyObject *cache, PyObject *key, Py_hash_t h, PyObject **value,
               int count)
{
    CacheObject *c = engine_of(self, cache);
    if (c != NULL) {
        int found;
        ML_BEGIN_CRITICAL_SECTION(c);
        uint32_t id;
        found = cacheobj_find(c, key, h, &id);   /* can re-enter (__eq__) */
        if (found > 0) {
            /* id is valid: nothing ran since cacheobj_find returned */
            ml_cache_touch(&c->c, id);
            c->hits += (uint64_t)count;
            *value = Py_NewRef((PyObject *)ENTS(c)[id].value);
        }
        else if (found == 0) {
            c->misses += (uint64_t)count;
        }
        ML_END_CRITICAL_SECTION();
        return found;
    }
    *value = PyObject_GetItem(cache, key);   /* can re-enter */
    if (*value != NULL) {
        return 1;
    }
    if (PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

static int
lookup(CallObject *self, PyObject *cache, PyObject *key, Py_hash_t h, PyObject **value)
{
    return lookup_counted(self, cache, key, h, value, 1);
}

/* `with lock:` from C: lock_enter, then lock_exit (which keeps an exception already set,
 * as a with statement does when __exit__ returns false). 0 or -1. Can re-enter. */
static int
lock_enter(ml_state *st, PyObject *lock)
{
    PyObject *r = PyObject_CallMethodNoArgs(lock, st->str_enter);   /* interned: no allocation */
    Py_XDECREF(r);
    return r != NULL ? 0 : -1;
}

static int
lock_exit(ml_state *st, PyObject *lock)
{
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);   /* the with body's exception, if any */
    PyObject *r = PyObject_CallMethodObjArgs(lock, st->str_exit, Py_None, Py_None, Py_None, NULL);
    if (r == NULL) {
        Py_XDECREF(type);
        Py_XDECREF(exc);
        Py_XDECREF(tb);
        return -1;
    }
    Py_DECREF(r);
    PyErr_Restore(type, exc, tb);
    return type != NULL ? -1 : 0;
}

/* The current value of field (the cache, lock or condition): the getter's result, or the
 * field itself. New reference; None for a NULL field. Can re-enter. */
static PyObject *
current(CallObject *self, PyObject *field)
{
    if (field == NULL) {
        Py_RETURN_NONE;
    }
    return self->getters ? PyObject_CallNoArgs(field) : Py_NewRef(field);
}

/* lookup() inside `with lock:` (the current lock). */
static int
locked_lookup(CallObject *self, PyObject *cache, PyObject *key, Py_hash_t h, PyObject **value)
{
    PyObject *lock = current(self, self->lock);   /* can re-enter */
    if (lock == NULL) {
        return -1;
    }
    if (lock_enter(self->st, lock) < 0) {
        Py_DECREF(lock);
        return -1;
    }
    int found = lookup(self, cache, key, h, value);   /* can re-enter */
    if (lock_exit(self->st, lock) < 0 && found > 0) {
        Py_CLEAR(*value);
        found = -1;
    }
    Py_DECREF(lock);
    return found;
}

/* Where a memleash cache stood when a look-up missed: if nothing was inserted or
 * reconfigured since, the key cannot have been stored meanwhile. */
typedef struct {
    uint64_t version, config_gen;
} stamp;

static stamp
stamp_of(PyObject *cache)
{
    CacheObject *c = (CacheObject *)cache;
    stamp s = {c->c.t.version, c->config_gen};
    return s;
}

/* Stores value under key; `before` is stamp_of(cache) at the miss (for a memleash
 * cache). 0 (stored, or too large to cache) or -1. Can re-enter. */
static int
store(CallObject *self, PyObject *cache, PyObject *key, Py_hash_t h, PyObject *value,
      stamp before)
{
    int rc;
    /* cacheobj_setitem_hashed is __setitem__ whole (getsizeof and popitem overrides
     * included): only an overriding __setitem__ must be called instead */
    if (PyObject_TypeCheck(cache, self->st->CacheType) &&
        !(((CacheObject *)cache)->hooks & HOOK_SETITEM)) {
        CacheObject *c = (CacheObject *)cache;
        ML_BEGIN_CRITICAL_SECTION(c);
        stamp now = stamp_of(cache);
        rc = 0;
        /* (a timed cache's entry found here may have expired: that one is replaced) */
        if (self->keep_existing && c->timed == TIMED_NONE &&
            (now.version != before.version || now.config_gen != before.config_gen)) {
            uint32_t id;
            rc = cacheobj_find(c, key, h, &id);   /* can re-enter */
        }
        if (rc == 0) {
            rc = cacheobj_setitem_hashed(c, key, h, value);   /* can re-enter */
        }
        else {
            rc = rc < 0 ? -1 : 0;   /* stored during the call: kept */
        }
        ML_END_CRITICAL_SECTION();
    }
    else {
        rc = PyObject_SetItem(cache, key, value);   /* can re-enter */
    }
    if (rc < 0 && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();   /* too large to cache: the result is returned all the same */
        rc = 0;
    }
    return rc;
}

/* The key of a call. New reference. */
static PyObject *
make_key(CallObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (self->skip_self && self->mode != KEY_CALLABLE) {
        if (nargs < 1) {
            PyErr_SetString(PyExc_TypeError, "a cached method needs its instance argument");
            return NULL;
        }
        args++;
        nargs--;
    }
    switch (self->mode) {
    case KEY_FUNCTOOLS:
    case KEY_FUNCTOOLS_TYPED:
        return functools_key(self, args, nargs, kwnames);
    case KEY_HASH:
    case KEY_HASH_TYPED:
        return hash_key(self->st, args, nargs, kwnames, self->mode == KEY_HASH_TYPED);
    default:
        return PyObject_Vectorcall(self->keyfunc, args, nargsf, kwnames);   /* can re-enter */
    }
}

/* A miss handed to the loader: (value, was_hit) = loader(key, args, kwargs). */
static PyObject *
load(CallObject *self, PyObject *key, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *targs = PyTuple_New(nargs), *kwargs = NULL, *r = NULL, *value = NULL;
    if (targs == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(targs, i, Py_NewRef(args[i]));
    }
    if ((kwargs = PyDict_New()) == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
            goto done;
        }
    }
    r = PyObject_CallFunctionObjArgs(self->loader, key, targs, kwargs, NULL);   /* can re-enter */
    if (r == NULL) {
        goto done;
    }
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) {
        PyErr_SetString(PyExc_TypeError, "loader must return (value, was_hit)");
        goto done;
    }
    int was_hit = PyObject_IsTrue(PyTuple_GET_ITEM(r, 1));
    if (was_hit < 0) {
        goto done;
    }
    if (was_hit) {   /* counted as a miss when the loader was called */
        ml_count_add(&self->misses, -1);
        ml_count_add(&self->hits, 1);
    }
    value = Py_NewRef(PyTuple_GET_ITEM(r, 0));
done:
    Py_XDECREF(r);
    Py_DECREF(targs);
    Py_XDECREF(kwargs);
    return value;
}

/* A miss of a single-flight function: compute key unless another call is computing it;
 * then wait for that call and read what it stored (a hit after all), or compute it if it
 * is still missing (that call failed, or its value was too large to cache), as
 * cachetools' condition variant does. New reference, or NULL. Can re-enter. */
static PyObject *
flight_miss(CallObject *self, PyObject *cache, PyObject *key, Py_hash_t h, PyObject *const *args,
            size_t nargsf, PyObject *kwnames)
{
    for (;;) {
        ml_flight *f;
        int joined = ml_flight_join((PyObject *)self, &self->flights, key, h, &f);   /* can re-enter */
        if (joined < 0) {
            return NULL;
        }
        if (joined == 0) {
            PyObject *value;
            int found = lookup_counted(self, cache, key, h, &value, 0);   /* can re-enter */
            if (found != 0) {
                if (found > 0) {   /* the miss counted on entry became a hit */
                    ml_count_add(&self->misses, -1);
                    ml_count_add(&self->hits, 1);
                }
                return found > 0 ? value : NULL;
            }
            continue;
        }
        stamp before = {0, 0};
        if (PyObject_TypeCheck(cache, self->st->CacheType)) {
            ML_BEGIN_CRITICAL_SECTION(cache);
            before = stamp_of(cache);
            ML_END_CRITICAL_SECTION();
        }
        PyObject *value = PyObject_Vectorcall(self->func, args, nargsf, kwnames);   /* can re-enter */
        if (value != NULL && store(self, cache, key, h, value, before) < 0) {
            Py_CLEAR(value);
        }
        ml_flight_end((PyObject *)self, &self->flights, f);   /* can re-enter (a key's decref) */
        return value;
    }
}

/* ------------------------------------------------------------------------------------
 * Hits without building the key. When the key of a call is the tuple of its positional
 * arguments (cachetools' hashkey, functools' key of two or more arguments: no keywords,
 * untyped), a hit needs no tuple: the tuple's hash is computed from the arguments' hashes
 * by CPython's own tuple hash (xxHash-based since 3.8, the same on every version built;
 * tests/test_decorators.py holds it to hash(tuple(args))) and a stored key is compared
 * with the arguments element by element, as tuple equality compares. A miss builds the
 * key as before.
 */
#define XXPRIME_1 ((Py_uhash_t)11400714785074694791ULL)
#define XXPRIME_2 ((Py_uhash_t)14029467366897019727ULL)
#define XXPRIME_5 ((Py_uhash_t)2870177450012600261ULL)
#define XXROTATE(x) (((x) << 31) | ((x) >> 33))

/* hash(tuple(args[:n])), or -1 with an exception. Can re-enter (__hash__). */
static Py_hash_t
args_hash(PyObject *const *args, Py_ssize_t n)
{
    Py_uhash_t acc = XXPRIME_5;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_uhash_t lane = (Py_uhash_t)PyObject_Hash(args[i]);   /* can re-enter */
        if (lane == (Py_uhash_t)-1) {
            return -1;
        }
        acc += lane * XXPRIME_2;
        acc = XXROTATE(acc);
        acc *= XXPRIME_1;
    }
    acc += (Py_uhash_t)n ^ (XXPRIME_5 ^ 3527539UL);
    return acc == (Py_uhash_t)-1 ? 1546275796 : (Py_hash_t)acc;
}

typedef struct {
    PyObject *const *args;
    Py_ssize_t n;
} args_query;

/* The engine's equality for an arguments query: stored == tuple(args), as tuple equality
 * decides it (identity, then stored[i] == args[i], in order). Can re-enter. */
static int
args_eq(void *ctx, void *stored, void *query)
{
    (void)ctx;
    const args_query *q = query;
    PyObject *s = (PyObject *)stored;
    if (!PyTuple_CheckExact(s)) {
        /* a key stored by hand: compare it with the tuple the call would build. Held
         * first: the tuple's allocation can collect, and a finalizer may remove the entry */
        Py_INCREF(s);
        PyObject *t = PyTuple_New(q->n);   /* can re-enter (a collection) */
        if (t == NULL) {
            Py_DECREF(s);   /* can re-enter */
            return -1;
        }
        for (Py_ssize_t i = 0; i < q->n; i++) {
            PyTuple_SET_ITEM(t, i, Py_NewRef(q->args[i]));
        }
        int r = PyObject_RichCompareBool(s, t, Py_EQ);   /* can re-enter */
        Py_DECREF(s);   /* can re-enter */
        Py_DECREF(t);
        return r;
    }
    if (PyTuple_GET_SIZE(s) != q->n) {
        return 0;
    }
    Py_INCREF(s);   /* __eq__ may remove the entry and drop the cache's reference */
    int r = 1;
    for (Py_ssize_t i = 0; i < q->n && r == 1; i++) {
        PyObject *a = PyTuple_GET_ITEM(s, i);
        r = a == q->args[i] ? 1 : PyObject_RichCompareBool(a, q->args[i], Py_EQ);   /* can re-enter */
    }
    Py_DECREF(s);
    return r;
}

/* A hit whose key is the tuple of the positional arguments, found without building it.
 * 1 found (*value), 0 not (*h: the key's hash, for the miss path), -1 error, 2 this call
 * is not one (the key must be built). Can re-enter. */
static int
args_hit(CallObject *self, PyObject *cache, PyObject *const *args, size_t nargsf,
         PyObject *kwnames, Py_hash_t *h, PyObject **value)
{
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (self->skip_self) {
        if (n < 1) {
            return 2;
        }
        args++;
        n--;
    }
    if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) ||
        !(self->mode == KEY_HASH || (self->mode == KEY_FUNCTOOLS &&
                                     !(n == 1 && (PyUnicode_CheckExact(args[0]) ||
                                                  PyLong_CheckExact(args[0])))))) {
        return 2;
    }
    CacheObject *c = engine_of(self, cache);
    if (c == NULL) {
        return 2;
    }
    if ((*h = args_hash(args, n)) == -1) {   /* can re-enter */
        return -1;
    }
    int found;
    args_query q = {args, n};
    ML_BEGIN_CRITICAL_SECTION(c);
    uint32_t id;
    int st = ml_table_find(&c->c.t, (uint64_t)*h, &q, args_eq, NULL, &id);   /* can re-enter */
    found = st == ML_OK ? 1 : st == ML_NOT_FOUND ? 0 : -1;
    if (found > 0) {
        ml_cache_touch(&c->c, id);
        c->hits++;
        *value = Py_NewRef((PyObject *)ENTS(c)[id].value);
    }
    else if (found == 0) {
        c->misses++;
    }
    else if (st == ML_ERR_CHANGED) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the cache changed during a look-up too many times in a row (a key's "
                        "__eq__ keeps changing it)");
    }
    ML_END_CRITICAL_SECTION();
    return found;
}

static PyObject *
call_vectorcall(CallObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (self->func == NULL) {
        /* tp_clear ran (a garbage cycle), yet a member of the cycle calls it */
        PyErr_SetString(PyExc_RuntimeError, "memoized function already cleared");
        return NULL;
    }
    if (self->mode == KEY_UNCACHED) {
        ml_count_add(&self->misses, 1);
        return PyObject_Vectorcall(self->func, args, nargsf, kwnames);
    }
    /* held for the whole call: a callback may drop every other reference to it */
    PyObject *cache = current(self, self->cache);   /* can re-enter */
    if (cache == NULL) {
        return NULL;
    }
    PyObject *value = NULL, *key = NULL;
    Py_hash_t h = -1;
    int found = 0, probed = 0;
    if (!self->loader_only && !(self->lock && self->lock_lookup)) {
        found = args_hit(self, cache, args, nargsf, kwnames, &h, &value);   /* can re-enter */
        if (found < 0) {
            goto error;
        }
        if (found == 1) {
            ml_count_add(&self->hits, 1);
            Py_DECREF(cache);
            return value;
        }
        probed = found == 0;   /* a miss, with h the key's hash */
        found = 0;
    }
    key = make_key(self, args, nargsf, kwnames);   /* can re-enter */
    if (key == NULL) {
        goto error;
    }
    if (!probed && (h = PyObject_Hash(key)) == -1) {   /* can re-enter */
        goto error;
    }
    if (!self->loader_only && !probed) {
        found = self->lock && self->lock_lookup ? locked_lookup(self, cache, key, h, &value)
                           : lookup(self, cache, key, h, &value);   /* can re-enter */
        if (found < 0) {
            goto error;
        }
    }
    if (found) {
        ml_count_add(&self->hits, 1);
        goto done;
    }
    if (self->single_flight) {
        ml_count_add(&self->misses, 1);
        value = flight_miss(self, cache, key, h, args, nargsf, kwnames);   /* can re-enter */
        if (value == NULL) {
            goto error;
        }
        goto done;
    }
    if (self->loader != NULL) {
        ml_count_add(&self->misses, 1);   /* as cachetools: counted before the function runs, or raises */
        value = load(self, key, args, nargsf, kwnames);   /* can re-enter */
        if (value == NULL) {
            goto error;
        }
        goto done;
    }
    ml_count_add(&self->misses, 1);
    stamp before = {0, 0};
    if (PyObject_TypeCheck(cache, self->st->CacheType)) {
        ML_BEGIN_CRITICAL_SECTION(cache);
        before = stamp_of(cache);
        ML_END_CRITICAL_SECTION();
    }
    value = PyObject_Vectorcall(self->func, args, nargsf, kwnames);   /* can re-enter */
    if (value == NULL || store(self, cache, key, h, value, before) < 0) {
        Py_CLEAR(value);
        goto error;
    }
done:
    Py_DECREF(key);
    Py_DECREF(cache);
    return value;
error:
    Py_XDECREF(key);
    Py_DECREF(cache);
    return NULL;
}

/* _CachedFunction(func, cache, key=None, *, typed=False, uncached=False,
 *                 keep_existing=False, getters=False, loader=None, lock=None,
 *                 loader_only=False, info=None, lock_lookup=True, condition=None,
 *                 skip_self=False, single_flight=False) */
static PyObject *
call_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"func", "cache", "key", "typed", "uncached", "keep_existing",
                             "getters", "loader", "lock", "loader_only", "info",
                             "lock_lookup", "condition", "skip_self", "single_flight", NULL};
    PyObject *func, *cache, *keyfunc = Py_None, *loader = Py_None, *lock = Py_None;
    PyObject *info = Py_None, *cond = Py_None;
    int typed = 0, uncached = 0, keep_existing = 0, getters = 0, loader_only = 0;
    int lock_lookup = 1, skip_self = 0, single_flight = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O$ppppOOpOpOpp:_CachedFunction", kwlist,
                                     &func, &cache, &keyfunc, &typed, &uncached,
                                     &keep_existing, &getters, &loader, &lock,
                                     &loader_only, &info, &lock_lookup, &cond, &skip_self,
                                     &single_flight)) {
        return NULL;
    }
    if (single_flight && (loader != Py_None || lock != Py_None || getters)) {
        PyErr_SetString(PyExc_TypeError, "single_flight takes no loader, lock or getters");
        return NULL;
    }
    if (loader_only && loader == Py_None) {
        PyErr_SetString(PyExc_TypeError, "loader_only needs a loader");
        return NULL;
    }
    if (!PyCallable_Check(func)) {
        PyErr_SetString(PyExc_TypeError, "the first argument must be callable");
        return NULL;
    }
    if ((keyfunc != Py_None && !PyCallable_Check(keyfunc)) ||
        (loader != Py_None && !PyCallable_Check(loader))) {
        PyErr_SetString(PyExc_TypeError, "key and loader must be callable");
        return NULL;
    }
    if (getters ? !PyCallable_Check(cache) : !uncached && !PyMapping_Check(cache)) {
        PyErr_Format(PyExc_TypeError, "cache must be a %s, not %.200s",
                     getters ? "callable" : "mapping", Py_TYPE(cache)->tp_name);
        return NULL;
    }
    ml_state *st = ml_state_of_type(type);
    if (st == NULL) {
        return NULL;
    }
    CallObject *self = (CallObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->st = st;
    self->vectorcall = (vectorcallfunc)call_vectorcall;
    self->func = Py_NewRef(func);
    self->cache = Py_NewRef(cache);
    self->keyfunc = keyfunc != Py_None ? Py_NewRef(keyfunc) : NULL;
    self->loader = loader != Py_None ? Py_NewRef(loader) : NULL;
    self->lock = lock != Py_None ? Py_NewRef(lock) : NULL;
    self->cond = cond != Py_None ? Py_NewRef(cond) : NULL;
    self->loader_only = loader_only;
    self->lock_lookup = lock_lookup;
    self->info = info != Py_None ? Py_NewRef(info) : NULL;
    self->getters = getters;
    self->skip_self = skip_self;
    self->keep_existing = keep_existing;
    self->single_flight = single_flight;
    /* memleash's own key functions are built here instead of called; a bound one
     * (cachedmethod's methodkey) leaves the instance out, so it is the hashkey of the
     * arguments */
    PyObject *kf = keyfunc;
    if (PyMethod_Check(kf) &&
        (PyCFunction_Check(PyMethod_GET_FUNCTION(kf)) &&
         (PyCFunction_GET_FUNCTION(PyMethod_GET_FUNCTION(kf)) == (PyCFunction)(void (*)(void))ml_methodkey ||
          PyCFunction_GET_FUNCTION(PyMethod_GET_FUNCTION(kf)) == (PyCFunction)(void (*)(void))ml_typedmethodkey))) {
        kf = PyMethod_GET_FUNCTION(kf);
    }
    PyCFunction c = PyCFunction_Check(kf) ? PyCFunction_GET_FUNCTION(kf) : NULL;
    int bound_method_key = kf != keyfunc;
    if (uncached) {
        self->mode = KEY_UNCACHED;
    }
    else if (keyfunc == Py_None) {
        self->mode = typed ? KEY_FUNCTOOLS_TYPED : KEY_FUNCTOOLS;
    }
    else if (c == (PyCFunction)(void (*)(void))ml_hashkey ||
             (bound_method_key && c == (PyCFunction)(void (*)(void))ml_methodkey)) {
        self->mode = KEY_HASH;
    }
    else if (c == (PyCFunction)(void (*)(void))ml_typedkey ||
             (bound_method_key && c == (PyCFunction)(void (*)(void))ml_typedmethodkey)) {
        self->mode = KEY_HASH_TYPED;
    }
    else {
        self->mode = KEY_CALLABLE;
    }
    return (PyObject *)self;
}

static PyObject *
call_descr_get(PyObject *self, PyObject *obj, PyObject *Py_UNUSED(type))
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

/* Runs body(self, cache) inside `with lock:` (the current lock, when there is one), the
 * cache being the current one (None for KEY_UNCACHED). New reference or NULL. */
static PyObject *
under_lock(CallObject *self, PyObject *(*body)(CallObject *, PyObject *))
{
    PyObject *lock = current(self, self->lock), *cache = NULL, *r = NULL;   /* can re-enter */
    if (lock == NULL) {
        return NULL;
    }
    if (lock == Py_None) {
        Py_CLEAR(lock);
    }
    else if (lock_enter(self->st, lock) < 0) {
        Py_DECREF(lock);
        return NULL;
    }
    cache = self->mode == KEY_UNCACHED ? Py_NewRef(Py_None) : current(self, self->cache);
    if (cache != NULL) {
        r = body(self, cache);   /* can re-enter */
    }
    if (lock != NULL && lock_exit(self->st, lock) < 0) {
        Py_CLEAR(r);
    }
    Py_XDECREF(lock);
    Py_XDECREF(cache);
    return r;
}

static PyObject *
clear_body(CallObject *self, PyObject *cache)
{
    ml_count_set(&self->hits, 0);
    ml_count_set(&self->misses, 0);
    if (cache == Py_None) {
        Py_RETURN_NONE;
    }
    return PyObject_CallMethodNoArgs(cache, self->st->str_clear);   /* can re-enter */
}

static PyObject *
info_body(CallObject *self, PyObject *cache)
{
    return PyObject_CallFunction(self->info, "Onn", cache, ml_count_get(&self->hits),
                                 ml_count_get(&self->misses));
}

/* cache_clear(): empties the cache and zeroes the hit and miss counts (under the lock). */
static PyObject *
call_cache_clear(CallObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->cache == NULL) {
        Py_RETURN_NONE;   /* cleared as garbage */
    }
    PyObject *r = under_lock(self, clear_body);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* cache_info(): info(cache, hits, misses), under the lock. */
static PyObject *
call_cache_info(CallObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->info == NULL || self->cache == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cache_info");
        return NULL;
    }
    return under_lock(self, info_body);
}

static PyMethodDef cache_info_def = {
    "cache_info", (PyCFunction)call_cache_info, METH_NOARGS,
    "cache_info($self, /)\n--\n\nThe cache's statistics: (hits, misses, maxsize, currsize)."};

/* The cache_info attribute: a method when the wrapper was made with info, else absent. */
static PyObject *
call_get_cache_info(CallObject *self, void *Py_UNUSED(closure))
{
    if (self->info == NULL) {
        PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute 'cache_info'",
                     Py_TYPE(self)->tp_name);
        return NULL;
    }
    return PyCFunction_New(&cache_info_def, (PyObject *)self);
}

/* _ml_counts(): (hits, misses) since creation or the last cache_clear(). */
static PyObject *
call_counts(CallObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("(nn)", ml_count_get(&self->hits), ml_count_get(&self->misses));
}

/* Pickled by qualified name, as functools' wrapper: the module attribute is the wrapper. */
static PyObject *
call_reduce(CallObject *self, PyObject *Py_UNUSED(ignored))
{
    /* a cachedmethod wrapper: how its descriptor binds it again (set by the Python layer) */
    PyObject *how = NULL;
    if (self->dict != NULL && PyDict_GetItemStringRef(self->dict, "_ml_reduce", &how) < 0) {
        return NULL;
    }
    if (how != NULL) {
        return how;
    }
    return PyObject_GetAttrString((PyObject *)self, "__qualname__");
}

static PyObject *
call_copy(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self);
}

static PyObject *
call_deepcopy(PyObject *self, PyObject *Py_UNUSED(memo))
{
    return Py_NewRef(self);
}

static PyObject *
call_get_cache(CallObject *self, void *Py_UNUSED(closure))
{
    if (self->cache == NULL) {
        Py_RETURN_NONE;   /* cleared as garbage */
    }
    return current(self, self->cache);   /* a cachedmethod's cache(instance), asked now */
}

static PyObject *
call_get_lock(CallObject *self, void *Py_UNUSED(closure))
{
    return current(self, self->lock);
}

static PyObject *
call_get_cond(CallObject *self, void *Py_UNUSED(closure))
{
    return current(self, self->cond);
}

static PyObject *
call_get_key(CallObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->keyfunc ? self->keyfunc : Py_None);
}

static int
call_traverse(CallObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->func);
    Py_VISIT(self->cache);
    Py_VISIT(self->keyfunc);
    Py_VISIT(self->loader);
    Py_VISIT(self->lock);
    Py_VISIT(self->cond);
    Py_VISIT(self->info);
    Py_VISIT(self->dict);
    return 0;
}

static int
call_clear(CallObject *self)
{
    Py_CLEAR(self->func);
    Py_CLEAR(self->cache);
    Py_CLEAR(self->keyfunc);
    Py_CLEAR(self->loader);
    Py_CLEAR(self->lock);
    Py_CLEAR(self->cond);
    Py_CLEAR(self->info);
    Py_CLEAR(self->dict);
    return 0;
}

static void
call_dealloc(CallObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    (void)call_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* cachetools' repr: <cached f>; a cachedmethod wrapper's is set by the Python layer. */
static PyObject *
call_repr(CallObject *self)
{
    PyObject *text = NULL, *wrapped = NULL;
    if (self->dict != NULL && PyDict_GetItemStringRef(self->dict, "_ml_repr", &text) < 0) {
        return NULL;
    }
    if (text != NULL) {
        PyObject *r = PyObject_Str(text);   /* can re-enter */
        Py_DECREF(text);
        return r;
    }
    if (self->dict != NULL && PyDict_GetItemStringRef(self->dict, "__wrapped__", &wrapped) < 0) {
        return NULL;
    }
    if (wrapped == NULL) {
        wrapped = Py_NewRef(self->func ? self->func : Py_None);
    }
    PyObject *r = PyUnicode_FromFormat("<cached %R>", wrapped);
    Py_DECREF(wrapped);
    return r;
}

static PyMethodDef call_methods[] = {
    {"cache_clear", (PyCFunction)call_cache_clear, METH_NOARGS,
     "cache_clear($self, /)\n--\n\nEmpty the cache and zero the hit and miss counts."},
    {"_ml_counts", (PyCFunction)call_counts, METH_NOARGS, "(hits, misses)."},
    {"__reduce__", (PyCFunction)call_reduce, METH_NOARGS, NULL},
    {"__copy__", (PyCFunction)call_copy, METH_NOARGS, NULL},
    {"__deepcopy__", (PyCFunction)call_deepcopy, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef call_getset[] = {
    {"cache", (getter)call_get_cache, NULL, "The cache the results are stored in.", NULL},
    {"cache_key", (getter)call_get_key, NULL, "The key function (None: functools' key).", NULL},
    {"cache_lock", (getter)call_get_lock, NULL, "The lock (cachetools' cache_lock), or None.",
     NULL},
    {"cache_condition", (getter)call_get_cond, NULL,
     "The condition (cachetools' cache_condition), or None.", NULL},
    {"cache_info", (getter)call_get_cache_info, NULL,
     "cache_info(): (hits, misses, maxsize, currsize), when made with info.", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef call_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(CallObject, vectorcall), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(CallObject, weakreflist), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(CallObject, dict), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot call_slots[] = {
    {Py_tp_doc, (void *)"A memoized function (memleash.lru_cache, memleash.cached)."},
    {Py_tp_new, call_new},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_descr_get, call_descr_get},
    {Py_tp_dealloc, call_dealloc},
    {Py_tp_traverse, call_traverse},
    {Py_tp_clear, call_clear},
    {Py_tp_repr, call_repr},
    {Py_tp_methods, call_methods},
    {Py_tp_getset, call_getset},
    {Py_tp_members, call_members},
    {0, NULL},
};

static PyType_Spec call_spec = {
    .name = "memleash._core._CachedFunction",
    .basicsize = sizeof(CallObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
             Py_TPFLAGS_METHOD_DESCRIPTOR,
    .slots = call_slots,
};

int
ml_call_module_exec(PyObject *module, ml_state *st)
{
    st->CallType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &call_spec, NULL);
    if (st->CallType == NULL || PyModule_AddType(module, st->CallType) < 0) {
        return -1;
    }
    /* functools' separator between positional and keyword arguments: a unique object */
    st->kwd_mark = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
    if (st->kwd_mark == NULL) {
        return -1;
    }
    /* memleash.keys' separator between positional and keyword arguments: a class, so
     * that it is unique and keeps its identity through pickling */
    st->KeywordMark = PyObject_CallFunction((PyObject *)&PyType_Type, "s(O){ssss}",
                                            "_KeywordMark", (PyObject *)&PyBaseObject_Type,
                                            "__module__", "memleash._core", "__doc__",
                                            "Marks where keyword arguments start in a key.");
    if (st->KeywordMark == NULL || PyModule_AddObjectRef(module, "_KeywordMark", st->KeywordMark) < 0) {
        return -1;
    }
    return 0;
}
