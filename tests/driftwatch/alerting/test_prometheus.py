"""The Prometheus scrape: OTel translation names, parity with the OTLP sink, bounds, the HTTP server."""

from __future__ import annotations

import dataclasses
import doctest
import shutil
import subprocess
from pathlib import Path

import httpx2
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import driftwatch.prometheus
from driftwatch import Alert, Config, Monitor, Outcome
from driftwatch._alerting import prometheus as prom
from driftwatch._alerting.otel import OtelAlertSink, Telemetry
from driftwatch._alerting.prometheus import PrometheusSink, label_name, metric_name, serve_metrics
from driftwatch._cli.main import main
from driftwatch._stats import Estimate
from tests.support.prometheus_data import degrading_outcomes, degrading_sink, parse_exposition


def otel_as_prometheus(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The SDK's own metric points, named and labelled by OTel's Prometheus translation rules."""
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = {"Sum": "counter", "Gauge": "gauge", "Histogram": "histogram"}[
                    type(metric.data).__name__
                ]
                name = metric_name(metric.name, kind, metric.unit or "")
                for point in metric.data.data_points:
                    labels = {label_name(k): str(v) for k, v in (point.attributes or {}).items()}
                    if kind != "histogram":
                        out.setdefault(name, []).append((labels, point.value))
                        continue
                    running = 0
                    bounds = [*point.explicit_bounds, float("inf")]
                    for bound, count in zip(bounds, point.bucket_counts, strict=True):
                        running += count
                        le = "+Inf" if bound == float("inf") else prom.sample_value(bound)
                        out.setdefault(f"{name}_bucket", []).append(({**labels, "le": le}, running))
                    out.setdefault(f"{name}_sum", []).append((labels, point.sum))
                    out.setdefault(f"{name}_count", []).append((labels, point.count))
    return out


def normal(samples: list[tuple[dict[str, str], float]]) -> list[tuple[list[tuple[str, str]], float]]:
    return sorted((sorted(labels.items()), round(value, 9)) for labels, value in samples)


def alert(status: str, alert_id: str = "a1", signal: str = "success", direction: str = "down") -> Alert:
    e = Estimate(0.5, 10, 0.4, 0.6)
    return Alert(
        id=alert_id,
        status=status,  # type: ignore[arg-type]
        stream={"service": "s", "task": "t"},
        signal=signal,
        direction=direction,
        detected_at=1.0,
        change_at=0.0,
        baseline=e,
        current=e,
        effect=0.0,
        effect_ci=(0.0, 0.0),
        p_value=None,
        detector={},
        message="",
    )


def gauge(sink: PrometheusSink, name: str) -> float | None:
    samples = parse_exposition(sink.render().decode()).get(name, [])
    return samples[0][1] if samples else None


def test_doctests_pass() -> None:
    """The module's doctests (name translation, a first scrape) hold."""
    result = doctest.testmod(prom)
    assert result.attempted >= 4 and result.failed == 0


def test_public_names_are_guarded() -> None:
    """`driftwatch.prometheus` exports exactly the sink, the server and the content type."""
    assert sorted(driftwatch.prometheus.__all__) == [
        "CONTENT_TYPE",
        "MetricsServer",
        "PrometheusSink",
        "serve_metrics",
    ]


@pytest.mark.parametrize(
    ("name", "kind", "unit", "expected"),
    [
        ("driftwatch.drift.active", "gauge", "", "driftwatch_drift_active"),
        ("driftwatch.alerts", "counter", "", "driftwatch_alerts_total"),
        ("driftwatch.outcomes", "counter", "", "driftwatch_outcomes_total"),
        ("http.server.request.duration", "histogram", "s", "http_server_request_duration_seconds"),
        ("system.network.dropped", "counter", "{packets}", "system_network_dropped_total"),
        ("requests.total", "counter", "", "requests_total"),
        ("a-b..c", "gauge", "", "a_b_c"),
    ],
)
def test_metric_names_follow_the_otel_translation(name: str, kind: str, unit: str, expected: str) -> None:
    """Dots and dashes become underscores, counters get `_total` once, units map, braces drop."""
    assert metric_name(name, kind, unit) == expected


def test_otlp_instruments_and_scrape_agree() -> None:
    """The OTLP sink's metrics, translated by OTel's Prometheus rules, are exactly the scrape's series."""
    reader = InMemoryMetricReader()
    otlp = OtelAlertSink(Telemetry(meter_provider=MeterProvider(metric_readers=[reader])))
    scrape = PrometheusSink()
    monitor = Monitor(Config(signals=["success"]), [otlp, scrape], threaded=False)
    for outcome in degrading_outcomes():
        monitor.process(outcome)
    assert monitor.stats.alerts.get("confirmed") == 1
    exposition = parse_exposition(scrape.render().decode())
    translated = otel_as_prometheus(reader)
    assert set(translated) == set(exposition) - {"driftwatch_metrics_series_dropped_total"}
    for name, samples in translated.items():
        got = exposition[name]
        if name == "driftwatch_drift_confirmed":
            # The scrape also shows 0 for streams only suspected; the OTLP gauge has no point for them.
            got = [(labels, value) for labels, value in got if value == 1]
        assert normal(got) == normal(samples), name


def test_exposition_passes_promtool_lint() -> None:
    """`promtool check metrics` accepts the scrape of a degrading run (text format, names, HELP/TYPE)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (make prometheus-tools installs Debian's prometheus package)")
    sink, _ = degrading_sink()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=sink.render(), capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_gauges_follow_the_alert_lifecycle() -> None:
    """`active` is 1 from suspected, `confirmed` only once confirmed; both drop to 0 on resolve."""
    sink = PrometheusSink()
    sink.export(alert("suspected"))
    assert (gauge(sink, "driftwatch_drift_active"), gauge(sink, "driftwatch_drift_confirmed")) == (1, 0)
    sink.export(alert("confirmed"))
    assert (gauge(sink, "driftwatch_drift_active"), gauge(sink, "driftwatch_drift_confirmed")) == (1, 1)
    sink.export(alert("resolved"))
    assert (gauge(sink, "driftwatch_drift_active"), gauge(sink, "driftwatch_drift_confirmed")) == (0, 0)
    counts = {
        labels["status"]: value
        for labels, value in parse_exposition(sink.render().decode())["driftwatch_alerts_total"]
    }
    assert counts == {"suspected": 1, "confirmed": 1, "resolved": 1}


def test_a_resolved_episode_leaves_an_overlapping_one_open() -> None:
    """Two episodes on one series: resolving the first keeps the gauge at 1 for the second."""
    sink = PrometheusSink()
    sink.export(alert("confirmed", "first"))
    sink.export(alert("suspected", "second"))
    sink.export(alert("resolved", "first"))
    assert (gauge(sink, "driftwatch_drift_active"), gauge(sink, "driftwatch_drift_confirmed")) == (1, 0)


def test_label_values_are_escaped_and_colliding_keys_joined() -> None:
    """Quotes, backslashes and newlines are escaped; `a.b` and `a_b` share one label, values `;`-joined."""
    sink = PrometheusSink()
    sink.record_outcome(Outcome(task='say "hi"\\\n'), {"task": 'say "hi"\\\n', "a.b": "1", "a_b": "2"})
    text = sink.render().decode()
    assert 'task="say \\"hi\\"\\\\\\n"' in text
    ((labels, value),) = parse_exposition(text)["driftwatch_outcomes_total"]
    assert labels["a_b"] == "1;2" and value == 1


def test_series_are_bounded_and_drops_counted() -> None:
    """Beyond `max_series` per metric, new series are dropped and counted in the scrape."""
    sink = PrometheusSink(max_series=3)
    for i in range(5):
        sink.record_outcome(Outcome(task=f"t{i}"), {"service": "s", "task": f"t{i}"})
    samples = parse_exposition(sink.render().decode())
    assert len(samples["driftwatch_outcomes_total"]) == 3
    assert samples["driftwatch_metrics_series_dropped_total"] == [({}, 2.0)]


def test_bad_signal_values_are_not_recorded() -> None:
    """NaN or negative latency and cost never reach the histogram or the cost counter."""
    sink = PrometheusSink()
    sink.record_outcome(Outcome(task="t", latency_s=float("nan"), cost_usd=-1.0), {"task": "t"})
    samples = parse_exposition(sink.render().decode())
    assert "driftwatch_outcome_latency_seconds_count" not in samples
    assert "driftwatch_outcome_cost_total" not in samples
    assert samples["driftwatch_outcomes_total"][0][1] == 1


def test_metrics_server_serves_the_exposition() -> None:
    """GET /metrics answers 200 with the text format; other paths 404; close() frees the port."""
    sink, _ = degrading_sink()
    server = serve_metrics(sink, "127.0.0.1", 0)
    try:
        response = httpx2.get(server.url, timeout=5)
        assert response.status_code == 200
        assert response.headers["content-type"] == prom.CONTENT_TYPE
        assert response.content == sink.render()
        assert httpx2.get(f"http://127.0.0.1:{server.port}/", timeout=5).status_code == 404
        assert server.scrapes == 1
    finally:
        server.close()
    with pytest.raises(httpx2.TransportError):
        httpx2.get(server.url, timeout=2)


def test_replay_serves_metrics_and_names_a_busy_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`replay --metrics-port` serves while replaying; a port in use exits 2 naming it and the fix."""
    stream = tmp_path / "o.jsonl"
    stream.write_text('{"time": 1, "task": "t", "success": true}\n')
    assert main(["replay", str(stream), "--metrics-port", "0", "--hold", "0"]) == 0
    assert "serving metrics at http://127.0.0.1:" in capsys.readouterr().out
    busy = serve_metrics(PrometheusSink(), "127.0.0.1", 0)
    try:
        assert main(["replay", str(stream), "--metrics-port", str(busy.port), "--hold", "0"]) == 2
    finally:
        busy.close()
    err = capsys.readouterr().err
    assert f"cannot serve /metrics on 127.0.0.1:{busy.port}" in err and "choose a free port" in err


def test_call_and_task_stream_alerts_are_separate_series() -> None:
    """An alert on a call stream (stream label kind=call) and one on the task stream of the same task
    are two `driftwatch_alerts_total` series, in the scrape and in the OTLP metrics alike: the alert's
    kind is `driftwatch_alert_kind` and leaves the stream's `kind` alone."""
    reader = InMemoryMetricReader()
    otlp = OtelAlertSink(Telemetry(meter_provider=MeterProvider(metric_readers=[reader])))
    scrape = PrometheusSink()
    task = alert("suspected", "task-episode")
    call = dataclasses.replace(alert("suspected", "call-episode"), stream={**task.stream, "kind": "call"})
    for sink in (otlp, scrape):
        sink.export(task)
        sink.export(call)
    expected = [
        ({"service": "s", "task": "t", "signal": "success", "direction": "down", "status": "suspected"}, 1.0),
        (
            {**task.stream, "kind": "call", "signal": "success", "direction": "down", "status": "suspected"},
            1.0,
        ),
    ]
    expected = [({**labels, "driftwatch_alert_kind": "drift"}, value) for labels, value in expected]
    for exposition in (parse_exposition(scrape.render().decode()), otel_as_prometheus(reader)):
        counted = [(labels, value) for labels, value in exposition["driftwatch_alerts_total"] if value]
        assert normal(counted) == normal(expected)
        # The gauges were already apart (they carry no alert kind); they stay so.
        assert len(exposition["driftwatch_drift_active"]) == 2


def test_an_opened_episode_starts_its_later_counts_at_zero() -> None:
    """Suspected: the episode's confirmed and resolved counts appear at 0 (so that `increase()` sees
    their first count); confirmed: resolved stays 0; version events add no zero series. Scrape and
    OTLP metrics alike."""
    reader = InMemoryMetricReader()
    otlp = OtelAlertSink(Telemetry(meter_provider=MeterProvider(metric_readers=[reader])))
    scrape = PrometheusSink()

    def counts() -> list[dict[str, float]]:
        return [
            {labels["status"]: value for labels, value in exposition["driftwatch_alerts_total"]}
            for exposition in (parse_exposition(scrape.render().decode()), otel_as_prometheus(reader))
        ]

    for sink in (otlp, scrape):
        sink.export(alert("suspected"))
    assert counts() == [{"suspected": 1, "confirmed": 0, "resolved": 0}] * 2
    for sink in (otlp, scrape):
        sink.export(alert("confirmed"))
    assert counts() == [{"suspected": 1, "confirmed": 1, "resolved": 0}] * 2
    for sink in (otlp, scrape):
        sink.export(alert("resolved"))
    assert counts() == [{"suspected": 1, "confirmed": 1, "resolved": 1}] * 2
    other = PrometheusSink()
    other.export(dataclasses.replace(alert("annotation"), kind="version_change", direction="none"))
    assert [v for _, v in parse_exposition(other.render().decode())["driftwatch_alerts_total"]] == [1]


def test_a_restored_monitor_reopens_the_gauges_without_counting_again() -> None:
    """Monitor.restore hands its open alerts to new scrape and OTLP sinks: the confirmed gauges are 1
    again (a restart must not close a Prometheus page), and no alert is counted a second time."""
    _, before = degrading_sink()
    reader = InMemoryMetricReader()
    otlp = OtelAlertSink(Telemetry(meter_provider=MeterProvider(metric_readers=[reader])))
    scrape = PrometheusSink()
    after = Monitor(Config(signals=["success"]), [otlp, scrape], threaded=False)
    after.restore(before.snapshot())
    assert [a.status for a in after.open_alerts()] == ["confirmed"]
    series = {"service": "agent", "task": "fix-tests", "signal": "success", "direction": "down"}
    exposition = parse_exposition(scrape.render().decode())
    assert exposition["driftwatch_drift_confirmed"] == [(series, 1.0)]
    assert exposition["driftwatch_drift_active"] == [(series, 1.0)]
    assert "driftwatch_alerts_total" not in exposition  # restored, not raised again
    translated = otel_as_prometheus(reader)
    assert translated["driftwatch_drift_confirmed"] == [(series, 1)]
    assert "driftwatch_alerts_total" not in translated
