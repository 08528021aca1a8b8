/* tracker_api.c — the tracker's module functions (memleash._core._tr_*), called by
 * tracker.py: track, untrack, closed, lookup, the reports (open records, sites, frames),
 * configuration and sampling; the weakref callback _tr_died, which gives a record its
 * verdict; and the module glue (exec, traverse, clear, free).
 *
 * Note on re-entrancy: _tr_untrack probes the object (Python code), _tr_died reports a
 * leak (listeners, warnings), _tr_open builds Python objects: each holds the records it
 * uses strongly across those calls, and _tr_open takes every reference before it runs
 * anything.
 */
#include "py/tracker.h"

#include "core/status.h"

/* _tr_died(ref): the weakref callback: the record's verdict (leaked, or closed), its
 * object out of the index, its "close" shims out of the object's dict. */
static PyObject *
tr_died(PyObject *module, PyObject *ref)
{
    ml_tracker *tr = ml_tr_of(module);
    if (tr == NULL || !tr->ready || !Py_IS_TYPE(ref, tr->TrackRefType)) {
        Py_RETURN_NONE;
    }
    ml_tr_ref *rec = (ml_tr_ref *)Py_NewRef(ref);
    ml_track *t = &rec->t;
    PyObject *indexed = ml_tr_index_remove(tr, rec);   /* released last */
    ml_tr_drop_shims(tr, rec);   /* a finalizer still to come reaches the real methods */
    PyObject *owned = NULL;
    if (t->state == ML_TR_OPEN && (t->flags & ML_TR_K_IO_INNER)) {
        /* an io object: its finalizer reports a leak through the shims below it. On a
           refcount death it has run already, so no report means closed; a collection
           runs it after this callback */
        if (tr->collecting && PyList_Append(tr->pending, ref) == 0) {
            t->pending = 1;
        } else {
            PyErr_Clear();
            owned = ml_tr_settle(tr, t, ML_TR_CLOSED);
        }
    } else {
        owned = ml_tr_record_leak(tr, t, NULL);
    }
    Py_XDECREF(owned);
    Py_XDECREF(indexed);
    Py_DECREF(rec);
    Py_RETURN_NONE;
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
    ml_tracker *tr = ml_tr_live(module);
    if (tr == NULL) {
        return NULL;
    }
    PyObject *obj = args[0];
    if (ml_tr_check_kind(args[1]) < 0 || ml_tr_check_name(args[2]) < 0) {
        return NULL;
    }
    int explicit = PyObject_IsTrue(args[3]);
    if (explicit < 0) {
        return NULL;
    }
    if (!explicit && !ml_tr_sampled(tr)) {
        return Py_NewRef(obj);
    }
    ml_tr_ref *known = ml_tr_find_tracked(tr, obj);
    if (known != NULL) {
        Py_DECREF(known);
    } else if (ml_tr_track_object(tr, obj, args[1], args[2], ml_tr_frames_for(tr)) < 0) {
        return NULL;
    }
    return Py_NewRef(obj);
}

/* Settles rec (held by the caller) and takes its "close" shims out. */
static void
settle_and_drop(ml_tracker *tr, ml_tr_ref *rec, int state)
{
    Py_XDECREF(ml_tr_settle(tr, &rec->t, state));   /* the caller still holds rec */
    ml_tr_drop_shims(tr, rec);
}

/* _tr_untrack(obj): True if obj was tracked and open (it now counts as closed). */
static PyObject *
tr_untrack(PyObject *module, PyObject *obj)
{
    ml_tracker *tr = ml_tr_live(module);
    if (tr == NULL) {
        return NULL;
    }
    if (PyObject_TypeCheck(obj, tr->ResourceType)) {
        ml_track *t = &((ml_tr_resource *)obj)->t;
        int was_open = t->state == ML_TR_OPEN;
        (void)ml_tr_settle(tr, t, ML_TR_UNTRACKED);   /* NULL: the ring owns no Resource */
        return PyBool_FromLong(was_open);
    }
    ml_tr_ref *rec = ml_tr_find_record(tr, obj);   /* a new reference */
    if (rec == NULL) {
        Py_RETURN_FALSE;
    }
    /* a file's close() is not seen: ask it (runs Python code) */
    int closed = rec->t.state == ML_TR_OPEN && (rec->t.flags & ML_TR_K_IO_INNER) &&
                 ml_tr_probe_closed(&rec->t, obj);
    int was_open = rec->t.state == ML_TR_OPEN;
    settle_and_drop(tr, rec, closed ? ML_TR_CLOSED : ML_TR_UNTRACKED);
    Py_DECREF(rec);
    return PyBool_FromLong(was_open && !closed);
}

