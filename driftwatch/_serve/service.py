"""``driftwatch serve``: OTLP in, journal first, detection in order, alerts out; survives ``kill -9``.

A request is parsed and validated by the receiver (``_receiver.py``), checked item by item here
(malformed items are reported back as OTLP partial success), written to the SQLite journal and
only then acknowledged. One worker decodes journal entries in order (``collectors/_otlp.py``),
feeds the monitor and checkpoints monitor and decoder together (``_durable.py``), so a restart
restores the checkpoint and replays the journal after it: nothing acknowledged is lost, and the
alerts equal those of an uninterrupted run (same ids; sinks are idempotent on the id).
"""

from __future__ import annotations

import hashlib
import logging
import math
import signal as signals
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from driftwatch._alerting.alerts import AlertSink
from driftwatch._config import Config
from driftwatch._monitor import Monitor
from driftwatch._outcome import Outcome
from driftwatch._serve.api import ReadApi
from driftwatch._serve.durable import Durable
from driftwatch._serve.history import History, HistorySink
from driftwatch._serve.receiver import Accepted, Receiver, Saturated, Signal
from driftwatch._serve.store import StateStore
from driftwatch.collectors._otlp import Decoded, OtlpDecoder, redact

__all__ = ["DriftService", "ServiceDecoder", "run_serve"]

log = logging.getLogger("driftwatch")

_REQUESTS: Mapping[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}
#: Journal kind of a clock tick: lets open Claude Code prompts close when no more data arrives.
TICK = "tick"
#: Event-time seconds between the decoder's expiry sweeps (each sweep visits every open session).
EXPIRE_EVERY_S = 10.0
#: Wall-clock seconds between ticks while sessions are open.
TICK_EVERY_S = 30.0
#: Digests of the latest payloads, to skip an exporter's retry of a payload that was journalled but
#: whose acknowledgement was lost (a crash between the two): retries come within seconds.
RECENT_PAYLOADS = 8192


def _decode_with(decoder: OtlpDecoder, kind: str, request: Message) -> Decoded:
    if kind == "traces":
        assert isinstance(request, ExportTraceServiceRequest)
        return decoder.traces(request)
    if kind == "logs":
        assert isinstance(request, ExportLogsServiceRequest)
        return decoder.logs(request)
    assert isinstance(request, ExportMetricsServiceRequest)
    return decoder.metrics(request)


class ServiceDecoder:
    """The journal's decoder: OTLP payloads (and ticks) to outcomes, deterministic and picklable.

    Its whole state, the OTLP decoder's open sessions included, is checkpointed with the monitor,
    and every input it reacts to is in the journal (payloads and ticks with their time), so a
    replay after a crash gives the very same outcomes.
    """

    def __init__(self, config: Config) -> None:
        self.otlp = OtlpDecoder(config)
        self.watermark = -math.inf  # the latest event time seen
        self.swept_at = -math.inf
        # An exporter whose request was journalled but not acknowledged (the service died in
        # between) sends the same bytes again: the second copy must not count twice. OTLP payloads
        # carry span ids and timestamps, so equal bytes are the same export, not new data.
        self.recent: dict[bytes, None] = {}
        self.duplicates = 0

    def decode(self, kind: str, body: bytes) -> list[Outcome]:
        if kind == TICK:
            now = float(body.decode("ascii"))
            self.swept_at = now
            return self.otlp.expire(now)
        request_type = _REQUESTS.get(kind)
        if request_type is None:
            raise ValueError(f"unknown journal entry kind {kind!r}; expected traces, logs, metrics or tick")
        digest = hashlib.blake2b(body, digest_size=16, person=kind.encode()).digest()
        if digest in self.recent:
            self.duplicates += 1
            return []
        self.recent[digest] = None
        if len(self.recent) > RECENT_PAYLOADS:
            del self.recent[next(iter(self.recent))]
        request = request_type()
        request.ParseFromString(body)
        outcomes = _decode_with(self.otlp, kind, request).outcomes
        if outcomes:
            self.watermark = max(self.watermark, max(o.time for o in outcomes))
        if self.watermark - self.swept_at >= EXPIRE_EVERY_S:
            self.swept_at = self.watermark
            outcomes = [*outcomes, *self.otlp.expire(self.watermark)]
        return outcomes


