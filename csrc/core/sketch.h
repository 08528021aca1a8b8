/* sketch.h — a count-min sketch of 4-bit counters with periodic halving: the frequency
 * history behind W-TinyLFU's admission (tinylfu.h).
 *
 * What it answers: about how often a hash was counted lately, from 0 to 15. It may
 * over-estimate (other hashes share counters), never under-estimates what was counted
 * since the last halving. Every ML_SKETCH_SAMPLE_PER_WORD * nwords counted additions, all
 * counters are halved, so old popularity fades (TinyLFU's "reset", Einziger, Friedman and
 * Manes, "TinyLFU: A Highly Efficient Cache Admission Policy", ACM ToS 2017).
 *
 * Hashing: a key's stored 64-bit hash is mixed with the sketch's seed (ml_sketch_mix: one
 * multiply and a fold); the low 32 bits of the mix pick a 64-byte block of 8 words,
 * and each of the top four bytes picks one counter of that block (one of two words, one
 * of 16 nibbles), so the four counters of a hash sit in one cache line (Caffeine's block
 * layout, described in its FrequencySketch's documentation). The seed is fixed by default
 * (ML_SKETCH_SEED) so that a cache's decisions, its pickles and the tests are
 * deterministic; Python's own string hashing is what varies from process to process.
 *
 * Growth: the table has a power-of-two number of words, at least 8. A larger one starts
 * with every counter at zero (as Caffeine's ensureCapacity does); TinyLFUCache then
 * carries the estimates of the keys it holds into it (ml_sketch_raise). A cache grows its
 * sketch only while it fills, a few times in its life.
 */
#ifndef ML_SKETCH_H
#define ML_SKETCH_H

#include <stdint.h>

#include "core/alloc.h"
#include "core/status.h"

#define ML_SKETCH_SEED 0x9E3779B97F4A7C15ull   /* 2**64 / golden ratio */
#define ML_SKETCH_MIN_WORDS 8u                 /* one 64-byte block */
#define ML_SKETCH_MAX_WORDS (1u << 30)         /* 8 GiB of counters: beyond any cache */
/* Additions between halvings, per word. TinyLFUCache sizes the sketch at two words per
 * entry or more (ML_TLFU_SKETCH_WORDS), so 14 to 28 counted uses per entry (Caffeine: 10
 * per entry, at one word per entry or more). Chosen by measurement on bench/run.py's
 * hit-ratio workloads (docs/benchmarks.md): a longer period holds a loop's entries
 * better, a shorter one follows shifting popularity sooner; 7 keeps both. */
#define ML_SKETCH_SAMPLE_PER_WORD 7u
#define ML_SKETCH_MAX_COUNT 15u

typedef struct ml_sketch {
    uint64_t *words;        /* nwords words of 16 counters each, or NULL */
    uint32_t nwords;        /* 0 (no table yet) or a power of two >= ML_SKETCH_MIN_WORDS */
    uint64_t sample;        /* ML_SKETCH_SAMPLE_PER_WORD * nwords */
    uint64_t additions;     /* counted additions since the last halving (< sample) */
    uint64_t seed;
} ml_sketch;

/* Makes an empty sketch (no table; frequencies read 0, increments are ignored until
 * ml_sketch_reserve made one). Allocates nothing. */
void ml_sketch_init(ml_sketch *s, uint64_t seed);

/* Frees the table; the sketch is empty again (the seed stays). */
void ml_sketch_free(ml_sketch *s, const ml_alloc *a);

/* Makes the table at least `n` words (rounded up to a power of two, at least
 * ML_SKETCH_MIN_WORDS, at most ML_SKETCH_MAX_WORDS); a new table has every counter and
 * `additions` at zero. @return ML_OK or ML_ERR_NOMEM (then unchanged). */
int ml_sketch_reserve(ml_sketch *s, const ml_alloc *a, uint64_t n);

/* Raises hash's four counters to at least `count` (<= 15), counting no addition: for
 * carrying estimates into a new table. */
void ml_sketch_raise(ml_sketch *s, uint64_t hash, unsigned count);

/* Halves every counter and `additions` (the reset that ages the history). O(nwords). */
void ml_sketch_halve(ml_sketch *s);

/* The counting and reading below are on every cache hit, so they are static inline here
 * (as list.h's moves are); they call nothing but ml_sketch_halve, once a sample. */

