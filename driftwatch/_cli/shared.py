"""What several subcommands share: printing alerts, running outcomes through detection, writing them."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from driftwatch._alerting.alerts import Alert, JsonlSink, describe, resolved_at
from driftwatch._cli.progress import Progress
from driftwatch._config import Config
from driftwatch._monitor import Monitor
from driftwatch._outcome import Outcome, format_time

__all__ = [
    "EXIT_UNDELIVERED",
    "Printer",
    "add_paging_arguments",
    "detect",
    "help_without_action",
    "paging_notifiers",
    "summarise_paging",
    "write_outcomes",
]

#: Exit code of a run whose notifiers gave up on or dropped some notifications.
EXIT_UNDELIVERED = 3


class Printer:
    """Prints each alert as it is raised, in event time, to stdout."""

    def export(self, alert: Alert) -> None:
        resolved = resolved_at(alert)
        if resolved is not None:
            # A resolve is news at the time it resolved, not at the old detection time.
            print(f"[{alert.status}] {format_time(resolved)} {describe(alert)}")
            print(
                f"    resolved at {format_time(resolved)}; detected at {format_time(alert.detected_at)}, "
                f"change at {format_time(alert.change_at)}; id {alert.id}"
            )
            return
        print(f"[{alert.status}] {format_time(alert.detected_at)} {describe(alert)}")
        print(
            f"    change at {format_time(alert.change_at)}, {alert.delay} observations before detection; "
            f"effect {alert.effect:.3g} (95% CI {alert.effect_ci[0]:.3g} .. {alert.effect_ci[1]:.3g}); "
            f"id {alert.id}"
        )

    def shutdown(self) -> None:
        pass


def write_outcomes(path: str, outcomes: Sequence[Outcome], append: bool = False) -> bool:
    """Outcomes as outcome JSONL (the replay format); False, with the reason printed, when it fails."""
    import json

    try:
        with open(path, "a" if append else "w", encoding="utf-8") as fh:
            for outcome in outcomes:
                fh.write(json.dumps(outcome.to_dict()) + "\n")
    except OSError as exc:
        print(f"driftwatch: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return False
    return True


def detect(
    config: Config,
    outcomes: Sequence[Outcome],
    alerts_out: str | None,
    label: str,
    extra: Sequence[Any] = (),
    flush_timeout: float = 30.0,
) -> tuple[Monitor, str]:
    """Runs outcomes (in event order) through a monitor that prints each alert (and writes them to
    ``alerts_out``), with a progress bar on a terminal; the monitor and its alert counts as text."""
    sinks: list[Any] = [Printer(), *extra]
    if alerts_out:
        sinks.append(JsonlSink(alerts_out, append=False))
    monitor = Monitor(config, sinks, threaded=False)
    progress = Progress(len(outcomes), label)
    for i, outcome in enumerate(outcomes, 1):
        monitor.process(outcome)
        progress.update(i)
    for sink in extra:  # notifiers: deliver what is queued before shutting down
        flush = getattr(sink, "flush", None)
        if callable(flush):
            flush(flush_timeout)
    monitor.shutdown()
    counts = ", ".join(f"{k} {v}" for k, v in sorted(monitor.stats.alerts.items())) or "none"
    return monitor, counts


def add_paging_arguments(parser: Any) -> None:
    """``--no-notify`` and ``--notify-timeout`` for a command that pages like the service does."""
    parser.add_argument(
        "--no-notify",
        action="store_true",
        help="do not send alerts to the configured notifiers (PagerDuty, Slack, webhook); only print them",
    )
    parser.add_argument(
        "--notify-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="at the end, wait this long for notifiers to deliver what is queued (default 30)",
    )


def paging_notifiers(config: Config, no_notify: bool) -> list[Any]:
    """The config's notifiers unless ``no_notify``; the first line of output says which way it is."""
    if config.notifiers and not no_notify:
        from driftwatch._alerting.notifiers import build_notifiers

        notifiers = build_notifiers(config)
        print(
            "paging: alerts also go to "
            + ", ".join(n.name for n in notifiers)
            + " (the notifiers in the config; --no-notify to only print them)",
            flush=True,
        )
        return notifiers
    if config.notifiers:
        print(
            f"not paging: --no-notify; the {len(config.notifiers)} notifiers in the config get nothing",
            flush=True,
        )
    return []


def summarise_paging(notifiers: Sequence[Any]) -> int:
    """Print one delivery line per notifier; EXIT_UNDELIVERED (saying so) when any lost one, else 0."""
    for notifier in notifiers:
        print(f"notifier {notifier.summary()}", flush=True)
    undelivered = sum(n.undelivered() for n in notifiers)
    if not undelivered:
        return 0
    # A script or CI job that pages must see that on-call did not get everything.
    print(
        f"driftwatch: {undelivered} notifications were not delivered (see the notifier lines above); "
        f"exit code {EXIT_UNDELIVERED}",
        file=sys.stderr,
    )
    return EXIT_UNDELIVERED


def help_without_action(parser: Any) -> None:
    """``driftwatch ingest`` or ``bench`` without its action: print that command's help, exit status 2."""

    def show_help(args: Any) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(run=show_help)
