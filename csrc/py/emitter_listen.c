/* emitter_listen.c — subscribing and removing (above emitter_emit.c, which it calls to
 * announce new_listener; the order is in emitter.h): a listener's payload (weak on a bound
 * method's object), the add itself with pyee's replace-in-place and new_listener rules, the
 * leak warning, on/once/add_listener/listens_to and their decorators, pyee's
 * _add_event_handler and _remove_listener hooks, remove_listener and remove_all_listeners.
 */
#include "py/emitter.h"

#include <string.h>

#include "core/status.h"

/* ------------------------------------------------------------------------------------
 * Adding and removing
 */

/* A SlotRef to obj with the Reaper as callback, or NULL: TypeError (obj cannot be weakly
 * referenced) is left for the caller to turn into a warning. */
static PyObject *
new_slotref(EmitterObject *self, PyObject *obj)
{
    PyObject *ref = PyObject_CallFunctionObjArgs((PyObject *)self->st->SlotRefType, obj,
                                                 self->reaper, NULL);
    if (ref != NULL) {
        ((SlotRefObject *)ref)->slot = ML_NIL;
    }
    return ref;
}

/* The descriptor that binds to owner as built-in method or method-wrapper f does: looked
 * up by f's name along the MRO of owner's type, then (for a class method) of owner
 * itself, each candidate bound and compared with f, so that a method reached through
 * super() or shadowed by a subclass is found too. A new reference, or NULL (no exception)
 * when there is none. */
static PyObject *
find_descriptor(PyObject *f, PyObject *owner)
{
    PyObject *name = PyObject_GetAttrString(f, "__name__"), *found = NULL;
    if (name == NULL || !PyUnicode_Check(name)) {
        Py_XDECREF(name);
        PyErr_Clear();
        return NULL;
    }
    PyTypeObject *where[2] = {Py_TYPE(owner), PyType_Check(owner) ? (PyTypeObject *)owner : NULL};
    for (int w = 0; w < 2 && found == NULL; w++) {
        /* tp_mro: a documented field of the type object, with this meaning from 3.11 to
         * 3.14 (the static builtin types of 3.12+ keep theirs there too); held, since a
         * collection during the binds below may run code that reassigns __bases__ */
        PyObject *mro = where[w] ? Py_XNewRef(where[w]->tp_mro) : NULL;
        for (Py_ssize_t i = 0; mro != NULL && found == NULL && i < PyTuple_GET_SIZE(mro); i++) {
            PyObject *cand = ml_type_lookup_ref((PyTypeObject *)PyTuple_GET_ITEM(mro, i), name);
            if (cand != NULL && (Py_IS_TYPE(cand, &PyMethodDescr_Type) ||
                                 Py_IS_TYPE(cand, &PyClassMethodDescr_Type) ||
                                 Py_IS_TYPE(cand, &PyWrapperDescr_Type))) {
                PyObject *g = ml_em_bind(cand, owner);
                int eq = g != NULL ? PyObject_RichCompareBool(g, f, Py_EQ) : -1;
                Py_XDECREF(g);
                if (eq == 1) {
                    found = Py_NewRef(cand);
                }
                PyErr_Clear();   /* a candidate that does not bind to owner is not it */
            }
            Py_XDECREF(cand);
        }
        Py_XDECREF(mro);
    }
    Py_DECREF(name);
    return found;
}

enum { NOT_BOUND = 0, BOUND = 1, BOUND_UNFOUND = 2 };

/* The parts of f when it is a callable bound to an object (its owner):
 *   a Python bound method: its __func__ (*kind 0);
 *   a built-in method whose __self__ is an object or a class (not a module, not None:
 *   io.BytesIO().write, dict.fromkeys, an extension type's methods) or a method-wrapper
 *   (object().__str__): the descriptor that binds to the owner (*kind KIND_C).
 * BOUND with *fn and *owner new references; NOT_BOUND; BOUND_UNFOUND (a built-in method
 * whose descriptor is not found on its owner's type: *owner set, to be named in the
 * warning); -1 error. */
