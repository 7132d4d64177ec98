"""Difficulty-adjusted detection for recurring task ids: a change in the agent's ability, not the task mix.

When outcomes carry a ``task_id`` that recurs (a benchmark suite, canaries, task templates), a
stream's raw pass rate moves whenever the *mix* of tasks moves: a day of hard tasks looks like a
regression. ``TaskModel`` learns each task's expected outcome with shrinkage across tasks
(empirical Bayes: a Beta prior over task pass rates fitted by the method of moments, or a normal
prior over task means for numeric values), from the detector's *reference* only: every observation
but the latest ``lag`` (as ``LaggedSR``'s baseline), so a change does not leak into difficulties.
``AbilitySR`` runs a mixture Shiryaev–Roberts statistic on each outcome's likelihood ratio against
its own task's expectation: for pass/fail, "the agent's ability moved by δ logits" (the task's
baseline probability ``p_i`` shifted to ``expit(logit p_i ± δ)``); for numeric values a shift of δ
predictive standard deviations around the task's mean. ``AbilityConfirm`` is stage two on the same
ratios over fresh observations (a mixture SPRT, as ``SequentialConfirm``).

A task seen fewer than twice in the reference (a new task id included) gets the pooled rate, so it
can neither raise nor hide a change. Memory is bounded: at most ``max_tasks`` task ids are tracked;
a new one beyond the cap evicts the least recently seen task (its observations stay in the pooled
rate).

Under no change and exactly known ``p_i`` each arm's ``R_n - n`` is a martingale, so an alarm at
``exp(h)`` comes after at least ``exp(h)`` observations on average (Pollak 1987); the threshold is
``log(1 / budget) + THRESHOLD_MARGIN``, the margin paying for the estimated difficulties
(``benchmarks/ability.py`` measures it).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any, Literal

from driftwatch._stats import Moments
from driftwatch.detectors._sequential import DecisionResults

__all__ = [
    "ABILITY_CONFIRM_SHIFTS",
    "ABILITY_SHIFTS",
    "MAX_TASKS",
    "RECURRING",
    "TASKS_MOVED",
    "AbilityConfirm",
    "AbilitySR",
    "TaskModel",
]

Kind = Literal["binary", "numeric"]
#: Shifts the stage-one mixture covers: logits of ability for pass/fail, predictive sds for numeric.
ABILITY_SHIFTS: dict[str, tuple[float, ...]] = {"binary": (0.35, 0.7), "numeric": (0.3, 0.45)}
#: Shifts the stage-two mixture averages over (same units), and the smallest change worth a page.
ABILITY_CONFIRM_SHIFTS: dict[str, tuple[float, ...]] = {
    "binary": (0.3, 0.45, 0.7, 1.0),
    "numeric": (0.2, 0.3, 0.45, 0.7),
}
ABILITY_MIN_SHIFT: dict[str, float] = {"binary": 0.3, "numeric": 0.2}
#: Task ids a confirmed alert names as the ones that moved most (``AbilityConfirm.moved``).
TASKS_MOVED = 5
#: Task ids recur in a stream when at least this fraction of its warm-up repeats a task id seen
#: earlier in it; otherwise the Monitor watches the stream with the iid detector (``LaggedSR``).
RECURRING = 0.25
#: Task ids tracked per stream; beyond it the least recently seen task is forgotten.
MAX_TASKS = 1000
#: Added to log(1 / budget): what estimating each task's difficulty costs in false alarms.
THRESHOLD_MARGIN = -3.0
#: The prior's weight (pseudo-observations) in a task's expectation is at most this: the empirical
#: Bayes weight M pulls a task's estimate towards the pooled rate by M / (n + M), which a later shift
#: of the mix towards truly hard (or easy) tasks reads as a change of ability (``benchmarks/ability.py``).
PRIOR_CAP = 1.0
#: Stage two's error rate of confirming is the configured one times this: a shift of the task mix
#: towards tasks whose difficulty was mis-estimated confirmed 10 % at a nominal 5 % on unselected
#: starts (5 % with the mix unchanged), more after stage one's selection (``benchmarks/ability.py``).
ALPHA_FACTOR = 0.2
#: The lag grows to at most this many times its length while stage one's statistic is at or above
#: ``HOLD_BELOW`` of its threshold: a change building up does not leak into the difficulties.
HOLD_LAG = 3
HOLD_BELOW = 0.5
#: Stage one narrows each task's posterior by this factor (see ``AbilitySR``).
STAGE_ONE_SPREAD = 0.5
#: Stage two widens each task's posterior by this factor: the difficulty estimates' errors are
#: fixed for the stream, and stage one alarms when they happen to line up with the current task mix.
SPREAD_INFLATION = 1.0
_P_CLIP = 0.005
_REFIT_EVERY = 100


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _expit(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


class TaskModel:
    """Each task's expected outcome, shrunk towards the pooled one by empirical Bayes.

    Binary: per task (n, passes); a Beta(μM, (1-μ)M) prior with μ the pooled rate and M from the
    between-task variance of the task rates (method of moments, sampling noise removed); a task's
    expectation is its posterior mean ``(s + μM) / (n + M)``. Numeric: per task (n, mean, m2); the
    within-task variance pooled, the between-task variance by moments; the posterior mean of the
    task and the predictive sd of a new value. Tasks with fewer than two observations get the pooled
    expectation.
    """

    __slots__ = ("between", "kind", "max_tasks", "pooled", "prior", "since_fit", "tasks", "within")

    def __init__(self, kind: Kind, max_tasks: int = MAX_TASKS) -> None:
        self.kind = kind
        self.max_tasks = max_tasks
        self.tasks: OrderedDict[str, Moments] = OrderedDict()
        self.pooled = Moments()
        self.prior = math.inf  # binary: M (inf: no spread between tasks); numeric unused
        self.within = 1.0  # numeric: within-task variance
        self.between = 0.0  # numeric: between-task variance of the task means
        self.since_fit = 0

    def add(self, value: float, task: str | None) -> None:
        """One reference observation."""
        self.pooled.add(value)
        if task is not None:
            moments = self.tasks.get(task)
            if moments is None:
                if len(self.tasks) >= self.max_tasks:
                    self.tasks.popitem(last=False)  # the least recently seen task
                moments = self.tasks[task] = Moments()
            else:
                self.tasks.move_to_end(task)
            moments.add(value)
        self.since_fit += 1
        if self.since_fit >= _REFIT_EVERY:
            self.fit()

    def merge(self, task: str | None, moments: Moments) -> None:
        """Several reference observations of one task at once."""
        self.pooled = self.pooled.merged(moments)
        if task is not None:
            held = self.tasks.pop(task, None)
            if held is None and len(self.tasks) >= self.max_tasks:
                self.tasks.popitem(last=False)
            self.tasks[task] = moments if held is None else held.merged(moments)

    def recurring(self) -> bool:
        """Whether task ids recur: at least ``RECURRING`` of the observations so far repeat a task id
        seen before them (unique ids, each seen once, give 0; 50 tasks over 500 observations 0.9)."""
        repeats = sum(m.n - 1 for m in self.tasks.values())
        return self.pooled.n > 0 and repeats >= RECURRING * self.pooled.n

    def fit(self) -> None:
        """Re-estimate the prior from the tasks seen at least twice."""
        self.since_fit = 0
        seen = [m for m in self.tasks.values() if m.n >= 2]
        mu = self.pooled.mean
        if len(seen) < 3:
            self.prior, self.between = math.inf, 0.0
            self.within = self.pooled.var if self.pooled.n > 1 and self.pooled.var > 0 else 1.0
            return
        total = sum(m.n for m in seen)
        centre = sum(m.n * m.mean for m in seen) / total
        spread = sum(m.n * (m.mean - centre) ** 2 for m in seen) / total
        if self.kind == "binary":
            mu = min(max(mu, _P_CLIP), 1 - _P_CLIP)
            noise = sum(mu * (1 - mu) for _ in seen) / total  # E[var of a task rate] = μ(1-μ)/n, n-weighted
            tau2 = spread - noise
            self.prior = math.inf if tau2 <= 1e-9 else max(0.05, mu * (1 - mu) / tau2 - 1)
            return
        dof = sum(m.n - 1 for m in seen)
        within = sum(m.m2 for m in seen) / dof if dof > 0 else 0.0
        self.within = within if within > 0 else (self.pooled.var or 1.0)
        self.between = max(0.0, spread - self.within * len(seen) / total)

    def expected(self, task: str | None) -> tuple[float, float]:
        """(expected value, predictive sd) of ``task``'s next outcome (binary: (p, sqrt(p(1-p))))."""
        mu = self.pooled.mean
        m = self.tasks.get(task) if task is not None else None
        if self.kind == "binary":
            if m is not None and m.n >= 2 and self.prior != math.inf:
                weight = min(self.prior, PRIOR_CAP)
                p = (m.n * m.mean + mu * weight) / (m.n + weight)
            else:
                p = mu
            p = min(max(p, _P_CLIP), 1 - _P_CLIP)
            return p, math.sqrt(p * (1 - p))
        within, between = self.within, self.between
        if m is None or m.n < 2 or between <= 0:
            var = within + between
            return mu, math.sqrt(var) if var > 0 else 1.0
        precision = m.n / within + 1 / between
        mean = (m.n * m.mean / within + mu / between) / precision
        return mean, math.sqrt(within + 1 / precision)


