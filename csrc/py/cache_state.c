/* cache_state.c — repr and pickling of memleash._core.Cache (see cache.c for the design).
 *
 * repr follows cachetools: `Name({k: v, ...}, maxsize=..., currsize=...)`, with "{...}" for
 * a cache met again inside its own repr. Pickling goes through __getstate__/__setstate__
 * and copyreg.__newobj__, so subclasses with their own __init__ signature pickle, and
 * copy.copy gets its own entries while sharing attribute values (as cachetools 8).
 */
#include "py/cache.h"

/* ------------------------------------------------------------------------------------
 * repr, pickling and copying
 */
PyObject *
cache_repr(CacheObject *self)
{
    PyObject *name = NULL, *data = NULL, *currsize = NULL, *result = NULL, *items = NULL;
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

/* State: (dict, maxsize, units_on, units_float, max_bytes, sizeof, items, units, bytes,
 * recency) — items flat in iteration order, recency as positions least recent first. A
 * flat list pickles iteratively, whatever the number of items. */
PyObject *
cache_getstate(CacheObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *items = NULL, *units = Py_None, *bytes = Py_None, *recency = Py_None, *state = NULL;
    PyObject *maxbytes = NULL;
    uint32_t *pos = NULL;
    Py_INCREF(units);
    Py_INCREF(bytes);
    Py_INCREF(recency);
    uint32_t n = self->c.t.used;
    items = cacheobj_snapshot(self);
    maxbytes = cache_get_maxbytes(self, NULL);
    if (items == NULL || maxbytes == NULL) {
        goto error;
    }
    if (self->c.units_on) {
        Py_SETREF(units, PyList_New(n));
        if (units == NULL) {
            goto error;
        }
    }
    if (self->c.bytes_on) {
        Py_SETREF(bytes, PyList_New(n));
        if (bytes == NULL) {
            goto error;
        }
    }
    Py_ssize_t i = 0;
    for (uint32_t id = ml_cache_first(&self->c); id != ML_NIL; id = ml_cache_next(&self->c, id), i++) {
        if (units != Py_None) {
            double u = self->c.units[id];
            PyObject *o = self->units_float ? PyFloat_FromDouble(u) : PyLong_FromDouble(u);
            if (o == NULL) {
                goto error;
            }
            PyList_SET_ITEM(units, i, o);
        }
        if (bytes != Py_None) {
            PyObject *o = PyLong_FromSize_t(self->c.bytes[id]);
            if (o == NULL) {
                goto error;
            }
            PyList_SET_ITEM(bytes, i, o);
        }
    }
    if (self->c.kind == ML_POLICY_LRU) {
        pos = PyMem_Malloc(((size_t)self->c.t.top + 1u) * sizeof(uint32_t));
        Py_SETREF(recency, PyList_New(n));
        if (pos == NULL || recency == NULL) {
            PyErr_NoMemory();
            goto error;
        }
        uint32_t p = 0;
        for (uint32_t id = ml_cache_first(&self->c); id != ML_NIL; id = ml_cache_next(&self->c, id)) {
            pos[id] = p++;
        }
        i = 0;
        for (uint32_t id = self->c.policy.head; id != ML_NIL; id = ENTS(self)[id].link[ML_LINK_POLICY][1]) {
            PyObject *o = PyLong_FromUnsignedLong(pos[id]);
            if (o == NULL) {
                goto error;
            }
            PyList_SET_ITEM(recency, i++, o);
        }
    }
    state = Py_BuildValue("(OOiiOOOOOO)", self->dict ? self->dict : Py_None, self->maxsize,
                          (int)self->c.units_on, (int)self->units_float, maxbytes,
                          self->sizeof_fn ? self->sizeof_fn : Py_None, items, units, bytes, recency);
error:
    PyMem_Free(pos);
    Py_XDECREF(items);
    Py_XDECREF(maxbytes);
    Py_XDECREF(units);
    Py_XDECREF(bytes);
    Py_XDECREF(recency);
    return state;
}

PyObject *
cache_setstate(CacheObject *self, PyObject *state)
{
    PyObject *dict, *maxsize, *max_bytes, *sizeof_fn, *items, *units, *bytes, *recency;
    int units_on, units_float;
    uint32_t *ids = NULL;
    if (!PyTuple_Check(state) ||
        !PyArg_ParseTuple(state, "OOppOOO!OOO:__setstate__", &dict, &maxsize, &units_on, &units_float,
                          &max_bytes, &sizeof_fn, &PyList_Type, &items, &units, &bytes, &recency)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "__setstate__ expects the tuple __getstate__ returns");
        }
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(items) / 2;
    if (PyList_GET_SIZE(items) % 2 || (dict != Py_None && !PyDict_Check(dict)) ||
        (units != Py_None && (!PyList_Check(units) || PyList_GET_SIZE(units) != n)) ||
        (bytes != Py_None && (!PyList_Check(bytes) || PyList_GET_SIZE(bytes) != n)) ||
        (recency != Py_None && (!PyList_Check(recency) || PyList_GET_SIZE(recency) != n)) ||
        (units_on != (units != Py_None))) {
        PyErr_SetString(PyExc_ValueError, "inconsistent cache state");
        return NULL;
    }
    Py_INCREF(state);   /* its parts are borrowed below, across callbacks */
    if (dict != Py_None) {
        PyObject *own = PyObject_GenericGetDict((PyObject *)self, NULL);
        int rc = own ? PyDict_Update(own, dict) : -1;
        Py_XDECREF(own);
        if (rc < 0) {
            goto error;
        }
    }
    if (cacheobj_configure(self, maxsize, units_on, max_bytes, sizeof_fn) < 0 || cacheobj_resolve_getsizeof(self) < 0) {
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
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "inconsistent cache state");
            }
            goto error;
        }
        Py_hash_t h = PyObject_Hash(key);   /* can re-enter */
        if (h == -1 || cacheobj_store(self, key, h, value, u, (size_t)b, 0) < 0) {
            goto error;
        }
    }
    self->units_float = (unsigned)units_float;
    if (recency != Py_None) {
        if ((Py_ssize_t)self->c.t.used != n) {
            PyErr_SetString(PyExc_ValueError, "inconsistent cache state");
            goto error;
        }
        ids = PyMem_Malloc(((size_t)n + 1u) * sizeof(uint32_t));
        if (ids == NULL) {
            PyErr_NoMemory();
            goto error;
        }
        Py_ssize_t p = 0;
        for (uint32_t id = ml_cache_first(&self->c); id != ML_NIL; id = ml_cache_next(&self->c, id)) {
            ids[p++] = id;
        }
        /* validate the permutation before touching the list */
        char *seen = PyMem_Calloc((size_t)n + 1u, 1);
        if (seen == NULL) {
            PyErr_NoMemory();
            goto error;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t q = PyLong_AsSsize_t(PyList_GET_ITEM(recency, i));
            if (q < 0 || q >= n || seen[q]) {
                PyMem_Free(seen);
                if (!PyErr_Occurred()) {
                    PyErr_SetString(PyExc_ValueError, "inconsistent cache state");
                }
                goto error;
            }
            seen[q] = 1;
        }
        PyMem_Free(seen);
        self->c.policy = ML_LIST_EMPTY;
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t q = PyLong_AsSsize_t(PyList_GET_ITEM(recency, i));
            ml_list_push_back(&self->c.policy, ENTS(self), ML_LINK_POLICY, ids[q]);
        }
        ML_CACHE_CHECK(&self->c);
    }
    PyMem_Free(ids);
    Py_DECREF(state);
    Py_RETURN_NONE;
error:
    PyMem_Free(ids);
    Py_DECREF(state);
    return NULL;
}
