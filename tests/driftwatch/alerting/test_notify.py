"""Notifiers against local servers checking PagerDuty, Slack and webhook payloads; retries, limits, drops."""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

import driftwatch
import driftwatch.notify
from driftwatch import Alert, Config, ConfigError, Monitor, Outcome, load_config
from driftwatch._alerting.notifiers import synthetic_alert
from driftwatch._cli.main import main
from driftwatch._outcome import format_time
from driftwatch._stats import Estimate
from driftwatch.notify import Notifier, PagerDutySink, SlackSink, WebhookSink, build_notifiers
from tests.support.notify_servers import FakeService

FAST = {"backoff_s": 0.01, "timeout_s": 2.0}
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def hook() -> Iterator[FakeService]:
    service = FakeService("webhook")
    yield service
    service.close()


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def drift(i: int = 0, status: str = "confirmed", **changes: Any) -> Alert:
    alert = synthetic_alert("agent")
    changes.setdefault("extra", {})  # not marked as a test alert
    return alert.with_status(status, id=f"alert-{i}", **changes)


def run_stream(monitor: Monitor, rates: list[tuple[float, int]], seed: int = 5) -> list[Alert]:
    rng = random.Random(seed)
    alerts: list[Alert] = []
    i = 0
    for rate, count in rates:
        for _ in range(count):
            i += 1
            alerts += monitor.process(Outcome(task="fix", time=float(i), success=rng.random() < rate))
    return alerts


def test_monitor_drift_triggers_and_resolves_once_per_destination(
    pd: FakeService, slack: FakeService, hook: FakeService
) -> None:
    """A pass rate that drops and comes back: one trigger and one resolve per destination, one dedup key."""
    sinks: list[Notifier] = [
        PagerDutySink("R0123456789abcdef0123456789abcde", url=pd.url, **FAST),
        SlackSink(slack.url, **FAST),
        WebhookSink(hook.url, headers={"Authorization": "Bearer t0ken"}, **FAST),
    ]
    monitor = Monitor(Config(signals=["success"]), sinks, threaded=False)
    alerts = run_stream(monitor, [(0.8, 800), (0.5, 600), (0.8, 1500)])
    monitor.shutdown()
    down = next(a for a in alerts if a.status == "confirmed" and a.direction == "down")
    # The monitor resolves the alert itself once the stream is back; a suspicion of the change back
    # (not paged at min_status confirmed) closes with it.
    assert [a.status for a in alerts if a.id == down.id] == ["suspected", "confirmed", "resolved"]
    assert all(a.status in ("suspected", "resolved") for a in alerts if a.id != down.id)

    events = pd.bodies()
    incident = down.extra["incident"]  # the dedup key is the incident's (one cause, one page)
    assert incident.startswith("inc-") and down.to_dict()["incident"] == incident
    assert [(e["event_action"], e["dedup_key"]) for e in events] == [
        ("trigger", incident),
        ("resolve", incident),
    ]
    payload = events[0]["payload"]
    assert payload["severity"] == "error" and payload["source"] == "unknown_service"
    details = payload["custom_details"]
    # The anytime p-value of the sequential confirmation (1 / likelihood ratio) is at most confirm_alpha.
    assert details["baseline"]["n"] > 0 and details["p_value"] <= 0.05 and details["detector"]["name"]
    assert {"ci_low", "ci_high", "mean"} <= details["current"].keys() and details["change_at"]

    messages = slack.bodies()
    assert len(messages) == 2
    assert messages[0]["blocks"][0]["type"] == "header" and down.id in str(messages[0]["blocks"][-1])
    labels = [f["text"].split("\n")[0] for f in messages[0]["blocks"][1]["fields"]]
    assert labels == ["*What changed*", "*By how much*", "*Since*", "*Confidence*", "*Samples*"]
    assert "Resolved" in messages[1]["blocks"][0]["text"]["text"] and down.id in str(messages[1]["blocks"])

    posted = hook.bodies()
    assert [(a["id"], a["status"]) for a in posted] == [(down.id, "confirmed"), (down.id, "resolved")]
    assert hook.requests[0][2]["Authorization"] == "Bearer t0ken"
    assert pd.invalid == slack.invalid == hook.invalid == []
    for sink in sinks:
        assert sink.stats.delivered == 2 and sink.stats.failed == 0


def test_500_then_202_is_retried(pd: FakeService) -> None:
    """A 5xx answer is retried with backoff and the event then delivered once."""
    pd.script = [(500, {}), (503, {})]
    sink = PagerDutySink("key", url=pd.url, **FAST)
    sink.export(drift())
    assert sink.flush(5)
    sink.shutdown()
    assert len(pd.requests) == 3 and sink.stats.retries == 2 and sink.stats.delivered == 1
    assert sink.deliveries()[-1].ok and sink.deliveries()[-1].attempts == 3


def test_429_retry_after_is_honoured(hook: FakeService) -> None:
    """429 with Retry-After waits that long (not the short backoff) before trying again."""
    hook.script = [(429, {"Retry-After": "1"})]
    sink = WebhookSink(hook.url, **FAST)
    sink.export(drift())
    assert sink.flush(5)
    sink.shutdown()
    (first, _, _), (second, _, _) = hook.requests
    assert 0.9 <= second - first < 3 and sink.stats.delivered == 1


