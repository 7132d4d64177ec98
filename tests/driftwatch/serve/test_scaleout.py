"""Scale-out by simulation: N instances behind hash routing on the stream key, one removed mid-run."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import yaml

from driftwatch import Config, InMemorySink, Monitor, Outcome
from driftwatch._monitor import stream_key
from driftwatch._serve.durable import Durable, checkpointed_snapshot
from driftwatch._serve.store import StateStore

ROOT = Path(__file__).resolve().parents[3]
STREAMS = 12
LENGTH = 1500
DEGRADING = (0, 3, 6, 8, 9)  # 6, 8 and 9 live on the instance that is removed


def outcomes() -> list[Outcome]:
    """Twelve interleaved task streams; five degrade (to 0.45) at observation 800."""
    rng = random.Random(17)
    rates = [0.85, 0.6, 0.3, 0.7] * 3
    out = []
    for i in range(LENGTH):
        for s in range(STREAMS):
            p = 0.45 if s in DEGRADING and i >= 800 else rates[s]
            out.append(
                Outcome(task=f"task-{s}", service="fleet", time=1_790_000_000 + i, success=rng.random() < p)
            )
    return out


def decode(kind: str, body: bytes) -> list[Outcome]:
    return [Outcome(**json.loads(body))]


def owner(key: str, live: list[int]) -> int:
    """Rendezvous hashing: removing an instance moves only the streams it owned."""
    return max(live, key=lambda i: hashlib.sha256(f"{i}|{key}".encode()).digest())


def body(o: Outcome) -> bytes:
    return json.dumps({"task": o.task, "service": o.service, "time": o.time, "success": o.success}).encode()


def alert_set(sinks: list[InMemorySink]) -> set[tuple[str, str]]:
    return {(a.id, a.status) for sink in sinks for a in sink.alerts if a.kind == "drift"}


def test_fleet_with_an_instance_removed_raises_the_single_instance_alerts(tmp_path: Path) -> None:
    """3 instances, hash-routed; one dies (no final checkpoint) and its streams are rebuilt on the
    others from its last checkpoint plus its journal tail: the fleet's alerts equal one instance's."""
    config = Config(signals=["success"], console=False)
    data = outcomes()

    single = InMemorySink()
    monitor = Monitor(config, [single], threaded=False)
    for o in data:
        monitor.process(o)
    expected = alert_set([single])
    assert any(status == "confirmed" for _, status in expected)  # the degradations were found

    sinks = [InMemorySink() for _ in range(3)]
    fleet = []
    for i in range(3):
        store = StateStore(tmp_path / f"instance-{i}.db")
        durable = Durable(store, Monitor(config, [sinks[i]], threaded=False), decode, every=211)
        durable.start()
        fleet.append(durable)
    live = [0, 1, 2]
    removed_at = 815 * STREAMS  # just after the degradations began, before they are detected
    for n, o in enumerate(data):
        if n == removed_at:
            dead = fleet[1]
            live.remove(1)
            # The instance is gone (kill -9, node lost): what survives is its state file.
            dead_store = dead.store
            snapshot = checkpointed_snapshot(dead_store)
            assert snapshot is not None
            checkpoint = dead_store.load_checkpoint()
            assert checkpoint is not None
            rebuilt = Monitor(config, threaded=False)
            rebuilt.restore(snapshot)
            for survivor in live:
                keys = [k for k in rebuilt.stream_keys() if owner(k, live) == survivor]
                fleet[survivor].monitor.merge(snapshot, keys=keys)
            for _, kind, raw in dead_store.entries_after(checkpoint[0]):  # the tail after its checkpoint
                (tail,) = decode(kind, raw)
                target = fleet[owner(stream_key(tail), live)]
                target.append(kind, raw)
                target.step()
        target = fleet[owner(stream_key(o), live)]
        target.append("outcome", body(o))
        target.step()
    assert alert_set(sinks) == expected
    moved = sum(1 for s in range(STREAMS) if owner(f"service=fleet;task=task-{s}", [0, 1, 2]) == 1)
    assert moved >= 1  # the removed instance really owned streams


def test_collector_example_routes_on_the_stream_key() -> None:
    """The shipped Collector config load-balances traces on driftwatch.stream_key over instances."""
    config = yaml.safe_load((ROOT / "examples/collector/collector.yaml").read_text())
    exporters = config["exporters"]
    streams = exporters["load_balancing/streams"]
    assert streams["routing_key"] == "attributes"
    assert streams["routing_attributes"] == ["driftwatch.stream_key"]
    assert len(streams["resolver"]["static"]["hostnames"]) >= 2
    assert exporters["load_balancing/services"]["routing_key"] == "service"
    pipelines = config["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == ["load_balancing/streams"]
    assert pipelines["logs"]["exporters"] == pipelines["metrics"]["exporters"] == ["load_balancing/services"]
    for pipeline in pipelines.values():
        assert all(r in config["receivers"] for r in pipeline["receivers"])
        assert all(p in config.get("processors", {}) for p in pipeline.get("processors", []))
