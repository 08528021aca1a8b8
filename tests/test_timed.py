"""TTLCache and TLRUCache: cachetools' expiry rules, exact even when time runs backwards."""

import copy
import math
import pickle

import cachetools
import pytest

from hostile import DelHook, EqHook, HashKey, check_invariants
from memleash import Cache, LRUCache, TLRUCache, TTLCache, Timer
from clock import Clock



def ttl_cache(maxsize=3, ttl=2, **kw):
    return TTLCache(maxsize=maxsize, ttl=ttl, timer=Clock(), **kw)


# ---- TTLCache ----

def test_items_live_while_timer_is_before_their_deadline():
    cache = ttl_cache()
    cache[1] = 1
    cache.timer.tick()
    cache[2] = 2
    assert (cache[1], cache[2]) == (1, 2)
    cache.timer.tick()
    assert 1 not in cache and cache.get(1) is None and cache[2] == 2
    with pytest.raises(KeyError):
        cache[1]
    cache.timer.tick()
    assert len(cache) == 0 and list(cache) == [] and cache.currsize == 0


def test_ttl_zero_holds_nothing():
    cache = ttl_cache(ttl=0)
    cache[1] = 1
    assert 1 not in cache and len(cache) == 0


def test_infinite_ttl_never_expires():
    cache = ttl_cache(ttl=math.inf)
    cache[1] = 1
    cache.timer.tick(10**9)
    assert cache[1] == 1


def test_expired_items_stay_until_something_expires_them():
    cache = ttl_cache()
    cache[1] = "v"
    cache.timer.tick(5)
    assert 1 not in cache
    assert cache.expire() == [(1, "v")]
    assert cache.expire() == []


def test_expire_returns_pairs_earliest_first_and_takes_a_time():
    cache = ttl_cache(maxsize=10, ttl=10)
    for k in (3, 1, 2):
        cache[k] = k * 10
        cache.timer.tick()
    assert cache.expire(11) == [(3, 30), (1, 10)]
    assert cache.expire(time=100) == [(2, 20)]


def test_equal_deadlines_expire_in_the_order_they_were_set():
    cache = ttl_cache(maxsize=10)
    for k in "cab":
        cache[k] = k
    cache["c"] = "again"
    assert [k for k, _ in cache.expire(50)] == ["a", "b", "c"]


def test_lru_order_among_live_items():
    cache = ttl_cache(maxsize=2, ttl=10)
    cache[1] = 1
    cache[2] = 2
    cache[1]
    cache[3] = 3
    assert 2 not in cache and list(cache) == [1, 3]


def test_popitem_expires_first_then_takes_the_least_recent():
    cache = ttl_cache(maxsize=3, ttl=2)
    cache[1] = 1
    cache.timer.tick()
    cache[2] = 2
    cache[3] = 3
    cache.timer.tick()
    assert cache.popitem() == (2, 2)
    with pytest.raises(KeyError, match="TTLCache is empty"):
        cache.popitem() and cache.popitem()


def test_deleting_an_expired_item_removes_it_and_raises():
    cache = ttl_cache()
    cache[1] = 1
    cache.timer.tick(5)
    with pytest.raises(KeyError):
        del cache[1]
    assert cache.expire() == []


def test_reading_an_expired_item_calls_missing():
    class Loader(TTLCache):
        def __missing__(self, key):
            self[key] = value = f"fresh {key}"
            return value

    cache = Loader(maxsize=2, ttl=2, timer=Clock())
    cache["a"] = "old"
    cache.timer.tick(3)
    assert cache["a"] == "fresh a"
    assert cache["a"] == "fresh a"


def test_every_operation_reads_the_timer_once():
    cache = TTLCache(maxsize=1, ttl=2, timer=Clock(auto=True))
    cache[1] = 1
    assert cache[1] == 1
    cache[1] = 1
    assert cache.get(1) == 1
    cache[1] = 1
    assert cache.pop(1) == 1
    cache[1] = 1
    assert cache.setdefault(1) == 1
    cache[1] = 1
    cache.clear()
    assert len(cache) == 0


