"""mypy --strict over memleash.Budget (make typecheck): the budget's properties, every cache
and memoizing decorator taking budget=, the memory follower."""

from typing import Optional, assert_type

import memleash
from memleash import Budget, FIFOCache, LRUCache, MemoryFollower, RRCache, TLRUCache, TTLCache
from memleash.budget import MemoryReading

shared = Budget(64 * 1024 * 1024, name="service")
assert_type(shared.maxbytes, int)
assert_type(shared.effective_maxbytes, int)
assert_type(shared.currbytes, int)
assert_type(shared.evictions, int)
assert_type(shared.pressure_evictions, int)
assert_type(shared.name, str | None)
Budget("64 MiB")  # type: ignore[arg-type]
Budget(10, "name")  # type: ignore[call-arg]

responses = LRUCache[str, bytes](100_000, budget=shared)
assert_type(responses.budget, memleash._core.Budget | None)
FIFOCache[str, int](10, budget=shared)
RRCache[str, int](10, choice=min, budget=shared)
TTLCache[str, int](10, ttl=60, budget=shared)
TLRUCache[str, int](10, ttu=lambda k, v, now: now + 1, budget=shared)
LRUCache[str, int](10, budget=1024)  # type: ignore[arg-type]


@memleash.lru_cache(maxsize=None, budget=shared)
def square(n: int) -> int:
    return n * n


assert_type(square(3), int)


@memleash.func.ttl_cache(maxsize=None, ttl=60, budget=shared)
def negate(n: int) -> int:
    return -n


assert_type(negate(3), int)


class Basket:
    @memleash.method_cache(maxsize=16, budget=shared)
    def total(self, n: int) -> int:
        return n


assert_type(Basket().total(2), int)

follower = shared.follow_memory(limit=512 * 1024 * 1024, headroom=0.2, floor=1024, interval=5.0)
assert_type(follower, MemoryFollower)
assert_type(follower.check(), Optional[MemoryReading])
assert_type(follower.floor_hits, int)
assert_type(shared.follower, Optional[MemoryFollower])
shared.stop_following()
