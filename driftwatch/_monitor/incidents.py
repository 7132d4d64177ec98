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

An alert joins an incident of its cause key when that incident is still open (a member not yet
resolved) or was last active less than ``window`` seconds before, and the alert's estimated change
lies within ``window`` seconds of the incident's first change. Otherwise it opens a new one. An
alert keeps its incident through suspected → confirmed → resolved (it is looked up by alert id),
and annotations (version changes) belong to no incident.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from driftwatch._alerting.alerts import Alert

__all__ = ["DEFAULT_WINDOW_S", "Incidents", "cause_key", "incident_of"]

#: Alerts of one cause key whose changes lie within this many seconds form one incident.
DEFAULT_WINDOW_S = 3600.0
_MEMORY = 10_000  # alert ids (and incidents) remembered: bounded memory
_V = TypeVar("_V")


def cause_key(alert: Alert) -> str | None:
    """What an alert's cause is keyed by (see the module's rule); None for annotations."""
    if alert.status == "annotation" or alert.kind == "version_change":
        return None
    service = alert.stream.get("service", "")
    if alert.kind == "version_comparison":
        changes = json.dumps(alert.extra.get("changes", {}), sort_keys=True, default=str)
        return f"version\x1f{service}\x1f{changes}"
    return f"drift\x1f{service}\x1f{alert.stream.get('task', '')}"


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


class Incidents:
    """Assigns incident ids to alerts as the Monitor emits them (``assign``)."""

    def __init__(self, window: float = DEFAULT_WINDOW_S) -> None:
        self.window = window
        self._of: OrderedDict[str, str] = OrderedDict()  # alert id → incident id
        self._incidents: OrderedDict[str, _Incident] = OrderedDict()

    def assign(self, alert: Alert) -> Alert:
        """``alert`` with its incident id in ``extra["incident"]`` (unchanged for annotations)."""
        key = cause_key(alert)
        if key is None:
            return alert
        known = incident_of(alert) or self._of.get(alert.id)
        incident = self._incidents.get(known) if known is not None else None
        at = max(alert.detected_at, alert.change_at)
        if incident is None and known is None:
            incident = self._join(key, alert.change_at, at)
        if incident is None:
            ident = known or self._new_id(key, alert)
            incident = _Incident(ident, key, alert.change_at, at)
            self._remember(self._incidents, incident.id, incident)
        self._remember(self._of, alert.id, incident.id)
        incident.last_seen = max(incident.last_seen, at)
        if alert.status == "resolved":
            incident.open.discard(alert.id)
        else:
            incident.open.add(alert.id)
        if alert.extra.get("incident") == incident.id:
            return alert
        return alert.with_status(alert.status, extra={**alert.extra, "incident": incident.id})

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