def _posterior(model: TaskModel, task: str | None) -> tuple[float, ...]:
    """``task``'s posterior under ``model``: (logit centre, logit sd) for pass/fail (a logit-normal
    approximation of its Beta posterior), (mean, posterior variance, within variance) for numeric."""
    mu = model.pooled.mean
    m = model.tasks.get(task) if task is not None else None
    if model.kind == "binary":
        prior = min(model.prior, PRIOR_CAP) if m is not None and m.n >= 2 else 1e6
        mu = min(max(mu, _P_CLIP), 1 - _P_CLIP)
        a, b = mu * prior, (1 - mu) * prior
        if m is not None and m.n >= 2:
            a, b = a + m.n * m.mean, b + m.n * (1 - m.mean)
        p = min(max(a / (a + b), _P_CLIP), 1 - _P_CLIP)
        return _logit(p), SPREAD_INFLATION * math.sqrt(1 / max(a, 0.5) + 1 / max(b, 0.5))
    mean, sd = model.expected(task)
    within = model.within if model.within > 0 else 1.0
    return mean, max(sd * sd - within, 0.0), within


class _Arm:
    """One alternative (ability moved by ``signed``): a CUSUM of the task-integrated likelihood ratio.

    ``window`` holds, per task, the observations since the CUSUM's last zero and their log ratio
    (``_task_log_ratio``): a task's unknown expectation is integrated over its posterior jointly
    over all of its observations in the window, so a task whose difficulty was mis-estimated adds
    a bounded amount of evidence however often it is drawn.
    """

    __slots__ = ("log_w", "mark", "signed", "window", "zero_at", "zero_time")

    def __init__(self, signed: float) -> None:
        self.signed = signed
        self.log_w = 0.0
        self.window: dict[str | None, tuple[Moments, float]] = {}
        self.mark: tuple[int, float, float] = (0, 0.0, 0.0)
        self.zero_at = 0
        self.zero_time = 0.0


