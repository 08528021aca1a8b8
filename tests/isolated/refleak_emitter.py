"""Run in a subprocess by tests/test_refleaks.py: mixed emitter operations in rounds,
with owners that die all the time, listeners that re-enter, and hooks (see leakcheck)."""

import collections
import functools
import os
import pickle
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import leakcheck  # noqa: E402
import memleash  # noqa: E402

OPS = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
EVENTS = [f"ev{i}" for i in range(8)] + [10**6 + i for i in range(4)]
ARGS = [f"arg{i}" for i in range(20)] + [object() for _ in range(10)]


def make_listener(i):
    def listener(*args, **kwargs):
        return i
    return listener


LISTENERS = [make_listener(i) for i in range(16)]


class Owner:
    def handle(self, *args, **kwargs):
        pass


PICKLED = memleash.EventEmitter()
PICKLED.on("a", len)
PICKLED.once("b", print)


class Hooked(memleash.EventEmitter):
    def _emit_run(self, f, args, kwargs):
        super()._emit_run(f, args, kwargs)


def one_round(rnd, emitters):
    owners = []
    for _ in range(OPS):
        ee = emitters[rnd.randrange(len(emitters))]
        event = EVENTS[rnd.randrange(len(EVENTS))]
        f = LISTENERS[rnd.randrange(len(LISTENERS))]
        op = rnd.randrange(100)
        try:
            if op < 20:
                ee.on(event, f)
            elif op < 25:
                ee.once(event, f)
            elif op < 35:
                o = Owner()
                ee.on(event, o.handle)
                if rnd.random() < 0.5:
                    owners.append(o)
            elif op < 37:
                o = Owner()
                ee.on(event, functools.partial(o.handle, ARGS[0]))
                owners.append(o)
            elif op < 38:
                d = collections.deque(maxlen=2)                 # a built-in type's methods
                ee.on(event, d.append)
                ee.on(event, functools.partial(d.extend, ARGS[:2]))
                if rnd.random() < 0.5:
                    owners.append(d)
            elif op < 45 and owners:
                owners.pop(rnd.randrange(len(owners)))          # an owner dies
            elif op < 55:
                ee.remove_listener(event, f)
            elif op < 75:
                ee.emit(event, ARGS[rnd.randrange(len(ARGS))], key=ARGS[0])
            elif op < 78:
                for g in ee.listeners(event)[::3]:
                    ee.remove_listener(event, g)                # rebuilt partials too
                ee.event_names()
            elif op < 80:
                dict(ee._events)
            elif op < 82:
                def reentrant(*a, ee=ee, event=event, f=f):
                    ee.remove_listener(event, reentrant)
                    ee.on(event, f)
                    ee.emit(EVENTS[0], "nested")
                ee.on(event, reentrant)
            elif op < 83:
                ee.emit("error", ValueError("x"))
            elif op < 84:
                ee.emit("error", "text")
            elif op < 85:
                pickle.loads(pickle.dumps(PICKLED))
            elif op < 87:
                ee.remove_all_listeners(event)
            elif op < 88:
                ee.on([], f)                                    # unhashable event
            elif op < 89:
                ee._ml_referents, memleash.report().to_prometheus()   # the report's reads
                memleash.EventEmitter(name=event if isinstance(event, str) else None)
            else:
                ee.listener_count(event)
        except (KeyError, ValueError, TypeError, memleash.PyeeError, RuntimeWarning):
            pass
    owners.clear()
    for ee in emitters:
        ee.remove_all_listeners()


def main():
    import warnings

    warnings.simplefilter("ignore")
    rnd = random.Random(99)
    emitters = [memleash.EventEmitter(), Hooked(), memleash.EventEmitter()]
    for ee in emitters:
        ee.set_max_listeners(0)
    return leakcheck.run(lambda: one_round(rnd, emitters), EVENTS + ARGS + LISTENERS, 4, 10,
                         4096)


if __name__ == "__main__":
    sys.exit(main())