/* _tr_closed(obj): a class-level close wrapper saw obj's close() return. */
static PyObject *
tr_closed(PyObject *module, PyObject *obj)
{
    ml_tracker *tr = ml_tr_live(module);
    if (tr == NULL) {
        return NULL;
    }
    ml_tr_ref *rec = ml_tr_find_record(tr, obj);
    if (rec != NULL) {
        settle_and_drop(tr, rec, ML_TR_CLOSED);
        Py_DECREF(rec);
    }
    Py_RETURN_NONE;
}

/* (site, desc, name, state, t0) of the record `holder` (a _TrackRef or a Resource, held
 * by the caller). */
static PyObject *
record_info(ml_track *t)
{
    static const char *states[] = {"open", "closed", "untracked", "leaked"};
    PyObject *desc = ml_tr_record_desc(t);   /* may run Python code */
    if (desc == NULL) {
        return NULL;
    }
    return Py_BuildValue("(INOsL)", (unsigned)t->site, desc, t->name ? t->name : Py_None,
                         states[t->state], (long long)t->t0);
}

/* Whether the record in `list` at i is obj's (by address and type: the object is dead,
 * or being finalized by a collection) — or one of the streams under it. */
static int
matches_dead(PyObject *list, Py_ssize_t i, PyObject *obj)
{
    const ml_track *t = &((ml_tr_ref *)PyList_GET_ITEM(list, i))->t;
    uintptr_t id = (uintptr_t)obj;
    PyTypeObject *tp = Py_TYPE(obj);
    return (t->ident == id && t->type == tp) ||
           (t->layers[0] == id && t->layer_types[0] == tp) ||
           (t->layers[1] == id && t->layer_types[1] == tp);
}

/* _tr_lookup(obj): (site, desc, name, state, t0) of obj's record — a live one, or one
 * that a collection just found dead (matched by address and type: kept until the
 * collection ends, as CPython warns after us) — or None. */
static PyObject *
tr_lookup(PyObject *module, PyObject *obj)
{
    ml_tracker *tr = ml_tr_live(module);
    if (tr == NULL) {
        return NULL;
    }
    PyObject *holder = (PyObject *)ml_tr_find_record(tr, obj);   /* a new reference */
    if (holder == NULL && PyObject_TypeCheck(obj, tr->ResourceType)) {
        holder = Py_NewRef(obj);
    }
    PyObject *lists[2] = {tr->recent, tr->pending};
    for (int l = 0; l < 2 && holder == NULL; l++) {
        for (Py_ssize_t i = PyList_GET_SIZE(lists[l]); i-- > 0;) {
            if (matches_dead(lists[l], i, obj)) {
                holder = Py_NewRef(PyList_GET_ITEM(lists[l], i));
                break;
            }
        }
    }
    if (holder == NULL) {
        Py_RETURN_NONE;
    }
    ml_track *t = Py_IS_TYPE(holder, tr->TrackRefType) ? &((ml_tr_ref *)holder)->t
                                                       : &((ml_tr_resource *)holder)->t;
    PyObject *res = record_info(t);
    Py_DECREF(holder);
    return res;
}

/* _tr_gc_phase(started): gc.callbacks' start and stop. At the stop, the collection's
 * finalizers have warned: the leaked records kept for them are let go. */
