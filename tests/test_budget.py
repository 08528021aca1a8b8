"""memleash.Budget: one byte budget shared by several caches. Its invariant — currbytes is
the sum of its members' currbytes and never above maxbytes — its one eviction order across
members, and how it meets the rest of memleash (decorators, pickling, report())."""

import copy
import gc
import json
import math
import pickle
import weakref

import pytest

import memleash
from clock import Clock
from hostile import refilled_by_another_thread
from memleash import (Budget, Cache, FIFOCache, LFUCache, LRUCache, RRCache, TLRUCache,
                      TTLCache)


def size(key, value):
    """Every item's accounted bytes: its value (an int)."""
    return value


def members_sum(budget):
    return sum(c.currbytes for c in budget.members)


def holds(budget):
    assert budget.currbytes == members_sum(budget) <= budget.maxbytes
    return True


def make(cls, budget, maxsize=math.inf, **kw):
    if cls is RRCache:
        return RRCache(maxsize, lambda keys: keys[0], sizeof=size, budget=budget, **kw)
    if cls is TTLCache:
        return TTLCache(maxsize, 10**9, sizeof=size, budget=budget, **kw)
    if cls is TLRUCache:
        return TLRUCache(maxsize, lambda k, v, now: now + 10**9, sizeof=size, budget=budget, **kw)
    return cls(maxsize, sizeof=size, budget=budget, **kw)


ALL = [Cache, LRUCache, FIFOCache, LFUCache, RRCache, TTLCache, TLRUCache]


# ---- the object ----------------------------------------------------------------------

def test_budget_constructor_and_properties():
    b = Budget(1000, name="shared")
    assert (b.maxbytes, b.effective_maxbytes, b.currbytes, b.members) == (1000, 1000, 0, [])
    assert (b.evictions, b.pressure_evictions, b.name) == (0, 0, "shared")
    assert repr(b) == "Budget(max_bytes=1000, effective_maxbytes=1000, currbytes=0, members=0)"
    assert Budget(2**70).maxbytes == 2**64 - 2   # past what a sum counts: that largest count
    for bad, exc in [(-1, ValueError), (1.5, TypeError), (True, TypeError), (None, TypeError)]:
        with pytest.raises(exc):
            Budget(bad)
    with pytest.raises(TypeError):
        Budget(10, name=3)
    with pytest.raises(TypeError):
        Budget(10, "positional name")


@pytest.mark.parametrize("cls", ALL)
def test_every_cache_class_takes_a_budget(cls):
    b = Budget(100)
    c = make(cls, b)
    assert c.budget is b and b.members == [c]
    c[1] = 60
    c[2] = 40
    assert b.currbytes == c.currbytes == 100 and holds(b)
    c[3] = 30   # the cache's own victim goes: it is the budget's oldest access
    assert 1 not in c and b.currbytes == 70 and holds(b)
    assert b.evictions == 1 and c._ml_stats()["evictions"] == 1
    with pytest.raises(TypeError, match="budget must be a memleash.Budget or None, not object"):
        Cache.__init__(c, 10, budget=object())
    assert c.budget is b and b.currbytes == 70   # refused before any change


def test_a_budget_accounts_bytes_by_default_sizing():
    b = Budget(10_000)
    c = LRUCache(100, budget=b)
    c["k"] = b"x" * 100
    assert c.currbytes > 100 and b.currbytes == c.currbytes
    assert c.maxbytes is None   # no byte limit of its own; the budget's holds


# ---- the order across members -----------------------------------------------------------

def test_lru_members_evict_in_one_exact_global_lru_order():
    b = Budget(10 * 10)
    caches = [LRUCache(math.inf, sizeof=size, budget=b) for _ in range(3)]
    accessed = []   # keys by last access, oldest first
    for i in range(10):
        caches[i % 3][i] = 10
        accessed.append(i)
    for i in (0, 4, 7, 1):
        assert caches[i % 3][i] == 10
        accessed.remove(i)
        accessed.append(i)
    for new in range(100, 106):
        caches[new % 3][new] = 10
        gone = accessed.pop(0)
        assert gone not in caches[gone % 3] and holds(b)
        accessed.append(new)
    assert sorted(k for c in caches for k in c) == sorted(accessed)
    assert b.evictions == 6


