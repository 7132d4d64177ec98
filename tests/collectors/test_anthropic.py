"""driftwatch.watch on the real anthropic SDK, through httpx2.MockTransport (no mocked SDK)."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import pytest

import driftwatch
from driftwatch.collectors import _anthropic
from tests.conftest import Harness, make_handler, message_json, sse_events

MESSAGES = [{"role": "user", "content": "SECRET-PROMPT"}]


def client_for(handler: Any, **kwargs: Any) -> anthropic.Anthropic:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    base = anthropic.Anthropic(
        api_key="test", base_url="http://api.test", http_client=http, max_retries=0, **kwargs
    )
    return driftwatch.watch(base)


def only_call(harness: Harness) -> driftwatch.Outcome:
    calls = [o for o in harness.flush() if o.kind == "call"]
    assert len(calls) == 1, calls
    return calls[0]


def test_create_records_usage_model_and_stop_reason(harness: Harness) -> None:
    """A plain messages.create becomes one call outcome with usage, models and stop reason."""
    client = client_for(make_handler(output_tokens=42, model="claude-sonnet-4-6-20261001"))
    message = client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
    assert message.usage.output_tokens == 42
    call = only_call(harness)
    assert call.request_model == "claude-sonnet-4-6"
    assert call.model == "claude-sonnet-4-6-20261001"
    assert (call.input_tokens, call.output_tokens, call.cache_read_tokens) == (11, 42, 5)
    assert call.stop_reason == "end_turn" and call.success is True and call.tool_calls == 0
    assert call.latency_s is not None and call.latency_s >= 0
    assert call.cost_usd is not None and call.cost_usd > 0


def test_tool_use_blocks_are_counted(harness: Harness) -> None:
    """Tool-use blocks in the response are counted, for plain and streamed calls alike."""
    client = client_for(make_handler(tools=2))
    client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
    stream = client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES, stream=True)
    for _ in stream:
        pass
    calls = [o for o in harness.flush() if o.kind == "call"]
    assert [c.tool_calls for c in calls] == [2, 2]
    assert all(c.stop_reason == "tool_use" for c in calls)


def test_stream_true_records_ttft_and_final_usage(harness: Harness) -> None:
    """create(stream=True) records time to first token and the final usage from message_delta."""
    client = client_for(make_handler(output_tokens=33))
    events = [
        e.type
        for e in client.messages.create(
            model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES, stream=True
        )
    ]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    call = only_call(harness)
    assert call.output_tokens == 33 and call.input_tokens == 11
    assert call.ttft_s is not None and 0 <= call.ttft_s <= call.latency_s  # type: ignore[operator]
    assert call.stop_reason == "end_turn" and "stream_end" not in call.labels


def test_messages_stream_helper(harness: Harness) -> None:
    """The messages.stream(...) helper is observed like create(stream=True)."""
    client = client_for(make_handler(output_tokens=21))
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES) as stream:
        final = stream.get_final_message()
    assert final.usage.output_tokens == 21
    call = only_call(harness)
    assert call.output_tokens == 21 and call.ttft_s is not None


def test_beta_messages(harness: Harness) -> None:
    """beta.messages.create goes through the same middleware."""
    client = client_for(make_handler(output_tokens=9))
    client.beta.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
    assert only_call(harness).output_tokens == 9


def test_early_close_is_still_recorded(harness: Harness) -> None:
    """A stream the caller abandons after the first event is recorded, marked as closed early."""
    client = client_for(make_handler())
    stream = client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES, stream=True)
    first = next(iter(stream))
    assert first.type == "message_start"
    stream.close()
    call = only_call(harness)
    assert call.labels.get("stream_end") == "closed"
    assert call.input_tokens == 11 and call.output_tokens == 1  # as far as the stream got


def test_dropped_stream_is_recorded(harness: Harness) -> None:
    """A stream dropped without close() is recorded when it is garbage-collected."""
    client = client_for(make_handler())
    stream = client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES, stream=True)
    del stream
    gc.collect()
    assert only_call(harness).labels.get("stream_end") == "closed"


def test_host_error_propagates_unchanged(harness: Harness) -> None:
    """An API error reaches the caller as the SDK's own exception, and is recorded as a failed call."""
    client = client_for(make_handler(status=529))
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
    assert info.value.status_code == 529
    call = only_call(harness)
    assert call.success is False and call.error_type == "529"


