"""Nothing a key, value or callable does may crash the interpreter or corrupt a cache."""

import gc

import pytest

from hostile import (
    BAD_SIZES, DelHook, DriftingHash, EqHook, HashKey, RaisingEq, RaisingHash, check_invariants,
)
from memleash import LRUCache


@pytest.fixture(params=[{}, {"max_bytes": 10_000}])
def budget(request):
    return request.param


def test_raising_hash_leaves_the_cache_intact(cache_cls, budget):
    cache = cache_cls(maxsize=5, **budget)
    cache[1] = 1
    bad = RaisingHash()
    for op in (lambda: cache.__setitem__(bad, 1), lambda: cache[bad], lambda: bad in cache,
               lambda: cache.get(bad), lambda: cache.pop(bad, None), lambda: cache.setdefault(bad),
               lambda: cache.__delitem__(bad)):
        with pytest.raises(ZeroDivisionError):
            op()
    assert dict(cache) == {1: 1}
    check_invariants(cache)


def test_raising_eq_propagates_and_leaves_the_cache_intact(cache_cls):
    cache = cache_cls(maxsize=5)
    cache[HashKey("a")] = 1
    with pytest.raises(ArithmeticError):
        cache[RaisingEq("b")] = 2
    with pytest.raises(ArithmeticError):
        RaisingEq("b") in cache
    assert len(cache) == 1
    check_invariants(cache)


def test_colliding_keys_are_all_found(cache_cls):
    cache = cache_cls(maxsize=1000)
    keys = [HashKey(i, hash_value=i % 3) for i in range(300)]
    for i, k in enumerate(keys):
        cache[k] = i
    assert all(cache[k] == i for i, k in enumerate(keys))
    for k in keys[::2]:
        del cache[k]
    assert all((k in cache) == (i % 2 == 1) for i, k in enumerate(keys))
    check_invariants(cache)


def test_eq_that_clears_the_cache_during_lookup(cache_cls, budget):
    cache = cache_cls(maxsize=50, **budget)
    for i in range(20):
        cache[HashKey(i)] = i
    probe = EqHook(5, on_eq=cache.clear)
    assert cache.get(probe) is None
    check_invariants(cache)
    cache[EqHook("x", on_eq=cache.clear)] = 1
    check_invariants(cache)


def test_eq_that_grows_the_cache_during_lookup(cache_cls):
    cache = cache_cls(maxsize=10_000)
    cache[HashKey("a")] = 1

    def grow():
        for i in range(2000):
            cache[i] = i

    assert EqHook("a", on_eq=grow) in cache
    assert len(cache) == 2001
    check_invariants(cache)


def test_eq_that_deletes_the_entry_it_is_compared_with(cache_cls):
    cache = cache_cls(maxsize=10)
    stored = HashKey("a")
    cache[stored] = 1
    probe = EqHook("a", on_eq=lambda: cache.pop(stored))
    assert cache.get(probe) is None
    assert len(cache) == 0
    check_invariants(cache)


def test_eq_that_reinitialises_the_cache_during_assignment(cache_cls):
    cache = cache_cls(maxsize=10)
    cache[HashKey("a")] = 1
    probe = EqHook("b", on_eq=lambda: cache.__init__(3, max_bytes=5000))
    cache[probe] = 2
    assert cache.maxsize == 3 and list(cache) == [probe]
    check_invariants(cache)


def test_drifting_hash_does_not_corrupt(cache_cls):
    cache = cache_cls(maxsize=10)
    key = DriftingHash()
    cache[key] = 1
    assert key not in cache   # its hash moved on: like a dict, it can't be found
    assert len(cache) == 1
    cache.clear()
    check_invariants(cache)


def test_evicted_value_whose_del_writes_to_the_cache(cache_cls, budget):
    cache = cache_cls(maxsize=3, **budget)
    log = []

    def reenter():
        cache[f"from-del-{len(log)}"] = "x"
        log.append(1)

    for i in range(3):
        cache[i] = DelHook(reenter)
    for i in range(3, 10):
        cache[i] = i
        check_invariants(cache)
    cache.clear()   # RRCache may not have evicted every DelHook yet: clear() re-enters too
    gc.collect()
    assert len(log) == 3
    check_invariants(cache)


