"""The weak-listener event emitter: pyee's API, listeners that never keep owners alive.

``EventEmitter`` is a C type (``memleash._core.EventEmitter``), usable directly and as a
base class. A bound method is held as a weak reference to its object plus its function,
and unlinked the moment the object dies; plain functions, lambdas and closures are held
strongly (a weak lambda would vanish at once). ``weak=True`` / ``weak=False`` on ``on``,
``once``, ``add_listener`` and ``listens_to`` override that choice.
"""

from ._core import EventEmitter, ListenerLeakWarning, PyeeError, PyeeException

#: pyee's old name for the emitter's own error, kept so ``except EmitterError`` works.
EmitterError = PyeeError

__all__ = ["EmitterError", "EventEmitter", "ListenerLeakWarning", "PyeeError", "PyeeException"]
