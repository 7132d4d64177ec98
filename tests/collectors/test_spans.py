"""Call spans emitted whole at their end (collectors/_spans.py) against the SDK's start_span path."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    DEFAULT_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags, TraceState

from driftwatch.collectors._spans import SCOPE, CallSpan

START = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic"}
END = {**START, "gen_ai.usage.output_tokens": 40, "driftwatch.latency_s": 0.25, "driftwatch.task.name": "fix"}


def provider(**kwargs: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "agent"}), **kwargs)
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp, exporter


def otlp(span: ReadableSpan) -> ExportTraceServiceRequest:
    """The span as an OTLP exporter sends it, with ids and times blanked (they differ by nature)."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_spans([span]).SerializeToString())
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                s.trace_id = s.span_id = s.parent_span_id = b""
                s.start_time_unix_nano = s.end_time_unix_nano = 0
    return request


def test_exported_span_matches_start_span_path() -> None:
    """Encoded as OTLP, the emitted span equals what start_span/set_attributes/end exports."""
    tp, exported = provider()
    tracer = tp.get_tracer(SCOPE.name, SCOPE.version)
    CallSpan(tracer, "chat m", START).end(END, error="overloaded_error")
    api = tracer.start_span("chat m", kind=trace.SpanKind.CLIENT, attributes=START)
    api.set_attributes(END)
    api.set_status(trace.Status(StatusCode.ERROR, "overloaded_error"))
    api.end()
    ours, theirs = exported.get_finished_spans()
    assert otlp(ours) == otlp(theirs)
    assert ours.context is not None and theirs.context is not None
    assert ours.context.trace_flags == theirs.context.trace_flags  # sampled + random trace id
    assert ours.instrumentation_scope == theirs.instrumentation_scope
    assert ours.status.status_code is StatusCode.ERROR
    assert ours.start_time is not None and ours.end_time is not None
    assert ours.start_time <= ours.end_time


def test_parent_and_trace_come_from_the_context_at_start() -> None:
    """A call started inside a span is its child, even when it ends after that span is left."""
    tp, exported = provider()
    tracer = tp.get_tracer("driftwatch")
    with tracer.start_as_current_span("task") as task:
        call = CallSpan(tracer, "chat m", START)
    context = call.end(END)
    assert context is not None and context.is_valid
    span = next(s for s in exported.get_finished_spans() if s.name == "chat m")
    assert span.parent is not None and span.parent.span_id == task.get_span_context().span_id
    assert span.context is not None and span.context.trace_id == task.get_span_context().trace_id
    assert context.span_id == span.context.span_id


def test_sampler_decides_and_nothing_is_exported_when_it_drops() -> None:
    """ALWAYS_OFF and ratio 0 export nothing; the call still gets a valid, unsampled context."""
    for sampler in (ALWAYS_OFF, TraceIdRatioBased(0.0)):
        tp, exported = provider(sampler=sampler)
        context = CallSpan(tp.get_tracer("d"), "chat m", START).end(END)
        assert exported.get_finished_spans() == ()
        assert context is not None and context.is_valid and not context.trace_flags.sampled


def test_unsampled_parent_is_followed() -> None:
    """With the default ParentBased sampler, a call under an unsampled remote parent is not exported."""
    tp, exported = provider(sampler=ParentBased(TraceIdRatioBased(1.0)))
    parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    with trace.use_span(NonRecordingSpan(parent)):
        call = CallSpan(tp.get_tracer("d"), "chat m", START)
    context = call.end(END)
    assert exported.get_finished_spans() == ()
    assert context is not None and context.trace_id == 0x1234


def test_tracer_that_is_not_the_sdk_gets_the_start_span_path() -> None:
    """The API's no-op tracer works through start_span: no error, a context back."""
    context = CallSpan(trace.NoOpTracer(), "chat m", START).end(END, error="x")
    assert context is not None and not context.is_valid


