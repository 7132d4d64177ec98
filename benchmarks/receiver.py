"""Receiver ingest speed for one 100-span OTLP export request, against protobuf decoding alone.

Measures, in one run: ``ParseFromString`` alone; ``parse_request`` (the receiver's parse and validate
step); OTLP/HTTP over real keep-alive connections on 127.0.0.1 and OTLP/gRPC with a real stub, from
1 and 2 client processes (clients in the server's process would share its GIL), first with a no-op
handler (the transport's cost only), then through ``driftwatch serve``'s own handler (item checks,
SQLite journal, acknowledgement) and its detection worker (decode, monitor), measured as the time to
drain what was accepted. Prints requests/s and the ratio to ``ParseFromString`` (issue 7 wants
ingest >= 0.5x raw decode speed). On a loaded machine, run it twice.

Run: .venv/bin/python -P benchmarks/receiver.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from driftwatch import load_config
from driftwatch._receiver import Accepted, Receiver, parse_request


class _Nothing:
    def handle(self, signal: str, request: Any) -> Accepted:
        return Accepted()

    def ready(self) -> bool:
        return True


def payload(spans: int = 100) -> bytes:
    """A real 100-span request: GenAI-style attributes, encoded by the SDK's own OTLP encoder."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for i in range(spans):
        with tracer.start_as_current_span("chat claude-sonnet-4-6") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "anthropic",
                    "gen_ai.request.model": "claude-sonnet-4-6",
                    "gen_ai.usage.input_tokens": 1200 + i,
                    "gen_ai.usage.output_tokens": 300 + i,
                    "driftwatch.task.name": "fix-tests",
                }
            )
    data: bytes = encode_spans(list(memory.get_finished_spans())).SerializeToString()
    return data


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def _client(kind: str, port: int, body: bytes, seconds: float, out: Any) -> None:
    """One client process (its own GIL, as real exporters are): sends for ``seconds``, reports the count."""
    if kind == "http":
        conn = http.client.HTTPConnection("127.0.0.1", port)
        headers = {"Content-Type": "application/x-protobuf"}

        def send() -> None:
            conn.request("POST", "/v1/traces", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200

    else:
        request = ExportTraceServiceRequest.FromString(body)
        stub = trace_service_pb2_grpc.TraceServiceStub(  # type: ignore[no-untyped-call]
            grpc.insecure_channel(f"127.0.0.1:{port}")
        )

        def send() -> None:
            stub.Export(request)

    send()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        send()
        n += 1
    out.put(n / (time.perf_counter() - start))


def clients(kind: str, port: int, body: bytes, count: int, seconds: float) -> float:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    procs = [context.Process(target=_client, args=(kind, port, body, seconds, out)) for _ in range(count)]
    for proc in procs:
        proc.start()
    total = sum(out.get(timeout=seconds + 60) for _ in procs)
    for proc in procs:
        proc.join()
    return float(total)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    body = payload()
    print(f"payload: 100 spans, {len(body)} bytes")
    results: dict[str, float] = {}
    results["ParseFromString alone"] = rate(
        lambda: ExportTraceServiceRequest().ParseFromString(body), args.seconds
    )
    results["parse_request (parse + validate)"] = rate(
        lambda: parse_request("traces", body, "application/x-protobuf") and None, args.seconds
    )
    receiver = Receiver(_Nothing(), load_config(env={}, http_port=0, grpc_port=0), logger=_Quiet())
    receiver.start()
    try:
        for n in (1, 2):
            results[f"OTLP/HTTP, {n} client process(es)"] = clients(
                "http", receiver.http_port, body, n, args.seconds
            )
        for n in (1, 2):
            results[f"OTLP/gRPC, {n} client process(es)"] = clients(
                "grpc", receiver.grpc_port, body, n, args.seconds
            )
    finally:
        receiver.stop()
    results.update(served(body, args.seconds))
    base = results["ParseFromString alone"]
    for name, value in results.items():
        print(f"{name:36s} {value:10.0f} req/s  {value / base:6.2f}x")


def served(body: bytes, seconds: float) -> dict[str, float]:
    """The same requests through DriftService: accepted (journalled) per second, then drained."""
    import tempfile

    from driftwatch._service import DriftService

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(env={}, http_port=0, grpc_port=0, state=f"{tmp}/state.db", console=False)
        service = DriftService(config)
        service.start(wait=True)
        receiver = Receiver(service, config, logger=_Quiet())
        receiver.start()
        try:
            started = time.perf_counter()
            out["serve: accepted (journalled), HTTP, 2 clients"] = clients(
                "http", receiver.http_port, body, 2, seconds
            )
            accepted = service.durable.store.last_seq()
            service.wait_processed(600)
            elapsed = time.perf_counter() - started
            out["serve: through detection (accept + drain)"] = accepted / elapsed
            spans = service.monitor.stats.processed
            print(f"serve: {accepted} requests, {spans} outcomes through detection in {elapsed:.1f} s")
        finally:
            receiver.stop()
            service.stop()
    return out


class _Quiet:
    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None


if __name__ == "__main__":
    main()
