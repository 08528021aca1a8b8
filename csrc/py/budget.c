/* budget.c — memleash._core.Budget: one byte budget shared by several caches (the C type
 * under memleash.Budget; the memory follower, budget.py, is Python on top of it).
 *
 * `Budget(max_bytes, *, name=None)`; a cache made with `budget=b` is a member of b. At every
 * moment b.currbytes is the sum of its members' currbytes and at most b.maxbytes: a store
 * into a member that would pass b's limit in force evicts across the members first, by one
 * order (cache_ops.c: expired entries of timed members, then the victim accessed longest
 * ago on the budget's clock), and an entry larger than the limit alone is refused with
 * ValueError. The object holds:
 *   s          the core's ml_shared: the sum, maxbytes, the limit in force, the clock
 *   members    the member registry (shared.c): borrowed pointers, each member holding a
 *              strong reference to the budget — a budget lives while a member does, never
 *              the reverse
 *   counters   evictions made to make room for a store; pressure evictions (the limit in
 *              force was lowered: _ml_set_limit)
 *   check      the memory follower's hook, called by a store once the sum reaches
 *              check_at (budget.py sets both; one comparison per store otherwise)
 *
 * Note on re-entrancy: lowering the limit evicts (cacheobj_budget_shrink), which can run
 * Python code — members' timers, RRCache's choice, an overriding popitem, the evicted
 * keys' and values' __del__ — that may store into members, reconfigure them, or call
 * _ml_set_limit again; the shrink re-reads the members and the limit after each such call.
 * Everything else here reads counters and runs no Python code.
 *
 * Threads (free-threaded build): the sum, the limit and the clock are atomics (the core's
 * ML_SHARED_ATOMIC); the member array and its counts are guarded by the budget's critical
 * section (shared.c), and so are the memory follower's hook and its flag; the eviction
 * counters (counted under a member's lock) and check_at (read by every store) are
 * ml_count atomics.
 */
#include "py/cache.h"

#include <structmember.h>

#if defined(Py_GIL_DISABLED) && !defined(ML_SHARED_ATOMIC)
#error "the free-threaded build needs the core's shared budget built with ML_SHARED_ATOMIC (setup.py)"
#endif

/* Sets the limit in force (at most maxbytes) and evicts down to it. 0 or -1. Can re-enter. */
static int
set_limit(BudgetObject *self, size_t limit)
{
    ml_shared_set_limit(&self->s, limit);
    if (ml_shared_bytes(&self->s) <= ml_shared_limit(&self->s)) {
        return 0;
    }
    return cacheobj_budget_shrink(self);   /* can re-enter */
}

/* ------------------------------------------------------------------------------------
 * Life cycle
 */
static PyObject *
budget_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwds))
{
    ml_state *st = ml_state_of_type(type);
    if (st == NULL) {
        return NULL;
    }
    BudgetObject *self = (BudgetObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->st = st;
    ml_shared_init(&self->s, 0);   /* until __init__: nothing fits */
    ml_count_set(&self->check_at, PY_SSIZE_T_MAX);
    ml_reg_link(st, &self->reg, (PyObject *)self);
    return (PyObject *)self;
}

/* __init__(max_bytes, *, name=None). Called again, it sets a new max_bytes: a lower one
 * evicts down to it first (the sum never passes the maxbytes in force), and the limit in
 * force becomes the new max_bytes (a memory follower lowers it again at its next check). */
static int
budget_init(BudgetObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_bytes", "name", NULL};
    PyObject *max_bytes, *name = Py_None;
    size_t maxbytes;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$O:Budget", kwlist, &max_bytes, &name)) {
        return -1;
    }
    if (name != Py_None && !PyUnicode_Check(name)) {
        return ml_reg_set_name(&self->reg, name);   /* the TypeError, before any change */
    }
    if (cacheobj_to_maxbytes(max_bytes, "max_bytes must be an int", &maxbytes) < 0) {
        return -1;
    }
    Py_INCREF(name);   /* the shrink below can run code that drops the caller's */
    int rc = 0;
    if (maxbytes < ml_shared_bytes(&self->s)) {
        size_t was = ml_shared_limit(&self->s);
        rc = set_limit(self, maxbytes);   /* can re-enter */
        if (rc < 0) {
            ml_shared_set_limit(&self->s, was);
        }
    }
    if (rc == 0 && maxbytes < ml_shared_bytes(&self->s)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Budget.__init__: its members grew back past the new max_bytes meanwhile");
        rc = -1;
    }
    if (rc == 0) {
        self->s.maxbytes = maxbytes;
        ml_shared_set_limit(&self->s, maxbytes);
        rc = ml_reg_set_name(&self->reg, name);
    }
    Py_DECREF(name);
    return rc;
}

