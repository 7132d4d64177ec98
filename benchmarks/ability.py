"""Recurring task ids: detection of the agent's ability against per-task difficulty, and mix shifts.

Scenario: a stream of outcomes over ``TASKS`` recurring task ids whose difficulties are logit-normal
(sd ``SD``); each outcome's task is drawn uniformly (or, ``--skewed``, Zipf-like). After ``TAU``
observations the agent's ability drops by ``DROP`` logits (every task's logit moves by it), or, in
the mix-shift scenario, ability stays and the draw moves to the hardest half of the tasks (80 % of
draws). Counted within ``HORIZON`` observations after the change:

* **Monitor**: ``driftwatch.Monitor`` at its defaults through ``process`` with ``task_id`` set
  (difficulty-adjusted: ``detectors/_ability.py``), first page (``confirmed``) down;
* **Monitor, no task id**: the same outcomes without ``task_id`` (today's iid path, ``LaggedSR``);
* **oracle, marginal**: a one-sided CUSUM told the marginal pass rates before and after;
* **oracle, per task**: a one-sided CUSUM told every task's pass probability before and after.

Both oracles' thresholds are calibrated here on no-change streams to 1 false alarm per 10,000
observations. False pages are counted on no-change streams of ``NULL_LEN``.

``--signal tokens``: the same for output tokens (log-normal per task; ×1.5 tokens; the mix moves to
the dearer half). ``--unique``: the task-id arm gives every outcome its own id (ids that never recur).

Run: .venv/bin/python -P benchmarks/ability.py [--quick] [--seed 20261203] [--jobs 2]
     [--signal tokens] [--unique]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from driftwatch import Config, Monitor, Outcome

TASKS = 50
SD = 2.0
DROP = 0.5
TAU = 1000
HORIZON = 3000
NULL_LEN = 10_500
WARMUP = 500
FloatArray = NDArray[np.float64]


def expit(x: FloatArray) -> FloatArray:
    return 1 / (1 + np.exp(-x))


def world(rng: np.random.Generator, tasks: int = TASKS, sd: float = SD) -> FloatArray:
    """Per-task logits of the pass probability."""
    return rng.normal(0.0, sd, tasks)


def draw(
    rng: np.random.Generator, a: FloatArray, n: int, shift: float, weights: FloatArray | None = None
) -> tuple[FloatArray, NDArray[np.int64]]:
    task = rng.choice(len(a), n, p=weights) if weights is not None else rng.integers(0, len(a), n)
    return (rng.random(n) < expit(a[task] + shift)).astype(np.float64), task


def hard_weights(a: FloatArray) -> FloatArray:
    """80 % of draws from the hardest half of the tasks."""
    hard = a <= np.median(a)
    w = np.where(hard, 0.8 / hard.sum(), 0.2 / (~hard).sum())
    return w / w.sum()


def stream(seed: int, scenario: str) -> tuple[FloatArray, NDArray[np.int64], FloatArray]:
    if SIGNAL == "tokens":
        return token_stream(seed, scenario)
    rng = np.random.default_rng(seed)
    a = world(rng)
    x0, t0 = draw(rng, a, TAU, 0.0)
    if scenario == "drop":
        x1, t1 = draw(rng, a, HORIZON, -DROP)
    elif scenario == "mix":
        x1, t1 = draw(rng, a, HORIZON, 0.0, hard_weights(a))
    else:
        x1, t1 = draw(rng, a, NULL_LEN - TAU, 0.0)
    return np.concatenate([x0, x1]), np.concatenate([t0, t1]), a


# --signal tokens: output tokens per task, log-normal: task means N(log 2000, TOKEN_SD) on the log
# scale, within-task sd TOKEN_WITHIN; the change is ×TOKEN_FACTOR on every task; the mix shift
# sends 80 % of draws to the dearer half of the tasks.
SIGNAL = "success"
UNIQUE = False
TOKEN_SD = 1.0
TOKEN_WITHIN = 0.5
TOKEN_FACTOR = 1.5


def token_draw(
    rng: np.random.Generator, mu: FloatArray, n: int, shift: float, weights: FloatArray | None = None
) -> tuple[FloatArray, NDArray[np.int64]]:
    task = rng.choice(len(mu), n, p=weights) if weights is not None else rng.integers(0, len(mu), n)
    return np.round(np.exp(mu[task] + shift + rng.normal(0.0, TOKEN_WITHIN, n))), task


def token_stream(seed: int, scenario: str) -> tuple[FloatArray, NDArray[np.int64], FloatArray]:
    rng = np.random.default_rng(seed)
    mu = rng.normal(math.log(2000), TOKEN_SD, TASKS)
    x0, t0 = token_draw(rng, mu, TAU, 0.0)
    if scenario == "drop":
        x1, t1 = token_draw(rng, mu, HORIZON, math.log(TOKEN_FACTOR))
    elif scenario == "mix":
        x1, t1 = token_draw(rng, mu, HORIZON, 0.0, hard_weights(-mu))  # the dearer half
    else:
        x1, t1 = token_draw(rng, mu, NULL_LEN - TAU, 0.0)
    return np.concatenate([x0, x1]), np.concatenate([t0, t1]), mu


def monitor_pages(xs: FloatArray, tasks: NDArray[np.int64] | None) -> list[tuple[int, str]]:
    signal = "output_tokens" if SIGNAL == "tokens" else "success"
    mon = Monitor(Config(signals=[signal], console=False), threaded=False)
    pages = []
    for i, x in enumerate(xs.tolist()):
        tid = None if tasks is None else f"t{tasks[i]}"
        value: dict[str, object] = {"output_tokens": int(x)} if SIGNAL == "tokens" else {"success": x > 0.5}
        for alert in mon.process(Outcome(task="suite", time=float(i), task_id=tid, **value)):  # type: ignore[arg-type]
            if alert.status == "confirmed" and alert.kind == "drift":
                pages.append((i, alert.direction))
    return pages


def job(args: tuple[str, int]) -> tuple[str, int | None, int | None]:
    """(scenario, first page of the task-aware Monitor, first page without task ids), indices."""
    scenario, seed = args
    xs, tasks, _ = stream(seed, scenario)
    out: list[int | None] = []
    for t in (np.arange(len(xs)) if UNIQUE else tasks, None):
        bad = "up" if SIGNAL == "tokens" else "down"
        pages = [i for i, d in monitor_pages(xs, t) if scenario != "drop" or (i >= TAU and d == bad)]
        out.append(pages[0] if pages else None)
    return scenario, out[0], out[1]


def cusum_first(inc: FloatArray, h: float, start: int = 0) -> int | None:
    s = 0.0
    for i, v in enumerate(inc.tolist()):
        s = max(0.0, s + v)
        if s > h and i >= start:
            return i
    return None


def oracle_incs(xs: FloatArray, tasks: NDArray[np.int64], a: FloatArray, per_task: bool) -> FloatArray:
    if SIGNAL == "tokens":
        # Gaussian CUSUM on log tokens told the shift: per task (each task's mean, the within sd) or
        # marginal (the pooled mean and sd of a task mean plus noise).
        shift, logs = math.log(TOKEN_FACTOR), np.log(np.maximum(xs, 1.0))
        if per_task:
            mean, var = a[tasks], TOKEN_WITHIN**2
        else:
            mean, var = np.full(len(xs), float(a.mean())), TOKEN_SD**2 + TOKEN_WITHIN**2
        return np.asarray(shift / var * (logs - mean - shift / 2), dtype=np.float64)
    if per_task:
        p0, p1 = expit(a[tasks]), expit(a[tasks] - DROP)
    else:
        p0 = np.full(len(xs), expit(a).mean())
        p1 = np.full(len(xs), expit(a - DROP).mean())
    return np.where(xs > 0.5, np.log(p1 / p0), np.log((1 - p1) / (1 - p0)))


def calibrate(seed: int, per_task: bool, streams: int) -> float:
    """The oracle's CUSUM threshold at 1 false alarm per 10,000 observations (first alarms / exposure)."""
    incs = []
    for s in range(streams):
        if SIGNAL == "tokens":
            xs, tasks, a = token_stream(seed + s, "null")
        else:
            rng = np.random.default_rng(seed + s)
            a = world(rng)
            xs, tasks = draw(rng, a, 10_000, 0.0)
        incs.append(oracle_incs(xs, tasks, a, per_task))
    runs = np.maximum.accumulate(_cusums(np.stack(incs)), axis=1)
    for h in np.arange(2.0, 16.0, 0.05):
        hit = runs > h
        first = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
        exposure = np.where(first >= 0, first + 1, runs.shape[1]).sum()
        if (first >= 0).sum() / exposure <= 1e-4:
            return float(h)
    return 16.0


