/* cache.c — memleash._core.Cache: the C type under memleash.Cache, LRUCache, ...
 *
 * One C type carries every cache class; the eviction policy is chosen when an instance
 * is created, from the class attribute `_ml_policy` that the Python layer sets
 * (memleash.Cache: insertion order, memleash.LRUCache: recency). The Python layer
 * subclasses this type together with collections.abc.MutableMapping, which supplies
 * the mixins cachetools also inherits (keys/values/items views, update, ==).
 *
 * Behaviour is cachetools 8.0.2's (requirements/pins.txt), method by method:
 *   c[k]        hit: refresh recency (LRU); miss: self.__missing__(k) (KeyError(k))
 *   c[k] = v    getsizeof(v) > maxsize -> ValueError('value too large'); then
 *               `while currsize + diff > maxsize: self.popitem()`; then store
 *   popitem()   victim per policy; empty: KeyError('<Name> is empty') from None for LRU,
 *               a bare KeyError from None for Cache (MutableMapping.popitem)
 *   get/pop/setdefault go through `key in self`, `self[key]`, `del self[key]`
 * plus memleash's byte budget (max_bytes / sizeof / currbytes), checked before the
 * entry is stored, together with maxsize.
 *
 * Subclass hooks. When an instance is created, tp_new compares the class's __getitem__,
 * __setitem__, __delitem__, __contains__, __missing__, popitem and getsizeof with this
 * type's own; each override sets a bit in
 * `hooks`, and only then do the internal paths call the Python-level method (as
 * cachetools calls `self.<name>`). A class without overrides runs the C paths alone.
 *
 * The type is spread over files by concern (cache.h lists what they share, and the order
 * in which they call each other):
 *   cache.c        this note; the type spec, life cycle, properties, statistics and GC
 *   cache_state.c  configuration (limits validated, then a new engine put in place at
 *                  once), repr and pickling
 *   cache_iter.c   the key iterator
 *   cache_ops.c    look-ups, stores and eviction, the mapping methods
 *   timed.c        TTL / TLRU: time, deadlines, expiry
 *   cache_entry.c  what an entry counts (units, bytes), reading every entry (snapshots,
 *                  RRCache's key sequence), releasing entries
 *   shared.c       the member registry of a shared byte budget (memleash.Budget, whose
 *                  type is budget.c): a cache with budget= is a member of it
 *
 * Note on re-entrancy
 * -------------------
 * These calls can run arbitrary Python code, which may mutate or clear this cache:
 *   - PyObject_Hash(key) and the equality callback (key.__eq__) during a look-up;
 *   - getsizeof(value) and sizeof(key, value) while an assignment sizes its entry;
 *   - the overridden hooks above, e.g. self.popitem() during eviction;
 *   - every Py_DECREF of a key or value (its __del__, or a weakref callback);
 *   - under a shared budget, a store's eviction from the other members: their timers
 *     (expired entries go first), RRCache's choice, an overriding popitem.
 * How the code stays consistent:
 *   - the engine is never left half-mutated across such a call; ml_table_find restarts
 *     its probe when the table's version changed during __eq__ (as dictobject.c does);
 *   - a path that holds an entry id across a call re-finds the key afterwards (cacheobj_store()
 *     restarts after every self.popitem() and after releasing evicted entries), and an
 *     assignment re-sizes its entry if __init__/__setstate__ reconfigured the cache
 *     meanwhile (config_gen), or if the entry will hold another key object than the one
 *     it was sized with (an equal key already held stays, as in dict; sizeof sees it);
 *   - references the engine gives back (evicted, replaced, removed, cleared) are
 *     released only once every invariant holds again: evictions collect them in a
 *     `deferred` buffer, clear() moves the whole table out before releasing anything;
 *   - keys are held by a new reference while their __eq__ runs.
 * Lines that can re-enter carry the comment "can re-enter".
 */
#include "py/cache.h"

#include <math.h>
#include <structmember.h>

static PyObject *
cache_missing_method(CacheObject *Py_UNUSED(self), PyObject *key)
{
    cacheobj_key_error(key);
    return NULL;
}

