/* budget.h — the counts a cache keeps under its limits, and the arithmetic on them.
 *
 * Two budgets, both enforced before an insertion (never repaired after it):
 *   units: cachetools' "size" (maxsize / currsize / getsizeof). A size is an integer or
 *          a real number (a float getsizeof result, math.inf included); an entry counts 1
 *          unless a getsizeof says otherwise.
 *   bytes: memleash's accounted bytes (max_bytes / currbytes / sizeof). SIZE_MAX as
 *          the limit means "no byte limit"; the sum never passes SIZE_MAX - 1.
 * The entry count itself is the table's `used`.
 *
 * Units are counted as cachetools counts them with Python numbers, exactly:
 *   - while every size is an integer, currsize is their exact sum (int64_t). A sum that
 *     would pass INT64_MAX is refused (ML_FIT_OVERFLOW) rather than rounded or wrapped —
 *     unless maxsize itself is below it, when it is simply "does not fit";
 *   - the first float size turns the budget into float mode for good (until it is
 *     emptied by ml_budget_reset): currsize becomes a double updated with Python's
 *     mixed int/float rules, step by step (`currsize += size - old_size`), so it rounds
 *     exactly where cachetools' float currsize rounds;
 *   - maxsize is held exactly (ml_limit): an int64, an int beyond int64 (its nearest
 *     double and the direction it was rounded), or a double; comparisons between a sum
 *     and maxsize are exact, as Python's int/float comparisons are.
 */
#ifndef ML_BUDGET_H
#define ML_BUDGET_H

#include <stddef.h>
#include <stdint.h>

/* A size in units: an exact integer (is_float 0, in i) or a real number (is_float 1, in
 * f). Sizes are >= 0 and never NaN (the binding refuses those). */
typedef struct ml_size {
    int64_t i;
    double f;
    int is_float;
} ml_size;

static inline ml_size ml_size_int(int64_t i) { ml_size s = {i, 0.0, 0}; return s; }
static inline ml_size ml_size_float(double f) { ml_size s = {0, f, 1}; return s; }

/* The value of a size as Python's float(size) would give it (rounded to nearest). */
static inline double ml_size_to_double(ml_size s) { return s.is_float ? s.f : (double)s.i; }

/* maxsize, exactly. */
enum { ML_LIMIT_INT = 0, ML_LIMIT_BIG = 1, ML_LIMIT_FLOAT = 2 };
typedef struct ml_limit {
    int kind;       /* ML_LIMIT_* */
    int64_t i;      /* INT: the value */
    double d;       /* FLOAT: the value; BIG: the nearest double of an int > INT64_MAX (or +inf) */
    int dir;        /* BIG: the sign of d - value (d rounded up: 1, down: -1, exact: 0) */
    uint64_t u;     /* BIG: the value if below 2**64, else UINT64_MAX (sums past INT64_MAX
                     * are compared with it exactly) */
} ml_limit;

static inline ml_limit ml_limit_int(int64_t i) { ml_limit l = {ML_LIMIT_INT, i, 0.0, 0, 0}; return l; }
static inline ml_limit ml_limit_float(double d) { ml_limit l = {ML_LIMIT_FLOAT, 0, d, 0, 0}; return l; }
static inline ml_limit
ml_limit_big(double d, int dir, uint64_t u)
{
    ml_limit l = {ML_LIMIT_BIG, 0, d, dir, u};
    return l;
}

/* @return 1 if size s exceeds limit l (Python's `s > l`, exactly), else 0. */
int ml_size_exceeds(ml_size s, ml_limit l);

typedef struct ml_budget {
    ml_limit maxunits;  /* >= 0 */
    int64_t units;      /* integer mode: the exact sum of the entries' units */
    double funits;      /* float mode: currsize as cachetools' float arithmetic leaves it */
    int float_mode;     /* a float size was counted since the last reset */
    size_t maxbytes;    /* SIZE_MAX: unbounded */
    size_t bytes;       /* sum of the entries' bytes, <= SIZE_MAX - 1 */
} ml_budget;

/* Sets both limits and zeroes the counts (integer mode). */
void ml_budget_init(ml_budget *b, ml_limit maxunits, size_t maxbytes);

/* Zeroes the counts and leaves float mode (the budget holds nothing). */
void ml_budget_reset(ml_budget *b);

/* @return 1 if one entry of (units, bytes) could be held at all, else 0. */
int ml_budget_admits(const ml_budget *b, ml_size units, size_t bytes);

/* What ml_budget_fits answers. */
enum { ML_FIT_NO = 0, ML_FIT_YES = 1, ML_FIT_OVERFLOW = -1 };

/* Whether replacing an entry of (old_units, old_bytes) — (int 0, 0) for a new one — by
 * one of (units, bytes) keeps both counts within their limits: ML_FIT_YES, ML_FIT_NO
 * (evicting may make room), or ML_FIT_OVERFLOW (a count would pass what it can hold
 * exactly while its limit does not stop it: refuse the entry). @pre the old entry is
 * counted in b. */
int ml_budget_fits(const ml_budget *b, ml_size old_units, size_t old_bytes, ml_size units,
                   size_t bytes);

/* ml_budget_fits for a new entry (old (int 0, 0)), with the common case inline: integer
 * units under an int maxsize, the sum within int64. The same steps as ml_budget_fits, so
 * the same answer (tests/c checks both agree); anything else goes to it. */
static inline int
ml_budget_fits_new(const ml_budget *b, ml_size units, size_t bytes)
{
    if (b->float_mode || units.is_float || b->maxunits.kind != ML_LIMIT_INT ||
        units.i > INT64_MAX - b->units) {
        return ml_budget_fits(b, ml_size_int(0), 0, units, bytes);
    }
    if (b->units + units.i > b->maxunits.i) {
        return ML_FIT_NO;
    }
    if (bytes > SIZE_MAX - 1 - b->bytes) {
        return b->maxbytes != SIZE_MAX ? ML_FIT_NO : ML_FIT_OVERFLOW;
    }
    return b->maxbytes != SIZE_MAX && bytes + b->bytes > b->maxbytes ? ML_FIT_NO : ML_FIT_YES;
}

/* Counts an entry in, out, or replaced (currsize += units - old, as cachetools). @pre the
 * counts stay representable (ml_budget_fits did not answer ML_FIT_OVERFLOW). */
void ml_budget_add(ml_budget *b, ml_size units, size_t bytes);
void ml_budget_sub(ml_budget *b, ml_size units, size_t bytes);
void ml_budget_replace(ml_budget *b, ml_size old_units, size_t old_bytes, ml_size units,
                       size_t bytes);

#endif
