/* timed.c — TTLCache and TLRUCache: time, deadlines and expiry on the cache engine.
 *
 * A timed cache is an LRU cache whose entries also carry a deadline in the engine's
 * timer wheel (core/wheel.c). cachetools 8.0.2's rules, exactly:
 *   - an entry set at time t lives while `timer() < deadline`, deadline = t + ttl (TTL)
 *     or ttu(key, value, t) (TLRU); an expired entry is invisible to every read but stays
 *     until something expires it (lazily);
 *   - expire(time) removes every entry with `not (time < deadline)` and returns the
 *     removed (key, value) pairs in ascending deadline order (ties: in the order their
 *     deadlines were set); writes, len(), currsize and repr expire first;
 *   - the timer is wrapped in a Timer whose `with` block freezes the time; every cache
 *     operation runs inside one, so all its timer() calls see the same time.
 * Unlike cachetools, expiry is exact whatever the timer does: the wheel orders deadlines,
 * so a timer that jumps backwards cannot leave an expired entry behind a live one (and
 * len() always counts the visible items).
 *
 * Times are numbers or datetimes, each kept in the wheel as an exact double:
 *   - floats as they are (time.monotonic, time.time);
 *   - ints of any int64 value (time.monotonic_ns, time.time_ns, a test's integer clock) as
 *     their distance from an int origin, `iorigin`: exact while within 2**53 of it. The
 *     origin starts at 0 and moves to the timer's reading when a reading drifts more than
 *     2**52 from it (every 52 days for a nanosecond clock), shifting every deadline by the
 *     same exact integer; a deadline more than 2**53 in the past then reads -inf (it was
 *     long expired, and stays so; among such entries expire() goes by set order). A cache
 *     that has also taken float times or a float ttl keeps its origin and refuses an int
 *     time beyond 2**53 from it with OverflowError;
 *   - datetimes (with ttl a timedelta, as in cachetools' docs), kept as the exact number of
 *     microseconds since the first time the cache saw (`origin`): an integer, so exact as
 *     a double within 2**53 microseconds (285 years) of it; beyond that the cache raises
 *     OverflowError rather than round. A TTL deadline is `now + ttl` computed by Python,
 *     so datetime overflow raises as in cachetools.
 * Anything else is refused with TypeError.
 *
 * Note on re-entrancy: the timer, ttu and an overriding expire() run Python code. Deadlines
 * are computed before the entry is looked up (cache.c re-finds after every callback),
 * and expiry removes entries one at a time from a consistent engine, collecting the pairs
 * in a list that is released only at the end.
 */
#include "py/cache.h"

#include <datetime.h>
#include <math.h>

/* The datetime C API (a capsule pointer, set once by the first timed cache). */
static int
datetime_api(void)
{
    if (PyDateTimeAPI == NULL) {
        PyDateTime_IMPORT;
    }
    return PyDateTimeAPI == NULL ? -1 : 0;
}

#define MAX_EXACT (9007199254740992.0)   /* 2**53 */

/* A timedelta as microseconds (exact within 2**53). 0 or -1. */
static int
delta_us(PyObject *delta, double *out)
{
    double us = (double)PyDateTime_DELTA_GET_DAYS(delta) * 86400e6 +
                (double)PyDateTime_DELTA_GET_SECONDS(delta) * 1e6 +
                (double)PyDateTime_DELTA_GET_MICROSECONDS(delta);
    if (fabs(us) > MAX_EXACT) {
        PyErr_SetString(PyExc_OverflowError,
                        "timed cache: a time more than 2**53 microseconds (285 years) from the first one");
        return -1;
    }
    *out = us;
    return 0;
}

/* ------------------------------------------------------------------------------------
 * The Timer: cachetools' nestable frozen-time wrapper around the user's timer
 */
typedef struct {
    PyObject_HEAD
    PyObject *timer;        /* the user's timer */
    PyObject *frozen;       /* the time while nesting > 0 (made from frozen_d on demand) */
    Py_ssize_t nesting;
    int clock;              /* ML_CLOCK_*: timer is time.monotonic / time.time, read here */
    int have_d;             /* frozen_d holds the frozen time (the clock was read) */
    double frozen_d;
} TimerObject;

/* memleash.monotonic_coarse(): the coarse clock (compat.h) in seconds, a float. A timed
 * cache whose timer is this function reads the clock itself, as for time.monotonic. */