static PyObject *
tr_gc_phase(PyObject *module, PyObject *arg)
{
    ml_tracker *tr = ml_tr_of(module);
    if (tr == NULL || !tr->ready) {
        Py_RETURN_NONE;
    }
    tr->collecting = PyObject_IsTrue(arg) == 1;
    /* the io objects the collection found dead: their finalizers have run, and a leak
       was reported by now; the rest were closed (at a start: left over from a
       collection whose end was not seen). Their observers forget the streams, which the
       collection has freed */
    PyObject *pending = tr->pending;
    if (PyList_GET_SIZE(pending)) {
        if ((tr->pending = PyList_New(0)) == NULL) {
            tr->pending = pending;
            return NULL;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pending); i++) {
            ml_tr_ref *rec = (ml_tr_ref *)PyList_GET_ITEM(pending, i);
            rec->t.pending = 0;
            if (rec->t.shim != NULL) {
                rec->t.shim->obj = NULL;
            }
            Py_XDECREF(ml_tr_settle(tr, &rec->t, ML_TR_CLOSED));   /* the list still holds rec */
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
    ml_tracker *tr = ml_tr_live(module);
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
 * newest first; obj is the live object (a strong reference for the caller), or None for
 * a Resource (its record is its own: it has no probe). */
static PyObject *
tr_open(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    ml_tracker *tr = ml_tr_live(module);
    if (tr == NULL) {
        return NULL;
    }
    /* What the ring holds is taken first, with no code running, so that the ring cannot
       change: a _TrackRef (the ring holds it), or a Resource's fields (the ring borrows
       a Resource, which may be on its way to be freed by another thread: its fields are
       only read, never the Resource itself held). */
    typedef struct {
        PyObject *ref;          /* the _TrackRef, or NULL for a Resource */
        PyObject *desc, *name;  /* a Resource's */
        uint32_t site;
        int64_t t0;
    } held_t;
    Py_ssize_t n = tr->nopen, i = 0;
    held_t *held = PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof(held_t));
    if (held == NULL) {
        return PyErr_NoMemory();
    }
    for (ml_track *t = tr->ring.next; t != &tr->ring && i < n; t = t->next, i++) {
        int resource = (t->flags & ML_TR_R_RESOURCE) != 0;
        held[i].ref = resource ? NULL : Py_NewRef(t->holder);
        held[i].desc = resource ? Py_NewRef(t->desc) : NULL;   /* a str */
        held[i].name = resource ? Py_XNewRef(t->name) : NULL;
        held[i].site = t->site;
        held[i].t0 = t->t0;
    }
    PyObject *list = PyList_New(0);
    for (Py_ssize_t j = 0; j < i && list != NULL; j++) {
        PyObject *h = held[j].ref, *obj, *desc, *name, *probe;
        int mode;
        if (h == NULL) {
            obj = Py_NewRef(Py_None);
            desc = Py_NewRef(held[j].desc);
            name = Py_NewRef(held[j].name ? held[j].name : Py_None);
            probe = Py_NewRef(Py_None);
            mode = ML_TR_PROBE_NONE;
        } else {
            ml_track *t = &((ml_tr_ref *)h)->t;
            obj = ml_weak_get(h);   /* strong, or NULL: dead */
            desc = obj != NULL && t->state == ML_TR_OPEN ? ml_tr_record_desc(t) : NULL;
            if (desc == NULL || t->state != ML_TR_OPEN) {   /* closed during the repr() */
                Py_XDECREF(desc);
                Py_XDECREF(obj);
                if (PyErr_Occurred()) {
                    Py_CLEAR(list);
                }
                continue;
            }
            name = Py_NewRef(t->name ? t->name : Py_None);
            probe = Py_NewRef(t->probe ? t->probe : Py_None);
            mode = t->probe_mode;
        }
        PyObject *item = Py_BuildValue("(ILNNNNi)", (unsigned)held[j].site,
                                       (long long)held[j].t0, desc, name, obj, probe, mode);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_CLEAR(list);
        }
        Py_XDECREF(item);
    }
    for (Py_ssize_t j = 0; j < i; j++) {
        Py_XDECREF(held[j].ref);
        Py_XDECREF(held[j].desc);
        Py_XDECREF(held[j].name);
    }
    PyMem_Free(held);
    return list;
}

/* _tr_sites(): [(site, tracked, open, leaked, warned)] for every site used. */
static PyObject *
tr_sites(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    ml_tracker *tr = ml_tr_live(module);
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

/* _tr_site_frames(site): ((filename, lineno, qualname), ...), innermost first: the
 * site's text, made when it was first seen. */
static PyObject *
tr_site_frames(PyObject *module, PyObject *arg)
{
    uint32_t id;
    ml_tracker *tr = site_arg(module, arg, &id);
    if (tr == NULL) {
        return NULL;
    }
    if ((Py_ssize_t)id >= PyList_GET_SIZE(tr->site_text)) {
        return PyTuple_New(0);   /* not reached: every site has its text */
    }
    return Py_NewRef(PyList_GET_ITEM(tr->site_text, (Py_ssize_t)id));
}

/* _tr_configure(dispatch, skip): set once by tracker.py. */
static PyObject *
tr_configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    ml_tracker *tr = ml_tr_live(module);
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
    ml_tracker *tr = ml_tr_live(module);
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
    ml_tracker *tr = ml_tr_live(module);
    if (tr == NULL) {
        return NULL;
    }
    unsigned long long seed = PyLong_AsUnsignedLongLongMask(arg);
    if (PyErr_Occurred()) {
        return NULL;
    }
    tr->seed = seed ? seed : (uint64_t)ml_tr_now_ns();
    tr->seed_gen++;
    Py_RETURN_NONE;
}

