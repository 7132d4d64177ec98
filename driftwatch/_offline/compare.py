"""The pre-upgrade gate: a baseline set of outcomes against a candidate set, signal by signal.

Pass/fail is compared with the exact McNemar test when the same ``task_id`` appears on both sides
(each task once per side), otherwise with the two-proportion z-test; numeric signals with the
paired or Welch t-test for the p-value and a seeded, vectorised percentile bootstrap for the
interval (the t interval assumes a symmetric sampling distribution; token counts and latencies
are skewed even on the log scale). p-values are adjusted across signals (Benjamini–Hochberg).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftwatch._outcome import SIGNALS, Outcome, OutcomeError, format_time, parse_time
from driftwatch._stats import (
    Comparison,
    Moments,
    benjamini_hochberg,
    compare_means,
    compare_paired_binary,
    compare_paired_means,
    compare_proportions,
)

__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "CompareResult",
    "SelectorError",
    "SignalResult",
    "compare_outcomes",
    "parse_selector",
    "select",
    "to_markdown",
    "to_text",
]

#: Signals where a rise is a regression, and where a fall is. Token and tool-call counts have no
#: better direction (fewer tokens can be a truncated answer): they are reported as higher or
#: lower, and cannot gate.
LOWER_IS_BETTER = frozenset({"latency_s", "ttft_s", "cost_usd"})
HIGHER_IS_BETTER = frozenset({"success", "score"})
#: Signals that decide the exit code unless ``gate`` says otherwise.
DEFAULT_GATE = ("success", "score")
#: Below this many observations per side a signal is reported as too few to compare.
MIN_N = 2

_VERSION_LABELS = ("app.version", "version", "service.version", "harness.version")


class SelectorError(ValueError):
    """A --baseline or --candidate selector that cannot be read; the message shows the valid form."""


Selector = Callable[[Outcome], bool]


def parse_selector(text: str, where: str = "selector") -> Selector:
    """A predicate from ``key=value`` terms joined by commas; every term must hold.

    Keys: ``model``, ``version`` (label app.version, version, service.version or harness.version),
    ``task``, ``service``, ``kind`` (task or call), ``label.NAME``, ``since`` and ``until`` (RFC 3339
    or epoch seconds; ``since`` inclusive, ``until`` exclusive). An empty text selects everything.
    """
    tests: list[Selector] = []
    for raw in (t.strip() for t in text.split(",")):
        if not raw:
            continue
        key, sep, value = raw.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise SelectorError(
                f"{where}: {raw!r} is not key=value; use e.g. 'model=gpt-4-0314', 'version=1.2.0', "
                "'label.region=eu', 'since=2026-01-01T00:00:00Z,until=2026-02-01T00:00:00Z'"
            )
        tests.append(_term(key, value, where))
    return lambda o: all(t(o) for t in tests)


def _term(key: str, value: str, where: str) -> Selector:
    if key == "model":
        return lambda o: o.model == value or o.request_model == value
    if key == "task":
        return lambda o: o.task == value
    if key == "service":
        return lambda o: o.service == value
    if key == "kind":
        if value not in ("task", "call"):
            raise SelectorError(f"{where}: kind={value!r}; expected kind=task or kind=call")
        return lambda o: o.kind == value
    if key == "version":
        return lambda o: any(o.labels.get(k) == value for k in _VERSION_LABELS)
    if key.startswith("label.") and len(key) > 6:
        name = key[6:]
        return lambda o: o.labels.get(name) == value
    if key in ("since", "until"):
        try:
            t = parse_time(value, f"{where}: {key}")
        except OutcomeError as exc:
            raise SelectorError(str(exc)) from None
        return (lambda o: o.time >= t) if key == "since" else (lambda o: o.time < t)
    raise SelectorError(
        f"{where}: unknown key {key!r}; expected model, version, task, service, kind, label.NAME, "
        "since or until"
    )


def select(outcomes: Iterable[Outcome], selector: Selector) -> list[Outcome]:
    """The outcomes the selector keeps, in order."""
    return [o for o in outcomes if selector(o)]


@dataclass(slots=True, frozen=True)
class SignalResult:
    """One signal compared: the test, the comparison, its q-value, the MDE and the verdict."""

    signal: str
    test: str
    paired: bool
    comparison: Comparison
    q_value: float
    mde: float
    """Minimum detectable effect (80% power, two-sided at ``alpha``), in the effect's units."""
    verdict: str
    """``better``, ``worse``, ``inconclusive`` or ``same`` (no difference observed at all); ``higher``
    or ``lower`` for signals without a better direction (token and tool-call counts)."""
    gated: bool
    interval: str
    """How ``comparison.effect_ci`` was computed."""

    def to_dict(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "signal": self.signal,
            "test": self.test,
            "paired": self.paired,
            "baseline": c.baseline.to_dict(),
            "candidate": c.current.to_dict(),
            "effect": c.effect,
            "effect_kind": "ratio" if _ratio(self.signal) else "difference",
            "effect_ci": list(c.effect_ci),
            "interval": self.interval,
            "p_value": c.p_value,
            "q_value": self.q_value,
            "mde": self.mde,
            "verdict": self.verdict,
            "gated": self.gated,
        }