PyObject *
ml_monotonic_coarse(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    double now;
    return ml_clock_read(ML_CLOCK_COARSE, &now) < 0 ? NULL : PyFloat_FromDouble(now);
}

/* timer() of the user's timer. New reference, or NULL. Can re-enter. */
static PyObject *
timer_read(TimerObject *t)
{
    if (t->clock != ML_CLOCK_NONE) {
        double now;
        return ml_clock_read(t->clock, &now) < 0 ? NULL : PyFloat_FromDouble(now);
    }
    if (t->timer == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Timer without a timer (cleared by a collection)");
        return NULL;
    }
    PyObject *fn = Py_NewRef(t->timer);
    PyObject *now = PyObject_CallNoArgs(fn);   /* can re-enter */
    Py_DECREF(fn);
    return now;
}

/* A Timer's nesting and frozen time are guarded by its own lock (free-threaded build):
 * the functions below each run in a critical section on it. */

/* The frozen time as an object (made from the clock's double the first time it is asked
 * for), a new reference; NULL without an exception when not frozen. @pre t's lock held. */
static PyObject *
timer_frozen_locked(TimerObject *t)
{
    if (t->frozen == NULL && t->have_d) {
        t->frozen = PyFloat_FromDouble(t->frozen_d);   /* NULL: MemoryError */
    }
    return Py_XNewRef(t->frozen);
}
static PyObject *
timer_call_now(TimerObject *t)
{
    PyObject *r;
    ML_BEGIN_CRITICAL_SECTION(t);
    r = t->nesting > 0 ? timer_frozen_locked(t) : NULL;
    if (r == NULL && !PyErr_Occurred()) {
        r = timer_read(t);   /* can re-enter */
    }
    ML_END_CRITICAL_SECTION();
    return r;
}

/* The frozen time (a new reference), or NULL without an exception when the timer is not
 * entered. */
static PyObject *
timer_frozen(TimerObject *t)
{
    PyObject *r;
    ML_BEGIN_CRITICAL_SECTION(t);
    r = timer_frozen_locked(t);
    ML_END_CRITICAL_SECTION();
    return r;
}

static PyObject *
timer_enter_locked(TimerObject *t)
{
    if (t->nesting == 0) {
        PyObject *now = timer_read(t);   /* can re-enter */
        if (now == NULL) {
            return NULL;
        }
        Py_XSETREF(t->frozen, now);
        t->have_d = 0;
    }
    PyObject *frozen = timer_frozen_locked(t);
    if (frozen == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "Timer cleared while it was entered");
        }
        return NULL;
    }
    t->nesting++;
    return frozen;
}

/* Enters a Timer over a standard clock: the time as a double, no object made. 1 done (in
 * *now), 0 not such a timer (nothing done), -1 error. */
static int
timer_enter_clock(TimerObject *t, double *now)
{
    int rc = 0;
    ML_BEGIN_CRITICAL_SECTION(t);
    if (t->clock != ML_CLOCK_NONE) {
        if (t->nesting > 0) {
            PyObject *frozen = timer_frozen_locked(t);
            rc = frozen == NULL ? -1 : 1;
            if (frozen != NULL) {
                *now = PyFloat_AsDouble(frozen);   /* a float: cannot fail */
                Py_DECREF(frozen);
                t->nesting++;
            }
        }
        else if ((rc = ml_clock_read(t->clock, now) < 0 ? -1 : 1) > 0) {
            Py_CLEAR(t->frozen);   /* a float, made by a previous reader: no code runs */
            t->frozen_d = *now;
            t->have_d = 1;
            t->nesting = 1;
        }
    }
    ML_END_CRITICAL_SECTION();
    return rc;
}

static PyObject *
timer_enter_obj(TimerObject *t)
{
    PyObject *r;
    ML_BEGIN_CRITICAL_SECTION(t);
    r = timer_enter_locked(t);
    ML_END_CRITICAL_SECTION();
    return r;
}

static void
timer_exit_obj(TimerObject *t)
{
    PyObject *frozen = NULL;
    ML_BEGIN_CRITICAL_SECTION(t);
    if (t->nesting > 0 && --t->nesting == 0) {
        frozen = t->frozen;
        t->frozen = NULL;
        t->have_d = 0;
    }
    ML_END_CRITICAL_SECTION();
    Py_XDECREF(frozen);   /* can re-enter */
}

