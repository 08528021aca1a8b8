"""Decorator workloads for bench/run.py: a memoized call on a hit and on a miss, memleash
against functools.lru_cache, cachetools.cached and cachebox.cached."""

from __future__ import annotations

import functools

import cachebox
import cachetools
import cachetools.func

import memleash


def identity(x):
    return x


def decorated(maxsize):
    """Per library: a fresh decorated `identity` with room for maxsize results."""
    return {
        "memleash.lru_cache": lambda: memleash.lru_cache(maxsize)(identity),
        "functools.lru_cache": lambda: functools.lru_cache(maxsize)(identity),
        "memleash.cached(LRUCache)": lambda: memleash.cached(memleash.LRUCache(maxsize))(identity),
        "cachetools.cached(LRUCache)":
            lambda: cachetools.cached(cachetools.LRUCache(maxsize))(identity),
        "cachebox.cached(LRUCache)": lambda: cachebox.cached(cachebox.LRUCache(maxsize))(identity),
        "memleash.func.lru_cache": lambda: memleash.func.lru_cache(maxsize)(identity),
        "cachetools.func.lru_cache": lambda: cachetools.func.lru_cache(maxsize)(identity),
    }


def workload_hit(interleaved, table, quick):
    n = 1_000
    reps = 20 if quick else 200
    keys = list(range(n))

    def prepare(f):
        for k in keys:
            f(k)

    def run(f):
        for _ in range(reps):
            for k in keys:
                f(k)
    results = interleaved(decorated(2 * n), prepare, run, reps * n)
    return table(f"Memoized call, hit (int argument, {n:,} results cached)", results,
                 "memleash.lru_cache", unit="ns/call")


def workload_miss(interleaved, table, quick):
    n = 200
    ops = 20_000 if quick else 200_000
    keys = list(range(ops))

    def run(f):
        for k in keys:
            f(k)
    results = interleaved(decorated(n), lambda f: None, run, ops)
    return table(f"Memoized call, miss + store + eviction (maxsize {n})", results,
                 "memleash.lru_cache", unit="ns/call")
