"""Alerts and the sinks they go to: console (structlog), JSONL, in-memory (for tests)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, TextIO, runtime_checkable

import structlog

from driftwatch._outcome import Outcome, format_time
from driftwatch._stats import Estimate

__all__ = [
    "Alert",
    "AlertSink",
    "ConsoleSink",
    "InMemorySink",
    "JsonlSink",
    "RestoringSink",
    "alert_id",
    "confirmed_at",
    "resolved_at",
]

Status = Literal["suspected", "confirmed", "resolved", "annotation"]

#: What an alert reports: ``drift`` (a detector fired; suspected, then confirmed or resolved),
#: ``version_change`` (a version marker such as the model changed; status ``annotation``) or
#: ``version_comparison`` (the before/after comparison that follows a version change; status
#: ``confirmed`` when the signal differs, else ``resolved``).
KINDS = ("drift", "version_change", "version_comparison")


def alert_id(
    stream_key: str, signal: str, direction: str, change_at: float, kind: str = "drift", episode: int = 0
) -> str:
    """Stable dedup key of one drift episode: the same for its suspected, confirmed and resolved forms.

    ``episode`` numbers the episodes of one (stream, signal): two episodes can share a change time
    (outcomes with equal timestamps, a change dated from a resumed baseline), never a number.
    """
    raw = f"{stream_key}\x1f{signal}\x1f{direction}\x1f{change_at:.3f}"
    if kind != "drift":  # drift ids predate kinds and must not change
        raw += f"\x1f{kind}"
    if episode:
        raw += f"\x1f#{episode}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class Alert:
    """A drift alert with its evidence (Alert JSON in design.md). Sinks must be idempotent on ``id``."""

    id: str
    status: Status
    stream: dict[str, str]
    signal: str
    direction: str
    detected_at: float
    change_at: float
    baseline: Estimate
    current: Estimate
    effect: float
    effect_ci: tuple[float, float]
    p_value: float | None
    detector: dict[str, Any]
    message: str
    delay: int = 0
    """Observations from the estimated change to the detection."""
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = "drift"
    """One of ``KINDS``: a drift alert, a version-change annotation or a before/after comparison."""

    def with_status(self, status: Status, **changes: Any) -> Alert:
        return replace(self, status=status, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The Alert JSON form (design.md)."""
        return {
            "id": self.id,
            **({"incident": inc} if isinstance(inc := self.extra.get("incident"), str) else {}),
            "kind": self.kind,
            "status": self.status,
            "stream": dict(self.stream),
            "signal": self.signal,
            "direction": self.direction,
            "detected_at": format_time(self.detected_at),
            "change_at": format_time(self.change_at),
            "baseline": self.baseline.to_dict(),
            "current": self.current.to_dict(),
            "effect": self.effect,
            "effect_ci": list(self.effect_ci),
            "p_value": self.p_value,
            "detector": dict(self.detector),
            "delay": self.delay,
            "message": self.message,
            **({"confirmed_at": format_time(at)} if (at := confirmed_at(self)) is not None else {}),
            **({"resolved_at": format_time(at)} if (at := resolved_at(self)) is not None else {}),
            **({"extra": self.extra} if self.extra else {}),
        }


def resolved_at(alert: Alert) -> float | None:
    """When a ``resolved`` alert resolved (epoch seconds; event time of the deciding outcome), else None."""
    if alert.status != "resolved":
        return None
    at = alert.extra.get("resolved_at")
    return float(at) if isinstance(at, int | float) and not isinstance(at, bool) else None


def confirmed_at(alert: Alert) -> float | None:
    """When a drift alert was confirmed (epoch seconds; event time of the deciding outcome), else None.

    Kept on the alert once it resolves, so time to page can be measured from the alerts alone.
    """
    at = alert.extra.get("confirmed_at")
    return float(at) if isinstance(at, int | float) and not isinstance(at, bool) else None


def stamp_resolved(alert: Alert, at: float) -> Alert:
    """``alert`` with ``extra.resolved_at = at`` if it is a resolve that does not say when yet."""
    if alert.status != "resolved" or "resolved_at" in alert.extra:
        return alert
    return replace(alert, extra={**alert.extra, "resolved_at": at})


@runtime_checkable
class AlertSink(Protocol):
    """Where alerts go. ``export`` must not raise or block for long; the monitor guards it anyway."""

    def export(self, alert: Alert) -> None: ...

    def shutdown(self) -> None: ...


@runtime_checkable
class RestoringSink(Protocol):
    """A sink with state of its own about open alerts (a gauge, a dashboard), rebuilt after a restart.

    Optional beside ``AlertSink``. After a monitor restores a checkpoint (``Monitor.restore``,
    ``driftwatch serve`` on start), it calls ``restore(alerts)`` once with the drift alerts open in
    it (confirmed and still suspected): the sink takes them as open without announcing them again
    (no count, no log record, no page). Alerts raised after that come through ``export`` as usual.
    Like ``export``, it must not raise or block for long; the monitor guards it anyway.
    """

    def restore(self, alerts: Sequence[Alert]) -> None: ...


