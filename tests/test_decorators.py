"""The memoizing decorators: functools' lru_cache/cache and cachetools' cached,
cachedmethod, keys and func (cachetools' own suite runs against them in `make compat`)."""

import copy
import functools
import gc
import pickle
import sys
import threading
import weakref

import cachetools
import cachetools.keys
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memleash
from memleash import keys


# ---------------------------------------------------------------------------------------
# functools flavour: the same results and cache_info() as functools.lru_cache

VALUES = [0, 1, 1.0, True, 2, "a", "b", (1, 2), None, frozenset({1})]
UNHASHABLE = [[1], {"k": 1}]

call = st.tuples(
    st.lists(st.sampled_from(VALUES + UNHASHABLE[:1]), max_size=3),
    st.dictionaries(st.sampled_from(["x", "y", "z"]), st.sampled_from(VALUES), max_size=2),
)


def echo(*args, **kwargs):
    return (args, tuple(kwargs.items()), object())   # a new object: which call stored it


@settings(max_examples=150, deadline=None)
@given(maxsize=st.sampled_from([None, 0, 1, 2, 5, -3]), typed=st.booleans(),
       calls=st.lists(call, max_size=40))
def test_lru_cache_matches_functools_call_by_call(maxsize, typed, calls):
    ours = memleash.lru_cache(maxsize, typed)(echo)
    theirs = functools.lru_cache(maxsize, typed)(echo)
    stored, alive = {}, []   # functools' result object's id -> ours (both kept alive)
    for args, kwargs in calls:
        try:
            expected = theirs(*args, **kwargs)
        except TypeError as exc:
            with pytest.raises(TypeError, match=str(exc).split(":")[0]):
                ours(*args, **kwargs)
            continue
        got = ours(*args, **kwargs)
        assert got[:2] == expected[:2]
        # a hit returns the object stored by the same earlier call on both sides
        alive.append((expected, got))
        assert stored.setdefault(id(expected[2]), got[2]) is got[2]
        assert ours.cache_info() == theirs.cache_info()
    assert ours.cache_parameters() == theirs.cache_parameters()


def test_a_lone_int_or_str_is_its_own_key_as_in_functools():
    f = memleash.lru_cache()(lambda *a: a)
    f(1), f(1.0)                       # 1 is its own key, (1.0,) another
    assert f.cache_info().currsize == 2
    g = memleash.lru_cache()(lambda *a: a)
    g(1, 2), g(1.0, 2)                 # (1, 2) == (1.0, 2): one entry
    assert g.cache_info() == (1, 1, 128, 1)


def test_keyword_order_matters_as_in_functools():
    f = memleash.lru_cache()(lambda **kw: kw)
    f(a=1, b=2), f(b=2, a=1)
    assert f.cache_info().misses == 2


def test_typed_keeps_types_apart():
    f = memleash.lru_cache(typed=True)(lambda x: x)
    assert type(f(1)) is int and type(f(1.0)) is float and type(f(True)) is bool
    assert f.cache_info().currsize == 3


def test_bare_decorator_and_maxsize_validation():
    @memleash.lru_cache
    def f(x):
        return x

    assert f(3) == 3 and f.cache_parameters() == {"maxsize": 128, "typed": False}
    with pytest.raises(TypeError, match="Expected first argument to be an integer, a callable, or None"):
        memleash.lru_cache("big")
    assert memleash.lru_cache(-5)(f).cache_parameters()["maxsize"] == 0


def test_maxsize_zero_caches_nothing_and_takes_unhashable_arguments():
    f = memleash.lru_cache(maxsize=0)(lambda x: len(x))
    assert f([1, 2]) == 2 and f([1, 2]) == 2
    assert f.cache_info() == (0, 2, 0, 0)


def test_cache_is_unbounded_lru_cache():
    f = memleash.cache(lambda x: x * 2)
    for i in range(1000):
        f(i)
    assert f.cache_info() == (0, 1000, None, 1000)


def test_cache_clear_empties_and_resets_the_counts():
    f = memleash.lru_cache()(lambda x: x)
    f(1), f(1)
    f.cache_clear()
    assert f.cache_info() == (0, 0, 128, 0)