@dataclass(slots=True)
class CompareResult:
    """The whole comparison; ``worse`` decides the gate's exit code."""

    signals: list[SignalResult]
    baseline_n: int
    candidate_n: int
    pairs: int
    alpha: float
    tolerance: float
    seed: int
    resamples: int
    baseline_label: str = "baseline"
    candidate_label: str = "candidate"
    baseline_span: str = ""
    candidate_span: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def worse(self) -> bool:
        return any(s.gated and s.verdict == "worse" for s in self.signals)

    @property
    def verdict(self) -> str:
        gated = [s for s in self.signals if s.gated]
        if any(s.verdict == "worse" for s in gated):
            return "worse"
        if any(s.verdict == "better" for s in gated):
            return "better"
        return "inconclusive"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "exit_code": 1 if self.worse else 0,
            "baseline": {"selector": self.baseline_label, "n": self.baseline_n, "span": self.baseline_span},
            "candidate": {
                "selector": self.candidate_label,
                "n": self.candidate_n,
                "span": self.candidate_span,
            },
            "pairs": self.pairs,
            "alpha": self.alpha,
            "tolerance": self.tolerance,
            "bootstrap": {"seed": self.seed, "resamples": self.resamples},
            "signals": [s.to_dict() for s in self.signals],
            "notes": self.notes,
        }


def _ratio(signal: str) -> bool:
    return SIGNALS.get(signal, "linear") in ("log", "count")


def _working(signal: str, value: float) -> float | None:
    """The value on the scale comparisons work on (log for heavy tails), None when not usable."""
    kind = SIGNALS.get(signal, "linear")
    if kind == "log":
        return math.log(value) if value > 0 else None
    if kind == "count":
        return math.log1p(value) if value >= 0 else None
    return value


def _values(outcomes: Sequence[Outcome], signal: str) -> dict[str | None, list[float]]:
    """Working-scale values of ``signal`` by task_id (None collects outcomes without one)."""
    out: dict[str | None, list[float]] = {}
    for o in outcomes:
        v = o.signal(signal)
        if v is None:
            continue
        w = _working(signal, v)
        if w is not None and math.isfinite(w):
            out.setdefault(o.task_id, []).append(w)
    return out


def _z(p: float) -> float:
    return statistics.NormalDist().inv_cdf(p)


