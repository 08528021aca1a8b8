/* emitter_state.c — what can be read of an emitter, and pickling (above emitter_listen.c,
 * which __setstate__ calls; the order is in emitter.h): listeners(), event_names(),
 * listener_count(), the max-listeners setting, _lock, __sizeof__, _ml_stats for
 * memleash.report(), _ml_referents for pympler, the _events snapshot, __getstate__ and
 * __setstate__.
 */
#include "py/emitter.h"

#include "core/status.h"

/* listeners(event): the live listeners, as registered, in order. They are held first
 * (a snapshot): rebuilding a bound method allocates, and a collection there may run
 * finalizers that change the emitter; a listener whose owner dies meanwhile is left out. */
PyObject *
emitter_listeners(EmitterObject *self, PyObject *event)
{
    uint32_t ev;
    int found = ml_em_lookup_event(self, event, &ev);
    if (found <= 0) {
        return found < 0 ? NULL : PyList_New(0);
    }
    ml_em_snapshot snap;
    if (ml_em_snapshot_take(self, ev, &snap) < 0) {
        return NULL;
    }
    PyObject *list = PyList_New(0);
    for (uint32_t i = 0; list != NULL && i < snap.n; i++) {
        PyObject *f = ml_em_callable_out(self, snap.v[i].id, snap.v[i].gen, &snap.v[i].pl);
        if (f == NULL ? PyErr_Occurred() != NULL : PyList_Append(list, f) < 0) {
            Py_CLEAR(list);
        }
        Py_XDECREF(f);
    }
    ml_em_snapshot_drop(&snap);   /* can re-enter */
    return list;
}

/* event_names(): the events with live listeners, as a set */
PyObject *
emitter_event_names(EmitterObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *names = PySet_New(NULL);
    if (names == NULL) {
        return NULL;
    }
    for (uint32_t ev = 0; ev < self->sl.events.top; ev++) {
        PyObject *key = self->sl.events.ents[ev].key;
        if (key != NULL && self->sl.ev[ev].live != 0) {
            /* set insertion hashes the key: it was hashable when stored; a __hash__ or
             * __eq__ that mutates the emitter only changes what later ids hold */
            Py_INCREF(key);
            int rc = PySet_Add(names, key);
            Py_DECREF(key);
            if (rc < 0) {
                Py_DECREF(names);
                return NULL;
            }
        }
    }
    return names;
}

