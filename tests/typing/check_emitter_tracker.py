"""mypy --strict over the emitter's and the tracker's types (make typecheck)."""

import logging
from collections.abc import Callable
from typing import Any, assert_type

import memleash
from memleash import EventEmitter, tracker
from memleash.tracker import Leak


class Connection:
    def close(self) -> None:
        pass


bus = EventEmitter(name="bus")


def on_data(payload: bytes) -> None:
    pass


handler = bus.on("data", on_data)                          # the listener itself, as typed
handler(b"payload")
handler("text")  # type: ignore[arg-type]
bus.add_listener("data", on_data, weak=True)(1)  # type: ignore[arg-type]


@bus.once("ready")
def ready() -> None:
    pass


assert_type(ready, Callable[[], None])
assert_type(bus.emit("data", b"x"), bool)
assert_type(bus.listeners("data"), list[Callable[..., Any]])
bus.on("data", weak="yes")  # type: ignore[call-overload]
EventEmitter(name=3)  # type: ignore[arg-type]

conn = memleash.track(Connection(), name="db")
assert_type(conn, Connection)
listener = tracker.log_leaks(logging.getLogger("app"), level=logging.ERROR)
assert_type(listener, Callable[[Leak], None])
tracker.remove_leak_listener(listener)
tracker.log_leaks(level="warning")  # type: ignore[arg-type]
assert_type(memleash.open_resources()[0].where, str)