static PyObject *
timer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *timer;
    static char *kwlist[] = {"timer", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Timer", kwlist, &timer)) {
        return NULL;
    }
    if (!PyCallable_Check(timer)) {
        PyErr_SetString(PyExc_TypeError, "timer must be callable");
        return NULL;
    }
    TimerObject *t = (TimerObject *)type->tp_alloc(type, 0);
    if (t != NULL) {
        t->timer = Py_NewRef(timer);
        /* the standard clocks (the functions themselves, as the time module has them)
         * are read without calling them: the same double, without a call and a float */
        ml_state *st = ml_state_of_type(type);
        if (st != NULL && PyCFunction_Check(timer)) {
            t->clock = timer == st->time_monotonic ? ML_CLOCK_MONOTONIC
                     : timer == st->time_time ? ML_CLOCK_TIME
                     : PyCFunction_GetFunction(timer) == (PyCFunction)ml_monotonic_coarse
                       ? ML_CLOCK_COARSE : ML_CLOCK_NONE;
        }
        PyErr_Clear();
    }
    return (PyObject *)t;
}

static PyObject *
timer_tp_call(TimerObject *t, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "timer() takes no arguments");
        return NULL;
    }
    return timer_call_now(t);
}

static PyObject *
timer_enter_method(TimerObject *t, PyObject *Py_UNUSED(ignored))
{
    return timer_enter_obj(t);
}

static PyObject *
timer_exit_method(TimerObject *t, PyObject *const *Py_UNUSED(args), Py_ssize_t Py_UNUSED(n))
{
    timer_exit_obj(t);
    Py_RETURN_NONE;
}

static PyObject *
timer_reduce(TimerObject *t, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("(O(O))", Py_TYPE(t), t->timer);
}

static PyObject *
timer_copy(TimerObject *t, PyObject *Py_UNUSED(ignored))
{
    return PyObject_CallOneArg((PyObject *)Py_TYPE(t), t->timer);
}

static PyObject *
timer_deepcopy(TimerObject *t, PyObject *memo)
{
    /* the wrapped timer's own __deepcopy__ would otherwise be found through __getattr__ */
    PyObject *copy_mod = PyImport_ImportModule("copy");
    if (copy_mod == NULL) {
        return NULL;
    }
    PyObject *inner = PyObject_CallMethod(copy_mod, "deepcopy", "OO", t->timer, memo);
    Py_DECREF(copy_mod);
    if (inner == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_CallOneArg((PyObject *)Py_TYPE(t), inner);
    Py_DECREF(inner);
    return r;
}

/* Attributes the Timer lacks are the wrapped timer's (cachetools' __getattr__). */
static PyObject *
timer_getattro(TimerObject *t, PyObject *name)
{
    PyObject *r = PyObject_GenericGetAttr((PyObject *)t, name);
    if (r == NULL && PyErr_ExceptionMatches(PyExc_AttributeError) && t->timer != NULL) {
        PyErr_Clear();
        /* a Timer may wrap a Timer, any number deep: each level is one C frame */
        if (Py_EnterRecursiveCall(" while getting an attribute of a Timer's timer")) {
            return NULL;
        }
        PyObject *inner = Py_NewRef(t->timer);
        r = PyObject_GetAttr(inner, name);
        Py_DECREF(inner);
        Py_LeaveRecursiveCall();
    }
    return r;
}

static int
timer_traverse(TimerObject *t, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(t));
    Py_VISIT(t->timer);
    Py_VISIT(t->frozen);
    return 0;
}

static int
timer_clear(TimerObject *t)
{
    Py_CLEAR(t->timer);
    Py_CLEAR(t->frozen);
    return 0;
}

static void
timer_dealloc(TimerObject *t)
{
    PyTypeObject *tp = Py_TYPE(t);
    PyObject_GC_UnTrack(t);
    Py_TRASHCAN_BEGIN(t, timer_dealloc)   /* a chain of Timers is released iteratively */
    (void)timer_clear(t);
    tp->tp_free((PyObject *)t);
    Py_DECREF(tp);   /* inside: a dealloc the trashcan defers runs all of this later */
    Py_TRASHCAN_END
}

