/* shim.c — see shim.h. Aborts on allocation failure: a benchmark has no error path. */
#include "shim.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/cache.h"
#include "core/sites.h"
#include "core/slots.h"
#include "core/status.h"
#include "core/table.h"
#include "core/wheel.h"

static uint64_t
mix(uint64_t x)   /* splitmix64's finaliser: the keys' hash */
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void
check(int rc, const char *what)
{
    if (rc != ML_OK) {
        fprintf(stderr, "bench shim: %s failed (%d)\n", what, rc);
        abort();
    }
}

static int
never_equal(void *ctx, void *stored, void *key)
{
    (void)ctx, (void)stored, (void)key;
    return 0;   /* keys are compared by identity, which the table checks first */
}

#define KEY(k) ((void *)(uintptr_t)(k))

struct mlb_table {
    ml_table t;
};

mlb_table *
mlb_table_new(uint32_t n)
{
    mlb_table *t = malloc(sizeof(*t));
    if (t == NULL) {
        abort();
    }
    ml_table_init(&t->t, &ml_alloc_libc);
    for (uint64_t k = 1; k <= n; k++) {
        check(ml_table_reserve(&t->t), "table reserve");
        (void)ml_table_insert(&t->t, mix(k), KEY(k), NULL);
    }
    return t;
}

int
mlb_table_lookup(mlb_table *t, uint64_t k)
{
    uint32_t id;
    return ml_table_find(&t->t, mix(k), KEY(k), never_equal, NULL, &id) == ML_OK;
}

void
mlb_table_delete_insert(mlb_table *t, uint64_t k)
{
    uint32_t id;
    check(ml_table_find(&t->t, mix(k), KEY(k), never_equal, NULL, &id), "table find");
    ml_table_remove(&t->t, id);
    check(ml_table_reserve(&t->t), "table reserve");
    (void)ml_table_insert(&t->t, mix(k), KEY(k), NULL);
}

void
mlb_table_free(mlb_table *t)
{
    ml_table_free(&t->t);
    free(t);
}

struct mlb_cache {
    ml_cache c;
    uint64_t next_key;
};

mlb_cache *
mlb_cache_new(int policy, uint32_t n)
{
    mlb_cache *c = malloc(sizeof(*c));
    if (c == NULL) {
        abort();
    }
    ml_cache_init(&c->c, &ml_alloc_libc, (ml_policy)policy, 0, 0, ml_limit_int((int64_t)n), SIZE_MAX);
    for (uint64_t k = 1; k <= n; k++) {
        check(ml_cache_reserve(&c->c), "cache reserve");
        (void)ml_cache_insert(&c->c, mix(k), KEY(k), NULL, ml_size_int(1), 0);
    }
    c->next_key = (uint64_t)n + 1;
    return c;
}

int
mlb_cache_hit(mlb_cache *c, uint64_t k)
{
    uint32_t id;
    ml_cache_prefetch(&c->c, mix(k));   /* as the binding's look-ups */
    if (ml_table_find(&c->c.t, mix(k), KEY(k), never_equal, NULL, &id) != ML_OK) {
        return 0;
    }
    ml_cache_touch(&c->c, id);
    return 1;
}

void
mlb_cache_evict_insert(mlb_cache *c)
{
    void *k, *v;
    uint32_t victim = ml_cache_victim(&c->c);
    ml_cache_remove(&c->c, victim, &k, &v);
    uint64_t key = c->next_key++;
    check(ml_cache_reserve(&c->c), "cache reserve");
    (void)ml_cache_insert(&c->c, mix(key), KEY(key), NULL, ml_size_int(1), 0);
}

void
mlb_cache_free(mlb_cache *c)
{
    ml_cache_free(&c->c);
    free(c);
}

struct mlb_wheel {
    ml_wheel w;
    uint32_t n;
    double span, now;
    uint64_t rng;
};

static double
uniform(mlb_wheel *w)   /* in [0, 1) */
{
    w->rng = mix(w->rng + 0x9e3779b97f4a7c15ULL);
    return (double)(w->rng >> 11) * 0x1.0p-53;
}

