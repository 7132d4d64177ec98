"""The outcome model: one observed unit of agent work (an API call or a task) and its signals."""

from __future__ import annotations

import dataclasses
import math
import operator
import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

__all__ = [
    "AGENT_SIGNALS",
    "DEFAULT_SIGNALS",
    "EDIT_TOOLS",
    "READ_TOOLS",
    "SIGNALS",
    "Outcome",
    "OutcomeError",
    "PendingOutcome",
    "SignalKind",
    "format_time",
    "labels_key",
    "parse_outcome",
    "parse_time",
    "stream_key",
    "stream_labels",
]

SignalKind = Literal["binary", "log", "count", "linear"]

#: Every signal that detection watches, with how it is modelled. Latency, tokens and cost are
#: heavy-tailed, so they are watched on the log scale (``log1p`` for counts that can be zero).
#: ``tool_errors`` is summed into tasks but not watched by default: it is mostly zero, which no
#: log-scale model fits; a task's ``success`` already carries failures.
#:
#: The behavioural signals of an agent run (docs/agents.md) come last. ``turns``, ``thinking_tokens``
#: and ``reads_per_edit`` (Read/Grep/Glob uses per Edit/Write use, ``log1p`` because it can be 0) are
#: watched by default (``AGENT_SIGNALS``): an outcome without the field (an API call, a task that
#: never edited) simply has no such observation, so other streams are untouched. A state file taken
#: with fewer signals still restores (``check_snapshot``: signals may be added). ``retries``,
#: ``permission_denials`` (mostly zero, like ``tool_errors``), ``tool_error_rate`` (a fraction, mostly
#: zero) and ``api_latency_s`` (wall latency is watched already) rarely earn their false-alarm budget.
SIGNALS: Mapping[str, SignalKind] = {
    "success": "binary",
    "score": "linear",
    "latency_s": "log",
    "ttft_s": "log",
    "input_tokens": "count",
    "output_tokens": "count",
    "cost_usd": "log",
    "tool_calls": "count",
    "turns": "count",
    "thinking_tokens": "count",
    "reads_per_edit": "count",
    "retries": "count",
    "permission_denials": "count",
    "tool_error_rate": "linear",
    "api_latency_s": "log",
}

#: The behavioural signals of agent runs watched by default (docs/agents.md).
AGENT_SIGNALS: tuple[str, ...] = ("turns", "thinking_tokens", "reads_per_edit")
#: The signals watched when the config does not list ``signals``: the eight of every outcome, then
#: the agent runs' behavioural ones.
DEFAULT_SIGNALS: tuple[str, ...] = (
    "success",
    "score",
    "latency_s",
    "ttft_s",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "tool_calls",
    *AGENT_SIGNALS,
)

#: Tool names that look before an edit, and those that edit (Claude Code's built-in tools).
READ_TOOLS = frozenset({"Read", "Grep", "Glob"})
EDIT_TOOLS = frozenset({"Edit", "Write", "MultiEdit", "NotebookEdit"})

_NUMERIC_FIELDS = (
    "score",
    "latency_s",
    "ttft_s",
    "cost_usd",
    "api_latency_s",
    "reads_per_edit",
    "tool_error_rate",
)
_COUNT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "tool_calls",
    "tool_errors",
    "api_errors",
    "turns",
    "thinking_tokens",
    "retries",
    "permission_denials",
)
#: Counts by name: ``tool_uses`` (by tool name, the main agent's and its subagents') and
#: ``subagent_tool_uses`` (tool uses made inside subagents, by subagent type).
_COUNT_MAP_FIELDS = ("tool_uses", "subagent_tool_uses")
_STRING_FIELDS = ("task_id", "model", "request_model", "error_type", "stop_reason", "service", "kind")


class PendingOutcome(Protocol):
    """An outcome still to be built: what a collector queues when building it can wait.

    ``Monitor.submit`` takes one in place of an ``Outcome``; the monitor's thread calls ``outcome()``
    (once) before detection, so the agent's calling thread only pays for queuing it.
    """

    def outcome(self) -> Outcome: ...


class OutcomeError(ValueError):
    """An outcome record that cannot be read; the message names the field and the valid form."""


