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
 *     finalizer calls self.close(): the shim tells it apart by `_finalizing`); the record
 *     holds that dict while it is open, and takes its shims out when it settles;
 *   - memleash.Resource knows it itself.
 * Death is seen by a weakref (_TrackRef, a weakref.ref subtype carrying the record), whose
 * callback runs after the finalizer on a refcount death, and before it on a cyclic
 * collection (then a file's verdict waits for the collection's end: its finalizer may
 * still report it). Nothing of a dying object is read. The one thing done to it is
 * taking "close" shims out of its __dict__ (through the dict the record holds), so that a
 * finalizer that runs after the callback reaches the real close().
 *
 * A record is found from its object through the tracker's index, a table keyed by the
 * object's address whose entries count only while the record's weak reference gives
 * that very object (from 3.12 a class's weakref list is out of reach; an address is
 * reused once its object is freed). The index owns a reference to each record in it, and
 * lets it go when the record's object dies (the weakref callback) or when a track() of
 * the object, closed or untracked, makes a new record: a record is never found while
 * another thread frees it (the free-threaded build increments a reference count read
 * from the index, which would bring back a record whose count reached zero). Records of
 * open objects also form a ring (open_resources()); the ring owns a reference to each
 * _TrackRef, and none to a Resource (its record is part of it: the ring's link is
 * borrowed, and only read in the tracker's lock, which a Resource's dealloc takes to
 * unlink itself before it is freed; nothing takes a reference through it). A leak goes to
 * `dispatch` (tracker.py: listeners, warning, counts) — except at interpreter shutdown,
 * when it is only counted.
 *
 * Note on re-entrancy: describing a record (a file name's repr()), reporting a leak
 * (listeners, warnings), taking shims out of a dict (a key's __eq__, a replaced value's
 * __del__) and every allocation (a collection: weakref callbacks, finalizers) run Python
 * code, which may track, close, untrack or drop anything. Whoever calls them holds the
 * records and objects it reads afterwards (find_record returns a new reference); settle
 * and the ring run no Python code. On the free-threaded build each entry point holds
 * the tracker's lock (tracker.h), which those same calls may suspend: the re-checks
 * after them serve both.
 *
 * This file holds the records, the ring, sampling, allocation sites, the verdicts
 * (settle, record_leak) and the _TrackRef type; tracker.h says which file holds the rest
 * and how they are layered.
 */
#include "py/tracker.h"

#include <time.h>

#include "core/status.h"

/* each thread's generator; its seed generation and stream are compared with the
 * tracker's (read in the tracker's lock) */
static _Thread_local uint64_t tl_rng, tl_seed_gen = UINT64_MAX, tl_index = UINT64_MAX;
static _Atomic uint64_t threads_seen;   /* gives each sampling thread its own stream */

int64_t
ml_tr_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

ml_tracker *
ml_tr_of(PyObject *module)
{
    ml_state *st = PyModule_GetState(module);
    return st->tr;
}

/* The tracker, or NULL with RuntimeError once the module is being torn down. */
ml_tracker *
ml_tr_live(PyObject *module)
{
    ml_tracker *tr = ml_tr_of(module);
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

int
ml_tr_sampled(ml_tracker *tr)
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

/* The text of a stack: ((filename, lineno, qualname), ...), innermost first. New
 * reference, or NULL with an exception. Allocates (a collection may run). */
static PyObject *
render_frames(PyCodeObject *const *codes, const ml_frame *frames, uint32_t n)
{
    PyObject *text = PyTuple_New((Py_ssize_t)n);
    for (uint32_t i = 0; i < n && text != NULL; i++) {
        PyObject *item = Py_BuildValue("(OiO)", codes[i]->co_filename,
                                       PyCode_Addr2Line(codes[i], frames[i].lasti),
                                       codes[i]->co_qualname);
        if (item == NULL) {
            Py_CLEAR(text);
            break;
        }
        PyTuple_SET_ITEM(text, (Py_ssize_t)i, item);
    }
    return text;
}

/* Whether a _SiteCode watches the code object at addr (a weak reference whose callback
 * forgets its keys when it dies); makes one when none does. 1, 0 (could not: the
 * exception is cleared) — a key is filed only when every code object in it is watched,
 * so that no key outlives its code and matches a new one at the same address. */
static int
watch_code(ml_tracker *tr, PyCodeObject *code)
{
    PyObject *key = PyLong_FromVoidPtr(code), *ref = NULL;
    int rc = key != NULL ? PyDict_Contains(tr->code_refs, key) : -1;
    if (rc == 0) {
        ref = ml_tr_new_weakref(tr->CodeRefType, (PyObject *)code, tr->code_died);
        if (ref != NULL) {
            ((ml_tr_coderef *)ref)->code = (uintptr_t)code;
            rc = PyDict_SetItem(tr->code_refs, key, ref) == 0;
        } else {
            rc = -1;
        }
    }
    Py_XDECREF(ref);
    Py_XDECREF(key);
    if (rc < 0) {
        PyErr_Clear();
        rc = 0;
    }
    return rc;
}

/* A key seen for the first time: rendered, filed under the site of its text (a new site
 * for a new text). Runs Python code (allocations may collect; a str subclass may compare
 * itself): the tracker is re-read after each call. 0 with *site set, or -1. */
static int
file_new_key(ml_tracker *tr, PyCodeObject *const *codes, const ml_frame *frames, uint32_t n,
             uint32_t *site)
{
    PyObject *text = render_frames(codes, frames, n), *known = NULL;
    if (text == NULL || PyDict_GetItemRef(tr->site_ids, text, &known) < 0) {
        Py_XDECREF(text);
        return -1;
    }
    int rc = 0;
    if (known != NULL) {
        *site = (uint32_t)PyLong_AsUnsignedLong(known);
        Py_DECREF(known);
    } else {
        /* the text first, then the site: site_text[id] is site id's text (nothing runs
           between the two) */
        Py_ssize_t at = PyList_GET_SIZE(tr->site_text);
        if (PyList_Append(tr->site_text, text) < 0) {
            Py_DECREF(text);
            return -1;
        }
        int status = (size_t)at == tr->sites.n ? ml_sites_new(&tr->sites, site) : ML_ERR_FULL;
        if (status != ML_OK) {
            (void)PyList_SetSlice(tr->site_text, at, at + 1, NULL);   /* shrinks: cannot fail */
            *site = 0;   /* too many distinct sites: the frameless one */
            if (status == ML_ERR_NOMEM) {
                PyErr_NoMemory();
                rc = -1;
            }
        } else {
            PyObject *id = PyLong_FromUnsignedLong(*site);
            if (id == NULL || PyDict_SetItem(tr->site_ids, text, id) < 0) {
                PyErr_Clear();   /* the site stands; its text may make a second one later */
            }
            Py_XDECREF(id);
        }
    }
    Py_DECREF(text);
    if (rc == 0) {
        int watched = 1;
        for (uint32_t i = 0; i < n && watched; i++) {
            watched = watch_code(tr, codes[i]);
        }
        if (watched) {
            /* a failure only means the key is rendered again next time */
            (void)ml_sites_add_key(&tr->sites, frames, n, *site);
        }
    }
    return rc;
}

/* The site of the current stack: up to `depth` frames from the first one outside the
 * skipped prefixes (memleash, the standard library) — or from the innermost frame when
 * every frame is skipped. Site 0 when there is no Python frame. A stack seen before is
 * found by its key (code objects and instruction offsets) without rendering anything.
 * -1 on error. */
int
ml_tr_capture_site(ml_tracker *tr, int depth, uint32_t *site)
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
    int rc = 0;
    if (ml_sites_find(&tr->sites, frames, n, site) != ML_OK) {
        rc = file_new_key(tr, codes, frames, n, site);   /* the codes are held meanwhile */
    }
    for (uint32_t i = 0; i < n; i++) {
        Py_DECREF(codes[i]);
    }
    return rc;
}

/* _tr_code_died(ref): a code object some keys were made from died; they never match
 * again (a new code object may take its address). */
PyObject *
ml_tr_code_died(PyObject *module, PyObject *ref)
{
    ml_tracker *tr = ml_tr_of(module);
    if (tr == NULL || !tr->ready || !Py_IS_TYPE(ref, tr->CodeRefType)) {
        Py_RETURN_NONE;
    }
    Py_INCREF(ref);   /* the dict's reference is let go below */
    uintptr_t code = ((ml_tr_coderef *)ref)->code;
    (void)ml_sites_forget_code(&tr->sites, code);
    PyObject *key = PyLong_FromVoidPtr((void *)code), *cur = NULL;
    if (key != NULL && PyDict_GetItemRef(tr->code_refs, key, &cur) > 0 && cur == ref) {
        (void)PyDict_DelItem(tr->code_refs, key);
    }
    PyErr_Clear();   /* an int-keyed dict: only memory can fail, and nothing is lost */
    Py_XDECREF(cur);
    Py_XDECREF(key);
    Py_DECREF(ref);
    Py_RETURN_NONE;
}

static int
coderef_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return Py_TYPE(self)->tp_base->tp_traverse(self, visit, arg);
}

