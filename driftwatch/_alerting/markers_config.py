"""The ``markers:`` configuration: Honeycomb markers and Grafana annotations on version changes.

Disabled unless a key is configured: ``markers.honeycomb.api_key`` (or ``DRIFTWATCH_HONEYCOMB_API_KEY``)
turns Honeycomb markers on, ``markers.grafana.token`` (or ``DRIFTWATCH_GRAFANA_TOKEN``, with ``url`` or
``DRIFTWATCH_GRAFANA_URL``) Grafana annotations. Secrets follow argument > environment > file.

```yaml
markers:
  honeycomb: {dataset: my-agent}          # api_key from DRIFTWATCH_HONEYCOMB_API_KEY
  grafana: {url: https://grafana.example.com, dashboard_uid: driftwatch-overview}
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from driftwatch._errors import ConfigError

__all__ = ["MARKER_TYPES", "MarkerSpec", "apply_marker_env", "parse_markers"]

MARKER_TYPES = ("honeycomb", "grafana")
HONEYCOMB_API = "https://api.honeycomb.io"
#: Environment variables by destination and key; the secrets need not be written into the YAML file.
ENV = {
    "honeycomb": {
        "api_key": "DRIFTWATCH_HONEYCOMB_API_KEY",
        "dataset": "DRIFTWATCH_HONEYCOMB_DATASET",
        "api_url": "DRIFTWATCH_HONEYCOMB_API_URL",
    },
    "grafana": {"token": "DRIFTWATCH_GRAFANA_TOKEN", "url": "DRIFTWATCH_GRAFANA_URL"},
}
_SECRET = {"honeycomb": "api_key", "grafana": "token"}


@dataclass(frozen=True, slots=True)
class MarkerSpec:
    """One destination of ``markers:`` (Honeycomb or Grafana) and how hard to try."""

    type: str
    api_key: str | None = None
    """Honeycomb configuration API key with the Manage Markers permission."""
    dataset: str = "__all__"
    """Honeycomb dataset slug; ``__all__`` (default) puts an environment-wide marker."""
    api_url: str = HONEYCOMB_API
    """Honeycomb API (EU: ``https://api.eu1.honeycomb.io``)."""
    url: str | None = None
    """Grafana base URL, such as ``https://grafana.example.com`` or ``https://you.grafana.net``."""
    token: str | None = None
    """Grafana service account token (Editor, or the annotations:write permission)."""
    dashboard_uid: str | None = None
    """Grafana dashboard the annotations belong to; unset: organization annotations (tag ``driftwatch``)."""
    rate_per_minute: float = 30.0
    timeout_s: float = 5.0
    max_attempts: int = 5
    where: str = field(default="", compare=False)


_KEYS = {
    "honeycomb": {"api_key", "dataset", "api_url"},
    "grafana": {"url", "token", "dashboard_uid"},
}
_COMMON = {"rate_per_minute", "timeout_s", "max_attempts"}
_EXAMPLE = "such as {honeycomb: {dataset: my-agent}, grafana: {url: https://grafana.example.com}}"


def _where(node: yaml.Node | None, path: str, default: str, *keys: str) -> str:
    """``path:line`` of the nested ``keys`` in a YAML mapping node, else ``default``."""
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return default
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                default, node = f"{path}:{k.start_mark.line + 1}", v
                break
        else:
            return default
    return default


def parse_markers(value: Any, where: str, node: yaml.Node | None = None) -> list[MarkerSpec]:
    """The validated ``markers:`` mapping (``honeycomb:`` and/or ``grafana:``), errors at file:line."""
    if isinstance(value, list) and all(isinstance(v, MarkerSpec) for v in value):
        return list(value)  # given as an argument, already built
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: key 'markers': expected a mapping {_EXAMPLE}; got {value!r}")
    path = where.rsplit(":", 1)[0] if node is not None else where
    specs = []
    for kind, raw in value.items():
        here = _where(node, path, where, kind)
        if kind not in MARKER_TYPES:
            raise ConfigError(
                f"{here}: unknown key 'markers.{kind}'; valid keys are: {', '.join(MARKER_TYPES)}"
            )
        raw = {} if raw is None else raw
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{here}: key 'markers.{kind}': expected a mapping of settings, got {raw!r}")
        values: dict[str, Any] = {"type": kind, "where": here}
        valid = _KEYS[kind] | _COMMON
        for key, v in raw.items():
            at = _where(node, path, here, kind, key)
            if key not in valid:
                raise ConfigError(
                    f"{at}: unknown key '{key}' in markers.{kind}; valid keys are: {', '.join(sorted(valid))}"
                )
            if key in _COMMON:
                ok = isinstance(v, int | float) and not isinstance(v, bool) and v > 0
                if key == "max_attempts" and ok and v != int(v):
                    ok = False
                if not ok:
                    form = "a whole number >= 1" if key == "max_attempts" else "a number > 0"
                    raise ConfigError(f"{at}: key 'markers.{kind}.{key}': expected {form}, got {v!r}")
                values[key] = int(v) if key == "max_attempts" else float(v)
                continue
            if not isinstance(v, str) or not v:
                raise ConfigError(f"{at}: key 'markers.{kind}.{key}': expected a non-empty string, got {v!r}")
            if key in ("url", "api_url") and not v.startswith(("http://", "https://")):
                raise ConfigError(
                    f"{at}: key 'markers.{kind}.{key}': expected an http:// or https:// URL, got {v!r}"
                )
            values[key] = v.rstrip("/") if key in ("url", "api_url") else v
        specs.append(MarkerSpec(**values))
    return specs


def apply_marker_env(
    specs: list[MarkerSpec], env: Mapping[str, str], *, from_argument: bool = False
) -> list[MarkerSpec]:
    """Fill keys from ``DRIFTWATCH_HONEYCOMB_*`` / ``DRIFTWATCH_GRAFANA_*`` (over the file, under an
    argument); a secret variable alone turns its destination on. Then each needs its key (and URL)."""
    out = list(specs)
    for kind, variables in ENV.items():
        found: dict[str, Any] = {key: env[var] for key, var in variables.items() if env.get(var)}
        if not found:
            continue
        for key in ("url", "api_url"):
            if key in found and not found[key].startswith(("http://", "https://")):
                raise ConfigError(
                    f"environment variable {variables[key]}: expected an http:// or https:// URL, "
                    f"got {found[key]!r}"
                )
            if key in found:
                found[key] = found[key].rstrip("/")
        current = next((s for s in out if s.type == kind), None)
        if current is None:
            if _SECRET[kind] not in found or from_argument:
                continue
            where = f"environment variable {variables[_SECRET[kind]]}"
            out.append(MarkerSpec(type=kind, where=where, **found))
            continue
        # Over the file; under an argument, only where the argument left the default.
        default = MarkerSpec(type=kind)
        changes = {
            k: v for k, v in found.items() if not from_argument or getattr(current, k) == getattr(default, k)
        }
        out = [dataclasses.replace(s, **changes) if s is current else s for s in out]
    for spec in out:
        secret = _SECRET[spec.type]
        if not getattr(spec, secret):
            raise ConfigError(
                f"{spec.where}: markers.{spec.type} without '{secret}'; set it here or in "
                f"{ENV[spec.type][secret]} (markers stay off until a key is configured)"
            )
        if spec.type == "grafana" and not spec.url:
            raise ConfigError(
                f"{spec.where}: markers.grafana without 'url'; set it here or in DRIFTWATCH_GRAFANA_URL, "
                "such as https://grafana.example.com"
            )
    return out
