"""The read API of a running ``driftwatch serve`` (docs/serve.md), for ``status``, ``compare``, ``report``."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from driftwatch._outcome import Outcome, OutcomeError, parse_outcome

__all__ = ["DEFAULT_URL", "RemoteError", "add_remote_arguments", "fetch_outcomes", "get_json"]

#: The local service: ``driftwatch serve``'s default OTLP/HTTP address.
DEFAULT_URL = "http://127.0.0.1:4318"
#: Outcomes per page asked for (the service's most).
PAGE = 10_000
_CURSOR = "X-Driftwatch-Cursor"


class RemoteError(Exception):
    """The service could not be read; the message says why and what to do."""


def add_remote_arguments(parser: Any, *, optional: bool) -> None:
    """``--url`` and ``--token``; with ``optional``, ``--url`` alone means the local service."""
    if optional:
        parser.add_argument(
            "--url",
            nargs="?",
            const=DEFAULT_URL,
            metavar="URL",
            help="read the outcomes from a running `driftwatch serve` instead of a file "
            f"(--url alone: {DEFAULT_URL})",
        )
    else:
        parser.add_argument(
            "--url", default=DEFAULT_URL, metavar="URL", help=f"the service (default {DEFAULT_URL})"
        )
    parser.add_argument(
        "--token",
        default=None,
        metavar="TOKEN",
        help="the service's bearer token (default: the DRIFTWATCH_TOKEN environment variable)",
    )


def _request(url: str, path: str, token: str | None, params: dict[str, str]) -> tuple[bytes, Any]:
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise RemoteError(f"--url {url!r}: expected http://HOST:PORT or https://HOST:PORT")
    query = urllib.parse.urlencode(params)
    request = urllib.request.Request(f"{base}{path}" + (f"?{query}" if query else ""))
    token = token if token is not None else os.environ.get("DRIFTWATCH_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read(), response.headers
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        if exc.code == 401:
            detail = "the token is missing or wrong; pass --token or set DRIFTWATCH_TOKEN"
        elif exc.code == 404:
            detail = "not found; is this a driftwatch serve with the read API?"
        raise RemoteError(f"{base}{path}: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RemoteError(
            f"{base}: cannot connect ({reason}); is `driftwatch serve` running there?"
        ) from None


def get_json(url: str, path: str, token: str | None = None, **params: str) -> Any:
    """One JSON endpoint of the read API."""
    body, _ = _request(url, path, token, params)
    return json.loads(body)


def fetch_outcomes(url: str, token: str | None = None, select: str = "") -> list[Outcome]:
    """Every outcome the service keeps that ``select`` (compare's selector syntax) picks, oldest first."""
    out: list[Outcome] = []
    params = {"limit": str(PAGE)}
    if select:
        params["select"] = select
    while True:
        body, headers = _request(url, "/api/v1/outcomes", token, params)
        for line in body.decode("utf-8").splitlines():
            if not line.strip():
                continue
            try:
                out.append(parse_outcome(json.loads(line), where=f"{url} outcome {len(out) + 1}"))
            except (OutcomeError, ValueError) as exc:
                print(f"driftwatch: skipped {exc}", file=sys.stderr)
        cursor = headers.get(_CURSOR)
        if not cursor:
            return out
        params["cursor"] = cursor