def test_client_error_is_not_retried(pd: FakeService) -> None:
    """A 400 (a bad event) is given up at once, counted, with the service's answer as the reason."""
    sink = PagerDutySink("key", url=pd.url, severity="warning", **FAST)
    sink.routing_key = ""  # PagerDuty rejects an event without a routing key
    sink.export(drift())
    assert sink.flush(5)
    sink.shutdown()
    assert len(pd.requests) == 1 and sink.stats.failed == 1
    assert "HTTP 400" in sink.deliveries()[-1].reason and "routing_key" in sink.deliveries()[-1].reason


def test_server_that_never_answers_does_not_block_detection(hook: FakeService) -> None:
    """A hanging endpoint times out in the background; export returns at once and detection runs on."""
    hook.script = ["hang", "hang"]
    sink = WebhookSink(hook.url, timeout_s=0.3, max_attempts=2, backoff_s=0.01)
    monitor = Monitor(Config(signals=["success"]), [sink], threaded=False)
    start = time.monotonic()
    alerts = run_stream(monitor, [(0.8, 800), (0.5, 600)])
    elapsed = time.monotonic() - start
    assert any(a.status == "confirmed" for a in alerts)
    assert elapsed < 0.5  # the detection loop did not wait for the 2 x 0.3 s of timeouts
    assert sink.flush(5)
    monitor.shutdown()
    assert sink.stats.failed == 1 and len(hook.requests) == 2
    assert sink.deliveries()[-1].reason.startswith("no answer within 0.3 s")


def test_dead_port_gives_up_after_max_attempts() -> None:
    """Connection refused is retried max_attempts times, then counted as failed with the reason."""
    sink = WebhookSink(dead_url(), max_attempts=3, backoff_s=0.01)
    sink.export(drift())
    assert sink.flush(5)
    sink.shutdown()
    result = sink.deliveries()[-1]
    assert not result.ok and result.attempts == 3 and "cannot connect" in result.reason
    assert sink.stats.failed == 1 and sink.stats.retries == 2


def test_rate_limit_drops_are_counted_and_resolves_still_go(pd: FakeService) -> None:
    """Past the token bucket new pages are dropped and counted; resolves of sent pages are not limited."""
    sink = PagerDutySink("key", url=pd.url, rate_per_minute=2, **FAST)
    for i in range(5):
        sink.export(drift(i))
    for i in range(5):
        sink.export(drift(i, "resolved"))
    assert sink.flush(5)
    sink.shutdown()
    actions = [(e["event_action"], e["dedup_key"]) for e in pd.bodies()]
    assert actions == [
        ("trigger", "alert-0"),
        ("trigger", "alert-1"),
        ("resolve", "alert-0"),
        ("resolve", "alert-1"),
    ]
    assert sink.stats.dropped_rate_limited == 3 and sink.stats.resolves_skipped == 3


def test_same_id_and_status_is_delivered_once(slack: FakeService) -> None:
    """The same (id, status) twice (a replayed journal, say) is sent once and counted as a duplicate."""
    sink = SlackSink(slack.url, **FAST)
    for status in ("confirmed", "confirmed", "resolved", "resolved"):
        sink.export(drift(7, status))
    assert sink.flush(5)
    sink.shutdown()
    assert len(slack.requests) == 2 and sink.stats.duplicates == 2 and slack.invalid == []


def test_suspected_does_not_page_and_its_resolve_is_not_sent(pd: FakeService) -> None:
    """By default a suspected alert does not page, so its resolved form is not sent either."""
    sink = PagerDutySink("key", url=pd.url, **FAST)
    sink.export(drift(1, "suspected", p_value=None))
    sink.export(drift(1, "resolved"))
    assert sink.flush(5)
    sink.shutdown()
    assert pd.requests == [] and sink.stats.filtered == 1 and sink.stats.resolves_skipped == 1


def test_min_status_suspected_pages_a_false_alarm_and_resolves_it(pd: FakeService) -> None:
    """With min_status suspected, a suspected alert pages (warning) and its resolve closes that page."""
    sink = PagerDutySink("key", url=pd.url, min_status="suspected", **FAST)
    sink.export(drift(1, "suspected", p_value=None))
    sink.export(drift(1, "resolved"))
    assert sink.flush(5)
    sink.shutdown()
    events = pd.bodies()
    assert [(e["event_action"], e["dedup_key"]) for e in events] == [
        ("trigger", "alert-1"),
        ("resolve", "alert-1"),
    ]
    assert events[0]["payload"]["severity"] == "warning" and pd.invalid == []


@pytest.mark.parametrize(
    ("signal", "direction", "configured", "expected"),
    [
        ("success", "down", None, "error"),
        ("latency_s", "up", None, "warning"),
        ("score", "down", None, "warning"),
        ("success", "up", None, "info"),
        ("output_tokens", "down", None, "info"),
        ("success", "down", "critical", "critical"),
    ],
)
def test_severity(signal: str, direction: str, configured: str | None, expected: str) -> None:
    """Pass-rate drops are error, other degradations warning, improvements info; a set severity wins."""
    sink = PagerDutySink("key", url="http://127.0.0.1:9/none", severity=configured)
    try:
        assert sink.severity_of(drift(signal=signal, direction=direction)) == expected
    finally:
        sink.shutdown(0.1)


def test_long_labels_stay_within_documented_limits(pd: FakeService, slack: FakeService) -> None:
    """A very long stream label is cut to PagerDuty's 1024-char summary and Slack's block limits."""
    label = "x" * 5000
    sinks: list[Notifier] = [PagerDutySink("key", url=pd.url, **FAST), SlackSink(slack.url, **FAST)]
    for sink in sinks:
        sink.export(drift(stream={"service": "agent", "task": label}))
        assert sink.flush(5)
        sink.shutdown()
    assert len(pd.bodies()[0]["payload"]["summary"]) == 1024
    assert pd.invalid == slack.invalid == [] and all(s.stats.delivered == 1 for s in sinks)


