"""OTLP receiver over real sockets: the SDK's own exporters (HTTP and gRPC), hand-made requests, limits,
token, TLS, health endpoints, and a hypothesis fuzz of malformed payloads."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from driftwatch import ConfigError, load_config
from driftwatch._cli.main import main
from driftwatch._serve.receiver import Accepted, Receiver, RequestError, Saturated, Signal, parse_request
from driftwatch._serve.service import _decode_with
from driftwatch.collectors._otlp import OtlpDecoder

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


class Collecting:
    """A real handler for tests: keeps the last requests (bounded), can reject, saturate or block."""

    def __init__(self) -> None:
        self.requests: deque[tuple[Signal, Message]] = deque(maxlen=500)
        self.rejected = 0
        self.message = ""
        self.saturated = False
        self.is_ready = True
        self.broken = False
        self.gate: threading.Event | None = None
        self.entered = threading.Semaphore(0)

    def handle(self, signal: Signal, request: Message) -> Accepted:
        self.entered.release()
        if self.gate is not None:
            self.gate.wait(10)
        if self.broken:
            raise RuntimeError("handler bug")
        if self.saturated:
            raise Saturated("journal full", retry_after=2.5)
        self.requests.append((signal, request))
        return Accepted(self.rejected, self.message)

    def ready(self) -> bool:
        return self.is_ready

    def stats(self) -> dict[str, int]:
        return {"streams": 3}

    def of(self, signal: Signal) -> list[Any]:
        return [r for s, r in self.requests if s == signal]


class Running:
    def __init__(self, receiver: Receiver, handler: Collecting, log: io.StringIO) -> None:
        self.receiver = receiver
        self.handler = handler
        self.log = log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.receiver.http_port}"

    def post(
        self, path: str, body: bytes, headers: dict[str, str], conn: http.client.HTTPConnection | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.receiver.http_port, timeout=10)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            if own:
                conn.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.receiver.http_port, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Running]]:
    started: list[Receiver] = []

    def start(**settings: Any) -> Running:
        handler = Collecting()
        log = io.StringIO()
        from driftwatch._serve.receiver import default_logger

        config = load_config(env={}, http_port=0, grpc_port=0, **settings)
        receiver = Receiver(handler, config, logger=default_logger(log))
        receiver.start()
        started.append(receiver)
        return Running(receiver, handler, log)

    yield start
    for receiver in started:
        receiver.stop(grace=0.5)


def spans_request(n: int = 3, attributes: int = 2) -> ExportTraceServiceRequest:
    """A real ExportTraceServiceRequest made by the SDK's own encoder from real spans."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for i in range(n):
        with tracer.start_as_current_span(f"invoke_agent fix-tests-{i}") as span:
            for a in range(attributes):
                span.set_attribute(f"attr.{a}", a)
    spans: list[ReadableSpan] = list(memory.get_finished_spans())
    request: ExportTraceServiceRequest = encode_spans(spans)
    return request


def span_names(requests: list[Any]) -> set[str]:
    return {s.name for r in requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans}


# -- the SDK's own exporters -------------------------------------------------------------------------


