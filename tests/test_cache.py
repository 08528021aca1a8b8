"""memleash.Cache and memleash.LRUCache behave as cachetools' caches (8.0.2, pinned).

Behaviours every cache class shares; LRU order is in test_lru.py, the byte budget in
test_max_bytes.py.
"""

import collections.abc
import copy
import math
import pickle
import sys
import weakref

import pytest

import memleash


def test_new_cache_is_empty_with_its_limits(cache_cls):
    cache = cache_cls(maxsize=1)
    assert len(cache) == 0
    assert cache.maxsize == 1
    assert cache.currsize == 0
    assert [cache.getsizeof(x) for x in (None, "", 0)] == [1, 1, 1]
    assert repr(cache).startswith(cache_cls.__name__)


@pytest.mark.parametrize("maxsize", [-1, -math.inf, -0.5])
def test_negative_maxsize_is_rejected(cache_cls, maxsize):
    with pytest.raises(ValueError, match="^maxsize must be non-negative$"):
        cache_cls(maxsize=maxsize)


def test_nan_maxsize_is_rejected(cache_cls):
    with pytest.raises(ValueError, match="NaN"):
        cache_cls(maxsize=math.nan)


def test_non_numeric_maxsize_is_a_type_error(cache_cls):
    with pytest.raises(TypeError):
        cache_cls(maxsize="10")


def test_maxsize_zero_stores_nothing(cache_cls):
    cache = cache_cls(maxsize=0)
    with pytest.raises(ValueError, match="^value too large$"):
        cache[1] = 1
    assert len(cache) == 0
    assert cache.currsize == 0


def test_maxsize_keeps_the_object_given(cache_cls):
    assert cache_cls(maxsize=2.5).maxsize == 2.5
    assert type(cache_cls(maxsize=3).maxsize) is int
    assert cache_cls(maxsize=math.inf).maxsize == math.inf


def test_infinite_maxsize_holds_everything(cache_cls):
    cache = cache_cls(maxsize=math.inf)
    cache.update((i, i) for i in range(100))
    assert len(cache) == 100
    assert cache.currsize == 100


def test_insert_beyond_maxsize_evicts(cache_cls):
    cache = cache_cls(maxsize=2)
    cache.update({1: 1, 2: 2})
    cache[3] = 3
    assert len(cache) == 2
    assert cache[3] == 3
    assert (1 in cache) != (2 in cache)


def test_update_replaces_values_in_place(cache_cls):
    cache = cache_cls(maxsize=2)
    cache.update({1: 1, 2: 2})
    cache.update({1: "a", 2: "b"})
    assert len(cache) == 2
    assert (cache[1], cache[2]) == ("a", "b")


def test_delete_removes_and_missing_key_raises(cache_cls):
    cache = cache_cls(maxsize=2)
    cache.update({1: 1, 2: 2})
    del cache[2]
    assert 2 not in cache and len(cache) == 1 and cache.currsize == 1
    with pytest.raises(KeyError):
        del cache[2]
    assert len(cache) == 1


def test_missing_tuple_key_is_the_single_keyerror_argument(cache_cls):
    cache = cache_cls(maxsize=2)
    with pytest.raises(KeyError) as info:
        cache[(1, 2)]
    assert info.value.args == ((1, 2),)


def test_pop_returns_value_or_default_or_raises(cache_cls):
    cache = cache_cls(maxsize=2)
    cache.update({1: 1, 2: 2})
    assert cache.pop(2) == 2
    assert cache.pop(1) == 1
    assert len(cache) == 0
    with pytest.raises(KeyError):
        cache.pop(1)
    assert cache.pop(1, None) is None
    assert cache.pop(1, default=7) == 7


def test_get_returns_default_on_miss(cache_cls):
    cache = cache_cls(maxsize=2)
    cache[1] = "one"
    assert cache.get(1) == "one"
    assert cache.get(2) is None
    assert cache.get(2, 5) == 5
    assert cache.get(2, default=6) == 6


def test_setdefault_stores_only_when_absent(cache_cls):
    cache = cache_cls(maxsize=2)
    assert cache.setdefault(1, "a") == "a"
    assert cache.setdefault(1, "b") == "a"
    assert cache.setdefault(2) is None
    assert dict(cache) == {1: "a", 2: None}


def test_popitem_empties_the_cache(cache_cls):
    cache = cache_cls(maxsize=2)
    cache.update({1: 1, 2: 2})
    assert {cache.popitem()[0], cache.popitem()[0]} == {1, 2}
    assert len(cache) == 0 and cache.currsize == 0
    with pytest.raises(KeyError):
        cache.popitem()


