"""Claude Code: real captured telemetry (OTLP protobuf and JSON) and session logs become outcomes."""

from __future__ import annotations

import json
import math
import pickle
import shutil
from collections import Counter
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from driftwatch._cli.main import main
from driftwatch._outcome import Outcome
from driftwatch.collectors._claude_code import SessionLogReport, read_session_logs, split_model
from driftwatch.collectors._otlp import OtlpDecoder, request_from_json
from driftwatch.collectors._replay import ReadReport, read_outcomes

# The real captures: in shared/ beside the clone (as CI lays it out), else this workplace's copy.
SHARED = next(
    (p for p in (Path(__file__).resolve().parents[3] / "shared", Path("/work/shared")) if p.is_dir()),
    Path(__file__).resolve().parents[3] / "shared",
)
DATA = SHARED / "data" / "claude-code"
PROTOBUF = sorted((DATA / "otlp-protobuf").glob("*.pb"))
SESSIONS = DATA / "session-logs"
TYPES = {
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}


def test_the_real_captures_are_there() -> None:
    """The Claude Code fixtures this file decodes exist (a missing shared/ must fail, not skip)."""
    assert PROTOBUF, f"no *.pb captures in {DATA / 'otlp-protobuf'} (expected shared/ beside the clone)"
    assert SESSIONS.is_dir() and any(SESSIONS.glob("*.jsonl"))


def feed(
    decoder: OtlpDecoder, path: Path, signals: tuple[str, ...] = ("traces", "logs", "metrics")
) -> list[Outcome]:
    signal = path.stem.split("_")[1]
    if signal not in signals:
        return []
    if path.suffix == ".json":
        request = request_from_json(TYPES[signal], path.read_bytes())  # type: ignore[type-var]
    else:
        request = TYPES[signal].FromString(path.read_bytes())  # type: ignore[attr-defined]
    decoded = getattr(decoder, signal)(request)
    assert decoded.rejected == 0, decoded.errors
    return list(decoded.outcomes)


def decode_all(paths: list[Path], signals: tuple[str, ...] = ("traces", "logs", "metrics")) -> list[Outcome]:
    decoder = OtlpDecoder()
    out = [o for p in paths for o in feed(decoder, p, signals)]
    return out + decoder.expire(math.inf)


def by_session(outcomes: list[Outcome], kind: str, task: str) -> list[Outcome]:
    return [o for o in outcomes if o.kind == kind and o.task == task]


def test_protobuf_fixtures_decode_to_prompts_calls_tools_and_sessions() -> None:
    """The 12 captured requests (4 sessions) give 4 prompts, 5 API calls, 1 tool use, 4 sessions."""
    outcomes = decode_all(PROTOBUF)
    assert Counter((o.task, o.kind) for o in outcomes) == {
        ("claude_code.prompt", "task"): 4,
        ("claude_code.prompt", "call"): 5,
        ("claude_code.tool", "call"): 1,
        ("claude_code.session", "task"): 4,
    }
    assert all(o.service == "claude-code" and o.labels["app.version"] == "2.1.197" for o in outcomes)
    assert {o.model for o in outcomes if o.model} == {"claude-opus-4-8", "claude-sonnet-4-5"}  # no "[1m]"
    hello, tool, error400, error529 = by_session(outcomes, "task", "claude_code.prompt")
    assert (hello.success, hello.input_tokens, hello.output_tokens, hello.cost_usd) == (
        True,
        19440,
        14,
        0.09755,
    )
    assert hello.latency_s == 0.137 and hello.api_errors == 0 and hello.labels["effort"] == "high"
    assert (tool.model, tool.input_tokens, tool.output_tokens, tool.tool_calls) == (
        "claude-sonnet-4-5",
        58615,
        74,
        1,
    )
    assert tool.cost_usd == pytest.approx(0.176955) and tool.latency_s == 0.276
    assert (error400.success, error400.api_errors, error400.error_type) == (False, 1, "400")
    assert (error529.success, error529.error_type, error529.latency_s) == (False, "529", 0.678)
    calls = by_session(outcomes, "call", "claude_code.prompt")
    first = calls[0]
    assert (first.ttft_s, first.latency_s, first.cache_read_tokens) == (0.012, 0.018, 0)
    assert first.labels["context_window"] == "1m"  # the "[1m]" suffix, kept as a label
    assert [c.error_type for c in calls] == [None, None, None, "400", "529"]
    (bash,) = by_session(outcomes, "call", "claude_code.tool")
    assert (bash.labels["tool_name"], bash.success, bash.latency_s) == ("Bash", True, 0.06)
    sessions = by_session(outcomes, "task", "claude_code.session")
    # Session totals come from Claude Code's delta metrics (cost, tokens, active time).
    assert [(s.success, s.input_tokens, s.latency_s) for s in sessions] == [
        (True, 19440, 0.137),
        (True, 58615, 0.276),
        (False, None, 0.129),
        (False, None, 0.677),
    ]
    assert sessions[1].cost_usd == 0.176955
    assert all("TOOLTEST" not in repr(o) and "hello-from-tool" not in repr(o) for o in outcomes)


