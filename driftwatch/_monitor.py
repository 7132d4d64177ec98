"""The monitor: routes outcomes by stream to one detector per (stream, signal), confirms, alerts.

The agent's call path only enqueues (``submit``): a bounded queue, never blocking, drops counted.
Detection runs on one background thread, or synchronously through ``process`` (replay, tests).

A change of a version marker (model, app version, effort, provider) inside a stream is annotated
and starts a before/after comparison of every watched signal; detection carries on across it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from driftwatch._alerting.alerts import (
    Alert,
    AlertSink,
    Status,
    alert_id,
    changes_text,
    describe,
    stamp_resolved,
)
from driftwatch._config import Config
from driftwatch._errors import StateError
from driftwatch._outcome import SIGNALS, Outcome, SignalKind
from driftwatch._snapshot import dumps, loads
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
    within_margin,
)
from driftwatch.detectors import LaggedSR
from driftwatch.detectors._sequential import SequentialConfirm

__all__ = ["Monitor", "MonitorStats", "stream_key", "stream_labels"]

log = logging.getLogger("driftwatch")

_OUTCOME_FIELDS = frozenset(f.name for f in dataclasses.fields(Outcome))
#: Task ids seen on both sides of a version change before a comparison pairs them.
MIN_PAIRS = 10
#: Decided stage-two p-values kept for Benjamini–Hochberg; older ones count as p = 1 (conservative).
_BH_LOG_MAX = 10_000
#: How long the worker waits for more outcomes between batches while outcomes keep coming (see
#: Monitor.submit); after a quiet spell its wait doubles up to _IDLE_WAIT_S, so the first outcome
#: after one waits at most that long before detection.
_BATCH_WAIT_S = 0.05
_IDLE_WAIT_S = 1.0
#: Queued outcomes that wake the worker at once: enough to share one wake-up among many outcomes,
#: few enough that a burst is drained long before the queue (queue_size) overflows.
_WAKE_AT = 256
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
#: Format of ``Monitor.snapshot``; ``restore`` refuses those outside ``READABLE_FORMATS``. A snapshot
#: pickles the monitor's state classes (_Stream, _SignalWatch, LaggedSR, ...): bump this when their
#: attributes change, and give the classes defaults for what older formats lack (``__setstate__``).
SNAPSHOT_FORMAT = 5
#: Older formats ``restore`` still reads: the state classes fill the attributes those lacked.
READABLE_FORMATS = (3, 4, SNAPSHOT_FORMAT)
#: Settings that change what a restored monitor would alert on: a snapshot only restores under equal ones.
SNAPSHOT_SETTINGS = (
    "budget",
    "warmup",
    "lag",
    "signals",
    "stream_labels",
    "confirm_alpha",
    "withdraw_beta",
    "min_shift",
    "max_fresh",
    "confirm_min",
    "confirm_max",
    "version_markers",
    "compare_min",
    "compare_max",
    "compare_alpha",
)
#: Settings whose meaning format 5 changed or added (stage two became sequential): a snapshot of an
#: older format restores whatever they are now (its suspected alerts go on under the new test).
_FORMAT_5_SETTINGS = frozenset({"confirm_alpha", "withdraw_beta", "min_shift", "max_fresh"})


def stream_labels(outcome: Outcome, extra: Sequence[str] = ()) -> dict[str, str]:
    """The labels that name an outcome's stream: service and task (+ ``kind=call`` for API calls)."""
    labels = {"service": outcome.service, "task": outcome.task}
    if outcome.kind == "call":
        labels["kind"] = "call"
    for name in extra:
        value = outcome.labels.get(name)
        if value is not None:
            labels[name] = value
    return labels


def _key(labels: dict[str, str]) -> str:
    return ";".join(f"{k}={v}" for k, v in labels.items())


def stream_key(outcome: Outcome, extra: Sequence[str] = ()) -> str:
    """The pre-joined stream key (``service=…;task=…``), exported as ``driftwatch.stream_key`` so that
    a Collector's load-balancing exporter can route every outcome of a stream to one instance."""
    return _key(stream_labels(outcome, extra))


def transform(kind: SignalKind, value: float) -> float:
    """The scale detection works on: 0/1, log, log1p (counts) or as is."""
    if kind == "binary":
        return 1.0 if value else 0.0
    if kind == "log":
        return math.log(max(value, 1e-9))
    if kind == "count":
        return math.log1p(max(value, 0.0))
    return value


