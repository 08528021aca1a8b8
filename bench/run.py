"""memleash's benchmark suite against the peers: `make bench` writes docs/benchmarks.md.

Every figure is measured in this one run: for each workload the libraries are interleaved
within every round (the machine is noisy), the median over the rounds is reported with its
spread (max - min), and each table gives the ratio to memleash. Nothing in the output is
edited by hand.

    PYTHONPATH=pkg .venv/bin/python bench/run.py [--quick] [--out docs/benchmarks.md]
                                                  [--also .venv-3.13/bin/python]

Under tools/with-redis.py (REDIS_URL set, as `make bench` runs it), the Redis sections of
bench/redis_cache.py are measured too.

--also PY: the cache-hit and emit tables get columns measured by another interpreter, PY
(a venv with the peers and memleash built for it), run first as `PY bench/run.py --json`:
its times, its ratios to memleash, and how much each ratio moved from this interpreter's.
A ratio of dict or of a peer that moved more than 10 % is marked, and
bench/version-notes.md (written by hand, after looking) says why.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from importlib import metadata

import cachebox
import cachetools
import lru

import memleash

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import budget  # noqa: E402
import decorators  # noqa: E402
import emitters  # noqa: E402
import goals  # noqa: E402
import tinylfu  # noqa: E402
import tracking  # noqa: E402

QUICK = False
# --also: the other interpreter's version and results, by table title ({library:
# (median, spread)}); every table's results, by title, for --json
ALSO_VERSION = ""
ALSO: dict = {}
RECORDED: dict = {}
ALSO_MOVE = 0.10          # a ratio of dict or a peer that moves more is marked
NOTES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "version-notes.md")


def rounds() -> int:
    return 3 if QUICK else 7


# ---- the libraries ----------------------------------------------------------------

def lru_makers(n):
    return {
        "memleash.LRUCache": lambda: memleash.LRUCache(n),
        "cachetools.LRUCache": lambda: cachetools.LRUCache(n),
        "cachebox.LRUCache": lambda: cachebox.LRUCache(n),
        "lru-dict LRU": lambda: lru.LRU(n),
    }


def policy_makers(n):
    return {
        **lru_makers(n),
        "memleash.TTLCache": lambda: memleash.TTLCache(n, ttl=3600),
        # the opt-in coarse clock (docs/caches.md): CLOCK_MONOTONIC_COARSE, read without a call
        goals.COARSE: lambda: memleash.TTLCache(n, ttl=3600, timer=memleash.monotonic_coarse),
        "cachetools.TTLCache": lambda: cachetools.TTLCache(n, ttl=3600),
        "cachebox.TTLCache": lambda: cachebox.TTLCache(n, 3600),
        "memleash.LFUCache": lambda: memleash.LFUCache(n),
        "memleash.TinyLFUCache": lambda: memleash.TinyLFUCache(n),
        "cachetools.LFUCache": lambda: cachetools.LFUCache(n),
        "cachebox.LFUCache": lambda: cachebox.LFUCache(n),
    }


# ---- timing -----------------------------------------------------------------------

def interleaved(makers, prepare, run, ops, last=None, samples=None):
    """For each round and each library: a fresh cache, prepare(c), then time run(c).
    `last`, if given, receives each library's last run(c) result; `samples` each
    library's ns/op of every round."""
    times = {name: [] for name in makers}
    for _ in range(rounds()):
        for name, make in makers.items():
            c = make()
            prepare(c)
            gc.collect()
            gc.disable()
            t0 = time.perf_counter()
            result = run(c)
            dt = time.perf_counter() - t0
            gc.enable()
            times[name].append(dt / ops * 1e9)
            if last is not None:
                last[name] = result
    if samples is not None:
        samples.update(times)
    return {name: (statistics.median(ts), max(ts) - min(ts)) for name, ts in times.items()}


def kept_sections(path, prefix):
    """The sections of `path` whose heading starts with `prefix`, as they are: the ones
    another script writes on another interpreter (bench/freethreaded.py, make bench-ft)."""
    try:
        with open(path) as f:
            parts = f.read().split("\n### ")[1:]
    except FileNotFoundError:
        return ""
    return "".join("\n### " + p.rstrip("\n") + "\n" for p in parts if ("### " + p).startswith(prefix))