static PyMethodDef timer_methods[] = {
    {"__enter__", (PyCFunction)timer_enter_method, METH_NOARGS,
     "__enter__($self, /)\n--\n\nFreeze the time (nestable); return it."},
    {"__exit__", (PyCFunction)(void (*)(void))timer_exit_method, METH_FASTCALL,
     "__exit__($self, /, *exc_info)\n--\n\nUnfreeze the time (at the outermost exit)."},
    {"__reduce__", (PyCFunction)timer_reduce, METH_NOARGS, "__reduce__($self, /)\n--\n\n"},
    {"__copy__", (PyCFunction)timer_copy, METH_NOARGS, "__copy__($self, /)\n--\n\n"},
    {"__deepcopy__", (PyCFunction)timer_deepcopy, METH_O, "__deepcopy__($self, memo, /)\n--\n\n"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot timer_slots[] = {
    {Py_tp_doc, "Timer(timer)\n--\n\n"
                "The timer of a timed cache: t() is the time; `with t as now:` freezes it."},
    {Py_tp_new, timer_new},
    {Py_tp_call, timer_tp_call},
    {Py_tp_getattro, timer_getattro},
    {Py_tp_methods, timer_methods},
    {Py_tp_traverse, timer_traverse},
    {Py_tp_clear, timer_clear},
    {Py_tp_dealloc, timer_dealloc},
    {0, NULL},
};

PyType_Spec timer_spec = {
    .name = "memleash.Timer",
    .basicsize = sizeof(TimerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = timer_slots,
};

/* ------------------------------------------------------------------------------------
 * Time values and deadlines
 */

#define TWO_52 ((int64_t)1 << 52)
#define TWO_53 ((int64_t)1 << 53)

/* Moves an int-timed cache's origin to `to`, shifting every deadline by the same exact
 * integer (see the note on times above). 0, or -1 with OverflowError when the cache also
 * holds float times (they cannot be shifted exactly). Runs no Python code. */
static int
rebase(CacheObject *self, int64_t to)
{
    if (self->timed_floats_seen) {
        PyErr_SetString(PyExc_OverflowError,
                        "timed cache: an int time more than 2**53 from the first one, on a cache "
                        "that also takes float times (not exact as a float)");
        return -1;
    }
    int64_t shift;
    if (__builtin_sub_overflow(to, self->iorigin, &shift)) {
        PyErr_SetString(PyExc_OverflowError, "timed cache: times more than 2**63 apart");
        return -1;
    }
    ml_cache *c = &self->c;
    if (c->deadlines_on) {
        for (uint32_t id = 0; id < c->t.top; id++) {
            if (c->t.ents[id].key == NULL) {
                continue;
            }
            double d = ml_cache_deadline(c, id);
            if (!isfinite(d)) {
                continue;
            }
            /* an integral double within 2**53 of the old origin: exact as an int64 */
            int64_t moved = (int64_t)d - shift;
            ml_cache_set_deadline(c, id, moved < -TWO_53 ? -INFINITY : (double)moved);
        }
    }
    self->iorigin = to;
    return 0;
}

/* A number time as a double: a float as it is, an int as its exact distance from iorigin;
 * `establish` (a timer's reading) may move the origin. 1 done, 0 not a number, -1 error. */
static int
number_to_double(CacheObject *self, PyObject *o, int establish, double *out)
{
    if (PyFloat_Check(o)) {
        if (self->iorigin != 0) {
            PyErr_SetString(PyExc_TypeError,
                            "this timed cache's times are ints far from 0 (its timer's), not floats");
            return -1;
        }
        self->timed_floats_seen = 1;
        *out = PyFloat_AS_DOUBLE(o);
        return 1;
    }
    if (!PyLong_Check(o)) {
        return 0;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    int64_t off;
    if (overflow != 0 || __builtin_sub_overflow((int64_t)v, self->iorigin, &off)) {
        PyErr_SetString(PyExc_OverflowError, "timed cache: an int time beyond int64, or times "
                                             "more than 2**63 apart");
        return -1;
    }
    if (off > TWO_52 || off < -TWO_52) {
        if (establish) {
            if (rebase(self, (int64_t)v) < 0) {
                return -1;
            }
            off = 0;
        }
        else if (off > TWO_53 || off < -TWO_53) {
            PyErr_SetString(PyExc_OverflowError,
                            "timed cache: an int time more than 2**53 from the timer's (not exact)");
            return -1;
        }
    }
    *out = (double)off;
    return 1;
}

/* A time (a timer's value, a ttu result, an expire() argument) as a double: a number, or
 * a datetime as microseconds since the cache's origin. Only the timer's own readings
 * (`establish`) fix what kind of times the cache takes: the first one read while the
 * cache is empty makes a datetime the origin, or says the times are numbers; anything
 * else of the other kind is refused with TypeError, changing nothing. 0 or -1. Can
 * re-enter (datetime subtraction of a subclass). */
static int
time_to_double(CacheObject *self, PyObject *o, const char *what, int establish, double *out)
{
    if (self->origin != NULL && (PyFloat_Check(o) || PyLong_Check(o))) {
        PyErr_Format(PyExc_TypeError, "this timed cache's times are datetimes, not %.200s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    int r = number_to_double(self, o, establish, out);
    if (r != 0) {
        if (r > 0 && self->origin != NULL) {
            PyErr_Format(PyExc_TypeError, "this timed cache's times are datetimes, not %.200s",
                         Py_TYPE(o)->tp_name);
            return -1;
        }
        return r < 0 ? -1 : 0;
    }
    if (datetime_api() < 0) {
        return -1;
    }
    if (PyDateTime_Check(o)) {
        if (self->origin == NULL) {
            if (!establish || self->c.t.used != 0 || self->timed_numbers_seen) {
                PyErr_SetString(PyExc_TypeError, self->timed_numbers_seen || self->c.t.used
                                    ? "this timed cache's times are numbers, not datetimes"
                                    : "this timed cache's timer has not given a datetime");
                return -1;
            }
            self->origin = Py_NewRef(o);
        }
        PyObject *origin = Py_NewRef(self->origin);   /* __sub__ may reconfigure the cache */
        PyObject *delta = PyNumber_Subtract(o, origin);   /* can re-enter; TypeError: naive vs aware */
        Py_DECREF(origin);
        if (delta == NULL) {
            return -1;
        }
        int rc = PyDelta_Check(delta) ? delta_us(delta, out) : -1;
        if (rc < 0 && !PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "datetime subtraction did not give a timedelta");
        }
        Py_DECREF(delta);
        return rc;
    }
    PyErr_Format(PyExc_TypeError,
                 "memleash's timed caches take %s as an int, a float or a datetime, not %.200s",
                 what, Py_TYPE(o)->tp_name);
    return -1;
}

int
timed_enter(CacheObject *self, double *now, PyObject **timer)
{
    *timer = NULL;
    if (self->timer == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "timed cache without a timer (reconfigured?)");
        return -1;
    }
    TimerObject *t = (TimerObject *)Py_NewRef(self->timer);
    int fast = timer_enter_clock(t, now);
    if (fast != 0) {
        if (fast > 0 && self->iorigin == 0 && self->origin == NULL) {
            /* a float time, as time.monotonic() would have given it */
            self->timed_numbers_seen = 1;
            self->timed_floats_seen = 1;
            *timer = (PyObject *)t;
            return 0;
        }
        if (fast > 0) {
            timer_exit_obj(t);   /* the cache's times are ints or datetimes: say so below */
            PyObject *o = PyFloat_FromDouble(*now);
            fast = o == NULL ? -1 : time_to_double(self, o, "times", 1, now);
            Py_XDECREF(o);
        }
        Py_DECREF(t);
        return -1;
    }
    PyObject *o = timer_enter_obj(t);   /* can re-enter */
    if (o == NULL) {
        Py_DECREF(t);
        return -1;
    }
    int rc = time_to_double(self, o, "times", 1, now);   /* can re-enter */
    if (rc == 0 && (PyFloat_Check(o) || PyLong_Check(o))) {
        self->timed_numbers_seen = 1;
    }
    Py_DECREF(o);
    if (rc < 0) {
        timer_exit_obj(t);
        Py_DECREF(t);
        return -1;
    }
    *timer = (PyObject *)t;
    return 0;
}

void
timed_exit(PyObject *timer)
{
    if (timer != NULL) {
        timer_exit_obj((TimerObject *)timer);
        Py_DECREF(timer);
    }
}

int
timed_deadline(CacheObject *self, PyObject *key, PyObject *value, double now, double *when)
{
    TimerObject *t = (TimerObject *)self->timer;
    if (t == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "timed cache without a timer (reconfigured?)");
        return -1;
    }
    PyObject *frozen = timer_frozen(t);
    if (self->timed == TIMED_TTL) {
        if (self->origin == NULL || frozen == NULL) {
            Py_XDECREF(frozen);
            *when = now + self->ttl_d;
            if (isnan(*when)) {
                /* inf + -inf, or a NaN time: never `now < deadline`, so expired, as in
                 * cachetools; -inf says the same and keeps the wheel ordered */
                *when = -INFINITY;
            }
            return 0;
        }
        /* datetimes: Python adds (and raises OverflowError past datetime.max); __add__ of
         * a subclass may reconfigure the cache, so both operands are held */
        PyObject *ttl = Py_XNewRef(self->ttl);
        PyObject *deadline = ttl ? PyNumber_Add(frozen, ttl) : NULL;   /* can re-enter */
        if (ttl == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "timed cache without a ttl (reconfigured?)");
        }
        Py_DECREF(frozen);
        Py_XDECREF(ttl);
        if (deadline == NULL) {
            return -1;
        }
        int rc = time_to_double(self, deadline, "deadlines", 0, when);
        Py_DECREF(deadline);
        return rc;
    }
    PyObject *nowobj = frozen ? frozen : PyFloat_FromDouble(now);
    if (nowobj == NULL) {
        return -1;
    }
    if (self->ttu == NULL) {
        Py_DECREF(nowobj);
        PyErr_SetString(PyExc_RuntimeError, "timed cache without a ttu (reconfigured?)");
        return -1;
    }
    PyObject *ttu = Py_NewRef(self->ttu);
    PyObject *r = PyObject_CallFunctionObjArgs(ttu, key, value, nowobj, NULL);   /* can re-enter */
    Py_DECREF(ttu);
    Py_DECREF(nowobj);
    if (r == NULL) {
        return -1;
    }
    int rc = time_to_double(self, r, "ttu results", 0, when);
    Py_DECREF(r);
    return rc;
}

/* Removes the entries expired at `now`, earliest first; their pairs go to *pairs (a new
 * list) or, with pairs NULL, are released at the end. */
static int
expire_entries(CacheObject *self, double now, PyObject **pairs)
{
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return -1;
    }
    int rc = 0;
    for (;;) {
        /* the pair first: its allocation can run a collection, whose finalizers may remove
         * the entry next_expired would name */
        PyObject *pair = PyTuple_New(2);   /* can re-enter */
        if (pair == NULL) {
            rc = -1;
            break;
        }
        uint32_t id = ml_cache_next_expired(&self->c, now);
        if (id == ML_NIL) {
            Py_DECREF(pair);   /* empty: runs no Python code */
            break;
        }
        void *k, *v;
        ml_cache_remove(&self->c, id, &k, &v);
        self->expirations++;
        PyTuple_SET_ITEM(pair, 0, (PyObject *)k);   /* steals the cache's references */
        PyTuple_SET_ITEM(pair, 1, (PyObject *)v);
        rc = PyList_Append(list, pair);
        Py_DECREF(pair);   /* kept alive by the list, or released (entry already gone) */
        if (rc < 0) {
            break;
        }
    }
    ML_CACHE_CHECK(&self->c);
    if (pairs != NULL && rc == 0) {
        *pairs = list;
    }
    else {
        Py_DECREF(list);   /* can re-enter: the expired keys and values are released */
    }
    return rc;
}

int
timed_expire_internal(CacheObject *self, double now)
{
    if (!(self->hooks & HOOK_EXPIRE)) {
        if (ml_cache_next_expired(&self->c, now) == ML_NIL) {
            return 0;   /* the fast path: nothing has expired */
        }
        return expire_entries(self, now, NULL);
    }
    TimerObject *t = (TimerObject *)self->timer;
    PyObject *nowobj = t ? timer_frozen(t) : NULL;
    if (nowobj == NULL && !PyErr_Occurred()) {
        nowobj = PyFloat_FromDouble(now);
    }
    if (nowobj == NULL) {
        return -1;
    }
    PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, self->st->str_expire, nowobj);   /* can re-enter */
    Py_DECREF(nowobj);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);   /* can re-enter */
    return 0;
}

