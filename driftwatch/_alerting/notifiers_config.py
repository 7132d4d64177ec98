"""The ``notifiers:`` configuration list: validated with file:line errors, secrets also from env."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from driftwatch._errors import ConfigError

__all__ = ["NOTIFIER_TYPES", "NotifierSpec", "apply_notifier_env", "parse_notifiers"]

NOTIFIER_TYPES = ("pagerduty", "slack", "webhook")
MIN_STATUSES = ("annotation", "suspected", "confirmed")
SEVERITIES = ("critical", "error", "warning", "info")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"

#: Environment variables that hold secrets, so they need not be written into the YAML file.
ENV_SECRETS = {
    "pagerduty": ("routing_key", "DRIFTWATCH_PAGERDUTY_ROUTING_KEY"),
    "slack": ("url", "DRIFTWATCH_SLACK_WEBHOOK_URL"),
}


@dataclass(frozen=True, slots=True)
class NotifierSpec:
    """One entry of ``notifiers:``: where alerts go and how hard to try."""

    type: str
    url: str | None = None
    """Slack or webhook URL; for PagerDuty the Events API v2 endpoint (default the public one)."""
    routing_key: str | None = None
    """PagerDuty integration key (or ``DRIFTWATCH_PAGERDUTY_ROUTING_KEY``)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra request headers (webhook), e.g. ``Authorization``."""
    min_status: str = "confirmed"
    """Lowest status that notifies: ``confirmed`` (default), ``suspected``, or ``annotation`` (everything,
    version changes included). ``resolved`` goes out only for an alert this notifier announced."""
    rate_per_minute: float = 30.0
    """Token-bucket rate limit on new notifications (bursts up to this many); resolves are not limited."""
    timeout_s: float = 5.0
    max_attempts: int = 5
    """Attempts per notification (retries on 429, 5xx, timeouts, connection errors) before giving up."""
    severity: str | None = None
    """PagerDuty severity for every trigger; unset: ``error`` for a pass-rate drop, ``warning`` for other
    degradations, ``info`` for improvements."""
    source: str | None = None
    """PagerDuty ``payload.source``; unset: the alert's service."""
    page_improvements: bool | None = None
    """Notify when a stream gets *better* (pass rate up, latency down …). Unset: off for PagerDuty (an
    improvement is news, not a reason to wake someone), on for Slack and webhooks."""
    runbook_url: str | None = None
    """Link sent with every page (PagerDuty ``links``, a Slack link, webhook ``links.runbook``); unset:
    the config's top-level ``runbook_url``."""
    dashboard_url: str | None = None
    """Like ``runbook_url``, for a dashboard; unset: the config's top-level ``dashboard_url``."""
    where: str = field(default="", compare=False)
    """Where this entry was written (file:line), for later messages."""


_FIELDS = {f.name for f in dataclasses.fields(NotifierSpec)} - {"where"}
_EXAMPLE = "such as '- type: slack' with 'url: https://hooks.slack.com/services/…'"


def _line_of(node: yaml.Node | None, index: int, key: str | None, path: str, default: str) -> str:
    """``path:line`` of item ``index`` (or of its ``key``) in a YAML sequence node, else ``default``."""
    if not isinstance(node, yaml.SequenceNode) or index >= len(node.value):
        return default
    item = node.value[index]
    if key is not None and isinstance(item, yaml.MappingNode):
        for k, _ in item.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return f"{path}:{k.start_mark.line + 1}"
    return f"{path}:{item.start_mark.line + 1}"


