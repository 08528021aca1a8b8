"""The resource tracker: leaks of files, sockets, subprocesses, sqlite3 connections and the
user's own handles, under both deaths (refcount and cyclic collection), reported once."""

import gc
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest

import memleash
from memleash import tracker

# Every test here is about the tracker itself: it reconfigures it (set_level, enable,
# disable, seed) and expects its defaults, or leaks on purpose to check what is reported.
# Under the pytest plugin (make test-plugin) each runs with the tracker as it was before
# the plugin, and its leaks are only counted: one leaks="ignore" for the module.
pytestmark = pytest.mark.memleash(leaks="ignore")


@pytest.fixture
def leaks():
    got = []
    tracker.on_leak(got.append)
    yield got
    tracker.remove_leak_listener(got.append)


@pytest.fixture
def shown():
    """Every warning issued, whatever the filters (pytest's own capture is bypassed)."""
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        yield log


@pytest.fixture
def level():
    before = tracker.get_level(), tracker._state["rate"], tracker._state["depth"]
    yield tracker.set_level
    tracker.set_level(before[0], sample_rate=before[1], depth=before[2])
    tracker.disable()


def resource_warnings(log):
    return [w for w in log if issubclass(w.category, ResourceWarning)]


def open_leaky(path):
    f = open(path, "w")
    memleash.track(f)
    f.write("data")
    return f


# ---- files ----

def test_file_dropped_unclosed_is_one_leak_with_its_allocation_site(tmp_path, leaks, shown):
    f = open_leaky(tmp_path / "a.txt")
    del f
    assert len(leaks) == 1
    assert leaks[0].frames[0].function == "open_leaky"
    assert leaks[0].where.startswith(__file__)
    assert "TextIOWrapper" in leaks[0].description and "a.txt" in leaks[0].description
    assert (tmp_path / "a.txt").read_text() == "data"   # its finalizer still flushed it
    [w] = resource_warnings(shown)   # CPython's own warning, not a second one
    assert w.category is ResourceWarning and str(w.message).startswith("unclosed file")
    assert "allocated at " + leaks[0].where in warnings._formatwarnmsg(w)


def test_file_in_a_cycle_is_one_leak(tmp_path, leaks, shown):
    f = open_leaky(tmp_path / "b.txt")
    f.cycle = f
    del f
    gc.collect()
    assert [leak.frames[0].function for leak in leaks] == ["open_leaky"]


def test_closed_file_is_no_leak(tmp_path, leaks, shown):
    f = open_leaky(tmp_path / "c.txt")
    f.close()
    del f
    with memleash.track(open(tmp_path / "c.txt")) as g:
        g.read()
    del g
    gc.collect()
    assert leaks == [] and resource_warnings(shown) == []


def test_closed_file_in_a_cycle_is_no_leak(tmp_path, leaks, shown):
    f = open_leaky(tmp_path / "d.txt")
    f.close()
    f.cycle = f
    del f
    gc.collect()
    assert leaks == []


# every stack open() builds: TextIOWrapper > BufferedWriter > FileIO, BufferedReader >
# FileIO, and a bare FileIO
OPEN_MODES = [("w", -1), ("rb", -1), ("r+b", -1), ("wb", 0)]


def open_mode(path, mode, buffering):
    path.touch()
    return memleash.track(open(path, mode, buffering=buffering))


@pytest.mark.parametrize("mode,buffering", OPEN_MODES)
def test_every_kind_of_file_dropped_unclosed_is_one_leak_and_one_warning(
        tmp_path, leaks, shown, mode, buffering):
    f = open_mode(tmp_path / "m", mode, buffering)
    kind = type(f).__name__
    del f
    assert len(leaks) == 1 and kind in leaks[0].description
    [w] = resource_warnings(shown)
    assert w.category is ResourceWarning and kind in str(w.message)
    assert "allocated at " + leaks[0].where in warnings._formatwarnmsg(w)


@pytest.mark.parametrize("mode,buffering", OPEN_MODES)
def test_every_kind_of_file_in_a_cycle_is_one_leak_and_one_warning(
        tmp_path, leaks, shown, mode, buffering):
    f = open_mode(tmp_path / "m", mode, buffering)
    f.cycle = f
    del f
    gc.collect()
    assert len(leaks) == 1
    [w] = resource_warnings(shown)
    assert str(w.message).startswith("unclosed file")


