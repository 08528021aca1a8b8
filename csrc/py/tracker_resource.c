/* tracker_resource.c — what becomes tracked: an object given to track() or returned by
 * the tracking open() (its record filled and its observers put), and memleash.Resource,
 * whose instances carry their record and are tracked from __new__.
 *
 * Note on re-entrancy: filling a record reads the object (its name, its repr() for the
 * kinds that ask for it) and capturing a site allocates: both can run Python code, which
 * may track, close or drop objects. The record is not in the ring until it is filled, and
 * its state says closed until then, so nothing found half-built counts it.
 */
#include "py/tracker.h"

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
            PyUnicode_CompareWithASCIIString(mod, "builtins") != 0) {
            res = PyUnicode_FromFormat("<%U.%U object at %p>", mod, qual, obj);
        } else {
            res = PyUnicode_FromFormat("<%U object at %p>", qual, obj);
        }
    }
    Py_XDECREF(mod);
    Py_XDECREF(qual);
    return res;
}

/* Fills t for obj (alive, being tracked now; kind checked by ml_tr_check_kind). Runs
 * Python code (the object's name or repr(), a collection). 0 or -1. */
static int
fill_record(ml_tracker *tr, ml_track *t, PyObject *obj, PyObject *kind, PyObject *name,
            int depth)
{
    /* kind: (methods, probe, probe_mode, flags, describe_with_repr) */
    PyObject *methods = PyTuple_GET_ITEM(kind, 0), *probe = PyTuple_GET_ITEM(kind, 1);
    long mode = PyLong_AsLong(PyTuple_GET_ITEM(kind, 2));
    long flags = PyLong_AsLong(PyTuple_GET_ITEM(kind, 3));
    int use_repr = PyTuple_GET_ITEM(kind, 4) == Py_True;
    if (ml_tr_capture_site(tr, depth, &t->site) < 0) {
        return -1;
    }
    PyObject *desc = NULL;
    if (flags & ML_TR_K_IO_INNER) {
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
    t->type = Py_TYPE(obj);
    t->t0 = ml_tr_now_ns();
    return 0;
}

/* Tracks obj (not tracked yet). 0 or -1 (TypeError when it cannot be weakly referenced). */
int
ml_tr_track_object(ml_tracker *tr, PyObject *obj, PyObject *kind, PyObject *name, int depth)
{
    if (!PyType_SUPPORTS_WEAKREFS(Py_TYPE(obj))) {
        PyErr_Format(PyExc_TypeError,
                     "cannot track a '%.100s' object: it does not support weak references "
                     "(track an instance of a subclass, e.g. sqlite3.connect(..., "
                     "factory=MyConnection))", Py_TYPE(obj)->tp_name);
        return -1;
    }
    ml_tr_ref *rec = (ml_tr_ref *)ml_tr_new_weakref(tr->TrackRefType, obj, tr->died);
    if (rec == NULL) {
        return -1;
    }
    memset(&rec->t, 0, sizeof(rec->t));
    rec->t.tr = tr;
    rec->t.holder = (PyObject *)rec;
    rec->t.ident = (uintptr_t)obj;
    rec->t.state = ML_TR_CLOSED;   /* not in the books until filled */
    /* indexed first: a track() of obj re-entered while the record is filled (its repr(),
       a collection) finds it and does nothing */
    if (ml_tr_index_add(tr, rec) < 0 || fill_record(tr, &rec->t, obj, kind, name, depth) < 0) {
        goto error;
    }
    if (rec->t.flags & ML_TR_K_IO_INNER) {
        int warns = 0;
        Py_CLEAR(rec->t.methods);   /* the chain down to the innermost stream */
        if (ml_tr_install_io_shims(tr, rec, obj, PyTuple_GET_ITEM(kind, 0), &warns) < 0) {
            goto error;   /* a shim already in place forwards, and ignores a closed record */
        }
        if (!warns) {
            rec->t.flags &= (uint8_t)~ML_TR_K_CPYTHON_WARNS;   /* nothing under it warns: we do */
        }
    } else if (rec->t.methods != NULL && !(rec->t.flags & ML_TR_K_CLASS_HOOKED) &&
               ml_tr_install_shims(tr, rec, obj, rec->t.methods) < 0) {
        PyObject *exc = PyErr_GetRaisedException();
        ml_tr_drop_shims(tr, rec);
        PyErr_SetRaisedException(exc);
        goto error;
    }
    rec->t.state = ML_TR_OPEN;
    ml_site *site = ml_sites_get(&tr->sites, rec->t.site);
    site->tracked++;
    site->open++;
    ml_tr_ring_link(tr, &rec->t);   /* the ring takes our reference */
    return 0;
error:
    Py_XDECREF(ml_tr_index_remove(tr, rec));   /* the index's reference */
    Py_DECREF(rec);
    return -1;
}

/* (methods: tuple of str, probe: str or None, probe mode: 0-2, flags: int,
 * describe with repr(): bool) — what tracker.py's kinds are. */
int
ml_tr_check_kind(PyObject *kind)
{
    int ok = PyTuple_Check(kind) && PyTuple_GET_SIZE(kind) == 5;
    PyObject *methods = ok ? PyTuple_GET_ITEM(kind, 0) : NULL;
    ok = ok && PyTuple_Check(methods);
    for (Py_ssize_t i = 0; ok && i < PyTuple_GET_SIZE(methods); i++) {
        ok = PyUnicode_Check(PyTuple_GET_ITEM(methods, i));
    }
    if (ok) {
        PyObject *probe = PyTuple_GET_ITEM(kind, 1), *mode = PyTuple_GET_ITEM(kind, 2);
        PyObject *flags = PyTuple_GET_ITEM(kind, 3), *use_repr = PyTuple_GET_ITEM(kind, 4);
        int overflow = 0;
        long m = PyLong_Check(mode) ? PyLong_AsLongAndOverflow(mode, &overflow) : -1;
        long f = PyLong_Check(flags) ? PyLong_AsLongAndOverflow(flags, &overflow) : -1;
        ok = (probe == Py_None || PyUnicode_Check(probe)) && !overflow &&
             m >= ML_TR_PROBE_NONE && m <= ML_TR_PROBE_NOT_NONE && f >= 0 && f <= 0x3f &&
             PyBool_Check(use_repr);
    }
    if (!ok) {
        PyErr_SetString(PyExc_TypeError, "kind must be (methods: tuple of str, probe: str or "
                        "None, probe mode: 0 to 2, flags: int from 0 to 63, "
                        "describe with repr(): bool)");
        return -1;
    }
    return 0;
}

int
ml_tr_check_name(PyObject *name)
{
    if (name != Py_None && !PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "name must be a str or None, not %.200s",
                     Py_TYPE(name)->tp_name);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------
 * memleash.Resource: a handle that knows when it is closed, and warns from its finalizer.
 */
/* Starts self's record (new, not shared yet): its site captured, and in the ring. Runs
 * Python code (a collection, a site's text). 0 or -1. */
static int
resource_start(ml_tracker *tr, ml_tr_resource *self, PyTypeObject *type)
{
    ml_track *t = &self->t;
    if (!tr->ready) {
        return 0;   /* the tracker is gone (interpreter shutdown): untracked */
    }
    if (ml_tr_capture_site(tr, ml_tr_frames_for(tr), &t->site) < 0 ||
        (t->desc = plain_desc((PyObject *)self)) == NULL) {
        return -1;
    }
    t->flags = ML_TR_R_RESOURCE;
    t->ident = (uintptr_t)self;
    t->type = type;
    t->t0 = ml_tr_now_ns();
    t->state = ML_TR_OPEN;
    ml_site *site = ml_sites_get(&tr->sites, t->site);
    site->tracked++;
    site->open++;
    ml_tr_ring_link(tr, t);
    return 0;
}
ML_TR_LOCKED(int, resource_start_locked,
             (ml_tracker *tr, ml_tr_resource *self, PyTypeObject *type), tr,
             resource_start(tr, self, type))

static PyObject *
resource_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args, (void)kwds;   /* the subclass's __init__ takes them */
    ml_state *st = ml_state_of_type(type);
    if (st == NULL || st->tr == NULL) {
        return NULL;
    }
    ml_tr_resource *self = (ml_tr_resource *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->t.tr = st->tr;
    self->t.holder = (PyObject *)self;
    self->t.state = ML_TR_UNTRACKED;
    if (resource_start_locked(st->tr, self, type) < 0) {
        Py_DECREF(self);   /* not in the ring: untracked */
        return NULL;
    }
    return (PyObject *)self;
}

/* Resource.close(): marks it closed (whatever the subclass's close() released). */
static PyObject *
resource_close(ml_tr_resource *self, PyObject *Py_UNUSED(ignored))
{
    if (self->t.tr->ready) {
        /* NULL: the ring owns no Resource */
        (void)ml_tr_settle(self->t.tr, &self->t, ML_TR_CLOSED);
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
resource_get_closed(ml_tr_resource *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->t.state != ML_TR_OPEN);
}

static PyObject *
resource_get_name(ml_tr_resource *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->t.name ? self->t.name : Py_None);
}

static int
resource_set_name(ml_tr_resource *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        value = Py_None;
    }
    if (ml_tr_check_name(value) < 0) {
        return -1;
    }
    Py_XSETREF(self->t.name, value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

/* The record is the tracker's: these run in its lock (self->t.tr: set at creation). */
ML_TR_LOCKED(PyObject *, locked_close, (ml_tr_resource *self, PyObject *arg), self->t.tr,
             resource_close(self, arg))
ML_TR_LOCKED(PyObject *, locked_get_closed, (ml_tr_resource *self, void *closure), self->t.tr,
             resource_get_closed(self, closure))
ML_TR_LOCKED(PyObject *, locked_get_name, (ml_tr_resource *self, void *closure), self->t.tr,
             resource_get_name(self, closure))
ML_TR_LOCKED(int, locked_set_name, (ml_tr_resource *self, PyObject *value, void *closure),
             self->t.tr, resource_set_name(self, value, closure))

/* The leak verdict, on an object that is still whole: runs on both deaths (refcount: from
 * dealloc; collection: before any tp_clear). */
static void
resource_finalize(PyObject *self)
{
    ml_tr_resource *r = (ml_tr_resource *)self;
    ml_tracker *tr = r->t.tr;
    ml_tr_section cs;
    ml_tr_lock(tr, &cs);
    if (tr->ready && r->t.state == ML_TR_OPEN) {
        (void)ml_tr_record_leak(tr, &r->t, self);   /* dispatch warns with source=self; the
                                                       ring owns no reference to a Resource */
    }
    ml_tr_unlock(&cs);
}

static int
resource_traverse(ml_tr_resource *self, visitproc visit, void *arg)
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
    ml_tr_resource *r = (ml_tr_resource *)self;
    if (PyObject_CallFinalizerFromDealloc(self) < 0) {
        return;   /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    ml_tracker *tr = r->t.tr;
    ml_tr_section cs;
    ml_tr_lock(tr, &cs);   /* out of the ring before it is freed: _tr_open reads it there */
    if (tr->ready && r->t.state == ML_TR_OPEN) {
        /* the finalizer did not run (a subclass's __del__ replaced it, or it ran once
           already before a resurrection): a leak all the same, without a source */
        (void)ml_tr_record_leak(tr, &r->t, NULL);
    } else {
        (void)ml_tr_ring_unlink(tr, &r->t);
    }
    ml_tr_unlock(&cs);
    Py_CLEAR(r->t.desc);
    Py_CLEAR(r->t.name);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef resource_methods[] = {
    {"close", (PyCFunction)locked_close, METH_NOARGS,
     "close($self, /)\n--\n\nMark the resource closed. Subclasses release what they hold, "
     "then call super().close() (a subclass's close() is wrapped to do it anyway)."},
    {"__enter__", resource_enter, METH_NOARGS, "__enter__($self, /)\n--\n\nReturn self."},
    {"__exit__", (PyCFunction)(void (*)(void))resource_exit, METH_FASTCALL,
     "__exit__($self, /, *exc_info)\n--\n\nClose the resource; return False."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef resource_getset[] = {
    {"closed", (getter)locked_get_closed, NULL, "True once close() ran.", NULL},
    {"leak_name", (getter)locked_get_name, (setter)locked_set_name,
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

PyType_Spec ml_tr_resource_spec = {
    .name = "memleash._core.Resource",
    .basicsize = sizeof(ml_tr_resource),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = resource_slots,
};

/* ------------------------------------------------------------------------------------
 * _TrackingOpen: stands in for open() while tracker.enable(files=True) is on.
 */
/* Tracks f, what the real open() returned, when sampled; in the tracker's lock. */
static void
topen_track(ml_tr_open *self, PyObject *f)
{
    ml_tracker *tr = self->tr;
    ml_tr_section cs;
    ml_tr_lock(tr, &cs);
    if (tr->ready && self->kind != NULL && ml_tr_sampled(tr)) {
        /* another open() may return one tracked already */
        ml_tr_ref *known = self->direct ? NULL : ml_tr_find_tracked(tr, f);
        PyObject *kind = Py_NewRef(self->kind);   /* held across the tracking's code */
        if (known != NULL) {
            Py_DECREF(known);
        } else if (ml_tr_track_object(tr, f, kind, Py_None, ml_tr_frames_for(tr)) < 0) {
            PyErr_WriteUnraisable((PyObject *)self);   /* tracking never fails an open() */
        }
        Py_DECREF(kind);
    }
    ml_tr_unlock(&cs);
}

/* open() while tracker.enable(files=True) is on: a built-in function (the interpreter
 * calls it directly, as it calls io.open) whose self is a _TrackingOpen. The untracked
 * path is one branch after the real open(), called directly when it is a C function. */
static PyObject *
topen_call(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    ml_tr_open *self = (ml_tr_open *)op;
    PyObject *real = self->real, *f;
    if (self->direct) {
        /* io.open's C function: called as the interpreter calls it, a new file each time
           (its self, the io module, is held by the function, which we hold) */
        f = ((PyCFunctionFastWithKeywords)(void (*)(void))PyCFunction_GET_FUNCTION(real))(
            PyCFunction_GET_SELF(real), args, nargs, kwnames);
    } else {
        Py_INCREF(real);   /* held across a call that runs anything */
        f = PyObject_Vectorcall(real, args, (size_t)nargs, kwnames);
        Py_DECREF(real);
    }
    if (f != NULL && self->tr != NULL) {
        topen_track(self, f);
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
    if (!PyArg_ParseTuple(args, "OO:_TrackingOpen", &real, &kind) || ml_tr_check_kind(kind) < 0) {
        return NULL;
    }
    ml_state *st = ml_state_of_type(type);
    if (st == NULL || st->tr == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the memleash tracker is shut down");
        return NULL;
    }
    ml_tr_open *self = (ml_tr_open *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->real = Py_NewRef(real);
    self->kind = Py_NewRef(kind);
    PyObject *io = PyImport_ImportModule("_io");
    PyObject *io_open = io != NULL ? PyObject_GetAttrString(io, "open") : NULL;
    Py_XDECREF(io);
    PyErr_Clear();   /* then it is called as any other callable */
    self->direct = real == io_open && PyCFunction_Check(real) &&
                   (PyCFunction_GET_FLAGS(real) & ~METH_COEXIST) == (METH_FASTCALL | METH_KEYWORDS);
    Py_XDECREF(io_open);
    self->tr = st->tr;
    PyObject *func = PyCFunction_NewEx(&topen_def, (PyObject *)self, NULL);
    Py_DECREF(self);   /* the function holds it */
    return func;
}

static int
topen_traverse(ml_tr_open *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->real);
    Py_VISIT(self->kind);
    return 0;
}

static int
topen_clear(ml_tr_open *self)
{
    Py_CLEAR(self->real);
    Py_CLEAR(self->kind);
    return 0;
}

static void
topen_dealloc(ml_tr_open *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    (void)topen_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *
topen_get_wrapped(ml_tr_open *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->real ? self->real : Py_None);
}

static PyObject *
topen_repr(ml_tr_open *self)
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

PyType_Spec ml_tr_open_spec = {
    .name = "memleash._core._TrackingOpen",
    .basicsize = sizeof(ml_tr_open),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = topen_slots,
};
