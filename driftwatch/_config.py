"""Configuration: argument > environment variable > YAML file > default, validated with clear errors."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from driftwatch._errors import ConfigError
from driftwatch._outcome import DEFAULT_SIGNALS, SIGNALS

if TYPE_CHECKING:
    from driftwatch._alerting.markers_config import MarkerSpec
    from driftwatch._alerting.notifiers_config import NotifierSpec

__all__ = ["Config", "ConfigError", "load_config"]


@dataclass(slots=True)
class Config:
    """Every setting of driftwatch, with safe defaults."""

    service: str = "unknown_service"
    """Stream label ``service``; defaults to ``OTEL_SERVICE_NAME`` when that is set."""
    budget: float = 1e-4
    """False alarms per observation of one stream that stage-one detection may raise."""
    warmup: int = 500
    lag: int = 300
    signals: list[str] = field(default_factory=lambda: list(DEFAULT_SIGNALS))
    """The signals watched: ``DEFAULT_SIGNALS``; any of ``SIGNALS`` (``driftwatch/_outcome.py``)."""
    stream_labels: list[str] = field(default_factory=list)
    task_signals: list[str] = field(default_factory=lambda: list(SIGNALS))
    """Signals detected against each task's own level when outcomes carry a recurring ``task_id``
    (``detectors/_ability.py``): a change in the agent's ability (pass rate, score) or cost (tokens,
    latency, cost on the log scale), not in the task mix. Every signal by default; ``[]``: none."""
    """Outcome labels added to the stream key (service, task), e.g. ``[language]``."""
    confirm_alpha: float = 0.05
    """Stage two (confirmation): the chance that the sequential test on fresh observations ever pages
    a suspected change that is not there (an anytime error rate: it holds however long the test
    runs). Stage one raises at most ``budget`` false alarms per observation, so false pages stay
    below ``budget * confirm_alpha`` per observation (1 per 200,000 at the defaults)."""
    withdraw_beta: float = 0.01
    """Stage two: the chance that a real change of at least ``min_shift`` is withdrawn (a suspicion
    is withdrawn only on evidence that the stream is at its baseline)."""
    min_shift: float = 0.2
    """The smallest change (standard deviations of the baseline) that must be paged; withdrawal
    tests against a shift this large, and a smaller change may stay undecided."""
    max_fresh: int = 2000
    """Fresh observations after which a still undecided suspicion is closed as inconclusive (a
    change smaller than ``min_shift``, if any); detection then resumes from the pre-alarm baseline."""
    confirm_min: int = 30
    """Fewest fresh observations of the recovery check (an open page's return to its baseline)."""
    confirm_max: int = 400
    """Most fresh observations of the recovery check."""
    keep_firing: int = 30
    """A confirmed alert stays open for at least this many observations before it can resolve
    (flap suppression); then it resolves when a CUSUM finds the stream back at its baseline."""
    version_markers: list[str] = field(
        default_factory=lambda: ["model", "app.version", "version", "effort", "provider"]
    )
    """What names a version: an Outcome attribute (``model``) or else an outcome label (``app.version``).
    A change of value inside a stream is annotated and starts a before/after comparison."""
    compare_min: int = 30
    """Observations each side of a version change needs before the two are compared."""
    compare_max: int = 400
    """At most this many observations per side: the last ones before the change, the first after."""
    compare_alpha: float = 0.05
    incident_window_s: float = 3600.0
    """Alerts of one task (call- and task-level streams, every signal) or of one version change whose
    changes lie within this many seconds form one incident: one page (``_monitor/incidents.py``)."""
    """False-discovery rate (Benjamini–Hochberg over the signals) of a before/after comparison."""
    queue_size: int = 10_000
    """Outcomes waiting for detection; more are dropped and counted, never blocking the agent."""
    max_streams: int = 10_000
    alerts_out: str | None = None
    console: bool = True
    prices: dict[str, list[float]] = field(default_factory=dict)
    """USD per million tokens by model prefix: [input, output]; merged over the built-in table."""
    notifiers: list[NotifierSpec] = field(default_factory=list)
    """On-call notifiers (PagerDuty, Slack, webhook); see ``driftwatch.notify.NotifierSpec``."""
    runbook_url: str | None = None
    """Runbook link sent with every page (each notifier can override it with its own ``runbook_url``)."""
    dashboard_url: str | None = None
    """Dashboard link sent with every page (each notifier can override it with its own ``dashboard_url``)."""
    # `driftwatch serve` (the OTLP receiver)
    host: str = "127.0.0.1"
    """Address the receiver binds; anything but loopback needs ``token``."""
    http_port: int = 4318
    """OTLP/HTTP port (0 picks a free one)."""
    grpc_port: int = 4317
    """OTLP/gRPC port (0 picks a free one)."""
    token: str | None = None
    """Bearer token clients must send (``Authorization: Bearer <token>``); required off loopback."""
    tls_cert: str | None = None
    """PEM certificate chain for TLS on both transports; needs ``tls_key``."""
    tls_key: str | None = None
    """PEM private key of ``tls_cert``."""
    max_body_bytes: int = 20 * 1024 * 1024
    """Largest request body, after decompression too (413 beyond); the OTLP spec's recommended 20 MiB."""
    max_attributes: int = 128
    """Attributes kept per span, event, link, log record, data point or resource; more are dropped
    and counted."""
    workers: int = 8
    """Threads serving requests, per transport."""
    max_pending: int = 64
    """Connections (HTTP) or calls (gRPC) waiting for a worker; more are answered 503 / refused."""
    state: str = "driftwatch-state.db"
    """SQLite file of ``driftwatch serve``: the journal of accepted payloads and detector checkpoints."""
    checkpoint_seconds: int = 5
    """``driftwatch serve`` checkpoints detector state at least this often (and every 1,000 payloads)."""
    max_backlog: int = 10_000
    """Accepted payloads not yet through detection; beyond it ``serve`` answers 503 + Retry-After."""
    history_max_age_days: int = 30
    """``driftwatch serve`` keeps each outcome (never content) and alert this many days (event time)."""
    history_max_mb: int = 1024
    """``driftwatch serve`` keeps at most this many MiB of outcome history (oldest pruned first)."""
    markers: list[MarkerSpec] = field(default_factory=list)
    """Version-change markers (Honeycomb, Grafana annotations); see ``_alerting/markers_config.py``."""


_ENV = {
    "service": "DRIFTWATCH_SERVICE",
    "budget": "DRIFTWATCH_BUDGET",
    "warmup": "DRIFTWATCH_WARMUP",
    "lag": "DRIFTWATCH_LAG",
    "confirm_alpha": "DRIFTWATCH_CONFIRM_ALPHA",
    "withdraw_beta": "DRIFTWATCH_WITHDRAW_BETA",
    "compare_alpha": "DRIFTWATCH_COMPARE_ALPHA",
    "queue_size": "DRIFTWATCH_QUEUE_SIZE",
    "max_streams": "DRIFTWATCH_MAX_STREAMS",
    "alerts_out": "DRIFTWATCH_ALERTS_OUT",
    "console": "DRIFTWATCH_CONSOLE",
    "host": "DRIFTWATCH_HOST",
    "http_port": "DRIFTWATCH_HTTP_PORT",
    "grpc_port": "DRIFTWATCH_GRPC_PORT",
    "token": "DRIFTWATCH_TOKEN",
    "tls_cert": "DRIFTWATCH_TLS_CERT",
    "tls_key": "DRIFTWATCH_TLS_KEY",
    "max_body_bytes": "DRIFTWATCH_MAX_BODY_BYTES",
    "max_attributes": "DRIFTWATCH_MAX_ATTRIBUTES",
    "state": "DRIFTWATCH_STATE",
    "history_max_age_days": "DRIFTWATCH_HISTORY_MAX_AGE_DAYS",
    "history_max_mb": "DRIFTWATCH_HISTORY_MAX_MB",
}

_PATHS = ("alerts_out", "tls_cert", "tls_key")
_PORTS = ("http_port", "grpc_port")
_LINKS = ("runbook_url", "dashboard_url")


def _check(name: str, value: Any, where: str, node: yaml.Node | None = None) -> Any:
    """The value converted to the field's type, or ConfigError naming ``where`` and the valid form."""
    if name == "notifiers":
        # Imported on use: only a config with notifiers needs the notifier specs.
        from driftwatch._alerting.notifiers_config import parse_notifiers

        return parse_notifiers(value, where, node)
    if name == "markers":
        from driftwatch._alerting.markers_config import parse_markers

        return parse_markers(value, where, node)
    default = Config()
    expected = getattr(default, name)
    if name in _PATHS:
        if value is None or isinstance(value, str):
            return value
        raise ConfigError(f"{where}: key '{name}': expected a file path, got {value!r}")
    if name in _LINKS:
        if value is None or (isinstance(value, str) and value.startswith(("http://", "https://"))):
            return value
        raise ConfigError(f"{where}: key '{name}': expected an http:// or https:// URL, got {value!r}")
    if name == "token":
        if value is None or (isinstance(value, str) and value and value.isprintable() and " " not in value):
            return value
        # Never echo a token back: it is a secret.
        raise ConfigError(f"{where}: key 'token': expected a non-empty string without spaces")
    if name in _PORTS:
        try:
            port = int(value)
        except (TypeError, ValueError):
            port = -1
        if isinstance(value, bool) or not 0 <= port <= 65535 or (isinstance(value, float) and value != port):
            raise ConfigError(f"{where}: key '{name}': expected a port number 0..65535, got {value!r}")
        return port
    if name == "min_shift":
        try:
            shift = float(value)
        except (TypeError, ValueError):
            shift = -1.0
        if isinstance(value, bool) or not 0 < shift <= 2:
            raise ConfigError(
                f"{where}: key 'min_shift': expected a shift in standard deviations, above 0 and at most 2 "
                f"(default 0.2), got {value!r}"
            )
        return shift
    if name == "incident_window_s":
        try:
            window = float(value)
        except (TypeError, ValueError):
            window = -1.0
        if isinstance(value, bool) or not 0 <= window < float("inf"):
            raise ConfigError(
                f"{where}: key 'incident_window_s': expected seconds >= 0 (default 3600; 0 groups only "
                f"alerts whose changes coincide), got {value!r}"
            )
        return window
    if name == "max_fresh":
        try:
            most = int(value)
        except (TypeError, ValueError):
            most = -1
        if isinstance(value, bool) or most < 10 or (isinstance(value, float) and value != most):
            raise ConfigError(
                f"{where}: key 'max_fresh': expected a whole number of fresh observations >= 10 "
                f"(default 2000), got {value!r}"
            )
        return most
    if isinstance(expected, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise ConfigError(f"{where}: key '{name}': expected true or false, got {value!r}")
    if isinstance(expected, int):
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = -1
        if isinstance(value, bool) or number < 1 or (isinstance(value, float) and value != number):
            raise ConfigError(f"{where}: key '{name}': expected a whole number >= 1, got {value!r}")
        return number
    if isinstance(expected, float):
        try:
            number_f = float(value)
        except (TypeError, ValueError):
            number_f = -1.0
        if isinstance(value, bool) or not 0 < number_f < 1:
            raise ConfigError(f"{where}: key '{name}': expected a number between 0 and 1, got {value!r}")
        return number_f
    if isinstance(expected, str):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: key '{name}': expected a non-empty string, got {value!r}")
        return value
    if name in ("signals", "task_signals"):
        if not isinstance(value, list) or any(v not in SIGNALS for v in value):
            raise ConfigError(
                f"{where}: key '{name}': expected a list drawn from {sorted(SIGNALS)}, got {value!r}"
            )
        return list(value)
    if name == "stream_labels":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: key 'stream_labels': expected a list of label names, got {value!r}")
        return list(value)
    if name == "version_markers":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(
                f"{where}: key 'version_markers': expected a list of outcome fields or label names, "
                f"such as [model, app.version]; got {value!r}"
            )
        return list(value)
    if name == "prices":
        ok = isinstance(value, Mapping) and all(
            isinstance(k, str)
            and isinstance(v, list)
            and len(v) == 2
            and all(isinstance(x, int | float) and not isinstance(x, bool) and x >= 0 for x in v)
            for k, v in value.items()
        )
        if not ok:
            raise ConfigError(
                f"{where}: key 'prices': expected a map of model prefix to [input, output] USD per million "
                f"tokens, such as {{claude-sonnet-4: [3.0, 15.0]}}; got {value!r}"
            )
        return {k: [float(x) for x in v] for k, v in value.items()}
    raise ConfigError(f"{where}: key '{name}' cannot be set")  # pragma: no cover


def _file_values(path: str) -> dict[str, Any]:
    """Validated values from a YAML file; errors name the file, line and key."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{line}: not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or node is None or not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}:1: expected a mapping of settings such as 'service: my-agent'")
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    nodes = {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    known = {f.name for f in dataclasses.fields(Config)}
    out: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{path}:{lines.get(key, 1)}"
        if key not in known:
            raise ConfigError(f"{where}: unknown key '{key}'; valid keys are: {', '.join(sorted(known))}")
        out[key] = _check(key, value, where, nodes.get(key))
    return out


def load_config(path: str | None = None, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """The effective configuration: ``overrides`` > ``DRIFTWATCH_*`` variables > file > defaults."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if env.get("OTEL_SERVICE_NAME"):
        values["service"] = env["OTEL_SERVICE_NAME"]
    path = path or env.get("DRIFTWATCH_CONFIG") or None
    if path:
        values.update(_file_values(path))
    for name, var in _ENV.items():
        if env.get(var):
            values[name] = _check(name, env[var], f"environment variable {var}")
    known = {f.name for f in dataclasses.fields(Config)}
    for name, value in overrides.items():
        if name not in known:
            raise ConfigError(
                f"argument '{name}': unknown setting; valid settings are: {', '.join(sorted(known))}"
            )
        if value is not None:
            values[name] = _check(name, value, f"argument '{name}'")
    # Notifier secrets: argument > DRIFTWATCH_* variable > file, like every other setting.
    from driftwatch._alerting.notifiers_config import apply_notifier_env

    given = overrides.get("notifiers") is not None
    values["notifiers"] = apply_notifier_env(values.get("notifiers", []), env, from_argument=given)
    from driftwatch._alerting.markers_config import apply_marker_env

    given = overrides.get("markers") is not None
    values["markers"] = apply_marker_env(values.get("markers", []), env, from_argument=given)
    config = Config(**values)
    if config.compare_min > config.compare_max:
        raise ConfigError(
            f"settings 'compare_min' ({config.compare_min}) and 'compare_max' ({config.compare_max}): "
            "compare_min must be at most compare_max"
        )
    return config