def test_version_change_annotations_only_with_min_status_annotation(hook: FakeService) -> None:
    """Version-change annotations reach a webhook only when it asks for min_status annotation."""
    note = drift(
        3, "annotation", kind="version_change", extra={"marker": "model", "before": "a", "after": "b"}
    )
    quiet, loud = WebhookSink(hook.url, **FAST), WebhookSink(hook.url, min_status="annotation", **FAST)
    for sink in (quiet, loud):
        sink.export(note)
        assert sink.flush(5)
        sink.shutdown()
    assert [a["kind"] for a in hook.bodies()] == ["version_change"] and quiet.stats.filtered == 1


def test_full_queue_drops_and_shutdown_keeps_its_deadline(hook: FakeService) -> None:
    """With the endpoint hanging, a full queue drops and counts; shutdown returns by its deadline."""
    hook.script = ["hang"] * 5
    sink = WebhookSink(hook.url, queue_size=2, timeout_s=5.0, max_attempts=1)
    for i in range(4):
        sink.export(drift(i))
    start = time.monotonic()
    sink.shutdown(0.3)
    assert time.monotonic() - start < 1.0
    stats = sink.stats
    assert stats.dropped_queue_full >= 1 and stats.accepted + stats.dropped_queue_full == 4
    assert stats.dropped_shutdown >= 1


def test_export_after_shutdown_is_counted(hook: FakeService) -> None:
    """An alert handed over after shutdown is not sent and is counted."""
    sink = WebhookSink(hook.url, **FAST)
    sink.shutdown()
    sink.export(drift())
    assert sink.stats.dropped_shutdown == 1 and hook.requests == []


# -- configuration ---------------------------------------------------------------------------------


def test_notifiers_from_yaml_build_the_three_sinks(tmp_path: Path) -> None:
    """A notifiers: list builds one sink per entry with its options; secrets can come from env."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "service: a\n"
        "notifiers:\n"
        "  - type: pagerduty\n"
        "    min_status: suspected\n"
        "    severity: critical\n"
        "  - type: slack\n"
        "    url: https://hooks.slack.com/services/T/B/file\n"
        "  - type: webhook\n"
        "    url: https://example.com/alerts\n"
        "    headers: {Authorization: Bearer x}\n"
        "    rate_per_minute: 5\n"
        "    timeout_s: 2.5\n"
        "    max_attempts: 3\n"
    )
    env = {
        "DRIFTWATCH_PAGERDUTY_ROUTING_KEY": "envkey",
        "DRIFTWATCH_SLACK_WEBHOOK_URL": "https://hooks.slack.com/e",
    }
    config = load_config(str(path), env=env)
    sinks = build_notifiers(config)
    try:
        pagerduty, slack, webhook = sinks
        assert isinstance(pagerduty, PagerDutySink) and pagerduty.routing_key == "envkey"
        assert pagerduty.min_status == "suspected" and pagerduty.severity == "critical"
        assert isinstance(slack, SlackSink) and slack.url == "https://hooks.slack.com/e"  # env over file
        assert isinstance(webhook, WebhookSink) and webhook.headers == {"Authorization": "Bearer x"}
        assert (webhook.rate_per_minute, webhook.timeout_s, webhook.max_attempts) == (5.0, 2.5, 3)
        assert "services" not in slack.name  # the webhook path is its secret
    finally:
        for sink in sinks:
            sink.shutdown(0.1)


def test_env_secret_alone_adds_a_notifier() -> None:
    """DRIFTWATCH_SLACK_WEBHOOK_URL without any notifiers: in a file configures a Slack notifier."""
    config = load_config(env={"DRIFTWATCH_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x"})
    assert [(n.type, n.url) for n in config.notifiers] == [
        ("slack", "https://hooks.slack.com/services/T/B/x")
    ]


@pytest.mark.parametrize(
    ("entry", "line", "message"),
    [
        (
            "  - type: teams\n    url: https://x\n",
            3,
            "key 'type': expected one of pagerduty, slack, webhook, got 'teams'",
        ),
        (
            "  - type: webhook\n    url: https://x\n    retries: 3\n",
            5,
            "unknown key 'retries' in a webhook notifier",
        ),
        ("  - type: slack\n    url: hooks.slack.com\n", 4, "key 'url': expected an http:// or https:// URL"),
        (
            "  - type: webhook\n    url: https://x\n    min_status: resolved\n",
            5,
            "expected one of annotation, suspected",
        ),
        ("  - type: webhook\n    url: https://x\n    max_attempts: 2.5\n", 5, "expected a whole number >= 1"),
        (
            "  - type: pagerduty\n    routing_key: k\n    severity: high\n",
            5,
            "expected one of critical, error",
        ),
        (
            "  - type: pagerduty\n",
            3,
            "pagerduty notifier without 'routing_key'; set it here or in DRIFTWATCH_",
        ),
        ("  - type: slack\n    severity: info\n    url: https://x\n", 4, "'severity' applies to pagerduty"),
        ("  - url: https://x\n", 3, "key 'type': expected one of"),
        ("  - type: slack\n    url: https://x\n    headers: {a: b}\n", 5, "'headers' applies to webhook"),
    ],
)
def test_bad_notifier_names_file_line_and_valid_form(
    tmp_path: Path, entry: str, line: int, message: str
) -> None:
    """A bad notifiers entry is reported with file:line of the offending key and the valid form."""
    path = tmp_path / "c.yaml"
    path.write_text("service: a\nnotifiers:\n" + entry)
    with pytest.raises(ConfigError, match=rf"^{path}:{line}: .*") as info:
        load_config(str(path), env={})
    assert message in str(info.value)


def test_notifiers_must_be_a_list(tmp_path: Path) -> None:
    """notifiers: given as a mapping is refused with the expected form."""
    path = tmp_path / "c.yaml"
    path.write_text("notifiers:\n  type: slack\n")
    with pytest.raises(ConfigError, match=rf"{path}:1: key 'notifiers': expected a list of notifiers"):
        load_config(str(path), env={})


def test_runtime_adds_configured_notifiers(tmp_path: Path, hook: FakeService) -> None:
    """driftwatch.configure with notifiers in the file puts them among the monitor's sinks."""
    path = tmp_path / "c.yaml"
    path.write_text(f"console: false\nnotifiers:\n  - type: webhook\n    url: {hook.url}\n")
    runtime = driftwatch.configure(str(path))
    try:
        assert any(isinstance(s, WebhookSink) and s.url == hook.url for s in runtime.monitor.sinks)
    finally:
        driftwatch.shutdown(1.0)


