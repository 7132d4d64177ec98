"""``driftwatch.task``: one agent task as a context manager or decorator, with its outcome."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from driftwatch import _semconv as sc
from driftwatch._outcome import Outcome, stream_key
from driftwatch._runtime import Runtime, get_runtime

__all__ = ["Task", "current_task", "task"]

log = logging.getLogger("driftwatch")
F = TypeVar("F", bound=Callable[..., Any])

_current: contextvars.ContextVar[Task | None] = contextvars.ContextVar("driftwatch_task", default=None)

#: What ``Task.record`` sets as outcome fields (the rest of its keyword arguments become labels).
FIELDS = frozenset(
    {
        "latency_s",
        "ttft_s",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "tool_calls",
        "tool_errors",
        "api_errors",
        "model",
        "error_type",
        "stop_reason",
        "turns",
        "thinking_tokens",
        "retries",
        "permission_denials",
        "api_latency_s",
        "reads_per_edit",
        "tool_error_rate",
        "tool_uses",
        "subagent_tool_uses",
    }
)

#: What ``Task._add_run`` sums from an agent run's outcome.
_RUN_SUMS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "tool_calls",
    "tool_errors",
    "turns",
    "thinking_tokens",
)

#: Tool names ``Task._add_run`` keeps in ``tool_uses``; further names count as ``other``.
_MAX_TOOL_NAMES = 64


def current_task() -> Task | None:
    """The task whose ``with`` block (or decorated function) is running in this context, if any."""
    return _current.get()


class Task:
    """One agent task. Calls made inside it are attached to it; ``record`` sets its outcome.

    Use ``with driftwatch.task("fix-tests", language="python") as t: ... t.record(success=True)``,
    ``async with``, or as a decorator. An exception leaving the block marks the task failed (with
    its type as ``error_type``) and propagates unchanged.
    """

    def __init__(self, name: str, task_id: str | None = None, **labels: Any) -> None:
        self.name = name
        self.task_id = task_id
        self.labels = {k: str(v) for k, v in labels.items()}
        self._lock = threading.Lock()
        self._recorded: dict[str, Any] = {}
        self._calls = 0
        self._sums: dict[str, float] = {}
        self._api_errors = 0
        self._model: str | None = None
        self._run_labels: dict[str, str] = {}
        self._run_tool_uses: dict[str, int] = {}
        self._span: trace.Span | None = None
        self._token: contextvars.Token[Task | None] | None = None
        self._otel_token: object | None = None
        self._start = 0.0
        self._wall = 0.0
        self._runtime: Runtime | None = None

    @property
    def started_at(self) -> float:
        """Event time (epoch seconds) the task began; its outcome's ``time``."""
        return self._wall

    # -- the outcome ----------------------------------------------------------------------------
    def record(self, success: bool | None = None, score: float | None = None, **signals: Any) -> None:
        """Set the task's outcome: pass/fail, a score, and any other signals (they override sums).

        The outcome's fields (``FIELDS``: signals such as ``cost_usd`` or ``turns``, and ``model``,
        ``api_errors``, ``cache_read_tokens``, ``cache_write_tokens``, ``error_type``, ``tool_uses``…)
        are set as fields; any other keyword becomes a label.
        """
        with self._lock:
            if success is not None:
                self._recorded["success"] = bool(success)
            if score is not None:
                self._recorded["score"] = float(score)
            self._recorded.update(signals)

    def _add_call(self, call: Outcome) -> None:
        """Sum one API call's usage into the task (called by the Anthropic wrapper)."""
        with self._lock:
            self._calls += 1
            for name in ("input_tokens", "output_tokens", "cost_usd", "tool_calls", "cache_read_tokens"):
                value = getattr(call, name)
                if value is not None:
                    self._sums[name] = self._sums.get(name, 0) + value
            if call.success is False:
                self._api_errors += 1
            if call.model:
                self._model = call.model

    def _add_run(self, run: Outcome) -> None:
        """Sum one agent run into the task (called by the agent SDK integrations): its usage, turns,
        thinking tokens, tool counts (by name too), API errors and model; its count labels
        (``tool_calls.<name>``) are summed."""
        with self._lock:
            self._calls += 1
            for name in _RUN_SUMS:
                value = getattr(run, name)
                if value is not None:
                    self._sums[name] = self._sums.get(name, 0) + value
            self._api_errors += run.api_errors or 0
            for tool, n in run.tool_uses.items():
                if tool not in self._run_tool_uses and len(self._run_tool_uses) >= _MAX_TOOL_NAMES:
                    tool = "other"  # bounded: a task of many runs keeps at most this many names
                self._run_tool_uses[tool] = self._run_tool_uses.get(tool, 0) + n
            if run.model:
                self._model = run.model
            for key, value in run.labels.items():
                before = self._run_labels.get(key)
                if before is not None and before.isdigit() and value.isdigit():
                    value = str(int(before) + int(value))
                self._run_labels[key] = value

    # -- lifecycle ------------------------------------------------------------------------------
    def _begin(self) -> None:
        self._start = time.perf_counter()
        self._wall = time.time()
        self._token = _current.set(self)
        try:
            self._runtime = get_runtime()
            if self._runtime is not None:
                attributes: dict[str, Any] = {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": self.name,
                    sc.TASK_NAME: self.name,
                }
                if self.task_id:
                    attributes[sc.TASK_ID] = self.task_id
                for k, v in self.labels.items():
                    attributes[sc.TASK_LABEL + k] = v
                self._span = self._runtime.telemetry.tracer.start_span(
                    f"invoke_agent {self.name}", kind=SpanKind.INTERNAL, attributes=attributes
                )
                self._otel_token = otel_context.attach(trace.set_span_in_context(self._span))
        except Exception:
            log.warning("driftwatch: could not start task %r", self.name, exc_info=True)

    def _end(self, exc: BaseException | None) -> None:
        if self._otel_token is not None:
            try:
                otel_context.detach(self._otel_token)  # type: ignore[arg-type]
            except Exception:
                log.debug("driftwatch: context detach failed", exc_info=True)
        if self._token is not None:
            # Ended in another context than it began (e.g. a generator): leave that context alone.
            with contextlib.suppress(ValueError):
                _current.reset(self._token)
        try:
            self._finish(exc)
        except Exception:
            log.warning("driftwatch: could not record task %r", self.name, exc_info=True)

    def _finish(self, exc: BaseException | None) -> None:
        runtime = self._runtime
        if runtime is None:
            return
        outcome = self.outcome(exc)
        outcome.service = runtime.config.service
        span = self._span
        if span is not None:
            ctx = span.get_span_context()
            if ctx.is_valid:
                outcome.trace_id = format(ctx.trace_id, "032x")
                outcome.span_id = format(ctx.span_id, "016x")
            if span.is_recording():
                span.set_attributes(_span_attributes(outcome))
                span.set_attribute(sc.STREAM_KEY, stream_key(outcome, runtime.config.stream_labels))
                if exc is not None and isinstance(exc, Exception):
                    error_type = outcome.error_type or type(exc).__name__
                    span.set_status(Status(StatusCode.ERROR, error_type))
                    span.set_attribute("error.type", error_type)
            span.end()
        runtime.monitor.submit(outcome)

    def outcome(self, exc: BaseException | None = None) -> Outcome:
        """The task's outcome as it stands: recorded signals over summed call usage."""
        with self._lock:
            recorded = dict(self._recorded)
            sums = dict(self._sums)
            calls, errors, model = self._calls, self._api_errors, self._model
            run_labels = dict(self._run_labels)
            run_tool_uses = dict(self._run_tool_uses)
        outcome = Outcome(task=self.name, time=self._wall, kind="task", task_id=self.task_id, model=model)
        outcome.labels = {**run_labels, **self.labels}
        outcome.latency_s = time.perf_counter() - self._start
        if calls:
            outcome.input_tokens = int(sums.get("input_tokens", 0))
            outcome.output_tokens = int(sums.get("output_tokens", 0))
            outcome.cache_read_tokens = int(sums.get("cache_read_tokens", 0))
            outcome.tool_calls = int(sums.get("tool_calls", 0))
            outcome.cost_usd = sums.get("cost_usd")
            outcome.api_errors = errors
            if "tool_errors" in sums:
                outcome.tool_errors = int(sums["tool_errors"])
            if "cache_write_tokens" in sums:
                outcome.cache_write_tokens = int(sums["cache_write_tokens"])
            for name in ("turns", "thinking_tokens"):
                if name in sums:
                    setattr(outcome, name, int(sums[name]))
            if run_tool_uses:
                outcome.tool_uses = run_tool_uses
        if exc is not None and isinstance(exc, Exception):
            outcome.success = False
            outcome.error_type = type(exc).__name__
        for name, value in recorded.items():
            if name in ("success", "score") or name in FIELDS:
                # A recorded error type (e.g. the agent run's "529") stays when an exception follows.
                setattr(outcome, name, dict(value) if isinstance(value, dict) else value)
            else:
                outcome.labels[name] = str(value)
        return outcome.derive()

    def __enter__(self) -> Task:
        self._begin()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._end(exc)

    async def __aenter__(self) -> Task:
        self._begin()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._end(exc)


