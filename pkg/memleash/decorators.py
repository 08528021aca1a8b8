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
        if not hasattr(cache, "__len__"):   # an async cache (acached): its own count
            return cls(hits, misses, None, getattr(cache, "currsize", 0))
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
                 max_bytes: Optional[int]) -> Any:
    cache = None if maxsize == 0 else LRUCache(
        math.inf if maxsize is None else maxsize, max_bytes=max_bytes,
        name=_label("lru_cache", func))
    wrapper = _functools_wrapper(func, cache, maxsize, typed)
    wrapper.cache_parameters = lambda: {"maxsize": maxsize, "typed": typed}
    return wrapper


def lru_cache(maxsize: Any = 128, typed: bool = False, *,
              max_bytes: Optional[int] = None) -> Any:
    """Least-recently-used cache decorator, as ``functools.lru_cache``.

    ``maxsize=None`` is unbounded in entries (``max_bytes`` still bounds the bytes),
    ``maxsize=0`` caches nothing. ``typed=True`` caches arguments of different types
    apart. ``max_bytes`` bounds the accounted bytes of the results and their keys; a
    result larger than the budget alone is returned without being cached. The
    decorated function may run more than once for one key when threads race on it
    (as with functools); a value stored meanwhile is kept, not overwritten.
    """
    if isinstance(maxsize, int):
        if maxsize < 0:
            maxsize = 0
    elif callable(maxsize) and isinstance(typed, bool):
        return _lru_wrapper(maxsize, 128, typed, max_bytes)   # bare @lru_cache
    elif maxsize is not None:
        raise TypeError("Expected first argument to be an integer, a callable, or None")

    def decorating_function(user_function: _F) -> _F:
        return _lru_wrapper(user_function, maxsize, typed, max_bytes)   # type: ignore[no-any-return]

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
    the function once. A ``ValueError`` while storing means "not cached". A cache whose
    class says its operations are atomic and thread-safe (``_ml_atomic = True``:
    ``memleash.TieredCache``) is looked up without the condition's lock; only misses
    coordinate.
    """
    if cache is None:   # unsupported since cachetools 8.0.0
        raise TypeError("cache must not be None")
    atomic = getattr(type(cache), "_ml_atomic", False) is True

    def decorator(func: _F) -> _F:
        wrapper = _make_cached(func, cache, key, lock, condition, info, unlocked_hits=atomic)
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


def _receiver_param(func: Any) -> Optional[str]:
    """The name of func's first parameter if the instance may be passed by it (``self``
    of ``Class.method(self=obj)``), else None."""
    import inspect

    try:
        first = next(iter(inspect.signature(func).parameters.values()))
    except (ValueError, TypeError, StopIteration):
        return None
    return first.name if first.kind is first.POSITIONAL_OR_KEYWORD else None


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
        return _receiver_param(self.__wrapped__)   # type: ignore[attr-defined]

    def __reduce__(self) -> Any:
        return (self._descriptor.__get__, (None,))

    def __repr__(self) -> str:
        return f"<cachedmethod {self.__wrapped__!r}>"   # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------
# method_cache: functools.lru_cache for methods, without the leak (flake8-bugbear B019)

#: where an instance keeps its method caches: an entry of its ``__dict__``, or a slot of
#: this name (a class with ``__slots__`` and no ``__dict__`` declares it)
METHOD_CACHE_SLOT = "__method_cache__"
#: where a class keeps the caches of its classmethods if METHOD_CACHE_SLOT is its
#: instances' slot (the class attribute of that name is then the slot's descriptor)
_CLASS_SLOT = "__method_cache_class__"
_HEAPTYPE = 1 << 9   # Py_TPFLAGS_HEAPTYPE: a class defined in Python (or a heap type of C)


def _dead_ref() -> Any:
    class _Gone:
        pass

    return weakref.ref(_Gone())   # the instance is gone at once: the ref gives None


#: the owner of a set of caches that belongs to no instance (unpickled, deep-copied)
_NOBODY = _dead_ref()
#: held while an instance gets its caches attached (reentrant: a collection during it can
#: run a finalizer that calls a method_cache of another instance)
_attach_lock = threading.RLock()


class _InstanceCaches(dict):   # type: ignore[type-arg]
    """What an instance keeps under ``__method_cache__``: each ``method_cache`` of its
    class -> that method's wrapper for this instance (its cache inside). Reachable only
    through the instance, so a result that refers back to the instance makes an ordinary
    garbage cycle.

    ``owner`` is a weak reference to the instance. ``copy.copy`` of the instance copies
    this object along with the rest of its ``__dict__`` (or slots): the copy sees that it
    is not the owner and starts caches of its own. ``deepcopy`` and ``pickle`` give an
    empty one that belongs to nobody.
    """

    __slots__ = ("owner",)

    def __reduce__(self) -> Any:
        return (_unowned_caches, ())

    def __copy__(self) -> "_InstanceCaches":
        return _unowned_caches()

    def __deepcopy__(self, memo: dict[int, Any]) -> "_InstanceCaches":
        return _unowned_caches()

    def __repr__(self) -> str:
        return f"<method caches: {', '.join(m.__qualname__ for m in list(self))}>"


def _unowned_caches() -> _InstanceCaches:
    caches = _InstanceCaches()
    caches.owner = _NOBODY
    return caches


def _class_slot(cls: type) -> str:
    """Where a class keeps its classmethods' caches: its own ``__method_cache__`` (found
    by the hit path's attribute read), unless that is the name of its instances' slot."""
    for c in cls.__mro__:
        if isinstance(c.__dict__.get(METHOD_CACHE_SLOT), types.MemberDescriptorType):
            return _CLASS_SLOT
    return METHOD_CACHE_SLOT


def _holds_caches(obj: Any) -> bool:
    """Whether a method_cache called directly (not through obj.method) takes obj as the
    instance: an instance of a class defined in Python, or such a class."""
    cls = obj if isinstance(obj, type) else type(obj)
    return bool(cls.__flags__ & _HEAPTYPE)


class method_cache:   # noqa: N801 (a decorator, named as functools' are)
    """``lru_cache`` for methods, without its leak: each instance gets a cache of its own,
    kept in the instance, which goes when the instance goes.

    ``functools.lru_cache`` on a method keeps every ``self`` it has seen alive for as
    long as the class lives (the shared cache's keys hold them: flake8-bugbear's B019).
    Here the instance is never part of a key, and its cache is reachable only through the
    instance (``obj.__method_cache__``), so even a result that refers back to the
    instance is collected with it. A class with ``__slots__`` and no ``__dict__``
    declares the slots ``'__method_cache__'`` and ``'__weakref__'``.

    ``method_cache(maxsize=128, typed=False, *, ttl=None, max_bytes=None)``, or bare
    ``@method_cache``: per instance at most ``maxsize`` results (``None``: unbounded),
    each for ``ttl`` seconds if given, within ``max_bytes`` accounted bytes if given.
    ``obj.method.cache_info()`` / ``cache_clear()`` act on one instance's cache;
    ``Class.method.cache_info()`` sums over the live instances and
    ``Class.method.cache_clear()`` clears them all. ``Class.method(obj, ...)``,
    ``@property`` and ``@classmethod`` over it work as with ``lru_cache`` (a class's
    cache is kept in the class). Called with anything else first (under
    ``@staticmethod``, say), it memoizes in one shared cache, as ``lru_cache`` does.
    The hit itself runs in C.
    """

    def __new__(cls, maxsize: Any = 128, typed: bool = False, *, ttl: Optional[float] = None,
                max_bytes: Optional[int] = None) -> Any:
        if ((callable(maxsize) or isinstance(maxsize, (classmethod, staticmethod)))
                and isinstance(typed, bool)):   # bare @method_cache
            return cls._decorate(maxsize, 128, typed, ttl, max_bytes)
        if maxsize is not None and (not isinstance(maxsize, int) or maxsize < 0):
            raise TypeError("maxsize must be a non-negative integer or None")
        probe = object.__new__(cls)
        probe._configure(maxsize, typed, ttl, max_bytes)
        probe._new_cache()   # a bad ttl or max_bytes raises here, not at the first call

        def decorating_function(method: _F) -> _F:
            return cls._decorate(method, maxsize, typed, ttl, max_bytes)   # type: ignore[no-any-return]

        return decorating_function

    @classmethod
    def _decorate(cls, method: Any, maxsize: Optional[int], typed: bool, ttl: Optional[float],
                  max_bytes: Optional[int]) -> "method_cache":
        if isinstance(method, (classmethod, staticmethod)):
            raise TypeError(f"@method_cache goes under @{type(method).__name__}, not over it")
        if not callable(method):
            raise TypeError(f"method_cache needs a function, not {type(method).__name__!r}")
        self = object.__new__(cls)
        self._configure(maxsize, typed, ttl, max_bytes)
        self._method = method
        functools.update_wrapper(self, method)
        self._name = _label("method_cache", method)
        self._info = functools.partial(_functools_info, maxsize)
        # what update_wrapper gives each instance's wrapper: one dict, shared by them all
        attrs = {name: getattr(method, name) for name in functools.WRAPPER_ASSIGNMENTS
                 if hasattr(method, name)}
        attrs.update(getattr(method, "__dict__", {}))
        attrs.update(__wrapped__=method, cache_parameters=self.cache_parameters)
        self._attrs = attrs
        self._live: dict[Any, None] = {}   # a weak reference to each instance's wrapper
        self._shared: Any = None           # the wrapper of the calls without an instance
        self._receiver: Optional[str] = None
        return self

    def _configure(self, maxsize: Optional[int], typed: bool, ttl: Optional[float],
                   max_bytes: Optional[int]) -> None:
        self._maxsize, self._typed, self._ttl, self._max_bytes = maxsize, typed, ttl, max_bytes
        self._name: Optional[str] = None

    def _new_cache(self) -> Any:
        bound = math.inf if self._maxsize is None else self._maxsize
        if self._maxsize == 0:
            return None                       # nothing cached: every call a miss
        if self._ttl is None:
            return LRUCache(bound, max_bytes=self._max_bytes, name=self._name)
        return TTLCache(bound, self._ttl, max_bytes=self._max_bytes, name=self._name)

    def _new_wrapper(self, skip_self: bool) -> Any:
        cache = self._new_cache()
        wrapper = _core._CachedFunction(self._method, cache, typed=self._typed,
                                        uncached=cache is None, keep_existing=True,
                                        skip_self=skip_self, info=self._info)
        wrapper.__dict__ = self._attrs
        return wrapper

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        """Class.method(obj, ...), and the calls through @property, @classmethod (from
        Python 3.13) and @staticmethod."""
        if args:
            receiver = args[0]
        else:   # the instance by keyword, as a plain function allows
            name = self._receiver_name()
            if name is None or name not in kwargs or not _holds_caches(kwargs[name]):
                return self._shared_wrapper()(**kwargs)
            receiver = kwargs.pop(name)
            args = (receiver,)
        if _holds_caches(receiver):
            return self._wrapper(receiver)(*args, **kwargs)
        return self._shared_wrapper()(*args, **kwargs)

    def __get__(self, obj: Any, objtype: Any = None, _bind: Any = types.MethodType) -> Any:
        if obj is None:
            return self
        try:   # the hit path (an ordinary attribute: a slot or a __dict__ entry)
            caches = obj.__method_cache__
            if caches.owner() is obj:
                return _bind(caches[self], obj)
        except (AttributeError, KeyError, TypeError):
            pass
        return _bind(self._slow_wrapper(obj), obj)

    def _wrapper(self, obj: Any) -> Any:
        """obj's wrapper of this method (its cache inside), attached on first use."""
        try:   # as __get__'s hit path
            caches = obj.__method_cache__
            if caches.owner() is obj:
                return caches[self]
        except (AttributeError, KeyError, TypeError):
            pass
        return self._slow_wrapper(obj)

    def _slow_wrapper(self, obj: Any, _get: Any = object.__getattribute__) -> Any:
        if isinstance(obj, type):   # a class (under @classmethod): its own attribute
            try:
                caches = _get(obj, _class_slot(obj))
                if caches.owner() is obj:
                    return caches[self]
            except (AttributeError, KeyError, TypeError):
                pass
        return self._attach(obj)

    def _attach(self, obj: Any) -> Any:
        try:
            owner = weakref.ref(obj)
        except TypeError:
            raise TypeError(f"method_cache needs weak references to {type(obj).__name__!r} "
                            "instances (it tells an instance from its copies by one): add "
                            "'__weakref__' to its __slots__") from None
        wrapper = self._new_wrapper(skip_self=True)
        is_class = isinstance(obj, type)
        slot = _class_slot(obj) if is_class else METHOD_CACHE_SLOT
        with _attach_lock:
            try:
                caches = object.__getattribute__(obj, slot)
            except AttributeError:
                caches = None
            if caches is not None and not isinstance(caches, _InstanceCaches):
                raise TypeError(f"{type(obj).__name__!r} instance has an attribute {slot!r} "
                                "of its own: method_cache keeps its caches there")
            if caches is None or caches.owner() is not obj:   # none yet, or a copy's
                caches = _InstanceCaches()
                caches.owner = owner
                try:
                    (type.__setattr__ if is_class else object.__setattr__)(obj, slot, caches)
                except (AttributeError, TypeError):
                    raise TypeError(self._no_room(obj)) from None
            wrapper = caches.setdefault(self, wrapper)
        self._track(wrapper)
        return wrapper

    def _no_room(self, obj: Any) -> str:
        if isinstance(obj, type):
            return f"method_cache cannot keep a cache in the class {obj.__name__!r}"
        return (f"method_cache keeps each instance's cache in the instance, and "
                f"{type(obj).__name__!r} instances have no __dict__: add "
                f"{METHOD_CACHE_SLOT!r} to its __slots__")

    def _track(self, wrapper: Any) -> None:
        self._live[weakref.ref(wrapper, self._forget)] = None   # one per wrapper (ref == ref)

    def _forget(self, ref: Any) -> None:
        self._live.pop(ref, None)

    def _shared_wrapper(self) -> Any:
        wrapper = self._shared
        if wrapper is None:
            with _attach_lock:
                if self._shared is None:
                    self._shared = self._new_wrapper(skip_self=False)
                wrapper = self._shared
        return wrapper

    def _receiver_name(self) -> Optional[str]:
        if self._receiver is None:
            self._receiver = _receiver_param(self._method) or ""
        return self._receiver or None

    def _wrappers(self) -> list[Any]:
        """The wrappers alive now: each instance's, and the shared one if made."""
        found = [ref() for ref in self._live.copy()]
        return [w for w in found + [self._shared] if w is not None]

    def cache_info(self) -> Any:
        """The statistics of every live instance's cache, summed."""
        hits = misses = currsize = 0
        for wrapper in self._wrappers():
            info = wrapper.cache_info()
            hits, misses, currsize = hits + info.hits, misses + info.misses, currsize + info.currsize
        return functools._CacheInfo(hits, misses, self._maxsize, currsize)   # type: ignore[attr-defined]

    def cache_clear(self) -> None:
        """Clears every live instance's cache."""
        for wrapper in self._wrappers():
            wrapper.cache_clear()

    def cache_parameters(self) -> dict[str, Any]:
        return {"maxsize": self._maxsize, "typed": self._typed}

    def __reduce__(self) -> Any:
        return self.__qualname__   # as a function: pickled by reference

    def __copy__(self) -> "method_cache":
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> "method_cache":
        return self

    def __repr__(self) -> str:
        return f"<method_cache {getattr(self, '__wrapped__', None)!r}>"


