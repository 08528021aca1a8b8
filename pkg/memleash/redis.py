"""memleash.redis: redis-py integrations (``pip install memleash[redis]``; redis-py 8.1.0 is
the reference, pinned in requirements/redis.txt).

- ``ClientCache``: a ``redis.cache.CacheInterface`` for redis-py's client-side caching
  (``redis.Redis(protocol=3, cache=ClientCache(...))``) on a memleash ``LRUCache``: the
  server's invalidations (RESP3 client tracking) keep it exact, ``max_bytes`` bounds it,
  and ``memleash.report()`` shows its hits, misses and invalidations.
- ``TieredCache`` / ``AsyncTieredCache`` (defined in ``memleash.tiered``, which imports no
  redis): a memleash cache in front of a shared Redis, kept consistent across processes.

This is the only memleash module that imports redis at import time; ``import memleash``
never does.

How redis-py uses the object given as ``cache=`` (redis/connection.py,
``CacheProxyConnection``): as it is (no ``CacheProxy`` around it, so it enforces its own
limits), from every connection of the pool, each under a lock of its own: the cache locks
itself. A read of a cachable command ``get``s its ``CacheKey`` (several times per read),
stores a placeholder entry (status ``IN_PROGRESS``, value ``b"foo"``) before sending it,
and when the reply arrives sets that same entry object again, mutated in place to
``VALID`` with the reply, if it is still there; an invalidation push calls
``delete_by_redis_keys`` (``flush`` for a flushed database), closing a connection calls
``flush``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Optional, Union

from redis.cache import (
    CacheConfig,
    CacheConfigurationInterface,
    CacheEntry,
    CacheEntryStatus,
    CacheInterface,
    CacheKey,
    EvictionPolicy,
    EvictionPolicyInterface,
    EvictionPolicyType,
)

from .budget import Budget
from .caches import LRUCache
from .tiered import AsyncTieredCache, JSONSerializer, TieredCache

__all__ = ["AsyncTieredCache", "ClientCache", "ClientCacheStore", "JSONSerializer",
           "TieredCache", "deep_sizeof"]

#: what the engine keeps per entry beyond key and value with a byte budget (docs/caches.md)
_ENTRY_OVERHEAD = 56
#: the redis-key index's share of one (Redis key, entry) pair beyond the key's bytes object:
#: the set that holds the entry's CacheKey (sys.getsizeof(set()), 216) and the dict slot
#: that maps the Redis key to it (about 3 words at the dict's usual fill)
_INDEX_SHARE = sys.getsizeof(set()) + 3 * 8
_SINGLETONS = (None, True, False, Ellipsis, NotImplemented)
#: pop()'s default when absence must be told apart from any value. A shared budget evicts
#: from a ClientCacheStore from whatever thread stores into another member, without the
#: ClientCache's lock: between ``key in entries`` and ``del entries[key]`` the entry may
#: go, so a removal here is one ``entries.pop(key, _ABSENT)`` (one call into the engine)
_ABSENT = object()
_CONTAINERS = (list, tuple, set, frozenset)


def deep_sizeof(*objs: Any) -> int:
    """The bytes of ``objs`` and of everything they contain, each object counted once.

    ``sys.getsizeof`` of every object reached through lists, tuples, sets, frozensets and
    dicts (keys and values), and through the ``__dict__`` of ``CacheKey`` and
    ``CacheEntry`` objects; an object reached twice counts once; ``None``, ``True``,
    ``False``, ``Ellipsis`` and ``NotImplemented`` (shared singletons) and a
    ``CacheEntry``'s ``connection_ref`` and ``status`` (shared with the pool) count 0.
    Other objects count their own ``sys.getsizeof`` (shallow). Iterative: a deeply nested
    reply does not recurse. What a parsed redis reply holds (bytes, str, int, float,
    bool, None, lists, dicts) is counted exactly.
    """
    seen: set[int] = set()
    total = 0
    stack = list(objs)
    getsizeof = sys.getsizeof
    while stack:
        obj = stack.pop()
        if obj is None or obj is True or obj is False or obj is Ellipsis \
                or obj is NotImplemented:
            continue
        ident = id(obj)
        if ident in seen:
            continue
        seen.add(ident)
        total += getsizeof(obj)
        tp = type(obj)
        if tp is bytes or tp is str or tp is int or tp is float:
            continue
        if isinstance(obj, _CONTAINERS):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif tp is CacheKey:
            total += getsizeof(obj.__dict__)
            stack.extend((obj.command, obj.redis_keys, obj.redis_args))
        elif isinstance(obj, CacheEntry):
            total += getsizeof(obj.__dict__)
            stack.extend((obj.cache_key, obj.cache_value))
    return total


def _encoded_keys(entry: CacheEntry) -> list[bytes]:
    """The entry's Redis keys as the server names them in an invalidation: encoded by its
    connection's encoder (redis-py's Encoder.encode: str in the client's encoding, int and
    float by repr), utf-8 without one."""
    encoder = getattr(entry.connection_ref, "encoder", None)
    out = []
    for key in entry.cache_key.redis_keys:
        if encoder is not None:
            raw = encoder.encode(key)
        elif isinstance(key, str):
            raw = key.encode()
        elif isinstance(key, (int, float)) and not isinstance(key, bool):
            raw = repr(key).encode()
        else:
            raw = key
        out.append(bytes(raw))
    return out


def _entry_bytes(key: CacheKey, entry: CacheEntry) -> int:
    """The accounted bytes of one entry: deep_sizeof of the key and the entry (its reply
    included), the engine's per-entry overhead and, per Redis key, the key's bytes and the
    index's share."""
    return (deep_sizeof(key, entry) + _ENTRY_OVERHEAD
            + sum(sys.getsizeof(k) + _INDEX_SHARE for k in _encoded_keys(entry)))