def test_popitem_on_empty_suppresses_context(cache_cls):
    try:
        raise OSError("unrelated")
    except OSError:
        with pytest.raises(KeyError) as info:
            cache_cls(maxsize=2).popitem()
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_empty_messages_match_cachetools():
    with pytest.raises(KeyError) as info:
        memleash.Cache(1).popitem()
    assert info.value.args == ()
    with pytest.raises(KeyError, match="'LRUCache is empty'"):
        memleash.LRUCache(1).popitem()

    class Mine(memleash.LRUCache):
        pass

    with pytest.raises(KeyError, match="'Mine is empty'"):
        Mine(1).popitem()


def test_missing_hook_computes_and_may_store(cache_cls):
    class DefaultCache(cache_cls):
        def __missing__(self, key):
            self[key] = key
            return key

    cache = DefaultCache(maxsize=2)
    assert cache[1] == 1 and cache[2] == 2
    assert cache[3] == 3
    assert len(cache) == 2 and 3 in cache
    # only __getitem__ calls __missing__
    assert cache.get(5) is None
    assert cache.pop(5, None) is None
    with pytest.raises(KeyError):
        cache.pop(5)
    assert 5 not in cache


def test_missing_hook_that_cannot_store_still_returns(cache_cls):
    class DefaultCache(cache_cls):
        def __missing__(self, key):
            try:
                self[key] = key
            except ValueError:
                pass
            return key

    cache = DefaultCache(maxsize=2, getsizeof=lambda x: x)
    assert cache[1] == 1 and cache.currsize == 1
    assert cache[2] == 2 and cache.currsize == 2 and 1 not in cache
    assert cache[3] == 3 and 3 not in cache and cache.currsize == 2


def test_super_missing_raises_keyerror(cache_cls):
    class Counting(cache_cls):
        misses = 0

        def __missing__(self, key):
            type(self).misses += 1
            return super().__missing__(key)

    cache = Counting(maxsize=2)
    with pytest.raises(KeyError):
        cache["x"]
    assert Counting.misses == 1


def _check_getsizeof_scenario(cache):
    assert (cache.currsize, cache.maxsize) == (0, 3)
    assert [cache.getsizeof(n) for n in (1, 2, 3)] == [1, 2, 3]
    cache.update({1: 1, 2: 2})
    assert len(cache) == 2 and cache.currsize == 3
    cache[1] = 2
    assert len(cache) == 1 and cache.currsize == 2 and 2 not in cache
    cache.update({1: 1, 2: 2})
    assert len(cache) == 2 and cache.currsize == 3
    cache[3] = 3
    assert len(cache) == 1 and cache.currsize == 3 and cache[3] == 3
    with pytest.raises(ValueError, match="^value too large$"):
        cache[3] = 4
    assert len(cache) == 1 and cache.currsize == 3 and cache[3] == 3
    with pytest.raises(ValueError, match="^value too large$"):
        cache[4] = 4
    assert len(cache) == 1 and cache[3] == 3


def test_getsizeof_argument_sizes_values(cache_cls):
    _check_getsizeof_scenario(cache_cls(maxsize=3, getsizeof=lambda x: x))


def test_getsizeof_override_sizes_values(cache_cls):
    class Sized(cache_cls):
        @staticmethod
        def getsizeof(value):
            return value

    _check_getsizeof_scenario(Sized(maxsize=3))


def test_getsizeof_argument_is_an_instance_attribute(cache_cls):
    cache = cache_cls(maxsize=10, getsizeof=len)
    assert cache.getsizeof is len
    assert cache.__dict__["getsizeof"] is len


def test_growing_an_entry_reserves_only_the_difference(cache_cls):
    cache = cache_cls(maxsize=10, getsizeof=lambda x: x)
    cache[3] = 3
    cache[4] = 4
    cache[4] = 7
    assert len(cache) == 2 and cache.currsize == 10
    cache[4] = 9
    assert len(cache) == 1 and cache.currsize == 9 and 3 not in cache


def test_same_size_and_shrinking_replacements_evict_nothing(cache_cls):
    cache = cache_cls(maxsize=10, getsizeof=lambda x: x)
    cache[3] = 3
    cache[4] = 4
    cache[4] = 4
    assert cache.currsize == 7 and len(cache) == 2
    cache[4] = 1
    assert cache.currsize == 4 and (cache[3], cache[4]) == (3, 1)