def table(title, results, base, unit="ns/op", extra=None):
    RECORDED[title] = results
    other = ALSO.get(title)
    b = results[base][0]
    head = f"| library | {unit} (median) | spread | ratio to memleash |" + (f" {extra[0]} |" if extra else "")
    rule = "|---|---:|---:|---:|" + ("---:|" if extra else "")
    if other:
        head += f" {ALSO_VERSION}: {unit} | {ALSO_VERSION}: ratio | ratio moved |"
        rule += "---:|---:|---:|"
    lines = [f"### {title}", "", head, rule]
    moved = []
    for name, (med, spread) in sorted(results.items(), key=lambda kv: kv[1][0]):
        row = f"| {name} | {med:.1f} | {spread:.1f} | {med / b:.2f} |"
        if extra:
            row += f" {extra[1][name]} |"
        if other and name in other:
            ratio, ratio_also = med / b, other[name][0] / other[base][0]
            change = ratio_also / ratio - 1
            mark = ""
            if not name.startswith("memleash") and abs(change) > ALSO_MOVE:
                mark = " †"
                moved.append(f"{name} ({change:+.0%})")
            row += f" {other[name][0]:.1f} | {ratio_also:.2f} | {change:+.0%}{mark} |"
        lines.append(row)
    if other:
        lines += ["", f"{ALSO_VERSION} against {platform.python_version()}: the ratio of "
                  + ("every peer and dict within 10 %." if not moved else
                     ", ".join(moved) + " moved more than 10 % (†: see the note on versions above).")]
    return "\n".join(lines) + "\n"


def run_also(python):
    """The cache-hit and emit tables measured by another interpreter (its --json run)."""
    global ALSO_VERSION
    cmd = [python, os.path.abspath(__file__), "--json"] + (["--quick"] if QUICK else [])
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    ALSO_VERSION = out["python"]
    ALSO.update({title: {name: tuple(v) for name, v in res.items()}
                 for title, res in out["tables"].items()})


def versions_note():
    """The header's paragraph on the --also columns, and bench/version-notes.md."""
    if not ALSO:
        return ""
    try:
        with open(NOTES) as f:
            notes = f.read().strip()
    except FileNotFoundError:
        notes = ("No note on the marked ratios yet (bench/version-notes.md is written by "
                 "hand after a run: a † stays unexplained until then).")
    return (f"The cache-hit and emit tables have columns measured under Python {ALSO_VERSION} "
            f"in the same run (`bench/run.py --also`): its ns, its ratio to memleash, and how "
            f"far that ratio moved from {platform.python_version()}'s; † marks a ratio of dict "
            f"or of a peer that moved more than 10 %.\n\n{notes}\n\n")


# ---- workloads --------------------------------------------------------------------

N = 10_000
KEYS = [f"key-{i}" for i in range(200_000)]
VALUE = b"x" * 100


def fill(n):
    def prepare(c):
        for k in KEYS[:n]:
            c[k] = VALUE
    return prepare


def workload_hit():
    probe = KEYS[: N]
    reps = 20 if QUICK else 50

    def run(c):
        for _ in range(reps):
            for k in probe:
                c[k]
    makers = {"dict": dict, **policy_makers(N)}
    return table(f"Hit `c[k]` ({N:,} str keys, all present)",
                 interleaved(makers, fill(N), run, reps * N), "memleash.LRUCache")


def workload_insert_evict():
    stream = KEYS[N: N + 100_000]

    def run(c):
        for k in stream:
            c[k] = VALUE
    makers = {**policy_makers(N),
              "memleash.LRUCache(max_bytes)": lambda: memleash.LRUCache(N, max_bytes=N * 400)}
    return table(f"Miss + insert with eviction (full cache of {N:,}, 100,000 new keys)",
                 interleaved(makers, fill(N), run, len(stream)), "memleash.LRUCache")


def workload_get_miss():
    absent = KEYS[N: N + 50_000]

    def run(c):
        for k in absent:
            c.get(k)
    makers = {"dict": dict, **policy_makers(N)}
    return table("`get` miss (absent keys)", interleaved(makers, fill(N), run, len(absent)),
                 "memleash.LRUCache")


