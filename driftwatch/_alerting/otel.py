"""OpenTelemetry plumbing: the user's providers when set, else ones built from ``OTEL_*`` variables.

driftwatch never replaces a global provider. When the user registered none and
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or a per-signal endpoint) is set, it builds private providers that
export over OTLP (``http/protobuf`` or ``grpc`` per ``OTEL_EXPORTER_OTLP_PROTOCOL``).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from driftwatch import _semconv as sc
from driftwatch._alerting.alerts import Alert
from driftwatch._outcome import Outcome
from driftwatch._version import __version__

__all__ = ["CountingExporter", "OtelAlertSink", "Telemetry", "telemetry_from_env"]

log = logging.getLogger("driftwatch")
SCOPE = sc.SCOPE_NAME


def _protocol(env: Mapping[str, str], signal: str) -> str:
    value = env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    value = value.strip().lower() or "http/protobuf"
    if value not in ("http/protobuf", "grpc"):
        log.warning("driftwatch: OTLP protocol %r is not supported; using http/protobuf", value)
        value = "http/protobuf"
    return value


def _wanted(env: Mapping[str, str], signal: str) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = env.get(f"OTEL_{signal}_EXPORTER", "")
    if exporter.strip().lower() == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"))


def _span_exporter(protocol: str) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        return Grpc()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    return Http()


def _log_exporter(protocol: str) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as Grpc

        return Grpc()
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as Http

    return Http()


def _metric_exporter(protocol: str) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

        return Grpc()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

    return Http()


class CountingExporter:
    """A span or log exporter that counts the items it delivered and the items a failed export lost.

    The SDK's batch processors retry and then drop a failed batch with only a log line; these counts
    make the loss readable (``Telemetry.export_counts``). Metrics are not wrapped: a metric export
    carries cumulative values, so a failed one loses nothing the next successful one does not resend.
    """

    def __init__(self, exporter: Any) -> None:
        self.exporter = exporter
        self.exported = 0
        self.failed = 0

    def export(self, batch: Sequence[Any]) -> Any:
        try:
            result = self.exporter.export(batch)
        except Exception:
            self.failed += len(batch)
            raise
        # SpanExportResult and LogRecordExportResult both name success SUCCESS.
        if getattr(result, "name", "") == "SUCCESS":
            self.exported += len(batch)
        else:
            self.failed += len(batch)
        return result

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.exporter.force_flush(timeout_millis))

    def shutdown(self) -> None:
        self.exporter.shutdown()


class _QueueFullCounter(logging.Filter):
    """Counts the SDK batch processors' "Queue full, dropping ..." records; passes every record on.

    The SDK offers no other hook that sees these drops (its processor metrics are off by default).
    It must run before the SDK's own DuplicateFilter on that logger, which lets one identical record
    through per 20 s (so the host's log is not flooded) and stops the rest from reaching later
    filters. It sees every SDK batch processor in the process, the user's included.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dropped: dict[str, int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Queue full, dropping"):
            kind = str(record.args[0]) if isinstance(record.args, tuple) and record.args else "?"
            with self._lock:
                self.dropped[kind] = self.dropped.get(kind, 0) + 1
        return True


QUEUE_FULL = _QueueFullCounter()
_sdk_logger = logging.getLogger("opentelemetry.sdk._shared_internal")
_sdk_logger.filters.insert(0, QUEUE_FULL)  # ahead of the SDK's DuplicateFilter (see the class)


def _bounded(what: Callable[[], object], timeout_s: float) -> bool:
    """Run ``what`` on a daemon thread and wait at most ``timeout_s``; True if it finished.

    The SDK's ``force_flush`` ignores its timeout and its ``shutdown`` joins an export that can block
    for the exporter's full timeout and retries (about 45 s against a backend that is down): the host
    must not wait for that. An abandoned export goes on in the background and dies with the process.
    """
    done = threading.Event()

    def run() -> None:
        try:
            what()
        except Exception:
            log.debug("driftwatch: telemetry flush or shutdown failed", exc_info=True)
        finally:
            done.set()

    threading.Thread(target=run, name="driftwatch-otel-stop", daemon=True).start()
    return done.wait(max(0.0, timeout_s))


def _is_default(provider: object) -> bool:
    """True for the API's placeholder providers (nothing registered by the user)."""
    name = type(provider).__name__
    return name.startswith(("Proxy", "NoOp", "_Proxy", "_NoOp"))


class Telemetry:
    """The tracer, logger and meter driftwatch uses, and the private providers it owns (if any)."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        logger_provider: _logs.LoggerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.owned: list[Any] = []
        self.tracer_provider = tracer_provider
        self.logger_provider = logger_provider
        self.meter_provider = meter_provider
        tp = tracer_provider or trace.get_tracer_provider()
        lp = logger_provider or _logs.get_logger_provider()
        mp = meter_provider or metrics.get_meter_provider()
        self.tracer = tp.get_tracer(SCOPE, __version__)
        self.logger = lp.get_logger(SCOPE, __version__)
        self.meter = mp.get_meter(SCOPE, __version__)

        self.exporters: dict[str, CountingExporter] = {}
        """The counting wrappers of the span and log exporters driftwatch built (``traces``, ``logs``)."""

    def own(self, *providers: Any) -> None:
        self.owned.extend(providers)

    def export_counts(self) -> dict[str, dict[str, int]]:
        """Items delivered and lost per signal by the OTLP exporters driftwatch owns.

        ``failed``: in batches the exporter gave up on; ``dropped_queue_full``: refused by the SDK's
        full batch queue (counted process-wide, for every SDK batch processor).
        """
        kinds = {"traces": "Span", "logs": "Log"}
        return {
            name: {
                "exported": e.exported,
                "failed": e.failed,
                "dropped_queue_full": QUEUE_FULL.dropped.get(kinds[name], 0),
            }
            for name, e in self.exporters.items()
        }

    def force_flush(self, timeout_ms: int = 5000) -> bool:
        """Export what is queued, waiting at most ``timeout_ms`` in all; True if it finished in time."""
        owned = list(self.owned)

        def flush() -> None:
            for provider in owned:
                provider.force_flush(timeout_ms)

        finished = _bounded(flush, timeout_ms / 1000) if owned else True
        if not finished:
            log.warning("driftwatch: OTLP flush did not finish in %d ms (backend down or slow?)", timeout_ms)
        return finished

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Stop the owned providers, waiting at most ``timeout`` seconds; True if they stopped in time."""
        owned, self.owned = self.owned, []
        deadline = time.monotonic() + timeout

        def stop() -> None:
            for provider in owned:
                try:
                    # Each provider gets what is left; the SDK's default would be 30 s each.
                    left_ms = max(0, int((deadline - time.monotonic()) * 1000))
                    provider.shutdown(**({"timeout_millis": left_ms} if _takes_timeout(provider) else {}))
                except Exception:
                    log.debug("driftwatch: shutdown failed", exc_info=True)

        finished = _bounded(stop, timeout) if owned else True
        lost = {
            name: c["failed"] + c["dropped_queue_full"]
            for name, c in self.export_counts().items()
            if c["failed"] + c["dropped_queue_full"]
        }
        if not finished or lost:
            log.warning(
                "driftwatch: OTLP export %s; items lost by signal: %s",
                f"did not finish in {timeout:.1f} s" if not finished else "finished",
                lost or "none counted yet",
            )
        return finished


def _takes_timeout(provider: Any) -> bool:
    try:
        return "timeout_millis" in inspect.signature(provider.shutdown).parameters
    except (TypeError, ValueError):
        return False


def telemetry_from_env(env: Mapping[str, str] | None = None) -> Telemetry:
    """The user's global providers where registered; private OTLP ones where ``OTEL_*`` asks for them."""
    env = os.environ if env is None else env
    resource = Resource.create()  # reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    # shutdown_on_exit=False: the SDK's own atexit shutdown is unbounded (16 s at exit against a
    # backend that is down); driftwatch's atexit hook shuts these down within its timeout instead.
    owned: list[Any] = []
    exporters: dict[str, CountingExporter] = {}
    tp: Any = None
    lp: Any = None
    mp: Any = None
    try:
        if _is_default(trace.get_tracer_provider()) and _wanted(env, "TRACES"):
            tp = TracerProvider(resource=resource, shutdown_on_exit=False)
            exporters["traces"] = CountingExporter(_span_exporter(_protocol(env, "TRACES")))
            # CountingExporter is duck-typed (it wraps either exporter type), hence the ignores.
            tp.add_span_processor(BatchSpanProcessor(exporters["traces"]))  # type: ignore[arg-type]
            owned.append(tp)
        if _is_default(_logs.get_logger_provider()) and _wanted(env, "LOGS"):
            lp = LoggerProvider(resource=resource, shutdown_on_exit=False)
            exporters["logs"] = CountingExporter(_log_exporter(_protocol(env, "LOGS")))
            lp.add_log_record_processor(BatchLogRecordProcessor(exporters["logs"]))  # type: ignore[arg-type]
            owned.append(lp)
        if _is_default(metrics.get_meter_provider()) and _wanted(env, "METRICS"):
            reader = PeriodicExportingMetricReader(_metric_exporter(_protocol(env, "METRICS")))
            mp = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
            owned.append(mp)
    except Exception:
        log.warning("driftwatch: could not set up OTLP export from OTEL_* variables", exc_info=True)
    telemetry = Telemetry(tp, lp, mp)
    telemetry.own(*owned)
    telemetry.exporters = exporters
    return telemetry


#: A stream's dict and its outcome metrics' attributes: all, pass, fail, input tokens, output tokens.
_AttributeSets = tuple[
    dict[str, str], dict[str, str], dict[str, str], dict[str, str], dict[str, str], dict[str, str]
]


class OtelAlertSink:
    """Alerts as OTLP LogRecords (event ``driftwatch.drift``) plus the ``driftwatch.*`` metrics."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        meter = telemetry.meter
        self._alerts = meter.create_counter(sc.ALERTS.name, description=sc.ALERTS.description)
        self._outcomes = meter.create_counter(sc.OUTCOMES.name, description=sc.OUTCOMES.description)
        self._active = meter.create_gauge(sc.DRIFT_ACTIVE.name, description=sc.DRIFT_ACTIVE.description)
        # What paging rules and dashboards need (the Prometheus scrape has the same, see prometheus.py).
        self._confirmed = meter.create_gauge(
            sc.DRIFT_CONFIRMED.name, description=sc.DRIFT_CONFIRMED.description
        )
        self._results = meter.create_counter(
            sc.OUTCOME_RESULTS.name, description=sc.OUTCOME_RESULTS.description
        )
        self._latency = meter.create_histogram(
            sc.OUTCOME_LATENCY.name,
            unit=sc.OUTCOME_LATENCY.unit,
            description=sc.OUTCOME_LATENCY.description,
            explicit_bucket_boundaries_advisory=list(sc.LATENCY_BUCKETS),
        )
        self._tokens = meter.create_counter(
            sc.OUTCOME_TOKENS.name, unit=sc.OUTCOME_TOKENS.unit, description=sc.OUTCOME_TOKENS.description
        )
        self._cost = meter.create_counter(
            sc.OUTCOME_COST.name, unit=sc.OUTCOME_COST.unit, description=sc.OUTCOME_COST.description
        )
        self._attribute_sets: dict[tuple[int, str], _AttributeSets] = {}

    def record_outcome(self, outcome: Outcome, stream: dict[str, str]) -> None:
        """Count ``outcome`` in the outcome metrics of ``stream`` (the monitor's labels of its stream,
        one dict per stream that does not change: its attribute sets are made once, ``_attributes``)."""
        kind = outcome.kind
        made = self._attribute_sets.get((id(stream), kind))
        if made is None or made[0] is not stream:
            made = self._attributes(stream, kind)
        _, attrs, passed, failed, input_tokens, output_tokens = made
        self._outcomes.add(1, attrs)
        if outcome.success is not None:
            self._results.add(1, passed if outcome.success else failed)
        if outcome.latency_s is not None and math.isfinite(outcome.latency_s) and outcome.latency_s >= 0:
            self._latency.record(outcome.latency_s, attrs)
        tokens = outcome.input_tokens
        if tokens is not None and tokens >= 0:
            self._tokens.add(tokens, input_tokens)
        tokens = outcome.output_tokens
        if tokens is not None and tokens >= 0:
            self._tokens.add(tokens, output_tokens)
        if outcome.cost_usd is not None and math.isfinite(outcome.cost_usd) and outcome.cost_usd >= 0:
            self._cost.add(outcome.cost_usd, attrs)

    def _attributes(self, stream: dict[str, str], kind: str) -> _AttributeSets:
        """The attribute sets of a stream's outcome metrics, kept (with the stream's dict, so that its
        id is not reused while kept) for the next outcome of the stream; at most 4,096 streams."""
        if len(self._attribute_sets) >= 4096:
            self._attribute_sets.clear()
        attrs = {**stream, sc.OUTCOME_KIND: kind}
        made = self._attribute_sets[id(stream), kind] = (
            stream,
            attrs,
            {**attrs, sc.RESULT: "pass"},
            {**attrs, sc.RESULT: "fail"},
            {**attrs, sc.TOKEN_TYPE: "input"},
            {**attrs, sc.TOKEN_TYPE: "output"},
        )
        return made

    def export(self, alert: Alert) -> None:
        attrs: dict[str, Any] = {
            sc.ALERT_ID: alert.id,
            sc.ALERT_KIND: alert.kind,
            sc.ALERT_STATUS: alert.status,
            sc.SIGNAL: alert.signal,
            sc.DIRECTION: alert.direction,
            sc.STREAM_KEY: ";".join(f"{k}={v}" for k, v in alert.stream.items()),
            sc.BASELINE_MEAN: alert.baseline.mean,
            sc.BASELINE_N: alert.baseline.n,
            sc.CURRENT_MEAN: alert.current.mean,
            sc.CURRENT_N: alert.current.n,
            sc.EFFECT: alert.effect,
            sc.DELAY: alert.delay,
        }
        for k, v in alert.stream.items():
            attrs[sc.STREAM_LABEL + k] = v
        if alert.p_value is not None:
            attrs[sc.P_VALUE] = alert.p_value
        # Annotations and "no difference" verdicts inform; suspected, confirmed and differing warn.
        severity = SeverityNumber.INFO if alert.status in ("resolved", "annotation") else SeverityNumber.WARN
        self.telemetry.logger.emit(
            timestamp=int(alert.detected_at * 1e9),
            severity_number=severity,
            severity_text=severity.name,
            body=json.dumps(alert.to_dict()),
            attributes=attrs,
            event_name=sc.DRIFT_EVENT,
        )
        metric_attrs = {**alert.stream, "signal": alert.signal, "direction": alert.direction}
        # The alert's kind under its own name: the stream's labels can hold a ``kind`` (call streams).
        counted = {**metric_attrs, "status": alert.status, sc.ALERT_KIND: alert.kind}
        self._alerts.add(1, counted)
        if alert.kind == "drift":
            for later in sc.FOLLOWING.get(alert.status, ()):
                self._alerts.add(0, {**counted, "status": later})  # at 0 for increase(): see FOLLOWING
            # Version events have no open state to close later: the gauge tracks drift episodes only.
            self._active.set(0 if alert.status == "resolved" else 1, metric_attrs)
            if alert.status in ("confirmed", "resolved"):
                self._confirmed.set(1 if alert.status == "confirmed" else 0, metric_attrs)

    def restore(self, alerts: Sequence[Alert]) -> None:
        """Alerts open after a restart (``RestoringSink``): their gauges again, no log record or count."""
        for alert in alerts:
            if alert.kind == "drift" and alert.status != "resolved":
                metric_attrs = {**alert.stream, "signal": alert.signal, "direction": alert.direction}
                self._active.set(1, metric_attrs)
                if alert.status == "confirmed":
                    self._confirmed.set(1, metric_attrs)

    def shutdown(self) -> None:
        # Short and bounded: Telemetry.shutdown exports what is left right after, with its own deadline.
        self.telemetry.force_flush(1000)
