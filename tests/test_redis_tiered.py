"""memleash.TieredCache and AsyncTieredCache against a real redis-server (how it is found:
tests/redis_server.py), and their key encoding without one.

Consistency, as docs/redis.md states it: a process reads its own writes at once; another
process's write or delete reaches every local copy (eventually: the waits here are hang
guards, never timings); a local copy never outlives its Redis key's ttl; while tracking is
down the local copies are not used.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

import memleash
from memleash.tiered import JSONSerializer, redis_key
from redis_server import ns, redis_url  # noqa: F401

redis = pytest.importorskip("redis", reason="redis-py is not installed (pip install memleash[redis])")

HERE = os.path.dirname(os.path.abspath(__file__))
GUARD = 30.0   # seconds: a hang guard for what must happen eventually, not a timing


def eventually(predicate, what):
    deadline = time.monotonic() + GUARD
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {GUARD:.0f} s (a hang guard): {what}")
        time.sleep(0.002)


# ---- keys, without a server -------------------------------------------------------------

@pytest.mark.parametrize("key", [
    "plain", "#starts-with-hash", "", "é ü \udc80", b"\x00\xff", 0, -12, 10**30, 1.5,
    float("inf"), True, False, None, (), ("a",), (1, ("nested", b"b"), None),
    frozenset({3, 1, "x"}), int, memleash.keys.hashkey(1, "a", x=2.0),
    memleash.keys.typedkey(1, y="z"),
])
def test_keys_round_trip_and_are_deterministic(key):
    from memleash.tiered import _key_of

    rk = redis_key("ns", key)
    assert rk.startswith(b"ns:") and rk == redis_key("ns", key)
    back = _key_of(b"ns:", rk)
    assert back == key and type(back) is type(key)
    # another process computes the same Redis key (no hashes, no addresses)
    code = (f"import memleash, pickle, sys; from memleash.tiered import redis_key; "
            f"sys.stdout.buffer.write(redis_key('ns', pickle.loads({pickle.dumps(key)!r})))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True,
                           env=dict(os.environ, PYTHONHASHSEED="12345")).stdout
    assert other == rk


def test_keys_of_different_types_differ_and_str_keys_read_as_themselves():
    keys = ["1", 1, 1.0, True, b"1", ("1",), "#i1;"]
    assert len({redis_key("ns", k) for k in keys}) == len(keys)
    assert redis_key("prices", "EUR/A1") == b"prices:EUR/A1"
    with pytest.raises(TypeError, match="a TieredCache key must be"):
        redis_key("ns", object())
    with pytest.raises(TypeError, match="a TieredCache key must be"):
        redis_key("ns", (1, [2]))


def test_json_serializer():
    js = JSONSerializer()
    assert js.loads(js.dumps({"a": [1, "é", None]})) == {"a": [1, "é", None]}
    with pytest.raises(ValueError):
        js.dumps(float("nan"))


class SlowAsyncCache:
    """An async cache (aget/aset/aclear) whose every operation awaits, as a network's: a
    look-up is answered as of when it was sent; the first reply comes after 10 ms, the
    later ones after 60 ms (longer than a whole miss of the first: look-up, computation,
    store)."""

    def __init__(self) -> None:
        self.data: dict[object, object] = {}
        self.gets = 0

    async def aget(self, key: object) -> object:
        self.gets += 1
        answer = self.data.get(key, KeyError)
        await asyncio.sleep(0.01 if self.gets == 1 else 0.06)
        if answer is KeyError:
            raise KeyError(key)
        return answer

    async def aset(self, key: object, value: object) -> None:
        await asyncio.sleep(0.01)
        self.data[key] = value

    async def aclear(self) -> None:
        self.data.clear()


def test_acached_over_an_async_cache_is_single_flight_look_up_included():
    cache = SlowAsyncCache()
    calls: list[int] = []

    @memleash.acached(cache, info=True)
    async def fetch(uid: int) -> int:
        calls.append(uid)
        await asyncio.sleep(0.01)
        return uid * 2

    async def main() -> None:
        # were each call to look up on its own, the first one's miss, computation and
        # store would all be over before the others' look-ups answered "missing", and
        # they would compute again: the look-up is part of the single flight
        assert await asyncio.gather(*(fetch(7) for _ in range(20))) == [14] * 20
        assert calls == [7] and cache.gets == 1
        assert cache.data == {memleash.keys.hashkey(7): 14}
        assert await fetch(7) == 14 and calls == [7]
        assert fetch.cache_info()[:2] == (20, 1)   # waiters given the value count as hits
        await fetch.cache_clear()
        assert cache.data == {} and fetch.cache_info()[:2] == (0, 0)

    asyncio.run(main())


def test_wrong_arguments_are_refused():
    sync_client = redis.Redis()            # never connects: refused before any command
    async_client = redis.asyncio.Redis()
    with pytest.raises(TypeError, match="namespace"):
        memleash.TieredCache(memleash.LRUCache(10), sync_client, namespace="")
    with pytest.raises(TypeError, match=r"needs a redis\.Redis"):
        memleash.TieredCache(memleash.LRUCache(10), async_client, namespace="n")
    with pytest.raises(TypeError, match=r"needs a redis\.asyncio\.Redis"):
        memleash.AsyncTieredCache(memleash.LRUCache(10), sync_client, namespace="n")
    with pytest.raises(ValueError, match="ttl"):
        memleash.TieredCache(memleash.LRUCache(10), sync_client, namespace="n", ttl=0)
    shared = memleash.LRUCache(10)
    first = memleash.TieredCache(shared, sync_client, namespace="a")
    with pytest.raises(ValueError, match="another TieredCache"):
        memleash.TieredCache(shared, sync_client, namespace="b")
    del first                  # its l1 is free again
    memleash.TieredCache(shared, sync_client, namespace="b")
    full = memleash.LRUCache(10)
    full["x"] = 1
    with pytest.raises(ValueError, match="empty"):
        memleash.TieredCache(full, sync_client, namespace="n")
    with pytest.raises(TypeError, match="lock"):
        memleash.acached(memleash.AsyncTieredCache(memleash.LRUCache(10), async_client,
                                                   namespace="n"), lock=threading.Lock())


# ---- one process ------------------------------------------------------------------------

@pytest.fixture
def client(redis_url):
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


@pytest.fixture
def tiered(client, ns):
    made = []

    def make(l1=None, **kw):
        tc = memleash.TieredCache(l1 if l1 is not None else memleash.LRUCache(1000),
                                  kw.pop("client", client), namespace=kw.pop("namespace", ns),
                                  **kw)
        made.append(tc)
        return tc
    yield make
    for tc in made:
        tc.close()


def test_mapping_semantics(tiered, client, ns):
    tc = tiered()
    assert tc.get("a") is None and "a" not in tc and len(tc) == 0
    with pytest.raises(KeyError):
        tc["a"]
    tc["a"] = {"x": [1, 2]}
    tc[("t", 1)] = "tuple key"
    assert tc["a"] == {"x": [1, 2]} and tc[("t", 1)] == "tuple key"
    assert "a" in tc and len(tc) == 2 and sorted(map(str, tc)) == ["('t', 1)", "a"]
    assert tc["a"] is not tc["a"]              # each read is a fresh object, as from Redis
    assert pickle.loads(client.get(f"{ns}:a")) == {"x": [1, 2]}
    assert tc.setdefault("a", "other") == {"x": [1, 2]}
    assert tc.setdefault("b", "first") == "first" and tc["b"] == "first"
    assert tc.pop("b") == "first" and tc.pop("b", "gone") == "gone"
    with pytest.raises(KeyError):
        tc.pop("b")
    del tc["a"]
    with pytest.raises(KeyError):
        del tc["a"]
    tc.update({"c": 1, "d": 2})
    assert dict(tc.items()) == {("t", 1): "tuple key", "c": 1, "d": 2}
    tc.clear()
    assert len(tc) == 0 and client.dbsize() >= 0 and not list(client.scan_iter(f"{ns}:*"))


def test_reads_are_served_locally_and_the_l1_holds_serialized_bytes(tiered, ns):
    l1 = memleash.LRUCache(1000, max_bytes=64 * 1024)
    tc = tiered(l1)
    tc["k"] = "v" * 1000
    eventually(lambda: tc.get("k") is not None and f"{ns}:k".encode() in l1,
               "the value held locally (after the echo of the write)")
    hits = l1._ml_stats()["hits"]
    for _ in range(100):
        assert tc["k"] == "v" * 1000
    assert l1._ml_stats()["hits"] == hits + 100
    assert l1[f"{ns}:k".encode()] == pickle.dumps("v" * 1000)
    for i in range(300):                        # the L1's byte budget holds
        tc[f"big{i}"] = "x" * 2000
        tc.get(f"big{i}")
        assert l1.currbytes <= 64 * 1024


def test_another_clients_write_and_delete_reach_the_local_copy(tiered, client, ns):
    tc = tiered()
    tc["k"] = 1
    eventually(lambda: tc.get("k") == 1 and f"{ns}:k".encode() in tc.l1, "held locally")
    rk = f"{ns}:k".encode()
    for n in range(2, 30):
        eventually(lambda: tc.get("k") is not None and rk in tc.l1, "held locally")
        client.set(rk, pickle.dumps(n))                 # another client, raw
        eventually(lambda: tc["k"] == n, f"the local copy of k sees {n}")
    eventually(lambda: tc.get("k") is not None and rk in tc.l1, "held locally")
    client.delete(rk)
    eventually(lambda: tc.get("k") is None, "the delete reaches the local copy")
    assert tc.invalidations >= 29      # each change found a local copy, and dropped it


def test_a_process_reads_its_own_writes_at_once(tiered, client, ns):
    tc = tiered()
    for n in range(200):
        if n % 3 == 0:
            client.set(f"{ns}:k", pickle.dumps(-n))    # someone else's write meanwhile
        tc.get("k")                                     # a local copy, maybe stale
        tc["k"] = n
        assert tc["k"] == n                             # no wait
        if n % 5 == 0:
            del tc["k"]
            assert tc.get("k") is None


def test_read_your_writes_across_threads_of_a_process(tiered, client, ns):
    tc = tiered()
    stop = threading.Event()
    errors: list[str] = []

    def reader():
        while not stop.is_set():
            tc.get("k")                                  # fills race with the writes

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for n in range(300):
            tc["k"] = n
            got = tc["k"]
            if got != n:
                errors.append(f"wrote {n}, read {got}")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []


def test_ttl_a_local_copy_never_outlives_its_redis_key(tiered, client, ns):
    tc = tiered(ttl=0.3)
    assert tc.ttl == 0.3
    tc["k"] = "short"
    eventually(lambda: tc.get("k") == "short" and f"{ns}:k".encode() in tc.l1, "held locally")
    assert 0 < client.pttl(f"{ns}:k") <= 300
    eventually(lambda: not client.exists(f"{ns}:k"), "Redis expires the key")
    assert tc.get("k") is None                       # at once: the local deadline came first
    # a value read from Redis carries its remaining ttl too
    other = tiered(ttl=timedelta(seconds=30), namespace=ns)
    client.set(f"{ns}:r", pickle.dumps("read"), px=300)
    assert other["r"] == "read"
    eventually(lambda: not client.exists(f"{ns}:r"), "Redis expires the key")
    assert other.get("r") is None


def test_flush_drops_every_local_copy(tiered, client, ns):
    tc = tiered()
    for i in range(10):
        tc[f"k{i}"] = i
        tc.get(f"k{i}")
    eventually(lambda: all(tc.get(f"k{i}") == i for i in range(10)) and len(tc.l1) == 10,
               "all held locally")
    client.flushdb()
    eventually(lambda: len(tc.l1) == 0, "the flush empties the L1")
    assert tc.get("k0") is None


def test_losing_the_tracking_connection_drops_and_bypasses_the_local_copy(tiered, client, ns):
    tc = tiered(health_check_interval=0.2)
    tc["k"] = "before"
    eventually(lambda: tc.get("k") == "before" and len(tc.l1) == 1, "held locally")
    name = f"memleash-tracking:{ns}"
    (conn,) = [c for c in client.client_list() if c["name"] == name]
    client.client_kill_filter(_id=conn["id"])
    client.set(f"{ns}:k", pickle.dumps("after"))      # its invalidation is never heard
    eventually(lambda: tc.get("k") == "after", "the change is read")
    eventually(lambda: tc.tracking and any(c["name"] == name and c["id"] != conn["id"]
                                           for c in client.client_list()),
               "tracking re-established on a new connection")
    assert tc["k"] == "after"
    client.set(f"{ns}:k", pickle.dumps("later"))
    eventually(lambda: tc.get("k") == "later", "tracked again")


def test_report_shows_the_local_invalidations(tiered, client, ns):
    l1 = memleash.LRUCache(100, name=f"l1-{ns}")
    tc = tiered(l1)
    tc["k"] = 1
    eventually(lambda: tc.get("k") == 1 and len(l1) == 1 and l1._ml_stats()["hits"] >= 1,
               "read from the local copy")
    client.set(f"{ns}:k", pickle.dumps(2))
    eventually(lambda: tc.invalidations >= 1, "invalidated")
    (row,) = [c for c in memleash.report().caches if c.name == f"l1-{ns}"]
    assert row.invalidations == tc.invalidations >= 1 and row.hits >= 1


def test_json_serializer_and_a_decoding_client(tiered, redis_url, ns):
    decoding = redis.Redis.from_url(redis_url, decode_responses=True)
    tc = tiered(client=decoding, serializer=JSONSerializer())
    tc["k"] = {"a": [1, 2], "b": "é"}
    assert tc["k"] == {"a": [1, 2], "b": "é"}
    assert json.loads(decoding.get(f"{ns}:k")) == {"a": [1, 2], "b": "é"}
    decoding.close()


def test_cached_over_it_runs_a_missing_key_once_per_process(tiered, ns):
    tc = tiered()
    calls: list[int] = []
    start = threading.Barrier(8)

    @memleash.cached(tc, condition=threading.Condition())
    def slow(x: int) -> int:
        calls.append(x)
        time.sleep(0.05)
        return x * 2

    results: list[int] = []

    def call():
        start.wait()
        results.append(slow(21))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [42] * 8 and calls == [21]
    assert tc[memleash.keys.hashkey(21)] == 42


# ---- four processes ---------------------------------------------------------------------

class Worker:
    def __init__(self, url: str, namespace: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "redis_worker.py"), url, namespace],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))

    def __call__(self, **req):
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"worker died: {self.proc.wait()}"
        return json.loads(line)

    def close(self):
        try:
            assert self.proc.stdin
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=GUARD)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            assert self.proc.stdout
            self.proc.stdout.close()


@pytest.fixture
def workers(redis_url, ns):
    ws = [Worker(redis_url, ns) for _ in range(4)]
    yield ws
    for w in ws:
        w.close()


def test_four_processes_share_one_consistent_cache(workers):
    for w in workers:
        assert w(op="get", key="k") == {"value": "<missing>"}
    for n in range(1, 41):
        writer = workers[n % 4]
        assert writer(op="set", key="k", value=n)["read_back"] == n    # at once
        for other in workers:
            if other is writer:
                continue
            res = other(op="await", key="k", value=n, timeout=GUARD)
            assert res["ok"], res
            # each process sees the versions in order: never an older one after a newer
            versions = [v for v in res["seen"] if isinstance(v, int)]
            assert versions == sorted(versions) and versions[-1] == n
        if n % 10 == 0:
            for w in workers:
                got = w(op="reads", key="k", n=50)
                assert got["values"] == [n]
                # served by the local copy (the writer's first reads may miss once, when
                # the echo of its own write drops the copy it stored)
                assert got["local_hits"] >= 45
    deleter = workers[0]
    assert deleter(op="delete", key="k") == {"read_back": "<missing>"}
    for w in workers[1:]:
        assert w(op="await", key="k", value="<missing>", timeout=GUARD)["ok"]
    for w in workers:
        stats = w(op="stats")
        assert stats["tracking"] and stats["invalidations"] >= 1


def test_a_memoized_function_is_shared_by_the_processes(workers, client, ns):
    first = workers[0](op="memo", x=21, threads=8)
    assert first == {"results": [42] * 8, "calls": 1}      # once in the first process
    for w in workers[1:]:
        assert w(op="memo", x=21, threads=8) == {"results": [42] * 8, "calls": 0}
    assert int(client.get(f"{ns}-calls")) == 1               # once in all four


# ---- asyncio ----------------------------------------------------------------------------

def test_async_flavour(redis_url, client, ns):
    async def main():
        aclient = redis.asyncio.Redis.from_url(redis_url)
        l1 = memleash.LRUCache(1000, max_bytes=1 << 20)
        async with memleash.AsyncTieredCache(l1, aclient, namespace=ns) as tc:
            assert await tc.get("a") is None and not await tc.acontains("a")
            with pytest.raises(KeyError):
                await tc.aget("a")
            await tc.aset("a", [1, 2])
            assert await tc.aget("a") == [1, 2] and await tc.acontains("a")
            assert await tc.asetdefault("a", "x") == [1, 2]
            assert await tc.apop("a") == [1, 2] and await tc.apop("a", None) is None
            with pytest.raises(KeyError):
                await tc.adelete("a")
            await tc.aset(("t", 1), "v")
            assert [k async for k in tc.akeys()] == [("t", 1)] and await tc.alen() == 1
            # another client's write reaches the local copy
            await tc.aset("k", 1)
            rk = f"{ns}:k".encode()

            async def until(predicate):
                deadline = time.monotonic() + GUARD
                while not await predicate():
                    assert time.monotonic() < deadline, "hang guard"
                    await asyncio.sleep(0.002)

            async def held():
                return await tc.get("k") is not None and rk in tc.l1

            for n in range(2, 20):
                await until(held)
                client.set(rk, pickle.dumps(n))                  # another client's write

                async def fresh(n=n):
                    return await tc.aget("k") == n
                await until(fresh)
            assert tc.invalidations >= 18 and tc.tracking

            calls: list[int] = []

            @memleash.acached(tc, info=True)
            async def fetch(uid: int) -> dict[str, int]:
                calls.append(uid)
                await asyncio.sleep(0.02)
                return {"uid": uid}

            assert await asyncio.gather(*(fetch(7) for _ in range(50))) == [{"uid": 7}] * 50
            assert calls == [7] and fetch.cache_info().hits >= 0
            assert await tc.aget(memleash.keys.hashkey(7)) == {"uid": 7}
            await fetch.cache_clear()
            assert await tc.alen() == 0
        assert not tc.tracking
        with pytest.raises(RuntimeError):
            await tc.aget("a")
        await aclient.aclose()

    asyncio.run(main())


def test_async_flavour_survives_losing_its_tracking_connection(redis_url, client, ns):
    async def main():
        aclient = redis.asyncio.Redis.from_url(redis_url)
        tc = memleash.AsyncTieredCache(memleash.LRUCache(100), aclient, namespace=ns,
                                       health_check_interval=0.2)
        rk = f"{ns}:k".encode()

        async def until(predicate, what):
            deadline = time.monotonic() + GUARD
            while not await predicate():
                assert time.monotonic() < deadline, f"hang guard: {what}"
                await asyncio.sleep(0.002)

        async def held():
            return await tc.get("k") == "before" and rk in tc.l1

        await tc.aset("k", "before")
        await until(held, "held locally")
        name = f"memleash-tracking:{ns}"
        (conn,) = [c for c in client.client_list() if c["name"] == name]
        client.client_kill_filter(_id=conn["id"])
        client.set(rk, pickle.dumps("after"))           # its invalidation is never heard

        async def fresh():
            return await tc.get("k") == "after"

        async def back():
            return tc.tracking and any(c["name"] == name and c["id"] != conn["id"]
                                       for c in client.client_list())

        await until(fresh, "the change is read")
        await until(back, "tracking re-established on a new connection")
        client.set(rk, pickle.dumps("later"))

        async def later():
            return await tc.get("k") == "later"

        await until(later, "tracked again")
        await tc.aclose()
        await aclient.aclose()

    asyncio.run(main())
