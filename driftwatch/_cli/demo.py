"""``driftwatch demo``: a simulated agent through the real anthropic SDK against a local fake API."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="simulated agent with a silent degradation; prints the alert and its delay",
        description="Run a simulated coding agent through the real anthropic SDK against a local fake API. "
        "One stream degrades at a known task; the alert is printed with its statistics and the "
        "detection delay. "
        "Exports spans, alert logs and metrics over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.\n\n"
        "Detection settings come from --config (else DRIFTWATCH_CONFIG) and DRIFTWATCH_* variables as "
        "for every command (warmup, lag, budget, signals, alerts_out, ...). The demo's alerts page "
        "nobody: configured notifiers and markers are left out unless --notify is given. The service "
        "is demo-agent unless the file or DRIFTWATCH_SERVICE names one.\n\n"
        "examples:\n"
        "  driftwatch demo --tasks 1000 --change-at 500\n"
        "  driftwatch demo --alerts-out alerts.jsonl      # the alerts as Alert JSON lines too\n"
        "  DRIFTWATCH_WARMUP=200 driftwatch demo --config driftwatch.yaml\n"
        "  driftwatch demo --config driftwatch.yaml --notify     # page the configured notifiers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--tasks", type=int, default=1000, help="tasks per stream (default 1000)")
    demo.add_argument("--change-at", type=int, default=500, help="task index where degradation starts")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument("--config", metavar="FILE", help="YAML config file (warmup, lag, budget, signals, ...)")
    demo.add_argument(
        "--alerts-out", metavar="PATH", help="also write the alerts as Alert JSON lines to PATH (as replay)"
    )
    demo.add_argument(
        "--notify",
        action="store_true",
        help="send the demo's alerts to the configured notifiers and markers too (off by default)",
    )
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from driftwatch._config import ConfigError
    from driftwatch._offline.demo import run_demo

    try:
        return run_demo(
            tasks_per_stream=args.tasks,
            change_at=args.change_at,
            seed=args.seed,
            config_path=args.config,
            notify=args.notify,
            alerts_out=args.alerts_out,
        )
    except ConfigError as exc:
        print(f"driftwatch: {exc}", file=sys.stderr)
        return 2
