"""memleash: a leash on the memory leaks of long-running Python services.

Bounded caches with hard memory budgets (``LRUCache(maxsize, max_bytes=...)``), drop-in
for ``cachetools``.
"""

from .cache import Cache, LRUCache

__all__ = ["Cache", "LRUCache"]
__version__ = "0.1.0"
