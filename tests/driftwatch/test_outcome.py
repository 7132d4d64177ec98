"""Outcome records: parsing the JSONL form with errors that name the field and the valid form."""

from __future__ import annotations

import pytest

from driftwatch import Outcome, OutcomeError
from driftwatch._outcome import format_time, parse_outcome


def test_parses_every_field() -> None:
    """A full record parses with types converted and labels kept."""
    o = parse_outcome(
        {
            "time": "2026-01-31T12:00:00Z",
            "task": "fix",
            "task_id": 7,
            "model": "m",
            "success": "pass",
            "score": "0.5",
            "latency_s": 1.5,
            "input_tokens": 10,
            "output_tokens": 20.0,
            "cost_usd": 0.01,
            "tool_calls": 3,
            "labels": {"language": "go"},
        }
    )
    assert o.time == 1769860800.0 and o.task_id == "7" and o.success is True and o.score == 0.5
    assert o.output_tokens == 20 and o.labels == {"language": "go"}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"time": 1}, "field 'task' is required"),
        ({"task": "a"}, "field 'time' is required"),
        ({"task": "a", "time": "soon"}, "RFC 3339"),
        (
            {"task": "a", "time": 1, "output_tokens": -3},
            "field 'output_tokens': expected a whole number >= 0",
        ),
        ({"task": "a", "time": 1, "latency_s": "fast"}, "field 'latency_s': expected a number"),
        ({"task": "a", "time": 1, "labels": ["x"]}, "field 'labels' must be a map"),
    ],
)
def test_errors_name_where_and_what(record: dict[str, object], message: str) -> None:
    """Each error names the place, the field and the valid form."""
    with pytest.raises(OutcomeError, match=message) as info:
        parse_outcome(record, where="f.jsonl:4")
    assert str(info.value).startswith("f.jsonl:4: ")


def test_round_trip() -> None:
    """to_dict() gives back a record that parses to the same outcome."""
    o = Outcome(task="t", time=1769860800.0, success=False, output_tokens=5, labels={"a": "b"})
    again = parse_outcome(o.to_dict())
    assert again.to_dict() == o.to_dict()
    assert format_time(1769860800.0) == "2026-01-31T12:00:00.000Z"
