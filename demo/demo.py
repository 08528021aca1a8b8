"""memleash demo: a small web service with the three leaks Python services die of, and
the three one-line fixes.

The service (``http.server`` on 127.0.0.1, driven by a bounded client loop in the same
process) renders pages and:

1. caches every rendered page, and each page's ETag, in dicts -> two ``LRUCache``s sharing
                                                                one ``memleash.Budget``
2. subscribes each request's handler to a config event and
   never unsubscribes (a strong reference keeps it alive)     -> ``memleash.EventEmitter``
3. opens an access log per request and never closes it        -> ``memleash.tracker.enable()``
   (the fix shows where: the leaked files' allocation site)

Version "leaky" uses a dict and pyee's ``EventEmitter``; version "memleash" changes those
two lines and adds ``tracker.enable()``. Each version runs in its own subprocess on the same
request stream and samples its memory (tracemalloc and RSS) as the requests go by; the
demo prints both curves, memleash's report, and draws the curves to out/demo-memory.png.

Run: make demo   (or: PYTHONPATH=pkg python demo/demo.py [--requests N])
"""

from __future__ import annotations

import argparse
import gc
import http.client
import http.server
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import tracemalloc
import zlib

SAMPLES = 12
BUDGET = 2 * 1024 * 1024   # bytes the memleash caches may account for, together
MiB = 1024 * 1024
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "out")


# ---- the service ------------------------------------------------------------------------

def make_app(variant: str, log_dir: str) -> "App":
    if variant == "leaky":
        from pyee import EventEmitter
        return App(cache={}, etags={},                                     # leak 1
                   bus=EventEmitter(), log_dir=log_dir)                    # leak 2
    import memleash
    memleash.tracker.enable()                                              # fix 3: tells
    budget = memleash.Budget(BUDGET, name="caches")                        # fix 1: one
    return App(cache=memleash.LRUCache(1_000_000, budget=budget, name="responses"),  # budget
               etags=memleash.LRUCache(1_000_000, budget=budget, name="etags"),
               bus=memleash.EventEmitter(name="config"), log_dir=log_dir)  # fix 2