def test_a_file_leaked_in_a_cycle_is_shown_with_its_allocation_site():
    # the display path, as a service sees it (a warning recorded and formatted after the
    # collection has no record to match: known limit)
    out = run_script("""
        import gc, os, memleash
        def leak():
            files = [memleash.track(open(os.devnull, "r")),
                     memleash.track(open(os.devnull, "rb")),
                     memleash.track(open(os.devnull, "wb", buffering=0))]
            files.append(files)
        leak()
        gc.collect()
        """, "-W", "always::ResourceWarning")
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("ResourceWarning: unclosed file") == 3, out.stderr
    for line in (4, 5, 6):   # one site each, each shown
        assert f"allocated at <string>:{line} in leak()" in out.stderr, out.stderr


@pytest.mark.parametrize("mode,buffering", OPEN_MODES)
def test_every_kind_of_file_closed_is_no_leak_under_both_deaths(
        tmp_path, leaks, shown, mode, buffering):
    f = open_mode(tmp_path / "m", mode, buffering)
    f.close()
    del f
    g = open_mode(tmp_path / "m", mode, buffering)
    g.close()
    g.cycle = g
    del g
    gc.collect()
    assert leaks == [] and resource_warnings(shown) == []


@pytest.mark.parametrize("mode,buffering", OPEN_MODES)
def test_a_temporary_file_closed_in_one_expression_is_no_leak(
        tmp_path, leaks, shown, level, mode, buffering):
    (tmp_path / "t").touch()
    memleash.track(open(tmp_path / "t", mode, buffering=buffering)).close()
    level("paranoid")
    tracker.enable(files=True, sockets=False)
    open(tmp_path / "t", mode, buffering=buffering).close()   # the touch idiom
    assert leaks == [] and resource_warnings(shown) == []


def test_a_file_close_method_held_elsewhere_keeps_the_file_alive(tmp_path, leaks, shown):
    import contextlib
    with contextlib.ExitStack() as stack:
        f = memleash.track(open(tmp_path / "x", "w"))
        stack.callback(f.close)
        f.write("kept")
        del f   # the stack's bound close() keeps it open, as without memleash
    assert (tmp_path / "x").read_text() == "kept"
    assert leaks == [] and resource_warnings(shown) == []


def test_a_file_flushed_as_a_temporary_is_fine(tmp_path, leaks, shown):
    memleash.track(open(tmp_path / "y", "wb", buffering=0)).flush()
    assert len(leaks) == 1   # it was dropped unclosed: a leak, and no error


def test_a_stream_over_bytesio_leaks_with_memleash_warning(leaks, shown):
    import io
    f = memleash.track(io.TextIOWrapper(io.BytesIO()))
    del f
    assert len(leaks) == 1
    [w] = resource_warnings(shown)   # CPython is silent about it: ours
    assert w.category is tracker.UnclosedResourceWarning


def test_close_observer_keeps_the_file_api(tmp_path):
    f = memleash.track(open(tmp_path / "e.txt", "w"))
    assert type(f).__name__ == "TextIOWrapper" and f.mode == "w"
    f.close()
    f.close()   # double close is fine
    assert f.closed
    assert memleash.untrack(f) is False   # closed already


# ---- sockets, subprocesses, sqlite3 ----

def test_socketpair_one_closed_one_leaked(leaks, shown):
    a, b = socket.socketpair()
    memleash.track(a)
    memleash.track(b, name="peer")
    a.close()
    del a, b
    gc.collect()
    [w] = resource_warnings(shown)
    assert "allocated at" in warnings._formatwarnmsg(w)
    del w
    shown.clear()   # the recorded warning held the socket (its source) alive
    gc.collect()
    assert [leak.name for leak in leaks] == ["peer"]
    assert "socket.socket" in leaks[0].description


def test_socket_in_a_cycle_leaks(leaks, shown):
    a, b = socket.socketpair()
    memleash.track(a)
    b.close()
    holder = [a]
    holder.append(holder)
    del a, holder
    gc.collect()
    shown.clear()
    gc.collect()
    assert len(leaks) == 1


def test_subprocess_not_waited_leaks_and_waited_does_not(leaks, shown):
    p = memleash.track(subprocess.Popen([sys.executable, "-c", "pass"]))
    p.wait()
    del p
    assert leaks == []
    q = memleash.track(subprocess.Popen([sys.executable, "-c", "pass"]))
    time.sleep(0.2)
    del q
    gc.collect()
    assert len(resource_warnings(shown)) == 1
    shown.clear()
    gc.collect()
    assert len(leaks) == 1 and "Popen" in leaks[0].description
    with memleash.track(subprocess.Popen([sys.executable, "-c", "pass"])) as r:
        pass
    del r
    assert len(leaks) == 1


