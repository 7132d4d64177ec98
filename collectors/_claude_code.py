"""Claude Code: per-prompt, per-API-request, per-tool and per-session outcomes (docs/claude-code.md).

Two sources feed the same aggregates: Claude Code's OpenTelemetry export (decoded by
``collectors/_otlp.py``: events as log records, metrics, beta spans) and its session logs in
``~/.claude/projects/**/*.jsonl`` (``read_session_logs``), for users without telemetry turned on.

Only counts, sizes, durations, model names, status codes and tool names are read. Prompt text,
responses and tool input never enter an Outcome.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from driftwatch._outcome import Outcome, OutcomeError, parse_time

__all__ = [
    "PROMPT_TASK",
    "SESSION_TASK",
    "TOOL_TASK",
    "SessionLogReport",
    "read_session_logs",
    "split_model",
]

PROMPT_TASK = "claude_code.prompt"
TOOL_TASK = "claude_code.tool"
SESSION_TASK = "claude_code.session"
SERVICE = "claude-code"

#: Requests and tools kept per prompt (by id, so that an event and a span of the same request merge);
#: beyond, they are still counted into the prompt's totals but get no outcome of their own.
MAX_ITEMS_PER_PROMPT = 256
#: The same for requests and tools without an id.
MAX_EXTRA_PER_PROMPT = 32
_SUMMED = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd")
#: Tool names counted per prompt and per session (``tool_uses``); further names count as ``other``.
MAX_TOOL_NAMES = 64


def _fill_defaults(obj: Any, state: Any) -> None:
    """Unpickle a slotted record; a field the pickled one predates (an older checkpoint) takes its default."""
    for f in fields(obj):
        if f.default is not MISSING:
            object.__setattr__(obj, f.name, f.default)
        elif f.default_factory is not MISSING:
            object.__setattr__(obj, f.name, f.default_factory())
    if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) as object.__reduce_ex__ gives
        state = {**(state[0] or {}), **(state[1] or {})}
    for name, value in (state or {}).items():
        object.__setattr__(obj, name, value)


def count_tool(counts: dict[str, int], name: str, n: int = 1) -> None:
    """Add ``n`` uses of tool ``name`` to ``counts``, at most ``MAX_TOOL_NAMES`` names (then ``other``)."""
    if name not in counts and len(counts) >= MAX_TOOL_NAMES:
        name = "other"
    counts[name] = counts.get(name, 0) + n


# Claude Code appends the context-window variant to model names in metrics and spans
# ("claude-opus-4-8[1m]"); the events carry the bare name. One model must be one version marker.
_SUFFIX = re.compile(r"\[([0-9A-Za-z._-]{1,16})\]$")


def split_model(name: str) -> tuple[str, str | None]:
    """``("claude-opus-4-8", "1m")`` from ``"claude-opus-4-8[1m]"``; the suffix is None when absent."""
    match = _SUFFIX.search(name)
    if match is None:
        return name, None
    return name[: match.start()], match.group(1)


@dataclass(slots=True)
class CallRecord:
    """One API request of a prompt, merged from its ``api_request``/``api_error`` event and span."""

    time: float
    model: str | None = None
    success: bool | None = None
    error_type: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost_usd: float | None = None
    stop_reason: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    sources: str = ""
    """Which sources were merged in: ``e`` (an event), ``s`` (a span)."""
    attempt: int | None = None
    """The last attempt (1 = no retry): ``attempt`` of an ``api_error`` event or ``llm_request`` span."""

    def __setstate__(self, state: Any) -> None:
        _fill_defaults(self, state)

    def merge(self, values: Mapping[str, Any], authoritative: bool) -> None:
        """Fill fields from ``values``; ``authoritative`` values (events) override span values."""
        source = "e" if authoritative else "s"
        # getattr: records restored from a checkpoint written before this field existed lack it.
        sources = getattr(self, "sources", "")
        if source not in sources:
            self.sources = sources + source
        for name, value in values.items():
            if value is None:
                continue
            if name == "labels":
                self.labels.update(value)
            elif name == "success":
                # A failure anywhere (any attempt, either source) makes the request failed.
                self.success = bool(value) if self.success is None else (self.success and bool(value))
            elif name == "attempt":
                self.attempt = max(self.attempt or 0, int(value))
            elif authoritative or getattr(self, name) is None:
                setattr(self, name, value)


@dataclass(slots=True)
class ToolRecord:
    """One tool use of a prompt: its name, whether it succeeded and how long it ran."""

    time: float
    name: str | None = None
    success: bool | None = None
    latency_s: float | None = None
    trace_id: str | None = None
    span_id: str | None = None

    def __setstate__(self, state: Any) -> None:
        _fill_defaults(self, state)

    def merge(self, values: Mapping[str, Any], authoritative: bool) -> None:
        for name, value in values.items():
            if value is None:
                continue
            if name == "success":
                self.success = bool(value) if self.success is None else (self.success and bool(value))
            elif authoritative or getattr(self, name) is None:
                setattr(self, name, value)


@dataclass(slots=True)
class PromptAgg:
    """Everything seen for one user prompt until it closes; picklable, no clocks."""

    session: str
    service: str
    start: float
    last: float
    labels: dict[str, str] = field(default_factory=dict)
    calls: dict[str, CallRecord] = field(default_factory=dict)
    tools: dict[str, ToolRecord] = field(default_factory=dict)
    extra_calls: list[CallRecord] = field(default_factory=list)
    extra_tools: list[ToolRecord] = field(default_factory=list)
    overflow_calls: int = 0
    overflow_tools: int = 0
    overflow_api_errors: int = 0
    overflow_tool_errors: int = 0
    overflow_sums: dict[str, float] = field(default_factory=dict)
    ended: float | None = None
    latency_s: float | None = None
    trace_id: str | None = None
    span_id: str | None = None
    aliases: list[str] = field(default_factory=list)
    overflow_tool_uses: dict[str, int] = field(default_factory=dict)
    overflow_retries: int = 0
    denials: dict[str, None] = field(default_factory=dict)
    """Permission denials: ``u:<tool-use id>`` (``tool_decision`` events) or ``s:<tool span id>``
    (``claude_code.tool.blocked_on_user`` spans, whose parent is the tool's span)."""
    overflow_denials: int = 0
    from_log: bool = False
    """Read from a session log, which shows neither retries nor denials (a denial is an error result
    told apart only by its text, which is never read): both stay unobserved."""

    def __setstate__(self, state: Any) -> None:
        _fill_defaults(self, state)

    def touch(self, t: float) -> None:
        self.start = min(self.start, t)
        self.last = max(self.last, t)

    def call(
        self, key: str | None, t: float, values: Mapping[str, Any], authoritative: bool, keep: bool = True
    ) -> bool:
        """Merge one request's values; ``key`` is its request id (None: cannot be de-duplicated).

        True when a new record was kept. Past the caps (or with ``keep`` false) the request is
        only counted into the prompt's totals, not kept as its own call outcome: bounded memory.
        """
        self.touch(t)
        record = self.calls.get(key) if key is not None else self._partner(values, authoritative)
        created = record is None
        if record is None:
            if keep and key is not None and len(self.calls) < MAX_ITEMS_PER_PROMPT:
                record = self.calls[key] = CallRecord(time=t)
            elif keep and key is None and len(self.extra_calls) < MAX_EXTRA_PER_PROMPT:
                record = CallRecord(time=t)
                self.extra_calls.append(record)
            else:
                self.overflow_calls += 1
                if values.get("success") is False:
                    self.overflow_api_errors += 1
                attempt = values.get("attempt")
                if isinstance(attempt, int) and attempt > 1:
                    self.overflow_retries += attempt - 1
                for name in _SUMMED:
                    value = values.get(name)
                    if isinstance(value, int | float):
                        self.overflow_sums[name] = self.overflow_sums.get(name, 0.0) + value
                return False
        record.time = min(record.time, t)
        record.merge(values, authoritative)
        return created

    def _partner(self, values: Mapping[str, Any], authoritative: bool) -> CallRecord | None:
        """The id-less record of the same request from the other source (event vs span), if any.

        Without a request id (a gateway or proxy that sends no ``request-id`` header) the event
        and the span of one request would otherwise count twice. They are the same request when
        they agree on model and token counts (success) or on the error (failure).
        """
        other = "s" if authoritative else "e"
        for record in self.extra_calls:
            sources = getattr(record, "sources", "")
            if other not in sources or len(sources) > 1:
                continue
            model = values.get("model")
            if model is not None and record.model is not None and model != record.model:
                continue
            failed = values.get("success") is False, record.success is False
            if any(failed):
                if all(failed) and values.get("error_type") == record.error_type:
                    return record
                continue
            tokens = [(values.get(n), getattr(record, n)) for n in ("input_tokens", "output_tokens")]
            if all(a is not None and a == b for a, b in tokens):
                return record
        return None

    def tool(
        self, key: str | None, t: float, values: Mapping[str, Any], authoritative: bool, keep: bool = True
    ) -> bool:
        """Merge one tool use's values (``key``: its tool-use id); True when a new record was kept."""
        self.touch(t)
        record = self.tools.get(key) if key is not None else None
        created = record is None
        if record is None:
            if keep and key is not None and len(self.tools) < MAX_ITEMS_PER_PROMPT:
                record = self.tools[key] = ToolRecord(time=t)
            elif keep and key is None and len(self.extra_tools) < MAX_EXTRA_PER_PROMPT:
                record = ToolRecord(time=t)
                self.extra_tools.append(record)
            else:
                self.overflow_tools += 1
                if values.get("success") is False:
                    self.overflow_tool_errors += 1
                name = values.get("name")
                if isinstance(name, str) and name:
                    count_tool(self.overflow_tool_uses, name)
                return False
        record.time = min(record.time, t)
        record.merge(values, authoritative)
        return created

    def deny(self, key: str | None) -> None:
        """A permission denial of one tool use (``key``: ``u:<tool-use id>`` or ``s:<tool span id>``)."""
        if key is not None and key not in self.denials and len(self.denials) < MAX_ITEMS_PER_PROMPT:
            self.denials[key] = None
        elif key is None or key not in self.denials:
            self.overflow_denials += 1

    def permission_denials(self) -> int:
        """Denials, each tool use once: a span's denial is the event's when its tool span names the id."""
        by_span = {t.span_id: key for key, t in self.tools.items() if t.span_id}
        seen = {by_span.get(k[2:], k) if k.startswith("s:") else k[2:] for k in self.denials}
        return len(seen) + self.overflow_denials

    def records(self) -> int:
        return len(self.calls) + len(self.tools) + len(self.extra_calls) + len(self.extra_tools)

    def all_calls(self) -> list[CallRecord]:
        return [*self.calls.values(), *self.extra_calls]

    def all_tools(self) -> list[ToolRecord]:
        return [*self.tools.values(), *self.extra_tools]

    def outcomes(self) -> list[Outcome]:
        """Call outcomes, tool outcomes, then the prompt's task outcome (in that order)."""
        out: list[Outcome] = []
        calls = self.all_calls()
        tools = self.all_tools()
        for c in calls:
            labels = {**self.labels, **c.labels}
            if c.error_type is not None and c.success is False:
                labels["error.type"] = c.error_type
            out.append(
                Outcome(
                    task=PROMPT_TASK,
                    time=c.time,
                    kind="call",
                    service=self.service,
                    model=c.model,
                    labels=labels,
                    success=c.success if c.success is not None else True,
                    latency_s=c.latency_s,
                    ttft_s=c.ttft_s,
                    input_tokens=c.input_tokens,
                    output_tokens=c.output_tokens,
                    cache_read_tokens=c.cache_read_tokens,
                    cache_write_tokens=c.cache_write_tokens,
                    cost_usd=c.cost_usd,
                    error_type=c.error_type if c.success is False else None,
                    stop_reason=c.stop_reason,
                    trace_id=c.trace_id or self.trace_id,
                    span_id=c.span_id,
                )
            )
        for tool in tools:
            labels = dict(self.labels)
            labels["tool_name"] = tool.name or "unknown"
            if tool.success is False:
                labels["error.type"] = "tool_error"
            out.append(
                Outcome(
                    task=TOOL_TASK,
                    time=tool.time,
                    kind="call",
                    service=self.service,
                    labels=labels,
                    success=tool.success,
                    latency_s=tool.latency_s,
                    error_type="tool_error" if tool.success is False else None,
                    trace_id=tool.trace_id or self.trace_id,
                    span_id=tool.span_id,
                )
            )
        out.append(self.task_outcome(calls, tools))
        return out

    def task_outcome(self, calls: list[CallRecord], tools: list[ToolRecord]) -> Outcome:
        api_errors = sum(1 for c in calls if c.success is False) + self.overflow_api_errors
        tool_errors = sum(1 for t in tools if t.success is False) + self.overflow_tool_errors
        seen = bool(calls or tools or self.overflow_calls or self.overflow_tools or self.ended is not None)
        outcome = Outcome(
            task=PROMPT_TASK,
            time=self.start,
            kind="task",
            service=self.service,
            labels=dict(self.labels),
            success=(api_errors == 0 and tool_errors == 0) if seen else None,
            api_errors=api_errors,
            tool_errors=tool_errors,
            tool_calls=len(tools) + self.overflow_tools,
            trace_id=self.trace_id,
            span_id=self.span_id,
        )
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            values = [getattr(c, name) for c in calls if getattr(c, name) is not None]
            if name in self.overflow_sums:
                values.append(self.overflow_sums[name])
            if values:
                setattr(outcome, name, int(sum(values)))
        costs = [c.cost_usd for c in calls if c.cost_usd is not None]
        if "cost_usd" in self.overflow_sums:
            costs.append(self.overflow_sums["cost_usd"])
        if costs:
            outcome.cost_usd = math.fsum(costs)
        if self.latency_s is not None:
            outcome.latency_s = self.latency_s
        elif self.last > self.start:
            # Without the interaction span: first event (the prompt) to the last one seen.
            outcome.latency_s = self.last - self.start
        models = [c.model for c in calls if c.model]
        outcome.model = models[-1] if models else None
        failed = [c.error_type for c in calls if c.success is False and c.error_type]
        if failed:
            outcome.error_type = failed[0]
        elif tool_errors:
            outcome.error_type = "tool_error"
        stops = [c.stop_reason for c in calls if c.stop_reason]
        outcome.stop_reason = stops[-1] if stops else None
        if outcome.error_type:
            outcome.labels["error.type"] = outcome.error_type
        self._behaviour(outcome, calls, tools)
        return outcome.derive()

    def _behaviour(self, outcome: Outcome, calls: list[CallRecord], tools: list[ToolRecord]) -> None:
        """The behavioural fields (docs/agents.md): turns, retries, permission denials, tool uses by name."""
        requests = len(calls) + self.overflow_calls
        if requests:
            outcome.turns = requests
            if not self.from_log:
                outcome.retries = sum(max(0, (c.attempt or 1) - 1) for c in calls) + self.overflow_retries
        if not self.from_log:
            outcome.permission_denials = self.permission_denials()
        uses: dict[str, int] = {}
        for tool in tools:
            count_tool(uses, tool.name or "unknown")
        for name, n in self.overflow_tool_uses.items():
            count_tool(uses, name, n)
        outcome.tool_uses = uses


@dataclass(slots=True)
class SessionAgg:
    """One Claude Code session: its open prompts, prompt totals and metric sums."""

    service: str
    session_id: str
    start: float
    last: float
    labels: dict[str, str] = field(default_factory=dict)
    prompts: dict[str, PromptAgg] = field(default_factory=dict)
    n_prompts: int = 0
    api_errors: int = 0
    tool_errors: int = 0
    tool_calls: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    """Totals from the prompts' calls: input_tokens, output_tokens, cache_*_tokens, cost_usd."""
    series: dict[str, float] = field(default_factory=dict)
    """Metric series ``name|type`` → total (delta points add, cumulative points replace)."""
    model: str | None = None
    trace_id: str | None = None
    turns: int = 0
    retries: int | None = None
    permission_denials: int | None = None
    tool_uses: dict[str, int] = field(default_factory=dict)

    def __setstate__(self, state: Any) -> None:
        _fill_defaults(self, state)

    def touch(self, t: float) -> None:
        self.start = min(self.start, t)
        self.last = max(self.last, t)

    def add_prompt(self, task: Outcome) -> None:
        self.n_prompts += 1
        self.api_errors += task.api_errors or 0
        self.tool_errors += task.tool_errors or 0
        self.tool_calls += task.tool_calls or 0
        self.turns += task.turns or 0
        if task.retries is not None:
            self.retries = (self.retries or 0) + task.retries
        if task.permission_denials is not None:
            self.permission_denials = (self.permission_denials or 0) + task.permission_denials
        for name, n in task.tool_uses.items():
            count_tool(self.tool_uses, name, n)
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd"):
            value = getattr(task, name)
            if value is not None:
                self.sums[name] = self.sums.get(name, 0.0) + value
        if task.model:
            self.model = task.model
        self.trace_id = self.trace_id or task.trace_id

    def outcome(self) -> Outcome | None:
        """The session's task outcome, or None when nothing but its start was seen."""
        metric = _metric_totals(self.series)
        if not self.n_prompts and not metric:
            return None
        outcome = Outcome(
            task=SESSION_TASK,
            time=self.start,
            kind="task",
            service=self.service,
            model=self.model,
            labels=dict(self.labels),
            trace_id=None,
        )
        if self.n_prompts:
            outcome.success = self.api_errors == 0 and self.tool_errors == 0
            outcome.api_errors = self.api_errors
            outcome.tool_errors = self.tool_errors
            outcome.tool_calls = self.tool_calls
            outcome.turns = self.turns or None
            outcome.retries = self.retries
            outcome.permission_denials = self.permission_denials
            outcome.tool_uses = dict(self.tool_uses)
        # Metrics are Claude Code's own totals (every request, also ones without events):
        # preferred over the sum of the prompts when present.
        totals = {**self.sums, **metric}
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            if name in totals:
                setattr(outcome, name, round(totals[name]))
        if "cost_usd" in totals:
            outcome.cost_usd = totals["cost_usd"]
        if "active_time_s" in totals:
            outcome.latency_s = totals["active_time_s"]
        elif self.last > self.start:
            outcome.latency_s = self.last - self.start
        return outcome.derive()


_TOKEN_TYPES = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cacheRead": "cache_read_tokens",
    "cacheCreation": "cache_write_tokens",
}


