"""`driftwatch serve` end to end: real OTLP exporters in, alerts out, kill -9 and restart."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from driftwatch import InMemorySink, load_config
from driftwatch._serve.receiver import Receiver
from driftwatch._serve.service import DriftService

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_790_000_000  # event time of the first task, seconds


def task_outcomes(before: int, after: int, p0: float, p1: float, seed: int) -> list[bool]:
    rng = random.Random(seed)
    return [rng.random() < (p0 if i < before else p1) for i in range(before + after)]


def emit_tasks(exporter: SpanExporter, passed: list[bool], batch: bool = False) -> None:
    """Task spans as driftwatch exports them (``invoke_agent {task}``), one per second of event time."""
    provider = TracerProvider(resource=Resource.create({"service.name": "agent-a"}))
    processor = (
        BatchSpanProcessor(exporter, max_export_batch_size=200) if batch else SimpleSpanProcessor(exporter)
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for i, ok in enumerate(passed):
        start = (T0 + i) * 1_000_000_000
        span = tracer.start_span(
            "invoke_agent fix-tests",
            start_time=start,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "driftwatch.task.name": "fix-tests",
                "driftwatch.task.success": ok,
            },
        )
        span.end(end_time=start + 400_000_000)
    provider.shutdown()


def payloads(passed: list[bool], per_request: int = 50) -> list[bytes]:
    """The same task spans, as serialised OTLP trace requests of ``per_request`` spans each."""
    memory = InMemorySpanExporter()
    emit_tasks(memory, passed)
    spans = memory.get_finished_spans()
    return [
        encode_spans(spans[i : i + per_request]).SerializeToString()
        for i in range(0, len(spans), per_request)
    ]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[DriftService, Receiver, InMemorySink]]:
    config = load_config(
        None, env={}, http_port=0, grpc_port=0, state=str(tmp_path / "state.db"), console=False
    )
    sink = InMemorySink()
    svc = DriftService(config, [sink])
    svc.start(wait=True)
    receiver = Receiver(svc, config)
    receiver.start()
    yield svc, receiver, sink
    receiver.stop()
    svc.stop()


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_sdk_exporters_to_serve_raise_an_alert(
    service: tuple[DriftService, Receiver, InMemorySink], transport: str
) -> None:
    """Task spans sent by the OTel SDK's own OTLP exporter (HTTP or gRPC) become a confirmed drift alert."""
    svc, receiver, sink = service
    exporter: SpanExporter = (
        HttpSpanExporter(endpoint=f"http://127.0.0.1:{receiver.http_port}/v1/traces")
        if transport == "http"
        else GrpcSpanExporter(endpoint=f"127.0.0.1:{receiver.grpc_port}", insecure=True)
    )
    emit_tasks(exporter, task_outcomes(600, 300, 0.9, 0.4, seed=3), batch=True)
    assert svc.wait_processed(20)
    drift = [a for a in sink.alerts if a.kind == "drift" and a.signal == "success"]
    assert [a.status for a in drift][:2] == ["suspected", "confirmed"]
    assert drift[0].direction == "down"
    assert drift[0].stream == {"service": "agent-a", "task": "fix-tests"}
    assert T0 + 600 <= drift[0].detected_at <= T0 + 660  # within 60 tasks of the change at 600
    stats = svc.stats()
    assert stats["monitor"]["processed"] == 900 and stats["streams"] == 1


