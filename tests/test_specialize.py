"""Method calls on memleash's objects take CPython's specialized look-up (issue 26).

CPython 3.11-3.14 rewrite a hot `obj.meth(args)` into specialized instructions. For a C
type with an instance-dict slot, which state of the slot allows it depends on the version
(csrc/py/compat.h, ml_instance_dict_new): 3.11 wants the dict to exist, 3.12+ wants none.
Missing it cost about 200 instructions a `c.get(k)` on 3.11 (callgrind).

The specialized *call* of a C method also needs type(self) to be exactly the method's
class: EventEmitter instances have it, instances of the Python cache classes cannot. Giving
each class its own copies of the C methods was tried and dropped: copies sit in the MRO and
shadow a mixin's or a patched base's overrides (the last tests below hold that).
"""

from __future__ import annotations

import dis
import pickle
import sys
import sysconfig

import pytest

import memleash

FREE_THREADED_313 = bool(sysconfig.get_config_var("Py_GIL_DISABLED")) and sys.version_info < (3, 14)
needs_specializer = [
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

LOOPS = {
    "get": "def loop(c, keys):\n    for k in keys:\n        c.get(k)\n",
    "emit": "def loop(e, keys):\n    for k in keys:\n        e.emit('event', k)\n",
}


def warmed(kind, obj, rounds=50):
    """The instructions of a loop compiled afresh (no quickened state carried over from
    another test) after `rounds` warm calls on obj: (the method look-up's names, the
    call's names)."""
    namespace: dict = {}
    exec(compile(LOOPS[kind], f"<{kind} loop>", "exec"), namespace)
    loop = namespace["loop"]
    keys = list(range(1000, 1020))
    for _ in range(rounds):
        loop(obj, keys)
    names = [i.opname for i in dis.get_instructions(loop, adaptive=True)]
    load = [n for n in names if n.startswith(("LOAD_METHOD", "LOAD_ATTR"))]
    calls = [n for n in names if n.startswith(("PRECALL", "CALL"))]
    return load, calls


def assert_lookup_specialized(kind, obj):
    load, _ = warmed(kind, obj)
    assert len(load) == 1 and load[0].startswith(("LOAD_METHOD_", "LOAD_ATTR_METHOD_")), load
    assert not load[0].endswith("ADAPTIVE"), load


@pytest.mark.parametrize("make", CACHES)
@needs_specializer[0]
@needs_specializer[1]
def test_get_lookup_is_specialized_on_every_cache_class(make):
    assert_lookup_specialized("get", make())


@needs_specializer[0]
@needs_specializer[1]
def test_emit_lookup_and_call_are_specialized():
    e = memleash.EventEmitter()
    assert_lookup_specialized("emit", e)
    _, calls = warmed("emit", memleash.EventEmitter())
    assert any("METHOD_DESCRIPTOR_FAST_WITH_KEYWORDS" in n for n in calls), calls


@needs_specializer[0]
@needs_specializer[1]
def test_a_user_subclass_is_specialized_too():
    class Mine(memleash.LRUCache):
        pass

    class Service(memleash.EventEmitter):
        pass

    assert_lookup_specialized("get", Mine(10))
    assert_lookup_specialized("emit", Service())


def test_instance_attributes_and_pickling_keep_working():
    c = memleash.LRUCache(3)
    assert vars(c) == {}
    c[1] = 1
    assert c.__getstate__()[0] is None      # an empty instance dict pickles as None
    c.note = "kept"
    d = pickle.loads(pickle.dumps(c))
    assert d.note == "kept" and dict(d) == {1: 1}
    e = memleash.EventEmitter()
    e.tag = 1
    assert pickle.loads(pickle.dumps(e)).tag == 1
    with pytest.raises(TypeError):
        del c.__dict__
    c.__dict__ = {"other": 2}
    assert c.other == 2 and c.get(1) == 1


def test_a_mixins_overrides_are_seen_after_a_cache_class_in_the_mro():
    # MRO: Both, Plain, Logging, LRUCache, Cache, _core.Cache: Logging's methods win
    calls = []

    class Logging(memleash.LRUCache):
        def get(self, key, default=None):
            calls.append(("get", key))
            return super().get(key, default)

        def __missing__(self, key):
            calls.append(("missing", key))
            return key * 2

        def popitem(self):
            calls.append(("popitem",))
            return super().popitem()

    class Plain(memleash.LRUCache):
        pass

    class Both(Plain, Logging):
        pass

    c = Both(2)
    c.get("a")
    assert c["b"] == "bb"
    for i in range(3):
        c[i] = i
    assert calls[:2] == [("get", "a"), ("missing", "b")] and ("popitem",) in calls


def test_a_patched_base_reaches_existing_subclasses():
    class Child(memleash.LRUCache):
        pass

    c = Child(3)
    memleash.LRUCache.get = lambda self, key, default=None: ("patched", key)
    try:
        assert c.get(1) == ("patched", 1)
    finally:
        del memleash.LRUCache.get
    assert "get" not in memleash.LRUCache.__dict__ and c.get(1) is None