def test_logs_alone_and_traces_alone_give_the_same_prompts() -> None:
    """Without beta spans, events alone give the prompts; spans alone give them too, without cost."""
    both = by_session(decode_all(PROTOBUF), "task", "claude_code.prompt")
    logs = by_session(decode_all(PROTOBUF, ("logs",)), "task", "claude_code.prompt")
    spans = by_session(decode_all(PROTOBUF, ("traces",)), "task", "claude_code.prompt")
    key = [(o.success, o.input_tokens, o.output_tokens, o.tool_calls, o.api_errors, o.model) for o in both]
    assert [
        (o.success, o.input_tokens, o.output_tokens, o.tool_calls, o.api_errors, o.model) for o in logs
    ] == key
    assert [
        (o.success, o.input_tokens, o.output_tokens, o.tool_calls, o.api_errors, o.model) for o in spans
    ] == key
    assert [o.cost_usd for o in logs] == [o.cost_usd for o in both] and all(o.cost_usd is None for o in spans)
    # Without the interaction span, latency runs from the prompt event to the last event of the prompt.
    assert [round(o.latency_s or 0, 3) for o in logs] == [0.057, 0.206, 0.054, 0.602]


def test_events_alone_label_failed_and_good_calls_alike() -> None:
    """From events alone a failed call (api_error, model "…[1m]") has the labels of a good one (no "[1m]")."""
    calls = by_session(decode_all(PROTOBUF, ("logs",)), "call", "claude_code.prompt")
    assert {c.success for c in calls} == {True, False}
    assert not [c.labels for c in calls if "context_window" in c.labels]
    both = by_session(decode_all(PROTOBUF), "call", "claude_code.prompt")
    # With spans (they name the model with the suffix on good and failed calls alike) both have it.
    opus = [c for c in both if c.model == "claude-opus-4-8"]
    assert {c.success for c in opus} == {True, False}
    assert all(c.labels["context_window"] == "1m" for c in opus)


def test_json_fixtures_decode_like_protobuf() -> None:
    """The OTLP/JSON capture (hex ids) decodes: one prompt with a Bash tool use and two calls."""
    outcomes = decode_all(sorted((DATA / "otlp-json").glob("0*.json")))
    (prompt,) = by_session(outcomes, "task", "claude_code.prompt")
    assert (prompt.input_tokens, prompt.output_tokens, prompt.tool_calls, prompt.success) == (
        38975,
        74,
        1,
        True,
    )
    assert (
        prompt.cost_usd == pytest.approx(0.196725) and prompt.trace_id == "86e7c05686f64772e2d4a45cf586c620"
    )
    assert len(by_session(outcomes, "call", "claude_code.prompt")) == 2


