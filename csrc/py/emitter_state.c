/* emitter_state.c — what can be read of an emitter, and pickling (above emitter_listen.c,
 * which __setstate__ calls; the order is in emitter.h): listeners(), event_names(),
 * listener_count(), the max-listeners setting, _lock, __sizeof__, _ml_stats for
 * memleash.report(), _ml_referents for pympler, the _events snapshot, __getstate__ and
 * __setstate__.
 */
#include "py/emitter.h"

#include "core/status.h"

/* listeners(event): the live listeners, as registered, in order */
PyObject *
emitter_listeners(EmitterObject *self, PyObject *event)
{
    uint32_t ev;
    int found = ml_em_lookup_event(self, event, &ev);
    if (found < 0) {
        return NULL;
    }
    PyObject *list = PyList_New(0);
    if (list == NULL || !found) {
        return list;
    }
    /* building the list runs no Python code (PyMethod_New, PyList_Append), but allocation
     * can collect: ids stay valid (a dying owner only tombstones or frees its own slot) */
    uint64_t clock = self->sl.clock;
    for (uint32_t id = self->sl.ev[ev].head; id != ML_NIL; id = self->sl.s[id].next) {
        if (self->sl.s[id].flags & ML_SLOT_GONE) {
            continue;
        }
        PyObject *f = ml_em_slot_callable(self, &self->sl.s[id]);
        if (f == NULL) {
            if (PyErr_Occurred()) {
                Py_DECREF(list);
                return NULL;
            }
            continue;
        }
        int rc = PyList_Append(list, f);
        Py_DECREF(f);
        if (rc < 0) {
            Py_DECREF(list);
            return NULL;
        }
        if (self->sl.clock != clock) {
            Py_DECREF(list);   /* a collection changed the listeners: start over */
            return emitter_listeners(self, event);
        }
    }
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
    PyObject *events = PyList_New(0);
    if (events == NULL) {
        return NULL;
    }
    Py_ssize_t dropped = 0;
    for (uint32_t ev = 0; ev < self->sl.events.top; ev++) {
        PyObject *event = self->sl.events.ents[ev].key;
        if (event == NULL || self->sl.ev[ev].live == 0) {
            continue;
        }
        PyObject *fs = PyList_New(0);
        if (fs == NULL) {
            goto error;
        }
        /* no Python code runs in this loop: tuples and lists of existing objects */
        for (uint32_t id = self->sl.ev[ev].head; id != ML_NIL; id = self->sl.s[id].next) {
            const ml_slot *sl = &self->sl.s[id];
            if (sl->flags & ML_SLOT_GONE) {
                continue;
            }
            if (sl->kind != KIND_STRONG) {
                dropped++;
                continue;
            }
            PyObject *item = Py_BuildValue("(OO)", (PyObject *)sl->p[0],
                                           (sl->flags & ML_SLOT_ONCE) ? Py_True : Py_False);
            if (item == NULL || PyList_Append(fs, item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(fs);
                goto error;
            }
            Py_DECREF(item);
        }
        PyObject *pair = PyTuple_Pack(2, event, fs);
        Py_DECREF(fs);
        if (pair == NULL || PyList_Append(events, pair) < 0) {
            Py_XDECREF(pair);
            goto error;
        }
        Py_DECREF(pair);
    }
    if (dropped && PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                                    "memleash.EventEmitter: %zd weakly held listener(s) not "
                                    "pickled (their objects would not outlive unpickling)",
                                    dropped) < 0) {
        goto error;
    }
    PyObject *dict = self->dict && PyDict_GET_SIZE(self->dict) ? self->dict : Py_None;
    PyObject *state = Py_BuildValue("(OnO)", dict, self->max_listeners, events);
    Py_DECREF(events);
    return state;
error:
    Py_DECREF(events);
    return NULL;
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
