/* tinylfu.h — W-TinyLFU: an LRU admission window in front of a segmented LRU main region,
 * admission by a frequency sketch, the window's size adapted by hill climbing.
 *
 * The policy of ML_POLICY_TINYLFU (cache.h). Three LRU lists thread the entries'
 * ML_LINK_POLICY links, least recent at the head:
 *   window     every new entry enters here (so a key is present right after it is stored);
 *   probation  the main region's entries not used since they entered it;
 *   protected  the main region's entries used again in probation.
 * Each live entry is in exactly one of them (region_of). Regions are counted in entries,
 * whatever the entries' sizes: the budget (budget.h) decides how many victims go, this
 * policy which one goes next.
 *
 * The victim (ml_tlfu_victim, a pure function of the state): the candidate is the
 * window's least recent entry, the victim of the main region probation's least recent
 * (protected's when probation is empty). Of the two, the one the sketch (sketch.h) counts
 * less often goes; a tie evicts the candidate. When one of them is missing, the other
 * goes. The winner stays where it is; the next insertion overflows the window and moves
 * the window's head to probation: admitted.
 *
 * Region sizes, for n live entries: the window holds at most
 *   window_max(n) = min(n, max(1, ceil(window_frac * n)))
 * entries (more move to probation's tail, least recent first) and protected at most
 *   protected_max(n) = floor(ML_TLFU_PROTECTED_SHARE * (n - window_max(n)))
 * (more are demoted to probation's tail, least recent first). These are applied after
 * every insertion and every climb (ml_tlfu_insert: protected's overflow first, then the
 * window's); hits and removals leave the regions as they are until then. A hit's
 * promotion can so leave protected over its maximum until the next insertion (theine's
 * Go version defers it the same way, Caffeine to its maintenance cycle): the victim is
 * the same, since a demotion appends to probation's tail and an empty probation's
 * victim is protected's head.
 *
 * Hill climbing (Caffeine's, from its BoundedLocalCache and the paper "Adaptive Software
 * Cache Management", Einziger, Eytan, Friedman and Manes, Middleware 2018): hits (touches)
 * and misses (insertions) are counted; every ml_sketch_sample() of them, the hit rate of
 * the sample is compared with the previous one. window_frac moves by `step` (a share of
 * the entries); the step's sign flips when the rate got worse; its size decays by
 * ML_TLFU_STEP_DECAY per sample, or restarts at ML_TLFU_STEP when the rate changed by
 * ML_TLFU_RESTART_THRESHOLD or more. window_frac stays within [0, 1]. After a climb the
 * window takes probation's least recent entries (then protected's) to grow, or gives its
 * least recent ones to probation to shrink.
 *
 * Counting: every insertion, touch (hit) and replacement counts the key in the sketch.
 */
#ifndef ML_TINYLFU_H
#define ML_TINYLFU_H

#include <stdint.h>

#include "core/alloc.h"
#include "core/list.h"
#include "core/sketch.h"
#include "core/table.h"

/* Caffeine's constants (BoundedLocalCache: PERCENT_MAIN = 0.99, PERCENT_MAIN_PROTECTED,
 * HILL_CLIMBER_STEP_PERCENT, HILL_CLIMBER_STEP_DECAY_RATE, HILL_CLIMBER_RESTART_THRESHOLD);
 * its first step shrinks the window, as here. */
#define ML_TLFU_WINDOW_INITIAL 0.01
#define ML_TLFU_PROTECTED_SHARE 0.80
#define ML_TLFU_STEP 0.0625
#define ML_TLFU_STEP_DECAY 0.98
#define ML_TLFU_RESTART_THRESHOLD 0.05

/* Sketch words per live entry, at least (a power of two at or above it): 32 counters per
 * entry or more, twice Caffeine's width; the fewer collisions paid for themselves on every
 * Zipf workload of bench/run.py (sketch.h: ML_SKETCH_SAMPLE_PER_WORD). */
#define ML_TLFU_SKETCH_WORDS 2u

/* Regions, in pickle order. */
enum { ML_TLFU_WINDOW = 0, ML_TLFU_PROBATION = 1, ML_TLFU_PROTECTED = 2, ML_TLFU_REGIONS = 3 };

typedef struct ml_tlfu {
    ml_list region[ML_TLFU_REGIONS];    /* least recent at the head */
    uint32_t count[ML_TLFU_REGIONS];    /* entries in each region */
    uint8_t *region_of;     /* per entry id: its region */
    uint32_t side_cap;      /* entry ids region_of holds */
    ml_sketch sketch;
    /* the climber */
    double window_frac;     /* the window's share of the entries, in [0, 1] */
    double step;            /* the next change of window_frac (signed) */
    double prev_rate;       /* the hit rate of the previous sample, in [0, 1] */
    uint64_t hits, misses;  /* in the current sample; their sum < ml_sketch_sample() */
    /* the maxima for max_n live entries at the current window_frac (a memo, not state:
     * max_n is ML_NIL when they must be computed again) */
    uint32_t max_n, max_window, max_protected;
} ml_tlfu;

/* Makes l empty with its initial window and climber, seed for the sketch; allocates
 * nothing. */
void ml_tlfu_init(ml_tlfu *l, uint64_t seed);

