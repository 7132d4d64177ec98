"""Where the gap to the oracle comes from: the same statistic with one restriction lifted at a time.

On the two goal shifts, each variant's threshold is calibrated here (no-change streams, at most 0.95
false alarms per 10,000 monitored observations, exposure after the 500-observation warm-up) and its
median delay measured on change streams (change after 1,000 observations), the same streams for
every variant. From the oracle (a CUSUM told both rates) to driftwatch's default: a Shiryaev–Roberts
statistic with only the matched alternative and the true base rate; the base rate estimated from a
lagged baseline; two shift sizes in the change's direction; the matched shift both ways; all four
alternatives with the true base rate; and four alternatives with an estimated base rate (the
default at 0.51; at 0.90 the default also switches off "up 0.45 sd", an impossible 1.035).

Run: .venv/bin/python -P benchmarks/detection_decomposition.py [--streams 2000] (a few minutes)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from driftwatch.detectors._calibrate import _log1p_exp, false_alarm_rate

WARMUP, TAU, POST, NULL, LAG = 500, 1000, 1500, 500 + 10_000, 300
Arm = tuple[float, float]  # (direction +1/-1, shift in standard deviations)


def first_alarms(
    data: NDArray[np.float64],
    arms: Sequence[Arm],
    grid: NDArray[np.float64],
    p_known: float | None,
    cusum: bool,
) -> NDArray[np.int64]:
    n, length = data.shape
    csum = np.cumsum(data, axis=1)
    signs = np.array([a[0] for a in arms])
    sizes = np.array([a[1] for a in arms])
    log_w = np.log(1 / len(arms))
    stat = np.full((n, len(arms)), 0.0 if cusum else -np.inf)
    first = np.full((n, len(grid)), -1)
    for t in range(WARMUP, length):
        k = max(WARMUP, t - LAG + 1)
        p = np.full(n, p_known) if p_known is not None else np.clip(csum[:, k - 1] / k, 0.02, 0.98)
        p = p[:, None]
        q = np.clip(p + signs * sizes * np.sqrt(p * (1 - p)), 1e-4, 1 - 1e-4)
        llr = np.where((data[:, t] > 0.5)[:, None], np.log(q / p), np.log((1 - q) / (1 - p)))
        if cusum:
            stat = np.maximum(stat + llr, 0.0)
            best = stat.max(axis=1)
        else:
            stat = _log1p_exp(stat) + llr
            best = np.logaddexp.reduce(stat + log_w, axis=1)
        hit = (best[:, None] > grid) & (first < 0)
        if hit.any():
            rows, cols = np.nonzero(hit)
            first[rows, cols] = t
    return first


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    for p0, p1 in ((0.51, 0.38), (0.90, 0.765)):
        rng = np.random.default_rng(args.seed)
        null = (rng.random((args.streams, NULL)) < p0).astype(float)
        change = np.concatenate(
            [rng.random((args.streams, TAU)) < p0, rng.random((args.streams, POST)) < p1], axis=1
        ).astype(float)
        shift = (p0 - p1) / np.sqrt(p0 * (1 - p0))
        down = -1.0
        variants: list[tuple[str, list[Arm], float | None, bool]] = [
            ("oracle: CUSUM, true rates, one-sided", [(down, shift)], p0, True),
            ("SR, matched arm, true base rate", [(down, shift)], p0, False),
            ("SR, matched arm, estimated base rate", [(down, shift)], None, False),
            ("SR, 0.3 and 0.45 sd down, estimated", [(down, 0.3), (down, 0.45)], None, False),
            ("SR, matched arm both ways, estimated", [(down, shift), (1.0, shift)], None, False),
            ("SR, four arms, true base rate", [(1, 0.3), (down, 0.3), (1, 0.45), (down, 0.45)], p0, False),
            (
                "SR, four arms, estimated (as LaggedSR)",
                [(1, 0.3), (down, 0.3), (1, 0.45), (down, 0.45)],
                None,
                False,
            ),
        ]
        print(f"pass rate {p0} -> {p1} (shift {shift:.2f} sd), {args.streams} streams, seed {args.seed}")
        oracle = None
        for name, arms, known, cusum in variants:
            grid = np.round(np.arange(3.0, 12.0, 0.02), 3)
            fa = false_alarm_rate(first_alarms(null, arms, grid, known, cusum), WARMUP, NULL)
            i = int(np.nonzero(fa <= 0.95e-4)[0][0])
            hits = first_alarms(change, arms, grid[i : i + 1], known, cusum)[:, 0]
            median = float(np.median(hits[hits >= TAU] - TAU + 1))
            oracle = oracle or median
            row = f"h={grid[i]:5.2f}  FA/10k {fa[i] * 1e4:.2f}  median {median:5.0f}  {median / oracle:.2f}x"
            print(f"  {name:42s} {row}")


if __name__ == "__main__":
    main()
