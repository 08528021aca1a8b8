"""``memleash.Budget``: one byte budget for several caches, and a budget that follows the
process's real memory limit.

The budget itself — the sum of its members' accounted bytes, the limit, the eviction across
members by one access clock — is C (``memleash._core.Budget``, csrc/py/budget.c and
csrc/core/sharedbudget.c). This module adds what reads the outside world:

- ``Budget.follow_memory()``: a ``MemoryFollower`` that reads the process's memory (its
  cgroup's, v1 or v2, or its RSS against an explicit limit), and lowers the budget's limit
  in force when the working set passes ``limit × (1 − headroom)`` — evicting — or raises it
  back, with hysteresis, when memory is freed elsewhere. It checks from a daemon thread at
  an interval and from stores, when the budget has grown by a step since the last reading;
- the cgroup readers (``CgroupV1``, ``CgroupV2``, ``ProcessRSS``) and ``find_cgroup()``.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Optional, Union

from . import _core

__all__ = ["Budget", "CgroupV1", "CgroupV2", "MemoryFollower", "MemoryReading", "ProcessRSS",
           "find_cgroup"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: cgroup v1's "no limit": 2**63 - 1 rounded down to a page (9223372036854771712 with 4 KiB
#: pages); anything from there up means none
_V1_UNLIMITED = ((1 << 63) - 1) // _PAGE * _PAGE


class Budget(_core.Budget):
    """One byte budget shared by several caches: ``Budget(max_bytes, *, name=None)``.

    Every cache constructor and memoizing decorator takes ``budget=``. At every moment
    ``budget.currbytes`` is the sum of its members' ``currbytes`` and at most
    ``budget.maxbytes``: a store that would pass the budget's limit in force evicts across
    its members first — expired entries of timed members, then, of the victims the members
    name by their own policies, the one accessed longest ago (for LRU members, an exact
    global LRU order). An item larger than the limit alone raises ``ValueError`` and stores
    nothing. A member keeps its budget alive, and a member that dies returns its bytes.

    ``effective_maxbytes`` is the limit in force: ``maxbytes``, or less while
    ``follow_memory()`` has lowered it under memory pressure. ``evictions`` counts the
    items evicted to make room for stores, ``pressure_evictions`` those evicted because the
    limit in force was lowered. ``name`` labels it in ``memleash.report()``.
    """

    def __init__(self, max_bytes: int, *, name: Optional[str] = None) -> None:
        super().__init__(max_bytes, name=name)

    def __reduce__(self) -> Any:
        # a new budget of the same max_bytes and name; members, memory following and
        # counters are not carried (copy.copy of a member shares the budget itself)
        return (_rebuild, (type(self), self.maxbytes, self.name))

    @property
    def follower(self) -> Optional["MemoryFollower"]:
        """The ``MemoryFollower`` started by ``follow_memory()``, or None."""
        return self.__dict__.get("_ml_follower")

    def follow_memory(self, limit: Optional[int] = None, *, headroom: float = 0.10,
                      floor: Optional[int] = None, interval: float = 1.0,
                      hysteresis: float = 0.05,
                      cgroup: Union[str, os.PathLike[str], None] = None) -> "MemoryFollower":
        """Keep the process's working set under ``limit × (1 − headroom)`` by lowering this
        budget's limit in force (evicting), and raise it back up to ``max_bytes`` when
        memory is freed elsewhere.

        - ``limit``: bytes; by default the memory limit of the process's cgroup (v2
          ``memory.max``, v1 ``memory.limit_in_bytes``), read again at every check. With
          an explicit ``limit`` and no ``cgroup``, the usage is the process's RSS.
        - ``cgroup``: a cgroup directory to read instead of the process's own.
        - ``headroom``: the fraction of the limit kept free.
        - ``floor``: the limit in force never goes below it (by default a tenth of
          ``limit × (1 − headroom)``, at most ``max_bytes``); when evicting does not lower
          the usage (freed memory staying mapped), the limit stops there and
          ``follower.floor_hits`` counts the checks that found it so.
        - ``hysteresis``: the limit is raised only once the working set is this fraction
          of the limit below the target, and only that far, so it does not oscillate.
        - ``interval``: seconds between the background thread's checks. Stores check too,
          when the budget has grown by a quarter of the headroom since the last check.

        Replaces any earlier follower. Safe across ``os.fork()``: the child starts its own
        thread. Returns the follower (``stop()`` ends it; so does ``stop_following()``).
        """
        self.stop_following()
        if cgroup is not None:
            source: MemorySource = open_cgroup(os.fspath(cgroup))
        elif limit is not None:
            source = ProcessRSS()
        else:
            found = find_cgroup()
            source = found if found is not None else NoLimit()
        follower = MemoryFollower(self, source, limit=limit, headroom=headroom, floor=floor,
                                  interval=interval, hysteresis=hysteresis)
        self.__dict__["_ml_follower"] = follower
        follower.start()
        return follower

    def stop_following(self) -> None:
        """Stop following memory and give the budget its whole ``max_bytes`` back."""
        follower = self.__dict__.pop("_ml_follower", None)
        if follower is not None:
            follower.stop()

    def _ml_stats(self) -> dict[str, Any]:
        stats = super()._ml_stats()
        follower = self.follower
        reading = follower.last if follower is not None else None
        stats.update(
            following=follower is not None,
            memory_limit=reading.limit if reading is not None else None,
            working_set=reading.working_set if reading is not None else None,
            floor_hits=follower.floor_hits if follower is not None else 0,
        )
        return stats


def _rebuild(cls: type, max_bytes: int, name: Optional[str]) -> Budget:
    return cls(max_bytes, name=name)   # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------
# Reading memory

@dataclass(frozen=True)
class MemoryReading:
    """One reading of the process's memory."""

    limit: Optional[int]    #: the memory limit (None: none)
    usage: int              #: bytes charged: the cgroup's usage, or the RSS
    inactive_file: int      #: page cache the kernel reclaims first (not in the working set)

    @property
    def working_set(self) -> int:
        """usage − inactive file cache: what the kernel cannot simply drop (cAdvisor's rule)."""
        return max(0, self.usage - self.inactive_file)


