"""The ``driftwatch`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from driftwatch._alerting.alerts import JsonlSink
from driftwatch._cli.shared import Printer, detect, write_outcomes
from driftwatch._config import ConfigError, load_config
from driftwatch._version import __version__
from driftwatch.collectors._replay import ReadReport, read_outcomes

__all__ = ["main"]

DESCRIPTION = """\
driftwatch catches silent quality drift in AI agents: calibrated change-point detection on every
stream of outcomes (pass/fail, score, latency, tokens, cost, tool use), with alerts as
OpenTelemetry data.

commands:
  demo      simulated agent on the real anthropic SDK against a local fake API; prints the alert
  replay    run detection over a recorded outcome file (JSONL or CSV) in event time
  alert     alert test: send one synthetic alert through every configured notifier
  ingest    outcomes from other sources (Claude Code session logs, JUnit XML), then detection
  compare   upgrade gate: baseline vs candidate outcomes, exit 1 when the candidate is worse
  bench     run a fixed task suite against an agent (a canary); adaptive on suspected drift
  report    self-contained HTML report with daily candlesticks per stream, and a summary table
  serve     OTLP receiver (HTTP 127.0.0.1:4318, gRPC 127.0.0.1:4317) for traces, logs and metrics

examples:
  driftwatch demo
  driftwatch replay outcomes.jsonl --alerts-out alerts.jsonl
  driftwatch ingest claude-code ~/.claude/projects --outcomes-out claude-code.jsonl
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 driftwatch demo
  driftwatch report outcomes.jsonl --alerts alerts.jsonl --out report/
  driftwatch alert test --config driftwatch.yaml
  driftwatch serve --config driftwatch.yaml
  driftwatch compare outcomes.jsonl --baseline model=gpt-4-0314 --candidate model=gpt-4-0613
  driftwatch ingest junit report.xml --outcomes-out junit.jsonl
  driftwatch bench run examples/bench/suite.yaml --outcomes bench.jsonl
