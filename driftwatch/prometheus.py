"""Prometheus: the driftwatch metrics as a scrape, named as OpenTelemetry's Prometheus translation names them.

>>> from driftwatch.prometheus import PrometheusSink, serve_metrics    # doctest: +SKIP
>>> sink = PrometheusSink()                                              # doctest: +SKIP
>>> driftwatch.configure(sinks=[sink])  # added to the configured sinks  # doctest: +SKIP
>>> server = serve_metrics(sink, "127.0.0.1", 9464)                     # doctest: +SKIP

``sink.render()`` returns the exposition bytes (``CONTENT_TYPE``) for mounting at ``/metrics`` on any
HTTP server. ``driftwatch replay FILE --metrics-port 9464`` does the same for a recorded stream.
"""

from __future__ import annotations

from driftwatch._alerting.prometheus import CONTENT_TYPE, MetricsServer, PrometheusSink, serve_metrics

__all__ = ["CONTENT_TYPE", "MetricsServer", "PrometheusSink", "serve_metrics"]
