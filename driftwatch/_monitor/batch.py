"""Detection over a batch of outcomes (``Monitor.process_batch``): each quiet signal's values in one loop.

The worker drains its queue in batches. Per outcome, ``Monitor.process`` routes it, tracks version
markers and moves each signal's watch on through ``Lifecycle.observe``. Here the routing and version
tracking still run per outcome (``Monitor._route``, in order), but a *quiet* signal (no suspected or
open alert, the iid detector, no per-task shadow) takes all of the batch's values in one call
(``detectors/_batch.feed``), which stops right after an alarm. What is left is replayed outcome by
outcome, in the order ``process`` would have met it: the alarm's suspicion (``Lifecycle.suspect``),
every later value of that signal through ``observe``, and each outcome's alerts (version tracking's
first, then each signal's in signal order) to incidents and the sinks (``Monitor._finish``).

Why the alerts are the same as ``process``'s, outcome for outcome: a quiet watch's update reads
and writes only that watch's detector, and its value; everything shared (Benjamini–Hochberg's
events, incidents, the sinks, the current task id) is touched only at an alarm or later, and those
steps run here in ``process``'s order. ``tests/driftwatch/monitor/test_batch.py`` compares the two
paths' alerts and checkpoints on seeded streams with alarms mid-batch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from driftwatch._alerting.alerts import Alert
from driftwatch._config import Config
from driftwatch._monitor.watch import (
    EXPLAINED,
    Lifecycle,
    _harmful,
    _Recovery,
    _SignalWatch,
    recovery_step,
)
from driftwatch._outcome import Outcome, SignalKind
from driftwatch.detectors import LaggedSR
from driftwatch.detectors._batch import feed
from driftwatch.detectors._lagged_sr import season_of
from driftwatch.detectors._seasonal import Seasonal

if TYPE_CHECKING:
    from driftwatch._monitor.monitor import Monitor
    from driftwatch._monitor.stream import _Stream

__all__ = ["SMALL", "process_batch"]

#: Below this many outcomes a batch goes through ``Monitor._process`` one at a time: the loop's set-up
#: per signal costs more than it saves (the same alerts either way).
SMALL = 4


class _Run:
    """One watch's values in a batch: the values, their times and the outcomes they came from."""

    __slots__ = ("name", "order", "rows", "times", "values", "watch")

    def __init__(self, watch: _SignalWatch, name: str, order: int) -> None:
        self.watch = watch
        self.name = name
        self.order = order  # the signal's place in an outcome's values: its alerts' order
        self.values: list[float] = []
        self.times: list[float] = []
        self.rows: list[int] = []


class _Recovering:
    """The recovery check of a watch's open (harmful) alert, fed alongside its detector
    (``detectors/_batch.Gate``): each value goes into it first, as ``Lifecycle._observe`` does; the
    value on which it must decide is left to ``observe``."""

    __slots__ = ("config", "harmful", "kind", "opened", "season")

    def __init__(
        self, opened: _Recovery, kind: SignalKind, config: Config, season: Seasonal | None, harmful: bool
    ) -> None:
        self.opened = opened
        self.kind = kind
        self.config = config
        self.season = season
        self.harmful = harmful

    def blocked(self) -> bool:
        """Whether ``recovery_step`` decides on the next value (``Lifecycle._recover`` must take it)."""
        opened = self.opened
        if opened.explain is not None and opened.explained() >= EXPLAINED:
            return True
        return bool(opened.checking) and opened.fresh.n + 1 >= opened.checking

    def step(self, seen: float, t: float) -> None:
        season = self.season
        if season is not None and season.moves != self.opened.moves:
            self.opened.reexpress(self.kind, season, t)
        recovery_step(self.opened, self.kind, self.config, seen, t, self.harmful)


def _suspect(
    lifecycle: Lifecycle, watch: _SignalWatch, key: str, labels: dict[str, str], name: str, at: float
) -> list[Alert]:
    """``Lifecycle.observe``'s end for a watch whose detector already took the value and alarmed."""
    alerts = [lifecycle._suspect(watch, key, labels, name, at)]
    if lifecycle._side:
        alerts += lifecycle._side
        lifecycle._side = []
    return alerts


def process_batch(monitor: Monitor, outcomes: list[Outcome]) -> list[Alert]:
    """``monitor.process`` of each outcome in turn, as one pass (call under the monitor's lock)."""
    if len(outcomes) < SMALL:
        return [alert for outcome in outcomes for alert in monitor._process(outcome)]
    rows: list[tuple[Outcome, _Stream, str, dict[str, str], list[Alert]]] = []
    runs: list[_Run] = []
    by_stream: dict[int, dict[str, _Run]] = {}  # id(stream) -> signal -> its run (streams outlive the batch)
    order = {name: i for i, (name, _) in enumerate(monitor._signals)}
    route = monitor._route
    for outcome in outcomes:
        routed = route(outcome)
        if routed is None:
            continue
        entry, key, labels, values, version_alerts = routed
        row = len(rows)
        rows.append((outcome, entry, key, labels, version_alerts))
        stream_runs = by_stream.get(id(entry))
        if stream_runs is None:
            stream_runs = by_stream[id(entry)] = {}
        for name, value in values.items():
            run = stream_runs.get(name)
            if run is None:
                watch = entry.watches.get(name)
                if watch is None:
                    watch = monitor._new_watch(entry, name, outcome.task_id)
                run = stream_runs[name] = _Run(watch, name, order[name])
                runs.append(run)
            run.values.append(value)
            run.rows.append(row)
    times = [row[0].time for row in rows]
    # Each quiet watch takes its values in one loop, up to and including an alarm; the rest of its
    # values (all of them for a watch that is not quiet) wait for the replay below.
    later: dict[int, list[tuple[int, bool, _Run, int]]] = {}
    config = monitor.config
    for run in runs:
        run.times = [times[row] for row in run.rows]
        watch, start = run.watch, 0
        detector = watch.detector
        if watch.active is None and watch.shadow is None and type(detector) is LaggedSR:
            opened = watch.open
            gate = None
            if opened is not None:
                harmful = _harmful(run.name, opened.alert.direction)
                gate = _Recovering(opened, watch.kind, config, season_of(detector), harmful)
            start = feed(detector, run.values, run.times, 0, len(run.values), gate)
            if math.isnan(watch.since):  # as Lifecycle._observe: the first value's time
                watch.since = next((t for t in run.times[:start] if not math.isnan(t)), math.nan)
            if detector.drift_detected:
                later.setdefault(run.rows[start - 1], []).append((run.order, True, run, start - 1))
        for i in range(start, len(run.values)):
            later.setdefault(run.rows[i], []).append((run.order, False, run, i))
    lifecycle = monitor._lifecycle
    raised: list[Alert] = []
    for row, (outcome, entry, key, labels, alerts) in enumerate(rows):
        steps = later.get(row)
        if steps is not None:
            lifecycle.task = outcome.task_id
            for _, alarmed, run, i in sorted(steps, key=lambda step: step[0]):
                at = run.times[i]
                if alarmed:
                    alerts += _suspect(lifecycle, run.watch, key, labels, run.name, at)
                else:
                    alerts += lifecycle.observe(run.watch, key, labels, run.name, run.values[i], at)
        if alerts:
            raised += monitor._finish(entry, outcome, alerts)
    if rows:
        lifecycle.task = rows[-1][0].task_id  # as process leaves it
    return raised
