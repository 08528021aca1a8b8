"""memleash.pytest_plugin, run as a user runs it: an inner pytest in a subprocess
(pytester's runpytest_subprocess), so this run's own tracker never sees the inner one's."""

import importlib
import json
import os
import re
import tomllib

import pytest

import memleash

PKG = os.path.dirname(os.path.dirname(os.path.abspath(memleash.__file__)))

LEAKY = '''
import socket, subprocess, sys
import pytest
import memleash

def read_config(path):
    return open(path).read()

def test_reads_config(tmp_path):
    p = tmp_path / "app.cfg"
    p.write_text("x=1")
    assert read_config(p) == "x=1"

def test_clean(tmp_path):
    with open(tmp_path / "a", "w") as f:
        f.write("x")
    with socket.socket() as s:
        pass
    subprocess.run([sys.executable, "-c", "pass"], check=True)

def test_socket():
    s = socket.socket()
    s = None

def test_popen():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p = None

class Conn(memleash.Resource):
    pass

def test_resource():
    Conn()
'''


@pytest.fixture
def inner(pytester, monkeypatch):
    """Runs pytest in a subprocess with the plugin loaded as from a checkout."""
    monkeypatch.setenv("PYTHONPATH", PKG)
    monkeypatch.delenv("MEMLEASH_LEAK_LEVEL", raising=False)

    def run(*args):
        return pytester.runpytest_subprocess("-p", "memleash.pytest_plugin",
                                             "-p", "no:cacheprovider", *args)
    return run


def summary(result):
    """The lines of the plugin's terminal summary section."""
    text = result.stdout.str()
    head = text.find("memleash: resources leaked or left open")
    assert head >= 0, text
    return text[head:].split("\n", 1)[1]


def test_done_when_a_leaked_open_is_named_with_its_test_and_line(pytester, inner):
    pytester.makepyfile(test_user=LEAKY)
    result = inner("--memleash")
    result.assert_outcomes(passed=5)   # reported, not failed
    lines = summary(result)
    assert "test_user.py::test_reads_config: 1 leaked" in lines
    assert re.search(r"leaked: <_io.TextIOWrapper name='[^']*app.cfg'> allocated at "
                     r"test_user.py:6 in read_config\(\)", lines), lines
    assert "test_user.py::test_socket: 1 " in lines and "test_user.py:21 in test_socket()" in lines
    assert "test_user.py::test_popen: 1 left open" in lines
    assert "<Popen: returncode: None" in lines and "test_user.py:25 in test_popen()" in lines
    assert "test_user.py::test_resource: 1 leaked" in lines
    assert "<test_user.Conn object at" in lines and "test_user.py:32 in test_resource()" in lines
    assert "test_clean" not in lines


def test_fail_turns_leaks_into_failures(pytester, inner):
    pytester.makepyfile(test_user=LEAKY)
    result = inner("--memleash-fail")
    # leaks seen during the call fail it; what is left open errors its teardown
    # (test_popen passes, then errors at teardown: the child it started was never waited for)
    result.assert_outcomes(passed=2, failed=3, errors=1)
    result.stdout.fnmatch_lines([
        "FAILED test_user.py::test_reads_config - memleash: test_user.py::test_reads_c*",
        "FAILED test_user.py::test_socket - memleash: test_user.py::test_socket: 1 leaked",
        "FAILED test_user.py::test_resource - memleash:*",
        "ERROR test_user.py::test_popen - memleash: test_user.py::test_popen: 1 left open",
    ])
    assert "allocated at test_user.py:6 in read_config()" in result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_the_warnings_summary_carries_the_site(pytester, inner):
    pytester.makepyfile(test_user=LEAKY)
    result = inner("--memleash", "-W", "default::ResourceWarning", "-k", "reads_config")
    result.stdout.fnmatch_lines([
        "*ResourceWarning: unclosed file <_io.TextIOWrapper name=*app.cfg* allocated at "
        "*/test_user.py:6 in read_config()"])


def test_off_unless_asked(pytester, inner):
    pytester.makepyfile(test_user=LEAKY + '''
def test_nothing_is_enabled():
    from memleash import tracker
    assert tracker.get_level() == "simple"
    assert not any(tracker.enabled().values())
''')
    result = inner("-W", "ignore::ResourceWarning")
    result.assert_outcomes(passed=6)
    assert "memleash: resources" not in result.stdout.str()


