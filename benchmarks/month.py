"""A month in minutes: 1,000 streams through ~30 days of event time in serve's durable path.

Drives the real journal, monitor, checkpoints and outcome history of ``driftwatch serve``
(``StateStore`` → ``Durable`` → ``Monitor`` + ``History``; the OTLP decoding in front is left out:
each journal entry is one event-hour of outcomes as JSON), with a crash and restart (``kill -9``
semantics: no final checkpoint, the journal tail replayed) half way, and retention pruning by age
(and by size with ``--max-mb``). Reports the state file's size, checkpoint and prune times, memory,
and the read API's latency over HTTP (the same ``Receiver`` and ``ReadApi`` as serve).

    .venv/bin/python -P benchmarks/month.py                 # 1,000 streams, 30 days, 48 outcomes/day
    .venv/bin/python -P benchmarks/month.py --per-day 12    # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from driftwatch import Config, Monitor, Outcome, load_config
from driftwatch._serve.api import ReadApi
from driftwatch._serve.durable import Durable
from driftwatch._serve.history import History, HistorySink
from driftwatch._serve.receiver import Accepted, Receiver
from driftwatch._serve.store import StateStore

DAY = 86400.0
T0 = 1_790_000_000.0


def decode(kind: str, body: bytes) -> list[Outcome]:
    """One journal entry: [[stream, time, success, latency_s, model], ...]."""
    return [
        Outcome(task=f"task-{s % 50}", service=f"svc-{s // 50}", time=t, success=ok, latency_s=lat, model=m)
        for s, t, ok, lat, m in json.loads(body)
    ]


def hour(rng: random.Random, streams: int, per_day: int, h: int, drift_from: float) -> bytes:
    """The outcomes of every stream in event-hour ``h``; 5% of streams get worse after ``drift_from``."""
    rows: list[list[Any]] = []
    per_hour = per_day / 24
    for s in range(streams):
        n = int(per_hour) + (rng.random() < per_hour - int(per_hour))
        for _ in range(n):
            t = T0 + h * 3600 + rng.random() * 3600
            worse = s % 20 == 0 and t >= drift_from
            ok = rng.random() < (0.7 if worse else 0.9)
            lat = rng.lognormvariate(0.0 if not worse else 0.3, 0.4)
            rows.append([s, t, ok, round(lat, 4), "model-b" if worse else "model-a"])
    rows.sort(key=lambda r: r[1])
    return json.dumps(rows, separators=(",", ":")).encode()


class _Idle:
    """The receiver's handler for the read API alone: ready, never takes OTLP here."""

    def ready(self) -> bool:
        return True

    def handle(self, signal: str, request: Any) -> Accepted:
        raise RuntimeError("benchmark: no OTLP")


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def open_all(path: Path, config: Config, args: argparse.Namespace) -> tuple[Durable, History]:
    store = StateStore(path)
    history = History(
        str(path),
        max_age_s=args.max_age_days * DAY,
        max_bytes=args.max_mb * 1024 * 1024,
        clock=lambda: T0 + args.days * DAY,  # the wall clock: the month's end
    )
    monitor = Monitor(config, [HistorySink(history)], threaded=False)
    # Checkpoints only where this script times them (every --every event-hours).
    durable = Durable(store, monitor, decode, every=10**9, seconds=1e9, history=history)
    return durable, history


