"""No content leaves driftwatch: a canary in every place content can be, checked in everything out.

In process: ``driftwatch.watch()`` on the real anthropic SDK against a fake Messages API whose
prompts, system prompt, tool definitions, tool results, replies, tool inputs and error messages
each carry a unique canary; every exported byte (the OTLP encoding of spans with their events,
status, links and resource; log records; metric points), the alert JSON, the Prometheus text, the
console and the log must be free of it.

Through ``driftwatch serve``: OTLP traces, logs and metrics with canaries in content attributes
(named as stream labels), span events, status descriptions, links, resources, log bodies and
metric exemplars; the alerts, ``/metrics``, ``/stats``, the state file (and its WAL), the service's
log and what it exports over OTLP must be free of it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode

import driftwatch
from driftwatch import ConsoleSink, InMemorySink, JsonlSink
from driftwatch._alerting.otel import OtelAlertSink, Telemetry
from driftwatch._alerting.prometheus import PrometheusSink
from tests.collectors.test_otlp_upstream import capture_openinference
from tests.conftest import sse_events
from tests.driftwatch.serve.test_service import T0, free_port, task_outcomes
from tests.support.otlp_receiver import OTLPReceiver

#: Every canary starts with this; each place content can be names its own suffix.
MARK = "qz7Canary"
PROMPT, SYSTEM, TOOL_DESC, TOOL_OUT = (f"{MARK}Prompt", f"{MARK}System", f"{MARK}ToolDesc", f"{MARK}ToolOut")
REPLY, TOOL_IN, ERROR_TEXT = f"{MARK}Reply", f"{MARK}ToolIn", f"{MARK}ErrorText"
ROOT = Path(__file__).resolve().parents[2]


def leaks(where: str, data: bytes | str) -> list[str]:
    """``where`` for each canary found in ``data`` (empty when clean)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    found: list[str] = []
    at = text.find(MARK)
    while at >= 0 and len(found) < 5:
        found.append(f"{where}: …{text[max(0, at - 60) : at + 40]!r}…")
        at = text.find(MARK, at + 1)
    return found


# -- in process ----------------------------------------------------------------------------------


