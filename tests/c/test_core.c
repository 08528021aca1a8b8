/* test_core.c — unit tests of the pure-C core (no Python). Built with ASan + UBSan by
 * `make test-c`; prints "N passed, N failed" and exits non-zero on any failure. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cache.h"
#include "core/sites.h"
#include "core/slots.h"
#include "core/table.h"

static int g_passed, g_failed, g_current_failed;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            g_current_failed = 1;                                                \
        }                                                                        \
    } while (0)

#define RUN(fn)                                                                  \
    do {                                                                         \
        g_current_failed = 0;                                                    \
        fn();                                                                    \
        if (g_current_failed) { g_failed++; fprintf(stderr, "FAIL %s\n", #fn); } \
        else { g_passed++; }                                                     \
    } while (0)

/* ---- a counting allocator that fails the Nth allocation on demand ---- */
typedef struct { long live; long calls; long fail_at; } counting;

static void *c_malloc(void *ctx, size_t n) {
    counting *c = ctx;
    if (++c->calls == c->fail_at) return NULL;
    c->live++;
    return malloc(n);
}
static void *c_realloc(void *ctx, void *p, size_t n) {
    counting *c = ctx;
    if (++c->calls == c->fail_at) return NULL;
    if (p == NULL) c->live++;
    return realloc(p, n);
}
static void c_free(void *ctx, void *p) {
    counting *c = ctx;
    if (p != NULL) c->live--;
    free(p);
}

/* keys are small integers cast to pointers (never 0); equality compares them */
#define K(i) ((void *)(uintptr_t)(i))
static int eq_calls;
static int int_eq(void *ctx, void *a, void *b) { (void)ctx; eq_calls++; return a == b; }
/* hash that collides often, to exercise probing */
static uint64_t weak_hash(uintptr_t i) { return (uint64_t)(i % 7u); }

static uint32_t find(ml_cache *c, uintptr_t k) {
    uint32_t id = ML_NIL;
    int st = ml_table_find(&c->t, weak_hash(k), K(k), int_eq, NULL, &id);
    return st == ML_OK ? id : ML_NIL;
}

static void put(ml_cache *c, uintptr_t k, uintptr_t v) {
    if (ml_cache_reserve(c) != ML_OK) abort();
    ml_cache_insert(c, weak_hash(k), K(k), K(v), ml_size_int(1), 0);
}

static void test_table_insert_find_remove_many(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_INSERTION, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    for (uintptr_t k = 1; k <= 5000; k++) put(&c, k, k * 10);
    CHECK(c.t.used == 5000);
    for (uintptr_t k = 1; k <= 5000; k++) {
        uint32_t id = find(&c, k);
        CHECK(id != ML_NIL && c.t.ents[id].value == K(k * 10));
    }
    CHECK(find(&c, 5001) == ML_NIL);
    for (uintptr_t k = 1; k <= 5000; k += 2) {
        void *key, *val;
        ml_cache_remove(&c, find(&c, k), &key, &val);
        CHECK(key == K(k));
    }
    ML_CACHE_CHECK(&c);
    for (uintptr_t k = 1; k <= 5000; k++) CHECK((find(&c, k) != ML_NIL) == (k % 2 == 0));
    ml_cache_free(&c);
}

static void test_removed_ids_are_reused(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_INSERTION, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    for (uintptr_t k = 1; k <= 8; k++) put(&c, k, k);
    uint32_t cap = c.t.cap;
    for (int round = 0; round < 1000; round++) {
        void *key, *val;
        uint32_t victim = ml_cache_victim(&c);
        ml_cache_remove(&c, victim, &key, &val);
        put(&c, (uintptr_t)(100 + round), 1);
    }
    CHECK(c.t.cap == cap);
    CHECK(c.t.used == 8);
    ML_CACHE_CHECK(&c);
    ml_cache_free(&c);
}

static void test_lru_victim_is_least_recently_used(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_LRU, 0, 0, ml_limit_int(3), SIZE_MAX);
    put(&c, 1, 1);
    put(&c, 2, 2);
    put(&c, 3, 3);
    ml_cache_touch(&c, find(&c, 1));
    CHECK(c.t.ents[ml_cache_victim(&c)].key == K(2));
    ml_cache_replace(&c, find(&c, 2), K(20), ml_size_int(1), 0);
    CHECK(c.t.ents[ml_cache_victim(&c)].key == K(3));
    /* iteration stays in insertion order whatever the recency */
    uint32_t id = ml_cache_first(&c);
    CHECK(c.t.ents[id].key == K(1));
    id = ml_cache_next(&c, id);
    CHECK(c.t.ents[id].key == K(2));
    ML_CACHE_CHECK(&c);
    ml_cache_free(&c);
}

static void test_insertion_policy_ignores_hits(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_INSERTION, 0, 0, ml_limit_int(3), SIZE_MAX);
    put(&c, 1, 1);
    put(&c, 2, 2);
    ml_cache_touch(&c, find(&c, 1));
    ml_cache_replace(&c, find(&c, 1), K(5), ml_size_int(1), 0);
    CHECK(c.t.ents[ml_cache_victim(&c)].key == K(1));
    ml_cache_free(&c);
}

static void test_budget_units_and_bytes(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_LRU, 1, 1, ml_limit_int(10), 100);
    CHECK(ml_budget_admits(&c.budget, ml_size_int(10), 100));
    CHECK(!ml_budget_admits(&c.budget, ml_size_float(10.5), 0));
    CHECK(!ml_budget_admits(&c.budget, ml_size_int(0), 101));
    if (ml_cache_reserve(&c) != ML_OK) abort();
    uint32_t a = ml_cache_insert(&c, 1, K(1), K(1), ml_size_int(4), 60);
    CHECK(ml_cache_fits(&c, ML_NIL, ml_size_int(6), 40) == ML_FIT_YES);
    CHECK(ml_cache_fits(&c, ML_NIL, ml_size_int(6), 41) == ML_FIT_NO);
    CHECK(ml_cache_fits(&c, ML_NIL, ml_size_float(6.5), 1) == ML_FIT_NO);
    CHECK(ml_cache_fits(&c, a, ml_size_int(10), 100) == ML_FIT_YES);   /* the old entry counts out */
    ml_cache_replace(&c, a, K(2), ml_size_int(2), 10);
    CHECK(c.budget.units == 2 && c.budget.bytes == 10 && !c.budget.float_mode);
    void *k, *v;
    ml_cache_remove(&c, a, &k, &v);
    CHECK(c.budget.units == 0 && c.budget.bytes == 0);
    ml_cache_free(&c);
}

static void test_bytes_fit_never_overflows(void) {
    ml_budget b;
    ml_budget_init(&b, ml_limit_float(INFINITY), SIZE_MAX - 1);
    b.bytes = SIZE_MAX - 10;
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(1), 100) == ML_FIT_NO);
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(1), 9) == ML_FIT_YES);
    /* without a byte limit, a sum past SIZE_MAX - 1 is refused, never wrapped */
    ml_budget_init(&b, ml_limit_float(INFINITY), SIZE_MAX);
    b.bytes = SIZE_MAX - 10;
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(1), 9) == ML_FIT_YES);
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(1), 10) == ML_FIT_OVERFLOW);
}

/* Units are exact integers past 2**53, and refuse to pass INT64_MAX; comparisons with a
 * maxsize of any kind are exact. */
