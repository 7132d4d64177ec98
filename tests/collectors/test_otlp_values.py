"""OTLP attribute readers (fast paths equal the general path) and the check-only mode (same verdicts)."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

from driftwatch import _semconv as sc
from driftwatch._config import Config
from driftwatch.collectors import _otlp_genai
from driftwatch.collectors._otlp import OtlpDecoder
from driftwatch.collectors._otlp_values import Bad as _Bad
from driftwatch.collectors._otlp_values import attributes as _attrs
from driftwatch.collectors._otlp_values import count as _count
from driftwatch.collectors._otlp_values import number as _number
from driftwatch.collectors._otlp_values import text as _text


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


_SOURCE = inspect.getsource(_otlp_genai)
#: Every attribute the GenAI span reader names: upstream names as literals, driftwatch's from _semconv.
_NAMED = sorted(
    set(re.findall(r'"((?:gen_ai|http|error|anthropic)\.[a-z0-9_.]+)"', _SOURCE))
    | {getattr(sc, name) for name in re.findall(r"\bsc\.([A-Z_]+)\b", _SOURCE)}
)
_BAD = [
    AnyValue(string_value="abc"),
    AnyValue(int_value=-1),
    AnyValue(int_value=2**40),
    AnyValue(double_value=2.5),
    AnyValue(double_value=1e30),
    AnyValue(bool_value=True),
    AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)])),
]


def call_spans() -> ExportTraceServiceRequest:
    """Call spans each carrying one malformed value of one attribute the decoder names, plus a valid one."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    base = [
        KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="chat")),
        KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="claude-sonnet-4-6")),
        KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=10)),
    ]
    for n, (key, bad) in enumerate((key, bad) for key in _NAMED for bad in _BAD):
        span = spans.add(name="chat", span_id=(n + 1).to_bytes(8, "big"), trace_id=b"\x01" * 16)
        span.start_time_unix_nano = 1_795_312_088_000_000_000 + n
        span.end_time_unix_nano = span.start_time_unix_nano + 10**9
        span.attributes.extend([kv for kv in base if kv.key != key])
        span.attributes.add(key=key, value=bad)
    spans.add(name="chat", span_id=b"\x02" * 8, start_time_unix_nano=1, end_time_unix_nano=2)  # bad time
    spans.add(name="chat", start_time_unix_nano=1_795_312_088_000_000_000).attributes.extend(base)
    return request


def test_check_only_rejects_exactly_what_a_full_decode_rejects() -> None:
    """The receiver's cheap item check names the same malformed items, in the same words, as a full decode."""
    assert len(_NAMED) > 30  # the attribute names were found in the decoder's source
    request = call_spans()
    full = OtlpDecoder(Config()).traces(request)
    checked = OtlpDecoder(Config(), check_only=True).traces(request)
    assert full.rejected > 50 and len(full.outcomes) > 100  # both kinds of span are there
    assert (checked.rejected, checked.errors) == (full.rejected, full.errors)
    assert checked.outcomes == []
    for n in range(len(request.resource_spans[0].scope_spans[0].spans)):  # each item alone: all its words
        one = ExportTraceServiceRequest()
        one.resource_spans.add().scope_spans.add().spans.append(
            request.resource_spans[0].scope_spans[0].spans[n]
        )
        a, b = OtlpDecoder(Config()).traces(one), OtlpDecoder(Config(), check_only=True).traces(one)
        assert (a.rejected, a.errors) == (b.rejected, b.errors)
