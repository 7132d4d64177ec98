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

from driftwatch._offline.plan import N_MAX, mde_mcnemar, mde_two_proportions, plan_cases
from driftwatch._outcome import SIGNALS, Outcome, OutcomeError, format_time, parse_time
from driftwatch._stats import (
    Comparison,
    Estimate,
    Moments,
    benjamini_hochberg,
    compare_means,
    compare_paired_binary,
    compare_paired_means,
    compare_proportions,
    compare_stratified_binary,
    student_t_quantile,
    student_t_sf,
)

__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "CompareResult",
    "RowResult",
    "SelectorError",
    "SignalResult",
    "compare_outcomes",
    "compare_stratified_binary",
    "dimension_key",
    "parse_by",
    "parse_selector",
    "plan_outcomes",
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
class RowResult:
    """One dimension's comparison (``--by``): its key values, sizes, signals and plain words."""

    key: dict[str, str]
    baseline_n: int
    candidate_n: int
    pairs: int
    signals: list[SignalResult]
    words: str = ""

    @property
    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.key.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "baseline_n": self.baseline_n,
            "candidate_n": self.candidate_n,
            "pairs": self.pairs,
            "verdict": _row_verdict(self.signals),
            "words": self.words,
            "signals": [s.to_dict() for s in self.signals],
        }


def _row_verdict(signals: Sequence[SignalResult]) -> str:
    gated = [s for s in signals if s.gated]
    if any(s.verdict == "worse" for s in gated):
        return "worse"
    if any(s.verdict == "better" for s in gated):
        return "better"
    return "inconclusive"


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
    by: list[str] = field(default_factory=list)
    """The ``--by`` keys; empty without a breakdown."""
    rows: list[RowResult] = field(default_factory=list)
    pooled_words: str = ""

    @property
    def worse(self) -> bool:
        """A gated signal is worse, pooled or in any row."""
        return any(s.gated and s.verdict == "worse" for s in self._all())

    def _all(self) -> list[SignalResult]:
        return [*self.signals, *(s for r in self.rows for s in r.signals)]

    @property
    def verdict(self) -> str:
        return _row_verdict(self._all())

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
            "words": self.pooled_words,
            "by": self.by,
            "rows": [r.to_dict() for r in self.rows],
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


#: Up to this many cases per side a pass rate's MDE is the exact one (driftwatch._offline.plan);
#: above it the normal formula, which then agrees to a fraction of a point.
EXACT_MDE_MAX = 500


def _cmh_se0(strata: Sequence[tuple[int, int, int, int]]) -> float:
    """Standard error of the Mantel–Haenszel difference under no change (for the MDE)."""
    var = weights = 0.0
    for n0, k0, n1, k1 in strata:
        n = n0 + n1
        if n0 == 0 or n1 == 0 or n < 2:
            continue
        m = k0 + k1
        var += n1 * n0 * m * (n - m) / (n * n * (n - 1))
        weights += n0 * n1 / n
    return math.sqrt(var) / weights if weights > 0 else math.inf


def _stratified_means(
    b: dict[str | None, list[float]],
    c: dict[str | None, list[float]],
    shared: Sequence[str | None],
    alpha: float,
) -> tuple[Comparison, float]:
    """Numeric signal, tasks recurring within a side: count-weighted per-task differences.

    Effect ``Σ w (mean_after - mean_before) / Σ w`` with ``w = n_before n_after / n`` per task, the
    within-task variance pooled over tasks; t-test on ``N - 2K`` degrees of freedom. Returns the
    comparison (on the working scale) and the standard error.
    """
    weights = diff = ss = 0.0
    cells = total = 0
    before, after = Moments(), Moments()
    for k in shared:
        xs, ys = b[k], c[k]
        n0, n1 = len(xs), len(ys)
        w = n0 * n1 / (n0 + n1)
        m0, m1 = sum(xs) / n0, sum(ys) / n1
        weights += w
        diff += w * (m1 - m0)
        ss += sum((x - m0) ** 2 for x in xs) + sum((y - m1) ** 2 for y in ys)
        cells += 2
        total += n0 + n1
        for x in xs:
            before.add(x)
        for y in ys:
            after.add(y)
    df = total - cells
    effect = diff / weights
    sigma2 = ss / df if df > 0 else 0.0
    se = math.sqrt(sigma2 / weights) if weights > 0 else math.inf
    if se > 0 and math.isfinite(se):
        p = min(1.0, 2.0 * student_t_sf(abs(effect / se), df))
        half = student_t_quantile(1 - alpha / 2, df) * se
    else:
        p, half = (1.0 if effect == 0 else 0.0), 0.0
    est = Comparison(
        Estimate(before.mean, before.n, math.nan, math.nan),
        Estimate(after.mean, after.n, math.nan, math.nan),
        effect,
        (effect - half, effect + half),
        p,
    )
    return est, se


