/* registry.c — what every binding file shares, at the bottom of the binding: the PyMem
 * allocator behind the core's ml_alloc, the registry of live objects behind
 * memleash.report(), and the subclass-override check.
 *
 * The registry is a ring of nodes embedded in the objects themselves: creating an object
 * links it, and the object unlinks it before anything else when it stops being whole —
 * first thing in its dealloc, and in its tp_clear, since a collection clears a cycle's
 * objects one by one and a __del__ reached meanwhile may call report(). Nothing on a hot
 * path touches it. It holds no references (a registered object dies as it would without
 * it); _live() takes strong references to every live object in one walk during which no
 * Python code runs.
 */
#include "py/module.h"

static void *pymem_malloc(void *ctx, size_t n) { (void)ctx; return PyMem_Malloc(n); }
static void *pymem_realloc(void *ctx, void *p, size_t n) { (void)ctx; return PyMem_Realloc(p, n); }
static void pymem_free(void *ctx, void *p) { (void)ctx; PyMem_Free(p); }

const ml_alloc ml_alloc_pymem = {pymem_malloc, pymem_realloc, pymem_free, NULL};

/* ------------------------------------------------------------------------------------
 * The registry of live objects
 */
enum { SITE_MAX_DEPTH = 16 };   /* frames looked at for one outside the package */

static int
in_package(ml_state *st, PyCodeObject *code)
{
    if (st->pkg_dir == NULL) {
        return 0;
    }
    PyObject *file = code->co_filename;   /* borrowed */
    return PyUnicode_Check(file) &&
           PyUnicode_Tailmatch(file, st->pkg_dir, 0, PY_SSIZE_T_MAX, -1) == 1;
}

void
ml_reg_link(ml_state *st, ml_reg *r, PyObject *owner)
{
    r->owner = owner;
#ifdef Py_GIL_DISABLED
    r->wref = PyWeakref_NewRef(owner, NULL);
    if (r->wref == NULL) {
        PyErr_Clear();   /* no memory: the object lives on, unreported */
    }
#endif
    ml_mutex_lock(&st->reg_lock);
    r->prev = &st->live;
    r->next = st->live.next;
    st->live.next->prev = r;
    st->live.next = r;
    st->nlive++;
    ml_mutex_unlock(&st->reg_lock);
    PyFrameObject *f = PyEval_GetFrame();   /* borrowed; NULL without a Python frame */
    Py_XINCREF(f);
    for (int depth = 0; f != NULL && depth < SITE_MAX_DEPTH; depth++) {
        PyCodeObject *code = PyFrame_GetCode(f);   /* new reference */
        if (!in_package(st, code)) {
            r->site_code = (PyObject *)code;   /* the reference moves to the node */
            r->site_lasti = PyFrame_GetLasti(f);
            break;
        }
        Py_DECREF(code);
        Py_SETREF(f, PyFrame_GetBack(f));   /* new reference or NULL (no error set) */
    }
    Py_XDECREF(f);
}

void
ml_reg_unlink(ml_state *st, ml_reg *r)
{
    ml_mutex_lock(&st->reg_lock);
    int linked = r->next != NULL;
    if (linked) {
        r->prev->next = r->next;
        r->next->prev = r->prev;
        r->prev = r->next = NULL;
        st->nlive--;
    }
    ml_mutex_unlock(&st->reg_lock);
    if (!linked) {
        return;
    }
    Py_CLEAR(r->name);
    Py_CLEAR(r->site_code);
#ifdef Py_GIL_DISABLED
    Py_CLEAR(r->wref);
#endif
}

int
ml_reg_set_name(ml_reg *r, PyObject *name)
{
    if (name != Py_None && !PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "name must be a str or None, not %.200s",
                     Py_TYPE(name)->tp_name);
        return -1;
    }
    Py_XSETREF(r->name, name == Py_None ? NULL : Py_NewRef(name));
    return 0;
}

int
ml_reg_describe(const ml_reg *r, PyObject *dict)
{
    if (PyDict_SetItemString(dict, "name", r->name ? r->name : Py_None) < 0) {
        return -1;
    }
    PyObject *site = Py_None;
    if (r->site_code != NULL) {
        PyCodeObject *code = (PyCodeObject *)r->site_code;
        int line = PyCode_Addr2Line(code, r->site_lasti);
        site = Py_BuildValue("(OiO)", code->co_filename, line, code->co_qualname);
        if (site == NULL) {
            return -1;
        }
    } else {
        Py_INCREF(site);
    }
    int rc = PyDict_SetItemString(dict, "site", site);
    Py_DECREF(site);
    return rc;
}

unsigned
ml_overrides(PyTypeObject *type, PyTypeObject *base, const ml_hook *hooks, size_t n)
{
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        PyObject *mine = ml_type_lookup_ref(type, hooks[i].name);
        PyObject *theirs = ml_type_lookup_ref(base, hooks[i].name);
        if (mine != theirs) {
            bits |= hooks[i].bit;
        }
        Py_XDECREF(mine);
        Py_XDECREF(theirs);
    }
    return bits;
}

int
ml_declare_referents(PyTypeObject *type)
{
    PyObject *names = Py_BuildValue("(s)", "_ml_referents");
    if (names == NULL) {
        return -1;
    }
    int rc = PyObject_SetAttrString((PyObject *)type, "__slots__", names);
    Py_DECREF(names);
    return rc;
}

/* _live(): a list of every live memleash object (strong references), newest first. */
PyObject *
ml_reg_live(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    ml_state *st = PyModule_GetState(module);
    PyObject **objs = NULL;
    Py_ssize_t i = 0;
    /* under the lock: PyMem and reference counts only, no Python code (a list made here
     * could collect, and a collection could free what the ring holds) */
    ml_mutex_lock(&st->reg_lock);
    Py_ssize_t n = st->nlive;
    objs = PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof(PyObject *));
    for (ml_reg *r = st->live.next; objs != NULL && r != &st->live && i < n; r = r->next) {
#ifdef Py_GIL_DISABLED
        /* another thread may be deallocating the owner (its node not yet unlinked): the
         * weak reference gives it only while it lives */
        PyObject *o = NULL;
        if (r->wref != NULL && PyWeakref_GetRef(r->wref, &o) > 0) {
            objs[i++] = o;
        }
#else
        objs[i++] = Py_NewRef(r->owner);   /* alive: a dying object is unlinked already */
#endif
    }
    ml_mutex_unlock(&st->reg_lock);
    if (objs == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *list = PyList_New(i);
    if (list == NULL) {
        goto error;
    }
    for (Py_ssize_t j = 0; j < i; j++) {
        PyList_SET_ITEM(list, j, objs[j]);   /* steals */
    }
    PyMem_Free(objs);
    return list;
error:
    for (Py_ssize_t j = 0; j < i; j++) {
        Py_DECREF(objs[j]);
    }
    PyMem_Free(objs);
    return NULL;
}