def _cusums(inc: FloatArray) -> FloatArray:
    stat = np.zeros(inc.shape[0])
    out = np.empty_like(inc)
    for t in range(inc.shape[1]):
        np.maximum(stat + inc[:, t], 0.0, out=stat)
        out[:, t] = stat
    return out


def oracle_delays(seed: int, streams: int, h: float, per_task: bool) -> list[float]:
    out = []
    for s in range(streams):
        xs, tasks, a = stream(seed + s, "drop")
        inc = oracle_incs(xs, tasks, a, per_task)
        first = cusum_first(inc, h, TAU)
        out.append(math.inf if first is None else float(first - TAU + 1))
    return out


def median_ci(d: Sequence[float], rng: np.random.Generator) -> tuple[float, float, float]:
    arr = np.asarray(d, dtype=float)
    boots = np.median(rng.choice(arr, (1000, len(arr))), axis=1)
    return float(np.median(arr)), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def fmt(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:.0f}"


def report(seed: int = 20261203, *, quick: bool = False, jobs: int = 2) -> list[str]:
    streams = 40 if quick else 200
    nulls = 10 if quick else 100
    mixes = 20 if quick else 100
    started = time.monotonic()
    work = (
        [("drop", seed + s) for s in range(streams)]
        + [("mix", seed + 100_000 + s) for s in range(mixes)]
        + [("null", seed + 200_000 + s) for s in range(nulls)]
    )
    with multiprocessing.Pool(jobs) as pool:
        print(f"ability: {len(work)} streams ...", file=sys.stderr, flush=True)
        res = pool.map(job, work, chunksize=2)
    h_marg = calibrate(seed + 300_000, False, 100 if quick else 400)
    h_task = calibrate(seed + 400_000, True, 100 if quick else 400)
    rng = np.random.default_rng(seed)
    o_marg = oracle_delays(seed, streams, h_marg, False)
    o_task = oracle_delays(seed, streams, h_task, True)
    drops = [r for r in res if r[0] == "drop"]
    adj = [math.inf if r[1] is None else float(r[1] - TAU + 1) for r in drops]
    iid = [math.inf if r[2] is None else float(r[2] - TAU + 1) for r in drops]
    om, ot = float(np.median(o_marg)), float(np.median(o_task))
    tokens = SIGNAL == "tokens"
    what = (
        f"output tokens of {TASKS} recurring task ids, log-normal, task means sd {TOKEN_SD:g} and "
        f"within-task sd {TOKEN_WITHIN:g} on the log scale, uniform draws; ×{TOKEN_FACTOR:g} tokens"
        if tokens
        else f"{TASKS} recurring task ids, logit sd {SD:g}, uniform draws; ability −{DROP:g} logits"
    )
    lines = [
        f"Generated by `python -P benchmarks/ability.py{' --quick' if quick else ''}"
        f"{f' --tau {TAU}' if TAU != 1000 else ''}{' --signal tokens' if tokens else ''}"
        f"{' --unique' if UNIQUE else ''}` (seed {seed}; {what} after "
        f"{TAU:,} observations, horizon {HORIZON:,}; {streams} change streams, {mixes} mix-shift "
        f"streams, {nulls} no-change streams of {NULL_LEN:,}; Monitor at its defaults"
        f"{'; the task-id arm gives every outcome its own id' if UNIQUE else ''}).",
        "",
        "| arm | median delay to page (95%) | × oracle, marginal | × oracle, per task | missed ≤ horizon |",
        "|---|---|---:|---:|---:|",
        f"| oracle, marginal rates (CUSUM, h={h_marg:.2f}) | {fmt(om)} | 1.00 | {om / ot:.2f} | "
        f"{sum(math.isinf(d) for d in o_marg)}/{streams} |",
        f"| oracle, per-task rates (CUSUM, h={h_task:.2f}) | {fmt(ot)} | {ot / om:.2f} | 1.00 | "
        f"{sum(math.isinf(d) for d in o_task)}/{streams} |",
    ]
    for name, d in (("Monitor with task ids (difficulty-adjusted)", adj), ("Monitor without task ids", iid)):
        m, lo, hi = median_ci(d, rng)
        lines.append(
            f"| {name} | {fmt(m)} ({fmt(lo)}–{fmt(hi)}) | {m / om:.2f} | {m / ot:.2f} | "
            f"{sum(math.isinf(x) for x in d)}/{streams} |"
        )
    mix = [r for r in res if r[0] == "mix"]
    null = [r for r in res if r[0] == "null"]
    mix_what = (
        "mix shift to the dearer half (80 % of draws), tokens per task unchanged"
        if tokens
        else "mix shift to the hardest half (80 % of draws), ability unchanged"
    )
    lines += [
        "",
        "| scenario | streams | pages with task ids | pages without task ids |",
        "|---|---:|---:|---:|",
        f"| {mix_what} | {len(mix)} | "
        f"{sum(r[1] is not None for r in mix)} | {sum(r[2] is not None for r in mix)} |",
    ]
    cells = []
    for col in (1, 2):
        k = sum(r[col] is not None for r in null)
        exposure = sum((r[col] if r[col] is not None else NULL_LEN) - WARMUP for r in null)
        cells.append(f"{k} ({k / exposure * 1e4:.2f} per 10k observations)")
    lines.append(f"| no change: false pages | {len(null)} | {cells[0]} | {cells[1]} |")
    lines += ["", f"_Run time {time.monotonic() - started:.0f} s._", ""]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tau", type=int, default=TAU, help="observations before the change")
    parser.add_argument("--signal", choices=("success", "tokens"), default="success")
    parser.add_argument("--unique", action="store_true", help="every outcome its own task id")
    args = parser.parse_args(argv)
    globals()["TAU"] = args.tau  # read by the workers (forked after this)
    globals()["SIGNAL"] = args.signal
    globals()["UNIQUE"] = args.unique
    print("\n".join(report(args.seed, quick=args.quick, jobs=args.jobs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
