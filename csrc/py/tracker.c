/* tracker.c — the resource tracker: objects that must be closed, tracked from where they
 * were allocated until they are closed or collected.
 *
 * A tracked object has a record (ml_track) that holds everything a leak report needs,
 * captured while the object was alive and well: its description, name, and allocation
 * site (interned by core/sites.c). Nothing of a dying object is read: the verdict at
 * death is the record's state, which close() changed while it ran.
 *
 * How close() is seen, without changing the object's type:
 *   - a class (Python's socket and Popen, the user's own) gets its closing methods wrapped
 *     once, in Python (tracker.py); they call _tr_closed(self);
 *   - built-in io objects are watched from below: every close of a file stack ends in
 *     its raw FileIO's close(), which calls the raw file's `flush` through its instance
 *     dict. A _CloseShim there hears of it and forwards: when the tracked object is being
 *     finalized (its `_finalizing`), or a collection found it dead, the file leaked.
 *     (Over another stream, which has no such flush, the shim takes the
 *     `_dealloc_warn(self)` io's finalizer calls on the stream under an unclosed one.)
 *     Nothing is put where the user's own calls land (a temporary's `open(p).close()`
 *     keeps it alive as usual); the user's close() is not seen: no leak reported before
 *     the object died means it was closed;
 *   - another built-in type with a __dict__ gets a _CloseShim under "close" (io's
 *     finalizer calls self.close(): the shim tells it apart by `_finalizing`);
 *   - memleash.Resource knows it itself.
 * Death is seen by a weakref (_TrackRef, a weakref.ref subtype carrying the record), whose
 * callback runs after the finalizer on a refcount death, and before it on a cyclic
 * collection (then a file's verdict waits for the collection's end: its finalizer may
 * still report it). Nothing of a dying object is read. The one thing done to it is
 * removing "close" shims from its __dict__ (plain dict deletions of our own values), so
 * that a finalizer that runs after the callback reaches the real close().
 *
 * Records of open objects form a ring (open_resources()); the ring owns a reference to
 * each _TrackRef. A leak goes to `dispatch` (tracker.py: listeners, warning, counts) —
 * except at interpreter shutdown, when it is only counted.
 */
#include "py/module.h"

#include <structmember.h>
#include <time.h>

#include "core/sites.h"
#include "core/status.h"

enum { ST_OPEN = 0, ST_CLOSED = 1, ST_UNTRACKED = 2, ST_LEAKED = 3 };

/* kind flags (tracker.py's kinds, and the record's flags) */
enum {
    K_CPYTHON_WARNS = 1,    /* CPython warns about this type itself: don't warn again */
    K_IO = 2,               /* an io object: a close() while `_finalizing` is the finalizer's */
    K_CLASS_HOOKED = 4,     /* close() seen through class-level wrappers: no shims */
    K_IO_INNER = 8,         /* a built-in io stack, watched from its innermost stream */
    R_RESOURCE = 64,        /* the record is embedded in a memleash.Resource */
};

/* probe modes: how a live object says it is closed (after a closing method ran) */
enum { PROBE_NONE = 0, PROBE_TRUE = 1, PROBE_NOT_NONE = 2 };

typedef struct ml_track {
    struct ml_track *prev, *next;   /* the ring of open records; NULL when not in it */
    PyObject *holder;       /* borrowed: the _TrackRef, or the Resource itself */
    PyObject *desc;         /* str: what the object was, captured at track time */
    PyObject *name;         /* str given to track(name=...), or NULL */
    PyObject *methods;      /* tuple of str: the closing methods shimmed, or NULL */
    PyObject *probe;        /* str: the attribute that says closed, or NULL */
    void *addr;             /* the object's address: an identity, never dereferenced
                               except to remove our shims from its dict in the callback */
    uintptr_t ident;        /* the same address as a number: outlives the object, for
                               matching a warning's source after a collection's callback */
    PyTypeObject *type;     /* identity only (matching a warning's source) */
    uintptr_t layers[2];    /* an io stack's streams under the object (buffer, raw): a
                               collection finalizes them in any order, and CPython warns
                               about the first one finalized */
    PyTypeObject *layer_types[2];
    int64_t t0;             /* monotonic ns at tracking */
    uint32_t site;
    uint8_t state, flags, probe_mode;
    uint8_t pending;        /* an io object a collection found dead: its finalizer follows */
} ml_track;

typedef struct {
    PyWeakReference wr;
    ml_track t;
} TrackRefObject;

/* what a shim stands in for: a type's close(); the flush() a raw file's close() calls;
 * the _dealloc_warn() a stream's finalizer calls on the one under it */
enum { SHIM_CLOSE = 0, SHIM_FLUSH = 1, SHIM_DEALLOC_WARN = 2 };

typedef struct {
    PyWeakReference wr;     /* a weak reference to obj, whose callback clears obj; its
                               vectorcall slot is the shim's call */
    PyObject *rec;          /* the _TrackRef (strong) */
    PyObject *obj;          /* borrowed: the object whose __dict__ holds the shim. Valid
                               until _tr_shim_died clears it; on a collection, where that
                               callback does not run, the shim dies with obj's dict */
    PyObject *meth;         /* str: the method name this shim stands in for */
    PyObject *prev;         /* what the instance dict held under that name before, or NULL */
    int role;
} ShimObject;

typedef struct {
    PyObject_HEAD
    ml_track t;
    struct ml_tracker *tr;  /* borrowed: the module outlives every instance (its Resource
                               base type holds it); never found through the type, whose
                               MRO a collection may have cleared by dealloc time */
} ResourceObject;

typedef struct {
    PyObject_HEAD
    PyObject *real;         /* the open() it stands in for */
    PyObject *kind;         /* the file kind tuple */
    struct ml_tracker *tr;  /* borrowed: the module outlives us (our type holds it) */
} TrackingOpenObject;

typedef struct ml_tracker {
    ml_sites sites;
    PyObject *site_codes;   /* list: keeps every interned site's code objects alive */
    ml_track ring;          /* head of the open records */
    Py_ssize_t nopen;
    PyObject *recent;       /* list of leaked _TrackRefs whose CPython warning may follow */
    PyObject *pending;      /* list of io _TrackRefs whose object a collection found dead
                               before its finalizer ran: judged when the collection ends */
    PyObject *dispatch;     /* tracker.py's leak handler, or NULL */
    PyObject *skip;         /* tuple of str: path prefixes a site's first frame skips */
    PyObject *died;         /* the weakref callback (a function of this module) */
    PyObject *shim_died;    /* the shims' weakref callback */
    PyObject *str_finalizing, *str_flush, *str_dealloc_warn, *str_name;
    PyTypeObject *TrackRefType, *ShimType, *ResourceType, *OpenType;
    int level;              /* 0 disabled, 1 simple, 2 advanced, 3 paranoid */
    int depth;              /* frames kept by advanced and paranoid */
    uint64_t rate;          /* simple/advanced sample 1 in rate */
    uint64_t seed_gen;      /* bumped by _tr_seed: threads re-seed */
    uint64_t seed;
    int shutdown;           /* leaks are only counted */
    int collecting;         /* a cyclic collection is under way (gc.callbacks) */
    int ready;
} ml_tracker;

static _Thread_local uint64_t tl_rng, tl_seed_gen = UINT64_MAX, tl_index = UINT64_MAX;
static _Atomic uint64_t threads_seen;   /* gives each sampling thread its own stream */

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static ml_tracker *
tracker_of(PyObject *module)
{
    ml_state *st = PyModule_GetState(module);
    return st->tr;
}

/* The tracker, or NULL with RuntimeError once the module is being torn down. */
static ml_tracker *
live_tracker(PyObject *module)
{
    ml_tracker *tr = tracker_of(module);
    if (tr == NULL || !tr->ready) {
        PyErr_SetString(PyExc_RuntimeError, "the memleash tracker is shut down");
        return NULL;
    }
    return tr;
}

/* ------------------------------------------------------------------------------------
 * Sampling: a per-thread xorshift64* generator, consulted before any frame is touched.
 */
