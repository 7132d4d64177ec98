"""Calibrates LaggedCusum thresholds by simulation under no change (``make calibrate``).

The simulation replays ``LaggedCusum`` exactly, vectorised with NumPy over many seeded streams,
including the warm-up and lagged estimates of the base rate and spread. For each base rate it
finds the smallest log-likelihood-ratio threshold
whose false-alarm rate (alarms per observation after warm-up, first alarm per stream, exposure
censored at the horizon) is at most half the budget: the margin absorbs simulation error and the
base rate being estimated, and makes a 10,000-observation stream without change more often quiet.

Run: ``python -m driftwatch.detectors._calibrate --out detectors/thresholds.json``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
from driftwatch.detectors._lagged_cusum import DEFAULT_LAG, DEFAULT_SHIFTS, DEFAULT_WARMUP
from numpy.typing import NDArray

__all__ = ["alarm_times", "calibrate", "false_alarm_rate"]

FloatArray = NDArray[np.float64]
Sampler = Callable[[np.random.Generator, tuple[int, int]], FloatArray]


def bernoulli(p: float) -> Sampler:
    def draw(rng: np.random.Generator, shape: tuple[int, int]) -> FloatArray:
        return (rng.random(shape) < p).astype(np.float64)

    return draw


def gaussian(rng: np.random.Generator, shape: tuple[int, int]) -> FloatArray:
    return rng.standard_normal(shape)


def alarm_times(
    data: FloatArray,
    *,
    kind: str,
    shifts: Sequence[float] = DEFAULT_SHIFTS,
    warmup: int = DEFAULT_WARMUP,
    lag: int = DEFAULT_LAG,
    thresholds: FloatArray,
) -> NDArray[np.int64]:
    """First alarm index (0-based, or -1) of ``LaggedCusum`` per stream and threshold.

    Replays ``LaggedCusum.update`` exactly, vectorised over streams (rows of ``data``). All
    thresholds are evaluated in one pass because the CUSUM paths do not depend on them.
    """
    n_streams, length = data.shape
    csum = np.cumsum(data, axis=1)
    csum2 = np.cumsum(data * data, axis=1)
    sh = np.asarray(shifts, dtype=np.float64)
    stat_up = np.zeros((n_streams, len(sh)))
    stat_down = np.zeros((n_streams, len(sh)))
    thr = np.asarray(thresholds, dtype=np.float64)
    first = np.full((n_streams, len(thr)), -1, dtype=np.int64)
    for t in range(warmup, length):
        k = max(warmup, t - lag)  # the baseline is observations 0 .. k-1
        m = csum[:, k - 1] / k
        x = data[:, t]
        if kind == "binary":
            p = np.clip(m, 0.02, 0.98)[:, None]
            sd = np.sqrt(p * (1 - p))
            q_up = np.clip(p + sh * sd, 1e-4, 1 - 1e-4)
            q_down = np.clip(p - sh * sd, 1e-4, 1 - 1e-4)
            hit = (x > 0.5)[:, None]
            llr_up = np.where(hit, np.log(q_up / p), np.log((1 - q_up) / (1 - p)))
            llr_down = np.where(hit, np.log(q_down / p), np.log((1 - q_down) / (1 - p)))
            llr_up[m >= 0.98] = -np.inf  # no room to go up: the arm stays at zero
            llr_down[m <= 0.02] = -np.inf
        else:
            var = (csum2[:, k - 1] - k * m * m) / (k - 1)
            sd1 = np.sqrt(np.maximum(var, 0.0))
            sd1[sd1 == 0] = 1.0
            z = np.clip((x - m) / sd1, -5.0, 5.0)[:, None]
            llr_up = sh * (z - sh / 2)
            llr_down = sh * (-z - sh / 2)
        np.maximum(stat_up + llr_up, 0.0, out=stat_up)
        np.maximum(stat_down + llr_down, 0.0, out=stat_down)
        best = np.maximum(stat_up.max(axis=1), stat_down.max(axis=1))
        hit_thr = (best[:, None] > thr[None, :]) & (first < 0)
        if hit_thr.any():
            rows, cols = np.nonzero(hit_thr)
            first[rows, cols] = t
    return first


def false_alarm_rate(first: NDArray[np.int64], warmup: int, length: int) -> NDArray[np.float64]:
    """Alarms per observation after warm-up: first alarms over exposure (censored at the horizon)."""
    exposure = np.where(first >= 0, first - warmup + 1, length - warmup).sum(axis=0)
    alarms = (first >= 0).sum(axis=0)
    return np.asarray(alarms / np.maximum(exposure, 1), dtype=np.float64)


def calibrate(
    sampler: Sampler,
    *,
    kind: str,
    shifts: Sequence[float] = DEFAULT_SHIFTS,
    warmup: int = DEFAULT_WARMUP,
    lag: int = DEFAULT_LAG,
    budget: float = 1e-4,
    margin: float = 0.5,
    streams: int = 1000,
    horizon: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """The smallest LLR threshold whose simulated false-alarm rate is at most ``margin * budget``.

    Returns (threshold, measured rate at that threshold).
    """
    rng = np.random.default_rng(seed)
    data = sampler(rng, (streams, warmup + horizon))
    grid = np.round(np.arange(4.0, 16.0, 0.1), 4)
    first = alarm_times(data, kind=kind, shifts=shifts, warmup=warmup, lag=lag, thresholds=grid)
    rates = false_alarm_rate(first, warmup, warmup + horizon)
    ok = np.nonzero(rates <= margin * budget)[0]
    if len(ok) == 0:
        raise RuntimeError("no threshold in the grid meets the budget; widen the grid")
    i = int(ok[0])
    return float(grid[i]), float(rates[i])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="detectors/thresholds.json", help="where to write the table")
    parser.add_argument("--streams", type=int, default=1000, help="simulated streams per base rate")
    parser.add_argument("--horizon", type=int, default=10_000, help="observations per stream after warm-up")
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args(argv)
    budget = 1e-4
    rates = [round(p, 2) for p in np.arange(0.02, 0.99, 0.04)]
    table: dict[str, object] = {}
    started = time.monotonic()
    binary: dict[str, list[float]] = {}
    for i, p in enumerate(rates):
        thr, rate = calibrate(
            bernoulli(p),
            kind="binary",
            budget=budget,
            streams=args.streams,
            horizon=args.horizon,
            seed=args.seed + i,
        )
        binary[f"{p:.2f}"] = [thr, rate]
        print(f"binary p={p:.2f}: threshold {thr:.2f}, false alarms/10k {rate * 1e4:.2f}", file=sys.stderr)
    thr, rate = calibrate(
        gaussian, kind="numeric", budget=budget, streams=args.streams, horizon=args.horizon, seed=args.seed
    )
    print(f"numeric: threshold {thr:.2f}, false alarms/10k {rate * 1e4:.2f}", file=sys.stderr)
    table = {
        "comment": "LLR thresholds for LaggedCusum; generated by `make calibrate`; do not edit by hand",
        "command": "python -m driftwatch.detectors._calibrate " + " ".join(argv or sys.argv[1:]),
        "seed": args.seed,
        "streams": args.streams,
        "horizon": args.horizon,
        "warmup": DEFAULT_WARMUP,
        "lag": DEFAULT_LAG,
        "shifts": list(DEFAULT_SHIFTS),
        "budget": budget,
        "margin": 0.5,
        "binary": binary,
        "numeric": [thr, rate],
        "seconds": round(time.monotonic() - started, 1),
    }
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(table, fh, indent=1)
        fh.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
