"""``memleash.pytest_plugin``: resources a test leaked, with the test and the line that opened them.

Off unless asked: ``pytest --memleash`` for the whole run (``-p memleash.pytest_plugin``
from a checkout; the ``pytest11`` entry point loads it when memleash is installed), or
``@pytest.mark.memleash(...)`` for one test. Importing this module changes nothing.

While on, the tracker runs at the ``paranoid`` level with files, sockets and subprocesses
tracked (``tracker.enable()``), as well as every ``memleash.Resource``. Each tracked
object carries the ``time.monotonic_ns()`` of its opening (``Leak.tracked_at``); the
plugin keeps a timeline of who ran when — a test from the start of its setup to the end
of its teardown, a fixture of a wider scope while it is set up and torn down — and
charges each finding to the owner of the moment the object was *opened*:

- a **leak** (collected unclosed) reaches the plugin through ``tracker.on_leak``, whenever
  it happens (a later test's collection included);
- what an owner opened and is still **left open** when it ends (a test after its
  teardown, a wider fixture after its finalization) is read from the tracker's records; a
  collection runs first then (only then: nothing open, nothing collected), so that what
  is merely unreachable is reported as leaked.

An item's leaks seen by the end of its call fail the call (``--memleash-fail``, or the
marker's ``leaks="fail"``); what is found at its teardown fails the teardown. A fixture's
findings are reported in the teardown of the test that ended its scope. Findings arriving
after their owner was judged are shown in the summary as late (and fail the session
under ``--memleash-fail``).
"""

from __future__ import annotations

import bisect
import gc
import json
import re
import sys
import time
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any, Generator, Optional

import pytest

from . import _core, tracker
from .report import Report, _bytes, _relative, report

__all__ = ["ReportDiff", "ReportWatch"]

_FAIL, _IGNORE, _REPORT = "fail", "ignore", "report"
_SECTION = "memleash: resources leaked or left open"


@dataclass
class _Finding:
    """Tracked objects of one allocation site an owner leaked (or left open)."""

    status: str         # "leaked" or "left open"
    where: str          # file:line in function()
    example: str        # the first one's description
    count: int = 1
    late: bool = False  # reached the plugin after its owner was judged

    def line(self) -> str:
        times = f" {self.count} x" if self.count > 1 else ""
        late = " (seen after its owner ended)" if self.late else ""
        return f"{self.status}{times}{late}: {self.example} allocated at {self.where}"


@dataclass(eq=False)
class _Owner:
    """A test, or a fixture of a wider scope: what it opened is charged to it."""

    label: str                      # the test's node id, or "fixture 'name' (scope)"
    mode: str                       # _FAIL, _IGNORE or _REPORT
    start: int = 0                  # monotonic_ns when it began
    findings: dict[tuple[str, str, bool], _Finding] = field(default_factory=dict)
    seen: set[tuple[int, int]] = field(default_factory=set)   # (site, tracked_at) reported
    judged: bool = False
    told: int = 0                   # findings already put in a report

    def add(self, status: str, site: int, tracked_at: int, where: str, example: str) -> bool:
        """Count one finding; False if that object was reported already (left open
        at the end, then collected)."""
        key = (site, tracked_at)
        if key in self.seen:
            return False
        self.seen.add(key)
        slot = (status, where, self.judged)
        found = self.findings.get(slot)
        if found is None:
            self.findings[slot] = _Finding(status, where, example, late=self.judged)
        else:
            found.count += 1
        return True

    def total(self) -> int:
        return sum(f.count for f in self.findings.values())


class _Timeline:
    """Who ran when: owner switches by monotonic_ns, looked up by an object's opening."""

    def __init__(self) -> None:
        self._at: list[int] = []
        self._owner: list[Optional[_Owner]] = []
        self._stack: list[_Owner] = []

    def push(self, owner: _Owner) -> None:
        self._stack.append(owner)
        self._switch()

    def pop(self, owner: _Owner) -> None:
        if owner in self._stack:
            # the innermost one, and whatever was pushed after it and never popped
            del self._stack[len(self._stack) - 1 - self._stack[::-1].index(owner):]
        self._switch()

    def _switch(self) -> None:
        now = time.monotonic_ns()
        top = self._stack[-1] if self._stack else None
        if self._at and self._at[-1] == now:
            self._owner[-1] = top
        else:
            self._at.append(now)
            self._owner.append(top)

    def owner_at(self, ns: int) -> Optional[_Owner]:
        i = bisect.bisect_right(self._at, ns) - 1
        return self._owner[i] if i >= 0 else None


