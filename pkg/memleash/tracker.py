"""``memleash.tracker``: objects that must be closed, tracked from where they were opened.

A tracked object (``memleash.track(obj)``, a ``memleash.Resource``, or a file or socket
picked by ``tracker.enable()``) has a record made when it was tracked: its description
and its allocation site. When it is collected without having been closed, that is a leak:

- the leak reaches every ``on_leak`` listener and the per-site counts, whatever the
  warning filters say (``log_leaks()`` makes one that logs it, for services, where
  Python's default filters hide every ``ResourceWarning``);
- the user sees one ``ResourceWarning``: CPython's own for files, sockets, ``Popen`` and
  asyncio transports (its message gets ``allocated at file:line in function()``, shown or
  recorded), memleash's ``UnclosedResourceWarning`` for everything else. Warnings from one
  site are de-duplicated on display: the first is shown, the rest are counted.

How close() is seen: a class (Python's socket and Popen, your own) has its closing
methods wrapped once; a built-in file is watched from the stream under it, which io's
finalizer tells when it finds the file still open (see ``csrc/py/tracker.c``). Nothing of
a dying object is read.

Levels, as Netty's leak detector: ``disabled``, ``simple`` (the default: 1 in
``sample_rate`` automatically tracked objects, one frame), ``advanced`` (sampled,
``depth`` frames), ``paranoid`` (every object, ``depth`` frames). ``MEMLEASH_LEAK_LEVEL``
sets the level at import. Explicit ``track()`` and ``Resource`` are never sampled.
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import functools
import gc
import io
import logging
import os
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import tracemalloc
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

from . import _core

__all__ = [
    "Leak", "Resource", "SiteReport", "UnclosedResourceWarning", "disable", "enable",
    "get_level", "log_leaks", "on_leak", "open_resources", "remove_leak_listener", "resource",
    "seed", "set_level", "sites", "track", "untrack",
]

T = TypeVar("T")
LEVELS = ("disabled", "simple", "advanced", "paranoid")

# a kind is (closing methods — for a file, the attributes down to its raw stream —, probe
# attribute, probe mode, flags, describe with repr())
_Kind = tuple[Any, ...]
_PROBE_NONE, _PROBE_TRUE, _PROBE_NOT_NONE = 0, 1, 2
_CPYTHON_WARNS, _IO, _CLASS_HOOKED, _IO_INNER = 1, 2, 4, 8
_PROBE_DECIDES = 16   # a closing method that returned closed only if the probe says so
                      # (Popen.poll() returning None): Python's side alone reads it
_IMMUTABLETYPE = 1 << 8   # Py_TPFLAGS_IMMUTABLETYPE: static types, and built-in heap types
# built-in io stacks, watched from their innermost stream: the attributes that lead there
# (a type without one is passed through: a BufferedReader has no "buffer")
_IO_TYPES = (io.TextIOWrapper, io.BufferedReader, io.BufferedWriter, io.BufferedRandom,
             io.FileIO)
_FILE_KIND: _Kind = (("buffer", "raw"), "closed", _PROBE_TRUE, _CPYTHON_WARNS | _IO | _IO_INNER, True)


class UnclosedResourceWarning(ResourceWarning):
    """A tracked object that CPython does not warn about was collected unclosed."""


@dataclass(frozen=True)
class Frame:
    """One frame of an allocation site."""

    filename: str
    lineno: int
    function: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno} in {self.function}()"


@dataclass(frozen=True)
class Leak:
    """A tracked object collected without having been closed."""

    description: str            #: what it was, as captured when it was tracked
    name: Optional[str]         #: ``track(obj, name=...)``, or None
    frames: tuple[Frame, ...]   #: where it was allocated, innermost first
    age: float                  #: seconds from tracking to collection
    site: int                   #: the site's id (the same for every leak from there)
    #: ``time.monotonic_ns()`` when it was tracked: tells which test opened it (the pytest
    #: plugin), whenever it is collected
    tracked_at: int = 0

    @property
    def where(self) -> str:
        """``file:line in function()``, with the callers when more frames were kept."""
        return _where(self.frames)


@dataclass(frozen=True)
class SiteReport:
    """One allocation site: what is open from there now, and what leaked from there."""

    frames: tuple[Frame, ...]   #: innermost first
    open: int                   #: tracked objects from here still open and alive
    oldest_age: Optional[float]  #: seconds since the oldest of them was tracked
    leaked: int                 #: collected without being closed
    tracked: int                #: ever tracked from here
    warned: int                 #: leaks whose warning was shown (the rest de-duplicated)
    examples: tuple[str, ...]   #: a few descriptions of the open objects
    names: tuple[str, ...]      #: the names given to them, if any

    @property
    def where(self) -> str:
        return _where(self.frames)


def _where(frames: tuple[Frame, ...]) -> str:
    if not frames:
        return "<unknown site>"
    head = str(frames[0])
    return head if len(frames) == 1 else head + ", called from " + ", ".join(map(str, frames[1:]))


_site_frames: dict[int, tuple[Frame, ...]] = {}   # a site's frames never change


def _frames(site: int) -> tuple[Frame, ...]:
    frames = _site_frames.get(site)
    if frames is None:
        frames = _site_frames[site] = tuple(Frame(*f) for f in _core._tr_site_frames(site))
    return frames


# ------------------------------------------------------------------------------------
# Levels

_state: dict[str, Any] = {"level": 1, "rate": 128, "depth": 8, "shutdown": False}


def set_level(level: str, *, sample_rate: Optional[int] = None, depth: Optional[int] = None) -> None:
    """Set the leak detection level (and optionally the sampling rate and frame depth)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    rate = _state["rate"] if sample_rate is None else sample_rate
    frames = _state["depth"] if depth is None else depth
    if not isinstance(rate, int) or isinstance(rate, bool) or rate < 1:
        raise ValueError(f"sample_rate must be an int >= 1, not {rate!r}")
    if not isinstance(frames, int) or isinstance(frames, bool) or not 1 <= frames <= 64:
        raise ValueError(f"depth must be an int from 1 to 64, not {frames!r}")
    _core._tr_set(LEVELS.index(level), rate, frames, _state["shutdown"])
    _state.update(level=LEVELS.index(level), rate=rate, depth=frames)