static int
bound_parts(PyObject *f, PyObject **fn, PyObject **owner, uint32_t *kind)
{
    *fn = *owner = NULL;
    *kind = 0;
    if (PyMethod_Check(f)) {
        *fn = Py_NewRef(PyMethod_GET_FUNCTION(f));
        *owner = Py_NewRef(PyMethod_GET_SELF(f));
        return BOUND;
    }
    PyObject *self;
    if (PyCFunction_Check(f)) {
        self = Py_XNewRef(PyCFunction_GetSelf(f));   /* NULL for a static function */
    }
    else if (ml_em_is_method_wrapper(f)) {
        if ((self = PyObject_GetAttrString(f, "__self__")) == NULL) {
            return -1;
        }
    }
    else {
        return NOT_BOUND;
    }
    if (self == NULL || PyModule_Check(self)) {
        Py_XDECREF(self);
        return NOT_BOUND;   /* a module's function (print, len, math.sqrt): a plain function */
    }
    *owner = self;
    *fn = find_descriptor(f, self);
    *kind = KIND_C;
    return *fn != NULL ? BOUND : PyErr_Occurred() ? -1 : BOUND_UNFOUND;
}

/* Prepares the payload of listener f (new references). weak: -1 default, 0 strong, 1
 * weak. Weak by default on the owner of every bound shape (bound_parts), bare or inside an
 * exact functools.partial; weak=True on anything else holds the callable itself weakly.
 * An owner that cannot be weakly referenced is held strongly, with a RuntimeWarning.
 * 0 or -1. */
static int
make_payload(EmitterObject *self, PyObject *f, int weak, payload *pl)
{
    memset(pl, 0, sizeof(*pl));
    PyObject *fn = NULL, *owner = NULL, *bound = NULL, *me = NULL;
    uint32_t kind = KIND_METHOD, cflag = 0;
    int rc = NOT_BOUND;
    if (weak != 0 && Py_IS_TYPE(f, (PyTypeObject *)self->st->partial)) {
        /* exact: a subclass may call differently than the partial rebuilt from its parts */
        PyObject *func = PyObject_GetAttrString(f, "func");   /* a member: no code runs */
        rc = func != NULL ? bound_parts(func, &fn, &owner, &cflag) : -1;
        Py_XDECREF(func);
        kind = KIND_PARTIAL;
        if (rc == BOUND) {
            PyObject *args = PyObject_GetAttrString(f, "args");
            PyObject *kw = args ? PyObject_GetAttrString(f, "keywords") : NULL;
            bound = kw ? PyTuple_Pack(2, args, kw) : NULL;
            me = bound ? PyWeakref_NewRef(f, NULL) : NULL;   /* its identity, while it lives */
            Py_XDECREF(args);
            Py_XDECREF(kw);
            rc = me != NULL ? BOUND : -1;
        }
    }
    else if (weak != 0) {
        rc = bound_parts(f, &fn, &owner, &cflag);
    }
    if (rc == NOT_BOUND && weak == 1) {
        owner = Py_NewRef(f);
        kind = KIND_WEAK;
        rc = BOUND;
    }
    if (rc == BOUND) {
        PyObject *ref = new_slotref(self, owner);
        if (ref != NULL) {
            pl->p[0] = fn;
            pl->p[1] = ref;
            pl->p[2] = bound;
            pl->p[3] = me;
            pl->kind = kind | cflag;
            Py_DECREF(owner);
            return 0;
        }
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
            goto error;
        }
        PyErr_Clear();
        if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                             "memleash.EventEmitter: %.200s objects cannot be weakly referenced; "
                             "the listener %R is held strongly", Py_TYPE(owner)->tp_name, f) < 0) {
            goto error;
        }
    }
    else if (rc == BOUND_UNFOUND) {
        if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                             "memleash.EventEmitter: the method of the listener %R is not found "
                             "on its %.200s object's type, so it cannot be rebound; it is held "
                             "strongly", f, Py_TYPE(owner)->tp_name) < 0) {
            goto error;
        }
    }
    else if (rc < 0) {
        goto error;
    }
    Py_XDECREF(fn);
    Py_XDECREF(owner);
    Py_XDECREF(bound);
    Py_XDECREF(me);
    pl->kind = KIND_STRONG;
    pl->p[0] = Py_NewRef(f);
    return 0;
