"""Drift episodes over random streams: change times lie within the data, ids never repeat across episodes.

Streams of random pass-rate segments (short blips that raise a suspicion later withdrawn, lasting
drops and recoveries), with outcomes sharing timestamps and restarts (snapshot, then restore into
a new monitor) at random points.
"""

from __future__ import annotations

import random

from hypothesis import example, given, settings
from hypothesis import strategies as st

from driftwatch import Alert, Config, Monitor, Outcome

#: Event times start in 2023: a change dated 1970-01-01 (time 0.0) lies far outside the data.
T0 = 1.7e9

segment = st.tuples(st.sampled_from([0.0, 0.3, 0.5, 0.65, 0.8, 0.95]), st.integers(10, 700))


def play(
    seed: int, segments: list[tuple[float, int]], per_tick: int, restarts: set[int]
) -> tuple[list[Alert], list[tuple[float, float]]]:
    """Every alert, with the (earliest, latest) event time processed when it was raised."""
    config = Config(signals=["success"])
    monitor = Monitor(config, threaded=False)
    rng = random.Random(seed)
    alerts: list[Alert] = []
    spans: list[tuple[float, float]] = []
    i = 0
    for rate, count in segments:
        for _ in range(count):
            if i in restarts:
                blob = monitor.snapshot()
                monitor = Monitor(config, threaded=False)
                monitor.restore(blob)
            t = T0 + (i // per_tick) * 1.0
            i += 1
            raised = monitor.process(Outcome(task="t", time=t, success=rng.random() < rate))
            alerts += raised
            spans += [(T0, t)] * len(raised)
    return alerts, spans


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    first=st.integers(550, 900),
    segments=st.lists(segment, min_size=1, max_size=5),
    per_tick=st.sampled_from([1, 1, 40, 1000]),
    restarts=st.sets(st.integers(0, 3000), max_size=3),
)
# A blip that raises a suspicion the fresh observations withdraw, then a lasting drop right after
# the detector resumed: the drop was dated 1970-01-01 (each arm's last zero left at 0.0).
@example(seed=0, first=800, segments=[(0.0, 20), (0.8, 20), (0.3, 800)], per_tick=1, restarts=set())
@example(seed=0, first=800, segments=[(0.0, 20), (0.8, 20), (0.3, 800)], per_tick=1, restarts={830})
# The same with 1,000 outcomes per timestamp: the withdrawn suspicion and the drop after it share a
# change time, so ids derived from the change time alone repeated across the two episodes.
@example(seed=4, first=1500, segments=[(0.0, 20), (0.8, 45), (0.2, 800)], per_tick=1000, restarts=set())
def test_change_times_lie_within_the_data_and_ids_are_unique_per_episode(
    seed: int, first: int, segments: list[tuple[float, int]], per_tick: int, restarts: set[int]
) -> None:
    """Every drift alert's change time lies within the stream's observed times (and not after its
    detection); each id is one episode: suspected (or a new level confirmed) first, no status twice,
    nothing after its resolve."""
    alerts, spans = play(seed, [(0.8, first), *segments], per_tick, restarts)
    statuses: dict[str, list[str]] = {}
    for alert, (earliest, latest) in zip(alerts, spans, strict=True):
        if alert.kind != "drift":
            continue
        assert earliest <= alert.change_at <= alert.detected_at <= latest, alert.to_dict()
        statuses.setdefault(alert.id, []).append(alert.status)
    for alert_id, seen in statuses.items():
        assert seen in (
            ["suspected"],
            ["suspected", "resolved"],
            ["suspected", "confirmed"],
            ["suspected", "confirmed", "resolved"],
            ["confirmed"],
            ["confirmed", "resolved"],
        ), (alert_id, seen)
