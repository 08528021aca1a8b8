/* emitter.c — memleash._core.EventEmitter: pyee's API over listener slots (core/slots.c),
 * with listeners that never keep their owners alive.
 *
 * A listener is one slot; its payload (p[]) depends on its kind:
 *   KIND_STRONG   p[0] the callable (strong)                    a function, lambda, weak=False
 *   KIND_METHOD   p[0] the function, p[1] a SlotRef to self     a bound method (the default)
 *   KIND_WEAK     p[1] a SlotRef to the callable                weak=True on anything else
 *   KIND_PARTIAL  p[0] the function, p[1] a SlotRef to self,    functools.partial of a bound
 *                 p[2] (args, keywords), p[3] a weakref to       method: weak on the method's
 *                 the partial (its identity, while it lives)     object
 * A SlotRef is a weakref.ref subtype that remembers its slot (id, generation); its
 * callback is the emitter's Reaper, which unlinks that slot in O(1) when the referent
 * dies. The Reaper points back at the emitter without a reference (cleared when the
 * emitter goes), so a subclass that subscribes its own methods makes no cycle.
 *
 * Emit walks the event's list in place: the core keeps unlinked slots as tombstones until
 * the last emit returns and stamps every add and removal with a clock tick, so an emit
 * runs exactly pyee's snapshot — added before it began, not removed before it began (a
 * once listener runs once, and a listener whose owner died never runs).
 *
 * Note on re-entrancy. Python code runs in: listeners and pyee's hooks (_emit_run,
 * _call_handlers, _emit_handle_potential_error, _add_event_handler, _remove_listener, an
 * overriding emit); __hash__/__eq__ of events and listeners; warnings; and, through a
 * collection at any allocation of a tracked object, any finalizer or weakref callback —
 * which may free a weak listener's owner, unlink or add slots, or clear the emitter. So:
 *   - No slot pointer is kept across a call that can allocate or run code (the slab may
 *     grow and move); ids stay valid while an emit runs, since nothing is freed then.
 *   - No borrowed reference crosses such a call: a payload is held (increfs alone) before
 *     it is used across one, an owner is read from its SlotRef as a new reference
 *     (ml_weak_get), and what listeners() and pickling read is a held snapshot taken
 *     before they allocate anything (PyMem only, which never collects).
 *   - Counters only move forward: the core's clock (every add and removal), each table's
 *     version (every insertion, removal and reservation, which may rebuild an index) and
 *     each slot's generation, tp_clear included (ml_slots_steal). Look-ups that compare
 *     with __eq__ restart when the clock moved, the core's probes when a version did.
 *   - Every path that calls back into user code that can lead straight back into the
 *     emitter from C (a listener, each hook) takes the interpreter's recursion guard,
 *     and the dealloc goes through the trashcan.
 *   - Releases (payloads, event keys, emit's packed arguments) come last, once the slots
 *     are consistent again; the lines that can re-enter say so.
 *
 * This file holds the type: its life cycle and GC, the SlotRef and Reaper types, the
 * method table, the spec and module exec. The rest is split by concern (emitter.h lists
 * the files and the order in which they may call each other).
 */
#include "py/emitter.h"

#include <stddef.h>

#include "core/status.h"
#include "structmember.h"

#define DEFAULT_MAX_LISTENERS 10

/* ------------------------------------------------------------------------------------
 * Life cycle and GC
 */