def test_value_whose_del_clears_the_cache_during_clear(cache_cls):
    cache = cache_cls(maxsize=100)
    for i in range(10):
        cache[i] = DelHook(lambda: (cache.clear(), cache.__setitem__("late", 1)))
    cache.clear()
    check_invariants(cache)


def test_replaced_value_whose_del_deletes_the_new_entry(cache_cls):
    cache = cache_cls(maxsize=10)
    cache["k"] = DelHook(lambda: cache.pop("k", None))
    cache["k"] = "new"
    assert "k" not in cache
    check_invariants(cache)


def test_key_whose_del_reenters_on_delete(cache_cls):
    cache = cache_cls(maxsize=10)
    cache[1] = 1

    class Key(HashKey):
        def __del__(self):
            cache[2] = 2

    cache[Key("k")] = "v"
    del cache[HashKey("k")]
    assert dict(cache) == {1: 1, 2: 2}
    check_invariants(cache)


def test_getsizeof_that_mutates_the_cache(cache_cls):
    cache = cache_cls(maxsize=5, getsizeof=lambda v: (cache.clear(), 2)[1])
    for i in range(10):
        cache[i] = i
    assert len(cache) == 1
    check_invariants(cache)


def test_sizeof_that_reconfigures_the_cache(cache_cls):
    cache = cache_cls(maxsize=100, max_bytes=10_000, sizeof=lambda k, v: 10)
    cache["a"] = 1
    calls = []

    def reconfigure(k, v):
        if not calls:
            calls.append(1)
            cache.__init__(100, max_bytes=50, sizeof=lambda k2, v2: 60)
        return 10

    cache.__init__(100, max_bytes=10_000, sizeof=reconfigure)
    with pytest.raises(ValueError):
        cache["b"] = 1   # resized under the new configuration: 60 > 50
    assert len(cache) == 0 and cache.maxbytes == 50
    check_invariants(cache)


@pytest.mark.parametrize("bad", BAD_SIZES, ids=repr)
def test_invalid_getsizeof_results_raise_cleanly(cache_cls, bad):
    cache = cache_cls(maxsize=10, getsizeof=lambda v: bad if v == "bad" else 1)
    cache["ok"] = "fine"
    with pytest.raises((ValueError, TypeError)):
        cache["x"] = "bad"
    assert dict(cache) == {"ok": "fine"}
    check_invariants(cache)


@pytest.mark.parametrize("bad", BAD_SIZES, ids=repr)
def test_invalid_sizeof_results_raise_cleanly(cache_cls, bad):
    cache = cache_cls(maxsize=10, max_bytes=1000, sizeof=lambda k, v: bad if v == "bad" else 1)
    cache["ok"] = "fine"
    with pytest.raises((ValueError, TypeError)):
        cache["x"] = "bad"
    assert dict(cache) == {"ok": "fine"} and cache.currbytes == 1


def test_huge_getsizeof_result_is_too_large(cache_cls):
    cache = cache_cls(maxsize=10**9, getsizeof=lambda v: 10**400)
    with pytest.raises(ValueError, match="value too large"):
        cache[1] = 1


def test_cache_in_a_reference_cycle_is_collected(cache_cls):
    import weakref

    cache = cache_cls(maxsize=10)
    cache["self"] = cache
    cache["list"] = [cache]
    ref = weakref.ref(cache)
    del cache
    gc.collect()
    assert ref() is None


def test_referents_include_every_key_and_value(cache_cls):
    cache = cache_cls(maxsize=10)
    k, v = object(), object()
    cache[k] = v
    referents = gc.get_referents(cache)
    assert any(r is k for r in referents) and any(r is v for r in referents)


def test_deeply_nested_caches_deallocate_without_overflow(cache_cls):
    outer = cache_cls(maxsize=2)
    inner = outer
    for _ in range(100_000):
        nxt = cache_cls(maxsize=2)
        inner[0] = nxt
        inner = nxt
    del outer, inner, nxt
    gc.collect()


