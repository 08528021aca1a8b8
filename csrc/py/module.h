/* module.h — what the binding's files share: module state and the PyMem allocator. */
#ifndef ML_PY_MODULE_H
#define ML_PY_MODULE_H

#include "py/compat.h"

#include "core/alloc.h"

/* A live memleash object's node in the registry behind memleash.report(): a link in its
 * module's ring of live objects, holding no reference to the object (its dealloc unlinks
 * it before anything else), plus its name= and where it was created. */
typedef struct ml_reg {
    struct ml_reg *prev, *next;     /* NULL while not linked */
    PyObject *owner;                /* borrowed: the object the node is embedded in */
    PyObject *name;                 /* name= as given (a str), or NULL */
    PyObject *site_code;            /* the creating frame's code object, or NULL */
    int site_lasti;                 /* its instruction offset, for the line number */
#ifdef Py_GIL_DISABLED
    PyObject *wref;                 /* a weak reference to owner: _live() reads it, so that an
                                       owner another thread is deallocating is skipped */
#endif
} ml_reg;

/* Per-module state (multi-phase init: no process-wide mutable globals). */
typedef struct {
    ml_reg live;                    /* the ring's head; live.owner is NULL */
    Py_ssize_t nlive;
    ml_mutex reg_lock;              /* guards the ring and nlive (threads create and free
                                       objects at once on the free-threaded build) */
    PyObject *pkg_dir;              /* the memleash package's directory + separator: creation
                                       sites skip its frames. NULL if unknown */
    PyTypeObject *CacheType;        /* memleash._core.Cache */
    PyTypeObject *CacheIterType;
    PyTypeObject *RRKeysType;       /* the key sequence an RRCache hands to choice() */
    PyTypeObject *TimerType;        /* memleash._core.Timer: a timed cache's frozen-time timer */
    PyTypeObject *BudgetType;       /* memleash._core.Budget: a byte budget shared by caches */
    PyTypeObject *EmitterType;      /* memleash._core.EventEmitter */
    PyTypeObject *SlotRefType;      /* weakref.ref subtype that knows its listener slot */
    PyTypeObject *ReaperType;       /* an emitter's weakref callback */
    PyTypeObject *CallType;         /* memleash._core._CachedFunction (call.c) */
    PyObject *kwd_mark;             /* functools' key: between positional and keyword args */
    PyObject *KeywordMark;          /* memleash.keys' marker (a class, as cachetools') */
    PyObject *str_clear;
    PyObject *PyeeException, *PyeeError, *ListenerLeakWarning;
    PyObject *partial;              /* functools.partial (the emitter's decorators) */
    PyObject *allocate_lock;        /* _thread.allocate_lock (EventEmitter._lock) */
    PyObject *str_error, *str_new_listener, *str_ml_add, *str_name, *str_emit;
    PyObject *str_emit_run, *str_call_handlers, *str_handle_error, *str_add_hook, *str_remove_hook;
    /* interned names, looked up on types to find a subclass's overrides */
    PyObject *str_getitem, *str_setitem, *str_delitem, *str_contains, *str_missing;
    PyObject *str_popitem, *str_getsizeof, *str_policy, *str_expire, *str_ml_expire;
    PyObject *str_enter, *str_exit;   /* a decorator's lock=, entered from C */
    struct ml_tracker *tr;          /* the resource tracker (tracker.c), PyMem-allocated */
    PyObject *sys_getsizeof;        /* sys.getsizeof: the default byte sizing of other types */
    PyObject *time_monotonic;       /* time.monotonic and time.time as imported: a Timer around */
    PyObject *time_time;            /* one of them reads the clock itself (compat.h) */
    unsigned long digit_bits;       /* sys.int_info.bits_per_digit */
    size_t digit_size;              /* sys.int_info.sizeof_digit */
} ml_state;

extern PyModuleDef ml_module_def;

/* @return the module state of the module that defined type (or a base of it). */
static inline ml_state *
ml_state_of_type(PyTypeObject *type)
{
    PyObject *mod = PyType_GetModuleByDef(type, &ml_module_def);   /* borrowed */
    return mod ? (ml_state *)PyModule_GetState(mod) : NULL;
}

/* Links r (embedded in owner) into st's registry and records the creation site: the
 * innermost Python frame outside the memleash package. Cannot fail. */
void ml_reg_link(ml_state *st, ml_reg *r, PyObject *owner);

/* Unlinks r and releases its name and site; a no-op when not linked. Call it first in
 * dealloc and in tp_clear, before anything that can run Python code: report() must never
 * see a dying or half-cleared object. */
void ml_reg_unlink(ml_state *st, ml_reg *r);

/* _live(): a list of every live memleash object (strong references), newest first. */
PyObject *ml_reg_live(PyObject *module, PyObject *ignored);

/* Sets r's name from a name= argument: a str, or None for the creation site. 0 or -1
 * (TypeError). */
int ml_reg_set_name(ml_reg *r, PyObject *name);

/* Adds "name" (str or None) and "site" ((filename, lineno, qualname) or None) to dict.
 * 0 or -1. */
int ml_reg_describe(const ml_reg *r, PyObject *dict);

/* Sets type.__slots__ = ("_ml_referents",): how pympler.asizeof finds what an instance
 * holds (it reads the attributes named in its classes' __slots__). The type must define
 * a _ml_referents getter; the class attribute creates no slot. 0 or -1. */
int ml_declare_referents(PyTypeObject *type);

/* A method a subclass may override, and the bit that says it does. */
typedef struct {
    PyObject *name;
    unsigned bit;
} ml_hook;

/* @return the bits of the hooks that type resolves to something else than base does (a
 * subclass override). A plain MRO walk: no Python code runs. */
unsigned ml_overrides(PyTypeObject *type, PyTypeObject *base, const ml_hook *hooks, size_t n);

/* PyMem_* behind the core's ml_alloc: tracemalloc and memray see every byte. */
extern const ml_alloc ml_alloc_pymem;

/* Adds the cache types to module (called from module exec). @return 0 or -1. */
int ml_cache_module_exec(PyObject *module, ml_state *st);
/* memleash.monotonic_coarse(), a module function (METH_NOARGS; timed.c). */
PyObject *ml_monotonic_coarse(PyObject *module, PyObject *ignored);

/* Adds the Budget type (budget.c). @return 0 or -1. */
int ml_budget_module_exec(PyObject *module, ml_state *st);

/* The resource tracker (tracker.c): its functions and types, its GC references, and its
 * teardown (clear drops every record; free releases the tracker itself). */
int ml_tracker_module_exec(PyObject *module, ml_state *st);
int ml_tracker_traverse(ml_state *st, visitproc visit, void *arg);
void ml_tracker_clear(ml_state *st);
void ml_tracker_free(ml_state *st);

/* Adds the memoized-function type (call.c). @return 0 or -1. */
int ml_call_module_exec(PyObject *module, ml_state *st);

/* memleash.keys' functions (call.c): module functions, METH_FASTCALL | METH_KEYWORDS. */
PyObject *ml_hashkey(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *ml_typedkey(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *ml_methodkey(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *ml_typedmethodkey(PyObject *m, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames);

#endif
