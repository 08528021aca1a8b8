"""Why ``memleash._core`` (the C extension) failed to import, said plainly.

Without this, a missing or mismatched extension surfaces as Python's "cannot import name
'_core' from partially initialized module 'memleash' (most likely due to a circular
import)", which names neither the cause nor the remedy. ``explain()`` looks at the files
beside the package and tells the three cases apart: no extension at all, extensions built
for other interpreters only (their file names say which), and one built for this
interpreter that the loader refused (the loader's own message is kept).
"""

from __future__ import annotations

import importlib.machinery
import os
import platform
import sys

REBUILD = ("rebuild it for this interpreter: `python -m pip install --force-reinstall "
           "--no-cache-dir memleash`, or in a source checkout `python setup.py build_ext "
           "--inplace` (`make build` for the project's .venv)")


def _this_python() -> str:
    return (f"{platform.python_implementation()} {platform.python_version()} "
            f"({sys.executable})")


def explain(exc: ImportError, package_dir: str) -> ImportError:
    """An ImportError naming what is wrong with ``memleash._core`` in ``package_dir`` and
    how to rebuild it; ``exc`` is the error the import raised (chain it as the cause)."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    try:
        names = sorted(os.listdir(package_dir))
    except OSError:
        names = []
    found = [n for n in names if n.startswith("_core.") and n != "_core.pyi"]
    loadable = [n for n in found if any(n == "_core" + s for s in suffixes)]
    if not found:
        text = (f"memleash's C extension (memleash._core) is missing from {package_dir}: "
                f"this copy of memleash was never built; {REBUILD}")
    elif not loadable:
        text = (f"memleash's C extension in {package_dir} was built for another Python "
                f"({', '.join(found)}) and cannot be loaded by {_this_python()}, which "
                f"loads '_core' + one of {', '.join(suffixes)}; {REBUILD}")
    else:
        text = (f"memleash's C extension {os.path.join(package_dir, loadable[0])} could not "
                f"be loaded by {_this_python()}: {exc}; it was probably built for another "
                f"Python or system; {REBUILD}")
    return ImportError(text, name="memleash._core", path=package_dir)
