"""memleash: a leash on the memory leaks of long-running Python services.

Bounded caches with hard memory budgets (``LRUCache(maxsize, max_bytes=...)``), drop-in
for ``cachetools``; an ``EventEmitter`` whose listeners never keep their owners alive,
drop-in for ``pyee``; ``report()``, one snapshot of every live memleash object (a table,
plain data, or Prometheus metrics).
"""

from .cache import Cache, FIFOCache, LFUCache, LRUCache, RRCache, TLRUCache, TTLCache, Timer
from .report import CacheReport, EmitterReport, PrometheusCollector, Report, report
from .emitter import (
    AsyncIOEventEmitter, EmitterError, EventEmitter, ListenerLeakWarning, PyeeError, PyeeException,
)

__all__ = [
    "AsyncIOEventEmitter", "Cache", "CacheReport", "EmitterError", "EmitterReport", "EventEmitter",
    "FIFOCache", "LFUCache", "LRUCache", "ListenerLeakWarning", "PrometheusCollector",
    "PyeeError", "PyeeException", "RRCache", "Report", "TLRUCache", "TTLCache", "Timer",
    "report",
]
__version__ = "0.1.0"
