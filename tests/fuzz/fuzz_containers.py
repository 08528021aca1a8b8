"""atheris harness (make fuzz): random operation sequences against each container and its
reference model, with the extension built for libFuzzer coverage and AddressSanitizer.

Each input picks a container and a configuration, then a sequence of operations; after
every operation the results (or exception types) must agree with the model and the
invariants must hold. Containers:

- the five count/size/byte-bounded caches (tests/model.py's ModelCache), with hostile
  lookups now and then (a key whose __hash__ collides and whose __eq__ raises);
- TTLCache and TLRUCache over a fake clock that moves forwards and backwards, against
  test_model_timed.py's exact model;
- EventEmitter against a plain-Python emitter model (listeners in order, once, removal);
- sizes near the counters' limits (2**53, 2**63, 2**64, in units and in bytes) against
  the model's exact Python arithmetic: memleash counts them exactly or refuses them;
- re-entrant keys whose __hash__ and __eq__ re-initialise the cache (__init__,
  __setstate__), resume an iterator taken earlier, store, delete, clear or pickle it, in
  the middle of a look-up: nothing may crash (ASan), and the cache stays consistent.

    python tests/fuzz/fuzz_containers.py -seed=1 -runs=20000     (CI: bounded, reproducible)
    python tests/fuzz/fuzz_containers.py -max_total_time=600     (a long run)
"""

import math
import os
import pickle
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

with atheris.instrument_imports(include=["memleash"]):
    import memleash

from clock import Clock  # noqa: E402
from model import POLICY, ModelCache, middle, nbytes, units  # noqa: E402
from test_model_timed import TimedModel, ttu  # noqa: E402

NAMES = list(POLICY)
BIG_UNITS = [1, 2**52, 2**53 - 1, 2**53, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64]
BIG_BYTES = [20, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64 - 3, 2**64 - 2, 2**64 - 1, 2**64]


def big_units(value):
    return BIG_UNITS[value % len(BIG_UNITS)]


def big_bytes(key, value):
    return BIG_BYTES[value % len(BIG_BYTES)]


# (maxsize, getsizeof, max_bytes, sizeof): sizing by the model's small functions, or by
# sizes near 2**53, 2**63 and 2**64
SIZINGS = {None: None, "units": units, "big": big_units}
CONFIGS = [(4, None, None, None), (10, "units", None, None), (6, None, 150, nbytes),
           (12, "units", 120, nbytes), (0, None, None, None), (1, None, 40, nbytes),
           (2**53, "big", None, None), (2**63 - 1, "big", None, None),
           (2**64, "big", None, None), (math.inf, "big", None, None),
           (math.inf, None, None, big_bytes), (5, None, 2**64 - 2, big_bytes),
           (2**63, "big", 2**63, big_bytes)]


class Colliding:
    """A key whose hash collides with the small ints, and whose __eq__ may raise."""

    def __init__(self, n, raises):
        self.n, self.raises = n, raises

    def __hash__(self):
        return self.n % 4

    def __eq__(self, other):
        if self.raises:
            raise ValueError("eq")
        return isinstance(other, Colliding) and other.n == self.n

    def __repr__(self):
        return f"Colliding({self.n})"


def outcome(op, impl):
    try:
        return ("ok", op(impl))
    except (KeyError, ValueError, OverflowError) as exc:
        return (type(exc).__name__, None)


