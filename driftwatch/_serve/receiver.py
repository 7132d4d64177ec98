"""OTLP receiver transport: OTLP/HTTP (protobuf and JSON) and OTLP/gRPC for traces, logs and metrics.

The receiver parses and validates each export request, then hands it to a :class:`Handler` (the
service's decoder and journal). Responses follow the OTLP specification: full or partial success,
400 (gRPC ``INVALID_ARGUMENT``) for malformed payloads, 401 without the configured bearer token, 413
for bodies over the limit (after decompression too), 415 for unknown content types or encodings, 503
with ``Retry-After`` (gRPC ``UNAVAILABLE`` with ``RetryInfo``) when the handler is saturated, so that
exporters retry.

Every queue is bounded: HTTP connections wait in a fixed-size queue for a fixed pool of workers (a
full queue is answered 503 at once), gRPC limits concurrent RPCs. Everything refused or dropped is
counted in :class:`ReceiverStats` (``GET /stats``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import hmac
import http.server
import ipaddress
import json
import math
import queue
import select
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TextIO

import grpc
import structlog
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from driftwatch._config import Config, ConfigError

__all__ = [
    "Accepted",
    "Handler",
    "Parsed",
    "Receiver",
    "ReceiverStats",
    "RequestError",
    "Saturated",
    "check_bind",
    "parse_request",
]

Signal = Literal["traces", "logs", "metrics"]
SIGNALS: tuple[Signal, ...] = ("traces", "logs", "metrics")

PATHS: dict[str, Signal] = {"/v1/traces": "traces", "/v1/logs": "logs", "/v1/metrics": "metrics"}

_REQUESTS: dict[Signal, type[Message]] = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
}
_GRPC_SERVICES: dict[Signal, str] = {
    "traces": trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name,
    "logs": logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name,
    "metrics": metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name,
}
_RESPONSES: dict[Signal, type[Message]] = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
}
_REJECTED_FIELD: dict[Signal, str] = {
    "traces": "rejected_spans",
    "logs": "rejected_log_records",
    "metrics": "rejected_data_points",
}
_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"
# OTLP/JSON writes these byte fields as hex, not base64 as the proto3 JSON mapping would; the value is
# the length in bytes.
_HEX_IDS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}
_BODY_DEADLINE_S = 30.0  # a request body must arrive within this, however slowly it trickles
_GRPC_CODES = {408: 4, 400: 3, 401: 16, 404: 5, 405: 12, 413: 8, 415: 3, 500: 13, 503: 14}  # google.rpc.Code


@dataclass(frozen=True, slots=True)
class Accepted:
    """What the handler took: ``rejected`` items (spans, log records, data points) and why.

    Becomes the OTLP ``partial_success`` when ``rejected`` > 0 or ``message`` is set (a warning).
    """

    rejected: int = 0
    message: str = ""


class Saturated(Exception):
    """Raised by a handler that cannot take more now: answered 503 + Retry-After / gRPC UNAVAILABLE."""

    def __init__(self, message: str = "driftwatch is saturated; retry later", retry_after: float = 1.0):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class Handler(Protocol):
    """Where parsed requests go. ``handle`` is called from several threads at once.

    A handler may also have ``stats() -> Mapping[str, object]`` (JSON-able, e.g. the number of
    streams); ``GET /stats`` then shows it under ``"handler"``.
    """

    def handle(self, signal: Signal, request: Message) -> Accepted: ...

    def ready(self) -> bool: ...


class RequestError(Exception):
    """A request refused before it reached the handler: HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Parsed:
    """A validated export request with its item count and the attributes dropped by the limit."""

    request: Message
    items: int
    dropped_attributes: int
    decoded_bytes: int


# -- parse and validate ------------------------------------------------------------------------------


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _gunzip(data: bytes, limit: int) -> bytes:
    """The decompressed body (several gzip members allowed), refused as soon as it passes ``limit``."""
    out: list[bytes] = []
    total = 0
    while data:
        inflater = zlib.decompressobj(wbits=31)  # gzip framing only
        try:
            # max_length bounds memory: a gzip bomb stops here, at limit + 1 bytes.
            chunk = inflater.decompress(data, limit + 1 - total)
        except zlib.error as exc:
            raise RequestError(400, f"gzip body: not valid gzip data ({exc})") from None
        total += len(chunk)
        if total > limit:
            raise RequestError(
                413, f"body: more than {limit} bytes after gzip decompression (setting 'max_body_bytes')"
            )
        if not inflater.eof:
            raise RequestError(400, "gzip body: truncated gzip data")
        out.append(chunk)
        data = inflater.unused_data
    return b"".join(out)


