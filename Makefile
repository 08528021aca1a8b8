# memleash — every target does its own set-up on a fresh machine (apt packages, .venv,
# pinned PyPI packages, the build), and is fast when re-run.

PYTHON   ?= python3
# The interpreter PYTHON names: itself when it runs, else (a pythonX.Y that does not run
# here, e.g. a pyenv shim of a version outside pyenv's current selection) the one
# tools/find-python.sh X.Y finds. PYINFO: its X.Y, extension suffix and base prefix.
PY       := $(shell $(PYTHON) -c '' 2>/dev/null && echo $(PYTHON) || \
              tools/find-python.sh $(patsubst python%,%,$(notdir $(PYTHON))) 2>/dev/null || echo $(PYTHON))
PYINFO   := $(shell $(PY) -c 'import sys, sysconfig; print("%d.%d" % sys.version_info[:2], \
              sysconfig.get_config_var("EXT_SUFFIX"), sys.base_prefix)' 2>/dev/null)
PYVER    := $(word 1,$(PYINFO))
# One venv per Python: .venv for the default python3, .venv-X.Y when PYTHON is given.
VENV     ?= $(if $(filter file,$(origin PYTHON)),.venv,.venv-$(PYVER))
VPY      := $(VENV)/bin/python
# The venv's stamp names its Python version: a venv left by another version (python3
# upgraded) is made again.
VSTAMP   := $(VENV)/.pins-$(PYVER)
PINS     := requirements/pins.txt
# Debian's own interpreters come without venv and headers: their packages too.
APT_PY   := $(if $(filter /usr,$(word 3,$(PYINFO))),python$(PYVER)-dev python$(PYVER)-venv)
APT_PKGS := libxxhash-dev libbenchmark-dev g++ $(APT_PY)
EXT      := pkg/memleash/_core$(word 2,$(PYINFO))
CSRC     := $(wildcard csrc/core/*.c csrc/core/*.h csrc/py/*.c csrc/py/*.h)
CORE_SRC := $(wildcard csrc/core/*.c)
CTEST    := build/ctest/test_core
CFLAGS_CORE := -std=c11 -O1 -g -Wall -Wextra -Wconversion -Wshadow -Werror -UNDEBUG \
               -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

.PHONY: all demo test test-c test-py bench-core apt venv build clean

all: build

apt:
	@tools/ensure-apt.sh $(APT_PKGS)

# The venv is rebuilt when the pins change.
$(VSTAMP): $(PINS) | apt
	@test -n "$(PYVER)" || { echo "make: $(PYTHON) does not run here (PYTHON=pythonX.Y:" \
	  "on PATH or in pyenv; Debian unstable's 3.14: tools/in-root.sh unstable make ...)"; exit 1; }
	@if test -x $(VPY) && [ "$$($(VPY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != $(PYVER) ]; \
	  then echo "$(VENV) is another Python's: made again for $(PYVER)"; rm -rf $(VENV); fi
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	grep -v '^pyee' $(PINS) | $(VPY) -m pip install -q -r /dev/stdin
	grep '^pyee' $(PINS) | $(VPY) -m pip install -q --ignore-requires-python -r /dev/stdin
	@touch $@

# redis-py (memleash.redis, TieredCache: the [redis] extra), in .venv for every target so
# the suite always has it: its tests that need a server skip, with the reason, unless
# REDIS_URL is set (make test-redis)
REDIS_PINS := requirements/redis.txt
$(VENV)/.redis: $(REDIS_PINS) $(VSTAMP)
	$(VPY) -m pip install -q -r $(REDIS_PINS)
	@touch $@

venv: $(VSTAMP) $(VENV)/.redis

# setuptools copies the .so with its mtime cut to whole seconds, which can leave it
# "older" than a prerequisite made in the same second: touch it so re-runs are no-ops.
$(EXT): $(CSRC) setup.py $(VSTAMP)
	$(VPY) setup.py -q build_ext --inplace --force
	@touch $@

build: apt venv $(EXT)

# The pure-C core's own unit tests: no Python, sanitizers on. Twice: as the core is built
# for Python with the GIL, and with ML_SHARED_ATOMIC (a shared byte budget's counters as
# C11 atomics), as it is built for the free-threaded build.
CTEST_ATOMIC := build/ctest/test_core_atomic
$(CTEST): $(CORE_SRC) $(wildcard csrc/core/*.h) $(wildcard tests/c/*.c tests/c/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_CORE) -Icsrc -o $@ $(CORE_SRC) tests/c/*.c

$(CTEST_ATOMIC): $(CORE_SRC) $(wildcard csrc/core/*.h) $(wildcard tests/c/*.c tests/c/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_CORE) -DML_SHARED_ATOMIC=1 -Icsrc -o $@ $(CORE_SRC) tests/c/*.c

test-c: $(CTEST) $(CTEST_ATOMIC)
	./$(CTEST)
	./$(CTEST_ATOMIC)

# Google Benchmark over the pure-C core (bench/core): built by `make test` so it never
# rots, run by `make bench`.
BENCH_CORE := build/bench/bench_core
$(BENCH_CORE): $(CORE_SRC) $(wildcard csrc/core/*.h) bench/core/shim.c bench/core/shim.h bench/core/bench_core.cc
	@mkdir -p build/bench
	$(CC) -std=c11 -O2 -DNDEBUG -Wall -Wextra -Werror -Icsrc -c bench/core/shim.c -o build/bench/shim.o
	for f in $(CORE_SRC); do \
	  $(CC) -std=c11 -O2 -DNDEBUG -Wall -Wextra -Werror -Icsrc -c $$f -o build/bench/$$(basename $$f .c).o || exit 1; \
	done
	$(CXX) -std=c++17 -O2 -Wall -Wextra -Werror -Ibench/core -o $@ bench/core/bench_core.cc \
	  build/bench/*.o -lbenchmark -lpthread

bench-core: apt $(BENCH_CORE)

test-py: build
	PYTHONPATH=pkg $(VPY) -m pytest -q

test: apt test-c bench-core test-py

demo: build
	PYTHONPATH=pkg $(VPY) demo/demo.py

clean:
	rm -rf build dist $(CTEST) pkg/memleash/_core*.so

# A variant build in build/<name>/ next to a copy of the Python package, so the in-place
# release build is left alone: $(call variant,NAME,ENV)
define variant
	rm -rf build/$(1) && mkdir -p build/$(1)/memleash
	$(2) $(VPY) setup.py -q build_ext --build-lib build/$(1) --build-temp build/$(1)/tmp --force
	cp pkg/memleash/*.py pkg/memleash/*.pyi pkg/memleash/py.typed build/$(1)/memleash/
endef

# Inside a root of tools/ensure-root.sh (its marker at /), where no other root can be
# entered: $(IN_ROOT) is the root's name then, else empty.
IN_ROOT := $(if $(wildcard /.memleash-ready),$(shell cat /etc/debian_chroot 2>/dev/null || echo a))
NESTED   = $(IN_ROOT) root (/.memleash-ready), and roots are entered from the host only
# Run tools/SCRIPT for each entry of LIST, PY_JOBS (1 or 2) at a time:
# $(call per_python,SCRIPT,ARGS,LIST) (tools/each-python.sh). An entry ROOT:PYTHON runs
# inside that Debian root (tools/in-root.sh), and is skipped, saying so, inside a root.
PY_JOBS ?= 2
per_python = tools/each-python.sh $(PY_JOBS) $(1) $(2) -- $(3)

.PHONY: roots python-ft python-ft-tsan
# Build environments outside the repository, in ${MEMLEASH_CACHE:-~/.cache/memleash}
# (docs/environments.md): Debian 13 and unstable roots for tools/in-root.sh, and
# free-threaded CPython 3.13 interpreters (each prints its python3.13t's path).
roots:
	@tools/ensure-root.sh trixie >/dev/null
	@tools/ensure-root.sh unstable >/dev/null
python-ft:
	@tools/ensure-ft-python.sh
python-ft-tsan:
	@tools/ensure-ft-python.sh --tsan

.PHONY: test-debug
# Consistency validators (ml_cache_check) after every mutation, -O0, asserts on.
test-debug: apt venv
	$(call variant,debug,MEMLEASH_DEBUG=1)
	PYTHONPATH=build/debug $(VPY) -m pytest -q -p no:cacheprovider

.PHONY: test-asan test-gc-stress
# AddressSanitizer + UndefinedBehaviorSanitizer over the whole pytest suite. PYTHONMALLOC=malloc
# so small PyMem blocks are not hidden in pymalloc arenas; the ASan runtime is preloaded
# because the interpreter itself is not instrumented. The ASan build (build/asan) is made
# once for both targets below, again when a source changes.
ASAN_RT  = $(shell $(CC) -print-file-name=libasan.so)
UBSAN_RT = $(shell $(CC) -print-file-name=libubsan.so)
# The stack: 64 MiB. 3.13's C recursion limit (Py_EnterRecursiveCall: 10,000 levels in a
# release interpreter) is sized for uninstrumented frames; ASan's redzones make memleash's
# several times larger, and a listener that re-enters the emitter from C 10,000 times
# overflowed 8 MiB (Debian 13's python3.13; CPython's own ASan builds lower the limit to
# 4,000 instead).
ASAN_RUN = ulimit -s 65536 && PYTHONPATH=build/asan PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 LD_PRELOAD="$(ASAN_RT) $(UBSAN_RT)"
build/asan/.built: $(CSRC) setup.py $(wildcard pkg/memleash/*.py pkg/memleash/*.pyi) $(VSTAMP)
	$(call variant,asan,MEMLEASH_SANITIZE=1 MEMLEASH_DEBUG=1)
	@touch $@
test-asan: apt venv build/asan/.built
	$(ASAN_RUN) $(VPY) -m pytest -q -p no:cacheprovider -m "not memray"

# The collection stress run (CPython's GC stress, on the ASan build): the suites that reach
# the binding's re-entrant paths, with gc.set_threshold(1) (tests/conftest.py reads
# MEMLEASH_GC_STRESS), so a collection runs at nearly every allocation of a tracked object
# and frees cyclic garbage there: a borrowed reference held across an allocation, or an
# object a collection can see half-built, is a use after free that ASan reports.
GC_STRESS_TESTS = tests/test_hostile.py $(wildcard tests/test_emitter*.py tests/test_tracker*.py) \
	tests/test_cache.py tests/test_timed.py tests/test_report.py tests/test_decorators.py
test-gc-stress: apt venv build/asan/.built
	$(ASAN_RUN) MEMLEASH_GC_STRESS=1 $(VPY) -m pytest -q -p no:cacheprovider -m "not memray" \
	  $(GC_STRESS_TESTS)

.PHONY: test-refleaks
# The isolated leak scripts (tests/isolated) on debug interpreters (tools/refleaks.sh):
# the machine's own, python3-dbg (Debian's default Python's: 3.11 on Debian 12, 3.13 on
# 13), and the newest version's, python3.14-dbg in the Debian unstable root. Besides the
# pooled reference counts and allocated blocks, sys.gettotalrefcount must not grow in
# every measured round (regrtest -R's rule), which catches a reference leaked to any
# object, None included.
REFLEAK_PYTHONS ?= python3-dbg unstable:python3.14-dbg
test-refleaks:
	@tools/ensure-apt.sh python3-dbg python3-dev python3-venv
	$(call per_python,refleaks.sh,,$(REFLEAK_PYTHONS))

.PHONY: test-redis
# memleash.redis and memleash.TieredCache against a real redis-server: tools/with-redis.py
# starts one on a free loopback port (redis-server 8.0.2 from the Debian 13 root,
# tools/in-root.sh trixie, unless this machine has a 7.4 or newer one), runs
# tests/test_redis*.py with REDIS_URL pointing at it, and stops it however the run ends.
# MEMLEASH_REDIS_REQUIRE=1 (CI) turns a missing or too old server into failures, not skips.
REDIS_TESTS = $(wildcard tests/test_redis*.py)
test-redis: build
	PYTHONPATH=pkg $(PY) tools/with-redis.py $(VPY) -m pytest -q -p no:cacheprovider $(REDIS_TESTS)

.PHONY: test-plugin
# The suite under its own pytest plugin (docs/pytest.md): every file, socket, subprocess
# and Resource a test opens is tracked (level paranoid), and a test that leaks one, or
# leaves one open, fails. Tests that leak on purpose or reconfigure the tracker carry
# @pytest.mark.memleash(leaks="ignore"), each with its reason. tests/test_refleaks.py is
# left out: its scripts run in subprocesses the plugin cannot see into (make
# test-refleaks runs them), and they are a third of the suite's time.
test-plugin: build
	PYTHONPATH=pkg $(VPY) -m pytest -q -p no:cacheprovider -p memleash.pytest_plugin \
	  --memleash --memleash-fail --memleash-json=build/memleash-plugin.json \
	  --ignore=tests/test_refleaks.py

.PHONY: typecheck
# Typing, as a user's type checker sees memleash: mypy's stubtest holds the stubs to the
# runtime (tools/stubtest-allowlist.txt: only what it cannot see, each with its reason);
# mypy --strict over the package, over tests/typing (assert_type lines, and lines that
# must be rejected, whose `type: ignore` would otherwise be unused) and over every python
# example of README.md and docs/ (tools/doc-examples.py). mypy is pinned in
# requirements/typing.txt, installed into .venv by this target only.
TYPING_ENV := PYTHONPATH=pkg MYPYPATH=pkg MYPY_CACHE_DIR=build/typing/cache
$(VENV)/.typing: requirements/typing.txt $(VSTAMP)
	$(VPY) -m pip install -q -r requirements/typing.txt
	@touch $@

typecheck: build $(VENV)/.typing
	$(TYPING_ENV) $(VPY) -m mypy.stubtest memleash --allowlist tools/stubtest-allowlist.txt
	$(TYPING_ENV) $(VPY) -m mypy --strict -p memleash
	$(VPY) tools/doc-examples.py build/typing/examples
	$(TYPING_ENV) $(VPY) -m mypy --strict tests/typing build/typing/examples

.PHONY: test-threads
# tests/stress: 8 threads on one object of each kind (every cache class with and without a
# byte budget, every decorator flavour, acached on 8 event loops, an emitter, the tracker
# with enable()) for MEMLEASH_STRESS_SECONDS each (1 by default: about 45 s in all), the
# invariants checked while the threads are parked at a barrier.
test-threads: build
	PYTHONPATH=pkg $(VPY) -m pytest -q -p no:cacheprovider tests/stress/stress_threads.py

.PHONY: test-ft test-ft-tsan
# The free-threaded build (CPython 3.13t, made once from Debian 13's upstream tarball and
# cached by tools/ensure-ft-python.sh): the whole suite and the thread stress suite, no GIL
# (tools/test-ft.sh; pins in requirements/pins-ft.txt). test-ft-tsan runs the stress suite
# under ThreadSanitizer (the interpreter and memleash both built with it).
test-ft: apt
	tools/test-ft.sh
test-ft-tsan: apt
	tools/test-ft.sh --tsan

.PHONY: compat
# cachetools 8.0.2's own test suite, unchanged, against memleash (tools/compat.sh).
compat: build
	VPY=$(VPY) tools/compat.sh

.PHONY: test-valgrind
# valgrind memcheck over the C core's unit tests (built without sanitizers): clean or fail.
CTEST_VG := build/ctest/test_core_vg
$(CTEST_VG): $(CORE_SRC) $(wildcard csrc/core/*.h) $(wildcard tests/c/*.c tests/c/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O1 -g -Wall -Wextra -Wconversion -Wshadow -Werror -UNDEBUG -Icsrc -o $@ $(CORE_SRC) tests/c/*.c
test-valgrind: $(CTEST_VG)
	@tools/ensure-apt.sh valgrind
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect -q ./$(CTEST_VG)

.PHONY: fuzz
# atheris over random operation sequences against each container and its model
# (tests/fuzz), the extension built by clang with libFuzzer coverage and ASan, atheris'
# ASan+libFuzzer runtime preloaded. CI: a fixed seed and a bounded number of runs;
# `make fuzz FUZZ_SECONDS=600` for a long run. atheris comes from requirements/fuzz.txt
# (a wheel for 3.11 to 3.14, else built from its sdist with clang), installed by this
# target alone; clang is the machine's, with its own version's sanitizer runtimes
# (libclang-rt-14-dev on Debian 12, -19- on 13).
FUZZ_RUNS    ?= 30000
FUZZ_SECONDS ?=
.PHONY: clang
clang:
	@tools/ensure-apt.sh clang
	@tools/ensure-apt.sh libclang-rt-$$(clang -dumpversion | cut -d. -f1)-dev
$(VENV)/.fuzz: requirements/fuzz.txt $(VSTAMP) | clang
	$(VPY) -m pip install -q -r requirements/fuzz.txt
	@touch $@
fuzz: apt venv clang $(VENV)/.fuzz
	$(call variant,fuzz,CC=clang LDSHARED="clang -shared" MEMLEASH_FUZZ=1)
	PYTHONPATH=build/fuzz PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  LD_PRELOAD="$$($(VPY) -c 'import atheris; print(atheris.path())')/asan_with_fuzzer.so" \
	  $(VPY) tests/fuzz/fuzz_containers.py -seed=1 -print_final_stats=1 \
	  $(if $(FUZZ_SECONDS),-max_total_time=$(FUZZ_SECONDS),-runs=$(FUZZ_RUNS))

.PHONY: test-cost
# What resource tracking costs per open(), in instructions counted by callgrind (stable on
# a noisy machine): fails when enable() at level disabled costs more than 1 %, at the
# default level more than 3 %, paranoid more than 1.5x (bench/tracking.py).
test-cost: build
	@tools/ensure-apt.sh valgrind
	PYTHONPATH=pkg $(VPY) bench/tracking.py --gate

.PHONY: bench bench-redis
# The benchmark suite against the peers, on PYTHON; writes docs/benchmarks.md from its own
# output. It runs with a redis-server of its own (tools/with-redis.py) for the Redis
# sections. The cache-hit and emit tables get columns measured on Python BENCH_ALSO too
# (its own venv, .venv-X.Y, made by `make build PYTHON=pythonX.Y`), unless it is PYTHON's
# own version or empty; bench/version-notes.md says why a ratio moved more than 10 %.
BENCH_ALSO ?= 3.13
BENCH_ALSO_PY = $(if $(filter-out $(PYVER),$(BENCH_ALSO)),.venv-$(BENCH_ALSO)/bin/python)
bench: build bench-core
	$(if $(BENCH_ALSO_PY),$(MAKE) build PYTHON=python$(BENCH_ALSO))
	PYTHONPATH=pkg $(PY) tools/with-redis.py $(VPY) bench/run.py --core $(BENCH_CORE) \
	  --out docs/benchmarks.md $(if $(BENCH_ALSO_PY),--also $(BENCH_ALSO_PY))

# The Redis sections alone (bench/redis_cache.py, about 1 min): replaces them in
# docs/benchmarks.md and leaves the other sections as they are.
bench-redis: build
	PYTHONPATH=pkg $(PY) tools/with-redis.py $(VPY) bench/redis_cache.py --out docs/benchmarks.md

.PHONY: bench-tinylfu
# Only the TinyLFU sections of docs/benchmarks.md (hit ratios against theine, LRU, LFU;
# speed against LRUCache), rewritten in place (bench/tinylfu.py).
bench-tinylfu: build
	PYTHONPATH=pkg $(VPY) bench/tinylfu.py --out docs/benchmarks.md

.PHONY: bench-ft
# The free-threaded section of docs/benchmarks.md (bench/freethreaded.py, about 30 s):
# hits, miss+insert, memoized hits and emit from 1, 2 and 4 threads on 3.13t, against dict,
# functools.lru_cache and a plain emitter there; rewritten in place. The venv and the
# build are make test-ft's (tools/test-ft.sh --build: build/ft-venv, build/ft), no tests.
# make bench (on a GIL build) keeps this section as it is. BENCH_FT_ARGS=--quick: shorter.
bench-ft: apt
	tools/test-ft.sh --build
	PYTHONPATH=build/ft build/ft-venv/bin/python bench/freethreaded.py $(BENCH_FT_ARGS) \
	  --out docs/benchmarks.md

# ---- Release ------------------------------------------------------------------------
# make dist: the sdist (everything to build and test: tools/check-dist.py holds it to `git
# ls-files`), then one wheel per interpreter of DIST_PYTHONS built from that sdist
# (tools/build-wheel.sh: debug info stripped, no RUNPATH), tagged by auditwheel with the
# oldest manylinux policy its symbols allow, checked by `twine check --strict` and
# tools/check-dist.py. An entry ROOT:PYTHON builds inside that distribution's root
# (tools/in-root.sh ROOT CMD...), e.g. unstable:python3.14.
# make test-wheel: per DIST_PYTHONS entry, the whole suite from the unpacked sdist against
# the wheel installed in a fresh venv outside the repository (tools/test-wheel.sh); it
# tests the wheels in dist/ as they are, and makes them only if the sdist is missing or
# older than a tracked file.
VERSION      := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' pkg/memleash/__init__.py)
SDIST        := dist/memleash-$(VERSION).tar.gz
DIST_PYTHONS ?= $(PY)
DVENV        := build/venv-dist
DIST_SRC     := $(wildcard $(shell git ls-files 2>/dev/null))

.PHONY: dist test-wheel
$(DVENV)/.pins: requirements/dist.txt requirements/pins.txt
	@test -x $(DVENV)/bin/python || $(PY) -m venv $(DVENV)
	$(DVENV)/bin/python -m pip install -q -r requirements/dist.txt
	@touch $@

dist: apt $(DVENV)/.pins
	rm -rf dist build/dist && mkdir -p build/dist/raw
	$(DVENV)/bin/python -m build -q --sdist --no-isolation -o dist .
	$(call per_python,build-wheel.sh,$(SDIST) build/dist/raw,$(DIST_PYTHONS))
	PATH="$(CURDIR)/$(DVENV)/bin:$$PATH" auditwheel repair -w dist build/dist/raw/*.whl
	$(DVENV)/bin/twine check --strict dist/*
	$(DVENV)/bin/python tools/check-dist.py dist

$(SDIST): $(DIST_SRC)
	$(MAKE) dist

test-wheel: $(SDIST)
	$(call per_python,test-wheel.sh,dist,$(DIST_PYTHONS))

.PHONY: test-versions
# The whole suite on Python 3.12, 3.13 (pyenv's, tools/find-python.sh) and 3.14 (Debian
# unstable's, in its cached root), each against its own wheel: `make dist` with those in
# DIST_PYTHONS (unless dist/ already holds them, fresh), then `make test-wheel` with them
# (tools/test-versions.sh). Built with MEMLEASH_WERROR=1: unstable's gcc 16 warns where
# Debian 12's does not.
test-versions:
	MAKE="$(MAKE)" tools/test-versions.sh $(PY) $(SDIST)

.PHONY: test-minroot
# The README's promise that a wheel needs no build tools, kept: the wheel for this
# machine's Debian python3 (cp311 on Debian 12) pip-installed offline in a minimal root of
# the same Debian release without compiler or headers (cached in
# ~/.cache/memleash/roots/minbase-SUITE, made by debootstrap on first use), imported, and
# the README's examples run there (tools/minroot.sh). Skipped inside a root.
test-minroot: $(SDIST)
	$(if $(IN_ROOT),@echo "test-minroot: SKIPPED: this runs inside the $(NESTED)",tools/minroot.sh dist)