/* expire(time=None): the public method (TTLCache.expire is this descriptor). */
PyObject *
cache_expire_method(CacheObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *time = Py_None;
    if (nargs > 1 || (kwnames != NULL && (PyTuple_GET_SIZE(kwnames) > 1 ||
                                          (PyTuple_GET_SIZE(kwnames) == 1 && nargs == 1)))) {
        PyErr_SetString(PyExc_TypeError, "expire() takes at most 1 argument");
        return NULL;
    }
    if (nargs == 1) {
        time = args[0];
    }
    else if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) == 1) {
        if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "time") != 0) {
            PyErr_Format(PyExc_TypeError, "expire() got an unexpected keyword argument '%U'",
                         PyTuple_GET_ITEM(kwnames, 0));
            return NULL;
        }
        time = args[0];
    }
    if (!self->timed) {
        PyErr_SetString(PyExc_TypeError, "expire() is for timed caches");
        return NULL;
    }
    /* an explicit time is judged by the kind of times the cache takes; until the timer
     * has said which (numbers or datetimes), it is read first */
    double now;
    if (time == Py_None || (self->origin == NULL && !self->timed_numbers_seen)) {
        PyObject *tm;
        if (timed_enter(self, &now, &tm) < 0) {
            return NULL;
        }
        timed_exit(tm);
    }
    if (time != Py_None && time_to_double(self, time, "times", 0, &now) < 0) {
        return NULL;
    }
    PyObject *pairs = NULL;
    if (expire_entries(self, now, &pairs) < 0) {
        return NULL;
    }
    return pairs;
}

