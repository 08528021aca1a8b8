/* sites.c — allocation sites and the keys filed under them (see sites.h).
 *
 * Layout: three arrays grown by doubling (sites, keys, the keys' frame pool) and an
 * open-addressing index of key ids + 1 over the keys' hashes, kept at most half full and
 * probed linearly. A key is never moved or removed except by a rebuild (compact), which
 * makes new arrays holding only the live keys, in their order, and a new index: site ids
 * never change, key ids are internal.
 *
 * Invariants (ml_sites_check): every live key is reachable from its hash's probe start
 * without crossing an empty cell; key.site < n; nkeys - ndead live keys; the pool holds
 * the frames of keys[0 .. nkeys) back to back.
 *
 * Every call that can fail allocates first, then changes s: a failure leaves s as it was.
 */
#include "core/sites.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t
ml_sites_hash(const ml_frame *frames, uint32_t depth)
{
    return depth ? XXH3_64bits(frames, (size_t)depth * sizeof(ml_frame)) : 0;
}

static int
key_matches(const ml_sites *s, const ml_key *k, uint64_t h, const ml_frame *frames,
            uint32_t depth)
{
    return k->hash == h && k->depth == depth && !k->dead &&
           (depth == 0 ||
            memcmp(&s->pool[k->first], frames, (size_t)depth * sizeof(ml_frame)) == 0);
}

/* The key id of frames, or UINT32_MAX. */
static uint32_t
find_key(const ml_sites *s, const ml_frame *frames, uint32_t depth, uint64_t h)
{
    if (s->index == NULL) {
        return UINT32_MAX;
    }
    for (uint32_t i = (uint32_t)h & s->mask; s->index[i] != 0; i = (i + 1) & s->mask) {
        const ml_key *k = &s->keys[s->index[i] - 1];
        if (key_matches(s, k, h, frames, depth)) {
            return s->index[i] - 1;
        }
    }
    return UINT32_MAX;
}

/* Places key id in index (cells mask + 1) at the first empty cell of its probe. */
static void
index_place(uint32_t *index, uint32_t mask, uint64_t h, uint32_t id)
{
    uint32_t i = (uint32_t)h & mask;
    while (index[i] != 0) {
        i = (i + 1) & mask;
    }
    index[i] = id + 1;
}

/* A new index of `cells` cells (a power of two) over keys[0 .. nkeys). */
static uint32_t *
index_build(const ml_sites *s, const ml_key *keys, uint32_t nkeys, uint32_t cells)
{
    const ml_alloc *a = s->alloc;
    uint32_t *index = a->malloc(a->ctx, (size_t)cells * sizeof(uint32_t));
    if (index == NULL) {
        return NULL;
    }
    memset(index, 0, (size_t)cells * sizeof(uint32_t));
    for (uint32_t id = 0; id < nkeys; id++) {
        index_place(index, cells - 1, keys[id].hash, id);
    }
    return index;
}

/* Room for one more key of `depth` frames (the index kept at most half full). */
static int
reserve_key(ml_sites *s, uint32_t depth)
{
    if (s->nkeys - s->ndead >= ML_SITES_MAX || s->nkeys == UINT32_MAX - 1) {
        return ML_ERR_FULL;
    }
    if (s->nkeys == s->capkeys) {
        uint32_t cap = s->capkeys ? s->capkeys * 2 : 16;
        if (ml_grow(s->alloc, (void **)&s->keys, sizeof(ml_key), cap) != ML_OK) {
            return ML_ERR_NOMEM;
        }
        s->capkeys = cap;
    }
    if ((uint64_t)s->npool + depth > s->cappool) {
        uint64_t cap = s->cappool ? s->cappool : 64;
        while (cap < (uint64_t)s->npool + depth) {
            cap *= 2;
        }
        if (cap > UINT32_MAX) {
            return ML_ERR_FULL;
        }
        if (ml_grow(s->alloc, (void **)&s->pool, sizeof(ml_frame), (size_t)cap) != ML_OK) {
            return ML_ERR_NOMEM;
        }
        s->cappool = (uint32_t)cap;
    }
    if (s->index == NULL || (s->nkeys + 1) * 2 > s->mask + 1) {
        uint32_t cells = s->index == NULL ? 32 : (s->mask + 1) * 2;
        uint32_t *index = index_build(s, s->keys, s->nkeys, cells);
        if (index == NULL) {
            return ML_ERR_NOMEM;
        }
        s->alloc->free(s->alloc->ctx, s->index);
        s->index = index;
        s->mask = cells - 1;
    }
    return ML_OK;
}