@dataclass
class MonitorStats:
    """Counters a user can read (and the OTel sink exports): nothing is dropped silently."""

    received: int = 0
    processed: int = 0
    dropped_queue_full: int = 0
    dropped_stream_cap: int = 0
    sink_errors: int = 0
    internal_errors: int = 0
    comparisons_completed: int = 0
    comparisons_dropped: int = 0
    """Before/after comparisons abandoned: another version change came first, or the after side
    never filled (``4 * compare_max`` outcomes without ``compare_min`` observations of any signal)."""
    alerts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "processed": self.processed,
            "dropped_queue_full": self.dropped_queue_full,
            "dropped_stream_cap": self.dropped_stream_cap,
            "sink_errors": self.sink_errors,
            "internal_errors": self.internal_errors,
            "comparisons_completed": self.comparisons_completed,
            "comparisons_dropped": self.comparisons_dropped,
            "alerts": dict(self.alerts),
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
    return), each at ``confirm_alpha``. A lucky run at the changed level, which a CUSUM against an
    estimated level meets more often than its threshold promises, does not close a real incident
    that way, nor does a partial recovery: fresh observations that left the changed level but still
    differ from the baseline are a new level (``Monitor._new_level``).
    """

    __slots__ = (
        "alert",
        "base",
        "checking",
        "cusum",
        "fresh",
        "hit",
        "level",
        "miss",
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
        self.fit(kind)

    def __setstate__(self, state: Any) -> None:
        # Format 3 snapshots predate ``since_at`` and ``tolerance``: the detection time stands in
        # for the first, the tolerance the recovery would have been created with for the second.
        _set_slots(self, state)
        if not hasattr(self, "since_at"):
            self.since_at = self.alert.detected_at
        if not hasattr(self, "tolerance"):
            self.tolerance = RECOVERY_TOLERANCE * abs(self.base.mean - self.level.mean)

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
        "test",
    )

    def __init__(self, kind: SignalKind, config: Config) -> None:
        self.kind = kind
        self.detector = LaggedSR(
            kind="binary" if kind == "binary" else "numeric",
            warmup=config.warmup,
            lag=config.lag,
            budget=config.budget,
        )
        self.active: Alert | None = None  # a suspected alert awaiting confirmation
        self.baseline = Moments()
        self.history = Moments()  # everything the detector had seen when it raised the alarm
        self.fresh = Moments()  # observations since the alarm, while suspected
        # Stage two of the suspected alert: decides on the fresh observations (None: not yet made,
        # for a suspected alert restored from a format-4 snapshot; _observe makes it).
        self.test: SequentialConfirm | None = None
        # A confirmed change back towards a harmful open alert's baseline: the observations after
        # the decision, on which where it went is decided (the confirming ones stopped selectively).
        self.post: Moments | None = None
        # While suspected: (event number when suspected, decisions made by then), for BH in _confirm.
        self.opened: tuple[int, int] = (0, 0)
        self.open: _Recovery | None = None  # a confirmed alert not yet resolved
        self.episodes = 0  # drift episodes raised so far: part of each alert id, so ids never repeat

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
        self._current.add(x)
        self._n += 1
        if self._current.n >= self.block:
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


class _Stream:
    __slots__ = ("labels", "versions", "watches")

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.watches: dict[str, _SignalWatch] = {}
        self.versions = _Versions()


def _marker_value(outcome: Outcome, name: str) -> str | None:
    """A version marker's value: the Outcome attribute of that name, else the label."""
    value = getattr(outcome, name) if name in _OUTCOME_FIELDS else outcome.labels.get(name)
    return None if value is None or value == "" else str(value)


def _open_alerts(streams: Iterable[_Stream]) -> list[Alert]:
    """The open drift alerts of ``streams``: each confirmed one not yet resolved, each suspected one."""
    out: list[Alert] = []
    for stream in streams:
        for watch in stream.watches.values():
            if watch.open is not None:
                out.append(watch.open.alert)
            if watch.active is not None:
                out.append(watch.active)
    return out


def _harmful(signal: str, direction: str) -> bool:
    """Whether a change of ``signal`` in ``direction`` hurts (both directions do for counts)."""
    return HARMFUL.get(signal, direction) == direction


