"""Version markers: annotate a change of model, app version, effort or provider inside a stream and
compare every watched signal before and after it (two-sided, Benjamini–Hochberg across signals).

``_Versions`` (with ``_Recent`` and ``_Pending``) is a stream's state and is pickled into
checkpoints; ``VersionTracker`` moves it on with each outcome.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from driftwatch._alerting.alerts import Alert, alert_id, changes_text, describe
from driftwatch._config import Config
from driftwatch._monitor.watch import _set_slots, compare_kind
from driftwatch._outcome import SIGNALS, Outcome, SignalKind
from driftwatch._stats import (
    Comparison,
    Estimate,
    Moments,
    benjamini_hochberg,
    compare_paired_binary,
    compare_paired_means,
    compare_stratified_binary,
)

if TYPE_CHECKING:
    from driftwatch._monitor.monitor import MonitorStats
    from driftwatch._monitor.stream import _Stream

__all__ = ["MIN_PAIRS", "VersionTracker"]

_OUTCOME_FIELDS = frozenset(f.name for f in dataclasses.fields(Outcome))
#: Task ids seen on both sides of a version change before a comparison pairs them.
MIN_PAIRS = 10


class _Recent:
    """Moments of about the last ``cap`` observations in O(1) memory.

    Observations are kept as blocks of ``cap / 8``; the oldest block goes once the others still
    hold ``cap``, so this covers between ``cap`` and ``cap * 9 / 8`` observations once full.
    """

    __slots__ = ("_blocks", "_current", "_n", "block", "cap")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.block = max(1, -(-cap // 8))
        self._blocks: deque[Moments] = deque()
        self._current = Moments()
        self._n = 0

    def add(self, x: float) -> None:
        current = self._current  # Moments.add, inlined: every outcome, every signal
        current.n += 1
        delta = x - current.mean
        current.mean += delta / current.n
        current.m2 += delta * (x - current.mean)
        self._n += 1
        if current.n >= self.block:
            self._roll()

    def _roll(self) -> None:
        """The current block is full: keep it, start the next, drop the oldest beyond ``cap``."""
        self._blocks.append(self._current)
        self._current = Moments()
        while self._blocks and self._n - self._blocks[0].n >= self.cap:
            self._n -= self._blocks.popleft().n

    @property
    def n(self) -> int:
        return self._n

    def moments(self) -> Moments:
        total = Moments()
        for block in self._blocks:
            total = total.merged(block)
        return total.merged(self._current)


class _Pending:
    """A before/after comparison waiting for its after side to fill."""

    __slots__ = (
        "after",
        "after_pairs",
        "at",
        "before",
        "before_pairs",
        "changes",
        "seen",
        "strata",
        "targets",
    )

    def __init__(
        self,
        changes: list[dict[str, str]],
        at: float,
        before: dict[str, Moments],
        before_pairs: dict[str, dict[str, float]],
        cap: int,
        tasks: Iterable[tuple[str, dict[str, float]]] = (),
    ) -> None:
        self.changes = changes
        self.at = at
        self.before = before
        # The after side stops at the before side's size (a balanced comparison) or at the cap.
        self.targets = {name: min(m.n, cap) for name, m in before.items()}
        self.after = {name: Moments() for name in before}
        self.before_pairs = before_pairs
        # Only task ids seen before the change can pair, so this stays within the before side's size.
        self.after_pairs: dict[str, dict[str, float]] = {}
        # Pass/fail signals by task id: [n before, passes before, n after, passes after], for a
        # comparison stratified by task when task ids recur (a daily suite).
        self.strata: dict[str, dict[str, list[int]]] = {}
        for task_id, values in tasks:
            for name, value in values.items():
                if name in before:
                    cell = self.strata.setdefault(name, {}).setdefault(task_id, [0, 0, 0, 0])
                    cell[0] += 1
                    cell[1] += value > 0.5
        self.seen = 0

    def __setstate__(self, state: Any) -> None:
        # Formats 3 and 4 predate the strata: their pending comparisons pair by task as before.
        _set_slots(self, state)
        if not hasattr(self, "strata"):
            self.strata = {}

    def add(self, values: dict[str, float], task_id: str | None) -> None:
        self.seen += 1
        taken: dict[str, float] = {}
        for name, target in self.targets.items():
            value = values.get(name)
            if value is not None and self.after[name].n < target:
                self.after[name].add(value)
                taken[name] = value
        if task_id is not None and taken and task_id in self.before_pairs:
            self.after_pairs.setdefault(task_id, {}).update(taken)
        if task_id is not None:
            for name, value in taken.items():
                cell = self.strata.get(name, {}).get(task_id)
                if cell is not None:
                    cell[2] += 1
                    cell[3] += value > 0.5

    def stratified(self, name: str) -> list[tuple[int, int, int, int]] | None:
        """Per-task counts of ``name`` when task ids recur within the sides, else None (pair them).

        Needs ``MIN_PAIRS`` tasks seen on both sides, with on average more than 1.5 outcomes per
        task and side: with one outcome each, exact McNemar on the pairs is the better test.
        """
        cells = [tuple(c) for c in self.strata.get(name, {}).values() if c[0] and c[2]]
        if len(cells) < MIN_PAIRS or sum(c[0] + c[2] for c in cells) <= 3 * len(cells):
            return None
        return [(c[0], c[1], c[2], c[3]) for c in cells]

    @property
    def full(self) -> bool:
        return all(self.after[name].n >= target for name, target in self.targets.items())

    def pairs(self, name: str) -> list[tuple[float, float]]:
        """(before, after) values of ``name`` for the task ids seen on both sides."""
        out = []
        for task_id, after in self.after_pairs.items():
            before = self.before_pairs.get(task_id, {})
            if name in after and name in before:
                out.append((before[name], after[name]))
        return out


class _Versions:
    """A stream's version markers and what the next before/after comparison needs."""

    __slots__ = ("markers", "pairs", "pending", "recent", "tasks")

    def __init__(self) -> None:
        self.markers: dict[str, str] = {}
        self.recent: dict[str, _Recent] = {}  # per signal, since the last version change
        # task_id -> last value per signal since the last change; the oldest task id goes at the cap.
        self.pairs: dict[str, dict[str, float]] = {}
        # (task_id, pass/fail signals) of the last outcomes with a task id, as many as a side holds.
        self.tasks: deque[tuple[str, dict[str, float]]] = deque()
        self.pending: _Pending | None = None

    def __setstate__(self, state: Any) -> None:
        # Formats 3 and 4 predate ``tasks``: the first comparison after a restore pairs by task.
        _set_slots(self, state)
        if not hasattr(self, "tasks"):
            self.tasks = deque()


