"""Per-call overhead on the real anthropic SDK (mock transport): driftwatch against its peers.

One run, same process. Many short rounds, every arm once per round in a shuffled order (seeded);
each arm's cost in a round is paired with the bare client's in the same round, and the figure is
the median of those paired differences, with a 95% bootstrap interval over rounds for the ratio.
Pairing within a round cancels the slow swings of a shared machine. Arms:
  bare        the client as users make it (no tracer provider registered: the SDK's spans are no-ops)
  sdk-otel    the SDK's own tracing: ``open_telemetry={"tracer_provider": tp}``
  openllmetry ``opentelemetry-instrumentation-anthropic`` (OpenLLMetry), instrumented for its round only
  driftwatch  ``driftwatch.watch()`` with detection running on its thread and the OTel sink on
Every traced arm gets its own real TracerProvider with a BatchSpanProcessor and a no-op exporter, so
span creation, attributes and batching are paid and nothing leaves the process. Prints each added
cost over bare and the ratio driftwatch-added / OpenLLMetry-added against the goal (<= 0.15x).

The driftwatch arm's time includes waiting for its monitor to process that round's outcomes
(``monitor.flush()``), so detection is counted in the round that caused it.

Run: make bench   (or: .venv/bin/python -P benchmarks/overhead.py --calls 200 --rounds 60)
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

import anthropic
import httpx2
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import driftwatch
from driftwatch._alerting.otel import Telemetry

GOAL = 0.15
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [{"type": "text", "text": "ok"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 40},
}
BODY = json.dumps(MESSAGE).encode()


def handler(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, headers={"content-type": "application/json"}, content=BODY)


def make_client(**options: Any) -> anthropic.Anthropic:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return anthropic.Anthropic(
        api_key="bench", base_url="http://api.test", http_client=http, max_retries=0, **options
    )


class CountingNoopExporter(SpanExporter):
    """Accepts every batch and only counts it: proves each arm really made spans."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def traced_provider() -> tuple[TracerProvider, CountingNoopExporter]:
    exporter = CountingNoopExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


CALL_PATH: dict[int, list[float]] = {}  # id(client) -> main-thread CPU us per call, per round


def per_call_us(
    client: anthropic.Anthropic, calls: int, settle: Callable[[], object] | None = None
) -> tuple[float, float]:
    """Wall time and process CPU time (all threads: detection and span batching included) per call.

    ``settle`` runs inside the timing after the calls (the driftwatch arm waits for its monitor).
    The calling thread's own CPU time goes to CALL_PATH: the part the agent waits for.
    """
    messages = [{"role": "user", "content": "hi"}]
    start, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
    for _ in range(calls):
        client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=messages)  # type: ignore[arg-type]
    own_us = (time.thread_time() - own) / calls * 1e6
    if settle is not None:
        settle()
    CALL_PATH.setdefault(id(client), []).append(own_us)
    return (time.perf_counter() - start) / calls * 1e6, (time.process_time() - cpu) / calls * 1e6


def paired(times: dict[str, list[float]], arm: str) -> list[float]:
    """The arm's cost minus the bare client's, round by round."""
    return [a - b for a, b in zip(times[arm], times["bare"], strict=True)]


