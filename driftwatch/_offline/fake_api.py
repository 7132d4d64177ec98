"""A local fake Anthropic Messages API (``POST /v1/messages``), for the demo and integration tests.

It speaks the real wire format (JSON and server-sent events) so the real ``anthropic`` SDK runs
against it unchanged. Its behaviour is set per request by the ``x-fake-*`` headers and by the
server's ``profile`` function, which the demo swaps to simulate a silent serving change.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeMessagesAPI", "Reply"]


class Reply(dict[str, Any]):
    """What the fake server answers: ``model``, ``output_tokens``, ``tool_calls``, ``status``.

    Optional: ``input_tokens`` (else estimated from the request's size), ``error_type``, and
    ``tool_name`` / ``tool_input`` for the tool uses (default ``run_tests`` with no input).
    """


def _default_profile(request: dict[str, Any], headers: dict[str, str]) -> Reply:
    return Reply(model=request.get("model", "claude-sonnet-4-5"), output_tokens=64, tool_calls=0, status=200)


class FakeMessagesAPI:
    """Runs the fake API on 127.0.0.1 on a free port in a background thread (``with`` or start/stop)."""

    def __init__(self, profile: Callable[[dict[str, Any], dict[str, str]], Reply] | None = None) -> None:
        self.profile = profile or _default_profile
        self.requests = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # SSE chunks go out as written, not 40 ms later

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                # Claude Code probes the base URL with ``HEAD /`` before its first request.
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                api.requests += 1
                reply = api.profile(body, {k.lower(): v for k, v in self.headers.items()})
                delay = float(self.headers.get("x-fake-delay", "0") or 0)
                if delay:
                    time.sleep(delay)
                if reply.get("status", 200) != 200:
                    self._json(
                        reply["status"],
                        {
                            "type": "error",
                            "error": {
                                "type": reply.get("error_type", "overloaded_error"),
                                "message": "fake error",
                            },
                        },
                    )
                    return
                message = _message(body, reply)
                if body.get("stream"):
                    self._sse(message)
                else:
                    self._json(200, message)

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", f"req_fake_{api.requests}")
                self.end_headers()
                self.wfile.write(data)

            def _sse(self, message: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                # Clients report it (Claude Code's ``request_id``); the real API sends it on streams too.
                self.send_header("request-id", f"req_fake_{api.requests}")
                self.end_headers()
                for event, data in _events(message):
                    chunk = f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeMessagesAPI:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-messages-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeMessagesAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _message(request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": "ok " * 3}]
    message_id = f"{random.getrandbits(48):012x}"
    for i in range(int(reply.get("tool_calls", 0))):
        name, tool_input = reply.get("tool_name", "run_tests"), reply.get("tool_input", {})
        # Unique across messages, as the real API's: an agent tells its tool uses apart by id.
        tool_id = f"toolu_{message_id}_{i}"
        content.append({"type": "tool_use", "id": tool_id, "name": name, "input": tool_input})
    input_tokens = reply.get("input_tokens")
    if input_tokens is None:
        input_tokens = sum(len(json.dumps(m)) // 4 for m in request.get("messages", [])) + 10
    return {
        "id": f"msg_{message_id}",
        "type": "message",
        "role": "assistant",
        "model": reply.get("model", request.get("model")),
        "content": content,
        "stop_reason": "tool_use" if reply.get("tool_calls") else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": int(input_tokens), "output_tokens": int(reply.get("output_tokens", 64))},
    }


def _events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    for i, block in enumerate(message["content"]):
        if block["type"] == "text":
            events.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": i,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "text_delta", "text": block["text"]},
                    },
                )
            )
        else:
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}},
                )
            )
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])},
                    },
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events
