"""Local HTTP servers playing the Honeycomb Markers API and Grafana's annotations API.

Each checks the request the service documents and answers as it does: Honeycomb ``POST
/1/markers/{dataset}`` with ``X-Honeycomb-Team`` -> 201 and the marker with an ``id`` (401 without a key);
Grafana ``POST /api/annotations`` with ``Authorization: Bearer`` -> 200 ``{"message": "Annotation added",
"id": n}``. ``script`` queues canned (status, headers) answers ahead of the normal one.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HONEYCOMB_FIELDS = {"start_time", "end_time", "message", "type", "url"}
GRAFANA_FIELDS = {"time", "timeEnd", "tags", "text", "dashboardUID", "dashboardId", "panelId"}


def honeycomb_errors(path: str, headers: dict[str, str], body: Any) -> list[str]:
    """What is wrong with a Create Marker request (docs.honeycomb.io/api/markers)."""
    errors = []
    if not path.startswith("/1/markers/") or len(path) == len("/1/markers/"):
        errors.append(f"path must be /1/markers/{{datasetSlug}}, got {path!r}")
    if headers.get("content-type") != "application/json":
        errors.append("content-type must be application/json")
    if not isinstance(body, dict):
        return [*errors, "body must be a JSON object"]
    errors += [f"unknown field {k!r}" for k in sorted(body.keys() - HONEYCOMB_FIELDS)]
    for name in ("start_time", "end_time"):
        if name in body and (not isinstance(body[name], int) or isinstance(body[name], bool)):
            errors.append(f"{name!r} must be an integer (unix seconds)")
    for name in ("message", "type", "url"):
        if name in body and not isinstance(body[name], str):
            errors.append(f"{name!r} must be a string")
    if "message" not in body and "type" not in body:
        errors.append("fill in message or type")
    return errors


def grafana_errors(path: str, headers: dict[str, str], body: Any) -> list[str]:
    """What is wrong with a Create Annotation request (Grafana HTTP API, POST /api/annotations)."""
    errors = []
    if path != "/api/annotations":
        errors.append(f"path must be /api/annotations, got {path!r}")
    if headers.get("content-type") != "application/json":
        errors.append("content-type must be application/json")
    if not isinstance(body, dict):
        return [*errors, "body must be a JSON object"]
    errors += [f"unknown field {k!r}" for k in sorted(body.keys() - GRAFANA_FIELDS)]
    if not isinstance(body.get("text"), str) or not body["text"]:
        errors.append("'text' is required")
    for name in ("time", "timeEnd"):
        if name in body and (not isinstance(body[name], int) or body[name] < 10**12):
            errors.append(f"{name!r} must be epoch milliseconds (an integer)")
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        errors.append("'tags' must be a list of strings")
    if "dashboardUID" in body and not isinstance(body["dashboardUID"], str):
        errors.append("'dashboardUID' must be a string")
    return errors


class FakeMarkers:
    """One local Honeycomb or Grafana. ``requests`` holds (path, parsed body, headers) of every POST."""

    def __init__(self, kind: str, key: str = "secret-key") -> None:
        self.kind = kind
        self.key = key
        self.requests: list[tuple[str, Any, dict[str, str]]] = []
        self.invalid: list[list[str]] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                with service._lock:
                    service.requests.append((self.path, body, headers))
                    step = service.script.pop(0) if service.script else None
                if step is not None:
                    self._answer(step[0], {"error": "try again later"}, step[1])
                    return
                self._answer(*service.answer(self.path, headers, body))

            def _answer(self, code: int, reply: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(reply).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if self.kind == "honeycomb":
            if headers.get("x-honeycomb-team") != self.key:
                return 401, {"error": "unknown API key - check your credentials"}
            errors = honeycomb_errors(path, headers, body)
            if errors:
                self.invalid.append(errors)
                return 400, {"error": "; ".join(errors)}
            return 201, {**body, "id": f"{len(self.requests):06x}", "created_at": "2026-12-01T00:00:00Z"}
        if headers.get("authorization") != f"Bearer {self.key}":
            return 401, {"message": "Unauthorized"}
        errors = grafana_errors(path, headers, body)
        if errors:
            self.invalid.append(errors)
            return 400, {"message": "; ".join(errors)}
        return 200, {"message": "Annotation added", "id": len(self.requests)}

    def bodies(self) -> list[Any]:
        return [body for _, body, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
