"""GenAI spans in OTLP traces: driftwatch's task and call spans, other instrumentations' agent, tool
and call spans (OpenLLMetry, the upstream OpenTelemetry GenAI instrumentations, OpenInference) and
``gen_ai.evaluation.result``.

An agent run is a task: an ``invoke_agent`` or ``invoke_workflow`` span (GenAI conventions), or an
OpenInference span of kind ``AGENT``. Tool executions (``execute_tool`` spans, OpenInference
``TOOL`` spans with a ``tool.name``) and model calls below it — children end, and are exported,
before their parents — are summed up the parent chain into its outcome: tool calls, tool errors
and, when the agent span has no usage of its own, tokens. A nested agent's totals also count in
its parent agent's (a workflow's total covers its agents).

``GenAiSpans`` turns one span (or evaluation) into an ``Outcome`` and keeps the state this needs: a
bounded index of recent task and call spans, so that a call span or an evaluation finds its task
even when it arrives in a later request, and the bounded totals waiting for their parent span
(``below``). The decoder (``collectors/_otlp.py``) walks the request and hands each span here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from driftwatch import _semconv as sc
from driftwatch._config import Config
from driftwatch._outcome import Outcome
from driftwatch.collectors._otlp_values import (
    MAX_COST,
    STATUS_ERROR,
    Bad,
    boolean,
    count,
    hex_id,
    model_and_labels,
    number,
    pass_fail,
    seconds,
    stream_labels,
    text,
)

__all__ = ["MAX_SPANS", "GenAiSpans", "SpanInfo"]

#: Spans remembered (by span id) so that evaluation results and child call spans find their task;
#: also the most parent spans with totals waiting for them (``GenAiSpans.below``).
MAX_SPANS = 10_000
_CALL_OPERATIONS = {"chat", "text_completion", "generate_content"}
#: Tool (or subagent) names kept per task span: a bound on what a span can make the outcome hold.
_MAX_NAMES = 256
_TASK_OPERATIONS = {"invoke_agent", "invoke_workflow"}
#: OpenInference's span kind attribute (``AGENT``, ``TOOL``, ``LLM``, ``CHAIN``, …).
OI_KIND = "openinference.span.kind"
#: Totals below a span, in this order (``Below``).
TOOL_CALLS, TOOL_ERRORS, INPUT, OUTPUT, CACHE_READ, CACHE_WRITE, CALLS = range(7)
Below = list[int]


@dataclass(slots=True)
class SpanInfo:
    """What a child span or an evaluation inherits from a remembered task or call span."""

    task: str
    service: str
    labels: dict[str, str]
    task_id: str | None
    model: str | None
    trace_id: str


class GenAiSpans:
    """Task spans, call spans and evaluations → Outcomes, with the index of recent spans."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.spans: dict[str, SpanInfo] = {}
        #: Parent span id → totals of the tool and call spans below it (``Below``), in arrival order.
        self.below: dict[str, Below] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("below", {})  # pickled before agent runs summed their tools
        self.__dict__.update(state)

    def _labels(self, attrs: Mapping[str, Any], res: Mapping[str, Any]) -> dict[str, str]:
        return stream_labels(self.config.stream_labels, attrs, res)

    @staticmethod
    def is_call_span(name: str, attrs: Mapping[str, Any]) -> bool:
        """A GenAI model call: by its operation, the SDK's or OpenLLMetry's span name, or its attributes."""
        return (
            attrs.get("gen_ai.operation.name") in _CALL_OPERATIONS
            or name in ("anthropic.messages.create", "anthropic.chat")
            or attrs.get(OI_KIND) == "LLM"
            or (
                "gen_ai.operation.name" not in attrs
                and ("gen_ai.system" in attrs or "gen_ai.provider.name" in attrs)
                and "gen_ai.request.model" in attrs
            )
        )

    def remember(self, span_id: str | None, info: SpanInfo) -> None:
        if span_id is None:
            return
        self.spans.pop(span_id, None)
        self.spans[span_id] = info
        while len(self.spans) > MAX_SPANS:
            del self.spans[next(iter(self.spans))]

    @staticmethod
    def is_task_span(name: str, attrs: Mapping[str, Any]) -> bool:
        """An agent run: ``invoke_agent``/``invoke_workflow``, or an OpenInference ``AGENT`` span."""
        return (
            attrs.get("gen_ai.operation.name") in _TASK_OPERATIONS
            or name.startswith("invoke_agent")
            or attrs.get(OI_KIND) == "AGENT"
        )

    @staticmethod
    def is_tool_span(name: str, attrs: Mapping[str, Any]) -> bool:
        """A tool execution: ``execute_tool``, or an OpenInference ``TOOL`` span naming its tool."""
        return attrs.get("gen_ai.operation.name") == "execute_tool" or (
            attrs.get(OI_KIND) == "TOOL" and "tool.name" in attrs
        )

    def collect(self, span: Any, name: str, attrs: Mapping[str, Any]) -> Below | None:
        """Sum a span's tool and call totals into its parent's; for an agent span, return its totals.

        Called for every span in request order (children before their parents), before any outcome
        is made. Never raises: a malformed call span adds no tokens (the full decode reports it).
        """
        span_id = hex_id(span.span_id)
        parent = hex_id(span.parent_span_id)
        mine = self.below.pop(span_id, None) if span_id is not None else None
        if self.is_task_span(name, attrs):
            totals = mine if mine is not None else [0] * 7
            if parent is not None:
                self._add_below(parent, totals)
            return totals
        add: Below | None = None
        if self.is_tool_span(name, attrs):
            failed = span.status.code == STATUS_ERROR or "error.type" in attrs
            add = [1, int(failed), 0, 0, 0, 0, 0]
        elif self.is_call_span(name, attrs):
            try:
                inp, out, read, write = self._usage_counts(attrs, "")
            except Bad:
                inp = out = read = write = None
            cached = (read or 0) + (write or 0)
            inp = inp - cached if inp is not None and cached and inp >= cached else inp
            add = [0, 0, inp or 0, out or 0, read or 0, write or 0, 1]
        if mine is not None:
            add = mine if add is None else [a + b for a, b in zip(add, mine, strict=True)]
        if add is not None and parent is not None:
            self._add_below(parent, add)
        return None

    def _add_below(self, parent: str, totals: Below) -> None:
        have = self.below.get(parent)
        if have is None:
            self.below[parent] = list(totals)
            while len(self.below) > MAX_SPANS:
                del self.below[next(iter(self.below))]
        else:
            for i, n in enumerate(totals):
                have[i] += n

    def task_info(
        self, span: Any, attrs: Mapping[str, Any], res: Mapping[str, Any], service: str
    ) -> SpanInfo:
        name = (
            text(attrs, sc.TASK_NAME)
            or text(attrs, "gen_ai.agent.name")
            or text(attrs, "gen_ai.workflow.name")
            or text(attrs, "agent.name")  # OpenInference
            or span.name.removeprefix("invoke_agent").removeprefix("invoke_workflow").strip()
            or "agent"
        )
        labels = self._labels(attrs, res)
        for key, value in attrs.items():
            if key.startswith(sc.TASK_LABEL) and value is not None:
                labels[key[len(sc.TASK_LABEL) :]] = str(value)[:128]
        model, _ = model_and_labels(
            text(attrs, "gen_ai.response.model") or text(attrs, "gen_ai.request.model")
        )
        return SpanInfo(
            task=name,
            service=service,
            labels=labels,
            task_id=text(attrs, sc.TASK_ID) or text(attrs, "gen_ai.agent.id"),
            model=model,
            trace_id=span.trace_id.hex(),
        )

    def task_span(
        self,
        span: Any,
        attrs: Mapping[str, Any],
        res: Mapping[str, Any],
        service: str,
        start: float,
        end: float,
        where: str,
        below: Below | None = None,
    ) -> Outcome:
        """A task outcome; ``below``: the totals of its tool and call spans (``collect``), which
        count when the span is not driftwatch's own (that one carries its totals itself)."""
        info = self.task_info(span, attrs, res, service)
        span_id = hex_id(span.span_id)
        self.remember(span_id, info)
        outcome = Outcome(
            task=info.task,
            time=start,
            kind="task",
            service=service,
            task_id=info.task_id,
            model=info.model,
            labels=dict(info.labels),
            trace_id=hex_id(span.trace_id),
            span_id=span_id,
        )
        outcome.success = boolean(attrs, sc.TASK_SUCCESS, where)
        if outcome.success is None and span.status.code == STATUS_ERROR:
            outcome.success = False
        outcome.score = number(attrs, sc.TASK_SCORE, where, -1e12, 1e12)
        latency = seconds(attrs, sc.TASK_LATENCY_S, where)
        outcome.latency_s = latency if latency is not None else end - start
        outcome.ttft_s = seconds(attrs, sc.TASK_TTFT_S, where)
        self._usage(outcome, attrs, where)
        outcome.cost_usd = number(attrs, sc.TASK_COST_USD, where, 0, MAX_COST)
        outcome.tool_calls = count(attrs, sc.TASK_TOOL_CALLS, where)
        outcome.tool_errors = count(attrs, sc.TASK_TOOL_ERRORS, where)
        outcome.api_errors = count(attrs, sc.TASK_API_ERRORS, where)
        outcome.error_type = text(attrs, "error.type")
        outcome.stop_reason = text(attrs, sc.TASK_STOP_REASON)
        self._behaviour(outcome, attrs, where)
        if below is not None and sc.TASK_NAME not in attrs:
            self._from_below(outcome, below)
        return outcome

    @staticmethod
    def _behaviour(outcome: Outcome, attrs: Mapping[str, Any], where: str) -> None:
        """An agent run's behavioural signals and tool uses by name (``driftwatch.agent_run``)."""
        outcome.turns = count(attrs, sc.TASK_TURNS, where)
        outcome.thinking_tokens = count(attrs, sc.TASK_THINKING_TOKENS, where)
        outcome.retries = count(attrs, sc.TASK_RETRIES, where)
        outcome.permission_denials = count(attrs, sc.TASK_PERMISSION_DENIALS, where)
        outcome.api_latency_s = seconds(attrs, sc.TASK_API_LATENCY_S, where)
        outcome.reads_per_edit = number(attrs, sc.TASK_READS_PER_EDIT, where, 0, 1e9)
        outcome.tool_error_rate = number(attrs, sc.TASK_TOOL_ERROR_RATE, where, 0, 1)
        for prefix, into in (
            (sc.TASK_TOOL_USES, outcome.tool_uses),
            (sc.TASK_SUBAGENT_TOOL_USES, outcome.subagent_tool_uses),
        ):
            for key in attrs:
                if key.startswith(prefix) and len(key) > len(prefix) and len(into) < _MAX_NAMES:
                    n = count(attrs, key, where)
                    if n is not None:
                        into[key[len(prefix) : len(prefix) + 128]] = n

    @staticmethod
    def _from_below(outcome: Outcome, below: Below) -> None:
        """Another instrumentation's agent span: its tool counts (0 when none ran) and, when it has no
        usage of its own, the tokens of the model calls below it."""
        if outcome.tool_calls is None:
            outcome.tool_calls = below[TOOL_CALLS]
            outcome.tool_errors = below[TOOL_ERRORS]
        if below[CALLS] and outcome.input_tokens is None and outcome.output_tokens is None:
            outcome.input_tokens = below[INPUT]
            outcome.output_tokens = below[OUTPUT]
            outcome.cache_read_tokens = below[CACHE_READ]
            outcome.cache_write_tokens = below[CACHE_WRITE]

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
        inp = count(attrs, "gen_ai.usage.input_tokens", where)
        if inp is None:
            inp = count(attrs, "gen_ai.usage.prompt_tokens", where)  # older instrumentations
        if inp is None:
            inp = count(attrs, "llm.token_count.prompt", where)  # OpenInference (includes cached)
        out = count(attrs, "gen_ai.usage.output_tokens", where)
        if out is None:
            out = count(attrs, "gen_ai.usage.completion_tokens", where)
        if out is None:
            out = count(attrs, "llm.token_count.completion", where)
        read = count(attrs, "gen_ai.usage.cache_read.input_tokens", where)
        if read is None:
            read = count(attrs, "gen_ai.usage.cache_read_input_tokens", where)  # OpenLLMetry
        if read is None:
            read = count(attrs, "llm.token_count.prompt_details.cache_read", where)
        write = count(attrs, "gen_ai.usage.cache_write.input_tokens", where)
        if write is None:
            write = count(attrs, "gen_ai.usage.cache_creation.input_tokens", where)
        if write is None:
            write = count(attrs, "gen_ai.usage.cache_creation_input_tokens", where)
        if write is None:
            write = count(attrs, "llm.token_count.prompt_details.cache_write", where)
        return inp, out, read, write

    @classmethod
    def check_call_span(cls, attrs: Mapping[str, Any], where: str) -> None:
        """The checks of ``call_span``, in its order, without building the outcome (``check_only``).

        Keep the two in step: a check added there goes here too (tests/collectors/
        test_otlp_values.py compares both on malformed values of every attribute this module names).
        """
        count(attrs, "http.response.status_code", where)
        seconds(attrs, sc.CALL_LATENCY_S, where)
        if seconds(attrs, sc.CALL_TTFT_S, where) is None:
            seconds(attrs, "gen_ai.response.time_to_first_chunk", where)
        cls._usage_counts(attrs, where)
        count(attrs, sc.CALL_TOOL_CALLS, where)
        number(attrs, sc.CALL_COST_USD, where, 0, MAX_COST)

    def call_span(
        self,
        span: Any,
        attrs: Mapping[str, Any],
        res: Mapping[str, Any],
        service: str,
        start: float,
        end: float,
        where: str,
    ) -> Outcome:
        # Every check (a count, seconds, number that can raise Bad) is mirrored, in the same
        # order, in check_call_span.
        provider = (
            text(attrs, "gen_ai.provider.name")
            or text(attrs, "gen_ai.system")
            or text(attrs, "llm.provider")  # OpenInference
            or text(attrs, "llm.system")
            or ""
        ).lower() or None
        operation = text(attrs, "gen_ai.operation.name") or "chat"
        request_model, _ = model_and_labels(text(attrs, "gen_ai.request.model"))
        model, model_labels = model_and_labels(
            text(attrs, "gen_ai.response.model")
            or text(attrs, "gen_ai.request.model")
            or text(attrs, "llm.model_name")
        )
        own_task = text(attrs, sc.TASK_NAME)
        # driftwatch's call spans say their task themselves; others inherit their agent span's.
        parent = None if own_task else self.spans.get(hex_id(span.parent_span_id) or "")
        task = own_task or (parent.task if parent else None)
        if task is None:
            task = "anthropic.messages" if provider == "anthropic" else f"{provider or 'gen_ai'}.{operation}"
        labels: dict[str, str] = dict(parent.labels) if parent is not None else {}
        labels.update(self._labels(attrs, res))
        labels.update(model_labels)
        for key, value in attrs.items():
            if key.startswith(sc.TASK_LABEL) and value is not None:
                labels[key[len(sc.TASK_LABEL) :]] = str(value)[:128]
        stream_end = text(attrs, sc.STREAM_END)
        if stream_end:
            labels["stream_end"] = stream_end
        if provider:
            labels["provider"] = provider
        status = count(attrs, "http.response.status_code", where)
        error_type = text(attrs, sc.CALL_ERROR_TYPE) or text(attrs, "error.type")
        failed = span.status.code == STATUS_ERROR or error_type is not None or (status or 0) >= 400
        if failed and error_type is None:
            error_type = str(status) if status else "error"
        outcome = Outcome(
            task=task,
            time=start,
            kind="call",
            service=service,
            task_id=text(attrs, sc.TASK_ID) or (parent.task_id if parent else None),
            model=model,
            request_model=request_model,
            labels=labels,
            success=not failed,
            error_type=error_type if failed else None,
            trace_id=hex_id(span.trace_id),
            span_id=hex_id(span.span_id),
        )
        latency = seconds(attrs, sc.CALL_LATENCY_S, where)
        outcome.latency_s = latency if latency is not None else end - start
        ttft = seconds(attrs, sc.CALL_TTFT_S, where)
        if ttft is None:
            ttft = seconds(attrs, "gen_ai.response.time_to_first_chunk", where)
        outcome.ttft_s = ttft
        self._usage(outcome, attrs, where)
        outcome.tool_calls = count(attrs, sc.CALL_TOOL_CALLS, where)
        outcome.cost_usd = number(attrs, sc.CALL_COST_USD, where, 0, MAX_COST)
        reasons = attrs.get("gen_ai.response.finish_reasons")
        if isinstance(reasons, list) and reasons and isinstance(reasons[0], str):
            outcome.stop_reason = reasons[0]
        else:
            outcome.stop_reason = text(attrs, "anthropic.message.stop_reason") or text(
                attrs, "gen_ai.response.finish_reasons"
            )
        info = SpanInfo(task, service, labels, outcome.task_id, model, span.trace_id.hex())
        self.remember(outcome.span_id, info)
        response_id = text(attrs, "gen_ai.response.id")
        if response_id:
            self.remember(f"r:{response_id}", info)
        return outcome

    def evaluation(
        self,
        attrs: Mapping[str, Any],
        res: Mapping[str, Any],
        service: str,
        parent_span: str | None,
        t: float,
        where: str,
    ) -> Outcome | None:
        """A score for the evaluated span's task; None when the evaluation itself failed (``error.type``)."""
        name = text(attrs, "gen_ai.evaluation.name")
        if name is None:
            raise Bad(
                f"{where}: attribute 'gen_ai.evaluation.name' is missing; expected the evaluation's "
                "name such as 'relevance'"
            )
        score = number(attrs, "gen_ai.evaluation.score.value", where, -1e12, 1e12)
        label = text(attrs, "gen_ai.evaluation.score.label")
        if score is None and label is None:
            raise Bad(
                f"{where}: evaluation '{name}' has neither 'gen_ai.evaluation.score.value' nor "
                "'gen_ai.evaluation.score.label'; expected a score such as 0.8 or a label such as 'pass'"
            )
        if text(attrs, "error.type"):
            return None  # the evaluator failed: no verdict on the evaluated output
        info = self.spans.get(parent_span or "")
        response_id = text(attrs, "gen_ai.response.id")
        if info is None and response_id:
            # Semconv: without a parent span, the evaluated completion is named by its response id.
            info = self.spans.get(f"r:{response_id}")
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
            success=pass_fail(label),
        )
