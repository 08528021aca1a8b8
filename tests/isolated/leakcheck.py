"""The measuring loop the isolated leak scripts share (the `regrtest -R` rule).

run() calls one_round() `warmup` times, then measures rounds three at a time (a window).
After each round: the reference count of every pooled object must be back where it
started. A window is leaky when every one of its rounds grows the allocated blocks
(sys.getallocatedblocks) by the block floor or more, or every one grows the traced bytes
(tracemalloc) by the byte floor or more, or, on a debug interpreter (`make
test-refleaks`), every one grows the total reference count (sys.gettotalrefcount) at all:
regrtest's rule for reference leaks, which sees a leaked reference to any object, pooled
or not. The first window that is not leaky passes; the script fails when all `windows`
windows are leaky.

Why more than one window: CPython itself grows for a long while under a mixed workload,
by less and less, and unevenly. In refleak_cache.py on 3.13 and 3.14, every traced block
of growth after the warm-up (tracemalloc, grouped by traceback) was allocated by C code
that the pickle round trip's line calls, in nothing a collection can reach: 89 blocks
over rounds 5-14 on 3.13.5, 121 over rounds 5-16 on 3.14, at 17, 18, 14, 8, 9, ... a
round, while one window of 3.13.5 read [37, 49, 23] and the next [47, 56, 14] before
[6, 7, -2]. Three rounds of it can all reach the floor; five windows in a row do not. A
leak does not decay: one block per 10**4 operations is 10 blocks in every round of every
window, so it fails every window, as it failed the first one before, after 12 more rounds.

Before every reading, after the collection, CPython's internal caches are emptied
(sys._clear_internal_caches(); sys._clear_type_cache() before 3.13), as regrtest -R's
dash_R_cleanup() does last. The type attribute cache (4,096 slots, indexed by the type's
version tag and the address of the name) keeps a strong reference to the name of each
attribute it caches. A name made afresh for each look-up, as C code makes it from a C
string, is a new object at a new address: it takes a slot of its own and lives there until
another look-up takes the slot. asyncio's C task wakeup calls PyObject_CallMethod(fut,
"result", NULL) when the future it awaited is a subclass of Future, as gather()'s
_GatheringFuture is; on 3.14, refleak_acached.py (one gather per thread) read +2
references and +2 blocks a round in all five windows, and after 8 rounds the type cache
held 16 mortal names, each "result" (47 bytes, reference count 1) under _GatheringFuture,
the only ones; clearing it released those 2 a round and nothing else (3.11 read 0).
The slots fill too slowly for a warm-up to reach the end: that workload at 4,000
operations a round still grew in rounds 375 to 400. Clearing the caches takes back what
they hold and nothing a leak holds.
"""

import array
import gc
import sys
import tracemalloc

WINDOW = 3


def _leaky(deltas, floor):
    return all(d >= floor for d in deltas)


#: empties the type attribute cache (3.13 and later: and the JIT's executors); see above
_clear_caches = getattr(sys, "_clear_internal_caches", None) or sys._clear_type_cache


def run(one_round, pooled, warmup, block_floor, byte_floor, windows=5):
    rounds = warmup + WINDOW * windows
    gc.collect()
    _clear_caches()
    before = [sys.getrefcount(o) for o in pooled]
    tracemalloc.start()
    # preallocated raw storage: keeping the readings must not allocate (an int object
    # kept per round would itself show up as one block of growth per round)
    blocks, traced = array.array("q", [0] * rounds), array.array("q", [0] * rounds)
    totalrefs = array.array("q", [0] * rounds)
    debug = hasattr(sys, "gettotalrefcount")
    leaks = []
    for r in range(rounds):   # warm-up rounds, then the measured ones
        one_round()
        gc.collect()
        _clear_caches()   # after the collection, whose finalizers may look names up
        after = [sys.getrefcount(o) for o in pooled]
        bad = [(o, b, a) for o, b, a in zip(pooled, before, after) if a != b]
        if bad:
            print("reference counts changed:", bad[:5])
            return 1
        if debug:
            totalrefs[r] = sys.gettotalrefcount()
        blocks[r] = sys.getallocatedblocks()
        traced[r] = tracemalloc.get_traced_memory()[0]
        if r < warmup or (r + 1 - warmup) % WINDOW:
            continue
        first = r + 1 - WINDOW             # the window's rounds: first .. r
        deltas_b = [blocks[i] - blocks[i - 1] for i in range(first, r + 1)]
        deltas_t = [traced[i] - traced[i - 1] for i in range(first, r + 1)]
        line = "allocated-block deltas: %s traced-byte deltas: %s" % (deltas_b, deltas_t)
        leaks = []
        if debug:
            deltas_r = [totalrefs[i] - totalrefs[i - 1] for i in range(first, r + 1)]
            line += " total-refcount deltas: %s" % deltas_r
            if _leaky(deltas_r, 1):
                leaks.append("references grow in every round")
        if _leaky(deltas_b, block_floor) or _leaky(deltas_t, byte_floor):
            leaks.append("memory grows in every round")
        print(line)
        if not leaks:
            return 0
    print("; ".join(leaks), "in each of %d windows of %d rounds: leak" % (windows, WINDOW))
    return 1
