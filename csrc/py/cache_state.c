/* cache_state.c — repr and pickling of memleash._core.Cache (see cache.c for the design).
 *
 * repr follows cachetools: `Name({k: v, ...}, maxsize=..., currsize=...)`, with "{...}" for
 * a cache met again inside its own repr. Pickling goes through __getstate__/__setstate__
 * and copyreg.__newobj__, so subclasses with their own __init__ signature pickle, and
 * copy.copy gets its own entries while sharing attribute values (as cachetools 8).
 */
#include "py/cache.h"

#include <assert.h>
#include <math.h>

/* ------------------------------------------------------------------------------------
 * repr, pickling and copying
 */
PyObject *
cache_repr(CacheObject *self)
{
    PyObject *name = NULL, *data = NULL, *currsize = NULL, *result = NULL, *items = NULL;
    if (cacheobj_expire_now(self) < 0) {
        return NULL;
    }
    int rc = Py_ReprEnter((PyObject *)self);
    if (rc < 0) {
        return NULL;
    }
    if (rc > 0) {
        data = PyUnicode_FromString("{...}");
    }
    else {
        PyObject *d = PyDict_New();
        items = cacheobj_snapshot(self);
        if (d != NULL && items != NULL) {
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i += 2) {
                if (PyDict_SetItem(d, PyList_GET_ITEM(items, i), PyList_GET_ITEM(items, i + 1)) < 0) {   /* can re-enter */
                    Py_CLEAR(d);
                    break;
                }
            }
        }
        if (d != NULL) {
            data = PyObject_Repr(d);   /* can re-enter */
            Py_DECREF(d);
        }
        Py_ReprLeave((PyObject *)self);
    }
    if (data == NULL) {
        goto error;
    }
    name = cacheobj_type_name(self);
    currsize = cache_get_currsize(self, NULL);
    if (name == NULL || currsize == NULL) {
        goto error;
    }
    result = PyUnicode_FromFormat("%U(%U, maxsize=%R, currsize=%R)", name, data, self->maxsize, currsize);
error:
    Py_XDECREF(items);
    Py_XDECREF(name);
    Py_XDECREF(data);
    Py_XDECREF(currsize);
    return result;
}

/* The policy's order as ids: the recency or arrival list (LRU, FIFO), the frequency
 * buckets from the lowest (LFU), or the RR key array. @return how many were written. */
static uint32_t
policy_order(const ml_cache *c, uint32_t *out)
{
    uint32_t n = 0;
    const ml_entry *ents = c->t.ents;
    switch (c->kind) {
    case ML_POLICY_LRU:
    case ML_POLICY_FIFO:
        for (uint32_t id = c->policy.head; id != ML_NIL; id = ents[id].link[ML_LINK_POLICY][1]) {
            out[n++] = id;
        }
        break;
    case ML_POLICY_LFU:
        for (uint32_t b = c->lfu.first; b != ML_NIL; b = c->lfu.b[b].next) {
            for (uint32_t id = c->lfu.b[b].keys.head; id != ML_NIL; id = ents[id].link[ML_LINK_POLICY][1]) {
                out[n++] = id;
            }
        }
        break;
    case ML_POLICY_RANDOM:
        for (uint32_t i = 0; i < c->dense.n; i++) {
            out[n++] = c->dense.ids[i];
        }
        break;
    case ML_POLICY_INSERTION:
        break;
    }
    return n;
}

/* State: (dict, maxsize, units_on, units_float, max_bytes, sizeof, items, units, bytes,
 * order, counts, choice, timed) — items flat in iteration order; timed: see timed.c; order: the policy's order as
 * positions in items (None for Cache); counts: LFU's use counts along order. Flat lists
 * pickle iteratively, whatever the number of items. */