/* Frees l's arrays and starts it again as ml_tlfu_init (the seed stays). */
void ml_tlfu_free(ml_tlfu *l, const ml_alloc *a);

/* Ensures room for entry ids below entry_cap and a sketch of at least
 * ML_TLFU_SKETCH_WORDS * live words (live: the entries there will be after the next
 * insertion). A larger sketch starts at zero but for the estimates of the live entries
 * among ents[0 .. top), carried over (raised to what the old sketch says). ML_OK or
 * ML_ERR_NOMEM (l unchanged but possibly grown). ml_tlfu_grow: the same, out of line. */
int ml_tlfu_grow(ml_tlfu *l, const ml_alloc *a, uint32_t entry_cap, uint32_t live,
                 const ml_entry *ents, uint32_t top);

static inline int
ml_tlfu_reserve(ml_tlfu *l, const ml_alloc *a, uint32_t entry_cap, uint32_t live,
                const ml_entry *ents, uint32_t top)
{
    if (entry_cap <= l->side_cap &&
        ((uint64_t)live * ML_TLFU_SKETCH_WORDS <= l->sketch.nwords ||
         l->sketch.nwords >= ML_SKETCH_MAX_WORDS)) {
        return ML_OK;   /* on every insertion but a few: nothing to grow */
    }
    return ml_tlfu_grow(l, a, entry_cap, live, ents, top);
}

/* Adds live entry id (hash in ents[id].hash) at the window's recent end, counts it (a
 * miss), then resizes the regions and climbs when a sample is complete. Never allocates.
 * @pre reserved for id. */
void ml_tlfu_insert(ml_tlfu *l, ml_entry *ents, uint32_t id);

/* Moves probation's entry id to protected's recent end (the overflow is demoted at the
 * next insertion). */
static inline void
ml_tlfu_promote(ml_tlfu *l, ml_entry *ents, uint32_t id)
{
    ml_list_unlink(&l->region[ML_TLFU_PROBATION], ents, ML_LINK_POLICY, id);
    ml_list_push_back(&l->region[ML_TLFU_PROTECTED], ents, ML_LINK_POLICY, id);
    l->count[ML_TLFU_PROBATION]--;
    l->count[ML_TLFU_PROTECTED]++;
    l->region_of[id] = ML_TLFU_PROTECTED;
}

/* Ends a complete sample (hits + misses >= ml_sketch_sample()): one hill-climbing step,
 * then the regions resized. */
void ml_tlfu_climb(ml_tlfu *l, ml_entry *ents);

/* Records a use of entry id (a hit): counts it, moves it to its region's recent end, or
 * from probation to protected's; climbs when a sample is complete. Never allocates.
 * Inline: the hit path of every TinyLFUCache look-up. */
static inline void
ml_tlfu_touch(ml_tlfu *l, ml_entry *ents, uint32_t id)
{
    ml_sketch_increment(&l->sketch, ents[id].hash);
    l->hits++;
    unsigned r = l->region_of[id];
    if (r == ML_TLFU_PROBATION) {
        ml_tlfu_promote(l, ents, id);
    }
    else {
        ml_list_move_back(&l->region[r], ents, ML_LINK_POLICY, id);
    }
    if (l->hits + l->misses >= ml_sketch_sample(&l->sketch)) {
        ml_tlfu_climb(l, ents);
    }
}

/* Removes entry id from its region. */
void ml_tlfu_remove(ml_tlfu *l, ml_entry *ents, uint32_t id);

/* @return the entry evicted next (see above), or ML_NIL when l holds none. */
uint32_t ml_tlfu_victim(const ml_tlfu *l, const ml_entry *ents);

/* @return the window's / protected's maximum for n live entries at the current window_frac. */
uint32_t ml_tlfu_window_max(const ml_tlfu *l, uint32_t n);
uint32_t ml_tlfu_protected_max(const ml_tlfu *l, uint32_t n);

/* Forgets every region (keeps the arrays, the sketch and the climber): the entries then
 * belong to no region. For rebuilding (unpickling), with ml_tlfu_append. */
void ml_tlfu_reset(ml_tlfu *l);

/* Appends entry id at the recent end of region r, counting and moving nothing else.
 * @pre reserved for id, r < ML_TLFU_REGIONS. */
void ml_tlfu_append(ml_tlfu *l, ml_entry *ents, uint32_t id, unsigned r);

/* Sets the climber's state (as read from a pickle). @pre window_frac in [0, 1], prev_rate
 * in [0, 1], |step| <= ML_TLFU_STEP, hits + misses below the sketch's sample. */
void ml_tlfu_set_climber(ml_tlfu *l, double window_frac, double step, double prev_rate,
                         uint64_t hits, uint64_t misses);

/* Replaces the sketch's table by a copy of words[0 .. nwords) with `additions`.
 * @pre nwords a power of two in [ML_SKETCH_MIN_WORDS, ML_SKETCH_MAX_WORDS], additions
 * below its sample size. @return ML_OK or ML_ERR_NOMEM (unchanged). */
int ml_tlfu_restore_sketch(ml_tlfu *l, const ml_alloc *a, const uint64_t *words,
                           uint32_t nwords, uint64_t additions);

#endif
