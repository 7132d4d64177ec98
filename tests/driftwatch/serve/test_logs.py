"""`driftwatch serve` logs through one pipeline: every line on a non-terminal stderr is a JSON object,
INFO events such as the restore after a restart included, and so are the errors that stop it from
starting (driftwatch/_cli/logs.py; driftwatch/_cli/serve.py logs them instead of printing them)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.driftwatch.serve.test_service import (
    free_port,
    payloads,
    post,
    start_serve,
    task_outcomes,
    wait_for_checkpoint,
)


def stop(proc: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
    """SIGTERM, then every stderr line as JSON (a line that is not JSON fails the test)."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    lines = err.decode().splitlines()
    assert lines
    events = []
    for line in lines:
        event = json.loads(line)  # raises on a plain-text line
        assert isinstance(event, dict) and {"event", "level", "timestamp"} <= event.keys(), line
        events.append(event)
    return events


def test_serve_logs_json_lines_and_its_restore(tmp_path: Path) -> None:
    state, alerts, port = tmp_path / "state.db", tmp_path / "alerts.jsonl", free_port()
    config = tmp_path / "driftwatch.yaml"
    config.write_text("checkpoint_seconds: 1\n")
    proc = start_serve(state, alerts, port, config)
    try:
        for body in payloads(task_outcomes(400, 300, 0.9, 0.4, seed=3)):
            assert post(port, body) == 200
        seq = wait_for_checkpoint(state, port)
    finally:
        first = stop(proc)
    names = [e["event"] for e in first]
    assert "driftwatch.receiver.listening" in names  # structlog events of the receiver
    drift = [e for e in first if e["event"].startswith("driftwatch.drift ")]
    assert drift and all(e["level"] == "warning" and e["id"] for e in drift)  # console alerts

    proc = start_serve(state, alerts, port, config)  # the same state file: restore, then replay
    second = stop(proc)
    restored = [e for e in second if "restored the checkpoint" in e["event"]]
    assert len(restored) == 1, second
    assert restored[0]["level"] == "info" and restored[0]["logger"] == "driftwatch"
    assert f"journal entry {seq}" in restored[0]["event"]


@pytest.mark.parametrize("problem", ["config", "state", "port", "grpc_port"])
def test_serve_startup_errors_are_json_lines_too(tmp_path: Path, problem: str) -> None:
    """A bad config file, a state file that is not ours, an HTTP or gRPC port in use: exit 2, and what
    serve says about it is a JSON log line like all the others (an error of level ``error``), not plain
    text (gRPC's C core prints its own line when it is the one to find the port taken)."""
    state, alerts, config = tmp_path / "state.db", tmp_path / "alerts.jsonl", tmp_path / "driftwatch.yaml"
    config.write_text("nonsense: [\n" if problem == "config" else "checkpoint_seconds: 1\n")
    if problem == "state":
        state.write_text("not a database")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1] if problem == "port" else free_port()
        grpc_port = taken.getsockname()[1] if problem == "grpc_port" else 0
        cmd = [
            sys.executable,
            "-P",
            "-m",
            "driftwatch",
            "serve",
            "--state",
            str(state),
            "--config",
            str(config),
        ]
        cmd += ["--alerts-out", str(alerts), "--http-port", str(port), "--grpc-port", str(grpc_port)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DRIFTWATCH_"))}
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]  # raises on a plain-text line
    expected = {
        "config": "not valid YAML",
        "state": "is not a driftwatch state file",
        "port": "cannot listen",
        "grpc_port": "setting 'grpc_port': cannot listen on 127.0.0.1:",
    }
    assert [(e["level"], e["logger"]) for e in events] == [("error", "driftwatch")], events
    assert expected[problem] in events[0]["event"] and events[0]["event"].startswith("driftwatch: ")
