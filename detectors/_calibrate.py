"""Calibrates LaggedSR thresholds by simulation under no change (``make calibrate``).

The simulation replays ``LaggedSR`` exactly, vectorised with NumPy over many seeded streams,
including the warm-up and the lagged estimates of the base rate and spread. For each base rate it
finds two thresholds (on a grid of 0.01): an early one for the first 500 observations after the
warm-up, when the baseline rests on 500-700 values and is least certain, the smallest whose
false-alarm rate there (alarms per observation, first alarm per stream) is within 0.95 of the
budget (the strict check of ``docs/detection.md``; simulated on 20,000 streams); then, with it in
place, the smallest later one whose rate over 10,000 observations (exposure censored at the horizon)
is within 0.95 of the budget. The margin absorbs simulation error (4,000 streams give about 3,800
alarms, a standard error of 1.6%; the early window's 20,000 about 950, 3.2%).

Run: ``python -m driftwatch.detectors._calibrate --out detectors/thresholds.json``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from driftwatch.detectors._lagged_sr import DEFAULT_LAG, DEFAULT_SHIFTS, DEFAULT_WARMUP, EARLY_WINDOW

#: Observations after the warm-up in which the budget must hold on its own (the early threshold's).
EARLY = EARLY_WINDOW

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
    early_thresholds: FloatArray | None = None,
    statistic: str = "sr",
) -> NDArray[np.int64]:
    """First alarm index (0-based, or -1) of ``LaggedSR`` per stream and threshold.

    Replays ``LaggedSR.update`` exactly, vectorised over streams (rows of ``data``). All
    thresholds are evaluated in one pass because the statistic's path does not depend on them.
    ``thresholds`` is one row for all streams or one row per stream. ``early_thresholds`` (same
    shape; default: ``thresholds``) apply in the first ``EARLY`` observations after the warm-up,
    as ``LaggedSR`` uses its early threshold there. ``statistic="cusum"`` replays the largest of
    one-sided CUSUMs over the same alternatives instead (the bank ``docs/detection.md`` compares
    against).
    """
    running = _running(data, kind=kind, shifts=shifts, warmup=warmup, lag=lag, statistic=statistic)
    thr = np.asarray(thresholds, dtype=np.float64)
    early = thr if early_thresholds is None else np.asarray(early_thresholds, dtype=np.float64)
    return _first_alarms(running, warmup + EARLY, thr, early)


def _first_alarms(
    running: FloatArray, split: int, thresholds: FloatArray, early_thresholds: FloatArray
) -> NDArray[np.int64]:
    """First index at which each row's statistic exceeds its threshold: ``early_thresholds`` before
    ``split``, ``thresholds`` from it on. ``running`` holds running maxima that restart at ``split``
    (the statistic's path does not depend on the threshold: a search, not a comparison per step)."""
    n_streams, length = running.shape
    # One row of thresholds for every stream, or one row per stream (a threshold that depends on
    # the stream's own base rate, as the detector picks it).
    thr = thresholds[None, :] if thresholds.ndim == 1 else thresholds
    thr_e = early_thresholds[None, :] if early_thresholds.ndim == 1 else early_thresholds
    split = min(split, length)
    first = np.full((n_streams, thr.shape[1]), -1, dtype=np.int64)
    for row in range(n_streams):
        # The detector fires when the statistic *exceeds* the threshold: the first index whose
        # running maximum is above it.
        e_row, l_row = thr_e[row if thr_e.shape[0] > 1 else 0], thr[row if thr.shape[0] > 1 else 0]
        at = np.searchsorted(running[row, :split], e_row, side="right")
        late = split + np.searchsorted(running[row, split:], l_row, side="right")
        first[row] = np.where(at < split, at, np.where(late < length, late, -1))
    return first


def _running(
    data: FloatArray,
    *,
    kind: str,
    shifts: Sequence[float],
    warmup: int,
    lag: int,
    statistic: str,
) -> FloatArray:
    """The statistic's running maximum per stream and step, restarted at ``warmup + EARLY``."""
    n_streams, length = data.shape
    csum = np.cumsum(data, axis=1)
    csum2 = np.cumsum(data * data, axis=1)
    sh = np.asarray(shifts, dtype=np.float64)
    # Alternatives in the detector's order: for each shift, up then down.
    signs = np.tile(np.array([1.0, -1.0]), len(sh))
    sizes = np.repeat(sh, 2)
    arms = len(sizes)
    stat = np.full((n_streams, arms), -np.inf if statistic == "sr" else 0.0)
    running = np.full((n_streams, length), -np.inf)
    top = np.full(n_streams, -np.inf)
    off = np.zeros((n_streams, arms), dtype=bool)
    if kind == "binary":
        # LaggedSR._choose_arms: at the warm-up's base rate, an alternative outside (0, 1) is off,
        # except the smallest shift of each direction.
        pw = np.clip(csum[:, warmup - 1] / warmup, 0.02, 0.98)[:, None]
        qw = pw + signs * sizes * np.sqrt(pw * (1 - pw))
        off = ~((qw > 0.0) & (qw < 1.0)) & (sizes != sizes.min())
    log_k = np.log((~off).sum(axis=1))
    for t in range(warmup, length):
        if t == warmup + EARLY:  # the threshold changes here: the running maximum starts again
            top = np.full(n_streams, -np.inf)
        # The baseline is observations 0 .. k-1: the warm-up, then all but the latest ``lag`` (the
        # detector moves the oldest pending value into it before scoring the new one).
        k = max(warmup, t - lag + 1) if lag else t
        m = csum[:, k - 1] / k
        x = data[:, t]
        if kind == "binary":
            p = np.clip(m, 0.02, 0.98)[:, None]
            sd = np.sqrt(p * (1 - p))
            q = np.clip(p + signs * sizes * sd, 1e-4, 1 - 1e-4)
            hit = (x > 0.5)[:, None]
            llr = np.where(hit, np.log(q / p), np.log((1 - q) / (1 - p)))
            llr[np.ix_(m >= 0.98, signs > 0)] = -np.inf  # no room to go up: that alternative is off
            llr[np.ix_(m <= 0.02, signs < 0)] = -np.inf
            llr[off] = -np.inf
        else:
            var = (csum2[:, k - 1] - k * m * m) / (k - 1)
            sd1 = np.sqrt(np.maximum(var, 0.0))
            sd1[sd1 == 0] = 1.0
            z = np.clip((x - m) / sd1, -5.0, 5.0)[:, None]
            llr = sizes * (signs * z - sizes / 2)
        if statistic == "sr":
            stat = _log1p_exp(stat) + llr
            total = stat[:, 0]
            for j in range(1, arms):  # summed in the detector's order, so rounding matches it
                total = np.logaddexp(total, stat[:, j])
            best = total - log_k
        else:
            np.maximum(stat + llr, 0.0, out=stat)
            best = stat.max(axis=1)
        np.maximum(top, best, out=top)
        running[:, t] = top
    return running


def _log1p_exp(x: FloatArray) -> FloatArray:
    """``log(1 + exp(x))`` without overflow: the Shiryaev–Roberts step ``R ← (1 + R)`` in log space."""
    with np.errstate(over="ignore"):
        out: FloatArray = np.where(
            x > 0, x + np.log1p(np.exp(-np.abs(x))), np.log1p(np.exp(np.minimum(x, 0)))
        )
    return out


def false_alarm_rate(first: NDArray[np.int64], warmup: int, length: int) -> NDArray[np.float64]:
    """Alarms per observation after warm-up: first alarms over exposure (censored at the horizon)."""
    exposure = np.where(first >= 0, first - warmup + 1, length - warmup).sum(axis=0)
    alarms = (first >= 0).sum(axis=0)
    return np.asarray(alarms / np.maximum(exposure, 1), dtype=np.float64)


MARGIN = 0.95


def calibrate(
    sampler: Sampler,
    *,
    kind: str,
    shifts: Sequence[float] = DEFAULT_SHIFTS,
    warmup: int = DEFAULT_WARMUP,
    lag: int = DEFAULT_LAG,
    budget: float = 1e-4,
    margin: float = MARGIN,
    streams: int = 4000,
    horizon: int = 10_000,
    seed: int = 0,
    early_chunks: int = 4,
) -> tuple[float, float, float, float]:
    """Two thresholds from one simulation: the early one, the smallest whose false-alarm rate in
    the first ``EARLY`` observations after the warm-up is at most ``margin * budget`` (the baseline
    rests on 500-700 values there, and a plug-in likelihood ratio against an estimated baseline
    alarms more often); then, with it in place, the smallest later one whose rate over the whole
    horizon is at most ``margin * budget`` (lower than a single threshold needs: the early window's
    excess no longer counts against it). The early window is simulated on ``1 + early_chunks``
    times ``streams`` streams (20,000 by default: about 950 alarms at the budget, a standard error
    of 3%).

    Returns (threshold, rate over the horizon, rate in the early window at the early threshold,
    early threshold).
    """
    rng = np.random.default_rng(seed)
    grid = np.round(np.arange(4.0, 16.0, 0.01), 4)
    split = warmup + EARLY
    # The early window is short (a tenth of the horizon), so it is simulated on more streams: its
    # own chunks of ``streams`` streams of ``split`` observations each, then the main run.
    early_first = []
    for _ in range(early_chunks):
        short = sampler(rng, (streams, split))
        running = _running(short, kind=kind, shifts=shifts, warmup=warmup, lag=lag, statistic="sr")
        early_first.append(_first_alarms(running, split, grid, grid))
    data = sampler(rng, (streams, warmup + horizon))
    running = _running(data, kind=kind, shifts=shifts, warmup=warmup, lag=lag, statistic="sr")
    first = _first_alarms(running, split, grid, grid)
    early_first.append(first)
    pooled = np.concatenate(early_first)
    early = false_alarm_rate(np.where(pooled < split, pooled, -1), warmup, split)
    ok = np.nonzero(early <= margin * budget)[0]
    if len(ok) == 0:
        raise RuntimeError("no threshold in the grid meets the budget; widen the grid")
    ok_early = int(ok[0])
    h_early = float(grid[ok_early])
    first = _first_alarms(running, split, grid, np.full_like(grid, h_early))
    rates = false_alarm_rate(first, warmup, warmup + horizon)
    ok = np.nonzero(rates <= margin * budget)[0]
    if len(ok) == 0:
        raise RuntimeError("no threshold in the grid meets the budget; widen the grid")
    i = int(ok[0])
    early_rate = float(early[int(ok_early)])
    return float(grid[i]), float(rates[i]), float(early_rate), h_early


def _binary_job(job: tuple[float, int, int, int]) -> tuple[float, float, float, float]:
    p, streams, horizon, seed = job
    return calibrate(bernoulli(p), kind="binary", streams=streams, horizon=horizon, seed=seed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="detectors/thresholds.json", help="where to write the table")
    parser.add_argument("--streams", type=int, default=4000, help="simulated streams per base rate")
    parser.add_argument("--horizon", type=int, default=10_000, help="observations per stream after warm-up")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    args = parser.parse_args(argv)
    budget = 1e-4
    rates = [round(float(p), 2) for p in np.arange(0.02, 0.99, 0.04)]
    started = time.monotonic()
    jobs = [(p, args.streams, args.horizon, args.seed + i) for i, p in enumerate(rates)]
    with multiprocessing.Pool(max(1, args.jobs)) as pool:
        results = pool.map(_binary_job, jobs)
    binary: dict[str, list[float]] = {}
    for p, (thr, rate, early, thr_early) in zip(rates, results, strict=True):
        binary[f"{p:.2f}"] = [thr, rate, early, thr_early]
        print(
            f"binary p={p:.2f}: threshold {thr:.2f}, false alarms/10k {rate * 1e4:.2f} "
            f"(first {EARLY} after warm-up: threshold {thr_early:.2f}, {early * 1e4:.2f})",
            file=sys.stderr,
        )
    thr, rate, early, thr_early = calibrate(
        gaussian,
        kind="numeric",
        budget=budget,
        streams=args.streams,
        horizon=args.horizon,
        seed=args.seed,
    )
    print(
        f"numeric: threshold {thr:.2f}, false alarms/10k {rate * 1e4:.2f} "
        f"(early: {thr_early:.2f}, {early * 1e4:.2f})",
        file=sys.stderr,
    )
    table = {
        "comment": "LaggedSR thresholds (log mixture statistic); made by `make calibrate`; do not edit",
        "command": "python -m driftwatch.detectors._calibrate " + " ".join(argv or sys.argv[1:]),
        "columns": [
            "threshold",
            "false alarms per observation",
            f"same, first {EARLY} after warm-up (early threshold there)",
            f"early threshold (first {EARLY} after warm-up)",
        ],
        "seed": args.seed,
        "streams": args.streams,
        "horizon": args.horizon,
        "warmup": DEFAULT_WARMUP,
        "lag": DEFAULT_LAG,
        "shifts": list(DEFAULT_SHIFTS),
        "budget": budget,
        "margin": MARGIN,
        "binary": binary,
        "numeric": [thr, rate, early, thr_early],
        "seconds": round(time.monotonic() - started, 1),
    }
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(table, fh, indent=1)
        fh.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
