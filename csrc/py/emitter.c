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
 * Re-entrancy: listeners, __eq__/__hash__ of events and listeners, weakref callbacks and
 * warnings run Python code. No slot pointer is kept across a call (the slab may grow);
 * ids stay valid because nothing is freed while an emit runs, and look-ups that compare
 * with __eq__ restart when the clock moved.
 */
#include "py/emitter.h"

#include <stddef.h>

#include "core/status.h"
#include "structmember.h"

enum { KIND_STRONG = 0, KIND_METHOD = 1, KIND_WEAK = 2, KIND_PARTIAL = 3 };

/* A slot's payload, as the binding handles it outside the slab. */
typedef struct {
    PyObject *p[4];
    uint32_t kind;
} payload;

typedef struct {
    PyWeakReference ref;
    uint32_t slot, gen;     /* ML_NIL until the slot is appended */
} SlotRefObject;

typedef struct {
    PyObject_HEAD
    EmitterObject *owner;   /* borrowed; NULL once the emitter is gone */
} ReaperObject;

#define DEFAULT_MAX_LISTENERS 10

/* ------------------------------------------------------------------------------------
 * Payloads
 */

/* @return the referent of a SlotRef (borrowed), or NULL when it died. */
static inline PyObject *
referent(PyObject *ref)
{
    PyObject *o = PyWeakref_GET_OBJECT(ref);   /* borrowed */
    return o == Py_None ? NULL : o;
}

/* The payload of slot sl, copied out of the slab. */
static inline payload
payload_of(const ml_slot *sl)
{
    payload pl = {{sl->p[0], sl->p[1], sl->p[2], sl->p[3]}, sl->kind};
    return pl;
}

static inline void
payload_store(ml_slot *sl, const payload *pl)
{
    for (int i = 0; i < 4; i++) {
        sl->p[i] = pl->p[i];
    }
    sl->kind = pl->kind;
}

/* Releases what a payload holds (copied out of the slab first). Can re-enter. */
static void
payload_release(payload pl)
{
    if (pl.p[1] != NULL) {
        ((SlotRefObject *)pl.p[1])->slot = ML_NIL;   /* its callback must not touch a new tenant */
    }
    for (int i = 0; i < 4; i++) {
        Py_XDECREF(pl.p[i]);
    }
}

/* A KIND_PARTIAL slot's partial: the registered one while it lives, else an equal one
 * rebuilt around a new bound method. New reference, or NULL (without an exception when
 * the method's object died). */
static PyObject *
partial_callable(EmitterObject *owner, const ml_slot *sl)
{
    PyObject *self = referent(sl->p[1]);
    if (self == NULL) {
        return NULL;
    }
    PyObject *alive = PyWeakref_GET_OBJECT((PyObject *)sl->p[3]);   /* borrowed */
    if (alive != Py_None) {
        return Py_NewRef(alive);
    }
    PyObject *partial = owner->st->partial;
    PyObject *method = PyMethod_New(sl->p[0], self), *r = NULL;
    if (method != NULL) {
        PyObject *bound = PyTuple_GET_ITEM((PyObject *)sl->p[2], 0);
        PyObject *kw = PyTuple_GET_ITEM((PyObject *)sl->p[2], 1);
        PyObject *head = PyTuple_Pack(1, method), *args = head ? PySequence_Concat(head, bound) : NULL;
        if (args != NULL) {
            r = PyObject_Call(partial, args, kw);
        }
        Py_XDECREF(head);
        Py_XDECREF(args);
    }
    Py_XDECREF(method);
    return r;
}

/* The callable a user registered, rebuilt for listeners(): a new reference, or NULL
 * without an exception when its owner died. */
static PyObject *
slot_callable(EmitterObject *owner, const ml_slot *sl)
{
    switch (sl->kind) {
    case KIND_METHOD: {
        PyObject *self = referent(sl->p[1]);
        return self ? PyMethod_New(sl->p[0], self) : NULL;
    }
    case KIND_WEAK: {
        PyObject *f = referent(sl->p[1]);
        return f ? Py_NewRef(f) : NULL;
    }
    case KIND_PARTIAL:
        return partial_callable(owner, sl);
    default:
        return Py_NewRef((PyObject *)sl->p[0]);
    }
}

/* After the core freed a slot of event ev: releases its payload, and the event key
 * (read before the core call) if the event's record went with it. Can re-enter. */
static void
release_freed(EmitterObject *self, payload pl, uint32_t ev, PyObject *evkey)
{
    int gone = ml_slots_event_gone(&self->sl, ev);
    payload_release(pl);   /* can re-enter */
    if (gone) {
        Py_DECREF(evkey);  /* can re-enter */
    }
}

/* Releases tombstones once no emit runs (their payload decrefs can re-enter). */
static void
compact(EmitterObject *self)
{
    while (self->sl.emitting == 0 && self->sl.zombies != ML_NIL) {
        const ml_slot *sl = &self->sl.s[self->sl.zombies];
        uint32_t ev = sl->event;
        payload pl = payload_of(sl);
        PyObject *evkey = self->sl.events.ents[ev].key;   /* borrowed until released */
        (void)ml_slots_pop_zombie(&self->sl);
        release_freed(self, pl, ev, evkey);
    }
}

/* Unlinks live slot id and releases what is no longer needed: the payload at once when
 * no emit runs, else at compaction; the event key when its record went. Can re-enter. */
static void
unlink_slot(EmitterObject *self, uint32_t id, int dead)
{
    ml_slot *sl = &self->sl.s[id];
    uint32_t ev = sl->event;
    payload pl = payload_of(sl);
    PyObject *evkey = self->sl.events.ents[ev].key;   /* borrowed until released below */
    self->reaped += (uint64_t)(dead != 0);
    if (ml_slots_unlink(&self->sl, id, dead)) {
        release_freed(self, pl, ev, evkey);
    }
}

/* ------------------------------------------------------------------------------------
 * Look-ups
 */
static int
event_eq(void *ctx, void *stored, void *key)
{
    (void)ctx;
    return PyObject_RichCompareBool((PyObject *)stored, (PyObject *)key, Py_EQ);   /* can re-enter */
}

/* Finds event's id. 1 found, 0 not, -1 error. Can re-enter (__eq__). */
static int
find_event(EmitterObject *self, PyObject *event, Py_hash_t h, uint32_t *id)
{
    int rc = ml_table_find(&self->sl.events, (uint64_t)h, event, event_eq, NULL, id);
    if (rc == ML_ERR_CHANGED) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the emitter changed during a look-up too many times in a row (an event's "
                        "__eq__ keeps changing it)");
    }
    return rc == ML_OK ? 1 : rc == ML_NOT_FOUND ? 0 : -1;
}

