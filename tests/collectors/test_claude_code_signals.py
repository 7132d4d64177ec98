"""Claude Code's telemetry and session logs give the behavioural signals of docs/agents.md per prompt.

Each test starts from the real captures in ``shared/data/claude-code`` (the pinned CLI's own
attribute names); where a case is missing there, a captured record is copied and only the names a
real CLI run showed are changed (``tool_decision`` ``decision=reject``, a ``Read`` or ``Edit``).
"""

from __future__ import annotations

import copy
import json
import math
import pickle
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from driftwatch._outcome import Outcome
from driftwatch.collectors._claude_code import SessionLogReport, read_session_logs
from driftwatch.collectors._otlp import OtlpDecoder
from tests.collectors.test_claude_code import DATA, PROTOBUF, SESSIONS, _events, by_session, decode_all

PB = DATA / "otlp-protobuf"
TOOL_LOGS = PB / "00005_logs.pb"  # user_prompt, tool_decision (Bash, accept), 2 api_request, tool_result
TOOL_TRACES = PB / "00004_traces.pb"  # the same prompt's spans, tool.blocked_on_user included


def _logs(path: Path = TOOL_LOGS) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest.FromString(path.read_bytes())


def _set(record: object, key: str, value: str) -> None:
    for kv in record.attributes:  # type: ignore[attr-defined]
        if kv.key == key:
            kv.value.string_value = value
            return
    raise AssertionError(f"no attribute {key!r}")


def _prompt(*requests: ExportLogsServiceRequest | ExportTraceServiceRequest) -> tuple[Outcome, list[Outcome]]:
    decoder = OtlpDecoder()
    for request in requests:
        decoded = (
            decoder.logs(request)
            if isinstance(request, ExportLogsServiceRequest)
            else decoder.traces(request)
        )
        assert decoded.rejected == 0, decoded.errors
    outcomes = decoder.expire(math.inf)
    (prompt,) = by_session(outcomes, "task", "claude_code.prompt")
    return prompt, outcomes


def test_captured_prompts_carry_turns_retries_denials_and_tool_uses() -> None:
    """The captures: turns are API requests, a 529 after one retry is 1 retry, tool uses by name."""
    prompts = by_session(decode_all(PROTOBUF), "task", "claude_code.prompt")
    got = [(p.turns, p.retries, p.permission_denials, p.tool_uses, p.tool_error_rate) for p in prompts]
    assert got == [
        (1, 0, 0, {}, None),  # hello
        (2, 0, 0, {"Bash": 1}, 0.0),  # the tool prompt: its request and the one with the tool's result
        (1, 0, 0, {}, None),  # 400, attempt 1
        (1, 1, 0, {}, None),  # 529 at attempt 2: the event and the span of one request, one retry
    ]
    assert all(p.reads_per_edit is None for p in prompts)  # no edit: no ratio


def test_events_alone_and_spans_alone_each_see_the_retry() -> None:
    """`api_error.attempt` (events) and `llm_request.attempt` (spans) each give the retry, counted once."""
    for signals in (("logs",), ("traces",)):
        prompts = by_session(decode_all(PROTOBUF, signals), "task", "claude_code.prompt")
        assert [p.retries for p in prompts] == [0, 0, 0, 1], signals


def test_a_rejected_tool_decision_is_a_permission_denial_not_a_tool_error() -> None:
    """`tool_decision` with decision=reject counts a denial; the prompt stays a success (as the CLI says)."""
    request = _logs()
    records = request.resource_logs[0].scope_logs[0].log_records
    _set(records[1], "decision", "reject")
    _set(records[1], "source", "config")
    del records[4]  # a refused tool never runs: no tool_result
    prompt, outcomes = _prompt(request)
    assert (prompt.permission_denials, prompt.tool_uses, prompt.tool_errors) == (1, {"Bash": 1}, 0)
    assert prompt.success is True and prompt.error_type is None
    (session,) = by_session(outcomes, "task", "claude_code.session")
    assert (session.permission_denials, session.tool_uses, session.turns) == (1, {"Bash": 1}, 2)


