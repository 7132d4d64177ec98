"""driftwatch.integrations.openai_agents on the real Agents SDK, offline with a scripted model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agents import (
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    Runner,
    add_trace_processor,
    set_trace_processors,
    trace,
)

import driftwatch
from driftwatch.integrations import openai_agents
from tests.conftest import Harness
from tests.support.openai_agents_fake import CANARY, MODEL, call, refuse, say, triage


@pytest.fixture
def processor(harness: Harness) -> Iterator[openai_agents.DriftwatchProcessor]:
    proc = openai_agents.DriftwatchProcessor(team="support")
    set_trace_processors([proc])  # only ours: the SDK's default exporter would try the network
    yield proc
    set_trace_processors([])


def tasks(harness: Harness) -> list[driftwatch.Outcome]:
    return [o for o in harness.flush() if o.kind == "task"]


async def test_run_is_one_task_outcome_with_tools_handoffs_and_usage(
    harness: Harness, processor: openai_agents.DriftwatchProcessor
) -> None:
    """A run with two tool calls (one failing), a handoff and three model calls is one outcome."""
    agent = triage(
        [[call("lookup", "c1"), call("explode", "c2")], [call("transfer_to_billing", "c3")]],
        billing=[[say()]],
    )
    result = await Runner.run(agent, f"{CANARY}Prompt")
    assert CANARY in str(result.final_output)
    (outcome,) = tasks(harness)
    assert (outcome.task, outcome.success, outcome.model, outcome.service) == (
        "triage",
        True,
        MODEL,
        "test-agent",
    )
    # 3 calls × 100 input tokens of which 20 cached, 10 output tokens.
    assert (outcome.input_tokens, outcome.cache_read_tokens, outcome.output_tokens) == (240, 60, 30)
    assert (outcome.tool_calls, outcome.tool_errors, outcome.api_errors) == (2, 1, 0)
    # Turns and reasoning tokens are behavioural signals (fields), tools by name too.
    assert (outcome.turns, outcome.thinking_tokens) == (3, 9)
    assert outcome.tool_uses == {"lookup": 1, "explode": 1}
    assert outcome.labels == {
        "team": "support",
        "handoffs": "1",
        "guardrail_trips": "0",
        "agent": "triage",
        "tool_calls.lookup": "1",
        "tool_calls.explode": "1",
        "tool_errors.explode": "1",
    }
    assert outcome.latency_s is not None and outcome.latency_s > 0
    (span,) = harness.spans.get_finished_spans()
    attrs = span.attributes or {}
    assert span.name == "invoke_agent triage" and attrs["driftwatch.task.tool_errors"] == 1
    assert attrs["driftwatch.task.label.tool_calls.lookup"] == "1"
    assert (attrs["driftwatch.task.turns"], attrs["driftwatch.task.tool_uses.lookup"]) == (3, 1)
    assert outcome.trace_id == format(span.context.trace_id, "032x")


async def test_max_turns_is_a_failed_run(
    harness: Harness, processor: openai_agents.DriftwatchProcessor
) -> None:
    """A run stopped by max_turns is recorded failed with error_type MaxTurnsExceeded."""
    agent = triage([[call("lookup", f"c{i}")] for i in range(3)])
    with pytest.raises(MaxTurnsExceeded):
        await Runner.run(agent, f"{CANARY}Prompt", max_turns=2)
    (outcome,) = tasks(harness)
    assert (outcome.success, outcome.error_type, outcome.tool_calls) == (False, "MaxTurnsExceeded", 2)
    assert outcome.turns == 2 and "turns" not in outcome.labels


async def test_guardrail_trip_is_counted_and_fails_the_run(
    harness: Harness, processor: openai_agents.DriftwatchProcessor
) -> None:
    """A tripped input guardrail counts in guardrail_trips and fails the run."""
    agent = triage([[say()]], input_guardrails=[refuse])
    with pytest.raises(InputGuardrailTripwireTriggered):
        await Runner.run(agent, f"{CANARY}Prompt")
    (outcome,) = tasks(harness)
    assert outcome.labels["guardrail_trips"] == "1"
    assert (outcome.success, outcome.error_type) == (False, "GuardrailTripwireTriggered")


async def test_model_error_counts_as_api_error(
    harness: Harness, processor: openai_agents.DriftwatchProcessor
) -> None:
    """A failing model call is an API error and a failed run; its message is not copied."""
    agent = triage([RuntimeError(f"{CANARY}ModelError")])
    with pytest.raises(RuntimeError):
        await Runner.run(agent, f"{CANARY}Prompt")
    (outcome,) = tasks(harness)
    assert (outcome.success, outcome.api_errors) == (False, 1)
    assert CANARY not in repr(outcome)


async def test_run_inside_a_task_adds_to_it(
    harness: Harness, processor: openai_agents.DriftwatchProcessor
) -> None:
    """Inside driftwatch.task the runs add to the task, whose verdict wins; no outcome of their own."""
    with driftwatch.task("ticket") as t:
        await Runner.run(triage([[call("lookup", "c1")], [say()]]), "first")
        await Runner.run(triage([[call("lookup", "c1")], [say()]]), "second")
        t.record(success=False)
    (outcome,) = tasks(harness)
    assert (outcome.task, outcome.success, outcome.tool_calls, outcome.model) == ("ticket", False, 2, MODEL)
    assert (outcome.input_tokens, outcome.output_tokens) == (320, 40)
    assert outcome.labels["tool_calls.lookup"] == "2" and outcome.turns == 4
    assert outcome.tool_uses == {"lookup": 2}
    assert [s.name for s in harness.spans.get_finished_spans()] == ["invoke_agent ticket"]


async def test_workflow_name_names_the_task_and_one_trace_is_one_outcome(
    harness: Harness, processor: openai_agents.DriftwatchProcessor
) -> None:
    """Two runs inside one agents.trace("refund flow") are one outcome named after the workflow."""
    with trace("refund flow"):
        await Runner.run(triage([[say()]]), "first")
        await Runner.run(triage([[call("lookup", "c1")], [say()]]), "second")
    (outcome,) = tasks(harness)
    assert (outcome.task, outcome.tool_calls, outcome.output_tokens) == ("refund flow", 1, 30)


async def test_tool_breakdown_is_capped(
    harness: Harness, processor: openai_agents.DriftwatchProcessor
) -> None:
    """Beyond MAX_TOOL_NAMES tool names, the rest count under tool_calls.other."""
    run = openai_agents.AgentRun(trace_id="t", workflow="", started=0.0, perf_start=0.0)
    for i in range(openai_agents.MAX_TOOL_NAMES + 3):
        run.tool_calls[f"tool{i:02d}"] += 1
    labels = openai_agents.outcome(run).labels
    assert labels["tool_calls.other"] == "3"
    assert len([k for k in labels if k.startswith("tool_calls.")]) == openai_agents.MAX_TOOL_NAMES + 1


def test_instrument_registers_once_without_patching(monkeypatch: pytest.MonkeyPatch) -> None:
    """instrument() adds one processor through add_trace_processor and returns it again later."""
    added: list[object] = []
    monkeypatch.setattr(openai_agents, "_installed", None)
    monkeypatch.setattr(openai_agents, "add_trace_processor", added.append)
    first = openai_agents.instrument(task="support")
    assert openai_agents.instrument() is first and added == [first] and first.task == "support"
    assert openai_agents.add_trace_processor is not add_trace_processor