def get_level() -> str:
    """The current level's name."""
    return LEVELS[_state["level"]]


def seed(n: int) -> None:
    """Restart every thread's sampling from seed ``n`` (reproducible sampling in tests)."""
    _core._tr_seed(n)


# ------------------------------------------------------------------------------------
# Kinds: how each type is closed, and whether CPython warns about it itself

# id(type) -> (kind, weak reference to the type): a class is never kept alive by being
# tracked once (classes made at run time, every MagicMock's own class); the entry goes
# with the class (its weak reference's callback runs before its id can be reused)
_kinds: dict[int, tuple[_Kind, weakref.ref[type]]] = {}
# A class's kind is made, and its methods wrapped, once: threads that meet a class for
# the first time at once wait for the first (re-entrant: wrapping runs a class's code)
_kinds_lock = threading.RLock()


def _kind_of(tp: type) -> _Kind:
    entry = _kinds.get(id(tp))
    if entry is not None:
        return entry[0]
    with _kinds_lock:
        entry = _kinds.get(id(tp))
        return entry[0] if entry is not None else _kind_for(tp)


def _kind_for(tp: type) -> _Kind:
    if issubclass(tp, _IO_TYPES):
        kind = _FILE_KIND
    elif issubclass(tp, io.IOBase):
        kind = (("close",), "closed", _PROBE_TRUE, _IO, True)
    elif issubclass(tp, socket.socket):
        kind = (("close", "detach"), "_closed", _PROBE_TRUE, _CPYTHON_WARNS, True)
    elif issubclass(tp, subprocess.Popen):
        kind = (("wait", "communicate", "poll"), "returncode", _PROBE_NOT_NONE,
                _CPYTHON_WARNS | _PROBE_DECIDES, True)
    elif issubclass(tp, asyncio.BaseTransport):
        kind = (("close",), None, _PROBE_NONE, _CPYTHON_WARNS, True)
    elif sys.version_info >= (3, 13) and "sqlite3" in sys.modules and \
            issubclass(tp, sys.modules["sqlite3"].Connection):
        # 3.13's sqlite3 warns "unclosed database" itself
        kind = (("close",), None, _PROBE_NONE, _CPYTHON_WARNS, True)
    else:
        kind = (("close",), "closed", _PROBE_TRUE, 0, False)
    if kind is not _FILE_KIND and (not tp.__flags__ & _IMMUTABLETYPE or
                                   getattr(tp, "__dictoffset__", 0) == 0):
        # a class (Python's socket, Popen, yours): its closing methods are wrapped once,
        # and a call keeps self alive as usual. A built-in type (io.BytesIO: static on
        # 3.11, an immutable heap type from 3.12) cannot be changed: an observer goes in
        # each tracked object's __dict__ instead
        _hook_class(tp, kind)
        kind = kind[:3] + (kind[3] | _CLASS_HOOKED,) + kind[4:]
    key = id(tp)
    _kinds[key] = (kind, weakref.ref(tp, functools.partial(_forget_kind, key)))
    return kind


