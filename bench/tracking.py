"""What resource tracking costs: instruction counts under callgrind (the gate) and wall-clock.

One fixed loop (``open(os.devnull, "rb")`` then ``close()``, the open()-heavy case), run in
a fresh interpreter per setting:

- ``none``: no memleash imported at all (the floor);
- ``deps``: no memleash, but the standard modules it imports (asyncio, socket, subprocess,
  sqlite3): importing them alone moves glibc malloc's path for the file's 8 KiB buffer;
- ``imported``: memleash imported, ``enable()`` never called: the base of the limits,
  so that they measure what tracking costs per ``open()``, not the import's heap layout;
- ``disabled``: ``tracker.enable()`` at level ``disabled`` (``open`` is memleash's wrapper,
  which takes one branch);
- ``simple``: ``tracker.enable()`` at the default level (1 in 128 files tracked, one frame);
- ``paranoid``: every file tracked, 8 frames;
- ``tracemalloc(1)``: no memleash, ``tracemalloc.start(1)``, for scale.

Instructions per iteration come from two runs of each setting with N and 2N iterations:
the difference is the loop alone (start-up, imports and one-time hooking cancel out), and
callgrind's counts do not move with the machine's load. The explicit ``track()`` of one
object is measured the same way (a small class with ``close()``: made, tracked and closed,
against made and closed).

    python bench/tracking.py --gate      # instruction counts, exit 1 over a limit
    python bench/tracking.py --wall      # wall-clock ratios (noisy; reported, not gated)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))

# setting -> (what it is, the limit on instructions per iteration as a ratio to BASE)
BASE = "imported"
OPEN_SETTINGS = {
    "none": ("no memleash imported", None),
    "deps": ("no memleash; asyncio, socket, subprocess, sqlite3 imported", None),
    "imported": ("memleash imported, tracker not enabled", None),
    "disabled": ("tracker.enable(), level disabled", 1.01),
    "simple": ("tracker.enable(), level simple (default)", 1.03),
    "paranoid": ("tracker.enable(), level paranoid, 8 frames", 1.5),
    "tracemalloc": ("no memleash, tracemalloc.start(1)", None),
}
TRACK_SETTINGS = {
    "untracked": ("Handle() then close()", None),
    "track": ("memleash.track(Handle()) then close()", None),
}


# ---- the child: one setting, n iterations -------------------------------------------

class Handle:
    """A user's own handle: something with close()."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def setup(setting: str):
    """Prepare the interpreter for `setting`; return the loop body."""
    if setting == "tracemalloc":
        import tracemalloc
        tracemalloc.start(1)
    elif setting == "imported":
        import memleash  # noqa: F401
    elif setting == "deps":
        import asyncio, socket, subprocess, sqlite3  # noqa: F401,E401
    elif setting in ("disabled", "simple", "paranoid"):
        from memleash import tracker
        tracker.set_level(setting, depth=8)
        tracker.seed(1)
        tracker.enable(files=True, sockets=False)
    path = os.devnull
    if setting in TRACK_SETTINGS:
        if setting == "track":
            import memleash
            track = memleash.track
        else:
            def track(obj):
                return obj

        def body() -> None:
            track(Handle()).close()
        return body

    def body() -> None:   # noqa: F811 - one of two bodies is returned
        open(path, "rb").close()
    return body


def child(setting: str, n: int) -> None:
    body = setup(setting)
    for _ in range(n):
        body()


# ---- instruction counts ---------------------------------------------------------------