static PyObject *
emitter_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwds))
{
    ml_state *st = ml_state_of_type(type);
    if (st == NULL) {
        return NULL;
    }
    PyObject *dict;
    if (ml_instance_dict_new(&dict) < 0) {
        return NULL;
    }
    EmitterObject *self = (EmitterObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_XDECREF(dict);
        return NULL;
    }
    self->dict = dict;
    self->st = st;
    const ml_hook hooks[] = {
        {st->str_emit_run, HOOK_EMIT_RUN},
        {st->str_call_handlers, HOOK_CALL_HANDLERS},
        {st->str_handle_error, HOOK_HANDLE_ERROR},
        {st->str_add_hook, HOOK_ADD},
        {st->str_remove_hook, HOOK_REMOVE},
        {st->str_emit, HOOK_EMIT},
    };
    self->hooks = ml_overrides(type, st->EmitterType, hooks, sizeof(hooks) / sizeof(hooks[0]));
    ml_slots_init(&self->sl, &ml_alloc_pymem);
    self->max_listeners = DEFAULT_MAX_LISTENERS;
    ReaperObject *reaper = PyObject_New(ReaperObject, st->ReaperType);
    if (reaper == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    reaper->owner = self;   /* borrowed: cleared in emitter_tp_clear */
#ifdef Py_GIL_DISABLED
    reaper->owner_ref = PyWeakref_NewRef((PyObject *)self, NULL);
    if (reaper->owner_ref == NULL) {
        reaper->owner = NULL;
        Py_DECREF(reaper);
        Py_DECREF(self);
        return NULL;
    }
#endif
    self->reaper = (PyObject *)reaper;
    ml_reg_link(st, &self->reg, (PyObject *)self);
    return (PyObject *)self;
}

static int locked_init(PyObject *self, PyObject *args, PyObject *kwds);

/* EventEmitter(*, name=None). A subclass's own __init__ may take other arguments (its
 * constructor call reaches here only through super().__init__). */
static int
emitter_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    EmitterObject *em = (EmitterObject *)self;
    PyObject *name = NULL;
    Py_ssize_t nkw = kwds != NULL ? PyDict_GET_SIZE(kwds) : 0;
    if (nkw > 0 && PyDict_GetItemRef(kwds, em->st->str_name, &name) < 0) {
        return -1;
    }
    if (PyTuple_GET_SIZE(args) != 0 || nkw > (name != NULL)) {
        if (Py_TYPE(self)->tp_init == locked_init) {
            PyErr_SetString(PyExc_TypeError,
                            "EventEmitter() takes no positional arguments and only the "
                            "keyword argument 'name'");
            Py_XDECREF(name);
            return -1;
        }
    }
    int rc = name != NULL ? ml_reg_set_name(&em->reg, name) : 0;
    Py_XDECREF(name);
    if (rc == 0 && em->sl.events.top != 0) {
        /* called again: it starts from no listeners, as pyee's __init__ (_events = dict())
         * does; the listener limit is the default again */
        PyObject *r = emitter_remove_all_listeners(em, NULL, 0, NULL);   /* can re-enter */
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
        em->max_listeners = DEFAULT_MAX_LISTENERS;
    }
    return rc;
}

static int
emitter_traverse(EmitterObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->dict);
    Py_VISIT(self->lock);
    for (uint32_t ev = 0; ev < self->sl.events.top; ev++) {
        Py_VISIT((PyObject *)self->sl.events.ents[ev].key);
    }
    for (uint32_t id = 0; id < self->sl.top; id++) {
        const ml_slot *sl = &self->sl.s[id];
        if (!(sl->flags & ML_SLOT_FREE)) {
            for (int i = 0; i < 4; i++) {
                /* strong listeners, functions, partials' arguments and weakrefs: never
                 * a weak listener's object itself */
                Py_VISIT((PyObject *)sl->p[i]);
            }
        }
    }
    return 0;
}

static int
emitter_tp_clear(EmitterObject *self)
{
    if (self->reaper != NULL) {
        ((ReaperObject *)self->reaper)->owner = NULL;
    }
    /* steal everything first, release after: the releases can re-enter (and find an
     * empty emitter whose clock and versions have moved on, never back) */
    ml_slots old;
    ml_slots_steal(&self->sl, &old);
    for (uint32_t id = 0; id < old.top; id++) {
        ml_slot *sl = &old.s[id];
        if (!(sl->flags & ML_SLOT_FREE)) {
            ml_em_payload_release(ml_em_payload_of(sl));
        }
    }
    for (uint32_t ev = 0; ev < old.events.top; ev++) {
        Py_XDECREF((PyObject *)old.events.ents[ev].key);
    }
    ml_slots_free(&old);
    Py_CLEAR(self->reaper);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->lock);
    return 0;
}

static void
emitter_dealloc(EmitterObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    ml_reg_unlink(self->st, &self->reg);   /* first: report() must not find it dying */
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, emitter_dealloc)
    if (self->reaper != NULL) {
        /* its own methods' slots hold weakrefs to it: their callbacks must find no owner */
        ((ReaperObject *)self->reaper)->owner = NULL;
    }
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    (void)emitter_tp_clear(self);
    ml_slots_free(&self->sl);
    tp->tp_free((PyObject *)self);
    /* inside the trashcan's block: when it defers this dealloc (a deep chain of emitters),
     * the block is skipped now and run once later, and so must the type's decref be */
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

/* ------------------------------------------------------------------------------------
 * SlotRef and Reaper
 */
static void
slotref_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_base->tp_dealloc(self);   /* weakref's dealloc frees the object */
    Py_DECREF(tp);
}

