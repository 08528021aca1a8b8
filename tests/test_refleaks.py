"""No reference or memory leaks over many mixed operations (isolated subprocesses)."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.leaks
@pytest.mark.parametrize("script", ["refleak_cache.py", "refleak_emitter.py", "refleak_decorators.py",
                                    "refleak_acached.py", "refleak_tracker.py"])
def test_mixed_operations_leak_nothing(script):
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "isolated", script), HERE, "100000"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