def test_each_member_names_its_victim_by_its_own_policy():
    b = Budget(40)
    fifo = FIFOCache(math.inf, sizeof=size, budget=b)
    lru = LRUCache(math.inf, sizeof=size, budget=b)
    fifo["f1"] = 10    # oldest store of all
    lru["l1"] = 10
    fifo["f2"] = 10
    lru["l2"] = 10
    fifo["f1"]         # read: FIFO's victim is still f1, but accessed last
    lru["l3"] = 10     # needs room: victims f1 (accessed at t5), l1 (t2): l1 goes
    assert "l1" not in lru and "f1" in fifo
    lru["l4"] = 10     # victims f1 (t5), l2 (t4): l2 goes
    assert list(lru) == ["l3", "l4"] and list(fifo) == ["f1", "f2"]
    lru["l5"] = 10     # victims f1 (t5), l3 (t6): f1 goes, though f2 is older
    assert list(fifo) == ["f2"] and holds(b)


def test_lfu_member_names_its_least_frequent_item():
    b = Budget(30)
    lfu = LFUCache(math.inf, sizeof=size, budget=b)
    other = LRUCache(math.inf, sizeof=size, budget=b)
    lfu["a"] = 10
    lfu["b"] = 10
    other["x"] = 10
    lfu["a"], lfu["a"]          # a is used most: b is LFU's victim, accessed before x
    other["y"] = 10
    assert list(lfu) == ["a"] and list(other) == ["x", "y"]


def test_rr_member_names_its_victim_with_choice():
    picked = []

    def choice(keys):
        picked.append(list(keys))
        return keys[-1]

    b = Budget(30)
    rr = RRCache(math.inf, choice, sizeof=size, budget=b)
    lru = LRUCache(math.inf, sizeof=size, budget=b)
    rr[1] = 10
    rr[2] = 10
    lru["x"] = 10
    lru["y"] = 10   # RR names 2 (accessed before x): it goes
    assert picked == [[1, 2]] and list(rr) == [1] and holds(b)


def test_expired_items_of_timed_members_go_first():
    clock = Clock()
    b = Budget(30)
    ttl = TTLCache(math.inf, 5, clock, sizeof=size, budget=b)
    lru = LRUCache(math.inf, sizeof=size, budget=b)
    lru["old"] = 10          # the oldest access of all
    ttl["t1"] = 10
    ttl["t2"] = 10
    clock.tick(10)           # both timed items expired, not yet removed
    lru["new"] = 10          # room for 10: expired items first, the LRU item stays
    assert "old" in lru and ttl.currbytes == 0 and holds(b)
    assert ttl._ml_stats()["expirations"] == 2 and b.evictions == 0


def test_an_overriding_popitem_sees_the_budgets_evictions():
    seen = []

    class Observed(LRUCache):
        def popitem(self):
            pair = super().popitem()
            seen.append(pair)
            return pair

    b = Budget(20)
    watched = Observed(math.inf, sizeof=size, budget=b)
    other = LRUCache(math.inf, sizeof=size, budget=b)
    watched["w"] = 10
    other["o"] = 10
    other["p"] = 10
    assert seen == [("w", 10)] and b.evictions == 1 and holds(b)