/* Hashes event and finds its id: 1 found, 0 not, -1 error. Can re-enter. */
static int
lookup_event(EmitterObject *self, PyObject *event, uint32_t *id)
{
    Py_hash_t eh = PyObject_Hash(event);
    return eh == -1 ? -1 : find_event(self, event, eh, id);
}

/* Whether slot id holds listener f (hash h). 1, 0, or -1. Can re-enter (__eq__). */
static int
slot_is(EmitterObject *self, uint32_t id, PyObject *f, Py_hash_t h)
{
    const ml_slot *sl = &self->sl.s[id];
    if (sl->hash != (uint64_t)h) {
        return 0;
    }
    switch (sl->kind) {
    case KIND_METHOD: {
        PyObject *obj = referent(sl->p[1]);
        return obj != NULL && PyMethod_Check(f) && PyMethod_GET_SELF(f) == obj &&
               PyMethod_GET_FUNCTION(f) == sl->p[0];
    }
    case KIND_WEAK:
        return referent(sl->p[1]) == f;
    case KIND_PARTIAL:
        return referent(sl->p[1]) != NULL && referent(sl->p[3]) == f;
    default: {
        PyObject *g = Py_NewRef((PyObject *)sl->p[0]);
        int eq = PyObject_RichCompareBool(g, f, Py_EQ);   /* can re-enter */
        Py_DECREF(g);
        return eq;
    }
    }
}

typedef struct {
    EmitterObject *self;
    PyObject *f;
    Py_hash_t fh;
    uint32_t ev;
} listener_query;

/* The listener index's equality: slot (stored as id + 1) against the queried listener. */
static int
listener_eq(void *ctx, void *stored, void *query)
{
    (void)ctx;
    const listener_query *q = query;
    uint32_t id = (uint32_t)((uintptr_t)stored - 1);
    if (q->self->sl.s[id].event != q->ev) {
        return 0;
    }
    return slot_is(q->self, id, q->f, q->fh);   /* can re-enter */
}

/* Finds f among event's live listeners: 1 (*event_id, *slot_id set), 0 (*event_id is
 * ML_NIL when the event has no record), or -1. O(1) through the listener index; restarts
 * when a comparison changed the emitter. Can re-enter. */
static int
find_listener(EmitterObject *self, PyObject *event, Py_hash_t eh, PyObject *f, Py_hash_t fh,
              uint32_t *event_id, uint32_t *slot_id)
{
    for (;;) {
        *event_id = ML_NIL;
        int found = find_event(self, event, eh, event_id);
        if (found <= 0) {
            *event_id = ML_NIL;
            return found;
        }
        uint64_t clock = self->sl.clock;
        listener_query q = {self, f, fh, *event_id};
        int rc = ml_slots_find(&self->sl, *event_id, (uint64_t)fh, listener_eq, NULL, &q, slot_id);
        if (rc == ML_ERR_CALLBACK) {
            return -1;
        }
        if (rc == ML_ERR_CHANGED) {
            PyErr_SetString(PyExc_RuntimeError,
                            "the emitter changed during a look-up too many times in a row (a "
                            "listener's __eq__ keeps changing it)");
            return -1;
        }
        if (self->sl.clock == clock) {
            return rc == ML_OK;
        }
        /* __eq__ added or removed listeners: the event's record may have changed too */
    }
}

/* ------------------------------------------------------------------------------------
 * Emit
 */

/* emit's arguments as pyee's hooks take them: (args tuple, kwargs dict), built once per
 * emit on first need */
typedef struct {
    PyObject *args, *kwargs;
} packed_args;

