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

__all__ = ["Printer", "detect", "help_without_action", "write_outcomes"]


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
        sinks.append(JsonlSink(alerts_out))
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


def help_without_action(parser: Any) -> None:
    """``driftwatch ingest`` or ``bench`` without its action: print that command's help, exit status 2."""

    def show_help(args: Any) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(run=show_help)
