"""Bounded caches with hard memory budgets: drop-ins for cachetools' caches.

Every class here is the C engine (``memleash._core.Cache``) plus
``collections.abc.MutableMapping`` for the mixins cachetools' caches also inherit (views,
``update``, ``==``). The only thing a class chooses is its eviction policy.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any, ClassVar, Optional

from . import _core

__all__ = ["Cache", "FIFOCache", "LFUCache", "LRUCache", "RRCache", "TLRUCache", "TTLCache", "Timer",
           "TinyLFUCache", "monotonic_coarse"]

Timer = _core.Timer
#: A timer for TTLCache / TLRUCache that costs a few nanoseconds and advances once per
#: kernel tick (Linux's CLOCK_MONOTONIC_COARSE; its docstring has the terms).
monotonic_coarse = _core.monotonic_coarse


class Cache(_core.Cache, MutableMapping):  # type: ignore[misc]
    """Mutable mapping to serve as a simple cache or cache base class.

    ``Cache(maxsize, getsizeof=None, *, max_bytes=None, sizeof=None, name=None,
    budget=None)``: at most ``maxsize`` units (each item counts ``getsizeof(value)``, 1 by
    default) and, if ``max_bytes`` is given, at most that many accounted bytes
    (``sizeof(key, value)``, by default ``sys.getsizeof(key) + sys.getsizeof(value)`` + the
    entry's own overhead). Room is made before an item is stored, so neither limit is ever
    exceeded. When full, the item inserted first is evicted. ``budget``: a
    ``memleash.Budget`` shared with other caches, whose limit holds for all of them
    together (an item may then be evicted to make room in another cache). ``name`` labels
    the cache in ``memleash.report()`` (by default, where it was created: ``app/db.py:42
    in load``).
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


class TinyLFUCache(Cache):
    """W-TinyLFU cache: recency and frequency together, as Caffeine's (and theine's) policy.

    ``TinyLFUCache(maxsize, getsizeof=None, *, max_bytes=None, sizeof=None, name=None)``,
    limits as ``Cache``. A new key always enters a small LRU *window* (present right after
    ``c[k] = v``); the rest is a *main* region, LRU entries in *probation* and, once read
    again there, in *protected* (at most 80 % of main). When room is needed, the window's
    least recently used entry and probation's (protected's when probation is empty) compete:
    the one a 4-bit count-min sketch of recent uses counts less often is evicted, a tie
    evicting the window's. ``popitem()`` removes and returns exactly that entry. The
    sketch counts every store and hit; it halves its counters after 14 to 28 counted uses
    per entry, so popularity fades. The window starts at 1 % of the entries and follows the hit
    rate by hill climbing (Caffeine's constants). Regions count entries, whatever their
    sizes. The sketch hashes ``hash(key)`` with a fixed seed (0x9E3779B97F4A7C15), so
    decisions and pickles are deterministic for a given ``hash``. ``clear()`` forgets the
    history too. Design and sources: docs/caches.md.
    """

    __slots__ = ()
    _ml_policy: ClassVar[int] = _core.POLICY_TINYLFU


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
        name: Optional[str] = None,
        budget: Optional[_core.Budget] = None,
    ) -> None:
        Cache.__init__(self, maxsize, getsizeof, max_bytes=max_bytes, sizeof=sizeof, name=name,
                       budget=budget)
        self._ml_choice = choice

    @property
    def choice(self) -> Callable[[Sequence[Any]], Any]:
        """The `choice` function used by the cache."""
        return self._ml_choice


class _TimedCache(Cache):
    """What TTLCache and TLRUCache share: the timer, expire(), lazy expiry (in C)."""

    __slots__ = ()
    _ml_policy: ClassVar[int] = _core.POLICY_LRU

    #: expire(time=None) -> list of (key, value): removes the items expired at ``time``
    #: (``timer()`` by default) and returns them, earliest deadline first. Override it to
    #: observe expirations: the cache calls ``self.expire(time)`` where cachetools does.
    expire = _core.Cache._ml_expire

    @property
    def timer(self) -> Any:
        """The timer: ``timer()`` is the time; ``with timer as now:`` freezes it (nestable)."""
        return self._ml_timer

    def _ml_init_timed(self, kind: int, ttl_or_ttu: Any, maxsize: float, timer: Any,
                       getsizeof: Any, max_bytes: Optional[int], sizeof: Any,
                       name: Optional[str], budget: Optional[_core.Budget]) -> None:
        Cache.__init__(self, maxsize, getsizeof, max_bytes=max_bytes, sizeof=sizeof, name=name,
                       budget=budget)
        self._ml_configure_timed(kind, ttl_or_ttu, timer)


class TTLCache(_TimedCache):
    """LRU cache whose items expire ``ttl`` after they are set (cachetools.TTLCache).

    An item set at time ``t`` lives while ``timer() < t + ttl``; expired items are invisible
    to every read and removed lazily (by writes, ``len``, ``expire()``).
    """

    __slots__ = ()

    def __init__(
        self,
        maxsize: float,
        ttl: float,
        timer: Callable[[], float] = time.monotonic,
        getsizeof: Optional[Callable[[Any], float]] = None,
        *,
        max_bytes: Optional[int] = None,
        sizeof: Optional[Callable[[Any, Any], int]] = None,
        name: Optional[str] = None,
        budget: Optional[_core.Budget] = None,
    ) -> None:
        self._ml_init_timed(_core.TIMED_TTL, ttl, maxsize, timer, getsizeof, max_bytes, sizeof,
                            name, budget)

    @property
    def ttl(self) -> float:
        """The time-to-live of the cache's items."""
        return self._ml_ttl


class TLRUCache(_TimedCache):
    """LRU cache whose items expire when ``ttu(key, value, now)`` says (cachetools.TLRUCache).

    An item stored at time ``now`` lives while ``timer() < ttu(key, value, now)``; an item
    already expired when stored is not stored (and replaces nothing).
    """

    __slots__ = ()

    def __init__(
        self,
        maxsize: float,
        ttu: Callable[[Any, Any, float], float],
        timer: Callable[[], float] = time.monotonic,
        getsizeof: Optional[Callable[[Any], float]] = None,
        *,
        max_bytes: Optional[int] = None,
        sizeof: Optional[Callable[[Any, Any], int]] = None,
        name: Optional[str] = None,
        budget: Optional[_core.Budget] = None,
    ) -> None:
        self._ml_init_timed(_core.TIMED_TLRU, ttu, maxsize, timer, getsizeof, max_bytes, sizeof,
                            name, budget)

    @property
    def ttu(self) -> Callable[[Any, Any, float], float]:
        """The time-to-use function of the cache."""
        return self._ml_ttu
