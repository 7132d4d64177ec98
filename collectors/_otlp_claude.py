"""Claude Code's OpenTelemetry telemetry in OTLP: events (log records), metrics and beta spans.

``ClaudeCodeTelemetry`` joins what Claude Code exports in separate requests into its prompts and
sessions (``PromptAgg``, ``SessionAgg`` in ``collectors/_claude_code.py``), by ``prompt.id`` and
trace id, within hard bounds on memory; prompts and sessions become Outcomes when they end or go
idle (``expire``). Its state is plain data driven only by the event timestamps: it pickles with
the decoder (``collectors/_otlp.py``), which hands it each Claude Code item. See docs/claude-code.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from driftwatch._config import Config
from driftwatch._outcome import Outcome
from driftwatch.collectors._claude_code import PromptAgg, SessionAgg
from driftwatch.collectors._otlp_values import (
    MAX_COST,
    STATUS_ERROR,
    Bad,
    DecoderStats,
    attributes,
    began,
    boolean,
    count,
    event_time,
    hex_id,
    model_and_labels,
    number,
    seconds,
    stream_labels,
    text,
)

__all__ = [
    "ENDED_GRACE_S",
    "MAX_CLOSED",
    "MAX_OPEN_PROMPTS",
    "MAX_PROMPTS_PER_SESSION",
    "MAX_RECORDS",
    "MAX_SERIES_PER_SESSION",
    "ClaudeCodeTelemetry",
]

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

CUMULATIVE = 2  # AGGREGATION_TEMPORALITY_CUMULATIVE (Claude Code sends delta by default)


class ClaudeCodeTelemetry:
    """Claude Code prompts and sessions, aggregated across requests.

    ``expire(now)`` emits the ones idle since event time ``now - session_idle_s``
    (``expire(math.inf)`` emits everything). At most ``max_sessions`` sessions are open; items for
    further sessions are dropped and counted in ``stats`` (the decoder's).
    """

    def __init__(self, config: Config, stats: DecoderStats, max_sessions: int, session_idle_s: float) -> None:
        self.config = config
        self.stats = stats
        self.max_sessions = max_sessions
        self.session_idle_s = session_idle_s
        self._sessions: dict[str, SessionAgg] = {}
        self._aliases: dict[str, tuple[str, str]] = {}
        self._closed: dict[str, None] = {}
        self._records = 0
        self._open_prompts = 0

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    def expire(self, now: float, out: list[Outcome]) -> None:
        """Emit (into ``out``) prompts and sessions idle since event time ``now - session_idle_s``.

        A prompt whose interaction span ended goes ``ENDED_GRACE_S`` after its end.
        """
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
        session_id = text(attrs, "session.id") or ""
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

    def _deny(self, prompt: PromptAgg, key: str | None) -> None:
        """A permission denial into ``prompt``; past the record budget only counted (not de-duplicated)."""
        prompt.deny(key if self._records < MAX_RECORDS else None)

    def _labels(self, attrs: Mapping[str, Any], res: Mapping[str, Any]) -> dict[str, str]:
        labels = stream_labels(self.config.stream_labels, attrs, res)
        labels["provider"] = "anthropic"
        return labels

    def event(
        self,
        event: str,
        record: Any,
        attrs: Mapping[str, Any],
        res: Mapping[str, Any],
        service: str,
        t: float,
        where: str,
        out: list[Outcome],
    ) -> None:
        if event not in ("user_prompt", "api_request", "api_error", "tool_result", "tool_decision"):
            # Other events (assistant_response, api_retries_exhausted — its request's api_error
            # has the same attempt, …) carry nothing watched; they still extend a prompt's activity.
            prompt_id = text(attrs, "prompt.id")
            found = self._aliases.get(f"p:{prompt_id}") if prompt_id else None
            if found is not None:
                self._sessions[found[0]].prompts[found[1]].touch(t)
                self._sessions[found[0]].touch(t)
            return
        labels = self._labels(attrs, res)
        effort = text(attrs, "effort")
        values: dict[str, Any] = {}
        tool: dict[str, Any] = {}
        if event in ("api_request", "api_error"):
            model, model_labels = model_and_labels(text(attrs, "model"))
            # api_error events name the model with its context-window suffix ("…[1m]"), api_request
            # events never do: from events alone, a failed and a good call of one model must carry
            # the same labels, or a stream label splits failures from successes. Spans carry the
            # suffix on both and still set it.
            model_labels.pop("context_window", None)
            values["model"] = model
            if effort:
                model_labels["effort"] = effort
            values["labels"] = model_labels
            values["latency_s"] = seconds(attrs, "duration_ms", where, ms=True)
            if event == "api_request":
                values["success"] = True
                values["input_tokens"] = count(attrs, "input_tokens", where)
                values["output_tokens"] = count(attrs, "output_tokens", where)
                values["cache_read_tokens"] = count(attrs, "cache_read_tokens", where)
                values["cache_write_tokens"] = count(attrs, "cache_creation_tokens", where)
                values["cost_usd"] = number(attrs, "cost_usd", where, 0, MAX_COST)
            else:
                status = count(attrs, "status_code", where)
                values["success"] = False
                values["error_type"] = str(status) if status else "api_error"
                # The request's last attempt: a request that failed after retries is one event.
                values["attempt"] = count(attrs, "attempt", where)
            values["trace_id"] = hex_id(record.trace_id)
        elif event == "tool_result":
            tool = {
                "name": text(attrs, "tool_name"),
                "success": boolean(attrs, "success", where),
                "latency_s": seconds(attrs, "duration_ms", where, ms=True),
                "trace_id": hex_id(record.trace_id),
            }
        else:  # tool_decision: the model asked for the tool; "reject" is a permission denial
            tool = {"name": text(attrs, "tool_name"), "trace_id": hex_id(record.trace_id)}
        aliases: list[str] = []
        prompt_id = text(attrs, "prompt.id")
        if prompt_id:
            aliases.append(f"p:{prompt_id}")
        trace = hex_id(record.trace_id)
        if trace:
            aliases.append(f"t:{trace}")
        if not aliases:
            if event == "tool_decision":
                return  # a decision alone, of no prompt: no tool use to count it in
            # No prompt to attach to: the request or tool use is an outcome on its own.
            lone = PromptAgg(session="", service=service, start=t, last=t, labels=labels)
            if values:
                lone.call(text(attrs, "request_id"), began(t, values), values, True)
            if tool:
                lone.tool(text(attrs, "tool_use_id"), began(t, tool), tool, True)
            out.extend(o for o in lone.outcomes() if o.kind == "call")
            return
        prompt = self._prompt(service, attrs, aliases, t, labels, out)
        if prompt is None:
            return
        if event == "user_prompt":
            session = self._sessions[self._aliases[aliases[0]][0]]
            if prompt.span_id is None:
                prompt.span_id = hex_id(record.span_id)
                prompt.trace_id = trace
            # A new prompt completes the session's earlier ones (events come in order).
            for pkey in list(session.prompts):
                other = session.prompts[pkey]
                if other is not prompt and other.start <= t:
                    self._close_prompt(session, pkey, out)
            return
        if effort and "effort" not in prompt.labels:
            prompt.labels["effort"] = effort
        if values:
            self._add(prompt, "call", text(attrs, "request_id"), began(t, values), values, True)
        else:
            tool_use_id = text(attrs, "tool_use_id")
            self._add(prompt, "tool", tool_use_id, began(t, tool), tool, True)
            if event == "tool_decision" and text(attrs, "decision") == "reject":
                self._deny(prompt, f"u:{tool_use_id}" if tool_use_id else None)

    def span(
        self,
        span: Any,
        name: str,
        attrs: Mapping[str, Any],
        res: Mapping[str, Any],
        service: str,
        start: float,
        end: float,
        where: str,
        out: list[Outcome],
    ) -> None:
        kind = name.removeprefix("claude_code.")
        if kind not in ("interaction", "llm_request", "tool", "tool.execution", "tool.blocked_on_user"):
            return
        trace = hex_id(span.trace_id)
        if trace is None:
            raise Bad(f"{where}: trace_id is empty; expected the 16-byte trace id of the interaction")
        labels = self._labels(attrs, res)
        prompt = self._prompt(service, attrs, [f"t:{trace}"], start, labels, out)
        if prompt is None:
            return
        prompt.touch(end)
        if kind == "interaction":
            latency = seconds(attrs, "interaction.duration_ms", where, ms=True)
            prompt.latency_s = latency if latency is not None else end - start
            prompt.ended = end
            prompt.trace_id = trace
            prompt.span_id = hex_id(span.span_id)
        elif kind == "llm_request":
            model, model_labels = model_and_labels(
                text(attrs, "model") or text(attrs, "gen_ai.request.model")
            )
            success = boolean(attrs, "success", where)
            if success is None:
                success = span.status.code != STATUS_ERROR
            status = count(attrs, "status_code", where)
            latency = seconds(attrs, "duration_ms", where, ms=True)
            values: dict[str, Any] = {
                "model": model,
                "labels": model_labels,
                "success": success,
                "error_type": None if success else (str(status) if status else "api_error"),
                "latency_s": latency if latency is not None else end - start,
                "ttft_s": seconds(attrs, "ttft_ms", where, ms=True),
                "input_tokens": count(attrs, "input_tokens", where),
                "output_tokens": count(attrs, "output_tokens", where),
                "cache_read_tokens": count(attrs, "cache_read_tokens", where),
                "cache_write_tokens": count(attrs, "cache_creation_tokens", where),
                "stop_reason": text(attrs, "stop_reason"),
                "trace_id": trace,
                "span_id": hex_id(span.span_id),
                "attempt": count(attrs, "attempt", where),
            }
            request_id = text(attrs, "request_id") or text(attrs, "gen_ai.response.id")
            self._add(prompt, "call", request_id, start, values, False)
        elif kind == "tool":
            latency = seconds(attrs, "duration_ms", where, ms=True)
            self._add(
                prompt,
                "tool",
                text(attrs, "tool_use_id") or text(attrs, "gen_ai.tool.call.id"),
                start,
                {
                    "name": text(attrs, "tool_name"),
                    "latency_s": latency if latency is not None else end - start,
                    "trace_id": trace,
                    "span_id": hex_id(span.span_id),
                },
                False,
            )
        elif kind == "tool.blocked_on_user":
            # The permission check of a tool use, a child of its tool span; headless Claude Code
            # reports a refusal only here (no tool_decision event).
            if text(attrs, "decision") == "reject":
                parent = hex_id(span.parent_span_id)
                self._deny(prompt, f"s:{parent}" if parent else None)
        else:  # tool.execution: whether the tool succeeded
            success = boolean(attrs, "success", where)
            if success is None and span.status.code == STATUS_ERROR:
                success = False
            self._add(
                prompt,
                "tool",
                text(attrs, "tool_use_id") or text(attrs, "gen_ai.tool.call.id"),
                start,
                {"success": success},
                False,
            )

    def point(
        self, name: str, temporality: int, point: Any, res: Mapping[str, Any], service: str, where: str
    ) -> None:
        attrs = attributes(point.attributes)
        t = event_time(point.time_unix_nano, 0, where)
        which = point.WhichOneof("value")
        value = float(point.as_double if which == "as_double" else point.as_int)
        if not math.isfinite(value) or not 0 <= value <= 1e12:
            raise Bad(
                f"{where}: metric '{name}' value {value!r} is out of range; "
                "expected a finite number 0 to 1e12"
            )
        session_id = text(attrs, "session.id")
        if session_id is None:
            return  # not attributable to a session (OTEL_METRICS_INCLUDE_SESSION_ID=false)
        session = self._session(service, session_id, t, self._labels(attrs, res))
        if session is None:
            return
        model, _ = model_and_labels(text(attrs, "model"))
        if model and session.model is None:
            session.model = model
        key = f"{name}|{text(attrs, 'type') or ''}|{model or ''}"
        if key not in session.series and len(session.series) >= MAX_SERIES_PER_SESSION:
            raise Bad(
                f"{where}: session {session_id!r} already has {MAX_SERIES_PER_SESSION} metric series; "
                f"expected few 'type' and 'model' values per session, got {key!r}"
            )
        if temporality == CUMULATIVE:
            session.series[key] = value
        else:  # delta (Claude Code's default)
            session.series[key] = session.series.get(key, 0.0) + value