def test_update_wrapper_attributes():
    def documented(x):
        """Docs."""
        return x

    documented.extra = "kept"
    f = memleash.lru_cache()(documented)
    assert f.__wrapped__ is documented and f.__name__ == "documented"
    assert f.__doc__ == "Docs." and f.__qualname__.endswith("documented") and f.extra == "kept"
    assert f.__module__ == __name__


class Point:
    def __init__(self, x):
        self.x = x

    @memleash.lru_cache
    def norm(self, scale=1):
        return abs(self.x) * scale


def test_methods_bind_through_the_descriptor_protocol():
    p = Point(-3)
    assert p.norm() == 3 and p.norm(scale=2) == 6 and p.norm() == 3
    assert Point.norm.cache_info().hits == 1
    assert Point.__dict__["norm"] is Point.norm          # class access: the wrapper itself


@memleash.lru_cache
def module_level(x):
    return x + 1


def test_pickles_by_qualified_name_and_copies_as_itself():
    assert pickle.loads(pickle.dumps(module_level)) is module_level
    assert copy.copy(module_level) is module_level and copy.deepcopy(module_level) is module_level


@pytest.mark.parametrize("lru_cache", [memleash.lru_cache, functools.lru_cache])
def test_recursion_on_the_same_key_keeps_the_value_stored_first(lru_cache):
    calls = []

    @lru_cache
    def f(x):
        calls.append(x)
        if len(calls) == 1:
            f(x)                               # stores "inner" for the same key
            return "outer"
        return "inner"

    assert f(7) == "outer"                     # the outer call returns what it computed
    assert f(7) == "inner"                     # but the value stored first is kept
    assert f.cache_info() == (1, 2, 128, 1)


def test_max_bytes_bounds_the_cache_and_a_too_large_result_is_returned_uncached():
    f = memleash.lru_cache(maxsize=None, max_bytes=10_000)(lambda n: b"x" * n)
    for i in range(100):
        f(i)
    assert f.__wrapped__ is not None
    info = f.cache_info()
    assert info.maxsize is None and info.currsize < 100
    assert len(f(50_000)) == 50_000 and f.cache_info().currsize < 100


class Holder:
    def __init__(self):
        self.store = memleash.LRUCache(10)

    @memleash.cachedmethod(lambda self: self.store)
    def get(self, x):
        return x

    @memleash.method_cache
    def get2(self, x):
        return x


HIT_PATHS = {
    "lru_cache": lambda: memleash.lru_cache()(lambda x: x),
    "cached": lambda: memleash.cached(memleash.LRUCache(10))(lambda x: x),
    "cached(typedkey)": lambda: memleash.cached(memleash.LFUCache(10), key=keys.typedkey)(
        lambda x: x),
    "func.lru_cache": lambda: memleash.func.lru_cache()(lambda x: x),
}


def python_calls_during(f, *args):
    # with the collector off: gc.callbacks (the tracker's) are not the hit path's frames
    events = []
    enabled = gc.isenabled()
    gc.disable()
    sys.setprofile(lambda frame, event, arg: events.append((event, frame.f_code.co_name)))
    try:
        f(*args)
    finally:
        sys.setprofile(None)
        if enabled:
            gc.enable()
    return [e for e in events if e[0] == "call"]


@pytest.mark.parametrize("make", HIT_PATHS.values(), ids=HIT_PATHS.keys())
def test_a_hit_runs_no_python_frame(make):
    f = make()
    f(1)
    assert python_calls_during(f, 1) == []


def test_a_cachedmethod_hit_runs_only_the_users_cache_getter():
    h = Holder()
    h.get(1), h.get2(1)
    assert [name for _, name in python_calls_during(h.get, 1)] == ["<lambda>"]   # self.store
    bound = h.get2                       # method_cache: its __get__ is Python, the hit is not
    assert python_calls_during(bound, 1) == []


