"""A pure-Python reference model of memleash's caches, for the hypothesis state machines.

It is cachetools' semantics written as plainly as possible plus the byte budget (room is
made before an entry is stored). Policies: "insertion" (Cache), "lru", "fifo", "lfu" (the
fewest uses, then the earliest arrival at that count), "rr" (choice over a key list kept
as cachetools keeps it: appended, swap-removed), "tinylfu" (W-TinyLFU written from
csrc/core/tinylfu.h's description, with the same sketch hashing and counters: TinyLFU).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Callable, Optional


# what the model tests and the fuzzer share: each memleash class's policy here, and the
# getsizeof, sizeof and RRCache choice they configure caches with
POLICY = {"Cache": "insertion", "LRUCache": "lru", "FIFOCache": "fifo", "LFUCache": "lfu",
          "RRCache": "rr", "TinyLFUCache": "tinylfu"}


MAX_UNITS = 2**63 - 1   # sizes and currsize are exact int64 counts
MAX_BYTES = 2**64 - 2   # currbytes is a size_t that never reaches SIZE_MAX


def units(value: int) -> int:
    return value % 5


def nbytes(key: Any, value: int) -> int:
    return 20 + value


def middle(keys: list) -> Any:
    return keys[len(keys) // 2]


M64 = 2**64 - 1


def _mix(x: int) -> int:
    """The sketch's mix of hash ^ seed: one multiply, the halves folded."""
    p = (x * 0x9E3779B97F4A7C15) & M64
    return p ^ (p >> 32)


