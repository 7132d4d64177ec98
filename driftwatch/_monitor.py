"""The monitor: routes outcomes by stream to one detector per (stream, signal), confirms, alerts.

The agent's call path only enqueues (``submit``): a bounded queue, never blocking, drops counted.
Detection runs on one background thread, or synchronously through ``process`` (replay, tests).
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from driftwatch._alerts import Alert, AlertSink, Status, alert_id, describe
from driftwatch._config import Config
from driftwatch._outcome import SIGNALS, Outcome, SignalKind
from driftwatch._stats import Comparison, Moments, compare_means, compare_proportions
from driftwatch.detectors import LaggedSR

__all__ = ["Monitor", "MonitorStats", "stream_labels"]

log = logging.getLogger("driftwatch")


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
    alerts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "processed": self.processed,
            "dropped_queue_full": self.dropped_queue_full,
            "dropped_stream_cap": self.dropped_stream_cap,
            "sink_errors": self.sink_errors,
            "internal_errors": self.internal_errors,
            "alerts": dict(self.alerts),
        }


class _SignalWatch:
    """Detection and confirmation for one (stream, signal)."""

    __slots__ = ("active", "baseline", "confirm_n", "detector", "fresh", "history", "kind")

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
        self.fresh = Moments()
        self.confirm_n = 0


class Monitor:
    """Watches outcome streams for change and sends alerts to sinks. Never raises into the caller.

    Two stages (design.md): a calibrated detector raises ``suspected`` at the false-alarm budget;
    a one-sided test on *fresh* observations after the alarm (never the ones that raised it) turns
    it ``confirmed`` or ``resolved``. The detector then restarts on the new regime.
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
        self._streams: dict[str, tuple[dict[str, str], dict[str, _SignalWatch]]] = {}
        self._signals = [(s, SIGNALS[s]) for s in self.config.signals]
        self._lock = threading.Lock()  # serialises process() between the worker and direct callers
        self._queue: queue.Queue[Outcome | threading.Event | None] = queue.Queue(self.config.queue_size)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._warned_cap = False
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
        try:
            self._queue.put_nowait(outcome)
            return True
        except queue.Full:
            self.stats.dropped_queue_full += 1
            return False

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far has been processed; False on timeout."""
        if self._thread is None or not self._thread.is_alive():
            return True
        marker = threading.Event()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.wait(timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Process what is queued (up to ``timeout``), stop the worker and shut the sinks down."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self.flush(timeout)
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=0.1)
            self._thread.join(timeout)
        for sink in self.sinks:
            try:
                sink.shutdown()
            except Exception:
                self.stats.sink_errors += 1
                log.warning("driftwatch: sink %r failed to shut down", sink, exc_info=True)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            self.process(item)

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
            entry = (labels, {})
            self._streams[key] = entry
        self.stats.processed += 1
        for record in self._outcome_observers:
            self._guard(record, outcome, labels)
        alerts: list[Alert] = []
        watches = entry[1]
        for name, kind in self._signals:
            raw = outcome.signal(name)
            if raw is None or not math.isfinite(raw):
                continue
            watch = watches.get(name)
            if watch is None:
                watch = watches[name] = _SignalWatch(kind, self.config)
            alert = self._observe(watch, key, labels, name, transform(kind, raw), outcome.time)
            if alert is not None:
                alerts.append(alert)
        for alert in alerts:
            self._emit(alert)
        return alerts

    def _observe(
        self, watch: _SignalWatch, key: str, labels: dict[str, str], name: str, value: float, at: float
    ) -> Alert | None:
        result: Alert | None = None
        if watch.active is not None:
            watch.fresh.add(value)
            if watch.fresh.n >= watch.confirm_n:
                result = self._confirm(watch, at)
                if result.status == "resolved":
                    return result  # this value is already in the resumed baseline
        detector = watch.detector
        detector.update(value, at)
        if detector.drift_detected and watch.active is None and result is None:
            result = self._suspect(watch, key, labels, name, at)
        return result

    def _compare(self, watch: _SignalWatch, base: Moments, cur: Moments, direction: str) -> Comparison:
        if watch.kind == "binary":
            return compare_proportions(base, cur, direction)
        return compare_means(base, cur, direction, scale=watch.kind)

    def _suspect(self, watch: _SignalWatch, key: str, labels: dict[str, str], name: str, at: float) -> Alert:
        det = watch.detector
        direction = det.direction or "down"
        change_at = det.change_time if det.change_time is not None else at
        before, after = det.split()
        comparison = self._compare(watch, before, after, direction)
        delay = after.n
        watch.baseline = before
        watch.history = det.observed
        watch.fresh = Moments()
        # Confirm on as many fresh observations as the change took to detect, within bounds.
        watch.confirm_n = max(self.config.confirm_min, min(self.config.confirm_max, delay))
        alert = Alert(
            id=alert_id(key, name, direction, change_at),
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
            extra={"confirm_after": watch.confirm_n},
        )
        alert = alert.with_status(
            "suspected",
            message=f"{describe(alert)}; suspected after {delay} observations, confirming on the next "
            f"{watch.confirm_n} (estimates from the detection window are biased away from the baseline)",
        )
        watch.active = alert
        return alert

    def _confirm(self, watch: _SignalWatch, at: float) -> Alert:
        suspected = watch.active
        assert suspected is not None
        comparison = self._compare(watch, watch.baseline, watch.fresh, suspected.direction)
        confirmed = comparison.p_value < self.config.confirm_alpha
        status: Status = "confirmed" if confirmed else "resolved"
        alert = suspected.with_status(
            status,
            baseline=comparison.baseline,
            current=comparison.current,
            effect=comparison.effect,
            effect_ci=comparison.effect_ci,
            p_value=comparison.p_value,
            extra={"fresh_n": watch.fresh.n, "confirm_alpha": self.config.confirm_alpha, "decided_at": at},
        )
        verdict = (
            f"confirmed on {watch.fresh.n} fresh observations"
            if confirmed
            else f"not confirmed on {watch.fresh.n} fresh observations (p >= {self.config.confirm_alpha})"
        )
        alert = alert.with_status(status, message=f"{describe(alert)}; {verdict}")
        watch.active = None
        if not confirmed:
            # A false alarm: the old baseline stands, extended by what was seen since.
            watch.detector.resume(watch.history.merged(watch.fresh))
        return alert

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
        self.stats.alerts[alert.status] = self.stats.alerts.get(alert.status, 0) + 1
        for sink in self.sinks:
            self._guard(sink.export, alert)

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self.stats.sink_errors += 1
            log.warning("driftwatch: sink call %r failed", fn, exc_info=True)
