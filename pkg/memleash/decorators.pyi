# Types of the memoizing decorators. Every wrapper keeps the decorated function's
# parameters and result (ParamSpec), binds as a method does (self leaves the parameters),
# and has the attributes its flavour has at run time: functools' cache_info(),
# cache_clear() and cache_parameters() (the shape of typeshed's
# functools._lru_cache_wrapper); cachetools' cache, cache_key, cache_lock,
# cache_condition, cache_clear() and, with info=True, cache_info(). The wrapper classes
# here exist for the type checker only: at run time a wrapper is a
# memleash._core._CachedFunction (acached's: a coroutine function).

import functools
from collections.abc import Awaitable, Callable, Coroutine, Hashable, MutableMapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Generic, Literal, NamedTuple, Protocol, TypedDict, TypeVar, overload, type_check_only

from typing_extensions import Concatenate, ParamSpec, Self

__all__ = ["CacheInfo", "acached", "cache", "cached", "cachedmethod", "lru_cache",
           "method_cache"]

_P = ParamSpec("_P")
_P2 = ParamSpec("_P2")
_R = TypeVar("_R")
_R2 = TypeVar("_R2")
_S = TypeVar("_S")
_S2 = TypeVar("_S2")

class CacheInfo(NamedTuple):
    """``cache_info()`` of the cachetools flavour (``cached(..., info=True)``, ``func``)."""
    hits: int
    misses: int
    maxsize: float | None   # None for a cache that is not a memleash/cachetools Cache
    currsize: float

@type_check_only
class _CacheParameters(TypedDict):
    maxsize: int | None
    typed: bool

@type_check_only
class _Condition(Protocol):
    """What ``condition=`` needs: a ``threading.Condition`` or alike."""
    def __enter__(self) -> Any: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None, /,
    ) -> Any: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    def notify_all(self) -> None: ...

_KeyFunc = Callable[..., Hashable]

# ---- functools flavour: lru_cache, cache, method_cache ----------------------------------

@type_check_only
class _lru_cache_wrapper(Generic[_P, _R]):
    __wrapped__: Callable[_P, _R]
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    def cache_info(self) -> functools._CacheInfo: ...
    def cache_clear(self) -> None: ...
    def cache_parameters(self) -> _CacheParameters: ...
    def __copy__(self) -> Self: ...
    def __deepcopy__(self, memo: Any, /) -> Self: ...
    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None, /) -> Self: ...
    @overload
    def __get__(
        self: _lru_cache_wrapper[Concatenate[_S, _P2], _R2], instance: _S, owner: type[Any] | None = None, /
    ) -> _lru_cache_wrapper[_P2, _R2]: ...

@overload
def lru_cache(
    maxsize: int | None = 128, typed: bool = False, *, max_bytes: int | None = None
) -> Callable[[Callable[_P, _R]], _lru_cache_wrapper[_P, _R]]: ...
@overload
def lru_cache(maxsize: Callable[_P, _R], typed: bool = False) -> _lru_cache_wrapper[_P, _R]: ...
def cache(user_function: Callable[_P, _R], /) -> _lru_cache_wrapper[_P, _R]: ...