static void test_budget_units_are_exact(void) {
    const int64_t two53 = (int64_t)1 << 53;
    ml_budget b;
    ml_budget_init(&b, ml_limit_int(two53), SIZE_MAX);
    ml_budget_add(&b, ml_size_int(two53 - 1), 0);
    /* (2**53 - 1) + 2 rounds to 2**53 as doubles: exact, it is past maxsize */
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(2), 0) == ML_FIT_NO);
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(1), 0) == ML_FIT_YES);
    ml_budget_add(&b, ml_size_int(1), 0);
    ml_budget_sub(&b, ml_size_int(two53 - 1), 0);
    CHECK(b.units == 1 && !b.float_mode);
    /* a float maxsize of 2**53 + 0.5 is not a double, but 10.5 is: compared exactly */
    ml_budget_init(&b, ml_limit_float(10.5), SIZE_MAX);
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(10), 0) == ML_FIT_YES);
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(11), 0) == ML_FIT_NO);
    ml_budget_init(&b, ml_limit_float(9007199254740992.0), SIZE_MAX);   /* 2**53 as a float */
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(two53), 0) == ML_FIT_YES);
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(two53 + 1), 0) == ML_FIT_NO);
    /* past INT64_MAX: refused under an unbounded maxsize, "no room" under an int one */
    ml_budget_init(&b, ml_limit_float(INFINITY), SIZE_MAX);
    ml_budget_add(&b, ml_size_int(INT64_MAX - 1), 0);
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(1), 0) == ML_FIT_YES);
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(2), 0) == ML_FIT_OVERFLOW);
    ml_budget_init(&b, ml_limit_int(INT64_MAX), SIZE_MAX);
    ml_budget_add(&b, ml_size_int(INT64_MAX - 1), 0);
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(2), 0) == ML_FIT_NO);
    /* an int maxsize past int64, whose double rounded up (2**64 + 1 -> 2**64): a float
     * of 2**64 exceeds it, exactly */
    ml_budget_init(&b, ml_limit_big(18446744073709551616.0, 1, UINT64_MAX), SIZE_MAX);
    CHECK(ml_size_exceeds(ml_size_float(18446744073709551616.0), b.maxunits));
    CHECK(!ml_size_exceeds(ml_size_int(INT64_MAX), b.maxunits));
    ml_budget_init(&b, ml_limit_big(18446744073709551616.0, 0, UINT64_MAX), SIZE_MAX);   /* exactly 2**64 */
    CHECK(!ml_size_exceeds(ml_size_float(18446744073709551616.0), b.maxunits));
    /* maxsize 2**63 holding INT64_MAX: a sum past int64 but within maxsize is refused,
     * one past maxsize does not fit (the cache evicts first, as cachetools would) */
    ml_budget_init(&b, ml_limit_big(9223372036854775808.0, 0, UINT64_C(1) << 63), SIZE_MAX);
    ml_budget_add(&b, ml_size_int(INT64_MAX), 0);
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(1), 0) == ML_FIT_OVERFLOW);
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(2), 0) == ML_FIT_NO);
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(INT64_MAX), 0) == ML_FIT_NO);
    /* the same under a float maxsize of 2**63 */
    ml_budget_init(&b, ml_limit_float(9223372036854775808.0), SIZE_MAX);
    ml_budget_add(&b, ml_size_int(INT64_MAX), 0);
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(1), 0) == ML_FIT_OVERFLOW);
    CHECK(ml_budget_fits(&b, ml_size_int(0), 0, ml_size_int(2), 0) == ML_FIT_NO);
}

/* ml_budget_fits_new (the inline new-entry path) answers as ml_budget_fits, across the
 * limits' kinds and the counts' edges. */
static void test_budget_fits_new_agrees_with_fits(void) {
    const ml_limit limits[] = {ml_limit_int(0), ml_limit_int(10), ml_limit_int(INT64_MAX),
                               ml_limit_float(10.5), ml_limit_float(INFINITY),
                               ml_limit_big(9223372036854775808.0, 0, UINT64_C(1) << 63)};
    const size_t maxbytes[] = {0, 100, SIZE_MAX - 1, SIZE_MAX};
    const int64_t held[] = {0, 5, INT64_MAX - 1, INT64_MAX};
    const size_t held_bytes[] = {0, 50, SIZE_MAX - 2};
    const ml_size sizes[] = {ml_size_int(0), ml_size_int(1), ml_size_int(2), ml_size_int(INT64_MAX),
                             ml_size_float(0.5)};
    const size_t bytes[] = {0, 1, 100, SIZE_MAX - 1};
    for (size_t li = 0; li < sizeof limits / sizeof *limits; li++)
    for (size_t mi = 0; mi < sizeof maxbytes / sizeof *maxbytes; mi++)
    for (size_t hi = 0; hi < sizeof held / sizeof *held; hi++)
    for (size_t hb = 0; hb < sizeof held_bytes / sizeof *held_bytes; hb++)
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
    for (size_t bi = 0; bi < sizeof bytes / sizeof *bytes; bi++) {
        ml_budget b;
        ml_budget_init(&b, limits[li], maxbytes[mi]);
        b.units = held[hi];
        b.bytes = held_bytes[hb];
        CHECK(ml_budget_fits_new(&b, sizes[si], bytes[bi]) ==
              ml_budget_fits(&b, ml_size_int(0), 0, sizes[si], bytes[bi]));
    }
}

/* The first float size turns currsize into a float, updated as Python would. */
static void test_budget_float_mode_follows_python(void) {
    ml_budget b;
    ml_budget_init(&b, ml_limit_float(INFINITY), SIZE_MAX);
    ml_budget_add(&b, ml_size_int(3), 0);
    ml_budget_add(&b, ml_size_float(0.5), 0);
    CHECK(b.float_mode && b.funits == 3.5);
    ml_budget_sub(&b, ml_size_float(0.5), 0);
    CHECK(b.float_mode && b.funits == 3.0);
    ml_budget_replace(&b, ml_size_int(3), 0, ml_size_int(4), 0);
    CHECK(b.funits == 4.0);
    ml_budget_reset(&b);
    CHECK(!b.float_mode && b.units == 0);
}

/* An equality callback that removes entries while it runs: the probe must restart. */
static ml_cache *g_mut_cache;
static int mutating_eq(void *ctx, void *a, void *b) {
    (void)ctx;
    if (g_mut_cache->t.used > 1) {
        void *k, *v;
        uint32_t victim = ml_cache_victim(g_mut_cache);
        if (g_mut_cache->t.ents[victim].key != b) {
            ml_cache_remove(g_mut_cache, victim, &k, &v);
        }
    }
    return a == b;
}

static void test_find_restarts_when_eq_mutates(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_INSERTION, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    g_mut_cache = &c;
    for (uintptr_t k = 1; k <= 50; k++) put(&c, k, k);
    uint32_t id = ML_NIL;
    int st = ml_table_find(&c.t, weak_hash(49), K(49), mutating_eq, NULL, &id);
    CHECK(st == ML_OK && c.t.ents[id].key == K(49));
    ML_CACHE_CHECK(&c);
    ml_cache_free(&c);
}

/* An equality callback that inserts a new key (another hash) on every call: the probe goes
 * on over the same index and ends, where restarting on every insertion never would. */
static uintptr_t g_next_key;
static int inserting_eq(void *ctx, void *a, void *b) {
    (void)ctx;
    uintptr_t k = g_next_key++;
    if (ml_cache_reserve(g_mut_cache) != ML_OK) abort();
    ml_cache_insert(g_mut_cache, 1000003u * k + 3u, K(k), K(k), ml_size_int(1), 0);
    return a == b;
}

static void test_find_goes_on_when_eq_inserts_elsewhere(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_INSERTION, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    g_mut_cache = &c;
    for (uintptr_t k = 1; k <= 40; k++) put(&c, k * 7u, k);   /* all weak_hash 0 */
    g_next_key = 100000;
    uint32_t id = ML_NIL;
    int st = ml_table_find(&c.t, 0, K(99999), inserting_eq, NULL, &id);
    CHECK(st == ML_NOT_FOUND);
    /* each rebuild of the index restarts the probe: more comparisons than keys, but few */
    CHECK(g_next_key - 100000 >= 40 && g_next_key - 100000 < 40 * 12);
    ML_CACHE_CHECK(&c);
    ml_cache_free(&c);
}

/* An equality callback that replaces the compared entry's key by an equal new one, every
 * time: the probe restarts a bounded number of times, then reports ML_ERR_CHANGED. */
static int churning_eq(void *ctx, void *a, void *b) {
    (void)ctx; (void)b;
    uint32_t id = find(g_mut_cache, (uintptr_t)a);
    void *k, *v;
    ml_cache_remove(g_mut_cache, id, &k, &v);
    if (ml_cache_reserve(g_mut_cache) != ML_OK) abort();
    /* the same number under another pointer: K() of the next key of that weak hash */
    ml_cache_insert(g_mut_cache, weak_hash((uintptr_t)a), (void *)((uintptr_t)a + 7u), v,
                    ml_size_int(1), 0);
    return 0;
}

static void test_find_restarts_are_bounded(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_INSERTION, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    g_mut_cache = &c;
    put(&c, 1, 1);
    uint32_t id;
    CHECK(ml_table_find(&c.t, weak_hash(1), K(2), churning_eq, NULL, &id) == ML_ERR_CHANGED);
    CHECK(c.t.used == 1);
    ML_CACHE_CHECK(&c);
    ml_cache_free(&c);
}

/* Re-initialising a cache by exchanging engines moves both counters past every value
 * the old engine had; so does stealing the table. */
static void test_counters_never_go_back(void) {
    ml_cache c, fresh;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_LRU, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    for (uintptr_t k = 1; k <= 100; k++) put(&c, k, k);
    uint64_t version = c.t.version, layout = c.t.layout;
    CHECK(layout > 0);   /* the index was rebuilt while growing */
    ml_cache_init(&fresh, &ml_alloc_libc, ML_POLICY_LRU, 0, 0, ml_limit_int(5), SIZE_MAX);
    ml_cache_exchange(&c, &fresh);
    CHECK(c.t.version > version && c.t.layout > layout && c.t.used == 0);
    CHECK(fresh.t.used == 100);
    version = c.t.version;
    layout = c.t.layout;
    ml_table out;
    ml_cache_steal(&c, &out);
    CHECK(c.t.version > version && c.t.layout > layout);
    ml_table_free(&out);
    ml_cache_steal(&fresh, &out);   /* its keys are not pointers to release */
    ml_table_free(&out);
    ml_cache_free(&fresh);
    ml_cache_free(&c);
}

