"""Real Claude Agent SDK runs (its bundled Claude Code CLI) against the local fake API, watched by
``driftwatch.agent_run`` (issue 18): success, tool use, a failed tool, a permission denial, a 529,
max turns, an early break, a subagent, and two prompts in one ``ClaudeSDKClient`` session; and
``telemetry=True`` through a real ``serve``, the CLI's own telemetry joined to the run by trace id.

Offline: ``ANTHROPIC_BASE_URL`` points at ``FakeMessagesAPI``, the key is a dummy, nonessential
traffic is off and ``HOME`` is a temporary directory. The fake answers by markers in the user's
messages: ``FAKE-PLAN:Read,Glob,Write`` asks for those tool uses one turn at a time, ``FAKE-LOOP``
asks for a Read every turn, ``FAKE-529`` is overloaded, ``FAKE-SUB`` starts a subagent whose prompt
(``SUBTASK``) asks for one Read.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import driftwatch
from driftwatch._offline.fake_api import FakeMessagesAPI, Reply
from driftwatch._outcome import Outcome
from tests.conftest import Harness

sdk = pytest.importorskip("claude_agent_sdk", reason="claude-agent-sdk is not installed (requirements.lock)")

PLAN = re.compile(r"FAKE-PLAN:([A-Za-z,]+)")
PRICE = 3e-6 * 100 + 15e-6 * 20  # the fake's 100 input and 20 output tokens at Sonnet list prices


@dataclass
class Fake:
    api: FakeMessagesAPI
    home: Path
    work: Path

    def options(self, **kwargs: Any) -> Any:
        env = {
            "HOME": str(self.home),
            "ANTHROPIC_BASE_URL": self.api.base_url,
            "ANTHROPIC_API_KEY": "dummy",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "1",
        }
        kwargs.setdefault("allowed_tools", ["Read", "Glob", "Grep", "Write", "Edit", "Agent"])
        return sdk.ClaudeAgentOptions(env=env, cwd=str(self.work), model="claude-sonnet-4-5", **kwargs)


def _tool_input(name: str, work: Path) -> dict[str, Any]:
    return {
        "Read": {"file_path": str(work / "hello.py")},
        "Glob": {"pattern": "*.py"},
        "Grep": {"pattern": "hello"},
        "Write": {"file_path": str(work / "out.txt"), "content": "done\n"},
    }.get(name, {})


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fake]:
    tmp = tmp_path_factory.mktemp("agent-sdk")
    work, home = tmp / "work", tmp / "home"
    work.mkdir()
    home.mkdir()
    (work / "hello.py").write_text("print('hello')\n")

    def profile(request: dict[str, Any], headers: dict[str, str]) -> Reply:
        messages = request.get("messages", [])
        users = json.dumps([m for m in messages if m.get("role") == "user"])
        done = users.count('"tool_result"')
        reply = Reply(model=request.get("model"), input_tokens=100, output_tokens=20, status=200)
        plan = PLAN.search(users)
        if "FAKE-529" in users:
            reply.update(status=529, error_type="overloaded_error")
        elif "SUBTASK" in users:
            if not done:
                reply.update(tool_calls=1, tool_name="Read", tool_input=_tool_input("Read", work))
        elif "FAKE-SUB" in users and not done:
            sub = {"description": "look", "prompt": "SUBTASK read it", "subagent_type": "general-purpose"}
            reply.update(tool_calls=1, tool_name="Agent", tool_input=sub)
        elif "FAKE-LOOP" in users:
            reply.update(tool_calls=1, tool_name="Read", tool_input=_tool_input("Read", work))
        elif plan and done < len(plan.group(1).split(",")):
            name = plan.group(1).split(",")[done]
            reply.update(tool_calls=1, tool_name=name, tool_input=_tool_input(name, work))
        return reply

    with FakeMessagesAPI(profile) as api:
        yield Fake(api, home, work)


def _run(harness: Harness, fake: Fake, prompt: str, **options: Any) -> tuple[Outcome, list[Any]]:
    messages: list[Any] = []

    async def go() -> None:
        async with driftwatch.agent_run("code", repo="demo") as run:
            async for message in run.query(prompt=prompt, options=fake.options(**options)):
                messages.append(message)

    asyncio.run(go())
    (outcome,) = harness.flush()
    return outcome, messages


def _result(messages: list[Any]) -> Any:
    return next(m for m in messages if isinstance(m, sdk.ResultMessage))


def test_a_plain_run_is_one_successful_task_outcome(harness: Harness, fake: Fake) -> None:
    """One prompt, no tools: success, one turn, the fake's tokens, the session's cost, the model."""
    outcome, messages = _run(harness, fake, "say hi")
    assert (outcome.task, outcome.kind, outcome.labels) == ("code", "task", {"repo": "demo"})
    assert (outcome.success, outcome.turns, outcome.stop_reason, outcome.error_type) == (
        True,
        1,
        "completed",
        None,
    )
    assert (outcome.input_tokens, outcome.output_tokens, outcome.thinking_tokens) == (100, 20, 0)
    assert outcome.cost_usd == pytest.approx(PRICE)
    assert outcome.model == "claude-sonnet-4-5" and outcome.tool_calls == 0 and outcome.retries == 0
    assert outcome.api_latency_s is not None and outcome.latency_s is not None
    assert _result(messages).total_cost_usd == pytest.approx(PRICE)


def test_tool_uses_are_counted_by_name_and_give_reads_per_edit(harness: Harness, fake: Fake) -> None:
    """Read, Glob, then Write: tool uses by name, four turns, reads per edit 2.0, no tool error."""
    outcome, _ = _run(harness, fake, "fix it FAKE-PLAN:Read,Glob,Write", permission_mode="acceptEdits")
    assert outcome.tool_uses == {"Read": 1, "Glob": 1, "Write": 1}
    assert (outcome.tool_calls, outcome.tool_errors, outcome.turns) == (3, 0, 4)
    assert outcome.reads_per_edit == 2.0 and outcome.tool_error_rate == 0.0
    assert (fake.work / "out.txt").read_text() == "done\n"
    assert outcome.input_tokens == 400 and outcome.cost_usd == pytest.approx(4 * PRICE)


def test_a_failed_tool_leaves_the_run_a_success_with_a_tool_error(harness: Harness, fake: Fake) -> None:
    """A Read of a missing file: the CLI calls the run a success; the outcome counts the tool error."""
    (fake.work / "hello.py").rename(fake.work / "gone.py")
    try:
        outcome, _ = _run(harness, fake, "read FAKE-PLAN:Read")
    finally:
        (fake.work / "gone.py").rename(fake.work / "hello.py")
    assert (outcome.success, outcome.tool_uses, outcome.tool_errors, outcome.tool_error_rate) == (
        True,
        {"Read": 1},
        1,
        1.0,
    )
    assert outcome.reads_per_edit is None  # no edit: not observed


def test_a_permission_denial_is_counted(harness: Harness, fake: Fake) -> None:
    """A Write the headless CLI may not do: denied, counted in permission_denials; the run succeeds."""
    (fake.work / "out.txt").unlink(missing_ok=True)
    outcome, messages = _run(harness, fake, "write FAKE-PLAN:Write", allowed_tools=["Read"])
    assert not (fake.work / "out.txt").exists()
    assert len(_result(messages).permission_denials) == 1
    assert (outcome.success, outcome.permission_denials, outcome.tool_uses) == (True, 1, {"Write": 1})
    assert outcome.tool_errors == 1  # the denial comes back to the model as an error result


def test_a_529_fails_the_run_once_with_its_status(harness: Harness, fake: Fake) -> None:
    """A 529 comes as subtype "success" with is_error, then a ResultError: one failed outcome, "529"."""
    messages: list[Any] = []

    async def go() -> None:
        async with driftwatch.agent_run("code") as run:
            async for message in run.query(prompt="FAKE-529", options=fake.options()):
                messages.append(message)

    with pytest.raises(sdk.ResultError):
        asyncio.run(go())
    result = _result(messages)
    assert (result.subtype, result.is_error, result.api_error_status) == ("success", True, 529)
    (outcome,) = harness.flush()
    assert (outcome.success, outcome.error_type, outcome.stop_reason) == (False, "529", "api_error")
    assert (outcome.api_errors, outcome.retries) == (1, 1)
    assert outcome.model == "claude-sonnet-4-5"  # from the init message, not "<synthetic>"
    (span,) = [s for s in harness.spans.get_finished_spans() if s.name == "invoke_agent code"]
    assert span.attributes is not None and span.attributes["error.type"] == "529"


def test_max_turns_fails_the_run(harness: Harness, fake: Fake) -> None:
    """A run that hits max_turns: error_max_turns, its turns counted, a ResultError recorded once."""
    with pytest.raises(sdk.ResultError):
        _run(harness, fake, "FAKE-LOOP forever", max_turns=2)
    (outcome,) = harness.flush()
    assert (outcome.success, outcome.error_type, outcome.stop_reason) == (
        False,
        "error_max_turns",
        "max_turns",
    )
    assert outcome.turns is not None and outcome.turns >= 2 and outcome.api_errors == 0


def test_an_early_break_is_abandoned_and_stops_the_cli(harness: Harness, fake: Fake) -> None:
    """``break`` at the first tool use: recorded as abandoned, and the CLI stops spending."""
    counts: list[int] = []

    async def go() -> None:
        async with driftwatch.agent_run("code") as run:
            async for message in run.query(prompt="FAKE-LOOP", options=fake.options(max_turns=200)):
                if isinstance(message, sdk.AssistantMessage) and any(
                    isinstance(b, sdk.ToolUseBlock) for b in message.content
                ):
                    break
        counts.append(fake.api.requests)
        await asyncio.sleep(1.5)
        counts.append(fake.api.requests)

    asyncio.run(go())
    assert counts[1] == counts[0], "the CLI went on calling the API after the run was left"
    (outcome,) = harness.flush()
    assert (outcome.success, outcome.stop_reason, outcome.cost_usd) == (None, "abandoned", None)


def test_a_subagent_and_its_second_result(harness: Harness, fake: Fake) -> None:
    """A background subagent: its tool uses by subagent type; its second ResultMessage is in the run."""
    outcome, messages = _run(harness, fake, "delegate FAKE-SUB")
    results = [m for m in messages if isinstance(m, sdk.ResultMessage)]
    assert outcome.tool_uses.get("Agent") == 1 and outcome.subagent_tool_uses == {"general-purpose": 1}
    assert outcome.success is True and outcome.turns == sum(r.num_turns for r in results)
    # Cost: the session's total at its last result, subagent included, counted once.
    assert outcome.cost_usd == pytest.approx(results[-1].total_cost_usd)
    assert outcome.input_tokens == sum(m["inputTokens"] for m in results[-1].model_usage.values())


def test_two_prompts_in_one_client_session_are_two_outcomes(harness: Harness, fake: Fake) -> None:
    """Two prompts in one ClaudeSDKClient session: each outcome has its own cost, not the session's total."""
    totals: list[float] = []

    async def go() -> None:
        async with sdk.ClaudeSDKClient(fake.options()) as client:
            for prompt in ("say hi", "now read FAKE-PLAN:Read"):
                async with driftwatch.agent_run("chat") as run:
                    await client.query(prompt)
                    async for message in run.observe(client.receive_response()):
                        if isinstance(message, sdk.ResultMessage):
                            totals.append(message.total_cost_usd)

    asyncio.run(go())
    first, second = harness.flush()
    assert totals[1] == pytest.approx(totals[0] + 2 * PRICE)  # the CLI's total runs on
    assert (first.cost_usd, first.turns, first.tool_calls) == (pytest.approx(PRICE), 1, 0)
    assert (second.cost_usd, second.turns, second.tool_uses) == (pytest.approx(2 * PRICE), 2, {"Read": 1})
    assert second.input_tokens == 200 and second.success is True