def ratio_interval(
    times: dict[str, list[float]], rng: random.Random, resamples: int = 2000
) -> tuple[float, float]:
    """95% bootstrap interval (over rounds) of median driftwatch-added / median OpenLLMetry-added."""
    dw, ollm = paired(times, "driftwatch"), paired(times, "openllmetry")
    rounds = range(len(dw))
    ratios = []
    for _ in range(resamples):
        pick = [rng.choice(rounds) for _ in rounds]
        den = statistics.median(ollm[i] for i in pick)
        if den > 0:
            ratios.append(statistics.median(dw[i] for i in pick) / den)
    ratios.sort()
    if not ratios:
        return float("inf"), float("inf")
    return ratios[int(0.025 * len(ratios))], ratios[int(0.975 * len(ratios)) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200, help="calls per arm per round")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--seed", type=int, default=20261201, help="arm order and bootstrap")
    args = parser.parse_args()

    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor

    sdk_tp, sdk_spans = traced_provider()
    ollm_tp, ollm_spans = traced_provider()
    dw_tp, dw_spans = traced_provider()
    instrumentor = AnthropicInstrumentor()

    def openllmetry_round(calls: int) -> tuple[float, float]:
        # It patches the SDK's classes (wrapt), so it is on only while its own round runs.
        instrumentor.instrument(tracer_provider=ollm_tp)
        try:
            return per_call_us(ollm_client, calls)
        finally:
            instrumentor.uninstrument()

    runtime = driftwatch.configure(telemetry=Telemetry(tracer_provider=dw_tp), console=False)
    bare = make_client()
    sdk = make_client(open_telemetry={"tracer_provider": sdk_tp})
    ollm_client = make_client()
    watched = driftwatch.watch(make_client())
    clients = {"bare": bare, "sdk-otel": sdk, "openllmetry": ollm_client, "driftwatch": watched}
    arms: dict[str, Callable[[int], tuple[float, float]]] = {
        "bare": lambda n: per_call_us(bare, n),
        "sdk-otel": lambda n: per_call_us(sdk, n),
        "openllmetry": openllmetry_round,
        "driftwatch": lambda n: per_call_us(watched, n, settle=runtime.monitor.flush),
    }
    for run in arms.values():
        run(200)  # warm every arm
    wall: dict[str, list[float]] = {name: [] for name in arms}
    cpu: dict[str, list[float]] = {name: [] for name in arms}
    rng = random.Random(args.seed)
    for _ in range(args.rounds):
        order = list(arms)
        rng.shuffle(order)
        for name in order:
            w, c = arms[name](args.calls)
            wall[name].append(w)
            cpu[name].append(c)
    runtime.monitor.flush(10)
    stats = runtime.monitor.stats
    for tp in (sdk_tp, ollm_tp, dw_tp):
        tp.force_flush()
    print(
        f"anthropic {anthropic.__version__}, opentelemetry-instrumentation-anthropic "
        f"{version('opentelemetry-instrumentation-anthropic')}, "
        f"opentelemetry-sdk {version('opentelemetry-sdk')}; "
        f"{args.rounds} rounds x {args.calls} calls per arm, MockTransport"
    )
    spans = {"sdk-otel": sdk_spans.spans, "openllmetry": ollm_spans.spans, "driftwatch": dw_spans.spans}
    ratios = {}
    # CPU time of the whole process is the primary figure: it counts the background threads and is
    # far less disturbed than wall time by other work on a shared machine.
    for label, times in (("cpu", cpu), ("wall", wall)):
        med = {name: statistics.median(t) for name, t in times.items()}
        added = {name: statistics.median(paired(times, name)) for name in arms}
        print(f" {label} time per call (median of rounds; added: median of paired differences, IQR):")
        for name in arms:
            extra = ""
            if name != "bare":
                q1, _, q3 = statistics.quantiles(paired(times, name), n=4)
                extra = f"   +{added[name]:6.1f} us ({q1:+.0f} to {q3:+.0f})"
            made = f"   spans {spans[name]}" if name in spans and label == "cpu" else ""
            print(f"  {name:<12} {med[name]:8.1f} us{extra}{made}")
        ratios[label] = (
            added["driftwatch"] / added["openllmetry"] if added["openllmetry"] > 0 else float("inf")
        )
        ratios[label + "-sdk"] = (
            added["driftwatch"] / added["sdk-otel"] if added["sdk-otel"] > 0 else float("inf")
        )
    low, high = ratio_interval(cpu, random.Random(args.seed))
    own = {name: statistics.median(CALL_PATH[id(c)][1:]) for name, c in clients.items()}
    own_added = {
        name: statistics.median(
            a - b for a, b in zip(CALL_PATH[id(c)][1:], CALL_PATH[id(bare)][1:], strict=True)
        )
        for name, c in clients.items()
    }
    print(" calling thread's CPU per call (the call path; the rest of the cpu figure is background threads):")
    for name in arms:
        print(f"  {name:<12} {own[name]:8.1f} us   +{own_added[name]:6.1f} us")
    print(f"  driftwatch outcomes processed {stats.processed}, dropped {stats.dropped_queue_full}")
    verdict = "met" if ratios["cpu"] <= GOAL else f"MISSED by {ratios['cpu'] / GOAL:.1f}x"
    print(
        f"overhead: driftwatch-added / openllmetry-added = {ratios['cpu']:.3f}x cpu "
        f"(95% CI {low:.3f}-{high:.3f}), {ratios['wall']:.3f}x wall   (goal <= {GOAL}x: {verdict})"
    )
    print(
        f"overhead: driftwatch-added / sdk-otel-added    = {ratios['cpu-sdk']:.3f}x cpu, "
        f"{ratios['wall-sdk']:.3f}x wall"
    )
    driftwatch.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