def test_a_denial_seen_in_the_event_and_the_span_counts_once() -> None:
    """A refusal as `tool_decision` and as `tool.blocked_on_user` (child of the tool span) is one denial."""
    logs = _logs()
    _set(logs.resource_logs[0].scope_logs[0].log_records[1], "decision", "reject")
    traces = ExportTraceServiceRequest.FromString(TOOL_TRACES.read_bytes())
    blocked = traces.resource_spans[0].scope_spans[0].spans[0]
    assert blocked.name == "claude_code.tool.blocked_on_user"
    _set(blocked, "decision", "reject")
    assert _prompt(logs, traces)[0].permission_denials == 1
    assert _prompt(copy.deepcopy(traces))[0].permission_denials == 1  # headless: only the span says it
    assert _prompt(traces, logs)[0].permission_denials == 1  # in either order


def test_reads_per_edit_counts_read_grep_glob_per_edit_write() -> None:
    """Three Reads and a Grep per two Edits: reads_per_edit 2.0; 1 of 7 tools failed: error rate 1/7."""
    request = _logs()
    records = request.resource_logs[0].scope_logs[0].log_records
    result = records[4]
    tools = ["Read", "Read", "Read", "Grep", "Edit", "Edit"]
    for i, name in enumerate(tools):
        record = records.add()
        record.CopyFrom(result)
        _set(record, "tool_name", name)
        _set(record, "tool_use_id", f"toolu_fake_1{i:05d}")
        _set(record, "success", "false" if i == 5 else "true")
    del records[4]  # the Bash result: its accepted decision still counts the Bash use
    prompt, _ = _prompt(request)
    assert prompt.tool_uses == {"Bash": 1, "Read": 3, "Grep": 1, "Edit": 2}
    assert prompt.reads_per_edit == 2.0
    assert prompt.tool_calls == 7 and prompt.tool_error_rate == 1 / 7


def test_behaviour_survives_a_checkpoint_mid_prompt() -> None:
    """A decoder pickled between the tool decision and the rest restores and gives the same signals."""
    request = _logs()
    records = request.resource_logs[0].scope_logs[0].log_records
    _set(records[1], "decision", "reject")
    first, rest = ExportLogsServiceRequest(), ExportLogsServiceRequest()
    first.CopyFrom(request)
    rest.CopyFrom(request)
    del first.resource_logs[0].scope_logs[0].log_records[2:]
    del rest.resource_logs[0].scope_logs[0].log_records[:2]
    decoder = OtlpDecoder()
    decoder.logs(first)
    restored: OtlpDecoder = pickle.loads(pickle.dumps(decoder))
    restored.logs(rest)
    (prompt,) = by_session(restored.expire(math.inf), "task", "claude_code.prompt")
    assert (prompt.permission_denials, prompt.turns, prompt.tool_uses) == (1, 2, {"Bash": 1})


def test_records_pickled_before_the_new_fields_restore_with_defaults() -> None:
    """A prompt, call and tool record pickled without the behavioural fields restore with their defaults."""
    from driftwatch.collectors._claude_code import CallRecord, PromptAgg, SessionAgg, ToolRecord

    prompt = PromptAgg(session="s", service="claude-code", start=1.0, last=2.0)
    prompt.call("r1", 1.0, {"success": True, "input_tokens": 5}, True)
    prompt.tool("t1", 1.5, {"name": "Read", "success": True}, True)
    session = SessionAgg("claude-code", "s", 1.0, 2.0)
    for obj, new in (
        (prompt, ("overflow_tool_uses", "overflow_retries", "denials", "overflow_denials", "from_log")),
        (prompt.calls["r1"], ("attempt",)),
        (prompt.tools["t1"], ()),
        (session, ("turns", "retries", "permission_denials", "tool_uses")),
    ):
        state = {name: getattr(obj, name) for name in obj.__slots__ if name not in new}
        old = object.__new__(type(obj))
        old.__setstate__((None, state))
        for name in obj.__slots__:
            assert getattr(old, name) == getattr(obj, name), (type(obj).__name__, name)
    assert isinstance(prompt.calls["r1"], CallRecord) and isinstance(prompt.tools["t1"], ToolRecord)
    task = prompt.outcomes()[-1]
    assert (task.turns, task.tool_uses, task.permission_denials) == (1, {"Read": 1}, 0)