def _neutral(kind: SignalKind) -> float:
    """The effect of no change: a ratio of 1 on log scales, else a difference of 0."""
    return 1.0 if kind in ("log", "count") else 0.0


class Monitor:
    """Watches outcome streams for change and sends alerts to sinks. Never raises into the caller.

    Two stages (design.md): a calibrated detector raises ``suspected`` at the false-alarm budget;
    a one-sided test on *fresh* observations after the alarm (never the ones that raised it) turns
    it ``confirmed`` or ``resolved``, with Benjamini–Hochberg across the candidates open at the same
    time. The detector then restarts on the new regime. Version-marker changes are annotated and
    followed by a two-sided before/after comparison of every signal (``kind="version_comparison"``).
    """

    def __init__(
        self, config: Config | None = None, sinks: Iterable[AlertSink] = (), *, threaded: bool = True
    ):
        self.config = config or Config()
        self.sinks: list[AlertSink] = list(sinks)
        # Sinks that also want every outcome (e.g. to count it as a metric), found once.
        observers = (getattr(s, "record_outcome", None) for s in self.sinks)
        self._outcome_observers = [record for record in observers if callable(record)]
        self.stats = MonitorStats()
        self._streams: dict[str, _Stream] = {}
        self._signals = [(s, SIGNALS[s]) for s in self.config.signals]
        # Benjamini–Hochberg across concurrent stage-two candidates (see _confirm): an event counter,
        # the open candidates (their event numbers when suspected, also kept in each watch's
        # ``opened``, so that the set survives a snapshot and restore), decided p-values.
        self._bh_events = 0
        self._bh_open: set[int] = set()
        self._bh_decided: deque[tuple[int, float]] = deque(maxlen=_BH_LOG_MAX)
        self._bh_decided_total = 0
        self._side: list[Alert] = []  # alerts raised along the way within one process() call
        self._lock = threading.Lock()  # serialises process() between the worker and direct callers
        # A plain deque and a wake-up event, not queue.Queue: waking the worker for each outcome (a
        # condition variable, then a GIL hand-off) cost the calling thread more than detection itself.
        # The worker drains in batches: at _WAKE_AT queued (or a quarter of the queue), else on its timer.
        self._queue: deque[Outcome | threading.Event | None] = deque()
        self._wake = threading.Event()
        self._wake_at = max(1, min(_WAKE_AT, self.config.queue_size // 4))
        self._thread: threading.Thread | None = None
        self._closed = False
        self._warned_cap = False
        # Checkpoints pickle each stream on its own and keep the bytes until the stream next sees an
        # outcome, so a snapshot costs time in proportion to the streams touched since the last one.
        self._stream_blobs: dict[str, bytes] = {}
        if threaded:
            self._thread = threading.Thread(target=self._run, name="driftwatch-monitor", daemon=True)
            self._thread.start()

    # -- the agent's side: cheap, never blocks, never raises ------------------------------------
    def submit(self, outcome: Outcome) -> bool:
        """Queue one outcome for detection. Returns False (and counts it) when it had to be dropped."""
        self.stats.received += 1
        if self._thread is None:
            self.process(outcome)
            return True
        pending = self._queue
        # Check then append: agent threads racing here can overshoot the bound by one each.
        if len(pending) >= self.config.queue_size:
            self.stats.dropped_queue_full += 1
            return False
        pending.append(outcome)  # atomic under the GIL; no lock, no notify
        if len(pending) >= self._wake_at:
            self._wake.set()
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far has been processed; False on timeout."""
        if self._thread is None or not self._thread.is_alive():
            return True
        marker = threading.Event()
        self._queue.append(marker)  # markers carry no outcome, so the bound does not apply to them
        self._wake.set()
        return marker.wait(timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Process what is queued (up to ``timeout``), stop the worker and shut the sinks down."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self.flush(timeout)
            self._queue.append(None)
            self._wake.set()
            self._thread.join(timeout)
        for sink in self.sinks:
            try:
                sink.shutdown()
            except Exception:
                self.stats.sink_errors += 1
                log.warning("driftwatch: sink %r failed to shut down", sink, exc_info=True)

    def _run(self) -> None:
        pending = self._queue
        wait = _BATCH_WAIT_S
        while True:
            self._wake.wait(wait)
            self._wake.clear()
            if not pending:
                # Quiet: wake less and less often (each wake-up takes the GIL from the agent).
                wait = min(wait * 2, _IDLE_WAIT_S)
                continue
            wait = _BATCH_WAIT_S
            while pending:
                item = pending.popleft()
                if item is None:
                    return
                if isinstance(item, threading.Event):
                    item.set()
                    continue
                self.process(item)

    # -- checkpoints ----------------------------------------------------------------------------
    def stream_keys(self) -> list[str]:
        """The keys of the streams watched now (``service=…;task=…``), as ``snapshot(keys=…)`` takes them."""
        with self._lock:
            return list(self._streams)

    def snapshot(self, keys: Iterable[str] | None = None) -> bytes:
        """Everything that decides future alerts, as bytes for ``restore`` (all) or ``merge`` (``keys``).

        That is each stream's detectors, suspected alerts awaiting confirmation, version-tracking
        state, the Benjamini–Hochberg bookkeeping and the stats; not the queue, thread or sinks.
        With ``keys``, only those streams (keys not watched here are left out): for moving streams
        to another instance. Taken under the processing lock, so it is consistent with the
        outcomes processed so far; call it between ``process`` calls for an exact checkpoint.
        """
        head, streams = self._snapshot_parts(keys)
        return dumps({**head, "streams": streams})

    def _snapshot_parts(self, keys: Iterable[str] | None = None) -> tuple[dict[str, Any], dict[str, bytes]]:
        """The snapshot without its streams, and each stream's bytes (the same object while unchanged).

        The durable driver stores only the streams whose bytes changed since its last checkpoint.
        """
        with self._lock:
            partial = keys is not None
            wanted = list(self._streams) if keys is None else [k for k in keys if k in self._streams]
            blobs = self._stream_blobs
            streams = {}
            for key in wanted:
                blob = blobs.get(key)
                if blob is None:
                    blob = blobs[key] = dumps(self._streams[key])
                streams[key] = blob
            head = {
                "format": SNAPSHOT_FORMAT,
                "settings": {name: getattr(self.config, name) for name in SNAPSHOT_SETTINGS},
                "partial": partial,
                # Copies: the head may be pickled after the lock is released.
                "bh": (self._bh_events, set(self._bh_open), list(self._bh_decided), self._bh_decided_total),
                "stats": None if partial else dataclasses.replace(self.stats, alerts=dict(self.stats.alerts)),
                "warned_cap": self._warned_cap,
            }
            return head, streams

    def restore(self, blob: bytes) -> None:
        """Replace this monitor's state with a full ``snapshot``; raises StateError when it does not fit.

        Refused: a blob that is not a monitor snapshot, another snapshot format, a subset snapshot
        (use ``merge``), or settings that differ from this monitor's (named in the message).
        The sinks and the worker thread stay as they are.
        """
        self._restore_state(self._read_snapshot(blob))

    def _restore_state(self, state: dict[str, Any]) -> None:
        if state["partial"]:
            raise StateError("monitor snapshot: holds a subset of streams; merge() it instead of restore()")
        events, open_events, decided, decided_total = state["bh"]
        streams = self._read_streams(state)
        with self._lock:
            self._streams = streams
            self._stream_blobs = dict(state["streams"])
            self._bh_events = int(events)
            self._bh_open = set(open_events)
            self._bh_decided = deque(decided, maxlen=_BH_LOG_MAX)
            self._bh_decided_total = int(decided_total)
            # In place: whoever holds this monitor's stats object (an exporter) keeps seeing them.
            saved: MonitorStats = state["stats"]
            for f in dataclasses.fields(MonitorStats):
                setattr(self.stats, f.name, getattr(saved, f.name))
            self._warned_cap = bool(state["warned_cap"])
        self._announce_restored(streams.values())

    def merge(self, blob: bytes, keys: Iterable[str] | None = None) -> list[str]:
        """Add the streams of a ``snapshot`` (full or ``keys=…``) taken on another monitor; their keys.

        With ``keys``, only those of its streams (the others are ignored).

        For scale-out: the streams of a removed instance go on here from its checkpoint. Refused
        (StateError, nothing changed) when a stream is already watched here, when ``max_streams``
        would be exceeded, or as ``restore`` refuses. Suspected alerts still awaiting confirmation
        join this monitor's Benjamini–Hochberg set; decisions the other instance made while they
        were open count in ``m`` as p = 1 (conservative). Stats stay this monitor's own.
        """
        state = self._read_snapshot(blob)
        if keys is not None:
            wanted = set(keys)
            state["streams"] = {k: b for k, b in state["streams"].items() if k in wanted}
        incoming = self._read_streams(state)
        _, _, _, src_decided_total = state["bh"]
        with self._lock:
            clash = sorted(set(incoming) & set(self._streams))
            if clash:
                raise StateError(
                    f"monitor snapshot: {len(clash)} of its streams are already watched here (e.g. "
                    f"{', '.join(clash[:3])}); snapshot(keys=...) only the streams this monitor lacks"
                )
            if len(self._streams) + len(incoming) > self.config.max_streams:
                raise StateError(
                    f"monitor snapshot: its {len(incoming)} streams and the {len(self._streams)} here exceed "
                    f"max_streams ({self.config.max_streams}); raise max_streams or merge fewer streams"
                )
            candidates = sorted(
                (w for stream in incoming.values() for w in stream.watches.values() if w.active is not None),
                key=lambda w: w.opened[0],
            )
            for watch in candidates:  # renumbered into this monitor's event order, oldest first
                decided_since = int(src_decided_total) - watch.opened[1]
                self._bh_events += 1
                watch.opened = (self._bh_events, self._bh_decided_total - decided_since)
                self._bh_open.add(self._bh_events)
            self._streams.update(incoming)
            # Not cached: merging may have renumbered candidates, so the blobs differ from the source's.
        self._announce_restored(incoming.values())
        return list(incoming)

    def open_alerts(self) -> list[Alert]:
        """The drift alerts open now: confirmed and not yet resolved, or suspected awaiting confirmation."""
        with self._lock:
            return _open_alerts(self._streams.values())

    def _announce_restored(self, streams: Iterable[_Stream]) -> None:
        """Hand restored open alerts to the sinks that keep state about them (``RestoringSink``).

        Without this a gauge such as ``driftwatch_drift_confirmed`` would start empty after a
        restart and close the page it drives. Only ``restore`` is called: nothing is announced
        again, so notifiers do not page twice.
        """
        restorers = [r for r in (getattr(s, "restore", None) for s in self.sinks) if callable(r)]
        if not restorers:
            return
        alerts = _open_alerts(streams)
        if alerts:
            for restore in restorers:
                self._guard(restore, alerts)

    @staticmethod
    def _read_streams(state: dict[str, Any]) -> dict[str, _Stream]:
        streams = {}
        for key, blob in state["streams"].items():
            stream = loads(blob, f"monitor snapshot, stream {key}")
            if not isinstance(stream, _Stream):
                raise StateError(f"monitor snapshot, stream {key}: not a stream; move the state file aside")
            streams[key] = stream
        return streams

    def _read_snapshot(self, blob: bytes) -> dict[str, Any]:
        return self._check_snapshot(loads(blob, "monitor snapshot"))

    def _check_snapshot(self, state: Any) -> dict[str, Any]:
        if not isinstance(state, dict) or "format" not in state:
            raise StateError("monitor snapshot: not a driftwatch monitor snapshot; move the state file aside")
        if state["format"] not in READABLE_FORMATS:
            raise StateError(
                f"monitor snapshot: format {state['format']!r}, this driftwatch reads format "
                f"{SNAPSHOT_FORMAT}; run the driftwatch version that wrote it, or move the state file "
                "aside to start afresh"
            )
        saved = state["settings"]
        older = state["format"] < 5
        differ = [
            f"{name} {saved.get(name)!r} in the snapshot, {getattr(self.config, name)!r} now"
            for name in SNAPSHOT_SETTINGS
            if saved.get(name) != getattr(self.config, name) and not (older and name in _FORMAT_5_SETTINGS)
        ]
        if differ:
            raise StateError(
                "monitor snapshot: taken with other detection settings (" + "; ".join(differ) + "); "
                "start with the settings it was taken with, or move the state file aside to start afresh "
                "(every stream then re-learns its baseline)"
            )
        result: dict[str, Any] = state
        return result

    # -- detection ------------------------------------------------------------------------------
    def process(self, outcome: Outcome) -> list[Alert]:
        """Run detection on one outcome now and return the alerts it raised. Never raises."""
        try:
            with self._lock:
                return self._process(outcome)
        except Exception:
            self.stats.internal_errors += 1
            log.warning("driftwatch: could not process an outcome", exc_info=True)
            return []

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def _process(self, outcome: Outcome) -> list[Alert]:
        labels = stream_labels(outcome, self.config.stream_labels)
        key = _key(labels)
        entry = self._streams.get(key)
        if entry is None:
            if len(self._streams) >= self.config.max_streams:
                self.stats.dropped_stream_cap += 1
                if not self._warned_cap:
                    self._warned_cap = True
                    log.warning(
                        "driftwatch: %d streams reached (max_streams); outcomes of new streams such as %s "
                        "are dropped and counted",
                        self.config.max_streams,
                        key,
                    )
                return []
            entry = _Stream(labels)
            self._streams[key] = entry
        self._stream_blobs.pop(key, None)
        labels = entry.labels
        self.stats.processed += 1
        for record in self._outcome_observers:
            self._guard(record, outcome, labels)
        values: dict[str, float] = {}
        for name, kind in self._signals:
            raw = outcome.signal(name)
            if raw is not None and math.isfinite(raw):
                values[name] = transform(kind, raw)
        alerts: list[Alert] = []
        if self.config.version_markers:
            try:
                alerts += self._track_versions(entry, key, outcome, values)
            except Exception:
                # Version tracking must never cost detection its observation.
                self.stats.internal_errors += 1
                log.warning("driftwatch: could not track version markers", exc_info=True)
        watches = entry.watches
        for name, value in values.items():
            watch = watches.get(name)
            if watch is None:
                watch = watches[name] = _SignalWatch(SIGNALS[name], self.config)
            alert = self._observe(watch, key, labels, name, value, outcome.time)
            if alert is not None:
                alerts.append(alert)
            if self._side:  # alerts closed along the way (a recovery's suspicion, a superseded page)
                alerts += self._side
                self._side = []
        if alerts:  # a resolve says when it resolved: at this outcome's event time
            alerts = [stamp_resolved(alert, outcome.time) for alert in alerts]
        for alert in alerts:
            self._emit(alert)
        return alerts

    def _observe(
        self, watch: _SignalWatch, key: str, labels: dict[str, str], name: str, value: float, at: float
    ) -> Alert | None:
        if watch.open is not None and _harmful(name, watch.open.alert.direction):
            # An open improvement has no recovery to wait for: losing it is a regression, which
            # detection against the improved level (the working baseline) finds and pages.
            recovered = self._recover(watch, key, value, at)
            if recovered is not None:
                return recovered  # this value is already in the resumed baseline
        if watch.active is not None:
            # Stage one waits while stage two decides on the fresh observations; they enter a
            # baseline only as its decision says (no contamination of the baseline by a change).
            return self._confirm(watch, key, value, at)
        detector = watch.detector
        detector.update(value, at)
        if detector.drift_detected:
            return self._suspect(watch, key, labels, name, at)
        return None

    def _recover(self, watch: _SignalWatch, key: str, value: float, at: float) -> Alert | None:
        """Feed the open alert's recovery test; the ``resolved`` alert once the stream is back.

        A partial recovery (left the changed level, still differs from the baseline) supersedes the
        open alert with one for the new level; both go out through ``_side``.
        """
        opened = watch.open
        assert opened is not None
        config = self.config
        opened.seen += 1
        if not opened.checking:
            opened.step(watch.kind, value, at)
            if opened.seen >= config.keep_firing and opened.cusum > -math.log(config.budget):
                wanted = max(opened.since.n, opened.check_size(watch.kind, RECOVERY_ALPHA))
                opened.checking = max(config.confirm_min, min(config.confirm_max, wanted))
            return None
        opened.fresh.add(value)
        if opened.fresh.n < opened.checking:
            return None
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
        watch.open = _Recovery(new, watch.kind, opened.base, level, at, opened.tolerance)
        return [resolved, new]

    def _resolve(self, watch: _SignalWatch, at: float, recovered: Moments, why: str) -> Alert:
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
                "resolved_by": "recovery",
                "recovered_after": opened.seen,
                "decided_at": at,
            },
        )
        watch.detector.resume(opened.base.merged(recovered), at)
        return resolved.with_status(
            "resolved",
            message=f"{describe(resolved)}: {why}, {opened.seen} observations after it was confirmed",
        )

    def rebaseline(self, key: str, signal: str | None = None) -> list[Alert]:
        """Accept the current level of a stream (by stream key) as its new baseline.

        Resolves its open confirmed alerts (one per signal, or just ``signal``) and lets detection
        go on from the new level. Returns the ``resolved`` alerts, which also go to the sinks.
        """
        alerts: list[Alert] = []
        with self._lock:
            stream = self._streams.get(key)
            if stream is None:
                return alerts
            for name, watch in stream.watches.items():
                opened = watch.open
                if opened is None or (signal is not None and name != signal):
                    continue
                watch.open = None
                alert = opened.alert
                alerts.append(
                    alert.with_status(
                        "resolved",
                        message=f"{describe(alert)}: re-baselined; the current level is the new baseline",
                        extra={**alert.extra, "resolved_by": "rebaseline", "resolved_at": time.time()},
                    )
                )
            for alert in alerts:
                self._emit(alert)
        return alerts

    def _compare(self, watch: _SignalWatch, base: Moments, cur: Moments, direction: str) -> Comparison:
        return self._compare_kind(watch.kind, base, cur, direction)

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
        watch.test = test = self._stage_two(watch, direction)
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
            detector=self._detector_info(watch),
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
            message=f"{describe(alert)}; suspected after {delay} observations, confirming sequentially on "
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
        self._bh_events += 1
        watch.opened = (self._bh_events, self._bh_decided_total)
        self._bh_open.add(self._bh_events)

    def _bh_decide(self, watch: _SignalWatch, p: float) -> tuple[bool, int, int]:
        """Benjamini–Hochberg bookkeeping over the stage-two candidates concurrent with this one.

        The set is this candidate, the others still open (their p-values unknown, counted as 1) and
        those decided since this one was suspected (with their p-values). With ``m`` of them and
        this p-value ranked ``k``-th, BH would confirm it when ``p <= confirm_alpha * k / m``;
        alone, that is the plain test at ``confirm_alpha``. Returns (BH's verdict, m, k).

        Stage two is sequential now and decides per candidate at ``confirm_alpha`` (each false page
        is bounded per stream by ``budget * confirm_alpha``); ``m`` and ``k`` go into the alert's
        ``extra`` as information, with the anytime p-value ``1 / likelihood ratio``, so that the
        verdicts can be checked against Benjamini–Hochberg offline. A gate here could only delay
        pages when many streams move together.
        """
        opened_at, decided_before = watch.opened
        self._bh_open.discard(opened_at)
        others_open = len(self._bh_open)
        since = [q for event, q in self._bh_decided if event > opened_at]
        # Decisions that fell out of the bounded log still count in m (as p = 1): conservative.
        m = 1 + others_open + (self._bh_decided_total - decided_before)
        k = 1 + sum(1 for q in since if q <= p) + (others_open if p >= 1.0 else 0)
        confirmed = p <= self.config.confirm_alpha * k / m
        self._bh_events += 1
        self._bh_decided.append((self._bh_events, p))
        self._bh_decided_total += 1
        # No open candidate needs decisions made before the oldest of them was suspected.
        oldest = min(self._bh_open, default=self._bh_events + 1)
        while self._bh_decided and self._bh_decided[0][0] <= oldest:
            self._bh_decided.popleft()
        return confirmed, m, k

    def _stage_two(self, watch: _SignalWatch, direction: str) -> SequentialConfirm:
        """The sequential test of a suspected change against the baseline before it."""
        config = self.config
        return SequentialConfirm(
            "binary" if watch.kind == "binary" else "numeric",
            watch.baseline,
            "up" if direction == "up" else "down",
            alpha=config.confirm_alpha,
            beta=config.withdraw_beta,
            min_shift=config.min_shift,
        )

    def _confirm(self, watch: _SignalWatch, key: str, value: float, at: float) -> Alert | None:
        """One fresh observation into stage two; the alert once it decides (else None).

        ``confirm`` pages; the detector then restarts on the fresh observations, the changed level
        being the working baseline. ``withdraw`` (evidence that the stream is at its baseline) resumes
        the old baseline extended by everything seen since: shown to be at it. Undecided after
        ``max_fresh`` fresh observations: closed as inconclusive, and the detector resumes from the
        baseline before the change only, so a suspected period never enters a baseline undecided.
        """
        suspected = watch.active
        assert suspected is not None
        test = watch.test
        if test is None:
            # Suspected under snapshot format 3 or 4 (a fixed-sample test): the ratios depend on the
            # fresh observations only through their count and sum, so the evidence carries over.
            test = watch.test = self._stage_two(watch, suspected.direction)
            test.advance(watch.fresh.n, watch.fresh.n * watch.fresh.mean)
        watch.fresh.add(value)
        post = watch.post
        if post is not None:
            post.add(value)
        test.update(value)
        decision = test.decision
        if decision == "undecided" and test.n < self.config.max_fresh:
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
        status: Status = "confirmed" if decision == "confirm" else "resolved"
        alert = suspected.with_status(
            status,
            baseline=comparison.baseline,
            current=comparison.current,
            effect=comparison.effect,
            effect_ci=comparison.effect_ci,
            p_value=p_value,
        )
        if decision == "withdraw":
            verdict = (
                f"withdrawn on {test.n} fresh observations: at the baseline (likelihood ratio of no "
                f"change against a {test.min_shift:g}-sd shift {math.exp(test.log_no_change):.3g} >= "
                f"{1 / test.beta:.3g})"
            )
            watch.detector.resume(watch.history.merged(fresh), at)
            return alert.with_status(
                status,
                message=f"{describe(alert)}; {verdict}",
                extra={**extra, "resolved_by": "withdrawn"},
            )
        if decision == "undecided":
            verdict = (
                f"inconclusive after {test.n} fresh observations: neither the change nor its absence shown "
                f"(a change smaller than {test.min_shift:g} sd, if any); detection resumes from the "
                "baseline before the alarm"
            )
            watch.detector.resume(watch.baseline, at)
            return alert.with_status(
                status,
                message=f"{describe(alert)}; {verdict}",
                extra={**extra, "resolved_by": "inconclusive"},
            )
        # Confirmed: the changed level is the working baseline of further detection.
        watch.detector.resume(Moments(fresh.n, fresh.mean, fresh.m2), at)
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
                watch.open = _Recovery(alert, watch.kind, watch.baseline, self._changed_level(watch), at)
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
        watch.open = _Recovery(alert, watch.kind, watch.baseline, self._changed_level(watch), at)
        return alert

    @staticmethod
    def _changed_level(watch: _SignalWatch) -> Moments:
        """Every observation since the estimated change: the level a page's recovery starts from.

        Not the fresh observations alone: a sequential decision can come on a handful, and it
        stops when they happen to be far out, which would set the recovery's tolerance far too wide.
        """
        return watch.history.minus(watch.baseline).merged(watch.fresh)

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

    # -- version markers ------------------------------------------------------------------------
    def _track_versions(
        self, stream: _Stream, key: str, outcome: Outcome, values: dict[str, float]
    ) -> list[Alert]:
        """Annotate version changes, keep what the next comparison needs, finish a due comparison."""
        config = self.config
        versions = stream.versions
        changes: list[dict[str, str]] = []
        for marker in config.version_markers:
            value = _marker_value(outcome, marker)
            if value is None:
                continue  # an outcome without the marker says nothing about the version
            old = versions.markers.get(marker)
            if old != value:
                versions.markers[marker] = value
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
        for name, x in values.items():
            recent = versions.recent.get(name)
            if recent is None:
                recent = versions.recent[name] = _Recent(config.compare_max)
            recent.add(x)
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
            full = self._compare_kind(kind, before, after, "two-sided")
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

    def _compare_kind(self, kind: SignalKind, base: Moments, cur: Moments, direction: str) -> Comparison:
        if kind == "binary":
            return compare_proportions(base, cur, direction)
        return compare_means(base, cur, direction, scale=kind)

    def _detector_info(self, watch: _SignalWatch) -> dict[str, Any]:
        det = watch.detector
        return {
            "name": "LaggedSR",
            "budget": det.budget,
            "threshold": det.threshold_used,
            "shifts": list(det.shifts),
            "warmup": det.warmup,
            "lag": det.lag,
            "scale": watch.kind,
        }

    def _emit(self, alert: Alert) -> None:
        # Drift alerts count by status, as before; version events by kind and status.
        name = alert.status if alert.kind == "drift" else f"{alert.kind}:{alert.status}"
        self.stats.alerts[name] = self.stats.alerts.get(name, 0) + 1
        for sink in self.sinks:
            self._guard(sink.export, alert)

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self.stats.sink_errors += 1
            log.warning("driftwatch: sink call %r failed", fn, exc_info=True)
