#!/usr/bin/env bash
# tools/ensure-root.sh SUITE [extra packages...]
#
# Makes sure a Debian root for SUITE (trixie = Debian 13, unstable = sid) exists at
# $CACHE/roots/SUITE, with CACHE=${MEMLEASH_CACHE:-$HOME/.cache/memleash}, holding the
# base packages below plus the extra packages named on the command line, and prints its
# path as the last line on stdout (progress goes to stderr).
#
# Cold: debootstrap --variant=minbase from http://deb.debian.org/debian into
# $CACHE/roots/.SUITE.tmp.XXXXXX, apt-get install of the packages inside it, then a marker
# file (.memleash-ready) written last and one rename into place, so an interrupted run
# leaves only a temp dir that the next run deletes. Warm: a dpkg-query against the root's
# own dpkg database and a few file comparisons, no chroot. Extra packages missing
# from a ready root are installed in place under the same lock. Cold here (wall clock,
# mostly downloads and dpkg): trixie 1 min 20 s, unstable 1 min 40 s to 3 min on a busy
# machine; warm 0.1 s.
#
# Inside every root:
#  - /etc/ssl/certs/ca-certificates.crt is this machine's bundle (re-copied on every run
#    and after every dpkg run inside, because update-ca-certificates rewrites it), and
#    /etc/pip.conf is this machine's, so pip inside trusts what pip outside trusts;
#  - /etc/resolv.conf is this machine's;
#  - apt never checks Release files' Valid-Until (unstable's is often past) and installs
#    no recommends;
#  - /usr/sbin/policy-rc.d refuses to start services (redis-server's postinst would
#    otherwise start a server on this machine's network);
#  - /src exists, for tools/in-root.sh to bind the repository on.
# Concurrent runs: one flock per suite ($CACHE/roots/.SUITE.lock); the warm check takes no
# lock and re-checks under it before doing anything.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${MEMLEASH_CACHE:-$HOME/.cache/memleash}
mirror=http://deb.debian.org/debian

log() { echo "ensure-root: $*" >&2; }
die() { log "$*"; exit 1; }

[ $# -ge 1 ] || die "usage: $0 SUITE [extra packages...]   (SUITE: trixie or unstable)"
suite=$1
shift

base_pkgs=(build-essential make git libxxhash-dev ca-certificates python3 python3-dev python3-venv)
case $suite in
  trixie)
    suite_pkgs=(python3.13 python3.13-dev python3.13-venv python3.13-dbg redis-server
                libclang-rt-19-dev clang valgrind libbenchmark-dev g++) ;;
  unstable)
    suite_pkgs=(python3.14 python3.14-dev python3.14-venv python3.14-dbg g++ libbenchmark-dev) ;;
  *) die "unknown suite '$suite' (trixie or unstable)" ;;
esac
want=("${base_pkgs[@]}" "${suite_pkgs[@]}" "$@")

roots=$cache/roots
root=$roots/$suite
marker=.memleash-ready
host_ca=/etc/ssl/certs/ca-certificates.crt

# The packages of "${want[@]}" not installed in root $1, one per line.
missing_in() {
  local installed
  installed=$(dpkg-query --admindir="$1/var/lib/dpkg" -W -f='${Package} ${db:Status-Abbrev}\n' \
                "${want[@]}" 2>/dev/null | awk '$2 == "ii" { print $1 }' || true)
  local p
  for p in "${want[@]}"; do
    grep -qxF -- "$p" <<<"$installed" || echo "$p"
  done
}

# Copy file $1 to $2 unless identical, through a temp file and a rename.
sync_file() {
  [ -f "$1" ] || return 0
  cmp -s "$1" "$2" 2>/dev/null && return 0
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2.memleash-tmp" && mv -f "$2.memleash-tmp" "$2"
}

# This machine's CA bundle, pip.conf and resolv.conf into root $1.
sync_host_files() {
  sync_file "$host_ca" "$1/etc/memleash/host-ca.crt"
  sync_file "$host_ca" "$1$host_ca"
  sync_file /etc/pip.conf "$1/etc/pip.conf"
  # resolv.conf may be a dangling symlink in a fresh root: replace it by a file.
  [ -L "$1/etc/resolv.conf" ] && rm -f "$1/etc/resolv.conf"
  sync_file /etc/resolv.conf "$1/etc/resolv.conf"
}

