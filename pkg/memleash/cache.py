"""Bounded caches with hard memory budgets: drop-ins for cachetools' caches.

Every class here is the C engine (``memleash._core.Cache``) plus
``collections.abc.MutableMapping`` for the mixins cachetools' caches also inherit (views,
``update``, ``==``). The only thing a class chooses is its eviction policy.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import ClassVar

from . import _core

__all__ = ["Cache", "LRUCache"]


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
