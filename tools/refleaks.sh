#!/usr/bin/env bash
# tools/refleaks.sh PYTHON — the isolated leak scripts (tests/isolated) on the debug
# interpreter PYTHON (Debian's pythonX.Y-dbg), with the extension built for it: besides
# the pooled reference counts and allocated blocks, sys.gettotalrefcount must not grow in
# every measured round (regrtest -R's rule), which catches a reference leaked to any
# object, None included. A release interpreter has no sys.gettotalrefcount and would
# weaken the check without a word: it is refused.
#
# Its venv and build live in build/refleaks/DISTRO-PYTHON (the distribution's name in
# it: a Debian root shares the repository, not its binaries, with the host). `make
# test-refleaks` calls this once per entry of REFLEAK_PYTHONS, through tools/in-root.sh
# for an entry ROOT:PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$1
# shellcheck disable=SC1091
distro=$(. /etc/os-release && echo "${ID:-linux}-${VERSION_CODENAME:-${VERSION_ID:-unknown}}")
work=build/refleaks/$distro-$(basename "$py")
debug='import sys; sys.exit(not hasattr(sys, "gettotalrefcount"))'
"$py" -c "$debug" || { echo "refleaks: $py is no debug interpreter (no sys.gettotalrefcount)" >&2; exit 1; }
[ -x "$work/venv/bin/python" ] || "$py" -m venv "$work/venv"
vpy=$work/venv/bin/python
"$vpy" -c "$debug" || { echo "refleaks: $vpy is no debug interpreter (venv of $py)" >&2; exit 1; }
"$vpy" -m pip install -q "$(grep '^setuptools==' requirements/pins.txt)"
rm -rf "$work/lib" && mkdir -p "$work/lib/memleash"
"$vpy" setup.py -q build_ext --build-lib "$work/lib" --build-temp "$work/tmp" --force
cp pkg/memleash/*.py "$work/lib/memleash/"
for s in refleak_cache refleak_emitter refleak_decorators refleak_acached refleak_tracker; do
  echo "test-refleaks: $s on $("$vpy" -VV | head -n 1) ($py, $distro)"
  PYTHONPATH=$work/lib "$vpy" tests/isolated/$s.py tests 100000
done
