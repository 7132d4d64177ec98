"""Detection cost per outcome and memory per stream and signal, with baselines measured in the same run.

1. Cost: ``Monitor.process`` per task outcome with four watched signals (success, latency, input and
   output tokens) against the detector updates it performs (four ``LaggedSR.update`` calls on the
   same transformed values), and against River's ``PageHinkley.update`` for scale. Medians of 5
   rounds; the ratio is the monitor's overhead over its own detector work (issue 7 goal: <= 2x).
2. Memory: 10,000 streams of one signal, each past its warm-up and lag (900 observations), measured
   as RSS growth and with tracemalloc (issue 7 goal: <= 64 KiB per stream and signal).

Run: .venv/bin/python -P benchmarks/capacity.py [--streams 10000]
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import statistics
import time
import tracemalloc

from river import drift

from driftwatch import Config, Monitor, Outcome
from driftwatch.detectors import LaggedSR


def outcomes(n: int, streams: int, seed: int = 1) -> list[Outcome]:
    rng = random.Random(seed)
    return [
        Outcome(
            task=f"t{i % streams}",
            time=float(i),
            success=rng.random() < 0.8,
            latency_s=rng.lognormvariate(0, 0.5),
            input_tokens=int(rng.lognormvariate(7, 0.5)),
            output_tokens=int(rng.lognormvariate(6, 0.5)),
        )
        for i in range(n)
    ]


def cost(rounds: int = 5, n: int = 40_000, streams: int = 50) -> dict[str, float]:
    data = outcomes(n, streams)
    values = [
        (
            o.task,
            1.0 if o.success else 0.0,
            math.log(o.latency_s or 1e-9),
            math.log1p(o.input_tokens or 0),
            math.log1p(o.output_tokens or 0),
        )
        for o in data
    ]
    monitor_us, detector_us, river_us = [], [], []
    for _ in range(rounds):
        monitor = Monitor(Config(console=False, version_markers=[]), threaded=False)
        monitor.process(data[0])
        t = time.perf_counter()
        for o in data:
            monitor.process(o)
        monitor_us.append((time.perf_counter() - t) / n * 1e6)

        dets: dict[str, list[LaggedSR]] = {}
        t = time.perf_counter()
        for task, s, lat, tin, tout in values:
            row = dets.get(task)
            if row is None:
                row = dets[task] = [LaggedSR(kind="binary")] + [LaggedSR(kind="numeric") for _ in range(3)]
            row[0].update(s)
            row[1].update(lat)
            row[2].update(tin)
            row[3].update(tout)
        detector_us.append((time.perf_counter() - t) / n * 1e6)

        ph = {task: [drift.PageHinkley() for _ in range(4)] for task in {v[0] for v in values}}
        t = time.perf_counter()
        for task, s, lat, tin, tout in values:
            row_ph = ph[task]
            row_ph[0].update(s)
            row_ph[1].update(lat)
            row_ph[2].update(tin)
            row_ph[3].update(tout)
        river_us.append((time.perf_counter() - t) / n * 1e6)
    return {
        "monitor": statistics.median(monitor_us),
        "detector": statistics.median(detector_us),
        "river": statistics.median(river_us),
    }


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def memory(streams: int, observations: int = 900) -> tuple[float, float]:
    """KiB per stream and signal (success only), by RSS growth and by tracemalloc."""
    rng = random.Random(2)
    config = Config(console=False, signals=["success"], max_streams=streams + 1)
    gc.collect()
    before = _rss()
    monitor = Monitor(config, threaded=False)
    for j in range(observations):
        for s in range(streams):
            monitor.process(Outcome(task=f"s{s}", time=float(j), success=rng.random() < 0.8))
    gc.collect()
    rss = (_rss() - before) / streams / 1024
    tracemalloc.start()
    small = Monitor(config, threaded=False)
    base = tracemalloc.get_traced_memory()[0]
    sample = max(1, streams // 20)
    for j in range(observations):
        for s in range(sample):
            small.process(Outcome(task=f"s{s}", time=float(j), success=rng.random() < 0.8))
    traced = (tracemalloc.get_traced_memory()[0] - base) / sample / 1024
    tracemalloc.stop()
    return rss, traced


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=10_000)
    args = parser.parse_args()
    c = cost()
    print("detection cost per task outcome, 4 signals (median of 5 rounds):")
    print(f"  Monitor.process          {c['monitor']:7.1f} us")
    ratio, river = c["monitor"] / c["detector"], c["monitor"] / c["river"]
    print(f"  its 4 LaggedSR updates   {c['detector']:7.1f} us   monitor / detector = {ratio:.2f}x (goal 2x)")
    print(f"  4 River PageHinkley      {c['river']:7.1f} us   monitor / River PH  = {river:.2f}x")
    rss, traced = memory(args.streams)
    print(f"memory, {args.streams} streams x 1 signal, 900 observations each:")
    print(f"  RSS growth   {rss:6.1f} KiB per stream and signal (goal <= 64)")
    print(f"  tracemalloc  {traced:6.1f} KiB per stream and signal (on {max(1, args.streams // 20)} streams)")


if __name__ == "__main__":
    main()