def instructions(setting: str, n: int, script: str = __file__) -> int:
    """Instructions callgrind counts for a whole run of `setting` with n iterations
    (`script --child setting n`: this file's, or another bench script's)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        # a fixed hash seed: str hashes (and so every dict's probing) are the same in
        # every run, or the counts move by a few percent from run to run
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        "--dump-line=no", "--compress-strings=no",
                        sys.executable, script, "--child", setting, str(n)],
                       check=True, capture_output=True, env=dict(os.environ, PYTHONHASHSEED="0"))
        with open(out) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
    raise RuntimeError("callgrind wrote no summary")


def per_iteration(settings, n: int, script: str = __file__) -> dict[str, float]:
    """Instructions per iteration of each setting: (I(2n) - I(n)) / n, two runs at a time."""
    jobs = [(s, k) for s in settings for k in (n, 2 * n)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        counts = dict(zip(jobs, pool.map(lambda j: instructions(*j, script=script), jobs)))
    return {s: (counts[(s, 2 * n)] - counts[(s, n)]) / n for s in settings}


def instruction_table(n: int) -> tuple[str, list[str]]:
    """The markdown table of instruction counts and the list of limits broken."""
    opened = per_iteration(OPEN_SETTINGS, n)
    tracked = per_iteration(TRACK_SETTINGS, n)
    base, none = opened[BASE], opened["none"]
    lines = [f"Instructions per iteration under callgrind ((I(2N) - I(N)) / N, N = {n:,}); "
             "the limits are on the ratio to memleash imported but not enabled.", "",
             "| setting | instructions/iteration | ratio to not enabled | ratio to no memleash "
             "| limit |", "|---|---:|---:|---:|---:|"]
    broken = []
    for setting, (what, limit) in OPEN_SETTINGS.items():
        ratio = opened[setting] / base
        lines.append(f"| `open()` + `close()`: {what} | {opened[setting]:,.0f} | {ratio:.4f} | "
                     f"{opened[setting] / none:.4f} | " + (f"≤ {limit}" if limit else "") + " |")
        if limit and ratio > limit:
            broken.append(f"{setting}: {ratio:.4f} > {limit}")
    extra = tracked["track"] - tracked["untracked"]
    lines += ["", f"Explicit `memleash.track()` of one object: {extra:,.0f} instructions "
              f"({tracked['untracked']:,.0f} for the object made and closed untracked, "
              f"{tracked['track']:,.0f} tracked).", ""]
    return "\n".join(lines), broken


# ---- wall-clock -------------------------------------------------------------------------

def wall_ns(setting: str, n: int, rounds: int) -> list[float]:
    code = ("import sys, time; sys.path.insert(0, %r); import tracking; "
            "body = tracking.setup(%r); [body() for _ in range(%d)]; r = []\n"
            "for _ in range(%d):\n"
            "    t0 = time.perf_counter_ns()\n"
            "    for _ in range(%d): body()\n"
            "    r.append((time.perf_counter_ns() - t0) / %d)\n"
            "print(*r)") % (HERE, setting, n // 10, rounds, n, n)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    return [float(x) for x in out.split()]


def wall_table(n: int = 20_000, rounds: int = 7) -> str:
    """Wall-clock ns per iteration, each setting in its own interpreter, settings
    interleaved round by round; median and spread."""
    settings = list(OPEN_SETTINGS) + list(TRACK_SETTINGS)
    times: dict[str, list[float]] = {s: [] for s in settings}
    for _ in range(rounds):
        for s in settings:
            times[s] += wall_ns(s, n, 1)
    med = {s: statistics.median(t) for s, t in times.items()}
    lines = [f"Wall-clock ns per iteration ({rounds} rounds of {n:,}, median and spread; "
             "noisy, not gated).", "",
             "| setting | ns/iteration | spread | ratio to not enabled / untracked |",
             "|---|---:|---:|---:|"]
    for group, base in ((OPEN_SETTINGS, BASE), (TRACK_SETTINGS, "untracked")):
        for s, (what, _) in group.items():
            prefix = "`open()` + `close()`: " if group is OPEN_SETTINGS else ""
            lines.append(f"| {prefix}{what} | {med[s]:,.0f} | {max(times[s]) - min(times[s]):,.0f} "
                         f"| {med[s] / med[base]:.2f} |")
    per_object = med["track"] - med["untracked"]
    lines += ["", f"Explicit `memleash.track()`: {per_object:,.0f} ns per object.", ""]
    return "\n".join(lines)


def section(n_instr: int = 2000, wall_rounds: int = 7) -> str:
    """The benchmarks.md section: instruction counts (gated) and wall-clock."""
    text, broken = instruction_table(n_instr)
    out = ["### Resource tracking: cost per open() and per track()", "",
           "An `open(os.devnull, \"rb\")` + `close()` loop, each setting in a fresh "
           "interpreter (bench/tracking.py); `make test-cost` gates the instruction counts.",
           "", text]
    if broken:
        out.append("**Over a limit:** " + "; ".join(broken) + "\n")
    out.append(wall_table(rounds=wall_rounds))
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2, metavar=("SETTING", "N"))
    ap.add_argument("--gate", action="store_true", help="instruction counts; exit 1 over a limit")
    ap.add_argument("--wall", action="store_true", help="wall-clock ratios")
    ap.add_argument("-n", type=int, default=2000, help="iterations for callgrind")
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    if args.gate:
        t0 = time.time()
        text, broken = instruction_table(args.n)
        print(text)
        print(f"tracking cost gate: {time.time() - t0:.0f} s")
        if broken:
            print("tracking cost gate FAILED: " + "; ".join(broken))
            sys.exit(1)
    if args.wall:
        print(wall_table())


if __name__ == "__main__":
    main()
