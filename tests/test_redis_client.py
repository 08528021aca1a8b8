"""memleash.redis.ClientCache: redis-py's client-side cache on a memleash LRUCache.

The first part drives the cache as redis-py's CacheProxyConnection does (redis-py 8.1.0's
redis/connection.py), on synthetic entries: no server needed. The second part runs
against a real redis-server through redis.Redis(protocol=3, cache=ClientCache(...))
(tests/redis_server.py says how the server is found).
"""

from __future__ import annotations

import random
import sys
import threading

import pytest

redis = pytest.importorskip("redis", reason="redis-py is not installed (pip install memleash[redis])")

from redis.cache import CacheEntry, CacheEntryStatus, CacheKey, LRUPolicy  # noqa: E402

import memleash  # noqa: E402
from memleash.redis import ClientCache, ClientCacheStore, _entry_bytes, deep_sizeof  # noqa: E402
from redis_server import csc_url, redis_url, server_version  # noqa: E402, F401

VALID, IN_PROGRESS = CacheEntryStatus.VALID, CacheEntryStatus.IN_PROGRESS


class FakeConnection:
    """What an entry's connection_ref offers the cache: redis-py's encoder."""

    def __init__(self, encoding: str = "utf-8") -> None:
        from redis._parsers.encoders import Encoder

        self.encoder = Encoder(encoding, "strict", False)


CONN = FakeConnection()


def key(command, *keys):
    return CacheKey(command=command, redis_keys=tuple(keys), redis_args=(command, *keys))


def read(cache, k, reply, conn=CONN, invalidate_in_flight=None):
    """One read as CacheProxyConnection makes it: the hit path, or the placeholder, the
    reply, and the placeholder set again (mutated in place) if still there."""
    if cache.get(k):
        if cache.get(k):
            entry = cache.get(k)
            if entry is not None and entry.status != IN_PROGRESS:
                return entry.cache_value
    cache.set(CacheEntry(cache_key=k, cache_value=b"foo", status=IN_PROGRESS,
                         connection_ref=conn))
    cache.get(k)
    if invalidate_in_flight is not None:
        cache.delete_by_redis_keys(invalidate_in_flight)
    entry = cache.get(k)
    if entry is not None:
        entry.status = VALID
        entry.cache_value = reply
        cache.set(entry)
    return reply


# ---- without a server -------------------------------------------------------------------

def test_is_a_cache_interface_and_imports_redis_only_here():
    from redis.cache import CacheInterface

    assert isinstance(ClientCache(), CacheInterface)
    assert ClientCache(100).config.get_max_size() == 100
    with pytest.raises(ValueError):
        ClientCache(0)


def test_hits_and_misses_count_reads_not_calls():
    cache = ClientCache(10)
    k = key("GET", "a")
    assert read(cache, k, b"1") == b"1"
    assert (cache.hits, cache.misses) == (0, 1)
    for _ in range(3):
        assert read(cache, key("GET", "a"), b"never read") == b"1"   # a new CacheKey per read
    assert (cache.hits, cache.misses) == (3, 1)


def test_a_hit_invalidated_before_it_is_read_counts_as_a_miss():
    cache = ClientCache(10)
    read(cache, key("GET", "a"), b"1")
    k = key("GET", "a")
    assert cache.get(k).status is VALID            # the hit path starts...
    cache.delete_by_redis_keys([b"a"])             # ...the drain finds an invalidation
    assert cache.get(k) is None
    cache.set(CacheEntry(cache_key=k, cache_value=b"foo", status=IN_PROGRESS,
                         connection_ref=CONN))     # so the read goes out after all
    assert (cache.hits, cache.misses, cache.invalidations) == (0, 2, 1)