def test_negative_size_is_rejected_and_nothing_stored(cache_cls):
    cache = cache_cls(maxsize=3, getsizeof=lambda x: -1)
    with pytest.raises(ValueError, match="^value size must be non-negative$"):
        cache[1] = 1
    assert len(cache) == 0 and cache.currsize == 0


def test_nan_size_is_rejected(cache_cls):
    cache = cache_cls(maxsize=3, getsizeof=lambda x: math.nan)
    with pytest.raises(ValueError, match="NaN"):
        cache[1] = 1
    assert len(cache) == 0


def test_non_numeric_size_is_a_type_error(cache_cls):
    cache = cache_cls(maxsize=3, getsizeof=lambda x: "big")
    with pytest.raises(TypeError):
        cache[1] = 1
    assert len(cache) == 0


def test_float_sizes_make_currsize_a_float_until_clear(cache_cls):
    cache = cache_cls(maxsize=10, getsizeof=lambda x: x)
    cache[1] = 1
    assert type(cache.currsize) is int
    cache[2] = 2.5
    del cache[2]
    assert cache.currsize == 1.0 and type(cache.currsize) is float
    cache.clear()
    assert cache.currsize == 0 and type(cache.currsize) is int


def test_clear_empties_and_the_cache_is_reusable(cache_cls):
    cache = cache_cls(maxsize=2)
    cache.update({1: 1, 2: 2})
    cache.clear()
    assert len(cache) == 0 and cache.currsize == 0 and 1 not in cache
    cache[3] = 3
    cache[4] = 4
    cache[5] = 5
    assert len(cache) == 2 and 5 in cache


def test_clear_with_getsizeof_resets_currsize(cache_cls):
    cache = cache_cls(maxsize=10, getsizeof=lambda x: x)
    cache.update({1: 1, 2: 2, 3: 3})
    cache.clear()
    assert cache.currsize == 0
    cache[4] = 4
    assert cache.currsize == 4


def test_updating_values_while_iterating_visits_each_key_once(cache_cls):
    cache = cache_cls(maxsize=3)
    cache.update({1: 1, 2: 2, 3: 3})
    keys = []
    for key in cache:
        keys.append(key)
        cache[key] = key * 10
    assert keys == [1, 2, 3]
    assert list(cache.values()) == [10, 20, 30]


def test_adding_a_key_while_iterating_raises(untimed_cache_cls):
    cache_cls = untimed_cache_cls
    cache = cache_cls(maxsize=10)
    cache.update({1: 1, 2: 2})
    it = iter(cache)
    next(it)
    cache[3] = 3
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        next(it)
    with pytest.raises(RuntimeError):
        next(it)


def test_replacing_a_key_while_iterating_raises(untimed_cache_cls):
    cache_cls = untimed_cache_cls
    cache = cache_cls(maxsize=10)
    cache.update({1: 1, 2: 2})
    it = iter(cache)
    next(it)
    del cache[2]
    cache[3] = 3
    with pytest.raises(RuntimeError, match="keys changed during iteration"):
        next(it)


def test_iteration_is_in_insertion_order(cache_cls):
    cache = cache_cls(maxsize=10)
    for k in "abcde":
        cache[k] = k
    del cache["b"]
    cache["b"] = 1
    cache["a"]
    assert list(cache) == ["a", "c", "d", "e", "b"]
    assert list(reversed(list(cache.items())))[0] == ("b", 1)
    assert iter(cache).__length_hint__() == 5


def test_repr_matches_cachetools_format(cache_cls):
    cache = cache_cls(maxsize=10)
    cache[1] = "a"
    assert repr(cache) == f"{cache_cls.__name__}({{1: 'a'}}, maxsize=10, currsize=1)"


def test_repr_of_a_cache_containing_itself(cache_cls):
    cache = cache_cls(maxsize=10)
    cache[1] = cache
    name = cache_cls.__name__
    assert repr(cache) == f"{name}({{1: {name}({{...}}, maxsize=10, currsize=1)}}, maxsize=10, currsize=1)"


def test_is_a_mutable_mapping_and_compares_as_one(cache_cls):
    cache = cache_cls(maxsize=10)
    cache.update({1: 1, 2: 2})
    assert isinstance(cache, collections.abc.MutableMapping)
    assert isinstance(cache, memleash.Cache)
    assert cache == {1: 1, 2: 2}
    assert cache != {1: 1}
    with pytest.raises(TypeError):
        hash(cache)


def test_class_is_subscriptable_at_runtime(cache_cls):
    alias = cache_cls[str, int]
    assert alias.__origin__ is cache_cls
    assert isinstance(alias(maxsize=2), cache_cls)