static uint64_t
mix64(uint64_t z)   /* splitmix64's finalizer */
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int
sampled(ml_tracker *tr)
{
    if (tr->level == 0) {
        return 0;
    }
    if (tr->level == 3 || tr->rate <= 1) {
        return 1;
    }
    if (tl_seed_gen != tr->seed_gen) {
        /* thread k of the process draws from the seed's k-th stream: threads do not
           sample in lockstep, and a seeded single thread repeats itself */
        if (tl_index == UINT64_MAX) {
            tl_index = threads_seen++;
        }
        tl_seed_gen = tr->seed_gen;
        tl_rng = mix64(tr->seed + tl_index * 0x9e3779b97f4a7c15ULL) | 1;
    }
    tl_rng ^= tl_rng >> 12;
    tl_rng ^= tl_rng << 25;
    tl_rng ^= tl_rng >> 27;
    return (tl_rng * 0x2545F4914F6CDD1DULL) % tr->rate == 0;
}

static int
frames_for(ml_tracker *tr)
{
    return tr->level >= 2 ? tr->depth : 1;
}

/* ------------------------------------------------------------------------------------
 * Sites
 */
static int
skipped(ml_tracker *tr, PyCodeObject *code)
{
    PyObject *file = code->co_filename;   /* borrowed */
    if (tr->skip == NULL || !PyUnicode_Check(file)) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tr->skip); i++) {
        if (PyUnicode_Tailmatch(file, PyTuple_GET_ITEM(tr->skip, i), 0, PY_SSIZE_T_MAX, -1) == 1) {
            return 1;
        }
    }
    return 0;
}

/* The site of the current stack: up to `depth` frames from the first one outside the
 * skipped prefixes (memleash, the standard library) — or from the innermost frame when
 * every frame is skipped. Site 0 when there is no Python frame. -1 on error. */
static int
capture_site(ml_tracker *tr, int depth, uint32_t *site)
{
    PyCodeObject *codes[ML_SITES_DEPTH_MAX];
    ml_frame frames[ML_SITES_DEPTH_MAX];
    uint32_t n = 0;
    *site = 0;
    PyFrameObject *top = PyEval_GetFrame();   /* borrowed, or NULL */
    if (top == NULL) {
        return 0;
    }
    /* the first frame that is not skipped */
    PyFrameObject *f = (PyFrameObject *)Py_NewRef(top);
    while (f != NULL) {
        PyCodeObject *code = PyFrame_GetCode(f);   /* new reference */
        int skip = skipped(tr, code);
        Py_DECREF(code);
        if (!skip) {
            break;
        }
        Py_SETREF(f, PyFrame_GetBack(f));   /* new reference or NULL */
    }
    if (f == NULL) {
        f = (PyFrameObject *)Py_NewRef(top);
    }
    while (f != NULL && n < (uint32_t)depth) {
        codes[n] = PyFrame_GetCode(f);
        frames[n].code = (uintptr_t)codes[n];
        frames[n].lasti = PyFrame_GetLasti(f);
        frames[n].unused = 0;
        n++;
        Py_SETREF(f, PyFrame_GetBack(f));
    }
    Py_XDECREF(f);
    int created = 0, rc = 0;
    int status = ml_sites_intern(&tr->sites, frames, n, site, &created);
    if (status == ML_ERR_FULL) {
        *site = 0;   /* too many distinct sites: the frameless one */
    } else if (status != ML_OK) {
        PyErr_NoMemory();
        rc = -1;
    } else if (created) {
        for (uint32_t i = 0; i < n && rc == 0; i++) {
            rc = PyList_Append(tr->site_codes, (PyObject *)codes[i]);
        }
        /* a failure here leaves a site whose code may die: it is only ever compared by
           address and rendered through site_codes, so render it as unknown */
    }
    for (uint32_t i = 0; i < n; i++) {
        Py_DECREF(codes[i]);
    }
    return rc;
}

/* ------------------------------------------------------------------------------------
 * Records
 */
static void
ring_link(ml_tracker *tr, ml_track *t)
{
    t->prev = &tr->ring;
    t->next = tr->ring.next;
    tr->ring.next->prev = t;
    tr->ring.next = t;
    tr->nopen++;
}

/* Takes t out of the ring. @return the reference the ring held (a _TrackRef), or NULL
 * (a Resource's record, which the ring does not own). The caller releases it last. */
static PyObject *
ring_unlink(ml_tracker *tr, ml_track *t)
{
    if (t->next == NULL) {
        return NULL;
    }
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->prev = t->next = NULL;
    tr->nopen--;
    return (t->flags & R_RESOURCE) ? NULL : t->holder;
}

static void
track_clear_fields(ml_track *t)
{
    Py_CLEAR(t->desc);
    Py_CLEAR(t->name);
    Py_CLEAR(t->methods);
    Py_CLEAR(t->probe);
}

/* A new weak reference of one of our weakref.ref subtypes: weakref's tp_new alone (its
 * __init__ only checks the same arguments again). */
static PyObject *
new_weakref(PyTypeObject *type, PyObject *obj, PyObject *callback)
{
    PyObject *args = PyTuple_Pack(2, obj, callback);
    if (args == NULL) {
        return NULL;
    }
    PyObject *ref = type->tp_new(type, args, NULL);
    Py_DECREF(args);
    return ref;
}

/* Leaves the open state: closed or untracked. @return the ring's reference to release. */
static PyObject *
settle(ml_tracker *tr, ml_track *t, int state)
{
    if (t->state != ST_OPEN) {
        return NULL;
    }
    t->state = (uint8_t)state;
    if (tr->ready) {
        ml_sites_get(&tr->sites, t->site)->open--;
    }
    return ring_unlink(tr, t);
}

/* The record of obj: the _TrackRef on its weakref list, or NULL. Borrowed. */
static TrackRefObject *
find_record(ml_tracker *tr, PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);
    if (tp->tp_weaklistoffset <= 0) {
        return NULL;
    }
    PyWeakReference *w = *(PyWeakReference **)((char *)obj + tp->tp_weaklistoffset);
    for (; w != NULL; w = w->wr_next) {
        if (Py_IS_TYPE((PyObject *)w, tr->TrackRefType)) {
            return (TrackRefObject *)w;
        }
    }
    return NULL;
}

/* Whether obj's attribute `name` says yes: true (PROBE_TRUE) or not None
 * (PROBE_NOT_NONE). Runs Python code; an error is "no", and an exception set on entry is
 * kept. */
static int
attr_says(PyObject *obj, PyObject *name, int mode)
{
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *v = PyObject_GetAttr(obj, name);
    int yes = v != NULL && (mode == PROBE_NOT_NONE ? v != Py_None : PyObject_IsTrue(v) == 1);
    Py_XDECREF(v);
    PyErr_Clear();
    PyErr_Restore(et, ev, tb);
    return yes;
}

/* Whether obj (alive) says it is closed, by its kind's probe. */
static int
probe_closed(ml_track *t, PyObject *obj)
{
    return t->probe != NULL && t->probe_mode != PROBE_NONE && attr_says(obj, t->probe, t->probe_mode);
}

/* t's description (a new reference): made from (type, name) the first time for a file. */
static PyObject *
record_desc(ml_track *t)
{
    if (!PyTuple_Check(t->desc)) {
        return Py_NewRef(t->desc);
    }
    PyTypeObject *tp = (PyTypeObject *)PyTuple_GET_ITEM(t->desc, 0);
    PyObject *fname = PyTuple_GET_ITEM(t->desc, 1);
    PyObject *desc = fname == Py_None ? PyUnicode_FromFormat("<%s>", tp->tp_name)
                                      : PyUnicode_FromFormat("<%s name=%R>", tp->tp_name, fname);
    if (desc != NULL) {
        Py_SETREF(t->desc, Py_NewRef(desc));
    }
    return desc;
}

/* A leak: count it, and hand it to dispatch (unless at shutdown). Runs Python code. */
static void
report_leak(ml_tracker *tr, ml_track *t, PyObject *source)
{
    ml_sites_get(&tr->sites, t->site)->leaked++;
    if (tr->shutdown || tr->dispatch == NULL) {
        return;
    }
    PyObject *desc = record_desc(t);
    PyObject *res = desc == NULL ? NULL :
        PyObject_CallFunction(tr->dispatch, "IOOLiO", (unsigned)t->site, desc,
                              t->name ? t->name : Py_None, (long long)t->t0,
                              (int)t->flags, source ? source : Py_None);
    Py_XDECREF(desc);
    if (res == NULL) {
        /* -W error::ResourceWarning and friends: reported as unraisable, never lost */
        PyErr_WriteUnraisable(tr->dispatch);
    }
    Py_XDECREF(res);
}