def test_timer_freezes_time_in_a_with_block_and_nests():
    clock = Clock(auto=True)
    cache = TTLCache(maxsize=1, ttl=2, timer=clock)
    assert isinstance(cache.timer, Timer)
    with cache.timer as now:
        assert cache.timer() == now
        with cache.timer as inner:
            assert inner == now and cache.timer() == now
        assert cache.timer() == now
    assert cache.timer() != now
    assert cache.timer.tick and cache.timer.auto   # attributes of the wrapped timer


def test_iteration_skips_what_expires_or_goes_and_never_raises():
    cache = ttl_cache(maxsize=6, ttl=2)
    cache.update({1: 1, 2: 2, 3: 3})
    keys = []
    for key in cache:
        keys.append(key)
        cache[key + 10] = key
    assert keys == [1, 2, 3] and list(cache) == [1, 2, 3, 11, 12, 13]
    keys = []
    for key in cache:
        keys.append(key)
        cache.clear()
    assert keys == [1]


def test_iteration_sees_expiry_at_each_step():
    cache = ttl_cache(maxsize=5, ttl=3)
    cache[1] = 1
    cache.timer.tick()
    cache[2] = 2
    cache.timer.tick()
    seen = []
    for key in cache:
        seen.append(key)
        cache.timer.tick()
    assert seen == [1] or seen == [1, 2]
    assert seen == [1, 2][: len(seen)]


def test_copy_has_its_own_timer_use_and_data():
    source = ttl_cache(maxsize=3, ttl=2)
    source[1] = 1
    source[2] = 2
    source.timer.tick()
    source[3] = 3
    assert source[1] == 1
    dup = copy.copy(source)
    dup[4] = 4
    assert list(dup) == [1, 3, 4] and list(source) == [1, 2, 3]
    assert dup.timer is not source.timer
    with source.timer:
        dup.timer.tick()
        assert (source.timer(), dup.timer()) == (1, 2)
    assert list(dup) == [3, 4] and list(source) == [3]


def test_pickle_keeps_deadlines_and_settings():
    cache = TTLCache(maxsize=5, ttl=100, max_bytes=10_000)
    cache["a"] = 1
    restored = pickle.loads(pickle.dumps(cache))
    assert restored == cache and restored.ttl == 100 and restored.maxbytes == 10_000
    assert restored.expire(10**12) == [("a", 1)]


def test_time_running_backwards_stays_consistent():
    # cachetools can leave an item invisible to `in` yet counted by `len`; memleash's
    # expiry is exact: len() counts exactly the visible items
    clock = Clock()
    cache = TTLCache(maxsize=10, ttl=5, timer=clock)
    clock.time = 10
    cache["late"] = 1          # deadline 15
    clock.time = 0
    cache["early"] = 2         # deadline 5
    clock.time = 7
    assert "early" not in cache and "late" in cache
    assert len(cache) == 1 and list(cache) == ["late"]


class DateClock:
    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now


def test_datetime_timer_with_timedelta_ttl():
    from datetime import datetime, timedelta

    clock = DateClock(datetime(2026, 1, 1))
    cache = TTLCache(maxsize=3, ttl=timedelta(seconds=10), timer=clock)
    cache["a"] = 1
    clock.now += timedelta(seconds=5)
    cache["b"] = 2
    clock.now += timedelta(seconds=5)
    assert "a" not in cache and cache["b"] == 2 and len(cache) == 1
    assert cache.expire(clock.now + timedelta(seconds=5)) == [("b", 2)]
    assert cache.ttl == timedelta(seconds=10)


def test_datetime_deadline_is_exact_to_the_microsecond():
    from datetime import datetime, timedelta

    clock = DateClock(datetime(2026, 1, 1))
    cache = TTLCache(maxsize=3, ttl=timedelta(microseconds=3), timer=clock)
    cache["k"] = 1
    clock.now += timedelta(microseconds=2)
    assert "k" in cache
    clock.now += timedelta(microseconds=1)
    assert "k" not in cache