def test_threads_mixing_operations_keep_invariants(budget):
    import random
    import threading

    cache = LRUCache(maxsize=64, **budget)
    errors = []

    def worker(seed):
        rnd = random.Random(seed)
        try:
            for _ in range(20_000):
                k = rnd.randrange(200)
                op = rnd.random()
                if op < 0.4:
                    cache[k] = "v" * rnd.randrange(50)
                elif op < 0.7:
                    cache.get(k)
                elif op < 0.8:
                    cache.pop(k, None)
                elif op < 0.85:
                    try:
                        cache.popitem()
                    except KeyError:
                        pass
                elif op < 0.9 and rnd.random() < 0.01:
                    try:
                        list(cache.items())
                    except RuntimeError:
                        pass  # an iteration raced with a writer: allowed, as with dict
                elif op < 0.95:
                    cache.setdefault(k, 0)
                else:
                    k in cache
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    check_invariants(cache)


# ---------------------------------------------------------------------------------------
# The resource tracker (issue 18): each input below once crashed, leaked or corrupted the
# tracker on at least one build (release, debug or ASan). Inputs that can kill the
# interpreter run in a child process.
# ---------------------------------------------------------------------------------------
import io as _io  # noqa: E402
import os as _os  # noqa: E402
import subprocess as _subprocess  # noqa: E402
import sys as _sys  # noqa: E402
import textwrap as _textwrap  # noqa: E402
import warnings as _warnings  # noqa: E402
import weakref as _weakref  # noqa: E402

import memleash as _memleash  # noqa: E402
from memleash import tracker as _tracker  # noqa: E402