/* ------------------------------------------------------------------------------------
 * _TrackRef
 */
static int
trackref_traverse(TrackRefObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->t.desc);
    Py_VISIT(self->t.name);
    Py_VISIT(self->t.methods);
    Py_VISIT(self->t.probe);
    Py_VISIT(Py_TYPE(self));
    return Py_TYPE(self)->tp_base->tp_traverse((PyObject *)self, visit, arg);
}

static void
trackref_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    track_clear_fields(&((TrackRefObject *)self)->t);
    tp->tp_base->tp_dealloc(self);   /* weakref's dealloc untracks and frees */
    Py_DECREF(tp);
}

static PyType_Slot trackref_slots[] = {
    {Py_tp_dealloc, trackref_dealloc},
    {Py_tp_traverse, trackref_traverse},
    {Py_tp_doc, (void *)"A tracked object's record: a weak reference to it (internal)."},
    {0, NULL},
};

static PyType_Spec trackref_spec = {
    .name = "memleash._core._TrackRef",
    .basicsize = sizeof(TrackRefObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = trackref_slots,
};

/* Removes our "close" shims from the dying object's dict, so that a finalizer still to
 * come reaches the real methods. */
static void
drop_shims(ml_tracker *tr, TrackRefObject *rec)
{
    ml_track *t = &rec->t;
    if (t->methods == NULL) {
        return;
    }
    PyObject **dictptr = _PyObject_GetDictPtr((PyObject *)t->addr);
    PyObject *dict = dictptr ? *dictptr : NULL;   /* borrowed */
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t->methods); i++) {
        PyObject *meth = PyTuple_GET_ITEM(t->methods, i);
        PyObject *v = dict ? PyDict_GetItemWithError(dict, meth) : NULL;   /* borrowed */
        if (v != NULL && Py_IS_TYPE(v, tr->ShimType) && ((ShimObject *)v)->rec == (PyObject *)rec) {
            ShimObject *shim = (ShimObject *)v;
            shim->obj = NULL;
            if (shim->prev != NULL) {
                (void)PyDict_SetItem(dict, meth, shim->prev);   /* back as it was */
            } else {
                (void)PyDict_DelItem(dict, meth);
            }
        }
        PyErr_Clear();
    }
}

/* t (open) leaked: settled so, kept findable by a warning's source address until the
 * collection ends (CPython warns after us), counted and dispatched. Runs Python code;
 * an exception set on entry is kept. @return the ring's reference to release. */
static PyObject *
record_leak(ml_tracker *tr, ml_track *t, PyObject *source)
{
    if (!tr->ready || t->state != ST_OPEN) {
        return NULL;
    }
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *owned = settle(tr, t, ST_LEAKED);
    if ((t->flags & K_CPYTHON_WARNS) && !(t->flags & R_RESOURCE) && tr->collecting &&
        !tr->shutdown && PyList_Append(tr->recent, t->holder) < 0) {
        PyErr_Clear();
    }
    report_leak(tr, t, source);
    PyErr_Restore(et, ev, tb);
    return owned;
}

/* _tr_died(ref): the weakref callback. */
static PyObject *
tr_died(PyObject *module, PyObject *ref)
{
    ml_tracker *tr = tracker_of(module);
    if (tr == NULL || !tr->ready || !Py_IS_TYPE(ref, tr->TrackRefType)) {
        Py_RETURN_NONE;
    }
    TrackRefObject *rec = (TrackRefObject *)Py_NewRef(ref);
    drop_shims(tr, rec);
    ml_track *t = &rec->t;
    PyObject *owned = NULL;
    if (t->state == ST_OPEN && (t->flags & K_IO_INNER)) {
        /* an io object: its finalizer reports a leak through the shims below it. On a
           refcount death it has run already, so no report means closed; a collection
           runs it after this callback */
        if (tr->collecting && PyList_Append(tr->pending, ref) == 0) {
            t->pending = 1;
        } else {
            PyErr_Clear();
            owned = settle(tr, t, ST_CLOSED);
        }
    } else {
        owned = record_leak(tr, t, NULL);
    }
    t->addr = NULL;
    Py_XDECREF(owned);
    Py_DECREF(rec);
    Py_RETURN_NONE;
}

/* _tr_shim_died(ref): the object holding a shim died (a refcount death, or the shim was
 * held elsewhere during a collection): the shim forgets it. */
static PyObject *
tr_shim_died(PyObject *module, PyObject *ref)
{
    ml_tracker *tr = tracker_of(module);
    if (tr != NULL && tr->ShimType != NULL && Py_IS_TYPE(ref, tr->ShimType)) {
        ((ShimObject *)ref)->obj = NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------
 * _CloseShim: stands in an instance dict for a method, and forwards to it.
 */

static PyObject *
shim_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    ShimObject *self = (ShimObject *)op;
    ml_state *st = ml_state_of_type(Py_TYPE(self));
    ml_tracker *tr = st ? st->tr : NULL;
    TrackRefObject *rec = (TrackRefObject *)self->rec;
    PyObject *obj = self->obj;
    if (tr == NULL || rec == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the memleash tracker is shut down");
        return NULL;
    }
    if (obj == NULL) {
        if (self->prev != NULL) {
            return PyObject_Vectorcall(self->prev, args, nargsf, kwnames);
        }
        if (self->role != SHIM_CLOSE || (rec->t.flags & K_IO)) {
            Py_RETURN_NONE;   /* io: its finalizer closed it; flushing it is done */
        }
        PyErr_Format(PyExc_ReferenceError, "%U() of an object that no longer exists",
                     self->meth);
        return NULL;
    }
    if (self->role == SHIM_FLUSH && rec->t.state == ST_LEAKED) {
        /* its finalizer ran (a temporary: `f.flush` was looked up, then the file died):
           it was flushed and closed then */
        Py_RETURN_NONE;
    }
    Py_INCREF(rec);
    Py_INCREF(obj);
    PyObject *res = NULL, *func = NULL, *owned = NULL;
    int open = tr->ready && rec->t.state == ST_OPEN;
    int finalizing = 0;
    if (open && self->role == SHIM_FLUSH) {
        /* a close of the stack reached its raw file: is the tracked object (alive on a
           refcount death, its weakref intact) being finalized, or did a collection find
           it dead? Either way no one closed it */
        PyObject *tracked = PyWeakref_GET_OBJECT((PyObject *)rec);   /* borrowed */
        finalizing = rec->t.pending ||
                     (tracked != Py_None && attr_says(tracked, tr->str_finalizing, PROBE_TRUE));
    } else if (open && self->role == SHIM_CLOSE && (rec->t.flags & K_IO)) {
        finalizing = attr_says(obj, tr->str_finalizing, PROBE_TRUE);   /* io's finalizer? */
    }
    if (open && (self->role == SHIM_DEALLOC_WARN || (self->role == SHIM_FLUSH && finalizing))) {
        /* reported before the real method runs (and CPython warns); our own warning, if
           any, names the unclosed stream _dealloc_warn was called for */
        PyObject *source = self->role == SHIM_DEALLOC_WARN && PyVectorcall_NARGS(nargsf) == 1
                           ? args[0] : NULL;
        owned = record_leak(tr, &rec->t, source);   /* now: a recorded warning may keep it alive */
    }
    if (self->prev != NULL) {
        res = PyObject_Vectorcall(self->prev, args, nargsf, kwnames);   /* may re-enter */
        goto called;
    }
    PyObject *descr = _PyType_Lookup(Py_TYPE(obj), self->meth);   /* borrowed */
    if (descr == NULL) {
        if (self->role == SHIM_DEALLOC_WARN) {
            res = Py_NewRef(Py_None);   /* the stream under it has no warning of its own */
        } else {
            PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%U'",
                         Py_TYPE(obj)->tp_name, self->meth);
        }
        goto done;
    }
    func = Py_NewRef(descr);   /* kept across the call, which may change the type */
    if (PyType_HasFeature(Py_TYPE(descr), Py_TPFLAGS_METHOD_DESCRIPTOR) && kwnames == NULL &&
        PyVectorcall_NARGS(nargsf) < 4) {
        /* the type's method, called unbound with obj first (no bound method made) */
        PyObject *stack[4] = {obj};
        size_t n = (size_t)PyVectorcall_NARGS(nargsf);
        for (size_t i = 0; i < n; i++) {
            stack[i + 1] = args[i];
        }
        res = PyObject_Vectorcall(func, stack, n + 1, NULL);   /* may re-enter anything */
        goto called;
    }
    descrgetfunc get = Py_TYPE(descr)->tp_descr_get;
    if (get != NULL) {
        Py_SETREF(func, get(descr, obj, (PyObject *)Py_TYPE(obj)));
        if (func == NULL) {
            goto done;
        }
    }
    res = PyObject_Vectorcall(func, args, nargsf, kwnames);   /* may re-enter anything */
called:
    if (self->role == SHIM_CLOSE && finalizing) {
        /* io's finalizer closing an unclosed object */
        Py_XDECREF(owned);
        owned = record_leak(tr, &rec->t, NULL);
    } else if (self->role == SHIM_CLOSE && tr->ready && rec->t.state == ST_OPEN) {
        int closed = rec->t.probe_mode != PROBE_NONE ? probe_closed(&rec->t, obj)
                                                     : res != NULL;   /* close() returned */
        if (closed) {
            owned = settle(tr, &rec->t, ST_CLOSED);
        }
    }
done:
    Py_XDECREF(func);
    Py_DECREF(obj);
    Py_XDECREF(owned);
    Py_DECREF(rec);
    return res;
}