#: The agent-run signals and their task-span attributes (read back by ``collectors/_otlp_genai.py``).
_BEHAVIOUR = {
    "turns": sc.TASK_TURNS,
    "thinking_tokens": sc.TASK_THINKING_TOKENS,
    "retries": sc.TASK_RETRIES,
    "permission_denials": sc.TASK_PERMISSION_DENIALS,
    "api_latency_s": sc.TASK_API_LATENCY_S,
    "reads_per_edit": sc.TASK_READS_PER_EDIT,
    "tool_error_rate": sc.TASK_TOOL_ERROR_RATE,
}


def _span_attributes(outcome: Outcome) -> dict[str, Any]:
    """Everything of the outcome but its service and time, so that a collector rebuilds it from the span."""
    attrs: dict[str, Any] = {}
    if outcome.success is not None:
        attrs[sc.TASK_SUCCESS] = outcome.success
    if outcome.score is not None:
        attrs[sc.TASK_SCORE] = outcome.score
    if outcome.latency_s is not None:
        attrs[sc.TASK_LATENCY_S] = outcome.latency_s
    if outcome.ttft_s is not None:
        attrs[sc.TASK_TTFT_S] = outcome.ttft_s
    if outcome.model:
        attrs["gen_ai.response.model"] = outcome.model
    if outcome.input_tokens is not None:
        # GenAI semconv: input tokens include cached ones (read and written).
        cached = (outcome.cache_read_tokens or 0) + (outcome.cache_write_tokens or 0)
        attrs["gen_ai.usage.input_tokens"] = outcome.input_tokens + cached
    if outcome.cache_read_tokens is not None:
        attrs["gen_ai.usage.cache_read.input_tokens"] = outcome.cache_read_tokens
    if outcome.cache_write_tokens is not None:
        attrs["gen_ai.usage.cache_write.input_tokens"] = outcome.cache_write_tokens
    if outcome.output_tokens is not None:
        attrs["gen_ai.usage.output_tokens"] = outcome.output_tokens
    if outcome.cost_usd is not None:
        attrs[sc.TASK_COST_USD] = outcome.cost_usd
    if outcome.tool_calls is not None:
        attrs[sc.TASK_TOOL_CALLS] = outcome.tool_calls
    if outcome.tool_errors is not None:
        attrs[sc.TASK_TOOL_ERRORS] = outcome.tool_errors
    if outcome.api_errors is not None:
        attrs[sc.TASK_API_ERRORS] = outcome.api_errors
    if outcome.error_type:
        attrs["error.type"] = outcome.error_type
    if outcome.stop_reason:
        attrs[sc.TASK_STOP_REASON] = outcome.stop_reason
    for name, key in _BEHAVIOUR.items():
        value = getattr(outcome, name)
        if value is not None:
            attrs[key] = value
    for tool, n in outcome.tool_uses.items():
        attrs[sc.TASK_TOOL_USES + tool] = n
    for agent, n in outcome.subagent_tool_uses.items():
        attrs[sc.TASK_SUBAGENT_TOOL_USES + agent] = n
    for k, v in outcome.labels.items():
        attrs[sc.TASK_LABEL + k] = v
    return attrs


class task:
    """Context manager (sync and async) and decorator for one agent task; see ``Task``."""

    def __init__(self, name: str, task_id: str | None = None, **labels: Any) -> None:
        self._args = (name, task_id, labels)
        self._task: Task | None = None

    def _new(self) -> Task:
        name, task_id, labels = self._args
        return Task(name, task_id, **labels)

    def __enter__(self) -> Task:
        self._task = self._new()
        return self._task.__enter__()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task is not None
        self._task.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> Task:
        self._task = self._new()
        return await self._task.__aenter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task is not None
        await self._task.__aexit__(exc_type, exc, tb)

    def __call__(self, fn: F) -> F:
        """Decorate a function (sync or async): each call is one task. ``current_task()`` inside."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with self._new() as _:
                    return await fn(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self._new() as _:
                return fn(*args, **kwargs)

        return run  # type: ignore[return-value]