def _forget_kind(key: int, ref: weakref.ref[type]) -> None:
    entry = _kinds.get(key)
    if entry is not None and entry[1] is ref:
        del _kinds[key]


def _hook_class(tp: type, kind: _Kind) -> None:
    """Wrap tp's closing methods (a type without __dict__): each tells the tracker it ran
    (for a kind whose probe decides, only when the probe then says closed: a poll() that
    found the child running closes nothing). A method wrapped already (here, or in a base
    class) is left as it is."""
    methods, probe, mode, decides = kind[0], kind[1], kind[2], bool(kind[3] & _PROBE_DECIDES)
    for name in methods:
        resolved = getattr(tp, name, None)
        if resolved is None or getattr(resolved, "__memleash_closing__", False):
            continue

        def closing(self: Any, *args: Any, __m: Any = resolved, **kwargs: Any) -> Any:
            try:
                result = __m(self, *args, **kwargs)
            except BaseException:
                if _probe(self, probe, mode):
                    _core._tr_closed(self)
                raise
            if not decides or _probe(self, probe, mode):
                _core._tr_closed(self)
            return result

        functools.update_wrapper(closing, resolved)
        closing.__memleash_closing__ = True  # type: ignore[attr-defined]
        try:
            setattr(tp, name, closing)
        except (TypeError, AttributeError):
            raise TypeError(
                f"cannot track a {tp.__qualname__!r} object: memleash cannot see when it is "
                f"closed (no __dict__, immutable type); track an instance of a subclass") from None


def _probe(obj: Any, attr: Optional[str], mode: int) -> bool:
    if attr is None or mode == _PROBE_NONE:
        return False
    try:
        value = getattr(obj, attr)
        return value is not None if mode == _PROBE_NOT_NONE else bool(value)
    except Exception:
        return False


# ------------------------------------------------------------------------------------
# Tracking

def track(obj: T, *, name: Optional[str] = None) -> T:
    """Track ``obj`` until it is closed; a leak if it is collected first. Returns ``obj``.

    Its description and allocation site are captured now. It counts as closed once its
    ``close()`` (``Popen``: ``wait``/``communicate``/``poll``) ran, or ``untrack(obj)``
    was called. Never sampled. ``TypeError`` for an object without weak reference support.
    """
    tp = type(obj)
    if not tp.__weakrefoffset__:
        raise TypeError(
            f"cannot track a {tp.__qualname__!r} object: it does not support weak references "
            "(track an instance of a subclass, e.g. sqlite3.connect(..., factory=MyConnection))")
    return _core._tr_track(obj, _kind_of(tp), name, True)


def untrack(obj: Any) -> bool:
    """Stop tracking ``obj`` (it counts as closed). True if it was tracked and open."""
    return _core._tr_untrack(obj)


class _Closed:
    """``Resource.closed``: True once ``close()`` ran. Not a data descriptor: a class that
    keeps its own ``closed`` (``self.closed = False`` in ``__init__``) keeps it."""

    def __get__(self, obj: Any, tp: Any = None) -> Any:
        return self if obj is None else _core.Resource.closed.__get__(obj)


class Resource(_core.Resource):
    """Base class of your own handles: every instance is tracked from its creation.

    ``close()`` marks it closed (a subclass's ``close()`` is wrapped to do so when it
    returns), ``closed`` says so (unless the class keeps a ``closed`` of its own), ``with``
    closes it. An instance whose ``__init__`` raised is no longer tracked. One collected
    unclosed gives an ``UnclosedResourceWarning`` from its finalizer, with ``source`` set
    to it.
    """

    __slots__ = ()
    closed = _Closed()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        close = _own_or_inherited(cls, "close")
        if close is not None and close is not _core.Resource.close:
            def closing(self: Any, *args: Any, __close: Any = close, **kw: Any) -> Any:
                try:
                    return __close(self, *args, **kw)
                finally:
                    if not _core.Resource.closed.__get__(self):
                        _core.Resource.close(self)

            functools.update_wrapper(closing, close)
            closing.__memleash_closing__ = True  # type: ignore[attr-defined]
            cls.close = closing  # type: ignore[method-assign]
        init = _own_or_inherited(cls, "__init__")
        if init is not None and init is not object.__init__:
            def __init__(self: Any, *args: Any, __init: Any = init, **kw: Any) -> None:
                try:
                    __init(self, *args, **kw)
                except BaseException:
                    _core._tr_untrack(self)   # never finished: not a leak
                    raise

            functools.update_wrapper(__init__, init)
            __init__.__memleash_closing__ = True  # type: ignore[attr-defined]
            cls.__init__ = __init__  # type: ignore[method-assign]


