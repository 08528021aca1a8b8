"""Run in a subprocess by tests/test_refleaks.py: memoized calls of every flavour in
rounds — hits, misses, evictions, raising functions, unhashable and hostile keys,
re-entrant calls, cache_clear, method caches of dying instances, copied and pickled ones and
ones whose results refer back to them (see leakcheck)."""

import copy
import os
import pickle
import random
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import leakcheck  # noqa: E402
import memleash  # noqa: E402

OPS = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
ARGS = [f"a{i}" for i in range(40)] + list(range(40)) + [(i, "t") for i in range(20)]


def compute(x, y=0):
    if x == "a0":
        raise LookupError(x)
    return [x, y]


class EqClears:
    """A key whose __eq__ clears the memoized function's cache while it is compared."""

    def __init__(self, target):
        self.target = target

    def __hash__(self):
        return 7

    def __eq__(self, other):
        self.target.cache_clear()
        return False


class Owner:
    __slots__ = ("n", "__weakref__", "__method_cache__")

    def __init__(self, n):
        self.n = n

    @memleash.method_cache(maxsize=8)
    def scaled(self, x):
        return [self.n, x]

    @memleash.method_cache(maxsize=None, ttl=3600)
    def me(self, x):
        return (self, x)                       # refers back: a cycle through the cache

    @property
    @memleash.method_cache
    def child(self):
        return Child(self)

    @classmethod
    @memleash.method_cache
    def default(cls):
        return cls(0)

    @staticmethod
    @memleash.method_cache(maxsize=16)
    def parse(text):
        return [text]



class DictOwner(Owner):
    """With a __dict__: method_cache keeps its caches there, cachedmethod its wrappers."""

    @memleash.cachedmethod(lambda self: CACHES[self.n % 2])
    def shared(self, x):
        return (self.n, x)


class Child:
    def __init__(self, parent):
        self.parent = parent


class Plain:
    @memleash.method_cache
    def me(self):
        return lambda: self                    # a closure over self


CACHES = [memleash.LRUCache(16), memleash.LFUCache(16)]


def method_cache_ops(rnd, x, owners):
    """Instances whose cached results refer back to them, copied, pickled, called through
    the class, a property, a classmethod and a staticmethod."""
    cls = Owner if rnd.random() < 0.5 else DictOwner
    o = cls(rnd.randrange(10))
    o.me(x)
    action = rnd.randrange(10)
    if action < 3:
        o.scaled(x), o.scaled(x)
    elif action < 5:
        cls.scaled(o, x), cls.me(self=o, x=x)
    elif action < 6:
        o.child, cls.parse(x), cls.default()
    elif action < 7 and cls is DictOwner:
        o.shared(x)
    elif action < 8:
        copy.copy(o).me(x)
    elif action < 9:
        pickle.loads(pickle.dumps(Plain())).me()
    elif rnd.random() < 0.2:
        type("Made", (Owner,), {"__slots__": ()}).default()   # a class that dies
    if rnd.random() < 0.3:
        owners.append(o)
    if rnd.random() < 0.01:
        cls.me.cache_clear()


def make_wrappers():
    return [
        memleash.lru_cache(maxsize=32)(compute),
        memleash.lru_cache(maxsize=32, typed=True, max_bytes=4_000)(compute),
        memleash.lru_cache(maxsize=0)(compute),
        memleash.cached(memleash.LRUCache(32), info=True)(compute),
        memleash.cached(memleash.TTLCache(32, ttl=0.001), lock=threading.RLock())(compute),
        memleash.cached(memleash.FIFOCache(32), condition=threading.Condition(), info=True)(compute),
        memleash.cached({}, key=memleash.keys.typedkey)(compute),
        memleash.func.lfu_cache(maxsize=16)(compute),
    ]


def one_round(rnd, wrappers):
    owners = []
    for _ in range(OPS):
        f = wrappers[rnd.randrange(len(wrappers))]
        x = ARGS[rnd.randrange(len(ARGS))]
        op = rnd.randrange(100)
        try:
            if op < 60:
                f(x)
            elif op < 70:
                f(x, y=rnd.randrange(3))
            elif op < 73:
                f([x])                                   # unhashable
            elif op < 75:
                f(EqClears(f))
            elif op < 77:
                f.cache_clear()
            elif op < 80:
                f.cache_info() if hasattr(f, "cache_info") else None
            elif op < 92:
                pass                                     # below: no exception expected
            elif owners:
                owners.pop(rnd.randrange(len(owners)))   # an instance dies
        except (LookupError, TypeError):
            pass
        if 80 <= op < 92:
            method_cache_ops(rnd, x, owners)
    owners.clear()
    Owner.parse.cache_clear()
    for f in wrappers:
        f.cache_clear()
    for c in CACHES:
        c.clear()


def main():
    rnd = random.Random(7)
    wrappers = make_wrappers()
    # small ints are shared by the whole interpreter: their counts are not ours to check
    pooled = [a for a in ARGS if not isinstance(a, int)]
    return leakcheck.run(lambda: one_round(rnd, wrappers), pooled, 4, 10, 4096)


if __name__ == "__main__":
    sys.exit(main())
