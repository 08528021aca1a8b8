/* cache_iter.c — the key iterator of memleash._core.Cache (RRCache's key sequence for its
 * choice function is in cache_entry.c).
 *
 * Keys come in insertion order (the engine's ML_LINK_ORDER list). Entry ids are stable,
 * so an iterator holds the next id and the table version it started from: replacing a
 * value or reading keys leaves the version alone, while adding or removing a key bumps it
 * and the next step raises RuntimeError, as dict iterators do.
 *
 * Timed caches iterate as cachetools' TTLCache does: over a snapshot of the keys taken
 * when iteration begins, yielding each key still present and alive at its step (the time
 * frozen for the step) — items expire meanwhile, so changes never raise.
 */
#include "py/cache.h"

typedef struct {
    PyObject_HEAD
    CacheObject *cache;     /* NULL once exhausted */
    uint32_t next;
    uint32_t used;
    uint64_t version;
    PyObject *snapshot;     /* timed caches: the keys when iteration began, else NULL */
    Py_ssize_t index;       /* timed caches: the next key of snapshot */
} CacheIterObject;

/* ------------------------------------------------------------------------------------
 * Iteration: keys in insertion order; changing the set of keys invalidates iterators
 */
PyObject *
cache_iter(CacheObject *self)
{
    CacheIterObject *it = PyObject_GC_New(CacheIterObject, self->st->CacheIterType);   /* can re-enter */
    if (it == NULL) {
        return NULL;
    }
    it->cache = NULL;
    it->snapshot = NULL;
    it->index = 0;
    if (self->timed != TIMED_NONE) {
        it->snapshot = cacheobj_list_for_entries(self, 1);   /* can re-enter */
        if (it->snapshot == NULL) {
            Py_DECREF(it);
            return NULL;
        }
        Py_ssize_t i = 0;
        for (uint32_t id = ml_cache_first(&self->c); id != ML_NIL; id = ml_cache_next(&self->c, id)) {
            PyList_SET_ITEM(it->snapshot, i++, Py_NewRef((PyObject *)self->c.t.ents[id].key));
        }
    }
    /* read only now: the allocations above can run finalizers that change the cache */
    it->cache = (CacheObject *)Py_NewRef(self);
    it->next = ml_cache_first(&self->c);
    it->used = self->c.t.used;
    it->version = self->c.t.version;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

/* The next key of a timed cache's snapshot that is still present and alive. */
static PyObject *
cacheiter_next_timed(CacheIterObject *it)
{
    CacheObject *c = it->cache;   /* the caller holds a reference of its own (locked_step) */
    /* each step runs Python code (the key's __hash__ and __eq__, the timer, finalizers),
     * which may run this same iterator to its end: the snapshot is re-read after it */
    while (it->snapshot != NULL && it->index < PyList_GET_SIZE(it->snapshot)) {
        PyObject *key = Py_NewRef(PyList_GET_ITEM(it->snapshot, it->index++));
        double now;
        PyObject *tm;
        Py_hash_t h = PyObject_Hash(key);   /* can re-enter */
        if (h == -1 || timed_enter(c, &now, &tm) < 0) {   /* can re-enter */
            Py_DECREF(key);
            return NULL;
        }
        uint32_t id;
        int found = cacheobj_find(c, key, h, &id);   /* can re-enter */
        if (found > 0) {
            found = timed_alive(c, id, now);
        }
        timed_exit(tm);
        if (found != 0) {
            if (found < 0) {
                Py_CLEAR(key);
            }
            return key;
        }
        Py_DECREF(key);   /* can re-enter */
    }
    if (it->cache != NULL) {   /* not already ended by a nested call */
        CacheObject *held = it->cache;
        it->cache = NULL;
        Py_CLEAR(it->snapshot);   /* can re-enter */
        Py_DECREF(held);
    }
    return NULL;
}

static PyObject *
cacheiter_next(CacheIterObject *it)
{
    CacheObject *c = it->cache;
    if (c == NULL) {
        return NULL;
    }
    if (it->snapshot != NULL) {
        return cacheiter_next_timed(it);
    }
    if (c->c.t.version != it->version) {
        PyObject *name = cacheobj_type_name(c);
        if (name != NULL) {
            PyErr_Format(PyExc_RuntimeError, "%U %s during iteration", name,
                         c->c.t.used != it->used ? "changed size" : "keys changed");
            Py_DECREF(name);
        }
        it->version = UINT64_MAX;   /* keep failing, as dict iterators do */
        return NULL;
    }
    if (it->next == ML_NIL) {
        it->cache = NULL;
        Py_DECREF(c);
        return NULL;
    }
    PyObject *key = (PyObject *)c->c.t.ents[it->next].key;
    it->next = ml_cache_next(&c->c, it->next);
    return Py_NewRef(key);
}

static PyObject *
cacheiter_length_hint(CacheIterObject *it, PyObject *Py_UNUSED(ignored))
{
    if (it->snapshot != NULL) {
        return PyLong_FromSsize_t(PyList_GET_SIZE(it->snapshot) - it->index);
    }
    if (it->cache == NULL || it->cache->c.t.version != it->version) {
        return PyLong_FromLong(0);
    }
    Py_ssize_t n = 0;
    for (uint32_t id = it->next; id != ML_NIL; id = ml_cache_next(&it->cache->c, id)) {
        n++;
    }
    return PyLong_FromSsize_t(n);
}

static int
cacheiter_traverse(CacheIterObject *it, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(it));
    Py_VISIT((PyObject *)it->cache);
    Py_VISIT(it->snapshot);
    return 0;
}

