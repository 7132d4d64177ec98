"""A stream's state: its per-signal watches and its version tracking (pickled into checkpoints)."""

from __future__ import annotations

from collections.abc import Iterable

from driftwatch._alerting.alerts import Alert
from driftwatch._monitor.versions import _Versions
from driftwatch._monitor.watch import _SignalWatch

__all__ = ["open_alerts"]


class _Stream:
    __slots__ = ("labels", "versions", "watches")

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.watches: dict[str, _SignalWatch] = {}
        self.versions = _Versions()


def open_alerts(streams: Iterable[_Stream]) -> list[Alert]:
    """The open drift alerts of ``streams``: each confirmed one not yet resolved, each suspected one."""
    out: list[Alert] = []
    for stream in streams:
        for watch in stream.watches.values():
            if watch.open is not None:
                out.append(watch.open.alert)
            if watch.active is not None:
                out.append(watch.active)
    return out