class OutcomeObserver(Protocol):
    """A sink that also wants every outcome (for example to count them as a metric)."""

    def record_outcome(self, outcome: Outcome, stream: dict[str, str]) -> None: ...


class InMemorySink:
    """Keeps every alert in a list; for tests and notebooks."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self._lock = threading.Lock()

    def export(self, alert: Alert) -> None:
        with self._lock:
            self.alerts.append(alert)

    def shutdown(self) -> None:
        pass

    def by_status(self, status: str) -> list[Alert]:
        with self._lock:
            return [a for a in self.alerts if a.status == status]


class JsonlSink:
    """Writes each alert as one line of Alert JSON to a file, flushed per alert.

    ``append`` (the default, for a service that restarts) keeps what the file holds; an offline run
    (``replay``, ``ingest``, ``bench``) passes ``append=False`` so that the file holds that run's
    alerts only, not those of every earlier run mixed in.
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = True) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._fh: TextIO | None = (
            open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open
            if append
            else open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        )

    def export(self, alert: Alert) -> None:
        with self._lock:
            if self._fh is None:
                return
            self._fh.write(json.dumps(alert.to_dict(), sort_keys=False) + "\n")
            self._fh.flush()

    def shutdown(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def changes_text(changes: list[dict[str, str]]) -> str:
    """Version changes as read by people: ``model gpt-4-0314 -> gpt-4-0613, effort high -> low``."""
    return ", ".join(f"{c['marker']} {c['before']} -> {c['after']}" for c in changes)


def describe(alert: Alert) -> str:
    """One human sentence: what changed, by how much, since when, with what confidence."""
    stream = ", ".join(f"{k}={v}" for k, v in alert.stream.items())
    if alert.kind == "version_change":
        return f"version change on {stream}: {changes_text([alert.extra])}"
    where = f"on {stream}"
    if alert.kind == "version_comparison":
        where = f"after {changes_text(alert.extra.get('changes', []))} {where}"
    b, c = alert.baseline, alert.current
    if alert.signal == "success":
        change = (
            f"pass rate {_pct(b.mean)} [{_pct(b.ci_low)}, {_pct(b.ci_high)}] -> {_pct(c.mean)} "
            f"[{_pct(c.ci_low)}, {_pct(c.ci_high)}]"
        )
    else:
        # Against a seasonal baseline both means are of values minus their hour's (weekday's)
        # offset (detectors/_seasonal.py): on-call must know the "before" is not a raw average.
        seasonal = (alert.detector or {}).get("seasonal")
        adjusted = (
            f"; seasonally adjusted by {' and '.join(k.replace('_', ' ') for k in seasonal)}"
            if seasonal
            else ""
        )
        change = f"{alert.signal} {b.mean:.4g} -> {c.mean:.4g} (x{alert.effect:.3g}{adjusted})"
    p = "" if alert.p_value is None else f", p={alert.p_value:.2g}"
    moved = tasks_text(alert)
    tail = f"; moved most: {moved}" if moved else ""
    return f"{alert.signal} {alert.direction} {where}: {change}{p}{tail}"


def tasks_text(alert: Alert) -> str:
    """The task ids that moved most (``extra["tasks_moved"]``), short: ``t7 1/8 vs 74%, t3 0/4 vs 55%``."""
    rows = alert.extra.get("tasks_moved")
    if not isinstance(rows, list):
        return ""
    parts = []
    for row in rows:
        try:
            n, mean, expected = int(row["n"]), float(row["mean"]), float(row["expected"])
            if alert.signal == "success":
                parts.append(f"{row['task_id']} {round(mean * n)}/{n} vs {_pct(expected)}")
            else:
                parts.append(f"{row['task_id']} {mean:.4g} vs {expected:.4g} (n={n})")
        except (KeyError, TypeError, ValueError):
            continue
    return ", ".join(parts)


class ConsoleSink:
    """Logs each alert through structlog (to stderr by default), one line with its statistics."""

    def __init__(self, stream: TextIO | None = None, logger: Any = None) -> None:
        #: ``logger``: a structlog logger to log through instead (the command line's pipeline).
        self._logger = (
            logger
            if logger is not None
            else structlog.wrap_logger(
                structlog.PrintLogger(stream or sys.stderr),
                processors=[
                    structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.dev.ConsoleRenderer(colors=False),
                ],
            )
        )

    def export(self, alert: Alert) -> None:
        b, c = alert.baseline, alert.current
        self._logger.warning(
            f"driftwatch.drift {alert.status}: {describe(alert)}",
            id=alert.id,
            change_at=format_time(alert.change_at),
            detected_at=format_time(alert.detected_at),
            delay_obs=alert.delay,
            baseline_n=b.n,
            current_n=c.n,
        )

    def shutdown(self) -> None:
        pass