class Connection(sqlite3.Connection):
    """sqlite3.Connection cannot be weakly referenced; a subclass can."""


def test_sqlite3_connection(leaks, shown):
    plain = sqlite3.connect(":memory:")
    with pytest.raises(TypeError, match="factory"):
        memleash.track(plain)
    plain.close()
    conn = memleash.track(sqlite3.connect(":memory:", factory=Connection))
    conn.execute("select 1")
    conn.close()
    del conn
    assert leaks == []
    conn = memleash.track(sqlite3.connect(":memory:", factory=Connection))
    del conn
    gc.collect()   # a connection is in a cycle with its statement cache
    assert len(leaks) == 1
    [w] = resource_warnings(shown)   # one warning: memleash's, or CPython's from 3.13
    if sys.version_info >= (3, 13):
        assert w.category is ResourceWarning and str(w.message).startswith("unclosed database")
        assert str(w.message).endswith(" allocated at " + leaks[0].where)
    else:
        assert w.category is memleash.UnclosedResourceWarning


# ---- the user's own classes ----

class Handle:
    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


class SlottedHandle:
    __slots__ = ("__weakref__", "closed")

    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


def make_handle(cls=Handle):
    return memleash.track(cls())


def test_user_object_leak_warns_naming_type_and_site(leaks, shown):
    h = make_handle()
    del h
    [w] = resource_warnings(shown)
    assert w.category is memleash.UnclosedResourceWarning
    text = str(w.message)
    assert text.startswith("unclosed <tests.test_tracker.Handle object at 0x") or \
        text.startswith("unclosed <test_tracker.Handle object at 0x")
    assert text.endswith(f"allocated at {__file__}:{make_handle.__code__.co_firstlineno + 1} in make_handle()")


def test_user_object_closed_or_untracked_is_no_leak(leaks, shown):
    for cls in (Handle, SlottedHandle):
        h = make_handle(cls)
        h.close()
        del h
        h = make_handle(cls)
        assert memleash.untrack(h) is True
        del h
    assert leaks == []


def test_slotted_user_object_leaks(leaks):
    h = make_handle(SlottedHandle)
    del h
    assert len(leaks) == 1


def test_object_without_weakrefs_is_a_type_error():
    with pytest.raises(TypeError, match="weak references"):
        memleash.track(object())
    with pytest.raises(TypeError, match="name"):
        memleash.track(Handle(), name=3)


def test_close_that_raises_propagates_and_the_object_stays_open(leaks, shown):
    class Failing(Handle):
        def close(self):
            raise OSError("disk on fire")

    h = memleash.track(Failing())
    with pytest.raises(OSError, match="disk on fire"):
        h.close()
    del h
    assert len(leaks) == 1


def test_resurrected_object_leaks_once_when_it_finally_dies(leaks, shown):
    saved = []

    class Phoenix(Handle):
        def __del__(self):
            if not saved:
                saved.append(self)

    memleash.track(Phoenix())
    gc.collect()
    saved.clear()
    gc.collect()
    assert len(leaks) == 1


def test_leaks_from_one_site_warn_once_and_are_counted(leaks, shown):
    for _ in range(5):
        make_handle()
    assert len(leaks) == 5
    site = [s for s in tracker.sites() if s.frames and s.frames[0].function == "make_handle"]
    assert len(resource_warnings(shown)) <= 1
    assert site[0].leaked >= 5 and site[0].warned >= 1


def test_every_listener_hears_of_a_leak_even_if_one_raises(leaks):
    def broken(leak):
        raise RuntimeError("listener bug")

    tracker.on_leak(broken)
    unraisable = []
    hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", memleash.UnclosedResourceWarning)
            make_handle()
    finally:
        sys.unraisablehook = hook
        tracker.remove_leak_listener(broken)
    assert len(leaks) == 1
    assert [type(u.exc_value) for u in unraisable] == [RuntimeError]
    # named after the leaked object, not memleash's handler
    assert unraisable[0].err_msg.startswith("Exception ignored in the leak report of <")
    assert "Handle object at 0x" in unraisable[0].err_msg


def test_closing_a_temporary_keeps_it_alive_for_close(leaks, shown):
    memleash.track(Handle()).close()
    memleash.track(SlottedHandle()).close()
    assert leaks == []