/* Adds the key (room reserved, not present). */
static void
put_key(ml_sites *s, const ml_frame *frames, uint32_t depth, uint64_t h, uint32_t site)
{
    ml_key *k = &s->keys[s->nkeys];
    k->hash = h;
    k->first = s->npool;
    k->depth = depth;
    k->site = site;
    k->dead = 0;
    if (depth) {
        memcpy(&s->pool[s->npool], frames, (size_t)depth * sizeof(ml_frame));
    }
    s->npool += depth;
    index_place(s->index, s->mask, h, s->nkeys);
    s->nkeys++;
}

static int
reserve_site(ml_sites *s)
{
    if (s->n >= ML_SITES_MAX) {
        return ML_ERR_FULL;
    }
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 16;
        if (ml_grow(s->alloc, (void **)&s->sites, sizeof(ml_site), cap) != ML_OK) {
            return ML_ERR_NOMEM;
        }
        s->cap = cap;
    }
    return ML_OK;
}

static uint32_t
put_site(ml_sites *s)
{
    memset(&s->sites[s->n], 0, sizeof(ml_site));
    return s->n++;
}

int
ml_sites_init(ml_sites *s, const ml_alloc *a)
{
    memset(s, 0, sizeof(*s));
    s->alloc = a;
    uint32_t site;
    int created;
    return ml_sites_intern(s, NULL, 0, &site, &created);
}

void
ml_sites_free(ml_sites *s)
{
    const ml_alloc *a = s->alloc;
    if (a != NULL) {
        a->free(a->ctx, s->sites);
        a->free(a->ctx, s->keys);
        a->free(a->ctx, s->pool);
        a->free(a->ctx, s->index);
    }
    memset(s, 0, sizeof(*s));
}

int
ml_sites_find(const ml_sites *s, const ml_frame *frames, uint32_t depth, uint32_t *site)
{
    uint32_t id = find_key(s, frames, depth, ml_sites_hash(frames, depth));
    if (id == UINT32_MAX) {
        return ML_NOT_FOUND;
    }
    *site = s->keys[id].site;
    return ML_OK;
}

int
ml_sites_new(ml_sites *s, uint32_t *site)
{
    int st = reserve_site(s);
    if (st != ML_OK) {
        return st;
    }
    *site = put_site(s);
    return ML_OK;
}

int
ml_sites_add_key(ml_sites *s, const ml_frame *frames, uint32_t depth, uint32_t site)
{
    assert(site < s->n && depth <= ML_SITES_DEPTH_MAX);
    uint64_t h = ml_sites_hash(frames, depth);
    if (find_key(s, frames, depth, h) != UINT32_MAX) {
        return ML_OK;
    }
    int st = reserve_key(s, depth);
    if (st != ML_OK) {
        return st;
    }
    put_key(s, frames, depth, h, site);
    return ML_OK;
}

int
ml_sites_intern(ml_sites *s, const ml_frame *frames, uint32_t depth, uint32_t *site,
                int *created)
{
    assert(depth <= ML_SITES_DEPTH_MAX);
    uint64_t h = ml_sites_hash(frames, depth);
    uint32_t id = find_key(s, frames, depth, h);
    *created = 0;
    if (id != UINT32_MAX) {
        *site = s->keys[id].site;
        return ML_OK;
    }
    int st = reserve_site(s);
    if (st == ML_OK) {
        st = reserve_key(s, depth);
    }
    if (st != ML_OK) {
        return st;
    }
    *site = put_site(s);
    put_key(s, frames, depth, h, *site);
    *created = 1;
    return ML_OK;
}

