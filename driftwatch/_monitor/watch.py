"""The per-signal lifecycle: detection, suspicion, confirmation, recovery and resolve for one signal.

``_SignalWatch`` is one (stream, signal)'s state (its detector, the suspected alert awaiting
confirmation, the open confirmed alert and its ``_Recovery``); ``Lifecycle`` moves it on with each
observation: suspect → confirm sequentially (``SequentialConfirm``) → recover, resolve or a new level.
Both state classes are pickled into checkpoints (see ``snapshot``).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

from driftwatch._alerting.alerts import Alert, Status, alert_id, describe
from driftwatch._config import Config
from driftwatch._monitor.fdr import Fdr
from driftwatch._outcome import SignalKind
from driftwatch._stats import Comparison, Moments, compare_means, compare_proportions, within_margin
from driftwatch.detectors import LaggedSR
from driftwatch.detectors._ability import ALPHA_FACTOR, AbilityConfirm, AbilitySR
from driftwatch.detectors._lagged_sr import season_of
from driftwatch.detectors._seasonal import Seasonal
from driftwatch.detectors._sequential import SequentialConfirm

__all__ = ["HARMFUL", "RECOVERY_ALPHA", "RECOVERY_TOLERANCE", "Lifecycle", "compare_kind"]

#: A confirmed alert resolves only on evidence that its stream is back within this fraction of the
#: confirmed change (|baseline - changed level|, on the detection scale) of its baseline; a stream
#: that left the changed level but still differs from the baseline is at a new level.
RECOVERY_TOLERANCE = 1 / 3
#: Power the recovery check's sample size aims at, for a stream fully back at its baseline.
_RECOVERY_POWER = 0.8
#: Level of the recovery check's tests (an open page's return to its baseline, a partial recovery).
#: It was ``confirm_alpha`` while that was a fixed-sample level of 0.01; ``confirm_alpha`` is now the
#: sequential stage two's anytime error rate (default 0.05), and a resolve keeps needing p <= 0.01.
RECOVERY_ALPHA = 0.01
#: A page raised before a seasonal profile was shown resolves as explained by it when the adjusted
#: values since the profile appeared are shown at the baseline rather than this many tolerances
#: beyond it (``_Recovery.explained``): a persistent change of that size is explained away with
#: probability at most ``RECOVERY_ALPHA`` per profile move.
EXPLAIN_SHIFT = 2.0
#: The log likelihood ratio at which it does (Wald's bound at ``RECOVERY_ALPHA``).
EXPLAINED = math.log(1 / RECOVERY_ALPHA)
#: The direction in which a change of each signal hurts. A page in the other direction is an
#: improvement: losing it again is a regression (paged), not a recovery. Signals not listed (token
#: and tool-call counts) hurt both ways.
HARMFUL: dict[str, str] = {
    "success": "down",
    "score": "down",
    "latency_s": "up",
    "ttft_s": "up",
    "cost_usd": "up",
}


def _set_slots(obj: Any, state: Any, dropped: frozenset[str] = frozenset()) -> None:
    """Pickle's default slot restore, written out so classes can fill slots older formats lacked
    (and skip the ``dropped`` ones that newer formats no longer have)."""
    plain, slots = state if isinstance(state, tuple) else (state, None)
    for values in (plain, slots):
        for name, value in (values or {}).items():
            if name not in dropped:
                setattr(obj, name, value)


class _Recovery:
    """A confirmed alert that is still open, and the evidence that its stream is back.

    Two stages, like detection. A one-sided CUSUM of the likelihood ratio "at the old baseline"
    against "at the changed level" (Bernoulli for pass/fail, Gaussian with the pooled spread
    otherwise) suspects a return at ``log(1 / budget)``; fresh observations after that (as many as
    the return took, and enough for the equivalence test below, within the confirmation bounds)
    must then differ from the changed level towards the baseline *and* lie within ``tolerance`` of
    the baseline (a one-sided equivalence test: absence of a difference is not evidence of a
    return), each at ``RECOVERY_ALPHA``. A lucky run at the changed level, which a CUSUM against an
    estimated level meets more often than its threshold promises, does not close a real incident
    that way, nor does a partial recovery: fresh observations that left the changed level but still
    differ from the baseline are a new level (``Monitor._new_level``).
    """

    __slots__ = (
        "alert",
        "base",
        "base_span",
        "checking",
        "cusum",
        "explain",
        "fresh",
        "hit",
        "level",
        "miss",
        "moves",
        "offsets",
        "seen",
        "since",
        "since_at",
        "tolerance",
    )

    def __init__(
        self,
        alert: Alert,
        kind: SignalKind,
        base: Moments,
        level: Moments,
        at: float,
        tolerance: float | None = None,
    ) -> None:
        self.alert = alert
        self.base = base
        # How close to the baseline counts as back: a fraction of the confirmed change, kept when a
        # partial recovery supersedes the alert (the incident's size, not the remaining gap).
        self.tolerance = RECOVERY_TOLERANCE * abs(base.mean - level.mean) if tolerance is None else tolerance
        # Every observation since the change but the candidate return (``since``): the changed level.
        # Only whole stretches are folded in: the CUSUM's excursions alone lean towards the baseline.
        self.level = Moments(level.n, level.mean, level.m2)
        self.cusum = 0.0
        self.seen = 0
        self.since = Moments()  # observations since the CUSUM's last zero: the candidate return
        self.since_at = at  # event time of the CUSUM's last zero (the last value at the changed level)
        self.fresh = Moments()
        self.checking = 0  # fresh observations the confirmation needs; 0 while only watching
        self.hit = self.miss = 0.0
        # The seasonal profile's view (``reexpress``): the event times of the baseline's first value
        # (NaN: unknown) and of the change, the profile's ``moves`` seen, and the mean offsets the
        # baseline's and the changed level's values are taken to be adjusted by.
        self.base_span = (math.nan, alert.change_at)
        self.moves = 0
        self.offsets = (0.0, 0.0)
        # The test of "explained by the seasonal profile" (``explained``): the adjusted values since
        # it was armed, None while it is not.
        self.explain: Moments | None = None
        self.fit(kind)

    def __setstate__(self, state: Any) -> None:
        # Format 3 snapshots predate ``since_at`` and ``tolerance``: the detection time stands in
        # for the first, the tolerance the recovery would have been created with for the second.
        _set_slots(self, state)
        if not hasattr(self, "since_at"):
            self.since_at = self.alert.detected_at
        if not hasattr(self, "tolerance"):
            self.tolerance = RECOVERY_TOLERANCE * abs(self.base.mean - self.level.mean)
        if not hasattr(self, "moves"):  # before the re-expression: the baseline's span is unknown
            self.base_span, self.moves, self.offsets = (math.nan, math.nan), -1, (0.0, 0.0)
        if not hasattr(self, "explain"):
            self.explain = None

    def seasonal(self, season: Seasonal | None, since: float, at: float) -> None:
        """Note the seasonal profile in use when the check opens, and ``since``, the event time of
        the baseline's first value (``reexpress``)."""
        self.base_span = (since, self.base_span[1])
        if season is not None:
            self.moves = season.moves
            level = season.mean_offset(self.alert.change_at, at)
            self.offsets = (season.mean_offset(*self.base_span), level)

    def inherit(self, opened: _Recovery, season: Seasonal | None, at: float) -> None:
        """A partial recovery's check: the baseline as ``opened`` held it (re-expressed so far), the
        new level as seen now."""
        self.seasonal(season, opened.base_span[0], at)
        self.base_span, self.offsets = opened.base_span, (opened.offsets[0], self.offsets[1])

    def reexpress(self, kind: SignalKind, season: Seasonal, at: float) -> None:
        """The seasonal profile appeared, went or moved: the baseline and the changed level were
        seen adjusted otherwise (raw, before a profile), and the values from now on are adjusted by
        it. Each is moved by the change of its mean offset over its span (the baseline's from its
        first value to the change, the changed level's from the change to now; values taken to
        be spread evenly over it), and the check starts over. Without it a page raised on a cycle's
        peak before the profile compared adjusted values with a baseline from a trough: never back,
        or paged again as a "partial recovery" (``tests/driftwatch/monitor/test_recovery_season.py``)."""
        self.moves = season.moves
        if math.isnan(self.base_span[0]):
            return
        self.back_off(kind, at)  # the candidate return was seen the old way: part of the changed level
        base, level = season.mean_offset(*self.base_span), season.mean_offset(self.alert.change_at, at)
        self.base = Moments(self.base.n, self.base.mean - (base - self.offsets[0]), self.base.m2)
        self.level = Moments(self.level.n, self.level.mean - (level - self.offsets[1]), self.level.m2)
        self.offsets = (base, level)
        self.fit(kind)
        # A page raised before any profile was shown may have been the cycle itself: test that.
        self.explain = Moments() if season.active and not self.alert.detector.get("seasonal") else None

    def explained(self) -> float:
        """The log likelihood ratio of the adjusted values since the profile appeared: at the
        baseline against shifted by ``EXPLAIN_SHIFT`` tolerances, the smaller of the two ratios
        (shifted up, shifted down; values beyond the baseline on the page's other side are no
        return either).

        On d, the fresh mean's distance from the baseline's, with variance v (1/n + 1/N) (the
        baseline's variance, its N values' mean uncertain as well: the ratio of d's likelihoods
        integrates the baseline's level out, so it is a martingale under either shifted hypothesis
        and Ville's inequality bounds the chance that a shift that large is ever explained away by
        ``RECOVERY_ALPHA``). 0 while the test is not armed."""
        trial, base = self.explain, self.base
        if trial is None or trial.n == 0 or base.n < 2 or self.tolerance <= 0:
            return 0.0
        d = abs(trial.mean - base.mean)
        s = EXPLAIN_SHIFT * self.tolerance
        v = (base.var if base.var > 0 else 1.0) * (1 / trial.n + 1 / base.n)
        return s * (s - 2 * d) / (2 * v)

    def fit(self, kind: SignalKind) -> None:
        """The CUSUM's increments for the baseline against the current estimate of the changed level."""
        b, c = self.base.mean, self.level.mean
        if kind == "binary":
            b, c = (min(max(x, 0.01), 0.99) for x in (b, c))
            self.hit, self.miss = math.log(b / c), math.log((1 - b) / (1 - c))
        else:
            pooled = self.base.merged(self.level)
            var = pooled.var if pooled.n > 1 and pooled.var > 0 else 1.0
            # The Gaussian LLR at x is hit * x + miss.
            self.hit, self.miss = (b - c) / var, -(b - c) * (b + c) / (2 * var)

    def step(self, kind: SignalKind, value: float, at: float) -> None:
        """One observation into the CUSUM (stage one)."""
        llr = (self.hit if value > 0.5 else self.miss) if kind == "binary" else self.hit * value + self.miss
        self.cusum = max(0.0, self.cusum + llr)
        self.since.add(value)
        if self.cusum == 0.0:
            # No return so far: the whole stretch, this value included, was the changed level.
            self.level = self.level.merged(self.since)
            self.since = Moments()
            self.since_at = at
            self.fit(kind)

    def back_off(self, kind: SignalKind, at: float) -> None:
        """Fresh data did not confirm the return: they too were the changed level; watch again."""
        self.level = self.level.merged(self.since).merged(self.fresh)
        self.since, self.fresh = Moments(), Moments()
        self.since_at = at
        self.cusum, self.checking = 0.0, 0
        self.fit(kind)

    def check_size(self, kind: SignalKind, alpha: float) -> int:
        """Fresh observations for the equivalence test to find a full return at ``_RECOVERY_POWER``."""
        if self.tolerance <= 0:
            return 0
        if kind == "binary":
            p = min(max(self.base.mean, 0.01), 0.99)
            var = p * (1 - p)
        else:
            var = self.base.var if self.base.n > 1 else 1.0
        normal = NormalDist()
        z = normal.inv_cdf(1 - alpha) + normal.inv_cdf(_RECOVERY_POWER)
        return math.ceil(var * (z / self.tolerance) ** 2)

    def within(self, kind: SignalKind, fresh: Moments) -> float:
        """p-value for "``fresh`` is within ``tolerance`` of the baseline" (see ``within_margin``)."""
        return within_margin(self.base, fresh, self.tolerance, self.alert.direction, binary=kind == "binary")


