/* tinylfu.c — W-TinyLFU's regions, admission and hill climbing (see tinylfu.h).
 *
 * Layout
 *
 *   region[WINDOW]     e9 e12 e14             <- new entries at the tail
 *   region[PROBATION]  e3 e7 e1 ... e11       <- window overflow at the tail
 *   region[PROTECTED]  e2 e5 ... e8           <- probation hits at the tail; overflow
 *                                                demoted to probation's tail at the next
 *                                                insertion (or climb)
 *   region_of[id]      which list id is in (one byte per id)
 *   sketch             4-bit count-min counters (sketch.c)
 *
 *   victim: cand = window head, vict = probation head (else protected head);
 *           freq(cand) > freq(vict) ? vict : cand
 *
 * Costs: insert, touch, remove and victim are O(1) (a few list moves, four counters in
 * one cache line); the regions' resizing after an insertion moves a few entries, as
 * window_max and protected_max change by at most one per entry, plus one demotion per
 * promotion since the last insertion (amortised O(1): a hit promotes at most once); a climb moves up to
 * ML_TLFU_STEP of the entries once per sample of 7 x sketch-words operations, so O(1)
 * amortised; a sketch halving is O(words) once per sample, O(1) amortised as well.
 *
 * Difference from Caffeine: no random admission of warm candidates (its defence against
 * hash flooding): the decision stays a pure function of the state, and the keys' hashes
 * are Python's (salted for str and bytes by PYTHONHASHSEED).
 */
#include "core/tinylfu.h"

#include <math.h>
#include <string.h>

#include "core/status.h"

void
ml_tlfu_init(ml_tlfu *l, uint64_t seed)
{
    memset(l, 0, sizeof(*l));
    for (int r = 0; r < ML_TLFU_REGIONS; r++) {
        l->region[r] = ML_LIST_EMPTY;
    }
    ml_sketch_init(&l->sketch, seed);
    l->window_frac = ML_TLFU_WINDOW_INITIAL;
    l->step = -ML_TLFU_STEP;
    l->prev_rate = 0.0;
    l->max_n = ML_NIL;
}

void
ml_tlfu_free(ml_tlfu *l, const ml_alloc *a)
{
    a->free(a->ctx, l->region_of);
    ml_sketch_free(&l->sketch, a);
    ml_tlfu_init(l, l->sketch.seed);
}

int
ml_tlfu_grow(ml_tlfu *l, const ml_alloc *a, uint32_t entry_cap, uint32_t live,
             const ml_entry *ents, uint32_t top)
{
    if (entry_cap > l->side_cap) {
        if (ml_grow(a, (void **)&l->region_of, sizeof(uint8_t), entry_cap) != ML_OK) {
            return ML_ERR_NOMEM;
        }
        l->side_cap = entry_cap;
    }
    uint64_t words = (uint64_t)live * ML_TLFU_SKETCH_WORDS;
    if (words <= l->sketch.nwords || l->sketch.nwords >= ML_SKETCH_MAX_WORDS) {
        return ML_OK;
    }
    /* a larger sketch starts at zero; the held keys' estimates are carried into it (in
     * id order; raising to a maximum does not depend on the order) */
    ml_sketch fresh;
    ml_sketch_init(&fresh, l->sketch.seed);
    if (ml_sketch_reserve(&fresh, a, words) != ML_OK) {
        return ML_ERR_NOMEM;
    }
    for (uint32_t id = 0; id < top; id++) {
        if (ents[id].key != NULL) {
            ml_sketch_raise(&fresh, ents[id].hash, ml_sketch_frequency(&l->sketch, ents[id].hash));
        }
    }
    fresh.additions = l->sketch.additions;   /* below the old sample, so below the new one */
    ml_sketch_free(&l->sketch, a);
    l->sketch = fresh;
    return ML_OK;
}

uint32_t
ml_tlfu_window_max(const ml_tlfu *l, uint32_t n)
{
    if (n == 0) {
        return 0;
    }
    double w = ceil(l->window_frac * (double)n);
    if (w < 1.0) {
        return 1;
    }
    return w >= (double)n ? n : (uint32_t)w;
}

uint32_t
ml_tlfu_protected_max(const ml_tlfu *l, uint32_t n)
{
    return (uint32_t)(ML_TLFU_PROTECTED_SHARE * (double)(n - ml_tlfu_window_max(l, n)));
}

/* Moves the head of region `from` to the tail of region `to`. @pre from is not empty. */
static void
move_head(ml_tlfu *l, ml_entry *ents, unsigned from, unsigned to)
{
    uint32_t id = l->region[from].head;
    ml_list_unlink(&l->region[from], ents, ML_LINK_POLICY, id);
    ml_list_push_back(&l->region[to], ents, ML_LINK_POLICY, id);
    l->count[from]--;
    l->count[to]++;
    l->region_of[id] = (uint8_t)to;
}

static uint32_t
live(const ml_tlfu *l)
{
    return l->count[0] + l->count[1] + l->count[2];
}

/* Brings the window and protected down to their maxima (grow: the window also takes
 * entries from the main region up to its maximum). The maxima are computed once per
 * entry count and window share (max_n). */
