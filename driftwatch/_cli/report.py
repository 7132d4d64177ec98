"""``driftwatch report``: the HTML report (the work is in ``_offline/report.py``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from driftwatch._cli.remote import RemoteError, add_remote_arguments, fetch_outcomes
from driftwatch._config import ConfigError, load_config
from driftwatch.collectors._replay import ReadReport, read_outcomes

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    report = sub.add_parser(
        "report",
        help="self-contained HTML report (daily candlesticks, volume, change points) and a summary table",
        description="Write OUT/report.html (opens with no network: charts are inline PNGs) and one PNG per "
        "stream: a daily candlestick of a signal per run (open/close: first and last run of the day, "
        "high/low: the range across runs), outcomes per day, change points of confirmed alerts, version "
        "changes and the baseline 95% interval. Prints a summary table (runs, baseline vs current, open "
        "alerts). Without --alerts, detection runs over the outcomes as in `driftwatch replay`.\n\n"
        "With --url the outcomes come from a running `driftwatch serve` (its outcome history).\n\n"
        "example: driftwatch report outcomes.jsonl --alerts alerts.jsonl --out report/\n"
        "example: driftwatch report --url http://127.0.0.1:4318 --out report/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("file", nargs="?", help="outcome file: .jsonl (default) or .csv")
    add_remote_arguments(report, optional=True)
    report.add_argument(
        "--alerts", metavar="PATH", help="Alert JSON lines (replay --alerts-out); default: detect"
    )
    report.add_argument("--out", metavar="DIR", default="driftwatch-report", help="output folder")
    report.add_argument(
        "--signal", default="success", help="signal to chart (default success: the pass rate)"
    )
    report.add_argument(
        "--run-label", default="run_id", help="outcome label that names a run (default run_id)"
    )
    report.add_argument(
        "--run-window",
        type=float,
        default=60.0,
        metavar="MINUTES",
        help="outcomes without the run label form one run per window (default 60)",
    )
    report.add_argument("--max-streams", type=int, default=50, help="streams drawn at most (default 50)")
    report.add_argument("--config", metavar="FILE", help="YAML config file")
    report.add_argument("--budget", type=float, help="false alarms per observation per stream (default 1e-4)")
    report.set_defaults(run=run)


def _progress(label: str) -> Callable[[int, int], None] | None:
    """A one-line progress counter on stderr, only when stderr is a terminal."""

    if not sys.stderr.isatty():
        return None

    def show(i: int, total: int) -> None:
        if i % 2000 == 0 or i == total or total < 2000:
            sys.stderr.write(f"\r  {label} {i}/{total}")
            if i == total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return show


def run(args: argparse.Namespace) -> int:
    """``driftwatch report``: read, detect when no alerts are given, draw, write, print the summary."""
    import sys

    from driftwatch._alerting.alerts import InMemorySink
    from driftwatch._monitor import Monitor
    from driftwatch._offline.report import (
        ReportError,
        build_report,
        check_signal,
        read_alerts,
        render_html,
        render_images,
        slug,
        summary_table,
    )

    def fail(message: str) -> int:
        print(f"driftwatch: {message}", file=sys.stderr)
        return 2

    try:
        check_signal(args.signal)
        config = load_config(args.config, **({"budget": args.budget} if args.budget else {}))
    except (ReportError, ConfigError) as exc:
        return fail(str(exc))
    if args.run_window <= 0 or args.max_streams < 1:
        return fail("--run-window must be > 0 minutes and --max-streams at least 1")
    if (args.file is None) == (args.url is None):
        return fail("give an outcome file or --url (a running driftwatch serve), one of the two")
    read = ReadReport()
    try:
        if args.url is not None:
            args.file = args.url  # named as the source below, as a file would be
            outcomes = fetch_outcomes(args.url, args.token)
        else:
            outcomes = list(read_outcomes(args.file, read, default_service=config.service))
    except OSError as exc:
        return fail(f"cannot read {args.file}: {exc.strerror}")
    except RemoteError as exc:
        return fail(str(exc))
    errors = list(read.errors)
    outcomes.sort(key=lambda o: o.time)  # event time; stable among equal times
    if args.alerts:
        try:
            alerts = read_alerts(args.alerts, errors)
        except OSError as exc:
            return fail(f"cannot read {args.alerts}: {exc.strerror}")
        source = f"{args.file} with alerts from {args.alerts}"
    else:
        # No alerts file: the same detection path as `driftwatch replay`.
        memory = InMemorySink()
        monitor = Monitor(config, [memory], threaded=False)
        show = _progress("detecting")
        for i, outcome in enumerate(outcomes, 1):
            monitor.process(outcome)
            if show is not None:
                show(i, len(outcomes))
        monitor.shutdown()
        alerts = [a.to_dict() | {"change_at": a.change_at} for a in memory.alerts]
        source = f"{args.file} (alerts from detection over it)"
    for error in errors[:20]:
        print(f"driftwatch: skipped {error}", file=sys.stderr)
    if len(errors) > 20:
        print(f"driftwatch: ... and {len(errors) - 20} more bad lines", file=sys.stderr)
    reports = build_report(
        outcomes,
        alerts,
        signal=args.signal,
        extra_labels=config.stream_labels,
        run_label=args.run_label,
        run_window=args.run_window * 60.0,
    )
    if not reports:
        return fail(f"{args.file}: no outcome has a value of {args.signal!r}; choose another --signal")
    notes = []
    if len(reports) > args.max_streams:
        # Bounded output: the streams with open alerts and the most outcomes are drawn, the rest counted.
        notes.append(
            f"{len(reports) - args.max_streams} more streams not drawn (--max-streams {args.max_streams})"
        )
        reports = reports[: args.max_streams]
    if errors:
        notes.append(f"{len(errors)} bad input lines skipped")
    images = render_images(reports, args.signal, _progress("drawing"))
    os.makedirs(args.out, exist_ok=True)
    for name, png in images.items():
        with open(os.path.join(args.out, slug(name) + ".png"), "wb") as binary:
            binary.write(png)
    page = os.path.join(args.out, "report.html")
    with open(page, "w", encoding="utf-8") as fh:
        fh.write(render_html(reports, images, signal=args.signal, source=source, notes=notes))
    print(summary_table(reports, args.signal))
    for note in notes:
        print(note)
    print(f"wrote {page} and {len(images)} PNGs to {args.out}", flush=True)
    return 0