def test_an_overriding_popitem_whose_cache_another_thread_refills_is_called_again():
    # the member's popitem() is Python code and its lock does not hold across it: a thread
    # storing into that member meanwhile leaves it holding no less. The store that asked
    # for room looks again (the budget's next oldest) instead of failing ("freed no room")
    b = Budget(20)
    watched = refilled_by_another_thread(LRUCache, "r", 10)(math.inf, sizeof=size, budget=b)
    other = LRUCache(math.inf, sizeof=size, budget=b)
    watched["w"] = 10
    other["o"] = 10
    other["p"] = 10          # w is the oldest: its popitem() runs, and r takes its room
    assert type(watched).calls == [("w", 10)] and list(watched) == ["r"]
    assert list(other) == ["p"]
    assert holds(b)


def test_a_storing_caches_own_limits_come_first():
    b = Budget(100)
    small = LRUCache(2, sizeof=size, budget=b)
    other = LRUCache(math.inf, sizeof=size, budget=b)
    other["o"] = 10
    for k in "abc":
        small[k] = 10
    assert list(small) == ["b", "c"] and "o" in other and b.evictions == 0
    own = LRUCache(math.inf, sizeof=size, budget=b, max_bytes=30)
    own["x"] = 25
    own["y"] = 25            # its own max_bytes evicts x, not the budget
    assert list(own) == ["y"] and b.evictions == 0 and holds(b)


def test_replacing_the_oldest_item_itself_stores_it_anew():
    b = Budget(30)
    c = LRUCache(math.inf, sizeof=size, budget=b)
    other = LRUCache(math.inf, sizeof=size, budget=b)
    c["k"] = 10
    other["o"] = 10
    c["k"] = 20              # in place of its own 10 bytes: fits
    assert dict(c) == {"k": 20} and "o" in other and holds(b)
    c["k"] = 30              # needs o's room too: k itself is no longer the oldest
    assert dict(c) == {"k": 30} and "o" not in other and holds(b)


# ---- what is refused --------------------------------------------------------------------

def test_an_item_larger_than_the_budget_raises_and_stores_nothing():
    b = Budget(50)
    c = LRUCache(math.inf, sizeof=size, budget=b)
    other = LRUCache(math.inf, sizeof=size, budget=b)
    c["a"] = 20
    other["b"] = 20
    with pytest.raises(ValueError, match="exceeds its budget's max_bytes=50"):
        c["big"] = 51
    with pytest.raises(ValueError):
        c["a"] = 51
    assert dict(c) == {"a": 20} and dict(other) == {"b": 20} and b.evictions == 0
    b._ml_set_limit(30)      # memory pressure: the limit in force is lower
    with pytest.raises(ValueError, match="lowered from 50 by memory pressure"):
        c["x"] = 31
    assert holds(b) and b.currbytes <= 30


def test_memoized_results_too_large_for_the_budget_are_returned_uncached():
    b = Budget(10_000)

    @memleash.lru_cache(maxsize=None, budget=b)
    def blob(n):
        return b"x" * n

    assert blob(20_000) == b"x" * 20_000 and blob.cache_info().currsize == 0
    assert len(blob(10)) == 10 and blob.cache_info().currsize == 1 and holds(b)


# ---- members come and go -----------------------------------------------------------------

def test_a_member_that_dies_returns_its_bytes():
    b = Budget(100)
    keep = LRUCache(math.inf, sizeof=size, budget=b)
    gone = LRUCache(math.inf, sizeof=size, budget=b)
    keep[1] = 30
    gone[1] = 40
    del gone
    assert b.currbytes == 30 and len(b.members) == 1 and holds(b)


def test_a_member_in_a_garbage_cycle_returns_its_bytes_when_collected():
    b = Budget(100)
    c = LRUCache(math.inf, sizeof=size, budget=b)
    c["self"] = 30
    c.loop = c               # a cycle through its __dict__
    ref = weakref.ref(c)
    del c
    assert b.currbytes == 30
    gc.collect()
    assert ref() is None and b.currbytes == 0 and b.members == []


def test_a_member_keeps_its_budget_alive_never_the_reverse():
    b = Budget(100)
    ref = weakref.ref(b)
    c = LRUCache(10, budget=b)
    del b
    assert ref() is not None and c.budget is ref()
    cref = weakref.ref(c)
    del c
    assert cref() is None and ref() is None


