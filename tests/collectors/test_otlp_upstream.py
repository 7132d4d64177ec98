"""Agent runs as other instrumentations report them, decoded by serve's decoder.

The spans come from the real upstream packages — the OpenTelemetry GenAI instrumentations of the
OpenAI Agents SDK and of the ``openai`` client (``invoke_workflow``/``invoke_agent``/``execute_tool``
and ``chat`` spans) and OpenInference's (``AGENT``/``TOOL``/``LLM`` spans, ``llm.token_count.*``) —
instrumenting a real Agents SDK run on the real Chat Completions model against a fake API, encoded
as the OTLP exporter encodes them and parsed back from protobuf bytes.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent, Runner, set_trace_processors
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from driftwatch import Config, Outcome
from driftwatch.collectors._otlp import OtlpDecoder, redact
from tests.support.openai_agents_fake import CANARY, MODEL, chat_completions_model, explode, lookup

RESOURCE = Resource.create({"service.name": "support-bot"})


@dataclasses.dataclass
class Captured:
    spans: list[ReadableSpan]
    metrics: InMemoryMetricReader


def run_agent(instrument: Any, uninstrument: Any) -> Captured:
    """One triage run (lookup and a failing explode, then a reply) under an instrumentation."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=RESOURCE)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(resource=RESOURCE, metric_readers=[metrics])
    set_trace_processors([])
    instrument(tracer_provider, meter_provider)
    try:
        agent = Agent(
            name="triage",
            instructions=f"{CANARY}Instructions",
            model=chat_completions_model([["lookup", "explode"], []]),
            tools=[lookup, explode],
        )
        Runner.run_sync(agent, f"{CANARY}Prompt")
    finally:
        uninstrument()
        set_trace_processors([])
    return Captured(list(spans.get_finished_spans()), metrics)


