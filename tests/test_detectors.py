"""The leak detectors see memleash objects as they are: tracemalloc, sys.getsizeof, gc,
objgraph and guppy3 (issue 8's integration tests; pympler and memray are still to come)."""

import gc
import linecache
import sys
import tracemalloc

import objgraph
import pytest

import memleash

CACHES = {
    "LRUCache": lambda: memleash.LRUCache(10_000),
    "LRUCache(max_bytes)": lambda: memleash.LRUCache(10_000, max_bytes=10**8),
    "TTLCache": lambda: memleash.TTLCache(10_000, ttl=3600),
    "LFUCache": lambda: memleash.LFUCache(10_000),
    "RRCache": lambda: memleash.RRCache(10_000),
}


def fill(cache, pairs):
    for k, v in pairs:
        cache[k] = v          # the filling line


@pytest.fixture
def pairs():
    return [(f"key-{i}", b"v" * 100) for i in range(5_000)]


def measure(cache, items):
    """(traced bytes, getsizeof growth) of filling cache with items."""
    size0, traced0 = sys.getsizeof(cache), tracemalloc.get_traced_memory()[0]
    fill(cache, items)
    return tracemalloc.get_traced_memory()[0] - traced0, sys.getsizeof(cache) - size0


@pytest.mark.parametrize("make", CACHES.values(), ids=CACHES.keys())
def test_traced_growth_equals_getsizeof_growth(make, pairs):
    gc.collect()
    tracemalloc.start()        # before the cache exists: every block it grows is traced
    try:
        cache = make()
        cache.get("absent")    # one-time objects outside the cache (a timed cache's timer)
        noise, _ = measure(cache, [])     # what measuring itself allocates
        traced, grown = measure(cache, pairs)
    finally:
        tracemalloc.stop()
    assert grown > 5_000 * 40
    assert abs(traced - noise - grown) <= 64


def test_tracemalloc_attributes_the_growth_to_the_filling_line(pairs):
    cache = memleash.LRUCache(10_000)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        size0 = sys.getsizeof(cache)
        fill(cache, pairs)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    top = after.compare_to(before, "lineno")[0]
    frame = top.traceback[0]
    assert frame.filename == __file__
    assert "cache[k] = v" in linecache.getline(frame.filename, frame.lineno)
    assert top.size_diff >= 0.99 * (sys.getsizeof(cache) - size0)


def test_getsizeof_counts_buffers_not_the_held_objects():
    cache = memleash.LRUCache(2_000)
    empty = sys.getsizeof(cache)
    for i in range(1_000):
        cache[i] = b"x" * 10_000
    grown = sys.getsizeof(cache) - empty
    assert 1_000 * 40 <= grown < 1_000 * 200          # entries and index, not 10 MB of values


def test_gc_sees_every_key_and_value():
    cache = memleash.LRUCache(100)
    keys = [("k", i) for i in range(50)]
    values = [[i] for i in range(50)]
    for k, v in zip(keys, values):
        cache[k] = v
    referents = gc.get_referents(cache)
    ids = {id(o) for o in referents}
    assert all(id(k) in ids for k in keys) and all(id(v) in ids for v in values)


def test_objgraph_finds_the_cache_holding_a_value():
    cache = memleash.LRUCache(10)
    value = ["held"]
    cache["k"] = value
    chain = objgraph.find_backref_chain(value, lambda o: o is cache, max_depth=3)
    assert chain[0] is cache and chain[-1] is value


def test_objgraph_reports_no_item_held_by_a_memleash_container_as_leaking():
    cache, ee = memleash.LRUCache(100), memleash.EventEmitter()
    values = [[i] for i in range(20)]
    for i, v in enumerate(values):
        cache[i] = v
    listeners = [lambda i=i: i for i in range(5)]
    for f in listeners:
        ee.on("e", f)
    leaking = {id(o) for o in objgraph.get_leaking_objects()}
    assert not any(id(v) in leaking for v in values)
    assert not any(id(f) in leaking for f in listeners)


def test_emitter_shows_its_strong_listeners_to_gc_but_never_weak_owners():
    class Owner:
        def handle(self):
            pass

    ee, owner = memleash.EventEmitter(), Owner()
    strong = ee.on("a", lambda: None)
    ee.on("b", owner.handle)
    referents = gc.get_referents(ee)
    assert any(r is strong for r in referents)
    assert not any(r is owner for r in referents)


def test_guppy_sizes_memleash_objects_as_getsizeof_does():
    guppy = pytest.importorskip("guppy")
    hp = guppy.hpy()
    cache, ee = memleash.LRUCache(1_000), memleash.EventEmitter()
    for i in range(500):
        cache[i] = str(i)
    ee.on("e", print)
    assert hp.iso(cache).size == sys.getsizeof(cache)
    assert hp.iso(ee).size == sys.getsizeof(ee)
