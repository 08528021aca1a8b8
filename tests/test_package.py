"""The package's public surface: names, stub, typing marker, version, import errors."""

import ast
import importlib.machinery
import importlib.metadata
import os
import pathlib
import platform
import re
import subprocess
import sys

import memleash

PKG = pathlib.Path(memleash.__file__).parent


def _stub_all():
    tree = ast.parse((PKG / "__init__.pyi").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "__all__":
            return ast.literal_eval(node.value)
    raise AssertionError("no __all__ in the stub")


def test_stub_lists_the_public_names():
    assert sorted(_stub_all()) == sorted(memleash.__all__)


def test_every_public_name_exists():
    for name in memleash.__all__:
        assert getattr(memleash, name).__module__.startswith("memleash")


def test_package_is_typed():
    assert (PKG / "py.typed").exists()


ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_version_has_one_source():
    """__version__ is the version: pyproject reads it, the changelog's newest entry is it,
    and an installed memleash's metadata says it."""
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?", memleash.__version__)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]', pyproject, re.M)
    assert re.search(r"^version = \{ attr = \"memleash.__version__\" \}", pyproject, re.M)
    assert not re.search(r"^version = \"", pyproject, re.M)
    newest = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert newest is not None and newest.group(1) == memleash.__version__
    try:
        installed = importlib.metadata.version("memleash")
    except importlib.metadata.PackageNotFoundError:
        installed = None   # the source tree on PYTHONPATH (make test): nothing installed
    if installed is not None and PKG.parent.name in ("site-packages", "dist-packages"):
        assert installed == memleash.__version__


def test_cli_prints_the_version():
    out = subprocess.run([sys.executable, "-m", "memleash", "--version"], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(PKG.parent)), check=True)
    assert out.stdout == f"memleash {memleash.__version__} (Python {platform.python_version()})\n"


def _import_in_copy(tmp_path, extension_name=None, content=None):
    """Import a copy of the package whose extension is absent, renamed or replaced."""
    copy = tmp_path / "memleash"
    copy.mkdir()
    for f in PKG.glob("*.py"):
        (copy / f.name).write_bytes(f.read_bytes())
    if extension_name is not None:
        built = next(PKG.glob("_core.*.so"))
        (copy / extension_name).write_bytes(built.read_bytes() if content is None else content)
    out = subprocess.run([sys.executable, "-c", "import memleash"], capture_output=True,
                         text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: memleash's C extension") and "circular" not in last
    assert "pip install --force-reinstall --no-cache-dir memleash" in last
    assert "python setup.py build_ext --inplace" in last
    return last


def test_import_without_the_extension_says_it_is_missing(tmp_path):
    assert "is missing from" in _import_in_copy(tmp_path)


def test_import_of_an_extension_for_another_python_names_it(tmp_path):
    other = "_core.cpython-399-x86_64-linux-gnu.so"
    last = _import_in_copy(tmp_path, other)
    assert f"built for another Python ({other})" in last
    assert importlib.machinery.EXTENSION_SUFFIXES[0] in last


def test_import_of_a_broken_extension_keeps_the_loaders_reason(tmp_path):
    name = "_core" + importlib.machinery.EXTENSION_SUFFIXES[0]
    last = _import_in_copy(tmp_path, name, content=b"not an ELF file")
    assert "could not be loaded by" in last and "file too short" in last   # glibc's dlopen


def test_import_memleash_does_not_import_redis():
    """redis-py is the optional [redis] extra: the core imports none of it (memleash.redis
    does; TieredCache imports it when it first talks to a server)."""
    code = ("import sys, memleash; memleash.TieredCache, memleash.AsyncTieredCache; "
            "import memleash.tiered; assert not [m for m in sys.modules "
            "if m == 'redis' or m.startswith('redis.')], sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True,
                   env=dict(os.environ, PYTHONPATH=str(PKG.parent)))


def test_the_redis_extra_starts_at_the_pinned_redis_py():
    pin = re.search(r"^redis==(\S+)$", (ROOT / "requirements/redis.txt").read_text(), re.M)
    extra = re.search(r'^redis = \["redis>=([^,"]+),<(\d+)"\]$',
                      (ROOT / "pyproject.toml").read_text(), re.M)
    assert pin and extra and pin.group(1) == extra.group(1)
    assert pin.group(1).split(".")[0] == str(int(extra.group(2)) - 1)
