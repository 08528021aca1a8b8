/* cache_state.c — repr and pickling of memleash._core.Cache (see cache.c for the design).
 *
 * repr follows cachetools: `Name({k: v, ...}, maxsize=..., currsize=...)`, with "{...}" for
 * a cache met again inside its own repr. Pickling goes through __getstate__/__setstate__
 * and copyreg.__newobj__, so subclasses with their own __init__ signature pickle, and
 * copy.copy gets its own entries while sharing attribute values (as cachetools 8).
 */
#include "py/cache.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------
 * Configuration: limits validated first, then a new engine put in place at once
 */
int
cacheobj_parse_limits(ml_state *st, PyObject *maxsize, int units_on, PyObject *max_bytes,
                      PyObject *sizeof_fn, PyObject *budget, cache_limits *out)
{
    if (budget != Py_None && !PyObject_TypeCheck(budget, st->BudgetType)) {
        PyErr_Format(PyExc_TypeError, "budget must be a memleash.Budget or None, not %.200s",
                     Py_TYPE(budget)->tp_name);
        return -1;
    }
    if (cacheobj_to_limit(maxsize, &out->maxunits) < 0) {
        return -1;
    }
    size_t maxbytes = SIZE_MAX;
    if (max_bytes != Py_None &&
        cacheobj_to_maxbytes(max_bytes, "max_bytes must be an int or None", &maxbytes) < 0) {
        return -1;
    }
    if (sizeof_fn != Py_None && !PyCallable_Check(sizeof_fn)) {
        PyErr_Format(PyExc_TypeError, "sizeof must be callable or None, not %.200s",
                     Py_TYPE(sizeof_fn)->tp_name);
        return -1;
    }
    out->maxbytes = maxbytes;
    out->units_on = units_on != 0;
    out->budget = budget == Py_None ? NULL : (BudgetObject *)budget;
    out->bytes_on = max_bytes != Py_None || sizeof_fn != Py_None || out->budget != NULL;
    return 0;
}

void
cacheobj_new_engine(CacheObject *self, const cache_limits *lim, ml_cache *fresh)
{
    ml_cache_init(fresh, &ml_alloc_pymem, self->c.kind, lim->units_on, lim->bytes_on,
                  lim->maxunits, lim->maxbytes);
}

/* Makes self a member of budget (or of none) in place of its current budget. Runs no Python
 * code. @return the reference to the budget self leaves, which the caller releases once
 * the old engine's bytes have left it (NULL when the membership is unchanged or none). */
static BudgetObject *
change_budget(CacheObject *self, BudgetObject *budget)
{
    if (self->budget == budget) {
        return NULL;
    }
    BudgetObject *left = shared_unlink(self);
    if (budget != NULL) {
        shared_link(budget, self);
    }
    return left;
}

void
cacheobj_install(CacheObject *self, ml_cache *engine, PyObject *maxsize, PyObject *sizeof_fn,
                 BudgetObject *budget)
{
    /* every field is set before anything old is released: a __del__ reached by the
     * releases below finds a whole, configured cache (and may reconfigure it again) */
    cacheobj_keys_change(self);
    BudgetObject *left = change_budget(self, budget);
    ml_cache_exchange(&self->c, engine);
    PyObject *old_maxsize = self->maxsize, *old_sizeof = self->sizeof_fn;
    PyObject *old_timed[4] = {self->origin, self->timer, self->ttl, self->ttu};
    self->maxsize = Py_NewRef(maxsize);
    self->sizeof_fn = sizeof_fn == Py_None ? NULL : Py_NewRef(sizeof_fn);
    self->timed = TIMED_NONE;   /* a new engine has no deadlines: _ml_configure_timed adds them */
    self->origin = self->timer = self->ttl = self->ttu = NULL;
    self->timed_numbers_seen = 0;
    self->timed_floats_seen = 0;
    self->iorigin = 0;
    self->config_gen++;
    shared_update_flags(self);
    cacheobj_release_engine(engine);   /* can re-enter; the old bytes leave the old budget */
    Py_XDECREF((PyObject *)left);
    Py_XDECREF(old_maxsize);
    Py_XDECREF(old_sizeof);
    for (int i = 0; i < 4; i++) {
        Py_XDECREF(old_timed[i]);
    }
}