/* Rebuilds keys, pool and index from the live keys. ML_OK or ML_ERR_NOMEM (unchanged). */
static int
compact(ml_sites *s)
{
    const ml_alloc *a = s->alloc;
    uint32_t live = s->nkeys - s->ndead, nframes = 0;
    for (uint32_t id = 0; id < s->nkeys; id++) {
        nframes += s->keys[id].dead ? 0 : s->keys[id].depth;
    }
    uint32_t capkeys = 16, cappool = 64, cells = 32;
    while (capkeys < live) {
        capkeys *= 2;
    }
    while (cappool < nframes) {
        cappool *= 2;
    }
    while (cells < live * 2 + 2) {
        cells *= 2;
    }
    ml_key *keys = a->malloc(a->ctx, (size_t)capkeys * sizeof(ml_key));
    ml_frame *pool = a->malloc(a->ctx, (size_t)cappool * sizeof(ml_frame));
    if (keys == NULL || pool == NULL) {
        a->free(a->ctx, keys);
        a->free(a->ctx, pool);
        return ML_ERR_NOMEM;
    }
    uint32_t n = 0, np = 0;
    for (uint32_t id = 0; id < s->nkeys; id++) {
        const ml_key *k = &s->keys[id];
        if (k->dead) {
            continue;
        }
        keys[n] = *k;
        keys[n].first = np;
        memcpy(&pool[np], &s->pool[k->first], (size_t)k->depth * sizeof(ml_frame));
        np += k->depth;
        n++;
    }
    uint32_t *index = index_build(s, keys, n, cells);
    if (index == NULL) {
        a->free(a->ctx, keys);
        a->free(a->ctx, pool);
        return ML_ERR_NOMEM;
    }
    a->free(a->ctx, s->keys);
    a->free(a->ctx, s->pool);
    a->free(a->ctx, s->index);
    s->keys = keys;
    s->nkeys = n;
    s->capkeys = capkeys;
    s->ndead = 0;
    s->pool = pool;
    s->npool = np;
    s->cappool = cappool;
    s->index = index;
    s->mask = cells - 1;
    return ML_OK;
}

uint32_t
ml_sites_forget_code(ml_sites *s, uintptr_t code)
{
    uint32_t forgotten = 0;
    for (uint32_t id = 0; id < s->nkeys; id++) {
        ml_key *k = &s->keys[id];
        if (k->dead) {
            continue;
        }
        for (uint32_t d = 0; d < k->depth; d++) {
            if (s->pool[k->first + d].code == code) {
                k->dead = 1;
                forgotten++;
                break;
            }
        }
    }
    s->ndead += forgotten;
    if (s->ndead > 64 && s->ndead * 2 > s->nkeys) {
        (void)compact(s);   /* on failure the forgotten keys wait for a later call */
    }
    return forgotten;
}

size_t
ml_sites_sizeof(const ml_sites *s)
{
    size_t cells = s->index ? (size_t)s->mask + 1 : 0;
    return (size_t)s->cap * sizeof(ml_site) + (size_t)s->capkeys * sizeof(ml_key) +
           (size_t)s->cappool * sizeof(ml_frame) + cells * sizeof(uint32_t);
}

#ifndef NDEBUG
void
ml_sites_check(const ml_sites *s)
{
    uint32_t dead = 0, frames = 0;
    for (uint32_t id = 0; id < s->nkeys; id++) {
        const ml_key *k = &s->keys[id];
        if (k->site >= s->n || k->first != frames || k->depth > ML_SITES_DEPTH_MAX) {
            abort();
        }
        frames += k->depth;
        if (k->dead) {
            dead++;
            continue;
        }
        if (k->hash != ml_sites_hash(&s->pool[k->first], k->depth) ||
            find_key(s, &s->pool[k->first], k->depth, k->hash) != id) {
            abort();
        }
    }
    if (dead != s->ndead || frames != s->npool || (s->nkeys + 0u) * 2 > s->mask + 1) {
        abort();
    }
}
#endif
