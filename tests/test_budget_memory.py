"""Budget.follow_memory(): the cgroup readers (v1, v2, found through /proc/self/cgroup and
mountinfo), the follower's control (lowering with eviction, the floor, raising with
hysteresis), its triggers (stores, a thread, fork), and a real run in a 200 MiB cgroup."""

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

import memleash
from memleash import Budget, LRUCache
from memleash.budget import CgroupV1, CgroupV2, NoLimit, ProcessRSS, find_cgroup

MiB = 1024 * 1024


def size(key, value):
    return value


def v2(path, limit="max", current=0, inactive=0):
    """A fake cgroup v2 directory."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "memory.max").write_text(f"{limit}\n")
    (path / "memory.current").write_text(f"{current}\n")
    (path / "memory.stat").write_text(f"anon {current}\nfile 0\ninactive_file {inactive}\n"
                                      "active_file 0\n")
    return path


def v1(path, limit=9223372036854771712, usage=0, inactive=0, hierarchical=True):
    """A fake cgroup v1 memory controller directory."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "memory.limit_in_bytes").write_text(f"{limit}\n")
    (path / "memory.usage_in_bytes").write_text(f"{usage}\n")
    name = "total_inactive_file" if hierarchical else "inactive_file"
    (path / "memory.stat").write_text(f"cache 0\nrss {usage}\ninactive_file 1\n{name} {inactive}\n")
    return path


