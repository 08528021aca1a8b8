"""Build of the C extension memleash._core (metadata lives in pyproject.toml).

Switches (environment):
  MEMLEASH_WERROR=1   turn every warning into an error (CI sets it)
  MEMLEASH_DEBUG=1    -O0 -g3 and consistency validators on (NDEBUG off)
  MEMLEASH_SANITIZE=1 AddressSanitizer + UndefinedBehaviorSanitizer
  MEMLEASH_FUZZ=1     clang's libFuzzer coverage + AddressSanitizer (make fuzz: CC=clang,
                      the runtime is atheris' asan_with_fuzzer.so, preloaded)
"""
import glob
import os
import sysconfig

from setuptools import Extension, setup

WARN = ["-Wall", "-Wextra", "-Wconversion", "-Wshadow", "-Wstrict-prototypes"]
# The interpreter's headers are a system directory for us: warnings there are not ours.
# Not for a debug interpreter (make test-refleaks): Debian's symlinks its headers to the
# release ones, and through -isystem GCC would then read the release pyconfig.h, whose
# Py_INCREF does not count in sys.gettotalrefcount.
isystem = [] if sysconfig.get_config_var("Py_DEBUG") else ["-isystem", sysconfig.get_paths()["include"]]
cflags = ["-std=c11", *isystem, *WARN]
ldflags = []
undef = []
if os.environ.get("MEMLEASH_WERROR") == "1":
    cflags.append("-Werror")
if os.environ.get("MEMLEASH_DEBUG") == "1":
    cflags += ["-O0", "-g3"]
    undef.append("NDEBUG")
else:
    cflags.append("-O2")
if os.environ.get("MEMLEASH_SANITIZE") == "1":
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    cflags += san
    ldflags += san

if os.environ.get("MEMLEASH_FUZZ") == "1":
    fuzz = ["-fsanitize=fuzzer-no-link,address", "-fno-omit-frame-pointer", "-g"]
    cflags += fuzz
    ldflags += ["-fsanitize=address"]

sources = sorted(glob.glob("csrc/core/*.c")) + sorted(glob.glob("csrc/py/*.c"))
depends = sorted(glob.glob("csrc/**/*.h", recursive=True))

setup(
    ext_modules=[
        Extension(
            "memleash._core",
            sources=sources,
            depends=depends,
            include_dirs=["csrc"],
            extra_compile_args=cflags,
            extra_link_args=ldflags,
            undef_macros=undef,
        )
    ],
)
