"""Fleet control in stage two: lone sequential tests against e-BH across the open candidates.

``m`` candidates are suspected at once (a model upgrade moving many streams), each on a pass rate
of 0.51 with a baseline of 700 observations; a share ``pi1`` of them really moved to 0.38, the rest
did not. Each candidate's stage two (``SequentialConfirm``, the Monitor's defaults) sees one fresh
observation per step, for at most ``HORIZON`` steps.

* **lone** (shipped): a candidate pages when its own likelihood ratio reaches 1 / alpha.
* **e-BH**: the ratios are e-values; after each step, e-BH at level alpha over all ``m`` candidates
  (paged ones keep the ratio they paged at, the others their current one) pages those it rejects.
  e-BH on e-values is Benjamini–Hochberg on p = min(1, 1/e); its k-th threshold is
  m / (alpha k) >= 1 / alpha, so it can never page a candidate that the lone test would not have
  paged by then: across candidates it only makes confirmation harder (at most as hard as the lone
  test when every candidate carries strong evidence).

Reported: false discovery rate E[V / max(R, 1)] over replications, the share of real changes
paged, the median steps to page a real change. Run: .venv/bin/python -P benchmarks/fleet_fdr.py
[--reps 200] [--seed 20261203].
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence

import numpy as np

from driftwatch._stats import Moments
from driftwatch.detectors._sequential import SequentialConfirm

ALPHA, BETA, HORIZON, BASE, AFTER, BASE_N = 0.05, 0.01, 1500, 0.51, 0.38, 700


def e_bh(e: Sequence[float], alpha: float) -> set[int]:
    """Indices e-BH rejects at level ``alpha``: the k largest, k the largest with e_(k) >= m/(alpha k)."""
    m = len(e)
    order = sorted(range(m), key=lambda i: -e[i])
    k = max((r for r in range(1, m + 1) if e[order[r - 1]] >= m / (alpha * r)), default=0)
    return set(order[:k])


def bh(p: Sequence[float], alpha: float) -> set[int]:
    """Indices Benjamini–Hochberg rejects at level ``alpha`` (offline, step-up)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    k = max((r for r in range(1, m + 1) if p[order[r - 1]] <= alpha * r / m), default=0)
    return set(order[:k])


def replication(m: int, pi1: float, seed: int) -> dict[str, tuple[int, int, list[int]]]:
    """(false pages, pages, steps to page of the real changes) per rule."""
    rng = np.random.default_rng(seed)
    changed = rng.random(m) < pi1
    rates = np.where(changed, AFTER, BASE)
    base = Moments(BASE_N, BASE, BASE * (1 - BASE) * (BASE_N - 1))
    tests = [SequentialConfirm("binary", base, "down", alpha=ALPHA, beta=BETA) for _ in range(m)]
    # e-BH's own copies never stop on the ratio (a lone test stops at 1 / alpha): same ratios.
    runs = [SequentialConfirm("binary", base, "down", alpha=1e-12, beta=BETA) for _ in range(m)]
    lone: dict[int, int] = {}
    ebh: dict[int, int] = {}
    frozen: dict[int, float] = {}
    data = rng.random((HORIZON, m)) < rates
    for t in range(HORIZON):
        for j in range(m):
            x = float(data[t, j])
            if tests[j].decision == "undecided":
                tests[j].update(x)
                if tests[j].confirmed:
                    lone[j] = t + 1
            if j not in frozen and runs[j].decision == "undecided":
                runs[j].update(x)
        e = [frozen.get(j, float(np.exp(min(run.log_evidence, 700.0)))) for j, run in enumerate(runs)]
        for j in e_bh(e, ALPHA):
            if j not in ebh:
                ebh[j] = t + 1
                frozen[j] = e[j]
        if all(tests[j].decision != "undecided" for j in range(m)) and all(
            j in frozen or runs[j].decision != "undecided" for j in range(m)
        ):
            break
    out = {}
    for name, paged in (("lone", lone), ("e-BH", ebh)):
        false = sum(1 for j in paged if not changed[j])
        out[name] = (false, len(paged), [paged[j] for j in paged if changed[j]])
    out["_changed"] = (int(changed.sum()), 0, [])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--m", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args(argv)
    print(
        f"m = {args.m} candidates at once, {args.reps} replications, seed {args.seed}; "
        f"alpha {ALPHA}\n\n"
        "| share changed | rule | FDR | false pages per replication | real changes paged "
        "| median steps to page |\n"
        "|---:|---|---:|---:|---:|---:|"
    )
    for pi1 in (0.0, 0.2, 0.5, 0.9):
        res = [replication(args.m, pi1, args.seed + 1000 * int(pi1 * 10) + r) for r in range(args.reps)]
        real = sum(r["_changed"][0] for r in res)
        for name in ("lone", "e-BH"):
            fdp = [r[name][0] / max(r[name][1], 1) for r in res]
            steps = [s for r in res for s in r[name][2]]
            paged = len(steps) / real if real else float("nan")
            med = statistics.median(steps) if steps else float("nan")
            false = sum(r[name][0] for r in res) / len(res)
            print(
                f"| {pi1:.1f} | {name} | {statistics.mean(fdp):.3f} | {false:.2f} | {paged:.1%} | {med:.0f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