# ---------------------------------------------------------------------------------------
# acached: coroutine functions, one computation per missing key and event loop
#
# A call that misses becomes the leader of a _Flight: it runs the coroutine, stores the
# result and settles the flight's future; calls for the same key on the same event loop
# meanwhile wait for that future. Every way out of the leader (a result, any exception,
# a store that raises, cancellation, the coroutine closed by the garbage collector) goes
# through one `finally` that unregisters the flight, and one settle() that resolves its
# future, so no waiter is left behind and the next call finds the key free.
#
# Nothing global refers to a flight, a task or an event loop strongly: the tables hold
# weak references keyed by id(loop) and id(task). So an event loop dropped with calls in
# flight is still collected (its pending coroutines are closed, which runs their
# `finally`), as it would be without memleash.

class _Flight:
    """One computation of one key on one event loop: the future its waiters wait for, the
    task computing it, and the cache_clear() generation it started in."""

    __slots__ = ("future", "leader", "gen", "__weakref__")

    def __init__(self, future: Any, leader: Any, gen: int) -> None:
        self.future, self.leader, self.gen = future, leader, gen


#: id(task) -> weak reference to the flight that task is waiting for, shared by every
#: acached function: a wait that would close a cycle (a task waiting, through other tasks'
#: flights, for a flight it leads itself) raises RuntimeError instead of hanging
_waiting: dict[int, Any] = {}
#: what a waiter's future gets when the flight it waited for was cancelled: look again
_RETRY = object()
#: a look-up that found nothing
_MISSING = object()