def _marker_value(outcome: Outcome, name: str) -> str | None:
    """A version marker's value: the Outcome attribute of that name, else the label."""
    value = getattr(outcome, name) if name in _OUTCOME_FIELDS else outcome.labels.get(name)
    return None if value is None or value == "" else str(value)


def _neutral(kind: SignalKind) -> float:
    """The effect of no change: a ratio of 1 on log scales, else a difference of 0."""
    return 1.0 if kind in ("log", "count") else 0.0


class VersionTracker:
    """Annotations and before/after comparisons of version changes, for every stream of a monitor."""

    def __init__(self, config: Config, stats: MonitorStats) -> None:
        self.config = config
        self.stats = stats
        # Each marker, in order, and whether it is an Outcome field (else a label): decided once.
        self._markers = [(marker, marker in _OUTCOME_FIELDS) for marker in config.version_markers]
        self._field_markers = [(marker, True) for marker, field in self._markers if field]  # no labels: these

    def track(self, stream: _Stream, key: str, outcome: Outcome, values: dict[str, float]) -> list[Alert]:
        """Annotate version changes, keep what the next comparison needs, finish a due comparison."""
        config = self.config
        versions = stream.versions
        changes: list[dict[str, str]] = []
        markers = versions.markers
        labels = outcome.labels
        for marker, field in self._markers if labels else self._field_markers:
            # _marker_value, inlined: every outcome, every marker (no labels: no label marker)
            raw = getattr(outcome, marker) if field else labels.get(marker)
            if raw is None or raw == "":
                continue  # an outcome without the marker says nothing about the version
            value = raw if type(raw) is str else str(raw)
            old = markers.get(marker)
            if old != value:
                markers[marker] = value
                if old is not None:
                    changes.append({"marker": marker, "before": old, "after": value})
        alerts: list[Alert] = []
        if changes:
            if versions.pending is not None:
                self.stats.comparisons_dropped += 1  # superseded before its after side filled
            before = {
                name: recent.moments()
                for name, recent in versions.recent.items()
                if recent.n >= config.compare_min
            }
            versions.pending = (
                _Pending(changes, outcome.time, before, versions.pairs, config.compare_max, versions.tasks)
                if before
                else None
            )
            alerts += [self._annotation(stream, key, change, outcome.time, before) for change in changes]
            versions.recent = {}
            versions.pairs = {}
            versions.tasks = deque()
        recents = versions.recent
        for name, x in values.items():
            recent = recents.get(name)
            if recent is None:
                recent = recents[name] = _Recent(config.compare_max)
            current = recent._current  # _Recent.add, inlined: every outcome, every signal
            current.n += 1
            delta = x - current.mean
            current.mean += delta / current.n
            current.m2 += delta * (x - current.mean)
            recent._n += 1
            if current.n >= recent.block:
                recent._roll()
        task_id = outcome.task_id
        if task_id is not None and values:
            last = versions.pairs.pop(task_id, None) or {}
            last.update(values)
            versions.pairs[task_id] = last  # re-inserted: the dict's order is the order of last use
            if len(versions.pairs) > config.compare_max:
                del versions.pairs[next(iter(versions.pairs))]
            binary = {name: x for name, x in values.items() if SIGNALS[name] == "binary"}
            if binary:
                versions.tasks.append((task_id, binary))
                if len(versions.tasks) > config.compare_max:
                    versions.tasks.popleft()
        pending = versions.pending
        if pending is not None:
            pending.add(values, task_id)
            if pending.full or pending.seen >= 4 * config.compare_max:
                versions.pending = None
                alerts += self._compare_versions(stream, key, pending, outcome.time)
        return alerts

    def _annotation(
        self, stream: _Stream, key: str, change: dict[str, str], at: float, before: dict[str, Moments]
    ) -> Alert:
        marker, old, new = change["marker"], change["before"], change["after"]
        none = Estimate(0.0, 0, 0.0, 0.0)
        alert = Alert(
            id=alert_id(key, marker, f"{old}->{new}", at, kind="version_change"),
            status="annotation",
            stream=dict(stream.labels),
            signal=marker,
            direction="none",
            detected_at=at,
            change_at=at,
            baseline=none,
            current=none,
            effect=0.0,
            effect_ci=(0.0, 0.0),
            p_value=None,
            detector={"name": "version_marker"},
            message="",
            extra={**change, "compare": sorted(before)},
            kind="version_change",
        )
        if before:
            sizes = ", ".join(f"{name} n={m.n}" for name, m in sorted(before.items()))
            plan = f"comparing before ({sizes}) with up to as many observations after"
        else:
            plan = f"no comparison: fewer than {self.config.compare_min} observations of any signal before it"
        return dataclasses.replace(alert, message=f"{describe(alert)}; {plan}")

    def _compare_versions(self, stream: _Stream, key: str, pending: _Pending, at: float) -> list[Alert]:
        """One alert per signal: two-sided before/after test, Benjamini–Hochberg across the signals."""
        config = self.config
        results: list[tuple[str, SignalKind, Comparison, str, int]] = []
        for name, before in pending.before.items():
            after = pending.after[name]
            if after.n < config.compare_min:
                continue  # only when the comparison timed out: this signal stopped arriving
            kind = SIGNALS[name]
            full = compare_kind(kind, before, after, "two-sided")
            pairs = pending.pairs(name)
            n_pairs = len(pairs) if len(pairs) >= MIN_PAIRS else 0
            strata = pending.stratified(name) if kind == "binary" else None
            if strata is not None:
                # Recurring tasks: every outcome counts, compared within its task.
                test, n_pairs = "cochran-mantel-haenszel", len(strata)
                full = compare_stratified_binary(strata)
            elif n_pairs:
                # The same tasks on both sides: a paired test removes the task-to-task spread.
                if kind == "binary":
                    paired, test = compare_paired_binary(pairs), "mcnemar-exact"
                else:
                    paired, test = compare_paired_means(pairs, scale=kind), "paired-t"
                full = Comparison(
                    full.baseline, full.current, paired.effect, paired.effect_ci, paired.p_value
                )
            else:
                test = "two-proportion-z" if kind == "binary" else "welch-t"
            results.append((name, kind, full, test, n_pairs))
        if not results:
            self.stats.comparisons_dropped += 1
            return []
        self.stats.comparisons_completed += 1
        p_values = [c.p_value for _, _, c, _, _ in results]
        q_values = benjamini_hochberg(p_values)
        what = changes_text(pending.changes)
        alerts = []
        for (name, kind, comparison, test, n_pairs), p, q in zip(results, p_values, q_values, strict=True):
            differs = q <= config.compare_alpha
            neutral = _neutral(kind)
            direction = (
                "up" if comparison.effect > neutral else "down" if comparison.effect < neutral else "none"
            )
            before, after = pending.before[name], pending.after[name]
            alert = Alert(
                id=alert_id(key, name, what, pending.at, kind="version_comparison"),
                status="confirmed" if differs else "resolved",
                stream=dict(stream.labels),
                signal=name,
                direction=direction,
                detected_at=at,
                change_at=pending.at,
                baseline=comparison.baseline,
                current=comparison.current,
                effect=comparison.effect,
                effect_ci=comparison.effect_ci,
                p_value=p,
                detector={"name": test, "alpha": config.compare_alpha, "correction": "benjamini-hochberg"},
                message="",
                delay=after.n,
                extra={
                    "changes": pending.changes,
                    "test": test,
                    "pairs": n_pairs,
                    "before_n": before.n,
                    "after_n": after.n,
                    "q_value": q,
                    "bh_m": len(results),
                    "bh_rank": sum(1 for other in p_values if other <= p),
                    "compare_alpha": config.compare_alpha,
                },
                kind="version_comparison",
            )
            on = (
                f"{before.n} observations before, {after.n} after, within {n_pairs} tasks"
                if test == "cochran-mantel-haenszel"
                else f"{n_pairs} paired tasks"
                if n_pairs
                else f"{before.n} observations before, {after.n} after"
            )
            verdict = (
                f"differs ({test} on {on}, q={q:.2g} <= {config.compare_alpha})"
                if differs
                else f"no difference found ({test} on {on}, q={q:.2g} > {config.compare_alpha})"
            )
            alerts.append(dataclasses.replace(alert, message=f"{describe(alert)}; {verdict}"))
        return alerts