static int
shim_traverse(ShimObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->rec);
    Py_VISIT(self->prev);
    Py_VISIT(Py_TYPE(self));
    return Py_TYPE(self)->tp_base->tp_traverse((PyObject *)self, visit, arg);
}

static int
shim_clear(ShimObject *self)
{
    self->obj = NULL;
    Py_CLEAR(self->rec);
    Py_CLEAR(self->prev);
    return Py_TYPE(self)->tp_base->tp_clear((PyObject *)self);
}

static void
shim_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    ShimObject *shim = (ShimObject *)self;
    shim->obj = NULL;
    Py_CLEAR(shim->rec);
    Py_CLEAR(shim->prev);
    Py_CLEAR(shim->meth);
    tp->tp_base->tp_dealloc(self);   /* weakref's dealloc untracks and frees */
    Py_DECREF(tp);
}

static PyObject *
shim_repr(ShimObject *self)
{
    return PyUnicode_FromFormat("<memleash observer for %U()>", self->meth);
}

static PyMemberDef shim_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(ShimObject, wr.vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot shim_slots[] = {
    {Py_tp_dealloc, shim_dealloc},
    {Py_tp_traverse, shim_traverse},
    {Py_tp_clear, shim_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_repr, shim_repr},
    {Py_tp_members, shim_members},
    {Py_tp_doc, (void *)"Calls a tracked object's method and notes what it tells (internal)."},
    {0, NULL},
};

static PyType_Spec shim_spec = {
    .name = "memleash._core._CloseShim",
    .basicsize = sizeof(ShimObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = shim_slots,
};

/* Puts a shim for `meth` in obj's dict (obj: alive, weakly referenceable, with a
 * __dict__). A type without that method gets none, unless `always`. 0 or -1. */
static int
add_shim(ml_tracker *tr, PyObject *rec, PyObject *obj, PyObject *meth, int role, int always)
{
    PyObject *dict = PyObject_GenericGetDict(obj, NULL);   /* new reference */
    if (dict == NULL) {
        return -1;
    }
    int rc = -1;
    PyObject *prev = PyDict_GetItemWithError(dict, meth);   /* borrowed */
    if (prev == NULL && PyErr_Occurred()) {
        goto done;
    }
    if (prev == NULL && !always && _PyType_Lookup(Py_TYPE(obj), meth) == NULL) {
        rc = 0;   /* the type has no such method */
        goto done;
    }
    ShimObject *shim = (ShimObject *)new_weakref(tr->ShimType, obj, tr->shim_died);
    if (shim == NULL) {
        goto done;
    }
    shim->wr.vectorcall = shim_vectorcall;
    shim->rec = Py_NewRef(rec);
    shim->obj = obj;
    shim->meth = Py_NewRef(meth);
    shim->prev = Py_XNewRef(prev);
    shim->role = role;
    rc = PyDict_SetItem(dict, meth, (PyObject *)shim);
    Py_DECREF(shim);
done:
    Py_DECREF(dict);
    return rc;
}

/* The "close" shims of a built-in type with a __dict__. 0 or -1. */
static int
install_shims(ml_tracker *tr, PyObject *rec, PyObject *obj, PyObject *methods)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(methods); i++) {
        if (add_shim(tr, rec, obj, PyTuple_GET_ITEM(methods, i), SHIM_CLOSE, 0) < 0) {
            return -1;
        }
    }
    return 0;
}

/* An io stack: follows `chain` (attribute names: "buffer", "raw"; one the type does
 * not have is passed) from obj down to its innermost stream, noting each layer in t, and
 * puts the shim there: on a raw file's flush, or on another stream's _dealloc_warn.
 * *warns: whether that stream warns itself (a FileIO has _dealloc_warn). 0 or -1. */
static int
install_io_shims(ml_tracker *tr, TrackRefObject *rec, PyObject *obj, PyObject *chain, int *warns)
{
    PyObject *x = Py_NewRef(obj);
    int nlayers = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(chain); i++) {
        PyObject *name = PyTuple_GET_ITEM(chain, i);
        if (!PyUnicode_Check(name) || _PyType_Lookup(Py_TYPE(x), name) == NULL) {
            continue;
        }
        Py_SETREF(x, PyObject_GetAttr(x, name));
        if (x == NULL) {
            return -1;
        }
        if (nlayers < 2) {
            rec->t.layers[nlayers] = (uintptr_t)x;
            rec->t.layer_types[nlayers++] = Py_TYPE(x);
        }
    }
    int rc = -1;
    if (!PyType_SUPPORTS_WEAKREFS(Py_TYPE(x)) || _PyObject_GetDictPtr(x) == NULL) {
        PyErr_Format(PyExc_TypeError, "cannot track a '%.100s' object: the stream under it "
                     "('%.100s') cannot be observed", Py_TYPE(obj)->tp_name, Py_TYPE(x)->tp_name);
        goto done;
    }
    *warns = _PyType_Lookup(Py_TYPE(x), tr->str_dealloc_warn) != NULL;
    rc = *warns ? add_shim(tr, (PyObject *)rec, x, tr->str_flush, SHIM_FLUSH, 1)
                : add_shim(tr, (PyObject *)rec, x, tr->str_dealloc_warn, SHIM_DEALLOC_WARN, 1);
done:
    Py_DECREF(x);
    return rc;
}

/* ------------------------------------------------------------------------------------
 * Tracking
 */

/* CPython's "<module.Qualname object at 0x...>", made without calling the object. */
static PyObject *
plain_desc(PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);
    PyObject *mod = PyObject_GetAttrString((PyObject *)tp, "__module__");
    PyObject *qual = PyType_GetQualName(tp);
    PyObject *res = NULL;
    if (qual == NULL) {
        PyErr_Clear();
        qual = PyUnicode_FromString(tp->tp_name);
    }
    if (mod == NULL) {
        PyErr_Clear();
    }
    if (qual != NULL) {
        if (mod != NULL && PyUnicode_Check(mod) &&
            !_PyUnicode_EqualToASCIIString(mod, "builtins")) {
            res = PyUnicode_FromFormat("<%U.%U object at %p>", mod, qual, obj);
        } else {
            res = PyUnicode_FromFormat("<%U object at %p>", qual, obj);
        }
    }
    Py_XDECREF(mod);
    Py_XDECREF(qual);
    return res;
}

