"""The answers of the real `serve` service (DriftService behind the Receiver) that docs/serve.md promises:
INVALID_ARGUMENT for a malformed gRPC payload, 503 + Retry-After / UNAVAILABLE + RetryInfo under backlog
(`max_backlog`) and while restoring state. Real sockets, the real grpc client, real OTLP protobuf."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from driftwatch import Alert, load_config
from driftwatch._outcome import Outcome
from driftwatch._serve.receiver import Receiver
from driftwatch._serve.service import DriftService
from driftwatch._serve.store import StateStore
from tests.driftwatch.serve.test_service import payloads, task_outcomes

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class HeldSink:
    """A sink whose outcome hook waits at a gate: holds the service's worker mid-journal (restore or
    detection) for as long as a test needs, so the answers under that condition are deterministic."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()

    def record_outcome(self, outcome: Outcome, stream: dict[str, str]) -> None:
        self.entered.set()
        self.gate.wait(30)

    def export(self, alert: Alert) -> None:
        pass

    def shutdown(self) -> None:
        self.gate.set()


class Serving:
    def __init__(self, service: DriftService, receiver: Receiver, sink: HeldSink) -> None:
        self.service = service
        self.receiver = receiver
        self.sink = sink

    def post(self, body: bytes, path: str = "/v1/traces") -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.receiver.http_port, timeout=10)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/x-protobuf"})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def get(self, path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.receiver.http_port, timeout=10)
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        finally:
            conn.close()

    def grpc_export(self, body: bytes) -> Any:
        """One Export RPC with ``body`` as the request bytes: the reply, or the grpc.RpcError."""
        with grpc.insecure_channel(f"127.0.0.1:{self.receiver.grpc_port}") as channel:
            export = channel.unary_unary(
                EXPORT,
                request_serializer=lambda b: b,
                response_deserializer=ExportTraceServiceResponse.FromString,
            )
            try:
                return export(body, timeout=10)
            except grpc.RpcError as exc:
                return exc


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[Any]:
    started: list[Serving] = []

    def start(start_service: bool = True, **settings: Any) -> Serving:
        config = load_config(
            None,
            env={},
            http_port=0,
            grpc_port=0,
            state=str(tmp_path / "state.db"),
            console=False,
            **settings,
        )
        sink = HeldSink()
        service = DriftService(config, [sink])
        receiver = Receiver(service, config)
        if start_service:
            service.start()
        receiver.start()
        started.append(Serving(service, receiver, sink))
        return started[-1]

    yield start
    for s in started:
        s.sink.gate.set()
        s.receiver.stop(grace=0.5)
        s.service.stop()


def bodies(n: int) -> list[bytes]:
    """``n`` distinct OTLP trace payloads of one task span each."""
    return payloads(task_outcomes(n, 0, 0.8, 0.8, seed=1), per_request=1)


def assert_unavailable(error: Any, words: str) -> None:
    assert isinstance(error, grpc.RpcError), error
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error  # type: ignore[attr-defined]
    assert words in error.details()  # type: ignore[attr-defined]
    trailers = dict(error.trailing_metadata())  # type: ignore[attr-defined]
    info = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    assert info.retry_delay.ToTimedelta().total_seconds() == 1.0


def assert_503(answer: tuple[int, dict[str, str], bytes], words: str) -> None:
    status, headers, data = answer
    assert (status, headers.get("retry-after")) == (503, "1"), answer
    reply = status_pb2.Status.FromString(data)
    assert reply.code == grpc.StatusCode.UNAVAILABLE.value[0] and words in reply.message


def test_malformed_grpc_payload_is_invalid_argument(serving: Any) -> None:
    """Bytes that are no ExportTraceServiceRequest: INVALID_ARGUMENT naming the decode failure (as
    docs/serve.md says), not INTERNAL (a crash); counted and logged as refused; the service goes on."""
    s = serving()
    s.sink.gate.set()  # nothing to hold here
    valid = bodies(1)[0]
    for garbage in (b"\xff\xff\xff\xff", valid[: len(valid) // 2]):
        error = s.grpc_export(garbage)
        assert isinstance(error, grpc.RpcError), error
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()  # type: ignore[attr-defined]
        assert "cannot decode a ExportTraceServiceRequest" in error.details()  # type: ignore[attr-defined]
    stats = s.receiver.stats.snapshot()
    assert stats["requests"]["grpc"] == {"INVALID_ARGUMENT": 2}
    assert "handler_errors" not in stats["dropped"]
    # The same payload over HTTP is the documented 400; a valid one is then accepted on both.
    assert s.post(valid[: len(valid) // 2])[0] == 400
    reply = s.grpc_export(valid)
    assert isinstance(reply, ExportTraceServiceResponse), reply
    assert s.service.wait_processed(10) and s.service.monitor.stats.processed == 1


def test_backlog_over_max_backlog_is_503_and_unavailable(serving: Any) -> None:
    """With `max_backlog` payloads journalled but not through detection, the real service answers
    HTTP 503 + Retry-After and gRPC UNAVAILABLE + RetryInfo; once detection catches up, 200 again."""
    s = serving(max_backlog=2)
    first, second, third, fourth = bodies(4)
    assert s.post(first)[0] == 200
    assert s.sink.entered.wait(10)  # the worker holds the first payload: backlog 1
    assert s.post(second)[0] == 200  # backlog 1 < 2: journalled, backlog 2
    answer = s.post(third)
    assert_503(answer, "2 payloads waiting for detection")
    assert_unavailable(s.grpc_export(third), "2 payloads waiting for detection")
    stats = s.receiver.stats.snapshot()
    assert (stats["requests"]["http"]["503"], stats["requests"]["grpc"]["UNAVAILABLE"]) == (1, 1)
    assert stats["dropped"]["saturated"] == 2
    s.sink.gate.set()
    assert s.service.wait_processed(10)
    assert s.post(third)[0] == 200
    assert isinstance(s.grpc_export(fourth), ExportTraceServiceResponse)
    assert s.service.wait_processed(10) and s.service.monitor.stats.processed == 4


def test_restoring_state_is_503_and_unavailable(serving: Any, tmp_path: Path) -> None:
    """While the service restores (here: replays a journal left by an earlier run, held mid-replay),
    /readyz is 503 and exports get HTTP 503 + Retry-After and gRPC UNAVAILABLE + RetryInfo; after the
    restore the same export is accepted."""
    earlier, retried = bodies(2)
    store = StateStore(tmp_path / "state.db")  # what an earlier `serve` journalled and acknowledged
    store.append("traces", earlier)
    store.close()
    s = serving()
    assert s.sink.entered.wait(10)  # the restore is replaying the journal
    assert s.get("/readyz") == 503
    assert_503(s.post(retried), "restoring its state")
    assert_unavailable(s.grpc_export(retried), "restoring its state")
    s.sink.gate.set()
    assert s.service.wait_processed(10) and s.get("/readyz") == 200
    assert s.service.stats()["durable"]["replayed"] == 1
    assert s.post(retried)[0] == 200
    assert s.service.wait_processed(10) and s.service.monitor.stats.processed == 2
