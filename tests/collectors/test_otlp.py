"""OTLP decoding: driftwatch's own spans round-trip, other GenAI instrumentations, evaluations, bad input."""

from __future__ import annotations

import dataclasses
import math
import pickle
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import driftwatch
from driftwatch._alerting.otel import Telemetry
from driftwatch._config import Config
from driftwatch.collectors._otlp import Decoded, OtlpDecoder
from tests.collectors.test_claude_code import PROTOBUF, decode_all, feed
from tests.conftest import Harness, make_handler

MESSAGES = [{"role": "user", "content": "SECRET-PROMPT"}]
RESOURCE = Resource.create({"service.name": "test-agent"})


@pytest.fixture
def otel() -> Iterator[Harness]:
    spans = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    alerts = driftwatch.InMemorySink()
    runtime = driftwatch.configure(
        sinks=[alerts], telemetry=Telemetry(tracer_provider=provider), service="test-agent"
    )
    yield Harness(runtime, alerts, spans, provider)
    driftwatch.shutdown()


def client(handler: Any, **kwargs: Any) -> anthropic.Anthropic:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return driftwatch.watch(
        anthropic.Anthropic(
            api_key="t", base_url="http://api.test", http_client=http, max_retries=0, **kwargs
        )
    )


def comparable(outcome: driftwatch.Outcome) -> dict[str, Any]:
    d = dataclasses.asdict(outcome)
    d.pop("time")
    d.pop("latency_s")
    return d


def test_driftwatch_spans_round_trip(otel: Harness) -> None:
    """Spans driftwatch exports (own chat spans, annotated SDK spans, task spans) decode to its outcomes."""
    plain = client(make_handler(tools=2), open_telemetry=False)
    sdk = client(make_handler(output_tokens=9), open_telemetry={"tracer_provider": otel.provider})
    failing = client(make_handler(status=500), open_telemetry=False)
    with driftwatch.task("fix-tests", task_id="t-7", language="rust") as t:
        plain.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
        for _ in plain.messages.create(
            model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES, stream=True
        ):
            pass
        sdk.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
        with pytest.raises(anthropic.InternalServerError):
            failing.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
        t.record(success=True, score=0.5, tier="gold")
    plain.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
    recorded = otel.flush()
    assert len(recorded) == 6
    request = encode_spans(otel.spans.get_finished_spans())
    decoded = OtlpDecoder().traces(ExportTraceServiceRequest.FromString(request.SerializeToString()))
    assert decoded.rejected == 0 and decoded.errors == []
    by_span = {o.span_id: o for o in decoded.outcomes}
    assert len(by_span) == 6
    for want in recorded:
        got = by_span[want.span_id]
        expected = comparable(want)
        if want.kind == "call":
            expected["labels"] = {**want.labels, "provider": "anthropic"}
        assert comparable(got) == expected
        assert got.time == pytest.approx(want.time, abs=0.05)
        assert got.latency_s == pytest.approx(want.latency_s, rel=1e-9)
    task = next(o for o in decoded.outcomes if o.kind == "task")
    assert (task.task, task.task_id, task.labels) == (
        "fix-tests",
        "t-7",
        {"language": "rust", "tier": "gold"},
    )
    assert task.api_errors == 1 and task.input_tokens == 33 and task.cache_read_tokens == 15
    failed = [o for o in decoded.outcomes if o.success is False]
    assert [(o.kind, o.error_type) for o in failed] == [("call", "500")]


