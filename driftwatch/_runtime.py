"""The in-process default: one monitor, its sinks and telemetry, created on first use."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from driftwatch._alerting.alerts import AlertSink, ConsoleSink, JsonlSink
from driftwatch._alerting.otel import OtelAlertSink, Telemetry, telemetry_from_env
from driftwatch._config import Config, load_config
from driftwatch._monitor import Monitor

__all__ = ["Runtime", "configure", "default_sinks", "get_runtime", "shutdown"]

log = logging.getLogger("driftwatch")


class Runtime:
    """A monitor with its sinks and telemetry; ``driftwatch.configure`` makes one explicitly."""

    def __init__(self, config: Config, monitor: Monitor, telemetry: Telemetry) -> None:
        self.config = config
        self.monitor = monitor
        self.telemetry = telemetry

    def shutdown(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        self.monitor.shutdown(timeout)
        # The exporters get what is left (at least 0.5 s): a dead backend must not hold the host's exit.
        self.telemetry.shutdown(max(0.5, deadline - time.monotonic()))


_lock = threading.Lock()
_runtime: Runtime | None = None


def default_sinks(config: Config, telemetry: Telemetry, logger: Any = None) -> list[AlertSink]:
    """The sinks configured by ``config``: OTLP (when set up), console, JSONL, notifiers, markers;
    ``logger``: the console sink's structlog logger (default: its own, on stderr)."""
    chosen: list[AlertSink] = [OtelAlertSink(telemetry)]
    if config.console:
        chosen.append(ConsoleSink(logger=logger))
    if config.alerts_out:
        chosen.append(JsonlSink(config.alerts_out))
    if config.notifiers:
        from driftwatch._alerting.notifiers import build_notifiers  # httpx only when notifiers are configured

        chosen.extend(build_notifiers(config))
    if config.markers:
        from driftwatch._alerting.markers import build_markers

        chosen.extend(build_markers(config))
    return chosen


def _build(config: Config, sinks: Iterable[AlertSink] | None, telemetry: Telemetry | None) -> Runtime:
    telemetry = telemetry or telemetry_from_env()
    # Passed sinks come on top of the configured ones: a Prometheus sink added in code must not turn
    # off the notifiers the config file asks for.
    chosen = [*default_sinks(config, telemetry), *(sinks or ())]
    return Runtime(config, Monitor(config, chosen), telemetry)


def configure(
    config_path: str | None = None,
    *,
    sinks: Iterable[AlertSink] | None = None,
    telemetry: Telemetry | None = None,
    **settings: Any,
) -> Runtime:
    """Set up the in-process monitor (replacing any earlier one) and return it.

    ``settings`` are Config fields (``service=``, ``budget=``, ``alerts_out=`` …) and win over
    ``DRIFTWATCH_*`` variables, which win over the YAML file at ``config_path``. ``sinks`` are added
    to the configured ones (OTLP when configured, the console unless ``console=False``, JSONL when
    ``alerts_out`` is set, the ``notifiers:`` and ``markers:``): passing a ``PrometheusSink`` keeps
    the configured PagerDuty and Slack notifiers paging. To leave a configured sink out, turn it off
    in the settings: ``console=False``, ``notifiers=[]``, ``markers=[]``.
    Configuration errors raise ``ConfigError`` here, at set-up time, never later on the call path.
    """
    global _runtime
    config = load_config(config_path, **settings)
    runtime = _build(config, sinks, telemetry)
    with _lock:
        old, _runtime = _runtime, runtime
    if old is not None:
        old.shutdown(timeout=1.0)
    return runtime


def get_runtime() -> Runtime | None:
    """The current runtime, created with defaults on first use; None if that failed (logged)."""
    global _runtime
    if _runtime is not None:
        return _runtime
    with _lock:
        if _runtime is None:
            try:
                _runtime = _build(load_config(), None, None)
            except Exception:
                log.warning("driftwatch: could not start; calls go on unobserved", exc_info=True)
                return None
        return _runtime


def shutdown(timeout: float = 5.0) -> None:
    """Flush queued outcomes and alerts, then stop the in-process monitor."""
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.shutdown(timeout)


atexit.register(shutdown, 2.0)
