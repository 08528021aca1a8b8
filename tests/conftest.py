import os
import sys
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
