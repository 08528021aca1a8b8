"""The measuring loop the isolated leak scripts share (the `regrtest -R` rule).

run() calls one_round() WARMUP + 3 times. After each round: the reference count of every
pooled object must be back where it started, and the measured rounds must not all grow
the allocated blocks (sys.getallocatedblocks) or the traced bytes (tracemalloc) by the
noise floor or more. On a debug interpreter (`make test-refleaks`), the total reference
count (sys.gettotalrefcount) must not grow in every measured round either: regrtest's
rule for reference leaks, which sees a leaked reference to any object, pooled or not.
"""

import array
import gc
import sys
import tracemalloc


def run(one_round, pooled, warmup, block_floor, byte_floor):
    rounds = warmup + 3
    before = [sys.getrefcount(o) for o in pooled]
    tracemalloc.start()
    # preallocated raw storage: keeping the readings must not allocate (an int object
    # kept per round would itself show up as one block of growth per round)
    blocks, traced = array.array("q", [0] * rounds), array.array("q", [0] * rounds)
    totalrefs = array.array("q", [0] * rounds)
    debug = hasattr(sys, "gettotalrefcount")
    for r in range(rounds):   # warm-up rounds, then the measured ones
        one_round()
        gc.collect()
        after = [sys.getrefcount(o) for o in pooled]
        bad = [(o, b, a) for o, b, a in zip(pooled, before, after) if a != b]
        if bad:
            print("reference counts changed:", bad[:5])
            return 1
        if debug:
            totalrefs[r] = sys.gettotalrefcount()
        blocks[r] = sys.getallocatedblocks()
        traced[r] = tracemalloc.get_traced_memory()[0]
    deltas_b = [blocks[i] - blocks[i - 1] for i in range(warmup, rounds)]
    deltas_t = [traced[i] - traced[i - 1] for i in range(warmup, rounds)]
    print("allocated-block deltas:", deltas_b, "traced-byte deltas:", deltas_t)
    if debug:
        deltas_r = [totalrefs[i] - totalrefs[i - 1] for i in range(warmup, rounds)]
        print("total-refcount deltas:", deltas_r)
        if all(d >= 1 for d in deltas_r):
            print("references grow in every round: leak")
            return 1
    if all(d >= block_floor for d in deltas_b) or all(d >= byte_floor for d in deltas_t):
        print("memory grows in every round: leak")
        return 1
    return 0
