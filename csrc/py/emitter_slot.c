/* emitter_slot.c — the lowest layer of the emitter (the order is in emitter.h): what a
 * listener's slot holds and how it is turned back into the callable a user registered;
 * unlinking a slot and compacting tombstones, with the releases that can re-enter; and
 * the look-ups, of an event by its key and of a listener among an event's slots, whose
 * __eq__ calls can re-enter (see the note on re-entrancy in emitter.c).
 */
#include "py/emitter.h"

#include "core/status.h"

/* ------------------------------------------------------------------------------------
 * Payloads
 *
 * A payload's pointers belong to its slot, and its slot to the slab, which grows (moves)
 * and frees slots under any call that can run code: a listener, __eq__, a finalizer or
 * weakref callback run by a collection at an allocation, a decref. So whatever works on
 * a payload across such a call holds it (ml_em_payload_hold: a new reference to each
 * pointer, taken by increfs alone) and reads an owner through its weak reference as a
 * new reference (ml_weak_get), never as a borrowed pointer.
 */

void
ml_em_payload_release(payload pl)
{
    if (pl.p[1] != NULL) {
        ((SlotRefObject *)pl.p[1])->slot = ML_NIL;   /* its callback must not touch a new tenant */
    }
    for (int i = 0; i < 4; i++) {
        Py_XDECREF(pl.p[i]);
    }
}

payload
ml_em_payload_hold(const ml_slot *sl)
{
    payload pl = ml_em_payload_of(sl);
    for (int i = 0; i < 4; i++) {
        Py_XINCREF(pl.p[i]);
    }
    return pl;
}

void
ml_em_payload_drop(payload pl)
{
    for (int i = 0; i < 4; i++) {
        Py_XDECREF(pl.p[i]);   /* can re-enter */
    }
}

int
ml_em_weak_is(PyObject *ref, PyObject *obj)
{
    PyObject *o = ml_weak_get(ref);
    int is = o != NULL && o == obj;
    Py_XDECREF(o);   /* not the last reference: nothing ran since it was alive */
    return is;
}

PyObject *
ml_em_bind(PyObject *descr, PyObject *owner)
{
    descrgetfunc get = (descrgetfunc)PyType_GetSlot(Py_TYPE(descr), Py_tp_descr_get);
    if (get == NULL) {
        PyErr_Format(PyExc_TypeError, "%.200s is not a descriptor", Py_TYPE(descr)->tp_name);
        return NULL;
    }
    if (Py_IS_TYPE(descr, &PyClassMethodDescr_Type)) {
        return get(descr, NULL, owner);   /* a class method: bound to the class */
    }
    return get(descr, owner, (PyObject *)Py_TYPE(owner));
}

/* The method of a KIND_METHOD or KIND_PARTIAL payload bound to owner again: a bound
 * method, or for KIND_C a built-in method or method-wrapper. New reference or NULL. */
static PyObject *
rebind(const payload *pl, PyObject *owner)
{
    return (pl->kind & KIND_C) ? ml_em_bind(pl->p[0], owner) : PyMethod_New(pl->p[0], owner);
}

/* A KIND_PARTIAL payload's partial: the registered one while it lives, else an equal one
 * rebuilt around a new bound method. New reference, or NULL (without an exception when
 * the method's object died). @pre pl is held. */
static PyObject *
partial_callable(EmitterObject *em, const payload *pl)
{
    PyObject *alive = ml_weak_get(pl->p[3]);
    if (alive != NULL) {
        return alive;
    }
    PyObject *self = ml_weak_get(pl->p[1]);   /* strong across the allocations below */
    if (self == NULL) {
        return NULL;
    }
    PyObject *bound = PyTuple_GET_ITEM(pl->p[2], 0), *kw = PyTuple_GET_ITEM(pl->p[2], 1);
    Py_ssize_t n = PyTuple_GET_SIZE(bound);
    PyObject *method = rebind(pl, self), *r = NULL;
    PyObject *args = method ? PyTuple_New(n + 1) : NULL;
    /* a copy: functools.partial adopts a keywords dict nobody else references, and the
     * partial handed out must not share the one this payload keeps */
    PyObject *kwcopy = args ? PyDict_Copy(kw) : NULL;
    if (kwcopy != NULL) {
        PyTuple_SET_ITEM(args, 0, Py_NewRef(method));
        for (Py_ssize_t i = 0; i < n; i++) {
            PyTuple_SET_ITEM(args, i + 1, Py_NewRef(PyTuple_GET_ITEM(bound, i)));
        }
        r = PyObject_Call(em->st->partial, args, kwcopy);
    }
    Py_XDECREF(kwcopy);
    Py_XDECREF(args);
    Py_XDECREF(method);
    Py_DECREF(self);
    return r;
}