def test_session_logs_give_turns_and_tool_uses_but_no_retries_or_denials() -> None:
    """From session logs: turns and tool uses by name; retries and denials are not in them, so absent."""
    report = SessionLogReport()
    outcomes = list(read_session_logs(str(SESSIONS), report))
    assert report.errors == []
    prompts = [o for o in outcomes if o.task == "claude_code.prompt" and o.kind == "task"]
    assert prompts and all(p.retries is None and p.permission_denials is None for p in prompts)
    assert all(p.turns is not None and p.turns >= 1 for p in prompts)
    with_tools = [p for p in prompts if p.tool_calls]
    assert with_tools and all(p.tool_uses == {"Bash": p.tool_calls} for p in with_tools)
    sessions = [o for o in outcomes if o.task == "claude_code.session"]
    assert all(s.retries is None and s.permission_denials is None for s in sessions)
    assert sum(s.turns or 0 for s in sessions) == sum(p.turns or 0 for p in prompts)


def test_session_log_and_telemetry_agree_on_turns_and_tool_uses() -> None:
    """The tool session's log and its telemetry give the same turns and tool uses."""
    telemetry = by_session(decode_all(PROTOBUF), "task", "claude_code.prompt")[1]
    report = SessionLogReport()
    log = SESSIONS / "7287b903-55ea-47b8-ac30-8a0f46745738.jsonl"
    (prompt,) = [
        o for o in read_session_logs(str(log), report) if o.task == "claude_code.prompt" and o.kind == "task"
    ]
    assert (prompt.turns, prompt.tool_uses) == (telemetry.turns, telemetry.tool_uses) == (2, {"Bash": 1})


def test_a_session_log_read_and_edit_give_reads_per_edit(tmp_path: Path) -> None:
    """Tool-use blocks by name in a session log: two Reads and an Edit give reads_per_edit 2.0."""
    source = SESSIONS / "7287b903-55ea-47b8-ac30-8a0f46745738.jsonl"
    lines = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    out: list[dict[str, object]] = []
    for line in lines:
        message = line.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
        if line.get("type") == "assistant" and any(b.get("type") == "tool_use" for b in blocks):
            for i, name in enumerate(["Read", "Read", "Edit"]):
                copied = copy.deepcopy(line)
                for block in copied["message"]["content"]:
                    if block.get("type") == "tool_use":  # the first keeps its id, and its result
                        block["name"], block["id"] = name, block["id"] if i == 0 else f"toolu_x{i}"
                out.append(copied)
            continue
        out.append(line)
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in out) + "\n")
    report = SessionLogReport()
    (prompt,) = [
        o for o in read_session_logs(str(path), report) if o.task == "claude_code.prompt" and o.kind == "task"
    ]
    assert prompt.tool_uses == {"Read": 2, "Edit": 1} and prompt.reads_per_edit == 2.0


def test_past_the_per_prompt_caps_denials_and_tool_names_are_still_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Beyond the kept records, denials and tool uses by name still add up (bounded memory, no loss)."""
    from driftwatch.collectors import _claude_code

    monkeypatch.setattr(_claude_code, "MAX_ITEMS_PER_PROMPT", 2)
    decisions = [
        {
            "event.name": "tool_decision",
            "prompt.id": "p1",
            "decision": "reject",
            "source": "config",
            "tool_name": name,
            "tool_use_id": f"toolu_{i}",
        }
        for i, name in enumerate(["Read", "Grep", "Edit", "Read"])
    ]
    decoder = OtlpDecoder()
    decoded = decoder.logs(_events({"event.name": "user_prompt", "prompt.id": "p1"}, *decisions))
    assert decoded.rejected == 0, decoded.errors
    (prompt,) = by_session(decoder.expire(math.inf), "task", "claude_code.prompt")
    assert prompt.permission_denials == 4
    assert prompt.tool_uses == {"Read": 2, "Grep": 1, "Edit": 1} and prompt.reads_per_edit == 3.0


def test_a_decision_of_no_prompt_counts_nowhere() -> None:
    """A `tool_decision` with neither prompt id nor trace id is no tool use: it emits nothing."""
    decision = {"event.name": "tool_decision", "decision": "reject", "tool_name": "Read", "tool_use_id": "t"}
    decoder = OtlpDecoder()
    request = _events(decision)
    assert decoder.logs(request).outcomes == []
    assert decoder.expire(math.inf) == []
