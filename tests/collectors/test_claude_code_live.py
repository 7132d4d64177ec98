"""A live, unmodified Claude Code CLI exporting its own telemetry to `driftwatch serve` (issue 4).

The real CLI (npm ``@anthropic-ai/claude-code``, installed by ``make claude-code``) runs headless
against the local fake Messages API with a dummy key; its OTLP export goes to a ``DriftService`` and
``Receiver`` on ephemeral ports. Every request gets its own fake answer (distinct token counts), so
each outcome can be traced back to the request that produced it. The runs: plain prompts (one
continued with ``--continue``), a 529 after one retry, HTTP and gRPC export, the beta spans, and the
model asking for a ``Read`` tool use (allowed, allowed on a missing file, not allowed, and refused in
``dontAsk`` mode).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from driftwatch import InMemorySink, load_config
from driftwatch._offline.fake_api import FakeMessagesAPI, Reply
from driftwatch._outcome import Outcome
from driftwatch._serve.receiver import Receiver
from driftwatch._serve.service import TICK, DriftService

ROOT = Path(__file__).resolve().parents[2]
INSTALL_DIR = ROOT / ".venv" / "claude-code"
CLAUDE = INSTALL_DIR / "node_modules" / ".bin" / "claude"
FAIL = "FAKE-529"  # a prompt containing this gets 529 overloaded from the fake API
READ = re.compile(r"FAKE-READ:([^\s\"\\]+)")  # the fake answers with a Read tool use of that file first


def _pinned_version() -> str:
    match = re.search(r"^CLAUDE_CODE_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "Makefile: CLAUDE_CODE_VERSION is not set"
    return match.group(1)


def claude_cli() -> tuple[Path, str]:
    """The installed CLI and its version; installs it like ``make claude-code``, skips without npm."""
    version = _pinned_version()
    if not CLAUDE.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm not found: cannot install the Claude Code CLI (`make claude-code`)")
        package = f"@anthropic-ai/claude-code@{version}"
        cmd = [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(INSTALL_DIR), package]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode or not CLAUDE.exists():
            pytest.skip(f"npm could not install {package}: {(proc.stderr or proc.stdout)[-500:]}")
    out = subprocess.run([str(CLAUDE), "--version"], capture_output=True, text=True, timeout=60)
    return CLAUDE, out.stdout.split()[0]


@dataclass
class Run:
    """One ``claude -p`` invocation and what the fake API answered it."""

    prompt: str
    protocol: str
    spans: bool
    resume: bool = False
    """``--continue``: the previous run's session goes on (same ``session.id``, a new prompt)."""
    allow_read: bool = False
    """``--allowedTools Read``: headless, a tool use without permission is denied."""
    dont_ask: bool = False
    """``--permission-mode dontAsk``: a tool use without permission is denied, and said so in events."""
    returncode: int = 0
    stdout: str = ""
    replies: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Live:
    service: DriftService
    receiver: Receiver
    version: str
    runs: list[Run]
    outcomes: list[Outcome]
    before_tick: int
    """How many of ``outcomes`` came out before the tick that expired the rest."""
    receiver_stats: dict[str, Any]

    def prompts(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.task == "claude_code.prompt" and o.kind == "task"]

    def calls(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.task == "claude_code.prompt" and o.kind == "call"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    claude, version = claude_cli()
    tmp = tmp_path_factory.mktemp("claude-live")
    replies: list[dict[str, Any]] = []

    def profile(request: dict[str, Any], headers: dict[str, str]) -> Reply:
        # Distinct usage per request, so that each outcome names the answer it came from.
        n = len(replies)
        users = json.dumps([m for m in request.get("messages", []) if m.get("role") == "user"])
        reply = Reply(model=request.get("model"), input_tokens=1000 + n, output_tokens=20 + n, status=200)
        if FAIL in users:
            reply.update(status=529, error_type="overloaded_error")
        read = READ.search(users)
        if read and "tool_result" not in users:
            reply.update(tool_calls=1, tool_name="Read", tool_input={"file_path": read.group(1)})
        replies.append(dict(reply))
        return reply

    config = load_config(None, env={}, http_port=0, grpc_port=0, state=str(tmp / "state.db"), console=False)
    sink = InMemorySink()
    service = DriftService(config, [sink])
    outcomes: list[Outcome] = []
    decode = service.durable.decode

    def observed(kind: str, body: bytes) -> list[Outcome]:
        out = decode(kind, body)
        outcomes.extend(out)
        return out

    service.durable.decode = observed  # watch what the journal's decoder hands the monitor
    service.start(wait=True)
    receiver = Receiver(service, config)
    receiver.start()

    def received(signal: str) -> int:
        return int(receiver.stats_body()["received"][signal])

    runs = [
        Run("say hi", "http/protobuf", False),
        Run("say hi again", "http/protobuf", False, resume=True),
        Run("and once more", "http/protobuf", False),
        Run(f"please answer {FAIL}", "http/protobuf", False),
        Run("say hi over grpc", "grpc", True),
        Run(f"read FAKE-READ:{tmp / 'hello.txt'}", "http/protobuf", False, allow_read=True),
        Run(f"read FAKE-READ:{tmp / 'missing.txt'}", "http/protobuf", False, allow_read=True),
        Run(f"read FAKE-READ:{tmp / 'hello.txt'} unasked", "http/protobuf", False),
        Run(f"read FAKE-READ:{tmp / 'hello.txt'} dont ask", "http/protobuf", True, dont_ask=True),
    ]
    # Outside the working directory, so that headless Claude Code reads it only when allowed to.
    (tmp / "hello.txt").write_text("hello\n")
    work = tmp / "work"
    work.mkdir()
    try:
        with FakeMessagesAPI(profile) as api:
            home = tmp / "home"
            home.mkdir()
            for run in runs:
                port = receiver.grpc_port if run.protocol == "grpc" else receiver.http_port
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "HOME": str(home),
                    "ANTHROPIC_BASE_URL": api.base_url,
                    "ANTHROPIC_API_KEY": "dummy",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                    "CLAUDE_CODE_MAX_RETRIES": "1",  # the 529 is retried once, then fails the request
                    "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
                    "OTEL_METRICS_EXPORTER": "otlp",
                    "OTEL_LOGS_EXPORTER": "otlp",
                    "OTEL_EXPORTER_OTLP_PROTOCOL": run.protocol,
                    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                    "OTEL_METRIC_EXPORT_INTERVAL": "1000",
                    "OTEL_LOGS_EXPORT_INTERVAL": "500",
                }
                if run.spans:
                    env |= {
                        "CLAUDE_CODE_ENHANCED_TELEMETRY_BETA": "1",
                        "OTEL_TRACES_EXPORTER": "otlp",
                        "OTEL_TRACES_EXPORT_INTERVAL": "500",
                    }
                first, logs = len(replies), received("logs")
                proc = subprocess.run(
                    [
                        str(claude),
                        "-p",
                        *(["--continue"] if run.resume else []),
                        *(["--allowedTools", "Read", "--"] if run.allow_read else []),
                        *(["--permission-mode", "dontAsk", "--"] if run.dont_ask else []),
                        run.prompt,
                    ],
                    env=env,
                    cwd=work,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    stdin=subprocess.DEVNULL,
                )
                run.returncode, run.stdout, run.replies = proc.returncode, proc.stdout, replies[first:]
                # The CLI flushes its exporters before it exits; wait (bounded) for the prompt's
                # three events anyway (user_prompt, api_request or api_error, and one more).
                deadline = time.monotonic() + 10
                while received("logs") < logs + 3 and time.monotonic() < deadline:
                    time.sleep(0.05)
        # What the receiver acknowledged is journalled: wait until detection went through it.
        assert service.wait_processed(20)
        before_tick = len(outcomes)
        # Claude Code sends no "prompt done": a tick past the idle time closes every prompt and
        # session, through the journal like the service's own ticks.
        later = time.time() + service.decoder.otlp.session_idle_s + 60
        service.durable.append(TICK, repr(later).encode("ascii"))
        assert service.wait_processed(20)
        yield Live(service, receiver, version, runs, outcomes, before_tick, receiver.stats_body())
    finally:
        receiver.stop()
        service.stop()


