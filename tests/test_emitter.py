"""EventEmitter: pyee 16.0.1's documented behaviour, each pinned by a test."""

import pickle
import threading

import pytest

from memleash import EmitterError, EventEmitter, ListenerLeakWarning, PyeeError, PyeeException


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))


# ---- registering and emitting ----

def test_on_returns_the_listener_and_emit_passes_args_and_kwargs():
    ee, rec = EventEmitter(), Recorder()
    assert ee.on("data", rec) is rec
    assert ee.emit("data", 1, 2, key="v") is True
    assert rec.calls == [((1, 2), {"key": "v"})]


def test_emit_without_listeners_returns_false():
    assert EventEmitter().emit("nothing", 1) is False


def test_on_without_f_is_a_decorator_returning_the_function():
    ee, seen = EventEmitter(), []

    @ee.on("x")
    def handler(v):
        seen.append(v)

    ee.emit("x", 5)
    assert seen == [5] and callable(handler) and ee.listeners("x") == [handler]


def test_listens_to_and_add_listener():
    ee, seen = EventEmitter(), []

    @ee.listens_to("a")
    def a(v):
        seen.append(("a", v))

    def b(v):
        seen.append(("b", v))

    assert ee.add_listener("a", b) is b
    ee.emit("a", 1)
    assert seen == [("a", 1), ("b", 1)]


def test_listeners_run_in_registration_order():
    ee, order = EventEmitter(), []
    fs = [lambda i=i: order.append(i) for i in range(5)]
    for f in fs:
        ee.on("e", f)
    ee.emit("e")
    assert order == [0, 1, 2, 3, 4] and ee.listeners("e") == fs


def test_adding_a_listener_twice_keeps_one_entry_at_its_first_position():
    ee, order = EventEmitter(), []
    f, g = (lambda: order.append("f")), (lambda: order.append("g"))
    ee.on("e", f)
    ee.on("e", g)
    ee.on("e", f)
    ee.emit("e")
    assert order == ["f", "g"] and ee.listeners("e") == [f, g]


def test_on_then_once_makes_it_a_once_listener_at_its_old_position():
    ee, order = EventEmitter(), []
    f, g = (lambda: order.append("f")), (lambda: order.append("g"))
    ee.on("e", f)
    ee.on("e", g)
    ee.once("e", f)
    ee.emit("e")
    ee.emit("e")
    assert order == ["f", "g", "g"]


def test_once_runs_once_and_returns_the_original_function():
    ee, rec = EventEmitter(), Recorder()
    assert ee.once("e", rec) is rec
    assert ee.emit("e", 1) is True
    assert ee.emit("e", 2) is False
    assert rec.calls == [((1,), {})] and "e" not in ee.event_names()


def test_once_as_a_decorator():
    ee, seen = EventEmitter(), []

    @ee.once("e")
    def f(v):
        seen.append(v)

    ee.emit("e", 1)
    ee.emit("e", 2)
    assert seen == [1]


def test_new_listener_fires_before_the_listener_is_added_each_time():
    ee, seen = EventEmitter(), []

    def on_new(event, f):
        seen.append((event, f, ee.listeners(event)))

    ee.on("new_listener", on_new)
    f = Recorder()
    ee.on("x", f)
    ee.on("x", f)
    assert seen == [("x", f, []), ("x", f, [f])]


def test_new_listener_does_not_fire_for_its_own_registration():
    ee, seen = EventEmitter(), []
    ee.on("new_listener", lambda *a: seen.append(a))
    assert seen == []


# ---- removing ----

def test_remove_listener_of_unknown_event_is_a_no_op():
    EventEmitter().remove_listener("nope", print)


def test_remove_listener_of_unregistered_function_has_no_effect():
    # pyee 16.0.1 (13.0.1 and 14.0.0 raised KeyError)
    ee = EventEmitter()
    ee.on("e", print)
    assert ee.remove_listener("e", len) is None
    assert ee._remove_listener("e", len) is None
    assert ee.listeners("e") == [print] and ee.emit("e") is True


