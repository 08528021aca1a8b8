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


def _code(p):
    """A C file's text without comments (strings are kept: they are never code here)."""
    return re.sub(r"/\*.*?\*/", "", p.read_text(), flags=re.S)


# Borrowed references that a collection, a __del__ or another thread can free while they
# are held; compat.h gives the strong-reference forms (PyWeakref_GetRef,
# PyDict_GetItemRef, ml_type_lookup_ref) and is the one place the borrowed ones appear.
BORROWING = ["PyWeakref_GET_OBJECT", "PyWeakref_GetObject", "PyDict_GetItem",
             "PyDict_GetItemString", "PyDict_GetItemWithError", "_PyType_Lookup",
             "PyList_GetItem", "PyTuple_GetItem", "PySequence_Fast_GET_ITEM"]


def test_borrowed_lookups_only_in_the_compatibility_header():
    for p in BINDING:
        if p.name == "compat.h":
            continue
        for name in BORROWING:
            assert not re.search(rf"\b{name}\s*\(", _code(p)), (p.name, name)


def test_private_api_and_struct_internals_only_in_the_compatibility_header():
    # every private call and internal field is listed and version-guarded in compat.h;
    # the macros of the public API that the preprocessor expands are not in the text
    internals = r"\bob_digit\b|->wstr\b|\bwr_next\b|\bwr_prev\b|->d_method\b|\b_Py[A-Za-z]\w*"
    for p in BINDING:
        if p.name == "compat.h":
            continue
        found = re.findall(internals, _code(p))
        assert found == [], (p.name, sorted(set(found)))


def _functions(p):
    """(name, body) of each function defined at column 0 in a C file."""
    text = _code(p)
    for m in re.finditer(r"^(\w+)\s*\([^;{]*\)\s*\{", text, re.M):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        yield m.group(1), text[m.end():i]


def test_trashcan_deallocs_release_their_type_inside_the_trashcan():
    # a dealloc the trashcan defers runs again later, whole: a type decref after
    # Py_TRASHCAN_END would run twice (it freed the Timer type once)
    for p in BINDING:
        for name, body in _functions(p):
            if "Py_TRASHCAN_BEGIN" not in body:
                continue
            end = body.index("Py_TRASHCAN_END")
            assert not re.search(r"Py_(X)?DECREF\(\s*(tp|type)\s*\)", body[end:]), (p.name, name)


# GC types whose instances can hold user objects that hold more of the same type (a chain
# as long as the user makes it): their dealloc releases a chain iteratively.
def test_container_deallocs_use_the_trashcan():
    containers = {"cache_dealloc", "timer_dealloc", "emitter_dealloc"}
    found = {}
    for p in BINDING:
        for name, body in _functions(p):
            if name in containers:
                found[name] = "Py_TRASHCAN_BEGIN" in body
    assert found == {name: True for name in containers}


def test_recursive_paths_enter_a_recursion_guard():
    # paths that follow a user-made chain of our own objects one C frame per link
    guarded = {"timer_getattro"}
    seen = set()
    for p in BINDING:
        for name, body in _functions(p):
            if name in guarded:
                assert "Py_EnterRecursiveCall" in body, (p.name, name)
                seen.add(name)
    assert seen == guarded


def test_binding_files_do_not_call_each_other_in_a_circle():
    sources = [p for p in BINDING if p.suffix == ".c"]
    defined = {}
    for p in sources:
        for name, _ in _functions(p):
            if not re.search(rf"^static[^;{{]*\n{name}\s*\(", _code(p), re.M):
                defined[name] = p.name
    calls = {p.name: set() for p in sources}
    for p in sources:
        for name in set(re.findall(r"\b(\w+)\s*\(", _code(p))):
            owner = defined.get(name)
            if owner is not None and owner != p.name:
                calls[p.name].add(owner)

    def cycle_from(start):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in calls[node]:
                if nxt == start:
                    return path + [nxt]
                if nxt not in path:
                    stack.append((nxt, path + [nxt]))
        return None

    cycles = [c for c in map(cycle_from, sorted(calls)) if c]
    assert cycles == []
