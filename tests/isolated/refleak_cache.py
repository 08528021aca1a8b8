"""Run in a subprocess by tests/test_refleaks.py: mixed cache operations in rounds.

Exit status 0 when clean; otherwise prints what leaked. Two checks, as `regrtest -R`:
  - every pooled key and value is back to its starting reference count after each round;
  - the allocated blocks (sys.getallocatedblocks) and traced bytes (tracemalloc) do not
    grow by the noise floor (10 blocks, 4 KiB a round) or more in every round of each of
    leakcheck's windows of measured rounds after the warm-up. The interpreter's own growth
    is a few blocks and a few hundred bytes a round, and tens of blocks for a while (the
    pickle round trip's, see leakcheck); a leak on any path that one operation in 10**4
    takes adds at least 10 blocks in every round. regrtest -R likewise ignores tiny deltas.
"""

import datetime
import os
import pickle
import random
import sys

sys.path.insert(0, sys.argv[1])   # tests/ (hostile.py)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import leakcheck  # noqa: E402
import memleash  # noqa: E402
from hostile import DelHook, EqHook, RaisingEq, RaisingHash  # noqa: E402

OPS = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
# private objects only: their reference counts move with nothing but this workload
KEYS = [f"k{i}" for i in range(300)] + [10**6 + i for i in range(300)] + [(10**6 + i, "t") for i in range(100)]
VALUES = [b"v" * (i % 64) for i in range(200)] + [object() for _ in range(50)]


class Hooked(memleash.LRUCache):
    def popitem(self):
        return super().popitem()

    def __missing__(self, key):
        return None


def sizes(k, v):
    return 40 + (len(v) if isinstance(v, bytes) else 16)


def make_caches():
    return [
        memleash.LRUCache(128),
        memleash.Cache(64, getsizeof=lambda v: 1 + (len(v) if isinstance(v, bytes) else 1) % 7),
        memleash.LRUCache(1000, max_bytes=6000),
        memleash.LRUCache(1000, max_bytes=4000, sizeof=sizes),
        Hooked(50),
        memleash.FIFOCache(64, max_bytes=5000),
        memleash.LFUCache(64),
        memleash.TinyLFUCache(64, max_bytes=5000),
        memleash.RRCache(64, choice=lambda keys: keys[len(keys) // 2]),
        memleash.RRCache(64, max_bytes=4000),
        memleash.TTLCache(64, ttl=0.0005),
        memleash.TTLCache(64, ttl=datetime.timedelta(milliseconds=1), timer=datetime.datetime.now),
        memleash.TLRUCache(64, ttu=lambda k, v, now: now + (0.001 if isinstance(v, bytes) else -1)),
    ]


# The whole workload warms up slowly: growth of ~10-25 blocks a round that shrinks to
# 0-5 by the fifth round, whichever hostile operation is switched off, and none with any
# one kind of operation alone or with cachetools as the pickled cache. A leak does not
# shrink: it grows by the same amount every round.
WARMUP = 4
BLOCK_FLOOR = 10
BYTE_FLOOR = 4096
PICKLED = 3   # the one cache that is pickled; it never holds hostile keys


def one_round(rnd, caches):
    for _ in range(OPS):
        j = rnd.randrange(len(caches))
        c = caches[j]
        k = KEYS[rnd.randrange(len(KEYS))]
        v = VALUES[rnd.randrange(len(VALUES))]
        op = rnd.randrange(100)
        try:
            if op < 40:
                c[k] = v
            elif op < 60:
                c.get(k)
            elif op < 65:
                c[k]
            elif op < 70:
                c.pop(k, None)
            elif op < 73:
                del c[k]
            elif op < 76:
                c.popitem()
            elif op < 82:
                c.setdefault(k, v)
            elif op < 88:
                k in c
            elif op < 89:
                list(c.items())
            elif op < 90:
                # Only one cache is pickled, and it never holds hostile keys: pickling
                # a cache that holds an EqHook whose callback is the cache's own bound
                # method grows CPython's memory for a while (cachetools' caches show
                # the same curve), which would hide what this script measures.
                pickle.loads(pickle.dumps(caches[PICKLED]))
            elif j == PICKLED:
                c[k] = v
            elif op < 92:
                c[RaisingHash()] = v
            elif op < 94:
                c[RaisingEq(k, hash_value=hash(KEYS[0]))] = v
            elif op < 95:
                c[EqHook(k, on_eq=c.clear, hash_value=hash(k))] = v
            elif op < 96:
                c[k] = DelHook(lambda: None)
            elif op < 97:
                c[k] = b"x" * 100_000   # too large for the byte budgets
            elif op < 98:
                repr(c)
            elif op < 99:
                c.currbytes, c._ml_referents, c._ml_stats()    # what report() and pympler read
                if op == 98 and rnd.random() < 0.1:
                    memleash.report().to_dict()
                    memleash.LRUCache(4, name="transient")["k"] = v
            else:
                c.clear()
        except (KeyError, ValueError, ZeroDivisionError, ArithmeticError):
            pass
    for c in caches:
        c.clear()


def main():
    rnd = random.Random(1234)
    caches = make_caches()
    return leakcheck.run(lambda: one_round(rnd, caches), KEYS + VALUES, WARMUP, BLOCK_FLOOR,
                         BYTE_FLOOR)


if __name__ == "__main__":
    sys.exit(main())
