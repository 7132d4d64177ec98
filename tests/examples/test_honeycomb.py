"""Honeycomb triggers, queries and board use only fields and values driftwatch really emits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import driftwatch
from driftwatch import Config, Monitor
from driftwatch._alerting.alerts import KINDS, Status
from driftwatch._alerting.otel import OtelAlertSink, Telemetry
from driftwatch._outcome import SIGNALS
from tests.conftest import Harness
from tests.support.prometheus_data import degrading_outcomes

ROOT = Path(__file__).resolve().parents[2] / "examples" / "honeycomb"
#: Fields Honeycomb itself adds to every span event (not OTel attributes).
HONEYCOMB_SPAN_FIELDS = {"duration_ms", "name", "service.name", "trace.trace_id", "trace.span_id"}
#: Values the Alert contract allows beyond those one run happens to show.
CONTRACT: dict[str, set[Any]] = {
    "driftwatch.signal": set(SIGNALS),
    "driftwatch.direction": {"up", "down"},
    "driftwatch.alert.status": set(get_args(Status)),
    "driftwatch.alert.kind": set(KINDS),
}
OPS = {
    "=",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "starts-with",
    "does-not-start-with",
    "exists",
    "does-not-exist",
    "contains",
    "does-not-contain",
    "in",
    "not-in",
}


@pytest.fixture(scope="module")
def log_events() -> list[dict[str, Any]]:
    """Attributes of every driftwatch.drift LogRecord the OTLP sink emits on a degrading run."""
    logs = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    telemetry = Telemetry(
        logger_provider=provider, meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()])
    )
    monitor = Monitor(Config(signals=["success"]), [OtelAlertSink(telemetry)], threaded=False)
    for outcome in degrading_outcomes():
        monitor.process(outcome)
    records = [r.log_record for r in logs.get_finished_logs()]
    assert {r.event_name for r in records} == {"driftwatch.drift"}
    return [dict(r.attributes or {}) for r in records]


@pytest.fixture
def span_fields(harness: Harness) -> dict[str, set[Any]]:
    """Attribute values of real task spans (`driftwatch.task`), by attribute name."""
    for ok in (True, False):
        with driftwatch.task("fix-tests") as t:
            t.record(success=ok)
    harness.flush()
    fields: dict[str, set[Any]] = {}
    for span in harness.spans.get_finished_spans():
        for k, v in (span.attributes or {}).items():
            fields.setdefault(k, set()).add(v)
    return fields


def filters_of(query: dict[str, Any]) -> list[dict[str, Any]]:
    return list(query.get("filters", []))


def columns_of(query: dict[str, Any]) -> set[str]:
    cols = {f["column"] for f in filters_of(query)} | set(query.get("breakdowns", []))
    cols |= {c["column"] for c in query.get("calculations", []) if "column" in c}
    return cols


def check_query(
    query: dict[str, Any], fields: dict[str, set[Any]], allowed_extra: set[str] = frozenset()
) -> list[str]:
    """Unknown columns, and filter values never seen on that column (or not signal names)."""
    problems = [f"unknown column {c!r}" for c in sorted(columns_of(query) - fields.keys() - allowed_extra)]
    for f in filters_of(query):
        if f["op"] not in OPS:
            problems.append(f"unknown filter op {f['op']!r}")
        if f["column"] not in fields or f["op"] in ("exists", "does-not-exist"):
            continue
        values = f["value"] if f["op"] in ("in", "not-in") else [f["value"]]
        known = fields[f["column"]] | CONTRACT.get(f["column"], set())
        problems += [f"{f['column']} is never {v!r}" for v in values if v not in known]
    return problems


def log_fields(events: list[dict[str, Any]]) -> dict[str, set[Any]]:
    fields: dict[str, set[Any]] = {}
    for attrs in events:
        for k, v in attrs.items():
            fields.setdefault(k, set()).add(v)
    return fields


def test_triggers_are_valid_trigger_api_bodies() -> None:
    """Each trigger has the Triggers API fields: name, query, threshold, frequency, alert type, recipients."""
    triggers = json.loads((ROOT / "triggers.json").read_text())
    assert len(triggers) >= 2
    for t in triggers:
        assert 1 <= len(t["name"]) <= 120 and len(t["description"]) <= 1023
        assert t["threshold"]["op"] in {">", ">=", "<", "<="} and isinstance(
            t["threshold"]["value"], int | float
        )
        assert 60 <= t["frequency"] <= 86400 and t["frequency"] % 60 == 0
        assert t["query"]["time_range"] >= t["frequency"]
        assert t["alert_type"] in {"on_change", "on_true"} and t["recipients"]
        (calc,) = t["query"]["calculations"]  # a trigger takes one calculation, no heatmap
        assert calc["op"] not in {"HEATMAP", "CONCURRENCY"}


def test_triggers_query_confirmed_drift_events_by_emitted_fields(log_events: list[dict[str, Any]]) -> None:
    """Trigger queries filter driftwatch.drift events on driftwatch.alert.status = confirmed; real fields."""
    fields = log_fields(log_events)
    for t in json.loads((ROOT / "triggers.json").read_text()):
        assert check_query(t["query"], fields) == [], t["name"]
        assert {"column": "driftwatch.alert.status", "op": "=", "value": "confirmed"} in filters_of(
            t["query"]
        )


def test_queries_and_board_use_emitted_fields(
    log_events: list[dict[str, Any]], span_fields: dict[str, set[Any]]
) -> None:
    """Board queries use log-event or task-span fields; every board panel names a shipped query."""
    queries = json.loads((ROOT / "queries.json").read_text())
    fields = {**log_fields(log_events), **span_fields}
    for name, query in queries.items():
        assert check_query(query, fields, HONEYCOMB_SPAN_FIELDS) == [], name
    board = json.loads((ROOT / "board.json").read_text())
    ids = [p["query_panel"]["query_id"] for p in board["panels"]]
    assert sorted(ids) == sorted(f"QUERY_ID:{name}" for name in queries)
    assert board["type"] == "flexible" and board["name"]


def test_the_field_check_can_fail(log_events: list[dict[str, Any]]) -> None:
    """A misspelt column or a status that is never emitted is reported."""
    fields = log_fields(log_events)
    bad = {
        "calculations": [{"op": "COUNT"}],
        "filters": [
            {"column": "driftwatch.status", "op": "=", "value": "confirmed"},
            {"column": "driftwatch.alert.status", "op": "=", "value": "firing"},
        ],
    }
    assert check_query(bad, fields) == [
        "unknown column 'driftwatch.status'",
        "driftwatch.alert.status is never 'firing'",
    ]
