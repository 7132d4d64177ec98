"""Stage two: a sequential confirmation of a suspected change on fresh observations, in River's form."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any, Literal

from driftwatch._stats import Moments

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_BETA",
    "DEFAULT_CONFIRM_SHIFTS",
    "DEFAULT_MIN_SHIFT",
    "Decision",
    "DecisionResults",
    "SequentialConfirm",
]

Kind = Literal["binary", "numeric"]
Direction = Literal["up", "down"]
Decision = Literal["undecided", "confirm", "withdraw"]
Design = Literal["mixture", "sprt"]

#: Probability that stage two confirms a stage-one false alarm. Stage one raises at most one false
#: alarm per 10,000 observations, so 0.1 would make one false page per 100,000 (1e-4 × 0.1) if the
#: test held its level exactly; on real false alarms it confirms 12 % at a nominal 0.1 (the alarm
#: selects a baseline that lies away from its direction), so the default is 0.05.
DEFAULT_ALPHA = 0.05
#: Probability that stage two withdraws a real change of at least ``DEFAULT_MIN_SHIFT``.
DEFAULT_BETA = 0.01
#: Shifts (standard deviations, in the alarm's direction) the confirming mixture averages over.
DEFAULT_CONFIRM_SHIFTS: tuple[float, ...] = (0.2, 0.3, 0.45, 0.7)
#: The smallest change worth a page: withdrawal needs evidence against a shift this large.
DEFAULT_MIN_SHIFT = 0.2
#: Quadrature nodes over the baseline's pass rate (binary): enough that the integral is smooth.
_NODES = 16
#: A window length whose κ reading is this many times the long-run κ shows slow structure (``span``).
SPAN_FACTOR = 2.0
#: A page on a stream with slow structure needs this many of its windows of fresh values.
SPAN_WINDOWS = 2
_P_FLOOR = 0.02  # as LaggedSR: a base rate of 0 or 1 has no spread
_Q_CLIP = 1e-4


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(math.fsum(math.exp(v - top) for v in values))


class DecisionResults:
    """What a stage-two test reports, shared by ``SequentialConfirm`` and ``AbilityConfirm``.

    Subclasses keep ``_decision`` and the two log ratios ``_log_confirm`` / ``_log_withdraw``.
    """

    _decision: Decision
    _log_confirm: float
    _log_withdraw: float

    @property
    def decision(self) -> Decision:
        """``"undecided"``, ``"confirm"`` (page) or ``"withdraw"`` (no change, on evidence)."""
        return self._decision

    @property
    def confirmed(self) -> bool:
        return self._decision == "confirm"

    @property
    def withdrawn(self) -> bool:
        return self._decision == "withdraw"

    @property
    def log_evidence(self) -> float:
        """Log of the confirming ratio (confirms at ``log(1 / alpha)``; Wald's bound for ``sprt``)."""
        return self._log_confirm

    @property
    def log_no_change(self) -> float:
        """Log of "at the baseline" over "shifted by ``min_shift``" (withdraws at ``log(1 / beta)``)."""
        return -self._log_withdraw


class SequentialConfirm(DecisionResults):
    """Confirms or withdraws one suspected change, observing fresh values until the evidence decides.

    Stage one (``LaggedSR``) raises a *suspected* change at about one false alarm per 10,000
    observations. This object is stage two: it is fed the observations that arrive *after* the
    alarm (never the ones that raised it, which are selected and biased away from the baseline) and
    keeps observing until one of two likelihood ratios decides:

    * **confirm** (page) when the mixture likelihood ratio of "shifted by δ in the alarm's
      direction" against "at the baseline", averaged over ``shifts`` (δ in standard deviations),
      reaches ``1 / alpha``;
    * **withdraw** when the likelihood ratio of "at the baseline" against "shifted by
      ``min_shift``" reaches ``1 / beta``: evidence that the stream is at its baseline, not the mere
      absence of significance.

    Until then it is ``"undecided"`` (the alert stays *suspected*). Once decided the decision
    stays; further updates are ignored.

    **Error rates.** Both statistics are likelihood ratios of the fresh data, so each is a
    nonnegative martingale under its null and Ville's inequality bounds the chance that it *ever*
    crosses, however long the test runs: P(confirm | no change) ≤ ``alpha`` and P(withdraw | a
    change of at least ``min_shift``) ≤ ``beta`` (a larger change makes the withdrawing ratio a
    supermartingale). A change smaller than ``min_shift`` may go either way or stay undecided.

    **The baseline is an estimate.** Its mean comes from ``n0`` observations; treating it as known
    would inflate ``alpha`` (by ~1.3× at n0 = 500 and a 0.3 sd alternative). Instead the ratios are
    those of the *predictive* law of the fresh values given the baseline's estimate. For numeric
    values, ``d_i = (x_i - mean0) / sd0`` are jointly normal with covariance ``I + J / n0`` under
    either hypothesis, so the exact log ratio is ``n0 / (n0 + n) · (δ S_n - δ² n / 2)`` with
    ``S_n = Σ d_i``: the Gaussian SPRT with the two-sample effective size ``n n0 / (n0 + n)``. For
    pass/fail the Bernoulli likelihoods are integrated over the baseline rate's posterior
    (logit-normal, ``_NODES`` equal-weight nodes), each alternative being that rate moved by δ of
    its own standard deviation (as ``LaggedSR`` moves it). The standard deviation of numeric values
    is taken from the baseline as known (its relative error, ``1 / sqrt(2 n0)``, moves ``alpha``
    by a few percent at n0 ≥ 500; measured in tests). What the predictive ratio cannot undo is
    *selection*: a false alarm is likelier when the baseline's estimate happens to lie away from
    the alarm's direction, and on false alarms of the real detector a nominal 0.1 confirmed 12 %
    (0.117–0.120 over 1,200 alarms, ``benchmarks/confirmation_designs.py``); 0.05 keeps the
    realised rate near 0.06 for ~log(2) nats more evidence.

    **Arithmetic.** A page at false-page rate *f* per observation needs about ``log(1 / f)``
    nats of evidence in all. Stage one spends ``log(1 / b)`` (b = 1e-4); to page at ≤ 1 false page
    per 100,000 observations stage two needs only ``log(1 / alpha)`` with alpha = 0.1 (1e-4 × 0.1
    = 1e-5), on fresh data: about ``log(10) / KL`` observations, where KL is the Kullback–Leibler
    divergence per observation of the true change (0.034 nats for 0.51 → 0.38: ~68
    observations; 0.10 for 0.90 → 0.765: ~23). A fixed test at 0.01, as before, needed
    ``log(100) / KL`` and then a fixed sample size on top.

    **Why a mixture, not the alarm's estimate.** The effect estimated from the detection window is
    inflated (winner's curse: the window is where the statistic happened to cross). A Wald SPRT
    tuned to that estimate confirms slowly or withdraws real, smaller changes; the mixture over
    fixed shifts pays at most ``log(len(shifts))`` for not knowing the size, and neighbouring
    shifts add up. ``design="sprt"`` keeps Wald's SPRT at the single shift ``shifts[0]``
    (thresholds ``log((1 - beta) / alpha)`` and ``log(beta / (1 - alpha))``) for comparison.
    ``benchmarks/confirmation_designs.py`` compares the designs (docs/drafts/confirmation.md).

    Parameters
    ----------
    kind
        ``"binary"`` (pass/fail 0/1) or ``"numeric"`` (on the detector's scale: log latency, …).
    baseline
        Moments (n, mean, m2) of the baseline before the suspected change.
    direction
        ``"up"`` or ``"down"``: the alarm's direction; the test is one-sided.
    alpha, beta
        Error rates of confirming no change and of withdrawing a change of ``min_shift``.
    shifts
        Shift sizes (standard deviations) the confirming mixture averages over, equal weights.
    min_shift
        The smallest change that must be paged; withdrawal tests against it.
    design
        ``"mixture"`` (default) or ``"sprt"``.
    baseline_weight
        Treat the baseline as this fraction of its size (selection by the alarm; see above).
    dispersion
        Long-run variance inflation of the values (1: independent): both log ratios are divided by
        it. ``LaggedSR.confirm_kwargs()`` gives the stream's estimate and the baseline weight its
        alarm calls for.

    Examples
    --------
    >>> import random
    >>> from driftwatch._stats import Moments
    >>> rng = random.Random(3)
    >>> baseline = Moments()
    >>> for _ in range(1000):
    ...     baseline.add(float(rng.random() < 0.51))
    >>> def run(rate):
    ...     test = SequentialConfirm("binary", baseline, "down")
    ...     while test.decision == "undecided":
    ...         test.update(rng.random() < rate)
    ...     return test.decision, test.n
    >>> run(0.38)  # a real change: paged after this many fresh observations
    ('confirm', 50)
    >>> run(0.51)  # a false alarm: withdrawn on evidence that the stream is at its baseline
    ('withdraw', 131)

    References
    ----------
    Wald, A. (1945). Sequential tests of statistical hypotheses. Ann. Math. Statist. 16(2).
    Robbins, H. (1970). Statistical methods related to the law of the iterated logarithm.
    Ann. Math. Statist. 41(5) (mixture likelihood ratios; Ville's inequality).
    Johari, R., Koomen, P., Pekelis, L., Walsh, D. (2022). Always valid inference: continuous
    monitoring of A/B tests. Operations Research 70(3) (the mixture SPRT).
    Lai, T. L. (2001). Sequential analysis: some classical problems and new challenges.
    Statistica Sinica 11 (sequential tests with estimated nuisance parameters).
    """

    #: Class default for objects pickled before ``dispersion`` existed (snapshot format 5).
    dispersion: float = 1.0
    #: Class default for objects pickled before ``dispersion_scales`` existed.
    dispersion_scales: tuple[tuple[int, float], ...] = ()
    span = 0
    #: Class default for objects pickled before the impossible-direction check.
    _impossible: bool = False

    def __init__(
        self,
        kind: Kind,
        baseline: Moments,
        direction: Direction,
        *,
        alpha: float = DEFAULT_ALPHA,
        beta: float = DEFAULT_BETA,
        shifts: Sequence[float] = DEFAULT_CONFIRM_SHIFTS,
        min_shift: float = DEFAULT_MIN_SHIFT,
        design: Design = "mixture",
        baseline_weight: float = 1.0,
        dispersion: float = 1.0,
        dispersion_scales: Sequence[tuple[int, float]] = (),
    ) -> None:
        if kind not in ("binary", "numeric"):
            raise ValueError(f"kind must be 'binary' or 'numeric', got {kind!r}")
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
        if not (0 < alpha < 1 and 0 < beta < 1):
            raise ValueError(f"alpha and beta are probabilities in (0, 1); got {alpha}, {beta}")
        if not shifts or any(s <= 0 for s in shifts) or min_shift <= 0:
            raise ValueError(f"shifts and min_shift must be positive; got {list(shifts)!r}, {min_shift}")
        if design not in ("mixture", "sprt"):
            raise ValueError(f"design must be 'mixture' or 'sprt', got {design!r}")
        if not 0 < baseline_weight <= 1:
            raise ValueError(f"baseline_weight must be in (0, 1], got {baseline_weight}")
        if baseline.n < 2:
            raise ValueError(f"the baseline needs at least 2 observations, got {baseline.n}")
        if not (dispersion >= 1 and math.isfinite(dispersion)):
            raise ValueError(f"dispersion is a variance inflation, at least 1; got {dispersion}")
        self.dispersion = dispersion
        self.dispersion_scales = tuple((int(b), float(k)) for b, k in dispersion_scales)
        # Slow structure: the window length from which κ has at least doubled over the long-run
        # reading. A window shorter than it can sit in one phase of the structure (a run of hard
        # tasks, a cycle's peak), so a page needs at least that many fresh values.
        self.span = SPAN_WINDOWS * max(
            (b for b, k in self.dispersion_scales if k >= SPAN_FACTOR * dispersion), default=0
        )
        self.kind = kind
        self.direction = direction
        self.alpha = alpha
        self.beta = beta
        self.shifts = tuple(shifts)
        self.min_shift = min_shift
        self.design = design
        self.baseline = Moments(baseline.n, baseline.mean, baseline.m2)
        self.baseline_weight = baseline_weight
        # The baseline's precision as the test counts it: a weight below 1 treats it as that much
        # smaller, for the alarm's selection of a baseline that happens to lie away from the change.
        self._n0 = max(2.0, baseline.n * baseline_weight)
        if design == "sprt":
            self._upper = math.log((1 - beta) / alpha)
            self._lower = math.log(beta / (1 - alpha))
        else:
            self._upper = math.log(1 / alpha)
            self._lower = math.log(beta)
        sign = 1.0 if direction == "up" else -1.0
        self._sign = sign
        self.n = 0
        self.total = 0.0  # sum of fresh values (binary: passes)
        self._decision = "undecided"
        self._log_confirm = 0.0
        self._log_withdraw = 0.0
        confirm_shifts = self.shifts[:1] if design == "sprt" else self.shifts
        self._impossible = False
        if kind == "numeric":
            self._sd = math.sqrt(baseline.var) or 1.0
            self._deltas = list(confirm_shifts)
            return
        # Binary: nodes over the baseline's rate (logit-normal posterior with a Jeffreys half count).
        n0 = self._n0
        p_hat = min(max((baseline.mean * n0 + 0.5) / (n0 + 1), _P_FLOOR), 1 - _P_FLOOR)
        centre = math.log(p_hat / (1 - p_hat))
        spread = 1 / math.sqrt(n0 * p_hat * (1 - p_hat))
        normal = NormalDist()
        nodes = [
            1 / (1 + math.exp(-(centre + spread * normal.inv_cdf((i + 0.5) / _NODES)))) for i in range(_NODES)
        ]
        nodes = [min(max(p, _P_FLOOR), 1 - _P_FLOOR) for p in nodes]
        # An alternative that leaves (0, 1) at the estimated rate is not possible: drop it, but
        # keep the smallest shift so the direction is always watched (as LaggedSR does).
        smallest = min(confirm_shifts)
        sd_hat = math.sqrt(p_hat * (1 - p_hat))
        kept = [d for d in confirm_shifts if d == smallest or 0 < p_hat + sign * d * sd_hat < 1]
        self._deltas = kept
        # Log likelihood of one pass / one failure at each node, under no change and each alternative.
        self._h0 = [(math.log(p), math.log1p(-p)) for p in nodes]
        self._alts = [[self._pass_fail(p, d) for p in nodes] for d in kept]
        self._alt_min = [self._pass_fail(p, min_shift) for p in nodes]
        self._log_w = -math.log(_NODES)
        # A fall from a baseline with no passes (a rise from one with no failures) cannot happen: the
        # floor on the rate would otherwise let a run of failures confirm "0.0% -> 0.0%".
        self._impossible = baseline.mean <= 0.0 if sign < 0 else baseline.mean >= 1.0

    def _pass_fail(self, p: float, delta: float) -> tuple[float, float]:
        q = p + self._sign * delta * math.sqrt(p * (1 - p))
        q = min(max(q, _Q_CLIP), 1 - _Q_CLIP)
        return math.log(q), math.log1p(-q)

    @property
    def mean(self) -> float:
        """Mean of the fresh observations (0.0 before the first)."""
        return self.total / self.n if self.n else 0.0

    # -- updating ------------------------------------------------------------------------------
    def update(self, x: float) -> None:
        """Feed one fresh observation; read ``decision`` afterwards."""
        if self._decision != "undecided":
            return
        self.n += 1
        self.total += float(x)
        self._log_confirm, self._log_withdraw = self.log_ratios(self.n, self.total)
        if self._impossible:
            self._decision = "withdraw"
        elif self._log_confirm >= self._upper and self.n >= self.span:
            self._decision = "confirm"
        elif self._log_withdraw <= self._lower:
            self._decision = "withdraw"

    def advance(self, n: int, total: float) -> None:
        """Feed ``n`` fresh observations summing to ``total`` at once (e.g. from their moments).

        The ratios depend on the fresh data only through (n, total), so this reaches the same
        evidence as feeding them one by one; the decision is taken on the result only (a crossing
        on the way that the end no longer shows is not seen).
        """
        if self._decision != "undecided" or n <= 0:
            return
        self.n += n
        self.total += float(total)
        self._log_confirm, self._log_withdraw = self.log_ratios(self.n, self.total)
        if self._impossible:
            self._decision = "withdraw"
        elif self._log_confirm >= self._upper and self.n >= self.span:
            self._decision = "confirm"
        elif self._log_withdraw <= self._lower:
            self._decision = "withdraw"

    def log_ratios(self, n: int, total: float) -> tuple[float, float]:
        """(confirming, withdrawing) log ratios after ``n`` fresh values summing to ``total``.

        Both depend on the fresh data only through (n, total): a vectorised simulation can use
        the same numbers (``benchmarks/confirmation_designs.py``).
        """
        if self.kind == "numeric":
            n0 = self._n0
            shrink = n0 / (n0 + n)
            s = self._sign * (total - n * self.baseline.mean) / self._sd
            logs = [shrink * (d * s - d * d * n / 2) for d in self._deltas]
            withdraw = shrink * (self.min_shift * s - self.min_shift**2 * n / 2)
        else:
            k, f = total, n - total
            null = _logsumexp([self._log_w + k * a + f * b for a, b in self._h0])
            logs = [_logsumexp([self._log_w + k * a + f * b for a, b in arm]) - null for arm in self._alts]
            withdraw = _logsumexp([self._log_w + k * a + f * b for a, b in self._alt_min]) - null
        confirm = logs[0] if len(logs) == 1 else _logsumexp(logs) - math.log(len(logs))
        if self.dispersion != 1.0:
            # Serially dependent or overdispersed values: the fresh sum's variance is ``dispersion``
            # times the independent one. Dividing the log likelihood ratio by it is the Gaussian
            # ratio at that variance (numeric) and the quasi-likelihood ratio (pass/fail).
            confirm /= self.dispersion
            withdraw /= self.dispersion
        if self.dispersion_scales:
            # Slow structure that a window of n fresh values (or the baseline's n0) does not
            # average out: the difference of the two means has variance κ(n) / n + κ(n0) / n0 (in
            # units of the values' variance), not κ (1 / n + 1 / n0). Paging needs the evidence at
            # that variance; withdrawing does not (the alarm's values return to stage one).
            n0 = self._n0
            kappa = (self.kappa_at(n) * n0 + self.kappa_at(round(n0)) * n) / (n0 + n)
            if kappa > self.dispersion:
                confirm *= self.dispersion / kappa
        return confirm, withdraw

    def kappa_at(self, n: int) -> float:
        """The variance inflation of a mean of ``n`` fresh values: ``dispersion``, or the reading of
        ``dispersion_scales`` at the largest window up to ``n`` if larger (slow structure that a
        window of ``n`` values does not average out: a cycle's phase, a run of hard tasks)."""
        kappa = self.dispersion
        for b, k in self.dispersion_scales:
            if b <= n and k > kappa:
                kappa = k
        return kappa

    def state(self) -> dict[str, Any]:
        """A small JSON-ready summary for alerts and debugging."""
        return {
            "test": "sequential-" + self.design,
            "decision": self._decision,
            "fresh_n": self.n,
            "fresh_mean": self.mean,
            "log_evidence": round(self._log_confirm, 4),
            "log_no_change": round(-self._log_withdraw, 4),
            "confirm_at": round(self._upper, 4),
            "withdraw_at": round(-self._lower, 4),
            "alpha": self.alpha,
            "beta": self.beta,
            "shifts": list(self._deltas),
            "min_shift": self.min_shift,
            "dispersion": self.dispersion,
            "dispersion_at_n": self.kappa_at(self.n),
            "dispersion_scales": [list(pair) for pair in self.dispersion_scales],
            "span": self.span,
            "baseline_n": self.baseline.n,
            "baseline_weight": self.baseline_weight,
        }