/* listener_count(event) */
PyObject *
emitter_listener_count(EmitterObject *self, PyObject *event)
{
    uint32_t ev;
    int found = ml_em_lookup_event(self, event, &ev);
    if (found < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(found ? self->sl.ev[ev].live : 0);
}

PyObject *
emitter_set_max_listeners(EmitterObject *self, PyObject *n)
{
    Py_ssize_t v = PyNumber_AsSsize_t(n, PyExc_OverflowError);
    if (v == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (v < 0) {
        PyErr_SetString(PyExc_ValueError, "max listeners must be >= 0 (0: unlimited)");
        return NULL;
    }
    self->max_listeners = v;
    Py_RETURN_NONE;
}

PyObject *
emitter_get_max_listeners(EmitterObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->max_listeners);
}

/* _lock: a threading-style lock, made on first use (pyee's subclasses take it) */
PyObject *
emitter_get_lock(EmitterObject *self, void *Py_UNUSED(c))
{
    if (self->lock == NULL) {
        self->lock = PyObject_CallNoArgs(self->st->allocate_lock);
        if (self->lock == NULL) {
            return NULL;
        }
    }
    return Py_NewRef(self->lock);
}

PyObject *
emitter_sizeof(EmitterObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSize_t((size_t)Py_TYPE(self)->tp_basicsize + ml_slots_sizeof(&self->sl));
}

/* _ml_stats(): what memleash.report() shows of this emitter, as a dict of plain values. */
PyObject *
emitter_stats(EmitterObject *self, PyObject *Py_UNUSED(ignored))
{
    size_t events = 0, live = 0, weak = 0;
    for (uint32_t ev = 0; ev < self->sl.events.top; ev++) {
        if (self->sl.events.ents[ev].key != NULL && self->sl.ev[ev].live > 0) {
            events++;
            live += self->sl.ev[ev].live;
        }
    }
    for (uint32_t id = 0; id < self->sl.top; id++) {
        const ml_slot *sl = &self->sl.s[id];
        weak += !(sl->flags & (ML_SLOT_FREE | ML_SLOT_GONE)) && sl->p[1] != NULL;
    }
    PyObject *dict = Py_BuildValue(
        "{s:n,s:n,s:n,s:K,s:K,s:n,s:n}",
        "events", (Py_ssize_t)events,
        "listeners", (Py_ssize_t)live,
        "weak_listeners", (Py_ssize_t)weak,
        "listeners_removed", (unsigned long long)self->reaped,
        "leak_warnings", (unsigned long long)self->leak_warnings,
        "max_listeners", self->max_listeners,
        "own_bytes", (Py_ssize_t)((size_t)Py_TYPE(self)->tp_basicsize + ml_slots_sizeof(&self->sl)));
    if (dict == NULL || ml_reg_describe(&self->reg, dict) < 0) {
        Py_XDECREF(dict);
        return NULL;
    }
    return dict;
}

/* _ml_referents: what the emitter holds (event keys, listeners, functions, weakrefs —
 * never a weak listener's object), as a list, for pympler.asizeof (module.h). */
PyObject *
emitter_get_referents(EmitterObject *self, void *Py_UNUSED(c))
{
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    /* borrowed pointers are appended one by one: PyList_Append runs no Python code, so
     * the emitter cannot change during the walk */
    for (uint32_t ev = 0; ev < self->sl.events.top; ev++) {
        PyObject *key = self->sl.events.ents[ev].key;
        if (key != NULL && PyList_Append(list, key) < 0) {
            goto error;
        }
    }
    for (uint32_t id = 0; id < self->sl.top; id++) {
        const ml_slot *sl = &self->sl.s[id];
        if (sl->flags & ML_SLOT_FREE) {
            continue;
        }
        for (int i = 0; i < 4; i++) {
            if (sl->p[i] != NULL && PyList_Append(list, (PyObject *)sl->p[i]) < 0) {
                goto error;
            }
        }
    }
    return list;
error:
    Py_DECREF(list);
    return NULL;
}

/* _events: a read-only snapshot, event -> read-only {listener: listener}, for code that
 * inspects pyee's attribute (live listeners only; once-ness is not shown) */
PyObject *
emitter_get_events(EmitterObject *self, void *Py_UNUSED(c))
{
    PyObject *events = PyDict_New();
    if (events == NULL) {
        return NULL;
    }
    PyObject *names = emitter_event_names(self, NULL);
    PyObject *it = names ? PyObject_GetIter(names) : NULL, *event;
    Py_XDECREF(names);
    if (it == NULL) {
        goto error;
    }
    while ((event = PyIter_Next(it)) != NULL) {
        PyObject *fs = emitter_listeners(self, event), *inner = NULL, *proxy = NULL;
        if (fs != NULL && (inner = PyDict_New()) != NULL) {
            Py_ssize_t i = 0;
            for (; i < PyList_GET_SIZE(fs); i++) {
                PyObject *f = PyList_GET_ITEM(fs, i);
                if (PyDict_SetItem(inner, f, f) < 0) {
                    break;
                }
            }
            if (i == PyList_GET_SIZE(fs)) {
                proxy = PyDictProxy_New(inner);
            }
        }
        int rc = proxy ? PyDict_SetItem(events, event, proxy) : -1;
        Py_XDECREF(proxy);
        Py_XDECREF(inner);
        Py_XDECREF(fs);
        Py_DECREF(event);
        if (rc < 0) {
            Py_DECREF(it);
            goto error;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        goto error;
    }
    PyObject *view = PyDictProxy_New(events);
    Py_DECREF(events);
    return view;
error:
    Py_DECREF(events);
    return NULL;
}

/* __getstate__: (instance dict, max listeners, [(event, [(listener, once), ...]), ...]).
 * Strongly held listeners only: a weak one's object would die on unpickling anyway, so
 * weak listeners are dropped, with one warning. */
PyObject *
emitter_getstate(EmitterObject *self, PyObject *Py_UNUSED(ignored))
{
    /* first every event key and its listeners, held (PyMem and increfs: nothing runs),
     * then the Python objects, whose allocations may collect and change the emitter */
    typedef struct {
        PyObject *event;
        ml_em_snapshot snap;
    } held_event;
    uint32_t nev = 0, k = 0;
    for (uint32_t ev = 0; ev < self->sl.events.top; ev++) {
        nev += self->sl.events.ents[ev].key != NULL && self->sl.ev[ev].live != 0;
    }
    held_event *all = PyMem_New(held_event, nev ? nev : 1);
    if (all == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *events = NULL, *dict = NULL, *state = NULL;
    for (uint32_t ev = 0; ev < self->sl.events.top && k < nev; ev++) {
        PyObject *key = self->sl.events.ents[ev].key;
        if (key != NULL && self->sl.ev[ev].live != 0) {
            if (ml_em_snapshot_take(self, ev, &all[k].snap) < 0) {
                goto done;
            }
            all[k++].event = Py_NewRef(key);
        }
    }
    dict = Py_NewRef(self->dict && PyDict_GET_SIZE(self->dict) ? self->dict : Py_None);
    Py_ssize_t dropped = 0;
    events = PyList_New(0);
    for (uint32_t i = 0; events != NULL && i < k; i++) {
        PyObject *fs = PyList_New(0), *pair = NULL;
        for (uint32_t j = 0; fs != NULL && j < all[i].snap.n; j++) {
            const ml_em_held *h = &all[i].snap.v[j];
            if (h->pl.kind != KIND_STRONG) {
                dropped++;
                continue;
            }
            PyObject *item = Py_BuildValue("(OO)", h->pl.p[0],
                                           (h->flags & ML_SLOT_ONCE) ? Py_True : Py_False);
            if (item == NULL || PyList_Append(fs, item) < 0) {
                Py_CLEAR(fs);
            }
            Py_XDECREF(item);
        }
        pair = fs ? PyTuple_Pack(2, all[i].event, fs) : NULL;
        if (pair == NULL || PyList_Append(events, pair) < 0) {
            Py_CLEAR(events);
        }
        Py_XDECREF(pair);
        Py_XDECREF(fs);
    }
    if (events == NULL ||
        (dropped && PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                                     "memleash.EventEmitter: %zd weakly held listener(s) not "
                                     "pickled (their objects would not outlive unpickling)",
                                     dropped) < 0)) {
        goto done;
    }
    state = Py_BuildValue("(OnO)", dict, self->max_listeners, events);
done:
    for (uint32_t i = 0; i < k; i++) {
        Py_DECREF(all[i].event);   /* can re-enter, as the drops below */
        ml_em_snapshot_drop(&all[i].snap);
    }
    PyMem_Free(all);
    Py_XDECREF(events);
    Py_XDECREF(dict);
    return state;
}

/* Whether the listeners of a state can all be added: each entry an (event, [(f, once),
 * ...]) pair, each event and f hashable, each f callable. 0, or -1 with TypeError (or what
 * a __hash__ raised). Can re-enter (__hash__): items are held across it. */
static int
check_state_events(PyObject *events)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(events); i++) {
        PyObject *pair = Py_NewRef(PyList_GET_ITEM(events, i)), *fs = NULL;
        int ok = PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2 &&
                 PyList_Check(PyTuple_GET_ITEM(pair, 1)) &&
                 PyObject_Hash(PyTuple_GET_ITEM(pair, 0)) != -1;   /* can re-enter */
        if (ok) {
            fs = Py_NewRef(PyTuple_GET_ITEM(pair, 1));
        }
        for (Py_ssize_t j = 0; ok && j < PyList_GET_SIZE(fs); j++) {
            PyObject *item = Py_NewRef(PyList_GET_ITEM(fs, j));
            ok = PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2 &&
                 PyCallable_Check(PyTuple_GET_ITEM(item, 0)) &&
                 PyObject_Hash(PyTuple_GET_ITEM(item, 0)) != -1;   /* can re-enter */
            Py_DECREF(item);
        }
        Py_XDECREF(fs);
        Py_DECREF(pair);
        if (!ok) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "invalid EventEmitter state");
            }
            return -1;
        }
    }
    return 0;
}

