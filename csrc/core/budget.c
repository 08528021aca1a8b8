/* budget.c — limit arithmetic for ml_budget (see budget.h for the rules).
 *
 * Integer mode is exact int64 arithmetic: a difference of two sizes in [0, INT64_MAX]
 * cannot overflow, and a sum that would pass INT64_MAX is caught before it is made.
 * Float mode repeats Python's steps: an int operand becomes a double (rounded to
 * nearest, as int.__float__), then one IEEE operation. Comparisons with maxsize are
 * exact whatever the two kinds are: a double against an int64 compares the truncated
 * integer part first, then the fraction; a double against an int beyond int64 uses the
 * int's nearest double and the direction it was rounded in (every double that large is
 * an integer, and none lies strictly between the int and its rounding).
 * Bytes are size_t and compared without overflow: `bytes - old + new <= max` is
 * evaluated as `new <= max - (bytes - old)`, with `old <= bytes` guaranteed by the caller.
 */
#include "core/budget.h"

#include <assert.h>
#include <math.h>

#define TWO_63 9223372036854775808.0

/* Exact comparison of a double (not NaN) with an int64: -1, 0 or 1. */
static int
cmp_double_i64(double x, int64_t i)
{
    if (x >= TWO_63) {
        return 1;
    }
    if (x < -TWO_63) {
        return -1;
    }
    int64_t t = (int64_t)x;   /* truncated toward zero: exact, |x| < 2**63 */
    if (t != i) {
        return t < i ? -1 : 1;
    }
    double frac = x - (double)t;   /* exact */
    return frac > 0.0 ? 1 : (frac < 0.0 ? -1 : 0);
}

static int
double_exceeds(double x, ml_limit l)
{
    if (isnan(x)) {
        return 0;   /* as Python: a NaN is never greater */
    }
    switch (l.kind) {
    case ML_LIMIT_FLOAT:
        return x > l.d;
    case ML_LIMIT_BIG:
        /* l.d rounded up past the int: x > int iff x >= l.d; else iff x > l.d */
        return l.dir > 0 ? x >= l.d : x > l.d;
    default:
        return cmp_double_i64(x, l.i) > 0;
    }
}

static int
i64_exceeds(int64_t a, ml_limit l)
{
    switch (l.kind) {
    case ML_LIMIT_FLOAT:
        return !isnan(l.d) && cmp_double_i64(l.d, a) < 0;
    case ML_LIMIT_BIG:
        return 0;   /* the limit is past INT64_MAX */
    default:
        return a > l.i;
    }
}

int
ml_size_exceeds(ml_size s, ml_limit l)
{
    return s.is_float ? double_exceeds(s.f, l) : i64_exceeds(s.i, l);
}

void
ml_budget_init(ml_budget *b, ml_limit maxunits, size_t maxbytes)
{
    b->maxunits = maxunits;
    b->maxbytes = maxbytes;
    ml_budget_reset(b);
}

void
ml_budget_reset(ml_budget *b)
{
    b->units = 0;
    b->funits = 0.0;
    b->float_mode = 0;
    b->bytes = 0;
}

int
ml_budget_admits(const ml_budget *b, ml_size units, size_t bytes)
{
    return !ml_size_exceeds(units, b->maxunits) && bytes <= b->maxbytes;
}

/* currsize + (units - old) in float arithmetic, as Python computes it. */
static double
float_total(const ml_budget *b, ml_size old, ml_size units)
{
    double cur = b->float_mode ? b->funits : (double)b->units;
    double diff = (units.is_float || old.is_float)
                      ? ml_size_to_double(units) - ml_size_to_double(old)
                      : (double)(units.i - old.i);
    return cur + diff;
}

int
ml_budget_fits(const ml_budget *b, ml_size old, size_t old_bytes, ml_size units, size_t bytes)
{
    assert(old_bytes <= b->bytes);
    if (!b->float_mode && !units.is_float && !old.is_float) {
        int64_t diff = units.i - old.i;
        if (diff > 0 && b->units > INT64_MAX - diff) {
            /* the exact sum passes INT64_MAX: beyond an int64 or small float maxsize, or
             * more than we count exactly under a larger one */
            const ml_limit *l = &b->maxunits;
            int below = l->kind == ML_LIMIT_INT || (l->kind == ML_LIMIT_FLOAT && l->d < TWO_63);
            return below ? ML_FIT_NO : ML_FIT_OVERFLOW;
        }
        if (i64_exceeds(b->units + diff, b->maxunits)) {
            return ML_FIT_NO;
        }
    }
    else if (double_exceeds(float_total(b, old, units), b->maxunits)) {
        return ML_FIT_NO;
    }
    size_t rest = b->bytes - old_bytes;
    if (bytes > SIZE_MAX - 1 - rest) {
        return b->maxbytes != SIZE_MAX ? ML_FIT_NO : ML_FIT_OVERFLOW;
    }
    if (b->maxbytes != SIZE_MAX && bytes + rest > b->maxbytes) {
        return ML_FIT_NO;
    }
    return ML_FIT_YES;
}

void
ml_budget_replace(ml_budget *b, ml_size old, size_t old_bytes, ml_size units, size_t bytes)
{
    assert(old_bytes <= b->bytes);
    b->bytes = b->bytes - old_bytes + bytes;
    if (!b->float_mode && !units.is_float && !old.is_float) {
        b->units += units.i - old.i;
        return;
    }
    b->funits = float_total(b, old, units);
    b->float_mode = 1;
}

void
ml_budget_add(ml_budget *b, ml_size units, size_t bytes)
{
    ml_budget_replace(b, ml_size_int(0), 0, units, bytes);
}

void
ml_budget_sub(ml_budget *b, ml_size units, size_t bytes)
{
    ml_budget_replace(b, units, bytes, ml_size_int(0), 0);
}