/* Puts the cache in its configured, empty state. Steals nothing. */
int
cacheobj_configure(CacheObject *self, PyObject *maxsize, int units_on, PyObject *max_bytes,
                   PyObject *sizeof_fn, PyObject *budget)
{
    cache_limits lim;
    if (cacheobj_parse_limits(self->st, maxsize, units_on, max_bytes, sizeof_fn, budget, &lim) < 0) {
        return -1;
    }
    Py_INCREF(budget);   /* held across the preparation, which can run code */
    int rc = lim.budget != NULL ? shared_prepare(lim.budget, self) : 0;   /* can re-enter */
    if (rc == 0) {
        /* everything validated: from here on the cache changes */
        ml_cache fresh;
        cacheobj_new_engine(self, &lim, &fresh);
        if (lim.budget != NULL) {
            (void)ml_cache_share(&fresh, &lim.budget->s);   /* empty: allocates nothing */
        }
        cacheobj_install(self, &fresh, maxsize, sizeof_fn, lim.budget);   /* can re-enter */
    }
    Py_DECREF(budget);
    return rc;
}

/* The units callable: an overriding getsizeof, else one set on the instance. */
int
cacheobj_resolve_getsizeof(CacheObject *self)
{
    PyObject *fn = NULL;
    if (self->c.units_on) {
        fn = PyObject_GetAttr((PyObject *)self, self->st->str_getsizeof);
        if (fn == NULL) {
            return -1;
        }
    }
    Py_XSETREF(self->getsizeof, fn);
    return 0;
}

/* ------------------------------------------------------------------------------------
 * repr, pickling and copying
 */
PyObject *
cache_repr(CacheObject *self)
{
    PyObject *name = NULL, *data = NULL, *currsize = NULL, *result = NULL, *items = NULL;
    if (cacheobj_expire_now(self) < 0) {
        return NULL;
    }
    int rc = Py_ReprEnter((PyObject *)self);
    if (rc < 0) {
        return NULL;
    }
    if (rc > 0) {
        data = PyUnicode_FromString("{...}");
    }
    else {
        PyObject *d = PyDict_New();
        items = cacheobj_snapshot(self);
        if (d != NULL && items != NULL) {
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i += 2) {
                if (PyDict_SetItem(d, PyList_GET_ITEM(items, i), PyList_GET_ITEM(items, i + 1)) < 0) {   /* can re-enter */
                    Py_CLEAR(d);
                    break;
                }
            }
        }
        if (d != NULL) {
            data = PyObject_Repr(d);   /* can re-enter */
            Py_DECREF(d);
        }
        Py_ReprLeave((PyObject *)self);
    }
    if (data == NULL) {
        goto error;
    }
    name = cacheobj_type_name(self);
    currsize = cache_get_currsize(self, NULL);
    if (name == NULL || currsize == NULL) {
        goto error;
    }
    result = PyUnicode_FromFormat("%U(%U, maxsize=%R, currsize=%R)", name, data, self->maxsize, currsize);
error:
    Py_XDECREF(items);
    Py_XDECREF(name);
    Py_XDECREF(data);
    Py_XDECREF(currsize);
    return result;
}

/* The policy's order as ids (ml_cache_walk_policy): its victim first, nothing for Cache.
 * @return how many were written. */
typedef struct {
    uint32_t *out, n;
} order_acc;

static void
order_append(void *arg, uint32_t id)
{
    order_acc *acc = arg;
    acc->out[acc->n++] = id;
}

static uint32_t
policy_order(const ml_cache *c, uint32_t *out)
{
    order_acc acc = {out, 0};
    if (c->kind != ML_POLICY_INSERTION) {
        ml_cache_walk_policy(c, order_append, &acc);
    }
    return acc.n;
}

/* State: (dict, maxsize, units_on, units_float, max_bytes, sizeof, items, units, bytes,
 * order, counts, choice, timed, budget, policy) — items flat in iteration order; timed: see
 * timed.c; order: the policy's order as positions in items (None for Cache); counts: LFU's
 * use counts along order, or TinyLFU's regions; budget: the shared Budget or None
 * (copy.copy shares it, pickle and deepcopy make a new one); policy: TinyLFU's sketch and
 * climber (cache_tlfu.c), else None (a state without it reads as None). Flat lists pickle
 * iteratively, whatever the number of items.
 *
 * Containers first, contents after: every list and tuple of the state is allocated in one
 * batch, and any of those allocations can run a collection, whose finalizers may change
 * the cache (store, remove, __init__, __setstate__, a new __class__), so the batch is made
 * anew until the cache is what it was before it (entry count, change counter, the policy
 * and flags that decide the containers' shapes). From there to the end only ints, floats
 * and bytes are made, none of which runs a collection: the state is read at one instant.
 * The containers stay out of the collector's view until filled (a finalizer run by a
 * later allocation of the batch could meet their NULL slots through gc.get_objects()). */
