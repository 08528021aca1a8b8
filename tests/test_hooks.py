"""Python overrides of a cache's methods are called wherever cachetools calls self.<name>."""

import pytest

from hostile import refilled_by_another_thread
from memleash import Cache, LRUCache


def test_overridden_popitem_sees_every_eviction(cache_cls):
    evicted = []

    class Observed(cache_cls):
        def popitem(self):
            key, value = super().popitem()
            evicted.append(key)
            return key, value

    cache = Observed(maxsize=2)
    for k in range(5):
        cache[k] = k
    assert len(evicted) == 3 and sorted(evicted + list(cache)) == [0, 1, 2, 3, 4]
    if cache_cls.__name__ == "TinyLFUCache":   # each newcomer loses its tie with 0
        assert evicted == [1, 2, 3] and list(cache) == [0, 4]
    elif cache_cls.__name__ != "RRCache":   # the others evict in a fixed order here
        assert evicted == [0, 1, 2] and list(cache) == [3, 4]


def test_overridden_delitem_sees_evictions_and_pops(cache_cls):
    deleted = []

    class Observed(cache_cls):
        def __delitem__(self, key):
            deleted.append(key)
            super().__delitem__(key)

    cache = Observed(maxsize=2)
    cache.update({1: 1, 2: 2})
    cache[3] = 3                      # evicts one of 1, 2
    remaining = [k for k in (1, 2) if k in cache]
    assert cache.pop(remaining[0]) == remaining[0]
    assert cache.popitem() == (3, 3)
    assert sorted(deleted) == [1, 2, 3] and deleted[-1] == 3


def test_overridden_getitem_serves_get_pop_and_setdefault(cache_cls):
    reads = []

    class Observed(cache_cls):
        def __getitem__(self, key):
            reads.append(key)
            return super().__getitem__(key)

    cache = Observed(maxsize=5)
    cache.update({1: 1, 2: 2, 3: 3})
    assert cache.get(1) == 1
    assert cache.get(9) is None
    assert cache.setdefault(2, 0) == 2
    assert cache.pop(3) == 3
    assert reads == [1, 2, 3]


def test_overridden_contains_serves_get(cache_cls):
    class Blind(cache_cls):
        def __contains__(self, key):
            return False

    cache = Blind(maxsize=5)
    cache[1] = 1
    assert cache.get(1, "absent") == "absent"
    assert cache.pop(1, "absent") == "absent"


def test_overridden_setitem_serves_setdefault_and_update(cache_cls):
    writes = []

    class Observed(cache_cls):
        def __setitem__(self, key, value):
            writes.append(key)
            super().__setitem__(key, value)

    cache = Observed(maxsize=5)
    cache.setdefault("a", 1)
    cache.update({"b": 2})
    assert writes == ["a", "b"]


def test_overridden_getsizeof_sizes_entries(cache_cls):
    class ByLength(cache_cls):
        def getsizeof(self, value):
            return len(value)

    cache = ByLength(maxsize=5)
    cache["a"] = "abc"
    cache["b"] = "de"
    assert cache.currsize == 5
    cache["c"] = "f"
    assert "c" in cache and len(cache) == 2
    assert cache.currsize == sum(len(cache.get(k)) for k in list(cache)) <= 5
    if cache_cls.__name__ == "TinyLFUCache":   # the window's "b" loses its tie with "a"
        assert "b" not in cache and cache.currsize == 4
    elif cache_cls.__name__ != "RRCache":   # the others evict the oldest, "a", here
        assert "a" not in cache and cache.currsize == 3


def test_popitem_that_frees_nothing_raises_instead_of_looping(cache_cls):
    class Stubborn(cache_cls):
        def popitem(self):
            return None

    cache = Stubborn(maxsize=2)
    cache.update({1: 1, 2: 2})
    with pytest.raises(RuntimeError, match="freed no room"):
        cache[3] = 3
    assert dict(cache) == {1: 1, 2: 2}


def test_popitem_while_another_thread_refills_the_cache_is_called_again(cache_cls):
    # popitem() is Python code, and the cache's lock does not hold across it (the GIL build
    # switches threads; the free-threaded build suspends the cache's critical section while
    # popitem() blocks, here in join()): a store by another thread meanwhile takes the room
    # it freed. The store that called it looks again; "freed no room" was raised before
    cache = refilled_by_another_thread(cache_cls, "other", 0)(maxsize=2)
    cache.update({1: 1, 2: 2})
    cache[3] = 3
    calls = type(cache).calls
    assert len(calls) == 2 and cache[3] == 3 and len(cache) == 2
    assert {k for k, _ in calls} | set(cache) == {1, 2, 3, "other"}


def test_popitem_that_always_stores_what_it_frees_raises_after_a_bounded_number_of_calls(
        cache_cls):
    # the cache changes during each call but never holds less: looked at again 100 times
    # in a row (ML_TABLE_MAX_RESTARTS), then refused as a popitem() that frees nothing
    calls = []

    class Swapping(cache_cls):
        def popitem(self):
            key, value = super().popitem()
            calls.append(key)
            self[("again", len(calls))] = value      # takes the room it just made
            return key, value

    cache = Swapping(maxsize=2)
    cache.update({1: 1, 2: 2})
    with pytest.raises(RuntimeError, match="freed no room 100 times in a row"):
        cache[3] = 3
    assert len(calls) == 101 and 3 not in cache and len(cache) == 2


def test_popitem_errors_propagate_and_nothing_is_stored(cache_cls):
    class Failing(cache_cls):
        def popitem(self):
            raise LookupError("no")

    cache = Failing(maxsize=1)
    cache[1] = 1
    with pytest.raises(LookupError):
        cache[2] = 2
    assert dict(cache) == {1: 1}


class Tagged(LRUCache):
    def __init__(self, maxsize, tag):
        super().__init__(maxsize)
        self.tag = tag


def test_subclass_with_its_own_init_signature_pickles():
    import pickle

    cache = Tagged(3, "t")
    cache[1] = 1
    restored = pickle.loads(pickle.dumps(cache))
    assert restored.tag == "t" and restored == cache and type(restored) is Tagged


def test_lru_popitem_reads_the_stored_value_not_getitem():
    # cachetools' LRUCache.popitem uses Cache.__getitem__, not self[key]
    class Loud(LRUCache):
        def __getitem__(self, key):
            raise AssertionError("not called")

        def __delitem__(self, key):
            super().__delitem__(key)

    cache = Loud(maxsize=2)
    cache[1] = "one"
    assert cache.popitem() == (1, "one")


def test_cache_popitem_reads_through_getitem():
    # cachetools' Cache inherits MutableMapping.popitem: value = self[key]
    class Doubling(Cache):
        def __getitem__(self, key):
            return super().__getitem__(key) * 2

    cache = Doubling(maxsize=2)
    cache[1] = 21
    assert cache.popitem() == (1, 42)
