#!/usr/bin/env bash
# tools/ensure-ft-python.sh [--tsan]
#
# Makes sure a free-threaded CPython 3.13 (python3.13t, built --disable-gil) exists and
# prints the interpreter's path as the last line on stdout (progress goes to stderr):
#   (default) $CACHE/cpython-3.13t/bin/python3.13t
#   --tsan    $CACHE/cpython-3.13t-tsan/bin/python3.13t, built --with-thread-sanitizer
#             (gcc's TSan, libtsan2); only this one is built then. Run it with
#             TSAN_OPTIONS="suppressions=$PWD/tools/tsan-cpython.supp" (see that file).
# with CACHE=${MEMLEASH_CACHE:-$HOME/.cache/memleash}.
#
# The source is the upstream tarball of Debian 13's CPython source package
# (python3.13_*.orig.tar.xz), not Debian's patched tree (its patches disable ensurepip):
# fetched once with `apt-get source --download-only python3.13` inside the trixie root of
# tools/ensure-root.sh (a deb-src line for trixie is added there; apt checks the file
# against the signed Sources index) and kept in $CACHE/src. It is built on this machine
# (its own gcc; build dependencies through tools/ensure-apt.sh) in
# $CACHE/build/cpython-3.13t*.tmp.XXXXXX: ./configure --disable-gil
# --with-ensurepip=install --prefix=PREFIX, make -j2, make install into a staging
# DESTDIR, then one rename into PREFIX, pip installed there by the installed interpreter
# itself (ensurepip run from the staging tree would write pip's scripts with the build
# tree's interpreter in their #! lines), checks, and a marker file (.memleash-ready)
# written last. A PREFIX without its marker is a half-finished attempt and is rebuilt.
# One flock per interpreter ($CACHE/.cpython-3.13t*.lock), one for the source.
# Cold here (wall clock, 2 cores shared): 4 min 20 s to 10 min for the plain interpreter
# (3 min 20 s of CPU), 16 min for the TSan one (its own interpreter compiles the standard
# library at install), plus 1 min 20 s for the trixie root if it is missing; warm 0.01 s.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${MEMLEASH_CACHE:-$HOME/.cache/memleash}

log() { echo "ensure-ft-python: $*" >&2; }
die() { log "$*"; exit 1; }

tsan=0
case ${1:-} in
  "") ;;
  --tsan) tsan=1 ;;
  *) die "usage: $0 [--tsan]" ;;
