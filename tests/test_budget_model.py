"""Several caches of every policy sharing one memleash.Budget, operation by operation,
against the reference model (tests/model.py: ModelBudget, ModelMember) — and a second
machine whose values' __del__ store into other members, delete from them, lower the
budget or drop a member, where only the invariant is checked: at every step and inside
every __del__, the budget's currbytes is the sum of its members' and within its max_bytes."""

import math

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import memleash
from clock import Clock
from model import POLICY, ModelBudget, ModelMember, middle, nbytes

KINDS = ["Cache", "LRUCache", "FIFOCache", "LFUCache", "RRCache", "TTLCache", "TLRUCache",
         "TinyLFUCache"]
KEYS = st.integers(0, 9)
VALUES = st.integers(0, 40)       # nbytes: 20 + value
MEMBER = st.integers(0, 63)       # an index, taken modulo the number of members
OWN = st.sampled_from([(math.inf, None), (3, None), (6, 100), (math.inf, 90)])


def ttu(key, value, now):
    return now + (value % 4)       # 0: expired on arrival


def make_cache(kind, budget, clock, maxsize, max_bytes, ttl):
    """A memleash cache of kind under budget, sized by nbytes."""
    kw = {"sizeof": nbytes, "max_bytes": max_bytes, "budget": budget}
    if kind == "RRCache":
        return memleash.RRCache(maxsize, middle, **kw)
    if kind == "TTLCache":
        return memleash.TTLCache(maxsize, ttl, clock, **kw)
    if kind == "TLRUCache":
        return memleash.TLRUCache(maxsize, ttu, clock, **kw)
    return getattr(memleash, kind)(maxsize, **kw)


def check_invariant(budget, caches):
    """The issue's invariant: currbytes is its members' sum, within max_bytes."""
    assert budget.currbytes == sum(c.currbytes for c in caches) <= budget.maxbytes
    assert sorted(map(id, budget.members)) == sorted(map(id, caches))


