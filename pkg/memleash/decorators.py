"""Memoizing decorators whose hit path runs in C.

- ``lru_cache`` and ``cache``: drop-ins for ``functools.lru_cache`` / ``functools.cache``
  (same keys, ``cache_info()``, ``cache_clear()``, ``cache_parameters()``), over a
  ``memleash.LRUCache`` that can also take a byte budget (``max_bytes=``).
- ``cached`` and ``cachedmethod``: drop-ins for ``cachetools.cached`` /
  ``cachetools.cachedmethod`` (same arguments, wrapper attributes and semantics).

The wrapper is ``memleash._core._CachedFunction``: a call builds the key, probes the cache
and returns the stored value without running any Python code of ours. This module only
assembles wrappers and, for cachetools' ``lock`` and ``condition`` variants, supplies the
miss handling ("loaders") that needs a lock held across Python calls.
"""

from __future__ import annotations

import functools
import math
import threading
import types
import weakref
from collections import namedtuple
from collections.abc import Callable, MutableMapping
from typing import Any, Optional, TypeVar

from . import _core
from .caches import Cache, LRUCache, TTLCache
from .keys import hashkey, methodkey, typedmethodkey

__all__ = ["CacheInfo", "acached", "cache", "cached", "cachedmethod", "lru_cache",
           "method_cache"]

_F = TypeVar("_F", bound=Callable[..., Any])


class CacheInfo(namedtuple("CacheInfo", "hits misses maxsize currsize")):
    """``cache_info()`` of ``cached(..., info=True)``: as ``cachetools.CacheInfo``."""

    __slots__ = ()

    @classmethod
    def _make_info(cls, cache: Any, hits: int, misses: int) -> "CacheInfo":
        if isinstance(cache, Cache):
            return cls(hits, misses, cache.maxsize, cache.currsize)
        return cls(hits, misses, None, len(cache))