static PyObject *
cache_getsizeof(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(value))
{
    return PyLong_FromLong(1);
}

static PyObject *
cache_sizeof(CacheObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSize_t((size_t)Py_TYPE(self)->tp_basicsize + ml_cache_sizeof(&self->c));
}

/* _ml_stats(): what memleash.report() shows of this cache, read without side effects
 * (nothing expires): a dict of plain values. Can re-enter (the default byte sizing calls
 * sys.getsizeof on every key and value when the cache does not account as it goes; if
 * that raises, currbytes is None). */

static PyObject *
cache_stats(CacheObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *currbytes = NULL, *currsize = NULL, *maxbytes = NULL, *dict = NULL;
    PyObject *maxsize = NULL, *budget = NULL;
    currbytes = cache_get_currbytes(self, NULL);   /* can re-enter */
    if (currbytes == NULL) {
        if (PyErr_ExceptionMatches(PyExc_MemoryError)) {
            goto done;
        }
        /* a key or value whose __sizeof__ raises: the report goes on, without this figure */
        PyErr_Clear();
        currbytes = Py_NewRef(Py_None);
    }
    currsize = cacheobj_units_held(self);
    maxbytes = currsize ? cache_get_maxbytes(self, NULL) : NULL;
    if (maxbytes == NULL) {
        goto done;
    }
    /* held: the dict's allocation can collect, and a finalizer calling __init__ again
     * would free the fields read below (every count is read before it, as one state) */
    maxsize = Py_NewRef(self->maxsize);
    budget = Py_NewRef(self->budget ? (PyObject *)self->budget : Py_None);
    dict = Py_BuildValue(
        "{s:n,s:O,s:O,s:O,s:O,s:n,s:K,s:K,s:K,s:K,s:O,s:O}",
        "entries", (Py_ssize_t)self->c.t.used,
        "currsize", currsize,
        "maxsize", maxsize,
        "currbytes", currbytes,
        "maxbytes", maxbytes,
        "own_bytes", (Py_ssize_t)((size_t)Py_TYPE(self)->tp_basicsize + ml_cache_sizeof(&self->c)),
        "hits", (unsigned long long)self->hits,
        "misses", (unsigned long long)self->misses,
        "evictions", (unsigned long long)self->evictions,
        "expirations", (unsigned long long)self->expirations,
        "timed", self->timed != TIMED_NONE ? Py_True : Py_False,
        "budget", budget);
    if (dict == NULL || ml_reg_describe(&self->reg, dict) < 0) {
        Py_CLEAR(dict);
    }
done:
    Py_XDECREF(currbytes);
    Py_XDECREF(currsize);
    Py_XDECREF(maxbytes);
    Py_XDECREF(maxsize);
    Py_XDECREF(budget);   /* can re-enter (the last reference, once __init__ dropped it) */
    return dict;
}

/* ------------------------------------------------------------------------------------
 * Properties
 */
static PyObject *
cache_get_maxsize(CacheObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->maxsize);
}


/* ------------------------------------------------------------------------------------
 * Construction and configuration
 */
static void
detect_hooks(CacheObject *self, ml_state *st)
{
    PyTypeObject *type = Py_TYPE(self), *base = st->CacheType;
    const ml_hook names[] = {
        {st->str_getitem, HOOK_GETITEM}, {st->str_setitem, HOOK_SETITEM},
        {st->str_delitem, HOOK_DELITEM}, {st->str_contains, HOOK_CONTAINS},
        {st->str_missing, HOOK_MISSING}, {st->str_popitem, HOOK_POPITEM},
        {st->str_getsizeof, HOOK_GETSIZEOF},
    };
    self->hooks = ml_overrides(type, base, names, sizeof(names) / sizeof(names[0]));
    /* timed classes publish the C _ml_expire as `expire`; anything else there overrides it
     * (a class without `expire`, untimed, overrides nothing) */
    PyObject *expire = ml_type_lookup_ref(type, st->str_expire);
    PyObject *own = ml_type_lookup_ref(base, st->str_ml_expire);
    if (expire != NULL && expire != own) {
        self->hooks |= HOOK_EXPIRE;
    }
    Py_XDECREF(expire);
    Py_XDECREF(own);
}

