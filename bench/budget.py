"""The shared byte budget (memleash.Budget) against a cache's own max_bytes, in one run
(bench/run.py's section, or alone: `PYTHONPATH=pkg python bench/run.py --only budget`).

Every variant holds the same N items: LRU caches whose accounted bytes are bounded to what
those items account for (under a budget an item accounts 8 bytes more: its access stamp),
by the cache's own max_bytes or by a Budget its caches share. A store adds a
new key to a full cache (so it evicts one item: the cache's own victim, or the budget's
oldest across its members); a hit reads a present key. The caches of a variant are used
round-robin through one list of (cache, key) pairs, so every variant runs the same loop.
Goals (issue 25): a store under a shared budget at most 15 % above one under its own
max_bytes, a hit at most 10 %.
"""

from __future__ import annotations

import gc
import itertools
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import memleash

N = 10_000
KEYS = [f"key-{i}" for i in range(200_000)]
VALUE = b"x" * 100


def _accounted(**kw):
    """The accounted bytes of the N items in an unbounded cache made with kw."""
    probe = memleash.LRUCache(math.inf, **kw)
    for k in KEYS[:N]:
        probe[k] = VALUE
    return probe.currbytes


def _variants():
    """name -> make(): (caches, cleanup)."""
    own_limit = _accounted(max_bytes=2**60)
    shared_limit = _accounted(budget=memleash.Budget(2**60))

    def own():
        return [memleash.LRUCache(math.inf, max_bytes=own_limit)], lambda: None

    def shared(members, follow=False):
        def make():
            budget = memleash.Budget(shared_limit)
            if follow:   # a store's memory check: one comparison (the follower never fires)
                budget.follow_memory(limit=1 << 60, interval=3600)
            caches = [memleash.LRUCache(math.inf, budget=budget) for _ in range(members)]
            return caches, budget.stop_following
        return make

    return {
        "own max_bytes": own,
        "shared Budget, 1 cache": shared(1),
        "shared Budget, 1 cache, following memory": shared(1, follow=True),
        "shared Budget, 4 caches": shared(4),
    }


def _store(pairs):
    for c, k in pairs:
        c[k] = VALUE


def _hit(pairs):
    for c, k in pairs:
        c[k]


def _fill(caches):
    for i, k in enumerate(KEYS[:N]):
        caches[i % len(caches)][k] = VALUE


def _keys(op, n):
    """n new keys to store, or n present keys to read."""
    return KEYS[N: N + n] if op == "store" else (KEYS[:N] * (n // N + 1))[:n]


def _time(rounds, variants, op, n):
    """For each round and variant: fresh caches, filled, then one timed pass of op over n
    (cache, key) pairs. Median and spread of ns per op."""
    out = {name: [] for name in variants}
    for _ in range(rounds):
        for name, make in variants.items():
            caches, cleanup = make()
            _fill(caches)
            pairs = [(caches[i % len(caches)], k) for i, k in enumerate(_keys(op, n))]
            gc.collect()
            gc.disable()
            t0 = time.perf_counter()
            (_store if op == "store" else _hit)(pairs)
            dt = time.perf_counter() - t0
            gc.enable()
            cleanup()
            out[name].append(dt / n * 1e9)
    return {name: (statistics.median(ts), max(ts) - min(ts)) for name, ts in out.items()}


def section(quick):
    rounds = 3 if quick else 9
    variants = _variants()
    wall = {op: _time(rounds, variants, op, 30_000 if quick else 200_000)
            for op in ("store", "hit")}
    n = 5_000 if quick else 20_000
    jobs = [(name, op) for op in ("store", "hit") for name in variants]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:   # valgrind processes
        counts = dict(zip(jobs, pool.map(lambda job: per_op(*job, n), jobs)))
    instr = {op: {name: counts[name, op] for name in variants} for op in ("store", "hit")}
    base = "own max_bytes"
    lines = [
        "### A shared byte budget (memleash.Budget) against a cache's own max_bytes",
        "",
        f"LRU caches bounded to the accounted bytes of the same {N:,} items, by their own "
        "`max_bytes` or by one `Budget` they share (with 4 caches, used in turn). Store: a "
        "new key into a full cache (one eviction each: the cache's own victim, or the "
        "budget's oldest across its members). Hit: a present key. Wall-clock: median and "
        "spread of the rounds; instructions: callgrind's count per operation (runs of n and "
        "2n operations differenced), which the machine's load does not move. Goals (issue "
        "25): a store at most 1.15 times, a hit at most 1.10 times the cost under the "
        "cache's own max_bytes.",
        "",
        "| variant | store ns (median) | spread | ratio | store instructions | ratio "
        "| hit ns (median) | spread | ratio | hit instructions | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in variants:
        cells = []
        for op in ("store", "hit"):
            (t, spread), i = wall[op][name], instr[op][name]
            cells += [f"{t:.1f}", f"{spread:.1f}", f"{t / wall[op][base][0]:.2f}", f"{i:.0f}",
                      f"{i / instr[op][base]:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---- instruction counts (callgrind): the same loops, deterministic ------------------------

def _child(variant, op, n, most):
    """n ops of a variant, after building the pairs of `most` (the same set-up for n and
    2n: only the loop differs)."""
    caches, cleanup = _variants()[variant]()
    _fill(caches)
    pairs = [(caches[i % len(caches)], k) for i, k in enumerate(_keys(op, most))]
    (_store if op == "store" else _hit)(itertools.islice(pairs, n))
    cleanup()


def instructions(variant, op, n, most):
    """Instructions callgrind counts for a whole child run."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        "--dump-line=no", "--compress-strings=no", sys.executable, __file__,
                        "--child", variant, op, str(n), str(most)],
                       check=True, capture_output=True, env=dict(os.environ, PYTHONHASHSEED="0"))
        with open(out) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    return int(line.split()[1])
    raise RuntimeError("no totals in callgrind's output")


def per_op(variant, op, n):
    """Instructions per op: runs of n and 2n ops, differenced (set-up cancels out)."""
    return (instructions(variant, op, 2 * n, 2 * n) - instructions(variant, op, n, 2 * n)) / n


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
