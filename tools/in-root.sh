#!/usr/bin/env bash
# tools/in-root.sh SUITE CMD...
#
# Runs CMD as root inside the Debian root of SUITE (trixie or unstable), made by
# tools/ensure-root.sh at ${MEMLEASH_CACHE:-$HOME/.cache/memleash}/roots/SUITE (built
# first if missing: minutes; nothing else is cached by this script), with:
#  - the repository this script belongs to (or $MEMLEASH_SRC) bind-mounted at /src; the
#    command starts in the matching directory under /src when the caller's working
#    directory is inside the repository, else in /src. So:
#        tools/in-root.sh unstable make -C /src test PYTHON=python3.14 VENV=.venv-unstable
#  - /proc mounted, /dev (with /dev/pts and /dev/shm) and /sys bind-mounted;
#  - the caller's environment, except PATH (the root's standard one), and variables that
#    name things of this machine's that the root does not have (VIRTUAL_ENV, PYENV_*,
#    PYTHONHOME, PIP_FIND_LINKS, LD_PRELOAD); HOME=/root.
# Every mount is made in a mount namespace of this invocation's own (unshare --mount,
# private propagation): nothing is ever visible outside it, two runs at once cannot
# unmount each other's mounts, and the kernel drops them all when the last process in the
# namespace exits, even on SIGKILL. They are also unmounted explicitly on exit, failure
# and interruption (trap on EXIT INT TERM). The command runs in the foreground, so it
# gets the terminal and Ctrl-C; its exit status is this script's.
# Warm start-up cost: ~0.1 s (the ensure-root check and the mounts).
#
# Internal form, used by ensure-root.sh while it builds a root: SUITE may be the absolute
# path of a root directory; then there is no ensure-root check and no repository bind.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { echo "usage: $0 SUITE CMD...   (SUITE: trixie or unstable)" >&2; exit 2; }
[ $# -ge 2 ] || usage
suite=$1
shift

if [ "${_MEMLEASH_IN_ROOT_NS:-}" != "$$" ]; then
  # Stage 1, in the caller's mount namespace: find (or build) the root, then re-run this
  # script in a new mount namespace. unshare execs in place, so the pid stays the same
  # and stage 2 recognises itself by it.
  [ "$(id -u)" -eq 0 ] || { echo "in-root: needs root (chroot, mount)" >&2; exit 1; }
  # Inside a root already (ensure-root.sh's marker at /): its cache is not the host's, and
  # a root built inside a root would take minutes and gigabytes. The Makefile's gates say
  # so and skip such entries; a direct call stops here.
  if [ -f /.memleash-ready ]; then
    echo "in-root: this runs inside the $(cat /etc/debian_chroot 2>/dev/null) root already;" \
         "roots are entered from the host only" >&2
    exit 1
  fi
  if [[ $suite == /* ]]; then
    root=$suite
    src=
  else
    root=$("$here/ensure-root.sh" "$suite" | tail -n 1)
    src=${MEMLEASH_SRC:-$(cd "$here/.." && pwd -P)}
  fi
  [ -x "$root/bin/sh" ] || { echo "in-root: $root is no root file system" >&2; exit 1; }
  export _MEMLEASH_IN_ROOT_NS=$$ _MEMLEASH_ROOT=$root _MEMLEASH_SRC=$src
  exec unshare --mount --propagation private "$0" "$suite" "$@"
fi

# Stage 2, in this invocation's own mount namespace.
root=$_MEMLEASH_ROOT
src=$_MEMLEASH_SRC
unset _MEMLEASH_IN_ROOT_NS _MEMLEASH_ROOT _MEMLEASH_SRC

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -R "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true
  done
  mounted=()
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# mnt TARGET MOUNT-ARGS...
mnt() {
  local target=$1
  shift
  mount "$@" "$target"
  mounted+=("$target")
}
mnt "$root/proc" -t proc proc
mnt "$root/sys" --rbind /sys
mnt "$root/dev" --rbind /dev

workdir=/
if [ -n "$src" ]; then
  mkdir -p "$root/src"
  mnt "$root/src" --bind "$src"
  workdir=/src
  cwd=$(pwd -P)
  case $cwd/ in
    "$src"/*) workdir=/src${cwd#"$src"} ;;
  esac
fi

unset VIRTUAL_ENV PYTHONHOME PIP_FIND_LINKS LD_PRELOAD
for v in $(compgen -e | grep '^PYENV' || true); do unset "$v"; done
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
export debian_chroot
debian_chroot=$(cat "$root/etc/debian_chroot" 2>/dev/null || echo root)

set +e
chroot "$root" /bin/sh -c 'cd "$1" && shift && exec "$@"' in-root "$workdir" "$@"
rc=$?
set -e
exit "$rc"