/* o (a new list or tuple, or NULL) out of the collector's view until it is filled. */
static PyObject *
untracked(PyObject *o)
{
    if (o != NULL) {
        PyObject_GC_UnTrack(o);
    }
    return o;
}

#define batch_list(n) untracked(PyList_New(n))     /* can re-enter */
#define batch_tuple(n) untracked(PyTuple_New(n))   /* can re-enter */

enum { ST_ITEMS, ST_UNITS, ST_BYTES, ST_ORDER, ST_COUNTS, ST_DEADLINES, ST_TIMED, ST_POLICY,
       ST_STATE, ST_N };

/* The batch's shape: what decides which containers the state has, and their sizes. */
typedef struct {
    uint32_t n;
    uint64_t version;
    ml_policy kind;
    int timed, units_on, bytes_on;
} state_shape;

static int
same_shape(const state_shape *a, const state_shape *b)
{
    return a->n == b->n && a->version == b->version && a->kind == b->kind &&
           a->timed == b->timed && a->units_on == b->units_on && a->bytes_on == b->bytes_on;
}

static void
shape_of(CacheObject *self, state_shape *sh)
{
    const ml_cache *c = &self->c;
    sh->n = c->t.used;
    sh->version = c->t.version;
    sh->kind = c->kind;
    sh->timed = self->timed != TIMED_NONE;
    sh->units_on = c->units_on;
    sh->bytes_on = c->bytes_on;
}

/* Allocates the batch for shape sh into o[] (None where the state has no such part).
 * 0 or -1. Can re-enter. */
static int
allocate_batch(const state_shape *sh, PyObject **o)
{
    Py_ssize_t n = (Py_ssize_t)sh->n;
    int ordered = sh->kind != ML_POLICY_INSERTION, tinylfu = sh->kind == ML_POLICY_TINYLFU;
    int counted = sh->kind == ML_POLICY_LFU || tinylfu;
    o[ST_ITEMS] = batch_list(n * 2);
    o[ST_UNITS] = sh->units_on ? batch_list(n) : Py_NewRef(Py_None);
    o[ST_BYTES] = sh->bytes_on ? batch_list(n) : Py_NewRef(Py_None);
    o[ST_ORDER] = ordered ? batch_list(n) : Py_NewRef(Py_None);
    o[ST_COUNTS] = counted ? batch_list(n) : Py_NewRef(Py_None);
    o[ST_DEADLINES] = sh->timed ? batch_list(n) : Py_NewRef(Py_None);
    o[ST_TIMED] = sh->timed ? batch_tuple(7) : Py_NewRef(Py_None);
    o[ST_POLICY] = tinylfu ? batch_tuple(8) : Py_NewRef(Py_None);
    o[ST_STATE] = batch_tuple(15);
    for (int i = 0; i < ST_N; i++) {
        if (o[i] == NULL) {
            return -1;
        }
    }
    return 0;
}

