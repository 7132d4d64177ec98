"""``driftwatch compare``: the command-line side of the upgrade gate."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from driftwatch._cli.remote import RemoteError, add_remote_arguments, fetch_outcomes
from driftwatch._outcome import SIGNALS, Outcome

__all__ = ["add_parser", "run"]

HELP = (
    "Compare a baseline set of outcomes with a candidate (a new model, version or prompt) before "
    "rollout. Both come from outcome files (JSONL or CSV, the replay format); with one file, "
    "--baseline and --candidate select the two sides from it, with two files the first is the "
    "baseline and the second the candidate (selectors then filter each). Outcomes with the same "
    "task_id on both sides are paired: exact McNemar for pass/fail, paired t and a paired bootstrap "
    "for numeric signals; otherwise the two-proportion z-test and Welch's t with a bootstrap. "
    "Verdict per signal: better, worse or inconclusive, with effect, interval, q-value "
    "(Benjamini-Hochberg across signals) and the minimum detectable effect at 80%% power. "
    "Exit code 1 when a gated signal is worse beyond --tolerance, 0 otherwise, 2 on usage errors.\n\n"
    "selector keys (comma-separated key=value, all must hold): model, version (label app.version, "
    "version, service.version or harness.version), task, service, kind (task or call), label.NAME, "
    "since, until\n\n"
    "examples:\n"
    "  driftwatch compare outcomes.jsonl --baseline model=gpt-4-0314 --candidate model=gpt-4-0613 \\\n"
    "    --markdown comment.md --json compare.json\n"
    "  driftwatch compare main.jsonl pr.jsonl --tolerance 0.02 --gate success,latency_s\n"
    "  driftwatch compare runs.jsonl --baseline until=2026-03-01 --candidate since=2026-03-01\n"
    "  driftwatch compare --url http://127.0.0.1:4318 --baseline model=a --candidate model=b\n\n"
    "With --url the outcomes come from a running `driftwatch serve` (its outcome history), each side "
    "selected there with the same selector"
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="upgrade gate: baseline vs candidate outcomes; exit 1 when the candidate is worse",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "files", nargs="*", metavar="FILE", help="outcome file(s): one, or baseline then candidate"
    )
    add_remote_arguments(p, optional=True)
    p.add_argument("--baseline", default="", metavar="SELECTOR", help="which outcomes are the baseline")
    p.add_argument("--candidate", default="", metavar="SELECTOR", help="which outcomes are the candidate")
    p.add_argument(
        "--gate",
        default="success,score",
        metavar="SIGNALS",
        help="comma-separated signals whose regression fails the gate (default success,score)",
    )
    p.add_argument(
        "--signals", metavar="SIGNALS", help=f"signals to compare (default all of {', '.join(SIGNALS)})"
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="allowed regression: absolute for pass rates and scores (0.02 = 2 points), relative for "
        "ratios (0.1 = 10%% slower); default 0",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--markdown", metavar="PATH", help="write a Markdown summary (for a PR comment) to PATH")
    p.add_argument("--json", metavar="PATH", help="write the result as JSON to PATH")
    p.set_defaults(run=run)


def _fail(message: str) -> int:
    print(f"driftwatch: {message}", file=sys.stderr)
    return 2


def _read(path: str) -> list[Outcome] | str:
    from driftwatch.collectors._replay import ReadReport, read_outcomes

    if not os.path.isfile(path):
        return f"{path} does not exist; expected an outcome file (.jsonl or .csv) as written by replay/ingest"
    report = ReadReport()
    try:
        outcomes = list(read_outcomes(path, report))
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    for error in report.errors[:20]:
        print(f"driftwatch: skipped {error}", file=sys.stderr)
    if len(report.errors) > 20:
        print(f"driftwatch: ... and {len(report.errors) - 20} more bad lines", file=sys.stderr)
    return outcomes


def _names(text: str | None, what: str) -> list[str] | str | None:
    if text is None:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in SIGNALS]
    if bad:
        return f"{what}: unknown signal {bad[0]!r}; expected a comma-separated list of {', '.join(SIGNALS)}"
    return names


def run(args: argparse.Namespace) -> int:
    from driftwatch._offline.compare import (
        SelectorError,
        compare_outcomes,
        parse_selector,
        select,
        to_markdown,
        to_text,
    )

    if args.url is not None:
        if args.files:
            return _fail("give outcome files or --url, not both")
        args.files = [args.url]  # one source: both selectors are required, as with one file
    elif not args.files:
        return _fail("give one or two outcome files, or --url to read a running driftwatch serve")
    if len(args.files) > 2:
        return _fail(f"compare takes one outcome file or two (baseline, candidate), got {len(args.files)}")
    if len(args.files) == 1 and not (args.baseline and args.candidate):
        return _fail(
            "with one outcome file, give both --baseline and --candidate, e.g. "
            "--baseline model=gpt-4-0314 --candidate model=gpt-4-0613"
        )
    if not 0 < args.alpha < 1:
        return _fail(f"--alpha: expected a number between 0 and 1, got {args.alpha}")
    if not args.tolerance >= 0:
        return _fail(f"--tolerance: expected a number >= 0, got {args.tolerance}")
    if args.resamples < 100:
        return _fail(f"--resamples: expected at least 100, got {args.resamples}")
    gate, signals = _names(args.gate, "--gate"), _names(args.signals, "--signals")
    for v in (gate, signals):
        if isinstance(v, str):
            return _fail(v)
    from driftwatch._offline.compare import HIGHER_IS_BETTER, LOWER_IS_BETTER

    neutral = [s for s in gate or () if s not in HIGHER_IS_BETTER | LOWER_IS_BETTER]
    if neutral:
        return _fail(
            f"--gate: {neutral[0]!r} has no better direction (fewer tokens can be a truncated answer); "
            f"gate on {', '.join(sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER))}"
        )
    try:
        pick_b = parse_selector(args.baseline, "--baseline")
        pick_c = parse_selector(args.candidate, "--candidate")
    except SelectorError as exc:
        return _fail(str(exc))
    sides = []
    if args.url is not None:
        try:  # each side selected by the service, with the same selector (and again below: a no-op)
            sides = [fetch_outcomes(args.url, args.token, sel) for sel in (args.baseline, args.candidate)]
        except RemoteError as exc:
            return _fail(str(exc))
    for path in args.files if args.url is None else ():
        read = _read(path)
        if isinstance(read, str):
            return _fail(read)
        sides.append(read)
    base = select(sides[0], pick_b)
    cand = select(sides[-1], pick_c)
    for name, chosen, sel, path in (
        ("baseline", base, args.baseline, args.files[0]),
        ("candidate", cand, args.candidate, args.files[-1]),
    ):
        if not chosen:
            return _fail(f"--{name} {sel!r} selects no outcomes in {path}; check the model, version or times")
    result = compare_outcomes(
        base,
        cand,
        signals=signals,
        gate=gate or (),
        alpha=args.alpha,
        tolerance=args.tolerance,
        seed=args.seed,
        resamples=args.resamples,
    )
    result.baseline_label = args.baseline or args.files[0]
    result.candidate_label = args.candidate or args.files[-1]
    sys.stdout.write(to_text(result))
    try:
        if args.markdown:
            with open(args.markdown, "w", encoding="utf-8") as fh:
                fh.write(to_markdown(result))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(result.to_dict(), fh, indent=2)
                fh.write("\n")
    except OSError as exc:
        return _fail(f"cannot write {exc.filename}: {exc.strerror}")
    return 1 if result.worse else 0