class MemorySource:
    """Where a follower reads memory from: ``read()`` gives a ``MemoryReading``."""

    def read(self) -> MemoryReading:
        raise NotImplementedError


def _read_int(path: str) -> Optional[int]:
    """The number a cgroup file holds; None for "max" (v2's no limit)."""
    with open(path) as f:
        text = f.read().strip()
    return None if text == "max" else int(text)


def _stat(path: str, *names: str) -> int:
    """The first of names found in a memory.stat file (0 if none is)."""
    values = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(" ")
            values[key] = value
    for name in names:
        if name in values:
            return int(values[name])
    return 0


class CgroupV2(MemorySource):
    """A cgroup v2 directory: ``memory.max``, ``memory.current``, ``memory.stat``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> MemoryReading:
        limit = _read_int(os.path.join(self.path, "memory.max"))
        usage = _read_int(os.path.join(self.path, "memory.current")) or 0
        inactive = _stat(os.path.join(self.path, "memory.stat"), "inactive_file")
        return MemoryReading(limit, usage, inactive)

    def __repr__(self) -> str:
        return f"CgroupV2({self.path!r})"


class CgroupV1(MemorySource):
    """A cgroup v1 memory controller directory: ``memory.limit_in_bytes``,
    ``memory.usage_in_bytes``, ``memory.stat`` (a limit from the page-rounded 2**63 up is
    none)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> MemoryReading:
        limit = _read_int(os.path.join(self.path, "memory.limit_in_bytes"))
        if limit is not None and limit >= _V1_UNLIMITED:
            limit = None
        usage = _read_int(os.path.join(self.path, "memory.usage_in_bytes")) or 0
        inactive = _stat(os.path.join(self.path, "memory.stat"), "total_inactive_file",
                         "inactive_file")
        return MemoryReading(limit, usage, inactive)

    def __repr__(self) -> str:
        return f"CgroupV1({self.path!r})"


class ProcessRSS(MemorySource):
    """The process's resident set size (``/proc/self/statm``), with no limit of its own:
    for ``follow_memory(limit=...)``."""

    def read(self) -> MemoryReading:
        with open("/proc/self/statm") as f:
            resident = int(f.read().split()[1])
        return MemoryReading(None, resident * _PAGE, 0)

    def __repr__(self) -> str:
        return "ProcessRSS()"


class NoLimit(MemorySource):
    """No cgroup memory controller to read: nothing to follow (the budget keeps its
    max_bytes)."""

    def read(self) -> MemoryReading:
        return MemoryReading(None, 0, 0)

    def __repr__(self) -> str:
        return "NoLimit()"