def test_connection_error_propagates_unchanged(harness: Harness) -> None:
    """A transport failure reaches the caller as APIConnectionError and is recorded with its type."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    client = client_for(handler)
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
    call = only_call(harness)
    assert call.success is False and call.error_type is not None


def test_instrumentation_error_is_swallowed_and_logged(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """If driftwatch itself fails, the call still returns normally and the failure is logged."""

    def broken(self: Any, *args: Any) -> None:
        raise RuntimeError("driftwatch bug")

    monkeypatch.setattr(_anthropic._Call, "read_message", broken)
    monkeypatch.setattr(_anthropic._Call, "sse_event", broken)
    client = client_for(make_handler(output_tokens=5))
    message = client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
    assert message.usage.output_tokens == 5
    events = list(
        client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES, stream=True)
    )
    assert events[-1].type == "message_stop"
    assert "internal error" in caplog.text
    assert harness.runtime.monitor.stats.internal_errors >= 1


def test_begin_failure_is_swallowed(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure while starting to observe a call leaves the call untouched."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("driftwatch bug")

    monkeypatch.setattr(_anthropic, "_Call", broken)
    client = client_for(make_handler(output_tokens=5))
    assert (
        client.messages.create(
            model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES
        ).usage.output_tokens
        == 5
    )


def test_no_content_is_captured(harness: Harness) -> None:
    """Neither the prompt nor the response text reaches outcomes or spans."""
    client = client_for(make_handler())
    client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
    for _ in client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES, stream=True):
        pass
    recorded = json.dumps([o.to_dict() for o in harness.flush()])
    recorded += json.dumps(
        [dict(s.attributes or {}) for s in harness.spans.get_finished_spans()], default=str
    )
    assert "SECRET" not in recorded


def test_own_span_when_sdk_tracing_is_off(harness: Harness) -> None:
    """With the SDK's spans off, driftwatch emits one GenAI `chat {model}` client span per attempt."""
    client = client_for(make_handler(output_tokens=8), open_telemetry=False)
    client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
    harness.flush()
    spans = harness.spans.get_finished_spans()
    assert [s.name for s in spans] == ["chat claude-sonnet-4-6"]
    attrs = spans[0].attributes or {}
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.usage.output_tokens"] == 8