class ClientCacheStore(LRUCache):
    """The engine behind a ``ClientCache``: an ``LRUCache`` of ``CacheKey -> CacheEntry``
    that keeps the index from Redis key to entries as entries come and go (an eviction
    goes through ``popitem``, which unindexes the entry), and reports the client cache's
    own counts: ``report()`` shows it as a ``ClientCacheStore`` row. Made by
    ``ClientCache``; use that."""

    def __init__(self, maxsize: float, *, max_bytes: Optional[int] = None,
                 budget: Optional[Budget] = None, name: Optional[str] = None) -> None:
        super().__init__(maxsize, max_bytes=max_bytes, sizeof=_entry_bytes, budget=budget,
                         name=name)
        #: Redis key (bytes, as the server names it) -> the CacheKeys of entries reading it
        self._ml_index: dict[bytes, set[CacheKey]] = {}
        #: CacheKey -> (the entry object indexed, the Redis keys it was indexed under)
        self._ml_indexed: dict[CacheKey, tuple[CacheEntry, list[bytes]]] = {}
        #: Guards the two dicts above, and nothing else: held only around their updates,
        #: never across a call into a cache, so it is a leaf that cannot deadlock. An
        #: eviction by a shared budget calls popitem() from whatever thread stores into
        #: another member, without the ClientCache's lock.
        self._ml_index_lock = threading.Lock()
        self._ml_hits = 0
        self._ml_misses = 0
        self._ml_invalidations = 0

    def _ml_index_entry(self, key: CacheKey, entry: CacheEntry,
                        redis_keys: list[bytes]) -> None:
        with self._ml_index_lock:
            held = self._ml_indexed.get(key)
            if held is not None and held[0] is entry and held[1] == redis_keys:
                return
            self._ml_unindex_locked(key, None)
            self._ml_indexed[key] = (entry, redis_keys)
            for rk in redis_keys:
                self._ml_index.setdefault(rk, set()).add(key)

    def _ml_unindex(self, key: CacheKey, entry: Optional[CacheEntry] = None) -> None:
        """Unindexes key; with ``entry``, only if that entry object is the one indexed (an
        eviction of an entry that a store has replaced since leaves the new one indexed)."""
        with self._ml_index_lock:
            self._ml_unindex_locked(key, entry)

    def _ml_unindex_locked(self, key: CacheKey, entry: Optional[CacheEntry]) -> None:
        held = self._ml_indexed.get(key)
        if held is None or (entry is not None and held[0] is not entry):
            return
        del self._ml_indexed[key]
        for rk in held[1]:
            keys = self._ml_index.get(rk)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._ml_index[rk]

    def _ml_index_snapshot(self, redis_key: bytes) -> list[CacheKey]:
        with self._ml_index_lock:
            return list(self._ml_index.get(redis_key, ()))

    def _ml_index_clear(self) -> None:
        with self._ml_index_lock:
            self._ml_index.clear()
            self._ml_indexed.clear()

    def popitem(self) -> tuple[CacheKey, CacheEntry]:
        """Removes the least recently used entry (and its index entries) and returns it."""
        key, entry = super().popitem()
        self._ml_unindex(key, entry)
        return key, entry

    def _ml_stats(self) -> dict[str, Any]:
        stats = super()._ml_stats()
        stats.update(hits=self._ml_hits, misses=self._ml_misses,
                     invalidations=self._ml_invalidations)
        return stats


