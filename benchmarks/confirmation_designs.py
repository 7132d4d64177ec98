"""Stage-two designs compared on the same alarms: which confirmation pages fastest at its error rates?

Stage one is the real ``LaggedSR`` (default settings) on seeded streams that change after 1,000
observations; each design then sees the *same* fresh observations after the alarm (common random
numbers), with the baseline the detector had before its change-point estimate (``split()``).
For the no-change rows, stage one runs at a loose budget (1e-2) so that false alarms are plentiful;
the fresh data then come from the unchanged rate, and a confirm is a false page.

Designs:
  msprt      mixture SPRT over shifts (0.2, 0.3, 0.45, 0.7) sd, confirm at 1/alpha; withdraw when
             "at baseline" beats "shifted 0.2 sd" by 1/beta (detectors/_sequential.py, the default)
  sprt-0.3   Wald's SPRT at the detector's smaller arm (0.3 sd)
  sprt-est   Wald's SPRT at the effect estimated from the detection window (winner's curse)
  gs-25      group-sequential: a look every 25 fresh observations (at most 16), Bonferroni-spent
             alpha / 16 and beta / 16 per look; futility when the upper bound is below 0.2 sd
  fixed-0.01 today's rule: one z-test on as many fresh observations as detection took (30-400),
             at 0.01; "withdraw" when not significant

Run: .venv/bin/python -P benchmarks/confirmation_designs.py [--streams 600] [--seed 20261202]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import sys
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from driftwatch._stats import Moments, compare_means, compare_proportions
from driftwatch.detectors import LaggedSR
from driftwatch.detectors._sequential import SequentialConfirm

ALPHA, BETA, MIN_SHIFT = 0.1, 0.01, 0.2
WEIGHT = 1.0
FRESH_MAX = 2000
TAU = 1000
DESIGNS = ("msprt", "sprt-0.3", "sprt-est", "gs-25", "fixed-0.01")


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    before: float
    after: float
    sd: float = 1.0

    def draw(self, rng: np.random.Generator, n: int, value: float) -> list[float]:
        if self.kind == "binary":
            return [float(v) for v in (rng.random(n) < value)]
        return [float(v) for v in rng.normal(value, self.sd, n)]


CASES = [
    Case("0.51 → 0.38", "binary", 0.51, 0.38),
    Case("0.90 → 0.765", "binary", 0.90, 0.765),
    Case("0.40 → 0.51", "binary", 0.40, 0.51),
    Case("log latency +30% (0.52 sd)", "numeric", 0.0, math.log(1.3), 0.5),
    Case("0.58 → 0.54 (0.08 sd, below min_shift)", "binary", 0.58, 0.54),
    Case("no change 0.51", "binary", 0.51, 0.51),
    Case("no change 0.90", "binary", 0.90, 0.90),
    Case("no change, numeric", "numeric", 0.0, 0.0, 0.5),
]


class GroupSequential:
    """Looks every ``every`` fresh observations (at most ``looks``), Bonferroni-spent per look."""

    def __init__(self, kind: str, base: Moments, direction: str, every: int = 25, looks: int = 16) -> None:
        self.kind, self.base, self.sign = kind, base, 1.0 if direction == "up" else -1.0
        self.every, self.looks = every, looks
        self.z_a = NormalDist().inv_cdf(1 - ALPHA / looks)
        self.z_b = NormalDist().inv_cdf(1 - BETA / looks)
        self.n, self.total, self.decision = 0, 0.0, "undecided"

    def update(self, x: float) -> None:
        if self.decision != "undecided":
            return
        self.n += 1
        self.total += x
        if self.n % self.every or self.n > self.every * self.looks:
            return
        b = self.base
        if self.kind == "binary":
            p = min(max(b.mean, 0.02), 0.98)
            sd = math.sqrt(p * (1 - p))
        else:
            sd = math.sqrt(b.var) or 1.0
        shift = self.sign * (self.total / self.n - b.mean) / sd  # in sd, towards the alarm
        se = math.sqrt(1 / self.n + 1 / b.n)
        if shift / se >= self.z_a:
            self.decision = "confirm"
        elif shift + self.z_b * se < MIN_SHIFT:
            self.decision = "withdraw"


def fixed_test(case: Case, base: Moments, fresh: list[float], direction: str, delay: int) -> tuple[str, int]:
    n = max(30, min(400, delay))
    cur = Moments()
    for x in fresh[:n]:
        cur.add(x)
    if case.kind == "binary":
        p = compare_proportions(base, cur, direction).p_value
    else:
        p = compare_means(base, cur, direction, scale="linear").p_value
    return ("confirm" if p <= 0.01 else "withdraw"), n


def one_stream(job: tuple[int, int, int]) -> list[tuple[int, str, str, int, float]]:
    """Rows (case, design, decision, fresh observations used, winner's-curse ratio) for one seed."""
    case_i, seed, _ = job
    case = CASES[case_i]
    rng = np.random.default_rng(seed)
    null = case.before == case.after
    det = LaggedSR(kind="binary" if case.kind == "binary" else "numeric", budget=1e-2 if null else 1e-4)
    tau = 0 if null else TAU
    stream = case.draw(rng, tau, case.before) + case.draw(rng, 4000, case.after)
    alarm = -1
    for i, x in enumerate(stream):
        det.update(x, float(i))
        if det.drift_detected:
            alarm = i
            break
    if alarm < tau or det.direction is None:
        return []
    direction = det.direction
    before, after = det.split()
    fresh = case.draw(rng, FRESH_MAX, case.after)
    sd = math.sqrt(before.var) if case.kind == "numeric" else math.sqrt(before.mean * (1 - before.mean))
    est = abs(after.mean - before.mean) / (sd or 1.0)
    true = abs(case.after - case.before) / (
        case.sd if case.kind == "numeric" else math.sqrt(case.before * (1 - case.before))
    )
    curse = est / true if true > 0 else float("nan")
    rows = []
    kind = "binary" if case.kind == "binary" else "numeric"
    for design in DESIGNS:
        if design == "fixed-0.01":
            decision, used = fixed_test(case, before, fresh, direction, after.n)
            rows.append((case_i, design, decision, used, curse))
            continue
        if design == "gs-25":
            test: GroupSequential | SequentialConfirm = GroupSequential(kind, before, direction)
        elif design == "msprt":
            test = SequentialConfirm(kind, before, direction, alpha=ALPHA, beta=BETA, baseline_weight=WEIGHT)  # type: ignore[arg-type]
        else:
            size = 0.3 if design == "sprt-0.3" else max(est, 0.05)
            test = SequentialConfirm(
                kind,  # type: ignore[arg-type]
                before,
                direction,  # type: ignore[arg-type]
                alpha=ALPHA,
                beta=BETA,
                shifts=(size,),
                design="sprt",
                baseline_weight=WEIGHT,
            )
        for x in fresh:
            test.update(x)
            if test.decision != "undecided":
                break
        rows.append((case_i, design, test.decision, test.n, curse))
    return rows


def _set(alpha: float, weight: float) -> None:
    global ALPHA, WEIGHT
    ALPHA, WEIGHT = alpha, weight


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=600, help="streams per case")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--weight", type=float, default=1.0, help="baseline_weight of the sequential tests")
    parser.add_argument("--cases", default="", help="comma-separated case indices (default all)")
    args = parser.parse_args()
    _set(args.alpha, args.weight)
    wanted = [int(c) for c in args.cases.split(",")] if args.cases else range(len(CASES))
    jobs = [(c, args.seed + 100_000 * c + s, 0) for c in wanted for s in range(args.streams)]
    print(f"{len(jobs)} streams ...", file=sys.stderr, flush=True)
    with multiprocessing.Pool(args.jobs, initializer=_set, initargs=(args.alpha, args.weight)) as pool:
        rows = [r for chunk in pool.imap(one_stream, jobs, chunksize=20) for r in chunk]
    print(
        "| case | design | alarms | confirm | withdraw | undecided at 2,000 | median fresh n (confirm) "
        "| p90 | median fresh n (withdraw) | winner's curse (est/true, median) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c, case in enumerate(CASES):
        for design in DESIGNS:
            sel = [r for r in rows if r[0] == c and r[1] == design]
            if not sel:
                continue
            conf = [r[3] for r in sel if r[2] == "confirm"]
            wd = [r[3] for r in sel if r[2] == "withdraw"]
            und = sum(1 for r in sel if r[2] == "undecided")
            curse = [r[4] for r in sel if not math.isnan(r[4])]
            print(
                f"| {case.name} | {design} | {len(sel)} | {len(conf) / len(sel):.3f} | "
                f"{len(wd) / len(sel):.3f} | {und / len(sel):.3f} | "
                f"{statistics.median(conf) if conf else float('nan'):.0f} | "
                f"{np.percentile(conf, 90) if conf else float('nan'):.0f} | "
                f"{statistics.median(wd) if wd else float('nan'):.0f} | "
                f"{statistics.median(curse) if curse else float('nan'):.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
