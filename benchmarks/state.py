"""Size and time of a monitor checkpoint, and journal append throughput, on a real SQLite file.

The monitor holds ``--streams`` streams, each watching all 8 signals past warm-up (the lagged
values are full) with ``--task-ids`` task ids in its version-pairing table: the worst case for a
checkpoint's size. One stream is fed by detection; the others are copies of it under other keys
(feeding all of them would take minutes and measure nothing more).

Run: .venv/bin/python -P benchmarks/state.py [--streams 1000]
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import statistics
import tempfile
import time

from driftwatch import Config, Monitor, Outcome
from driftwatch._serve.durable import Durable
from driftwatch._serve.store import StateStore


def build(streams: int, task_ids: int, seed: int = 1) -> Monitor:
    monitor = Monitor(Config(max_streams=max(streams, 1)), threaded=False)
    rng = random.Random(seed)
    for i in range(1000):
        monitor.process(
            Outcome(
                task="t0",
                time=float(i),
                task_id=f"task-{i % task_ids}",
                model="claude-sonnet-4-6",
                success=rng.random() < 0.8,
                score=rng.random(),
                latency_s=rng.lognormvariate(1.0, 0.4),
                ttft_s=rng.lognormvariate(-0.5, 0.3),
                input_tokens=rng.randint(500, 5000),
                output_tokens=rng.randint(50, 2000),
                cost_usd=rng.lognormvariate(-4, 0.5),
                tool_calls=rng.randint(0, 12),
            )
        )
    (key,) = monitor.stream_keys()
    head, parts = monitor.snapshot_parts([key])
    copies = {}
    for n in range(1, streams):
        stream = pickle.loads(parts[key])
        stream.labels = {**stream.labels, "task": f"t{n}"}
        copies[key.replace("task=t0", f"task=t{n}")] = pickle.dumps(stream, protocol=5)
    monitor.merge(pickle.dumps({**head, "streams": copies}, protocol=5))
    return monitor


def timed(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--task-ids", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    monitor = build(args.streams, args.task_ids)
    start = time.perf_counter()
    blob = monitor.snapshot()
    cold = time.perf_counter() - start
    snap = timed(monitor.snapshot, args.repeat)
    fresh = Monitor(Config(max_streams=max(args.streams, 1)), threaded=False)
    restore = timed(lambda: fresh.restore(blob), args.repeat)
    print(f"monitor: {args.streams} streams x 8 signals, {args.task_ids} task ids each")
    print(
        f"  snapshot {len(blob) / 1e6:.1f} MB; first snapshot {cold * 1e3:.0f} ms, again with no stream "
        f"touched since {snap * 1e3:.0f} ms; restore {restore * 1e3:.0f} ms"
    )
    with tempfile.TemporaryDirectory() as tmp, StateStore(os.path.join(tmp, "state.db")) as store:
        save = timed(lambda: store.save_checkpoint(store.last_seq(), blob), args.repeat)
        print(f"  save_checkpoint of the whole snapshot as one blob (synchronous=FULL) {save * 1e3:.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.db")
        durable = Durable(StateStore(path), monitor, lambda kind, body: [], every=10**9)
        durable.start()
        outcome = Outcome(task="t0", time=2000.0, success=True, latency_s=2.0)
        keys = monitor.stream_keys()
        for touched in (len(keys), len(keys) // 10, 0):
            for key in keys[:touched]:  # a new outcome on these streams
                outcome.task = key.split("task=")[1]
                monitor.process(outcome)
            durable.append("noop", b"")  # one journal entry processed, so that a checkpoint is due
            durable.step()
            start = time.perf_counter()
            durable.checkpoint()
            took = time.perf_counter() - start
            print(f"  Durable checkpoint with {touched} streams changed: {took * 1e3:.0f} ms")
        durable.close()
        size = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp))
        print(f"  state file with its -wal: {size / 1e6:.1f} MB")
        start = time.perf_counter()
        config = Config(max_streams=max(args.streams, 1))
        again = Durable(StateStore(path), Monitor(config, threaded=False), lambda kind, body: [])
        again.start()
        took = time.perf_counter() - start
        print(f"  restart: open (with quick_check), read the checkpoint, restore: {took * 1e3:.0f} ms")
        again.store.close()
        with StateStore(path) as store:
            body = b"x" * 2000
            n = 200
            start = time.perf_counter()
            for _ in range(n):
                store.append("otlp-logs", body)
            one = (time.perf_counter() - start) / n
            start = time.perf_counter()
            for _ in range(n):
                store.append_many([("otlp-logs", body)] * 100)
            batch = (time.perf_counter() - start) / n
        print(f"journal: append of 2 kB {one * 1e3:.2f} ms; append_many of 100 x 2 kB {batch * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
