"""The weak-listener event emitter: pyee's API, listeners that never keep owners alive.

``EventEmitter`` is a C type (``memleash._core.EventEmitter``), usable directly and as a
base class. A callable bound to an object (a bound method, a built-in type's method, a
method-wrapper, a ``functools.partial`` of any of them) is held as a weak reference to that
object plus what to bind again, and unlinked the moment the object dies; plain functions,
lambdas and closures are held strongly (a weak lambda would vanish at once). ``weak=True`` / ``weak=False`` on ``on``,
``once``, ``add_listener`` and ``listens_to`` override that choice.

``AsyncIOEventEmitter`` adds coroutine listeners through pyee's ``_emit_run`` hook.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from ._core import EventEmitter, ListenerLeakWarning, PyeeError, PyeeException

#: pyee's old name for the emitter's own error, kept so ``except EmitterError`` works.
EmitterError = PyeeError

__all__ = [
    "AsyncIOEventEmitter", "EmitterError", "EventEmitter", "ListenerLeakWarning", "PyeeError",
    "PyeeException",
]


class AsyncIOEventEmitter(EventEmitter):
    """An EventEmitter whose listeners may be coroutine functions (pyee's AsyncIOEventEmitter).

    A listener's coroutine (or returned future) is scheduled on ``loop`` (the running
    loop when None) and kept in a set until it is done, so that ``wait_for_complete()``
    can await and ``cancel()`` can cancel it. Any exception a listener raises, at once or
    from its coroutine, is emitted as an ``error`` event instead of propagating.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self._loop = loop
        self._waiting: set[asyncio.Future[Any]] = set()

    def _emit_run(self, f: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> None:
        try:
            result = f(*args, **kwargs)
        except Exception as exc:
            self.emit("error", exc)
            return
        if asyncio.iscoroutine(result):
            future = asyncio.ensure_future(result, loop=self._loop)
        elif isinstance(result, asyncio.Future):
            future = result
        else:
            return
        future.add_done_callback(self._settled)
        self._waiting.add(future)

    def _settled(self, future: asyncio.Future[Any]) -> None:
        self._waiting.discard(future)
        if not future.cancelled() and future.exception() is not None:
            self.emit("error", future.exception())

    async def wait_for_complete(self) -> None:
        """Waits until no scheduled listener coroutine is pending: those that the ones it
        waited for scheduled meanwhile (an emit, an ``error`` event) included."""
        while self._waiting:
            await asyncio.wait(self._waiting)

    def cancel(self) -> None:
        """Cancels every scheduled listener coroutine that is still pending."""
        for future in self._waiting:
            if not future.done():
                future.cancel()
        self._waiting.clear()

    @property
    def complete(self) -> bool:
        """True when no scheduled listener coroutine is pending."""
        return not self._waiting
