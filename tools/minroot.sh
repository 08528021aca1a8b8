#!/usr/bin/env bash
# tools/minroot.sh WHEEL_DIR — proof that a wheel is all a user needs: in a minimal Debian
# root of this machine's own release (Debian 12 here: its python3 is the version of the
# default wheel of `make dist`; debootstrap --variant=minbase, plus python3 and
# python3-venv, and nothing that
# could compile: no gcc, no cc, no Python headers, no xxhash.h), the wheel for the root's
# Python is installed by pip from the file alone (--no-index: no network, no sdist to
# fall back on), imported, and the README's examples run against it.
#
# The root is made once at ${MEMLEASH_CACHE:-$HOME/.cache/memleash}/roots/minbase-SUITE,
# SUITE this machine's VERSION_CODENAME (bookworm, trixie; about
# 2 minutes cold, mostly downloads; a marker file written last and one rename, so an
# interrupted run leaves only a temp dir the next run deletes) and reused: warm, this
# script takes seconds. Each run works in a fresh directory under the root's /tmp and
# removes it; /proc is mounted in a mount namespace of the run's own.
set -euo pipefail
cd "$(dirname "$0")/.."
dist=$(cd "$1" && pwd)
roots=${MEMLEASH_CACHE:-$HOME/.cache/memleash}/roots
# shellcheck disable=SC1091
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
root=$roots/minbase-$suite
log() { echo "minroot: $*" >&2; }

if [ ! -f "$root/.memleash-minbase" ]; then
  tools/ensure-apt.sh debootstrap
  mkdir -p "$roots"
  rm -rf "$roots"/.minbase-"$suite".tmp.*
  tmp=$(mktemp -d "$roots/.minbase-$suite.tmp.XXXXXX")
  log "debootstrap --variant=minbase $suite into $tmp"
  debootstrap --variant=minbase --include=python3,python3-venv "$suite" "$tmp" \
    http://deb.debian.org/debian >/dev/null
  date -u +%FT%TZ > "$tmp/.memleash-minbase"
  rm -rf "$root" && mv "$tmp" "$root"
fi

# nothing in the root can build a C extension
for tool in gcc cc x86_64-linux-gnu-gcc clang; do
  if chroot "$root" /bin/sh -c "command -v $tool" >/dev/null; then
    log "the root has $tool: it is no proof of a compiler-free install"; exit 1
  fi
done
if [ -e "$root/usr/include/xxhash.h" ] || ls "$root"/usr/include/python3*/Python.h >/dev/null 2>&1; then
  log "the root has xxhash.h or Python.h: it is no proof of a header-free install"; exit 1
fi

tag=$(chroot "$root" python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
wheels=("$dist"/memleash-*-"$tag"-"$tag"-*manylinux*.whl)
[ -f "${wheels[0]}" ] || { log "no $tag manylinux wheel in $dist (make dist)"; exit 1; }
work=$(mktemp -d "$root/tmp/memleash.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "${wheels[0]}" README.md "$work/"
"${PYTHON:-python3}" tools/doc-examples.py "$work/examples"
rm -f "$work"/examples/[!R]*.py   # the README's only: the docs' need pyee and friends
inside=${work#"$root"}
unshare --mount --propagation private /bin/sh -c '
  mount -t proc proc "$1/proc" && exec chroot "$1" /bin/sh -c "$2"' minroot "$root" "
  set -e
  cd $inside
  python3 -m venv venv
  venv/bin/python -m pip install -q --no-index $(basename "${wheels[0]}")
  venv/bin/python -m memleash --version
  for f in examples/*.py; do venv/bin/python -W error \$f > /dev/null; echo \"minroot: \$f ok\"; done
  venv/bin/python -c 'import memleash, sys; print(\"minroot: memleash\", memleash.__version__, \"imported from\", memleash.__file__, \"on\", sys.version.split()[0])'
"
log "$(basename "${wheels[0]}") installed, imported and ran the README's examples in $root (no compiler there)"
