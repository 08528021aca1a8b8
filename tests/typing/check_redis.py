"""mypy --strict over memleash.redis and the tiered caches' types (make typecheck)."""

import pickle
import threading
from typing import Any, assert_type

import redis
import redis.asyncio
from redis.cache import CacheEntry, CacheInterface, CacheKey

import memleash
from memleash.redis import ClientCache, ClientCacheStore
from memleash.tiered import JSONSerializer, redis_key

cc = ClientCache(maxsize=1000, max_bytes=1 << 20, name="csc")
client = redis.Redis(protocol=3, cache=cc)
iface: CacheInterface = cc
assert_type(cc.get(CacheKey("GET", ("k",))), CacheEntry | None)
assert_type(cc.currbytes, int)
assert_type(cc.maxbytes, int | None)
assert_type(cc.store, ClientCacheStore)
ClientCache(max_bytes="1")  # type: ignore[arg-type]

tc = memleash.TieredCache[str, dict[str, int]](memleash.LRUCache(100), redis.Redis(),
                                               namespace="users", ttl=60)
assert_type(tc["a"], dict[str, int])
assert_type(tc.get("a"), dict[str, int] | None)
assert_type(tc.pop("a", None), dict[str, int] | None)
assert_type(tc.tracking, bool)
assert_type(tc.redis_key("a"), bytes)
tc["a"] = "text"  # type: ignore[assignment]
memleash.TieredCache(memleash.LRUCache(1), redis.Redis())  # type: ignore[call-arg]
memleash.TieredCache[str, Any](memleash.LRUCache(1), redis.Redis(), namespace="n",
                               serializer=JSONSerializer())
memleash.TieredCache[str, Any](memleash.LRUCache(1), redis.Redis(), namespace="n",
                               serializer=pickle)
assert_type(redis_key("n", ("a", 1)), bytes)


@memleash.cached(tc, condition=threading.Condition())
def load(uid: str) -> dict[str, int]:
    return {"uid": 1}


assert_type(load("a"), dict[str, int])

atc = memleash.AsyncTieredCache[int, str](memleash.LRUCache(100), redis.asyncio.Redis(),
                                          namespace="names")


@memleash.acached(atc, info=True)
async def name(uid: int) -> str:
    return str(uid)


async def use() -> None:
    assert_type(await atc.aget(1), str)
    assert_type(await atc.get(1), str | None)
    assert_type(await name(1), str)
    assert_type(name.cache_info().hits, int)
    await name.cache_clear()
    async for key in atc.akeys():
        assert_type(key, int)
    await atc.aset(1, 2)  # type: ignore[arg-type]
    memleash.acached(atc, lock=threading.Lock())  # type: ignore[call-overload]