def test_other_instrumentations_and_both_provider_attributes() -> None:
    """OpenLLMetry `anthropic.chat` (gen_ai.system) and upstream GenAI `chat` spans (gen_ai.provider.name)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bot", "service.version": "3.1"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("other")
    with tracer.start_as_current_span(
        "invoke_agent triage",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage"},
    ):
        with tracer.start_as_current_span(
            "anthropic.chat",
            attributes={
                "gen_ai.system": "Anthropic",
                "gen_ai.request.model": "claude-haiku-4-5",
                "gen_ai.response.model": "claude-haiku-4-5-20251001",
                "gen_ai.usage.prompt_tokens": 120,
                "gen_ai.usage.completion_tokens": 30,
                "gen_ai.usage.cache_read_input_tokens": 20,
                "gen_ai.prompt.0.content": "SECRET",
            },
        ):
            pass
        with tracer.start_as_current_span(
            "chat claude-sonnet-4-5",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4-5",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 7,
                "gen_ai.response.finish_reasons": ["max_tokens"],
                "error.type": "timeout",
            },
        ):
            pass
    decoded = OtlpDecoder().traces(encode_spans(exporter.get_finished_spans()))
    openllmetry, upstream, agent = decoded.outcomes
    assert (openllmetry.task, openllmetry.kind, openllmetry.service) == ("triage", "call", "bot")
    assert (
        openllmetry.model == "claude-haiku-4-5-20251001" and openllmetry.request_model == "claude-haiku-4-5"
    )
    assert (openllmetry.input_tokens, openllmetry.output_tokens, openllmetry.cache_read_tokens) == (
        100,
        30,
        20,
    )
    assert openllmetry.labels == {"provider": "anthropic", "app.version": "3.1"}
    assert (
        upstream.success is False
        and upstream.error_type == "timeout"
        and upstream.stop_reason == "max_tokens"
    )
    assert upstream.input_tokens == 100 and upstream.model == "claude-sonnet-4-5"
    assert (agent.task, agent.kind, agent.success) == ("triage", "task", None)
    assert all("SECRET" not in repr(o) for o in decoded.outcomes)


def test_evaluation_results_as_log_records_and_span_events(otel: Harness) -> None:
    """`gen_ai.evaluation.result` (log record or span event) scores the evaluated span's task."""
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    logger = logger_provider.get_logger("reviewer")
    plain = client(make_handler(), open_telemetry=False)
    with driftwatch.task("summarize", language="go"):
        plain.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
        span = trace.get_current_span()
        span.add_event(
            "gen_ai.evaluation.result",
            {"gen_ai.evaluation.name": "tests", "gen_ai.evaluation.score.label": "fail"},
        )
        logger.emit(
            event_name="gen_ai.evaluation.result",
            attributes={
                "gen_ai.evaluation.name": "relevance",
                "gen_ai.evaluation.score.value": 0.25,
                "gen_ai.evaluation.score.label": "pass",
                "gen_ai.evaluation.explanation": "SECRET reasoning",
            },
        )
    otel.flush()
    decoder = OtlpDecoder()
    traced = decoder.traces(encode_spans(otel.spans.get_finished_spans()))
    event = next(o for o in traced.outcomes if o.task == "summarize:tests")
    assert (event.success, event.score, event.labels["language"]) == (False, None, "go")
    (relevance,) = decoder.logs(encode_logs(logs.get_finished_logs())).outcomes
    assert (relevance.task, relevance.kind, relevance.score, relevance.success) == (
        "summarize:relevance",
        "task",
        0.25,
        True,
    )
    assert relevance.service == "test-agent" and relevance.labels == {"language": "go"}
    assert relevance.span_id == event.span_id and relevance.model == "claude-sonnet-4-6"
    assert "SECRET" not in repr(relevance)


def _span_request(**attributes: Any) -> ExportTraceServiceRequest:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for name, attrs in attributes.items():
        with tracer.start_as_current_span(name.replace("_", " "), attributes=attrs):
            pass
    return encode_spans(exporter.get_finished_spans())


def test_malformed_spans_are_rejected_with_where_and_the_rest_decodes() -> None:
    """Unparsable numbers, wrong types, absurd values and bad times are rejected with where; others decode."""
    good = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.usage.output_tokens": 5,
    }
    request = _span_request(
        chat_a={**good, "gen_ai.usage.input_tokens": "abc"},
        chat_b={**good, "gen_ai.usage.output_tokens": -3},
        chat_c=good,
        invoke_agent_x={"gen_ai.operation.name": "invoke_agent", "driftwatch.task.success": "maybe"},
        chat_d={**good, "driftwatch.cost_usd": 1e9},
    )
    request.resource_spans[0].scope_spans[0].spans.add().CopyFrom(
        request.resource_spans[0].scope_spans[0].spans[2]
    )
    request.resource_spans[0].scope_spans[0].spans[5].start_time_unix_nano = 5
    decoded = OtlpDecoder().traces(request)
    assert [o.output_tokens for o in decoded.outcomes] == [5]
    assert decoded.rejected == 5
    where = "resource_spans[0].scope_spans[0].spans"
    assert decoded.errors == [
        f"{where}[0]: attribute 'gen_ai.usage.input_tokens' = 'abc' is not a number; "
        "expected a number such as 12.5",
        f"{where}[1]: attribute 'gen_ai.usage.output_tokens' = -3 is out of range; "
        "expected a number 0 to 1e9",
        f"{where}[3]: attribute 'driftwatch.task.success' = 'maybe' is not a boolean; expected true or false",
        f"{where}[4]: attribute 'driftwatch.cost_usd' = 1000000000.0 is out of range; "
        "expected a number 0 to 100000",
        f"{where}[5]: start_time_unix_nano = 5 is not a plausible event time; expected Unix nanoseconds "
        "between 2000 and 2200, such as 1795312088671000000",
    ]


