"""Recurring task ids: detection of the agent's ability against per-task difficulty (_ability.py)."""

from __future__ import annotations

import math

import numpy as np

from driftwatch import Alert, Config, Monitor, Outcome
from driftwatch._alerting.alerts import describe
from driftwatch._stats import Moments
from driftwatch.detectors import LaggedSR
from driftwatch.detectors._ability import AbilityConfirm, AbilitySR, TaskModel

TAU = 1000


def recurring(seed: int, scenario: str, n_after: int = 3000) -> tuple[list[float], list[int]]:
    """50 recurring tasks, logit sd 2, uniform draws; after TAU: ability −0.5 logits ("drop") or
    80 % of draws from the hardest half with ability unchanged ("mix")."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 2.0, 50)
    t0 = rng.integers(0, 50, TAU)
    if scenario == "mix":
        hard = a <= np.median(a)
        w = np.where(hard, 0.8 / hard.sum(), 0.2 / (~hard).sum())
        t1 = rng.choice(50, n_after, p=w / w.sum())
        shift = 0.0
    else:
        t1 = rng.integers(0, 50, n_after)
        shift = -0.5
    tasks = np.concatenate([t0, t1])
    logits = a[tasks] + np.where(np.arange(len(tasks)) >= TAU, shift, 0.0)
    passed = rng.random(len(tasks)) < 1 / (1 + np.exp(-logits))
    return passed.astype(float).tolist(), tasks.tolist()


def run(xs: list[float], tasks: list[int] | None, monitor: Monitor | None = None) -> list[Alert]:
    monitor = monitor or Monitor(Config(signals=["success"], console=False), threaded=False)
    alerts: list[Alert] = []
    for i, x in enumerate(xs):
        tid = None if tasks is None else f"t{tasks[i]}"
        alerts += monitor.process(Outcome(task="suite", time=float(i), task_id=tid, success=x > 0.5))
    return alerts


def test_ability_drop_paged_against_task_difficulty() -> None:
    """A 0.5-logit drop in ability over 50 recurring tasks of very different difficulty is paged."""
    xs, tasks = recurring(1, "drop")
    pages = [a for a in run(xs, tasks) if a.status == "confirmed" and a.kind == "drift"]
    assert pages and pages[0].direction == "down" and pages[0].signal == "success"
    assert pages[0].detector["name"] == "AbilitySR"
    assert TAU <= pages[0].extra["decided_at"] < TAU + 1000
    assert pages[0].extra["confirm_test"] == "sequential-ability"


def test_task_mix_shift_stays_quiet() -> None:
    """Only the mix moves (to hard tasks): suspected per task but never paged; without ids it pages."""
    xs, tasks = recurring(2, "mix")
    alerts = run(xs, tasks)
    assert not [a for a in alerts if a.status == "confirmed"]
    assert [a for a in alerts if a.status == "suspected"]  # stage one looked; stage two did not page
    iid = run(xs, None)
    assert [a for a in iid if a.status == "confirmed" and a.direction == "down"]


def test_without_task_ids_the_iid_detector_runs() -> None:
    """Outcomes without a task id keep LaggedSR; with one, every task signal gets AbilitySR."""
    monitor = Monitor(Config(console=False, task_signals=["success"]), threaded=False)
    monitor.process(Outcome(task="a", success=True, latency_s=1.0))
    monitor.process(Outcome(task="b", task_id="x", success=True, latency_s=1.0))
    streams = {s.labels["task"]: s for s in monitor._streams.values()}
    assert isinstance(streams["a"].watches["success"].detector, LaggedSR)
    assert isinstance(streams["b"].watches["success"].detector, AbilitySR)
    assert isinstance(streams["b"].watches["latency_s"].detector, LaggedSR)
    default = Monitor(Config(console=False), threaded=False)
    default.process(Outcome(task="b", task_id="x", success=True, latency_s=1.0, output_tokens=10))
    watches = next(iter(default._streams.values())).watches
    assert all(isinstance(watches[name].detector, AbilitySR) for name in ("latency_s", "output_tokens"))
    off = Monitor(Config(console=False, task_signals=[]), threaded=False)
    off.process(Outcome(task="b", task_id="x", success=True))
    assert isinstance(next(iter(off._streams.values())).watches["success"].detector, LaggedSR)


def test_new_and_once_seen_tasks_get_the_pooled_rate() -> None:
    """A task never seen, or seen once, is expected at the pooled rate; a recurring one is shrunk."""
    model = TaskModel("binary")
    for i in range(400):
        model.add(float(i % 4 != 0), f"t{i % 20}")  # tasks 0, 4, 8, ... always fail
    model.add(1.0, "once")
    model.fit()
    pooled = model.pooled.mean
    assert model.expected("never")[0] == model.expected("once")[0] == min(max(pooled, 0.005), 0.995)
    assert model.expected("t0")[0] < 0.1 < 0.9 < model.expected("t1")[0]


def test_task_cap_evicts_least_recently_seen() -> None:
    """Beyond ``max_tasks`` the least recently seen task is forgotten; its outcomes stay pooled."""
    model = TaskModel("binary", max_tasks=2)
    for task in ("a", "b", "a", "c"):
        model.add(1.0, task)
    assert list(model.tasks) == ["a", "c"] and model.pooled.n == 4


def test_ability_confirm_learns_a_misestimated_task() -> None:
    """One task drawn over and over at a rate off its estimate adds bounded evidence, not a page."""
    test = AbilityConfirm("binary", "down")
    post = (math.log(0.6 / 0.4), 0.5)  # estimated 0.6 with a logit sd of 0.5; the task really passes 40 %
    for i in range(2000):
        test.update(float(i % 5 < 2), "t", post)
    assert test.decision != "confirm"


def test_snapshot_keeps_per_task_state() -> None:
    """A restored monitor goes on with the same per-task detector and raises the same alerts."""
    xs, tasks = recurring(1, "drop")
    config = Config(signals=["success"], console=False)
    first = Monitor(config, threaded=False)
    run(xs[:1300], tasks[:1300], first)
    second = Monitor(config, threaded=False)
    second.restore(first.snapshot())
    rest_a = run(xs[1300:], tasks[1300:], first)
    rest_b = run(xs[1300:], tasks[1300:], second)
    assert [(a.status, a.id) for a in rest_a] == [(a.status, a.id) for a in rest_b]
    assert any(a.status == "confirmed" for a in rest_b)


def test_numeric_score_per_task() -> None:
    """Scores with per-task means: a drop of half the within-task sd is paged by AbilitySR."""
    rng = np.random.default_rng(5)
    means = rng.normal(0.0, 2.0, 40)
    monitor = Monitor(Config(signals=["score"], console=False), threaded=False)
    pages = []
    for i in range(4000):
        task = int(rng.integers(0, 40))
        score = means[task] + rng.normal(0.0, 1.0) - (0.5 if i >= TAU else 0.0)
        for alert in monitor.process(Outcome(task="s", time=float(i), task_id=f"t{task}", score=score)):
            if alert.status == "confirmed":
                pages.append(alert)
    assert pages and pages[0].direction == "down" and pages[0].detector["name"] == "AbilitySR"
    assert pages[0].extra["decided_at"] >= TAU
    assert Moments().n == 0


def test_page_names_the_tasks_that_moved_most() -> None:
    """A page of ability names the five task ids that dropped most, with fresh counts and expected rates."""
    rng = np.random.default_rng(7)
    broken = {f"t{i}" for i in range(5)}  # these five start failing every time; the other 45 hold at 80 %
    monitor = Monitor(Config(signals=["success"], console=False), threaded=False)
    pages: list[Alert] = []
    for i in range(4000):
        task = f"t{int(rng.integers(0, 50))}"
        rate = 0.0 if i >= TAU and task in broken else 0.8
        outcome = Outcome(task="suite", time=float(i), task_id=task, success=bool(rng.random() < rate))
        pages += [a for a in monitor.process(outcome) if a.status == "confirmed"]
    assert pages and pages[0].direction == "down"
    moved = pages[0].extra["tasks_moved"]
    named = [row for row in moved if row["task_id"] in broken]
    assert len(moved) == 5 and moved[0] in named and len(named) >= 3  # a healthy task can be unlucky
    assert all(row["mean"] == 0.0 and row["n"] >= 1 and 0.6 < row["expected"] < 0.95 for row in named)
    first = moved[0]
    assert f"moved most: {first['task_id']} 0/{first['n']} vs " in pages[0].message
    assert "moved most: " in describe(pages[0])  # the PagerDuty summary and Slack text are describe()


def test_moved_ranks_by_total_departure_and_skips_the_other_direction() -> None:
    """``AbilityConfirm.moved`` ranks by count times gap; tasks that went the other way are left out."""
    test = AbilityConfirm("binary", "down", alpha=1e-12)
    post = (math.log(0.8 / 0.2), 0.3)
    for task, values in {"once": [0.0], "often": [0.0, 0.0, 1.0, 0.0], "up": [1.0, 1.0]}.items():
        for value in values:
            test.update(value, task, post)
    test.update(0.0, None, post)
    rows = test.moved()
    assert [row["task_id"] for row in rows] == ["often", "once"]
    assert rows[0]["n"] == 4 and rows[0]["mean"] == 0.25 and math.isclose(rows[0]["expected"], 0.8)


def test_unique_task_ids_fall_back_to_the_iid_detector() -> None:
    """Task ids that never recur: at the warm-up's end the watch takes the iid detector it ran alongside."""
    monitor = Monitor(Config(signals=["success"], console=False), threaded=False)
    recurring_monitor = Monitor(Config(signals=["success"], console=False), threaded=False)
    for i in range(600):
        monitor.process(Outcome(task="s", time=float(i), task_id=f"u{i}", success=i % 3 > 0))
        recurring_monitor.process(Outcome(task="s", time=float(i), task_id=f"t{i % 50}", success=i % 3 > 0))
    unique = next(iter(monitor._streams.values())).watches["success"]
    assert isinstance(unique.detector, LaggedSR) and unique.shadow is None
    assert unique.detector.n == 600 and not unique.detector.warming_up
    kept = next(iter(recurring_monitor._streams.values())).watches["success"]
    assert isinstance(kept.detector, AbilitySR) and kept.shadow is None


