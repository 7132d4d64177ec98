"""``driftwatch.agent_run`` on Claude Agent SDK message objects (no CLI), the behavioural signals
through serve's decoder and the Monitor, and ``Task.record``'s fields (issue 18 items 1-3)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

import driftwatch
from driftwatch import _semconv as sc
from driftwatch._config import Config, load_config
from driftwatch._monitor import Monitor
from driftwatch._outcome import AGENT_SIGNALS, DEFAULT_SIGNALS, SIGNALS, Outcome, parse_outcome
from driftwatch.collectors._otlp import OtlpDecoder
from tests.conftest import Harness

sdk = pytest.importorskip("claude_agent_sdk", reason="claude-agent-sdk is not installed (requirements.lock)")


def result(session: str = "s1", cost: float = 0.01, **kw: Any) -> Any:
    """A ResultMessage as the CLI sends it; ``model_usage`` and cost are the session's running totals."""
    usage = {"inputTokens": 100, "outputTokens": 50, "costUSD": cost, "thinkingTokens": 30}
    fields: dict[str, Any] = {
        "subtype": "success",
        "duration_ms": 900,
        "duration_api_ms": 500,
        "is_error": False,
        "num_turns": 2,
        "session_id": session,
        "total_cost_usd": cost,
        "usage": {"input_tokens": 10, "output_tokens": 5, "output_tokens_details": {"thinking_tokens": 3}},
        "model_usage": {"claude-sonnet-4-5": usage},
        "permission_denials": [],
        "terminal_reason": "completed",
    }
    fields.update(kw)
    return sdk.ResultMessage(**fields)


def assistant(*blocks: Any, model: str = "claude-sonnet-4-5", parent: str | None = None) -> Any:
    # Per-message usage is a placeholder (output_tokens=1): never summed.
    return sdk.AssistantMessage(
        content=list(blocks), model=model, parent_tool_use_id=parent, usage={"output_tokens": 1}
    )


def tool(name: str, tool_id: str, **tool_input: Any) -> Any:
    return sdk.ToolUseBlock(id=tool_id, name=name, input=tool_input)


def tool_result(tool_id: str, error: bool = False) -> Any:
    block = sdk.ToolResultBlock(tool_use_id=tool_id, content="SECRET", is_error=error)
    return sdk.UserMessage(content=[block])


async def stream(*messages: Any, then: BaseException | None = None) -> AsyncIterator[Any]:
    for message in messages:
        yield message
    if then is not None:
        raise then


def observe(harness: Harness, *messages: Any, then: BaseException | None = None, **record: Any) -> Outcome:
    async def go() -> None:
        async with driftwatch.agent_run("agent") as run:
            async for _ in run.observe(stream(*messages, then=then)):
                pass
            if record:
                run.record(**record)

    asyncio.run(go())
    (outcome,) = harness.flush()
    return outcome


def test_a_background_subagents_second_result_is_part_of_the_run(harness: Harness) -> None:
    """Two results in one run: turns and denials summed, cost and tokens the session's last total."""
    messages = [
        assistant(tool("Agent", "t1", subagent_type="Explore", prompt="SECRET")),
        assistant(tool("Grep", "t2", pattern="x"), parent="t1"),
        assistant(tool("Grep", "t2", pattern="x"), parent="t1"),  # the same block again: counted once
        result(cost=0.02, num_turns=2, permission_denials=[{"tool_name": "Bash"}]),
        result(cost=0.03, num_turns=1, origin={"kind": "task-notification"}),
    ]
    outcome = observe(harness, *messages)
    assert (outcome.success, outcome.turns, outcome.permission_denials) == (True, 3, 1)
    assert outcome.cost_usd == pytest.approx(0.03)
    assert (outcome.input_tokens, outcome.output_tokens, outcome.thinking_tokens) == (100, 50, 30)
    assert outcome.tool_uses == {"Agent": 1, "Grep": 1}
    assert outcome.subagent_tool_uses == {"Explore": 1}


def test_cost_is_the_difference_from_the_sessions_previous_total(harness: Harness) -> None:
    """A second run in the same session counts only what the session added since the first."""
    observe(harness, result(session="s2", cost=0.05))
    harness.outcomes.clear()
    usage = {"claude-sonnet-4-5": {"inputTokens": 160, "outputTokens": 70, "costUSD": 0.08}}
    second = observe(harness, result(session="s2", cost=0.08, model_usage=usage, duration_api_ms=800))
    assert second.cost_usd == pytest.approx(0.03)
    assert (second.input_tokens, second.output_tokens) == (60, 20)
    assert second.api_latency_s == pytest.approx(0.3)


