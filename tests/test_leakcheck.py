"""The measuring loop of the isolated leak scripts (tests/isolated/leakcheck.py) on rounds
made up for it, in subprocesses (it starts tracemalloc): what CPython's type attribute
cache holds is no leak, and a leak is one still.

The round below does, from Python, what asyncio's C task wakeup does once per gather()
(PyObject_CallMethod(fut, "result", NULL)): it looks attributes up by names made afresh,
which the type cache keeps alive, each at its own slot (tests/isolated/leakcheck.py
tells the story). 64 such names a round leave 36 to 65 blocks a round on 3.11 to 3.14
while the cache is not cleared: more than the 10-block floor in every window."""

import os
import subprocess
import sys
import textwrap

import pytest

ISOLATED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "isolated")

SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import leakcheck

    LEAKED = []
    POOLED = ["p%d" % i for i in range(4)]

    def one_round():
        cls = type("Fresh", (), {"result": lambda self: 0})   # a new version tag
        obj = cls()
        names = ["name%d" % i for i in range(64)]   # new objects, not interned
        for name in names:
            getattr(obj, name, None)
        getattr(obj, "".join(["res", "ult"]))()
        LEAKED.extend(str(i) * 20 for i in range(int(sys.argv[2])))

    sys.exit(leakcheck.run(one_round, POOLED, 4, 10, 4096))
""")


def run_rounds(leaked_per_round):
    # the check counts the interpreter's allocated blocks, which only pymalloc keeps: the
    # ASan runs' PYTHONMALLOC=malloc would leave it nothing to count
    env = {k: v for k, v in os.environ.items() if k != "PYTHONMALLOC"}
    return subprocess.run([sys.executable, "-c", SCRIPT, ISOLATED, str(leaked_per_round)],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.leaks
def test_names_the_type_cache_holds_are_no_leak():
    proc = run_rounds(0)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.leaks
def test_a_leak_beside_them_still_fails_every_window():
    proc = run_rounds(16)   # 16 strings a round, kept: one block each
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "memory grows in every round in each of 5 windows" in proc.stdout, proc.stdout
    assert proc.stdout.count("allocated-block deltas") == 5, proc.stdout