int
timed_parse(CacheObject *self, int kind, PyObject *param, PyObject *timer, double *ttl_d,
            PyObject **wrapped)
{
    *wrapped = NULL;
    *ttl_d = 0.0;
    if ((kind != TIMED_TTL && kind != TIMED_TLRU) || self->c.kind != ML_POLICY_LRU) {
        PyErr_SetString(PyExc_ValueError, "timed caches are LRU caches with a TTL or a TTU");
        return -1;
    }
    if (kind == TIMED_TTL) {
        int r = 0;
        if (PyFloat_Check(param)) {
            *ttl_d = PyFloat_AS_DOUBLE(param);
            r = 1;
        }
        else if (PyLong_Check(param)) {
            int overflow = 0;
            long long v = PyLong_AsLongLongAndOverflow(param, &overflow);
            if (v == -1 && PyErr_Occurred()) {
                return -1;
            }
            if (overflow != 0 || v > TWO_53 || v < -TWO_53) {
                PyErr_SetString(PyExc_OverflowError,
                                "ttl must be within 2**53 (an int ttl is kept exactly)");
                return -1;
            }
            *ttl_d = (double)v;
            r = 1;
        }
        if (r == 0) {
            if (datetime_api() < 0) {
                return -1;
            }
            if (!PyDelta_Check(param)) {
                PyErr_Format(PyExc_TypeError,
                             "ttl must be an int, a float or a timedelta, not %.200s",
                             Py_TYPE(param)->tp_name);
                return -1;
            }
            r = delta_us(param, ttl_d) < 0 ? -1 : 1;
        }
        if (r < 0) {
            return -1;
        }
        if (isnan(*ttl_d)) {
            PyErr_SetString(PyExc_ValueError, "ttl must not be NaN");
            return -1;
        }
    }
    else if (!PyCallable_Check(param)) {
        PyErr_SetString(PyExc_TypeError, "ttu must be callable");
        return -1;
    }
    PyObject *inner = Py_IS_TYPE(timer, self->st->TimerType) ? ((TimerObject *)timer)->timer : timer;
    if (inner == NULL) {
        PyErr_SetString(PyExc_TypeError, "timer must be callable");
        return -1;
    }
    inner = Py_NewRef(inner);
    *wrapped = PyObject_CallOneArg((PyObject *)self->st->TimerType, inner);
    Py_DECREF(inner);
    return *wrapped == NULL ? -1 : 0;
}

