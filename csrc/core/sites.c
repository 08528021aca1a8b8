/* sites.c — interning of allocation sites with XXH3 (see sites.h). */
#include "core/sites.h"

#include <string.h>

#include "core/status.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t
ml_sites_hash(const ml_frame *frames, uint32_t depth)
{
    return XXH3_64bits(frames, (size_t)depth * sizeof(ml_frame));
}

static int
same_frames(const ml_sites *s, const ml_site *site, const ml_frame *frames, uint32_t depth)
{
    return site->depth == depth &&
           memcmp(&s->pool[site->first], frames, (size_t)depth * sizeof(ml_frame)) == 0;
}

/* Rebuilds the index with `cells` cells (a power of two). */
static int
rehash(ml_sites *s, uint32_t cells)
{
    const ml_alloc *a = s->alloc;
    uint32_t *index = a->malloc(a->ctx, (size_t)cells * sizeof(uint32_t));
    if (index == NULL) {
        return ML_ERR_NOMEM;
    }
    memset(index, 0, (size_t)cells * sizeof(uint32_t));
    uint32_t mask = cells - 1;
    for (uint32_t id = 0; id < s->n; id++) {
        uint32_t i = (uint32_t)s->sites[id].hash & mask;
        while (index[i] != 0) {
            i = (i + 1) & mask;
        }
        index[i] = id + 1;
    }
    a->free(a->ctx, s->index);
    s->index = index;
    s->mask = mask;
    return ML_OK;
}

int
ml_sites_init(ml_sites *s, const ml_alloc *a)
{
    memset(s, 0, sizeof(*s));
    s->alloc = a;
    uint32_t id;
    int created;
    return ml_sites_intern(s, NULL, 0, &id, &created);
}

void
ml_sites_free(ml_sites *s)
{
    const ml_alloc *a = s->alloc;
    if (a != NULL) {
        a->free(a->ctx, s->sites);
        a->free(a->ctx, s->pool);
        a->free(a->ctx, s->index);
    }
    memset(s, 0, sizeof(*s));
}

int
ml_sites_intern(ml_sites *s, const ml_frame *frames, uint32_t depth, uint32_t *id,
                int *created)
{
    uint64_t h = depth ? ml_sites_hash(frames, depth) : 0;
    *created = 0;
    if (s->index != NULL) {
        for (uint32_t i = (uint32_t)h & s->mask; s->index[i] != 0; i = (i + 1) & s->mask) {
            const ml_site *site = &s->sites[s->index[i] - 1];
            if (site->hash == h && same_frames(s, site, frames, depth)) {
                *id = s->index[i] - 1;
                return ML_OK;
            }
        }
    }
    if (s->n >= ML_SITES_MAX) {
        return ML_ERR_FULL;
    }
    /* room first, so that a failure leaves s unchanged */
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 16;
        if (ml_grow(s->alloc, (void **)&s->sites, sizeof(ml_site), cap) != ML_OK) {
            return ML_ERR_NOMEM;
        }
        s->cap = cap;
    }
    if (s->npool + depth > s->cappool) {
        uint32_t cap = s->cappool ? s->cappool : 64;
        while (cap < s->npool + depth) {
            cap *= 2;
        }
        if (ml_grow(s->alloc, (void **)&s->pool, sizeof(ml_frame), cap) != ML_OK) {
            return ML_ERR_NOMEM;
        }
        s->cappool = cap;
    }
    /* the index stays at most half full */
    if (s->index == NULL || (s->n + 1) * 2 > s->mask + 1) {
        if (rehash(s, s->index == NULL ? 32 : (s->mask + 1) * 2) != ML_OK) {
            return ML_ERR_NOMEM;
        }
    }
    ml_site *site = &s->sites[s->n];
    memset(site, 0, sizeof(*site));
    site->hash = h;
    site->first = s->npool;
    site->depth = depth;
    if (depth) {
        memcpy(&s->pool[s->npool], frames, (size_t)depth * sizeof(ml_frame));
    }
    s->npool += depth;
    uint32_t i = (uint32_t)h & s->mask;
    while (s->index[i] != 0) {
        i = (i + 1) & s->mask;
    }
    s->index[i] = s->n + 1;
    *id = s->n++;
    *created = 1;
    return ML_OK;
}

size_t
ml_sites_sizeof(const ml_sites *s)
{
    size_t cells = s->index ? (size_t)s->mask + 1 : 0;
    return (size_t)s->cap * sizeof(ml_site) + (size_t)s->cappool * sizeof(ml_frame) +
           cells * sizeof(uint32_t);
}