@dataclass(slots=True)
class Outcome:
    """One API call or one agent task, as driftwatch sees it. Never holds prompt or response content."""

    task: str
    time: float = field(default_factory=_time.time)
    kind: Literal["task", "call"] = "task"
    service: str = "unknown_service"
    task_id: str | None = None
    model: str | None = None
    request_model: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    success: bool | None = None
    score: float | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost_usd: float | None = None
    tool_calls: int | None = None
    tool_errors: int | None = None
    api_errors: int | None = None
    turns: int | None = None
    thinking_tokens: int | None = None
    retries: int | None = None
    permission_denials: int | None = None
    api_latency_s: float | None = None
    reads_per_edit: float | None = None
    tool_error_rate: float | None = None
    tool_uses: dict[str, int] = field(default_factory=dict)
    subagent_tool_uses: dict[str, int] = field(default_factory=dict)
    error_type: str | None = None
    stop_reason: str | None = None
    trace_id: str | None = None
    span_id: str | None = None

    def __setstate__(self, state: Any) -> None:
        """Unpickle; a field the pickled outcome predates (an older checkpoint) takes its default."""
        for f in dataclasses.fields(self):
            if f.default is not dataclasses.MISSING:
                object.__setattr__(self, f.name, f.default)
            elif f.default_factory is not dataclasses.MISSING:
                object.__setattr__(self, f.name, f.default_factory())
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) as object.__reduce_ex__ gives
            state = {**(state[0] or {}), **(state[1] or {})}
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def signal(self, name: str) -> float | None:
        """The value of signal ``name`` as a float, or None when it was not observed."""
        value = getattr(self, name)
        if value is None:
            return None
        return float(value)

    def to_dict(self) -> dict[str, Any]:
        """The outcome as a JSON-ready dict in the outcome JSONL form, without empty fields."""
        # One C call reads every field (the history encodes each outcome it keeps: this is per outcome).
        out: dict[str, Any] = {
            name: value
            for name, value in zip(_FIELD_NAMES, _read_fields(self), strict=True)
            if value is not None and (value or name not in _SKIP_EMPTY)
        }
        if "time" in out:
            out["time"] = format_time(out["time"])
        return out

    def derive(self) -> Outcome:
        """Fill the ratios not set from the counts they come from (see ``reads_per_edit``); returns self.

        ``reads_per_edit`` needs ``tool_uses`` with at least one edit (no edit: not observed; edits
        and no read: 0); ``tool_error_rate`` needs ``tool_calls > 0`` and ``tool_errors``.
        """
        if self.reads_per_edit is None and self.tool_uses:
            edits = sum(n for name, n in self.tool_uses.items() if name in EDIT_TOOLS)
            if edits:
                reads = sum(n for name, n in self.tool_uses.items() if name in READ_TOOLS)
                self.reads_per_edit = reads / edits
        if self.tool_error_rate is None and self.tool_calls and self.tool_errors is not None:
            self.tool_error_rate = min(1.0, self.tool_errors / self.tool_calls)
        return self


#: Field names in declaration order (``to_dict``'s key order) and one getter that reads them all.
_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Outcome))
_read_fields = operator.attrgetter(*_FIELD_NAMES)
#: Fields left out of ``to_dict`` when empty (not only when None).
_SKIP_EMPTY = frozenset(("labels", *_COUNT_MAP_FIELDS))


