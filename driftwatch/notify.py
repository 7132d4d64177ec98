"""On-call notifiers: PagerDuty Events API v2, Slack incoming webhooks and a generic JSON webhook.

Usually configured with a ``notifiers:`` list in the YAML config (keys: docs/destinations/notifiers.md);
for code, pass them as sinks (added to the configured ones):

>>> from driftwatch.notify import PagerDutySink, SlackSink          # doctest: +SKIP
>>> driftwatch.configure(sinks=[PagerDutySink(routing_key), SlackSink(webhook_url)])  # doctest: +SKIP

Every notifier delivers from its own background thread (``export`` never blocks detection), retries
with backoff, rate-limits new notifications, sends each (alert id, status) once and counts everything
it did not deliver in ``stats``.
"""

from __future__ import annotations

from driftwatch._alerting.notifiers import (
    Delivery,
    Notifier,
    NotifierStats,
    PagerDutySink,
    SlackSink,
    WebhookSink,
    build_notifiers,
)
from driftwatch._alerting.notifiers_config import NotifierSpec

__all__ = [
    "Delivery",
    "Notifier",
    "NotifierSpec",
    "NotifierStats",
    "PagerDutySink",
    "SlackSink",
    "WebhookSink",
    "build_notifiers",
]
