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
 * How a shim reaches its object: through its own weak reference (a strong reference
 * for the call), never a stored pointer — except in one case: a collection clears the
 * weak references to its garbage before it runs any finalizer, so the raw file of a
 * stack the collection is finalizing calls its flush() shim with that reference dead.
 * Then, and only while the record is pending (a collection found its object dead) and
 * the collection runs, the shim uses the borrowed pointer it kept (the stream is
 * garbage of this very collection: alive until its end, when pending records are
 * judged and their observers forget the pointer). A shim called after its object died
 * forwards to what it replaced, or does nothing.
 *
 * A record's "close" shims live in the instance dict only while the record is open:
 * closing, untracking or the object's death takes them out (ml_tr_drop_shims), so a
 * later close() reaches the real one, and a shim kept elsewhere outlives nothing.
 *
 * Note on re-entrancy: the forwarded call runs anything (the real method, a user's
 * override, a finalizer's chain, another shim: a recursion guard bounds that); the
 * shim holds itself, its record and the object strongly across it, and reads the
 * record's state again after it. Dict look-ups may run a key's __eq__: every value read
 * from a dict is held strongly.
 */
#include "py/tracker.h"

#include <structmember.h>

/* Takes rec's "close" shims out of its object's dict (the real methods are reached
 * again; a shim kept elsewhere forwards to what it replaced) and lets the dict go. Runs
 * Python code (a key's __eq__, a replaced value's __del__): the caller holds rec. */
void
ml_tr_drop_shims(ml_tracker *tr, ml_tr_ref *rec)
{
    ml_track *t = &rec->t;
    PyObject *dict = t->dict;   /* ours now: a re-entrant call finds nothing to do */
    t->dict = NULL;
    if (dict == NULL || t->methods == NULL) {
        Py_XDECREF(dict);
        return;
    }
    PyObject *methods = Py_NewRef(t->methods);
    PyObject *exc = PyErr_GetRaisedException();
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(methods); i++) {
        PyObject *meth = PyTuple_GET_ITEM(methods, i), *v = NULL;
        if (PyDict_GetItemRef(dict, meth, &v) > 0 && Py_IS_TYPE(v, tr->ShimType) &&
            ((ml_tr_shim *)v)->rec == (PyObject *)rec) {
            ml_tr_shim *shim = (ml_tr_shim *)v;
            if (shim->prev != NULL) {
                (void)PyDict_SetItem(dict, meth, shim->prev);   /* back as it was */
            } else {
                (void)PyDict_DelItem(dict, meth);
            }
        }
        Py_XDECREF(v);
        PyErr_Clear();
    }
    PyErr_SetRaisedException(exc);
    Py_DECREF(methods);
    Py_DECREF(dict);
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

/* The object whose dict holds self: a new reference, or NULL when it is gone (see the
 * note at the top of this file). */
static PyObject *
shim_object(ml_tracker *tr, ml_tr_shim *self, ml_tr_ref *rec)
{
    PyObject *obj = ml_weak_get((PyObject *)self);
    if (obj == NULL && self->obj != NULL && rec->t.pending && tr->collecting) {
        obj = Py_NewRef(self->obj);   /* being finalized by this collection */
    }
    return obj;
}

/* Calls the real method of obj (the type's, found along its MRO). */
static PyObject *
call_real(ml_tr_shim *self, PyObject *obj, PyObject *const *args, size_t nargsf,
          PyObject *kwnames)
{
    PyObject *func = ml_type_lookup_ref(Py_TYPE(obj), self->meth);   /* held across the call */
    if (func == NULL) {
        if (self->role == ML_TR_SHIM_DEALLOC_WARN) {
            Py_RETURN_NONE;   /* the stream under it has no warning of its own */
        }
        return PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%U'",
                            Py_TYPE(obj)->tp_name, self->meth);
    }
    PyObject *res;
    size_t n = (size_t)PyVectorcall_NARGS(nargsf);
    if (PyType_HasFeature(Py_TYPE(func), Py_TPFLAGS_METHOD_DESCRIPTOR) && kwnames == NULL &&
        n < 4) {
        /* the type's method, called unbound with obj first (no bound method made) */
        PyObject *stack[4] = {obj};
        for (size_t i = 0; i < n; i++) {
            stack[i + 1] = args[i];
        }
        res = PyObject_Vectorcall(func, stack, n + 1, NULL);   /* may re-enter anything */
    } else {
        descrgetfunc get = Py_TYPE(func)->tp_descr_get;
        if (get != NULL) {
            Py_SETREF(func, get(func, obj, (PyObject *)Py_TYPE(obj)));
        }
        res = func == NULL ? NULL : PyObject_Vectorcall(func, args, nargsf, kwnames);
    }
    Py_XDECREF(func);
    return res;
}