def fake_api(model: list[str]) -> httpx2.MockTransport:
    """Messages API answers carrying the reply and tool-input canaries; ``max_tokens=1`` fails with
    an error message carrying one. ``model[0]`` is the model it answers as (the test switches it)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        if body.get("max_tokens") == 1:
            return httpx2.Response(
                400, json={"type": "error", "error": {"type": "invalid_request_error", "message": ERROR_TEXT}}
            )
        message = {
            "id": "msg_canary",
            "type": "message",
            "role": "assistant",
            "model": model[0],
            "content": [
                {"type": "text", "text": REPLY},
                {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"cmd": TOOL_IN}},
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 40, "output_tokens": 12},
        }
        if body.get("stream"):
            return httpx2.Response(
                200, headers={"content-type": "text/event-stream"}, content=b"".join(sse_events(message))
            )
        return httpx2.Response(200, json=message)

    return httpx2.MockTransport(handler)


REQUEST: dict[str, Any] = {
    "max_tokens": 64,
    "system": SYSTEM,
    "tools": [{"name": "bash", "description": TOOL_DESC, "input_schema": {"type": "object"}}],
    "messages": [
        {"role": "user", "content": PROMPT},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_0", "name": "bash", "input": {"cmd": TOOL_IN}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": TOOL_OUT}]},
    ],
}


@pytest.fixture
def exported(tmp_path: Path) -> Iterator[dict[str, Any]]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "canary-agent"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=Resource.create({"service.name": "canary-agent"}))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metrics])
    telemetry = Telemetry(tracer_provider, logger_provider, meter_provider)
    memory, prometheus = InMemorySink(), PrometheusSink()
    sinks = [
        OtelAlertSink(telemetry),
        memory,
        prometheus,
        JsonlSink(str(tmp_path / "alerts.jsonl")),
        ConsoleSink(),
    ]
    runtime = driftwatch.configure(sinks=sinks, telemetry=telemetry, service="canary-agent")
    yield {
        "runtime": runtime,
        "tracer_provider": tracer_provider,
        "spans": spans,
        "logs": logs,
        "metrics": metrics,
        "memory": memory,
        "prometheus": prometheus,
        "alerts_file": tmp_path / "alerts.jsonl",
    }
    driftwatch.shutdown()


def test_no_canary_in_anything_exported_in_process(
    exported: dict[str, Any], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Canaries in prompt, system prompt, tool definition, tool result, reply, tool input and error
    message reach none of: spans (attributes, events, status, links, resource, as OTLP bytes), log
    records, metric points, alert JSON, the JSONL file, Prometheus text, console, log."""
    model = ["claude-sonnet-4-6"]
    http = httpx2.Client(transport=fake_api(model))
    # The SDK's own spans (annotated by driftwatch) and driftwatch's own spans (SDK tracing off).
    clients = [
        driftwatch.watch(
            anthropic.Anthropic(
                api_key="t",
                base_url="http://api.test",
                http_client=http,
                max_retries=0,
                **({"open_telemetry": {"tracer_provider": exported["tracer_provider"]}} if sdk else {}),
            )
        )
        for sdk in (True, False)
    ]
    caplog.set_level(logging.DEBUG, logger="driftwatch")
    for i in range(60):
        if i == 30:
            model[0] = "claude-sonnet-4-7"  # a serving change: version alerts carry the stream
        client = clients[i % 2]
        with driftwatch.task("fix-tests", language="python") as t:
            reply = client.messages.create(model="claude-sonnet-4-6", **REQUEST)
            assert reply.content[0].text == REPLY  # the canary did flow through the client
            with client.messages.stream(model="claude-sonnet-4-6", **REQUEST) as stream:
                assert stream.get_final_message().content[1].input == {"cmd": TOOL_IN}
            with pytest.raises(anthropic.BadRequestError, match=ERROR_TEXT):
                client.messages.create(model="claude-sonnet-4-6", **{**REQUEST, "max_tokens": 1})
            t.record(success=i < 30)
    runtime = exported["runtime"]
    assert runtime.monitor.flush(10)
    metrics = exported["metrics"].get_metrics_data()
    alerts = exported["memory"].alerts
    driftwatch.shutdown()

    spans = exported["spans"].get_finished_spans()
    records = exported["logs"].get_finished_logs()
    # What the test relies on is there: call and task spans, alert records, metric points, alerts.
    assert {s.name for s in spans} >= {"invoke_agent fix-tests", "chat claude-sonnet-4-6"}
    assert any(s.status.status_code is StatusCode.ERROR for s in spans)
    assert alerts and records and metrics is not None
    assert {a.kind for a in alerts} >= {"version_change"}
    found = leaks("spans (OTLP)", encode_spans(spans).SerializeToString())
    found += leaks("spans (SDK objects)", "".join(s.to_json() for s in spans))
    found += leaks("log records (OTLP)", encode_logs(records).SerializeToString())
    found += leaks("metrics (OTLP)", encode_metrics(metrics).SerializeToString())
    found += leaks("alerts", json.dumps([a.to_dict() for a in alerts]))
    found += leaks("alerts JSONL", exported["alerts_file"].read_bytes())
    found += leaks("/metrics", exported["prometheus"].render())
    found += leaks("stats", json.dumps(runtime.monitor.stats.__dict__, default=str))
    console = capsys.readouterr()
    found += leaks("console", console.out + console.err)
    found += leaks("log", "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records))
    assert found == []


def test_no_canary_from_openai_agents_runs_in_process(
    exported: dict[str, Any], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Agents SDK runs through driftwatch.integrations.openai_agents, with canaries in the prompt,
    instructions, model input and output, tool arguments, results and errors, a model error and a
    guardrail's output, reach none of: spans, log records, metric points, alerts, Prometheus text,
    console, log."""
    from agents import InputGuardrailTripwireTriggered, Runner, set_trace_processors

    from driftwatch.integrations.openai_agents import DriftwatchProcessor
    from tests.support.openai_agents_fake import call, refuse, say, triage

    set_trace_processors([DriftwatchProcessor()])
    caplog.set_level(logging.DEBUG, logger="driftwatch")
    try:
        for i in range(60):
            tools = [call("lookup", "c1"), call("explode", "c2")]
            ok = [[*tools], [call("transfer_to_billing", "c3")]] if i % 3 else [RuntimeError(f"{MARK}Model")]
            with contextlib.suppress(RuntimeError):
                # A serving change half-way: version alerts carry the stream.
                model = "gpt-fake-1" if i < 30 else "gpt-fake-2"
                Runner.run_sync(triage(ok, billing=[[say()]], model=model), f"{MARK}Prompt")
        with pytest.raises(InputGuardrailTripwireTriggered):
            Runner.run_sync(triage([[say()]], input_guardrails=[refuse]), f"{MARK}Prompt")
    finally:
        set_trace_processors([])
    runtime = exported["runtime"]
    assert runtime.monitor.flush(10)
    metrics = exported["metrics"].get_metrics_data()
    alerts = exported["memory"].alerts
    driftwatch.shutdown()
    spans = exported["spans"].get_finished_spans()
    records = exported["logs"].get_finished_logs()
    assert len([s for s in spans if s.name == "invoke_agent triage"]) == 61 and alerts
    found = leaks("spans (OTLP)", encode_spans(spans).SerializeToString())
    found += leaks("log records (OTLP)", encode_logs(records).SerializeToString())
    found += leaks("metrics (OTLP)", encode_metrics(metrics).SerializeToString())
    found += leaks("alerts", json.dumps([a.to_dict() for a in alerts]))
    found += leaks("alerts JSONL", exported["alerts_file"].read_bytes())
    found += leaks("/metrics", exported["prometheus"].render())
    console = capsys.readouterr()
    found += leaks("console", console.out + console.err)
    found += leaks("log", "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records))
    assert found == []


# -- through serve -------------------------------------------------------------------------------

#: Content attributes as instrumentations name them, each configured as a stream label below.
CONTENT_ATTRIBUTES = [
    "gen_ai.prompt.0.content",
    "gen_ai.completion.0.content",
    "gen_ai.completion.0.tool_calls.0.arguments",
    "llm.prompts",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "input.value",
    "prompt",
    "user_prompt",
    "response",
    "tool_input",
    "error",
]


def canary_traces(passed: list[bool]) -> list[bytes]:
    """Task spans (a drift in success after 600) and OpenLLMetry-style call spans, with canaries in
    content attributes, events, status descriptions, links and the resource; 100 spans a request."""
    memory = InMemorySpanExporter()
    resource = Resource.create(
        {"service.name": "agent-a", "language": "rust", "gen_ai.system_instructions": f"{MARK}Resource"}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("canary")
    content = {name: f"{MARK}Attr-{name}" for name in CONTENT_ATTRIBUTES}
    for i, ok in enumerate(passed):
        start = (T0 + i) * 1_000_000_000
        task = tracer.start_span(
            "invoke_agent fix-tests",
            start_time=start,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "driftwatch.task.name": "fix-tests",
                "driftwatch.task.success": ok,
                **content,
            },
        )
        link = Link(task.get_span_context(), {"gen_ai.prompt": f"{MARK}LinkAttr", "note": f"{MARK}Link"})
        call = tracer.start_span(
            "anthropic.chat",
            start_time=start + 1000,
            links=[link],
            attributes={
                "gen_ai.system": "Anthropic",
                "gen_ai.request.model": "claude-sonnet-4-6",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 20,
                **content,
            },
        )
        call.add_event("gen_ai.content.prompt", {"gen_ai.prompt": f"{MARK}Event", "text": f"{MARK}EventText"})
        call.add_event(f"{MARK}EventName")
        call.add_event(
            "gen_ai.evaluation.result",
            {
                "gen_ai.evaluation.name": "relevance",
                "gen_ai.evaluation.score.value": 0.8,
                "gen_ai.evaluation.explanation": f"{MARK}Explanation",
            },
        )
        call.record_exception(RuntimeError(f"{MARK}Exception"))
        if not ok:
            call.set_status(Status(StatusCode.ERROR, f"{MARK}Status"))
            task.set_status(Status(StatusCode.ERROR, f"{MARK}TaskStatus"))
        call.end(end_time=start + 300_000_000)
        task.end(end_time=start + 400_000_000)
    provider.shutdown()
    spans = memory.get_finished_spans()
    return [encode_spans(spans[i : i + 100]).SerializeToString() for i in range(0, len(spans), 100)]


def canary_logs() -> bytes:
    """Evaluation records, Claude Code events and a plain log line, with content everywhere."""
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "claude-code", "prompt": f"{MARK}Res"})
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("com.anthropic.claude_code.events")
    t = (T0 + 10) * 1_000_000_000
    session = {"session.id": "s-1", "prompt.id": "p-1"}
    logger.emit(
        timestamp=t,
        event_name="claude_code.user_prompt",
        body=f"{MARK}Body",
        attributes={**session, "prompt": f"{MARK}UserPrompt", "prompt_length": 20},
    )
    logger.emit(
        timestamp=t + 1,
        event_name="claude_code.api_error",
        body="claude_code.api_error",
        attributes={
            **session,
            "model": "claude-sonnet-4-6",
            "error": f"{MARK}ApiError",
            "status_code": "400",
        },
    )
    logger.emit(
        timestamp=t + 2,
        event_name="claude_code.tool_result",
        attributes={
            **session,
            "tool_name": "Bash",
            "success": "true",
            "tool_parameters": f"{MARK}ToolParams",
        },
    )
    logger.emit(timestamp=t + 3, body=f"claude_code.{MARK}Event", attributes=session)
    logger.emit(
        timestamp=t + 4,
        event_name="gen_ai.evaluation.result",
        body=f"{MARK}EvalBody",
        attributes={
            "gen_ai.evaluation.name": "tone",
            "gen_ai.evaluation.score.label": "pass",
            "gen_ai.evaluation.explanation": f"{MARK}EvalExplanation",
        },
    )
    logger.emit(timestamp=t + 5, body=f"{MARK}PlainLog", attributes={"gen_ai.input.messages": f"{MARK}Msgs"})
    provider.shutdown()
    return encode_logs(memory.get_finished_logs()).SerializeToString()


def canary_metrics() -> bytes:
    """A Claude Code counter point with content attributes and an exemplar carrying one."""
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "claude-code"
    metric = rm.scope_metrics.add().metrics.add(name="claude_code.token.usage")
    metric.sum.aggregation_temporality = 1  # delta
    point = metric.sum.data_points.add(time_unix_nano=(T0 + 11) * 1_000_000_000, as_double=42.0)
    for key, value in {"session.id": "s-1", "type": "input", "user_prompt": f"{MARK}Point"}.items():
        point.attributes.add(key=key).value.string_value = value
    exemplar = point.exemplars.add(time_unix_nano=(T0 + 11) * 1_000_000_000, as_double=1.0)
    exemplar.filtered_attributes.add(key="prompt").value.string_value = f"{MARK}Exemplar"
    return request.SerializeToString()


def post(port: int, path: str, body: bytes) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers={"Content-Type": "application/x-protobuf"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        data: bytes = response.read()
        return data


def state_leaks(folder: Path, when: str) -> list[str]:
    """Canaries in the state database, its WAL and rollback journal, as bytes on disk."""
    found: list[str] = []
    for path in sorted(folder.glob("state.db*")):
        with contextlib.suppress(FileNotFoundError):  # a WAL removed as it was listed
            found += leaks(path.name + when, path.read_bytes())
    return found


def test_no_canary_in_anything_serve_outputs(tmp_path: Path) -> None:
    """Canaries in content attributes named as stream labels, span events, status descriptions,
    links, resources, log bodies and exemplars reach none of serve's alerts, /metrics, /stats, state
    file, log or OTLP exports; the labels that are not content do split the streams."""
    config = tmp_path / "driftwatch.yaml"
    config.write_text(json.dumps({"stream_labels": ["language", *CONTENT_ATTRIBUTES]}))
    state, alerts, port = tmp_path / "state.db", tmp_path / "alerts.jsonl", free_port()
    with OTLPReceiver() as backend:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DRIFTWATCH_"))}
        env |= {
            "OTEL_EXPORTER_OTLP_ENDPOINT": backend.endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
            "OTEL_BLRP_SCHEDULE_DELAY": "50",
        }
        cmd = [sys.executable, "-P", "-m", "driftwatch._cli.main", "serve", "--config", str(config)]
        cmd += [
            "--state",
            str(state),
            "--alerts-out",
            str(alerts),
            "--http-port",
            str(port),
            "--grpc-port",
            "0",
        ]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    get(port, "/readyz")
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                    time.sleep(0.1)
            # The state file is read right after each payload is acknowledged, while its journal
            # entry is surely there (a checkpoint prunes processed entries), and again at the end.
            found: list[str] = []
            sent = [("/v1/traces", b) for b in canary_traces(task_outcomes(600, 300, 0.9, 0.4, seed=3))]
            # OpenInference's spans of an Agents SDK run: prompt, model input and output, tool
            # arguments, results and definitions as attributes.
            agent_spans = capture_openinference().spans
            assert any(MARK in str(s.attributes) for s in agent_spans)
            sent.append(("/v1/traces", encode_spans(agent_spans).SerializeToString()))
            for path, body in [*sent, ("/v1/logs", canary_logs()), ("/v1/metrics", canary_metrics())]:
                post(port, path, body)
                found += state_leaks(tmp_path, f" after {path}")
            deadline = time.monotonic() + 60
            while json.loads(get(port, "/stats"))["handler"]["backlog"]:
                assert time.monotonic() < deadline, "serve did not process the payloads"
                time.sleep(0.1)
            scraped, stats = get(port, "/metrics"), get(port, "/stats")
            time.sleep(0.5)  # a metric export interval and a log batch
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        exports = b"".join(
            request.SerializeToString() for received in backend.received.values() for request in received
        )
    assert proc.returncode == 0, err[-2000:]
    rows = [json.loads(line) for line in alerts.read_text().splitlines()]
    drift = [a for a in rows if a["kind"] == "drift" and a["stream"].get("task") == "fix-tests"]
    # What the test relies on: the payloads were decoded, alerts raised on streams split by a label.
    assert drift and all(a["stream"]["language"] == "rust" for a in drift)
    assert b"driftwatch_drift_active" in scraped and json.loads(stats)["handler"]["backlog"] == 0
    assert backend.received["/v1/logs"], "serve exported no alert records"
    found += leaks("alerts", alerts.read_bytes())
    found += leaks("/metrics", scraped) + leaks("/stats", stats)
    found += state_leaks(tmp_path, " at exit")
    found += leaks("stdout", out) + leaks("stderr", err)
    found += leaks("OTLP exports", exports)
    assert found == []