def _export_all(
    protocol: str, running: Running, headers: dict[str, str] | None = None, **grpc_kw: Any
) -> None:
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = grpc_kw.pop("base", running.url)
        span_exp: Any = OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=headers, **grpc_kw)
        log_exp: Any = OTLPLogExporter(endpoint=f"{base}/v1/logs", headers=headers, **grpc_kw)
        metric_exp: Any = OTLPMetricExporter(endpoint=f"{base}/v1/metrics", headers=headers, **grpc_kw)
    else:
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GLog
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GMetric
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GSpan

        target = grpc_kw.pop("target", f"127.0.0.1:{running.receiver.grpc_port}")
        kw: dict[str, Any] = {"insecure": True, **grpc_kw}
        span_exp = GSpan(endpoint=target, headers=headers, **kw)
        log_exp = GLog(endpoint=target, headers=headers, **kw)
        metric_exp = GMetric(endpoint=target, headers=headers, **kw)
    resource = Resource.create({"service.name": "checkout-bot"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exp))
    with tracer_provider.get_tracer("t").start_as_current_span("invoke_agent fix-tests") as span:
        span.set_attribute("gen_ai.operation.name", "invoke_agent")
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exp))
    logger_provider.get_logger("t").emit(
        body="task done", event_name="driftwatch.test", attributes={"ok": True}
    )
    reader = PeriodicExportingMetricReader(metric_exp, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter_provider.get_meter("t").create_counter("driftwatch.outcomes").add(3, {"task": "fix-tests"})
    for provider in (tracer_provider, logger_provider, meter_provider):
        provider.shutdown()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_sdk_exporters_arrive_decoded(serve: Callable[..., Running], protocol: str) -> None:
    """Spans, logs and metrics sent by the OTel SDK's own OTLP exporters reach the handler decoded."""
    running = serve()
    _export_all(protocol, running)
    handler = running.handler
    assert span_names(handler.of("traces")) == {"invoke_agent fix-tests"}
    records = [
        r
        for req in handler.of("logs")
        for rl in req.resource_logs
        for sl in rl.scope_logs
        for r in sl.log_records
    ]
    assert [(r.body.string_value, r.event_name) for r in records] == [("task done", "driftwatch.test")]
    metrics = [
        m
        for req in handler.of("metrics")
        for rm in req.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    ]
    assert [(m.name, m.sum.data_points[0].as_int) for m in metrics] == [("driftwatch.outcomes", 3)]
    stats = running.receiver.stats.snapshot()
    assert stats["received"] == {"traces": 1, "logs": 1, "metrics": 1}
    assert stats["requests"][protocol] == {"200" if protocol == "http" else "OK": 3}


def test_sdk_exporters_with_token_and_tls(
    serve: Callable[..., Running], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a token and TLS, the SDK exporters (HTTP and gRPC) are served; without the token they are not."""
    # requests lets these variables override the exporter's certificate_file (session.verify).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    cert, key = _self_signed(tmp_path)
    running = serve(token="s3cret-token", tls_cert=str(cert), tls_key=str(key))
    auth = {"authorization": "Bearer s3cret-token"}
    _export_all(
        "http",
        running,
        headers=auth,
        base=f"https://localhost:{running.receiver.http_port}",
        certificate_file=str(cert),
    )
    creds = grpc.ssl_channel_credentials(cert.read_bytes())
    _export_all(
        "grpc",
        running,
        headers=auth,
        target=f"localhost:{running.receiver.grpc_port}",
        insecure=False,
        credentials=creds,
    )
    assert len(running.handler.of("traces")) == 2
    assert len(running.handler.of("logs")) == 2
    assert len(running.handler.of("metrics")) == 2
    # Plain http on the TLS port gets nowhere; https without the token is 401.
    context = ssl.create_default_context(cafile=str(cert))
    conn = http.client.HTTPSConnection("localhost", running.receiver.http_port, context=context, timeout=5)
    conn.request("POST", "/v1/traces", body=spans_request().SerializeToString(), headers=PROTOBUF)
    resp = conn.getresponse()
    assert resp.status == 401
    assert resp.getheader("WWW-Authenticate") == "Bearer"
    conn.close()


def test_sdk_exporters_with_gzip(serve: Callable[..., Running]) -> None:
    """The SDK span exporters with gzip compression (HTTP Content-Encoding, gRPC message compression)."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GSpan
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    running = serve()
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(f"{running.url}/v1/traces", compression=HttpCompression.Gzip))
    )
    provider.add_span_processor(
        SimpleSpanProcessor(
            GSpan(f"127.0.0.1:{running.receiver.grpc_port}", insecure=True, compression=grpc.Compression.Gzip)
        )
    )
    with provider.get_tracer("t").start_as_current_span("zipped"):
        pass
    provider.shutdown()
    assert [span_names([r]) for r in running.handler.of("traces")] == [{"zipped"}, {"zipped"}]