static PyType_Slot slotref_slots[] = {
    {Py_tp_dealloc, slotref_dealloc},
    {Py_tp_doc, (void *)"A weak reference that knows its listener slot (internal)."},
    {0, NULL},
};

static PyType_Spec slotref_spec = {
    .name = "memleash._core._SlotRef",
    .basicsize = sizeof(SlotRefObject),
    .flags = Py_TPFLAGS_DEFAULT,   /* GC support and traverse are inherited from weakref.ref */
    .slots = slotref_slots,
};

/* The weakref callback: the owner of slot ref->slot died; unlink that slot. */
static PyObject *
reaper_call(ReaperObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *ref;
    if (kwds != NULL || !PyArg_UnpackTuple(args, "reaper", 1, 1, &ref)) {
        return NULL;
    }
#ifdef Py_GIL_DISABLED
    /* the callback runs in whichever thread let the listener's owner go */
    PyObject *held = NULL;
    if (self->owner_ref != NULL && PyWeakref_GetRef(self->owner_ref, &held) < 0) {
        return NULL;
    }
    EmitterObject *em = (EmitterObject *)held;
#else
    EmitterObject *em = self->owner;
    Py_XINCREF(em);
#endif
    if (em == NULL) {
        Py_RETURN_NONE;
    }
    ML_BEGIN_CRITICAL_SECTION(em);
    if (PyObject_TypeCheck(ref, em->st->SlotRefType)) {
        SlotRefObject *sr = (SlotRefObject *)ref;
        uint32_t id = sr->slot;
        if (id != ML_NIL && id < em->sl.top && em->sl.s[id].gen == sr->gen &&
            em->sl.s[id].p[1] == ref && !(em->sl.s[id].flags & (ML_SLOT_GONE | ML_SLOT_FREE))) {
            ml_em_unlink_slot(em, id, 1);   /* can re-enter */
        }
    }
    ML_END_CRITICAL_SECTION();
    Py_DECREF(em);   /* can re-enter */
    Py_RETURN_NONE;
}

static void
reaper_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
#ifdef Py_GIL_DISABLED
    Py_CLEAR(((ReaperObject *)self)->owner_ref);   /* a weakref: its referent is not ours */
#endif
    PyObject_Free(self);
    Py_DECREF(tp);
}

static PyType_Slot reaper_slots[] = {
    {Py_tp_call, reaper_call},
    {Py_tp_dealloc, reaper_dealloc},
    {0, NULL},
};

static PyType_Spec reaper_spec = {
    .name = "memleash._core._Reaper",
    .basicsize = sizeof(ReaperObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = reaper_slots,
};

/* ------------------------------------------------------------------------------------
 * The EventEmitter type
 */
PyDoc_STRVAR(emitter_doc,
"EventEmitter(*, name=None)\n--\n\n"
"pyee's EventEmitter, in C, whose listeners never keep their owners alive: a bound\n"
"method is held through a weak reference to its object and unlinked when it dies.");

/* ------------------------------------------------------------------------------------
 * Entry points: every method and property runs in a critical section on the emitter (the
 * free-threaded build's per-object lock; ML_LOCKED in compat.h). A listener called by
 * emit() runs inside it too: two threads emitting on one emitter take turns, except while
 * a listener waits for another lock (the section is suspended then, as for any wait).
 */
#define SELF EmitterObject *self
#define FAST(name) ML_LOCKED(PyObject *, locked_##name, \
                             (SELF, PyObject *const *a, Py_ssize_t n, PyObject *kw), name(self, a, n, kw))
#define POS(name) ML_LOCKED(PyObject *, locked_##name, (SELF, PyObject *const *a, Py_ssize_t n), \
                            name(self, a, n))
#define ONE(name) ML_LOCKED(PyObject *, locked_##name, (SELF, PyObject *o), name(self, o))
#define GET(name) ML_LOCKED(PyObject *, locked_##name, (SELF, void *c), name(self, c))
FAST(emitter_emit)
FAST(emitter_on)
FAST(emitter_add_listener)
FAST(emitter_listens_to)
FAST(emitter_once)
POS(emitter_ml_add)
POS(emitter_remove_listener)
FAST(emitter_remove_all_listeners)
ONE(emitter_listeners)
ONE(emitter_event_names)
ONE(emitter_listener_count)
ONE(emitter_set_max_listeners)
ONE(emitter_get_max_listeners)
POS(emitter_call_handlers)
POS(emitter_emit_run)
POS(emitter_add_event_handler)
POS(emitter_naked_remove)
POS(emitter_handle_error)
ONE(emitter_getstate)
ONE(emitter_setstate)
ONE(emitter_stats)
ONE(emitter_sizeof)
GET(emitter_get_lock)
GET(emitter_get_referents)
GET(emitter_get_events)
#undef FAST
#undef POS
#undef ONE
#undef GET
#undef SELF

