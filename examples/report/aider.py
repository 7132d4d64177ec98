"""Aider benchmark runs (``../shared/data/aider/*.yml``) as outcome JSONL for ``driftwatch report``.

Each run becomes its test cases, one outcome each, passes shuffled with a fixed seed (the file has
only the pass rate per run). A run starts at the time in its ``dirname`` (``2024-06-20-15-16-41--…``)
with its cases one second apart (so that runs started minutes apart do not interleave)
and carries ``labels.run_id`` (the dirname) and ``labels.app.version`` (aider's version, a marker).

    python -P examples/report/aider.py ../shared/data/aider/sonnet-fine.yml out/aider.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml


def run_start(run: dict[str, Any]) -> datetime:
    """The run's start from its dirname, else noon of its date."""
    try:
        return datetime.strptime(str(run["dirname"])[:19], "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC)
    except ValueError:
        return datetime.fromisoformat(f"{run['date']}T12:00:00+00:00")


def convert(runs: list[dict[str, Any]], seed: int = 2024) -> list[dict[str, object]]:
    """Outcome JSONL records in event time."""
    rng = random.Random(seed)
    records: list[dict[str, object]] = []
    for run in runs:
        n = int(run["test_cases"])
        passes = round(float(run["pass_rate_2"]) / 100 * n)
        results = [True] * passes + [False] * (n - passes)
        rng.shuffle(results)
        start = run_start(run)
        for i, success in enumerate(results):
            records.append(
                {
                    "time": (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "service": "aider",
                    "task": "aider-benchmark",
                    "task_id": f"case-{i}",
                    "model": str(run["model"]),
                    "success": success,
                    "labels": {"run_id": str(run["dirname"]), "app.version": str(run["versions"])},
                }
            )
    records.sort(key=lambda r: str(r["time"]))
    return records


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", help="an Aider benchmark YAML such as sonnet-fine.yml")
    parser.add_argument("out", help="outcome JSONL to write")
    args = parser.parse_args()
    with open(args.runs, encoding="utf-8") as fh:
        runs = yaml.safe_load(fh)
    with open(args.out, "w", encoding="utf-8") as fh:
        for record in convert(runs):
            fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