def _own_or_inherited(cls: type, name: str) -> Any:
    """cls's `name` to wrap: its own, or one reached before Resource's in the MRO
    (resource() puts the user's class first); None when there is nothing to wrap."""
    method = cls.__dict__.get(name)
    if method is None:
        method = getattr(cls, name, None)
    if method is None or not callable(method) or getattr(method, "__memleash_closing__", False):
        return None
    return method


def resource(cls: type[T]) -> type[T]:
    """Class decorator: ``cls`` with ``Resource`` mixed in (its own ``close()`` and
    ``closed`` kept). ``TypeError`` for a class whose ``__slots__`` give it an instance
    layout of its own: derive it from ``memleash.Resource`` instead."""
    if not isinstance(cls, type):
        raise TypeError("resource() decorates a class")
    ns = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    try:
        return type(cls.__name__, (cls, Resource), ns)
    except TypeError as exc:
        if "lay-out conflict" not in str(exc):
            raise
        raise TypeError(
            f"@memleash.resource cannot mix Resource into {cls.__qualname__!r}: its __slots__ "
            f"give it an instance layout of its own; derive it from memleash.Resource instead "
            f"(class {cls.__name__}(memleash.Resource): __slots__ = ...)") from None


# ------------------------------------------------------------------------------------
# Leaks: listeners, warnings

_listeners: list[Callable[[Leak], Any]] = []


def on_leak(callback: Callable[[Leak], Any]) -> Callable[[Leak], Any]:
    """Call ``callback(leak)`` for every leak of a tracked object. Usable as a decorator."""
    if not callable(callback):
        raise TypeError("on_leak() takes a callable")
    _listeners.append(callback)
    return callback


def remove_leak_listener(callback: Callable[[Leak], Any]) -> None:
    """Stop calling ``callback``; ``ValueError`` if it was not registered."""
    _listeners.remove(callback)


def log_leaks(logger: logging.Logger | str = "memleash.tracker", *,
              level: int = logging.WARNING) -> Callable[[Leak], None]:
    """Log every leak on ``logger`` (a ``logging.Logger`` or a logger name) at ``level``.

    One record per leak, whatever the warning filters say (``ResourceWarning`` is hidden
    by default), reading as the warning does: ``unclosed <description> allocated at
    file:line in function()``; the ``Leak`` itself is ``record.leak``, for handlers that
    ship structured data. Returns the listener: ``remove_leak_listener()`` stops it.
    ``TypeError`` for a logger that is neither a Logger nor a str.
    """
    if isinstance(logger, str):
        logger = logging.getLogger(logger)
    elif not isinstance(logger, logging.Logger):
        raise TypeError(f"logger must be a logging.Logger or a logger name, not "
                        f"{type(logger).__name__}")
    target = logger

    def log_leak(leak: Leak) -> None:
        target.log(level, "%s", _leak_text(leak), extra={"leak": leak})

    return on_leak(log_leak)


def _leak_text(leak: Leak) -> str:
    label = f" ({leak.name})" if leak.name else ""
    return f"unclosed {leak.description}{label} allocated at {leak.where}"


def _dispatch(site: int, desc: str, name: Optional[str], t0: int, flags: int, source: Any) -> None:
    leak = Leak(desc, name, _frames(site), max(0.0, (time.monotonic_ns() - t0) / 1e9), site, t0)
    failure: Optional[BaseException] = None
    for listener in list(_listeners):
        try:
            listener(leak)
        except BaseException as exc:   # the others still hear of it
            failure = failure or exc
    if not flags & _CPYTHON_WARNS and _core._tr_note_warned(site):
        warnings.warn(_leak_text(leak), UnclosedResourceWarning, stacklevel=2, source=source)
    if failure is not None:
        raise failure


