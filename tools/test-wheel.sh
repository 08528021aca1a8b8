#!/usr/bin/env bash
# tools/test-wheel.sh PYTHON DIST_DIR — the whole test suite against memleash installed
# from its wheel, as a user has it: a fresh venv outside the repository, the wheel for
# PYTHON's tag from DIST_DIR installed with pip, the tests run from the unpacked sdist
# (which holds tests/, docs/ and the C sources that test_lint reads), never from pkg/.
# Tests deselected here are listed in WHEEL_DESELECT below, each with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$1 dist=$(cd "$2" && pwd)
unset PYTHONPATH
tag=$("$py" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
wheels=("$dist"/memleash-*-"$tag"-"$tag"-*.whl)
sdists=("$dist"/memleash-*.tar.gz)
if [ ! -f "${wheels[0]}" ] || [ ${#wheels[@]} -ne 1 ] || [ ${#sdists[@]} -ne 1 ]; then
  echo "test-wheel: want one $tag wheel and one sdist in $dist (make dist)" >&2
  exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/memleash-wheel-$tag.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$py" -m venv "$tmp/venv"
vpy=$tmp/venv/bin/python
tar -xzf "${sdists[0]}" -C "$tmp"
src=$(echo "$tmp"/memleash-*/)
# test dependencies as pinned (pyee's wrong Requires-Python: see requirements/pins.txt)
"$vpy" -m pip install -q --ignore-requires-python -r "$src/requirements/test.txt"
"$vpy" -m pip install -q "${wheels[0]}"
cd "$src"
# the package under test is the installed one, not the sdist's copy under pkg/
"$vpy" -c '
import pathlib, sys, memleash
where = pathlib.Path(memleash.__file__).resolve()
assert where.is_relative_to(pathlib.Path(sys.prefix).resolve()), where
print("test-wheel: memleash", memleash.__version__, "from", where.parent)'
WHEEL_DESELECT=()
"$vpy" -m pytest -q -p no:cacheprovider "${WHEEL_DESELECT[@]}"