class _SignalWatch:
    """Detection and confirmation for one (stream, signal)."""

    __slots__ = (
        "active",
        "baseline",
        "detector",
        "episodes",
        "fresh",
        "history",
        "kind",
        "open",
        "opened",
        "post",
        "shadow",
        "since",
        "test",
    )

    def __init__(self, kind: SignalKind, config: Config, *, per_task: bool = False) -> None:
        self.kind = kind
        # Outcomes with recurring task ids: the agent's ability against each task's difficulty
        # (``AbilitySR``); otherwise the iid detector.
        detector = AbilitySR if per_task else LaggedSR
        self.detector: LaggedSR | AbilitySR = detector(
            kind="binary" if kind == "binary" else "numeric",
            warmup=config.warmup,
            lag=config.lag,
            budget=config.budget,
        )
        # Per task, during the first warm-up: the iid detector alongside, taken over at its end when
        # task ids turn out not to recur (``TaskModel.recurring``; ``_take_over``).
        self.shadow: LaggedSR | None = None
        if per_task:
            self.shadow = LaggedSR(
                kind="binary" if kind == "binary" else "numeric",
                warmup=config.warmup,
                lag=config.lag,
                budget=config.budget,
                self_start=False,
            )
        self.active: Alert | None = None  # a suspected alert awaiting confirmation
        self.baseline = Moments()
        self.history = Moments()  # everything the detector had seen when it raised the alarm
        self.fresh = Moments()  # observations since the alarm, while suspected
        # Stage two of the suspected alert: decides on the fresh observations (None: not yet made,
        # for a suspected alert restored from a format-4 snapshot; _observe makes it).
        self.test: SequentialConfirm | AbilityConfirm | None = None
        # A confirmed change back towards a harmful open alert's baseline: the observations after
        # the decision, on which where it went is decided (the confirming ones stopped selectively).
        self.post: Moments | None = None
        # While suspected: (event number when suspected, decisions made by then), for BH in _confirm.
        self.opened: tuple[int, int] = (0, 0)
        self.open: _Recovery | None = None  # a confirmed alert not yet resolved
        self.episodes = 0  # drift episodes raised so far: part of each alert id, so ids never repeat
        # Event time of the first value in the detector's baseline (NaN: none yet): a page's recovery
        # check re-expresses the baseline over that span when a seasonal profile appears (_Recovery).
        self.since = math.nan

    def __setstate__(self, state: Any) -> None:
        # Format 3 snapshots predate episode numbers: episode 0 is the id scheme they used. Formats
        # 3 and 4 confirmed on a fixed number of fresh observations (``confirm_n``); a suspected
        # alert of theirs gets its sequential test from the fresh observations' moments.
        _set_slots(self, state, dropped=frozenset({"confirm_n"}))
        if not hasattr(self, "episodes"):
            self.episodes = 0
        if not hasattr(self, "test"):
            self.test = None
        if not hasattr(self, "post"):
            self.post = None
        if not hasattr(self, "shadow"):  # formats before 7: a per-task watch stays per task
            self.shadow = None
        if not hasattr(self, "since"):
            self.since = math.nan


