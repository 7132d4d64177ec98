"""driftwatch for the OpenAI Agents SDK: every agent trace becomes one task outcome.

>>> from driftwatch.integrations import openai_agents
>>> openai_agents.instrument()                          # doctest: +SKIP
>>> result = await Runner.run(agent, "Triage ticket 4")  # doctest: +SKIP

``instrument()`` registers a ``TracingProcessor`` with ``agents.add_trace_processor`` (the SDK's
own extension point: nothing is patched, and the SDK's other processors keep running). Each trace
(one ``Runner.run``, or several inside one ``agents.trace(...)``) becomes one task outcome:

- ``input_tokens``/``output_tokens``/``cache_read_tokens``/``cache_write_tokens``: the usage the SDK
  attaches to its task spans (else summed from its generation and response spans); input tokens
  without the cached ones, as everywhere in driftwatch.
- ``tool_calls``/``tool_errors``: function-tool spans, and those that ended with an error;
  ``tool_uses`` (and the labels ``tool_calls.<name>``, ``tool_errors.<name>``) break them down by
  tool (at most ``MAX_TOOL_NAMES`` names, then ``other``).
- ``api_errors``: failed generation/response spans; ``model``: the last model that answered.
- ``turns``: turn spans (else model calls); ``thinking_tokens``: the reasoning tokens of response
  spans (none when there are none) — both behavioural signals, watched by default.
- labels ``handoffs``, ``guardrail_trips``, ``agent`` (the first agent's name).
- ``success``: False when the run ended with an error (``error_type``: ``MaxTurnsExceeded``,
  ``GuardrailTripwireTriggered``, ``AgentError``, …), else True; ``latency_s``: the trace's duration.

Labels are not stream dimensions unless named in ``stream_labels``, so the per-tool breakdown adds
no streams. Run inside ``driftwatch.task(...)``, a trace adds to that task instead (whose
``t.record(success=...)`` is the verdict), and emits nothing of its own.

Never read: inputs, outputs, instructions, tool arguments and results, error messages and data,
trace metadata. Only span types, tool and agent names, counts, models and the SDK's fixed error
messages (mapped to a type, never copied).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agents import add_trace_processor
from agents.tracing import Span, Trace, TracingProcessor
from agents.tracing.span_data import (
    AgentSpanData,
    FunctionSpanData,
    GenerationSpanData,
    GuardrailSpanData,
    HandoffSpanData,
    ResponseSpanData,
    TaskSpanData,
    TurnSpanData,
)
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode

from driftwatch import _semconv as sc
from driftwatch._outcome import Outcome, stream_key
from driftwatch._runtime import get_runtime
from driftwatch.collectors._task import Task, _span_attributes, current_task

__all__ = ["MAX_OPEN_RUNS", "MAX_TOOL_NAMES", "AgentRun", "DriftwatchProcessor", "instrument"]

log = logging.getLogger("driftwatch")

#: Traces followed at once; the oldest is dropped (and counted) beyond this.
MAX_OPEN_RUNS = 1000
#: Tool names broken down per run in ``tool_calls.<name>`` labels; further names count as ``other``.
MAX_TOOL_NAMES = 16
#: The SDK's workflow name when the caller gives none: then the first agent names the task.
DEFAULT_WORKFLOW = "Agent workflow"

#: The SDK's fixed span error messages (``SpanError.message``) → an error type. Anything else on an
#: agent or task span is ``AgentError``: messages are never copied (some embed names or text).
_ERROR_TYPES = {
    "Max turns exceeded": "MaxTurnsExceeded",
    "Guardrail tripwire triggered": "GuardrailTripwireTriggered",
    "Error in agent run": "AgentError",
    "Error running tool": "ToolError",
    "Multiple handoffs requested": "MultipleHandoffs",
    "Tool execution cancelled": "ToolCancelled",
    "Invalid JSON provided": "ModelBehaviorError",
    "Tool not found": "ModelBehaviorError",
}


def _error_type(message: object) -> str:
    if isinstance(message, str):
        for known, kind in _ERROR_TYPES.items():
            if message.startswith(known):
                return kind
    return "AgentError"


def _tool_name(name: object) -> str:
    if isinstance(name, str) and name.strip():
        return name.strip()[:64]
    return "unnamed"


@dataclass
class AgentRun:
    """What one agent trace reported, as it goes: counts, names and ids only, never content."""

    trace_id: str
    workflow: str
    started: float
    """Epoch seconds at the trace's start."""
    perf_start: float
    task: Task | None = None
    """The ``driftwatch.task`` current when the trace started: the run adds to it."""
    otel_context: Any = None
    agent: str | None = None
    model: str | None = None
    task_usage: Counter[str] = field(default_factory=Counter)
    """Usage summed from the SDK's task spans (one per ``Runner.run``)."""
    call_usage: Counter[str] = field(default_factory=Counter)
    """Usage summed from generation and response spans (when there are no task spans)."""
    task_spans: int = 0
    turns: int = 0
    model_calls: int = 0
    tool_calls: Counter[str] = field(default_factory=Counter)
    tool_errors: Counter[str] = field(default_factory=Counter)
    handoffs: int = 0
    guardrail_trips: int = 0
    api_errors: int = 0
    error_type: str | None = None

    def usage(self) -> Counter[str]:
        return self.task_usage if self.task_spans else self.call_usage