static PyObject *
cache_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwds))
{
    ml_state *st = ml_state_of_type(type);
    if (st == NULL) {
        return NULL;
    }
    ml_policy kind = ML_POLICY_INSERTION;
    PyObject *policy = ml_type_lookup_ref(type, st->str_policy);
    if (policy != NULL) {
        long p = PyLong_Check(policy) ? PyLong_AsLong(policy) : -1;
        Py_DECREF(policy);
        if (p < 0 || p >= ML_POLICY_COUNT) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "_ml_policy must be one of memleash._core.POLICY_*");
            return NULL;
        }
        kind = (ml_policy)p;
    }
    PyObject *dict;
    if (ml_instance_dict_new(&dict) < 0) {
        return NULL;
    }
    CacheObject *self = (CacheObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_XDECREF(dict);
        return NULL;
    }
    self->dict = dict;
    self->st = st;
    self->member_slot = -1;
    ml_cache_init(&self->c, &ml_alloc_pymem, kind, 0, 0, ml_limit_int(0), SIZE_MAX);
    self->maxsize = Py_NewRef(Py_None);   /* until __init__ / __setstate__ */
    detect_hooks(self, st);
    ml_reg_link(st, &self->reg, (PyObject *)self);
    return (PyObject *)self;
}

static int
cache_init(CacheObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"maxsize", "getsizeof", "max_bytes", "sizeof", "name", "budget", NULL};
    PyObject *maxsize, *getsizeof = Py_None, *max_bytes = Py_None, *sizeof_fn = Py_None;
    PyObject *name = Py_None, *budget = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O$OOOO:Cache", kwlist, &maxsize, &getsizeof,
                                     &max_bytes, &sizeof_fn, &name, &budget)) {
        return -1;
    }
    if (name != Py_None && !PyUnicode_Check(name)) {
        return ml_reg_set_name(&self->reg, name);   /* the TypeError, before any change */
    }
    if (getsizeof != Py_None && !PyCallable_Check(getsizeof)) {
        PyErr_Format(PyExc_TypeError, "getsizeof must be callable or None, not %.200s",
                     Py_TYPE(getsizeof)->tp_name);
        return -1;
    }
    int units_on = getsizeof != Py_None || (self->hooks & HOOK_GETSIZEOF);
    if (cacheobj_configure(self, maxsize, units_on, max_bytes, sizeof_fn, budget) < 0) {
        return -1;
    }
    /* as cachetools: a getsizeof argument becomes an instance attribute */
    if (getsizeof != Py_None &&
        PyObject_SetAttr((PyObject *)self, self->st->str_getsizeof, getsizeof) < 0) {
        return -1;
    }
    if (ml_reg_set_name(&self->reg, name) < 0) {
        return -1;
    }
    return cacheobj_resolve_getsizeof(self);
}

/* ------------------------------------------------------------------------------------
 * GC support and deallocation
 */
static int
cache_traverse(CacheObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    const ml_table *t = &self->c.t;
    for (uint32_t id = 0; id < t->top; id++) {
        if (t->ents[id].key != NULL) {
            Py_VISIT((PyObject *)t->ents[id].key);
            Py_VISIT((PyObject *)t->ents[id].value);
        }
    }
    Py_VISIT(self->maxsize);
    Py_VISIT(self->getsizeof);
    Py_VISIT(self->sizeof_fn);
    Py_VISIT(self->choice);
    Py_VISIT(self->dict);
    Py_VISIT((PyObject *)self->budget);
    if (timed_traverse(self, visit, arg) < 0) {
        return -1;
    }
    return 0;
}

/* Also what a collection calls on a cache in a garbage cycle: the cache leaves the registry
 * and its budget first (report() must not see it half-cleared, its budget must not evict
 * from it; its bytes leave the budget with it), and is left empty but whole: maxsize reads
 * None (every store is refused), a timed cache without its timer raises RuntimeError. */
