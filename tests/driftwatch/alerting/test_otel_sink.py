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