def test_grpc_message_over_the_limit_is_refused(serve: Callable[..., Running]) -> None:
    """gRPC enforces max_body_bytes (grpc.max_receive_message_length): RESOURCE_EXHAUSTED, not served."""
    running = serve(max_body_bytes=10_000)
    with grpc.insecure_channel(f"127.0.0.1:{running.receiver.grpc_port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Export(spans_request(100, attributes=5), timeout=5)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        stub.Export(spans_request(2), timeout=5)
    assert len(running.handler.of("traces")) == 1


CLAUDE_CODE = (
    next(
        (p for p in (Path(__file__).resolve().parents[4] / "shared", Path("/work/shared")) if p.is_dir()),
        Path("/work/shared"),
    )
    / "data"
    / "claude-code"
)


@pytest.mark.parametrize("folder", ["otlp-protobuf", "otlp-json"])
def test_real_claude_code_payloads(serve: Callable[..., Running], folder: str) -> None:
    """Real Claude Code 2.1.197 OTLP payloads, sent as it sent them (chunked, its content type), are
    all accepted; JSON hex ids decode to the same bytes."""
    index = CLAUDE_CODE / folder / "index.jsonl"
    if not index.exists():
        pytest.skip(f"real data not found at {index}")
    running = serve()
    entries = [json.loads(line) for line in index.read_text().splitlines()]
    conn = http.client.HTTPConnection("127.0.0.1", running.receiver.http_port, timeout=10)
    for entry in entries:
        data = (CLAUDE_CODE / folder / entry["file"]).read_bytes()
        headers = {"Content-Type": entry["content_type"], "User-Agent": entry["user_agent"]}
        conn.request(
            "POST", f"/v1/{entry['signal']}", body=iter([data]), headers=headers, encode_chunked=True
        )
        resp = conn.getresponse()
        assert (entry["file"], resp.status) == (entry["file"], 200)
        resp.read()
    conn.close()
    signals = [s for s, _ in running.handler.requests]
    assert signals == [e["signal"] for e in entries]
    spans = [
        s
        for r in running.handler.of("traces")
        for rs in r.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    assert spans and all(len(s.trace_id) == 16 and len(s.span_id) == 8 for s in spans)
    if folder == "otlp-json":
        text = (CLAUDE_CODE / folder / "00001_traces.json").read_text()
        assert all(s.trace_id.hex() in text and s.span_id.hex() in text for s in spans)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,digitalSignature,keyCertSign"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


# -- hand-made HTTP requests -------------------------------------------------------------------------


def test_json_hex_ids_are_decoded(serve: Callable[..., Running]) -> None:
    """OTLP/JSON: hex trace and span ids, integer enums, unknown fields ignored; JSON response."""
    running = serve()
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bot"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "",
                                "name": "invoke_agent t",
                                "kind": 2,
                                "startTimeUnixNano": "1544712660000000000",
                                "someFutureField": {"x": 1},
                            }
                        ]
                    }
                ],
            }
        ]
    }
    status, headers, data = running.post("/v1/traces", json.dumps(body).encode(), JSON)
    assert (status, headers["content-type"], json.loads(data)) == (200, "application/json", {})
    span = running.handler.of("traces")[0].resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert (span.span_id.hex(), span.kind, span.start_time_unix_nano) == (
        "eee19b7ec3c1b174",
        2,
        1544712660000000000,
    )


def test_json_base64_id_is_400_naming_the_field(serve: Callable[..., Running]) -> None:
    """A base64 (not hex) id is refused with 400 and a JSON Status naming where it is."""
    running = serve()
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "W47/95gDgQPSabYzgT/GDA=="}]}]}]}
    status, headers, data = running.post("/v1/logs", json.dumps(body).encode(), JSON)
    assert (status, headers["content-type"]) == (400, "application/json")
    message = json.loads(data)["message"]
    assert "resourceLogs[0].scopeLogs[0].logRecords[0].traceId: expected 32 hex digits" in message