class BudgetMachine(RuleBasedStateMachine):
    """memleash against the model: results, exceptions, contents, counters."""

    @initialize(maxbytes=st.integers(60, 300), kinds=st.lists(st.sampled_from(KINDS), min_size=2,
                                                              max_size=5),
                own=st.lists(OWN, min_size=5, max_size=5), ttl=st.integers(1, 4))
    def setup(self, maxbytes, kinds, own, ttl):
        self.clock = Clock()
        self.budget = memleash.Budget(maxbytes)
        self.model = ModelBudget(maxbytes)
        self.pairs = []
        for kind, (maxsize, max_bytes) in zip(kinds, own):
            self._join(kind, maxsize, max_bytes, ttl)

    def _join(self, kind, maxsize, max_bytes, ttl):
        cache = make_cache(kind, self.budget, self.clock, maxsize, max_bytes, ttl)
        timed = {"TTLCache": {"ttl": ttl}, "TLRUCache": {"ttu": ttu}}.get(kind, {})
        member = ModelMember(self.model, maxsize, POLICY.get(kind, "lru"), max_bytes=max_bytes,
                             sizeof=nbytes, choice=middle, clock=self.clock, **timed)
        self.pairs.append((cache, member))

    def pair(self, i):
        return self.pairs[i % len(self.pairs)]

    def same(self, i, op):
        """Runs op on the cache and its model: results or exception types must agree."""
        outcomes = []
        for impl in self.pair(i):
            try:
                outcomes.append(("ok", op(impl)))
            except (KeyError, ValueError) as exc:
                outcomes.append((type(exc).__name__, None))
        assert outcomes[0] == outcomes[1], outcomes

    @rule(i=MEMBER, key=KEYS, value=VALUES)
    def set(self, i, key, value):
        self.same(i, lambda c: c.__setitem__(key, value))

    @rule(i=MEMBER, key=KEYS)
    def getitem(self, i, key):
        self.same(i, lambda c: c[key])

    @rule(i=MEMBER, key=KEYS)
    def get(self, i, key):
        self.same(i, lambda c: c.get(key, "dflt"))

    @rule(i=MEMBER, key=KEYS)
    def contains(self, i, key):
        self.same(i, lambda c: key in c)

    @rule(i=MEMBER, key=KEYS)
    def delete(self, i, key):
        self.same(i, lambda c: c.__delitem__(key))

    @rule(i=MEMBER, key=KEYS)
    def pop(self, i, key):
        self.same(i, lambda c: c.pop(key, "dflt"))

    @rule(i=MEMBER, key=KEYS, value=VALUES)
    def setdefault(self, i, key, value):
        self.same(i, lambda c: c.setdefault(key, value))

    @rule(i=MEMBER)
    def popitem(self, i):
        self.same(i, lambda c: c.popitem())

    @rule(i=MEMBER)
    def clear(self, i):
        self.same(i, lambda c: c.clear())

    @rule(i=MEMBER)
    def expire(self, i):
        if self.pair(i)[1].timed:
            self.same(i, lambda c: c.expire())

    @rule(step=st.integers(1, 3))
    def advance(self, step):
        self.clock.tick(step)

    @rule(fraction=st.sampled_from([0.0, 0.3, 0.6, 1.0, 2.0]))
    def set_limit(self, fraction):
        limit = int(self.budget.maxbytes * fraction)
        self.budget._ml_set_limit(limit)
        self.model.set_limit(limit)

    @precondition(lambda self: len(self.pairs) < 6)
    @rule(kind=st.sampled_from(KINDS), own=OWN, ttl=st.integers(1, 4))
    def join(self, kind, own, ttl):
        self._join(kind, *own, ttl)

    @precondition(lambda self: len(self.pairs) > 1)
    @rule(i=MEMBER)
    def leave(self, i):
        cache, member = self.pairs.pop(i % len(self.pairs))
        member.leave()
        del cache   # the last reference: the member dies and returns its bytes

    @invariant()
    def agree(self):
        if not hasattr(self, "budget"):
            return
        caches = [c for c, _ in self.pairs]
        check_invariant(self.budget, caches)
        assert self.budget.currbytes == self.model.currbytes
        assert self.budget.currbytes <= self.budget.effective_maxbytes == self.model.limit
        assert self.budget.evictions == self.model.evictions
        assert self.budget.pressure_evictions == self.model.pressure_evictions
        for cache, member in self.pairs:
            flat = cache._ml_referents       # every item, expired ones too; no side effect
            assert flat[::2] == list(member.data)
            assert flat[1::2] == list(member.data.values())
            assert cache.currbytes == member.currbytes


# ---------------------------------------------------------------------------------------
# Re-entrancy: values whose __del__ act on the other members

class Hostile:
    """A value whose __del__ runs one action on the machine's members — from inside a
    store's deferred releases, an eviction, a clear — after checking the invariant there."""

    def __init__(self, machine, action):
        self.machine, self.action = machine, action

    def __del__(self):
        machine = self.machine
        check_invariant(machine.budget, machine.caches)
        machine.deaths += 1
        if machine.depth > 3:
            return
        machine.depth += 1
        try:
            self.action(machine)
        except (KeyError, ValueError):
            pass   # an item too large for what is left, a key gone: not our concern here
        finally:
            machine.depth -= 1
        check_invariant(machine.budget, machine.caches)


def store_elsewhere(i, key, value):
    def act(machine):
        machine.caches[i % len(machine.caches)][key] = value   # a plain value: no recursion
    return act


def store_hostile_elsewhere(i, key, then):
    def act(machine):
        machine.caches[i % len(machine.caches)][key] = Hostile(machine, then)
    return act


def delete_elsewhere(i, key):
    def act(machine):
        machine.caches[i % len(machine.caches)].pop(key, None)
    return act


def clear_elsewhere(i):
    def act(machine):
        machine.caches[i % len(machine.caches)].clear()
    return act


def lower_limit(fraction):
    def act(machine):
        machine.budget._ml_set_limit(int(machine.budget.maxbytes * fraction))
    return act


def reinit_elsewhere(i):
    def act(machine):
        cache = machine.caches[i % len(machine.caches)]
        if type(cache) in (memleash.LRUCache, memleash.FIFOCache, memleash.LFUCache):
            type(cache).__init__(cache, 5, sizeof=sized, budget=machine.budget)
    return act