static int
pack_args(packed_args *pk, PyObject *const *args, size_t nargs, PyObject *kwnames)
{
    if (pk->args != NULL) {
        return 0;
    }
    pk->args = PyTuple_New((Py_ssize_t)nargs);
    pk->kwargs = PyDict_New();
    if (pk->args == NULL || pk->kwargs == NULL) {
        return -1;
    }
    for (size_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(pk->args, (Py_ssize_t)i, Py_NewRef(args[i]));
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        if (PyDict_SetItem(pk->kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + (size_t)i]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Calls the listener of slot id with args[1:] (args[0] is scratch space), through the
 * subclass's _emit_run when it has one. 0 called, 1 skipped (its owner died), -1 error.
 * Can re-enter. */
static int
call_slot(EmitterObject *self, uint32_t id, PyObject **args, size_t nargs, PyObject *kwnames,
          packed_args *pk)
{
    const ml_slot *sl = &self->sl.s[id];
    PyObject *fn, *res;
    if (self->hooks & HOOK_EMIT_RUN) {
        fn = slot_callable(self, sl);
        if (fn == NULL) {
            return PyErr_Occurred() ? -1 : 1;
        }
        if (pack_args(pk, args + 1, nargs, kwnames) < 0) {
            Py_DECREF(fn);
            return -1;
        }
        res = PyObject_CallMethodObjArgs((PyObject *)self, self->st->str_emit_run, fn, pk->args,
                                         pk->kwargs, NULL);   /* can re-enter */
    }
    else if (sl->kind == KIND_PARTIAL) {
        fn = slot_callable(self, sl);   /* the partial itself while it lives */
        if (fn == NULL) {
            return PyErr_Occurred() ? -1 : 1;
        }
        res = PyObject_Vectorcall(fn, args + 1, nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames);
    }
    else if (sl->kind == KIND_METHOD) {
        PyObject *obj = referent(sl->p[1]);
        if (obj == NULL) {
            return 1;
        }
        fn = Py_NewRef((PyObject *)sl->p[0]);
        args[0] = Py_NewRef(obj);
        res = PyObject_Vectorcall(fn, args, nargs + 1, kwnames);   /* can re-enter */
        Py_DECREF(args[0]);
    }
    else {
        PyObject *f = sl->kind == KIND_WEAK ? referent(sl->p[1]) : (PyObject *)sl->p[0];
        if (f == NULL) {
            return 1;
        }
        fn = Py_NewRef(f);
        res = PyObject_Vectorcall(fn, args + 1, nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames);
    }
    Py_DECREF(fn);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

static PyObject *
raise_unhandled_error(EmitterObject *self, PyObject *error)
{
    if (error != NULL && PyExceptionInstance_Check(error) &&
        PyObject_TypeCheck(error, (PyTypeObject *)PyExc_Exception)) {
        PyErr_SetObject((PyObject *)Py_TYPE(error), error);
        return NULL;
    }
    PyObject *shown = error ? error : Py_None;
    PyErr_Format(self->st->PyeeError, "Uncaught, unspecified 'error' event: %S", shown);
    return NULL;
}

/* The live registration, on event, of the callable that tombstone `gone` held: 1 with
 * *id set, 0 (none, or its owner died), -1 error. Can re-enter. */
static int
current_registration(EmitterObject *self, PyObject *event, Py_hash_t eh, uint32_t gone,
                     uint32_t *id)
{
    PyObject *f = slot_callable(self, &self->sl.s[gone]);
    if (f == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_hash_t fh = PyObject_Hash(f);
    uint32_t ev;
    int found = fh == -1 ? -1 : find_listener(self, event, eh, f, fh, &ev, id);
    Py_DECREF(f);
    return found;
}

#define SMALL_ARGS 8

/* The emit loop: 1 handled, 0 not, -1 error. */
static int
emit_event(EmitterObject *self, PyObject *event, PyObject *const *pargs, size_t n,
           PyObject *kwnames)
{
    Py_hash_t h = PyObject_Hash(event);
    if (h == -1) {
        return -1;
    }
    uint32_t ev;
    int found = find_event(self, event, h, &ev);
    if (found <= 0 || self->sl.ev[ev].live == 0) {
        return found < 0 ? -1 : 0;
    }
    size_t nkw = kwnames ? (size_t)PyTuple_GET_SIZE(kwnames) : 0, total = n + nkw;
    PyObject *small[SMALL_ARGS + 1], **args = small;
    if (total + 1 > SMALL_ARGS + 1) {
        args = PyMem_New(PyObject *, total + 1);
        if (args == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    for (size_t i = 0; i < total; i++) {
        args[i + 1] = pargs[i];   /* borrowed: the caller holds them for the call */
    }
    packed_args pk = {NULL, NULL};
    Py_INCREF(self);
    self->sl.emitting++;
    uint64_t start = self->sl.clock;
    int handled = 0, rc = 0;
    for (uint32_t id = self->sl.ev[ev].head; id != ML_NIL; id = self->sl.s[id].next) {
        ml_slot *sl = &self->sl.s[id];
        uint32_t run = id;
        if ((sl->flags & (ML_SLOT_GONE | ML_SLOT_ONCE | ML_SLOT_DEAD)) ==
                (ML_SLOT_GONE | ML_SLOT_ONCE) && sl->added < start && sl->gone >= start) {
            /* a once entry of this emit's snapshot, removed or registered again since:
             * like pyee's once wrapper, it runs if its callable is registered now, and
             * removes that registration */
            int now = current_registration(self, event, h, id, &run);   /* can re-enter */
            if (now < 0) {
                rc = -1;
                break;
            }
            if (!now) {
                continue;
            }
            (void)ml_slots_unlink(&self->sl, run, 0);
        }
        else if (!ml_slots_runs(sl, start)) {
            continue;   /* not in this emit's snapshot */
        }
        else if (sl->flags & ML_SLOT_ONCE) {
            (void)ml_slots_unlink(&self->sl, id, 0);   /* a tombstone: emitting > 0 */
        }
        int called = call_slot(self, run, args, n, kwnames, &pk);   /* can re-enter */
        if (called < 0) {
            rc = -1;
            break;
        }
        handled |= called == 0;
    }
    self->sl.emitting--;
    if (args != small) {
        PyMem_Free(args);
    }
    Py_XDECREF(pk.args);     /* can re-enter: the last references to emit's arguments */
    Py_XDECREF(pk.kwargs);
    if (self->sl.emitting == 0 && self->sl.zombies != ML_NIL) {
        PyObject *et, *ev_, *tb;
        PyErr_Fetch(&et, &ev_, &tb);
        compact(self);   /* can re-enter */
        PyErr_Restore(et, ev_, tb);
    }
    Py_DECREF(self);
    return rc < 0 ? -1 : handled;
}

/* 1 handled, 0 not, -1 error: emit's handlers, through the subclass's _call_handlers
 * when it has one. */
static int
run_handlers(EmitterObject *self, PyObject *event, PyObject *const *pargs, size_t n,
             PyObject *kwnames)
{
    if (!(self->hooks & HOOK_CALL_HANDLERS)) {
        return emit_event(self, event, pargs, n, kwnames);
    }
    packed_args pk = {NULL, NULL};
    int rc = -1;
    if (pack_args(&pk, pargs, n, kwnames) == 0) {
        PyObject *r = PyObject_CallMethodObjArgs((PyObject *)self, self->st->str_call_handlers,
                                                 event, pk.args, pk.kwargs, NULL);
        if (r != NULL) {
            rc = PyObject_IsTrue(r);
            Py_DECREF(r);
        }
    }
    Py_XDECREF(pk.args);
    Py_XDECREF(pk.kwargs);
    return rc;
}

/* pyee's _emit_handle_potential_error: an unhandled "error" event raises. */
static PyObject *
handle_potential_error(EmitterObject *self, PyObject *event, PyObject *error)
{
    int is_error = PyObject_RichCompareBool(event, self->st->str_error, Py_EQ);
    if (is_error < 0) {
        return NULL;
    }
    if (is_error) {
        return raise_unhandled_error(self, error == Py_None ? NULL : error);
    }
    Py_RETURN_NONE;
}

/* emit(event, *args, **kwargs) -> bool */
static PyObject *
emitter_emit(EmitterObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS((size_t)nargsf);
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "emit() missing required argument: 'event'");
        return NULL;
    }
    int handled = run_handlers(self, args[0], args + 1, (size_t)(nargs - 1), kwnames);
    if (handled < 0) {
        return NULL;
    }
    if (!handled) {
        PyObject *error = nargs > 1 ? args[1] : Py_None, *r;
        if (self->hooks & HOOK_HANDLE_ERROR) {
            r = PyObject_CallMethodObjArgs((PyObject *)self, self->st->str_handle_error, args[0],
                                           error, NULL);
        }
        else {
            r = handle_potential_error(self, args[0], error);
        }
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    return PyBool_FromLong(handled);
}

/* _call_handlers(event, args, kwargs) -> bool: pyee's hook (uplift calls it directly) */
static PyObject *
emitter_call_handlers(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!_PyArg_CheckPositional("_call_handlers", nargs, 3, 3)) {
        return NULL;
    }
    if (!PyTuple_Check(args[1]) || (args[2] != Py_None && !PyDict_Check(args[2]))) {
        PyErr_SetString(PyExc_TypeError, "_call_handlers(event, args: tuple, kwargs: dict)");
        return NULL;
    }
    PyObject *tuple = args[1], *kw = args[2] == Py_None ? NULL : args[2];
    Py_ssize_t n = PyTuple_GET_SIZE(tuple), nkw = kw ? PyDict_GET_SIZE(kw) : 0;
    PyObject **stack = PyMem_New(PyObject *, (size_t)(n + nkw + 1));
    PyObject *kwnames = nkw ? PyTuple_New(nkw) : NULL;
    PyObject *result = NULL;
    if (stack == NULL || (nkw && kwnames == NULL)) {
        PyErr_NoMemory();
        goto error;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        stack[i] = Py_NewRef(PyTuple_GET_ITEM(tuple, i));
    }
    Py_ssize_t pos = 0, i = 0;
    PyObject *key, *value;
    while (kw && PyDict_Next(kw, &pos, &key, &value) && i < nkw) {
        PyTuple_SET_ITEM(kwnames, i, Py_NewRef(key));
        stack[n + i] = Py_NewRef(value);
        i++;
    }
    int handled = emit_event(self, args[0], stack, (size_t)n, kwnames);
    for (Py_ssize_t j = 0; j < n + i; j++) {
        Py_DECREF(stack[j]);
    }
    if (handled >= 0) {
        result = PyBool_FromLong(handled);
    }
error:
    PyMem_Free(stack);
    Py_XDECREF(kwnames);
    return result;
}

/* _emit_run(f, args, kwargs): pyee's hook: f(*args, **kwargs) */
static PyObject *
emitter_emit_run(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (!_PyArg_CheckPositional("_emit_run", nargs, 3, 3)) {
        return NULL;
    }
    if (!PyTuple_Check(args[1]) || (args[2] != Py_None && !PyDict_Check(args[2]))) {
        PyErr_SetString(PyExc_TypeError, "_emit_run(f, args: tuple, kwargs: dict)");
        return NULL;
    }
    PyObject *r = PyObject_Call(args[0], args[1], args[2] == Py_None ? NULL : args[2]);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* _emit_handle_potential_error(event, error): pyee's hook */
static PyObject *
emitter_handle_error(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!_PyArg_CheckPositional("_emit_handle_potential_error", nargs, 2, 2)) {
        return NULL;
    }
    return handle_potential_error(self, args[0], args[1]);
}

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

/* A partial of a bound method: its payload, weak on the method's object. 1 done, 0 not
 * such a partial (or weak=False), -1 error. */
static int
partial_payload(EmitterObject *self, PyObject *f, int weak, payload *pl)
{
    PyObject *partial_type = self->st->partial;
    if (weak == 0 || !PyObject_TypeCheck(f, (PyTypeObject *)partial_type)) {
        return 0;
    }
    PyObject *func = PyObject_GetAttrString(f, "func");
    if (func == NULL || !PyMethod_Check(func)) {
        Py_XDECREF(func);
        PyErr_Clear();
        return 0;
    }
    PyObject *args = PyObject_GetAttrString(f, "args");
    PyObject *kw = args ? PyObject_GetAttrString(f, "keywords") : NULL;
    PyObject *bound = kw ? PyTuple_Pack(2, args, kw) : NULL;
    PyObject *me = bound ? PyWeakref_NewRef(f, NULL) : NULL;
    PyObject *ref = me ? new_slotref(self, PyMethod_GET_SELF(func)) : NULL;
    Py_XDECREF(args);
    Py_XDECREF(kw);
    if (ref == NULL) {
        Py_DECREF(func);
        Py_XDECREF(bound);
        Py_XDECREF(me);
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            return 0;   /* not weakly referenceable: held strongly, as a whole */
        }
        return -1;
    }
    pl->p[0] = Py_NewRef(PyMethod_GET_FUNCTION(func));
    pl->p[1] = ref;
    pl->p[2] = bound;
    pl->p[3] = me;
    pl->kind = KIND_PARTIAL;
    Py_DECREF(func);
    return 1;
}

/* Prepares the payload of listener f (new references). weak: -1 default, 0 strong, 1
 * weak. 0 or -1. */
static int
make_payload(EmitterObject *self, PyObject *f, int weak, payload *pl)
{
    memset(pl, 0, sizeof(*pl));
    int rc = partial_payload(self, f, weak, pl);
    if (rc != 0) {
        return rc < 0 ? -1 : 0;
    }
    PyObject *owner = NULL;
    if (weak != 0 && PyMethod_Check(f)) {
        owner = PyMethod_GET_SELF(f);
        pl->kind = KIND_METHOD;
    }
    else if (weak == 1) {
        owner = f;
        pl->kind = KIND_WEAK;
    }
    if (owner != NULL) {
        pl->p[1] = new_slotref(self, owner);
        if (pl->p[1] != NULL) {
            pl->p[0] = pl->kind == KIND_METHOD ? Py_NewRef(PyMethod_GET_FUNCTION(f)) : NULL;
            return 0;
        }
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
            return -1;
        }
        PyErr_Clear();
        if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                             "memleash.EventEmitter: %.200s objects cannot be weakly referenced; "
                             "the listener %R is held strongly", Py_TYPE(owner)->tp_name, f) < 0) {
            return -1;
        }
    }
    pl->kind = KIND_STRONG;
    pl->p[0] = Py_NewRef(f);
    return 0;
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
        return emit_event(self, self->st->str_new_listener, nl_args, 2, NULL) < 0 ? -1 : 0;
    }
    PyObject *r = PyObject_CallMethodObjArgs((PyObject *)self, self->st->str_emit,
                                             self->st->str_new_listener, event, f, NULL);
    Py_XDECREF(r);
    return r != NULL ? 0 : -1;
}

