import pytest

import memleash


@pytest.fixture(params=["Cache", "LRUCache"])
def cache_cls(request):
    """Each memleash cache class (tests that hold for all of them)."""
    return getattr(memleash, request.param)
