"""A pure-Python reference model of memleash's caches, for the hypothesis state machines.

It is cachetools' semantics written as plainly as possible (a dict in insertion order, an
OrderedDict for recency) plus the byte budget: room is made before an entry is stored.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Optional


class ModelCache:
    def __init__(self, maxsize: float, lru: bool, getsizeof: Optional[Callable] = None,
                 max_bytes: Optional[int] = None, sizeof: Optional[Callable] = None):
        self.maxsize = maxsize
        self.lru = lru
        self.getsizeof = getsizeof
        self.max_bytes = max_bytes
        self.sizeof = sizeof
        self.data: dict = {}
        self.recency: OrderedDict = OrderedDict()
        self.units: dict = {}
        self.bytes: dict = {}

    @property
    def currsize(self) -> float:
        return sum(self.units.values())

    @property
    def currbytes(self) -> int:
        return sum(self.bytes.values())

    def _victim(self) -> Any:
        return next(iter(self.recency if self.lru else self.data))

    def _remove(self, key: Any) -> Any:
        self.units.pop(key)
        self.bytes.pop(key)
        self.recency.pop(key)
        return self.data.pop(key)

    def __getitem__(self, key: Any) -> Any:
        value = self.data[key]
        if self.lru:
            self.recency.move_to_end(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        units = self.getsizeof(value) if self.getsizeof else 1
        if units > self.maxsize:
            raise ValueError("value too large")
        nbytes = self.sizeof(key, value) if self.sizeof else 0
        limit = self.max_bytes if self.max_bytes is not None else float("inf")
        if nbytes > limit:
            raise ValueError("value too large")

        def fits() -> bool:
            old_units = self.units.get(key, 0)
            old_bytes = self.bytes.get(key, 0)
            return (self.currsize + (units - old_units) <= self.maxsize
                    and self.currbytes - old_bytes + nbytes <= limit)

        while not fits():
            self._remove(self._victim())
        self.data[key] = value
        if key in self.recency:
            if self.lru:
                self.recency.move_to_end(key)
        else:
            self.recency[key] = None
        self.units[key] = units
        self.bytes[key] = nbytes

    def __delitem__(self, key: Any) -> None:
        self.data[key]
        self._remove(key)

    def __contains__(self, key: Any) -> bool:
        return key in self.data

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self.data else default

    def pop(self, key: Any, *default: Any) -> Any:
        if key in self.data:
            return self._remove(key)
        if default:
            return default[0]
        raise KeyError(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key in self.data:
            return self[key]
        self[key] = default
        return default

    def popitem(self) -> tuple:
        if not self.data:
            raise KeyError()
        key = self._victim()
        return key, self._remove(key)

    def clear(self) -> None:
        for key in list(self.data):
            self._remove(key)

    def keys(self) -> list:
        return list(self.data)