/* The core of on/once/add_listener: pyee's _add_event_handler. notify: emit new_listener
 * first (0 only when restoring a pickled emitter). Returns 0 or -1. */
static int
add_listener(EmitterObject *self, PyObject *event, PyObject *f, int once, int weak, int notify)
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
    int found = find_listener(self, event, eh, f, fh, &ev, &id);   /* can re-enter */
    if (found < 0) {
        payload_release(pl);
        return -1;
    }
    /* from here to the end of the mutation, no Python code runs */
    if (found && self->sl.emitting != 0) {
        /* re-registered during an emit: the emits in flight still see the old entry, as
         * pyee's snapshots hold its old value, so the old slot becomes a tombstone and
         * the new one takes its place in the list */
        int rc = ml_slots_reserve(&self->sl);
        if (rc != ML_OK) {
            payload_release(pl);
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
        old = payload_of(sl);
        sl->flags = (sl->flags & ~(uint32_t)ML_SLOT_ONCE) | (once ? ML_SLOT_ONCE : 0u);
    }
    else {
        int rc = ml_slots_reserve(&self->sl);
        if (rc != ML_OK) {
            payload_release(pl);
            return reserve_failed(rc);
        }
        if (ev == ML_NIL) {
            /* find_listener saw no such event and nothing ran since: add its record */
            ev = ml_slots_add_event(&self->sl, (uint64_t)eh, Py_NewRef(event));
        }
        id = ml_slots_append(&self->sl, ev, once ? ML_SLOT_ONCE : 0u);
    }
    ml_slot *sl = &self->sl.s[id];
    payload_store(sl, &pl);
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
    if (pl.p[1] != NULL && referent(pl.p[1]) == NULL) {
        /* its owner died (a collection during the look-up) before the slot existed */
        payload_release(old);
        unlink_slot(self, id, 1);
        return 0;
    }
    int rc = warn_leak(self, event, ev);
    payload_release(old);   /* can re-enter */
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

/* _remove_listener(event, f): pyee's naked removal, and remove_listener's work: nothing
 * for an unknown event, KeyError for an unknown f */
static PyObject *
emitter_naked_remove(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!_PyArg_CheckPositional("_remove_listener", nargs, 2, 2)) {
        return NULL;
    }
    PyObject *event = args[0], *f = args[1];
    Py_hash_t eh = PyObject_Hash(event), fh;
    if (eh == -1) {
        return NULL;
    }
    uint32_t ev, id;
    int found = find_event(self, event, eh, &ev);
    if (found <= 0 || self->sl.ev[ev].live == 0) {
        return found < 0 ? NULL : Py_NewRef(Py_None);
    }
    if ((fh = PyObject_Hash(f)) == -1) {
        return NULL;
    }
    found = find_listener(self, event, eh, f, fh, &ev, &id);
    if (found < 0) {
        return NULL;
    }
    if (!found) {
        if (ev != ML_NIL) {
            PyErr_SetObject(PyExc_KeyError, f);
            return NULL;
        }
        Py_RETURN_NONE;
    }
    unlink_slot(self, id, 0);   /* can re-enter */
    Py_RETURN_NONE;
}

