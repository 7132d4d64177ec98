"""``driftwatch alert test``: one synthetic alert through every configured notifier and marker."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from driftwatch._config import ConfigError, load_config

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    alert = sub.add_parser(
        "alert",
        help="alert test: send a synthetic alert through every configured notifier",
        description="Alert tools. 'driftwatch alert test' sends one synthetic confirmed alert, then its "
        "resolve, through every configured notifier (PagerDuty, Slack, webhook) and reports per notifier "
        "whether each was delivered or why not; exits 1 if any failed.\n\n"
        "example: driftwatch alert test --config driftwatch.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    alert_sub = alert.add_subparsers(dest="alert_command", metavar="ACTION", required=True)
    alert_test = alert_sub.add_parser(
        "test",
        help="send one synthetic alert and its resolve to every notifier",
        description="Send one synthetic confirmed alert, then its resolve, through every configured "
        "notifier and marker destination; print per destination whether each was delivered or why not; "
        "exit 1 if any failed, 2 if none is configured.\n\n"
        "example: DRIFTWATCH_SLACK_WEBHOOK_URL=https://hooks.slack.com/services/... driftwatch alert test",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    alert_test.add_argument("--config", metavar="FILE", help="YAML config file with a 'notifiers:' list")
    alert_test.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for all deliveries (default 30)"
    )
    alert_test.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from driftwatch._alerting.notifiers import build_notifiers, synthetic_alert

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"driftwatch: {exc}", file=sys.stderr)
        return 2
    if not config.notifiers and not config.markers:
        print(
            "driftwatch: no notifiers or markers configured; add a 'notifiers:' list (or 'markers:') to the "
            "config file (--config or DRIFTWATCH_CONFIG) or set DRIFTWATCH_PAGERDUTY_ROUTING_KEY / "
            "DRIFTWATCH_SLACK_WEBHOOK_URL / DRIFTWATCH_HONEYCOMB_API_KEY / DRIFTWATCH_GRAFANA_TOKEN",
            file=sys.stderr,
        )
        return 2
    notifiers = build_notifiers(config)
    alert = synthetic_alert(config.service)
    # Each sink with the synthetic events it must deliver: notifiers a page and its resolve, markers
    # (Honeycomb, Grafana) a version-change marker.
    plan: list[tuple[Any, list[tuple[str, str]]]] = []
    for notifier in notifiers:
        notifier.export(alert)
        notifier.export(alert.with_status("resolved", message="synthetic test alert resolved"))
        plan.append((notifier, [(alert.id, "trigger"), (alert.id, "resolve")]))
    if config.markers:
        from driftwatch._alerting.markers import build_markers, synthetic_version_change

        change = synthetic_version_change(config.service)
        for marker in build_markers(config):
            marker.export(change)
            plan.append((marker, [(change.id, "note")]))
    failed = 0
    for i, (sink, wanted) in enumerate(plan):
        ok = True
        finished = sink.flush(args.timeout)
        sink.shutdown(0.1)
        done = {(d.alert_id, d.action): d for d in sink.deliveries()}
        parts = []
        for alert_id, action in wanted:
            label = "marker" if action == "note" else action
            d = done.get((alert_id, action))
            if d is not None and d.ok:
                parts.append(f"{label} delivered")
            else:
                ok = False
                why = (
                    d.reason
                    if d is not None
                    else ("not sent" if finished else f"no answer in {args.timeout:g} s")
                )
                parts.append(f"{label} FAILED: {why}")
        failed += not ok
        print(f"{i + 1}. {sink.name}: " + "; ".join(parts))
    what = "destinations delivered everything" if config.markers else "notifiers delivered both"
    print(f"test alert {alert.id}: {len(plan) - failed} of {len(plan)} {what}")
    return 1 if failed else 0