def tokens(seed: int, scenario: str, n_after: int = 2000) -> tuple[list[float], list[int]]:
    """Output tokens of 50 recurring tasks (log-normal, task means sd 1 on the log scale, within 0.5);
    after TAU: ×1.5 tokens on every task ("up") or 80 % of draws from the dearer half ("mix")."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(math.log(2000), 1.0, 50)
    t0 = rng.integers(0, 50, TAU)
    if scenario == "mix":
        dear = mu >= np.median(mu)
        w = np.where(dear, 0.8 / dear.sum(), 0.2 / (~dear).sum())
        t1, shift = rng.choice(50, n_after, p=w / w.sum()), 0.0
    else:
        t1, shift = rng.integers(0, 50, n_after), math.log(1.5)
    tasks = np.concatenate([t0, t1])
    logs = mu[tasks] + np.where(np.arange(len(tasks)) >= TAU, shift, 0.0) + rng.normal(0, 0.5, len(tasks))
    return np.exp(logs).tolist(), tasks.tolist()


def token_pages(xs: list[float], tasks: list[int] | None) -> list[Alert]:
    monitor = Monitor(Config(signals=["output_tokens"], console=False), threaded=False)
    pages = []
    for i, x in enumerate(xs):
        tid = None if tasks is None else f"t{tasks[i]}"
        outcome = Outcome(task="s", time=float(i), task_id=tid, output_tokens=round(x))
        pages += [a for a in monitor.process(outcome) if a.status == "confirmed"]
    return pages


def test_tokens_per_task_mix_shift_quiet_and_real_change_paged() -> None:
    """Tokens per task: a shift to dearer tasks does not page (it does without ids); ×1.5 tokens does."""
    xs, tasks = tokens(3, "mix")
    assert not token_pages(xs, tasks)
    assert token_pages(xs, None)
    xs, tasks = tokens(4, "up")
    pages = token_pages(xs, tasks)
    assert pages and pages[0].direction == "up" and pages[0].detector["name"] == "AbilitySR"
    assert TAU <= pages[0].extra["decided_at"] < TAU + 300
    moved = pages[0].extra["tasks_moved"]  # in tokens, not on the log scale
    assert moved and all(row["mean"] > row["expected"] > 20 for row in moved)


def test_format_6_snapshot_restores_under_the_new_task_signals_default() -> None:
    """A format-6 snapshot (task_signals was success and score, no warm-up shadow) restores under
    today's default; its watches keep their detectors and go on raising the same alerts."""
    from driftwatch._monitor.snapshot import dumps, loads

    xs, tasks = recurring(1, "drop")
    config = Config(signals=["success"], console=False)
    first = Monitor(config, threaded=False)
    run(xs[:300], tasks[:300], first)  # mid warm-up: the watch still runs its iid shadow
    state = loads(first.snapshot(), "test")
    state["format"] = 6
    state["settings"] = {**state["settings"], "task_signals": ["success", "score"]}
    (key,) = state["streams"]
    stream = loads(state["streams"][key], "test")
    del stream.watches["success"].shadow  # format 6 had no such slot
    state["streams"][key] = dumps(stream)
    second = Monitor(config, threaded=False)
    second.restore(dumps(state))
    watch = next(iter(second._streams.values())).watches["success"]
    assert isinstance(watch.detector, AbilitySR) and watch.shadow is None
    assert any(a.status == "confirmed" for a in run(xs[300:], tasks[300:], second))
    third = Monitor(config, threaded=False)  # the current format, mid warm-up, as it was
    third.restore(first.snapshot())
    assert [(a.status, a.id) for a in run(xs[300:], tasks[300:], third)] == [
        (a.status, a.id) for a in run(xs[300:], tasks[300:], first)
    ]