static void
coderef_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_base->tp_dealloc(self);   /* weakref's dealloc untracks and frees */
    Py_DECREF(tp);
}

static PyType_Slot coderef_slots[] = {
    {Py_tp_dealloc, coderef_dealloc},
    {Py_tp_traverse, coderef_traverse},
    {Py_tp_doc, (void *)"A weak reference to a code object some sites were found from (internal)."},
    {0, NULL},
};

PyType_Spec ml_tr_coderef_spec = {
    .name = "memleash._core._SiteCode",
    .basicsize = sizeof(ml_tr_coderef),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = coderef_slots,
};

/* ------------------------------------------------------------------------------------
 * Records
 */
void
ml_tr_ring_link(ml_tracker *tr, ml_track *t)
{
    t->prev = &tr->ring;
    t->next = tr->ring.next;
    tr->ring.next->prev = t;
    tr->ring.next = t;
    tr->nopen++;
}

/* Takes t out of the ring. @return the reference the ring held (a _TrackRef), or NULL
 * (a Resource's record, which the ring does not own). The caller releases it last. */
PyObject *
ml_tr_ring_unlink(ml_tracker *tr, ml_track *t)
{
    if (t->next == NULL) {
        return NULL;
    }
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->prev = t->next = NULL;
    tr->nopen--;
    return (t->flags & ML_TR_R_RESOURCE) ? NULL : t->holder;
}

