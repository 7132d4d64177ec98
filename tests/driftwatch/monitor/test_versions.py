"""Version markers: a change is annotated, compared before/after (paired by task id), and bounded."""

from __future__ import annotations

import math
import random

import pytest

from driftwatch import Alert, Config, InMemorySink, Monitor, Outcome
from driftwatch._monitor.versions import VersionTracker, _Recent


def feed(
    monitor: Monitor,
    phases: list[tuple[dict[str, str | None], float, int]],
    *,
    seed: int = 1,
    task_ids: int = 0,
    latency: float = 2.0,
) -> list[Alert]:
    """Outcomes per phase (markers, pass rate, count): model from ``model``, the rest as labels."""
    rng = random.Random(seed)
    alerts: list[Alert] = []
    i = 0
    for markers, rate, count in phases:
        labels = {k: v for k, v in markers.items() if k != "model" and v is not None}
        for _ in range(count):
            i += 1
            outcome = Outcome(
                task="fix",
                time=float(i),
                model=markers.get("model"),
                labels=dict(labels),
                task_id=f"t{i % task_ids}" if task_ids else None,
                success=rng.random() < rate,
                latency_s=rng.lognormvariate(math.log(latency), 0.3),
            )
            alerts += monitor.process(outcome)
    return alerts


def of(alerts: list[Alert], kind: str) -> list[Alert]:
    return [a for a in alerts if a.kind == kind]


def test_model_change_is_annotated_then_compared() -> None:
    """A model change gives an annotation at once and, once the after side fills, one verdict per signal."""
    monitor = Monitor(Config(signals=["success", "latency_s"]), threaded=False)
    alerts = feed(monitor, [({"model": "m-1"}, 0.8, 300), ({"model": "m-2"}, 0.45, 400)])
    (note,) = of(alerts, "version_change")
    assert note.status == "annotation" and note.signal == "model" and note.detected_at == 301.0
    assert {k: note.extra[k] for k in ("marker", "before", "after")} == {
        "marker": "model",
        "before": "m-1",
        "after": "m-2",
    }
    assert note.p_value is None and note.to_dict()["kind"] == "version_change"
    verdicts = {a.signal: a for a in of(alerts, "version_comparison")}
    assert set(verdicts) == {"success", "latency_s"}
    success, latency = verdicts["success"], verdicts["latency_s"]
    # The after side stops at the before side's size: decided on the 300th outcome after the change.
    assert success.detected_at == 600.0 and success.change_at == 301.0
    assert success.status == "confirmed" and success.direction == "down" and success.effect < -0.2
    assert success.effect_ci[0] < success.effect < success.effect_ci[1] < 0
    assert success.extra["test"] == "two-proportion-z" and success.extra["pairs"] == 0
    assert success.extra["bh_m"] == 2 and success.extra["q_value"] <= 0.05
    assert (success.baseline.n, success.current.n) == (300, 300)
    assert latency.status == "resolved" and "no difference found" in latency.message
    assert success.id != latency.id and success.to_dict()["kind"] == "version_comparison"
    assert monitor.stats.comparisons_completed == 1
    assert monitor.stats.alerts["version_change:annotation"] == 1


def test_pairs_by_task_id() -> None:
    """With each task id once a side the comparison is paired: exact McNemar and paired t, pairs counted."""
    monitor = Monitor(Config(signals=["success", "latency_s"]), threaded=False)
    alerts = feed(monitor, [({"model": "m-1"}, 0.8, 120), ({"model": "m-2"}, 0.5, 120)], task_ids=120, seed=4)
    verdicts = {a.signal: a for a in of(alerts, "version_comparison")}
    assert verdicts["success"].extra["test"] == "mcnemar-exact"
    assert verdicts["latency_s"].extra["test"] == "paired-t"
    assert verdicts["success"].extra["pairs"] == 120 and verdicts["success"].status == "confirmed"


def test_recurring_task_ids_are_stratified_by_task() -> None:
    """Task ids that recur within a side (60 ids, 120 outcomes a side): pass/fail is compared within
    each task (Cochran–Mantel–Haenszel) on every outcome; numeric signals stay paired by task."""
    monitor = Monitor(Config(signals=["success", "latency_s"]), threaded=False)
    alerts = feed(monitor, [({"model": "m-1"}, 0.8, 120), ({"model": "m-2"}, 0.5, 120)], task_ids=60, seed=4)
    verdicts = {a.signal: a for a in of(alerts, "version_comparison")}
    success = verdicts["success"]
    assert success.extra["test"] == "cochran-mantel-haenszel" and success.extra["pairs"] == 60
    assert success.baseline.n == success.current.n == 120 and success.status == "confirmed"
    assert "120 observations before, 120 after, within 60 tasks" in success.message
    assert verdicts["latency_s"].extra["test"] == "paired-t"


