# memleash — every target does its own set-up on a fresh machine (apt packages, .venv,
# pinned PyPI packages, the build), and is fast when re-run.

PYTHON   ?= python3
VENV     := .venv
VPY      := $(VENV)/bin/python
PINS     := requirements/pins.txt
APT_PKGS := libxxhash-dev libbenchmark-dev g++
EXT      := pkg/memleash/_core$(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
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
$(VENV)/.pins: $(PINS)
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	grep -v '^pyee' $(PINS) | $(VPY) -m pip install -q -r /dev/stdin
	grep '^pyee' $(PINS) | $(VPY) -m pip install -q --ignore-requires-python -r /dev/stdin
	@touch $@

# redis-py (memleash.redis, TieredCache: the [redis] extra), in .venv for every target so
# the suite always has it: its tests that need a server skip, with the reason, unless
# REDIS_URL is set (make test-redis)
REDIS_PINS := requirements/redis.txt
$(VENV)/.redis: $(REDIS_PINS) $(VENV)/.pins
	$(VPY) -m pip install -q -r $(REDIS_PINS)
	@touch $@

venv: $(VENV)/.pins $(VENV)/.redis

# setuptools copies the .so with its mtime cut to whole seconds, which can leave it
# "older" than a prerequisite made in the same second: touch it so re-runs are no-ops.
$(EXT): $(CSRC) setup.py $(VENV)/.pins
	$(VPY) setup.py -q build_ext --inplace --force
	@touch $@

build: apt venv $(EXT)

# The pure-C core's own unit tests: no Python, sanitizers on.
$(CTEST): $(CORE_SRC) $(wildcard csrc/core/*.h) $(wildcard tests/c/*.c tests/c/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_CORE) -Icsrc -o $@ $(CORE_SRC) tests/c/*.c

test-c: $(CTEST)
	./$(CTEST)

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
ASAN_RUN = PYTHONPATH=build/asan PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 LD_PRELOAD="$(ASAN_RT) $(UBSAN_RT)"
build/asan/.built: $(CSRC) setup.py $(wildcard pkg/memleash/*.py pkg/memleash/*.pyi) $(VENV)/.pins
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
	MEMLEASH_GC_STRESS=1 $(ASAN_RUN) $(VPY) -m pytest -q -p no:cacheprovider -m "not memray" \
	  $(GC_STRESS_TESTS)

.PHONY: test-refleaks
# The isolated leak scripts (tests/isolated) on Debian's debug interpreter, python3.11-dbg,
# with the extension built for it: besides the pooled reference counts and allocated
# blocks, sys.gettotalrefcount must not grow in every measured round (regrtest -R's rule),
# which catches a reference leaked to any object, None included.
DBG_VENV := build/dbg-venv
test-refleaks:
	@tools/ensure-apt.sh python3.11-dbg python3.11-dev python3.11-venv
	test -x $(DBG_VENV)/bin/python || python3.11-dbg -m venv $(DBG_VENV)
	$(DBG_VENV)/bin/python -m pip install -q "$$(grep '^setuptools==' $(PINS))"
	rm -rf build/dbg && mkdir -p build/dbg/memleash
	$(DBG_VENV)/bin/python setup.py -q build_ext --build-lib build/dbg --build-temp build/dbg/tmp --force
	cp pkg/memleash/*.py build/dbg/memleash/
	for s in refleak_cache refleak_emitter refleak_decorators refleak_acached refleak_tracker; do \
	  echo "test-refleaks: $$s"; \
	  PYTHONPATH=build/dbg $(DBG_VENV)/bin/python tests/isolated/$$s.py tests 100000 || exit 1; \
	done

.PHONY: test-redis
# memleash.redis and memleash.TieredCache against a real redis-server: tools/with-redis.py
# starts one on a free loopback port (redis-server 8.0.2 from the Debian 13 root,
# tools/in-root.sh trixie, unless this machine has a 7.4 or newer one), runs
# tests/test_redis*.py with REDIS_URL pointing at it, and stops it however the run ends.
# MEMLEASH_REDIS_REQUIRE=1 (CI) turns a missing or too old server into failures, not skips.
REDIS_TESTS = $(wildcard tests/test_redis*.py)
test-redis: build
	PYTHONPATH=pkg $(PYTHON) tools/with-redis.py $(VPY) -m pytest -q -p no:cacheprovider $(REDIS_TESTS)

.PHONY: typecheck
# Typing, as a user's type checker sees memleash: mypy's stubtest holds the stubs to the
# runtime (tools/stubtest-allowlist.txt: only what it cannot see, each with its reason);
# mypy --strict over the package, over tests/typing (assert_type lines, and lines that
# must be rejected, whose `type: ignore` would otherwise be unused) and over every python
# example of README.md and docs/ (tools/doc-examples.py). mypy is pinned in
# requirements/typing.txt, installed into .venv by this target only.
TYPING_ENV := PYTHONPATH=pkg MYPYPATH=pkg MYPY_CACHE_DIR=build/typing/cache
$(VENV)/.typing: requirements/typing.txt $(VENV)/.pins
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
# `make fuzz FUZZ_SECONDS=600` for a long run.
FUZZ_RUNS    ?= 30000
FUZZ_SECONDS ?=
fuzz: apt venv
	@tools/ensure-apt.sh clang libclang-rt-14-dev
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
# The benchmark suite against the peers; writes docs/benchmarks.md from its own output.
# It runs with a redis-server of its own (tools/with-redis.py) for the Redis sections.
bench: build bench-core
	PYTHONPATH=pkg $(PYTHON) tools/with-redis.py $(VPY) bench/run.py --core $(BENCH_CORE) \
	  --out docs/benchmarks.md

# The Redis sections alone (bench/redis_cache.py, about 1 min): replaces them in
# docs/benchmarks.md and leaves the other sections as they are.
bench-redis: build
	PYTHONPATH=pkg $(PYTHON) tools/with-redis.py $(VPY) bench/redis_cache.py --out docs/benchmarks.md

.PHONY: bench-tinylfu
# Only the TinyLFU sections of docs/benchmarks.md (hit ratios against theine, LRU, LFU;
# speed against LRUCache), rewritten in place (bench/tinylfu.py).
bench-tinylfu: build
	PYTHONPATH=pkg $(VPY) bench/tinylfu.py --out docs/benchmarks.md

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
DIST_PYTHONS ?= python3.11
DVENV        := build/venv-dist
DIST_SRC     := $(wildcard $(shell git ls-files 2>/dev/null))
# run tools/SCRIPT for each DIST_PYTHONS entry: $(call per_python,SCRIPT,ARGS)
per_python = for py in $(DIST_PYTHONS); do \
	  case $$py in \
	    *:*) tools/in-root.sh $${py%%:*} tools/$(1) $${py\#*:} $(2) || exit 1 ;; \
	    *) tools/$(1) $$py $(2) || exit 1 ;; \
	  esac; \
	done

.PHONY: dist test-wheel
$(DVENV)/.pins: requirements/dist.txt requirements/pins.txt
	@test -x $(DVENV)/bin/python || $(PYTHON) -m venv $(DVENV)
	$(DVENV)/bin/python -m pip install -q -r requirements/dist.txt
	@touch $@

dist: apt $(DVENV)/.pins
	rm -rf dist build/dist && mkdir -p build/dist/raw
	$(DVENV)/bin/python -m build -q --sdist --no-isolation -o dist .
	$(call per_python,build-wheel.sh,$(SDIST) build/dist/raw)
	PATH="$(CURDIR)/$(DVENV)/bin:$$PATH" auditwheel repair -w dist build/dist/raw/*.whl
	$(DVENV)/bin/twine check --strict dist/*
	$(DVENV)/bin/python tools/check-dist.py dist

$(SDIST): $(DIST_SRC)
	$(MAKE) dist

test-wheel: $(SDIST)
	$(call per_python,test-wheel.sh,dist)

.PHONY: test-minroot
# The README's promise that a wheel needs no build tools, kept: the cp311 wheel pip-installed
# offline in a minimal Debian 12 root without compiler or headers (cached in
# ~/.cache/memleash/roots/minbase, made by debootstrap on first use), imported, and the
# README's examples run there (tools/minroot.sh).
test-minroot: $(SDIST)
	tools/minroot.sh dist