_original_format = warnings._formatwarnmsg_impl   # type: ignore[attr-defined]
_original_show = warnings._showwarnmsg_impl       # type: ignore[attr-defined]
_original_showwarnmsg = warnings._showwarnmsg     # type: ignore[attr-defined]


def _showwarnmsg(msg: warnings.WarningMessage) -> None:
    """warnings' one step between a warning that passed the filters and its display or
    its record (catch_warnings(record=True), pytest's capture, logging's capture): a
    ResourceWarning whose source memleash tracks — CPython's own, for files, sockets,
    Popen, asyncio transports — gets ``allocated at file:line in function()`` in its
    message. CPython calls ``warnings._showwarnmsg`` for every warning it shows, made in C
    or in Python; nothing else is done, so a warning costs one look-up of its source."""
    info = _source_record(msg)
    if info is not None:
        msg._memleash_site = info[0]   # type: ignore[attr-defined]
        text = str(msg.message)
        if " allocated at " not in text:
            label = f" ({info[2]})" if info[2] else ""
            try:
                msg.message = type(msg.message)(f"{text}{label} allocated at "
                                                f"{_where(_frames(info[0]))}")
            except Exception:
                pass   # a warning class that takes other arguments: shown as it is
    _original_showwarnmsg(msg)


def _formatwarnmsg_impl(msg: warnings.WarningMessage) -> str:
    info = _source_record(msg)
    if msg.source is not None and not tracemalloc.is_tracing() and \
            " allocated at " in str(msg.message) and isinstance(msg.category, type) and \
            issubclass(msg.category, ResourceWarning) and \
            (info is not None or issubclass(msg.category, UnclosedResourceWarning)):
        # the message says where it was allocated: no "enable tracemalloc" tip
        msg = warnings.WarningMessage(msg.message, msg.category, msg.filename, msg.lineno,
                                      msg.file, msg.line, None)
    text: str = _original_format(msg)
    if info is not None and " allocated at " not in str(msg.message):
        text += f"  allocated at {_where(_frames(info[0]))}\n"   # formatted without _showwarnmsg
    return text


def _showwarnmsg_impl(msg: warnings.WarningMessage) -> None:
    site = getattr(msg, "_memleash_site", None)
    if site is None:
        info = _source_record(msg)
        site = None if info is None else info[0]
    if site is not None and not _core._tr_note_warned(site):
        return   # this site has warned already: counted, not shown again
    _original_show(msg)


def _source_record(msg: warnings.WarningMessage) -> Optional[tuple[Any, ...]]:
    """The record of a CPython ResourceWarning's source, if memleash tracks it."""
    if msg.source is None or not isinstance(msg.category, type) or \
            not issubclass(msg.category, ResourceWarning) or \
            issubclass(msg.category, UnclosedResourceWarning):
        return None
    try:
        return _core._tr_lookup(msg.source)
    except Exception:
        return None


def _gc_phase(phase: str, info: dict[str, Any]) -> None:
    _core._tr_gc_phase(phase == "start")


def _at_exit() -> None:
    # objects collected at interpreter shutdown are counted, not reported one by one
    _state["shutdown"] = True
    _core._tr_set(_state["level"], _state["rate"], _state["depth"], True)


# ------------------------------------------------------------------------------------
# Automatic tracking: enable() / disable()

_enabled: dict[str, Any] = {}
_enabled_lock = threading.Lock()   # enable() and disable() from many threads: one at a time


def enable(files: bool = True, sockets: bool = True, subprocesses: bool = True) -> None:
    """Track the files ``open()`` returns, the sockets created and the ``subprocess.Popen``
    objects started, at the current level."""
    with _enabled_lock:
        _enable(files, sockets, subprocesses)