static int
budget_traverse(BudgetObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->check);
    Py_VISIT(self->dict);
    return 0;
}

static int
budget_clear(BudgetObject *self)
{
    Py_CLEAR(self->check);
    Py_CLEAR(self->dict);
    return 0;
}

static void
budget_dealloc(BudgetObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    ml_reg_unlink(self->st, &self->reg);   /* first: report() must not find it dying */
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    (void)budget_clear(self);
    PyMem_Free(self->members);   /* empty: every member holds the budget alive */
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* ------------------------------------------------------------------------------------
 * Properties and methods
 */
static PyObject *
budget_get_maxbytes(BudgetObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(self->s.maxbytes);
}

static PyObject *
budget_get_limit(BudgetObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(ml_shared_limit(&self->s));
}

static PyObject *
budget_get_currbytes(BudgetObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(ml_shared_bytes(&self->s));
}

static PyObject *
budget_get_evictions(BudgetObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(ml_count_get(&self->evictions));
}

static PyObject *
budget_get_pressure_evictions(BudgetObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(ml_count_get(&self->pressure_evictions));
}

/* The live members, as a list (new references), in no particular order. */
static PyObject *
budget_get_members(BudgetObject *self, void *Py_UNUSED(closure))
{
    CacheObject **members;
    Py_ssize_t n = shared_snapshot(self, &members);
    if (n < 0) {
        return NULL;
    }
    PyObject *list = PyList_New(n);
    if (list != NULL) {
        for (Py_ssize_t i = 0; i < n; i++) {
            PyList_SET_ITEM(list, i, (PyObject *)members[i]);   /* the reference moves */
        }
        PyMem_Free(members);
        return list;
    }
    shared_release(members, n);   /* can re-enter */
    return NULL;
}

static PyObject *
budget_get_name(BudgetObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->reg.name ? self->reg.name : Py_None);
}

static PyObject *
budget_sizeof(BudgetObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSize_t((size_t)Py_TYPE(self)->tp_basicsize +
                             (size_t)self->cap * sizeof(ml_member));
}

/* _ml_set_limit(n): the limit in force becomes min(n, maxbytes); the members are evicted
 * down to it (pressure evictions) before it returns. */
static PyObject *
budget_set_limit(BudgetObject *self, PyObject *arg)
{
    size_t limit;
    if (cacheobj_to_maxbytes(arg, "limit must be an int", &limit) < 0 || set_limit(self, limit) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* _ml_follow(hook, check_at): a store calls hook() once the sum reaches check_at (None,
 * PY_SSIZE_T_MAX: never; the sum never reaches it). The follower moves check_at on at
 * every check it makes. In the budget's lock (budget_follow_locked). */
static PyObject *
budget_follow(BudgetObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    size_t at;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_ml_follow(hook, check_at) takes 2 arguments");
        return NULL;
    }
    if (args[0] != Py_None && !PyCallable_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "hook must be callable or None");
        return NULL;
    }
    if (args[1] == Py_None) {
        at = SIZE_MAX;
    }
    else if (cacheobj_to_maxbytes(args[1], "check_at must be an int or None", &at) < 0) {
        return NULL;
    }
    ml_count_set(&self->check_at, args[0] == Py_None || at > (size_t)PY_SSIZE_T_MAX
                                      ? PY_SSIZE_T_MAX : (Py_ssize_t)at);
    Py_XSETREF(self->check, args[0] == Py_None ? NULL : Py_NewRef(args[0]));
    Py_RETURN_NONE;
}
ML_LOCKED(PyObject *, budget_follow_locked,
          (BudgetObject *self, PyObject *const *args, Py_ssize_t nargs),
          budget_follow(self, args, nargs))

