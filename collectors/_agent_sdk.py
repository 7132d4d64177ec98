"""``driftwatch.agent_run``: one Claude Agent SDK run as one task outcome, behavioural signals included.

The Claude Agent SDK (``claude-agent-sdk``) drives the Claude Code CLI as a subprocess, so an agent
built on it makes no Python ``anthropic`` call that ``driftwatch.watch()`` could see. What the run
reports comes back as messages instead; ``AgentRun`` reads them as they pass (counts, names and ids
only, never text) and, when its block ends, records one task outcome through ``driftwatch.task``::

    async with driftwatch.agent_run("fix-tests", repo="api") as run:
        async for message in run.query(prompt="make the tests pass", options=options):
            ...
        run.record(success=tests_pass())        # the verdict wins over what the run reported

How the messages become an outcome (docs/agents.md has the reasoning):

- **success** — the verdict given to ``record``; else derived from the ``ResultMessage``\\ s: no
  result (the stream was left early) → none, ``stop_reason="abandoned"``; a result with
  ``terminal_reason`` ``aborted_*`` (an interrupt) → none; a result with ``is_error`` or a
  ``subtype`` other than ``"success"`` → false (a 529 is ``subtype="success"``, ``is_error=True``);
  else true. A failed tool or a permission denial does not fail a run (the CLI calls it a success):
  they are counted in ``tool_errors`` and ``permission_denials``.
- **error_type** — of the failing result: its ``api_error_status`` (``"529"``), else its subtype
  (``"error_max_turns"``), else its terminal reason. The ``ResultError`` the SDK raises after an
  error result is the same failure: it keeps that error type and counts once.
- **cost and tokens** — ``total_cost_usd``, ``model_usage`` and ``duration_api_ms`` are running totals
  of the CLI session (subagents included), so the run's share is the difference from what the session
  had reached before the run (remembered per session id in this process; a session first seen here
  starts at zero). Per-message usage is a placeholder (``output_tokens=1``) and never read.
- **turns** and **permission_denials** — summed over the run's results (they are per result).
- **model** — the main agent's (not ``<synthetic>``, which marks the CLI's own error messages).
- **tool_uses** by tool name, **subagent_tool_uses** by subagent type (the subagent tool is ``Agent``
  or, in older CLIs, ``Task`` in tool-use blocks), **tool_errors**, **retries** (``api_retry``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from driftwatch import _semconv as sc
from driftwatch.collectors._task import Task

__all__ = ["SUBAGENT_TOOLS", "AgentRun", "RunTracker", "agent_run"]

log = logging.getLogger("driftwatch")
M = TypeVar("M")

#: The tool that starts a subagent, as named in tool-use blocks (``Agent``; ``Task`` before).
SUBAGENT_TOOLS = frozenset({"Agent", "Task"})
#: The assistant ``model`` of messages the CLI makes up itself (an API error's text).
SYNTHETIC_MODEL = "<synthetic>"
#: Session totals remembered for the cost difference of the next run in the same session.
MAX_SESSIONS = 10_000


@dataclasses.dataclass(slots=True)
class _Totals:
    """A session's running totals as its last result reported them."""

    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    thinking_tokens: int = 0
    api_ms: float = 0.0
    has_usage: bool = False

    def minus(self, base: _Totals) -> _Totals:
        """What was added since ``base``, never negative (a total that fell, 0 on an interrupt, adds 0)."""
        return self._combine(base, lambda mine, theirs: max(0, mine - theirs))

    def after(self, later: _Totals) -> _Totals:
        """The newer of two reports of one session's totals, field by field (they only grow)."""
        return self._combine(later, max)

    def plus(self, other: _Totals) -> _Totals:
        return self._combine(other, lambda mine, theirs: mine + theirs)

    def _combine(self, other: _Totals, op: Callable[[Any, Any], Any]) -> _Totals:
        out = _Totals(has_usage=self.has_usage or other.has_usage)
        for name in _SUMMED:
            setattr(out, name, op(getattr(self, name), getattr(other, name)))
        return out


_SUMMED = tuple(f.name for f in dataclasses.fields(_Totals) if f.name != "has_usage")
_sessions: OrderedDict[str, _Totals] = OrderedDict()
_sessions_lock = threading.Lock()