def test_the_cli_ran_against_the_fake_api(live: Live) -> None:
    """Every `claude -p` got its answer from the fake API; the failing prompt exits non-zero after a retry."""
    for run in live.runs:
        assert run.replies, f"{run.prompt!r} made no request to the fake API"
        if FAIL in run.prompt:
            assert run.returncode == 1 and "529" in run.stdout
            assert [r["status"] for r in run.replies] == [529, 529]  # one retry
        else:
            # A tool use is answered by a second request carrying its result.
            statuses = [200, 200] if READ.search(run.prompt) else [200]
            assert run.returncode == 0 and [r["status"] for r in run.replies] == statuses, run.stdout


def test_serve_received_claude_codes_logs_metrics_and_spans(live: Live) -> None:
    """The receiver accepted Claude Code's logs and metrics (HTTP, gRPC) and its beta spans, none rejected."""
    stats = live.receiver_stats
    assert stats["received"]["logs"] >= 3 * len(live.runs)  # user_prompt, api_request, assistant_response
    assert stats["received"]["metrics"] > 0 and stats["received"]["traces"] > 0
    assert stats["rejected"] == {"traces": 0, "logs": 0, "metrics": 0}
    assert stats["requests"]["http"]["200"] > 0 and stats["requests"]["grpc"]
    decoder = live.service.decoder.otlp.stats
    assert decoder.rejected == 0 and decoder.late == 0
    assert live.service.decoder.otlp.open_sessions == 0