/* Whether raw (a raw file) owns its descriptor: open(fd, closefd=False) does not, and
 * dropping it unclosed leaks nothing (CPython warns nothing). Runs Python code; an error
 * (kept as it was) counts as owning. */
static int
owns_descriptor(ml_tracker *tr, PyObject *raw)
{
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *v = PyObject_GetAttr(raw, tr->str_closefd);
    int owns = v == NULL || PyObject_IsTrue(v) != 0;
    Py_XDECREF(v);
    PyErr_Clear();
    PyErr_SetRaisedException(exc);
    return owns;
}

/* A shim's call in three steps: what it tells before the forwarded call (in the
 * tracker's lock), the call itself (out of it: it runs anything, often another shim),
 * and what it tells after (in the lock again, the record's state read anew). */
typedef struct {
    PyObject *prev;     /* what the shim stands in for, held; or NULL: the real method */
    PyObject *obj;      /* the object, held; or NULL: gone */
    PyObject *owned;    /* the ring's reference a verdict released, let go last */
    PyObject *res;      /* the answer when no call is forwarded (NULL: an exception) */
    int forward;        /* call prev, or the real method */
    int finalizing;     /* the tracked object is being finalized, unclosed */
} shim_step;

/* Before the call. self and rec held by the caller. */
static int
shim_before(ml_tracker *tr, ml_tr_shim *self, ml_tr_ref *rec, PyObject *const *args,
            size_t nargsf, shim_step *st)
{
    st->prev = Py_XNewRef(self->prev);   /* held across the call */
    st->obj = shim_object(tr, self, rec);
    if (st->obj == NULL) {
        if (st->prev != NULL) {
            st->forward = 1;
        } else if (self->role != ML_TR_SHIM_CLOSE || (rec->t.flags & ML_TR_K_IO)) {
            st->res = Py_NewRef(Py_None);   /* io: its finalizer closed it; flushing it is done */
        } else {
            PyErr_Format(PyExc_ReferenceError, "%U() of an object that no longer exists",
                         self->meth);
        }
        return 0;
    }
    if (self->role == ML_TR_SHIM_FLUSH && rec->t.state == ML_TR_LEAKED) {
        /* its finalizer ran (a temporary: `f.flush` was looked up, then the file died):
           it was flushed and closed then */
        st->res = Py_NewRef(Py_None);
        return 0;
    }
    st->forward = 1;
    int open = tr->ready && rec->t.state == ML_TR_OPEN;
    if (open && self->role == ML_TR_SHIM_FLUSH) {
        /* a close of the stack reached its raw file: is the tracked object (alive on a
           refcount death, its weakref intact) being finalized, or did a collection find
           it dead? Either way no one closed it */
        PyObject *tracked = ml_weak_get((PyObject *)rec);
        st->finalizing = rec->t.pending ||
                         (tracked != NULL &&
                          ml_tr_attr_says(tracked, tr->str_finalizing, ML_TR_PROBE_TRUE));
        Py_XDECREF(tracked);
    } else if (open && self->role == ML_TR_SHIM_CLOSE && (rec->t.flags & ML_TR_K_IO)) {
        /* io's finalizer? */
        st->finalizing = ml_tr_attr_says(st->obj, tr->str_finalizing, ML_TR_PROBE_TRUE);
    }
    if (open && (self->role == ML_TR_SHIM_DEALLOC_WARN ||
                 (self->role == ML_TR_SHIM_FLUSH && st->finalizing))) {
        /* reported before the real method runs (and CPython warns); our own warning, if
           any, names the unclosed stream _dealloc_warn was called for. Now: a recorded
           warning may keep the object alive */
        PyObject *source = self->role == ML_TR_SHIM_DEALLOC_WARN &&
                           PyVectorcall_NARGS(nargsf) == 1 ? args[0] : NULL;
        if (self->role == ML_TR_SHIM_FLUSH && !owns_descriptor(tr, st->obj)) {
            st->owned = ml_tr_settle(tr, &rec->t, ML_TR_CLOSED);   /* it held nothing */
        } else {
            st->owned = ml_tr_record_leak(tr, &rec->t, source);
        }
    }
    return 0;
}
ML_TR_LOCKED(int, shim_before_locked,
             (ml_tracker *tr, ml_tr_shim *self, ml_tr_ref *rec, PyObject *const *args,
              size_t nargsf, shim_step *st),
             tr, shim_before(tr, self, rec, args, nargsf, st))

