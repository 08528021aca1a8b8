/* budget.h — the counts a cache keeps under its limits, and the arithmetic on them.
 *
 * Two budgets, both enforced before an insertion (never repaired after it):
 *   units: cachetools' "size" (maxsize / currsize / getsizeof). Any real number,
 *          +inf included; an entry counts 1 unless a getsizeof says otherwise.
 *   bytes: memleash's accounted bytes (max_bytes / currbytes / sizeof). SIZE_MAX as
 *          the limit means "no byte limit".
 * The entry count itself is the table's `used`.
 */
#ifndef ML_BUDGET_H
#define ML_BUDGET_H

#include <stddef.h>

typedef struct ml_budget {
    double maxunits;    /* >= 0, may be +inf */
    double units;       /* sum of the entries' units */
    size_t maxbytes;    /* SIZE_MAX: unbounded */
    size_t bytes;       /* sum of the entries' bytes */
} ml_budget;

/* Sets both limits and zeroes the counts. @pre maxunits >= 0 (not NaN). */
void ml_budget_init(ml_budget *b, double maxunits, size_t maxbytes);

/* @return 1 if one entry of (units, bytes) could be held at all, else 0. */
int ml_budget_admits(const ml_budget *b, double units, size_t bytes);

/* @return 1 if replacing an entry of (old_units, old_bytes) — (0, 0) for a new one — by
 * one of (units, bytes) keeps both counts within their limits, else 0. */
int ml_budget_fits(const ml_budget *b, double old_units, size_t old_bytes, double units,
                   size_t bytes);

/* Adds (sign > 0) or removes (sign < 0) an entry's counts. */
void ml_budget_add(ml_budget *b, double units, size_t bytes);
void ml_budget_sub(ml_budget *b, double units, size_t bytes);

#endif
