"""OTLP payloads → Outcomes: the pure decoding layer that ``driftwatch serve`` calls.

Understood: driftwatch's own spans (``invoke_agent {task}`` with ``driftwatch.task.*``, ``chat {model}``
or the SDK's ``anthropic.messages.create`` annotated with ``driftwatch.*``); GenAI-convention call
spans from other instrumentations (OpenLLMetry's ``anthropic.chat``, the upstream OpenTelemetry GenAI
instrumentation), reading ``gen_ai.provider.name`` and the older ``gen_ai.system``; GenAI evaluation
results (``gen_ai.evaluation.result`` log records and span events); and Claude Code's telemetry
(events as log records, metrics, beta spans; see docs/claude-code.md).

The decoder never raises: a malformed item (span, log record, data point) is counted in
``Decoded.rejected`` with a message naming where it is and what is wrong, and the rest of the
request decodes. Its state (open Claude Code prompts and sessions, a bounded span index) is plain
data driven only by the event timestamps in the payloads: it pickles, and replaying the same
requests into an unpickled copy gives identical outcomes.

Content (prompts, replies, tool inputs and results: ``is_content``) is never read, not even as a
configured stream label; ``redact`` removes it, and every other part the decoder does not read, from
a request before ``driftwatch serve`` journals it.
"""

from __future__ import annotations

import base64
import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from driftwatch._config import Config
from driftwatch._outcome import Outcome
from driftwatch.collectors._claude_code import PromptAgg, SessionAgg, split_model

__all__ = ["Decoded", "DecoderStats", "OtlpDecoder", "is_content", "redact", "request_from_json"]

RequestT = TypeVar(
    "RequestT", ExportTraceServiceRequest, ExportLogsServiceRequest, ExportMetricsServiceRequest
)

MAX_ERRORS = 10
#: Spans remembered (by span id) so that evaluation results and child call spans find their task.
MAX_SPANS = 10_000
#: Prompt ids / trace ids of closed prompts remembered, so late data is counted, not re-opened.
MAX_CLOSED = 20_000
#: Open prompts per session; beyond, the oldest is closed early.
MAX_PROMPTS_PER_SESSION = 64
#: Call and tool records kept across all open prompts; past it, requests and tool uses are only
#: counted into their prompt's totals (no outcome of their own): a hard bound on memory.
MAX_RECORDS = 200_000
#: Open prompts across all sessions; items of further new prompts are dropped and counted.
MAX_OPEN_PROMPTS = 20_000
#: Metric series (name, type, model) per session; points of further series are rejected.
MAX_SERIES_PER_SESSION = 64
#: A prompt whose interaction span has ended is emitted this long (event time) after its end,
#: leaving room for its events, which Claude Code exports in separate batches.
ENDED_GRACE_S = 30.0

_MAX_COUNT = 1e9
_MAX_DURATION_S = 7 * 86400.0
_MAX_COST = 1e5
_MIN_TIME = 946684800.0  # 2000-01-01
_MAX_TIME = 7258118400.0  # 2200-01-01

_TRACES_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
_DELTA, _CUMULATIVE = 1, 2
_CALL_OPERATIONS = {"chat", "text_completion", "generate_content"}
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


@functools.lru_cache(maxsize=4096)
def is_content(name: str) -> bool:
    """Whether an attribute named ``name`` may hold prompt, reply or tool text (case-insensitive)."""
    lowered = name.strip().lower()
    if lowered in _CONTENT:
        return True
    parts = lowered.split(".")
    if parts[-1] in _NOT_CONTENT_LAST:
        return False
    return not _CONTENT_PARTS.isdisjoint(parts) or parts[-1] in _CONTENT_LAST


_PASS = {"pass", "passed", "true", "success", "succeeded", "correct", "relevant", "yes", "ok", "good"}
_FAIL = {"fail", "failed", "false", "failure", "incorrect", "not_relevant", "irrelevant", "no", "bad"}
_CC_EVENTS = {
    "user_prompt",
    "api_request",
    "api_error",
    "tool_result",
    "tool_decision",
    "assistant_response",
    "api_retries_exhausted",
}


@dataclass
class Decoded:
    """What one export request became: outcomes, plus how many items were malformed and why."""

    outcomes: list[Outcome] = field(default_factory=list)
    rejected: int = 0
    """Items (spans / log records / data points) that were malformed and skipped."""
    errors: list[str] = field(default_factory=list)
    """At most ``MAX_ERRORS`` messages, each naming where, e.g. ``resource_logs[0].scope_logs[1].
    log_records[3]: attribute 'duration_ms' = 'abc' is not a number; expected …``."""

    def reject(self, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)


@dataclass
class DecoderStats:
    """Counters since the decoder was made (they pickle with it)."""

    spans: int = 0
    logs: int = 0
    points: int = 0
    outcomes: int = 0
    rejected: int = 0
    sessions_dropped: int = 0
    """Items for a new Claude Code session refused because ``max_sessions`` were open."""
    late: int = 0
    """Items for a Claude Code prompt that had already been emitted (dropped)."""
    prompts_closed_early: int = 0
    prompts_dropped: int = 0
    """Items for a new prompt refused because ``MAX_OPEN_PROMPTS`` were open."""
    """Prompts emitted before their end because a session had too many open."""


class _Bad(Exception):
    """A malformed item; the message names where and the valid form."""


@dataclass(slots=True)
class _SpanInfo:
    task: str
    service: str
    labels: dict[str, str]
    task_id: str | None
    model: str | None
    trace_id: str


