"""TinyLFUCache: W-TinyLFU's documented behaviours (docs/caches.md), and long runs against
the pure-Python model (tests/model.py) down to the sketch's counters and the climber."""

import copy
import math
import pickle
import random

import pytest

import memleash
from memleash import LRUCache, TinyLFUCache
from model import ModelCache, nbytes, units


def policy_state(cache):
    """(window, probation, protected) key lists and the policy tuple, from the pickle state."""
    state = cache.__getstate__()
    items, order, regions = state[6], state[9], state[10]
    keys = items[0::2]
    out = ([], [], [])
    for pos, region in zip(order, regions):
        out[region].append(keys[pos])
    return out, state[14]


def model_state(model):
    t = model.tlfu
    sketch = b"".join(w.to_bytes(8, "little") for w in t.sketch.words)
    return (tuple(list(r) for r in t.regions),
            (t.sketch.seed, t.window_frac, t.step, t.prev_rate, t.hits, t.misses,
             t.sketch.additions, sketch))


def agree(cache, model):
    assert list(cache) == model.keys()
    regions, policy = policy_state(cache)
    assert (regions, policy) == model_state(model)


# ---- the documented behaviours ----

def test_a_key_is_present_right_after_it_is_stored():
    cache = TinyLFUCache(10)
    for k in range(100):
        cache[k % 7] = k          # hot keys, counted often
    for k in range(1000, 1200):
        cache[k] = k
        assert cache[k] == k      # a cold newcomer is never turned away


def test_popitem_returns_what_eviction_would_remove():
    rnd = random.Random(5)
    for _ in range(200):
        cache = TinyLFUCache(8)
        for _ in range(rnd.randrange(1, 60)):
            k = rnd.randrange(20)
            cache[k] = k
            if rnd.random() < 0.5:
                cache.get(rnd.randrange(20))
        if len(cache) < 8:
            continue
        twin = copy.deepcopy(cache)
        new = max(cache) + 1
        before = set(twin)
        twin[new] = new           # evicts exactly one
        evicted = before - set(twin)
        key, value = cache.popitem()
        assert evicted == {key} and value == key


def test_the_window_candidate_loses_a_tie_and_wins_when_used_more():
    cache = TinyLFUCache(3)
    for k in (1, 2, 3):
        cache[k] = k
    # 3 entries: window [3], probation [1, 2]; 3 and 1 each counted once: a tie evicts 3
    assert policy_state(cache)[0] == ([3], [1, 2], [])
    assert cache.popitem() == (3, 3)
    cache[3] = 3
    cache[3]
    cache[3]                       # now counted more often than 1: 1 goes
    assert cache.popitem() == (1, 1)


def test_a_probation_hit_is_protected():
    cache = TinyLFUCache(100)
    for k in range(100):
        cache[k] = k
    cache[5]
    window, probation, protected = policy_state(cache)[0]
    assert protected == [5] and window == [99] and 5 not in probation


def test_frequent_keys_survive_a_scan_that_flushes_lru():
    hot = list(range(50))
    tiny, lru = TinyLFUCache(100), LRUCache(100)
    for cache in (tiny, lru):
        for _ in range(10):
            for k in hot:
                cache.get(k) or cache.__setitem__(k, k)
        for k in range(1000, 1500):          # a one-off scan, five times the cache
            cache[k] = k
    assert sum(k in tiny for k in hot) == len(hot)
    assert sum(k in lru for k in hot) == 0


def hit_ratio(cache, trace):
    """Cache-aside: a read, and a store on a miss."""
    misses = [cache.__setitem__(k, k) for k in trace if k not in cache or cache[k] is None]
    return 1 - len(misses) / len(trace)


def test_zipf_hit_ratio_beats_lru():
    # Zipf(0.9) popularity over 5,000 keys
    trace = random.Random(3).choices(range(5000), [k ** -0.9 for k in range(1, 5001)], k=60_000)
    tiny, lru = hit_ratio(TinyLFUCache(250), trace), hit_ratio(LRUCache(250), trace)
    assert tiny > lru + 0.03, (tiny, lru)


def test_a_loop_larger_than_the_cache_keeps_hits_where_lru_has_none():
    trace = [k % 120 for k in range(20_000)]
    assert hit_ratio(LRUCache(100), trace) == 0.0
    assert hit_ratio(TinyLFUCache(100), trace) > 0.5


def test_byte_weighted_stores_evict_as_many_victims_as_needed():
    cache = TinyLFUCache(math.inf, max_bytes=1000, sizeof=lambda k, v: len(v))
    model = ModelCache(math.inf, "tinylfu", None, 1000, lambda k, v: len(v))
    for k in range(30):
        for c in (cache, model):
            c[k] = "x" * (10 + k * 7 % 90)
    for c in (cache, model):
        c["big"] = "y" * 600                 # several victims, each decided the same way
        c["big"]
    assert cache.currbytes <= 1000 and "big" in cache
    agree(cache, model)


