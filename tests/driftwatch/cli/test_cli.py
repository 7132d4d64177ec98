"""The driftwatch command line: replay criteria, bad input, the demo, OTLP export end to end."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from driftwatch._cli.main import main
from tests.support.otlp_receiver import OTLPReceiver

SHARED = next(
    (p for p in (Path(__file__).resolve().parents[3] / "shared", Path("/work/shared")) if p.is_dir()),
    Path(__file__).resolve().parents[3] / "shared",
)
PRIME = SHARED / "data" / "llmdrift" / "PRIME_FULL_EVAL.csv"
DRIFTWATCH = [sys.executable, "-P", "-m", "driftwatch._cli.main"]


def write_stream(path: Path, rates: list[tuple[float, int]], seed: int) -> None:
    rng = random.Random(seed)
    t = 1_767_225_600.0
    with path.open("w") as fh:
        for rate, count in rates:
            for _ in range(count):
                t += 60
                fh.write(json.dumps({"time": t, "task": "fix-tests", "success": rng.random() < rate}) + "\n")


def alerts_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_replay_flags_pass_rate_drop_within_400(tmp_path: Path, seed: int) -> None:
    """A pass rate falling 0.51 -> 0.38 after 1,000 tasks is flagged `success` `down` within 400."""
    stream = tmp_path / "outcomes.jsonl"
    write_stream(stream, [(0.51, 1000), (0.38, 1000)], seed)
    out = tmp_path / "alerts.jsonl"
    assert main(["replay", str(stream), "--alerts-out", str(out)]) == 0
    suspected = [a for a in alerts_of(out) if a["signal"] == "success" and a["status"] == "suspected"]
    indexes = [(_epoch(str(a["detected_at"])) - 1_767_225_600.0) / 60 - 1 for a in suspected]
    # A false alarm before the change may happen (about 4% of such streams); it must not be confirmed.
    after = [(i, a) for i, a in zip(indexes, suspected, strict=True) if i >= 1000]
    assert after, "no alert after the change"
    index, first = after[0]
    assert first["direction"] == "down"
    assert index < 1400, f"detected {index - 999:.0f} observations after the change"


def test_replay_run_twice_leaves_one_run_of_alerts_in_alerts_out(tmp_path: Path) -> None:
    """--alerts-out holds this run's alerts: a second replay replaces the file, not appends to it."""
    stream = tmp_path / "outcomes.jsonl"
    write_stream(stream, [(0.85, 600), (0.3, 400)], 7)
    out = tmp_path / "alerts.jsonl"
    assert main(["replay", str(stream), "--alerts-out", str(out), "--no-notify"]) == 0
    first = out.read_text()
    assert first and main(["replay", str(stream), "--alerts-out", str(out), "--no-notify"]) == 0
    assert out.read_text() == first


def test_replay_quiet_without_change(tmp_path: Path) -> None:
    """Eight seeded streams of 10,000 observations without change: suspected (stage-one) alerts
    within the budget, and at most one confirmed.

    Stage one is calibrated to 0.9 false alarms per 10,000 observations per stream, about 7 here
    (Poisson; 16 is over three sd above). Each is tested on fresh observations at alpha 0.01, so
    the expected number of confirmed false alarms is ~0.07; two or more would happen with
    probability ~0.3% if the p-values are honest (docs/detection.md shows they are uniform).
    """
    rng = random.Random(11)
    stream = tmp_path / "outcomes.jsonl"
    with stream.open("w") as fh:
        for i in range(10_000):
            for s in range(8):
                record = {
                    "time": 1_767_225_600 + 60 * i,
                    "task": f"suite-{s}",
                    "success": rng.random() < 0.51,
                }
                fh.write(json.dumps(record) + "\n")
    out = tmp_path / "alerts.jsonl"
    assert main(["replay", str(stream), "--alerts-out", str(out)]) == 0
    alerts = alerts_of(out)
    assert len([a for a in alerts if a["status"] == "confirmed"]) <= 1
    assert len([a for a in alerts if a["status"] == "suspected"]) <= 16


def _epoch(text: str) -> float:
    from driftwatch._outcome import parse_time

    return parse_time(text)


