/* tracker_shim.c — _CloseShim: an observer put in a tracked object's instance dict under
 * the name of a method, which forwards every call to that method and notes what it tells
 * the tracker (see the design note in tracker.c, "How close() is seen").
 *
 * A shim is a weakref.ref subtype: a weak reference to the object whose dict holds it,
 * whose callback (_tr_shim_died) clears the borrowed pointer, and whose vectorcall slot
 * is its call. Three roles: a built-in type's close(); the flush() a raw file's close()
 * calls (a file closed while its tracked object is being finalized leaked); the
 * _dealloc_warn() io's finalizer calls on the stream under an unclosed one.
 *
 * Note on re-entrancy: the forwarded call runs anything (the real method, a user's
 * override, a finalizer's chain); the shim holds its record and the object strongly
 * across it, and reads the record's state again after it.
 */
#include "py/tracker.h"

#include <structmember.h>

/* Removes our "close" shims from the dying object's dict, so that a finalizer still to
 * come reaches the real methods. */
void
ml_tr_drop_shims(ml_tracker *tr, ml_tr_ref *rec)
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
        if (v != NULL && Py_IS_TYPE(v, tr->ShimType) && ((ml_tr_shim *)v)->rec == (PyObject *)rec) {
            ml_tr_shim *shim = (ml_tr_shim *)v;
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

/* _tr_shim_died(ref): the object holding a shim died (a refcount death, or the shim was
 * held elsewhere during a collection): the shim forgets it. */
PyObject *
ml_tr_shim_died(PyObject *module, PyObject *ref)
{
    ml_tracker *tr = ml_tr_of(module);
    if (tr != NULL && tr->ShimType != NULL && Py_IS_TYPE(ref, tr->ShimType)) {
        ((ml_tr_shim *)ref)->obj = NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------
 * _CloseShim: stands in an instance dict for a method, and forwards to it.
 */

static PyObject *
shim_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    ml_tr_shim *self = (ml_tr_shim *)op;
    ml_state *st = ml_state_of_type(Py_TYPE(self));
    ml_tracker *tr = st ? st->tr : NULL;
    ml_tr_ref *rec = (ml_tr_ref *)self->rec;
    PyObject *obj = self->obj;
    if (tr == NULL || rec == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the memleash tracker is shut down");
        return NULL;
    }
    if (obj == NULL) {
        if (self->prev != NULL) {
            return PyObject_Vectorcall(self->prev, args, nargsf, kwnames);
        }
        if (self->role != ML_TR_SHIM_CLOSE || (rec->t.flags & ML_TR_K_IO)) {
            Py_RETURN_NONE;   /* io: its finalizer closed it; flushing it is done */
        }
        PyErr_Format(PyExc_ReferenceError, "%U() of an object that no longer exists",
                     self->meth);
        return NULL;
    }
    if (self->role == ML_TR_SHIM_FLUSH && rec->t.state == ML_TR_LEAKED) {
        /* its finalizer ran (a temporary: `f.flush` was looked up, then the file died):
           it was flushed and closed then */
        Py_RETURN_NONE;
    }
    Py_INCREF(rec);
    Py_INCREF(obj);
    PyObject *res = NULL, *func = NULL, *owned = NULL;
    int open = tr->ready && rec->t.state == ML_TR_OPEN;
    int finalizing = 0;
    if (open && self->role == ML_TR_SHIM_FLUSH) {
        /* a close of the stack reached its raw file: is the tracked object (alive on a
           refcount death, its weakref intact) being finalized, or did a collection find
           it dead? Either way no one closed it */
        PyObject *tracked = PyWeakref_GET_OBJECT((PyObject *)rec);   /* borrowed */
        finalizing = rec->t.pending ||
                     (tracked != Py_None && ml_tr_attr_says(tracked, tr->str_finalizing, ML_TR_PROBE_TRUE));
    } else if (open && self->role == ML_TR_SHIM_CLOSE && (rec->t.flags & ML_TR_K_IO)) {
        finalizing = ml_tr_attr_says(obj, tr->str_finalizing, ML_TR_PROBE_TRUE);   /* io's finalizer? */
    }
    if (open && (self->role == ML_TR_SHIM_DEALLOC_WARN || (self->role == ML_TR_SHIM_FLUSH && finalizing))) {
        /* reported before the real method runs (and CPython warns); our own warning, if
           any, names the unclosed stream _dealloc_warn was called for */
        PyObject *source = self->role == ML_TR_SHIM_DEALLOC_WARN && PyVectorcall_NARGS(nargsf) == 1
                           ? args[0] : NULL;
        owned = ml_tr_record_leak(tr, &rec->t, source);   /* now: a recorded warning may keep it alive */
    }
    if (self->prev != NULL) {
        res = PyObject_Vectorcall(self->prev, args, nargsf, kwnames);   /* may re-enter */
        goto called;
    }
    PyObject *descr = _PyType_Lookup(Py_TYPE(obj), self->meth);   /* borrowed */
    if (descr == NULL) {
        if (self->role == ML_TR_SHIM_DEALLOC_WARN) {
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
    if (self->role == ML_TR_SHIM_CLOSE && finalizing) {
        /* io's finalizer closing an unclosed object */
        Py_XDECREF(owned);
        owned = ml_tr_record_leak(tr, &rec->t, NULL);
    } else if (self->role == ML_TR_SHIM_CLOSE && tr->ready && rec->t.state == ML_TR_OPEN) {
        int closed = rec->t.probe_mode != ML_TR_PROBE_NONE ? ml_tr_probe_closed(&rec->t, obj)
                                                     : res != NULL;   /* close() returned */
        if (closed) {
            owned = ml_tr_settle(tr, &rec->t, ML_TR_CLOSED);
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
shim_traverse(ml_tr_shim *self, visitproc visit, void *arg)
{
    Py_VISIT(self->rec);
    Py_VISIT(self->prev);
    Py_VISIT(Py_TYPE(self));
    return Py_TYPE(self)->tp_base->tp_traverse((PyObject *)self, visit, arg);
}

static int
shim_clear(ml_tr_shim *self)
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
    ml_tr_shim *shim = (ml_tr_shim *)self;
    shim->obj = NULL;
    Py_CLEAR(shim->rec);
    Py_CLEAR(shim->prev);
    Py_CLEAR(shim->meth);
    tp->tp_base->tp_dealloc(self);   /* weakref's dealloc untracks and frees */
    Py_DECREF(tp);
}

static PyObject *
shim_repr(ml_tr_shim *self)
{
    return PyUnicode_FromFormat("<memleash observer for %U()>", self->meth);
}

static PyMemberDef shim_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(ml_tr_shim, wr.vectorcall), READONLY, NULL},
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

PyType_Spec ml_tr_shim_spec = {
    .name = "memleash._core._CloseShim",
    .basicsize = sizeof(ml_tr_shim),
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
    ml_tr_shim *shim = (ml_tr_shim *)ml_tr_new_weakref(tr->ShimType, obj, tr->shim_died);
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
int
ml_tr_install_shims(ml_tracker *tr, PyObject *rec, PyObject *obj, PyObject *methods)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(methods); i++) {
        if (add_shim(tr, rec, obj, PyTuple_GET_ITEM(methods, i), ML_TR_SHIM_CLOSE, 0) < 0) {
            return -1;
        }
    }
    return 0;
}

/* An io stack: follows `chain` (attribute names: "buffer", "raw"; one the type does
 * not have is passed) from obj down to its innermost stream, noting each layer in t, and
 * puts the shim there: on a raw file's flush, or on another stream's _dealloc_warn.
 * *warns: whether that stream warns itself (a FileIO has _dealloc_warn). 0 or -1. */
int
ml_tr_install_io_shims(ml_tracker *tr, ml_tr_ref *rec, PyObject *obj, PyObject *chain, int *warns)
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
    rc = *warns ? add_shim(tr, (PyObject *)rec, x, tr->str_flush, ML_TR_SHIM_FLUSH, 1)
                : add_shim(tr, (PyObject *)rec, x, tr->str_dealloc_warn, ML_TR_SHIM_DEALLOC_WARN, 1);
done:
    Py_DECREF(x);
    return rc;
}