def test_bytes_are_accounted_again_on_every_set():
    cache = ClientCache(10, max_bytes=100_000)
    k = key("LRANGE", "l", 0, -1)
    placeholder = CacheEntry(cache_key=k, cache_value=b"foo", status=IN_PROGRESS,
                             connection_ref=CONN)
    cache.set(placeholder)
    small = cache.currbytes
    assert small == _entry_bytes(k, placeholder)
    reply = [b"x" * 1000, [b"y" * 500, {b"f": b"z" * 200}], 42, None, True]
    placeholder.status, placeholder.cache_value = VALID, reply   # mutated in place
    cache.set(placeholder)
    assert cache.currbytes == _entry_bytes(k, placeholder) > small + 1700
    # deep: every element once; singletons count nothing
    assert deep_sizeof(reply) == (sys.getsizeof(reply) + sys.getsizeof(b"x" * 1000)
                                  + sys.getsizeof(reply[1]) + sys.getsizeof(b"y" * 500)
                                  + sys.getsizeof(reply[1][1]) + sys.getsizeof(b"f")
                                  + sys.getsizeof(b"z" * 200) + sys.getsizeof(42))


def test_a_reply_too_large_for_the_budget_is_not_kept():
    cache = ClientCache(10, max_bytes=5_000)
    k = key("GET", "big")
    read(cache, k, b"x" * 10_000)
    assert cache.size == 0 and cache.currbytes == 0
    assert cache.store._ml_index == {} and cache.store._ml_indexed == {}
    read(cache, key("GET", "big"), b"x" * 10_000)
    assert cache.misses == 2


