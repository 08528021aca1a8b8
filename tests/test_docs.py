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


# Examples that leak on purpose, to show what the tracker reports (make test-plugin runs
# them with leaks="ignore"): the README's unclosed Connection, tracker.md's dropped Sessions
LEAK_ON_PURPOSE = {"README.md": "memleash.open_resources()", "tracker.md": "login(name)"}


def blocks():
    for page in PAGES:
        for n, match in enumerate(FENCE.finditer(page.read_text()), 1):
            code = match.group(1)
            marks = ([pytest.mark.memleash(leaks="ignore")]
                     if LEAK_ON_PURPOSE.get(page.name, "\0") in code else [])
            yield pytest.param(code, id=f"{page.name}-{n}", marks=marks)


def test_docs_have_examples():
    assert len(list(blocks())) >= 4


@pytest.mark.parametrize("code", blocks())
def test_example_runs(code):
    exec(compile(code, "<doc example>", "exec"), {"__name__": "__doc_example__"})