def test_aware_datetimes_and_tlru():
    from datetime import datetime, timedelta, timezone

    clock = DateClock(datetime(2026, 1, 1, tzinfo=timezone.utc))
    cache = TLRUCache(maxsize=3, ttu=lambda k, v, now: now + timedelta(seconds=v), timer=clock)
    cache["x"] = 3
    cache["y"] = 0
    clock.now += timedelta(seconds=2)
    assert list(cache) == ["x"]


def test_datetime_overflow_raises_like_cachetools():
    from datetime import datetime, timedelta

    cache = TTLCache(maxsize=1, ttl=timedelta(days=1), timer=lambda: datetime.max)
    with pytest.raises(OverflowError):
        cache["overflow"] = 1
    assert "overflow" not in cache and len(cache) == 0 and cache.currsize == 0
    assert list(cache) == [] and cache.expire() == []


def test_times_too_far_from_the_first_are_refused_not_rounded():
    from datetime import datetime, timedelta

    clock = DateClock(datetime(2000, 1, 1))
    cache = TTLCache(maxsize=2, ttl=timedelta(seconds=1), timer=clock)
    cache["k"] = 1
    clock.now = datetime(2400, 1, 1)
    with pytest.raises(OverflowError, match="285 years"):
        "k" in cache


def test_numbers_and_datetimes_do_not_mix():
    from datetime import datetime, timedelta

    cache = TTLCache(maxsize=2, ttl=timedelta(seconds=1), timer=lambda: datetime(2026, 1, 1))
    cache["k"] = 1
    with pytest.raises(TypeError, match="datetimes, not int"):
        cache.expire(5)
    with pytest.raises(TypeError, match="ttl must be"):
        TTLCache(maxsize=2, ttl="soon")
    odd = TTLCache(maxsize=2, ttl=1, timer=lambda: "noon")
    with pytest.raises(TypeError, match="times as an int"):
        odd["k"] = 1
    assert len(odd.__getstate__()[6]) == 0


def test_datetime_caches_pickle_with_their_origin():
    from datetime import datetime, timedelta

    cache = TTLCache(maxsize=3, ttl=timedelta(hours=1), timer=datetime.now)
    cache["k"] = 1
    restored = pickle.loads(pickle.dumps(cache))
    assert restored["k"] == 1 and restored.ttl == timedelta(hours=1)
    assert restored.expire(datetime.now() + timedelta(hours=2)) == [("k", 1)]


def test_timer_errors_propagate_and_change_nothing():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) > 1:
            raise OSError("clock")
        return 0

    cache = TTLCache(maxsize=2, ttl=5, timer=flaky)
    cache["a"] = 1
    for op in (lambda: cache.__setitem__("b", 2), lambda: cache["a"], lambda: "a" in cache,
               lambda: cache.get("a"), lambda: len(cache), cache.popitem, lambda: cache.expire()):
        with pytest.raises(OSError):
            op()
    assert cache.__getstate__()[6] == ["a", 1]


def test_expired_value_whose_del_writes_to_the_cache():
    cache = ttl_cache(maxsize=5, ttl=2)
    cache["x"] = DelHook(lambda: cache.__setitem__("from-del", 1))
    cache.timer.tick(3)
    cache["y"] = 2           # expires "x" first; its __del__ stores into the cache
    assert "from-del" in cache and "y" in cache
    check_invariants(cache)


def test_overridden_expire_sees_every_expiry():
    seen = []

    class Observed(TTLCache):
        def expire(self, time=None):
            expired = super().expire(time)
            seen.extend(k for k, _ in expired)
            return expired

    cache = Observed(maxsize=5, ttl=2, timer=Clock())
    cache["a"] = 1
    cache.timer.tick(3)
    cache["b"] = 2
    assert seen == ["a"]


def test_byte_budget_holds_with_expiry():
    cache = ttl_cache(maxsize=100, ttl=3, max_bytes=300, sizeof=lambda k, v: 100)
    for k in range(10):
        cache[k] = k
        cache.timer.tick()
        assert cache.currbytes <= 300
    assert len(cache) <= 3