def _binary_mde(rate: float, n0: int, n1: int, alpha: float, se: float, paired: bool, psi: float) -> float:
    """A pass rate's MDE: exact (driftwatch._offline.plan) up to EXACT_MDE_MAX cases, else the formula."""
    if max(n0, n1) <= EXACT_MDE_MAX:
        if paired:
            return mde_mcnemar(rate, n0, psi, alpha)
        return mde_two_proportions(rate, n0, n1, alpha)
    return _mde(alpha, se)


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
        single = all(len(b[k]) == 1 and len(c[k]) == 1 for k in shared)
        if binary and single:
            pairs = [(b[k][0], c[k][0]) for k in shared]
            diffs = np.array([a - x for x, a in pairs])
            sd = float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0
            cmp = compare_paired_binary(pairs)
            psi = float(np.mean(diffs != 0))
            mde = _binary_mde(
                cmp.baseline.mean, len(pairs), len(pairs), alpha, sd / math.sqrt(len(diffs)), True, psi
            )
            return "mcnemar-exact", True, cmp, mde, "Newcombe paired score"
        if binary:
            strata = [(len(b[k]), round(sum(b[k])), len(c[k]), round(sum(c[k]))) for k in shared]
            cmp = compare_stratified_binary(strata)
            return "cmh", True, cmp, _mde(alpha, _cmh_se0(strata)), "Mantel–Haenszel Wald"
        if single:
            pairs = [(b[k][0], c[k][0]) for k in shared]
            diffs = np.array([a - x for x, a in pairs])
            sd = float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0
            mde = _mde(alpha, sd / math.sqrt(len(diffs)))
            cmp = compare_paired_means(pairs, scale=scale)
            reps = _bootstrap(rng, [diffs], resamples, "mean")
            lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
            ci = (math.exp(lo), math.exp(hi)) if _ratio(signal) else (float(lo), float(hi))
            if _ratio(signal):
                mde = math.exp(mde)
            cmp = Comparison(cmp.baseline, cmp.current, cmp.effect, ci, cmp.p_value)
            return "paired-t", True, cmp, mde, "paired percentile bootstrap"
        raw, se = _stratified_means(b, c, shared, alpha)
        mde = _mde(alpha, se)
        mb = Moments(raw.baseline.n, raw.baseline.mean, 0.0)
        mc = Moments(raw.current.n, raw.current.mean, 0.0)
        effect, ci = raw.effect, raw.effect_ci
        if _ratio(signal):
            effect, ci, mde = math.exp(effect), (math.exp(ci[0]), math.exp(ci[1])), math.exp(mde)
        back = compare_means(mb, mc, "two-sided", scale=scale)
        cmp = Comparison(back.baseline, back.current, effect, ci, raw.p_value)
        return "stratified-t", True, cmp, mde, "stratified t"
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
        cmp = compare_proportions(mb, mc, "two-sided")
        mde = _binary_mde(mb.mean, len(xs), len(ys), alpha, se, False, 0.0)
        return ("two-proportion-z", False, cmp, mde, "Newcombe")
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


def dimension_key(key: str) -> Callable[[Outcome], str | None]:
    """The value an outcome has for a ``--by`` key: ``task``, ``model``, ``service``, ``kind``,
    ``version`` or ``label.NAME``; None when it has none."""
    if key == "task":
        return lambda o: o.task
    if key == "model":
        return lambda o: o.model or o.request_model
    if key == "service":
        return lambda o: o.service
    if key == "kind":
        return lambda o: o.kind
    if key == "version":
        return lambda o: next((o.labels[k] for k in _VERSION_LABELS if o.labels.get(k)), None)
    if key.startswith("label.") and len(key) > 6:
        name = key[6:]
        return lambda o: str(o.labels[name]) if o.labels.get(name) is not None else None
    raise SelectorError(
        f"--by: unknown key {key!r}; expected task, model, service, kind, version or label.NAME "
        "(comma-separated, e.g. --by task or --by task,label.region)"
    )


