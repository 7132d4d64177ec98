"""Content in OTLP payloads: which attributes can hold prompt, reply or tool text, and removing it.

``is_content`` names them (never copied into a stream label, even when configured); ``redact``
removes them, and every other part the decoder does not read, from an export request before
``driftwatch serve`` journals it.
"""

from __future__ import annotations

import functools
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = ["CC_EVENTS", "is_content", "redact"]

#: Claude Code's event names (log record bodies or ``event.name``, with or without ``claude_code.``).
CC_EVENTS = {
    "user_prompt",
    "api_request",
    "api_error",
    "tool_result",
    "tool_decision",
    "assistant_response",
    "api_retries_exhausted",
}

#: Attributes that hold content (prompts, replies, instructions, tool inputs and results, errors with
#: text): never copied into a label, even when configured, and removed from a payload before it is
#: journalled (``redact``). Exact names, then name parts that mark content wherever they appear
#: (OpenLLMetry's ``gen_ai.prompt.0.content``, ``gen_ai.completion.1.tool_calls.0.arguments``,
#: ``llm.prompts``; OpenInference's ``llm.input_messages.0.message.content``, ``input.value``),
#: then last name parts (``traceloop.entity.input``, ``gen_ai.tool.call.result``, ``exception.message``).
_CONTENT = {
    "response",
    "error",
    "input.value",
    "output.value",
    "gen_ai.tool.definitions",
    "gen_ai.request.structured_output_schema",
}
_CONTENT_PARTS = {
    "prompt",
    "prompts",
    "user_prompt",
    "completion",
    "completions",
    "content",
    "contents",
    "messages",
    "input_messages",
    "output_messages",
    "system_instructions",
    "instructions",
    "arguments",
    "tool_input",
    "tool_parameters",
    "full_command",
    "explanation",
    "reasoning",
    "thinking",
}
_CONTENT_LAST = {
    "input",
    "output",
    "inputs",
    "outputs",
    "result",
    "results",
    "text",
    "body",
    "query",
    "message",
    "stacktrace",
    "parameters",
    "description",
}
#: Last name parts of identifiers and kinds under a content name (``prompt.id``, which Claude Code
#: prompts are joined by; ``gen_ai.prompt.0.role``; ``gen_ai.completion.0.tool_calls.0.name``).
_NOT_CONTENT_LAST = {"id", "role", "name", "type", "finish_reason"}
#: Name parts of counts under a content name (OpenInference's ``llm.token_count.prompt``,
#: ``llm.token_count.completion_details.reasoning``).
_NOT_CONTENT_PARTS = {"token_count"}


@functools.lru_cache(maxsize=4096)
def is_content(name: str) -> bool:
    """Whether an attribute named ``name`` may hold prompt, reply or tool text (case-insensitive)."""
    lowered = name.strip().lower()
    if lowered in _CONTENT:
        return True
    parts = lowered.split(".")
    if parts[-1] in _NOT_CONTENT_LAST or not _NOT_CONTENT_PARTS.isdisjoint(parts):
        return False
    return not _CONTENT_PARTS.isdisjoint(parts) or parts[-1] in _CONTENT_LAST


def _strip(kvs: Any) -> None:
    """Remove content attributes from a repeated KeyValue field, also inside key-value lists."""
    keep = [kv for kv in kvs if not is_content(kv.key)]
    if len(keep) != len(kvs):
        kept = [KeyValue(key=kv.key, value=kv.value) for kv in keep]
        del kvs[:]
        kvs.extend(kept)
    for kv in kvs:
        _strip_value(kv.value)


def _strip_value(value: AnyValue) -> None:
    kind = value.WhichOneof("value")
    if kind == "kvlist_value":
        _strip(value.kvlist_value.values)
    elif kind == "array_value":
        for item in value.array_value.values:
            _strip_value(item)


def _event_body(body: str) -> str:
    """What of a log record's string body the decoder reads: an event name, else nothing."""
    if body == "gen_ai.evaluation.result" or body in CC_EVENTS:
        return body
    if body.startswith("claude_code."):
        return body if body[12:] in CC_EVENTS else "claude_code.event"
    return ""


def redact(request: Message) -> None:
    """Remove, in place, every part of an export request that can hold content and that the decoder
    does not read: content attributes (``is_content``) everywhere, span status descriptions, links and
    events (but ``gen_ai.evaluation.result``), log bodies that are not event names, exemplars.

    Decoding the redacted request gives the same outcomes as the original: ``driftwatch serve``
    journals only the redacted form, so no prompt or reply text reaches its state file.
    """
    if isinstance(request, ExportTraceServiceRequest):
        for rs in request.resource_spans:
            _strip(rs.resource.attributes)
            for ss in rs.scope_spans:
                _strip(ss.scope.attributes)
                for span in ss.spans:
                    _strip(span.attributes)
                    span.status.message = ""
                    if span.links:
                        span.dropped_links_count += len(span.links)
                        del span.links[:]
                    kept = [e for e in span.events if e.name == "gen_ai.evaluation.result"]
                    if len(kept) != len(span.events):
                        span.dropped_events_count += len(span.events) - len(kept)
                        copies = [type(e)() for e in kept]
                        for copy, event in zip(copies, kept, strict=True):
                            copy.CopyFrom(event)
                        del span.events[:]
                        span.events.extend(copies)
                    for event in span.events:
                        _strip(event.attributes)
    elif isinstance(request, ExportLogsServiceRequest):
        for rl in request.resource_logs:
            _strip(rl.resource.attributes)
            for sl in rl.scope_logs:
                _strip(sl.scope.attributes)
                for record in sl.log_records:
                    _strip(record.attributes)
                    text = record.body.WhichOneof("value") == "string_value"
                    name = _event_body(record.body.string_value) if text else ""
                    record.ClearField("body")
                    if name:
                        record.body.string_value = name
    elif isinstance(request, ExportMetricsServiceRequest):
        for rm in request.resource_metrics:
            _strip(rm.resource.attributes)
            for sm in rm.scope_metrics:
                _strip(sm.scope.attributes)
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue
                    for point in getattr(getattr(metric, kind), "data_points", ()):
                        _strip(point.attributes)
                        if hasattr(point, "exemplars"):
                            del point.exemplars[:]
