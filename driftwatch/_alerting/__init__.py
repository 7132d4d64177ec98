"""Alerting: the Alert, the sink interface and every way an alert leaves.

- ``alerts``: ``Alert``, the ``AlertSink`` interface, console, JSONL and in-memory sinks
- ``otel``: OTLP log records and metrics (``OtelAlertSink``) and the providers from ``OTEL_*``
- ``prometheus``: the same metrics as a Prometheus scrape (public: ``driftwatch.prometheus``)
- ``notifiers``, ``notifiers_config``: PagerDuty, Slack and webhooks (public: ``driftwatch.notify``)
- ``markers``, ``markers_config``: version-change markers (Honeycomb, Grafana annotations)
"""

__all__ = ["alerts", "markers", "markers_config", "notifiers", "notifiers_config", "otel", "prometheus"]
