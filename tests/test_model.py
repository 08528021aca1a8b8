"""Operation by operation, memleash's caches agree with a reference model and, where the
model has no byte budget, with cachetools itself (results, exceptions, repr)."""

import cachetools
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import memleash
from model import POLICY, ModelCache, middle, nbytes, units

KEYS = st.integers(0, 12)
VALUES = st.integers(0, 40)


CONFIGS = [
    # (class name, maxsize, getsizeof, max_bytes)
    (name, maxsize, getsizeof, max_bytes)
    for name in POLICY
    for maxsize, getsizeof, max_bytes in [(4, None, None), (10, units, None), (6, None, 150),
                                          (12, units, 120), (0, None, None)]
]


class CacheMachine(RuleBasedStateMachine):
    @initialize(config=st.sampled_from(CONFIGS))
    def setup(self, config):
        name, maxsize, getsizeof, max_bytes = config
        budget = {} if max_bytes is None else {"max_bytes": max_bytes, "sizeof": nbytes}
        extra = {"choice": middle} if name == "RRCache" else {}
        self.cache = getattr(memleash, name)(maxsize, getsizeof=getsizeof, **extra, **budget)
        self.model = ModelCache(maxsize, POLICY[name], getsizeof, max_bytes,
                                nbytes if max_bytes is not None else None, choice=middle)
        # cachetools has no TinyLFUCache: the model alone is its reference
        self.peer = (getattr(cachetools, name)(maxsize, getsizeof=getsizeof, **extra)
                     if max_bytes is None and hasattr(cachetools, name) else None)

    def same(self, op):
        """Runs op on every implementation; results or exception types must agree."""
        outcomes = []
        for impl in (self.cache, self.model, self.peer):
            if impl is None:
                continue
            try:
                outcomes.append(("ok", op(impl)))
            except (KeyError, ValueError) as exc:
                outcomes.append((type(exc).__name__, None))
        assert all(o == outcomes[0] for o in outcomes), outcomes
        return outcomes[0]

    @rule(key=KEYS, value=VALUES)
    def set(self, key, value):
        self.same(lambda c: c.__setitem__(key, value))

    @rule(key=KEYS)
    def getitem(self, key):
        self.same(lambda c: c[key])

    @rule(key=KEYS)
    def get(self, key):
        self.same(lambda c: c.get(key, "dflt"))

    @rule(key=KEYS)
    def contains(self, key):
        self.same(lambda c: key in c)

    @rule(key=KEYS)
    def delete(self, key):
        self.same(lambda c: c.__delitem__(key))

    @rule(key=KEYS)
    def pop(self, key):
        self.same(lambda c: c.pop(key, "dflt"))

    @rule(key=KEYS, value=VALUES)
    def setdefault(self, key, value):
        self.same(lambda c: c.setdefault(key, value))

    @rule(keys=st.lists(KEYS, min_size=20, max_size=120))
    def reads(self, keys):
        """Many reads at once: enough uses for TinyLFU's sketch to halve and its climber to
        move the window within one example."""
        for key in keys:
            self.same(lambda c: c.get(key, "dflt"))

    @rule()
    def popitem(self):
        self.same(lambda c: c.popitem())

    @rule()
    def clear(self):
        self.same(lambda c: c.clear())

    @invariant()
    def agree(self):
        if not hasattr(self, "cache"):
            return
        assert list(self.cache) == self.model.keys()
        assert len(self.cache) == len(self.model.data)
        assert self.cache.currsize == self.model.currsize
        if self.cache.maxbytes is not None:
            assert self.cache.currbytes == self.model.currbytes <= self.cache.maxbytes
        if self.peer is not None:
            assert repr(self.cache) == repr(self.peer)
            assert self.cache.currsize == self.peer.currsize


CacheMachine.TestCase.settings = settings(max_examples=600, stateful_step_count=60, deadline=None)
TestCacheAgainstModelAndCachetools = CacheMachine.TestCase