def test_reinitialising_moves_a_member_and_its_bytes():
    one, two = Budget(100), Budget(100)
    c = LRUCache(math.inf, sizeof=size, budget=one)
    c[1] = 40
    LRUCache.__init__(c, math.inf, sizeof=size, budget=two)
    assert (one.currbytes, one.members, two.members) == (0, [], [c])
    c[1] = 40
    LRUCache.__init__(c, math.inf, sizeof=size, budget=two)   # the same budget: emptied
    assert two.currbytes == 0 and two.members == [c]
    c[2] = 10
    LRUCache.__init__(c, math.inf, sizeof=size)             # none
    assert c.budget is None and two.members == [] and two.currbytes == 0
    c[3] = 1000
    assert c.currbytes == 1000


def test_a_timed_member_counts_as_timed_after_its_init():
    clock = Clock()
    b = Budget(20)
    ttl = TTLCache(math.inf, 1, clock, sizeof=size, budget=b)
    lru = LRUCache(math.inf, sizeof=size, budget=b)
    ttl["t"] = 10
    lru["a"] = 10
    clock.tick(5)
    lru["b"] = 10            # t expired: it goes, not a
    assert list(lru) == ["a", "b"] and holds(b)


def test_reinitialising_the_budget_evicts_down_to_a_lower_max_bytes():
    b = Budget(100)
    c = LRUCache(math.inf, sizeof=size, budget=b)
    for k in range(10):
        c[k] = 10
    Budget.__init__(b, 35, name="smaller")
    assert (b.maxbytes, b.effective_maxbytes, b.name) == (35, 35, "smaller")
    assert list(c) == [7, 8, 9] and b.pressure_evictions == 7 and holds(b)
    Budget.__init__(b, 100)
    c[10] = 60
    assert b.currbytes == 90


def test_lowering_and_raising_the_limit_in_force():
    b = Budget(100)
    lru = LRUCache(math.inf, sizeof=size, budget=b)
    fifo = FIFOCache(math.inf, sizeof=size, budget=b)
    for k in range(5):
        (lru if k % 2 else fifo)[k] = 20
    b._ml_set_limit(50)
    assert b.effective_maxbytes == 50 and b.currbytes == 40 and b.pressure_evictions == 3
    assert sorted(list(lru) + list(fifo)) == [3, 4] and holds(b)
    lru[9] = 10
    assert b.currbytes == 50 and b.evictions == 0
    lru[10] = 10             # stores evict under the lowered limit too: 3, the oldest
    assert b.currbytes == 40 and b.evictions == 1 and 3 not in lru
    b._ml_set_limit(10**9)   # never above max_bytes
    assert b.effective_maxbytes == 100


# ---- re-entrancy ------------------------------------------------------------------------

class StoresOnDeath:
    """A value whose __del__ stores into another member, checking the invariant first."""

    def __init__(self, budget, into, key, value):
        self.budget, self.into, self.key, self.value = budget, into, key, value

    def __del__(self):
        holds(self.budget)
        self.into[self.key] = self.value
        holds(self.budget)


def test_a_released_values_del_storing_into_another_member_keeps_the_invariant():
    b = Budget(100)
    sized = lambda k, v: v if isinstance(v, int) else 40   # noqa: E731
    a = LRUCache(math.inf, sizeof=sized, budget=b)
    c = LRUCache(math.inf, sizeof=sized, budget=b)
    a["hostile"] = StoresOnDeath(b, c, "from-del", 50)
    c["x"] = 50
    c["y"] = 30              # evicts "hostile" (oldest): its __del__ stores 50 bytes into c,
    #                          which evicts x, after the store of y is complete
    assert "hostile" not in a and dict(c) == {"y": 30, "from-del": 50} and holds(b)


