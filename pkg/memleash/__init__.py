"""memleash: a leash on the memory leaks of long-running Python services.

Bounded caches with hard memory budgets (``LRUCache(maxsize, max_bytes=...)``), drop-in
for ``cachetools``; an ``EventEmitter`` whose listeners never keep their owners alive,
drop-in for ``pyee``.
"""

from .cache import Cache, FIFOCache, LFUCache, LRUCache, RRCache, TLRUCache, TTLCache, Timer
from .emitter import (
    AsyncIOEventEmitter, EmitterError, EventEmitter, ListenerLeakWarning, PyeeError, PyeeException,
)

__all__ = [
    "AsyncIOEventEmitter", "Cache", "EmitterError", "EventEmitter", "FIFOCache", "LFUCache", "LRUCache",
    "ListenerLeakWarning", "PyeeError", "PyeeException", "RRCache", "TLRUCache", "TTLCache",
    "Timer",
]
__version__ = "0.1.0"
