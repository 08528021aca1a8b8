"""Build of the C extension memleash._core (metadata lives in pyproject.toml).

Needs a C11 compiler, the Python headers and xxHash's header (xxhash.h: Debian/Ubuntu
libxxhash-dev, Fedora xxhash-devel, Homebrew xxhash); xxHash is compiled in (XXH_INLINE_ALL),
so the built extension needs nothing of it at run time. Without the header the build stops
at once with one line that says so, before any compilation.

Switches (environment):
  MEMLEASH_WERROR=1   turn every warning into an error (CI sets it)
  MEMLEASH_DEBUG=1    -O0 -g3 and consistency validators on (NDEBUG off)
  MEMLEASH_SANITIZE=1 AddressSanitizer + UndefinedBehaviorSanitizer
  MEMLEASH_TSAN=1     ThreadSanitizer (make test-ft-tsan: for an interpreter built with it)
  MEMLEASH_FUZZ=1     clang's libFuzzer coverage + AddressSanitizer (make fuzz: CC=clang,
                      the runtime is atheris' asan_with_fuzzer.so, preloaded)
"""
import glob
import os
import subprocess
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError

WARN = ["-Wall", "-Wextra", "-Wconversion", "-Wshadow", "-Wstrict-prototypes"]
# The interpreter's headers are a system directory for us: warnings there are not ours.
# Not for a debug interpreter (make test-refleaks): Debian's symlinks its headers to the
# release ones, and through -isystem GCC would then read the release pyconfig.h, whose
# Py_INCREF does not count in sys.gettotalrefcount.
isystem = [] if sysconfig.get_config_var("Py_DEBUG") else ["-isystem", sysconfig.get_paths()["include"]]
# Only PyInit__core is exported: the core's ml_* functions stay out of the dynamic symbol
# table (they remain in the static one, where debuggers and memray --native find them).
cflags = ["-std=c11", "-fvisibility=hidden", *isystem, *WARN]
# The free-threaded build: a shared byte budget's sum and access clock are C11 atomics
# (csrc/core/sharedbudget.h); with the GIL they are plain fields (a hit costs an increment).
if sysconfig.get_config_var("Py_GIL_DISABLED"):
    cflags.append("-DML_SHARED_ATOMIC=1")
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

if os.environ.get("MEMLEASH_TSAN") == "1":
    tsan = ["-fsanitize=thread", "-fno-omit-frame-pointer", "-g"]
    cflags += tsan
    ldflags += ["-fsanitize=thread"]

if os.environ.get("MEMLEASH_FUZZ") == "1":
    fuzz = ["-fsanitize=fuzzer-no-link,address", "-fno-omit-frame-pointer", "-g"]
    cflags += fuzz
    ldflags += ["-fsanitize=address"]

sources = sorted(glob.glob("csrc/core/*.c")) + sorted(glob.glob("csrc/py/*.c"))
depends = sorted(glob.glob("csrc/**/*.h", recursive=True))

XXHASH_MISSING = (
    "memleash: building from source needs xxHash's header xxhash.h, not found by {cc}: install "
    "libxxhash-dev (Debian/Ubuntu), xxhash-devel (Fedora) or xxhash (macOS: brew install "
    "xxhash), or set CPPFLAGS=-I<directory of xxhash.h>"
)
# Where a package manager puts headers that the compiler may not search by default.
XXHASH_PREFIXES = [os.environ.get("HOMEBREW_PREFIX", ""), "/opt/homebrew", "/usr/local"]


def _finds_header(cmd, include_dirs):
    """True if the compiler command ``cmd`` (its flags included) preprocesses
    ``#include <xxhash.h>`` with ``include_dirs`` added."""
    probe = [*cmd, *(f"-I{d}" for d in include_dirs), "-E", "-x", "c", "-o", os.devnull, "-"]
    try:
        done = subprocess.run(probe, input=b"#include <xxhash.h>\n", capture_output=True)
    except OSError:
        return False
    return done.returncode == 0


class BuildExt(build_ext):
    """build_ext that finds xxhash.h first (or stops with one line saying what to install)."""

    def build_extensions(self):
        cmd = getattr(self.compiler, "compiler_so", None)
        if cmd:   # a Unix-style compiler: probe it with the flags it will compile with
            for ext in self.extensions:
                extra = [os.path.join(p, "include") for p in XXHASH_PREFIXES
                         if p and os.path.isfile(os.path.join(p, "include", "xxhash.h"))]
                for attempt in ([], *([d] for d in extra)):
                    if _finds_header(cmd, ext.include_dirs + attempt):
                        ext.include_dirs += attempt
                        break
                else:
                    raise CompileError(XXHASH_MISSING.format(cc=cmd[0]))
        super().build_extensions()


setup(
    cmdclass={"build_ext": BuildExt},
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