/* _tr_sample(): whether the next automatically tracked object is tracked. */
static PyObject *
tr_sample(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    ml_tracker *tr = ml_tr_of(module);
    return PyBool_FromLong(tr != NULL && tr->ready && ml_tr_sampled(tr));
}

/* _tr_stats(): (open records, sites, bytes the tracker owns). */
static PyObject *
tr_stats(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    ml_tracker *tr = ml_tr_live(module);
    if (tr == NULL) {
        return NULL;
    }
    size_t own = sizeof(*tr) + ml_sites_sizeof(&tr->sites) + ml_table_sizeof(&tr->index) +
                 (size_t)tr->nopen * sizeof(ml_tr_ref);
    return Py_BuildValue("(nIn)", tr->nopen, (unsigned)tr->sites.n, (Py_ssize_t)own);
}

/* ------------------------------------------------------------------------------------
 * Module glue
 */
/* Each module function runs in the tracker's lock: a critical section on the module
 * (self below), the tracker's lock object (see tracker.h). */
#define LOCKED_O(name, impl) \
    ML_LOCKED(PyObject *, name, (PyObject *self, PyObject *arg), impl(self, arg))
#define LOCKED_FAST(name, impl)                                                       \
    ML_LOCKED(PyObject *, name, (PyObject *self, PyObject *const *args, Py_ssize_t nargs), \
              impl(self, args, nargs))
LOCKED_O(locked_died, tr_died)
LOCKED_O(locked_shim_died, ml_tr_shim_died)
LOCKED_FAST(locked_track, tr_track)
LOCKED_O(locked_untrack, tr_untrack)
LOCKED_O(locked_closed, tr_closed)
LOCKED_O(locked_lookup, tr_lookup)
LOCKED_O(locked_gc_phase, tr_gc_phase)
LOCKED_O(locked_note_warned, tr_note_warned)
LOCKED_O(locked_open, tr_open)
LOCKED_O(locked_sites, tr_sites)
LOCKED_O(locked_site_frames, tr_site_frames)
LOCKED_O(locked_code_died, ml_tr_code_died)
LOCKED_FAST(locked_configure, tr_configure)
LOCKED_O(locked_set, tr_set)
LOCKED_O(locked_seed, tr_seed)
LOCKED_O(locked_sample, tr_sample)
LOCKED_O(locked_stats, tr_stats)