def test_leak_listener_may_track_and_report(leaks, shown):
    seen = []

    def reentrant(leak):
        memleash.track(Handle()).close()
        seen.append(len(memleash.open_resources()))

    tracker.on_leak(reentrant)
    try:
        make_handle()
    finally:
        tracker.remove_leak_listener(reentrant)
    assert len(seen) == 1 and len(leaks) == 1


# ---- memleash.Resource ----

class Conn(memleash.Resource):
    def __init__(self, dsn):
        self.dsn = dsn
        self.released = False

    def close(self):
        self.released = True


def test_resource_leak_warns_from_its_finalizer_with_source(leaks, shown):
    c = Conn("db")
    del c
    [w] = resource_warnings(shown)
    assert w.category is memleash.UnclosedResourceWarning
    assert type(w.source) is Conn and w.source.dsn == "db"
    assert "Conn object at" in str(w.message) and f"{__file__}:" in str(w.message)
    assert len(leaks) == 1


def test_resource_in_a_cycle_leaks_once(leaks, shown):
    c = Conn("db")
    c.me = c
    del c
    gc.collect()
    assert len(leaks) == 1


def test_resource_close_and_context_manager(leaks, shown):
    c = Conn("db")
    assert not c.closed
    c.close()   # the subclass's close() needs no super().close()
    assert c.closed and c.released
    with Conn("db") as d:
        assert not d.closed
    assert d.closed
    del c, d
    gc.collect()
    assert leaks == [] and resource_warnings(shown) == []


def test_resource_decorator_keeps_the_class_close(leaks, shown):
    @memleash.resource
    class Lock:
        def close(self):
            self.freed = True

    lock = Lock()
    assert isinstance(lock, memleash.Resource) and Lock.__name__ == "Lock"
    lock.close()
    assert lock.closed and lock.freed
    Lock()
    assert len(leaks) == 1


def test_resource_whose_del_skips_the_finalizer_still_leaks(leaks, shown):
    class Quiet(memleash.Resource):
        def __del__(self):
            pass

    Quiet()
    assert len(leaks) == 1


# ---- open_resources ----

def test_open_resources_groups_by_site_most_numerous_first(tmp_path):
    few = [memleash.track(Handle()) for _ in range(2)]
    many = [memleash.track(Handle(), name="batch") for _ in range(5)]
    report = memleash.open_resources()
    mine = [r for r in report if r.frames and r.frames[0].filename == __file__]
    assert [r.open for r in mine[:2]] == [5, 2]
    assert mine[0].names == ("batch",) and mine[0].oldest_age >= 0
    assert mine[0].examples[0].startswith("<")
    for h in few + many:
        h.close()
    assert all(r.open == 0 for r in memleash.open_resources() if r.frames and r.frames[0].filename == __file__)


def test_open_resources_sees_objects_closed_behind_its_back():
    h = memleash.track(Handle())
    h.closed = True   # not through close(): the closed attribute still tells
    assert not [r for r in memleash.open_resources() if r.open and r.frames[0].lineno == sys._getframe().f_lineno - 2]


# ---- levels and automatic tracking ----

def test_set_level_validates():
    with pytest.raises(ValueError, match="level"):
        tracker.set_level("loud")
    with pytest.raises(ValueError, match="sample_rate"):
        tracker.set_level("simple", sample_rate=0)
    with pytest.raises(ValueError, match="depth"):
        tracker.set_level("simple", depth=65)


def test_enable_at_paranoid_tracks_every_open_file(tmp_path, level, leaks, shown):
    import builtins
    import io
    real = builtins.open
    level("paranoid", depth=3)
    tracker.enable(files=True, sockets=False)
    f = open(tmp_path / "p.txt", "w")
    del f
    tracker.disable()
    assert builtins.open is real and io.open is real
    assert len(leaks) == 1 and 1 <= len(leaks[0].frames) <= 3
    assert leaks[0].frames[0].function == "test_enable_at_paranoid_tracks_every_open_file"


def test_enable_sockets_tracks_accepted_and_created_sockets(level, leaks, shown):
    level("paranoid")
    tracker.enable(files=False, sockets=True)
    try:
        a, b = socket.socketpair()
    finally:
        tracker.disable()
    a.close()
    del a, b
    shown.clear()   # the recorded warning held b alive
    gc.collect()
    assert len(leaks) == 1
    assert socket.socket.__init__.__module__ == "socket"