PyObject *
cache_getstate(CacheObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *items = NULL, *units = NULL, *bytes = NULL, *order = NULL, *counts = NULL;
    PyObject *maxbytes = NULL, *state = NULL, *timed = NULL;
    uint32_t *pos = NULL, *ids = NULL;
    const ml_cache *c = &self->c;
    uint32_t n = c->t.used;
    items = cacheobj_snapshot(self);
    maxbytes = cache_get_maxbytes(self, NULL);
    units = c->units_on ? PyList_New(n) : Py_NewRef(Py_None);
    bytes = c->bytes_on ? PyList_New(n) : Py_NewRef(Py_None);
    if (items == NULL || maxbytes == NULL || units == NULL || bytes == NULL) {
        goto error;
    }
    Py_ssize_t i = 0;
    for (uint32_t id = ml_cache_first(c); id != ML_NIL; id = ml_cache_next(c, id), i++) {
        if (units != Py_None) {
            double u = c->units[id];
            PyObject *o = self->units_float ? PyFloat_FromDouble(u) : PyLong_FromDouble(u);
            if (o == NULL) {
                goto error;
            }
            PyList_SET_ITEM(units, i, o);
        }
        if (bytes != Py_None) {
            PyObject *o = PyLong_FromSize_t(c->bytes[id]);
            if (o == NULL) {
                goto error;
            }
            PyList_SET_ITEM(bytes, i, o);
        }
    }
    if (c->kind == ML_POLICY_INSERTION) {
        order = Py_NewRef(Py_None);
        counts = Py_NewRef(Py_None);
    }
    else {
        pos = PyMem_Malloc(((size_t)c->t.top + 1u) * sizeof(uint32_t));
        ids = PyMem_Malloc(((size_t)n + 1u) * sizeof(uint32_t));
        order = PyList_New(n);
        counts = c->kind == ML_POLICY_LFU ? PyList_New(n) : Py_NewRef(Py_None);
        if (pos == NULL || ids == NULL) {
            PyErr_NoMemory();
            goto error;
        }
        if (order == NULL || counts == NULL) {
            goto error;
        }
        uint32_t p = 0;
        for (uint32_t id = ml_cache_first(c); id != ML_NIL; id = ml_cache_next(c, id)) {
            pos[id] = p++;
        }
        uint32_t m = policy_order(c, ids);
        assert(m == n);
        for (uint32_t j = 0; j < m; j++) {
            PyObject *o = PyLong_FromUnsignedLong(pos[ids[j]]);
            if (o == NULL) {
                goto error;
            }
            PyList_SET_ITEM(order, j, o);
            if (counts != Py_None) {
                if ((o = PyLong_FromUnsignedLongLong(ml_lfu_count(&c->lfu, ids[j]))) == NULL) {
                    goto error;
                }
                PyList_SET_ITEM(counts, j, o);
            }
        }
    }
    timed = timed_getstate(self);
    if (timed == NULL) {
        goto error;
    }
    state = Py_BuildValue("(OOiiOOOOOOOOO)", self->dict ? self->dict : Py_None, self->maxsize,
                          (int)c->units_on, (int)self->units_float, maxbytes,
                          self->sizeof_fn ? self->sizeof_fn : Py_None, items, units, bytes, order,
                          counts, self->choice ? self->choice : Py_None, timed);
error:
    Py_XDECREF(timed);
    PyMem_Free(pos);
    PyMem_Free(ids);
    Py_XDECREF(items);
    Py_XDECREF(maxbytes);
    Py_XDECREF(units);
    Py_XDECREF(bytes);
    Py_XDECREF(order);
    Py_XDECREF(counts);
    return state;
}

static int
inconsistent(void)
{
    if (!PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "inconsistent cache state");
    }
    return -1;
}

/* Rebuilds the policy's order from `order` (positions) and LFU's `counts`, once every
 * item is stored in insertion order. Validates everything before changing anything. */
static int
restore_policy_order(CacheObject *self, PyObject *order, PyObject *counts, Py_ssize_t n)
{
    ml_cache *c = &self->c;
    uint32_t *ids = NULL;
    unsigned long long *cnt = NULL;
    char *seen = NULL;
    int rc = -1;
    if ((Py_ssize_t)c->t.used != n) {
        return inconsistent();   /* the items did not all fit, or keys repeated */
    }
    ids = PyMem_Malloc(((size_t)n + 1u) * sizeof(uint32_t));
    cnt = PyMem_Malloc(((size_t)n + 1u) * sizeof(unsigned long long));
    seen = PyMem_Calloc((size_t)n + 1u, 1);
    if (ids == NULL || cnt == NULL || seen == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    uint32_t *by_pos = ids;   /* first: position -> id */
    Py_ssize_t p = 0;
    for (uint32_t id = ml_cache_first(c); id != ML_NIL; id = ml_cache_next(c, id)) {
        by_pos[p++] = id;
    }
    Py_ssize_t *q = PyMem_Malloc(((size_t)n + 1u) * sizeof(Py_ssize_t));
    if (q == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        q[j] = PyLong_AsSsize_t(PyList_GET_ITEM(order, j));
        if (q[j] < 0 || q[j] >= n || seen[q[j]]) {
            PyMem_Free(q);
            inconsistent();
            goto done;
        }
        seen[q[j]] = 1;
        if (counts != Py_None) {
            cnt[j] = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(counts, j));
            if (PyErr_Occurred() || cnt[j] == 0 || (j > 0 && cnt[j] < cnt[j - 1])) {
                PyMem_Free(q);
                inconsistent();
                goto done;
            }
        }
    }
    /* valid: rebuild */
    switch (c->kind) {
    case ML_POLICY_LRU:
    case ML_POLICY_FIFO:
        c->policy = ML_LIST_EMPTY;
        for (Py_ssize_t j = 0; j < n; j++) {
            ml_list_push_back(&c->policy, c->t.ents, ML_LINK_POLICY, by_pos[q[j]]);
        }
        break;
    case ML_POLICY_LFU:
        ml_lfu_reset(&c->lfu);
        for (Py_ssize_t j = 0; j < n; j++) {
            ml_lfu_append(&c->lfu, c->t.ents, by_pos[q[j]], cnt[j]);
        }
        break;
    case ML_POLICY_RANDOM:
        c->dense.n = 0;
        for (Py_ssize_t j = 0; j < n; j++) {
            ml_dense_add(&c->dense, by_pos[q[j]]);
        }
        break;
    case ML_POLICY_INSERTION:
        break;
    }
    PyMem_Free(q);
    ML_CACHE_CHECK(c);
    rc = 0;
done:
    PyMem_Free(ids);
    PyMem_Free(cnt);
    PyMem_Free(seen);
    return rc;
}