/* Fills t for obj (alive, being tracked now). 0 or -1. */
static int
fill_record(ml_tracker *tr, ml_track *t, PyObject *obj, PyObject *kind, PyObject *name,
            int depth)
{
    /* kind: (methods, probe, probe_mode, flags, describe_with_repr) */
    PyObject *methods = PyTuple_GET_ITEM(kind, 0), *probe = PyTuple_GET_ITEM(kind, 1);
    long mode = PyLong_AsLong(PyTuple_GET_ITEM(kind, 2));
    long flags = PyLong_AsLong(PyTuple_GET_ITEM(kind, 3));
    int use_repr = PyObject_IsTrue(PyTuple_GET_ITEM(kind, 4));
    if (PyErr_Occurred() || use_repr < 0) {
        return -1;
    }
    if (capture_site(tr, depth, &t->site) < 0) {
        return -1;
    }
    PyObject *desc = NULL;
    if (flags & K_IO_INNER) {
        /* a file: (type, name), made into "<_io.TextIOWrapper name='a.txt'>" when a
           report needs it (its repr() costs more than the rest of tracking it) */
        PyObject *fname = PyObject_GetAttr(obj, tr->str_name);
        if (fname == NULL) {
            PyErr_Clear();
        }
        desc = PyTuple_Pack(2, (PyObject *)Py_TYPE(obj), fname ? fname : Py_None);
        Py_XDECREF(fname);
        if (desc == NULL) {
            return -1;
        }
    } else if (use_repr) {
        desc = PyObject_Repr(obj);
        if (desc == NULL) {
            PyErr_Clear();   /* a repr that fails: the plain form */
        }
    }
    if (desc == NULL && (desc = plain_desc(obj)) == NULL) {
        return -1;
    }
    t->desc = desc;
    t->name = (name != NULL && name != Py_None) ? Py_NewRef(name) : NULL;
    t->methods = PyTuple_Check(methods) && PyTuple_GET_SIZE(methods) ? Py_NewRef(methods) : NULL;
    t->probe = PyUnicode_Check(probe) ? Py_NewRef(probe) : NULL;
    t->probe_mode = (uint8_t)mode;
    t->flags = (uint8_t)(flags & 0x3f);
    t->addr = obj;
    t->ident = (uintptr_t)obj;
    t->type = Py_TYPE(obj);
    t->t0 = now_ns();
    t->state = ST_OPEN;
    return 0;
}

/* Tracks obj (not tracked yet). 0 or -1 (TypeError when it cannot be weakly referenced). */
static int
track_object(ml_tracker *tr, PyObject *obj, PyObject *kind, PyObject *name,
             int depth)
{
    if (!PyType_SUPPORTS_WEAKREFS(Py_TYPE(obj))) {
        PyErr_Format(PyExc_TypeError,
                     "cannot track a '%.100s' object: it does not support weak references "
                     "(track an instance of a subclass, e.g. sqlite3.connect(..., "
                     "factory=MyConnection))", Py_TYPE(obj)->tp_name);
        return -1;
    }
    TrackRefObject *rec = (TrackRefObject *)new_weakref(tr->TrackRefType, obj, tr->died);
    if (rec == NULL) {
        return -1;
    }
    memset(&rec->t, 0, sizeof(rec->t));
    rec->t.holder = (PyObject *)rec;
    rec->t.state = ST_CLOSED;   /* not in the books until filled */
    if (fill_record(tr, &rec->t, obj, kind, name, depth) < 0) {
        goto error;
    }
    if (rec->t.flags & K_IO_INNER) {
        int warns = 0;
        Py_CLEAR(rec->t.methods);   /* the chain down to the innermost stream */
        if (install_io_shims(tr, rec, obj, PyTuple_GET_ITEM(kind, 0), &warns) < 0) {
            goto error;   /* a shim already in place forwards, and ignores a closed record */
        }
        if (!warns) {
            rec->t.flags &= (uint8_t)~K_CPYTHON_WARNS;   /* nothing under it warns: we do */
        }
    } else if (rec->t.methods != NULL && !(rec->t.flags & K_CLASS_HOOKED) &&
               install_shims(tr, (PyObject *)rec, obj, rec->t.methods) < 0) {
        rec->t.state = ST_CLOSED;
        drop_shims(tr, rec);
        goto error;
    }
    ml_site *site = ml_sites_get(&tr->sites, rec->t.site);
    site->tracked++;
    site->open++;
    ring_link(tr, &rec->t);   /* the ring takes our reference */
    return 0;
error:
    Py_DECREF(rec);
    return -1;
}

static int
check_kind(PyObject *kind)
{
    if (!PyTuple_Check(kind) || PyTuple_GET_SIZE(kind) != 5) {
        PyErr_SetString(PyExc_TypeError, "kind must be a 5-tuple");
        return -1;
    }
    return 0;
}

static int
check_name(PyObject *name)
{
    if (name != Py_None && !PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "name must be a str or None, not %.200s",
                     Py_TYPE(name)->tp_name);
        return -1;
    }
    return 0;
}

/* _tr_track(obj, kind, name, explicit): obj, tracked (explicit: always, with the level's
 * frames; else only when sampled). Tracking an object tracked already does nothing. */
static PyObject *
tr_track(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "_tr_track(obj, kind, name, explicit)");
        return NULL;
    }
    ml_tracker *tr = live_tracker(module);
    if (tr == NULL) {
        return NULL;
    }
    PyObject *obj = args[0];
    if (check_kind(args[1]) < 0 || check_name(args[2]) < 0) {
        return NULL;
    }
    int explicit = PyObject_IsTrue(args[3]);
    if (explicit < 0) {
        return NULL;
    }
    if (!explicit && !sampled(tr)) {
        return Py_NewRef(obj);
    }
    if (find_record(tr, obj) == NULL &&
        track_object(tr, obj, args[1], args[2], frames_for(tr)) < 0) {
        return NULL;
    }
    return Py_NewRef(obj);
}

/* _tr_untrack(obj): True if obj was tracked and open (it now counts as closed). */
static PyObject *
tr_untrack(PyObject *module, PyObject *obj)
{
    ml_tracker *tr = live_tracker(module);
    if (tr == NULL) {
        return NULL;
    }
    TrackRefObject *rec = find_record(tr, obj);
    if (rec == NULL || rec->t.state != ST_OPEN) {
        Py_RETURN_FALSE;
    }
    Py_INCREF(rec);
    /* a file's close() is not seen: ask it (runs Python code) */
    int closed = (rec->t.flags & K_IO_INNER) && probe_closed(&rec->t, obj);
    PyObject *owned = settle(tr, &rec->t, closed ? ST_CLOSED : ST_UNTRACKED);
    Py_XDECREF(owned);
    Py_DECREF(rec);
    return PyBool_FromLong(!closed && owned != NULL);
}

/* _tr_closed(obj): a class-level close wrapper saw obj's close() return. */
static PyObject *
tr_closed(PyObject *module, PyObject *obj)
{
    ml_tracker *tr = live_tracker(module);
    if (tr == NULL) {
        return NULL;
    }
    TrackRefObject *rec = find_record(tr, obj);
    if (rec != NULL) {
        Py_XDECREF(settle(tr, &rec->t, ST_CLOSED));
    }
    Py_RETURN_NONE;
}

static PyObject *
record_info(ml_track *t)
{
    static const char *states[] = {"open", "closed", "untracked", "leaked"};
    PyObject *desc = record_desc(t);
    if (desc == NULL) {
        return NULL;
    }
    PyObject *res = Py_BuildValue("(INOsL)", (unsigned)t->site, desc,
                                  t->name ? t->name : Py_None, states[t->state], (long long)t->t0);
    return res;
}

/* _tr_lookup(obj): (site, desc, name, state, t0) of obj's record — a live one, or one
 * that a collection just found leaked (matched by address and type) — or None. */
static PyObject *
tr_lookup(PyObject *module, PyObject *obj)
{
    ml_tracker *tr = live_tracker(module);
    if (tr == NULL) {
        return NULL;
    }
    TrackRefObject *rec = find_record(tr, obj);
    if (rec != NULL) {
        return record_info(&rec->t);
    }
    if (PyObject_TypeCheck(obj, tr->ResourceType)) {
        return record_info(&((ResourceObject *)obj)->t);
    }
    for (Py_ssize_t i = PyList_GET_SIZE(tr->recent); i-- > 0;) {
        TrackRefObject *r = (TrackRefObject *)PyList_GET_ITEM(tr->recent, i);   /* borrowed */
        const ml_track *t = &r->t;
        uintptr_t id = (uintptr_t)obj;
        PyTypeObject *tp = Py_TYPE(obj);
        if ((t->ident == id && t->type == tp) || (t->layers[0] == id && t->layer_types[0] == tp) ||
            (t->layers[1] == id && t->layer_types[1] == tp)) {
            return record_info(&r->t);
        }
    }
    Py_RETURN_NONE;
}