/* LFU counts stop at ML_LFU_MAX_COUNT instead of wrapping. */
static void test_lfu_count_saturates(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_LFU, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    if (ml_cache_reserve(&c) != ML_OK) abort();
    uint32_t a = ml_cache_insert(&c, 1, K(1), K(1), ml_size_int(1), 0);
    if (ml_cache_reserve(&c) != ML_OK) abort();
    uint32_t b = ml_cache_insert(&c, 2, K(2), K(2), ml_size_int(1), 0);
    c.lfu.b[c.lfu.bucket_of[a]].count = ML_LFU_MAX_COUNT;   /* as a restored state may say */
    ml_cache_touch(&c, b);
    ml_cache_touch(&c, a);
    ml_cache_touch(&c, a);
    CHECK(ml_lfu_count(&c.lfu, a) == ML_LFU_MAX_COUNT && ml_cache_victim(&c) == b);
    ml_cache_free(&c);
}

static int failing_eq(void *ctx, void *a, void *b) { (void)ctx; (void)a; (void)b; return -1; }

static void test_eq_error_is_reported(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_INSERTION, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    put(&c, 1, 1);
    put(&c, 8, 8);  /* same weak hash as 1 */
    uint32_t id;
    CHECK(ml_table_find(&c.t, weak_hash(15), K(15), failing_eq, NULL, &id) == ML_ERR_CALLBACK);
    /* identity is checked before the callback (key 1 is first on the probe path) */
    CHECK(ml_table_find(&c.t, weak_hash(1), K(1), failing_eq, NULL, &id) == ML_OK);
    ml_cache_free(&c);
}

static void test_reserve_failure_leaves_cache_unchanged(void) {
    /* LRU, and TinyLFU, whose reserve also grows the region bytes and the sketch */
    for (int tiny = 0; tiny <= 1; tiny++) {
        for (long fail_at = 1; fail_at <= 40; fail_at++) {
            counting cnt = {0, 0, fail_at};
            ml_alloc a = {c_malloc, c_realloc, c_free, &cnt};
            ml_cache c;
            ml_cache_init(&c, &a, tiny ? ML_POLICY_TINYLFU : ML_POLICY_LRU, 1, 1,
                          ml_limit_float(INFINITY), SIZE_MAX);
            uintptr_t stored = 0;
            for (uintptr_t k = 1; k <= 200; k++) {
                if (ml_cache_reserve(&c) != ML_OK) continue;
                ml_cache_insert(&c, weak_hash(k), K(k), K(k), ml_size_int(1), 1);
                stored++;
            }
            CHECK(c.t.used == stored);
            CHECK(!tiny || c.tlfu.sketch.nwords >= stored);
            ML_CACHE_CHECK(&c);
            if (tiny) {
                ml_table out;
                ml_cache_steal(&c, &out);   /* clear(): the history goes too */
                ml_table_free(&out);
                CHECK(c.tlfu.sketch.nwords == 0 && c.tlfu.window_frac == ML_TLFU_WINDOW_INITIAL);
            }
            ml_cache_free(&c);
            CHECK(cnt.live == 0);
        }
    }
}

static void test_steal_empties_in_one_step(void) {
    counting cnt = {0, 0, 0};
    ml_alloc a = {c_malloc, c_realloc, c_free, &cnt};
    ml_cache c;
    ml_cache_init(&c, &a, ML_POLICY_LRU, 0, 1, ml_limit_float(INFINITY), SIZE_MAX);
    for (uintptr_t k = 1; k <= 100; k++) {
        if (ml_cache_reserve(&c) != ML_OK) abort();
        ml_cache_insert(&c, weak_hash(k), K(k), K(k), ml_size_int(1), 3);
    }
    uint64_t v = c.t.version;
    ml_table out;
    ml_cache_steal(&c, &out);
    CHECK(c.t.used == 0 && c.budget.bytes == 0 && c.budget.units == 0);
    CHECK(c.t.version > v);
    CHECK(out.used == 100);
    ML_CACHE_CHECK(&c);
    put(&c, 5, 5);
    CHECK(find(&c, 5) != ML_NIL);
    ml_table_free(&out);
    ml_cache_free(&c);
    CHECK(cnt.live == 0);
}

static void test_sizeof_counts_owned_arrays(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_LRU, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    CHECK(ml_cache_sizeof(&c) == 0);
    put(&c, 1, 1);
    CHECK(ml_cache_sizeof(&c) == c.t.cap * sizeof(ml_entry) + (c.t.mask + 1) * sizeof(uint32_t));
    CHECK(sizeof(ml_entry) == 40);
    ml_cache_free(&c);
}


static uint32_t victim_key(ml_cache *c) {
    uint32_t v = ml_cache_victim(c);
    return v == ML_NIL ? 0 : (uint32_t)(uintptr_t)c->t.ents[v].key;
}

static void evict(ml_cache *c) {
    void *k, *v;
    ml_cache_remove(c, ml_cache_victim(c), &k, &v);
}

/* ---- a byte budget shared by several engines (sharedbudget.h) ---- */

/* Stores k into a shared engine as the binding does: its bytes taken from the budget first,
 * then inserted. @return 0 if the budget had no room (nothing changed). */
static int shared_put(ml_cache *c, uintptr_t k, size_t bytes) {
    if (!ml_shared_take(c->shared, 0, bytes)) return 0;
    if (ml_cache_reserve(c) != ML_OK) abort();
    ml_cache_insert(c, weak_hash(k), K(k), K(k), ml_size_int(1), bytes);
    return 1;
}

/* The member whose victim was accessed longest ago (the binding's rule), or NULL. */
static ml_cache *oldest_victim(ml_cache **members, int n) {
    ml_cache *best = NULL;
    uint64_t best_stamp = UINT64_MAX;
    for (int i = 0; i < n; i++) {
        uint32_t v = ml_cache_victim(members[i]);
        if (v != ML_NIL && ml_cache_stamp(members[i], v) < best_stamp) {
            best_stamp = ml_cache_stamp(members[i], v);
            best = members[i];
        }
    }
    return best;
}

static void test_shared_take_never_passes_the_limit(void) {
    ml_shared s;
    ml_shared_init(&s, 100);
    CHECK(ml_shared_take(&s, 0, 60) && ml_shared_bytes(&s) == 60);
    CHECK(!ml_shared_take(&s, 0, 41) && ml_shared_bytes(&s) == 60);   /* refused: unchanged */
    CHECK(ml_shared_fits(&s, 0, 40) && !ml_shared_fits(&s, 0, 41));
    CHECK(ml_shared_take(&s, 60, 100) && ml_shared_bytes(&s) == 100);   /* a replacement */
    CHECK(ml_shared_take(&s, 100, 5) && ml_shared_bytes(&s) == 5);      /* a decrease */
    ml_shared_set_limit(&s, 3);   /* lowered below the sum: only decreases fit */
    CHECK(ml_shared_limit(&s) == 3 && !ml_shared_fits(&s, 0, 0 + 1));
    CHECK(ml_shared_take(&s, 5, 4) && ml_shared_bytes(&s) == 4);
    CHECK(!ml_shared_take(&s, 0, 1));
    ml_shared_give(&s, 4);
    CHECK(ml_shared_bytes(&s) == 0 && ml_shared_take(&s, 0, 3) && !ml_shared_take(&s, 0, 1));
    ml_shared_set_limit(&s, SIZE_MAX);   /* never above maxbytes */
    CHECK(ml_shared_limit(&s) == 100);
    /* sums near SIZE_MAX never wrap */
    ml_shared_init(&s, SIZE_MAX - 1);
    CHECK(ml_shared_take(&s, 0, SIZE_MAX - 10));
    CHECK(!ml_shared_take(&s, 0, 10) && ml_shared_take(&s, 0, 9));
    CHECK(!ml_shared_take(&s, 0, SIZE_MAX - 1) && ml_shared_bytes(&s) == SIZE_MAX - 1);
}

