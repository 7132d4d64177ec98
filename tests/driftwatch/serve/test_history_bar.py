"""Issue 19's bar check, real processes: serve, OTLP in, restart, then status, compare and report --url."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.driftwatch.serve.test_service import ROOT, backlog, free_port, start_serve, wait_for_checkpoint

T0 = 1_790_000_000
TOKEN = "bar-check-token"


def send_tasks(port: int, version: str, passed: list[bool], start: int) -> None:
    """Task spans through the OTel SDK's own OTLP/HTTP exporter, one per second of event time."""
    exporter = OTLPSpanExporter(
        endpoint=f"http://127.0.0.1:{port}/v1/traces", headers={"authorization": f"Bearer {TOKEN}"}
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "agent-a"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=200))
    tracer = provider.get_tracer("bar")
    for i, ok in enumerate(passed):
        at = (T0 + start + i) * 1_000_000_000
        span = tracer.start_span(
            "invoke_agent fix-tests",
            start_time=at,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "driftwatch.task.name": "fix-tests",
                "driftwatch.task.id": f"case-{i % 200}",
                "driftwatch.task.success": ok,
                "driftwatch.task.label.app.version": version,
            },
        )
        span.end(end_time=at + 400_000_000)
    provider.shutdown()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DRIFTWATCH_"))}
    cmd = [sys.executable, "-P", "-m", "driftwatch._cli.main", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def count_outcomes(port: int) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/outcomes?limit=10000", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers.get("X-Driftwatch-Cursor") is None
        return len(response.read().splitlines())


def test_serve_restart_then_status_compare_and_report_read_the_service(tmp_path: Path) -> None:
    """Outcomes sent over OTLP survive a kill -9 and a restart exactly once; status, compare --url and
    report --url read them as they would read a file."""
    rng = random.Random(19)
    state, alerts, port = tmp_path / "state.db", tmp_path / "alerts.jsonl", free_port()
    config = tmp_path / "driftwatch.yaml"
    config.write_text(f"checkpoint_seconds: 1\ntoken: {TOKEN}\n")
    good = [rng.random() < 0.92 for _ in range(700)]
    worse = [rng.random() < 0.55 for _ in range(500)]
    # The helpers shared with test_service.py read /stats, which this service guards with its token.
    opener = urllib.request.build_opener()
    opener.addheaders = [("Authorization", f"Bearer {TOKEN}")]
    urllib.request.install_opener(opener)
    proc = start_serve(state, alerts, port, config)
    try:
        send_tasks(port, "v1", good, 0)
        wait_for_checkpoint(state, port)
        send_tasks(port, "v2", worse[:200], 700)
        # kill -9 before the next checkpoint can cover them: the restart replays them from the journal.
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = start_serve(state, alerts, port, config)
        send_tasks(port, "v2", worse[200:], 900)
        assert wait_until_processed(port)
        proc.send_signal(signal.SIGTERM)  # a deploy: a clean stop, then start again
        assert proc.wait(30) == 0
        proc = start_serve(state, alerts, port, config)
        assert count_outcomes(port) == 1200  # every outcome, once, across a kill -9 and a restart

        url = f"http://127.0.0.1:{port}"
        status = cli("status", "--url", url, "--token", TOKEN, "--json")
        assert status.returncode == 0, status.stderr
        streams, incidents = (json.loads(status.stdout)[k] for k in ("streams", "open_incidents"))
        assert [s["key"] for s in streams] == ["service=agent-a;task=fix-tests"]
        assert streams[0]["state"] in ("suspected", "confirmed")
        table = cli("status", "--url", url, "--token", TOKEN)
        assert table.returncode == 0 and "service=agent-a;task=fix-tests" in table.stdout
        # The drift alert and the v1 -> v2 comparison of the one degraded stream: one cause, one incident.
        (incident,) = incidents
        assert incident["paged"] and f"1 open incidents:\n  {incident['id']} paged" in table.stdout
        assert "v1 -> v2" in incident["summary"] and f"    {incident['summary']}" in table.stdout

        worse_gate = cli(
            "compare", "--url", url, "--token", TOKEN, "--baseline", "version=v1", "--candidate", "version=v2"
        )
        assert worse_gate.returncode == 1, worse_gate.stdout + worse_gate.stderr
        assert "worse" in worse_gate.stdout
        same_gate = cli(
            "compare", "--url", url, "--token", TOKEN, "--baseline", "version=v1", "--candidate", "version=v1"
        )
        assert same_gate.returncode == 0, same_gate.stdout + same_gate.stderr
        no_token = cli("compare", "--url", url, "--baseline", "version=v1", "--candidate", "version=v2")
        assert no_token.returncode == 2 and "token" in no_token.stderr

        out = tmp_path / "report"
        report = cli("report", "--url", url, "--token", TOKEN, "--out", str(out))
        assert report.returncode == 0, report.stderr
        assert "<html" in (out / "report.html").read_text().lower()
    finally:
        urllib.request.install_opener(None)  # type: ignore[arg-type]
        if proc.poll() is None:
            proc.kill()


def wait_until_processed(port: int, timeout: float = 30.0) -> bool:
    """True once everything journalled went through detection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if backlog(port) == 0:
            return True
        time.sleep(0.05)
    return False
