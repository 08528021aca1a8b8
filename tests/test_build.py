"""Building from source: what a user without xxHash's header is told (setup.py)."""

import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _build(tmp_path, **env):
    """setup.py build_ext in a copy of the sources; gcc's --sysroot hides /usr/include."""
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tmp_path)
    shutil.copytree(ROOT / "csrc", tmp_path / "csrc")
    shutil.copytree(ROOT / "pkg", tmp_path / "pkg", ignore=shutil.ignore_patterns("*.so"))
    base = {k: v for k, v in os.environ.items() if k != "HOMEBREW_PREFIX"}
    env = dict(base, CC=f"gcc --sysroot={tmp_path / 'empty'}", **env)
    return subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_a_build_without_xxhash_h_says_what_to_install(tmp_path):
    out = _build(tmp_path)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert lines[-1] == (
        "error: memleash: building from source needs xxHash's header xxhash.h, not found by "
        "gcc: install libxxhash-dev (Debian/Ubuntu), xxhash-devel (Fedora) or xxhash (macOS: "
        "brew install xxhash), or set CPPFLAGS=-I<directory of xxhash.h>")
    assert "fatal error" not in out.stderr and "xxhash.h: No such file" not in out.stderr


def test_xxhash_h_under_homebrews_prefix_is_used(tmp_path):
    brew = tmp_path / "brew"
    (brew / "include").mkdir(parents=True)
    (brew / "include" / "xxhash.h").write_text("/* stands in for Homebrew's */\n")
    out = _build(tmp_path, HOMEBREW_PREFIX=str(brew))
    # found there, so the compilation itself starts (and then fails: the sysroot is empty)
    assert "needs xxHash's header" not in out.stderr
    assert f"-I{brew / 'include'}" in out.stdout   # the compiler's command line