def test_importing_the_plugin_enables_nothing():
    before = memleash.tracker.get_level(), memleash.tracker.enabled()
    importlib.import_module("memleash.pytest_plugin")

    assert (memleash.tracker.get_level(), memleash.tracker.enabled()) == before


def test_the_marker_alone_turns_it_on_for_its_test(pytester, inner):
    pytester.makepyfile(test_user='''
import pytest

@pytest.mark.memleash(leaks="fail")
def test_marked(tmp_path):
    open(tmp_path / "x", "w")

def test_unmarked(tmp_path):
    open(tmp_path / "y", "w")
    from memleash import tracker
    assert tracker.get_level() == "simple"   # the tracker as it was, after the marked test
''')
    result = inner("-W", "ignore::ResourceWarning")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_user.py::test_marked - memleash:*1 leaked*"])


def test_ignore_exempts_one_test(pytester, inner):
    pytester.makepyfile(test_user='''
import pytest

import memleash

class Conn(memleash.Resource):
    pass

@pytest.mark.memleash(leaks="ignore")   # the test of a leak: exempt
def test_exempt(tmp_path):
    from memleash import tracker
    assert tracker.get_level() == "simple"   # the tracker as before the plugin
    open(tmp_path / "x", "w")
    Conn()   # explicitly tracked whatever the level: counted, not reported

def test_leaks(tmp_path):
    open(tmp_path / "y", "w")
''')
    result = inner("--memleash-fail", "-W", "ignore::ResourceWarning")
    result.assert_outcomes(passed=1, failed=1)
    assert "(1 more from tests marked memleash(leaks='ignore'))" in result.stdout.str()
    assert "test_exempt:" not in summary(result)


def test_a_leak_is_charged_to_the_test_that_opened_it(pytester, inner):
    pytester.makepyfile(test_user='''
import gc

class Node:
    def __init__(self, f):
        self.f = f
        self.me = self   # a cycle: collected later, in another test

def test_opens(tmp_path):
    Node(open(tmp_path / "x", "w"))

def test_collects():
    gc.collect()
''')
    result = inner("--memleash", "-W", "ignore::ResourceWarning")
    lines = summary(result)
    # found unreachable at the end of test_opens (a collection runs when something is open)
    assert "test_user.py::test_opens: 1 leaked" in lines
    assert "test_collects" not in lines


def test_a_wider_fixture_is_judged_at_its_scope_end(pytester, inner):
    pytester.makepyfile(test_user='''
import pytest

@pytest.fixture(scope="module")
def log(tmp_path_factory):
    f = open(tmp_path_factory.mktemp("m") / "log", "w")
    yield f   # never closed

@pytest.fixture(scope="module")
def closed_log(tmp_path_factory):
    with open(tmp_path_factory.mktemp("n") / "log", "w") as f:
        yield f

def test_first(log, closed_log):
    log.write("a")

def test_second(log, closed_log):
    log.write("b")
''')
    result = inner("--memleash-fail", "-W", "ignore::ResourceWarning")
    # not the first test's fault: the fixture's, at the end of the module (the last test's
    # teardown, which ends the scope)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([
        "ERROR test_user.py::test_second - memleash: test_user.py: fixture 'log'*"])
    lines = summary(result)
    assert "allocated at test_user.py:5 in log()" in lines
    assert "closed_log" not in lines and "test_first" not in lines


GROWTH = '''
import pytest
import memleash

bus = memleash.EventEmitter(name="bus")
kept = []

@pytest.mark.memleash(max_bytes="1 KiB")
def test_big_cache():
    cache = memleash.LRUCache(1000, name="big")
    for i in range(100):
        cache[i] = "x" * 100
    kept.append(cache)

@pytest.mark.memleash(max_bytes="1 MiB")
def test_small_cache():
    cache = memleash.LRUCache(10, name="small")
    cache[1] = "x"

@pytest.mark.memleash(listeners="no-growth")
def test_listener_left_behind():
    bus.on("tick", print)   # a plain function: held strongly, never removed

@pytest.fixture
def subscribed():
    bus.on("tock", print)
    yield
    bus.remove_listener("tock", print)

@pytest.mark.memleash(listeners="no-growth")
def test_listener_removed_by_its_fixture(subscribed):
    bus.emit("tock", 1)

def test_report_diff(memleash_report):
    cache = memleash.LRUCache(10, name="mine")
    cache["k"] = "v" * 1000
    diff = memleash_report.diff()
    assert diff.caches == 1 and diff.accounted_bytes >= 1000
    assert str(diff).startswith("LRUCache mine: objects +1, currbytes +")
    assert memleash_report.diff().listeners == 0
'''


