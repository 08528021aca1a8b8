"""memleash.acached: single flight per key and event loop that never hangs — whatever the
coroutine or the store raises, whoever is cancelled, whatever awaits itself, on as many
event loops as there are threads.

No test here waits on a clock. A call that would hang shows as a task still pending once
its event loop has nothing left to run (quiesce(), then an assertion); run() then
cancels it and moves on, so a regression fails instead of blocking the suite."""

import asyncio
import collections.abc
import threading

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, invariant, precondition, rule)

import memleash


def run(coro):
    """asyncio.run(coro), except that tasks left waiting after it are cancelled and given
    a bounded number of turns, not awaited until they finish (a hang would never)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(quiesce())
        loop.close()


async def quiesce(rounds=50):
    """Lets every task of this loop run until all that is left is waiting (nothing in this
    file sleeps on a clock, so 50 turns of the loop are far more than any chain needs)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class Remote(collections.abc.MutableMapping):
    """A mapping backed by a 'remote store': a store raises `failure` once if it is set."""

    def __init__(self):
        self.data, self.failure, self.stores = {}, None, 0

    def __getitem__(self, key):
        return self.data[key]

    def __setitem__(self, key, value):
        self.stores += 1
        failure, self.failure = self.failure, None
        if failure is not None:
            raise failure
        self.data[key] = value

    def __delitem__(self, key):
        del self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


# ---------------------------------------------------------------------------------------
# the basics

def test_acached_runs_the_coroutine_once_for_concurrent_awaits():
    calls = []

    @memleash.acached(memleash.LRUCache(10), info=True)
    async def fetch(key):
        calls.append(key)
        await asyncio.sleep(0)
        return key.upper()

    async def main():
        return await asyncio.gather(*(fetch("a") for _ in range(20)))

    assert run(main()) == ["A"] * 20 and calls == ["a"]
    assert fetch.cache_info() == (19, 1, 10, 1)
    assert run(fetch("a")) == "A" and fetch.cache_info().hits == 20


def test_acached_exception_reaches_every_waiter_and_is_not_cached():
    calls = []

    @memleash.acached(memleash.LRUCache(10))
    async def fail(key):
        calls.append(key)
        await asyncio.sleep(0)
        raise LookupError(key)

    async def main():
        return await asyncio.gather(*(fail("k") for _ in range(5)), return_exceptions=True)

    results = run(main())
    assert all(isinstance(r, LookupError) for r in results) and calls == ["k"]
    assert len(fail.cache) == 0 and fail._ml_pending() == []
    run(main())
    assert calls == ["k", "k"]                   # not cached: the next await runs it again


def test_acached_a_waiter_takes_over_when_the_leader_is_cancelled():
    calls, gates = [], []

    @memleash.acached(memleash.LRUCache(10))
    async def compute(key):
        calls.append(key)
        gates.append(asyncio.get_running_loop().create_future())
        await gates[-1]
        return key * 2

    async def main():
        leader = asyncio.ensure_future(compute(2))
        await quiesce()                          # the leader starts computing
        waiters = [asyncio.ensure_future(compute(2)) for _ in range(3)]
        await quiesce()
        leader.cancel()
        await quiesce()                          # the first waiter computes now
        assert len(gates) == 2 and not any(w.done() for w in waiters)
        gates[-1].set_result(None)
        await quiesce()
        return leader.cancelled(), [w.result() for w in waiters]

    cancelled, results = run(main())
    assert cancelled and results == [4, 4, 4] and calls == [2, 2]
    assert compute._ml_pending() == []


def test_a_waiter_cancelled_with_its_leader_stays_cancelled():
    gate = []

    @memleash.acached(memleash.LRUCache(10))
    async def compute(key):
        gate.append(asyncio.get_running_loop().create_future())
        return await gate[-1]

    async def main():
        leader = asyncio.ensure_future(compute(1))
        await quiesce()
        waiter, other = asyncio.ensure_future(compute(1)), asyncio.ensure_future(compute(1))
        await quiesce()
        leader.cancel()
        waiter.cancel()                          # in the same turn of the loop
        await quiesce()
        assert waiter.cancelled() and not other.done()   # other leads now
        gate[-1].set_result("v")
        await quiesce()
        return other.result()

    assert run(main()) == "v" and compute._ml_pending() == []


# ---------------------------------------------------------------------------------------
# a store that raises (issue 19, item 3)

def sizeof_fails(key, value):
    raise ConnectionError("sizeof")


STORES = {
    "remote mapping": lambda: Remote(),
    "sizeof=": lambda: memleash.LRUCache(10, max_bytes=10_000, sizeof=sizeof_fails),
}


