"""OTLP payloads → Outcomes: the pure decoding layer that ``driftwatch serve`` calls.

Understood: driftwatch's own spans (``invoke_agent {task}`` with ``driftwatch.task.*``, ``chat {model}``
or the SDK's ``anthropic.messages.create`` annotated with ``driftwatch.*``); GenAI-convention call
spans from other instrumentations (OpenLLMetry's ``anthropic.chat``, the upstream OpenTelemetry GenAI
instrumentation), reading ``gen_ai.provider.name`` and the older ``gen_ai.system``; agent runs from
other instrumentations (``invoke_agent``/``invoke_workflow`` with their ``execute_tool`` spans,
OpenInference's ``AGENT``/``TOOL``/``LLM`` spans and ``llm.token_count.*``); GenAI token metrics
(``gen_ai.client.token.usage``, ``gen_ai.client.inference.operation.*_tokens``); GenAI evaluation
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

``OtlpDecoder`` walks a request and hands each item to its reader: ``GenAiSpans``
(``_otlp_genai.py``: task, call and evaluation spans) or ``ClaudeCodeTelemetry``
(``_otlp_claude.py``). Values are read and checked by ``_otlp_values.py``; content is recognised
and removed by ``_otlp_content.py``.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from driftwatch._config import Config
from driftwatch._outcome import Outcome
from driftwatch.collectors._otlp_claude import ClaudeCodeTelemetry
from driftwatch.collectors._otlp_content import CC_EVENTS, is_content, redact
from driftwatch.collectors._otlp_genai import Below, GenAiSpans, SpanInfo
from driftwatch.collectors._otlp_genai_metrics import TOKEN_HISTOGRAMS, GenAiMetrics
from driftwatch.collectors._otlp_values import (
    Bad,
    Decoded,
    DecoderStats,
    attributes,
    event_time,
    hex_id,
    text,
)

__all__ = ["Decoded", "DecoderStats", "OtlpDecoder", "is_content", "redact", "request_from_json"]

RequestT = TypeVar(
    "RequestT", ExportTraceServiceRequest, ExportLogsServiceRequest, ExportMetricsServiceRequest
)

#: Checkpoints written before the decoder was split pickle the span index's entries by this name.
_SpanInfo = SpanInfo


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
        self.stats = DecoderStats()
        self.genai = GenAiSpans(self.config)
        self.genai_metrics = GenAiMetrics(self.config)
        self.claude = ClaudeCodeTelemetry(self.config, self.stats, max_sessions, session_idle_s)

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "claude" not in state:  # pickled before the decoder was split: one flat state
            genai = GenAiSpans(state["config"])
            genai.spans = state.pop("_spans")
            claude = ClaudeCodeTelemetry(
                state["config"], state["stats"], state.pop("max_sessions"), state.pop("session_idle_s")
            )
            for name in ("_sessions", "_aliases", "_closed", "_records", "_open_prompts"):
                setattr(claude, name, state.pop(name))
            state.update(genai=genai, claude=claude)
        if "genai_metrics" not in state:  # pickled before GenAI token metrics were read
            state["genai_metrics"] = GenAiMetrics(state["config"])
        self.__dict__.update(state)

    @property
    def max_sessions(self) -> int:
        return self.claude.max_sessions

    @property
    def session_idle_s(self) -> float:
        return self.claude.session_idle_s

    # -- public -----------------------------------------------------------------------------------
    def traces(self, request: ExportTraceServiceRequest) -> Decoded:
        """Outcomes from the spans of one trace export request."""
        return self._guarded(self._traces, request)

    def logs(self, request: ExportLogsServiceRequest) -> Decoded:
        """Outcomes from the log records (events) of one logs export request."""
        return self._guarded(self._logs, request)

    def metrics(self, request: ExportMetricsServiceRequest) -> Decoded:
        """Claude Code metric points go into their session's totals (outcomes come out on expiry);
        GenAI token histograms give one outcome per series and interval (``_otlp_genai_metrics.py``)."""
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
        # Defensive: the service must keep running; what was emitted before an error is kept.
        with contextlib.suppress(Exception):
            self.claude.expire(now, out)
        self.stats.outcomes += len(out)
        return out

    @property
    def open_sessions(self) -> int:
        return self.claude.open_sessions

    # -- plumbing ---------------------------------------------------------------------------------
    def _done(self, dec: Decoded) -> Decoded:
        self.stats.outcomes += len(dec.outcomes)
        self.stats.rejected += dec.rejected
        return dec

    # -- traces -----------------------------------------------------------------------------------
    def _traces(self, request: ExportTraceServiceRequest, dec: Decoded) -> None:
        # First pass: agent (task) spans, so that call spans and evaluations in the same request
        # find their task even though children end, and are exported, before their parent. Each
        # span's attributes are converted once here and reused by the second pass (None: they
        # failed to convert, and the second pass converts again to report why).
        # The same pass sums tool and call spans up their parent chain (``GenAiSpans.collect``), in
        # request order, so that each agent span's totals are complete before outcomes are made.
        resources: list[tuple[dict[str, Any], str]] = []
        span_attrs: list[dict[str, Any] | None] = []
        below: dict[int, Below] = {}
        for rs in request.resource_spans:
            res = attributes(rs.resource.attributes)
            service = text(res, "service.name") or "unknown_service"
            resources.append((res, service))
            for ss in rs.scope_spans:
                for span in ss.spans:
                    attrs: dict[str, Any] | None = None
                    try:
                        attrs = attributes(span.attributes)
                        totals = self.genai.collect(span, span.name, attrs)
                        if totals is not None:
                            below[len(span_attrs)] = totals
                        if self.genai.is_task_span(span.name, attrs):
                            self.genai.remember(
                                hex_id(span.span_id), self.genai.task_info(span, attrs, res, service)
                            )
                    except Exception:
                        pass  # reported by the second pass
                    span_attrs.append(attrs)
        at = 0
        for ri, rs in enumerate(request.resource_spans):
            res, service = resources[ri]
            for si, ss in enumerate(rs.scope_spans):
                for pi, span in enumerate(ss.spans):
                    attrs = span_attrs[at]
                    totals = below.get(at)
                    at += 1
                    self.stats.spans += 1
                    where = f"resource_spans[{ri}].scope_spans[{si}].spans[{pi}]"
                    try:
                        self._span(span, res, service, where, dec, attrs, totals)
                    except Bad as exc:
                        dec.reject(str(exc))
                    except Exception as exc:
                        dec.reject(f"{where}: could not decode ({type(exc).__name__}: {exc})")

    def _span(
        self,
        span: Any,
        res: Mapping[str, Any],
        service: str,
        where: str,
        dec: Decoded,
        attrs: dict[str, Any] | None = None,
        below: Below | None = None,
    ) -> None:
        if attrs is None:
            attrs = attributes(span.attributes)
        start = event_time(span.start_time_unix_nano, 0, where, "start_time_unix_nano")
        end = event_time(span.end_time_unix_nano, span.start_time_unix_nano, where, "end_time_unix_nano")
        if end < start:
            raise Bad(f"{where}: end_time_unix_nano is before start_time_unix_nano; expected end >= start")
        name: str = span.name
        if name.startswith("claude_code."):
            self.claude.span(span, name, attrs, res, service, start, end, where, dec.outcomes)
        elif self.genai.is_task_span(name, attrs):
            dec.outcomes.append(self.genai.task_span(span, attrs, res, service, start, end, where, below))
        elif self.genai.is_call_span(name, attrs):
            if self.check_only:
                self.genai.check_call_span(attrs, where)
            else:
                dec.outcomes.append(self.genai.call_span(span, attrs, res, service, start, end, where))
        for ei, event in enumerate(span.events):
            if event.name == "gen_ai.evaluation.result":
                ewhere = f"{where}.events[{ei}]"
                t = event_time(event.time_unix_nano, span.end_time_unix_nano, ewhere)
                outcome = self.genai.evaluation(
                    attributes(event.attributes), res, service, hex_id(span.span_id), t, ewhere
                )
                if outcome is None:
                    continue
                outcome.trace_id = hex_id(span.trace_id)
                outcome.span_id = hex_id(span.span_id)
                dec.outcomes.append(outcome)

    # -- logs -------------------------------------------------------------------------------------
    def _logs(self, request: ExportLogsServiceRequest, dec: Decoded) -> None:
        for ri, rl in enumerate(request.resource_logs):
            res = attributes(rl.resource.attributes)
            service = text(res, "service.name") or "unknown_service"
            for si, sl in enumerate(rl.scope_logs):
                scope = sl.scope.name
                for li, record in enumerate(sl.log_records):
                    self.stats.logs += 1
                    where = f"resource_logs[{ri}].scope_logs[{si}].log_records[{li}]"
                    try:
                        self._log(record, scope, res, service, where, dec)
                    except Bad as exc:
                        dec.reject(str(exc))
                    except Exception as exc:
                        dec.reject(f"{where}: could not decode ({type(exc).__name__}: {exc})")

    def _log(
        self, record: Any, scope: str, res: Mapping[str, Any], service: str, where: str, dec: Decoded
    ) -> None:
        attrs = attributes(record.attributes)
        body = record.body.string_value if record.body.WhichOneof("value") == "string_value" else ""
        event = record.event_name or text(attrs, "event.name") or body
        if event == "gen_ai.evaluation.result":
            t = event_time(record.time_unix_nano, record.observed_time_unix_nano, where)
            outcome = self.genai.evaluation(attrs, res, service, hex_id(record.span_id), t, where)
            if outcome is None:
                return
            outcome.trace_id = hex_id(record.trace_id)
            outcome.span_id = hex_id(record.span_id)
            dec.outcomes.append(outcome)
            return
        short = event.removeprefix("claude_code.")
        if (
            scope.startswith("com.anthropic.claude_code")
            or body.startswith("claude_code.")
            or (short in CC_EVENTS and "session.id" in attrs)
        ):
            t = event_time(record.time_unix_nano, record.observed_time_unix_nano, where)
            self.claude.event(short, record, attrs, res, service, t, where, dec.outcomes)

    # -- metrics ----------------------------------------------------------------------------------
    def _metrics(self, request: ExportMetricsServiceRequest, dec: Decoded) -> None:
        self.genai_metrics.take()  # nothing left over from a request that failed to decode
        for ri, rm in enumerate(request.resource_metrics):
            res = attributes(rm.resource.attributes)
            service = text(res, "service.name") or "unknown_service"
            for si, sm in enumerate(rm.scope_metrics):
                for mi, metric in enumerate(sm.metrics):
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue
                    data = getattr(metric, kind)
                    points = getattr(data, "data_points", ())
                    claude = metric.name.startswith("claude_code.") and kind == "sum"
                    tokens = metric.name in TOKEN_HISTOGRAMS and kind == "histogram"
                    for pi, point in enumerate(points):
                        self.stats.points += 1
                        if not (claude or tokens):
                            continue
                        where = f"resource_metrics[{ri}].scope_metrics[{si}].metrics[{mi}].data_points[{pi}]"
                        try:
                            if claude:
                                self.claude.point(
                                    metric.name, data.aggregation_temporality, point, res, service, where
                                )
                            else:
                                self.genai_metrics.point(
                                    metric.name,
                                    data.aggregation_temporality,
                                    point,
                                    attributes(point.attributes),
                                    res,
                                    service,
                                    where,
                                )
                        except Bad as exc:
                            dec.reject(str(exc))
                        except Exception as exc:
                            dec.reject(f"{where}: could not decode ({type(exc).__name__}: {exc})")
        dec.outcomes.extend(self.genai_metrics.take())