def _usage(data: object) -> Counter[str]:
    """Token counts from a span's ``usage`` dict (the SDK's own keys and the Responses API's)."""
    out: Counter[str] = Counter()
    if not isinstance(data, dict):
        return out

    def whole(value: object) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

    out["input"] = whole(data.get("input_tokens"))
    out["output"] = whole(data.get("output_tokens"))
    cached = whole(data.get("cached_input_tokens"))
    written = whole(data.get("cache_write_input_tokens"))
    reasoning = whole(data.get("reasoning_output_tokens"))
    details = data.get("input_tokens_details")
    if isinstance(details, dict):
        cached = cached or whole(details.get("cached_tokens"))
        written = written or whole(details.get("cache_write_tokens"))
    details = data.get("output_tokens_details")
    if isinstance(details, dict):
        reasoning = reasoning or whole(details.get("reasoning_tokens"))
    out["cache_read"], out["cache_write"], out["reasoning"] = cached, written, reasoning
    return out


def _breakdown(counts: Counter[str], prefix: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    other = 0
    for i, (name, n) in enumerate(counts.most_common()):
        if i < MAX_TOOL_NAMES:
            labels[f"{prefix}.{name}"] = str(n)
        else:
            other += n
    if other:
        labels[f"{prefix}.other"] = str(other)
    return labels


def outcome(run: AgentRun, task: str | None = None, labels: dict[str, str] | None = None) -> Outcome:
    """The task outcome of a finished run: the one place a run's counts map to outcome fields."""
    usage = run.usage()
    name = task or (run.workflow if run.workflow and run.workflow != DEFAULT_WORKFLOW else None)
    result = Outcome(task=name or run.agent or "agent", time=run.started, kind="task", model=run.model)
    result.latency_s = max(0.0, time.perf_counter() - run.perf_start)
    if run.model_calls or run.task_spans:
        cached = usage["cache_read"] + usage["cache_write"]
        inp = usage["input"]
        result.input_tokens = inp - cached if cached and inp >= cached else inp
        result.output_tokens = usage["output"]
        result.cache_read_tokens = usage["cache_read"]
        result.cache_write_tokens = usage["cache_write"]
    result.tool_calls = sum(run.tool_calls.values())
    result.tool_errors = sum(run.tool_errors.values())
    result.tool_uses = {
        k.removeprefix("tool_calls."): int(v) for k, v in _breakdown(run.tool_calls, "tool_calls").items()
    }
    result.api_errors = run.api_errors
    result.error_type = run.error_type
    result.success = run.error_type is None
    result.turns = run.turns or run.model_calls
    # Task spans carry no reasoning tokens; the Responses API's response spans do.
    reasoning = usage["reasoning"] or run.call_usage["reasoning"]
    if reasoning:
        result.thinking_tokens = reasoning
    out = dict(labels or {})
    out["handoffs"] = str(run.handoffs)
    out["guardrail_trips"] = str(run.guardrail_trips)
    if run.agent:
        out["agent"] = run.agent
    out.update(_breakdown(run.tool_calls, "tool_calls"))
    out.update(_breakdown(run.tool_errors, "tool_errors"))
    result.labels = out
    return result


class DriftwatchProcessor(TracingProcessor):
    """The Agents SDK trace processor: one task outcome per trace (see the module's doc).

    ``task`` names the task (default: the workflow name, else the first agent's name); ``labels``
    are added to every outcome.
    """

    def __init__(self, task: str | None = None, **labels: Any) -> None:
        self.task = task
        self.labels = {k: str(v) for k, v in labels.items()}
        self.dropped = 0
        """Runs dropped because ``MAX_OPEN_RUNS`` were open."""
        self._runs: dict[str, AgentRun] = {}
        self._lock = threading.Lock()

    # -- TracingProcessor -------------------------------------------------------------------------
    def on_trace_start(self, trace: Trace) -> None:
        try:
            run = AgentRun(
                trace_id=trace.trace_id,
                workflow=trace.name if isinstance(trace.name, str) else "",
                started=time.time(),
                perf_start=time.perf_counter(),
                task=current_task(),
                otel_context=otel_context.get_current(),
            )
            with self._lock:
                self._runs[run.trace_id] = run
                while len(self._runs) > MAX_OPEN_RUNS:
                    del self._runs[next(iter(self._runs))]
                    self.dropped += 1
        except Exception:
            log.warning("driftwatch: could not follow an agent trace", exc_info=True)

    def on_span_start(self, span: Span[Any]) -> None:
        pass

    def on_span_end(self, span: Span[Any]) -> None:
        try:
            with self._lock:
                run = self._runs.get(span.trace_id)
                if run is not None:
                    self._add(run, span)
        except Exception:
            log.warning("driftwatch: could not read an agent span", exc_info=True)

    def on_trace_end(self, trace: Trace) -> None:
        with self._lock:
            run = self._runs.pop(trace.trace_id, None)
        if run is None:
            return
        try:
            self._finish(run)
        except Exception:
            log.warning("driftwatch: could not record an agent run", exc_info=True)

    def shutdown(self) -> None:
        with self._lock:
            self._runs.clear()

    def force_flush(self) -> None:
        pass

    # -- reading spans ----------------------------------------------------------------------------
    @staticmethod
    def _add(run: AgentRun, span: Span[Any]) -> None:
        data = span.span_data
        error = span.error
        if isinstance(data, FunctionSpanData):
            name = _tool_name(data.name)
            run.tool_calls[name] += 1
            if error is not None:
                run.tool_errors[name] += 1
        elif isinstance(data, GenerationSpanData | ResponseSpanData):
            run.model_calls += 1
            if error is not None:
                run.api_errors += 1
            model = data.model if isinstance(data, GenerationSpanData) else None
            response = data.response if isinstance(data, ResponseSpanData) else None
            if response is not None:
                model = getattr(response, "model", None)
                response_usage = getattr(response, "usage", None)
                if data.usage is None and response_usage is not None:
                    run.call_usage.update(_usage(response_usage.model_dump()))
            if data.usage is not None:
                run.call_usage.update(_usage(data.usage))
            if isinstance(model, str) and model:
                run.model = model[:128]
        elif isinstance(data, TurnSpanData):
            run.turns += 1
            if error is not None and run.error_type is None:
                run.error_type = _error_type(error.get("message"))  # e.g. a tripped input guardrail
        elif isinstance(data, TaskSpanData):
            run.task_spans += 1
            run.task_usage.update(_usage(data.usage))
            if error is not None and run.error_type is None:
                run.error_type = _error_type(error.get("message"))
        elif isinstance(data, AgentSpanData):
            if run.agent is None or span.parent_id is None:
                run.agent = _tool_name(data.name)
            if error is not None and run.error_type is None:
                run.error_type = _error_type(error.get("message"))
        elif isinstance(data, HandoffSpanData):
            run.handoffs += 1
        elif isinstance(data, GuardrailSpanData) and data.triggered:
            run.guardrail_trips += 1

    # -- the outcome ------------------------------------------------------------------------------
    def _finish(self, run: AgentRun) -> None:
        result = outcome(run, self.task, self.labels)
        if run.task is not None:
            run.task._add_run(result)  # the task's own outcome carries the run, with its verdict
            return
        runtime = get_runtime()
        if runtime is None:
            return
        result.service = runtime.config.service
        start_ns = int(run.started * 1e9)
        end_ns = start_ns + int((result.latency_s or 0.0) * 1e9)
        span = runtime.telemetry.tracer.start_span(
            f"invoke_agent {result.task}",
            context=run.otel_context,
            kind=SpanKind.INTERNAL,
            start_time=start_ns,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": result.task,
                "gen_ai.provider.name": "openai",
                sc.TASK_NAME: result.task,
            },
        )
        ctx = span.get_span_context()
        if ctx.is_valid:
            result.trace_id = format(ctx.trace_id, "032x")
            result.span_id = format(ctx.span_id, "016x")
        if span.is_recording():
            span.set_attributes(_span_attributes(result))
            span.set_attribute(sc.STREAM_KEY, stream_key(result, runtime.config.stream_labels))
            if result.error_type is not None:
                span.set_status(Status(StatusCode.ERROR, result.error_type))
        span.end(end_time=end_ns)
        runtime.monitor.submit(result)


_installed: DriftwatchProcessor | None = None
_install_lock = threading.Lock()


def instrument(task: str | None = None, **labels: Any) -> DriftwatchProcessor:
    """Register driftwatch's trace processor with the Agents SDK (once per process) and return it.

    ``task`` names every run's task (default: the workflow name, else the first agent's name);
    ``labels`` are added to every outcome. A second call returns the processor already registered.
    """
    global _installed
    with _install_lock:
        if _installed is None:
            processor = DriftwatchProcessor(task, **labels)
            add_trace_processor(processor)
            _installed = processor
        return _installed
