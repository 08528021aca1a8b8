/* cache_entry.c — the bottom of the cache binding: how much an entry counts (its units,
 * cachetools' getsizeof against maxsize, and its accounted bytes, memleash's sizeof against
 * max_bytes), the arithmetic behind currsize, currbytes and maxbytes, reading every entry
 * (snapshots, RRCache's key sequence) and releasing the entries of an engine. It calls no
 * other cache file.
 *
 * A list made to hold every entry is allocated before the count it is sized by is read for
 * the last time (cacheobj_list_for_entries): a collection at that allocation runs finalizers,
 * which may add or remove entries.
 */
#include "py/cache.h"

#include <math.h>

int
cacheobj_to_size(PyObject *o, ml_size *out, int *big)
{
    *big = 0;
    if (PyLong_Check(o)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        *big = overflow;
        *out = ml_size_int(overflow ? 0 : (int64_t)v);
        return 0;
    }
    double d = PyFloat_AsDouble(o);   /* can re-enter (__float__) */
    if (d == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    *out = ml_size_float(d);
    return 0;
}

int
cacheobj_to_limit(PyObject *o, ml_limit *out)
{
    ml_size s;
    int big;
    if (cacheobj_to_size(o, &s, &big) < 0) {
        return -1;
    }
    if (s.is_float ? isnan(s.f) : 0) {
        PyErr_SetString(PyExc_ValueError, "maxsize must not be NaN");
        return -1;
    }
    if (big < 0 || (s.is_float ? s.f < 0 : s.i < 0)) {
        PyErr_SetString(PyExc_ValueError, "maxsize must be non-negative");
        return -1;
    }
    if (s.is_float) {
        *out = ml_limit_float(s.f);
        return 0;
    }
    if (!big) {
        *out = ml_limit_int(s.i);
        return 0;
    }
    /* an int past int64: its nearest double, and which way that rounded */
    double d = PyLong_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();
        *out = ml_limit_big(INFINITY, 1, UINT64_MAX);   /* past every double: inf is above it */
        return 0;
    }
    /* the exact value when it is below 2**64 (an unsigned long long there) */
    unsigned long long u = PyLong_AsUnsignedLongLong(o);
    if (u == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();
    }
    PyObject *back = PyLong_FromDouble(d);
    if (back == NULL) {
        return -1;
    }
    PyObject *gt = PyLong_Type.tp_richcompare(back, o, Py_GT);
    PyObject *lt = gt ? PyLong_Type.tp_richcompare(back, o, Py_LT) : NULL;
    Py_DECREF(back);
    if (lt == NULL) {
        Py_XDECREF(gt);
        return -1;
    }
    *out = ml_limit_big(d, gt == Py_True ? 1 : (lt == Py_True ? -1 : 0), (uint64_t)u);
    Py_DECREF(gt);
    Py_DECREF(lt);
    return 0;
}

/* ------------------------------------------------------------------------------------
 * Sizing an entry: units (cachetools' getsizeof) and bytes (memleash's sizeof)
 */
/* sys.getsizeof(o). For the exact types a cache most often holds it is computed here, as
 * every supported CPython computes it, from public type fields: bytes (basicsize + length),
 * float (basicsize), an int that fits in 64 bits (basicsize + its digits, at least one),
 * and an ASCII str (its compact header + length + 1; compat.h says when 3.11 adds a
 * wchar_t copy). None of them is GC-tracked, so no GC header is added. Anything else,
 * subclasses included, goes through sys.getsizeof itself (a method call).
 * tests/test_max_bytes.py pins equality with sys.getsizeof. @return (size_t)-1 with an
 * exception on error. Can re-enter (__sizeof__). */
