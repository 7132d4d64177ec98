"""Issue 16 items 1-2 at the detector level: stage one (``LaggedSR`` with its self-starting phase and
dependence estimate) and stage two (``SequentialConfirm`` with ``LaggedSR.confirm_kwargs()``), on
production-shaped null streams and changes, with and without the dependence estimate.

The lifecycle mirrors the monitor's (``driftwatch/_monitor/watch.py``): an alarm is a *suspected*
alert; the detector restarts on the next value (River's form) and keeps being fed while the fresh
values after the alarm go to the confirmation; a *confirmed* decision is a page (the detector has
already restarted at the alarm, so the suspicion's values never become the new baseline; stage two
sees the values seasonally adjusted, ``LaggedSR.adjusted``, at 500 observations a day); a
withdrawal, or no decision within ``--confirm-max`` fresh values, resumes the detector from the
history it had at the alarm plus the fresh values (``LaggedSR.resume``), as the monitor does after a
false alarm. Nulls are counted from the first observation.

Run: ``.venv/bin/python -P benchmarks/dependence.py`` (seed 20261201; about 4 min on 2 cores) or
``--quick``. Writes nothing; docs/detection.md quotes its output.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import production as P

from driftwatch._stats import Moments
from driftwatch.detectors import LaggedSR
from driftwatch.detectors._sequential import SequentialConfirm

SEED = 20261201
#: Event times: 500 observations a day (the cycles' rate), so numeric streams can show a seasonal profile.
PER_DAY = 500

NULLS: list[tuple[str, bool, P.Generator]] = [
    ("iid pass rate 0.85", True, P.iid_pass(0.85)),
    ("iid log-normal sd 0.5", False, P.lognormal(0.5)),
    ("Markov bursts ρ=0.2", True, P.markov_pass(0.85, 0.2)),
    ("Markov bursts ρ=0.35", True, P.markov_pass(0.85, 0.35)),
    ("Markov bursts ρ=0.5", True, P.markov_pass(0.85, 0.5)),
    ("regime batches, pass 0.95/0.60", True, P.regime_pass(0.95, 0.60)),
    ("regime batches, tokens ×1.6", False, P.regime_log(math.log(1.6), 0.5)),
    ("AR(1) φ=0.3, log tokens", False, P.ar1_log(0.3, 0.5)),
    ("AR(1) φ=0.5, log tokens", False, P.ar1_log(0.5, 0.5)),
    ("daily cycle ±25%, 500/day", False, P.cycle_log(0.5, P.LOG25, 500)),
    ("daily cycle ±10%, 500/day", False, P.cycle_log(0.5, math.log(1.1), 500)),
    ("daily cycle ±25%, 2,000/day", False, P.cycle_log(0.5, P.LOG25, 2000)),
    ("weekly ±25% and daily ±10%, 200/day", False, P.cycle_log(0.5, math.log(1.1), 200, weekly=P.LOG25)),
]
#: (name, binary, model, change at, after: pass rate or log shift)
CHANGES: list[tuple[str, bool, P.Generator, int, float]] = [
    ("pass 0.85 → 0.45 at 40 (fresh stream)", True, P.iid_pass(0.85), 40, 0.45),
    ("pass 0.85 → 0.45 at 100 (fresh stream)", True, P.iid_pass(0.85), 100, 0.45),
    ("tokens ×2.5 at 40 (fresh stream)", False, P.lognormal(0.5), 40, math.log(2.5)),
    ("Markov ρ=0.5: pass 0.85 → 0.65 at 1000", True, P.markov_pass(0.85, 0.5), 1000, 0.65),
    ("AR(1) φ=0.5: tokens ×1.5 at 1000", False, P.ar1_log(0.5, 0.5), 1000, math.log(1.5)),
    ("regime batches: pass −0.2 at 1000", True, P.regime_pass(0.95, 0.60), 1000, -0.2),
    ("iid: pass 0.85 → 0.75 at 1000", True, P.iid_pass(0.85), 1000, 0.75),
    ("daily ±25%, 500/day: latency +30% at 1500", False, P.cycle_log(0.5, P.LOG25, 500), 1500, math.log(1.3)),
    (
        "daily ±25%, 2,000/day: latency +30% at 6000",
        False,
        P.cycle_log(0.5, P.LOG25, 2000),
        6000,
        math.log(1.3),
    ),
]
#: Observations a day of the streams whose cycle has another rate than PER_DAY (by name).
RATES = {"2,000/day": 2000, "200/day": 200}
#: The arms compared, as (dependence estimate, seasonal baseline): the independent detector, the
#: previous default (dependence-aware), and today's (dependence-aware with a seasonal baseline).
ARMS: tuple[tuple[bool, bool], ...] = ((False, False), (True, False), (True, True))


def per_day(name: str) -> int:
    return next((rate for key, rate in RATES.items() if key in name), PER_DAY)


def run(
    values: list[float], binary: bool, arm: tuple[bool, bool], confirm_max: int, rate: int = PER_DAY
) -> tuple[list[int], list[int]]:
    """(suspected indices, confirmed indices) of one stream through the two stages, ``rate``
    observations a day."""
    det = LaggedSR(kind="binary" if binary else "numeric", dependence=arm[0], seasonal=arm[1])
    kind = "binary" if binary else "numeric"
    suspected: list[int] = []
    confirmed: list[int] = []
    test: SequentialConfirm | None = None
    history = Moments()
    fresh = Moments()
    for i, x in enumerate(values):
        t = i * 86400.0 / rate
        if test is not None:
            det.learn(x, t)  # stage two's values still teach the seasonal profile
            seen = det.adjusted(x, t)
            test.update(seen)
            fresh.add(seen)
            if test.decision == "confirm":
                confirmed.append(i)
                test = None
            elif test.decision == "withdraw" or test.n >= confirm_max:
                test = None
                det.resume(history.merged(fresh), t)
                continue  # this value is in the resumed baseline
        det.update(x, t)
        if det.drift_detected and test is None:
            suspected.append(i)
            before, _ = det.split()
            history = det.observed
            fresh = Moments()
            if before.n >= 2:
                test = SequentialConfirm(kind, before, det.direction or "down", **det.confirm_kwargs())  # type: ignore[arg-type]
    return suspected, confirmed


def job(args: tuple[str, int, int, int, int, int]) -> tuple[str, int, list[tuple[list[int], list[int]]]]:
    what, index, rows, seed, arm, confirm_max = args
    name = NULLS[index][0] if what == "null" else CHANGES[index][0]
    rng = np.random.default_rng([seed, index, 0 if what == "null" else 1])
    if what == "null":
        _, binary, model = NULLS[index]
        data = model(rng, rows, 10_000)
    else:
        _, binary, model, at, after = CHANGES[index]
        data = model(rng, rows, at + 1500)
        if binary:
            if after < 0:  # a shift of the pass rate of a non-iid model: thin the passes
                keep = rng.random(data.shape) < (0.775 + after) / 0.775
                data[:, at:] = np.where(data[:, at:] > 0.5, keep[:, at:], 0.0)
            else:
                u = rng.random(data.shape)
                data[:, at:] = np.where(data[:, at:] > 0.5, u[:, at:] < after / 0.85, 0.0)
        else:
            data[:, at:] += after
    out = [run(row.tolist(), binary, ARMS[arm], confirm_max, per_day(name)) for row in data]
    return what, index, out


def section(
    nulls: int = 30,
    changes: int = 100,
    seed: int = SEED,
    jobs: int = 2,
    confirm_max: int = 1000,
    cmd: str = "",
) -> list[str]:
    """The tables (markdown lines): nulls and changes, each through the ``ARMS``."""
    started = time.monotonic()
    # Pass/fail streams have no seasonal baseline: their last arm is the one before it.
    numeric = {("null", i): not b for i, (_, b, _) in enumerate(NULLS)}
    numeric |= {("change", i): not c[1] for i, c in enumerate(CHANGES)}
    work = [
        (what, i, nulls if what == "null" else changes, seed, arm, confirm_max)
        for what, i in numeric
        for arm in range(len(ARMS))
        if arm < len(ARMS) - 1 or numeric[(what, i)]
    ]
    results: dict[tuple[str, int, int], list[tuple[list[int], list[int]]]] = {}
    with multiprocessing.Pool(max(1, jobs)) as pool:
        for w, (what, i, out) in zip(work, pool.imap(job, work), strict=True):
            results[(what, i, w[4])] = out
    for what, i in numeric:
        results.setdefault((what, i, len(ARMS) - 1), results[(what, i, len(ARMS) - 2)])
    lines = [
        f"Generated by `{cmd or 'python -P benchmarks/dependence.py'}` (seed {seed}; "
        f"{time.monotonic() - started:.0f} s; {nulls} null streams × 10,000, {changes} change streams). "
        "Rates per 10k observations counted from the first, exact Poisson 95% intervals; 500 "
        "observations a day unless the name says otherwise. Each cell reads *independent → "
        "dependence-aware → with the seasonal baseline* (`LaggedSR(dependence=False, seasonal=False)` "
        "→ `LaggedSR(seasonal=False)` → the default; pass/fail streams have no seasonal baseline, so "
        "their last two agree by construction).",
        "",
        "| null stream | suspected / 10k | pages / 10k |",
        "|---|---|---|",
    ]
    for i, (name, _, _) in enumerate(NULLS):
        cells = []
        for col in (0, 1):
            parts = []
            for arm in range(len(ARMS)):
                res = results[("null", i, arm)]
                k = sum(len(r[col]) for r in res)
                m, lo, hi = P.poisson_ci(k, len(res) * 10_000)
                parts.append(f"{m:.2f} ({lo:.2f}–{hi:.2f})")
            cells.append(" → ".join(parts))
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    lines += [
        "",
        "| change | first suspicion, median delay | first page, median delay | paged within 1,500 "
        "| false suspicions before the change / 10k |",
        "|---|---|---|---|---|",
    ]
    for i, (name, _, _, at, _) in enumerate(CHANGES):
        cells: dict[int, list[str]] = {0: [], 1: [], 2: [], 3: []}
        for arm in range(len(ARMS)):
            res = results[("change", i, arm)]
            for col in (0, 1):
                d = [min((j - at for j in r[col] if j >= at), default=math.inf) for r in res]
                med = float(np.median(d))
                cells[col].append("∞" if math.isinf(med) else f"{med:.0f}")
                if col == 1:
                    cells[2].append(f"{np.isfinite(d).mean():.0%}")
            pre = sum(sum(1 for j in r[0] if j < at) for r in res)
            cells[3].append(f"{1e4 * pre / (len(res) * at):.1f}")
        lines.append(f"| {name} | " + " | ".join(" → ".join(cells[c]) for c in range(4)) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--null-streams", type=int, default=None)
    parser.add_argument("--change-streams", type=int, default=None)
    parser.add_argument("--confirm-max", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    nulls = args.null_streams or (4 if args.quick else 30)
    changes = args.change_streams or (20 if args.quick else 100)
    cmd = "python -P benchmarks/dependence.py" + (" --quick" if args.quick else "")
    print("\n".join(section(nulls, changes, args.seed, args.jobs, args.confirm_max, cmd)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
