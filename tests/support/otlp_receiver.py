"""A plain OTLP/HTTP receiver for tests: decodes real protobuf with opentelemetry-proto."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

KINDS: dict[str, Any] = {
    "/v1/traces": ExportTraceServiceRequest,
    "/v1/logs": ExportLogsServiceRequest,
    "/v1/metrics": ExportMetricsServiceRequest,
}


class OTLPReceiver:
    """Collects decoded export requests by path; answers 200 with an empty protobuf response."""

    def __init__(self) -> None:
        self.received: dict[str, list[Any]] = {path: [] for path in KINDS}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                kind = KINDS.get(self.path)
                if kind is None or self.headers.get("content-type") != "application/x-protobuf":
                    self.send_response(415 if kind else 404)
                    self.end_headers()
                    return
                message = kind()
                message.ParseFromString(body)
                receiver.received[self.path].append(message)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> OTLPReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def span_names(self) -> set[str]:
        return {
            span.name
            for req in self.received["/v1/traces"]
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        }

    def log_records(self) -> list[Any]:
        return [
            rec
            for req in self.received["/v1/logs"]
            for rl in req.resource_logs
            for sl in rl.scope_logs
            for rec in sl.log_records
        ]

    def metric_names(self) -> set[str]:
        return {
            m.name
            for req in self.received["/v1/metrics"]
            for rm in req.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }
