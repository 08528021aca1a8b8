/* shared.c — a memleash.Budget's member registry: which caches share it, joining, leaving,
 * and reading them all. At the bottom of the cache binding's files (it calls none of them).
 *
 * A member holds a strong reference to its budget (self->budget), the budget none to its
 * members: the member array holds borrowed pointers, and a cache leaves it before anything
 * else when it stops being whole — first in its dealloc and in its tp_clear, and when a
 * reconfiguration (__init__, __setstate__) moves it to another budget or to none. Leaving
 * is two steps the caller makes with no Python code between them: unlink (shared_unlink),
 * then take the engine's bytes out of the sum (ml_cache_unshare or ml_cache_steal), so the
 * budget's sum equals its members' at every point where Python code can look.
 *
 * The array is unordered: a member knows its index (member_slot), and leaving moves the
 * last member into the hole (O(1)). The budget also counts its members by what they need
 * (MEMBER_TIMED: expired entries go first; MEMBER_PYTHON: Python code names or removes
 * their victims), so a store knows in O(1) whether it can evict without running Python code.
 *
 * Threads. On the free-threaded build the array and the counts are guarded by the budget's
 * critical section, and the budget reads a member through a weak reference (made when the
 * cache first joins a budget), so that one another thread is deallocating — its reference
 * count at zero, not yet unlinked — is skipped rather than revived. With the GIL, a member
 * in the array is alive: its dealloc unlinks it before its reference count can be seen at
 * zero by Python code.
 */
#include "py/cache.h"

/* What b counts self as, from self's configuration now. */
static unsigned
flags_of(CacheObject *self)
{
    unsigned f = 0;
    if (self->c.deadlines_on) {
        f |= MEMBER_TIMED;
    }
    if (self->c.kind == ML_POLICY_RANDOM || (self->hooks & (HOOK_POPITEM | HOOK_DELITEM))) {
        f |= MEMBER_PYTHON;
    }
    return f;
}

static void
count_flags(BudgetObject *b, unsigned flags, Py_ssize_t sign)
{
    b->timed_members += (flags & MEMBER_TIMED) ? sign : 0;
    b->python_members += (flags & MEMBER_PYTHON) ? sign : 0;
}

int
shared_prepare(BudgetObject *b, CacheObject *self)
{
#ifndef Py_GIL_DISABLED
    (void)self;
#else
    if (self->member_wref == NULL) {
        PyObject *w = PyWeakref_NewRef((PyObject *)self, NULL);   /* can re-enter (a collection) */
        if (w == NULL) {
            return -1;
        }
        if (self->member_wref == NULL) {
            self->member_wref = w;
        }
        else {
            Py_DECREF(w);   /* made meanwhile */
        }
    }
#endif
    int rc = 0;
    ML_BEGIN_CRITICAL_SECTION(b);
    if (b->nmembers == b->cap) {
        Py_ssize_t cap = b->cap < 4 ? 4 : b->cap * 2;
        ml_member *m = PyMem_Realloc(b->members, (size_t)cap * sizeof(ml_member));
        if (m == NULL) {
            rc = -1;
        }
        else {
            b->members = m;
            b->cap = cap;
        }
    }
    ML_END_CRITICAL_SECTION();
    if (rc < 0) {
        PyErr_NoMemory();
    }
    return rc;
}

void
shared_link(BudgetObject *b, CacheObject *self)
{
    ML_BEGIN_CRITICAL_SECTION(b);
    /* shared_prepare made room; should another member have joined since, the array
     * grows here (no Python code: PyMem only). Failing that, the cache stays out of the
     * array: its bytes still count in the sum, it only cannot be evicted by the budget. */
    if (b->nmembers == b->cap) {
        ml_member *m = PyMem_Realloc(b->members, (size_t)(b->cap * 2) * sizeof(ml_member));
        if (m != NULL) {
            b->members = m;
            b->cap *= 2;
        }
    }
    self->member_flags = flags_of(self);
    if (b->nmembers < b->cap) {
        self->member_slot = b->nmembers;
        b->members[b->nmembers++].cache = self;
        count_flags(b, self->member_flags, 1);
    }
    else {
        self->member_slot = -1;
    }
    ML_END_CRITICAL_SECTION();
    self->budget = (BudgetObject *)Py_NewRef((PyObject *)b);
}