/* The policy's walk into order and counts; positions index items. 0 or -1. */
static int
fill_order(const ml_cache *c, uint32_t n, PyObject *order, PyObject *counts)
{
    uint32_t *pos = PyMem_Malloc(((size_t)c->t.top + 1u) * sizeof(uint32_t));
    uint32_t *ids = PyMem_Malloc(((size_t)n + 1u) * sizeof(uint32_t));
    int rc = -1;
    if (pos == NULL || ids == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    uint32_t p = 0;
    for (uint32_t id = ml_cache_first(c); id != ML_NIL; id = ml_cache_next(c, id)) {
        pos[id] = p++;
    }
    uint32_t m = policy_order(c, ids);
    assert(m == n);
    for (uint32_t j = 0; j < m; j++) {
        PyObject *o = PyLong_FromUnsignedLong(pos[ids[j]]);
        if (o == NULL) {
            goto done;
        }
        PyList_SET_ITEM(order, j, o);
        if (counts != Py_None) {
            uint64_t k = c->kind == ML_POLICY_LFU ? ml_lfu_count(&c->lfu, ids[j])
                                                  : c->tlfu.region_of[ids[j]];
            if ((o = PyLong_FromUnsignedLongLong(k)) == NULL) {
                goto done;
            }
            PyList_SET_ITEM(counts, j, o);
        }
    }
    rc = 0;
done:
    PyMem_Free(pos);
    PyMem_Free(ids);
    return rc;
}

/* Fills the batch from the cache as it is now (its shape is sh's). Makes only ints,
 * floats and bytes. 0 or -1 (a container may keep NULL slots: released unfilled). */
static int
fill_batch(CacheObject *self, PyObject **o)
{
    const ml_cache *c = &self->c;
    Py_ssize_t i = 0;
    for (uint32_t id = ml_cache_first(c); id != ML_NIL; id = ml_cache_next(c, id), i++) {
        PyList_SET_ITEM(o[ST_ITEMS], 2 * i, Py_NewRef((PyObject *)c->t.ents[id].key));
        PyList_SET_ITEM(o[ST_ITEMS], 2 * i + 1, Py_NewRef((PyObject *)c->t.ents[id].value));
        if (o[ST_UNITS] != Py_None) {
            PyObject *u = cacheobj_size_to_object(ml_cache_units_of(c, id));
            if (u == NULL) {
                return -1;
            }
            PyList_SET_ITEM(o[ST_UNITS], i, u);
        }
        if (o[ST_BYTES] != Py_None) {
            PyObject *b = PyLong_FromSize_t(c->bytes[id]);
            if (b == NULL) {
                return -1;
            }
            PyList_SET_ITEM(o[ST_BYTES], i, b);
        }
    }
    if (o[ST_ORDER] != Py_None && fill_order(c, c->t.used, o[ST_ORDER], o[ST_COUNTS]) < 0) {
        return -1;
    }
    if (o[ST_TIMED] != Py_None && timed_fill_state(self, o[ST_TIMED], o[ST_DEADLINES]) < 0) {
        return -1;
    }
    if (o[ST_POLICY] != Py_None && tlfu_fill_state(&c->tlfu, o[ST_POLICY]) < 0) {
        return -1;
    }
    PyObject *maxbytes = cache_get_maxbytes(self, NULL);   /* an int or None */
    PyObject *units_on = PyLong_FromLong((long)c->units_on);
    PyObject *float_mode = PyLong_FromLong((long)c->budget.float_mode);
    /* an empty instance dict pickles as None, as a cache without one (see compat.h's
     * ml_instance_dict_new: which of the two a fresh cache has depends on the version) */
    PyObject *dict = self->dict && PyDict_GET_SIZE(self->dict) ? self->dict : Py_None;
    PyObject *parts[15] = {
        Py_NewRef(dict), Py_XNewRef(self->maxsize), units_on, float_mode, maxbytes,
        Py_NewRef(self->sizeof_fn ? self->sizeof_fn : Py_None), Py_NewRef(o[ST_ITEMS]),
        Py_NewRef(o[ST_UNITS]), Py_NewRef(o[ST_BYTES]), Py_NewRef(o[ST_ORDER]),
        Py_NewRef(o[ST_COUNTS]), Py_NewRef(self->choice ? self->choice : Py_None),
        Py_NewRef(o[ST_TIMED]), Py_NewRef(self->budget ? (PyObject *)self->budget : Py_None),
        Py_NewRef(o[ST_POLICY]),
    };
    int rc = 0;
    for (Py_ssize_t k = 0; k < 15; k++) {
        if (parts[k] == NULL) {
            rc = -1;
        }
        PyTuple_SET_ITEM(o[ST_STATE], k, parts[k]);
    }
    if (rc < 0 && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_RuntimeError, "cache without a maxsize (cleared by a collection)");
    }
    return rc;
}

PyObject *
cache_getstate(CacheObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *o[ST_N] = {NULL};
    PyObject *state = NULL;
    for (int attempt = 0;; attempt++) {
        if (attempt > ML_TABLE_MAX_RESTARTS) {
            return cacheobj_changed_error(self, "__getstate__");
        }
        state_shape before, after;
        shape_of(self, &before);
        int rc = allocate_batch(&before, o);   /* can re-enter */
        if (rc == 0) {
            shape_of(self, &after);
            if (same_shape(&before, &after)) {
                break;
            }
        }
        /* released with their slots NULL: runs no Python code */
        for (int i = 0; i < ST_N; i++) {
            Py_CLEAR(o[i]);
        }
        if (rc < 0) {
            return NULL;
        }
    }
    if (fill_batch(self, o) == 0) {
        for (int i = 0; i < ST_N; i++) {
            if (o[i] != Py_None && !PyObject_GC_IsTracked(o[i])) {
                PyObject_GC_Track(o[i]);
            }
        }
        state = Py_NewRef(o[ST_STATE]);
    }
    for (int i = 0; i < ST_N; i++) {
        Py_DECREF(o[i]);   /* the state holds them (or they go, unfilled or filled) */
    }
    return state;
}

static int
inconsistent(void)
{
    if (!PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "inconsistent cache state");
    }
    return -1;
}

