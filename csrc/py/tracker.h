/* tracker.h — what the resource tracker's files share: its records, the tracker itself,
 * and the functions one file offers the files above it.
 *
 * The tracker is split by concern, each file calling only the files below it:
 *
 *   tracker_api.c       the module functions (_tr_track, _tr_open, ... and the weakref
 *         |             callback _tr_died), module exec, traverse, clear and free
 *   tracker_resource.c  tracking an object (its record filled, its observers put),
 *         |             memleash.Resource, and the tracking open() (_TrackingOpen)
 *   tracker_shim.c      _CloseShim: the observers put in instance dicts
 *         |
 *   tracker.c           the design note; records, the ring of open records, sampling,
 *                       allocation sites, the verdicts (settle, record_leak), _TrackRef
 *
 * Names shared between the files start with ml_tr_ (ML_TR_ for constants).
 *
 * The tracker's lock: everything in ml_tracker and in every record (ml_track) is read
 * and written in a critical section on the tracker's module (tr->module), entered once
 * at each entry point — the module functions, a shim's call, Resource's methods, the
 * tracking open(), and the deallocs and clears that touch the index or a record's
 * observer (ML_TR_LOCKED, or ml_tr_lock / ml_tr_unlock where nothing is returned).
 * On builds with the GIL it compiles to nothing. As every critical section, it is
 * suspended while its thread waits (for another lock, on I/O, for a collection): the
 * points where Python code runs are such points, and were already the points where
 * another thread or a re-entrant call may change the tracker — the code re-reads what it
 * needs after them (see tracker.c's note on re-entrancy). An entry point reached again
 * from inside one (a listener that tracks, a dealloc) takes no second section on the
 * module while its own is the thread's top-most (ml_section_begin, compat.h).
 */
#ifndef ML_PY_TRACKER_H
#define ML_PY_TRACKER_H

#include "py/module.h"

#include "core/sites.h"
#include "core/table.h"

enum { ML_TR_OPEN = 0, ML_TR_CLOSED = 1, ML_TR_UNTRACKED = 2, ML_TR_LEAKED = 3 };

/* kind flags (tracker.py's kinds, and the record's flags) */
enum {
    ML_TR_K_CPYTHON_WARNS = 1,    /* CPython warns about this type itself: don't warn again */
    ML_TR_K_IO = 2,               /* an io object: a close() while `_finalizing` is the
                                     finalizer's */
    ML_TR_K_CLASS_HOOKED = 4,     /* close() seen through class-level wrappers: no shims */
    ML_TR_K_IO_INNER = 8,         /* a built-in io stack, watched from its innermost stream */
    ML_TR_R_RESOURCE = 64,        /* the record is embedded in a memleash.Resource */
};

/* probe modes: how a live object says it is closed (after a closing method ran) */
enum { ML_TR_PROBE_NONE = 0, ML_TR_PROBE_TRUE = 1, ML_TR_PROBE_NOT_NONE = 2 };

typedef struct ml_track {
    struct ml_track *prev, *next;   /* the ring of open records; NULL when not in it */
    struct ml_tracker *tr;  /* borrowed: the module outlives every record (the record's
                               type holds it); never found through the type, whose MRO a
                               collection may have cleared by dealloc time */
    PyObject *holder;       /* borrowed: the _TrackRef, or the Resource itself */
    PyObject *desc;         /* str: what the object was, captured at track time */
    PyObject *name;         /* str given to track(name=...), or NULL */
    PyObject *methods;      /* tuple of str: the closing methods shimmed, or NULL */
    PyObject *probe;        /* str: the attribute that says closed, or NULL */
    PyObject *dict;         /* the instance dict holding this record's "close" shims while
                               it is open (they are taken out when it settles), or NULL */
    struct ml_tr_shim *shim;   /* borrowed: an io stack's observer on its innermost
                               stream (cleared by the observer's dealloc), or NULL */
    uintptr_t ident;        /* the object's address: an identity, never dereferenced; the
                               key of the tracker's index, and outlives the object, for
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
    uint8_t indexed;        /* filed in the tracker's index under ident (which holds it) */
    uint8_t settled;        /* left the open state once (closed, untracked, leaked) */
} ml_track;

typedef struct {
    PyWeakReference wr;
    ml_track t;
} ml_tr_ref;

/* what a shim stands in for: a type's close(); the flush() a raw file's close() calls;
 * the _dealloc_warn() a stream's finalizer calls on the one under it */
enum { ML_TR_SHIM_CLOSE = 0, ML_TR_SHIM_FLUSH = 1, ML_TR_SHIM_DEALLOC_WARN = 2 };