class Exploding(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("processor bug")


def test_span_processor_error_is_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    """A processor that raises does not raise into the caller, which still gets the span's context;
    the failure is logged (at debug: it is the host's processor, and it would repeat every call)."""
    tp = TracerProvider()
    tp.add_span_processor(Exploding())
    with caplog.at_level(logging.DEBUG, logger="driftwatch"):
        context = CallSpan(tp.get_tracer("d"), "chat m", START).end(END)
    assert context is not None and context.is_valid and context.trace_flags.sampled
    (record,) = [r for r in caplog.records if r.name == "driftwatch"]
    assert record.levelno == logging.DEBUG and record.exc_info is not None
    assert "processor bug" in str(record.exc_info[1])


def test_span_limits_apply_as_in_the_sdk() -> None:
    """With attribute count and length limits set, the span is cut exactly as start_span cuts it."""
    tp, exported = provider(span_limits=SpanLimits(max_span_attributes=3, max_attribute_length=4))
    tracer = tp.get_tracer("d")
    end = {**END, "driftwatch.task.label.note": "abcdefghij"}
    CallSpan(tracer, "chat m", START).end(end)
    api = tracer.start_span("chat m", kind=trace.SpanKind.CLIENT, attributes=START)
    api.set_attributes(end)
    api.end()
    ours, theirs = exported.get_finished_spans()
    assert dict(ours.attributes or {}) == dict(theirs.attributes or {})
    assert len(ours.attributes or {}) == 3 and ours.dropped_attributes == theirs.dropped_attributes > 0


class Tagging(Sampler):
    """Samples everything, adds an attribute, and remembers what it was shown."""

    def __init__(self) -> None:
        self.shown: list[dict[str, Any]] = []

    def should_sample(self, parent_context: Any, trace_id: int, name: str, *args: Any, **kwargs: Any) -> Any:
        attributes = args[1] if len(args) > 1 else kwargs.get("attributes")
        self.shown.append(dict(attributes or {}))
        return SamplingResult(Decision.RECORD_AND_SAMPLE, {"k": "sampler", "only.sampler": 1})

    def get_description(self) -> str:
        return "Tagging"


def test_sampler_sees_start_attributes_and_the_call_wins_over_its_attributes() -> None:
    """Like start_span: the sampler is shown the start attributes; a call attribute overwrites its own."""
    sampler = Tagging()
    tp, exported = provider(sampler=sampler)
    CallSpan(tp.get_tracer("d"), "chat m", START).end({**END, "k": "end"})
    (span,) = exported.get_finished_spans()
    assert sampler.shown == [START]
    attributes = dict(span.attributes or {})
    assert attributes["k"] == "end" and attributes["only.sampler"] == 1


def test_processor_error_keeps_the_context() -> None:
    """A processor that raises does not cost the call its ids (another may have taken the span)."""
    tp, exported = provider()
    tp.add_span_processor(Exploding())
    context = CallSpan(tp.get_tracer("d"), "chat m", START).end(END)
    assert context is not None and context.is_valid
    assert len(exported.get_finished_spans()) == 1


def test_no_op_tracer_span_is_not_recording_and_sdk_span_is() -> None:
    """recording lets the caller skip building attributes a no-op span would drop."""
    tp, _ = provider()
    assert CallSpan(tp.get_tracer("d"), "chat m", START).recording
    assert not CallSpan(trace.NoOpTracer(), "chat m", START).recording


class Delegating(Sampler):
    """Asks ``inner`` (a sampler of another type, so the span path calls it)."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return self.inner.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return "Delegating"


SAMPLED, UNSAMPLED = TraceFlags(TraceFlags.SAMPLED), TraceFlags(TraceFlags.DEFAULT)
PARENTS = [
    None,
    SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=SAMPLED, trace_state=TraceState([("k", "v")])),
    SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=UNSAMPLED, trace_state=TraceState([("a", "b")])),
    SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=SAMPLED, trace_state=TraceState([("c", "d")])),
    SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=UNSAMPLED),
]


@pytest.mark.parametrize(
    "sampler",
    [
        DEFAULT_ON,
        DEFAULT_OFF,
        ALWAYS_ON,
        ALWAYS_OFF,
        StaticSampler(Decision.RECORD_ONLY),
        ParentBased(ALWAYS_OFF, remote_parent_not_sampled=ALWAYS_ON, local_parent_sampled=ALWAYS_OFF),
    ],
)
def test_stock_samplers_decide_as_when_called(sampler: Sampler) -> None:
    """The SDK's static samplers (the default among them) are not called: for every kind of parent
    the span gets the decision, trace flags, trace state and attributes the sampler gives it."""
    for parent in PARENTS:
        seen = []
        for used in (sampler, Delegating(sampler)):
            tp, exported = provider(sampler=used)
            with trace.use_span(NonRecordingSpan(parent)) if parent else trace.use_span(trace.INVALID_SPAN):
                call = CallSpan(tp.get_tracer("d"), "chat m", START)
            context = call.end(END)
            assert context is not None
            spans = exported.get_finished_spans()
            seen.append(
                (
                    context.trace_flags,
                    context.trace_state,
                    context.trace_id if parent else None,
                    [(dict(span.attributes or {}), otlp(span)) for span in spans],
                )
            )
        assert seen[0] == seen[1], (sampler.get_description(), parent)
