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

venv: $(VENV)/.pins

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
	rm -rf build $(CTEST) pkg/memleash/_core*.so

# A variant build in build/<name>/ next to a copy of the Python package, so the in-place
# release build is left alone: $(call variant,NAME,ENV)
define variant
	rm -rf build/$(1) && mkdir -p build/$(1)/memleash
	$(2) $(VPY) setup.py -q build_ext --build-lib build/$(1) --build-temp build/$(1)/tmp --force
	cp pkg/memleash/*.py pkg/memleash/*.pyi pkg/memleash/py.typed build/$(1)/memleash/
endef

.PHONY: test-debug
# Consistency validators (ml_cache_check) after every mutation, -O0, asserts on.
test-debug: apt venv
	$(call variant,debug,MEMLEASH_DEBUG=1)
	PYTHONPATH=build/debug $(VPY) -m pytest -q -p no:cacheprovider

.PHONY: test-asan
# AddressSanitizer + UndefinedBehaviorSanitizer over the whole pytest suite. PYTHONMALLOC=malloc
# so small PyMem blocks are not hidden in pymalloc arenas; the ASan runtime is preloaded
# because the interpreter itself is not instrumented.
ASAN_RT  = $(shell $(CC) -print-file-name=libasan.so)
UBSAN_RT = $(shell $(CC) -print-file-name=libubsan.so)
test-asan: apt venv
	$(call variant,asan,MEMLEASH_SANITIZE=1 MEMLEASH_DEBUG=1)
	PYTHONPATH=build/asan PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 LD_PRELOAD="$(ASAN_RT) $(UBSAN_RT)" \
	  $(VPY) -m pytest -q -p no:cacheprovider -m "not memray"

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

.PHONY: bench
# The benchmark suite against the peers; writes docs/benchmarks.md from its own output.
bench: build bench-core
	PYTHONPATH=pkg $(VPY) bench/run.py --core $(BENCH_CORE) --out docs/benchmarks.md
