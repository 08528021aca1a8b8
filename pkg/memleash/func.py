"""``cachetools.func``'s decorators, with memleash's caches and the hit path in C.

``fifo_cache``, ``lfu_cache``, ``lru_cache``, ``rr_cache`` and ``ttl_cache`` take
cachetools.func's arguments and keep its semantics: thread-safe, concurrent calls for one
missing key run the function once (cachetools waits on a condition variable; here the
calls wait on the computing call's own lock, in C: "single flight"), and the wrapper has
``cache_info()``, ``cache_clear()`` and ``cache_parameters()``. A hit takes no lock: a
memleash cache's operations are atomic, so only misses coordinate. A call that needs the
key it is computing itself raises RuntimeError (cachetools' would wait forever).
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Optional

from . import _core
from .caches import FIFOCache, LFUCache, LRUCache, RRCache, TTLCache
from .decorators import CacheInfo
from .keys import hashkey, typedkey

__all__ = ["fifo_cache", "lfu_cache", "lru_cache", "rr_cache", "ttl_cache"]


class _Unbounded(LRUCache):
    """maxsize=None: unbounded, shown as maxsize None in cache_info() (cachetools uses a
    dict there)."""

    __slots__ = ()

    @property
    def maxsize(self) -> Any:   # type: ignore[override]
        return None


class _UnboundedTTLCache(TTLCache):
    __slots__ = ()

    def __init__(self, ttl: Any, timer: Any) -> None:
        TTLCache.__init__(self, math.inf, ttl, timer)

    @property
    def maxsize(self) -> Any:   # type: ignore[override]
        return None


def _cache(cache: Any, maxsize: Optional[int], typed: bool) -> Callable[[Any], Any]:
    def decorator(func: Any) -> Any:
        wrapper = _core._CachedFunction(func, cache, typedkey if typed else hashkey,
                                        single_flight=True, info=CacheInfo._make_info)
        functools.update_wrapper(wrapper, func)
        wrapper.cache_parameters = lambda: {"maxsize": maxsize, "typed": typed}
        return wrapper

    return decorator


def _make(factory: Callable[[Any], Any], maxsize: Any, typed: bool,
          unbounded: Callable[[], Any] = lambda: _Unbounded(math.inf)) -> Any:
    if maxsize is None:
        return _cache(unbounded(), None, typed)
    if callable(maxsize):
        func = maxsize
        return _cache(factory(128), 128, typed)(func)
    return _cache(factory(maxsize), maxsize, typed)


def fifo_cache(maxsize: Any = 128, typed: bool = False) -> Any:
    """Memoize up to ``maxsize`` results, evicting the first stored (FIFO)."""
    return _make(FIFOCache, maxsize, typed)


def lfu_cache(maxsize: Any = 128, typed: bool = False) -> Any:
    """Memoize up to ``maxsize`` results, evicting the least frequently used (LFU)."""
    return _make(LFUCache, maxsize, typed)


def lru_cache(maxsize: Any = 128, typed: bool = False) -> Any:
    """Memoize up to ``maxsize`` results, evicting the least recently used (LRU)."""
    return _make(LRUCache, maxsize, typed)


def rr_cache(maxsize: Any = 128, choice: Callable[[Sequence[Any]], Any] = random.choice,
             typed: bool = False) -> Any:
    """Memoize up to ``maxsize`` results, evicting at random (``choice``)."""
    return _make(lambda n: RRCache(n, choice), maxsize, typed)


def ttl_cache(maxsize: Any = 128, ttl: float = 600, timer: Callable[[], Any] = time.monotonic,
              typed: bool = False) -> Any:
    """Memoize up to ``maxsize`` results for ``ttl`` each, evicting the least recently
    used first (LRU with a per-item time-to-live)."""
    return _make(lambda n: TTLCache(n, ttl, timer), maxsize, typed,
                 lambda: _UnboundedTTLCache(ttl, timer))
