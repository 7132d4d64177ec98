"""Detection quality benchmark: driftwatch's default detector against the CUSUM oracle, River's
detectors (at their defaults and calibrated to the same false-alarm budget) and the fixed-window
method public trackers use. Writes ``docs/detection.md``.

Run: ``make bench-detection`` (or ``python -P benchmarks/detection.py``); ``--quick`` for a smoke run.

Every stream is simulated from a fixed seed. A change stream has 1,000 observations at the old
rate (the first 500 are driftwatch's warm-up) and then 3,000 at the new one; a no-change stream
has 10,500. False alarms are first alarms per observation (exposure censored at the horizon),
quoted per 10,000 observations, two ways: over whole no-change streams ("average"), and inside
the monitored part of the pre-change window of the change streams, observations 500-999
("strict", where the baseline is least certain).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from river import drift
from river.drift import binary as river_binary

from driftwatch.detectors import DEFAULT_SHIFTS, DEFAULT_WARMUP, LaggedSR
from driftwatch.detectors._calibrate import alarm_times
from driftwatch.detectors._thresholds import threshold_for

ROOT = Path(__file__).resolve().parent.parent
TAU = 1000  # index of the first changed observation
POST = 3000
NULL_LEN = DEFAULT_WARMUP + 10_000
BUDGET = 1e-4
DAY = 50  # tasks a day, for the fixed-window method

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "binary" or "numeric" (values on the log scale)
    before: float  # pass rate, or mean of the log value
    after: float
    sd: float = 1.0  # log-scale sd for numeric scenarios
    goal: bool = False

    def draw(self, rng: np.random.Generator, rows: int, length: int, value: float) -> FloatArray:
        if self.kind == "binary":
            return (rng.random((rows, length)) < value).astype(np.float64)
        return rng.normal(value, self.sd, (rows, length))

    def null(self, rng: np.random.Generator, rows: int) -> FloatArray:
        return self.draw(rng, rows, NULL_LEN, self.before)

    def change(self, rng: np.random.Generator, rows: int) -> FloatArray:
        return np.concatenate(
            [self.draw(rng, rows, TAU, self.before), self.draw(rng, rows, POST, self.after)], axis=1
        )

    @property
    def direction(self) -> str:
        return "down" if self.after < self.before else "up"


SCENARIOS = [
    Scenario("pass rate 0.51 → 0.38", "binary", 0.51, 0.38, goal=True),
    Scenario("pass rate 0.90 → 0.765", "binary", 0.90, 0.765, goal=True),
    Scenario("pass rate 0.40 → 0.51 (improvement)", "binary", 0.40, 0.51),
    # An improvement where there is little room to improve: a detector that is one-sided in
    # practice there (River's PageHinkley in raw units) wins 0.90 -> 0.765 by not seeing this.
    Scenario("pass rate 0.90 → 0.96 (improvement at a high rate)", "binary", 0.90, 0.96),
    Scenario("pass rate 0.58 → 0.54 (small)", "binary", 0.58, 0.54),
    Scenario("pass rate 0.84 → 0.51 (large)", "binary", 0.84, 0.51),
    Scenario("latency +30% (lognormal, log-sd 0.5)", "numeric", 0.0, math.log(1.3), sd=0.5),
    Scenario("output tokens ×0.4 (log-sd 0.6)", "numeric", 0.0, math.log(0.4), sd=0.6),
]


# -- scoring ------------------------------------------------------------------------------------
@dataclass
class Result:
    method: str
    fa_avg: float | None  # per 10k, whole no-change streams
    fa_strict: float | None  # per 10k, observations 500..999 of the change streams
    median: float | None
    p90: float | None
    rate: float | None  # detected within POST, among streams without a pre-change alarm
    change_error: float | None = None  # median |estimated - true| change index
    note: str = ""
    params: str = ""
    threshold: float | None = None
    ratio_ci: tuple[float, float] | None = None  # 95% bootstrap interval of the median ratio to the oracle


def per10k(first: IntArray, start: int, end: int) -> float:
    """First alarms per 10,000 observations in [start, end) (alarms before ``start`` excluded)."""
    inside = first[(first >= start) | (first < 0)]
    alarms = int(((inside >= start) & (inside < end)).sum())
    exposure = int(np.where((inside >= start) & (inside < end), inside - start + 1, end - start).sum())
    return 1e4 * alarms / max(exposure, 1)


def score(
    method: str, null_first: IntArray | None, change_first: IntArray, fa_from: int = 0, **kw: Any
) -> Result:
    """Scores a method's first alarms; ``fa_from``: the first observation it could alarm on (its
    warm-up end), so that observations it cannot alarm on do not dilute its false-alarm rate."""
    pre = (change_first >= 0) & (change_first < TAU)
    after = change_first[~pre]
    hit = after[after >= TAU]
    delays = hit - TAU + 1
    return Result(
        method,
        per10k(null_first, fa_from, NULL_LEN) if null_first is not None else None,
        per10k(change_first, DEFAULT_WARMUP, TAU),
        float(np.median(delays)) if len(delays) else None,
        float(np.percentile(delays, 90)) if len(delays) else None,
        len(hit) / max(len(after), 1),
        **kw,
    )


# -- the oracle: a one-sided CUSUM told the true before and after ------------------------------
def cusum_first(data: FloatArray, sc: Scenario, thresholds: FloatArray) -> IntArray:
    if sc.kind == "binary":
        p0, p1 = sc.before, sc.after
        inc = np.where(data > 0.5, math.log(p1 / p0), math.log((1 - p1) / (1 - p0)))
    else:
        d = (sc.after - sc.before) / sc.sd
        z = (data - sc.before) / sc.sd
        inc = d * (z - d / 2)
    stat = np.zeros(data.shape[0])
    running = np.empty_like(inc)
    top = np.full(data.shape[0], -np.inf)
    for t in range(data.shape[1]):
        np.maximum(stat + inc[:, t], 0.0, out=stat)
        np.maximum(top, stat, out=top)
        running[:, t] = top
    return first_above(running, thresholds)


def first_above(running: FloatArray, thresholds: FloatArray) -> IntArray:
    """First index at which each row's running maximum exceeds each threshold (-1: never)."""
    first = np.full((running.shape[0], len(thresholds)), -1, dtype=np.int64)
    for r in range(running.shape[0]):
        at = np.searchsorted(running[r], thresholds, side="right")
        first[r] = np.where(at < running.shape[1], at, -1)
    return first


def smallest_within(null_first: IntArray, grid: FloatArray, start: int = 0, target: float = 1.0) -> int:
    """Index of the first grid value (grid sorted from loose to strict) within ``target`` FA/10k."""
    for i in range(len(grid)):
        if per10k(null_first[:, i], start, NULL_LEN) <= target:
            return i
    return len(grid) - 1


# -- driftwatch's default ------------------------------------------------------------------------
def driftwatch_thresholds(data: FloatArray, kind: str, early: bool = False) -> FloatArray:
    """The threshold each stream's detector picks: from the table, at its warm-up base rate
    (``early``: the one for the first 500 observations after the warm-up)."""
    base = data[:, :DEFAULT_WARMUP].mean(axis=1)
    return np.array([[threshold_for(kind, float(b), BUDGET, DEFAULT_SHIFTS, early=early)] for b in base])


def driftwatch_first(data: FloatArray, kind: str) -> IntArray:
    """First alarms of driftwatch's default through the mirror, with the table's two thresholds."""
    return alarm_times(
        data,
        kind=kind,
        thresholds=driftwatch_thresholds(data, kind),
        early_thresholds=driftwatch_thresholds(data, kind, early=True),
    )[:, 0]


def change_errors(sc: Scenario, data: FloatArray, rows: int) -> float | None:
    """Median |estimated - true| change index of the real detector on ``rows`` change streams."""
    errors = []
    for row in data[:rows]:
        det = LaggedSR(kind="binary" if sc.kind == "binary" else "numeric")
        for i, x in enumerate(row):
            det.update(float(x), float(i))
            if det.drift_detected:
                if i >= TAU and det.change_index is not None:
                    errors.append(abs((det.change_index - 1) - TAU))
                break
    return float(statistics.median(errors)) if errors else None


# -- the fixed-window method ---------------------------------------------------------------------
def fixed_window_first(
    data: FloatArray, sc: Scenario, window: int, z_crit: FloatArray, phase: IntArray
) -> IntArray:
    """At the end of each day (50 tasks), the last ``window`` tasks against the first 500, two-sided.

    Day boundaries fall at a random phase per stream (``phase``): a change does not wait for
    midnight, and a change aligned with a day's start would flatter the method.
    """
    rows, length = data.shape
    if rows > 1000:  # in blocks of rows, to bound memory
        return np.concatenate(
            [
                fixed_window_first(data[i : i + 1000], sc, window, z_crit, phase[i : i + 1000])
                for i in range(0, rows, 1000)
            ]
        )
    base = data[:, :DEFAULT_WARMUP]
    b_mean = base.mean(axis=1)[:, None]
    b_var = base.var(axis=1, ddof=1)[:, None]
    csum = np.concatenate([np.zeros((rows, 1)), np.cumsum(data, axis=1)], axis=1)
    csum2 = np.concatenate([np.zeros((rows, 1)), np.cumsum(data * data, axis=1)], axis=1)
    n = window
    ends = np.arange(DEFAULT_WARMUP + window, length + 1)  # a window ending before observation `end`
    mean = (csum[:, ends] - csum[:, ends - n]) / n
    if sc.kind == "binary":
        pooled = (b_mean * DEFAULT_WARMUP + mean * n) / (DEFAULT_WARMUP + n)
        se = np.sqrt(np.maximum(pooled * (1 - pooled), 1e-12) * (1 / DEFAULT_WARMUP + 1 / n))
    else:
        var = (csum2[:, ends] - csum2[:, ends - n] - n * mean * mean) / (n - 1)
        se = np.sqrt(b_var / DEFAULT_WARMUP + np.maximum(var, 1e-12) / n)
    z = np.abs(mean - b_mean) / se
    day_end = (ends[None, :] - phase[:, None]) % DAY == 0
    z = np.where(day_end, z, -np.inf)
    running = np.full((rows, length), -np.inf)
    running[:, ends - 1] = np.maximum.accumulate(z, axis=1)
    running = np.maximum.accumulate(running, axis=1)
    return first_above(running, z_crit)