/* _ml_stats(): what memleash.report() shows of this budget (a dict of plain values). */
static PyObject *
budget_stats(BudgetObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t nmembers;
    ML_BEGIN_CRITICAL_SECTION(self);
    nmembers = self->nmembers;
    ML_END_CRITICAL_SECTION();
    PyObject *dict = Py_BuildValue(
        "{s:n,s:n,s:n,s:n,s:K,s:K,s:n}",
        "maxbytes", (Py_ssize_t)self->s.maxbytes,
        "effective_maxbytes", (Py_ssize_t)ml_shared_limit(&self->s),
        "currbytes", (Py_ssize_t)ml_shared_bytes(&self->s),
        "members", nmembers,
        "evictions", (unsigned long long)ml_count_get(&self->evictions),
        "pressure_evictions", (unsigned long long)ml_count_get(&self->pressure_evictions),
        "own_bytes", (Py_ssize_t)((size_t)Py_TYPE(self)->tp_basicsize +
                                  (size_t)self->cap * sizeof(ml_member)));
    if (dict != NULL && ml_reg_describe(&self->reg, dict) < 0) {
        Py_CLEAR(dict);
    }
    return dict;
}

static PyObject *
budget_repr(BudgetObject *self)
{
    PyObject *name = PyType_GetName(Py_TYPE(self));
    if (name == NULL) {
        return NULL;
    }
    Py_ssize_t nmembers;
    ML_BEGIN_CRITICAL_SECTION(self);
    nmembers = self->nmembers;
    ML_END_CRITICAL_SECTION();
    PyObject *r = PyUnicode_FromFormat("%U(max_bytes=%zu, effective_maxbytes=%zu, currbytes=%zu, "
                                       "members=%zd)", name, self->s.maxbytes,
                                       ml_shared_limit(&self->s), ml_shared_bytes(&self->s),
                                       nmembers);
    Py_DECREF(name);
    return r;
}

/* ------------------------------------------------------------------------------------
 * Type spec
 */
PyDoc_STRVAR(budget_doc,
"Budget(max_bytes, *, name=None)\n--\n\n"
"One byte budget shared by several caches; use memleash.Budget.");

static PyMethodDef budget_methods[] = {
    {"__sizeof__", (PyCFunction)budget_sizeof, METH_NOARGS,
     "__sizeof__($self, /)\n--\n\nBytes the budget itself owns (not its members)."},
    {"_ml_set_limit", (PyCFunction)budget_set_limit, METH_O,
     "_ml_set_limit($self, limit, /)\n--\n\n"
     "Set the limit in force to min(limit, maxbytes), evicting down to it."},
    {"_ml_follow", (PyCFunction)(void (*)(void))budget_follow_locked, METH_FASTCALL,
     "_ml_follow($self, hook, check_at, /)\n--\n\n"
     "A store calls hook() once currbytes reaches check_at (hook None: never)."},
    {"_ml_stats", (PyCFunction)budget_stats, METH_NOARGS,
     "What memleash.report() shows of this budget (a dict)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef budget_getset[] = {
    {"maxbytes", (getter)budget_get_maxbytes, NULL, "The budget's max_bytes.", NULL},
    {"effective_maxbytes", (getter)budget_get_limit, NULL,
     "The limit in force: max_bytes, or less while memory pressure lowered it.", NULL},
    {"currbytes", (getter)budget_get_currbytes, NULL,
     "The accounted bytes of every member's items: the sum of their currbytes.", NULL},
    {"evictions", (getter)budget_get_evictions, NULL,
     "Items the budget evicted from its members to make room for a store.", NULL},
    {"pressure_evictions", (getter)budget_get_pressure_evictions, NULL,
     "Items the budget evicted because its limit in force was lowered.", NULL},
    {"members", (getter)budget_get_members, NULL, "The caches that share the budget (a list).", NULL},
    {"name", (getter)budget_get_name, NULL, "name= as given, or None.", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef budget_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(BudgetObject, weakreflist), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(BudgetObject, dict), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot budget_slots[] = {
    {Py_tp_doc, (void *)budget_doc},
    {Py_tp_new, budget_new},
    {Py_tp_init, budget_init},
    {Py_tp_dealloc, budget_dealloc},
    {Py_tp_traverse, budget_traverse},
    {Py_tp_clear, budget_clear},
    {Py_tp_repr, budget_repr},
    {Py_tp_methods, budget_methods},
    {Py_tp_getset, budget_getset},
    {Py_tp_members, budget_members},
    {0, NULL},
};

static PyType_Spec budget_spec = {
    .name = "memleash._core.Budget",
    .basicsize = sizeof(BudgetObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = budget_slots,
};

int
ml_budget_module_exec(PyObject *module, ml_state *st)
{
    st->BudgetType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &budget_spec, NULL);
    if (st->BudgetType == NULL || PyModule_AddType(module, st->BudgetType) < 0) {
        return -1;
    }
    return 0;
}