void
timed_install(CacheObject *self, ml_cache *engine, int kind, PyObject *param, PyObject *wrapped,
              double ttl_d)
{
    ml_cache_exchange(&self->c, engine);
    PyObject *old[4] = {self->origin, self->timer, self->ttl, self->ttu};
    self->origin = NULL;
    self->timer = wrapped;   /* the caller's reference moves here */
    self->ttl = kind == TIMED_TTL ? Py_NewRef(param) : NULL;
    self->ttu = kind == TIMED_TLRU ? Py_NewRef(param) : NULL;
    self->timed = (unsigned)kind;
    self->ttl_d = ttl_d;
    self->timed_numbers_seen = 0;
    self->timed_floats_seen = kind == TIMED_TTL && PyFloat_Check(param);
    self->iorigin = 0;
    self->config_gen++;
    shared_update_flags(self);   /* its budget now counts it as timed */
    cacheobj_release_engine(engine);   /* can re-enter */
    for (int i = 0; i < 4; i++) {
        Py_XDECREF(old[i]);
    }
}

void
timed_new_engine(CacheObject *self, ml_cache *fresh)
{
    const ml_cache *c = &self->c;
    ml_cache_init(fresh, &ml_alloc_pymem, c->kind, c->units_on, c->bytes_on, c->budget.maxunits,
                  c->budget.maxbytes);
    if (c->shared != NULL) {
        (void)ml_cache_share(fresh, c->shared);   /* empty: allocates nothing */
    }
    ml_cache_enable_deadlines(fresh);
}

