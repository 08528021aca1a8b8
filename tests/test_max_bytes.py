"""max_bytes: a second, hard budget in accounted bytes, never exceeded at any moment."""

import sys

import pytest

from memleash import Cache, LRUCache


class Recorder(LRUCache):
    """Checks the budget at every eviction: it must hold before anything new is stored."""

    def popitem(self):
        assert self.currbytes <= self.maxbytes
        return super().popitem()


def test_default_accounting_counts_key_value_and_entry_overhead():
    cache = LRUCache(maxsize=10, max_bytes=10_000)
    key, value = "k", b"x" * 100
    cache[key] = value
    overhead = cache.currbytes - sys.getsizeof(key) - sys.getsizeof(value)
    assert 0 < overhead <= 92
    cache["k2"] = value
    assert cache.currbytes == 2 * overhead + sys.getsizeof("k") + sys.getsizeof("k2") + 2 * sys.getsizeof(value)


def test_default_accounting_is_shallow():
    big = ["y" * 10_000 for _ in range(10)]
    cache = LRUCache(maxsize=10, max_bytes=1_000_000)
    cache["list"] = big
    assert cache.currbytes < sys.getsizeof(big) + 200
    assert cache.currbytes < sum(map(sys.getsizeof, big))


def test_keys_count_too():
    cache = LRUCache(maxsize=10, max_bytes=100_000)
    cache["a"] = 1
    small = cache.currbytes
    cache.clear()
    cache["a" * 5000] = 1
    assert cache.currbytes >= small + 4999


def test_sizeof_callable_replaces_the_default():
    cache = LRUCache(maxsize=100, max_bytes=250, sizeof=lambda k, v: len(v))
    cache["a"] = "x" * 100
    cache["b"] = "y" * 100
    assert cache.currbytes == 200
    cache["c"] = "z" * 100
    assert list(cache) == ["b", "c"] and cache.currbytes == 200


def test_eviction_happens_before_insertion():
    cache = Recorder(maxsize=1000, max_bytes=1000, sizeof=lambda k, v: v)
    for i in range(200):
        cache[i] = 100 + i % 7
        assert cache.currbytes <= 1000


def test_entry_larger_than_budget_raises_and_changes_nothing():
    cache = LRUCache(maxsize=10, max_bytes=500, sizeof=lambda k, v: v)
    cache.update({1: 100, 2: 200})
    with pytest.raises(ValueError, match="exceeds max_bytes=500"):
        cache[3] = 501
    with pytest.raises(ValueError):
        cache[1] = 501
    assert dict(cache) == {1: 100, 2: 200} and cache.currbytes == 300


def test_replacing_a_value_reaccounts_its_bytes():
    cache = LRUCache(maxsize=10, max_bytes=500, sizeof=lambda k, v: v)
    cache.update({1: 100, 2: 200})
    cache[1] = 250
    assert cache.currbytes == 450 and len(cache) == 2
    cache[1] = 400  # must evict 2, the least recently used
    assert dict(cache) == {1: 400} and cache.currbytes == 400


def _typed_sizeof(key, value):
    """Equal keys of other types count other bytes: 1, 1.0 and True are one key."""
    return value + {int: 0, float: 50, bool: 70}[type(key)]


def test_an_equal_key_is_sized_as_the_key_the_entry_keeps(cache_cls):
    # a store under an equal key keeps the key already held (as dict does): the entry's
    # bytes are those of the key it keeps, not of the one given, so currbytes stays the
    # sum of sizeof over the items (a ClientCache's placeholder replaced by another
    # thread's entry under an equal CacheKey drifted so)
    cache = cache_cls(10, max_bytes=10_000, sizeof=_typed_sizeof)
    cache[1.0] = 100
    cache[2] = 100
    for k in (1, True, 1.0, True):
        cache[k] = 200
        assert [type(k) for k in cache if k == 1] == [float]
        assert cache.currbytes == sum(_typed_sizeof(k, v) for k, v in cache.items()) == 350


def test_an_equal_key_evicted_to_make_room_for_itself_is_sized_anew():
    # the entry held under 1.0 is the oldest: replacing its value evicts it, and the value
    # is stored anew under the key given
    cache = LRUCache(10, max_bytes=1_000, sizeof=_typed_sizeof)
    cache[1.0] = 300
    cache[2] = 400
    cache[1] = 600
    assert list(cache.items()) == [(1, 600)] and type(next(iter(cache))) is int
    assert cache.currbytes == 600


def test_maxsize_and_max_bytes_combine():
    cache = LRUCache(maxsize=3, max_bytes=1000, sizeof=lambda k, v: v)
    cache.update({1: 10, 2: 10, 3: 10})
    cache[4] = 10
    assert len(cache) == 3
    cache[5] = 990  # 2 and 3 go; 4 + 5 fill the budget exactly
    assert list(cache) == [4, 5] and cache.currbytes == 1000