class DriftService:
    """The receiver's handler: validate, journal, acknowledge; a worker runs detection in order."""

    def __init__(self, config: Config, sinks: Iterable[AlertSink] = ()) -> None:
        self.config = config
        self.store = StateStore(config.state)
        try:
            # Outcomes and alerts, written with each checkpoint; read by the API (``api.py``).
            self.history = History(
                config.state,
                stream_labels=config.stream_labels,
                max_age_s=config.history_max_age_days * 86400.0,
                max_bytes=config.history_max_mb * 1024 * 1024,
            )
        except BaseException:
            self.store.close()
            raise
        self.monitor = Monitor(config, [*sinks, HistorySink(self.history)], threaded=False)
        self.decoder = ServiceDecoder(config)
        # Sinks that keep delivery state (notifiers' open pages) keep it in the state file, taken up
        # before the checkpoint is restored and the journal replayed.
        for sink in self.monitor.sinks:
            attach = getattr(sink, "attach_state", None)
            if callable(attach):
                attach(self.store)
        self.durable = Durable(
            self.store,
            self.monitor,
            self.decoder.decode,
            decoder=self.decoder,
            seconds=float(config.checkpoint_seconds),
            history=self.history,
        )
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._failed: BaseException | None = None
        self._last_tick = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, wait: bool = False) -> None:
        """Restore the checkpoint and replay the journal on the worker thread, then process."""
        self._worker = threading.Thread(target=self._run, name="driftwatch-serve", daemon=True)
        self._worker.start()
        if wait:
            self._ready.wait()

    def _run(self) -> None:
        try:
            replayed = self.durable.start()
        except BaseException as exc:  # a state file that cannot be used: readiness stays false
            self._failed = exc
            log.error("driftwatch: cannot restore state from %s: %s", self.config.state, exc)
            self._ready.set()
            return
        restored = self.durable.restored_seq
        if restored is not None or replayed:
            log.info(
                "driftwatch: restored the checkpoint at journal entry %s (%d open alerts) and replayed "
                "%d journal entries",
                restored,
                len(self.monitor.open_alerts()),
                replayed,
            )
        self._ready.set()
        while not self._stop.is_set():
            try:
                if not self.durable.step(limit=self.durable.every):
                    self._maybe_tick()
                    self._stop.wait(0.05)
            except Exception:
                # The journal keeps what was accepted; try again rather than die.
                log.error("driftwatch: processing the journal failed; retrying in 1 s", exc_info=True)
                self._stop.wait(1.0)

    def _maybe_tick(self) -> None:
        now = time.monotonic()
        if now - self._last_tick >= TICK_EVERY_S and self.decoder.otlp.open_sessions:
            self._last_tick = now
            self.durable.append(TICK, repr(time.time()).encode("ascii"))

    def wait_processed(self, timeout: float = 10.0) -> bool:
        """Wait until everything journalled so far went through detection (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.is_set() and self.durable.backlog() == 0:
                return True
            time.sleep(0.01)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """Process what is journalled (up to ``timeout``), checkpoint, close the store and the sinks."""
        if self._ready.is_set() and self._failed is None:
            self.wait_processed(timeout)
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout)
        # Sinks first: notifiers record what they send in the state file, so it closes after them.
        self.monitor.shutdown(timeout)
        if self._failed is None:
            self.durable.close()
        else:
            self.store.close()
        self.history.close()

    # -- the receiver's side ---------------------------------------------------------------------
    def ready(self) -> bool:
        return self._ready.is_set() and self._failed is None

    def handle(self, signal: Signal, request: Message) -> Accepted:
        if not self.ready():
            raise Saturated("driftwatch is restoring its state; retry shortly", retry_after=1.0)
        backlog = self.durable.backlog()
        if backlog >= self.config.max_backlog:
            raise Saturated(f"driftwatch has {backlog} payloads waiting for detection; retry later", 1.0)
        # Item-level checks on a throwaway decoder: the journal's own decoder must see each payload
        # exactly once, in journal order, so it cannot be asked ahead of time. check_only: the verdict
        # of a full decode without building the call spans' outcomes, which are not needed here.
        checked = _decode_with(OtlpDecoder(self.config, check_only=True), signal, request)
        redact(request)  # no prompt or reply text in the state file: only what decoding reads
        self.durable.append(signal, request.SerializeToString())
        message = "; ".join(checked.errors[:3])
        if checked.rejected > 3:
            message += f" (and {checked.rejected - 3} more)"
        return Accepted(rejected=checked.rejected, message=message)

    def stats(self) -> Mapping[str, Any]:
        decoder = self.decoder.otlp.stats
        return {
            "streams": self.monitor.stream_count,
            "max_streams": self.config.max_streams,
            "backlog": self.durable.backlog(),
            "processed_seq": self.durable.processed_seq,
            "restored_checkpoint_seq": self.durable.restored_seq,
            "durable": vars(self.durable.stats).copy(),
            "malloc_trim": vars(self.durable.trim).copy(),
            "monitor": self.monitor.stats.as_dict(),
            "decoder": vars(decoder).copy(),
            "open_sessions": self.decoder.otlp.open_sessions,
            "duplicates_skipped": self.decoder.duplicates,
            "history": vars(self.history.stats).copy(),
            "state": self.config.state,
            "state_error": None if self._failed is None else str(self._failed),
            # Per notifier (by name): sent, retried, failed, dropped_* and the full NotifierStats.
            "notifiers": {n.name: {**n.counters(), "stats": n.stats.to_dict()} for n in self.notifiers()},
        }

    def notifiers(self) -> list[Any]:
        """The notifiers among the sinks (PagerDuty, Slack, webhook)."""
        module = sys.modules.get("driftwatch._alerting.notifiers")
        if module is None:
            return []  # never imported, so there are none (and the HTTP client stays unloaded)
        return [sink for sink in self.monitor.sinks if isinstance(sink, module.Notifier)]


def run_serve(config: Config, stop: threading.Event | None = None, logger: Any = None) -> int:
    """Runs ``driftwatch serve`` until ``stop`` is set or the process gets SIGINT/SIGTERM; returns 0.

    ``logger``: a structlog logger for the receiver's events and the console alerts (default: each
    its own, on stderr); the command line passes one that goes through its logging pipeline."""
    from driftwatch._alerting.otel import telemetry_from_env
    from driftwatch._alerting.prometheus import CONTENT_TYPE, PrometheusSink
    from driftwatch._runtime import default_sinks

    stop = stop or threading.Event()
    telemetry = telemetry_from_env()
    prometheus = PrometheusSink()
    service = DriftService(config, [*default_sinks(config, telemetry, logger=logger), prometheus])
    receiver = Receiver(service, config, logger=logger)
    notifiers = service.notifiers()
    if notifiers:
        from driftwatch._alerting.notifiers import delivery_metrics

        prometheus.collectors.append(lambda: delivery_metrics(notifiers))
    receiver.routes["/metrics"] = lambda: (200, CONTENT_TYPE, prometheus.render())
    receiver.query_routes.update(ReadApi(service.monitor, service.history).routes())
    if threading.current_thread() is threading.main_thread():
        # Before start(): a SIGTERM right after the "listening" log line must stop us cleanly too.
        for number in (signals.SIGINT, signals.SIGTERM):
            signals.signal(number, lambda *_: stop.set())
    service.start()
    receiver.start()
    try:
        while not stop.wait(0.5):  # a timed wait lets signal handlers run promptly
            pass
    finally:
        receiver.stop()
        service.stop()
        telemetry.shutdown()
    return 0