def test_malformed_evaluations_and_garbage_never_raise() -> None:
    """An evaluation without a name or a score is rejected; odd attribute types and empty requests decode."""
    decoder = OtlpDecoder()
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    for attrs in ({"gen_ai.evaluation.score.value": 1.0}, {"gen_ai.evaluation.name": "x"}):
        record = records.add(time_unix_nano=1795312088671000000, event_name="gen_ai.evaluation.result")
        for key, value in attrs.items():
            kv = record.attributes.add(key=key)
            if isinstance(value, float):
                kv.value.double_value = value
            else:
                kv.value.string_value = value
    weird = records.add(time_unix_nano=1795312088671000000, event_name="gen_ai.evaluation.result")
    kv = weird.attributes.add(key="gen_ai.evaluation.name")
    kv.value.kvlist_value.values.add(key="a").value.string_value = "b"
    decoded = decoder.logs(request)
    assert decoded.outcomes == [] and decoded.rejected == 3
    assert decoded.errors[0].startswith("resource_logs[0].scope_logs[0].log_records[0]: attribute ")
    assert "neither 'gen_ai.evaluation.score.value' nor" in decoded.errors[1]
    assert decoder.traces(ExportTraceServiceRequest()) == Decoded()
    assert decoder.stats.logs == 3 and decoder.stats.rejected == 3


def test_stream_labels_come_from_configured_attributes_but_never_content() -> None:
    """Config.stream_labels are read from the item or its resource; content attributes are never labels."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "a", "language": "rust"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span(
        "chat m",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "customer.tier": "gold",
            "gen_ai.input.messages": "SECRET",
        },
    ):
        pass
    config = Config(stream_labels=["language", "customer.tier", "gen_ai.input.messages"])
    (outcome,) = OtlpDecoder(config).traces(encode_spans(exporter.get_finished_spans())).outcomes
    assert outcome.labels == {"language": "rust", "customer.tier": "gold", "provider": "anthropic"}


def test_decoder_pickles_with_its_state() -> None:
    """A decoder pickles mid-stream, open Claude Code prompts and span index included, and the copy
    goes on decoding exactly as the original: a call span finds its task span (sent in an earlier
    request) through the index, and the open prompts and sessions come out with the same outcomes."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with (
        tracer.start_as_current_span(
            "invoke_agent review",
            attributes={"gen_ai.operation.name": "invoke_agent", "driftwatch.task.label.repo": "core"},
        ),
        tracer.start_as_current_span(
            "chat claude-sonnet-4-6",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4-6",
                "gen_ai.usage.output_tokens": 9,
            },
        ),
    ):
        pass
    call, task = exporter.get_finished_spans()
    decoder = OtlpDecoder()
    assert [o.task for o in decoder.traces(encode_spans([task])).outcomes] == ["review"]
    half = len(PROTOBUF) // 2
    early = [o for path in PROTOBUF[:half] for o in feed(decoder, path)]
    assert decoder.open_sessions > 0  # prompts and sessions are open across the pickle

    copy = pickle.loads(pickle.dumps(decoder))
    assert copy.stats == decoder.stats
    later = [encode_spans([call]), *PROTOBUF[half:]]
    results = []
    for d in (decoder, copy):
        (child,) = d.traces(later[0]).outcomes
        assert (child.task, child.labels["repo"], child.output_tokens) == ("review", "core", 9)
        rest = [o for path in later[1:] for o in feed(d, path)] + d.expire(math.inf)
        results.append([dataclasses.asdict(o) for o in [child, *rest]])
    assert results[0] == results[1]
    # Claude Code outcomes came out after the pickle, from state opened before it.
    whole = decode_all(PROTOBUF)
    assert len(results[0]) - 1 == len(whole) - len(early) > 0
    assert copy.stats == decoder.stats and copy.open_sessions == decoder.open_sessions == 0


def test_evaluation_found_by_response_id_and_failed_evaluations_skipped() -> None:
    """With no parent span the evaluated call is found by its gen_ai.response.id; errored evaluations skip."""
    decoder = OtlpDecoder()
    decoder.traces(
        _span_request(
            chat_x={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic",
                "gen_ai.response.id": "msg_9",
            }
        )
    )
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    for error in ("", "timeout"):
        record = records.add(time_unix_nano=1795312088671000000, event_name="gen_ai.evaluation.result")
        attrs = {"gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.label": "not_relevant"}
        attrs.update({"gen_ai.response.id": "msg_9"} | ({"error.type": error} if error else {}))
        for key, value in attrs.items():
            record.attributes.add(key=key).value.string_value = value
    decoded = decoder.logs(request)
    assert decoded.rejected == 0
    (outcome,) = decoded.outcomes
    assert (outcome.task, outcome.success, outcome.service) == (
        "anthropic.messages:tone",
        False,
        "test-agent",
    )
