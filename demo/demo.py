"""memleash demo: the leak a response cache causes, and the one-line fix.

A small service answers requests for pages; rendering a page is slow, so it caches the
rendered bytes. Version "leaky" caches them in a plain dict, version "memleash" in
`LRUCache(maxsize=..., max_bytes=BUDGET)`. Both run in their own subprocess on the same
request stream (new pages keep appearing, popular pages come back), and report the memory
tracemalloc sees as the requests go by. The dict grows without bound; the LRUCache stays
under its budget.

Run: make demo   (or: PYTHONPATH=pkg python demo/demo.py)
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tracemalloc
import zlib

REQUESTS = 120_000
SAMPLES = 12
BUDGET = 8 * 1024 * 1024   # bytes the memleash cache may account for
MiB = 1024 * 1024


def render(path: str) -> bytes:
    """The expensive part the cache avoids: build a 1-8 KiB page."""
    size = 1024 + (zlib.crc32(path.encode()) % 7168)   # the same in every process
    return (path.encode() * (size // len(path) + 1))[:size]


class Service:
    def __init__(self, cache):
        self.cache = cache
        self.hits = 0

    def handle(self, path: str) -> bytes:
        page = self.cache.get(path)
        if page is None:
            page = render(path)
            self.cache[path] = page
        else:
            self.hits += 1
        return page


def request_stream(seed: int = 42):
    """Pages by popularity: a few hot ones, a long tail, and new pages all the time."""
    rnd = random.Random(seed)
    for i in range(REQUESTS):
        if rnd.random() < 0.5:
            yield f"/item/{int(rnd.paretovariate(1.2)) % 2000}"
        else:
            yield f"/page/{i}"


def make_cache(variant: str):
    if variant == "leaky":
        return {}                                                     # the leak
    from memleash import LRUCache
    return LRUCache(maxsize=1_000_000, max_bytes=BUDGET, name="responses")   # the fix


def run_variant(variant: str) -> None:
    """Child process: serve the stream, print one JSON line per sample."""
    tracemalloc.start()
    service = Service(make_cache(variant))
    every = REQUESTS // SAMPLES
    for n, path in enumerate(request_stream(), 1):
        service.handle(path)
        if n % every == 0:
            current, _peak = tracemalloc.get_traced_memory()
            print(json.dumps({"requests": n, "traced": current, "entries": len(service.cache),
                              "hits": service.hits,
                              "accounted": getattr(service.cache, "currbytes", None)}), flush=True)
    if variant == "memleash":
        import memleash
        print(json.dumps({"report": str(memleash.report())}), flush=True)


def main() -> int:
    results = {}
    for variant in ("leaky", "memleash"):
        proc = subprocess.run([sys.executable, __file__, "--variant", variant],
                              capture_output=True, text=True, check=True)
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
        results[variant] = [line for line in lines if "report" not in line]
        reports = [line["report"] for line in lines if "report" in line]

    print(f"memleash demo: {REQUESTS:,} requests to a page-caching service")
    print(f"  leaky:    responses = {{}}")
    print(f"  memleash: responses = LRUCache(maxsize=1_000_000, max_bytes={BUDGET // MiB} MiB)")
    print()
    print(f"{'requests':>9} | {'dict: traced MiB':>16} {'entries':>8} | "
          f"{'LRUCache: traced MiB':>20} {'entries':>8} {'accounted MiB':>13}")
    print("-" * 87)
    for a, b in zip(results["leaky"], results["memleash"]):
        print(f"{a['requests']:>9,} | {a['traced'] / MiB:>16.1f} {a['entries']:>8,} | "
              f"{b['traced'] / MiB:>20.1f} {b['entries']:>8,} {b['accounted'] / MiB:>13.2f}")
    leaky, fixed = results["leaky"][-1], results["memleash"][-1]
    print()
    print(f"dict:     {leaky['traced'] / MiB:.1f} MiB and still growing "
          f"(hit ratio {leaky['hits'] / REQUESTS:.0%})")
    print(f"LRUCache: {fixed['traced'] / MiB:.1f} MiB, accounted bytes never above the "
          f"{BUDGET // MiB} MiB budget at any sample (hit ratio {fixed['hits'] / REQUESTS:.0%})")
    print()
    print("memleash.report() at the end of the memleash run:")
    print(reports[-1])
    ok = all(s["accounted"] <= BUDGET for s in results["memleash"])
    ok = ok and fixed["traced"] < leaky["traced"] / 4
    if not ok:
        print("demo check failed: the budget did not hold", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--variant":
        run_variant(sys.argv[2])
    else:
        sys.exit(main())