def test_enable_subprocesses_tracks_every_popen(level, leaks):
    level("paranoid")
    since = time.monotonic_ns()
    tracker.enable(files=False, sockets=False, subprocesses=True)
    try:
        assert tracker.enabled() == {"files": False, "sockets": False, "subprocesses": True}
        waited = subprocess.Popen([sys.executable, "-c", "pass"])
        waited.wait()
        running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        with pytest.raises(FileNotFoundError):
            subprocess.Popen(["/nonexistent/memleash-no-such-program"])   # never started
    finally:
        tracker.disable()
    assert subprocess.Popen.__init__.__module__ == "subprocess"
    assert not tracker.enabled()["subprocesses"]
    try:
        [(site, tracked_at, desc, _)] = tracker._open_records(since)   # the running one
        assert desc.startswith("<Popen: returncode: None") and tracked_at >= since
        assert tracker._frames(site)[0].function == "test_enable_subprocesses_tracks_every_popen"
    finally:
        running.kill()
        running.wait()   # closes it
    assert tracker._open_records(since) == [] and leaks == []


def test_disabled_level_tracks_nothing_automatically(tmp_path, level, leaks, shown):
    level("disabled")
    tracker.enable(files=True, sockets=False)
    f = open(tmp_path / "q.txt", "w")
    del f
    assert leaks == []


def test_sampling_rate_is_within_statistical_bounds(tmp_path, level):
    level("simple", sample_rate=16)
    tracker.seed(1234)
    tracker.enable(files=True, sockets=False)
    path = tmp_path / "s.txt"
    path.write_text("x")
    files = [open(path) for _ in range(4000)]   # the same site for all
    tracker.disable()
    # the comprehension's own frame before 3.12 (PEP 709 inlines it from 3.12)
    [site] = [r for r in memleash.open_resources() if r.frames and r.frames[0].filename == __file__
              and r.frames[0].function.endswith(("<listcomp>", "test_sampling_rate_is_within_statistical_bounds"))]
    # binomial(4000, 1/16): mean 250, sd 15.3; five sd either side
    assert 173 <= site.open <= 327
    for f in files:
        f.close()


def test_level_from_the_environment():
    code = "from memleash import tracker; print(tracker.get_level())"
    env = dict(os.environ, MEMLEASH_LEAK_LEVEL="paranoid")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "paranoid", out.stderr


# ---- threads, shutdown, -W error ----

def test_tracking_from_many_threads(leaks):
    def work():
        for i in range(500):
            h = memleash.track(Handle())
            if i % 2:
                h.close()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", memleash.UnclosedResourceWarning)
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        gc.collect()
    assert len([leak for leak in leaks if leak.frames[0].function.endswith("work")]) == 8 * 250
    [site] = [r for r in tracker.sites() if r.frames and r.frames[0].function.endswith(".work")]
    assert site.tracked == 8 * 500 and site.open == 0 and site.leaked == 8 * 250


def test_threads_mixing_tracker_operations_keep_its_books(tmp_path, leaks, level):
    """8 threads for a bounded time: files and handles tracked, closed, dropped, kept,
    untracked, with reports read meanwhile; afterwards every count adds up."""
    import random
    level("paranoid")
    (tmp_path / "thread").touch()
    stop = time.monotonic() + 1.0
    kept, dropped_open = [], [0]
    lock = threading.Lock()

    def work(seed):
        rnd = random.Random(seed)
        mine, drops = [], 0
        while time.monotonic() < stop:
            op = rnd.randrange(6)
            if op == 0:
                f = tracked_file(tmp_path, rnd)
                if rnd.random() < 0.5:
                    f.close()
                else:
                    drops += 1
                del f
            elif op == 1:
                h = memleash.track(Handle(), name="t")
                if rnd.random() < 0.5:
                    h.close()
                elif rnd.random() < 0.5:
                    mine.append(h)
                else:
                    drops += 1
                del h
            elif op == 2 and mine:
                memleash.untrack(mine.pop())
            elif op == 3:
                memleash.open_resources()
            elif op == 4:
                mine.append(tracked_file(tmp_path, rnd))
            else:
                memleash.track(Handle()).close()
        with lock:
            kept.extend(mine)
            dropped_open[0] += drops

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        gc.collect()
        assert len(leaks) == dropped_open[0]
        still_open = [r for r in memleash.open_resources() if r.open]
        assert sum(r.open for r in still_open) == len(kept)
        for obj in kept:
            obj.close()
        assert sum(r.open for r in memleash.open_resources()) == 0


def tracked_file(tmp_path, rnd):
    mode, buffering = OPEN_MODES[rnd.randrange(len(OPEN_MODES))]
    return memleash.track(open(tmp_path / "thread", mode, buffering=buffering))


