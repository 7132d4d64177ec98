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
    "--by KEYS adds one row per dimension (task, model, service, kind, version or label.NAME; "
    "comma-separated keys give a row per combination), each compared on its own and paired within it; "
    "q-values then run over every row and signal, and a gated signal worse in any row fails the gate. "
    "Every row says in words what its sample size can see.\n\n"
    "--plan answers how many cases a comparison needs before you run it: with --rate and --effect "
    "alone, cases per side (and pairs) to detect that change with --power at --alpha, from the exact "
    "power of the tests compare runs; with outcome files (and --by), how many more runs each row "
    "needs to see --effect.\n\n"
    "selector keys (comma-separated key=value, all must hold): model, version (label app.version, "
    "version, service.version or harness.version), task, service, kind (task or call), label.NAME, "
    "since, until\n\n"
    "examples:\n"
    "  driftwatch compare outcomes.jsonl --baseline model=gpt-4-0314 --candidate model=gpt-4-0613 \\\n"
    "    --markdown comment.md --json compare.json\n"
    "  driftwatch compare main.jsonl pr.jsonl --tolerance 0.02 --gate success,latency_s\n"
    "  driftwatch compare runs.jsonl --baseline until=2026-03-01 --candidate since=2026-03-01\n"
    "  driftwatch compare runs.jsonl --baseline model=A --candidate model=B --by task\n"
    "  driftwatch compare --plan --rate 0.8 --effect 0.1            # cases a side for 10 points from 80%%\n"
    "  driftwatch compare runs.jsonl --baseline model=A --candidate model=B --by task --plan --effect 0.2\n"
    "  driftwatch compare --url http://127.0.0.1:4318 --baseline model=A --candidate model=B\n\n"
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
    p.add_argument(
        "--by",
        metavar="KEYS",
        help="one row per dimension: task, model, service, kind, version or label.NAME (comma-separated)",
    )
    plan = p.add_argument_group("planning (--plan)")
    plan.add_argument(
        "--plan", action="store_true", help="say how many cases are needed instead of comparing"
    )
    plan.add_argument(
        "--effect", type=float, metavar="X", help="the change in pass rate to detect (0.1 = ten points)"
    )
    plan.add_argument("--rate", type=float, metavar="P", help="baseline pass rate (without files; e.g. 0.8)")
    plan.add_argument("--power", type=float, default=0.8, help="power to detect --effect (default 0.8)")
    plan.add_argument(
        "--discordance",
        type=float,
        metavar="D",
        help="share of pairs that differ between the sides (paired plans; default: as for "
        "independent sides without files, observed with files)",
    )
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
    from driftwatch._offline.compare import compare_outcomes, to_markdown, to_text

    if args.plan:
        return _plan(args)
    if args.url is not None:
        if args.files:
            return _fail("give outcome files or --url, not both")
        args.files = [args.url]  # one source: both selectors are required, as with one file
    if not args.files:
        return _fail("compare needs one outcome file or two (baseline, candidate), --url, or --plan")
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
    sides = _sides(args)
    if isinstance(sides, str):
        return _fail(sides)
    base, cand, by = sides
    result = compare_outcomes(
        base,
        cand,
        signals=signals,
        gate=gate or (),
        alpha=args.alpha,
        tolerance=args.tolerance,
        seed=args.seed,
        resamples=args.resamples,
        by=by,
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


def _sides(args: argparse.Namespace) -> tuple[list[Outcome], list[Outcome], list[str] | None] | str:
    """Baseline and candidate outcomes and the --by keys, or the usage error."""
    from driftwatch._offline.compare import SelectorError, parse_by, parse_selector, select

    if len(args.files) > 2:
        return f"compare takes one outcome file or two (baseline, candidate), got {len(args.files)}"
    if len(args.files) == 1 and not (args.baseline and args.candidate):
        return (
            "with one outcome file, give both --baseline and --candidate, e.g. "
            "--baseline model=gpt-4-0314 --candidate model=gpt-4-0613"
        )
    try:
        pick_b = parse_selector(args.baseline, "--baseline")
        pick_c = parse_selector(args.candidate, "--candidate")
        by = parse_by(args.by) if args.by is not None else None
    except SelectorError as exc:
        return str(exc)
    sides = []
    if args.url is not None:
        try:  # each side selected by the service, with the same selector (and again below: a no-op)
            sides = [fetch_outcomes(args.url, args.token, sel) for sel in (args.baseline, args.candidate)]
        except RemoteError as exc:
            return str(exc)
    for path in args.files if args.url is None else ():
        read = _read(path)
        if isinstance(read, str):
            return read
        sides.append(read)
    base = select(sides[0], pick_b)
    cand = select(sides[-1], pick_c)
    for name, chosen, sel, path in (
        ("baseline", base, args.baseline, args.files[0]),
        ("candidate", cand, args.candidate, args.files[-1]),
    ):
        if not chosen:
            return f"--{name} {sel!r} selects no outcomes in {path}; check the model, version or times"
    return base, cand, by


def _plan(args: argparse.Namespace) -> int:
    """``compare --plan``: cases needed, from a rate or from outcome files."""
    from driftwatch._offline.compare import plan_outcomes
    from driftwatch._offline.plan import plan_cases, to_plan_text

    if not 0 < args.alpha < 1:
        return _fail(f"--alpha: expected a number between 0 and 1, got {args.alpha}")
    if not 0 < args.power < 1:
        return _fail(f"--power: expected a number between 0 and 1, got {args.power}")
    if args.effect is None or not 0 < args.effect < 1:
        return _fail(
            "--plan needs --effect, the change in pass rate to detect, e.g. --effect 0.1 (ten points)"
        )
    if args.discordance is not None and not 0 <= args.discordance <= 1:
        return _fail(f"--discordance: expected a share between 0 and 1, got {args.discordance}")
    if not args.files:
        if args.rate is None or not 0 <= args.rate <= 1:
            return _fail("--plan without outcome files needs --rate, the baseline pass rate, e.g. --rate 0.8")
        effect = -args.effect if args.rate - args.effect >= 0 else args.effect
        if not 0 <= args.rate + effect <= 1:
            return _fail(f"--effect {args.effect} cannot happen from a rate of {args.rate}")
        plans = [
            plan_cases(args.rate, effect, alpha=args.alpha, power=args.power),
            plan_cases(args.rate, effect, alpha=args.alpha, power=args.power, paired=True),
        ]
        if args.discordance is not None:
            plans.append(
                plan_cases(
                    args.rate,
                    effect,
                    alpha=args.alpha,
                    power=args.power,
                    paired=True,
                    discordance=args.discordance,
                )
            )
        text = to_plan_text(plans)
        sys.stdout.write(text)
        doc: dict[str, Any] = {"plans": [p.to_dict() for p in plans]}
    else:
        sides = _sides(args)
        if isinstance(sides, str):
            return _fail(sides)
        base, cand, by = sides
        rows, text = plan_outcomes(
            base,
            cand,
            by=by or [],
            effect=args.effect,
            alpha=args.alpha,
            power=args.power,
            discordance=args.discordance,
        )
        sys.stdout.write(text)
        doc = {"effect": args.effect, "alpha": args.alpha, "power": args.power, "rows": rows}
    if args.json:
        try:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2)
                fh.write("\n")
        except OSError as exc:
            return _fail(f"cannot write {exc.filename}: {exc.strerror}")
    return 0