def test_eq_that_clears_during_timed_lookup():
    cache = ttl_cache(maxsize=5, ttl=5)
    cache[HashKey("k")] = 1
    probe = EqHook("k", on_eq=cache.clear)   # a subclass: its __eq__ runs first
    assert probe not in cache and len(cache) == 0
    cache[EqHook("j", on_eq=cache.clear)] = 2
    check_invariants(cache)


# ---- TLRUCache ----

def tlru(maxsize=3, **kw):
    return TLRUCache(maxsize=maxsize, ttu=lambda k, v, now: now + v, timer=Clock(), **kw)


def test_tlru_items_expire_by_their_own_deadline():
    cache = tlru()
    cache[1] = 1
    cache[2] = 3
    cache.timer.tick()
    assert 1 not in cache and cache[2] == 3
    assert cache.ttu(0, 2, 5) == 7


def test_tlru_insert_already_expired_is_not_stored_and_replaces_nothing():
    cache = tlru()
    cache["k"] = 5
    cache["k"] = 0          # deadline == now: expired on arrival
    assert "k" not in cache and len(cache) == 0
    cache["j"] = -1
    assert len(cache) == 0


def test_tlru_infinite_deadline_and_nan_deadline():
    cache = TLRUCache(maxsize=3, ttu=lambda k, v, now: v, timer=Clock())
    cache["forever"] = math.inf
    cache["never"] = math.nan   # not (now < nan): expired on arrival
    cache.timer.tick(10**9)
    assert "forever" in cache and "never" not in cache


def test_tlru_ttu_errors_propagate_and_change_nothing():
    def ttu(k, v, now):
        if v == "bad":
            raise ValueError("no deadline")
        if v == "odd":
            return object()
        return now + 10

    cache = TLRUCache(maxsize=3, ttu=ttu, timer=Clock())
    cache["ok"] = "fine"
    with pytest.raises(ValueError):
        cache["x"] = "bad"
    with pytest.raises(TypeError):
        cache["x"] = "odd"
    assert dict(cache) == {"ok": "fine"}


def test_tlru_expire_is_in_deadline_order_not_insertion_order():
    cache = tlru(maxsize=10)
    for k, v in [("c", 3), ("a", 1), ("b", 2)]:
        cache[k] = v
    assert cache.expire(10) == [("a", 1), ("b", 2), ("c", 3)]


# ---- both against cachetools on the same script ----

@pytest.mark.parametrize("make", [
    lambda mod, clock: mod.TTLCache(maxsize=4, ttl=3, timer=clock),
    lambda mod, clock: mod.TLRUCache(maxsize=4, ttu=lambda k, v, now: now + v % 5, timer=clock),
])
def test_same_script_same_results_as_cachetools(make):
    ours_clock, theirs_clock = Clock(), Clock()
    ours, theirs = make(__import__("memleash"), ours_clock), make(cachetools, theirs_clock)
    script = [(k * 7 % 11, k % 3) for k in range(60)]
    for k, step in script:
        results = []
        for cache, clock in ((ours, ours_clock), (theirs, theirs_clock)):
            clock.tick(step)
            cache[k] = k
            r = [cache.get(k - 1), (k - 2) in cache, len(cache), repr(cache)]
            try:
                r.append(cache.pop(k - 3))
            except KeyError:
                r.append("KeyError")
            r.append(cache.expire())
            results.append(r)
        assert results[0] == results[1]


def test_timed_caches_are_caches_but_not_lru_caches():
    cache = ttl_cache()
    assert isinstance(cache, Cache) and not isinstance(cache, LRUCache)


# ---- callbacks that reconfigure a timed cache in the middle of an operation ----

def test_getsizeof_that_reinitialises_a_timed_cache_as_untimed():
    cache = ttl_cache(maxsize=10, ttl=5)

    def sizing(value):
        Cache.__init__(cache, 10)     # no timer, no deadlines any more
        return 1

    cache.__init__(10, 5, Clock(), sizing)
    cache["k"] = 1                    # sized again under the new (untimed) settings
    assert "k" in cache and cache.maxsize == 10 and cache._ml_timer is None
    check_invariants(cache)