def _mode_of(marker: Any, default: str) -> str:
    leaks = marker.kwargs.get("leaks", default) if marker is not None else default
    if leaks not in (_FAIL, _IGNORE, _REPORT):
        raise pytest.UsageError(
            f"@pytest.mark.memleash(leaks={leaks!r}): leaks is 'fail', 'ignore' or 'report'")
    return str(leaks)


class _Leash:
    """The plugin's state for one pytest process (a worker's own under xdist)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.session_wide = bool(config.getoption("memleash") or config.getoption("memleash_fail")
                                 or config.getoption("memleash_json"))
        self.default_mode = _FAIL if config.getoption("memleash_fail") else _REPORT
        self.depth = int(config.getoption("memleash_depth"))
        self.timeline = _Timeline()
        self.owners: list[_Owner] = []          # those with findings, in order
        self.ignored = 0                        # findings of leaks="ignore" owners
        self.tracking = 0                       # items and sessions that turned it on
        self.saved: Optional[tuple[Any, ...]] = None
        self.items: dict[str, _Owner] = {}
        self.growth: dict[str, _Growth] = {}    # marked tests: what they may not grow
        self.fixtures: dict[int, _Owner] = {}   # id(fixturedef) -> owner, while it lives
        self.late_failures = 0
        # the session's outcome, as plain data: this process's, then each xdist worker's
        self.results: dict[str, dict[str, Any]] = {}
        # fixtures finalized since the last teardown report: (label, mode, findings)
        self.fixture_findings: list[tuple[str, str, list[_Finding]]] = []

    # ---- the tracker, on and off --------------------------------------------------

    def start(self) -> None:
        self.tracking += 1
        if self.tracking > 1:
            return
        self.saved = (tracker.get_level(), tracker._state["rate"], tracker._state["depth"],
                      tracker.enabled())
        tracker.on_leak(self.on_leak)
        self.apply()

    def apply(self) -> None:
        """The tracker as the plugin wants it (again, after a test reconfigured it)."""
        if tracker.get_level() != "paranoid" or tracker._state["depth"] != self.depth:
            tracker.set_level("paranoid", depth=self.depth)
        if not all(tracker.enabled().values()):
            tracker.enable()

    def suspend(self) -> None:
        """The tracker as it was before the plugin, for one exempt test (``apply()`` after
        it): a test of the tracker's own configuration sees its defaults."""
        if self.saved is None:
            return
        level, rate, depth, on = self.saved
        tracker.disable()
        tracker.set_level(level, sample_rate=rate, depth=depth)
        if any(on.values()):
            tracker.enable(**on)

    def stop(self) -> None:
        self.tracking -= 1
        if self.tracking or self.saved is None:
            return
        self.suspend()
        try:
            tracker.remove_leak_listener(self.on_leak)
        except ValueError:
            pass
        self.saved = None

    def result(self, process: str) -> dict[str, Any]:
        """This process's findings and its final ``memleash.report()``, as plain data."""
        return {
            "process": process,
            "owners": [{"owner": o.label, "findings": [asdict(f) for f in o.findings.values()]}
                       for o in self.owners],
            "ignored": self.ignored,
            "late_failures": self.late_failures,
            "report": report().to_dict(),
        }

    # ---- findings -----------------------------------------------------------------

    def on_leak(self, leak: tracker.Leak) -> None:
        owner = self.timeline.owner_at(leak.tracked_at)
        if owner is not None:
            self.charge(owner, "leaked", leak.site, leak.tracked_at, _relative(leak.where),
                        leak.description)

    def charge(self, owner: _Owner, status: str, site: int, tracked_at: int, where: str,
               example: str) -> None:
        if owner.mode == _IGNORE:
            if (site, tracked_at) not in owner.seen:
                owner.seen.add((site, tracked_at))
                self.ignored += 1
            return
        if not owner.add(status, site, tracked_at, where, example):
            return
        if owner.total() == 1:
            self.owners.append(owner)
        if owner.judged and owner.mode == _FAIL:
            self.late_failures += 1

    def judge(self, owner: _Owner) -> list[_Finding]:
        """End of an owner: what it left open, then every finding not reported yet."""
        if owner.mode != _IGNORE:
            if self.open_since(owner):
                gc.collect()   # the unreachable ones are leaks, reported as such
            for site, t0, desc, _ in tracker._open_records(owner.start):
                if self.timeline.owner_at(t0) is owner:
                    self.charge(owner, "left open", site, t0,
                                _relative(tracker._where(tracker._frames(site))), desc)
        owner.judged = True
        return self.untold(owner)

    def open_since(self, owner: _Owner) -> bool:
        return any(self.timeline.owner_at(t0) is owner
                   for _, t0, _, _ in tracker._open_records(owner.start))

    @staticmethod
    def untold(owner: _Owner) -> list[_Finding]:
        findings = list(owner.findings.values())
        new = findings[owner.told:]
        owner.told = len(findings)
        return new


