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
 */

/* @return the referent of a SlotRef (borrowed), or NULL when it died. */
PyObject *
ml_em_referent(PyObject *ref)
{
    PyObject *o = PyWeakref_GET_OBJECT(ref);   /* borrowed */
    return o == Py_None ? NULL : o;
}

/* Releases what a payload holds (copied out of the slab first). Can re-enter. */
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

/* A KIND_PARTIAL slot's partial: the registered one while it lives, else an equal one
 * rebuilt around a new bound method. New reference, or NULL (without an exception when
 * the method's object died). */
static PyObject *
partial_callable(EmitterObject *owner, const ml_slot *sl)
{
    PyObject *self = ml_em_referent(sl->p[1]);
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
PyObject *
ml_em_slot_callable(EmitterObject *owner, const ml_slot *sl)
{
    switch (sl->kind) {
    case KIND_METHOD: {
        PyObject *self = ml_em_referent(sl->p[1]);
        return self ? PyMethod_New(sl->p[0], self) : NULL;
    }
    case KIND_WEAK: {
        PyObject *f = ml_em_referent(sl->p[1]);
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

/* Finds event's id. 1 found, 0 not, -1 error. Can re-enter (__eq__). */
int
ml_em_find_event(EmitterObject *self, PyObject *event, Py_hash_t h, uint32_t *id)
{
    int rc = ml_table_find(&self->sl.events, (uint64_t)h, event, event_eq, NULL, id);
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
    case KIND_METHOD: {
        PyObject *obj = ml_em_referent(sl->p[1]);
        return obj != NULL && PyMethod_Check(f) && PyMethod_GET_SELF(f) == obj &&
               PyMethod_GET_FUNCTION(f) == sl->p[0];
    }
    case KIND_WEAK:
        return ml_em_referent(sl->p[1]) == f;
    case KIND_PARTIAL:
        return ml_em_referent(sl->p[1]) != NULL && ml_em_referent(sl->p[3]) == f;
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
        if (self->sl.clock == clock) {
            return rc == ML_OK;
        }
        /* __eq__ added or removed listeners: the event's record may have changed too */
    }
}