def _number(value: Any, where: str, name: str, whole: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    if ok and whole and value != int(value):
        ok = False
    if not ok:
        form = "a whole number >= 1" if whole else "a number > 0"
        raise ConfigError(f"{where}: key '{name}': expected {form}, got {value!r}")
    return float(value)


def _entry(raw: Any, where: str, at: Any) -> NotifierSpec:
    """One validated entry; ``at(key)`` gives the file:line of a key."""
    if isinstance(raw, NotifierSpec):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping {_EXAMPLE}; got {raw!r}")
    kind = raw.get("type")
    if kind not in NOTIFIER_TYPES:
        raise ConfigError(
            f"{at('type')}: key 'type': expected one of {', '.join(NOTIFIER_TYPES)}, got {kind!r}"
        )
    values: dict[str, Any] = {"type": kind, "where": where}
    for key, value in raw.items():
        here = at(key)
        if key == "type":
            continue
        if key not in _FIELDS:
            raise ConfigError(
                f"{here}: unknown key '{key}' in a {kind} notifier; "
                f"valid keys are: {', '.join(sorted(_FIELDS))}"
            )
        if key in ("url", "routing_key", "source", "runbook_url", "dashboard_url"):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{here}: key '{key}': expected a non-empty string, got {value!r}")
            if key in ("url", "runbook_url", "dashboard_url") and not value.startswith(
                ("http://", "https://")
            ):
                raise ConfigError(f"{here}: key '{key}': expected an http:// or https:// URL, got {value!r}")
            values[key] = value
        elif key == "headers":
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ConfigError(
                    f"{here}: key 'headers': expected a map of header name to string value, "
                    f"such as {{Authorization: Bearer …}}; got {value!r}"
                )
            values[key] = dict(value)
        elif key == "page_improvements":
            if not isinstance(value, bool):
                raise ConfigError(f"{here}: key 'page_improvements': expected true or false, got {value!r}")
            values[key] = value
        elif key == "min_status":
            if value not in MIN_STATUSES:
                raise ConfigError(
                    f"{here}: key 'min_status': expected one of {', '.join(MIN_STATUSES)}, got {value!r}"
                )
            values[key] = value
        elif key == "severity":
            if value not in SEVERITIES:
                raise ConfigError(
                    f"{here}: key 'severity': expected one of {', '.join(SEVERITIES)}, got {value!r}"
                )
            values[key] = value
        elif key == "max_attempts":
            values[key] = int(_number(value, here, key, whole=True))
        else:  # rate_per_minute, timeout_s
            values[key] = _number(value, here, key, whole=False)
    if kind != "pagerduty":
        for key in ("routing_key", "severity", "source"):
            if key in values:
                raise ConfigError(f"{at(key)}: key '{key}' applies to pagerduty notifiers only, not {kind}")
    if kind != "webhook" and "headers" in values:
        raise ConfigError(f"{at('headers')}: key 'headers' applies to webhook notifiers only, not {kind}")
    return NotifierSpec(**values)


def parse_notifiers(value: Any, where: str, node: yaml.Node | None = None) -> list[NotifierSpec]:
    """The validated ``notifiers:`` list; ``node`` (its YAML node) lets errors name each item's line."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: key 'notifiers': expected a list of notifiers {_EXAMPLE}; got {value!r}")
    path = where.rsplit(":", 1)[0] if node is not None else where
    specs = []
    for i, raw in enumerate(value):
        item_where = _line_of(node, i, None, path, f"{where}: notifiers[{i}]")

        def at(key: str, i: int = i, item_where: str = item_where) -> str:
            return _line_of(node, i, key, path, item_where)

        specs.append(_entry(raw, item_where, at))
    return specs


def apply_notifier_env(
    specs: list[NotifierSpec], env: Mapping[str, str], *, from_argument: bool = False
) -> list[NotifierSpec]:
    """Secrets from ``DRIFTWATCH_PAGERDUTY_ROUTING_KEY`` / ``DRIFTWATCH_SLACK_WEBHOOK_URL``.

    They win over the file (a variable alone adds a notifier of its type) but not over an argument
    (``from_argument``: they only fill a missing key). Then every entry must have what it needs to
    send: a URL (Slack, webhook) or a routing key (PagerDuty).
    """
    out = list(specs)
    for kind, (attr, var) in ENV_SECRETS.items():
        secret = env.get(var)
        if not secret:
            continue
        if kind == "slack" and not secret.startswith(("http://", "https://")):
            raise ConfigError(f"environment variable {var}: expected an https:// webhook URL, got {secret!r}")
        values: dict[str, Any] = {attr: secret}
        if any(s.type == kind for s in out):
            out = [
                dataclasses.replace(s, **values)
                if s.type == kind and not (from_argument and getattr(s, attr))
                else s
                for s in out
            ]
        elif not from_argument:
            out.append(NotifierSpec(type=kind, where=f"environment variable {var}", **values))
    for spec in out:
        if spec.type == "pagerduty" and not spec.routing_key:
            raise ConfigError(
                f"{spec.where}: pagerduty notifier without 'routing_key'; set it here or in "
                "DRIFTWATCH_PAGERDUTY_ROUTING_KEY"
            )
        if spec.type != "pagerduty" and not spec.url:
            extra = " or in DRIFTWATCH_SLACK_WEBHOOK_URL" if spec.type == "slack" else ""
            raise ConfigError(f"{spec.where}: {spec.type} notifier without 'url'; set it here{extra}")
    return out
