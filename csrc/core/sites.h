/* sites.h — allocation sites of the resource tracker, each stored once, and found from
 * the frames at hand without rendering anything.
 *
 * A *site* is a place in the program's source that allocates tracked objects. The
 * binding decides which places are the same one (it renders a stack's frames as file,
 * line and function, once, and files equal texts under one site), gives each distinct
 * place an id here and keeps its counters here. Site ids are dense and never reused; 0
 * is the frameless site that ml_sites_init creates first. Sites are never removed: their
 * number is bounded by the program's source, as Netty's leak records are.
 *
 * A *key* is what the binding has at hand when an object is tracked: the stack as frame
 * identities, (code object address, instruction offset) pairs, innermost first. Keys
 * are hashed with XXH3 into an open-addressing index, and each is filed under one site,
 * so the common case — an object tracked from a stack seen before — costs a hash and a
 * probe. Several keys may share a site: the interpreter rewrites its bytecode (the
 * instruction a call runs from moves when it is specialized), and two code objects can
 * render alike.
 *
 *     keys (index over them)              sites
 *     +------------------------+          +--------------------------------+
 *     | hash first depth site -+--------->| tracked open leaked warned     |
 *     | ...            dead    |          | ...                            |
 *     +------------------------+          +--------------------------------+
 *     pool: the keys' frames, key k's are pool[first .. first + depth)
 *
 * Keys hold code addresses, never the code objects: the binding calls
 * ml_sites_forget_code when a code object dies, and every key with a frame of it stops
 * matching (a new code object at that address makes new keys). Forgotten keys are
 * dropped when they are more than half of all keys (the index and pool are rebuilt).
 *
 * Limits: ML_SITES_MAX sites, as many live keys, ML_SITES_DEPTH_MAX frames a key; past
 * them, ML_ERR_FULL.
 */
#ifndef ML_SITES_H
#define ML_SITES_H

#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"

enum { ML_SITES_MAX = 1 << 20, ML_SITES_DEPTH_MAX = 64 };

typedef struct ml_frame {
    uintptr_t code;    /* identity of the code object (its address) */
    int32_t lasti;     /* instruction offset in it */
    int32_t unused;    /* zero: frames are hashed and compared as bytes */
} ml_frame;

/* A site's counters, kept by the binding. */
typedef struct ml_site {
    uint64_t tracked;  /* objects ever tracked from here */
    uint64_t open;     /* of which still open and alive */
    uint64_t leaked;   /* collected without being closed */
    uint64_t warned;   /* leaks whose warning was shown (the rest were de-duplicated) */
} ml_site;

typedef struct ml_key {
    uint64_t hash;     /* ml_sites_hash of its frames */
    uint32_t first;    /* its frames: pool[first .. first + depth) */
    uint32_t depth;
    uint32_t site;     /* the site it is filed under */
    uint32_t dead;     /* 1: forgotten (one of its code objects died); never matches */
} ml_key;

typedef struct ml_sites {
    ml_site *sites;
    uint32_t n, cap;           /* sites */
    ml_key *keys;
    uint32_t nkeys, capkeys;   /* keys, the forgotten ones included */
    uint32_t ndead;            /* forgotten keys */
    ml_frame *pool;
    uint32_t npool, cappool;
    uint32_t *index;           /* open addressing over keys: key id + 1, or 0 when empty */
    uint32_t mask;             /* cells - 1 */
    const ml_alloc *alloc;
} ml_sites;

/* Sets up s with site 0 and the frameless key filed under it. ML_OK or ML_ERR_NOMEM (s
 * is then empty and may be freed). a must outlive s. */
int ml_sites_init(ml_sites *s, const ml_alloc *a);

/* Frees s's arrays; s is then empty. */
void ml_sites_free(ml_sites *s);

/* @return the XXH3 hash of frames[0 .. depth) (what the index is keyed on). */
uint64_t ml_sites_hash(const ml_frame *frames, uint32_t depth);

/* Finds the site the key frames[0 .. depth) is filed under (depth <= ML_SITES_DEPTH_MAX,
 * unused fields zero). @return ML_OK with *site set, or ML_NOT_FOUND. Changes nothing. */
int ml_sites_find(const ml_sites *s, const ml_frame *frames, uint32_t depth, uint32_t *site);

/* Adds a site with zero counters. @return ML_OK with *site its id, ML_ERR_NOMEM or
 * ML_ERR_FULL (s unchanged). */
int ml_sites_new(ml_sites *s, uint32_t *site);

/* Files the key frames[0 .. depth) under site (@pre site < s->n). A key filed already
 * keeps its site. @return ML_OK, ML_ERR_NOMEM or ML_ERR_FULL (s unchanged). */
int ml_sites_add_key(ml_sites *s, const ml_frame *frames, uint32_t depth, uint32_t site);

/* ml_sites_find, or else a new site with the key filed under it (*created is then 1).
 * @return ML_OK, ML_ERR_NOMEM or ML_ERR_FULL (s unchanged). */
int ml_sites_intern(ml_sites *s, const ml_frame *frames, uint32_t depth, uint32_t *site,
                    int *created);

/* The code object at address `code` died: every live key with a frame of it is forgotten
 * (it never matches again; its site and counters stay). Rebuilds the keys when forgotten
 * ones are more than half (if that allocation fails they are dropped at a later call).
 * @return how many keys were forgotten by this call. */
uint32_t ml_sites_forget_code(ml_sites *s, uintptr_t code);

static inline ml_site *
ml_sites_get(const ml_sites *s, uint32_t site)
{
    return &s->sites[site];
}

/* @return the bytes s owns (its arrays). */
size_t ml_sites_sizeof(const ml_sites *s);

#ifndef NDEBUG
/* Consistency validator (debug builds): aborts unless every live key is found at its
 * hash, filed under an existing site, and the counts add up. */
void ml_sites_check(const ml_sites *s);
#endif

#endif