mlb_wheel *
mlb_wheel_new(uint32_t n, double span)
{
    mlb_wheel *w = malloc(sizeof(*w));
    if (w == NULL) {
        abort();
    }
    ml_wheel_init(&w->w);
    check(ml_wheel_reserve(&w->w, &ml_alloc_libc, n), "wheel reserve");
    w->n = n;
    w->span = span;
    w->now = 0.0;
    w->rng = 1;
    for (uint32_t id = 0; id < n; id++) {
        ml_wheel_schedule(&w->w, id, uniform(w) * span);
    }
    return w;
}

void
mlb_wheel_advance(mlb_wheel *w)
{
    uint32_t id;
    while ((id = ml_wheel_next_due(&w->w, w->now)) == ML_NIL) {
        w->now += w->span / w->n;   /* time goes on until something is due */
    }
    ml_wheel_cancel(&w->w, id);
    ml_wheel_schedule(&w->w, id, w->now + uniform(w) * w->span);
}

void
mlb_wheel_schedule_cancel(mlb_wheel *w, uint64_t k)
{
    uint32_t id = (uint32_t)(k % w->n);
    ml_wheel_schedule(&w->w, id, w->now + uniform(w) * w->span);
}

void
mlb_wheel_free(mlb_wheel *w)
{
    ml_wheel_free(&w->w, &ml_alloc_libc);
    free(w);
}

struct mlb_slots {
    ml_slots s;
    uint32_t ev;
};

static uint32_t
append(mlb_slots *s)
{
    check(ml_slots_reserve(&s->s), "slots reserve");
    return ml_slots_append(&s->s, s->ev, 0);
}

mlb_slots *
mlb_slots_new(uint32_t n)
{
    mlb_slots *s = malloc(sizeof(*s));
    if (s == NULL) {
        abort();
    }
    ml_slots_init(&s->s, &ml_alloc_libc);
    check(ml_slots_reserve(&s->s), "slots reserve");
    s->ev = ml_slots_add_event(&s->s, mix(1), KEY(1));
    for (uint32_t i = 0; i < n; i++) {
        (void)append(s);
    }
    return s;
}

void
mlb_slots_append_unlink(mlb_slots *s)
{
    uint32_t oldest = s->s.ev[s->ev].head;
    (void)append(s);
    (void)ml_slots_unlink(&s->s, oldest, 0);
}

void
mlb_slots_free(mlb_slots *s)
{
    ml_slots_free(&s->s);
    free(s);
}

struct mlb_sites {
    ml_sites s;
    uint32_t n, depth;
};

/* The stack of site k: frames whose identities look like real code addresses. */
static void
stack_of(uint64_t k, uint32_t depth, ml_frame *out)
{
    for (uint32_t d = 0; d < depth; d++) {
        out[d].code = (uintptr_t)(0x7f0000000000ULL + (mix(k * 64 + d) & 0xffffff0ULL));
        out[d].lasti = (int32_t)(mix(k + d) & 0xfff);
        out[d].unused = 0;
    }
}

mlb_sites *
mlb_sites_new(uint32_t n, uint32_t depth)
{
    mlb_sites *s = malloc(sizeof(*s));
    if (s == NULL || depth > ML_SITES_DEPTH_MAX) {
        abort();
    }
    check(ml_sites_init(&s->s, &ml_alloc_libc), "sites init");
    s->n = n;
    s->depth = depth;
    for (uint32_t i = 0; i < n; i++) {
        (void)mlb_sites_intern(s, i);
    }
    return s;
}

uint32_t
mlb_sites_intern(mlb_sites *s, uint64_t k)
{
    ml_frame frames[ML_SITES_DEPTH_MAX];
    stack_of(k % s->n, s->depth, frames);
    uint32_t id;
    int created;
    check(ml_sites_intern(&s->s, frames, s->depth, &id, &created), "sites intern");
    return id;
}

void
mlb_sites_free(mlb_sites *s)
{
    ml_sites_free(&s->s);
    free(s);
}
