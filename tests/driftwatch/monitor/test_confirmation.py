"""Stage two in the Monitor (issue 15): sequential confirmation, withdrawal on evidence, no contamination."""

from __future__ import annotations

import math
import random

from driftwatch import Alert, Config, Monitor, Outcome
from driftwatch._monitor.watch import _SignalWatch


def watch_of(monitor: Monitor, signal: str) -> _SignalWatch:
    (stream,) = monitor._streams.values()
    return stream.watches[signal]


def test_a_real_change_is_paged_with_confirmed_at_and_the_fresh_count() -> None:
    """0.51 -> 0.38 over 5 seeds: paged, saying on how many fresh observations and by which test."""
    for seed in range(5):
        monitor = Monitor(Config(signals=["success"]), threaded=False)
        rng = random.Random(seed)
        pages: list[Alert] = []
        for i in range(3000):
            rate = 0.51 if i < 1000 else 0.38
            pages += [
                a
                for a in monitor.process(Outcome(task="t", time=float(i), success=rng.random() < rate))
                if a.status == "confirmed"
            ]
        page = next(a for a in pages if a.change_at >= 900)
        n = page.extra["fresh_n"]
        assert page.direction == "down" and n >= 1, seed
        assert page.extra["confirmed_at"] == page.detected_at + n  # one outcome per time unit
        assert page.to_dict()["confirmed_at"].startswith("1970-01-01T")
        assert f"confirmed on {n} fresh observations (sequential mixture likelihood ratio" in page.message
        assert page.extra["log_evidence"] >= math.log(20) - 1e-9
        assert page.extra["confirmed_at"] - 1000 < 1500, seed  # paged within the horizon


def test_false_alarms_are_withdrawn_on_evidence_of_the_baseline() -> None:
    """No change, a loose stage one (budget 1e-2): most suspicions are withdrawn, each on evidence."""
    monitor = Monitor(Config(signals=["success"], budget=1e-2), threaded=False)
    rng = random.Random(11)
    decided: list[Alert] = []
    for i in range(6000):
        alerts = monitor.process(Outcome(task="t", time=float(i), success=rng.random() < 0.51))
        decided += [a for a in alerts if a.status != "suspected"]
    withdrawn = [a for a in decided if a.extra.get("resolved_by") == "withdrawn"]
    assert len(withdrawn) >= 5 and len(withdrawn) >= 0.7 * len(decided), [a.message for a in decided]
    for alert in withdrawn:
        assert alert.extra["log_no_change"] >= math.log(100) - 1e-9  # 1 / withdraw_beta
        assert f"withdrawn on {alert.extra['fresh_n']} fresh observations: at the baseline" in alert.message


def suspect_latency(monitor: Monitor, rng: random.Random) -> tuple[int, Alert]:
    """1,000 log-normal latencies, then a 1-sd rise until the first suspicion: (index, alert)."""
    for i in range(5000):
        level = 0.0 if i < 1000 else 0.5
        for a in monitor.process(Outcome(task="t", time=float(i), latency_s=math.exp(rng.gauss(level, 0.5)))):
            if a.status == "suspected":
                return i, a
    raise AssertionError("no suspicion")


def test_undecided_stays_suspected_then_closes_inconclusive_without_contamination() -> None:
    """Half min_shift: neither ratio moves; suspected until max_fresh, then resumed from before."""
    monitor = Monitor(Config(signals=["latency_s"], max_fresh=400), threaded=False)
    i, suspected = suspect_latency(monitor, random.Random(3))
    watch = watch_of(monitor, "latency_s")
    base = watch.baseline
    between = math.exp(base.mean + 0.1 * math.sqrt(base.var))  # 0.1 sd: evidence for neither side
    for k in range(399):
        assert monitor.process(Outcome(task="t", time=float(i + 1 + k), latency_s=between)) == []
    assert [a.id for a in monitor.open_alerts()] == [suspected.id]
    (closed,) = monitor.process(Outcome(task="t", time=float(i + 400), latency_s=between))
    assert (closed.id, closed.status, closed.extra["resolved_by"]) == (
        suspected.id,
        "resolved",
        "inconclusive",
    )
    assert "inconclusive after 400 fresh observations" in closed.message
    # The suspected period (alarm window and fresh observations) entered no baseline.
    assert watch.detector.observed.n == base.n and watch.detector.observed.mean == base.mean


