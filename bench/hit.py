"""A first look at the cache hit path: memleash.LRUCache vs dict vs cachetools.LRUCache.

One run, peers interleaved round by round, median and spread of the per-hit time over
the rounds (the machine is noisy). The full suite is bench/ (issue: benchmark suite);
this script only prints.

    PYTHONPATH=pkg .venv/bin/python bench/hit.py
"""

from __future__ import annotations

import statistics
import timeit

import cachetools

import memleash

N_KEYS = 10_000
ROUNDS = 15
NUMBER = 200_000


def build():
    keys = [f"key-{i}" for i in range(N_KEYS)]
    caches = {
        "dict": {},
        "memleash.LRUCache": memleash.LRUCache(maxsize=N_KEYS),
        "memleash.LRUCache(max_bytes)": memleash.LRUCache(maxsize=N_KEYS, max_bytes=1 << 30),
        "cachetools.LRUCache": cachetools.LRUCache(maxsize=N_KEYS),
    }
    for c in caches.values():
        for k in keys:
            c[k] = k
    return keys, caches


def main() -> None:
    keys, caches = build()
    probe = keys[N_KEYS // 2]
    times = {name: [] for name in caches}
    for _ in range(ROUNDS):
        for name, cache in caches.items():
            t = timeit.timeit("c[k]", globals={"c": cache, "k": probe}, number=NUMBER)
            times[name].append(t / NUMBER * 1e9)
    base = statistics.median(times["memleash.LRUCache"])
    print(f"cache hit c[k] (str key, {N_KEYS:,} entries), {ROUNDS} rounds x {NUMBER:,} hits")
    print(f"{'':30s} {'median ns':>10s} {'spread ns':>10s} {'ratio to memleash':>18s}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:30s} {med:10.1f} {max(ts) - min(ts):10.1f} {med / base:18.2f}")


if __name__ == "__main__":
    main()
