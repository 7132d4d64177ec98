"""Reading OTLP values: attributes to Python, each kind of value checked against its valid form,
and what a decode gives (``Decoded``, ``DecoderStats``).

Stateless helpers shared by the decoder (``collectors/_otlp.py``) and its readers of GenAI spans
(``_otlp_genai.py``) and Claude Code telemetry (``_otlp_claude.py``). A malformed value raises
``Bad`` with a message that names where it is, the attribute, the value and the valid form; the
decoder counts the item as rejected and goes on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from driftwatch._outcome import Outcome
from driftwatch.collectors._claude_code import split_model
from driftwatch.collectors._otlp_content import is_content

__all__ = [
    "MAX_COST",
    "MAX_ERRORS",
    "STATUS_ERROR",
    "Bad",
    "Decoded",
    "DecoderStats",
    "any_value",
    "attributes",
    "began",
    "boolean",
    "count",
    "event_time",
    "hex_id",
    "model_and_labels",
    "number",
    "pass_fail",
    "seconds",
    "stream_labels",
    "text",
]

MAX_ERRORS = 10
MAX_COUNT = 1e9
MAX_DURATION_S = 7 * 86400.0
MAX_COST = 1e5
MIN_TIME = 946684800.0  # 2000-01-01
MAX_TIME = 7258118400.0  # 2200-01-01
STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR

_PASS = {"pass", "passed", "true", "success", "succeeded", "correct", "relevant", "yes", "ok", "good"}
_FAIL = {"fail", "failed", "false", "failure", "incorrect", "not_relevant", "irrelevant", "no", "bad"}


class Bad(Exception):
    """A malformed item; the message names where and the valid form."""


@dataclass
class Decoded:
    """What one export request became: outcomes, plus how many items were malformed and why."""

    outcomes: list[Outcome] = field(default_factory=list)
    rejected: int = 0
    """Items (spans / log records / data points) that were malformed and skipped."""
    errors: list[str] = field(default_factory=list)
    """At most ``MAX_ERRORS`` messages, each naming where, e.g. ``resource_logs[0].scope_logs[1].
    log_records[3]: attribute 'duration_ms' = 'abc' is not a number; expected …``."""

    def reject(self, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)


@dataclass
class DecoderStats:
    """Counters since the decoder was made (they pickle with it)."""

    spans: int = 0
    logs: int = 0
    points: int = 0
    outcomes: int = 0
    rejected: int = 0
    sessions_dropped: int = 0
    """Items for a new Claude Code session refused because ``max_sessions`` were open."""
    late: int = 0
    """Items for a Claude Code prompt that had already been emitted (dropped)."""
    prompts_closed_early: int = 0
    prompts_dropped: int = 0
    """Items for a new prompt refused because ``MAX_OPEN_PROMPTS`` were open."""
    """Prompts emitted before their end because a session had too many open."""


def any_value(v: AnyValue) -> Any:
    """An ``AnyValue`` as Python (None when unset)."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":  # the common case first: most attributes are strings
        return v.string_value
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {x.key: any_value(x.value) for x in v.kvlist_value.values}
    return getattr(v, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    """A repeated ``KeyValue`` field as a dict (arrays as lists, key-value lists as dicts)."""
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        out[kv.key] = any_value(kv.value)
    return out


def _fmt(x: float) -> str:
    return f"{x:g}".replace("e+0", "e").replace("e+", "e")


def number(attrs: Mapping[str, Any], key: str, where: str, lo: float, hi: float) -> float | None:
    """A number (Claude Code sends some as strings) within [lo, hi], or None when absent."""
    value = attrs.get(key)
    if value is None or value == "":
        return None
    if type(value) is int and lo <= value <= hi:  # the common case (OTLP int_value), same result as below
        return float(value)
    if isinstance(value, bool):
        got = math.nan
    elif isinstance(value, int | float):
        got = float(value)
    elif isinstance(value, str):
        try:
            got = float(value.strip())
        except ValueError:
            got = math.nan
    else:
        got = math.nan
    if math.isnan(got) and not (isinstance(value, float) and math.isnan(value)):
        raise Bad(f"{where}: attribute '{key}' = {value!r} is not a number; expected a number such as 12.5")
    if not math.isfinite(got) or not lo <= got <= hi:
        raise Bad(
            f"{where}: attribute '{key}' = {value!r} is out of range; "
            f"expected a number {_fmt(lo)} to {_fmt(hi)}"
        )
    return got


def count(attrs: Mapping[str, Any], key: str, where: str) -> int | None:
    value = attrs.get(key)
    if value is None:
        return None
    if type(value) is int and 0 <= value <= MAX_COUNT:  # the common case, same result as below
        return value
    got = number(attrs, key, where, 0, MAX_COUNT)
    if got is None:
        return None
    if got != int(got):
        raise Bad(f"{where}: attribute '{key}' = {attrs[key]!r} is not a whole number; expected a count >= 0")
    return int(got)


def seconds(attrs: Mapping[str, Any], key: str, where: str, ms: bool = False) -> float | None:
    """A duration in seconds; ``ms``: the attribute is in milliseconds (Claude Code's ``*_ms``)."""
    per_second = 1000.0 if ms else 1.0
    got = number(attrs, key, where, 0, MAX_DURATION_S * per_second)
    return None if got is None else got / per_second


def boolean(attrs: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise Bad(f"{where}: attribute '{key}' = {value!r} is not a boolean; expected true or false")


def text(attrs: Mapping[str, Any], key: str) -> str | None:
    value = attrs.get(key)
    if value is None:
        return None
    if type(value) is str:  # the common case, same result as below
        stripped = value.strip()
        return stripped[:256] if stripped else None
    if isinstance(value, bool):
        return None
    if isinstance(value, str | int | float):
        stripped = str(value).strip()
        return stripped[:256] if stripped else None
    return None


def event_time(ns: int, fallback_ns: int, where: str, what: str = "time_unix_nano") -> float:
    t = (ns or fallback_ns) / 1e9
    if not MIN_TIME <= t <= MAX_TIME:
        raise Bad(
            f"{where}: {what} = {ns} is not a plausible event time; expected Unix nanoseconds "
            "between 2000 and 2200, such as 1795312088671000000"
        )
    return t


def hex_id(data: bytes) -> str | None:
    return data.hex() if data and any(data) else None


def model_and_labels(name: str | None) -> tuple[str | None, dict[str, str]]:
    if not name:
        return None, {}
    bare, variant = split_model(name)
    return bare, ({"context_window": variant} if variant else {})


def began(t: float, values: Mapping[str, Any]) -> float:
    """Claude Code writes an event when the request or tool use ends: it began ``duration`` earlier."""
    latency = values.get("latency_s")
    return t - latency if isinstance(latency, float) else t


def pass_fail(label: str | None) -> bool | None:
    if label is None:
        return None
    lowered = label.strip().lower()
    if lowered in _PASS:
        return True
    if lowered in _FAIL:
        return False
    return None


def stream_labels(names: Iterable[str], attrs: Mapping[str, Any], res: Mapping[str, Any]) -> dict[str, str]:
    """Version markers and the configured stream labels ``names`` (item attribute, else resource).

    Content attributes (``is_content``) are never read, even when configured.
    """
    labels: dict[str, str] = {}
    version = text(attrs, "app.version") or text(res, "app.version") or text(res, "service.version")
    if version:
        labels["app.version"] = version[:128]
    for name in names:
        if is_content(name):
            continue
        value = text(attrs, name) or text(res, name)
        if value is not None:
            labels[name] = value[:128]
    return labels
