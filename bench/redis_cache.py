"""Redis workloads for bench/run.py, and `make bench-redis` on their own.

    tools/with-redis.py .venv/bin/python bench/redis_cache.py [--quick] [--out docs/benchmarks.md]

Needs a server (REDIS_URL; tools/with-redis.py starts one). With --out, replaces the
"Redis: ..." sections of that file and leaves every other section as it is.

- GET through redis-py 8.1.0: no client-side cache, memleash.redis.ClientCache, redis-py's
  own DefaultCache, interleaved within every round (as bench/run.py does): latency per
  GET (median and p99 of single timed calls) and throughput (GETs per second over the
  round), for reads that all hit, and for reads with another client writing one key in
  ten (each write invalidates).
- TieredCache reads: a local hit, and a plain GET for reference.
- The invalidation delay: four worker processes (tests/redis_worker.py, each one
  TieredCache); one writes, the three others record (time.monotonic(), system-wide) when
  Redis's invalidation reached their local copy; the delay is that time minus the time
  the writer's write returned.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import redis
from redis.cache import CacheConfig

import memleash
from memleash.redis import ClientCache

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sections import replace_sections  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
QUICK = False


def url() -> str:
    found = os.environ.get("REDIS_URL")
    if not found:
        sys.exit("bench/redis_cache.py: REDIS_URL is not set (run it under tools/with-redis.py)")
    return found


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- GET with and without a client-side cache -----------------------------------------

N_KEYS = 1_000
VALUE = b"x" * 100


def csc_clients(u: str) -> dict[str, object]:
    return {
        "no client-side cache": lambda: redis.Redis.from_url(u, protocol=3),
        "memleash ClientCache": lambda: redis.Redis.from_url(
            u, protocol=3, cache=ClientCache(maxsize=10_000, max_bytes=8 << 20)),
        "redis-py DefaultCache": lambda: redis.Redis.from_url(
            u, protocol=3, cache_config=CacheConfig(max_size=10_000)),
    }


def get_workload(writes_every: int) -> dict[str, tuple[float, float, float]]:
    """Per client: (median ns, p99 ns, GETs/s), medians over the rounds."""
    u = url()
    writer = redis.Redis.from_url(u)
    keys = [f"bench:get:{i}" for i in range(N_KEYS)]
    writer.mset({k: VALUE for k in keys})
    reps = 2 if QUICK else 5
    rounds = 3 if QUICK else 7
    makers = csc_clients(u)
    per: dict[str, list[tuple[float, float, float]]] = {name: [] for name in makers}
    for _ in range(rounds):
        for name, make in makers.items():
            client = make()            # type: ignore[operator]
            for k in keys:             # warm: every key read once
                client.get(k)
            samples = []
            n = 0
            gc.collect()
            gc.disable()
            start = time.perf_counter()
            for _ in range(reps):
                for i, k in enumerate(keys):
                    if writes_every and i % writes_every == 0:
                        writer.set(k, VALUE)
                    t0 = time.perf_counter_ns()
                    client.get(k)
                    samples.append(time.perf_counter_ns() - t0)
                    n += 1
            elapsed = time.perf_counter() - start
            gc.enable()
            per[name].append((statistics.median(samples), pct(samples, 0.99), n / elapsed))
            client.close()
    writer.close()
    return {name: tuple(statistics.median(r[i] for r in rs) for i in range(3))   # type: ignore[misc]
            for name, rs in per.items()}


def get_table(title: str, results: dict[str, tuple[float, float, float]]) -> str:
    base = results["memleash ClientCache"]
    lines = [f"### {title}", "",
             "| client | GET median (µs) | GET p99 (µs) | GETs/s | latency ratio to memleash |",
             "|---|---:|---:|---:|---:|"]
    for name, (med, p99, rate) in sorted(results.items(), key=lambda kv: kv[1][0]):
        lines.append(f"| {name} | {med / 1000:.1f} | {p99 / 1000:.1f} | {rate:,.0f} | "
                     f"{med / base[0]:.2f} |")
    return "\n".join(lines) + "\n"


# ---- TieredCache reads ------------------------------------------------------------------

def tiered_workload() -> str:
    u = url()
    client = redis.Redis.from_url(u)
    tc = memleash.TieredCache(memleash.LRUCache(10_000, max_bytes=8 << 20), client,
                              namespace="bench-tiered")
    value = {"id": 1, "name": "x" * 80}
    keys = [f"k{i}" for i in range(N_KEYS)]
    for k in keys:
        tc[k] = value
    time.sleep(0.2)                     # the echoes of these writes
    for k in keys:
        tc[k]                           # held locally from here on
    rounds = 3 if QUICK else 7
    rows: dict[str, list[float]] = {"TieredCache read, local hit": [],
                                    "plain GET (redis-py, RESP2), for reference": [],
                                    "plain GET + pickle.loads": []}
    import pickle

    for _ in range(rounds):
        for name in rows:
            samples = []
            for k in keys:
                rk = tc.redis_key(k)
                t0 = time.perf_counter_ns()
                if name.startswith("TieredCache"):
                    tc[k]
                elif name.endswith("reference"):
                    client.get(rk)
                else:
                    pickle.loads(client.get(rk))    # type: ignore[arg-type]
                samples.append(time.perf_counter_ns() - t0)
            rows[name].append(statistics.median(samples))
    hits = tc.l1._ml_stats()["hits"]   # type: ignore[attr-defined]
    tc.clear()
    tc.close()
    client.close()
    lines = ["### Redis: TieredCache read of a 100-byte dict (1,000 keys held locally)", "",
             f"Local hits during the run: {hits:,}.", "",
             "| read | median (µs) |", "|---|---:|"]
    for name, meds in rows.items():
        lines.append(f"| {name} | {statistics.median(meds) / 1000:.2f} |")
    return "\n".join(lines) + "\n"


# ---- the invalidation delay --------------------------------------------------------------

def delay_workload() -> tuple[str, dict[str, float]]:
    u = url()
    namespace = f"bench-delay-{os.getpid()}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "pkg"), *sys.path]))
    workers = [subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "redis_worker.py"),
                                 u, namespace], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, env=env) for _ in range(4)]

    def call(w: subprocess.Popen[str], **req: object) -> dict[str, object]:
        assert w.stdin and w.stdout
        w.stdin.write(json.dumps(req) + "\n")
        w.stdin.flush()
        return json.loads(w.stdout.readline())   # type: ignore[no-any-return]

    writes = 300 if QUICK else 2_000
    returned: dict[str, tuple[int, float]] = {}
    for w in workers:
        call(w, op="stamps")
    for n in range(writes):
        i = n % 4
        key = f"d{n}"
        for j, w in enumerate(workers):          # every process holds the old value
            if j != i:
                call(w, op="get", key=key)
        reply = call(workers[i], op="set", key=key, value=n)
        returned[key] = (i, float(reply["t"]))   # type: ignore[arg-type]
    delays = []
    for j, w in enumerate(workers):
        for key, at in call(w, op="stamps")["stamps"]:   # type: ignore[misc]
            if key.startswith(namespace + ":d"):
                k = key[len(namespace) + 1:]
                writer, t = returned[k]
                if writer != j:
                    delays.append((at - t) * 1e6)
    for w in workers:
        assert w.stdin
        w.stdin.write(json.dumps({"op": "quit"}) + "\n")
        w.stdin.close()
        w.wait()
        assert w.stdout
        w.stdout.close()
    redis.Redis.from_url(u).delete(*[f"{namespace}:{k}" for k in returned])
    expected = writes * 3
    figures = {"p50": pct(delays, 0.5), "p99": pct(delays, 0.99), "max": max(delays),
               "min": min(delays), "samples": len(delays), "expected": expected}
    lines = [f"### Redis: invalidation delay across four processes ({writes:,} writes)", "",
             "Each write by one TieredCache process, measured in each of the three others: "
             "when Redis's invalidation reached its local copy (`time.monotonic()`, "
             "system-wide) minus when the writer's write returned. Negative: the copy was "
             f"dropped before the write returned. Samples: {len(delays):,} of {expected:,}.",
             "", "| p50 (µs) | p99 (µs) | max (µs) | min (µs) |", "|---:|---:|---:|---:|",
             f"| {figures['p50']:.0f} | {figures['p99']:.0f} | {figures['max']:.0f} | "
             f"{figures['min']:.0f} |"]
    return "\n".join(lines) + "\n", figures


def server_version() -> str:
    return str(redis.Redis.from_url(url()).info("server")["redis_version"])


def sections(quick: bool) -> str:
    global QUICK
    QUICK = quick
    out = []
    print("bench: redis GET (hits) ...", file=sys.stderr, flush=True)
    out.append(get_table(
        f"Redis: GET through redis-py {redis.__version__}, {N_KEYS:,} keys all cached "
        f"(100-byte values, redis-server {server_version()} on loopback)", get_workload(0)))
    print("bench: redis GET (writes) ...", file=sys.stderr, flush=True)
    out.append(get_table(
        "Redis: GET through redis-py, another client writing one key in ten (each write "
        "invalidates)", get_workload(10)))
    print("bench: redis TieredCache ...", file=sys.stderr, flush=True)
    out.append(tiered_workload())
    print("bench: redis invalidation delay ...", file=sys.stderr, flush=True)
    text, _ = delay_workload()
    out.append(text)
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    started = time.time()
    text = sections(args.quick)
    print(f"bench/redis_cache.py: {time.time() - started:.0f} s, Python {platform.python_version()}",
          file=sys.stderr)
    if args.out:
        replace_sections(args.out, text, "### Redis:")
    print(text)


if __name__ == "__main__":
    main()
