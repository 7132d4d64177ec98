"""Content never becomes a label, and ``redact`` removes it from payloads without changing decoding.

Spans come from the real OpenLLMetry instrumentation (``opentelemetry-instrumentation-anthropic``,
content capture on) driving the real anthropic SDK against a local fake, encoded as the OTLP
exporter encodes them; plus the indexed attribute forms of older OpenLLMetry versions and of
OpenInference, and the real Claude Code captures.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from driftwatch import Config, InMemorySink, Monitor
from driftwatch._alerting.otel import OtelAlertSink, Telemetry
from driftwatch._alerting.prometheus import PrometheusSink
from driftwatch.collectors._otlp import OtlpDecoder, is_content, redact
from tests.collectors.test_claude_code import PROTOBUF, TYPES
from tests.conftest import sse_events

MARK = "qz7Canary"
#: Attributes of older OpenLLMetry releases (indexed), Traceloop's SDK and OpenInference.
INDEXED = {
    "gen_ai.prompt.0.content": f"{MARK}Prompt0",
    "gen_ai.prompt.1.content": f"{MARK}Prompt1",
    "gen_ai.completion.0.content": f"{MARK}Completion0",
    "gen_ai.completion.0.tool_calls.0.arguments": f"{MARK}ToolArgs",
    "llm.prompts": f"{MARK}LlmPrompts",
    "llm.completions": f"{MARK}LlmCompletions",
    "llm.request.functions.0.description": f"{MARK}FunctionDescription",
    "llm.request.functions.0.parameters": f"{MARK}FunctionParameters",
    "traceloop.entity.input": f"{MARK}EntityInput",
    "traceloop.entity.output": f"{MARK}EntityOutput",
    "input.value": f"{MARK}InputValue",
    "output.value": f"{MARK}OutputValue",
    "llm.input_messages.0.message.content": f"{MARK}OpenInference",
    "llm.output_messages.0.message.content": f"{MARK}OpenInferenceOut",
    "tool.parameters": f"{MARK}ToolParameters",
    "tool.description": f"{MARK}ToolDescription",
    "gen_ai.tool.call.arguments": f"{MARK}ToolCallArgs",
    "gen_ai.tool.call.result": f"{MARK}ToolResult",
    "exception.message": f"{MARK}Exception",
}
#: Attributes that are labels, not content: the pattern must leave them alone.
NOT_CONTENT = [
    "language",
    "team",
    "tool_name",
    "error.type",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.output.type",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "prompt_length",
    "session.id",
    "prompt.id",
    "gen_ai.prompt.0.role",
    "gen_ai.completion.0.tool_calls.0.name",
    "customer.tier",
    "http.response.status_code",
    "llm.token_count.prompt",
    "llm.token_count.completion",
    "llm.token_count.prompt_details.cache_read",
    "llm.model_name",
    "openinference.span.kind",
    "tool.name",
    "agent.name",
    "gen_ai.tool.name",
]


@pytest.mark.parametrize(
    "name",
    [
        *INDEXED,
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
        "gen_ai.tool.call.arguments",
        "gen_ai.evaluation.explanation",
        "prompt",
        "user_prompt",
        "response",
        "tool_input",
        "tool_parameters",
        "full_command",
        "error",
        "GEN_AI.PROMPT.3.CONTENT",
    ],
)
def test_content_attributes_are_recognised_by_pattern(name: str) -> None:
    """Indexed and nested forms count as content, whatever the index and case."""
    assert is_content(name)


@pytest.mark.parametrize("name", NOT_CONTENT)
def test_label_attributes_are_not_content(name: str) -> None:
    assert not is_content(name)


@pytest.fixture
def openllmetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """The real OpenLLMetry Anthropic instrumentation with content capture on (its default, set anyway)."""
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor

    monkeypatch.setenv("TRACELOOP_TRACE_CONTENT", "true")
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "ollm-agent", "language": "go"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider, exporter
    finally:
        instrumentor.uninstrument()


def _fake_api(model: list[str]) -> httpx2.MockTransport:
    def handler(request: httpx2.Request) -> httpx2.Response:
        message = {
            "id": "msg_c",
            "type": "message",
            "role": "assistant",
            "model": model[0],
            "content": [
                {"type": "text", "text": f"{MARK}Reply"},
                {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"cmd": f"{MARK}ToolIn"}},
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 30, "output_tokens": 9},
        }
        if json.loads(request.content).get("stream"):
            chunks = b"".join(sse_events(message))
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=chunks)
        return httpx2.Response(200, json=message)

    return httpx2.MockTransport(handler)


def _openllmetry_request(exporter: InMemorySpanExporter, calls: int = 20) -> ExportTraceServiceRequest:
    model = ["claude-sonnet-4-6"]
    client = anthropic.Anthropic(
        api_key="t",
        base_url="http://api.test",
        http_client=httpx2.Client(transport=_fake_api(model)),
        max_retries=0,
    )
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": f"{MARK}Prompt"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t0", "name": "bash", "input": {"c": 1}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t0", "content": f"{MARK}ToolOut"}],
        },
    ]
    tools = [{"name": "bash", "description": f"{MARK}ToolDesc", "input_schema": {"type": "object"}}]
    for i in range(calls):
        if i == calls // 2:
            model[0] = "claude-sonnet-4-7"  # a version change: an alert carrying the stream labels
        reply = client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=50,
            system=f"{MARK}System",
            messages=messages,
            tools=tools,
            stream=i % 2 == 1,
        )
        if i % 2:
            for _ in reply:  # type: ignore[union-attr]
                pass
    # As the OTLP exporter sends them: encoded, serialised, parsed on the receiving side.
    return ExportTraceServiceRequest.FromString(
        encode_spans(exporter.get_finished_spans()).SerializeToString()
    )


def test_openllmetry_content_never_reaches_labels_alerts_or_metrics(
    openllmetry: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """Every attribute real OpenLLMetry spans carry (and the indexed forms) named as a stream label:
    outcomes, alerts, OTLP alert records and metrics, and the Prometheus text hold no content."""
    _, exporter = openllmetry
    request = _openllmetry_request(exporter)
    spans = request.resource_spans[0].scope_spans[0].spans
    assert len(spans) == 20 and {s.name for s in spans} == {"anthropic.chat"}
    for span in spans:  # the content the instrumentation captured, as indexed attributes too
        for key, value in INDEXED.items():
            span.attributes.add(key=key).value.string_value = value
    seen = {kv.key for span in spans for kv in span.attributes}
    assert MARK in request.SerializeToString().decode("utf-8", "replace")  # content was captured
    assert {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"} <= seen
    # Every attribute but those of the model, usage and request shape (which would split the stream
    # at the version change that raises the alert below), plus one that is a label.
    labels = [k for k in seen if not k.startswith(("gen_ai.response.", "gen_ai.usage.", "gen_ai.request."))]
    labels = sorted({*labels, "language"} - {"gen_ai.is_streaming"})
    assert {"gen_ai.input.messages", "gen_ai.prompt.0.content", "gen_ai.tool.definitions"} <= set(labels)
    config = Config(stream_labels=labels, signals=["success", "output_tokens"])
    decoded = OtlpDecoder(config).traces(request)
    assert decoded.rejected == 0 and len(decoded.outcomes) == 20
    assert all(o.labels.get("language") == "go" for o in decoded.outcomes)  # labels do work
    assert all(not is_content(k) for o in decoded.outcomes for k in o.labels)

    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    reader = InMemoryMetricReader()
    telemetry = Telemetry(
        logger_provider=logger_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    memory, prometheus = InMemorySink(), PrometheusSink()
    monitor = Monitor(config, [memory, prometheus, OtelAlertSink(telemetry)], threaded=False)
    for outcome in decoded.outcomes:
        monitor.process(outcome)
    assert memory.alerts and all(a.stream.get("language") == "go" for a in memory.alerts)
    metrics = reader.get_metrics_data()
    assert metrics is not None
    exported = "".join(
        [
            json.dumps([dataclasses.asdict(o) for o in decoded.outcomes]),
            json.dumps([a.to_dict() for a in memory.alerts]),
            encode_logs(logs.get_finished_logs()).SerializeToString().decode("utf-8", "replace"),
            encode_metrics(metrics).SerializeToString().decode("utf-8", "replace"),
            prometheus.render().decode(),
        ]
    )
    assert MARK not in exported


def _decoded(signal: str, data: bytes) -> tuple[list[dict[str, Any]], int, list[str]]:
    decoder = OtlpDecoder(Config(stream_labels=["language", "tool_name", "gen_ai.prompt.0.content"]))
    result = getattr(decoder, signal)(TYPES[signal].FromString(data))
    outcomes = [dataclasses.asdict(o) for o in [*result.outcomes, *decoder.expire(math.inf)]]
    return outcomes, result.rejected, result.errors


def _payloads(exporter: InMemorySpanExporter) -> list[tuple[str, bytes]]:
    """Real payloads: OpenLLMetry spans, driftwatch-style task spans with evaluation events,
    evaluation log records, and the Claude Code captures (traces, logs, metrics)."""
    request = _openllmetry_request(exporter, calls=4)
    provider = TracerProvider(resource=Resource.create({"service.name": "a", "language": "rust"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span(
        "invoke_agent review", attributes={"gen_ai.operation.name": "invoke_agent", **INDEXED}
    ) as span:
        span.add_event(
            "gen_ai.evaluation.result",
            {"gen_ai.evaluation.name": "tests", "gen_ai.evaluation.score.label": "fail", **INDEXED},
        )
        span.add_event("gen_ai.content.completion", {"gen_ai.completion": f"{MARK}EventCompletion"})
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    logger_provider.get_logger("e").emit(
        event_name="gen_ai.evaluation.result",
        body=f"{MARK}Body",
        attributes={"gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.value": 0.5, **INDEXED},
    )
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("m")
    meter.create_counter("claude_code.cost.usage").add(0.5, {"session.id": "s", "prompt": f"{MARK}Point"})
    metrics = reader.get_metrics_data()
    assert metrics is not None
    out = [
        ("traces", request.SerializeToString()),
        ("traces", encode_spans(memory.get_finished_spans()).SerializeToString()),
        ("logs", encode_logs(logs.get_finished_logs()).SerializeToString()),
        ("metrics", encode_metrics(metrics).SerializeToString()),
    ]
    return out + [(p.stem.split("_")[1], p.read_bytes()) for p in PROTOBUF]


def test_redacted_payloads_decode_the_same_and_hold_no_content(
    openllmetry: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """``redact`` (what serve journals) changes no outcome, rejection or error of any real payload,
    and leaves no content in it; redacting twice is redacting once."""
    _, exporter = openllmetry
    payloads = _payloads(exporter)
    assert sum(MARK.encode() in data for _, data in payloads) == 4
    for signal, data in payloads:
        request = TYPES[signal].FromString(data)
        redact(request)
        redacted = request.SerializeToString()
        assert MARK.encode() not in redacted, signal
        assert _decoded(signal, redacted) == _decoded(signal, data), signal
        again = TYPES[signal].FromString(redacted)
        redact(again)
        assert again.SerializeToString() == redacted
    # The Claude Code captures hold prompts and replies ("prompt", "response"): gone after redact.
    texts = [TYPES[s].FromString(d) for s, d in payloads[4:] if s == "logs"]
    keys = {
        kv.key
        for t in texts
        for r in t.resource_logs
        for s in r.scope_logs
        for x in s.log_records
        for kv in x.attributes
    }
    assert {"prompt", "response"} <= keys
    for t in texts:
        redact(t)
    keys = {
        kv.key
        for t in texts
        for r in t.resource_logs
        for s in r.scope_logs
        for x in s.log_records
        for kv in x.attributes
    }
    assert not {"prompt", "response"} & keys and "prompt.id" in keys