@pytest.mark.parametrize("make", STORES.values(), ids=STORES.keys())
def test_a_store_error_reaches_the_leader_and_its_waiters_and_frees_the_key(make):
    cache, calls = make(), []
    if isinstance(cache, Remote):
        cache.failure = ConnectionError("remote store down")

    @memleash.acached(cache, info=True)
    async def load(key):
        calls.append(key)
        await asyncio.sleep(0)
        return [key]

    async def main():
        tasks = [asyncio.ensure_future(load("k")) for _ in range(4)]
        await quiesce()
        assert all(t.done() for t in tasks), "a waiter hangs"
        return [t.exception() for t in tasks]

    errors = run(main())
    assert all(isinstance(e, ConnectionError) for e in errors) and calls == ["k"]
    assert load._ml_pending() == []
    if isinstance(cache, Remote):               # the store works again: cached now
        assert run(load("k")) == ["k"] and run(load("k")) == ["k"] and calls == ["k", "k"]
    else:                                       # still failing: recomputed every time
        with pytest.raises(ConnectionError):
            run(load("k"))
        assert calls == ["k", "k"]


def test_a_value_error_while_storing_means_not_cached():
    cache = Remote()
    cache.failure = ValueError("too large")

    calls = []

    @memleash.acached(cache)
    async def load(key):
        calls.append(key)
        await asyncio.sleep(0)
        return [key]

    async def main():
        return await asyncio.gather(load(1), load(1))

    assert run(main()) == [[1], [1]] and calls == [1]
    assert len(cache) == 0 and cache.stores == 1 and load._ml_pending() == []


# ---------------------------------------------------------------------------------------
# awaiting one's own key (issue 19, item 4)

def test_a_coroutine_awaiting_its_own_key_raises_runtime_error():
    @memleash.acached(memleash.LRUCache(10))
    async def f(x):
        return await f(x)

    async def main():
        task = asyncio.ensure_future(f(1))
        await quiesce()
        assert task.done(), "it waits for itself"
        return task.exception()

    for _ in range(2):                           # the key is free again each time
        assert isinstance(run(main()), RuntimeError)
    assert f._ml_pending() == []


def test_awaiting_its_own_key_through_another_memoized_coroutine_raises():
    @memleash.acached(memleash.LRUCache(10))
    async def a(x):
        return await b(x)

    @memleash.acached(memleash.LRUCache(10))
    async def b(x):
        return await a(x)

    async def main():
        tasks = [asyncio.ensure_future(a(1)), asyncio.ensure_future(a(1))]   # and a waiter
        await quiesce()
        assert all(t.done() for t in tasks), "it waits for itself"
        return [t.exception() for t in tasks]

    errors = run(main())
    assert [type(e) for e in errors] == [RuntimeError, RuntimeError]
    assert "recursive await" in str(errors[0])
    assert a._ml_pending() == [] and b._ml_pending() == []


def test_two_tasks_waiting_for_each_others_keys_raise_instead_of_deadlocking():
    gates = {}

    @memleash.acached(memleash.LRUCache(10))
    async def a(x):
        await gates["a"]
        return await b(x)

    @memleash.acached(memleash.LRUCache(10))
    async def b(x):
        await gates["b"]
        return await a(x)

    async def main():
        loop = asyncio.get_running_loop()
        gates.update(a=loop.create_future(), b=loop.create_future())
        first, second = asyncio.ensure_future(a(1)), asyncio.ensure_future(b(1))
        await quiesce()                          # each leads its own key
        gates["a"].set_result(None)
        await quiesce()                          # first waits for b(1), led by second
        gates["b"].set_result(None)
        await quiesce()                          # second would wait for a(1): a cycle
        assert first.done() and second.done(), "deadlock"
        return first.exception(), second.exception()

    assert [type(e) for e in run(main())] == [RuntimeError, RuntimeError]


# ---------------------------------------------------------------------------------------
# several event loops (issue 19, item 5)

def test_each_event_loop_computes_on_its_own_and_shares_results_through_the_cache():
    started, calls, outcomes = threading.Event(), [], {}
    release = {}

    @memleash.acached(memleash.LRUCache(10))
    async def fetch(key):
        calls.append(threading.current_thread().name)
        if threading.current_thread().name == "first":
            loop = asyncio.get_running_loop()
            release["first"] = (loop, loop.create_future())
            started.set()
            await release["first"][1]            # still computing while "second" calls
        return f"{key} from {threading.current_thread().name}"

    def call_in_own_loop():
        try:
            outcomes[threading.current_thread().name] = asyncio.run(fetch("k"))
        except BaseException as exc:             # reported below
            outcomes[threading.current_thread().name] = exc

    first = threading.Thread(target=call_in_own_loop, name="first")
    first.start()
    assert started.wait(60)                      # (60 s: only a guard against a hang)
    second = threading.Thread(target=call_in_own_loop, name="second")
    second.start()
    second.join(60)                              # computes at once, on its own loop
    assert not second.is_alive()
    loop, gate = release["first"]
    loop.call_soon_threadsafe(gate.set_result, None)
    first.join(60)
    assert not first.is_alive()
    assert outcomes == {"first": "k from first", "second": "k from second"}
    assert sorted(calls) == ["first", "second"] and fetch._ml_pending() == []
    assert run(fetch("k")) == "k from first"     # stored last: cachetools' cache[k] = v


