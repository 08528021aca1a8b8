/* sketch.c — the 4-bit count-min sketch (see sketch.h).
 *
 * Layout
 *
 *   words[]   nwords uint64, 16 nibble counters each, read as nblocks = nwords / 8 blocks
 *             of 8 words (64 bytes: one cache line)
 *
 *   p = (hash ^ seed) * 0x9E3779B97F4A7C15,  mix = p ^ (p >> 32)
 *   block = (uint32_t)mix & (nblocks - 1)
 *   for i in 0..3:  byte b = mix >> (32 + 8 i)
 *                   word  = block * 8 + 2 i + (b & 1)    (counter i lives in words 2i, 2i+1)
 *                   nibble = (b >> 1) & 15
 *
 * So the four counters of a hash are in one block, in four different words; reading or
 * counting a hash touches one cache line. A larger table starts at zero (copying the old
 * one into every new block would keep each estimate, but it also copies the old
 * collisions into every block, where a key counted once can find four counters that
 * others filled); the cache carries its own keys' estimates over (tinylfu.c).
 *
 * Halving: ((w >> 1) & 0x7777...) halves the 16 counters of a word at once (the mask
 * drops the bit each counter receives from its upper neighbour).
 */
#include "core/sketch.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define HALF_MASK 0x7777777777777777ull   /* each nibble's top bit cleared */

void
ml_sketch_init(ml_sketch *s, uint64_t seed)
{
    s->words = NULL;
    s->nwords = 0;
    s->sample = 0;
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
    memset(w, 0, (size_t)want * sizeof(uint64_t));
    a->free(a->ctx, s->words);
    s->additions = 0;
    s->words = w;
    s->nwords = (uint32_t)want;
    s->sample = (uint64_t)ML_SKETCH_SAMPLE_PER_WORD * want;
    return ML_OK;
}

void
ml_sketch_raise(ml_sketch *s, uint64_t hash, unsigned count)
{
    uint64_t m = ml_sketch_mix(s, hash);
    uint64_t *block = ml_sketch_block(s, m);
    for (unsigned i = 0; i < 4; i++) {
        uint64_t b = m >> (32 + 8 * i);
        uint64_t *w = block + 2 * i + (b & 1u);
        unsigned shift = (unsigned)(b << 1) & 0x3Cu;
        if (((*w >> shift) & 15u) < count) {
            *w = (*w & ~(15ull << shift)) | ((uint64_t)count << shift);
        }
    }
}

void
ml_sketch_halve(ml_sketch *s)
{
    for (uint32_t i = 0; i < s->nwords; i++) {
        s->words[i] = (s->words[i] >> 1) & HALF_MASK;
    }
    s->additions /= 2;
}

#ifndef NDEBUG
void
ml_sketch_check(const ml_sketch *s)
{
    if (s->nwords == 0) {
        if (s->words != NULL || s->additions != 0 || s->sample != 0) {
            abort();
        }
        return;
    }
    if (s->words == NULL || s->nwords < ML_SKETCH_MIN_WORDS || s->nwords > ML_SKETCH_MAX_WORDS ||
        (s->nwords & (s->nwords - 1u)) != 0 || s->additions >= s->sample ||
        s->sample != (uint64_t)ML_SKETCH_SAMPLE_PER_WORD * s->nwords) {
        abort();
    }
}
#endif
