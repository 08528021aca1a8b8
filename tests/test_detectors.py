"""The leak detectors see memleash objects as they are: tracemalloc, sys.getsizeof,
pympler, gc, objgraph, guppy3 and memray (issue 8's integration tests, with the real
packages)."""

import gc
import json
import linecache
import os
import subprocess
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
    # the paths measured below run once untraced first: from 3.12 on, the first run of a
    # code object after any sys.setprofile (as test_decorators' no-frame checks use)
    # allocates its sys.monitoring data, which the measurement would count. And that run
    # comes after gc.collect(), which empties CPython's free lists: the temporaries a
    # measurement frees (the tuple and ints of get_traced_memory(), the list iterator of
    # fill's loop, a TTL timer's float) are parked in a free list, not freed, and memory
    # parked there is still traced. Run first under tracing, the noise measurement would
    # park them, and count them, where the filling, which takes them back, does not: 56
    # bytes (a tuple) on 3.11-3.13, 112-176 on 3.14, whose free lists also keep ints,
    # list iterators and bound methods. Filled here, untraced, the free lists hand the
    # measurements untraced objects and take them back, and both noises are the same.
    gc.collect()
    measure(make(), pairs[:10])
    tracemalloc.start()        # before the cache exists: every block it grows is traced
    try:
        cache = make()
        cache.get("absent")    # one-time objects outside the cache (a timed cache's timer)
        noise, _ = measure(cache, [])     # what measuring itself allocates
        traced, grown = measure(cache, pairs)
    finally:
        tracemalloc.stop()
    assert grown > 5_000 * 40
    assert traced - noise == grown     # to the byte: an under-count of 8 bytes fails


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


# CPython 3.12.0 to 3.12.5 (gh-122695, fixed in 3.12.6): gc.get_referents of the _asyncio
# module hands out the freed future iterators of its free list; objgraph's
# get_leaking_objects() takes the referents of every object, and dropping them frees one
# twice, which loops the free list: every later collection then never ends (the suite
# hangs in the next test that collects). Any earlier asyncio test leaves such iterators.
ASYNCIO_FREELIST_BUG = sys.implementation.name == "cpython" and (3, 12) <= sys.version_info[:3] < (3, 12, 6)


@pytest.mark.skipif(ASYNCIO_FREELIST_BUG, reason="CPython 3.12.0-3.12.5's gh-122695: "
                    "gc.get_referents of all objects double-frees an asyncio iterator")
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
    guppy = pytest.importorskip("guppy", reason="guppy3 has no free-threaded (3.13t) build")
    hp = guppy.hpy()
    cache, ee = memleash.LRUCache(1_000), memleash.EventEmitter()
    for i in range(500):
        cache[i] = str(i)
    ee.on("e", print)
    assert hp.iso(cache).size == sys.getsizeof(cache)
    assert hp.iso(ee).size == sys.getsizeof(ee)


def test_pympler_asizeof_counts_the_keys_and_values_of_a_cache():
    from pympler import asizeof

    cache = memleash.LRUCache(2_000)
    for i in range(1_000):
        cache[f"key-{i}"] = bytes(1024)
    total = asizeof.asizeof(cache)
    assert total >= 1_000 * 1024 + sys.getsizeof(cache)
    # and no more than the items, the cache and the transient list pympler walks
    items = sum(asizeof.asizeof(k) + asizeof.asizeof(v) for k, v in cache.items())
    assert total <= items + sys.getsizeof(cache) + sys.getsizeof([None] * 2_000) + 4_096


def test_pympler_asizeof_follows_a_subclass_and_a_timed_cache():
    from pympler import asizeof

    class Sessions(memleash.TTLCache):
        pass

    cache = Sessions(100, ttl=3600)
    cache["s"] = bytes(50_000)
    assert asizeof.asizeof(cache) >= 50_000 + sys.getsizeof(cache)