static void
track_clear_fields(ml_track *t)
{
    Py_CLEAR(t->desc);
    Py_CLEAR(t->name);
    Py_CLEAR(t->methods);
    Py_CLEAR(t->probe);
    Py_CLEAR(t->dict);
}

/* A new weak reference of one of our weakref.ref subtypes: weakref's tp_new alone (its
 * __init__ only checks the same arguments again). */
PyObject *
ml_tr_new_weakref(PyTypeObject *type, PyObject *obj, PyObject *callback)
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
PyObject *
ml_tr_settle(ml_tracker *tr, ml_track *t, int state)
{
    if (t->state != ML_TR_OPEN) {
        return NULL;
    }
    t->state = (uint8_t)state;
    t->settled = 1;
    if (tr->ready) {
        ml_sites_get(&tr->sites, t->site)->open--;
    }
    return ml_tr_ring_unlink(tr, t);
}

/* The index: a table keyed by the tracked object's address (compared by identity alone,
 * no equality callback), whose values are the records. A record leaves it when its
 * object dies (the weakref callback) or when it is freed; an entry left by an object
 * that died while its record lived on (a collection clears weak references without
 * calling back a record that is garbage too) is told apart by the record's weak
 * reference, which no longer gives that object, and replaced. Nothing walks an object's
 * weakref list (from 3.12 most classes keep it out of reach: managed weak references). */
static uint64_t
addr_hash(uintptr_t addr)
{
    return mix64((uint64_t)addr);
}

ml_tr_ref *
ml_tr_find_record(ml_tracker *tr, PyObject *obj)
{
    uint32_t id;
    if (ml_table_find(&tr->index, addr_hash((uintptr_t)obj), obj, NULL, NULL, &id) != ML_OK) {
        return NULL;
    }
    ml_tr_ref *rec = tr->index.ents[id].value;   /* held by the index */
    PyObject *referent = ml_weak_get((PyObject *)rec);   /* obj itself, or NULL when dead */
    int same = referent == obj;
    Py_XDECREF(referent);   /* obj is held by the caller: nothing is freed here */
    return same ? (ml_tr_ref *)Py_NewRef(rec) : NULL;
}

