"""Every Python example of docs/redis.md runs against the test server (REDIS_URL; see
tests/redis_server.py), and its assertions hold. tests/test_docs.py runs the other pages'."""

from __future__ import annotations

import pathlib
import re

import pytest

from redis_server import csc_url, redis_url, server_version  # noqa: F401

PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "redis.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
BLOCKS = [m.group(1) for m in FENCE.finditer(PAGE.read_text())]


def test_the_page_has_its_examples():
    assert len(BLOCKS) == 3


@pytest.mark.parametrize("code", BLOCKS, ids=[f"redis.md-{n}" for n in range(1, len(BLOCKS) + 1)])
def test_example_runs(code, csc_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", csc_url)
    import redis

    redis.Redis.from_url(csc_url).flushdb()      # the examples' keys start from nothing
    exec(compile(code, str(PAGE), "exec"), {"__name__": "__doc_example__"})
