"""memleash: a leash on the memory leaks of long-running Python services.

Bounded caches with hard memory budgets (``LRUCache(maxsize, max_bytes=...)``), drop-in
for ``cachetools``, and one ``Budget`` several caches share, which can follow the
process's cgroup memory limit; an ``EventEmitter`` whose listeners never keep their owners alive,
drop-in for ``pyee``; memoizing decorators whose hit path runs in C (``lru_cache`` and
``cache`` as functools', ``cached``, ``cachedmethod`` and ``func.*`` as cachetools');
a resource tracker (``track``, ``Resource``, ``tracker.enable()``) that reports each
object collected unclosed with where it was allocated; ``report()``, one snapshot of every live memleash object (a table,
plain data, or Prometheus metrics); ``TieredCache`` / ``AsyncTieredCache``, a byte-budgeted local
copy in front of a Redis shared by processes (``memleash.redis``: redis-py's client-side
cache on a memleash cache; both need ``pip install memleash[redis]``).
"""

try:
    from . import _core
except ImportError as _exc:   # missing, or built for another interpreter: say which
    from ._native import explain as _explain

    raise _explain(_exc, __path__[0]) from _exc

from .caches import (
    Cache, FIFOCache, LFUCache, LRUCache, RRCache, TinyLFUCache, TLRUCache, TTLCache, Timer,
    monotonic_coarse,
)
from .budget import Budget, MemoryFollower
from . import func, keys
from .decorators import CacheInfo, acached, cache, cached, cachedmethod, lru_cache, method_cache
from .func import ttl_cache
from . import tracker
from .tracker import Resource, UnclosedResourceWarning, open_resources, resource, track, untrack
from .report import (
    BudgetReport, CacheReport, EmitterReport, PrometheusCollector, Report, ResourceReport, report,
)
from .tiered import AsyncTieredCache, TieredCache
from .emitter import (
    AsyncIOEventEmitter, EmitterError, EventEmitter, ListenerLeakWarning, PyeeError, PyeeException,
)

__all__ = [
    "AsyncIOEventEmitter", "AsyncTieredCache", "Budget", "BudgetReport", "Cache", "CacheInfo", "CacheReport", "EmitterError", "EmitterReport", "EventEmitter",
    "FIFOCache", "LFUCache", "LRUCache", "ListenerLeakWarning", "MemoryFollower", "PrometheusCollector",
    "PyeeError", "PyeeException", "RRCache", "Report", "Resource", "ResourceReport", "UnclosedResourceWarning", "TLRUCache", "TTLCache", "TieredCache", "Timer",
    "TinyLFUCache",
    "acached", "cache", "cached", "cachedmethod", "lru_cache", "method_cache", "open_resources",
    "monotonic_coarse", "report", "resource", "track", "ttl_cache", "untrack",
]
__version__ = "0.1.0"