class method_cache(Generic[_S, _P, _R]):
    """``@method_cache`` / ``@method_cache(maxsize=128, typed=False, *, ttl=None,
    max_bytes=None)`` on a method: one cache per instance, kept in it. Called with
    arguments, ``method_cache`` returns the decorator (its ``__new__`` makes no instance)."""
    @overload
    def __new__(  # type: ignore[misc]
        cls,
        maxsize: int | None = 128,
        typed: bool = False,
        *,
        ttl: float | None = None,
        max_bytes: int | None = None,
    ) -> Callable[[Callable[Concatenate[_S2, _P2], _R2]], method_cache[_S2, _P2, _R2]]: ...
    @overload
    def __new__(
        cls,
        maxsize: Callable[Concatenate[_S2, _P2], _R2],
        typed: bool = False,
        *,
        ttl: float | None = None,
        max_bytes: int | None = None,
    ) -> method_cache[_S2, _P2, _R2]: ...
    def __call__(self, obj: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """``Class.method(obj, ...)``: the call through ``obj``'s cache."""
    @overload
    def __get__(self, obj: None, objtype: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(self, obj: _S, objtype: type[Any] | None = None) -> _lru_cache_wrapper[_P, _R]: ...
    def cache_info(self) -> functools._CacheInfo: ...
    def cache_clear(self) -> None: ...
    def cache_parameters(self) -> _CacheParameters: ...
    def __copy__(self) -> Self: ...
    def __deepcopy__(self, memo: dict[int, Any]) -> Self: ...

# ---- cachetools flavour: cached, cachedmethod ------------------------------------------

@type_check_only
class _cached_wrapper(Generic[_P, _R]):
    __wrapped__: Callable[_P, _R]
    @property
    def cache(self) -> MutableMapping[Any, Any]: ...
    @property
    def cache_key(self) -> _KeyFunc: ...
    @property
    def cache_lock(self) -> AbstractContextManager[Any] | None: ...
    @property
    def cache_condition(self) -> _Condition | None: ...
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    def cache_clear(self) -> None: ...
    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None, /) -> Self: ...
    @overload
    def __get__(
        self: _cached_wrapper[Concatenate[_S, _P2], _R2], instance: _S, owner: type[Any] | None = None, /
    ) -> _cached_wrapper[_P2, _R2]: ...

@type_check_only
class _cached_wrapper_info(_cached_wrapper[_P, _R]):
    def cache_info(self) -> CacheInfo: ...
    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None, /) -> Self: ...
    @overload
    def __get__(
        self: _cached_wrapper_info[Concatenate[_S, _P2], _R2], instance: _S, owner: type[Any] | None = None, /
    ) -> _cached_wrapper_info[_P2, _R2]: ...

@overload
def cached(
    cache: MutableMapping[Any, Any],
    key: _KeyFunc = ...,
    lock: AbstractContextManager[Any] | None = None,
    condition: _Condition | None = None,
    info: Literal[False] = False,
) -> Callable[[Callable[_P, _R]], _cached_wrapper[_P, _R]]: ...
@overload
def cached(
    cache: MutableMapping[Any, Any],
    key: _KeyFunc = ...,
    lock: AbstractContextManager[Any] | None = None,
    condition: _Condition | None = None,
    *,
    info: Literal[True],
) -> Callable[[Callable[_P, _R]], _cached_wrapper_info[_P, _R]]: ...

@type_check_only
class _cachedmethod(Generic[_S, _P, _R]):
    """What ``@cachedmethod(...)`` leaves on the class: through an instance, that
    instance's wrapper; through the class, ``Class.method(obj, *args)``."""
    __wrapped__: Callable[Concatenate[_S, _P], _R]
    def __set_name__(self, owner: type[Any], name: str) -> None: ...
    @overload
    def __get__(self, obj: None, objtype: type[Any] | None = None) -> Callable[Concatenate[_S, _P], _R]: ...
    @overload
    def __get__(self, obj: _S, objtype: type[Any] | None = None) -> _cached_wrapper[_P, _R]: ...

@type_check_only
class _cachedmethod_info(Generic[_S, _P, _R]):
    __wrapped__: Callable[Concatenate[_S, _P], _R]
    def __set_name__(self, owner: type[Any], name: str) -> None: ...
    @overload
    def __get__(self, obj: None, objtype: type[Any] | None = None) -> Callable[Concatenate[_S, _P], _R]: ...
    @overload
    def __get__(self, obj: _S, objtype: type[Any] | None = None) -> _cached_wrapper_info[_P, _R]: ...

@overload
def cachedmethod(
    cache: Callable[[Any], MutableMapping[Any, Any]],
    key: _KeyFunc = ...,
    lock: Callable[[Any], AbstractContextManager[Any]] | None = None,
    condition: Callable[[Any], _Condition] | None = None,
    info: Literal[False] = False,
) -> Callable[[Callable[Concatenate[_S, _P], _R]], _cachedmethod[_S, _P, _R]]: ...
@overload
def cachedmethod(
    cache: Callable[[Any], MutableMapping[Any, Any]],
    key: _KeyFunc = ...,
    lock: Callable[[Any], AbstractContextManager[Any]] | None = None,
    condition: Callable[[Any], _Condition] | None = None,
    *,
    info: Literal[True],
) -> Callable[[Callable[Concatenate[_S, _P], _R]], _cachedmethod_info[_S, _P, _R]]: ...

