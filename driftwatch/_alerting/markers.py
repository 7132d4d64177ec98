"""Version changes as Honeycomb markers and Grafana annotations, on the notifier engine.

Both are ``Notifier`` subclasses, so they get the bounded queue, the background thread, timeouts,
retries with backoff (``Retry-After`` honoured), the rate limit and the (id, status) idempotency for
free. They take only ``version_change`` alerts (status ``annotation``) and mark the time of the change
(``change_at``, event time): a model upgrade shows as a line on the graphs it may have moved.

- Honeycomb Markers API: ``POST {api_url}/1/markers/{dataset}`` with header ``X-Honeycomb-Team`` and
  ``{"start_time": <unix s>, "message": ..., "type": "driftwatch-version-change"}``; dataset ``__all__``
  is an environment-wide marker.
- Grafana annotations HTTP API: ``POST {url}/api/annotations`` with ``Authorization: Bearer <token>`` and
  ``{"time": <unix ms>, "tags": [...], "text": ..., "dashboardUID": ...}``; without a dashboard uid the
  annotation is an organization one that any dashboard shows through an annotation query on tag
  ``driftwatch`` (the shipped dashboard has one).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from driftwatch._alerting.alerts import Alert, changes_text, describe
from driftwatch._alerting.markers_config import MarkerSpec
from driftwatch._alerting.notifiers import Action, Notifier
from driftwatch._config import Config
from driftwatch._stats import Estimate

__all__ = ["GrafanaAnnotationSink", "HoneycombMarkerSink", "build_markers", "synthetic_version_change"]

MARKER_TYPE = "driftwatch-version-change"


def _text(alert: Alert) -> str:
    mark = "[TEST] " if alert.extra.get("test") is True else ""
    return f"{mark}driftwatch: {describe(alert)}"


class _MarkerSink(Notifier):
    """Takes version changes only; everything else is counted in ``stats.filtered`` and not queued."""

    def __init__(self, url: str, **options: Any) -> None:
        options.setdefault("min_status", "annotation")
        super().__init__(url, **options)

    def export(self, alert: Alert) -> None:
        if alert.kind != "version_change":
            self.stats.filtered += 1
            return
        super().export(alert)


class HoneycombMarkerSink(_MarkerSink):
    """A Honeycomb marker per version change (Markers API), in ``dataset`` (``__all__``: the environment)."""

    kind = "honeycomb"

    def __init__(
        self,
        api_key: str,
        dataset: str = "__all__",
        api_url: str = "https://api.honeycomb.io",
        **options: Any,
    ) -> None:
        self.dataset = dataset
        url = f"{api_url.rstrip('/')}/1/markers/{quote(dataset, safe='')}"
        super().__init__(url, headers={"X-Honeycomb-Team": api_key}, **options)

    def render(self, alert: Alert, action: Action) -> dict[str, Any] | None:
        if action != "note":
            return None
        return {"start_time": int(alert.change_at), "message": _text(alert)[:1000], "type": MARKER_TYPE}


class GrafanaAnnotationSink(_MarkerSink):
    """A Grafana annotation per version change (annotations HTTP API), tagged for filtering."""

    kind = "grafana"

    def __init__(self, url: str, token: str, dashboard_uid: str | None = None, **options: Any) -> None:
        self.dashboard_uid = dashboard_uid
        super().__init__(
            f"{url.rstrip('/')}/api/annotations", headers={"Authorization": f"Bearer {token}"}, **options
        )

    def render(self, alert: Alert, action: Action) -> dict[str, Any] | None:
        if action != "note":
            return None
        tags = ["driftwatch", "version_change", *(f"{k}:{v}" for k, v in alert.stream.items())]
        if alert.extra.get("marker"):
            tags.append(f"{alert.extra['marker']}:{alert.extra.get('after', '')}")
        body: dict[str, Any] = {"time": int(alert.change_at * 1000), "tags": tags, "text": _text(alert)}
        if self.dashboard_uid:
            body["dashboardUID"] = self.dashboard_uid
        return body


def build_markers(config: Config | Iterable[MarkerSpec]) -> list[Notifier]:
    """The marker sinks a configuration asks for (none unless a key is configured)."""
    specs = config.markers if isinstance(config, Config) else list(config)
    out: list[Notifier] = []
    for spec in specs:
        options: dict[str, Any] = {
            "rate_per_minute": spec.rate_per_minute,
            "timeout_s": spec.timeout_s,
            "max_attempts": spec.max_attempts,
        }
        if spec.type == "honeycomb":
            assert spec.api_key  # load_config guarantees it
            out.append(HoneycombMarkerSink(spec.api_key, spec.dataset, spec.api_url, **options))
        else:
            assert spec.url and spec.token
            out.append(GrafanaAnnotationSink(spec.url, spec.token, spec.dashboard_uid, **options))
    return out


def synthetic_version_change(service: str = "driftwatch") -> Alert:
    """A clearly labelled test version change (``model test-before -> test-after``) with a fresh id."""
    now = time.time()
    change = {"marker": "model", "before": "test-before", "after": "test-after"}
    none = Estimate(0.0, 0, 0.0, 0.0)
    return Alert(
        id=f"test-{uuid.uuid4().hex[:16]}",
        status="annotation",
        stream={"service": service, "task": "driftwatch-alert-test"},
        signal="model",
        direction="none",
        detected_at=now,
        change_at=now,
        baseline=none,
        current=none,
        effect=0.0,
        effect_ci=(0.0, 0.0),
        p_value=None,
        detector={},
        message=f"synthetic test version change from `driftwatch alert test`: {changes_text([change])}",
        extra={**change, "test": True},
        kind="version_change",
    )