class Sketch:
    """4-bit count-min counters, 16 to a 64-bit word, in blocks of 8 words; halved every
    7 additions per word."""

    SEED = 0x9E3779B97F4A7C15
    MAX_WORDS = 1 << 30

    def __init__(self) -> None:
        self.words: list = []
        self.additions = 0
        self.seed = self.SEED

    def reserve(self, n: int, held: list) -> None:
        """At least n words; a larger sketch starts at zero but for the estimates of the
        hashes in held, carried over."""
        nwords = len(self.words)
        if n <= nwords or nwords >= self.MAX_WORDS:
            return
        want = 8
        while want < n and want < self.MAX_WORDS:
            want <<= 1
        estimates = [(h, self.frequency(h)) for h in held]
        self.words = [0] * want
        for h, count in estimates:
            for w, shift in self._cells(h):
                if (self.words[w] >> shift) & 15 < count:
                    self.words[w] = (self.words[w] & ~(15 << shift)) | (count << shift)

    def sample(self) -> int:
        return 7 * len(self.words)

    def _cells(self, h: int) -> list:
        m = _mix((h ^ self.seed) & M64)
        block = (m & 0xFFFFFFFF) & (len(self.words) // 8 - 1)
        cells = []
        for i in range(4):
            b = (m >> (32 + 8 * i)) & 0xFF
            cells.append((block * 8 + 2 * i + (b & 1), ((b >> 1) & 15) * 4))
        return cells

    def increment(self, h: int) -> None:
        if not self.words:
            return
        added = False
        for w, shift in self._cells(h):
            if (self.words[w] >> shift) & 15 < 15:
                self.words[w] += 1 << shift
                added = True
        if added:
            self.additions += 1
            if self.additions >= self.sample():
                self.words = [(w >> 1) & 0x7777777777777777 for w in self.words]
                self.additions //= 2

    def frequency(self, h: int) -> int:
        if not self.words:
            return 0
        return min((self.words[w] >> shift) & 15 for w, shift in self._cells(h))


class TinyLFU:
    """W-TinyLFU's regions and hill climber (csrc/core/tinylfu.h), over keys."""

    WINDOW, PROBATION, PROTECTED = 0, 1, 2

    def __init__(self) -> None:
        self.regions = [OrderedDict(), OrderedDict(), OrderedDict()]   # least recent first
        self.region_of: dict = {}
        self.sketch = Sketch()
        self.window_frac = 0.01
        self.step = -0.0625
        self.prev_rate = 0.0
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self.region_of)

    def window_max(self, n: int) -> int:
        if n == 0:
            return 0
        return min(n, max(1, math.ceil(self.window_frac * n)))

    def protected_max(self, n: int) -> int:
        return int(0.8 * (n - self.window_max(n)))

    def _move_head(self, src: int, dst: int) -> None:
        key = next(iter(self.regions[src]))
        del self.regions[src][key]
        self.regions[dst][key] = None
        self.region_of[key] = dst

    def _resize(self, grow: bool) -> None:
        n = len(self)
        wmax, pmax = self.window_max(n), self.protected_max(n)
        while len(self.regions[self.PROTECTED]) > pmax:   # hits' promotions, demoted now
            self._move_head(self.PROTECTED, self.PROBATION)
        while len(self.regions[self.WINDOW]) > wmax:
            self._move_head(self.WINDOW, self.PROBATION)
        while grow and len(self.regions[self.WINDOW]) < wmax:
            self._move_head(self.PROBATION if self.regions[self.PROBATION] else self.PROTECTED,
                            self.WINDOW)
        while len(self.regions[self.PROTECTED]) > pmax:
            self._move_head(self.PROTECTED, self.PROBATION)

    def _maybe_climb(self) -> None:
        requests = self.hits + self.misses
        if requests < self.sketch.sample():
            return
        rate = self.hits / requests
        change = rate - self.prev_rate
        amount = self.step if change >= 0 else -self.step
        if abs(change) >= 0.05:
            self.step = 0.0625 if amount >= 0 else -0.0625
        else:
            self.step = 0.98 * amount
        self.prev_rate = rate
        self.hits = self.misses = 0
        self.window_frac = min(1.0, max(0.0, self.window_frac + amount))
        self._resize(True)

    def insert(self, key: Any) -> None:
        # two words per entry or more
        self.sketch.reserve(2 * (len(self) + 1), [hash(k) & M64 for k in self.region_of])
        self.sketch.increment(hash(key) & M64)
        self.misses += 1
        self.regions[self.WINDOW][key] = None
        self.region_of[key] = self.WINDOW
        self._resize(False)
        self._maybe_climb()

    def touch(self, key: Any) -> None:
        self.sketch.increment(hash(key) & M64)
        self.hits += 1
        r = self.region_of[key]
        if r == self.PROBATION:
            del self.regions[r][key]
            self.regions[self.PROTECTED][key] = None   # its overflow waits for an insertion
            self.region_of[key] = self.PROTECTED
        else:
            self.regions[r].move_to_end(key)
        self._maybe_climb()

    def remove(self, key: Any) -> None:
        del self.regions[self.region_of.pop(key)][key]

    def victim(self) -> Any:
        cand = next(iter(self.regions[self.WINDOW]), None)
        vict = next(iter(self.regions[self.PROBATION] or self.regions[self.PROTECTED]), None)
        if cand is None or vict is None:
            return vict if cand is None else cand
        fc = self.sketch.frequency(hash(cand) & M64)
        fv = self.sketch.frequency(hash(vict) & M64)
        return vict if fc > fv else cand


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
        self.tlfu = TinyLFU()         # tinylfu
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
        if self.policy == "tinylfu":
            return self.tlfu.victim()
        return next(iter(self.data))

    def _remove(self, key: Any) -> Any:
        self.units.pop(key)
        self.bytes.pop(key)
        self.recency.pop(key)
        self.uses.pop(key, None)
        if self.policy == "tinylfu":
            self.tlfu.remove(key)
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
        elif self.policy == "tinylfu":
            self.tlfu.touch(key)
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
            elif self.policy == "tinylfu":
                self.tlfu.touch(key)
        else:
            self.recency[key] = None
            if self.policy == "lfu":
                self._use(key, fresh=True)
            elif self.policy == "rr":
                self.keylist.append(key)
            elif self.policy == "tinylfu":
                self.tlfu.insert(key)
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
        self.tlfu = TinyLFU()   # memleash's clear() forgets TinyLFU's history too

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