static int
cacheiter_clear(CacheIterObject *it)
{
    Py_CLEAR(it->cache);
    Py_CLEAR(it->snapshot);
    return 0;
}

static void
cacheiter_dealloc(CacheIterObject *it)
{
    PyTypeObject *tp = Py_TYPE(it);
    PyObject_GC_UnTrack(it);
    Py_CLEAR(it->cache);
    Py_CLEAR(it->snapshot);
    PyObject_GC_Del(it);
    Py_DECREF(tp);
}

/* An iterator's fields are guarded by its own lock, the cache's engine by the cache's:
 * next() takes both (free-threaded build), holding the cache by a reference of its own so
 * that the iterator letting go of it at the end frees nothing under the lock. */
typedef PyObject *(*iter_step)(CacheIterObject *it);

static PyObject *
locked_step(CacheIterObject *it, iter_step step)
{
    CacheObject *c;
    ML_BEGIN_CRITICAL_SECTION(it);
    c = (CacheObject *)Py_XNewRef(it->cache);
    ML_END_CRITICAL_SECTION();
    if (c == NULL) {
        return NULL;   /* exhausted */
    }
    PyObject *r = NULL;
    Py_BEGIN_CRITICAL_SECTION2(it, c);
    if (it->cache == c) {
        r = step(it);
    }
    Py_END_CRITICAL_SECTION2();
    Py_DECREF(c);   /* can re-enter */
    return r;
}

static PyObject *
locked_next(CacheIterObject *it)
{
    return locked_step(it, cacheiter_next);
}

static PyObject *
hint_step(CacheIterObject *it)
{
    return cacheiter_length_hint(it, NULL);
}

static PyObject *
locked_length_hint(CacheIterObject *it, PyObject *Py_UNUSED(ignored))
{
    PyObject *r = locked_step(it, hint_step);
    return r != NULL || PyErr_Occurred() ? r : PyLong_FromLong(0);
}

static PyMethodDef cacheiter_methods[] = {
    {"__length_hint__", (PyCFunction)locked_length_hint, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot cacheiter_slots[] = {
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, locked_next},
    {Py_tp_dealloc, cacheiter_dealloc},
    {Py_tp_traverse, cacheiter_traverse},
    {Py_tp_clear, cacheiter_clear},
    {Py_tp_methods, cacheiter_methods},
    {0, NULL},
};

PyType_Spec cacheiter_spec = {
    .name = "memleash._core.CacheIterator",
    .basicsize = sizeof(CacheIterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = cacheiter_slots,
};