static size_t
default_sizeof(ml_state *st, PyObject *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    if (tp == &PyBytes_Type) {
        return (size_t)PyBytes_Type.tp_basicsize + (size_t)Py_SIZE(o);
    }
    if (tp == &PyFloat_Type) {
        return (size_t)PyFloat_Type.tp_basicsize;
    }
    if (tp == &PyLong_Type) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow == 0 && !(v == -1 && PyErr_Occurred())) {
            unsigned long long m = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
            size_t digits = 1;
            while ((m >>= st->digit_bits) != 0) {
                digits++;
            }
            return (size_t)PyLong_Type.tp_basicsize + digits * st->digit_size;
        }
        PyErr_Clear();
    }
    size_t n;
    if (tp == &PyUnicode_Type && ml_unicode_ascii_sizeof(o, &n)) {
        return n;
    }
    PyObject *fn = Py_NewRef(st->sys_getsizeof);
    PyObject *r = PyObject_CallOneArg(fn, o);   /* can re-enter (__sizeof__) */
    Py_DECREF(fn);
    if (r == NULL) {
        return (size_t)-1;
    }
    n = PyLong_AsSize_t(r);
    Py_DECREF(r);
    return n;
}

int
cacheobj_entry_units(CacheObject *self, PyObject *value, ml_size *units)
{
    if (self->getsizeof == NULL) {
        *units = ml_size_int(1);
        if (ml_size_exceeds(*units, self->c.budget.maxunits)) {
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
    int big;
    int rc = cacheobj_to_size(r, units, &big);   /* can re-enter (__float__) */
    if (rc == 0 && big > 0) {
        /* an int past 2**63 - 1: "too large" is cachetools' own comparison with maxsize,
         * made as it makes it; one that fits under an even larger maxsize is more than is
         * counted exactly */
        PyObject *maxsize = Py_NewRef(self->maxsize);
        int gt = PyObject_RichCompareBool(r, maxsize, Py_GT);   /* can re-enter */
        Py_DECREF(maxsize);
        if (gt >= 0) {
            PyErr_SetString(gt ? PyExc_ValueError : PyExc_OverflowError,
                            gt ? "value too large"
                               : "value size too large: memleash counts sizes exactly up to 2**63 - 1");
        }
        rc = -1;
    }
    Py_DECREF(r);
    if (rc < 0) {
        return -1;
    }
    return cacheobj_check_units(self, *units, big);
}

int
cacheobj_check_units(CacheObject *self, ml_size units, int big)
{
    return cacheobj_check_size(units, big, &self->c.budget.maxunits);
}

int
cacheobj_check_size(ml_size units, int big, const ml_limit *max)
{
    if (big > 0) {
        if (max->kind == ML_LIMIT_BIG || (max->kind == ML_LIMIT_FLOAT && max->d >= 0x1p63)) {
            PyErr_SetString(PyExc_OverflowError,
                            "value size too large: memleash counts sizes exactly up to 2**63 - 1");
        }
        else {
            PyErr_SetString(PyExc_ValueError, "value too large");
        }
        return -1;
    }
    if (big < 0 || (units.is_float ? units.f < 0 : units.i < 0)) {
        PyErr_SetString(PyExc_ValueError, "value size must be non-negative");
        return -1;
    }
    if (units.is_float && isnan(units.f)) {
        PyErr_SetString(PyExc_ValueError, "value size must not be NaN");
        return -1;
    }
    if (ml_size_exceeds(units, *max)) {
        PyErr_SetString(PyExc_ValueError, "value too large");
        return -1;
    }
    return 0;
}

int
cacheobj_long_to_size(PyObject *o, const char *negative, size_t *out)
{
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow < 0 || (overflow == 0 && v < 0)) {
        PyErr_SetString(PyExc_ValueError, negative);
        return -1;
    }
    unsigned long long u = (unsigned long long)v;
    if (overflow > 0) {
        u = PyLong_AsUnsignedLongLong(o);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();   /* past 2**64 - 1 */
        }
    }
    *out = u >= SIZE_MAX ? SIZE_MAX : (size_t)u;
    return 0;
}

