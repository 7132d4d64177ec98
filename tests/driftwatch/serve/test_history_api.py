"""The outcome history (retention, pruning, exactly once after restarts); the read API (paging, auth)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from driftwatch import Config, InMemorySink, Monitor, Outcome, load_config
from driftwatch._serve.api import ReadApi
from driftwatch._serve.durable import Durable
from driftwatch._serve.history import MAX_BUFFERED, History, HistorySink, Query
from driftwatch._serve.receiver import Receiver
from driftwatch._serve.service import DriftService
from driftwatch._serve.store import StateStore
from tests.driftwatch.serve.test_service import payloads, task_outcomes

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "serve-api.schema.json").read_text())
DAY = 86400.0


def decode(kind: str, body: bytes) -> list[Outcome]:
    """A journal entry is a JSON list of outcome dicts (time, success, version label)."""
    return [
        Outcome(task="t", time=r["time"], success=r["success"], labels={"app.version": r["v"]})
        for r in json.loads(body)
    ]


def entry(start: float, n: int, version: str = "v1", step: float = 1.0) -> bytes:
    return json.dumps(
        [{"time": start + i * step, "success": i % 3 > 0, "v": version} for i in range(n)]
    ).encode()


def open_durable(path: Path, **history: Any) -> tuple[Durable, History]:
    store = StateStore(path)
    kept = History(str(path), **history)
    monitor = Monitor(Config(warmup=20, lag=10), [HistorySink(kept)], threaded=False)
    return Durable(store, monitor, decode, every=10_000, history=kept), kept


def ids(history: History) -> list[int]:
    rows = history._read("SELECT id FROM history_outcome ORDER BY id", ())
    return [int(r[0]) for r in rows]


def test_history_is_written_with_checkpoints_and_exactly_once_after_a_crash(tmp_path: Path) -> None:
    """Outcomes after the last checkpoint are lost from memory in a crash and replayed once; none twice."""
    path = tmp_path / "state.db"
    durable, history = open_durable(path)
    durable.start()
    for i in range(5):
        durable.append("x", entry(1000.0 + 100 * i, 10))
    durable.step()
    assert history.stats.rows == 0 and history.stats.buffered == 50  # not before a checkpoint
    durable.checkpoint()
    assert history.stats.rows == 50
    durable.append("x", entry(2000.0, 7))
    durable.step()  # processed, buffered, never checkpointed: a kill -9 now
    durable.store.close()  # (the process dies: no checkpoint; the journal keeps the entry)
    history.close()
    again, history = open_durable(path)
    assert again.start() == 1  # the one entry after the checkpoint is replayed
    again.checkpoint()
    kept = ids(history)
    assert len(kept) == len(set(kept)) == 57 == history.stats.rows
    assert [r["time"] for r in history.iter_all(Query())][-1] == "1970-01-01T00:33:26.000Z"
    again.close()
    history.close()


def test_a_full_history_buffer_makes_a_checkpoint_due(tmp_path: Path) -> None:
    """The outcome buffer never holds much more than MAX_BUFFERED: a checkpoint comes early, in order."""
    path = tmp_path / "state.db"
    durable, history = open_durable(path)  # every=10,000 entries, 5 s: neither comes in this test
    durable.start()
    for i in range(12):
        durable.append("x", entry(1000.0 + 5000 * i, 5000))
    seen = 0
    while durable.step(limit=1):
        seen = max(seen, history.stats.buffered)
    assert seen < MAX_BUFFERED + 5000  # one entry's outcomes beyond the bound at most
    # A checkpoint after every 4th entry (4 x 5,000 outcomes reach the bound): all 60,000 written.
    assert durable.stats.checkpoints == 3 and history.stats.rows == 60_000 == len(ids(history))
    durable.close()
    history.close()


def test_retention_by_age_counts_back_from_the_newest_outcome(tmp_path: Path) -> None:
    """Outcomes older than max_age before the newest are pruned at a checkpoint, and counted."""
    path = tmp_path / "state.db"
    durable, history = open_durable(path, max_age_s=10 * DAY, clock=lambda: 40 * DAY)
    durable.start()
    for day in range(30):
        durable.append("x", entry(day * DAY, 5, step=60.0))
    durable.step()
    durable.checkpoint()
    times = [r["time"] for r in history.iter_all(Query())]
    # Kept: within 10 days of the newest (day 29 + 4 min): the last of day 19's five, and days 20..29.
    assert len(times) == 1 + 5 * 10 and times[0] == "1970-01-20T00:04:00.000Z"
    assert history.stats.pruned_rows == 150 - 51 and history.stats.rows == 51
    assert history.stats.prunes == 1 and history.stats.prune_seconds > 0
    durable.close()
    history.close()


def test_retention_by_size_prunes_the_oldest_to_below_the_cap(tmp_path: Path) -> None:
    """Beyond max_bytes the oldest outcomes go, down to 90% of the cap; the count survives a restart."""
    path = tmp_path / "state.db"
    durable, history = open_durable(path, max_bytes=20_000)
    durable.start()
    for i in range(40):
        durable.append("x", entry(1000.0 + 10 * i, 10))
        durable.step()
        durable.checkpoint()
        assert history.stats.bytes <= 20_000
    assert history.stats.pruned_rows > 0
    kept = list(history.iter_all(Query()))
    assert len(kept) == history.stats.rows
    assert kept[-1]["time"] == "1970-01-01T00:23:19.000Z"  # the newest stay
    stats = history.stats
    durable.close()
    history.close()
    reopened = History(str(path), max_bytes=20_000)
    assert (reopened.stats.rows, reopened.stats.bytes) == (stats.rows, stats.bytes)
    reopened.close()


def test_one_checkpoint_prunes_by_age_then_by_size_the_oldest_rows_and_counts_them_exactly(
    tmp_path: Path,
) -> None:
    """Past the age limit, then oldest first down to 90% of the cap, in one pass; stats match the table."""
    path = tmp_path / "state.db"
    durable, history = open_durable(path, max_age_s=10 * DAY, clock=lambda: 40 * DAY, max_bytes=3_000)
    durable.start()
    for day in range(30):
        durable.append("x", entry(day * DAY, 5, step=60.0))
    durable.step()
    sizes = [len(row[4]) + 48 for row in history._outcomes]  # all 150, oldest first (times ascend)
    durable.checkpoint()
    kept = history._read("SELECT count(*), sum(size), min(time) FROM history_outcome", ())[0]
    assert (history.stats.rows, history.stats.bytes) == (kept[0], kept[1])
    assert history.stats.pruned_rows == 150 - kept[0] and history.stats.prunes == 1
    # Age leaves 51 rows (test above), more than the cap holds: the oldest of them go until at most
    # 90% of the cap is left, and not one more.
    assert sum(sizes[-51:]) > 3_000 and kept[0] < 51 and kept[2] >= 19 * DAY
    assert sum(sizes[-kept[0] :]) == kept[1] <= 3_000 - 300 < kept[1] + sizes[-kept[0] - 1]
    durable.close()
    history.close()


def test_paging_and_selectors_over_the_history(tmp_path: Path) -> None:
    """Pages follow (time, id) without gaps or repeats; selector terms filter as compare does."""
    path = tmp_path / "state.db"
    durable, history = open_durable(path)
    durable.start()
    durable.append("x", entry(1000.0, 30, "v1"))
    durable.append("x", entry(1000.0, 30, "v2"))  # the same times: ties broken by id
    durable.step()
    durable.checkpoint()
    api = ReadApi(durable.monitor, history)
    seen: list[dict[str, Any]] = []
    params: dict[str, list[str]] = {"limit": ["7"]}
    while True:
        status, kind, body, headers = api.outcomes(params)
        assert status == 200 and kind == "application/x-ndjson"
        seen += [json.loads(line) for line in body.splitlines()]
        if not headers:
            break
        params["cursor"] = [headers[0][1]]
    assert len(seen) == 60
    assert [r["time"] for r in seen] == sorted(r["time"] for r in seen)
    _, _, v2, _ = api.outcomes({"version": ["v2"], "until": ["1970-01-01T00:16:50Z"]})
    assert [json.loads(line)["labels"]["app.version"] for line in v2.splitlines()] == ["v2"] * 10
    bad = api.routes()["/api/v1/outcomes"]({"cursor": ["nonsense"]})
    assert bad[0] == 400 and b"cursor" in bad[2]
    assert api.routes()["/api/v1/outcomes"]({"colour": ["red"]})[0] == 400
    assert api.routes()["/api/v1/outcomes"]({"select": ["model"]})[0] == 400
    durable.close()
    history.close()


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[DriftService, Receiver]]:
    config = load_config(
        None,
        env={},
        http_port=0,
        grpc_port=0,
        state=str(tmp_path / "state.db"),
        console=False,
        token="s3cret",
        checkpoint_seconds=1,
    )
    svc = DriftService(config, [InMemorySink()])
    svc.start(wait=True)
    receiver = Receiver(svc, config)
    receiver.query_routes.update(ReadApi(svc.monitor, svc.history).routes())
    receiver.start()
    yield svc, receiver
    receiver.stop()
    svc.stop()


def get(port: int, path: str, token: str | None = "s3cret") -> tuple[int, bytes, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def validate(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """The JSON Schema subset the schema file uses: $ref, type (lists too), enum, required, properties,
    additionalProperties, items."""
    if "$ref" in schema:
        validate(value, SCHEMA["$defs"][schema["$ref"].split("/")[-1]], where)
        return
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        python = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
        ok = any(
            (isinstance(value, int) and not isinstance(value, bool))
            if t == "integer"
            else (isinstance(value, int | float) and not isinstance(value, bool))
            if t == "number"
            else isinstance(value, python[t])
            for t in names
        )
        assert ok, f"{where}: {value!r} is not {names}"
    if value is None:
        return
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, dict):
        for name in schema.get("required", []):
            assert name in value, f"{where}: {name!r} missing"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                validate(item, properties[name], f"{where}.{name}")
            elif extra is False:
                raise AssertionError(f"{where}: unexpected {name!r}")
            elif isinstance(extra, dict):
                validate(item, extra, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            validate(item, schema["items"], f"{where}[{i}]")


def test_read_api_behind_the_token_matches_its_schema(guarded: tuple[DriftService, Receiver]) -> None:
    """Every read endpoint needs the token; real responses (after drift) match docs/serve-api.schema.json."""
    svc, receiver = guarded
    port = receiver.http_port
    for body in payloads(task_outcomes(700, 500, 0.92, 0.5, seed=3), per_request=100):
        assert svc.handle("traces", ExportTraceServiceRequest.FromString(body)).rejected == 0
    assert svc.wait_processed(30)
    svc.durable.checkpoint()
    for path in ("/api/v1/streams", "/api/v1/alerts", "/api/v1/incidents", "/api/v1/outcomes"):
        assert get(port, path, token=None)[0] == 401
        assert get(port, path, token="wrong")[0] == 401
    status, body, _ = get(port, "/api/v1/streams")
    assert status == 200
    streams = json.loads(body)
    validate(streams, {"$ref": "#/$defs/streams"})
    (stream,) = streams["streams"]
    assert stream["state"] in ("suspected", "confirmed")
    success = next(s for s in stream["signals"] if s["signal"] == "success")
    assert success["baseline"]["mean"] == pytest.approx(0.92, abs=0.04)
    status, body, _ = get(port, "/api/v1/alerts?limit=5")
    alerts = json.loads(body)
    validate(alerts, {"$ref": "#/$defs/alerts"})
    assert alerts["open"] and alerts["recent"]
    status, body, _ = get(port, "/api/v1/incidents")
    incidents = json.loads(body)
    validate(incidents, {"$ref": "#/$defs/incidents"})
    first = incidents["incidents"][0]
    assert first["state"] == "open" and first["streams"] == 1
    assert {a["incident"] for a in alerts["open"]} == {first["id"]}  # one cause, one incident
    assert {m["alert"] for m in first["signals"]} >= {a["id"] for a in alerts["open"]}
    status, body, headers = get(port, "/api/v1/outcomes?limit=1000")
    lines = body.splitlines()
    assert status == 200 and len(lines) == 1000 and headers["X-Driftwatch-Cursor"]
    for line in lines[:50]:
        validate(json.loads(line), {"$ref": "#/$defs/outcome"})
    status, body, headers = get(port, f"/api/v1/outcomes?limit=1000&cursor={headers['X-Driftwatch-Cursor']}")
    assert len(body.splitlines()) == 200 and headers.get("X-Driftwatch-Cursor") is None
    assert get(port, "/api/v1/outcomes?limit=0")[0] == 400
    assert svc.stats()["history"]["rows"] == 1200