static int
cache_tp_clear(CacheObject *self)
{
    ml_reg_unlink(self->st, &self->reg);
    BudgetObject *left = shared_unlink(self);
    ml_cache_unshare(&self->c);   /* with shared_unlink, before any Python code runs */
    Py_XDECREF((PyObject *)left);   /* can re-enter */
    cacheobj_clear_entries(self);   /* can re-enter */
    Py_XSETREF(self->maxsize, Py_NewRef(Py_None));
    Py_CLEAR(self->getsizeof);
    Py_CLEAR(self->sizeof_fn);
    Py_CLEAR(self->choice);
    Py_CLEAR(self->dict);
    timed_clear(self);
    return 0;
}

static void
cache_dealloc(CacheObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    ml_reg_unlink(self->st, &self->reg);   /* first: report() must not find it dying */
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, cache_dealloc)
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    (void)cache_tp_clear(self);   /* leaves its budget, returning the bytes */
    Py_CLEAR(self->maxsize);
#ifdef Py_GIL_DISABLED
    Py_CLEAR(self->member_wref);
#endif
    ml_cache_free(&self->c);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);   /* inside: a dealloc the trashcan defers runs all of this later */
    Py_TRASHCAN_END
}

/* ------------------------------------------------------------------------------------
 * Type specs
 */
PyDoc_STRVAR(cache_doc,
"Cache(maxsize, getsizeof=None, *, max_bytes=None, sizeof=None, name=None, budget=None)\n--\n\n"
"The C engine under memleash's caches; use memleash.Cache or memleash.LRUCache.");

/* _ml_referents: the keys and values, flat ([k0, v0, k1, v1, ...]), for
 * pympler.asizeof. pympler sizes an unknown instance's __dict__ and the attributes its
 * classes name in __slots__, never tp_traverse's referents; so the type lists this
 * attribute in a class-level __slots__ (added in module exec, with no slot behind it). */
static PyObject *
cache_get_referents(CacheObject *self, void *Py_UNUSED(closure))
{
    return cacheobj_snapshot(self);
}

static PyObject *
cache_get_budget(CacheObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->budget ? (PyObject *)self->budget : Py_None);
}

static PyObject *
cache_get_choice(CacheObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->choice ? self->choice : Py_None);
}

static int
cache_set_choice(CacheObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL || !PyCallable_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "choice must be callable");
        return -1;
    }
    Py_XSETREF(self->choice, Py_NewRef(value));
    return 0;
}

/* ------------------------------------------------------------------------------------
 * Entry points: every method, property and slot that reads or writes the cache runs in a
 * critical section on it (the free-threaded build's per-object lock; ML_LOCKED in
 * compat.h). Traversal, clearing and deallocation need none: the collector and the last
 * reference have the object to themselves.
 */
#define SELF CacheObject *self
ML_LOCKED(Py_ssize_t, locked_length, (SELF), cache_length(self))
ML_LOCKED(PyObject *, locked_subscript, (SELF, PyObject *key), cache_subscript(self, key))
ML_LOCKED(int, locked_ass_subscript, (SELF, PyObject *key, PyObject *value),
          cache_ass_subscript(self, key, value))
ML_LOCKED(int, locked_contains, (SELF, PyObject *key), cache_contains(self, key))
ML_LOCKED(PyObject *, locked_get, (SELF, PyObject *const *args, Py_ssize_t n, PyObject *kw),
          cache_get(self, args, n, kw))
ML_LOCKED(PyObject *, locked_pop, (SELF, PyObject *const *args, Py_ssize_t n, PyObject *kw),
          cache_pop(self, args, n, kw))
ML_LOCKED(PyObject *, locked_setdefault, (SELF, PyObject *const *args, Py_ssize_t n, PyObject *kw),
          cache_setdefault(self, args, n, kw))
ML_LOCKED(PyObject *, locked_expire, (SELF, PyObject *const *args, Py_ssize_t n, PyObject *kw),
          cache_expire_method(self, args, n, kw))