static void
resize(ml_tlfu *l, ml_entry *ents, int grow)
{
    uint32_t n = live(l);
    if (n != l->max_n) {
        l->max_n = n;
        l->max_window = ml_tlfu_window_max(l, n);
        l->max_protected = ml_tlfu_protected_max(l, n);
    }
    uint32_t wmax = l->max_window, pmax = l->max_protected;
    while (l->count[ML_TLFU_PROTECTED] > pmax) {   /* the hits' promotions, demoted now */
        move_head(l, ents, ML_TLFU_PROTECTED, ML_TLFU_PROBATION);
    }
    while (l->count[ML_TLFU_WINDOW] > wmax) {
        move_head(l, ents, ML_TLFU_WINDOW, ML_TLFU_PROBATION);
    }
    while (grow && l->count[ML_TLFU_WINDOW] < wmax) {
        move_head(l, ents, l->count[ML_TLFU_PROBATION] ? ML_TLFU_PROBATION : ML_TLFU_PROTECTED,
                  ML_TLFU_WINDOW);
    }
    while (l->count[ML_TLFU_PROTECTED] > pmax) {   /* after the window took its share */
        move_head(l, ents, ML_TLFU_PROTECTED, ML_TLFU_PROBATION);
    }
}

void
ml_tlfu_climb(ml_tlfu *l, ml_entry *ents)
{
    uint64_t requests = l->hits + l->misses;
    double rate = (double)l->hits / (double)requests;
    double change = rate - l->prev_rate;
    double amount = change >= 0.0 ? l->step : -l->step;
    if (fabs(change) >= ML_TLFU_RESTART_THRESHOLD) {
        l->step = amount >= 0.0 ? ML_TLFU_STEP : -ML_TLFU_STEP;
    }
    else {
        l->step = ML_TLFU_STEP_DECAY * amount;
    }
    l->prev_rate = rate;
    l->hits = l->misses = 0;
    double frac = l->window_frac + amount;
    l->window_frac = frac < 0.0 ? 0.0 : (frac > 1.0 ? 1.0 : frac);
    l->max_n = ML_NIL;
    resize(l, ents, 1);
}

void
ml_tlfu_insert(ml_tlfu *l, ml_entry *ents, uint32_t id)
{
    ml_sketch_increment(&l->sketch, ents[id].hash);
    l->misses++;
    l->region_of[id] = ML_TLFU_WINDOW;
    ml_list_push_back(&l->region[ML_TLFU_WINDOW], ents, ML_LINK_POLICY, id);
    l->count[ML_TLFU_WINDOW]++;
    resize(l, ents, 0);
    if (l->hits + l->misses >= ml_sketch_sample(&l->sketch)) {
        ml_tlfu_climb(l, ents);
    }
}


void
ml_tlfu_remove(ml_tlfu *l, ml_entry *ents, uint32_t id)
{
    unsigned r = l->region_of[id];
    ml_list_unlink(&l->region[r], ents, ML_LINK_POLICY, id);
    l->count[r]--;
}

uint32_t
ml_tlfu_victim(const ml_tlfu *l, const ml_entry *ents)
{
    uint32_t cand = l->region[ML_TLFU_WINDOW].head;
    uint32_t vict = l->region[ML_TLFU_PROBATION].head;
    if (vict == ML_NIL) {
        vict = l->region[ML_TLFU_PROTECTED].head;
    }
    if (cand == ML_NIL || vict == ML_NIL) {
        return cand == ML_NIL ? vict : cand;
    }
    unsigned fc = ml_sketch_frequency(&l->sketch, ents[cand].hash);
    unsigned fv = ml_sketch_frequency(&l->sketch, ents[vict].hash);
    return fc > fv ? vict : cand;
}

void
ml_tlfu_reset(ml_tlfu *l)
{
    for (int r = 0; r < ML_TLFU_REGIONS; r++) {
        l->region[r] = ML_LIST_EMPTY;
        l->count[r] = 0;
    }
}

void
ml_tlfu_append(ml_tlfu *l, ml_entry *ents, uint32_t id, unsigned r)
{
    ml_list_push_back(&l->region[r], ents, ML_LINK_POLICY, id);
    l->count[r]++;
    l->region_of[id] = (uint8_t)r;
}

void
ml_tlfu_set_climber(ml_tlfu *l, double window_frac, double step, double prev_rate, uint64_t hits,
                    uint64_t misses)
{
    l->window_frac = window_frac;
    l->step = step;
    l->prev_rate = prev_rate;
    l->hits = hits;
    l->misses = misses;
    l->max_n = ML_NIL;
}

int
ml_tlfu_restore_sketch(ml_tlfu *l, const ml_alloc *a, const uint64_t *words, uint32_t nwords,
                       uint64_t additions)
{
    uint64_t *w = a->malloc(a->ctx, (size_t)nwords * sizeof(uint64_t));
    if (w == NULL) {
        return ML_ERR_NOMEM;
    }
    memcpy(w, words, (size_t)nwords * sizeof(uint64_t));
    a->free(a->ctx, l->sketch.words);
    l->sketch.words = w;
    l->sketch.nwords = nwords;
    l->sketch.sample = (uint64_t)ML_SKETCH_SAMPLE_PER_WORD * nwords;
    l->sketch.additions = additions;
    return ML_OK;
}