def timed_checkpoint(durable: Durable, times: list[float]) -> None:
    started = time.perf_counter()
    durable.checkpoint()
    times.append(time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=48, help="outcomes per stream and event-day")
    parser.add_argument("--every", type=int, default=6, help="checkpoint every this many event-hours")
    parser.add_argument("--max-age-days", type=int, default=14)
    parser.add_argument("--max-mb", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    config = Config(signals=["success", "latency_s"], console=False, max_streams=args.streams + 10)
    folder = Path(tempfile.mkdtemp(prefix="driftwatch-month-"))
    path = folder / "state.db"
    hours = args.days * 24
    drift_from = T0 + 0.75 * args.days * DAY
    checkpoints: list[float] = []
    started = time.perf_counter()
    durable, history = open_all(path, config, args)
    durable.start()
    crash_at = hours // 2 + args.every // 2  # mid-interval: entries after the last checkpoint are replayed
    outcomes = pruned_before = 0
    for h in range(hours):
        durable.append("hour", hour(rng, args.streams, args.per_day, h, drift_from))
        durable.step(limit=1)
        outcomes = durable.stats.outcomes
        if (h + 1) % args.every == 0:
            timed_checkpoint(durable, checkpoints)
        if h == crash_at:
            pruned_before = history.stats.pruned_rows  # counters live in memory: carried over by hand
            durable.store.close()  # a kill -9: no last checkpoint, the history buffer lost with it
            history.close()
            durable, history = open_all(path, config, args)
            restart = time.perf_counter()
            replayed = durable.start()
            restart_s = time.perf_counter() - restart
            print(f"restart at event-hour {h}: replayed {replayed} journal entries in {restart_s:.2f} s")
    timed_checkpoint(durable, checkpoints)
    feed_s = time.perf_counter() - started
    stats = history.stats
    size = os.path.getsize(path)
    wal = os.path.getsize(str(path) + "-wal") if os.path.exists(str(path) + "-wal") else 0
    print(f"{args.streams} streams, {args.days} days, {outcomes:,} outcomes processed in {feed_s:.1f} s")
    print(
        f"history: {stats.rows:,} outcomes kept ({stats.bytes / 2**20:.1f} MiB counted), "
        f"{pruned_before + stats.pruned_rows:,} pruned ({stats.prunes} prunes since the restart: "
        f"{stats.prune_seconds:.2f} s total, max {stats.prune_max_seconds * 1000:.0f} ms)"
    )
    print(
        f"state file: {size / 2**20:.1f} MiB ({size / max(stats.bytes, 1):.2f}x the history's counted bytes; "
        f"journal, checkpoint and indexes included), -wal {wal / 2**20:.1f} MiB"
    )
    print(
        f"checkpoints: {len(checkpoints)}, median {statistics.median(checkpoints) * 1000:.0f} ms, "
        f"max {max(checkpoints) * 1000:.0f} ms (history writes {stats.write_seconds:.2f} s in total)"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"memory: RSS {rss_mib():.0f} MiB now, peak {peak:.0f} MiB")
    # Exactly once across the crash: every outcome processed is kept or was pruned, none twice.
    pruned = pruned_before + stats.pruned_rows
    assert stats.rows + pruned == outcomes, (stats.rows, pruned, outcomes)
    serve = load_config(None, env={}, http_port=0, grpc_port=0, state=str(path))
    receiver = Receiver(_Idle(), serve)  # type: ignore[arg-type]
    receiver.query_routes.update(ReadApi(durable.monitor, history).routes())
    receiver.start()
    base = f"http://127.0.0.1:{receiver.http_port}"
    stream = "service=svc-0;task=task-0"
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + (args.days - 2) * DAY))
    queries = {
        "streams (all)": "/api/v1/streams",
        "alerts": "/api/v1/alerts?limit=100",
        "outcomes, 1 stream, last 2 days": f"/api/v1/outcomes?stream={quote(stream)}&since={since}",
        "outcomes, first page of all": "/api/v1/outcomes?limit=1000",
        "outcomes, model=model-b (selective)": "/api/v1/outcomes?model=model-b&limit=1000",
    }
    for name, query in queries.items():
        took = []
        for _ in range(5):
            t = time.perf_counter()
            with urllib.request.urlopen(base + query, timeout=120) as response:
                body = response.read()
            took.append(time.perf_counter() - t)
        print(f"read API {name}: median {statistics.median(took) * 1000:.0f} ms ({len(body):,} bytes)")
    receiver.stop()
    durable.close()
    history.close()
    print(f"state in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
