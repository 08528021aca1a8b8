"""How the Redis tests find their server (tests/test_redis*.py import these fixtures).

- ``REDIS_URL`` names it. ``make test-redis`` sets it: tools/with-redis.py starts
  redis-server 8.0.2 from the Debian 13 root (or this machine's, if 7.4 or newer; else an
  older one, with which the ClientCache tests skip) on a free loopback port and stops it
  after.
- Without ``REDIS_URL`` (``make test``, a bare ``pytest``), the tests that need a server
  skip, saying so; the others (ClientCache's logic on synthetic entries, key encoding) run.
- ``MEMLEASH_REDIS_REQUIRE=1`` (CI's ``make test-redis``) turns every such skip into a
  failure: in CI these tests run.
- A ``REDIS_URL`` that does not answer fails the tests (never a skip).
"""

from __future__ import annotations

import os
import uuid

import pytest

REQUIRE = os.environ.get("MEMLEASH_REDIS_REQUIRE") == "1"


def absent(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (MEMLEASH_REDIS_REQUIRE=1: these tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a running server (make test-redis sets REDIS_URL)."""
    url = os.environ.get("REDIS_URL")
    if not url:
        absent("no Redis server: REDIS_URL is not set (`make test-redis` starts redis-server 8 "
               "and runs these)")
    import redis

    try:
        redis.Redis.from_url(url).ping()
    except redis.RedisError as exc:
        pytest.fail(f"REDIS_URL={url} does not answer: {exc}")
    return url   # type: ignore[return-value]


@pytest.fixture(scope="session")
def server_version(redis_url: str) -> tuple[int, ...]:
    import redis

    info = redis.Redis.from_url(redis_url).info("server")
    return tuple(int(x) for x in str(info["redis_version"]).split(".")[:3])


@pytest.fixture
def csc_url(redis_url: str, server_version: tuple[int, ...]) -> str:
    """A server redis-py's client-side cache accepts (7.4 or newer)."""
    if server_version < (7, 4):
        absent(f"redis-server {'.'.join(map(str, server_version))} "
               f"({os.environ.get('MEMLEASH_REDIS_SERVER', REDIS_URL_HINT)}) is older than "
               f"7.4: redis-py's client-side cache refuses it (it checks the handshake for "
               f"server name 'redis' and version >= 7.4.0)")
    return redis_url


REDIS_URL_HINT = "from REDIS_URL"


@pytest.fixture
def ns() -> str:
    """A namespace (key prefix) no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"
