"""Hostile keys and values for robustness tests: each misbehaves at a chosen moment."""

from __future__ import annotations

import math
from typing import Any, Callable


class HashKey:
    """A key with a chosen hash (collisions on demand) that compares by `name`."""

    def __init__(self, name: Any, hash_value: int = 0):
        self.name = name
        self.hash_value = hash_value

    def __hash__(self) -> int:
        return self.hash_value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HashKey) and self.name == other.name

    def __repr__(self) -> str:
        return f"HashKey({self.name!r})"


class RaisingHash:
    """__hash__ raises (after `after` successful calls)."""

    def __init__(self, after: int = 0, exc: type[BaseException] = ZeroDivisionError):
        self.calls = 0
        self.after = after
        self.exc = exc

    def __hash__(self) -> int:
        self.calls += 1
        if self.calls > self.after:
            raise self.exc("hash")
        return 7


class DriftingHash:
    """A key whose hash changes every time it is asked for."""

    def __init__(self) -> None:
        self.n = 0

    def __hash__(self) -> int:
        self.n += 1
        return self.n


class EqHook(HashKey):
    """A colliding key whose __eq__ first runs `on_eq` (mutate, clear, raise...)."""

    def __init__(self, name: Any, on_eq: Callable[[], Any], hash_value: int = 0):
        super().__init__(name, hash_value)
        self.on_eq = on_eq

    def __eq__(self, other: object) -> bool:
        on_eq, self.on_eq = self.on_eq, (lambda: None)   # fire once
        on_eq()
        return super().__eq__(other)

    __hash__ = HashKey.__hash__


class RaisingEq(HashKey):
    def __eq__(self, other: object) -> bool:
        raise ArithmeticError("eq")

    __hash__ = HashKey.__hash__


class DelHook:
    """A value (or key) whose __del__ runs `on_del` — e.g. to re-enter the cache."""

    def __init__(self, on_del: Callable[[], Any]):
        self.on_del = on_del

    def __del__(self) -> None:
        self.on_del()


def refilled_by_another_thread(cache_cls: type, key: Any, value: Any) -> type:
    """A subclass of cache_cls whose popitem(), the first time, lets another thread store
    (key, value) into the cache while it runs (and waits for it). Its lock does not hold
    across popitem(), which is Python code: the GIL build switches threads there, and the
    free-threaded build suspends the cache's critical section while popitem() blocks (here
    in join()). The class's `calls` lists what each popitem() returned."""
    import threading

    class Refilled(cache_cls):  # type: ignore[misc, valid-type]
        calls: list[Any] = []

        def popitem(self) -> Any:
            pair = super().popitem()
            type(self).calls.append(pair)
            if len(type(self).calls) == 1:
                t = threading.Thread(target=self.__setitem__, args=(key, value))
                t.start()
                t.join()
            return pair

    Refilled.calls = []
    return Refilled


BAD_SIZES = [-1, math.nan, "ten", None, object(), complex(1, 1)]


def check_invariants(cache: Any) -> None:
    """Everything a consistent cache must satisfy, checked through its public API."""
    keys = list(cache)
    assert len(keys) == len(cache)
    assert len(set(map(id, keys))) == len(keys)
    for k in keys:
        assert k in cache
    assert cache.currsize <= cache.maxsize
    if cache.maxbytes is not None:
        assert cache.currbytes <= cache.maxbytes
    if cache.getsizeof(object()) == 1 and "getsizeof" not in cache.__dict__:
        assert cache.currsize == len(cache)


def run_isolated(code: str, timeout: float = 120, dev: bool = False) -> str:
    """Runs `code` in a fresh interpreter (same memleash, same sanitizer runtime) and
    returns its stdout; fails the test on a crash, a hang past `timeout` seconds, or a
    non-zero exit, with what the child printed. For inputs that can kill the interpreter.
    dev: in Python's development mode (-X dev), whose debug allocator catches a write past
    a block's end when the block is freed (unless PYTHONMALLOC chooses another)."""
    import os
    import subprocess
    import sys
    import textwrap

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        flags = ["-X", "dev"] if dev else []
        proc = subprocess.run([sys.executable, *flags, "-c", textwrap.dedent(code)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:  # pragma: no cover - the failure itself
        raise AssertionError(f"hung for {timeout} s:\n{exc.stdout}\n{exc.stderr}") from None
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc.stdout