int
cacheobj_to_maxbytes(PyObject *o, const char *what, size_t *out)
{
    if (!PyLong_Check(o) || PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s, not %.200s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    if (cacheobj_long_to_size(o, "max_bytes must be non-negative", out) < 0) {
        return -1;
    }
    if (*out == SIZE_MAX) {
        *out = SIZE_MAX - 1;   /* a limit past what a sum counts is that largest count */
    }
    return 0;
}

int
cacheobj_to_bytes(PyObject *o, size_t *bytes)
{
    size_t u;
    if (cacheobj_long_to_size(o, "sizeof must return a non-negative int", &u) < 0) {
        return -1;
    }
    if (u == SIZE_MAX) {
        PyErr_Format(PyExc_OverflowError,
                     "sizeof result too large: memleash counts at most %zu bytes", SIZE_MAX - 1);
        return -1;
    }
    *bytes = (size_t)u;
    return 0;
}

int
cacheobj_entry_bytes(CacheObject *self, PyObject *key, PyObject *value, size_t *bytes)
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
        int rc = cacheobj_to_bytes(r, bytes);
        Py_DECREF(r);
        if (rc < 0) {
            return -1;
        }
    }
    else {
        size_t k = default_sizeof(self->st, key);   /* can re-enter (__sizeof__) */
        if (k == (size_t)-1 && PyErr_Occurred()) {
            return -1;
        }
        size_t v = default_sizeof(self->st, value);   /* can re-enter (__sizeof__) */
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
    if (self->budget != NULL && *bytes > ml_shared_limit(&self->budget->s)) {
        /* more than the whole shared budget: refused before anything is evicted */
        size_t limit = ml_shared_limit(&self->budget->s);
        if (limit < self->budget->s.maxbytes) {
            PyErr_Format(PyExc_ValueError,
                         "value too large: entry of %zu bytes exceeds its budget's limit of %zu "
                         "(lowered from %zu by memory pressure)", *bytes, limit,
                         self->budget->s.maxbytes);
        }
        else {
            PyErr_Format(PyExc_ValueError,
                         "value too large: entry of %zu bytes exceeds its budget's max_bytes=%zu",
                         *bytes, limit);
        }
        return -1;
    }
    return 0;
}

/* currsize as it stands (expired entries of a timed cache included). New reference. */
PyObject *
cacheobj_units_held(CacheObject *self)
{
    const ml_budget *b = &self->c.budget;
    if (b->float_mode) {
        return PyFloat_FromDouble(b->funits);
    }
    return PyLong_FromLongLong(b->units);
}

PyObject *
cacheobj_size_to_object(ml_size s)
{
    return s.is_float ? PyFloat_FromDouble(s.f) : PyLong_FromLongLong(s.i);
}

PyObject *
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
        size_t n = default_sizeof(self->st, PyList_GET_ITEM(items, i));   /* can re-enter */
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
 * Reading every entry, and releasing them
 */
/* Converts a size (maxsize, a getsizeof result) to a double. Ints too large for a double
 * become +-inf (cachetools compares them exactly; they are beyond any real budget).
 * *is_float: the number is not an int (cachetools' currsize then turns float). */

/* A new list of per * used slots (all NULL), sized for the entries the cache holds when it
 * returns. The list's allocation can run a collection, whose finalizers may add or remove
 * entries: the count is read again after it, and the list made anew until they agree (as
 * dictobject.c's dict_keys), at most ML_TABLE_MAX_RESTARTS times (then RuntimeError).
 * Filling it afterwards must not allocate GC-tracked objects (ints, floats and PyMem blocks
 * do not). Can re-enter. */
PyObject *
cacheobj_changed_error(CacheObject *self, const char *what)
{
    PyObject *name = cacheobj_type_name(self);
    if (name != NULL) {
        PyErr_Format(PyExc_RuntimeError,
                     "%U changed during %s %d times in a row (finalizers run by collections "
                     "keep changing it)", name, what, ML_TABLE_MAX_RESTARTS);
        Py_DECREF(name);
    }
    return NULL;
}