def _update(detector: LaggedSR | AbilitySR, value: float, at: float, task: str | None) -> None:
    """One observation into stage one (per task: with its task id)."""
    if isinstance(detector, AbilitySR):
        detector.update(value, at, task)
    else:
        detector.update(value, at)


def _seen(detector: LaggedSR | AbilitySR, value: float, at: float) -> float:
    """``value`` as stage one watches it (a seasonal stream's minus its hour's and weekday's
    offset, ``LaggedSR.adjusted``): what stage two and the recovery check are fed."""
    return detector.adjusted(value, at) if isinstance(detector, LaggedSR) else value


def _season(detector: LaggedSR | AbilitySR) -> Seasonal | None:
    """The detector's seasonal profile, if it has one (``LaggedSR`` on a numeric stream)."""
    return season_of(detector) if isinstance(detector, LaggedSR) else None


def _learn(detector: LaggedSR | AbilitySR, value: float, at: float) -> bool:
    """A value stage one is not fed (stage two or the recovery check takes it) still teaches its
    seasonal profile (``LaggedSR.learn``); True if the profile appeared or moved with it."""
    return isinstance(detector, LaggedSR) and detector.learn(value, at)


def _take_over(watch: _SignalWatch, value: float, at: float) -> LaggedSR | AbilitySR:
    """Feed the warm-up's iid shadow; at the warm-up's end it becomes the detector if task ids
    do not recur (each seen about once: difficulties cannot be learnt, the pooled rate is all)."""
    shadow, detector = watch.shadow, watch.detector
    assert shadow is not None
    shadow.update(value, at)
    if not isinstance(detector, AbilitySR) or detector.n >= detector.warmup:
        watch.shadow = None
        if isinstance(detector, AbilitySR) and not detector.model.recurring():
            watch.detector = shadow
            return shadow
    return detector


