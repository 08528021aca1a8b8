"""Expiry cost: the deadline wheel's work counter (`_ml_expiry_work`: entries filed, moved
between levels or unlinked) proves that expiry never scans the cache."""

import random

from memleash import TLRUCache, TTLCache, _core
from clock import Clock

# a million live items; builds with the O(n)-per-mutation validators (test-debug, test-asan)
# use fewer, or they would take hours
N = 2_000 if _core._CHECKED else 1_000_000



def big_tlru_with_one_doomed_key():
    """10**6 live items with scattered deadlines; key -1 expires at time 1, the rest later."""
    rng = random.Random(7)
    deadlines = {k: 2.0 + rng.random() * 1e6 for k in range(N)}
    deadlines[-1] = 1.0
    clock = Clock()
    cache = TLRUCache(maxsize=N + 1, ttu=lambda k, v, now: deadlines[k], timer=clock)
    for k in deadlines:
        cache[k] = k
    return cache, clock


def test_reading_one_expired_key_among_a_million_touches_at_most_two_entries():
    cache, clock = big_tlru_with_one_doomed_key()
    clock.time = 1.5
    before = cache._ml_expiry_work
    assert -1 not in cache
    assert cache.get(-1, "gone") == "gone"
    try:
        cache[-1]
    except KeyError:
        pass
    else:
        raise AssertionError("an expired key was readable")
    assert cache[5] == 5
    assert cache._ml_expiry_work - before <= 2


def test_deleting_one_expired_key_among_a_million_touches_at_most_two_entries():
    cache, clock = big_tlru_with_one_doomed_key()
    clock.time = 1.5
    before = cache._ml_expiry_work
    try:
        del cache[-1]
    except KeyError:
        pass
    assert cache._ml_expiry_work - before <= 2
    assert cache.expire() == [] and len(cache) == N


def test_expire_of_one_item_among_a_million_is_not_a_scan():
    cache, clock = big_tlru_with_one_doomed_key()
    work = cache._ml_expiry_work
    assert work <= 2 * (N + 1)              # filing costs O(1) each
    clock.time = 1.5
    assert cache.expire() == [(-1, -1)]
    # the first expiry may cascade a slot; it may not visit the whole cache
    print("work of the expire:", cache._ml_expiry_work - work)
    assert cache._ml_expiry_work - work <= N // 8


def test_inserting_into_a_full_ttl_cache_is_amortised_constant_work():
    clock = Clock()
    cache = TTLCache(maxsize=10_000, ttl=50.0 if N > 2_000 else 5.0, timer=clock)
    inserts = 200_000 if N > 2_000 else 20_000
    for i in range(inserts):
        clock.time = i * 0.01              # items expire and are evicted along the way
        cache[i] = i
    assert len(cache) == (5000 if N > 2_000 else 500)
    assert cache._ml_expiry_work <= 14 * inserts


def test_expire_removes_in_deadline_order_with_scattered_deadlines():
    rng = random.Random(3)
    deadlines = {k: rng.choice([rng.random() * 100, 50.0, float("inf")]) for k in range(N // 200)}
    cache = TLRUCache(maxsize=10_000, ttu=lambda k, v, now: deadlines[k], timer=Clock())
    for k in deadlines:
        cache[k] = k
    got = cache.expire(60.0)
    want = sorted((k for k, d in deadlines.items() if d <= 60.0), key=lambda k: (deadlines[k], k))
    assert [k for k, _ in got] == want
    assert len(cache) == sum(d > 60.0 for d in deadlines.values())


DEADLINES = {}


def ttu_from_table(key, value, now):
    return DEADLINES[key]


def test_unpickling_scattered_deadlines_files_each_entry_once():
    import pickle

    rng = random.Random(11)
    n = N // 10
    DEADLINES.clear()
    DEADLINES.update({k: 1.0 + rng.random() * 1e6 for k in range(n)})
    cache = TLRUCache(maxsize=n, ttu=ttu_from_table, timer=Clock())
    for k in DEADLINES:
        cache[k] = k
    copy = pickle.loads(pickle.dumps(cache))   # deadlines filed before the wheel saw a time
    assert copy._ml_expiry_work <= 2 * n       # was a sorted insertion each: O(n**2)
    assert len(copy) == n
