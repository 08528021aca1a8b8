/* shim.h — the pure-C core seen through a few plain functions, for bench_core.cc.
 *
 * Google Benchmark is C++; the core is C11 with opaque structures and callbacks. This
 * header hides both: each fixture is built, driven one operation at a time, and freed by
 * C code (shim.c) that uses the core exactly as the binding does, with integer keys
 * (key k is the pointer value k, compared by identity) and libc's allocator.
 */
#ifndef MLB_SHIM_H
#define MLB_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mlb_table mlb_table;
typedef struct mlb_cache mlb_cache;
typedef struct mlb_wheel mlb_wheel;
typedef struct mlb_slots mlb_slots;
typedef struct mlb_sites mlb_sites;

/* A hash index holding keys 1..n. */
mlb_table *mlb_table_new(uint32_t n);
/* @return 1 if key k is present (k in 1..n is), else 0. */
int mlb_table_lookup(mlb_table *t, uint64_t k);
/* Removes key k (present) and inserts it again. */
void mlb_table_delete_insert(mlb_table *t, uint64_t k);
void mlb_table_free(mlb_table *t);

/* A full cache of n entries (keys 1..n) under policy (ML_POLICY_*). */
mlb_cache *mlb_cache_new(int policy, uint32_t n);
/* A hit: look key k up and touch it (the policy's bookkeeping). @return 1 if found. */
int mlb_cache_hit(mlb_cache *c, uint64_t k);
/* A miss on a full cache: evict the policy's victim, insert a new key. */
void mlb_cache_evict_insert(mlb_cache *c);
void mlb_cache_free(mlb_cache *c);

/* A timer wheel of n entries with random deadlines over [0, span). */
mlb_wheel *mlb_wheel_new(uint32_t n, double span);
/* Advance: take the next due entry and schedule it again `span` later (steady state). */
void mlb_wheel_advance(mlb_wheel *w);
/* Schedule entry (k mod n) at a new random deadline, then cancel and re-file it. */
void mlb_wheel_schedule_cancel(mlb_wheel *w, uint64_t k);
void mlb_wheel_free(mlb_wheel *w);

/* Listener slots: one event with n live listeners. */
mlb_slots *mlb_slots_new(uint32_t n);
/* Append a listener to the event and unlink the oldest one (steady state). */
void mlb_slots_append_unlink(mlb_slots *s);
void mlb_slots_free(mlb_slots *s);

/* n distinct allocation sites of `depth` frames each, already interned. */
mlb_sites *mlb_sites_new(uint32_t n, uint32_t depth);
/* Interns the stack of site (k mod n) again: the tracker's per-object look-up. @return
 * its site id. */
uint32_t mlb_sites_intern(mlb_sites *s, uint64_t k);
void mlb_sites_free(mlb_sites *s);

#ifdef __cplusplus
}
#endif

#endif
