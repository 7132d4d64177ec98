"""Incidents: the alerts of one cause, grouped so that on-call is paged once per cause, not per symptom.

Every drift alert and every version comparison gets an incident id (``extra["incident"]``, and
``incident`` in the Alert JSON); the notifiers page once per incident (one PagerDuty dedup key, one
Slack message) and resolve it when its last member resolves. Each alert is still its own record.

**The grouping rule.** Two alerts share a cause when they share a *cause key* and their changes lie
close in event time:

* a drift alert's cause key is its stream's ``service`` and ``task``: the call-level stream
  (``kind=call``) and the task-level stream of one task, every signal, and streams that differ only
  by configured labels (``language``) all fall under it;
* a version comparison's cause key is its ``service`` and the version change itself (marker, old and
  new value): the streams that moved at one model upgrade form one incident, whatever their task.

* a drift alert whose stream saw a version change (an annotation) within ``window`` seconds of the
  alert's estimated change takes that version change's cause key instead: a model upgrade that hits
  ``fix-tests`` in five languages and ``triage`` as well is one incident, with the comparisons.

An alert joins an incident of its cause key when that incident is still open (a member not yet
resolved) or was last active less than ``window`` seconds before, and the alert's estimated change
lies within ``window`` seconds of the incident's first change. Otherwise it opens a new one. An
alert keeps its incident through suspected → confirmed → resolved (it is looked up by alert id),
and annotations (version changes) belong to no incident.

Every alert of an incident with a version change, or with more than one stream, carries
``extra["incident_summary"]``: the version change, how many of the streams that saw it moved
(confirmed), and the moved streams worst first (degradations before improvements, then by relative
size); ``incident_streams`` is that count. The notifiers use it as the page's summary.
``benchmarks/incidents.py`` measures how often the rule merges unrelated changes.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from driftwatch._alerting.alerts import Alert, changes_text

__all__ = ["DEFAULT_WINDOW_S", "Incidents", "cause_key", "incident_of", "severity"]

#: Alerts of one cause key whose changes lie within this many seconds form one incident.
DEFAULT_WINDOW_S = 3600.0
_MEMORY = 10_000  # alert ids (and incidents) remembered: bounded memory
_VERSIONS = 4  # version changes remembered per stream
_V = TypeVar("_V")


#: The direction in which a change of each signal hurts; not listed (counts): both directions.
_HARMFUL = {"success": "down", "score": "down", "latency_s": "up", "ttft_s": "up", "cost_usd": "up"}


def _version_key(service: str, changes: Any) -> str:
    plain = [{k: c.get(k) for k in ("marker", "before", "after")} for c in changes if isinstance(c, dict)]
    return f"version\x1f{service}\x1f{json.dumps(plain, sort_keys=True, default=str)}"


def cause_key(alert: Alert) -> str | None:
    """What an alert's cause is keyed by (see the module's rule, before a version change is linked);
    None for annotations."""
    if alert.status == "annotation" or alert.kind == "version_change":
        return None
    service = alert.stream.get("service", "")
    if alert.kind == "version_comparison":
        return _version_key(service, alert.extra.get("changes", []))
    return f"drift\x1f{service}\x1f{alert.stream.get('task', '')}"


def severity(alert: Alert) -> tuple[int, float]:
    """Sort key, worst first: degradations before improvements, then the relative size of the change."""
    harmful = _HARMFUL.get(alert.signal, alert.direction) == alert.direction
    b, c = _means(alert)
    size = abs(c - b) / abs(b) if b else abs(c - b)
    return (0 if harmful else 1, -size)


def _means(alert: Alert) -> tuple[float, float]:
    """Baseline and current means (0 where an alert has none)."""
    b, c = getattr(alert.baseline, "mean", 0.0), getattr(alert.current, "mean", 0.0)
    return float(b or 0.0), float(c or 0.0)


def incident_of(alert: Alert) -> str | None:
    """The incident id an alert carries, if any."""
    value = alert.extra.get("incident")
    return value if isinstance(value, str) else None


@dataclass
class _Incident:
    id: str
    key: str
    first_change: float
    last_seen: float
    open: set[str] = field(default_factory=set)
    version: str = ""  # the version change (``changes_text``), if the cause is one
    #: Per stream (labels text): its worst alert that moved (confirmed) so far, as (``severity``,
    #: alert id, what moved): plain data, pickled with the monitor's snapshot.
    moved: dict[str, tuple[tuple[int, float], str, str]] = field(default_factory=dict)


class Incidents:
    """Assigns incident ids to alerts as the Monitor emits them (``assign``)."""

    def __init__(self, window: float = DEFAULT_WINDOW_S) -> None:
        self.window = window
        self._of: OrderedDict[str, str] = OrderedDict()  # alert id → incident id
        self._incidents: OrderedDict[str, _Incident] = OrderedDict()
        # Per stream (labels text): its last ``_VERSIONS`` version changes (event time, the changes then).
        self._versions: OrderedDict[str, list[tuple[float, list[dict[str, Any]]]]] = OrderedDict()
        # Per version cause key: the streams that saw it.
        self._saw: OrderedDict[str, set[str]] = OrderedDict()

    def assign(self, alert: Alert) -> Alert:
        """``alert`` with its incident id in ``extra["incident"]`` (unchanged for annotations)."""
        if alert.kind == "version_change":
            self._annotated(alert)
            return alert
        key = cause_key(alert)
        if key is None:
            return alert
        version, change_at = "", alert.change_at
        if alert.kind == "version_comparison":
            version = changes_text(alert.extra.get("changes", []))
        elif alert.kind == "drift":
            near = [
                v for v in self._versions.get(_stream_text(alert), ()) if abs(change_at - v[0]) <= self.window
            ]
            if near:
                # The nearest version change; the incident is dated by it, as its comparisons are.
                change_at, changes = min(near, key=lambda v: abs(alert.change_at - v[0]))
                key = _version_key(alert.stream.get("service", ""), changes)
                version = changes_text(changes)
        known = incident_of(alert) or self._of.get(alert.id)
        incident = self._incidents.get(known) if known is not None else None
        at = max(alert.detected_at, alert.change_at)
        if incident is None and known is None:
            incident = self._join(key, change_at, at)
        if incident is None:
            ident = known or self._new_id(key, alert)
            incident = _Incident(ident, key, change_at, at, version=version)
            self._remember(self._incidents, incident.id, incident)
        self._remember(self._of, alert.id, incident.id)
        incident.last_seen = max(incident.last_seen, at)
        if alert.status == "resolved":
            incident.open.discard(alert.id)
        else:
            incident.open.add(alert.id)
        if alert.status == "confirmed":
            where = _stream_text(alert)
            held = incident.moved.get(where)
            rank = severity(alert)
            if held is None or held[1] == alert.id or rank < held[0]:
                incident.moved[where] = (rank, alert.id, f"{where} {_moved_text(alert)}")
        extra = {**alert.extra, "incident": incident.id}
        summary = self._summary(incident)
        if summary:
            extra["incident_summary"], extra["incident_streams"] = summary, len(incident.moved)
        if extra == alert.extra:
            return alert
        return alert.with_status(alert.status, extra=extra)

    def _annotated(self, alert: Alert) -> None:
        """Remember a stream's version change (several markers at one time are one change)."""
        where = _stream_text(alert)
        change = {k: alert.extra.get(k) for k in ("marker", "before", "after")}
        held = list(self._versions.get(where, ()))
        if held and held[-1][0] == alert.change_at:
            changes = held[-1][1] + [change]
            held[-1] = (alert.change_at, changes)
        else:
            changes = [change]
            held = [*held[-(_VERSIONS - 1) :], (alert.change_at, changes)]
        self._remember(self._versions, where, held)
        key = _version_key(alert.stream.get("service", ""), changes)
        streams = self._saw.get(key) or set()
        streams.add(where)
        self._remember(self._saw, key, streams)

    def _summary(self, incident: _Incident) -> str:
        """The incident in one line (module docstring); empty for one stream without a version change."""
        if not incident.moved or (not incident.version and len(incident.moved) < 2):
            return ""
        worst = sorted(incident.moved.values())
        saw = len(self._saw.get(incident.key) or ()) if incident.version else 0
        counted = f"{len(worst)} of {max(saw, len(worst))}" if saw else f"{len(worst)}"
        head = f"{incident.version}: " if incident.version else ""
        head += f"{counted} stream{'s' if max(saw, len(worst)) != 1 else ''} moved"
        return (
            head
            + "".join(f"; {text}" for _, _, text in worst[:5])
            + (f"; and {len(worst) - 5} more" if len(worst) > 5 else "")
        )

    def __getstate__(self) -> dict[str, Any]:
        """What a snapshot keeps: the incidents an alert can still join (open, or active within the
        window of the latest), the alert ids of those, and the version changes seen. A closed one's
        alerts carry their incident id themselves."""
        latest = max((i.last_seen for i in self._incidents.values()), default=0.0)
        live = OrderedDict(
            (k, i) for k, i in self._incidents.items() if i.open or latest - i.last_seen <= self.window
        )
        return {
            **self.__dict__,
            "_incidents": live,
            "_of": OrderedDict((a, i) for a, i in self._of.items() if i in live),
        }

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Take up the incidents of open alerts restored from a checkpoint."""
        for alert in alerts:
            if incident_of(alert) is not None:
                self.assign(alert)

    def _join(self, key: str, change_at: float, at: float) -> _Incident | None:
        for incident in reversed(self._incidents.values()):
            if incident.key != key:
                continue
            live = bool(incident.open) or at - incident.last_seen <= self.window
            if live and abs(change_at - incident.first_change) <= self.window:
                return incident
        return None

    @staticmethod
    def _new_id(key: str, alert: Alert) -> str:
        return "inc-" + hashlib.sha256(f"{key}\x1f{alert.id}".encode()).hexdigest()[:16]

    @staticmethod
    def _remember(memory: OrderedDict[str, _V], key: str, value: _V) -> None:
        memory[key] = value
        memory.move_to_end(key)
        if len(memory) > _MEMORY:
            memory.popitem(last=False)


def _stream_text(alert: Alert) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(alert.stream.items()))


def _moved_text(alert: Alert) -> str:
    b, c = _means(alert)
    if alert.signal == "success":
        return f"pass rate {b * 100:.1f}% -> {c * 100:.1f}%"
    return f"{alert.signal} {b:.4g} -> {c:.4g}"