typedef struct ml_tr_shim {
    PyWeakReference wr;     /* a weak reference to obj, the object whose __dict__ holds
                               the shim: how the shim reaches it (its fields untouched) */
    vectorcallfunc vectorcall;   /* the shim's call: its type's vectorcall offset */
    PyObject *rec;          /* the _TrackRef (strong) */
    PyObject *obj;          /* borrowed, for one case only: an io stack's observer called
                               while a collection finalizes the stream (whose weak
                               references the collection cleared first); see
                               tracker_shim.c. NULL for the other roles, and cleared by
                               _tr_shim_died and when the collection ends */
    PyObject *meth;         /* str: the method name this shim stands in for */
    PyObject *prev;         /* what the instance dict held under that name before, or NULL */
    int role;
} ml_tr_shim;

typedef struct {
    PyObject_HEAD
    ml_track t;             /* t.tr: the module outlives every instance (its Resource base
                               type holds it) */
} ml_tr_resource;

typedef struct {
    PyObject_HEAD
    PyObject *real;         /* the open() it stands in for */
    PyObject *kind;         /* the file kind tuple */
    int direct;             /* real is io.open's C function (args, nargs, kwnames): called
                               directly, and what it returns is a new object */
    struct ml_tracker *tr;  /* borrowed: the module outlives us (our type holds it) */
} ml_tr_open;

/* A weak reference to a code object that keys of ml_tracker.sites were made from. */
typedef struct {
    PyWeakReference wr;
    uintptr_t code;         /* its address: the keys to forget when it dies */
} ml_tr_coderef;

typedef struct ml_tracker {
    PyObject *module;       /* borrowed: the module whose state holds the tracker; its
                               critical section is the tracker's lock */
    ml_sites sites;         /* sites, their counters, and the keys filed under them */
    PyObject *site_text;    /* list: site id -> ((filename, lineno, qualname), ...) */
    PyObject *site_ids;     /* dict: that text -> site id (one site per text) */
    PyObject *code_refs;    /* dict: code address -> _SiteCode watching it (no code object
                               is kept alive by a site) */
    PyObject *code_died;    /* the _SiteCodes' callback */
    ml_track ring;          /* head of the open records */
    ml_table index;         /* tracked object's address -> its _TrackRef (a strong
                               reference: a record leaves the index when its object dies,
                               or when a new record of it replaces a settled one); an
                               entry counts only while the record's weak reference still
                               gives that object */
    Py_ssize_t nopen;
    PyObject *recent;       /* list of leaked _TrackRefs whose CPython warning may follow */
    PyObject *pending;      /* list of io _TrackRefs whose object a collection found dead
                               before its finalizer ran: judged when the collection ends */
    PyObject *dispatch;     /* tracker.py's leak handler, or NULL */
    PyObject *skip;         /* tuple of str: path prefixes a site's first frame skips */
    PyObject *died;         /* the weakref callback (a function of this module) */
    PyObject *shim_died;    /* the shims' weakref callback */
    PyObject *str_finalizing, *str_flush, *str_dealloc_warn, *str_name, *str_closefd;
    PyTypeObject *TrackRefType, *ShimType, *ResourceType, *OpenType, *CodeRefType;
    int level;              /* 0 disabled, 1 simple, 2 advanced, 3 paranoid */
    int depth;              /* frames kept by advanced and paranoid */
    uint64_t rate;          /* simple/advanced sample 1 in rate */
    uint64_t seed_gen;      /* bumped by _tr_seed: threads re-seed */
    uint64_t seed;
    int shutdown;           /* leaks are only counted */
    int collecting;         /* a cyclic collection is under way (gc.callbacks) */
    int ready;
} ml_tracker;


/* Defines `static ret name params`, which runs `call` holding tr's lock (tr: an
 * expression of the params, never NULL). */
#define ML_TR_LOCKED(ret, name, params, tr, call) \
    ML_LOCKED_ON(ret, name, params, (tr)->module, call)

/* tr's lock around code that returns nothing: ml_tr_lock(tr, &cs) ... ml_tr_unlock(&cs),
 * with cs on the caller's stack. */
typedef ml_section ml_tr_section;
static inline void ml_tr_lock(ml_tracker *tr, ml_tr_section *cs) { ml_section_begin(cs, tr->module); }
static inline void ml_tr_unlock(ml_tr_section *cs) { ml_section_end(cs); }

/* ------------------------------------------------------------------------------------
 * tracker.c: records, ring, sampling, sites, verdicts
 */
extern PyType_Spec ml_tr_trackref_spec;
extern PyType_Spec ml_tr_coderef_spec;

/* monotonic ns */
int64_t ml_tr_now_ns(void);

/* The module's tracker (NULL once freed). */
ml_tracker *ml_tr_of(PyObject *module);

/* The tracker, or NULL with RuntimeError once the module is being torn down. */
ml_tracker *ml_tr_live(PyObject *module);

/* Whether the next automatically tracked object is tracked (draws from this thread's
 * generator). */