/* What __setstate__ has read and validated, before it changes anything. The lists of the
 * state are copied into tuples first: user code runs while the state is read (a key's
 * __hash__ and __eq__, __float__ of a size) and may change the lists, never the copies. */
typedef struct {
    PyObject *items, *units, *bytes, *order, *counts;   /* tuples (new references) or NULL */
    Py_ssize_t n;
    cache_limits lim;
    int units_float;
    ml_size *u;             /* n sizes, or NULL without units */
    size_t *b;              /* n byte counts, or NULL without bytes */
    Py_ssize_t *q;          /* the policy order: positions in items, or NULL (Cache) */
    uint64_t *cnt;          /* LFU's counts or TinyLFU's regions along q, or NULL */
    tlfu_state tlfu;        /* TinyLFU's sketch and climber */
    Py_hash_t *h;           /* the keys' hashes */
    uint32_t *ids;          /* the entry id of each position, once stored */
    /* timed: */
    int kind;               /* TIMED_NONE, TIMED_TTL or TIMED_TLRU */
    int64_t iorigin;        /* the int origin of number times */
    int floats_seen;
    PyObject *param, *wrapped, *origin, *deadline_list;
    double ttl_d, *dl;
} restore;

static void
restore_free(restore *r)
{
    Py_XDECREF(r->items);
    Py_XDECREF(r->units);
    Py_XDECREF(r->bytes);
    Py_XDECREF(r->order);
    Py_XDECREF(r->counts);
    Py_XDECREF(r->wrapped);
    Py_XDECREF(r->deadline_list);
    PyMem_Free(r->u);
    PyMem_Free(r->b);
    PyMem_Free(r->q);
    PyMem_Free(r->cnt);
    PyMem_Free(r->h);
    PyMem_Free(r->ids);
    PyMem_Free(r->dl);
    tlfu_state_free(&r->tlfu);
}

/* A private tuple copy of a list of n items (or None, when allowed). 0 or -1. */
static int
copy_list(PyObject *o, Py_ssize_t n, int none_ok, PyObject **out)
{
    *out = NULL;
    if (o == Py_None && none_ok) {
        return 0;
    }
    if (!PyList_Check(o) || (n >= 0 && PyList_GET_SIZE(o) != n)) {
        return inconsistent();
    }
    *out = PyList_AsTuple(o);
    return *out == NULL ? -1 : 0;
}

static void *
alloc_array(Py_ssize_t n, size_t size)
{
    void *p = PyMem_Calloc((size_t)n + 1u, size);
    if (p == NULL) {
        PyErr_NoMemory();
    }
    return p;
}

/* Reads and validates every part of the state that needs no user code but sizes'
 * __float__; nothing of self changes. 0 or -1. */
