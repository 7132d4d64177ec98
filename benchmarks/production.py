"""Production-shaped streams through today's pipeline: short baselines, serial dependence, cycles,
heavy tails and slow declines, measured as on-call sees them (suspected alerts and confirmed pages).

Every stream goes through the public ``Monitor`` API with the default ``Config`` (budget 1e-4,
warm-up 500, lag 300, confirm_alpha 0.01), one Monitor per stream and only the signal the scenario
is about switched on (the other signals of a default Config are separate detectors on separate
streams, so this changes nothing but the run time). Null streams are counted **from their first
observation**. Change streams are scored against a one-sided CUSUM oracle told the true before and
after rates (on the log scale for numeric signals), its threshold calibrated here by simulation to
1 false alarm per 10,000 observations, started at zero at the change (Lorden's worst case).

Rates per 10,000 observations count every alert of that status (not only the first of a stream),
with exact Poisson (Garwood) 95% intervals. Delays are observations from the change to the first
alert in the true direction at or after it; medians with percentile-bootstrap 95% intervals over
streams, ratios to the oracle with a paired bootstrap. Streams with no such alert within the
horizon count as never detected (an infinite delay), so a median above the horizon reads "–".

Run: ``.venv/bin/python -P benchmarks/production.py`` (full, < 10 min on 2 cores) or ``--quick``
(< 1 min); writes its tables into ``docs/drafts/production.md`` (``--out``), between
markers, keeping the prose around them. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import stats  # type: ignore[import-untyped]

from driftwatch import Config, Monitor, Outcome

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261201
NULL_LEN = 10_000
BOOT = 1000

FloatArray = NDArray[np.float64]
Generator = Callable[[np.random.Generator, int, int], FloatArray]


# -- stream models (values on the model scale: 0/1 for success, log for numeric signals) ----------
def iid_pass(p: float) -> Generator:
    def draw(rng: np.random.Generator, rows: int, length: int) -> FloatArray:
        return (rng.random((rows, length)) < p).astype(np.float64)

    return draw


def markov_pass(p: float, rho: float) -> Generator:
    """Two-state Markov chain of pass/fail with pass rate ``p`` and lag-1 autocorrelation ``rho``:
    failures come in bursts (a broken repo, a flaky tool); mean burst length 1 / (p (1 - rho))."""
    f = 1 - p
    stay_fail = f + rho * (1 - f)  # P(fail | fail)
    fail_after_pass = f * (1 - rho)  # P(fail | pass)

    def draw(rng: np.random.Generator, rows: int, length: int) -> FloatArray:
        u = rng.random((rows, length))
        out = np.empty((rows, length))
        state = u[:, 0] < f  # failing
        out[:, 0] = ~state
        for t in range(1, length):
            state = np.where(state, u[:, t] < stay_fail, u[:, t] < fail_after_pass)
            out[:, t] = ~state
        return out

    return draw


def batches(
    rng: np.random.Generator, rows: int, length: int, lo: int = 10, hi: int = 50
) -> NDArray[np.bool_]:
    """Per observation, whether it belongs to a 'hard' batch: batches of lo..hi tasks, each hard
    with probability 1/2 (easy and hard task populations arriving in runs)."""
    hard = np.empty((rows, length), dtype=bool)
    for r in range(rows):
        t = 0
        while t < length:
            n = int(rng.integers(lo, hi + 1))
            hard[r, t : t + n] = rng.random() < 0.5
            t += n
    return hard


def regime_pass(easy: float, hard: float) -> Generator:
    def draw(rng: np.random.Generator, rows: int, length: int) -> FloatArray:
        h = batches(rng, rows, length)
        return (rng.random((rows, length)) < np.where(h, hard, easy)).astype(np.float64)

    return draw


def regime_log(step: float, sd: float) -> Generator:
    def draw(rng: np.random.Generator, rows: int, length: int) -> FloatArray:
        h = batches(rng, rows, length)
        return np.where(h, step, 0.0) + rng.normal(0.0, sd, (rows, length))

    return draw


def lognormal(sd: float) -> Generator:
    def draw(rng: np.random.Generator, rows: int, length: int) -> FloatArray:
        return rng.normal(0.0, sd, (rows, length))

    return draw


def ar1_log(phi: float, sd: float) -> Generator:
    """AR(1) on the log scale with marginal sd ``sd``."""

    def draw(rng: np.random.Generator, rows: int, length: int) -> FloatArray:
        e = rng.normal(0.0, sd * math.sqrt(1 - phi * phi), (rows, length))
        out = np.empty((rows, length))
        out[:, 0] = rng.normal(0.0, sd, rows)
        for t in range(1, length):
            out[:, t] = phi * out[:, t - 1] + e[:, t]
        return out

    return draw


def cycle_log(sd: float, amplitude: float, per_day: int, weekly: float = 0.0) -> Generator:
    """A daily (and optionally weekly) sinusoid on the log scale, random phase per stream."""

    def draw(rng: np.random.Generator, rows: int, length: int) -> FloatArray:
        t = np.arange(length)[None, :] + rng.integers(0, 7 * per_day, rows)[:, None]
        season = amplitude * np.sin(2 * np.pi * t / per_day)
        if weekly:
            season = season + weekly * np.sin(2 * np.pi * t / (7 * per_day))
        return season + rng.normal(0.0, sd, (rows, length))

    return draw


def timeouts(sd: float, share: float, factor: float) -> Generator:
    def draw(rng: np.random.Generator, rows: int, length: int) -> FloatArray:
        x = rng.normal(0.0, sd, (rows, length))
        return x + np.where(rng.random((rows, length)) < share, math.log(factor), 0.0)

    return draw


def log_t(df: float, scale: float) -> Generator:
    def draw(rng: np.random.Generator, rows: int, length: int) -> FloatArray:
        return scale * rng.standard_t(df, (rows, length))

    return draw


# -- scenarios ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """A change at ``at`` (0-based index of the first changed observation), by ``shift`` on the model
    scale (pass rate: the new rate is ``before + shift``; numeric: added to the log), reached
    linearly over ``ramp`` observations (0: a step)."""

    at: int
    before: float  # pass rate or log mean, for the oracle
    after: float
    sd: float = 1.0  # log sd, for the oracle on numeric signals
    ramp: int = 0
    horizon: int = 1500  # observations after the change that are scored


@dataclass(frozen=True)
class Scenario:
    family: str
    name: str
    signal: str  # "success", "output_tokens", "latency_s"
    model: Generator
    change: Change | None = None
    per_day: int = 1440  # observations per day: sets the event time of each observation
    length: int = NULL_LEN
    weight: float = 1.0  # share of the stream count (long change streams run fewer)

    @property
    def binary(self) -> bool:
        return self.signal == "success"

    def draw(self, rng: np.random.Generator, rows: int) -> FloatArray:
        ch = self.change
        length = self.length if ch is None else ch.at + max(ch.ramp, 0) + ch.horizon
        data = self.model(rng, rows, length)
        if ch is None:
            return data
        delta = ch.after - ch.before
        ramp = np.clip((np.arange(length) - ch.at + 1) / max(ch.ramp, 1), 0.0, 1.0)
        if self.binary:
            # Shift the pass rate: a pass at rate p stays a pass at rate p + d (d < 0) with
            # probability (p + d) / p, independently; a fail becomes a pass at rate d / (1 - p).
            u = rng.random(data.shape)
            d = delta * ramp[None, :]
            p = ch.before
            down = np.where(data > 0.5, u < (p + d) / p, 0.0)
            up = np.where(data > 0.5, 1.0, u < d / (1 - p))
            return np.where(d < 0, down, up).astype(np.float64)
        return data + delta * ramp[None, :]

    def outcome(self, i: int, value: float) -> Outcome:
        t = i * 86400.0 / self.per_day
        if self.signal == "success":
            return Outcome(task="t", time=t, success=value > 0.5)
        if self.signal == "output_tokens":
            return Outcome(task="t", time=t, output_tokens=max(1, round(800.0 * math.exp(value))))
        return Outcome(task="t", time=t, latency_s=4.0 * math.exp(value))


LOG25 = math.log(1.25)
SCENARIOS: list[Scenario] = [
    # Short baselines: a change at observation 20/40/100/200 of a fresh stream.
    *[
        Scenario(
            "short baseline",
            f"pass rate 0.85 → 0.45 at observation {k}",
            "success",
            iid_pass(0.85),
            Change(k, 0.85, 0.45, horizon=1000),
            weight=0.5,
        )
        for k in (20, 40, 100, 200)
    ],
    *[
        Scenario(
            "short baseline",
            f"output tokens ×2.5 (log-sd 0.5) at observation {k}",
            "output_tokens",
            lognormal(0.5),
            Change(k, 0.0, math.log(2.5), sd=0.5, horizon=1000),
            weight=0.5,
        )
        for k in (20, 40, 100, 200)
    ],
    # Gradual decline after 1,000 healthy observations.
    *[
        Scenario(
            "gradual decline",
            f"pass rate 0.85 → 0.65 linearly over {ramp} observations",
            "success",
            iid_pass(0.85),
            Change(1000, 0.85, 0.65, ramp=ramp, horizon=1000),
            weight=0.3,
        )
        for ramp in (500, 2000)
    ],
    Scenario(
        "gradual decline",
        "latency ×1.5 (log-sd 0.5) linearly over 1000 observations",
        "latency_s",
        lognormal(0.5),
        Change(1000, 0.0, math.log(1.5), sd=0.5, ramp=1000, horizon=1000),
        weight=0.3,
    ),
    # Real changes inside dependent or cyclic streams.
    Scenario(
        "change in a dependent stream",
        "Markov bursts ρ=0.5: pass rate 0.85 → 0.65 at 1000",
        "success",
        markov_pass(0.85, 0.5),
        Change(1000, 0.85, 0.65, horizon=1500),
        weight=0.3,
    ),
    Scenario(
        "change in a dependent stream",
        "daily cycle ±25%, 500/day: latency +30% at 1500",
        "latency_s",
        cycle_log(0.5, LOG25, 500),
        Change(1500, 0.0, math.log(1.3), sd=0.5, horizon=1500),
        per_day=500,
        weight=0.3,
    ),
    Scenario(
        "change in a dependent stream",
        "daily cycle ±25%, 2,000/day: latency +30% at 6000",
        "latency_s",
        cycle_log(0.5, LOG25, 2000),
        Change(6000, 0.0, math.log(1.3), sd=0.5, horizon=2000),
        per_day=2000,
        weight=0.3,
    ),
    # Nulls, counted from the first observation.
    Scenario("iid reference", "pass rate 0.85", "success", iid_pass(0.85)),
    Scenario("iid reference", "output tokens log-normal sd 0.5", "output_tokens", lognormal(0.5)),
    Scenario("Markov bursts", "pass rate 0.85, lag-1 autocorrelation 0.2", "success", markov_pass(0.85, 0.2)),
    Scenario(
        "Markov bursts", "pass rate 0.85, lag-1 autocorrelation 0.35", "success", markov_pass(0.85, 0.35)
    ),
    Scenario("Markov bursts", "pass rate 0.85, lag-1 autocorrelation 0.5", "success", markov_pass(0.85, 0.5)),
    Scenario(
        "regime batches",
        "easy 0.95 / hard 0.60 tasks in batches of 10–50",
        "success",
        regime_pass(0.95, 0.60),
    ),
    Scenario(
        "regime batches",
        "output tokens ×1.6 on hard batches of 10–50 (log-sd 0.5)",
        "output_tokens",
        regime_log(math.log(1.6), 0.5),
    ),
    Scenario("AR(1) on the log scale", "output tokens, φ = 0.3, sd 0.5", "output_tokens", ar1_log(0.3, 0.5)),
    Scenario("AR(1) on the log scale", "output tokens, φ = 0.5, sd 0.5", "output_tokens", ar1_log(0.5, 0.5)),
    Scenario(
        "daily cycle",
        "latency ±25%, 500 observations a day",
        "latency_s",
        cycle_log(0.5, LOG25, 500),
        per_day=500,
    ),
    Scenario(
        "daily cycle",
        "latency ±25%, 2,000 observations a day",
        "latency_s",
        cycle_log(0.5, LOG25, 2000),
        per_day=2000,
    ),
    Scenario(
        "daily cycle",
        "latency ±10%, 500 observations a day",
        "latency_s",
        cycle_log(0.5, math.log(1.1), 500),
        per_day=500,
    ),
    Scenario(
        "weekly cycle",
        "latency ±25% weekly and ±10% daily, 200 a day",
        "latency_s",
        cycle_log(0.5, math.log(1.1), 200, weekly=LOG25),
        per_day=200,
    ),
    Scenario(
        "heavy tails",
        "latency log-normal sd 0.5, 1% timeouts at 30×",
        "latency_s",
        timeouts(0.5, 0.01, 30.0),
    ),
    Scenario("heavy tails", "output tokens log-t, 3 df, scale 0.5", "output_tokens", log_t(3.0, 0.5)),
    # Appended, so the streams above keep their seeds (each scenario's draw is seeded by its index).
    Scenario(
        "change in a dependent stream",
        "regime batches 0.95/0.60: pass rate −0.2 at 1000",
        "success",
        regime_pass(0.95, 0.60),
        Change(1000, 0.775, 0.575, horizon=1500),
        weight=0.3,
    ),
]


# -- running the pipeline -----------------------------------------------------------------------
@dataclass
class StreamResult:
    suspected: list[tuple[int, str]] = field(default_factory=list)  # (index, direction)
    confirmed: list[tuple[int, str]] = field(default_factory=list)
    seasonal: int = 0  # pages whose alert says its baseline was seasonal (a profile in use)


def run_stream(sc: Scenario, values: FloatArray) -> StreamResult:
    monitor = Monitor(Config(signals=[sc.signal], console=False), threaded=False)
    out = StreamResult()
    for i, v in enumerate(values.tolist()):
        for alert in monitor.process(sc.outcome(i, v)):
            if alert.kind != "drift":
                continue
            if alert.status == "suspected":
                out.suspected.append((i, alert.direction))
            elif alert.status == "confirmed":
                out.confirmed.append((i, alert.direction))
                out.seasonal += bool(alert.detector.get("seasonal"))
    return out


def job(args: tuple[int, int, int, int]) -> tuple[int, list[StreamResult], FloatArray]:
    index, chunk, rows, seed = args
    sc = SCENARIOS[index]
    rng = np.random.default_rng([seed, index, chunk])
    data = sc.draw(rng, rows)
    results = [run_stream(sc, row) for row in data]
    return index, results, oracle_delays(sc, data) if sc.change else np.empty(0)


# -- the oracle ---------------------------------------------------------------------------------
def llr(ch: Change, binary: bool, x: FloatArray) -> FloatArray:
    if binary:
        p0, p1 = ch.before, ch.after
        return np.where(x > 0.5, math.log(p1 / p0), math.log((1 - p1) / (1 - p0)))
    d = (ch.after - ch.before) / ch.sd
    return d * ((x - ch.before) / ch.sd - d / 2)


_ORACLE_H: dict[tuple[float, float, float, bool], float] = {}


def oracle_threshold(ch: Change, binary: bool, streams: int = 500, length: int = 10_000) -> float:
    """The smallest CUSUM threshold (0.01 grid) with at most 1 first alarm per 10,000 observations on
    iid streams at the before rate (seeded; cached per process)."""
    key = (ch.before, ch.after, ch.sd, binary)
    if key in _ORACLE_H:
        return _ORACLE_H[key]
    rng = np.random.default_rng([SEED, 7])
    if binary:
        x = (rng.random((streams, length)) < ch.before).astype(np.float64)
    else:
        x = rng.normal(ch.before, ch.sd, (streams, length))
    inc = llr(ch, binary, x)
    stat = np.zeros(streams)
    top = np.zeros((streams, length))
    run = np.zeros(streams)
    for t in range(length):
        np.maximum(stat + inc[:, t], 0.0, out=stat)
        np.maximum(run, stat, out=run)
        top[:, t] = run

    def rate(h: float) -> float:
        hit = top[:, -1] > h
        exposure = np.where(hit, np.argmax(top > h, axis=1) + 1, length).sum()
        return float(hit.sum() / exposure)

    lo, hi = 1.0, 20.0  # the rate falls with the threshold: bisect to 0.01
    while hi - lo > 0.01:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if rate(mid) <= 1e-4 else (mid, hi)
    _ORACLE_H[key] = round(hi, 2)
    return _ORACLE_H[key]


def oracle_delays(sc: Scenario, data: FloatArray) -> FloatArray:
    ch = sc.change
    assert ch is not None
    h = oracle_threshold(ch, sc.binary)
    inc = llr(ch, sc.binary, data[:, ch.at :])
    stat = np.zeros(data.shape[0])
    delay = np.full(data.shape[0], np.inf)
    for t in range(inc.shape[1]):
        np.maximum(stat + inc[:, t], 0.0, out=stat)
        delay[np.isinf(delay) & (stat > h)] = t + 1
    return delay


# -- scoring ------------------------------------------------------------------------------------
def poisson_ci(k: int, exposure: float) -> tuple[float, float, float]:
    """Rate per 10,000 and its exact (Garwood) 95% interval."""
    lo = stats.chi2.ppf(0.025, 2 * k) / 2 if k > 0 else 0.0
    hi = stats.chi2.ppf(0.975, 2 * k + 2) / 2
    s = 1e4 / exposure
    return k * s, float(lo) * s, float(hi) * s


def first_delay(alerts: Sequence[tuple[int, str]], at: int, direction: str) -> float:
    for i, d in alerts:
        if i >= at and d == direction:
            return float(i - at + 1)
    return math.inf


def median_ci(x: FloatArray, rng: np.random.Generator) -> tuple[float, float, float]:
    med = float(np.median(x))
    boots = np.median(x[rng.integers(0, len(x), (BOOT, len(x)))], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.percentile(boots, [2.5, 97.5], method="nearest")
    return med, float(lo), float(hi)


def ratio_ci(a: FloatArray, b: FloatArray, rng: np.random.Generator) -> tuple[float, float, float]:
    """median(b) / median(a) with a paired bootstrap interval."""
    pick = rng.integers(0, len(a), (BOOT, len(a)))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = np.median(b[pick], axis=1) / np.median(a[pick], axis=1)
        lo, hi = np.percentile(r, [2.5, 97.5], method="nearest")
    return float(np.median(b) / np.median(a)), float(lo), float(hi)


def fmt(x: float, digits: int = 0) -> str:
    if math.isnan(x):
        return "–"
    return "∞" if math.isinf(x) else f"{x:.{digits}f}"


def fmt_ci(m: tuple[float, float, float], digits: int = 0) -> str:
    if math.isnan(m[1]) or math.isnan(m[2]):
        return fmt(m[0], digits)
    return f"{fmt(m[0], digits)} ({fmt(m[1], digits)}–{fmt(m[2], digits)})"


def null_row(sc: Scenario, res: list[StreamResult]) -> str:
    obs = len(res) * sc.length
    s = poisson_ci(sum(len(r.suspected) for r in res), obs)
    c = poisson_ci(sum(len(r.confirmed) for r in res), obs)
    before = poisson_ci(sum(1 for r in res for i, _ in r.suspected if i < 500), len(res) * 500)
    seasonal = poisson_ci(sum(r.seasonal for r in res), obs)
    return (
        f"| {sc.family} | {sc.name} | {len(res)} × {sc.length:,} | {fmt_ci(s, 2)} | {fmt_ci(c, 2)} | "
        f"{fmt(before[0], 2)} | {fmt(seasonal[0], 2)} |"
    )


def change_row(sc: Scenario, res: list[StreamResult], oracle: FloatArray, seed: int) -> str:
    ch = sc.change
    assert ch is not None
    rng = np.random.default_rng([seed, 99])
    direction = "down" if ch.after < ch.before else "up"
    sus = np.array([first_delay(r.suspected, ch.at, direction) for r in res])
    page = np.array([first_delay(r.confirmed, ch.at, direction) for r in res])
    horizon = ch.ramp + ch.horizon
    sus[sus > horizon] = math.inf
    page[page > horizon] = math.inf
    pre = poisson_ci(sum(1 for r in res for i, _ in r.suspected if i < ch.at), len(res) * ch.at)
    return (
        f"| {sc.name} | {len(res)} | {fmt_ci(median_ci(oracle, rng))} | {fmt_ci(median_ci(sus, rng))} | "
        f"{fmt_ci(ratio_ci(oracle, sus, rng), 1)} | {fmt_ci(median_ci(page, rng))} | "
        f"{fmt_ci(ratio_ci(oracle, page, rng), 1)} | {np.isfinite(sus).mean():.0%} / "
        f"{np.isfinite(page).mean():.0%} | {fmt(pre[0], 1)} |"
    )


def set_scale_upper(z: float | None) -> None:
    """Set the upper-bound z of stage two's variance-time reading in this process (None: leave it)."""
    if z is not None:
        from driftwatch.detectors import _dispersion

        _dispersion._SCALE_UPPER = z


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 1 min)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--null-streams", type=int, default=None, help="10,000-observation streams per null")
    parser.add_argument("--change-streams", type=int, default=None, help="streams per change scenario")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default=str(ROOT / "docs" / "drafts" / "production.md"))
    parser.add_argument(
        "--only", default=None, help="only the scenarios whose family or name contains this (writes no file)"
    )
    parser.add_argument(
        "--scale-upper",
        type=float,
        default=None,
        help="stage two's variance-time reading at this upper-bound z (0: its point estimate; "
        "default: the library's); for the frontier in docs/detection.md (writes no file)",
    )
    args = parser.parse_args(argv)
    nulls = args.null_streams or (6 if args.quick else 100)
    changes = args.change_streams or (24 if args.quick else 200)
    started = time.monotonic()
    work: list[tuple[int, int, int, int]] = []
    for i, sc in enumerate(SCENARIOS):
        if args.only and args.only not in f"{sc.family} {sc.name}":
            continue
        rows = nulls if sc.change is None else max(4, round(changes * sc.weight))
        chunk = 10 if sc.change is None else 25
        for c, lo in enumerate(range(0, rows, chunk)):
            work.append((i, c, min(chunk, rows - lo), args.seed))
    results: dict[int, list[StreamResult]] = {i: [] for i in range(len(SCENARIOS))}
    oracles: dict[int, list[FloatArray]] = {i: [] for i in range(len(SCENARIOS))}
    # Longest jobs first so the pool does not end on one straggler.
    work.sort(
        key=lambda w: -SCENARIOS[w[0]].length * w[2] if SCENARIOS[w[0]].change is None else -w[2] * 2500
    )
    with multiprocessing.Pool(max(1, args.jobs), set_scale_upper, (args.scale_upper,)) as pool:
        for done, (i, res, orc) in enumerate(pool.imap_unordered(job, work), 1):
            results[i].extend(res)
            oracles[i].append(orc)
            print(
                f"[{time.monotonic() - started:6.0f}s] {done}/{len(work)} {SCENARIOS[i].name}",
                file=sys.stderr,
                flush=True,
            )
    lines = report(args, results, oracles, time.monotonic() - started)
    if not args.only and args.scale_upper is None:
        write_section(Path(args.out), lines)
    print("\n".join(lines))
    return 0


