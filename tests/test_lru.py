"""LRUCache evicts the least recently used item, as cachetools.LRUCache does."""

import copy

import pytest

from memleash import LRUCache


def test_least_recently_used_is_evicted():
    cache = LRUCache[int, int](maxsize=2)
    cache[1] = 1
    cache[2] = 2
    cache[3] = 3
    assert 1 not in cache and (cache[2], cache[3]) == (2, 3)
    cache[2]
    cache[4] = 4
    assert 3 not in cache and (cache[2], cache[4]) == (2, 4)
    cache[5] = 5
    assert 2 not in cache and (cache[4], cache[5]) == (4, 5)


def test_shallow_copy_evicts_in_the_same_order_on_its_own():
    cache = LRUCache(maxsize=2)
    cache.update({2: 2, 3: 3})
    cache[2]
    assert copy.copy(cache).popitem() == (3, 3)
    assert len(cache) == 2


def test_reads_that_refresh_recency():
    for read in (lambda c: c[1], lambda c: c.get(1), lambda c: c.setdefault(1, 0)):
        cache = LRUCache(maxsize=2)
        cache.update({1: 1, 2: 2})
        read(cache)
        cache[3] = 3
        assert 1 in cache and 2 not in cache


def test_membership_does_not_refresh_recency():
    cache = LRUCache(maxsize=2)
    cache.update({1: 1, 2: 2})
    assert 1 in cache
    cache[3] = 3
    assert 1 not in cache


def test_values_view_refreshes_like_cachetools():
    # cachetools' ValuesView reads self[key]: every value read counts as a use
    cache = LRUCache(maxsize=3)
    cache.update({1: 1, 2: 2, 3: 3})
    cache[1]
    list(cache.values())
    assert cache.popitem() == (1, 1)


def test_updating_an_existing_key_refreshes_it():
    cache = LRUCache(maxsize=2)
    cache[1] = 1
    cache[2] = 2
    cache[1] = "updated"
    cache[3] = 3
    assert cache[1] == "updated" and 3 in cache and 2 not in cache


def test_getsizeof_evicts_as_many_as_needed():
    cache = LRUCache(maxsize=3, getsizeof=lambda x: x)
    cache[1] = 1
    cache[2] = 2
    cache[3] = 3
    assert len(cache) == 1 and cache[3] == 3
    with pytest.raises(ValueError):
        cache[4] = 4
    assert len(cache) == 1 and cache[3] == 3


def test_popitem_order_is_recency_order():
    cache = LRUCache(maxsize=5)
    cache.update({k: k for k in range(5)})
    cache[0]
    cache[2]
    assert [cache.popitem()[0] for _ in range(5)] == [1, 3, 4, 0, 2]


def test_recency_order_survives_pickling():
    import pickle

    cache = LRUCache(maxsize=4)
    cache.update({k: k for k in range(4)})
    cache[1]
    cache[0]
    restored = pickle.loads(pickle.dumps(cache))
    assert list(restored) == [0, 1, 2, 3]
    assert [restored.popitem()[0] for _ in range(4)] == [2, 3, 1, 0]


def test_clear_resets_recency():
    cache = LRUCache(maxsize=2)
    cache.update({1: 1, 2: 2})
    cache.clear()
    cache[3] = 3
    cache[4] = 4
    cache[3]
    cache[5] = 5
    assert 3 in cache and 5 in cache and 4 not in cache


def test_missing_stored_value_becomes_most_recent():
    class Loader(LRUCache):
        def __missing__(self, key):
            value = self[key] = key * 2
            return value

    cache = Loader(maxsize=2)
    cache[1] = 0
    assert cache[5] == 10
    cache[6]
    assert 1 not in cache and 5 in cache