def run_script(body, *args):
    code = textwrap.dedent(body)
    return subprocess.run([sys.executable, *args, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(memleash.__file__))))


def test_shutdown_with_open_tracked_objects_is_quiet():
    out = run_script("""
        import memleash, socket
        class H:
            def close(self): pass
        keep = [memleash.track(H()) for _ in range(1000)]
        files = [memleash.track(open(__import__('os').devnull)) for _ in range(100)]
        pairs = [memleash.track(s) for p in [socket.socketpair() for _ in range(10)] for s in p]
        class R(memleash.Resource):
            pass
        rs = [R() for _ in range(100)]
        print("done")
    """, "-W", "always")
    assert out.returncode == 0 and out.stdout.strip() == "done"
    assert out.stderr.count("memleash") <= 2 and "Segmentation" not in out.stderr


def test_error_filter_turns_a_leak_into_a_clear_unraisable_error():
    out = run_script("""
        import memleash
        class H:
            def close(self): pass
        def leak():
            memleash.track(H())
        leak()
        print("survived")
    """, "-W", "error::ResourceWarning")
    assert out.returncode == 0 and "survived" in out.stdout
    assert "UnclosedResourceWarning" in out.stderr and "allocated at" in out.stderr
    # the leaked object is named, not memleash's internals
    assert "Exception ignored in the leak report of <__main__.H object at 0x" in out.stderr
    assert "_dispatch" not in out.stderr.splitlines()[0]


def test_works_under_tracemalloc(tmp_path, leaks, shown):
    import tracemalloc
    tracemalloc.start(5)
    try:
        f = open_leaky(tmp_path / "t.txt")
        del f
        [w] = resource_warnings(shown)
        text = warnings._formatwarnmsg(w)
    finally:
        tracemalloc.stop()
    assert "allocated at" in text and "Object allocated at" in text