def test_gzip_chunked_without_content_length(serve: Callable[..., Running]) -> None:
    """A gzip body sent chunked, without Content-Length, is decoded."""
    running = serve()
    data = gzip.compress(spans_request(5).SerializeToString())
    conn = http.client.HTTPConnection("127.0.0.1", running.receiver.http_port, timeout=10)
    pieces = iter([data[:7], data[7:40], data[40:]])
    conn.request(
        "POST",
        "/v1/traces",
        body=pieces,
        headers={**PROTOBUF, "Content-Encoding": "gzip"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(resp.read()) == ExportTraceServiceResponse()
    # The keep-alive connection stays usable after a chunked body.
    conn.request("POST", "/v1/traces", body=spans_request(1).SerializeToString(), headers=PROTOBUF)
    assert conn.getresponse().status == 200
    conn.close()
    assert len(span_names(running.handler.of("traces"))) == 5


@pytest.mark.parametrize(
    ("headers", "status", "fragment"),
    [
        ({"Content-Type": "text/plain"}, 415, "Content-Type 'text/plain' is not supported"),
        ({**PROTOBUF, "Content-Encoding": "br"}, 415, "Content-Encoding 'br' is not supported"),
        ({**PROTOBUF, "Content-Encoding": "gzip"}, 400, "not valid gzip data"),
    ],
)
def test_unsupported_type_or_encoding(
    serve: Callable[..., Running], headers: dict[str, str], status: int, fragment: str
) -> None:
    """Unknown content type or encoding is 415, a bad gzip body 400, each with a Status message."""
    running = serve()
    code, _, data = running.post("/v1/traces", spans_request().SerializeToString(), headers)
    assert code == status
    assert fragment in status_pb2.Status.FromString(data).message


def test_malformed_protobuf_is_400_and_service_keeps_going(serve: Callable[..., Running]) -> None:
    """A corrupt protobuf body is 400 with a message; the next good request is served."""
    running = serve()
    status, _, data = running.post("/v1/traces", b"\x0a\xff\xff\xff\xff\x0f", PROTOBUF)
    assert status == 400
    assert "cannot decode a ExportTraceServiceRequest" in status_pb2.Status.FromString(data).message
    assert running.post("/v1/traces", spans_request().SerializeToString(), PROTOBUF)[0] == 200
    assert '"driftwatch.receiver.refused"' in running.log.getvalue()


def test_too_large_and_gzip_bomb_are_413(serve: Callable[..., Running]) -> None:
    """A body over max_body_bytes is 413 before it is read; a gzip bomb is 413 after 1 MiB of output."""
    running = serve(max_body_bytes=1024 * 1024)
    big = b"\x00" * (1024 * 1024 + 1)
    assert running.post("/v1/traces", big, PROTOBUF)[0] == 413
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000
    status, _, data = running.post("/v1/traces", bomb, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert status == 413
    assert "after gzip decompression" in status_pb2.Status.FromString(data).message
    assert running.receiver.stats.snapshot()["requests"]["http"]["413"] == 2


def test_unknown_path_is_404(serve: Callable[..., Running]) -> None:
    """A POST to a path other than /v1/{traces,logs,metrics} is 404 naming the valid paths."""
    running = serve()
    status, _, data = running.post("/v1/profiles", b"", PROTOBUF)
    assert status == 404
    assert "/v1/traces" in status_pb2.Status.FromString(data).message


def test_partial_success_http_and_grpc(serve: Callable[..., Running]) -> None:
    """Items the handler rejects come back as partial_success over both transports (JSON too)."""
    running = serve()
    running.handler.rejected, running.handler.message = 2, "2 spans without a task"
    status, _, data = running.post("/v1/traces", spans_request().SerializeToString(), PROTOBUF)
    response = ExportTraceServiceResponse.FromString(data)
    assert (status, response.partial_success.rejected_spans) == (200, 2)
    assert response.partial_success.error_message == "2 spans without a task"
    status, _, data = running.post("/v1/logs", b"{}", JSON)
    assert json.loads(data) == {
        "partialSuccess": {"rejectedLogRecords": "2", "errorMessage": "2 spans without a task"}
    }
    with grpc.insecure_channel(f"127.0.0.1:{running.receiver.grpc_port}") as channel:
        reply = trace_service_pb2_grpc.TraceServiceStub(channel).Export(spans_request(), timeout=5)
    assert reply.partial_success.rejected_spans == 2
    stats = running.receiver.stats.snapshot()
    assert stats["rejected"]["traces"] == 4
    assert stats["received"]["traces"] == 2


def test_saturated_is_503_retry_after_and_grpc_unavailable(serve: Callable[..., Running]) -> None:
    """A saturated handler: HTTP 503 with Retry-After; gRPC UNAVAILABLE with RetryInfo; counted."""
    running = serve()
    running.handler.saturated = True
    status, headers, data = running.post("/v1/traces", spans_request().SerializeToString(), PROTOBUF)
    assert (status, headers["retry-after"]) == (503, "3")
    assert status_pb2.Status.FromString(data).message == "journal full"
    target = f"127.0.0.1:{running.receiver.grpc_port}"
    with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as caught:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(spans_request(), timeout=5)
    error: Any = caught.value
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    info = error_details_pb2.RetryInfo.FromString(dict(error.trailing_metadata())["google.rpc.retryinfo-bin"])
    assert info.retry_delay.ToTimedelta().total_seconds() == 2.5
    assert running.receiver.stats.snapshot()["dropped"]["saturated"] == 2


def test_handler_error_is_500_logged_and_service_keeps_going(serve: Callable[..., Running]) -> None:
    """A handler bug is answered 500 / INTERNAL and logged; the receiver keeps serving."""
    running = serve()
    running.handler.broken = True
    assert running.post("/v1/traces", spans_request().SerializeToString(), PROTOBUF)[0] == 500
    target = f"127.0.0.1:{running.receiver.grpc_port}"
    with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as caught:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(spans_request(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
    assert "handler bug" in running.log.getvalue()
    running.handler.broken = False
    assert running.post("/v1/traces", spans_request().SerializeToString(), PROTOBUF)[0] == 200


def test_bearer_token_http_and_grpc(serve: Callable[..., Running]) -> None:
    """With a token: 401 / UNAUTHENTICATED without or with a wrong one; probes stay open, /stats does not."""
    running = serve(token="t0ken")
    body = spans_request().SerializeToString()
    assert running.post("/v1/traces", body, PROTOBUF)[0] == 401
    # A large body is read and dropped, so the client gets its 401 rather than a reset connection.
    assert running.post("/v1/traces", b"\x00" * 3_000_000, PROTOBUF)[0] == 401
    assert running.post("/v1/traces", body, {**PROTOBUF, "Authorization": "Bearer wrong"})[0] == 401
    assert running.post("/v1/traces", body, {**PROTOBUF, "Authorization": "Bearer t0ken"})[0] == 200
    assert running.post("/v1/traces", body, {**PROTOBUF, "Authorization": "bearer t0ken"})[0] == 200
    assert running.post("/v1/traces", body, {**PROTOBUF, "Authorization": "Basic t0ken"})[0] == 401
    assert running.post("/v1/traces", body, {**PROTOBUF, "Authorization": "t0ken"})[0] == 401
    with grpc.insecure_channel(f"127.0.0.1:{running.receiver.grpc_port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Export(spans_request(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        stub.Export(spans_request(), timeout=5, metadata=[("authorization", "Bearer t0ken")])
    assert running.get("/healthz")[0] == 200
    assert running.get("/readyz")[0] == 200
    assert running.get("/stats")[0] == 401
    assert running.get("/stats", {"Authorization": "Bearer t0ken"})[0] == 200
    assert len(running.handler.of("traces")) == 3  # two HTTP (both scheme spellings), one gRPC


def test_non_loopback_without_token_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Binding 0.0.0.0 without a token is refused, naming the setting and the variable."""
    with pytest.raises(ConfigError, match=r"setting 'host' is '0.0.0.0'.*set 'token'.*DRIFTWATCH_TOKEN"):
        Receiver(Collecting(), load_config(env={}, host="0.0.0.0"))
    assert main(["serve", "--host", "0.0.0.0", "--http-port", "0", "--grpc-port", "0"]) == 2
    assert "DRIFTWATCH_TOKEN" in capsys.readouterr().err


def test_health_ready_and_stats(serve: Callable[..., Running]) -> None:
    """/healthz is 200; /readyz follows the handler; /stats has counters, queue and the handler's stats."""
    running = serve()
    running.post("/v1/traces", spans_request(4).SerializeToString(), PROTOBUF)
    running.post("/v1/traces", b"junk", {"Content-Type": "text/plain"})
    assert running.get("/healthz") == (200, b'{"status":"ok"}')
    assert running.get("/readyz")[0] == 200
    running.handler.is_ready = False
    assert running.get("/readyz") == (503, b'{"ready":false}')
    status, data = running.get("/stats")
    stats = json.loads(data)
    assert status == 200
    assert stats["received"]["traces"] == 4
    assert stats["requests"]["http"]["200"] == 1
    assert stats["requests"]["http"]["415"] == 1
    assert stats["bytes"]["wire"] > 0
    assert stats["queue"]["http_capacity"] == 64
    assert stats["handler"] == {"streams": 3}
    assert stats["ready"] is False
    memory = stats["memory"]  # what benchmarks/soak.py fits its slopes to
    assert memory["rss_bytes"] > 10 * 2**20 and memory["python_blocks"] > 10_000
    assert memory["traced_bytes"] is None  # tracemalloc is off unless PYTHONTRACEMALLOC asks for it


def test_route_hook_serves_extra_get_endpoints(serve: Callable[..., Running]) -> None:
    """Receiver.routes adds GET endpoints (the hook a Prometheus /metrics will use)."""
    running = serve()
    running.receiver.routes["/metrics"] = lambda: (200, "text/plain; version=0.0.4", b"driftwatch_up 1\n")
    assert running.get("/metrics") == (200, b"driftwatch_up 1\n")
    assert running.get("/nope")[0] == 404


def test_attributes_over_the_limit_are_dropped_counted_and_reported(serve: Callable[..., Running]) -> None:
    """Over max_attributes on a span: the extra are dropped and counted, the span kept, a warning sent."""
    running = serve(max_attributes=10)
    status, _, data = running.post(
        "/v1/traces", spans_request(2, attributes=25).SerializeToString(), PROTOBUF
    )
    response = ExportTraceServiceResponse.FromString(data)
    assert status == 200
    assert response.partial_success.rejected_spans == 0
    assert "30 attributes dropped" in response.partial_success.error_message
    span = running.handler.of("traces")[0].resource_spans[0].scope_spans[0].spans[0]
    assert (len(span.attributes), span.dropped_attributes_count) == (10, 15)
    assert running.receiver.stats.snapshot()["dropped"]["attributes"] == 30


def test_full_connection_queue_is_503(serve: Callable[..., Running]) -> None:
    """One worker busy and the one queue slot taken: the next connection is answered 503 at once."""
    running = serve(workers=1, max_pending=1)
    running.handler.gate = threading.Event()
    body = spans_request().SerializeToString()
    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(running.post("/v1/traces", body, PROTOBUF)[0]))
    first.start()
    assert running.handler.entered.acquire(timeout=5)  # the only worker is now inside the handler
    waiting = socket_connect(running.receiver.http_port)  # takes the one queue slot
    deadline = time.monotonic() + 5
    while running.receiver.stats_body()["queue"]["http_depth"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    status, headers, _ = running.post("/v1/traces", body, PROTOBUF)
    assert (status, headers["retry-after"]) == (503, "1")
    running.handler.gate.set()
    first.join(5)
    waiting.close()
    assert results == [200]
    assert running.receiver.stats.snapshot()["dropped"]["connections"] == 1


def test_trickled_body_is_cut_off_at_the_deadline(
    serve: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body that trickles in slower than the request deadline is answered 408 and the worker freed."""
    import driftwatch._serve.receiver as receiver_module

    monkeypatch.setattr(receiver_module, "_BODY_DEADLINE_S", 0.3)
    running = serve()
    sock = socket_connect(running.receiver.http_port)
    sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n")
    sock.sendall(b"Content-Length: 1000\r\n\r\n" + b"\x00" * 10)
    time.sleep(0.5)
    sock.sendall(b"\x00" * 10)
    reply = sock.recv(65536)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert running.post("/v1/traces", _VALID, PROTOBUF)[0] == 200


def socket_connect(port: int) -> Any:
    import socket

    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_serve_command_runs_until_sigterm(tmp_path: Path) -> None:
    """`driftwatch serve` logs where it listens, answers /healthz, and exits 0 on SIGTERM."""
    env = {**os.environ, "DRIFTWATCH_HTTP_PORT": "0", "DRIFTWATCH_GRPC_PORT": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "driftwatch._cli.main", "serve"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,  # its default state file lands here, not in the checkout
    )
    try:
        assert proc.stderr is not None
        line = json.loads(proc.stderr.readline())
        assert line["event"] == "driftwatch.receiver.listening"
        with urllib.request.urlopen(f"http://127.0.0.1:{line['http_port']}/healthz", timeout=5) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()


# -- fuzz --------------------------------------------------------------------------------------------

_VALID = spans_request(3).SerializeToString()
_VALID_JSON = json.dumps(
    {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c", "name": "x"}]}]}
        ]
    }
).encode()
_TYPES = [
    "application/x-protobuf",
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "",
    "\x00;;",
]


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        if out:
            out[pos % len(out)] = value
    return bytes(out[: max(0, len(out) - cut)])


_KEYS = [
    "resourceSpans",
    "scopeSpans",
    "spans",
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "kind",
    "attributes",
    "resourceLogs",
    "scopeLogs",
    "logRecords",
    "resourceMetrics",
    "scopeMetrics",
    "metrics",
    "gauge",
    "sum",
    "dataPoints",
    "asInt",
    "value",
    "key",
    "stringValue",
    "intValue",
    "kvlistValue",
    "values",
    "body",
    "x",
]

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)

_edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6)
_bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(_mutate, st.just(_VALID), _edits, st.integers(0, 50)),
    st.builds(_mutate, st.just(_VALID_JSON), _edits, st.integers(0, 20)),
    _json_values.map(lambda v: json.dumps(v).encode()),
)
_payloads = st.tuples(
    st.sampled_from(["traces", "logs", "metrics"]),
    _bodies,
    st.sampled_from(_TYPES),
    st.sampled_from(["", "gzip", "gzip-garbage", "identity", "br"]),
)


def _encode(body: bytes, encoding: str) -> tuple[bytes, str]:
    if encoding == "gzip":
        return gzip.compress(body, compresslevel=1), "gzip"
    if encoding == "gzip-garbage":
        return gzip.compress(body, compresslevel=1)[:-5] + b"junk!", "gzip"
    return body, encoding


def _json_tree(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 6 or roll < 0.35:
        return rng.choice(
            [None, True, 0, -1, 2**64, 1.5, "", "zz", "5b8efff798038103d269b633813fc60c", "é\x00"]
        )
    if roll < 0.6:
        return [_json_tree(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(_KEYS): _json_tree(rng, depth + 1) for _ in range(rng.randrange(4))}


def _seeded_body(kind: str, seed: int) -> bytes:
    """A malformed (or odd) body of one kind, made from a seed: cheap to draw, so 10,000 stay fast."""
    rng = random.Random(seed)
    if kind == "bytes":
        return rng.randbytes(rng.randrange(300))
    if kind == "json":
        return json.dumps(_json_tree(rng)).encode()
    base = _VALID if kind == "protobuf" else _VALID_JSON
    edits = [(rng.randrange(10_000), rng.randrange(256)) for _ in range(rng.randrange(1, 6))]
    return _mutate(base, edits, rng.choice([0, 0, 1, 7, 40]))


_FUZZ_DECODER = OtlpDecoder()


@settings(
    max_examples=10_000,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.sampled_from(["traces", "logs", "metrics"]),
    st.sampled_from(["bytes", "protobuf", "json-text", "json"]),
    st.integers(0, 2**32),
    st.sampled_from(_TYPES),
    st.sampled_from(["", "gzip", "gzip-garbage", "identity", "br"]),
)
def test_fuzz_parse_never_crashes(
    signal_: Signal, kind: str, seed: int, content_type: str, encoding: str
) -> None:
    """10,000 malformed payloads (random bytes, mutated real protobuf and OTLP/JSON, random JSON trees;
    plain, gzip, broken gzip, unknown encodings and types) through parse_request, the function the HTTP
    handler uses; a few hundred more go over a real socket below. Each is refused with 400/413/415 and
    a message, or decodes into a request that re-encodes (random bytes are often valid protobuf, which
    the server answers 200) and that the OTLP decoder takes — never any other exception."""
    body, encoding = _encode(_seeded_body(kind, seed), encoding)
    try:
        parsed = parse_request(signal_, body, content_type, encoding, max_bytes=4096, max_attributes=8)
    except RequestError as exc:
        assert exc.status in (400, 413, 415)
        assert exc.message
    else:
        assert parsed.items >= 0
        parsed.request.SerializeToString()
        # What parses goes on to the service's decoder, which must take anything without raising.
        decoded = _decode_with(_FUZZ_DECODER, signal_, parsed.request)
        assert decoded.rejected >= 0 and len(decoded.errors) <= 10


def test_fuzz_over_sockets_then_healthy(serve: Callable[..., Running]) -> None:
    """300 malformed payloads (hypothesis-built JSON and byte mutations) over one real keep-alive
    connection (reconnecting when the server closes it): every answer is 200 (full or partial success)
    or 4xx, never 5xx; /healthz and a good request still succeed afterwards."""
    running = serve(max_body_bytes=4096)
    statuses: list[int] = []
    conn: list[http.client.HTTPConnection] = [
        http.client.HTTPConnection("127.0.0.1", running.receiver.http_port, timeout=10)
    ]

    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(_payloads)
    def send(payload: tuple[Signal, bytes, str, str]) -> None:
        signal_, raw, content_type, encoding = payload
        body, encoding = _encode(raw, encoding)
        headers = {"Content-Type": content_type, "Content-Encoding": encoding}
        try:
            status, reply_headers, _ = running.post(f"/v1/{signal_}", body, headers, conn[0])
        except (http.client.HTTPException, OSError):
            conn[0].close()
            conn[0] = http.client.HTTPConnection("127.0.0.1", running.receiver.http_port, timeout=10)
            status, reply_headers, _ = running.post(f"/v1/{signal_}", body, headers, conn[0])
        if reply_headers.get("connection") == "close":
            conn[0].close()
        statuses.append(status)
        assert status == 200 or 400 <= status < 500

    send()
    conn[0].close()
    assert len(statuses) == 300
    assert set(statuses) >= {200, 400, 415}
    assert running.get("/healthz")[0] == 200
    assert running.post("/v1/traces", _VALID, PROTOBUF)[0] == 200


def test_seeded_garbage_is_never_5xx_over_grpc(serve: Callable[..., Running]) -> None:
    """Raw garbage bytes as gRPC request messages: refused INVALID_ARGUMENT (or accepted when they
    happen to decode), never INTERNAL; a valid request is served afterwards."""
    running = serve()
    rng = random.Random(5)
    with grpc.insecure_channel(f"127.0.0.1:{running.receiver.grpc_port}") as channel:
        raw = channel.unary_unary(
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            request_serializer=lambda b: b,
            response_deserializer=ExportLogsServiceResponse.FromString,
        )
        codes = set()
        for _ in range(50):
            try:
                raw(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))), timeout=5)
                codes.add(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.add(exc.code())  # type: ignore[attr-defined]
        assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
        assert grpc.StatusCode.INVALID_ARGUMENT in codes
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(spans_request(), timeout=5)