static int
restore_read(CacheObject *self, restore *r, PyObject *maxsize, int units_on, PyObject *max_bytes,
             PyObject *sizeof_fn, PyObject *choice, PyObject *timed, PyObject *budget,
             PyObject *policy)
{
    const ml_cache *c = &self->c;
    Py_ssize_t n = r->n;
    int ordered = c->kind != ML_POLICY_INSERTION, tiny = c->kind == ML_POLICY_TINYLFU;
    /* counts along the order: LFU's uses (1 or more), TinyLFU's regions (0 to 2) */
    uint64_t kmin = tiny ? 0 : 1, kmax = tiny ? ML_TLFU_REGIONS - 1 : ML_LFU_MAX_COUNT;
    if ((ordered ? r->order == NULL : r->order != NULL) ||
        (c->kind == ML_POLICY_LFU || tiny ? r->counts == NULL : r->counts != NULL) ||
        (tiny ? policy == Py_None : policy != Py_None) ||
        (c->kind == ML_POLICY_RANDOM ? !PyCallable_Check(choice) : choice != Py_None) ||
        units_on != (r->units != NULL) || n > (Py_ssize_t)ML_TABLE_MAX_ENTRIES) {
        return inconsistent();
    }
    /* the limits, validated as the constructor validates them */
    if (cacheobj_parse_limits(self->st, maxsize, units_on, max_bytes, sizeof_fn, budget, &r->lim) < 0) {
        return -1;
    }
    if (r->lim.bytes_on != (r->bytes != NULL)) {
        return inconsistent();
    }
    if ((r->h = alloc_array(n, sizeof(Py_hash_t))) == NULL ||
        (r->ids = alloc_array(n, sizeof(uint32_t))) == NULL) {
        return -1;
    }
    if (r->units != NULL) {
        if ((r->u = alloc_array(n, sizeof(ml_size))) == NULL) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            int big;
            if (cacheobj_to_size(PyTuple_GET_ITEM(r->units, i), &r->u[i], &big) < 0) {   /* can re-enter (__float__) */
                return -1;
            }
            if (r->u[i].is_float && !r->units_float) {
                return inconsistent();   /* a float size in a state whose sizes are all ints */
            }
            if (cacheobj_check_size(r->u[i], big, &r->lim.maxunits) < 0) {
                return -1;
            }
        }
    }
    if (r->bytes != NULL) {
        if ((r->b = alloc_array(n, sizeof(size_t))) == NULL) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *o = PyTuple_GET_ITEM(r->bytes, i);
            if (!PyLong_Check(o)) {
                return inconsistent();
            }
            if (cacheobj_to_bytes(o, &r->b[i]) < 0) {
                return -1;
            }
            if (r->b[i] > r->lim.maxbytes) {
                return inconsistent();
            }
        }
    }
    if (ordered) {
        char *seen = alloc_array(n, 1);
        if (seen == NULL || (r->q = alloc_array(n, sizeof(Py_ssize_t))) == NULL ||
            (r->counts != NULL && (r->cnt = alloc_array(n, sizeof(uint64_t))) == NULL)) {
            PyMem_Free(seen);
            return -1;
        }
        int rc = 0;
        for (Py_ssize_t j = 0; j < n && rc == 0; j++) {
            PyObject *o = PyTuple_GET_ITEM(r->order, j);
            Py_ssize_t q = PyLong_Check(o) ? PyLong_AsSsize_t(o) : -1;
            if (q < 0 || q >= n || seen[q]) {
                PyErr_Clear();
                rc = inconsistent();
                break;
            }
            seen[q] = 1;
            r->q[j] = q;
            if (r->cnt != NULL) {
                PyObject *co = PyTuple_GET_ITEM(r->counts, j);
                unsigned long long k = PyLong_Check(co) ? PyLong_AsUnsignedLongLong(co) : 0;
                if (PyErr_Occurred() || k < kmin || k > kmax ||
                    (j > 0 && k < r->cnt[j - 1])) {
                    PyErr_Clear();
                    rc = inconsistent();
                    break;
                }
                r->cnt[j] = k;
            }
        }
        PyMem_Free(seen);
        if (rc < 0) {
            return -1;
        }
    }
    if (tiny && tlfu_read(policy, n, &r->tlfu) < 0) {
        return -1;
    }
    r->kind = TIMED_NONE;
    if (timed != Py_None) {
        PyObject *param, *timer, *list, *origin;
        long long iorigin = 0;
        int floats_seen = 0;
        if (!PyTuple_Check(timed) ||
            !PyArg_ParseTuple(timed, "iOOOO|Lp:__setstate__", &r->kind, &param, &timer, &list,
                              &origin, &iorigin, &floats_seen)) {
            return -1;
        }
        if ((origin != Py_None || floats_seen) && iorigin != 0) {
            return inconsistent();   /* an int origin goes with int times only */
        }
        r->iorigin = (int64_t)iorigin;
        r->floats_seen = floats_seen || (r->kind == TIMED_TTL && PyFloat_Check(param));
        if (timed_parse(self, r->kind, param, timer, &r->ttl_d, &r->wrapped) < 0 ||
            copy_list(list, n, 0, &r->deadline_list) < 0) {
            return -1;
        }
        if (origin != Py_None && timed_check_origin(origin) < 0) {
            return inconsistent();
        }
        r->param = param;     /* borrowed from the state, which the caller holds */
        r->origin = origin == Py_None ? NULL : origin;
        if ((r->dl = alloc_array(n, sizeof(double))) == NULL) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *o = PyTuple_GET_ITEM(r->deadline_list, i);
            r->dl[i] = PyFloat_Check(o) ? PyFloat_AS_DOUBLE(o) : NAN;
            if (isnan(r->dl[i])) {
                return inconsistent();
            }
        }
    }
    return 0;
}

/* Stores the items into the empty engine *e in order, sized as the state says and kept
 * within its limits; then rebuilds the policy's order. User code runs (__hash__ before,
 * __eq__ during look-ups) but only on *e, which nothing else can reach. 0 or -1. */
