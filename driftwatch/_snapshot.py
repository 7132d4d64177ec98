"""Serialising driftwatch's own state objects for checkpoints: pickle, read back with an allow-list.

Why pickle is acceptable here: a checkpoint is written by this process into its own local state
file and read back by the same program; it never crosses a trust boundary (whoever can write the
file can already run code as this user). Still, reading goes through an allow-list of classes
(driftwatch's own modules and a few plain containers), so a foreign or damaged blob fails with a
clear error instead of constructing arbitrary objects. Only plain data is pickled: the monitor's
threads, locks, queue and sinks are left out by the callers.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable
from typing import Any

from driftwatch._errors import StateError
from driftwatch._moved import moved

__all__ = ["dumps", "loads"]

#: Classes outside driftwatch that plain state is made of.
_ALLOWED = {
    ("collections", "deque"),
    ("collections", "OrderedDict"),
    ("array", "array"),
    ("array", "_array_reconstructor"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, what: str, modules: frozenset[str]) -> None:
        super().__init__(io.BytesIO(data))
        self._what = what
        self._modules = modules

    def find_class(self, module: str, name: str) -> Any:
        module = moved(module)  # a state file written before a module moved names its old path
        ours = module == "driftwatch" or module.startswith("driftwatch.") or module in self._modules
        if ours or (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise StateError(
            f"{self._what}: refers to {module}.{name}, which is not part of driftwatch's state; "
            "the checkpoint is damaged or was not written by driftwatch — move the state file aside"
        )


def dumps(obj: Any) -> bytes:
    """``obj`` as bytes (pickle protocol 5, the fastest and most compact for our plain objects)."""
    return pickle.dumps(obj, protocol=5)


def loads(blob: bytes, what: str, modules: Iterable[str] = ()) -> Any:
    """The object in ``blob``; only driftwatch's classes (and those of ``modules``) may appear in it.

    ``what`` names the blob in errors (e.g. "monitor snapshot").
    """
    try:
        return _Unpickler(bytes(blob), what, frozenset(modules)).load()
    except StateError:
        raise
    except Exception as exc:
        raise StateError(
            f"{what}: cannot be read ({type(exc).__name__}: {exc}); it is damaged or not a driftwatch "
            "checkpoint — move the state file aside to start afresh"
        ) from None
