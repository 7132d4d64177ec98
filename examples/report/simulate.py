"""A seeded simulated outcome file for ``driftwatch report``: two streams, four weeks, runs of 25 tasks.

``fix-tests`` moves from claude-sonnet-4-6 to claude-opus-4-7 on day 14 and its pass rate falls from
80% to 62%; ``write-docs`` stays at 70% throughout. Each run carries ``labels.run_id``.

    python -P examples/report/simulate.py out/outcomes.jsonl [--days 28] [--seed 6]
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime, timedelta


def simulate(
    days: int = 28, seed: int = 6, runs_per_day: int = 6, tasks_per_run: int = 25
) -> list[dict[str, object]]:
    """Outcome JSONL records in event time."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    change_day = days // 2
    records: list[dict[str, object]] = []
    for day in range(days):
        for run in range(runs_per_day):
            at = start + timedelta(days=day, hours=run * 24 / runs_per_day)
            for task, rate, model in (
                (
                    "fix-tests",
                    0.80 if day < change_day else 0.62,
                    "claude-sonnet-4-6" if day < change_day else "claude-opus-4-7",
                ),
                ("write-docs", 0.70, "claude-sonnet-4-6"),
            ):
                run_id = f"{task}-{day:02d}-{run}"
                for i in range(tasks_per_run):
                    t = at + timedelta(seconds=30 * i)
                    records.append(
                        {
                            "time": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "service": "coding-agent",
                            "task": task,
                            "task_id": f"{task}-{i}",
                            "model": model,
                            "success": rng.random() < rate,
                            "latency_s": round(rng.lognormvariate(3.0, 0.4), 2),
                            "labels": {"run_id": run_id},
                        }
                    )
    records.sort(key=lambda r: str(r["time"]))
    return records


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", help="outcome JSONL to write")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    with open(args.out, "w", encoding="utf-8") as fh:
        for record in simulate(args.days, args.seed):
            fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