class _Config(CacheConfigurationInterface):
    """What redis-py's CacheConfig answers, for a ClientCache."""

    def __init__(self, maxsize: int, commands: frozenset[str]) -> None:
        self._maxsize = maxsize
        self._commands = commands

    def get_cache_class(self) -> type[ClientCache]:
        return ClientCache

    def get_max_size(self) -> int:
        return self._maxsize

    def get_eviction_policy(self) -> EvictionPolicy:
        return EvictionPolicy.LRU

    def is_exceeds_max_size(self, count: int) -> bool:
        return count > self._maxsize

    def is_allowed_to_cache(self, command: str) -> bool:
        return (command.upper() if isinstance(command, str) else command) in self._commands


class _Policy(EvictionPolicyInterface):
    """The eviction policy redis-py's interface asks for: LRU, on the memleash engine."""

    def __init__(self, cache: ClientCache) -> None:
        self._cache = cache

    @property
    def cache(self) -> ClientCache:
        return self._cache

    @cache.setter
    def cache(self, value: ClientCache) -> None:
        self._cache = value

    @property
    def type(self) -> EvictionPolicyType:
        return EvictionPolicyType.time_based

    def evict_next(self) -> CacheKey:
        key, _ = self._cache.collection.popitem(last=False)
        return key

    def evict_many(self, count: int) -> list[CacheKey]:
        with self._cache._lock:
            if count > self._cache.size:
                raise ValueError("Evictions count is above cache size")
            return [self.evict_next() for _ in range(count)]

    def touch(self, cache_key: CacheKey) -> None:
        self._cache.collection.move_to_end(cache_key)


class _Collection:
    """``ClientCache.collection``: the ``OrderedDict`` view redis-py's interface returns,
    over the memleash engine (least recently used first).

    Reads (``c[k]``, ``get``, ``in``, ``len``, iteration, ``keys``/``values``/``items``)
    and the changes redis-py's LRU policy makes (``popitem(last=False)``,
    ``move_to_end(key)``) behave as ``OrderedDict``'s; ``c[k] = entry``, ``del c[k]``,
    ``pop`` and ``clear`` keep the Redis-key index. The engine knows its least recently
    used entry, not its most recently used one: ``popitem(last=True)`` and
    ``move_to_end(key, last=False)`` raise ``NotImplementedError``. Iteration is in
    insertion order (the engine's), not recency order.
    """

    __slots__ = ("_cache",)

    def __init__(self, cache: ClientCache) -> None:
        self._cache = cache

    def __getitem__(self, key: CacheKey) -> CacheEntry:
        return self._cache._entries[key]

    def get(self, key: CacheKey, default: Any = None) -> Any:
        return self._cache._entries.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._cache._entries

    def __len__(self) -> int:
        return len(self._cache._entries)

    def __iter__(self) -> Iterator[CacheKey]:
        with self._cache._lock:
            return iter(list(self._cache._entries))

    def keys(self) -> list[CacheKey]:
        with self._cache._lock:
            return list(self._cache._entries.keys())

    def values(self) -> list[CacheEntry]:
        with self._cache._lock:
            return list(self._cache._entries.values())

    def items(self) -> list[tuple[CacheKey, CacheEntry]]:
        with self._cache._lock:
            return list(self._cache._entries.items())

    def __setitem__(self, key: CacheKey, entry: CacheEntry) -> None:
        if entry.cache_key != key:
            raise ValueError("the entry's cache_key is not the key it is stored under")
        self._cache._store(entry)

    def __delitem__(self, key: CacheKey) -> None:
        with self._cache._lock:
            del self._cache._entries[key]
            self._cache._entries._ml_unindex(key)

    def pop(self, key: CacheKey, *default: Any) -> Any:
        with self._cache._lock:
            entry = self._cache._entries.pop(key, _ABSENT)
            if entry is _ABSENT:
                if default:
                    return default[0]
                raise KeyError(key)
            self._cache._entries._ml_unindex(key)
            return entry

    def popitem(self, last: bool = True) -> tuple[CacheKey, CacheEntry]:
        if last:
            raise NotImplementedError(
                "ClientCache.collection.popitem(last=True): the engine knows the least "
                "recently used entry only (popitem(last=False))")
        with self._cache._lock:
            try:
                return self._cache._entries.popitem()
            except KeyError:
                raise KeyError("dictionary is empty") from None

    def move_to_end(self, key: CacheKey, last: bool = True) -> None:
        if not last:
            raise NotImplementedError(
                "ClientCache.collection.move_to_end(key, last=False): the engine moves "
                "entries to the most recently used end only")
        with self._cache._lock:
            if key not in self._cache._entries:
                raise KeyError(key)
            self._cache._entries.get(key)     # a read marks it most recently used

    def clear(self) -> None:
        self._cache.flush()

    def __repr__(self) -> str:
        return f"<ClientCache.collection of {len(self)} entries>"


