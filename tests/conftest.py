import os
import sys

import pytest

import memleash

sys.path.insert(0, os.path.dirname(__file__))   # tests/hostile.py and tests/model.py


@pytest.fixture(params=["Cache", "LRUCache", "FIFOCache", "LFUCache", "RRCache"])
def cache_cls(request):
    """Each memleash cache class (tests that hold for all of them)."""
    return getattr(memleash, request.param)