def _session_baseline(session_id: str) -> _Totals:
    with _sessions_lock:
        return _sessions.get(session_id) or _Totals()


def _session_reached(session_id: str, totals: _Totals) -> None:
    with _sessions_lock:
        previous = _sessions.pop(session_id, None)
        _sessions[session_id] = previous.after(totals) if previous is not None else totals
        while len(_sessions) > MAX_SESSIONS:
            _sessions.popitem(last=False)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _totals(result: Any) -> _Totals:
    """The running totals a ``ResultMessage`` reports (cost, per-model usage, API time)."""
    totals = _Totals()
    cost = getattr(result, "total_cost_usd", None)
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
        totals.cost_usd = float(cost)
    api_ms = getattr(result, "duration_api_ms", None)
    if isinstance(api_ms, int | float) and not isinstance(api_ms, bool) and api_ms >= 0:
        totals.api_ms = float(api_ms)
    usage = getattr(result, "model_usage", None)
    if isinstance(usage, Mapping):
        for per_model in usage.values():
            if not isinstance(per_model, Mapping):
                continue
            totals.has_usage = True
            totals.input_tokens += _int(per_model.get("inputTokens"))
            totals.output_tokens += _int(per_model.get("outputTokens"))
            totals.cache_read_tokens += _int(per_model.get("cacheReadInputTokens"))
            totals.cache_write_tokens += _int(per_model.get("cacheCreationInputTokens"))
            totals.thinking_tokens += _int(per_model.get("thinkingTokens"))
    return totals