def _metric_totals(series: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in series.items():
        name, kind = ([*key.split("|"), ""])[:2]
        target: str | None = None
        if name == "claude_code.token.usage":
            target = _TOKEN_TYPES.get(kind)
        elif name == "claude_code.cost.usage":
            target = "cost_usd"
        elif name == "claude_code.active_time.total":
            target = "active_time_s"
        if target is not None:
            out[target] = out.get(target, 0.0) + value
    return out


# -- session logs -------------------------------------------------------------------------------


@dataclass
class SessionLogReport:
    """What reading session logs found: files, lines, outcomes, and each bad line with its reason."""

    files: int = 0
    lines: int = 0
    outcomes: int = 0
    errors: list[str] = field(default_factory=list)
    bad_lines: int = 0

    def bad(self, message: str) -> None:
        self.bad_lines += 1
        if len(self.errors) < 1000:
            self.errors.append(message)


_EXPECTED_LINE = (
    'expected one JSON object per line as Claude Code writes them, such as {"type": "user", '
    '"timestamp": "2026-11-22T01:42:15.840Z", "sessionId": "…", "message": {…}}'
)
_MAX_COUNT = 1e9


def _count(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise OutcomeError(f"{where} = {value!r} is not a number; expected a whole number >= 0")
    if value < 0 or value > _MAX_COUNT or value != int(value):
        raise OutcomeError(f"{where} = {value!r} is out of range; expected a whole number 0 to 1e9")
    return int(value)


def read_session_logs(
    root: str, report: SessionLogReport, *, stream_labels: list[str] | None = None
) -> Iterator[Outcome]:
    """Outcomes from Claude Code session logs under ``root`` (``*.jsonl``, recursively, sorted).

    Per prompt: call outcomes (one per API request), tool outcomes, the prompt's task outcome;
    per file (session): the session's task outcome. A bad line is recorded in ``report.errors`` as
    ``file:line: what; expected …`` and skipped.
    """
    paths: list[str] = []
    if os.path.isfile(root):
        paths = [root]
    else:
        for base, dirs, files in os.walk(root):
            dirs.sort()
            paths.extend(os.path.join(base, f) for f in sorted(files) if f.endswith(".jsonl"))
    for path in paths:
        report.files += 1
        for outcome in _read_one(path, report, stream_labels or []):
            report.outcomes += 1
            yield outcome


def _read_one(path: str, report: SessionLogReport, stream_labels: list[str]) -> Iterator[Outcome]:
    session: SessionAgg | None = None
    prompt: PromptAgg | None = None
    prompt_id: str | None = None
    tool_starts: dict[str, float] = {}
    try:
        fh = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    except OSError as exc:
        report.bad(f"{path}: cannot read: {exc.strerror}")
        return
    with fh:
        for number, line in enumerate(fh, 1):
            report.lines += 1
            text = line.strip()
            if not text:
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                report.bad(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); {_EXPECTED_LINE}")
                continue
            if not isinstance(record, dict):
                report.bad(f"{where}: expected a JSON object, got {type(record).__name__}; {_EXPECTED_LINE}")
                continue
            kind = record.get("type")
            if kind not in ("user", "assistant"):
                continue  # queue operations, attachments, summaries: nothing to measure
            try:
                t = parse_time(record.get("timestamp"), f"{where}: field 'timestamp'")
                if kind == "user":
                    message = record.get("message")
                    content = message.get("content") if isinstance(message, dict) else None
                    results = (
                        [c for c in content if isinstance(c, dict) and c.get("type") == "tool_result"]
                        if isinstance(content, list)
                        else []
                    )
                    new_id = record.get("promptId")
                    if not results and not record.get("isMeta") and (new_id != prompt_id or prompt is None):
                        # A new user prompt: the previous one is complete.
                        if prompt is not None and session is not None:
                            yield from _close(prompt, session)
                        if session is None:
                            session = SessionAgg(
                                SERVICE, str(record.get("sessionId") or os.path.basename(path)), t, t
                            )
                            session.labels = _log_labels(record, stream_labels)
                        prompt = PromptAgg(
                            session=session.session_id,
                            service=SERVICE,
                            start=t,
                            last=t,
                            labels=dict(session.labels),
                            from_log=True,
                        )
                        prompt_id = new_id if isinstance(new_id, str) else None
                        session.touch(t)
                        continue
                    if prompt is None:
                        continue
                    for result in results:
                        tool_id = result.get("tool_use_id")
                        key = tool_id if isinstance(tool_id, str) else None
                        started = tool_starts.pop(key, None) if key else None
                        prompt.tool(
                            key,
                            t,
                            {
                                "success": result.get("is_error") is not True,
                                "latency_s": (t - started) if started is not None and t >= started else None,
                            },
                            True,
                        )
                else:
                    if prompt is None:
                        continue
                    _assistant(record, where, t, prompt, tool_starts)
                if session is not None:
                    session.touch(t)
            except OutcomeError as exc:
                report.bad(str(exc))
    if prompt is not None and session is not None:
        yield from _close(prompt, session)
    if session is not None:
        final = session.outcome()
        if final is not None:
            yield final


def _log_labels(record: Mapping[str, Any], stream_labels: list[str]) -> dict[str, str]:
    labels = {"provider": "anthropic"}
    version = record.get("version")
    if isinstance(version, str) and version:
        labels["app.version"] = version
    for name in stream_labels:
        value = record.get(name)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            labels[name] = str(value)[:128]
    return labels


def _assistant(
    record: Mapping[str, Any], where: str, t: float, prompt: PromptAgg, tool_starts: dict[str, float]
) -> None:
    message = record.get("message")
    if not isinstance(message, dict):
        raise OutcomeError(f"{where}: field 'message' is missing; {_EXPECTED_LINE}")
    request = record.get("requestId") or message.get("id")
    key = request if isinstance(request, str) else None
    values: dict[str, Any] = {}
    model = message.get("model")
    failed = record.get("isApiErrorMessage") is True
    if isinstance(model, str) and model and not model.startswith("<"):
        # "<synthetic>" marks a message Claude Code made itself (an API error), not a model.
        values["model"], variant = split_model(model)
        if variant:
            values["labels"] = {"context_window": variant}
    values["success"] = not failed
    if failed:
        error = record.get("error")
        values["error_type"] = str(error)[:64] if isinstance(error, str) and error else "api_error"
    else:
        usage = message.get("usage")
        if isinstance(usage, dict):
            values["input_tokens"] = _count(usage.get("input_tokens"), f"{where}: usage.input_tokens")
            values["output_tokens"] = _count(usage.get("output_tokens"), f"{where}: usage.output_tokens")
            values["cache_read_tokens"] = _count(
                usage.get("cache_read_input_tokens"), f"{where}: usage.cache_read_input_tokens"
            )
            values["cache_write_tokens"] = _count(
                usage.get("cache_creation_input_tokens"), f"{where}: usage.cache_creation_input_tokens"
            )
        stop = message.get("stop_reason")
        if isinstance(stop, str):
            values["stop_reason"] = stop
    # One response is written as several lines (one per content block), each repeating the usage:
    # merged by request id, so it counts once.
    prompt.call(key, t, values, True)
    content = message.get("content")
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                tool_id = block.get("id")
                name = block.get("name")
                tool_key = tool_id if isinstance(tool_id, str) else None
                prompt.tool(tool_key, t, {"name": name if isinstance(name, str) else None}, True)
                if tool_key and len(tool_starts) < MAX_ITEMS_PER_PROMPT:
                    tool_starts[tool_key] = t


def _close(prompt: PromptAgg, session: SessionAgg) -> Iterator[Outcome]:
    outcomes = prompt.outcomes()
    session.add_prompt(outcomes[-1])
    yield from outcomes