def test_resource_collected_with_its_class_in_one_cycle(leaks):
    ns = {}
    exec("import memleash\nclass C(memleash.Resource):\n    pass\nc = C()\nc.me = c\n", ns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ns.clear()   # the class and its instance become garbage together
        gc.collect()
    assert len(leaks) == 1


# ---- leaks to logging ----

def test_log_leaks_logs_every_leak_whatever_the_warning_filters(caplog):
    class Handle(memleash.Resource):
        pass

    def opened_here():
        return Handle()

    listener = tracker.log_leaks("app.leaks")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")        # a service's default: ResourceWarning hidden
            with caplog.at_level(logging.WARNING, logger="app.leaks"):
                opened_here()
                opened_here()                      # the same site: logged again, not deduplicated
                gc.collect()
    finally:
        tracker.remove_leak_listener(listener)
    records = [r for r in caplog.records if r.name == "app.leaks"]
    assert len(records) == 2
    for r in records:
        assert r.levelno == logging.WARNING
        assert r.getMessage().startswith("unclosed <")
        assert f"allocated at {__file__}:" in r.getMessage()
        assert r.getMessage().endswith(".<locals>.opened_here()")
        assert r.leak.frames[0].function.endswith("opened_here")   # the Leak, for handlers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opened_here()
        gc.collect()
    assert len([r for r in caplog.records if r.name == "app.leaks"]) == 2   # removed: silent


def test_log_leaks_takes_a_logger_and_a_level(caplog):
    logger = logging.getLogger("app.resources")
    listener = tracker.log_leaks(logger, level=logging.ERROR)
    try:
        with caplog.at_level(logging.ERROR, logger="app.resources"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            memleash.track(Closeable(), name="db")
            gc.collect()
    finally:
        tracker.remove_leak_listener(listener)
    [record] = [r for r in caplog.records if r.name == "app.resources"]
    assert record.levelno == logging.ERROR and "(db) allocated at" in record.getMessage()


def test_log_leaks_refuses_what_is_not_a_logger():
    with pytest.raises(TypeError, match="logger must be a logging.Logger or a logger name, not int"):
        tracker.log_leaks(3)   # type: ignore[arg-type]


class Closeable:
    def close(self):
        pass


def test_one_source_line_is_one_site_however_the_interpreter_rewrites_it():
    # at paranoid, 20 files opened on one line: the interpreter specializes the call after
    # a few runs (the instruction the call runs from moves), and the site stayed keyed on
    # it: two sites with the same `where`, two warnings
    out = run_script("""
        import gc, os
        from memleash import tracker
        tracker.set_level("paranoid")
        tracker.enable(files=True, sockets=False)
        leaks = []
        tracker.on_leak(leaks.append)
        def loop():
            for _ in range(20): f = open(os.devnull)
        loop()
        gc.collect()
        mine = [s for s in tracker.sites() if s.frames and s.frames[0].function == "loop"]
        print(len(mine), mine[0].tracked, mine[0].leaked, len({leak.site for leak in leaks}))
    """, "-W", "always::ResourceWarning")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "20", "20", "1"]
    assert out.stderr.count("ResourceWarning: unclosed file") == 1, out.stderr


# ---- where developers meet the warnings (issue 20) ----

def test_a_recorded_warning_carries_the_allocation_site():
    # files, sockets and Popen: CPython makes the warning; the record has the site in its
    # message (pytest's capture and catch_warnings(record=True) never format it with
    # memleash's help); memleash's own warning for the user's handles has it too
    def here():
        return f"{__file__}:{sys._getframe(1).f_lineno} in {sys._getframe(1).f_code.co_name}()"

    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        f, lines = memleash.track(open(os.devnull)), [here()]
        del f
        a, b = socket.socketpair()
        lines.append(here()), memleash.track(a)
        b.close()
        del a, b
        sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
        p, _ = memleash.track(subprocess.Popen(sleeper)), lines.append(here())
        pid = p.pid
        del p
        h, _ = Conn("db"), lines.append(here())
        del h
    os.kill(pid, 9)
    messages = [str(w.message) for w in log if issubclass(w.category, ResourceWarning)]
    log.clear()
    gc.collect()
    assert len(messages) == 4, messages
    assert messages[0].startswith("unclosed file <_io.TextIOWrapper name='/dev/null'")
    assert messages[1].startswith("unclosed <socket.socket")
    assert messages[2].startswith(f"subprocess {pid} is still running")
    assert messages[3].startswith("unclosed <")
    for message, where in zip(messages, lines):
        assert message.endswith(" allocated at " + where), (message, where)


def test_the_allocation_site_is_in_pytests_warnings_summary(tmp_path):
    (tmp_path / "test_dropping.py").write_text(textwrap.dedent("""
        import os, socket
        from memleash import tracker
        tracker.set_level("paranoid")
        tracker.enable()

        def test_drops_a_file():
            f = open(os.devnull)
            del f

        def test_drops_a_socket():
            s = socket.socket()
            del s
    """))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-W", "always::ResourceWarning", "test_dropping.py"],
                         cwd=tmp_path, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(memleash.__file__))))
    assert "2 passed" in out.stdout, out.stdout + out.stderr
    summary = out.stdout[out.stdout.index("warnings summary"):]
    assert "allocated at " + str(tmp_path / "test_dropping.py") + ":8 in test_drops_a_file()" in summary
    assert "allocated at " + str(tmp_path / "test_dropping.py") + ":12 in test_drops_a_socket()" in summary