/* remove_listener(event, f): through the subclass's _remove_listener when it has one */
static PyObject *
emitter_remove_listener(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!_PyArg_CheckPositional("remove_listener", nargs, 2, 2)) {
        return NULL;
    }
    if (self->hooks & HOOK_REMOVE) {
        return PyObject_CallMethodObjArgs((PyObject *)self, self->st->str_remove_hook, args[0],
                                          args[1], NULL);
    }
    return emitter_naked_remove(self, args, nargs);
}

/* Unlinks every live slot of event ev. Can re-enter (payload releases): re-checks. */
static void
unlink_event(EmitterObject *self, uint32_t ev)
{
    void *key = self->sl.events.ents[ev].key;
    for (;;) {
        if (self->sl.events.ents[ev].key != key) {
            return;   /* the record went with its last slot */
        }
        uint32_t id = self->sl.ev[ev].head;
        while (id != ML_NIL && (self->sl.s[id].flags & ML_SLOT_GONE)) {
            id = self->sl.s[id].next;
        }
        if (id == ML_NIL) {
            return;
        }
        unlink_slot(self, id, 0);   /* can re-enter */
    }
}

/* remove_all_listeners(event=None) */
static PyObject *
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
        int found = lookup_event(self, event, &ev);
        if (found < 0) {
            return NULL;
        }
        if (found) {
            unlink_event(self, ev);
        }
        Py_RETURN_NONE;
    }
    for (uint32_t ev = 0; ev < self->sl.events.top;) {
        if (self->sl.events.ents[ev].key != NULL && self->sl.ev[ev].live != 0) {
            unlink_event(self, ev);   /* can re-enter: scan again from the start */
            ev = 0;
            continue;
        }
        ev++;
    }
    Py_RETURN_NONE;
}

/* listeners(event): the live listeners, as registered, in order */
static PyObject *
emitter_listeners(EmitterObject *self, PyObject *event)
{
    uint32_t ev;
    int found = lookup_event(self, event, &ev);
    if (found < 0) {
        return NULL;
    }
    PyObject *list = PyList_New(0);
    if (list == NULL || !found) {
        return list;
    }
    /* building the list runs no Python code (PyMethod_New, PyList_Append), but allocation
     * can collect: ids stay valid (a dying owner only tombstones or frees its own slot) */
    uint64_t clock = self->sl.clock;
    for (uint32_t id = self->sl.ev[ev].head; id != ML_NIL; id = self->sl.s[id].next) {
        if (self->sl.s[id].flags & ML_SLOT_GONE) {
            continue;
        }
        PyObject *f = slot_callable(self, &self->sl.s[id]);
        if (f == NULL) {
            if (PyErr_Occurred()) {
                Py_DECREF(list);
                return NULL;
            }
            continue;
        }
        int rc = PyList_Append(list, f);
        Py_DECREF(f);
        if (rc < 0) {
            Py_DECREF(list);
            return NULL;
        }
        if (self->sl.clock != clock) {
            Py_DECREF(list);   /* a collection changed the listeners: start over */
            return emitter_listeners(self, event);
        }
    }
    return list;
}


/* event_names(): the events with live listeners, as a set */
static PyObject *
emitter_event_names(EmitterObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *names = PySet_New(NULL);
    if (names == NULL) {
        return NULL;
    }
    for (uint32_t ev = 0; ev < self->sl.events.top; ev++) {
        PyObject *key = self->sl.events.ents[ev].key;
        if (key != NULL && self->sl.ev[ev].live != 0) {
            /* set insertion hashes the key: it was hashable when stored; a __hash__ or
             * __eq__ that mutates the emitter only changes what later ids hold */
            Py_INCREF(key);
            int rc = PySet_Add(names, key);
            Py_DECREF(key);
            if (rc < 0) {
                Py_DECREF(names);
                return NULL;
            }
        }
    }
    return names;
}