def _hex_ids(root: dict[str, Any]) -> None:
    """Rewrites OTLP/JSON hex ids (traceId, spanId, parentSpanId) as base64 for json_format, in place."""
    # Iterative walk (no recursion limit to hit); each entry keeps its parent to name the path on error.
    stack: list[tuple[Any, Any, str | int]] = [(root, None, "")]
    while stack:
        entry = stack.pop()
        node = entry[0]
        if isinstance(node, dict):
            for key, value in node.items():
                size = _HEX_IDS.get(key)
                if size is not None and isinstance(value, str):
                    try:
                        raw = binascii.unhexlify(value)
                    except (binascii.Error, ValueError):
                        raw = None
                    if raw is None or len(raw) not in (0, size):
                        raise RequestError(
                            400,
                            f"JSON body: {_path(entry)}{key}: expected {2 * size} hex digits (OTLP/JSON ids "
                            f"are hex, not base64), got {value[:80]!r}",
                        )
                    node[key] = base64.b64encode(raw).decode("ascii")
                elif isinstance(value, dict | list):
                    stack.append((value, entry, key))
        elif isinstance(node, list):
            stack.extend((value, entry, i) for i, value in enumerate(node) if isinstance(value, dict | list))


def _path(entry: tuple[Any, Any, str | int]) -> str:
    parts: list[str] = []
    while entry[1] is not None:
        key = entry[2]
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
        entry = entry[1]
    text = "".join(reversed(parts)).lstrip(".")
    return f"{text}." if text else ""


def _limit_attributes(attributes: Any, limit: int, holder: Any = None) -> int:
    extra = len(attributes) - limit
    if extra <= 0:
        return 0
    del attributes[limit:]
    if holder is not None:
        holder.dropped_attributes_count += extra
    return extra


def limit_items(signal: Signal, request: Any, max_attributes: int) -> tuple[int, int]:
    """(items, attributes dropped): counts spans / log records / data points and enforces the
    attributes-per-item limit in place (the rest of the item is kept, as the OTel SDK's limits do)."""
    items = dropped = 0
    if signal == "traces":
        for rs in request.resource_spans:
            dropped += _limit_attributes(rs.resource.attributes, max_attributes, rs.resource)
            for ss in rs.scope_spans:
                spans = ss.spans
                items += len(spans)
                for span in spans:  # the hot loop: each field access costs, so test before iterating
                    if len(span.attributes) > max_attributes:
                        dropped += _limit_attributes(span.attributes, max_attributes, span)
                    events = span.events
                    if events:
                        for event in events:
                            dropped += _limit_attributes(event.attributes, max_attributes, event)
                    links = span.links
                    if links:
                        for link in links:
                            dropped += _limit_attributes(link.attributes, max_attributes, link)
    elif signal == "logs":
        for rl in request.resource_logs:
            dropped += _limit_attributes(rl.resource.attributes, max_attributes, rl.resource)
            for sl in rl.scope_logs:
                items += len(sl.log_records)
                for record in sl.log_records:
                    if len(record.attributes) > max_attributes:
                        dropped += _limit_attributes(record.attributes, max_attributes, record)
    else:
        for rm in request.resource_metrics:
            dropped += _limit_attributes(rm.resource.attributes, max_attributes, rm.resource)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue
                    points = getattr(metric, kind).data_points
                    items += len(points)
                    for point in points:
                        dropped += _limit_attributes(point.attributes, max_attributes)
    return items, dropped


def parse_request(
    signal: Signal,
    body: bytes,
    content_type: str,
    content_encoding: str = "",
    *,
    max_bytes: int = 20 * 1024 * 1024,
    max_attributes: int = 128,
) -> Parsed:
    """Decompress, decode and validate one OTLP/HTTP body; the HTTP server's own path.

    Raises :class:`RequestError` with the HTTP status (400, 413, 415) and a message for the client.
    """
    media = _media_type(content_type)
    if media not in (_PROTOBUF, _JSON):
        raise RequestError(
            415,
            f"Content-Type {content_type[:100]!r} is not supported; use {_PROTOBUF} or {_JSON}",
        )
    if len(body) > max_bytes:
        raise RequestError(413, f"body: more than {max_bytes} bytes (setting 'max_body_bytes')")
    encoding = content_encoding.strip().lower()
    if encoding == "gzip":
        body = _gunzip(body, max_bytes)
    elif encoding not in ("", "identity"):
        raise RequestError(
            415, f"Content-Encoding {content_encoding[:100]!r} is not supported; use gzip or none"
        )
    message = _REQUESTS[signal]()
    if media == _PROTOBUF:
        try:
            message.ParseFromString(body)
        except Exception as exc:  # DecodeError and friends: every failure here is the payload's fault.
            raise RequestError(
                400, f"protobuf body: cannot decode a {type(message).__name__}: {exc}"
            ) from None
    else:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise RequestError(400, f"JSON body: not valid JSON: {str(exc)[:200]}") from None
        if not isinstance(data, dict):
            first = {"traces": "resourceSpans", "logs": "resourceLogs", "metrics": "resourceMetrics"}[signal]
            raise RequestError(
                400, f'JSON body: expected an object such as {{"{first}": [...]}}, got {type(data).__name__}'
            )
        _hex_ids(data)
        try:
            json_format.ParseDict(data, message, ignore_unknown_fields=True)
        except Exception as exc:  # ParseError, and TypeError/ValueError from odd values: the payload's fault.
            raise RequestError(400, f"JSON body: {str(exc)[:300]}") from None
    try:
        items, dropped = limit_items(signal, message, max_attributes)
    except RecursionError:  # pragma: no cover - protobuf's own depth limit (100) comes first
        raise RequestError(400, "body: nested too deeply") from None
    return Parsed(message, items, dropped, len(body))