error:
    Py_XDECREF(fn);
    Py_XDECREF(owner);
    Py_XDECREF(bound);
    Py_XDECREF(me);
    return -1;
}

static int
warn_leak(EmitterObject *self, PyObject *event, uint32_t ev)
{
    ml_event *e = &self->sl.ev[ev];
    if (self->max_listeners <= 0 || e->warned || (Py_ssize_t)e->live <= self->max_listeners) {
        return 0;
    }
    e->warned = 1;
    self->leak_warnings++;
    return PyErr_WarnFormat(self->st->ListenerLeakWarning, 1,
                            "possible listener leak: %u listeners of event %R on %R "
                            "(max %zd); use set_max_listeners() to raise the limit",
                            (unsigned)e->live, event, (PyObject *)self, self->max_listeners);
}

static int
reserve_failed(int rc)
{
    if (rc == ML_ERR_FULL) {
        PyErr_SetString(PyExc_OverflowError, "too many listeners");
    }
    else {
        PyErr_NoMemory();
    }
    return -1;
}

/* pyee announces a listener with self.emit("new_listener", event, f): through an
 * overriding emit, or one set on the instance (pyee.uplift does that), when there is one;
 * else straight into the emit loop. 0 or -1. Can re-enter. */
static int
announce_listener(EmitterObject *self, PyObject *event, PyObject *f)
{
    int patched = 0;
    if (!(self->hooks & HOOK_EMIT) && self->dict != NULL) {
        patched = PyDict_Contains(self->dict, self->st->str_emit);
        if (patched < 0) {
            return -1;
        }
    }
    if (!(self->hooks & HOOK_EMIT) && !patched) {
        PyObject *nl_args[2] = {event, f};
        return ml_em_emit_event(self, self->st->str_new_listener, nl_args, 2, NULL) < 0 ? -1 : 0;
    }
    if (Py_EnterRecursiveCall(" while announcing a new listener")) {
        return -1;
    }
    PyObject *r = PyObject_CallMethodObjArgs((PyObject *)self, self->st->str_emit,
                                             self->st->str_new_listener, event, f, NULL);
    Py_LeaveRecursiveCall();
    Py_XDECREF(r);
    return r != NULL ? 0 : -1;
}

/* The core of on/once/add_listener: pyee's _add_event_handler. notify: emit new_listener
 * first (0 only when restoring a pickled emitter). Returns 0 or -1. */
