#!/usr/bin/env bash
# tools/find-python.sh X.Y
#
# Prints the path of a Python X.Y interpreter: the newest pyenv build of X.Y (the highest
# $(pyenv root)/versions/X.Y.Z/bin/pythonX.Y, plain X.Y.Z releases only: no rc, no
# free-threaded "t" builds), else pythonX.Y found on PATH (skipping pyenv's shims, which
# exist for versions pyenv no longer has) and checked to really be X.Y; else it says so
# on stderr and exits 1. Caches nothing; takes ~0.01 s.
set -euo pipefail

die() { echo "find-python: $*" >&2; exit 1; }
[ $# -eq 1 ] && [[ $1 =~ ^[0-9]+\.[0-9]+$ ]] || die "usage: $0 X.Y (e.g. 3.12)"
v=$1

# pyenv root without starting pyenv when PYENV_ROOT or ~/.pyenv answers it.
if [ -n "${PYENV_ROOT:-}" ]; then
  pyroot=$PYENV_ROOT
elif [ -d "$HOME/.pyenv/versions" ]; then
  pyroot=$HOME/.pyenv
elif command -v pyenv >/dev/null 2>&1; then
  pyroot=$(pyenv root)
else
  pyroot=
fi

if [ -n "$pyroot" ] && [ -d "$pyroot/versions" ]; then
  best=
  while read -r d; do
    [ -x "$pyroot/versions/$d/bin/python$v" ] && best=$d
  done < <(ls -1 "$pyroot/versions" | grep -E "^${v//./\\.}\.[0-9]+$" | sort -V)
  if [ -n "$best" ]; then
    echo "$pyroot/versions/$best/bin/python$v"
    exit 0
  fi
fi

IFS=: read -r -a dirs <<<"${PATH:-}"
for d in "${dirs[@]}"; do
  [ -n "$d" ] && [ -x "$d/python$v" ] || continue
  [ -n "$pyroot" ] && [ "$d" = "$pyroot/shims" ] && continue
  if [ "$("$d/python$v" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$v" ]; then
    echo "$d/python$v"
    exit 0
  fi
done

die "no Python $v: not in ${pyroot:-pyenv (none found)}/versions/$v.*, and no working python$v on PATH"