def sized(key, value):
    return 20 + (value if isinstance(value, int) else 30)


def ttu_any(key, value, now):
    return now + (value % 4 if isinstance(value, int) else 2)


ACTIONS = st.one_of(
    st.builds(store_elsewhere, MEMBER, KEYS, VALUES),
    st.builds(store_hostile_elsewhere, MEMBER, KEYS,
              st.builds(store_elsewhere, MEMBER, KEYS, VALUES)),
    st.builds(delete_elsewhere, MEMBER, KEYS),
    st.builds(clear_elsewhere, MEMBER),
    st.builds(lower_limit, st.sampled_from([0.2, 0.5, 1.0])),
    st.builds(reinit_elsewhere, MEMBER),
)


class ReentrantBudgetMachine(RuleBasedStateMachine):
    """No model: Python code runs inside the budget's evictions and releases."""

    @initialize(kinds=st.lists(st.sampled_from(KINDS), min_size=2, max_size=4),
                maxbytes=st.integers(80, 400))
    def setup(self, kinds, maxbytes):
        self.clock = Clock()
        self.budget = memleash.Budget(maxbytes)
        self.depth = self.deaths = 0
        self.caches = []
        for kind in kinds:
            self._join(kind)

    def _join(self, kind):
        kw = {"sizeof": sized, "budget": self.budget}
        if kind == "RRCache":
            cache = memleash.RRCache(math.inf, middle, **kw)
        elif kind == "TTLCache":
            cache = memleash.TTLCache(math.inf, 3, self.clock, **kw)
        elif kind == "TLRUCache":
            cache = memleash.TLRUCache(math.inf, ttu_any, self.clock, **kw)
        else:
            cache = getattr(memleash, kind)(math.inf, **kw)
        self.caches.append(cache)

    def cache(self, i):
        return self.caches[i % len(self.caches)]

    @rule(i=MEMBER, key=KEYS, value=VALUES)
    def set(self, i, key, value):
        try:
            self.cache(i)[key] = value
        except ValueError:
            pass

    @rule(i=MEMBER, key=KEYS, action=ACTIONS)
    def set_hostile(self, i, key, action):
        try:
            self.cache(i)[key] = Hostile(self, action)
        except ValueError:
            pass

    @rule(i=MEMBER, key=KEYS)
    def getitem(self, i, key):
        self.cache(i).get(key)

    @rule(i=MEMBER, key=KEYS)
    def delete(self, i, key):
        self.cache(i).pop(key, None)

    @rule(i=MEMBER)
    def clear(self, i):
        self.cache(i).clear()

    @rule(step=st.integers(1, 3))
    def advance(self, step):
        self.clock.tick(step)

    @rule(fraction=st.sampled_from([0.1, 0.5, 1.0]))
    def set_limit(self, fraction):
        self.budget._ml_set_limit(int(self.budget.maxbytes * fraction))

    @precondition(lambda self: len(self.caches) < 5)
    @rule(kind=st.sampled_from(KINDS))
    def join(self, kind):
        self._join(kind)

    @precondition(lambda self: len(self.caches) > 1)
    @rule(i=MEMBER)
    def leave(self, i):
        self.caches.pop(i % len(self.caches))   # dies here: its values' __del__ run

    @invariant()
    def holds(self):
        if not hasattr(self, "budget"):
            return
        check_invariant(self.budget, self.caches)
        assert self.budget.currbytes <= self.budget.effective_maxbytes

    def teardown(self):
        # the hostile values' __del__ run here, while every cache is alive, rather than in a
        # collection of the machine's cycles (where weak references to the caches are
        # already cleared: the free-threaded build's budget no longer sees them)
        for _ in range(10):
            for cache in getattr(self, "caches", []):
                cache.clear()
            if not any(getattr(self, "caches", [])):
                break
        self.caches = []


BudgetMachine.TestCase.settings = settings(max_examples=500, stateful_step_count=60,
                                           deadline=None)
ReentrantBudgetMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40,
                                                    deadline=None)
TestBudgetAgainstModel = BudgetMachine.TestCase
TestBudgetReentrancy = ReentrantBudgetMachine.TestCase
