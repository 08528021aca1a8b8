/* emitter_emit.c — the emit path (above emitter_slot.c; the order is in emitter.h): emit
 * and its loop over an event's slots in place (pyee's snapshot, kept by the core's clock),
 * the calls of one listener, pyee's hooks on that path (_call_handlers, _emit_run,
 * _emit_handle_potential_error) and the unhandled "error" event. Every listener call can
 * re-enter: see the note on re-entrancy in emitter.c.
 */
#include "py/emitter.h"

#include "core/status.h"

/* ------------------------------------------------------------------------------------
 * Emit
 */

/* emit's arguments as pyee's hooks take them: (args tuple, kwargs dict), built once per
 * emit on first need */
typedef struct {
    PyObject *args, *kwargs;
} packed_args;

static int
pack_args(packed_args *pk, PyObject *const *args, size_t nargs, PyObject *kwnames)
{
    if (pk->args != NULL) {
        return 0;
    }
    pk->args = PyTuple_New((Py_ssize_t)nargs);
    pk->kwargs = PyDict_New();
    if (pk->args == NULL || pk->kwargs == NULL) {
        return -1;
    }
    for (size_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(pk->args, (Py_ssize_t)i, Py_NewRef(args[i]));
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        if (PyDict_SetItem(pk->kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + (size_t)i]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Calls the listener of slot id with args[1:] (args[0] is scratch space), through the
 * subclass's _emit_run when it has one. 0 called, 1 skipped (its owner died), -1 error.
 * The payload is held and the owner read strongly first: the call, and any allocation
 * before it (a collection), can free the slot's objects. Can re-enter. */
static int
call_slot(EmitterObject *self, uint32_t id, PyObject **args, size_t nargs, PyObject *kwnames,
          packed_args *pk)
{
    payload pl = ml_em_payload_hold(&self->sl.s[id]);
    uint32_t gen = self->sl.s[id].gen;
    PyObject *fn = NULL, *res = NULL;
    int rc = -1;
    if (Py_EnterRecursiveCall(" while calling an emitter's listener")) {
        goto done;   /* a listener that emits from C (a partial of emit) recursed */
    }
    if (self->hooks & HOOK_EMIT_RUN) {
        fn = ml_em_callable_out(self, id, gen, &pl);   /* handed to user code */
        if (fn != NULL && pack_args(pk, args + 1, nargs, kwnames) == 0) {
            res = PyObject_CallMethodObjArgs((PyObject *)self, self->st->str_emit_run, fn,
                                             pk->args, pk->kwargs, NULL);   /* can re-enter */
        }
    }
    else if (ML_EM_BASE(pl.kind) == KIND_METHOD) {
        fn = ml_weak_get(pl.p[1]);   /* the owner, strong for the call */
        if (fn != NULL) {
            args[0] = fn;
            res = PyObject_Vectorcall(pl.p[0], args, nargs + 1, kwnames);   /* can re-enter */
        }
    }
    else {
        /* the partial itself while it lives; a weak listener's referent; a strong one */
        fn = ml_em_callable(self, &pl);
        if (fn != NULL) {
            res = PyObject_Vectorcall(fn, args + 1, nargs | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      kwnames);   /* can re-enter */
        }
    }
    Py_LeaveRecursiveCall();
    if (fn == NULL) {
        rc = PyErr_Occurred() ? -1 : 1;   /* no exception: its owner died */
    }
    else if (res != NULL) {
        rc = 0;
    }
done:
    Py_XDECREF(res);
    Py_XDECREF(fn);
    ml_em_payload_drop(pl);   /* can re-enter */
    return rc;
}

static PyObject *
raise_unhandled_error(EmitterObject *self, PyObject *error)
{
    if (error != NULL && PyExceptionInstance_Check(error) &&
        PyObject_TypeCheck(error, (PyTypeObject *)PyExc_Exception)) {
        PyErr_SetObject((PyObject *)Py_TYPE(error), error);
        return NULL;
    }
    PyObject *shown = error ? error : Py_None;
    PyErr_Format(self->st->PyeeError, "Uncaught, unspecified 'error' event: %S", shown);
    return NULL;
}

/* The live registration, on event, of the callable that tombstone `gone` held: 1 with
 * *id set, 0 (none, or its owner died), -1 error. Can re-enter. */
static int
current_registration(EmitterObject *self, PyObject *event, Py_hash_t eh, uint32_t gone,
                     uint32_t *id)
{
    PyObject *f = ml_em_slot_callable(self, gone);
    if (f == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_hash_t fh = PyObject_Hash(f);
    uint32_t ev;
    int found = fh == -1 ? -1 : ml_em_find_listener(self, event, eh, f, fh, &ev, id);
    Py_DECREF(f);   /* can re-enter: the last reference to a rebuilt method's owner */
    if (found == 1 && (self->sl.s[*id].flags & ML_SLOT_GONE)) {
        found = 0;   /* unlinked by what that released (ids are not reused during emits) */
    }
    return found;
}

#define SMALL_ARGS 8

/* The emit loop: 1 handled, 0 not, -1 error. */
int
ml_em_emit_event(EmitterObject *self, PyObject *event, PyObject *const *pargs, size_t n,
           PyObject *kwnames)
{
    Py_hash_t h = PyObject_Hash(event);
    if (h == -1) {
        return -1;
    }
    uint32_t ev;
    int found = ml_em_find_event(self, event, h, &ev);
    if (found <= 0 || self->sl.ev[ev].live == 0) {
        return found < 0 ? -1 : 0;
    }
    size_t nkw = kwnames ? (size_t)PyTuple_GET_SIZE(kwnames) : 0, total = n + nkw;
    PyObject *small[SMALL_ARGS + 1], **args = small;
    if (total + 1 > SMALL_ARGS + 1) {
        args = PyMem_New(PyObject *, total + 1);
        if (args == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    for (size_t i = 0; i < total; i++) {
        args[i + 1] = pargs[i];   /* borrowed: the caller holds them for the call */
    }
    packed_args pk = {NULL, NULL};
    Py_INCREF(self);
    self->sl.emitting++;
    uint64_t start = self->sl.clock;
    int handled = 0, rc = 0;
    for (uint32_t id = self->sl.ev[ev].head; id != ML_NIL; id = self->sl.s[id].next) {
        ml_slot *sl = &self->sl.s[id];
        uint32_t run = id;
        if ((sl->flags & (ML_SLOT_GONE | ML_SLOT_ONCE | ML_SLOT_DEAD)) ==
                (ML_SLOT_GONE | ML_SLOT_ONCE) && sl->added < start && sl->gone >= start) {
            /* a once entry of this emit's snapshot, removed or registered again since:
             * like pyee's once wrapper, it runs if its callable is registered now, and
             * removes that registration */
            int now = current_registration(self, event, h, id, &run);   /* can re-enter */
            if (now < 0) {
                rc = -1;
                break;
            }
            if (!now) {
                continue;
            }
            (void)ml_slots_unlink(&self->sl, run, 0);
        }
        else if (!ml_slots_runs(sl, start)) {
            continue;   /* not in this emit's snapshot */
        }
        else if (sl->flags & ML_SLOT_ONCE) {
            (void)ml_slots_unlink(&self->sl, id, 0);   /* a tombstone: emitting > 0 */
        }
        int called = call_slot(self, run, args, n, kwnames, &pk);   /* can re-enter */
        if (called < 0) {
            rc = -1;
            break;
        }
        handled |= called == 0;
    }
    self->sl.emitting--;
    if (args != small) {
        PyMem_Free(args);
    }
    Py_XDECREF(pk.args);     /* can re-enter: the last references to emit's arguments */
    Py_XDECREF(pk.kwargs);
    if (self->sl.emitting == 0 && self->sl.zombies != ML_NIL) {
        PyObject *et, *ev_, *tb;
        PyErr_Fetch(&et, &ev_, &tb);
        ml_em_compact(self);   /* can re-enter */
        PyErr_Restore(et, ev_, tb);
    }
    Py_DECREF(self);
    return rc < 0 ? -1 : handled;
}

/* 1 handled, 0 not, -1 error: emit's handlers, through the subclass's _call_handlers
 * when it has one. */
static int
run_handlers(EmitterObject *self, PyObject *event, PyObject *const *pargs, size_t n,
             PyObject *kwnames)
{
    if (!(self->hooks & HOOK_CALL_HANDLERS)) {
        return ml_em_emit_event(self, event, pargs, n, kwnames);
    }
    packed_args pk = {NULL, NULL};
    int rc = -1;
    if (pack_args(&pk, pargs, n, kwnames) == 0 &&
        !Py_EnterRecursiveCall(" in an emitter's _call_handlers")) {
        PyObject *r = PyObject_CallMethodObjArgs((PyObject *)self, self->st->str_call_handlers,
                                                 event, pk.args, pk.kwargs, NULL);
        Py_LeaveRecursiveCall();
        if (r != NULL) {
            rc = PyObject_IsTrue(r);
            Py_DECREF(r);
        }
    }
    Py_XDECREF(pk.args);
    Py_XDECREF(pk.kwargs);
    return rc;
}

/* pyee's _emit_handle_potential_error: an unhandled "error" event raises. */
static PyObject *
handle_potential_error(EmitterObject *self, PyObject *event, PyObject *error)
{
    int is_error = PyObject_RichCompareBool(event, self->st->str_error, Py_EQ);
    if (is_error < 0) {
        return NULL;
    }
    if (is_error) {
        return raise_unhandled_error(self, error == Py_None ? NULL : error);
    }
    Py_RETURN_NONE;
}

/* emit(event, *args, **kwargs) -> bool */
PyObject *
emitter_emit(EmitterObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS((size_t)nargsf);
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "emit() missing required argument: 'event'");
        return NULL;
    }
    int handled = run_handlers(self, args[0], args + 1, (size_t)(nargs - 1), kwnames);
    if (handled < 0) {
        return NULL;
    }
    if (!handled) {
        PyObject *error = nargs > 1 ? args[1] : Py_None, *r;
        if (self->hooks & HOOK_HANDLE_ERROR) {
            if (Py_EnterRecursiveCall(" in an emitter's _emit_handle_potential_error")) {
                return NULL;
            }
            r = PyObject_CallMethodObjArgs((PyObject *)self, self->st->str_handle_error, args[0],
                                           error, NULL);
            Py_LeaveRecursiveCall();
        }
        else {
            r = handle_potential_error(self, args[0], error);
        }
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    return PyBool_FromLong(handled);
}

/* _call_handlers(event, args, kwargs) -> bool: pyee's hook (uplift calls it directly) */
PyObject *
emitter_call_handlers(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!ml_em_check_args("_call_handlers", nargs, 3, 3)) {
        return NULL;
    }
    if (!PyTuple_Check(args[1]) || (args[2] != Py_None && !PyDict_Check(args[2]))) {
        PyErr_SetString(PyExc_TypeError, "_call_handlers(event, args: tuple, kwargs: dict)");
        return NULL;
    }
    PyObject *tuple = args[1], *kw = args[2] == Py_None ? NULL : args[2];
    Py_ssize_t n = PyTuple_GET_SIZE(tuple), nkw;
    PyObject **stack = NULL, *kwnames = NULL, *result = NULL;
    for (int attempt = 0;; attempt++) {
        /* the names' allocation can collect, and a finalizer may change the dict: sized
         * again until it holds still (dict_keys' pattern); nothing runs after it */
        nkw = kw ? PyDict_GET_SIZE(kw) : 0;
        Py_XSETREF(kwnames, nkw ? PyTuple_New(nkw) : NULL);   /* can re-enter */
        if (nkw && kwnames == NULL) {
            goto error;
        }
        if (nkw == (kw ? PyDict_GET_SIZE(kw) : 0)) {
            break;
        }
        if (attempt >= ML_TABLE_MAX_RESTARTS) {
            PyErr_SetString(PyExc_RuntimeError,
                            "_call_handlers: kwargs changed size while it was read");
            goto error;
        }
    }
    stack = PyMem_New(PyObject *, (size_t)(n + nkw + 1));
    if (stack == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        stack[i] = Py_NewRef(PyTuple_GET_ITEM(tuple, i));
    }
    Py_ssize_t pos = 0, i = 0;
    PyObject *key, *value;
    while (kw && PyDict_Next(kw, &pos, &key, &value) && i < nkw) {
        PyTuple_SET_ITEM(kwnames, i, Py_NewRef(key));
        stack[n + i] = Py_NewRef(value);
        i++;
    }
    int handled = ml_em_emit_event(self, args[0], stack, (size_t)n, kwnames);
    for (Py_ssize_t j = 0; j < n + i; j++) {
        Py_DECREF(stack[j]);
    }
    if (handled >= 0) {
        result = PyBool_FromLong(handled);
    }
error:
    PyMem_Free(stack);
    Py_XDECREF(kwnames);
    return result;
}

/* _emit_run(f, args, kwargs): pyee's hook: f(*args, **kwargs) */
PyObject *
emitter_emit_run(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (!ml_em_check_args("_emit_run", nargs, 3, 3)) {
        return NULL;
    }
    if (!PyTuple_Check(args[1]) || (args[2] != Py_None && !PyDict_Check(args[2]))) {
        PyErr_SetString(PyExc_TypeError, "_emit_run(f, args: tuple, kwargs: dict)");
        return NULL;
    }
    PyObject *r = PyObject_Call(args[0], args[1], args[2] == Py_None ? NULL : args[2]);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* _emit_handle_potential_error(event, error): pyee's hook */
PyObject *
emitter_handle_error(EmitterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!ml_em_check_args("_emit_handle_potential_error", nargs, 2, 2)) {
        return NULL;
    }
    return handle_potential_error(self, args[0], args[1]);
}
