"""memleash on the free-threaded CPython 3.13t, from 1, 2 and 4 threads sharing one object.

The `### Free-threaded 3.13t:` section of docs/benchmarks.md. `make bench-ft` builds
memleash for the cached 3.13t interpreter (tools/test-ft.sh --build: build/ft-venv,
build/ft) and rewrites only that section in place:

    PYTHONPATH=build/ft build/ft-venv/bin/python bench/freethreaded.py [--quick] [--out docs/benchmarks.md]

Workloads, each on one object shared by all the threads (built fresh each round):

- hit: `c[k]` over 10,000 str keys, all present (100-byte values, one per key);
  memleash.LRUCache(10,000) against a plain dict holding the same items.
- miss+insert: each thread stores its own new str keys into a full shared cache of 10,000
  (every store evicts one); memleash.LRUCache(10,000) against a dict bounded by hand:
  `d[k] = v` then, while `len(d) > 10,000`, `d.pop(next(iter(d)), None)` (the oldest
  key in insertion order; a RuntimeError from the iterator, when another thread changed
  the dict in between, is caught and the pop tried again).
- memoized hit: `f(k)` over ints 0..999, all cached; memleash.lru_cache(1000) against
  functools.lru_cache(1000), both around the same identity function.
- emit: `emit("e", 1)` to 1 bound-method listener on a shared memleash.EventEmitter,
  against a plain Python emitter (a dict of lists of callables, `for f in d[event]:
  f(arg)`).

Threads start together on a threading.Barrier; each does the same fixed number of
operations. Per figure: ns/op is each thread's own elapsed time over its operations
(the median over threads), throughput is all threads' operations over the wall time from
the barrier to the last thread's end, and scaling is that throughput over the 1-thread
one. Libraries are interleaved within each round, thread counts too; the median of the
rounds is shown.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import platform
import statistics
import sys
import sysconfig
import threading
import time

import memleash

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sections import replace_sections  # noqa: E402

N = 10_000
THREADS = (1, 2, 4)
PREFIX = "### Free-threaded 3.13t:"
CPU_BUSY: dict[int, list[float]] = {}   # threads -> process CPU time / wall, each run


def identity(x):
    return x


class Listener:
    def on_e(self, x):
        pass


class PlainEmitter:
    """The baseline: a dict of lists of callables."""

    def __init__(self):
        self.handlers = {}

    def on(self, event, f):
        self.handlers.setdefault(event, []).append(f)

    def emit(self, event, arg):
        for f in self.handlers.get(event, ()):
            f(arg)


# ---- workloads: per library, make() -> shared object; body(shared, tid, ops) -> loop ---

KEYS = [f"key-{i}" for i in range(N)]
VALUES = [b"%0100d" % i for i in range(N)]


def full_lru():
    c = memleash.LRUCache(N)
    for k, v in zip(KEYS, VALUES):
        c[k] = v
    return c


def full_dict():
    return dict(zip(KEYS, VALUES))


def hit_workload():
    def body(c, tid, ops):
        keys = KEYS
        for _ in range(ops // N):
            for k in keys:
                c[k]
    return {"memleash.LRUCache": (full_lru, body), "dict": (full_dict, body)}


def miss_workload(max_ops):
    new_keys = [[f"t{t}-{i}" for i in range(max_ops)] for t in range(max(THREADS))]
    value = b"x" * 100

    def body_lru(c, tid, ops):
        for k in new_keys[tid][:ops]:
            c[k] = value

    def body_dict(d, tid, ops):
        for k in new_keys[tid][:ops]:
            d[k] = value
            while len(d) > N:
                try:
                    d.pop(next(iter(d)), None)
                except RuntimeError:    # another thread changed d between iter and next
                    pass
    return {"memleash.LRUCache": (full_lru, body_lru), "dict, bounded by hand": (full_dict, body_dict)}


def memo_workload():
    args = list(range(1000))

    def make(deco):
        def m():
            f = deco(1000)(identity)
            for a in args:
                f(a)
            return f
        return m

    def body(f, tid, ops):
        for _ in range(ops // len(args)):
            for a in args:
                f(a)
    return {"memleash.lru_cache": (make(memleash.lru_cache), body),
            "functools.lru_cache": (make(functools.lru_cache), body)}


def emit_workload():
    listener = Listener()

    def make(cls):
        def m():
            e = cls()
            e.on("e", listener.on_e)
            return e
        return m

    def body(e, tid, ops):
        emit = e.emit
        for _ in range(ops):
            emit("e", 1)
    return {"memleash.EventEmitter": (make(memleash.EventEmitter), body),
            "plain Python list of callables": (make(PlainEmitter), body)}


# ---- the timing -----------------------------------------------------------------------

def run_threads(make, body, n, ops):
    """@return (ns/op: median of the threads' own, aggregate ops/s); the process's CPU time
    over the wall time goes to CPU_BUSY[n]."""
    shared = make()
    barrier = threading.Barrier(n + 1)
    own = [0.0] * n

    def worker(tid):
        barrier.wait()
        t0 = time.perf_counter()
        body(shared, tid, ops)
        own[tid] = time.perf_counter() - t0

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n)]
    for t in threads:
        t.start()
    gc.collect()
    gc.disable()
    try:
        barrier.wait()
        t0, c0 = time.perf_counter(), time.process_time()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        CPU_BUSY.setdefault(n, []).append((time.process_time() - c0) / wall)
    finally:
        gc.enable()
    return statistics.median(own) / ops * 1e9, n * ops / wall


def measure(libs, ops, rounds):
    """@return {lib: {n: (ns/op, ops/s)}}, medians over rounds, libraries and thread counts
    interleaved within each round."""
    samples = {lib: {n: [] for n in THREADS} for lib in libs}
    for _ in range(rounds):
        for n in THREADS:
            for lib, (make, body) in libs.items():
                samples[lib][n].append(run_threads(make, body, n, ops))
    return {lib: {n: (statistics.median(s[0] for s in by[n]), statistics.median(s[1] for s in by[n]))
                  for n in THREADS} for lib, by in samples.items()}


def section(quick):
    rounds = 3 if quick else 5
    scale = 4 if quick else 1
    hit_ops, miss_ops, memo_ops, emit_ops = (400_000 // scale, 200_000 // scale,
                                            400_000 // scale, 200_000 // scale)
    workloads = [
        (f"hit `c[k]` ({N:,} str keys)", hit_workload(), hit_ops),
        (f"miss+insert, evicting (full at {N:,})", miss_workload(miss_ops), miss_ops),
        ("memoized call, hit (1,000 ints)", memo_workload(), memo_ops),
        ("`emit` to 1 listener", emit_workload(), emit_ops),
    ]
    started = time.time()
    load = os.getloadavg()[0]
    results = []
    for title, libs, ops in workloads:
        print(f"bench-ft: {title} ...", file=sys.stderr, flush=True)
        results.append((title, ops, measure(libs, ops, rounds)))
    took = time.time() - started
    gil = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True
    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    lines = [
        f"{PREFIX} 1, 2 and 4 threads on one shared object", "",
        f"Python {platform.python_version()} free-threaded build "
        f"({'GIL disabled' if ft and not gil else 'GIL ENABLED: these are not free-threaded figures'}"
        f" after `import memleash`), memleash {memleash.__version__}; from "
        f"bench/freethreaded.py (`make bench-ft`, {time.strftime('%Y-%m-%d')}), "
        f"{rounds} rounds{' (quick run)' if quick else ''}, {took:.0f} s. "
        f"The machine has {os.cpu_count()} cores, shared with other work: 4 threads "
        f"oversubscribe them (scaling beyond {os.cpu_count()} is not possible there), and "
        "the figures move from run to run with the machine's load: the 1-minute load "
        f"average was {load:.2f} when this run started, and this process's CPU time over "
        "wall time (cores it kept busy; median over the runs) was "
        + ", ".join(f"{statistics.median(CPU_BUSY[n]):.2f} with {n} thread{'s' if n > 1 else ''}"
                    for n in THREADS) + ".", "",
        "ns/op: each thread's own time per operation (median over the threads); Mops/s: "
        "all threads' operations over the wall time; scaling: that throughput over the "
        "1-thread one. The workloads and the baselines (the dict bounded by hand, the plain "
        "emitter) are described in bench/freethreaded.py; operations per thread: "
        + ", ".join(f"{t} {o:,}" for t, o, _ in results) + ".", "",
        "| workload | library | 1 thread: ns/op | 1: Mops/s | 2 threads: ns/op | 2: Mops/s "
        "| 2: scaling | 4 threads: ns/op | 4: Mops/s | 4: scaling |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for title, _, res in results:
        for lib, by in res.items():
            base = by[1][1]
            row = f"| {title} | {lib} | {by[1][0]:.1f} | {by[1][1] / 1e6:.1f} |"
            for n in THREADS[1:]:
                row += f" {by[n][0]:.1f} | {by[n][1] / 1e6:.1f} | {by[n][1] / base:.2f} |"
            lines.append(row)
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer operations and rounds")
    ap.add_argument("--out", help="docs/benchmarks.md: replace its free-threaded section")
    args = ap.parse_args()
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        print("bench-ft: warning: not a free-threaded build", file=sys.stderr)
    text = section(args.quick)
    print(text)
    if args.out:
        replace_sections(args.out, text, PREFIX)


if __name__ == "__main__":
    main()