def _bootstrap(
    rng: np.random.Generator, samples: Sequence[np.ndarray[Any, Any]], resamples: int, stat: str
) -> np.ndarray[Any, Any]:
    """``resamples`` bootstrap replicates of the mean of one sample, or of the difference of two.

    Vectorised: one index matrix per sample, drawn in chunks so that memory stays under ~40 MB
    whatever the sample size.
    """
    out = np.empty(resamples)
    n_max = max(len(s) for s in samples)
    chunk = max(1, min(resamples, 2_000_000 // max(n_max, 1)))
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        means = [s[rng.integers(0, len(s), size=(k, len(s)))].mean(axis=1) for s in samples]
        out[start : start + k] = means[0] if stat == "mean" else means[1] - means[0]
    return out


def _mde(alpha: float, se: float) -> float:
    """Smallest true difference found with 80% power by a two-sided test at ``alpha``: (z + z) x SE."""
    return (_z(1 - alpha / 2) + _z(0.8)) * se


def _compare_signal(
    signal: str,
    base: Sequence[Outcome],
    cand: Sequence[Outcome],
    *,
    alpha: float,
    rng: np.random.Generator,
    resamples: int,
) -> tuple[str, bool, Comparison, float, str] | None:
    b, c = _values(base, signal), _values(cand, signal)
    binary = SIGNALS.get(signal) == "binary"
    scale = SIGNALS.get(signal, "linear")
    shared = sorted(k for k in b.keys() & c.keys() if k is not None)
    if shared and len(shared) >= MIN_N:
        pairs = [(sum(b[k]) / len(b[k]), sum(c[k]) / len(c[k])) for k in shared]
        single = all(len(b[k]) == 1 and len(c[k]) == 1 for k in shared)
        diffs = np.array([a - x for x, a in pairs])
        sd = float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0
        mde = _mde(alpha, sd / math.sqrt(len(diffs)))
        if binary and single:
            return "mcnemar-exact", True, compare_paired_binary(pairs), mde, "Newcombe paired score"
        cmp = compare_paired_means(pairs, scale="linear" if binary else scale)
        reps = _bootstrap(rng, [diffs], resamples, "mean")
        lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
        ci = (math.exp(lo), math.exp(hi)) if _ratio(signal) else (float(lo), float(hi))
        if _ratio(signal):
            mde = math.exp(mde)
        cmp = Comparison(cmp.baseline, cmp.current, cmp.effect, ci, cmp.p_value)
        return "paired-t", True, cmp, mde, "paired percentile bootstrap"
    xs = np.array([v for vs in b.values() for v in vs])
    ys = np.array([v for vs in c.values() for v in vs])
    if len(xs) < MIN_N or len(ys) < MIN_N:
        return None
    mb, mc = Moments(), Moments()
    for v in xs:
        mb.add(float(v))
    for v in ys:
        mc.add(float(v))
    if binary:
        pooled = (xs.sum() + ys.sum()) / (len(xs) + len(ys))
        se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / len(xs) + 1 / len(ys)))
        return (
            "two-proportion-z",
            False,
            compare_proportions(mb, mc, "two-sided"),
            _mde(alpha, se),
            "Newcombe",
        )
    cmp = compare_means(mb, mc, "two-sided", scale=scale)
    reps = _bootstrap(rng, [xs, ys], resamples, "diff")
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    ci = (math.exp(lo), math.exp(hi)) if _ratio(signal) else (float(lo), float(hi))
    mde = _mde(alpha, math.sqrt(mb.var / mb.n + mc.var / mc.n))
    if _ratio(signal):
        mde = math.exp(mde)
    cmp = Comparison(cmp.baseline, cmp.current, cmp.effect, ci, cmp.p_value)
    return "welch-t", False, cmp, mde, "percentile bootstrap"


def _verdict(signal: str, cmp: Comparison, q: float, alpha: float, tolerance: float) -> str:
    """Worse or better only when significant (q <= alpha) AND the whole interval is past the tolerance.

    The tolerance is absolute for differences (0.02: two points of pass rate) and relative for
    ratios (0.02: 2% slower). Between the two the comparison is inconclusive.
    """
    lo, hi = cmp.effect_ci
    if _ratio(signal):
        lo, hi, margin_down, margin_up = lo, hi, 1 / (1 + tolerance), 1 + tolerance
        if cmp.effect == 1.0 and lo == hi == 1.0:
            return "same"
    else:
        margin_down, margin_up = -tolerance, tolerance
        if cmp.effect == 0.0 and lo == hi == 0.0:
            return "same"
    if q > alpha:
        return "inconclusive"
    if hi < margin_down:
        down = True
    elif lo > margin_up:
        down = False
    else:
        return "inconclusive"
    if signal not in LOWER_IS_BETTER | HIGHER_IS_BETTER:
        return "lower" if down else "higher"
    worse = (not down) if signal in LOWER_IS_BETTER else down
    return "worse" if worse else "better"