def test_a_call_outside_an_event_loop_raises_as_asyncio_does():
    @memleash.acached(memleash.LRUCache(10))
    async def f(x):
        return x

    coro = f(1)
    with pytest.raises(RuntimeError, match="no running event loop"):
        coro.send(None)


# ---------------------------------------------------------------------------------------
# cache_clear() mid-flight

def test_cache_clear_mid_flight_forgets_the_computation_in_flight():
    gates = []

    @memleash.acached(memleash.LRUCache(10), info=True)
    async def load(key):
        gates.append(asyncio.get_running_loop().create_future())
        return await gates[-1]

    async def main():
        before = [asyncio.ensure_future(load(1)) for _ in range(2)]
        await quiesce()
        load.cache_clear()                       # e.g. the data changed
        after = [asyncio.ensure_future(load(1)) for _ in range(2)]
        await quiesce()
        assert len(gates) == 2                   # a new computation for the later calls
        gates[0].set_result("old")
        await quiesce()
        assert [t.result() for t in before] == ["old", "old"] and len(load.cache) == 0
        gates[1].set_result("new")
        await quiesce()
        return [t.result() for t in after]

    assert run(main()) == ["new", "new"]
    assert run(load(1)) == "new" and load._ml_pending() == []
    assert load.cache_info() == (3, 1, 10, 1)    # since the clear: the new computation, and
    #                                              the two waiters and the last call served


# ---------------------------------------------------------------------------------------
# every path, over random interleavings: a model of single flight on two event loops

class Abort(BaseException):
    """An exception that is not an Exception (asyncio passes it through like any)."""


OUTCOMES = ["value", "error", "abort", "store: ConnectionError", "store: ValueError",
            "cancelled inside"]


