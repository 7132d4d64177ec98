"""Version-change markers: Honeycomb Markers API and Grafana annotations against local servers; config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import driftwatch
from driftwatch import Config, ConfigError, Monitor, load_config
from driftwatch._alerting.markers import GrafanaAnnotationSink, HoneycombMarkerSink, build_markers
from driftwatch._alerting.markers_config import MarkerSpec
from driftwatch._cli.main import main
from tests.support.marker_servers import FakeMarkers
from tests.support.prometheus_data import degrading_outcomes

FAST = {"backoff_s": 0.01, "timeout_s": 2.0}
CHANGE_AT = 1_767_225_600 + 60 * 800  # when degrading_outcomes switches fix-tests to claude-b


@pytest.fixture
def honeycomb() -> Iterator[FakeMarkers]:
    service = FakeMarkers("honeycomb")
    yield service
    service.close()


@pytest.fixture
def grafana() -> Iterator[FakeMarkers]:
    service = FakeMarkers("grafana")
    yield service
    service.close()


def run(*sinks: object) -> Monitor:
    monitor = Monitor(Config(signals=["success"]), sinks, threaded=False)  # type: ignore[arg-type]
    for outcome in degrading_outcomes():
        monitor.process(outcome)
    return monitor


def test_honeycomb_marker_on_a_model_change(honeycomb: FakeMarkers) -> None:
    """A model change posts one marker to /1/markers/{dataset} with the key header, at the change time."""
    sink = HoneycombMarkerSink("secret-key", "my agent/prod", api_url=honeycomb.url, **FAST)
    monitor = run(sink)
    assert sink.flush(5)
    sink.shutdown()
    assert monitor.stats.alerts["confirmed"] == 1  # drift and comparisons went by without a marker
    ((path, body, headers),) = honeycomb.requests
    assert path == "/1/markers/my%20agent%2Fprod" and headers["x-honeycomb-team"] == "secret-key"
    assert body["start_time"] == CHANGE_AT and body["type"] == "driftwatch-version-change"
    assert "model claude-a -> claude-b" in body["message"] and "task=fix-tests" in body["message"]
    assert honeycomb.invalid == [] and sink.stats.delivered == 1 and sink.stats.filtered >= 3


def test_grafana_annotation_on_a_model_change(grafana: FakeMarkers) -> None:
    """A model change posts one annotation: epoch ms, tags for filtering, text, the dashboard uid."""
    sink = GrafanaAnnotationSink(grafana.url + "/", "secret-key", dashboard_uid="driftwatch-overview", **FAST)
    run(sink)
    assert sink.flush(5)
    sink.shutdown()
    ((path, body, headers),) = grafana.requests
    assert path == "/api/annotations" and headers["authorization"] == "Bearer secret-key"
    assert body["time"] == CHANGE_AT * 1000 and body["dashboardUID"] == "driftwatch-overview"
    assert body["tags"] == [
        "driftwatch",
        "version_change",
        "service:agent",
        "task:fix-tests",
        "model:claude-b",
    ]
    assert "model claude-a -> claude-b" in body["text"] and grafana.invalid == []


def test_organization_annotation_without_a_dashboard(grafana: FakeMarkers) -> None:
    """Without dashboard_uid the annotation is an organization one (no dashboardUID field)."""
    sink = GrafanaAnnotationSink(grafana.url, "secret-key", **FAST)
    run(sink)
    assert sink.flush(5)
    sink.shutdown()
    assert "dashboardUID" not in grafana.bodies()[0] and grafana.invalid == []


def test_markers_retry_and_count_like_notifiers(honeycomb: FakeMarkers) -> None:
    """A 429 with Retry-After is retried (the notifier engine), then delivered once; a bad key fails."""
    honeycomb.script.append((429, {"Retry-After": "0"}))
    sink = HoneycombMarkerSink("secret-key", api_url=honeycomb.url, **FAST)
    run(sink)
    assert sink.flush(5)
    sink.shutdown()
    assert len(honeycomb.requests) == 2 and sink.stats.retries == 1 and sink.stats.delivered == 1
    wrong = HoneycombMarkerSink("wrong", api_url=honeycomb.url, **FAST)
    run(wrong)
    assert wrong.flush(5)
    wrong.shutdown()
    assert wrong.stats.failed == 1 and "HTTP 401" in wrong.deliveries()[0].reason


def test_markers_are_off_unless_a_key_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key anywhere: no markers; a section without its key is refused with the variable to set."""
    for var in ("DRIFTWATCH_HONEYCOMB_API_KEY", "DRIFTWATCH_GRAFANA_TOKEN", "DRIFTWATCH_GRAFANA_URL"):
        monkeypatch.delenv(var, raising=False)
    assert load_config(env={}).markers == []
    with pytest.raises(
        ConfigError, match=r"markers.honeycomb without 'api_key'.*DRIFTWATCH_HONEYCOMB_API_KEY"
    ):
        load_config(env={}, markers={"honeycomb": {"dataset": "x"}})