def encode_response(signal: Signal, accepted: Accepted, json_body: bool) -> bytes:
    """The Export<signal>ServiceResponse, with partial_success set only when there is something to say."""
    response: Any = _RESPONSES[signal]()
    if accepted.rejected or accepted.message:
        setattr(response.partial_success, _REJECTED_FIELD[signal], accepted.rejected)
        response.partial_success.error_message = accepted.message
    if json_body:
        return json.dumps(json_format.MessageToDict(response), separators=(",", ":")).encode()
    data: bytes = response.SerializeToString()
    return data


def encode_status(status: int, message: str, json_body: bool) -> bytes:
    """A google.rpc.Status body, as OTLP/HTTP wants for every 4xx and 5xx."""
    body = status_pb2.Status(code=_GRPC_CODES.get(status, 2), message=message)
    if json_body:
        return json.dumps(json_format.MessageToDict(body), separators=(",", ":")).encode()
    data: bytes = body.SerializeToString()
    return data


# -- stats and logs ----------------------------------------------------------------------------------


class ReceiverStats:
    """Thread-safe self-metrics; :meth:`snapshot` is the ``GET /stats`` body."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.received: Counter[str] = Counter()  # items accepted by the handler, by signal
        self.rejected: Counter[str] = Counter()  # items the handler rejected (partial success), by signal
        self.requests: Counter[tuple[str, str]] = Counter()  # (transport, status)
        self.dropped: Counter[str] = Counter()  # why whole requests or parts were dropped
        self.bytes: Counter[str] = Counter()  # wire, decoded

    def count(
        self,
        transport: str,
        status: str,
        signal: str | None = None,
        items: int = 0,
        rejected: int = 0,
        wire: int = 0,
        decoded: int = 0,
        dropped: Mapping[str, int] | None = None,
    ) -> None:
        with self._lock:
            self.requests[(transport, status)] += 1
            if signal is not None:
                self.received[signal] += items - rejected
                self.rejected[signal] += rejected
            self.bytes["wire"] += wire
            self.bytes["decoded"] += decoded
            for key, value in (dropped or {}).items():
                if value:
                    self.dropped[key] += value

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            requests: dict[str, dict[str, int]] = {}
            for (transport, status), n in sorted(self.requests.items()):
                requests.setdefault(transport, {})[status] = n
            return {
                "uptime_s": round(time.time() - self.started, 3),
                "received": {s: self.received[s] for s in SIGNALS},
                "rejected": {s: self.rejected[s] for s in SIGNALS},
                "requests": requests,
                "dropped": dict(sorted(self.dropped.items())),
                "bytes": {"wire": self.bytes["wire"], "decoded": self.bytes["decoded"]},
            }


class _Warnings:
    """Logs at most ``per_second`` warnings a second, so a flood of bad requests cannot flood the logs;
    the next warning logged says how many were suppressed (they are all counted in the stats)."""

    def __init__(self, logger: Any, per_second: int = 10) -> None:
        self._logger = logger
        self._per_second = per_second
        self._lock = threading.Lock()
        self._second = 0
        self._used = 0
        self._suppressed = 0

    def warning(self, event: str, **fields: Any) -> None:
        with self._lock:
            now = int(time.monotonic())
            if now != self._second:
                self._second, self._used = now, 0
            if self._used >= self._per_second:
                self._suppressed += 1
                return
            self._used += 1
            suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            fields["suppressed"] = suppressed
        self._logger.warning(event, **fields)


def default_logger(stream: TextIO | None = None) -> Any:
    """JSON lines on stderr: level, UTC timestamp, event and fields."""
    return structlog.wrap_logger(
        structlog.PrintLogger(stream or sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
    )


# -- the receiver ------------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything, so it is not treated as loopback


def check_bind(config: Config) -> None:
    """Refuses settings that would expose the receiver: a non-loopback host without a token, half TLS."""
    if not _is_loopback(config.host) and not config.token:
        raise ConfigError(
            f"setting 'host' is {config.host!r}, which is not a loopback address: set 'token' (config key "
            "'token' or environment variable DRIFTWATCH_TOKEN) so that only clients sending "
            "'Authorization: Bearer <token>' are served, or keep host 127.0.0.1"
        )
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ConfigError(
            "settings 'tls_cert' and 'tls_key' go together: set both (PEM certificate chain and its "
            f"private key) or neither; got tls_cert={config.tls_cert!r}, tls_key={config.tls_key!r}"
        )


def _read_file(path: str, setting: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"setting '{setting}': cannot read {path}: {exc.strerror}") from None


Route = Callable[[], tuple[int, str, bytes]]
QueryRoute = Callable[[dict[str, list[str]]], tuple[int, str, bytes, list[tuple[str, str]]]]


class Receiver:
    """OTLP/HTTP and OTLP/gRPC servers in front of one handler.

    >>> receiver = Receiver(handler, load_config(http_port=0, grpc_port=0))  # doctest: +SKIP
    >>> receiver.start(); receiver.http_port, receiver.grpc_port            # doctest: +SKIP
    """

    def __init__(self, handler: Handler, config: Config, logger: Any = None) -> None:
        check_bind(config)
        self.handler = handler
        self.config = config
        self.stats = ReceiverStats()
        self.logger = logger if logger is not None else default_logger()
        self.warnings = _Warnings(self.logger)
        self._token = config.token.encode() if config.token else None
        #: Extra GET endpoints: path -> () -> (status, content type, body); the hook for ``/metrics``.
        self.routes: dict[str, Route] = {}
        #: GET endpoints that read the query string: path -> (query) -> (status, type, body, headers).
        self.query_routes: dict[str, QueryRoute] = {}
        self._http: _PoolServer | None = None
        self._grpc: grpc.Server | None = None
        self.http_port = 0
        self.grpc_port = 0

    # -- shared checks

    def authorized(self, value: str | bytes | None) -> bool:
        """True when no token is set or ``value`` is ``Bearer <token>`` (the scheme in any case, as
        RFC 7235 says; the token compared in constant time)."""
        if self._token is None:
            return True
        if value is None:
            return False
        raw = value.encode("utf-8", "replace") if isinstance(value, str) else value
        scheme, _, credentials = raw.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._token)

    def ready(self) -> bool:
        try:
            return bool(self.handler.ready())
        except Exception as exc:  # a handler bug must not break the probe: report not ready
            self.warnings.warning("driftwatch.receiver.ready_failed", error=repr(exc))
            return False

    def stats_body(self) -> dict[str, Any]:
        body = self.stats.snapshot()
        http = self._http
        body["queue"] = {
            "http_depth": http.pending() if http else 0,
            "http_capacity": self.config.max_pending,
            "http_busy_workers": http.busy if http else 0,
            "workers": self.config.workers,
        }
        body["ready"] = self.ready()
        extra = getattr(self.handler, "stats", None)
        if callable(extra):
            try:
                body["handler"] = dict(extra())
            except Exception as exc:  # the handler's stats are optional; never fail /stats for them
                body["handler"] = {"error": repr(exc)}
        return body

    def dispatch(self, signal: Signal, request: Message) -> Accepted:
        """The handler's answer; Saturated propagates, any other handler error becomes a 500."""
        accepted = self.handler.handle(signal, request)
        if not isinstance(accepted, Accepted):
            raise TypeError(f"handler returned {accepted!r}, not Accepted")
        return accepted

    # -- lifecycle

    def start(self) -> None:
        """Binds both servers (port 0 picks a free port; see ``http_port`` / ``grpc_port``)."""
        config = self.config
        ssl_context = None
        if config.tls_cert and config.tls_key:
            _read_file(config.tls_cert, "tls_cert")
            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                ssl_context.load_cert_chain(config.tls_cert, config.tls_key)
            except (ssl.SSLError, OSError) as exc:
                raise ConfigError(
                    f"settings 'tls_cert' ({config.tls_cert}) and 'tls_key' ({config.tls_key}): "
                    f"cannot load the certificate and key as PEM: {exc}"
                ) from None
        elif config.token and not _is_loopback(config.host):
            self.logger.warning(
                "driftwatch.receiver.plaintext_token",
                host=config.host,
                hint="the bearer token travels in clear text; set tls_cert and tls_key",
            )
        try:
            self._http = _PoolServer((config.host, config.http_port), self, ssl_context)
        except OSError as exc:
            raise ConfigError(
                f"setting 'http_port': cannot listen on {config.host}:{config.http_port}: {exc.strerror}"
            ) from None
        self.http_port = self._http.server_address[1]
        self._http.start()
        try:
            self._start_grpc()
        except BaseException:
            self._http.stop()
            raise
        self.logger.info(
            "driftwatch.receiver.listening",
            host=config.host,
            http_port=self.http_port,
            grpc_port=self.grpc_port,
            tls=ssl_context is not None,
            token=self._token is not None,
        )

    def _start_grpc(self) -> None:
        config = self.config
        server = grpc.server(
            ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="driftwatch-grpc"),
            options=[
                ("grpc.max_receive_message_length", config.max_body_bytes),
                ("grpc.max_send_message_length", 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ],
            # Bounded like the HTTP side: RPCs beyond this are refused by gRPC (RESOURCE_EXHAUSTED).
            maximum_concurrent_rpcs=config.workers + config.max_pending,
        )
        # Registered by hand rather than with the generated add_*Servicer_to_server: those decode the
        # request inside gRPC, which answers a payload that does not decode INTERNAL (as for a crash).
        # The servicer gets the raw bytes and answers INVALID_ARGUMENT, as the OTLP specification asks.
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    _GRPC_SERVICES[signal],
                    {
                        "Export": grpc.unary_unary_rpc_method_handler(
                            _Servicer(self, signal).Export,
                            request_deserializer=None,
                            response_serializer=_RESPONSES[signal].SerializeToString,
                        )
                    },
                )
                for signal in SIGNALS
            ]
        )
        address = (
            f"[{config.host}]:{config.grpc_port}"
            if ":" in config.host
            else f"{config.host}:{config.grpc_port}"
        )
        if config.grpc_port:
            # Asked first with a plain socket: gRPC's C core would print its own unstructured error
            # line to stderr before ours (and its message says less: no strerror, no way out).
            _check_port_free(config.host, config.grpc_port, "grpc_port")
        try:
            if config.tls_cert and config.tls_key:
                credentials = grpc.ssl_server_credentials(
                    [(_read_file(config.tls_key, "tls_key"), _read_file(config.tls_cert, "tls_cert"))]
                )
                port = server.add_secure_port(address, credentials)
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as exc:
            port, detail = 0, f": {exc}"
        else:
            detail = ""
        if not port:
            raise ConfigError(f"setting 'grpc_port': cannot listen on {address}{detail}")
        self.grpc_port = port
        server.start()
        self._grpc = server

    def stop(self, grace: float = 2.0) -> None:
        """Stops accepting, lets requests in flight finish for up to ``grace`` seconds."""
        if self._grpc is not None:
            self._grpc.stop(grace).wait(grace + 1)
            self._grpc = None
        if self._http is not None:
            self._http.stop()
            self._http = None
        self.logger.info("driftwatch.receiver.stopped", **self.stats.snapshot()["requests"])

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check_port_free(host: str, port: int, setting: str) -> None:
    """Raise ConfigError naming ``setting`` when ``host:port`` cannot be bound (in use, no such address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
            probe.bind((host, port))
    except OSError as exc:
        flag = setting.replace("_", "-")
        raise ConfigError(
            f"setting '{setting}': cannot listen on {host}:{port}: {exc.strerror or exc}; another process "
            f"holds it (another driftwatch serve, an OpenTelemetry Collector?): stop it or choose a free "
            f"port with --{flag} or '{setting}' in the config (0 picks any free port)"
        ) from None


# -- HTTP --------------------------------------------------------------------------------------------


class _PoolServer(http.server.HTTPServer):
    """HTTPServer with a fixed worker pool and a bounded connection queue (ThreadingHTTPServer would
    start one thread per connection, without bound). A full queue is answered 503 at once."""

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], receiver: Receiver, ssl_context: ssl.SSLContext | None
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.receiver = receiver
        self.ssl_context = ssl_context
        self.busy = 0
        self._busy_lock = threading.Lock()
        self._active: set[socket.socket] = set()
        self.stopping = False
        self._queue: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue(
            maxsize=receiver.config.max_pending
        )
        super().__init__(address, _HttpHandler)
        self._threads = [
            threading.Thread(target=self._work, name=f"driftwatch-http-{i}", daemon=True)
            for i in range(receiver.config.workers)
        ]
        self._serve = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="driftwatch-http", daemon=True
        )
        # Refused connections wait here for one thread that answers them 503; beyond that, closed.
        self._refusals: queue.Queue[socket.socket | None] = queue.Queue(maxsize=16)
        refuser = threading.Thread(target=self._refuse, name="driftwatch-http-refuse", daemon=True)
        self._threads.append(refuser)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self._serve.start()

    def stop(self) -> None:
        self.stopping = True
        self.shutdown()
        with self._busy_lock:
            active = list(self._active)
        for sock in active:
            # Idle keep-alive connections would hold their worker until the read timeout: cut them.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(queue.Full):  # the refuser is busy with those; it is a daemon thread
            self._refusals.put(None, timeout=1)
        for _ in self._threads[:-1]:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(5)
        # Connections still waiting were never served: close them.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        self.server_close()

    def pending(self) -> int:
        return self._queue.qsize()

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            self._queue.put_nowait((request, client_address))
            return
        except queue.Full:
            pass
        self.receiver.stats.count("http", "503", dropped={"connections": 1})
        self.receiver.warnings.warning(
            "driftwatch.receiver.saturated",
            transport="http",
            client=str(client_address[0]),
            reason=f"{self.receiver.config.max_pending} connections waiting (setting 'max_pending')",
        )
        if self.ssl_context is None:  # a TLS client would need a handshake first: just close
            try:
                self._refusals.put_nowait(request)
                return
            except queue.Full:
                pass
        self.shutdown_request(request)

    def _refuse(self) -> None:
        """Answers refused connections 503 after reading their request head, so that the client reads
        the 503 (closing at once would reset the connection before it has sent its request)."""
        while (sock := self._refusals.get()) is not None:
            try:
                sock.settimeout(0.5)
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536 and (data := sock.recv(65536)):
                    head += data
                sock.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
                sock.shutdown(socket.SHUT_WR)
                drained = 0
                while drained < 1 << 20 and (data := sock.recv(65536)):
                    drained += len(data)
            except OSError:
                pass
            finally:
                sock.close()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            sock, address = item
            with self._busy_lock:
                self.busy += 1
                self._active.add(sock)
            try:
                if self.ssl_context is not None:
                    # The handshake happens here, in a worker, so a slow client cannot stall accept().
                    sock.settimeout(_HttpHandler.timeout)
                    sock = self.ssl_context.wrap_socket(sock, server_side=True)
                self.finish_request(sock, address)
            except Exception as exc:
                self.receiver.warnings.warning(
                    "driftwatch.receiver.connection_error", client=str(address[0]), error=repr(exc)[:200]
                )
            finally:
                self.shutdown_request(sock)
                with self._busy_lock:
                    self.busy -= 1
                    self._active.discard(item[0])

    def handle_error(self, request: Any, client_address: Any) -> None:  # pragma: no cover - logged in _work
        pass


class _HttpHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "driftwatch"
    sys_version = ""
    timeout = 10  # seconds a client may stay silent mid-request or idle on keep-alive
    server: _PoolServer
    _deadline = 0.0

    def log_message(self, format: str, *args: Any) -> None:
        pass  # structured logs instead (see Receiver.logger)

    def version_string(self) -> str:
        return self.server_version

    def handle(self) -> None:
        # BaseHTTPRequestHandler.handle, except that an idle keep-alive connection gives its worker up
        # as soon as other connections wait for one (exporters keep connections open between batches,
        # and a fixed pool must not be held by idle ones). Clients do not pipeline OTLP requests.
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection and self._next_request():
            self.handle_one_request()

    def _next_request(self) -> bool:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.server.pending() or self.server.stopping:
                return False
            if isinstance(self.connection, ssl.SSLSocket) and self.connection.pending():
                return True  # already decrypted, so select() would not see it
            readable, _, _ = select.select([self.connection], [], [], 0.2)
            if readable:
                return True
        return False

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Called by http.server itself for malformed request lines and headers.
        self.close_connection = True
        self._reply(code, encode_status(code, message or explain or "bad request", False), _PROTOBUF)
        self.server.receiver.stats.count("http", str(code))

    def _reply(
        self, status: int, body: bytes, content_type: str, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        if self.server.pending():
            # Others are waiting for a worker: this keep-alive connection gives its worker up.
            self.close_connection = True
        head = [
            f"{self.protocol_version} {status} {self.responses.get(status, ('',))[0]}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers),
        ]
        if self.close_connection:
            head.append("Connection: close")
        # Head and body in one write: two small writes meet the client's delayed ACK (40 ms each).
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(data if self.command == "HEAD" else data + body)

    def _refuse(
        self, status: int, message: str, json_body: bool, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        self._reply(
            status, encode_status(status, message, json_body), _JSON if json_body else _PROTOBUF, headers
        )

    def _read_body(self, limit: int) -> bytes:
        """The raw body, Content-Length or chunked, refused (413) past ``limit`` bytes before reading it."""
        encoding = (self.headers.get("Transfer-Encoding") or "").strip().lower()
        if encoding:
            if encoding != "chunked":
                self.close_connection = True
                raise RequestError(400, f"Transfer-Encoding {encoding[:50]!r} is not supported; use chunked")
            return self._read_chunked(limit)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise RequestError(400, f"Content-Length {length_text[:50]!r} is not a byte count") from None
        if length > limit:
            self.close_connection = True  # the unread body would be taken for the next request
            self._discard(length, 4 * limit)
            raise RequestError(413, f"body: {length} bytes is more than {limit} (setting 'max_body_bytes')")
        return self._read_exact(length)

    def _read_exact(self, length: int) -> bytes:
        """``length`` bytes, read as they arrive: a client trickling its body is cut off at the request
        deadline (each read also has the socket timeout), so it cannot hold a worker for long."""
        parts: list[bytes] = []
        left = length
        while left > 0:
            if time.monotonic() > self._deadline:
                self.close_connection = True
                raise RequestError(408, f"body: not received within {_BODY_DEADLINE_S:.0f} s")
            piece = self.rfile.read1(min(left, 1 << 20))
            if not piece:
                self.close_connection = True
                raise RequestError(400, f"body: connection closed after {length - left} of {length} bytes")
            parts.append(piece)
            left -= len(piece)
        return b"".join(parts)

    def _discard(self, length: int, most: int) -> None:
        """Reads and drops a body we refuse (in small pieces: memory stays bounded), so that the client,
        still sending, reads our answer rather than a reset connection, which it would retry."""
        if length > most:
            return
        left = length
        while left > 0 and time.monotonic() < self._deadline:
            piece = self.rfile.read1(min(left, 65536))
            if not piece:
                return
            left -= len(piece)

    def _discard_unread(self) -> None:
        with contextlib.suppress(ValueError, TypeError, OSError):
            self._discard(
                int(self.headers.get("Content-Length") or 0), self.server.receiver.config.max_body_bytes
            )

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        self.close_connection = True  # until the last chunk is read cleanly
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size < 0 or not line.endswith(b"\n"):
                    raise ValueError
            except ValueError:
                raise RequestError(400, f"chunked body: bad chunk size line {line[:40]!r}") from None
            if size == 0:
                for _ in range(64):  # trailer fields, ignored
                    trailer = self.rfile.readline(8192)
                    if trailer in (b"\r\n", b"\n", b""):
                        break
                else:
                    raise RequestError(400, "chunked body: too many trailer lines")
                self.close_connection = False
                return b"".join(parts)
            total += size
            if total > limit:
                raise RequestError(413, f"body: more than {limit} bytes (setting 'max_body_bytes')")
            data = self._read_exact(size)
            if self.rfile.read(2) != b"\r\n":
                raise RequestError(400, "chunked body: truncated chunk")
            parts.append(data)

    def do_POST(self) -> None:
        self._deadline = time.monotonic() + _BODY_DEADLINE_S
        receiver = self.server.receiver
        stats = receiver.stats
        content_type = self.headers.get("Content-Type") or ""
        json_body = _media_type(content_type) == _JSON
        path = self.path.split("?", 1)[0]
        signal = PATHS.get(path)
        wire = 0
        try:
            if signal is None:
                self.close_connection = True
                self._discard_unread()
                raise RequestError(
                    404, f"path {path[:100]!r}: not found; use /v1/traces, /v1/logs or /v1/metrics"
                )
            if not receiver.authorized(self.headers.get("Authorization")):
                self.close_connection = True
                self._discard_unread()
                raise RequestError(401, "missing or wrong 'Authorization: Bearer <token>' header")
            body = self._read_body(receiver.config.max_body_bytes)
            wire = len(body)
            parsed = parse_request(
                signal,
                body,
                content_type,
                self.headers.get("Content-Encoding") or "",
                max_bytes=receiver.config.max_body_bytes,
                max_attributes=receiver.config.max_attributes,
            )
            accepted = receiver.dispatch(signal, parsed.request)
        except RequestError as exc:
            stats.count("http", str(exc.status), wire=wire)
            receiver.warnings.warning(
                "driftwatch.receiver.refused",
                transport="http",
                status=exc.status,
                path=path[:100],
                client=self.client_address[0],
                reason=exc.message,
            )
            headers = [("WWW-Authenticate", "Bearer")] if exc.status == 401 else []
            self._refuse(exc.status, exc.message, json_body, headers)
            return
        except Saturated as exc:
            stats.count("http", "503", wire=wire, dropped={"saturated": 1})
            receiver.warnings.warning("driftwatch.receiver.saturated", transport="http", reason=exc.message)
            retry = str(max(1, math.ceil(exc.retry_after)))
            self._refuse(503, exc.message, json_body, [("Retry-After", retry)])
            return
        except Exception as exc:  # a handler bug: answer, log, keep serving
            stats.count("http", "500", wire=wire, dropped={"handler_errors": 1})
            receiver.logger.error("driftwatch.receiver.handler_error", signal=signal, error=repr(exc)[:500])
            self._refuse(500, "internal error in the driftwatch handler", json_body)
            return
        message = accepted.message
        if parsed.dropped_attributes:
            note = (
                f"{parsed.dropped_attributes} attributes dropped: more than {receiver.config.max_attributes} "
                "on one item (setting 'max_attributes')"
            )
            message = f"{message}; {note}" if message else note
            receiver.warnings.warning("driftwatch.receiver.attributes_dropped", signal=signal, reason=note)
        stats.count(
            "http",
            "200",
            signal,
            items=parsed.items,
            rejected=accepted.rejected,
            wire=wire,
            decoded=parsed.decoded_bytes,
            dropped={"attributes": parsed.dropped_attributes},
        )
        body = encode_response(signal, Accepted(accepted.rejected, message), json_body)
        self._reply(200, body, _JSON if json_body else _PROTOBUF)

    def do_GET(self) -> None:
        receiver = self.server.receiver
        path, _, query = self.path.partition("?")
        headers: list[tuple[str, str]] = []
        if path == "/healthz":
            status, content_type, body = 200, "application/json", b'{"status":"ok"}'
        elif path == "/readyz":
            ready = receiver.ready()
            status = 200 if ready else 503
            content_type, body = "application/json", b'{"ready":true}' if ready else b'{"ready":false}'
        elif not receiver.authorized(self.headers.get("Authorization")):
            status, content_type, body = 401, "application/json", b'{"error":"missing or wrong bearer token"}'
        elif path == "/stats":
            status, content_type = 200, "application/json"
            body = json.dumps(receiver.stats_body(), separators=(",", ":")).encode()
        elif path in receiver.routes:
            try:
                status, content_type, body = receiver.routes[path]()
            except Exception as exc:
                receiver.logger.error("driftwatch.receiver.route_error", path=path, error=repr(exc)[:500])
                status, content_type, body = 500, "application/json", b'{"error":"route failed"}'
        elif path in receiver.query_routes:
            try:
                params = urllib.parse.parse_qs(query, keep_blank_values=True, max_num_fields=100)
            except ValueError as exc:  # more than max_num_fields
                params, error = {}, json.dumps({"error": f"query string: {exc}"}).encode()
            else:
                error = b""
            try:
                if error:
                    status, content_type, body = 400, "application/json", error
                else:
                    status, content_type, body, headers = receiver.query_routes[path](params)
            except Exception as exc:
                receiver.logger.error("driftwatch.receiver.route_error", path=path, error=repr(exc)[:500])
                status, content_type, body = 500, "application/json", b'{"error":"route failed"}'
        else:
            status, content_type = 404, "application/json"
            body = json.dumps({"error": f"not found: {path[:100]}"}).encode()
        self._reply(status, body, content_type, headers)

    do_HEAD = do_GET


# -- gRPC --------------------------------------------------------------------------------------------


class _Servicer:
    """The Export method of one OTLP gRPC service; it decodes the request bytes itself."""

    def __init__(self, receiver: Receiver, signal: Signal) -> None:
        self._receiver = receiver
        self._signal = signal

    def Export(self, payload: bytes, context: grpc.ServicerContext) -> Message:
        receiver, signal = self._receiver, self._signal
        stats = receiver.stats
        metadata = dict(context.invocation_metadata())
        if not receiver.authorized(metadata.get("authorization")):
            stats.count("grpc", "UNAUTHENTICATED")
            receiver.warnings.warning(
                "driftwatch.receiver.refused", transport="grpc", status="UNAUTHENTICATED", peer=context.peer()
            )
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong 'authorization: Bearer <token>'")
        wire = len(payload)
        request = _REQUESTS[signal]()
        try:
            request.ParseFromString(payload)
        except Exception as exc:  # DecodeError and friends: every failure here is the payload's fault.
            reason = f"protobuf payload: cannot decode a {type(request).__name__}: {str(exc)[:200]}"
            stats.count("grpc", "INVALID_ARGUMENT", wire=wire)
            receiver.warnings.warning(
                "driftwatch.receiver.refused",
                transport="grpc",
                status="INVALID_ARGUMENT",
                peer=context.peer(),
                reason=reason,
            )
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, reason)
        try:
            items, dropped = limit_items(signal, request, receiver.config.max_attributes)
            accepted = receiver.dispatch(signal, request)
        except Saturated as exc:
            stats.count("grpc", "UNAVAILABLE", wire=wire, dropped={"saturated": 1})
            receiver.warnings.warning("driftwatch.receiver.saturated", transport="grpc", reason=exc.message)
            delay = error_details_pb2.RetryInfo()
            delay.retry_delay.FromTimedelta(datetime.timedelta(seconds=exc.retry_after))
            # The OTel exporters read this key for the back-off (RetryInfo, as in the OTLP spec).
            context.set_trailing_metadata((("google.rpc.retryinfo-bin", delay.SerializeToString()),))
            context.abort(grpc.StatusCode.UNAVAILABLE, exc.message)
        except Exception as exc:
            stats.count("grpc", "INTERNAL", wire=wire, dropped={"handler_errors": 1})
            receiver.logger.error("driftwatch.receiver.handler_error", signal=signal, error=repr(exc)[:500])
            context.abort(grpc.StatusCode.INTERNAL, "internal error in the driftwatch handler")
        message = accepted.message
        if dropped:
            note = (
                f"{dropped} attributes dropped: more than {receiver.config.max_attributes} on one item "
                "(setting 'max_attributes')"
            )
            message = f"{message}; {note}" if message else note
            receiver.warnings.warning("driftwatch.receiver.attributes_dropped", signal=signal, reason=note)
        stats.count(
            "grpc",
            "OK",
            signal,
            items=items,
            rejected=accepted.rejected,
            wire=wire,
            decoded=wire,
            dropped={"attributes": dropped},
        )
        response: Any = _RESPONSES[signal]()
        if accepted.rejected or message:
            setattr(response.partial_success, _REJECTED_FIELD[signal], accepted.rejected)
            response.partial_success.error_message = message
        result: Message = response
        return result
