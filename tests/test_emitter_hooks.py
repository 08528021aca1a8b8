"""pyee's hooks on memleash.EventEmitter: subclasses that override them see them called
(pyee's variants and uplift are built on them), and AsyncIOEventEmitter."""

import asyncio

import pytest
from pyee.uplift import uplift

from memleash import AsyncIOEventEmitter, EventEmitter, PyeeError


def test_overridden_emit_run_sees_every_listener_call():
    calls = []

    class Recording(EventEmitter):
        def _emit_run(self, f, args, kwargs):
            calls.append((f, args, kwargs))
            super()._emit_run(f, args, kwargs)

    class Owner:
        def handle(self, *a, **k):
            pass

    def plain(*a, **k):
        pass

    ee, owner = Recording(), Owner()
    ee.on("e", plain)
    ee.on("e", owner.handle)
    assert ee.emit("e", 1, k=2) is True
    assert calls == [(plain, (1,), {"k": 2}), (owner.handle, (1,), {"k": 2})]


def test_overridden_call_handlers_replaces_the_loop():
    class Silent(EventEmitter):
        def _call_handlers(self, event, args, kwargs):
            return event == "claimed"

    ee = Silent()
    ee.on("e", lambda: pytest.fail("the loop ran"))
    assert ee.emit("e") is False and ee.emit("claimed") is True


def test_overridden_error_handler_is_called_for_unhandled_events():
    seen = []

    class Lenient(EventEmitter):
        def _emit_handle_potential_error(self, event, error):
            seen.append((event, error))

    ee = Lenient()
    assert ee.emit("error", "x") is False and ee.emit("other") is False
    assert seen == [("error", "x"), ("other", None)]


def test_base_hooks_are_callable_directly_as_uplift_does():
    ee, seen = EventEmitter(), []
    ee.on("e", lambda *a, **k: seen.append((a, k)))
    assert ee._call_handlers("e", (1,), {"k": 2}) is True
    assert ee._call_handlers("none", (), {}) is False
    assert seen == [((1,), {"k": 2})]
    with pytest.raises(PyeeError):
        ee._emit_handle_potential_error("error", "text")
    ee._emit_handle_potential_error("other", "ignored")


def test_pyee_uplift_works_on_memleash_emitters():
    underlying, seen = EventEmitter(), []
    lifted = uplift(EventEmitter, underlying)
    lifted.on("e", lambda v: seen.append(("lifted", v)))
    underlying.on("e", lambda v: seen.append(("under", v)))
    assert underlying.emit("e", 1) is True
    assert seen == [("under", 1), ("lifted", 1)]


def test_asyncio_emitter_schedules_coroutines_and_waits():
    async def main():
        ee, done = AsyncIOEventEmitter(), []

        @ee.on("job")
        async def work(n):
            await asyncio.sleep(0)
            done.append(n)

        ee.emit("job", 1)
        ee.emit("job", 2)
        assert not ee.complete
        await ee.wait_for_complete()
        assert ee.complete and sorted(done) == [1, 2]

    asyncio.run(main())


def test_asyncio_emitter_routes_sync_and_async_errors_to_error():
    async def main():
        ee, errors = AsyncIOEventEmitter(), []
        ee.on("error", errors.append, weak=False)   # a list's method: held strongly anyway

        @ee.on("sync")
        def sync_fail():
            raise ValueError("sync")

        @ee.on("async")
        async def async_fail():
            raise KeyError("async")

        ee.emit("sync")
        ee.emit("async")
        await ee.wait_for_complete()
        await asyncio.sleep(0)
        assert [type(e) for e in errors] == [ValueError, KeyError]

    asyncio.run(main())


def test_asyncio_emitter_cancel():
    async def main():
        ee, started = AsyncIOEventEmitter(), asyncio.Event()

        @ee.on("slow")
        async def slow():
            started.set()
            await asyncio.sleep(3600)

        ee.emit("slow")
        await started.wait()
        ee.cancel()
        assert ee.complete

    asyncio.run(main())


def test_asyncio_emitter_method_listeners_stay_weak():
    import gc

    class Owner:
        async def handle(self):
            pass

    ee = AsyncIOEventEmitter()
    ee.on("e", Owner().handle)
    gc.collect()
    assert ee.listeners("e") == []


def test_overridden_add_event_handler_sees_on_and_once():
    seen = []

    class Watching(EventEmitter):
        def _add_event_handler(self, event, k, v):
            seen.append((event, k, v is k))
            super()._add_event_handler(event, k, v)

    ee, ran = Watching(), []

    def f():
        ran.append("f")

    ee.on("a", f)
    ee.once("b", f)
    ee.emit("a")
    ee.emit("b")
    ee.emit("b")
    assert seen == [("a", f, True), ("b", f, False)] and ran == ["f", "f"]


def test_overridden_remove_listener_hook_is_used():
    seen = []

    class Watching(EventEmitter):
        def _remove_listener(self, event, f):
            seen.append(event)
            super()._remove_listener(event, f)

    ee = Watching()
    ee.on("a", print)
    ee.remove_listener("a", print)
    assert seen == ["a"] and ee.event_names() == set()


def test_new_listener_is_announced_through_an_overriding_emit():
    seen = []

    class Loud(EventEmitter):
        def emit(self, event, *args, **kwargs):
            seen.append((event, args))
            return super().emit(event, *args, **kwargs)

    ee = Loud()
    ee.on("x", print)
    assert seen == [("new_listener", ("x", print))]


def test_new_listener_is_announced_through_an_emit_set_on_the_instance():
    # what pyee.uplift does: it replaces `emit` on the instance
    ee, seen = EventEmitter(), []
    plain_emit = ee.emit
    ee.emit = lambda event, *args: seen.append(event) or plain_emit(event, *args)
    ee.on("x", print)
    assert seen == ["new_listener"]
    del ee.emit
    ee.on("y", print)
    assert seen == ["new_listener"]            # back to the emit loop in C


def test_asyncio_wait_for_complete_drains_what_the_awaited_handlers_schedule():
    # pyee 16.0.1: wait_for_complete loops until nothing is pending (a handler that emits,
    # an error event with an async handler)
    async def main():
        ee, order = AsyncIOEventEmitter(), []
        release = asyncio.Event()

        @ee.on("parent")
        async def parent():
            ee.emit("child")

        @ee.on("child")
        async def child():
            await release.wait()
            order.append("child")

        @ee.on("fail")
        async def fail():
            raise KeyError("x")

        @ee.on("error")
        async def on_error(exc):
            await release.wait()
            order.append("error")

        waiter = asyncio.ensure_future(ee.wait_for_complete())
        ee.emit("parent")
        ee.emit("fail")
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiter.done()
        release.set()
        await waiter
        assert sorted(order) == ["child", "error"] and ee.complete

    asyncio.run(main())