def test_a_poll_that_finds_the_child_running_closes_nothing(leaks):
    line = sys._getframe().f_lineno + 1
    p = memleash.track(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
    try:
        assert p.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            p.wait(timeout=0.01)
        [site] = [r for r in memleash.open_resources() if r.frames[0].lineno == line]
        assert site.open == 1
    finally:
        p.kill()
        p.wait()
    assert p.poll() is not None
    assert [r.open for r in tracker.sites() if r.frames and r.frames[0].lineno == line] == [0]
    del p
    assert leaks == []


@pytest.mark.parametrize("mode,buffering", OPEN_MODES)
def test_a_file_that_owns_no_descriptor_is_no_leak_when_dropped(
        tmp_path, leaks, shown, level, mode, buffering):
    # open(fd, closefd=False): CPython warns nothing, it closes nothing, nothing leaked
    def counts():
        mine = [s for s in tracker.sites() if s.frames and s.frames[0].function ==
                "test_a_file_that_owns_no_descriptor_is_no_leak_when_dropped"]
        return sum(s.tracked for s in mine), sum(s.leaked for s in mine)

    level("paranoid")
    before = counts()
    tracker.enable(files=True, sockets=False)
    (tmp_path / "fd").touch()
    fd = os.open(tmp_path / "fd", os.O_RDWR)
    try:
        f = open(fd, mode, buffering=buffering, closefd=False)
        del f
        g = open(fd, mode, buffering=buffering, closefd=False)
        g.cycle = g
        del g
        gc.collect()
        os.fstat(fd)   # still open: nobody closed it
    finally:
        os.close(fd)
    assert leaks == [] and resource_warnings(shown) == []
    after = counts()
    assert (after[0] - before[0], after[1] - before[1]) == (2, 0)


def test_resource_decorator_on_a_class_that_keeps_its_own_closed(leaks, shown):
    @memleash.resource
    class Pool:
        def __init__(self):
            self.closed = False

        def close(self):
            self.closed = True

    pool = Pool()
    assert pool.closed is False
    pool.close()
    assert pool.closed is True
    del pool
    Pool()   # dropped unclosed: a leak
    assert len(leaks) == 1 and "Pool object at" in leaks[0].description


def test_a_resource_whose_init_raised_is_no_leak(leaks, shown):
    class Broken(memleash.Resource):
        def __init__(self, fail):
            if fail:
                raise OSError("cannot connect")

    with pytest.raises(OSError, match="cannot connect"):
        Broken(True)
    gc.collect()
    assert leaks == []
    Broken(False)
    assert len(leaks) == 1


def test_slotted_classes_derive_from_resource(leaks, shown):
    with pytest.raises(TypeError, match="derive it from memleash.Resource"):
        @memleash.resource
        class Mixed:
            __slots__ = ("fd",)

    class Slotted(memleash.Resource):
        __slots__ = ("fd",)

        def __init__(self):
            self.fd = 3

        def close(self):
            self.fd = -1

    s = Slotted()
    s.close()
    assert s.closed and s.fd == -1
    del s
    Slotted()
    assert len(leaks) == 1


def test_untrack_a_resource(leaks, shown):
    c = Conn("db")
    assert memleash.untrack(c) is True and memleash.untrack(c) is False
    del c
    assert leaks == []


# ---- the limits docs/tracker.md states, each as it stands ----

def test_limit_a_bare_raw_files_flush_held_elsewhere_does_not_keep_it_alive(tmp_path, leaks):
    import weakref
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a recorded warning would hold the file
        f = memleash.track(open(tmp_path / "raw", "wb", buffering=0))
        flush, ref = f.flush, weakref.ref(f)
        del f
    assert ref() is None and len(leaks) == 1   # dropped unclosed, though its flush was held
    assert flush() is None                     # a no-op, no error


def test_limit_a_bytesio_closed_as_a_temporary_is_reported(leaks, shown):
    import io
    memleash.track(io.BytesIO()).close()   # the temporary dies before its observer runs
    assert len(leaks) == 1
    b = memleash.track(io.BytesIO())
    b.close()                               # held: closed, and its observer is gone
    assert "close" not in vars(b)
    del b
    assert len(leaks) == 1


class ClosesInDel(Handle):
    def __del__(self):
        self.close()


def test_limit_a_class_closing_itself_in_del_counts_as_closed_unless_in_a_cycle(leaks, shown):
    h = memleash.track(ClosesInDel())
    del h                       # a refcount death: __del__ runs before the tracker looks
    assert leaks == []
    h = memleash.track(ClosesInDel())
    h.cycle = h
    del h
    gc.collect()                # a collection: the tracker's verdict comes first
    assert len(leaks) == 1


def test_limit_an_error_filter_raises_cpythons_own_warning_without_the_site():
    out = run_script("""
        import os, memleash
        memleash.tracker.on_leak(lambda leak: print("leak at", leak.where))
        def leak():
            memleash.track(open(os.devnull))
        leak()
        print("survived")
    """, "-W", "error::ResourceWarning")
    assert out.returncode == 0 and out.stdout.split() == ["leak", "at", "<string>:5", "in",
                                                          "leak()", "survived"]
    assert "ResourceWarning: unclosed file" in out.stderr and "allocated at" not in out.stderr


def test_cpythons_warnings_from_one_site_are_all_recorded(tmp_path):
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        for _ in range(3):
            memleash.track(open(os.devnull))
    messages = [str(w.message) for w in log if issubclass(w.category, ResourceWarning)]
    log.clear()
    assert len(messages) == 3 and len({m.split(" allocated at ")[1] for m in messages}) == 1


def test_a_file_leaked_in_a_cycle_is_recorded_with_its_allocation_site(tmp_path, leaks):
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        f = open_leaky(tmp_path / "cycle.txt")
        f.cycle = f
        del f
        gc.collect()
    messages = [str(w.message) for w in log if issubclass(w.category, ResourceWarning)]
    log.clear()
    gc.collect()
    assert len(messages) == 1 and len(leaks) == 1
    assert messages[0].endswith(" allocated at " + leaks[0].where)
