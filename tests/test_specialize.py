"""Method calls on memleash's objects take CPython's specialized paths (issue 26).

CPython 3.11-3.14 rewrite a hot `obj.meth(args)` into specialized instructions; a C method
that misses them costs about 200 (look-up) plus 170 (call) instructions more per call,
which was most of the gap between `LRUCache.get` and `dict.get` on a miss. Two things
decide it (csrc/py/compat.h, ml_instance_dict_new, and Cache._ml_own_methods):
  - the look-up: 3.11 specializes a type with an instance dict slot only when the dict
    exists, 3.12+ only while it does not;
  - the call: the specialized C-method call requires type(self) to be exactly the
    method descriptor's class, so each cache class carries descriptors of its own.
"""

from __future__ import annotations

import dis
import pickle
import sys
import sysconfig

import pytest

import memleash
from memleash import _core

FREE_THREADED_313 = bool(sysconfig.get_config_var("Py_GIL_DISABLED")) and sys.version_info < (3, 14)
pytestmark = [
    pytest.mark.skipif(FREE_THREADED_313, reason="3.13t runs without the specializing "
                       "interpreter: there is nothing to specialize"),
    pytest.mark.skipif(sys.version_info >= (3, 15),
                       reason="the specialized instructions' names are checked for 3.11-3.14"),
]

CACHES = [
    lambda: memleash.Cache(100),
    lambda: memleash.LRUCache(100),
    lambda: memleash.FIFOCache(100),
    lambda: memleash.LFUCache(100),
    lambda: memleash.RRCache(100),
    lambda: memleash.TinyLFUCache(100),
    lambda: memleash.TTLCache(100, ttl=60),
    lambda: memleash.TLRUCache(100, ttu=lambda k, v, now: now + 60),
    lambda: memleash.LRUCache(100, max_bytes=10_000),
]


def call_get(c, keys):
    for k in keys:
        c.get(k)


def call_emit(e, keys):
    for k in keys:
        e.emit("event", k)


def specialized(fn, obj, rounds=50):
    """The instructions of a fresh copy of fn after `rounds` warm calls on obj: (the
    method look-up's name, the names of the call's instructions)."""
    fresh = type(fn)(fn.__code__, fn.__globals__)
    keys = list(range(1000, 1020))
    for _ in range(rounds):
        fresh(obj, keys)
    names = [i.opname for i in dis.get_instructions(fresh, adaptive=True)]
    load = [n for n in names if n.startswith(("LOAD_METHOD", "LOAD_ATTR"))]
    calls = [n for n in names if n.startswith(("PRECALL", "CALL"))]
    return load, calls


def assert_specialized(fn, obj):
    load, calls = specialized(fn, obj)
    assert len(load) == 1 and load[0].startswith(("LOAD_METHOD_", "LOAD_ATTR_METHOD_")), load
    assert not load[0].endswith("ADAPTIVE"), load
    assert any("METHOD_DESCRIPTOR_FAST_WITH_KEYWORDS" in n for n in calls), calls


@pytest.mark.parametrize("make", CACHES)
def test_get_is_specialized_on_every_cache_class(make):
    assert_specialized(call_get, make())


def test_emit_is_specialized():
    assert_specialized(call_emit, memleash.EventEmitter())


def test_a_user_subclass_is_specialized_too():
    class Mine(memleash.LRUCache):
        pass

    class Deeper(Mine):
        pass

    assert_specialized(call_get, Mine(10))
    assert_specialized(call_get, Deeper(10))
    assert Deeper.__dict__["get"].__objclass__ is Deeper


def test_own_methods_never_shadow_an_override():
    class Overrides(memleash.LRUCache):
        def get(self, key, default=None):
            return ("mine", key)

    class Below(Overrides):
        pass

    assert Below(3).get(1) == ("mine", 1)
    assert "get" not in Below.__dict__
    # the C methods it does not override are still its own
    assert Below.__dict__["pop"].__objclass__ is Below


def test_hooks_still_see_overrides_and_only_them():
    class Counting(memleash.LRUCache):
        popped = 0

        def popitem(self):
            type(self).popped += 1
            return super().popitem()

    c = Counting(2)
    for i in range(5):
        c[i] = i
    assert Counting.popped == 3 and list(c) == [3, 4]
    # a class that overrides nothing keeps the C eviction (popitem is its own copy)
    assert memleash.LRUCache.__dict__["popitem"].__objclass__ is memleash.LRUCache
    plain = memleash.LRUCache(2)
    for i in range(5):
        plain[i] = i
    assert list(plain) == [3, 4]


def test_own_methods_refuses_what_is_not_a_cache_subclass():
    with pytest.raises(TypeError, match="subclasses of Cache"):
        _core.Cache._ml_own_methods()

    class NotACache:
        pass

    with pytest.raises(TypeError):
        _core.Cache.__dict__["_ml_own_methods"].__get__(None, NotACache)()


def test_an_unbound_method_checks_its_class():
    c = memleash.LRUCache(3)
    c[1] = "one"
    assert memleash.LRUCache.get(c, 1) == "one"
    assert memleash.Cache.get(c, 1) == "one"      # a subclass instance: accepted
    with pytest.raises(TypeError):
        memleash.LRUCache.get(memleash.LFUCache(3), 1)


def test_instance_attributes_and_pickling_keep_working():
    c = memleash.LRUCache(3)
    assert vars(c) == {}
    c[1] = 1
    assert c.__getstate__()[0] is None      # an empty instance dict pickles as none
    c.note = "kept"
    d = pickle.loads(pickle.dumps(c))
    assert d.note == "kept" and dict(d) == {1: 1}
    assert_specialized(call_get, pickle.loads(pickle.dumps(memleash.LRUCache(3))))
    e = memleash.EventEmitter()
    e.tag = 1
    assert pickle.loads(pickle.dumps(e)).tag == 1


def test_emitter_subclasses_are_specialized_and_keep_init_subclass():
    class Service(memleash.EventEmitter):
        pass

    assert_specialized(call_emit, Service())
    assert Service.__dict__["emit"].__objclass__ is Service
    assert memleash.AsyncIOEventEmitter.__dict__["emit"].__objclass__ is memleash.AsyncIOEventEmitter

    class Flagged(memleash.EventEmitter):
        def __init_subclass__(cls, flag=False, **kwargs):
            super().__init_subclass__(**kwargs)
            cls.flag = flag

    class On(Flagged, flag=True):
        pass

    assert On.flag is True and On.__dict__["emit"].__objclass__ is On
    with pytest.raises(TypeError, match="keyword"):
        class Bad(memleash.EventEmitter, unknown=1):
            pass


def test_emitter_hooks_still_see_overrides():
    seen = []

    class Logged(memleash.EventEmitter):
        def emit(self, event, *args, **kwargs):
            seen.append(event)
            return super().emit(event, *args, **kwargs)

    e = Logged()
    got = []
    e.on("x", got.append, weak=False)
    assert e.emit("x", 1) is True and seen == ["new_listener", "x"] and got == [1]
    assert "emit" not in type("Below", (Logged,), {}).__dict__