PyObject *
cacheobj_list_for_entries(CacheObject *self, Py_ssize_t per)
{
    for (int attempt = 0;; attempt++) {
        if (attempt > ML_TABLE_MAX_RESTARTS) {
            return cacheobj_changed_error(self, "reading its entries");
        }
        uint32_t n = self->c.t.used;
        PyObject *list = PyList_New((Py_ssize_t)n * per);   /* can re-enter */
        if (list == NULL || self->c.t.used == n) {
            return list;
        }
        Py_DECREF(list);   /* every slot NULL: runs no Python code */
    }
}

PyObject *
cacheobj_snapshot(CacheObject *self)
{
    PyObject *list = cacheobj_list_for_entries(self, 2);   /* can re-enter */
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

/* Releases the keys and values of a table moved out of an engine, then frees it. */
static void
release_table(ml_table *out)
{
    for (uint32_t id = 0; id < out->top; id++) {
        if (out->ents[id].key != NULL) {
            Py_DECREF((PyObject *)out->ents[id].key);     /* can re-enter */
            Py_DECREF((PyObject *)out->ents[id].value);   /* can re-enter */
        }
    }
    ml_table_free(out);
}

/* Empties the cache: the entries move out first, then are released. */
static void
clear_entries(CacheObject *self)
{
    ml_table out;
    cacheobj_keys_change(self);
    ml_cache_steal(&self->c, &out);
    release_table(&out);   /* can re-enter */
}

void
cacheobj_release_engine(ml_cache *old)
{
    ml_table out;
    ml_cache_steal(old, &out);
    ml_cache_free(old);
    release_table(&out);   /* can re-enter */
}

void
cacheobj_clear_entries(CacheObject *self)
{
    clear_entries(self);
}

PyObject *
cache_get_maxbytes(CacheObject *self, void *Py_UNUSED(closure))
{
    if (self->c.budget.maxbytes == SIZE_MAX) {
        Py_RETURN_NONE;
    }
    return PyLong_FromSize_t(self->c.budget.maxbytes);
}

/* ------------------------------------------------------------------------------------
 * RRCache's key sequence: what choice(keys) sees — the cache's keys in cachetools' key-list
 * order, as they were when choice was called, for as long as the sequence lives.
 *
 * It is read live from the engine while the keys stay as they were, and copied the
 * moment they are about to change (cacheobj_keys_change, called before every insertion or
 * removal of a key and every exchange of engines): no copy in the common case, where
 * choice returns before anything changes, and a consistent sequence however long choice
 * runs (random.choice reads len(keys), then runs Python code, then indexes: another thread
 * may shrink the cache in between). A cache has at most one live sequence; making a
 * second one copies the first.
 */
typedef struct {
    PyObject_HEAD
    CacheObject *cache;     /* strong, for the sequence's life: its lock guards the fields
                               below (the free-threaded build); NULL once cleared */
    int live;               /* read from the engine; 0 once the keys are copied or lost */
    PyObject **keys;        /* the copy (new references), once the keys changed */
    Py_ssize_t n;
    int lost;               /* the copy could not be made (no memory): accesses raise */
} RRKeysObject;

/* Copies the live sequence's keys into it and detaches it from the cache. Runs no
 * Python code (PyMem and reference counts only). @pre self's lock is held. */
static void
rrkeys_freeze(CacheObject *self)
{
    RRKeysObject *v = (RRKeysObject *)self->rrview;
    self->rrview = NULL;
    const ml_cache *c = &self->c;
    Py_ssize_t n = (Py_ssize_t)c->dense.n;
    PyObject **keys = PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof(PyObject *));
    if (keys == NULL) {
        v->lost = 1;
    }
    else {
        for (Py_ssize_t i = 0; i < n; i++) {
            keys[i] = Py_NewRef((PyObject *)c->t.ents[c->dense.ids[i]].key);
        }
        v->keys = keys;
        v->n = n;
    }
    v->live = 0;
}

void
cacheobj_keys_change(CacheObject *self)
{
    if (self->rrview != NULL) {
        rrkeys_freeze(self);
    }
}

