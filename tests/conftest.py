import os
import re
import subprocess
import sys
import sysconfig
import time

import pytest

import memleash

sys.path.insert(0, os.path.dirname(__file__))   # tests/hostile.py and tests/model.py

pytest_plugins = ["pytester"]   # tests/test_pytest_plugin.py runs pytest in subprocesses

if os.environ.get("MEMLEASH_GC_STRESS") == "1":
    # make test-gc-stress: a collection at nearly every allocation of a GC-tracked object,
    # as CPython's own GC stress runs do: a borrowed reference held across an allocation,
    # or state a collection can see half-built, shows up under AddressSanitizer
    import gc

    gc.set_threshold(1, 1, 1)

# Free-threaded CPython 3.13 makes classes and module-level functions (and so the code
# objects they hold) immortal once a thread other than the main one has started
# (Doc/howto/free-threading-python.rst, "Immortalization": _PyObject_SetDeferredRefcount
# immortalizes what it would defer once gc.immortalize is set, which the first start of a
# thread does; 3.14 frees them at a collection instead). A test that checks that such an
# object made at run time is freed — that memleash keeps no reference to it — can observe
# that there only in an interpreter no thread has run in: marked mortal_types, it runs
# alone in a fresh pytest process on that build, and in this process on every other.
IMMORTAL_AFTER_A_THREAD = (bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
                           and sys.version_info[:2] == (3, 13))
_FRESH = "MEMLEASH_FRESH_TEST"   # the node id a fresh process runs in itself


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if (not IMMORTAL_AFTER_A_THREAD or pyfuncitem.get_closest_marker("mortal_types") is None
            or os.environ.get(_FRESH) == pyfuncitem.nodeid):
        return None
    config = pyfuncitem.config
    env = dict(os.environ, **{_FRESH: pyfuncitem.nodeid})
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(config.rootpath), "-c", str(config.inipath), pyfuncitem.nodeid],
        cwd=config.rootpath, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or not re.search(r"^1 passed\b", proc.stdout, re.M):
        pytest.fail(f"in a fresh process (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}",
                    pytrace=False)
    return True


FAR = 10**9   # seconds: the timed caches below never expire during a test


class TTLCache(memleash.TTLCache):
    """memleash.TTLCache with cachetools' Cache constructor, for the shared tests."""

    def __init__(self, maxsize, getsizeof=None, **kw):
        super().__init__(maxsize, FAR, time.monotonic, getsizeof, **kw)


class TLRUCache(memleash.TLRUCache):
    """memleash.TLRUCache with cachetools' Cache constructor, for the shared tests."""

    def __init__(self, maxsize, getsizeof=None, **kw):
        super().__init__(maxsize, _far_deadline, time.monotonic, getsizeof, **kw)


def _far_deadline(key, value, now):
    return now + FAR


UNTIMED = ["Cache", "LRUCache", "FIFOCache", "LFUCache", "RRCache", "TinyLFUCache"]
TIMED = {"TTLCache": TTLCache, "TLRUCache": TLRUCache}


@pytest.fixture(params=UNTIMED + list(TIMED))
def cache_cls(request):
    """Each memleash cache class (tests that hold for all of them)."""
    return TIMED.get(request.param) or getattr(memleash, request.param)


@pytest.fixture(params=UNTIMED)
def untimed_cache_cls(request):
    """The caches whose iteration is live: timed caches iterate over a snapshot instead."""
    return getattr(memleash, request.param)