class RunTracker:
    """What a run's messages say, counted as they pass: the state behind one ``AgentRun`` outcome."""

    def __init__(self) -> None:
        self.results = 0
        self.failed: Any = None
        """The first failing ``ResultMessage``, if any."""
        self.last_result: Any = None
        self.turns = 0
        self.permission_denials = 0
        self.usage = Counter[str]()
        """Summed per-result ``usage`` (the main agent's), used when ``model_usage`` is missing."""
        self.tool_uses = Counter[str]()
        self.subagent_tool_uses = Counter[str]()
        self.tool_errors = 0
        self.retries = 0
        self.api_errors = 0
        self.model: str | None = None
        self.init_model: str | None = None
        self.result_error_seen = False
        self._tool_ids: set[str] = set()
        self._error_ids: set[str] = set()
        self._subagents: dict[str, str] = {}
        """Subagent tool-use id → subagent type, so that the subagent's own tool uses are attributed."""
        self._sessions: dict[str, tuple[_Totals, _Totals]] = {}
        """Session id → (totals before the run, the latest totals)."""

    # -- the messages -----------------------------------------------------------------------------
    def see(self, message: Any) -> None:
        """Count one message of any kind (unknown ones are ignored); never raises into the stream."""
        try:
            kind = type(message).__name__
            if kind == "ResultMessage":
                self._result(message)
            elif kind == "AssistantMessage":
                self._assistant(message)
            elif kind == "UserMessage":
                self._user(message)
            elif isinstance(getattr(message, "subtype", None), str):
                self._system(message)
        except Exception:
            log.debug("driftwatch: could not read an agent message", exc_info=True)

    def _system(self, message: Any) -> None:
        subtype = message.subtype
        data = getattr(message, "data", None)
        if subtype == "api_retry":
            self.retries += 1
        elif subtype == "init" and isinstance(data, Mapping) and isinstance(data.get("model"), str):
            self.init_model = data["model"]

    def _assistant(self, message: Any) -> None:
        parent = getattr(message, "parent_tool_use_id", None)
        model = getattr(message, "model", None)
        if getattr(message, "error", None) is not None:
            self.api_errors += 1
        elif parent is None and isinstance(model, str) and model and model != SYNTHETIC_MODEL:
            self.model = model
        for block in getattr(message, "content", None) or ():
            name, block_id = getattr(block, "name", None), getattr(block, "id", None)
            if not isinstance(name, str) or not isinstance(block_id, str) or not hasattr(block, "input"):
                continue
            if block_id in self._tool_ids:
                continue
            self._tool_ids.add(block_id)
            self.tool_uses[name[:128]] += 1
            if parent is not None and parent in self._subagents:
                self.subagent_tool_uses[self._subagents[parent]] += 1
            if name in SUBAGENT_TOOLS:
                tool_input = getattr(block, "input", None)
                agent = tool_input.get("subagent_type") if isinstance(tool_input, Mapping) else None
                self._subagents[block_id] = str(agent)[:128] if agent else "general-purpose"

    def _user(self, message: Any) -> None:
        content = getattr(message, "content", None)
        if not isinstance(content, list):
            return
        for block in content:
            tool_use_id = getattr(block, "tool_use_id", None)
            failed = getattr(block, "is_error", None) is True
            if failed and isinstance(tool_use_id, str) and tool_use_id not in self._error_ids:
                self._error_ids.add(tool_use_id)
                self.tool_errors += 1

    def _result(self, result: Any) -> None:
        self.results += 1
        self.last_result = result
        self.turns += _int(getattr(result, "num_turns", None))
        self.permission_denials += len(getattr(result, "permission_denials", None) or ())
        usage = getattr(result, "usage", None)
        if isinstance(usage, Mapping):
            self.usage["input_tokens"] += _int(usage.get("input_tokens"))
            self.usage["output_tokens"] += _int(usage.get("output_tokens"))
            self.usage["cache_read_tokens"] += _int(usage.get("cache_read_input_tokens"))
            self.usage["cache_write_tokens"] += _int(usage.get("cache_creation_input_tokens"))
            details = usage.get("output_tokens_details")
            if isinstance(details, Mapping):
                self.usage["thinking_tokens"] += _int(details.get("thinking_tokens"))
        if self.failed is None and _failed(result):
            self.failed = result
            if getattr(result, "api_error_status", None) is not None and not self.api_errors:
                self.api_errors = 1
        session = getattr(result, "session_id", None)
        if isinstance(session, str) and session:
            totals = _totals(result)
            base, latest = self._sessions.get(session) or (_session_baseline(session), _Totals())
            self._sessions[session] = (base, latest.after(totals))
            _session_reached(session, totals)

    def result_error(self, exc: BaseException) -> None:
        """The SDK's ``ResultError`` after an error result: the same failure, counted once."""
        self.result_error_seen = True
        if self.failed is None:
            self.failed = exc
            if getattr(exc, "api_error_status", None) is not None and not self.api_errors:
                self.api_errors = 1

    def crashed(self, exc: BaseException) -> None:
        """The stream raised (the CLI could not start, died, sent garbage): a failed run of that type."""
        if self.failed is None:
            self.failed = exc

    # -- the outcome ------------------------------------------------------------------------------
    def fields(self, abandoned: bool) -> dict[str, Any]:
        """The outcome fields for ``Task.record`` (success included only when the run says it)."""
        out: dict[str, Any] = {
            "turns": self.turns if self.results else None,
            "tool_calls": sum(self.tool_uses.values()),
            "tool_errors": self.tool_errors,
            "tool_uses": dict(self.tool_uses),
            "subagent_tool_uses": dict(self.subagent_tool_uses),
            "retries": self.retries,
            "api_errors": self.api_errors,
            "permission_denials": self.permission_denials if self.results else None,
            "model": self.model or self.init_model,
        }
        if self._sessions:
            spent = _Totals()
            for base, latest in self._sessions.values():
                spent = spent.plus(latest.minus(base))
            out["cost_usd"] = spent.cost_usd
            out["api_latency_s"] = spent.api_ms / 1000.0
            if spent.has_usage:
                for name in (
                    "input_tokens",
                    "output_tokens",
                    "cache_read_tokens",
                    "cache_write_tokens",
                    "thinking_tokens",
                ):
                    out[name] = getattr(spent, name)
        if "input_tokens" not in out and self.results:
            out.update({k: self.usage[k] for k in ("input_tokens", "output_tokens", "thinking_tokens")})
            out["cache_read_tokens"] = self.usage["cache_read_tokens"]
            out["cache_write_tokens"] = self.usage["cache_write_tokens"]
        reason = getattr(self.last_result, "terminal_reason", None)
        if isinstance(reason, str) and reason:
            out["stop_reason"] = reason
        if self.failed is not None:
            out["success"] = False
            out["error_type"] = _error_type(self.failed)
            failed_reason = getattr(self.failed, "terminal_reason", None)
            if isinstance(failed_reason, str) and failed_reason:
                out["stop_reason"] = failed_reason
        elif self.results and not (isinstance(reason, str) and reason.startswith("aborted")):
            out["success"] = True
        if abandoned and not self.results:
            out["stop_reason"] = "abandoned"
        return {k: v for k, v in out.items() if v is not None}


