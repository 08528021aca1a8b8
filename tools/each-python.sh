#!/usr/bin/env bash
# tools/each-python.sh JOBS SCRIPT [ARGS...] -- ENTRY...
#
# Runs `tools/SCRIPT PYTHON ARGS...` once per ENTRY, where an ENTRY is PYTHON (an
# interpreter of this machine's) or ROOT:PYTHON (one inside that Debian root, run through
# tools/in-root.sh ROOT). The Makefile's dist, test-wheel and test-refleaks call it with
# their lists (DIST_PYTHONS, REFLEAK_PYTHONS).
#
# JOBS runs at a time, at most 2 (the machines are shared: never more than -j2). With one
# run at a time, or one entry, the output streams as it comes; with two, each run's output
# goes to a log that is shown whole when the run ends (the first entry's first), with a
# line when each starts and how long each took. Every entry runs even when one fails; the
# exit status is 1 if any failed, and the failed ones are named last.
#
# Inside a root of tools/ensure-root.sh (its marker /.memleash-ready), where no other root
# can be entered, ROOT:PYTHON entries are skipped, each with a line saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: $0 JOBS SCRIPT [ARGS...] -- ENTRY..." >&2; exit 2; }
[ $# -ge 2 ] || usage
jobs=$1 script=$2
shift 2
args=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
[ $# -gt 0 ] || usage
shift
[[ $jobs =~ ^[12]$ ]] || { echo "each-python: JOBS is 1 or 2, not '$jobs'" >&2; exit 2; }

inside=
[ -f /.memleash-ready ] && inside=$(cat /etc/debian_chroot 2>/dev/null || echo a)
entries=()
for e in "$@"; do
  if [[ $e == *:* ]] && [ -n "$inside" ]; then
    echo "$script: SKIPPED $e: this runs inside the $inside root already, and roots are entered from the host only (run it on the host)"
  else
    entries+=("$e")
  fi
done
[ ${#entries[@]} -gt 0 ] || exit 0

run() {   # run ENTRY: the script for one entry, in the foreground
  case $1 in
    *:*) tools/in-root.sh "${1%%:*}" "tools/$script" "${1#*:}" "${args[@]}" ;;
    *) "tools/$script" "$1" "${args[@]}" ;;
  esac
}

failed=()
if [ "$jobs" = 1 ] || [ ${#entries[@]} = 1 ]; then
  for e in "${entries[@]}"; do
    run "$e" || failed+=("$e")
  done
else
  logs=$(mktemp -d "${TMPDIR:-/tmp}/each-python.XXXXXX")
  trap 'rm -rf "$logs"' EXIT
  pids=()
  for i in "${!entries[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    echo "$script: ${entries[i]} started"
    ( start=$(date +%s); rc=0; run "${entries[i]}" > "$logs/$i.log" 2>&1 || rc=$?
      echo "$rc $(( $(date +%s) - start ))" > "$logs/$i.rc" ) &
    pids[i]=$!
  done
  for i in "${!entries[@]}"; do
    wait "${pids[i]}" || true
    read -r rc took < "$logs/$i.rc"
    echo "---- $script ${entries[i]}: exit status $rc after ${took}s ----"
    cat "$logs/$i.log"
    [ "$rc" = 0 ] || failed+=("${entries[i]}")
  done
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "$script: FAILED for ${failed[*]}" >&2
  exit 1
fi