def workload_delete():
    keys = KEYS[:N]

    def run(c):
        for k in keys:
            del c[k]
            c[k] = VALUE
    makers = {"dict": dict, **lru_makers(N)}
    return table("Delete then re-insert the same key", interleaved(makers, fill(N), run, N),
                 "memleash.LRUCache")


def zipf_trace(n_keys, n_requests, s=0.99, seed=1):
    weights = [1.0 / (i ** s) for i in range(1, n_keys + 1)]
    total = sum(weights)
    cdf, acc = [], 0.0
    for w in weights:
        acc += w / total
        cdf.append(acc)
    rnd = random.Random(seed)
    return [bisect.bisect_left(cdf, rnd.random()) for _ in range(n_requests)]


def workload_zipf():
    n_keys = 100_000 if QUICK else 1_000_000
    capacity = n_keys // 10
    trace = zipf_trace(n_keys, 300_000 if QUICK else 1_000_000)

    def run(c):
        return tinylfu.count_hits(c, trace, VALUE)

    makers = {"dict (unbounded)": dict, **policy_makers(capacity)}
    hits = {}
    results = interleaved(makers, lambda c: None, run, len(trace), last=hits)
    hits = {name: f"{h / len(trace):.1%}" for name, h in hits.items()}
    return table(f"Zipf(0.99) trace: {len(trace):,} requests over {n_keys:,} keys, "
                 f"capacity {capacity:,} (get, insert on miss)", results, "memleash.LRUCache",
                 extra=("hit ratio", hits))


def workload_scaling():
    sizes = [1_000, 10_000, 100_000] if QUICK else [1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    lines = ["### Scaling: hit time as a ratio to dict's at the same size", "",
             "| entries | dict ns | memleash.LRUCache ns | ratio to dict |", "|---:|---:|---:|---:|"]
    for n in sizes:
        keys = [f"k{i}" for i in range(n)]
        probe = [keys[(i * 7919) % n] for i in range(100_000)]

        def prepare(c, keys=keys):
            for k in keys:
                c[k] = VALUE

        def run(c, probe=probe):
            for k in probe:
                c[k]
        r = interleaved({"dict": dict, "memleash.LRUCache": lambda n=n: memleash.LRUCache(n)},
                        prepare, run, len(probe))
        RECORDED[f"Scaling: hit at {n:,} entries"] = r
        d, m = r["dict"][0], r["memleash.LRUCache"][0]
        lines.append(f"| {n:,} | {d:.1f} | {m:.1f} | {m / d:.2f} |")
    return "\n".join(lines) + "\n"


MEMORY_SCRIPT = r"""
import gc, sys
N = int(sys.argv[2])
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
keys = list(range(10**9, 10**9 + N))
import memleash, cachetools, lru, cachebox
make = {
    "dict": dict,
    "memleash.LRUCache": lambda: memleash.LRUCache(N),
    "memleash.LRUCache(max_bytes)": lambda: memleash.LRUCache(N, max_bytes=10**12),
    "memleash.TTLCache": lambda: memleash.TTLCache(N, ttl=3600),
    "cachetools.LRUCache": lambda: cachetools.LRUCache(N),
    "cachebox.LRUCache": lambda: cachebox.LRUCache(N),
    "lru-dict LRU": lambda: lru.LRU(N),
}[sys.argv[1]]
gc.collect(); before = rss()
c = make()
for k in keys:
    c[k] = None
gc.collect()
print((rss() - before) / N)
"""


def workload_memory():
    n = 200_000 if QUICK else 1_000_000
    names = ["dict", "memleash.LRUCache", "memleash.LRUCache(max_bytes)", "memleash.TTLCache",
             "cachetools.LRUCache", "cachebox.LRUCache", "lru-dict LRU"]
    per = {}
    for name in names:
        vals = []
        for _ in range(2 if QUICK else 3):
            out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, name, str(n)], check=True,
                                 capture_output=True, text=True, env={**os.environ}).stdout
            vals.append(float(out))
        per[name] = (statistics.median(vals), max(vals) - min(vals))
    lines = [f"### Memory per entry beyond key and value (RSS delta, {n:,} entries, a fresh process each)",
             "", "| library | bytes/entry (median) | spread | ratio to memleash |", "|---|---:|---:|---:|"]
    base = per["memleash.LRUCache"][0]
    for name, (v, spread) in sorted(per.items(), key=lambda kv: kv[1][0]):
        lines.append(f"| {name} | {v:.1f} | {spread:.1f} | {v / base:.2f} |")
    return "\n".join(lines) + "\n"