static void test_shared_clock_stamps_every_access(void) {
    ml_shared s;
    ml_shared_init(&s, 1000);
    ml_cache a, b;
    ml_cache_init(&a, &ml_alloc_libc, ML_POLICY_LRU, 0, 1, ml_limit_float(INFINITY), SIZE_MAX);
    ml_cache_init(&b, &ml_alloc_libc, ML_POLICY_FIFO, 0, 1, ml_limit_float(INFINITY), SIZE_MAX);
    CHECK(ml_cache_share(&a, &s) == ML_OK && ml_cache_share(&b, &s) == ML_OK);
    CHECK(shared_put(&a, 1, 10) && shared_put(&b, 2, 10) && shared_put(&a, 3, 10));
    CHECK(ml_shared_bytes(&s) == 30 && a.budget.bytes == 20 && b.budget.bytes == 10);
    uint32_t id1 = find(&a, 1), id2 = find(&b, 2), id3 = find(&a, 3);
    CHECK(ml_cache_stamp(&a, id1) < ml_cache_stamp(&b, id2));
    CHECK(ml_cache_stamp(&b, id2) < ml_cache_stamp(&a, id3));
    ml_cache *m[2] = {&a, &b};
    CHECK(oldest_victim(m, 2) == &a);
    ml_cache_touch(&a, id1);                  /* 2 is now the oldest access */
    CHECK(oldest_victim(m, 2) == &b);
    ml_cache_touch(&b, id2);                  /* FIFO ignores the hit, the stamp does not */
    CHECK(victim_key(&b) == 2 && oldest_victim(m, 2) == &a && victim_key(&a) == 3);
    CHECK(ml_shared_take(&s, 10, 30));        /* a replacement is stamped too */
    ml_cache_replace(&a, id3, K(3), ml_size_int(1), 30);
    CHECK(victim_key(&a) == 1 && oldest_victim(m, 2) == &a);
    ML_CACHE_CHECK(&a);
    ML_CACHE_CHECK(&b);
    evict(&a);                                /* a removal gives its bytes back */
    CHECK(ml_shared_bytes(&s) == 40 && a.budget.bytes == 30);
    ml_table out;
    ml_cache_steal(&b, &out);                 /* so does emptying */
    ml_table_free(&out);
    CHECK(ml_shared_bytes(&s) == 30 && b.shared == &s);
    CHECK(shared_put(&b, 4, 5) && ml_shared_bytes(&s) == 35);   /* still shared after a steal */
    ML_CACHE_CHECK(&b);
    ml_cache_unshare(&a);                     /* leaving takes its bytes out, entries stay */
    CHECK(ml_shared_bytes(&s) == 5 && a.t.used == 1 && a.shared == NULL && a.stamps == NULL);
    ML_CACHE_CHECK(&a);
    ml_cache_unshare(&b);
    CHECK(ml_shared_bytes(&s) == 0);
    ml_cache_free(&a);
    ml_cache_free(&b);
}

/* Members that are all LRU evict in one global LRU order, whatever member holds what. */
static void test_shared_lru_members_evict_in_one_global_order(void) {
    ml_shared s;
    ml_shared_init(&s, 8 * 10);
    ml_cache c[3];
    ml_cache *m[3] = {&c[0], &c[1], &c[2]};
    for (int i = 0; i < 3; i++) {
        ml_cache_init(&c[i], &ml_alloc_libc, ML_POLICY_LRU, 0, 1, ml_limit_float(INFINITY), SIZE_MAX);
        CHECK(ml_cache_share(&c[i], &s) == ML_OK);
    }
    /* a model: keys in order of last access, oldest first */
    uintptr_t order[4000];
    int n = 0;
    uint32_t rnd = 12345;
    for (uintptr_t k = 1; k <= 2000; k++) {
        rnd = rnd * 1103515245u + 12345u;
        ml_cache *into = &c[(rnd >> 16) % 3];
        if ((rnd >> 8) % 4 == 0 && n > 0) {   /* a hit on a random key the model holds */
            int at = (int)((rnd >> 4) % (uint32_t)n);
            uintptr_t hk = order[at];
            for (int i = 0; i < 3; i++) {
                uint32_t id = find(&c[i], hk);
                if (id != ML_NIL) ml_cache_touch(&c[i], id);
            }
            memmove(&order[at], &order[at + 1], (size_t)(n - at - 1) * sizeof(uintptr_t));
            order[n - 1] = hk;
            continue;
        }
        while (!ml_shared_fits(&s, 0, 10)) {   /* evict by the budget's rule */
            ml_cache *v = oldest_victim(m, 3);
            CHECK(v != NULL && victim_key(v) == order[0]);
            evict(v);
            memmove(&order[0], &order[1], (size_t)(n - 1) * sizeof(uintptr_t));
            n--;
        }
        CHECK(shared_put(into, k, 10));
        order[n++] = k;
        CHECK(ml_shared_bytes(&s) <= 80);
    }
    CHECK(ml_shared_bytes(&s) == c[0].budget.bytes + c[1].budget.bytes + c[2].budget.bytes);
    for (int i = 0; i < 3; i++) {
        ML_CACHE_CHECK(&c[i]);
        ml_cache_unshare(&c[i]);
        ml_cache_free(&c[i]);
    }
    CHECK(ml_shared_bytes(&s) == 0);
}

/* An engine that joins with entries stamps them in its policy's order, its victim
 * oldest; a failed allocation leaves it unshared and unchanged. */
static void test_share_stamps_entries_in_policy_order(void) {
    for (long fail_at = 0; fail_at <= 1; fail_at++) {
        ml_shared s;
        ml_shared_init(&s, 1000);
        ml_cache c;
        ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_LFU, 0, 1, ml_limit_float(INFINITY), SIZE_MAX);
        for (uintptr_t k = 1; k <= 5; k++) {
            if (ml_cache_reserve(&c) != ML_OK) abort();
            ml_cache_insert(&c, weak_hash(k), K(k), K(k), ml_size_int(1), 7);
        }
        ml_cache_touch(&c, find(&c, 1));
        ml_cache_touch(&c, find(&c, 1));
        ml_cache_touch(&c, find(&c, 2));
        if (fail_at) {
            counting cnt = {0, 0, 1};
            ml_alloc a = {c_malloc, c_realloc, c_free, &cnt};
            const ml_alloc *keep = c.t.alloc;
            c.t.alloc = &a;
            CHECK(ml_cache_share(&c, &s) == ML_ERR_NOMEM);
            c.t.alloc = keep;
            CHECK(c.shared == NULL && c.stamps == NULL);
        }
        else {
            CHECK(ml_cache_share(&c, &s) == ML_OK && ml_shared_take(&s, 0, c.budget.bytes));
            uint64_t prev = 0;
            uintptr_t expect[5] = {3, 4, 5, 2, 1};   /* least used first, then least recent */
            for (int i = 0; i < 5; i++) {
                uint64_t st = ml_cache_stamp(&c, find(&c, expect[i]));
                CHECK(st > prev);
                prev = st;
            }
            CHECK(ml_shared_bytes(&s) == 35);
            ML_CACHE_CHECK(&c);
            CHECK(ml_cache_entry_overhead(&c) > sizeof(ml_entry) + sizeof(size_t));
        }
        ml_cache_unshare(&c);
        CHECK(ml_shared_bytes(&s) == 0);
        ml_cache_free(&c);
    }
}

static void test_fifo_ignores_hits_and_requeues_replacements(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_FIFO, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    put(&c, 1, 1);
    put(&c, 2, 2);
    put(&c, 3, 3);
    ml_cache_touch(&c, find(&c, 1));
    CHECK(victim_key(&c) == 1);
    ml_cache_replace(&c, find(&c, 1), K(10), ml_size_int(1), 0);
    CHECK(victim_key(&c) == 2);
    ML_CACHE_CHECK(&c);
    ml_cache_free(&c);
}

static void test_lfu_evicts_least_frequent_then_least_recent(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_LFU, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    for (uintptr_t k = 1; k <= 4; k++) put(&c, k, k);
    ml_cache_touch(&c, find(&c, 1));
    ml_cache_touch(&c, find(&c, 1));
    ml_cache_touch(&c, find(&c, 3));
    ml_cache_touch(&c, find(&c, 2));
    ML_CACHE_CHECK(&c);
    CHECK(victim_key(&c) == 4);          /* the only one used once */
    evict(&c);
    CHECK(victim_key(&c) == 3);          /* used twice, reached count 2 before 2 did */
    evict(&c);
    CHECK(victim_key(&c) == 2);
    evict(&c);
    CHECK(victim_key(&c) == 1 && ml_lfu_count(&c.lfu, find(&c, 1)) == 3);
    ML_CACHE_CHECK(&c);
    ml_cache_free(&c);
}

static void test_lfu_alone_in_its_bucket_relabels_it(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_LFU, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    put(&c, 1, 1);
    for (int i = 0; i < 1000; i++) ml_cache_touch(&c, find(&c, 1));
    CHECK(ml_lfu_count(&c.lfu, find(&c, 1)) == 1001);
    CHECK(c.lfu.top == 1);               /* never needed a second bucket */
    put(&c, 2, 2);
    CHECK(victim_key(&c) == 2);
    ML_CACHE_CHECK(&c);
    ml_cache_free(&c);
}