int
ml_em_add_listener(EmitterObject *self, PyObject *event, PyObject *f, int once, int weak, int notify)
{
    if (!PyCallable_Check(f)) {
        PyErr_Format(PyExc_TypeError, "listener must be callable, not %.200s",
                     Py_TYPE(f)->tp_name);
        return -1;
    }
    Py_hash_t eh = PyObject_Hash(event), fh;
    if (eh == -1 || (fh = PyObject_Hash(f)) == -1) {
        return -1;
    }
    /* pyee fires new_listener before adding, every time */
    if (notify && announce_listener(self, event, f) < 0) {   /* can re-enter */
        return -1;
    }
    payload pl, old = {{NULL, NULL, NULL, NULL}, 0};
    if (make_payload(self, f, weak, &pl) < 0) {
        return -1;
    }
    uint32_t ev, id;
    int found = ml_em_find_listener(self, event, eh, f, fh, &ev, &id);   /* can re-enter */
    if (found < 0) {
        ml_em_payload_release(pl);
        return -1;
    }
    /* from here to the end of the mutation, no Python code runs */
    if (found && self->sl.emitting != 0) {
        /* re-registered during an emit: the emits in flight still see the old entry, as
         * pyee's snapshots hold its old value, so the old slot becomes a tombstone and
         * the new one takes its place in the list */
        int rc = ml_slots_reserve(&self->sl);
        if (rc != ML_OK) {
            ml_em_payload_release(pl);
            return reserve_failed(rc);
        }
        uint32_t was = id;
        id = ml_slots_insert_after(&self->sl, was, once ? ML_SLOT_ONCE : 0u);
        (void)ml_slots_unlink(&self->sl, was, 0);
    }
    else if (found) {
        /* already registered: pyee replaces the entry in place, keeping its position (and
         * its place in the index: an equal listener has the same hash) */
        ml_slot *sl = &self->sl.s[id];
        old = ml_em_payload_of(sl);
        sl->flags = (sl->flags & ~(uint32_t)ML_SLOT_ONCE) | (once ? ML_SLOT_ONCE : 0u);
    }
    else {
        int rc = ml_slots_reserve(&self->sl);
        if (rc != ML_OK) {
            ml_em_payload_release(pl);
            return reserve_failed(rc);
        }
        if (ev == ML_NIL) {
            /* find_listener saw no such event and nothing ran since: add its record */
            ev = ml_slots_add_event(&self->sl, (uint64_t)eh, Py_NewRef(event));
        }
        id = ml_slots_append(&self->sl, ev, once ? ML_SLOT_ONCE : 0u);
    }
    ml_slot *sl = &self->sl.s[id];
    ml_em_payload_store(sl, &pl);
    if (sl->indexed == ML_NIL) {
        sl->hash = (uint64_t)fh;
        ml_slots_index(&self->sl, id);   /* reserved above */
    }
    if (pl.p[1] != NULL) {
        ((SlotRefObject *)pl.p[1])->slot = id;
        ((SlotRefObject *)pl.p[1])->gen = sl->gen;
    }
#ifndef NDEBUG
    ml_slots_check(&self->sl);
#endif
    if (pl.p[1] != NULL && !ml_em_weak_alive(pl.p[1])) {
        /* its owner died (a collection during the look-up) before the slot existed */
        ml_em_payload_release(old);
        ml_em_unlink_slot(self, id, 1);
        return 0;
    }
    int rc = warn_leak(self, event, ev);
    ml_em_payload_release(old);   /* can re-enter */
    return rc;
}

/* Parses one optional argument, positional or by keyword. 0 or -1. */
static int
parse_optional(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
               const char *const *kwlist, const char *fname, PyObject **out)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument", fname);
        return -1;
    }
    if (nargs == 1) {
        *out = args[0];
    }
    else if (nkw == 1) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0)) ||
            PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), kwlist[0]) != 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fname,
                         PyTuple_GET_ITEM(kwnames, 0));
            return -1;
        }
        *out = args[0];
    }
    return 0;
}

/* _remove_listener(event, f): pyee's naked removal, and remove_listener's work. Removing a
 * listener the event does not have (or from an event with no listeners) has no effect, as
 * in pyee 16 (13 and 14 raised KeyError for an unknown f of a known event). */
PyObject *
emitter_naked_remove(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!ml_em_check_args("_remove_listener", nargs, 2, 2)) {
        return NULL;
    }
    PyObject *event = args[0], *f = args[1];
    Py_hash_t eh = PyObject_Hash(event), fh;
    if (eh == -1) {
        return NULL;
    }
    uint32_t ev, id;
    int found = ml_em_find_event(self, event, eh, &ev);
    if (found <= 0 || self->sl.ev[ev].live == 0) {
        return found < 0 ? NULL : Py_NewRef(Py_None);
    }
    if ((fh = PyObject_Hash(f)) == -1) {
        return NULL;
    }
    found = ml_em_find_listener(self, event, eh, f, fh, &ev, &id);
    if (found < 0) {
        return NULL;
    }
    if (found) {
        ml_em_unlink_slot(self, id, 0);   /* can re-enter */
    }
    Py_RETURN_NONE;
}

