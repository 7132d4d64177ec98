"""`driftwatch serve` logs through one pipeline: every line on a non-terminal stderr is a JSON object,
INFO events such as the restore after a restart included (driftwatch/_cli/logs.py)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

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
