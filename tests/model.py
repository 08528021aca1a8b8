"""A pure-Python reference model of memleash's caches, for the hypothesis state machines.

It is cachetools' semantics written as plainly as possible plus the byte budget (room is
made before an entry is stored). Policies: "insertion" (Cache), "lru", "fifo", "lfu" (the
fewest uses, then the earliest arrival at that count), "rr" (choice over a key list kept
as cachetools keeps it: appended, swap-removed).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Optional


# what the model tests and the fuzzer share: each memleash class's policy here, and the
# getsizeof, sizeof and RRCache choice they configure caches with
POLICY = {"Cache": "insertion", "LRUCache": "lru", "FIFOCache": "fifo", "LFUCache": "lfu",
          "RRCache": "rr"}


MAX_UNITS = 2**63 - 1   # sizes and currsize are exact int64 counts
MAX_BYTES = 2**64 - 2   # currbytes is a size_t that never reaches SIZE_MAX


def units(value: int) -> int:
    return value % 5


def nbytes(key: Any, value: int) -> int:
    return 20 + value


def middle(keys: list) -> Any:
    return keys[len(keys) // 2]


class ModelCache:
    def __init__(self, maxsize: float, policy: str, getsizeof: Optional[Callable] = None,
                 max_bytes: Optional[int] = None, sizeof: Optional[Callable] = None,
                 choice: Optional[Callable] = None):
        self.maxsize = maxsize
        self.policy = policy
        self.choice = choice
        self.uses: dict = {}          # lfu: key -> (count, arrival stamp at that count)
        self.stamp = 0
        self.keylist: list = []       # rr
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

    def _use(self, key: Any, fresh: bool = False) -> None:
        self.stamp += 1
        count = 1 if fresh else self.uses[key][0] + 1
        self.uses[key] = (count, self.stamp)

    def _victim(self) -> Any:
        if self.policy in ("lru", "fifo"):
            return next(iter(self.recency))
        if self.policy == "lfu":
            return min(self.uses, key=self.uses.__getitem__)
        if self.policy == "rr":
            return self.choice(self.keylist)
        return next(iter(self.data))

    def _remove(self, key: Any) -> Any:
        self.units.pop(key)
        self.bytes.pop(key)
        self.recency.pop(key)
        self.uses.pop(key, None)
        if self.policy == "rr":
            i = self.keylist.index(key)
            last = self.keylist.pop()
            if i < len(self.keylist):
                self.keylist[i] = last
        return self.data.pop(key)

    def __getitem__(self, key: Any) -> Any:
        value = self.data[key]
        if self.policy == "lru":
            self.recency.move_to_end(key)
        elif self.policy == "lfu":
            self._use(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        # memleash counts exactly what fits in its counters (sizes and currsize up to
        # 2**63 - 1, currbytes up to 2**64 - 2) and refuses the rest with OverflowError
        units = self.getsizeof(value) if self.getsizeof else 1
        if units > self.maxsize:
            raise ValueError("value too large")
        if units > MAX_UNITS:
            raise OverflowError("value size too large")
        nbytes = self.sizeof(key, value) if self.sizeof else 0
        if nbytes > MAX_BYTES:
            raise OverflowError("sizeof result too large")
        limit = self.max_bytes if self.max_bytes is not None else MAX_BYTES
        if nbytes > limit:
            raise ValueError("value too large")

        def fits() -> bool:
            old_units = self.units.get(key, 0)
            old_bytes = self.bytes.get(key, 0)
            total = self.currsize + (units - old_units)
            if total > self.maxsize:
                return False
            if total > MAX_UNITS:
                raise OverflowError("cache size too large")
            total_bytes = self.currbytes - old_bytes + nbytes
            if total_bytes > MAX_BYTES and self.max_bytes is None:
                raise OverflowError("cache size too large")
            return total_bytes <= limit

        while not fits():
            self._remove(self._victim())
        self.data[key] = value
        if key in self.recency:
            if self.policy in ("lru", "fifo"):
                self.recency.move_to_end(key)
            elif self.policy == "lfu":
                self._use(key)
        else:
            self.recency[key] = None
            if self.policy == "lfu":
                self._use(key, fresh=True)
            elif self.policy == "rr":
                self.keylist.append(key)
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