def test_an_interrupt_is_no_verdict_and_a_verdict_wins(harness: Harness) -> None:
    """aborted_streaming (cost 0 reported) is neither pass nor fail; ``record`` overrides the run's word."""
    interrupted = observe(harness, result(session="s3", cost=0.0, terminal_reason="aborted_streaming"))
    assert (interrupted.success, interrupted.stop_reason, interrupted.cost_usd) == (
        None,
        "aborted_streaming",
        0.0,
    )
    harness.outcomes.clear()
    judged = observe(harness, result(session="s4"), success=False, score=0.2)
    assert (judged.success, judged.score) == (False, 0.2)


def test_an_error_result_then_result_error_is_one_failure(harness: Harness) -> None:
    """is_error with subtype "success" (a 529), then ResultError raised: one outcome, error type "529"."""
    failed = result(session="s5", is_error=True, api_error_status=529, terminal_reason="api_error", cost=0)
    error = sdk.ResultError("failed", {"subtype": "success", "api_error_status": 529}, exit_code=1)
    synthetic = sdk.AssistantMessage(content=[], model="<synthetic>", error="server_error")
    init = sdk.SystemMessage(subtype="init", data={"model": "claude-opus-4-5"})
    retry = sdk.SystemMessage(subtype="api_retry", data={"attempt": 1})
    with pytest.raises(sdk.ResultError):
        observe(harness, init, retry, synthetic, failed, then=error)
    (outcome,) = harness.flush()
    assert (outcome.success, outcome.error_type, outcome.api_errors, outcome.retries) == (
        False,
        "529",
        1,
        1,
    )
    assert outcome.model == "claude-opus-4-5" and outcome.stop_reason == "api_error"


def test_a_crash_without_a_result_fails_with_its_type(harness: Harness) -> None:
    """The stream raises before any result (the CLI died): failed, with the exception's type."""
    with pytest.raises(sdk.CLIConnectionError):
        observe(harness, assistant(), then=sdk.CLIConnectionError("gone"))
    (outcome,) = harness.flush()
    assert (outcome.success, outcome.error_type) == (False, "CLIConnectionError")


def test_telemetry_sets_the_clis_otlp_env_naming_the_task() -> None:
    """``telemetry=True``: the CLI's telemetry on, its resource naming the task; the caller's env wins."""
    run = driftwatch.agent_run("fix tests,now", task_id="t-1", telemetry=True)
    options = run.options(sdk.ClaudeAgentOptions(env={"OTEL_LOGS_EXPORTER": "console"}))
    assert options.env["CLAUDE_CODE_ENABLE_TELEMETRY"] == "1"
    assert options.env["OTEL_LOGS_EXPORTER"] == "console"
    assert f"{sc.TASK_NAME}=fix%20tests%2Cnow" in options.env["OTEL_RESOURCE_ATTRIBUTES"]
    assert f"{sc.TASK_ID}=t-1" in options.env["OTEL_RESOURCE_ATTRIBUTES"]
    assert driftwatch.agent_run("x").options(None).env == {}


def test_record_takes_model_api_errors_and_cache_tokens_as_fields(harness: Harness) -> None:
    """``Task.record(model=..., api_errors=..., cache_*_tokens=...)`` sets fields, not labels; an
    exception leaving the block keeps the error type already recorded."""
    with pytest.raises(RuntimeError), driftwatch.task("t") as t:
        t.record(model="claude-haiku-4-5", api_errors=2, cache_read_tokens=7, cache_write_tokens=3)
        t.record(error_type="529", flavour="x")
        raise RuntimeError("boom")
    (outcome,) = harness.flush()
    assert (outcome.model, outcome.api_errors, outcome.cache_read_tokens, outcome.cache_write_tokens) == (
        "claude-haiku-4-5",
        2,
        7,
        3,
    )
    assert (outcome.success, outcome.error_type, outcome.labels) == (False, "529", {"flavour": "x"})
    (span,) = harness.spans.get_finished_spans()
    assert span.attributes is not None and span.attributes["error.type"] == "529"


