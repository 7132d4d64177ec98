"""Where the shipped path's delay comes from: goal_replay's streams (same seeds) through the mirror and
through ``LaggedSR`` directly with the self-starting warm-up and κ switched on one at a time.

The "full" variant fires alarm for alarm where ``driftwatch replay`` does (same first suspected
alerts on the goal scenarios), in a fraction of the time. Prints per variant the median delay, its
ratio to the oracle (paired bootstrap, 1,000 resamples), alarms in 1–500 and in 501–1,000, and the
share of streams whose κ exceeds 1 at observation 1,000.

    python -P benchmarks/goal_decomposition.py [--streams 2000] [--null-streams 3000] [--seed 20261205]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection as d

from driftwatch.detectors._calibrate import alarm_times
from driftwatch.detectors._lagged_sr import LaggedSR

VARIANTS = {
    "plain": dict(self_start=False, dependence=False, seasonal=False),
    "self_start": dict(dependence=False, seasonal=False),
    "kappa": dict(self_start=False, seasonal=False),
    "full": dict(),
}


def run(data, kw, stop_at=None):
    first = np.full(len(data), -1, dtype=np.int64)
    kappa_at_tau = np.ones(len(data))
    for s, row in enumerate(data):
        det = LaggedSR(kind="binary", **kw)
        for i, x in enumerate(row.tolist()):
            det.update(x, float(i))
            if i == d.TAU - 1:
                kappa_at_tau[s] = det.dispersion
            if det.drift_detected:
                first[s] = i
                break
    return first, kappa_at_tau


def summarize(name, first, oracle, seed, kap=None):
    med = float(np.median(first[first >= d.TAU] - d.TAU + 1))
    o_med = float(np.median(oracle[oracle >= d.TAU] - d.TAU + 1))
    lo, hi = d.paired_ratio_ci(oracle, first, seed, rounds=1000)
    warm = int(((first >= 0) & (first < d.DEFAULT_WARMUP)).sum())
    strict = int(((first >= d.DEFAULT_WARMUP) & (first < d.TAU)).sum())
    rate = strict / ((len(first) - warm) * 500) * 1e4
    extra = ""
    if kap is not None:
        extra = f" kappa>1 at TAU: {(kap > 1).mean():.3f}"
    print(
        f"  {name:12s} median {med:.0f} ratio {med / o_med:.3f} ({lo:.3f}-{hi:.3f}) "
        f"warm {warm} strict {strict} ({rate:.2f}/10k){extra}",
        flush=True,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=2000)
    ap.add_argument("--null-streams", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=20261205)
    ap.add_argument("--variants", default="plain,self_start,kappa,full")
    a = ap.parse_args()
    for i, sc in enumerate(s for s in d.SCENARIOS if s.goal):
        t0 = time.time()
        null = sc.null(np.random.default_rng(a.seed + i), a.null_streams)
        grid = np.round(np.arange(1.0, 14.0, 0.01), 3)
        h = float(grid[d.smallest_within(d.cusum_first(null, sc, grid), grid)])
        data = sc.change(np.random.default_rng(a.seed + 7 + i), a.streams)[:, : d.TAU + 1000]
        oracle = d.cusum_first(data, sc, np.array([h]))[:, 0]
        o_med = float(np.median(oracle[oracle >= d.TAU] - d.TAU + 1))
        print(f"{sc.name}: oracle h {h:.2f} median {o_med:.0f}", flush=True)
        mirror = alarm_times(data, kind="binary", thresholds=d.driftwatch_thresholds(data, "binary"))[:, 0]
        summarize("mirror", mirror, oracle, a.seed + i)
        res = {}
        for v in a.variants.split(","):
            first, kap = run(data, VARIANTS[v])
            res[v] = first
            summarize(v, first, oracle, a.seed + i, kap)
        print(f"  ({time.time() - t0:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