class ClientCache(CacheInterface):
    """redis-py's client-side cache on a memleash ``LRUCache``: exact, and bounded in bytes.

    ``ClientCache(maxsize=10_000, max_bytes=None, *, commands=None, name=None)``, given as
    ``redis.Redis(protocol=3, cache=ClientCache(...))`` (redis-py 8, a server of 7.4 or
    newer: redis-py checks). At most ``maxsize`` entries (one per distinct read command
    and arguments) and, with ``max_bytes``, at most that many accounted bytes: each entry
    counts ``deep_sizeof`` of its ``CacheKey`` and ``CacheEntry`` (the reply, nested lists
    and maps included, each object once), the engine's 56 bytes and, per Redis key it
    reads, that key's bytes and the index's share (~240 bytes). The least recently used
    entries make room; a reply too large for the budget alone is not cached (returned, and
    read from the server next time). ``commands``: the cachable commands (by default
    redis-py's ``CacheConfig.DEFAULT_ALLOW_LIST``, case-insensitive). ``name`` labels it
    in ``memleash.report()`` (by default, where it was made).

    Exact: Redis tracks the keys each connection read (RESP3 client tracking) and pushes
    an invalidation when another client changes one; redis-py hands it to
    ``delete_by_redis_keys``, which finds the entries through an index from Redis key to
    entries (no scan) and removes them, also while their reply is in flight (the reply is
    then not stored). Thread-safe: redis-py calls it from every connection of the pool.

    Counts (``hits``, ``misses``, ``invalidations``, also in ``report()``): a hit is a
    read answered from the cache, a miss one sent to the server; invalidations are
    entries removed because Redis said their keys changed, or because tracking was lost
    (a connection closed, ``flush()``).

    ``budget``: a ``memleash.Budget`` the entries share with other caches (the budget's
    order evicts across them; an eviction from another member's store removes the entry
    and its index entries from that thread, under a lock of the index's own that is never
    held across a call into a cache, so ClientCaches sharing one budget cannot deadlock).
    """

    def __init__(self, maxsize: int = 10_000, max_bytes: Optional[int] = None, *,
                 budget: Optional[Budget] = None, commands: Optional[Iterable[str]] = None,
                 name: Optional[str] = None) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1:
            raise ValueError(f"maxsize must be a positive int, not {maxsize!r}")
        allowed = CacheConfig.DEFAULT_ALLOW_LIST if commands is None else commands
        self._lock = threading.RLock()
        self._flow = threading.local()     # per thread: the CacheKey object of the read
        self._entries = ClientCacheStore(maxsize, max_bytes=max_bytes, budget=budget, name=name)
        self._config = _Config(maxsize, frozenset(c.upper() for c in allowed))
        self._policy = _Policy(self)
        self._collection = _Collection(self)
        self._encoding: tuple[str, str] = ("utf-8", "strict")

    # ---- redis-py's CacheInterface ---------------------------------------------------

    @property
    def collection(self) -> _Collection:   # type: ignore[override]
        """The entries as an ``OrderedDict``-like view (see ``_Collection``)."""
        return self._collection

    @property
    def config(self) -> CacheConfigurationInterface:
        return self._config

    @property
    def eviction_policy(self) -> EvictionPolicyInterface:
        return self._policy

    @property
    def size(self) -> int:
        """Entries held, placeholders of reads in flight included."""
        return len(self._entries)

    def get(self, key: CacheKey) -> Optional[CacheEntry]:
        """The entry of ``key`` (``VALID``, or ``IN_PROGRESS`` while its reply is in
        flight), marked most recently used; None if absent.

        redis-py calls this several times per read with one ``CacheKey`` object; the
        first call of a read in a thread counts it as a hit (a ``VALID`` entry) or a miss.
        """
        with self._lock:
            entry = self._entries.get(key)
            flow = self._flow
            if getattr(flow, "key", None) is not key:
                flow.key = key
                if entry is None:
                    flow.counted = "miss"
                    self._entries._ml_misses += 1
                elif entry.status is CacheEntryStatus.VALID:
                    flow.counted = "hit"
                    self._entries._ml_hits += 1
                else:
                    flow.counted = None
            return entry

    def set(self, entry: CacheEntry) -> bool:
        """Stores ``entry`` under its ``cache_key`` (replacing what was there) and
        accounts its bytes anew; False if its command is not cachable or it alone
        exceeds ``max_bytes`` (then nothing is kept for that key)."""
        if not self.is_cachable(entry.cache_key):
            return False
        with self._lock:
            stored = self._store(entry)
            flow = self._flow
            if (entry.status is CacheEntryStatus.IN_PROGRESS
                    and getattr(flow, "key", None) is entry.cache_key
                    and flow.counted == "hit"):
                # the hit's entry was invalidated before it was read: the read goes out
                flow.counted = "miss"
                self._entries._ml_hits -= 1
                self._entries._ml_misses += 1
            return stored

    def _store(self, entry: CacheEntry) -> bool:
        key = entry.cache_key
        redis_keys = _encoded_keys(entry)
        encoder = getattr(entry.connection_ref, "encoder", None)
        with self._lock:
            if encoder is not None:
                self._encoding = (encoder.encoding, encoder.encoding_errors)
            entries = self._entries
            try:
                entries[key] = entry
            except ValueError:
                # too large alone: the engine kept what it had, which may be this very
                # entry object, mutated in place since it was accounted: drop it
                entries.pop(key, None)
                entries._ml_unindex(key)
                return False
            # indexed after the store: an eviction by a shared budget (any thread) between
            # the two unindexes only the entry it evicted, so this one is indexed whatever
            # the order; if this very entry was evicted meanwhile, the index names a key
            # that is absent, which invalidation checks and forgets
            entries._ml_index_entry(key, entry, redis_keys)
            if key not in entries:   # evicted between the two: forget it at once
                entries._ml_unindex(key, entry)
            return True

    def delete_by_cache_keys(self, cache_keys: list[CacheKey]) -> list[bool]:
        """Removes the entries of ``cache_keys``: one bool per key, True if it was there."""
        out = []
        with self._lock:
            for key in cache_keys:
                found = self._entries.pop(key, _ABSENT) is not _ABSENT
                if found:
                    self._entries._ml_unindex(key)
                out.append(found)
        return out

    def delete_by_redis_keys(self, redis_keys: Union[list[bytes], list[str]]) -> list[bool]:
        """Removes every entry that reads one of ``redis_keys`` (bytes as the server sends
        them; str are encoded as the client encodes keys): through the index, no scan.
        One True per entry removed, as redis-py's ``DefaultCache`` answers (its caller
        counts them)."""
        out = []
        with self._lock:
            entries = self._entries
            encoding, errors = self._encoding
            for rk in redis_keys:
                if isinstance(rk, str):
                    rk = rk.encode(encoding, errors)
                for key in entries._ml_index_snapshot(bytes(rk)):
                    if entries.pop(key, _ABSENT) is not _ABSENT:
                        out.append(True)
                    entries._ml_unindex(key)
            entries._ml_invalidations += len(out)
        return out

    def flush(self) -> int:
        """Removes every entry (tracking was lost, or the database was flushed); returns
        how many there were."""
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            self._entries._ml_index_clear()
            self._entries._ml_invalidations += count
        return count

    def is_cachable(self, key: CacheKey) -> bool:
        return self._config.is_allowed_to_cache(key.command)

    # ---- memleash's ------------------------------------------------------------------

    @property
    def maxsize(self) -> int:
        """The most entries held."""
        return self._config.get_max_size()

    @property
    def maxbytes(self) -> Optional[int]:
        """The byte budget (``max_bytes``), or None."""
        return self._entries.maxbytes

    @property
    def currbytes(self) -> int:
        """The accounted bytes of the entries held (each as of its last ``set``)."""
        return self._entries.currbytes

    @property
    def hits(self) -> int:
        """Reads answered from the cache."""
        return self._entries._ml_hits

    @property
    def misses(self) -> int:
        """Reads of cachable commands sent to the server."""
        return self._entries._ml_misses

    @property
    def invalidations(self) -> int:
        """Entries removed because Redis invalidated them or tracking was lost."""
        return self._entries._ml_invalidations

    @property
    def store(self) -> ClientCacheStore:
        """The memleash cache that holds the entries (read it; change it through this
        object, whose index must follow)."""
        return self._entries

    # no __len__: redis-py takes an object without it (or one that is true) as given;
    # an empty cache with __len__ would be false, and redis-py would make its own

    def __repr__(self) -> str:
        limit = "" if self.maxbytes is None else f", {self.currbytes}/{self.maxbytes} bytes"
        return (f"<memleash.redis.ClientCache {self.size}/{self.maxsize} entries{limit}, "
                f"{self.hits} hits, {self.misses} misses, "
                f"{self.invalidations} invalidations>")