def test_labels_are_markers_and_first_values_are_not_changes() -> None:
    """`app.version` is read from labels; the first value and outcomes without a marker change nothing."""
    monitor = Monitor(Config(signals=["success"]), threaded=False)
    alerts = feed(
        monitor,
        [
            ({"app.version": None}, 0.8, 50),
            ({"app.version": "2.1.0", "effort": "high"}, 0.8, 50),
            ({"app.version": None}, 0.8, 50),  # the marker missing is not a change
            ({"app.version": "2.1.0", "effort": "high"}, 0.8, 50),
            ({"app.version": "2.2.0", "effort": "low"}, 0.8, 10),
        ],
    )
    notes = of(alerts, "version_change")
    assert [(a.signal, a.extra["before"], a.extra["after"]) for a in notes] == [
        ("app.version", "2.1.0", "2.2.0"),
        ("effort", "high", "low"),
    ]
    assert notes[0].id != notes[1].id


def test_another_change_drops_the_pending_comparison() -> None:
    """A second change before the after side fills drops the first comparison (counted) and starts anew."""
    monitor = Monitor(Config(signals=["success"]), threaded=False)
    alerts = feed(monitor, [({"model": "a"}, 0.8, 100), ({"model": "b"}, 0.8, 40), ({"model": "c"}, 0.8, 40)])
    assert len(of(alerts, "version_change")) == 2
    assert monitor.stats.comparisons_dropped == 1
    (verdict,) = of(alerts, "version_comparison")  # b (40 before) against c (40 after)
    assert verdict.extra["changes"] == [{"marker": "model", "before": "b", "after": "c"}]
    assert verdict.baseline.n == 40 and verdict.current.n == 40 and verdict.status == "resolved"


def test_too_little_before_the_change_is_not_compared() -> None:
    """With fewer than compare_min observations before the change, the annotation says so."""
    monitor = Monitor(Config(signals=["success"]), threaded=False)
    alerts = feed(monitor, [({"model": "a"}, 0.8, 10), ({"model": "b"}, 0.8, 100)])
    (note,) = of(alerts, "version_change")
    assert "no comparison" in note.message and note.extra["compare"] == []
    assert of(alerts, "version_comparison") == []


def test_memory_is_bounded_by_compare_max() -> None:
    """The before side keeps about the last compare_max observations and task ids, never more."""
    monitor = Monitor(Config(signals=["success"], compare_max=80), threaded=False)
    alerts = feed(monitor, [({"model": "a"}, 0.8, 5000), ({"model": "b"}, 0.8, 100)], task_ids=1000)
    (verdict,) = of(alerts, "version_comparison")
    assert 80 <= verdict.extra["before_n"] <= 90 and verdict.extra["after_n"] == 80
    versions = next(iter(monitor._streams.values())).versions
    assert len(versions.pairs) <= 80
    recent = _Recent(80)
    for i in range(10_000):
        recent.add(float(i))
    assert 80 <= recent.n <= 90 and len(recent._blocks) <= 9
    assert recent.moments().mean == pytest.approx(10_000 - 1 - (recent.n - 1) / 2)


def test_detection_continues_across_a_version_change() -> None:
    """A drop that arrives with a new model is still suspected and confirmed by the detectors."""
    memory = InMemorySink()
    monitor = Monitor(Config(signals=["success"]), [memory], threaded=False)
    feed(monitor, [({"model": "a"}, 0.8, 800), ({"model": "b"}, 0.5, 700)], seed=5)
    drift = [a for a in memory.alerts if a.kind == "drift"]
    assert [a.status for a in drift] == ["suspected", "confirmed"]
    assert {a.kind for a in memory.alerts} == {"drift", "version_change", "version_comparison"}


def test_version_tracking_errors_do_not_stop_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure in version tracking is counted; detection still sees the outcome."""
    monitor = Monitor(Config(signals=["success"]), threaded=False)

    def broken(*args: object) -> list[Alert]:
        raise RuntimeError("boom")

    monkeypatch.setattr(VersionTracker, "track", broken)
    alerts = feed(monitor, [({"model": "a"}, 0.8, 800), ({"model": "b"}, 0.5, 700)], seed=5)
    assert [a.status for a in alerts] == ["suspected", "confirmed"]
    assert monitor.stats.internal_errors == 1500


def test_no_markers_no_tracking() -> None:
    """With version_markers empty nothing is tracked or compared."""
    monitor = Monitor(Config(signals=["success"], version_markers=[]), threaded=False)
    alerts = feed(monitor, [({"model": "a"}, 0.8, 100), ({"model": "b"}, 0.2, 100)])
    assert alerts == [] and next(iter(monitor._streams.values())).versions.recent == {}


def test_a_signal_that_stops_arriving_does_not_hold_the_comparison_forever() -> None:
    """After 4 x compare_max outcomes a comparison is decided on the signals that filled; others left out."""
    monitor = Monitor(Config(signals=["success", "latency_s"], compare_max=50), threaded=False)
    alerts: list[Alert] = []
    for i in range(300):
        model = "a" if i < 100 else "b"
        success = (i % 3 > 0) if i < 100 else None  # the new harness stops reporting success
        alerts += monitor.process(
            Outcome(task="fix", time=float(i), model=model, success=success, latency_s=1.0 + (i % 7) / 10)
        )
    verdicts = [a for a in alerts if a.kind == "version_comparison"]
    assert [(a.signal, a.detected_at, a.extra["bh_m"]) for a in verdicts] == [("latency_s", 299.0, 1)]
    assert monitor.stats.comparisons_completed == 1 and monitor.stats.comparisons_dropped == 0
