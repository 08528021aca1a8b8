"""No reference or memory leaks over many mixed operations (isolated subprocess)."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.leaks
def test_mixed_cache_operations_leak_nothing():
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "isolated", "refleak_cache.py"), HERE, "100000"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