ml_tr_ref *
ml_tr_find_tracked(ml_tracker *tr, PyObject *obj)
{
    ml_tr_ref *rec = ml_tr_find_record(tr, obj);
    if (rec != NULL && rec->t.settled && rec->t.state != ML_TR_LEAKED &&
        !(rec->t.flags & ML_TR_K_IO_INNER)) {
        Py_CLEAR(rec);   /* closed or untracked: tracked anew */
    }
    return rec;
}

int
ml_tr_index_add(ml_tracker *tr, ml_tr_ref *rec)
{
    uint64_t h = addr_hash(rec->t.ident);
    uint32_t id;
    PyObject *old = NULL;
    if (ml_table_find(&tr->index, h, (void *)rec->t.ident, NULL, NULL, &id) == ML_OK) {
        /* a dead object's record, or a settled one that rec replaces */
        old = tr->index.ents[id].value;
        ((ml_tr_ref *)old)->t.indexed = 0;
        ml_table_remove(&tr->index, id);
    }
    int rc = 0;
    if (ml_table_reserve(&tr->index) != ML_OK) {
        PyErr_NoMemory();
        rc = -1;
    } else {
        (void)ml_table_insert(&tr->index, h, (void *)rec->t.ident, Py_NewRef(rec));
        rec->t.indexed = 1;
    }
    Py_XDECREF(old);   /* the index's reference, released last (its fields' decrefs) */
    return rc;
}

PyObject *
ml_tr_index_remove(ml_tracker *tr, ml_tr_ref *rec)
{
    if (!rec->t.indexed) {
        return NULL;
    }
    rec->t.indexed = 0;
    uint32_t id;
    if (ml_table_find(&tr->index, addr_hash(rec->t.ident), (void *)rec->t.ident, NULL, NULL,
                      &id) == ML_OK && tr->index.ents[id].value == rec) {
        ml_table_remove(&tr->index, id);
        return (PyObject *)rec;
    }
    return NULL;   /* not reached: an indexed record is filed under its ident */
}

void
ml_tr_index_clear(ml_tracker *tr)
{
    /* one at a time, the table consistent at each release (a record's fields may run
       code when freed; nothing files a record once the tracker is not ready) */
    for (uint32_t id = 0; id < tr->index.top; id++) {
        ml_tr_ref *rec = tr->index.ents[id].key != NULL ? tr->index.ents[id].value : NULL;
        if (rec != NULL) {
            ml_table_remove(&tr->index, id);
            rec->t.indexed = 0;
            Py_DECREF(rec);
        }
    }
}

/* Whether obj's attribute `name` says yes: true (ML_TR_PROBE_TRUE) or not None
 * (ML_TR_PROBE_NOT_NONE). Runs Python code; an error is "no", and an exception set on
 * entry is kept. */
int
ml_tr_attr_says(PyObject *obj, PyObject *name, int mode)
{
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *v = PyObject_GetAttr(obj, name);
    int yes = v != NULL && (mode == ML_TR_PROBE_NOT_NONE ? v != Py_None : PyObject_IsTrue(v) == 1);
    Py_XDECREF(v);
    PyErr_Clear();
    PyErr_Restore(et, ev, tb);
    return yes;
}

/* Whether obj (alive) says it is closed, by its kind's probe. */
int
ml_tr_probe_closed(ml_track *t, PyObject *obj)
{
    return t->probe != NULL && t->probe_mode != ML_TR_PROBE_NONE &&
           ml_tr_attr_says(obj, t->probe, t->probe_mode);
}

/* t's description (a new reference): made from (type, name) the first time for a file.
 * The name's repr() runs Python code: the caller holds the record. */
