"""Emitter workloads for bench/run.py: memleash.EventEmitter against pyee, blinker and
psygnal, with bound-method listeners (what leaks when held strongly)."""

from __future__ import annotations

import blinker
import psygnal
import pyee

import memleash


class Owner:
    def handle(self, *args, **kwargs):
        pass


class PsygnalHost:
    changed = psygnal.Signal(object)


def unlimited_emitter():
    ee = memleash.EventEmitter()
    ee.set_max_listeners(0)   # the benchmark subscribes thousands on purpose
    return ee


def adapters():
    """Per library: (make, subscribe(bus, f), unsubscribe(bus, f)); emit_loop calls each."""
    return {
        "memleash.EventEmitter": (unlimited_emitter, lambda b, f: b.on("e", f),
                                  lambda b, f: b.remove_listener("e", f)),
        "pyee.EventEmitter": (pyee.EventEmitter, lambda b, f: b.on("e", f),
                              lambda b, f: b.remove_listener("e", f)),
        "blinker.Signal": (blinker.Signal, lambda b, f: b.connect(f),
                           lambda b, f: b.disconnect(f)),
        "psygnal emit": (PsygnalHost, lambda b, f: b.changed.connect(f),
                         lambda b, f: b.changed.disconnect(f)),
        "psygnal emit_fast": (PsygnalHost, lambda b, f: b.changed.connect(f),
                              lambda b, f: b.changed.disconnect(f)),
    }


def emit_loop(name, bus, reps):
    """A closure that emits `reps` times the way each library is called."""
    if name.startswith("memleash") or name.startswith("pyee"):
        emit = bus.emit

        def run(_):
            for _ in range(reps):
                emit("e", 1)
    elif name.startswith("blinker"):
        send = bus.send

        def run(_):
            for _ in range(reps):
                send(1)
    else:
        emit = bus.changed.emit_fast if name.endswith("emit_fast") else bus.changed.emit

        def run(_):
            for _ in range(reps):
                emit(1)
    return run


def workload_emit(interleaved, table, quick):
    out = []
    for n in (0, 1, 10, 100):
        reps = (2_000 if quick else 20_000) // max(1, n // 10)
        owners = [Owner() for _ in range(n)]
        buses, runs = {}, {}
        for name, (make, subscribe, _) in adapters().items():
            bus = make()
            for o in owners:
                subscribe(bus, o.handle)
            buses[name] = bus
            runs[name] = emit_loop(name, bus, reps)
        makers = {name: (lambda name=name: name) for name in runs}
        results = interleaved(makers, lambda c: None, lambda name: runs[name](None), reps)
        out.append(table(f"`emit` to {n} bound-method listener{'s' if n != 1 else ''}",
                         results, "memleash.EventEmitter", unit="ns/emit"))
    return "\n".join(out)


def workload_subscribe(interleaved, table, quick):
    n = 2_000 if quick else 10_000
    owners = [Owner() for _ in range(n)]
    methods = [o.handle for o in owners]
    makers, runs = {}, {}
    for name, (make, subscribe, unsubscribe) in adapters().items():
        if name.endswith("emit_fast"):
            continue
        name = name.replace(" emit", "")

        def run(_, make=make, subscribe=subscribe, unsubscribe=unsubscribe):
            bus = make()
            for m in methods:
                subscribe(bus, m)
            for m in reversed(methods[-100:]):
                unsubscribe(bus, m)
        makers[name] = lambda name=name: name
        runs[name] = run
    results = interleaved(makers, lambda c: None, lambda name: runs[name](None), n + 100)
    return table(f"Subscribe {n:,} bound methods to one event, then unsubscribe the last 100",
                 results, "memleash.EventEmitter", unit="ns/op")


def workload_owner_death(interleaved, table, quick):
    n = 2_000 if quick else 10_000
    makers, runs = {}, {}
    for name, (make, subscribe, _) in adapters().items():
        if name.startswith("pyee") or name.endswith("emit_fast"):
            continue   # pyee holds owners strongly: they never die while subscribed
        name = name.replace(" emit", "")

        def run(_, make=make, subscribe=subscribe):
            bus = make()
            for _ in range(n):
                o = Owner()
                subscribe(bus, o.handle)
                del o   # dies at once: the library unlinks its listener
        makers[name] = lambda name=name: name
        runs[name] = run
    results = interleaved(makers, lambda c: None, lambda name: runs[name](None), n)
    return table(f"Subscribe a bound method, then its object dies ({n:,} owners)", results,
                 "memleash.EventEmitter", unit="ns/owner")
