"""``memleash.report()``: one snapshot of every live memleash object, in three renderings.

Every cache and emitter links itself into a registry in the C module's state when it is
created and unlinks itself when it dies (no reference is held, nothing happens on a hot
path). ``report()`` walks that registry once and reads each object's counters; nothing
expires or is evicted by reading them.

Tracked resources (``memleash.tracker``) are reported by allocation site: what is open
from there now, and how many leaked (were collected unclosed).

- ``str(report())``: a table, largest caches first;
- ``report().to_dict()``: plain, JSON-serialisable data;
- ``report().to_prometheus()``: the Prometheus text exposition format (``memleash_*``
  metrics, one series per ``kind`` and ``name``), and ``PrometheusCollector`` for a
  ``prometheus_client`` registry.
"""

from __future__ import annotations

import math
import os
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Union

from . import _core

__all__ = ["CacheReport", "EmitterReport", "PrometheusCollector", "Report", "ResourceReport",
           "report"]

Number = Union[int, float]


@dataclass(frozen=True)
class CacheReport:
    """One live cache: its size against its limits, and what happened to it so far."""

    kind: str               #: the class name (``LRUCache``, or a subclass's)
    name: str               #: ``name=`` as given, else the creation site
    site: Optional[str]     #: where it was created: ``path/to/file.py:42 in function``
    entries: int            #: entries held (expired ones not yet removed included)
    currsize: Number        #: size units held (``getsizeof`` units; entries by default)
    maxsize: Number         #: the size limit (``math.inf`` for none)
    currbytes: Optional[int]   #: accounted bytes: keys, values and per-entry overhead;
    #: None when a cache without max_bytes holds an object whose __sizeof__ raises
    maxbytes: Optional[int]  #: ``max_bytes``, or None
    own_bytes: int          #: ``__sizeof__()``: the object and the buffers it owns
    hits: int               #: ``cache[key]`` and ``get(key)`` that found the key
    misses: int             #: ... that did not
    evictions: int          #: entries removed to make room
    expirations: int        #: entries removed because their time was up
    #: entries removed because their source changed: a Redis invalidation, or tracking lost
    #: (``memleash.redis.ClientCache``, ``TieredCache``'s local copy); 0 for other caches
    invalidations: int = 0

    @property
    def hit_ratio(self) -> Optional[float]:
        """hits / (hits + misses), or None before the first read."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else None


@dataclass(frozen=True)
class EmitterReport:
    """One live event emitter: its listeners, and the ones memleash removed for you."""

    kind: str
    name: str
    site: Optional[str]
    events: int              #: events with at least one listener
    listeners: int           #: live listeners, all events
    weak_listeners: int      #: ... of which held through a weak reference
    listeners_removed: int   #: listeners unlinked because their owner died
    leak_warnings: int       #: ``ListenerLeakWarning`` issued
    max_listeners: int       #: the leak-warning threshold (0: never)
    own_bytes: int           #: ``__sizeof__()``


@dataclass(frozen=True)
class ResourceReport:
    """One allocation site of tracked resources (``memleash.tracker``)."""

    kind: str                #: always ``"site"`` (the Prometheus label)
    name: str                #: where: ``file:line in function()`` (and its callers)
    open: int                #: tracked objects from here still open and alive
    leaked: int              #: collected without having been closed
    tracked: int             #: ever tracked from here
    oldest_age: Optional[float]  #: seconds since the oldest open one was tracked
    examples: tuple[str, ...]    #: descriptions of a few open ones


@dataclass(frozen=True)
class Report:
    """A snapshot of every live memleash object (see ``report()``)."""

    caches: Sequence[CacheReport]
    emitters: Sequence[EmitterReport]
    taken_at: float = field(default_factory=time.time)   #: ``time.time()`` of the snapshot
    resources: Sequence[ResourceReport] = ()   #: sites with open or leaked resources

    @property
    def accounted_bytes(self) -> int:
        """The caches' accounted bytes, summed."""
        return sum(c.currbytes or 0 for c in self.caches)

    @property
    def own_bytes(self) -> int:
        """What the memleash objects themselves own (``__sizeof__``), summed."""
        return sum(c.own_bytes for c in self.caches) + sum(e.own_bytes for e in self.emitters)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``json.dumps`` takes it): an infinite limit is given as None."""
        return {
            "taken_at": self.taken_at,
            "caches": [_finite(asdict(c)) for c in self.caches],
            "emitters": [asdict(e) for e in self.emitters],
            "resources": [asdict(r) for r in self.resources],
            "totals": {
                "caches": len(self.caches),
                "emitters": len(self.emitters),
                "accounted_bytes": self.accounted_bytes,
                "own_bytes": self.own_bytes,
                "listeners": sum(e.listeners for e in self.emitters),
                "listeners_removed": sum(e.listeners_removed for e in self.emitters),
                "resources_open": sum(r.open for r in self.resources),
                "resources_leaked": sum(r.leaked for r in self.resources),
            },
        }

    def to_prometheus(self) -> str:
        """The Prometheus text exposition format (version 0.0.4) of this snapshot.

        Objects sharing a ``kind`` and ``name`` (made at one site, say) are summed into one
        series, with ``memleash_cache_objects`` / ``memleash_emitter_objects`` counting them:
        a site creating caches without end shows up as a growing count. Counters are summed
        over live objects only, so one dying looks like a counter reset to Prometheus.
        """
        lines = []
        for fam in _families(self):
            lines.append(f"# HELP {fam.name} {_escape_help(fam.help)}")
            lines.append(f"# TYPE {fam.name} {fam.type}")
            for (kind, name), value in fam.samples:
                lines.append(f'{fam.name}{{kind="{_escape_label(kind)}",'
                             f'name="{_escape_label(name)}"}} {_number(value)}')
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return _render_table(self)


#: id(cache) -> (weak references to the cache and to an object whose ``invalidations``
#: counts the entries removed from it because their source changed): kept by what fills
#: a cache from elsewhere (memleash.tiered), outside the engine's own counters
_INVALIDATIONS: dict[int, tuple[weakref.ref[Any], weakref.ref[Any]]] = {}


def _count_invalidations(cache: Any, counter: Any) -> None:
    """report() shows ``counter.invalidations`` on ``cache``'s row, while both live."""
    key = id(cache)

    def forget(ref: weakref.ref[Any], table: dict[int, Any] = _INVALIDATIONS) -> None:
        # the table is bound here: at interpreter exit the module's globals may be gone
        if table.get(key, (None, None))[0] is ref:
            del table[key]

    _INVALIDATIONS[key] = (weakref.ref(cache, forget), weakref.ref(counter))


