#!/usr/bin/env bash
# make compat: the pinned peers' own test suites, unchanged, against memleash.
#
# cachetools: its sdist (the version requirements/pins.txt pins) is downloaded from PyPI
# into build/compat; an alias package `cachetools` is built there from its own sources
# with the cache classes replaced by memleash's (so its decorators, keys and func wrap
# memleash caches too); its test suite then runs as shipped. Nothing of it is committed.
# A second pass aliases everything: the caches, cached, cachedmethod, CacheInfo, keys
# and func are all memleash's, so cachetools' decorator tests run against memleash's.
#
# pyee: its sdist (the pinned version) likewise; a copy of its package whose
# EventEmitter, PyeeException, PyeeError and AsyncIOEventEmitter are memleash's (pyee's
# other emitters, trio's, twisted's, the executor's, then subclass memleash's), and its
# test suite run as shipped, with its own test dependencies (requirements/compat-pyee.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
VPY=${VPY:-.venv/bin/python}
work=build/compat
version=$(sed -n 's/^cachetools==//p' requirements/pins.txt)
src=$work/cachetools-$version
if [ ! -d "$src/tests" ]; then
  rm -rf "$work" && mkdir -p "$work"
  "$VPY" -m pip download -q --no-deps --no-binary :all: -d "$work" "cachetools==$version"
  tar -xzf "$work/cachetools-$version.tar.gz" -C "$work"
fi
shim=$work/shim
rm -rf "$shim" && mkdir -p "$shim"
cp -r "$src/src/cachetools" "$shim/"
cat >> "$shim/cachetools/__init__.py" <<'PY'

# --- memleash compat alias (added by tools/compat.sh): the caches are memleash's ---
from memleash import (  # noqa: E402,F401
    Cache, FIFOCache, LFUCache, LRUCache, RRCache, TLRUCache, TTLCache,
)
PY
# the alias must be what the tests import
PYTHONPATH="$shim:$PWD/pkg" "$VPY" -c '
import cachetools, memleash
assert cachetools.LRUCache is memleash.LRUCache and cachetools.TTLCache is memleash.TTLCache
print("compat: cachetools", cachetools.__version__, "aliased to memleash", memleash.__version__)'
full=$work/shim-full
rm -rf "$full" && mkdir -p "$full/cachetools"
cat > "$full/cachetools/__init__.py" <<'PY'
"""cachetools, aliased to memleash entirely (added by tools/compat.sh)."""
import sys

import memleash
from memleash import (  # noqa: F401
    Cache, CacheInfo, FIFOCache, LFUCache, LRUCache, RRCache, TLRUCache, TTLCache, cached,
    cachedmethod, func, keys,
)

sys.modules[__name__ + ".keys"] = keys
sys.modules[__name__ + ".func"] = func
__version__ = "@VERSION@"
PY
sed -i "s/@VERSION@/$version/" "$full/cachetools/__init__.py"
PYTHONPATH="$full:$PWD/pkg" "$VPY" -c '
import cachetools, cachetools.func, cachetools.keys, memleash
assert cachetools.cached is memleash.cached and cachetools.func is memleash.func
print("compat: cachetools", cachetools.__version__, "fully aliased to memleash (decorators too)")'
cd "$src"
PYTHONPATH="$OLDPWD/$shim:$OLDPWD/pkg" "$OLDPWD/$VPY" -m pytest -q -p no:cacheprovider tests
PYTHONPATH="$OLDPWD/$full:$OLDPWD/pkg" "$OLDPWD/$VPY" -m pytest -q -p no:cacheprovider tests \
  ${COMPAT_DESELECT:-}

# ---- pyee -------------------------------------------------------------------------
cd "$OLDPWD"
pversion=$(sed -n 's/^pyee==//p' requirements/pins.txt)
psrc=$work/pyee-$pversion
if [ ! -d "$psrc/tests" ]; then
  "$VPY" -m pip download -q --no-deps --ignore-requires-python --no-binary :all: \
    -d "$work" "pyee==$pversion"
  tar -xzf "$work/pyee-$pversion.tar.gz" -C "$work"
fi
psite=$work/pyee-site
if [ ! -f "$psite/.installed" ] || [ requirements/compat-pyee.txt -nt "$psite/.installed" ]; then
  rm -rf "$psite"
  "$VPY" -m pip install -q --no-deps --target "$psite" -r requirements/compat-pyee.txt
  touch "$psite/.installed"
fi
pshim=$work/pyee-shim
rm -rf "$pshim" && mkdir -p "$pshim"
cp -r "$psrc/pyee" "$pshim/"
cat >> "$pshim/pyee/base.py" <<'PY'

# --- memleash compat alias (added by tools/compat.sh) ---
from memleash import EventEmitter, PyeeError, PyeeException  # noqa: E402,F401,F811
PY
cat >> "$pshim/pyee/asyncio.py" <<'PY'

# --- memleash compat alias (added by tools/compat.sh) ---
from memleash import AsyncIOEventEmitter  # noqa: E402,F401,F811
PY
# the tests run outside the sdist, so that its own pyee/ is not what they import
prun=$work/pyee-run
rm -rf "$prun" && mkdir -p "$prun"
cp -r "$psrc/tests" "$psrc/pyproject.toml" "$prun/"
ppath="$PWD/$pshim:$PWD/pkg:$PWD/$psite"
PYTHONPATH="$ppath" "$VPY" -c '
import pyee, pyee.asyncio, pyee.trio, memleash
assert pyee.EventEmitter is memleash.EventEmitter and pyee.PyeeError is memleash.PyeeError
assert pyee.asyncio.AsyncIOEventEmitter is memleash.AsyncIOEventEmitter
assert issubclass(pyee.trio.TrioEventEmitter, memleash.EventEmitter)
print("compat: pyee", "'"$pversion"'", "aliased to memleash", memleash.__version__)'
cd "$prun"
PYTHONPATH="$ppath" "$OLDPWD/$VPY" -m pytest -q -p no:cacheprovider tests
