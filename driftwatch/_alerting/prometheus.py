"""The driftwatch metrics as a Prometheus scrape: text exposition format 0.0.4, rendered here.

Names and labels are exactly what OpenTelemetry's Prometheus translation gives for the instruments the
OTLP sink exports (``driftwatch/_alerting/otel.py``), so one set of rules and dashboards works whether metrics
arrive by scrape or over OTLP (Grafana Cloud, Mimir, Prometheus' OTLP receiver):

- ``driftwatch.drift.active`` (gauge) -> ``driftwatch_drift_active``
- ``driftwatch.alerts`` (counter) -> ``driftwatch_alerts_total``
- ``driftwatch.outcomes`` (counter) -> ``driftwatch_outcomes_total``

Dots become underscores in metric and label names, monotonic counters get ``_total``, a unit ``s`` adds
``_seconds`` and annotation units in braces (``{token}``) add nothing. Beside those three, both sinks
export what a paging rule and a dashboard need:

- ``driftwatch.drift.confirmed`` -> ``driftwatch_drift_confirmed`` (gauge): 1 while a *confirmed* drift
  is open on a stream, signal and direction — what pages; ``driftwatch_drift_active`` is 1 from
  ``suspected`` on;
- ``driftwatch.outcome.results`` -> ``driftwatch_outcome_results_total`` (``driftwatch_result`` =
  pass/fail): the pass rate;
- ``driftwatch.outcome.latency`` (unit ``s``) -> ``driftwatch_outcome_latency_seconds`` (histogram),
  ``driftwatch.outcome.tokens`` -> ``driftwatch_outcome_tokens_total`` (``gen_ai_token_type`` =
  input/output), ``driftwatch.outcome.cost`` -> ``driftwatch_outcome_cost_total`` (USD).

Every series carries the stream's labels (``service``, ``task``, ``kind="call"`` on call streams, the
configured ``stream_labels``); ``driftwatch_alerts_total`` adds ``signal``, ``direction``, ``status`` and
``driftwatch_alert_kind`` (``drift``, ``version_change``, ``version_comparison``). When a drift episode
opens, the counts of the statuses it can still reach start at 0 (``FOLLOWING``), so that ``increase()``
sees its confirmation and resolution; a series' very first count (the first ``suspected`` of a stream,
signal and direction) still appears at 1, and the dashboard's queries count series born in their window
(``x unless x offset window``).

The scrape also shows ``driftwatch_drift_confirmed 0`` for a stream that is only suspected (the OTLP
gauge has no point there) and counts its own drops in ``driftwatch_metrics_series_dropped_total``.

The exposition is rendered by hand rather than through ``opentelemetry-exporter-prometheus``: that
exporter needs ``prometheus_client`` and its process-global registry (two sinks in one process, or a
test next to a host that uses it, would collide), while the translation rules for the handful of
instruments here are a few lines, and a test checks the scrape against the SDK's own points for the
same run. Memory is bounded: at most ``max_series`` series per metric; new series beyond it are
dropped and counted.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from driftwatch import _semconv as sc
from driftwatch._alerting.alerts import Alert
from driftwatch._outcome import Outcome

__all__ = [
    "ALERT_KIND",
    "CONTENT_TYPE",
    "FOLLOWING",
    "LATENCY_BUCKETS",
    "MetricsServer",
    "PrometheusSink",
    "label_name",
    "metric_name",
    "sample_value",
    "serve_metrics",
]

log = logging.getLogger("driftwatch")

#: The ``Content-Type`` of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Upper bounds (seconds) of the latency histogram (``driftwatch/_semconv.py``, shared with the OTLP sink).
LATENCY_BUCKETS = sc.LATENCY_BUCKETS

_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": ""}
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_RUNS = re.compile(r"__+")

LabelKey = tuple[tuple[str, str], ...]

#: The attribute for an alert's kind on ``driftwatch.alerts`` and the statuses a drift episode can
#: still reach, whose series start at 0 (both in ``driftwatch/_semconv.py``, shared with the OTLP sink).
ALERT_KIND = sc.ALERT_KIND
FOLLOWING = sc.FOLLOWING


def metric_name(name: str, kind: str, unit: str = "") -> str:
    """The Prometheus name OTel's translation gives an instrument (``kind``: counter, gauge, histogram).

    >>> metric_name("driftwatch.alerts", "counter")
    'driftwatch_alerts_total'
    >>> metric_name("driftwatch.outcome.latency", "histogram", "s")
    'driftwatch_outcome_latency_seconds'
    >>> metric_name("driftwatch.outcome.tokens", "counter", "{token}")
    'driftwatch_outcome_tokens_total'
    """
    out = _RUNS.sub("_", _INVALID.sub("_", name)).strip("_")
    if unit and not unit.startswith("{"):
        suffix = _UNITS.get(unit, _INVALID_LABEL.sub("", unit))
        if suffix and not out.endswith("_" + suffix):
            out += "_" + suffix
    if kind == "counter" and not out.endswith("_total"):
        out += "_total"
    return out


def label_name(key: str) -> str:
    """The Prometheus label name OTel's translation gives an attribute key.

    >>> label_name("driftwatch.outcome.kind"), label_name("1st"), label_name("__x")
    ('driftwatch_outcome_kind', 'key_1st', 'key__x')
    """
    out = _INVALID_LABEL.sub("_", key)
    if out[:1].isdigit():
        out = "key_" + out
    elif out.startswith("__"):
        out = "key" + out  # names starting with __ are reserved for Prometheus itself
    return out


def _labels(attributes: Mapping[str, str]) -> LabelKey:
    """Attributes as sorted label pairs; keys that sanitise to one name are joined with ``;`` (spec)."""
    merged: dict[str, list[str]] = {}
    for key in sorted(attributes):
        merged.setdefault(label_name(key), []).append(str(attributes[key]))
    return tuple(sorted((k, ";".join(v)) for k, v in merged.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def sample_value(value: float) -> str:
    """A sample value (or an ``le`` bound) as the exposition format writes it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)


