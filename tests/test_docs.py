"""Every Python example in the README and docs/ runs (and its assertions hold)."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# docs/redis.md's examples talk to a server: tests/test_redis_docs.py runs them (with
# make test-redis), where REDIS_URL names one
PAGES = [ROOT / "README.md",
         *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "redis.md")]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks():
    for page in PAGES:
        for n, match in enumerate(FENCE.finditer(page.read_text()), 1):
            yield pytest.param(match.group(1), id=f"{page.name}-{n}")


def test_docs_have_examples():
    assert len(list(blocks())) >= 4


@pytest.mark.parametrize("code", blocks())
def test_example_runs(code):
    exec(compile(code, "<doc example>", "exec"), {"__name__": "__doc_example__"})