def test_threads_keep_the_counts_and_the_cache_consistent():
    f = memleash.lru_cache(maxsize=50)(lambda x: x * 2)

    def work(seed):
        for i in range(5_000):
            assert f((i * seed) % 120) == ((i * seed) % 120) * 2

    threads = [threading.Thread(target=work, args=(s,)) for s in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    info = f.cache_info()
    assert info.hits + info.misses == 8 * 5_000 and info.currsize <= 50


class EvilKey:
    def __init__(self, victim):
        self.victim = victim

    def __hash__(self):
        return 1

    def __eq__(self, other):
        self.victim.cache_clear()            # mutates the cache mid-lookup
        return False


def test_an_eq_that_clears_the_cache_mid_lookup_does_not_break_it():
    f = memleash.lru_cache(maxsize=10)(lambda k: "v")
    f(EvilKey(f))
    for _ in range(5):
        assert f(EvilKey(f)) == "v"
    assert f.cache_info().currsize <= 10


def test_a_raising_hash_propagates():
    class BadHash:
        def __hash__(self):
            raise ValueError("no hash")

    f = memleash.lru_cache()(lambda k: k)
    with pytest.raises(ValueError, match="no hash"):
        f(BadHash())
    assert f.cache_info() == (0, 0, 128, 0)


def test_the_wrapper_and_its_results_are_collected():
    class Result:
        pass

    f = memleash.lru_cache()(lambda: Result())
    ref = weakref.ref(f())
    del f
    gc.collect()
    assert ref() is None


def test_report_names_a_decorated_functions_cache():
    @memleash.lru_cache(maxsize=10)
    def lookup_user(uid):
        return {"uid": uid}

    lookup_user(1)
    name = f"lru_cache({__name__}.test_report_names_a_decorated_functions_cache.<locals>.lookup_user)"
    (entry,) = [c for c in memleash.report().caches if c.name == name]
    assert entry.entries == 1 and entry.misses == 1


# ---------------------------------------------------------------------------------------
# cachetools flavour (beyond what cachetools' own suite checks in `make compat`)

def test_keys_match_cachetools_keys():
    for args, kwargs in [((), {}), ((1, "a"), {}), ((1,), {"b": 2, "a": 1})]:
        ours, theirs = keys.hashkey(*args, **kwargs), cachetools.keys.hashkey(*args, **kwargs)
        assert len(ours) == len(theirs) and hash(ours) == hash(ours)
        assert keys.hashkey(*args, **kwargs) == ours
        assert keys.typedkey(*args, **kwargs)[-len(args) or len(ours):] == \
            cachetools.keys.typedkey(*args, **kwargs)[-len(args) or len(theirs):]
    assert keys.hashkey(1, a=2) != keys.hashkey(1, b=2)
    assert keys.typedkey(1) != keys.typedkey(1.0)
    assert keys.methodkey("self", 1, x=2) == keys.hashkey(1, x=2)
    assert keys.typedmethodkey("self", 1) == keys.typedkey(1)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'self'"):
        keys.methodkey()


def test_cached_rejects_none_as_cachetools_8():
    with pytest.raises(TypeError, match="cache must not be None"):
        memleash.cached(None)


def test_cached_builds_hashkey_keys_in_c():
    cache = memleash.LRUCache(10)
    f = memleash.cached(cache)(lambda a, b=0: a + b)
    f(1, b=2)
    assert list(cache) == [keys.hashkey(1, b=2)]
    assert f.cache_key is keys.hashkey


def test_cached_value_too_large_is_returned_uncached():
    cache = memleash.LRUCache(10, max_bytes=1_000)
    f = memleash.cached(cache)(lambda n: b"x" * n)
    assert len(f(5_000)) == 5_000 and len(cache) == 0


def test_cached_condition_runs_the_function_once_for_32_racing_threads():
    calls, gate = [], threading.Event()

    @memleash.cached(memleash.LRUCache(10), condition=threading.Condition(), info=True)
    def slow(key):
        calls.append(key)
        gate.wait(5)
        return key * 2

    results = []
    threads = [threading.Thread(target=lambda: results.append(slow(21))) for _ in range(32)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert calls == [21] and results == [42] * 32
    assert slow.cache_info().misses == 1 and slow.cache_info().hits == 31


def test_cached_condition_recursion_on_the_same_key_raises_instead_of_hanging():
    @memleash.cached(memleash.LRUCache(10), condition=threading.Condition())
    def f(x):
        return f(x)

    for _ in range(2):                          # the pending key is released each time
        with pytest.raises(RuntimeError, match="recursive call with the same key"):
            f(1)


def test_cached_with_lock_keeps_the_first_stored_value():
    cache = memleash.LRUCache(10)
    lock = threading.RLock()

    @memleash.cached(cache, lock=lock)
    def f(x):
        cache[keys.hashkey(x)] = "stored during the call"
        return "computed"

    assert f(1) == "stored during the call"


def test_cachedmethod_keeps_a_cache_per_instance_and_frees_it_with_the_instance():
    class Service:
        def __init__(self):
            self.cache = memleash.LRUCache(100)

        @memleash.cachedmethod(lambda self: self.cache, info=True)
        def load(self, key):
            return [key]

    services = [Service() for _ in range(100)]
    for s in services:
        s.load(1), s.load(1)
    assert services[0].load.cache_info().hits == 1
    refs = [weakref.ref(s) for s in services]
    del services, s
    gc.collect()
    assert all(r() is None for r in refs)


def test_func_is_a_one_line_swap_for_cachetools_func():
    @memleash.func.lru_cache(maxsize=2)
    def f(x):
        return x

    f(1), f(1), f(2), f(3)
    assert f.cache_info() == (1, 3, 2, 2)
    assert f.cache_parameters() == {"maxsize": 2, "typed": False}
    assert memleash.ttl_cache is memleash.func.ttl_cache
    t = memleash.ttl_cache(maxsize=None, ttl=60)(lambda x: x)
    t(1), t(1)
    assert t.cache_info() == (1, 1, None, 1)


# ---- hits found without building the key --------------------------------------------------

class _EqByValue:
    def __init__(self, v):
        self.v = v

    def __hash__(self):
        return hash(self.v)

    def __eq__(self, other):
        return isinstance(other, _EqByValue) and other.v == self.v


@pytest.mark.parametrize("args", [
    (1, 2), (-1, -2), ("a", "b", "c"), (1.5, None, True), ((1, 2), (3,)), (2**70, -(2**65)),
    (float("inf"), float("-inf")), (), ("only",), (_EqByValue(3), _EqByValue("x")),
    tuple(range(40)),
])
def test_a_hit_on_positional_arguments_finds_the_key_hashkey_builds(args):
    # the key is hashed from the arguments without the tuple (CPython's tuple hash): a key
    # stored as hashkey(*args) by hand must be found, equal arguments included
    cache = memleash.LRUCache(10)
    calls = []
    f = memleash.cached(cache)(lambda *a, **k: calls.append(a) or "computed")
    fresh = tuple(_EqByValue(a.v) if isinstance(a, _EqByValue) else a for a in args)
    cache[memleash.keys.hashkey(*args)] = "stored"
    assert hash(memleash.keys.hashkey(*args)) == hash(tuple(args))
    assert f(*fresh) == "stored" and calls == []
    assert f(*fresh, extra=1) == "computed"        # keywords: built as before
    assert f(*args, 0) == "computed" and len(calls) == 2


def test_a_hand_stored_key_of_another_type_is_compared_as_a_tuple():
    class ListKey(tuple):
        pass

    cache = memleash.LRUCache(10)
    f = memleash.cached(cache)(lambda *a: "computed")
    cache[ListKey((1, 2))] = "subclass"
    assert f(1, 2) == "subclass"


def test_functools_keys_of_two_or_more_arguments_hit_without_a_tuple():
    calls = []

    @memleash.lru_cache(maxsize=10)
    def f(a, b):
        calls.append((a, b))
        return a + b

    assert f(1, 2) == 3 and f(1, 2) == 3 and f(1.0, 2) == 3 and calls == [(1, 2)]
    assert f.cache_info().hits == 2
