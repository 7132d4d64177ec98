"""What keeping the outcome history costs ``driftwatch serve``'s worker, per 100-span request.

The worker (one thread: decode, detection, history, checkpoints) bounds the service's capacity. This
drains the same distinct 100-span OTLP requests (``Variants`` of benchmarks/receiver.py) from the
journal of a real ``DriftService``, in alternating rounds (seeded order), with the outcome history on
(the service as shipped, its cap small enough that every checkpoint prunes) and off (the same
service with ``Durable.history = None``: the floor, what the worker did before the history), and
prints each arm's median wall and CPU time per request over the rounds, the added cost with its
range, and where the history's part goes (``/stats`` ``handler.history``: writing, pruning).

No receiver and no client: the GIL is the worker's alone, so this is the worker's cost, not the
service's capacity (``benchmarks/soak.py --rate 100`` measures that, with its noise).

Run: .venv/bin/python -P benchmarks/history_cost.py [--requests 600 --rounds 5 --history-mb 8 --seed 20261202]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # with -P, benchmarks/ is not on sys.path
from receiver import Variants, payload

from driftwatch import load_config
from driftwatch._serve.service import DriftService


def drain(body: bytes, requests: int, history_mb: int, history: bool) -> dict[str, Any]:
    """Journal ``requests`` distinct requests (after as many to fill the history), then time the drain."""
    variants = Variants(body, 0)
    with tempfile.TemporaryDirectory() as tmp:
        env = {"DRIFTWATCH_HISTORY_MAX_MB": str(history_mb)}
        config = load_config(env=env, http_port=0, grpc_port=0, state=f"{tmp}/state.db", console=False)
        service = DriftService(config)
        durable = service.durable
        if not history:
            durable.history = None
        try:
            for n in range(requests):  # drained by start(): the history is at its cap before timing
                durable.append("traces", variants.body(n))
            durable.start()
            for n in range(requests, 2 * requests):
                durable.append("traces", variants.body(n))
            wall, cpu = time.perf_counter(), time.process_time()
            while durable.step(limit=durable.every):
                pass
            durable.checkpoint()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            stats = vars(service.history.stats).copy()
        finally:
            service.stop()
    return {"wall_ms": wall / requests * 1000, "cpu_ms": cpu / requests * 1000, "history": stats}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=600, help="requests timed per round (default 600)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--history-mb", type=int, default=8, help="history cap (default 8: pruned at once)")
    parser.add_argument("--seed", type=int, default=20261202, help="order of the arms in each round")
    args = parser.parse_args()
    body = payload()
    rng = random.Random(args.seed)
    runs: dict[str, list[dict[str, Any]]] = {"history on": [], "history off": []}
    for round_ in range(args.rounds):
        arms = list(runs)
        rng.shuffle(arms)
        for arm in arms:
            result = drain(body, args.requests, args.history_mb, arm == "history on")
            runs[arm].append(result)
            print(
                f"round {round_ + 1} {arm:11s}: {result['wall_ms']:6.2f} ms wall, "
                f"{result['cpu_ms']:6.2f} ms CPU per request"
            )
    on, off = runs["history on"], runs["history off"]
    for key, name in (("wall_ms", "wall"), ("cpu_ms", "CPU")):
        a, b = statistics.median(r[key] for r in on), statistics.median(r[key] for r in off)
        added = sorted(x[key] - y[key] for x, y in zip(on, off, strict=True))
        print(
            f"{name} per 100-span request: history on {a:.2f} ms ({1000 / a:.0f} requests/s), off {b:.2f} ms "
            f"({1000 / b:.0f}/s); added {a - b:+.2f} ms (paired, per round {added[0]:+.2f} to "
            f"{added[-1]:+.2f}), "
            f"on/off {a / b:.2f}x"
        )
    write = statistics.median(r["history"]["write_seconds"] / (2 * args.requests) * 1000 for r in on)
    prune = statistics.median(r["history"]["prune_seconds"] / (2 * args.requests) * 1000 for r in on)
    longest = max(r["history"]["prune_max_seconds"] for r in on) * 1000
    print(
        f"history, per request (median; start's drain included): writing rows {write:.2f} ms, pruning "
        f"{prune:.2f} ms (longest prune {longest:.0f} ms); the rest of the added cost is encoding each "
        "outcome (Outcome.to_dict + JSON) and the checkpoints' commits"
    )


if __name__ == "__main__":
    main()
