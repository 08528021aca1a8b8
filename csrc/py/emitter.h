/* emitter.h — memleash._core.EventEmitter (emitter.c). */
#ifndef ML_PY_EMITTER_H
#define ML_PY_EMITTER_H

#include "py/module.h"
#include "core/slots.h"

typedef struct {
    PyObject_HEAD
    ml_slots sl;            /* listeners by event (core/slots.c) */
    PyObject *reaper;       /* the weakref callback that unlinks dead owners' slots */
    PyObject *dict;         /* instance __dict__ (pyee's uplift assigns attributes) */
    PyObject *weakreflist;
    PyObject *lock;         /* _lock, made on first use */
    Py_ssize_t max_listeners;   /* 0: no leak warning */
    unsigned hooks;         /* HOOK_*: pyee hooks a subclass overrides (found once, in new) */
    ml_state *st;           /* borrowed: the module outlives its instances' type */
    ml_reg reg;             /* registry node: memleash.report() (module.h) */
    uint64_t reaped;        /* listeners unlinked because their owner died */
    uint64_t leak_warnings; /* ListenerLeakWarnings issued */
} EmitterObject;

enum {
    HOOK_EMIT_RUN = 1u,         /* _emit_run: emit calls it for each listener */
    HOOK_CALL_HANDLERS = 2u,    /* _call_handlers: emit calls it instead of its own loop */
    HOOK_HANDLE_ERROR = 4u,     /* _emit_handle_potential_error: called when unhandled */
    HOOK_ADD = 8u,              /* _add_event_handler: on/once/add_listener go through it */
    HOOK_REMOVE = 16u,          /* _remove_listener: remove_listener goes through it */
    HOOK_EMIT = 32u             /* emit: new_listener is announced through self.emit */
};

/* Adds EventEmitter, its helper types and exceptions to module. 0 or -1. */
int ml_emitter_module_exec(PyObject *module, ml_state *st);

#endif