def test_growth_markers_and_the_report_fixture(pytester, inner):
    pytester.makepyfile(test_user=GROWTH)
    result = inner("-s")
    result.assert_outcomes(passed=4, failed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*memleash: test_user.py::test_big_cache:",
        "caches created during the test hold * KiB (max_bytes 1.0 KiB):",
        "  LRUCache 'big' created at test_user.py:9 in test_big_cache(): * KiB",
    ])
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_listener_left_behind*",
        "memleash: test_user.py::test_listener_left_behind:",
        "emitters with more listeners than before the test (listeners='no-growth'):",
        "  EventEmitter 'bus' created at test_user.py:4 in <module>(): 0 -> 1 listeners",
    ])


def test_a_bad_marker_is_a_usage_error(pytester, inner):
    pytester.makepyfile(test_user='''
import pytest

@pytest.mark.memleash(max_bytes="lots")
def test_x():
    pass
''')
    result = inner()
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*max_bytes='lots'*a number of bytes*"])


def test_json_has_the_findings_and_the_report(pytester, inner):
    pytester.makepyfile(test_user=LEAKY)
    result = inner("--memleash-json=out.json", "-k", "reads_config or clean")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "*memleash: report at the end of the session*",
        "0 caches (0 B accounted), 0 emitters (0 listeners), 0 budgets; resources: *",
        "  resources opened at test_user.py:6 in read_config(): 0 open, 1 leaked of 1 tracked",
    ])
    data = json.loads((pytester.path / "out.json").read_text())
    [main] = data["processes"].values()
    assert main["process"] == "main"
    assert [o["owner"] for o in main["owners"]] == ["test_user.py::test_reads_config"]
    [finding] = main["owners"][0]["findings"]
    assert finding["status"] == "leaked" and finding["where"] == "test_user.py:6 in read_config()"
    sites = {r["name"]: r for r in main["report"]["resources"]}
    assert sites["test_user.py:6 in read_config()"]["leaked"] == 1


def test_xdist_workers_findings_reach_the_summary(pytester, inner):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_user=LEAKY)
    result = inner("-n", "2", "--memleash-fail", "--memleash-json=out.json")
    result.assert_outcomes(passed=2, failed=3, errors=1)
    text = summary(result)
    for test in ("test_reads_config", "test_socket", "test_popen", "test_resource"):
        assert re.search(rf"^\[gw[01]\] test_user.py::{test}: 1 ", text, re.M), text
    assert "allocated at test_user.py:6 in read_config()" in text
    data = json.loads((pytester.path / "out.json").read_text())
    assert sorted(data["processes"]) == ["gw0", "gw1"]
    owners = [o["owner"] for p in data["processes"].values() for o in p["owners"]]
    assert len(owners) == 4


def test_the_entry_point_loads_it_when_installed(pytester, monkeypatch):
    # memleash as installed: a dist-info on the path whose pytest11 entry point is
    # pyproject.toml's
    with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "pyproject.toml"), "rb") as f:
        [(name, target)] = tomllib.load(f)["project"]["entry-points"]["pytest11"].items()
    assert (name, target) == ("memleash", "memleash.pytest_plugin")
    site = pytester.mkdir("site")
    info = site / "memleash_installed-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: memleash-installed\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[pytest11]\n{name} = {target}\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([PKG, str(site)]))
    pytester.makepyfile(test_user=LEAKY)
    plain = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--memleash", "-k", "reads_config")
    assert "test_user.py::test_reads_config: 1 leaked" in summary(plain)
    # and -p memleash.pytest_plugin as well (a checkout's command line): one plugin
    both = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "memleash.pytest_plugin",
                                         "--memleash-fail", "-k", "reads_config")
    both.assert_outcomes(failed=1)
    off = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore::ResourceWarning")
    off.assert_outcomes(passed=5)
    assert "memleash:" not in off.stdout.str()
