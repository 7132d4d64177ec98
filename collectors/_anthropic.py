"""``driftwatch.watch(client)``: the anthropic SDK, observed through its own middleware hook.

One middleware runs once per HTTP attempt inside the SDK's retry loop and sees every response,
errors included. A streamed body is not read yet when the middleware returns, so the body stream
of the response is wrapped: it sees the server-sent events go by (time to first token, final usage,
stop reason, tool use) and how reading ended (read, failed, or closed early by the caller).

Spans: when the SDK's own call span (``anthropic.messages.create``) is recording, driftwatch does
not emit another one; it adds its ``driftwatch.*`` attributes to the SDK's span. Otherwise it emits
one GenAI ``chat {model}`` client span per attempt itself. Prompt and response content is never
read into driftwatch: only usage, model, stop reason and the count of tool-use blocks.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import httpx2
from anthropic import Anthropic, AsyncAnthropic
from anthropic._middleware import AsyncCallNext, CallNext, Middleware
from anthropic._request import APIRequest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext

from driftwatch import _semconv as sc
from driftwatch._outcome import Outcome
from driftwatch._runtime import Runtime, get_runtime
from driftwatch.collectors._pricing import prices_for
from driftwatch.collectors._spans import CallSpan
from driftwatch.collectors._task import current_task

__all__ = ["DriftwatchMiddleware", "watch"]

log = logging.getLogger("driftwatch")
ClientT = TypeVar("ClientT", Anthropic, AsyncAnthropic)

_SSE_KEPT = {b"message_start", b"message_delta", b"content_block_start", b"error"}
_MAX_LINE = 1 << 20  # longest SSE line kept while scanning; longer (content) lines are skipped


def watch(client: ClientT) -> ClientT:
    """An instrumented copy of an ``anthropic.Anthropic`` or ``AsyncAnthropic`` client.

    Use the returned client in place of the original; the original is left untouched. Every
    ``messages`` call (``create`` with or without ``stream=True``, ``messages.stream(...)``,
    ``beta.messages``) becomes an outcome for drift detection and, with OpenTelemetry set up, a span.
    """
    if not isinstance(client, Anthropic | AsyncAnthropic):
        raise TypeError(
            f"driftwatch.watch() takes an anthropic.Anthropic or anthropic.AsyncAnthropic client, "
            f"got {type(client).__name__}"
        )
    return client.with_middleware(DriftwatchMiddleware())


def _is_messages_call(request: APIRequest) -> bool:
    path = request.url.split("?", 1)[0].rstrip("/")
    return request.method.lower() == "post" and path.endswith("/messages")


class _Call:
    """One observed attempt: what the request asked for and what came back, then its outcome."""

    __slots__ = (
        "cache_read",
        "cache_write",
        "cost",
        "done",
        "end_ns",
        "error_type",
        "input_tokens",
        "latency",
        "model",
        "output_tokens",
        "parent",
        "request_model",
        "runtime",
        "sdk_span",
        "start",
        "start_ns",
        "status",
        "stop_reason",
        "stream",
        "stream_end",
        "task",
        "tool_calls",
        "ttft",
    )

    def __init__(self, runtime: Runtime, request: APIRequest) -> None:
        # The calling thread's share: clocks, the request's model, the task and the span's parent.
        body = request.json
        model = body.get("model") if isinstance(body, dict) else None
        self.runtime = runtime
        self.request_model: str | None = model if isinstance(model, str) else None
        self.stream = bool(request.stream or (isinstance(body, dict) and body.get("stream")))
        self.start = time.perf_counter()
        self.start_ns = time.time_ns()
        self.end_ns = 0
        self.latency = 0.0
        self.task = current_task()
        self.model: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read: int | None = None
        self.cache_write: int | None = None
        self.cost: float | None = None
        self.stop_reason: str | None = None
        self.tool_calls = 0
        self.ttft: float | None = None
        self.status: int | None = None
        self.error_type: str | None = None
        self.stream_end: str | None = None
        self.done = False
        # Our own span only when the SDK's is off. It is made whole when the outcome is, on the
        # monitor's thread, from the start time and the parent (this context) kept here (_spans.py).
        self.parent: otel_context.Context | None = otel_context.get_current()
        self.sdk_span: Span | None = None
        # An empty context holds no span (get_current_span gives the invalid, non-recording one).
        current = trace.get_current_span(self.parent) if self.parent else None
        if current is not None and current.is_recording():
            name = getattr(current, "name", "")
            if isinstance(name, str) and name.startswith("anthropic."):
                self.sdk_span, self.parent = current, None

    def _start_attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic"}
        if self.request_model:
            attrs["gen_ai.request.model"] = self.request_model
        return attrs

    # -- reading the response ---------------------------------------------------------------------
    def read_message(self, data: Any) -> None:
        """Usage, model, stop reason and tool-use count from a parsed or decoded Message."""
        if isinstance(data, dict):
            model, usage = data.get("model"), data.get("usage")
            stop, content = data.get("stop_reason"), data.get("content")
        else:  # the SDK's Message, on the calling thread of every buffered call: attribute reads only
            model = getattr(data, "model", None)
            usage = getattr(data, "usage", None)
            stop = getattr(data, "stop_reason", None)
            content = getattr(data, "content", None)
        if isinstance(model, str):
            self.model = model
        if usage is not None:
            self._usage(usage)
        if isinstance(stop, str):
            self.stop_reason = stop
        for block in content or ():
            kind = block.get("type") if isinstance(block, dict) else getattr(block, "type", None)
            if kind in ("tool_use", "server_tool_use"):
                self.tool_calls += 1

    def _usage(self, usage: Any) -> None:
        # ``type(v) is int``: a count, not a bool; a field absent or null keeps what was seen before
        # (a stream's message_delta repeats only some of message_start's usage). Usage fields of a
        # Message (or message_delta) to the _Call slots, unrolled (every call).
        if isinstance(usage, dict):
            read: Callable[[str], Any] = usage.get
            v = read("input_tokens")
            if type(v) is int:
                self.input_tokens = v
            v = read("output_tokens")
            if type(v) is int:
                self.output_tokens = v
            v = read("cache_read_input_tokens")
            if type(v) is int:
                self.cache_read = v
            v = read("cache_creation_input_tokens")
            if type(v) is int:
                self.cache_write = v
            return
        v = getattr(usage, "input_tokens", None)
        if type(v) is int:
            self.input_tokens = v
        v = getattr(usage, "output_tokens", None)
        if type(v) is int:
            self.output_tokens = v
        v = getattr(usage, "cache_read_input_tokens", None)
        if type(v) is int:
            self.cache_read = v
        v = getattr(usage, "cache_creation_input_tokens", None)
        if type(v) is int:
            self.cache_write = v

    def sse_event(self, event: bytes, data: bytes) -> None:
        """One kept server-sent event (not content deltas, which are never decoded)."""
        try:
            payload = json.loads(data)
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        if event == b"message_start":
            message = payload.get("message")
            if isinstance(message, dict):
                self.read_message(message)
        elif event == b"message_delta":
            usage = payload.get("usage")
            if isinstance(usage, dict):
                self._usage(usage)
            delta = payload.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self.stop_reason = delta["stop_reason"]
        elif event == b"content_block_start":
            block = payload.get("content_block")
            if isinstance(block, dict) and block.get("type") in ("tool_use", "server_tool_use"):
                self.tool_calls += 1
        elif event == b"error":
            error = payload.get("error")
            kind = error.get("type") if isinstance(error, dict) else None
            self.error_type = kind if isinstance(kind, str) else "stream_error"

    # -- the end ----------------------------------------------------------------------------------
    @property
    def failed(self) -> bool:
        return self.error_type is not None or (self.status is not None and self.status >= 400)

    def finish(self) -> None:
        """The call ended: stop its clocks and hand it to the monitor. Runs once.

        The calling thread does only what cannot wait: the clocks, the task's sums (the task may end
        right after) and the SDK's span (it ends when the call returns). The outcome and our own span
        are built on the monitor's thread (``outcome``), from the numbers kept here.
        """
        if self.done:
            return
        self.done = True
        self.latency = time.perf_counter() - self.start
        self.end_ns = time.time_ns()
        if self.task is not None or self.sdk_span is not None:
            # The task's sums and the SDK span's attributes are read before this call returns.
            outcome = self.outcome()
            if self.task is not None:
                self.task._add_call(outcome)
            self.runtime.monitor.submit(outcome)
            return
        self.runtime.monitor.submit(self)

    def outcome(self) -> Outcome:
        """The call's outcome, with its span emitted (ours) or annotated (the SDK's). Once per call."""
        failed = self.failed
        model = self.model or self.request_model
        task = self.task
        config = self.runtime.config
        outcome = Outcome(
            task=task.name if task is not None else "anthropic.messages",
            time=self.start_ns / 1e9,
            kind="call",
            service=config.service,
            model=model,
            request_model=self.request_model,
            success=not failed,
            latency_s=self.latency,
            ttft_s=self.ttft,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
            tool_calls=self.tool_calls if not failed else None,
            error_type=self.error_type or (str(self.status) if failed and self.status else None),
            stop_reason=self.stop_reason,
        )
        if not failed:
            outcome.cost_usd = prices_for(config).cost(
                model, self.input_tokens, self.output_tokens, self.cache_read, self.cache_write
            )
        if task is not None:
            outcome.task_id = task.task_id
            outcome.labels = dict(task.labels)
        if self.stream_end:
            outcome.labels["stream_end"] = self.stream_end
        ctx: SpanContext | None = None
        if self.parent is not None:
            start = self._start_attributes()
            span = CallSpan(
                self.runtime.telemetry.tracer,
                f"chat {self.request_model or 'unknown'}",
                start,
                self.start_ns,
                self.parent,
            )
            # Attributes only for a span that can keep them (no tracer set up: a no-op span).
            attrs: dict[str, Any] = {}
            if span.recording:
                attrs = dict(start)  # a copy: the sampler sees only the start attributes
                attrs.update(self._attributes(outcome))
                attrs[sc.STREAM_KEY] = self.runtime.monitor.stream_key(outcome)
            ctx = span.end(attrs, outcome.error_type or "error" if failed else None, self.end_ns)
        elif self.sdk_span is not None:
            ctx = self.sdk_span.get_span_context()
            if self.sdk_span.is_recording():
                self.sdk_span.set_attributes(self._attributes(outcome))
                self.sdk_span.set_attribute(sc.STREAM_KEY, self.runtime.monitor.stream_key(outcome))
        if ctx is not None and ctx.is_valid:
            outcome.trace_id = format(ctx.trace_id, "032x")
            outcome.span_id = format(ctx.span_id, "016x")
        return outcome

    def _attributes(self, outcome: Outcome) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if self.sdk_span is None:
            # The SDK's span carries these itself; ours needs them.
            if outcome.model:
                attrs["gen_ai.response.model"] = outcome.model
            if outcome.input_tokens is not None:
                # GenAI semconv (and the SDK's own span): input tokens include cached ones.
                cached = (outcome.cache_read_tokens or 0) + (outcome.cache_write_tokens or 0)
                attrs["gen_ai.usage.input_tokens"] = outcome.input_tokens + cached
            if outcome.cache_read_tokens is not None:
                attrs["gen_ai.usage.cache_read.input_tokens"] = outcome.cache_read_tokens
            if outcome.cache_write_tokens is not None:
                attrs["gen_ai.usage.cache_write.input_tokens"] = outcome.cache_write_tokens
            if outcome.output_tokens is not None:
                attrs["gen_ai.usage.output_tokens"] = outcome.output_tokens
            if outcome.stop_reason:
                attrs["gen_ai.response.finish_reasons"] = (outcome.stop_reason,)
            if self.status is not None:
                attrs["http.response.status_code"] = self.status
            if outcome.error_type:
                attrs["error.type"] = outcome.error_type
        # What the outcome needs beyond the GenAI attributes, so that a collector receiving the
        # span (driftwatch serve) rebuilds the same outcome.
        if outcome.latency_s is not None:
            attrs[sc.CALL_LATENCY_S] = outcome.latency_s
        if outcome.error_type:
            attrs[sc.CALL_ERROR_TYPE] = outcome.error_type
        if outcome.ttft_s is not None:
            attrs[sc.CALL_TTFT_S] = outcome.ttft_s
        if outcome.tool_calls is not None:
            attrs[sc.CALL_TOOL_CALLS] = outcome.tool_calls
        if outcome.cost_usd is not None:
            attrs[sc.CALL_COST_USD] = outcome.cost_usd
        if self.stream_end:
            attrs[sc.STREAM_END] = self.stream_end
        if self.task is not None:
            attrs[sc.TASK_NAME] = self.task.name
            if self.task.task_id:
                attrs[sc.TASK_ID] = self.task.task_id
            for k, v in self.task.labels.items():
                attrs[sc.TASK_LABEL + k] = v
        return attrs


class _SSEScanner:
    """Scans a server-sent-event byte stream for the few events that carry usage; bounded memory."""

    __slots__ = ("buffer", "call", "event", "skipping")

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.buffer = b""
        self.event = b""
        self.skipping = False

    def feed(self, chunk: bytes) -> None:
        call = self.call
        if call.ttft is None and chunk:
            call.ttft = time.perf_counter() - call.start
        data = self.buffer + chunk if self.buffer else chunk
        lines = data.split(b"\n")
        self.buffer = lines.pop()
        if len(self.buffer) > _MAX_LINE:
            self.buffer = b""
            self.skipping = True
        for raw in lines:
            if self.skipping:
                self.skipping = False
                continue
            line = raw.rstrip(b"\r")
            if line.startswith(b"event:"):
                self.event = line[6:].strip()
            elif line.startswith(b"data:") and self.event in _SSE_KEPT:
                call.sse_event(self.event, line[5:].strip())
            elif not line:
                self.event = b""


class _Watcher:
    """Observes a response body as it is read and finishes the call when reading ends."""

    def __init__(self, call: _Call, sse: bool) -> None:
        self.call = call
        self.scanner = _SSEScanner(call) if sse else None
        self.body: list[bytes] | None = None if sse else []
        self.size = 0

    def chunk(self, data: bytes) -> None:
        try:
            if self.scanner is not None:
                self.scanner.feed(data)
            elif self.body is not None:
                self.size += len(data)
                if self.size <= 8 << 20:
                    self.body.append(data)
                else:
                    self.body = None
        except Exception:
            log.debug("driftwatch: could not observe a response chunk", exc_info=True)

    def end(self, how: str) -> None:
        call = self.call
        if call.done:
            return
        try:
            call.stream_end = None if how == "read" else how
            if how == "failed" and call.error_type is None:
                call.error_type = "stream_failed"
            if self.body is not None and how == "read":
                call.read_message(json.loads(b"".join(self.body)))
        except Exception:
            log.debug("driftwatch: could not read a response body", exc_info=True)
        _safely(call.finish)


class _ObservedStream(httpx2.SyncByteStream):
    def __init__(self, body: httpx2.SyncByteStream, watcher: _Watcher) -> None:
        self._body = body
        self._watcher = watcher

    @property
    def elapsed(self) -> timedelta | None:
        return getattr(self._body, "elapsed", None)

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._body:
                self._watcher.chunk(chunk)
                yield chunk
        except Exception:
            self._watcher.end("failed")
            raise
        self._watcher.end("read")

    def close(self) -> None:
        self._watcher.end("closed")
        self._body.close()

    def __del__(self) -> None:
        # Dropped without being closed or read (the caller abandoned the stream).
        self._watcher.end("closed")


class _AsyncObservedStream(httpx2.AsyncByteStream):
    def __init__(self, body: httpx2.AsyncByteStream, watcher: _Watcher) -> None:
        self._body = body
        self._watcher = watcher

    @property
    def elapsed(self) -> timedelta | None:
        return getattr(self._body, "elapsed", None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._body:
                self._watcher.chunk(chunk)
                yield chunk
        except Exception:
            self._watcher.end("failed")
            raise
        self._watcher.end("read")

    async def aclose(self) -> None:
        self._watcher.end("closed")
        await self._body.aclose()

    def __del__(self) -> None:
        self._watcher.end("closed")


def _safely(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:
        _failed()
        return None


def _failed() -> None:
    """Log and count the exception being handled (never raised into the host)."""
    log.warning(
        "driftwatch: internal error while observing a call (the call itself is unaffected)", exc_info=True
    )
    runtime = get_runtime()
    if runtime is not None:
        runtime.monitor.stats.internal_errors += 1


def _is_sse(call: _Call, http: httpx2.Response) -> bool:
    if call.stream:
        return True
    headers = http.headers
    items = getattr(headers, "_list", None)  # (raw key, lower-case key, value), as Headers keeps them
    if type(items) is list:
        # headers.get("content-type") without decoding every header: its first value decides.
        for item in items:
            if type(item) is tuple and len(item) == 3 and item[1] == b"content-type":
                return bool(item[2].startswith(b"text/event-stream"))
        return False
    return headers.get("content-type", "").startswith("text/event-stream")


def _is_read(http: httpx2.Response) -> bool:
    return http.is_closed or hasattr(http, "_content")


def _buffered_message(call: _Call, response: Any) -> bool:
    """A successful, already-read JSON body: the message can be parsed whole right away."""
    http: httpx2.Response = response.http_response
    return http.status_code < 400 and not _is_sse(call, http) and _is_read(http)


class DriftwatchMiddleware(Middleware):
    """The SDK middleware behind ``watch``. Host errors propagate unchanged; its own are swallowed."""

    def handle(self, request: APIRequest, call_next: CallNext) -> Any:
        # _safely(self._begin, request) and _safely(self._responded, ...), inlined: every call.
        try:
            call = self._begin(request)
        except Exception:
            _failed()
            call = None
        try:
            response = call_next(request)
        except BaseException as exc:
            if call is not None:
                _safely(self._raised, call, exc)
            raise
        if call is not None:
            try:
                self._responded(call, response)
            except Exception:
                _failed()
        return response

    async def handle_async(self, request: APIRequest, call_next: AsyncCallNext) -> Any:
        call = _safely(self._begin, request)
        try:
            response = await call_next(request)
        except BaseException as exc:
            if call is not None:
                _safely(self._raised, call, exc)
            raise
        if call is not None:
            parsed = None
            if _safely(_buffered_message, call, response):
                # parse() caches on the response, so the SDK's own parse after us is free.
                try:
                    parsed = await response.parse()
                except Exception:
                    log.debug("driftwatch: could not parse a response", exc_info=True)
            _safely(self._responded, call, response, parsed)
        return response

    def _begin(self, request: APIRequest) -> _Call | None:
        if not _is_messages_call(request):
            return None
        runtime = get_runtime()
        if runtime is None:
            return None
        return _Call(runtime, request)

    def _raised(self, call: _Call, exc: BaseException) -> None:
        call.error_type = type(exc).__name__
        call.finish()

    def _responded(self, call: _Call, response: Any, parsed: Any = None) -> None:
        http: httpx2.Response = response.http_response
        call.status = http.status_code
        if http.status_code >= 400:
            call.finish()
            return
        sse = _is_sse(call, http)
        if _is_read(http):
            # Already read (a buffered body): observe it whole, now.
            if sse:
                watcher = _Watcher(call, sse)
                watcher.chunk(http.content)
                watcher.end("read")
            else:
                # parse() caches its result on the response, so the SDK's own parse of it after
                # the middleware returns is free: the body is decoded once, not twice. The async
                # path awaits it beforehand and passes it in.
                call.read_message(parsed if parsed is not None else response.parse())
                call.finish()
            return
        watcher = _Watcher(call, sse)
        stream = http.stream
        if isinstance(stream, httpx2.SyncByteStream):
            http.stream = _ObservedStream(stream, watcher)
        elif isinstance(stream, httpx2.AsyncByteStream):
            http.stream = _AsyncObservedStream(stream, watcher)
        else:
            call.finish()