def parse_by(text: str) -> list[str]:
    """The ``--by`` keys, checked; raises SelectorError naming the valid keys."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise SelectorError("--by: expected one or more keys, e.g. --by task or --by task,label.region")
    for k in keys:
        dimension_key(k)
    return keys


def _group(outcomes: Sequence[Outcome], keys: Sequence[str]) -> dict[tuple[str, ...], list[Outcome]]:
    getters = [dimension_key(k) for k in keys]
    out: dict[tuple[str, ...], list[Outcome]] = {}
    for o in outcomes:
        value = tuple(v if (v := g(o)) is not None else "(none)" for g in getters)
        out.setdefault(value, []).append(o)
    return out


def _pairs(baseline: Sequence[Outcome], candidate: Sequence[Outcome]) -> set[str]:
    ids_b = {o.task_id for o in baseline if o.task_id is not None}
    return ids_b & {o.task_id for o in candidate if o.task_id is not None}


def _found(
    baseline: Sequence[Outcome],
    candidate: Sequence[Outcome],
    signals: Sequence[str],
    *,
    alpha: float,
    seed: int,
    resamples: int,
    row: int,
) -> list[tuple[str, str, bool, Comparison, float, str]]:
    found = []
    order = list(SIGNALS)
    for signal in signals:
        # One generator per signal (and row), keyed by its place in SIGNALS: a signal's interval does
        # not change when other signals or rows are added to or left out of the comparison.
        key = [seed, order.index(signal)] + ([row] if row else [])
        rng = np.random.default_rng(key)
        r = _compare_signal(signal, baseline, candidate, alpha=alpha, rng=rng, resamples=resamples)
        if r is not None:
            found.append((signal, *r))
    return found


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
    by: Sequence[str] | None = None,
) -> CompareResult:
    """Compare every signal present on both sides; ``gate`` names the signals that can fail it.

    With ``by`` (keys as in :func:`dimension_key`), also one row per value of the keys present on
    both sides, each compared on its own (paired within it where task ids match); q-values then
    come from Benjamini–Hochberg over every signal of every row and of the pooled comparison, and
    a gated signal worse in any row fails the gate.
    """
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
    wanted = list(signals or SIGNALS)
    common = {"alpha": alpha, "seed": seed, "resamples": resamples}
    families = [_found(baseline, candidate, wanted, row=0, **common)]  # type: ignore[arg-type]
    keys = list(by or ())
    cells: list[tuple[tuple[str, ...], list[Outcome], list[Outcome]]] = []
    one_sided: list[str] = []
    if keys:
        gb, gc = _group(baseline, keys), _group(candidate, keys)
        for value in sorted(gb.keys() | gc.keys()):
            if value in gb and value in gc:
                cells.append((value, gb[value], gc[value]))
            else:
                side, n = ("baseline", len(gb[value])) if value in gb else ("candidate", len(gc[value]))
                one_sided.append(f"{_label(keys, value)}: {n} outcomes on the {side} side only, not compared")
        for i, (_, b, c) in enumerate(cells, start=1):
            families.append(_found(b, c, wanted, row=i, **common))  # type: ignore[arg-type]
    q = benjamini_hochberg([f[3].p_value for fam in families for f in fam])
    built: list[list[SignalResult]] = []
    at = 0
    for fam in families:
        rows = []
        for signal, test, paired, cmp, mde, interval in fam:
            rows.append(
                SignalResult(
                    signal,
                    test,
                    paired,
                    cmp,
                    q[at],
                    mde,
                    _verdict(signal, cmp, q[at], alpha, tolerance),
                    signal in gate,
                    interval,
                )
            )
            at += 1
        built.append(rows)
    results = built[0]
    shared = _pairs(baseline, candidate)
    result = CompareResult(
        results, len(baseline), len(candidate), len(shared), alpha, tolerance, seed, resamples
    )
    result.baseline_span, result.candidate_span = _span(baseline), _span(candidate)
    result.by = keys
    for (value, b, c), sigs in zip(cells, built[1:], strict=True):
        row = RowResult(dict(zip(keys, value, strict=True)), len(b), len(c), len(_pairs(b, c)), sigs)
        row.words = _words(row.signals, row.baseline_n, row.candidate_n, row.pairs, alpha)
        result.rows.append(row)
    result.pooled_words = _words(results, len(baseline), len(candidate), len(shared), alpha)
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
    result.notes += one_sided
    if keys:
        m = sum(len(f) for f in families)
        result.notes.append(
            f"q-values: Benjamini–Hochberg over {m} tests ({len(cells)} rows and the pooled one, "
            "every signal)"
        )
    return result


def _label(keys: Sequence[str], value: Sequence[str]) -> str:
    return ",".join(f"{k}={v}" for k, v in zip(keys, value, strict=True))


def _words(signals: Sequence[SignalResult], n_b: int, n_c: int, pairs: int, alpha: float) -> str:
    """A row in plain words, on its first gated signal (else its first signal)."""
    if not signals:
        return "nothing observed on both sides"
    s = next((x for x in signals if x.gated), signals[0])
    binary = SIGNALS.get(s.signal) == "binary"
    if s.paired and s.test in ("mcnemar-exact", "paired-t"):
        cases = f"{s.comparison.baseline.n} pairs"
    elif s.comparison.baseline.n == s.comparison.current.n:
        cases = f"{s.comparison.baseline.n} cases a side"
    else:
        cases = f"{s.comparison.baseline.n} and {s.comparison.current.n} cases"
    what = "" if s.signal == "success" else f"{s.signal}: "
    if s.verdict in ("worse", "better", "higher", "lower"):
        return f"{what}{s.verdict}: {_fmt_effect(s)}"
    if not math.isfinite(s.mde):
        return (
            f"{what}{cases}: too few to see any change (none is found 4 times in 5 at α = {alpha:g}); "
            "see compare --plan"
        )
    if binary:
        size = f"{round(s.mde * 100, 1):g} points"
    elif _ratio(s.signal):
        size = f"×{s.mde:.3g}"
    else:
        size = f"{s.mde:.3g}"
    lead = "no difference at all; " if s.verdict == "same" else ""
    return f"{what}{lead}{cases}: a change under {size} cannot be seen"


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
    if not math.isfinite(s.mde):
        return "none"
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
        f"(Benjamini–Hochberg across {'rows and ' if result.rows else ''}signals).",
        "",
    ]
    if not result.rows:
        lines += [
            "| signal | baseline | candidate | effect [CI] | test | q | MDE (80% power) | verdict |",
            "|---|---:|---:|---|---|---:|---:|---|",
        ]
    for s in [] if result.rows else result.signals:
        name = f"**{s.signal}**" if s.gated else s.signal
        lines.append(
            f"| {name} | {_fmt_mean(s, 'b')} | {_fmt_mean(s, 'c')} | {_fmt_effect(s)} | {s.test} | "
            f"{s.q_value:.3g} | {_fmt_mde(s)} | {_MARK[s.verdict]} |"
        )
    if result.rows:
        lines += [
            f"By {', '.join(result.by)} (`all`: every outcome pooled):",
            "",
            "| row | signal | baseline | candidate | effect [CI] | test | q | MDE | verdict | in words |",
            "|---|---|---:|---:|---|---|---:|---:|---|---|",
        ]
        for label, words, sigs in [("all", result.pooled_words, result.signals)] + [
            (r.label, r.words, r.signals) for r in result.rows
        ]:
            for i, s in enumerate(sigs):
                name = f"**{s.signal}**" if s.gated else s.signal
                first = f"`{label}`" if i == 0 else ""
                lines.append(
                    f"| {first} | {name} | {_fmt_mean(s, 'b')} | {_fmt_mean(s, 'c')} | "
                    f"{_fmt_effect(s)} | {s.test} | {s.q_value:.3g} | {_fmt_mde(s)} | {_MARK[s.verdict]} | "
                    f"{words if i == 0 else ''} |"
                )
    lines += [
        "",
        f"Gated signals in bold. Intervals at {1 - result.alpha:.0%} for bootstrapped signals "
        f"(seed {result.seed}, {result.resamples} resamples), 95% score intervals for pass rates. "
        "Ratios are candidate over baseline geometric means; an MDE is the smallest true effect this "
        "sample size finds 4 times in 5 (none: no change can be found that often); pass-rate MDEs "
        f"up to {EXACT_MDE_MAX} cases a side are exact.",
    ]
    lines += [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def to_text(result: CompareResult) -> str:
    """The terminal table (a row per dimension and signal with ``by``, then the rows in words)."""
    head = ("signal", "baseline", "candidate", "effect [CI]", "test", "q", "MDE", "verdict")
    groups = [("all", result.signals)] + [(r.label, r.signals) for r in result.rows]
    rows: list[tuple[str, ...]] = [(("row",) if result.rows else ()) + head]
    for label, sigs in groups:
        for i, s in enumerate(sigs):
            cells = (
                s.signal + ("*" if s.gated else ""),
                _fmt_mean(s, "b"),
                _fmt_mean(s, "c"),
                _fmt_effect(s),
                s.test,
                f"{s.q_value:.3g}",
                _fmt_mde(s),
                s.verdict,
            )
            rows.append(((label if i == 0 else "",) if result.rows else ()) + cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out.insert(0, f"baseline:  {result.baseline_label}: {result.baseline_n} outcomes, {result.baseline_span}")
    out.insert(
        1, f"candidate: {result.candidate_label}: {result.candidate_n} outcomes, {result.candidate_span}"
    )
    if result.rows:
        out.append("in words:")
        width = max(len(label) for label, _ in groups)
        out += [f"  {'all'.ljust(width)}  {result.pooled_words}"]
        out += [f"  {r.label.ljust(width)}  {r.words}" for r in result.rows]
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


def plan_outcomes(
    baseline: Sequence[Outcome],
    candidate: Sequence[Outcome],
    *,
    by: Sequence[str],
    effect: float,
    alpha: float = 0.05,
    power: float = 0.8,
    discordance: float | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """How many more cases the pooled comparison and each ``by`` row need to see ``effect`` on success.

    Each row is planned at its baseline pass rate, paired (exact McNemar) when its task ids pair
    once each, with the observed share of discordant pairs smoothed as (d + 1) / (pairs + 2) unless
    ``discordance`` is given; otherwise unpaired. Tasks recurring within a side are planned as
    unpaired, which errs on the side of more cases.
    """
    cells: list[tuple[str, Sequence[Outcome], Sequence[Outcome]]] = [("all", baseline, candidate)]
    if by:
        gb, gc = _group(baseline, by), _group(candidate, by)
        for value in sorted(gb.keys() & gc.keys()):
            label = ",".join(f"{k}={v}" for k, v in zip(by, value, strict=True))
            cells.append((label, gb[value], gc[value]))
    rows: list[dict[str, Any]] = []
    for label, b_out, c_out in cells:
        b, c = _values(b_out, "success"), _values(c_out, "success")
        xs = [v for vs in b.values() for v in vs]
        ys = [v for vs in c.values() for v in vs]
        if not xs or not ys:
            continue
        shared = sorted(k for k in b.keys() & c.keys() if k is not None)
        single = len(shared) >= 2 and all(len(b[k]) == 1 and len(c[k]) == 1 for k in shared)
        if single:
            pairs = [(b[k][0], c[k][0]) for k in shared]
            rate = sum(x for x, _ in pairs) / len(pairs)
            differ = sum(1 for x, y in pairs if x != y)
            psi = (differ + 1) / (len(pairs) + 2) if discordance is None else discordance
            have = len(pairs)
        else:
            rate = sum(xs) / len(xs)
            psi = None
            have = min(len(xs), len(ys))
        signed = -effect if rate - effect >= 0 else effect
        if not 0 <= rate + signed <= 1:
            continue
        plan = plan_cases(rate, signed, alpha=alpha, power=power, paired=single, discordance=psi)
        more = None if plan.cases is None else max(0, plan.cases - have)
        rows.append({"row": label, "have": have, "more": more, **plan.to_dict()})
    head = (
        f"plan: cases to see a change of {effect * 100:.1f} points in success "
        f"(two-sided α = {alpha:g}, power {power:.0%}, exact tests)"
    )
    table: list[tuple[str, ...]] = [("row", "rate", "now", "test", "needs", "more")]
    for r in rows:
        unit = "pairs" if r["paired"] else "a side"
        test = f"McNemar, {r['discordance']:.0%} differ" if r["paired"] else "two-proportion"
        needs = f"more than {N_MAX:,}" if r["cases_per_side"] is None else f"{r['cases_per_side']:,} {unit}"
        more_n = r["more"]
        extra = "?" if more_n is None else ("enough" if more_n == 0 else f"{more_n:,} more {unit}")
        table.append((r["row"], f"{r['rate']:.1%}", f"{r['have']} {unit}", test, needs, extra))
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
    lines = [head] + [
        "  " + "  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)).rstrip() for t in table
    ]
    return rows, "\n".join(lines) + "\n"