/* After the call (st->obj alive), which returned res (NULL: it raised). */
static int
shim_after(ml_tracker *tr, ml_tr_shim *self, ml_tr_ref *rec, PyObject *res, shim_step *st)
{
    if (self->role == ML_TR_SHIM_CLOSE && st->finalizing) {
        /* io's finalizer closing an unclosed object */
        PyObject *owned = ml_tr_record_leak(tr, &rec->t, NULL);
        Py_XSETREF(st->owned, owned);
    } else if (self->role == ML_TR_SHIM_CLOSE && tr->ready && rec->t.state == ML_TR_OPEN) {
        int closed = rec->t.probe_mode != ML_TR_PROBE_NONE
                         ? ml_tr_probe_closed(&rec->t, st->obj)
                         : res != NULL;   /* returned */
        if (closed && rec->t.state == ML_TR_OPEN) {
            PyObject *owned = ml_tr_settle(tr, &rec->t, ML_TR_CLOSED);
            Py_XSETREF(st->owned, owned);
            PyObject *exc = PyErr_GetRaisedException();
            ml_tr_drop_shims(tr, rec);
            PyErr_SetRaisedException(exc);
        }
    }
    return 0;
}
ML_TR_LOCKED(int, shim_after_locked,
             (ml_tracker *tr, ml_tr_shim *self, ml_tr_ref *rec, PyObject *res, shim_step *st),
             tr, shim_after(tr, self, rec, res, st))

static PyObject *
shim_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    ml_tr_shim *self = (ml_tr_shim *)op;
    ml_tr_ref *rec = (ml_tr_ref *)self->rec;   /* set at creation, cleared by tp_clear only
                                                  (we are called: not garbage) */
    if (rec == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the memleash tracker is shut down");
        return NULL;
    }
    if (Py_EnterRecursiveCall(" while calling a memleash observer")) {
        return NULL;   /* shims forwarding to shims, without end */
    }
    Py_INCREF(self);   /* closing takes us out of the dict that held us */
    Py_INCREF(rec);
    ml_tracker *tr = rec->t.tr;
    shim_step st = {NULL, NULL, NULL, NULL, 0, 0};
    (void)shim_before_locked(tr, self, rec, args, nargsf, &st);
    PyObject *res = st.res;
    if (st.forward) {
        res = st.prev != NULL ? PyObject_Vectorcall(st.prev, args, nargsf, kwnames)
                              : call_real(self, st.obj, args, nargsf, kwnames);   /* may
                                                                                 re-enter */
        if (st.obj != NULL) {
            (void)shim_after_locked(tr, self, rec, res, &st);
        }
    }
    Py_XDECREF(st.obj);
    Py_XDECREF(st.owned);
    Py_XDECREF(st.prev);
    Py_DECREF(rec);
    Py_DECREF(self);
    Py_LeaveRecursiveCall();
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

/* Forgets the record (which forgets us as its observer), in the tracker's lock: the
 * record's pointer to us is borrowed, and read there (at a collection's end). The
 * record's reference is let go after, out of the lock (it may be the last one). */
static void
shim_unlink(ml_tr_shim *self)
{
    ml_tr_ref *rec = (ml_tr_ref *)self->rec;
    if (rec == NULL) {
        self->obj = NULL;
        return;
    }
    ml_tr_section cs;
    ml_tr_lock(rec->t.tr, &cs);
    if (rec->t.shim == self) {
        rec->t.shim = NULL;
    }
    self->obj = NULL;
    ml_tr_unlock(&cs);
}

static int
shim_clear(ml_tr_shim *self)
{
    shim_unlink(self);
    Py_CLEAR(self->rec);
    Py_CLEAR(self->prev);
    return Py_TYPE(self)->tp_base->tp_clear((PyObject *)self);
}

static void
shim_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    ml_tr_shim *shim = (ml_tr_shim *)self;
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, shim_dealloc)   /* shims forwarding to shims free as a chain */
    shim_unlink(shim);
    Py_CLEAR(shim->rec);
    Py_CLEAR(shim->prev);
    Py_CLEAR(shim->meth);
    tp->tp_base->tp_dealloc(self);   /* weakref's dealloc clears the reference and frees */
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyObject *
shim_repr(ml_tr_shim *self)
{
    return PyUnicode_FromFormat("<memleash observer for %U()>", self->meth);
}

