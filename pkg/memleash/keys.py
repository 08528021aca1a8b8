"""Key functions for the memoizing decorators, as ``cachetools.keys`` (in C).

A key is a plain tuple of the arguments; keyword arguments follow a marker, as
``(name, value)`` pairs sorted by name (so ``f(a=1, b=2)`` and ``f(b=2, a=1)`` share an
entry). The ``typed`` variants append each argument's type, so ``f(1)`` and ``f(1.0)`` get
entries of their own. The ``method`` variants leave out their first argument, ``self``.

``memleash.cached`` and ``memleash.cachedmethod`` recognise these functions and build the
same keys without calling them.
"""

from __future__ import annotations

from . import _core

__all__ = ["hashkey", "methodkey", "typedkey", "typedmethodkey"]

hashkey = _core.hashkey
methodkey = _core.methodkey
typedkey = _core.typedkey
typedmethodkey = _core.typedmethodkey