def test_pickle_mid_stream_gives_identical_outcomes() -> None:
    """Checkpointing the decoder with pickle halfway and replaying the rest gives the same outcomes."""
    decoder = OtlpDecoder()
    head = [o for p in PROTOBUF[:5] for o in feed(decoder, p)]
    copy = pickle.loads(pickle.dumps(decoder))
    tail = [o for p in PROTOBUF[5:] for o in feed(decoder, p)] + decoder.expire(math.inf)
    again = [o for p in PROTOBUF[5:] for o in feed(copy, p)] + copy.expire(math.inf)
    assert tail == again and len(head) + len(tail) == 14
    assert copy.stats == decoder.stats


def test_expire_is_driven_by_event_time() -> None:
    """A prompt with an ended interaction is emitted 30 s (event time) after it; a session after idling."""
    decoder = OtlpDecoder(session_idle_s=600)
    for path in PROTOBUF[:3]:
        feed(decoder, path)
    end = 1795312088.808
    assert decoder.expire(end + 10) == []
    assert [o.task for o in decoder.expire(end + 31)] == ["claude_code.prompt", "claude_code.prompt"]
    assert decoder.open_sessions == 1 and decoder.expire(end + 500) == []
    assert [o.task for o in decoder.expire(end + 601)] == ["claude_code.session"]


def test_sessions_beyond_the_cap_are_dropped_and_counted() -> None:
    """With max_sessions=2, the items of the 3rd and 4th session are dropped and counted."""
    decoder = OtlpDecoder(max_sessions=2)
    outcomes = [o for p in PROTOBUF for o in feed(decoder, p)] + decoder.expire(math.inf)
    assert len(by_session(outcomes, "task", "claude_code.session")) == 2
    assert decoder.stats.sessions_dropped > 0 and decoder.open_sessions == 0


def test_malformed_claude_code_records_are_rejected_where_the_rest_decodes() -> None:
    """Unparsable strings, wrong types and absurd values are rejected with where; the prompt decodes."""
    request = ExportLogsServiceRequest.FromString((DATA / "otlp-protobuf" / "00005_logs.pb").read_bytes())
    records = request.resource_logs[0].scope_logs[0].log_records

    def set_attr(index: int, key: str, value: str) -> None:
        for kv in records[index].attributes:
            if kv.key == key:
                kv.value.string_value = value

    set_attr(4, "duration_ms", "abc")  # tool_result
    set_attr(5, "input_tokens", "-5")  # second api_request
    set_attr(4, "success", "sometimes")
    decoder = OtlpDecoder()
    decoded = decoder.logs(request)
    assert decoded.rejected == 2
    assert decoded.errors == [
        "resource_logs[0].scope_logs[0].log_records[4]: attribute 'success' = 'sometimes' is not a boolean; "
        "expected true or false",
        "resource_logs[0].scope_logs[0].log_records[5]: attribute 'input_tokens' = '-5' is out of range; "
        "expected a number 0 to 1e9",
    ]
    (prompt,) = by_session(decoder.expire(math.inf), "task", "claude_code.prompt")
    # The rejected tool_result is gone; its tool_decision (accepted) still counts the tool use.
    assert (prompt.input_tokens, prompt.tool_calls, prompt.success) == (29261, 1, True)
    assert (prompt.tool_uses, prompt.tool_errors) == ({"Bash": 1}, 0)


def test_split_model() -> None:
    """The `[1m]` context-window suffix is split off model names."""
    assert split_model("claude-opus-4-8[1m]") == ("claude-opus-4-8", "1m")
    assert split_model("claude-sonnet-4-5") == ("claude-sonnet-4-5", None)


# -- session logs -------------------------------------------------------------------------------


