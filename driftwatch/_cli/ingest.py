"""``driftwatch ingest claude-code`` and ``ingest junit``: outcomes from other sources, then detection."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from driftwatch._cli.shared import (
    add_paging_arguments,
    detect,
    help_without_action,
    paging_notifiers,
    summarise_paging,
    write_outcomes,
)
from driftwatch._config import ConfigError, load_config

__all__ = ["add_junit_parser", "add_parser", "run_claude_code", "run_junit"]


def add_parser(sub: Any) -> None:
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
        "and run through detection like `driftwatch replay`, paging the notifiers of --config "
        "(exit 3 when one could not deliver).\n\n"
        "example: driftwatch ingest claude-code ~/.claude/projects --outcomes-out claude-code.jsonl "
        "--alerts-out alerts.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    claude.add_argument("dir", help="folder of session logs, such as ~/.claude/projects (or one .jsonl file)")
    claude.add_argument("--outcomes-out", metavar="PATH", help="write the outcomes as outcome JSONL to PATH")
    claude.add_argument(
        "--alerts-out", metavar="PATH", help="write alerts as Alert JSON lines to PATH (replaced)"
    )
    claude.add_argument("--config", metavar="FILE", help="YAML config file (stream_labels, budget, ...)")
    claude.add_argument("--budget", type=float, help="false alarms per observation per stream (default 1e-4)")
    add_paging_arguments(claude)
    claude.set_defaults(run=run_claude_code)
    add_junit_parser(ingest_sub)
    help_without_action(ingest)


def run_claude_code(args: argparse.Namespace) -> int:
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
    notifiers = paging_notifiers(config, args.no_notify)
    monitor, counts = detect(
        config, outcomes, args.alerts_out, "outcomes through detection", notifiers, args.notify_timeout
    )
    print(
        f"ingested {report.files} session logs ({report.lines} lines): {len(outcomes)} outcomes in "
        f"{monitor.stream_count} streams; {report.bad_lines} bad lines skipped; alerts: {counts}"
    )
    return summarise_paging(notifiers)


def add_junit_parser(ingest_sub: Any) -> None:
    p = ingest_sub.add_parser(
        "junit",
        help="JUnit XML reports (pytest --junitxml, Surefire, Jest, ...)",
        description="Read JUnit XML reports and make one outcome per test suite run: pass rate as score, "
        "success when no test failed or errored, the suite's time as latency_s, test/failed/skipped "
        "counts and the failing test ids as labels; with --per-test also one outcome per test case "
        "(task SUITE/tests, task_id = classname::name, so `driftwatch compare` pairs the same tests "
        "across runs). Bad XML "
        "is reported as file:line:column and skipped; the other files are still read. Outcomes are "
        "written as outcome JSONL (the replay format) and run through detection like `driftwatch "
        "replay`, paging the notifiers of --config (exit 3 when one could not deliver).\n\n"
        "example: pytest --junitxml=report.xml; driftwatch ingest junit report.xml --task agent-tests "
        "--outcomes-out junit.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE.xml", help="JUnit XML report(s)")
    p.add_argument("--task", help="task name for the outcomes (default: the suite's name)")
    p.add_argument("--per-test", action="store_true", help="also one outcome per test case")
    p.add_argument("--outcomes-out", metavar="PATH", help="write the outcomes as outcome JSONL to PATH")
    p.add_argument("--append", action="store_true", help="with --outcomes-out: append instead of overwrite")
    p.add_argument("--alerts-out", metavar="PATH", help="write alerts as Alert JSON lines to PATH (replaced)")
    p.add_argument("--config", metavar="FILE", help="YAML config file (stream_labels, budget, ...)")
    p.add_argument("--budget", type=float, help="false alarms per observation per stream (default 1e-4)")
    add_paging_arguments(p)
    p.set_defaults(run=run_junit)


def run_junit(args: argparse.Namespace) -> int:
    from driftwatch.collectors._junit import JunitReport, read_junit

    try:
        config = load_config(args.config, **({"budget": args.budget} if args.budget else {}))
    except ConfigError as exc:
        print(f"driftwatch: {exc}", file=sys.stderr)
        return 2
    missing = [f for f in args.files if not os.path.isfile(f)]
    if missing:
        print(
            f"driftwatch: {missing[0]} does not exist; expected a JUnit XML file such as the one "
            "`pytest --junitxml=report.xml` writes",
            file=sys.stderr,
        )
        return 2
    report = JunitReport()
    outcomes = []
    for path in args.files:
        outcomes += list(
            read_junit(path, report, task=args.task, per_test=args.per_test, service=config.service)
        )
    for error in report.errors[:20]:
        print(f"driftwatch: skipped {error}", file=sys.stderr)
    if len(report.errors) > 20:
        print(f"driftwatch: ... and {len(report.errors) - 20} more problems", file=sys.stderr)
    outcomes.sort(key=lambda o: o.time)
    if args.outcomes_out and not write_outcomes(args.outcomes_out, outcomes, append=args.append):
        return 2
    notifiers = paging_notifiers(config, args.no_notify)
    monitor, counts = detect(
        config, outcomes, args.alerts_out, "outcomes through detection", notifiers, args.notify_timeout
    )
    print(
        f"ingested {report.files} of {len(args.files)} JUnit files ({report.suites} suites, {report.cases} "
        f"test cases): {len(outcomes)} outcomes in {monitor.stream_count} streams; "
        f"{len(report.errors)} problems skipped; alerts: {counts}"
    )
    paged = summarise_paging(notifiers)
    return 1 if report.files == 0 else paged