PyObject *
cache_setstate(CacheObject *self, PyObject *state)
{
    PyObject *dict, *maxsize, *max_bytes, *sizeof_fn, *items, *units, *bytes, *order, *counts, *choice;
    PyObject *timed, *deadlines = NULL;
    int units_on, units_float;
    if (!PyTuple_Check(state) ||
        !PyArg_ParseTuple(state, "OOppOOO!OOOOOO:__setstate__", &dict, &maxsize, &units_on,
                          &units_float, &max_bytes, &sizeof_fn, &PyList_Type, &items, &units,
                          &bytes, &order, &counts, &choice, &timed)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "__setstate__ expects the tuple __getstate__ returns");
        }
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(items) / 2;
    int ordered = self->c.kind != ML_POLICY_INSERTION;
#define LIST_OF_N(o) (PyList_Check(o) && PyList_GET_SIZE(o) == n)
    if (PyList_GET_SIZE(items) % 2 || (dict != Py_None && !PyDict_Check(dict)) ||
        (units != Py_None && !LIST_OF_N(units)) || (bytes != Py_None && !LIST_OF_N(bytes)) ||
        (ordered ? !LIST_OF_N(order) : order != Py_None) ||
        (self->c.kind == ML_POLICY_LFU ? !LIST_OF_N(counts) : counts != Py_None) ||
        (self->c.kind == ML_POLICY_RANDOM ? !PyCallable_Check(choice) : choice != Py_None) ||
        units_on != (units != Py_None)) {
        PyErr_SetString(PyExc_ValueError, "inconsistent cache state");
        return NULL;
    }
#undef LIST_OF_N
    Py_INCREF(state);   /* its parts are borrowed below, across callbacks */
    if (dict != Py_None) {
        PyObject *own = PyObject_GenericGetDict((PyObject *)self, NULL);
        int rc = own ? PyDict_Update(own, dict) : -1;
        Py_XDECREF(own);
        if (rc < 0) {
            goto error;
        }
    }
    if (cacheobj_configure(self, maxsize, units_on, max_bytes, sizeof_fn) < 0 ||
        cacheobj_resolve_getsizeof(self) < 0) {
        goto error;
    }
    Py_XSETREF(self->choice, choice == Py_None ? NULL : Py_NewRef(choice));
    if (timed_setstate(self, timed, n, &deadlines) < 0) {
        goto error;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyList_GET_ITEM(items, 2 * i), *value = PyList_GET_ITEM(items, 2 * i + 1);
        double u = 1.0;
        int is_float = 0;
        long long b = 0;
        if (units != Py_None && cacheobj_to_units(PyList_GET_ITEM(units, i), &u, &is_float) < 0) {
            goto error;
        }
        if (bytes != Py_None && (b = PyLong_AsLongLong(PyList_GET_ITEM(bytes, i))) < 0) {
            inconsistent();
            goto error;
        }
        double deadline = 0.0;
        if (deadlines != NULL) {
            deadline = PyFloat_AsDouble(PyList_GET_ITEM(deadlines, i));
            if ((deadline == -1.0 && PyErr_Occurred()) || isnan(deadline)) {
                inconsistent();
                goto error;
            }
        }
        Py_hash_t h = PyObject_Hash(key);   /* can re-enter */
        if (h == -1 || cacheobj_store(self, key, h, value, u, (size_t)b, 0, deadline) < 0) {
            goto error;
        }
    }
    self->units_float = (unsigned)units_float;
    if (ordered && restore_policy_order(self, order, counts, n) < 0) {
        goto error;
    }
    if (cacheobj_expire_now(self) < 0) {   /* as cachetools' TTLCache.__setstate__ */
        goto error;
    }
    Py_DECREF(state);
    Py_RETURN_NONE;
error:
    Py_DECREF(state);
    return NULL;
}

