/* module.c — memleash._core: multi-phase init and module state. The top of the binding:
 * it calls every type file's exec function, and no file calls it.
 *
 * The state holds the heap types and interned names; module_traverse and module_clear
 * list the same fields in the same order, and module_free calls module_clear.
 */
#include "py/module.h"
#include "py/emitter.h"

static PyMethodDef module_methods[] = {
    {"_live", ml_reg_live, METH_NOARGS,
     "_live(): every live memleash object (what memleash.report() describes), newest first."},
    {"monotonic_coarse", ml_monotonic_coarse, METH_NOARGS,
     "monotonic_coarse($module, /)\n--\n\n"
     "The time in seconds (a float) of a monotonic clock that the kernel advances at each tick.\n\n"
     "Linux's CLOCK_MONOTONIC_COARSE: time.monotonic()'s clock as of the last tick, read\n"
     "in a few nanoseconds where time.monotonic() reads the hardware counter. It moves in\n"
     "steps of the tick (time.clock_getres(6): 4 ms at the usual CONFIG_HZ=250) and lags\n"
     "time.monotonic() by up to about a tick, more on a loaded machine. Where the system\n"
     "has no coarse clock it reads CLOCK_MONOTONIC, as time.monotonic() does.\n\n"
     "As the timer of a TTLCache or TLRUCache it is read without a call (as time.monotonic\n"
     "is); an item then lives its ttl give or take the clock's lag."},
#define KEYFN(name, doc) \
    {#name, (PyCFunction)(void (*)(void))ml_##name, METH_FASTCALL | METH_KEYWORDS, doc},
    KEYFN(hashkey, "hashkey($module, /, *args, **kwargs)\n--\n\n"
                   "Return a cache key for the specified hashable arguments.")
    KEYFN(typedkey, "typedkey($module, /, *args, **kwargs)\n--\n\n"
                    "Return a typed cache key for the specified hashable arguments.")
    KEYFN(methodkey, "methodkey($module, self, /, *args, **kwargs)\n--\n\n"
                     "Return a cache key for use with cached methods (self left out).")
    KEYFN(typedmethodkey, "typedmethodkey($module, self, /, *args, **kwargs)\n--\n\n"
                          "Return a typed cache key for use with cached methods (self left out).")
#undef KEYFN
    {NULL, NULL, 0, NULL},
};

/* The package directory (dirname of this module's __file__, separator included), or NULL
 * with no error when unknown. */
static PyObject *
package_dir(PyObject *module)
{
    PyObject *file = PyModule_GetFilenameObject(module);
    if (file == NULL) {
        PyErr_Clear();   /* no __file__ (an embedded build): sites skip no frame */
        return NULL;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(file), cut = -1;
    for (Py_ssize_t i = len; i-- > 0;) {
        Py_UCS4 ch = PyUnicode_READ_CHAR(file, i);
        if (ch == '/' || ch == '\\') {
            cut = i + 1;
            break;
        }
    }
    PyObject *dir = cut > 0 ? PyUnicode_Substring(file, 0, cut) : NULL;
    Py_DECREF(file);
    return dir;
}

static int
module_exec(PyObject *module)
{
    ml_state *st = PyModule_GetState(module);
    st->live.prev = st->live.next = &st->live;
    st->pkg_dir = package_dir(module);
    if (st->pkg_dir == NULL && PyErr_Occurred()) {
        return -1;
    }
#define INTERN(field, text)                                  \
    if ((st->field = PyUnicode_InternFromString(text)) == NULL) \
        return -1;
    INTERN(str_getitem, "__getitem__");
    INTERN(str_setitem, "__setitem__");
    INTERN(str_delitem, "__delitem__");
    INTERN(str_contains, "__contains__");
    INTERN(str_missing, "__missing__");
    INTERN(str_popitem, "popitem");
    INTERN(str_getsizeof, "getsizeof");
    INTERN(str_policy, "_ml_policy");
    INTERN(str_expire, "expire");
    INTERN(str_ml_expire, "_ml_expire");
    INTERN(str_error, "error");
    INTERN(str_name, "name");
    INTERN(str_clear, "clear");
    INTERN(str_emit, "emit");
    INTERN(str_new_listener, "new_listener");
    INTERN(str_ml_add, "_ml_add");
    INTERN(str_emit_run, "_emit_run");
    INTERN(str_call_handlers, "_call_handlers");
    INTERN(str_handle_error, "_emit_handle_potential_error");
    INTERN(str_add_hook, "_add_event_handler");
    INTERN(str_remove_hook, "_remove_listener");
    INTERN(str_enter, "__enter__");
    INTERN(str_exit, "__exit__");
#undef INTERN
    PyObject *time_mod = PyImport_ImportModule("time");
    if (time_mod == NULL) {
        return -1;
    }
    st->time_monotonic = PyObject_GetAttrString(time_mod, "monotonic");
    st->time_time = st->time_monotonic ? PyObject_GetAttrString(time_mod, "time") : NULL;
    Py_DECREF(time_mod);
    if (st->time_time == NULL) {
        return -1;
    }
    st->sys_getsizeof = Py_XNewRef(PySys_GetObject("getsizeof"));   /* borrowed: made strong */
    PyObject *info = PyLong_GetInfo();
    if (st->sys_getsizeof == NULL || info == NULL) {
        Py_XDECREF(info);
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ImportError, "memleash needs sys.getsizeof");
        }
        return -1;
    }
    st->digit_bits = PyLong_AsUnsignedLong(PyStructSequence_GetItem(info, 0));
    st->digit_size = PyLong_AsSize_t(PyStructSequence_GetItem(info, 1));
    Py_DECREF(info);
    if (PyErr_Occurred()) {
        return -1;
    }
#ifdef NDEBUG
    int checked = 0;
#else
    int checked = 1;   /* every mutation runs the O(n) consistency validators */
#endif
    if (PyModule_AddIntConstant(module, "_CHECKED", checked) < 0) {
        return -1;
    }
    if (ml_budget_module_exec(module, st) < 0 || ml_cache_module_exec(module, st) < 0 ||
        ml_call_module_exec(module, st) < 0) {
        return -1;
    }
    if (ml_emitter_module_exec(module, st) < 0) {
        return -1;
    }
    return ml_tracker_module_exec(module, st);
}

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    ml_state *st = PyModule_GetState(module);
    Py_VISIT(st->pkg_dir);
    Py_VISIT(st->sys_getsizeof);
    Py_VISIT(st->time_monotonic);
    Py_VISIT(st->time_time);
    Py_VISIT(st->CacheType);
    Py_VISIT(st->CacheIterType);
    Py_VISIT(st->RRKeysType);
    Py_VISIT(st->TimerType);
    Py_VISIT(st->BudgetType);
    Py_VISIT(st->str_getitem);
    Py_VISIT(st->str_setitem);
    Py_VISIT(st->str_delitem);
    Py_VISIT(st->str_contains);
    Py_VISIT(st->str_missing);
    Py_VISIT(st->str_popitem);
    Py_VISIT(st->str_getsizeof);
    Py_VISIT(st->str_policy);
    Py_VISIT(st->str_expire);
    Py_VISIT(st->str_ml_expire);
    Py_VISIT(st->EmitterType);
    Py_VISIT(st->SlotRefType);
    Py_VISIT(st->ReaperType);
    Py_VISIT(st->PyeeException);
    Py_VISIT(st->PyeeError);
    Py_VISIT(st->ListenerLeakWarning);
    Py_VISIT(st->partial);
    Py_VISIT(st->allocate_lock);
    Py_VISIT(st->str_error);
    Py_VISIT(st->str_name);
    Py_VISIT(st->str_clear);
    Py_VISIT(st->str_emit);
    Py_VISIT(st->CallType);
    Py_VISIT(st->kwd_mark);
    Py_VISIT(st->KeywordMark);
    Py_VISIT(st->str_new_listener);
    Py_VISIT(st->str_ml_add);
    Py_VISIT(st->str_remove_hook);
    Py_VISIT(st->str_enter);
    Py_VISIT(st->str_exit);
    Py_VISIT(st->str_add_hook);
    Py_VISIT(st->str_handle_error);
    Py_VISIT(st->str_call_handlers);
    Py_VISIT(st->str_emit_run);
    return ml_tracker_traverse(st, visit, arg);
}