def test_bytes_never_exceed_the_budget_and_the_index_follows_evictions():
    rnd = random.Random(5)
    budget = 20_000
    cache = ClientCache(1_000, max_bytes=budget)
    for i in range(3_000):
        name = f"k{rnd.randrange(200)}"
        size = rnd.choice([10, 100, 1000, 4000])
        reply = [b"v" * size, [b"w" * (size // 2)]] if i % 3 else b"v" * size
        read(cache, key(rnd.choice(["GET", "LRANGE", "STRLEN"]), name), reply)
        if i % 7 == 0:
            cache.delete_by_redis_keys([f"k{rnd.randrange(200)}".encode()])
        assert cache.currbytes <= budget
    entries = cache.store
    assert cache.currbytes == sum(_entry_bytes(k, e) for k, e in entries.items())
    # the index holds exactly the entries held, under exactly their keys
    expected: dict[bytes, set] = {}
    for k in entries:
        for rk in k.redis_keys:
            expected.setdefault(rk.encode(), set()).add(k)
    assert entries._ml_index == expected
    assert set(entries._ml_indexed) == set(entries)


def test_invalidation_finds_entries_through_the_index():
    cache = ClientCache(100_000)
    for i in range(10_000):
        read(cache, key("GET", f"k{i}"), b"v")
    read(cache, key("MGET", "k1", "k2"), [b"v", b"v"])
    read(cache, key("STRLEN", "k1"), 1)
    removed = cache.delete_by_redis_keys([b"k1", "k9999", b"absent"])
    assert removed == [True] * 4     # GET k1, MGET k1 k2, STRLEN k1, GET k9999
    assert cache.size == 10_000 + 2 - 4 and cache.invalidations == 4
    assert key("GET", "k2") in cache.collection and key("MGET", "k1", "k2") not in cache.collection
    assert b"k1" not in cache.store._ml_index and b"k2" in cache.store._ml_index


def test_keys_are_indexed_as_the_client_encodes_them():
    cache = ClientCache(10)
    latin = FakeConnection("latin-1")     # a pool's connections share one encoding
    read(cache, key("GET", "é"), b"1", conn=latin)
    read(cache, key("GET", 7), b"2", conn=latin)
    read(cache, key("GET", 2.5), b"3", conn=latin)
    assert set(cache.store._ml_index) == {"é".encode("latin-1"), b"7", b"2.5"}
    assert cache.delete_by_redis_keys(["é"]) == [True]   # a decoded push, as the client decodes


def test_an_invalidation_while_the_reply_is_in_flight_wins():
    cache = ClientCache(10)
    read(cache, key("GET", "a"), b"old", invalidate_in_flight=[b"a"])
    assert cache.size == 0
    assert read(cache, key("GET", "a"), b"new") == b"new"


def test_flush_and_commands():
    cache = ClientCache(10, commands=["get"])
    read(cache, key("GET", "a"), b"1")
    assert not cache.set(CacheEntry(cache_key=key("LRANGE", "l", 0, -1), cache_value=[],
                                    status=VALID, connection_ref=CONN))
    assert cache.is_cachable(key("get", "a")) and not cache.is_cachable(key("SET", "a"))
    assert cache.flush() == 1 and cache.size == 0 and cache.invalidations == 1
    assert cache.store._ml_index == {}


def test_collection_behaves_like_the_ordered_dict_redis_py_expects():
    cache = ClientCache(10)
    keys = [key("GET", c) for c in "abc"]
    for k in keys:
        read(cache, k, b"v")
    coll = cache.collection
    assert list(coll) == keys and len(coll) == 3 and keys[0] in coll
    assert coll[keys[0]].cache_value == b"v" and coll.get(key("GET", "z")) is None
    policy = LRUPolicy()          # redis-py's own LRU policy, on our collection
    policy.cache = cache
    policy.touch(keys[0])         # a is now the most recently used
    assert policy.evict_next() == keys[1]
    assert cache.eviction_policy.evict_many(1) == [keys[2]]
    with pytest.raises(ValueError):
        cache.eviction_policy.evict_many(5)
    assert list(coll.items()) == [(keys[0], coll[keys[0]])]
    assert cache.store._ml_index == {b"a": {keys[0]}}
    with pytest.raises(NotImplementedError):
        coll.popitem()            # last=True: the engine knows its LRU end only
    del coll[keys[0]]
    assert cache.size == 0 and cache.store._ml_index == {}
    with pytest.raises(KeyError):
        coll.popitem(last=False)


def test_a_placeholder_replaced_under_an_equal_key_is_accounted_with_the_key_kept():
    # two reads of one command in two threads: the second finds the first's placeholder
    # and stores its own under its own (equal) CacheKey; the store keeps the first key
    # object, so the entry's bytes count both CacheKeys, as the store holds both
    cache = ClientCache(10, max_bytes=100_000)
    first, second = key("GET", "a"), key("GET", "a")
    cache.set(CacheEntry(cache_key=first, cache_value=b"foo", status=IN_PROGRESS,
                         connection_ref=CONN))
    assert cache.get(second).status is IN_PROGRESS
    theirs = CacheEntry(cache_key=second, cache_value=b"foo", status=IN_PROGRESS,
                        connection_ref=CONN)
    cache.set(theirs)
    theirs.status, theirs.cache_value = VALID, [b"v" * 300]   # the first read's reply
    cache.set(theirs)
    ((held, entry),) = cache.store.items()
    assert held is first and entry is theirs
    assert cache.currbytes == _entry_bytes(held, entry) > _entry_bytes(second, entry)


def random_read(cache, rnd, names, command):
    """One read of a random key of `names` by `command`, of a reply of 10 to 3,000 bytes,
    its key invalidated while the reply is in flight one time in twenty."""
    name = f"k{rnd.randrange(names)}"
    read(cache, key(command, name), [b"v" * rnd.choice([10, 300, 3000])],
         invalidate_in_flight=[name.encode()] if rnd.random() < 0.05 else None)


def test_threads_share_one_cache_within_its_budget():
    """Reads from four threads (as from the connections of one pool), invalidations from
    a fifth: the budget and the index hold throughout."""
    budget = 30_000
    cache = ClientCache(10_000, max_bytes=budget)
    over: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reads(seed):
        rnd = random.Random(seed)
        try:
            while not stop.is_set():
                random_read(cache, rnd, 50, rnd.choice(["GET", "LRANGE"]))
                if cache.currbytes > budget:
                    over.append(cache.currbytes)
        except BaseException as exc:   # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reads, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    rnd = random.Random(9)
    try:
        for _ in range(3_000):
            cache.delete_by_redis_keys([f"k{rnd.randrange(50)}".encode()])
    finally:   # a failure here must not leave the readers running (the process would hang)
        stop.set()
        for t in threads:
            t.join()
    assert errors == [] and over == []
    entries = cache.store
    assert cache.currbytes == sum(_entry_bytes(k, e) for k, e in entries.items())
    assert set(entries._ml_indexed) == set(entries)
    assert sum(len(v) for v in entries._ml_index.values()) == len(entries)


def test_client_caches_sharing_a_budget_keep_their_books_and_indexes():
    """Two ClientCaches and an LRUCache on one Budget, read and invalidated from several
    threads: a store into one member evicts from the others (through their popitem, from
    the storing thread, without their locks). The budget is the members' sum within its
    limit, each ClientCache's index names exactly its entries, and nothing deadlocks."""
    budget = memleash.Budget(40_000)
    caches = [ClientCache(10_000, budget=budget), ClientCache(10_000, budget=budget)]
    plain = memleash.LRUCache(10_000, sizeof=lambda k, v: len(v), budget=budget)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reads(seed):
        rnd = random.Random(seed)
        try:
            while not stop.is_set():
                cache = caches[rnd.randrange(2)]
                random_read(cache, rnd, 60, "GET")
                plain[rnd.randrange(100)] = b"p" * rnd.choice([10, 500, 2000])
                if budget.currbytes > budget.maxbytes:
                    errors.append(AssertionError(budget.currbytes))
        except BaseException as exc:   # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reads, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    rnd = random.Random(5)
    try:
        for _ in range(2_000):
            caches[rnd.randrange(2)].delete_by_redis_keys([f"k{rnd.randrange(60)}".encode()])
    finally:   # a failure here must not leave the readers running (the process would hang)
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a reader never finished: deadlock"
    assert errors == []
    assert budget.currbytes == sum(c.currbytes for c in caches) + plain.currbytes
    assert budget.evictions > 0
    for cache in caches:
        entries = cache.store
        assert cache.currbytes == sum(_entry_bytes(k, e) for k, e in entries.items())
        # every entry held is indexed, as the entry object it holds; an index entry of a key
        # evicted between its store and its indexing may remain: invalidation forgets it
        for k, e in entries.items():
            assert entries._ml_indexed[k][0] is e
        indexed = set(entries._ml_indexed)
        assert set(entries) <= indexed
        for stale in indexed - set(entries):
            entries._ml_unindex(stale)
        assert sum(len(v) for v in entries._ml_index.values()) == len(entries)


def test_report_shows_hits_misses_and_invalidations():
    cache = ClientCache(10, max_bytes=10_000, name="csc-report")
    read(cache, key("GET", "a"), b"1")
    read(cache, key("GET", "a"), b"1")
    cache.delete_by_redis_keys([b"a"])
    (row,) = [c for c in memleash.report().caches if c.name == "csc-report"]
    assert (row.kind, row.hits, row.misses, row.invalidations) == ("ClientCacheStore", 1, 1, 1)
    assert row.maxbytes == 10_000
    rep = memleash.report()
    assert "invalidated" in str(rep)
    assert 'memleash_cache_invalidations_total{kind="ClientCacheStore",name="csc-report"} 1' \
        in rep.to_prometheus()


# ---- against redis-server ---------------------------------------------------------------

@pytest.fixture
def clients(csc_url):
    made = []

    def make(**kw):
        r = redis.Redis.from_url(csc_url, **kw)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


def test_another_clients_write_makes_the_next_read_fresh(clients):
    cache = ClientCache(1_000, max_bytes=1 << 20)
    reader = clients(protocol=3, cache=cache)
    writer = clients()
    writer.set("fresh:a", "1")
    assert reader.get("fresh:a") == b"1" and reader.get("fresh:a") == b"1"
    assert (cache.hits, cache.misses) == (1, 1)
    for n in range(2, 50):
        writer.set("fresh:a", str(n))
        # The server writes the reader's invalidation push and the writer's reply in the
        # same event-loop turn; a second command on the writer's connection is answered
        # only after that turn, so the push is in the reader's socket when it reads next.
        writer.ping()
        assert reader.get("fresh:a") == str(n).encode()
        assert reader.get("fresh:a") == str(n).encode()
    assert cache.invalidations >= 48 and cache.hits >= 49


def test_a_deleted_or_expired_key_is_not_served(clients):
    cache = ClientCache(100)
    reader = clients(protocol=3, cache=cache)
    writer = clients()
    writer.set("gone:a", "1")
    assert reader.get("gone:a") == b"1"
    writer.delete("gone:a")
    writer.ping()
    assert reader.get("gone:a") is None
    writer.set("gone:b", "1")
    assert reader.get("gone:b") == b"1"
    writer.flushdb()
    writer.ping()
    assert reader.get("gone:b") is None


def test_bytes_never_exceed_the_budget_against_the_server(clients):
    budget = 64 * 1024
    cache = ClientCache(10_000, max_bytes=budget)
    reader = clients(protocol=3, cache=cache)
    writer = clients()
    rnd = random.Random(3)
    for i in range(60):
        writer.set(f"b:s{i}", b"x" * rnd.choice([10, 500, 5000]))
        writer.rpush(f"b:l{i}", *[b"y" * rnd.choice([5, 50, 300])] * rnd.choice([1, 10, 40]))
        writer.hset(f"b:h{i}", mapping={f"f{j}": b"z" * 40 for j in range(rnd.choice([1, 20]))})
    writer.set("b:huge", b"h" * (budget * 2))
    for _ in range(1_500):
        i = rnd.randrange(60)
        op = rnd.randrange(4)
        if op == 0:
            reader.get(f"b:s{i}")
        elif op == 1:
            reader.lrange(f"b:l{i}", 0, -1)
        elif op == 2:
            reader.hgetall(f"b:h{i}")
        else:
            reader.mget([f"b:s{i}", f"b:s{(i + 1) % 60}"])
        assert cache.currbytes <= budget
    assert reader.get("b:huge") == b"h" * (budget * 2)     # returned, not kept
    assert cache.currbytes <= budget and cache.store._ml_stats()["evictions"] > 0
    assert cache.currbytes == sum(_entry_bytes(k, e) for k, e in cache.store.items())


def test_redis_report_counts_real_reads(clients):
    cache = ClientCache(100, name="csc-live")
    reader = clients(protocol=3, cache=cache)
    writer = clients()
    writer.set("rep:a", "1")
    for _ in range(5):
        reader.get("rep:a")
    writer.set("rep:a", "2")
    writer.ping()
    reader.get("rep:a")
    (row,) = [c for c in memleash.report().caches if c.name == "csc-live"]
    assert (row.hits, row.misses, row.invalidations) == (4, 2, 1)


def test_default_cache_module_is_the_reference(clients):
    """The same reads through redis-py's DefaultCache give the same values: only the
    bounds and the accounting differ."""
    from redis.cache import CacheConfig

    ours = clients(protocol=3, cache=ClientCache(100))
    theirs = clients(protocol=3, cache_config=CacheConfig(max_size=100))
    writer = clients()
    writer.rpush("ref:l", b"a", b"b")
    writer.hset("ref:h", mapping={"f": "v"})
    for r in (ours, theirs):
        assert r.lrange("ref:l", 0, -1) == [b"a", b"b"]
        assert r.hgetall("ref:h") == {b"f": b"v"}
    assert ours.lrange("ref:l", 0, -1) == theirs.lrange("ref:l", 0, -1)
    assert ours.hgetall("ref:h") == theirs.hgetall("ref:h")
