"""Issue 26's speed goals judged on one run of bench/run.py: each goal's ratio as this run
measured it (from the tables it recorded), whether it is met, by how much it is missed, and
for a missed goal the hand-written account of where the time goes (bench/goal-notes.md,
from profiling: callgrind's instruction counts, which do not move with the machine's load).

The TinyLFU goals (hit ratio, speed within 1.3x LRU) have their own sections, written by
bench/tinylfu.py.
"""

from __future__ import annotations

import os
import re

NOTES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "goal-notes.md")

HIT = "Hit `c[k]` (10,000 str keys, all present)"
INSERT = "Miss + insert with eviction (full cache of 10,000, 100,000 new keys)"
GET_MISS = "`get` miss (absent keys)"
DELETE = "Delete then re-insert the same key"
ZIPF = ("Zipf(0.99) trace: 1,000,000 requests over 1,000,000 keys, capacity 100,000 "
        "(get, insert on miss)")
SCALING_10K = "Scaling: hit at 10,000 entries"
MEMO_HIT = "Memoized call, hit (int argument, 1,000 results cached)"
MEMO_MISS = "Memoized call, miss + store + eviction (maxsize 200)"
COARSE = "memleash.TTLCache(monotonic_coarse)"      # bench/run.py's name for the row

# (note key, goal, (table, library), (table, library), the ratio's upper bound)
RATIO_GOALS = [
    ("insert", "miss + insert with eviction: memleash.LRUCache at most 0.85x cachebox.LRUCache",
     (INSERT, "memleash.LRUCache"), (INSERT, "cachebox.LRUCache"), 0.85),
    ("get-miss", "`get` miss: memleash.LRUCache at most dict's time",
     (GET_MISS, "memleash.LRUCache"), (GET_MISS, "dict"), 1.00),
    ("ttl-hit", "TTL hit: memleash.TTLCache at most 0.9x cachebox.TTLCache",
     (HIT, "memleash.TTLCache"), (HIT, "cachebox.TTLCache"), 0.90),
    ("ttl-hit-lru", "TTL hit: memleash.TTLCache at most 2x memleash.LRUCache's hit",
     (HIT, "memleash.TTLCache"), (HIT, "memleash.LRUCache"), 2.00),
    ("ttl-hit-coarse", "TTL hit, the opt-in coarse clock: memleash.TTLCache(monotonic_coarse) "
     "at most 0.9x cachebox.TTLCache",
     (HIT, COARSE), (HIT, "cachebox.TTLCache"), 0.90),
    ("ttl-hit-lru-coarse", "TTL hit, the opt-in coarse clock: memleash.TTLCache(monotonic_coarse) "
     "at most 2x memleash.LRUCache's hit",
     (HIT, COARSE), (HIT, "memleash.LRUCache"), 2.00),
    ("hit-10k", "hit at 10,000 entries: memleash.LRUCache at most 1.1x dict",
     (SCALING_10K, "memleash.LRUCache"), (SCALING_10K, "dict"), 1.10),
    ("func-miss", "memoized miss: memleash.func.lru_cache at most 2x memleash.lru_cache",
     (MEMO_MISS, "memleash.func.lru_cache"), (MEMO_MISS, "memleash.lru_cache"), 2.00),
    ("cached-hit", "memoized hit: memleash.cached(LRUCache) at most 1.5x memleash.lru_cache",
     (MEMO_HIT, "memleash.cached(LRUCache)"), (MEMO_HIT, "memleash.lru_cache"), 1.50),
]

# "Every cache row ahead of every peer": each memleash policy against the same policy's
# peers, in each cache table
POLICIES = {
    "memleash.LRUCache": ("cachebox.LRUCache", "lru-dict LRU", "cachetools.LRUCache"),
    "memleash.LFUCache": ("cachebox.LFUCache", "cachetools.LFUCache"),
    "memleash.TTLCache": ("cachebox.TTLCache", "cachetools.TTLCache"),
    COARSE: ("cachebox.TTLCache", "cachetools.TTLCache"),
}
ROW_TABLES = [("hit", HIT), ("miss + insert", INSERT), ("`get` miss", GET_MISS),
              ("delete + re-insert", DELETE), ("Zipf(0.99) trace", ZIPF)]