def _tracker_child(body):
    """Runs body in a fresh interpreter; returns its stdout (asserting a clean exit)."""
    env = dict(_os.environ, PYTHONPATH=_os.path.dirname(_os.path.dirname(_memleash.__file__)))
    out = _subprocess.run([_sys.executable, "-c", _textwrap.dedent(body)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert out.returncode == 0, (out.returncode, out.stderr[-3000:])
    return out.stdout


def test_tracked_objects_keep_no_class_alive():
    # every class made at run time, tracked (closed or not) and dropped, is collected:
    # the tracker's caches of how a type is closed held each class for good
    refs = []
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        for i in range(200):
            cls = type(f"Made{i}", (), {"close": lambda self: None, "payload": [0] * 1000})
            obj = _memleash.track(cls())
            if i % 2:
                obj.close()
            refs.append(_weakref.ref(cls))
            del obj, cls
        from unittest import mock
        for _ in range(20):
            m = _memleash.track(mock.MagicMock())   # a class of its own per instance
            m.close()
            refs.append(_weakref.ref(type(m)))
            del m
        gc.collect()
    assert [r for r in refs if r() is not None] == []


def test_sites_keep_no_code_object_alive_and_one_line_stays_one_site():
    # code run by exec() and dropped: the tracker kept every code object it saw a site
    # in; the site itself (its text and counts) stays, and the same line run again is
    # the same site
    refs, leaks = [], []
    _tracker.on_leak(leaks.append)
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            for i in range(50):
                ns = {"memleash": _memleash}
                exec(compile("class H:\n    def close(self): pass\n"
                             "def make():\n    return memleash.track(H())\n",
                             "<hostile-exec>", "exec"), ns)
                ns["make"]()            # dropped unclosed: a leak from <hostile-exec>:4
                refs.append(_weakref.ref(ns["make"].__code__))
                ns.clear()
            gc.collect()
    finally:
        _tracker.remove_leak_listener(leaks.append)
    assert [r for r in refs if r() is not None] == []
    assert len(leaks) == 50 and len({leak.site for leak in leaks}) == 1
    [site] = [s for s in _tracker.sites() if s.where == "<hostile-exec>:4 in make()"]
    assert site.leaked == 50 and site.tracked == 50


def test_open_resources_while_describing_a_file_drops_it():
    # _tr_open held the object borrowed while formatting its description
    out = _tracker_child("""
        import os, memleash
        from memleash import tracker
        keep = []
        class EvilName:
            def __repr__(self):
                keep.clear()
                return "'evil'"
        f = open(os.devnull)
        f.buffer.raw.name = EvilName()
        memleash.track(f)
        keep.append(f)
        del f
        import warnings
        warnings.simplefilter("ignore")
        report = memleash.open_resources()
        print("ok", keep)
    """)
    assert out.split() == ["ok", "[]"]


def test_a_warning_whose_source_record_is_let_go_while_it_is_described():
    # _tr_lookup (a ResourceWarning naming a tracked source) described a borrowed record,
    # which the file name's repr() let go (untracked, its observer deleted)
    out = _tracker_child("""
        import os, warnings, memleash
        class EvilName:
            def __repr__(self):
                memleash.untrack(f)
                del f.buffer.raw.__dict__["flush"]
                return "'evil'"
        f = open(os.devnull)
        f.buffer.raw.name = EvilName()
        memleash.track(f)
        warnings.simplefilter("always")
        warnings.warn("about it", ResourceWarning, source=f)   # shown: its record looked up
        print("ok")
    """)
    assert out.split() == ["ok"]


def test_an_observer_kept_by_a_finalizer_outlives_its_object():
    # a collection freed the object while a __del__ kept its close() observer, which
    # still pointed at it
    out = _tracker_child("""
        import gc, io, memleash
        saved = []
        class Grab:
            def __del__(self):
                saved.append(self.close)
        for _ in range(20):
            b = memleash.track(io.BytesIO(b"x" * 100))
            g = Grab()
            g.close = b.close      # the observer in b's __dict__
            b.close()              # closed: tracking is over
            g.b, b.g = b, g
            del b, g
            gc.collect()
        results = [close() for close in saved]
        print("ok", len(saved), set(results))
    """)
    assert out.split()[:2] == ["ok", "20"]


def test_an_instance_close_replaced_during_tracking():
    # the instance's own "close" was held borrowed across an allocation that may collect
    # (a __del__ replacing it then freed it)
    out = _tracker_child("""
        import gc, io, memleash
        current = [None]
        class Churn:
            def __del__(self):
                if current[0] is not None:   # frees the close() it replaces
                    current[0].__dict__["close"] = lambda: "replaced"
                nxt = Churn()
                nxt.cycle = nxt              # the next collection has one to run too
        gc.collect()
        c = Churn(); c.cycle = c; del c
        gc.set_threshold(1)
        for i in range(300):
            b = io.BytesIO()
            b.close = lambda: "own"
            current[0] = b
            memleash.track(b)
            b.close()
            current[0] = None
            del b
        gc.set_threshold(700)
        print("ok")
    """)
    assert out.split()[-1] == "ok"


_CHAIN = """
    import io, memleash
    objs = []
    prev = None
    for i in range(150_000):      # each BytesIO's own close() is the previous observer
        b = io.BytesIO()
        if prev is not None:
            b.close = prev
        memleash.track(b)
        prev = b.close
        objs.append(b)
    del b, prev
"""


def test_a_chain_of_observers_called_does_not_overflow_the_stack():
    # calling the last one forwarded 150,000 calls deep in C (SIGSEGV)
    out = _tracker_child(_CHAIN + """
    try:
        objs[-1].close()
        print("returned")
    except RecursionError:
        print("RecursionError")
    """)
    assert out.split() == ["RecursionError"]


def test_a_chain_of_observers_freed_does_not_overflow_the_stack():
    # the first object freed first: the observers then freed each other 150,000 deep
    out = _tracker_child(_CHAIN + """
    objs.reverse()
    objs.clear()
    print("ok")
    """)
    assert out.split() == ["ok"]


@pytest.mark.parametrize("kind", [
    ((1,), None, 0, 0, False),                 # a method name that is not a str
    (("close",), 3, 1, 0, False),              # a probe that is not a str
    (("close",), "closed", 7, 0, False),       # no such probe mode
    ([], None, 0, 0, False),                    # methods not a tuple
    (("close",), "closed", 1, 0, 2**80),       # describe-with-repr not a bool
], ids=["method", "probe", "mode", "methods", "use_repr"])
def test_a_malformed_kind_is_refused(kind):
    b = _io.BytesIO()
    with pytest.raises(TypeError):
        _memleash._core._tr_track(b, kind, None, True)
    b.close()
    assert "close" not in vars(b) and _memleash.untrack(b) is False
