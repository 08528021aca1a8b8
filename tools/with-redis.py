#!/usr/bin/env python3
"""tools/with-redis.py CMD...: run CMD with a redis-server of its own, then stop the server.

The server listens on a free loopback port (127.0.0.1), keeps nothing on disk (--save '',
--appendonly no) and is stopped when CMD ends, however it ends (SHUTDOWN NOSAVE, then
SIGTERM and SIGKILL to its pid if it lingers; on SIGINT/SIGTERM too). CMD gets

    REDIS_URL=redis://127.0.0.1:PORT/0
    MEMLEASH_REDIS_SERVER="redis-server 8.0.2 (Debian 13 root)"   # what was started

and its exit status is this script's. Where the server comes from, first found:

1. $MEMLEASH_REDIS_SERVER_BIN, a redis-server binary of this machine's;
2. a redis-server on PATH of version 7.4 or newer (a Debian 13 machine has 8.0.2);
3. the Debian 13 root (tools/ensure-root.sh trixie, cached under
   ${MEMLEASH_CACHE:-~/.cache/memleash}/roots; tools/in-root.sh runs redis-server 8.0.2
   there: the network namespace is this machine's, so the port is reachable here);
4. a redis-server on PATH of an older version (Debian 12's 7.0.15): TieredCache's tests
   run against it, memleash.redis.ClientCache's skip with the reason (redis-py's
   client-side cache refuses servers older than 7.4).

Without any, it fails and says so. Only the standard library: it runs before the venv.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MIN_CLIENT_CACHE = (7, 4)
# the server's own log (its start-up warnings), shown only when it fails to start
LOG = tempfile.TemporaryFile()


def log(msg: str) -> None:
    print(f"with-redis: {msg}", file=sys.stderr, flush=True)


def version_of(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0,)


def candidates() -> list[tuple[list[str], str]]:
    """(command prefix, description) of the servers to try, best first."""
    found = []
    own = os.environ.get("MEMLEASH_REDIS_SERVER_BIN")
    if own:
        found.append(([own], f"{own} (MEMLEASH_REDIS_SERVER_BIN)"))
    local = shutil.which("redis-server")
    if local and version_of(local) >= MIN_CLIENT_CACHE:
        found.append(([local], f"{local} (this machine's)"))
    if os.geteuid() == 0:
        found.append(([os.path.join(HERE, "in-root.sh"), "trixie", "redis-server"],
                      "the Debian 13 root (tools/in-root.sh trixie)"))
    if local and version_of(local) < MIN_CLIENT_CACHE:
        found.append(([local], f"{local} (this machine's, older than 7.4)"))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(port: int, *args: str, timeout: float = 2.0) -> bytes:
    """One command over RESP2; the raw reply (enough for PING, INFO and SHUTDOWN)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"".join([f"*{len(args)}\r\n".encode()]
                           + [f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args]))
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            chunks.append(data)
            reply = b"".join(chunks)
            if reply[:1] in b"+-:" and reply.endswith(b"\r\n"):
                return reply
            if reply[:1] == b"$":
                head, _, rest = reply.partition(b"\r\n")
                if len(rest) >= int(head[1:]) + 2:
                    return reply
        return b"".join(chunks)


def start(prefix: list[str], port: int) -> tuple[subprocess.Popen[bytes], int] | None:
    """The server's wrapper process and the server's own pid, or None if it never answered."""
    if prefix[0].endswith("in-root.sh"):
        # a cold root is built first (minutes: docs/environments.md), outside the wait below
        if subprocess.run([os.path.join(HERE, "ensure-root.sh"), prefix[1]],
                          stdout=subprocess.DEVNULL).returncode != 0:
            return None
    proc = subprocess.Popen([*prefix, "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--daemonize", "no",
                             "--loglevel", "warning"],
                            stdin=subprocess.DEVNULL, stdout=LOG, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            if command(port, "PING").startswith(b"+PONG"):
                info = command(port, "INFO", "server").decode()
                pid = int(re.search(r"process_id:(\d+)", info).group(1))
                return proc, pid
        except OSError:
            pass
        time.sleep(0.05)
    stop(proc, None, port)
    return None


def stop(proc: subprocess.Popen[bytes], pid: int | None, port: int) -> None:
    try:
        command(port, "SHUTDOWN", "NOSAVE", timeout=1.0)
    except OSError:
        pass
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None and pid is not None:
            try:
                os.kill(pid, sig)       # the server itself: in-root.sh waits for it
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    servers = candidates()
    if not servers:
        log("no redis-server: none on PATH, and the Debian 13 root needs root "
            "(tools/ensure-root.sh trixie); apt-get install redis-server gives Debian's")
        return 1
    started = None
    for prefix, where in servers:
        for _ in range(3):          # a port taken meanwhile: another one
            port = free_port()
            started = start(prefix, port)
            if started:
                break
        if started:
            break
        LOG.seek(0)
        log(f"{where}: did not start; its log:\n{LOG.read().decode(errors='replace')}")
    if not started:
        log("no redis-server could be started")
        return 1
    proc, pid = started
    info = command(port, "INFO", "server").decode()
    version = re.search(r"redis_version:(\S+)", info).group(1)
    desc = f"redis-server {version} from {where}"
    log(f"{desc} on 127.0.0.1:{port}, pid {pid}")

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    env = dict(os.environ, REDIS_URL=f"redis://127.0.0.1:{port}/0",
               MEMLEASH_REDIS_SERVER=desc)
    rc = 1
    try:
        rc = subprocess.call(argv, env=env)
    except KeyboardInterrupt:
        rc = 130
    finally:
        stop(proc, pid, port)
        log(f"stopped redis-server (pid {pid})")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