PyObject *
ml_tr_record_desc(ml_track *t)
{
    if (!PyTuple_Check(t->desc)) {
        return Py_NewRef(t->desc);
    }
    PyObject *pair = Py_NewRef(t->desc);   /* its items are read across the repr() */
    const char *tp_name = ((PyTypeObject *)PyTuple_GET_ITEM(pair, 0))->tp_name;
    PyObject *fname = PyTuple_GET_ITEM(pair, 1);
    PyObject *desc = fname == Py_None ? PyUnicode_FromFormat("<%s>", tp_name)
                                      : PyUnicode_FromFormat("<%s name=%R>", tp_name, fname);
    if (desc != NULL && t->desc == pair) {
        Py_SETREF(t->desc, Py_NewRef(desc));
    }
    Py_DECREF(pair);
    return desc;
}

/* A leak: count it, and hand it to dispatch (unless at shutdown). Runs Python code: the
 * caller holds the record. */
static void
report_leak(ml_tracker *tr, ml_track *t, PyObject *source)
{
    ml_sites_get(&tr->sites, t->site)->leaked++;
    if (tr->shutdown || tr->dispatch == NULL) {
        return;
    }
    PyObject *dispatch = Py_NewRef(tr->dispatch);   /* _tr_configure may replace it */
    PyObject *desc = ml_tr_record_desc(t);
    PyObject *res = desc == NULL ? NULL :
        PyObject_CallFunction(dispatch, "IOOLiO", (unsigned)t->site, desc,
                              t->name ? t->name : Py_None, (long long)t->t0,
                              (int)t->flags, source ? source : Py_None);
    if (res == NULL && desc != NULL) {
        /* -W error::ResourceWarning, a listener that raised: reported as unraisable, never
           lost, naming the leaked object rather than memleash's handler */
        PyErr_FormatUnraisable("Exception ignored in the leak report of %U", desc);
    } else if (res == NULL) {
        PyErr_FormatUnraisable("Exception ignored while describing a leaked object");
    }
    Py_XDECREF(desc);
    Py_XDECREF(res);
    Py_DECREF(dispatch);
}

/* ------------------------------------------------------------------------------------
 * _TrackRef
 */
static int
trackref_traverse(ml_tr_ref *self, visitproc visit, void *arg)
{
    Py_VISIT(self->t.desc);
    Py_VISIT(self->t.name);
    Py_VISIT(self->t.methods);
    Py_VISIT(self->t.probe);
    Py_VISIT(self->t.dict);
    Py_VISIT(Py_TYPE(self));
    return Py_TYPE(self)->tp_base->tp_traverse((PyObject *)self, visit, arg);
}

static void
trackref_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    ml_tr_ref *rec = (ml_tr_ref *)self;
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, trackref_dealloc)
    /* out of the index and the ring, which hold references: no one else reaches the
       record, and no lock is needed (its last reference may be let go anywhere, even on
       another thread than the one that dropped it: a free-threaded build's merge of
       its counts) */
    assert(!rec->t.indexed && rec->t.next == NULL);
    track_clear_fields(&rec->t);
    tp->tp_base->tp_dealloc(self);   /* weakref's dealloc clears the reference and frees */
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyType_Slot trackref_slots[] = {
    {Py_tp_dealloc, trackref_dealloc},
    {Py_tp_traverse, trackref_traverse},
    {Py_tp_doc, (void *)"A tracked object's record: a weak reference to it (internal)."},
    {0, NULL},
};

PyType_Spec ml_tr_trackref_spec = {
    .name = "memleash._core._TrackRef",
    .basicsize = sizeof(ml_tr_ref),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = trackref_slots,
};

/* t (open) leaked: settled so, kept findable by a warning's source address until the
 * collection ends (CPython warns after us), counted and dispatched. Runs Python code;
 * an exception set on entry is kept. @return the ring's reference to release. */
PyObject *
ml_tr_record_leak(ml_tracker *tr, ml_track *t, PyObject *source)
{
    if (!tr->ready || t->state != ML_TR_OPEN) {
        return NULL;
    }
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *owned = ml_tr_settle(tr, t, ML_TR_LEAKED);
    if ((t->flags & ML_TR_K_CPYTHON_WARNS) && !(t->flags & ML_TR_R_RESOURCE) && tr->collecting &&
        !tr->shutdown && PyList_Append(tr->recent, t->holder) < 0) {
        PyErr_Clear();
    }
    report_leak(tr, t, source);
    PyErr_Restore(et, ev, tb);
    return owned;
}
