"""OTLP attribute readers: the fast paths for plain ints and strings give what the general path gives."""

from __future__ import annotations

from typing import Any

import pytest
from driftwatch.collectors._otlp import _attrs, _Bad, _count, _number, _text
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue


def attrs(value: AnyValue) -> dict[str, Any]:
    """One attribute ``k`` decoded from real protobuf, as the decoder sees it."""
    return _attrs([KeyValue(key="k", value=value)])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (AnyValue(int_value=0), 0),
        (AnyValue(int_value=1_000_000_000), 1_000_000_000),
        (AnyValue(string_value=" 12 "), 12),
        (AnyValue(double_value=3.0), 3),
    ],
)
def test_count_accepts_whole_numbers_in_range(value: AnyValue, expected: int) -> None:
    """A count is an int within 0..1e9, whether sent as an int, a whole double or a numeric string."""
    got = _count(attrs(value), "k", "here")
    assert got == expected and type(got) is int


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (AnyValue(int_value=1_000_000_001), "out of range"),
        (AnyValue(int_value=-1), "out of range"),
        (AnyValue(int_value=2**62), "out of range"),
        (AnyValue(bool_value=True), "not a number"),
        (AnyValue(double_value=2.5), "not a whole number"),
        (AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)])), "not a number"),
    ],
)
def test_count_rejects_what_is_not_a_count_and_names_it(value: AnyValue, message: str) -> None:
    """Out-of-range ints, booleans, fractions and arrays are rejected with a message naming the attribute."""
    with pytest.raises(_Bad, match=rf"here: attribute 'k' = .* {message}"):
        _count(attrs(value), "k", "here")


def test_number_fast_path_keeps_the_bounds_and_the_type() -> None:
    """An int within the bounds reads as a float; one outside them is rejected as before."""
    assert _number(attrs(AnyValue(int_value=7)), "k", "here", 0, 10) == 7.0
    assert type(_number(attrs(AnyValue(int_value=7)), "k", "here", 0, 10)) is float
    with pytest.raises(_Bad, match="out of range"):
        _number(attrs(AnyValue(int_value=11)), "k", "here", 0, 10)
    assert _number({}, "k", "here", 0, 10) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (AnyValue(string_value="  claude-sonnet-4-6 "), "claude-sonnet-4-6"),
        (AnyValue(string_value="   "), None),
        (AnyValue(string_value="x" * 300), "x" * 256),
        (AnyValue(int_value=42), "42"),
        (AnyValue(bool_value=True), None),
        (AnyValue(), None),
    ],
)
def test_text_strips_truncates_and_skips_non_text(value: AnyValue, expected: str | None) -> None:
    """Text is stripped and cut to 256 characters; blanks, booleans and empty values read as absent."""
    assert _text(attrs(value), "k") == expected