BEGIN, END = "<!-- benchmarks/production.py: begin -->", "<!-- benchmarks/production.py: end -->"


def write_section(path: Path, lines: list[str]) -> None:
    """Replace the generated section of ``path`` (between BEGIN and END), keeping the prose around it."""
    block = "\n".join([BEGIN, *lines, END])
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in old and END in old:
        text = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END) :]
    else:
        text = old + ("\n" if old else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def report(
    args: argparse.Namespace,
    results: dict[int, list[StreamResult]],
    oracles: dict[int, list[FloatArray]],
    seconds: float,
) -> list[str]:
    cmd = "python -P benchmarks/production.py" + (" --quick" if args.quick else "")
    if args.scale_upper is not None:
        cmd += f" --scale-upper {args.scale_upper:g}"
    out = [
        "## Today's pipeline on production-shaped streams",
        "",
        f"Generated by `{cmd}` (seed {args.seed}; {seconds:.0f} s on 2 shared cores). Public `Monitor` API, "
        "default `Config` (budget 1e-4, warm-up 500, lag 300, confirm_alpha 0.01), one Monitor per "
        "stream, only the scenario's signal on. Oracle: a one-sided CUSUM told the true before and "
        "after rates (log scale for numeric signals), threshold calibrated to 1 false alarm per 10k, "
        "started at zero at the change. Intervals: 95%, exact Poisson for rates, bootstrap over "
        "streams for medians and (paired) for ratios. '∞': not detected within the horizon in at "
        "least half (or, for an interval's end, 2.5%) of the (resampled) streams.",
        "",
        "### Null streams (no change), counted from the first observation",
        "",
        "| family | stream | streams × length | suspected / 10k (95% CI) | confirmed pages / 10k (95% CI) "
        "| suspected / 10k in obs 1–500 | pages / 10k against a seasonal profile |",
        "|---|---|---:|---|---|---:|---:|",
    ]
    for i, sc in enumerate(SCENARIOS):
        if sc.change is None and results[i]:
            out.append(null_row(sc, results[i]))
    out += [
        "",
        "### Changes: delay to the first suspicion and to the first page",
        "",
        "Delay: observations from the first changed observation (for a slide, its start) to the first "
        "alert in the true direction; horizon = slide + 1,000 (1,500 for the dependent streams). "
        "For a slide the oracle is told the final rate.",
        "",
        "| scenario | streams | oracle median (CI) | first suspicion median (CI) | × oracle (CI) "
        "| first page median (CI) | × oracle (CI) | suspected / paged in horizon "
        "| false suspicions before the change / 10k |",
        "|---|---:|---|---|---|---|---|---:|---:|",
    ]
    for i, sc in enumerate(SCENARIOS):
        if sc.change is not None and results[i]:
            out.append(change_row(sc, results[i], np.concatenate(oracles[i]), args.seed))
    return [*out, ""]


if __name__ == "__main__":
    raise SystemExit(main())
