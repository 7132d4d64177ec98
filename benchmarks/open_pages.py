"""Pages still open at the end of a stream (issue 16: false pages on cyclic streams that never resolve).

Per row, ``--streams`` streams of 10,000 values through a ``Monitor`` (only the row's signal on,
``benchmarks/production.py``'s generators and event times; pages counted as it counts them): the
pages, the streams that end with a page open (and of those pages, how many were raised against a
seasonal profile and how many were improvements, direction down), resolutions by recovery and as
explained by the seasonal profile. Step rows add a persistent change (+30% latency on the cycle,
pass rate 0.85 → 0.65) at 1,500 (6,000 at 2,000 a day) and count the pages raised after it that
were resolved as explained (must be 0). ``python -P benchmarks/open_pages.py`` (seed 20261202,
``[seed, row]`` per row; about 1 min).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from production import LOG25, Scenario, cycle_log, iid_pass, lognormal, markov_pass, regime_log

from driftwatch import Config, Monitor

ROWS = [
    "cycle500",
    "cycle2000",
    "iid_tokens",
    "markov0.5",
    "regime_tokens",
    "step500",
    "step2000",
    "pass_step",
]


def scenario(name: str) -> Scenario:
    if name in ("cycle500", "step500"):
        return Scenario("c", name, "latency_s", cycle_log(0.5, LOG25, 500), per_day=500)
    if name in ("cycle2000", "step2000"):
        return Scenario("c", name, "latency_s", cycle_log(0.5, LOG25, 2000), per_day=2000)
    if name == "iid_tokens":
        return Scenario("i", name, "output_tokens", lognormal(0.5))
    if name == "markov0.5":
        return Scenario("m", name, "success", markov_pass(0.85, 0.5))
    if name == "regime_tokens":
        return Scenario("r", name, "output_tokens", regime_log(math.log(1.6), 0.5))
    return Scenario("p", name, "success", iid_pass(0.85))


def run(sc: Scenario, values: np.ndarray, step_at: int | None) -> dict[str, int]:
    monitor = Monitor(Config(signals=[sc.signal], console=False), threaded=False)
    opened: dict[str, tuple[int, bool, bool]] = {}
    out = {"pages": 0, "recovered": 0, "explained": 0, "step_explained": 0}
    for i, v in enumerate(values.tolist()):
        for a in monitor.process(sc.outcome(i, v)):
            if a.kind != "drift":
                continue
            if a.status == "confirmed":
                out["pages"] += 1
                opened[a.id] = (i, bool(a.detector.get("seasonal")), a.direction == "down")
            elif a.status == "resolved" and a.id in opened:
                at = opened.pop(a.id)[0]
                by = a.extra.get("resolved_by")
                out["explained"] += by == "seasonal"
                out["recovered"] += by == "recovery"
                out["step_explained"] += by == "seasonal" and step_at is not None and at >= step_at
    out["open"] = len(opened)
    out["open_profile"] = sum(p for _, p, _ in opened.values())
    out["open_down"] = sum(d for _, _, d in opened.values())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=40)
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--only", default=",".join(ROWS), help="comma-separated rows")
    args = parser.parse_args(argv)
    for k, name in enumerate(ROWS):
        if name not in args.only.split(","):
            continue
        rng = np.random.default_rng([args.seed, k])
        sc = scenario(name)
        data = sc.model(rng, args.streams, 10_000)
        step_at = None
        if name.startswith("step"):
            step_at = 1500 if name == "step500" else 6000
            data[:, step_at:] += math.log(1.3)
        elif name == "pass_step":
            step_at = 1500
            u = rng.random(data.shape)
            data[:, 1500:] = np.where(data[:, 1500:] > 0.5, u[:, 1500:] < 0.65 / 0.85, 0.0)
        res = [run(sc, row, step_at) for row in data]
        total = {key: sum(r[key] for r in res) for key in res[0]}
        stuck = sum(r["open"] > 0 for r in res)
        print(
            f"{name}: pages {total['pages']}, streams ending with a page open {stuck}/{args.streams} "
            f"(open pages {total['open']}: {total['open_profile']} raised against a profile, "
            f"{total['open_down']} down), resolved by recovery {total['recovered']}, explained by the "
            f"profile {total['explained']}, pages after the step explained {total['step_explained']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