esac
[ $# -le 1 ] || die "usage: $0 [--tsan]"

name=cpython-3.13t
[ $tsan -eq 1 ] && name=cpython-3.13t-tsan
prefix=$cache/$name
python=$prefix/bin/python3.13t
marker=$prefix/.memleash-ready
supp=$here/tsan-cpython.supp

# Warm path.
if [ -f "$marker" ] && [ -x "$python" ]; then
  echo "$python"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.$name.lock"
if ! flock -n 9; then
  log "waiting for another build of $name to finish"
  flock 9
fi
if [ -f "$marker" ] && [ -x "$python" ]; then
  echo "$python"
  exit 0
fi

# Delete a directory without crossing into file systems mounted under it.
remove_tree() {
  [ -e "$1" ] || return 0
  rm -rf --one-file-system "$1"
}

# The newest python3.13_*.orig.tar.xz in $cache/src, fetched first if there is none.
tarball() {
  local srcdir=$cache/src tb
  mkdir -p "$srcdir"
  tb=$(ls "$srcdir"/python3.13_*.orig.tar.xz 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$tb" ]; then
    exec 8>"$srcdir/.lock"
    flock 8
    tb=$(ls "$srcdir"/python3.13_*.orig.tar.xz 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  if [ -z "$tb" ]; then
    local root dl f
    root=$("$here/ensure-root.sh" trixie | tail -n 1)
    local list=$root/etc/apt/sources.list.d/memleash-src.list
    if [ ! -f "$list" ]; then
      echo "deb-src http://deb.debian.org/debian trixie main" > "$list.tmp"
      mv "$list.tmp" "$list"
      log "trixie root: deb-src line added, apt-get update"
      "$here/in-root.sh" trixie apt-get -qq update >&2
    fi
    for f in "$srcdir"/dl.*; do [ -e "$f" ] && remove_tree "$f"; done
    dl=$(mktemp -d "$srcdir/dl.XXXXXX")
    log "apt-get source --download-only python3.13 (in the trixie root)"
    # in-root.sh binds MEMLEASH_SRC at /src and starts there: the files land in $dl.
    fetch() {
      (cd / && MEMLEASH_SRC=$dl "$here/in-root.sh" trixie \
         apt-get -q -o APT::Sandbox::User=root source --download-only python3.13) >&2
    }
    # A stale package list names a file the mirror no longer has: update, try again.
    fetch || { "$here/in-root.sh" trixie apt-get -qq update >&2 && fetch; }
    f=$(ls "$dl"/python3.13_*.orig.tar.xz | head -n 1)
    [ -f "$f" ] || die "apt-get source brought no python3.13_*.orig.tar.xz"
    mv "$f" "$srcdir/"
    tb=$srcdir/$(basename "$f")
    remove_tree "$dl"
  fi
  exec 8>&-
  echo "$tb"
}

tb=$(tarball)
log "source: $tb"

build_deps=(build-essential pkg-config libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev
            libsqlite3-dev libreadline-dev libgdbm-dev libgdbm-compat-dev uuid-dev
            libncurses-dev)
[ $tsan -eq 1 ] && build_deps+=(libtsan2)
"$here/ensure-apt.sh" "${build_deps[@]}" >&2

mkdir -p "$cache/build"
for old in "$cache/build/$name.tmp."*; do
  [ -e "$old" ] && { log "removing leftover $old"; remove_tree "$old"; }
done
work=$(mktemp -d "$cache/build/$name.tmp.XXXXXX")
tar -xJf "$tb" -C "$work"
srctree=$(echo "$work"/Python-3.13*)
[ -x "$srctree/configure" ] || die "no configure in $tb"

config=(--prefix="$prefix" --disable-gil --with-ensurepip=install)
if [ $tsan -eq 1 ]; then
  config+=(--with-thread-sanitizer)
  # The interpreter runs during the build (and ensurepip, compileall); its reports go to
  # $work/tsan.* instead of failing the build with TSan's exit code 66.
  export TSAN_OPTIONS="suppressions=$supp exitcode=0 log_path=$work/tsan-build"
fi

buildlog=$work/build.log
step() {
  log "$1 (log: $buildlog)"
  shift
  ( cd "$srctree" && "$@" ) >> "$buildlog" 2>&1 || { tail -n 40 "$buildlog" >&2; die "failed: $*"; }
}
start=$(date +%s)
step "configure ${config[*]}" ./configure "${config[@]}"
step "make -j2" make -j2
step "make install (staged)" make install DESTDIR="$work/stage" ENSUREPIP=no

remove_tree "$prefix"
mv -T "$work/stage$prefix" "$prefix"
if [ $tsan -eq 1 ]; then
  export TSAN_OPTIONS="suppressions=$supp exitcode=0 log_path=$work/tsan-install"
fi
step "ensurepip" "$python" -m ensurepip --default-pip

# Checks.
if [ $tsan -eq 1 ]; then
  export TSAN_OPTIONS="suppressions=$supp"
fi
gil=$("$python" -c 'import sys; print(sys._is_gil_enabled())')
[ "$gil" = False ] || die "$python: sys._is_gil_enabled() is $gil"
venv=$work/venv-check
"$python" -m venv "$venv" || die "$python -m venv failed"
"$venv/bin/pip" --version >&2 || die "pip in a venv of $python failed"
if [ $tsan -eq 1 ]; then
  "$python" -c 'import threading' || die "import threading under TSan failed"
  "$python" - <<'EOF' || die "a trivial threaded script under TSan failed (reports above: suppress CPython's own in tools/tsan-cpython.supp)"
import threading
box = []
def work(i):
    box.append(sum(range(1000 * i)))
threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert len(box) == 8
EOF
fi

{
  echo "source=$(basename "$tb")"
  echo "configure=${config[*]}"
  echo "cc=$(gcc --version | head -n 1)"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) in $(( $(date +%s) - start ))s"
} > "$marker"
remove_tree "$work"
log "$("$python" -VV) ready at $prefix"
echo "$python"