/* _ml_configure_timed(kind, ttl_or_ttu, timer): called by TTLCache / TLRUCache.__init__
 * right after Cache.__init__; the cache starts empty, with the same limits. */
PyObject *
cache_configure_timed(CacheObject *self, PyObject *args)
{
    int kind;
    PyObject *param, *timer, *wrapped;
    double ttl_d;
    if (!PyArg_ParseTuple(args, "iOO:_ml_configure_timed", &kind, &param, &timer) ||
        timed_parse(self, kind, param, timer, &ttl_d, &wrapped) < 0) {
        return NULL;
    }
    ml_cache fresh;
    timed_new_engine(self, &fresh);
    timed_install(self, &fresh, kind, param, wrapped, ttl_d);   /* can re-enter */
    Py_RETURN_NONE;
}

int
timed_traverse(CacheObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->origin);
    Py_VISIT(self->timer);
    Py_VISIT(self->ttl);
    Py_VISIT(self->ttu);
    return 0;
}

void
timed_clear(CacheObject *self)
{
    Py_CLEAR(self->origin);
    Py_CLEAR(self->timer);
    Py_CLEAR(self->ttl);
    Py_CLEAR(self->ttu);
}

static PyObject *
get_or_none(PyObject *o)
{
    return Py_NewRef(o ? o : Py_None);
}

PyObject *
timed_get_timer(CacheObject *self, void *Py_UNUSED(c))
{
    return get_or_none(self->timer);
}

PyObject *
timed_get_ttl(CacheObject *self, void *Py_UNUSED(c))
{
    return get_or_none(self->ttl);
}

PyObject *
timed_get_ttu(CacheObject *self, void *Py_UNUSED(c))
{
    return get_or_none(self->ttu);
}

PyObject *
timed_get_expiry_work(CacheObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromUnsignedLongLong(self->c.deadlines.touched);
}

/* ------------------------------------------------------------------------------------
 * Pickling: (kind, ttl or ttu, the user's timer, deadlines in iteration order), or None
 */
int
timed_fill_state(CacheObject *self, PyObject *tuple, PyObject *deadlines)
{
    PyObject *param = self->timed == TIMED_TTL ? self->ttl : self->ttu;
    if (self->timer == NULL || ((TimerObject *)self->timer)->timer == NULL || param == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "timed cache without a timer (cleared by a collection)");
        return -1;
    }
    Py_ssize_t i = 0;
    for (uint32_t id = ml_cache_first(&self->c); id != ML_NIL; id = ml_cache_next(&self->c, id)) {
        PyObject *d = PyFloat_FromDouble(ml_cache_deadline(&self->c, id));   /* not GC-tracked */
        if (d == NULL) {
            return -1;
        }
        PyList_SET_ITEM(deadlines, i++, d);
    }
    PyObject *kind = PyLong_FromLong((long)self->timed);
    PyObject *iorigin = PyLong_FromLongLong((long long)self->iorigin);
    PyObject *floats = PyLong_FromLong((long)self->timed_floats_seen);
    PyTuple_SET_ITEM(tuple, 0, kind);   /* a NULL slot stays NULL: released unfilled */
    PyTuple_SET_ITEM(tuple, 1, Py_NewRef(param));
    PyTuple_SET_ITEM(tuple, 2, Py_NewRef(((TimerObject *)self->timer)->timer));
    PyTuple_SET_ITEM(tuple, 3, Py_NewRef(deadlines));
    PyTuple_SET_ITEM(tuple, 4, Py_NewRef(self->origin ? self->origin : Py_None));
    PyTuple_SET_ITEM(tuple, 5, iorigin);
    PyTuple_SET_ITEM(tuple, 6, floats);
    return kind == NULL || iorigin == NULL || floats == NULL ? -1 : 0;
}

int
timed_check_origin(PyObject *origin)
{
    if (datetime_api() < 0) {
        return -1;
    }
    if (!PyDateTime_Check(origin)) {
        PyErr_SetString(PyExc_ValueError, "inconsistent cache state");
        return -1;
    }
    return 0;
}