@pytest.fixture(scope="module")
def otel_genai() -> Captured:
    """The OpenTelemetry GenAI instrumentations of the Agents SDK and of the openai client."""
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
    from opentelemetry.instrumentation.genai.openai_agents import OpenAIAgentsInstrumentor

    def instrument(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        for instrumentor in (OpenAIAgentsInstrumentor(), OpenAIInstrumentor()):
            instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    def uninstrument() -> None:
        OpenAIAgentsInstrumentor().uninstrument()
        OpenAIInstrumentor().uninstrument()

    return run_agent(instrument, uninstrument)


@pytest.fixture(scope="module")
def openinference() -> Captured:
    """OpenInference's instrumentation of the Agents SDK."""
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    def instrument(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        OpenAIAgentsInstrumentor().instrument(tracer_provider=tracer_provider)

    return run_agent(instrument, lambda: OpenAIAgentsInstrumentor().uninstrument())


def requests(spans: list[ReadableSpan], per_request: int) -> Iterator[ExportTraceServiceRequest]:
    """The spans in export order, ``per_request`` to an OTLP request, through protobuf bytes."""
    for i in range(0, len(spans), per_request):
        data = encode_spans(spans[i : i + per_request]).SerializeToString()
        yield ExportTraceServiceRequest.FromString(data)


def decode(spans: list[ReadableSpan], per_request: int = 1000) -> list[Outcome]:
    decoder = OtlpDecoder(Config())
    out: list[Outcome] = []
    for request in requests(spans, per_request):
        decoded = decoder.traces(request)
        assert decoded.rejected == 0, decoded.errors
        out += decoded.outcomes
    return out


def tasks(outcomes: list[Outcome]) -> dict[str, Outcome]:
    return {o.task: o for o in outcomes if o.kind == "task"}


def test_otel_genai_agent_run_is_a_task_with_its_tools_and_tokens(otel_genai: Captured) -> None:
    """invoke_agent with its execute_tool and chat spans → a task: 2 tool calls, 1 tool error, tokens
    of both chat calls; the invoke_workflow above it totals the same; chat spans are the agent's calls."""
    names = sorted({s.name.split(" ")[0] for s in otel_genai.spans})
    assert names == ["chat", "execute_tool", "invoke_agent", "invoke_workflow"]
    for per_request in (1000, 1):  # one request, and each span in its own request
        outcomes = decode(otel_genai.spans, per_request)
        found = tasks(outcomes)
        assert set(found) == {"triage", "Agent workflow"}
        for task in found.values():
            assert (task.tool_calls, task.tool_errors) == (2, 1)
            assert (task.input_tokens, task.cache_read_tokens, task.output_tokens) == (160, 40, 20)
            assert task.service == "support-bot" and task.success is None
    # A chat span exported with its agent span finds the agent's task; alone, before it, it cannot.
    calls = [o for o in decode(otel_genai.spans) if o.kind == "call"]
    answered = f"{MODEL}-2026-01-01"
    assert [(c.task, c.model, c.labels["provider"]) for c in calls] == [("triage", answered, "openai")] * 2


def test_openinference_agent_run_is_a_task_with_its_tools_and_tokens(openinference: Captured) -> None:
    """OpenInference AGENT spans are tasks; TOOL spans with tool.name count as tool calls (errors by
    status), LLM spans are calls with llm.token_count.* tokens, summed into their agent."""
    kinds = {(s.attributes or {}).get("openinference.span.kind") for s in openinference.spans}
    assert kinds >= {"AGENT", "TOOL", "LLM", "CHAIN"}
    for per_request in (1000, 1):
        outcomes = decode(openinference.spans, per_request)
        found = tasks(outcomes)
        assert set(found) == {"triage", "Agent workflow"}
        for task in found.values():
            assert (task.tool_calls, task.tool_errors) == (2, 1)
            # OpenInference reports no cached tokens from the Agents SDK's generation spans.
            assert (task.input_tokens, task.cache_read_tokens, task.output_tokens) == (200, 0, 20)
        calls = [o for o in outcomes if o.kind == "call"]
        assert len(calls) == 2 and all(c.model == MODEL and c.output_tokens == 10 for c in calls)
        assert all(c.labels["provider"] == "openai" for c in calls)


@pytest.mark.parametrize("source", ["otel_genai", "openinference"])
def test_redacted_spans_decode_alike_and_hold_no_content(source: str, request: pytest.FixtureRequest) -> None:
    """What serve journals (redact) holds none of the run's content and decodes to the same outcomes."""
    captured: Captured = request.getfixturevalue(source)
    raw = b"".join(r.SerializeToString() for r in requests(captured.spans, 1000))
    if source == "openinference":  # it does capture content: the redaction is what keeps it out
        assert CANARY.encode() in raw
    redacted = list(requests(captured.spans, 1000))
    for r in redacted:
        redact(r)
    assert CANARY.encode() not in b"".join(r.SerializeToString() for r in redacted)
    decoder = OtlpDecoder(Config())
    again = [o for r in redacted for o in decoder.traces(r).outcomes]
    assert [dataclasses.replace(o, latency_s=None) for o in again] == [
        dataclasses.replace(o, latency_s=None) for o in decode(captured.spans)
    ]


def test_totals_waiting_for_their_agent_survive_a_checkpoint(otel_genai: Captured) -> None:
    """Tool totals collected before the agent span arrives pickle with the decoder (a checkpoint)."""
    spans = otel_genai.spans
    decoder = OtlpDecoder(Config())
    first = list(requests(spans[:3], 1000))
    for r in first:
        decoder.traces(r)
    assert decoder.genai.below
    restored: OtlpDecoder = pickle.loads(pickle.dumps(decoder))
    out = [o for r in requests(spans[3:], 1000) for o in restored.traces(r).outcomes]
    assert tasks(out)["triage"].tool_calls == 2


def test_a_decoder_pickled_before_agent_totals_restores() -> None:
    """A GenAiSpans pickled without ``below`` (an older checkpoint) restores with an empty one."""
    decoder = OtlpDecoder(Config())
    del decoder.genai.__dict__["below"]
    assert pickle.loads(pickle.dumps(decoder)).genai.below == {}