def test_pickle_round_trip_is_independent(cache_cls):
    source = cache_cls(maxsize=2)
    source.update({1: 1, 2: 2})
    cache = pickle.loads(pickle.dumps(source))
    assert cache is not source and cache == source
    assert (cache.maxsize, cache.currsize) == (source.maxsize, source.currsize)
    cache[3] = 3
    assert len(cache) == 2 and 3 in cache
    assert 3 not in source and len(source) == 2


def _hundred_bytes(key, value):
    return 100


def test_pickle_keeps_sizes_and_attributes(cache_cls):
    source = cache_cls(maxsize=10, getsizeof=abs, max_bytes=10_000, sizeof=_hundred_bytes)
    source.update({1: -3, 2: 4.5})
    source.note = "kept"
    cache = pickle.loads(pickle.dumps(source))
    assert (cache.currsize, cache.currbytes, cache.maxbytes) == (7.5, 200, 10_000)
    assert type(cache.currsize) is float
    assert cache.note == "kept"
    assert cache.getsizeof is abs


def test_pickle_with_more_items_than_the_recursion_limit(cache_cls):
    n = sys.getrecursionlimit() * 3
    source = cache_cls(maxsize=n)
    source.update((i, str(i)) for i in range(n))
    cache = pickle.loads(pickle.dumps(source))
    assert len(cache) == n and cache[n - 1] == str(n - 1)
    assert copy.deepcopy(source) == source


def test_shallow_copy_has_its_own_data_and_shares_attributes(cache_cls):
    source = cache_cls(maxsize=3)
    source.update({1: 1, 2: 2})
    source.tag = ["shared"]
    dup = copy.copy(source)
    dup[3] = 3
    assert 3 not in source
    assert dup.tag is source.tag
    assert dup.maxsize == 3


def test_setstate_rejects_garbage(cache_cls):
    cache = cache_cls(maxsize=3)
    cache[1] = 1
    with pytest.raises((TypeError, ValueError)):
        cache.__setstate__("nonsense")
    with pytest.raises(ValueError):
        cache.__setstate__((None, 3, False, False, None, None, [1], None, None, None, None, None, None, None))
    assert cache[1] == 1


def test_instances_are_weakly_referenceable(cache_cls):
    cache = cache_cls(maxsize=3)
    ref = weakref.ref(cache)
    assert ref() is cache
    del cache
    assert ref() is None


def test_reinit_resets_content_and_limits(cache_cls):
    cache = cache_cls(maxsize=3)
    cache.update({1: 1, 2: 2})
    cache.__init__(5, max_bytes=10_000)
    assert len(cache) == 0 and cache.maxsize == 5 and cache.maxbytes == 10_000


def test_bad_constructor_arguments_are_type_errors(cache_cls):
    with pytest.raises(TypeError):
        cache_cls()
    with pytest.raises(TypeError):
        cache_cls(3, getsizeof=5)
    with pytest.raises(TypeError):
        cache_cls(3, sizeof="len")
    with pytest.raises(TypeError):
        cache_cls(3, max_bytes=1.5)
    with pytest.raises(ValueError, match="max_bytes must be non-negative"):
        cache_cls(3, max_bytes=-1)


def test_unhashable_key_is_a_type_error_and_changes_nothing(cache_cls):
    cache = cache_cls(maxsize=3)
    cache[1] = 1
    for op in (lambda: cache.__setitem__([], 1), lambda: cache[[]], lambda: [] in cache,
               lambda: cache.get([]), lambda: cache.pop([]), lambda: cache.__delitem__([])):
        with pytest.raises(TypeError):
            op()
    assert dict(cache) == {1: 1}


# ---- the deliberate differences of docs/compat.md ----

def test_subclass_that_skips_init_is_empty_and_refuses_items(cache_cls):
    class Lazy(cache_cls):
        def __init__(self):
            pass

    cache = Lazy()
    assert len(cache) == 0 and cache.maxsize is None
    with pytest.raises(ValueError, match="value too large"):
        cache[1] = 1
    assert repr(cache) == "Lazy({}, maxsize=None, currsize=0)"


def test_sizing_callable_is_fixed_at_construction(cache_cls):
    cache = cache_cls(maxsize=10, getsizeof=lambda v: 2)
    cache.getsizeof = lambda v: 5
    cache[1] = 1
    assert cache.currsize == 2


def test_empty_cache_has_exactly_zero_currsize_after_float_sizes(cache_cls):
    cache = cache_cls(maxsize=10, getsizeof=lambda v: v)
    cache[1] = 0.1
    cache[2] = 0.2
    del cache[1]
    del cache[2]
    assert cache.currsize == 0.0