/* What picks a hash's block and counters: p = (hash ^ seed) * 0x9E3779B97F4A7C15 (odd:
 * a bijection), then p ^ (p >> 32). The top 32 bits (p's, which every bit of the hash
 * reaches) pick the four counters; the low 32 bits, p's halves folded, the block. One
 * multiply: this is on every hit. */
static inline uint64_t
ml_sketch_mix(const ml_sketch *s, uint64_t hash)
{
    uint64_t p = (hash ^ s->seed) * 0x9E3779B97F4A7C15ull;
    return p ^ (p >> 32);
}

/* @return the 8-word block of a mixed hash. @pre a table exists. */
static inline uint64_t *
ml_sketch_block(const ml_sketch *s, uint64_t m)
{
    return s->words + (size_t)((uint32_t)m & (s->nwords / 8u - 1u)) * 8u;
}

/* Asks the processor to fetch hash's block (for a hit about to be counted); no effect on
 * the sketch's state. */
static inline void
ml_sketch_prefetch(const ml_sketch *s, uint64_t hash)
{
#if defined(__GNUC__) || defined(__clang__)
    if (s->nwords != 0) {
        __builtin_prefetch(ml_sketch_block(s, ml_sketch_mix(s, hash)), 1, 3);
    }
#else
    (void)s;
    (void)hash;
#endif
}

/* Adds one to the counter a byte b of the mix names in the word pair at w (unless it is
 * at 15), without branches. @return 1 if it did, else 0. */
static inline uint64_t
ml_sketch_bump(uint64_t *w, uint64_t b)
{
    uint64_t *word = w + (b & 1u);
    unsigned shift = (unsigned)(b << 1) & 0x3Cu;          /* ((b >> 1) & 15) * 4 */
    uint64_t v = *word;
    uint64_t below = ((~v >> shift) & 15u) != 0;           /* the counter is not 15 */
    *word = v + (below << shift);
    return below;
}

/* Counts one occurrence of hash: each of its four counters below 15 goes up by one; if
 * any did, `additions` goes up, and reaching the sample size halves every counter and
 * `additions`. Never allocates. */
static inline void
ml_sketch_increment(ml_sketch *s, uint64_t hash)
{
    if (s->nwords == 0) {
        return;
    }
    uint64_t m = ml_sketch_mix(s, hash);
    uint64_t *block = ml_sketch_block(s, m);
    uint64_t added = ml_sketch_bump(block, m >> 32) | ml_sketch_bump(block + 2, m >> 40) |
                     ml_sketch_bump(block + 4, m >> 48) | ml_sketch_bump(block + 6, m >> 56);
    s->additions += added;
    if (s->additions >= s->sample) {
        ml_sketch_halve(s);
    }
}

/* @return the counter a byte b of the mix names in the word pair at w. */
static inline uint64_t
ml_sketch_count(const uint64_t *w, uint64_t b)
{
    return (w[b & 1u] >> ((unsigned)(b << 1) & 0x3Cu)) & 15u;
}

static inline uint64_t
ml_sketch_min(uint64_t x, uint64_t y)
{
    return x < y ? x : y;
}

/* @return the estimate for hash: the least of its four counters (0 without a table). */
static inline unsigned
ml_sketch_frequency(const ml_sketch *s, uint64_t hash)
{
    if (s->nwords == 0) {
        return 0;
    }
    uint64_t m = ml_sketch_mix(s, hash);
    const uint64_t *block = ml_sketch_block(s, m);
    uint64_t least = ml_sketch_min(ml_sketch_min(ml_sketch_count(block, m >> 32),
                                                 ml_sketch_count(block + 2, m >> 40)),
                                   ml_sketch_min(ml_sketch_count(block + 4, m >> 48),
                                                 ml_sketch_count(block + 6, m >> 56)));
    return (unsigned)least;
}

/* @return the additions between halvings: ML_SKETCH_SAMPLE_PER_WORD * nwords (0 without
 * a table). */
static inline uint64_t
ml_sketch_sample(const ml_sketch *s)
{
    return s->sample;
}

/* @return the bytes the table owns. */
static inline size_t
ml_sketch_sizeof(const ml_sketch *s)
{
    return (size_t)s->nwords * sizeof(uint64_t);
}

/* Checks the invariants (word count a power of two in range, or no table; additions
 * below the sample size); aborts on a violation. Only when NDEBUG is off. */
#ifndef NDEBUG
void ml_sketch_check(const ml_sketch *s);
#endif

#endif
