#!/usr/bin/env bash
# tools/test-versions.sh PYTHON SDIST — make test-versions: the whole test suite on
# Python 3.12, 3.13 and 3.14, each against its own wheel, built and tested by the
# packaging targets themselves (`make dist`, `make test-wheel`), never a second way.
# tools/test-versions.sh --dist-pythons PYTHON — prints the DIST_PYTHONS of a release:
# PYTHON (the default interpreter, whose wheel `make test-wheel` tests) and the entries
# below, so that CI's `make dist` builds every wheel once and this gate only tests.
#
# The interpreters, for each X.Y of 3.12, 3.13, 3.14:
#  - PYTHON itself when it is X.Y (a machine whose python3 is 3.13);
#  - 3.12, 3.13: tools/find-python.sh X.Y (pyenv's newest X.Y.Z, else pythonX.Y on PATH);
#  - 3.14: Debian unstable's python3.14 in the cached unstable root (tools/in-root.sh,
#    the entry unstable:python3.14), built there by its gcc 16, which warns where older
#    ones do not: with MEMLEASH_WERROR=1 (set here) a warning fails the build.
# A version that cannot be found fails the gate, except inside a Debian root of
# tools/ensure-root.sh (the Debian 13 proof of .ci/run), where pyenv's interpreters and
# the other roots are the host's: those are skipped there, each with its reason.
#
# The wheels: when dist/ holds an sdist as new as every tracked file (`make -q SDIST`)
# and a wheel for each version's tag, they are the ones tested (CI's `make dist` made
# them); else `make dist DIST_PYTHONS="PYTHON <entries>"` builds them all (dist/ keeps the
# default one's wheel too). Then `make test-wheel DIST_PYTHONS="<entries>"`, which runs
# two versions at a time (PY_JOBS, tools/each-python.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
make=${MAKE:-make}
log() { echo "test-versions: $*" >&2; }

mode=test
if [ "${1:-}" = --dist-pythons ]; then mode=list; shift; fi
[ $# -ge 1 ] || { log "usage: $0 PYTHON SDIST | --dist-pythons PYTHON"; exit 2; }
py=$1
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
nested=
[ -f /.memleash-ready ] && nested=$(cat /etc/debian_chroot 2>/dev/null || echo a)

entries=() tags=()
add() { entries+=("$1"); tags+=("cp${2/./}"); }
for v in 3.12 3.13 3.14; do
  if [ "$v" = "$pyver" ]; then
    add "$py" "$v"
  elif [ "$v" = 3.14 ]; then
    if [ -n "$nested" ]; then
      log "SKIPPED 3.14: it is Debian unstable's, in the unstable root, and this runs inside the $nested root, where no other root is entered (run it on the host)"
    else
      add unstable:python3.14 "$v"
    fi
  elif found=$(tools/find-python.sh "$v" 2>/dev/null); then
    add "$found" "$v"
  elif [ -n "$nested" ]; then
    log "SKIPPED $v: the $nested root has no Python $v (pyenv's interpreters are the host's; run it on the host)"
  else
    tools/find-python.sh "$v" || true
    log "no Python $v here: install it (pyenv install $v), it is one of the versions this gate tests"
    exit 1
  fi
done

if [ $mode = list ]; then
  all=("$py")
  for e in "${entries[@]}"; do [ "$e" = "$py" ] || all+=("$e"); done
  echo "${all[*]}"
  exit 0
fi

sdist=$2
[ ${#entries[@]} -gt 0 ] || { log "no version to test"; exit 1; }
export MEMLEASH_WERROR=1
fresh=1
"$make" -s -q "$sdist" 2>/dev/null || fresh=0
for t in "${tags[@]}"; do
  compgen -G "dist/memleash-*-$t-$t-*.whl" >/dev/null || fresh=0
done
if [ $fresh = 1 ]; then
  log "testing the wheels in dist/ (${tags[*]}), made from the current sdist"
else
  all=$("$0" --dist-pythons "$py")
  log "building the wheels: make dist DIST_PYTHONS=\"$all\""
  "$make" dist DIST_PYTHONS="$all"
fi
"$make" test-wheel DIST_PYTHONS="${entries[*]}"
log "passed on ${tags[*]}"
