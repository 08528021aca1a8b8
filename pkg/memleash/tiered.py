"""TieredCache and AsyncTieredCache: a memleash cache (L1) in front of a shared Redis (L2).

This module imports no redis at import time (``import memleash`` must not): redis-py is
imported when a cache first talks to its server (``pip install memleash[redis]``).

Layout
------
Every key maps to one Redis key, ``<namespace>:<key>`` (see ``redis_key``), which holds
the serialized value. The L1 (the memleash cache you pass) maps that Redis key (bytes) to
the serialized value (bytes; wrapped with its deadline when the cache has a ``ttl``), so
its byte budget counts exactly what it holds, and every read deserializes a fresh object,
as a read from Redis would: a caller that mutates what it got changes nobody else's copy.

Invalidation: RESP3 client tracking, broadcast mode
---------------------------------------------------
Each cache keeps one connection of its own with ``CLIENT TRACKING ON BCAST PREFIX
<namespace>:``; Redis pushes ``invalidate [keys]`` on it whenever any client changes a key
under the prefix (SET, DEL, UNLINK, expiry, eviction under maxmemory; ``None`` for a
flushed database), and a listener (a thread; an asyncio task for AsyncTieredCache) drops
those keys from the L1. Pub/sub would need every writer to publish after writing: a writer
that crashes between the two, a ``redis-cli SET``, a key that expires or is evicted would
leave stale copies forever. Tracking comes from the server, after every change, whoever
made it, and costs the writers nothing. Broadcast mode keeps no per-key state on the
server (the default mode remembers every key each client read); its cost is that every
process hears of every change under the prefix, including its own writes (the echo drops
the writer's fresh local copy: its next read refills it from Redis).

The rules that keep the L1 from ever holding a value older than Redis's after the
invalidation of that change has been processed (``_Local``):

- a value read from Redis (or written to it) is stored in the L1 only if no invalidation
  of its key, no write of its key by this process, no other fill of its key, and no loss
  of tracking happened between sending the command and storing the reply (each command in
  flight holds a ``_Pending`` that those events mark stale);
- while the tracking connection is down (not yet up, dropped, or silent past its health
  check), the L1 is empty and unused: reads and writes go to Redis; when tracking is
  re-established, the L1 starts empty (changes made meanwhile were never heard of);
- a write removes the process's own local copy before it is sent, so a process reads its
  own writes at once (from Redis, or from the copy the write stored).

What remains is the delay between a change in Redis and the push reaching the other
processes (measured in docs/redis.md): during it, they may read the old value locally.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import pickle
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Generator, Iterator, MutableMapping
from datetime import timedelta
from typing import Any, Generic, Optional, Protocol, TypeVar, Union

from .report import _count_invalidations, _counter

__all__ = ["AsyncTieredCache", "JSONSerializer", "Serializer", "TieredCache", "redis_key"]

_K = TypeVar("_K")
_V = TypeVar("_V")
#: an operation of _Base: yields commands, receives replies, returns its result
_Op = Generator[Any, Any, Any]
_MISSING: Any = object()

#: a health check (PING) on the tracking connection after this many seconds without
#: traffic; no answer within as long again means the connection is lost
HEALTH_CHECK_INTERVAL = 1.0


class Serializer(Protocol):
    """What ``serializer=`` takes: ``dumps(obj) -> bytes`` and ``loads(bytes) -> obj``
    (the ``pickle`` module is one)."""

    def dumps(self, obj: Any, /) -> bytes: ...
    def loads(self, data: bytes, /) -> Any: ...


class JSONSerializer:
    """JSON as a ``serializer=``: values that are ``json.dumps``-able, stored as compact
    UTF-8; what comes back is what JSON keeps (tuples come back as lists, dict keys as
    str). Unlike pickle, loading runs no code: use it when others can write to the Redis.
    """

    def dumps(self, obj: Any, /) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode()

    def loads(self, data: bytes, /) -> Any:
        return json.loads(data)

    def __repr__(self) -> str:
        return "JSONSerializer()"


# ---- keys ------------------------------------------------------------------------------

def _tag(obj: Any, out: list[str]) -> None:
    """The tagged text of a key: deterministic across processes (no hashes, no
    addresses), one text per value and type, and readable back (``_untag``)."""
    if obj is None:
        out.append("N")
    elif obj is True or obj is False:
        out.append("T" if obj else "F")
    elif isinstance(obj, int):
        out.append(f"i{int(obj)};")
    elif isinstance(obj, float):
        out.append(f"f{float(obj)!r};")
    elif isinstance(obj, str):
        out.append(f"s{len(obj)}:{obj}")
    elif isinstance(obj, bytes):
        out.append(f"b{len(obj)}:{obj.decode('latin-1')}")
    elif isinstance(obj, tuple):
        out.append("(")
        for item in obj:
            _tag(item, out)
        out.append(")")
    elif isinstance(obj, frozenset):
        items = []
        for item in obj:
            sub: list[str] = []
            _tag(item, sub)
            items.append("".join(sub))
        out.append("{" + "".join(sorted(items)) + "}")
    elif isinstance(obj, type):
        name = f"{obj.__module__}:{obj.__qualname__}"
        out.append(f"t{len(name)}:{name}")
    else:
        raise TypeError(
            f"a TieredCache key must be str, bytes, int, float, bool, None, a type, or a "
            f"tuple or frozenset of those (a memoized call's key is a tuple of its "
            f"arguments), not {type(obj).__name__!r}: pass key= a function that builds one")


def _untag(text: str, pos: int) -> tuple[Any, int]:
    tag = text[pos]
    pos += 1
    if tag == "N":
        return None, pos
    if tag in "TF":
        return tag == "T", pos
    if tag in "if":
        end = text.index(";", pos)
        return (int if tag == "i" else float)(text[pos:end]), end + 1
    if tag in "sbt":
        colon = text.index(":", pos)
        end = colon + 1 + int(text[pos:colon])
        raw = text[colon + 1:end]
        if end > len(text):
            raise ValueError("truncated")
        if tag == "s":
            return raw, end
        if tag == "b":
            return raw.encode("latin-1"), end
        module, _, qualname = raw.partition(":")
        obj: Any = sys.modules[module]
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj, end
    if tag in "({":
        close = ")" if tag == "(" else "}"
        items = []
        while text[pos] != close:
            item, pos = _untag(text, pos)
            items.append(item)
        return (tuple(items) if tag == "(" else frozenset(items)), pos + 1
    raise ValueError(f"unknown tag {tag!r}")


def redis_key(namespace: str, key: Any) -> bytes:
    """The Redis key that holds ``key`` in ``namespace``: ``b"<namespace>:<key>"`` for a str
    key that does not start with ``#`` (readable by anyone: ``prices:EUR/A1``), else
    ``b"<namespace>:#<tagged text>"`` (``prices:#(s2:A1i3;)`` for ``("A1", 3)``); UTF-8.

    Keys of different types are different keys, even where Python finds them equal (``1``,
    ``1.0`` and ``True``); raises TypeError for a key of another type (``_tag`` lists them).
    """
    if isinstance(key, str) and not key.startswith("#"):
        text = key
    else:
        out = ["#"]
        _tag(key, out)
        text = "".join(out)
    return f"{namespace}:{text}".encode("utf-8", "surrogatepass")


def _key_of(prefix: bytes, rkey: bytes) -> Any:
    text = rkey[len(prefix):].decode("utf-8", "surrogatepass")
    if not text.startswith("#"):
        return text
    try:
        key, end = _untag(text, 1)
        if end != len(text):
            raise ValueError("trailing text")
    except (ValueError, IndexError, KeyError, AttributeError) as exc:
        raise ValueError(f"Redis key {rkey!r} is under the namespace but was not written by "
                         f"a TieredCache ({exc})") from None
    return key


def _options(command: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A yielded command's arguments and redis-py options (replies never decoded)."""
    from redis.client import NEVER_DECODE

    if command and isinstance(command[-1], dict):
        return command[:-1], {NEVER_DECODE: True, **command[-1]}
    return command, {NEVER_DECODE: True}


def _glob_escape(text: bytes) -> bytes:
    out = bytearray()
    for byte in text:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


# ---- the local copy and its consistency ------------------------------------------------

class _Expiring:
    """An L1 value with the time (``time.monotonic()``) its Redis key expires; its size is
    the payload's, so the L1's default byte accounting stays exact."""

    __slots__ = ("payload", "deadline")

    def __init__(self, payload: bytes, deadline: float) -> None:
        self.payload = payload
        self.deadline = deadline

    def __sizeof__(self) -> int:
        return object.__sizeof__(self) + sys.getsizeof(self.payload)


class _Pending:
    """One command in flight whose reply may be stored in the L1, unless marked stale."""

    __slots__ = ("rkey", "stale")

    def __init__(self, rkey: bytes, stale: bool) -> None:
        self.rkey = rkey
        self.stale = stale


class _Local:
    """The L1 and the state that keeps it consistent, shared by the caller's threads (or
    the event loop) and the listener. Every L1 access holds ``lock``; nothing under it
    blocks or runs user code beyond the L1's own operations."""

    def __init__(self, l1: MutableMapping[bytes, Any]) -> None:
        self.l1 = l1
        self.lock = threading.Lock()
        self.pending: dict[bytes, list[_Pending]] = {}
        self.live = False             # tracking established: the L1 may be used
        self.invalidations = 0        # L1 entries dropped by Redis's word or tracking loss
        self.redis_hits = 0
        self.redis_misses = 0
        self.on_invalidate: Optional[Any] = None   # tests and the bench: f(rkeys) after

    def lookup(self, rkey: bytes) -> Optional[bytes]:
        """The payload held locally, or None (a local miss: go to Redis)."""
        with self.lock:
            if not self.live:
                return None
            held = self.l1.get(rkey)
            if held is None:
                return None
            if type(held) is _Expiring:
                if time.monotonic() < held.deadline:
                    return held.payload
                self.l1.pop(rkey, None)
                return None
            return held   # type: ignore[no-any-return]

    def begin(self, rkey: bytes, write: bool = False) -> _Pending:
        """A command on ``rkey`` is about to be sent. A write first drops the local copy
        and marks the reads of ``rkey`` in flight stale (they may return the old value)."""
        with self.lock:
            if write:
                self.l1.pop(rkey, None)
                for other in self.pending.get(rkey, ()):
                    other.stale = True
            token = _Pending(rkey, not self.live)
            self.pending.setdefault(rkey, []).append(token)
            return token

    def finish(self, token: _Pending, payload: Optional[bytes] = None,
               deadline: Optional[float] = None, write: bool = False) -> None:
        """The command of ``token`` is done; store ``payload`` (its result) unless stale.

        Storing a reply marks the other commands in flight on its key stale (the first
        reply stored wins, so the L1 never goes back to an older value). A write marks
        them stale whatever it stores (a read in flight beside it may have been answered
        before it), and, when it stores nothing, drops what such a read stored meanwhile:
        after a write returns, the L1 holds its value or nothing."""
        with self.lock:
            rkey = token.rkey
            waiting = self.pending.get(rkey)
            if waiting is not None:
                waiting.remove(token)
                if not waiting:
                    del self.pending[rkey]
            store = payload is not None and not token.stale and self.live
            if store or write:
                for other in self.pending.get(rkey, ()):
                    other.stale = True
            if not store:
                if write:
                    self.l1.pop(rkey, None)
                return
            held: Any = payload if deadline is None else _Expiring(payload, deadline)
            try:
                self.l1[rkey] = held
            except ValueError:           # too large for the L1 alone: Redis has it
                self.l1.pop(rkey, None)

    def invalidate(self, rkeys: Optional[list[bytes]]) -> None:
        """Redis says these keys changed (None: all of them)."""
        with self.lock:
            if rkeys is None:
                self._drop_all()
            else:
                l1 = self.l1
                for rk in rkeys:
                    if l1.pop(rk, None) is not None:
                        self.invalidations += 1
                    for token in self.pending.get(rk, ()):
                        token.stale = True
        hook = self.on_invalidate
        if hook is not None:
            hook(rkeys)

    def _drop_all(self) -> None:
        self.invalidations += len(self.l1)
        self.l1.clear()
        for tokens in self.pending.values():
            for token in tokens:
                token.stale = True

    def set_live(self, live: bool) -> None:
        """Tracking is (re-)established, or lost: either way the L1 starts over empty."""
        with self.lock:
            self._drop_all()
            self.live = live


def _ttl_ms(ttl: Union[float, timedelta, None]) -> Optional[int]:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError(f"ttl must be a positive, finite number of seconds, not {ttl!r}")
    return max(1, math.ceil(seconds * 1000))


def _check_namespace(namespace: Any) -> bytes:
    if not isinstance(namespace, str) or not namespace:
        raise TypeError(f"namespace must be a non-empty str, not {namespace!r}")
    return f"{namespace}:".encode("utf-8", "surrogatepass")


def _check_client(client: Any, asynchronous: bool) -> None:
    want = "redis.asyncio.Redis" if asynchronous else "redis.Redis"
    what = "AsyncTieredCache" if asynchronous else "TieredCache"
    pool = getattr(client, "connection_pool", None)
    execute = getattr(client, "execute_command", None)
    if pool is None or not hasattr(pool, "connection_kwargs") or execute is None:
        raise TypeError(f"{what} needs a {want} (one server, with a connection pool), not "
                        f"{type(client).__name__!r}")
    if inspect.iscoroutinefunction(execute) != asynchronous:
        raise TypeError(f"{what} needs a {want}, not {type(client).__module__}."
                        f"{type(client).__name__}")


def _tracking_kwargs(client: Any, prefix: bytes) -> tuple[Any, dict[str, Any]]:
    """The connection class and arguments of the tracking connection: the client's own
    (host, credentials, db, TLS), RESP3, raw bytes, no read timeout (the listener has its
    own), named ``memleash-tracking:<namespace>`` in ``CLIENT LIST``."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    for name in ("cache", "cache_config"):
        kwargs.pop(name, None)
    name = "memleash-tracking:" + prefix[:-1].decode("utf-8", "replace").replace(" ", "_")
    kwargs.update(protocol=3, decode_responses=False, socket_timeout=None, client_name=name)
    return pool.connection_class, kwargs


class _Base(Generic[_K, _V]):
    """What both flavours share: configuration, keys, serialization, the L1."""

    def __init__(self, l1: MutableMapping[Any, Any], client: Any, *,
                 ttl: Union[float, timedelta, None], serializer: Serializer,
                 namespace: str, health_check_interval: float) -> None:
        if not isinstance(l1, MutableMapping):
            raise TypeError(f"l1 must be a mutable mapping (a memleash cache), not "
                            f"{type(l1).__name__!r}")
        if not (callable(getattr(serializer, "dumps", None))
                and callable(getattr(serializer, "loads", None))):
            raise TypeError("serializer must have dumps(obj) -> bytes and loads(bytes) -> obj")
        if not health_check_interval > 0:
            raise ValueError("health_check_interval must be positive")
        self._prefix = _check_namespace(namespace)
        self._namespace = namespace
        self._ttl = ttl
        self._px = _ttl_ms(ttl)
        self._serializer = serializer
        self._client = client
        self._interval = float(health_check_interval)
        self._local = _Local(l1)
        if len(l1):
            raise ValueError("l1 must be empty: it holds this cache's local copies only")
        if _counter(l1) is not None:
            raise ValueError("l1 is already the local copy of another TieredCache")
        _count_invalidations(l1, self)

    @property
    def l1(self) -> MutableMapping[Any, Any]:
        """The local cache: Redis key (bytes) -> serialized value (don't write to it)."""
        return self._local.l1

    @property
    def client(self) -> Any:
        """The Redis client the values are read from and written to."""
        return self._client

    @property
    def namespace(self) -> str:
        """The prefix of this cache's Redis keys (``<namespace>:``)."""
        return self._namespace

    @property
    def ttl(self) -> Union[float, timedelta, None]:
        """How long a value lives in Redis after it is written (None: until deleted)."""
        return self._ttl

    @property
    def serializer(self) -> Serializer:
        return self._serializer

    @property
    def invalidations(self) -> int:
        """Local copies dropped because Redis said their key changed, or tracking was lost
        (also in ``memleash.report()``, on the L1's row)."""
        return self._local.invalidations

    @property
    def redis_hits(self) -> int:
        """Reads the L1 missed and Redis answered."""
        return self._local.redis_hits

    @property
    def redis_misses(self) -> int:
        """Reads neither the L1 nor Redis could answer."""
        return self._local.redis_misses

    def redis_key(self, key: _K) -> bytes:
        """The Redis key of ``key`` (see ``memleash.tiered.redis_key``)."""
        return redis_key(self._namespace, key)

    def _rkey(self, key: Any) -> bytes:
        return redis_key(self._namespace, key)

    def _loads(self, payload: bytes) -> Any:
        return self._serializer.loads(payload)

    def _dumps(self, value: Any) -> bytes:
        data = self._serializer.dumps(value)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"serializer.dumps returned {type(data).__name__}, not bytes")
        return bytes(data)

    def _set_args(self, rkey: bytes, payload: bytes) -> tuple[Any, ...]:
        return ("SET", rkey, payload) if self._px is None else ("SET", rkey, payload,
                                                                "PX", self._px)

    @staticmethod
    def _deadline(sent: float, ttl_ms: Any) -> Optional[float]:
        """When a value stops being valid locally (``time.monotonic()``), sent to or read
        from Redis at ``sent`` with ``ttl_ms`` milliseconds to live there (``PTTL``: -1
        for none). Never after Redis expires it: its countdown starts after ``sent``, and
        the margin covers the drift of Redis's clock from ours over the ttl (0.1 %, 1 ms)."""
        if ttl_ms is None or ttl_ms == -1:
            return None
        ttl = max(int(ttl_ms), 0) / 1000
        return sent + ttl - ttl / 1000 - 0.001

    def _decode_key(self, rkey: Any) -> Any:
        return _key_of(self._prefix, bytes(rkey))

    # Each operation is a generator that yields the Redis command it needs (a tuple of
    # arguments, the last one a dict of redis-py options if need be, or a list of tuples:
    # one non-transactional pipeline) and receives the reply (raw bytes, never decoded);
    # TieredCache._run and AsyncTieredCache._run drive them, so both flavours share every
    # rule below.

    def _op_fetch(self, rkey: bytes) -> _Op:
        """The payload of ``rkey``: the local copy, else Redis's (kept locally)."""
        local = self._local
        payload = local.lookup(rkey)
        if payload is not None:
            return payload
        token = local.begin(rkey)
        deadline = None
        try:
            sent = time.monotonic()
            if self._px is None:
                payload = yield ("GET", rkey)
            else:
                payload, pttl = yield [("GET", rkey), ("PTTL", rkey)]
                deadline = self._deadline(sent, pttl)
        finally:
            local.finish(token, payload, deadline)
        if payload is None:
            local.redis_misses += 1
        else:
            local.redis_hits += 1
        return payload

    def _op_get(self, key: Any, default: Any) -> _Op:
        payload = yield from self._op_fetch(self._rkey(key))
        if payload is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return self._loads(payload)

    def _op_contains(self, key: Any) -> _Op:
        rkey = self._rkey(key)
        if self._local.lookup(rkey) is not None:
            return True
        return bool((yield ("EXISTS", rkey)))

    def _op_write(self, rkey: bytes, command: tuple[Any, ...],
                  payload: Optional[bytes] = None) -> _Op:
        """A change of ``rkey``: the local copy goes first (so this process reads its own
        write at once), then ``command``; ``payload``, if given, is kept locally after."""
        local = self._local
        token = local.begin(rkey, write=True)
        stored = None
        try:
            sent = time.monotonic()
            reply = yield command
            stored = payload
        finally:
            local.finish(token, stored, self._deadline(sent, self._px), write=True)
        return reply

    def _op_set(self, key: Any, value: Any) -> _Op:
        rkey = self._rkey(key)
        payload = self._dumps(value)
        yield from self._op_write(rkey, self._set_args(rkey, payload), payload)

    def _op_delete(self, key: Any) -> _Op:
        deleted = yield from self._op_write(self._rkey(key), ("DEL", self._rkey(key)))
        if not deleted:
            raise KeyError(key)

    def _op_pop(self, key: Any, default: Any) -> _Op:
        payload = yield from self._op_write(self._rkey(key), ("GETDEL", self._rkey(key)))
        if payload is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return self._loads(payload)

    def _op_setdefault(self, key: Any, default: Any) -> _Op:
        rkey = self._rkey(key)
        payload = self._dumps(default)
        local = self._local
        token = local.begin(rkey, write=True)
        stored = old = None
        try:
            sent = time.monotonic()
            old = yield (*self._set_args(rkey, payload), "NX", "GET", {"get": True})
            stored = payload if old is None else bytes(old)
        finally:
            # the value read back has an unknown remaining ttl: kept locally only untimed
            local.finish(token, stored if old is None or self._px is None else None,
                         self._deadline(sent, self._px), write=True)
        return default if old is None else self._loads(bytes(old))

    def _op_unlink(self, rkeys: list[bytes]) -> _Op:
        tokens = [self._local.begin(rk, write=True) for rk in rkeys]
        try:
            yield ("UNLINK", *rkeys)
        finally:
            for token in tokens:
                self._local.finish(token, write=True)

    @property
    def tracking(self) -> bool:
        """True while the tracking connection is up (the L1 in use)."""
        return self._local.live

    def __repr__(self) -> str:
        state = "tracking" if self._local.live else "not tracking (local copy unused)"
        return (f"<{type(self).__name__} {self._namespace!r}: {len(self._local.l1)} local "
                f"copies, {state}>")


# ---- the sync flavour ------------------------------------------------------------------

class _Listener(threading.Thread):
    """The tracking connection's reader: a daemon thread that never holds the cache alive
    (only its ``_Local``). Reconnects with backoff; stopped by ``TieredCache.close()`` or
    when the cache is collected."""

    def __init__(self, local: _Local, client: Any, prefix: bytes, interval: float) -> None:
        super().__init__(name=f"memleash TieredCache {prefix[:-1]!r} tracking", daemon=True)
        self.local = local
        self.connection_class, self.kwargs = _tracking_kwargs(client, prefix)
        self.prefix = prefix
        self.interval = interval
        self.stopping = threading.Event()
        self.first_attempt = threading.Event()
        self.error: Optional[BaseException] = None
        self.conn: Any = None

    def _on_push(self, message: Any) -> Any:
        kind = message[0]
        if kind in (b"invalidate", "invalidate"):
            self.local.invalidate(message[1])
        return _PUSH

    def _connect(self) -> Any:
        conn = self.connection_class(**self.kwargs)
        conn.connect()
        conn._parser.set_invalidation_push_handler(self._on_push)
        conn.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self.prefix)
        reply = conn.read_response()
        if reply not in (b"OK", "OK"):
            raise RuntimeError(f"CLIENT TRACKING answered {reply!r}")
        return conn

    def run(self) -> None:
        from redis.exceptions import ConnectionError, TimeoutError

        backoff = 0.05
        while not self.stopping.is_set():
            try:
                self.conn = self._connect()
            except Exception as exc:   # noqa: BLE001 (told to the first caller, retried)
                self.error = exc
                self.first_attempt.set()
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            self.error = None
            backoff = 0.05
            self.local.set_live(True)
            self.first_attempt.set()
            pinged = False
            try:
                while not self.stopping.is_set():
                    try:
                        reply = self.conn.read_response(push_request=True,
                                                        timeout=self.interval,
                                                        disconnect_on_error=False)
                    except TimeoutError:
                        if pinged:
                            raise ConnectionError("no answer to the health check") from None
                        self.conn.send_command("PING")
                        pinged = True
                        continue
                    if reply is not _PUSH:
                        pinged = False
            except Exception:   # noqa: BLE001 (the connection is gone: start over)
                pass
            finally:
                self.local.set_live(False)
                conn, self.conn = self.conn, None
                try:
                    conn.disconnect()
                except Exception:   # noqa: BLE001
                    pass

    def stop(self) -> None:
        self.stopping.set()
        conn = self.conn
        if conn is not None:
            try:
                conn.disconnect()   # wakes the blocked read
            except Exception:   # noqa: BLE001
                pass
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=5)