static int
restore_build(restore *r, ml_cache *e)
{
    for (Py_ssize_t i = 0; i < r->n; i++) {
        r->h[i] = PyObject_Hash(PyTuple_GET_ITEM(r->items, 2 * i));   /* can re-enter */
        if (r->h[i] == -1) {
            return -1;
        }
    }
    if (r->kind != TIMED_NONE) {
        ml_cache_enable_deadlines(e);
    }
    for (Py_ssize_t i = 0; i < r->n; i++) {
        PyObject *key = PyTuple_GET_ITEM(r->items, 2 * i), *value = PyTuple_GET_ITEM(r->items, 2 * i + 1);
        uint32_t id;
        int st = ml_table_find(&e->t, (uint64_t)r->h[i], key, cacheobj_eq, NULL, &id);   /* can re-enter */
        if (st != ML_NOT_FOUND) {
            return st == ML_OK ? inconsistent() : -1;   /* a key twice, or __eq__ failed */
        }
        ml_size u = r->u ? r->u[i] : ml_size_int(1);
        size_t b = r->b ? r->b[i] : 0;
        if (ml_cache_fits(e, ML_NIL, u, b) != ML_FIT_YES) {
            return inconsistent();   /* more than maxsize or max_bytes */
        }
        st = ml_cache_reserve(e);
        if (st == ML_OK && u.is_float) {
            st = ml_cache_reserve_float(e);
        }
        if (st != ML_OK) {
            PyErr_NoMemory();
            return -1;
        }
        r->ids[i] = ml_cache_insert(e, (uint64_t)r->h[i], Py_NewRef(key), Py_NewRef(value), u, b);
        if (r->dl != NULL) {
            ml_cache_set_deadline(e, r->ids[i], r->dl[i]);
        }
    }
    if (r->units_float && !e->budget.float_mode) {
        e->budget.funits = (double)e->budget.units;   /* currsize is a float, as it was */
        e->budget.float_mode = 1;
    }
    switch (e->kind) {
    case ML_POLICY_LRU:
    case ML_POLICY_FIFO:
        e->policy = ML_LIST_EMPTY;
        for (Py_ssize_t j = 0; j < r->n; j++) {
            ml_list_push_back(&e->policy, e->t.ents, ML_LINK_POLICY, r->ids[r->q[j]]);
        }
        break;
    case ML_POLICY_LFU:
        ml_lfu_reset(&e->lfu);
        for (Py_ssize_t j = 0; j < r->n; j++) {
            ml_lfu_append(&e->lfu, e->t.ents, r->ids[r->q[j]], r->cnt[j]);
        }
        break;
    case ML_POLICY_RANDOM:
        e->dense.n = 0;
        for (Py_ssize_t j = 0; j < r->n; j++) {
            ml_dense_add(&e->dense, r->ids[r->q[j]]);
        }
        break;
    case ML_POLICY_TINYLFU:
        ml_tlfu_reset(&e->tlfu);
        for (Py_ssize_t j = 0; j < r->n; j++) {
            ml_tlfu_append(&e->tlfu, e->t.ents, r->ids[r->q[j]], (unsigned)r->cnt[j]);
        }
        if (tlfu_apply(&r->tlfu, e) < 0) {
            return -1;
        }
        break;
    case ML_POLICY_INSERTION:
        break;
    }
    ML_CACHE_CHECK(e);
    return 0;
}

/* __setstate__: validates the whole state and builds the restored engine aside; only then
 * does the cache change, at once. A refused state leaves the cache as it was. */