class AbilitySR:
    """Two-sided mixture Shiryaev–Roberts detector of a change in ability, against per-task expectations.

    The surface the Monitor's lifecycle uses is ``LaggedSR``'s (``update``, ``drift_detected``,
    ``direction``, ``change_time``, ``split``, ``observed``, ``resume``, ``state``); ``update`` also
    takes the outcome's task id, and ``expected(task)`` gives stage two the frozen expectation.
    ``split`` and ``observed`` are moments of the raw values (the alert reports raw rates).
    """

    def __init__(
        self,
        kind: Kind = "binary",
        warmup: int = 500,
        lag: int = 300,
        shifts: Sequence[float] | None = None,
        budget: float = 1e-4,
        threshold: float | None = None,
        max_tasks: int = MAX_TASKS,
    ) -> None:
        if kind not in ("binary", "numeric"):
            raise ValueError(f"kind must be 'binary' or 'numeric', got {kind!r}")
        self.kind: Kind = kind
        self.warmup = warmup
        self.lag = lag
        self.shifts = tuple(shifts) if shifts is not None else ABILITY_SHIFTS[kind]
        self.budget = budget
        self.threshold = threshold
        self.max_tasks = max_tasks
        self.model = TaskModel(kind, max_tasks)
        self._reset()

    def _reset(self) -> None:
        self.drift_detected = False
        self._n = 0
        self._all = Moments()
        self._pending: deque[tuple[float, str | None]] = deque()
        self._arms = [_Arm(sign * s) for s in self.shifts for sign in (1.0, -1.0)]
        self._fired: _Arm | None = None

    # -- results (LaggedSR's surface) ------------------------------------------------------------
    @property
    def n(self) -> int:
        return self._n

    @property
    def warming_up(self) -> bool:
        return self._n < self.warmup

    @property
    def threshold_used(self) -> float:
        if self.threshold is not None:
            return self.threshold
        return math.log(len(self._arms) / self.budget) + THRESHOLD_MARGIN

    @property
    def statistic(self) -> float:
        """The largest arm's CUSUM (log scale; compare with ``threshold_used``)."""
        return max(a.log_w for a in self._arms)

    @property
    def direction(self) -> str | None:
        return None if self._fired is None else ("up" if self._fired.signed > 0 else "down")

    @property
    def change_index(self) -> int | None:
        return self._fired.zero_at + 1 if self._fired else None

    @property
    def change_time(self) -> float | None:
        return self._fired.zero_time if self._fired else None

    @property
    def observed(self) -> Moments:
        return Moments(self._all.n, self._all.mean, self._all.m2)

    def split(self) -> tuple[Moments, Moments]:
        """After a detection: raw moments before and after the estimated change."""
        if self._fired is None:
            return self.observed, Moments()
        before = Moments(*self._fired.mark)
        return before, self._all.minus(before)

    def expected(self, task: str | None) -> tuple[float, float]:
        """``task``'s expected outcome and predictive sd under the reference (``TaskModel.expected``)."""
        return self.model.expected(task)

    def posterior(self, task: str | None) -> tuple[float, ...]:
        """``task``'s posterior under the reference, for stage two (``AbilityConfirm.update``)."""
        return _posterior(self.model, task)

    def state(self) -> dict[str, Any]:
        ref = self.model.pooled
        return {
            "n": self._n,
            "baseline_mean": ref.mean,
            "baseline_n": ref.n,
            "threshold": self.threshold_used,
            "statistic": round(self.statistic, 4),
            "tasks": len(self.model.tasks),
            "task_prior": None if self.model.prior == math.inf else round(self.model.prior, 4),
        }

    # -- updating ----------------------------------------------------------------------------------
    def update(self, x: float, t: float = 0.0, task: str | None = None) -> None:
        """Feed one observation with its event time and task id."""
        if self.drift_detected:
            self._reset_after_alarm()
        value = float(x)
        self._n += 1
        self._all.add(value)
        if self._n <= self.warmup:
            self.model.add(value, task)
            mark = (self._all.n, self._all.mean, self._all.m2)
            for arm in self._arms:
                arm.zero_at, arm.zero_time, arm.mark = self._n, t, mark
            if self._n == self.warmup:
                self.model.fit()
            return
        pending = self._pending
        # Evidence building up for a change holds the lag back (up to HOLD_LAG times its length),
        # so the change does not leak into the difficulties before it is detected.
        full = len(pending) >= HOLD_LAG * self.lag or self.statistic < HOLD_BELOW * self.threshold_used
        if pending and len(pending) >= self.lag and full:
            self.model.add(*pending.popleft())
        self._step(value, t, task)
        if self.lag:
            pending.append((value, task))
        else:
            self.model.add(value, task)

    def _reset_after_alarm(self) -> None:
        """As River's detectors: the update after an alarm starts afresh (a new warm-up)."""
        self.model = TaskModel(self.kind, self.max_tasks)
        self._reset()

    def _step(self, value: float, t: float, task: str | None) -> None:
        post = _posterior(self.model, task)
        if self.kind == "binary":
            post = (post[0], post[1] * STAGE_ONE_SPREAD)
        else:
            post = (post[0], post[1] * STAGE_ONE_SPREAD**2, post[2])
        limit = self.threshold_used
        mark: tuple[int, float, float] | None = None
        for arm in self._arms:
            held = arm.window.get(task)
            fresh, old = held if held is not None else (Moments(), 0.0)
            fresh.add(value)
            new = _task_log_ratio(self.kind, post, fresh.n, fresh.n * fresh.mean, arm.signed)
            arm.window[task] = (fresh, new)
            arm.log_w += new - old
            if arm.log_w <= 0.0:
                arm.log_w = 0.0
                arm.window = {}
                if mark is None:
                    mark = (self._all.n, self._all.mean, self._all.m2)
                arm.mark, arm.zero_at, arm.zero_time = mark, self._n, t
        top = max(self._arms, key=lambda a: a.log_w)
        if top.log_w > limit:
            self.drift_detected = True
            self._fired = top

    def resume(
        self,
        baseline: Moments,
        t: float | None = None,
        *,
        keep_tasks: bool = True,
        shown: AbilityConfirm | None = None,
    ) -> None:
        """Start the statistics afresh after stage two decided.

        ``keep_tasks`` with ``shown`` (a withdrawn alarm: shown to be at the baseline): the
        observations still in the lag and stage two's fresh ones (``shown``) join the task model.
        ``keep_tasks`` alone (an inconclusive alarm): the task model stays as it was at the alarm,
        the lagged observations are dropped (never decided). Otherwise (a confirmed change, the
        changed level being the working baseline; a resolved page) the task model starts over and
        warms up again on the observations from here on.
        """
        if t is None:
            t = max((arm.zero_time for arm in self._arms), default=0.0)
        model = self.model
        if keep_tasks and shown is not None:
            for value, task in self._pending:
                model.add(value, task)
            for task, moments in shown.fresh_tasks():
                model.merge(task, moments)
        self._reset()
        self._all = Moments(baseline.n, baseline.mean, baseline.m2)
        if not keep_tasks:
            self.model = TaskModel(self.kind, self.max_tasks)
            self._n = 0
            return
        self._n = max(baseline.n, self.warmup)
        mark = (baseline.n, baseline.mean, baseline.m2)
        for arm in self._arms:
            arm.mark, arm.zero_at, arm.zero_time = mark, self._n, t
        model.fit()


