/* flight.c — single flight for memoized calls (see flight.h for the design).
 *
 * The calls in this file that can run Python code are key comparisons (__eq__ of the key
 * looked for against a flight's key) and the decref of a key; both are made with the
 * flight held (refs), and a walk interrupted by one starts again when the list changed
 * (gen), at most ML_TABLE_MAX_RESTARTS times. The blocking wait runs with the GIL
 * released and wakes every 50 ms to let signal handlers run (an interrupted wait raises
 * their exception, as a Condition.wait() would).
 */
#include "py/flight.h"

#include "core/table.h"

#define WAIT_SLICE_US 50000

/* Drops one hold on f, freeing it with the last. @pre the owner's lock is held. The key's
 * decref is returned to the caller (*key_out), to be made once the lock is let go. */
static void
release_locked(ml_flight *f, PyObject **key_out)
{
    *key_out = NULL;
    if (--f->refs > 0) {
        return;
    }
    if (f->lock != NULL) {
        PyThread_free_lock(f->lock);
    }
    *key_out = f->key;
    PyMem_Free(f);
}

/* Finds key's flight. 1 found (*found held: refs + 1), 0 none, -1 error, 2 the list
 * changed while a key compared (walk again). @pre the owner's lock is held. */
static int
find_locked(ml_flights *fl, PyObject *key, Py_hash_t h, ml_flight **found)
{
    uint64_t gen = fl->gen;
    for (ml_flight *f = fl->head; f != NULL; f = f->next) {
        if (f->hash != h) {
            continue;
        }
        f->refs++;
        int eq = f->key == key ? 1 : PyObject_RichCompareBool(f->key, key, Py_EQ);   /* can re-enter */
        if (eq > 0) {
            *found = f;
            return 1;
        }
        PyObject *dead;
        release_locked(f, &dead);
        Py_XDECREF(dead);   /* can re-enter */
        if (eq < 0) {
            return -1;
        }
        if (fl->gen != gen) {
            return 2;   /* f->next may be stale */
        }
    }
    return 0;
}

/* Sleeps until f's lock is released (the leader ended), then passes it on to the next
 * waiter. 0, or -1 with the exception of a signal handler. GIL released while asleep. */
static int
wait_for(ml_flight *f)
{
    for (;;) {
        PyLockStatus st;
        Py_BEGIN_ALLOW_THREADS
        st = PyThread_acquire_lock_timed(f->lock, WAIT_SLICE_US, 0);
        Py_END_ALLOW_THREADS
        if (st == PY_LOCK_ACQUIRED) {
            PyThread_release_lock(f->lock);   /* wake the next waiter, if any */
            return 0;
        }
        if (PyErr_CheckSignals() < 0) {
            return -1;
        }
    }
}

int
ml_flight_join(PyObject *owner, ml_flights *fl, PyObject *key, Py_hash_t h, ml_flight **lead)
{
    unsigned long me = PyThread_get_thread_ident();
    (void)owner;   /* its critical section only (none with the GIL) */
    *lead = NULL;
    for (int attempt = 0;; attempt++) {
        ml_flight *f = NULL;
        int rc;
        ML_BEGIN_CRITICAL_SECTION(owner);
        rc = find_locked(fl, key, h, &f);   /* can re-enter */
        if (rc == 0) {
            /* nobody computes key: this call leads */
            ml_flight *mine = PyMem_Malloc(sizeof(ml_flight));
            if (mine == NULL) {
                PyErr_NoMemory();
                rc = -1;
            }
            else {
                mine->key = Py_NewRef(key);
                mine->hash = h;
                mine->thread = me;
                mine->lock = NULL;
                mine->refs = 1;
                mine->ended = 0;
                mine->next = fl->head;
                fl->head = mine;
                fl->gen++;
                *lead = mine;
                rc = 3;
            }
        }
        else if (rc == 1) {
            if (f->ended) {
                /* it ended while its key was compared: nothing to wait for */
                PyObject *dead;
                release_locked(f, &dead);
                Py_XDECREF(dead);
                f = NULL;
                rc = 4;
            }
            else if (f->thread == me) {
                PyErr_SetString(PyExc_RuntimeError,
                                "recursive call with the same key while computing it (a "
                                "single-flight memoized function would wait for itself forever)");
                rc = -1;
            }
            else if (f->lock == NULL) {
                /* the first waiter makes the lock, taken now, released by the leader */
                f->lock = PyThread_allocate_lock();
                if (f->lock == NULL || PyThread_acquire_lock(f->lock, NOWAIT_LOCK) != PY_LOCK_ACQUIRED) {
                    if (f->lock != NULL) {
                        PyThread_free_lock(f->lock);
                        f->lock = NULL;
                    }
                    PyErr_NoMemory();
                    rc = -1;
                }
            }
            if (rc < 0) {
                PyObject *dead;
                release_locked(f, &dead);
                Py_XDECREF(dead);
                f = NULL;
            }
        }
        ML_END_CRITICAL_SECTION();
        if (rc == 3) {
            return 1;
        }
        if (rc == 4) {
            return 0;
        }
        if (rc < 0) {
            return -1;
        }
        if (rc == 2) {
            if (attempt >= ML_TABLE_MAX_RESTARTS) {
                PyErr_SetString(PyExc_RuntimeError,
                                "the pending calls changed during a key comparison too many "
                                "times in a row");
                return -1;
            }
            continue;
        }
        /* rc == 1: wait for the leader, then let go of the flight */
        int waited = wait_for(f);
        PyObject *dead;
        ML_BEGIN_CRITICAL_SECTION(owner);
        release_locked(f, &dead);
        ML_END_CRITICAL_SECTION();
        Py_XDECREF(dead);   /* can re-enter */
        return waited < 0 ? -1 : 0;
    }
}

void
ml_flight_end(PyObject *owner, ml_flights *fl, ml_flight *f)
{
    PyObject *dead;
    (void)owner;   /* its critical section only (none with the GIL) */
    ML_BEGIN_CRITICAL_SECTION(owner);
    for (ml_flight **p = &fl->head; *p != NULL; p = &(*p)->next) {
        if (*p == f) {
            *p = f->next;
            break;
        }
    }
    f->next = NULL;
    f->ended = 1;
    fl->gen++;
    if (f->lock != NULL) {
        PyThread_release_lock(f->lock);   /* the first waiter wakes, and wakes the next */
    }
    release_locked(f, &dead);
    ML_END_CRITICAL_SECTION();
    Py_XDECREF(dead);   /* can re-enter */
}