def _label(flavour: str, func: Any) -> str:
    """The name a decorator's cache has in memleash.report()."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None) or repr(func)
    return f"{flavour}({module}.{qualname})" if module else f"{flavour}({qualname})"


# ---------------------------------------------------------------------------------------
# functools flavour

def _functools_info(maxsize: Optional[int], cache: Any, hits: int, misses: int) -> Any:
    return functools._CacheInfo(hits, misses, maxsize,   # type: ignore[attr-defined]
                                0 if cache is None else len(cache))


def _functools_wrapper(func: Any, cache: Any, maxsize: Optional[int], typed: bool,
                       skip_self: bool = False) -> Any:
    """A wrapper with functools' keys and cache_info(); cache None: maxsize=0, no caching
    (every call a miss). skip_self: the key leaves out the first argument."""
    wrapper = _core._CachedFunction(func, cache, typed=typed, uncached=cache is None,
                                    keep_existing=True, skip_self=skip_self,
                                    info=functools.partial(_functools_info, maxsize))
    functools.update_wrapper(wrapper, func)
    return wrapper


def _lru_wrapper(func: Any, maxsize: Optional[int], typed: bool,
                 max_bytes: Optional[int], budget: Any = None) -> Any:
    cache = None if maxsize == 0 else LRUCache(
        math.inf if maxsize is None else maxsize, max_bytes=max_bytes,
        name=_label("lru_cache", func), budget=budget)
    wrapper = _functools_wrapper(func, cache, maxsize, typed)
    wrapper.cache_parameters = lambda: {"maxsize": maxsize, "typed": typed}
    return wrapper


def lru_cache(maxsize: Any = 128, typed: bool = False, *,
              max_bytes: Optional[int] = None, budget: Any = None) -> Any:
    """Least-recently-used cache decorator, as ``functools.lru_cache``.

    ``maxsize=None`` is unbounded in entries (``max_bytes`` still bounds the bytes),
    ``maxsize=0`` caches nothing. ``typed=True`` caches arguments of different types
    apart. ``max_bytes`` bounds the accounted bytes of the results and their keys; a
    result larger than the budget alone is returned without being cached. ``budget``: a
    ``memleash.Budget`` the cache shares with other caches. The decorated function may
    run more than once for one key when threads race on it (as with functools); a value
    stored meanwhile is kept, not overwritten.
    """
    if isinstance(maxsize, int):
        if maxsize < 0:
            maxsize = 0
    elif callable(maxsize) and isinstance(typed, bool):
        return _lru_wrapper(maxsize, 128, typed, max_bytes, budget)   # bare @lru_cache
    elif maxsize is not None:
        raise TypeError("Expected first argument to be an integer, a callable, or None")

    def decorating_function(user_function: _F) -> _F:
        return _lru_wrapper(user_function, maxsize, typed, max_bytes, budget)   # type: ignore[no-any-return]

    return decorating_function


def cache(user_function: _F, /) -> _F:
    """Simple unbounded cache, as ``functools.cache``: ``lru_cache(maxsize=None)``."""
    return lru_cache(maxsize=None)(user_function)   # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------
# cachetools flavour

class _Loader:
    """What a loader knows: the function, and the cache, lock and condition, or (with
    ``getters``) functions that give them (a cachedmethod's, asked anew every time)."""

    __slots__ = ("func", "cache", "lock", "cond", "getters")

    def __init__(self, func: Any, cache: Any, lock: Any, cond: Any, getters: bool) -> None:
        self.func, self.cache, self.lock, self.cond = func, cache, lock, cond
        self.getters = getters

    def current(self) -> tuple[Any, Any, Any]:
        if self.getters:
            return (self.cache(), self.lock() if self.lock else None,
                    self.cond() if self.cond else None)
        return self.cache, self.lock, self.cond


class _LockedLoader(_Loader):
    """cachetools' miss with ``lock``: call unlocked, then keep the first value stored."""

    __slots__ = ()

    def __call__(self, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        value = self.func(*args, **kwargs)
        cache, lock, _ = self.current()
        with lock:
            try:
                return cache.setdefault(key, value), False
            except ValueError:
                return value, False          # too large to cache


class _ConditionLoader(_Loader):
    """cachetools' ``condition`` variant: while one call computes a key, calls for the
    same key wait, then read what it stored. One call computes at a time per key.

    A call that needs the key it is computing itself (same thread) would wait forever
    (cachetools hangs); here it raises RuntimeError.
    """

    __slots__ = ("pending",)

    def __init__(self, func: Any, cache: Any, lock: Any, cond: Any, getters: bool) -> None:
        super().__init__(func, cache, lock, cond, getters)
        self.pending: dict[Any, int] = {}     # key -> the computing thread's ident

    def __call__(self, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cache, lock, cond = self.current()
        me = threading.get_ident()
        with lock:
            while key in self.pending:
                if self.pending[key] == me:
                    raise RuntimeError(
                        "recursive call with the same key while computing it "
                        "(cached with condition= would wait for itself forever)")
                cond.wait()
            try:
                return cache[key], True
            except KeyError:
                self.pending[key] = me
        try:
            value = self.func(*args, **kwargs)
            with lock:
                try:
                    cache[key] = value
                except ValueError:
                    pass                     # too large to cache
                return value, False
        finally:
            with lock:
                del self.pending[key]
                cond.notify_all()


def _make_cached(func: Any, cache: Any, key: Any, lock: Any, condition: Any, info: bool,
                 *, getters: bool = False, unlocked_hits: bool = False) -> Any:
    """The wrapper cachetools' _wrapper would make, as a _CachedFunction. With
    ``getters``, cache, lock and condition are zero-argument functions giving them. With
    ``unlocked_hits`` (a memleash cache, whose operations are atomic), a condition
    variant looks up without the lock and only its misses coordinate (memleash.func)."""
    make_info = CacheInfo._make_info if info else None
    kw: dict[str, Any] = {"getters": getters, "info": make_info, "condition": condition}
    if condition is not None:
        lock = lock if lock is not None else condition
        kw.update(loader=_ConditionLoader(func, cache, lock, condition, getters),
                  loader_only=not unlocked_hits, lock_lookup=not unlocked_hits, lock=lock)
    elif lock is not None:
        kw.update(loader=_LockedLoader(func, cache, lock, None, getters), lock=lock)
    return _core._CachedFunction(func, cache, key, **kw)


def cached(cache: MutableMapping[Any, Any], key: Callable[..., Any] = hashkey,
           lock: Any = None, condition: Any = None, info: bool = False) -> Callable[[_F], _F]:
    """Decorator to wrap a function with a memoizing callable that saves results in a
    cache, as ``cachetools.cached``.

    With ``lock`` every look-up runs under it and the function runs unlocked, the first
    value stored winning; with ``condition``, concurrent calls for one missing key run
    the function once. A ``ValueError`` while storing means "not cached".
    """
    if cache is None:   # unsupported since cachetools 8.0.0
        raise TypeError("cache must not be None")

    def decorator(func: _F) -> _F:
        wrapper = _make_cached(func, cache, key, lock, condition, info)
        functools.update_wrapper(wrapper, func)
        return wrapper   # type: ignore[no-any-return]

    return decorator


def cachedmethod(cache: Callable[[Any], MutableMapping[Any, Any]],
                 key: Callable[..., Any] = methodkey, lock: Any = None,
                 condition: Any = None, info: bool = False) -> Callable[[_F], Any]:
    """Decorator to wrap a method with a memoizing callable that saves results in a
    cache, as ``cachetools.cachedmethod``: ``cache``, ``lock`` and ``condition`` are
    callables of ``self``, asked whenever they are needed."""
    if not callable(cache):
        raise TypeError("cache must be callable")

    def decorator(method: _F) -> Any:
        def make(obj: Any, descriptor: Any) -> Any:
            # methodkey / typedmethodkey bound as methods are built in C (self left out)
            bound_key = (types.MethodType(key, obj) if key in (methodkey, typedmethodkey)
                         else functools.partial(key, obj))
            # cache(obj), lock(obj), condition(obj), asked anew whenever needed (partial
            # is C: a hit runs no Python frame of ours)
            wrapper = _make_cached(
                types.MethodType(method, obj), functools.partial(cache, obj), bound_key,
                functools.partial(lock, obj) if lock is not None else None,
                functools.partial(condition, obj) if condition is not None else None, info,
                getters=True)
            functools.update_wrapper(wrapper, method)
            # pickled and deep-copied as the descriptor's binding to (a copy of) obj
            wrapper.__dict__.update(
                _ml_reduce=(descriptor.__get__, (obj,)),
                _ml_repr=f"<cachedmethod {method!r} of {object.__repr__(obj)}>",
                __deepcopy__=functools.partial(_deepcopy_bound, descriptor, obj))
            return wrapper

        return _MethodDescriptor(method, make)

    return decorator


def _deepcopy_bound(descriptor: Any, obj: Any, memo: dict[int, Any]) -> Any:
    import copy

    return descriptor.__get__(copy.deepcopy(obj, memo))


class _MethodDescriptor:
    """The class attribute ``cachedmethod`` makes: on first access through an instance it
    stores that instance's wrapper in the instance's ``__dict__`` under its own name."""

    def __init__(self, method: Any, make: Any) -> None:
        functools.update_wrapper(self, method)
        self._make = make
        self._owner: Any = None
        self._name: Optional[str] = None
        self._unbound: Optional[_Unbound] = None

    def __set_name__(self, owner: type, name: str) -> None:
        if self._name is None:
            self._owner, self._name = owner, name
        elif name != self._name:
            raise TypeError(
                "Cannot assign the same descriptor to two different names "
                f"({self._name!r} and {name!r}).")

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        name = self._name
        if name is None:
            if isinstance(obj, type):   # wrapped by classmethod (no __set_name__ before 3.13)
                self()
            raise TypeError("Cannot use descriptor instance without calling __set_name__ on it")
        if obj is None:
            if self._unbound is None:
                self._unbound = _Unbound(self)
            return self._unbound
        found = next((cls.__dict__[name] for cls in type(obj).__mro__ if name in cls.__dict__),
                     None)
        try:
            instance_dict = obj.__dict__
        except AttributeError:
            raise TypeError(f"No '__dict__' attribute on {type(obj).__name__!r} instance "
                            f"to cache {name!r}") from None
        try:
            if found is self:
                # the wrapper replaces the descriptor in the instance dict; if another
                # thread got there first, its wrapper is kept
                wrapper = instance_dict.get(name)
                if wrapper is None:
                    wrapper = instance_dict.setdefault(name, self._make(obj, self))
                return wrapper
            # through super(): a wrapper of its own per descriptor, kept apart
            wrappers = instance_dict.setdefault(_WRAPPERS, {})
        except TypeError:
            raise TypeError(f"The '__dict__' attribute on {type(obj).__name__!r} instance "
                            f"does not support item assignment for caching {name!r}") from None
        wrapper = wrappers.get(self)
        if wrapper is None:
            wrapper = wrappers.setdefault(self, self._make(obj, self))
        return wrapper

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "Cannot call @cachedmethod descriptor directly: @cachedmethod must be the "
            "outermost decorator, and decorating class methods, static methods or "
            "properties is not supported")

    def __reduce__(self) -> Any:
        return (_lookup_descriptor, (self._owner, self._name))


#: where an instance keeps the wrappers reached through super() (cachetools' name, so code
#: and tests that look there find them)
_WRAPPERS = "__cachetools_cachedmethods"


def _lookup_descriptor(owner: type, name: str) -> Any:
    return owner.__dict__[name]


class _Unbound:
    """What ``Class.method`` gives for a cachedmethod: ``Class.method(obj, *args)`` calls
    obj's wrapper."""

    def __init__(self, descriptor: _MethodDescriptor) -> None:
        functools.update_wrapper(self, descriptor.__wrapped__)   # type: ignore[attr-defined]
        self._descriptor = descriptor

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        return self if obj is None else self._descriptor.__get__(obj)

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        if args:
            obj, args = args[0], args[1:]
        else:   # the receiver by keyword, as a plain function allows
            receiver = self._receiver_name()
            if receiver is None or receiver not in kwargs:
                raise TypeError("Cannot call @cachedmethod through the class without an instance")
            obj = kwargs.pop(receiver)
        return self._descriptor.__get__(obj)(*args, **kwargs)

    def _receiver_name(self) -> Optional[str]:
        import inspect

        try:
            first = next(iter(inspect.signature(self.__wrapped__).parameters.values()))   # type: ignore[attr-defined]
        except (ValueError, TypeError, StopIteration):
            return None
        return first.name if first.kind is first.POSITIONAL_OR_KEYWORD else None

    def __reduce__(self) -> Any:
        return (self._descriptor.__get__, (None,))

    def __repr__(self) -> str:
        return f"<cachedmethod {self.__wrapped__!r}>"   # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------
# method_cache: functools.lru_cache for methods, without the leak (flake8-bugbear B019)

class method_cache:   # noqa: N801 (a decorator, named as functools' are)
    """``lru_cache`` for methods, without its leak: each instance gets a cache of its own,
    which goes when the instance goes.

    ``functools.lru_cache`` on a method keeps every ``self`` it has seen alive for as
    long as the class lives (the shared cache's keys hold them: flake8-bugbear's B019).
    Here the instance is never part of a key and never held: its cache is found through
    its identity, and a weak reference's callback drops it when the instance dies. The
    instance needs no ``__dict__`` (only weak-referenceability: ``__weakref__`` in
    ``__slots__``).

    ``method_cache(maxsize=128, typed=False, *, ttl=None, max_bytes=None, budget=None)``,
    or bare ``@method_cache``: per instance at most ``maxsize`` results (``None``:
    unbounded), each for ``ttl`` seconds if given, within ``max_bytes`` accounted bytes if
    given; with ``budget``, every instance's cache shares that ``memleash.Budget`` (one
    limit for all the instances together, the results accessed longest ago going first).
    ``obj.method.cache_info()`` / ``cache_clear()`` act on one instance's cache;
    ``Class.method.cache_info()`` sums over the live instances and
    ``Class.method.cache_clear()`` clears them all. The hit itself runs in C.
    """

    def __init__(self, maxsize: Any = 128, typed: bool = False, *, ttl: Optional[float] = None,
                 max_bytes: Optional[int] = None, budget: Any = None) -> None:
        if callable(maxsize) and isinstance(typed, bool):   # bare @method_cache
            self._configure(128, typed, ttl, max_bytes, budget)
            self._bind(maxsize)
            return
        if maxsize is not None and (not isinstance(maxsize, int) or maxsize < 0):
            raise TypeError("maxsize must be a non-negative integer or None")
        self._configure(maxsize, typed, ttl, max_bytes, budget)
        self._method: Any = None

    def _configure(self, maxsize: Optional[int], typed: bool, ttl: Optional[float],
                   max_bytes: Optional[int], budget: Any = None) -> None:
        self._maxsize, self._typed, self._ttl, self._max_bytes = maxsize, typed, ttl, max_bytes
        self._budget = budget
        self._wrappers: dict[int, tuple[Any, Any]] = {}   # id(obj) -> (weakref, wrapper)
        self._lock = threading.Lock()

    def _bind(self, method: Any) -> None:
        self._method = method
        functools.update_wrapper(self, method)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._method is None:   # @method_cache(...) applied to the method
            (method,) = args
            self._bind(method)
            return self
        raise TypeError("a method_cache is called through an instance: obj.method(...)")

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        entry = self._wrappers.get(id(obj))
        if entry is None or entry[0]() is not obj:
            entry = self._new_entry(obj)
        return types.MethodType(entry[1], obj)

    def _new_entry(self, obj: Any) -> tuple[Any, Any]:
        key = id(obj)
        wrappers = self._wrappers

        def forget(ref: Any, key: int = key) -> None:
            entry = wrappers.get(key)
            if entry is not None and entry[0] is ref:
                del wrappers[key]

        try:
            ref = weakref.ref(obj, forget)
        except TypeError:
            raise TypeError(f"method_cache needs weak references to {type(obj).__name__!r} "
                            "instances: add '__weakref__' to its __slots__") from None
        bound = math.inf if self._maxsize is None else self._maxsize
        name = _label("method_cache", self._method)
        if self._maxsize == 0:
            cache: Any = None                 # nothing cached: every call a miss
        elif self._ttl is None:
            cache = LRUCache(bound, max_bytes=self._max_bytes, name=name, budget=self._budget)
        else:
            cache = TTLCache(bound, self._ttl, max_bytes=self._max_bytes, name=name,
                             budget=self._budget)
        wrapper = _functools_wrapper(self._method, cache, self._maxsize, self._typed,
                                     skip_self=True)
        with self._lock:   # two threads binding one new instance: the first entry wins
            entry = wrappers.get(key)
            if entry is None or entry[0]() is not obj:
                entry = wrappers[key] = (ref, wrapper)
        return entry

    def cache_info(self) -> Any:
        """The statistics of every live instance's cache, summed."""
        hits = misses = currsize = 0
        for ref, wrapper in list(self._wrappers.values()):
            info = wrapper.cache_info()
            hits, misses, currsize = hits + info.hits, misses + info.misses, currsize + info.currsize
        return functools._CacheInfo(hits, misses, self._maxsize, currsize)   # type: ignore[attr-defined]

    def cache_clear(self) -> None:
        """Clears every live instance's cache."""
        for ref, wrapper in list(self._wrappers.values()):
            wrapper.cache_clear()

    def cache_parameters(self) -> dict[str, Any]:
        return {"maxsize": self._maxsize, "typed": self._typed}


# ---------------------------------------------------------------------------------------
# acached: coroutine functions, one computation per missing key

def acached(cache: MutableMapping[Any, Any], key: Callable[..., Any] = hashkey, *,
            lock: Any = None, info: bool = False) -> Callable[[_F], _F]:
    """``cached`` for coroutine functions, with single flight per key.

    Concurrent awaits of one missing key run the coroutine once; the others wait for its
    result. If the call computing it is cancelled, one of the waiters computes it
    instead. An exception reaches every waiter of that computation and is not cached.
    ``lock`` (a ``threading`` lock, for a cache shared with other threads) is held around
    each cache access, never across an ``await``. ``info=True`` adds ``cache_info()``.
    """
    import asyncio

    if cache is None:
        raise TypeError("cache must not be None")

    def decorator(func: _F) -> _F:
        pending: dict[Any, asyncio.Future[Any]] = {}
        counts = [0, 0]   # hits, misses
        guard = lock if lock is not None else _NoLock()

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            k = key(*args, **kwargs)
            while True:
                with guard:
                    try:
                        value = cache[k]
                    except KeyError:
                        pass
                    else:
                        counts[0] += 1
                        return value
                leader = pending.get(k)
                if leader is None:
                    break
                try:
                    return await asyncio.shield(leader)
                except asyncio.CancelledError:
                    if not leader.cancelled():
                        raise            # this waiter itself was cancelled
                    # the computing call was cancelled: look again, maybe compute
            counts[1] += 1
            future = asyncio.get_running_loop().create_future()
            pending[k] = future
            try:
                value = await func(*args, **kwargs)
            except BaseException as exc:
                del pending[k]
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
                    future.exception()   # retrieved: no "never retrieved" warning
                raise
            with guard:
                try:
                    cache[k] = value
                except ValueError:
                    pass                 # too large to cache
            del pending[k]
            future.set_result(value)
            return value

        def cache_clear() -> None:
            with guard:
                cache.clear()
                counts[0] = counts[1] = 0

        functools.update_wrapper(wrapper, func)
        wrapper.cache = cache                     # type: ignore[attr-defined]
        wrapper.cache_key = key                   # type: ignore[attr-defined]
        wrapper.cache_lock = lock                 # type: ignore[attr-defined]
        wrapper.cache_clear = cache_clear         # type: ignore[attr-defined]
        if info:
            def cache_info() -> CacheInfo:
                with guard:
                    return CacheInfo._make_info(cache, counts[0], counts[1])

            wrapper.cache_info = cache_info       # type: ignore[attr-defined]
        return wrapper   # type: ignore[return-value]

    return decorator


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
