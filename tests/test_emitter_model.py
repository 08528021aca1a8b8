"""Operation by operation, memleash.EventEmitter agrees with pyee 14.0.0 itself: return
values, exception types, the calls listeners receive (including listeners that add,
remove, clear and emit while an emit runs), listeners() and event_names().

Listeners here are plain functions, held strongly by both: weakness is the one deliberate
difference and has its own tests."""

import pyee
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import memleash

EVENTS = st.sampled_from(["a", "b", "error", "new_listener"])
IDS = st.integers(0, 5)
ACTIONS = ["none", "remove_self", "remove_other", "add_other", "once_other", "emit", "clear",
           "raise"]


class Side:
    """One emitter with its listener functions (one per id) and the log they write."""

    def __init__(self, emitter, actions):
        self.ee = emitter
        self.log = []
        self.depth = 0
        self.fns = [self._make(i, actions[i]) for i in range(len(actions))]
        self.ids = {f: i for i, f in enumerate(self.fns)}

    def name(self, value):
        if isinstance(value, BaseException):
            return repr(value)
        return ("listener", self.ids[value]) if callable(value) and value in self.ids else value

    def _make(self, i, action):
        kind, event, other = action

        def listener(*args, **kwargs):
            self.log.append((i, tuple(self.name(a) for a in args), sorted(kwargs.items())))
            if self.depth >= 2:
                return   # listeners that add listeners, under new_listener, would recurse
            self.depth += 1
            try:
                act()
            finally:
                self.depth -= 1

        def act():
            if kind == "remove_self":
                try:
                    self.ee.remove_listener(event, listener)
                except KeyError:
                    self.log.append((i, "KeyError"))
            elif kind == "remove_other":
                try:
                    self.ee.remove_listener(event, self.fns[other])
                except KeyError:
                    self.log.append((i, "KeyError"))
            elif kind == "add_other":
                self.ee.on(event, self.fns[other])
            elif kind == "once_other":
                self.ee.once(event, self.fns[other])
            elif kind == "emit":
                self.log.append((i, "nested", self.ee.emit(event, "nested")))
            elif kind == "clear":
                self.ee.remove_all_listeners(event if other % 2 else None)
            elif kind == "raise":
                raise LookupError(i)

        return listener


class EmitterMachine(RuleBasedStateMachine):
    @initialize(actions=st.lists(
        st.tuples(st.sampled_from(ACTIONS), st.sampled_from(["a", "b"]), IDS),
        min_size=6, max_size=6))
    def setup(self, actions):
        self.sides = [Side(memleash.EventEmitter(), actions), Side(pyee.EventEmitter(), actions)]

    def same(self, op):
        outcomes = []
        for side in self.sides:
            try:
                result = ("ok", op(side))
            except (KeyError, LookupError, ValueError, pyee.PyeeException,
                    memleash.PyeeException) as exc:
                kind = "PyeeError" if isinstance(exc, (pyee.PyeeError, memleash.PyeeError)) \
                    else type(exc).__name__
                result = (kind, str(exc) if kind == "PyeeError" else None)
            outcomes.append((result, side.log[:]))
            side.log.clear()
        assert outcomes[0] == outcomes[1]

    @rule(event=EVENTS, i=IDS)
    def on(self, event, i):
        self.same(lambda s: s.name(s.ee.on(event, s.fns[i])))

    @rule(event=EVENTS, i=IDS)
    def once(self, event, i):
        self.same(lambda s: s.name(s.ee.once(event, s.fns[i])))

    @rule(event=EVENTS, i=IDS)
    def remove_listener(self, event, i):
        self.same(lambda s: s.ee.remove_listener(event, s.fns[i]))

    @rule(event=st.one_of(st.none(), EVENTS))
    def remove_all(self, event):
        self.same(lambda s: s.ee.remove_all_listeners(event))

    @rule(event=EVENTS, arg=st.sampled_from([1, "x", None]))
    def emit(self, event, arg):
        self.same(lambda s: s.ee.emit(event, arg))

    @rule()
    def emit_error_exception(self):
        self.same(lambda s: s.ee.emit("error", ValueError("boom")))

    @invariant()
    def same_listeners(self):
        if not hasattr(self, "sides"):
            return
        views = [(sorted(s.ee.event_names()),
                  {e: [s.name(f) for f in s.ee.listeners(e)] for e in ["a", "b", "error",
                                                                       "new_listener"]})
                 for s in self.sides]
        assert views[0] == views[1]


EmitterMachine.TestCase.settings = settings(max_examples=400, stateful_step_count=30,
                                            deadline=None)
TestEmitterAgainstPyee = EmitterMachine.TestCase
