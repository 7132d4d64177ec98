"""The ``driftwatch`` command line: ``main()`` wires one module per subcommand (``_cli/<name>.py``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from driftwatch._cli import alert, bench, compare, demo, ingest, replay, report, serve, status
from driftwatch._cli.logs import logging_pipeline
from driftwatch._version import __version__

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
  status    streams of a running serve (state, baseline and current, last alert), worst first

examples:
  driftwatch demo
  driftwatch replay outcomes.jsonl --alerts-out alerts.jsonl
  driftwatch ingest claude-code ~/.claude/projects --outcomes-out claude-code.jsonl
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 driftwatch demo
  driftwatch report outcomes.jsonl --alerts alerts.jsonl --out report/
  driftwatch alert test --config driftwatch.yaml
  driftwatch serve --config driftwatch.yaml
  driftwatch compare outcomes.jsonl --baseline model=gpt-4-0314 --candidate model=gpt-4-0613
  driftwatch status --url http://127.0.0.1:4318
  driftwatch ingest junit report.xml --outcomes-out junit.jsonl
  driftwatch bench run examples/bench/suite.yaml --outcomes bench.jsonl
"""


#: The subcommands in the order ``driftwatch --help`` lists them; each module has
#: ``add_parser(subparsers)``, which sets ``run(args) -> exit status`` as the parser's default.
COMMANDS = (demo, replay, report, alert, ingest, compare, serve, status, bench)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="driftwatch", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"driftwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    with logging_pipeline():
        result: int = args.run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