# -- driftwatch alert test -------------------------------------------------------------------------


def test_alert_test_reports_each_sink(
    tmp_path: Path, pd: FakeService, slack: FakeService, hook: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    """`driftwatch alert test` sends a trigger and a resolve to every sink; a dead one fails the run."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "notifiers:\n"
        f"  - {{type: pagerduty, routing_key: k, url: '{pd.url}'}}\n"
        f"  - {{type: slack, url: '{slack.url}'}}\n"
        f"  - {{type: webhook, url: '{hook.url}'}}\n"
    )
    assert main(["alert", "test", "--config", str(path), "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert out.count("trigger delivered; resolve delivered") == 3 and "3 of 3 notifiers delivered" in out
    assert pd.bodies()[0]["payload"]["summary"].startswith("[TEST] ")
    assert [e["event_action"] for e in pd.bodies()] == ["trigger", "resolve"]
    assert len(slack.requests) == 2 and len(hook.requests) == 2
    assert pd.invalid == slack.invalid == hook.invalid == []

    path.write_text(f"notifiers:\n  - {{type: webhook, url: '{dead_url()}', max_attempts: 1}}\n")
    assert main(["alert", "test", "--config", str(path), "--timeout", "5"]) == 1
    out = capsys.readouterr().out
    assert (
        "trigger FAILED: cannot connect" in out
        and "resolve FAILED: its announcement was not delivered" in out
    )


def test_alert_test_without_notifiers_says_how_to_add_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing configured the command exits 2 and names the config key and variables."""
    monkeypatch.delenv("DRIFTWATCH_PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.delenv("DRIFTWATCH_SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("DRIFTWATCH_CONFIG", raising=False)
    assert main(["alert", "test"]) == 2
    assert "add a 'notifiers:' list" in capsys.readouterr().err


def test_estimate_is_reported_in_custom_details(pd: FakeService) -> None:
    """custom_details carries baseline and current with their intervals, effect, p-value and n."""
    sink = PagerDutySink("key", url=pd.url, **FAST)
    sink.export(drift(baseline=Estimate(0.9, 400, 0.87, 0.93)))
    assert sink.flush(5)
    sink.shutdown()
    details = pd.bodies()[0]["payload"]["custom_details"]
    assert details["baseline"] == {"mean": 0.9, "n": 400, "ci_low": 0.87, "ci_high": 0.93}
    assert details["effect"] == -0.3 and details["p_value"] == 1e-9 and details["n_current"] == 120


def test_public_surface_of_driftwatch_notify() -> None:
    """driftwatch.notify exports exactly the notifiers, their engine and what they report."""
    assert sorted(driftwatch.notify.__all__) == [
        "Delivery",
        "Notifier",
        "NotifierSpec",
        "NotifierStats",
        "PagerDutySink",
        "SlackSink",
        "WebhookSink",
        "build_notifiers",
    ]


@pytest.mark.parametrize(
    ("argument", "env", "file", "expected"),
    [
        (None, None, "filekey", "filekey"),
        (None, "envkey", "filekey", "envkey"),
        ("argkey", "envkey", "filekey", "argkey"),
        ("argkey", None, None, "argkey"),
    ],
)
def test_routing_key_precedence(
    tmp_path: Path, argument: str | None, env: str | None, file: str | None, expected: str
) -> None:
    """The PagerDuty routing key: argument > DRIFTWATCH_PAGERDUTY_ROUTING_KEY > file, as one table."""
    path = tmp_path / "c.yaml"
    path.write_text("notifiers:\n  - type: pagerduty\n" + (f"    routing_key: {file}\n" if file else ""))
    environ = {"DRIFTWATCH_PAGERDUTY_ROUTING_KEY": env} if env else {}
    notifiers = [{"type": "pagerduty", "routing_key": argument}] if argument else None
    config = load_config(str(path) if file else None, env=environ, notifiers=notifiers)
    assert [n.routing_key for n in config.notifiers] == [expected]


def test_bad_argument_entry_is_named() -> None:
    """A bad notifier passed as an argument names the argument and the entry."""
    with pytest.raises(ConfigError, match=r"argument 'notifiers': notifiers\[0\]: .*key 'type'"):
        load_config(env={}, notifiers=[{"type": "sms"}])


def test_paging_on_suspicion_closes_both_pages_on_recovery(pd: FakeService) -> None:
    """min_status suspected, a drop and recovery: the drop and the suspicion of the way back both resolve
    (with page_improvements on: the way back is an improvement)."""
    sink = PagerDutySink("key", url=pd.url, min_status="suspected", page_improvements=True, **FAST)
    monitor = Monitor(Config(signals=["success"]), [sink], threaded=False)
    alerts = run_stream(monitor, [(0.8, 800), (0.5, 600), (0.8, 1500)])
    monitor.shutdown()
    # The drop and the suspicion of the change back (same task, within the incident window) are one
    # incident: the way back updates it under the same dedup key, and it resolves once, with both.
    incident = alerts[0].extra["incident"]
    assert alerts[2].extra["incident"] == incident and alerts[2].id != alerts[0].id
    events = [(e["event_action"], e["dedup_key"], e.get("payload", {}).get("severity")) for e in pd.bodies()]
    assert events == [
        ("trigger", incident, "warning"),
        ("trigger", incident, "error"),
        ("trigger", incident, "info"),
        ("resolve", incident, None),
    ]
    assert sink.stats.grouped == 1
    assert pd.invalid == []


# -- issue 13: on-call delivery --------------------------------------------------------------------


def write_outcomes(path: Path, rates: list[tuple[float, int]], seed: int = 5) -> None:
    rng = random.Random(seed)
    with path.open("w") as fh:
        i = 0
        for rate, count in rates:
            for _ in range(count):
                i += 1
                fh.write(
                    json.dumps({"time": T0 + 60 * i, "task": "fix", "success": rng.random() < rate}) + "\n"
                )


T0 = 1_767_225_600


def test_replay_pages_the_configured_notifiers(
    tmp_path: Path, hook: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    """`replay --config` sends its alerts to the config's notifiers and sums up delivery at the end;
    --no-notify sends nothing and says so."""
    stream = tmp_path / "outcomes.jsonl"
    write_outcomes(stream, [(0.8, 800), (0.5, 600), (0.8, 1500)])
    path = tmp_path / "c.yaml"
    path.write_text(f"console: false\nnotifiers:\n  - {{type: webhook, url: '{hook.url}'}}\n")
    assert main(["replay", str(stream), "--config", str(path), "--no-notify"]) == 0
    assert hook.requests == [] and "not paging: --no-notify" in capsys.readouterr().out
    assert main(["replay", str(stream), "--config", str(path)]) == 0
    out = capsys.readouterr().out
    posted = [(a["status"], a["signal"], a["direction"]) for a in hook.bodies()]
    assert posted == [("confirmed", "success", "down"), ("resolved", "success", "down")]
    assert "paging: alerts also go to webhook (127.0.0.1:" in out
    assert "2 sent, 0 retried, 0 failed, 0 dropped" in out and hook.invalid == []


def test_replay_summarises_failed_deliveries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A notifier that cannot deliver is named at the end of a replay with the count and the reason,
    and the replay exits 3."""
    stream = tmp_path / "outcomes.jsonl"
    write_outcomes(stream, [(0.8, 800), (0.5, 600)])
    path = tmp_path / "c.yaml"
    path.write_text(
        f"console: false\nnotifiers:\n  - {{type: webhook, url: '{dead_url()}', max_attempts: 2}}\n"
    )
    assert main(["replay", str(stream), "--config", str(path)]) == 3
    captured = capsys.readouterr()
    out = captured.out
    assert "1 notifications were not delivered" in captured.err
    assert re.search(r"notifier webhook \(127\.0\.0\.1:\d+\): 0 sent, 1 retried, 1 failed, 0 dropped", out)
    assert "last failure: trigger" in out and "cannot connect" in out


def write_junit(path: Path, rates: list[tuple[float, int]], seed: int = 5) -> None:
    """One JUnit file of many one-test suites a minute apart (a nightly agent test run, over months)."""
    rng = random.Random(seed)
    suites, i = [], 0
    for rate, count in rates:
        for _ in range(count):
            i += 1
            at = datetime.fromtimestamp(T0 + 60 * i, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            failure = "" if rng.random() < rate else '<failure message="assert"/>'
            suites.append(
                f'<testsuite name="agent" timestamp="{at}" time="1">'
                f'<testcase classname="m" name="t" time="1">{failure}</testcase></testsuite>'
            )
    path.write_text("<testsuites>" + "".join(suites) + "</testsuites>")


def test_ingest_pages_the_configured_notifiers_and_exits_3_when_one_cannot_deliver(
    tmp_path: Path, hook: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ingest junit --config` pages like replay (a confirm, a resolve); a dead notifier makes it exit 3."""
    xml = tmp_path / "report.xml"
    write_junit(xml, [(0.8, 800), (0.5, 600), (0.8, 1500)])
    good, dead = tmp_path / "good.yaml", tmp_path / "dead.yaml"
    good.write_text(f"console: false\nnotifiers:\n  - {{type: webhook, url: '{hook.url}'}}\n")
    assert main(["ingest", "junit", str(xml), "--config", str(good)]) == 0
    out = capsys.readouterr().out
    # Score (the pass rate of a one-test suite) and success move together: one incident, one page.
    posted = [(a["status"], a["direction"]) for a in hook.bodies()]
    assert posted == [("confirmed", "down"), ("resolved", "down")]
    assert "paging: alerts also go to webhook" in out and "2 sent, 0 retried, 0 failed" in out
    dead.write_text(
        f"console: false\nnotifiers:\n  - {{type: webhook, url: '{dead_url()}', max_attempts: 1}}\n"
    )
    assert main(["ingest", "junit", str(xml), "--config", str(dead), "--notify-timeout", "5"]) == 3
    assert "notifications were not delivered" in capsys.readouterr().err
    assert main(["ingest", "junit", str(xml), "--config", str(dead), "--no-notify"]) == 0


def test_replay_help_says_it_pages(capsys: pytest.CaptureFixture[str]) -> None:
    """`replay --help` says where alerts go and how not to page."""
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "sent to the notifiers configured in --config" in out and "--no-notify" in out


def test_configure_sinks_add_to_the_configured_notifiers(tmp_path: Path, hook: FakeService) -> None:
    """configure(path, sinks=[…]) as in docs/destinations/grafana-prometheus.md: the config's notifiers
    still page (the passed sinks are added, not put in their place)."""
    from driftwatch.prometheus import PrometheusSink

    path = tmp_path / "c.yaml"
    path.write_text(
        f"console: false\nsignals: [success]\nnotifiers:\n  - {{type: webhook, url: '{hook.url}'}}\n"
    )
    prometheus, memory = PrometheusSink(), driftwatch.InMemorySink()
    runtime = driftwatch.configure(str(path), sinks=[prometheus, memory])
    try:
        run_stream(runtime.monitor, [(0.8, 800), (0.5, 600)])
        (notifier,) = [s for s in runtime.monitor.sinks if isinstance(s, WebhookSink)]
        assert notifier.flush(5)
    finally:
        driftwatch.shutdown(1.0)
    assert prometheus in runtime.monitor.sinks and memory.by_status("confirmed")
    assert [a["status"] for a in hook.bodies()] == ["confirmed"]


def test_configure_docstring_says_sinks_are_added() -> None:
    """The documented behaviour of configure(sinks=…) is the one implemented."""
    doc = " ".join((driftwatch.configure.__doc__ or "").split())
    assert "are added to the configured ones" in doc and "replaces" not in doc


def test_grafana_prometheus_doc_keeps_notifiers_and_merges_prometheus_yml() -> None:
    """The docs' snippet adds the Prometheus sink, says merge (not append) and sets an evaluation interval."""
    text = (ROOT / "docs" / "destinations" / "grafana-prometheus.md").read_text()
    assert "ConsoleSink()" not in text  # the console is a configured sink already; passing it doubles it
    assert "Merge into" in text and "Add to `/etc/prometheus/prometheus.yml`" not in text
    assert re.search(r"global:\n\s+evaluation_interval: 15s", text)


def test_improvements_do_not_page_pagerduty_by_default(pd: FakeService, slack: FakeService) -> None:
    """A confirmed improvement: not sent to PagerDuty unless page_improvements is on; Slack gets it."""
    better = drift(1, direction="up")  # pass rate up
    sinks: list[Notifier] = [
        PagerDutySink("key", url=pd.url, **FAST),
        PagerDutySink("key", url=pd.url, page_improvements=True, **FAST),
        SlackSink(slack.url, **FAST),
    ]
    for sink in sinks:
        sink.export(better)
        sink.export(better.with_status("resolved", extra={"resolved_at": 1.0}))
        assert sink.flush(5)
        sink.shutdown()
    assert sinks[0].stats.filtered == 1 and sinks[0].stats.resolves_skipped == 1
    assert [(e["event_action"], e.get("payload", {}).get("severity")) for e in pd.bodies()] == [
        ("trigger", "info"),
        ("resolve", None),
    ]
    assert len(slack.requests) == 2 and pd.invalid == slack.invalid == []


def test_page_improvements_from_yaml(tmp_path: Path) -> None:
    """page_improvements is a per-notifier key: unset means off for PagerDuty, on for Slack and webhooks."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "notifiers:\n"
        "  - {type: pagerduty, routing_key: k}\n"
        "  - {type: pagerduty, routing_key: k, page_improvements: true}\n"
        "  - {type: slack, url: 'https://hooks.slack.com/x'}\n"
        "  - {type: webhook, url: 'https://example.com/x', page_improvements: false}\n"
    )
    sinks = build_notifiers(load_config(str(path), env={}))
    try:
        assert [s.page_improvements for s in sinks] == [False, True, True, False]
        assert sinks[1].name == "pagerduty (events.pagerduty.com) #2"  # distinct names for the counters
    finally:
        for sink in sinks:
            sink.shutdown(0.1)
    path.write_text("notifiers:\n  - {type: slack, url: 'https://x', page_improvements: yes please}\n")
    with pytest.raises(ConfigError, match=r"c.yaml:2: key 'page_improvements': expected true or false"):
        load_config(str(path), env={})


def test_resolves_say_when_they_resolved(
    tmp_path: Path, pd: FakeService, slack: FakeService, hook: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recovery's resolve carries its resolve time (RFC 3339) to Slack, the webhook and the CLI."""
    sinks: list[Notifier] = [
        PagerDutySink("key", url=pd.url, **FAST),
        SlackSink(slack.url, **FAST),
        WebhookSink(hook.url, **FAST),
    ]
    monitor = Monitor(Config(signals=["success"]), sinks, threaded=False)
    alerts = run_stream(monitor, [(0.8, 800), (0.5, 600), (0.8, 1500)])
    monitor.shutdown()
    down = next(a for a in alerts if a.status == "confirmed")
    resolve = next(a for a in alerts if a.status == "resolved" and a.id == down.id)
    when = datetime.fromtimestamp(resolve.extra["decided_at"], UTC).isoformat(timespec="milliseconds")
    when = when.replace("+00:00", "Z")
    assert when > format_time(down.detected_at)
    assert hook.bodies()[-1]["resolved_at"] == when
    assert f"Resolved at {when}" in slack.bodies()[-1]["blocks"][0]["text"]["text"]
    assert slack.bodies()[-1]["text"].startswith(f"resolved at {when}: ")
    assert pd.bodies()[-1]["event_action"] == "resolve" and pd.invalid == slack.invalid == hook.invalid == []

    stream = tmp_path / "outcomes.jsonl"
    write_outcomes(stream, [(0.8, 800), (0.5, 600), (0.8, 1500)])
    out = tmp_path / "alerts.jsonl"
    assert main(["replay", str(stream), "--alerts-out", str(out)]) == 0
    printed = capsys.readouterr().out
    resolved = [json.loads(line) for line in out.read_text().splitlines() if '"resolved"' in line]
    assert resolved and all("resolved_at" in a for a in resolved)
    for a in resolved:
        assert f"[resolved] {a['resolved_at']} " in printed and f"resolved at {a['resolved_at']}" in printed


def test_pagerduty_details_are_rounded_for_reading(pd: FakeService) -> None:
    """custom_details (read by people in PagerDuty) carry no 16-digit floats."""
    sink = PagerDutySink("key", url=pd.url, **FAST)
    monitor = Monitor(Config(signals=["success"]), [sink], threaded=False)
    run_stream(monitor, [(0.8, 800), (0.5, 600)])
    monitor.shutdown()
    details = pd.bodies()[0]["payload"]["custom_details"]
    floats: list[float] = []

    def walk(value: Any) -> None:
        if isinstance(value, float):
            floats.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(details)
    assert len(floats) > 5 and all(float(f"{f:.4g}") == f for f in floats), floats
    assert 0 < details["p_value"] <= 0.05  # the sequential confirmation's anytime p-value


def test_runbook_and_dashboard_links(
    tmp_path: Path, pd: FakeService, slack: FakeService, hook: FakeService
) -> None:
    """runbook_url / dashboard_url (global, or per notifier) go out with every page."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "runbook_url: https://wiki.example.com/runbooks/driftwatch\n"
        "dashboard_url: https://grafana.example.com/d/driftwatch-overview\n"
        "notifiers:\n"
        f"  - {{type: pagerduty, routing_key: k, url: '{pd.url}'}}\n"
        f"  - {{type: slack, url: '{slack.url}', runbook_url: 'https://wiki.example.com/slack'}}\n"
        f"  - {{type: webhook, url: '{hook.url}'}}\n"
    )
    sinks = build_notifiers(load_config(str(path), env={}))
    for sink in sinks:
        sink.export(drift())
        assert sink.flush(5)
        sink.shutdown()
    event = pd.bodies()[0]
    assert event["links"] == [
        {"href": "https://wiki.example.com/runbooks/driftwatch", "text": "Runbook"},
        {"href": "https://grafana.example.com/d/driftwatch-overview", "text": "Dashboard"},
    ]
    assert event["payload"]["custom_details"]["runbook_url"] == "https://wiki.example.com/runbooks/driftwatch"
    footer = slack.bodies()[0]["blocks"][-1]["elements"][0]["text"]
    assert "<https://wiki.example.com/slack|Runbook>" in footer
    assert "<https://grafana.example.com/d/driftwatch-overview|Dashboard>" in footer
    assert hook.bodies()[0]["links"] == {
        "runbook": "https://wiki.example.com/runbooks/driftwatch",
        "dashboard": "https://grafana.example.com/d/driftwatch-overview",
    }
    assert pd.invalid == slack.invalid == hook.invalid == []
    path.write_text("runbook_url: wiki/runbook\n")
    with pytest.raises(ConfigError, match="key 'runbook_url': expected an http:// or https:// URL"):
        load_config(str(path), env={})


def test_slack_test_message_is_visibly_a_test(slack: FakeService) -> None:
    """The synthetic alert of `driftwatch alert test` says TEST in the blocks people see, not only in
    the notification text."""
    sink = SlackSink(slack.url, **FAST)
    alert = synthetic_alert("agent")
    sink.export(alert)
    sink.export(alert.with_status("resolved"))
    assert sink.flush(5)
    sink.shutdown()
    trigger, resolve = slack.bodies()
    assert trigger["blocks"][0]["text"]["text"].split(" ", 1)[1].startswith("[TEST] ")
    assert "not a real drift" in trigger["blocks"][-1]["elements"][0]["text"]
    assert "[TEST] Resolved" in resolve["blocks"][0]["text"]["text"] and slack.invalid == []


def test_serve_shows_delivery_counters_in_stats_and_metrics(tmp_path: Path, hook: FakeService) -> None:
    """`driftwatch serve` with a working and a dead notifier: /stats and /metrics count sent, retried,
    failed and dropped per destination."""
    from driftwatch._serve.service import run_serve
    from tests.driftwatch.serve.test_service import free_port, payloads, task_outcomes

    http_port = free_port()
    config = load_config(
        None,
        env={},
        http_port=http_port,
        grpc_port=free_port(),
        state=str(tmp_path / "state.db"),
        console=False,
        signals=["success"],
        notifiers=[
            {"type": "webhook", "url": hook.url},
            {"type": "webhook", "url": dead_url(), "max_attempts": 2},
        ],
    )
    stop = threading.Event()
    thread = threading.Thread(target=run_serve, args=(config, stop), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.1)
        for body in payloads(task_outcomes(800, 600, 0.8, 0.5, seed=3)):
            response = httpx.post(
                f"{base}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
            )
            assert response.status_code == 200
        deadline = time.monotonic() + 30
        while True:
            notifiers = httpx.get(f"{base}/stats", timeout=5).json()["handler"]["notifiers"]
            counts = sorted((v["sent"], v["failed"]) for v in notifiers.values())
            if counts == [(0, 1), (1, 0)]:
                break
            assert time.monotonic() < deadline, notifiers
            time.sleep(0.2)
        dead = next(v for v in notifiers.values() if v["failed"])
        assert dead["retried"] == 1 and dead["stats"]["failed"] == 1
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
    finally:
        stop.set()
        thread.join(20)
    host = hook.url.split("/")[2]
    assert (
        f'driftwatch_notifications_sent_total{{destination="webhook ({host})",notifier="webhook"}} 1'
        in metrics
    )
    assert re.search(
        r'driftwatch_notifications_failed_total\{destination="webhook \(127[^"]+\)",notifier="webhook"\} 1',
        metrics,
    )
    assert re.search(r"driftwatch_notifications_retried_total\{[^}]+\} 1", metrics)
    assert (
        "driftwatch_notifications_dropped_total"
        f'{{destination="webhook ({host})",notifier="webhook",reason="rate_limited"}} 0' in metrics
    )


def test_notifier_docs_list_every_key() -> None:
    """docs/destinations/notifiers.md names every notifier key and the global link keys."""
    from dataclasses import fields

    from driftwatch.notify import NotifierSpec

    text = (ROOT / "docs" / "destinations" / "notifiers.md").read_text()
    keys = [f.name for f in fields(NotifierSpec) if f.name != "where"]
    assert [k for k in keys if f"`{k}`" not in text] == []
    for name in ("DRIFTWATCH_PAGERDUTY_ROUTING_KEY", "DRIFTWATCH_SLACK_WEBHOOK_URL", "type: webhook"):
        assert name in text


def test_pages_survive_a_restart_in_the_state_file(
    tmp_path: Path, pd: FakeService, hook: FakeService
) -> None:
    """Notifiers on a state file, started afresh (a restart): an alert already paged is not paged again
    when replayed, its resolve goes out with the page's dedup key, and a page recorded as queued but
    never sent before the restart is sent then."""
    from driftwatch._monitor.snapshot import dumps
    from driftwatch._serve.store import StateStore

    key = "R0123456789abcdef0123456789abcde"
    paged, queued = drift(1), drift(2)

    def notifiers(store: StateStore) -> list[Notifier]:
        out: list[Notifier] = [PagerDutySink(key, url=pd.url, **FAST), WebhookSink(hook.url, **FAST)]
        for notifier in out:
            notifier.attach_state(store)
        return out

    with StateStore(tmp_path / "state.db") as store:
        first = notifiers(store)
        for notifier in first:
            notifier.export(paged)
            assert notifier.flush(5)
            notifier.shutdown(1)
        # What a crash right after deciding to page (before sending) leaves in the file:
        store.notifier_pages.put_page(first[0].identity, queued.id, "confirmed", dumps(queued))
    assert [b["event_action"] for b in pd.bodies()] == ["trigger"]

    with StateStore(tmp_path / "state.db") as store:
        second = notifiers(store)
        for notifier in second:
            notifier.export(paged)  # replayed from the journal
            notifier.export(paged.with_status("resolved"))
            assert notifier.flush(5)
            notifier.shutdown(1)
    events = [(b["event_action"], b["dedup_key"]) for b in pd.bodies()]
    assert sorted(events) == [("resolve", paged.id), ("trigger", paged.id), ("trigger", queued.id)]
    assert [(b["id"], b["status"]) for b in hook.bodies()] == [
        (paged.id, "confirmed"),
        (paged.id, "resolved"),
    ]
    assert second[0].stats.duplicates == 1 and second[0].stats.resolves_skipped == 0


def test_version_comparison_is_not_labelled_test() -> None:
    """A version comparison carries its test's name in ``extra["test"]`` ("mcnemar-exact", ...): only
    ``extra["test"] is True`` (the synthetic alert of `driftwatch alert test`) is labelled [TEST]."""
    from driftwatch._alerting.markers import GrafanaAnnotationSink, HoneycombMarkerSink

    rng = random.Random(7)
    monitor = Monitor(Config(signals=["success"]), threaded=False)
    alerts: list[Alert] = []
    for i in range(1, 701):
        model = "m-1" if i <= 300 else "m-2"
        outcome = Outcome(
            task="fix", time=float(i), model=model, task_id=f"t{i % 40}", success=rng.random() < 0.8
        )
        alerts += monitor.process(outcome)
    comparisons = [a for a in alerts if a.kind == "version_comparison"]
    assert comparisons and all(isinstance(a.extra["test"], str) for a in comparisons)
    change = next(a for a in alerts if a.kind == "version_change")
    sinks: list[Notifier] = [
        PagerDutySink("routing-key", url="http://127.0.0.1:9/"),
        SlackSink("http://127.0.0.1:9/"),
        HoneycombMarkerSink("key", api_url="http://127.0.0.1:9"),
        GrafanaAnnotationSink("http://127.0.0.1:9", "token"),
    ]
    try:
        for alert in [*comparisons, change.with_status("annotation", extra={**change.extra, "test": "x"})]:
            for sink in sinks:
                for action in ("trigger", "resolve", "note"):
                    body = sink.render(alert, action)  # type: ignore[arg-type]
                    assert "[TEST]" not in json.dumps(body), (sink.kind, action, alert.kind)
        real = synthetic_alert("agent")
        assert "[TEST]" in json.dumps(sinks[1].render(real, "trigger"))
    finally:
        for sink in sinks:
            sink.shutdown()