ML_LOCKED(PyObject *, locked_popitem, (SELF, PyObject *ignored), cache_popitem(self, ignored))
ML_LOCKED(PyObject *, locked_clear, (SELF, PyObject *ignored), cache_clear(self, ignored))
ML_LOCKED(PyObject *, locked_sizeof, (SELF, PyObject *ignored), cache_sizeof(self, ignored))
ML_LOCKED(PyObject *, locked_stats, (SELF, PyObject *ignored), cache_stats(self, ignored))
ML_LOCKED(PyObject *, locked_getstate, (SELF, PyObject *ignored), cache_getstate(self, ignored))
ML_LOCKED(PyObject *, locked_setstate, (SELF, PyObject *state), cache_setstate(self, state))
ML_LOCKED(PyObject *, locked_configure_timed, (SELF, PyObject *args), cache_configure_timed(self, args))
ML_LOCKED(int, locked_init, (SELF, PyObject *args, PyObject *kwds), cache_init(self, args, kwds))
ML_LOCKED(PyObject *, locked_repr, (SELF), cache_repr(self))
ML_LOCKED(PyObject *, locked_iter, (SELF), cache_iter(self))
#define GETTER(name) ML_LOCKED(PyObject *, locked_##name, (SELF, void *closure), name(self, closure))
GETTER(timed_get_timer)
GETTER(timed_get_ttl)
GETTER(timed_get_ttu)
GETTER(timed_get_expiry_work)
GETTER(cache_get_choice)
GETTER(cache_get_referents)
GETTER(cache_get_maxsize)
GETTER(cache_get_currsize)
GETTER(cache_get_maxbytes)
GETTER(cache_get_currbytes)
GETTER(cache_get_budget)
#undef GETTER
ML_LOCKED(int, locked_set_choice, (SELF, PyObject *value, void *closure),
          cache_set_choice(self, value, closure))
#undef SELF