# -- River ---------------------------------------------------------------------------------------
@dataclass
class RiverSpec:
    name: str
    make: Callable[[float | None], Any]  # parameter (None = defaults) -> detector
    param: str = ""
    lo: float = 0.0  # strict end of the parameter range
    hi: float = 0.0  # loose end
    log: bool = True
    feed: str = "value"  # "value", "failure" (1 = failed task), "success"
    binary_only: bool = False
    max_streams: int | None = None


def _hddm_a(p: float | None) -> Any:
    if p is None:
        return river_binary.HDDMA()
    return river_binary.HDDMA(drift_confidence=p, warning_confidence=min(0.5, 2 * p), two_sided_test=True)


def _hddm_w(p: float | None) -> Any:
    if p is None:
        return river_binary.HDDMW()
    return river_binary.HDDMW(drift_confidence=p, warning_confidence=min(0.5, 2 * p), two_sided_test=True)


RIVER = [
    RiverSpec("ADWIN", lambda p: drift.ADWIN() if p is None else drift.ADWIN(delta=p), "delta", 1e-12, 0.5),
    RiverSpec(
        "PageHinkley",
        lambda p: drift.PageHinkley() if p is None else drift.PageHinkley(threshold=p),
        "threshold",
        400.0,
        5.0,
    ),
    RiverSpec(
        "KSWIN",
        lambda p: drift.KSWIN(seed=1) if p is None else drift.KSWIN(alpha=p, seed=1),
        "alpha",
        max_streams=6,
    ),
    RiverSpec(
        "DDM",
        lambda p: (
            river_binary.DDM()
            if p is None
            else river_binary.DDM(drift_threshold=p, warning_threshold=p * 0.9)
        ),
        "drift_threshold",
        12.0,
        1.5,
        log=False,
        feed="failure",
        binary_only=True,
    ),
    RiverSpec(
        "EDDM",
        lambda p: river_binary.EDDM() if p is None else river_binary.EDDM(alpha=min(0.99, p + 0.05), beta=p),
        "beta",
        0.02,
        0.94,
        log=False,
        feed="failure",
        binary_only=True,
    ),
    RiverSpec("HDDMA", _hddm_a, "drift_confidence (two-sided)", 1e-14, 0.2, feed="failure", binary_only=True),
    RiverSpec("HDDMW", _hddm_w, "drift_confidence (two-sided)", 1e-14, 0.2, feed="failure", binary_only=True),
    RiverSpec(
        "FHDDM",
        lambda p: river_binary.FHDDM() if p is None else river_binary.FHDDM(confidence_level=p),
        "confidence_level",
        1e-30,
        0.2,
        feed="success",
        binary_only=True,
    ),
]


def river_first(spec: RiverSpec, param: float | None, data: FloatArray) -> IntArray:
    """First alarm per stream (None: the detector's defaults)."""
    out = np.full(data.shape[0], -1, dtype=np.int64)
    for r, row in enumerate(data):
        det = spec.make(param)
        xs = (1.0 - row) if spec.feed == "failure" else row
        update = det.update
        for i, x in enumerate(xs.tolist()):
            update(x)
            if det.drift_detected:
                out[r] = i
                break
    return out


def river_calibrate(spec: RiverSpec, null: FloatArray, steps: int = 7) -> tuple[float, float]:
    """Bisect the parameter to the loosest value within 1 FA/10k on ``null`` (first alarms)."""
    lo, hi = spec.lo, spec.hi  # lo strict (few alarms), hi loose

    def fa(p: float) -> float:
        return per10k(river_first(spec, p, null), 0, null.shape[1])

    best, best_fa = lo, fa(lo)
    for _ in range(steps):
        mid = math.sqrt(lo * hi) if spec.log else (lo + hi) / 2
        rate = fa(mid)
        if rate <= 1.0:
            best, best_fa, lo = mid, rate, mid
        else:
            hi = mid
    return best, best_fa


def ph_bank_stat(data: FloatArray, sc: Scenario) -> FloatArray:
    """Running maximum over a bank of four River ``PageHinkley(alpha=1, min_instances=500)`` tests
    used as one-sided CUSUMs (shifts of 0.3 and 0.45 sd, up and down; told the true sd).

    A vectorised mirror of River's ``PageHinkley.update`` (running mean including the new value,
    ``_max_decrease`` starting at -1 as River's does); ``check_ph_mirror`` asserts it fires at the
    same index as River's own detectors, so every stream can be run, not a Python-speed subset.
    """
    sd = math.sqrt(sc.before * (1 - sc.before)) if sc.kind == "binary" else sc.sd
    out = np.empty_like(data)
    for lo in range(0, data.shape[0], 500):  # in blocks of rows: a few arrays of the block's size
        block = data[lo : lo + 500]
        n = np.arange(1, block.shape[1] + 1)
        cdev = np.cumsum(block - np.cumsum(block, axis=1) / n, axis=1)
        best = np.full(block.shape, -np.inf)
        for s in DEFAULT_SHIFTS:
            inc = cdev - (s * sd / 2) * n
            np.maximum(best, inc - np.minimum.accumulate(inc, axis=1), out=best)
            dec = cdev + (s * sd / 2) * n
            np.maximum(best, np.maximum(np.maximum.accumulate(dec, axis=1), -1.0) - dec, out=best)
        best[:, : DEFAULT_WARMUP - 1] = -np.inf  # River tests once n >= min_instances
        out[lo : lo + 500] = np.maximum.accumulate(best, axis=1)
    return out


def check_ph_mirror(sc: Scenario, rows: int = 8) -> None:
    """The vectorised PageHinkley bank fires where River's own detectors do (or the run stops)."""
    data = sc.change(np.random.default_rng(7), rows)[:, :2000]
    threshold = 8.0 if sc.kind == "binary" else 25.0
    mirror = first_above(ph_bank_stat(data, sc), np.array([threshold]))[:, 0]
    sd = math.sqrt(sc.before * (1 - sc.before)) if sc.kind == "binary" else sc.sd
    for r, row in enumerate(data):
        bank = [
            drift.PageHinkley(
                min_instances=DEFAULT_WARMUP, delta=s * sd / 2, threshold=threshold, alpha=1.0, mode=m
            )
            for s in DEFAULT_SHIFTS
            for m in ("up", "down")
        ]
        fired_at = -1
        for i, x in enumerate(row.tolist()):
            fired = False
            for d in bank:
                d.update(x)
                fired = fired or d.drift_detected
            if fired:
                fired_at = i
                break
        assert fired_at == mirror[r], f"PageHinkley mirror differs, row {r}: {mirror[r]} vs {fired_at}"


