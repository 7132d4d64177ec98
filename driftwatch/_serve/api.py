"""The read API of ``driftwatch serve``: streams and their state, alerts, outcome history.

GET endpoints on the OTLP/HTTP port, behind the same bearer token as everything but the probes
(docs/serve.md; the response schema is docs/serve-api.schema.json):

- ``/api/v1/streams``: every stream with its labels, each signal's state (``warming_up``,
  ``quiet``, ``suspected``, ``confirmed``, ``resolved``), baseline and current estimates with 95%
  intervals, and the last alert; streams that need attention first.
- ``/api/v1/alerts``: the open alerts (confirmed, and suspected awaiting confirmation) and the
  most recent status changes.
- ``/api/v1/incidents``: alerts grouped by cause (one page per incident): open incidents first,
  each with its state, whether it paged, when its first change was and every signal that moved.
- ``/api/v1/outcomes``: outcomes as outcome JSONL (the replay format), oldest first, paged: the
  ``X-Driftwatch-Cursor`` header carries where the next page starts, absent on the last page.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from driftwatch._errors import StateError
from driftwatch._monitor import Monitor
from driftwatch._monitor.monitor import SignalState
from driftwatch._monitor.watch import compare_kind
from driftwatch._serve.history import History, Query, decode_cursor, encode_cursor
from driftwatch._stats import Estimate

__all__ = ["CURSOR_HEADER", "ORDER", "ReadApi"]

#: Response header with the cursor of the next page of ``/api/v1/outcomes``.
CURSOR_HEADER = "X-Driftwatch-Cursor"
#: States from most to least in need of attention; a stream takes its signals' first.
ORDER = ("confirmed", "suspected", "resolved", "warming_up", "quiet")
#: Outcomes per page: default and most.
PAGE, MAX_PAGE = 1000, 10_000
#: Newest alert status changes read from the history to build ``/api/v1/incidents``.
INCIDENT_SCAN = 2000
_JSON, _JSONL = "application/json", "application/x-ndjson"
_SELECTOR_KEYS = ("model", "version", "task", "service", "kind", "since", "until")

Params = Mapping[str, list[str]]
Answer = tuple[int, str, bytes, list[tuple[str, str]]]


def _incident(ident: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    """One incident's summary from its members' latest Alert JSON records."""
    members.sort(key=lambda m: (m.get("status") == "resolved", -abs(_number(m.get("effect")))))
    # Version comparisons are verdicts at one moment that never resolve: an incident with drift
    # alerts is open while one of those is (as the notifiers page it); one of comparisons only while
    # a comparison found a difference.
    drift = [m for m in members if m.get("kind") != "version_comparison"] or members
    opened = any(m.get("status") in ("suspected", "confirmed") for m in drift)
    paged = any(m.get("status") == "confirmed" or "confirmed_at" in m for m in members)
    changes = [str(m["change_at"]) for m in members if m.get("change_at")]
    times = [str(m[k]) for m in members for k in ("detected_at", "confirmed_at", "resolved_at") if m.get(k)]
    streams = {json.dumps(m.get("stream", {}), sort_keys=True) for m in members}
    summaries = [m["extra"]["incident_summary"] for m in members if "incident_summary" in m.get("extra", {})]
    return {
        "id": ident,
        "summary": summaries[0] if summaries else None,
        "state": "open" if opened else "resolved",
        "paged": paged,
        "first_change": min(changes, default=None),
        "last_at": max(times, default=None),
        "streams": len(streams),
        "signals": [
            {
                "alert": m.get("id"),
                "kind": m.get("kind"),
                "stream": m.get("stream", {}),
                "signal": m.get("signal"),
                "status": m.get("status"),
                "direction": m.get("direction"),
                "effect": m.get("effect"),
                "message": m.get("message"),
            }
            for m in members
        ],
    }


def _number(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else 0.0


class BadRequest(ValueError):
    """A query parameter that cannot be read; answered 400 with the message."""


def _one(params: Params, name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"parameter {name!r} given {len(values)} times; give it once")
    return values[0]


def _int(params: Params, name: str, default: int, most: int) -> int:
    text = _one(params, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise BadRequest(f"parameter {name!r}: expected a whole number 1..{most}, got {text[:40]!r}")
    return value


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def estimate(e: Estimate) -> dict[str, Any] | None:
    """An estimate as JSON (no interval bound is infinite: unknown is null); None without observations."""
    if e.n == 0:
        return None
    return {"mean": _finite(e.mean), "n": e.n, "ci_low": _finite(e.ci_low), "ci_high": _finite(e.ci_high)}


def _json(body: Any, status: int = 200) -> Answer:
    return status, _JSON, json.dumps(body, separators=(",", ":"), allow_nan=False).encode(), []


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats (an interval bound with too few observations) become null."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class ReadApi:
    """The read endpoints over a monitor and its history; ``routes()`` for ``Receiver.query_routes``."""

    def __init__(self, monitor: Monitor, history: History) -> None:
        self.monitor = monitor
        self.history = history

    def routes(self) -> dict[str, Callable[[Params], Answer]]:
        return {
            "/api/v1/streams": self._guard(self.streams),
            "/api/v1/alerts": self._guard(self.alerts),
            "/api/v1/incidents": self._guard(self.incidents),
            "/api/v1/outcomes": self._guard(self.outcomes),
        }

    @staticmethod
    def _guard(route: Callable[[Params], Answer]) -> Callable[[Params], Answer]:
        def run(params: Params) -> Answer:
            try:
                return route(params)
            except BadRequest as exc:
                return _json({"error": str(exc)}, 400)
            except StateError as exc:
                return _json({"error": str(exc)}, 503)

        return run

    # -- streams ---------------------------------------------------------------------------------
    def streams(self, params: Params) -> Answer:
        """``/api/v1/streams[?stream=KEY][&limit=N]``: streams needing attention first."""
        key = _one(params, "stream")
        limit = _int(params, "limit", 100_000, 100_000)
        states = self.monitor.signal_states(None if key is None else [key])
        last: dict[str, dict[str, tuple[float, dict[str, Any]]]] = {}
        for (stream_key, signal), found in self.history.last_alerts().items():
            last.setdefault(stream_key, {})[signal] = found
        out = []
        for stream_key, (labels, signals) in states.items():
            mine = last.get(stream_key, {})
            rows = [self._signal(s, mine.get(s.signal)) for s in signals]
            rows.sort(key=lambda r: (ORDER.index(r["state"]), r["signal"]))
            newest = max(mine.values(), key=lambda found: found[0], default=None)
            out.append(
                {
                    "key": stream_key,
                    "labels": labels,
                    "state": rows[0]["state"] if rows else "warming_up",
                    "signals": rows,
                    "last_alert": None if newest is None else newest[1],
                }
            )
        out.sort(key=lambda s: (ORDER.index(s["state"]), s["key"]))
        return _json({"streams": out[:limit], "total": len(out)})

    @staticmethod
    def _signal(s: SignalState, found: tuple[float, dict[str, Any]] | None) -> dict[str, Any]:
        last = None if found is None else found[1]
        comparison = compare_kind(s.kind, s.baseline, s.current, "two-sided")
        state = s.state
        if state in ("quiet", "warming_up") and last is not None and last.get("kind") == "drift":
            extra = last.get("extra") or {}
            if last.get("status") == "resolved" and "resolved_by" in extra:
                state = "resolved"  # back after a confirmed alert (an unconfirmed suspicion is just quiet)
        return {
            "signal": s.signal,
            "state": state,
            "n": s.n,
            "baseline": estimate(comparison.baseline),
            "current": estimate(comparison.current),
            "alert": None if s.alert is None else _clean(s.alert.to_dict()),
            "last_alert": last,
        }

    # -- alerts ----------------------------------------------------------------------------------
    def alerts(self, params: Params) -> Answer:
        """``/api/v1/alerts[?stream=KEY][&limit=N]``: open alerts and the latest status changes."""
        key = _one(params, "stream")
        limit = _int(params, "limit", 100, MAX_PAGE)
        opened = [_clean(a.to_dict()) for a in self.monitor.open_alerts()]
        if key is not None:
            opened = [a for a in opened if ";".join(f"{k}={v}" for k, v in a["stream"].items()) == key]
        opened.sort(key=lambda a: (a["status"] != "confirmed", a["detected_at"]))
        return _json({"open": opened, "recent": self.history.alerts(limit=limit, stream=key)})

    # -- incidents -------------------------------------------------------------------------------
    def incidents(self, params: Params) -> Answer:
        """``/api/v1/incidents[?limit=N]``: incidents from the open alerts and the recent history.

        An incident is open while any member alert is suspected or confirmed; it ``paged`` once any
        member was confirmed (a suspicion alone never pages). Members carry their latest status.
        The history window is the newest ``INCIDENT_SCAN`` alert status changes.
        """
        limit = _int(params, "limit", 100, MAX_PAGE)
        latest: dict[str, dict[str, Any]] = {}
        for record in reversed(self.history.alerts(limit=INCIDENT_SCAN)):  # oldest first
            latest[str(record.get("id"))] = record
        for alert in self.monitor.open_alerts():
            latest[alert.id] = _clean(alert.to_dict())
        grouped: dict[str, list[dict[str, Any]]] = {}
        for record in latest.values():
            incident = record.get("incident")
            if isinstance(incident, str):
                grouped.setdefault(incident, []).append(record)
        out = [_incident(ident, members) for ident, members in grouped.items()]
        out.sort(key=lambda i: i["last_at"] or "", reverse=True)  # newest first within …
        out.sort(key=lambda i: (i["state"] != "open", not i["paged"]))  # … open, paged first (stable)
        return _json({"incidents": out[:limit], "total": len(out)})

    # -- outcomes --------------------------------------------------------------------------------
    def outcomes(self, params: Params) -> Answer:
        """``/api/v1/outcomes``: outcome JSONL filtered by stream, selector terms and time; paged."""
        from driftwatch._offline.compare import SelectorError, parse_selector
        from driftwatch._outcome import OutcomeError, parse_time

        known = {"stream", "select", "limit", "cursor", *_SELECTOR_KEYS}
        for name in params:
            if name not in known and not name.startswith("label."):
                raise BadRequest(
                    f"unknown parameter {name[:40]!r}; expected stream, select, limit, cursor, "
                    f"{', '.join(_SELECTOR_KEYS)} or label.NAME"
                )
        terms = [t for t in (_one(params, "select") or "").split(",") if t.strip()]
        terms += [f"{n}={_one(params, n)}" for n in params if n in _SELECTOR_KEYS or n.startswith("label.")]
        text = ",".join(terms)
        try:
            keep = parse_selector(text, "select") if terms else None
        except SelectorError as exc:
            raise BadRequest(str(exc)) from None
        since = until = None
        for term in terms:  # pushed down to SQL; ``keep`` decides exactly
            name, _, value = (p.strip() for p in term.partition("="))
            try:
                if name == "since":
                    since = max(since or -math.inf, parse_time(value, "since"))
                elif name == "until":
                    until = min(until or math.inf, parse_time(value, "until"))
            except OutcomeError as exc:
                raise BadRequest(str(exc)) from None
        cursor = _one(params, "cursor")
        try:
            after = None if cursor is None else decode_cursor(cursor)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        query = Query(stream=_one(params, "stream"), since=since, until=until, keep=keep)
        records, position = self.history.outcomes(
            query, limit=_int(params, "limit", PAGE, MAX_PAGE), after=after
        )
        body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        headers = [] if position is None else [(CURSOR_HEADER, encode_cursor(*position))]
        return 200, _JSONL, body, headers
