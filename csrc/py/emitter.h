/* emitter.h — memleash._core.EventEmitter: what its five files share.
 *
 * The design note and the re-entrancy rules are at the top of emitter.c. The files, from
 * the lowest to the highest; a file calls only the files above it in this list, never
 * one below it:
 *
 *   emitter_slot.c    payloads (what a slot holds, rebuilt into the registered
 *                     callable), unlinking and compaction, look-ups of events and of
 *                     listeners
 *   emitter_emit.c    the emit path: emit, the loop, pyee's _call_handlers, _emit_run
 *                     and _emit_handle_potential_error
 *   emitter_listen.c  subscribing (on, once, add_listener, listens_to, the decorators,
 *                     _add_event_handler) and removing (remove_listener,
 *                     _remove_listener, remove_all_listeners)
 *   emitter_state.c   what can be read of an emitter: listeners(), event_names(),
 *                     listener_count(), max listeners, _lock, __sizeof__, _ml_stats,
 *                     _ml_referents, _events, pickling
 *   emitter.c         the type: life cycle and GC, SlotRef and Reaper, the method table,
 *                     the spec, module exec
 *
 * Names shared between the files start with ml_em_ (helpers) or emitter_ (the methods
 * of the type, referenced by emitter.c's method table).
 */
#ifndef ML_PY_EMITTER_H
#define ML_PY_EMITTER_H

#include "py/module.h"

#include <string.h>

#include "core/slots.h"

typedef struct {
    PyObject_HEAD
    ml_slots sl;            /* listeners by event (core/slots.c) */
    PyObject *reaper;       /* the weakref callback that unlinks dead owners' slots */
    PyObject *dict;         /* instance __dict__ (pyee's uplift assigns attributes) */
    PyObject *weakreflist;
    PyObject *lock;         /* _lock, made on first use */
    Py_ssize_t max_listeners;   /* 0: no leak warning */
    unsigned hooks;         /* HOOK_*: pyee hooks a subclass overrides (found once, in new) */
    ml_state *st;           /* borrowed: the module outlives its instances' type */
    ml_reg reg;             /* registry node: memleash.report() (module.h) */
    uint64_t reaped;        /* listeners unlinked because their owner died */
    uint64_t leak_warnings; /* ListenerLeakWarnings issued */
} EmitterObject;

enum {
    HOOK_EMIT_RUN = 1u,         /* _emit_run: emit calls it for each listener */
    HOOK_CALL_HANDLERS = 2u,    /* _call_handlers: emit calls it instead of its own loop */
    HOOK_HANDLE_ERROR = 4u,     /* _emit_handle_potential_error: called when unhandled */
    HOOK_ADD = 8u,              /* _add_event_handler: on/once/add_listener go through it */
    HOOK_REMOVE = 16u,          /* _remove_listener: remove_listener goes through it */
    HOOK_EMIT = 32u             /* emit: new_listener is announced through self.emit */
};

/* A listener's kind: what its slot's payload (p[]) holds (see emitter.c). KIND_C marks a
 * method or partial built on a built-in method or method-wrapper: p[0] is then the
 * descriptor that binds to the owner (ml_em_bind), not a function for PyMethod_New. */
enum { KIND_STRONG = 0, KIND_METHOD = 1, KIND_WEAK = 2, KIND_PARTIAL = 3, KIND_C = 4 };

#define ML_EM_BASE(kind) ((kind) & 3u)

/* A slot's payload, as the binding handles it outside the slab. */
typedef struct {
    PyObject *p[4];
    uint32_t kind;
} payload;

/* A weakref.ref subtype that knows its listener slot. */
typedef struct {
    PyWeakReference ref;
    uint32_t slot, gen;     /* ML_NIL until the slot is appended */
} SlotRefObject;

/* The weakref callback of an emitter's SlotRefs. */
typedef struct {
    PyObject_HEAD
    EmitterObject *owner;   /* borrowed; NULL once the emitter is gone */
#ifdef Py_GIL_DISABLED
    PyObject *owner_ref;    /* a weak reference to the emitter: a callback in another thread
                               takes it strongly, or finds it gone (never a dying one) */
#endif
} ReaperObject;