def wait_until(predicate, seconds=30.0):
    """Polls predicate; a liveness wait (the figure is a bound, never asserted)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def budget(request):
    b = Budget(500 * MiB, name=f"followed-{request.node.name}")
    yield b
    b.stop_following()


def fill(budget, n, each):
    cache = LRUCache(n + 1, sizeof=size, budget=budget)
    for i in range(n):
        cache[i] = each
    return cache


# ---- reading memory ----------------------------------------------------------------------

def test_cgroup_v2_reading(tmp_path):
    d = v2(tmp_path, limit=1000, current=700, inactive=200)
    r = CgroupV2(str(d)).read()
    assert (r.limit, r.usage, r.inactive_file, r.working_set) == (1000, 700, 200, 500)
    assert CgroupV2(str(v2(tmp_path / "u", limit="max", current=5))).read().limit is None


def test_cgroup_v1_reading(tmp_path):
    r = CgroupV1(str(v1(tmp_path, limit=2000, usage=900, inactive=300))).read()
    assert (r.limit, r.usage, r.working_set) == (2000, 900, 600)   # total_inactive_file
    flat = CgroupV1(str(v1(tmp_path / "f", limit=2000, usage=900, inactive=300,
                           hierarchical=False))).read()
    assert flat.working_set == 600
    for unlimited in (9223372036854771712, 2**63 - 1):   # page-rounded 2**63, or not
        assert CgroupV1(str(v1(tmp_path / str(unlimited), limit=unlimited))).read().limit is None


def proc_files(tmp_path, cgroup_lines, mount_lines):
    cg = tmp_path / "cgroup"
    cg.write_text("".join(line + "\n" for line in cgroup_lines))
    mi = tmp_path / "mountinfo"
    mi.write_text("".join(line + "\n" for line in mount_lines))
    return str(cg), str(mi)


def test_find_cgroup_on_a_hybrid_machine_takes_v1s_memory_controller(tmp_path):
    # this machine's layout: v1 controllers beside a v2 tree without the memory controller
    root = tmp_path / "fs"
    v1(root / "memory" / "svc" / "abc", limit=200 * MiB)
    (root / "unified").mkdir(parents=True)
    (root / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    cg, mi = proc_files(tmp_path, ["9:name=systemd:/", "4:memory:/svc/abc", "1:cpu:/", "0::/"], [
        f"31 23 0:28 / {root} rw,relatime - tmpfs tmpfs rw,mode=755",
        f"32 31 0:29 / {root}/cpu rw,relatime - cgroup cgroup rw,cpu",
        f"35 31 0:32 / {root}/memory rw,relatime - cgroup cgroup rw,memory",
        f"41 31 0:38 / {root}/unified rw,relatime - cgroup2 cgroup2 rw",
    ])
    found = find_cgroup(cg, mi)
    assert isinstance(found, CgroupV1) and found.path == str(root / "memory" / "svc" / "abc")
    assert found.read().limit == 200 * MiB


def test_find_cgroup_on_v2_and_inside_a_namespace(tmp_path):
    root = tmp_path / "fs"
    v2(root / "app.slice" / "svc", limit=300 * MiB)
    cg, mi = proc_files(tmp_path, ["0::/app.slice/svc"], [
        f"30 1 0:26 / {root} rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate",
    ])
    found = find_cgroup(cg, mi)
    assert isinstance(found, CgroupV2) and found.read().limit == 300 * MiB
    # a cgroup namespace: the mount's root is the process's cgroup itself
    ns = tmp_path / "ns"
    v2(ns, limit=100 * MiB)
    cg, mi = proc_files(tmp_path, ["0::/app.slice/svc"], [
        f"30 1 0:26 /app.slice/svc {ns} rw - cgroup2 cgroup2 rw",
    ])
    assert find_cgroup(cg, mi).read().limit == 100 * MiB


def test_find_cgroup_without_a_memory_controller(tmp_path):
    root = tmp_path / "fs"
    (root / "unified").mkdir(parents=True)
    cg, mi = proc_files(tmp_path, ["1:cpu:/", "0::/"], [
        f"41 31 0:38 / {root}/unified rw - cgroup2 cgroup2 rw",
    ])
    assert find_cgroup(cg, mi) is None
    assert find_cgroup(str(tmp_path / "missing"), mi) is None


def test_this_processs_own_cgroup_is_found():
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    found = find_cgroup()
    if any(":memory:" in line for line in lines):
        assert isinstance(found, CgroupV1) and found.read().usage > 0
    elif found is not None:
        assert isinstance(found, CgroupV2) and found.read().usage > 0


def test_process_rss_reading():
    r = ProcessRSS().read()
    assert r.limit is None and r.usage > MiB and r.working_set == r.usage
    assert NoLimit().read().limit is None


# ---- the control -------------------------------------------------------------------------

def test_memory_over_the_target_lowers_the_limit_and_evicts(tmp_path, budget):
    d = v2(tmp_path, limit=1000 * MiB, current=1000 * MiB, inactive=50 * MiB)
    cache = fill(budget, 10, 50 * MiB)               # 500 MiB held
    follower = budget.follow_memory(cgroup=d, interval=3600)
    # working set 950 MiB, target 900: 50 MiB more must go
    assert budget.effective_maxbytes == 450 * MiB and budget.currbytes == 450 * MiB
    assert budget.pressure_evictions == 1 and list(cache) == list(range(1, 10))
    assert (follower.checks, follower.lowered, follower.floor_hits) == (1, 1, 0)
    assert budget.follower is follower and follower.running


def test_usage_that_does_not_fall_stops_at_the_floor(tmp_path, budget):
    # freed memory stays mapped: the cgroup's usage never falls as the caches shrink
    d = v1(tmp_path, limit=1000 * MiB, usage=1200 * MiB)
    cache = fill(budget, 10, 50 * MiB)
    follower = budget.follow_memory(cgroup=d, interval=3600)
    floor = 900 * MiB // 10                          # a tenth of the target by default
    for _ in range(10):
        follower.check()
    assert budget.effective_maxbytes == floor and follower.floor_hits > 0
    assert 0 < budget.currbytes <= floor and len(cache) == 1   # not emptied
    budget.follow_memory(cgroup=d, interval=3600, floor=200 * MiB)
    assert budget.effective_maxbytes == 200 * MiB   # a new follower starts from max_bytes


def test_freed_memory_raises_the_limit_with_hysteresis(tmp_path, budget):
    d = v2(tmp_path, limit=1000 * MiB, current=1100 * MiB)
    cache = fill(budget, 10, 50 * MiB)
    follower = budget.follow_memory(cgroup=d, interval=3600)
    assert budget.effective_maxbytes == 300 * MiB    # 500 - (1100 - 900)
    assert len(cache) == 6
    v2(tmp_path, limit=1000 * MiB, current=870 * MiB)  # under the target, above low (850)
    follower.check()
    assert budget.effective_maxbytes == 300 * MiB and follower.raised == 0
    v2(tmp_path, limit=1000 * MiB, current=600 * MiB)  # 250 MiB below the low mark
    follower.check()
    assert budget.effective_maxbytes == 550 * MiB - 50 * MiB and follower.raised == 1
    v2(tmp_path, limit=1000 * MiB, current=100 * MiB)
    follower.check()
    assert budget.effective_maxbytes == 500 * MiB    # never above max_bytes


def test_no_limit_gives_the_budget_its_max_bytes_back(tmp_path, budget):
    d = v2(tmp_path, limit=1000 * MiB, current=1000 * MiB)
    cache = fill(budget, 10, 50 * MiB)
    follower = budget.follow_memory(cgroup=d, interval=3600)
    assert budget.effective_maxbytes == 400 * MiB and len(cache) == 8
    v2(tmp_path, limit="max", current=1000 * MiB)
    follower.check()
    assert budget.effective_maxbytes == 500 * MiB and follower.last.limit is None


def test_an_explicit_limit_reads_the_rss(budget):
    follower = budget.follow_memory(limit=2**50, interval=3600)
    assert isinstance(follower.source, ProcessRSS)
    assert follower.last.limit == 2**50 and follower.last.usage > MiB
    assert budget.effective_maxbytes == budget.maxbytes


def test_stores_check_when_the_budget_has_grown_by_a_step(tmp_path, budget):
    d = v2(tmp_path, limit=1000 * MiB, current=100 * MiB)
    cache = LRUCache(100, sizeof=size, budget=budget)
    follower = budget.follow_memory(cgroup=d, interval=3600)
    assert follower.checks == 1
    cache[0] = 10 * MiB                # under the step (a quarter of the headroom: 25 MiB)
    cache[1] = 10 * MiB
    assert follower.checks == 1
    v2(tmp_path, limit=1000 * MiB, current=990 * MiB)
    cache[2] = 10 * MiB                # 30 MiB since the last check: this store checks
    # 90 MiB over the target, more than the caches hold: down to the floor (90 MiB)
    assert follower.checks == 2 and budget.effective_maxbytes == 90 * MiB
    assert len(cache) == 3 and budget.pressure_evictions == 0


def test_the_thread_checks_at_its_interval_and_stops(tmp_path, budget):
    d = v2(tmp_path, limit=1000 * MiB, current=100 * MiB)
    follower = budget.follow_memory(cgroup=d, interval=0.01)
    assert wait_until(lambda: follower.checks >= 3)
    thread = follower._thread
    budget.stop_following()
    assert not thread.is_alive() and not follower.running and budget.follower is None
    count = follower.checks
    time.sleep(0.05)
    assert follower.checks == count


def test_the_thread_ends_when_its_budget_dies(tmp_path):
    b = Budget(10 * MiB)
    follower = b.follow_memory(cgroup=v2(tmp_path, limit=1000 * MiB), interval=0.01)
    thread = follower._thread
    del b
    assert wait_until(lambda: not thread.is_alive())


def test_concurrent_checks_do_not_wait_for_each_other(tmp_path, budget):
    follower = budget.follow_memory(cgroup=v2(tmp_path, limit=1000 * MiB), interval=3600)
    with follower._lock:               # a check in progress elsewhere
        assert follower.check() is None
    assert follower.check() is not None


def test_a_stores_check_waits_for_a_check_in_progress_then_reads_again(tmp_path, budget):
    # the thread's check is running (it holds the lock) when a store reaches its step: the
    # store waits for it, then checks itself (it returned at once and checked nothing)
    d = v2(tmp_path, limit=1000 * MiB, current=100 * MiB)
    cache = LRUCache(100, sizeof=size, budget=budget)
    follower = budget.follow_memory(cgroup=d, interval=3600)
    v2(tmp_path, limit=1000 * MiB, current=990 * MiB)
    stored = threading.Event()

    def store():
        cache[0] = 30 * MiB           # past the step: this store checks
        stored.set()

    with follower._lock:               # a check in progress in this thread
        t = threading.Thread(target=store)
        t.start()
        assert not stored.wait(0.2) and follower.checks == 1
    t.join()
    assert stored.is_set() and follower.checks == 2
    assert budget.effective_maxbytes == 90 * MiB   # the store's own reading: 990 MiB


def test_a_store_made_by_a_check_does_not_wait_for_it(tmp_path, budget):
    # a check's evictions release values: a __del__ that stores into the budget past the
    # checkpoint calls the store's check from inside that check, in its thread, which must
    # not wait for itself (it would wait forever). The checkpoint is put at 0 so that it does
    d = v2(tmp_path, limit=1000 * MiB, current=100 * MiB)
    cache = LRUCache(100, sizeof=size, budget=budget)
    other = LRUCache(100, sizeof=size, budget=budget)
    follower = budget.follow_memory(cgroup=d, interval=3600, floor=0)

    class Refills(int):
        def __del__(self):
            other["again"] = MiB

    cache[0] = Refills(60 * MiB)
    cache[1] = 60 * MiB                # each store past a step: 3 checks so far
    v2(tmp_path, limit=1000 * MiB, current=990 * MiB)   # 90 MiB over the target
    budget._ml_follow(follower._on_store, 0)
    done = []
    t = threading.Thread(target=lambda: done.append(follower.check()), daemon=True)
    t.start()
    t.join(30)
    assert done and done[0] is not None and follower.checks == 4
    # lowered to 120 - 90 = 30 MiB: both evicted, then the __del__'s store, within it
    assert len(cache) == 0 and other["again"] == MiB and budget.effective_maxbytes == 30 * MiB


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_restarts_its_own_watcher(tmp_path, budget):
    d = v2(tmp_path, limit=1000 * MiB, current=100 * MiB)
    follower = budget.follow_memory(cgroup=d, interval=0.01)
    parent_thread = follower._thread
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: report, then leave without running the parent's cleanup
        ok = False
        try:
            before = follower.checks
            # a thread of its own (the parent's did not survive the fork), checking
            ok = (follower.running and follower._thread is not parent_thread
                  and wait_until(lambda: follower.checks >= before + 3, 20))
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert follower.running and follower._thread is parent_thread


def test_follower_arguments_are_checked(tmp_path, budget):
    d = v2(tmp_path)
    for kw in ({"headroom": 1.0}, {"headroom": -0.1}, {"hysteresis": 1.5}, {"floor": -1},
               {"interval": 0}, {"limit": 0}):
        with pytest.raises(ValueError):
            budget.follow_memory(cgroup=d, **kw)
    with pytest.raises(ValueError, match="no cgroup directory"):
        budget.follow_memory(cgroup=tmp_path / "empty")


def test_report_shows_what_a_budget_follows(tmp_path, budget):
    d = v1(tmp_path, limit=1000 * MiB, usage=1200 * MiB)
    cache = fill(budget, 10, 50 * MiB)
    follower = budget.follow_memory(cgroup=d, interval=3600)
    for _ in range(5):
        follower.check()
    assert len(cache) == 1
    (row,) = [b for b in memleash.report().budgets if b.name == budget.name]
    assert row.following and row.memory_limit == 1000 * MiB
    assert row.working_set == 1200 * MiB and row.floor_hits == follower.floor_hits > 0
    assert "(following)" in str(memleash.report())
    assert f'memleash_budget_floor_hits_total{{kind="Budget",name="{budget.name}"}}' in \
        memleash.report().to_prometheus()


# ---- a real cgroup ------------------------------------------------------------------------

CGROUP_V1 = "/sys/fs/cgroup/memory"
LIMIT = 200 * MiB

WORKLOAD = textwrap.dedent("""
    import os, sys
    cgroup, variant = sys.argv[1], sys.argv[2]
    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))                 # into the 200 MiB cgroup, then work
    import memleash
    if variant == "dict":
        caches = [{} for _ in range(3)]
    else:
        budget = memleash.Budget(4 * 1024 ** 3, name="service")   # far above the cgroup
        follower = budget.follow_memory(interval=0.05)           # the process's own cgroup
        caches = [memleash.LRUCache(10 ** 9, budget=budget) for _ in range(3)]
    for i in range(450_000):                      # ~500 MiB of 1 KiB values in all
        caches[i % 3][i] = os.urandom(1024)
    if variant == "budget":
        def read(name):
            with open(os.path.join(cgroup, name)) as f:
                return int(f.read())
        reading = follower.check() or follower.last
        print(read("memory.max_usage_in_bytes"), read("memory.usage_in_bytes"),
              reading.working_set, budget.currbytes, budget.effective_maxbytes,
              budget.pressure_evictions, follower.checks, follower.floor_hits,
              sum(len(c) for c in caches))
