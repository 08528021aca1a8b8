"""FIFOCache, LFUCache and RRCache evict in cachetools' order."""

import pickle

import cachetools
import pytest

from memleash import FIFOCache, LFUCache, RRCache


# ---- FIFO ----

def test_fifo_evicts_the_oldest_insert_whatever_was_read():
    cache = FIFOCache(maxsize=2)
    cache[1] = 1
    cache[2] = 2
    cache[1]
    cache[3] = 3
    assert 1 not in cache and list(cache) == [2, 3]


def test_fifo_replacement_counts_as_a_new_insert():
    cache = FIFOCache(maxsize=2)
    cache[1] = 1
    cache[2] = 2
    cache[1] = "again"
    cache[3] = 3
    assert 2 not in cache and cache[1] == "again"


def test_fifo_getsizeof_evicts_oldest_first():
    cache = FIFOCache(maxsize=3, getsizeof=lambda x: x)
    cache[1] = 1
    cache[2] = 2
    cache[3] = 3
    assert list(cache) == [3]


# ---- LFU ----

def test_lfu_evicts_the_least_used():
    cache = LFUCache(maxsize=2)
    cache[1] = 1
    cache[1]
    cache[2] = 2
    cache[3] = 3
    assert 2 not in cache and (cache[1], cache[3]) == (1, 3)
    cache[3]
    cache[4] = 4
    assert 1 not in cache and (cache[3], cache[4]) == (3, 4)


def test_lfu_ties_go_to_the_least_recently_used():
    cache = LFUCache(maxsize=3)
    cache.update({1: 1, 2: 2, 3: 3})
    cache[3]
    cache[2]
    cache[1]
    cache[4] = 4
    assert 3 not in cache and {1, 2, 4} <= set(cache)
    cache[4]
    cache[5] = 5
    assert 2 not in cache and {1, 4, 5} <= set(cache)


def test_lfu_never_read_items_leave_in_insertion_order():
    cache = LFUCache(maxsize=3)
    cache.update({1: 1, 2: 2, 3: 3})
    for key in range(4, 40):
        cache[key] = key
        assert list(cache) == [key - 2, key - 1, key]


def test_lfu_replacing_a_value_counts_as_a_use():
    cache = LFUCache(maxsize=2)
    cache[1] = 1
    cache[2] = 2
    cache[1] = 10
    cache[3] = 3
    assert 2 not in cache and cache[1] == 10


def test_lfu_counts_survive_pickling_with_many_distinct_counts():
    cache = LFUCache(maxsize=2000)
    for k in range(1000):
        cache[k] = k
        for _ in range(k % 50):
            cache[k]
    restored = pickle.loads(pickle.dumps(cache))
    assert [restored.popitem()[0] for _ in range(30)] == [cache.popitem()[0] for _ in range(30)]


# ---- RR ----

def test_rr_choice_defaults_to_random_choice():
    import random

    assert RRCache(2).choice is random.choice


def test_rr_evicts_what_choice_picks_from_a_key_sequence():
    seen = []

    def pick_last(keys):
        seen.append(list(keys))
        return keys[len(keys) - 1]

    cache = RRCache(maxsize=3, choice=pick_last)
    cache.update({1: 1, 2: 2, 3: 3})
    cache[4] = 4
    assert seen == [[1, 2, 3]] and 3 not in cache


@pytest.mark.parametrize("pick", [min, max, lambda keys: keys[len(keys) // 2], lambda keys: keys[0]])
def test_rr_matches_cachetools_for_the_same_choice(pick):
    ours, theirs = RRCache(5, choice=pick), cachetools.RRCache(5, choice=pick)
    for k in [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3]:
        for c in (ours, theirs):
            c[k] = k
        if k % 4 == 0:
            for c in (ours, theirs):
                c.pop(next(iter(c)))
        assert repr(ours) == repr(theirs)
    assert ours.popitem() == theirs.popitem()


def test_rr_choice_of_a_missing_key_raises_keyerror_and_stores_nothing():
    cache = RRCache(maxsize=2, choice=lambda keys: "not a key")
    cache.update({1: 1, 2: 2})
    with pytest.raises(KeyError):
        cache[3] = 3
    assert dict(cache) == {1: 1, 2: 2}


def test_rr_choice_errors_propagate():
    def boom(keys):
        raise LookupError("no choice")

    cache = RRCache(maxsize=1, choice=boom)
    cache[1] = 1
    with pytest.raises(LookupError):
        cache[2] = 2
    with pytest.raises(LookupError):
        cache.popitem()
    assert dict(cache) == {1: 1}


def test_rr_choice_that_mutates_the_cache_stays_consistent():
    cache = RRCache(maxsize=3)

    def clearing(keys):
        k = keys[0]
        cache.clear()
        return k

    cache._ml_choice = clearing
    cache.update({1: 1, 2: 2, 3: 3})
    # the store's eviction finds the cache emptied under its choice (as it would when
    # another thread clears it meanwhile): room was made, and the store goes on. cachetools
    # raises KeyError here (docs/compat.md), as memleash did before the free-threaded build
    # showed the same through other threads, where a store failing is not what it promises
    cache[4] = 4
    assert dict(cache) == {4: 4}
    cache[5] = 5
    assert dict(cache) == {4: 4, 5: 5}


def test_rr_key_sequence_keeps_the_keys_as_they_were_and_is_bounds_checked():
    kept = []
    cache = RRCache(maxsize=2, choice=lambda keys: (kept.append(keys), keys[0])[1])
    cache.update({1: 1, 2: 2, 3: 3})
    keys = kept[0]
    cache.clear()
    assert list(keys) == [1, 2] and len(keys) == 2
    with pytest.raises(IndexError):
        keys[2]


def test_rr_choice_must_be_callable():
    with pytest.raises(TypeError):
        RRCache(2, choice=5)


def test_rr_order_and_choice_survive_pickling():
    cache = RRCache(5, choice=min)
    cache.update({k: k for k in range(8)})
    restored = pickle.loads(pickle.dumps(cache))
    assert restored.choice is min
    assert [restored.popitem() for _ in range(5)] == [cache.popitem() for _ in range(5)]