/* listener_count(event) */
static PyObject *
emitter_listener_count(EmitterObject *self, PyObject *event)
{
    uint32_t ev;
    int found = lookup_event(self, event, &ev);
    if (found < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(found ? self->sl.ev[ev].live : 0);
}

static PyObject *
emitter_set_max_listeners(EmitterObject *self, PyObject *n)
{
    Py_ssize_t v = PyNumber_AsSsize_t(n, PyExc_OverflowError);
    if (v == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (v < 0) {
        PyErr_SetString(PyExc_ValueError, "max listeners must be >= 0 (0: unlimited)");
        return NULL;
    }
    self->max_listeners = v;
    Py_RETURN_NONE;
}

static PyObject *
emitter_get_max_listeners(EmitterObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->max_listeners);
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
        return add_listener(self, event, f, once, weak, 1);
    }
    PyObject *v = once ? PyObject_CallOneArg(self->st->partial, f) : Py_NewRef(f);
    if (v == NULL) {
        return -1;
    }
    PyObject *r = PyObject_CallMethodObjArgs((PyObject *)self, self->st->str_add_hook, event, f,
                                             v, NULL);
    Py_DECREF(v);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* _add_event_handler(event, k, v): pyee's hook; registers k (once when v is not k) */
static PyObject *
emitter_add_event_handler(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!_PyArg_CheckPositional("_add_event_handler", nargs, 3, 3)) {
        return NULL;
    }
    if (add_listener(self, args[0], args[1], args[2] != args[1], -1, 1) < 0) {
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

static PyObject *
emitter_on(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return add_common(self, "on", args, nargs, kwnames, 0, 0);
}

static PyObject *
emitter_once(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return add_common(self, "once", args, nargs, kwnames, 1, 0);
}

static PyObject *
emitter_add_listener(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames)
{
    return add_common(self, "add_listener", args, nargs, kwnames, 0, 1);
}

static PyObject *
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
static PyObject *
emitter_ml_add(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!_PyArg_CheckPositional("_ml_add", nargs, 4, 4)) {
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

/* _lock: a threading-style lock, made on first use (pyee's subclasses take it) */
static PyObject *
emitter_get_lock(EmitterObject *self, void *Py_UNUSED(c))
{
    if (self->lock == NULL) {
        self->lock = PyObject_CallNoArgs(self->st->allocate_lock);
        if (self->lock == NULL) {
            return NULL;
        }
    }
    return Py_NewRef(self->lock);
}

static PyObject *
emitter_sizeof(EmitterObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSize_t((size_t)Py_TYPE(self)->tp_basicsize + ml_slots_sizeof(&self->sl));
}

/* _ml_stats(): what memleash.report() shows of this emitter, as a dict of plain values. */
static PyObject *
emitter_stats(EmitterObject *self, PyObject *Py_UNUSED(ignored))
{
    size_t events = 0, live = 0, weak = 0;
    for (uint32_t ev = 0; ev < self->sl.events.top; ev++) {
        if (self->sl.events.ents[ev].key != NULL && self->sl.ev[ev].live > 0) {
            events++;
            live += self->sl.ev[ev].live;
        }
    }
    for (uint32_t id = 0; id < self->sl.top; id++) {
        const ml_slot *sl = &self->sl.s[id];
        weak += !(sl->flags & (ML_SLOT_FREE | ML_SLOT_GONE)) && sl->p[1] != NULL;
    }
    PyObject *dict = Py_BuildValue(
        "{s:n,s:n,s:n,s:K,s:K,s:n,s:n}",
        "events", (Py_ssize_t)events,
        "listeners", (Py_ssize_t)live,
        "weak_listeners", (Py_ssize_t)weak,
        "listeners_removed", (unsigned long long)self->reaped,
        "leak_warnings", (unsigned long long)self->leak_warnings,
        "max_listeners", self->max_listeners,
        "own_bytes", (Py_ssize_t)((size_t)Py_TYPE(self)->tp_basicsize + ml_slots_sizeof(&self->sl)));
    if (dict == NULL || ml_reg_describe(&self->reg, dict) < 0) {
        Py_XDECREF(dict);
        return NULL;
    }
    return dict;
}

/* _ml_referents: what the emitter holds (event keys, listeners, functions, weakrefs —
 * never a weak listener's object), as a list, for pympler.asizeof (module.h). */
static PyObject *
emitter_get_referents(EmitterObject *self, void *Py_UNUSED(c))
{
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    /* borrowed pointers are appended one by one: PyList_Append runs no Python code, so
     * the emitter cannot change during the walk */
    for (uint32_t ev = 0; ev < self->sl.events.top; ev++) {
        PyObject *key = self->sl.events.ents[ev].key;
        if (key != NULL && PyList_Append(list, key) < 0) {
            goto error;
        }
    }
    for (uint32_t id = 0; id < self->sl.top; id++) {
        const ml_slot *sl = &self->sl.s[id];
        if (sl->flags & ML_SLOT_FREE) {
            continue;
        }
        for (int i = 0; i < 4; i++) {
            if (sl->p[i] != NULL && PyList_Append(list, (PyObject *)sl->p[i]) < 0) {
                goto error;
            }
        }
    }
    return list;
error:
    Py_DECREF(list);
    return NULL;
}

/* _events: a read-only snapshot, event -> read-only {listener: listener}, for code that
 * inspects pyee's attribute (live listeners only; once-ness is not shown) */
static PyObject *
emitter_get_events(EmitterObject *self, void *Py_UNUSED(c))
{
    PyObject *events = PyDict_New();
    if (events == NULL) {
        return NULL;
    }
    PyObject *names = emitter_event_names(self, NULL);
    PyObject *it = names ? PyObject_GetIter(names) : NULL, *event;
    Py_XDECREF(names);
    if (it == NULL) {
        goto error;
    }
    while ((event = PyIter_Next(it)) != NULL) {
        PyObject *fs = emitter_listeners(self, event), *inner = NULL, *proxy = NULL;
        if (fs != NULL && (inner = PyDict_New()) != NULL) {
            Py_ssize_t i = 0;
            for (; i < PyList_GET_SIZE(fs); i++) {
                PyObject *f = PyList_GET_ITEM(fs, i);
                if (PyDict_SetItem(inner, f, f) < 0) {
                    break;
                }
            }
            if (i == PyList_GET_SIZE(fs)) {
                proxy = PyDictProxy_New(inner);
            }
        }
        int rc = proxy ? PyDict_SetItem(events, event, proxy) : -1;
        Py_XDECREF(proxy);
        Py_XDECREF(inner);
        Py_XDECREF(fs);
        Py_DECREF(event);
        if (rc < 0) {
            Py_DECREF(it);
            goto error;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        goto error;
    }
    PyObject *view = PyDictProxy_New(events);
    Py_DECREF(events);
    return view;
error:
    Py_DECREF(events);
    return NULL;
}

/* __getstate__: (instance dict, max listeners, [(event, [(listener, once), ...]), ...]).
 * Strongly held listeners only: a weak one's object would die on unpickling anyway, so
 * weak listeners are dropped, with one warning. */
static PyObject *
emitter_getstate(EmitterObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *events = PyList_New(0);
    if (events == NULL) {
        return NULL;
    }
    Py_ssize_t dropped = 0;
    for (uint32_t ev = 0; ev < self->sl.events.top; ev++) {
        PyObject *event = self->sl.events.ents[ev].key;
        if (event == NULL || self->sl.ev[ev].live == 0) {
            continue;
        }
        PyObject *fs = PyList_New(0);
        if (fs == NULL) {
            goto error;
        }
        /* no Python code runs in this loop: tuples and lists of existing objects */
        for (uint32_t id = self->sl.ev[ev].head; id != ML_NIL; id = self->sl.s[id].next) {
            const ml_slot *sl = &self->sl.s[id];
            if (sl->flags & ML_SLOT_GONE) {
                continue;
            }
            if (sl->kind != KIND_STRONG) {
                dropped++;
                continue;
            }
            PyObject *item = Py_BuildValue("(OO)", (PyObject *)sl->p[0],
                                           (sl->flags & ML_SLOT_ONCE) ? Py_True : Py_False);
            if (item == NULL || PyList_Append(fs, item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(fs);
                goto error;
            }
            Py_DECREF(item);
        }
        PyObject *pair = PyTuple_Pack(2, event, fs);
        Py_DECREF(fs);
        if (pair == NULL || PyList_Append(events, pair) < 0) {
            Py_XDECREF(pair);
            goto error;
        }
        Py_DECREF(pair);
    }
    if (dropped && PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                                    "memleash.EventEmitter: %zd weakly held listener(s) not "
                                    "pickled (their objects would not outlive unpickling)",
                                    dropped) < 0) {
        goto error;
    }
    PyObject *dict = self->dict && PyDict_GET_SIZE(self->dict) ? self->dict : Py_None;
    PyObject *state = Py_BuildValue("(OnO)", dict, self->max_listeners, events);
    Py_DECREF(events);
    return state;
error:
    Py_DECREF(events);
    return NULL;
}

static PyObject *
emitter_setstate(EmitterObject *self, PyObject *state)
{
    PyObject *dict, *events;
    Py_ssize_t max_listeners;
    if (!PyTuple_Check(state) ||
        !PyArg_ParseTuple(state, "OnO!:EventEmitter.__setstate__", &dict, &max_listeners,
                          &PyList_Type, &events)) {
        if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "invalid EventEmitter state");
        }
        return NULL;
    }
    if (max_listeners < 0) {
        PyErr_SetString(PyExc_ValueError, "invalid EventEmitter state");
        return NULL;
    }
    Py_INCREF(events);
    if (dict != Py_None) {
        PyObject *mine = PyObject_GenericGetDict((PyObject *)self, NULL);
        int rc = mine ? PyDict_Update(mine, dict) : -1;
        Py_XDECREF(mine);
        if (rc < 0) {
            goto error;
        }
    }
    self->max_listeners = max_listeners;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(events); i++) {
        PyObject *pair = PyList_GET_ITEM(events, i), *event, *fs;
        if (!PyTuple_Check(pair) || !PyArg_ParseTuple(pair, "OO!", &event, &PyList_Type, &fs)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "invalid EventEmitter state");
            goto error;
        }
        Py_INCREF(pair);   /* event is borrowed from it across Python code */
        Py_INCREF(fs);
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(fs); j++) {
            PyObject *f, *once, *item = PyList_GET_ITEM(fs, j);
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
                PyErr_SetString(PyExc_TypeError, "invalid EventEmitter state");
                Py_DECREF(fs);
                Py_DECREF(pair);
                goto error;
            }
            f = PyTuple_GET_ITEM(item, 0);
            once = PyTuple_GET_ITEM(item, 1);
            Py_INCREF(item);   /* f and once are borrowed from it across Python code */
            int rc = add_listener(self, event, f, PyObject_IsTrue(once) == 1, 0, 0);
            Py_DECREF(item);
            if (rc < 0) {
                Py_DECREF(fs);
                Py_DECREF(pair);
                goto error;
            }
        }
        Py_DECREF(fs);
        Py_DECREF(pair);
    }
    Py_DECREF(events);
    Py_RETURN_NONE;
