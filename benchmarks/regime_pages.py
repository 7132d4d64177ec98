"""Where the regime-batch null streams page (issue 16): a decomposition of production.py's pages.

The two "regime batches" nulls of ``benchmarks/production.py`` (easy and hard tasks in batches of
10-50; pass rate 0.95 / 0.60, output tokens ×1.6 on hard batches), drawn from the same seeds, so
the same streams, run through the same ``Monitor``, with the batch labels kept. Every page is put
in one class per column:

* source: stage two (``SequentialConfirm`` decided) or a partial recovery of an open page;
* phase of the alarm: ``self-starting`` (the warm-up's detector) or ``lagged``; and whether the
  stream had passed observation 500 at the alarm;
* κ at the alarm: stage one's (``dispersion`` > 1: dependence shown at 99.5%) and stage two's
  point estimate, and the stage-two span (the variance-time reading's persistence requirement);
* the fresh values that decided it: how many batches they touch, and whether they all lie in the
  batch of the alarm (or its next one), and the share of hard tasks in them against the baseline.

    python -P benchmarks/regime_pages.py [--streams 100] [--seed 20261201]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import production as prod  # a sibling script, not a package

from driftwatch import Config, Monitor


def draw(index: int, chunk: int, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """production.py's draw for scenario ``index``'s chunk, with the hard-batch labels."""
    sc = prod.SCENARIOS[index]
    rng = np.random.default_rng([seed, index, chunk])
    hard = prod.batches(rng, rows, sc.length)
    if sc.binary:
        values = (rng.random((rows, sc.length)) < np.where(hard, 0.60, 0.95)).astype(np.float64)
    else:
        values = np.where(hard, np.log(1.6), 0.0) + rng.normal(0.0, 0.5, (rows, sc.length))
    return values, hard


def batch_ids(rng_state: Any, rows: int, length: int) -> np.ndarray:
    """The batch index of each observation (the same draws as ``production.batches``)."""
    rng = np.random.default_rng(rng_state)
    ids = np.empty((rows, length), dtype=np.int64)
    for r in range(rows):
        t, k = 0, 0
        while t < length:
            n = int(rng.integers(10, 51))
            ids[r, t : t + n] = k
            rng.random()
            t += n
            k += 1
    return ids


def run(sc: prod.Scenario, values: np.ndarray, hard: np.ndarray, ids: np.ndarray) -> list[dict[str, Any]]:
    monitor = Monitor(Config(signals=[sc.signal], console=False), threaded=False)
    out: list[dict[str, Any]] = []
    alarm = -1
    for i, v in enumerate(values.tolist()):
        for alert in monitor.process(sc.outcome(i, v)):
            if alert.kind != "drift":
                continue
            if alert.status == "suspected":
                alarm = i
                out.append({"kind": "suspected", "at": i, "phase": alert.detector.get("phase")})
            elif alert.status == "confirmed":
                ex, det = alert.extra, alert.detector
                row: dict[str, Any] = {"kind": "page", "at": i, "phase": det.get("phase")}
                if "partial_recovery_of" in ex:
                    row["source"] = "partial recovery"
                else:
                    row["source"] = "stage two"
                    a, fresh = alarm, slice(alarm + 1, i + 1)
                    row["alarm_at"] = a
                    row["kappa1"] = det.get("dispersion", 1.0)
                    row["kappa2"] = ex.get("dispersion", 1.0)
                    row["span"] = ex.get("span", 0)
                    row["fresh_n"] = ex.get("fresh_n")
                    row["baseline_n"] = ex.get("baseline_n")
                    row["scales"] = ex.get("dispersion_scales")
                    fid = ids[fresh]
                    row["fresh_batches"] = len(set(fid.tolist()))
                    row["in_alarm_batches"] = bool(fid.max() <= ids[a] + 1)
                    row["fresh_hard"] = float(hard[fresh].mean())
                out.append(row)
    return out


def summary(name: str, rows: list[dict[str, Any]], exposure: float, listing: bool) -> None:
    """Print the counts of one scenario (``exposure``: 10,000-observation units)."""
    pages = [x for x in rows if x["kind"] == "page"]
    sus = [x for x in rows if x["kind"] == "suspected"]
    print(f"\n## {name} (per 10k in brackets)")
    print(
        f"suspected {len(sus)} ({len(sus) / exposure:.2f}); pages {len(pages)} ({len(pages) / exposure:.2f})"
    )
    print("suspected by phase:", dict(Counter(x["phase"] for x in sus)))
    early = sum(x["at"] < 500 for x in sus)
    print(f"suspected at obs < 500: {early}; 500-999: {sum(500 <= x['at'] < 1000 for x in sus)}")
    print("pages by source:", dict(Counter(x["source"] for x in pages)))
    two = [x for x in pages if x["source"] == "stage two"]
    if not two:
        return
    print("stage-two pages by phase of the alarm:", dict(Counter(x["phase"] for x in two)))
    at = np.array([x["alarm_at"] for x in two])
    print(
        f"  alarm at obs < 500: {(at < 500).sum()}; 500-999: {((at >= 500) & (at < 1000)).sum()}; "
        f"later: {(at >= 1000).sum()}"
    )
    print(
        f"  stage-one κ shown (> 1): {sum(x['kappa1'] > 1 for x in two)}; stage-two κ > 1: "
        f"{sum(x['kappa2'] > 1 for x in two)}; span > 0: {sum(x['span'] > 0 for x in two)}"
    )
    print(f"  fresh values all in the alarm's batch or the next: {sum(x['in_alarm_batches'] for x in two)}")
    fn = np.array([x["fresh_n"] for x in two])
    fb = np.array([x["fresh_batches"] for x in two])
    k2 = np.array([x["kappa2"] for x in two])
    q = np.percentile
    print(f"  fresh values: median {np.median(fn):.0f} (quartiles {q(fn, 25):.0f}-{q(fn, 75):.0f})")
    print(f"  batches they touch: median {np.median(fb):.0f}, at most 3 in {(fb <= 3).sum()}")
    print(f"  hard share of the fresh values: mean {np.mean([x['fresh_hard'] for x in two]):.2f}")
    print(f"  stage-two κ quartiles {q(k2, 25):.2f} {np.median(k2):.2f} {q(k2, 75):.2f}")
    if listing:
        keys = ("stream", "alarm_at", "at", "phase", "kappa1", "kappa2", "span", "fresh_n", "baseline_n")
        for x in two:
            print("   ", {k: x[k] for k in (*keys, "fresh_batches", "fresh_hard", "scales")})


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seed", type=int, default=prod.SEED)
    parser.add_argument("--list", action="store_true", help="print every stage-two page")
    args = parser.parse_args()
    started = time.monotonic()
    for index, sc in enumerate(prod.SCENARIOS):
        if sc.family != "regime batches" or sc.change is not None:
            continue
        rows: list[dict[str, Any]] = []
        for c, lo in enumerate(range(0, args.streams, 10)):
            n = min(10, args.streams - lo)
            values, hard = draw(index, c, n, args.seed)
            ref = sc.draw(np.random.default_rng([args.seed, index, c]), n)
            assert np.array_equal(values, ref), "the draw differs from production.py's"
            ids = batch_ids([args.seed, index, c], n, sc.length)
            for r in range(n):
                rows += [dict(x, stream=lo + r) for x in run(sc, values[r], hard[r], ids[r])]
        summary(sc.name, rows, args.streams * sc.length / 10_000, args.list)
    print(f"\n_Run time {time.monotonic() - started:.0f} s._")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