def _test_update(
    test: SequentialConfirm | AbilityConfirm, detector: LaggedSR | AbilitySR, value: float, task: str | None
) -> None:
    """One fresh observation into stage two (per task: with the task's posterior frozen at the alarm)."""
    if isinstance(test, AbilityConfirm) and isinstance(detector, AbilitySR):
        test.update(value, task, detector.posterior(task))
    else:
        test.update(value)


def _stage_two(
    watch: _SignalWatch, direction: str, config: Config, hints: dict[str, Any] | None = None
) -> SequentialConfirm | AbilityConfirm:
    """The sequential test of a suspected change against the baseline before it (``hints``:
    ``LaggedSR.confirm_kwargs``).

    Per task: against each fresh outcome's task posterior, at ``ALPHA_FACTOR`` of ``confirm_alpha``
    (what a shift of the task mix costs, ``detectors/_ability.py``).
    """
    if isinstance(watch.detector, AbilitySR):
        alpha = config.confirm_alpha * ALPHA_FACTOR
        return AbilityConfirm(watch.detector.kind, direction, alpha=alpha, beta=config.withdraw_beta)
    return SequentialConfirm(
        "binary" if watch.kind == "binary" else "numeric",
        watch.baseline,
        "up" if direction == "up" else "down",
        alpha=config.confirm_alpha,
        beta=config.withdraw_beta,
        **(hints or {"min_shift": config.min_shift}),
    )


def _resume(
    detector: LaggedSR | AbilitySR,
    baseline: Moments,
    at: float,
    why: str,
    test: SequentialConfirm | AbilityConfirm | None = None,
) -> None:
    """Restart stage one after stage two (or a recovery) decided ``why``.

    Per task: a withdrawn alarm's fresh observations join the difficulties (shown to be at the
    baseline); an inconclusive one keeps them as they were; after a page or its resolve the
    difficulties are learnt afresh at the level now current.
    """
    if not isinstance(detector, AbilitySR):
        detector.resume(baseline, at)
    elif why == "withdrawn":
        detector.resume(baseline, at, shown=test if isinstance(test, AbilityConfirm) else None)
    else:
        detector.resume(baseline, at, keep_tasks=why == "inconclusive")


def _inconclusive(test: SequentialConfirm | AbilityConfirm, moved: bool) -> str:
    """Why stage two closed undecided: ``max_fresh`` reached, or the seasonal profile appeared or
    moved (``LaggedSR.learn``), so the test's baseline and variance-time reading are in the old
    values (a reading of the cycle can hold a page back for a thousand values, stage one blind)."""
    why = "before the seasonal profile appeared or moved" if moved else "(a change smaller than "
    why += "" if moved else f"{test.min_shift:g} sd, if any)"
    return (
        f"inconclusive after {test.n} fresh observations: neither the change nor its absence shown "
        f"{why}; detection resumes from the baseline before the alarm"
    )


def _note(det: LaggedSR | AbilitySR, test: SequentialConfirm | AbilityConfirm) -> str:
    """What a suspected alert's message says about a short baseline or dependent values (issue 16)."""
    note = ""
    if isinstance(det, LaggedSR) and det.phase == "self-starting":
        note = f" against a baseline from {det.baseline_n} observations (self-starting)"
    if isinstance(test, SequentialConfirm) and test.dispersion > 1:
        note += f", evidence discounted {test.dispersion:.2g}× for serially dependent values"
    seasonal = det.evidence().get("seasonal") if isinstance(det, LaggedSR) else None
    if seasonal:
        cycles = " and ".join(
            f"±{info['amplitude']:.2g} by {name.replace('_', ' ')}" for name, info in seasonal.items()
        )
        note += f", against a seasonal baseline (offsets {cycles} on the detector's scale)"
    return note


def _tasks_moved(kind: SignalKind, test: AbilityConfirm) -> list[dict[str, Any]]:
    """``test.moved()`` in the signal's own units (counts and durations back from the log scale)."""
    rows = test.moved()
    if kind in ("log", "count"):
        undo = math.exp if kind == "log" else math.expm1
        for row in rows:
            row["mean"], row["expected"] = undo(row["mean"]), undo(row["expected"])
    return rows


def compare_kind(kind: SignalKind, base: Moments, cur: Moments, direction: str) -> Comparison:
    """``cur`` against ``base`` on ``kind``'s scale: proportions for pass/fail, else means."""
    if kind == "binary":
        return compare_proportions(base, cur, direction)
    return compare_means(base, cur, direction, scale=kind)


