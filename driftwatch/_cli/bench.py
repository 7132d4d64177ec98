"""``driftwatch bench run``: a fixed task suite against an agent (the work is in ``_offline/bench.py``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from driftwatch._alerting.alerts import JsonlSink
from driftwatch._cli.shared import (
    Printer,
    add_paging_arguments,
    help_without_action,
    paging_notifiers,
    summarise_paging,
)
from driftwatch._config import ConfigError, load_config

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    bench = sub.add_parser(
        "bench",
        help="run a fixed task suite against an agent (scheduled benchmark / canary)",
        description="Scheduled benchmarks. 'driftwatch bench run SUITE.yaml' runs every task of the suite "
        "N times against the agent (docs/bench.md).\n\n"
        "example: driftwatch bench run examples/bench/suite.yaml --outcomes bench.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="ACTION")
    bench_run = bench_sub.add_parser(
        "run",
        help="run (or resume) one run of a suite; outcomes to an outcome JSONL file",
        description="Run every task of SUITE.yaml N times, each in a fresh temporary folder: copy the task's "
        "setup files, run the agent (a shell command with the prompt on stdin and DRIFTWATCH_BENCH_* "
        "variables, or a Python callable), then the check command; success is the check's exit status 0. "
        "Each run is appended to the outcome file (the `driftwatch replay` format) with task, task_id "
        "(task#repetition), labels (category, bench.suite, bench.run) and model/version markers, and sent "
        "as a span when OTEL_EXPORTER_OTLP_ENDPOINT is set. An interrupted run resumes where it stopped "
        "(same --run-id; the default is today's UTC date, so a daily cron job is resumable). Adaptive: the "
        "outcome file's history goes through detection first, and a category with a suspected stream "
        "gets extra runs (up to --budget task runs in total) so that the suspicion is confirmed or "
        "cleared sooner; the reason is printed. Alerts new in this run page the notifiers of --config "
        "(--no-notify only prints them). Exit 1 when an alert is open (see --fail-on), 2 on bad input, 3 "
        "when a notifier could not deliver.\n\n"
        "examples:\n"
        "  driftwatch bench run examples/bench/suite.yaml --outcomes bench.jsonl\n"
        "  driftwatch bench run suite.yaml --agent 'claude -p' --repetitions 5 --budget 60\n"
        "  driftwatch bench run examples/bench/suite.yaml --agent-callable anthropic_agent.py:solve\n"
        "  cron: 0 6 * * *  cd /srv/canary && driftwatch bench run suite.yaml --outcomes canary.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench_run.add_argument("suite", metavar="SUITE.yaml", help="the suite file (docs/bench.md)")
    bench_run.add_argument(
        "--outcomes",
        metavar="PATH",
        help="outcome JSONL to append to and read history from (NAME.outcomes.jsonl)",
    )
    bench_run.add_argument(
        "--progress", metavar="PATH", help="progress file for resuming (OUTCOMES.progress)"
    )
    bench_run.add_argument("--run-id", metavar="ID", help="name of this run; the same id resumes (UTC date)")
    bench_run.add_argument("--repetitions", type=int, metavar="N", help="runs per task (the suite's)")
    bench_run.add_argument(
        "--budget",
        type=int,
        metavar="N",
        help="most task runs in this run with adaptive extras (3 x the base)",
    )
    bench_run.add_argument("--agent", metavar="CMD", help="agent shell command, overriding the suite's")
    bench_run.add_argument(
        "--agent-callable",
        metavar="SPEC",
        help="agent as module:function or file.py:function (suite-relative)",
    )
    bench_run.add_argument(
        "--config", metavar="FILE", help="YAML config file for detection (warmup, budget, ...)"
    )
    add_paging_arguments(bench_run)
    bench_run.add_argument(
        "--fail-on",
        choices=("never", "suspected", "confirmed"),
        default="confirmed",
        help="exit 1 when a stream of the suite has an open alert of this status (default confirmed)",
    )
    bench_run.add_argument(
        "--alerts-out",
        metavar="PATH",
        help="write this run's alert events as Alert JSON lines to PATH (replaced)",
    )
    bench_run.add_argument(
        "--keep-workdirs", action="store_true", help="keep each run's folder and say where"
    )
    bench_run.set_defaults(run=run)
    help_without_action(bench)


def run(args: argparse.Namespace) -> int:
    import datetime
    from pathlib import Path

    from driftwatch._offline.bench import BenchError, load_suite, run_suite

    try:
        config = load_config(args.config)
        suite = load_suite(args.suite)
    except (ConfigError, BenchError) as exc:
        print(f"driftwatch: {exc}", file=sys.stderr)
        return 2
    for flag, value in (("--repetitions", args.repetitions), ("--budget", args.budget)):
        if value is not None and value < 1:
            print(f"driftwatch: {flag}: expected a whole number >= 1, got {value}", file=sys.stderr)
            return 2
    outcomes = Path(args.outcomes or f"{suite.name}.outcomes.jsonl")
    progress = Path(args.progress or f"{outcomes}.progress")
    # One run per UTC day by default: a daily cron job that is re-run after a crash resumes it.
    run_id = args.run_id or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    telemetry = None
    if any(k.startswith("OTEL_EXPORTER_OTLP") for k in os.environ):
        from driftwatch._alerting.otel import telemetry_from_env

        telemetry = telemetry_from_env()
    try:
        report = run_suite(
            suite,
            outcomes_path=outcomes,
            progress_path=progress,
            run_id=run_id,
            config=config,
            repetitions=args.repetitions,
            budget=args.budget,
            agent=args.agent,
            agent_callable=args.agent_callable,
            keep_workdirs=args.keep_workdirs,
            telemetry=telemetry,
        )
        for warning in report.warnings[:20]:
            print(f"driftwatch: {warning}", file=sys.stderr)
        if len(report.warnings) > 20:
            print(f"driftwatch: ... and {len(report.warnings) - 20} more warnings", file=sys.stderr)
        sinks: list[Any] = [Printer()]
        if args.alerts_out:
            sinks.append(JsonlSink(args.alerts_out, append=False))
        if telemetry is not None:
            from driftwatch._alerting.otel import OtelAlertSink

            sinks.append(OtelAlertSink(telemetry))
        notifiers = paging_notifiers(config, args.no_notify)
        for sink in [*sinks, *notifiers]:
            for alert in report.new_alerts:
                sink.export(alert)
        for notifier in notifiers:
            notifier.flush(args.notify_timeout)
        for sink in [*sinks, *notifiers]:
            sink.shutdown()
        paged = summarise_paging(notifiers)
    except BenchError as exc:
        print(f"driftwatch: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"driftwatch: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndriftwatch: interrupted; the same command with --run-id {run_id} resumes", file=sys.stderr)
        return 130
    finally:
        if telemetry is not None:
            telemetry.shutdown()  # flushes the spans and alert records
    open_alerts = [a for a in report.alerts if a.status in ("suspected", "confirmed")]
    rate = f"{report.passed}/{report.ran} passed" if report.ran else "nothing left to run"
    print(
        f"bench {suite.name} run {run_id}: {report.ran} task runs ({rate}), {report.skipped} already done; "
        f"outcomes in {outcomes}; open alerts: "
        + (", ".join(f"{a.stream.get('task')} {a.signal} {a.status}" for a in open_alerts) or "none"),
        flush=True,
    )
    fail = {"never": (), "suspected": ("suspected", "confirmed"), "confirmed": ("confirmed",)}[args.fail_on]
    return 1 if any(a.status in fail for a in report.alerts) else paged
