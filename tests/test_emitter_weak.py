"""EventEmitter's listeners never keep their owners alive."""

import functools  # noqa: F401
import gc
import sys
import warnings
import weakref

import pytest

from memleash import EventEmitter


class Owner:
    alive = 0

    def __init__(self, log=None):
        Owner.alive += 1
        self.log = log if log is not None else []

    def __del__(self):
        Owner.alive -= 1

    def handle(self, *args):
        self.log.append(args)


@pytest.fixture
def no_gc():
    """Owners must die by reference counting alone: no cycle may hold them."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def test_bound_method_does_not_keep_its_object_alive(no_gc):
    ee, owner = EventEmitter(), Owner()
    ref = weakref.ref(owner)
    ee.on("e", owner.handle)
    del owner
    assert ref() is None
    assert ee.listeners("e") == [] and ee.event_names() == set()
    assert ee.emit("e") is False


def test_a_hundred_thousand_subscribe_and_drop_cycles_retain_nothing(no_gc):
    ee = EventEmitter()
    start = Owner.alive
    for i in range(100_000):
        owner = Owner()
        ee.on("tick", owner.handle)
        del owner
    assert Owner.alive == start
    assert ee.listener_count("tick") == 0
    assert sys.getsizeof(ee) < 4096            # the slots were reused, not piled up


def test_once_listener_does_not_keep_its_object_alive(no_gc):
    ee, owner = EventEmitter(), Owner()
    ref = weakref.ref(owner)
    ee.once("e", owner.handle)
    del owner
    assert ref() is None and ee.emit("e") is False


def test_owner_that_dies_during_an_emit_is_not_called(no_gc):
    ee, log = EventEmitter(), []
    victim = Owner(log)
    holder = [victim]
    del victim
    ee.on("e", lambda *a: holder.clear())   # drops the last reference to the victim
    ee.on("e", holder[0].handle)
    assert ee.emit("e", "x") is True
    assert log == [] and ee.listeners("e")[1:] == []


def test_emit_keeps_no_reference_to_its_arguments(no_gc):
    ee, owner = EventEmitter(), Owner()
    ee.on("e", owner.handle)
    owner.log = None   # the handler below would keep args otherwise

    class Payload:
        pass

    p = Payload()
    ref = weakref.ref(p)
    ee.on("e2", lambda *a, **k: None)
    ee.emit("e2", p, key=p)
    del p
    assert ref() is None


def test_emitter_subclass_subscribing_its_own_methods_is_collected_by_refcount(no_gc):
    class Service(EventEmitter):
        def __init__(self):
            super().__init__()
            self.on("ping", self.pong)

        def pong(self):
            pass

    s = Service()
    ref = weakref.ref(s)
    s.emit("ping")
    del s
    assert ref() is None


def test_functions_and_lambdas_are_held_strongly_by_default():
    ee, seen = EventEmitter(), []
    ee.on("e", lambda: seen.append(1))
    gc.collect()
    ee.emit("e")
    assert seen == [1]


def test_weak_true_holds_any_callable_weakly(no_gc):
    class Callable_:
        def __call__(self):
            pass

    ee, c = EventEmitter(), Callable_()
    ref = weakref.ref(c)
    ee.on("e", c, weak=True)
    assert ee.listeners("e") == [c]
    del c
    assert ref() is None and ee.listeners("e") == []


def test_weak_false_holds_a_bound_method_strongly(no_gc):
    ee, owner = EventEmitter(), Owner()
    ref = weakref.ref(owner)
    ee.on("e", owner.handle, weak=False)
    del owner
    assert ref() is not None
    ee.emit("e", 1)
    assert ref().log == [(1,)]
    ee.remove_all_listeners()
    assert ref() is None


def test_owner_that_cannot_be_weakly_referenced_is_held_strongly_with_a_warning():
    class Slotted:
        __slots__ = ()

        def handle(self):
            pass

    ee, s = EventEmitter(), Slotted()
    with pytest.warns(RuntimeWarning, match="cannot be weakly referenced"):
        ee.on("e", s.handle)
    assert ee.emit("e") is True


def test_unreferenced_handler_object_never_fires_the_documented_difference():
    class Handler:
        def handle(self):
            raise AssertionError("a method of a dead object ran")

    ee = EventEmitter()
    ee.on("x", Handler().handle)
    assert ee.emit("x") is False
    ee.on("x", Handler().handle, weak=False)
    with pytest.raises(AssertionError):
        ee.emit("x")


def test_owner_whose_del_emits(no_gc):
    ee, seen = EventEmitter(), []
    ee.on("died", lambda: seen.append("died"))

    class Noisy:
        def handle(self):
            pass

        def __del__(self):
            ee.emit("died")
            ee.on("died", lambda: None)

    n = Noisy()
    ee.on("e", n.handle)
    del n
    assert seen == ["died"] and ee.listeners("e") == []


def test_emitter_dying_before_its_listeners_owners():
    ee, owner = EventEmitter(), Owner()
    ee.on("e", owner.handle)
    del ee
    gc.collect()
    del owner                       # its weakref callback finds no emitter: no crash


def test_gc_sees_strong_listeners_and_collects_cycles_through_them():
    ee = EventEmitter()
    ee.on("e", lambda: ee)          # a cycle: emitter -> lambda -> emitter
    ref = weakref.ref(ee)
    assert any(callable(r) for r in gc.get_referents(ee))
    del ee
    gc.collect()
    assert ref() is None


def test_many_owners_dying_mid_emit_are_never_called(no_gc):
    ee, called = EventEmitter(), []
    ee.set_max_listeners(0)

    class O:
        def handle(self):
            called.append(self)

    owners = [O() for _ in range(50)]
    ee.on("e", lambda: owners.clear())
    for o in owners:
        ee.on("e", o.handle)
    del o
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ee.emit("e")
    assert called == [] and ee.listener_count("e") == 1


def test_partial_of_a_bound_method_is_weak_on_the_object(no_gc):
    import functools

    ee, owner = EventEmitter(), Owner()
    log = owner.log
    ref = weakref.ref(owner)
    ee.on("e", functools.partial(owner.handle, "tag"))
    ee.emit("e", 1)
    assert log == [("tag", 1)]
    [listener] = ee.listeners("e")
    assert isinstance(listener, functools.partial) and listener.args == ("tag",)
    del listener, owner
    assert ref() is None and ee.listeners("e") == []


def test_partial_registered_and_removed_by_the_same_object():
    import functools

    ee, owner = EventEmitter(), Owner()
    p = functools.partial(owner.handle, 1)
    ee.on("e", p)
    ee.on("e", p)                  # the same partial: one entry
    assert ee.listener_count("e") == 1
    ee.remove_listener("e", p)
    assert ee.event_names() == set()


def test_partial_keywords_are_merged_at_call_time():
    import functools

    seen = []

    class O:
        def handle(self, *a, **k):
            seen.append((a, k))

    o = O()
    ee = EventEmitter()
    ee.on("e", functools.partial(o.handle, 1, mode="a"))
    ee.emit("e", 2, mode="b", extra=3)
    assert seen == [((1, 2), {"mode": "b", "extra": 3})]


# ---- every bound shape is weak on its owner (issue 20) ----

class Sub(__import__("io").BytesIO):
    def write(self, b):                      # shadows the C method super() reaches
        raise AssertionError("the override ran")


def _bytesio():
    import io
    return io.BytesIO()


SHAPES = {
    # name: (make the owner, the listener bound to it, emit's arguments)
    "python bound method": (lambda: Owner(), lambda o: o.handle, (1,)),
    "partial of a bound method": (lambda: Owner(), lambda o: __import__("functools").partial(o.handle, 0), (1,)),
    "built-in type's method": (_bytesio, lambda o: o.write, (b"x",)),
    "collections.deque.append": (lambda: __import__("collections").deque(), lambda o: o.append, (1,)),
    "extension type's method": (lambda: EventEmitter(), lambda o: o.emit, ("x",)),
    "partial of a built-in method": (_bytesio, lambda o: __import__("functools").partial(o.write, b"x"), ()),
    "method-wrapper": (lambda: Owner(), lambda o: o.__sizeof__, ()),
    "partial of a method-wrapper": (lambda: Owner(), lambda o: __import__("functools").partial(o.__format__, ""), ()),
    "built-in method through super()": (lambda: Sub(), lambda o: super(Sub, o).write, (b"x",)),
    "class method of a built-in type, on a subclass": (lambda: type("D", (dict,), {}), lambda c: c.fromkeys, ([1],)),
}


# the owner of the last shape is a class made at run time (mortal_types: tests/conftest.py)
@pytest.mark.parametrize("shape", [pytest.param(s, marks=pytest.mark.mortal_types)
                                   if s.startswith("class method") else s for s in SHAPES])
def test_every_bound_shape_is_weak_on_its_owner(shape):
    make, bind, args = SHAPES[shape]
    ee, owner = EventEmitter(), make()
    ref = weakref.ref(owner)
    listener = bind(owner)
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # no "held strongly" warning
        ee.on("e", listener)
    assert ee.listeners("e") == [listener]
    assert ee.emit("e", *args) is True
    ee.remove_listener("e", ee.listeners("e")[0])       # what listeners() gives is accepted
    assert ee.listeners("e") == []
    ee.on("e", listener)
    del owner, listener
    gc.collect()                             # a class is in cycles of its own
    assert ref() is None
    assert ee.listeners("e") == [] and ee.emit("e", *args) is False


def test_a_built_in_method_runs_the_method_it_was_bound_to():
    import io

    ee, sub = EventEmitter(), Sub()
    ee.on("e", super(Sub, sub).write)        # BytesIO.write, not the override
    ee.emit("e", b"abc")
    assert sub.getvalue() == b"abc"
    ee.on("e", sub.write)                    # the override: a Python method, another entry
    with pytest.raises(AssertionError, match="override"):
        ee.emit("e", b"!")
    buf = io.BytesIO()
    ee.remove_all_listeners()
    ee.on("w", buf.write, weak=False)        # weak=False holds it strongly, as before
    del buf
    gc.collect()
    assert ee.emit("w", b"kept") is True and ee.listeners("w")[0].__self__.getvalue() == b"kept"


@pytest.mark.parametrize("listener", ["[].append", "{}.get", "'text'.upper",
                                      "functools.partial([].append, 1)"])
def test_an_owner_that_cannot_be_weakly_referenced_is_held_strongly_with_a_warning(listener):
    import functools  # noqa: F401 (the listener's expression)

    ee = EventEmitter()
    f = eval(listener)
    with pytest.warns(RuntimeWarning, match="cannot be weakly referenced"):
        ee.on("e", f)
    assert ee.listeners("e") == [f]


def test_module_functions_are_plain_functions_held_strongly_without_a_warning():
    import math

    ee = EventEmitter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ee.on("e", print)
        ee.on("e", math.floor)
    assert ee.listeners("e") == [print, math.floor]


def test_partial_dropped_then_listed_and_removed(no_gc):
    # issue 20: what listeners() returns is accepted by remove_listener, also when the
    # registered partial is gone (pyee removes it; memleash raised KeyError)
    import functools

    ee, v = EventEmitter(), Owner()
    ee.on("changed", functools.partial(v.handle, "name"))   # kept nowhere else
    first = ee.listeners("changed")
    assert ee.listeners("changed")[0] is first[0]           # the same object while it lives
    for f in ee.listeners("changed"):
        ee.remove_listener("changed", f)
    assert ee.listeners("changed") == [] and ee.event_names() == set()
    ee.on("changed", functools.partial(v.handle, "name"))
    ee.on("changed", ee.listeners("changed")[0])            # the same listener: one entry
    assert ee.listener_count("changed") == 1
    ee.emit("changed", 1)
    assert v.log == [("name", 1)]


def test_partial_handed_to_emit_run_is_accepted_by_remove_listener():
    import functools

    seen = []

    class Recording(EventEmitter):
        def _emit_run(self, f, args, kwargs):
            seen.append(f)

    ee, v = Recording(), Owner()
    ee.on("e", functools.partial(v.handle, 1))
    ee.emit("e")
    ee.remove_listener("e", seen[0])
    assert ee.listeners("e") == []
