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

    def _size(self, key: Any, value: Any) -> tuple:
        """(units, bytes) of an item, refused as memleash refuses it."""
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
        return units, nbytes

    def _make_room(self, key: Any, units: Any, nbytes: int) -> None:
        """Evicts by the policy until (units, nbytes) fit in place of key's entry."""
        limit = self.max_bytes if self.max_bytes is not None else MAX_BYTES

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

    def _put(self, key: Any, value: Any, units: Any, nbytes: int) -> None:
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

    def __setitem__(self, key: Any, value: Any) -> None:
        units, nbytes = self._size(key, value)
        self._make_room(key, units, nbytes)
        self._put(key, value, units, nbytes)

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


# ---------------------------------------------------------------------------------------
# A byte budget shared by several caches (memleash.Budget)

class ModelMember(ModelCache):
    """A cache of any policy under a shared budget, optionally timed (TTLCache: ``ttl``,
    TLRUCache: ``ttu``, on ``clock``, a tests/clock.Clock). Every access — a hit by
    ``c[k]`` (even of an expired item, as cachetools refreshes it), a ``get`` or
    ``setdefault`` that finds a live item, a store — takes a stamp from the budget's clock."""

    def __init__(self, budget: "ModelBudget", maxsize: float, policy: str, *,
                 max_bytes: Optional[int] = None, sizeof: Callable = nbytes,
                 choice: Optional[Callable] = None, ttl: Optional[float] = None,
                 ttu: Optional[Callable] = None, clock: Any = None):
        super().__init__(maxsize, policy, None, max_bytes, sizeof, choice)
        self.budget = budget
        self.ttl, self.ttu, self.clock = ttl, ttu, clock
        self.timed = ttl is not None or ttu is not None
        self.stamps: dict = {}
        self.deadlines: dict = {}
        self.deadline_set: dict = {}   # key -> when its deadline was set (ties)
        budget.members.append(self)

    def _stamp(self, key: Any) -> None:
        self.budget.clock += 1
        self.stamps[key] = self.budget.clock

    def _remove(self, key: Any) -> Any:
        self.stamps.pop(key, None)
        self.deadlines.pop(key, None)
        self.deadline_set.pop(key, None)
        return super()._remove(key)

    def now(self) -> Any:
        return self.clock.time

    def alive(self, key: Any) -> bool:
        return key in self.data and (not self.timed or self.now() < self.deadlines[key])

    def expire(self) -> list:
        now = self.now()
        gone = sorted((self.deadlines[k], self.deadline_set[k], k) for k in self.data
                      if not (now < self.deadlines[k]))
        return [(k, self._remove(k)) for _, _, k in gone]

    def __getitem__(self, key: Any) -> Any:
        value = super().__getitem__(key)   # present: refreshed, as cachetools does
        self._stamp(key)
        if not self.alive(key):
            raise KeyError(key)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if self.alive(key) else default

    def __contains__(self, key: Any) -> bool:
        return self.alive(key)

    def pop(self, key: Any, *default: Any) -> Any:
        if self.alive(key):
            return self._remove(key)
        if default:
            return default[0]
        raise KeyError(key)

    def __delitem__(self, key: Any) -> None:
        alive = self.alive(key)
        self.data[key]
        self._remove(key)
        if not alive:
            raise KeyError(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if self.alive(key):
            return self[key]
        self[key] = default
        return default

    def popitem(self) -> tuple:
        if self.timed:
            self.expire()
        if not self.data:
            raise KeyError()
        key = self._victim()
        return key, self._remove(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        deadline = None
        if self.timed:
            now = self.now()
            if self.ttl is not None:
                deadline = now + self.ttl
                self.expire()
            else:
                self.expire()
                deadline = self.ttu(key, value, now)
                if not (now < deadline):
                    if key in self.data:
                        self._remove(key)
                    return
        units, nbytes = self._size(key, value)
        if nbytes > self.budget.limit:
            raise ValueError("value too large")
        self._make_room(key, units, nbytes)
        self.budget.make_room(self, key, nbytes)
        self._put(key, value, units, nbytes)
        self._stamp(key)
        if self.timed:
            self.deadlines[key] = deadline
            self.budget.clock_set += 1
            self.deadline_set[key] = self.budget.clock_set

    def leave(self) -> None:
        """The cache dies (or leaves the budget): its bytes go with it."""
        self.budget.members.remove(self)


class ModelBudget:
    """memleash.Budget's order: a store that does not fit evicts, once, every other timed
    member's expired items, then the victim with the oldest stamp among the victims each
    member names by its own policy, until it fits."""

    def __init__(self, maxbytes: int):
        self.maxbytes = maxbytes
        self.limit = maxbytes
        self.members: list = []
        self.clock = 0          # the access clock: the last stamp given
        self.clock_set = 0      # the order in which deadlines were set (ties in expiry)
        self.evictions = 0
        self.pressure_evictions = 0

    @property
    def currbytes(self) -> int:
        return sum(m.currbytes for m in self.members)

    def oldest_victim(self) -> Optional[tuple]:
        best = None
        for m in self.members:
            if not m.data:
                continue
            key = m._victim()
            if best is None or m.stamps[key] < best[0]:
                best = (m.stamps[key], m, key)
        return best

    def _evict(self, want: Callable[[], bool], expire_but: Any, pressure: bool) -> None:
        expired = False
        while not want():
            if not expired and any(m.timed and m is not expire_but for m in self.members):
                expired = True
                for m in self.members:
                    if m.timed and m is not expire_but:
                        m.expire()
                continue
            best = self.oldest_victim()
            if best is None:
                if pressure:
                    return
                raise ValueError("value too large")
            _, m, key = best
            m._remove(key)
            if pressure:
                self.pressure_evictions += 1
            else:
                self.evictions += 1

    def make_room(self, member: ModelMember, key: Any, new: int) -> None:
        """Room for new bytes in place of member's item under key (which may itself be
        the oldest victim: then it is stored anew)."""
        self._evict(lambda: self.currbytes - member.bytes.get(key, 0) + new <= self.limit,
                    member, False)

    def set_limit(self, limit: int) -> None:
        self.limit = min(limit, self.maxbytes)
        self._evict(lambda: self.currbytes <= self.limit, None, True)
