/* sites.h — allocation sites of the resource tracker, each stored once.
 *
 * A site is the stack a tracked object was allocated from, as frame identities: (code
 * object address, instruction offset) pairs, innermost first. Interning hashes them with
 * XXH3 and returns a small site id; equal stacks get the same id, so a million objects
 * opened in one loop cost one site. Text (file, line, function) is never made here: the
 * binding renders a site only when a warning or report needs it.
 *
 * Each site carries its counters. Sites are never removed (their number is bounded by
 * the program's code, as Netty's leak records are); past ML_SITES_MAX distinct sites,
 * interning returns ML_ERR_FULL and the caller files the object under site 0, the
 * frameless site that ml_sites_init creates first.
 */
#ifndef ML_SITES_H
#define ML_SITES_H

#include <stdint.h>

#include "core/alloc.h"

enum { ML_SITES_MAX = 1 << 20, ML_SITES_DEPTH_MAX = 64 };

typedef struct ml_frame {
    uintptr_t code;    /* identity of the code object (the binding keeps it alive) */
    int32_t lasti;     /* instruction offset in it */
    int32_t unused;    /* zero: frames are hashed as bytes */
} ml_frame;

typedef struct ml_site {
    uint64_t hash;
    uint32_t first;    /* its frames: pool[first .. first + depth) */
    uint32_t depth;
    /* counters, kept by the binding */
    uint64_t tracked;  /* objects ever tracked from here */
    uint64_t open;     /* of which still open and alive */
    uint64_t leaked;   /* collected without being closed */
    uint64_t warned;   /* leaks whose warning was shown (the rest were de-duplicated) */
} ml_site;

typedef struct ml_sites {
    ml_site *sites;
    uint32_t n, cap;
    ml_frame *pool;
    uint32_t npool, cappool;
    uint32_t *index;   /* open addressing: site id + 1, or 0 for an empty cell */
    uint32_t mask;     /* cells - 1 */
    const ml_alloc *alloc;
} ml_sites;

/* Sets up s with site 0 (no frames). ML_OK or ML_ERR_NOMEM (s is then empty, freeable). */
int ml_sites_init(ml_sites *s, const ml_alloc *a);
void ml_sites_free(ml_sites *s);

/* @return the XXH3 hash interning uses for these frames. */
uint64_t ml_sites_hash(const ml_frame *frames, uint32_t depth);

/* Finds or adds the site of frames[0 .. depth) (depth <= ML_SITES_DEPTH_MAX, unused
 * fields zero). *id is its id; *created is 1 when it was added by this call (the caller
 * then keeps its code objects alive), else 0. ML_OK, ML_ERR_NOMEM or ML_ERR_FULL (s
 * unchanged). */
int ml_sites_intern(ml_sites *s, const ml_frame *frames, uint32_t depth, uint32_t *id,
                    int *created);

static inline ml_site *
ml_sites_get(const ml_sites *s, uint32_t id)
{
    return &s->sites[id];
}

static inline const ml_frame *
ml_sites_frames(const ml_sites *s, uint32_t id)
{
    return &s->pool[s->sites[id].first];
}

/* @return the bytes s owns (its arrays). */
size_t ml_sites_sizeof(const ml_sites *s);

#endif