def test_call_outcome_and_span_are_built_off_the_calling_thread(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a task, the calling thread queues the call; its outcome and span (still the child of
    the caller's active span, timed when the call ran) are made on the monitor's thread."""
    queued: list[object] = []
    monkeypatch.setattr(harness.runtime.monitor, "submit", queued.append)
    client = client_for(make_handler(output_tokens=8), open_telemetry=False)
    tracer = harness.provider.get_tracer("host")
    with tracer.start_as_current_span("host-request") as parent:
        before = time.time_ns()
        client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
        after = time.time_ns()
    monkeypatch.undo()
    (item,) = queued
    assert not isinstance(item, driftwatch.Outcome)
    assert [s.name for s in harness.spans.get_finished_spans()] == ["host-request"]
    harness.runtime.monitor.submit(item)  # type: ignore[arg-type]
    call = only_call(harness)
    span = {s.name: s for s in harness.spans.get_finished_spans()}["chat claude-sonnet-4-6"]
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert span.start_time is not None and span.end_time is not None
    assert before <= span.start_time <= span.end_time <= after
    assert call.output_tokens == 8 and call.span_id == format(span.context.span_id, "016x")


def test_failure_building_a_queued_call_is_counted_not_raised(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A driftwatch bug while the monitor builds a queued call's outcome is logged and counted."""

    def broken(self: Any) -> None:
        raise RuntimeError("driftwatch bug")

    monkeypatch.setattr(_anthropic._Call, "outcome", broken)
    client = client_for(make_handler(output_tokens=5), open_telemetry=False)
    assert (
        client.messages.create(
            model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES
        ).usage.output_tokens
        == 5
    )
    assert harness.flush() == []
    assert harness.runtime.monitor.stats.internal_errors == 1
    assert "could not build a queued outcome" in caplog.text


def test_sdk_span_is_annotated_not_duplicated(harness: Harness) -> None:
    """With the SDK's own call span recording, driftwatch adds attributes to it instead of a second span."""
    client = client_for(make_handler(tools=1), open_telemetry={"tracer_provider": harness.provider})
    with driftwatch.task("review"):
        client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
    harness.flush()
    spans = {s.name: s for s in harness.spans.get_finished_spans()}
    assert set(spans) == {"anthropic.messages.create", "invoke_agent review"}
    sdk = spans["anthropic.messages.create"]
    assert (sdk.attributes or {})["driftwatch.tool_calls"] == 1
    assert (sdk.attributes or {})["driftwatch.task.name"] == "review"
    assert sdk.parent is not None and sdk.parent.span_id == spans["invoke_agent review"].context.span_id


def test_watch_rejects_other_objects() -> None:
    """watch() says what it takes when given something else."""
    with pytest.raises(TypeError, match=r"anthropic\.Anthropic or anthropic\.AsyncAnthropic"):
        driftwatch.watch(object())  # type: ignore[type-var]


def test_original_client_is_untouched(harness: Harness) -> None:
    """watch() returns an instrumented copy; calls on the original client are not observed."""
    http = httpx2.Client(transport=httpx2.MockTransport(make_handler()))
    base = anthropic.Anthropic(api_key="test", base_url="http://api.test", http_client=http, max_retries=0)
    driftwatch.watch(base)
    base.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
    assert [o for o in harness.flush() if o.kind == "call"] == []


# -- async ----------------------------------------------------------------------------------------


def async_client(status: int = 200) -> anthropic.AsyncAnthropic:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        if status != 200:
            return httpx2.Response(status, json={"type": "error", "error": {"type": "x", "message": "boom"}})
        message = message_json(output_tokens=13)
        if body.get("stream"):

            async def gen() -> AsyncIterator[bytes]:
                for chunk in sse_events(message):
                    await asyncio.sleep(0)
                    yield chunk

            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=gen())
        return httpx2.Response(200, json=message)

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    base = anthropic.AsyncAnthropic(
        api_key="test", base_url="http://api.test", http_client=http, max_retries=0
    )
    return driftwatch.watch(base)


async def test_async_create_and_stream(harness: Harness) -> None:
    """The async client is observed for plain and streamed calls, inside an async task."""
    client = async_client()
    async with driftwatch.task("async-task") as t:
        await client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
        async with client.messages.stream(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES) as s:
            await s.get_final_message()
        t.record(success=True)
    outcomes = harness.flush()
    calls = [o for o in outcomes if o.kind == "call"]
    assert [c.output_tokens for c in calls] == [13, 13]
    assert calls[1].ttft_s is not None
    (task,) = [o for o in outcomes if o.kind == "task"]
    assert task.output_tokens == 26 and task.success is True


async def test_async_early_close(harness: Harness) -> None:
    """An async stream closed after its first event is still recorded."""
    client = async_client()
    stream = await client.messages.create(
        model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES, stream=True
    )
    async for _event in stream:
        break
    await stream.close()
    (call,) = [o for o in harness.flush() if o.kind == "call"]
    assert call.labels.get("stream_end") == "closed"


async def test_async_host_error_propagates(harness: Harness) -> None:
    """The async client's API errors reach the caller unchanged."""
    client = async_client(status=500)
    with pytest.raises(anthropic.InternalServerError):
        await client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES)
    (call,) = [o for o in harness.flush() if o.kind == "call"]
    assert call.error_type == "500"


@pytest.mark.parametrize(
    "headers",
    [
        [("Content-Type", "text/event-stream; charset=utf-8")],
        [("content-type", "application/json")],
        [("X-Other", "text/event-stream")],
        [],
        [("CONTENT-TYPE", "text/event-stream"), ("Content-Type", "application/json")],
        [("Content-Type", "application/json"), ("content-type", "text/event-stream")],
    ],
)
def test_is_sse_reads_the_content_type_as_headers_get_does(headers: list[tuple[str, str]]) -> None:
    """A non-streamed call's response is server-sent events exactly when ``headers.get`` says so,
    read from the headers' list directly or, for headers of another shape, through ``get``."""

    class Plain:
        def __init__(self, headers: httpx2.Headers) -> None:
            self.headers = headers

        def get(self, key: str, default: str = "") -> str:
            return self.headers.get(key, default)

    call = _anthropic._Call.__new__(_anthropic._Call)
    call.stream = False
    response = httpx2.Response(200, headers=headers)
    expected = response.headers.get("content-type", "").startswith("text/event-stream")
    assert _anthropic._is_sse(call, response) is expected
    other = httpx2.Response(200)
    other.headers = Plain(response.headers)  # type: ignore[assignment]
    assert _anthropic._is_sse(call, other) is expected
    call.stream = True
    assert _anthropic._is_sse(call, response) is True
