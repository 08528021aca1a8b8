/* compat.h — every difference between the CPython versions memleash builds on (3.11 to
 * 3.14, GIL and free-threaded builds), in one place.
 *
 * The binding uses the public C API, plus what this header defines. Each definition
 * names the version that has the real call and what ours does on the versions before it;
 * nothing here reads a structure's private fields. The rules the binding lives by:
 *
 *   - A weak referent is read with PyWeakref_GetRef (a strong reference, 3.13), never
 *     with PyWeakref_GET_OBJECT / PyWeakref_GetObject (borrowed: a collection at the next
 *     allocation may free the referent; deprecated in 3.13, gone in 3.15). Below 3.13
 *     ours takes the borrowed pointer and makes it strong before any other call.
 *   - A type attribute found along the MRO is held strongly (ml_type_lookup_ref) across
 *     anything that can run code: on the free-threaded build another thread may replace
 *     it, and on any build a __del__ reached from a decref may.
 *   - Py_BEGIN/END_CRITICAL_SECTION(2) exist from 3.13 (no-ops with the GIL); below
 *     that they are defined here as no-ops, so each object's operations can be written
 *     as critical sections once.
 *
 * Private calls still made, and why each is safe on every version built:
 *   _PyType_Lookup      ml_type_lookup_ref below wraps it (3.11-3.14 export it, with the
 *                       same meaning: a borrowed MRO look-up without descriptors); the
 *                       result is made strong before anything else runs.
 */
#ifndef ML_PY_COMPAT_H
#define ML_PY_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* ------------------------------------------------------------------------------------
 * Weak references: PyWeakref_GetRef (3.13)
 */
#if PY_VERSION_HEX < 0x030D00A1
/* Sets *pobj to a new reference to ref's referent and returns 1; sets it to NULL and
 * returns 0 when the referent is dead; -1 with TypeError when ref is not a weakref. */
static inline int
PyWeakref_GetRef(PyObject *ref, PyObject **pobj)
{
    if (ref == NULL || !PyWeakref_Check(ref)) {
        *pobj = NULL;
        PyErr_SetString(PyExc_TypeError, "expected a weakref");
        return -1;
    }
    PyObject *obj = PyWeakref_GetObject(ref);   /* borrowed: made strong at once */
    if (obj == NULL) {
        *pobj = NULL;
        return -1;
    }
    if (obj == Py_None) {
        *pobj = NULL;
        return 0;
    }
    *pobj = Py_NewRef(obj);
    return 1;
}
#endif

/* @return a new reference to ref's referent, or NULL when it is dead (no exception).
 * @pre ref is a weak reference (of any subtype). */
static inline PyObject *
ml_weak_get(PyObject *ref)
{
    PyObject *obj;
    if (PyWeakref_GetRef(ref, &obj) < 0) {
        PyErr_Clear();   /* not reached: ref is a weakref */
        return NULL;
    }
    return obj;
}

/* ------------------------------------------------------------------------------------
 * Type look-ups
 */
/* @return a new reference to the attribute `name` found along type's MRO without
 * invoking descriptors (what _PyType_Lookup finds), or NULL without an exception when
 * no class defines it. */
static inline PyObject *
ml_type_lookup_ref(PyTypeObject *type, PyObject *name)
{
    return Py_XNewRef(_PyType_Lookup(type, name));
}

/* ------------------------------------------------------------------------------------
 * Critical sections (3.13): no-ops on builds with the GIL
 */
#if PY_VERSION_HEX < 0x030D0000
#define Py_BEGIN_CRITICAL_SECTION(op) {
#define Py_END_CRITICAL_SECTION() }
#define Py_BEGIN_CRITICAL_SECTION2(a, b) {
#define Py_END_CRITICAL_SECTION2() }
#endif

#endif
