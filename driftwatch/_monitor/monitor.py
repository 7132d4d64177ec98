"""The monitor: routes outcomes by stream to one detector per (stream, signal), confirms, alerts.

The agent's call path only enqueues (``submit``): a bounded queue, never blocking, drops counted
(``worker``). Detection runs on one background thread, or synchronously through ``process``
(replay, tests). Here: routing and the stream cap, the public API (checkpoints included) and the
fan-out to sinks; each signal's lifecycle is in ``watch``, version tracking in ``versions``.

A change of a version marker (model, app version, effort, provider) inside a stream is annotated
and starts a before/after comparison of every watched signal; detection carries on across it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import operator
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from driftwatch._alerting.alerts import Alert, AlertSink, describe, stamp_resolved
from driftwatch._config import Config
from driftwatch._errors import StateError
from driftwatch._monitor.batch import process_batch
from driftwatch._monitor.fdr import Fdr
from driftwatch._monitor.incidents import Incidents
from driftwatch._monitor.snapshot import (
    SNAPSHOT_FORMAT,
    SNAPSHOT_SETTINGS,
    check_snapshot,
    dumps,
    loads,
    read_incidents,
    read_streams,
)
from driftwatch._monitor.stream import _Stream, open_alerts
from driftwatch._monitor.versions import VersionTracker
from driftwatch._monitor.watch import Lifecycle, _SignalWatch
from driftwatch._monitor.worker import Worker
from driftwatch._outcome import SIGNALS, Outcome, PendingOutcome, SignalKind, labels_key, stream_labels
from driftwatch._stats import Moments

__all__ = ["Monitor", "MonitorStats", "SignalState", "transform"]

log = logging.getLogger("driftwatch")
_isfinite, _ln, _log1p = math.isfinite, math.log, math.log1p


def _reader(names: list[str]) -> Callable[[Outcome], tuple[Any, ...]]:
    """``lambda outcome: tuple(getattr(outcome, name) for name in names)``, as one C call."""
    if len(names) > 1:
        return operator.attrgetter(*names)
    if names:
        one = operator.attrgetter(names[0])
        return lambda outcome: (one(outcome),)
    return lambda outcome: ()


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


@dataclass(frozen=True, slots=True)
class SignalState:
    """One (stream, signal) for a status view: ``Monitor.signal_states``.

    ``state``: ``warming_up``, ``quiet``, ``suspected`` or ``confirmed``; ``baseline`` and
    ``current`` are moments on the detection scale (``transform``): for a quiet signal the
    detector's reference and its last ``lag`` observations (sharing their pooled spread), for a
    suspected one the baseline and the fresh observations since, for a confirmed one the
    baseline and the changed level. ``alert``: the suspected or open confirmed alert.
    """

    signal: str
    kind: SignalKind
    state: str
    n: int
    baseline: Moments
    current: Moments
    alert: Alert | None


def _states(stream: _Stream) -> list[SignalState]:
    out = []
    for name, watch in stream.watches.items():
        det, opened, kind = watch.detector, watch.open, watch.kind
        if opened is not None:
            cur = opened.level.merged(opened.since)
            state, alert, base = "confirmed", opened.alert, opened.base
        elif watch.active is not None:
            state, alert, base, cur = "suspected", watch.active, watch.baseline, watch.fresh
        else:
            seen, ref = det.observed, det.state()
            bn, cn = int(ref["baseline_n"]), seen.n - int(ref["baseline_n"])
            cm = (seen.n * seen.mean - bn * ref["baseline_mean"]) / cn if cn > 0 else 0.0
            state, alert = ("warming_up" if det.warming_up else "quiet"), None
            base = Moments(bn, ref["baseline_mean"], seen.var * max(bn - 1, 0))
            cur = Moments(cn, cm, seen.var * max(cn - 1, 0))
        copies = Moments(base.n, base.mean, base.m2), Moments(cur.n, cur.mean, cur.m2)
        out.append(SignalState(name, kind, state, det.n, *copies, alert))
    return out


def _keep_incidents(stream: _Stream, alerts: list[Alert]) -> None:
    """Put each alert's incident id on the copy its watch keeps (checkpoints carry it to the resolve)."""
    for alert in alerts:
        watch = stream.watches.get(alert.signal)
        if watch is None or alert.kind != "drift":
            continue
        if watch.active is not None and watch.active.id == alert.id:
            watch.active = alert
        if watch.open is not None and watch.open.alert.id == alert.id and alert.status != "resolved":
            watch.open.alert = alert


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
        # Every watched signal's raw value in one call: a tuple, whatever the number of signals.
        self._read_signals: Callable[[Outcome], tuple[Any, ...]] = _reader(self.config.signals)
        # Benjamini–Hochberg across concurrent stage-two candidates (see watch.Lifecycle._confirm).
        self._fdr = Fdr(self.config)
        self._lifecycle = Lifecycle(self.config, self._fdr)
        self._versions = VersionTracker(self.config, self.stats)
        # One incident per cause: alerts of one task (or one version change) close in time.
        self._incidents = Incidents(self.config.incident_window_s)
        self._lock = threading.Lock()  # serialises process() between the worker and direct callers
        self._closed = False
        self._warned_cap = False
        # Checkpoints pickle each stream on its own and keep the bytes until the stream next sees an
        # outcome, so a snapshot costs time in proportion to the streams touched since the last one.
        self._stream_blobs: dict[str, bytes] = {}
        # (service, task, kind, stream label values) -> the stream's labels and key (``_stream_of``).
        self._keys: dict[tuple[str | None, ...], tuple[dict[str, str], str]] = {}
        self._worker = Worker(self._work, self.config.queue_size) if threaded else None

    # -- the agent's side: cheap, never blocks, never raises ------------------------------------
    def submit(self, outcome: Outcome | PendingOutcome) -> bool:
        """Queue one outcome for detection. Returns False (and counts it) when it had to be dropped.

        A ``PendingOutcome`` is built on the monitor's thread, right before its detection.
        """
        self.stats.received += 1
        worker = self._worker
        if worker is None:
            self._work([outcome])
            return True
        if worker.put(outcome):
            return True
        self.stats.dropped_queue_full += 1
        return False

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far has been processed; False on timeout."""
        return True if self._worker is None else self._worker.flush(timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Process what is queued (up to ``timeout``), stop the worker and shut the sinks down."""
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._worker.stop(timeout)
        for sink in self.sinks:
            try:
                sink.shutdown()
            except Exception:
                self.stats.sink_errors += 1
                log.warning("driftwatch: sink %r failed to shut down", sink, exc_info=True)

    def _work(self, items: list[Outcome | PendingOutcome]) -> None:
        outcomes: list[Outcome] = []
        for item in items:
            if not isinstance(item, Outcome):
                try:
                    item = item.outcome()
                except Exception:
                    self.stats.internal_errors += 1
                    log.warning("driftwatch: could not build a queued outcome", exc_info=True)
                    continue
            outcomes.append(item)
        if (
            "process" in self.__dict__
        ):  # a wrapped ``process`` (a test's spy) sees each of the worker's outcomes
            for outcome in outcomes:
                self.process(outcome)
        else:
            self.process_batch(outcomes)

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
        head, streams = self.snapshot_parts(keys)
        return dumps({**head, "streams": streams})

    def snapshot_parts(self, keys: Iterable[str] | None = None) -> tuple[dict[str, Any], dict[str, bytes]]:
        """The snapshot without its streams, and each stream's bytes (the same object while unchanged).

        The durable driver stores only the streams whose bytes changed since its last checkpoint;
        ``restore_state`` takes the head back with ``"streams"`` set to this mapping.
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
                "bh": self._fdr.state(),
                "stats": None if partial else dataclasses.replace(self.stats, alerts=dict(self.stats.alerts)),
                "warned_cap": self._warned_cap,
                # Bytes: a copy of the incidents (version changes seen, who moved) taken under the lock.
                "incidents": dumps(self._incidents),
            }
            return head, streams

    def restore(self, blob: bytes) -> None:
        """Replace this monitor's state with a full ``snapshot``; raises StateError when it does not fit.

        Refused: a blob that is not a monitor snapshot, another snapshot format, a subset snapshot
        (use ``merge``), or settings that differ from this monitor's (named in the message).
        The sinks and the worker thread stay as they are.
        """
        self.restore_state(loads(blob, "monitor snapshot"))

    def restore_state(self, state: Any) -> None:
        """``restore`` from a snapshot already unpickled: ``snapshot_parts``' head with its streams."""
        state = check_snapshot(state, self.config)
        if state["partial"]:
            raise StateError("monitor snapshot: holds a subset of streams; merge() it instead of restore()")
        streams = read_streams(state)
        with self._lock:
            self._streams = streams
            self._stream_blobs = dict(state["streams"])
            self._fdr.load(state["bh"])
            # In place: whoever holds this monitor's stats object (an exporter) keeps seeing them.
            saved: MonitorStats = state["stats"]
            for f in dataclasses.fields(MonitorStats):
                setattr(self.stats, f.name, getattr(saved, f.name))
            self._warned_cap = bool(state["warned_cap"])
            incidents = state.get("incidents")  # format 7: before, rebuilt from the open alerts
            if isinstance(incidents, bytes):
                self._incidents = read_incidents(incidents, self.config.incident_window_s)
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
        state = check_snapshot(loads(blob, "monitor snapshot"), self.config)
        if keys is not None:
            wanted = set(keys)
            state["streams"] = {k: b for k, b in state["streams"].items() if k in wanted}
        incoming = read_streams(state)
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
                self._fdr.adopt(watch, int(src_decided_total))
            self._streams.update(incoming)
            # Not cached: merging may have renumbered candidates, so the blobs differ from the source's.
        self._announce_restored(incoming.values())
        return list(incoming)

    def open_alerts(self) -> list[Alert]:
        """The drift alerts open now: confirmed and not yet resolved, or suspected awaiting confirmation."""
        with self._lock:
            return open_alerts(self._streams.values())

    def signal_states(
        self, keys: Iterable[str] | None = None
    ) -> dict[str, tuple[dict[str, str], list[SignalState]]]:
        """Each stream's labels and signals as a status view reads them (a copy; detection is untouched)."""
        with self._lock:
            wanted = list(self._streams) if keys is None else [k for k in keys if k in self._streams]
            return {k: (dict(self._streams[k].labels), _states(self._streams[k])) for k in wanted}

    def _announce_restored(self, streams: Iterable[_Stream]) -> None:
        """Hand restored open alerts to the sinks that keep state about them (``RestoringSink``).

        Without this a gauge such as ``driftwatch_drift_confirmed`` would start empty after a
        restart and close the page it drives. Only ``restore`` is called: nothing is announced
        again, so notifiers do not page twice.
        """
        alerts = open_alerts(streams)
        # Whatever the sinks: a merged stream's open incidents go on here (a new symptom joins them).
        self._incidents.restore(alerts)
        restorers = [r for r in (getattr(s, "restore", None) for s in self.sinks) if callable(r)]
        if restorers and alerts:
            for restore in restorers:
                self._guard(restore, alerts)

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

    def process_batch(self, outcomes: Iterable[Outcome]) -> list[Alert]:
        """``process`` of each outcome in turn, in one pass: the same alerts, in the same order
        (``batch``: a quiet signal takes the batch's values in one loop). The worker's path. Never raises."""
        try:
            with self._lock:
                return process_batch(self, list(outcomes))
        except Exception:
            self.stats.internal_errors += 1
            log.warning("driftwatch: could not process a batch of outcomes", exc_info=True)
            return []

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def stream_key(self, outcome: Outcome) -> str:
        """The key of the stream ``outcome`` goes to (``service=…;task=…``), from the per-stream cache."""
        return self._stream_of(outcome)[1]

    def _stream_of(self, outcome: Outcome) -> tuple[dict[str, str], str]:
        """The outcome's stream labels and key, joined once per stream (not once per outcome)."""
        extra = self.config.stream_labels
        names = (outcome.service, outcome.task, outcome.kind)
        memo = (*names, *(outcome.labels.get(name) for name in extra)) if extra else names
        known = self._keys.get(memo)
        if known is None:
            if len(self._keys) >= 4096:  # bounded: many label values just join again
                self._keys.clear()
            labels = stream_labels(outcome, extra)
            known = self._keys[memo] = (labels, labels_key(labels))
        return known

    def _process(self, outcome: Outcome) -> list[Alert]:
        routed = self._route(outcome)
        if routed is None:
            return []
        entry, key, labels, values, alerts = routed
        watches = entry.watches
        observe = self._lifecycle.observe
        self._lifecycle.task = outcome.task_id
        for name, value in values.items():
            watch = watches.get(name)
            if watch is None:
                watch = self._new_watch(entry, name, outcome.task_id)
            alerts += observe(watch, key, labels, name, value, outcome.time)
        return self._finish(entry, outcome, alerts)

    def _route(
        self, outcome: Outcome
    ) -> tuple[_Stream, str, dict[str, str], dict[str, float], list[Alert]] | None:
        """An outcome's stream (made here, within the cap), its values on the detection scale and the
        version tracking's alerts; None when the stream cap drops it. Everything before detection."""
        labels, key = self._stream_of(outcome)
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
                return None
            entry = _Stream(dict(labels))
            self._streams[key] = entry
        self._stream_blobs.pop(key, None)
        labels = entry.labels
        self.stats.processed += 1
        for record in self._outcome_observers:
            try:  # self._guard(record, outcome, labels), inlined: every outcome
                record(outcome, labels)
            except Exception:
                self.stats.sink_errors += 1
                log.warning("driftwatch: sink call %r failed", record, exc_info=True)
        values: dict[str, float] = {}
        # Outcome.signal and transform, inlined: every outcome, every signal.
        for (name, kind), raw in zip(self._signals, self._read_signals(outcome), strict=True):
            if raw is not None:
                raw = float(raw)
                if _isfinite(raw):
                    if kind == "log":  # max(raw, 1e-9), max(raw, 0.0): raw unless below
                        values[name] = _ln(1e-9 if raw < 1e-9 else raw)
                    elif kind == "count":
                        values[name] = _log1p(0.0 if raw < 0.0 else raw)
                    elif kind == "binary":
                        values[name] = 1.0 if raw else 0.0
                    else:
                        values[name] = raw
        alerts: list[Alert] = []
        if self.config.version_markers:
            try:
                alerts += self._versions.track(entry, key, outcome, values)
            except Exception:
                # Version tracking must never cost detection its observation.
                self.stats.internal_errors += 1
                log.warning("driftwatch: could not track version markers", exc_info=True)
        return entry, key, labels, values, alerts

    def _new_watch(self, entry: _Stream, name: str, task_id: str | None) -> _SignalWatch:
        per_task = task_id is not None and name in self.config.task_signals
        watch = entry.watches[name] = _SignalWatch(SIGNALS[name], self.config, per_task=per_task)
        return watch

    def _finish(self, entry: _Stream, outcome: Outcome, alerts: list[Alert]) -> list[Alert]:
        """An outcome's alerts (version tracking's, then detection's) to incidents and the sinks."""
        if alerts:  # a resolve says when it resolved: at this outcome's event time
            alerts = [self._incidents.assign(stamp_resolved(alert, outcome.time)) for alert in alerts]
            _keep_incidents(entry, alerts)
        for alert in alerts:
            self._emit(alert)
        return alerts

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