class App:
    def __init__(self, cache, etags, bus, log_dir: str) -> None:
        self.cache = cache
        self.etags = etags
        self.bus = bus
        self.log_dir = log_dir
        self.config = {"theme": "light"}

    def render(self, path: str) -> bytes:
        """The expensive part the cache avoids: a 2-8 KiB page."""
        size = 2048 + zlib.crc32(path.encode()) % 6144   # the same in every process
        return (f"<p>{path} {self.config['theme']}</p>".encode() * (size // 16 + 1))[:size]

    def page(self, path: str) -> bytes:
        body = self.cache.get(path)
        if body is None:
            body = self.cache[path] = self.render(path)
        return body

    def etag(self, path: str, body: bytes) -> str:
        tag = self.etags.get(path)
        if tag is None:
            tag = self.etags[path] = f'"{zlib.crc32(body):08x}-{len(body)}"'
        return tag


class Handler(http.server.BaseHTTPRequestHandler):
    app: App

    def do_GET(self) -> None:
        app = self.app
        app.bus.on("config-changed", self.on_config_changed)   # never removed: leak 2
        self.log = open(os.path.join(app.log_dir, "access.log"), "a")   # never closed: leak 3
        self.log.write(f"GET {self.path}\n")
        body = app.page(self.path)
        self.send_response(200)
        self.send_header("ETag", app.etag(self.path, body))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def on_config_changed(self, config: dict) -> None:
        self.theme = config["theme"]

    def log_message(self, format: str, *args) -> None:   # quiet
        pass


def request_paths(n: int, seed: int = 42):
    """Popular pages come back, new pages keep appearing."""
    rnd = random.Random(seed)
    for i in range(n):
        if rnd.random() < 0.5:
            yield f"/item/{int(rnd.paretovariate(1.2)) % 500}"
        else:
            yield f"/page/{i}"


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def run_variant(variant: str, requests: int) -> None:
    """Child process: serve `requests` requests, print one JSON line per sample."""
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as log_dir:
        Handler.app = make_app(variant, log_dir)
        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port)
        every = requests // SAMPLES
        for n, path in enumerate(request_paths(requests), 1):
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()   # one connection per request, as browsers behind a proxy do
            if n % (every // 2) == 0:
                Handler.app.bus.emit("config-changed", {"theme": "dark" if n % 2 else "light"})
            if n % every == 0:
                gc.collect()
                print(json.dumps({
                    "requests": n, "traced": tracemalloc.get_traced_memory()[0],
                    "rss": rss_bytes(), "fds": open_fds(), "entries": len(Handler.app.cache),
                    "listeners": len(Handler.app.bus.listeners("config-changed")),
                }), flush=True)
        server.shutdown()
        server.server_close()
        if variant == "memleash":
            import memleash
            rep = memleash.report()   # caches, emitters, and the unclosed files' sites
            print(json.dumps({"report": str(rep),
                              "leaked": sum(r.leaked for r in rep.resources)}), flush=True)


# ---- the driver -------------------------------------------------------------------------

def plot(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for variant, style in (("leaky", "o-"), ("memleash", "s-")):
        xs = [s["requests"] for s in results[variant]]
        ax1.plot(xs, [s["traced"] / MiB for s in results[variant]], style, label=variant)
        ax2.plot(xs, [s["rss"] / MiB for s in results[variant]], style, label=variant)
    ax1.set_title("tracemalloc: traced memory")
    ax2.set_title("resident set size (RSS)")
    for ax in (ax1, ax2):
        ax.set_xlabel("requests served")
        ax.set_ylabel("MiB")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("memleash demo: the same service, leaky and with memleash")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        run_variant(args.variant, args.requests)
        return 0
    results, final = {}, {}
    for variant in ("leaky", "memleash"):
        proc = subprocess.run([sys.executable, __file__, "--variant", variant,
                               "--requests", str(args.requests)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            return 1
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
        results[variant] = [line for line in lines if "requests" in line]
        final.update(*[line for line in lines if "report" in line])

    print(f"memleash demo: {args.requests:,} requests to a small http.server service, twice")
    print("  leaky:    responses = {}; etags = {}; bus = pyee.EventEmitter(); "
          "access log never closed")
    print(f"  memleash: responses and etags = LRUCache(budget=b), b = Budget({BUDGET // MiB} MiB); "
          "bus = memleash.EventEmitter(); tracker.enable()")
    print()
    head = (f"{'requests':>8} | {'traced':>7} {'RSS':>6} {'fds':>5} {'cached':>6} {'listeners':>9}")
    print(f"{'':>8}   {'leaky':^38}   {'memleash':^38}")
    print(head + " |" + head.split("|", 1)[1])
    print("-" * len(head + " |" + head.split("|", 1)[1]))
    for a, b in zip(results["leaky"], results["memleash"]):
        row = f"{a['requests']:>8,}"
        for s in (a, b):
            row += (f" | {s['traced'] / MiB:>5.1f}Mi {s['rss'] / MiB:>4.0f}Mi {s['fds']:>5,} "
                    f"{s['entries']:>6,} {s['listeners']:>9,}")
        print(row)
    leaky, fixed = results["leaky"][-1], results["memleash"][-1]
    print()
    print(f"leaky:    {leaky['traced'] / MiB:.1f} MiB traced, {leaky['fds']:,} open files, "
          f"{leaky['listeners']:,} listeners keeping finished handlers alive: still growing")
    print(f"memleash: {fixed['traced'] / MiB:.1f} MiB traced, {fixed['fds']:,} open files, "
          f"{fixed['listeners']:,} listeners: flat")
    print()
    print("memleash.report() at the end of the memleash run (tracker.enable() tracks 1 file")
    print("in 128 by default; the unclosed ones are counted where they were opened):")
    print(final["report"])
    os.makedirs(OUT, exist_ok=True)
    png = os.path.join(OUT, "demo-memory.png")
    plot(results, png)
    print()
    print(f"plot: {png}")
    ok = (all(s["traced"] < leaky["traced"] / 3 for s in results["memleash"][-1:])
          and fixed["listeners"] < 50 and fixed["fds"] < 50
          and final["leaked"] > 0)
    if not ok:
        print("demo check failed: the memleash version did not stay flat or report", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