PyObject *
cache_setstate(CacheObject *self, PyObject *state)
{
    PyObject *dict, *maxsize, *max_bytes, *sizeof_fn, *items, *units, *bytes, *order, *counts, *choice;
    PyObject *timed, *budget, *policy = Py_None;
    int units_on, units_float;
    if (!PyTuple_Check(state) ||
        !PyArg_ParseTuple(state, "OOppOOOOOOOOOO|O:__setstate__", &dict, &maxsize, &units_on,
                          &units_float, &max_bytes, &sizeof_fn, &items, &units, &bytes, &order,
                          &counts, &choice, &timed, &budget, &policy)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "__setstate__ expects the tuple __getstate__ returns");
        }
        return NULL;
    }
    restore r;
    memset(&r, 0, sizeof(r));
    r.units_float = units_float;
    ml_cache fresh;
    int built = 0;
    Py_INCREF(state);   /* its parts are borrowed below, across callbacks */
    if (dict != Py_None && !PyDict_Check(dict)) {
        inconsistent();
        goto error;
    }
    if (copy_list(items, -1, 0, &r.items) < 0) {
        goto error;
    }
    if (PyTuple_GET_SIZE(r.items) % 2) {
        inconsistent();
        goto error;
    }
    r.n = PyTuple_GET_SIZE(r.items) / 2;
    if (copy_list(units, r.n, 1, &r.units) < 0 || copy_list(bytes, r.n, 1, &r.bytes) < 0 ||
        copy_list(order, r.n, 1, &r.order) < 0 || copy_list(counts, r.n, 1, &r.counts) < 0 ||
        restore_read(self, &r, maxsize, units_on, max_bytes, sizeof_fn, choice, timed, budget, policy) < 0) {
        goto error;
    }
    cacheobj_new_engine(self, &r.lim, &fresh);
    built = 1;
    if (restore_build(&r, &fresh) < 0) {
        goto error;
    }
    BudgetObject *nb = r.lim.budget;   /* borrowed from the state, which is held */
    size_t replaced = 0;                /* self's bytes in nb that the restored ones replace */
    if (nb != NULL) {
        /* the restored items join the budget: room is made for them by its order (other
         * members' entries accessed longest ago go), counting what self holds in it now as
         * free (it leaves with the old items), then they are stamped in their policy's
         * order, as newer than anything else it holds. Their bytes are taken in place of
         * self's with no Python code between the take and the exchange below, so the sum
         * is the members' at every moment user code can see. */
        size_t need = fresh.budget.bytes;
        if (shared_prepare(nb, self) < 0) {   /* can re-enter */
            goto error;
        }
        if (ml_cache_share(&fresh, &nb->s) != ML_OK) {   /* stamps; nothing taken yet */
            PyErr_NoMemory();
            goto error;
        }
        for (int tries = 0;; tries++) {
            if (cacheobj_budget_make_room(nb, self, need) < 0) {   /* can re-enter */
                ml_cache_detach_shared(&fresh);   /* its bytes were never taken */
                goto error;
            }
            replaced = cacheobj_bytes_in(self, nb);
            if (ml_shared_take(&nb->s, replaced, need)) {
                break;
            }
            if (tries >= ML_TABLE_MAX_RESTARTS) {   /* other threads keep taking the room */
                ml_cache_detach_shared(&fresh);
                PyErr_SetString(PyExc_RuntimeError,
                                "__setstate__: the budget's room was taken by other stores "
                                "100 times");
                goto error;
            }
        }
    }
    /* valid: the cache changes, all at once */
    cacheobj_keys_change(self);
    BudgetObject *left = change_budget(self, nb);
    ml_cache_exchange(&self->c, &fresh);   /* fresh now holds the old engine */
    PyObject *old[7] = {self->maxsize, self->sizeof_fn, self->choice, self->origin, self->timer,
                        self->ttl, self->ttu};
    self->maxsize = Py_NewRef(maxsize);
    self->sizeof_fn = sizeof_fn == Py_None ? NULL : Py_NewRef(sizeof_fn);
    self->choice = choice == Py_None ? NULL : Py_NewRef(choice);
    self->timed = (unsigned)r.kind;
    self->ttl_d = r.ttl_d;
    self->timer = r.wrapped;   /* the reference moves */
    r.wrapped = NULL;
    self->ttl = r.kind == TIMED_TTL ? Py_NewRef(r.param) : NULL;
    self->ttu = r.kind == TIMED_TLRU ? Py_NewRef(r.param) : NULL;
    self->origin = Py_XNewRef(r.origin);
    self->timed_numbers_seen = 0;
    self->timed_floats_seen = (unsigned)r.floats_seen;
    self->iorigin = r.iorigin;
    self->config_gen++;
    shared_update_flags(self);
    if (nb != NULL && fresh.shared == &nb->s) {
        /* the old engine's bytes in nb were replaced by the new ones above */
        assert(fresh.budget.bytes == replaced);
        ml_cache_detach_shared(&fresh);
    }
    cacheobj_release_engine(&fresh);   /* can re-enter; the old bytes leave the old budget */
    built = 0;
    Py_XDECREF((PyObject *)left);
    for (int i = 0; i < 7; i++) {
        Py_XDECREF(old[i]);   /* can re-enter */
    }
    restore_free(&r);
    if (dict != Py_None) {
        PyObject *own = PyObject_GenericGetDict((PyObject *)self, NULL);
        int rc = own ? PyDict_Update(own, dict) : -1;   /* can re-enter */
        Py_XDECREF(own);
        if (rc < 0) {
            goto done_error;
        }
    }
    if (cacheobj_resolve_getsizeof(self) < 0 ||
        cacheobj_expire_now(self) < 0) {   /* as cachetools' TTLCache.__setstate__ */
        goto done_error;
    }
    Py_DECREF(state);
    Py_RETURN_NONE;
error:
    if (built) {
        cacheobj_release_engine(&fresh);   /* can re-enter: self is untouched */
    }
    restore_free(&r);
done_error:
    Py_DECREF(state);
    return NULL;
}