def test_session_logs_give_per_prompt_outcomes() -> None:
    """25 real session logs: 25 prompts (4 with API errors), 34 API calls, 9 Bash tool uses, 25 sessions."""
    report = SessionLogReport()
    outcomes = list(read_session_logs(str(SESSIONS), report))
    assert (report.files, report.lines, report.outcomes, report.bad_lines) == (25, 202, 93, 0)
    prompts = by_session(outcomes, "task", "claude_code.prompt")
    assert len(prompts) == 25 and len(by_session(outcomes, "call", "claude_code.prompt")) == 34
    assert Counter(o.error_type for o in prompts if o.success is False) == {"unknown": 2, "server_error": 2}
    tools = by_session(outcomes, "call", "claude_code.tool")
    assert (
        len(tools) == 9
        and {t.labels["tool_name"] for t in tools} == {"Bash"}
        and all(t.success for t in tools)
    )
    assert Counter(o.model for o in prompts) == {"claude-opus-4-8": 19, "claude-sonnet-4-5": 2, None: 4}
    assert all("hello-from-tool" not in repr(o) and "TOOLTEST" not in repr(o) for o in outcomes)


def test_session_log_and_telemetry_of_one_session_agree() -> None:
    """Session 7287b903 appears in both captures: same tokens, tool calls, model and success."""
    from_logs = [
        o
        for o in read_session_logs(
            str(SESSIONS / "7287b903-55ea-47b8-ac30-8a0f46745738.jsonl"), SessionLogReport()
        )
        if o.kind == "task" and o.task == "claude_code.prompt"
    ]
    telemetry = by_session(decode_all(PROTOBUF), "task", "claude_code.prompt")[1]
    (prompt,) = from_logs
    fields = ("success", "input_tokens", "output_tokens", "tool_calls", "api_errors", "model", "stop_reason")
    assert [getattr(prompt, f) for f in fields] == [getattr(telemetry, f) for f in fields]


def test_bad_session_log_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    """Bad lines are reported as file:line with what was expected; the session still decodes."""
    target = tmp_path / "proj" / "s.jsonl"
    target.parent.mkdir()
    shutil.copy(SESSIONS / "2d122315-5c71-41f5-ac94-063b0ede402d.jsonl", target)
    lines = target.read_text().splitlines()
    bad_usage = json.loads(lines[6])
    bad_usage["message"]["usage"]["output_tokens"] = "lots"
    lines[6] = json.dumps(bad_usage)
    lines.insert(1, "{not json")
    lines.insert(2, json.dumps({"type": "user", "timestamp": "yesterday", "message": {"content": "x"}}))
    target.write_text("\n".join(lines) + "\n")
    report = SessionLogReport()
    outcomes = list(read_session_logs(str(tmp_path), report))
    assert report.bad_lines == 3
    assert (
        report.errors[0].startswith(f"{target}:2: not valid JSON")
        and "expected one JSON object" in report.errors[0]
    )
    assert report.errors[1].startswith(f"{target}:3: field 'timestamp': 'yesterday' is not a time")
    assert (
        report.errors[2]
        == f"{target}:9: usage.output_tokens = 'lots' is not a number; expected a whole number >= 0"
    )
    (prompt,) = by_session(outcomes, "task", "claude_code.prompt")
    assert prompt.tool_calls == 1 and prompt.input_tokens == 21776 + 21869