PyObject *
rrkeys_new(CacheObject *self)
{
    RRKeysObject *v = PyObject_GC_New(RRKeysObject, self->st->RRKeysType);   /* can re-enter */
    if (v == NULL) {
        return NULL;
    }
    cacheobj_keys_change(self);   /* one live sequence at a time */
    v->cache = (CacheObject *)Py_NewRef(self);
    v->live = 1;
    v->keys = NULL;
    v->n = 0;
    v->lost = 0;
    self->rrview = (PyObject *)v;   /* borrowed: the sequence unregisters itself */
    PyObject_GC_Track(v);
    return (PyObject *)v;
}

/* len(keys), or -1 with MemoryError for a sequence whose copy could not be made.
 * @pre v->cache's lock is held, v->cache is not NULL. */
static Py_ssize_t
rrkeys_len(RRKeysObject *v)
{
    if (v->lost) {
        PyErr_SetString(PyExc_MemoryError, "RRCache keys: no memory to keep them");
        return -1;
    }
    return v->live ? (Py_ssize_t)v->cache->c.dense.n : v->n;
}

static Py_ssize_t
rrkeys_length(RRKeysObject *v)
{
    if (v->cache == NULL) {
        return 0;   /* cleared by a collection */
    }
    Py_ssize_t n;
    ML_BEGIN_CRITICAL_SECTION(v->cache);
    n = rrkeys_len(v);
    ML_END_CRITICAL_SECTION();
    return n;
}

static PyObject *
rrkeys_item(RRKeysObject *v, Py_ssize_t i)
{
    PyObject *key = NULL;
    if (v->cache == NULL) {
        PyErr_SetString(PyExc_IndexError, "index out of range");
        return NULL;
    }
    ML_BEGIN_CRITICAL_SECTION(v->cache);
    Py_ssize_t n = rrkeys_len(v);
    if (n >= 0 && (i < 0 || i >= n)) {
        PyErr_SetString(PyExc_IndexError, "index out of range");
    }
    else if (n >= 0) {
        const ml_cache *c = &v->cache->c;
        key = Py_NewRef(v->live ? (PyObject *)c->t.ents[c->dense.ids[i]].key : v->keys[i]);
    }
    ML_END_CRITICAL_SECTION();
    return key;
}

/* Unregisters v from its cache and drops what it holds. */
static void
rrkeys_release(RRKeysObject *v)
{
    CacheObject *c = v->cache;
    PyObject **keys = NULL;
    Py_ssize_t n = 0;
    if (c != NULL) {
        ML_BEGIN_CRITICAL_SECTION(c);
        if (c->rrview == (PyObject *)v) {
            c->rrview = NULL;
        }
        keys = v->keys;
        n = v->n;
        v->keys = NULL;
        v->n = 0;
        v->live = 0;
        ML_END_CRITICAL_SECTION();
        v->cache = NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_DECREF(keys[i]);   /* can re-enter */
    }
    PyMem_Free(keys);
    Py_XDECREF(c);   /* can re-enter */
}

static int
rrkeys_traverse(RRKeysObject *v, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(v));
    Py_VISIT((PyObject *)v->cache);
    for (Py_ssize_t i = 0; i < v->n; i++) {
        Py_VISIT(v->keys[i]);
    }
    return 0;
}

static int
rrkeys_clear(RRKeysObject *v)
{
    rrkeys_release(v);
    return 0;
}

static void
rrkeys_dealloc(RRKeysObject *v)
{
    PyTypeObject *tp = Py_TYPE(v);
    PyObject_GC_UnTrack(v);
    rrkeys_release(v);
    PyObject_GC_Del(v);
    Py_DECREF(tp);
}

static PyType_Slot rrkeys_slots[] = {
    {Py_sq_length, rrkeys_length},
    {Py_sq_item, rrkeys_item},
    {Py_tp_traverse, rrkeys_traverse},
    {Py_tp_clear, rrkeys_clear},
    {Py_tp_dealloc, rrkeys_dealloc},
    {0, NULL},
};

PyType_Spec rrkeys_spec = {
    .name = "memleash._core.RRKeys",
    .basicsize = sizeof(RRKeysObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = rrkeys_slots,
};
