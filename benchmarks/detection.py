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
from driftwatch.detectors import DEFAULT_SHIFTS, DEFAULT_WARMUP, LaggedSR
from driftwatch.detectors._calibrate import alarm_times
from driftwatch.detectors._thresholds import threshold_for
from numpy.typing import NDArray
from river import drift
from river.drift import binary as river_binary

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


def per10k(first: IntArray, start: int, end: int) -> float:
    """First alarms per 10,000 observations in [start, end) (alarms before ``start`` excluded)."""
    inside = first[(first >= start) | (first < 0)]
    alarms = int(((inside >= start) & (inside < end)).sum())
    exposure = int(np.where((inside >= start) & (inside < end), inside - start + 1, end - start).sum())
    return 1e4 * alarms / max(exposure, 1)


def score(method: str, null_first: IntArray | None, change_first: IntArray, **kw: Any) -> Result:
    pre = (change_first >= 0) & (change_first < TAU)
    after = change_first[~pre]
    hit = after[after >= TAU]
    delays = hit - TAU + 1
    return Result(
        method,
        per10k(null_first, 0, NULL_LEN) if null_first is not None else None,
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
    first = np.full((data.shape[0], len(thresholds)), -1, dtype=np.int64)
    for t in range(data.shape[1]):
        np.maximum(stat + inc[:, t], 0.0, out=stat)
        hit = (stat[:, None] > thresholds[None, :]) & (first < 0)
        if hit.any():
            rows, cols = np.nonzero(hit)
            first[rows, cols] = t
    return first


def smallest_within(null_first: IntArray, grid: FloatArray, start: int = 0, target: float = 1.0) -> int:
    """Index of the first grid value (grid sorted from loose to strict) within ``target`` FA/10k."""
    for i in range(len(grid)):
        if per10k(null_first[:, i], start, NULL_LEN) <= target:
            return i
    return len(grid) - 1


# -- driftwatch's default ------------------------------------------------------------------------
def driftwatch_thresholds(data: FloatArray, kind: str) -> FloatArray:
    """The threshold each stream's detector picks: from the table, at its warm-up base rate."""
    base = data[:, :DEFAULT_WARMUP].mean(axis=1)
    return np.array([[threshold_for(kind, float(b), BUDGET, DEFAULT_SHIFTS)] for b in base])


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
def fixed_window_first(data: FloatArray, sc: Scenario, window: int, z_crit: FloatArray) -> IntArray:
    """At the end of each day (50 tasks), the last ``window`` tasks against the first 500, two-sided."""
    rows, length = data.shape
    base = data[:, :DEFAULT_WARMUP]
    b_mean = base.mean(axis=1)
    b_var = base.var(axis=1, ddof=1)
    csum = np.concatenate([np.zeros((rows, 1)), np.cumsum(data, axis=1)], axis=1)
    csum2 = np.concatenate([np.zeros((rows, 1)), np.cumsum(data * data, axis=1)], axis=1)
    first = np.full((rows, len(z_crit)), -1, dtype=np.int64)
    for end in range(DEFAULT_WARMUP + window, length + 1, DAY):
        n = window
        mean = (csum[:, end] - csum[:, end - n]) / n
        if sc.kind == "binary":
            pooled = (b_mean * DEFAULT_WARMUP + mean * n) / (DEFAULT_WARMUP + n)
            se = np.sqrt(np.maximum(pooled * (1 - pooled), 1e-12) * (1 / DEFAULT_WARMUP + 1 / n))
        else:
            var = (csum2[:, end] - csum2[:, end - n] - n * mean * mean) / (n - 1)
            se = np.sqrt(b_var / DEFAULT_WARMUP + np.maximum(var, 1e-12) / n)
        z = np.abs(mean - b_mean) / se
        hit = (z[:, None] > z_crit[None, :]) & (first < 0)
        if hit.any():
            r, c = np.nonzero(hit)
            first[r, c] = end - 1
    return first


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


def ph_bank_first(data: FloatArray, sc: Scenario, threshold: float) -> IntArray:
    """Four River PageHinkley detectors as one-sided CUSUMs (two shift sizes each way), 500 warm-up."""
    sd = math.sqrt(sc.before * (1 - sc.before)) if sc.kind == "binary" else sc.sd
    out = np.full(data.shape[0], -1, dtype=np.int64)
    for r, row in enumerate(data):
        bank = [
            drift.PageHinkley(
                min_instances=DEFAULT_WARMUP, delta=s * sd / 2, threshold=threshold, alpha=1.0, mode=m
            )
            for s in DEFAULT_SHIFTS
            for m in ("up", "down")
        ]
        for i, x in enumerate(row.tolist()):
            fired = False
            for d in bank:
                d.update(x)
                fired = fired or d.drift_detected
            if fired:
                out[r] = i
                break
    return out


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

    grid = np.round(np.arange(1.0, 14.0, 0.05), 3)
    nf = cusum_first(null, sc, grid)
    i = smallest_within(nf, grid)
    cf = cusum_first(change, sc, grid[[i]])[:, 0]
    out.append(score("CUSUM oracle (told both rates, one-sided)", nf[:, i], cf, params=f"h={grid[i]:.2f}"))

    kind = sc.kind
    thr_null = driftwatch_thresholds(null, kind)
    thr_change = driftwatch_thresholds(change, kind)
    nf = alarm_times(null, kind=kind, thresholds=thr_null)[:, 0]
    cf = alarm_times(change, kind=kind, thresholds=thr_change)[:, 0]
    err = change_errors(sc, change, min(200, job.streams))
    out.append(
        score(
            "**driftwatch default** (LaggedSR: mixture Shiryaev–Roberts, lagged baseline)",
            nf,
            cf,
            change_error=err,
            params=f"shifts {list(DEFAULT_SHIFTS)} sd, table thresholds ≈{float(np.median(thr_null)):.2f}",
        )
    )

    # The same alternatives as the largest of separate CUSUMs (why a mixture), calibrated here.
    grid = np.round(np.arange(5.0, 12.0, 0.1), 3)
    nf = alarm_times(null, kind=kind, thresholds=grid, statistic="cusum")
    i = smallest_within(nf, grid, DEFAULT_WARMUP, target=0.9)
    cf = alarm_times(change, kind=kind, thresholds=grid[[i]], statistic="cusum")[:, 0]
    out.append(
        score("CUSUM bank, same alternatives, lagged baseline", nf[:, i], cf, params=f"h={grid[i]:.1f}")
    )

    # Fixed windows: at p < 0.05 as trackers use them, and calibrated to the budget.
    for window, label in ((DAY, "daily"), (7 * DAY, "7-day"), (30 * DAY, "30-day")):
        z = np.array([1.959964, *list(np.round(np.arange(2.0, 7.0, 0.05), 3))])
        nf = fixed_window_first(null, sc, window, z)
        cf = fixed_window_first(change, sc, window, z)
        out.append(score(f"fixed window, {label}, p < 0.05", nf[:, 0], cf[:, 0]))
        j = 1 + smallest_within(nf[:, 1:], z[1:])
        out.append(
            score(f"fixed window, {label}, calibrated", nf[:, j], cf[:, j], params=f"|z| > {z[j]:.2f}")
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
    if job.calibrate_river and sc.goal:
        cal = sc.null(np.random.default_rng(job.seed + 1), rs)
        lo, hi = 0.5, 200.0
        best = hi
        for _ in range(8):
            mid = math.sqrt(lo * hi)
            if per10k(ph_bank_first(cal, sc, mid), 0, NULL_LEN) <= 1.0:
                best, hi = mid, mid
            else:
                lo = mid
        nf = ph_bank_first(rnull, sc, best)
        cf = ph_bank_first(rchange, sc, best)
        out.append(
            score(
                "River PageHinkley ×4 as one-sided CUSUMs, calibrated", nf, cf, params=f"threshold={best:.3g}"
            )
        )
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
def replay_delays(sc: Scenario, streams: int, seed: int) -> tuple[float, int, int]:
    """Median delay of the first suspected alert per stream, replayed by the real CLI."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outcomes.jsonl"
        alerts = Path(tmp) / "alerts.jsonl"
        with path.open("w") as fh:
            for i in range(TAU + 1000):
                p = sc.before if i < TAU else sc.after
                for s in range(streams):
                    rec = {"task": f"held-out-{s}", "time": 1_700_000_000 + i, "success": rng.random() < p}
                    fh.write(json.dumps(rec) + "\n")
        cmd = [
            sys.executable,
            "-P",
            "-m",
            "driftwatch._cli",
            "replay",
            str(path),
            "--alerts-out",
            str(alerts),
        ]
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        first: dict[str, float] = {}
        for line in alerts.read_text().splitlines():
            a = json.loads(line)
            if a["status"] == "suspected" and a["signal"] == "success":
                first.setdefault(a["stream"]["task"], a["detected_at"])
    delays = []
    early = 0
    from driftwatch._outcome import parse_time

    for t in first.values():
        i = int(parse_time(t) - 1_700_000_000)
        if i < TAU:
            early += 1
        else:
            delays.append(i - TAU + 1)
    return (float(statistics.median(delays)) if delays else math.nan), len(delays), early


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
        name = f"{r.method} ({r.note})" if r.note else r.method
        detected = fmt(r.rate * 100 if r.rate is not None else None)
        lines.append(
            f"| {name} | {fmt(r.fa_avg, 2)} | {fmt(r.fa_strict, 2)} | {fmt(r.median)} | {fmt(ratio, 2)} | "
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
* **Mixture Shiryaev–Roberts.** For each alternative — a shift of 0.3 or 0.45 standard deviations,
  up or down — a Shiryaev–Roberts statistic `R ← (1 + R) · LR` of the exact likelihood ratio
  (Bernoulli for pass/fail, Gaussian for standardised log values). The detector fires when the
  average of the four crosses the threshold. Taking the *largest* of separate CUSUMs instead
  (the "CUSUM bank" row, same alternatives, same baseline) makes each alternative pay for its own
  false alarms; the average lets neighbouring alternatives add up.
* **Calibrated per base rate.** `make calibrate` simulates the detector exactly (a vectorised
  mirror that a test checks fires at the same index as the scalar detector) on 2,000 no-change
  streams of 10,000 observations per base rate (0.02–0.98 in steps of 0.04, plus Gaussian) and
  keeps the smallest threshold within 0.9 of the budget; thresholds are interpolated between
  base rates, read once from `detectors/thresholds.json` (no simulation at start-up). River's
  thresholds do not carry over between base rates; ours are per base rate.
* **Change time.** Each alternative also keeps a CUSUM of the same likelihood ratios; the alert's
  change-time estimate is the last zero of the CUSUM of the alternative that dominates the
  mixture. The "change-time error" column is the median distance to the true change.

## Two stages, and the fleet rule

Stage one (`suspected`) is the detector at the per-stream budget *b* (default 1e-4 false alarms per
observation). Stage two tests the suspected change on *fresh* observations after the alarm — as
many as the detection took, between 30 and 400 — never on the ones that raised it, one-sided in the
alarm's direction, with Benjamini–Hochberg across the candidates open at the same time, at
`confirm_alpha` (default 0.01). Only `confirmed` pages. When nothing changed, the fresh-data
p-value is uniform (section below), so a false `suspected` becomes a false page with probability
at most `confirm_alpha`.

**Fleet rule.** Expected false pages per week ≈ streams × observations per stream per week × *b* ×
`confirm_alpha`. A service with 500 streams of 1,000 tasks a week each, at the defaults, expects
500 × 1,000 × 1e-4 × 0.01 = 0.5 false pages a week (and 50 `suspected` annotations). To stay under
*k* false pages a week, choose *b* × `confirm_alpha` ≤ *k* / (streams × weekly volume); each tenfold
stricter *b* costs the oracle only ~30–70 observations of delay (design.md). Per-signal streams
count separately: 500 task streams × 3 watched signals is 1,500 streams.

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
        "--river-streams", type=int, default=150, help="streams for River detectors (default 150)"
    )
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--out", default=str(ROOT / "docs" / "detection.md"))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="few streams, no River calibration: a smoke run")
    parser.add_argument("--no-real", action="store_true", help="skip the real-data and replay sections")
    args = parser.parse_args(argv)
    if args.quick:
        args.streams, args.river_streams = 150, 12
    started = time.monotonic()
    jobs = [
        Job(sc, args.streams, args.river_streams, args.seed + 101 * i, calibrate_river=not args.quick)
        for i, sc in enumerate(SCENARIOS)
    ]
    print(f"simulating {len(jobs)} scenarios on {args.jobs} processes ...", file=sys.stderr, flush=True)
    with multiprocessing.Pool(max(1, args.jobs)) as pool:
        all_results = pool.map(run_scenario, jobs, chunksize=1)

    lines = [
        "# Detection quality",
        "",
        "Generated by `python -P benchmarks/detection.py"
        + (" --quick" if args.quick else "")
        + f"` (seed {args.seed}, {args.streams} streams per scenario, {args.river_streams} for River "
        f"detectors; {time.strftime('%Y-%m-%d')}). Do not edit by hand.",
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
            goal_rows.append(
                f"| {job.sc.name} | {fmt(o.median)} | {fmt(d.median)} | {ratio:.2f} | "
                f"{'yes' if ratio <= 1.25 else 'no'} | {fmt(d.fa_avg, 2)} | {fmt(d.fa_strict, 2)} |"
            )
    lines += [
        "driftwatch's default must stay within 1.25× the oracle's median delay at ≤ 1 false alarm per "
        "10,000 observations.",
        "",
        "| shift | oracle median | driftwatch median | ratio | ≤ 1.25× | FA/10k average | FA/10k strict |",
        "|---|---:|---:|---:|---|---:|---:|",
        *goal_rows,
        "",
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
    # Write what the simulations found now: the sections below take minutes more.
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    if not args.no_real:
        print("p-values under no change ...", file=sys.stderr, flush=True)
        pv = null_p_values(8 if args.quick else 40, args.seed)
        lines += pvalue_section(pv)
        print("held-out streams through `driftwatch replay` ...", file=sys.stderr, flush=True)
        lines += replay_section(args)
        print("real data ...", file=sys.stderr, flush=True)
        lines += real_data_section()
    lines += [f"_Total run time {time.monotonic() - started:.0f} s._", ""]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def pvalue_section(pv: Sequence[float]) -> list[str]:
    from scipy import stats as sstats

    lines = [
        "## Stage-two p-values when nothing changed",
        "",
        "The Monitor's own alerts on no-change streams (pass rates 0.3/0.51/0.8, 10,000 observations "
        "each, stage one at budget 1e-3 so that false alarms are plentiful). Each suspected alert is "
        "tested on fresh observations only; those p-values should be uniform.",
        "",
    ]
    if not pv:
        return [*lines, "No alerts were raised.", ""]
    counts, _ = np.histogram(pv, bins=10, range=(0.0, 1.0))
    ks = sstats.kstest(pv, "uniform")
    arr = np.array(pv)
    lines += [
        f"{len(pv)} p-values; Kolmogorov–Smirnov against uniform: D = {ks.statistic:.3f}, "
        f"p = {ks.pvalue:.3f}; share below 0.01: {np.mean(arr < 0.01):.3f}, "
        f"below 0.05: {np.mean(arr < 0.05):.3f}.",
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


def replay_section(args: argparse.Namespace) -> list[str]:
    lines = [
        "## Held-out streams through `driftwatch replay`",
        "",
        "Fresh seeds, written as outcome JSONL and replayed by the real CLI (the production detection "
        "path: Monitor, config defaults, calibrated table). Delay of each stream's first `suspected` "
        "success alert after the change.",
        "",
        "| shift | streams | median delay | detected after change | alarmed before change |",
        "|---|---:|---:|---:|---:|",
    ]
    n = 20 if args.quick else 150
    for i, sc in enumerate(s for s in SCENARIOS if s.goal):
        med, hits, early = replay_delays(sc, n, args.seed + 7 + i)
        lines.append(f"| {sc.name} | {n} | {fmt(med)} | {hits} | {early} |")
    return [*lines, ""]


def real_data_section() -> list[str]:
    # Run as a script with -P, neither the repository root nor benchmarks/ is on sys.path.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _real_data import report

    return report()


if __name__ == "__main__":
    raise SystemExit(main())
