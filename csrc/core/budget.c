/* budget.c — limit arithmetic for ml_budget (see budget.h).
 *
 * Units are doubles because cachetools allows any real maxsize and getsizeof result
 * (math.inf included); sums of integers stay exact below 2**53. Bytes are size_t and
 * compared without overflow: `bytes - old + new <= max` is evaluated as
 * `new <= max - (bytes - old)`, with `old <= bytes` guaranteed by the caller.
 */
#include "core/budget.h"

#include <assert.h>
#include <stdint.h>

void
ml_budget_init(ml_budget *b, double maxunits, size_t maxbytes)
{
    b->maxunits = maxunits;
    b->maxbytes = maxbytes;
    b->units = 0.0;
    b->bytes = 0;
}

int
ml_budget_admits(const ml_budget *b, double units, size_t bytes)
{
    return !(units > b->maxunits) && bytes <= b->maxbytes;
}

int
ml_budget_fits(const ml_budget *b, double old_units, size_t old_bytes, double units, size_t bytes)
{
    assert(old_bytes <= b->bytes);
    if (b->units + (units - old_units) > b->maxunits) {   /* as cachetools: currsize + diffsize */
        return 0;
    }
    if (b->maxbytes != SIZE_MAX && bytes > b->maxbytes - (b->bytes - old_bytes)) {
        return 0;
    }
    return 1;
}

void
ml_budget_add(ml_budget *b, double units, size_t bytes)
{
    b->units += units;
    b->bytes += bytes;
}

void
ml_budget_sub(ml_budget *b, double units, size_t bytes)
{
    assert(bytes <= b->bytes);
    b->units -= units;
    b->bytes -= bytes;
}
