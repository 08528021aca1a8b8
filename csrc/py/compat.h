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
 *   PyASCIIObject.wstr  read on 3.11 only (ml_unicode_ascii_sizeof): the one field by which
 *                       3.11's sys.getsizeof of an ASCII str exceeds header + length + 1.
 *                       3.12 removed the field; nothing is read there.
 *   _PyErr_WriteUnraisableMsg
 *                       PyErr_FormatUnraisable below, on 3.11 and 3.12 only (exported by
 *                       both with this meaning; 3.13 has the public call instead).
 *   _PyCFunctionFastWithKeywords
 *                       a typedef only, on 3.11 and 3.12 (the same signature 3.13 made
 *                       public as PyCFunctionFastWithKeywords).
 *   PyWeakref_GetObject inside our PyWeakref_GetRef, below 3.13 only (public there; made
 *                       strong before any other call).
 * Fields read directly (the non-limited API's structures, documented there, but the last):
 *   PyCodeObject.co_filename, .co_qualname
 *                       (str, never NULL) present with these names and meanings from 3.11
 *                       to 3.14; the getters would be attribute look-ups (the resource
 *                       tracker reads them for every frame of a site).
 *   PyThreadState.critical_section, PyCriticalSection._cs_mutex,
 *   PyCriticalSection2._cs_mutex2, PyObject.ob_mutex
 *                       on 3.13t only (ml_section_held_on_top below): whether the thread's
 *                       top-most critical section holds an object's lock, the test 3.14
 *                       makes itself before taking a lock again. The fields are in 3.13's
 *                       public headers (cpython/pystate.h, cpython/critical_section.h,
 *                       object.h); the tag bits are its pycore_critical_section.h's.
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
 * The raised exception as one object: PyErr_GetRaisedException / SetRaisedException (3.12)
 */
#if PY_VERSION_HEX < 0x030C0000
/* @return the current exception (normalized, its traceback attached), cleared; a new
 * reference, or NULL when none is set. */
static inline PyObject *
PyErr_GetRaisedException(void)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        (void)PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
}

/* Sets exc (stolen; NULL clears) as the current exception. */
static inline void
PyErr_SetRaisedException(PyObject *exc)
{
    if (exc == NULL) {
        PyErr_Clear();
        return;
    }
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
}
#endif

/* ------------------------------------------------------------------------------------
 * Dictionary look-ups: PyDict_GetItemRef, PyDict_GetItemStringRef (3.13)
 */
#if PY_VERSION_HEX < 0x030D00A1
/* Sets *result to a new reference to dict[key] and returns 1; to NULL and returns 0 when
 * the key is absent; -1 with an exception (an unhashable key, or dict not a dict). */
static inline int
PyDict_GetItemRef(PyObject *dict, PyObject *key, PyObject **result)
{
    PyObject *v = PyDict_GetItemWithError(dict, key);   /* borrowed: made strong at once */
    *result = Py_XNewRef(v);
    if (v != NULL) {
        return 1;
    }
    return PyErr_Occurred() ? -1 : 0;
}

static inline int
PyDict_GetItemStringRef(PyObject *dict, const char *key, PyObject **result)
{
    PyObject *k = PyUnicode_FromString(key);
    if (k == NULL) {
        *result = NULL;
        return -1;
    }
    int rc = PyDict_GetItemRef(dict, k, result);
    Py_DECREF(k);
    return rc;
}
#endif

/* ------------------------------------------------------------------------------------
 * Unraisable errors with a message of our own: PyErr_FormatUnraisable (3.13)
 */
#if PY_VERSION_HEX < 0x030D00A1
/* Reports the current exception through sys.unraisablehook with the message made from
 * format (PyUnicode_FromFormat's), which should start with "Exception ignored " (3.11
 * and 3.12 put that prefix themselves); clears the exception. */
