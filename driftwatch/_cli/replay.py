"""``driftwatch replay``: detection over a recorded outcome file, in event time."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from driftwatch._cli.shared import add_paging_arguments, detect, paging_notifiers, summarise_paging
from driftwatch._config import ConfigError, load_config
from driftwatch.collectors._replay import ReadReport, read_outcomes

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    replay = sub.add_parser(
        "replay",
        help="run detection over a recorded outcome file (JSONL or CSV)",
        description="Run the production detection path over a recorded outcome stream in event time and "
        "print every alert. One JSON object per line: time, task, success, score, latency_s, input_tokens, "
        "output_tokens, cost_usd, tool_calls, labels (all but time and task optional). Bad lines are "
        "reported with their line number and skipped. Alerts are printed, written to --alerts-out and "
        "sent to the notifiers configured in --config (PagerDuty, Slack, webhook; or by "
        "DRIFTWATCH_PAGERDUTY_ROUTING_KEY / DRIFTWATCH_SLACK_WEBHOOK_URL): a replay pages like the "
        "service does, with a delivery summary per notifier at the end; --no-notify only prints. "
        "Exit code 0; 2 when the file or config cannot be read; 3 when a notifier failed to deliver "
        "or dropped a notification.\n\n"
        "example: driftwatch replay outcomes.jsonl --alerts-out alerts.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("file", help="outcome file: .jsonl (default) or .csv")
    replay.add_argument(
        "--alerts-out", metavar="PATH", help="write alerts as Alert JSON lines to PATH (replaced)"
    )
    replay.add_argument("--config", metavar="FILE", help="YAML config file")
    replay.add_argument("--budget", type=float, help="false alarms per observation per stream (default 1e-4)")
    add_paging_arguments(replay)
    replay.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics during and after the replay (0: any port)",
    )
    replay.add_argument(
        "--metrics-host", default="127.0.0.1", metavar="HOST", help="address for --metrics-port (127.0.0.1)"
    )
    replay.add_argument(
        "--hold",
        type=float,
        metavar="SECONDS",
        help="with --metrics-port: keep serving this long after the replay (default: until Ctrl-C)",
    )
    replay.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, **({"budget": args.budget} if args.budget else {}))
    except ConfigError as exc:
        print(f"driftwatch: {exc}", file=sys.stderr)
        return 2
    report = ReadReport()
    try:
        outcomes = list(read_outcomes(args.file, report, default_service=config.service))
    except OSError as exc:
        print(f"driftwatch: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    for error in report.errors[:20]:
        print(f"driftwatch: skipped {error}", file=sys.stderr)
    if len(report.errors) > 20:
        print(f"driftwatch: ... and {len(report.errors) - 20} more bad lines", file=sys.stderr)
    # Event time: a stable sort keeps file order among equal times.
    outcomes.sort(key=lambda o: o.time)
    extra: list[Any] = []
    metrics = None
    if args.metrics_port is not None:
        from driftwatch._alerting.prometheus import PrometheusSink, serve_metrics

        prometheus = PrometheusSink()
        extra.append(prometheus)
        try:
            metrics = serve_metrics(prometheus, args.metrics_host, args.metrics_port)
        except OSError as exc:
            print(
                f"driftwatch: cannot serve /metrics on {args.metrics_host}:{args.metrics_port}: "
                f"{exc.strerror}; choose a free port with --metrics-port",
                file=sys.stderr,
            )
            return 2
        print(f"serving metrics at {metrics.url}", flush=True)
    notifiers = paging_notifiers(config, args.no_notify)
    extra += notifiers
    if metrics is not None and notifiers:
        from driftwatch._alerting.notifiers import delivery_metrics

        prometheus.collectors.append(lambda: delivery_metrics(notifiers))
    monitor, counts = detect(
        config, outcomes, args.alerts_out, "outcomes replayed", extra, flush_timeout=args.notify_timeout
    )
    print(
        f"replayed {len(outcomes)} outcomes in {monitor.stream_count} streams; "
        f"{len(report.errors)} bad lines skipped; alerts: {counts}",
        flush=True,
    )
    code = summarise_paging(notifiers)
    if metrics is not None:
        _hold(args.hold)
        metrics.close()
    return code


def _hold(seconds: float | None) -> None:
    """Keep /metrics up for ``seconds`` (None: until interrupted) so Prometheus can scrape the result."""
    import time

    try:
        if seconds is None:
            while True:
                time.sleep(3600)
        elif seconds > 0:
            time.sleep(seconds)
    except KeyboardInterrupt:
        pass
