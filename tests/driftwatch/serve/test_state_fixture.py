"""A state file written by driftwatch 0.1.0's `driftwatch serve` still restores to the same alerts.

``tests/fixtures/state-0.1.0.db`` was written by a real ``driftwatch serve`` (SIGTERM: a last
checkpoint) over two task streams: ``fix-tests`` dropped from 90% to 50% passing and its alert was
confirmed; ``write-docs`` dropped from 90% to 40% a few tasks before the end, so its alert was
suspected, not yet confirmed. ``state-0.1.0.json`` holds the alerts serve wrote then (``written``)
and those that the continuation below raises after a restore (``after_restore``): ``write-docs``
goes on failing, so its suspected alert is confirmed under the same id, and ``fix-tests`` recovers,
so its confirmed alert resolves under the same id. Both need the restored detector state.

The checkpoint pickles classes by module path (the serve decoder, alerts, statistics), so this
file is what proves that moving a module keeps old state files readable. Do not regenerate it
after a move: the point is bytes written by the old layout. (``python -P
tests/driftwatch/serve/test_state_fixture.py`` regenerated it, at the commit that added it.)
"""

from __future__ import annotations

import doctest
import json
import random
import shutil
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from driftwatch import InMemorySink, load_config
from driftwatch._monitor import moved
from driftwatch._serve.service import DriftService

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
STATE = FIXTURES / "state-0.1.0.db"
EXPECTED = FIXTURES / "state-0.1.0.json"
CONFIG = FIXTURES / "state-0.1.0.yaml"  # a short warm-up keeps the file small
T0 = 1_790_000_000  # event time of the first task, seconds
SEED = 14


def plan(seed: int = SEED) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """(task, passed) in event order: what serve saw before the checkpoint, and the continuation."""
    rng = random.Random(seed)
    before: list[tuple[str, bool]] = []
    for i in range(330):
        before.append(("fix-tests", rng.random() < (0.9 if i < 200 else 0.5)))
        before.append(("write-docs", rng.random() < (0.9 if i < 300 else 0.4)))
    after: list[tuple[str, bool]] = []
    for _ in range(400):
        after.append(("fix-tests", rng.random() < 0.9))
        after.append(("write-docs", rng.random() < 0.4))
    return before, after


def payloads(tasks: list[tuple[str, bool]], first: int, per_request: int = 100) -> list[bytes]:
    """Task spans as driftwatch exports them, one per second of event time from ``T0 + first``."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agent-a"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for i, (task, ok) in enumerate(tasks, first):
        start = (T0 + i) * 1_000_000_000
        span = tracer.start_span(
            f"invoke_agent {task}",
            start_time=start,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "driftwatch.task.name": task,
                "driftwatch.task.success": ok,
            },
        )
        span.end(end_time=start + 400_000_000)
    provider.shutdown()
    spans = memory.get_finished_spans()
    return [
        encode_spans(spans[i : i + per_request]).SerializeToString()
        for i in range(0, len(spans), per_request)
    ]


def restored_alerts(state: Path) -> list[dict[str, Any]]:
    """Restore ``state`` in serve's handler, feed the continuation; the alerts it raises."""
    config = load_config(str(CONFIG), env={}, state=str(state), console=False, http_port=0, grpc_port=0)
    sink = InMemorySink()
    service = DriftService(config, [sink])
    service.start(wait=True)
    assert service.ready(), service.stats()["state_error"]
    try:
        before, after = plan()
        for body in payloads(after, len(before)):
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            service.handle("traces", request)
        assert service.wait_processed(60)
    finally:
        service.stop()
    return [alert.to_dict() for alert in sink.alerts]


def test_the_map_of_moved_paths_doctests() -> None:
    """``moved``/``moved_class`` (what the unpickler and serve's decoder check use) do as shown."""
    result = doctest.testmod(moved)
    assert result.attempted > 0 and result.failed == 0


def test_a_state_file_from_0_1_0_restores_to_its_alerts(tmp_path: Path) -> None:
    expected = json.loads(EXPECTED.read_text())
    written = {(a["id"], a["status"], a["stream"]["task"]) for a in expected["written"]}
    # What the fixture holds: one confirmed alert open, one suspected alert awaiting confirmation.
    suspected = {i for i, status, task in written if task == "write-docs" and status == "suspected"}
    confirmed = {i for i, status, task in written if task == "fix-tests" and status == "confirmed"}
    assert suspected and confirmed
    assert not {i for i, status, _ in written if i in suspected and status != "suspected"}
    shutil.copy(STATE, tmp_path / "state.db")

    alerts = restored_alerts(tmp_path / "state.db")

    # The fixture's own episodes continue under their ids exactly as 0.1.0 continued them. Episodes
    # that open after the restore are compared without ids and order: since issue 13 a new episode's
    # id carries its episode number, and a resolve waits for evidence of the baseline.
    held = suspected | confirmed
    assert {(a["id"], a["status"]) for a in alerts if a["id"] in held} == {
        (a["id"], a["status"]) for a in expected["after_restore"] if a["id"] in held
    }

    def episodes(found: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return sorted((a["stream"]["task"], a["signal"], a["status"]) for a in found if a["id"] not in held)

    assert episodes(alerts) == episodes(expected["after_restore"])
    after = {(a["id"], a["status"]) for a in alerts}
    assert {(i, "confirmed") for i in suspected} <= after
    assert {(i, "resolved") for i in confirmed} <= after


def _write_fixture() -> None:  # pragma: no cover - run by hand, once, with the layout it preserves
    """Run a real `driftwatch serve` over ``plan()``'s first part, SIGTERM it; keep its state file."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import tempfile
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_service import free_port, post

    root = Path(__file__).resolve().parents[3]
    with tempfile.TemporaryDirectory() as tmp:
        state, alerts, port = Path(tmp) / "state.db", Path(tmp) / "alerts.jsonl", free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DRIFTWATCH_"))}
        cmd = [sys.executable, "-P", "-m", "driftwatch._cli.main", "serve", "--state", str(state)]
        cmd += ["--config", str(CONFIG), "--alerts-out", str(alerts)]
        cmd += ["--http-port", str(port), "--grpc-port", "0"]
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL)
        try:
            before, _ = plan()
            for body in payloads(before, 0):
                deadline = time.monotonic() + 30
                while post(port, body) != 200:
                    assert time.monotonic() < deadline, "serve did not accept the payload"
                    time.sleep(0.1)
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        written = [json.loads(line) for line in alerts.read_text().splitlines() if line.strip()]
        db = sqlite3.connect(state)  # VACUUM drops the free pages the truncated journal left; rows unchanged
        db.execute("VACUUM")
        db.close()
        shutil.copy(state, STATE)
        copy = Path(tmp) / "copy.db"
        shutil.copy(state, copy)
        after_restore = restored_alerts(copy)
    EXPECTED.write_text(json.dumps({"written": written, "after_restore": after_restore}, indent=1) + "\n")
    print(f"{STATE}: {STATE.stat().st_size} bytes")
    for a in written + after_restore:
        print(a["stream"]["task"], a["signal"], a["status"], a["id"])


if __name__ == "__main__":
    _write_fixture()