def test_pickling_keeps_regions_sketch_and_climber():
    rnd = random.Random(11)
    cache = TinyLFUCache(40, getsizeof=units)
    for _ in range(3000):
        k = rnd.randrange(120)
        cache.get(k) or cache.__setitem__(k, k)
    clone = pickle.loads(pickle.dumps(cache))
    assert clone.__getstate__() == cache.__getstate__()
    assert policy_state(clone)[1][1] != 0.01      # the climber moved the window
    for _ in range(3000):                         # and both go on deciding alike
        k = rnd.randrange(120)
        for c in (cache, clone):
            c.get(k) or c.__setitem__(k, k)
        assert list(cache) == list(clone)
    assert clone.__getstate__() == cache.__getstate__()


def _with(state, index, value):
    return state[:index] + (value,) + state[index + 1:]


def _with_policy(state, index, value):
    policy = state[14]
    return _with(state, 14, policy[:index] + (value,) + policy[index + 1:])


@pytest.mark.parametrize("spoil", [
    lambda s: _with(s, 14, None),                                  # no policy state
    lambda s: s[:14],                                              # an older pickle's length
    lambda s: _with(s, 10, None),                                  # no regions
    lambda s: _with(s, 10, [3] + s[10][1:]),                      # a region that is none
    lambda s: _with(s, 10, [2] + s[10][1:]),                      # regions out of order
    lambda s: _with_policy(s, 0, -1),                             # seed
    lambda s: _with_policy(s, 1, 1.5),                            # window share
    lambda s: _with_policy(s, 1, float("nan")),
    lambda s: _with_policy(s, 2, 0.5),                            # step
    lambda s: _with_policy(s, 3, -0.1),                           # previous hit rate
    lambda s: _with_policy(s, 4, 10**9),                          # a sample past its size
    lambda s: _with_policy(s, 6, 10**9),                          # additions past the sample
    lambda s: _with_policy(s, 7, b"\0" * 24),                     # sketch words not 2**k
    lambda s: _with_policy(s, 7, b"\0" * 8),                      # fewer words than entries
    lambda s: _with_policy(s, 7, b""),                            # no sketch with entries
    lambda s: _with_policy(s, 7, "text"),
    lambda s: _with(s, 14, s[14][:7]),
])
def test_a_malformed_state_is_refused_and_changes_nothing(spoil):
    src = TinyLFUCache(20)
    for k in range(60):
        src[k % 25] = k
        src.get(k % 7)
    target = TinyLFUCache(20)
    for k in range(5):
        target[k] = k
        target[k]
    before = target.__getstate__()
    with pytest.raises((ValueError, TypeError)):
        target.__setstate__(spoil(src.__getstate__()))
    assert target.__getstate__() == before


def test_other_policies_refuse_a_tinylfu_policy_state():
    state = TinyLFUCache(5).__getstate__()
    with pytest.raises(ValueError):
        LRUCache(5).__setstate__(state)


def test_clear_forgets_the_history():
    cache = TinyLFUCache(10)
    for k in range(100):
        cache[k % 13] = k
    cache.clear()
    assert policy_state(cache)[1] == TinyLFUCache(10).__getstate__()[14]


def test_report_names_the_kind_and_repr_is_cachetools_shape():
    cache = TinyLFUCache(2, name="tiny")
    cache["a"] = 1
    assert repr(cache) == "TinyLFUCache({'a': 1}, maxsize=2, currsize=1)"
    [row] = [c for c in memleash.report().caches if c.name == "tiny"]
    assert row.kind == "TinyLFUCache"


def test_empty_popitem_raises_keyerror_from_none():
    with pytest.raises(KeyError, match="TinyLFUCache is empty") as info:
        TinyLFUCache(3).popitem()
    assert info.value.__suppress_context__


# ---- long runs against the model: every region, counter and climber step ----

@pytest.mark.parametrize("maxsize,getsizeof,max_bytes", [
    (6, None, None), (30, None, None), (40, units, None), (25, None, 600), (30, units, 500),
])
def test_long_random_runs_agree_with_the_model(maxsize, getsizeof, max_bytes):
    rnd = random.Random(maxsize * 7 + (max_bytes or 0))
    sizeof = nbytes if max_bytes is not None else None
    budget = {} if max_bytes is None else {"max_bytes": max_bytes, "sizeof": nbytes}
    cache = TinyLFUCache(maxsize, getsizeof=getsizeof, **budget)
    model = ModelCache(maxsize, "tinylfu", getsizeof, max_bytes, sizeof)
    n_keys = maxsize * 3
    for step in range(6000):
        op = rnd.random()
        # a skewed key choice: the sketch has something to tell apart
        k = int(n_keys * rnd.random() ** 2)
        if op < 0.55:
            ops = lambda c: c.get(k, "dflt")   # noqa: E731
        elif op < 0.9:
            v = rnd.randrange(40)
            ops = lambda c: c.__setitem__(k, v)   # noqa: E731
        elif op < 0.95:
            ops = lambda c: c.pop(k, "dflt")   # noqa: E731
        elif op < 0.999:
            ops = lambda c: c.popitem() if len(c.keys()) else None   # noqa: E731
        else:
            ops = lambda c: c.clear()   # noqa: E731
        results = []
        for c in (cache, model):
            try:
                results.append(ops(c))
            except ValueError as exc:
                results.append(type(exc))
        assert results[0] == results[1], step
        if step % 50 == 0:
            agree(cache, model)
    agree(cache, model)
    assert cache.currsize == model.currsize