def recovery_step(
    opened: _Recovery, kind: SignalKind, config: Config, value: float, at: float, harmful: bool = True
) -> bool:
    """One value into an open alert's recovery check (the test of "explained by the seasonal
    profile", then stage one's CUSUM, then the fresh observations); True once the check must
    decide. An improvement (not ``harmful``) has only the first: losing it is a regression."""
    opened.seen += 1
    trial = opened.explain
    if trial is not None:
        if opened.explained() >= EXPLAINED:
            return True  # decided on the values before this one (the batched path stops before it)
        trial.add(value)  # no stop the other way: a test of power one, its level kept by Ville's bound
    if not harmful:
        return False
    if not opened.checking:
        opened.step(kind, value, at)
        if opened.seen >= config.keep_firing and opened.cusum > -math.log(config.budget):
            wanted = max(opened.since.n, opened.check_size(kind, RECOVERY_ALPHA))
            opened.checking = max(config.confirm_min, min(config.confirm_max, wanted))
        return False
    opened.fresh.add(value)
    return opened.fresh.n >= opened.checking


def _explained_why(opened: _Recovery, trial: Moments, season: Seasonal | None) -> str:
    """The message part of a page resolved as explained by the seasonal profile."""
    factors = sorted((season.describe() or {}) if season is not None else {})
    by = " and ".join(f.replace("_", "-") for f in factors) or "a seasonal"
    shift = EXPLAIN_SHIFT * opened.tolerance
    return (
        f"resolved: the change is explained by the {by} profile shown after it was paged (seasonally "
        f"adjusted, {trial.n} observations are at the baseline rather than {shift:.3g} beyond it: "
        f"likelihood ratio {math.exp(opened.explained()):.3g})"
    )


def _harmful(signal: str, direction: str) -> bool:
    """Whether a change of ``signal`` in ``direction`` hurts (both directions do for counts)."""
    return HARMFUL.get(signal, direction) == direction


