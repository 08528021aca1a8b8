"""The package's public surface: names, stub, typing marker."""

import ast
import pathlib

import memleash

PKG = pathlib.Path(memleash.__file__).parent


def _stub_all():
    tree = ast.parse((PKG / "__init__.pyi").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "__all__":
            return ast.literal_eval(node.value)
    raise AssertionError("no __all__ in the stub")


def test_stub_lists_the_public_names():
    assert sorted(_stub_all()) == sorted(memleash.__all__)


def test_every_public_name_exists():
    for name in memleash.__all__:
        assert getattr(memleash, name).__module__.startswith("memleash")


def test_package_is_typed():
    assert (PKG / "py.typed").exists()