static PyMethodDef cache_methods[] = {
    {"get", (PyCFunction)(void (*)(void))locked_get, METH_FASTCALL | METH_KEYWORDS,
     "get($self, /, key, default=None)\n--\n\n"
     "The value for key (refreshing it), else default."},
    {"pop", (PyCFunction)(void (*)(void))locked_pop, METH_FASTCALL | METH_KEYWORDS,
     "pop(key[, default]): remove key and return its value; KeyError without a default."},
    {"setdefault", (PyCFunction)(void (*)(void))locked_setdefault, METH_FASTCALL | METH_KEYWORDS,
     "setdefault($self, /, key, default=None)\n--\n\n"
     "The value for key, storing default if absent."},
    {"popitem", (PyCFunction)locked_popitem, METH_NOARGS,
     "popitem($self, /)\n--\n\nRemove and return the (key, value) pair the policy evicts next."},
    {"clear", (PyCFunction)locked_clear, METH_NOARGS, "clear($self, /)\n--\n\nRemove every item."},
    {"__missing__", (PyCFunction)cache_missing_method, METH_O,
     "__missing__($self, key, /)\n--\n\n"
     "Called by c[key] on a miss; raises KeyError(key). Override to compute values."},
    {"getsizeof", (PyCFunction)cache_getsizeof, METH_O | METH_STATIC,
     "getsizeof(value, /)\n--\n\n"
     "Return the size of a cache element's value (1 unless overridden or given)."},
    {"__sizeof__", (PyCFunction)locked_sizeof, METH_NOARGS,
     "__sizeof__($self, /)\n--\n\nBytes the cache itself owns (not its keys and values)."},
    {"_ml_stats", (PyCFunction)locked_stats, METH_NOARGS,
     "What memleash.report() shows of this cache (a dict; nothing expires)."},
    {"_ml_expire", (PyCFunction)(void (*)(void))locked_expire, METH_FASTCALL | METH_KEYWORDS,
     "_ml_expire($self, /, time=None)\n--\n\n"
     "expire(): remove the items expired at `time` (now by default) and return the\n"
     "removed (key, value) pairs, earliest deadline first."},
    {"_ml_configure_timed", (PyCFunction)locked_configure_timed, METH_VARARGS, NULL},
    {"__getstate__", (PyCFunction)locked_getstate, METH_NOARGS, NULL},
    {"__setstate__", (PyCFunction)locked_setstate, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef cache_getset[] = {
    {"_ml_timer", (getter)locked_timed_get_timer, NULL, "A timed cache's Timer (TTLCache.timer).", NULL},
    {"_ml_ttl", (getter)locked_timed_get_ttl, NULL, "TTLCache.ttl.", NULL},
    {"_ml_ttu", (getter)locked_timed_get_ttu, NULL, "TLRUCache.ttu.", NULL},
    {"_ml_expiry_work", (getter)locked_timed_get_expiry_work, NULL,
     "Entries the deadline wheel has filed, moved or unlinked so far (a cost counter).", NULL},
    {"_ml_choice", (getter)locked_cache_get_choice, (setter)locked_set_choice,
     "RRCache's choice function (the public name is RRCache.choice).", NULL},
    {"_ml_referents", (getter)locked_cache_get_referents, NULL,
     "The keys and values, flat: what pympler.asizeof follows (see __slots__).", NULL},
    {"maxsize", (getter)locked_cache_get_maxsize, NULL, "The maximum size of the cache.", NULL},
    {"currsize", (getter)locked_cache_get_currsize, NULL, "The current size of the cache.", NULL},
    {"maxbytes", (getter)locked_cache_get_maxbytes, NULL, "The byte budget (max_bytes), or None.", NULL},
    {"currbytes", (getter)locked_cache_get_currbytes, NULL, "The accounted bytes of the items held.", NULL},
    {"budget", (getter)locked_cache_get_budget, NULL,
     "The memleash.Budget this cache shares with others (budget=), or None.", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef cache_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(CacheObject, weakreflist), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(CacheObject, dict), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot cache_slots[] = {
    {Py_tp_doc, (void *)cache_doc},
    {Py_tp_new, cache_new},
    {Py_tp_init, locked_init},
    {Py_tp_dealloc, cache_dealloc},
    {Py_tp_traverse, cache_traverse},
    {Py_tp_clear, cache_tp_clear},
    {Py_tp_repr, locked_repr},
    {Py_tp_iter, locked_iter},
    {Py_tp_methods, cache_methods},
    {Py_tp_getset, cache_getset},
    {Py_tp_members, cache_members},
    {Py_mp_length, locked_length},
    {Py_mp_subscript, locked_subscript},
    {Py_mp_ass_subscript, locked_ass_subscript},
    {Py_sq_contains, locked_contains},
    {0, NULL},
};

static PyType_Spec cache_spec = {
    .name = "memleash._core.Cache",
    .basicsize = sizeof(CacheObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = cache_slots,
};


int
ml_cache_module_exec(PyObject *module, ml_state *st)
{
    st->CacheType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &cache_spec, NULL);
    if (st->CacheType == NULL || PyModule_AddType(module, st->CacheType) < 0) {
        return -1;
    }
    if (ml_declare_referents(st->CacheType) < 0) {
        return -1;
    }
    st->CacheIterType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &cacheiter_spec, NULL);
    if (st->CacheIterType == NULL) {
        return -1;
    }
    st->RRKeysType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &rrkeys_spec, NULL);
    if (st->RRKeysType == NULL) {
        return -1;
    }
    st->TimerType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &timer_spec, NULL);
    if (st->TimerType == NULL || PyModule_AddType(module, st->TimerType) < 0) {
        return -1;
    }
    if (PyModule_AddIntConstant(module, "TIMED_TTL", TIMED_TTL) < 0 ||
        PyModule_AddIntConstant(module, "TIMED_TLRU", TIMED_TLRU) < 0) {
        return -1;
    }
    if (PyModule_AddIntConstant(module, "POLICY_INSERTION", ML_POLICY_INSERTION) < 0 ||
        PyModule_AddIntConstant(module, "POLICY_LRU", ML_POLICY_LRU) < 0 ||
        PyModule_AddIntConstant(module, "POLICY_FIFO", ML_POLICY_FIFO) < 0 ||
        PyModule_AddIntConstant(module, "POLICY_LFU", ML_POLICY_LFU) < 0 ||
        PyModule_AddIntConstant(module, "POLICY_RANDOM", ML_POLICY_RANDOM) < 0 ||
        PyModule_AddIntConstant(module, "POLICY_TINYLFU", ML_POLICY_TINYLFU) < 0) {
        return -1;
    }
    return 0;
}