def test_ttu_that_reinitialises_the_cache():
    cache = None

    def ttu(key, value, now):
        TTLCache.__init__(cache, 5, 100, Clock())
        return now + 10

    cache = TLRUCache(maxsize=5, ttu=ttu, timer=Clock())
    cache["a"] = 1               # ttu reconfigures as a TTLCache: the assignment starts again
    assert cache["a"] == 1 and cache._ml_ttl == 100
    check_invariants(cache)


def test_eq_that_reinitialises_during_a_timed_delete():
    cache = ttl_cache(maxsize=5, ttl=5)
    cache[HashKey("k")] = 1
    probe = EqHook("k", on_eq=lambda: Cache.__init__(cache, 5))
    with pytest.raises(KeyError):
        del cache[probe]
    check_invariants(cache)


def test_the_entered_timer_is_always_left():
    clock = Clock(auto=True)
    cache = TTLCache(maxsize=5, ttl=50, timer=clock)
    timer = cache.timer

    def reinit(value):
        Cache.__init__(cache, 5)
        return 1

    cache.__init__(5, 50, timer, reinit)
    old = cache.timer
    cache["k"] = 1
    first, second = old(), old()
    assert first != second        # not frozen: the timer entered was exited


def test_nan_times_and_deadlines_count_as_expired():
    clock = Clock()
    cache = TTLCache(maxsize=3, ttl=-math.inf, timer=clock)
    clock.time = math.inf
    cache["a"] = 1                 # inf + -inf: no deadline it could live before
    assert "a" not in cache and len(cache) == 0
    nan_clock = TTLCache(maxsize=3, ttl=5, timer=lambda: math.nan)
    nan_clock["b"] = 2
    assert "b" not in nan_clock and nan_clock.expire(0) == [("b", 2)]


# ---- integer clocks of any int64 value (time.time_ns, time.monotonic_ns) -----------------

def test_a_nanosecond_wall_clock_is_accepted():
    # every operation raised TypeError: "... take times as an int (|n| <= 2**53) ..., not int"
    import time

    cache = TTLCache(100, ttl=60_000_000_000, timer=time.time_ns)
    cache["a"] = 1
    assert cache["a"] == 1 and len(cache) == 1 and cache.currsize == 1
    assert cache.get("b", "none") == "none"
    mono = TTLCache(100, ttl=60_000_000_000, timer=time.monotonic_ns)
    mono["a"] = 1
    assert "a" in mono


@pytest.mark.parametrize("start", [2**53 + 7, 2**62, 2**63 - 10**12, -(2**63) + 10])
def test_int_times_far_from_zero_expire_at_the_exact_tick(start):
    clock = Clock(start=start)
    cache = TTLCache(10, ttl=1_000, timer=clock)
    cache["a"] = 1
    clock.tick(999)
    cache["b"] = 2
    assert "a" in cache and cache.expire() == []
    clock.tick(1)
    assert "a" not in cache and "b" in cache
    assert cache.expire() == [("a", 1)]
    clock.tick(998)
    assert "b" in cache
    clock.tick(1)
    assert "b" not in cache


def _ttu_from_value(key, value, now):
    return now + value


def test_an_int_clock_crossing_2_53_keeps_every_deadline_exact():
    # a monotonic_ns clock on a host up 104 days passes 2**53: the cache's origin follows
    # it, shifting every deadline by an exact integer
    clock = Clock(start=2**53 - 5)
    cache = TLRUCache(100, _ttu_from_value, timer=clock)
    for i, ttl in enumerate([3, 10, 2**52, 2**52 + 1]):
        cache[i] = ttl
    clock.tick(2**52)          # past 2**53: the origin moves
    # deadlines t0 + 3, + 10, + 2**52 passed; t0 + 2**52 + 1 not
    assert cache.expire() == [(0, 3), (1, 10), (2, 2**52)]
    assert sorted(cache) == [3]
    clock.tick(1)
    assert 3 not in cache
    cache["late"] = 2            # lives two ticks
    restored = pickle.loads(pickle.dumps(cache))   # with a copy of the clock, at the same time
    assert sorted(restored) == ["late"]
    clock.tick(1)
    restored.timer.tick(2)
    assert "late" in cache and "late" not in restored
    clock.tick(1)
    assert "late" not in cache