def _growth_of(marker: Any) -> Optional[_Growth]:
    if marker is None:
        return None
    max_bytes = marker.kwargs.get("max_bytes")
    listeners = marker.kwargs.get("listeners")
    if listeners not in (None, "no-growth"):
        raise pytest.UsageError(
            f"@pytest.mark.memleash(listeners={listeners!r}): the only check is 'no-growth'")
    if max_bytes is None and listeners is None:
        return None
    return _Growth(None if max_bytes is None else _parse_bytes(max_bytes), listeners is not None)


def _describe(label: str, findings: list[_Finding]) -> str:
    leaked = sum(f.count for f in findings if f.status == "leaked")
    left = sum(f.count for f in findings if f.status != "leaked")
    counts = ", ".join(part for part in (f"{leaked} leaked" if leaked else "",
                                         f"{left} left open" if left else "") if part)
    return "\n".join([f"memleash: {label}: {counts}"] + ["  " + f.line() for f in findings])


def _fail(report: pytest.TestReport, text: str) -> None:
    if report.passed:
        report.outcome = "failed"
        report.longrepr = text
    else:
        report.sections.append(("memleash", text))


# ---- growth of what memleash owns: max_bytes=, listeners= ----------------------------

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def _parse_bytes(value: Any) -> int:
    """``10_000``, ``"512 KiB"``, ``"1.5 MB"`` -> bytes; UsageError for anything else."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*", str(value), re.I) \
        if isinstance(value, str) else None
    if match is None:
        raise pytest.UsageError(
            f"@pytest.mark.memleash(max_bytes={value!r}): a number of bytes, or a string "
            "such as '10 MiB' (B, KB, MB, GB, KiB, MiB, GiB)")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])


class _Growth:
    """What a marked test may not grow: the live caches and emitters at its start."""

    def __init__(self, max_bytes: Optional[int], listeners: bool) -> None:
        self.max_bytes = max_bytes
        self.listeners = listeners
        self.caches: set[int] = set()
        self.emitters: dict[int, int] = {}   # id -> listeners at the start
        self.refs: list[weakref.ref[Any]] = []   # keeps the ids above from being reused
        for obj in _core._live():
            if isinstance(obj, _core.Budget):
                continue
            self.refs.append(weakref.ref(obj))
            if isinstance(obj, _core.Cache):
                self.caches.add(id(obj))
            else:
                self.emitters[id(obj)] = obj._ml_stats()["listeners"]

    def check(self, when: str) -> list[str]:
        """What grew past the marker's limits, one line each; empty if nothing did:
        max_bytes at the end of the call (the caches it made, fixtures' included),
        listeners after the teardown (a fixture's teardown may remove some)."""
        new_caches, grown = [], []
        for obj in _core._live():
            if isinstance(obj, _core.Budget):
                continue
            is_cache = isinstance(obj, _core.Cache)
            if is_cache and (when != "call" or self.max_bytes is None or id(obj) in self.caches):
                continue
            if not is_cache and (when != "teardown" or not self.listeners):
                continue
            stats = obj._ml_stats()
            label = f"{type(obj).__name__}{_label(stats)}"
            if is_cache:
                new_caches.append((stats["currbytes"] or 0, label))
            elif stats["listeners"] > self.emitters.get(id(obj), 0):
                grown.append(f"{label}: {self.emitters.get(id(obj), 0)} -> "
                             f"{stats['listeners']} listeners")
        problems = []
        held = sum(n for n, _ in new_caches)
        if self.max_bytes is not None and held > self.max_bytes:
            problems.append(f"caches created during the test hold {_bytes(held)} "
                            f"(max_bytes {_bytes(self.max_bytes)}):")
            problems += [f"  {label}: {_bytes(n)}" for n, label in sorted(new_caches, reverse=True)]
        if grown:
            problems.append("emitters with more listeners than before the test "
                            "(listeners='no-growth'):")
            problems += ["  " + line for line in grown]
        return problems


def _label(stats: dict[str, Any]) -> str:
    site = stats.get("site")
    where = f" created at {_relative(f'{site[0]}:{site[1]} in {site[2]}()')}" if site else ""
    return (f" {stats['name']!r}" if stats.get("name") else "") + where


@dataclass(frozen=True)
class ReportDiff:
    """Two ``memleash.report()`` snapshots, and what changed between them."""

    before: Report
    after: Report

    @property
    def accounted_bytes(self) -> int:
        """Change of the caches' accounted bytes."""
        return self.after.accounted_bytes - self.before.accounted_bytes

    @property
    def caches(self) -> int:
        """Change of the number of live caches."""
        return len(self.after.caches) - len(self.before.caches)

    @property
    def emitters(self) -> int:
        return len(self.after.emitters) - len(self.before.emitters)

    @property
    def listeners(self) -> int:
        """Change of the live listeners, all emitters."""
        return (sum(e.listeners for e in self.after.emitters)
                - sum(e.listeners for e in self.before.emitters))

    @property
    def resources_open(self) -> int:
        """Change of the tracked resources open (all sites)."""
        return (sum(r.open for r in self.after.resources)
                - sum(r.open for r in self.before.resources))

    @property
    def resources_leaked(self) -> int:
        return (sum(r.leaked for r in self.after.resources)
                - sum(r.leaked for r in self.before.resources))

    def changes(self) -> list[str]:
        """One line per cache, emitter or resource site (by kind and name) that changed."""
        lines = []
        for field_name, attrs in (("caches", ("currbytes", "entries")),
                                  ("emitters", ("listeners",)),
                                  ("resources", ("open", "leaked"))):
            before = _sums(getattr(self.before, field_name), attrs)
            after = _sums(getattr(self.after, field_name), attrs)
            for key in sorted(before.keys() | after.keys()):
                old = before.get(key, (0,) * (len(attrs) + 1))
                new = after.get(key, (0,) * (len(attrs) + 1))
                if old == new:
                    continue
                parts = [f"{attr} {a:+d}" for attr, a in
                         zip(("objects",) + attrs, (n - o for o, n in zip(old, new))) if a]
                lines.append(f"{key[0]} {key[1]}: " + ", ".join(parts))
        return lines

    def __str__(self) -> str:
        return "\n".join(self.changes()) or "no change"


def _sums(rows: Any, attrs: tuple[str, ...]) -> dict[tuple[str, str], tuple[int, ...]]:
    out: dict[tuple[str, str], tuple[int, ...]] = {}
    for row in rows:
        key = (row.kind, row.name)
        old = out.get(key, (0,) * (len(attrs) + 1))
        out[key] = (old[0] + 1,) + tuple(o + (getattr(row, a) or 0) for o, a in zip(old[1:], attrs))
    return out


class ReportWatch:
    """The ``memleash_report`` fixture: ``before`` is ``memleash.report()`` at the start of
    the test, ``diff()`` compares a new one with it."""

    def __init__(self) -> None:
        self.before = report()

    def diff(self) -> ReportDiff:
        return ReportDiff(self.before, report())


@pytest.fixture
def memleash_report() -> ReportWatch:
    """A snapshot of ``memleash.report()`` taken when the fixture is set up; its
    ``diff()`` says what changed since (caches, bytes, listeners, resources)."""
    return ReportWatch()


# ---- hooks ---------------------------------------------------------------------------

def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Called as this module is registered. Loaded from a checkout's ``-p
    memleash.pytest_plugin`` while memleash is installed too, it is the module the
    ``pytest11`` entry point "memleash" names: that registration is skipped (pluggy
    refuses one plugin under two names)."""
    me = sys.modules[__name__]
    if pluginmanager.get_name(me) != _ENTRY_POINT and pluginmanager.get_plugin(_ENTRY_POINT) is None:
        pluginmanager.set_blocked(_ENTRY_POINT)


_ENTRY_POINT = "memleash"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("memleash", "resources leaked by tests (memleash.tracker)")
    group.addoption("--memleash", action="store_true", default=False,
                    help="track files, sockets, subprocesses and memleash.Resource handles "
                         "(tracker level paranoid) and report, per test, those collected "
                         "unclosed or left open, with where they were opened")
    group.addoption("--memleash-fail", action="store_true", default=False,
                    help="as --memleash, and a test that leaks fails (the marker's "
                         "leaks='ignore' exempts one)")
    group.addoption("--memleash-json", metavar="PATH", default=None,
                    help="as --memleash, and write the findings and the final "
                         "memleash.report() (each xdist worker's) to PATH as JSON")
    group.addoption("--memleash-depth", type=int, default=1, metavar="N",
                    help="frames kept per allocation site (default 1: the line that "
                         "opened it; up to 64)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "memleash(leaks='fail'|'ignore'|'report', max_bytes=None, listeners=None): track "
        "the resources this test opens (memleash.pytest_plugin); 'fail' fails it on a leak, "
        "'ignore' exempts it; max_bytes='10 MiB' fails it when the memleash caches it "
        "created hold more at its end; listeners='no-growth' fails it when an emitter "
        "has more listeners after it than before")
    config.stash[_KEY] = leash = _Leash(config)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(leash), "memleash-xdist")


_KEY = pytest.StashKey[_Leash]()


def _leash(config: pytest.Config) -> _Leash:
    return config.stash[_KEY]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    leash = _leash(session.config)
    if leash.session_wide:
        leash.start()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    leash = _leash(config)
    if leash.session_wide:
        gc.collect()   # what is unreachable now is reported now, to its owner
        # "main" for a run without xdist, the worker's id for a worker; the controller of
        # an xdist run tests nothing: its workers' results come with pytest_testnodedown
        workerinput = getattr(config, "workerinput", None)
        name = workerinput["workerid"] if workerinput else "main"
        if workerinput or not leash.results:
            leash.results[name] = leash.result(name)
        leash.stop()
        if workerinput:
            config.workeroutput["memleash"] = leash.results[name]   # type: ignore[attr-defined]
            return
    late = sum(r["late_failures"] for r in leash.results.values())
    if late and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    path = config.getoption("memleash_json")
    if path and leash.results:
        with open(path, "w", encoding="utf-8") as out:
            json.dump({"processes": leash.results}, out, indent=1)


class _XdistHooks:
    """pytest-xdist's controller: each worker's findings and report, as it finishes."""

    def __init__(self, leash: _Leash) -> None:
        self.leash = leash

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        result = getattr(node, "workeroutput", {}).get("memleash")
        if result is not None:
            self.leash.results[result["process"]] = result


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Optional[pytest.Item]) -> Generator[None, object, object]:
    leash = _leash(item.config)
    marker = item.get_closest_marker("memleash")
    mode = _mode_of(marker, leash.default_mode)
    if not leash.session_wide and (marker is None or (mode == _IGNORE and not marker.kwargs.keys()
                                                      - {"leaks"})):
        return (yield)   # off; a marker that only exempts does not turn it on
    owner = _Owner(item.nodeid, mode)
    leash.items[item.nodeid] = owner
    growth = _growth_of(marker)
    if growth is not None:
        leash.growth[item.nodeid] = growth
    leash.start()
    if mode == _IGNORE:
        leash.suspend()   # the test runs with the tracker as it was before the plugin
    owner.start = time.monotonic_ns()
    leash.timeline.push(owner)
    try:
        return (yield)
    finally:
        leash.timeline.pop(owner)
        del leash.items[item.nodeid]
        leash.growth.pop(item.nodeid, None)
        leash.stop()
        if leash.tracking:
            leash.apply()   # a test that reconfigured the tracker: the plugin's again


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    leash = _leash(item.config)
    owner = leash.items.get(item.nodeid)
    if owner is None or call.when == "setup":
        return report
    if call.when == "call":
        findings = leash.untold(owner)   # what was collected unclosed during it
        label = item.nodeid
    else:
        findings = leash.judge(owner)
        label = item.nodeid
        for fixture_label, mode, found in leash.fixture_findings:
            if found:
                text = _describe(fixture_label, found)
                if mode == _FAIL:
                    _fail(report, text)
                else:
                    report.sections.append(("memleash", text))
        leash.fixture_findings = []
    if findings:
        text = _describe(label, findings)
        if owner.mode == _FAIL:
            _fail(report, text)
        else:
            report.sections.append(("memleash", text))
    growth = leash.growth.get(item.nodeid)
    problems = growth.check(call.when) if growth is not None else []
    if problems:
        _fail(report, "\n".join([f"memleash: {item.nodeid}:"] + problems))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Generator[None, object, object]:
    leash = _leash(request.config)
    if fixturedef.scope == "function" or not leash.tracking:
        return (yield)
    scope_node = getattr(request, "node", None)
    where = getattr(scope_node, "nodeid", "") or "<session>"
    owner = _Owner(f"{where}: fixture {fixturedef.argname!r} ({fixturedef.scope} scope)",
                   leash.default_mode, start=time.monotonic_ns())
    leash.timeline.push(owner)
    try:
        result = yield
    finally:
        leash.timeline.pop(owner)
    # its teardown is charged to it too: this finalizer, added last, runs first
    leash.fixtures[id(fixturedef)] = owner
    fixturedef.addfinalizer(lambda: leash.timeline.push(owner))
    return result


def pytest_fixture_post_finalizer(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> None:
    leash = _leash(request.config)
    owner = leash.fixtures.pop(id(fixturedef), None)
    if owner is None:
        return
    leash.timeline.pop(owner)
    leash.fixture_findings.append((owner.label, owner.mode, leash.judge(owner)))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    leash = _leash(config)
    if not leash.results:
        return
    terminalreporter.ensure_newline()   # the progress line is ended, not a blank line added
    write = terminalreporter.write_line
    several = len(leash.results) > 1 or "main" not in leash.results
    owners = [(name, o) for name, r in sorted(leash.results.items()) for o in r["owners"]]
    ignored = sum(r["ignored"] for r in leash.results.values())
    if owners or ignored:
        terminalreporter.section(_SECTION)
        for name, o in owners:
            findings = [_Finding(**f) for f in o["findings"]]
            text = _describe(o["owner"], findings).removeprefix("memleash: ")
            write(f"[{name}] {text}" if several else text)
        if ignored:
            write(f"({ignored} more from tests marked memleash(leaks='ignore'))")
    terminalreporter.section("memleash: report at the end of the session")
    for name, r in sorted(leash.results.items()):
        for line in _report_lines(r["report"], name if several else None):
            write(line)


def _report_lines(rep: dict[str, Any], process: Optional[str], most: int = 5) -> list[str]:
    """A few lines of a ``Report.to_dict()``: totals, then the largest of each kind."""
    t = rep["totals"]
    head = f"[{process}] " if process else ""
    lines = [f"{head}{t['caches']} caches ({_bytes(t['accounted_bytes'])} accounted), "
             f"{t['emitters']} emitters ({t['listeners']} listeners), "
             f"{t['budgets']} budgets; resources: {t['resources_open']} open, "
             f"{t['resources_leaked']} leaked, at {len(rep['resources'])} sites"]
    rows = [("cache", c["kind"], c["name"], f"{c['entries']} entries, {_bytes(c['currbytes'])}")
            for c in rep["caches"]]
    rows += [("emitter", e["kind"], e["name"], f"{e['listeners']} listeners")
             for e in rep["emitters"] if e["listeners"]]
    rows += [("resources", "resources opened at", r["name"].split(", called from ")[0],
              f"{r['open']} open, {r['leaked']} leaked "
              f"of {r['tracked']} tracked") for r in rep["resources"]]
    for what in ("cache", "emitter", "resources"):
        mine = [row for row in rows if row[0] == what]
        lines += [f"  {kind} {name}: {figures}" for _, kind, name, figures in mine[:most]]
        if len(mine) > most:
            lines.append(f"  ... {len(mine) - most} more {what} rows (--memleash-json has all)")
    return lines
