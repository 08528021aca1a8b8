"""Cheap source checks on the C code (in the manner of msgspec's test_cpylint)."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORE = sorted((ROOT / "csrc" / "core").glob("*.[ch]"))
BINDING = sorted((ROOT / "csrc" / "py").glob("*.[ch]"))


def test_core_sources_exist():
    assert len(CORE) >= 8 and len(BINDING) >= 3


def test_core_never_includes_python_h():
    offenders = [p.name for p in CORE if re.search(r"#\s*include\s*[<\"]Python\.h", p.read_text())]
    assert offenders == []


def test_core_names_are_prefixed():
    for p in CORE:
        if p.suffix != ".h":
            continue
        # a line at column 0 that declares or defines a function (not a typedef)
        for name in re.findall(r"^(?!typedef)[A-Za-z_][\w\s\*]*?\b(\w+)\s*\(", p.read_text(), re.M):
            assert name.startswith("ml_") or name.startswith("ML_"), (p.name, name)


def test_every_recursive_call_guard_is_left():
    for p in BINDING:
        text = p.read_text()
        assert text.count("Py_EnterRecursiveCall") == text.count("Py_LeaveRecursiveCall"), p.name


def test_binding_allocates_through_pymem_only():
    for p in BINDING + CORE:
        text = re.sub(r"/\*.*?\*/", "", p.read_text(), flags=re.S)
        if p.name == "alloc.c":
            continue   # the C library allocator for core users outside Python
        # a direct C-library call; calls through an ml_alloc (a->free(...)) are fine
        assert not re.search(r"(?<![\w>.])(malloc|calloc|realloc|free)\s*\(", text), p.name