def _waits_for_itself(flight: _Flight, me: Any) -> bool:
    """Whether waiting for flight from task me would wait forever: me leads it, or leads
    a flight that its leader waits for, and so on."""
    if me is None:
        return False   # not in a task (a coroutine driven by hand): nothing to follow
    leader, steps = flight.leader, len(_waiting) + 1
    while leader is not None and steps > 0:
        if leader is me:
            return True
        ref = _waiting.get(id(leader))
        waited = ref() if ref is not None else None
        if waited is None:
            return False
        leader, steps = waited.leader, steps - 1
    return False


def _relay(mine: Any, flight_future: Any) -> None:
    """A waiter's own future gets the flight's outcome (_RETRY if it was cancelled), so
    that a CancelledError in the waiter can only be its own."""
    if mine.done():
        return
    if flight_future.cancelled():
        mine.set_result(_RETRY)
    elif flight_future.exception() is not None:
        mine.set_exception(flight_future.exception())
    else:
        mine.set_result(flight_future.result())


def _settle(flight: _Flight, outcome: Any, exc: Optional[BaseException]) -> None:
    """Resolves the flight's future: the value, the exception, or cancelled (the leader
    was cancelled or closed: a waiter takes over)."""
    import asyncio

    future = flight.future
    if future.done() or future.get_loop().is_closed():
        return   # a closed loop runs no waiter any more
    if exc is None:
        future.set_result(outcome)
    elif isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        future.cancel()
    else:
        future.set_exception(exc)
        future.exception()   # retrieved: no "never retrieved" report if nobody waits


