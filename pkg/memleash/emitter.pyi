# Types of the weak-listener event emitter (pyee's API; listeners keep their parameter
# types through on/once/add_listener, as in typeshed-style decorators).

import asyncio
from collections.abc import Callable
from typing import Any

from ._core import EventEmitter as EventEmitter
from ._core import ListenerLeakWarning as ListenerLeakWarning
from ._core import PyeeError as PyeeError
from ._core import PyeeException as PyeeException

__all__ = [
    "AsyncIOEventEmitter", "EmitterError", "EventEmitter", "ListenerLeakWarning", "PyeeError",
    "PyeeException",
]

EmitterError = PyeeError

class AsyncIOEventEmitter(EventEmitter):
    """An EventEmitter whose listeners may be coroutine functions (pyee's)."""
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *, name: str | None = None) -> None: ...
    def _emit_run(self, f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None: ...
    async def wait_for_complete(self) -> None: ...
    def cancel(self) -> None: ...
    @property
    def complete(self) -> bool: ...