/* remove_listener(event, f): through the subclass's _remove_listener when it has one */
PyObject *
emitter_remove_listener(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!ml_em_check_args("remove_listener", nargs, 2, 2)) {
        return NULL;
    }
    if (self->hooks & HOOK_REMOVE) {
        if (Py_EnterRecursiveCall(" in an emitter's _remove_listener")) {
            return NULL;
        }
        PyObject *r = PyObject_CallMethodObjArgs((PyObject *)self, self->st->str_remove_hook,
                                                 args[0], args[1], NULL);
        Py_LeaveRecursiveCall();
        return r;
    }
    return emitter_naked_remove(self, args, nargs);
}

/* Unlinks the live slots of event ev that were added before clock tick `start` (what
 * the removal began with: a listener that a release's __del__ adds is kept, as pyee keeps
 * one added after its del). Each release can re-enter, so the list is walked again from
 * its head each time, and a record that went (its last slot was unlinked) ends the walk.
 * @return how many it unlinked. */
static uint32_t
unlink_event(EmitterObject *self, uint32_t ev, uint64_t start)
{
    void *key = self->sl.events.ents[ev].key;
    uint32_t n = 0;
    for (;;) {
        if (self->sl.events.ents[ev].key != key) {
            return n;   /* the record went with its last slot */
        }
        uint32_t id = self->sl.ev[ev].head;
        while (id != ML_NIL &&
               ((self->sl.s[id].flags & ML_SLOT_GONE) || self->sl.s[id].added >= start)) {
            id = self->sl.s[id].next;
        }
        if (id == ML_NIL) {
            return n;
        }
        ml_em_unlink_slot(self, id, 0);   /* can re-enter */
        n++;
    }
}

/* remove_all_listeners(event=None) */
PyObject *
emitter_remove_all_listeners(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    static const char *const kwlist[] = {"event", NULL};
    PyObject *event = Py_None;
    if (parse_optional(args, nargs, kwnames, kwlist, "remove_all_listeners", &event) < 0) {
        return NULL;
    }
    if (event != Py_None) {
        uint32_t ev;
        int found = ml_em_lookup_event(self, event, &ev);
        if (found < 0) {
            return NULL;
        }
        if (found) {
            (void)unlink_event(self, ev, self->sl.clock);
        }
        Py_RETURN_NONE;
    }
    uint64_t start = self->sl.clock;
    for (uint32_t ev = 0; ev < self->sl.events.top;) {
        if (self->sl.events.ents[ev].key != NULL && self->sl.ev[ev].live != 0 &&
            unlink_event(self, ev, start) != 0) {
            ev = 0;   /* releases can re-enter: scan again from the start */
            continue;
        }
        ev++;
    }
    Py_RETURN_NONE;
}

/* Parses (event, f=None, *, weak=None) for on/once/add_listener/_ml_add. 0 or -1. */
static int
parse_add(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
          int f_required, PyObject **event, PyObject **f, int *weak)
{
    *event = *f = NULL;
    *weak = -1;
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes 1 or 2 positional arguments (%zd given)",
                     fname, nargs);
        return -1;
    }
    *event = args[0];
    if (nargs == 2) {
        *f = args[1];
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i), *value = args[nargs + i];
        if (PyUnicode_CompareWithASCIIString(name, "weak") == 0) {
            if (value != Py_None) {
                int w = PyObject_IsTrue(value);
                if (w < 0) {
                    return -1;
                }
                *weak = w;
            }
        }
        else if (PyUnicode_CompareWithASCIIString(name, "f") == 0 && *f == NULL) {
            *f = value;
        }
        else {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fname,
                         name);
            return -1;
        }
    }
    if (*f == Py_None) {
        *f = NULL;
    }
    if (f_required && *f == NULL) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument: 'f'", fname);
        return -1;
    }
    return 0;
}