"""


def _replay(args: argparse.Namespace) -> int:
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
    notifiers: list[Any] = []
    if config.notifiers and not args.no_notify:
        from driftwatch._alerting.notifiers import build_notifiers

        notifiers = build_notifiers(config)
        print(
            "paging: alerts also go to "
            + ", ".join(n.name for n in notifiers)
            + " (the notifiers in the config; --no-notify to only print them)",
            flush=True,
        )
    elif config.notifiers:
        print(
            f"not paging: --no-notify; the {len(config.notifiers)} notifiers in the config get nothing",
            flush=True,
        )
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
    for notifier in notifiers:
        print(f"notifier {notifier.summary()}", flush=True)
    if metrics is not None:
        _hold(args.hold)
        metrics.close()
    return 0


def _ingest_claude_code(args: argparse.Namespace) -> int:
    import os

    from driftwatch.collectors._claude_code import SessionLogReport, read_session_logs

    try:
        config = load_config(args.config, **({"budget": args.budget} if args.budget else {}))
    except ConfigError as exc:
        print(f"driftwatch: {exc}", file=sys.stderr)
        return 2
    if not os.path.exists(args.dir):
        print(
            f"driftwatch: {args.dir} does not exist; expected a folder of Claude Code session logs "
            "such as ~/.claude/projects",
            file=sys.stderr,
        )
        return 2
    report = SessionLogReport()
    outcomes = list(read_session_logs(args.dir, report, stream_labels=config.stream_labels))
    for error in report.errors[:20]:
        print(f"driftwatch: skipped {error}", file=sys.stderr)
    if report.bad_lines > 20:
        print(f"driftwatch: ... and {report.bad_lines - 20} more bad lines", file=sys.stderr)
    outcomes.sort(key=lambda o: o.time)
    if args.outcomes_out and not write_outcomes(args.outcomes_out, outcomes):
        return 2
    monitor, counts = detect(config, outcomes, args.alerts_out, "outcomes through detection")
    print(
        f"ingested {report.files} session logs ({report.lines} lines): {len(outcomes)} outcomes in "
        f"{monitor.stream_count} streams; {report.bad_lines} bad lines skipped; alerts: {counts}"
    )
    return 0


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


def _demo(args: argparse.Namespace) -> int:
    from driftwatch._offline.demo import run_demo

    return run_demo(tasks_per_stream=args.tasks, change_at=args.change_at, seed=args.seed)


def _alert_test(args: argparse.Namespace) -> int:
    from driftwatch._alerting.notifiers import build_notifiers, synthetic_alert

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"driftwatch: {exc}", file=sys.stderr)
        return 2
    if not config.notifiers and not config.markers:
        print(
            "driftwatch: no notifiers or markers configured; add a 'notifiers:' list (or 'markers:') to the "
            "config file (--config or DRIFTWATCH_CONFIG) or set DRIFTWATCH_PAGERDUTY_ROUTING_KEY / "
            "DRIFTWATCH_SLACK_WEBHOOK_URL / DRIFTWATCH_HONEYCOMB_API_KEY / DRIFTWATCH_GRAFANA_TOKEN",
            file=sys.stderr,
        )
        return 2
    notifiers = build_notifiers(config)
    alert = synthetic_alert(config.service)
    # Each sink with the synthetic events it must deliver: notifiers a page and its resolve, markers
    # (Honeycomb, Grafana) a version-change marker.
    plan: list[tuple[Any, list[tuple[str, str]]]] = []
    for notifier in notifiers:
        notifier.export(alert)
        notifier.export(alert.with_status("resolved", message="synthetic test alert resolved"))
        plan.append((notifier, [(alert.id, "trigger"), (alert.id, "resolve")]))
    if config.markers:
        from driftwatch._alerting.markers import build_markers, synthetic_version_change

        change = synthetic_version_change(config.service)
        for marker in build_markers(config):
            marker.export(change)
            plan.append((marker, [(change.id, "note")]))
    failed = 0
    for i, (sink, wanted) in enumerate(plan):
        ok = True
        finished = sink.flush(args.timeout)
        sink.shutdown(0.1)
        done = {(d.alert_id, d.action): d for d in sink.deliveries()}
        parts = []
        for alert_id, action in wanted:
            label = "marker" if action == "note" else action
            d = done.get((alert_id, action))
            if d is not None and d.ok:
                parts.append(f"{label} delivered")
            else:
                ok = False
                why = (
                    d.reason
                    if d is not None
                    else ("not sent" if finished else f"no answer in {args.timeout:g} s")
                )
                parts.append(f"{label} FAILED: {why}")
        failed += not ok
        print(f"{i + 1}. {sink.name}: " + "; ".join(parts))
    what = "destinations delivered everything" if config.markers else "notifiers delivered both"
    print(f"test alert {alert.id}: {len(plan) - failed} of {len(plan)} {what}")
    return 1 if failed else 0


def _serve(args: argparse.Namespace) -> int:
    from driftwatch._serve.receiver import check_bind
    from driftwatch._serve.service import run_serve
    from driftwatch._serve.store import StateError

    try:
        config = load_config(
            args.config,
            host=args.host,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            alerts_out=args.alerts_out,
            state=args.state,
        )
        check_bind(config)
        return run_serve(config)
    except (ConfigError, StateError) as exc:
        print(f"driftwatch: {exc}", file=sys.stderr)
        return 2


def _bench_run(args: argparse.Namespace) -> int:
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
            sinks.append(JsonlSink(args.alerts_out))
        if telemetry is not None:
            from driftwatch._alerting.otel import OtelAlertSink

            sinks.append(OtelAlertSink(telemetry))
        for sink in sinks:
            for alert in report.new_alerts:
                sink.export(alert)
            sink.shutdown()
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
    return 1 if any(a.status in fail for a in report.alerts) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="driftwatch", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"driftwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="simulated agent with a silent degradation; prints the alert and its delay",
        description="Run a simulated coding agent through the real anthropic SDK against a local fake API. "
        "One stream degrades at a known task; the alert is printed with its statistics and the "
        "detection delay. "
        "Exports spans, alert logs and metrics over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.\n\n"
        "example: driftwatch demo --tasks 1000 --change-at 500",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--tasks", type=int, default=1000, help="tasks per stream (default 1000)")
    demo.add_argument("--change-at", type=int, default=500, help="task index where degradation starts")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.set_defaults(run=_demo)

    replay = sub.add_parser(
        "replay",
        help="run detection over a recorded outcome file (JSONL or CSV)",
        description="Run the production detection path over a recorded outcome stream in event time and "
        "print every alert. One JSON object per line: time, task, success, score, latency_s, input_tokens, "
        "output_tokens, cost_usd, tool_calls, labels (all but time and task optional). Bad lines are "
        "reported with their line number and skipped. Alerts are printed, written to --alerts-out and "
        "sent to the notifiers configured in --config (PagerDuty, Slack, webhook; or by "
        "DRIFTWATCH_PAGERDUTY_ROUTING_KEY / DRIFTWATCH_SLACK_WEBHOOK_URL): a replay pages like the "
        "service does, with a delivery summary per notifier at the end; --no-notify only prints.\n\n"
        "example: driftwatch replay outcomes.jsonl --alerts-out alerts.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("file", help="outcome file: .jsonl (default) or .csv")
    replay.add_argument("--alerts-out", metavar="PATH", help="also write alerts as Alert JSON lines to PATH")
    replay.add_argument("--config", metavar="FILE", help="YAML config file")
    replay.add_argument("--budget", type=float, help="false alarms per observation per stream (default 1e-4)")
    replay.add_argument(
        "--no-notify",
        action="store_true",
        help="do not send alerts to the configured notifiers (PagerDuty, Slack, webhook); only print them",
    )
    replay.add_argument(
        "--notify-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="at the end, wait this long for notifiers to deliver what is queued (default 30)",
    )
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
    replay.set_defaults(run=_replay)

    from driftwatch._offline.report import run as _report

    report = sub.add_parser(
        "report",
        help="self-contained HTML report (daily candlesticks, volume, change points) and a summary table",
        description="Write OUT/report.html (opens with no network: charts are inline PNGs) and one PNG per "
        "stream: a daily candlestick of a signal per run (open/close: first and last run of the day, "
        "high/low: the range across runs), outcomes per day, change points of confirmed alerts, version "
        "changes and the baseline 95% interval. Prints a summary table (runs, baseline vs current, open "
        "alerts). Without --alerts, detection runs over the outcomes as in `driftwatch replay`.\n\n"
        "example: driftwatch report outcomes.jsonl --alerts alerts.jsonl --out report/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("file", help="outcome file: .jsonl (default) or .csv")
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
    report.set_defaults(run=_report)

    alert = sub.add_parser(
        "alert",
        help="alert test: send a synthetic alert through every configured notifier",
        description="Alert tools. 'driftwatch alert test' sends one synthetic confirmed alert, then its "
        "resolve, through every configured notifier (PagerDuty, Slack, webhook) and reports per notifier "
        "whether each was delivered or why not; exits 1 if any failed.\n\n"
        "example: driftwatch alert test --config driftwatch.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    alert_sub = alert.add_subparsers(dest="alert_command", metavar="ACTION", required=True)
    alert_test = alert_sub.add_parser(
        "test",
        help="send one synthetic alert and its resolve to every notifier",
        description="Send one synthetic confirmed alert, then its resolve, through every configured "
        "notifier and marker destination; print per destination whether each was delivered or why not; "
        "exit 1 if any failed, 2 if none is configured.\n\n"
        "example: DRIFTWATCH_SLACK_WEBHOOK_URL=https://hooks.slack.com/services/... driftwatch alert test",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    alert_test.add_argument("--config", metavar="FILE", help="YAML config file with a 'notifiers:' list")
    alert_test.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for all deliveries (default 30)"
    )
    alert_test.set_defaults(run=_alert_test)
    ingest = sub.add_parser(
        "ingest",
        help="outcomes from Claude Code session logs or JUnit XML, then detection over them",
        description="Make outcomes from another source and run detection over them in event time.\n\n"
        "examples:\n"
        "  driftwatch ingest claude-code ~/.claude/projects --outcomes-out claude-code.jsonl\n"
        "  driftwatch ingest junit report.xml --outcomes-out junit.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ingest_sub = ingest.add_subparsers(dest="source", metavar="SOURCE")
    claude = ingest_sub.add_parser(
        "claude-code",
        help="Claude Code session logs (~/.claude/projects/**/*.jsonl)",
        description="Read Claude Code session logs (*.jsonl, recursively) and make the outcomes that its "
        "telemetry would give (docs/claude-code.md): per prompt (success = no API error and no failed "
        "tool; tokens, tool calls, latency), per API request and per tool use, per session. Bad lines are "
        "reported as file:line and skipped. Outcomes are written as outcome JSONL (the replay format) "
        "and run through detection like `driftwatch replay`.\n\n"
        "example: driftwatch ingest claude-code ~/.claude/projects --outcomes-out claude-code.jsonl "
        "--alerts-out alerts.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    claude.add_argument("dir", help="folder of session logs, such as ~/.claude/projects (or one .jsonl file)")
    claude.add_argument("--outcomes-out", metavar="PATH", help="write the outcomes as outcome JSONL to PATH")
    claude.add_argument("--alerts-out", metavar="PATH", help="also write alerts as Alert JSON lines to PATH")
    claude.add_argument("--config", metavar="FILE", help="YAML config file (stream_labels, budget, ...)")
    claude.add_argument("--budget", type=float, help="false alarms per observation per stream (default 1e-4)")
    claude.set_defaults(run=_ingest_claude_code)
    from driftwatch._cli.junit import add_junit_parser

    add_junit_parser(ingest_sub)
    from driftwatch._cli.compare import add_compare_parser

    add_compare_parser(sub)
    serve = sub.add_parser(
        "serve",
        help="OTLP receiver (HTTP and gRPC) for traces, logs and metrics",
        description="Receive OTLP over HTTP (protobuf or JSON, gzip) and gRPC for traces, logs and metrics. "
        "Binds 127.0.0.1 by default; any other address needs a bearer token (config key 'token' or "
        "DRIFTWATCH_TOKEN). TLS with config keys tls_cert and tls_key. GET /healthz, /readyz, /stats and "
        "/metrics (Prometheus) on the HTTP port. Every accepted payload is written to the state file "
        "before it is acknowledged, and detector state is checkpointed there: after a crash or kill -9 "
        "the service restores it and replays the rest, losing nothing it acknowledged. Alerts go to "
        "the console, --alerts-out, configured notifiers and, with OTEL_EXPORTER_OTLP_ENDPOINT (and "
        "OTEL_EXPORTER_OTLP_HEADERS, e.g. x-honeycomb-team=KEY), to your OTLP backend.\n\n"
        "examples:\n"
        "  driftwatch serve --state /var/lib/driftwatch/state.db --alerts-out alerts.jsonl\n"
        "  OTEL_EXPORTER_OTLP_ENDPOINT=https://api.honeycomb.io \\\n"
        "    OTEL_EXPORTER_OTLP_HEADERS=x-honeycomb-team=$KEY driftwatch serve --config driftwatch.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--config", metavar="FILE", help="YAML config file")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, metavar="PORT", help="OTLP/HTTP port (default 4318)")
    serve.add_argument("--grpc-port", type=int, metavar="PORT", help="OTLP/gRPC port (default 4317)")
    serve.add_argument("--alerts-out", metavar="PATH", help="also write alerts as Alert JSON lines to PATH")
    serve.add_argument(
        "--state",
        metavar="PATH",
        help="SQLite state file: journal and checkpoints (default driftwatch-state.db)",
    )
    serve.set_defaults(run=_serve)

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
        "cleared sooner; the reason is printed. Exit 1 when an alert is open (see --fail-on), 2 on bad "
        "input.\n\n"
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
    bench_run.add_argument(
        "--fail-on",
        choices=("never", "suspected", "confirmed"),
        default="confirmed",
        help="exit 1 when a stream of the suite has an open alert of this status (default confirmed)",
    )
    bench_run.add_argument(
        "--alerts-out", metavar="PATH", help="also write this run's alert events as Alert JSON lines to PATH"
    )
    bench_run.add_argument(
        "--keep-workdirs", action="store_true", help="keep each run's folder and say where"
    )
    bench_run.set_defaults(run=_bench_run)

    args = parser.parse_args(argv)
    if args.command == "ingest" and not getattr(args, "run", None):
        ingest.print_help()
        return 2
    if args.command == "bench" and not getattr(args, "run", None):
        bench.print_help()
        return 2
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