static void test_lfu_buckets_never_outnumber_entries(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_LFU, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    for (uintptr_t k = 1; k <= 64; k++) {
        put(&c, k, k);
        for (uintptr_t j = 0; j < k; j++) ml_cache_touch(&c, find(&c, k));  /* all counts differ */
    }
    CHECK(c.lfu.top <= c.t.used);
    for (int round = 0; round < 64; round++) {
        uint32_t id = find(&c, (uintptr_t)(round % 64 + 1));
        if (id != ML_NIL) ml_cache_touch(&c, id);
    }
    ML_CACHE_CHECK(&c);
    ml_cache_free(&c);
}

static void test_lfu_append_rebuilds_in_order(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_LFU, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    for (uintptr_t k = 1; k <= 3; k++) put(&c, k, k);
    ml_lfu_reset(&c.lfu);
    ml_lfu_append(&c.lfu, c.t.ents, find(&c, 2), 1);
    ml_lfu_append(&c.lfu, c.t.ents, find(&c, 3), 5);
    ml_lfu_append(&c.lfu, c.t.ents, find(&c, 1), 5);
    ML_CACHE_CHECK(&c);
    CHECK(victim_key(&c) == 2);
    evict(&c);
    CHECK(victim_key(&c) == 3);
    ml_cache_free(&c);
}

static void test_random_policy_keeps_a_dense_id_array(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_RANDOM, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    for (uintptr_t k = 1; k <= 10; k++) put(&c, k, k);
    CHECK(ml_cache_victim(&c) == ML_NIL);
    void *k, *v;
    ml_cache_remove(&c, find(&c, 3), &k, &v);     /* 10 moves into 3's place */
    CHECK(c.dense.n == 9 && c.t.ents[c.dense.ids[2]].key == K(10));
    ml_cache_remove(&c, find(&c, 10), &k, &v);
    ML_CACHE_CHECK(&c);
    ml_cache_free(&c);
}

/* ---- the timer wheel, against a brute-force model ---- */
#define WN 300
static double m_when[WN];
static uint64_t m_seq[WN];
static int m_on[WN];
static uint64_t m_clock;

static void m_schedule(ml_wheel *w, uint32_t id, double when) {
    ml_wheel_schedule(w, id, when);
    m_when[id] = when;
    m_seq[id] = m_clock++;
    m_on[id] = 1;
}

/* the model's answer: the due id with the smallest (deadline, set order), or ML_NIL */
static uint32_t m_next_due(double time) {
    uint32_t best = ML_NIL;
    for (uint32_t id = 0; id < WN; id++) {
        if (!m_on[id] || time < m_when[id]) continue;
        if (best == ML_NIL || m_when[id] < m_when[best] ||
            (m_when[id] == m_when[best] && m_seq[id] < m_seq[best])) {
            best = id;
        }
    }
    return best;
}

static uint32_t rng_state = 2463534242u;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* deadlines near the clock, equal ones, ±inf, -0.0, negative and huge values */
static double any_deadline(double clock) {
    switch (rnd() % 10) {
    case 0: return INFINITY;
    case 1: return -INFINITY;
    case 2: return (rnd() & 1) ? -0.0 : 0.0;
    case 3: return clock + (double)(rnd() % 4);          /* many equal deadlines */
    case 4: return clock - (double)(rnd() % 50);          /* already late */
    case 5: return (double)(int32_t)rnd() * 1e290;        /* far away, either sign */
    default: return clock + (double)(rnd() % 100000) / 7.0;
    }
}

static void test_wheel_yields_exactly_what_a_model_yields(void) {
    ml_wheel w;
    ml_wheel_init(&w);
    if (ml_wheel_reserve(&w, &ml_alloc_libc, WN) != ML_OK) abort();
    memset(m_on, 0, sizeof(m_on));
    double clock = 1000.0;
    long popped = 0;
    for (int step = 0; step < 200000 && !g_current_failed; step++) {
        uint32_t id = rnd() % WN, r = rnd() % 100;
        if (r < 45) {
            m_schedule(&w, id, any_deadline(clock));
        }
        else if (r < 60) {
            ml_wheel_cancel(&w, id);
            m_on[id] = 0;
        }
        else {
            /* the clock mostly advances, sometimes jumps back, rarely is NaN or ±inf */
            uint32_t how = rnd() % 100;
            double time = how < 80 ? (clock += (double)(rnd() % 2000) / 3.0)
                        : how < 95 ? (clock -= (double)(rnd() % 3000))
                        : how < 97 ? NAN : how < 99 ? INFINITY : -INFINITY;
            for (;;) {
                uint32_t got = ml_wheel_next_due(&w, time), want = m_next_due(time);
                CHECK(got == want);
                if (got != want || got == ML_NIL) break;
                ml_wheel_cancel(&w, got);
                m_on[got] = 0;
                popped++;
            }
        }
        if (step % 997 == 0) {
            uint32_t on = 0;
            for (uint32_t i = 0; i < WN; i++) on += (uint32_t)m_on[i];
            CHECK(ml_wheel_check(&w) == on);
        }
    }
    CHECK(popped > 10000);
    ml_wheel_free(&w, &ml_alloc_libc);
}

static void test_wheel_equal_deadlines_come_out_in_set_order(void) {
    ml_wheel w;
    ml_wheel_init(&w);
    if (ml_wheel_reserve(&w, &ml_alloc_libc, 64) != ML_OK) abort();
    uint32_t order[] = {9, 3, 40, 1, 22, 7, 63, 0};
    ml_wheel_schedule(&w, 50, 1.0);   /* keeps `now` low: the 5.0s go through cascades */
    for (int i = 0; i < 8; i++) ml_wheel_schedule(&w, order[i], 5.0);
    ml_wheel_schedule(&w, 3, 5.0);   /* set again: now the newest */
    CHECK(ml_wheel_next_due(&w, 4.0) == 50);
    ml_wheel_cancel(&w, 50);
    CHECK(ml_wheel_next_due(&w, 4.999) == ML_NIL);
    uint32_t expect[] = {9, 40, 1, 22, 7, 63, 0, 3};
    for (int i = 0; i < 8; i++) {
        CHECK(ml_wheel_next_due(&w, 5.0) == expect[i]);
        ml_wheel_cancel(&w, expect[i]);
    }
    CHECK(ml_wheel_next_due(&w, INFINITY) == ML_NIL);
    ml_wheel_free(&w, &ml_alloc_libc);
}

/* 100 000 random deadlines, drained by a clock in 1 000 steps: each entry is filed once,
 * cascaded at most 10 times (a visit and a move each) and unlinked once. With
 * clock_first == 0 they are filed before the wheel has seen any time (an unpickled
 * cache): no deadline below the first one filed may count as late (sorted insertion). */
static void wheel_work_is_constant_per_entry(int clock_first) {
    enum { N = 100000 };
    ml_wheel w;
    ml_wheel_init(&w);
    if (ml_wheel_reserve(&w, &ml_alloc_libc, N) != ML_OK) abort();
    if (clock_first) CHECK(ml_wheel_next_due(&w, 0.0) == ML_NIL);
    for (uint32_t id = 0; id < N; id++) ml_wheel_schedule(&w, id, 1.0 + (double)(rnd() % 1000000) / 1000.0);
    uint32_t n = 0;
    for (double time = 0.0; time <= 1001.0; time += 1.0) {
        double prev = -INFINITY;
        for (uint32_t id; (id = ml_wheel_next_due(&w, time)) != ML_NIL; n++) {
            CHECK(!(w.deadline[id] < prev) && !(time < w.deadline[id]));
            prev = w.deadline[id];
            ml_wheel_cancel(&w, id);
        }
    }
    CHECK(n == N);
    printf("  wheel work per entry: %.2f\n", (double)w.touched / N);
    CHECK(w.touched <= 22u * N);   /* filed + 10 cascades (visit, move) + unlinked */
    ml_wheel_free(&w, &ml_alloc_libc);
}

static void test_wheel_work_is_constant_per_entry(void) {
    wheel_work_is_constant_per_entry(1);
}

static void test_wheel_work_is_constant_per_entry_filed_before_any_clock(void) {
    wheel_work_is_constant_per_entry(0);
}

static void test_deadlines_follow_entries_out(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_LRU, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    ml_cache_enable_deadlines(&c);
    for (uintptr_t k = 1; k <= 20; k++) {
        put(&c, k, k);
        ml_cache_set_deadline(&c, find(&c, k), (double)(100 - k));
    }
    ML_CACHE_CHECK(&c);
    CHECK(ml_cache_next_expired(&c, 79.0) == ML_NIL);
    CHECK(c.t.ents[ml_cache_next_expired(&c, 80.0)].key == K(20));
    void *k, *v;
    ml_cache_remove(&c, find(&c, 20), &k, &v);
    CHECK(c.t.ents[ml_cache_next_expired(&c, INFINITY)].key == K(19));
    ml_cache_set_deadline(&c, find(&c, 3), 1.0);
    CHECK(c.t.ents[ml_cache_next_expired(&c, 1.0)].key == K(3));
    ML_CACHE_CHECK(&c);
    ml_table out;
    ml_cache_steal(&c, &out);
    CHECK(ml_cache_next_expired(&c, INFINITY) == ML_NIL);
    ml_table_free(&out);
    ml_cache_free(&c);
}