PyObject *
ml_em_callable(EmitterObject *em, const payload *pl)
{
    switch (ML_EM_BASE(pl->kind)) {
    case KIND_METHOD: {
        PyObject *self = ml_weak_get(pl->p[1]);   /* strong: binding allocates, can collect */
        PyObject *m = self ? rebind(pl, self) : NULL;
        Py_XDECREF(self);
        return m;
    }
    case KIND_WEAK:
        return ml_weak_get(pl->p[1]);
    case KIND_PARTIAL:
        return partial_callable(em, pl);
    default:
        return Py_NewRef(pl->p[0]);
    }
}

PyObject *
ml_em_callable_out(EmitterObject *em, uint32_t id, uint32_t gen, const payload *pl)
{
    PyObject *f = ml_em_callable(em, pl);
    if (f == NULL || ML_EM_BASE(pl->kind) != KIND_PARTIAL || ml_em_weak_is(pl->p[3], f)) {
        return f;
    }
    /* rebuilt: the registered partial died. The one handed out becomes the listener's
     * identity (pyee's listeners() returns the registered objects, which remove_listener
     * accepts): its weak reference and hash replace the dead one's */
    Py_hash_t h = PyObject_Hash(f);   /* a partial's: its identity, no code runs */
    PyObject *ref = h == -1 ? NULL : PyWeakref_NewRef(f, NULL);   /* can collect */
    if (ref == NULL) {
        Py_DECREF(f);
        return NULL;
    }
    ml_slot *sl = id < em->sl.top ? &em->sl.s[id] : NULL;
    if (sl == NULL || sl->gen != gen || (sl->flags & (ML_SLOT_GONE | ML_SLOT_FREE)) ||
        sl->p[3] != pl->p[3] || ml_slots_reserve(&em->sl) != ML_OK) {
        Py_DECREF(ref);   /* the slot changed meanwhile (or no room): f stays a copy */
        return f;
    }
    sl = &em->sl.s[id];   /* the reservation may have moved the slab */
    ml_slots_rehash(&em->sl, id, (uint64_t)h);
    sl->p[3] = ref;
    Py_DECREF(pl->p[3]);  /* the slot's reference; pl still holds one, so no dealloc here */
    return f;
}

PyObject *
ml_em_slot_callable(EmitterObject *em, uint32_t id)
{
    payload pl = ml_em_payload_hold(&em->sl.s[id]);
    PyObject *f = ml_em_callable(em, &pl);
    ml_em_payload_drop(pl);   /* can re-enter */
    return f;
}