def _counter(cache: Any) -> Any:
    """What counts ``cache``'s invalidations, if it and that are alive; else None."""
    entry = _INVALIDATIONS.get(id(cache))
    if entry is None or entry[0]() is not cache:
        return None
    return entry[1]()


def report() -> Report:
    """A snapshot of every live memleash cache and emitter, largest caches first."""
    caches, emitters = [], []
    for obj in _core._live():
        stats = obj._ml_stats()
        kind = type(obj).__name__
        site = _site_text(stats.pop("site"))
        name = stats.pop("name") or site or f"{kind} at {id(obj):#x}"
        if isinstance(obj, _core.Cache):
            stats.pop("timed")
            if stats["maxsize"] is None:   # a cache made with __new__ alone
                stats["maxsize"] = math.inf
            counter = _counter(obj)
            if counter is not None:
                stats["invalidations"] = counter.invalidations
            caches.append(CacheReport(kind=kind, name=name, site=site, **stats))
        else:
            emitters.append(EmitterReport(kind=kind, name=name, site=site, **stats))
    caches.sort(key=lambda c: (-(c.currbytes or 0), -c.entries, c.name))
    emitters.sort(key=lambda e: (-e.listeners, e.name))
    from . import tracker   # imports report: here, not at the top

    resources = tuple(
        ResourceReport(kind="site", name=_relative(r.where), open=r.open, leaked=r.leaked,
                       tracked=r.tracked, oldest_age=r.oldest_age, examples=r.examples)
        for r in tracker.open_resources())
    return Report(tuple(caches), tuple(emitters), resources=resources)