static int
module_clear(PyObject *module)
{
    ml_state *st = PyModule_GetState(module);
    Py_CLEAR(st->pkg_dir);
    Py_CLEAR(st->sys_getsizeof);
    Py_CLEAR(st->time_monotonic);
    Py_CLEAR(st->time_time);
    Py_CLEAR(st->CacheType);
    Py_CLEAR(st->CacheIterType);
    Py_CLEAR(st->RRKeysType);
    Py_CLEAR(st->TimerType);
    Py_CLEAR(st->BudgetType);
    Py_CLEAR(st->str_getitem);
    Py_CLEAR(st->str_setitem);
    Py_CLEAR(st->str_delitem);
    Py_CLEAR(st->str_contains);
    Py_CLEAR(st->str_missing);
    Py_CLEAR(st->str_popitem);
    Py_CLEAR(st->str_getsizeof);
    Py_CLEAR(st->str_policy);
    Py_CLEAR(st->str_expire);
    Py_CLEAR(st->str_ml_expire);
    Py_CLEAR(st->EmitterType);
    Py_CLEAR(st->SlotRefType);
    Py_CLEAR(st->ReaperType);
    Py_CLEAR(st->PyeeException);
    Py_CLEAR(st->PyeeError);
    Py_CLEAR(st->ListenerLeakWarning);
    Py_CLEAR(st->partial);
    Py_CLEAR(st->allocate_lock);
    Py_CLEAR(st->str_error);
    Py_CLEAR(st->str_name);
    Py_CLEAR(st->str_clear);
    Py_CLEAR(st->str_emit);
    Py_CLEAR(st->CallType);
    Py_CLEAR(st->kwd_mark);
    Py_CLEAR(st->KeywordMark);
    Py_CLEAR(st->str_new_listener);
    Py_CLEAR(st->str_ml_add);
    Py_CLEAR(st->str_remove_hook);
    Py_CLEAR(st->str_enter);
    Py_CLEAR(st->str_exit);
    Py_CLEAR(st->str_add_hook);
    Py_CLEAR(st->str_handle_error);
    Py_CLEAR(st->str_call_handlers);
    Py_CLEAR(st->str_emit_run);
    ml_tracker_clear(st);
    return 0;
}

static void
module_free(void *module)
{
    (void)module_clear((PyObject *)module);
    ml_tracker_free(PyModule_GetState((PyObject *)module));
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    ML_MOD_GIL_SLOT   /* every object's operations run in its critical section (compat.h) */
    {0, NULL},
};

PyModuleDef ml_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "memleash._core",
    .m_doc = "memleash's C core: the cache engine and its Python types.",
    .m_size = sizeof(ml_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&ml_module_def);
}
