"""One incident per cause: alerts of one task (call- and task-level, every signal) or one version change."""

from __future__ import annotations

import math
import random

from driftwatch import Alert, Config, Monitor, Outcome
from driftwatch._monitor.incidents import Incidents
from driftwatch._stats import Estimate
from driftwatch.notify import PagerDutySink, SlackSink
from tests.support.notify_servers import FakeService

FAST = {"backoff_s": 0.01, "timeout_s": 2.0}


def play(monitor: Monitor, segments: list[tuple[float, int]], seed: int = 3) -> list[Alert]:
    """Each task run makes one call and one task outcome, both with output tokens at ``level``."""
    rng = random.Random(seed)
    alerts: list[Alert] = []
    i = 0
    for level, count in segments:
        for _ in range(count):
            i += 1
            tokens = math.exp(rng.gauss(math.log(400 * level), 0.3))
            t = 1.7e9 + 10 * i
            alerts += monitor.process(Outcome(task="fix", kind="call", time=t, output_tokens=round(tokens)))
            alerts += monitor.process(Outcome(task="fix", time=t, output_tokens=round(tokens) + 5))
    return alerts


def test_one_page_per_cause_across_call_and_task_streams(pd: FakeService, slack: FakeService) -> None:
    """Call- and task-level output tokens rise together: two alerts, one incident, one page, one resolve."""
    sinks = [
        PagerDutySink("R0123456789abcdef0123456789abcde", url=pd.url, **FAST),
        SlackSink(slack.url, **FAST),
    ]
    monitor = Monitor(Config(signals=["output_tokens"], console=False), sinks, threaded=False)
    alerts = play(monitor, [(1.0, 700), (1.6, 600), (1.0, 800)])
    monitor.shutdown()
    confirmed = [a for a in alerts if a.status == "confirmed"]
    assert {a.stream.get("kind", "task") for a in confirmed} == {"call", "task"}
    incidents = {a.extra["incident"] for a in confirmed}
    assert len(incidents) == 1 and all(a.to_dict()["incident"] == a.extra["incident"] for a in alerts)
    events = [(e["event_action"], e["dedup_key"]) for e in pd.bodies()]
    (incident,) = incidents
    # The second signal updates the open PagerDuty incident under its key (no second page).
    assert [e for e in events if e[0] == "resolve"] == [("resolve", incident)]
    assert {key for _, key in events} == {incident} and events[-1][0] == "resolve"
    assert len(slack.bodies()) == 2  # one message when it opens, one when its last alert resolves
    assert sinks[1].stats.grouped == 2 and pd.invalid == [] and slack.invalid == []


def test_separate_causes_are_separate_incidents() -> None:
    """Another task, or a change far outside the window, opens its own incident."""
    incidents = Incidents(window=3600)
    base = Alert(
        id="a",
        status="confirmed",
        stream={"service": "s", "task": "fix"},
        signal="success",
        direction="down",
        detected_at=1000.0,
        change_at=900.0,
        baseline=None,  # type: ignore[arg-type]
        current=None,  # type: ignore[arg-type]
        effect=0.0,
        effect_ci=(0.0, 0.0),
        p_value=0.01,
        detector={},
        message="",
    )
    first = incidents.assign(base)
    same = incidents.assign(base.with_status("confirmed", id="b", signal="latency_s", change_at=1500.0))
    other_task = incidents.assign(base.with_status("confirmed", id="c", stream={"service": "s", "task": "x"}))
    later = incidents.assign(base.with_status("confirmed", id="d", change_at=90_000.0, detected_at=90_100.0))
    ids = [a.extra["incident"] for a in (first, same, other_task, later)]
    assert ids[0] == ids[1] and len(set(ids)) == 3
    assert incidents.assign(base.with_status("resolved")).extra["incident"] == ids[0]


def test_one_incident_per_version_change_across_tasks(pd: FakeService) -> None:
    """A model upgrade that drops three of four tasks: one incident naming it, 3 of 4 streams, worst first."""
    sink = PagerDutySink("R0123456789abcdef0123456789abcde", url=pd.url, **FAST)
    monitor = Monitor(Config(signals=["success"], console=False), [sink], threaded=False)
    rng = random.Random(11)
    rates = {"a": (0.9, 0.5), "b": (0.8, 0.6), "c": (0.85, 0.55), "d": (0.7, 0.7)}  # d is unaffected
    alerts: list[Alert] = []
    for i in range(3000):
        upgraded = i >= 1200
        for task, (before, after) in rates.items():
            ok = rng.random() < (after if upgraded else before)
            outcome = Outcome(task=task, time=1.7e9 + 2 * i, model="m-2" if upgraded else "m-1", success=ok)
            alerts += monitor.process(outcome)
    monitor.shutdown()
    moved = [a for a in alerts if a.status == "confirmed"]
    assert {a.stream["task"] for a in moved} == {"a", "b", "c"}
    assert {a.kind for a in moved} == {"drift", "version_comparison"}
    assert len({a.extra["incident"] for a in moved}) == 1
    last = moved[-1].extra["incident_summary"]
    assert last.startswith("model m-1 -> m-2: 3 of 4 streams moved; ")
    order = [part.split("task=")[1][0] for part in last.split("; ")[1:]]
    assert order == ["a", "c", "b"]  # worst first: 90 → 50 %, 85 → 55 %, 80 → 60 %
    events = pd.bodies()
    assert {e["dedup_key"] for e in events} == {moved[0].extra["incident"]}
    assert events[-1]["payload"]["summary"].endswith(last)