_ID_FIELDS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def _ids_to_base64(node: Any) -> Any:
    # OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping expects base64 for bytes.
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    out[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    out[key] = value  # not hex: let the parser report it
            else:
                out[key] = _ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [_ids_to_base64(v) for v in node]
    return node


def request_from_json(request_type: type[RequestT], data: bytes | str) -> RequestT:
    """An export request from an OTLP/JSON body (hex ids, camelCase); raises ValueError naming the problem."""
    try:
        tree = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"OTLP/JSON body is not valid JSON: {exc}") from None
    if not isinstance(tree, dict):
        raise ValueError(
            f'OTLP/JSON body must be an object such as {{"resourceSpans": [...]}}, got {type(tree).__name__}'
        )
    message = request_type()
    try:
        json_format.ParseDict(_ids_to_base64(tree), message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise ValueError(f"OTLP/JSON body does not match {request_type.__name__}: {exc}") from None
    return message


# -- content removal ---------------------------------------------------------------------------


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
    if body == "gen_ai.evaluation.result" or body in _CC_EVENTS:
        return body
    if body.startswith("claude_code."):
        return body if body[12:] in _CC_EVENTS else "claude_code.event"
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


# -- attribute values ---------------------------------------------------------------------------


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":  # the common case first: most attributes are strings
        return v.string_value
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {x.key: _value(x.value) for x in v.kvlist_value.values}
    return getattr(v, kind)


def _attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        out[kv.key] = _value(kv.value)
    return out


def _fmt(x: float) -> str:
    return f"{x:g}".replace("e+0", "e").replace("e+", "e")


def _number(attrs: Mapping[str, Any], key: str, where: str, lo: float, hi: float) -> float | None:
    """A number (Claude Code sends some as strings) within [lo, hi], or None when absent."""
    value = attrs.get(key)
    if value is None or value == "":
        return None
    if type(value) is int and lo <= value <= hi:  # the common case (OTLP int_value), same result as below
        return float(value)
    if isinstance(value, bool):
        number = math.nan
    elif isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = math.nan
    else:
        number = math.nan
    if math.isnan(number) and not (isinstance(value, float) and math.isnan(value)):
        raise _Bad(f"{where}: attribute '{key}' = {value!r} is not a number; expected a number such as 12.5")
    if not math.isfinite(number) or not lo <= number <= hi:
        raise _Bad(
            f"{where}: attribute '{key}' = {value!r} is out of range; "
            f"expected a number {_fmt(lo)} to {_fmt(hi)}"
        )
    return number


def _count(attrs: Mapping[str, Any], key: str, where: str) -> int | None:
    value = attrs.get(key)
    if value is None:
        return None
    if type(value) is int and 0 <= value <= _MAX_COUNT:  # the common case, same result as below
        return value
    number = _number(attrs, key, where, 0, _MAX_COUNT)
    if number is None:
        return None
    if number != int(number):
        raise _Bad(
            f"{where}: attribute '{key}' = {attrs[key]!r} is not a whole number; expected a count >= 0"
        )
    return int(number)


def _seconds(attrs: Mapping[str, Any], key: str, where: str, ms: bool = False) -> float | None:
    """A duration in seconds; ``ms``: the attribute is in milliseconds (Claude Code's ``*_ms``)."""
    per_second = 1000.0 if ms else 1.0
    number = _number(attrs, key, where, 0, _MAX_DURATION_S * per_second)
    return None if number is None else number / per_second


def _bool(attrs: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise _Bad(f"{where}: attribute '{key}' = {value!r} is not a boolean; expected true or false")


def _text(attrs: Mapping[str, Any], key: str) -> str | None:
    value = attrs.get(key)
    if value is None:
        return None
    if type(value) is str:  # the common case, same result as below
        text = value.strip()
        return text[:256] if text else None
    if isinstance(value, bool):
        return None
    if isinstance(value, str | int | float):
        text = str(value).strip()
        return text[:256] if text else None
    return None


def _time(ns: int, fallback_ns: int, where: str, what: str = "time_unix_nano") -> float:
    t = (ns or fallback_ns) / 1e9
    if not _MIN_TIME <= t <= _MAX_TIME:
        raise _Bad(
            f"{where}: {what} = {ns} is not a plausible event time; expected Unix nanoseconds "
            "between 2000 and 2200, such as 1795312088671000000"
        )
    return t


def _hex(data: bytes) -> str | None:
    return data.hex() if data and any(data) else None


def _model(name: str | None) -> tuple[str | None, dict[str, str]]:
    if not name:
        return None, {}
    bare, variant = split_model(name)
    return bare, ({"context_window": variant} if variant else {})


def _began(t: float, values: Mapping[str, Any]) -> float:
    """Claude Code writes an event when the request or tool use ends: it began ``duration`` earlier."""
    latency = values.get("latency_s")
    return t - latency if isinstance(latency, float) else t


def _pass_fail(label: str | None) -> bool | None:
    if label is None:
        return None
    lowered = label.strip().lower()
    if lowered in _PASS:
        return True
    if lowered in _FAIL:
        return False
    return None


class OtlpDecoder:
    """Decodes OTLP export requests (traces, logs, metrics) into Outcomes.

    Claude Code prompts and sessions are aggregated across requests; ``expire(now)`` emits the ones
    idle since event time ``now - session_idle_s`` (``expire(math.inf)`` emits everything). At most
    ``max_sessions`` sessions are open; items for further sessions are dropped and counted.
    """

    #: A class default too: a decoder unpickled from a checkpoint written before it existed has none.
    check_only = False

    def __init__(
        self,
        config: Config | None = None,
        *,
        max_sessions: int = 10_000,
        session_idle_s: float = 1800.0,
        check_only: bool = False,
    ) -> None:
        self.config = config if config is not None else Config()
        # check_only: GenAI call spans (the bulk of most trace exports) are only checked, not turned
        # into outcomes: ``rejected`` and ``errors`` are those of a full decode, ``outcomes`` lack
        # them. For the receiver's item check, which needs the verdict, never the outcomes.
        self.check_only = check_only
        self.max_sessions = max_sessions
        self.session_idle_s = session_idle_s
        self.stats = DecoderStats()
        self._sessions: dict[str, SessionAgg] = {}
        self._aliases: dict[str, tuple[str, str]] = {}
        self._closed: dict[str, None] = {}
        self._spans: dict[str, _SpanInfo] = {}
        self._records = 0
        self._open_prompts = 0

    # -- public -----------------------------------------------------------------------------------
    def traces(self, request: ExportTraceServiceRequest) -> Decoded:
        """Outcomes from the spans of one trace export request."""
        return self._guarded(self._traces, request)

    def logs(self, request: ExportLogsServiceRequest) -> Decoded:
        """Outcomes from the log records (events) of one logs export request."""
        return self._guarded(self._logs, request)

    def metrics(self, request: ExportMetricsServiceRequest) -> Decoded:
        """Claude Code metric points go into their session's totals; outcomes come out on expiry."""
        return self._guarded(self._metrics, request)

    def _guarded(self, decode: Callable[[Any, Decoded], None], request: Any) -> Decoded:
        dec = Decoded()
        try:
            decode(request, dec)
        except Exception as exc:  # never raise into the receiver
            dec.reject(f"request: could not decode ({type(exc).__name__}: {exc})")
        return self._done(dec)

    def expire(self, now: float) -> list[Outcome]:
        """Emit prompts and sessions idle since event time ``now - session_idle_s``.

        A prompt whose interaction span ended goes ``ENDED_GRACE_S`` after its end. Call it
        periodically with the current time, and with ``math.inf`` to flush at shutdown.
        """
        out: list[Outcome] = []
        try:
            cutoff = now - self.session_idle_s
            grace = min(ENDED_GRACE_S, self.session_idle_s)
            for skey in list(self._sessions):
                session = self._sessions[skey]
                for pkey in list(session.prompts):
                    prompt = session.prompts[pkey]
                    if prompt.last <= cutoff or (prompt.ended is not None and prompt.ended + grace <= now):
                        self._close_prompt(session, pkey, out)
                if not session.prompts and session.last <= cutoff:
                    final = session.outcome()
                    if final is not None:
                        out.append(final)
                    del self._sessions[skey]
        except Exception:  # pragma: no cover - defensive: the service must keep running
            pass
        self.stats.outcomes += len(out)
        return out

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    # -- plumbing ---------------------------------------------------------------------------------
    def _done(self, dec: Decoded) -> Decoded:
        self.stats.outcomes += len(dec.outcomes)
        self.stats.rejected += dec.rejected
        return dec

    def _labels(self, attrs: Mapping[str, Any], res: Mapping[str, Any]) -> dict[str, str]:
        """Version markers and the configured stream labels (item attribute, else resource)."""
        labels: dict[str, str] = {}
        version = _text(attrs, "app.version") or _text(res, "app.version") or _text(res, "service.version")
        if version:
            labels["app.version"] = version[:128]
        for name in self.config.stream_labels:
            if is_content(name):
                continue
            value = _text(attrs, name) or _text(res, name)
            if value is not None:
                labels[name] = value[:128]
        return labels

    def _remember(self, span_id: str | None, info: _SpanInfo) -> None:
        if span_id is None:
            return
        self._spans.pop(span_id, None)
        self._spans[span_id] = info
        while len(self._spans) > MAX_SPANS:
            del self._spans[next(iter(self._spans))]

    # -- traces -----------------------------------------------------------------------------------
    def _traces(self, request: ExportTraceServiceRequest, dec: Decoded) -> None:
        # First pass: agent (task) spans, so that call spans and evaluations in the same request
        # find their task even though children end, and are exported, before their parent. Each
        # span's attributes are converted once here and reused by the second pass (None: they
        # failed to convert, and the second pass converts again to report why).
        resources: list[tuple[dict[str, Any], str]] = []
        span_attrs: list[dict[str, Any] | None] = []
        for rs in request.resource_spans:
            res = _attrs(rs.resource.attributes)
            service = _text(res, "service.name") or "unknown_service"
            resources.append((res, service))
            for ss in rs.scope_spans:
                for span in ss.spans:
                    attrs: dict[str, Any] | None = None
                    try:
                        attrs = _attrs(span.attributes)
                        if self._is_task_span(span.name, attrs):
                            self._remember(_hex(span.span_id), self._task_info(span, attrs, res, service))
                    except Exception:
                        pass  # reported by the second pass
                    span_attrs.append(attrs)
        at = 0
        for ri, rs in enumerate(request.resource_spans):
            res, service = resources[ri]
            for si, ss in enumerate(rs.scope_spans):
                for pi, span in enumerate(ss.spans):
                    attrs = span_attrs[at]
                    at += 1
                    self.stats.spans += 1
                    where = f"resource_spans[{ri}].scope_spans[{si}].spans[{pi}]"
                    try:
                        self._span(span, res, service, where, dec, attrs)
                    except _Bad as exc:
                        dec.reject(str(exc))
                    except Exception as exc:
                        dec.reject(f"{where}: could not decode ({type(exc).__name__}: {exc})")

    @staticmethod
    def _is_task_span(name: str, attrs: Mapping[str, Any]) -> bool:
        return attrs.get("gen_ai.operation.name") == "invoke_agent" or name.startswith("invoke_agent")

    def _task_info(
        self, span: Any, attrs: Mapping[str, Any], res: Mapping[str, Any], service: str
    ) -> _SpanInfo:
        name = (
            _text(attrs, "driftwatch.task.name")
            or _text(attrs, "gen_ai.agent.name")
            or span.name.removeprefix("invoke_agent").strip()
            or "agent"
        )
        labels = self._labels(attrs, res)
        for key, value in attrs.items():
            if key.startswith("driftwatch.task.label.") and value is not None:
                labels[key[22:]] = str(value)[:128]
        model, _ = _model(_text(attrs, "gen_ai.response.model") or _text(attrs, "gen_ai.request.model"))
        return _SpanInfo(
            task=name,
            service=service,
            labels=labels,
            task_id=_text(attrs, "driftwatch.task.id") or _text(attrs, "gen_ai.agent.id"),
            model=model,
            trace_id=span.trace_id.hex(),
        )

    def _span(
        self,
        span: Any,
        res: Mapping[str, Any],
        service: str,
        where: str,
        dec: Decoded,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        if attrs is None:
            attrs = _attrs(span.attributes)
        start = _time(span.start_time_unix_nano, 0, where, "start_time_unix_nano")
        end = _time(span.end_time_unix_nano, span.start_time_unix_nano, where, "end_time_unix_nano")
        if end < start:
            raise _Bad(f"{where}: end_time_unix_nano is before start_time_unix_nano; expected end >= start")
        name: str = span.name
        if name.startswith("claude_code."):
            self._claude_span(span, name, attrs, res, service, start, end, where, dec)
        elif self._is_task_span(name, attrs):
            dec.outcomes.append(self._task_span(span, attrs, res, service, start, end, where))
        elif (
            attrs.get("gen_ai.operation.name") in _CALL_OPERATIONS
            or name in ("anthropic.messages.create", "anthropic.chat")
            or (
                "gen_ai.operation.name" not in attrs
                and ("gen_ai.system" in attrs or "gen_ai.provider.name" in attrs)
                and "gen_ai.request.model" in attrs
            )
        ):
            if self.check_only:
                self._check_call_span(attrs, where)
            else:
                dec.outcomes.append(self._call_span(span, attrs, res, service, start, end, where))
        for ei, event in enumerate(span.events):
            if event.name == "gen_ai.evaluation.result":
                ewhere = f"{where}.events[{ei}]"
                t = _time(event.time_unix_nano, span.end_time_unix_nano, ewhere)
                outcome = self._evaluation(
                    _attrs(event.attributes), res, service, _hex(span.span_id), t, ewhere
                )
                if outcome is None:
                    continue
                outcome.trace_id = _hex(span.trace_id)
                outcome.span_id = _hex(span.span_id)
                dec.outcomes.append(outcome)

    def _task_span(
        self,
        span: Any,
        attrs: Mapping[str, Any],
        res: Mapping[str, Any],
        service: str,
        start: float,
        end: float,
        where: str,
    ) -> Outcome:
        info = self._task_info(span, attrs, res, service)
        span_id = _hex(span.span_id)
        self._remember(span_id, info)
        outcome = Outcome(
            task=info.task,
            time=start,
            kind="task",
            service=service,
            task_id=info.task_id,
            model=info.model,
            labels=dict(info.labels),
            trace_id=_hex(span.trace_id),
            span_id=span_id,
        )
        outcome.success = _bool(attrs, "driftwatch.task.success", where)
        if outcome.success is None and span.status.code == _TRACES_ERROR:
            outcome.success = False
        outcome.score = _number(attrs, "driftwatch.task.score", where, -1e12, 1e12)
        latency = _seconds(attrs, "driftwatch.task.latency_s", where)
        outcome.latency_s = latency if latency is not None else end - start
        outcome.ttft_s = _seconds(attrs, "driftwatch.task.ttft_s", where)
        self._usage(outcome, attrs, where)
        outcome.cost_usd = _number(attrs, "driftwatch.task.cost_usd", where, 0, _MAX_COST)
        outcome.tool_calls = _count(attrs, "driftwatch.task.tool_calls", where)
        outcome.tool_errors = _count(attrs, "driftwatch.task.tool_errors", where)
        outcome.api_errors = _count(attrs, "driftwatch.task.api_errors", where)
        outcome.error_type = _text(attrs, "error.type")
        outcome.stop_reason = _text(attrs, "driftwatch.task.stop_reason")
        return outcome

    def _usage(self, outcome: Outcome, attrs: Mapping[str, Any], where: str) -> None:
        """GenAI usage; ``gen_ai.usage.input_tokens`` includes cached tokens (semconv): subtracted."""
        inp, out, read, write = self._usage_counts(attrs, where)
        cached = (read or 0) + (write or 0)
        if inp is not None and cached and inp >= cached:
            inp -= cached
        outcome.input_tokens = inp
        outcome.output_tokens = out
        outcome.cache_read_tokens = read
        outcome.cache_write_tokens = write

    @staticmethod
    def _usage_counts(
        attrs: Mapping[str, Any], where: str
    ) -> tuple[int | None, int | None, int | None, int | None]:
        """Input, output, cache-read and cache-write tokens as sent (each checked; None when absent)."""
        inp = _count(attrs, "gen_ai.usage.input_tokens", where)
        if inp is None:
            inp = _count(attrs, "gen_ai.usage.prompt_tokens", where)  # older instrumentations
        out = _count(attrs, "gen_ai.usage.output_tokens", where)
        if out is None:
            out = _count(attrs, "gen_ai.usage.completion_tokens", where)
        read = _count(attrs, "gen_ai.usage.cache_read.input_tokens", where)
        if read is None:
            read = _count(attrs, "gen_ai.usage.cache_read_input_tokens", where)  # OpenLLMetry
        write = _count(attrs, "gen_ai.usage.cache_write.input_tokens", where)
        if write is None:
            write = _count(attrs, "gen_ai.usage.cache_creation.input_tokens", where)
        if write is None:
            write = _count(attrs, "gen_ai.usage.cache_creation_input_tokens", where)
        return inp, out, read, write

    @classmethod
    def _check_call_span(cls, attrs: Mapping[str, Any], where: str) -> None:
        """The checks of ``_call_span``, in its order, without building the outcome (``check_only``).

        Keep the two in step: a check added there goes here too (tests/collectors/
        test_otlp_values.py compares both on malformed values of every attribute this module names).
        """
        _count(attrs, "http.response.status_code", where)
        _seconds(attrs, "driftwatch.latency_s", where)
        if _seconds(attrs, "driftwatch.ttft_s", where) is None:
            _seconds(attrs, "gen_ai.response.time_to_first_chunk", where)
        cls._usage_counts(attrs, where)
        _count(attrs, "driftwatch.tool_calls", where)
        _number(attrs, "driftwatch.cost_usd", where, 0, _MAX_COST)

    def _call_span(
        self,
        span: Any,
        attrs: Mapping[str, Any],
        res: Mapping[str, Any],
        service: str,
        start: float,
        end: float,
        where: str,
    ) -> Outcome:
        # Every check (a _count, _seconds, _number that can raise _Bad) is mirrored, in the same
        # order, in _check_call_span.
        provider = (
            _text(attrs, "gen_ai.provider.name") or _text(attrs, "gen_ai.system") or ""
        ).lower() or None
        operation = _text(attrs, "gen_ai.operation.name") or "chat"
        request_model, _ = _model(_text(attrs, "gen_ai.request.model"))
        model, model_labels = _model(
            _text(attrs, "gen_ai.response.model") or _text(attrs, "gen_ai.request.model")
        )
        own_task = _text(attrs, "driftwatch.task.name")
        # driftwatch's call spans say their task themselves; others inherit their agent span's.
        parent = None if own_task else self._spans.get(_hex(span.parent_span_id) or "")
        task = own_task or (parent.task if parent else None)
        if task is None:
            task = "anthropic.messages" if provider == "anthropic" else f"{provider or 'gen_ai'}.{operation}"
        labels: dict[str, str] = dict(parent.labels) if parent is not None else {}
        labels.update(self._labels(attrs, res))
        labels.update(model_labels)
        for key, value in attrs.items():
            if key.startswith("driftwatch.task.label.") and value is not None:
                labels[key[22:]] = str(value)[:128]
        stream_end = _text(attrs, "driftwatch.stream.end")
        if stream_end:
            labels["stream_end"] = stream_end
        if provider:
            labels["provider"] = provider
        status = _count(attrs, "http.response.status_code", where)
        error_type = _text(attrs, "driftwatch.error_type") or _text(attrs, "error.type")
        failed = span.status.code == _TRACES_ERROR or error_type is not None or (status or 0) >= 400
        if failed and error_type is None:
            error_type = str(status) if status else "error"
        outcome = Outcome(
            task=task,
            time=start,
            kind="call",
            service=service,
            task_id=_text(attrs, "driftwatch.task.id") or (parent.task_id if parent else None),
            model=model,
            request_model=request_model,
            labels=labels,
            success=not failed,
            error_type=error_type if failed else None,
            trace_id=_hex(span.trace_id),
            span_id=_hex(span.span_id),
        )
        latency = _seconds(attrs, "driftwatch.latency_s", where)
        outcome.latency_s = latency if latency is not None else end - start
        ttft = _seconds(attrs, "driftwatch.ttft_s", where)
        if ttft is None:
            ttft = _seconds(attrs, "gen_ai.response.time_to_first_chunk", where)
        outcome.ttft_s = ttft
        self._usage(outcome, attrs, where)
        outcome.tool_calls = _count(attrs, "driftwatch.tool_calls", where)
        outcome.cost_usd = _number(attrs, "driftwatch.cost_usd", where, 0, _MAX_COST)
        reasons = attrs.get("gen_ai.response.finish_reasons")
        if isinstance(reasons, list) and reasons and isinstance(reasons[0], str):
            outcome.stop_reason = reasons[0]
        else:
            outcome.stop_reason = _text(attrs, "anthropic.message.stop_reason") or _text(
                attrs, "gen_ai.response.finish_reasons"
            )
        info = _SpanInfo(task, service, labels, outcome.task_id, model, span.trace_id.hex())
        self._remember(outcome.span_id, info)
        response_id = _text(attrs, "gen_ai.response.id")
        if response_id:
            self._remember(f"r:{response_id}", info)
        return outcome

    # -- evaluations ------------------------------------------------------------------------------
    def _evaluation(
        self,
        attrs: Mapping[str, Any],
        res: Mapping[str, Any],
        service: str,
        parent_span: str | None,
        t: float,
        where: str,
    ) -> Outcome | None:
        """A score for the evaluated span's task; None when the evaluation itself failed (``error.type``)."""
        name = _text(attrs, "gen_ai.evaluation.name")
        if name is None:
            raise _Bad(
                f"{where}: attribute 'gen_ai.evaluation.name' is missing; expected the evaluation's "
                "name such as 'relevance'"
            )
        score = _number(attrs, "gen_ai.evaluation.score.value", where, -1e12, 1e12)
        label = _text(attrs, "gen_ai.evaluation.score.label")
        if score is None and label is None:
            raise _Bad(
                f"{where}: evaluation '{name}' has neither 'gen_ai.evaluation.score.value' nor "
                "'gen_ai.evaluation.score.label'; expected a score such as 0.8 or a label such as 'pass'"
            )
        if _text(attrs, "error.type"):
            return None  # the evaluator failed: no verdict on the evaluated output
        info = self._spans.get(parent_span or "")
        response_id = _text(attrs, "gen_ai.response.id")
        if info is None and response_id:
            # Semconv: without a parent span, the evaluated completion is named by its response id.
            info = self._spans.get(f"r:{response_id}")
        labels = dict(info.labels) if info is not None else {}
        labels.update(self._labels(attrs, res))
        return Outcome(
            # One stream per evaluated task and evaluation: scores of different evaluators differ in scale.
            task=f"{info.task if info is not None else 'evaluation'}:{name}",
            time=t,
            kind="task",
            service=info.service if info is not None else service,
            task_id=info.task_id if info is not None else None,
            model=info.model if info is not None else None,
            labels=labels,
            score=score,
            success=_pass_fail(label),
        )

    # -- logs -------------------------------------------------------------------------------------
    def _logs(self, request: ExportLogsServiceRequest, dec: Decoded) -> None:
        for ri, rl in enumerate(request.resource_logs):
            res = _attrs(rl.resource.attributes)
            service = _text(res, "service.name") or "unknown_service"
            for si, sl in enumerate(rl.scope_logs):
                scope = sl.scope.name
                for li, record in enumerate(sl.log_records):
                    self.stats.logs += 1
                    where = f"resource_logs[{ri}].scope_logs[{si}].log_records[{li}]"
                    try:
                        self._log(record, scope, res, service, where, dec)
                    except _Bad as exc:
                        dec.reject(str(exc))
                    except Exception as exc:
                        dec.reject(f"{where}: could not decode ({type(exc).__name__}: {exc})")

    def _log(
        self, record: Any, scope: str, res: Mapping[str, Any], service: str, where: str, dec: Decoded
    ) -> None:
        attrs = _attrs(record.attributes)
        body = record.body.string_value if record.body.WhichOneof("value") == "string_value" else ""
        event = record.event_name or _text(attrs, "event.name") or body
        if event == "gen_ai.evaluation.result":
            t = _time(record.time_unix_nano, record.observed_time_unix_nano, where)
            outcome = self._evaluation(attrs, res, service, _hex(record.span_id), t, where)
            if outcome is None:
                return
            outcome.trace_id = _hex(record.trace_id)
            outcome.span_id = _hex(record.span_id)
            dec.outcomes.append(outcome)
            return
        short = event.removeprefix("claude_code.")
        if (
            scope.startswith("com.anthropic.claude_code")
            or body.startswith("claude_code.")
            or (short in _CC_EVENTS and "session.id" in attrs)
        ):
            t = _time(record.time_unix_nano, record.observed_time_unix_nano, where)
            self._claude_event(short, record, attrs, res, service, t, where, dec)

    # -- Claude Code ------------------------------------------------------------------------------
    def _session(self, service: str, session_id: str, t: float, labels: dict[str, str]) -> SessionAgg | None:
        key = f"{service}\x00{session_id}"
        session = self._sessions.get(key)
        if session is None:
            if len(self._sessions) >= self.max_sessions:
                self.stats.sessions_dropped += 1
                return None
            session = self._sessions[key] = SessionAgg(service, session_id, t, t, labels=dict(labels))
        session.touch(t)
        return session

    def _prompt(
        self,
        service: str,
        attrs: Mapping[str, Any],
        aliases: list[str],
        t: float,
        labels: dict[str, str],
        out: list[Outcome],
    ) -> PromptAgg | None:
        """The open prompt known by any of ``aliases`` (``p:<prompt.id>``, ``t:<trace id>``), or a new one."""
        session_id = _text(attrs, "session.id") or ""
        for alias in aliases:
            found = self._aliases.get(alias)
            if found is None:
                continue
            session = self._sessions[found[0]]
            session.touch(t)
            prompt = session.prompts[found[1]]
            prompt.touch(t)
            for other in aliases:
                if other not in self._aliases:
                    self._aliases[other] = found
                    prompt.aliases.append(other)
            return prompt
        if any(alias in self._closed for alias in aliases):
            self.stats.late += 1
            return None
        if self._open_prompts >= MAX_OPEN_PROMPTS:
            self.stats.prompts_dropped += 1
            return None
        new = self._session(service, session_id, t, labels)
        if new is None:
            return None
        self._open_prompts += 1
        pkey = aliases[0]
        prompt = PromptAgg(session=session_id, service=service, start=t, last=t, labels=dict(labels))
        prompt.aliases = list(aliases)
        new.prompts[pkey] = prompt
        skey = f"{service}\x00{session_id}"
        for alias in aliases:
            self._aliases[alias] = (skey, pkey)
        while len(new.prompts) > MAX_PROMPTS_PER_SESSION:
            self.stats.prompts_closed_early += 1
            self._close_prompt(new, next(iter(new.prompts)), out)
        return prompt

    def _close_prompt(self, session: SessionAgg, pkey: str, out: list[Outcome]) -> None:
        prompt = session.prompts.pop(pkey)
        for alias in prompt.aliases:
            self._aliases.pop(alias, None)
            self._closed[alias] = None
        while len(self._closed) > MAX_CLOSED:
            del self._closed[next(iter(self._closed))]
        self._open_prompts -= 1
        self._records -= prompt.records()
        outcomes = prompt.outcomes()
        session.add_prompt(outcomes[-1])
        out.extend(outcomes)

    def _add(
        self, prompt: PromptAgg, what: str, key: str | None, t: float, values: Mapping[str, Any], events: bool
    ) -> None:
        """A request (``what="call"``) or tool use into ``prompt``, within the global record budget."""
        keep = self._records < MAX_RECORDS
        add = prompt.call if what == "call" else prompt.tool
        if add(key, t, values, events, keep):
            self._records += 1

    def _cc_labels(self, attrs: Mapping[str, Any], res: Mapping[str, Any]) -> dict[str, str]:
        labels = self._labels(attrs, res)
        labels["provider"] = "anthropic"
        return labels

    def _claude_event(
        self,
        event: str,
        record: Any,
        attrs: Mapping[str, Any],
        res: Mapping[str, Any],
        service: str,
        t: float,
        where: str,
        dec: Decoded,
    ) -> None:
        if event not in ("user_prompt", "api_request", "api_error", "tool_result"):
            # Other events (tool_decision, assistant_response, api_retries_exhausted, …) carry
            # nothing watched; they still extend an open prompt's activity.
            prompt_id = _text(attrs, "prompt.id")
            found = self._aliases.get(f"p:{prompt_id}") if prompt_id else None
            if found is not None:
                self._sessions[found[0]].prompts[found[1]].touch(t)
                self._sessions[found[0]].touch(t)
            return
        labels = self._cc_labels(attrs, res)
        effort = _text(attrs, "effort")
        values: dict[str, Any] = {}
        tool: dict[str, Any] = {}
        if event in ("api_request", "api_error"):
            model, model_labels = _model(_text(attrs, "model"))
            # api_error events name the model with its context-window suffix ("…[1m]"), api_request
            # events never do: from events alone, a failed and a good call of one model must carry
            # the same labels, or a stream label splits failures from successes. Spans carry the
            # suffix on both and still set it.
            model_labels.pop("context_window", None)
            values["model"] = model
            if effort:
                model_labels["effort"] = effort
            values["labels"] = model_labels
            values["latency_s"] = _seconds(attrs, "duration_ms", where, ms=True)
            if event == "api_request":
                values["success"] = True
                values["input_tokens"] = _count(attrs, "input_tokens", where)
                values["output_tokens"] = _count(attrs, "output_tokens", where)
                values["cache_read_tokens"] = _count(attrs, "cache_read_tokens", where)
                values["cache_write_tokens"] = _count(attrs, "cache_creation_tokens", where)
                values["cost_usd"] = _number(attrs, "cost_usd", where, 0, _MAX_COST)
            else:
                status = _count(attrs, "status_code", where)
                values["success"] = False
                values["error_type"] = str(status) if status else "api_error"
            values["trace_id"] = _hex(record.trace_id)
        elif event == "tool_result":
            tool = {
                "name": _text(attrs, "tool_name"),
                "success": _bool(attrs, "success", where),
                "latency_s": _seconds(attrs, "duration_ms", where, ms=True),
                "trace_id": _hex(record.trace_id),
            }
        aliases: list[str] = []
        prompt_id = _text(attrs, "prompt.id")
        if prompt_id:
            aliases.append(f"p:{prompt_id}")
        trace = _hex(record.trace_id)
        if trace:
            aliases.append(f"t:{trace}")
        if not aliases:
            # No prompt to attach to: the request or tool use is an outcome on its own.
            lone = PromptAgg(session="", service=service, start=t, last=t, labels=labels)
            if values:
                lone.call(_text(attrs, "request_id"), _began(t, values), values, True)
            if tool:
                lone.tool(_text(attrs, "tool_use_id"), _began(t, tool), tool, True)
            dec.outcomes.extend(o for o in lone.outcomes() if o.kind == "call")
            return
        prompt = self._prompt(service, attrs, aliases, t, labels, dec.outcomes)
        if prompt is None:
            return
        if event == "user_prompt":
            session = self._sessions[self._aliases[aliases[0]][0]]
            if prompt.span_id is None:
                prompt.span_id = _hex(record.span_id)
                prompt.trace_id = trace
            # A new prompt completes the session's earlier ones (events come in order).
            for pkey in list(session.prompts):
                other = session.prompts[pkey]
                if other is not prompt and other.start <= t:
                    self._close_prompt(session, pkey, dec.outcomes)
            return
        if effort and "effort" not in prompt.labels:
            prompt.labels["effort"] = effort
        if values:
            self._add(prompt, "call", _text(attrs, "request_id"), _began(t, values), values, True)
        else:
            self._add(prompt, "tool", _text(attrs, "tool_use_id"), _began(t, tool), tool, True)

    def _claude_span(
        self,
        span: Any,
        name: str,
        attrs: Mapping[str, Any],
        res: Mapping[str, Any],
        service: str,
        start: float,
        end: float,
        where: str,
        dec: Decoded,
    ) -> None:
        kind = name.removeprefix("claude_code.")
        if kind not in ("interaction", "llm_request", "tool", "tool.execution"):
            return
        trace = _hex(span.trace_id)
        if trace is None:
            raise _Bad(f"{where}: trace_id is empty; expected the 16-byte trace id of the interaction")
        labels = self._cc_labels(attrs, res)
        prompt = self._prompt(service, attrs, [f"t:{trace}"], start, labels, dec.outcomes)
        if prompt is None:
            return
        prompt.touch(end)
        if kind == "interaction":
            latency = _seconds(attrs, "interaction.duration_ms", where, ms=True)
            prompt.latency_s = latency if latency is not None else end - start
            prompt.ended = end
            prompt.trace_id = trace
            prompt.span_id = _hex(span.span_id)
        elif kind == "llm_request":
            model, model_labels = _model(_text(attrs, "model") or _text(attrs, "gen_ai.request.model"))
            success = _bool(attrs, "success", where)
            if success is None:
                success = span.status.code != _TRACES_ERROR
            status = _count(attrs, "status_code", where)
            latency = _seconds(attrs, "duration_ms", where, ms=True)
            values: dict[str, Any] = {
                "model": model,
                "labels": model_labels,
                "success": success,
                "error_type": None if success else (str(status) if status else "api_error"),
                "latency_s": latency if latency is not None else end - start,
                "ttft_s": _seconds(attrs, "ttft_ms", where, ms=True),
                "input_tokens": _count(attrs, "input_tokens", where),
                "output_tokens": _count(attrs, "output_tokens", where),
                "cache_read_tokens": _count(attrs, "cache_read_tokens", where),
                "cache_write_tokens": _count(attrs, "cache_creation_tokens", where),
                "stop_reason": _text(attrs, "stop_reason"),
                "trace_id": trace,
                "span_id": _hex(span.span_id),
            }
            request_id = _text(attrs, "request_id") or _text(attrs, "gen_ai.response.id")
            self._add(prompt, "call", request_id, start, values, False)
        elif kind == "tool":
            latency = _seconds(attrs, "duration_ms", where, ms=True)
            self._add(
                prompt,
                "tool",
                _text(attrs, "tool_use_id") or _text(attrs, "gen_ai.tool.call.id"),
                start,
                {
                    "name": _text(attrs, "tool_name"),
                    "latency_s": latency if latency is not None else end - start,
                    "trace_id": trace,
                    "span_id": _hex(span.span_id),
                },
                False,
            )
        else:  # tool.execution: whether the tool succeeded
            success = _bool(attrs, "success", where)
            if success is None and span.status.code == _TRACES_ERROR:
                success = False
            self._add(
                prompt,
                "tool",
                _text(attrs, "tool_use_id") or _text(attrs, "gen_ai.tool.call.id"),
                start,
                {"success": success},
                False,
            )

    # -- metrics ----------------------------------------------------------------------------------
    def _metrics(self, request: ExportMetricsServiceRequest, dec: Decoded) -> None:
        for ri, rm in enumerate(request.resource_metrics):
            res = _attrs(rm.resource.attributes)
            service = _text(res, "service.name") or "unknown_service"
            for si, sm in enumerate(rm.scope_metrics):
                for mi, metric in enumerate(sm.metrics):
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue
                    data = getattr(metric, kind)
                    points = getattr(data, "data_points", ())
                    watched = metric.name.startswith("claude_code.") and kind == "sum"
                    for pi, point in enumerate(points):
                        self.stats.points += 1
                        if not watched:
                            continue
                        where = f"resource_metrics[{ri}].scope_metrics[{si}].metrics[{mi}].data_points[{pi}]"
                        try:
                            self._point(metric.name, data.aggregation_temporality, point, res, service, where)
                        except _Bad as exc:
                            dec.reject(str(exc))
                        except Exception as exc:
                            dec.reject(f"{where}: could not decode ({type(exc).__name__}: {exc})")

    def _point(
        self, name: str, temporality: int, point: Any, res: Mapping[str, Any], service: str, where: str
    ) -> None:
        attrs = _attrs(point.attributes)
        t = _time(point.time_unix_nano, 0, where)
        which = point.WhichOneof("value")
        value = float(point.as_double if which == "as_double" else point.as_int)
        if not math.isfinite(value) or not 0 <= value <= 1e12:
            raise _Bad(
                f"{where}: metric '{name}' value {value!r} is out of range; "
                "expected a finite number 0 to 1e12"
            )
        session_id = _text(attrs, "session.id")
        if session_id is None:
            return  # not attributable to a session (OTEL_METRICS_INCLUDE_SESSION_ID=false)
        session = self._session(service, session_id, t, self._cc_labels(attrs, res))
        if session is None:
            return
        model, _ = _model(_text(attrs, "model"))
        if model and session.model is None:
            session.model = model
        key = f"{name}|{_text(attrs, 'type') or ''}|{model or ''}"
        if key not in session.series and len(session.series) >= MAX_SERIES_PER_SESSION:
            raise _Bad(
                f"{where}: session {session_id!r} already has {MAX_SERIES_PER_SESSION} metric series; "
                f"expected few 'type' and 'model' values per session, got {key!r}"
            )
        if temporality == _CUMULATIVE:
            session.series[key] = value
        else:  # delta (Claude Code's default)
            session.series[key] = session.series.get(key, 0.0) + value