def _enable(files: bool, sockets: bool, subprocesses: bool) -> None:
    if files and "files" not in _enabled:
        real = builtins.open
        tracking = _core._TrackingOpen(real, _FILE_KIND)
        _enabled["files"] = (real, io.open)
        builtins.open = tracking
        io.open = tracking
    if sockets and "sockets" not in _enabled:
        kind = _kind_of(socket.socket)
        original = socket.socket.__dict__["__init__"]

        def __init__(self: socket.socket, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            if _core._tr_sample():
                _core._tr_track(self, _kind_of(type(self)), None, True)

        functools.update_wrapper(__init__, original)
        socket.socket.__init__ = __init__  # type: ignore[method-assign]
        _enabled["sockets"] = (original, kind)
    if subprocesses and "subprocesses" not in _enabled:
        _kind_of(subprocess.Popen)   # its closing methods wrapped now, not at the first child
        started = subprocess.Popen.__dict__["__init__"]

        def popen_init(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
            started(self, *args, **kwargs)   # a child that failed to start raised: untracked
            if _core._tr_sample():
                _core._tr_track(self, _kind_of(type(self)), None, True)

        functools.update_wrapper(popen_init, started)
        subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]
        _enabled["subprocesses"] = (started,)


def disable() -> None:
    """Undo ``enable()``: ``open``, ``socket.socket`` and ``subprocess.Popen`` are the
    originals again. Objects tracked so far stay tracked."""
    with _enabled_lock:
        _disable()


def _disable() -> None:
    files = _enabled.pop("files", None)
    if files is not None:
        builtins.open, io.open = files
    sockets = _enabled.pop("sockets", None)
    if sockets is not None:
        socket.socket.__init__ = sockets[0]  # type: ignore[method-assign]
    subprocesses = _enabled.pop("subprocesses", None)
    if subprocesses is not None:
        subprocess.Popen.__init__ = subprocesses[0]  # type: ignore[method-assign]


def enabled() -> dict[str, bool]:
    """What ``enable()`` turned on."""
    return {key: key in _enabled for key in ("files", "sockets", "subprocesses")}


# ------------------------------------------------------------------------------------
# Reports

def sites() -> list[SiteReport]:
    """Every allocation site that tracked something: open now, leaked, most open first."""
    now = time.monotonic_ns()
    by_site: dict[int, list[tuple[int, str, Optional[str]]]] = {}
    for site, t0, desc, name in _open_records():
        by_site.setdefault(site, []).append((t0, desc, name))
    reports = []
    for site, tracked, n_open, leaked, warned in _core._tr_sites():
        items = by_site.get(site, [])
        oldest = min((t0 for t0, _, _ in items), default=None)
        reports.append(SiteReport(
            frames=_frames(site), open=len(items),
            oldest_age=None if oldest is None else (now - oldest) / 1e9,
            leaked=leaked, tracked=tracked, warned=warned,
            examples=tuple(dict.fromkeys(d for _, d, _ in items))[:3],
            names=tuple(dict.fromkeys(n for _, _, n in items if n)),
        ))
    reports.sort(key=lambda r: (-r.open, -r.leaked, r.where))
    return reports


def _open_records(since: int = 0) -> list[tuple[int, int, str, Optional[str]]]:
    """(site, tracked_at, description, name) of each tracked object open and alive now
    that was tracked at ``since`` (a ``time.monotonic_ns()``) or later."""
    records = []
    for site, t0, desc, name, obj, probe, mode in _core._tr_open():
        if t0 < since:
            continue
        if _probe(obj, probe, mode):   # closed by a path memleash does not see
            _core._tr_closed(obj)
            continue
        records.append((site, t0, desc, name))
    return records


def open_resources() -> list[SiteReport]:
    """What is open now, grouped by allocation site, most numerous first; then the sites
    with nothing open that leaked (every ``SiteReport`` has its ``leaked`` count)."""
    return [r for r in sites() if r.open or r.leaked]


def _configure() -> None:
    skip = [os.path.dirname(os.path.abspath(__file__)) + os.sep]
    for key in ("stdlib", "platstdlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            skip.append(os.path.join(path, ""))
    _core._tr_configure(_dispatch, tuple(dict.fromkeys(skip)))
    warnings._formatwarnmsg_impl = _formatwarnmsg_impl   # type: ignore[attr-defined]
    warnings._showwarnmsg_impl = _showwarnmsg_impl       # type: ignore[attr-defined]
    warnings._showwarnmsg = _showwarnmsg                 # type: ignore[attr-defined]
    gc.callbacks.append(_gc_phase)
    atexit.register(_at_exit)
    level = os.environ.get("MEMLEASH_LEAK_LEVEL", "").strip().lower()
    if level:
        if level in LEVELS:
            set_level(level)
        else:
            warnings.warn(f"MEMLEASH_LEAK_LEVEL={level!r} is not one of {', '.join(LEVELS)}; "
                          "using 'simple'", RuntimeWarning, stacklevel=2)


_configure()