BudgetObject *
shared_unlink(CacheObject *self)
{
    BudgetObject *b = self->budget;
    if (b == NULL) {
        return NULL;
    }
    ML_BEGIN_CRITICAL_SECTION(b);
    Py_ssize_t i = self->member_slot;
    if (i >= 0) {
        CacheObject *last = b->members[--b->nmembers].cache;
        b->members[i].cache = last;
        last->member_slot = i;
        count_flags(b, self->member_flags, -1);
    }
    ML_END_CRITICAL_SECTION();
    self->budget = NULL;
    self->member_slot = -1;
    self->member_flags = 0;
    return b;
}

void
shared_update_flags(CacheObject *self)
{
    BudgetObject *b = self->budget;
    if (b == NULL) {
        return;
    }
    ML_BEGIN_CRITICAL_SECTION(b);
    if (self->member_slot >= 0) {
        count_flags(b, self->member_flags, -1);
        self->member_flags = flags_of(self);
        count_flags(b, self->member_flags, 1);
    }
    ML_END_CRITICAL_SECTION();
}

Py_ssize_t
shared_snapshot(BudgetObject *b, CacheObject ***out)
{
    Py_ssize_t n = 0;
    CacheObject **arr = NULL;
    ML_BEGIN_CRITICAL_SECTION(b);
    /* PyMem and reference counts only under the section: no Python code */
    arr = PyMem_Malloc((size_t)(b->nmembers > 0 ? b->nmembers : 1) * sizeof(CacheObject *));
    for (Py_ssize_t i = 0; arr != NULL && i < b->nmembers; i++) {
#ifdef Py_GIL_DISABLED
        PyObject *o = NULL;
        PyObject *w = b->members[i].cache->member_wref;
        if (w != NULL && PyWeakref_GetRef(w, &o) > 0) {
            arr[n++] = (CacheObject *)o;
        }
#else
        /* a member whose dealloc the trashcan deferred is still listed: never revived */
        if (Py_REFCNT(b->members[i].cache) > 0) {
            arr[n++] = (CacheObject *)Py_NewRef((PyObject *)b->members[i].cache);
        }
#endif
    }
    ML_END_CRITICAL_SECTION();
    if (arr == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *out = arr;
    return n;
}

void
shared_release(CacheObject **members, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_DECREF((PyObject *)members[i]);   /* can re-enter (a member's last reference) */
    }
    PyMem_Free(members);
}

void
shared_maybe_check(BudgetObject *b)
{
    PyObject *hook = NULL;
    ML_BEGIN_CRITICAL_SECTION(b);   /* the hook and its flag are the budget's */
    if (b->check != NULL && !b->checking &&
        ml_shared_bytes(&b->s) >= (size_t)ml_count_get(&b->check_at)) {
        b->checking = 1;
        hook = Py_NewRef(b->check);   /* _ml_follow may replace it meanwhile */
    }
    ML_END_CRITICAL_SECTION();
    if (hook == NULL) {
        return;
    }
    PyObject *budget = Py_NewRef((PyObject *)b);
    PyObject *r = PyObject_CallNoArgs(hook);   /* can re-enter */
    if (r == NULL) {
        PyErr_WriteUnraisable(hook);   /* the store itself succeeded */
    }
    Py_XDECREF(r);
    Py_DECREF(hook);
    ML_BEGIN_CRITICAL_SECTION(b);
    b->checking = 0;
    ML_END_CRITICAL_SECTION();
    Py_DECREF(budget);
}