static inline void
PyErr_FormatUnraisable(const char *format, ...)
{
    static const char prefix[] = "Exception ignored ";
    va_list va;
    va_start(va, format);
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *msg = PyUnicode_FromFormatV(format, va);
    va_end(va);
    const char *text = msg != NULL ? PyUnicode_AsUTF8(msg) : NULL;
    if (text == NULL) {
        PyErr_Clear();
        text = "Exception ignored in memleash";
    }
    if (strncmp(text, prefix, sizeof(prefix) - 1) == 0) {
        text += sizeof(prefix) - 1;
    }
    PyErr_SetRaisedException(exc);
    _PyErr_WriteUnraisableMsg(text, NULL);
    Py_XDECREF(msg);
}
#endif

/* ------------------------------------------------------------------------------------
 * C function signatures: PyCFunctionFastWithKeywords (public in 3.13)
 */
#if PY_VERSION_HEX < 0x030D0000
typedef _PyCFunctionFastWithKeywords PyCFunctionFastWithKeywords;
#endif

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
 * Sizes
 */
/* For an exact str that is compact ASCII, sets *size to sys.getsizeof(o) and returns 1;
 * returns 0 for any other str (the caller asks sys.getsizeof). */
static inline int
ml_unicode_ascii_sizeof(PyObject *o, size_t *size)
{
    if (!PyUnicode_IS_COMPACT_ASCII(o)) {
        return 0;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (((PyASCIIObject *)o)->wstr != NULL) {
        return 0;   /* 3.11: a wchar_t copy made by a legacy API counts too */
    }
#endif
    *size = sizeof(PyASCIIObject) + (size_t)PyUnicode_GET_LENGTH(o) + 1u;
    return 1;
}

/* ------------------------------------------------------------------------------------
 * Clocks: what time.monotonic() and time.time() return, read without the call
 */
/* The clocks a timed cache reads itself when its timer is one of these functions:
 * time.monotonic, time.time, memleash.monotonic_coarse. */
enum { ML_CLOCK_NONE = 0, ML_CLOCK_MONOTONIC = 1, ML_CLOCK_TIME = 2, ML_CLOCK_COARSE = 3 };

#include <time.h>

/* memleash.monotonic_coarse's clock: Linux's CLOCK_MONOTONIC_COARSE (CLOCK_MONOTONIC as of
 * the kernel's last tick, read from the vDSO without reading the hardware counter);
 * CLOCK_MONOTONIC itself where the system has no coarse clock. */
#ifdef CLOCK_MONOTONIC_COARSE
#define ML_COARSE_CLOCK_ID CLOCK_MONOTONIC_COARSE
#else
#define ML_COARSE_CLOCK_ID CLOCK_MONOTONIC
#endif

/* clock_gettime(id) in seconds, with _PyTime_AsSecondsDouble's arithmetic (a whole number
 * of seconds exactly, anything else as (double)ns / 1e9): below 3.13, on the POSIX systems
 * memleash builds on, time.monotonic() and time.time() read CLOCK_MONOTONIC and
 * CLOCK_REALTIME so, and the same arithmetic gives the same double. 0 or -1 (OSError). */
static inline int
ml_clock_gettime(clockid_t id, double *seconds)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    long long ns = (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec;
    *seconds = ns % 1000000000LL == 0 ? (double)(ns / 1000000000LL) : (double)ns / 1e9;
    return 0;
}

#if PY_VERSION_HEX >= 0x030D0000
/* 3.13's public PyTime API: the very calls time.monotonic() and time.time() make. 0 or -1
 * with an exception. */
static inline int
ml_clock_read(int clock, double *seconds)
{
    if (clock == ML_CLOCK_COARSE) {
        return ml_clock_gettime(ML_COARSE_CLOCK_ID, seconds);
    }
    PyTime_t t;
    if ((clock == ML_CLOCK_MONOTONIC ? PyTime_Monotonic(&t) : PyTime_Time(&t)) < 0) {
        return -1;
    }
    *seconds = PyTime_AsSecondsDouble(t);
    return 0;
}
#else
static inline int
ml_clock_read(int clock, double *seconds)
{
    return ml_clock_gettime(clock == ML_CLOCK_COARSE ? ML_COARSE_CLOCK_ID
                            : clock == ML_CLOCK_MONOTONIC ? CLOCK_MONOTONIC : CLOCK_REALTIME,
                            seconds);
}
#endif

/* ------------------------------------------------------------------------------------
 * Instance dicts (tp_dictoffset) and the specializing interpreter
 */
/* The instance dict a new cache or emitter starts with: an empty dict below 3.12, none
 * (NULL: made on first use) from 3.12. A method call `obj.meth(...)` is specialized by
 * the interpreter only in one of the two states, and each version wants the other one:
 * 3.11's LOAD_METHOD gives up on a type with a tp_dictoffset whose instance has no dict
 * yet (SPEC_FAIL_NO_DICT: every c.get(k) or e.emit(...) then looks the method up the
 * generic way, about 200 instructions more a call, measured with callgrind), while 3.12's
 * LOAD_ATTR specializes exactly that case (LOAD_ATTR_METHOD_LAZY_DICT) and gives up when
 * the dict exists. An empty dict shares the interpreter's empty keys, so it holds no
 * attribute that could shadow a method. @return 0 (*dict set, maybe to NULL), or -1 with
 * MemoryError. */
static inline int
ml_instance_dict_new(PyObject **dict)
{
#if PY_VERSION_HEX < 0x030C0000
    *dict = PyDict_New();
    return *dict == NULL ? -1 : 0;
#else
    *dict = NULL;
    return 0;
#endif
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

/* ML_BEGIN_CRITICAL_SECTION(op) ... ML_END_CRITICAL_SECTION(), and ml_section_begin /
 * ml_section_end where a section spans calls: Py_BEGIN/END_CRITICAL_SECTION, except that
 * on 3.13's free-threaded build a section on an object whose lock the thread's top-most
 * active section holds already is skipped — what 3.14 does itself
 * (_PyCriticalSection_BeginSlow: "skip locking if the mutex is currently locked by the
 * top-most critical section"). 3.13 locks again, and PyMutex is not recursive: the thread
 * spins (40 sched_yield()s), parks, and the detach that parking does suspends its own
 * outer section, which wakes it — every other thread having had the object meanwhile.
 * Every callback that comes back into the object it was called from did that: RRCache's
 * choice reading its key sequence, an overriding popitem calling super().popitem(), a
 * dealloc inside the tracker's section. Measured on 3.13.5t: an RRCache store that evicts
 * took 120 us instead of 0.4 us with the GIL.
 * The test reads PyThreadState.critical_section (cpython/pystate.h: a tagged pointer to
 * the top-most section, its low bits 1 = inactive, 2 = two mutexes, as 3.13's
 * pycore_critical_section.h defines them) and PyCriticalSection._cs_mutex /
 * PyCriticalSection2._cs_mutex2 (cpython/critical_section.h), on 3.13t only. */
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
typedef struct {
    PyCriticalSection cs;
    int skipped;            /* the top-most section held the lock already */
} ml_section;

static inline int
ml_section_held_on_top(PyObject *op)
{
    uintptr_t tag = PyThreadState_GET()->critical_section;
    if (tag == 0 || (tag & (uintptr_t)1)) {
        return 0;   /* none, or the top-most is suspended */
    }
    PyCriticalSection *top = (PyCriticalSection *)(tag & ~(uintptr_t)3);
    if (top->_cs_mutex == &op->ob_mutex) {
        return 1;
    }
    return (tag & (uintptr_t)2) && ((PyCriticalSection2 *)top)->_cs_mutex2 == &op->ob_mutex;
}

static inline void
ml_section_begin(ml_section *s, PyObject *op)
{
    s->skipped = ml_section_held_on_top(op);
    if (!s->skipped) {
        PyCriticalSection_Begin(&s->cs, op);
    }
}

static inline void
ml_section_end(ml_section *s)
{
    if (!s->skipped) {
        PyCriticalSection_End(&s->cs);
    }
}

#define ML_BEGIN_CRITICAL_SECTION(op)                  \
    {                                                  \
        ml_section ml_section_;                        \
        ml_section_begin(&ml_section_, (PyObject *)(op));
#define ML_END_CRITICAL_SECTION()                      \
        ml_section_end(&ml_section_);                  \
    }
#elif defined(Py_GIL_DISABLED)
typedef PyCriticalSection ml_section;
static inline void ml_section_begin(ml_section *s, PyObject *op) { PyCriticalSection_Begin(s, op); }
static inline void ml_section_end(ml_section *s) { PyCriticalSection_End(s); }
#define ML_BEGIN_CRITICAL_SECTION(op) Py_BEGIN_CRITICAL_SECTION(op)
#define ML_END_CRITICAL_SECTION() Py_END_CRITICAL_SECTION()
#else
typedef struct { char unused; } ml_section;
static inline void ml_section_begin(ml_section *s, PyObject *op) { (void)s, (void)op; }
static inline void ml_section_end(ml_section *s) { (void)s; }
#define ML_BEGIN_CRITICAL_SECTION(op) {
#define ML_END_CRITICAL_SECTION() }
#endif

/* Defines `static ret name params`, which runs `call` in a critical section on `self`
 * (a per-object lock on the free-threaded build; nothing with the GIL). A section is
 * suspended while the thread waits for another lock — Python code run inside may take
 * one — so a callback is, as with the GIL, a point where other threads may have changed
 * the object: the re-checks the binding makes after callbacks cover both. */
#define ML_LOCKED(ret, name, params, call) ML_LOCKED_ON(ret, name, params, self, call)

/* The same, in a critical section on `lock` (an expression of the params: an object
 * that stands for state no single argument owns, such as the tracker's module). */
#define ML_LOCKED_ON(ret, name, params, lock, call)  \
    static ret name params                          \
    {                                               \
        ret ml_result_;                             \
        ML_BEGIN_CRITICAL_SECTION(lock);            \
        ml_result_ = (call);                        \
        ML_END_CRITICAL_SECTION();                  \
        return ml_result_;                          \
    }

/* ------------------------------------------------------------------------------------
 * The module's GIL slot: Py_mod_gil (3.13). Py_MOD_GIL_NOT_USED tells a free-threaded
 * build that importing the module keeps the GIL disabled (without it 3.13t enables the
 * GIL, with a RuntimeWarning); a build with the GIL ignores it. Before 3.13 there is no
 * such slot: ML_MOD_GIL_SLOT is an empty entry list there.
 */
#if PY_VERSION_HEX >= 0x030D0000
#define ML_MOD_GIL_SLOT {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#else
#define ML_MOD_GIL_SLOT
#endif

/* ------------------------------------------------------------------------------------
 * Counters shared by threads outside any object's lock: relaxed atomics on the
 * free-threaded build, plain fields with the GIL (no cost there)
 */
#ifdef Py_GIL_DISABLED
#include <stdatomic.h>
typedef _Atomic(Py_ssize_t) ml_count;
static inline void ml_count_add(ml_count *c, Py_ssize_t n) { atomic_fetch_add_explicit(c, n, memory_order_relaxed); }
static inline Py_ssize_t ml_count_get(const ml_count *c) { return atomic_load_explicit((ml_count *)c, memory_order_relaxed); }
static inline void ml_count_set(ml_count *c, Py_ssize_t n) { atomic_store_explicit(c, n, memory_order_relaxed); }
#else
typedef Py_ssize_t ml_count;
static inline void ml_count_add(ml_count *c, Py_ssize_t n) { *c += n; }
static inline Py_ssize_t ml_count_get(const ml_count *c) { return *c; }
static inline void ml_count_set(ml_count *c, Py_ssize_t n) { *c = n; }
#endif

/* ------------------------------------------------------------------------------------
 * A lock for state that no object owns (module state: the registry behind report()):
 * PyMutex from 3.13 (public; it parks, detaching the thread), nothing before (the GIL).
 */
#if PY_VERSION_HEX >= 0x030D0000
typedef PyMutex ml_mutex;
#define ml_mutex_lock(m) PyMutex_Lock(m)
#define ml_mutex_unlock(m) PyMutex_Unlock(m)
#else
typedef struct { char unused; } ml_mutex;
#define ml_mutex_lock(m) ((void)(m))
#define ml_mutex_unlock(m) ((void)(m))
#endif

#endif