# ---- report -----------------------------------------------------------------------

def workload_tinylfu():
    return tinylfu.sections(interleaved, table, QUICK)


def workload_emit():
    return emitters.workload_emit(interleaved, table, QUICK)


def workload_subscribe():
    return emitters.workload_subscribe(interleaved, table, QUICK)


def workload_owner_death():
    return emitters.workload_owner_death(interleaved, table, QUICK)


def workload_decorated_hit():
    return decorators.workload_hit(interleaved, table, QUICK)


def workload_budget():
    return budget.section(QUICK)


def workload_decorated_miss():
    return decorators.workload_miss(interleaved, table, QUICK)


CORE_LABELS = {
    "BM_TableLookup": "table look-up (hit)",
    "BM_TableDeleteInsert": "table delete + insert",
    "BM_LRUTouch": "LRU hit: look-up + touch",
    "BM_LRUEvictInsert": "LRU evict + insert (full)",
    "BM_LFUTouch": "LFU hit: look-up + touch",
    "BM_LFUEvictInsert": "LFU evict + insert (full)",
    "BM_TinyLFUTouch": "TinyLFU hit: look-up + touch (sketch, regions)",
    "BM_TinyLFUEvictInsert": "TinyLFU evict + insert (full; admission by the sketch)",
    "BM_WheelAdvance": "timer wheel: next due + reschedule",
    "BM_WheelReschedule": "timer wheel: reschedule",
    "BM_SlotAppendUnlink": "listener slot: append + unlink",
    "BM_SiteIntern/1": "allocation site: intern (1 frame; size = sites known)",
    "BM_SiteIntern/8": "allocation site: intern (8 frames; size = sites known)",
}