_PUSH = object()   # what the tracking connection's push handler answers


def _stop_listener(listener: Optional[_Listener]) -> None:
    if listener is not None:
        listener.stop()


class TieredCache(_Base[_K, _V], MutableMapping[_K, _V]):
    """A ``MutableMapping`` over a shared Redis with a memleash cache in front (sync).

    ``TieredCache(l1, client, *, ttl=None, serializer=pickle, namespace)``:

    - ``l1``: an empty memleash cache (``LRUCache(maxsize, max_bytes=...)``, any
      ``MutableMapping``) that only this object uses: it holds ``Redis key -> serialized
      value``, so ``max_bytes`` bounds the bytes of the local copies exactly;
    - ``client``: a ``redis.Redis`` (any protocol, any ``decode_responses``): values go
      through it; a connection of its own (same host, credentials, db) carries tracking;
    - ``ttl``: seconds (or a ``timedelta``) a value lives in Redis after it is written
      (``SET ... PX``); local copies never outlive their Redis key (a read asks ``PTTL``
      too); None: until deleted or evicted;
    - ``serializer``: ``dumps(obj) -> bytes`` / ``loads(bytes) -> obj``. The default,
      ``pickle``, trusts the Redis: ``loads`` runs whatever code the stored bytes say,
      so anyone who can write to the namespace can run code in every process reading it.
      ``JSONSerializer()`` runs none (and keeps only JSON's types);
    - ``namespace``: the prefix of the Redis keys (``<namespace>:<key>``, see
      ``redis_key``); required, so two caches never share keys by accident.

    Reads look in the L1, then in Redis (storing what Redis has in the L1); writes and
    deletes go to Redis, then to the L1. Another process's write or delete reaches this
    L1 through Redis's client tracking (see the module's docstring and docs/redis.md for
    the guarantees and the measured delay). ``len()``, iteration and ``clear()`` scan the
    namespace in Redis (``SCAN``: O(keys in the database)). ``setdefault`` (``SET NX
    GET``) and ``pop`` (``GETDEL``) are atomic in Redis.

    Memoization shared across processes: ``memleash.cached(tc, condition=threading.
    Condition())`` runs a missing key once per process (hits take no lock: every operation
    here is thread-safe), and ``acached`` over an ``AsyncTieredCache``.

    Redis errors (``redis.ConnectionError``, ...) propagate from every operation. The
    tracking connection starts on first use (waiting up to ``connect_timeout`` seconds for
    it) and stops with ``close()``, ``with``, or when the cache is collected; while it is
    down the L1 is not used. The L1's row in ``memleash.report()`` counts the local hits,
    misses and invalidations.
    """

    #: every operation is atomic and thread-safe: memleash.cached(..., condition=) looks
    #: it up without holding the condition's lock (only misses coordinate)
    _ml_atomic = True

    def __init__(self, l1: MutableMapping[Any, Any], client: Any, *,
                 ttl: Union[float, timedelta, None] = None,
                 serializer: Serializer = pickle,   # type: ignore[assignment]
                 namespace: str, health_check_interval: float = HEALTH_CHECK_INTERVAL,
                 connect_timeout: float = 5.0) -> None:
        _check_client(client, asynchronous=False)
        super().__init__(l1, client, ttl=ttl, serializer=serializer, namespace=namespace,
                         health_check_interval=health_check_interval)
        self._connect_timeout = connect_timeout
        self._listener: Optional[_Listener] = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._finalizer: Optional[weakref.finalize] = None

    def _start(self) -> None:
        if self._listener is not None:
            return
        with self._start_lock:
            if self._closed:
                raise RuntimeError("TieredCache is closed")
            if self._listener is None:
                listener = _Listener(self._local, self._client, self._prefix, self._interval)
                listener.start()
                self._finalizer = weakref.finalize(self, _stop_listener, listener)
                self._listener = listener
                listener.first_attempt.wait(self._connect_timeout)

    def _run(self, op: _Op) -> Any:
        """Runs an operation of _Base: its commands through the client, raw replies."""
        from redis.client import NEVER_DECODE

        self._start()
        client = self._client
        try:
            command = next(op)
            while True:
                try:
                    if isinstance(command, list):
                        with client.pipeline(transaction=False) as pipe:
                            for args in command:
                                pipe.execute_command(*args, **{NEVER_DECODE: True})
                            reply = pipe.execute()
                    else:
                        args, options = _options(command)
                        reply = client.execute_command(*args, **options)
                except BaseException as exc:
                    command = op.throw(exc)
                else:
                    command = op.send(reply)
        except StopIteration as stop:
            return stop.value

    def __getitem__(self, key: _K) -> _V:
        return self._run(self._op_get(key, _MISSING))   # type: ignore[no-any-return]

    def get(self, key: _K, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        return self._run(self._op_get(key, default))

    def __contains__(self, key: object) -> bool:
        return self._run(self._op_contains(key))   # type: ignore[no-any-return]

    def __setitem__(self, key: _K, value: _V) -> None:
        self._run(self._op_set(key, value))

    def __delitem__(self, key: _K) -> None:
        self._run(self._op_delete(key))

    def pop(self, key: _K, default: Any = _MISSING) -> Any:
        """Removes ``key`` and returns its value (Redis ``GETDEL``: atomic); ``default``
        if absent, else KeyError."""
        return self._run(self._op_pop(key, default))

    def setdefault(self, key: _K, default: Any = None) -> Any:
        """The value of ``key``; if absent, stores ``default`` first and returns it.
        Atomic across processes (Redis ``SET NX GET``): the first value stored wins."""
        return self._run(self._op_setdefault(key, default))

    def _scan(self) -> Iterator[bytes]:
        match = _glob_escape(self._prefix) + b"*"
        for rkey in self._client.scan_iter(match=match, count=1000):
            yield rkey if isinstance(rkey, bytes) else rkey.encode("utf-8", "surrogatepass")

    def __iter__(self) -> Iterator[_K]:
        """The keys under the namespace in Redis (``SCAN``: a key present throughout is
        seen once; one added or removed meanwhile may or may not be)."""
        for rkey in self._scan():
            yield self._decode_key(rkey)

    def __len__(self) -> int:
        """How many keys the namespace has in Redis (``SCAN``: O(keys in the database))."""
        return sum(1 for _ in self._scan())

    def clear(self) -> None:
        """Deletes every key of the namespace from Redis (``SCAN``, ``UNLINK`` by 500)."""
        batch: list[bytes] = []
        for rkey in self._scan():
            batch.append(rkey)
            if len(batch) == 500:
                self._run(self._op_unlink(batch))
                batch = []
        if batch:
            self._run(self._op_unlink(batch))

    def close(self) -> None:
        """Stops the tracking connection and empties the L1 (the client stays open).
        Later operations raise RuntimeError."""
        with self._start_lock:
            self._closed = True
            listener, self._listener = self._listener, None
        if self._finalizer is not None:
            self._finalizer.detach()
        _stop_listener(listener)
        self._local.set_live(False)

    def __enter__(self) -> TieredCache[_K, _V]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- the asyncio flavour ---------------------------------------------------------------

class _AsyncListener:
    """The tracking connection's reader as an asyncio task on the loop of first use."""

    def __init__(self, local: _Local, client: Any, prefix: bytes, interval: float) -> None:
        self.local = local
        self.connection_class, self.kwargs = _tracking_kwargs(client, prefix)
        self.prefix = prefix
        self.interval = interval
        self.first_attempt = asyncio.Event()
        self.error: Optional[BaseException] = None
        self.conn: Any = None
        self.task: Optional[asyncio.Task[None]] = None

    async def _on_push(self, message: Any) -> Any:
        kind = message[0]
        if kind in (b"invalidate", "invalidate"):
            self.local.invalidate(message[1])
        return _PUSH

    async def _connect(self) -> Any:
        conn = self.connection_class(**self.kwargs)
        await conn.connect()
        conn._parser.set_invalidation_push_handler(self._on_push)
        await conn.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self.prefix)
        reply = await conn.read_response()
        if reply not in (b"OK", "OK"):
            raise RuntimeError(f"CLIENT TRACKING answered {reply!r}")
        return conn

    async def run(self) -> None:
        backoff = 0.05
        try:
            while True:
                try:
                    self.conn = await self._connect()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:   # noqa: BLE001 (told to the first caller, retried)
                    self.error = exc
                    self.first_attempt.set()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                self.error = None
                backoff = 0.05
                self.local.set_live(True)
                self.first_attempt.set()
                pinged = False
                try:
                    while True:
                        reply = await self.conn.read_response(push_request=True,
                                                              timeout=self.interval,
                                                              disconnect_on_error=False)
                        if reply is None:      # nothing for a whole interval
                            if pinged:
                                break          # no answer to the health check: start over
                            await self.conn.send_command("PING")
                            pinged = True
                        elif reply is not _PUSH:
                            pinged = False
                except asyncio.CancelledError:
                    raise
                except Exception:   # noqa: BLE001 (the connection is gone: start over)
                    pass
                finally:
                    self.local.set_live(False)
                    conn, self.conn = self.conn, None
                    try:
                        await conn.disconnect(nowait=True)
                    except Exception:   # noqa: BLE001
                        pass
        finally:
            self.local.set_live(False)