""")


@pytest.fixture
def memory_cgroup():
    """A fresh cgroup v1 memory controller directory of 200 MiB (memory + swap), removed
    afterwards; skipped with the reason where it cannot be made."""
    if memleash._core._CHECKED:
        pytest.skip("the debug build's validators make every store O(entries)")
    if "asan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("ASan's quarantine keeps freed memory: usage cannot fall under a budget")
    if not os.path.isdir(CGROUP_V1):
        pytest.skip(f"no cgroup v1 memory controller at {CGROUP_V1}")
    path = os.path.join(CGROUP_V1, f"memleash-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.mkdir(path)
    except OSError as exc:
        pytest.skip(f"cannot create a memory cgroup ({exc}): needs root and cgroup v1")
    try:
        with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
            f.write(str(LIMIT))
        memsw = os.path.join(path, "memory.memsw.limit_in_bytes")
        if os.path.exists(memsw):
            with open(memsw, "w") as f:
                f.write(str(LIMIT))   # no swap either: the limit is the limit
        yield path
    finally:
        for _ in range(100):          # the killed child's exit may still be under way
            try:
                os.rmdir(path)
                break
            except OSError:
                time.sleep(0.05)


def run_workload(cgroup, variant):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", WORKLOAD, cgroup, variant], env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_dict_cache_is_oom_killed_where_a_budget_following_the_cgroup_finishes(memory_cgroup):
    leaky = run_workload(memory_cgroup, "dict")
    assert leaky.returncode == -9, (leaky.returncode, leaky.stderr[-2000:])   # SIGKILL
    with open(os.path.join(memory_cgroup, "memory.oom_control")) as f:
        oom = dict(line.split() for line in f)
    assert int(oom.get("oom_kill", 1)) == 1   # by the OOM killer (kernels >= 4.13 count it)
    fixed = run_workload(memory_cgroup, "budget")
    assert fixed.returncode == 0, (fixed.returncode, fixed.stderr[-2000:])
    peak, usage, working_set, held, effective, evicted, checks, floor_hits, entries = map(
        int, fixed.stdout.split())
    print(f"\ncgroup {LIMIT // MiB} MiB: peak usage {peak / MiB:.1f} MiB (page cache "
          f"included), final {usage / MiB:.1f} MiB, working set {working_set / MiB:.1f} MiB; "
          f"the budget holds {held / MiB:.1f} MiB in {entries} entries, its limit in force "
          f"{effective / MiB:.1f} MiB after {evicted} pressure evictions, {checks} checks, "
          f"{floor_hits} at the floor")
    assert peak <= LIMIT and usage < LIMIT
    assert evicted > 0 and effective < 4 * 1024 ** 3 and held <= effective