/* ---- listener slots ---- */
/* identity: the slot's id (stored as id + 1) against the queried id */
static int slot_eq(void *ctx, void *stored, void *query) {
    (void)ctx;
    return (uintptr_t)stored - 1 == (uintptr_t)query;
}

static uint32_t add_slot(ml_slots *s, uintptr_t event) {
    uint32_t ev = ML_NIL;
    if (ml_slots_reserve(s) != ML_OK) abort();
    if (ml_table_find(&s->events, weak_hash(event), K(event), int_eq, NULL, &ev) != ML_OK) {
        ev = ml_slots_add_event(s, weak_hash(event), K(event));
    }
    uint32_t id = ml_slots_append(s, ev, 0);
    s->s[id].hash = id;   /* the listener's identity, as the tests see it */
    ml_slots_index(s, id);
    return id;
}

static void test_slots_unlink_at_once_outside_emits(void) {
    ml_slots s;
    ml_slots_init(&s, &ml_alloc_libc);
    uint32_t a = add_slot(&s, 1), b = add_slot(&s, 1);
    uint32_t ev = s.s[a].event;
    CHECK(ml_slots_unlink(&s, a, 0) == 1 && !ml_slots_event_gone(&s, ev));
    CHECK(s.ev[ev].head == b && s.ev[ev].live == 1);
    CHECK(ml_slots_unlink(&s, b, 0) == 1 && ml_slots_event_gone(&s, ev));
    uint32_t c = add_slot(&s, 2), found = ML_NIL;
    CHECK(c == b && s.s[c].gen == 1);   /* reused, with a new generation */
    CHECK(ml_slots_find(&s, s.s[c].event, c, slot_eq, NULL, K(c), &found) == ML_OK &&
          found == c);
    CHECK(ml_slots_find(&s, s.s[c].event, a, slot_eq, NULL, K(a), &found) == ML_NOT_FOUND);
    ml_slots_check(&s);
    ml_slots_free(&s);
}

static void test_slots_tombstones_keep_the_snapshot_until_compaction(void) {
    ml_slots s;
    ml_slots_init(&s, &ml_alloc_libc);
    uint32_t a = add_slot(&s, 1), b = add_slot(&s, 1);
    s.s[b].flags |= ML_SLOT_ONCE;
    s.emitting = 1;
    uint64_t start = s.clock;
    CHECK(ml_slots_unlink(&s, a, 0) == 0);         /* removed during the emit: still runs */
    CHECK(ml_slots_unlink(&s, b, 0) == 0);         /* a once listener removed: does not */
    uint32_t c = add_slot(&s, 1);                  /* added during the emit: does not */
    CHECK(ml_slots_runs(&s.s[a], start) && !ml_slots_runs(&s.s[b], start));
    CHECK(!ml_slots_runs(&s.s[c], start));
    CHECK(!ml_slots_runs(&s.s[a], s.clock));       /* a nested emit starting now: gone */
    CHECK(ml_slots_pop_zombie(&s) == ML_NIL);      /* not while emitting */
    ml_slots_check(&s);
    s.emitting = 0;
    uint32_t n = 0;
    while (ml_slots_pop_zombie(&s) != ML_NIL) n++;
    CHECK(n == 2 && s.used == 1 && s.ev[s.s[c].event].head == c);
    ml_slots_check(&s);
    ml_slots_free(&s);
}


/* A reservation may rebuild an index: both versions move on, so that a probe suspended in
 * an equality callback restarts; stealing (tp_clear) moves the clock and versions on. */
static void test_slots_counters_only_move_forward(void) {
    ml_slots s, old;
    ml_slots_init(&s, &ml_alloc_libc);
    for (uintptr_t e = 1; e <= 10; e++) add_slot(&s, e);
    uint64_t ev_version = s.events.version, ix_version = s.index.version, clock = s.clock;
    CHECK(ml_slots_reserve(&s) == ML_OK);
    CHECK(s.events.version > ev_version && s.index.version > ix_version);
    ev_version = s.events.version;
    ix_version = s.index.version;
    ml_slots_steal(&s, &old);
    CHECK(s.used == 0 && s.events.used == 0 && old.used == 10);
    CHECK(s.clock > clock && s.events.version > ev_version && s.index.version > ix_version);
    ml_slots_check(&s);
    ml_slots_free(&old);
    ml_slots_free(&s);
}

/* ---- sites ---- */
#ifndef NDEBUG
#define SITES_CHECK(s) ml_sites_check(s)
#else
#define SITES_CHECK(s) ((void)0)
#endif

static void test_sites_equal_stacks_share_one_site(void) {
    ml_sites s;
    CHECK(ml_sites_init(&s, &ml_alloc_libc) == ML_OK);
    uint32_t id0;
    CHECK(s.n == 1 && ml_sites_find(&s, NULL, 0, &id0) == ML_OK && id0 == 0);   /* frameless */
    ml_frame a[3] = {{0x1000, 4, 0}, {0x2000, 12, 0}, {0x3000, 0, 0}};
    ml_frame b[3] = {{0x1000, 4, 0}, {0x2000, 14, 0}, {0x3000, 0, 0}};
    uint32_t ida, ida2, idb, idshort, found;
    int created;
    CHECK(ml_sites_find(&s, a, 3, &found) == ML_NOT_FOUND);
    CHECK(ml_sites_intern(&s, a, 3, &ida, &created) == ML_OK && created == 1);
    CHECK(ml_sites_intern(&s, a, 3, &ida2, &created) == ML_OK && created == 0 && ida2 == ida);
    CHECK(ml_sites_intern(&s, b, 3, &idb, &created) == ML_OK && created == 1 && idb != ida);
    CHECK(ml_sites_intern(&s, a, 2, &idshort, &created) == ML_OK && created == 1);
    CHECK(idshort != ida && idshort != idb && s.n == 4);
    CHECK(ml_sites_find(&s, b, 3, &found) == ML_OK && found == idb);
    SITES_CHECK(&s);
    ml_sites_free(&s);
}

static void test_sites_several_keys_file_under_one_site(void) {
    /* the binding renders a new key and files it under the site of the same text */
    ml_sites s;
    CHECK(ml_sites_init(&s, &ml_alloc_libc) == ML_OK);
    ml_frame call[1] = {{0x1000, 40, 0}}, specialized[1] = {{0x1000, 38, 0}};
    uint32_t site, found;
    CHECK(ml_sites_new(&s, &site) == ML_OK && site == 1);
    CHECK(ml_sites_add_key(&s, call, 1, site) == ML_OK);
    CHECK(ml_sites_add_key(&s, specialized, 1, site) == ML_OK);
    CHECK(ml_sites_add_key(&s, specialized, 1, 0) == ML_OK);   /* filed already: kept */
    CHECK(ml_sites_find(&s, call, 1, &found) == ML_OK && found == site);
    CHECK(ml_sites_find(&s, specialized, 1, &found) == ML_OK && found == site);
    CHECK(s.n == 2 && s.nkeys == 3);
    SITES_CHECK(&s);
    ml_sites_free(&s);
}

static void test_sites_survive_growth(void) {
    ml_sites s;
    CHECK(ml_sites_init(&s, &ml_alloc_libc) == ML_OK);
    enum { N = 5000 };
    static uint32_t ids[N];
    for (uint32_t i = 0; i < N; i++) {
        ml_frame f[2] = {{0x10 + (uintptr_t)(i % 97) * 16, (int32_t)i, 0}, {0x99, 1, 0}};
        int created;
        CHECK(ml_sites_intern(&s, f, 1 + i % 2, &ids[i], &created) == ML_OK && created);
    }
    int all_found = 1;
    for (uint32_t i = 0; i < N; i++) {
        ml_frame f[2] = {{0x10 + (uintptr_t)(i % 97) * 16, (int32_t)i, 0}, {0x99, 1, 0}};
        uint32_t id;
        int created;
        if (ml_sites_intern(&s, f, 1 + i % 2, &id, &created) != ML_OK || created || id != ids[i])
            all_found = 0;
    }
    CHECK(all_found && s.n == N + 1);
    CHECK(ml_sites_sizeof(&s) >= (size_t)s.n * sizeof(ml_site));
    SITES_CHECK(&s);
    ml_sites_free(&s);
}