static int
locked_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    int rc;
    ML_BEGIN_CRITICAL_SECTION(self);
    rc = emitter_init(self, args, kwds);
    ML_END_CRITICAL_SECTION();
    return rc;
}

static PyMethodDef emitter_methods[] = {
    {"emit", (PyCFunction)(void (*)(void))locked_emitter_emit, METH_FASTCALL | METH_KEYWORDS,
     "emit(event, *args, **kwargs) -> bool: call the listeners of event; True if any ran."},
    {"on", (PyCFunction)(void (*)(void))locked_emitter_on, METH_FASTCALL | METH_KEYWORDS,
     "on(event, f=None, *, weak=None): register f (or decorate); returns f."},
    {"add_listener", (PyCFunction)(void (*)(void))locked_emitter_add_listener,
     METH_FASTCALL | METH_KEYWORDS, "ml_em_add_listener(event, f, *, weak=None): register f; returns f."},
    {"listens_to", (PyCFunction)(void (*)(void))locked_emitter_listens_to, METH_FASTCALL | METH_KEYWORDS,
     "listens_to(event, *, weak=None): a decorator registering its function."},
    {"once", (PyCFunction)(void (*)(void))locked_emitter_once, METH_FASTCALL | METH_KEYWORDS,
     "once(event, f=None, *, weak=None): like on(), removed when it first runs."},
    {"_ml_add", (PyCFunction)(void (*)(void))locked_emitter_ml_add, METH_FASTCALL,
     "_ml_add(event, once, weak, f): the decorators' target."},
    {"remove_listener", (PyCFunction)(void (*)(void))locked_emitter_remove_listener, METH_FASTCALL,
     "remove_listener(event, f): unregister f (no effect when event does not have it)."},
    {"remove_all_listeners", (PyCFunction)(void (*)(void))locked_emitter_remove_all_listeners,
     METH_FASTCALL | METH_KEYWORDS, "remove_all_listeners(event=None)"},
    {"listeners", (PyCFunction)locked_emitter_listeners, METH_O,
     "listeners(event): a list of the live listeners of event."},
    {"event_names", (PyCFunction)locked_emitter_event_names, METH_NOARGS,
     "event_names(): the set of events with listeners."},
    {"listener_count", (PyCFunction)locked_emitter_listener_count, METH_O,
     "listener_count(event): how many live listeners event has."},
    {"set_max_listeners", (PyCFunction)locked_emitter_set_max_listeners, METH_O,
     "set_max_listeners(n): warn (ListenerLeakWarning) beyond n listeners of one event; 0: never."},
    {"get_max_listeners", (PyCFunction)locked_emitter_get_max_listeners, METH_NOARGS,
     "get_max_listeners()"},
    {"_call_handlers", (PyCFunction)(void (*)(void))locked_emitter_call_handlers, METH_FASTCALL,
     "_call_handlers(event, args, kwargs) -> bool: run event's listeners (pyee's hook)."},
    {"_emit_run", (PyCFunction)(void (*)(void))locked_emitter_emit_run, METH_FASTCALL,
     "_emit_run(f, args, kwargs): call one listener (pyee's hook; override to schedule)."},
    {"_add_event_handler", (PyCFunction)(void (*)(void))locked_emitter_add_event_handler,
     METH_FASTCALL, "_add_event_handler(event, k, v): register k (pyee's hook; once if v is not k)."},
    {"_remove_listener", (PyCFunction)(void (*)(void))locked_emitter_naked_remove, METH_FASTCALL,
     "_remove_listener(event, f): remove f (pyee's hook)."},
    {"_emit_handle_potential_error", (PyCFunction)(void (*)(void))locked_emitter_handle_error,
     METH_FASTCALL, "_emit_handle_potential_error(event, error): raise for an unhandled 'error'."},
    {"__getstate__", (PyCFunction)locked_emitter_getstate, METH_NOARGS,
     "The strongly held listeners, settings and instance dict (weak listeners are dropped)."},
    {"__setstate__", (PyCFunction)locked_emitter_setstate, METH_O, "Restores __getstate__'s state."},
    {"_ml_stats", (PyCFunction)locked_emitter_stats, METH_NOARGS,
     "What memleash.report() shows of this emitter (a dict)."},
    {"__sizeof__", (PyCFunction)locked_emitter_sizeof, METH_NOARGS,
     "Size in bytes: the object and the slot arrays it owns (not the listeners)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef emitter_getset[] = {
    {"_lock", (getter)locked_emitter_get_lock, NULL, "A lock, as pyee's emitters carry.", NULL},
    {"_ml_referents", (getter)locked_emitter_get_referents, NULL,
     "What the emitter holds, as a list: what pympler.asizeof follows (see __slots__).", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {"_events", (getter)locked_emitter_get_events, NULL,
     "A read-only snapshot: event -> {listener: listener}, live listeners in order.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef emitter_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(EmitterObject, weakreflist), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(EmitterObject, dict), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot emitter_slots[] = {
    {Py_tp_doc, (void *)emitter_doc},
    {Py_tp_new, emitter_new},
    {Py_tp_init, locked_init},
    {Py_tp_dealloc, emitter_dealloc},
    {Py_tp_traverse, emitter_traverse},
    {Py_tp_clear, emitter_tp_clear},
    {Py_tp_methods, emitter_methods},
    {Py_tp_getset, emitter_getset},
    {Py_tp_members, emitter_members},
    {0, NULL},
};

static PyType_Spec emitter_spec = {
    .name = "memleash._core.EventEmitter",
    .basicsize = sizeof(EmitterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = emitter_slots,
};

int
ml_emitter_module_exec(PyObject *module, ml_state *st)
{
    /* weakref.ref, from the _weakref module (its C symbol is private) */
    PyObject *weakref = PyImport_ImportModule("_weakref");
    PyObject *ref = weakref ? PyObject_GetAttrString(weakref, "ref") : NULL;
    Py_XDECREF(weakref);
    if (ref == NULL || !PyType_Check(ref)) {
        Py_XDECREF(ref);
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ImportError, "_weakref.ref is not a type");
        }
        return -1;
    }
    PyObject *bases = PyTuple_Pack(1, ref);
    Py_DECREF(ref);
    if (bases == NULL) {
        return -1;
    }
    st->SlotRefType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &slotref_spec, bases);
    Py_DECREF(bases);
    if (st->SlotRefType == NULL) {
        return -1;
    }
    st->ReaperType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &reaper_spec, NULL);
    if (st->ReaperType == NULL) {
        return -1;
    }
    st->EmitterType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &emitter_spec, NULL);
    if (st->EmitterType == NULL || PyModule_AddType(module, st->EmitterType) < 0 ||
        ml_declare_referents(st->EmitterType) < 0) {
        return -1;
    }
    st->PyeeException = PyErr_NewExceptionWithDoc(
        "memleash.PyeeException", "An exception internal to the emitter (pyee's name).",
        NULL, NULL);
    if (st->PyeeException == NULL ||
        PyModule_AddObjectRef(module, "PyeeException", st->PyeeException) < 0) {
        return -1;
    }
    st->PyeeError = PyErr_NewExceptionWithDoc(
        "memleash.PyeeError", "An error internal to the emitter: an unhandled 'error' event "
        "that is not an exception (pyee's name; EmitterError is an alias).",
        st->PyeeException, NULL);
    if (st->PyeeError == NULL || PyModule_AddObjectRef(module, "PyeeError", st->PyeeError) < 0) {
        return -1;
    }
    st->ListenerLeakWarning = PyErr_NewExceptionWithDoc(
        "memleash.ListenerLeakWarning",
        "More live listeners on one event than get_max_listeners() allows: a likely leak.",
        PyExc_RuntimeWarning, NULL);
    if (st->ListenerLeakWarning == NULL ||
        PyModule_AddObjectRef(module, "ListenerLeakWarning", st->ListenerLeakWarning) < 0) {
        return -1;
    }
    PyObject *functools = PyImport_ImportModule("functools");
    if (functools == NULL) {
        return -1;
    }
    st->partial = PyObject_GetAttrString(functools, "partial");
    Py_DECREF(functools);
    PyObject *thread = PyImport_ImportModule("_thread");
    if (st->partial == NULL || thread == NULL) {
        Py_XDECREF(thread);
        return -1;
    }
    st->allocate_lock = PyObject_GetAttrString(thread, "allocate_lock");
    Py_DECREF(thread);
    return st->allocate_lock == NULL ? -1 : 0;
}