class PrometheusCollector:
    """A ``prometheus_client`` collector of the same metrics as ``Report.to_prometheus()``.

    ``prometheus_client.REGISTRY.register(memleash.PrometheusCollector())``: every scrape
    takes a new ``report()``. Needs the ``prometheus_client`` package (imported on use).
    """

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for fam in _families(report()):
            cls = CounterMetricFamily if fam.type == "counter" else GaugeMetricFamily
            metric = cls(fam.name, fam.help, labels=("kind", "name"))
            for labels, value in fam.samples:
                metric.add_metric(labels, value)
            yield metric

    def describe(self) -> list[Any]:
        return []   # no fixed metric set: registering takes no snapshot


# --------------------------------------------------------------------------------------
# Prometheus families, shared by the text rendering and the collector

@dataclass
class _Family:
    name: str
    type: str
    help: str
    samples: list[tuple[tuple[str, str], Number]] = field(default_factory=list)


_CACHE_METRICS = (
    # (metric, type, help, field or None for a count of objects)
    ("memleash_cache_objects", "gauge", "Live memleash caches.", None),
    ("memleash_cache_entries", "gauge", "Entries held.", "entries"),
    ("memleash_cache_size", "gauge", "Size units held (getsizeof units; entries by default).",
     "currsize"),
    ("memleash_cache_max_size", "gauge", "The size limit (maxsize); absent when unbounded.",
     "maxsize"),
    ("memleash_cache_bytes", "gauge", "Accounted bytes of the entries: keys, values, overhead.",
     "currbytes"),
    ("memleash_cache_max_bytes", "gauge", "The byte budget (max_bytes); absent when none.",
     "maxbytes"),
    ("memleash_cache_own_bytes", "gauge", "Bytes the cache objects own themselves (__sizeof__).",
     "own_bytes"),
    ("memleash_cache_hits_total", "counter", "Reads that found their key.", "hits"),
    ("memleash_cache_misses_total", "counter", "Reads that did not find their key.", "misses"),
    ("memleash_cache_evictions_total", "counter", "Entries removed to make room.", "evictions"),
    ("memleash_cache_expirations_total", "counter", "Entries removed because they expired.",
     "expirations"),
    ("memleash_cache_invalidations_total", "counter",
     "Entries removed because their source changed (a Redis invalidation).", "invalidations"),
)

_EMITTER_METRICS = (
    ("memleash_emitter_objects", "gauge", "Live memleash event emitters.", None),
    ("memleash_emitter_events", "gauge", "Events with at least one listener.", "events"),
    ("memleash_emitter_listeners", "gauge", "Live listeners.", "listeners"),
    ("memleash_emitter_weak_listeners", "gauge", "Live listeners held through a weak reference.",
     "weak_listeners"),
    ("memleash_emitter_own_bytes", "gauge", "Bytes the emitters own themselves (__sizeof__).",
     "own_bytes"),
    ("memleash_emitter_listeners_removed_total", "counter",
     "Listeners unlinked because their owner died.", "listeners_removed"),
    ("memleash_emitter_leak_warnings_total", "counter", "ListenerLeakWarnings issued.",
     "leak_warnings"),
)


_RESOURCE_METRICS = (
    ("memleash_resource_open", "gauge",
     "Tracked resources open now, by allocation site.", "open"),
    ("memleash_resource_leaked_total", "counter",
     "Tracked resources collected without having been closed, by allocation site.", "leaked"),
    ("memleash_resource_tracked_total", "counter",
     "Resources tracked, by allocation site.", "tracked"),
)


def _families(rep: Report) -> list[_Family]:
    out = []
    for objs, metrics in ((rep.caches, _CACHE_METRICS), (rep.emitters, _EMITTER_METRICS),
                          (rep.resources, _RESOURCE_METRICS)):
        groups: dict[tuple[str, str], list[Any]] = {}
        for obj in objs:
            groups.setdefault((obj.kind, obj.name), []).append(obj)
        for metric, mtype, help_, attr in metrics:
            fam = _Family(metric, mtype, help_)
            for labels in sorted(groups):
                members = groups[labels]
                if attr is None:
                    fam.samples.append((labels, len(members)))
                    continue
                values = [getattr(o, attr) for o in members]
                if any(v is None or v == math.inf for v in values):
                    continue   # no limit: no series (a sum with "none" means nothing)
                fam.samples.append((labels, sum(values)))
            out.append(fam)
    return out


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: Number) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


# --------------------------------------------------------------------------------------
# The table