def test_a_listener_removed_again_on_a_later_emit():
    # pyee 16.0.1's test_listener_removal_on_repeated_emit: the second removal is a no-op
    ee, calls = EventEmitter(), []

    def call_me():
        calls.append(1)

    def cleanup():
        ee.remove_listener("event", call_me)

    ee.on("event", cleanup)
    ee.on("event", call_me)
    assert ee.emit("event") is True and ee.emit("event") is True
    assert calls == [1] and ee.listeners("event") == [cleanup]


def test_removing_the_last_listener_removes_the_event():
    ee = EventEmitter()
    ee.on("e", print)
    ee.remove_listener("e", print)
    assert ee.event_names() == set() and ee.listeners("e") == []


def test_remove_all_listeners_of_one_event_or_all():
    ee = EventEmitter()
    ee.on("a", print)
    ee.on("b", print)
    ee.remove_all_listeners("a")
    assert ee.event_names() == {"b"}
    ee.on("a", len)
    ee.remove_all_listeners()
    assert ee.event_names() == set()
    assert ee.emit("a") is False and ee.emit("b") is False


def test_remove_listener_works_with_a_fresh_bound_method():
    class Owner:
        def handle(self):
            pass

    ee, owner = EventEmitter(), Owner()
    ee.on("e", owner.handle)
    ee.remove_listener("e", owner.handle)
    assert ee.event_names() == set()


# ---- errors ----

def test_unhandled_error_event_raises_the_exception():
    err = ValueError("boom")
    with pytest.raises(ValueError) as info:
        EventEmitter().emit("error", err)
    assert info.value is err


def test_unhandled_error_that_is_not_an_exception_raises_pyee_error():
    with pytest.raises(PyeeError, match="Uncaught, unspecified 'error' event: oops"):
        EventEmitter().emit("error", "oops")
    with pytest.raises(PyeeException, match="event: None"):
        EventEmitter().emit("error")
    assert EmitterError is PyeeError and issubclass(PyeeError, PyeeException)


def test_handled_error_event_does_not_raise():
    ee, rec = EventEmitter(), Recorder()
    ee.on("error", rec)
    assert ee.emit("error", ValueError("x")) is True