def compare_outcomes(
    baseline: Sequence[Outcome],
    candidate: Sequence[Outcome],
    *,
    signals: Sequence[str] | None = None,
    gate: Sequence[str] = DEFAULT_GATE,
    alpha: float = 0.05,
    tolerance: float = 0.0,
    seed: int = 0,
    resamples: int = 2000,
) -> CompareResult:
    """Compare every signal present on both sides; ``gate`` names the signals that can fail it."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a number between 0 and 1, got {alpha!r}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance: expected a number >= 0, got {tolerance!r}")
    if resamples < 100:
        raise ValueError(f"resamples: expected at least 100, got {resamples!r}")
    unknown = [s for s in [*(signals or ()), *gate] if s not in SIGNALS]
    if unknown:
        raise ValueError(f"signal {unknown[0]!r} is not known; expected one of {', '.join(SIGNALS)}")
    neutral = [s for s in gate if s not in LOWER_IS_BETTER | HIGHER_IS_BETTER]
    if neutral:
        raise ValueError(
            f"gate: {neutral[0]!r} has no better direction and cannot gate; gate on "
            f"{', '.join(sorted(LOWER_IS_BETTER | HIGHER_IS_BETTER))}"
        )
    found = []
    order = list(SIGNALS)
    for signal in signals or order:
        # One generator per signal, keyed by its place in SIGNALS: a signal's interval does not
        # change when other signals are added to or left out of the comparison.
        rng = np.random.default_rng([seed, order.index(signal)])
        r = _compare_signal(signal, baseline, candidate, alpha=alpha, rng=rng, resamples=resamples)
        if r is not None:
            found.append((signal, *r))
    q = benjamini_hochberg([f[3].p_value for f in found])
    results = [
        SignalResult(
            signal,
            test,
            paired,
            cmp,
            q[i],
            mde,
            _verdict(signal, cmp, q[i], alpha, tolerance),
            signal in gate,
            interval,
        )
        for i, (signal, test, paired, cmp, mde, interval) in enumerate(found)
    ]
    ids_b = {o.task_id for o in baseline if o.task_id is not None}
    ids_c = {o.task_id for o in candidate if o.task_id is not None}
    result = CompareResult(
        results, len(baseline), len(candidate), len(ids_b & ids_c), alpha, tolerance, seed, resamples
    )
    result.baseline_span, result.candidate_span = _span(baseline), _span(candidate)
    shared = ids_b & ids_c
    left_b = sum(1 for o in baseline if o.task_id not in shared)
    left_c = sum(1 for o in candidate if o.task_id not in shared)
    if len(shared) >= MIN_N and (left_b or left_c):
        result.notes.append(
            f"paired on {len(shared)} task ids: {left_b} baseline and {left_c} candidate outcomes without "
            "a partner were left out of the paired comparisons"
        )
    if not any(s.gated for s in results):
        result.notes.append(
            f"none of the gated signals ({', '.join(gate)}) was observed on both sides: nothing to gate on"
        )
    return result


def _fmt_effect(s: SignalResult) -> str:
    c = s.comparison
    lo, hi = c.effect_ci
    if _ratio(s.signal):
        return f"×{c.effect:.3g} [{lo:.3g}, {hi:.3g}]"
    if SIGNALS.get(s.signal) == "binary":
        return f"{c.effect * 100:+.1f} pts [{lo * 100:+.1f}, {hi * 100:+.1f}]"
    return f"{c.effect:+.3g} [{lo:+.3g}, {hi:+.3g}]"


def _fmt_mean(s: SignalResult, which: str) -> str:
    e = s.comparison.baseline if which == "b" else s.comparison.current
    if SIGNALS.get(s.signal) == "binary":
        return f"{e.mean:.1%} (n={e.n})"
    return f"{e.mean:.4g} (n={e.n})"


def _fmt_mde(s: SignalResult) -> str:
    if _ratio(s.signal):
        return f"×{s.mde:.3g}"
    if SIGNALS.get(s.signal) == "binary":
        return f"{s.mde * 100:.1f} pts"
    return f"{s.mde:.3g}"


_MARK = {
    "worse": "🔴 worse",
    "better": "🟢 better",
    "inconclusive": "⚪ inconclusive",
    "same": "⚪ same",
    "higher": "↑ higher",
    "lower": "↓ lower",
}


def to_markdown(result: CompareResult) -> str:
    """A summary fit for a pull-request comment."""
    head = {"worse": "🔴 **Candidate is worse**", "better": "🟢 **Candidate is better**"}.get(
        result.verdict, "⚪ **No regression shown** (inconclusive)"
    )
    lines = [
        f"### driftwatch compare: {head}",
        "",
        f"Baseline `{result.baseline_label}` ({result.baseline_n} outcomes, {result.baseline_span}) against "
        f"candidate `{result.candidate_label}` ({result.candidate_n} outcomes, {result.candidate_span}); "
        f"{result.pairs} task ids on both sides. "
        f"Gate: worse beyond a tolerance of {result.tolerance:g} at α = {result.alpha:g} "
        "(Benjamini–Hochberg across signals).",
        "",
        "| signal | baseline | candidate | effect [CI] | test | q | MDE (80% power) | verdict |",
        "|---|---:|---:|---|---|---:|---:|---|",
    ]
    for s in result.signals:
        name = f"**{s.signal}**" if s.gated else s.signal
        lines.append(
            f"| {name} | {_fmt_mean(s, 'b')} | {_fmt_mean(s, 'c')} | {_fmt_effect(s)} | {s.test} | "
            f"{s.q_value:.3g} | {_fmt_mde(s)} | {_MARK[s.verdict]} |"
        )
    lines += [
        "",
        f"Gated signals in bold. Intervals at {1 - result.alpha:.0%} for bootstrapped signals "
        f"(seed {result.seed}, {result.resamples} resamples), 95% score intervals for pass rates. "
        "Ratios are candidate over baseline geometric means; an MDE is the smallest true effect this "
        "sample size finds 4 times in 5.",
    ]
    lines += [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def to_text(result: CompareResult) -> str:
    """The terminal table."""
    rows = [("signal", "baseline", "candidate", "effect [CI]", "test", "q", "MDE", "verdict")]
    for s in result.signals:
        rows.append(
            (
                s.signal + ("*" if s.gated else ""),
                _fmt_mean(s, "b"),
                _fmt_mean(s, "c"),
                _fmt_effect(s),
                s.test,
                f"{s.q_value:.3g}",
                _fmt_mde(s),
                s.verdict,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out.insert(0, f"baseline:  {result.baseline_label}: {result.baseline_n} outcomes, {result.baseline_span}")
    out.insert(
        1, f"candidate: {result.candidate_label}: {result.candidate_n} outcomes, {result.candidate_span}"
    )
    out.append(
        f"verdict: {result.verdict} (* gated; tolerance {result.tolerance:g}, alpha {result.alpha:g}, "
        f"bootstrap seed {result.seed}, {result.pairs} pairs)"
    )
    out += result.notes
    return "\n".join(out) + "\n"


def _span(outcomes: Sequence[Outcome]) -> str:
    """First and last event time of a set of outcomes, for the report."""
    if not outcomes:
        return "no outcomes"
    times = [o.time for o in outcomes]
    return f"{format_time(min(times))} .. {format_time(max(times))}"