def test_cli_ingest_writes_outcome_jsonl_and_runs_detection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`driftwatch ingest claude-code DIR` writes replayable outcome JSONL and runs the monitor over it."""
    out, alerts = tmp_path / "o.jsonl", tmp_path / "a.jsonl"
    assert (
        main(
            ["ingest", "claude-code", str(SESSIONS), "--outcomes-out", str(out), "--alerts-out", str(alerts)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "ingested 25 session logs (202 lines): 93 outcomes in 4 streams; 0 bad lines skipped" in printed
    report = ReadReport()
    replayed = list(read_outcomes(str(out), report))
    assert len(replayed) == 93 and report.errors == []
    # The fixtures switch between Opus and Sonnet: each switch is annotated as a version change.
    kinds = Counter(json.loads(line)["kind"] for line in alerts.read_text().splitlines())
    assert kinds == {"version_change": 12}
    assert main(["ingest", "claude-code", str(tmp_path / "missing")]) == 2


def test_a_failed_tool_fails_the_prompt_and_splits_by_tool_name() -> None:
    """A `tool_result` with success "false" counts a tool error, fails the prompt, labels the tool outcome."""
    request = ExportLogsServiceRequest.FromString((DATA / "otlp-protobuf" / "00005_logs.pb").read_bytes())
    for kv in request.resource_logs[0].scope_logs[0].log_records[4].attributes:
        if kv.key == "success":
            kv.value.string_value = "false"
    decoder = OtlpDecoder()
    assert decoder.logs(request).rejected == 0
    outcomes = decoder.expire(math.inf)
    (prompt,) = by_session(outcomes, "task", "claude_code.prompt")
    assert (prompt.success, prompt.tool_errors, prompt.api_errors, prompt.error_type) == (
        False,
        1,
        0,
        "tool_error",
    )
    (tool,) = by_session(outcomes, "call", "claude_code.tool")
    assert (
        tool.success is False
        and tool.labels["tool_name"] == "Bash"
        and tool.labels["error.type"] == "tool_error"
    )
    (session,) = by_session(outcomes, "task", "claude_code.session")
    assert (session.success, session.tool_errors) == (False, 1)


def _events(*events: dict[str, object]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    logs = request.resource_logs.add()
    logs.resource.attributes.add(key="service.name").value.string_value = "claude-code"
    scope = logs.scope_logs.add()
    scope.scope.name = "com.anthropic.claude_code.events"
    for i, event in enumerate(events):
        record = scope.log_records.add(time_unix_nano=1795312088000000000 + i * 1_000_000)
        for key, value in {"session.id": "s1", **event}.items():
            kv = record.attributes.add(key=key)
            if isinstance(value, int):
                kv.value.int_value = value
            else:
                kv.value.string_value = str(value)
    return request


def test_memory_caps_keep_prompt_totals_and_count_drops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the per-prompt cap requests still add to the prompt's totals; prompts past the cap are counted."""
    from driftwatch.collectors import _claude_code, _otlp_claude

    monkeypatch.setattr(_claude_code, "MAX_ITEMS_PER_PROMPT", 2)
    monkeypatch.setattr(_otlp_claude, "MAX_OPEN_PROMPTS", 1)
    requests = [
        {
            "event.name": "api_request",
            "prompt.id": "p1",
            "request_id": f"r{i}",
            "input_tokens": 10,
            "cost_usd": "0.5",
        }
        for i in range(5)
    ]
    decoder = OtlpDecoder()
    decoded = decoder.logs(
        _events(
            {"event.name": "user_prompt", "prompt.id": "p1"},
            *requests,
            {"event.name": "api_request", "prompt.id": "p2"},
        )
    )
    assert decoded.rejected == 0 and decoder.stats.prompts_dropped == 1
    outcomes = decoder.expire(math.inf)
    (prompt,) = by_session(outcomes, "task", "claude_code.prompt")
    assert (prompt.input_tokens, prompt.cost_usd) == (50, 2.5)
    assert len(by_session(outcomes, "call", "claude_code.prompt")) == 2


