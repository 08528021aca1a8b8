/* cache_size.c — how much an entry counts: its units (cachetools' getsizeof, against
 * maxsize) and its accounted bytes (memleash's sizeof, against max_bytes), and the
 * arithmetic behind the currsize and currbytes properties.
 */
#include "py/cache.h"

#include <math.h>

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

int
cacheobj_entry_units(CacheObject *self, PyObject *value, double *units, int *is_float)
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

/* currsize as it stands (expired entries of a timed cache included). New reference. */
PyObject *
cacheobj_units_held(CacheObject *self)
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