error:
    Py_DECREF(events);
    return NULL;
}

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
    EmitterObject *self = (EmitterObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
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
    self->reaper = (PyObject *)reaper;
    ml_reg_link(st, &self->reg, (PyObject *)self);
    return (PyObject *)self;
}

/* EventEmitter(*, name=None). A subclass's own __init__ may take other arguments (its
 * constructor call reaches here only through super().__init__). */
static int
emitter_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    EmitterObject *em = (EmitterObject *)self;
    PyObject *name = NULL;   /* borrowed from kwds */
    Py_ssize_t nkw = kwds != NULL ? PyDict_GET_SIZE(kwds) : 0;
    if (nkw > 0 && (name = PyDict_GetItemWithError(kwds, em->st->str_name)) == NULL &&
        PyErr_Occurred()) {
        return -1;
    }
    if (PyTuple_GET_SIZE(args) != 0 || nkw > (name != NULL)) {
        if (Py_TYPE(self)->tp_init == emitter_init) {
            PyErr_SetString(PyExc_TypeError,
                            "EventEmitter() takes no positional arguments and only the "
                            "keyword argument 'name'");
            return -1;
        }
    }
    return name != NULL ? ml_reg_set_name(&em->reg, name) : 0;
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
    /* steal everything first, release after: the releases can re-enter */
    ml_slots old = self->sl;
    ml_slots_init(&self->sl, &ml_alloc_pymem);
    for (uint32_t id = 0; id < old.top; id++) {
        ml_slot *sl = &old.s[id];
        if (!(sl->flags & ML_SLOT_FREE)) {
            payload_release(payload_of(sl));
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
    Py_DECREF(tp);   /* inside: a dealloc the trashcan defers runs all of this later */
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

PyType_Spec slotref_spec = {
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
    EmitterObject *em = self->owner;
    if (em == NULL || !PyObject_TypeCheck(ref, em->st->SlotRefType)) {
        Py_RETURN_NONE;
    }
    SlotRefObject *sr = (SlotRefObject *)ref;
    uint32_t id = sr->slot;
    if (id == ML_NIL || id >= em->sl.top || em->sl.s[id].gen != sr->gen ||
        em->sl.s[id].p[1] != ref || (em->sl.s[id].flags & (ML_SLOT_GONE | ML_SLOT_FREE))) {
        Py_RETURN_NONE;   /* already unlinked */
    }
    Py_INCREF(em);
    unlink_slot(em, id, 1);   /* can re-enter */
    Py_DECREF(em);
    Py_RETURN_NONE;
}

static void
reaper_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_Free(self);
    Py_DECREF(tp);
}

static PyType_Slot reaper_slots[] = {
    {Py_tp_call, reaper_call},
    {Py_tp_dealloc, reaper_dealloc},
    {0, NULL},
};

PyType_Spec reaper_spec = {
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

static PyMethodDef emitter_methods[] = {
    {"emit", (PyCFunction)(void (*)(void))emitter_emit, METH_FASTCALL | METH_KEYWORDS,
     "emit($self, event, /, *args, **kwargs)\n--\n\n"
     "Call the listeners of event with args and kwargs; True if any ran."},
    {"on", (PyCFunction)(void (*)(void))emitter_on, METH_FASTCALL | METH_KEYWORDS,
     "on($self, event, /, f=None, *, weak=None)\n--\n\n"
     "Register f for event and return it; without f, a decorator that does."},
    {"add_listener", (PyCFunction)(void (*)(void))emitter_add_listener,
     METH_FASTCALL | METH_KEYWORDS,
     "add_listener($self, event, /, f, *, weak=None)\n--\n\nRegister f for event; return f."},
    {"listens_to", (PyCFunction)(void (*)(void))emitter_listens_to, METH_FASTCALL | METH_KEYWORDS,
     "listens_to($self, event, /, *, weak=None)\n--\n\n"
     "A decorator registering its function for event."},
    {"once", (PyCFunction)(void (*)(void))emitter_once, METH_FASTCALL | METH_KEYWORDS,
     "once($self, event, /, f=None, *, weak=None)\n--\n\n"
     "Like on(), but f is removed when it first runs."},
    {"_ml_add", (PyCFunction)(void (*)(void))emitter_ml_add, METH_FASTCALL,
     "_ml_add(event, once, weak, f): the decorators' target."},
    {"remove_listener", (PyCFunction)(void (*)(void))emitter_remove_listener, METH_FASTCALL,
     "remove_listener($self, event, f, /)\n--\n\n"
     "Unregister f (KeyError if event has listeners but not f)."},
    {"remove_all_listeners", (PyCFunction)(void (*)(void))emitter_remove_all_listeners,
     METH_FASTCALL | METH_KEYWORDS,
     "remove_all_listeners($self, /, event=None)\n--\n\n"
     "Unregister every listener of event, or of every event when event is None."},
    {"listeners", (PyCFunction)emitter_listeners, METH_O,
     "listeners($self, event, /)\n--\n\nA list of the live listeners of event."},
    {"event_names", (PyCFunction)emitter_event_names, METH_NOARGS,
     "event_names($self, /)\n--\n\nThe set of events with listeners."},
    {"listener_count", (PyCFunction)emitter_listener_count, METH_O,
     "listener_count($self, event, /)\n--\n\nHow many live listeners event has."},
    {"set_max_listeners", (PyCFunction)emitter_set_max_listeners, METH_O,
     "set_max_listeners($self, n, /)\n--\n\n"
     "Warn (ListenerLeakWarning) beyond n listeners of one event; 0: never."},
    {"get_max_listeners", (PyCFunction)emitter_get_max_listeners, METH_NOARGS,
     "get_max_listeners($self, /)\n--\n\nThe leak-warning threshold set_max_listeners() set."},
    {"_call_handlers", (PyCFunction)(void (*)(void))emitter_call_handlers, METH_FASTCALL,
     "_call_handlers($self, event, args, kwargs, /)\n--\n\n"
     "Run event's listeners; True if any ran (pyee's hook)."},
    {"_emit_run", (PyCFunction)(void (*)(void))emitter_emit_run, METH_FASTCALL,
     "_emit_run($self, f, args, kwargs, /)\n--\n\n"
     "Call one listener (pyee's hook; override to schedule)."},
    {"_add_event_handler", (PyCFunction)(void (*)(void))emitter_add_event_handler,
     METH_FASTCALL,
     "_add_event_handler($self, event, k, v, /)\n--\n\n"
     "Register k (pyee's hook; once if v is not k)."},
    {"_remove_listener", (PyCFunction)(void (*)(void))emitter_naked_remove, METH_FASTCALL,
     "_remove_listener($self, event, f, /)\n--\n\nRemove f (pyee's hook)."},
    {"_emit_handle_potential_error", (PyCFunction)(void (*)(void))emitter_handle_error,
     METH_FASTCALL,
     "_emit_handle_potential_error($self, event, error, /)\n--\n\n"
     "Raise for an unhandled 'error' event (pyee's hook)."},
    {"__getstate__", (PyCFunction)emitter_getstate, METH_NOARGS,
     "The strongly held listeners, settings and instance dict (weak listeners are dropped)."},
    {"__setstate__", (PyCFunction)emitter_setstate, METH_O, "Restores __getstate__'s state."},
    {"_ml_stats", (PyCFunction)emitter_stats, METH_NOARGS,
     "What memleash.report() shows of this emitter (a dict)."},
    {"__sizeof__", (PyCFunction)emitter_sizeof, METH_NOARGS,
     "__sizeof__($self, /)\n--\n\n"
     "Size in bytes: the object and the slot arrays it owns (not the listeners)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef emitter_getset[] = {
    {"_lock", (getter)emitter_get_lock, NULL, "A lock, as pyee's emitters carry.", NULL},
    {"_ml_referents", (getter)emitter_get_referents, NULL,
     "What the emitter holds, as a list: what pympler.asizeof follows (see __slots__).", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {"_events", (getter)emitter_get_events, NULL,
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
    {Py_tp_init, emitter_init},
    {Py_tp_dealloc, emitter_dealloc},
    {Py_tp_traverse, emitter_traverse},
    {Py_tp_clear, emitter_tp_clear},
    {Py_tp_methods, emitter_methods},
    {Py_tp_getset, emitter_getset},
    {Py_tp_members, emitter_members},
    {0, NULL},
};

static PyType_Spec emitter_spec = {
    .name = "memleash.EventEmitter",
    .basicsize = sizeof(EmitterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = emitter_slots,
};

int
ml_emitter_module_exec(PyObject *module, ml_state *st)
{
    PyObject *bases = PyTuple_Pack(1, (PyObject *)&_PyWeakref_RefType);
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
