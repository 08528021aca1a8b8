# Types of memleash's caches: generic in key and value, as typeshed's cachetools stubs;
# the timed caches also in their time (float by default, or datetime) and TTLCache in its
# time-to-live (float, or timedelta with a datetime timer), the two kinds the runtime takes.

from collections.abc import Callable, MutableMapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, overload

from typing_extensions import TypeVar

from . import _core
from ._core import Budget
from ._core import Timer as Timer
from ._core import monotonic_coarse as monotonic_coarse

__all__ = ["Cache", "FIFOCache", "LFUCache", "LRUCache", "RRCache", "TLRUCache", "TTLCache", "Timer",
           "TinyLFUCache", "monotonic_coarse"]

_KT = TypeVar("_KT")
_VT = TypeVar("_VT")
_T = TypeVar("_T")
_Time = TypeVar("_Time", default=float)
_TTL = TypeVar("_TTL", default=float)

class Cache(_core.Cache[_KT, _VT], MutableMapping[_KT, _VT]):
    """A mapping that never holds more than ``maxsize`` units nor ``max_bytes`` bytes: the
    C engine (its methods typed in _core.pyi) with MutableMapping's mixins."""

class LRUCache(Cache[_KT, _VT]): ...
class FIFOCache(Cache[_KT, _VT]): ...
class LFUCache(Cache[_KT, _VT]): ...
class TinyLFUCache(Cache[_KT, _VT]): ...

class RRCache(Cache[_KT, _VT]):
    def __init__(
        self,
        maxsize: float,
        choice: Callable[[Sequence[_KT]], _KT] = ...,
        getsizeof: Callable[[_VT], float] | None = None,
        *,
        max_bytes: int | None = None,
        sizeof: Callable[[_KT, _VT], int] | None = None,
        name: str | None = None,
        budget: Budget | None = None,
    ) -> None: ...
    @property
    def choice(self) -> Callable[[Sequence[_KT]], _KT]: ...

class _TimedCache(Cache[_KT, _VT], Generic[_KT, _VT, _Time]):
    def expire(self, time: _Time | None = None) -> list[tuple[_KT, _VT]]: ...
    @property
    def timer(self) -> Timer[_Time]: ...

class TTLCache(_TimedCache[_KT, _VT, _Time], Generic[_KT, _VT, _Time, _TTL]):
    """``TTLCache[K, V]``: numeric times (the default timer is ``time.monotonic``);
    ``TTLCache[K, V, datetime, timedelta]``: a ``datetime`` timer and ``timedelta`` ttl."""
    @overload
    def __init__(
        self: TTLCache[_KT, _VT, float, float],
        maxsize: float,
        ttl: float,
        timer: Callable[[], float] = ...,
        getsizeof: Callable[[_VT], float] | None = None,
        *,
        max_bytes: int | None = None,
        sizeof: Callable[[_KT, _VT], int] | None = None,
        name: str | None = None,
        budget: Budget | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: TTLCache[_KT, _VT, datetime, timedelta],
        maxsize: float,
        ttl: timedelta,
        timer: Callable[[], datetime],
        getsizeof: Callable[[_VT], float] | None = None,
        *,
        max_bytes: int | None = None,
        sizeof: Callable[[_KT, _VT], int] | None = None,
        name: str | None = None,
        budget: Budget | None = None,
    ) -> None: ...
    @property
    def ttl(self) -> _TTL: ...

class TLRUCache(_TimedCache[_KT, _VT, _Time]):
    """``TLRUCache[K, V]``: numeric times; ``TLRUCache[K, V, datetime]``: a ``datetime``
    timer, and ``ttu(key, value, now)`` returning a ``datetime``."""
    @overload
    def __init__(
        self: TLRUCache[_KT, _VT, float],
        maxsize: float,
        ttu: Callable[[_KT, _VT, float], float],
        timer: Callable[[], float] = ...,
        getsizeof: Callable[[_VT], float] | None = None,
        *,
        max_bytes: int | None = None,
        sizeof: Callable[[_KT, _VT], int] | None = None,
        name: str | None = None,
        budget: Budget | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: TLRUCache[_KT, _VT, datetime],
        maxsize: float,
        ttu: Callable[[_KT, _VT, datetime], datetime],
        timer: Callable[[], datetime],
        getsizeof: Callable[[_VT], float] | None = None,
        *,
        max_bytes: int | None = None,
        sizeof: Callable[[_KT, _VT], int] | None = None,
        name: str | None = None,
        budget: Budget | None = None,
    ) -> None: ...
    @property
    def ttu(self) -> Callable[[_KT, _VT, _Time], _Time]: ...