int
ml_em_snapshot_take(EmitterObject *em, uint32_t ev, ml_em_snapshot *snap)
{
    uint32_t n = em->sl.ev[ev].live;
    snap->n = 0;
    snap->v = PyMem_New(ml_em_held, n ? n : 1);   /* PyMem: no collection */
    if (snap->v == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (uint32_t id = em->sl.ev[ev].head; id != ML_NIL && snap->n < n; id = em->sl.s[id].next) {
        const ml_slot *sl = &em->sl.s[id];
        if (!(sl->flags & ML_SLOT_GONE)) {
            snap->v[snap->n].pl = ml_em_payload_hold(sl);
            snap->v[snap->n].flags = sl->flags;
            snap->v[snap->n].id = id;
            snap->v[snap->n].gen = sl->gen;
            snap->n++;
        }
    }
    return 0;
}

void
ml_em_snapshot_drop(ml_em_snapshot *snap)
{
    ml_em_held *v = snap->v;
    uint32_t n = snap->n;
    snap->v = NULL;
    snap->n = 0;
    for (uint32_t i = 0; i < n; i++) {
        ml_em_payload_drop(v[i].pl);   /* can re-enter */
    }
    PyMem_Free(v);
}

/* After the core freed a slot of event ev: releases its payload, and the event key
 * (read before the core call) if the event's record went with it. Can re-enter. */
static void
release_freed(EmitterObject *self, payload pl, uint32_t ev, PyObject *evkey)
{
    int gone = ml_slots_event_gone(&self->sl, ev);
    ml_em_payload_release(pl);   /* can re-enter */
    if (gone) {
        Py_DECREF(evkey);  /* can re-enter */
    }
}

/* Releases tombstones once no emit runs (their payload decrefs can re-enter). */
void
ml_em_compact(EmitterObject *self)
{
    while (self->sl.emitting == 0 && self->sl.zombies != ML_NIL) {
        const ml_slot *sl = &self->sl.s[self->sl.zombies];
        uint32_t ev = sl->event;
        payload pl = ml_em_payload_of(sl);
        PyObject *evkey = self->sl.events.ents[ev].key;   /* borrowed until released */
        (void)ml_slots_pop_zombie(&self->sl);
        release_freed(self, pl, ev, evkey);
    }
}

/* Unlinks live slot id and releases what is no longer needed: the payload at once when
 * no emit runs, else at compaction; the event key when its record went. Can re-enter. */
void
ml_em_unlink_slot(EmitterObject *self, uint32_t id, int dead)
{
    ml_slot *sl = &self->sl.s[id];
    uint32_t ev = sl->event;
    payload pl = ml_em_payload_of(sl);
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

/* RuntimeError for a look-up that __eq__ kept restarting (the table's bound, or the
 * listener look-up's own, ML_TABLE_MAX_RESTARTS). */
static void
changed_too_often(void)
{
    PyErr_Format(PyExc_RuntimeError,
                 "the emitter changed during a look-up %d times in a row (an event's or a "
                 "listener's __eq__ keeps changing it)", ML_TABLE_MAX_RESTARTS);
}

/* Finds event's id. 1 found, 0 not, -1 error. Can re-enter (__eq__). */
int
ml_em_find_event(EmitterObject *self, PyObject *event, Py_hash_t h, uint32_t *id)
{
    int rc = ml_table_find(&self->sl.events, (uint64_t)h, event, event_eq, NULL, id);
    if (rc == ML_ERR_CHANGED) {
        changed_too_often();
    }
    return rc == ML_OK ? 1 : rc == ML_NOT_FOUND ? 0 : -1;
}

/* Hashes event and finds its id: 1 found, 0 not, -1 error. Can re-enter. */
int
ml_em_lookup_event(EmitterObject *self, PyObject *event, uint32_t *id)
{
    Py_hash_t eh = PyObject_Hash(event);
    return eh == -1 ? -1 : ml_em_find_event(self, event, eh, id);
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
    case KIND_METHOD:
        /* f holds its self: compared by identity with the owner, read strongly */
        return PyMethod_Check(f) && PyMethod_GET_FUNCTION(f) == sl->p[0] &&
               ml_em_weak_is(sl->p[1], PyMethod_GET_SELF(f));
    case KIND_METHOD | KIND_C: {
        if (!PyCFunction_Check(f) && !ml_em_is_method_wrapper(f)) {
            return 0;
        }
        /* bound again and compared: built-in methods and method-wrappers are equal when
         * they bind the same function to the same object (no user code runs) */
        payload pl = ml_em_payload_hold(sl);
        PyObject *g = ml_em_callable(self, &pl);
        int eq = g != NULL ? PyObject_RichCompareBool(g, f, Py_EQ) : (PyErr_Occurred() ? -1 : 0);
        Py_XDECREF(g);
        ml_em_payload_drop(pl);
        return eq;
    }
    case KIND_WEAK:
        return ml_em_weak_is(sl->p[1], f);
    case KIND_PARTIAL:
    case KIND_PARTIAL | KIND_C:
        return ml_em_weak_is(sl->p[3], f);   /* a live partial keeps its method's object */
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
int
ml_em_find_listener(EmitterObject *self, PyObject *event, Py_hash_t eh, PyObject *f, Py_hash_t fh,
              uint32_t *event_id, uint32_t *slot_id)
{
    int restarts = 0;
    for (;;) {
        *event_id = ML_NIL;
        int found = ml_em_find_event(self, event, eh, event_id);
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
        if (rc == ML_ERR_CHANGED || ++restarts > ML_TABLE_MAX_RESTARTS) {
            changed_too_often();
            return -1;
        }
        if (self->sl.clock == clock) {
            return rc == ML_OK;
        }
        /* __eq__ added or removed listeners: the event's record may have changed too */
    }
}