def test_entries_long_expired_before_the_origin_moves_stay_expired():
    clock = Clock(start=0)
    cache = TTLCache(10, ttl=5, timer=clock)
    cache["old"] = 1
    clock.time = 2**60            # the origin moves; "old" expired 2**60 - 5 ticks ago
    assert "old" not in cache and len(cache) == 0


def test_float_times_and_far_int_times_do_not_mix():
    clock = Clock(start=2**60)
    cache = TTLCache(10, ttl=5, timer=clock)
    cache["a"] = 1
    clock.time = 2**60 + 0.5
    with pytest.raises(TypeError, match="ints"):
        cache["b"] = 2
    clock.time = 2**60 + 1
    cache["b"] = 2
    assert sorted(cache) == ["a", "b"]
    floaty = TTLCache(10, ttl=0.5, timer=clock)   # a float ttl: no int origin but 0
    with pytest.raises(OverflowError):
        floaty["a"] = 1
    assert floaty._ml_stats()["entries"] == 0   # nothing stored (stats read no timer)


def test_time_type_errors_name_what_is_taken():
    cache = TTLCache(10, ttl=5, timer=lambda: "noon")
    with pytest.raises(TypeError) as info:
        cache["a"] = 1
    assert "an int, a float or a datetime, not str" in str(info.value)
    with pytest.raises(TypeError, match="ttl must be an int, a float or a timedelta, not str"):
        TTLCache(10, ttl="5")
    with pytest.raises(OverflowError):
        TTLCache(10, ttl=2**60)


# ---- the standard clocks, read without calling them ---------------------------------------

@pytest.mark.parametrize("name", ["monotonic", "time", "monotonic_coarse"])
def test_a_standard_clock_gives_what_the_function_gives(name):
    # a Timer around time.monotonic / time.time / memleash.monotonic_coarse reads the clock
    # itself (no call, no float object); the time it freezes is the one the function
    # returns at that moment
    import time

    import memleash

    fn = memleash.monotonic_coarse if name == "monotonic_coarse" else getattr(time, name)
    cache = TTLCache(10, ttl=3600, timer=fn)
    before = fn()
    with cache.timer as frozen:
        assert cache.timer() == frozen and isinstance(frozen, float)
        cache["a"] = 1                      # nested: the same frozen time
    after = fn()
    assert before <= frozen <= after
    (key, deadline), = [(k, d) for k, d in zip(cache, cache.__getstate__()[12][3])]
    assert key == "a" and deadline == frozen + 3600
    seen = []
    ttu_cache = TLRUCache(10, lambda k, v, now: seen.append(now) or now + 10, timer=fn)
    ttu_cache["b"] = 1
    assert len(seen) == 1 and before <= seen[0] <= fn() and isinstance(seen[0], float)


def test_monotonic_coarse_never_goes_back_and_never_leads_monotonic():
    # CLOCK_MONOTONIC as of the kernel's last tick: a read never exceeds a time.monotonic()
    # read after it, and successive reads never decrease
    import time

    import memleash

    last = memleash.monotonic_coarse()
    for _ in range(10_000):
        now = memleash.monotonic_coarse()
        assert last <= now <= time.monotonic() and isinstance(now, float)
        last = now


def test_a_cache_on_monotonic_coarse_pickles_with_its_timer():
    import pickle

    import memleash

    cache = TTLCache(10, ttl=3600, timer=memleash.monotonic_coarse)
    cache["a"] = 1
    copy = pickle.loads(pickle.dumps(cache))
    assert copy["a"] == 1 and copy.__getstate__()[12][2] is memleash.monotonic_coarse
    before = memleash.monotonic_coarse()
    with copy.timer as now:
        assert before <= now <= memleash.monotonic_coarse()
