"""Issue 7 item 5: an agent exporting OTLP to a backend that is down, blackholed or slow.

The agent is the real anthropic SDK on a mock transport, wrapped by ``driftwatch.watch()`` inside
``driftwatch.task()``; the export is the real OTel SDK's OTLP/HTTP exporters built from ``OTEL_*``
variables (``telemetry_from_env``), pointed at a real local socket that misbehaves.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import pytest

import driftwatch
from driftwatch._alerting.otel import Telemetry, telemetry_from_env
from tests.conftest import make_handler, message_json

CALLS = 300
MAX_QUEUE = 64  # small SDK queues so that 300 calls overflow them: drops must happen, and be bounded
EXPORT_BATCH = 16
EXPORT_TIMEOUT_S = 1  # OTEL_EXPORTER_OTLP_TIMEOUT: what one blocked export costs against a blackhole
SLOW_S = 0.4  # what the slow backend takes per request
SHUTDOWN_S = 2.0  # the shutdown timeout the tests pass (and driftwatch's atexit hook uses)


def _client() -> anthropic.Anthropic:
    http = httpx2.Client(transport=httpx2.MockTransport(make_handler()))
    return anthropic.Anthropic(api_key="t", base_url="http://api.test", http_client=http, max_retries=0)


def _agent(calls: int) -> list[float]:
    """Seconds per task (one SDK call and a recorded outcome each); raises whatever the agent sees."""
    client = driftwatch.watch(_client())
    times = []
    for i in range(calls):
        start = time.perf_counter()
        with driftwatch.task("fix-tests") as t:
            client.messages.create(
                model="claude-sonnet-4-6", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
            )
            t.record(success=i % 3 != 0)
        times.append(time.perf_counter() - start)
    return times


class _Blackhole:
    """Accepts connections and never answers (nor reads)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class _Slow(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP backend that takes ``SLOW_S`` per request, then accepts everything."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(SLOW_S)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """The port of a backend in the state the test asks for: down, blackholed or slow."""
    kind = request.param
    if kind == "down":
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()  # nothing listens: connection refused
        yield kind, port
    elif kind == "blackholed":
        hole = _Blackhole()
        yield kind, hole.port
        hole.close()
    else:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield kind, server.server_address[1]
        server.shutdown()
        server.server_close()


def _export_to(monkeypatch: pytest.MonkeyPatch, port: int) -> Telemetry:
    for name, value in {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TIMEOUT": str(EXPORT_TIMEOUT_S),  # seconds (the Python exporters' unit)
        "OTEL_BSP_MAX_QUEUE_SIZE": str(MAX_QUEUE),
        "OTEL_BLRP_MAX_QUEUE_SIZE": str(MAX_QUEUE),
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": str(EXPORT_BATCH),
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": str(EXPORT_BATCH),
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
    }.items():
        monkeypatch.setenv(name, value)
    telemetry = telemetry_from_env()
    assert len(telemetry.owned) == 3, "expected private tracer, logger and meter providers"
    return telemetry


def _baseline() -> float:
    """Median seconds per task with no export configured, measured in the same test."""
    driftwatch.configure(telemetry=Telemetry(), console=False, service="agent")
    _agent(50)
    median = statistics.median(_agent(CALLS))
    driftwatch.shutdown()
    return median


@pytest.mark.parametrize("backend", ["down", "blackholed", "slow"], indirect=True)
def test_agent_unaffected_by_a_bad_otlp_backend(
    backend: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backend down, blackholed or slow: no exception, per-call median within noise of a no-export
    run, SDK queues bounded, the monitor sees every outcome, and shutdown returns within its timeout."""
    kind, port = backend
    base = _baseline()
    telemetry = _export_to(monkeypatch, port)
    runtime = driftwatch.configure(telemetry=telemetry, console=False, service="agent")
    _agent(50)
    times = _agent(CALLS)
    with_export = statistics.median(times)
    # Generous: 2 shared cores and a busy exporter thread; a blocking export would cost 1 s a call.
    assert with_export < 2 * base + 0.002, (with_export, base)
    # An export on the call path would block a call at every batch (one in EXPORT_BATCH at least)
    # for SLOW_S or more; a loaded machine may stall a call or two that long, never that many.
    stalled = [t for t in times if t >= SLOW_S]
    assert len(stalled) <= 2, stalled
    queues = [
        _queue(telemetry.owned[0]._active_span_processor),
        _queue(telemetry.owned[1]._multi_log_record_processor),
    ]
    assert all(0 <= n <= MAX_QUEUE for n in queues), queues
    assert runtime.monitor.flush(5)
    stats = runtime.monitor.stats
    assert stats.received == stats.processed == 2 * (50 + CALLS)
    assert stats.dropped_queue_full == 0 and stats.internal_errors == 0 and stats.sink_errors == 0
    start = time.monotonic()
    driftwatch.shutdown(timeout=SHUTDOWN_S)
    took = time.monotonic() - start
    # Bounded, shutdown takes SHUTDOWN_S at most, plus slack for a loaded machine; unbounded, the SDK
    # goes on exporting its queued batches, EXPORT_TIMEOUT_S each (5 s here against a blackhole).
    assert took < SHUTDOWN_S + 2.5, f"shutdown took {took:.1f} s against a {kind} backend"
    counts = telemetry.export_counts()
    assert set(counts) == {"traces", "logs"}
    traces = counts["traces"]
    if kind == "slow":
        assert traces["exported"] > 0 and traces["failed"] == 0
    else:  # lost batches are counted, and so are the spans the full SDK queue refused
        assert traces["exported"] == 0 and traces["failed"] > 0
        assert traces["dropped_queue_full"] > 0


def test_queue_full_drops_are_counted_and_not_flooding(caplog: pytest.LogCaptureFixture) -> None:
    """A full SDK batch queue: driftwatch counts every dropped span; the log shows at most one warning."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

    from driftwatch._alerting.otel import QUEUE_FULL

    release = threading.Event()

    class Stuck:
        """An exporter whose first export blocks until released: the queue behind it fills."""

        def export(self, batch: object) -> SpanExportResult:
            release.wait(10)
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            release.set()

        def force_flush(self, timeout_millis: int = 0) -> bool:
            return True

    before = QUEUE_FULL.dropped.get("Span", 0)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Stuck(), max_queue_size=8, max_export_batch_size=8))  # type: ignore[arg-type]
    tracer = provider.get_tracer("t")
    with caplog.at_level("WARNING", logger="opentelemetry.sdk._shared_internal"):
        for _ in range(200):
            tracer.start_span("s").end()
    shown = [r for r in caplog.records if str(r.msg).startswith("Queue full")]
    release.set()
    provider.shutdown()
    assert QUEUE_FULL.dropped.get("Span", 0) - before >= 150
    assert len(shown) <= 1


def test_host_exits_promptly_with_the_backend_down(tmp_path: Path) -> None:
    """An agent that never calls driftwatch.shutdown() exits within seconds when the backend is down."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    script = tmp_path / "agent.py"
    script.write_text(
        "import json, anthropic, httpx2, driftwatch\n"
        f"BODY = {json.dumps(message_json())!r}.encode()\n"
        "def handler(request):\n"
        "    return httpx2.Response(200, headers={'content-type': 'application/json'}, content=BODY)\n"
        "http = httpx2.Client(transport=httpx2.MockTransport(handler))\n"
        "client = driftwatch.watch(anthropic.Anthropic(api_key='t', base_url='http://api.test',"
        " http_client=http, max_retries=0))\n"
        "for i in range(100):\n"
        "    with driftwatch.task('fix-tests') as t:\n"
        "        client.messages.create(model='claude-sonnet-4-6', max_tokens=8,"
        " messages=[{'role': 'user', 'content': 'hi'}])\n"
        "        t.record(success=True)\n"
        "print('calls done', flush=True)\n"
    )
    # A long export timeout: without driftwatch's bounded atexit shutdown, the SDK's own would retry
    # the lost batches for about this long (it took 16 s with the default 10 s).
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "30",
    }
    proc = subprocess.Popen(
        [sys.executable, "-P", str(script)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # start-up and the calls: however long a loaded machine takes
        done = time.monotonic()
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - done
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "calls done" in line, err[-2000:]
    # From the last call to exit: atexit's driftwatch.shutdown(SHUTDOWN_S) and interpreter teardown.
    # A hang (the SDK's unbounded shutdown) takes about the 30 s export timeout.
    assert took < SHUTDOWN_S * 2 + 4, f"exit took {took:.1f} s after the last call"


def _queue(multi: object) -> int:
    """Items waiting in the SDK batch processor under ``multi`` (no public accessor for the length)."""
    (processor,) = (
        multi._span_processors if hasattr(multi, "_span_processors") else multi._log_record_processors
    )  # type: ignore[attr-defined]
    return len(processor._batch_processor._queue)
