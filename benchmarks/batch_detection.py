"""Detection of a batch of call outcomes (``Monitor.process_batch``, the worker's path), per outcome.

Seeded call outcomes like ``benchmarks/overhead.py``'s (pass, log-normal latency, fixed tokens and
cost) go through a monitor with the OTel sink (no-op metrics), batches of 200 as the worker drains
them. The monitor is warmed on ``--warm`` outcomes, snapshotted, and restored before each repeat, so
every repeat does the same work; the figure is the best repeat's thread CPU time per outcome
(collector paused). ``--shift`` moves the latency's log-mean by that much in every other 1,500
outcomes: 0 is a quiet stream (a few alerts at most), 0.3 keeps stage two busy.

Run: .venv/bin/python -P benchmarks/batch_detection.py [--seed 7 --warm 3000 --outcomes 6000 --shift 0]
"""

from __future__ import annotations

import argparse
import gc
import random
import time

from driftwatch import Config, Monitor, Outcome
from driftwatch._alerting.otel import OtelAlertSink, Telemetry

BATCH = 200


def call(rng: random.Random, i: int, shift: float) -> Outcome:
    return Outcome(
        task="anthropic.messages",
        kind="call",
        time=1.7e9 + i * 0.5,
        model="claude-sonnet-4-6",
        request_model="claude-sonnet-4-6",
        success=True,
        latency_s=0.0125 * rng.lognormvariate(shift, 0.25),
        input_tokens=12,
        output_tokens=40,
        tool_calls=0,
        cost_usd=0.000636,
        stop_reason="end_turn",
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warm", type=int, default=3000)
    parser.add_argument("--outcomes", type=int, default=6000)
    parser.add_argument("--shift", type=float, default=0.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    monitor = Monitor(Config(), [OtelAlertSink(Telemetry())], threaded=False)
    monitor.process_batch([call(rng, i, 0.0) for i in range(args.warm)])
    blob = monitor.snapshot()
    work = [
        call(rng, args.warm + i, 0.0 if (i // 1500) % 2 == 0 else args.shift) for i in range(args.outcomes)
    ]
    batches = [work[i : i + BATCH] for i in range(0, len(work), BATCH)]
    best, alerts = float("inf"), 0
    gc.disable()
    try:
        for _ in range(args.repeats):
            monitor.restore(blob)
            start = time.thread_time()
            alerts = sum(len(monitor.process_batch(batch)) for batch in batches)
            best = min(best, (time.thread_time() - start) / len(work) * 1e6)
    finally:
        gc.enable()
    print(
        f"Monitor.process_batch: {best:.2f} us per outcome (best of {args.repeats}, batches of {BATCH}), "
        f"{alerts} alerts, {monitor.stats.internal_errors} internal errors"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