def workload_core(binary):
    """Google Benchmark over the pure-C core (bench/core): ns/op by structure size."""
    min_time = "0.05" if QUICK else "0.3"
    out = subprocess.run([binary, "--benchmark_format=json", f"--benchmark_min_time={min_time}"],
                         check=True, capture_output=True, text=True).stdout
    rows: dict = {}
    sizes: list = []
    for b in json.loads(out)["benchmarks"]:
        # "BM_X/size", or "BM_X/size/extra" (site interning: frames per site)
        name, size, *extra = b["name"].split("/")
        if extra:
            name += "/" + "/".join(extra)
        scale = {"ns": 1, "us": 1e3, "ms": 1e6}[b["time_unit"]]
        rows.setdefault(name, {})[int(size)] = b["cpu_time"] * scale
        if int(size) not in sizes:
            sizes.append(int(size))
    sizes.sort()
    lines = ["### The C core alone (Google Benchmark, bench/core): ns per operation by size", "",
             "No Python: the engine's own cost, through bench/core/shim.h. The listener "
             "slots' sizes are listeners on one event.", "",
             "| operation | " + " | ".join(f"{n:,}" for n in sizes) + " |",
             "|---|" + "---:|" * len(sizes)]
    for name, by_size in rows.items():
        cells = [f"{by_size[n]:.1f}" if n in by_size else "" for n in sizes]
        lines.append(f"| {CORE_LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def workload_tracking():
    """Resource tracking: instructions per open() under callgrind (the CI gate's figures),
    and wall-clock per open() and per explicit track()."""
    return tracking.section(n_instr=1000 if QUICK else 2000,
                            wall_rounds=3 if QUICK else 7)


def versions():
    names = ["cachetools", "cachebox", "lru-dict", "theine", "pyee", "blinker", "psygnal", "redis"]
    return ", ".join(f"{n} {metadata.version(n)}" for n in names)


def rejudge(path: str) -> None:
    """--rejudge: the note on versions and the goals section of a written file, again."""
    global ALSO_VERSION
    import sections

    with open(path) as f:
        text = f.read()
    m = re.search(r"^The cache-hit and emit tables have columns measured under Python (\S+) .*?\n\n"
                  r"(.*?)\n\n(?=### )", text, re.S | re.M)
    if m:
        ALSO_VERSION = m.group(1)
        ALSO["rejudge"] = {}          # versions_note() writes its paragraph when ALSO is set
        text = text[:m.start()] + versions_note() + text[m.end():]
        with open(path, "w") as f:
            f.write(text)
    sections.replace_sections(path, goals.section(goals.recorded_from(text)),
                              "### Speed goals (issue 26)")


def main() -> None:
    global QUICK
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer rounds and smaller sizes")
    ap.add_argument("--out", default=None)
    ap.add_argument("--core", default=None, help="bench/core's Google Benchmark binary")
    ap.add_argument("--also", default=None, metavar="PYTHON",
                    help="another interpreter whose cache-hit and emit ratios get columns")
    ap.add_argument("--json", action="store_true",
                    help="run the cache-hit and emit tables only, print their results as JSON")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="run only the workload_NAME sections (repeatable; prints, with "
                         "--out writes only what ran)")
    ap.add_argument("--rejudge", default=None, metavar="FILE",
                    help="measure nothing: in a written FILE, put bench/version-notes.md in "
                         "place of its note on versions and judge the speed goals again on "
                         "its tables (after either hand-written file changed)")
    args = ap.parse_args()
    QUICK = args.quick
    if args.rejudge:
        rejudge(args.rejudge)
        return
    if args.json:
        for w in (workload_hit, workload_emit):
            w()
        json.dump({"python": platform.python_version(), "tables": RECORDED}, sys.stdout)
        return
    started = time.time()
    if args.also:
        print(f"bench: cache-hit and emit tables under {args.also} ...", file=sys.stderr, flush=True)
        run_also(args.also)
    sections = []
    workloads = (workload_hit, workload_insert_evict, workload_budget, workload_get_miss,
                 workload_delete, workload_zipf, workload_tinylfu,
                 workload_scaling, workload_memory,
                 workload_decorated_hit, workload_decorated_miss, workload_emit,
                 workload_subscribe, workload_owner_death)
    if args.only:
        chosen = [w for w in workloads if w.__name__[len("workload_"):] in args.only]
        for w in chosen:
            print(f"bench: {w.__name__} ...", file=sys.stderr, flush=True)
            print(w())
        return
    for w in workloads:
        print(f"bench: {w.__name__} ...", file=sys.stderr, flush=True)
        sections.append(w())
    sections.append(goals.section(RECORDED))
    print("bench: tracking (callgrind, wall-clock) ...", file=sys.stderr, flush=True)
    sections.append(workload_tracking())
    if os.environ.get("REDIS_URL"):     # make bench runs under tools/with-redis.py
        import redis_cache

        sections.append(redis_cache.sections(QUICK))
    if args.core:
        print("bench: core (Google Benchmark) ...", file=sys.stderr, flush=True)
        sections.append(workload_core(args.core))
    cpu = platform.processor() or platform.machine()
    header = (
        "# Benchmarks\n\n"
        "Written by `make bench` (bench/run.py) from its own output; never edited by hand.\n"
        "Libraries are interleaved within each round; the median of the rounds is shown\n"
        "with its spread (max - min); ratios are to memleash's class in the same table.\n\n"
        f"- machine: {os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}\n"
        f"- Python {platform.python_version()}; memleash {memleash.__version__}; {versions()}\n"
        f"- rounds per figure: {rounds()}{' (quick run)' if QUICK else ''}; "
        f"run took {time.time() - started:.0f} s\n\n"
        "Caches hold 100-byte `bytes` values under `str` keys unless a table says otherwise.\n\n"
        + versions_note()
    )
    report = header + "\n".join(sections)
    if args.out:
        report += kept_sections(args.out, "### Free-threaded 3.13t:")
        with open(args.out, "w") as f:
            f.write(report)
    print(report)


if __name__ == "__main__":
    main()