def acached(cache: Any, key: Callable[..., Any] = hashkey, *,
            lock: Any = None, info: bool = False) -> Callable[[_F], _F]:
    """``cached`` for coroutine functions, with single flight per key and event loop.

    Concurrent awaits of one missing key on one event loop run the coroutine once; the
    others wait for its outcome. If the call computing it is cancelled, one of the
    waiters computes it instead. An exception, raised by the coroutine or by storing its
    result, reaches that call and every waiter, and is not cached. A call that would
    wait for a computation it is itself part of (the coroutine awaiting its own key,
    directly or through other memoized coroutines) raises ``RuntimeError``. Calls on
    other event loops (other threads) compute on their own; results are shared through
    the cache. ``cache_clear()`` also forgets the computations in flight: later calls
    start their own, and the earlier ones' results reach their waiters but are not
    stored. ``lock`` (a ``threading`` lock, for a cache shared with other threads) is
    held around each cache access, never across an ``await``. ``info=True`` adds
    ``cache_info()``.

    ``cache`` is a mapping, or an async cache: an object with coroutine methods
    ``aget(key)`` (KeyError when absent), ``aset(key, value)`` (ValueError: not cached)
    and ``aclear()``, such as ``memleash.AsyncTieredCache``, awaited so that no look-up
    blocks the event loop. Its look-up is part of the single flight (the call that leads
    a key looks it up, and computes on a miss: a look-up that awaits could otherwise
    answer "missing" after another call computed and stored the key); ``lock`` must be
    None; ``cache_clear()`` is a coroutine function (``await f.cache_clear()``).
    """
    import asyncio

    if cache is None:
        raise TypeError("cache must not be None")
    is_async = all(callable(getattr(cache, name, None)) for name in ("aget", "aset", "aclear"))
    if is_async and lock is not None:
        raise TypeError("lock= guards a mapping shared with threads; an async cache "
                        "(aget/aset/aclear) takes none")

    def decorator(func: _F) -> _F:
        # id(loop) -> key -> weak reference to the flight computing it on that loop
        tables: dict[int, dict[Any, Any]] = {}
        guard = lock if lock is not None else _NoLock()
        state = threading.RLock()   # guards stats (hits, misses, generation) and stores
        stats = [0, 0, 0]           # hits, misses, generation (bumped by cache_clear)

        def count(i: int) -> None:
            with state:
                stats[i] += 1

        def lookup(k: Any) -> Any:
            if lock is None:
                try:
                    return cache[k]
                except KeyError:
                    return _MISSING
            with lock:
                try:
                    return cache[k]
                except KeyError:
                    return _MISSING

        async def wait(flight: _Flight, me: Any, k: Any) -> Any:
            """The flight's outcome for a waiter; _RETRY if its leader was cancelled."""
            if _waits_for_itself(flight, me):
                raise RuntimeError(
                    f"recursive await of the key {k!r} while computing it (the call "
                    "would wait for itself forever)")
            mine = flight.future.get_loop().create_future()
            relay = functools.partial(_relay, mine)
            flight.future.add_done_callback(relay)
            if me is not None:
                _waiting[id(me)] = weakref.ref(flight)
            try:
                return await mine
            finally:
                flight.future.remove_done_callback(relay)
                if me is not None:
                    _waiting.pop(id(me), None)

        async def lead(k: Any, loop: Any, me: Any, args: Any, kwargs: Any) -> Any:
            table = tables.setdefault(id(loop), {})
            flight = _Flight(loop.create_future(), me, stats[2])
            ref = table[k] = weakref.ref(flight)
            exc: Optional[BaseException] = None
            value = None
            try:
                if is_async:
                    try:
                        value = await cache.aget(k)
                    except KeyError:
                        pass
                    else:
                        count(0)
                        return value
                count(1)
                value = await func(*args, **kwargs)
                if is_async:
                    if flight.gen == stats[2]:   # not cleared meanwhile
                        try:
                            await cache.aset(k, value)
                        except ValueError:
                            pass                 # too large to cache
                    return value
                with guard, state:
                    if flight.gen == stats[2]:   # not cleared meanwhile
                        try:
                            cache[k] = value
                        except ValueError:
                            pass                 # too large to cache
                return value
            except BaseException as e:
                exc = e
                raise
            finally:
                if table.get(k) is ref:
                    del table[k]
                    if not table and tables.get(id(loop)) is table:
                        del tables[id(loop)]
                _settle(flight, value, exc)

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            k = key(*args, **kwargs)
            if is_async:               # the look-up awaits: the leader makes it
                return await miss(k, args, kwargs)
            value = lookup(k)
            if value is not _MISSING:
                count(0)
                return value
            return await miss(k, args, kwargs)

        async def miss(k: Any, args: Any, kwargs: Any) -> Any:
            loop = asyncio.get_running_loop()
            me = asyncio.current_task(loop)
            while True:
                table = tables.get(id(loop))
                ref = table.get(k) if table is not None else None
                flight = ref() if ref is not None else None
                if flight is None or flight.gen != stats[2]:
                    return await lead(k, loop, me, args, kwargs)
                value = await wait(flight, me, k)
                if value is not _RETRY:
                    count(0)
                    return value
                if is_async:
                    continue        # its leader was cancelled: lead, looking up first
                value = lookup(k)   # its leader was cancelled: maybe stored by another loop
                if value is not _MISSING:
                    count(0)
                    return value

        if is_async:
            async def cache_clear() -> None:
                with state:
                    stats[0] = stats[1] = 0
                    stats[2] += 1
                await cache.aclear()
        else:
            def cache_clear() -> None:   # type: ignore[misc]
                with guard, state:
                    cache.clear()
                    stats[0] = stats[1] = 0
                    stats[2] += 1

        def pending() -> list[Any]:
            """The keys being computed now, on every event loop (for tests)."""
            return [k for table in tables.copy().values() for k, ref in table.copy().items()
                    if ref() is not None]

        functools.update_wrapper(wrapper, func)
        wrapper.cache = cache                     # type: ignore[attr-defined]
        wrapper.cache_key = key                   # type: ignore[attr-defined]
        wrapper.cache_lock = lock                 # type: ignore[attr-defined]
        wrapper.cache_clear = cache_clear         # type: ignore[attr-defined]
        wrapper._ml_pending = pending             # type: ignore[attr-defined]
        if info:
            def cache_info() -> CacheInfo:
                with guard, state:
                    return CacheInfo._make_info(cache, stats[0], stats[1])

            wrapper.cache_info = cache_info       # type: ignore[attr-defined]
        return wrapper   # type: ignore[return-value]

    return decorator


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
