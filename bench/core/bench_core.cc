// bench_core.cc — Google Benchmark over the pure-C core (through shim.h): ns per
// operation at several sizes. Built by `make test` (so it never rots), run by
// `make bench`, whose bench/run.py turns its JSON output into a table.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "shim.h"

namespace {

constexpr int kLRU = 1;   // ML_POLICY_LRU
constexpr int kLFU = 3;   // ML_POLICY_LFU
constexpr int kTinyLFU = 5;   // ML_POLICY_TINYLFU

uint64_t Scramble(uint64_t i, uint64_t n) { return (i * 0x9e3779b97f4a7c15ULL) % n + 1; }

void BM_TableLookup(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  mlb_table* t = mlb_table_new(n);
  uint64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(mlb_table_lookup(t, Scramble(i++, n)));
  mlb_table_free(t);
}

void BM_TableDeleteInsert(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  mlb_table* t = mlb_table_new(n);
  uint64_t i = 0;
  for (auto _ : state) mlb_table_delete_insert(t, Scramble(i++, n));
  mlb_table_free(t);
}

void CacheHit(benchmark::State& state, int policy) {
  const auto n = static_cast<uint32_t>(state.range(0));
  mlb_cache* c = mlb_cache_new(policy, n);
  uint64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(mlb_cache_hit(c, Scramble(i++, n)));
  mlb_cache_free(c);
}

void CacheEvictInsert(benchmark::State& state, int policy) {
  mlb_cache* c = mlb_cache_new(policy, static_cast<uint32_t>(state.range(0)));
  for (auto _ : state) mlb_cache_evict_insert(c);
  mlb_cache_free(c);
}

void BM_LRUTouch(benchmark::State& state) { CacheHit(state, kLRU); }
void BM_LRUEvictInsert(benchmark::State& state) { CacheEvictInsert(state, kLRU); }
void BM_LFUTouch(benchmark::State& state) { CacheHit(state, kLFU); }
void BM_LFUEvictInsert(benchmark::State& state) { CacheEvictInsert(state, kLFU); }
void BM_TinyLFUTouch(benchmark::State& state) { CacheHit(state, kTinyLFU); }
void BM_TinyLFUEvictInsert(benchmark::State& state) { CacheEvictInsert(state, kTinyLFU); }

void BM_WheelAdvance(benchmark::State& state) {
  mlb_wheel* w = mlb_wheel_new(static_cast<uint32_t>(state.range(0)), 100.0);
  for (auto _ : state) mlb_wheel_advance(w);
  mlb_wheel_free(w);
}

void BM_WheelReschedule(benchmark::State& state) {
  mlb_wheel* w = mlb_wheel_new(static_cast<uint32_t>(state.range(0)), 100.0);
  uint64_t i = 0;
  for (auto _ : state) mlb_wheel_schedule_cancel(w, Scramble(i++, UINT32_MAX));
  mlb_wheel_free(w);
}

void BM_SlotAppendUnlink(benchmark::State& state) {
  mlb_slots* s = mlb_slots_new(static_cast<uint32_t>(state.range(0)));
  for (auto _ : state) mlb_slots_append_unlink(s);
  mlb_slots_free(s);
}

// Interning one stack of state.range(1) frames among state.range(0) known sites.
void BM_SiteIntern(benchmark::State& state) {
  uint32_t n = static_cast<uint32_t>(state.range(0));
  mlb_sites* s = mlb_sites_new(n, static_cast<uint32_t>(state.range(1)));
  uint64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(mlb_sites_intern(s, Scramble(i++, n)));
  mlb_sites_free(s);
}

}  // namespace

#define SIZES RangeMultiplier(10)->Range(1000, 1000000)
BENCHMARK(BM_TableLookup)->SIZES;
BENCHMARK(BM_TableDeleteInsert)->SIZES;
BENCHMARK(BM_LRUTouch)->SIZES;
BENCHMARK(BM_LRUEvictInsert)->SIZES;
BENCHMARK(BM_LFUTouch)->SIZES;
BENCHMARK(BM_LFUEvictInsert)->SIZES;
BENCHMARK(BM_TinyLFUTouch)->SIZES;
BENCHMARK(BM_TinyLFUEvictInsert)->SIZES;
BENCHMARK(BM_WheelAdvance)->SIZES;
BENCHMARK(BM_WheelReschedule)->SIZES;
BENCHMARK(BM_SlotAppendUnlink)->RangeMultiplier(10)->Range(10, 10000);

BENCHMARK(BM_SiteIntern)->ArgsProduct({{10, 1000, 100000}, {1, 8}});

BENCHMARK_MAIN();