/* The payload of slot sl, copied out of the slab (the references stay the slot's). */
static inline payload
ml_em_payload_of(const ml_slot *sl)
{
    payload pl = {{sl->p[0], sl->p[1], sl->p[2], sl->p[3]}, sl->kind};
    return pl;
}

static inline void
ml_em_payload_store(ml_slot *sl, const payload *pl)
{
    for (int i = 0; i < 4; i++) {
        sl->p[i] = pl->p[i];
    }
    sl->kind = pl->kind;
}

/* Checks that a METH_FASTCALL method got min to max positional arguments: 1, or 0 with
 * TypeError worded as the interpreter's own checks word it ("f expected 3 arguments, got
 * 4"). The public C API has no such call (CPython's is private). */
static inline int
ml_em_check_args(const char *name, Py_ssize_t nargs, Py_ssize_t min, Py_ssize_t max)
{
    if (nargs >= min && nargs <= max) {
        return 1;
    }
    Py_ssize_t bound = nargs < min ? min : max;
    PyErr_Format(PyExc_TypeError, "%.200s expected %s%zd argument%s, got %zd", name,
                 min == max ? "" : nargs < min ? "at least " : "at most ", bound,
                 bound == 1 ? "" : "s", nargs);
    return 0;
}

/* ---- emitter_slot.c ---------------------------------------------------------------- */

/* Releases what a slot's payload holds (copied out of the slab first, the slot unlinked):
 * its SlotRef forgets the slot, and each reference is dropped. Can re-enter. */
void ml_em_payload_release(payload pl);

/* A payload held: a new reference to each of slot sl's pointers, taken by increfs alone
 * (no code runs), so that it outlives whatever a later call does to the slot. Released
 * with ml_em_payload_drop. */
payload ml_em_payload_hold(const ml_slot *sl);

/* Drops a held payload's references. Can re-enter. */
void ml_em_payload_drop(payload pl);

/* Whether weak reference ref refers to obj (read strongly; no code runs). */
int ml_em_weak_is(PyObject *ref, PyObject *obj);

/* Whether weak reference ref's referent is alive (read strongly; no code runs). */
static inline int
ml_em_weak_alive(PyObject *ref)
{
    PyObject *o = ml_weak_get(ref);
    int alive = o != NULL;
    Py_XDECREF(o);   /* not the last reference: nothing ran since it was alive */
    return alive;
}

/* The callable a user registered, rebuilt from held payload pl: a new reference, or NULL
 * without an exception when its owner died. Can collect (it allocates). */
PyObject *ml_em_callable(EmitterObject *em, const payload *pl);

/* ml_em_callable of live or tombstone slot id's payload (held across the call). */
PyObject *ml_em_slot_callable(EmitterObject *em, uint32_t id);

/* ml_em_callable for a callable handed to user code (listeners(), _emit_run): a partial
 * rebuilt because the registered one died becomes the identity of slot id (if it still
 * has generation gen and that payload), so that remove_listener and on accept it. */
PyObject *ml_em_callable_out(EmitterObject *em, uint32_t id, uint32_t gen, const payload *pl);

/* Binds a method descriptor (method_descriptor, classmethod_descriptor or
 * wrapper_descriptor) to owner, as attribute access does: a new built-in method or
 * method-wrapper, or NULL with an exception. Can collect. */
PyObject *ml_em_bind(PyObject *descr, PyObject *owner);

/* Whether f is a method-wrapper (a slot wrapper bound to an object: object().__str__).
 * Its type is not in the public C API: it is told by its name on a static type. */
static inline int
ml_em_is_method_wrapper(PyObject *f)
{
    PyTypeObject *tp = Py_TYPE(f);
    return !PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE) && strcmp(tp->tp_name, "method-wrapper") == 0;
}

/* The live listeners of one event, held in their order (what listeners() and pickling
 * read): taken without running code or collecting (PyMem and increfs only), so that
 * building Python objects from it afterwards cannot be disturbed by what a collection
 * does to the emitter. */
typedef struct {
    payload pl;             /* held */
    uint32_t flags;         /* the slot's ML_SLOT_* flags when taken */
    uint32_t id, gen;       /* the slot, to hand a rebuilt partial back (ml_em_callable_out) */
} ml_em_held;

typedef struct {
    ml_em_held *v;
    uint32_t n;
} ml_em_snapshot;