static PyMethodDef ml_tracker_methods[] = {
    {"_tr_died", locked_died, METH_O, "The tracker's weakref callback (internal)."},
    {"_tr_shim_died", locked_shim_died, METH_O, "The observers' weakref callback (internal)."},
    {"_tr_track", (PyCFunction)(void (*)(void))locked_track, METH_FASTCALL,
     "_tr_track(obj, kind, name, explicit): obj, tracked."},
    {"_tr_untrack", locked_untrack, METH_O, "_tr_untrack(obj): True if it was tracked and open."},
    {"_tr_closed", locked_closed, METH_O, "_tr_closed(obj): obj's close() ran."},
    {"_tr_lookup", locked_lookup, METH_O, "_tr_lookup(obj): its record, or None."},
    {"_tr_gc_phase", locked_gc_phase, METH_O, "_tr_gc_phase(started): gc.callbacks."},
    {"_tr_note_warned", locked_note_warned, METH_O, "_tr_note_warned(site): True if first."},
    {"_tr_open", locked_open, METH_NOARGS, "_tr_open(): the open records."},
    {"_tr_sites", locked_sites, METH_NOARGS, "_tr_sites(): the counters of every site."},
    {"_tr_site_frames", locked_site_frames, METH_O, "_tr_site_frames(site): its frames."},
    {"_tr_code_died", locked_code_died, METH_O, "The sites' weakref callback (internal)."},
    {"_tr_configure", (PyCFunction)(void (*)(void))locked_configure, METH_FASTCALL, NULL},
    {"_tr_set", locked_set, METH_VARARGS, "_tr_set(level, rate, depth, shutdown)."},
    {"_tr_seed", locked_seed, METH_O, "_tr_seed(n): restart sampling from seed n."},
    {"_tr_sample", locked_sample, METH_NOARGS, "_tr_sample(): sample the next object?"},
    {"_tr_stats", locked_stats, METH_NOARGS, "_tr_stats(): (open, sites, owned bytes)."},
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
    tr->module = module;   /* borrowed: the module owns the tracker */
    tr->ring.prev = tr->ring.next = &tr->ring;
    tr->level = 1;
    tr->rate = 128;
    tr->depth = 8;
    tr->seed = (uint64_t)ml_tr_now_ns();
    ml_table_init(&tr->index, &ml_alloc_pymem);
    if (ml_sites_init(&tr->sites, &ml_alloc_pymem) != ML_OK) {
        PyErr_NoMemory();
        return -1;
    }
    if ((tr->site_text = Py_BuildValue("[()]")) == NULL ||
        (tr->site_ids = Py_BuildValue("{()I}", 0u)) == NULL ||   /* site 0: no frames */
        (tr->code_refs = PyDict_New()) == NULL || (tr->recent = PyList_New(0)) == NULL ||
        (tr->pending = PyList_New(0)) == NULL ||
        (tr->str_finalizing = PyUnicode_InternFromString("_finalizing")) == NULL ||
        (tr->str_flush = PyUnicode_InternFromString("flush")) == NULL ||
        (tr->str_dealloc_warn = PyUnicode_InternFromString("_dealloc_warn")) == NULL ||
        (tr->str_name = PyUnicode_InternFromString("name")) == NULL ||
        (tr->str_closefd = PyUnicode_InternFromString("closefd")) == NULL ||
        (tr->died = PyObject_GetAttrString(module, "_tr_died")) == NULL ||
        (tr->shim_died = PyObject_GetAttrString(module, "_tr_shim_died")) == NULL ||
        (tr->code_died = PyObject_GetAttrString(module, "_tr_code_died")) == NULL) {
        return -1;
    }
    /* the records, observers and site watchers are weakref.ref subtypes */
    PyObject *weakref_mod = PyImport_ImportModule("_weakref");
    PyObject *ref_type = weakref_mod ? PyObject_GetAttrString(weakref_mod, "ref") : NULL;
    Py_XDECREF(weakref_mod);
    PyObject *bases = ref_type ? PyTuple_Pack(1, ref_type) : NULL;
    Py_XDECREF(ref_type);
    if (bases == NULL) {
        return -1;
    }
    tr->TrackRefType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &ml_tr_trackref_spec,
                                                                bases);
    tr->ShimType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &ml_tr_shim_spec, bases);
    tr->CodeRefType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &ml_tr_coderef_spec,
                                                               bases);
    Py_DECREF(bases);
    if (tr->TrackRefType == NULL || tr->ShimType == NULL || tr->CodeRefType == NULL ||
        (tr->OpenType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &ml_tr_open_spec,
                                                                 NULL)) == NULL ||
        (tr->ResourceType = (PyTypeObject *)PyType_FromModuleAndSpec(module,
                                                                     &ml_tr_resource_spec,
                                                                     NULL)) == NULL) {
        return -1;
    }
    if (PyModule_AddType(module, tr->ResourceType) < 0 ||
        PyModule_AddType(module, tr->OpenType) < 0 ||
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
    Py_VISIT(tr->site_text);
    Py_VISIT(tr->site_ids);
    Py_VISIT(tr->code_refs);
    Py_VISIT(tr->code_died);
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
    Py_VISIT(tr->str_closefd);
    Py_VISIT(tr->TrackRefType);
    Py_VISIT(tr->ShimType);
    Py_VISIT(tr->ResourceType);
    Py_VISIT(tr->OpenType);
    Py_VISIT(tr->CodeRefType);
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
    ml_tr_section cs;
    ml_tr_lock(tr, &cs);
    ml_tr_index_clear(tr);
    /* the ring's references: taken out first, released after */
    while (tr->ring.next != &tr->ring) {
        ml_track *t = tr->ring.next;
        PyObject *owned = ml_tr_ring_unlink(tr, t);
        t->state = ML_TR_UNTRACKED;
        Py_XDECREF(owned);
    }
    ml_tr_unlock(&cs);
    Py_CLEAR(tr->site_text);
    Py_CLEAR(tr->site_ids);
    Py_CLEAR(tr->code_refs);
    Py_CLEAR(tr->code_died);
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
    Py_CLEAR(tr->str_closefd);
    Py_CLEAR(tr->TrackRefType);
    Py_CLEAR(tr->ShimType);
    Py_CLEAR(tr->ResourceType);
    Py_CLEAR(tr->OpenType);
    Py_CLEAR(tr->CodeRefType);
}

void
ml_tracker_free(ml_state *st)
{
    ml_tracker_clear(st);
    if (st->tr != NULL) {
        ml_sites_free(&st->tr->sites);
        ml_table_free(&st->tr->index);   /* every record is gone: each holds the module */
        PyMem_Free(st->tr);
        st->tr = NULL;
    }
}