def test_getsizeof_and_max_bytes_combine():
    cache = Cache(maxsize=10, getsizeof=lambda v: v, max_bytes=100, sizeof=lambda k, v: 40)
    cache.update({1: 5, 2: 5})
    cache[3] = 1  # bytes force one eviction (the first inserted)
    assert list(cache) == [2, 3] and (cache.currsize, cache.currbytes) == (6, 80)


def test_sizeof_errors_reach_the_caller_and_change_nothing():
    def boom(k, v):
        raise ZeroDivisionError

    cache = LRUCache(maxsize=10, max_bytes=100, sizeof=boom)
    with pytest.raises(ZeroDivisionError):
        cache[1] = 1
    assert len(cache) == 0


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (1.5, TypeError), ("9", TypeError), (None, TypeError)])
def test_sizeof_must_return_a_non_negative_int(bad, exc):
    cache = LRUCache(maxsize=10, max_bytes=100, sizeof=lambda k, v: bad)
    with pytest.raises(exc):
        cache[1] = 1
    assert len(cache) == 0 and cache.currbytes == 0


def test_max_bytes_zero_holds_nothing():
    cache = LRUCache(maxsize=10, max_bytes=0)
    with pytest.raises(ValueError):
        cache[1] = 1


def test_currbytes_without_a_budget_is_computed_on_demand():
    plain = LRUCache(maxsize=10)
    budgeted = LRUCache(maxsize=10, max_bytes=10**9)
    for c in (plain, budgeted):
        c.update({"a": b"x" * 50, "b": b"y" * 70})
    assert plain.maxbytes is None
    per_entry_side_array = 8
    assert plain.currbytes == budgeted.currbytes - 2 * per_entry_side_array


def test_sizeof_of_the_cache_counts_what_it_owns_not_the_items():
    cache = LRUCache(maxsize=10_000)
    empty = sys.getsizeof(cache)
    cache.update((i, b"x" * 1000) for i in range(1000))
    grown = sys.getsizeof(cache) - empty
    assert 1000 * 40 <= grown < 1000 * 120
    cache.clear()
    assert sys.getsizeof(cache) == empty


def _with_cached_utf8(text):
    import ctypes

    ctypes.pythonapi.PyUnicode_AsUTF8.restype = ctypes.c_char_p
    ctypes.pythonapi.PyUnicode_AsUTF8(ctypes.py_object(text))
    return text


def _with_cached_wchar(text):
    """3.11: a str whose wchar_t copy was made (sys.getsizeof counts it); from 3.12 on no
    str has one (PyUnicode_AsUnicode is gone), and the text is returned as it is."""
    import ctypes

    as_unicode = getattr(ctypes.pythonapi, "PyUnicode_AsUnicode", None)
    if sys.version_info < (3, 12):
        assert as_unicode is not None
        as_unicode.restype = ctypes.c_void_p
        as_unicode(ctypes.py_object(text))
    return text


class StrSub(str):
    pass


SIZE_SAMPLES = [
    b"", b"x", b"y" * 1000, 0, 1, -1, 2**30, 2**64, -(2**100), 10**500, True, 0.0, -1.5,
    "", "a", "abc" * 100, "\xe9", "\xe9" * 50, "\u20ac" * 10, "\U0001f600" * 3,
    _with_cached_utf8("caf\xe9 " * 7), _with_cached_utf8("\u20ac" + "x" * 40),
    _with_cached_wchar("wide \xe9\u20ac text"), _with_cached_wchar("plain ascii"),
    StrSub("sub"), bytearray(b"abc"), (1, 2), None, frozenset({1}),
]


def test_default_accounting_equals_sys_getsizeof_for_every_type():
    overheads = set()
    for obj in SIZE_SAMPLES:
        cache = LRUCache(maxsize=10, max_bytes=10**9)
        key = obj if not isinstance(obj, bytearray) else "unhashable value"
        cache[key] = obj
        overheads.add(cache.currbytes - sys.getsizeof(key) - sys.getsizeof(obj))
    assert len(overheads) == 1, overheads


def test_on_demand_currbytes_equals_sys_getsizeof_sum():
    cache = LRUCache(maxsize=100)
    cache.update((i, obj) for i, obj in enumerate(SIZE_SAMPLES))
    reference = LRUCache(maxsize=100, max_bytes=10**9)
    reference.update((i, obj) for i, obj in enumerate(SIZE_SAMPLES))
    assert cache.currbytes == reference.currbytes - 8 * len(SIZE_SAMPLES)
    assert cache.currbytes > sum(sys.getsizeof(o) for o in SIZE_SAMPLES)
