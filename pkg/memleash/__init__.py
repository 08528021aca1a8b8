"""memleash: a leash on the memory leaks of long-running Python services.

Bounded caches with hard memory budgets (``LRUCache(maxsize, max_bytes=...)``), drop-in
for ``cachetools``.
"""

from .cache import Cache, FIFOCache, LFUCache, LRUCache, RRCache, TLRUCache, TTLCache, Timer

__all__ = ["Cache", "FIFOCache", "LFUCache", "LRUCache", "RRCache", "TLRUCache", "TTLCache", "Timer"]
__version__ = "0.1.0"
