"""Local HTTP servers playing PagerDuty Events API v2, a Slack incoming webhook and a plain webhook.

Each checks the payload shape the service documents and answers as the service does: PagerDuty 202
with ``{"status": "success", "message": "Event processed", "dedup_key": ...}`` (400 with ``errors``
for a bad event), Slack 200 ``ok`` (400 ``invalid_blocks`` for bad Block Kit). ``script`` queues
canned answers (status, headers, or a hang) ahead of the normal one, to play outages.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SEVERITIES = {"critical", "error", "warning", "info"}
EVENT_ACTIONS = {"trigger", "acknowledge", "resolve"}
TEXT_TYPES = {"plain_text", "mrkdwn"}
ALERT_KEYS = {
    "id",
    "status",
    "stream",
    "signal",
    "direction",
    "detected_at",
    "change_at",
    "baseline",
    "current",
}


def pagerduty_errors(event: Any) -> list[str]:
    """What is wrong with an Events API v2 alert event (developer.pagerduty.com, Send an Alert Event)."""
    if not isinstance(event, dict):
        return ["event must be a JSON object"]
    errors = []
    if not isinstance(event.get("routing_key"), str) or not event["routing_key"]:
        errors.append("'routing_key' is required (a string)")
    action = event.get("event_action")
    if action not in EVENT_ACTIONS:
        errors.append(f"'event_action' must be one of {sorted(EVENT_ACTIONS)}, got {action!r}")
    key = event.get("dedup_key")
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and key is None:
        errors.append(f"'dedup_key' is required for {action}")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is required for trigger (an object)"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not 0 < len(summary) <= 1024:
            errors.append("'payload.summary' is required, a string of 1 to 1024 characters")
        if not isinstance(payload.get("source"), str) or not payload["source"]:
            errors.append("'payload.source' is required (a string)")
        if payload.get("severity") not in SEVERITIES:
            errors.append(f"'payload.severity' must be one of {sorted(SEVERITIES)}")
        if "timestamp" in payload:
            try:
                datetime.fromisoformat(str(payload["timestamp"]).replace("Z", "+00:00"))
            except ValueError:
                errors.append("'payload.timestamp' must be ISO 8601")
        for name in ("component", "group", "class"):
            if name in payload and not isinstance(payload[name], str):
                errors.append(f"'payload.{name}' must be a string")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            errors.append("'payload.custom_details' must be an object")
    return errors


def _text_errors(obj: Any, where: str, limit: int, types: set[str] = TEXT_TYPES) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in types:
        return [f"{where}: a text object of type {sorted(types)}"]
    text = obj.get("text")
    if not isinstance(text, str) or not 0 < len(text) <= limit:
        return [f"{where}.text: a string of 1 to {limit} characters"]
    return []


def slack_errors(message: Any) -> list[str]:
    """What is wrong with an incoming-webhook message in Block Kit (api.slack.com/reference/block-kit)."""
    if not isinstance(message, dict):
        return ["message must be a JSON object"]
    errors = []
    if not isinstance(message.get("text"), str) or not message["text"]:
        errors.append("'text' fallback is required when sending blocks")
    blocks = message.get("blocks")
    if not isinstance(blocks, list) or not 0 < len(blocks) <= 50:
        return [*errors, "'blocks' must be a list of 1 to 50 blocks"]
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "header":
            errors += _text_errors(block.get("text"), f"{where}.text", 150, {"plain_text"})
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"{where}: a section needs text or fields")
            if "text" in block:
                errors += _text_errors(block["text"], f"{where}.text", 3000)
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not 0 < len(fields) <= 10:
                    errors.append(f"{where}.fields: 1 to 10 text objects")
                else:
                    for j, f in enumerate(fields):
                        errors += _text_errors(f, f"{where}.fields[{j}]", 2000)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 0 < len(elements) <= 10:
                errors.append(f"{where}.elements: 1 to 10 elements")
            else:
                for j, e in enumerate(elements):
                    errors += _text_errors(e, f"{where}.elements[{j}]", 3000)
        elif kind != "divider":
            errors.append(f"{where}: unexpected block type {kind!r}")
    return errors


def webhook_errors(alert: Any) -> list[str]:
    """The Alert JSON of design.md."""
    if not isinstance(alert, dict):
        return ["body must be a JSON object"]
    return [f"missing {k!r}" for k in sorted(ALERT_KEYS - alert.keys())]


class FakeService:
    """One local endpoint. ``requests`` holds (time, parsed JSON body, headers) of every POST."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.requests: list[tuple[float, Any, dict[str, str]]] = []
        self.invalid: list[list[str]] = []
        self.script: list[tuple[int, dict[str, str]] | str] = []
        self.release = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                at = time.monotonic()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                service.requests.append((at, body, dict(self.headers)))
                step = service.script.pop(0) if service.script else None
                if step == "hang":
                    service.release.wait(10)
                    return
                if isinstance(step, tuple):
                    code, headers = step
                    self._answer(code, b"try again later", "text/plain", headers)
                    return
                self._answer(*service.answer(body, self.headers.get("content-type")))

            def _answer(
                self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        path = {"pagerduty": "/v2/enqueue", "slack": "/services/T000/B000/XXXX", "webhook": "/hook"}[
            self.kind
        ]
        return f"http://{host!s}:{port}{path}"

    def answer(self, body: Any, ctype: str | None) -> tuple[int, bytes, str]:
        if ctype != "application/json":
            self.invalid.append([f"content-type {ctype!r}"])
            return 415, b"unsupported media type", "text/plain"
        if self.kind == "pagerduty":
            errors = pagerduty_errors(body)
            if errors:
                self.invalid.append(errors)
                reply = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
                return 400, json.dumps(reply).encode(), "application/json"
            reply = {"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key")}
            return 202, json.dumps(reply).encode(), "application/json"
        if self.kind == "slack":
            errors = slack_errors(body)
            if errors:
                self.invalid.append(errors)
                return 400, b"invalid_blocks", "text/plain"
            return 200, b"ok", "text/plain"
        errors = webhook_errors(body)
        if errors:
            self.invalid.append(errors)
            return 400, b"bad alert", "text/plain"
        return 200, b"", "text/plain"

    def bodies(self) -> list[Any]:
        return [body for _, body, _ in self.requests]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
