"""End to end: a real Prometheus scrapes `driftwatch replay --metrics-port` or `driftwatch serve` and the
shipped rule fires."""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "examples" / "prometheus" / "driftwatch-rules.yml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def wait_for_firing(tmp_path: Path, target: str, procs: list[subprocess.Popen[bytes]]) -> dict[str, str]:
    """Starts a real Prometheus scraping ``target`` with the shipped rules; the firing alert's labels."""
    prometheus = shutil.which("prometheus")
    assert prometheus is not None
    web = f"127.0.0.1:{free_port()}"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{json.dumps(str(RULES))}]\n"
        "scrape_configs:\n"
        f"  - job_name: driftwatch\n    static_configs: [{{targets: [{json.dumps(target)}]}}]\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    procs.append(
        subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address={web}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    )
    deadline = time.monotonic() + 60
    firing: list[dict[str, object]] = []
    while time.monotonic() < deadline and not firing:
        time.sleep(0.5)
        assert procs[1].poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
        try:
            alerts = httpx2.get(f"http://{web}/api/v1/alerts", timeout=2).json()["data"]["alerts"]
        except (httpx2.TransportError, ValueError, KeyError):
            continue
        firing = [
            a
            for a in alerts
            if a["labels"]["alertname"] == "DriftwatchDegradationConfirmed" and a["state"] == "firing"
        ]
    assert firing, "DriftwatchDegradationConfirmed did not fire within 60 s"
    labels = firing[0]["labels"]
    assert isinstance(labels, dict)
    return {str(k): str(v) for k, v in labels.items()}


def test_real_prometheus_sees_the_shipped_alert_firing(tmp_path: Path) -> None:
    """Prometheus scraping a replay of a pass-rate drop 0.8 -> 0.5 sees DriftwatchDegradationConfirmed."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip(
            "prometheus not installed and could not be (make prometheus-tools: Debian's prometheus package)"
        )
    rng = random.Random(5)
    stream = tmp_path / "outcomes.jsonl"
    with stream.open("w") as fh:
        for i in range(1400):
            rate = 0.8 if i < 800 else 0.5
            fh.write(
                json.dumps(
                    {"time": 1_767_225_600 + 60 * i, "task": "fix-tests", "success": rng.random() < rate}
                )
            )
            fh.write("\n")
    replay = subprocess.Popen(
        [
            sys.executable,
            "-P",
            "-m",
            "driftwatch._cli.main",
            "replay",
            str(stream),
            "--metrics-port",
            "0",
            "--hold",
            "90",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    procs = [replay]
    try:
        assert replay.stdout is not None
        line = replay.stdout.readline().decode()
        assert line.startswith("serving metrics at http://127.0.0.1:"), line
        target = line.split("http://", 1)[1].split("/", 1)[0]
        labels = wait_for_firing(tmp_path, target, procs)
        assert (labels["task"], labels["signal"], labels["direction"], labels["severity"]) == (
            "fix-tests",
            "success",
            "down",
            "critical",
        )
        assert labels["job"] == "driftwatch" and labels["instance"] == target
    finally:
        for process in reversed(procs):
            stop(process)


def test_real_prometheus_scraping_serve_sees_the_alert_firing(tmp_path: Path) -> None:
    """Prometheus scraping `driftwatch serve`'s /metrics, fed task spans over OTLP, sees the rule fire."""
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus not installed and could not be (make prometheus-tools)")
    from tests.driftwatch.serve.test_service import free_port as port
    from tests.driftwatch.serve.test_service import payloads, post, start_serve, task_outcomes

    http = port()
    serve = start_serve(tmp_path / "state.db", tmp_path / "alerts.jsonl", http)
    procs = [serve]
    try:
        for body in payloads(task_outcomes(800, 600, 0.8, 0.5, seed=5)):
            assert post(http, body) == 200
        target = f"127.0.0.1:{http}"
        labels = wait_for_firing(tmp_path, target, procs)
        assert (labels["service"], labels["task"], labels["signal"], labels["direction"]) == (
            "agent-a",
            "fix-tests",
            "success",
            "down",
        )
    finally:
        for process in reversed(procs):
            stop(process)