/* Takes event ev's live listeners into snap. 0, or -1 with MemoryError (snap empty). */
int ml_em_snapshot_take(EmitterObject *em, uint32_t ev, ml_em_snapshot *snap);

/* Drops what snap holds and frees it. Can re-enter. */
void ml_em_snapshot_drop(ml_em_snapshot *snap);

/* Releases tombstones once no emit runs (their payload decrefs can re-enter). */
void ml_em_compact(EmitterObject *self);

/* Unlinks live slot id and releases what is no longer needed: the payload at once when
 * no emit runs, else at compaction; the event key when its record went. Can re-enter. */
void ml_em_unlink_slot(EmitterObject *self, uint32_t id, int dead);

/* Finds event's id. 1 found, 0 not, -1 error. Can re-enter (__eq__). */
int ml_em_find_event(EmitterObject *self, PyObject *event, Py_hash_t h, uint32_t *id);

/* Hashes event and finds its id: 1 found, 0 not, -1 error. Can re-enter. */
int ml_em_lookup_event(EmitterObject *self, PyObject *event, uint32_t *id);

/* Finds f among event's live listeners: 1 (*event_id, *slot_id set), 0 (*event_id is
 * ML_NIL when the event has no record), or -1. Can re-enter. */
int ml_em_find_listener(EmitterObject *self, PyObject *event, Py_hash_t eh, PyObject *f,
                        Py_hash_t fh, uint32_t *event_id, uint32_t *slot_id);

/* ---- emitter_emit.c ---------------------------------------------------------------- */

/* The emit loop over event's listeners: 1 handled, 0 not, -1 error. Can re-enter. */
int ml_em_emit_event(EmitterObject *self, PyObject *event, PyObject *const *pargs, size_t n,
                     PyObject *kwnames);

PyObject *emitter_emit(EmitterObject *self, PyObject *const *args, Py_ssize_t nargsf,
                       PyObject *kwnames);
PyObject *emitter_call_handlers(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *emitter_emit_run(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *emitter_handle_error(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs);

/* ---- emitter_listen.c -------------------------------------------------------------- */

/* The core of on/once/add_listener: pyee's _add_event_handler. notify: emit new_listener
 * first (0 only when restoring a pickled emitter). 0 or -1. Can re-enter. */
int ml_em_add_listener(EmitterObject *self, PyObject *event, PyObject *f, int once, int weak,
                       int notify);

PyObject *emitter_naked_remove(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *emitter_remove_listener(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *emitter_remove_all_listeners(EmitterObject *self, PyObject *const *args,
                                       Py_ssize_t nargs, PyObject *kwnames);
PyObject *emitter_add_event_handler(EmitterObject *self, PyObject *const *args,
                                    Py_ssize_t nargs);
PyObject *emitter_on(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames);
PyObject *emitter_once(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames);
PyObject *emitter_add_listener(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames);
PyObject *emitter_listens_to(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames);
PyObject *emitter_ml_add(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs);

/* ---- emitter_state.c --------------------------------------------------------------- */

PyObject *emitter_listeners(EmitterObject *self, PyObject *event);
PyObject *emitter_event_names(EmitterObject *self, PyObject *ignored);
PyObject *emitter_listener_count(EmitterObject *self, PyObject *event);
PyObject *emitter_set_max_listeners(EmitterObject *self, PyObject *n);
PyObject *emitter_get_max_listeners(EmitterObject *self, PyObject *ignored);
PyObject *emitter_get_lock(EmitterObject *self, void *closure);
PyObject *emitter_sizeof(EmitterObject *self, PyObject *ignored);
PyObject *emitter_stats(EmitterObject *self, PyObject *ignored);
PyObject *emitter_get_referents(EmitterObject *self, void *closure);
PyObject *emitter_get_events(EmitterObject *self, void *closure);
PyObject *emitter_getstate(EmitterObject *self, PyObject *ignored);
PyObject *emitter_setstate(EmitterObject *self, PyObject *state);

/* ---- emitter.c --------------------------------------------------------------------- */

/* Adds EventEmitter, its helper types and exceptions to module. 0 or -1. */
int ml_emitter_module_exec(PyObject *module, ml_state *st);

#endif