def test_a_withdrawal_extends_the_baseline_only_with_what_was_shown_at_it() -> None:
    """Withdrawn: the detector resumes from everything up to the alarm plus the fresh observations."""
    monitor = Monitor(Config(signals=["latency_s"]), threaded=False)
    i, _ = suspect_latency(monitor, random.Random(5))
    watch = watch_of(monitor, "latency_s")
    history, base = watch.history, watch.baseline
    rng = random.Random(6)
    t = i
    while watch.active is not None:
        t += 1
        monitor.process(Outcome(task="t", time=float(t), latency_s=math.exp(rng.gauss(base.mean, 0.5))))
    assert watch.open is None  # withdrawn, not paged
    assert watch.detector.observed.n == history.n + (t - i)


def test_a_real_change_after_an_inconclusive_suspicion_is_detected_as_fast() -> None:
    """Over 6 seeds: after an inconclusive close the next real change is found as fast as the first."""
    checked = 0
    for seed in range(6):
        monitor = Monitor(Config(signals=["latency_s"], max_fresh=300), threaded=False)
        rng = random.Random(seed)
        i, _ = suspect_latency(monitor, rng)
        first_delay = i - 999
        if first_delay <= 0:
            continue  # a false alarm before the change: not this test's case
        checked += 1
        watch = watch_of(monitor, "latency_s")
        base = watch.baseline
        sd = math.sqrt(base.var)
        t = i
        for _ in range(300):  # undecided: closed as inconclusive
            t += 1
            monitor.process(Outcome(task="t", time=float(t), latency_s=math.exp(base.mean + 0.1 * sd)))
        assert watch.active is None and watch.open is None
        start = t
        while True:
            t += 1
            alerts = monitor.process(
                Outcome(task="t", time=float(t), latency_s=math.exp(rng.gauss(base.mean + sd, sd)))
            )
            if any(a.status == "suspected" for a in alerts):
                break
        assert t - start <= max(2 * first_delay, first_delay + 20), (seed, first_delay, t - start)
    assert checked >= 4


def tracker(seed: int) -> list[tuple[int, Alert]]:
    """A daily suite of 50 recurring tasks: 20 days at 40 %, a model release to 51 %, 30 days later 38 %."""
    rng = random.Random(seed)
    difficulty = [rng.gauss(0.0, 1.0) for _ in range(50)]

    def rates(mean: float) -> list[float]:
        lo, hi = -10.0, 10.0
        for _ in range(60):
            c = (lo + hi) / 2
            if sum(1 / (1 + math.exp(-(c + a))) for a in difficulty) / 50 < mean:
                lo = c
            else:
                hi = c
        return [1 / (1 + math.exp(-(c + a))) for a in difficulty]

    p40, p51, p38 = rates(0.40), rates(0.51), rates(0.38)
    monitor = Monitor(Config(signals=["success"]), threaded=False)
    out: list[tuple[int, Alert]] = []
    i = 0
    for day in range(64):
        p = p40 if day < 20 else p51 if day < 50 else p38
        order = list(range(50))
        rng.shuffle(order)
        for task in order:
            outcome = Outcome(
                task="suite",
                time=float(i),
                model="v1" if day < 20 else "v2",
                task_id=f"t{task}",
                success=rng.random() < p[task],
            )
            out += [(i, a) for a in monitor.process(outcome)]
            i += 1
    return out


def test_a_silent_drop_after_an_upgrade_pages_as_a_regression() -> None:
    """The tracker: the 51 % -> 38 % drop is paged (down), not resolved as "back at the baseline"."""
    paged = 0
    for seed in range(5):
        out = tracker(seed)
        drops = [
            a
            for i, a in out
            if a.kind == "drift" and a.status == "confirmed" and a.direction == "down" and 2500 <= i < 3200
        ]
        recovered = [a for i, a in out if a.extra.get("resolved_by") == "recovery" and i >= 2500]
        assert recovered == [], seed
        paged += bool(drops)
        for alert in drops:
            if "regression_after" in alert.extra:
                assert "a regression after the improvement" in alert.message
    assert paged >= 4