def _series(name: str, labels: LabelKey, value: float, extra: tuple[tuple[str, str], ...] = ()) -> str:
    pairs = labels + extra
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return f"{name}{{{inner}}} {sample_value(value)}" if inner else f"{name} {sample_value(value)}"


class _Metric:
    """One metric family: its series by label set, at most ``cap`` of them."""

    def __init__(self, name: str, kind: str, help_text: str, cap: int, sink: PrometheusSink) -> None:
        self.name = name
        self.kind = kind
        self.help = help_text
        self.cap = cap
        self.sink = sink
        self.values: dict[LabelKey, Any] = {}

    def _slot(self, labels: LabelKey, initial: Any) -> Any:
        slot = self.values.get(labels)
        if slot is None:
            if len(self.values) >= self.cap:
                self.sink.series_dropped += 1
                return None
            slot = self.values[labels] = initial
        return slot

    def add(self, labels: LabelKey, amount: float) -> None:
        if self._slot(labels, 0.0) is not None:
            self.values[labels] += amount

    def set(self, labels: LabelKey, value: float) -> None:
        if self._slot(labels, 0.0) is not None:
            self.values[labels] = value

    def observe(self, labels: LabelKey, value: float) -> None:
        slot = self.values.get(labels) or self._slot(labels, _Histogram())
        if slot is not None:
            slot.observe(value)

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for labels, value in sorted(self.values.items()):
            if self.kind == "histogram":
                out.extend(value.lines(self.name, labels))
            else:
                out.append(_series(self.name, labels, value))
        return out


