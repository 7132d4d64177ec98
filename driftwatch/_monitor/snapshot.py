"""Checkpoints: driftwatch's own state objects pickled and read back with an allow-list, and the
monitor snapshot's format, settings and checks (``Monitor.snapshot``/``restore``/``merge``).

``dumps``/``loads`` also serve serve's checkpoints and the notifiers' delivery state.

Why pickle is acceptable here: a checkpoint is written by this process into its own local state
file and read back by the same program; it never crosses a trust boundary (whoever can write the
file can already run code as this user). Still, reading goes through an allow-list of classes
(driftwatch's own modules and a few plain containers), so a foreign or damaged blob fails with a
clear error instead of constructing arbitrary objects. Only plain data is pickled: the monitor's
threads, locks, queue and sinks are left out by the callers.
"""

from __future__ import annotations

import io
import logging
import pickle
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from driftwatch._errors import StateError
from driftwatch._monitor.incidents import Incidents
from driftwatch._monitor.moved import moved_class
from driftwatch._monitor.stream import _Stream

if TYPE_CHECKING:
    from driftwatch._config import Config

__all__ = [
    "READABLE_FORMATS",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_SETTINGS",
    "check_snapshot",
    "dumps",
    "loads",
    "read_incidents",
    "read_streams",
]

#: Format of ``Monitor.snapshot``; ``restore`` refuses those outside ``READABLE_FORMATS``. A snapshot
#: pickles the monitor's state classes (_Stream, _SignalWatch, LaggedSR, ...): bump this when their
#: attributes change, and give the classes defaults for what older formats lack (``__setstate__``).
SNAPSHOT_FORMAT = 7
#: Older formats ``restore`` still reads: the state classes fill the attributes those lacked. Format 6
#: added per-task detection (``AbilitySR`` in a watch, the ``task_signals`` setting); a watch restored
#: from an older format keeps its ``LaggedSR``. Format 7 made every signal a task signal by default
#: (and a watch may hold a ``shadow`` detector during its warm-up): a format-6 snapshot restores
#: whatever ``task_signals`` is now, its watches keeping the detectors they had. Format 7 also keeps
#: the incidents (``"incidents"``: the version changes seen, the streams that moved); before it they
#: are rebuilt from the open alerts.
READABLE_FORMATS = (3, 4, 5, 6, SNAPSHOT_FORMAT)
#: Settings that change what a restored monitor would alert on: a snapshot only restores under equal
#: ones, except ``signals``, which may grow (see ``check_snapshot``).
SNAPSHOT_SETTINGS = (
    "budget",
    "warmup",
    "lag",
    "signals",
    "stream_labels",
    "task_signals",
    "confirm_alpha",
    "withdraw_beta",
    "min_shift",
    "max_fresh",
    "confirm_min",
    "confirm_max",
    "version_markers",
    "compare_min",
    "compare_max",
    "compare_alpha",
)
#: Settings whose meaning format 5 changed or added (stage two became sequential): a snapshot of an
#: older format restores whatever they are now (its suspected alerts go on under the new test).
_FORMAT_5_SETTINGS = frozenset({"confirm_alpha", "withdraw_beta", "min_shift", "max_fresh"})
#: Settings format 6 added and format 7 changed the default of: a snapshot of an older format
#: restores whatever they are now.
_FORMAT_7_SETTINGS = frozenset({"task_signals"})

log = logging.getLogger("driftwatch")

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
        # A state file written before a module or class moved names its old path.
        module, name = moved_class(module, name)
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


def read_incidents(blob: bytes, window: float) -> Incidents:
    """The ``Incidents`` of a snapshot (format 7 on), at the configured ``window``."""
    incidents = loads(blob, "monitor snapshot, incidents")
    if not isinstance(incidents, Incidents):
        raise StateError("monitor snapshot, incidents: not driftwatch's incidents; move the state file aside")
    incidents.window = window
    return incidents


def read_streams(state: dict[str, Any]) -> dict[str, _Stream]:
    """The streams of a checked snapshot (``state["streams"]``: key → bytes), unpickled."""
    streams = {}
    for key, blob in state["streams"].items():
        stream = loads(blob, f"monitor snapshot, stream {key}")
        if not isinstance(stream, _Stream):
            raise StateError(f"monitor snapshot, stream {key}: not a stream; move the state file aside")
        streams[key] = stream
    return streams


def check_snapshot(state: Any, config: Config) -> dict[str, Any]:
    """``state`` (an unpickled monitor snapshot) when ``config``'s monitor can read it; else StateError."""
    if not isinstance(state, dict) or "format" not in state:
        raise StateError("monitor snapshot: not a driftwatch monitor snapshot; move the state file aside")
    if state["format"] not in READABLE_FORMATS:
        raise StateError(
            f"monitor snapshot: format {state['format']!r}, this driftwatch reads format "
            f"{SNAPSHOT_FORMAT}; run the driftwatch version that wrote it, or move the state file "
            "aside to start afresh"
        )
    saved = state["settings"]
    older = state["format"] < 5
    before_7 = state["format"] < 7
    differ = [
        f"{name} {saved.get(name)!r} in the snapshot, {getattr(config, name)!r} now"
        for name in SNAPSHOT_SETTINGS
        if saved.get(name) != getattr(config, name)
        and name != "signals"
        and not (older and name in _FORMAT_5_SETTINGS)
        and not (before_7 and name in _FORMAT_7_SETTINGS)
    ]
    removed, added = _signal_changes(saved.get("signals"), list(config.signals))
    if removed:
        differ.insert(
            0,
            f"signals {removed!r} watched in the snapshot are not in signals now (signals may be added, "
            "not removed: a removed signal's detectors and open alerts would be lost)",
        )
    if differ:
        raise StateError(
            "monitor snapshot: taken with other detection settings (" + "; ".join(differ) + "); "
            "start with the settings it was taken with, or move the state file aside to start afresh "
            "(every stream then re-learns its baseline)"
        )
    if added:
        log.info("driftwatch: restoring a monitor snapshot; signals new since it start fresh: %s", added)
    result: dict[str, Any] = state
    return result


def _signal_changes(saved: Any, now: list[str]) -> tuple[list[str], list[str]]:
    """(signals the snapshot watched that ``now`` lacks, signals ``now`` adds), in their lists' order.

    Adding signals keeps a snapshot: each stream's existing detectors go on, and a new signal gets its
    detector at its first observation, as in a stream seen for the first time. Removing one refuses
    (the caller says which), like any other setting: its detectors and open alerts would be lost.
    """
    if not isinstance(saved, list | tuple):
        return [repr(saved)], []
    return [s for s in saved if s not in now], [s for s in now if s not in saved]
