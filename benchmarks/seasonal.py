"""The seasonal baseline on independent numeric values: is a profile ever shown, and does stage one
change? (issue 16 item 3; docs/detection.md quotes it.)

``LaggedSR(kind="numeric")`` on log-normal values (sd 0.5), with event times 1 s apart (no day ever
passes: no profile is possible, the detector as before) and at 500 a day (12-21 days per stream):
no-change streams of 10,500 (stage-one alarms per 10k, streams on which a profile was ever in use,
the share of observations watched against one) and +30% at observation 1,000 (median delay to the
first alarm after the change, the share detected within 3,000). Same seeds for both clocks.

Run: ``.venv/bin/python -P benchmarks/seasonal.py`` (seed 20261201, 400 streams each; ~5 min on 2
shared cores) or ``--streams 100``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
from collections.abc import Sequence

import numpy as np

from driftwatch.detectors import LaggedSR

SEED = 20261201
CLOCKS = {"1 s apart": 0, "500 a day": 500}


def run(args: tuple[str, int, int, int]) -> tuple[str, int, list[tuple[int, float, int]]]:
    """(kind, per_day, [(alarms, delay, observations against a profile)]) for one chunk of streams."""
    kind, per_day, rows, part = args
    rng = np.random.default_rng([SEED, part, 0 if kind == "null" else 1])
    out = []
    for _ in range(rows):
        if kind == "null":
            x = rng.normal(0.0, 0.5, 10_500)
        else:
            x = np.concatenate([rng.normal(0.0, 0.5, 1000), rng.normal(math.log(1.3), 0.5, 3000)])
        det = LaggedSR(kind="numeric")
        alarms, delay, against = 0, math.inf, 0
        for i, v in enumerate(x.tolist()):
            det.update(v, i * 86400 / per_day if per_day else float(i))
            against += det.evidence().get("seasonal") is not None if i % 10 == 0 else 0
            if det.drift_detected:
                alarms += 1
                if kind == "change" and i >= 1000:
                    delay = i - 999
                    break
        out.append((alarms, delay, 10 * against))
    return kind, per_day, out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=400)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    parts = 4
    work = [
        (k, d, args.streams // parts, p)
        for k in ("null", "change")
        for d in CLOCKS.values()
        for p in range(parts)
    ]
    res: dict[tuple[str, int], list[tuple[int, float, int]]] = {}
    with multiprocessing.Pool(args.jobs) as pool:
        for kind, per_day, out in pool.imap(run, work):
            res.setdefault((kind, per_day), []).extend(out)
    print(f"`python -P benchmarks/seasonal.py --streams {args.streams}` (seed {SEED})\n")
    print(
        "| clock | null: alarms / 10k | null: streams with a profile | null: observations against one "
        "| +30% at 1,000: median delay | detected within 3,000 |"
    )
    print("|---|---|---|---|---|---|")
    for name, per_day in CLOCKS.items():
        null, change = res[("null", per_day)], res[("change", per_day)]
        obs = len(null) * 10_500
        alarms = sum(o[0] for o in null)
        delays = np.array([o[1] for o in change])
        print(
            f"| {name} | {1e4 * alarms / obs:.2f} ({alarms} on {len(null)}) | "
            f"{sum(o[2] > 0 for o in null)} of {len(null)} | {sum(o[2] for o in null) / obs:.2%} | "
            f"{np.median(delays):.0f} | {np.isfinite(delays).mean():.1%} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
