"""Bounded caches with hard memory budgets: drop-ins for cachetools' caches.

Every class here is the C engine (``memleash._core.Cache``) plus
``collections.abc.MutableMapping`` for the mixins cachetools' caches also inherit (views,
``update``, ``==``). The only thing a class chooses is its eviction policy.
"""

from __future__ import annotations

import random
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any, ClassVar, Optional

from . import _core

__all__ = ["Cache", "FIFOCache", "LFUCache", "LRUCache", "RRCache"]


class Cache(_core.Cache, MutableMapping):  # type: ignore[misc]
    """Mutable mapping to serve as a simple cache or cache base class.

    ``Cache(maxsize, getsizeof=None, *, max_bytes=None, sizeof=None)``: at most
    ``maxsize`` units (each item counts ``getsizeof(value)``, 1 by default) and, if
    ``max_bytes`` is given, at most that many accounted bytes (``sizeof(key, value)``,
    by default ``sys.getsizeof(key) + sys.getsizeof(value)`` + the entry's own
    overhead). Room is made before an item is stored, so neither limit is ever
    exceeded. When full, the item inserted first is evicted.
    """

    __slots__ = ()
    _ml_policy: ClassVar[int] = _core.POLICY_INSERTION


class LRUCache(Cache):
    """Least Recently Used (LRU) cache: evicts the item read or written longest ago."""

    __slots__ = ()
    _ml_policy: ClassVar[int] = _core.POLICY_LRU


class FIFOCache(Cache):
    """First In First Out (FIFO) cache: evicts the item stored longest ago.

    Reads do not count; storing a new value under an existing key counts as storing it anew.
    """

    __slots__ = ()
    _ml_policy: ClassVar[int] = _core.POLICY_FIFO


class LFUCache(Cache):
    """Least Frequently Used (LFU) cache: evicts the item read or written the fewest times.

    Among equally used items, the one that reached that use count first goes first (the
    least recently used of them), as cachetools 8 does. O(1) frequency buckets.
    """

    __slots__ = ()
    _ml_policy: ClassVar[int] = _core.POLICY_LFU


class RRCache(Cache):
    """Random Replacement (RR) cache: evicts the item ``choice(keys)`` picks.

    ``keys`` is a live sequence of the cache's keys in the order cachetools keeps them (new
    keys appended, a removed key replaced by the last), so a given ``choice`` picks the same
    key as in cachetools.
    """

    __slots__ = ()
    _ml_policy: ClassVar[int] = _core.POLICY_RANDOM

    def __init__(
        self,
        maxsize: float,
        choice: Callable[[Sequence[Any]], Any] = random.choice,
        getsizeof: Optional[Callable[[Any], float]] = None,
        *,
        max_bytes: Optional[int] = None,
        sizeof: Optional[Callable[[Any, Any], int]] = None,
    ) -> None:
        Cache.__init__(self, maxsize, getsizeof, max_bytes=max_bytes, sizeof=sizeof)
        self._ml_choice = choice

    @property
    def choice(self) -> Callable[[Sequence[Any]], Any]:
        """The `choice` function used by the cache."""
        return self._ml_choice
