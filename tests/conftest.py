"""Shared fixtures: a driftwatch runtime wired to in-memory sinks and an in-memory span exporter."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import driftwatch
from driftwatch._alerting.otel import Telemetry
from driftwatch._runtime import Runtime


class Harness:
    """A configured runtime plus what it recorded."""

    def __init__(
        self,
        runtime: Runtime,
        alerts: driftwatch.InMemorySink,
        spans: InMemorySpanExporter,
        provider: TracerProvider,
    ) -> None:
        self.runtime = runtime
        self.alerts = alerts
        self.spans = spans
        self.provider = provider
        self.outcomes: list[driftwatch.Outcome] = []
        original = runtime.monitor.process

        def spy(outcome: driftwatch.Outcome) -> list[driftwatch.Alert]:
            self.outcomes.append(outcome)
            return original(outcome)

        runtime.monitor.process = spy  # type: ignore[method-assign]

    def flush(self) -> list[driftwatch.Outcome]:
        assert self.runtime.monitor.flush(5.0)
        return self.outcomes


LIVE_CLAUDE_CODE = "test_claude_code_live.py"  # in tests/collectors/
LIVE_SKIPPED = "live Claude Code skipped"


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    """The live Claude Code tests, when skipped (no npm, or npm could not install the CLI), count under
    their own name: pytest's final line then says "N live Claude Code skipped", not just "N skipped"."""
    if report.skipped and not hasattr(report, "wasxfail") and LIVE_CLAUDE_CODE in report.nodeid:
        return LIVE_SKIPPED, "s", "SKIPPED (live Claude Code)"
    return None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Why the live Claude Code tests did not run, right above the final line."""
    skipped = terminalreporter.stats.get(LIVE_SKIPPED, [])
    if not skipped:
        return
    longrepr = skipped[0].longrepr
    reason = str(longrepr[2] if isinstance(longrepr, tuple) else longrepr).removeprefix("Skipped: ")
    terminalreporter.write_sep("=", "the live Claude Code test did not run", yellow=True, bold=True)
    where = f"tests/collectors/{LIVE_CLAUDE_CODE}"
    terminalreporter.write_line(f"{len(skipped)} tests in {where} skipped: {reason}")


@pytest.fixture
def harness() -> Iterator[Harness]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    alerts = driftwatch.InMemorySink()
    runtime = driftwatch.configure(
        sinks=[alerts], telemetry=Telemetry(tracer_provider=provider), service="test-agent"
    )
    h = Harness(runtime, alerts, spans, provider)
    yield h
    driftwatch.shutdown()


def message_json(
    model: str = "claude-sonnet-4-6", output_tokens: int = 7, tools: int = 0, text: str = "SECRET-RESPONSE"
) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    content += [
        {"type": "tool_use", "id": f"toolu_{i}", "name": "bash", "input": {"cmd": "ls"}} for i in range(tools)
    ]
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if tools else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": output_tokens, "cache_read_input_tokens": 5},
    }


def sse_events(message: dict[str, Any]) -> list[bytes]:
    from driftwatch._offline.fake_api import _events

    return [f"event: {e}\ndata: {json.dumps(d)}\n\n".encode() for e, d in _events(message)]


def make_handler(
    status: int = 200,
    tools: int = 0,
    output_tokens: int = 7,
    model: str = "claude-sonnet-4-6",
    on_chunk: Callable[[int], None] | None = None,
) -> Callable[[httpx2.Request], httpx2.Response]:
    """A MockTransport handler answering Messages requests like the real API (JSON or SSE)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        if status != 200:
            return httpx2.Response(
                status, json={"type": "error", "error": {"type": "api_error", "message": "boom"}}
            )
        message = message_json(model=model, output_tokens=output_tokens, tools=tools)
        if body.get("stream"):
            chunks = sse_events(message)

            def gen() -> Iterator[bytes]:
                for i, chunk in enumerate(chunks):
                    if on_chunk:
                        on_chunk(i)
                    yield chunk

            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=gen())
        return httpx2.Response(200, json=message)

    return handler