static void test_sites_forget_a_dead_code_object(void) {
    /* keys with a frame of a dead code object stop matching; sites and counters stay; a
       new code object at the same address makes new keys; forgotten keys are dropped
       when they are more than half, and every live key is still found */
    ml_sites s;
    CHECK(ml_sites_init(&s, &ml_alloc_libc) == ML_OK);
    enum { N = 400 };
    static uint32_t ids[N];
    for (uint32_t i = 0; i < N; i++) {   /* code (i % 4) innermost, a shared caller */
        ml_frame f[2] = {{0x1000 + (uintptr_t)(i % 4) * 64, (int32_t)i, 0}, {0x9000, 2, 0}};
        int created;
        CHECK(ml_sites_intern(&s, f, 2, &ids[i], &created) == ML_OK && created);
        ml_sites_get(&s, ids[i])->leaked = i;
    }
    CHECK(ml_sites_forget_code(&s, 0x1000) == N / 4);
    SITES_CHECK(&s);
    CHECK(ml_sites_forget_code(&s, 0x1000) == 0);                 /* once */
    CHECK(ml_sites_forget_code(&s, 0x1040) == N / 4 && s.ndead == N / 2);
    CHECK(ml_sites_forget_code(&s, 0x1080) == N / 4 && s.ndead == 0);   /* compacted */
    SITES_CHECK(&s);
    int ok = 1;
    for (uint32_t i = 0; i < N; i++) {
        ml_frame f[2] = {{0x1000 + (uintptr_t)(i % 4) * 64, (int32_t)i, 0}, {0x9000, 2, 0}};
        uint32_t found;
        int st = ml_sites_find(&s, f, 2, &found);
        if (i % 4 < 3 ? st != ML_NOT_FOUND : (st != ML_OK || found != ids[i]))
            ok = 0;
        if (ml_sites_get(&s, ids[i])->leaked != i)
            ok = 0;
    }
    CHECK(ok && s.n == N + 1 && s.nkeys == N / 4 + 1);
    ml_frame again[2] = {{0x1000, 0, 0}, {0x9000, 2, 0}};   /* a new code at 0x1000 */
    uint32_t site;
    int created;
    CHECK(ml_sites_intern(&s, again, 2, &site, &created) == ML_OK && created && site == N + 1);
    CHECK(ml_sites_forget_code(&s, 0x9000) == N / 4 + 1);   /* the caller of them all */
    SITES_CHECK(&s);
    ml_sites_free(&s);
}

static void test_sites_failed_allocation_leaves_them_unchanged(void) {
    for (long fail_at = 1; fail_at < 60; fail_at++) {
        counting c = {0, 0, fail_at};
        ml_alloc a = {c_malloc, c_realloc, c_free, &c};
        ml_sites s;
        if (ml_sites_init(&s, &a) != ML_OK) {
            ml_sites_free(&s);
            CHECK(c.live == 0);
            continue;
        }
        uint32_t before = 0, beforekeys = 0, id;
        int created, ok = 1;
        for (uint32_t i = 0; i < 40 && ok; i++) {
            ml_frame f = {0x40 + (uintptr_t)i * 8, 2, 0};
            before = s.n;
            beforekeys = s.nkeys;
            int st;
            if (i % 2) {
                st = ml_sites_intern(&s, &f, 1, &id, &created);
            } else if ((st = ml_sites_new(&s, &id)) == ML_OK) {
                st = ml_sites_add_key(&s, &f, 1, id);
            }
            if (st != ML_OK) {
                CHECK(st == ML_ERR_NOMEM && s.nkeys == beforekeys);
                CHECK(s.n == before || (i % 2 == 0 && s.n == before + 1));
                ok = 0;
            }
        }
        SITES_CHECK(&s);
        c.fail_at = -1;
        for (uint32_t i = 0; i < s.nkeys - 1; i++) {   /* what was filed is still found */
            ml_frame f = {0x40 + (uintptr_t)i * 8, 2, 0};
            CHECK(ml_sites_find(&s, &f, 1, &id) == ML_OK && id == i + 1);
        }
        ml_sites_free(&s);
        CHECK(c.live == 0);
    }
}

/* ---- W-TinyLFU: the sketch, the regions, the admission, the climber ---- */

static void test_sketch_counts_saturate_halve_and_grow(void) {
    ml_sketch s;
    ml_sketch_init(&s, ML_SKETCH_SEED);
    CHECK(ml_sketch_frequency(&s, 1) == 0);
    ml_sketch_increment(&s, 1);                  /* no table yet: ignored */
    CHECK(s.additions == 0);
    CHECK(ml_sketch_reserve(&s, &ml_alloc_libc, 5) == ML_OK && s.nwords == 8);
    for (int i = 0; i < 20; i++) ml_sketch_increment(&s, 1);
    CHECK(ml_sketch_frequency(&s, 1) == 15 && s.additions == 15);   /* saturated at 15 */
    CHECK(ml_sketch_frequency(&s, 2) == 0);
    ml_sketch_increment(&s, 2);
    CHECK(ml_sketch_frequency(&s, 2) == 1);
    /* a failed growth changes nothing; a larger table starts at zero */
    counting cnt = {0, 0, 1};
    ml_alloc failing = {c_malloc, c_realloc, c_free, &cnt};
    CHECK(ml_sketch_reserve(&s, &failing, 64) == ML_ERR_NOMEM && s.nwords == 8);
    CHECK(ml_sketch_frequency(&s, 1) == 15 && ml_sketch_frequency(&s, 2) == 1 && s.additions == 16);
    CHECK(ml_sketch_reserve(&s, &ml_alloc_libc, 33) == ML_OK && s.nwords == 64);
    CHECK(ml_sketch_frequency(&s, 1) == 0 && ml_sketch_frequency(&s, 2) == 0 && s.additions == 0);
    CHECK(ml_sketch_sample(&s) == 7 * 64);
    ml_sketch_raise(&s, 1, 9);                   /* carrying an estimate over */
    ml_sketch_raise(&s, 1, 3);                   /* never lowers one */
    CHECK(ml_sketch_frequency(&s, 1) == 9 && s.additions == 0);
    for (int i = 0; i < 20; i++) ml_sketch_increment(&s, 1);
    CHECK(ml_sketch_frequency(&s, 1) == 15);
    /* halving: once `additions` reaches the sample, every counter is halved */
    uint64_t h = 1000, before;
    do {                                         /* other hashes, until the halving */
        before = s.additions;
        ml_sketch_increment(&s, h++);
    } while (s.additions >= before && h < 100000);
    CHECK(before == 7 * 64 - 1 && s.additions == 7 * 32);
    CHECK(ml_sketch_frequency(&s, 1) == 7);
    ml_sketch_check(&s);
    ml_sketch_free(&s, &ml_alloc_libc);
    CHECK(s.nwords == 0 && s.words == NULL);
}

/* TinyLFU caches in these tests store key k under hash k (the sketch mixes it) */
static void tput(ml_cache *c, uintptr_t k) {
    if (ml_cache_reserve(c) != ML_OK) abort();
    ml_cache_insert(c, (uint64_t)k, K(k), K(k), ml_size_int(1), 0);
}
static uint32_t tfind(ml_cache *c, uintptr_t k) {
    uint32_t id = ML_NIL;
    int st = ml_table_find(&c->t, (uint64_t)k, K(k), int_eq, NULL, &id);
    return st == ML_OK ? id : ML_NIL;
}

static void test_tlfu_new_keys_enter_the_window_then_probation(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_TINYLFU, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    CHECK(ml_cache_victim(&c) == ML_NIL);
    /* the sketch sized for 100 entries at once: it does not grow (and start again at
     * zero) while they are stored */
    CHECK(ml_tlfu_reserve(&c.tlfu, &ml_alloc_libc, 0, 100, c.t.ents, c.t.top) == ML_OK &&
          c.tlfu.sketch.nwords == 256);
    for (uintptr_t k = 1; k <= 100; k++) {
        tput(&c, k);
        CHECK(c.tlfu.region[ML_TLFU_WINDOW].tail == tfind(&c, k));   /* present, in the window */
    }
    ML_CACHE_CHECK(&c);
    /* 1 % of 100 entries: the window holds the newest, probation the rest, oldest first */
    CHECK(c.tlfu.count[ML_TLFU_WINDOW] == 1 && c.tlfu.count[ML_TLFU_PROBATION] == 99);
    CHECK(c.tlfu.region[ML_TLFU_PROBATION].head == tfind(&c, 1));
    /* a probation hit is promoted to protected */
    ml_cache_touch(&c, tfind(&c, 5));
    CHECK(c.tlfu.count[ML_TLFU_PROTECTED] == 1 && c.tlfu.region_of[tfind(&c, 5)] == ML_TLFU_PROTECTED);
    /* candidate 100 (window) against victim 1 (probation), both counted once: a tie
     * evicts the candidate */
    CHECK(victim_key(&c) == 100);
    CHECK(victim_key(&c) == 100);                   /* a pure function of the state */
    ml_cache_touch(&c, tfind(&c, 100));          /* now counted more often than 1 */
    CHECK(victim_key(&c) == 1);
    evict(&c);
    CHECK(victim_key(&c) == 2);                     /* the candidate wins again: next in probation */
    /* probation empty: the victim comes from protected */
    while (c.tlfu.count[ML_TLFU_PROBATION] > 0) {
        void *k, *v;
        ml_cache_remove(&c, c.tlfu.region[ML_TLFU_PROBATION].head, &k, &v);
    }
    CHECK(victim_key(&c) == 5 || victim_key(&c) == 100);
    ML_CACHE_CHECK(&c);
    ml_cache_free(&c);
}

