"""The OTLP alert sink: version events carry their kind and leave the drift.active gauge alone."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from driftwatch import Config, Monitor, Outcome
from driftwatch._alerting.otel import OtelAlertSink, Telemetry


def metric_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def test_version_events_are_tagged_and_not_active_drift() -> None:
    """Annotation and comparison records carry driftwatch.alert.kind; the active gauge stays for drift."""
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    reader = InMemoryMetricReader()
    telemetry = Telemetry(
        logger_provider=logger_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    monitor = Monitor(Config(signals=["success"]), [OtelAlertSink(telemetry)], threaded=False)
    for i in range(200):
        model = "a" if i < 100 else "b"
        monitor.process(Outcome(task="t", time=float(i), model=model, success=(i % 4 > 0) == (i < 100)))
    # The drop at the version change is also a drift (the self-starting phase sees it from the
    # first observations): its records are drift's; only the version records are checked here.
    records = [
        r.log_record
        for r in logs.get_finished_logs()
        if (r.log_record.attributes or {}).get("driftwatch.alert.kind") != "drift"
    ]
    kinds = [(r.attributes or {}).get("driftwatch.alert.kind") for r in records]
    statuses = [(r.attributes or {}).get("driftwatch.alert.status") for r in records]
    assert list(zip(kinds, statuses, strict=True)) == [
        ("version_change", "annotation"),
        ("version_comparison", "confirmed"),
    ]
    assert records[0].severity_text == "INFO" and records[1].severity_text == "WARN"
    # The active gauge counts the drift only, never a version event.
    assert [p.attributes["signal"] for p in metric_points(reader, "driftwatch.drift.active")] == ["success"]
    counted = {
        (p.attributes["driftwatch.alert.kind"], p.attributes["status"])
        for p in metric_points(reader, "driftwatch.alerts")
        if p.attributes["driftwatch.alert.kind"] != "drift"
    }
    assert counted == {("version_change", "annotation"), ("version_comparison", "confirmed")}


def test_outcome_metrics_carry_each_streams_labels_and_kind() -> None:
    """Outcome counts, results and tokens go to the attributes of their own stream and kind, with
    the attribute sets made once per stream, also for a new dict of the same labels and past the
    4,096 kept streams."""
    reader = InMemoryMetricReader()
    sink = OtelAlertSink(Telemetry(meter_provider=MeterProvider(metric_readers=[reader])))
    a, b = {"service": "s", "task": "a"}, {"service": "s", "task": "b"}
    for i in range(10):
        sink.record_outcome(Outcome(task="a", kind="call", success=i % 2 == 0, input_tokens=3), a)
        sink.record_outcome(Outcome(task="a", kind="task", success=True, output_tokens=5), a)
        sink.record_outcome(Outcome(task="b", kind="call", success=False), dict(b))
    for i in range(4100):  # more streams than are kept (and than the SDK's 2,000 attribute sets)
        sink.record_outcome(Outcome(task="c", kind="call"), {"service": "s", "task": f"c{i}"})
    sink.record_outcome(Outcome(task="a", kind="call", success=True, input_tokens=3), a)

    def totals(name: str, *keys: str) -> dict[tuple[Any, ...], float]:
        points = metric_points(reader, name)
        return {
            tuple(p.attributes.get(k) for k in keys): p.value
            for p in points
            if p.attributes.get("task") in ("a", "b")
        }

    assert totals("driftwatch.outcomes", "task", "driftwatch.outcome.kind") == {
        ("a", "call"): 11,
        ("a", "task"): 10,
        ("b", "call"): 10,
    }
    assert totals("driftwatch.outcome.results", "task", "driftwatch.outcome.kind", "driftwatch.result") == {
        ("a", "call", "pass"): 6,
        ("a", "call", "fail"): 5,
        ("a", "task", "pass"): 10,
        ("b", "call", "fail"): 10,
    }
    assert totals("driftwatch.outcome.tokens", "task", "driftwatch.outcome.kind", "gen_ai.token.type") == {
        ("a", "call", "input"): 33,
        ("a", "task", "output"): 50,
    }