def test_each_prompt_is_one_task_outcome_with_the_fake_apis_tokens(live: Live) -> None:
    """One `claude_code.prompt` task outcome per run; its tokens are the fake API's answer, counted once."""
    prompts = live.prompts()
    assert len(prompts) == len(live.runs)
    good = sorted((p.input_tokens, p.output_tokens) for p in prompts if p.input_tokens is not None)
    ok_runs = [run for run in live.runs if FAIL not in run.prompt]
    assert good == sorted(
        (sum(r["input_tokens"] for r in run.replies), sum(r["output_tokens"] for r in run.replies))
        for run in ok_runs
    )
    for prompt in prompts:
        assert prompt.service == "claude-code" and prompt.labels["app.version"] == live.version
        assert prompt.model is not None and "[" not in prompt.model
        if not prompt.api_errors:
            assert prompt.api_errors == 0 and prompt.cost_usd and prompt.cost_usd > 0
            assert prompt.latency_s is not None and 0 < prompt.latency_s < 60


def test_each_api_request_is_one_call_outcome(live: Live) -> None:
    """One `kind=call` outcome per request with its answer's tokens; event and span merge by request id."""
    calls = live.calls()
    # The 529 is one failed request after its retry, not two.
    assert len(calls) == sum(len(run.replies) for run in live.runs) - 1
    merged = [c for c in calls if c.ttft_s is not None]
    # The runs with spans: each request's span (ttft, stop_reason) and event (cost) are one.
    assert len(merged) == sum(len(run.replies) for run in live.runs if run.spans)
    assert all(c.cost_usd for c in merged) and merged[-1].stop_reason == "end_turn"
    for call in calls:
        if call.success:
            assert (call.input_tokens, call.output_tokens) in {
                (r["input_tokens"], r["output_tokens"]) for run in live.runs for r in run.replies
            }


def test_the_api_error_prompt_fails(live: Live) -> None:
    """The 529 prompt is success=False with one API error, error type "529", no tokens; its call likewise."""
    (failed,) = [p for p in live.prompts() if p.api_errors]
    assert failed.success is False
    assert (failed.api_errors, failed.error_type, failed.labels["error.type"]) == (1, "529", "529")
    assert failed.input_tokens is None
    (call,) = [c for c in live.calls() if not c.success]
    assert (call.error_type, call.labels["error.type"]) == ("529", "529")


def test_tool_uses_are_tool_outcomes_and_a_failed_one_fails_its_prompt(live: Live) -> None:
    """A Read of a file is a `claude_code.tool` outcome; a Read of a missing file fails it and its prompt."""
    tools = [o for o in live.outcomes if o.task == "claude_code.tool" and not _dont_ask(live, o)]
    assert sorted((t.labels["tool_name"], t.success, t.error_type) for t in tools) == [
        ("Read", False, "tool_error"),
        ("Read", True, None),
    ]
    assert all(t.latency_s is not None and t.latency_s >= 0 for t in tools)
    with_tools = sorted(
        (p.success, p.tool_errors, p.error_type)
        for p in live.prompts()
        if p.tool_calls and not p.permission_denials
    )
    assert with_tools == [(False, 1, "tool_error"), (True, 0, None)]


