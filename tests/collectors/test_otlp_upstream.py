"""Agent runs as other instrumentations report them, decoded by serve's decoder.

The spans come from the real upstream packages — the OpenTelemetry GenAI instrumentations of the
OpenAI Agents SDK and of the ``openai`` client (``invoke_workflow``/``invoke_agent``/``execute_tool``
and ``chat`` spans) and OpenInference's (``AGENT``/``TOOL``/``LLM`` spans, ``llm.token_count.*``) —
instrumenting a real Agents SDK run on the real Chat Completions model against a fake API, encoded
as the OTLP exporter encodes them and parsed back from protobuf bytes.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent, Runner, set_trace_processors
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
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
    metrics: bytes
    """The metric points at the end of the run, as an OTLP metrics request (cumulative)."""


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
    data = metrics.get_metrics_data()
    encoded = encode_metrics(data).SerializeToString() if data is not None else b""
    return Captured(list(spans.get_finished_spans()), encoded)


def capture_otel_genai() -> Captured:
    """The run under the OpenTelemetry GenAI instrumentations of the Agents SDK and the openai client."""
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
    from opentelemetry.instrumentation.genai.openai_agents import OpenAIAgentsInstrumentor

    def instrument(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        for instrumentor in (OpenAIAgentsInstrumentor(), OpenAIInstrumentor()):
            instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    def uninstrument() -> None:
        OpenAIAgentsInstrumentor().uninstrument()
        OpenAIInstrumentor().uninstrument()

    return run_agent(instrument, uninstrument)


def capture_openinference() -> Captured:
    """The run under OpenInference's instrumentation of the Agents SDK (it captures content)."""
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    def instrument(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        OpenAIAgentsInstrumentor().instrument(tracer_provider=tracer_provider)

    return run_agent(instrument, lambda: OpenAIAgentsInstrumentor().uninstrument())


@pytest.fixture(scope="module")
def otel_genai() -> Captured:
    return capture_otel_genai()


@pytest.fixture(scope="module")
def openinference() -> Captured:
    return capture_openinference()


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


def test_token_usage_metric_is_a_per_interval_call_outcome(otel_genai: Captured) -> None:
    """gen_ai.client.token.usage from the real openai instrumentation: one outcome for the interval,
    tokens per operation (input includes cached, as the metric counts them), in its own stream."""
    request = ExportMetricsServiceRequest.FromString(otel_genai.metrics)
    names = {m.name for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "gen_ai.client.token.usage" in names
    decoder = OtlpDecoder(Config())
    decoded = decoder.metrics(request)
    assert decoded.rejected == 0, decoded.errors
    (outcome,) = decoded.outcomes
    assert (outcome.task, outcome.kind, outcome.service) == ("openai.chat.metrics", "call", "support-bot")
    assert (outcome.input_tokens, outcome.output_tokens) == (100, 10)
    assert outcome.model == f"{MODEL}-2026-01-01" and outcome.labels["provider"] == "openai"
    # The same cumulative point again (a retried or repeated export): nothing new happened.
    assert decoder.metrics(ExportMetricsServiceRequest.FromString(otel_genai.metrics)).outcomes == []


def histogram_request(name: str, points: list[tuple[int, int, float]], temporality: int) -> bytes:
    """One histogram of ``(time offset s, count, sum)`` points, for one chat series."""
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "support-bot"
    metric = rm.scope_metrics.add().metrics.add(name=name)
    metric.histogram.aggregation_temporality = temporality
    t0 = 1_795_312_088_000_000_000
    for offset, count, total in points:
        point = metric.histogram.data_points.add(
            start_time_unix_nano=t0, time_unix_nano=t0 + offset * 10**9, count=count, sum=total
        )
        for key, value in {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-6",
            "gen_ai.token.modality": "text",
        }.items():
            point.attributes.add(key=key).value.string_value = value
    return request.SerializeToString()


def test_inference_operation_histograms_cumulative_are_differenced() -> None:
    """gen_ai.client.inference.operation.*_tokens: cumulative points are differenced per series; an
    interval without operations gives nothing; input and output of one interval are one outcome."""
    decoder = OtlpDecoder(Config())
    got: list[tuple[float, int | None, int | None]] = []
    for cumulative in ([(60, 2, 300.0)], [(120, 5, 1200.0)], [(180, 5, 1200.0)]):
        for name, scale in (("input_tokens", 1.0), ("output_tokens", 0.1)):
            points = [(t, n, total * scale) for t, n, total in cumulative]
            body = histogram_request(f"gen_ai.client.inference.operation.{name}", points, 2)
            decoded = decoder.metrics(ExportMetricsServiceRequest.FromString(body))
            assert decoded.rejected == 0, decoded.errors
            got += [(o.time, o.input_tokens, o.output_tokens) for o in decoded.outcomes]
    t0 = 1_795_312_088.0
    assert got == [(t0 + 60, 150, None), (t0 + 60, None, 15), (t0 + 120, 300, None), (t0 + 120, None, 30)]


def test_delta_token_histograms_and_bad_points() -> None:
    """Delta points are taken as they are, input and output in one request make one outcome, and a
    negative or infinite sum is rejected naming where."""
    request = ExportMetricsServiceRequest()
    request.MergeFromString(
        histogram_request("gen_ai.client.inference.operation.input_tokens", [(60, 4, 400)], 1)
    )
    request.MergeFromString(
        histogram_request("gen_ai.client.inference.operation.output_tokens", [(60, 4, 40)], 1)
    )
    bad = histogram_request("gen_ai.client.inference.operation.input_tokens", [(61, 1, math.inf)], 1)
    request.MergeFromString(bad)
    decoded = OtlpDecoder(Config()).metrics(request)
    assert [(o.task, o.input_tokens, o.output_tokens) for o in decoded.outcomes] == [
        ("anthropic.chat.metrics", 100, 10)
    ]
    assert (
        decoded.rejected == 1
        and "data_points[0]" in decoded.errors[0]
        and "out of range" in decoded.errors[0]
    )
