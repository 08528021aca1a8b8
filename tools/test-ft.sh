#!/usr/bin/env bash
# make test-ft / make test-ft-tsan: memleash on the free-threaded CPython 3.13t.
#
#   tools/test-ft.sh          the whole suite, then the thread stress suite, on 3.13t
#                             (built once by tools/ensure-ft-python.sh, cached outside
#                             the clone); no package of memleash's may re-enable the GIL
#   tools/test-ft.sh --tsan   the thread stress suite on a 3.13t built with
#                             ThreadSanitizer, memleash built with -fsanitize=thread:
#                             any report fails (CPython's own known reports are suppressed
#                             by name in tools/tsan-cpython.supp)
#   tools/test-ft.sh --build  only the venv and the build (build/ft-venv, build/ft), no
#                             tests: make bench-ft runs bench/freethreaded.py with them
#
# A venv per interpreter under build/ (pins: requirements/pins-ft.txt), rebuilt when the
# pins change; the extension is built for it into build/ft or build/ft-tsan.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case $mode in
  ""|--tsan|--build) ;;
  *) echo "usage: $0 [--tsan|--build]" >&2; exit 2 ;;
esac
if [ "$mode" = "--tsan" ]; then
  py=$(tools/ensure-ft-python.sh --tsan | tail -n 1)
  name=ft-tsan
  build_env=(MEMLEASH_TSAN=1)
else
  py=$(tools/ensure-ft-python.sh | tail -n 1)
  name=ft
  build_env=()
fi
venv=build/$name-venv
stamp=$venv/.pins
if [ ! -f "$stamp" ] || [ requirements/pins-ft.txt -nt "$stamp" ] || [ requirements/pins.txt -nt "$stamp" ]; then
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  # pyee apart (below); the rest as pins-ft.txt says, its -c lines read from requirements/
  grep -v '^pyee' requirements/pins-ft.txt | sed "s|^-c |-c $PWD/requirements/|" > "$venv/pins-ft.txt"
  "$venv/bin/python" -m pip install -q -r "$venv/pins-ft.txt"
  "$venv/bin/python" -m pip install -q --no-deps --ignore-requires-python -c requirements/pins.txt pyee
  touch "$stamp"
fi
rm -rf "build/$name" && mkdir -p "build/$name/memleash"
env "${build_env[@]}" "$venv/bin/python" setup.py -q build_ext --build-lib "build/$name" \
  --build-temp "build/$name/tmp" --force
cp pkg/memleash/*.py pkg/memleash/*.pyi pkg/memleash/py.typed "build/$name/memleash/"
run() { PYTHONPATH="build/$name" "$venv/bin/python" "$@"; }
run -c 'import sys, memleash; assert not sys._is_gil_enabled(), "importing memleash enabled the GIL"
print("test-ft:", sys.version.split()[0], "free-threaded, GIL disabled after import memleash")'
[ "$mode" = "--build" ] && exit 0
if [ "$mode" = "--tsan" ]; then
  # halt_on_error: the first report fails the run; second_deadlock_stack for lock orders
  TSAN_OPTIONS="suppressions=$PWD/tools/tsan-cpython.supp halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
  MEMLEASH_STRESS_SECONDS=${MEMLEASH_STRESS_SECONDS:-0.5} \
    run -m pytest -q -p no:cacheprovider tests/stress/stress_threads.py
else
  # memray has no 3.13t build: its one test is deselected (marker memray)
  run -m pytest -q -p no:cacheprovider -m "not memray" tests
  MEMLEASH_STRESS_SECONDS=${MEMLEASH_STRESS_SECONDS:-1} \
    run -m pytest -q -p no:cacheprovider tests/stress/stress_threads.py
fi