def format_time(epoch_s: float) -> str:
    """RFC 3339 in UTC with millisecond precision."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: object, where: str = "time") -> float:
    """Epoch seconds from an RFC 3339 string or a number; raises OutcomeError naming ``where``."""
    if isinstance(value, bool):
        raise OutcomeError(f"{where}: expected an RFC 3339 string or epoch seconds, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise OutcomeError(f"{where}: expected finite epoch seconds, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise OutcomeError(
                f"{where}: {value!r} is not a time; use RFC 3339 such as '2026-01-31T12:00:00Z' "
                "or epoch seconds such as 1769860800"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise OutcomeError(f"{where}: expected an RFC 3339 string or epoch seconds, got {type(value).__name__}")


def _as_bool(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "pass", "passed"):
            return True
        if lowered in ("false", "0", "no", "fail", "failed"):
            return False
    raise OutcomeError(f"{where}: expected true or false, got {value!r}")


def _as_float(value: object, where: str) -> float:
    if isinstance(value, bool):
        raise OutcomeError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise OutcomeError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise OutcomeError(f"{where}: expected a finite number, got {value!r}")
    return number


def _as_count(value: object, where: str) -> int:
    number = _as_float(value, where)
    if number < 0 or number != int(number):
        raise OutcomeError(f"{where}: expected a whole number >= 0, got {value!r}")
    return int(number)


def parse_outcome(
    record: Mapping[str, Any],
    *,
    where: str = "outcome",
    default_service: str = "unknown_service",
    keep_unknown_as_labels: bool = False,
) -> Outcome:
    """An Outcome from one record of the outcome JSONL form (design.md); raises OutcomeError.

    ``where`` prefixes every error (for example ``outcomes.jsonl:12``) so that the message says
    which line and which field is wrong, and what the valid form is.
    """
    if not isinstance(record, Mapping):
        raise OutcomeError(f"{where}: expected a JSON object, got {type(record).__name__}")
    task = record.get("task")
    if not isinstance(task, str) or not task:
        raise OutcomeError(f"{where}: field 'task' is required: a short task name such as \"fix-tests\"")
    if "time" not in record:
        raise OutcomeError(f"{where}: field 'time' is required: RFC 3339 or epoch seconds")
    outcome = Outcome(task=task, time=parse_time(record["time"], f"{where}: field 'time'"))
    outcome.service = default_service
    labels: dict[str, str] = {}
    raw_labels = record.get("labels")
    if raw_labels is not None:
        if not isinstance(raw_labels, Mapping):
            raise OutcomeError(f"{where}: field 'labels' must be a map of strings, got {raw_labels!r}")
        for key, value in raw_labels.items():
            if not isinstance(value, str | int | float | bool):
                raise OutcomeError(f"{where}: field 'labels.{key}' must be a string, got {value!r}")
            labels[str(key)] = str(value)
    known = {
        "task",
        "time",
        "labels",
        "success",
        *_NUMERIC_FIELDS,
        *_COUNT_FIELDS,
        *_COUNT_MAP_FIELDS,
        *_STRING_FIELDS,
    }
    for key, value in record.items():
        if value is None or key in ("task", "time", "labels"):
            continue
        place = f"{where}: field '{key}'"
        if key == "success":
            outcome.success = _as_bool(value, place)
        elif key in _NUMERIC_FIELDS:
            setattr(outcome, key, _as_float(value, place))
        elif key in _COUNT_FIELDS:
            setattr(outcome, key, _as_count(value, place))
        elif key in _COUNT_MAP_FIELDS:
            if not isinstance(value, Mapping):
                raise OutcomeError(f"{place}: expected a map of names to counts, got {value!r}")
            setattr(outcome, key, {str(k): _as_count(v, f"{place}.{k}") for k, v in value.items()})
        elif key in _STRING_FIELDS:
            if key == "kind" and value not in ("task", "call"):
                raise OutcomeError(f"{place}: expected 'task' or 'call', got {value!r}")
            setattr(outcome, key, str(value))
        elif key not in known and keep_unknown_as_labels:
            labels[key] = str(value)
    outcome.labels = labels
    return outcome


def stream_labels(outcome: Outcome, extra: Sequence[str] = ()) -> dict[str, str]:
    """The labels that name an outcome's stream: service and task (+ ``kind=call`` for API calls)."""
    labels = {"service": outcome.service, "task": outcome.task}
    if outcome.kind == "call":
        labels["kind"] = "call"
    for name in extra:
        value = outcome.labels.get(name)
        if value is not None:
            labels[name] = value
    return labels


def labels_key(labels: dict[str, str]) -> str:
    """The stream key of ``stream_labels``: ``service=…;task=…``."""
    return ";".join(f"{k}={v}" for k, v in labels.items())


def stream_key(outcome: Outcome, extra: Sequence[str] = ()) -> str:
    """The pre-joined stream key (``service=…;task=…``), exported as ``driftwatch.stream_key`` so that
    a Collector's load-balancing exporter can route every outcome of a stream to one instance."""
    return labels_key(stream_labels(outcome, extra))