def test_an_agent_runs_signals_survive_serve(harness: Harness) -> None:
    """The task span carries every behavioural signal and tool count; serve's decoder rebuilds them."""
    with driftwatch.task("agent") as t:
        t.record(
            success=True,
            turns=7,
            thinking_tokens=300,
            retries=1,
            permission_denials=2,
            api_latency_s=4.5,
            tool_calls=5,
            tool_errors=1,
            cache_write_tokens=40,
            input_tokens=100,
            tool_uses={"Read": 3, "Edit": 1, "Bash": 1},
            subagent_tool_uses={"Explore": 2},
        )
    (want,) = harness.flush()
    assert (want.reads_per_edit, want.tool_error_rate) == (3.0, 0.2)
    decoded = OtlpDecoder().traces(encode_spans(harness.spans.get_finished_spans()))
    assert decoded.rejected == 0
    (got,) = decoded.outcomes
    for name in (
        "turns",
        "thinking_tokens",
        "retries",
        "permission_denials",
        "api_latency_s",
        "reads_per_edit",
        "tool_error_rate",
        "tool_uses",
        "subagent_tool_uses",
        "input_tokens",
        "cache_write_tokens",
    ):
        assert getattr(got, name) == getattr(want, name), name


def test_reads_per_edit_zero_cases_and_the_jsonl_form() -> None:
    """No edit: not observed; edits without a read: 0. Tool counts read back from the outcome JSONL form."""
    assert Outcome(task="t", tool_uses={"Read": 4}).derive().reads_per_edit is None
    assert Outcome(task="t", tool_uses={"Write": 2}).derive().reads_per_edit == 0.0
    assert Outcome(task="t", tool_calls=0, tool_errors=0).derive().tool_error_rate is None
    record = {"task": "t", "time": 1, "turns": 4, "tool_uses": {"Grep": 2, "Edit": 1}, "reads_per_edit": 2}
    parsed = parse_outcome(record)
    assert (parsed.turns, parsed.tool_uses, parsed.reads_per_edit) == (4, {"Grep": 2, "Edit": 1}, 2.0)
    assert parse_outcome(parsed.to_dict()).tool_uses == {"Grep": 2, "Edit": 1}


def test_the_default_signals_add_the_three_agent_ones_to_the_eight_of_before() -> None:
    """The default is the eight of before, then turns, thinking tokens and reads per edit; the rest opt-in."""
    assert Config().signals == list(DEFAULT_SIGNALS) == list(SIGNALS)[:11]
    assert AGENT_SIGNALS == ("turns", "thinking_tokens", "reads_per_edit") == DEFAULT_SIGNALS[8:]
    assert DEFAULT_SIGNALS[:8] == (
        *("success", "score", "latency_s", "ttft_s"),
        *("input_tokens", "output_tokens", "cost_usd", "tool_calls"),
    )
    config = load_config(None, env={}, signals=[*DEFAULT_SIGNALS, "retries"])
    assert config.signals[-4:] == ["turns", "thinking_tokens", "reads_per_edit", "retries"]


def test_a_fall_in_reads_per_edit_alerts_like_any_signal() -> None:
    """Seeded: reads per edit falling from ~6.6 to ~2.0 (turns unchanged) is confirmed on that signal."""
    rng = random.Random(18)
    monitor = Monitor(Config(), threaded=False)  # the agent signals are on by default
    alerts = []
    for i in range(1400):
        mean = 6.6 if i < 800 else 2.0
        reads = max(0, round(rng.gauss(mean, 1.5) * 2))
        uses = {"Read": reads, "Edit": 2}
        outcome = Outcome(task="agent", time=float(i), turns=rng.randint(8, 12), tool_uses=uses)
        alerts += monitor.process(outcome.derive())
    confirmed = [a for a in alerts if a.status == "confirmed"]
    assert {a.signal for a in confirmed} == {"reads_per_edit"}
    (alert,) = confirmed
    assert alert.direction == "down" and 800 <= alert.detected_at < 1400
    assert alert.current.mean < alert.baseline.mean


def test_no_content_is_kept(harness: Harness) -> None:
    """Tool inputs and results never reach the outcome or its span: counts, names and ids only."""
    read = assistant(tool("Read", "r1", file_path="/SECRET"))
    outcome = observe(harness, read, tool_result("r1"), result("s9"))
    text = repr(dataclasses.asdict(outcome)) + repr(harness.spans.get_finished_spans()[0].attributes)
    assert "SECRET" not in text and outcome.tool_uses == {"Read": 1}