def paired_ratio_ci(a: IntArray, b: IntArray, seed: int, rounds: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of median(b) / median(a) over streams resampled together.

    ``a`` and ``b`` are first-alarm indices of two methods on the same change streams; each
    resample draws streams with replacement and scores both methods on the same draw.
    """
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(rounds):
        pick = rng.integers(0, len(a), len(a))
        da, db = a[pick], b[pick]
        da, db = da[da >= TAU] - TAU + 1, db[db >= TAU] - TAU + 1
        ratios.append(float(np.median(db)) / float(np.median(da)))
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(lo), float(hi)


# -- one scenario ------------------------------------------------------------------------------
@dataclass
class Job:
    sc: Scenario
    streams: int
    river_streams: int
    seed: int
    calibrate_river: bool


def run_scenario(job: Job) -> list[Result]:
    sc = job.sc
    rng = np.random.default_rng(job.seed)
    null = sc.null(rng, job.streams)
    change = sc.change(rng, job.streams)
    out: list[Result] = []
    t0 = time.monotonic()

    grid = np.round(np.arange(1.0, 14.0, 0.01), 3)
    nf = cusum_first(null, sc, grid)
    i = smallest_within(nf, grid)
    oracle_first = cusum_first(change, sc, grid[[i]])[:, 0]
    out.append(
        score(
            "CUSUM oracle (told both rates, one-sided)",
            nf[:, i],
            oracle_first,
            params=f"h={grid[i]:.2f}",
            threshold=float(grid[i]),
        )
    )

    kind = sc.kind
    W = DEFAULT_WARMUP
    thr_null = driftwatch_thresholds(null, kind)
    nf = driftwatch_first(null, kind)
    cf = driftwatch_first(change, kind)
    err = change_errors(sc, change, min(200, job.streams))
    ci = paired_ratio_ci(oracle_first, cf, job.seed)
    out.append(
        score(
            "**driftwatch default** (LaggedSR: mixture Shiryaev–Roberts, lagged baseline)",
            nf,
            cf,
            fa_from=W,
            change_error=err,
            ratio_ci=ci,
            params=f"shifts {list(DEFAULT_SHIFTS)} sd, table thresholds ≈{float(np.median(thr_null)):.2f}",
        )
    )

    # The same alternatives as the largest of separate CUSUMs (why a mixture), calibrated here.
    grid = np.round(np.arange(5.0, 12.0, 0.02), 3)
    nf = alarm_times(null, kind=kind, thresholds=grid, statistic="cusum")
    i = smallest_within(nf, grid, W)
    cf = alarm_times(change, kind=kind, thresholds=grid[[i]], statistic="cusum")[:, 0]
    out.append(
        score(
            "CUSUM bank, same alternatives, lagged baseline",
            nf[:, i],
            cf,
            fa_from=W,
            params=f"h={grid[i]:.2f}",
        )
    )

    # River's PageHinkley as four one-sided CUSUMs (the best River construction), on every stream
    # through a checked vectorised mirror; calibrated here on no-change streams, told the true sd.
    grid = np.round(np.exp(np.arange(np.log(2.0), np.log(200.0), 0.01)), 4)
    nf = first_above(ph_bank_stat(null, sc), grid)
    i = smallest_within(nf, grid, W)
    cf = first_above(ph_bank_stat(change, sc), grid[[i]])[:, 0]
    out.append(
        score(
            "River PageHinkley ×4 as one-sided CUSUMs (told the sd), calibrated",
            nf[:, i],
            cf,
            fa_from=W,
            ratio_ci=paired_ratio_ci(oracle_first, cf, job.seed + 1),
            params=f"threshold={grid[i]:.3g}",
        )
    )

    # Fixed windows: at p < 0.05 as trackers use them, and calibrated to the budget.
    phase_rng = np.random.default_rng(job.seed + 2)
    null_phase = phase_rng.integers(0, DAY, null.shape[0])
    change_phase = phase_rng.integers(0, DAY, change.shape[0])
    for window, label in ((DAY, "daily"), (7 * DAY, "7-day"), (30 * DAY, "30-day")):
        z = np.array([1.959964, *list(np.round(np.arange(2.0, 7.0, 0.02), 3))])
        nf = fixed_window_first(null, sc, window, z, null_phase)
        cf = fixed_window_first(change, sc, window, z, change_phase)
        out.append(score(f"fixed window, {label}, p < 0.05", nf[:, 0], cf[:, 0], fa_from=W))
        j = 1 + smallest_within(nf[:, 1:], z[1:], W)
        out.append(
            score(
                f"fixed window, {label}, calibrated",
                nf[:, j],
                cf[:, j],
                fa_from=W,
                params=f"|z| > {z[j]:.2f}",
            )
        )

    # River: the same streams, fewer of them (pure per-update Python calls).
    rs = job.river_streams
    rnull, rchange = null[:rs], change[:rs]
    for spec in RIVER:
        if spec.binary_only and kind != "binary":
            continue
        n = min(rs, spec.max_streams or rs)
        if spec.max_streams and not sc.goal:
            continue
        nf = river_first(spec, None, rnull[:n])
        cf = river_first(spec, None, rchange[:n])
        note = f"{n} streams" if n < rs else ""
        out.append(score(f"River {spec.name}, defaults", nf, cf, note=note))
        if job.calibrate_river and sc.goal and not spec.max_streams:
            cal = sc.null(np.random.default_rng(job.seed + 1), rs)  # calibrate on other streams
            param, _ = river_calibrate(spec, cal)
            nf = river_first(spec, param, rnull)
            cf = river_first(spec, param, rchange)
            out.append(score(f"River {spec.name}, calibrated", nf, cf, params=f"{spec.param}={param:.3g}"))
    print(f"  {sc.name}: {time.monotonic() - t0:.0f}s", file=sys.stderr, flush=True)
    return out


# -- p-values under no change -----------------------------------------------------------------
def null_p_values(streams: int, seed: int) -> list[float]:
    """Stage-two p-values of the Monitor's own alerts on no-change streams (budget 1e-3 for speed)."""
    from driftwatch import Config, InMemorySink, Monitor, Outcome

    sink = InMemorySink()
    mon = Monitor(Config(signals=["success"], budget=1e-3, console=False), [sink], threaded=False)
    rng = random.Random(seed)
    for s in range(streams):
        p = rng.choice([0.3, 0.51, 0.8])
        for i in range(10_000):
            mon.process(Outcome(task=f"null{s}", time=float(i), success=rng.random() < p))
    return [a.p_value for a in sink.alerts if a.status in ("confirmed", "resolved") and a.p_value is not None]


# -- held-out streams through `driftwatch replay` ---------------------------------------------
def replay_first(sc: Scenario, data: FloatArray) -> IntArray:
    """First ``suspected`` success alert per stream (index, or -1), replayed by the real CLI."""
    streams, length = data.shape
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outcomes.jsonl"
        alerts = Path(tmp) / "alerts.jsonl"
        with path.open("w") as fh:
            for i in range(length):
                for s in range(streams):
                    passed = "true" if data[s, i] > 0.5 else "false"
                    fh.write(
                        f'{{"task": "held-out-{s}", "time": {1_700_000_000 + i}, "success": {passed}}}\n'
                    )
        cmd = [
            sys.executable,
            "-P",
            "-m",
            "driftwatch",
            "replay",
            str(path),
            "--alerts-out",
            str(alerts),
        ]
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        first = np.full(streams, -1, dtype=np.int64)
        from driftwatch._outcome import parse_time

        for line in alerts.read_text().splitlines():
            a = json.loads(line)
            if a["status"] == "suspected" and a["signal"] == "success":
                s = int(a["stream"]["task"].rsplit("-", 1)[1])
                if first[s] < 0:
                    first[s] = int(parse_time(a["detected_at"]) - 1_700_000_000)
    return first


# -- report ------------------------------------------------------------------------------------
def fmt(x: float | None, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def table(sc: Scenario, results: Sequence[Result]) -> list[str]:
    oracle = results[0].median or math.nan
    lines = [
        f"### {sc.name}",
        "",
        "| method | FA/10k average | FA/10k strict | median delay | × oracle | p90 delay | detected | "
        "change-time error | settings |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ratio = (r.median / oracle) if r.median else None
        ratio_cell = fmt(ratio, 2)
        if r.ratio_ci is not None and ratio is not None:
            ratio_cell += f" ({r.ratio_ci[0]:.2f}–{r.ratio_ci[1]:.2f})"
        name = f"{r.method} ({r.note})" if r.note else r.method
        detected = fmt(r.rate * 100 if r.rate is not None else None)
        lines.append(
            f"| {name} | {fmt(r.fa_avg, 2)} | {fmt(r.fa_strict, 2)} | {fmt(r.median)} | {ratio_cell} | "
            f"{fmt(r.p90)} | {detected}% | {fmt(r.change_error)} | {r.params} |"
        )
    return [*lines, ""]


METHOD = """\
## How driftwatch detects

One detector per (stream, signal): `LaggedSR` (detectors/_lagged_sr.py), in River's form
(`update(x)`, `drift_detected`, state wiped on the update after an alarm). Pass/fail is watched
as 0/1; latency, cost and token counts on the log scale (`log`, `log1p`), so that a +30% latency
change is a shift of the mean; dollars are not watched for drift (price changes are known events),
tokens are.

* **Lagged baseline.** The first 500 observations form the baseline; after that the baseline is
  every observation except the latest 300. A change therefore does not leak into the reference
  the way it does into River's `PageHinkley` running mean (compare the PageHinkley bank row).
  The warm-up is watched too, by a self-starting detector, and every likelihood ratio is divided
  by the stream's estimated long-run variance inflation (1 on independent values): see
  "Production-shaped streams" below. The goal table's mirror runs neither (they change nothing
  after the warm-up on independent values but the rare stream whose κ bound leaves 1).
* **Mixture Shiryaev–Roberts.** For each alternative — a shift of 0.3 or 0.45 standard deviations,
  up or down — a Shiryaev–Roberts statistic `R ← (1 + R) · LR` of the exact likelihood ratio
  (Bernoulli for pass/fail, Gaussian for standardised log values). The detector fires when the
  average of the four crosses the threshold. Taking the *largest* of separate CUSUMs instead
  (the "CUSUM bank" row, same alternatives, same baseline) makes each alternative pay for its own
  false alarms; the average lets neighbouring alternatives add up.
* **Only possible alternatives.** Near a pass rate of 1 (or 0) a shift of so many standard
  deviations leaves [0, 1]: at 0.90, "up 0.45 sd" is 1.035. Such an arm is switched off at the end
  of the warm-up (the smallest shift each way always stays), so the mixture does not spend a
  quarter of the false-alarm budget on an impossible rate; at 0.90 it averages three arms.
* **Calibrated per base rate.** `make calibrate` simulates the detector exactly (a vectorised
  mirror that a test checks fires at the same index as the scalar detector) on 4,000 no-change
  streams of 10,000 observations per base rate (0.02–0.98 in steps of 0.04, plus Gaussian) and
  keeps the smallest threshold within 0.95 of the budget; thresholds are interpolated between
  base rates, read once from `detectors/thresholds.json` (no simulation at start-up). River's
  thresholds do not carry over between base rates; ours are per base rate. Two per base rate: an
  *early* one for observations 501-1,000 (the first 500 after the warm-up, when the baseline rests
  on 500-700 values), the smallest within 0.95 of the budget in that window on its own (simulated
  on 20,000 streams), and with it in place the later one, within 0.95 of the budget over the
  10,000 observations (2026-12-02; see "Strict check" below).
* **Change time.** Each alternative also keeps a CUSUM of the same likelihood ratios; the alert's
  change-time estimate is the last zero of the CUSUM of the alternative that dominates the
  mixture. The "change-time error" column is the median distance to the true change.

## Where the goal stands, and what it costs

* The goal table above is the claim: the median delay relative to the oracle on the same 6,000
  streams, with a paired bootstrap interval. At the budget of 1 false alarm per 10,000 observations
  (average over 10,000-observation streams) the default is inside 1.25× on both with its whole
  interval since the early threshold (2026-12-02; before it, on 0.51 → 0.38 the upper end, 1.264,
  was not), and the strict window holds ≤ 1 too (0.91 and 0.79). The held-out replay section
  repeats the check through the production path.
* **Two-sided costs most of the gap.** Watching both directions splits the false-alarm budget:
  for a CUSUM told the true rates that alone costs about log 2 / KL observations (1.10–1.15×), and
  estimating the base rate from the warm-up another ~4%; a Shiryaev–Roberts statistic with only
  the matched arm and the true base rate is at the oracle's delay
  (`python -P benchmarks/detection_decomposition.py` lifts one restriction at a time).
* **Strict check.** In the first 500 observations after the warm-up, when the baseline rests on
  500–700 observations, a likelihood ratio against the estimated baseline alarms more often than
  against the true rate: with one threshold the rate there was 1.2–1.5 per 10,000 rather than ≤ 1.
  Since 2026-12-02 the table holds a separate early threshold for that window (about 0.5 higher:
  9.84 against 9.30 at a 0.51 pass rate); the later threshold is calibrated with it in place and came
  out 0.04–0.05 lower. (One threshold for both windows, the old `--strict`, cost about 1.4× the
  oracle.) Its cost falls on changes *inside* the window: see "The early threshold" below.
* **River's PageHinkley bank** wins 0.90 → 0.765 only by being one-sided in practice there: its
  threshold is in raw units, so at a 0.9 pass rate its "up" tests need long unbroken runs of passes
  and almost never fire (spending nothing of the budget). The 0.90 → 0.96 improvement shows the
  price: it detects under half of those streams within 3,000 observations, driftwatch 95%.
* Among the rest at ≤ 1 false alarm per 10,000, driftwatch's default has the shortest median
  delay on every pass-rate degradation. The same alternatives as a CUSUM bank, calibrated here on
  the very no-change streams it is scored on (which flatters it), are a few observations faster on
  the numeric shifts and on 0.90 → 0.96; the mixture wins where the true shift lies between the
  alternatives.

## Two stages, and the fleet rule

Stage one (`suspected`) is the detector at the per-stream budget *b* (default 1e-4 false alarms per
observation). Stage two is a **sequential test on fresh observations** after the alarm
(`SequentialConfirm`, detectors/_sequential.py), never on the ones that raised it, one-sided in the
alarm's direction; stage one waits meanwhile. After each fresh observation it updates two
likelihood ratios against the baseline before the alarm (Bernoulli for pass/fail, Gaussian on the
detection scale otherwise):

* **page** (`confirmed`) when the mixture ratio "shifted 0.2–0.7 sd in the alarm's direction"
  against "at the baseline" reaches 1 / `confirm_alpha` (default 0.05 → 20). By Ville's inequality
  a stream at its baseline ever reaches it with probability at most `confirm_alpha`, however long
  the test runs: `confirm_alpha` is an anytime error rate, and 1 / ratio an anytime-valid p-value
  (the alert's `p_value`);
* **withdraw** (`resolved`, `resolved_by: withdrawn`) only on evidence that the stream is at its
  baseline: the ratio "at the baseline" against "shifted `min_shift` (0.2 sd)" reaching
  1 / `withdraw_beta` (default 0.01 → 100), so a real change of at least `min_shift` is withdrawn
  with probability at most `withdraw_beta`. A p-value above a threshold withdraws nothing;
* undecided, the alert stays `suspected`; after `max_fresh` (2,000) fresh observations it closes as
  inconclusive and detection resumes from the baseline before the alarm.

No contamination: a suspected period's observations enter the baseline only when the candidate is
withdrawn on evidence. After a page, the changed level is the working baseline of further detection
(losing an improvement is paged as a regression). Confirmed alerts carry `confirmed_at` (event time
of the decision) and say on how many fresh observations and by which ratio they were decided.
Benjamini–Hochberg across concurrent candidates is recorded in `extra` (`bh_m`, `bh_rank`) but holds
no page back.

**Fleet control (issue 15 item 3).** The stage-two likelihood ratios are e-values, and e-BH over
them is Benjamini–Hochberg on p = 1/ratio (a seeded test checks the identity). Its k-th threshold
is m / (`confirm_alpha` · k) ≥ 1 / `confirm_alpha`, so across candidates it can only make a page
*harder* than the lone test, never easier. Simulated (`python -P benchmarks/fleet_fdr.py --reps
60`, seed 20261203: 20 candidates suspected at once at a pass rate of 0.51, a share of them really
at 0.38, alpha 0.05): the shipped lone tests page every real change in a median 75–91 fresh
observations with a false discovery rate of 0.433 when none changed (each null candidate pages with
probability ≤ 0.05, so 20 of them page at least once 43 % of the time), 0.085 with 20 % changed,
0.025 with 50 %, 0.006 with 90 %; e-BH pages them in 139–174 (about 1.6–2.3× later) at a false
discovery rate of 0.033, 0, 0.002, 0.003. The Monitor keeps the lone tests (per-stream error
control, false pages ≤ *b* × `confirm_alpha` per observation, the fleet rule below) and records
BH's ranks in `extra`; a fleet that wants its pages' FDR held at a level should lower
`confirm_alpha` rather than gate pages on the other candidates.

**Fleet rule.** Expected false pages per week ≤ streams × observations per stream per week × *b* ×
`confirm_alpha`. A service with 500 streams of 1,000 tasks a week each, at the defaults, expects at
most 500 × 1,000 × 1e-4 × 0.05 = 2.5 false pages a week (and 50 `suspected` annotations); measured
on no-change streams, the rate is well below the bound (Pages section: false pages per 100k). To
stay under *k* false pages a week, choose *b* × `confirm_alpha` ≤ *k* / (streams × weekly volume);
each tenfold stricter *b* costs the oracle only ~30–70 observations of delay (design-notes.md).
Per-signal streams count separately: 500 task streams × 3 watched signals is 1,500 streams.

## River 0.26 traps handled here

* `from river.drift import *` fails; the binary detectors live in `river.drift.binary` and are
  named `HDDMA` / `HDDMW` (not `HDDM_A` / `HDDM_W`).
* DDM, EDDM and HDDM watch an *error* rate: they are fed 1 for a failed task. FHDDM watches an
  accuracy and alarms when it falls: it is fed 1 for a passed task (inverted polarity). These
  detectors are one-sided at their defaults; HDDM is run two-sided when calibrated.
* ADWIN's window after an alarm is not a change-time estimate; River wipes a detector's state on
  the update after an alarm, so anything wanted from it must be read at the alarm.
* KSWIN costs ~230 µs per update here and is nearly blind on 0/1 data; it runs on a handful of
  streams at its defaults only.

"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--streams", type=int, default=1500, help="simulated streams per scenario (default 1500)"
    )
    parser.add_argument(
        "--goal-streams",
        type=int,
        default=6000,
        help="streams for the two goal scenarios, whose ratio is the claim (default 6000)",
    )
    parser.add_argument(
        "--river-streams", type=int, default=150, help="streams for River detectors (default 150)"
    )
    parser.add_argument(
        "--replay-streams", type=int, default=2000, help="held-out streams per goal scenario through replay"
    )
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--out", default=str(ROOT / "docs" / "detection.md"))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="few streams, no River calibration: a smoke run")
    parser.add_argument("--no-real", action="store_true", help="skip the real-data and replay sections")
    parser.add_argument("--pages-seed", type=int, default=20261202, help="seed of the pages section")
    parser.add_argument("--pages-streams", type=int, default=None, help="change streams per pages scenario")
    parser.add_argument("--pages-null-streams", type=int, default=None)
    parser.add_argument("--pages-tracker", type=int, default=None, help="tracker replications")
    parser.add_argument(
        "--update-pages",
        action="store_true",
        help="regenerate in --out only the pages section, the stage-two p-value section and the method "
        "text; the simulation tables stay as generated",
    )
    parser.add_argument(
        "--update-production",
        action="store_true",
        help="regenerate in --out only the production-shaped streams section (benchmarks/dependence.py)",
    )
    args = parser.parse_args(argv)
    if args.update_pages:
        return update_pages(args)
    if args.update_production:
        path = Path(args.out)
        text = _replace(
            path.read_text(encoding="utf-8"),
            PRODUCTION_TITLE,
            "\n".join(production_section(args, "python -P benchmarks/detection.py --update-production")),
            "## Stage-two p-values",
        )
        path.write_text(text, encoding="utf-8")
        return 0
    if args.quick:
        args.streams, args.goal_streams, args.river_streams = 150, 300, 12
    started = time.monotonic()
    jobs = [
        Job(
            sc,
            args.goal_streams if sc.goal else args.streams,
            args.river_streams,
            args.seed + 101 * i,
            calibrate_river=not args.quick,
        )
        for i, sc in enumerate(SCENARIOS)
    ]
    for sc in [*(s for s in SCENARIOS if s.goal), next(s for s in SCENARIOS if s.kind == "numeric")]:
        check_ph_mirror(sc)
    print(f"simulating {len(jobs)} scenarios on {args.jobs} processes ...", file=sys.stderr, flush=True)
    with multiprocessing.Pool(max(1, args.jobs)) as pool:
        all_results = pool.map(run_scenario, jobs, chunksize=1)

    lines = [
        "# Detection quality",
        "",
        "Generated by `python -P benchmarks/detection.py"
        + (" --quick" if args.quick else "")
        + f"` (seed {args.seed}, {args.goal_streams} streams for each goal scenario, {args.streams} for "
        f"the others, {args.river_streams} for River detectors; {time.strftime('%Y-%m-%d')}). "
        "Do not edit by hand.",
        "",
        __doc__.split("\n\n", 2)[2].strip() if __doc__ else "",
        "",
        "## Goal",
        "",
    ]
    goal_rows = []
    for job, results in zip(jobs, all_results, strict=True):
        if job.sc.goal:
            o, d = results[0], results[1]
            ratio = (d.median or math.nan) / (o.median or math.nan)
            lo, hi = d.ratio_ci or (math.nan, math.nan)
            fa_ok = (d.fa_avg or 0.0) <= 1.0
            verdict = "yes" if ratio <= 1.25 and hi <= 1.25 and fa_ok else "no" if lo > 1.25 else "not shown"
            goal_rows.append(
                f"| {job.sc.name} | {job.streams} | {fmt(o.median)} | {fmt(d.median)} | {ratio:.3f} | "
                f"{lo:.3f} – {hi:.3f} | {verdict} | {fmt(d.fa_avg, 2)} | {fmt(d.fa_strict, 2)} |"
            )
    lines += [
        "driftwatch's default must stay within 1.25× the oracle's median delay at ≤ 1 false alarm per "
        "10,000 observations. Both run on the same streams; the interval is a paired bootstrap over "
        'streams (2,000 resamples). "yes" needs the whole interval at or below 1.25 and the average '
        'false-alarm rate at or below 1; "not shown" means the interval straddles 1.25.',
        "",
        "| shift | streams | oracle median | driftwatch median | ratio | 95% interval | ≤ 1.25× | "
        "FA/10k average | FA/10k strict |",
        "|---|---:|---:|---:|---:|---|---|---:|---:|",
        *goal_rows,
        "",
        *pages_section(args),
        "## All scenarios",
        "",
        "Oracle: a one-sided CUSUM with the true before and after rates, its threshold calibrated here "
        "to 1 FA/10k. Fixed window: 50 tasks a day; at each day's end the last 1/7/30 days against the "
        "first 500 tasks, two-sided, no multiplicity correction (as public trackers do), and the same "
        "with |z| raised until 1 FA/10k. River rows run on the first streams of the same sets. "
        '"detected": within 3,000 observations of the change, among streams without an earlier alarm.',
        "",
    ]
    for job, results in zip(jobs, all_results, strict=True):
        lines += table(job.sc, results)

    lines += [METHOD]
    lines += production_section(args)
    # Write what the simulations found now: the sections below take minutes more.
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    if not args.no_real:
        print("p-values under no change ...", file=sys.stderr, flush=True)
        pv = null_p_values(8 if args.quick else 40, args.seed)
        lines += pvalue_section(pv)
        print("held-out streams through `driftwatch replay` ...", file=sys.stderr, flush=True)
        oracle_h = {
            job.sc.name: results[0].threshold
            for job, results in zip(jobs, all_results, strict=True)
            if job.sc.goal and results[0].threshold is not None
        }
        lines += replay_section(args, oracle_h)
        print("real data ...", file=sys.stderr, flush=True)
        lines += real_data_section()
    lines += [f"_Total run time {time.monotonic() - started:.0f} s._", ""]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


PRODUCTION_TITLE = "## Production-shaped streams"
PRODUCTION_PROSE = """\
## Production-shaped streams: short baselines, dependence, cycles (issue 16)

Two additions inside `LaggedSR`, with stage two told through `LaggedSR.confirm_kwargs()`:

* **Self-starting warm-up.** During the warm-up (observations 1-500, and again after every restart)
  `SelfStartingSR` (`detectors/_self_starting.py`) watches: each value against the posterior
  predictive of the values before the latest 10 (Beta-Binomial for pass/fail, Student-t for log
  values, residuals held within ±3 so a 30× timeout is not 10 nats), a mixture Shiryaev-Roberts of
  shifts of 1 and 2 sd, thresholds per block of observation counts calibrated to the budget from the
  first observation. Its alarm is the detector's alarm (direction, change estimate by a CUSUM's last
  zero, `split()`), and the alert says so: `detector.phase = "self-starting"`, `detector.baseline_n`,
  and "... suspected after 12 observations against a baseline from 23 observations (self-starting)".
  After an alarm the detector restarts on the next value (River's form), so a suspicion's values
  never become a baseline: a page resumes it from the fresh values (a new stream, watched again from
  its first observation), a withdrawal from the history plus the fresh values.
  *Stage two with a short baseline.* On unselected baselines of 20-50 observations
  `SequentialConfirm` holds its level (0.02-0.04 at alpha 0.05; seeded test), but the alarm selects
  its baseline: on 686 / 482 self-starting false alarms (log values / pass/fail) the baseline lay 1.1
  standard errors away from the alarm on average and weight 1 confirmed 21% / 27%; weight 0.5
  confirms ~10% (0.25: 2%, but pages 0.85 → 0.45 at 40 in 35% instead of 77%). And a short baseline
  caps the evidence that nothing changed: against 0.2 sd, 80-98% of false alarms were still undecided
  after 1,500 fresh values; against 0.75 sd (the early phase watches 1-2 sd) 79% are withdrawn and
  8.5-9.4% confirmed, while 0.94-1.1 sd changes are confirmed as often (80/81, 66/66). So after a
  self-starting alarm `confirm_kwargs()` gives `baseline_weight` 0.5 and `min_shift` 0.75.
* **Dependence** (`detectors/_dispersion.py`). A long-run variance inflation κ per stream from the
  values as they enter the baseline (a change reaches it only after the lag), kept across restarts:
  the largest of three lower 95% confidence bounds, each 1 on independent values — batch means
  (batches of 50, successive differences), the lag-1 autocorrelation as an AR(1) factor
  (1 + r) / (1 - r) (bursts, AR noise: from tens of values), and block means of 10 (their variance
  ratio times their own AR(1) factor: runs of tens, i.e. easy/hard batches and cycles). Stage one
  divides every log likelihood ratio by κ (the self-starting phase too): for a sum of dependent
  increments that is the independent statistic at δ/√κ, so the calibrated thresholds carry over.
  Stage two gets the point estimate (shrunk towards 1) as `dispersion`, dividing both log ratios (for
  pass/fail a quasi-likelihood overdispersion). An AR fit alone misses batch regimes (their
  autocorrelation decays slower than φ^k: lag-1 says κ ≈ 1.4 where it is 6-10); batch means alone
  need thousands of values before their bound moves (the first version, batches only, left regime
  batches at 8.4 suspected and 4.5 pages per 10k); regime models need labels. κ is used only once
  dependence is *shown*: one of the three lower bounds at 99.5% (2.576 standard errors) exceeds 1;
  then stage one takes the largest 95% bound. With the 95% bounds alone, refreshed as the baseline
  grows, κ exceeded 1 on 11-13% of independent streams at observation 1,000 (not 5%), which moved
  the shipped path's delay on 0.51 → 0.38 from 1.254× to 1.272× the oracle (decomposition below);
  with the test, 1.4% of independent pass/fail streams (1,000 seeded streams at 0.51; seeded test:
  at most 11 of 200).
* **Seasonality** (`detectors/_seasonal.py`). Numeric signals (latency, time to first token, tokens,
  cost) are watched minus an hour-of-day and a day-of-week offset of their event time (UTC), once a
  profile is shown; stage two and the recovery check get the same adjusted values
  (`LaggedSR.adjusted`). The profile keeps per hour (24) and weekday (7) bin, and per parity of the
  day (week), the count, mean and sum of squares of every value observed (stage two's too), each
  learnt 300 values late (the detector's lag: a change reaches the profile when it reaches the
  baseline). *Shown* by split halves once two periods exist: the even and the odd days' bin
  deviations are independent estimates of the same profile when the noise's dependence is shorter
  than a day, so the mean of their products estimates the profile's variance τ² and a quarter of
  their mean squared difference the noise v of a bin mean, dependence included, without a model of
  it (bursts, AR noise and batches of tasks do not pass for a cycle); used at 3.5 standard errors
  above zero, kept down to 2. One day is not enough: a χ² test of one day's bins (tried first)
  lets a 0.8 → 0.5 step and its return within a day, or any change in a stream's first day, pass
  for an hour-of-day profile, which then hides the change and pages its end (a JUnit replay test
  caught it); a profile must repeat. It cost the cycles 2 days instead of ~1 at 2,000 a day, and 2
  weeks instead of 1 for a weekday profile (30-stream runs: 2,000 a day 2.7 → 3.6 pages per 10k,
  weekly 2.7 → 5.9).
  Each offset is its bin's deviation shrunk by τ² / (τ² + v) (empirical Bayes). When a profile
  first appears (or moves) the detector's baseline, formed from values adjusted otherwise, may be
  off (2,000 a day: a baseline of 500 is a quarter day): when the offsets move the mean of the
  values it saw since its restart by more than 0.1 sd, it resumes from its baseline moved by that
  much (a restart with a new warm-up paged a step right after it later: 166 instead of 131
  observations, 85% instead of 92% within 1,500, measured with the one-day test then in place).
  Alerts say it: `detector.seasonal` (per factor the amplitude of the offsets in use and the days
  of data) and "(×1.3; seasonally adjusted by hour of day)" in the message, since both means are
  adjusted; a suspicion's message adds the offsets' amplitude.
  Why not a confirmation that requires persistence across the cycle: it delays every page on a
  numeric stream by up to a day, the short-baseline catches (tokens ×2.5 paged after ~15) included,
  while the profile costs a step on a cycle little (below). On independent values a profile is
  shown on 3 of 200 streams of 10,500 (0.31% of observations), and stage one is unchanged: 194
  alarms on 200 streams and a median delay of 52 for +30% either way (`python -P
  benchmarks/seasonal.py --streams 200`, seed 20261201). Memory: under 10 KiB pickled (the
  300-value delay ring is 4.8 KB); cost: about a third of a numeric update (pass/fail streams have
  none).
  *What it cannot do:* no profile exists before two days of data (two weeks for a weekday
  profile), so the first days of a cyclic stream are left to the next item.
* **Slow structure in stage two** (`Dispersion.scales` in `detectors/_dispersion.py`,
  `SequentialConfirm(dispersion_scales=...)`). κ above is the limit for windows long against the
  dependence; a fresh window shorter than the slow structure (a cycle's peak lasts hours, easy and
  hard tasks come in runs of tens) sits in one phase of it, and the fresh values after a batch's or
  a peak's alarm are still in it. So `confirm_kwargs()` also hands stage two a *variance-time
  reading*: κ at windows of b = 10, 20, ..., 640 values (b times the variance of consecutive b-value
  means over the values' variance; since 2026-12-02 shown where its lower 99.5% bound exceeds 1 and
  used at its upper 90% bound: "Regime batches" below),
  from the values before the estimated change (values after it are the change, not structure). It
  runs on across the detector's restarts (pooling each stretch between alarms around its own mean
  hid the cycles: κ ≈ 1-2 at 2,000 a day) and is forgotten when a seasonal profile appears or
  moves (the structure it saw is then taken out of the values). Stage two divides its confirming
  ratio after n fresh values by (κ(n) n0 + κ(n0) n) / (n0 + n) instead of κ (the variance of the
  difference of the two means, each at its own window), and pages only after twice the largest
  window whose κ is at least 2× the long-run one (persistence across the structure; 1.5× measured
  the same). Withdrawal keeps the long-run κ: dividing both ratios kept false alarms undecided for
  up to `max_fresh` values, stage one blind meanwhile, and a +30% step on a 500-a-day cycle was
  paged after 997 observations instead of 172. Independent values show no window above 1 in most
  streams (seeded test), and the fresh-stream catches are unchanged (a history of tens of values
  shows no structure): tokens ×2.5 at 40 paged after 14, 0.85 → 0.45 at 40 after 56.
  *Known cost, fixed:* a suspicion raised before a profile is shown, whose page the reading
  blocks, stayed undecided for a thousand fresh values or more, stage one blind meanwhile (one
  stream: suspected at 1,094, withdrawn at 2,257, a +30% step at 2,000 paged only at 2,461). Stage
  two now closes a pending test as inconclusive when the profile appears or moves (`LaggedSR.learn`
  says so: the test's baseline and reading are in the old values), and stage one resumes from the
  baseline before the alarm on the adjusted values.
* **When the profile arrives, for baselines held elsewhere.** Two places held values adjusted
  otherwise than the values from then on. (1) The restart check (`Seasonal.rebase`): after a
  resume it counted only the values fed since and moved the whole resumed baseline by their mean
  offset change. Those are often hours of one phase, so a baseline of two days was moved by about
  the cycle's amplitude and the cycle was paged against it (the stream that failed
  `test_daily_cycle_stays_quiet_once_the_profile_is_shown` with the reading: a baseline of 1,051
  values moved by 0.11 on the 86 counted since its resume, then a page at 2,422 on 76 adjusted
  values). A resumed baseline's values, whose hours are not kept, now count at a zero offset
  change (the offsets' mean over a day). (2) An open page's recovery check
  (`driftwatch/_monitor/watch.py`) compared adjusted values with a baseline and a changed level
  seen raw: a page raised on a cycle's peak before the profile was paged again as a "partial
  recovery" against a baseline from a trough. When the profile appears, goes or moves, both are
  moved by the change of their mean offset over their spans (the baseline from its first value to
  the change, the changed level from the change to now; the values taken as spread evenly in
  time), and the check starts over. On 20 null streams at 2,000 a day (seed 20261231,
  `tests/driftwatch/monitor/test_recovery_season.py`) partial-recovery pages fell 10 → 4 of 66 →
  60 pages. A page on a short, low baseline could still stay open for good: the recovery check's
  changed level absorbs every stretch that fails the return test and converges to the stream's
  own mean, a little off the re-expressed baseline (one stream: a self-starting page at 526 on a
  tolerance of 0.092, the level 0.04 above a baseline of 346 values), so neither "left the changed
  level" nor "within tolerance" is ever shown; and a false *improvement* (latency down in a
  trough) has no recovery check at all (losing it is a regression), so it stayed open unless a
  regression superseded it.
* **Resolved as explained by the profile** (`driftwatch/_monitor/watch.py`, `_Recovery.explained`).
  A page raised before any seasonal profile was shown (its alert has no `detector.seasonal`), an
  improvement too, gets a second test when the profile appears or moves: the adjusted values since
  then against its re-expressed baseline, the log likelihood ratio of "at the baseline" against
  "shifted by two tolerances" (2/3 of the page's change), the smaller of the two ratios (shifted
  up, shifted down), on the difference of the means with variance σ² (1/n + 1/N), so the
  baseline's N values' level is integrated out and the ratio is a martingale under either shift.
  It resolves the page at 1/`RECOVERY_ALPHA` = 100 ("resolved: the change is explained by the
  hour-of-day profile shown after it was paged (seasonally adjusted, 275 observations are at the
  baseline rather than 0.236 beyond it: likelihood ratio 141)", `resolved_by: "seasonal"`), and
  detection resumes from the baseline plus those values, as after a recovery. It never stops the
  other way (a test of power one): by Ville's inequality a change of two tolerances or more is
  explained away with probability at most 0.01 per profile move, on independent adjusted values.
  A first version stopped at 1/100 the other way and resolved little: trials of 70-230 values sit
  in one phase of the residual cycle (the profile's offsets are shrunk when it first shows) and
  went against the baseline. One-sided (only "shifted towards the page"), it took a +30% step
  after a false improvement for the improvement's return. The batched path stops before the value
  on which the test decides (`_Recovering.blocked`); `detectors/_batch.py`'s unrolled loop now
  hands the recovery check each value before the value it pushes out of the delay ring is learnt,
  as `update` does (it took one value more when that refit moved the profile). Measured with
  `python -P benchmarks/open_pages.py` (40 streams × 10,000 per row, seed 20261202; pages counted
  as `benchmarks/production.py` counts them; main → this, one session): streams ending with a page
  open, daily ±25% at 500 a day 19 → **5** (8 of the 19 were improvements), at 2,000 a day 39 →
  32; pages 38 → 33 and 117 → 118; iid log tokens, Markov ρ = 0.5 pass/fail, regime-batch tokens
  unchanged to the page (1, 20, 95; no profile, so no test). A persistent +30% step on the cycle
  (at 1,500 at 500 a day, at 6,000 at 2,000 a day) and pass rate 0.85 → 0.65 at 1,500: no page
  raised after the step resolved as explained (0 of 40 streams each), and as many streams end with
  a page open as before (40, 40 and 39 of 40). Seeded tests in
  `tests/driftwatch/monitor/test_recovery_season.py`: 20
  null streams of 6,000 at 500 a day end with 1 page open (7 before; 6 pages explained, all
  raised before 1,500), 20 steps at 1,500: none explained away, the step's page open at the end
  in 18 (19 before: in one, an early false improvement explained at 1,445 no longer made the step
  a regression against its low level, and the step's suspicion was inconclusive). Through
  `python -P benchmarks/production.py --only cycle --jobs 1` (seed 20261201, main → this, one
  session): pages per 10k 0.84 (0.67–1.04) → 0.82 (0.65–1.02) at 500 a day, 2.93 (2.60–3.29) →
  3.03 (2.70–3.39) at 2,000 a day (10 pages more in 100 streams: resuming from the re-expressed
  baseline, which sits low after a false "up" page, lets the cycle page again; resuming without
  the baseline, or not resuming, gave more pages or missed steps), 0.32 → 0.31 at ±10%, 4.46 →
  4.42 weekly; a +30% step at 1,500 at 500 a day paged after 155 (122–222) instead of 131
  (106–173), 98% instead of 100% within the horizon (a false early page no longer holds a low
  working baseline the step is measured against), at 6,000 at 2,000 a day 94 (82–107) against
  93 (83–104). *Left:* at 2,000 a day 25 of the 32 pages open at the end were raised *against*
  a profile (the cycle's residue while the profile's offsets are still shrunk, and the same
  convergence of the changed level), which this test does not cover, and 7 before it whose
  re-expressed baseline stays 0.12-0.19 below the adjusted level (more than a tolerance: the
  baseline's values are not spread evenly over its span).

**Through the Monitor** (`python -P benchmarks/production.py`, seed 20261201, 100 × 10,000 per null,
counted from the first observation; the sequential stage two of `driftwatch/_monitor/watch.py`
with `confirm_kwargs()`; dependence-aware (before this change) → with the seasonal baseline, 95%
Poisson intervals in `docs/drafts/production.md`; before issue 16 the cycles gave 23; 16; 9.1; 20
suspected and 18.3; 6.7; 0.85; 8.4 pages per 10k. Pass/fail rows are re-measured only: the
seasonal baseline does not touch them):

| family (dependence → seasonal) | suspected / 10k | pages / 10k | goal |
|---|---|---|---|
| iid pass rate 0.85; log tokens | 0.95; 0.90 → 0.69; 0.84 | 0.07; 0.04 → 0.05; 0.05 | met |
| Markov ρ = 0.2; 0.35; 0.5 | 1.5; 1.5; 1.7 → 1.3; 1.5; 1.7 | 0.16; 0.34; 0.48 → 0.12; 0.21; 0.36 | met |
| AR(1) log tokens φ = 0.3; 0.5 | 1.4; 1.8 → 1.4; 1.7 | 0.20; 0.37 → 0.19; 0.38 | met |
| regime batches: pass; tokens | 7.5; 6.5 → 7.4; 6.2 | 3.6; 3.4 → 3.4; 3.3 | missed |
| daily cycle ±25%, 500; 2,000 a day | 12; 12 → 3.4; 6.4 | 4.5; 6.8 → **1.90; 3.81** | missed |
| daily ±10%; weekly ±25% | 7.8; 15 → 3.7; 10.0 | 1.4; 8.3 → **0.73**; 5.71 | ±10% pages met |
| heavy tails: 30× timeouts; log-t3 | 0.66; 0.64 → 0.76; 0.61 | 0.02; 0.03 → 0.04; 0.03 | met |

Upper 95% ends of the last figures: Markov ρ = 0.5 1.96 suspected, 0.50 pages; AR(1) φ = 0.5 2.00
and 0.52; iid 1.04 and 0.12; daily ±25% pages 2.19 (500 a day) and 4.21 (2,000 a day), ±10%
0.92, weekly 6.20.

Re-run after the early threshold and κ's 99.5% gate (below, "The goal scenarios through the shipped
path"), then with the slow-structure item and the two fixes when a profile arrives (above), main →
this code in one session, `python -P benchmarks/production.py --only cycle --jobs 1` (seed
20261201, 100 × 10,000): pages per 10k 1.97 (1.70–2.27) → **0.84 (0.67–1.04)** at 500 a day, 3.75
(3.38–4.15) → 2.93 (2.60–3.29) at 2,000 a day, 0.76 (0.60–0.95) → **0.32 (0.22–0.45)** at ±10%,
5.67 (5.21–6.16) → 4.46 (4.06–4.89) weekly; suspected 3.52 → 3.42 (3.07–3.80), 6.12 → 6.46
(5.97–6.98), 3.91 → 3.64 (3.28–4.03), 10.04 → 9.60 (9.00–10.23). The reading without the two fixes
gave 0.96, 3.15, 0.39 and 4.50 pages (the restart fix alone: 0.84, 3.25, 0.32, 4.60). A +30% step at
1,500 on the 500-a-day cycle: paged after 155 (102–237) → 131 (106–173), 83% → 100% within the
horizon; at 6,000 on the 2,000-a-day cycle 94 (77–106) → 93 (83–104), 98% both. Regime batches
(`--only regime`): 3.48 (3.12–3.87) → 2.64 (2.33–2.98) and 3.14 (2.80–3.51) → 2.28 (1.99–2.60)
pages, 7.39 → 7.96 and 5.97 → 6.57 suspected. The full run (`python -P benchmarks/production.py
--jobs 1`, 402 s, tables in `docs/drafts/production.md`) leaves the iid, Markov, AR(1) and
heavy-tail rows within noise of the table above (pages 0.05, 0.05; 0.10, 0.15, 0.33; 0.18, 0.32;
0.04, 0.03) and the fresh-stream catches unchanged (0.85 → 0.45 at 40 paged after 56, tokens ×2.5
at 40 after 14); Markov ρ = 0.5, 0.85 → 0.65 paged after 185 (141–210). The iid goal rows through
`driftwatch replay` (`python -P benchmarks/goal_replay.py --streams 600 --null-streams 1000 --seed
20261205`) are main's to the digit: 1.22 (1.17–1.30) and 1.11 (1.05–1.20) × the oracle, 0.72 and
0.83 false alarms per 10k in the strict window.

*Where the cycles still page* (the last column of the null table in `docs/drafts/production.md`
counts the pages raised against a seasonal profile; figures with stage two's reading at its upper 90%
bound, below, after the merge of pages explained by the profile): 0.26, 0.79 and 0.06 per 10k of
the daily cycles' 0.83, 1.90 and 0.51; the weekly stream's 1.42 of 2.38 come against an hour-of-day profile
while the weekday one is not shown yet (not diagnosed; likely: the reading is forgotten when the
hour-of-day profile appears, and the weekly structure left in the adjusted values takes days to
show in it again). The rest
come before a profile can be shown: the first two days plus the 300-value delay (a ±25% cycle is
0.9 sd peak to trough on a log-sd of 0.5; the self-starting phase and a baseline of part of a day
read it as a change, and the fresh values after the alarm are still at the peak), two weeks for a
weekly cycle (2,800 observations at 200 a day). At 2,000 a day the reading's largest window, 640
values, is a third of the day: windows of 1,280 need 5,120 values of history to be shown (four
windows), more than the two days before a profile (measured: adding them changed no page). So the
goal (≤ 1 page per 10k from the first observation) is met at 500 a day (0.83, upper end 1.03) and
at ±10%, and missed by 0.90 (2,000 a day; upper end 2.19) and 1.38 (weekly) pages per 10k; the
suspected-alert goal (≤ 2) is missed by 1.4, 3.4, 1.8 (±10%) and 5.5. The
frontier: the profile needs two periods to be told from a change (one day's test absorbed changes,
above); a confirmation requiring persistence over a day would remove most first-day pages but delay
every page of a new numeric stream by up to a day (tokens ×2.5 at observation 40 is paged after
14). Regime batches: below.

**Regime batches: the reading at its upper bound (2026-12-02).** Where the regime-batch pages came
from (`python -P benchmarks/regime_pages.py`, seed 20261201: `production.py`'s 100 × 10,000 streams,
with the batch labels kept; pass/fail, tokens in brackets): of 264 (228) pages, 58 (75) were partial
recoveries of an open page and 206 (153) stage-two confirmations, of which 78 (72) followed an alarm
in the first 500 observations, 22 (15) one in 501–1,000 and 106 (66) a later one. The fresh values
lay inside the alarm's batch or the next in 51 (77), mostly the first-warm-up ones. The later ones
had too low a reading: κ on these streams is about 6.5 at windows of 160 values or more (2.4 at 10,
6.0 at 80; a 400,000-value simulation), while their pages had a long-run estimate of 1.1–3.4
(quartiles) and readings of 2–5 at 40–80 values: a stream pages when its reading happens to be low.
So each window's reading is now shown where its lower 99.5% bound exceeds 1 (κ's test) and handed to
stage two at an upper bound (Wilson–Hilferty): at first 95%, since the frontier below 90% (a
seeded test checks that it covers κ(80) in at least 8 of 10 regime streams: 10 at 90%, the point
estimate 4). Shown at 95% as before, a window of independent values reads about 2 by chance in a
quarter of streams, and its upper bound (8) delayed
a 0.8 → 0.5 page from 16 to 160 fresh values (a monitor test caught it). At 95%, `python -P
benchmarks/production.py --jobs 1` (seed 20261201; before → after in one session): pages per
10k 2.64 (2.33–2.98) → **1.70 (1.45–1.98)** on pass/fail and 2.28
(1.99–2.60) → **1.20 (0.99–1.43)** on tokens; suspected 7.96 → 6.50 and 6.57 → 6.08 (stage
one is unchanged; fewer pages, fewer restarts). Other nulls: Markov 0.10; 0.15; 0.33 → 0.07; 0.10;
0.25, AR(1) 0.18; 0.32 → 0.10; 0.19, daily cycles 0.84; 2.93 → 0.85; 1.94 and weekly 4.46 → 2.23,
but the ±10% daily cycle 0.32 (0.22–0.45) → 0.52 (0.39–0.68) (its goal still met); iid and heavy
tails unchanged. Variants tried on the first 50 streams (pages 2.74 and 2.12 before): shown at 95%,
1.40 and 1.04 (the 100-stream run: 1.44 and 1.16, ±10% cycle 0.21, but the independent-value cost
above); the readings' plateau (their largest at every window) at point estimates 2.68 and 2.08; an
84% bound 1.66 and 1.34; windows under 10 degrees of freedom left out 2.44 and 1.62; a Student-t
threshold for the estimated variance 1.40 and 1.24.
*The cost* (at 95%; 90%: the frontier below): a real change inside a dependent stream is paged
later, because the large windows'
readings rest on few degrees of freedom (5 at 160 values on a baseline of 1,000: the bound is 4.4×
the point estimate), the very uncertainty that let the nulls page. Every batch's pass rate −0.2 at
1,000 (a change scenario appended to `production.py`, 60 streams): paged after 410 (284–469) → 872
(612–1,346), 93% → **65%** within 1,500; in the seeded test (12 streams) a median of 232 → 408, 11
paged both. Markov ρ = 0.5, 0.85 → 0.65: 185 (141–210) → 234 (200–294), 98% → 97%. The cycles'
+30% steps 131 → 114 (500 a day) and 93 → 92 (2,000 a day), slides and the fresh-stream catches
unchanged (0.85 → 0.45 at 40 paged after 56, tokens ×2.5 at 40 after 14). The iid goal rows through
`driftwatch replay` (`python -P benchmarks/goal_replay.py --streams 600 --null-streams 1000 --seed
20261205`) are unchanged to the digit, as they must be (they score the first suspicion, before any
stage two): 1.22 (1.17–1.30) and 1.11 (1.05–1.20) × the oracle, 0.72 and 0.83 per 10k in the strict
window. At the detector level (the table below, now at 90%; before and at 95%: the same command, the
previous session) the costs are larger: pages of Markov ρ = 0.5 after 228 → 330 at 95%, 305 at 90%
(98% → 86%, 94% paged within 1,500), AR(1) 104 → 204, 180 (100% → 94%, 99%), regime batches 447 →
1,174, 866 (90% → 55%, 72%), the 500-a-day cycle's step 299 → 284, 284 (95% → 77%, 83%); iid 0.85 →
0.75 288 → 266 (99% both). Its null pages: regime batches 1.10; 0.90 → 0.63; 0.63 → 0.77; 0.63,
Markov 0.13; 0.17; 0.27 → 0.07; 0.17; 0.23 (both levels), AR(1) 0.13; 0.27 → 0.03; 0.13 (both),
cycles 0.53; 0.27; 1.87; 1.97 → 0.57; 0.27; 1.03; 1.17 → 0.57; 0.27; 1.13; 1.33.
*The frontier* (`python -P benchmarks/production.py --jobs 1 --only regime --scale-upper Z`, and
`--only cycle`, `--only "Markov bursts ρ=0.5: pass rate"`; seed 20261201, all in one session).
Pages per 10k on the nulls (95% intervals); cycles: daily ±25% at (a) 500 and (b) 2,000 a day,
(c) ±10% at 500, (d) weekly, the 95% level's intervals (b) 1.68–2.23, (d) 1.95–2.54; the changes:
paged after (median, CI), share paged within 1,500 (Markov ρ = 0.5, 0.85 → 0.65 at 1,000, CIs
about ±40). The point estimate ("point est.") is shown at 99.5% as the rest; main's (shown at
95%) gave 2.64, 2.28, 0.84/2.93/0.32/4.46 and 410, 93%.

| upper bound (z) | regime pass/fail | regime tokens | cycles a/b/c/d | −0.2 in batches | Markov |
|---|---|---|---|---|---|
| point est. | 2.70 (2.39–3.04) | 2.31 (2.02–2.63) | 0.92/2.89/0.58/4.46 | 406 (316–467), 93% | 185, 98% |
| 70% (0.52) | 2.16 (1.88–2.47) | 1.77 (1.52–2.05) | 0.85/2.27/0.52/3.24 | 556 (466–662), 85% | 198, 98% |
| 80% (0.84) | 2.09 (1.82–2.39) | 1.50 (1.27–1.76) | 0.85/2.10/0.52/2.87 | 596 (473–718), 82% | 205, 98% |
| 85% (1.04) | 1.91 (1.65–2.20) | 1.48 (1.25–1.74) | 0.85/2.03/0.52/2.58 | 632 (506–870), 80% | 211, 98% |
| 90% (1.28) | 1.72 (1.47–2.00) | 1.32 (1.10–1.57) | 0.85/2.02/0.52/2.45 | 705 (545–1115), 75% | 214, 98% |
| 95% (1.645) | 1.70 (1.45–1.98) | 1.20 (0.99–1.43) | 0.85/1.94/0.52/2.23 | 872 (612–1346), 65% | 234, 97% |

The +30% steps on the cycles are paged after 112–117 (500 a day) and 92–93 (2,000 a day) at every
level, 97–100% within the horizon. The rule used for the default: the lowest level whose pages on
every null above stay inside the 95% intervals of the 95% level's (no measurable null cost for the
delay bought back): **90%**, which pages the regime change after 705 instead of 872 observations,
75% instead of 65% within 1,500, for +0.02 and +0.12 pages per 10k on pass/fail and tokens. 85%
already leaves the intervals on tokens (1.48) and weekly (2.58), 80% on pass/fail (2.09) and weekly
(2.87). Paging ≥ 85% of the change within 1,500 takes 70% or less: +0.46 pages per 10k on pass/fail
(2.16), +1.0 at the point estimate; the tests' seeds point the same way, with more noise (regime
nulls, 8 × 30,000 observations: 52, 63, 80 pages at 95%, 90%, point estimate; the change's 12
streams paged after a median of 408, 324, 232). No level meets the goal: ≤ 1 page per 10k needs
fewer pages than 95% gives, and 95% already pays 872 observations. The full run at 90% (`python -P
benchmarks/production.py --jobs 1`, tables in `docs/drafts/production.md`) adds the other
dependent nulls: Markov 0.08; 0.12; 0.28 and AR(1) 0.13; 0.21 pages per 10k (at 95%: 0.07; 0.10;
0.25 and 0.10; 0.19); iid, heavy tails and the fresh-stream catches are unchanged. After the merge
of main's pages explained by the profile (same commands): the cycles a/b/c/d at 90%
0.83/1.90/0.51/2.38, at 95% 0.83/1.83/0.51/2.16, the 500-a-day step paged after 142 (114–188) at
both; the regime rows unchanged to the digit; the rule still picks 90%.
*Still missed* (at 90%): ≤ 1 page per 10k by 0.72 (pass/fail, upper end 2.00) and 0.32 (tokens,
1.57); ≤ 2 suspected by 4.6 and 4.2 (6.62 and 6.17; stage one's κ is the largest lower bound, 2–4
where κ is 6.5); a −0.2 drop inside the batches is paged in 75% of streams within 1,500 (a median of
705 against the oracle's 50). Where the pages come from (`benchmarks/regime_pages.py`, measured at
95%): of the 170 (120) pages left, 72 (71) follow an alarm in the first 500 observations: a baseline
of a few batches shows no dependence, and a hard batch is a change of 1.6 sd (pass/fail) or 0.9 sd
(tokens) in every respect but its end; the fresh values that page it lie in its batch (median 12 of
them on tokens), and only a persistence requirement of a batch's length would remove them, at the
cost of every fresh-stream page (tokens ×2.5 at 40 is paged after 14). 33 (35) are partial
recoveries of an open page (the recovery check compares means as if independent; not changed here);
65 (14) come later.

A real step on top of a cycle is still paged within about a day's observations: +30% latency on a
±25% daily cycle at 500 a day, at 1,500 (200 observations after the profile is first shown, its
worst case): paged after 172 (129-242), 80% within 1,500 (dependence-aware alone: 166); at the
detector level (below) 191 → 202 observations, 96% → 95% paged. At 2,000 a day, at 6,000: 92
(77-102) = 1.5× the oracle, 95%; detector level 126 → 87.

Changes (same run; oracle: a CUSUM told both rates, from the change): pass rate 0.85 → 0.45 at
observation 40 of a fresh stream, first suspicion 27 (23-32) = **1.8× (1.6-2.2×) the oracle's 15**
(before: not detected), paged after 56 (3.7×), 86% suspected / 83% paged within 1,000; at 100 /
200: 1.4× / 1.2× suspected, 2.7× / 2.1× paged. Output tokens ×2.5 at 20 / 40 / 100: 2.0× / 1.8× /
1.4× suspected, paged after 16 / 14 / 12. At 20, 0.85 → 0.45 is caught in half the streams only:
20 values at 0.85 carry at most ~6.9 nats against 0.45, less than the budget needs. Inside
dependent streams a change is still paged: Markov ρ = 0.5, 0.85 → 0.65 at 1,000: paged after 173
(before 154: the delay the dependence costs, +12%), 98% paged; a +30% latency step on a ±25% daily
cycle: 166 with the dependence estimate alone (159 before it), 172 with the seasonal baseline.
Slides: paged at 1.0-1.3× the oracle (before 1.2-1.8×). At the detector
level (below, where the independent arm has no fixed-sample crutches) the dependence costs more page
delay: Markov 129 → 214, AR(1) 51 → 90, regime batches 162 → 280 observations, and 248 → 266 on an
iid change (stage two's shrunk point estimate of κ exceeds 1 on about half of independent streams).
"""


def production_section(args: argparse.Namespace, command: str | None = None) -> list[str]:
    """Issue 16's families through both stages (``benchmarks/dependence.py``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import dependence  # type: ignore[import-not-found]

    print("production-shaped streams ...", file=sys.stderr, flush=True)
    nulls, changes = (4, 20) if args.quick else (30, 100)
    cmd = (command or "python -P benchmarks/detection.py") + (" --quick" if args.quick else "")
    lines: list[str] = dependence.section(nulls, changes, dependence.SEED, cmd=cmd)
    return [PRODUCTION_PROSE, *lines, ""]


PAGES_TITLE = "## Pages: what on-call receives"


def pages_section(args: argparse.Namespace, command: str | None = None) -> list[str]:
    """Time to page, paged share, withdrawals of real changes, false pages, the tracker
    (``benchmarks/pages.py``), beside the suspected-alert figures."""
    # Run as a script with -P, neither the repository root nor benchmarks/ is on sys.path.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pages import report

    print("pages ...", file=sys.stderr, flush=True)
    command = command or "python -P benchmarks/detection.py"
    flags = f" --pages-seed {args.pages_seed}" if args.pages_seed != 20261202 else ""
    lines = [
        PAGES_TITLE,
        "",
        "What on-call receives is the page (`confirmed`), not the suspicion. The tables above time "
        "the first `suspected` alert; these time the first page through the Monitor, against the "
        "CUSUM oracle at 1 false alarm per 10,000 and per 100,000 observations "
        "(`benchmarks/pages.py`, its own scenarios and seeds).",
        "",
        *report(
            args.pages_seed,
            quick=args.quick,
            jobs=max(1, args.jobs),
            streams=args.pages_streams,
            null_streams=args.pages_null_streams,
            tracker=args.pages_tracker,
            command=command + flags,
        ),
    ]
    return lines


def _replace(text: str, title: str, section: str, before: str) -> str:
    """``text`` with the section headed ``title`` (up to the next "## ") replaced by ``section``, or
    ``section`` inserted before the heading ``before`` when there is none."""
    if title in text:
        start = text.index(title)
        end = text.index("\n## ", start + len(title)) + 1
    else:
        start = end = text.index(before)
    return text[:start] + section.rstrip("\n") + "\n\n" + text[end:]


def update_pages(args: argparse.Namespace) -> int:
    """Regenerate the pages and p-value sections and the method text of ``args.out`` in place."""
    path = Path(args.out)
    text = path.read_text(encoding="utf-8")
    command = "python -P benchmarks/detection.py --update-pages"
    text = _replace(text, PAGES_TITLE, "\n".join(pages_section(args, command)), "## All scenarios")
    start = text.index("## How driftwatch detects")
    end = text.index(PRODUCTION_TITLE if PRODUCTION_TITLE in text else "## Stage-two p-values")
    text = text[:start] + METHOD.rstrip("\n") + "\n\n\n" + text[end:]
    print("p-values under no change ...", file=sys.stderr, flush=True)
    pv = null_p_values(8 if args.quick else 40, args.seed)
    text = _replace(text, "## Stage-two p-values", "\n".join(pvalue_section(pv)), "## Held-out")
    path.write_text(text, encoding="utf-8")
    print(f"updated the pages, p-value and method sections of {args.out}", file=sys.stderr)
    return 0


def pvalue_section(pv: Sequence[float]) -> list[str]:
    lines = [
        "## Stage-two p-values when nothing changed",
        "",
        "The Monitor's own alerts on no-change streams (pass rates 0.3/0.51/0.8, 10,000 observations "
        "each, stage one at budget 1e-3 so that false alarms are plentiful). Stage two is sequential: "
        "its p-value is 1 / the confirming likelihood ratio when it stops (paged or withdrawn), "
        "anytime-valid, so under no change P(p ≤ a) ≤ a for every a (super-uniform, not uniform: "
        "withdrawals stop where the confirming ratio is small, p near 1). A share above a at p ≤ a "
        "would break the fleet rule.",
        "",
    ]
    if not pv:
        return [*lines, "No alerts were raised.", ""]
    arr = np.array(pv)
    counts, _ = np.histogram(pv, bins=10, range=(0.0, 1.0))
    shares = ", ".join(f"p ≤ {a:g}: {np.mean(arr <= a):.3f}" for a in (0.01, 0.05, 0.1, 0.5))
    lines += [
        f"{len(pv)} decided candidates ({int((arr <= 0.05).sum())} paged at confirm_alpha 0.05); "
        f"share with {shares}.",
        "",
        "```",
        *(
            f"{i / 10:.1f}–{(i + 1) / 10:.1f} {'█' * round(40 * c / max(counts.max(), 1))} {c}"
            for i, c in enumerate(counts)
        ),
        "```",
        "",
    ]
    return lines


def replay_section(args: argparse.Namespace, oracle_h: dict[str, float]) -> list[str]:
    lines = [
        "## Held-out streams through `driftwatch replay`",
        "",
        "Fresh seeds, written as outcome JSONL and replayed by the real CLI (the production detection "
        "path: Monitor, config defaults, calibrated table). Delay of each stream's first `suspected` "
        "success alert after the change, against the oracle CUSUM (its threshold from the simulation "
        "above) on the very same streams; the interval is a paired bootstrap over streams.",
        "",
        "| shift | streams | oracle median | replay median | ratio (95% interval) | detected after change "
        "| alarmed before change |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    n = 20 if args.quick else args.replay_streams
    for i, sc in enumerate(s for s in SCENARIOS if s.goal):
        data = sc.change(np.random.default_rng(args.seed + 7 + i), n)[:, : TAU + 1000]
        first = replay_first(sc, data)
        oracle = cusum_first(data, sc, np.array([oracle_h[sc.name]]))[:, 0]
        med = float(np.median(first[first >= TAU] - TAU + 1)) if (first >= TAU).any() else math.nan
        o_med = float(np.median(oracle[oracle >= TAU] - TAU + 1))
        lo, hi = paired_ratio_ci(oracle, first, args.seed + i)
        early = int(((first >= 0) & (first < TAU)).sum())
        lines.append(
            f"| {sc.name} | {n} | {fmt(o_med)} | {fmt(med)} | {med / o_med:.2f} ({lo:.2f}–{hi:.2f}) | "
            f"{int((first >= TAU).sum())} | {early} |"
        )
    return [*lines, ""]


def real_data_section() -> list[str]:
    # Run as a script with -P, neither the repository root nor benchmarks/ is on sys.path.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _real_data import report

    return report()


if __name__ == "__main__":
    raise SystemExit(main())