class Lifecycle:
    """Moves each ``_SignalWatch`` on with its observations and makes the drift alerts.

    Two stages (design-notes.md): a calibrated detector raises ``suspected`` at the false-alarm
    budget; a sequential test on *fresh* observations after the alarm (never the ones that raised
    it; ``SequentialConfirm``) pages (``confirmed``) on evidence for the change, withdraws
    (``resolved``) on evidence of the baseline, and otherwise keeps the alert ``suspected`` up to
    ``max_fresh``. Suspected observations enter no baseline undecided. After a page the detector
    restarts on the changed level (the working baseline). An open confirmed alert resolves on
    evidence of a return (``_Recovery``) or is superseded by a new level; losing an improvement is a
    regression, paged. ``fdr`` records Benjamini–Hochberg's view of the concurrent candidates.
    """

    def __init__(self, config: Config, fdr: Fdr) -> None:
        self.config = config
        self.fdr = fdr
        self._side: list[Alert] = []  # alerts raised along the way within one observation
        self.task: str | None = None  # the task id of the outcome being observed (set by the Monitor)

    def observe(
        self, watch: _SignalWatch, key: str, labels: dict[str, str], name: str, value: float, at: float
    ) -> list[Alert]:
        """One value into ``watch``: the alert it raised (if any), then those closed along the way."""
        alert = self._observe(watch, key, labels, name, value, at)
        alerts = [] if alert is None else [alert]
        if self._side:  # alerts closed along the way (a recovery's suspicion, a superseded page)
            alerts += self._side
            self._side = []
        return alerts

    def _observe(
        self, watch: _SignalWatch, key: str, labels: dict[str, str], name: str, value: float, at: float
    ) -> Alert | None:
        detector, seen = watch.detector, _seen(watch.detector, value, at)
        if math.isnan(watch.since):
            watch.since = at
        opened = watch.open
        if opened is not None:
            season = _season(detector)
            if season is not None and season.moves != opened.moves:
                opened.reexpress(watch.kind, season, at)  # before its recovery check takes the value
            # An open improvement has no recovery to wait for (losing it is a regression, which
            # detection against the improved level, the working baseline, finds and pages), only
            # the test of "explained by the seasonal profile".
            recovered = self._recover(watch, key, seen, at, _harmful(name, opened.alert.direction))
            if recovered is not None:
                _learn(detector, value, at)
                return recovered  # this value is already in the resumed baseline
        if watch.active is not None:
            # Stage one waits while stage two decides on the fresh observations; they enter a
            # baseline only as its decision says (no contamination of the baseline by a change).
            moved = _learn(detector, value, at)
            return self._confirm(watch, key, seen, at, moved)
        _update(detector, value, at, self.task)
        if watch.shadow is not None:
            detector = _take_over(watch, value, at)
        if detector.drift_detected:
            return self._suspect(watch, key, labels, name, at)
        return None

    def _recover(
        self, watch: _SignalWatch, key: str, value: float, at: float, harmful: bool = True
    ) -> Alert | None:
        """Feed the open alert's recovery test; the ``resolved`` alert once the stream is back.

        A partial recovery (left the changed level, still differs from the baseline) supersedes the
        open alert with one for the new level; both go out through ``_side``.
        """
        opened = watch.open
        assert opened is not None
        if not recovery_step(opened, watch.kind, self.config, value, at, harmful):
            return None
        trial = opened.explain
        if trial is not None and opened.explained() >= EXPLAINED:
            return self._resolve(
                watch, at, trial, _explained_why(opened, trial, _season(watch.detector)), "seasonal"
            )
        alert = opened.alert
        back = "up" if alert.direction == "down" else "down"
        alpha = RECOVERY_ALPHA
        left = self._compare(watch, opened.level, opened.fresh, back).p_value
        if left <= alpha:
            within = opened.within(watch.kind, opened.fresh)
            if within <= alpha:
                why = (
                    f"back at its baseline (left the changed level: p={left:.2g}; within "
                    f"{opened.tolerance:.3g} of the baseline: p={within:.2g}, on {opened.fresh.n} fresh "
                    "observations)"
                )
                return self._resolve(watch, at, opened.since.merged(opened.fresh), why)
            still = self._compare(watch, opened.base, opened.fresh, alert.direction).p_value
            if still <= alpha:
                evidence = (
                    f"left the changed level (p={left:.2g}) but still differs from the baseline "
                    f"(p={still:.2g}), on {opened.fresh.n} fresh observations"
                )
                self._side += self._new_level(
                    watch, key, at, opened.since_at, opened.fresh, opened.since.merged(opened.fresh), evidence
                )
                return None
        opened.back_off(watch.kind, at)
        return None

    def _new_level(
        self,
        watch: _SignalWatch,
        key: str,
        at: float,
        since: float,
        fresh: Moments,
        level: Moments,
        evidence: str,
    ) -> list[Alert]:
        """A partial recovery: the open alert resolves as superseded by a confirmed alert for the new level.

        ``fresh`` are observations that did not raise the decision (they carry its evidence);
        ``level`` is every observation at the new level so far, which the new alert's recovery
        test starts from. The tolerance stays the original change's.
        """
        opened = watch.open
        assert opened is not None
        old = opened.alert
        comparison = self._compare(watch, opened.base, fresh, old.direction)
        watch.episodes += 1
        new = Alert(
            id=alert_id(key, old.signal, old.direction, since, episode=watch.episodes),
            status="confirmed",
            stream=dict(old.stream),
            signal=old.signal,
            direction=old.direction,
            detected_at=at,
            change_at=since,
            baseline=comparison.baseline,
            current=comparison.current,
            effect=comparison.effect,
            effect_ci=comparison.effect_ci,
            p_value=comparison.p_value,
            detector=old.detector,
            message="",
            delay=level.n,
            extra={
                "fresh_n": fresh.n,
                "recovery_alpha": RECOVERY_ALPHA,
                "decided_at": at,
                "confirmed_at": at,
                "partial_recovery_of": old.id,
                "changed_level": self._compare(watch, opened.level, fresh, old.direction).baseline.mean,
            },
        )
        new = new.with_status(
            "confirmed",
            message=f"{describe(new)}; a partial recovery of {old.id}, not back at the baseline: {evidence}",
        )
        resolved = old.with_status(
            "resolved",
            message=f"{describe(old)}: superseded by a partial recovery to a new level ({new.id}), "
            "not back at the baseline",
            extra={**old.extra, "resolved_by": "superseded", "superseded_by": new.id, "decided_at": at},
        )
        watch.open = rec = _Recovery(new, watch.kind, opened.base, level, at, opened.tolerance)
        rec.inherit(opened, _season(watch.detector), at)
        return [resolved, new]

    def _resolve(
        self, watch: _SignalWatch, at: float, recovered: Moments, why: str, by: str = "recovery"
    ) -> Alert:
        """Resolve the open alert: the old baseline holds again, so detection resumes from it."""
        opened = watch.open
        assert opened is not None
        watch.open = None
        pending = watch.active
        if pending is not None and pending.direction != opened.alert.direction:
            # A suspicion of the change back is this recovery: close it as well.
            watch.active = watch.test = None
            self._bh_decide(watch, 1.0)
            self._side.append(
                pending.with_status(
                    "resolved",
                    message=f"{describe(pending)}; the recovery of {opened.alert.id}, not a new change",
                )
            )
        alert = opened.alert
        back = self._compare(watch, opened.base, recovered, alert.direction)
        resolved = alert.with_status(
            "resolved",
            p_value=None,
            current=back.current,
            effect=back.effect,
            effect_ci=back.effect_ci,
            extra={
                **alert.extra,
                "resolved_by": by,
                "recovered_after": opened.seen,
                "decided_at": at,
            },
        )
        _resume(watch.detector, opened.base.merged(recovered), at, "resolved")
        watch.since = opened.base_span[0]
        return resolved.with_status(
            "resolved",
            message=f"{describe(resolved)}: {why}, {opened.seen} observations after it was confirmed",
        )

    def _compare(self, watch: _SignalWatch, base: Moments, cur: Moments, direction: str) -> Comparison:
        return compare_kind(watch.kind, base, cur, direction)

    def _suspect(self, watch: _SignalWatch, key: str, labels: dict[str, str], name: str, at: float) -> Alert:
        det = watch.detector
        direction = det.direction or "down"
        change_at = det.change_time if det.change_time is not None else at
        before, after = det.split()
        comparison = self._compare(watch, before, after, direction)
        delay = after.n
        watch.baseline = before if before.n >= 2 else det.observed
        watch.history = det.observed
        watch.fresh = Moments()
        hints = det.confirm_kwargs(self.config.min_shift) if isinstance(det, LaggedSR) else None
        watch.test = test = _stage_two(watch, direction, self.config, hints)
        watch.episodes += 1
        alert = Alert(
            id=alert_id(key, name, direction, change_at, episode=watch.episodes),
            status="suspected",
            stream=dict(labels),
            signal=name,
            direction=direction,
            detected_at=at,
            change_at=change_at,
            baseline=comparison.baseline,
            current=comparison.current,
            effect=comparison.effect,
            effect_ci=comparison.effect_ci,
            # The observations that raised the alarm cannot test it (selection bias): no p-value yet.
            p_value=None,
            detector=_detector_info(watch),
            message="",
            delay=delay,
            extra={
                "confirm_test": test.state()["test"],
                "alpha": test.alpha,
                "beta": test.beta,
                "min_shift": test.min_shift,
                "max_fresh": self.config.max_fresh,
            },
        )
        alert = alert.with_status(
            "suspected",
            message=f"{describe(alert)}; suspected after {delay} observations{_note(det, test)}, confirming "
            "sequentially on "
            f"fresh observations: paged when the evidence for the change reaches {1 / test.alpha:.3g}, "
            f"withdrawn when the evidence that nothing changed (against a {test.min_shift:g}-sd shift) "
            f"reaches {1 / test.beta:.3g}, at most {self.config.max_fresh} (estimates from the detection "
            "window are biased away from the baseline)",
        )
        watch.active = alert
        self._bh_open_candidate(watch)
        return alert

    def _bh_open_candidate(self, watch: _SignalWatch) -> None:
        """Note that ``watch`` became a stage-two candidate now (for ``_bh_decide``)."""
        self.fdr.open_candidate(watch)

    def _bh_decide(self, watch: _SignalWatch, p: float) -> tuple[bool, int, int]:
        """Benjamini–Hochberg over the stage-two candidates concurrent with this one (``Fdr.decide``)."""
        return self.fdr.decide(watch, p)

    def _confirm(self, watch: _SignalWatch, key: str, value: float, at: float, moved: bool) -> Alert | None:
        """One fresh observation into stage two; the alert once it decides (else None).

        ``confirm`` pages; the detector then restarts on the fresh observations, the changed level
        being the working baseline. ``withdraw`` (evidence that the stream is at its baseline) resumes
        the old baseline extended by everything seen since: shown to be at it. Undecided after
        ``max_fresh`` fresh observations or a ``moved`` profile (``_inconclusive``): closed as
        inconclusive, and the detector resumes from the baseline before the change only, so a
        suspected period never enters a baseline undecided.
        """
        suspected = watch.active
        assert suspected is not None
        test = watch.test
        if test is None:
            # Suspected under snapshot format 3 or 4 (a fixed-sample test): the ratios depend on the
            # fresh observations only through their count and sum, so the evidence carries over.
            test = watch.test = _stage_two(watch, suspected.direction, self.config)
            assert isinstance(test, SequentialConfirm)  # those formats predate per-task detection
            test.advance(watch.fresh.n, watch.fresh.n * watch.fresh.mean)
        watch.fresh.add(value)
        post = watch.post
        if post is not None:
            post.add(value)
        detector = watch.detector
        _test_update(test, detector, value, self.task)
        decision = test.decision
        moved = moved and decision == "undecided" and isinstance(test, SequentialConfirm)
        if decision == "undecided" and test.n < self.config.max_fresh and not moved:
            return None
        needed = self._reversal_sample(watch, suspected) if decision == "confirm" else 0
        if needed and (post is None or post.n < needed):
            # A change back: where it went (the baseline, a new level, nowhere) is decided on as many
            # observations after the decision as the recovery check takes.
            if post is None:
                watch.post = Moments()
            return None
        watch.post = None
        fresh = watch.fresh
        comparison = self._compare(watch, watch.baseline, fresh, suspected.direction)
        # An anytime-valid p-value: 1 / the confirming likelihood ratio (Ville's inequality).
        p_value = min(1.0, math.exp(-test.log_evidence))
        _, bh_m, bh_rank = self._bh_decide(watch, p_value if decision == "confirm" else 1.0)
        watch.active = watch.test = None
        state = test.state()
        # Named confirm_test: extra["test"] marks the synthetic alert of `driftwatch alert test`.
        state["confirm_test"] = state.pop("test")
        extra: dict[str, Any] = {**state, "decided_at": at, "bh_m": bh_m, "bh_rank": bh_rank}
        if decision == "confirm" and isinstance(test, AbilityConfirm):
            extra["tasks_moved"] = _tasks_moved(watch.kind, test)
        status: Status = "confirmed" if decision == "confirm" else "resolved"
        alert = suspected.with_status(
            status,
            baseline=comparison.baseline,
            current=comparison.current,
            effect=comparison.effect,
            effect_ci=comparison.effect_ci,
            p_value=p_value,
        )
        if "tasks_moved" in extra:  # named in the message (``describe``) as well
            alert = alert.with_status(status, extra={**alert.extra, "tasks_moved": extra["tasks_moved"]})
        if decision == "withdraw":
            verdict = (
                f"withdrawn on {test.n} fresh observations: at the baseline (likelihood ratio of no "
                f"change against a {test.min_shift:g}-sd shift {math.exp(test.log_no_change):.3g} >= "
                f"{1 / test.beta:.3g})"
            )
            _resume(detector, watch.history.merged(fresh), at, "withdrawn", test)
            return alert.with_status(
                status,
                message=f"{describe(alert)}; {verdict}",
                extra={**extra, "resolved_by": "withdrawn"},
            )
        if decision == "undecided":
            verdict = _inconclusive(test, moved)
            _resume(detector, watch.baseline, at, "inconclusive")
            return alert.with_status(
                status,
                message=f"{describe(alert)}; {verdict}",
                extra={**extra, "resolved_by": "inconclusive"},
            )
        # Confirmed: the changed level is the working baseline of further detection.
        _resume(detector, Moments(fresh.n, fresh.mean, fresh.m2), at, "confirmed")
        since, watch.since = watch.since, suspected.detected_at  # the old baseline's start; the new
        verdict = (
            f"confirmed on {test.n} fresh observations (sequential mixture likelihood ratio "
            f"{math.exp(test.log_evidence):.3g} >= {1 / test.alpha:.3g})"
        )
        alert = alert.with_status(
            status, message=f"{describe(alert)}; {verdict}", extra={**extra, "confirmed_at": at}
        )
        opened = watch.open
        if opened is not None and alert.direction != opened.alert.direction:
            if not _harmful(alert.signal, opened.alert.direction):
                # Losing an improvement is a regression: paged against the improved level, not
                # taken for a return to the old baseline.
                self._supersede(watch, alert, "a regression after it")
                was = self._compare(watch, opened.base, fresh, alert.direction).baseline.mean
                alert = alert.with_status(
                    status,
                    message=f"{alert.message}; a regression after the improvement {opened.alert.id} "
                    f"(from {was:.4g})",
                    extra={**alert.extra, "regression_after": opened.alert.id},
                )
                watch.open = _Recovery(alert, watch.kind, watch.baseline, _changed_level(watch), at)
                watch.open.seasonal(_season(detector), since, at)
                return alert
            # A change back while a harmful alert is open is its recovery, not news: the open alert
            # resolves when the fresh observations are back within tolerance of its baseline, or is
            # superseded by a new level when they still differ from it (else its own recovery test
            # decides); this one resolves (announced, if at all, only as suspected).
            part = "the recovery"
            after = post if post is not None else fresh
            back = "up" if opened.alert.direction == "down" else "down"
            left = self._compare(watch, opened.level, after, back).p_value
            if left > RECOVERY_ALPHA:
                part = "not a reversal on the observations after it (still at the changed level)"
            elif opened.seen >= self.config.keep_firing:
                within = opened.within(watch.kind, after)
                still = self._compare(watch, opened.base, after, opened.alert.direction).p_value
                if within <= RECOVERY_ALPHA:
                    why = (
                        f"the change reversed (confirmed) to within {opened.tolerance:.3g} of the baseline "
                        f"(p={within:.2g})"
                    )
                    self._side.append(self._resolve(watch, at, fresh, why))
                elif still <= RECOVERY_ALPHA:
                    part = "a partial recovery"
                    evidence = (
                        f"the change reversed (confirmed) but still differs from the baseline "
                        f"(p={still:.2g}), on {after.n} observations after the confirmation"
                    )
                    self._side += self._new_level(watch, key, at, alert.change_at, after, fresh, evidence)
            of = "" if part.startswith("not") else f" of {opened.alert.id}, not a new change"
            return alert.with_status(
                "resolved",
                message=f"{describe(alert)}; {part}{of}",
                extra={k: v for k, v in alert.extra.items() if k != "confirmed_at"},
            )
        if opened is not None:
            # A further change while an earlier one is open: the newer alert carries on from here.
            self._supersede(watch, alert, "a further change")
        watch.open = _Recovery(alert, watch.kind, watch.baseline, _changed_level(watch), at)
        watch.open.seasonal(_season(detector), since, at)
        return alert

    def _reversal_sample(self, watch: _SignalWatch, suspected: Alert) -> int:
        """Fresh observations a confirmed change back towards a harmful open alert's baseline needs.

        Whether it is back (within tolerance of the baseline) or at a new level is decided on the
        fresh observations, by the recovery check's tests: a sequential confirmation can come on a
        handful, too few for them; stage two then keeps collecting up to the recovery check's size.
        """
        opened = watch.open
        if opened is None or suspected.direction == opened.alert.direction:
            return 0
        if not _harmful(suspected.signal, opened.alert.direction):
            return 0
        config = self.config
        wanted = opened.check_size(watch.kind, RECOVERY_ALPHA)
        return max(config.confirm_min, min(config.confirm_max, wanted))

    def _supersede(self, watch: _SignalWatch, alert: Alert, what: str) -> None:
        """Resolve the open alert as superseded by ``alert`` (sent through ``_side``)."""
        opened = watch.open
        assert opened is not None
        self._side.append(
            opened.alert.with_status(
                "resolved",
                message=f"{describe(opened.alert)}: superseded by {what} ({alert.id})",
                extra={**opened.alert.extra, "resolved_by": "superseded", "superseded_by": alert.id},
            )
        )
        watch.open = None


def _changed_level(watch: _SignalWatch) -> Moments:
    """Every observation since the estimated change: the level a page's recovery starts from.

    Not the fresh observations alone: a sequential decision can come on a handful, and it
    stops when they happen to be far out, which would set the recovery's tolerance far too wide.
    """
    return watch.history.minus(watch.baseline).merged(watch.fresh)


def _detector_info(watch: _SignalWatch) -> dict[str, Any]:
    det = watch.detector
    return {
        "name": type(det).__name__,
        "budget": det.budget,
        "threshold": det.threshold_used,
        "shifts": list(det.shifts),
        "warmup": det.warmup,
        "lag": det.lag,
        "scale": watch.kind,
        **(det.evidence() if isinstance(det, LaggedSR) else {"tasks": len(det.model.tasks)}),
    }
