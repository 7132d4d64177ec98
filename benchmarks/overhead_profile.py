"""Where each µs of a watched call goes: the parts of ``benchmarks/overhead.py``'s driftwatch arm.

Same client, transport and span pipeline as the benchmark (a real TracerProvider, a
BatchSpanProcessor, a no-op exporter). Two kinds of figures, both thread CPU time per call:

- each part on its own, in a loop over real calls' data with the garbage collector paused (best of
  ``--repeats``): the calling thread's share (begin: clocks, task, span parent; reading the
  response's usage; finish: queue the call) and the monitor thread's (building the outcome; the
  call span; detection, ``Monitor.process_batch`` as the worker runs it, and ``Monitor.process``
  one outcome at a time beside it);
- the garbage collector's passes during ``--calls`` watched calls (all threads), against the same
  number of bare calls: what the objects a call leaves alive for a while (spans waiting in the batch
  queue, calls waiting for the monitor) cost in collections.

In place, between the SDK's own work, each part costs more than alone (cold caches): the sum of
the parts is a floor for ``overhead.py``'s figure, not a prediction of it.

Run: .venv/bin/python -P benchmarks/overhead_profile.py [--calls 4000 --repeats 5]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import driftwatch
from driftwatch._alerting.otel import Telemetry
from driftwatch.collectors import _anthropic
from driftwatch.collectors._spans import CallSpan

# Run as a script with -P, benchmarks/ is not on sys.path: the client and span pipeline come from overhead.py.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead as bench

MESSAGES = [{"role": "user", "content": "hi"}]
#: Outcomes per batch for ``Monitor.process_batch``: the worker drains up to 256 at a time.
BATCH = 200


def best_us(items: list[Any], fn: Callable[[Any], object], repeats: int) -> float:
    """Best-of-``repeats`` thread CPU per item of ``fn`` over ``items``, with the collector paused."""
    best = float("inf")
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.thread_time()
            for item in items:
                fn(item)
            best = min(best, (time.thread_time() - start) / len(items) * 1e6)
    finally:
        gc.enable()
    return best


def gc_us_per_call(client: Any, calls: int, settle: Callable[[], object]) -> tuple[float, int]:
    """CPU time in collector passes (any thread) per call over ``calls`` calls, and full passes."""
    spent, full, started = [0.0], [0], [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        else:
            spent[0] += time.thread_time() - started[0]
            full[0] += info["generation"] == 2

    gc.collect()
    gc.callbacks.append(callback)
    try:
        for i in range(calls):
            client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES)
            if i % 200 == 199:
                settle()  # as the benchmark does after each round
        settle()
    finally:
        gc.callbacks.remove(callback)
    return spent[0] / calls * 1e6, full[0]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    tp, _ = bench.traced_provider()
    runtime = driftwatch.configure(telemetry=Telemetry(tracer_provider=tp), console=False)
    monitor = runtime.monitor
    watched = driftwatch.watch(bench.make_client())
    bare = bench.make_client()

    # Real calls' data: the requests, parsed messages and finished calls the middleware saw.
    seen: dict[str, list[Any]] = {"requests": [], "messages": [], "calls": []}
    begin, responded = _anthropic.DriftwatchMiddleware._begin, _anthropic.DriftwatchMiddleware._responded

    def spy_begin(self: Any, request: Any) -> Any:
        seen["requests"].append(request)
        return begin(self, request)

    def spy_responded(self: Any, call: Any, response: Any, parsed: Any = None) -> None:
        seen["messages"].append(response.parse())
        responded(self, call, response, parsed)

    submit = monitor.submit
    _anthropic.DriftwatchMiddleware._begin = spy_begin  # type: ignore[method-assign]
    _anthropic.DriftwatchMiddleware._responded = spy_responded  # type: ignore[method-assign]
    monitor.submit = lambda item: seen["calls"].append(item) or True  # type: ignore[method-assign]
    try:
        for _ in range(1000):
            watched.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES)
    finally:
        _anthropic.DriftwatchMiddleware._begin = begin  # type: ignore[method-assign]
        _anthropic.DriftwatchMiddleware._responded = responded  # type: ignore[method-assign]
        monitor.submit = submit  # type: ignore[method-assign]
    requests, messages, calls = seen["requests"], seen["messages"], seen["calls"]
    r = args.repeats

    def fresh(_: Any) -> Any:
        call = _anthropic._Call(runtime, requests[0])
        call.status = 200
        call.read_message(messages[0])
        return call

    parts: list[tuple[str, str, float]] = []
    parts.append(
        (
            "calling",
            "begin: _Call (clocks, task, span parent)",
            best_us(requests, lambda q: _anthropic._Call(runtime, q), r),
        )
    )
    made = [fresh(None) for _ in messages]
    parts.append(
        (
            "calling",
            "read the response's usage",
            best_us(list(zip(made, messages, strict=True)), lambda p: p[0].read_message(p[1]), r),
        )
    )
    queued: list[Any] = []
    monitor.submit = lambda item: queued.append(item) or True  # type: ignore[method-assign]
    try:
        parts.append(
            (
                "calling",
                "finish: clocks, queue the call",
                best_us([fresh(None) for _ in messages], lambda c: c.finish(), 1),
            )
        )
    finally:
        monitor.submit = submit  # type: ignore[method-assign]
    end = CallSpan.end
    CallSpan.end = lambda self, *a, **k: None  # type: ignore[method-assign,assignment]
    try:
        parts.append(("monitor", "build the outcome (no span)", best_us(calls, lambda c: c.outcome(), r)))
    finally:
        CallSpan.end = end  # type: ignore[method-assign]
    tracer = runtime.telemetry.tracer
    attrs = calls[0]._start_attributes() | calls[0]._attributes(calls[0].outcome())

    def span(call: Any) -> object:
        start = call._start_attributes()
        return CallSpan(tracer, "chat claude-sonnet-4-6", start, call.start_ns, call.parent).end(
            attrs, None, call.end_ns
        )

    parts.append(("monitor", "the call span (ReadableSpan to the processor)", best_us(calls, span, r)))
    outcomes = [c.outcome() for c in calls]
    for outcome in outcomes:
        monitor.process(outcome)  # past the warm-up, as in the benchmark's rounds
    per_outcome = best_us(outcomes, monitor.process, r)
    batches = [outcomes[i : i + BATCH] for i in range(0, len(outcomes), BATCH)]
    batched = best_us(batches, monitor.process_batch, r) / BATCH
    parts.append(("monitor", f"detection: Monitor.process_batch ({BATCH} a batch)", batched))
    tp.force_flush()

    dw_gc, dw_full = gc_us_per_call(watched, args.calls, monitor.flush)
    bare_gc, bare_full = gc_us_per_call(bare, args.calls, lambda: None)
    tp.force_flush()

    print("driftwatch per watched call, thread CPU (each part alone, collector paused, best of", r, "runs):")
    for thread in ("calling", "monitor"):
        rows = [p for p in parts if p[0] == thread]
        for _, name, us in rows:
            print(f"  {thread:8} {name:<48} {us:6.1f} us")
        print(f"  {thread:8} {'sum':<48} {sum(us for *_, us in rows):6.1f} us")
    print(f"  monitor  {'(detection one outcome at a time: Monitor.process)':<48} {per_outcome:6.1f} us")
    print(
        f"  gc       collector passes, all threads: watched {dw_gc:.1f} us/call ({dw_full} full), "
        f"bare {bare_gc:.1f} us/call ({bare_full} full), over {args.calls} calls each"
    )
    driftwatch.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
