"""Caches under a collection at nearly every allocation.

With gc.set_threshold(1) a collection can run at any allocation of a GC-tracked object
that a cache's C code makes, and with it the finalizers of cyclic garbage: Python code
that here stores, removes, clears, reconfigures (__setstate__) and pops. Each operation
below once sized a list by the entry count, allocated it, and then walked the entries the
finalizer had changed meanwhile (a write past the list's end), or removed an entry it had
named before the allocation (an expired entry's pair): heap corruption, caught by -X dev's
debug allocator or a segfault. The child checks what each operation returned against the
cache as it was when the operation ended.
"""

import pytest

from hostile import run_isolated

CHURN = r'''
import copy, gc, pickle, random, sys
import memleash

class Clock:
    now = 0
    def __call__(self):
        return Clock.now

def ttu(k, v, now):
    return now + 100

NAMES = ["Cache", "LRUCache", "FIFOCache", "LFUCache", "RRCache", "TTLCache", "TLRUCache",
         "TinyLFUCache"]

def make(name, budget):
    cls = getattr(memleash, name)
    kw = {"getsizeof": len, "max_bytes": 50_000} if budget else {}
    if name == "TTLCache":
        return cls(64, 100, timer=Clock(), **kw)
    if name == "TLRUCache":
        return cls(64, ttu, timer=Clock(), **kw)
    return cls(64, **kw)

class Churn:
    # cyclic garbage whose finalizer changes the cache and leaves more such garbage
    cache = None
    left = 0
    ran = 0
    state = None
    rnd = random.Random(7)

    def __init__(self):
        self.me = self

    def __del__(self):
        c = Churn.cache
        if c is None or Churn.left <= 0:
            return
        Churn.left -= 1
        Churn.ran += 1
        r = Churn.rnd.randrange(6)
        try:
            if r == 0:
                for k in range(5):
                    c[("n", Churn.left, k)] = "v" * (k + 1)
            elif r == 1:
                for k in list(c.keys())[:3]:
                    c.pop(k, None)
            elif r == 2:
                c.clear()
            elif r == 3:
                c.__setstate__(Churn.state)
            elif r == 4:
                c.popitem()
            else:
                c.get(next(iter(c), None))
        except (KeyError, RuntimeError):
            pass
        Churn()

def check(c):
    keys = list(c)
    assert len(keys) == len(c) and len(set(map(id, keys))) == len(keys)
    assert all(k in c for k in keys)
    if c.maxbytes is not None:
        assert c.currbytes <= c.maxbytes

def run(op, c):
    if op == "getstate":
        d = type(c).__new__(type(c))
        d.__setstate__(c.__getstate__())
        check(d)
    elif op == "pickle":
        check(pickle.loads(pickle.dumps(c)))
    elif op == "copy":
        check(copy.copy(c))
    elif op == "deepcopy":
        check(copy.deepcopy(c))
    elif op == "repr":
        assert repr(c).startswith(type(c).__name__)
    elif op == "iter":
        for k in c:
            pass
    elif op == "items":
        for k, v in list(c.items()):
            assert isinstance(v, str)
    elif op == "currbytes":
        assert c.currbytes >= 0
    elif op == "report":
        memleash.report()
    elif op == "expire":
        if hasattr(c, "expire"):
            Clock.now += 150                # everything stored so far has expired
            for k, v in c.expire():
                assert isinstance(v, str)

ran = 0
for budget in (False, True):
    for name in NAMES:
        c = make(name, budget)
        for k in range(40):
            c[k] = "x" * (k % 7 + 1)
        Churn.state = c.__getstate__()
        for rnd in range(25):
            for k in range(rnd % 10):
                c[("r", rnd, k)] = "y" * (k + 1)
            # the free lists emptied first: a list, dict or tuple taken from one is not
            # an allocation that can start a collection (3.11)
            hold = ([[] for _ in range(100)], [{} for _ in range(100)],
                    [(i, -i) for i in range(2100)])
            Churn.cache, Churn.left, Churn.ran = c, 30, 0
            Churn()
            gc.set_threshold(1)
            try:
                run(OP, c)
            except RuntimeError as exc:     # a plain iterator meets a changed cache
                assert "during iteration" in str(exc), exc
            finally:
                gc.set_threshold(700)
                del hold
                ran += Churn.ran
                Churn.cache = None
                gc.collect()
            check(c)
print("finalizers", ran)
'''

OPS = ["getstate", "pickle", "copy", "deepcopy", "repr", "iter", "items", "currbytes",
       "report", "expire"]


@pytest.mark.parametrize("op", OPS)
def test_caches_under_a_collection_at_nearly_every_allocation(op):
    out = run_isolated(f"OP = {op!r}\n" + CHURN, timeout=300, dev=True)
    assert int(out.split()[-1]) > 0     # the finalizers did run inside the operations


def test_getstate_when_a_finalizer_sets_another_kind_of_state():
    # a collection at one of __getstate__'s allocations runs a finalizer that gives the
    # TTLCache an untimed LRU state: __getstate__ compared the new kind with the one read
    # once before its retry loop, and retried forever. It returns one consistent state.
    out = run_isolated(r'''
import gc, faulthandler, memleash
faulthandler.dump_traceback_later(60, exit=True)
c = memleash.TTLCache(20, ttl=100)
for i in range(20):
    c[i] = "x"
other = memleash.LRUCache(20)
other[1] = 1
OTHER_STATE = other.__getstate__()
class Mut:
    def __init__(self):
        self.me = self
    def __del__(self):
        c.__setstate__(OTHER_STATE)
hold = ([[] for _ in range(100)], [{} for _ in range(100)])
gc.collect()
gc.disable()
Mut()
gc.set_threshold(1)
gc.enable()
state = c.__getstate__()
gc.set_threshold(700)
d = memleash.TTLCache.__new__(memleash.TTLCache)
d.__setstate__(state)
print(sorted(d.items()) == sorted(c.items()), len(d))
''', timeout=120, dev=True)
    assert out.split() == ["True", "1"]
