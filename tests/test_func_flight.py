"""memleash.func's single flight: concurrent misses of one key run the function once (the
others wait for the computing call and read what it stored), as cachetools.func's
condition variable does — in C, without a Python-level lock on the miss path."""

import signal
import threading
import time

import pytest

import memleash.func as mfunc


def _start(target, n):
    threads = [threading.Thread(target=target) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def test_concurrent_misses_of_one_key_run_the_function_once():
    release = threading.Event()
    calls = []

    @mfunc.lru_cache(maxsize=10)
    def compute(x):
        calls.append(x)
        release.wait(10)
        return x * 2

    results = []
    threads = _start(lambda: results.append(compute(21)), 8)
    while not calls:
        time.sleep(0.001)
    time.sleep(0.05)          # the others reach their wait (a hang guard, not a timing check)
    release.set()
    for t in threads:
        t.join(10)
    assert results == [42] * 8 and calls == [21]
    info = compute.cache_info()
    assert info.misses == 1 and info.hits == 7


def test_a_failing_leader_lets_a_waiter_compute():
    started, release = threading.Event(), threading.Event()
    calls = []

    @mfunc.lru_cache(maxsize=10)
    def compute(x):
        calls.append(x)
        if len(calls) == 1:
            started.set()
            release.wait(10)
            raise ZeroDivisionError("leader")
        return "second"

    errors, results = [], []

    def leader():
        try:
            compute(1)
        except ZeroDivisionError as exc:
            errors.append(exc)

    t1 = threading.Thread(target=leader)
    t1.start()
    started.wait(10)
    t2 = threading.Thread(target=lambda: results.append(compute(1)))
    t2.start()
    time.sleep(0.05)
    release.set()
    t1.join(10)
    t2.join(10)
    assert len(errors) == 1 and results == ["second"] and calls == [1, 1]
    assert compute(1) == "second" and compute.cache_info().hits == 1


def test_a_value_too_large_to_cache_is_computed_again_by_the_waiter():
    # getsizeof refuses every value: nothing is stored, so a waiter computes for itself
    cache_calls = []

    @mfunc.lru_cache(maxsize=10)
    def compute(x):
        cache_calls.append(x)
        return x

    compute.cache.__init__(1, getsizeof=lambda v: 2)   # every value is too large
    assert compute(5) == 5 and compute(5) == 5 and cache_calls == [5, 5]


def test_a_call_that_needs_the_key_it_computes_raises_runtime_error():
    @mfunc.lru_cache(maxsize=10)
    def compute(x):
        return compute(x)

    with pytest.raises(RuntimeError, match="recursive call with the same key"):
        compute(1)
    # nothing is left pending: the key can be computed again
    with pytest.raises(RuntimeError):
        compute(1)


def test_a_waiting_call_is_interrupted_by_a_signal_handler():
    release = threading.Event()
    started = threading.Event()

    @mfunc.lru_cache(maxsize=10)
    def compute(x):
        started.set()
        release.wait(10)
        return x

    class Alarm(Exception):
        pass

    def handler(signum, frame):
        raise Alarm

    worker = threading.Thread(target=lambda: compute(3))
    worker.start()
    started.wait(10)
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with pytest.raises(Alarm):
            compute(3)          # waits for the worker; the handler's exception ends the wait
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        release.set()
        worker.join(10)
    assert compute(3) == 3


def test_distinct_keys_do_not_wait_for_each_other():
    release = threading.Event()
    order = []

    @mfunc.lru_cache(maxsize=10)
    def compute(x):
        if x == "slow":
            release.wait(10)
        order.append(x)
        return x

    slow = threading.Thread(target=lambda: compute("slow"))
    slow.start()
    time.sleep(0.02)
    assert compute("fast") == "fast"     # not blocked by the pending "slow"
    release.set()
    slow.join(10)
    assert order == ["fast", "slow"]
