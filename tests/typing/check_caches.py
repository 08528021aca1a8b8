"""mypy --strict over memleash's cache types (make typecheck): each assert_type must hold
and each `type: ignore[code]` must be needed (warn_unused_ignores), so a stub that
accepts too much fails as surely as one that accepts too little."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import assert_type

from memleash import Cache, LFUCache, LRUCache, RRCache, Timer, TinyLFUCache, TLRUCache, TTLCache

lru = LRUCache[str, bytes](maxsize=100, max_bytes=1024, name="blobs")
lru["a"] = b"x"
assert_type(lru["a"], bytes)
assert_type(lru.get("a"), bytes | None)
assert_type(lru.get("a", 0), bytes | int)
assert_type(lru.pop("a", None), bytes | None)
assert_type(lru.popitem(), tuple[str, bytes])
assert_type(lru.maxbytes, int | None)
assert_type(lru.currbytes, int)
lru[1] = b"x"  # type: ignore[index]
lru["b"] = "text"  # type: ignore[assignment]

sized = Cache[str, list[int]](10, getsizeof=len, sizeof=lambda k, v: len(k) + 8 * len(v))
assert_type(sized.currsize, float)
LFUCache[int, int](10, getsizeof=lambda v: "one")  # type: ignore[arg-type,return-value]
tiny = TinyLFUCache[str, bytes](1000, max_bytes=1 << 20, sizeof=lambda k, v: len(k) + len(v))
assert_type(tiny.popitem(), tuple[str, bytes])
assert_type(tiny.get("a"), bytes | None)
tiny["a"] = 1  # type: ignore[assignment]
rr = RRCache[str, int](10, choice=min)
assert_type(rr.choice(["a"]), str)

# numeric time: TTLCache[K, V] is TTLCache[K, V, float, float]
ttl = TTLCache[str, int](10, ttl=60)
assert_type(ttl.ttl, float)
assert_type(ttl.timer(), float)
assert_type(ttl.timer, Timer[float])
assert_type(ttl.expire(), list[tuple[str, int]])
with ttl.timer as now:
    assert_type(now, float)
typed: TTLCache[str, int] = TTLCache(10, 60)

# datetime timers with timedelta ttls, as the runtime takes them
sessions = TTLCache[str, dict[str, int]](10_000, ttl=timedelta(minutes=30), timer=datetime.now,
                                         max_bytes=8 * 1024 * 1024)
assert_type(sessions, TTLCache[str, dict[str, int], datetime, timedelta])
assert_type(sessions.ttl, timedelta)
assert_type(sessions.timer(), datetime)
sessions.expire(datetime.now())
sessions.expire(3.0)  # type: ignore[arg-type]
TTLCache[str, int](10, ttl=timedelta(minutes=1))  # type: ignore[call-overload]
TTLCache[str, int](10, ttl=60, timer=datetime.now)  # type: ignore[arg-type]


def deadline(key: str, value: int, now: datetime) -> datetime:
    return now + timedelta(seconds=value)


tlru = TLRUCache(10, deadline, datetime.now)
assert_type(tlru, TLRUCache[str, int, datetime])
assert_type(tlru.ttu, Callable[[str, int, datetime], datetime])
TLRUCache(10, deadline)  # type: ignore[arg-type]