def test_partial_success_names_the_malformed_items(
    service: tuple[DriftService, Receiver, InMemorySink],
) -> None:
    """A span with a malformed driftwatch attribute is rejected with where it is; the rest flows."""
    svc, receiver, _ = service
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agent-a"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for cost in (0.5, "lots"):
        with tracer.start_as_current_span(
            "invoke_agent fix-tests",
            attributes={"gen_ai.operation.name": "invoke_agent", "driftwatch.task.cost_usd": cost},
        ):
            pass
    body = encode_spans(memory.get_finished_spans()).SerializeToString()
    request = urllib.request.Request(
        f"http://127.0.0.1:{receiver.http_port}/v1/traces",
        data=body,
        headers={"Content-Type": "application/x-protobuf"},
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    with urllib.request.urlopen(request, timeout=10) as response:
        answer = ExportTraceServiceResponse.FromString(response.read())
    assert answer.partial_success.rejected_spans == 1
    assert "driftwatch.task.cost_usd" in answer.partial_success.error_message
    assert "resource_spans[0]" in answer.partial_success.error_message
    assert svc.wait_processed(10)
    assert svc.monitor.stats.processed == 1  # the good span went through detection


def test_a_retried_payload_counts_once(service: tuple[DriftService, Receiver, InMemorySink]) -> None:
    """The same payload acknowledged twice (an exporter's retry after a lost answer) is processed once."""
    svc, receiver, _ = service
    (body,) = payloads(task_outcomes(20, 0, 0.5, 0.5, seed=1), per_request=20)
    for _ in range(2):
        assert post(receiver.http_port, body) == 200
    assert svc.wait_processed(10)
    assert svc.monitor.stats.processed == 20
    assert svc.stats()["duplicates_skipped"] == 1


# -- kill -9 -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(port: int, body: bytes) -> int | None:
    """POST one OTLP trace payload; the status, or None when the service is not there."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


def start_serve(state: Path, alerts: Path, port: int, config: Path | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DRIFTWATCH_"))}
    cmd = [sys.executable, "-P", "-m", "driftwatch._cli.main", "serve", "--state", str(state)]
    cmd += ["--alerts-out", str(alerts), "--http-port", str(port), "--grpc-port", "0"]
    cmd += ["--config", str(config)] if config is not None else []
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"serve did not become ready: {proc.stderr.read() if proc.stderr else b''!r}")


def handler_stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as r:
        stats: dict[str, Any] = json.load(r)["handler"]
    return stats


def backlog(port: int) -> int:
    return int(handler_stats(port)["backlog"])


def wait_for_checkpoint(state: Path, port: int, timeout: float = 20.0) -> int:
    """Wait until every payload sent is through detection and in a checkpoint; the checkpoint's seq."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = handler_stats(port)
        if stats["backlog"] == 0:
            with contextlib.closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
                row = db.execute("SELECT seq FROM checkpoint").fetchone()
            if row is not None and row[0] == stats["processed_seq"]:
                return int(row[0])
        time.sleep(0.1)
    raise AssertionError("no checkpoint covered the payloads sent")


def alert_set(path: Path) -> set[tuple[str, str, str]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(a["id"], a["status"], a["signal"]) for a in rows}


def run_serve_over(
    tmp: Path, bodies: list[bytes], kill_at: set[int], seed: int, checkpointed: set[int] = frozenset()
) -> set[tuple[str, str, str]]:
    """Sends every payload (retrying until acknowledged) to a `driftwatch serve` subprocess that is
    killed with SIGKILL right after the payloads in ``kill_at`` were sent, and restarted; at those in
    ``checkpointed`` only once a checkpoint covers them, and the restart must restore it."""
    rng = random.Random(seed)
    state, alerts, port = tmp / "state.db", tmp / "alerts.jsonl", free_port()
    config = tmp / "driftwatch.yaml"
    config.write_text("checkpoint_seconds: 1\n")
    proc = start_serve(state, alerts, port, config)
    try:
        for i, body in enumerate(bodies):
            while post(port, body) != 200:  # not acknowledged: an exporter retries
                if proc.poll() is not None:
                    proc = start_serve(state, alerts, port, config)
            if i in kill_at:
                seq = wait_for_checkpoint(state, port) if i in checkpointed else None
                processed = handler_stats(port)["monitor"]["processed"]
                time.sleep(rng.random() * 0.05)  # anywhere: mid-detection, mid-checkpoint, idle
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                proc = start_serve(state, alerts, port, config)
                if seq is not None:  # restored, not re-learnt from the journal after the checkpoint
                    restored = handler_stats(port)
                    assert restored["restored_checkpoint_seq"] == seq
                    assert restored["monitor"]["processed"] == processed
                    # serve runs on one malloc arena where the C library is glibc (limit_malloc_arenas)
                    glibc = platform.libc_ver()[0] == "glibc"
                    assert restored["malloc_trim"]["arena_max"] == (1 if glibc else None)
        deadline = time.monotonic() + 30
        while backlog(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    return alert_set(alerts)


def test_kill_9_and_restart_lose_nothing_acknowledged(tmp_path: Path) -> None:
    """SIGKILL at three random moments, one past a checkpoint that the restart restores: the restarted
    service's alerts equal an uninterrupted run's."""
    bodies = payloads(task_outcomes(700, 500, 0.85, 0.55, seed=5))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    clean = run_serve_over(tmp_path / "a", bodies, set(), seed=0)
    assert any(status == "confirmed" for _, status, signal_ in clean if signal_ == "success")
    kill_at = set(random.Random(9).sample(range(len(bodies) - 1), 3))
    # One restart past a checkpoint (restore, then replay), the others before one (replay only).
    killed = run_serve_over(tmp_path / "b", bodies, kill_at, 1, checkpointed={max(kill_at)})
    assert killed == clean


def test_kill_9_past_a_checkpoint_keeps_pages_open_and_resolves_them(tmp_path: Path) -> None:
    """kill -9 after a checkpoint holding a confirmed alert: after the restart /metrics still shows
    driftwatch_drift_confirmed 1 and no notifier is paged again; when the stream recovers, PagerDuty
    and the webhook get the resolve with the key that opened the page, and the gauge goes to 0."""
    from tests.support.notify_servers import FakeService

    rng = random.Random(1)
    passed = [rng.random() < p for p in [0.85] * 600 + [0.55] * 300 + [0.85] * 400]
    bodies = payloads(passed)
    degraded, recovered = bodies[:18], bodies[18:]  # 900 outcomes, then the recovery
    pd, hook = FakeService("pagerduty"), FakeService("webhook")
    state, alerts, port = tmp_path / "state.db", tmp_path / "alerts.jsonl", free_port()
    config = tmp_path / "driftwatch.yaml"
    config.write_text(
        "checkpoint_seconds: 1\nnotifiers:\n"
        f"  - {{type: pagerduty, routing_key: R0123456789abcdef0123456789abcde, url: '{pd.url}'}}\n"
        f"  - {{type: webhook, url: '{hook.url}'}}\n"
    )

    def confirmed_gauge() -> list[str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return [
            line.rsplit(" ", 1)[1]
            for line in text.splitlines()
            if line.startswith("driftwatch_drift_confirmed{") and 'signal="success"' in line
        ]

    def wait_for(condition: Any, what: str) -> None:
        deadline = time.monotonic() + 20
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(0.05)

    proc = start_serve(state, alerts, port, config)
    try:
        for body in degraded:
            assert post(port, body) == 200
        wait_for(lambda: [b["event_action"] for b in pd.bodies()] == ["trigger"], "no page")
        # The notifiers may deliver before the scrape sink (last in the list) has seen the alert.
        wait_for(lambda: confirmed_gauge() == ["1"], "no confirmed gauge")
        seq = wait_for_checkpoint(state, port)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

        proc = start_serve(state, alerts, port, config)
        stats = handler_stats(port)
        assert stats["restored_checkpoint_seq"] == seq and stats["processed_seq"] == seq
        assert confirmed_gauge() == ["1"]  # the Prometheus page stays open across the restart
        time.sleep(0.3)  # a page sent again would arrive by now
        assert len(pd.requests) == 1 and len(hook.requests) == 1

        for body in recovered:
            assert post(port, body) == 200
        wait_for(lambda: len(pd.requests) == 2 and len(hook.requests) == 2, "no resolve")
        trigger, resolve = pd.bodies()
        assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", trigger["dedup_key"])
        # PagerDuty's key is the alert's incident (restored from the checkpoint with the open alert).
        assert [(b["incident"], b["status"]) for b in hook.bodies()] == [
            (trigger["dedup_key"], "confirmed"),
            (trigger["dedup_key"], "resolved"),
        ]
        # (The return to 0.85 itself raises a suspicion "up" that resolves as the recovery: its
        # series, for direction up, reads 0 as well.)
        wait_for(lambda: set(confirmed_gauge()) == {"0"}, "the confirmed gauge stayed up")
        assert pd.invalid == [] and hook.invalid == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        pd.close()
        hook.close()


def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Two clients sending concurrently while the service is SIGKILLed three times: after restarts,
    every outcome of every acknowledged payload went through detection, exactly once."""
    import threading

    passed = task_outcomes(300, 200, 0.85, 0.55, seed=6)
    bodies = payloads(passed, per_request=10)
    state, alerts, port = tmp_path / "state.db", tmp_path / "alerts.jsonl", free_port()
    holder = {"proc": start_serve(state, alerts, port)}
    acked = [0, 0]

    def client(k: int) -> None:
        for body in bodies[k::2]:
            while post(port, body) != 200:  # not acknowledged (killed, restarting): retry
                time.sleep(0.02)
            acked[k] += 1

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in (0, 1)]
    try:
        for t in threads:
            t.start()
        rng = random.Random(4)
        for _ in range(3):
            time.sleep(0.1 + rng.random() * 0.3)
            holder["proc"].send_signal(signal.SIGKILL)
            holder["proc"].wait()
            holder["proc"] = start_serve(state, alerts, port)
        for t in threads:
            t.join(60)
        assert sum(acked) == len(bodies)
        deadline = time.monotonic() + 30
        while backlog(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as r:
            stats: dict[str, Any] = json.load(r)["handler"]
        assert stats["backlog"] == 0
        # Exactly once: none lost, and a resent payload (journalled, not acknowledged) skipped.
        assert stats["monitor"]["processed"] == len(passed), stats
        holder["proc"].send_signal(signal.SIGTERM)
        assert holder["proc"].wait(20) == 0
    finally:
        if holder["proc"].poll() is None:
            holder["proc"].kill()


def test_fuzz_through_the_service_then_healthy(service: tuple[DriftService, Receiver, InMemorySink]) -> None:
    """300 malformed payloads over a real socket to the full service (journal, decoder, monitor): each
    answered 200 (full or partial success) or 4xx; then it is healthy and still detects."""
    from hypothesis import HealthCheck, given, settings

    from tests.driftwatch.serve.test_receiver import _encode, _payloads

    svc, receiver, _ = service
    statuses: list[int] = []

    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_payloads)
    def send(payload: tuple[str, bytes, str, str]) -> None:
        signal_, raw, content_type, encoding = payload
        body, encoding = _encode(raw, encoding)
        conn = http.client.HTTPConnection("127.0.0.1", receiver.http_port, timeout=10)
        conn.request(
            "POST", f"/v1/{signal_}", body, {"Content-Type": content_type, "Content-Encoding": encoding}
        )
        status = conn.getresponse().status
        conn.close()
        statuses.append(status)
        assert status == 200 or 400 <= status < 500

    send()
    assert len(statuses) == 300 and 200 in statuses
    assert svc.wait_processed(20)
    assert svc.durable.stats.decode_errors == 0 and svc.monitor.stats.internal_errors == 0
    with urllib.request.urlopen(f"http://127.0.0.1:{receiver.http_port}/healthz", timeout=5) as r:
        assert r.status == 200
    before = svc.monitor.stats.processed
    (body,) = payloads(task_outcomes(20, 0, 0.5, 0.5, seed=2), per_request=20)
    assert post(receiver.http_port, body) == 200
    assert svc.wait_processed(10)
    assert svc.monitor.stats.processed == before + 20