/* A decorator registering its argument: functools.partial(self._ml_add, event, once, weak) */
static PyObject *
make_decorator(EmitterObject *self, PyObject *event, int once, int weak)
{
    PyObject *add = PyObject_GetAttr((PyObject *)self, self->st->str_ml_add);
    if (add == NULL) {
        return NULL;
    }
    PyObject *w = weak < 0 ? Py_NewRef(Py_None) : PyBool_FromLong(weak);
    PyObject *dec = PyObject_CallFunctionObjArgs(self->st->partial, add, event,
                                                 once ? Py_True : Py_False, w, NULL);
    Py_DECREF(w);
    Py_DECREF(add);
    return dec;
}

/* Registers f: through the subclass's _add_event_handler(event, f, v) when it has one (v
 * is f itself for on, a partial of f for once, as pyee passes its once wrapper). */
static int
register_listener(EmitterObject *self, PyObject *event, PyObject *f, int once, int weak)
{
    if (!(self->hooks & HOOK_ADD)) {
        return ml_em_add_listener(self, event, f, once, weak, 1);
    }
    PyObject *v = once ? PyObject_CallOneArg(self->st->partial, f) : Py_NewRef(f);
    if (v == NULL) {
        return -1;
    }
    PyObject *r = NULL;
    if (!Py_EnterRecursiveCall(" in an emitter's _add_event_handler")) {
        r = PyObject_CallMethodObjArgs((PyObject *)self, self->st->str_add_hook, event, f, v,
                                       NULL);
        Py_LeaveRecursiveCall();
    }
    Py_DECREF(v);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* _add_event_handler(event, k, v): pyee's hook; registers k (once when v is not k) */
PyObject *
emitter_add_event_handler(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!ml_em_check_args("_add_event_handler", nargs, 3, 3)) {
        return NULL;
    }
    if (ml_em_add_listener(self, args[0], args[1], args[2] != args[1], -1, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
add_common(EmitterObject *self, const char *fname, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames, int once, int f_required)
{
    PyObject *event, *f;
    int weak;
    if (parse_add(fname, args, nargs, kwnames, f_required, &event, &f, &weak) < 0) {
        return NULL;
    }
    if (f == NULL) {
        return make_decorator(self, event, once, weak);
    }
    if (register_listener(self, event, f, once, weak) < 0) {
        return NULL;
    }
    return Py_NewRef(f);
}

PyObject *
emitter_on(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return add_common(self, "on", args, nargs, kwnames, 0, 0);
}

PyObject *
emitter_once(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return add_common(self, "once", args, nargs, kwnames, 1, 0);
}

PyObject *
emitter_add_listener(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames)
{
    return add_common(self, "add_listener", args, nargs, kwnames, 0, 1);
}

PyObject *
emitter_listens_to(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    PyObject *event, *f;
    int weak;
    if (nargs != 1 || parse_add("listens_to", args, nargs, kwnames, 0, &event, &f, &weak) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "listens_to() takes exactly 1 positional argument");
        }
        return NULL;
    }
    return make_decorator(self, event, 0, weak);
}

/* _ml_add(event, once, weak, f): the decorators' target; returns f */
PyObject *
emitter_ml_add(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!ml_em_check_args("_ml_add", nargs, 4, 4)) {
        return NULL;
    }
    int once = PyObject_IsTrue(args[1]);
    int weak = args[2] == Py_None ? -1 : PyObject_IsTrue(args[2]);
    if (once < 0 || (args[2] != Py_None && weak < 0)) {
        return NULL;
    }
    if (register_listener(self, args[0], args[3], once, weak) < 0) {
        return NULL;
    }
    return Py_NewRef(args[3]);
}