/* _tr_gc_phase(started): gc.callbacks' start and stop. At the stop, the collection's
 * finalizers have warned: the leaked records kept for them are let go. */
static PyObject *
tr_gc_phase(PyObject *module, PyObject *arg)
{
    ml_tracker *tr = tracker_of(module);
    if (!tr->ready) {
        Py_RETURN_NONE;
    }
    tr->collecting = PyObject_IsTrue(arg) == 1;
    /* the io objects the collection found dead: their finalizers have run, and a leak
       was reported by now; the rest were closed (at a start: left over from a
       collection whose end was not seen) */
    PyObject *pending = tr->pending;
    if (PyList_GET_SIZE(pending)) {
        if ((tr->pending = PyList_New(0)) == NULL) {
            tr->pending = pending;
            return NULL;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pending); i++) {
            TrackRefObject *rec = (TrackRefObject *)PyList_GET_ITEM(pending, i);
            rec->t.pending = 0;
            Py_XDECREF(settle(tr, &rec->t, ST_CLOSED));   /* the list still holds rec */
        }
        Py_DECREF(pending);
    }
    if (tr->collecting) {
        Py_RETURN_NONE;
    }
    if (PyList_GET_SIZE(tr->recent) && PyList_SetSlice(tr->recent, 0, PY_SSIZE_T_MAX, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The tracker and the site id arg names. NULL with an exception when there is none. */
static ml_tracker *
site_arg(PyObject *module, PyObject *arg, uint32_t *id)
{
    ml_tracker *tr = live_tracker(module);
    if (tr == NULL) {
        return NULL;
    }
    unsigned long n = PyLong_AsUnsignedLong(arg);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (n >= tr->sites.n) {
        PyErr_SetString(PyExc_ValueError, "no such site");
        return NULL;
    }
    *id = (uint32_t)n;
    return tr;
}

/* _tr_note_warned(site): counts a shown warning for site. @return True for its first. */
static PyObject *
tr_note_warned(PyObject *module, PyObject *arg)
{
    uint32_t id;
    ml_tracker *tr = site_arg(module, arg, &id);
    if (tr == NULL) {
        return NULL;
    }
    return PyBool_FromLong(ml_sites_get(&tr->sites, id)->warned++ == 0);
}

/* _tr_open(): [(site, t0, desc, name, obj, probe, probe_mode)] for every open record,
 * newest first; obj is the live object (a strong reference for the caller). */
static PyObject *
tr_open(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    ml_tracker *tr = live_tracker(module);
    if (tr == NULL) {
        return NULL;
    }
    Py_ssize_t n = tr->nopen, i = 0;
    /* references first, with no Python code running, so the ring cannot change */
    PyObject **holders = PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof(PyObject *));
    if (holders == NULL) {
        return PyErr_NoMemory();
    }
    for (ml_track *t = tr->ring.next; t != &tr->ring && i < n; t = t->next) {
        holders[i++] = Py_NewRef(t->holder);
    }
    PyObject *list = PyList_New(0);
    for (Py_ssize_t j = 0; j < i && list != NULL; j++) {
        PyObject *h = holders[j];
        ml_track *t = Py_IS_TYPE(h, tr->TrackRefType) ? &((TrackRefObject *)h)->t
                                                      : &((ResourceObject *)h)->t;
        PyObject *obj = Py_IS_TYPE(h, tr->TrackRefType) ? PyWeakref_GET_OBJECT(h) : h;
        if (t->state != ST_OPEN || obj == Py_None) {
            continue;
        }
        PyObject *desc = record_desc(t);
        PyObject *item = desc == NULL ? NULL :
            Py_BuildValue("(ILNOOOi)", (unsigned)t->site, (long long)t->t0, desc,
                                       t->name ? t->name : Py_None, obj,
                                       t->probe ? t->probe : Py_None, (int)t->probe_mode);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_CLEAR(list);
        }
        Py_XDECREF(item);
    }
    for (Py_ssize_t j = 0; j < i; j++) {
        Py_DECREF(holders[j]);
    }
    PyMem_Free(holders);
    return list;
}

/* _tr_sites(): [(site, tracked, open, leaked, warned)] for every site used. */
static PyObject *
tr_sites(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    ml_tracker *tr = live_tracker(module);
    if (tr == NULL) {
        return NULL;
    }
    PyObject *list = PyList_New(0);
    for (uint32_t id = 0; id < tr->sites.n && list != NULL; id++) {
        const ml_site *s = ml_sites_get(&tr->sites, id);
        if (s->tracked == 0 && s->leaked == 0) {
            continue;
        }
        PyObject *item = Py_BuildValue("(IKKKK)", (unsigned)id, (unsigned long long)s->tracked,
                                       (unsigned long long)s->open, (unsigned long long)s->leaked,
                                       (unsigned long long)s->warned);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_CLEAR(list);
        }
        Py_XDECREF(item);
    }
    return list;
}

/* _tr_site_frames(site): ((filename, lineno, qualname), ...), innermost first. */
static PyObject *
tr_site_frames(PyObject *module, PyObject *arg)
{
    uint32_t id;
    ml_tracker *tr = site_arg(module, arg, &id);
    if (tr == NULL) {
        return NULL;
    }
    const ml_site *s = ml_sites_get(&tr->sites, id);
    const ml_frame *fr = ml_sites_frames(&tr->sites, id);
    Py_ssize_t ncodes = PyList_GET_SIZE(tr->site_codes);
    PyObject *out = PyTuple_New(s->depth);
    for (uint32_t i = 0; i < s->depth && out != NULL; i++) {
        /* the code object is alive: site_codes holds it (find it there, never trust the
           address alone) */
        PyObject *code = NULL;
        /* site_codes is filled in pool order: frame `first + i` is there, unless an
           append failed once (then search it) */
        Py_ssize_t at = (Py_ssize_t)(s->first + i);
        if (at < ncodes && (uintptr_t)PyList_GET_ITEM(tr->site_codes, at) == fr[i].code) {
            code = PyList_GET_ITEM(tr->site_codes, at);
        }
        for (Py_ssize_t k = ncodes; code == NULL && k-- > 0;) {
            if ((uintptr_t)PyList_GET_ITEM(tr->site_codes, k) == fr[i].code) {
                code = PyList_GET_ITEM(tr->site_codes, k);
                break;
            }
        }
        PyObject *item = code == NULL
            ? Py_BuildValue("(sis)", "<unknown>", 0, "<unknown>")
            : Py_BuildValue("(OiO)", ((PyCodeObject *)code)->co_filename,
                            PyCode_Addr2Line((PyCodeObject *)code, fr[i].lasti),
                            ((PyCodeObject *)code)->co_qualname);
        if (item == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyTuple_SET_ITEM(out, i, item);
    }
    return out;
}

/* _tr_configure(dispatch, skip): set once by tracker.py. */
static PyObject *
tr_configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    ml_tracker *tr = live_tracker(module);
    if (tr == NULL) {
        return NULL;
    }
    if (nargs != 2 || !PyCallable_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "_tr_configure(dispatch, skip: tuple)");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args[1]); i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(args[1], i))) {
            PyErr_SetString(PyExc_TypeError, "skip must hold str");
            return NULL;
        }
    }
    Py_XSETREF(tr->dispatch, Py_NewRef(args[0]));
    Py_XSETREF(tr->skip, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

/* _tr_set(level, rate, depth, shutdown). */
static PyObject *
tr_set(PyObject *module, PyObject *args)
{
    ml_tracker *tr = live_tracker(module);
    if (tr == NULL) {
        return NULL;
    }
    int level, depth, shutdown;
    unsigned long long rate;
    if (!PyArg_ParseTuple(args, "iKip", &level, &rate, &depth, &shutdown)) {
        return NULL;
    }
    if (level < 0 || level > 3 || rate < 1 || depth < 1 || depth > ML_SITES_DEPTH_MAX) {
        PyErr_SetString(PyExc_ValueError, "level 0-3, rate >= 1, depth 1-64");
        return NULL;
    }
    tr->level = level;
    tr->rate = rate;
    tr->depth = depth;
    tr->shutdown = shutdown;
    Py_RETURN_NONE;
}

/* _tr_seed(n): every thread's sampling generator restarts from n (0: from the clock). */
static PyObject *
tr_seed(PyObject *module, PyObject *arg)
{
    ml_tracker *tr = live_tracker(module);
    if (tr == NULL) {
        return NULL;
    }
    unsigned long long seed = PyLong_AsUnsignedLongLongMask(arg);
    if (PyErr_Occurred()) {
        return NULL;
    }
    tr->seed = seed ? seed : (uint64_t)now_ns();
    tr->seed_gen++;
    Py_RETURN_NONE;
}

/* _tr_sample(): whether the next automatically tracked object is tracked. */
static PyObject *
tr_sample(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    ml_tracker *tr = tracker_of(module);
    return PyBool_FromLong(tr != NULL && tr->ready && sampled(tr));
}

/* _tr_stats(): (open records, sites, bytes the tracker owns). */
static PyObject *
tr_stats(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    ml_tracker *tr = live_tracker(module);
    if (tr == NULL) {
        return NULL;
    }
    size_t own = sizeof(*tr) + ml_sites_sizeof(&tr->sites) +
                 (size_t)tr->nopen * sizeof(TrackRefObject);
    return Py_BuildValue("(nIn)", tr->nopen, (unsigned)tr->sites.n, (Py_ssize_t)own);
}

/* ------------------------------------------------------------------------------------
 * memleash.Resource: a handle that knows when it is closed, and warns from its finalizer.
 */
static PyObject *
resource_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args, (void)kwds;   /* the subclass's __init__ takes them */
    ml_state *st = ml_state_of_type(type);
    if (st == NULL || st->tr == NULL) {
        return NULL;
    }
    ml_tracker *tr = st->tr;
    ResourceObject *self = (ResourceObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->tr = tr;
    ml_track *t = &self->t;
    t->holder = (PyObject *)self;
    t->state = ST_UNTRACKED;
    if (!tr->ready) {
        return (PyObject *)self;   /* the tracker is gone (interpreter shutdown) */
    }
    if (capture_site(tr, frames_for(tr), &t->site) < 0 || (t->desc = plain_desc((PyObject *)self)) == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    t->flags = R_RESOURCE;
    t->ident = (uintptr_t)self;
    t->type = type;
    t->t0 = now_ns();
    t->state = ST_OPEN;
    ml_site *site = ml_sites_get(&tr->sites, t->site);
    site->tracked++;
    site->open++;
    ring_link(tr, t);
    return (PyObject *)self;
}

/* Resource.close(): marks it closed (whatever the subclass's close() released). */
static PyObject *
resource_close(ResourceObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->tr != NULL && self->tr->ready) {
        (void)settle(self->tr, &self->t, ST_CLOSED);   /* NULL: the ring owns no Resource */
    }
    Py_RETURN_NONE;
}

static PyObject *
resource_enter(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self);
}