def test_listener_exceptions_propagate_out_of_emit():
    ee = EventEmitter()
    ee.on("e", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        ee.emit("e")
    ee.on("e", print)
    assert ee.listeners("e")[1] is print


def test_non_callable_listener_is_refused():
    ee = EventEmitter()
    with pytest.raises(TypeError, match="callable"):
        ee.on("e", 42)
    assert ee.event_names() == set()


def test_unhashable_event_raises_type_error():
    ee = EventEmitter()
    with pytest.raises(TypeError):
        ee.on([], print)
    with pytest.raises(TypeError):
        ee.emit([])


# ---- emit works on a snapshot ----

def test_listener_added_during_emit_does_not_run_in_it():
    ee, order = EventEmitter(), []

    def late():
        order.append("late")

    def adder():
        order.append("adder")
        ee.on("e", late)

    ee.on("e", adder)
    ee.emit("e")
    assert order == ["adder"]
    ee.emit("e")
    assert order == ["adder", "adder", "late"]


def test_listener_removed_during_emit_still_runs_in_it():
    ee, order = EventEmitter(), []

    def second():
        order.append("second")

    def remover():
        order.append("remover")
        ee.remove_listener("e", second)

    ee.on("e", remover)
    ee.on("e", second)
    ee.emit("e")
    assert order == ["remover", "second"] and ee.listeners("e") == [remover]


def test_once_listener_removed_during_emit_does_not_run():
    ee, order = EventEmitter(), []

    def second():
        order.append("second")

    ee.on("e", lambda: ee.remove_listener("e", second))
    ee.once("e", second)
    ee.emit("e")
    assert order == []


def test_remove_all_during_emit_lets_the_snapshot_finish():
    ee, order = EventEmitter(), []
    ee.on("e", lambda: (order.append(1), ee.remove_all_listeners()))
    ee.on("e", lambda: order.append(2))
    ee.emit("e")
    assert order == [1, 2] and ee.event_names() == set()


def test_reentrant_emit_runs_a_once_listener_once():
    ee, order = EventEmitter(), []

    def outer():
        order.append("outer")
        ee.emit("e")

    ee.once("e", outer)
    ee.once("e", lambda: order.append("once"))
    ee.emit("e")
    assert order == ["outer", "once"]


def test_listener_that_removes_itself_and_adds_others():
    ee, order = EventEmitter(), []

    def self_removing():
        order.append("self")
        ee.remove_listener("e", self_removing)
        ee.on("e", lambda: order.append("new"))

    ee.on("e", self_removing)
    ee.emit("e")
    ee.emit("e")
    assert order == ["self", "new"]


# ---- the instance ----

def test_instances_have_a_dict_identity_hash_and_a_lock():
    ee = EventEmitter()
    ee.emit_later = 1
    assert ee.__dict__ == {"emit_later": 1}
    assert hash(ee) == object.__hash__(ee) and ee != EventEmitter()
    with ee._lock:
        pass
    assert ee._lock is ee._lock


def test_subclass_with_its_own_init():
    class Service(EventEmitter):
        def __init__(self, name):
            super().__init__()
            self.name = name

    s = Service("svc")
    s.on("x", print)
    assert s.name == "svc" and s.listener_count("x") == 1


def test_constructor_takes_no_arguments():
    with pytest.raises(TypeError):
        EventEmitter(1)


# ---- the leak warning ----

def test_more_listeners_than_the_limit_warn_once_per_event():
    ee = EventEmitter()
    assert ee.get_max_listeners() == 10
    ee.set_max_listeners(2)
    ee.on("e", lambda: None)
    ee.on("e", lambda: None)
    with pytest.warns(ListenerLeakWarning, match=r"3 listeners of event 'e'.*max 2") as rec:
        ee.on("e", lambda: None)
    assert rec[0].filename == __file__
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ee.on("e", lambda: None)          # no second warning for this event
        ee.set_max_listeners(0)           # 0: unlimited
        for _ in range(20):
            ee.on("f", lambda: None)
    assert ee.listener_count("e") == 4 and ee.listener_count("none") == 0


def test_set_max_listeners_rejects_negative():
    with pytest.raises(ValueError):
        EventEmitter().set_max_listeners(-1)


# ---- threads ----

def test_threads_emitting_and_subscribing_never_corrupt_it():
    ee = EventEmitter()
    ee.set_max_listeners(0)
    stop = threading.Event()
    errors = []

    class Owner:
        def handle(self, *a):
            pass

    def worker(seed):
        import random

        rng = random.Random(seed)
        owners = []
        try:
            while not stop.is_set():
                op = rng.random()
                if op < 0.3:
                    o = Owner()
                    owners.append(o)
                    ee.on(rng.choice("abc"), o.handle)
                elif op < 0.5 and owners:
                    owners.pop(rng.randrange(len(owners)))
                elif op < 0.6:
                    f = lambda *a: None  # noqa: E731
                    ee.on("a", f)
                    ee.remove_listener("a", f)
                else:
                    ee.emit(rng.choice("abc"), 1)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    stop.wait(1.0)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    for event in ee.event_names():
        assert ee.listener_count(event) == len(ee.listeners(event))


# ---- pickling and _events ----

def module_level_listener(*args):
    return args


class Tagged(EventEmitter):
    pass


def test_pickle_keeps_strong_listeners_their_order_once_and_settings():
    ee = Tagged()
    ee.name = "bus"
    ee.set_max_listeners(3)
    ee.on("a", module_level_listener)
    ee.once("a", print)
    ee.on("b", len)
    clone = pickle.loads(pickle.dumps(ee))
    assert type(clone) is Tagged and clone.name == "bus" and clone.get_max_listeners() == 3
    assert clone.listeners("a") == [module_level_listener, print]
    assert clone.listeners("b") == [len]
    clone.emit("a")
    assert clone.listeners("a") == [module_level_listener]   # print was a once listener


def test_pickle_drops_weak_listeners_with_one_warning():
    class Owner:
        def handle(self):
            pass

        def __call__(self):
            pass

    ee, owner = EventEmitter(), Owner()
    ee.on("a", owner.handle)
    ee.on("a", owner, weak=True)
    ee.on("b", len)
    with pytest.warns(RuntimeWarning, match="2 weakly held listener") as rec:
        data = pickle.dumps(ee)
    assert len(rec) == 1
    clone = pickle.loads(data)
    assert clone.event_names() == {"b"}


def test_pickling_an_unpicklable_listener_fails_as_pyee_would():
    ee = EventEmitter()
    ee.on("a", lambda: None)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(ee)


def test_setstate_rejects_garbage_and_changes_nothing():
    ee = EventEmitter()
    ee.on("a", len)
    with pytest.raises(TypeError):
        ee.__setstate__("nonsense")
    assert ee.listeners("a") == [len]


def test_events_is_a_read_only_view_of_live_listeners():
    ee = EventEmitter()
    ee.on("a", len)
    ee.once("a", print)
    assert dict(ee._events) == {"a": {len: len, print: print}}
    assert list(ee._events["a"]) == [len, print]
    with pytest.raises(TypeError):
        ee._events["b"] = {}


# ---- many listeners, colliding hashes, hostile equality ----

class SameHash:
    """Callable objects whose hashes all collide; equal only to themselves."""

    def __init__(self, n):
        self.n = n

    def __hash__(self):
        return 7

    def __eq__(self, other):
        return self is other

    def __call__(self, *a):
        pass


def test_thousands_of_listeners_with_colliding_hashes_are_found_and_removed():
    ee = EventEmitter()
    ee.set_max_listeners(0)
    fs = [SameHash(i) for i in range(2000)]
    for f in fs:
        ee.on("e", f)
    for f in fs[::2]:
        ee.remove_listener("e", f)
    assert ee.listeners("e") == fs[1::2]
    ee.remove_listener("e", fs[0])             # already removed: no effect
    assert ee.listeners("e") == fs[1::2]


def test_listener_eq_that_clears_the_emitter_during_a_lookup():
    ee = EventEmitter()

    class Evil:
        def __hash__(self):
            return 1

        def __eq__(self, other):
            ee.remove_all_listeners()
            return False

        def __call__(self):
            pass

    first, second = Evil(), Evil()
    ee.on("e", first)
    ee.on("e", second)          # compares with first: the emitter is cleared meanwhile
    assert ee.listeners("e") in ([second], [])
    for event in ee.event_names():
        assert ee.listener_count(event) == len(ee.listeners(event))


def test_event_eq_that_raises_propagates_and_changes_nothing():
    class BadEvent:
        def __hash__(self):
            return hash("e")

        def __eq__(self, other):
            raise ZeroDivisionError

    ee = EventEmitter()
    ee.on("e", print)
    with pytest.raises(ZeroDivisionError):
        ee.on(BadEvent(), len)
    with pytest.raises(ZeroDivisionError):
        ee.emit(BadEvent())
    assert ee.listeners("e") == [print]


def test_setstate_rejects_malformed_entries_with_type_error():
    for state in [(None, 10, ["not a pair"]), (None, 10, [("e", ["not a pair"])]),
                  (None, 10, [("e", [(print,)])])]:
        with pytest.raises(TypeError):
            EventEmitter().__setstate__(state)


def test_init_again_and_setstate_start_from_no_listeners_as_pyee():
    # pyee's __init__ sets _events = dict() and its __setstate__ replaces _events: the
    # listeners an emitter had are gone, and a state's listeners are all it has
    ee = EventEmitter()
    ee.on("a", print)
    ee.set_max_listeners(3)
    ee.__init__()
    assert ee.event_names() == set() and ee.listeners("a") == []
    assert ee.emit("a") is False
    ee.on("b", len)
    ee.__setstate__(EventEmitter().__getstate__())
    assert ee.event_names() == set()
    src = EventEmitter()
    src.on("c", repr)
    ee.on("b", len)
    ee.__setstate__(src.__getstate__())
    assert ee.event_names() == {"c"} and ee.listeners("c") == [repr]


@pytest.mark.parametrize("state", [
    (None, 10, [("e", [(print, False)]), "not a pair"]),
    (None, 10, [("e", [(print, False), ("not callable", False)])]),
    (None, 10, [(["unhashable"], [(print, False)])]),
])
def test_a_refused_state_leaves_the_listeners_as_they_were(state):
    ee = EventEmitter()
    ee.on("a", len)
    with pytest.raises(TypeError):
        ee.__setstate__(state)
    assert ee.listeners("a") == [len] and ee.event_names() == {"a"}