def test_replay_reports_bad_lines_and_keeps_going(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed line is reported with file:line and field; the good lines are still replayed."""
    stream = tmp_path / "outcomes.jsonl"
    stream.write_text(
        '{"time": "2026-01-01T00:00:00Z", "task": "a", "success": true}\n'
        "{not json\n"
        '{"time": "yesterday", "task": "a"}\n'
        '{"time": 1767225600, "task": "a", "success": "maybe"}\n'
        '{"time": 1767225660, "task": "a", "success": false}\n'
    )
    assert main(["replay", str(stream)]) == 0
    captured = capsys.readouterr()
    assert f"{stream}:2: not valid JSON" in captured.err
    assert f"{stream}:3: field 'time'" in captured.err and "RFC 3339" in captured.err
    assert f"{stream}:4: field 'success': expected true or false" in captured.err
    assert "replayed 2 outcomes" in captured.out and "3 bad lines" in captured.out


def test_replay_real_gpt4_prime_march_to_june(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Real GPT-4 prime answers, March (0314) then June (0613): flagged down after the switch, not before."""
    rows = [
        r
        for r in csv.DictReader(PRIME.open())
        if r["model"] in ("openaichat/gpt-4-0314", "openaichat/gpt-4-0613")
    ]
    # The file lists primes first; arrivals in production are in no such order. Both snapshots are
    # replayed in the same seeded random order of query ids.
    order = list(range(1000))
    random.Random(2023).shuffle(order)
    rank = {qid: i for i, qid in enumerate(order)}
    rows.sort(key=lambda r: (r["model"] != "openaichat/gpt-4-0314", rank[int(r["id"])]))
    stream = tmp_path / "prime.jsonl"
    with stream.open("w") as fh:
        for i, r in enumerate(rows):
            success = re.findall(r"\[(yes|no)\]", r["answer"].lower())
            fh.write(
                json.dumps(
                    {
                        "time": 1_680_000_000 + 60 * i,
                        "task": "prime",
                        "model": r["model"],
                        "success": bool(success) and success[-1] == r["ref_answer"].strip().lower(),
                        "latency_s": float(r["latency"]),
                        "output_tokens": int(float(r["answer_token"])),
                    }
                )
                + "\n"
            )
    out = tmp_path / "alerts.jsonl"
    assert main(["replay", str(stream), "--alerts-out", str(out)]) == 0
    alerts = alerts_of(out)
    switch = 1000
    index = {a["id"]: (_epoch(str(a["detected_at"])) - 1_680_000_000) / 60 for a in alerts}
    # March's output tokens are bimodal (long explanations, a few bare answers): a run of bare
    # answers can raise a self-starting suspicion, which fresh March data must withdraw. No page.
    before = [a for a in alerts if index[a["id"]] < switch]
    assert all(a["status"] != "confirmed" for a in before), "page on March data alone"
    assert {a["id"] for a in before} == {a["id"] for a in before if a["status"] == "resolved"}
    alerts = [a for a in alerts if index[a["id"]] >= switch]
    success = [a for a in alerts if a["signal"] == "success" and a["status"] == "suspected"]
    assert success and success[0]["direction"] == "down"
    after = index[str(success[0]["id"])] - switch + 1
    tokens = [a for a in alerts if a["signal"] == "output_tokens"]
    assert tokens and tokens[0]["direction"] == "down"
    print(
        f"\nGPT-4 prime: success alert {after:.0f} tasks after the switch; "
        f"output_tokens alert {index[str(tokens[0]['id'])] - switch + 1:.0f} after"
    )
    assert after <= 100


def test_help_explains_commands() -> None:
    """`driftwatch --help` names every command with an example."""
    result = subprocess.run([*DRIFTWATCH, "--help"], capture_output=True, text=True, check=True)
    assert "demo" in result.stdout and "replay" in result.stdout and "example" in result.stdout


def test_demo_exports_over_otlp_http(tmp_path: Path) -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT set, the demo delivers task spans, drift logs and metrics;
    --alerts-out writes its alerts, the confirmed ones sharing one incident id."""
    with OTLPReceiver() as receiver:
        env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_SERVICE_NAME": "demo-agent",
        }
        alerts = tmp_path / "alerts.jsonl"
        result = subprocess.run(
            [*DRIFTWATCH, "demo", "--alerts-out", str(alerts)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "degradation caught, healthy stream quiet" in result.stdout
        # Call- and task-level tokens and the pass rate move at one change: one incident, one page.
        assert result.stdout.count("one page: incident inc-") == 1
    written = [json.loads(line) for line in alerts.read_text().splitlines()]
    confirmed = [a for a in written if a["status"] == "confirmed"]
    assert len(confirmed) >= 2 and len({a["incident"] for a in confirmed}) == 1
    assert f"one page: incident {confirmed[0]['incident']}, {len(confirmed)} signals moved" in result.stdout
    assert {"invoke_agent fix-tests", "invoke_agent summarize"} <= receiver.span_names()
    drift = [r for r in receiver.log_records() if r.event_name == "driftwatch.drift"]
    assert drift, "no driftwatch.drift log record"
    statuses = {
        a.value.string_value for r in drift for a in r.attributes if a.key == "driftwatch.alert.status"
    }
    assert "confirmed" in statuses
    assert {"driftwatch.outcomes", "driftwatch.alerts", "driftwatch.drift.active"} <= receiver.metric_names()


def test_demo_reads_config_and_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """demo --config and DRIFTWATCH_* set detection and alerts_out; notifiers stay off without --notify."""
    from driftwatch._offline.demo import demo_settings

    cfg = tmp_path / "dw.yaml"
    alerts = tmp_path / "alerts.jsonl"
    cfg.write_text(
        f"warmup: 40\nlag: 20\nconfirm_min: 10\nalerts_out: {alerts}\n"
        "notifiers:\n  - type: webhook\n    url: http://127.0.0.1:9/never\n"
    )
    env = {"DRIFTWATCH_LAG": "25", "OTEL_SERVICE_NAME": "prod-agent"}
    settings = demo_settings(str(cfg), env=env)
    assert settings == {
        "console": False,
        "notifiers": [],
        "markers": [],
        "service": "demo-agent",
        "signals": ["success", "output_tokens"],
    }
    assert "notifiers" not in demo_settings(str(cfg), notify=True, env=env)
    assert demo_settings(None, env={"DRIFTWATCH_SERVICE": "mine"}).get("service") is None
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRIFTWATCH_LAG", "25")
        assert main(["demo", "--tasks", "300", "--change-at", "100", "--config", str(cfg)]) in (0, 1)
    out = capsys.readouterr().out
    assert "warmup 40, lag 25" in out and "service demo-agent" in out and "notifiers and markers off" in out
    assert alerts.exists() and '"task": "fix-tests"' in alerts.read_text()
    assert main(["demo", "--tasks", "10", "--config", str(tmp_path / "missing.yaml")]) == 2
