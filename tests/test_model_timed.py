"""TTLCache and TLRUCache, operation by operation, against a reference model and cachetools,
with a fake timer that advances in random steps — and, against the model only, with a timer
that also runs backwards (memleash stays exact where cachetools does not)."""

import cachetools
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import memleash
from clock import Clock

KEYS = st.integers(0, 9)
VALUES = st.integers(0, 9)



def ttu(key, value, now):
    return now + (value % 4)   # 0: expired on arrival


class TimedModel:
    """Exact semantics: an item is visible while now < its deadline; LRU among items;
    expiry in (deadline, order the deadline was set) order."""

    def __init__(self, maxsize, ttl=None, ttu=None):
        self.maxsize, self.ttl, self.ttu = maxsize, ttl, ttu
        self.items = {}        # key -> {"value", "deadline", "used", "set"}
        self.stamp = 0

    def _tick(self):
        self.stamp += 1
        return self.stamp

    def expire(self, now):
        gone = sorted((e["deadline"], e["set"], k) for k, e in self.items.items()
                      if not (now < e["deadline"]))
        return [(k, self.items.pop(k)["value"]) for _, _, k in gone]

    def alive(self, key, now):
        return key in self.items and now < self.items[key]["deadline"]

    def get(self, key, now):
        if self.alive(key, now):
            self.items[key]["used"] = self._tick()
            return self.items[key]["value"]
        return "missing"

    def set(self, key, value, now):
        if self.ttl is not None:
            deadline = now + self.ttl
            self.expire(now)
        else:
            self.expire(now)
            deadline = self.ttu(key, value, now)
            if not (now < deadline):
                self.items.pop(key, None)
                return
        if key not in self.items and len(self.items) >= self.maxsize:
            lru = min(self.items, key=lambda k: self.items[k]["used"])
            del self.items[lru]
        stamp = self._tick()
        self.items[key] = {"value": value, "deadline": deadline, "used": stamp, "set": stamp}

    def visible(self, now):
        return sorted(k for k in self.items if now < self.items[k]["deadline"])


class TimedMachine(RuleBasedStateMachine):
    backwards = False

    @initialize(kind=st.sampled_from(["ttl", "tlru"]), maxsize=st.integers(1, 5), ttl=st.integers(0, 4))
    def setup(self, kind, maxsize, ttl):
        self.clock = Clock()
        if kind == "ttl":
            self.cache = memleash.TTLCache(maxsize, ttl, timer=self.clock)
            self.model = TimedModel(maxsize, ttl=ttl)
            self.peer_clock = Clock()
            self.peer = cachetools.TTLCache(maxsize, ttl, timer=self.peer_clock)
        else:
            self.cache = memleash.TLRUCache(maxsize, ttu, timer=self.clock)
            self.model = TimedModel(maxsize, ttu=ttu)
            self.peer_clock = Clock()
            self.peer = cachetools.TLRUCache(maxsize, ttu, timer=self.peer_clock)
        if self.backwards:
            self.peer = None   # cachetools is not consistent when time runs backwards

    def now(self):
        return self.clock.time

    @rule(step=st.integers(0, 3))
    def advance(self, step):
        self.clock.time += step
        self.peer_clock.time += step

    @rule(key=KEYS, value=VALUES)
    def set(self, key, value):
        self.cache[key] = value
        self.model.set(key, value, self.now())
        if self.peer is not None:
            self.peer[key] = value

    @rule(key=KEYS)
    def get(self, key):
        expected = self.model.get(key, self.now())
        assert self.cache.get(key, "missing") == expected
        if self.peer is not None:
            assert self.peer.get(key, "missing") == expected

    @rule(key=KEYS)
    def contains(self, key):
        expected = self.model.alive(key, self.now())
        assert (key in self.cache) == expected

    @rule()
    def expire(self):
        expected = self.model.expire(self.now())
        assert self.cache.expire() == expected
        if self.peer is not None:
            assert self.peer.expire() == expected

    @invariant()
    def agree(self):
        if not hasattr(self, "cache"):
            return
        now = self.now()
        visible = self.model.visible(now)
        assert sorted(self.cache) == visible
        assert len(self.cache) == len(visible)    # len() expires, as cachetools' does:
        self.model.expire(now)                    # the model follows
        if self.peer is not None:
            assert sorted(self.peer) == visible and len(self.peer) == len(visible)
            assert repr(self.cache) == repr(self.peer)


class BackwardsMachine(TimedMachine):
    backwards = True

    @rule(step=st.integers(1, 4))
    def rewind(self, step):
        self.clock.time -= step


TimedMachine.TestCase.settings = settings(max_examples=400, stateful_step_count=50, deadline=None)
BackwardsMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
TestTimedAgainstModelAndCachetools = TimedMachine.TestCase
TestTimedWithTimeRunningBackwards = BackwardsMachine.TestCase