class AbilityConfirm(DecisionResults):
    """Stage two for ``AbilitySR``: a mixture SPRT of "ability moved by δ in the alarm's direction".

    Fed fresh observations with their task id and that task's posterior under the reference, frozen
    at the alarm (``AbilitySR.posterior``). Each task's unknown expectation is integrated over its
    posterior under both hypotheses, jointly over all of that task's fresh observations (pass/fail:
    a logit-normal approximation of the Beta posterior, integrated by Laplace's method; numeric:
    exact, the fresh values of a task being jointly normal with covariance ``σ² I + v J``). So a
    task whose difficulty was mis-estimated is learnt from its fresh observations under both
    hypotheses alike, and a shift of the mix towards such tasks does not read as a change of
    ability as readily (measured: it still confirms about twice ``alpha`` there, hence the Monitor's
    ``ALPHA_FACTOR``). Confirms when the equal-weight mixture over ``shifts`` reaches ``1 / alpha``;
    withdraws when "unchanged" against "moved by ``min_shift``" reaches ``1 / beta`` (Ville's
    inequality bounds both under the model).
    """

    def __init__(
        self,
        kind: Kind,
        direction: str,
        *,
        alpha: float = 0.05,
        beta: float = 0.01,
        shifts: Sequence[float] | None = None,
        min_shift: float | None = None,
    ) -> None:
        self.kind: Kind = kind
        self.direction = direction
        self.alpha = alpha
        self.beta = beta
        self.shifts = tuple(shifts) if shifts is not None else ABILITY_CONFIRM_SHIFTS[kind]
        self.min_shift = ABILITY_MIN_SHIFT[kind] if min_shift is None else min_shift
        sign = 1.0 if direction == "up" else -1.0
        self._signed = [sign * d for d in (*self.shifts, self.min_shift)]
        # Per task: its posterior, fresh count and sum, and its log ratio for each alternative.
        self._tasks: dict[str | None, tuple[tuple[float, ...], Moments, list[float]]] = {}
        self._totals = [0.0] * len(self._signed)
        self._log_withdraw = 0.0
        self._log_confirm = 0.0
        self.n = 0
        self.total = 0.0
        self._decision = "undecided"

    def update(self, x: float, task: str | None = None, posterior: tuple[float, ...] = (0.5, 2.0)) -> None:
        """One fresh observation of ``task``, with the task's posterior (``AbilitySR.posterior``)."""
        if self._decision != "undecided":
            return
        value = float(x)
        self.n += 1
        self.total += value
        held = self._tasks.get(task)
        post, fresh, old = held if held is not None else (posterior, Moments(), [0.0] * len(self._signed))
        fresh.add(value)
        k, total = fresh.n, fresh.n * fresh.mean
        new = [_task_log_ratio(self.kind, post, k, total, d) for d in self._signed]
        self._tasks[task] = (post, fresh, new)
        self._totals = [t + a - b for t, a, b in zip(self._totals, new, old, strict=True)]
        logs = self._totals[:-1]
        top = max(logs)
        self._log_confirm = top + math.log(sum(math.exp(v - top) for v in logs) / len(logs))
        self._log_withdraw = self._totals[-1]
        if self._log_confirm >= math.log(1 / self.alpha):
            self._decision = "confirm"
        elif self._log_withdraw <= math.log(self.beta):
            self._decision = "withdraw"

    def fresh_tasks(self) -> list[tuple[str | None, Moments]]:
        """Each task's fresh observations (moments), in the order the tasks first came."""
        return [(task, Moments(m.n, m.mean, m.m2)) for task, (_, m, _) in self._tasks.items()]

    def moved(self, top: int = TASKS_MOVED) -> list[dict[str, Any]]:
        """The ``top`` task ids that moved most in the alarm's direction, on the fresh observations.

        Ranked by the task's total departure from its expectation (fresh count times the gap between
        its fresh mean and its expected value, in the alarm's direction): the tasks that account for
        most of the change, not a task seen once that happened to fail. Each row: ``task_id``, ``n``
        (fresh observations), ``mean`` (their mean: the fresh pass rate), ``expected`` (the task's
        expectation under the reference, frozen at the alarm). Tasks that moved the other way, or
        not at all, are left out; so are outcomes without a task id.
        """
        sign = 1.0 if self.direction == "up" else -1.0
        rows: list[tuple[float, dict[str, Any]]] = []
        for task, (post, fresh, _) in self._tasks.items():
            if task is None or fresh.n == 0:
                continue
            expected = _expit(post[0]) if self.kind == "binary" else post[0]
            gap = sign * (fresh.mean - expected) * fresh.n
            if gap > 0:
                rows.append((gap, {"task_id": task, "n": fresh.n, "mean": fresh.mean, "expected": expected}))
        rows.sort(key=lambda row: -row[0])
        return [row for _, row in rows[:top]]

    def state(self) -> dict[str, Any]:
        return {
            "test": "sequential-ability",
            "decision": self._decision,
            "fresh_n": self.n,
            "fresh_mean": self.total / self.n if self.n else 0.0,
            "fresh_tasks": len(self._tasks),
            "log_evidence": round(self._log_confirm, 4),
            "log_no_change": round(-self._log_withdraw, 4),
            "confirm_at": round(math.log(1 / self.alpha), 4),
            "withdraw_at": round(math.log(1 / self.beta), 4),
            "alpha": self.alpha,
            "beta": self.beta,
            "shifts": list(self.shifts),
            "min_shift": self.min_shift,
        }