static PyMemberDef shim_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(ml_tr_shim, vectorcall), READONLY, NULL},
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
 * __dict__). A type without that method gets none, unless `always`. @return the shim
 * (borrowed: the dict holds it), NULL with no exception when none was put, or NULL with
 * an exception. A "close" shim's record keeps the dict, to take it out again. */
static ml_tr_shim *
add_shim(ml_tracker *tr, ml_tr_ref *rec, PyObject *obj, PyObject *meth, int role, int always)
{
    PyObject *dict = PyObject_GenericGetDict(obj, NULL);   /* new reference */
    if (dict == NULL) {
        return NULL;
    }
    ml_tr_shim *shim = NULL;
    PyObject *prev = NULL, *method = NULL;
    if (PyDict_GetItemRef(dict, meth, &prev) < 0) {   /* strong: the allocations below may
                                                         collect, and a __del__ replace it */
        goto done;
    }
    if (prev == NULL && !always && (method = ml_type_lookup_ref(Py_TYPE(obj), meth)) == NULL) {
        goto done;   /* the type has no such method */
    }
    shim = (ml_tr_shim *)ml_tr_new_weakref(tr->ShimType, obj, tr->shim_died);
    if (shim == NULL) {
        goto done;
    }
    shim->vectorcall = shim_vectorcall;
    shim->rec = Py_NewRef(rec);
    shim->obj = role == ML_TR_SHIM_FLUSH ? obj : NULL;   /* see the note above */
    shim->meth = Py_NewRef(meth);
    shim->prev = Py_XNewRef(prev);
    shim->role = role;
    if (PyDict_SetItem(dict, meth, (PyObject *)shim) < 0) {
        Py_CLEAR(shim);
        goto done;
    }
    if (role == ML_TR_SHIM_CLOSE && rec->t.dict == NULL) {
        rec->t.dict = Py_NewRef(dict);
    }
    Py_DECREF(shim);   /* the dict holds it */
done:
    Py_XDECREF(method);
    Py_XDECREF(prev);
    Py_DECREF(dict);
    return shim;
}

int
ml_tr_install_shims(ml_tracker *tr, ml_tr_ref *rec, PyObject *obj, PyObject *methods)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(methods); i++) {
        if (add_shim(tr, rec, obj, PyTuple_GET_ITEM(methods, i), ML_TR_SHIM_CLOSE, 0) == NULL &&
            PyErr_Occurred()) {
            return -1;
        }
    }
    return 0;
}

/* Whether type defines (or inherits) the attribute name. */
static int
type_has(PyTypeObject *type, PyObject *name)
{
    PyObject *v = ml_type_lookup_ref(type, name);
    Py_XDECREF(v);
    return v != NULL;
}

/* An io stack: follows `chain` (attribute names: "buffer", "raw"; one the type does
 * not have is passed) from obj down to its innermost stream, noting each layer in t, and
 * puts the shim there: on a raw file's flush, or on another stream's _dealloc_warn.
 * *warns: whether that stream warns itself (a FileIO has _dealloc_warn). 0 or -1. */
int
ml_tr_install_io_shims(ml_tracker *tr, ml_tr_ref *rec, PyObject *obj, PyObject *chain,
                       int *warns)
{
    PyObject *x = Py_NewRef(obj);
    int nlayers = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(chain); i++) {
        PyObject *name = PyTuple_GET_ITEM(chain, i);
        if (!type_has(Py_TYPE(x), name)) {
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
    if (!PyType_SUPPORTS_WEAKREFS(Py_TYPE(x)) || Py_TYPE(x)->tp_dictoffset == 0) {
        PyErr_Format(PyExc_TypeError, "cannot track a '%.100s' object: the stream under it "
                     "('%.100s') cannot be observed", Py_TYPE(obj)->tp_name,
                     Py_TYPE(x)->tp_name);
        goto done;
    }
    *warns = type_has(Py_TYPE(x), tr->str_dealloc_warn);
    ml_tr_shim *shim = *warns
        ? add_shim(tr, rec, x, tr->str_flush, ML_TR_SHIM_FLUSH, 1)
        : add_shim(tr, rec, x, tr->str_dealloc_warn, ML_TR_SHIM_DEALLOC_WARN, 1);
    if (shim != NULL) {
        rec->t.shim = shim;
        rc = 0;
    }
done:
    Py_DECREF(x);
    return rc;
}