def _relpath(filename: str) -> str:
    """A path under the working directory, relative to it; others as they are."""
    if os.path.isabs(filename):
        try:
            rel = os.path.relpath(filename)
        except ValueError:   # another drive (Windows)
            return filename
        if not rel.startswith(".."):
            return rel
    return filename


def _site_text(site: Optional[tuple[str, int, str]]) -> Optional[str]:
    if site is None:
        return None
    filename, line, func = site
    return f"{_relpath(filename)}:{line} in {func}"


def _relative(where: str) -> str:
    """A tracker site's text with its first path made relative (the callers' stay)."""
    path, sep, rest = where.partition(":")
    return _relpath(path) + sep + rest if sep else where


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in d.items()}


def _bytes(n: Optional[int]) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024   # type: ignore[assignment]
    raise AssertionError("unreachable")


def _size(n: Number) -> str:
    if isinstance(n, float):
        return "inf" if math.isinf(n) else f"{n:g}"
    return f"{n:,}"


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]], left: int) -> list[str]:
    """Columns padded to their widest cell; the first `left` columns aligned left."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    out = []
    for r in (header, *rows):
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        out.append("  " + "  ".join(cells).rstrip())
    return out


_MAX_ROWS = 25


def _render_table(rep: Report) -> str:
    lines = [
        f"memleash report: {len(rep.caches)} cache(s), {len(rep.emitters)} emitter(s); "
        f"{_bytes(rep.accounted_bytes)} accounted in caches, {_bytes(rep.own_bytes)} owned"
        + (f"; {sum(r.open for r in rep.resources):,} tracked resource(s) open, "
           f"{sum(r.leaked for r in rep.resources):,} leaked" if rep.resources else "")
    ]
    if rep.caches:
        lines.append("caches (largest first):")
        rows = []
        # the column only when some cache has had an invalidation (Redis-backed caches)
        invalidated = any(c.invalidations for c in rep.caches[:_MAX_ROWS])
        for c in rep.caches[:_MAX_ROWS]:
            ratio = c.hit_ratio
            rows.append([
                c.kind, c.name, f"{_size(c.currsize)}/{_size(c.maxsize)}",
                f"{_bytes(c.currbytes)}/{_bytes(c.maxbytes)}", _bytes(c.own_bytes),
                f"{c.hits:,}", f"{c.misses:,}", "-" if ratio is None else f"{ratio:.0%}",
                f"{c.evictions:,}", f"{c.expirations:,}",
            ] + ([f"{c.invalidations:,}"] if invalidated else []))
        lines += _grid(["kind", "name", "size/max", "bytes/max_bytes", "own", "hits", "misses",
                        "hit%", "evicted", "expired"] + (["invalidated"] if invalidated else []),
                       rows, left=2)
        if len(rep.caches) > _MAX_ROWS:
            lines.append(f"  ... and {len(rep.caches) - _MAX_ROWS} more (report().caches has all)")
    if rep.emitters:
        lines.append("emitters (most listeners first):")
        rows = [[e.kind, e.name, f"{e.events:,}", f"{e.listeners:,}", f"{e.weak_listeners:,}",
                 f"{e.listeners_removed:,}", f"{e.leak_warnings:,}", _bytes(e.own_bytes)]
                for e in rep.emitters[:_MAX_ROWS]]
        lines += _grid(["kind", "name", "events", "listeners", "weak", "auto-removed",
                        "leak warnings", "own"], rows, left=2)
        if len(rep.emitters) > _MAX_ROWS:
            lines.append(f"  ... and {len(rep.emitters) - _MAX_ROWS} more "
                         "(report().emitters has all)")
    if rep.resources:
        lines.append("tracked resources by allocation site (most open first):")
        rows = [[r.name, f"{r.open:,}", f"{r.leaked:,}", f"{r.tracked:,}",
                 "-" if r.oldest_age is None else f"{r.oldest_age:.1f} s"]
                for r in rep.resources[:_MAX_ROWS]]
        lines += _grid(["allocated at", "open", "leaked", "tracked", "oldest"], rows, left=1)
        if len(rep.resources) > _MAX_ROWS:
            lines.append(f"  ... and {len(rep.resources) - _MAX_ROWS} more "
                         "(report().resources has all)")
    return "\n".join(lines)