# apt-get inside root $1 (through in-root.sh: its own mount namespace, no repository bind).
in_root_apt() {
  local dir=$1
  shift
  "$here/in-root.sh" "$dir" env DEBIAN_FRONTEND=noninteractive apt-get -q "$@"
}

install_missing() {
  local dir=$1
  local -a miss
  mapfile -t miss < <(missing_in "$dir")
  [ ${#miss[@]} -eq 0 ] && return 0
  log "$suite: installing ${miss[*]}"
  local apt_log=$roots/.$suite.apt.log
  { in_root_apt "$dir" update &&
    in_root_apt "$dir" install -y "${miss[@]}" &&
    in_root_apt "$dir" clean; } > "$apt_log" 2>&1 \
    || { tail -n 30 "$apt_log" >&2; die "$suite: apt-get failed (log: $apt_log)"; }
  rm -f "$apt_log"
  sync_host_files "$dir"
  mapfile -t miss < <(missing_in "$dir")
  [ ${#miss[@]} -eq 0 ] || die "$suite: still missing after apt-get install: ${miss[*]}"
}

ready() {
  [ -f "$root/$marker" ] && [ -z "$(missing_in "$root")" ]
}

# Warm path: no lock, no chroot.
if ready; then
  sync_host_files "$root"
  echo "$root"
  exit 0
fi

mkdir -p "$roots"
exec 9>"$roots/.$suite.lock"
if ! flock -n 9; then
  log "$suite: waiting for another ensure-root run to finish"
  flock 9
fi

# Delete a directory, never descending into a file system mounted under it (a mount left
# by a killed debootstrap outside a namespace would otherwise be emptied too).
remove_tree() {
  local d=$1 m
  [ -e "$d" ] || return 0
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(findmnt -rn -o TARGET | grep -F "$d/" | sort -r || true)
  rm -rf --one-file-system "$d"
}

if [ ! -f "$root/$marker" ]; then
  # A root without its marker is a half-finished attempt (or a stranger's directory):
  # start over.
  remove_tree "$root"
  for old in "$roots/.$suite.tmp."*; do
    [ -e "$old" ] && { log "$suite: removing leftover $old"; remove_tree "$old"; }
  done
  "$here/ensure-apt.sh" debootstrap
  tmp=$(mktemp -d "$roots/.$suite.tmp.XXXXXX")
  chmod 755 "$tmp"
  log "$suite: debootstrap into $tmp (a few minutes)"
  # In a private mount namespace, so the /proc and /sys debootstrap mounts inside the
  # target vanish with it even if it is killed.
  unshare --mount --propagation private \
    debootstrap --variant=minbase --include=ca-certificates "$suite" "$tmp" "$mirror" \
    > "$roots/.$suite.debootstrap.log" 2>&1 \
    || { tail -n 30 "$roots/.$suite.debootstrap.log" >&2; die "$suite: debootstrap failed (log: $roots/.$suite.debootstrap.log)"; }

  cat > "$tmp/etc/apt/sources.list" <<EOF
deb $mirror $suite main
EOF
  cat > "$tmp/etc/apt/apt.conf.d/90memleash" <<'EOF'
// memleash (tools/ensure-root.sh): unstable's Release file is often past its Valid-Until.
Acquire::Check-Valid-Until "false";
Acquire::Retries "3";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
// update-ca-certificates (run by dpkg triggers) rewrites the bundle: put the host's back.
DPkg::Post-Invoke { "if [ -f /etc/memleash/host-ca.crt ]; then cp /etc/memleash/host-ca.crt /etc/ssl/certs/ca-certificates.crt; fi"; };
EOF
  cat > "$tmp/usr/sbin/policy-rc.d" <<'EOF'
#!/bin/sh
# memleash (tools/ensure-root.sh): never start services inside this root.
exit 101
EOF
  chmod 755 "$tmp/usr/sbin/policy-rc.d"
  mkdir -p "$tmp/src"
  echo "$suite" > "$tmp/etc/debian_chroot"
  sync_host_files "$tmp"
  install_missing "$tmp"
  {
    echo "suite=$suite"
    echo "mirror=$mirror"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } > "$tmp/$marker"
  mv -T "$tmp" "$root"
  rm -f "$roots/.$suite.debootstrap.log"
  log "$suite: ready at $root"
else
  install_missing "$root"
fi
sync_host_files "$root"
echo "$root"