def open_cgroup(path: str) -> MemorySource:
    """The reader for a cgroup directory, by the files it holds (v2, else v1)."""
    if os.path.exists(os.path.join(path, "memory.current")):
        return CgroupV2(path)
    if os.path.exists(os.path.join(path, "memory.usage_in_bytes")):
        return CgroupV1(path)
    raise ValueError(f"{path} is no cgroup directory with a memory controller "
                     "(neither memory.current nor memory.usage_in_bytes is there)")


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fstype, super options) of each line of /proc/self/mountinfo."""
    out = []
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            if "-" not in fields:
                continue
            sep = fields.index("-")
            if len(fields) < sep + 4 or sep < 5:
                continue
            out.append((fields[3], fields[4], fields[sep + 1], set(fields[sep + 3].split(","))))
    return out


def find_cgroup(proc_cgroup: str = "/proc/self/cgroup",
                mountinfo: str = "/proc/self/mountinfo") -> Optional[MemorySource]:
    """The reader of the process's own cgroup: the hierarchy that has the memory
    controller (v1's ``memory`` line, else the v2 tree if its controllers include memory,
    as on hybrid machines where v2 lacks it), located through ``/proc/self/mountinfo``.
    None when no hierarchy has the memory controller."""
    try:
        with open(proc_cgroup) as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
        mounts = _mounts(mountinfo)
    except OSError:
        return None
    v1 = next((p for _, ctl, p in (ln for ln in lines if len(ln) == 3)
               if "memory" in ctl.split(",")), None)
    v2 = next((p for hid, ctl, p in (ln for ln in lines if len(ln) == 3)
               if hid == "0" and ctl == ""), None)
    for path, fstype, reader in ((v1, "cgroup", CgroupV1), (v2, "cgroup2", CgroupV2)):
        if path is None:
            continue
        for root, point, fs, opts in mounts:
            if fs != fstype or (fstype == "cgroup" and "memory" not in opts):
                continue
            if root != "/" and not (path == root or path.startswith(root.rstrip("/") + "/")):
                continue
            rel = path[len(root):] if root != "/" else path
            directory = os.path.join(point, rel.lstrip("/"))
            probe = "memory.usage_in_bytes" if reader is CgroupV1 else "memory.current"
            if os.path.exists(os.path.join(directory, probe)):
                return reader(directory)
    return None


# --------------------------------------------------------------------------------------
# Following it

_FOLLOWERS: "weakref.WeakSet[MemoryFollower]" = weakref.WeakSet()


class MemoryFollower:
    """Adjusts a budget's limit in force to the memory it reads (``Budget.follow_memory``).

    Each check reads the memory once (a few small files: tens of microseconds) and:

    - working set above ``target = limit × (1 − headroom)``: lowers the limit in force to
      ``max(floor, min(effective, currbytes) − (working set − target))``, evicting that
      many bytes at once; at the floor already, counts a floor hit instead;
    - working set below ``target − hysteresis × limit``: raises it by the difference, up
      to ``max_bytes`` (caches growing into it reach the low mark, not the target: no
      oscillation);
    - no limit (none set, or the cgroup has none): the budget's whole ``max_bytes``.

    The budget checks from a store once its sum has grown by a quarter of the headroom
    since the last check (a store's cost: one comparison); a daemon thread calls
    ``check()`` every ``interval`` seconds. ``check()`` does not wait for a check in
    progress (it returns None); a store's check does, then checks itself: stores that run
    beside the thread's check (the free-threaded build) cannot grow past the headroom
    while it runs.
    """

    def __init__(self, budget: Budget, source: MemorySource, *, limit: Optional[int],
                 headroom: float, floor: Optional[int], interval: float,
                 hysteresis: float) -> None:
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            raise ValueError("limit must be a positive int (bytes) or None")
        if not 0.0 <= headroom < 1.0:
            raise ValueError("headroom must be in [0, 1)")
        if not 0.0 <= hysteresis < 1.0:
            raise ValueError("hysteresis must be in [0, 1)")
        if floor is not None and (not isinstance(floor, int) or floor < 0):
            raise ValueError("floor must be a non-negative int (bytes) or None")
        if not interval > 0:
            raise ValueError("interval must be positive (seconds)")
        self._budget = weakref.ref(budget)
        self.source = source
        self.limit = limit
        self.headroom, self.hysteresis, self.floor, self.interval = (
            headroom, hysteresis, floor, interval)
        self.checks = 0          #: checks made
        self.lowered = 0         #: checks that lowered the limit in force
        self.raised = 0          #: checks that raised it
        self.floor_hits = 0      #: checks that found the working set over the target with the
        #: limit in force at the floor already (evicting did not lower the usage)
        self.last: Optional[MemoryReading] = None   #: the last reading
        self._running = False
        self._setup_threading()
        _FOLLOWERS.add(self)

    def _setup_threading(self) -> None:
        self._lock = threading.Lock()
        self._holder: Optional[int] = None   # the thread whose check holds _lock
        self._stopped = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        """Check now, then every ``interval`` seconds from a daemon thread, and from stores."""
        self._running = True
        self.check()
        self._start_thread()

    def _start_thread(self) -> None:
        ref = weakref.ref(self)
        stopped, interval = self._stopped, self.interval
        budget = self._budget()
        label = f"memleash-follow-memory({budget.name or hex(id(budget))})" if budget else ""
        self._thread = threading.Thread(target=_watch, args=(ref, stopped, interval),
                                        name=label, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop checking; the budget's limit in force goes back to its ``max_bytes``."""
        self._running = False
        self._stopped.set()
        budget = self._budget()
        if budget is not None:
            budget._ml_follow(None, None)
            budget._ml_set_limit(budget.maxbytes)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    @property
    def running(self) -> bool:
        """Whether it follows the memory (its thread alive)."""
        return self._running and self._thread is not None and self._thread.is_alive()

    def _after_fork_in_child(self) -> None:
        # the parent's thread did not survive the fork, and its lock may have been held
        self._setup_threading()
        if self._running and self._budget() is not None:
            self._start_thread()

    # -- the check --------------------------------------------------------------------

    def check(self) -> Optional[MemoryReading]:
        """Read the memory and adjust the limit in force; returns the reading (None if
        another check was running, or the budget is gone)."""
        if not self._lock.acquire(blocking=False):
            return None
        return self._check_locked()

    def _check_locked(self) -> Optional[MemoryReading]:
        self._holder = threading.get_ident()
        try:
            budget = self._budget()
            if budget is None or not self._running:
                return None
            return self._adjust(budget)
        finally:
            self._holder = None
            self._lock.release()

    def _on_store(self) -> None:
        # A check in progress (the thread's) read the memory before what the stores added
        # since: wait for it, then read again. Without the GIL the stores run beside it, and
        # a check that the kernel preempts or that evicts for a while let them fill the
        # headroom unchecked (make test-ft: a cgroup's 20 MiB in under 30 ms). A store made
        # by a check of this thread's own (a __del__ its evictions ran) does not wait.
        if self._holder == threading.get_ident():
            return
        self._lock.acquire()
        self._check_locked()

    def _adjust(self, budget: Budget) -> MemoryReading:
        reading = self.source.read()
        limit = self.limit if self.limit is not None else reading.limit
        reading = MemoryReading(limit, reading.usage, reading.inactive_file)
        self.last = reading
        self.checks += 1
        maxbytes = budget.maxbytes
        if limit is None:
            if budget.effective_maxbytes < maxbytes:
                budget._ml_set_limit(maxbytes)
            budget._ml_follow(None, None)
            return reading
        target = int(limit * (1.0 - self.headroom))
        low = target - int(limit * self.hysteresis)
        floor = self.floor if self.floor is not None else min(maxbytes, target // 10)
        effective, current = budget.effective_maxbytes, budget.currbytes
        ws = reading.working_set
        if ws > target:
            wanted = max(floor, min(effective, current) - (ws - target))
            if wanted < effective:
                budget._ml_set_limit(wanted)
                self.lowered += 1
            else:
                self.floor_hits += 1
        elif ws < low and effective < maxbytes:
            budget._ml_set_limit(min(maxbytes, effective + (low - ws)))
            self.raised += 1
        step = max(_PAGE, int(limit * self.headroom) // 4)
        budget._ml_follow(self._on_store, budget.currbytes + step)
        return reading

    def __repr__(self) -> str:
        return (f"<MemoryFollower {self.source!r} limit={self.limit} headroom={self.headroom} "
                f"checks={self.checks} floor_hits={self.floor_hits}>")


def _watch(ref: "weakref.ref[MemoryFollower]", stopped: threading.Event, interval: float) -> None:
    """The follower's thread: a check every interval, until stopped or the budget is gone."""
    while not stopped.wait(interval):
        follower = ref()
        if follower is None or follower._budget() is None:
            return
        try:
            follower.check()
        except Exception:   # a reading that failed (a file gone): try again next time
            import sys

            sys.unraisablehook(_Unraisable(sys.exc_info(), follower))   # type: ignore[arg-type]
        del follower


class _Unraisable:
    """What sys.unraisablehook is given for a check that failed in the thread."""

    def __init__(self, info: Any, obj: object) -> None:
        self.exc_type, self.exc_value, self.exc_traceback = info
        self.err_msg = "memleash: a memory check of a budget's follower failed"
        self.object = obj


def _restart_followers_in_child() -> None:
    for follower in list(_FOLLOWERS):
        follower._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_followers_in_child)