def test_marker_config_from_file_and_env(tmp_path: Path) -> None:
    """Keys from the file, secrets from env (env > file); a secret variable alone turns Honeycomb on."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "service: agent\nmarkers:\n  honeycomb:\n    dataset: my-agent\n    api_key: from-file\n"
        "  grafana:\n    url: https://grafana.example.com/\n    dashboard_uid: d1\n"
    )
    env = {"DRIFTWATCH_HONEYCOMB_API_KEY": "from-env", "DRIFTWATCH_GRAFANA_TOKEN": "tok"}
    honey, graf = load_config(str(path), env=env).markers
    assert (honey.type, honey.dataset, honey.api_key) == ("honeycomb", "my-agent", "from-env")
    assert (graf.url, graf.token, graf.dashboard_uid) == ("https://grafana.example.com", "tok", "d1")
    (alone,) = load_config(env={"DRIFTWATCH_HONEYCOMB_API_KEY": "k"}).markers
    assert (alone.dataset, alone.api_url) == ("__all__", "https://api.honeycomb.io")
    given = [MarkerSpec(type="honeycomb", api_key="from-arg", dataset="d")]
    (arg,) = load_config(env={"DRIFTWATCH_HONEYCOMB_API_KEY": "from-env"}, markers=given).markers
    assert arg.api_key == "from-arg"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "markers:\n  datadog: {}\n",
            r"c.yaml:2: unknown key 'markers.datadog'; valid keys are: honeycomb, grafana",
        ),
        (
            "markers:\n  honeycomb:\n    api_key: k\n    dataset_name: x\n",
            r"c.yaml:4: unknown key 'dataset_name' in markers.honeycomb; valid keys are: api_key, api_url",
        ),
        (
            "markers:\n  grafana:\n    url: grafana.local\n",
            r"c.yaml:3: key 'markers.grafana.url': expected an http",
        ),
        ("markers:\n  grafana:\n    token: t\n", r"markers.grafana without 'url'.*DRIFTWATCH_GRAFANA_URL"),
        (
            "markers:\n  honeycomb:\n    api_key: k\n    timeout_s: 0\n",
            r"c.yaml:4: .*timeout_s': expected a number > 0",
        ),
        ("markers: [honeycomb]\n", r"c.yaml:1: key 'markers': expected a mapping"),
    ],
)
def test_bad_marker_config_names_file_line_and_fix(tmp_path: Path, text: str, message: str) -> None:
    """Bad `markers:` entries fail at load time with file:line, the key and the valid form."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path), env={})


def test_runtime_and_alert_test_use_configured_markers(
    tmp_path: Path, honeycomb: FakeMarkers, grafana: FakeMarkers, capsys: pytest.CaptureFixture[str]
) -> None:
    """The runtime adds marker sinks; `driftwatch alert test` sends each a [TEST] version-change marker."""
    path = tmp_path / "c.yaml"
    path.write_text(
        f"markers:\n  honeycomb: {{api_key: secret-key, api_url: '{honeycomb.url}'}}\n"
        f"  grafana: {{token: secret-key, url: '{grafana.url}'}}\n"
    )
    runtime = driftwatch.configure(str(path), console=False)
    try:
        kinds = {type(s) for s in runtime.monitor.sinks}
        assert {HoneycombMarkerSink, GrafanaAnnotationSink} <= kinds
    finally:
        driftwatch.shutdown(1.0)
    assert main(["alert", "test", "--config", str(path), "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert out.count("marker delivered") == 2 and "2 of 2 destinations delivered everything" in out
    assert honeycomb.bodies()[0]["message"].startswith("[TEST] driftwatch: version change")
    assert grafana.bodies()[0]["text"].startswith("[TEST] ") and honeycomb.invalid == grafana.invalid == []


def test_build_markers_from_specs() -> None:
    """build_markers turns specs into sinks with the documented URLs and headers."""
    honey, graf = build_markers(
        [
            MarkerSpec(
                type="honeycomb", api_key="k", dataset="__all__", api_url="https://api.eu1.honeycomb.io"
            ),
            MarkerSpec(type="grafana", url="https://g.example.com", token="t"),
        ]
    )
    try:
        assert honey.url == "https://api.eu1.honeycomb.io/1/markers/__all__"
        assert honey.headers == {"X-Honeycomb-Team": "k"} and honey.name == "honeycomb (api.eu1.honeycomb.io)"
        assert graf.url == "https://g.example.com/api/annotations"
        assert graf.headers == {"Authorization": "Bearer t"}
    finally:
        honey.shutdown(0.1)
        graf.shutdown(0.1)
