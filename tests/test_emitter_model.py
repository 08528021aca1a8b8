"""Operation by operation, memleash.EventEmitter agrees with pyee 16.0.1 itself: return
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


# ---- weak listeners: pyee plus explicit removal is the reference model ----

OWNERS = st.integers(0, 3)


class Owner:
    def __init__(self, side, n):
        self.side, self.n, self.dead = side, n, False

    def handle(self, *args):
        if not self.dead:     # the model's owner "dies" without pyee knowing
            self.side.log.append(("owner", self.n, args))


class WeakSide:
    def __init__(self, emitter, is_model):
        self.ee, self.model, self.log = emitter, is_model, []
        self.owners = [Owner(self, n) for n in range(4)]
        self.killers = [self._killer(n) for n in range(4)]

    def _killer(self, n):
        def kill_during_emit(*args):
            self.log.append(("killer", n))
            self.kill(n)
        return kill_during_emit

    def kill(self, n):
        owner = self.owners[n]
        if owner is None:
            return
        self.owners[n] = None
        if self.model:
            # pyee holds it: mark it dead and unsubscribe it everywhere, as the weakref
            # callback does in memleash (a running emit may still reach it: dead, silent)
            owner.dead = True
            for event in list(self.ee.event_names()):
                if owner.handle in self.ee.listeners(event):
                    self.ee.remove_listener(event, owner.handle)
        del owner             # memleash: the last reference, so its listeners go now

    def revive(self, n):
        if self.owners[n] is None:
            self.owners[n] = Owner(self, n)

    def names(self, fs):
        return [("owner", f.__self__.n) if hasattr(f, "__self__") else ("killer",
                self.killers.index(f)) for f in fs]


class WeakEmitterMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.sides = [WeakSide(memleash.EventEmitter(), False), WeakSide(pyee.EventEmitter(), True)]

    def same(self, op):
        outcomes = []
        for side in self.sides:
            try:
                result = ("ok", op(side))
            except KeyError:
                result = ("KeyError", None)
            outcomes.append((result, side.log[:]))
            side.log.clear()
        assert outcomes[0] == outcomes[1]

    @rule(event=st.sampled_from(["a", "b"]), n=OWNERS, once=st.booleans())
    def subscribe(self, event, n, once):
        def op(s):
            if s.owners[n] is not None:
                (s.ee.once if once else s.ee.on)(event, s.owners[n].handle)
        self.same(op)

    @rule(event=st.sampled_from(["a", "b"]), n=OWNERS)
    def subscribe_killer(self, event, n):
        self.same(lambda s: s.ee.on(event, s.killers[n]) and None)

    @rule(event=st.sampled_from(["a", "b"]), n=OWNERS)
    def unsubscribe(self, event, n):
        def op(s):
            if s.owners[n] is not None:
                s.ee.remove_listener(event, s.owners[n].handle)
        self.same(op)

    @rule(n=OWNERS)
    def kill(self, n):
        self.same(lambda s: s.kill(n))

    @rule(n=OWNERS)
    def revive(self, n):
        self.same(lambda s: s.revive(n))

    @rule(event=st.sampled_from(["a", "b"]))
    def emit(self, event):
        # pyee reports "handled" for a dead owner still in its snapshot: compare the calls
        self.same(lambda s: (s.ee.emit(event, 1), None)[1])

    @invariant()
    def same_listeners(self):
        if not hasattr(self, "sides"):
            return
        views = [{e: s.names(s.ee.listeners(e)) for e in ["a", "b"]} for s in self.sides]
        assert views[0] == views[1]


WeakEmitterMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40,
                                                deadline=None)
TestWeakEmitterAgainstPyeeWithRemoval = WeakEmitterMachine.TestCase
