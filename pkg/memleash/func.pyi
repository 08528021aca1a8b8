# Types of cachetools.func's decorators over memleash's caches: the wrapper keeps the
# function's parameters and result, and has cachetools' attributes (cache, cache_key,
# cache_lock, cache_condition), cache_info(), cache_clear() and cache_parameters().

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, overload, type_check_only

from typing_extensions import Concatenate, ParamSpec, Self

from ._core import Budget
from .decorators import _CacheParameters, _cached_wrapper_info

__all__ = ["fifo_cache", "lfu_cache", "lru_cache", "rr_cache", "ttl_cache"]

_P = ParamSpec("_P")
_P2 = ParamSpec("_P2")
_R = TypeVar("_R")
_R2 = TypeVar("_R2")
_S = TypeVar("_S")

@type_check_only
class _func_wrapper(_cached_wrapper_info[_P, _R], Generic[_P, _R]):
    def cache_parameters(self) -> _CacheParameters: ...
    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None, /) -> Self: ...
    @overload
    def __get__(
        self: _func_wrapper[Concatenate[_S, _P2], _R2], instance: _S, owner: type[Any] | None = None, /
    ) -> _func_wrapper[_P2, _R2]: ...

@overload
def fifo_cache(maxsize: int | None = 128, typed: bool = False, *, budget: Budget | None = None) -> Callable[[Callable[_P, _R]], _func_wrapper[_P, _R]]: ...
@overload
def fifo_cache(maxsize: Callable[_P, _R], typed: bool = False, *, budget: Budget | None = None) -> _func_wrapper[_P, _R]: ...
@overload
def lfu_cache(maxsize: int | None = 128, typed: bool = False, *, budget: Budget | None = None) -> Callable[[Callable[_P, _R]], _func_wrapper[_P, _R]]: ...
@overload
def lfu_cache(maxsize: Callable[_P, _R], typed: bool = False, *, budget: Budget | None = None) -> _func_wrapper[_P, _R]: ...
@overload
def lru_cache(maxsize: int | None = 128, typed: bool = False, *, budget: Budget | None = None) -> Callable[[Callable[_P, _R]], _func_wrapper[_P, _R]]: ...
@overload
def lru_cache(maxsize: Callable[_P, _R], typed: bool = False, *, budget: Budget | None = None) -> _func_wrapper[_P, _R]: ...
@overload
def rr_cache(
    maxsize: int | None = 128, choice: Callable[[Sequence[Any]], Any] = ..., typed: bool = False,
    *, budget: Budget | None = None
) -> Callable[[Callable[_P, _R]], _func_wrapper[_P, _R]]: ...
@overload
def rr_cache(
    maxsize: Callable[_P, _R], choice: Callable[[Sequence[Any]], Any] = ..., typed: bool = False,
    *, budget: Budget | None = None
) -> _func_wrapper[_P, _R]: ...
@overload
def ttl_cache(
    maxsize: int | None = 128, ttl: float = 600, timer: Callable[[], float] = ..., typed: bool = False,
    *, budget: Budget | None = None
) -> Callable[[Callable[_P, _R]], _func_wrapper[_P, _R]]: ...
@overload
def ttl_cache(
    maxsize: int | None, ttl: timedelta, timer: Callable[[], datetime], typed: bool = False,
    *, budget: Budget | None = None
) -> Callable[[Callable[_P, _R]], _func_wrapper[_P, _R]]: ...
@overload
def ttl_cache(
    maxsize: int | None = 128, *, ttl: timedelta, timer: Callable[[], datetime], typed: bool = False,
    budget: Budget | None = None
) -> Callable[[Callable[_P, _R]], _func_wrapper[_P, _R]]: ...
@overload
def ttl_cache(
    maxsize: Callable[_P, _R], ttl: float = 600, timer: Callable[[], float] = ..., typed: bool = False,
    *, budget: Budget | None = None
) -> _func_wrapper[_P, _R]: ...
