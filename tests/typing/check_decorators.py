"""mypy --strict over the decorators' types (make typecheck): wrapped signatures kept,
methods bound, each flavour's attributes present, and only those."""

import functools
import threading
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, assert_type

import memleash
from memleash import CacheInfo, LRUCache, acached, cache, cached, cachedmethod, func, lru_cache, method_cache


@lru_cache(maxsize=10_000, max_bytes=32 * 1024 * 1024)
def price(sku: str, currency: str = "EUR") -> dict[str, str]:
    return {"sku": sku, "currency": currency}


assert_type(price("A1"), dict[str, str])
assert_type(price("A1", currency="USD"), dict[str, str])
assert_type(price.cache_info(), functools._CacheInfo)
assert_type(price.cache_parameters()["maxsize"], int | None)
assert_type(price.__wrapped__("A1"), dict[str, str])
price.cache_clear()
price(42)  # type: ignore[arg-type]
price("A1", "EUR", "extra")  # type: ignore[call-arg]


@memleash.lru_cache
def bare(n: int) -> int:
    return n


@cache
def unbounded(n: int) -> str:
    return str(n)


assert_type(bare(1), int)
assert_type(unbounded(1), str)
assert_type(unbounded.cache_info().hits, int)


class Basket:
    def __init__(self) -> None:
        self.items: LRUCache[Any, Any] = LRUCache(10)

    @method_cache(maxsize=256)
    def total(self, currency: str) -> int:
        return 0

    @method_cache
    def count(self) -> int:
        return 0

    @lru_cache
    def weight(self, unit: str) -> float:
        return 0.0

    @cachedmethod(lambda self: self.items, info=True)
    def label(self, lang: str) -> str:
        return lang

    @cachedmethod(lambda self: self.items)
    def plain(self, lang: str) -> str:
        return lang


basket = Basket()
assert_type(basket.total("EUR"), int)
assert_type(basket.count(), int)
assert_type(basket.weight("kg"), float)
assert_type(basket.label("en"), str)
assert_type(basket.label.cache_info(), CacheInfo)
assert_type(Basket.total.cache_info(), functools._CacheInfo)
assert_type(Basket.label(basket, "en"), str)
basket.total(3)  # type: ignore[arg-type]
basket.plain.cache_info()  # type: ignore[attr-defined]


@cached(LRUCache[Any, Any](10), info=True)
def square(n: int) -> int:
    return n * n


@cached(LRUCache[Any, Any](10), lock=threading.Lock())
def cube(n: int) -> int:
    return n ** 3


assert_type(square(2), int)
assert_type(square.cache_info(), CacheInfo)
assert_type(cube.cache_lock, AbstractContextManager[Any] | None)
cube.cache_info()  # type: ignore[attr-defined]


@acached(LRUCache[Any, Any](10), info=True)
async def fetch(url: str) -> bytes:
    return b""


async def use() -> None:
    assert_type(await fetch("/"), bytes)
    assert_type(fetch.cache_info(), CacheInfo)
    await fetch(1)  # type: ignore[arg-type]


@func.ttl_cache(maxsize=32, ttl=timedelta(seconds=5), timer=datetime.now)
def lookup(name: str) -> int:
    return 0


@func.lfu_cache
def bare_lfu(name: str) -> bytes:
    return b""


assert_type(lookup("a"), int)
assert_type(lookup.cache_info(), CacheInfo)
assert_type(lookup.cache_parameters()["typed"], bool)
assert_type(bare_lfu("a"), bytes)
func.ttl_cache(maxsize=32, ttl=timedelta(seconds=5))  # type: ignore[call-overload]