def test_the_upgrade_is_recognised_by_a_comparison_stratified_by_task() -> None:
    """The tracker's 40 % -> 51 % model release: Cochran–Mantel–Haenszel on 400 outcomes a side.

    One pair per task (McNemar on 50 pairs) found no difference in these seeds."""
    for seed in range(5):
        (verdict,) = [a for _, a in tracker(seed) if a.kind == "version_comparison"]
        assert (verdict.status, verdict.direction, verdict.extra["test"]) == (
            "confirmed",
            "up",
            "cochran-mantel-haenszel",
        ), seed
        assert verdict.extra["pairs"] == 50 and verdict.extra["before_n"] == verdict.extra["after_n"] == 400
        assert "within 50 tasks" in verdict.message


def test_cmh_matches_the_reference_and_reduces_to_the_pooled_test_in_one_stratum() -> None:
    """compare_stratified_binary: the CMH statistic by hand; one stratum is the two-proportion z-test
    up to the (n - 1) / n variance factor; one-sided strata drop out."""
    from driftwatch._stats import Moments, compare_proportions, compare_stratified_binary

    strata = [(10, 4, 12, 9), (8, 6, 9, 8), (15, 3, 11, 5), (0, 0, 7, 3)]
    z_num = z_var = 0.0
    for n0, k0, n1, k1 in strata[:3]:
        n, m = n0 + n1, k0 + k1
        z_num += k1 - n1 * m / n
        z_var += n1 * n0 * m * (n - m) / (n * n * (n - 1))
    result = compare_stratified_binary(strata)
    expected = math.erfc(abs(z_num) / math.sqrt(z_var) / math.sqrt(2))
    assert math.isclose(result.p_value, expected, rel_tol=1e-9)
    assert result.baseline.n == 33 and result.current.n == 32 and result.effect > 0
    one = compare_stratified_binary([(400, 160, 400, 204)])
    pooled = compare_proportions(Moments(400, 0.4, 0.0), Moments(400, 0.51, 0.0), "two-sided")
    assert math.isclose(one.effect, 0.11) and abs(one.p_value - pooled.p_value) < 0.001


def test_a_format_4_snapshot_restores_under_the_new_stage_two_settings() -> None:
    """Formats 3 and 4 were taken under confirm_alpha 0.01 (a fixed-sample level): they restore under
    today's settings, and a suspected alert of theirs goes on under the sequential test."""
    from driftwatch._monitor.snapshot import dumps, loads

    monitor = Monitor(Config(signals=["latency_s"]), threaded=False)
    i, suspected = suspect_latency(monitor, random.Random(7))
    for k in range(3):  # a few fresh observations, as the old test had collected them
        monitor.process(Outcome(task="t", time=float(i + 1 + k), latency_s=math.exp(1.0)))
    state = loads(monitor.snapshot(), "test")
    state["format"] = 4
    state["settings"] = {**state["settings"], "confirm_alpha": 0.01}
    for name in ("withdraw_beta", "min_shift", "max_fresh"):
        del state["settings"][name]
    (key,) = state["streams"]
    stream = loads(state["streams"][key], "test")
    watch = stream.watches["latency_s"]
    watch.test = None  # format 4 had no sequential test: it is made from the fresh moments
    state["streams"][key] = dumps(stream)
    restored = Monitor(Config(signals=["latency_s"]), threaded=False)
    restored.restore(dumps(state))
    assert [a.id for a in restored.open_alerts()] == [suspected.id]
    t, decided = i + 3, []
    while not decided:
        t += 1
        decided = restored.process(Outcome(task="t", time=float(t), latency_s=math.exp(1.0)))
    (page,) = decided
    assert (page.id, page.status) == (suspected.id, "confirmed")
    assert page.extra["fresh_n"] == t - i  # the three before the snapshot count