def _failed(result: Any) -> bool:
    if isinstance(getattr(result, "terminal_reason", None), str) and result.terminal_reason.startswith(
        "aborted"
    ):
        return False  # an interrupt: the caller stopped it, the agent did not fail
    return getattr(result, "is_error", False) is True or getattr(result, "subtype", "success") != "success"


def _error_type(failed: Any) -> str:
    status = getattr(failed, "api_error_status", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return str(status)
    subtype = getattr(failed, "subtype", None)
    if isinstance(subtype, str) and subtype and subtype != "success":
        return subtype[:64]
    reason = getattr(failed, "terminal_reason", None)
    if isinstance(reason, str) and reason:
        return reason[:64]
    return type(failed).__name__ if isinstance(failed, BaseException) else "error"


def _is_result_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "ResultError" and hasattr(exc, "terminal_reason")


class AgentRun:
    """One agent run (one prompt of a Claude Agent SDK agent, or several): one task outcome.

    Made by ``driftwatch.agent_run``; see the module docstring for how the messages are read.
    """

    def __init__(
        self, task: str, task_id: str | None = None, *, telemetry: bool = False, **labels: Any
    ) -> None:
        self.name = task
        self.task_id = task_id
        self.telemetry = telemetry
        self.tracker = RunTracker()
        self.task = Task(task, task_id, **labels)
        self._verdict: dict[str, Any] = {}
        self._open: list[AsyncIterator[Any]] = []
        self._abandoned = False

    # -- what the agent calls -----------------------------------------------------------------------
    def query(self, *, prompt: Any, options: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        """``claude_agent_sdk.query`` with the same arguments, yielding the same messages, watched.

        Leaving the loop early (``break``, ``aclose()``) is recorded as ``stop_reason="abandoned"``
        and stops the CLI: at once on ``aclose()``, else when the ``agent_run`` block ends. (The SDK's
        own ``query()`` cannot do this: closing it leaves its CLI running until the garbage collector
        gets to it, and even then the CLI finishes its turns for up to 5 s after its input closes.)
        """
        options = self.options(options)
        messages, stop = _stoppable_query(prompt, options, kwargs)
        stream = self._watch(messages, stop)
        self._open.append(stream)
        return stream

    def observe(self, messages: AsyncIterable[M]) -> AsyncIterator[M]:
        """Pass any stream of SDK messages through (e.g. ``ClaudeSDKClient.receive_response()``), watched."""
        stream = self._watch(messages)
        self._open.append(stream)
        return stream

    def record(self, success: bool | None = None, score: float | None = None, **signals: Any) -> None:
        """The verdict on the run (e.g. from a verifier): it wins over what the run reported."""
        if success is not None:
            self._verdict["success"] = bool(success)
        if score is not None:
            self._verdict["score"] = float(score)
        self._verdict.update(signals)

    def options(self, options: Any = None) -> Any:
        """``options`` (a ``ClaudeAgentOptions``, or a new one) with the telemetry env when asked for.

        ``telemetry=True``: the CLI exports its own logs and metrics over OTLP (to the endpoint of
        ``OTEL_EXPORTER_OTLP_ENDPOINT``, which it inherits) with resource attributes naming the
        task; the SDK passes the run's span as ``TRACEPARENT``, so ``serve`` joins them by trace id.
        An env the caller set wins.
        """
        import claude_agent_sdk

        if options is None:
            options = claude_agent_sdk.ClaudeAgentOptions()
        if not self.telemetry:
            return options
        env = {**self.telemetry_env(), **dict(options.env or {})}
        return dataclasses.replace(options, env=env)

    def telemetry_env(self) -> dict[str, str]:
        """The CLI environment ``telemetry=True`` adds (for a ``ClaudeSDKClient`` built by hand)."""
        resource = [f"{sc.TASK_NAME}={_resource_value(self.name)}"]
        if self.task_id:
            resource.append(f"{sc.TASK_ID}={_resource_value(self.task_id)}")
        inherited = os.environ.get("OTEL_RESOURCE_ATTRIBUTES")
        return {
            "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_RESOURCE_ATTRIBUTES": ",".join([*([inherited] if inherited else []), *resource]),
        }

    # -- the stream ---------------------------------------------------------------------------------
    async def _watch(
        self, messages: AsyncIterable[M], stop: Callable[[], None] | None = None
    ) -> AsyncIterator[M]:
        tracker = self.tracker
        results_before = tracker.results
        finished = False
        try:
            async for message in messages:
                tracker.see(message)
                yield message
            finished = True
        except GeneratorExit:
            raise
        except Exception as exc:
            finished = True
            tracker.result_error(exc) if _is_result_error(exc) else tracker.crashed(exc)
            raise
        finally:
            if not finished and tracker.results == results_before:
                self._abandoned = True
            if not finished and stop is not None:
                stop()
            close = getattr(messages, "aclose", None)
            if close is not None:
                # Stops the CLI of a ``query()``: left to the garbage collector, it goes on spending.
                with contextlib.suppress(Exception):
                    await close()

    # -- the block ----------------------------------------------------------------------------------
    async def __aenter__(self) -> AgentRun:
        await self.task.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # A stream left with ``break`` is still open: close it now (and with it the CLI).
        for stream in self._open:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        self._open.clear()
        try:
            if exc is not None and _is_result_error(exc):
                self.tracker.result_error(exc)
            fields = self.tracker.fields(self._abandoned)
            fields.update(self._verdict)
            self.task.record(**fields)
        except Exception:
            log.warning("driftwatch: could not record agent run %r", self.name, exc_info=True)
        await self.task.__aexit__(exc_type, exc, tb)


def _stoppable_query(
    prompt: Any, options: Any, kwargs: dict[str, Any]
) -> tuple[AsyncIterator[Any], Callable[[], None] | None]:
    """The SDK's query, and a function that ends its CLI process at once (None when it cannot).

    ``claude_agent_sdk.query`` is a thin generator over ``InternalClient.process_query`` that does not
    close the inner generator when it is closed itself, so its CLI runs on. Here the subprocess
    transport ``query()`` would make is made up front (the same class and options), which gives
    the process to stop. A caller's own ``transport`` or a ``session_store`` (whose resume needs the
    SDK to build the transport) goes through the plain ``query()``.
    """
    import claude_agent_sdk

    if options is None:
        options = claude_agent_sdk.ClaudeAgentOptions()
    if kwargs.get("transport") is None and getattr(options, "session_store", None) is None:
        try:
            from claude_agent_sdk._internal import client
            from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport

            configure = client._configure_can_use_tool  # type: ignore[attr-defined]  # as query() does
            configured = configure(options)
            transport = SubprocessCLITransport(prompt=prompt, options=configured)
            messages = client.InternalClient().process_query(
                prompt=prompt, options=options, transport=transport
            )
        except Exception:  # another SDK version: its plain query(), closed when the block ends
            log.debug("driftwatch: the SDK's query cannot be stopped early", exc_info=True)
        else:

            def stop() -> None:
                process = getattr(transport, "_process", None)
                if process is not None and process.returncode is None:
                    with contextlib.suppress(Exception):
                        process.terminate()

            return messages, stop
    return claude_agent_sdk.query(prompt=prompt, options=options, **kwargs), None


def _resource_value(value: str) -> str:
    """A value for ``OTEL_RESOURCE_ATTRIBUTES`` (W3C baggage form: ``,`` ``=`` ``%`` percent-encoded)."""
    return "".join(f"%{ord(c):02X}" if c in ",=%; " or not c.isprintable() else c for c in value)


def agent_run(task: str, task_id: str | None = None, *, telemetry: bool = False, **labels: Any) -> AgentRun:
    """An agent run as one task outcome: ``async with driftwatch.agent_run("fix-tests") as run:``.

    ``run.query(prompt=..., options=...)`` is ``claude_agent_sdk.query`` watched;
    ``run.observe(messages)`` watches any message stream (``ClaudeSDKClient.receive_response()``);
    ``run.record(success=..., score=...)`` gives the verdict. Async only: the Claude Agent SDK has no
    synchronous API. ``telemetry=True`` turns on the CLI's own OTLP telemetry, joined by trace id.
    """
    return AgentRun(task, task_id, telemetry=telemetry, **labels)