def test_mutated_fixtures_never_raise_and_every_item_is_accounted_for() -> None:
    """Every attribute of every captured item set to odd values (seeded): no exception, rejects counted."""
    import random

    rng = random.Random(7)
    odd: list[object] = ["abc", "", "-1", "1e400", -5, 10**15, 1.5, float("nan"), True]
    rejected = 0
    for path in PROTOBUF:
        signal = path.stem.split("_")[1]
        request = TYPES[signal].FromString(path.read_bytes())  # type: ignore[attr-defined]
        items = (
            [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
            if signal == "traces"
            else [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
            if signal == "logs"
            else [
                p
                for rm in request.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
                for p in m.sum.data_points
            ]
        )
        for item in items:
            for kv in item.attributes:
                if rng.random() < 0.3:
                    value = rng.choice(odd)
                    if isinstance(value, bool):
                        kv.value.bool_value = value
                    elif isinstance(value, int):
                        kv.value.int_value = value
                    elif isinstance(value, float):
                        kv.value.double_value = value
                    else:
                        kv.value.string_value = str(value)
        decoder = OtlpDecoder()
        decoded = getattr(decoder, signal)(request)
        assert decoded.rejected <= len(items) and len(decoded.errors) <= 10
        assert all(e.startswith("resource_") and "could not decode" not in e for e in decoded.errors), (
            decoded.errors
        )
        rejected += decoded.rejected
        decoder.expire(math.inf)
    assert rejected > 0


def _without_request_ids(path: Path) -> list[Outcome]:
    """``path``'s fixture decoded with every ``request_id`` / ``gen_ai.response.id`` removed."""
    signal = path.stem.split("_")[1]
    request = TYPES[signal].FromString(path.read_bytes())  # type: ignore[attr-defined]
    items = (
        [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        if signal == "traces"
        else [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
        if signal == "logs"
        else []
    )
    for item in items:
        kept = [kv for kv in item.attributes if kv.key not in ("request_id", "gen_ai.response.id")]
        del item.attributes[:]
        item.attributes.extend(kept)
    return [request]  # type: ignore[list-item]


def test_event_and_span_of_a_request_without_request_id_count_once() -> None:
    """Without request ids (a gateway that sends no request-id header) event and span still merge."""
    with_ids = decode_all(PROTOBUF)
    decoder = OtlpDecoder()
    without: list[Outcome] = []
    for path in PROTOBUF:
        signal = path.stem.split("_")[1]
        (request,) = _without_request_ids(path)
        decoded = getattr(decoder, signal)(request)
        assert decoded.rejected == 0, decoded.errors
        without += decoded.outcomes
    without += decoder.expire(math.inf)

    def summary(outcomes: list[Outcome]) -> list[tuple[object, ...]]:
        return sorted(
            (o.kind, o.task, o.success, o.input_tokens, o.output_tokens, o.cost_usd, o.api_errors)
            for o in outcomes
            if o.task == "claude_code.prompt"
        )

    assert summary(without) == summary(with_ids)
    calls = by_session(without, "call", "claude_code.prompt")
    # Each call outcome has the event's cost and the span's time to first token: one merged record.
    assert all(c.cost_usd is not None and c.ttft_s is not None for c in calls if c.success)


def test_a_decoder_pickled_before_the_split_restores_its_open_sessions() -> None:
    """Checkpoints written before the decoder was split hold one flat state (open Claude Code
    sessions, the span index): unpickled into today's decoder, the rest of the stream decodes the same."""
    half = len(PROTOBUF) // 2
    decoder = OtlpDecoder()
    for path in PROTOBUF[:half]:
        feed(decoder, path)
    assert decoder.open_sessions
    claude, genai = decoder.claude, decoder.genai
    pickled = claude.__getstate__()  # what a checkpoint holds of the Claude Code reader
    assert isinstance(pickled, dict)
    flat = {  # the 0.1.0 layout of OtlpDecoder.__dict__
        "config": decoder.config,
        "check_only": False,
        "max_sessions": claude.max_sessions,
        "session_idle_s": claude.session_idle_s,
        "stats": decoder.stats,
        **{name: pickled[name] for name in ("_sessions", "_aliases", "_closed", "_records", "_open_prompts")},
        "_spans": genai.spans,
    }
    old = OtlpDecoder.__new__(OtlpDecoder)
    old.__setstate__(pickle.loads(pickle.dumps(flat)))
    restored: OtlpDecoder = pickle.loads(pickle.dumps(old))
    assert restored.claude.stats is restored.stats and restored.max_sessions == claude.max_sessions
    rest = PROTOBUF[half:]
    want = [o for p in rest for o in feed(decoder, p)] + decoder.expire(math.inf)
    got = [o for p in rest for o in feed(restored, p)] + restored.expire(math.inf)
    assert got == want and len(want) > 3