static PyObject *
resource_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args, (void)nargs;
    PyObject *res = PyObject_CallMethod(self, "close", NULL);
    if (res == NULL) {
        return NULL;
    }
    Py_DECREF(res);
    Py_RETURN_FALSE;
}

static PyObject *
resource_get_closed(ResourceObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->t.state != ST_OPEN);
}

static PyObject *
resource_get_name(ResourceObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->t.name ? self->t.name : Py_None);
}

static int
resource_set_name(ResourceObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        value = Py_None;
    }
    if (check_name(value) < 0) {
        return -1;
    }
    Py_XSETREF(self->t.name, value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

/* The leak verdict, on an object that is still whole: runs on both deaths (refcount: from
 * dealloc; collection: before any tp_clear). */
static void
resource_finalize(PyObject *self)
{
    ResourceObject *r = (ResourceObject *)self;
    ml_tracker *tr = r->tr;
    if (tr == NULL || !tr->ready || r->t.state != ST_OPEN) {
        return;
    }
    (void)record_leak(tr, &r->t, self);   /* dispatch warns with source=self; the ring
                                             owns no reference to a Resource */
}

static int
resource_traverse(ResourceObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->t.desc);
    Py_VISIT(self->t.name);
    return 0;
}

static void
resource_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    ResourceObject *r = (ResourceObject *)self;
    if (PyObject_CallFinalizerFromDealloc(self) < 0) {
        return;   /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    ml_tracker *tr = r->tr;
    if (tr != NULL && tr->ready && r->t.state == ST_OPEN) {
        /* the finalizer did not run (a subclass's __del__ replaced it, or it ran once
           already before a resurrection): a leak all the same, without a source */
        (void)record_leak(tr, &r->t, NULL);
    } else if (tr != NULL) {
        (void)ring_unlink(tr, &r->t);
    }
    Py_CLEAR(r->t.desc);
    Py_CLEAR(r->t.name);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef resource_methods[] = {
    {"close", (PyCFunction)resource_close, METH_NOARGS,
     "close($self, /)\n--\n\nMark the resource closed. Subclasses release what they hold, then call "
     "super().close() (a subclass's close() is wrapped to do it anyway)."},
    {"__enter__", resource_enter, METH_NOARGS, "__enter__($self, /)\n--\n\nReturn self."},
    {"__exit__", (PyCFunction)(void (*)(void))resource_exit, METH_FASTCALL,
     "__exit__($self, /, *exc_info)\n--\n\nClose the resource; return False."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef resource_getset[] = {
    {"closed", (getter)resource_get_closed, NULL, "True once close() ran.", NULL},
    {"leak_name", (getter)resource_get_name, (setter)resource_set_name,
     "A name for reports (None: the allocation site).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot resource_slots[] = {
    {Py_tp_new, resource_new},
    {Py_tp_dealloc, resource_dealloc},
    {Py_tp_finalize, resource_finalize},
    {Py_tp_traverse, resource_traverse},
    {Py_tp_methods, resource_methods},
    {Py_tp_getset, resource_getset},
    {Py_tp_doc, (void *)"Base of the handles that must be closed (see memleash.Resource)."},
    {0, NULL},
};

static PyType_Spec resource_spec = {
    .name = "memleash._core.Resource",
    .basicsize = sizeof(ResourceObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = resource_slots,
};

/* ------------------------------------------------------------------------------------
 * _TrackingOpen: stands in for open() while tracker.enable(files=True) is on.
 */
/* open() while tracker.enable(files=True) is on: a built-in function (the interpreter
 * calls it directly, as it calls io.open) whose self is a _TrackingOpen. The untracked
 * path is one branch after the real open(), called directly when it is a C function. */
static PyObject *
topen_call(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    TrackingOpenObject *self = (TrackingOpenObject *)op;
    PyObject *real = self->real, *f;
    if (PyCFunction_Check(real) &&
        (PyCFunction_GET_FLAGS(real) & ~METH_COEXIST) == (METH_FASTCALL | METH_KEYWORDS)) {
        f = ((_PyCFunctionFastWithKeywords)(void (*)(void))PyCFunction_GET_FUNCTION(real))(
            PyCFunction_GET_SELF(real), args, nargs, kwnames);
    } else {
        f = PyObject_Vectorcall(real, args, (size_t)nargs, kwnames);
    }
    ml_tracker *tr = self->tr;
    if (f == NULL || tr == NULL || !tr->ready || !sampled(tr)) {
        return f;
    }
    if (find_record(tr, f) == NULL &&
        track_object(tr, f, self->kind, Py_None, frames_for(tr)) < 0) {
        PyErr_WriteUnraisable(op);   /* tracking never fails an open() */
    }
    return f;
}

static PyMethodDef topen_def = {
    "open", (PyCFunction)(void (*)(void))topen_call, METH_FASTCALL | METH_KEYWORDS,
    "open(file, mode='r', buffering=-1, encoding=None, errors=None, newline=None, "
    "closefd=True, opener=None)\n--\n\n"
    "io.open(), tracking the files it opens (memleash.tracker.enable()).",
};

/* _TrackingOpen(real, kind): the stand-in open() (a built-in function over a new
 * _TrackingOpen). */
static PyObject *
topen_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *real, *kind;
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "_TrackingOpen(real, kind)");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO:_TrackingOpen", &real, &kind) || check_kind(kind) < 0) {
        return NULL;
    }
    ml_state *st = ml_state_of_type(type);
    if (st == NULL || st->tr == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the memleash tracker is shut down");
        return NULL;
    }
    TrackingOpenObject *self = (TrackingOpenObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->real = Py_NewRef(real);
    self->kind = Py_NewRef(kind);
    self->tr = st->tr;
    PyObject *func = PyCFunction_NewEx(&topen_def, (PyObject *)self, NULL);
    Py_DECREF(self);   /* the function holds it */
    return func;
}

static int
topen_traverse(TrackingOpenObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->real);
    Py_VISIT(self->kind);
    return 0;
}

static int
topen_clear(TrackingOpenObject *self)
{
    Py_CLEAR(self->real);
    Py_CLEAR(self->kind);
    return 0;
}

static void
topen_dealloc(TrackingOpenObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    (void)topen_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *
topen_get_wrapped(TrackingOpenObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->real ? self->real : Py_None);
}

static PyObject *
topen_repr(TrackingOpenObject *self)
{
    return PyUnicode_FromFormat("<memleash tracking %R>", self->real);
}

static PyGetSetDef topen_getset[] = {
    {"__wrapped__", (getter)topen_get_wrapped, NULL, "The real open().", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot topen_slots[] = {
    {Py_tp_new, topen_new},
    {Py_tp_dealloc, topen_dealloc},
    {Py_tp_traverse, topen_traverse},
    {Py_tp_clear, topen_clear},
    {Py_tp_repr, topen_repr},
    {Py_tp_getset, topen_getset},
    {Py_tp_doc, (void *)"open(), tracking the files it opens (memleash.tracker.enable)."},
    {0, NULL},
};

static PyType_Spec topen_spec = {
    .name = "memleash._core._TrackingOpen",
    .basicsize = sizeof(TrackingOpenObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = topen_slots,
};

/* ------------------------------------------------------------------------------------
 * Module glue
 */
static PyMethodDef ml_tracker_methods[] = {
    {"_tr_died", tr_died, METH_O, "The tracker's weakref callback (internal)."},
    {"_tr_shim_died", tr_shim_died, METH_O, "The observers' weakref callback (internal)."},
    {"_tr_track", (PyCFunction)(void (*)(void))tr_track, METH_FASTCALL,
     "_tr_track(obj, kind, name, explicit): obj, tracked."},
    {"_tr_untrack", tr_untrack, METH_O, "_tr_untrack(obj): True if it was tracked and open."},
    {"_tr_closed", tr_closed, METH_O, "_tr_closed(obj): obj's close() ran."},
    {"_tr_lookup", tr_lookup, METH_O, "_tr_lookup(obj): its record, or None."},
    {"_tr_gc_phase", tr_gc_phase, METH_O, "_tr_gc_phase(started): gc.callbacks."},
    {"_tr_note_warned", tr_note_warned, METH_O, "_tr_note_warned(site): True if first."},
    {"_tr_open", tr_open, METH_NOARGS, "_tr_open(): the open records."},
    {"_tr_sites", tr_sites, METH_NOARGS, "_tr_sites(): the counters of every site."},
    {"_tr_site_frames", tr_site_frames, METH_O, "_tr_site_frames(site): its frames."},
    {"_tr_configure", (PyCFunction)(void (*)(void))tr_configure, METH_FASTCALL, NULL},
    {"_tr_set", tr_set, METH_VARARGS, "_tr_set(level, rate, depth, shutdown)."},
    {"_tr_seed", tr_seed, METH_O, "_tr_seed(n): restart sampling from seed n."},
    {"_tr_sample", tr_sample, METH_NOARGS, "_tr_sample(): sample the next object?"},
    {"_tr_stats", tr_stats, METH_NOARGS, "_tr_stats(): (open, sites, owned bytes)."},
    {NULL, NULL, 0, NULL},
};

int
ml_tracker_module_exec(PyObject *module, ml_state *st)
{
    if (PyModule_AddFunctions(module, ml_tracker_methods) < 0) {
        return -1;
    }
    ml_tracker *tr = PyMem_Calloc(1, sizeof(ml_tracker));
    if (tr == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    st->tr = tr;
    tr->ring.prev = tr->ring.next = &tr->ring;
    tr->level = 1;
    tr->rate = 128;
    tr->depth = 8;
    tr->seed = (uint64_t)now_ns();
    if (ml_sites_init(&tr->sites, &ml_alloc_pymem) != ML_OK) {
        PyErr_NoMemory();
        return -1;
    }
    if ((tr->site_codes = PyList_New(0)) == NULL || (tr->recent = PyList_New(0)) == NULL ||
        (tr->pending = PyList_New(0)) == NULL ||
        (tr->str_finalizing = PyUnicode_InternFromString("_finalizing")) == NULL ||
        (tr->str_flush = PyUnicode_InternFromString("flush")) == NULL ||
        (tr->str_dealloc_warn = PyUnicode_InternFromString("_dealloc_warn")) == NULL ||
        (tr->str_name = PyUnicode_InternFromString("name")) == NULL ||
        (tr->died = PyObject_GetAttrString(module, "_tr_died")) == NULL ||
        (tr->shim_died = PyObject_GetAttrString(module, "_tr_shim_died")) == NULL) {
        return -1;
    }
    PyObject *bases = PyTuple_Pack(1, (PyObject *)&_PyWeakref_RefType);
    if (bases == NULL) {
        return -1;
    }
    tr->TrackRefType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &trackref_spec, bases);
    tr->ShimType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &shim_spec, bases);
    Py_DECREF(bases);
    if (tr->TrackRefType == NULL || tr->ShimType == NULL ||
        (tr->OpenType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &topen_spec, NULL)) == NULL ||
        (tr->ResourceType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &resource_spec, NULL)) == NULL) {
        return -1;
    }
    if (PyModule_AddType(module, tr->ResourceType) < 0 || PyModule_AddType(module, tr->OpenType) < 0 ||
        PyModule_AddType(module, tr->ShimType) < 0) {
        return -1;
    }
    tr->ready = 1;
    return 0;
}

int
ml_tracker_traverse(ml_state *st, visitproc visit, void *arg)
{
    ml_tracker *tr = st->tr;
    if (tr == NULL) {
        return 0;
    }
    Py_VISIT(tr->site_codes);
    Py_VISIT(tr->recent);
    Py_VISIT(tr->pending);
    Py_VISIT(tr->dispatch);
    Py_VISIT(tr->skip);
    Py_VISIT(tr->died);
    Py_VISIT(tr->shim_died);
    Py_VISIT(tr->str_finalizing);
    Py_VISIT(tr->str_flush);
    Py_VISIT(tr->str_dealloc_warn);
    Py_VISIT(tr->str_name);
    Py_VISIT(tr->TrackRefType);
    Py_VISIT(tr->ShimType);
    Py_VISIT(tr->ResourceType);
    Py_VISIT(tr->OpenType);
    return 0;
}

void
ml_tracker_clear(ml_state *st)
{
    ml_tracker *tr = st->tr;
    if (tr == NULL) {
        return;
    }
    tr->ready = 0;   /* callbacks and finalizers from here on only let go */
    /* the ring's references: taken out first, released after */
    while (tr->ring.next != &tr->ring) {
        ml_track *t = tr->ring.next;
        PyObject *owned = ring_unlink(tr, t);
        t->state = ST_UNTRACKED;
        Py_XDECREF(owned);
    }
    Py_CLEAR(tr->site_codes);
    Py_CLEAR(tr->recent);
    Py_CLEAR(tr->pending);
    Py_CLEAR(tr->dispatch);
    Py_CLEAR(tr->skip);
    Py_CLEAR(tr->died);
    Py_CLEAR(tr->shim_died);
    Py_CLEAR(tr->str_finalizing);
    Py_CLEAR(tr->str_flush);
    Py_CLEAR(tr->str_dealloc_warn);
    Py_CLEAR(tr->str_name);
    Py_CLEAR(tr->TrackRefType);
    Py_CLEAR(tr->ShimType);
    Py_CLEAR(tr->ResourceType);
    Py_CLEAR(tr->OpenType);
}

void
ml_tracker_free(ml_state *st)
{
    ml_tracker_clear(st);
    if (st->tr != NULL) {
        ml_sites_free(&st->tr->sites);
        PyMem_Free(st->tr);
        st->tr = NULL;
    }
}