def test_sizeof_sees_the_invariant_in_the_middle_of_a_store():
    b = Budget(60)

    def checking(key, value):
        holds(b)
        return value

    caches = [LRUCache(math.inf, sizeof=checking, budget=b) for _ in range(3)]
    for i in range(30):
        caches[i % 3][i] = 10 + i % 7
        holds(b)
    assert b.evictions > 0


# ---- decorators -------------------------------------------------------------------------

def test_decorators_share_a_budget_with_caches():
    b = Budget(2_000)
    responses = LRUCache(math.inf, budget=b)

    @memleash.lru_cache(maxsize=None, budget=b)
    def square(n):
        return n * n

    @memleash.cached(LRUCache(math.inf, budget=b))
    def cube(n):
        return n * n * n

    @memleash.func.ttl_cache(maxsize=None, ttl=600, budget=b)
    def neg(n):
        return -n

    @memleash.func.fifo_cache(maxsize=50, budget=b)
    def double(n):
        return 2 * n

    class Basket:
        @memleash.method_cache(maxsize=None, budget=b)
        def total(self, n):
            return n + 1

    basket = Basket()
    for n in range(400):
        responses[n] = b"x" * 10
        assert (square(n), cube(n), neg(n), double(n), basket.total(n)) == (
            n * n, n ** 3, -n, 2 * n, n + 1)
        holds(b)
    assert len(b.members) == 6 and b.evictions > 0
    assert square.cache_info().currsize < 400 and len(responses) < 400
    for maker in (memleash.func.lfu_cache, memleash.func.lru_cache):
        assert maker(budget=b)(abs)(-3) == 3
    assert memleash.func.rr_cache(budget=b)(abs)(-4) == 4


# ---- pickling and copies ------------------------------------------------------------------

def test_copy_shares_the_budget_and_makes_room_in_it():
    b = Budget(100)
    c = LRUCache(math.inf, sizeof=size, budget=b)
    other = LRUCache(math.inf, sizeof=size, budget=b)
    other["o"] = 30
    c["a"] = 20
    c["b"] = 20
    twin = copy.copy(c)      # 40 more bytes: the oldest access (o) makes room
    assert twin.budget is b and dict(twin) == {"a": 20, "b": 20}
    assert "o" not in other and b.currbytes == 80 and holds(b)
    twin["c"] = 30           # its restored items are stamped newer than c's: c's a goes
    assert "a" not in c and dict(twin) == {"a": 20, "b": 20, "c": 30} and holds(b)


def test_pickle_round_trip_makes_a_new_budget():
    b = Budget(100, name="shared")
    c = FIFOCache(math.inf, sizeof=size, budget=b)
    c[1] = 10
    back = pickle.loads(pickle.dumps(c))
    assert back.budget is not b and back.budget.maxbytes == 100
    assert back.budget.name == "shared" and back.budget.currbytes == 10
    assert pickle.loads(pickle.dumps(b)).maxbytes == 100


def test_restored_items_larger_than_the_budget_are_refused_unchanged():
    small = Budget(30)
    c = LRUCache(math.inf, sizeof=size, budget=Budget(100))
    c[1] = 20
    c[2] = 20
    state = list(c.__getstate__())
    state[13] = small   # the budget (14th element)
    target = LRUCache(math.inf, sizeof=size, budget=small)
    target[9] = 5
    with pytest.raises(ValueError, match="exceed their budget's limit of 30"):
        target.__setstate__(tuple(state))
    assert dict(target) == {9: 5} and small.currbytes == 5 and holds(small)


# ---- report() -----------------------------------------------------------------------------