class SingleFlight(RuleBasedStateMachine):
    """Calls on two event loops (driven in turn by this thread), computations finished
    with each outcome, cancellations of leaders and waiters, cache_clear(): after every
    step each finished call has the outcome the model says, the pending table holds just
    the computations in flight, and at the end every call is resolved."""

    def __init__(self):
        super().__init__()
        self.loops = [asyncio.new_event_loop() for _ in range(2)]
        self.remote = Remote()
        self.gates = []          # computation id -> its gate (a future of its loop)

        @memleash.acached(self.remote, info=True)
        async def compute(key):
            gate = asyncio.get_running_loop().create_future()
            self.gates.append(gate)
            return await gate

        self.f = compute
        # the model
        self.cache = {}
        self.comps = []          # id -> {"loop", "key", "gen", "leader", "waiters", "open"}
        self.flights = {}        # (loop, key) -> computation id registered for it
        self.tasks = []          # (task, loop index)
        self.expected = {}       # task index -> ("value", v) / ("raise", type) / ("cancelled",)
        self.gen = 0
        self.hits = self.misses = 0

    def teardown(self):
        for loop in self.loops:
            loop.close()

    def drive(self, i):
        self.loops[i].run_until_complete(quiesce())

    # -- the model's rules ---------------------------------------------------------------
    def current(self, i, key):
        cid = self.flights.get((i, key))
        if cid is not None and self.comps[cid]["open"] and self.comps[cid]["gen"] == self.gen:
            return cid
        return None

    def arrive(self, t, i, key):
        """Task t, on loop i, looks for key: a hit, a wait, or a new computation."""
        if key in self.cache:
            self.expected[t] = ("value", self.cache[key])
            self.hits += 1
            return
        cid = self.current(i, key)
        if cid is not None:
            self.comps[cid]["waiters"].append(t)
            return
        self.comps.append({"loop": i, "key": key, "gen": self.gen, "leader": t,
                           "waiters": [], "open": True})
        self.flights[(i, key)] = len(self.comps) - 1
        self.misses += 1

    def close(self, cid):
        comp = self.comps[cid]
        comp["open"] = False
        if self.flights.get((comp["loop"], comp["key"])) == cid:
            del self.flights[(comp["loop"], comp["key"])]

    # -- the rules -----------------------------------------------------------------------
    @rule(i=st.integers(0, 1), key=st.sampled_from("ab"))
    def call(self, i, key):
        t = len(self.tasks)
        self.tasks.append((self.loops[i].create_task(self.f(key)), i))
        self.arrive(t, i, key)
        self.drive(i)

    def open_comps(self):
        return [c for c, comp in enumerate(self.comps) if comp["open"]]

    @precondition(lambda self: self.open_comps())
    @rule(data=st.data(), outcome=st.sampled_from(OUTCOMES))
    def finish(self, data, outcome):
        cid = data.draw(st.sampled_from(self.open_comps()))
        comp = self.comps[cid]
        value = f"{comp['key']}#{cid}"
        gate = self.gates[cid]
        if outcome == "cancelled inside":        # what it awaited was cancelled
            gate.cancel()
            self.expected[comp["leader"]] = ("cancelled",)
            self.close(cid)
            for w in comp["waiters"]:
                self.arrive(w, comp["loop"], comp["key"])
            self.drive(comp["loop"])
            return
        if outcome == "error":
            gate.set_exception(LookupError(value))
            result = ("raise", LookupError)
        elif outcome == "abort":
            gate.set_exception(Abort(value))
            result = ("raise", Abort)
        else:
            gate.set_result(value)
            result = ("value", value)
            if comp["gen"] == self.gen:          # a stale computation does not store
                if outcome == "store: ConnectionError":
                    self.remote.failure = ConnectionError("down")
                    result = ("raise", ConnectionError)
                elif outcome == "store: ValueError":
                    self.remote.failure = ValueError("too large")
                else:
                    self.cache[comp["key"]] = value
        self.close(cid)
        for t in [comp["leader"], *comp["waiters"]]:
            self.expected[t] = result
        self.hits += len(comp["waiters"]) if result[0] == "value" else 0
        self.drive(comp["loop"])
        assert self.remote.failure is None       # the failure was met by that store

    def waiting_tasks(self):
        return [t for t, (task, _) in enumerate(self.tasks) if not task.done()]

    @precondition(lambda self: self.waiting_tasks())
    @rule(data=st.data())
    def cancel(self, data):
        t = data.draw(st.sampled_from(self.waiting_tasks()))
        task, i = self.tasks[t]
        task.cancel()
        self.expected[t] = ("cancelled",)
        for cid in self.open_comps():
            comp = self.comps[cid]
            if t in comp["waiters"]:
                comp["waiters"].remove(t)
            elif comp["leader"] == t:
                self.close(cid)
                for w in comp["waiters"]:        # they look again, in the order they came
                    self.arrive(w, comp["loop"], comp["key"])
        self.drive(i)

    @rule()
    def clear(self):
        self.f.cache_clear()
        self.cache.clear()
        self.gen += 1
        self.hits = self.misses = 0

    # -- what must hold ------------------------------------------------------------------
    @invariant()
    def outcomes_match_the_model(self):
        for t, (task, _) in enumerate(self.tasks):
            want = self.expected.get(t)
            assert task.done() == (want is not None), (t, task, want)
            if want is None:
                continue
            if want[0] == "cancelled":
                assert task.cancelled()
            elif want[0] == "raise":
                assert isinstance(task.exception(), want[1])
            else:
                assert task.result() == want[1]

    @invariant()
    def only_open_computations_are_pending(self):
        open_keys = sorted(key for (i, key), cid in self.flights.items())
        assert sorted(key for (key,) in self.f._ml_pending()) == open_keys   # hashkey(key)
        assert self.f.cache_info()[:2] == (self.hits, self.misses)
        assert {key: v for (key,), v in self.remote.data.items()} == self.cache

    def check_all_resolved(self):
        """Called last: finishes every computation; nothing may be left waiting."""
        while self.open_comps():
            cid = self.open_comps()[0]
            self.gates[cid].set_result("end")
            comp = self.comps[cid]
            self.close(cid)
            for t in [comp["leader"], *comp["waiters"]]:
                self.expected[t] = ("value", "end")
            if comp["gen"] == self.gen:
                self.cache[comp["key"]] = "end"
            self.hits += len(comp["waiters"])
            self.drive(comp["loop"])
        self.outcomes_match_the_model()
        assert all(task.done() for task, _ in self.tasks) and self.f._ml_pending() == []


class SingleFlightToTheEnd(SingleFlight):
    def teardown(self):
        try:
            self.check_all_resolved()
        finally:
            super().teardown()


SingleFlightToTheEnd.TestCase.settings = settings(max_examples=300, stateful_step_count=30,
                                                  deadline=None)
test_single_flight_model = SingleFlightToTheEnd.TestCase