static void test_tlfu_sketch_growth_carries_the_held_keys_estimates(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_TINYLFU, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    for (uintptr_t k = 1; k <= 4; k++) tput(&c, k);
    for (int i = 0; i < 5; i++) ml_cache_touch(&c, tfind(&c, 1));
    CHECK(c.tlfu.sketch.nwords == 8 && ml_sketch_frequency(&c.tlfu.sketch, 1) == 6);
    void *k, *v;
    ml_cache_remove(&c, tfind(&c, 2), &k, &v);   /* gone: its estimate is not carried */
    tput(&c, 5);
    tput(&c, 6);                                /* 5 live: 10 words wanted, 16 made */
    CHECK(c.tlfu.sketch.nwords == 16);
    CHECK(ml_sketch_frequency(&c.tlfu.sketch, 1) == 6 && ml_sketch_frequency(&c.tlfu.sketch, 3) == 1);
    CHECK(ml_sketch_frequency(&c.tlfu.sketch, 2) == 0);
    ML_CACHE_CHECK(&c);
    ml_cache_free(&c);
}

static void test_tlfu_protected_overflow_is_demoted_at_the_next_insertion(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_TINYLFU, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    for (uintptr_t k = 1; k <= 10; k++) tput(&c, k);
    /* 10 entries: window 1, protected at most floor(0.8 * 9) = 7 */
    CHECK(ml_tlfu_window_max(&c.tlfu, 10) == 1 && ml_tlfu_protected_max(&c.tlfu, 10) == 7);
    for (uintptr_t k = 1; k <= 9; k++) ml_cache_touch(&c, tfind(&c, k));
    /* hits only promote: protected is over its maximum until the next insertion, and the
     * victim of an empty probation is protected's least recent entry, 1, which is also
     * where the demotions would put it */
    CHECK(c.tlfu.count[ML_TLFU_PROTECTED] == 9 && c.tlfu.count[ML_TLFU_PROBATION] == 0);
    ml_cache_touch(&c, tfind(&c, 10));                 /* the window's 10 counted more */
    ml_cache_touch(&c, tfind(&c, 10));
    CHECK(victim_key(&c) == 1);
    ML_CACHE_CHECK(&c);
    tput(&c, 11);
    /* 11 entries: protected at most floor(0.8 * 10) = 8, so 1 is demoted first; then the
     * window's overflow, 10 */
    CHECK(c.tlfu.count[ML_TLFU_PROTECTED] == 8 && c.tlfu.count[ML_TLFU_PROBATION] == 2);
    CHECK(c.tlfu.region[ML_TLFU_PROBATION].head == tfind(&c, 1));
    CHECK(c.tlfu.region[ML_TLFU_PROBATION].tail == tfind(&c, 10));
    CHECK(victim_key(&c) == 11);                       /* the new candidate, counted once */
    ML_CACHE_CHECK(&c);
    ml_cache_free(&c);
}

static void test_tlfu_climber_follows_the_hit_rate(void) {
    ml_cache c;
    ml_cache_init(&c, &ml_alloc_libc, ML_POLICY_TINYLFU, 0, 0, ml_limit_float(INFINITY), SIZE_MAX);
    for (uintptr_t k = 1; k <= 8; k++) tput(&c, k);          /* 8 misses */
    CHECK(c.tlfu.sketch.nwords == 16 && ml_sketch_sample(&c.tlfu.sketch) == 112);
    for (int i = 0; i < 104; i++) ml_cache_touch(&c, tfind(&c, 1 + (uintptr_t)i % 8));
    /* rate 104 / 112 against 0: better, so the first step (shrink) is taken; a change
     * of 5 points or more restarts the step */
    CHECK(c.tlfu.window_frac == 0.0 && c.tlfu.step == -ML_TLFU_STEP && c.tlfu.prev_rate == 104.0 / 112.0);
    CHECK(c.tlfu.hits == 0 && c.tlfu.misses == 0 && c.tlfu.count[ML_TLFU_WINDOW] == 1);
    for (uintptr_t k = 100; k < 156; k++) {                  /* 56 misses, 56 hits: worse */
        evict(&c);
        tput(&c, k);
        ml_cache_touch(&c, tfind(&c, k));
    }
    CHECK(c.tlfu.window_frac == ML_TLFU_STEP && c.tlfu.step == ML_TLFU_STEP);
    for (uintptr_t k = 200; k < 256; k++) {                  /* the same rate: decay */
        evict(&c);
        tput(&c, k);
        ml_cache_touch(&c, tfind(&c, k));
    }
    CHECK(c.tlfu.window_frac == 2 * ML_TLFU_STEP && c.tlfu.step == ML_TLFU_STEP_DECAY * ML_TLFU_STEP);
    ML_CACHE_CHECK(&c);
    /* a larger window takes probation's least recent entries */
    ml_tlfu_set_climber(&c.tlfu, 0.5, 0.0, 0.5, 0, 0);
    uint32_t head = c.tlfu.region[ML_TLFU_PROBATION].head;
    for (int i = 0; i < 112; i++) ml_cache_touch(&c, tfind(&c, 255));
    CHECK(c.tlfu.count[ML_TLFU_WINDOW] == 4 && c.tlfu.region_of[head] == ML_TLFU_WINDOW);
    ML_CACHE_CHECK(&c);
    ml_cache_free(&c);
}

int main(void) {
    RUN(test_table_insert_find_remove_many);
    RUN(test_removed_ids_are_reused);
    RUN(test_lru_victim_is_least_recently_used);
    RUN(test_insertion_policy_ignores_hits);
    RUN(test_budget_units_and_bytes);
    RUN(test_budget_units_are_exact);
    RUN(test_budget_fits_new_agrees_with_fits);
    RUN(test_budget_float_mode_follows_python);
    RUN(test_bytes_fit_never_overflows);
    RUN(test_find_restarts_when_eq_mutates);
    RUN(test_find_goes_on_when_eq_inserts_elsewhere);
    RUN(test_find_restarts_are_bounded);
    RUN(test_counters_never_go_back);
    RUN(test_lfu_count_saturates);
    RUN(test_eq_error_is_reported);
    RUN(test_reserve_failure_leaves_cache_unchanged);
    RUN(test_steal_empties_in_one_step);
    RUN(test_sizeof_counts_owned_arrays);
    RUN(test_fifo_ignores_hits_and_requeues_replacements);
    RUN(test_lfu_evicts_least_frequent_then_least_recent);
    RUN(test_lfu_alone_in_its_bucket_relabels_it);
    RUN(test_lfu_buckets_never_outnumber_entries);
    RUN(test_lfu_append_rebuilds_in_order);
    RUN(test_random_policy_keeps_a_dense_id_array);
    RUN(test_wheel_yields_exactly_what_a_model_yields);
    RUN(test_wheel_equal_deadlines_come_out_in_set_order);
    RUN(test_wheel_work_is_constant_per_entry);
    RUN(test_wheel_work_is_constant_per_entry_filed_before_any_clock);
    RUN(test_deadlines_follow_entries_out);
    RUN(test_slots_unlink_at_once_outside_emits);
    RUN(test_slots_tombstones_keep_the_snapshot_until_compaction);
    RUN(test_slots_counters_only_move_forward);
    RUN(test_sites_equal_stacks_share_one_site);
    RUN(test_sites_several_keys_file_under_one_site);
    RUN(test_sites_survive_growth);
    RUN(test_sites_forget_a_dead_code_object);
    RUN(test_sites_failed_allocation_leaves_them_unchanged);
    RUN(test_shared_take_never_passes_the_limit);
    RUN(test_shared_clock_stamps_every_access);
    RUN(test_shared_lru_members_evict_in_one_global_order);
    RUN(test_share_stamps_entries_in_policy_order);
    RUN(test_sketch_counts_saturate_halve_and_grow);
    RUN(test_tlfu_new_keys_enter_the_window_then_probation);
    RUN(test_tlfu_protected_overflow_is_demoted_at_the_next_insertion);
    RUN(test_tlfu_sketch_growth_carries_the_held_keys_estimates);
    RUN(test_tlfu_climber_follows_the_hit_rate);
    printf("core: %d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