int ml_tr_sampled(ml_tracker *tr);

/* The frames a site keeps at the current level. */
static inline int
ml_tr_frames_for(ml_tracker *tr)
{
    return tr->level >= 2 ? tr->depth : 1;
}

/* The site of the current stack (see tracker.c). 0 or -1. */
int ml_tr_capture_site(ml_tracker *tr, int depth, uint32_t *site);

/* _tr_code_died(ref): the _SiteCodes' weakref callback (a module function). */
PyObject *ml_tr_code_died(PyObject *module, PyObject *ref);

void ml_tr_ring_link(ml_tracker *tr, ml_track *t);

/* Takes t out of the ring. @return the reference the ring held (a _TrackRef), or NULL
 * (a Resource's record, which the ring does not own). The caller releases it last. */
PyObject *ml_tr_ring_unlink(ml_tracker *tr, ml_track *t);

/* A new weak reference of one of our weakref.ref subtypes. */
PyObject *ml_tr_new_weakref(PyTypeObject *type, PyObject *obj, PyObject *callback);

/* Leaves the open state: closed or untracked. @return the ring's reference to release. */
PyObject *ml_tr_settle(ml_tracker *tr, ml_track *t, int state);

/* The record of obj (alive: the caller holds it), from the index. @return a new
 * reference, or NULL (untracked; no exception). */
ml_tr_ref *ml_tr_find_record(ml_tracker *tr, PyObject *obj);

/* The record to which a track() of obj (alive) defers: its record, unless that one was
 * closed or untracked (then obj is tracked anew; a file's stays: its observer lives on
 * under it). @return a new reference, or NULL (no exception). */
ml_tr_ref *ml_tr_find_tracked(ml_tracker *tr, PyObject *obj);

/* Files rec in the index under its object's address (the index takes a reference of its
 * own), replacing what a dead object, or a settled record of the same object, left
 * there. Runs code (the replaced record may be freed). 0, or -1 with MemoryError. */
int ml_tr_index_add(ml_tracker *tr, ml_tr_ref *rec);

/* Takes rec out of the index (if it is there). @return the index's reference, or NULL:
 * the caller releases it last. */
PyObject *ml_tr_index_remove(ml_tracker *tr, ml_tr_ref *rec);

/* Lets go of every record in the index (teardown). */
void ml_tr_index_clear(ml_tracker *tr);

/* Whether obj's attribute `name` says yes (ML_TR_PROBE_TRUE / _NOT_NONE). Runs Python
 * code; an error is "no", and an exception set on entry is kept. */
int ml_tr_attr_says(PyObject *obj, PyObject *name, int mode);

/* Whether obj (alive) says it is closed, by its kind's probe. */
int ml_tr_probe_closed(ml_track *t, PyObject *obj);

/* t's description (a new reference). */
PyObject *ml_tr_record_desc(ml_track *t);

/* t (open) leaked: settled, kept for CPython's warning, counted and dispatched. Runs
 * Python code; an exception set on entry is kept. @return the ring's reference to
 * release. */
PyObject *ml_tr_record_leak(ml_tracker *tr, ml_track *t, PyObject *source);

/* ------------------------------------------------------------------------------------
 * tracker_shim.c: observers in instance dicts
 */
extern PyType_Spec ml_tr_shim_spec;

/* The "close" shims of a built-in type with a __dict__ (rec keeps the dict). 0 or -1. */
int ml_tr_install_shims(ml_tracker *tr, ml_tr_ref *rec, PyObject *obj, PyObject *methods);

/* An io stack's observer, on its innermost stream (see tracker_shim.c). 0 or -1. */
int ml_tr_install_io_shims(ml_tracker *tr, ml_tr_ref *rec, PyObject *obj, PyObject *chain,
                           int *warns);

/* Takes rec's "close" shims out of its object's dict (see tracker_shim.c). Runs Python
 * code: the caller holds rec. */
void ml_tr_drop_shims(ml_tracker *tr, ml_tr_ref *rec);

/* _tr_shim_died(ref): the shims' weakref callback (a module function). */
PyObject *ml_tr_shim_died(PyObject *module, PyObject *ref);

/* ------------------------------------------------------------------------------------
 * tracker_resource.c: tracking, Resource, the tracking open()
 */
extern PyType_Spec ml_tr_resource_spec;
extern PyType_Spec ml_tr_open_spec;

/* Tracks obj (not tracked yet). 0 or -1. */
int ml_tr_track_object(ml_tracker *tr, PyObject *obj, PyObject *kind, PyObject *name,
                       int depth);

/* 0, or -1 with TypeError: kind is not a 5-tuple / name is not a str or None. */
int ml_tr_check_kind(PyObject *kind);
int ml_tr_check_name(PyObject *name);

#endif