def fuzz_cache(fdp):
    name = NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)]
    maxsize, sizing, max_bytes, sizeof = CONFIGS[fdp.ConsumeIntInRange(0, len(CONFIGS) - 1)]
    getsizeof = SIZINGS[sizing]
    budget = {"max_bytes": max_bytes} if max_bytes is not None else {}
    if sizeof is not None:
        budget["sizeof"] = sizeof
    extra = {"choice": middle} if name == "RRCache" else {}
    cache = getattr(memleash, name)(maxsize, getsizeof=getsizeof, **extra, **budget)
    model = ModelCache(maxsize, POLICY[name], getsizeof, max_bytes, sizeof, choice=middle)
    hostile = Colliding(fdp.ConsumeIntInRange(0, 7), True)
    trail = [(name, maxsize, getsizeof, max_bytes)]   # what led here, for the report
    for _ in range(fdp.ConsumeIntInRange(0, 80)):
        op = fdp.ConsumeIntInRange(0, 10)
        key = fdp.ConsumeIntInRange(0, 12)
        value = fdp.ConsumeIntInRange(0, 40)
        trail.append((op, key, value))
        if op == 10:   # a hostile lookup: an error or a miss, and the cache unchanged
            for probe in (lambda c: c.get(hostile), lambda c: hostile in c,
                          lambda c: c.pop(hostile, None)):
                try:
                    assert probe(cache) is not True
                except ValueError:
                    pass
            op = 9
        ops = [
            lambda c: c.__setitem__(key, value),
            lambda c: c[key],
            lambda c: c.get(key, "dflt"),
            lambda c: key in c,
            lambda c: c.__delitem__(key),
            lambda c: c.pop(key, "dflt"),
            lambda c: c.setdefault(key, value),
            lambda c: c.popitem(),
            lambda c: c.clear(),
            lambda c: list(c.items()),
        ]
        mine = outcome(ops[op], cache)
        # items() reads each value through __getitem__, a use (cachetools' views do)
        theirs = (("ok", [(k, model[k]) for k in model.keys()]) if op == 9
                  else outcome(ops[op], model))
        assert mine == theirs, (mine, theirs, trail)
        assert list(cache) == model.keys(), (name, list(cache), model.keys())
        assert len(cache) == len(model.data)
        assert cache.currsize == model.currsize
        if sizeof is not None:
            assert cache.currbytes == model.currbytes
        if cache.maxbytes is not None:
            assert cache.currbytes <= cache.maxbytes


class EmitterModel:
    """pyee's semantics: an event's listeners are a dict keyed by the function (adding one
    again keeps its place and takes the new once-ness), called in order."""

    def __init__(self):
        self.events = {}

    def on(self, event, f, once=False):
        self.events.setdefault(event, {})[f] = once

    def remove(self, event, f):
        if event not in self.events:
            return   # an event with no listeners: nothing to do
        listeners = self.events[event]
        if f not in listeners:
            return   # pyee 16: an unknown listener, no effect (14 raised KeyError)
        del listeners[f]
        if not listeners:
            del self.events[event]

    def emit(self, event, log):
        entries = list(self.events.get(event, {}).items())
        for f, once in entries:
            if once:
                self.remove(event, f)
            f(log)
        return bool(entries)

    def listeners(self, event):
        return list(self.events.get(event, {}))


def fuzz_emitter(fdp):
    ee, model = memleash.EventEmitter(), EmitterModel()
    funcs = [lambda log, i=i: log.append(i) for i in range(6)]
    for _ in range(fdp.ConsumeIntInRange(0, 60)):
        op = fdp.ConsumeIntInRange(0, 4)
        event = fdp.ConsumeIntInRange(0, 3)
        f = funcs[fdp.ConsumeIntInRange(0, len(funcs) - 1)]
        if op == 0:
            ee.on(event, f)
            model.on(event, f)
        elif op == 1:
            ee.once(event, f)
            model.on(event, f, once=True)
        elif op == 2:
            mine = outcome(lambda e: e.remove_listener(event, f), ee)[0]
            theirs = outcome(lambda m: m.remove(event, f), model)[0]
            assert mine == theirs, (mine, theirs)
        elif op == 3:
            got, want = [], []
            assert ee.emit(event, got) == model.emit(event, want)
            assert got == want, (got, want)
        else:
            ee.remove_all_listeners(event)
            model.events.pop(event, None)
        for e in range(4):
            assert ee.listeners(e) == model.listeners(e), (e, ee.listeners(e), model.listeners(e))


def fuzz_timed(fdp):
    clock, maxsize = Clock(), fdp.ConsumeIntInRange(1, 5)
    if fdp.ConsumeBool():
        ttl = fdp.ConsumeIntInRange(0, 4)
        cache, model = memleash.TTLCache(maxsize, ttl, timer=clock), TimedModel(maxsize, ttl=ttl)
    else:
        cache, model = memleash.TLRUCache(maxsize, ttu, timer=clock), TimedModel(maxsize, ttu=ttu)
    trail = [type(cache).__name__, maxsize]
    for _ in range(fdp.ConsumeIntInRange(0, 60)):
        op, key, value = (fdp.ConsumeIntInRange(0, 5), fdp.ConsumeIntInRange(0, 9),
                          fdp.ConsumeIntInRange(0, 9))
        trail.append((op, key, value))
        now = clock.time
        if op == 0:
            clock.time += value % 4
        elif op == 1:
            clock.time -= value % 3   # exact even when time runs backwards
        elif op == 2:
            cache[key] = value
            model.set(key, value, now)
        elif op == 3:
            assert cache.get(key, "missing") == model.get(key, now), trail
        elif op == 4:
            assert (key in cache) == model.alive(key, now), trail
        else:
            assert cache.expire() == model.expire(now), trail
        now = clock.time
        visible = model.visible(now)
        assert sorted(cache) == visible, (sorted(cache), visible, trail)
        assert len(cache) == len(visible), trail   # len() expires, as cachetools' does
        model.expire(now)


