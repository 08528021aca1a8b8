/* sketch.c — the 4-bit count-min sketch (see sketch.h).
 *
 * Layout
 *
 *   words[]   nwords uint64, 16 nibble counters each, read as nblocks = nwords / 8 blocks
 *             of 8 words (64 bytes: one cache line)
 *
 *   mix = splitmix64_finalise(hash ^ seed)
 *   block = (uint32_t)mix & (nblocks - 1)
 *   for i in 0..3:  byte b = mix >> (32 + 8 i)
 *                   word  = block * 8 + 2 i + (b & 1)    (counter i lives in words 2i, 2i+1)
 *                   nibble = (b >> 1) & 15
 *
 * So the four counters of a hash are in one block, in four different words; reading or
 * counting a hash touches one cache line. Doubling the table copies it: a hash's new
 * block is its old block or old block + old nblocks (one more bit of the mix), which holds
 * the same counters.
 *
 * Halving: ((w >> 1) & 0x7777...) halves the 16 counters of a word at once (the mask
 * drops the bit each counter receives from its upper neighbour).
 */
#include "core/sketch.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define HALF_MASK 0x7777777777777777ull

void
ml_sketch_init(ml_sketch *s, uint64_t seed)
{
    s->words = NULL;
    s->nwords = 0;
    s->additions = 0;
    s->seed = seed;
}

void
ml_sketch_free(ml_sketch *s, const ml_alloc *a)
{
    a->free(a->ctx, s->words);
    ml_sketch_init(s, s->seed);
}

int
ml_sketch_reserve(ml_sketch *s, const ml_alloc *a, uint64_t n)
{
    if (n <= s->nwords || s->nwords >= ML_SKETCH_MAX_WORDS) {
        return ML_OK;
    }
    uint64_t want = ML_SKETCH_MIN_WORDS;
    while (want < n && want < ML_SKETCH_MAX_WORDS) {
        want <<= 1;
    }
    uint64_t *w = a->malloc(a->ctx, (size_t)want * sizeof(uint64_t));
    if (w == NULL) {
        return ML_ERR_NOMEM;
    }
    if (s->nwords == 0) {
        memset(w, 0, (size_t)want * sizeof(uint64_t));
    }
    else {
        for (uint64_t off = 0; off < want; off += s->nwords) {
            memcpy(w + off, s->words, (size_t)s->nwords * sizeof(uint64_t));
        }
    }
    a->free(a->ctx, s->words);
    s->words = w;
    s->nwords = (uint32_t)want;
    return ML_OK;
}

static inline uint64_t
mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

static void
halve(ml_sketch *s)
{
    for (uint32_t i = 0; i < s->nwords; i++) {
        s->words[i] = (s->words[i] >> 1) & HALF_MASK;
    }
    s->additions /= 2;
}

void
ml_sketch_increment(ml_sketch *s, uint64_t hash)
{
    if (s->nwords == 0) {
        return;
    }
    uint64_t m = mix(hash ^ s->seed);
    uint64_t *block = s->words + (size_t)((uint32_t)m & (s->nwords / 8u - 1u)) * 8u;
    int added = 0;
    for (unsigned i = 0; i < 4; i++) {
        unsigned b = (unsigned)(m >> (32 + 8 * i)) & 0xFFu;
        uint64_t *w = block + 2 * i + (b & 1u);
        unsigned shift = ((b >> 1) & 15u) * 4u;
        if (((*w >> shift) & 15u) < ML_SKETCH_MAX_COUNT) {
            *w += 1ull << shift;
            added = 1;
        }
    }
    if (added && ++s->additions >= ml_sketch_sample(s)) {
        halve(s);
    }
}

unsigned
ml_sketch_frequency(const ml_sketch *s, uint64_t hash)
{
    if (s->nwords == 0) {
        return 0;
    }
    uint64_t m = mix(hash ^ s->seed);
    const uint64_t *block = s->words + (size_t)((uint32_t)m & (s->nwords / 8u - 1u)) * 8u;
    unsigned least = ML_SKETCH_MAX_COUNT;
    for (unsigned i = 0; i < 4; i++) {
        unsigned b = (unsigned)(m >> (32 + 8 * i)) & 0xFFu;
        unsigned shift = ((b >> 1) & 15u) * 4u;
        unsigned v = (unsigned)(block[2 * i + (b & 1u)] >> shift) & 15u;
        least = v < least ? v : least;
    }
    return least;
}

#ifndef NDEBUG
void
ml_sketch_check(const ml_sketch *s)
{
    if (s->nwords == 0) {
        if (s->words != NULL || s->additions != 0) {
            abort();
        }
        return;
    }
    if (s->words == NULL || s->nwords < ML_SKETCH_MIN_WORDS || s->nwords > ML_SKETCH_MAX_WORDS ||
        (s->nwords & (s->nwords - 1u)) != 0 || s->additions >= ml_sketch_sample(s)) {
        abort();
    }
}
#endif