class _Histogram:
    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * len(LATENCY_BUCKETS)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        for i, bound in enumerate(LATENCY_BUCKETS):
            if value <= bound:
                self.counts[i] += 1
                break

    def lines(self, name: str, labels: LabelKey) -> list[str]:
        out = []
        running = 0
        for bound, count in zip(LATENCY_BUCKETS, self.counts, strict=True):
            running += count
            out.append(_series(f"{name}_bucket", labels, running, (("le", sample_value(bound)),)))
        out.append(_series(f"{name}_bucket", labels, self.count, (("le", "+Inf"),)))
        out.append(_series(f"{name}_sum", labels, self.sum))
        out.append(_series(f"{name}_count", labels, self.count))
        return out


class PrometheusSink:
    """An ``AlertSink`` and outcome observer whose state ``render()`` shows as a Prometheus scrape.

    Pass it to a ``Monitor`` (or ``driftwatch.configure(sinks=[...])``) and serve ``render()`` at
    ``/metrics`` (``serve_metrics``). Cheap on the detection thread: dictionary updates under a lock.

    >>> from driftwatch import Config, Monitor, Outcome
    >>> sink = PrometheusSink()
    >>> monitor = Monitor(Config(signals=["success"]), [sink], threaded=False)
    >>> _ = monitor.process(Outcome(task="fix", success=True, time=1.0))
    >>> [l for l in sink.render().decode().splitlines() if l.startswith("driftwatch_outcomes_total")]
    ['driftwatch_outcomes_total{driftwatch_outcome_kind="task",service="unknown_service",task="fix"} 1']
    """

    def __init__(self, max_series: int = 10_000) -> None:
        self.max_series = max_series
        self.series_dropped = 0
        self._lock = threading.Lock()
        cap = max_series

        def metric(spec: sc.Metric) -> _Metric:
            return _Metric(
                metric_name(spec.name, spec.kind, spec.unit), spec.kind, spec.description, cap, self
            )

        # Same instruments (names, attributes) as OtelAlertSink:
        self._active = metric(sc.DRIFT_ACTIVE)
        self._alerts = metric(sc.ALERTS)
        self._outcomes = metric(sc.OUTCOMES)
        # Scrape-only additions for paging rules and dashboards:
        self._confirmed = metric(sc.DRIFT_CONFIRMED)
        self._results = metric(sc.OUTCOME_RESULTS)
        self._latency = metric(sc.OUTCOME_LATENCY)
        self._tokens = metric(sc.OUTCOME_TOKENS)
        self._cost = metric(sc.OUTCOME_COST)
        self._families = [
            self._active,
            self._alerts,
            self._outcomes,
            self._confirmed,
            self._results,
            self._latency,
            self._tokens,
            self._cost,
        ]
        # Open drift alerts by (stream, signal, direction) series: id -> status. Bounded by max_series.
        self._open: dict[LabelKey, dict[str, str]] = {}
        #: More exposition lines at each scrape, from elsewhere (the notifiers' delivery counters).
        self.collectors: list[Callable[[], list[str]]] = []

    # -- the Monitor's side ------------------------------------------------------------------------

    def record_outcome(self, outcome: Outcome, stream: dict[str, str]) -> None:
        """Count one outcome and its signals under its stream's labels."""
        base = {**stream, sc.OUTCOME_KIND: outcome.kind}
        labels = _labels(base)
        with self._lock:
            self._outcomes.add(labels, 1)
            if outcome.success is not None:
                result = "pass" if outcome.success else "fail"
                self._results.add(_labels({**base, sc.RESULT: result}), 1)
            if outcome.latency_s is not None and math.isfinite(outcome.latency_s) and outcome.latency_s >= 0:
                self._latency.observe(labels, outcome.latency_s)
            for kind, tokens in (("input", outcome.input_tokens), ("output", outcome.output_tokens)):
                if tokens is not None and tokens >= 0:
                    self._tokens.add(_labels({**base, sc.TOKEN_TYPE: kind}), tokens)
            if outcome.cost_usd is not None and math.isfinite(outcome.cost_usd) and outcome.cost_usd >= 0:
                self._cost.add(labels, outcome.cost_usd)

    def export(self, alert: Alert) -> None:
        """Count the alert; drift alerts open and close the ``active`` / ``confirmed`` gauges."""
        series = _labels({**alert.stream, "signal": alert.signal, "direction": alert.direction})
        counted = _labels(
            {**alert.stream, "signal": alert.signal, "direction": alert.direction}
            | {"status": alert.status, ALERT_KIND: alert.kind}
        )
        with self._lock:
            self._alerts.add(counted, 1)
            if alert.kind != "drift":
                return  # version events have no open state (as in the OTLP sink)
            for later in FOLLOWING.get(alert.status, ()):
                self._alerts.add(_labels(dict(counted) | {"status": later}), 0)
            self._track(series, alert)

    def restore(self, alerts: Sequence[Alert]) -> None:
        """Alerts still open after a restart (``RestoringSink``): their gauges again, without a count."""
        with self._lock:
            for alert in alerts:
                if alert.kind == "drift" and alert.status != "resolved":
                    series = _labels({**alert.stream, "signal": alert.signal, "direction": alert.direction})
                    self._track(series, alert)

    def _track(self, series: LabelKey, alert: Alert) -> None:
        """Open or close ``alert`` on its series and set the ``active`` / ``confirmed`` gauges (locked)."""
        open_ids = self._open.get(series)
        if alert.status == "resolved":
            if open_ids is not None:
                open_ids.pop(alert.id, None)
        elif open_ids is not None or len(self._open) < self.max_series:
            self._open.setdefault(series, {})[alert.id] = alert.status
        else:
            self.series_dropped += 1
            return
        open_ids = self._open.get(series, {})
        self._active.set(series, 1 if open_ids else 0)
        self._confirmed.set(series, 1 if "confirmed" in open_ids.values() else 0)
        if not open_ids:
            self._open.pop(series, None)

    def shutdown(self) -> None:
        pass

    # -- the scrape's side -------------------------------------------------------------------------

    def render(self) -> bytes:
        """The current metrics in the Prometheus text exposition format (``CONTENT_TYPE``)."""
        with self._lock:
            lines: list[str] = []
            for family in self._families:
                lines.extend(family.lines())
            dropped = self.series_dropped
        name = "driftwatch_metrics_series_dropped_total"
        lines += [
            f"# HELP {name} Series not recorded because max_series was reached",
            f"# TYPE {name} counter",
            f"{name} {dropped}",
        ]
        for collect in list(self.collectors):
            lines += collect()
        return ("\n".join(lines) + "\n").encode()

    def metric_names(self) -> set[str]:
        """Every sample name ``render()`` can show (histograms with their ``_bucket/_sum/_count``)."""
        names = {"driftwatch_metrics_series_dropped_total"}
        for family in self._families:
            if family.kind == "histogram":
                names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
            else:
                names.add(family.name)
        return names


class MetricsServer:
    """A small threaded HTTP server answering ``GET /metrics``; ``close()`` stops it."""

    def __init__(self, sink: PrometheusSink, host: str, port: int) -> None:
        self.sink = sink
        self.scrapes = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self._reply(404, b"driftwatch: only /metrics is served here\n", "text/plain")
                    return
                try:
                    body = server.sink.render()
                except Exception:  # a rendering bug must not kill the server thread
                    log.warning("driftwatch: could not render /metrics", exc_info=True)
                    self._reply(500, b"driftwatch: could not render metrics; see the log\n", "text/plain")
                    return
                server.scrapes += 1
                self._reply(200, body, CONTENT_TYPE)

            def _reply(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per scrape would flood the host's stderr

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="driftwatch-metrics", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(2.0)


def serve_metrics(sink: PrometheusSink, host: str = "127.0.0.1", port: int = 9464) -> MetricsServer:
    """Serve ``sink.render()`` at ``http://host:port/metrics`` from a background thread (port 0: any free
    one; read ``.port``). 9464 is the OpenTelemetry Prometheus exporter's default port."""
    return MetricsServer(sink, host, port)