def test_report_shows_each_budget():
    b = Budget(1000, name="svc-budget")
    c = LRUCache(math.inf, sizeof=size, budget=b, name="svc-cache")
    for k in range(12):
        c[k] = 100
    b._ml_set_limit(500)
    rep = memleash.report()
    (row,) = [r for r in rep.budgets if r.name == "svc-budget"]
    assert (row.members, row.currbytes, row.maxbytes, row.effective_maxbytes) == (1, 500, 1000, 500)
    assert (row.evictions, row.pressure_evictions, row.following) == (2, 5, False)
    (crow,) = [r for r in rep.caches if r.name == "svc-cache"]
    assert crow.budget == "svc-budget"
    table = str(rep)
    assert "budgets (largest first):" in table and "svc-budget" in table
    data = rep.to_dict()
    json.dumps(data, allow_nan=False)
    (d,) = [x for x in data["budgets"] if x["name"] == "svc-budget"]
    assert d["effective_maxbytes"] == 500 and d["pressure_evictions"] == 5
    text = rep.to_prometheus()
    for line in ['memleash_budget_bytes{kind="Budget",name="svc-budget"} 500',
                 'memleash_budget_max_bytes{kind="Budget",name="svc-budget"} 1000',
                 'memleash_budget_effective_max_bytes{kind="Budget",name="svc-budget"} 500',
                 'memleash_budget_evictions_total{kind="Budget",name="svc-budget"} 2',
                 'memleash_budget_pressure_evictions_total{kind="Budget",name="svc-budget"} 5',
                 'memleash_budget_members{kind="Budget",name="svc-budget"} 1']:
        assert line in text


def test_budget_sizeof_counts_its_member_array():
    b = Budget(10)
    empty = b.__sizeof__()
    caches = [LRUCache(1, budget=b) for _ in range(20)]
    assert b.__sizeof__() > empty and len(b.members) == len(caches)


@pytest.mark.parametrize("limit", [2**63 + 10, 2**64 - 2])
def test_a_byte_sum_past_2_64_under_a_budget_evicts_rather_than_refuses(limit):
    # found by a hostile run: a member without its own max_bytes refused with OverflowError
    # a store whose own byte sum would pass 2**64 - 2, where the budget (which has no room
    # for it either) evicts, as the cache's own max_bytes does
    budget = memleash.Budget(limit)
    other = memleash.LRUCache(10, budget=budget, sizeof=lambda k, v: 5)
    big = memleash.LRUCache(10, budget=budget, sizeof=lambda k, v: 2**63)
    other["x"] = 1
    big[1] = 1
    big[2] = 2          # the budget's order: "x" then 1 go
    assert list(big) == [2] and list(other) == []
    assert budget.currbytes == big.currbytes == 2**63
    own = memleash.LRUCache(10, max_bytes=2**64 - 2, sizeof=lambda k, v: 2**63)
    own[1] = 1
    own[2] = 2
    assert list(own) == list(big)


@pytest.mark.parametrize("cls", [LRUCache, RRCache, Cache, memleash.TinyLFUCache])
def test_setstate_in_place_counts_the_items_it_replaces_as_free(cls):
    # found by a hostile run: restoring a member's own state reserved the new bytes on top
    # of the old ones, so the budget evicted another member's items for nothing, and their
    # __del__ ran while currbytes (400) was not the members' sum (200)
    budget = Budget(400)
    kw = {"sizeof": lambda k, v: 100, "budget": budget}
    a = cls(100, **kw)
    other = LRUCache(100, **kw)
    seen = []

    class Value:
        def __del__(self):
            seen.append((budget.currbytes, a.currbytes + other.currbytes))

    other[3] = Value()
    other[4] = Value()
    a[1] = 1
    a[2] = 2
    a.__setstate__(a.__getstate__())
    assert sorted(a) == [1, 2] and sorted(other) == [3, 4]
    assert budget.currbytes == a.currbytes + other.currbytes == 400
    assert seen == []
    a[5] = 5            # now the budget needs room: the oldest of other's goes
    assert len(other) == 1 and len(seen) == 1
    assert seen[0][0] == seen[0][1]     # the invariant, as the evicted value's __del__ sees it