def read_notes(path: str = NOTES) -> dict:
    """bench/goal-notes.md's items, `- **key**: text` (a text may run over several
    lines), by key."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    notes, key = {}, None
    for line in text.splitlines():
        m = re.match(r"- \*\*([\w-]+)\*\*: (.*)", line)
        if m:
            key = m.group(1)
            notes[key] = m.group(2).strip()
        elif key and line.strip():
            notes[key] += " " + line.strip()
        else:
            key = None
    return notes


def verdict(ratio: float, bound: float) -> str:
    # judged on the ratio as printed (2 decimals), so the table and its verdict agree
    shown = round(ratio, 2)
    return "met" if shown <= bound else f"missed by {shown - bound:.2f}x"


def section(recorded: dict, notes: dict | None = None) -> str:
    """The goals section from `recorded` ({table title: {library: (median, spread)}}).
    A goal whose table did not run (`--only`, `--quick` leaves none out) is listed as
    not measured."""
    notes = read_notes() if notes is None else notes
    lines = ["### Speed goals (issue 26), judged on this run's tables", "",
             "Each ratio is of the medians above. A goal is met when the ratio, as printed, "
             "is at most its bound.", "",
             "| goal | ratio | bound | verdict |", "|---|---:|---:|---|"]
    missed = []

    def median(where):
        title, lib = where
        row = recorded.get(title, {}).get(lib)
        return None if row is None else row[0]

    for key, goal, num, den, bound in RATIO_GOALS:
        a, b = median(num), median(den)
        if a is None or b is None:
            lines.append(f"| {goal} | — | {bound:.2f} | not measured in this run |")
            continue
        v = verdict(a / b, bound)
        lines.append(f"| {goal} | {a / b:.2f} | {bound:.2f} | {v} |")
        if v != "met":
            missed.append(key)
    lines += ["", "Every cache row ahead of every peer: each memleash policy's time over the "
              "fastest peer of the same policy in the same table (at most 1.00 is ahead).", "",
              "| table | memleash | fastest peer | ratio | verdict |", "|---|---|---|---:|---|"]
    for label, title in ROW_TABLES:
        results = recorded.get(title)
        if not results:
            lines.append(f"| {label} | — | — | — | not measured in this run |")
            continue
        for ours, peers in POLICIES.items():
            present = [(results[p][0], p) for p in peers if p in results]
            if ours not in results or not present:
                continue
            t, peer = min(present)
            v = verdict(results[ours][0] / t, 1.00)
            lines.append(f"| {label} | {ours} | {peer} | {results[ours][0] / t:.2f} | {v} |")
            if v != "met":
                # a row goal's note is keyed by its policy and table: `ahead-lru-hit`,
                # `ahead-ttl-coarse-get-miss`, ...
                policy = re.match(r"memleash\.(\w+?)Cache", ours).group(1).lower()
                policy += "-coarse" if ours == COARSE else ""
                missed.append(f"ahead-{policy}-" +
                              re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-"))
    if missed:
        lines += ["", "Where the time goes in each missed goal (bench/goal-notes.md):", ""]
        for key in dict.fromkeys(missed):
            lines.append(f"- {key}: " + (notes.get(key) or "no note yet (bench/goal-notes.md "
                                                  "is written by hand from profiling)."))
    return "\n".join(lines) + "\n"


def recorded_from(text: str) -> dict:
    """The tables of a written docs/benchmarks.md, as bench/run.py recorded them:
    {title: {library: (median, spread)}}, the scaling table's rows as its per-size
    entries."""
    recorded: dict = {}
    for part in text.split("\n### ")[1:]:
        title, rows = part.split("\n", 1)[0], {}
        for line in part.splitlines():
            m = re.match(r"\| ([^|]+?) \| ([\d.]+) \| ([\d.]+) \|", line)
            if m and not title.startswith("Scaling"):
                rows[m.group(1)] = (float(m.group(2)), float(m.group(3)))
            m = re.match(r"\| ([\d,]+) \| ([\d.]+) \| ([\d.]+) \| [\d.]+ \|$", line)
            if m and title.startswith("Scaling"):
                recorded[f"Scaling: hit at {m.group(1)} entries"] = {
                    "dict": (float(m.group(2)), 0.0), "memleash.LRUCache": (float(m.group(3)), 0.0)}
        if rows:
            recorded[title] = rows
    return recorded