def test_a_tool_use_denied_headless_leaves_no_trace_in_telemetry(live: Live) -> None:
    """Without --allowedTools the CLI refuses the Read and sends no tool event: the prompt counts no tool."""
    (run,) = [run for run in live.runs if run.prompt.endswith("unasked")]
    assert len(run.replies) == 2  # the model asked for the tool, the CLI answered with an error result
    tokens = (sum(r["input_tokens"] for r in run.replies), sum(r["output_tokens"] for r in run.replies))
    (prompt,) = [p for p in live.prompts() if (p.input_tokens, p.output_tokens) == tokens]
    assert (prompt.success, prompt.tool_calls, prompt.tool_errors) == (True, 0, 0)
    # Nor a tool_decision: without the beta spans (tool.blocked_on_user) the refusal is not seen.
    assert (prompt.permission_denials, prompt.tool_uses) == (0, {})


def test_the_next_prompt_of_a_session_completes_the_previous_one(live: Live) -> None:
    """`claude -p --continue` goes on in the same session: its prompt emits the previous prompt at once."""
    early = [o for o in live.outcomes[: live.before_tick] if o.kind == "task"]
    assert [o.task for o in early] == ["claude_code.prompt"]
    first = live.runs[0].replies[0]
    assert (early[0].input_tokens, early[0].output_tokens) == (first["input_tokens"], first["output_tokens"])


def test_sessions_and_streams_reached_the_monitor(live: Live) -> None:
    """Each session is one outcome with Claude Code's metric totals; the monitor processed every outcome."""
    sessions = [o for o in live.outcomes if o.task == "claude_code.session"]
    assert len(sessions) == len([run for run in live.runs if not run.resume])
    (resumed,) = [s for s in sessions if s.input_tokens == 2000 + 1]  # runs 0 and 1: 1000 + 1001
    assert resumed.output_tokens == 20 + 21 and resumed.success
    assert sum(s.input_tokens or 0 for s in sessions) == sum(p.input_tokens or 0 for p in live.prompts())
    assert [s.success for s in sessions].count(False) == 2  # the 529 and the failed tool use
    monitor = live.service.monitor
    assert monitor.stats.processed == len(live.outcomes)
    keys = "\n".join(monitor.stream_keys())
    assert "claude_code.prompt" in keys and "claude_code.session" in keys


def _dont_ask(live: Live, outcome: Outcome) -> bool:
    """Whether ``outcome`` belongs to the ``dontAsk`` run's prompt (the one denial), by trace id."""
    return outcome.trace_id in {p.trace_id for p in live.prompts() if p.permission_denials}


def test_prompts_carry_turns_retries_and_tool_uses_by_name(live: Live) -> None:
    """Turns are the prompt's API requests; the 529 after one retry is one retry; tool uses by name."""
    by_tokens = {(p.input_tokens, p.output_tokens): p for p in live.prompts() if p.input_tokens is not None}
    for run in live.runs:
        if FAIL in run.prompt:
            (failed,) = [p for p in live.prompts() if p.api_errors]
            assert (failed.turns, failed.retries, failed.tool_uses) == (1, 1, {})
            continue
        tokens = (sum(r["input_tokens"] for r in run.replies), sum(r["output_tokens"] for r in run.replies))
        prompt = by_tokens[tokens]
        assert (prompt.turns, prompt.retries) == (len(run.replies), 0), run.prompt
        asked = READ.search(run.prompt) and (run.allow_read or run.dont_ask)
        assert prompt.tool_uses == ({"Read": 1} if asked else {}), run.prompt
        assert prompt.reads_per_edit is None  # no edit, no ratio


def test_a_tool_use_denied_in_dont_ask_mode_is_one_permission_denial(live: Live) -> None:
    """`--permission-mode dontAsk` refuses the Read: its tool_decision event and its blocked span are one
    denial; the prompt stays a success with no tool error, as the CLI reports it."""
    denied = [p for p in live.prompts() if p.permission_denials]
    assert [(p.permission_denials, p.success, p.tool_errors, p.tool_uses) for p in denied] == [
        (1, True, 0, {"Read": 1})
    ]
    assert all(p.permission_denials == 0 for p in live.prompts() if p not in denied)
    sessions = [o for o in live.outcomes if o.task == "claude_code.session"]
    assert sum(s.permission_denials or 0 for s in sessions) == 1