def test_pympler_asizeof_counts_strong_listeners_but_not_weak_owners():
    from pympler import asizeof

    class Owner:
        def __init__(self):
            self.payload = bytes(100_000)

        def handle(self):
            pass

    class Handler:           # a callable object: held strongly, like a function
        def __init__(self):
            self.table = [0] * 20_000

        def __call__(self):
            pass

    ee, owner = memleash.EventEmitter(), Owner()
    ee.on("strong", Handler())
    base = asizeof.asizeof(ee)
    assert base >= 20_000 * 8
    ee.on("weak", owner.handle)
    assert asizeof.asizeof(ee) < base + 10_000     # the owner's 100 kB is not the emitter's


def test_pickling_ignores_the_referents_declaration():
    import pickle

    cache = memleash.LRUCache(10)
    cache["a"] = 1
    copy = pickle.loads(pickle.dumps(cache))
    assert dict(copy) == {"a": 1} and not hasattr(copy, "__dict__") or copy.__dict__ == {}


MEMRAY_SCRIPT = """\
import gc, json, sys
import memleash

def main(out):
    cache = memleash.LRUCache(10**6, max_bytes=10 * 2**20)
    for i in range(30_000):
        cache[f"key-{i:06d}"] = bytes(1000)      # FILL
    info = {"currbytes": cache.currbytes, "own": sys.getsizeof(cache), "len": len(cache)}
    cache.clear()
    del cache
    gc.collect()
    with open(out, "w") as f:
        json.dump(info, f)

main(sys.argv[1])
"""


def _memleash_frame(frame):
    function, filename = frame[0], frame[1]
    return filename.startswith("csrc/") or function.startswith(("ml_", "cache_", "cacheobj_"))


def _by_memleash_after_import(rec):
    """Allocated by memleash's C code, but not the module's own import-time state (types,
    interned names), which lives as long as the process."""
    stack = rec.native_stack_trace()
    return (any(_memleash_frame(f) for f in stack)
            and not any(f[0].endswith("module_exec") or f[0] == "package_dir" for f in stack))


@pytest.mark.memray
def test_memray_attributes_a_filled_cache_to_its_filling_line_and_sees_no_leak(tmp_path):
    from memray import FileReader

    script, capture, info_file = tmp_path / "fill.py", tmp_path / "out.bin", tmp_path / "info.json"
    script.write_text(MEMRAY_SCRIPT)
    fill_line = MEMRAY_SCRIPT.splitlines().index(
        next(line for line in MEMRAY_SCRIPT.splitlines() if "# FILL" in line)) + 1
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-m", "memray", "run", "--native", "--trace-python-allocators",
                    "-q", "-o", str(capture), str(script), str(info_file)],
                   check=True, env=env, cwd=tmp_path, timeout=300)
    info = json.loads(info_file.read_text())
    assert info["currbytes"] > 9 * 2**20            # the budget is nearly full

    reader = FileReader(str(capture))
    peak = list(reader.get_high_watermark_allocation_records(merge_threads=True))

    def at_fill(rec):
        top = rec.stack_trace()[:1]
        return bool(top) and top[0][1].endswith("fill.py") and top[0][2] == fill_line

    # keys, values and the cache's own buffers, all attributed to the filling line
    assert sum(r.size for r in peak if at_fill(r)) >= 0.99 * info["currbytes"]
    # what memleash's C code allocated at the peak: the cache's buffers, at that line
    ours = [r for r in peak if _by_memleash_after_import(r)]
    ours_at_fill = sum(r.size for r in ours if at_fill(r))
    assert ours_at_fill >= 0.99 * sum(r.size for r in ours)
    assert ours_at_fill >= 0.9 * info["own"]

    # after clear(): nothing memleash allocated is left, but the module's import-time state
    leaked = [r for r in reader.get_leaked_allocation_records(merge_threads=True)
              if _by_memleash_after_import(r)]
    assert leaked == [], [(r.size, r.native_stack_trace()[:6]) for r in leaked]


def test_guppy_reaches_the_items_through_the_cache():
    guppy = pytest.importorskip("guppy", reason="guppy3 has no free-threaded (3.13t) build")
    cache, value = memleash.LRUCache(10), ["payload"]
    cache["k"] = value
    assert any(node is value for node in guppy.hpy().iso(cache).referents.nodes)