def _cancel_soon(loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]) -> None:
    try:
        loop.call_soon_threadsafe(task.cancel)
    except RuntimeError:    # the loop is closed: so is the task
        pass


class AsyncTieredCache(_Base[_K, _V]):
    """``TieredCache`` for asyncio, on a ``redis.asyncio.Redis``: no call blocks the loop.

    Same constructor, keys, L1, serializer and consistency as ``TieredCache`` (its
    tracking listener is an asyncio task on the loop of first use, where the cache must
    then be used). The operations are coroutines:

    ``await c.aget(key)`` (KeyError if absent), ``await c.get(key, default=None)``,
    ``await c.aset(key, value)``, ``await c.adelete(key)`` (KeyError if absent),
    ``await c.apop(key[, default])``, ``await c.asetdefault(key, default)``,
    ``await c.acontains(key)``, ``await c.alen()``, ``async for key in c.akeys()``,
    ``await c.aclear()``, ``await c.aclose()`` / ``async with c:``.

    ``memleash.acached(c)`` memoizes a coroutine function over it (``aget`` / ``aset``):
    one computation per missing key per process, the others await it. Only the L1 and
    deserialization run on the loop synchronously (a large value takes its
    ``loads`` time there).
    """

    def __init__(self, l1: MutableMapping[Any, Any], client: Any, *,
                 ttl: Union[float, timedelta, None] = None,
                 serializer: Serializer = pickle,   # type: ignore[assignment]
                 namespace: str, health_check_interval: float = HEALTH_CHECK_INTERVAL,
                 connect_timeout: float = 5.0) -> None:
        _check_client(client, asynchronous=True)
        super().__init__(l1, client, ttl=ttl, serializer=serializer, namespace=namespace,
                         health_check_interval=health_check_interval)
        self._connect_timeout = connect_timeout
        self._listener: Optional[_AsyncListener] = None
        self._closed = False

    async def _start(self) -> None:
        listener = self._listener
        if listener is None:
            if self._closed:
                raise RuntimeError("AsyncTieredCache is closed")
            listener = self._listener = _AsyncListener(self._local, self._client,
                                                       self._prefix, self._interval)
            loop = asyncio.get_running_loop()
            listener.task = loop.create_task(
                listener.run(), name=f"memleash AsyncTieredCache {self._namespace!r} tracking")
            # a cache dropped without aclose() stops its task (the task holds no cache)
            weakref.finalize(self, _cancel_soon, loop, listener.task)
        if not listener.first_attempt.is_set():
            try:
                await asyncio.wait_for(listener.first_attempt.wait(), self._connect_timeout)
            except asyncio.TimeoutError:
                pass

    async def _run(self, op: _Op) -> Any:
        """Runs an operation of _Base: its commands through the client, raw replies."""
        from redis.client import NEVER_DECODE

        await self._start()
        client = self._client
        try:
            command = next(op)
            while True:
                try:
                    if isinstance(command, list):
                        async with client.pipeline(transaction=False) as pipe:
                            for args in command:
                                pipe.execute_command(*args, **{NEVER_DECODE: True})
                            reply = await pipe.execute()
                    else:
                        args, options = _options(command)
                        reply = await client.execute_command(*args, **options)
                except BaseException as exc:
                    command = op.throw(exc)
                else:
                    command = op.send(reply)
        except StopIteration as stop:
            return stop.value

    async def aget(self, key: _K, default: Any = _MISSING) -> Any:
        """The value of ``key``; ``default`` if absent, else KeyError."""
        return await self._run(self._op_get(key, default))

    async def get(self, key: _K, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        return await self._run(self._op_get(key, default))

    async def acontains(self, key: _K) -> bool:
        """Whether ``key`` is there (locally, or ``EXISTS`` in Redis)."""
        return await self._run(self._op_contains(key))   # type: ignore[no-any-return]

    async def aset(self, key: _K, value: _V) -> None:
        """Stores ``value`` under ``key`` in Redis, then locally."""
        await self._run(self._op_set(key, value))

    async def adelete(self, key: _K) -> None:
        """Deletes ``key``; KeyError if it was absent."""
        await self._run(self._op_delete(key))

    async def apop(self, key: _K, default: Any = _MISSING) -> Any:
        """Removes ``key`` and returns its value (``GETDEL``); ``default`` if absent,
        else KeyError."""
        return await self._run(self._op_pop(key, default))

    async def asetdefault(self, key: _K, default: Any = None) -> Any:
        """As ``TieredCache.setdefault`` (``SET NX GET``: the first value stored wins)."""
        return await self._run(self._op_setdefault(key, default))

    async def _scan(self) -> AsyncIterator[bytes]:
        match = _glob_escape(self._prefix) + b"*"
        async for rkey in self._client.scan_iter(match=match, count=1000):
            yield rkey if isinstance(rkey, bytes) else rkey.encode("utf-8", "surrogatepass")

    async def akeys(self) -> AsyncIterator[_K]:
        """The keys under the namespace in Redis (``SCAN``)."""
        async for rkey in self._scan():
            yield self._decode_key(rkey)

    async def alen(self) -> int:
        """How many keys the namespace has in Redis (``SCAN``: O(keys in the database))."""
        n = 0
        async for _ in self._scan():
            n += 1
        return n

    async def aclear(self) -> None:
        """Deletes every key of the namespace from Redis (``SCAN``, ``UNLINK`` by 500)."""
        batch: list[bytes] = []
        async for rkey in self._scan():
            batch.append(rkey)
            if len(batch) == 500:
                await self._run(self._op_unlink(batch))
                batch = []
        if batch:
            await self._run(self._op_unlink(batch))

    @property
    def currsize(self) -> int:
        """Local copies held (``cache_info().currsize`` under ``acached``); the keys in
        Redis are counted by ``await alen()``."""
        return len(self._local.l1)

    async def aclose(self) -> None:
        """Stops the tracking task and empties the L1 (the client stays open)."""
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None and listener.task is not None:
            listener.task.cancel()
            try:
                await listener.task
            except asyncio.CancelledError:
                pass
        self._local.set_live(False)

    async def __aenter__(self) -> AsyncTieredCache[_K, _V]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