def test_an_upgrade_rolled_back_resolves_its_incident_once(pd: FakeService) -> None:
    """An upgrade that drops three tasks, then rolled back: one dedup key, one resolve at the end (its
    before/after comparisons never resolve by themselves and must not hold the incident open); the
    read API shows the incident resolved too."""
    from driftwatch._serve.api import _incident

    sink = PagerDutySink("R0123456789abcdef0123456789abcde", url=pd.url, **FAST)
    monitor = Monitor(Config(signals=["success"], console=False), [sink], threaded=False)
    rng = random.Random(11)
    rates = {"a": (0.9, 0.5), "b": (0.8, 0.6), "c": (0.85, 0.55), "d": (0.7, 0.7)}
    alerts: list[Alert] = []
    for i in range(7000):
        upgraded = 1200 <= i < 3000  # m-2 from 1,200 to 3,000, then back to m-1
        for task, (before, after) in rates.items():
            ok = rng.random() < (after if upgraded else before)
            model = "m-2" if upgraded else "m-1"
            alerts += monitor.process(Outcome(task=task, time=1.7e9 + 2 * i, model=model, success=ok))
    monitor.shutdown()
    assert sink.flush(5)
    paged = {a.extra["incident"] for a in alerts if a.status == "confirmed" and a.direction == "down"}
    (incident,) = paged
    events = [(e["event_action"], e["dedup_key"]) for e in pd.bodies()]
    assert {key for _, key in events} == {incident}
    assert [action for action, _ in events].count("resolve") == 1 and events[-1][0] == "resolve"
    latest = {a.id: a.to_dict() for a in alerts if a.extra.get("incident") == incident}
    assert {m["kind"] for m in latest.values()} == {"drift", "version_comparison"}
    assert _incident(incident, list(latest.values()))["state"] == "resolved"


def test_a_drift_far_from_the_version_change_keeps_its_own_incident() -> None:
    """A drift whose change lies outside the window of its stream's version change is not linked to it."""
    incidents = Incidents(window=3600)
    none = Estimate(0.5, 100, 0.4, 0.6)
    note = Alert(
        id="v",
        status="annotation",
        stream={"service": "s", "task": "fix"},
        signal="model",
        direction="none",
        detected_at=1000.0,
        change_at=1000.0,
        baseline=none,
        current=none,
        effect=0.0,
        effect_ci=(0.0, 0.0),
        p_value=None,
        detector={},
        message="",
        extra={"marker": "model", "before": "m-1", "after": "m-2"},
        kind="version_change",
    )
    assert incidents.assign(note) is note
    drift = note.with_status("confirmed", id="d1", kind="drift", signal="success", direction="down", extra={})
    near = incidents.assign(drift.with_status("confirmed", change_at=1500.0, detected_at=2000.0))
    far = incidents.assign(drift.with_status("confirmed", id="d2", change_at=9000.0, detected_at=9500.0))
    assert near.extra["incident_summary"].startswith("model m-1 -> m-2: 1 of 1 stream moved")
    assert far.extra["incident"] != near.extra["incident"] and "incident_summary" not in far.extra


def test_a_snapshot_keeps_live_incidents_and_version_changes_only() -> None:
    """Pickled, Incidents keep what an alert can still join and the version changes; closed ones go."""
    import pickle

    incidents = Incidents(window=3600)
    est = Estimate(0.5, 100, 0.4, 0.6)
    old = Alert("old", "confirmed", {"service": "s", "task": "a"}, "success", "down", 10.0, 0.0, est, est,
                0.0, (0.0, 0.0), 0.01, {}, "")  # fmt: skip
    incidents.assign(old)
    incidents.assign(old.with_status("resolved", detected_at=20.0))
    note = old.with_status("annotation", id="v", kind="version_change", change_at=9e4, detected_at=9e4,
                           extra={"marker": "model", "before": "m-1", "after": "m-2"})  # fmt: skip
    incidents.assign(note)
    live = incidents.assign(old.with_status("confirmed", id="new", change_at=9e4 + 60, detected_at=9e4 + 600))
    copy = pickle.loads(pickle.dumps(incidents))
    assert list(copy._incidents) == [live.extra["incident"]] and list(copy._of) == ["new"]
    again = copy.assign(old.with_status("confirmed", id="other", signal="latency_s", change_at=9e4 - 30,
                                        detected_at=9e4 + 900))  # fmt: skip
    assert again.extra["incident"] == live.extra["incident"]  # linked by the version change kept
    assert again.extra["incident_summary"].startswith("model m-1 -> m-2: 1 of 1 stream moved")


def test_a_merged_stream_keeps_its_open_incident() -> None:
    """Scale-out: streams merged from another instance bring their open incidents, so a new symptom of
    the same cause joins the incident there (one page), with or without sinks that restore state."""
    config = Config(signals=["output_tokens"], console=False)
    source = Monitor(config, threaded=False)
    confirmed = [a for a in play(source, [(1.0, 800), (2.0, 300)]) if a.status == "confirmed"]
    assert confirmed and len({a.extra["incident"] for a in confirmed}) == 1
    target = Monitor(config, threaded=False)
    target.merge(source.snapshot())
    symptom = confirmed[0].with_status("confirmed", id="new-symptom", signal="latency_s", extra={})
    assert target._incidents.assign(symptom).extra["incident"] == confirmed[0].extra["incident"]