def test_nothing_of_the_content_reaches_the_span(harness: Harness, fake: Fake) -> None:
    """Counts, names and ids only: no prompt, reply, tool input or output text on the task span."""
    _run(harness, fake, "SECRET-PROMPT FAKE-PLAN:Read")
    (span,) = [s for s in harness.spans.get_finished_spans() if s.name == "invoke_agent code"]
    text = json.dumps({k: str(v) for k, v in (span.attributes or {}).items()})
    assert "SECRET" not in text and "hello" not in text and "ok ok" not in text
    assert span.attributes is not None and span.attributes["driftwatch.task.tool_uses.Read"] == 1
    assert time.time() - span.end_time / 1e9 < 60


def test_the_example_coding_agent_fixes_the_bug_and_records_success() -> None:
    """examples/agents/coding_agent.py offline: the fake model reads, greps, writes; the verifier passes."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "examples" / "agents" / "coding_agent.py"
    spec = importlib.util.spec_from_file_location("coding_agent_example", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    (outcome,) = example.main([])
    assert (outcome.task, outcome.success, outcome.turns) == ("fix-add", True, 4)
    assert outcome.tool_uses == {"Read": 1, "Grep": 1, "Write": 1} and outcome.reads_per_edit == 2.0


def test_telemetry_joins_the_clis_own_telemetry_to_the_run_in_serve(fake: Fake, tmp_path: Path) -> None:
    """`agent_run(telemetry=True)` through a real `serve`: the run's span and the CLI's own prompt share
    the trace id, and the two paths agree on turns, tool uses and reads per edit."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from driftwatch._alerting.otel import Telemetry
    from driftwatch._serve.receiver import Receiver
    from driftwatch._serve.service import TICK, DriftService

    config = driftwatch.load_config(
        None, env={}, http_port=0, grpc_port=0, state=str(tmp_path / "state.db"), console=False
    )
    service = DriftService(config, [driftwatch.InMemorySink()])
    seen: list[Outcome] = []
    decode = service.durable.decode

    def observed(kind: str, body: bytes) -> list[Outcome]:
        out = decode(kind, body)
        seen.extend(out)
        return out

    service.durable.decode = observed  # type: ignore[method-assign]  # what the monitor is handed
    service.start(wait=True)
    receiver = Receiver(service, config)
    receiver.start()
    endpoint = f"http://127.0.0.1:{receiver.http_port}"
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    driftwatch.configure(telemetry=Telemetry(tracer_provider=provider), service="sdk-agent", sinks=[])
    try:
        (fake.work / "out.txt").unlink(missing_ok=True)
        options = fake.options(permission_mode="acceptEdits")
        options.env.update(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_LOGS_EXPORT_INTERVAL": "200",
                "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            }
        )

        async def go() -> None:
            async with driftwatch.agent_run("code", telemetry=True) as run:
                async for _ in run.query(prompt="fix it FAKE-PLAN:Read,Write", options=options):
                    pass

        asyncio.run(go())
        driftwatch.shutdown()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(o.task == "claude_code.prompt" for o in seen):
            time.sleep(0.1)
            assert service.wait_processed(10)
            later = time.time() + service.decoder.otlp.session_idle_s + 60
            if any(o.task == "code" for o in seen):
                service.durable.append(TICK, repr(later).encode("ascii"))  # closes the CLI's prompt
    finally:
        receiver.stop()
        service.stop()
    (task,) = [o for o in seen if o.task == "code"]
    (prompt,) = [o for o in seen if o.task == "claude_code.prompt" and o.kind == "task"]
    assert task.service == "sdk-agent" and prompt.service == "claude-code"
    assert task.trace_id is not None and prompt.trace_id == task.trace_id
    for outcome in (task, prompt):
        assert (outcome.turns, outcome.tool_uses, outcome.reads_per_edit) == (3, {"Read": 1, "Write": 1}, 1.0)
    assert prompt.input_tokens == task.input_tokens == 300
