/* flight.h — single flight for memoized calls (memleash.func's decorators): while one call
 * computes a missing key, the calls for the same key wait, then read what it stored.
 *
 * A flight is the computing call's record: the key (and its hash), the thread computing
 * it, and — made only when a second call arrives — a lock the waiters sleep on. Flights
 * of one memoized function form a short list (one per key being computed: at most one per
 * thread), so finding one is a walk comparing stored hashes first.
 *
 * Locking: the list and every flight's fields are guarded by the owner's critical section
 * (the memoized function; the GIL on builds with it). Waiting happens outside it, with
 * the GIL released. A flight is freed by the last of its leader and waiters to let go of
 * it (refs), so a waiter that wakes after the leader ended still holds valid memory.
 *
 * Layering: call.c calls this file; it calls nothing of the binding's.
 */
#ifndef ML_PY_FLIGHT_H
#define ML_PY_FLIGHT_H

#include "py/compat.h"

#include <stdint.h>

typedef struct ml_flight {
    struct ml_flight *next;
    PyObject *key;              /* strong */
    Py_hash_t hash;
    unsigned long thread;       /* the computing call's PyThread_get_thread_ident() */
    PyThread_type_lock lock;    /* made by the first waiter, held until the leader ends */
    Py_ssize_t refs;            /* the leader until it ends, plus the waiters */
    int ended;                  /* the leader has ended (it is out of the list) */
} ml_flight;

typedef struct {
    ml_flight *head;
    uint64_t gen;               /* moves on every change of the list */
} ml_flights;

/* Joins the flight for key (hash h) of owner's list fl, or starts one.
 * @return 1: no call was computing key; *lead is a new flight that this call leads (it
 *         computes, stores, then calls ml_flight_end);
 *         0: another call was computing key and has ended: look the key up again (if it
 *         is still missing — the call failed, or its value was too large — join again);
 *         -1: an exception — RuntimeError when this thread itself is computing key (it
 *         would wait for itself forever), an error of key's __eq__, or a signal's
 *         exception raised while waiting.
 * Can re-enter (key's __eq__). Waits with the GIL released. */
int ml_flight_join(PyObject *owner, ml_flights *fl, PyObject *key, Py_hash_t h, ml_flight **lead);

/* Ends flight f (led by this call): takes it out of the list and wakes its waiters. Runs
 * no Python code but a decref of the key. */
void ml_flight_end(PyObject *owner, ml_flights *fl, ml_flight *f);

#endif
