#!/usr/bin/env bash
# make compat: the pinned peers' own test suites, unchanged, against memleash.
#
# cachetools: its sdist (the version requirements/pins.txt pins) is downloaded from PyPI
# into build/compat; an alias package `cachetools` is built there from its own sources
# with the cache classes replaced by memleash's (so its decorators, keys and func wrap
# memleash caches too); its test suite then runs as shipped. Nothing of it is committed.
# A second pass aliases everything: the caches, cached, cachedmethod, CacheInfo, keys
# and func are all memleash's, so cachetools' decorator tests run against memleash's.
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