# ---- acached: coroutine functions ----------------------------------------------------

@type_check_only
class _acached_wrapper(Generic[_P, _R]):
    __wrapped__: Callable[_P, Awaitable[_R]]
    cache: MutableMapping[Any, Any]
    cache_key: _KeyFunc
    cache_lock: AbstractContextManager[Any] | None
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> Coroutine[Any, Any, _R]: ...
    def cache_clear(self) -> None: ...
    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None, /) -> Self: ...
    @overload
    def __get__(
        self: _acached_wrapper[Concatenate[_S, _P2], _R2], instance: _S, owner: type[Any] | None = None, /
    ) -> _acached_wrapper[_P2, _R2]: ...

@type_check_only
class _acached_wrapper_info(_acached_wrapper[_P, _R]):
    def cache_info(self) -> CacheInfo: ...
    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None, /) -> Self: ...
    @overload
    def __get__(
        self: _acached_wrapper_info[Concatenate[_S, _P2], _R2], instance: _S, owner: type[Any] | None = None, /
    ) -> _acached_wrapper_info[_P2, _R2]: ...

@type_check_only
class _AsyncCache(Protocol):
    """What ``acached`` awaits instead of a mapping (``memleash.AsyncTieredCache``)."""
    async def aget(self, key: Any, /) -> Any: ...
    async def aset(self, key: Any, value: Any, /) -> None: ...
    async def aclear(self) -> None: ...

@type_check_only
class _acached_async_wrapper(Generic[_P, _R]):
    """acached over an async cache: the same, with a cache_clear() to await."""
    __wrapped__: Callable[_P, Awaitable[_R]]
    cache: _AsyncCache
    cache_key: _KeyFunc
    cache_lock: None
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> Coroutine[Any, Any, _R]: ...
    def cache_clear(self) -> Coroutine[Any, Any, None]: ...
    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None, /) -> Self: ...
    @overload
    def __get__(
        self: _acached_async_wrapper[Concatenate[_S, _P2], _R2], instance: _S, owner: type[Any] | None = None, /
    ) -> _acached_async_wrapper[_P2, _R2]: ...

@type_check_only
class _acached_async_wrapper_info(_acached_async_wrapper[_P, _R]):
    def cache_info(self) -> CacheInfo: ...
    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None, /) -> Self: ...
    @overload
    def __get__(
        self: _acached_async_wrapper_info[Concatenate[_S, _P2], _R2], instance: _S, owner: type[Any] | None = None, /
    ) -> _acached_async_wrapper_info[_P2, _R2]: ...

@overload
def acached(
    cache: _AsyncCache,
    key: _KeyFunc = ...,
    *,
    lock: None = None,
    info: Literal[False] = False,
) -> Callable[[Callable[_P, Awaitable[_R]]], _acached_async_wrapper[_P, _R]]: ...
@overload
def acached(
    cache: _AsyncCache,
    key: _KeyFunc = ...,
    *,
    lock: None = None,
    info: Literal[True],
) -> Callable[[Callable[_P, Awaitable[_R]]], _acached_async_wrapper_info[_P, _R]]: ...
@overload
def acached(
    cache: MutableMapping[Any, Any],
    key: _KeyFunc = ...,
    *,
    lock: AbstractContextManager[Any] | None = None,
    info: Literal[False] = False,
) -> Callable[[Callable[_P, Awaitable[_R]]], _acached_wrapper[_P, _R]]: ...
@overload
def acached(
    cache: MutableMapping[Any, Any],
    key: _KeyFunc = ...,
    *,
    lock: AbstractContextManager[Any] | None = None,
    info: Literal[True],
) -> Callable[[Callable[_P, Awaitable[_R]]], _acached_wrapper_info[_P, _R]]: ...
