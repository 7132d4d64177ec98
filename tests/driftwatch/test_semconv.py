"""The telemetry schema is one: what driftwatch writes is named in ``_semconv`` and read back from it."""

from __future__ import annotations

import dataclasses
import inspect
import re
from types import ModuleType
from typing import Any

import anthropic
import httpx2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

import driftwatch
from driftwatch import _semconv as sc
from driftwatch._alerting import otel, prometheus
from driftwatch.collectors import _agent_sdk, _anthropic, _otlp_genai, _spans, _task
from driftwatch.collectors._otlp import OtlpDecoder
from tests.conftest import Harness, make_handler

#: Every ``driftwatch.*`` attribute name the schema defines (prefixes end with a dot).
NAMES = {v for k, v in vars(sc).items() if k.isupper() and isinstance(v, str) and v.startswith("driftwatch.")}
PREFIXES = {sc.TASK_LABEL, sc.STREAM_LABEL, sc.TASK_TOOL_USES, sc.TASK_SUBAGENT_TOOL_USES}
#: The modules that write or read the schema.
SIDES: list[ModuleType] = [_task, _agent_sdk, _anthropic, _spans, _otlp_genai, otel, prometheus]


def named(key: str) -> bool:
    return key in NAMES or any(key.startswith(p) and key != p for p in PREFIXES)


def test_no_module_spells_a_driftwatch_name_itself() -> None:
    """Writers and readers name attributes and metrics through ``_semconv``, never as string literals."""
    literal = re.compile(r'"(driftwatch\.[a-z_][a-z0-9_.]*)"')
    found = {
        f"{module.__name__}: {name}"
        for module in SIDES
        for line in inspect.getsource(module).splitlines()
        if not line.strip().startswith(">>>")  # doctests show the names they format
        for name in literal.findall(line)
    }
    assert found == set()


def test_metric_names_are_the_schema_s(harness: Harness) -> None:
    """Both sinks create exactly the schema's metrics; the OTLP sink takes its buckets from it."""
    assert "_alerting.prometheus" not in inspect.getsource(otel)  # buckets come from _semconv
    assert prometheus.LATENCY_BUCKETS is sc.LATENCY_BUCKETS
    sink = prometheus.PrometheusSink()
    expected = {"driftwatch_metrics_series_dropped_total"}
    for m in sc.METRICS:
        name = prometheus.metric_name(m.name, m.kind, m.unit)
        expected |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if m.kind == "histogram" else {name}
    assert sink.metric_names() == expected


def test_a_task_span_carries_only_schema_names_and_reads_back(harness: Harness) -> None:
    """Every ``driftwatch.*`` attribute a task span and its call span carry is one ``_semconv`` names, and
    ``driftwatch serve``'s decoder rebuilds the very outcomes from them."""
    http = httpx2.Client(transport=httpx2.MockTransport(make_handler(tools=1)))
    client = driftwatch.watch(
        anthropic.Anthropic(api_key="t", base_url="http://api.test", http_client=http, max_retries=0)
    )
    with driftwatch.task("fix-tests", task_id="t-1", language="rust") as t:
        client.messages.create(
            model="claude-sonnet-4-6", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        t.record(success=False, score=0.25, ttft_s=0.5, tool_errors=2, stop_reason="max_tokens")
    recorded = harness.flush()
    spans = harness.spans.get_finished_spans()
    written = {key for span in spans for key in (span.attributes or {}) if key.startswith("driftwatch.")}
    assert {sc.TASK_NAME, sc.TASK_SUCCESS, sc.TASK_SCORE, sc.TASK_TOOL_ERRORS, sc.CALL_TOOL_CALLS} <= written
    assert {key for key in written if not named(key)} == set()

    decoded = OtlpDecoder().traces(encode_spans(spans))
    assert decoded.rejected == 0
    by_span = {o.span_id: o for o in decoded.outcomes}

    def comparable(o: driftwatch.Outcome) -> dict[str, Any]:
        d = dataclasses.asdict(o)
        for varying in ("time", "latency_s", "service"):
            d.pop(varying)
        d["labels"].pop("provider", None)  # the decoder adds the GenAI provider to call streams
        return d

    assert len(recorded) == len(by_span) == 2
    for want in recorded:
        assert comparable(by_span[want.span_id]) == comparable(want)