PyObject *
emitter_setstate(EmitterObject *self, PyObject *state)
{
    PyObject *dict, *events;
    Py_ssize_t max_listeners;
    if (!PyTuple_Check(state) ||
        !PyArg_ParseTuple(state, "OnO!:EventEmitter.__setstate__", &dict, &max_listeners,
                          &PyList_Type, &events)) {
        if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "invalid EventEmitter state");
        }
        return NULL;
    }
    if (max_listeners < 0) {
        PyErr_SetString(PyExc_ValueError, "invalid EventEmitter state");
        return NULL;
    }
    Py_INCREF(events);
    /* the state replaces the listeners, as pyee's __setstate__ replaces _events; checked
     * first, so that a state refused leaves the emitter as it was */
    if (check_state_events(events) < 0) {
        goto error;
    }
    PyObject *r = emitter_remove_all_listeners(self, NULL, 0, NULL);   /* can re-enter */
    if (r == NULL) {
        goto error;
    }
    Py_DECREF(r);
    if (dict != Py_None) {
        PyObject *mine = PyObject_GenericGetDict((PyObject *)self, NULL);
        int rc = mine ? PyDict_Update(mine, dict) : -1;
        Py_XDECREF(mine);
        if (rc < 0) {
            goto error;
        }
    }
    self->max_listeners = max_listeners;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(events); i++) {
        PyObject *pair = PyList_GET_ITEM(events, i), *event, *fs;
        if (!PyTuple_Check(pair) || !PyArg_ParseTuple(pair, "OO!", &event, &PyList_Type, &fs)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "invalid EventEmitter state");
            goto error;
        }
        Py_INCREF(pair);   /* event is borrowed from it across Python code */
        Py_INCREF(fs);
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(fs); j++) {
            PyObject *f, *once, *item = PyList_GET_ITEM(fs, j);
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
                PyErr_SetString(PyExc_TypeError, "invalid EventEmitter state");
                Py_DECREF(fs);
                Py_DECREF(pair);
                goto error;
            }
            f = PyTuple_GET_ITEM(item, 0);
            once = PyTuple_GET_ITEM(item, 1);
            Py_INCREF(item);   /* f and once are borrowed from it across Python code */
            int rc = ml_em_add_listener(self, event, f, PyObject_IsTrue(once) == 1, 0, 0);
            Py_DECREF(item);
            if (rc < 0) {
                Py_DECREF(fs);
                Py_DECREF(pair);
                goto error;
            }
        }
        Py_DECREF(fs);
        Py_DECREF(pair);
    }
    Py_DECREF(events);
    Py_RETURN_NONE;
error:
    Py_DECREF(events);
    return NULL;
}
