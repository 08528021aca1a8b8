/* cache_tlfu.c — what TinyLFUCache's pickles hold beyond the other caches' state.
 *
 * The regions and their order travel in the common state (cache_state.c): `order` lists
 * the window, then probation, then protected, each least recent first, and `counts`
 * gives each position's region (0, 1, 2: non-decreasing). The rest is the policy tuple
 * (the state's 14th element, None for the other policies):
 *
 *   (seed, window_frac, step, prev_rate, hits, misses, additions, sketch)
 *
 * seed, hits, misses, additions: ints; window_frac, step, prev_rate: floats; sketch: bytes,
 * the counters' 64-bit words little-endian. tlfu_read validates all of it against the
 * entry count before anything changes; tlfu_apply then sets it on the engine being built.
 * Runs no Python code.
 */
#include "py/cache.h"

#include <math.h>
#include <string.h>

static int
refuse(void)
{
    if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_OverflowError) ||
        PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "inconsistent cache state");
    }
    return -1;
}

int
tlfu_fill_state(const ml_tlfu *l, PyObject *tuple)
{
    size_t nbytes = (size_t)l->sketch.nwords * 8u;
    PyObject *sketch = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)nbytes);   /* not GC-tracked */
    if (sketch == NULL) {
        return -1;
    }
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(sketch);
    for (uint32_t i = 0; i < l->sketch.nwords; i++) {
        for (unsigned b = 0; b < 8; b++) {
            p[8u * i + b] = (unsigned char)(l->sketch.words[i] >> (8 * b));
        }
    }
    PyTuple_SET_ITEM(tuple, 7, sketch);
    PyObject *parts[7] = {
        PyLong_FromUnsignedLongLong((unsigned long long)l->sketch.seed),
        PyFloat_FromDouble(l->window_frac),
        PyFloat_FromDouble(l->step),
        PyFloat_FromDouble(l->prev_rate),
        PyLong_FromUnsignedLongLong((unsigned long long)l->hits),
        PyLong_FromUnsignedLongLong((unsigned long long)l->misses),
        PyLong_FromUnsignedLongLong((unsigned long long)l->sketch.additions),
    };
    int rc = 0;
    for (Py_ssize_t i = 0; i < 7; i++) {
        if (parts[i] == NULL) {
            rc = -1;   /* the tuple keeps a NULL slot: its owner releases it unfilled */
        }
        PyTuple_SET_ITEM(tuple, i, parts[i]);
    }
    return rc;
}

static int
read_u64(PyObject *o, uint64_t *out)
{
    if (!PyLong_Check(o)) {
        return refuse();
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        return refuse();
    }
    *out = v;
    return 0;
}

static int
read_double(PyObject *o, double lo, double hi, double *out)
{
    if (!PyFloat_Check(o)) {
        return refuse();
    }
    *out = PyFloat_AS_DOUBLE(o);
    return *out >= lo && *out <= hi ? 0 : refuse();   /* NaN fails both */
}

int
tlfu_read(PyObject *policy, Py_ssize_t n, tlfu_state *out)
{
    PyObject *seed, *frac, *step, *rate, *hits, *misses, *additions, *sketch;
    memset(out, 0, sizeof(*out));
    if (!PyTuple_Check(policy) ||
        !PyArg_ParseTuple(policy, "OOOOOOOO", &seed, &frac, &step, &rate, &hits, &misses,
                          &additions, &sketch)) {
        return refuse();
    }
    if (read_u64(seed, &out->seed) < 0 ||
        read_double(frac, 0.0, 1.0, &out->window_frac) < 0 ||
        read_double(step, -ML_TLFU_STEP, ML_TLFU_STEP, &out->step) < 0 ||
        read_double(rate, 0.0, 1.0, &out->prev_rate) < 0 || read_u64(hits, &out->hits) < 0 ||
        read_u64(misses, &out->misses) < 0 || read_u64(additions, &out->additions) < 0) {
        return -1;
    }
    if (!PyBytes_Check(sketch) || PyBytes_GET_SIZE(sketch) % 8 != 0 ||
        PyBytes_GET_SIZE(sketch) / 8 > (Py_ssize_t)ML_SKETCH_MAX_WORDS) {
        return refuse();
    }
    uint32_t nwords = (uint32_t)(PyBytes_GET_SIZE(sketch) / 8);
    uint64_t sample = (uint64_t)ML_SKETCH_SAMPLE_PER_WORD * nwords;
    if (nwords == 0) {
        /* no table yet: nothing was ever stored since the last clear */
        if (n != 0 || out->additions != 0 || out->hits != 0 || out->misses != 0) {
            return refuse();
        }
    }
    else if (nwords < ML_SKETCH_MIN_WORDS || (nwords & (nwords - 1u)) != 0 ||
             ((uint64_t)n * ML_TLFU_SKETCH_WORDS > nwords && nwords < ML_SKETCH_MAX_WORDS) ||
             out->additions >= sample || out->hits >= sample || out->misses >= sample ||
             out->hits + out->misses >= sample) {
        return refuse();
    }
    out->nwords = nwords;
    if (nwords > 0) {
        out->words = PyMem_Malloc((size_t)nwords * sizeof(uint64_t));
        if (out->words == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(sketch);
        for (uint32_t i = 0; i < nwords; i++) {
            uint64_t w = 0;
            for (unsigned b = 0; b < 8; b++) {
                w |= (uint64_t)p[8u * i + b] << (8 * b);
            }
            out->words[i] = w;
        }
    }
    return 0;
}

int
tlfu_apply(const tlfu_state *s, ml_cache *e)
{
    ml_tlfu *l = &e->tlfu;
    if (s->nwords > 0) {
        if (ml_tlfu_restore_sketch(l, e->t.alloc, s->words, s->nwords, s->additions) != ML_OK) {
            PyErr_NoMemory();
            return -1;
        }
    }
    else {
        ml_sketch_free(&l->sketch, e->t.alloc);
    }
    l->sketch.seed = s->seed;
    ml_tlfu_set_climber(l, s->window_frac, s->step, s->prev_rate, s->hits, s->misses);
    return 0;
}

void
tlfu_state_free(tlfu_state *s)
{
    PyMem_Free(s->words);
    s->words = NULL;
}
