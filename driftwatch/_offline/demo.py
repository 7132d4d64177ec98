"""``driftwatch demo``: a simulated agent on the real anthropic SDK against a local fake API.

Two task streams run side by side. ``fix-tests`` silently degrades half-way (a serving change:
pass rate 78% → 60%, answers 35% shorter); ``summarize`` stays healthy. driftwatch watches both
through ``driftwatch.watch`` and ``driftwatch.task`` exactly as a user's agent would, and the demo
prints each alert with its statistics and the detection delay against the known truth.
"""

from __future__ import annotations

import bisect
import math
import os
import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import anthropic

import driftwatch
from driftwatch._alerting.alerts import Alert, ConsoleSink, InMemorySink, describe
from driftwatch._alerting.otel import telemetry_from_env
from driftwatch._config import load_config
from driftwatch._offline.fake_api import FakeMessagesAPI, Reply
from driftwatch._outcome import DEFAULT_SIGNALS

__all__ = ["demo_settings", "run_demo"]

#: What the demo watches unless configured otherwise: the fake API's latency is this machine's,
#: not a model's.
DEMO_SIGNALS = ["success", "output_tokens"]


def demo_settings(
    config_path: str | None = None, *, notify: bool = False, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The settings the demo puts over ``--config`` and ``DRIFTWATCH_*`` (which it otherwise honours).

    - ``console=False``: the demo prints alerts itself.
    - ``notifiers=[]`` and ``markers=[]`` unless ``notify``: a simulated degradation must not page
      the PagerDuty service or annotate the dashboards a config file or ``DRIFTWATCH_*`` secrets
      point at; ``--notify`` sends the demo's alerts there (an end-to-end test of the paging path).
    - ``service="demo-agent"`` unless the file or ``DRIFTWATCH_SERVICE`` names one (not
      ``OTEL_SERVICE_NAME``: that names the production process whose telemetry the demo would join).
    - ``signals`` = success and output tokens unless the file or ``DRIFTWATCH_*`` set them.

    Raises ``ConfigError`` for a bad file or variable.
    """
    env = os.environ if env is None else env
    own = load_config(config_path, env={k: v for k, v in env.items() if k != "OTEL_SERVICE_NAME"})
    settings: dict[str, Any] = {"console": False}
    if not notify:
        settings.update(notifiers=[], markers=[])
    if own.service == "unknown_service":
        settings["service"] = "demo-agent"
    if own.signals == list(DEFAULT_SIGNALS):
        settings["signals"] = DEMO_SIGNALS
    return settings


@dataclass
class StreamPlan:
    name: str
    pass_before: float
    pass_after: float
    tokens_before: float
    tokens_after: float
    starts: list[float] = field(default_factory=list)


def _progress(out: TextIO, done: int, total: int) -> None:
    if not out.isatty():
        return
    width = 30
    filled = width * done // total
    out.write(f"\r  simulating tasks [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        out.write("\n")
    out.flush()


def run_demo(
    tasks_per_stream: int = 1000,
    change_at: int = 500,
    seed: int = 7,
    out: TextIO | None = None,
    *,
    config_path: str | None = None,
    notify: bool = False,
    alerts_out: str | None = None,
) -> int:
    """Run the demo; returns 0 when the degrading stream alerts and the healthy one stays quiet.

    ``alerts_out`` writes every alert as Alert JSON lines to that path (as ``replay --alerts-out``),
    over the config's ``alerts_out``.

    Settings come from ``config_path`` (else ``DRIFTWATCH_CONFIG``) and ``DRIFTWATCH_*`` as for
    every command, under :func:`demo_settings`.
    """
    out = out or sys.stdout
    rng = random.Random(seed)  # the agent's test results
    rng_api = random.Random(seed + 1)  # the fake API's answers (drawn on the server's thread)
    plans = {
        "fix-tests": StreamPlan("fix-tests", 0.78, 0.60, 400.0, 260.0),
        "summarize": StreamPlan("summarize", 0.90, 0.90, 150.0, 150.0),
    }
    state = {"degraded": False}

    def profile(request: dict[str, Any], headers: dict[str, str]) -> Reply:
        plan = plans[headers.get("x-fake-task", "summarize")]
        median = plan.tokens_after if state["degraded"] else plan.tokens_before
        tokens = max(1, int(rng_api.lognormvariate(math.log(median), 0.35)))
        return Reply(model="claude-sonnet-4-6", output_tokens=tokens, tool_calls=rng_api.random() < 0.3)

    memory = InMemorySink()
    telemetry = telemetry_from_env()
    runtime = driftwatch.configure(
        config_path,
        # Added to the configured sinks (OTLP, an alerts_out file): the demo prints to `out` itself
        # and pages nobody unless --notify (demo_settings).
        sinks=[ConsoleSink(out), memory],
        telemetry=telemetry,
        **demo_settings(config_path, notify=notify),
        **({"alerts_out": alerts_out} if alerts_out else {}),
    )
    cfg = runtime.config
    print(
        "driftwatch demo: a simulated coding agent on the real anthropic SDK, against a local fake API",
        file=out,
    )
    print(
        f"  streams: fix-tests (degrades at task {change_at}: pass 78% -> 60%, answers 35% shorter), "
        "summarize (healthy)",
        file=out,
    )
    paging = (
        f"{len(cfg.notifiers)} notifier(s) and {len(cfg.markers)} marker(s) (--notify)"
        if notify
        else ("notifiers and markers off (--notify sends to the configured ones)")
    )
    print(
        f"  settings: {config_path or os.environ.get('DRIFTWATCH_CONFIG') or 'defaults'} and DRIFTWATCH_*: "
        f"service {cfg.service}, warmup {cfg.warmup}, lag {cfg.lag}, budget {cfg.budget:g}, "
        f"signals {','.join(cfg.signals)}; {paging}"
        + (f"; alerts to {cfg.alerts_out}" if cfg.alerts_out else ""),
        file=out,
    )
    with FakeMessagesAPI(profile) as api:
        client = driftwatch.watch(
            anthropic.Anthropic(api_key="demo-key", base_url=api.base_url, max_retries=0)
        )
        total = tasks_per_stream * len(plans)
        done = 0
        for i in range(tasks_per_stream):
            state["degraded"] = i >= change_at
            for plan in plans.values():
                with driftwatch.task(plan.name, task_id=f"{plan.name}-{i}", language="python") as t:
                    plan.starts.append(t.started_at)
                    kwargs: dict[str, Any] = {
                        "model": "claude-sonnet-4-6",
                        "max_tokens": 1024,
                        "messages": [{"role": "user", "content": f"task {plan.name} #{i}"}],
                        "extra_headers": {"x-fake-task": plan.name},
                    }
                    if i % 2:
                        with client.messages.stream(**kwargs) as stream:
                            stream.get_final_message()
                    else:
                        client.messages.create(**kwargs)
                    p = plan.pass_after if state["degraded"] else plan.pass_before
                    t.record(success=rng.random() < p)
                done += 1
                _progress(sys.stderr, done, total)
    runtime.monitor.flush(10.0)
    stats = runtime.monitor.stats.as_dict()
    driftwatch.shutdown()
    return _report(out, memory.alerts, plans, change_at, stats)


def _index(plan: StreamPlan, at: float) -> int:
    return max(0, bisect.bisect_right(plan.starts, at) - 1)


def _report(
    out: TextIO, alerts: list[Alert], plans: dict[str, StreamPlan], change_at: int, stats: dict[str, Any]
) -> int:
    print("\nResults", file=out)
    print(
        f"  outcomes processed: {stats['processed']}, dropped: {stats['dropped_queue_full']}, "
        f"alerts: {stats['alerts']}",
        file=out,
    )
    ok = True
    for plan in plans.values():
        mine = [a for a in alerts if a.stream.get("task") == plan.name]
        degrading = plan.pass_after != plan.pass_before
        print(
            f"\n  stream task={plan.name} "
            f"({'degrades at task ' + str(change_at) if degrading else 'healthy'})",
            file=out,
        )
        if not mine:
            print("    no alert", file=out)
        for alert in mine:
            found = _index(plan, alert.detected_at)
            began = _index(plan, alert.change_at)
            kind = alert.stream.get("kind", "task")
            truth = f", {found - change_at} tasks after the true change" if degrading else " (false alarm)"
            print(f"    [{alert.status}] {kind} {describe(alert)}", file=out)
            print(f"      detected at task {found}{truth}; change estimated at task {began}", file=out)
            if "decided_at" in alert.extra:
                decided = _index(plan, float(alert.extra["decided_at"]))
                print(
                    f"      {alert.status} at task {decided} on {alert.current.n} fresh observations",
                    file=out,
                )
            print(
                f"      effect {alert.effect:.3g} "
                f"(95% CI {alert.effect_ci[0]:.3g} .. {alert.effect_ci[1]:.3g}), "
                f"baseline n={alert.baseline.n}, current n={alert.current.n}",
                file=out,
            )
        pages: dict[str, list[Alert]] = {}
        for alert in mine:
            if alert.status == "confirmed" and "incident" in alert.extra:
                pages.setdefault(str(alert.extra["incident"]), []).append(alert)
        for incident, members in pages.items():
            moved = ", ".join(f"{a.stream.get('kind', 'task')} {a.signal} {a.direction}" for a in members)
            print(f"    one page: incident {incident}, {len(members)} signals moved ({moved})", file=out)
        confirmed_success = [a for a in mine if a.signal == "success" and a.status == "confirmed"]
        if degrading and not confirmed_success:
            ok = False
        if not degrading and any(a.status == "confirmed" for a in mine):
            ok = False
    print(
        "\n  verdict: " + ("degradation caught, healthy stream quiet" if ok else "UNEXPECTED: see above"),
        file=out,
    )
    return 0 if ok else 1