class Hook:
    """A key whose __hash__ or __eq__ runs the next action the fuzzer chose for it: the
    cache re-initialised (__init__ or __setstate__ of a state saved earlier), an iterator
    taken earlier resumed, another key stored or deleted, the cache cleared or pickled."""

    def __init__(self, n, hooks, where):
        self.n, self.hooks, self.where = n, hooks, where

    def _fire(self, where):
        if self.where == where and self.hooks.actions:
            action = self.hooks.actions.pop()
            try:
                action()
            except (KeyError, ValueError, RuntimeError, StopIteration, TypeError,
                    AttributeError, pickle.PicklingError):
                pass   # refused, as documented; what matters is what follows

    def __hash__(self):
        self._fire("hash")
        return self.n % 3

    def __eq__(self, other):
        self._fire("eq")
        return isinstance(other, Hook) and other.n == self.n


class Hooks:
    def __init__(self):
        self.actions = []


def fuzz_reentrant(fdp):
    name = (NAMES + ["TTLCache"])[fdp.ConsumeIntInRange(0, len(NAMES))]
    maxsize = fdp.ConsumeIntInRange(1, 8)
    if name == "TTLCache":
        clock = Clock()
        make_args = (maxsize, 5)
        make_kw = {"timer": clock}
    else:
        make_args, make_kw = (maxsize,), {"choice": middle} if name == "RRCache" else {}
    if fdp.ConsumeBool():
        make_kw = dict(make_kw, max_bytes=400, sizeof=nbytes)
    cls = getattr(memleash, name)
    cache = cls(*make_args, **make_kw)
    hooks = Hooks()
    saved = [cache.__getstate__()]
    iters = [iter(cache)]

    def resume():
        for it in iters:
            key = next(it, None)
            assert key is None or isinstance(key, (int, Hook))

    choices = [
        lambda: cache.__init__(*make_args, **make_kw),
        lambda: cache.__setstate__(saved[-1]),
        resume,
        lambda: cache.__setitem__(fdp.ConsumeIntInRange(0, 9), fdp.ConsumeIntInRange(0, 9)),
        lambda: cache.pop(fdp.ConsumeIntInRange(0, 9), None),
        cache.clear,
        lambda: saved.append(pickle.loads(pickle.dumps(cache)).__getstate__()),
        lambda: iters.append(iter(cache)),
    ]
    for _ in range(fdp.ConsumeIntInRange(0, 40)):
        hooks.actions = [choices[fdp.ConsumeIntInRange(0, len(choices) - 1)]
                         for _ in range(fdp.ConsumeIntInRange(0, 3))]
        key = Hook(fdp.ConsumeIntInRange(0, 9), hooks, "eq" if fdp.ConsumeBool() else "hash")
        op = fdp.ConsumeIntInRange(0, 6)
        try:
            if op == 0:
                cache[key] = fdp.ConsumeIntInRange(0, 9)
            elif op == 1:
                cache.get(key)
            elif op == 2:
                key in cache
            elif op == 3:
                cache.pop(key, None)
            elif op == 4:
                cache.setdefault(key, 1)
            elif op == 5:
                resume()
            else:
                saved.append(cache.__getstate__())
        except (KeyError, ValueError, RuntimeError, TypeError):
            pass
        hooks.actions = []
        keys = list(cache)
        assert len(keys) == len(cache) <= maxsize
        assert cache.currsize <= cache.maxsize
        if cache.maxbytes is not None:
            assert cache.currbytes <= cache.maxbytes


def test_one_input(data):
    fdp = atheris.FuzzedDataProvider(data)
    which = fdp.ConsumeIntInRange(0, 6)
    if which == 0:
        fuzz_emitter(fdp)
    elif which == 1:
        fuzz_timed(fdp)
    elif which == 2:
        fuzz_reentrant(fdp)
    else:
        fuzz_cache(fdp)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
