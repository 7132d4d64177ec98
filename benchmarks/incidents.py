"""How often the incident grouping rule (``driftwatch/_monitor/incidents.py``) merges unrelated changes.

The rule itself, on synthetic alerts (no detectors: their delays and change-time errors are drawn
from the stated distributions), through the real ``Incidents`` class at ``incident_window_s`` 3600.

One service, ``TASKS`` tasks with ``SIGNALS`` signals each, over 30 days. Every (task, signal)
changes once at an independent uniform time; a version change with no effect (a deploy) reaches
every task's stream at the same times, once a week. Each change gives a drift alert: estimated change
time = true time + N(0, ``CHANGE_ERR_S``), confirmed ``Exp(DELAY_S)`` later, resolved 1–3 days after.
Counted:

* **merged with an unrelated change**: changes whose incident also holds an alert of another change;
* **linked to a no-op version change**: changes whose incident names a version change that did not
  cause them;
* **real upgrade grouped**: a further version change that does move ``UPGRADE_SHARE`` of the tasks
  (one signal each, changes at the upgrade): the share of its alerts in its largest incident.

Run: .venv/bin/python -P benchmarks/incidents.py [--seed 20261203] [--reps 100]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from driftwatch._alerting.alerts import Alert
from driftwatch._monitor.incidents import Incidents
from driftwatch._stats import Estimate

DAY = 86_400.0
SPAN = 30 * DAY
SIGNALS = ("success", "latency_s", "output_tokens", "cost_usd")
WINDOW = 3600.0
CHANGE_ERR_S = 900.0
DELAY_S = 3 * 3600.0
UPGRADE_SHARE = 0.3
_EST = Estimate(0.5, 100, 0.4, 0.6)
_LOWER = Estimate(0.4, 100, 0.3, 0.5)


def _alert(
    ident: str, status: str, task: str, signal: str, change: float, at: float, **extra: object
) -> Alert:
    return Alert(
        id=ident,
        status=status,  # type: ignore[arg-type]
        stream={"service": "svc", "task": task},
        signal=signal,
        direction="down",
        detected_at=at,
        change_at=change,
        baseline=_EST,
        current=_LOWER,
        effect=-0.1,
        effect_ci=(-0.2, 0.0),
        p_value=0.01 if status == "confirmed" else None,
        detector={},
        message="",
    )


def _note(task: str, at: float, version: int) -> Alert:
    return Alert(
        id=f"v{version}-{task}",
        status="annotation",
        stream={"service": "svc", "task": task},
        signal="model",
        direction="none",
        detected_at=at,
        change_at=at,
        baseline=_EST,
        current=_EST,
        effect=0.0,
        effect_ci=(0.0, 0.0),
        p_value=None,
        detector={},
        message="",
        extra={"marker": "model", "before": f"m{version}", "after": f"m{version + 1}"},
        kind="version_change",
    )


def replicate(rng: np.random.Generator, tasks: int, link: bool = True) -> tuple[int, int, int, int, int]:
    """(changes, merged with an unrelated one, linked to a no-op version, upgrade alerts, grouped)."""
    events: list[tuple[float, int, Alert, str]] = []  # (time, order, alert, cause)
    deploys = [7 * DAY * (k + 1) - rng.uniform(0, DAY) for k in range(4)]
    upgrade = rng.uniform(2 * DAY, SPAN - 2 * DAY)
    for k, at in enumerate(sorted([*deploys, upgrade])):
        for t in range(tasks):
            events.append((at, 0, _note(f"t{t}", at, k), ""))
    causes: list[tuple[str, str, str, float]] = []
    for t in range(tasks):
        for s in SIGNALS:
            causes.append((f"c{t}-{s}", f"t{t}", s, rng.uniform(0, SPAN)))
    hit = rng.choice(tasks, max(1, round(UPGRADE_SHARE * tasks)), replace=False)
    for t in hit:
        causes.append((f"u{t}", f"t{t}", str(rng.choice(SIGNALS)), upgrade))
    for cause, task, signal, at in causes:
        change = at + rng.normal(0, CHANGE_ERR_S)
        seen = max(change, at) + rng.exponential(DELAY_S)  # detected after the change happened
        done = seen + rng.uniform(DAY, 3 * DAY)
        ident = f"{cause}-a"
        events.append((seen, 1, _alert(ident, "confirmed", task, signal, change, seen), cause))
        events.append((done, 2, _alert(ident, "resolved", task, signal, change, seen), cause))
    events.sort(key=lambda e: (e[0], e[1]))
    incidents = Incidents(WINDOW)
    members: dict[str, set[str]] = defaultdict(set)
    named: dict[str, bool] = {}
    for _, _, alert, cause in events:
        if not link and alert.kind == "version_change":
            continue  # the rule before version linking: drift alerts grouped by task only
        out = incidents.assign(alert)
        if cause and alert.status == "confirmed":
            incident = out.extra["incident"]
            members[incident].add(cause)
            named[cause] = "incident_summary" in out.extra and out.extra["incident_summary"].startswith(
                "model"
            )
    of = {cause: inc for inc, held in members.items() for cause in held}
    independent = [c for c in of if c.startswith("c")]
    merged = sum(1 for c in independent if len(members[of[c]]) > 1)
    linked = sum(1 for c in independent if named.get(c))
    ups = [c for c in of if c.startswith("u")]
    sizes: dict[str, int] = defaultdict(int)
    for c in ups:
        sizes[of[c]] += 1
    return len(independent), merged, linked, len(ups), max(sizes.values(), default=0)


def report(seed: int, reps: int) -> list[str]:
    started = time.monotonic()
    lines = [
        f"Generated by `python -P benchmarks/incidents.py --seed {seed} --reps {reps}` (incident_window_s "
        f"{WINDOW:.0f}; one service, {len(SIGNALS)} signals per task, each (task, signal) changing once "
        "in 30 days at an independent uniform time; a no-op version change reaching every task weekly; "
        f"change-time error sd {CHANGE_ERR_S / 60:.0f} min, detection delay Exp(mean "
        f"{DELAY_S / 3600:.0f} h); a real upgrade moving {UPGRADE_SHARE:.0%} of the tasks).",
        "",
        "| rule | tasks | independent changes | merged with an unrelated change | linked to a no-op "
        "version change | real upgrade's alerts in one incident |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for rule, tasks in [(r, t) for r in (True, False) for t in (5, 20, 100)]:
        rng = np.random.default_rng(seed + tasks)  # the same worlds for both rules
        total = merged = linked = ups = grouped = 0
        for _ in range(reps):
            n, m, link, u, g = replicate(rng, tasks, rule)
            total, merged, linked, ups, grouped = total + n, merged + m, linked + link, ups + u, grouped + g
        name = "task, or the stream's version change" if rule else "task only (drift alerts not linked)"
        lines.append(
            f"| {name} | {tasks} | {total:,} | {merged:,} ({merged / total:.2%}) | "
            f"{linked:,} ({linked / total:.2%}) | {grouped:,} of {ups:,} ({grouped / ups:.1%}) |"
        )
    lines += ["", f"_Run time {time.monotonic() - started:.0f} s._", ""]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--reps", type=int, default=100)
    args = parser.parse_args(argv)
    print("\n".join(report(args.seed, args.reps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