def _log_marginal(passes: float, fails: float, centre: float, spread: float) -> float:
    """log ∫ σ(u)^passes (1 - σ(u))^fails N(u; centre, spread²) du, by Laplace's method.

    Newton steps to the mode of the log integrand (concave), then its curvature; exact in the
    limit of many observations, where a fixed quadrature grid would let the likelihood fall between
    nodes and give one hypothesis a node nearer the data than the other.
    """
    n = passes + fails
    var = spread * spread
    u = centre
    for _ in range(30):
        p = _expit(u)
        grad = passes - n * p - (u - centre) / var
        curv = n * p * (1 - p) + 1 / var
        step = grad / curv
        u += max(-2.0, min(2.0, step))
        if abs(step) < 1e-9:
            break
    p = _expit(u)
    curv = n * p * (1 - p) + 1 / var
    log_p = -math.log1p(math.exp(-u)) if u > -30 else u
    log_q = -math.log1p(math.exp(u)) if u < 30 else -u
    value = passes * log_p + fails * log_q - (u - centre) ** 2 / (2 * var)
    return value - 0.5 * math.log(var * curv)


def _task_log_ratio(kind: Kind, post: tuple[float, ...], k: int, total: float, signed: float) -> float:
    """Log of ∫ L_shifted / ∫ L_unchanged for one task's ``k`` fresh values summing to ``total``."""
    if kind == "numeric":
        mean, var_post, within = post
        shift = signed * math.sqrt(within + var_post)
        dev = total - k * mean
        return (shift * dev - shift * shift * k / 2) / (within + k * var_post)
    centre, spread = post
    passes, fails = total, k - total
    return _log_marginal(passes, fails, centre + signed, spread) - _log_marginal(
        passes, fails, centre, spread
    )
