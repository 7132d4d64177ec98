"""``Monitor.process_batch`` (the worker's path) raises the same alerts, in the same order, and leaves
the same checkpoint as ``Monitor.process`` one outcome at a time: seeded call and task streams with
drift mid-batch, suspicions confirmed and withdrawn, a version change, per-task detection, two
streams interleaved, batches of every size; and the threaded worker gives the same alerts."""

from __future__ import annotations

import math
import random

import pytest

from driftwatch import Config, Monitor, Outcome


def outcomes(seed: int, length: int = 5000) -> list[Outcome]:
    """Calls of two tasks, a minute apart, with a daily latency cycle; task ``a`` degrades from
    3,000 (slower, more tokens, fewer successes), the model changes at 4,000; task ``b`` carries
    recurring task ids (per-task detection)."""
    rng = random.Random(seed)
    out = []
    for i in range(length):
        t = 1.7e9 + 60.0 * i
        task = rng.choice(["a", "b"])
        bad = i > 3000 and task == "a"
        cycle = 0.3 * math.sin(2 * math.pi * (t % 86400) / 86400)
        out.append(
            Outcome(
                task=task,
                kind="call",
                time=t,
                latency_s=math.exp(rng.gauss(0.5 if bad else 0.0, 0.4) + cycle),
                success=rng.random() < (0.8 if bad else 0.95),
                input_tokens=int(rng.lognormvariate(5, 0.3)),
                output_tokens=int(rng.lognormvariate(6, 0.3) * (1.3 if bad else 1.0)),
                cost_usd=rng.random() * 0.01,
                tool_calls=rng.choice([0, 0, 0, 1]),
                model="m1" if i < 4000 else "m2",
                task_id=None if task == "a" else f"id{rng.randrange(30)}",
            )
        )
    return out


def config() -> Config:
    return Config(version_markers=["model"], console=False)


@pytest.mark.parametrize("size", [1, 37, 256, 5000])
def test_same_alerts_and_checkpoint_as_process(size: int) -> None:
    """Batches of 1, 37, 256 and all 5,000: alerts (as dicts, in order) and snapshots identical."""
    stream = outcomes(20261202)
    one, many = Monitor(config(), threaded=False), Monitor(config(), threaded=False)
    expected = [a.to_dict() for o in stream for a in one.process(o)]
    got = []
    for i in range(0, len(stream), size):
        got += [a.to_dict() for a in many.process_batch(stream[i : i + size])]
    assert got == expected
    statuses = {(a["kind"], a["status"]) for a in expected}
    assert {
        ("drift", "suspected"),
        ("drift", "confirmed"),
        ("version_change", "annotation"),
        ("drift", "resolved"),
    } <= statuses
    assert one.snapshot() == many.snapshot()
    assert one.stats.as_dict() == many.stats.as_dict()


def test_threaded_worker_raises_the_same_alerts() -> None:
    """Submitted to the worker (batches as it drains them), the alerts are process's."""
    stream = outcomes(20261203, 3500)
    one = Monitor(config(), threaded=False)
    expected = [a.to_dict() for o in stream for a in one.process(o)]
    sink: list[dict[str, object]] = []

    class Sink:
        def export(self, alert: object) -> None:
            sink.append(alert.to_dict())  # type: ignore[attr-defined]

        def shutdown(self) -> None:
            pass

    threaded = Monitor(config(), sinks=[Sink()])
    for outcome in stream:
        assert threaded.submit(outcome)
    assert threaded.flush(60.0)
    threaded.shutdown()
    assert sink == expected and expected
